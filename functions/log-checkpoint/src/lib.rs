//! `log-checkpoint`: the signed log's only writer and only signer.
//!
//! **Logging.** Fed by the audit table's stream (new and rewritten events), it gives
//! each event the next position in one log over every grant (a leaf binding the
//! event's chain hash to its grant, its ticket and the time it was logged) and
//! appends the batch in one conditional transaction. An event logged before (a
//! redelivered record) is not logged again; an event rewritten in the table (its
//! hash differs) is, and that second leaf is what the verifier reports.
//!
//! **Signing.** Once `TICKETBOUND_CHECKPOINT_EVERY` events are logged past the last
//! checkpoint, and on its schedule whatever the count, it signs a C2SP checkpoint
//! (origin, size, root, time) with its KMS key and writes it once to the Object Lock
//! bucket, beside the tree's right edge at that size and, with the first, the public
//! key. Before signing it rebuilds the root from the last signed checkpoint's edge
//! (kept in the bucket, where the operator cannot change it) and the leaves since:
//! a log whose head or older leaves were rewritten in DynamoDB is not signed, and
//! `LogTampered` fires.
//!
//! Its role alone may write the log table and sign with the key; no other role may do
//! either (Terraform, checked by `tests/infra-check`; moto enforces no IAM).

pub mod config;

use std::collections::HashMap;
use ticketbound_domain::Detail;

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use ticketbound_anchor::{
    AnchorError, CheckpointBucket, Notary, PUBLIC_KEY_OBJECT, Put, checkpoint_object,
    handover_object, key_object,
};
use ticketbound_domain::{AuditEvent, GrantId};
use ticketbound_evidence::{
    Checkpoint, Frontier, LogEntry, NoteError, PublicKey, SignedNote, checkpoint_signers,
    verify_checkpoint,
};
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_store::stream::audit_from_image;
use ticketbound_store::{LogError, LogHead, LogStore, Store, StoreError};
use tokio::sync::Mutex;

pub use config::CheckpointConfig;

/// Component name in logs and metrics.
pub const COMPONENT: &str = "log-checkpoint";
/// How often an append is tried again when another checkpointer appended first.
const APPEND_ATTEMPTS: u32 = 5;
/// The ticket logged for an event whose grant is gone by the time it is logged.
pub const NO_GRANT: &str = "(no grant)";

/// The object key of the tree's right edge at the checkpoint of `size`.
pub fn frontier_object(size: u64) -> String {
    format!("frontiers/{size:020}.json")
}

#[derive(Debug)]
pub struct Deps {
    pub store: Store,
    pub log: LogStore,
    pub notary: Notary,
    /// The retiring key, during a rollover: it signs each checkpoint too.
    pub previous: Option<Notary>,
    pub bucket: CheckpointBucket,
    pub config: CheckpointConfig,
    /// Grant → ticket: a grant's ticket never changes, so one read per grant per
    /// warm instance.
    tickets: Mutex<HashMap<GrantId, String>>,
    keys: Mutex<Option<SigningKeys>>,
}

/// The public keys of the signing key and, during a rollover, the retiring one.
#[derive(Debug, Clone)]
struct SigningKeys {
    current: PublicKey,
    previous: Option<PublicKey>,
}

impl SigningKeys {
    /// The keys a checkpoint kept in the bucket may be signed by: the current one, or
    /// the retiring one (the checkpoints before the rollover).
    fn accepted(&self) -> Vec<PublicKey> {
        std::iter::once(self.current.clone())
            .chain(self.previous.clone())
            .collect()
    }
}

