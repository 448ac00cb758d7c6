//! Write-back records: one per audit event told to a ticket, in the grants table beside
//! the grant (`pk = GRANT#<id>`, `sk = WRITEBACK#<seq>`), so that an audit record the
//! stream delivers twice is posted once.
//!
//! The record is claimed (`posting`) before the post and settled (`done` or `dead`)
//! after it. A redelivery finds `done`/`dead` and does nothing; one that finds
//! `posting` knows a post may have happened before the previous attempt died, and asks
//! the ticket before posting again.
//!
//! On the happy path a note costs two calls here: the claim (a conditional put, whose
//! failure returns the record that holds the place, so nothing is read first) and the
//! settlement, written in one transaction with the audit event that tells of it.

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

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The place is this attempt's (also when the SDK retried a claim that had been
    /// applied but whose answer was lost).
    Ours,
    /// Another attempt's record holds it, as it stands.
    Held(WritebackRecord),
    /// A record refused the claim and was gone when read (TTL removed it): the event
    /// was handled long ago; nothing is posted.
    Gone,
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

    /// Writes `record` for `grant` over whatever is there (a claim kept with its
    /// attempts for the redelivery).
    pub async fn put_writeback(
        &self,
        grant: &Grant,
        record: &WritebackRecord,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.settings.tables.grants)
            .set_item(Some(self.writeback_item(grant, record)?))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    /// Claims the place of `record` (a `posting` record with its `claimed_by`) unless
    /// a record is there already, in one conditional put: when one is, the answer
    /// carries it (read only from an emulator that does not return it).
    pub async fn claim_writeback(
        &self,
        grant: &Grant,
        record: &WritebackRecord,
    ) -> Result<Claim, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.settings.tables.grants)
            .set_item(Some(self.writeback_item(grant, record)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match put.send().await {
            Ok(_) => Ok(Claim::Ours),
            Err(SdkError::ServiceError(service))
                if service.err().is_conditional_check_failed_exception() =>
            {
                let returned = match service.err() {
                    PutItemError::ConditionalCheckFailedException(failed) => failed.item().cloned(),
                    _ => None,
                };
                let holder = match returned {
                    Some(old) => Some(
                        serde_dynamo::from_item::<_, WritebackItem>(old)
                            .map(|i| i.record)
                            .map_err(|source| StoreError::Malformed {
                                key: format!("{}/{}", grant_pk(record.grant_id), sk(record.seq)),
                                source,
                            })?,
                    ),
                    None => self.writeback(record.grant_id, record.seq).await?,
                };
                Ok(match holder {
                    Some(h)
                        if h.state == WritebackState::Posting
                            && h.claimed_by.is_some()
                            && h.claimed_by == record.claimed_by =>
                    {
                        Claim::Ours
                    }
                    Some(h) => Claim::Held(h),
                    None => Claim::Gone,
                })
            }
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }

    fn writeback_item(
        &self,
        grant: &Grant,
        record: &WritebackRecord,
    ) -> Result<std::collections::HashMap<String, AttributeValue>, StoreError> {
        serde_dynamo::to_item(WritebackItem {
            pk: grant_pk(record.grant_id),
            sk: sk(record.seq),
            expires_at: (grant.not_after() + self.settings.retention).timestamp(),
            record: record.clone(),
        })
        .map_err(StoreError::Mapping)
    }

    /// Settles `record` and adds the audit event `audit` makes to the grant's trail,
    /// in one transaction, so that the record says `done` exactly when the trail says
    /// the ticket was told. The first try writes over `grant` as the caller last read
    /// it (no read); when another writer got in between, the grant is read again.
    /// Returns the event as sealed, or `None` when the grant no longer exists.
    pub async fn settle_writeback(
        &self,
        grant: &Grant,
        record: &WritebackRecord,
        at: DateTime<Utc>,
        audit: impl Fn(&Grant) -> AuditRecord,
    ) -> Result<Option<AuditEvent>, StoreError> {
        self.note_with(Some(grant.clone()), grant.id, at, audit, |grant| {
            let put = aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.settings.tables.grants)
                .set_item(Some(self.writeback_item(grant, record)?))
                .build()
                .map_err(|e| crate::store::build_error("TransactWriteItems", e))?;
            Ok(vec![crate::store::Write {
                item: aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(put)
                    .build(),
                // Unconditional: it cannot be what failed the transaction.
                on_conflict: StoreError::StaleVersion {
                    id: grant.id,
                    expected: grant.version,
                },
            }])
        })
        .await
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
        self.note_with(None, id, at, record, |_| Ok(Vec::new()))
            .await
    }

    /// [`Store::note`] over `first` (the grant as the caller last read it; read here
    /// when `None`, and again whenever another writer got in between), with the writes
    /// `also` makes for the grant in the same transaction.
    async fn note_with(
        &self,
        first: Option<Grant>,
        id: GrantId,
        at: DateTime<Utc>,
        record: impl Fn(&Grant) -> AuditRecord,
        also: impl Fn(&Grant) -> Result<Vec<crate::store::Write>, StoreError>,
    ) -> Result<Option<AuditEvent>, StoreError> {
        let mut current = match first {
            Some(grant) => Some(grant),
            None => self.get_grant(id).await?,
        };
        for _ in 0..5 {
            let Some(grant) = current.take() else {
                return Ok(None);
            };
            let mut next = grant.noted(at);
            let event = next.record(record(&grant));
            match self
                .save_grant_with(&next, std::slice::from_ref(&event), also(&grant)?)
                .await
            {
                Ok(()) => return Ok(Some(event)),
                Err(StoreError::StaleVersion { .. } | StoreError::AuditEventExists { .. }) => {
                    current = self.get_grant(id).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::StaleVersion { id, expected: 0 })
    }
}
