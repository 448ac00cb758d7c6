//! `grant-expire`: a grant's credential dies on time, every time.
//!
//! Whichever of these arrives first revokes; the rest find the work done:
//! 1. the grant's **EventBridge Scheduler** one-time schedule fires at its not-after
//!    time (`{"grant_id": …, "trigger": "schedule"}`): the precise path;
//! 2. the grants stream carries a **REMOVE made by DynamoDB TTL** of the grant's expiry
//!    trigger (`userIdentity: {type: Service, principalId: dynamodb.amazonaws.com}`):
//!    the backstop, since TTL may lag by days. A REMOVE by anyone else is not a signal;
//! 3. the stream carries the grant's move to **Revoking** (the intake applied a
//!    withdrawal or closure of its ticket);
//! 4. a **sweep** (`{"sweep": true}` on a schedule) finds Active grants past their
//!    not-after time that every other path missed, and Revoking ones still waiting.
//!
//! Revocation kills the credential at the target (logins refused, open sessions
//! terminated), deletes the secret and the schedule, then records the grant Revoked
//! with the trigger that came first. Until the target confirms, the grant stays
//! Revoking and the trigger is retried: a grant is never recorded Revoked while its
//! credential still works.
//!
//! **Loud once.** A failed revocation is audited (and so told to the ticket) at its
//! first failure and once more if it escalates (failing for longer than
//! `TICKETBOUND_REVOCATION_ESCALATE_AFTER_SECS`: metric `RevocationEscalations`), and
//! at its success with the count of failed attempts; every failure is counted
//! (`RevocationFailures`) and kept in the grant's retry record. The retry is a
//! one-time schedule of its own with backoff (up to
//! `TICKETBOUND_REVOCATION_RETRY_MAX_SECS`), so the stream record or schedule that
//! asked is answered: a grantee whose revocation fails can neither flood the trail
//! and the ticket nor hold the shard that carries everyone else's revocations. The
//! sweep picks up any Revoking grant whose retry was lost.

pub mod config;
mod revoke;

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};
use ticketbound_domain::{ExpiryTrigger, GrantId, GrantState};
use ticketbound_enforce::Enforcer;
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_store::Store;
use ticketbound_store::stream::{StreamItem, classify, grant_from_image};

pub use config::ExpireConfig;
pub use revoke::{ExpireError, RevokeOutcome, revoke_grant};

/// Component name in audit events and metrics.
pub const COMPONENT: &str = "grant-expire";

#[derive(Debug)]
pub struct Deps {
    pub store: Store,
    pub enforcer: Enforcer,
    pub config: ExpireConfig,
}

impl Deps {
    pub fn from_env(sdk: &SdkConfig, env: EnvReader) -> Result<Self, ConfigError> {
        let config = ExpireConfig::from_env(env)?;
        Ok(Self {
            store: Store::new(aws_sdk_dynamodb::Client::new(sdk), config.store.clone()),
            enforcer: Enforcer::connect(
                sdk,
                config.enforce.clone(),
                config.schedules.clone(),
                config.secret_cache_ttl,
            ),
            config,
        })
    }
}

/// The schedule's payload (the Scheduler target's `Input`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledExpiry {
    pub grant_id: GrantId,
    #[serde(default)]
    pub trigger: Option<String>,
}

/// What the expiry function is invoked with.
#[derive(Debug, Clone)]
pub enum ExpireEvent {
    Stream(Box<Event>),
    Scheduled(ScheduledExpiry),
    Sweep,
}

impl<'de> Deserialize<'de> for ExpireEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("Records").is_some() {
            serde_json::from_value(value)
                .map(|e| Self::Stream(Box::new(e)))
                .map_err(|e| D::Error::custom(format!("not a DynamoDB stream event: {e}")))
        } else if value.get("grant_id").is_some() {
            serde_json::from_value(value)
                .map(Self::Scheduled)
                .map_err(|e| D::Error::custom(format!("not an expiry schedule's payload: {e}")))
        } else if value.get("sweep").and_then(serde_json::Value::as_bool) == Some(true) {
            Ok(Self::Sweep)
        } else {
            Err(D::Error::custom(
                "expected a DynamoDB stream event, {\"grant_id\": …} or {\"sweep\": true}",
            ))
        }
    }
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpireResponse {
    pub revoked: Vec<String>,
    pub already_done: usize,
    pub failed: Vec<String>,
    /// Failed at the target, retry scheduled (told once, not held).
    pub deferred: Vec<String>,
    /// Stream invocations only: what Lambda must deliver again.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<serde_json::Value>,
}

