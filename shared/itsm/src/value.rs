//! Reading fields out of vendor JSON with errors that name the field.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use crate::InboundError;

/// A field of `v` by a dotted path (`issue.fields.status.name`); `None` when any step
/// is missing or null.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, key| v.get(key))
        .filter(|v| !v.is_null())
}

/// A text value: a string, a number, or the `value`/`name` of a Jira option object.
pub fn text(v: &Value, field: &str) -> Result<Option<String>, InboundError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_owned())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Object(o) => match o.get("value").or_else(|| o.get("name")) {
            Some(inner) => text(inner, field),
            None => Err(InboundError::field(field, "is an object without a value")),
        },
        _ => Err(InboundError::field(field, "is not text")),
    }
}

pub fn opt_text(v: &Value, path: &str, field: &str) -> Result<Option<String>, InboundError> {
    at(v, path).map_or(Ok(None), |v| text(v, field))
}

/// A list of texts: a JSON array (of strings or option objects) or a comma-separated
/// string, as ServiceNow string fields hold lists.
pub fn list(v: &Value, field: &str) -> Result<Vec<String>, InboundError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| text(item, &format!("{field}[{i}]")).transpose())
            .collect(),
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        _ => Err(InboundError::field(field, "is not a list")),
    }
}

/// A whole number of hours from a number (`8.0`) or a string (`"8"`).
pub fn hours(v: &Value, field: &str) -> Result<Option<u32>, InboundError> {
    let bad = || InboundError::field(field, "is not a whole number");
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => {
            let f = n.as_f64().ok_or_else(bad)?;
            if f.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&f) {
                return Err(bad());
            }
            Ok(Some(f as u32))
        }
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s.trim().parse().map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A time in any of the forms ITSMs send: RFC 3339, Jira's `2026-11-29T18:00:00.000+0000`,
/// ServiceNow's `2026-11-29 18:00:00` (UTC, as GlideDateTime stores it), or epoch
/// milliseconds.
pub fn time(v: &Value, field: &str) -> Result<Option<DateTime<Utc>>, InboundError> {
    let bad = || InboundError::field(field, "is not a date-time");
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => {
            let ms = n.as_i64().ok_or_else(bad)?;
            DateTime::from_timestamp_millis(ms)
                .map(Some)
                .ok_or_else(bad)
        }
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => parse_time(s.trim()).map(Some).ok_or_else(bad),
        Value::Object(o) => match o.get("epochMillis").or_else(|| o.get("iso8601")) {
            Some(inner) => time(inner, field),
            None => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// A person as Jira (`emailAddress`, `accountId`) or ServiceNow (`email`,
/// `user_name`) describes them, or a plain string.
pub fn person(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        // An empty e-mail (Jira hides it by a user's privacy setting) is no name:
        // the next key is tried, so the person is never lost.
        Value::Object(o) => ["emailAddress", "email", "user_name", "accountId", "name"]
            .iter()
            .find_map(|k| {
                o.get(*k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
            })
            .map(|s| s.trim().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_in_every_vendor_format() {
        let want = "2026-11-29T18:00:00Z";
        for v in [
            json!("2026-11-29T18:00:00Z"),
            json!("2026-11-29T18:00:00.000+0000"),
            json!("2026-11-29T19:00:00+0100"),
            json!("2026-11-29 18:00:00"),
            json!(1_795_975_200_000_i64),
            json!({"iso8601": "2026-11-29T18:00:00+0000"}),
        ] {
            let t = time(&v, "f").unwrap().unwrap();
            assert_eq!(
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                want,
                "{v}"
            );
        }
        assert!(time(&json!("tomorrow"), "f").is_err());
    }

    #[test]
    fn lists_from_arrays_options_and_commas() {
        assert_eq!(list(&json!("a, b,,c"), "f").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            list(&json!([{"value": "a"}, "b"]), "f").unwrap(),
            ["a", "b"]
        );
        assert!(list(&json!(5), "f").is_err());
    }
}