impl Deps {
    pub fn from_env(sdk: &SdkConfig, env: EnvReader) -> Result<Self, ConfigError> {
        let config = CheckpointConfig::from_env(env)?;
        Ok(Self {
            store: Store::new(aws_sdk_dynamodb::Client::new(sdk), config.store.clone()),
            log: LogStore::new(aws_sdk_dynamodb::Client::new(sdk), config.log_table.clone()),
            notary: Notary::new(sdk, config.key_id.clone()),
            previous: config
                .previous_key_id
                .clone()
                .map(|id| Notary::new(sdk, id)),
            bucket: CheckpointBucket::new(sdk, config.bucket.clone()),
            config,
            tickets: Mutex::new(HashMap::new()),
            keys: Mutex::new(None),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the log failed")]
    Log(#[from] LogError),
    #[error("KMS or S3 failed")]
    Anchor(#[from] AnchorError),
    #[error("the log kept moving under this checkpointer ({0} attempts)")]
    Contended(u32),
    #[error(
        "the log in DynamoDB does not extend its last signed checkpoint ({why}); nothing is signed"
    )]
    LogTampered { why: String },
    #[error("checkpoint {size} in the bucket does not verify: {source}")]
    BadStoredCheckpoint {
        size: u64,
        #[source]
        source: NoteError,
    },
    #[error(
        "fork: the bucket holds another checkpoint of size {size} (root {stored}, this log's {ours})"
    )]
    Fork {
        size: u64,
        stored: String,
        ours: String,
    },
    #[error(
        "checkpoint {size} in the bucket is signed by neither the signing key nor the retiring \
         one: a new key needs a rollover (TICKETBOUND_LOG_PREVIOUS_KEY_ID set to the old key \
         until a checkpoint signed by both is kept)"
    )]
    KeyChanged { size: u64 },
    #[error("KMS signed something its own public key does not verify")]
    SignatureDoesNotVerify(#[source] NoteError),
}

/// What one stream batch did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Logged {
    pub appended: usize,
    /// Records of events logged before (redeliveries).
    pub already_logged: usize,
    pub size: u64,
    /// The checkpoint signed after the batch, if one was due.
    pub signed: Option<u64>,
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<DynamoDbBatchItemFailure>,
}

impl From<Logged> for DynamoDbEventResponse {
    fn from(r: Logged) -> Self {
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = r.batch_item_failures;
        response
    }
}

/// Handles one batch from the audit stream: every event logged, or none (the whole
/// batch is delivered again from its first record).
pub async fn handle_stream(deps: &Deps, event: Event) -> Logged {
    match log_batch(deps, &event, Utc::now()).await {
        Ok(logged) => logged,
        Err(e) => {
            tracing::error!(error = %ticketbound_runtime::error_chain(&e), "the batch was not logged; the stream delivers it again");
            alarm_on(&e);
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = event
                .records
                .first()
                .and_then(|r| r.change.sequence_number.clone());
            Logged {
                batch_item_failures: vec![failure],
                ..Logged::default()
            }
        }
    }
}

fn alarm_on(e: &CheckpointError) {
    let metric = match e {
        CheckpointError::LogTampered { .. } | CheckpointError::BadStoredCheckpoint { .. } => {
            "LogTampered"
        }
        CheckpointError::Fork { .. } => "CheckpointFork",
        _ => "CheckpointFailures",
    };
    ticketbound_runtime::metrics::count(COMPONENT, metric, 1);
}

/// The ticket of `event`'s grant. From the grant's first event, whose `ticket` detail
/// its chain covers (the stream's own image of it when it is in this batch, which no
/// later edit of the table reaches), never from the grant record an insider may
/// change or delete before the event is logged. Only a first event without the detail
/// (none the intake writes) falls back to the grant record.
async fn ticket_of(deps: &Deps, event: &AuditEvent) -> Result<String, CheckpointError> {
    let grant = event.grant_id;
    if let Some(t) = deps.tickets.lock().await.get(&grant) {
        return Ok(t.clone());
    }
    let first = if event.seq == 1 {
        Some(event.clone())
    } else {
        deps.store
            .audit_trail(grant)
            .await?
            .into_iter()
            .find(|e| e.seq == 1)
    };
    let ticket = match first
        .as_ref()
        .and_then(|e| e.details.get(Detail::Ticket.as_str()))
    {
        Some(t) => t.clone(),
        None => match deps.store.get_grant(grant).await? {
            Some(g) if first.is_some() => g.request.ticket.qualified_key(),
            _ => {
                // A grant whose first event is gone: deleted after it was written
                // (the log then holds it under no ticket, and the alarm says so).
                tracing::error!(%grant, seq = event.seq, "an audit event whose grant has no first event; logged without its ticket");
                ticketbound_runtime::metrics::count(COMPONENT, "LogTampered", 1);
                return Ok(NO_GRANT.to_owned());
            }
        },
    };
    deps.tickets.lock().await.insert(grant, ticket.clone());
    Ok(ticket)
}

