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
    /// This was the first failure: tell it.
    pub first: bool,
    /// This attempt escalated (it found the failure older than the limit first).
    pub escalated: bool,
}

impl Store {
    /// The retry record of grant `id`, if its revocation has failed.
    pub async fn revocation_retry(
        &self,
        id: GrantId,
    ) -> Result<Option<RevocationRetry>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.settings.tables.grants)
            .set_key(Some(items::key(grant_pk(id), SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item
            .map(|item| {
                serde_dynamo::from_item::<_, RetryItem>(item)
                    .map(|i| i.retry)
                    .map_err(|source| StoreError::Malformed {
                        key: format!("{}/{SK}", grant_pk(id)),
                        source,
                    })
            })
            .transpose()
    }

    /// Counts one more failed revocation of `grant` at `at`. Concurrent attempts
    /// (a schedule, the stream and the sweep at once) each count, and exactly one of
    /// them is told it was the first, and exactly one that it escalated, once the
    /// first failure is older than `escalate_after`: the record is written only at
    /// the count it was read at.
    pub async fn record_revocation_failure(
        &self,
        grant: &Grant,
        reason: &str,
        at: DateTime<Utc>,
        escalate_after: chrono::Duration,
    ) -> Result<RecordedFailure, StoreError> {
        for _ in 0..10 {
            let previous = self.revocation_retry(grant.id).await?;
            let mut retry = previous.clone().unwrap_or(RevocationRetry {
                grant_id: grant.id,
                attempts: 0,
                first_failed_at: at,
                last_failed_at: at,
                last_reason: String::new(),
                escalated_at: None,
            });
            retry.attempts += 1;
            retry.last_failed_at = at;
            retry.last_reason = reason.to_owned();
            let escalated =
                retry.escalated_at.is_none() && at - retry.first_failed_at >= escalate_after;
            if escalated {
                retry.escalated_at = Some(at);
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
            match put.send().await {
                Ok(_) => {
                    return Ok(RecordedFailure {
                        first: previous.is_none(),
                        escalated,
                        retry,
                    });
                }
                Err(SdkError::ServiceError(e))
                    if e.err().is_conditional_check_failed_exception() =>
                {
                    // Another attempt counted first (or this one's answer was lost:
                    // then the count is one higher than it needs to be, which only
                    // shortens a backoff). Count again on what is there.
                    if self
                        .revocation_retry(grant.id)
                        .await?
                        .is_some_and(|r| r == retry)
                    {
                        return Ok(RecordedFailure {
                            first: previous.is_none(),
                            escalated,
                            retry,
                        });
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
