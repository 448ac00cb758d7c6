//! Tracing set up as Lambda asks: `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`) and
//! `AWS_LAMBDA_LOG_LEVEL` (`TRACE` … `FATAL`), both set from Terraform through the
//! function's logging config. `RUST_LOG` is honoured when Lambda's level is absent, for
//! local runs.

use std::str::FromStr;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::config::{ConfigError, EnvReader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl FromStr for LogFormat {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err(()),
        }
    }
}

/// Lambda's level names, mapped onto tracing's (FATAL has no equivalent: ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LambdaLevel(&'static str);

impl FromStr for LambdaLevel {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(Self(match s.to_ascii_uppercase().as_str() {
            "TRACE" => "trace",
            "DEBUG" => "debug",
            "INFO" => "info",
            "WARN" => "warn",
            "ERROR" | "FATAL" => "error",
            _ => return Err(()),
        }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A level, or targets with levels: `info`, `ticketbound_store=debug,info`. (Not
    /// `EnvFilter`'s span and field syntax: that needs a regex engine in every package,
    /// which costs start-up time and size for a filter nobody sets on a Lambda.)
    pub filter: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the log filter is not valid")]
    Filter(#[source] tracing_subscriber::filter::ParseError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

impl LogSettings {
    /// Reads the Lambda log variables; text at `info` when they are absent.
    pub fn from_env(env: &mut EnvReader) -> Self {
        let format = env.or_default("AWS_LAMBDA_LOG_FORMAT", "JSON or Text", LogFormat::Text);
        let level: Option<LambdaLevel> = env.optional(
            "AWS_LAMBDA_LOG_LEVEL",
            "one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
        );
        let filter = match level {
            Some(LambdaLevel(level)) => level.to_owned(),
            None => env.or_default("RUST_LOG", "a tracing filter", "info".to_owned()),
        };
        Self { format, filter }
    }

    /// Builds a subscriber writing to `writer`, without installing it (tests capture
    /// output this way).
    pub fn subscriber<W>(
        &self,
        writer: W,
    ) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, LoggingError>
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        let filter: Targets = self.filter.parse().map_err(LoggingError::Filter)?;
        let builder = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(writer)
            .with_target(true);
        Ok(match self.format {
            // Lambda adds its own timestamp and request id to each line.
            LogFormat::Json => Box::new(
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .without_time()
                    .finish()
                    .with(filter),
            ),
            LogFormat::Text => Box::new(
                builder
                    .with_ansi(false)
                    .without_time()
                    .finish()
                    .with(filter),
            ),
        })
    }
}

/// Installs the global subscriber for a Lambda function (stdout, which Lambda sends
/// to CloudWatch) from the environment.
pub fn init_lambda_tracing() -> Result<(), LoggingError> {
    let mut env = EnvReader::from_process();
    let settings = LogSettings::from_env(&mut env);
    env.finish()?;
    install(settings.subscriber(std::io::stdout)?)
}

/// Installs the global subscriber for the CLI: stderr, so that stdout stays for output.
pub fn init_cli_tracing(default_filter: &str) -> Result<(), LoggingError> {
    let mut env = EnvReader::from_process();
    let mut settings = LogSettings::from_env(&mut env);
    env.finish()?;
    if std::env::var_os("RUST_LOG").is_none() && std::env::var_os("AWS_LAMBDA_LOG_LEVEL").is_none()
    {
        default_filter.clone_into(&mut settings.filter);
    }
    install(settings.subscriber(std::io::stderr)?)
}

fn install(subscriber: Box<dyn tracing::Subscriber + Send + Sync>) -> Result<(), LoggingError> {
    use tracing_subscriber::util::SubscriberInitExt;
    subscriber
        .try_init()
        .map_err(LoggingError::AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_variables_choose_format_and_level() {
        let mut env = EnvReader::from_map([
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "FATAL"),
        ]);
        let s = LogSettings::from_env(&mut env);
        assert!(env.finish().is_ok());
        assert_eq!(
            s,
            LogSettings {
                format: LogFormat::Json,
                filter: "error".into()
            }
        );

        let mut env = EnvReader::from_map([("AWS_LAMBDA_LOG_FORMAT", "xml")]);
        let _ = LogSettings::from_env(&mut env);
        let err = env.finish().unwrap_err();
        assert!(
            err.to_string()
                .contains("AWS_LAMBDA_LOG_FORMAT is malformed")
        );
    }

    /// What reaches the writer, as text.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_filter_keeps_levels_per_target() {
        let out = Captured::default();
        let writer = out.clone();
        let settings = LogSettings {
            format: LogFormat::Json,
            filter: "noisy=error,info".into(),
        };
        let subscriber = settings
            .subscriber(move || writer.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "ticketbound", "kept");
            tracing::debug!(target: "ticketbound", "below the level");
            tracing::warn!(target: "noisy", "below its target's level");
            tracing::error!(target: "noisy", "kept too");
        });
        let text = String::from_utf8(out.0.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert!(text.contains("\"message\":\"kept\""), "{text}");
        assert!(text.contains("kept too"), "{text}");
        assert!(!text.contains("below"), "{text}");

        let bad = LogSettings {
            format: LogFormat::Text,
            filter: "info,=x=y".into(),
        };
        assert!(matches!(
            bad.subscriber(std::io::sink),
            Err(LoggingError::Filter(_))
        ));
    }
}
