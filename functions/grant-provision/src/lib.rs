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
//! A grant whose ticket's change window has not begun is not issued: it stays
//! Approved, a one-time schedule (`tb-start-<grant id>`) at the window's start
//! invokes this function again with `{"grant_id": …, "trigger": "window_start"}`, and
//! the deferral is audited once (and told to the ticket); a start within 30 s is
//! waited for in the invocation instead. A withdrawal or expiry before the start ends
//! the grant with nothing made; the schedule then finds it ended. A start that fails
//! and may succeed later is retried by a schedule of its own (`…-r<n>`), since
//! nothing else would: Scheduler invokes Lambda asynchronously.
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
use serde::{Deserialize, Deserializer, Serialize};
use ticketbound_enforce::Enforcer;
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_store::Store;
use ticketbound_store::stream::{StreamItem, classify};

pub use config::{ProvisionConfig, TargetConfig};
pub use provision::{ProvisionError, Provisioned, provision_grant};
pub use ticketbound_enforce::secret_name;
pub use ticketbound_schedule::{WindowStartEvent, WindowStartTrigger, start_schedule_name};

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

/// What the provisioner is invoked with: a batch of the grants stream, or a change
/// window's start schedule.
#[derive(Debug, Clone)]
pub enum ProvisionEvent {
    Stream(Box<Event>),
    WindowStart(WindowStartEvent),
}

impl<'de> Deserialize<'de> for ProvisionEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("Records").is_some() {
            serde_json::from_value(value)
                .map(|e| Self::Stream(Box::new(e)))
                .map_err(|e| D::Error::custom(format!("not a DynamoDB stream event: {e}")))
        } else {
            serde_json::from_value(value)
                .map(Self::WindowStart)
                .map_err(|e| {
                    D::Error::custom(format!(
                        "expected a DynamoDB stream event or a start schedule's \
                         {{\"grant_id\": …, \"trigger\": \"window_start\"}}: {e}"
                    ))
                })
        }
    }
}

/// The answer to an invocation: the batch's failures, or what became of the grant a
/// start schedule named.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ProvisionResponse {
    Stream(DynamoDbEventResponse),
    WindowStart { grant_id: String, outcome: String },
}

/// How many times a start schedule's provisioning is retried, each by a schedule of
/// its own (`tb-start-<grant id>-r<n>`), before it is given up to the dead-letter
/// queue: Scheduler invokes Lambda asynchronously, so an error the function returns is
/// retried twice by Lambda and then dropped; the stream, which would redeliver, is not
/// there to retry.
pub const MAX_START_ATTEMPTS: u32 = 12;

/// The wait before retry `attempt` of a start: a minute doubling, 15 minutes at most
/// (about two and a half hours over the twelve). Never under a minute: Scheduler fires
/// within the minute after a schedule's time, and one made for a moment later may
/// never fire at all.
fn start_retry_wait(attempt: u32) -> chrono::Duration {
    let doublings = attempt.saturating_sub(1).min(4);
    chrono::Duration::seconds((60_i64 << doublings).min(900))
}

/// What became of a start schedule's invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowStarted {
    /// Provisioning ran (or found nothing to do): its outcome.
    Done(Provisioned),
    /// It could not finish now, or came before the start: a schedule of its own
    /// (`name`) provisions again at `at`.
    RetryScheduled {
        name: String,
        at: chrono::DateTime<chrono::Utc>,
    },
}

/// Handles either kind of invocation.
pub async fn handle_event(
    deps: &Deps,
    event: ProvisionEvent,
) -> Result<ProvisionResponse, lambda_runtime::Error> {
    match event {
        ProvisionEvent::Stream(batch) => handle(deps, *batch).await.map(ProvisionResponse::Stream),
        ProvisionEvent::WindowStart(start) => {
            let outcome = handle_window_start(deps, &start).await.inspect_err(|e| {
                // Lambda retries twice, then the function's dead-letter queue has it.
                ticketbound_runtime::metrics::count(COMPONENT, "WindowStartFailed", 1);
                tracing::error!(grant_id = %start.grant_id, attempt = start.attempt, error = %ticketbound_runtime::error_chain(e), "change window start failed");
            })?;
            Ok(ProvisionResponse::WindowStart {
                grant_id: start.grant_id.to_string(),
                outcome: format!("{outcome:?}"),
            })
        }
    }
}

/// A change window's start schedule fired: provision the grant it names, as the
/// stream would have. Nothing is issued before the start: invoked more than a moment
/// early (by anyone allowed to invoke the function), it only makes sure a schedule
/// fires at the start. A failure that may pass is retried by a schedule of its own;
/// one that cannot, or the last retry's, is returned (and reaches the dead-letter
/// queue).
pub async fn handle_window_start(
    deps: &Deps,
    event: &WindowStartEvent,
) -> Result<WindowStarted, ProvisionError> {
    let retry = |at: chrono::DateTime<chrono::Utc>| async move {
        let attempt = event.attempt + 1;
        let name = deps
            .enforcer
            .schedules
            .ensure_start(event.grant_id, at, attempt)
            .await
            .map_err(|e| ProvisionError::Enforce(e.into()))?;
        tracing::warn!(grant_id = %event.grant_id, attempt, at = %at, schedule = %name, "change window start: provisioning again later");
        Ok(WindowStarted::RetryScheduled { name, at })
    };
    match provision_grant(deps, event.grant_id, chrono::Utc::now()).await {
        Ok(Provisioned::Deferred { until }) if event.attempt < MAX_START_ATTEMPTS => {
            tracing::warn!(grant_id = %event.grant_id, until = %until, "invoked before the change window's start: nothing issued");
            retry(until).await
        }
        Ok(outcome) => Ok(WindowStarted::Done(outcome)),
        Err(e) if e.is_retryable() && event.attempt < MAX_START_ATTEMPTS => {
            tracing::warn!(grant_id = %event.grant_id, error = %ticketbound_runtime::error_chain(&e), "change window start failed; will retry");
            retry(chrono::Utc::now() + start_retry_wait(event.attempt + 1)).await
        }
        Err(e) => Err(e),
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
