//! Typed configuration from environment variables.
//!
//! [`EnvReader`] reads and parses each variable a process needs and keeps going after
//! a problem, so that one start-up error names every missing or malformed variable.
//! Problems name the variable and what was expected, never the value: a malformed
//! value may be a secret pasted into the wrong variable.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// What is wrong with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarProblem {
    Missing,
    Malformed {
        expected: String,
    },
    /// A read came back empty without recording why: a bug in the code that reads,
    /// reported rather than hidden behind a made-up variable.
    Unreported,
}

/// A comma-separated list, as several variables take one: items trimmed, empty ones
/// dropped. Types that need more (known values, a rule) parse it and check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommaList(pub Vec<String>);

impl FromStr for CommaList {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }
}

/// Every variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<(String, VarProblem)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("configuration is incomplete: ")?;
        for (i, (name, problem)) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match problem {
                VarProblem::Missing => write!(f, "{name} is not set")?,
                VarProblem::Malformed { expected } => {
                    write!(f, "{name} is malformed (expected {expected})")?;
                }
                VarProblem::Unreported => {
                    write!(f, "{name} came back empty without a reason (a bug)")?;
                }
            }
        }
        Ok(())
    }
}

/// Reads variables from the process environment or, in tests, from a map.
#[derive(Debug)]
pub struct EnvReader {
    source: Option<HashMap<String, String>>,
    problems: Vec<(String, VarProblem)>,
    /// Every name asked for, when [`variables_read`] wants to know.
    asked: Option<Arc<Mutex<BTreeSet<String>>>>,
}

/// The names a configuration reads: `read` runs on an empty environment and every
/// variable it asks for is collected. This is how `tests/infra-check` proves each
/// function's `config::VARIABLES` (what Terraform gives its Lambda) is exactly what
/// its code reads.
pub fn variables_read<T>(read: impl FnOnce(EnvReader) -> T) -> BTreeSet<String> {
    let asked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut env = EnvReader::from_map(Vec::<(String, String)>::new());
    env.asked = Some(Arc::clone(&asked));
    let _ = read(env);
    asked.lock().map(|names| names.clone()).unwrap_or_default()
}

