use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};
use ticketbound_domain::{
    AuditEvent, AuditRecord, Grant, GrantEvent, GrantId, GrantState, LifecycleRules, Owner, Ticket,
    Transition, TransitionError,
};

use crate::StoreError;
use crate::items::{self, Delivery, ITEM_EXPIRY, ITEM_GRANT, Item};
use crate::schema::GRANTS;

/// The deployed names of the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub grants: String,
    pub audit: String,
}

impl Tables {
    /// `<prefix>-grants` and `<prefix>-audit`: the names the local stack and tests use.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            grants: format!("{prefix}-grants"),
            audit: format!("{prefix}-audit"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub tables: Tables,
    /// How long a grant record outlives its not-after time before TTL may remove it.
    pub retention: Duration,
}

/// The variables every function that uses the store reads.
pub use ticketbound_runtime::vars::{AUDIT_TABLE, GRANTS_TABLE, RETENTION_DAYS};

impl StoreSettings {
    pub const VARIABLES: [&str; 3] = [GRANTS_TABLE, AUDIT_TABLE, RETENTION_DAYS];

    /// Reads the table names and the retention; a missing name is recorded in `env`
    /// (and reported by its `finish`).
    pub fn read(env: &mut ticketbound_runtime::EnvReader) -> Option<Self> {
        let grants: Option<String> = env.required(GRANTS_TABLE, "a DynamoDB table name");
        let audit: Option<String> = env.required(AUDIT_TABLE, "a DynamoDB table name");
        let days: i64 = env.or_default(RETENTION_DAYS, "a number of days", 400);
        Some(Self {
            tables: Tables {
                grants: grants?,
                audit: audit?,
            },
            retention: Duration::days(days),
        })
    }
}

/// Grants, audit chains and deliveries in DynamoDB.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) client: Client,
    pub(crate) settings: StoreSettings,
}

/// Why a grant could not be moved on by [`Store::advance`].
#[derive(Debug, thiserror::Error)]
pub enum AdvanceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("grant {grant_id} cannot take this event")]
    Transition {
        grant_id: GrantId,
        #[source]
        source: TransitionError,
    },
    #[error("grant {0} kept changing under us (or vanished)")]
    Contended(GrantId),
}

impl AdvanceError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Contended(_) => true,
            Self::Transition { .. } => false,
        }
    }
}

/// One write of a transaction, with the conflict it signals when its condition fails.
pub(crate) struct Write {
    pub(crate) item: TransactWriteItem,
    pub(crate) on_conflict: StoreError,
}

impl Store {
    pub fn new(client: Client, settings: StoreSettings) -> Self {
        Self { client, settings }
    }

    pub fn tables(&self) -> &Tables {
        &self.settings.tables
    }

    /// Records a new grant with its first audit events and, for an ITSM delivery, the
    /// delivery record; all or nothing. Fails with `GrantExists` or
    /// `DuplicateDelivery` if either is already there (an expired delivery record no
    /// longer counts), and with `TicketWithdrawn` if its ticket was withdrawn.
    pub async fn create_grant(
        &self,
        grant: &Grant,
        events: &[AuditEvent],
        delivery: Option<&Delivery>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut writes = vec![Write {
            item: self.put(
                &self.settings.tables.grants,
                items::grant_to_item(grant, self.settings.retention)?,
                "attribute_not_exists(pk)",
                &[],
            )?,
            on_conflict: StoreError::GrantExists(grant.id),
        }];
        if !grant.state.is_terminal() {
            writes.push(Write {
                item: self.put(
                    &self.settings.tables.grants,
                    items::expiry_trigger_item(grant)?,
                    "attribute_not_exists(pk)",
                    &[],
                )?,
                on_conflict: StoreError::GrantExists(grant.id),
            });
        }
        writes.push(Write {
            item: self.not_withdrawn(&grant.request.ticket)?,
            on_conflict: StoreError::TicketWithdrawn(grant.request.ticket.qualified_key()),
        });
        writes.extend(self.audit_writes(events)?);
        if let Some(d) = delivery {
            writes.push(Write {
                item: self.put(
                    &self.settings.tables.grants,
                    items::delivery_to_item(d)?,
                    "attribute_not_exists(pk) OR expires_at < :now",
                    &[(":now", AttributeValue::N(now.timestamp().to_string()))],
                )?,
                on_conflict: StoreError::DuplicateDelivery {
                    source_system: d.source_system.clone(),
                    delivery_id: d.delivery_id.clone(),
                },
            });
        }
        self.transact(writes, events.first()).await
    }

