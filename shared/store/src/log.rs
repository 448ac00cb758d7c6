//! The signed log's leaves in DynamoDB: a table of its own
//! (`TICKETBOUND_LOG_TABLE`), written by the checkpointer alone (no other role may
//! write it, and it has no stream, so nothing else reacts to it).
//!
//! - `HEAD`: the log's size, its right edge (a [`Frontier`], all an append needs), the
//!   size of the newest signed checkpoint, and a version every append is conditioned
//!   on, so two checkpointers never give one position twice;
//! - `LEAF` / `<position>`: one [`LogEntry`] per position;
//! - `EVENT#<grant>#<seq>#<hash>` / `LOGGED`: that this very event is logged, so a
//!   redelivered stream record is not logged again (a rewritten event, whose hash
//!   differs, is: that is how the verifier sees the rewrite);
//! - `CHECKPOINT` / `NEWEST`: the size and root of the newest checkpoint signed, which
//!   the write-back copies into each note (its one read of this table: the ticket
//!   then witnesses the log as it was).
//!
//! The leaves share one partition: a log grows by the audit events' rate, far below
//! a partition's thousand writes a second.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};
use ticketbound_domain::{Digest, GrantId};
use ticketbound_evidence::{Frontier, Hash, LogEntry, Witnessed};

use crate::StoreError;
use crate::items::Item;
use crate::store::build_error;

/// The variable naming the table.
pub use ticketbound_runtime::vars::LOG_TABLE;

const HEAD: &str = "HEAD";
const LEAF: &str = "LEAF";
const LOGGED: &str = "LOGGED";
/// The partition key of the newest signed checkpoint's item: the only one the
/// write-back's role may read (`dynamodb:LeadingKeys`).
pub const NEWEST_CHECKPOINT_PK: &str = "CHECKPOINT";
const NEWEST: &str = "NEWEST";
/// One head and two items per entry in one `TransactWriteItems` of at most 100.
const ENTRIES_PER_APPEND: usize = 49;

/// An event as the log knows it: its grant, its place in the grant's chain, its hash.
pub type EventRef = (GrantId, u64, Digest);

/// A conditional write that found the table already as far or further on is done.
fn forwards_only<E>(
    result: Result<(), SdkError<E, HttpResponse>>,
    operation: &'static str,
) -> Result<(), StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(()) => Ok(()),
        Err(SdkError::ServiceError(e))
            if e.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(())
        }
        Err(e) => Err(StoreError::dynamo(operation, e)),
    }
}

fn marker_pk((grant, seq, hash): &EventRef) -> String {
    format!("EVENT#{grant}#{seq}#{}", hash.to_hex())
}

fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// The log as it stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    pub frontier: Frontier,
    /// The size of the newest checkpoint signed (0: none yet).
    pub signed_size: u64,
    /// How many appends made it; each is conditioned on the one before.
    pub version: u64,
}

#[derive(Serialize, Deserialize)]
struct HeadItem {
    pk: String,
    sk: String,
    /// The frontier as JSON: a list of (level, index, hash), a few dozen at most.
    frontier: String,
    size: u64,
    signed_size: u64,
    version: u64,
}

#[derive(Serialize, Deserialize)]
struct LeafItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    entry: LogEntry,
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Another checkpointer appended first; read the head again and retry.
    #[error("the log moved on since its head was read (version {0})")]
    Moved(u64),
    /// A leaf or marker was already at a place no append has reached: written there
    /// by hand (which would also stall the log, retry after retry).
    #[error("an item of the log was written ahead of the log, at a place no append had reached")]
    Occupied,
    /// The head item is not what the checkpointer writes: someone edited the table.
    #[error("the log's head does not hold a well-formed tree of its size; an operator must look")]
    HeadTampered,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The log table.
#[derive(Debug, Clone)]
pub struct LogStore {
    client: Client,
    table: String,
}