impl EnvReader {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        Self {
            source: None,
            problems: Vec::new(),
            asked: None,
        }
    }

    /// Reads the given variables only.
    pub fn from_map<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            source: Some(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            problems: Vec::new(),
            asked: None,
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
        if let Some(Ok(mut asked)) = self.asked.as_ref().map(|a| a.lock()) {
            asked.insert(name.to_owned());
        }
        let value = match &self.source {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// A variable that must be set and parse as `T`; `expected` says what a good
    /// value looks like.
    pub fn required<T: FromStr>(&mut self, name: &str, expected: &str) -> Option<T> {
        match self.raw(name) {
            None => {
                self.problems.push((name.to_owned(), VarProblem::Missing));
                None
            }
            Some(raw) => self.parse(name, &raw, expected),
        }
    }

    /// A variable that may be absent; if set it must parse as `T`.
    pub fn optional<T: FromStr>(&mut self, name: &str, expected: &str) -> Option<T> {
        let raw = self.raw(name)?;
        self.parse(name, &raw, expected)
    }

    /// A variable with a default when absent; if set it must parse as `T`.
    pub fn or_default<T: FromStr>(&mut self, name: &str, expected: &str, default: T) -> T {
        match self.raw(name) {
            None => default,
            Some(raw) => self.parse(name, &raw, expected).unwrap_or(default),
        }
    }

    fn parse<T: FromStr>(&mut self, name: &str, raw: &str, expected: &str) -> Option<T> {
        match raw.trim().parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.problems.push((
                    name.to_owned(),
                    VarProblem::Malformed {
                        expected: expected.to_owned(),
                    },
                ));
                None
            }
        }
    }

    /// Two variables that only mean something together (an ITSM's URL and its
    /// credentials, say): both set, or neither. One without the other is reported
    /// as its partner missing, since half a configuration would either refuse
    /// everything or check less than it seems to.
    pub fn both_or_neither<A: FromStr, B: FromStr>(
        &mut self,
        (a, a_expected): (&str, &str),
        (b, b_expected): (&str, &str),
    ) -> Option<(A, B)> {
        let first = self.raw(a).map(|raw| self.parse::<A>(a, &raw, a_expected));
        let second = self.raw(b).map(|raw| self.parse::<B>(b, &raw, b_expected));
        match (first, second) {
            (Some(x), Some(y)) => Some((x?, y?)),
            (None, None) => None,
            (Some(_), None) => {
                self.problem(b, VarProblem::Missing);
                None
            }
            (None, Some(_)) => {
                self.problem(a, VarProblem::Missing);
                None
            }
        }
    }

    /// Records a problem the reader found itself (a variable that must come with
    /// another, say).
    pub fn problem(&mut self, name: &str, problem: VarProblem) {
        self.problems.push((name.to_owned(), problem));
    }

    /// Ends reading: `Ok` if every variable read so far was good.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }

    /// Ends reading, then builds the configuration from what was read. `build`
    /// unwraps the reads' `Option`s, which are all `Some` once nothing was reported (a
    /// required read that comes back empty always records why), so a function's
    /// configuration needs no fallback of its own for the case that cannot happen.
    pub fn finish_with<T>(
        self,
        what: &str,
        build: impl FnOnce() -> Option<T>,
    ) -> Result<T, ConfigError> {
        self.finish()?;
        build().ok_or_else(|| ConfigError {
            problems: vec![(what.to_owned(), VarProblem::Unreported)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_and_malformed_variable_is_named_once() {
        let mut env = EnvReader::from_map([
            ("TICKETBOUND_MAX_ATTEMPTS", "five"),
            ("TICKETBOUND_SECRET_ARN", "  "),
            ("TICKETBOUND_OK", "3"),
        ]);
        let ok: Option<u32> = env.required("TICKETBOUND_OK", "a number");
        let attempts: Option<u32> = env.required("TICKETBOUND_MAX_ATTEMPTS", "a whole number");
        let arn: Option<String> = env.required("TICKETBOUND_SECRET_ARN", "an ARN");
        let table: Option<String> = env.required("TICKETBOUND_GRANTS_TABLE", "a table name");
        let port: u16 = env.or_default("TICKETBOUND_PORT", "a port", 8080);
        assert_eq!(
            (ok, attempts, arn, table, port),
            (Some(3), None, None, None, 8080)
        );

        let err = env.finish().unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration is incomplete: TICKETBOUND_MAX_ATTEMPTS is malformed (expected a whole number); \
             TICKETBOUND_SECRET_ARN is not set; TICKETBOUND_GRANTS_TABLE is not set"
        );
    }

    #[test]
    fn finish_with_builds_once_every_read_was_good() {
        let mut env = EnvReader::from_map([("TICKETBOUND_OK", "3")]);
        let ok: Option<u32> = env.required("TICKETBOUND_OK", "a number");
        assert_eq!(env.finish_with("the sample", || Some(ok? + 1)), Ok(4));

        let mut env = EnvReader::from_map([("TICKETBOUND_OK", "3")]);
        let missing: Option<u32> = env.required("TICKETBOUND_SECRET_ARN", "an ARN");
        let err = env.finish_with("the sample", || missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration is incomplete: TICKETBOUND_SECRET_ARN is not set"
        );

        // A read that comes back empty without saying why is named, not hidden.
        let env = EnvReader::from_map([("TICKETBOUND_OK", "3")]);
        let err = env.finish_with("the sample", || None::<u32>).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration is incomplete: the sample came back empty without a reason (a bug)"
        );
    }

    #[test]
    fn both_or_neither_reports_the_missing_partner_only() {
        let url = ("TICKETBOUND_JIRA_URL", "a URL");
        let secret = ("TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID", "a secret id");
        let mut env = EnvReader::from_map([("TICKETBOUND_JIRA_URL", "https://x")]);
        assert_eq!(env.both_or_neither::<String, String>(url, secret), None);
        assert_eq!(
            env.finish().unwrap_err().to_string(),
            "configuration is incomplete: TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID is not set"
        );

        let mut env = EnvReader::from_map(Vec::<(String, String)>::new());
        assert_eq!(env.both_or_neither::<String, String>(url, secret), None);
        assert_eq!(env.finish(), Ok(()));

        let mut env = EnvReader::from_map([
            ("TICKETBOUND_JIRA_URL", "https://x"),
            ("TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID", "s"),
        ]);
        assert_eq!(
            env.both_or_neither::<String, String>(url, secret),
            Some(("https://x".to_owned(), "s".to_owned()))
        );
        assert_eq!(env.finish(), Ok(()));
    }

    #[test]
    fn variables_read_names_what_was_asked_for() {
        let names = variables_read(|mut env| {
            let _: Option<u32> = env.required("TICKETBOUND_OK", "a number");
            let _: u16 = env.or_default("TICKETBOUND_PORT", "a port", 8080);
            env.finish()
        });
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["TICKETBOUND_OK", "TICKETBOUND_PORT"]
        );
    }

    #[test]
    fn a_malformed_value_is_not_repeated_in_the_error() {
        let mut env = EnvReader::from_map([("TICKETBOUND_TIMEOUT_SECS", "s3cr3t-pasted-here")]);
        let _: Option<u64> = env.required("TICKETBOUND_TIMEOUT_SECS", "seconds");
        let err = env.finish().unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
        assert!(!format!("{err:?}").contains("s3cr3t"));
    }
}