    /// Stores `grant` as changed from version `grant.version - 1`, with the audit
    /// events that record the change; all or nothing. Fails with `StaleVersion` if
    /// anyone else changed the grant in between. When the grant has ended, its expiry
    /// trigger is removed in the same transaction.
    pub async fn save_grant(&self, grant: &Grant, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.save_grant_with(grant, events, Vec::new()).await
    }

    /// [`Store::save_grant`] with more writes in the same transaction (beside the
    /// grant, in its table: a write-back record settled with the event that tells of
    /// it).
    pub(crate) async fn save_grant_with(
        &self,
        grant: &Grant,
        events: &[AuditEvent],
        also: Vec<Write>,
    ) -> Result<(), StoreError> {
        let expected = grant.version.saturating_sub(1);
        let mut writes = vec![Write {
            item: self.put(
                &self.settings.tables.grants,
                items::grant_to_item(grant, self.settings.retention)?,
                "version = :expected",
                &[(":expected", AttributeValue::N(expected.to_string()))],
            )?,
            on_conflict: StoreError::StaleVersion {
                id: grant.id,
                expected,
            },
        }];
        if grant.state.is_terminal() {
            let delete = Delete::builder()
                .table_name(&self.settings.tables.grants)
                .set_key(Some(items::key(items::grant_pk(grant.id), ITEM_EXPIRY)))
                .build()
                .map_err(|e| build_error("TransactWriteItems", e))?;
            writes.push(Write {
                item: TransactWriteItem::builder().delete(delete).build(),
                on_conflict: StoreError::StaleVersion {
                    id: grant.id,
                    expected,
                },
            });
        }
        writes.extend(also);
        writes.extend(self.audit_writes(events)?);
        self.transact(writes, events.first()).await
    }

    /// Applies `event` to `grant` at `at` and stores the result with the audit record
    /// `record` makes for it (given the grant as it will be stored and the transition),
    /// in one transaction. When someone changed the grant in between, re-reads it and
    /// applies the event again (a few times). Returns the grant as stored and the
    /// transition; an event that changes nothing writes nothing.
    pub async fn advance(
        &self,
        mut grant: Grant,
        event: &GrantEvent,
        at: DateTime<Utc>,
        rules: &LifecycleRules,
        record: impl Fn(&Grant, &Transition) -> AuditRecord,
    ) -> Result<(Grant, Transition), AdvanceError> {
        for _ in 0..5 {
            let (mut next, t) =
                grant
                    .apply(event, at, rules)
                    .map_err(|source| AdvanceError::Transition {
                        grant_id: grant.id,
                        source,
                    })?;
            if !t.changed {
                return Ok((grant, t));
            }
            let audit = record(&next, &t);
            let sealed = next.record(audit);
            match self.save_grant(&next, &[sealed]).await {
                Ok(()) => return Ok((next, t)),
                // Someone else wrote the grant, or its next audit event, first: read
                // it again and apply the event to what is there now.
                Err(StoreError::StaleVersion { .. } | StoreError::AuditEventExists { .. }) => {
                    grant = self
                        .get_grant(grant.id)
                        .await?
                        .ok_or(AdvanceError::Contended(grant.id))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AdvanceError::Contended(grant.id))
    }

    /// The grant as last stored (strongly consistent).
    pub async fn get_grant(&self, id: GrantId) -> Result<Option<Grant>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.settings.tables.grants)
            .set_key(Some(items::key(items::grant_pk(id), ITEM_GRANT)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.map(items::grant_from_item).transpose()
    }

    /// The item `(pk, sk)` of the grants table as `T` (strongly consistent), if any.
    pub(crate) async fn read_item<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.settings.tables.grants)
            .set_key(Some(items::key(pk.clone(), sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|source| StoreError::Malformed {
                    key: format!("{pk}/{sk}"),
                    source,
                })
            })
            .transpose()
    }

