//! Write-back records: one per audit event told to a ticket, in the grants table beside
//! the grant (`pk = GRANT#<id>`, `sk = WRITEBACK#<seq>`), so that an audit record the
//! stream delivers twice is posted once.
//!
//! The record is claimed (`posting`) before the post and settled (`done` or `dead`)
//! after it. A redelivery finds `done`/`dead` and does nothing; one that finds
//! `posting` knows a post may have happened before the previous attempt died, and asks
//! the ticket before posting again.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketbound_domain::{AuditEvent, AuditRecord, Grant, GrantId};

use crate::items::grant_pk;
use crate::{Store, StoreError};

/// Where a write-back stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WritebackState {
    /// Claimed; the post may or may not have happened.
    Posting,
    /// Posted.
    Done,
    /// Given up (the dead-letter record): what failed is in `reason`.
    Dead,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WritebackRecord {
    pub grant_id: GrantId,
    pub seq: u64,
    pub state: WritebackState,
    pub system: String,
    pub ticket: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who claimed it: drawn afresh by each attempt, so that a claim whose answer
    /// was lost is recognised as the attempt's own when its retry finds it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct WritebackItem {
    pk: String,
    sk: String,
    /// TTL: kept as long as the grant record.
    expires_at: i64,
    #[serde(flatten)]
    record: WritebackRecord,
}

fn sk(seq: u64) -> String {
    format!("WRITEBACK#{seq:010}")
}

impl Store {
    /// The write-back record of audit event `seq` of grant `id`, if there is one.
    pub async fn writeback(
        &self,
        id: GrantId,
        seq: u64,
    ) -> Result<Option<WritebackRecord>, StoreError> {
        Ok(self
            .read_item::<WritebackItem>(grant_pk(id), &sk(seq))
            .await?
            .map(|i| i.record))
    }

    /// Writes `record` for `grant`: as a claim (only if none exists yet) or as a
    /// settlement (always). A claim returns true when the record there is this
    /// attempt's own (`record.claimed_by`), also when the SDK retried a claim that had
    /// been applied but whose answer was lost; false when another attempt holds it.
    pub async fn put_writeback(
        &self,
        grant: &Grant,
        record: &WritebackRecord,
        claim: bool,
    ) -> Result<bool, StoreError> {
        let item = serde_dynamo::to_item(WritebackItem {
            pk: grant_pk(record.grant_id),
            sk: sk(record.seq),
            expires_at: (grant.not_after() + self.settings.retention).timestamp(),
            record: record.clone(),
        })
        .map_err(StoreError::Mapping)?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.settings.tables.grants)
            .set_item(Some(item));
        if claim {
            put = put
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(service))
                if claim && service.err().is_conditional_check_failed_exception() =>
            {
                let PutItemError::ConditionalCheckFailedException(failed) = service.err() else {
                    return Ok(false);
                };
                let holder = match failed.item() {
                    Some(old) => Some(
                        serde_dynamo::from_item::<_, WritebackItem>(old.clone())
                            .map(|i| i.record)
                            .map_err(|source| StoreError::Malformed {
                                key: format!("{}/{}", grant_pk(record.grant_id), sk(record.seq)),
                                source,
                            })?,
                    ),
                    // Not every DynamoDB (or emulator) returns the item: read it.
                    None => self.writeback(record.grant_id, record.seq).await?,
                };
                Ok(holder.is_some_and(|h| {
                    h.state == WritebackState::Posting
                        && h.claimed_by.is_some()
                        && h.claimed_by == record.claimed_by
                }))
            }
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }

    /// Every dead-letter write-back record of grant `id`.
    pub async fn dead_writebacks(&self, id: GrantId) -> Result<Vec<WritebackRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.settings.tables.grants)
            .key_condition_expression("pk = :pk AND begins_with(sk, :wb)")
            .expression_attribute_values(":pk", AttributeValue::S(grant_pk(id)))
            .expression_attribute_values(":wb", AttributeValue::S("WRITEBACK#".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let mut dead = Vec::new();
        for item in out.items.unwrap_or_default() {
            let record = serde_dynamo::from_item::<_, WritebackItem>(item)
                .map_err(|source| StoreError::Malformed {
                    key: grant_pk(id),
                    source,
                })?
                .record;
            if record.state == WritebackState::Dead {
                dead.push(record);
            }
        }
        Ok(dead)
    }

    /// Adds one audit event to grant `id`'s trail without changing the grant (beyond
    /// its version), re-reading it when another writer got in between. Returns the
    /// event as sealed, or `None` when the grant does not exist.
    pub async fn note(
        &self,
        id: GrantId,
        at: DateTime<Utc>,
        record: impl Fn(&Grant) -> AuditRecord,
    ) -> Result<Option<AuditEvent>, StoreError> {
        for _ in 0..5 {
            let Some(grant) = self.get_grant(id).await? else {
                return Ok(None);
            };
            let mut next = grant.noted(at);
            let event = next.record(record(&grant));
            match self.save_grant(&next, std::slice::from_ref(&event)).await {
                Ok(()) => return Ok(Some(event)),
                Err(StoreError::StaleVersion { .. } | StoreError::AuditEventExists { .. }) => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::StaleVersion { id, expected: 0 })
    }
}