async fn log_batch(
    deps: &Deps,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<Logged, CheckpointError> {
    let mut events = Vec::new();
    for record in &event.records {
        if !matches!(record.event_name.as_str(), "INSERT" | "MODIFY") {
            continue;
        }
        match audit_from_image(record.change.new_image.clone()) {
            Ok(e) => events.push(e),
            // Nothing ticketbound writes to the audit table is anything else; an item
            // that is not an event is no event to log.
            Err(e) => {
                tracing::error!(error = %ticketbound_runtime::error_chain(&e), event_id = ?record.event_id, "not an audit event; not logged");
                ticketbound_runtime::metrics::count(COMPONENT, "LogTampered", 1);
            }
        }
    }
    let mut tickets = Vec::with_capacity(events.len());
    for e in &events {
        tickets.push(ticket_of(deps, e).await?);
    }
    let refs: Vec<_> = events.iter().map(|e| (e.grant_id, e.seq, e.hash)).collect();
    for attempt in 1..=APPEND_ATTEMPTS {
        let head = deps.log.head().await?;
        let logged = deps.log.logged(&refs).await?;
        // A marker says where its event is; the leaf there must be it (a marker
        // written by hand ahead of an event would keep it out of the log).
        for (r, position) in &logged {
            let leaf = deps.log.leaf(*position).await?;
            if leaf.is_none_or(|l| (l.grant_id, l.seq, l.event_hash) != *r) {
                return Err(CheckpointError::LogTampered {
                    why: format!(
                        "event {} of grant {} is marked logged at position {position}, which holds another leaf or none",
                        r.1, r.0
                    ),
                });
            }
        }
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (e, ticket) in events.iter().zip(&tickets) {
            let r = (e.grant_id, e.seq, e.hash);
            if logged.contains_key(&r) || !seen.insert(r) {
                continue;
            }
            entries.push(LogEntry {
                position: head.frontier.size + entries.len() as u64,
                ticket: ticket.clone(),
                grant_id: e.grant_id,
                seq: e.seq,
                event_hash: e.hash,
                logged_at: now,
            });
        }
        let already_logged = events.len() - entries.len();
        let head = match deps.log.append(&head, &entries).await {
            Ok(head) => head,
            Err(LogError::Moved(_)) => {
                tracing::info!(
                    attempt,
                    "another checkpointer appended first; reading the log again"
                );
                continue;
            }
            Err(LogError::Occupied) => {
                return Err(CheckpointError::LogTampered {
                    why: format!(
                        "a leaf or marker was written ahead of the log, at or after position {}",
                        head.frontier.size
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        };
        // The head's signed size only says when to sign; what is signed is based on
        // the bucket's newest checkpoint, whatever the head says.
        let due = head.frontier.size.saturating_sub(head.signed_size) >= deps.config.every;
        let signed = if due {
            sign_checkpoint(deps, &head, now).await?
        } else {
            None
        };
        return Ok(Logged {
            appended: entries.len(),
            already_logged,
            size: head.frontier.size,
            signed,
            batch_item_failures: Vec::new(),
        });
    }
    Err(CheckpointError::Contended(APPEND_ATTEMPTS))
}

/// The scheduled run: signs a checkpoint if anything was logged since the last.
pub async fn handle_schedule(deps: &Deps) -> Result<Option<u64>, CheckpointError> {
    let head = deps.log.head().await?;
    sign_checkpoint(deps, &head, Utc::now())
        .await
        .inspect_err(alarm_on)
}

async fn signing_keys(deps: &Deps) -> Result<SigningKeys, CheckpointError> {
    let mut cached = deps.keys.lock().await;
    if let Some(k) = cached.as_ref() {
        return Ok(k.clone());
    }
    let current = deps.notary.public_key(&deps.config.origin).await?;
    let previous = match &deps.previous {
        Some(notary) => Some(notary.public_key(&deps.config.origin).await?),
        None => None,
    };
    let keys = SigningKeys { current, previous };
    *cached = Some(keys.clone());
    Ok(keys)
}

/// Keeps the signing keys with the checkpoints, once each: the first key where it
/// always was, and every key under `keys/` (what a bundle hands the verifier for
/// rollovers). Called once the bucket's newest checkpoint verified under them, so a
/// key swapped in without a rollover leaves nothing behind.
async fn keep_keys(deps: &Deps, keys: &SigningKeys) -> Result<(), CheckpointError> {
    deps.bucket
        .put_once(PUBLIC_KEY_OBJECT, keys.current.der().to_vec())
        .await?;
    for key in keys.accepted() {
        deps.bucket
            .put_once(&key_object(&key), key.der().to_vec())
            .await?;
    }
    Ok(())
}

/// The tree's right edge at the last signed checkpoint, as the bucket keeps it (the
/// empty tree when nothing was signed), checked against that checkpoint's signature.
/// The checkpoint of `size` as the bucket keeps it, its signature verified.
async fn stored_checkpoint(
    deps: &Deps,
    keys: &SigningKeys,
    size: u64,
) -> Result<Checkpoint, CheckpointError> {
    let tampered = |why: &str| CheckpointError::LogTampered {
        why: format!("checkpoint {size} in the bucket: {why}"),
    };
    let note = deps
        .bucket
        .get(&checkpoint_object(size))
        .await?
        .ok_or_else(|| tampered("no such object"))?;
    let note = String::from_utf8(note).map_err(|_| tampered("not text"))?;
    let (checkpoint, signers) = checkpoint_signers(&note, &keys.accepted())
        .map_err(|source| CheckpointError::BadStoredCheckpoint { size, source })?;
    if signers.is_empty() {
        return Err(CheckpointError::KeyChanged { size });
    }
    Ok(checkpoint)
}

async fn signed_edge(
    deps: &Deps,
    keys: &SigningKeys,
    size: u64,
) -> Result<Frontier, CheckpointError> {
    if size == 0 {
        return Ok(Frontier::default());
    }
    let tampered = |why: &str| CheckpointError::LogTampered {
        why: format!("checkpoint {size}: {why}"),
    };
    let checkpoint = stored_checkpoint(deps, keys, size).await?;
    let edge = deps
        .bucket
        .get(&frontier_object(size))
        .await?
        .ok_or_else(|| tampered("the bucket has no edge for it"))?;
    let edge: Frontier =
        serde_json::from_slice(&edge).map_err(|_| tampered("its edge is not one"))?;
    if edge.size != size || !edge.is_well_formed() || edge.root() != checkpoint.root {
        return Err(tampered("its edge does not hash to its signed root"));
    }
    Ok(edge)
}

/// The size of the newest checkpoint the bucket keeps. `hint` (the head's signed
/// size) only says where to start listing: a hint lowered by hand lists more, one
/// raised past the bucket's newest names a checkpoint that is not there.
async fn newest_signed(deps: &Deps, hint: u64) -> Result<u64, CheckpointError> {
    let newest = deps
        .bucket
        .newest_checkpoint_size(hint.checked_sub(1))
        .await?;
    match newest {
        Some(size) => Ok(size),
        None if hint == 0 => Ok(0),
        None => Err(CheckpointError::LogTampered {
            why: format!(
                "the head says checkpoint {hint} is signed, and the bucket has none from it on"
            ),
        }),
    }
}

/// Signs and keeps a checkpoint of the log as `head` has it, if it grew since the
/// bucket's newest checkpoint; returns its size.
async fn sign_checkpoint(
    deps: &Deps,
    head: &LogHead,
    now: DateTime<Utc>,
) -> Result<Option<u64>, CheckpointError> {
    let size = head.frontier.size;
    let base = newest_signed(deps, head.signed_size.min(size)).await?;
    if size < base {
        return Err(CheckpointError::LogTampered {
            why: format!("the log holds {size} leaves, fewer than its signed checkpoint {base}"),
        });
    }
    if size == base {
        // Nothing new to sign; the head's signed size, if its record was lost, is made
        // again. The newest checkpoint's item is written only with a root just signed
        // (or read back signed), never with the head's unchecked one.
        deps.log.record_signed(base, None).await?;
        return Ok(None);
    }
    deps.notary.check_key().await?;
    if let Some(previous) = &deps.previous {
        previous.check_key().await?;
    }
    let keys = signing_keys(deps).await?;
    // The root is rebuilt from what the operator cannot change (the newest signed
    // edge, in the bucket) and the leaves since; the head's own edge must agree.
    let mut tree = signed_edge(deps, &keys, base).await?;
    keep_keys(deps, &keys).await?;
    let leaves = deps.log.entries_between(base, size).await?;
    if leaves.len() as u64 != size - base {
        return Err(CheckpointError::LogTampered {
            why: format!(
                "{} leaves after checkpoint {base}, where the head counts {}",
                leaves.len(),
                size - base
            ),
        });
    }
    for (expected, leaf) in (base..).zip(&leaves) {
        if leaf.position != expected {
            return Err(CheckpointError::LogTampered {
                why: format!("the leaf at position {expected} is missing"),
            });
        }
        tree.append(leaf.leaf_hash());
    }
    if tree != head.frontier {
        return Err(CheckpointError::LogTampered {
            why: format!("its head does not hash to the leaves logged since checkpoint {base}"),
        });
    }
    let checkpoint = Checkpoint {
        origin: deps.config.origin.clone(),
        size,
        root: tree.root(),
        time: now,
    };
    let text = checkpoint.body();
    let signature = deps.notary.sign(&text).await?;
    // During a rollover the retiring key signs first and the new one beside it: the
    // link by which an auditor's trust passes from the one to the other.
    let note = match (&deps.previous, &keys.previous) {
        (Some(notary), Some(previous)) => {
            let old = notary.sign(&text).await?;
            SignedNote::signed(text, previous, old).cosign(&keys.current, signature)
        }
        _ => SignedNote::signed(text, &keys.current, signature),
    }
    .encode();
    for key in keys.accepted() {
        verify_checkpoint(&note, &key).map_err(CheckpointError::SignatureDoesNotVerify)?;
    }
    let edge = serde_json::to_vec(&tree).unwrap_or_default();
    if deps.bucket.put_once(&frontier_object(size), edge).await? == Put::AlreadyThere {
        // A retry finds its own edge; another is a fork at this size.
        let stored: Option<Frontier> = deps
            .bucket
            .get(&frontier_object(size))
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok());
        if stored.as_ref() != Some(&tree) {
            return Err(CheckpointError::Fork {
                size,
                stored: stored.map_or_else(|| "unreadable".to_owned(), |f| f.root().to_hex()),
                ours: tree.root().to_hex(),
            });
        }
    }
    if keys.previous.is_some() {
        // Where every bundle finds it, however many checkpoints follow: kept before the
        // checkpoint itself, so that a checkpoint signed by both is never kept without
        // it (an operator ends the rollover once one is).
        deps.bucket
            .put_once(&handover_object(size), note.clone().into_bytes())
            .await?;
        tracing::warn!(size, new_key = %keys.current.fingerprint(), "key rollover: checkpoint signed by the retiring key and the new one");
    }
    if deps
        .bucket
        .put_once(&checkpoint_object(size), note.into_bytes())
        .await?
        == Put::AlreadyThere
    {
        // A retry after a lost answer finds its own checkpoint; anything else of this
        // size is a fork.
        let stored = stored_checkpoint(deps, &keys, size).await?;
        if stored.root != checkpoint.root {
            return Err(CheckpointError::Fork {
                size,
                stored: stored.root.to_hex(),
                ours: checkpoint.root.to_hex(),
            });
        }
    }
    deps.log.record_signed(size, Some(checkpoint.root)).await?;
    ticketbound_runtime::metrics::count(COMPONENT, "CheckpointsSigned", 1);
    tracing::info!(size, root = %checkpoint.root, "checkpoint signed and kept");
    Ok(Some(size))
}

pub mod bundle {
    //! A ticket's evidence bundle, assembled from what the tables and the bucket
    //! hold (`ticketbound evidence --bundle`): whatever an insider did to the tables
    //! is in it as they left it; [`ticketbound_evidence::verify_bundle`] finds it.

    use ticketbound_anchor::{
        AnchorError, CHECKPOINT_PREFIX, CheckpointBucket, HANDOVER_PREFIX, KEYS_PREFIX,
        checkpoint_object,
    };
    use ticketbound_domain::Ticket;
    use ticketbound_evidence::{BUNDLE_FORMAT, Bundle, GrantEvidence, PublicKey};
    use ticketbound_store::{LogStore, Store};

    use crate::CheckpointError;

    /// How many of the newest checkpoints a bundle carries: the newest anchors it;
    /// each one before adds a signed root the leaves must hash to.
    pub const CHECKPOINTS_IN_BUNDLE: usize = 8;

    /// The bundle of `ticket`.
    pub async fn assemble(
        store: &Store,
        log: &LogStore,
        bucket: &CheckpointBucket,
        ticket: &Ticket,
    ) -> Result<Bundle, CheckpointError> {
        let mut grants = Vec::new();
        for g in store.grants_for_ticket(ticket).await? {
            if let Some((grant, events)) = store.grant_with_trail(g.id).await? {
                grants.push(GrantEvidence {
                    grant_id: grant.id,
                    head: grant.audit_head,
                    events,
                });
            }
        }
        grants.sort_by_key(|g| g.grant_id);
        let listed = bucket.list(CHECKPOINT_PREFIX).await?;
        let newest = listed.len().saturating_sub(CHECKPOINTS_IN_BUNDLE);
        // Every rollover's checkpoint too: the verifier follows the keys through them.
        let handovers = bucket.list(HANDOVER_PREFIX).await?;
        let mut checkpoints = Vec::new();
        for key in handovers.iter().chain(&listed[newest..]) {
            if let Some(note) = bucket.get(key).await? {
                checkpoints.push(String::from_utf8_lossy(&note).into_owned());
            }
        }
        // The keys, named by the log's origin as the checkpoints give it.
        let origin = checkpoints
            .last()
            .and_then(|n| n.lines().next())
            .unwrap_or_default()
            .to_owned();
        let mut keys = Vec::new();
        for object in bucket.list(KEYS_PREFIX).await? {
            if let Some(der) = bucket.get(&object).await?
                && let Ok(key) = PublicKey::new(&origin, der)
            {
                keys.push(key.vkey());
            }
        }
        let head = log.head().await?;
        Ok(Bundle {
            format: BUNDLE_FORMAT,
            ticket: ticket.qualified_key(),
            checkpoints,
            log: log.entries(head.frontier.size).await?,
            grants,
            // The ticket's notes are the ITSM's to give: the caller reads them back.
            notes: Vec::new(),
            keys,
        })
    }

    /// The newest checkpoint the bucket keeps (what an auditor fetches for
    /// `verify --latest`).
    pub async fn newest_checkpoint(
        bucket: &CheckpointBucket,
    ) -> Result<Option<String>, AnchorError> {
        let Some(size) = bucket.newest_checkpoint_size(None).await? else {
            return Ok(None);
        };
        Ok(bucket
            .get(&checkpoint_object(size))
            .await?
            .map(|n| String::from_utf8_lossy(&n).into_owned()))
    }
}
