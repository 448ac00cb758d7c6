//! Revocation retries: one record per grant whose revocation keeps failing, beside the
//! grant (`pk = GRANT#<id>`, `sk = REVOCATION_RETRY`). It is operational state, not
//! evidence: it decides what is told (the first failure, one escalation, the success)
//! so that a failing revocation is loud once instead of at every retry, and how long
//! the next retry waits. The audit trail keeps what was told.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketbound_domain::{Grant, GrantId};

use crate::items::{self, grant_pk};
use crate::{Store, StoreError};

const SK: &str = "REVOCATION_RETRY";

/// Where a failing revocation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRetry {
    pub grant_id: GrantId,
    /// Failed attempts so far.
    pub attempts: u32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    /// The last failure's reason (never a secret: error chains carry none).
    pub last_reason: String,
    /// Set once, by the attempt that escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<DateTime<Utc>>,
    /// When the one pending retry schedule fires: a failure before then (a sweep, a
    /// redelivery) schedules none, so retries never multiply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Which attempt undertook to tell the first failure, and the escalation, and
    /// when; `*_told` once it did. A teller that died is replaced after a minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_claim: Option<(String, DateTime<Utc>)>,
    #[serde(default)]
    pub first_told: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_claim: Option<(String, DateTime<Utc>)>,
    #[serde(default)]
    pub escalation_told: bool,
    /// The attempt that wrote this record (each draws its own).
    #[serde(default)]
    pub attempt_id: String,
}

#[derive(Serialize, Deserialize)]
struct RetryItem {
    pk: String,
    sk: String,
    /// TTL: gone with the grant record at the latest.
    expires_at: i64,
    #[serde(flatten)]
    retry: RevocationRetry,
}

/// What recording a failure decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFailure {
    pub retry: RevocationRetry,
    /// This attempt is to tell the first failure (nobody has yet).
    pub first: bool,
    /// This attempt is to tell the escalation (the failure is older than the limit,
    /// and nobody has told it yet).
    pub escalated: bool,
    /// This attempt is to schedule the next retry, at this time.
    pub schedule_at: Option<DateTime<Utc>>,
}

/// What was told, for [`Store::mark_told`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    FirstFailure,
    Escalation,
}

/// How early a retry may run and still count as the one that was pending.
const RETRY_SLACK: chrono::Duration = chrono::Duration::seconds(2);

/// How long an undertaking to tell may stand before another attempt takes it over.
const CLAIM_STANDS: chrono::Duration = chrono::Duration::seconds(60);

fn claim_open(claim: &Option<(String, DateTime<Utc>)>, told: bool, at: DateTime<Utc>) -> bool {
    !told && claim.as_ref().is_none_or(|(_, t)| at - *t >= CLAIM_STANDS)
}

impl Store {
    /// The retry record of grant `id`, if its revocation has failed.
    pub async fn revocation_retry(
        &self,
        id: GrantId,
    ) -> Result<Option<RevocationRetry>, StoreError> {
        Ok(self
            .read_item::<RetryItem>(grant_pk(id), SK)
            .await?
            .map(|i| i.retry))
    }

    /// Counts one more failed revocation of `grant` at `at` and decides, for this
    /// attempt alone, what it is to tell and whether it schedules the next retry
    /// (`wait_after(attempts)` from now). Concurrent attempts (a schedule, the stream and the sweep at
    /// once) each count, but only one undertakes each telling and only one schedules:
    /// the record is written only at the count it was read at, with this attempt's id.
    pub async fn record_revocation_failure(
        &self,
        grant: &Grant,
        reason: &str,
        at: DateTime<Utc>,
        escalate_after: chrono::Duration,
        wait_after: impl Fn(u32) -> chrono::Duration,
    ) -> Result<RecordedFailure, StoreError> {
        let attempt_id = ulid::Ulid::new().to_string();
        for _ in 0..10 {
            let previous = self.revocation_retry(grant.id).await?;
            let mut retry = previous.clone().unwrap_or(RevocationRetry {
                grant_id: grant.id,
                attempts: 0,
                first_failed_at: at,
                last_failed_at: at,
                last_reason: String::new(),
                escalated_at: None,
                next_retry_at: None,
                first_claim: None,
                first_told: false,
                escalation_claim: None,
                escalation_told: false,
                attempt_id: String::new(),
            });
            retry.attempts += 1;
            retry.last_failed_at = at;
            retry.last_reason = reason.to_owned();
            retry.attempt_id = attempt_id.clone();
            let first = claim_open(&retry.first_claim, retry.first_told, at);
            if first {
                retry.first_claim = Some((attempt_id.clone(), at));
            }
            let escalated = at - retry.first_failed_at >= escalate_after
                && claim_open(&retry.escalation_claim, retry.escalation_told, at);
            if escalated {
                retry.escalated_at.get_or_insert(at);
                retry.escalation_claim = Some((attempt_id.clone(), at));
            }
            // Due with a little slack: the schedule that fires it may run on a
            // clock a moment behind the one that set it.
            let schedule_at = retry
                .next_retry_at
                .is_none_or(|next| next <= at + RETRY_SLACK)
                .then(|| at + wait_after(retry.attempts));
            if let Some(next) = schedule_at {
                retry.next_retry_at = Some(next);
            }
            let item = serde_dynamo::to_item(RetryItem {
                pk: grant_pk(grant.id),
                sk: SK.to_owned(),
                expires_at: (grant.not_after() + self.settings.retention).timestamp(),
                retry: retry.clone(),
            })
            .map_err(StoreError::Mapping)?;
            let mut put = self
                .client
                .put_item()
                .table_name(&self.settings.tables.grants)
                .set_item(Some(item));
            put = match &previous {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(p) => put
                    .condition_expression("attempts = :n")
                    .expression_attribute_values(":n", AttributeValue::N(p.attempts.to_string())),
            };
            let decided = RecordedFailure {
                retry: retry.clone(),
                first,
                escalated,
                schedule_at,
            };
            match put.send().await {
                Ok(_) => return Ok(decided),
                Err(SdkError::ServiceError(e))
                    if e.err().is_conditional_check_failed_exception() =>
                {
                    // Another attempt counted first, or this one's answer was lost:
                    // the record names the attempt that wrote it.
                    if self
                        .revocation_retry(grant.id)
                        .await?
                        .is_some_and(|r| r.attempt_id == attempt_id)
                    {
                        return Ok(decided);
                    }
                }
                Err(e) => return Err(StoreError::dynamo("PutItem", e)),
            }
        }
        Err(StoreError::StaleVersion {
            id: grant.id,
            expected: 0,
        })
    }

    /// Records that `what` was told (audited, and so on its way to the ticket).
    pub async fn mark_told(&self, id: GrantId, what: Told) -> Result<(), StoreError> {
        let field = match what {
            Told::FirstFailure => "first_told",
            Told::Escalation => "escalation_told",
        };
        self.client
            .update_item()
            .table_name(&self.settings.tables.grants)
            .set_key(Some(items::key(grant_pk(id), SK)))
            .update_expression("SET #f = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#f", field)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// Removes grant `id`'s retry record once its revocation succeeded.
    pub async fn clear_revocation_retry(&self, id: GrantId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.settings.tables.grants)
            .set_key(Some(items::key(grant_pk(id), SK)))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }
}
