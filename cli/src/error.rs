use ticketbound_local::stack::LocalStackError;
use ticketbound_store::StoreError;

use ticketbound_local::process::LocalError;

/// Everything the CLI can fail with; each keeps its cause for the report.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    LocalStack(#[from] LocalStackError),
    #[error("the store refused or failed")]
    Store(#[from] StoreError),
    #[error("the demo went wrong: {0}")]
    Demo(String),
    #[error("a function could not start")]
    Startup(#[source] Box<itsm_intake::StartupError>),
    #[error("the intake failed")]
    Intake(#[source] itsm_intake::IntakeError),
    #[error("not a usable event: {0}")]
    Event(String),
    #[error(transparent)]
    Config(ticketbound_runtime::ConfigError),
    #[error("no such {0}")]
    NotFound(String),
    #[error("the evidence does not hold: {0}")]
    Evidence(String),
    #[error("the check failed: {0}")]
    Check(String),
    #[error("the rotation did not complete")]
    Rotation(#[source] Box<ticketbound_local::rotation::EmulatorError<secret_rotate::RotateError>>),
    #[error("the function failed")]
    Function(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("an event source mapping's filter criteria are not valid JSON")]
    Filter(#[source] serde_json::Error),
}
