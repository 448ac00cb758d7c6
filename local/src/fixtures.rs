//! The real-shaped events under `tests/fixtures` that the local stack's clients send at
//! run time (the demo's Jira site fills its requests from the approval webhook; the
//! benchmarks replay the TTL record). The tests' own samples are `ticketbound-testkit`'s.

use chrono::{DateTime, Duration, Utc};

/// Reads a file under `tests/fixtures`.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    match std::fs::read(&full) {
        Ok(b) => b,
        Err(e) => panic!("fixture {full}: {e}"),
    }
}

/// A fixture parsed as JSON.
pub fn fixture_json(path: &str) -> serde_json::Value {
    match serde_json::from_slice(&fixture(path)) {
        Ok(v) => v,
        Err(e) => panic!("fixture {path} is not JSON: {e}"),
    }
}

/// The fixtures' Jira field of the change window's start.
pub const CHANGE_WINDOW_START_FIELD: &str = "customfield_10213";

/// A time as Jira writes one in a field.
pub fn jira_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// The Jira approval webhook from the fixtures, for issue `key`, approved ten minutes
/// before `now` and running for `lifetime`.
pub fn jira_approval(now: DateTime<Utc>, key: &str, lifetime: Duration) -> serde_json::Value {
    let mut v = fixture_json("jira/issue-updated-approved.json");
    v["issue"]["key"] = key.into();
    v["timestamp"] = now.timestamp_millis().into();
    let fields = &mut v["issue"]["fields"];
    let approved = now - Duration::minutes(10);
    if let Some(approvals) = fields["customfield_10002"].as_array_mut() {
        for a in approvals {
            a["completedDate"]["iso8601"] =
                approved.format("%Y-%m-%dT%H:%M:%S+0000").to_string().into();
            a["completedDate"]["jira"] = jira_time(approved).into();
            a["completedDate"]["epochMillis"] = approved.timestamp_millis().into();
        }
    }
    fields["customfield_10209"] = jira_time(now + lifetime).into();
    fields[CHANGE_WINDOW_START_FIELD] = jira_time(now - Duration::minutes(30)).into();
    fields["customfield_10214"] = jira_time(now + lifetime).into();
    v
}