    /// The delivery record for `(source, delivery_id)` unless it has expired: DynamoDB
    /// TTL deletes late, so expiry is checked here.
    pub async fn find_delivery(
        &self,
        source_system: &str,
        delivery_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.settings.tables.grants)
            .set_key(Some(items::delivery_key(source_system, delivery_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out
            .item
            .map(items::delivery_from_item)
            .transpose()?
            .filter(|d| d.expires_at > now))
    }

    /// Every grant recorded for a ticket, oldest first.
    pub async fn grants_for_ticket(&self, ticket: &Ticket) -> Result<Vec<Grant>, StoreError> {
        self.query_index("by-ticket", "ticket_key", ticket.qualified_key())
            .await
    }

    /// Every grant of identities `owner` is accountable for, oldest first.
    pub async fn grants_for_owner(&self, owner: &Owner) -> Result<Vec<Grant>, StoreError> {
        self.query_index("by-owner", "owner_key", items::owner_key(owner.as_str()))
            .await
    }

    /// Grants in `state` whose not-after time is at or before `before` (all of them
    /// when `before` is `None`), from the `by-state-expiry` index, every page.
    pub async fn grants_due(
        &self,
        state: GrantState,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<Grant>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.settings.tables.grants)
            .index_name("by-state-expiry")
            .expression_attribute_values(":s", AttributeValue::S(state.as_str().to_owned()));
        query = match before {
            Some(t) => query
                .key_condition_expression("#st = :s AND not_after_epoch <= :t")
                .expression_attribute_values(":t", AttributeValue::N(t.timestamp().to_string())),
            None => query.key_condition_expression("#st = :s"),
        };
        let items = query
            .expression_attribute_names("#st", "state")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        items.into_iter().map(items::grant_from_item).collect()
    }

    /// Every grant record in the table, read as `segments` parallel scans, each page
    /// by page (the reconciler's view: it must see grants in every state).
    pub async fn scan_grants(&self, segments: i32) -> Result<Vec<Grant>, StoreError> {
        let segments = segments.max(1);
        let scans = (0..segments).map(|segment| {
            self.client
                .scan()
                .table_name(&self.settings.tables.grants)
                .segment(segment)
                .total_segments(segments)
                .filter_expression("sk = :grant")
                .expression_attribute_values(":grant", AttributeValue::S(ITEM_GRANT.to_owned()))
                .into_paginator()
                .items()
                .send()
                .try_collect()
        });
        let mut grants = Vec::new();
        for pages in futures::future::join_all(scans).await {
            let items: Vec<_> = pages.map_err(|e| StoreError::dynamo("Scan", e))?;
            for item in items {
                grants.push(items::grant_from_item(item)?);
            }
        }
        grants.sort_by_key(|g| g.id);
        Ok(grants)
    }

    /// A grant and its audit chain as of one moment: the grant is read before and
    /// after the chain, and again until no write came between (a grant and its audit
    /// events are written in one transaction, so an unchanged version means the chain
    /// read belongs to it). `None` when there is no such grant.
    pub async fn grant_with_trail(
        &self,
        id: GrantId,
    ) -> Result<Option<(Grant, Vec<AuditEvent>)>, StoreError> {
        let mut before = self.get_grant(id).await?;
        for _ in 0..10 {
            let Some(grant) = before else {
                return Ok(None);
            };
            let trail = self.audit_trail(id).await?;
            let after = self.get_grant(id).await?;
            if after.as_ref().map(|g| g.version) == Some(grant.version) {
                return Ok(Some((grant, trail)));
            }
            before = after;
        }
        Err(StoreError::StaleVersion { id, expected: 0 })
    }

    /// A grant's whole audit chain in sequence order (strongly consistent).
    pub async fn audit_trail(&self, id: GrantId) -> Result<Vec<AuditEvent>, StoreError> {
        let pages = self
            .client
            .query()
            .table_name(&self.settings.tables.audit)
            .key_condition_expression("grant_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        pages.into_iter().map(items::audit_from_item).collect()
    }

    /// The last event of a grant's audit chain (strongly consistent), if it has any.
    pub async fn latest_audit(&self, id: GrantId) -> Result<Option<AuditEvent>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.settings.tables.audit)
            .key_condition_expression("grant_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(items::audit_from_item)
            .transpose()
    }

