//! Typed configuration from environment variables.
//!
//! [`EnvReader`] reads and parses each variable a process needs and keeps going after
//! a problem, so that one start-up error names every missing or malformed variable.
//! Problems name the variable and what was expected, never the value: a malformed
//! value may be a secret pasted into the wrong variable.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// What is wrong with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarProblem {
    Missing,
    Malformed { expected: String },
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
}

impl EnvReader {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        Self {
            source: None,
            problems: Vec::new(),
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
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
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
    fn a_malformed_value_is_not_repeated_in_the_error() {
        let mut env = EnvReader::from_map([("TICKETBOUND_TIMEOUT_SECS", "s3cr3t-pasted-here")]);
        let _: Option<u64> = env.required("TICKETBOUND_TIMEOUT_SECS", "seconds");
        let err = env.finish().unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
        assert!(!format!("{err:?}").contains("s3cr3t"));
    }
}