impl LogStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Reads the table's name; a missing one is recorded in `env`.
    pub fn read_table(env: &mut ticketbound_runtime::EnvReader) -> Option<String> {
        env.required(LOG_TABLE, "a DynamoDB table name")
    }

    /// The head (an empty log when there is none yet), read consistently.
    pub async fn head(&self) -> Result<LogHead, LogError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(HEAD, HEAD)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(LogHead::default());
        };
        let head: HeadItem =
            serde_dynamo::from_item(item).map_err(|source| StoreError::Malformed {
                key: "pk=HEAD".into(),
                source,
            })?;
        let frontier: Frontier =
            serde_json::from_str(&head.frontier).map_err(|_| LogError::HeadTampered)?;
        if frontier.size != head.size || !frontier.is_well_formed() {
            return Err(LogError::HeadTampered);
        }
        Ok(LogHead {
            frontier,
            signed_size: head.signed_size,
            version: head.version,
        })
    }

    /// Which of `events` are logged already, and where (as their markers say: the
    /// caller checks the leaf there).
    pub async fn logged(&self, events: &[EventRef]) -> Result<HashMap<EventRef, u64>, StoreError> {
        let mut found = HashMap::new();
        for chunk in events.chunks(100) {
            let by_pk: HashMap<String, EventRef> =
                chunk.iter().map(|e| (marker_pk(e), *e)).collect();
            let mut keys = KeysAndAttributes::builder().consistent_read(true);
            for pk in by_pk.keys() {
                keys = keys.keys(key(pk, LOGGED));
            }
            let mut request = Some(HashMap::from([(
                self.table.clone(),
                keys.build().map_err(|e| build_error("BatchGetItem", e))?,
            )]));
            // DynamoDB may answer part of a batch and hand back the rest.
            while let Some(items) = request.take().filter(|r| !r.is_empty()) {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .into_iter()
                    .flatten()
                {
                    if let Some(AttributeValue::S(pk)) = item.get("pk")
                        && let Some(e) = by_pk.get(pk)
                    {
                        let position = match item.get("position") {
                            Some(AttributeValue::N(n)) => n.parse().unwrap_or(u64::MAX),
                            _ => u64::MAX,
                        };
                        found.insert(*e, position);
                    }
                }
                request = out.unprocessed_keys;
            }
        }
        Ok(found)
    }

    /// Appends `entries` (positions from `head`'s size on, in order) with their
    /// markers, and moves the head, at `head`'s version: several transactions when
    /// there are many, each moving the head on. Returns the new head.
    pub async fn append(&self, head: &LogHead, entries: &[LogEntry]) -> Result<LogHead, LogError> {
        let mut head = head.clone();
        for chunk in entries.chunks(ENTRIES_PER_APPEND) {
            let mut next = head.clone();
            let mut writes = Vec::with_capacity(chunk.len() * 2 + 1);
            for entry in chunk {
                debug_assert_eq!(entry.position, next.frontier.size);
                next.frontier.append(entry.leaf_hash());
                let leaf = serde_dynamo::to_item(LeafItem {
                    pk: LEAF.into(),
                    sk: format!("{:020}", entry.position),
                    entry: entry.clone(),
                })
                .map_err(StoreError::Mapping)?;
                writes.push(self.put_new(leaf)?);
                let mut marker = key(
                    &marker_pk(&(entry.grant_id, entry.seq, entry.event_hash)),
                    LOGGED,
                );
                marker.insert(
                    "position".into(),
                    AttributeValue::N(entry.position.to_string()),
                );
                writes.push(self.put_new(marker)?);
            }
            next.version += 1;
            writes.push(self.put_head(&next, head.version)?);
            self.transact(writes, head.version).await?;
            head = next;
        }
        Ok(head)
    }

    /// The leaf at `position`, if the table holds one.
    pub async fn leaf(&self, position: u64) -> Result<Option<LogEntry>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(LEAF, &format!("{position:020}"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item
            .map(|item| {
                serde_dynamo::from_item::<_, LeafItem>(item)
                    .map(|l| l.entry)
                    .map_err(|source| StoreError::Malformed {
                        key: "pk=LEAF".into(),
                        source,
                    })
            })
            .transpose()
    }

    /// Records that a checkpoint of `size` is signed and kept (only ever forwards):
    /// the head's signed size and, given its `root`, the item the write-back reads.
    pub async fn record_signed(&self, size: u64, root: Option<Hash>) -> Result<(), StoreError> {
        let n = AttributeValue::N(size.to_string());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(HEAD, HEAD)))
            .update_expression("SET signed_size = :s")
            // `size` is a DynamoDB function's name: it needs a placeholder.
            .condition_expression("attribute_exists(pk) AND signed_size < :s AND #size >= :s")
            .expression_attribute_names("#size", "size")
            .expression_attribute_values(":s", n.clone())
            .send()
            .await;
        forwards_only(result.map(|_| ()), "UpdateItem")?;
        let Some(root) = root else {
            return Ok(());
        };
        let mut item = key(NEWEST_CHECKPOINT_PK, NEWEST);
        item.insert("size".into(), n.clone());
        item.insert("root".into(), AttributeValue::S(root.to_hex()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #size < :s")
            .expression_attribute_names("#size", "size")
            .expression_attribute_values(":s", n)
            .send()
            .await;
        forwards_only(result.map(|_| ()), "PutItem")
    }

    /// The newest signed checkpoint as the checkpointer recorded it (`None` before the
    /// first).
    pub async fn newest_signed(&self) -> Result<Option<Witnessed>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(NEWEST_CHECKPOINT_PK, NEWEST)))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Newest {
            size: u64,
            root: Hash,
        }
        let newest: Newest =
            serde_dynamo::from_item(item).map_err(|source| StoreError::Malformed {
                key: format!("pk={NEWEST_CHECKPOINT_PK}"),
                source,
            })?;
        Ok(Some(Witnessed {
            size: newest.size,
            root: newest.root,
        }))
    }

    /// The entries at positions `0..size`, in order.
    pub async fn entries(&self, size: u64) -> Result<Vec<LogEntry>, StoreError> {
        self.entries_between(0, size).await
    }

    /// The entries at positions `from..to`, in order (what the table holds of them:
    /// the caller checks that none is missing).
    pub async fn entries_between(&self, from: u64, to: u64) -> Result<Vec<LogEntry>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :leaf AND sk >= :from")
                .expression_attribute_values(":leaf", AttributeValue::S(LEAF.into()))
                .expression_attribute_values(":from", AttributeValue::S(format!("{from:020}")))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for item in page.items.unwrap_or_default() {
                let leaf: LeafItem =
                    serde_dynamo::from_item(item).map_err(|source| StoreError::Malformed {
                        key: "pk=LEAF".into(),
                        source,
                    })?;
                if leaf.entry.position >= to {
                    return Ok(out);
                }
                out.push(leaf.entry);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    fn put_new(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| build_error("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn put_head(&self, head: &LogHead, expected: u64) -> Result<TransactWriteItem, StoreError> {
        let item = serde_dynamo::to_item(HeadItem {
            pk: HEAD.into(),
            sk: HEAD.into(),
            frontier: serde_json::to_string(&head.frontier).unwrap_or_default(),
            size: head.frontier.size,
            signed_size: head.signed_size,
            version: head.version,
        })
        .map_err(StoreError::Mapping)?;
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(expected.to_string()))
        };
        let put = put
            .build()
            .map_err(|e| build_error("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn transact(&self, writes: Vec<TransactWriteItem>, version: u64) -> Result<(), LogError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service)) => {
                if let TransactWriteItemsError::TransactionCanceledException(c) = service.err() {
                    let failed = |r: &aws_sdk_dynamodb::types::CancellationReason| {
                        matches!(
                            r.code(),
                            Some("ConditionalCheckFailed" | "TransactionConflict")
                        )
                    };
                    let reasons = c.cancellation_reasons();
                    // The head is the last write: if it moved, another append explains
                    // any clash; if it did not, a leaf or marker was there before us.
                    match reasons.last() {
                        Some(head) if failed(head) => return Err(LogError::Moved(version)),
                        Some(_) if reasons.iter().any(failed) => return Err(LogError::Occupied),
                        _ => {}
                    }
                }
                Err(
                    StoreError::dynamo("TransactWriteItems", SdkError::ServiceError(service))
                        .into(),
                )
            }
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e).into()),
        }
    }
}
