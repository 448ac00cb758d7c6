//! `itsm-intake`: the one door through which an approval enters ticketbound.
//!
//! It accepts ITSM webhooks over HTTP (a Lambda Function URL or an API Gateway HTTP
//! API, payload format 2.0) from Jira Service Management, ServiceNow and generic
//! senders, and EventBridge events from a custom bus. Each approval is authenticated,
//! interpreted, validated (every field problem at once), evaluated against Cedar
//! policies, and recorded: an Approved grant (or a Rejected one, with the policy's
//! reasons) with its audit events and delivery record in one transaction. A withdrawn
//! or closed ticket moves its live grants toward revocation.
//!
//! Delivery is at least once: a repeated delivery, or the same approval delivered
//! under another id, answers 200 with the grant it already produced and writes
//! nothing. Every answer other than 2xx leaves DynamoDB unchanged.

pub mod config;
mod event;
mod http_api;
mod intake;
mod readback;

use aws_config::SdkConfig;
use ticketbound_policy::{PendingEngine, PolicyEngine, PolicyError};
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_secrets::SecretCache;
use ticketbound_store::{Registry, Store};

pub use config::IntakeConfig;
pub use event::{EventOutcome, IntakeEvent, IntakeResponse};
pub use intake::{IntakeError, Outcome, Prepared, grant_id_for, prepare};

/// Component name in audit events.
pub const COMPONENT: &str = "itsm-intake";
/// The largest body accepted (bigger ones get 413).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the handler needs, built once per Lambda instance.
#[derive(Debug)]
pub struct Deps {
    pub store: Store,
    pub registry: Registry,
    /// The policies, possibly still loading (see [`PendingEngine`]).
    pub policy: PendingEngine,
    pub secrets: SecretCache,
    pub config: IntakeConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the policies could not be loaded")]
    Policy(#[from] PolicyError),
}

impl Deps {
    /// Reads the configuration from `env` and builds the clients from `sdk`.
    pub fn from_env(sdk: &SdkConfig, env: EnvReader) -> Result<Self, StartupError> {
        let config = IntakeConfig::from_env(env)?;
        // An operator's policies are validated before the intake serves (a broken set
        // fails the start); the shipped ones, validated by the policy crate's tests,
        // are parsed beside the first approval's network calls.
        let policy = match &config.policy_dir {
            Some(dir) => PendingEngine::ready(PolicyEngine::from_dir(dir)?),
            None => PendingEngine::defaults_in_background(),
        };
        Ok(Self {
            store: Store::new(aws_sdk_dynamodb::Client::new(sdk), config.store.clone()),
            registry: Registry::new(
                aws_sdk_dynamodb::Client::new(sdk),
                config.identities_table.clone(),
            ),
            policy,
            secrets: SecretCache::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                config.secret_cache_ttl,
                config.secret_min_refresh,
            ),
            config,
        })
    }
}

/// Handles one Lambda event.
pub async fn handle(deps: &Deps, event: IntakeEvent) -> Result<IntakeResponse, IntakeError> {
    match event {
        IntakeEvent::Http(request) => {
            Ok(IntakeResponse::Http(http_api::handle(deps, *request).await))
        }
        IntakeEvent::EventBridge(event) => event::handle_eventbridge(deps, *event)
            .await
            .map(IntakeResponse::Event),
    }
}

/// The stable error type Lambda reports for a failed invocation.
impl From<IntakeError> for lambda_runtime::Diagnostic {
    fn from(e: IntakeError) -> Self {
        let error_type = match &e {
            IntakeError::Store(_) => "StoreFailed",
            IntakeError::SecretsManager(_) => "SecretUnavailable",
            IntakeError::Policy(_) => "PolicyFailed",
            IntakeError::Advance(_) => "GrantNotAdvanced",
            IntakeError::Registry(_) => "RegistryUnavailable",
            IntakeError::ReadBack(_) => "ItsmReadFailed",
        };
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        Self {
            error_type: error_type.to_owned(),
            error_message: message,
        }
    }
}