    async fn query_index(
        &self,
        index: &'static str,
        attribute: &str,
        value: String,
    ) -> Result<Vec<Grant>, StoreError> {
        debug_assert!(GRANTS.indexes.iter().any(|i| i.name == index));
        let pages = self
            .client
            .query()
            .table_name(&self.settings.tables.grants)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", attribute)
            .expression_attribute_values(":v", AttributeValue::S(value))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        pages.into_iter().map(items::grant_from_item).collect()
    }

    fn audit_writes(&self, events: &[AuditEvent]) -> Result<Vec<Write>, StoreError> {
        events
            .iter()
            .map(|e| {
                Ok(Write {
                    item: self.put(
                        &self.settings.tables.audit,
                        items::audit_to_item(e)?,
                        "attribute_not_exists(seq)",
                        &[],
                    )?,
                    on_conflict: StoreError::AuditEventExists {
                        id: e.grant_id,
                        seq: e.seq,
                    },
                })
            })
            .collect()
    }

    fn put(
        &self,
        table: &str,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (name, value) in values {
            put = put.expression_attribute_values(*name, value.clone());
        }
        let put = put
            .build()
            .map_err(|e| build_error("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs the writes as one transaction. When DynamoDB cancels it, the first write
    /// whose condition failed names the conflict, unless the transaction was this
    /// call's own: `witness`, the first audit event it writes, is read back, and if
    /// the stored event is the very one (same hash) the write succeeded earlier and
    /// only its answer was lost (the SDK retried after a reset or a 500, and the retry
    /// failed its conditions because of its own first success). The hash covers the
    /// whole event, its time and its predecessor included, so nobody else's write can
    /// match it.
    async fn transact(
        &self,
        writes: Vec<Write>,
        witness: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        if writes.len() > 100 {
            return Err(StoreError::TooManyItems(writes.len()));
        }
        let (items, mut conflicts): (Vec<_>, Vec<_>) = writes
            .into_iter()
            .map(|w| (w.item, Some(w.on_conflict)))
            .unzip();
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            // Derived from the cause, not drawn at random: a retry by the function or
            // a redelivered event that writes the same event is the same request to
            // DynamoDB (which honours the token for ten minutes; moto ignores it, and
            // the read-back below is what the tests check).
            .set_client_request_token(witness.map(idempotency_token))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service)) => {
                if let TransactWriteItemsError::TransactionCanceledException(cancelled) =
                    service.err()
                {
                    let failed = cancelled
                        .cancellation_reasons()
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"));
                    if let Some(conflict) = failed
                        .and_then(|i| conflicts.get_mut(i))
                        .and_then(Option::take)
                    {
                        if let Some(event) = witness
                            && self.holds_event(event).await?
                        {
                            tracing::info!(grant_id = %event.grant_id, seq = event.seq, "transaction was applied before its answer was lost");
                            return Ok(());
                        }
                        return Err(conflict);
                    }
                }
                Err(StoreError::dynamo(
                    "TransactWriteItems",
                    SdkError::ServiceError(service),
                ))
            }
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
        }
    }

    /// True when the audit table holds exactly `event` (strongly consistent).
    async fn holds_event(&self, event: &AuditEvent) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.settings.tables.audit)
            .key("grant_id", AttributeValue::S(event.grant_id.to_string()))
            .key("seq", AttributeValue::N(event.seq.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(match out.item {
            Some(item) => items::audit_from_item(item)?.hash == event.hash,
            None => false,
        })
    }
}

/// `TransactWriteItems`' ClientRequestToken (at most 36 characters) for the
/// transaction that appends `event`: the same event, the same token.
fn idempotency_token(event: &AuditEvent) -> String {
    event.hash.to_hex()[..36].to_owned()
}

pub(crate) fn build_error(
    operation: &'static str,
    e: aws_sdk_dynamodb::error::BuildError,
) -> StoreError {
    StoreError::Dynamo {
        operation,
        retryable: false,
        source: Box::new(e),
    }
}
