//! `grant-provision`: an Approved grant becomes a real credential.
//!
//! Triggered by the grants table's stream (INSERT of an Approved grant; the event
//! source mapping filters on it), with `ReportBatchItemFailures`, so one grant that
//! fails never blocks the others on its shard. For each grant:
//!
//! 1. Approved → Provisioning, conditional on the version read (audited).
//! 2. The target's allow-list is checked before anything is created.
//! 3. The credential's secret is created first (so a retry reuses its password),
//!    with its tags, KMS key and resource policy; then the credential at the target;
//!    then rotation; then the one-time expiry schedule.
//! 4. Provisioning → Active with the secret's ARN and the credential's name, never
//!    its value (audited).
//!
//! Any step may fail; the grant then stays in Provisioning and the stream redelivers,
//! and each step finds what an earlier attempt made instead of making it twice. After
//! `TICKETBOUND_MAX_PROVISIONING_ATTEMPTS`, or at once for a failure no retry can fix,
//! the grant becomes Failed and everything made for it is removed.

pub mod config;
mod provision;

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use ticketbound_enforce::Enforcer;
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_store::Store;
use ticketbound_store::stream::{StreamItem, classify};

pub use config::{ProvisionConfig, TargetConfig};
pub use provision::{ProvisionError, Provisioned, provision_grant};
pub use ticketbound_enforce::secret_name;

/// Component name in audit events.
pub const COMPONENT: &str = "grant-provision";

/// What the handler needs, built once per Lambda instance.
#[derive(Debug)]
pub struct Deps {
    pub store: Store,
    pub registry: ticketbound_store::Registry,
    pub enforcer: Enforcer,
    pub config: ProvisionConfig,
}

impl Deps {
    pub fn from_env(sdk: &SdkConfig, env: EnvReader) -> Result<Self, ConfigError> {
        let config = ProvisionConfig::from_env(env)?;
        Ok(Self {
            store: Store::new(aws_sdk_dynamodb::Client::new(sdk), config.store.clone()),
            registry: ticketbound_store::Registry::new(
                aws_sdk_dynamodb::Client::new(sdk),
                config.identities_table.clone(),
            ),
            enforcer: Enforcer::connect(
                sdk,
                config.enforce.clone(),
                config.schedules.clone(),
                std::time::Duration::from_secs(300),
            ),
            config,
        })
    }
}

/// Handles one batch of stream records. A record whose grant could not be finished
/// and may succeed later is reported as a batch item failure (Lambda retries from
/// it); everything else is done, or needs no doing.
pub async fn handle(
    deps: &Deps,
    event: Event,
) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
    let mut response = DynamoDbEventResponse::default();
    for record in event.records {
        if record.event_name != "INSERT" {
            continue;
        }
        let StreamItem::Grant(grant_id) = classify(&record.change.keys) else {
            continue;
        };
        match provision_grant(deps, grant_id, chrono::Utc::now()).await {
            Ok(outcome) => {
                tracing::info!(grant_id = %grant_id, outcome = ?outcome, "provisioning handled")
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(grant_id = %grant_id, error = %ticketbound_runtime::error_chain(&e), "provisioning will be retried");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                // The other grants go on: Lambda redelivers from the failed record, and
                // whatever after it was done already is found done.
            }
            Err(e) => {
                tracing::error!(grant_id = %grant_id, error = %ticketbound_runtime::error_chain(&e), "provisioning failed for good");
            }
        }
    }
    Ok(response)
}
