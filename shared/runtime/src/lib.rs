//! What every ticketbound process does at start-up, in one place: tracing set up the
//! way Lambda asks for it, typed configuration from environment variables, the one
//! AWS SDK configuration, the type that keeps secret values out of logs, and the
//! names and meanings of every `TICKETBOUND_*` variable ([`vars`]).
//!
//! This crate knows nothing of the domain or of any one AWS service; functions and
//! the CLI depend on it, never the other way round. Every Lambda links it, so it holds
//! only what production needs: nothing of the local stack (its description, the moto
//! launcher, the AWS call meter are `ticketbound-local`'s, which the local stack plugs
//! in through the SDK configuration's HTTP client, a seam the SDK already has).

pub mod aws;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod secret;
pub mod vars;

pub use config::{CommaList, ConfigError, EnvReader, VarProblem, variables_read};
pub use logging::{LogFormat, LogSettings, LoggingError};
pub use secret::{ExposeSecret, SecretString};

/// An error and its chain of causes on one line, outermost first (for records and
/// logs; the errors of this project never carry secret values).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}