/// The revocation a stream record asks for, if any.
fn trigger_of(record: &EventRecord) -> Option<(GrantId, ExpiryTriggerOrEnd)> {
    match (record.event_name.as_str(), classify(&record.change.keys)) {
        ("REMOVE", StreamItem::ExpiryTrigger(id)) => {
            let by_ttl = record.user_identity.as_ref().is_some_and(|u| {
                u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com"
            });
            by_ttl.then_some((id, ExpiryTriggerOrEnd::Expiry(ExpiryTrigger::TtlBackstop)))
        }
        ("MODIFY", StreamItem::Grant(id)) => {
            let grant = grant_from_image(record.change.new_image.clone()).ok()?;
            (grant.state == GrantState::Revoking).then_some((id, ExpiryTriggerOrEnd::AlreadyEnding))
        }
        _ => None,
    }
}

/// Why a grant is being revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryTriggerOrEnd {
    Expiry(ExpiryTrigger),
    /// The grant is already Revoking (its ticket ended): finish the job.
    AlreadyEnding,
    /// A retry schedule of a failed revocation: finish the job, also for a grant
    /// already recorded ended when its retry record says the target may still hold
    /// something (a credential issued, or set by a rotation, after it ended).
    Retry,
}

async fn revoke_many(
    deps: &Deps,
    work: Vec<(GrantId, ExpiryTriggerOrEnd, Option<String>)>,
) -> ExpireResponse {
    let now = chrono::Utc::now();
    let results: Vec<_> =
        futures::stream::iter(work)
            .map(|(id, trigger, item)| async move {
                (id, item, revoke_grant(deps, id, trigger, now).await)
            })
            .buffer_unordered(deps.config.concurrency)
            .collect()
            .await;
    let mut response = ExpireResponse::default();
    for (id, item, result) in results {
        match result {
            Ok(RevokeOutcome::Now) => response.revoked.push(id.to_string()),
            Ok(RevokeOutcome::Deferred { .. }) => response.deferred.push(id.to_string()),
            Ok(_) => response.already_done += 1,
            Err(e) => {
                tracing::error!(grant_id = %id, error = %ticketbound_runtime::error_chain(&e), retryable = e.is_retryable(), "revocation failed");
                response.failed.push(id.to_string());
                if let Some(seq) = item {
                    response
                        .batch_item_failures
                        .push(serde_json::json!({ "itemIdentifier": seq }));
                }
            }
        }
    }
    let failures = response.failed.len() + response.deferred.len();
    if failures > 0 {
        ticketbound_runtime::metrics::count(COMPONENT, "RevocationFailures", failures as u64);
    }
    response
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(
        "revocation of grant {0} failed; Scheduler retries, then sends it to its dead-letter queue"
    )]
    Scheduled(String),
    #[error("the sweep could not list overdue grants")]
    Sweep(#[source] ticketbound_store::StoreError),
}

/// Handles one invocation.
pub async fn handle(deps: &Deps, event: ExpireEvent) -> Result<ExpireResponse, HandleError> {
    match event {
        ExpireEvent::Scheduled(payload) => {
            let response = revoke_many(
                deps,
                vec![(
                    payload.grant_id,
                    match payload.trigger.as_deref() {
                        Some("retry") => ExpiryTriggerOrEnd::Retry,
                        _ => ExpiryTriggerOrEnd::Expiry(ExpiryTrigger::Schedule),
                    },
                    None,
                )],
            )
            .await;
            if response.failed.is_empty() {
                Ok(response)
            } else {
                Err(HandleError::Scheduled(payload.grant_id.to_string()))
            }
        }
        ExpireEvent::Stream(event) => {
            let work = event
                .records
                .iter()
                .filter_map(|r| {
                    trigger_of(r).map(|(id, t)| (id, t, r.change.sequence_number.clone()))
                })
                .collect();
            Ok(revoke_many(deps, work).await)
        }
        ExpireEvent::Sweep => {
            let now = chrono::Utc::now();
            let mut work = Vec::new();
            for state in [GrantState::Active, GrantState::Provisioning] {
                for g in deps
                    .store
                    .grants_due(state, Some(now))
                    .await
                    .map_err(HandleError::Sweep)?
                {
                    work.push((g.id, ExpiryTriggerOrEnd::Expiry(ExpiryTrigger::Sweep), None));
                }
            }
            for g in deps
                .store
                .grants_due(GrantState::Revoking, None)
                .await
                .map_err(HandleError::Sweep)?
            {
                work.push((g.id, ExpiryTriggerOrEnd::AlreadyEnding, None));
            }
            Ok(revoke_many(deps, work).await)
        }
    }
}

/// A stream response in the shape Lambda reads (`batchItemFailures`).
pub fn stream_response(response: &ExpireResponse) -> DynamoDbEventResponse {
    let mut out = DynamoDbEventResponse::default();
    for f in &response.batch_item_failures {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = f["itemIdentifier"].as_str().map(str::to_owned);
        out.batch_item_failures.push(failure);
    }
    out
}

impl From<HandleError> for lambda_runtime::Diagnostic {
    fn from(e: HandleError) -> Self {
        Self {
            error_type: match e {
                HandleError::Scheduled(_) => "RevocationFailed",
                HandleError::Sweep(_) => "SweepFailed",
            }
            .to_owned(),
            error_message: ticketbound_runtime::error_chain(&e),
        }
    }
}
