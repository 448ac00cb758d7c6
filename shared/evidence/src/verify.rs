//! Verifying a ticket's evidence bundle offline, against a key the auditor pinned.
//!
//! What is checked, in order (the first failure is the answer, named):
//! 0. the bundle is of the ticket the auditor asked about;
//! 1. every checkpoint (the bundle's, and the newest one the auditor fetched
//!    themselves) is signed by the pinned key and is of its log; two different
//!    checkpoints of one size are a fork;
//! 2. the log's leaves, position by position, hash to every signed root: a leaf
//!    rewritten, removed or inserted after it was signed changes a root;
//! 3. each grant's chain is whole and ends at its recorded head;
//! 4. each event of the bundle is a leaf under the newest checkpoint, for this ticket,
//!    with the same chain hash, logged within [`MAX_LOGGING_DELAY`] after it says it
//!    happened and not before it (an event written into the table later, backdated or
//!    dated ahead, is not);
//! 5. every leaf that names the ticket is an event of the bundle: a grant deleted with
//!    all its events, or a newest event cut off, is missing here;
//! 6. every note the ticket holds from ticketbound (as the ITSM gave them back) is of a
//!    grant and an event of the bundle, names that event's chain head, and names a
//!    checkpoint whose root the bundle's leaves hash to: the ITSM, which the AWS
//!    operator cannot edit, witnesses the chain and the log as they were.
//!
//! An event rewritten in the table (hashes recomputed, as an insider with write access
//! would) fails 4, or 2 if the log was rewritten to match.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::Duration;
use serde::{Deserialize, Serialize};
use ticketbound_domain::{AuditEvent, ChainError, ChainHead, GrantId, verify_chain};

use crate::checkpoint::{Checkpoint, NoteError, PublicKey, checkpoint_signers};
use crate::log::LogEntry;
use crate::merkle::{Frontier, Hash};
use crate::witness::{NoteFormatError, Witness, note_marker};

/// The longest an event may take from its write to the checkpointer's log: the audit
/// stream delivers within seconds, and retries after a failed batch take minutes.
pub const MAX_LOGGING_DELAY: Duration = Duration::hours(1);

/// How far the writer's clock may run ahead of the checkpointer's.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// The bundle's format version.
pub const BUNDLE_FORMAT: u32 = 2;

/// What `ticketbound evidence --bundle` writes (as `bundle.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: u32,
    /// `<system>#<key>` (`Ticket::qualified_key`).
    pub ticket: String,
    /// Signed checkpoints, as the checkpointer wrote them to the bucket.
    pub checkpoints: Vec<String>,
    /// The log's leaves from position 0 on, at least up to the newest checkpoint.
    pub log: Vec<LogEntry>,
    pub grants: Vec<GrantEvidence>,
    /// The ticket's notes as the ITSM gave them back (ticketbound's and anyone's).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Every signing key the bucket keeps (verifier key strings): what a rollover
    /// hands over to. A key here certifies nothing by itself: only a checkpoint
    /// signed by a key the pinned one vouches for can introduce it.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// A key rollover the verification followed: from the checkpoint of `size` on, the
/// key of `fingerprint` (SHA-256 of its DER) signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollover {
    pub size: u64,
    pub fingerprint: String,
}

/// One grant of the ticket: its recorded chain head and every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEvidence {
    pub grant_id: GrantId,
    pub head: ChainHead,
    pub events: Vec<AuditEvent>,
}

/// What a verification found, when everything holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub ticket: String,
    /// The newest signed checkpoint the evidence is anchored in.
    pub checkpoint: Checkpoint,
    pub checkpoints: usize,
    pub grants: usize,
    pub events: usize,
    /// ticketbound's notes on the ticket that witness a chain head and checkpoint.
    pub notes_witnessed: usize,
    /// ticketbound's notes without a witness line (posted before notes had one).
    pub notes_unwitnessed: usize,
    /// The key rollovers after the pinned key, in order.
    pub rollovers: Vec<Rollover>,
    /// Whether the notes checked are the auditor's own read of the ticket (`true`)
    /// or the bundle's copy.
    pub notes_read_by_auditor: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("bundle format {0} is not one this verifier reads (it reads 1 to {BUNDLE_FORMAT})")]
    Format(u32),
    #[error("checkpoint {index} of the bundle: {source}")]
    Checkpoint {
        index: usize,
        #[source]
        source: NoteError,
    },
    #[error("the bundle is of ticket {found:?}, not of {asked:?}")]
    WrongTicket { asked: String, found: String },
    #[error("the newest checkpoint the auditor brought: {source}")]
    Latest {
        #[source]
        source: NoteError,
    },
    #[error("the bundle holds no checkpoint signed by the pinned key")]
    NoCheckpoint,
    #[error("key {index} of the bundle: {source}")]
    BundleKey {
        index: usize,
        #[source]
        source: NoteError,
    },
    #[error(
        "the checkpoint of size {size} is signed by no key trusted there (keys {trusted:?}): \
         by a key retired at a rollover, or by another's"
    )]
    Unlinked { size: u64, trusted: Vec<String> },
    #[error("fork: two signed checkpoints of size {size} with roots {first} and {second}")]
    Fork {
        size: u64,
        first: Hash,
        second: Hash,
    },
    #[error("the log's leaf at position {position} is missing or out of order")]
    LogGap { position: u64 },
    #[error(
        "the log's first {size} leaves hash to {computed}, not to the signed root {signed}: \
         the log was changed after it was signed"
    )]
    LogRewritten {
        size: u64,
        signed: Hash,
        computed: Hash,
    },
    #[error("the log ends at {have} leaves, before the signed checkpoint of {size}")]
    LogTruncated { have: u64, size: u64 },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("grant {grant_id} appears twice in the bundle")]
    DuplicateGrant { grant_id: GrantId },
    #[error(
        "event {seq} of grant {grant_id} is not in the signed log as the bundle holds it \
         (hash {hash}): it was written or rewritten outside ticketbound"
    )]
    NotInLog {
        grant_id: GrantId,
        seq: u64,
        hash: String,
    },
    #[error(
        "event {seq} of grant {grant_id} is logged after the newest signed checkpoint \
         ({size}): not yet anchored"
    )]
    NotYetAnchored {
        grant_id: GrantId,
        seq: u64,
        size: u64,
    },
    #[error("event {seq} of grant {grant_id} is logged for ticket {logged}, not {ticket}")]
    OtherTicket {
        grant_id: GrantId,
        seq: u64,
        logged: String,
        ticket: String,
    },
    #[error(
        "event {seq} of grant {grant_id} says {at} but was logged at {logged_at}: \
         written into the table later, backdated"
    )]
    Backdated {
        grant_id: GrantId,
        seq: u64,
        at: String,
        logged_at: String,
    },
    #[error(
        "event {seq} of grant {grant_id} says {at} but was logged earlier, at {logged_at}: \
         dated ahead"
    )]
    FutureDated {
        grant_id: GrantId,
        seq: u64,
        at: String,
        logged_at: String,
    },
    #[error(
        "the signed log holds event {seq} of grant {grant_id} for this ticket at position \
         {position}, and the bundle does not: it was deleted or rewritten in the table"
    )]
    MissingFromBundle {
        grant_id: GrantId,
        seq: u64,
        position: u64,
    },
    #[error("note {index} of the ticket: {source}")]
    NoteMalformed {
        index: usize,
        #[source]
        source: NoteFormatError,
    },
    #[error(
        "the ticket holds a note about grant {grant_id} (event {seq}), and the bundle has no \
         such grant: it was deleted from the table"
    )]
    NoteOfMissingGrant { grant_id: GrantId, seq: u64 },
    #[error(
        "the ticket holds a note about event {seq} of grant {grant_id}, and the bundle has no \
         such event: it was deleted from the table"
    )]
    NoteOfMissingEvent { grant_id: GrantId, seq: u64 },
    #[error(
        "the ticket's note about event {seq} of grant {grant_id} names chain head {noted}, and \
         the bundle's event hashes to {recorded}: the chain was rewritten after the ticket was told"
    )]
    NoteContradictsChain {
        grant_id: GrantId,
        seq: u64,
        noted: String,
        recorded: String,
    },
    #[error(
        "the ticket's note about event {seq} of grant {grant_id} names signed log root {noted} \
         at {size} leaves, and the bundle's leaves hash to {computed}: the log was rewritten \
         after the ticket was told"
    )]
    NoteContradictsLog {
        grant_id: GrantId,
        seq: u64,
        size: u64,
        noted: Hash,
        computed: Hash,
    },
    #[error(
        "the ticket's note about event {seq} of grant {grant_id} names a signed checkpoint of \
         {size} leaves, past the newest one verified here ({newest}): fetch the newest \
         checkpoint again; if it is still older, checkpoints were withheld"
    )]
    NoteAheadOfLog {
        grant_id: GrantId,
        seq: u64,
        size: u64,
        newest: u64,
    },
}

/// What the auditor brings, and the bundle cannot choose.
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    /// The checkpointer's public key, as the auditor pinned it.
    pub key: &'a PublicKey,
    /// The ticket the auditor asks about (`<system>#<key>`).
    pub ticket: &'a str,
    /// The newest checkpoint as the auditor fetched it themselves (from the Object
    /// Lock bucket, or a witness): the bundle must reach it. Without it, a bundle
    /// built from older checkpoints only (before the events an insider deleted) would
    /// verify; [`Verified::checkpoint`]'s time says how fresh the anchor is.
    pub latest: Option<&'a str>,
    /// The ticket's notes as the auditor read them from the ITSM themselves. Without
    /// them the bundle's copy is used, which whoever built the bundle chose: against
    /// an insider who also builds the bundle, only the auditor's own read witnesses.
    pub notes: Option<&'a [String]>,
}

/// The bundle's checkpoints and the auditor's newest, each signed by a key the pinned
/// one vouches for, by size; and the key rollovers on the way.
///
/// A rollover is a checkpoint signed by the retiring key and its successor: from there
/// on the successor is trusted, and once a checkpoint is signed without the old key,
/// the old key is retired (a checkpoint it signs alone later is refused, so a key
/// that leaks after its retirement signs nothing that verifies). Trust passes between
/// consecutive checkpoints only through a key both carry. Backwards, the same link
/// vouches for the keys before the pinned one, so an auditor who pinned the newer
/// key still verifies the older checkpoints.
fn signed_checkpoints(
    bundle: &Bundle,
    trust: &Trust<'_>,
) -> Result<(BTreeMap<u64, Checkpoint>, Vec<Rollover>), VerifyError> {
    let mut keys = vec![trust.key.clone()];
    for (index, vkey) in bundle.keys.iter().enumerate() {
        let key = PublicKey::from_vkey(vkey)
            .map_err(|source| VerifyError::BundleKey { index, source })?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut signed: BTreeMap<u64, (Checkpoint, BTreeSet<usize>)> = BTreeMap::new();
    let notes = bundle
        .checkpoints
        .iter()
        .enumerate()
        .map(|(index, note)| (Some(index), note.as_str()))
        .chain(trust.latest.map(|note| (None, note)));
    for (index, note) in notes {
        let failed = |source| match index {
            Some(index) => VerifyError::Checkpoint { index, source },
            None => VerifyError::Latest { source },
        };
        let (cp, signers) = checkpoint_signers(note, &keys).map_err(failed)?;
        if signers.is_empty() {
            return Err(failed(NoteError::NotSignedByPinnedKey {
                name: trust.key.name().to_owned(),
                key_id: trust.key.key_id(),
            }));
        }
        match signed.get_mut(&cp.size) {
            Some((other, _)) if other.root != cp.root => {
                return Err(VerifyError::Fork {
                    size: cp.size,
                    first: other.root,
                    second: cp.root,
                });
            }
            // Copies of one checkpoint count only by the keys every copy carries: a
            // second copy signed by a retired key must not keep that key alive.
            Some((_, by)) => {
                let theirs: BTreeSet<usize> = signers.into_iter().collect();
                by.retain(|k| theirs.contains(k));
            }
            None => {
                signed.insert(cp.size, (cp, signers.into_iter().collect()));
            }
        }
    }
    let order: Vec<(u64, &BTreeSet<usize>)> =
        signed.iter().map(|(size, (_, by))| (*size, by)).collect();
    let pinned = order
        .iter()
        .position(|(_, by)| by.contains(&0))
        .ok_or(VerifyError::NoCheckpoint)?;
    let unlinked = |size: u64, by: &BTreeSet<usize>| VerifyError::Unlinked {
        size,
        trusted: by
            .iter()
            .map(|k| keys[*k].fingerprint()[..16].to_owned())
            .collect(),
    };
    let mut linked = order[pinned].1.clone();
    for (size, by) in order[..pinned].iter().rev() {
        if by.is_disjoint(&linked) {
            return Err(unlinked(*size, &linked));
        }
        linked.extend(by.iter().copied());
    }
    let mut live = order[pinned].1.clone();
    let mut rollovers = Vec::new();
    for (size, by) in &order[pinned + 1..] {
        if by.is_disjoint(&live) {
            return Err(unlinked(*size, &live));
        }
        for new in by.difference(&live) {
            rollovers.push(Rollover {
                size: *size,
                fingerprint: keys[*new].fingerprint(),
            });
        }
        live = (*by).clone();
    }
    Ok((
        signed
            .into_iter()
            .map(|(size, (cp, _))| (size, cp))
            .collect(),
        rollovers,
    ))
}

/// Verifies `bundle`, offline, against what the auditor brings.
pub fn verify_bundle(bundle: &Bundle, trust: &Trust<'_>) -> Result<Verified, VerifyError> {
    // Format 1 had no notes and no keys: it verifies without them.
    if !(1..=BUNDLE_FORMAT).contains(&bundle.format) {
        return Err(VerifyError::Format(bundle.format));
    }
    if bundle.ticket != trust.ticket {
        return Err(VerifyError::WrongTicket {
            asked: trust.ticket.to_owned(),
            found: bundle.ticket.clone(),
        });
    }
    // 1. Signatures, key rollovers and forks, the auditor's own checkpoint among them.
    let (signed, rollovers) = signed_checkpoints(bundle, trust)?;
    let newest = signed
        .values()
        .next_back()
        .cloned()
        .ok_or(VerifyError::NoCheckpoint)?;

    // The ticket's notes from ticketbound, and what each witnesses (checked in 6).
    let mut noted = Vec::new();
    let mut unwitnessed = 0;
    let notes = trust.notes.unwrap_or(&bundle.notes);
    for (index, text) in notes.iter().enumerate() {
        let malformed = |source| VerifyError::NoteMalformed { index, source };
        let Some((grant_id, seq)) = note_marker(text) else {
            continue;
        };
        match Witness::find(text) {
            None => unwitnessed += 1,
            Some(witness) => {
                let witness = witness.map_err(malformed)?;
                if witness.seq != seq {
                    return Err(malformed(NoteFormatError(format!(
                        "the witness names event {}, the marker event {seq}",
                        witness.seq
                    ))));
                }
                noted.push((grant_id, witness));
            }
        }
    }
    let mut roots_noted: BTreeMap<u64, Option<Hash>> = noted
        .iter()
        .filter_map(|(_, w)| w.checkpoint.map(|cp| (cp.size, None)))
        .collect();

    // 2. The leaves against every signed root (one pass: the frontier's root at each
    // signed size, and at each size a note names).
    let mut frontier = Frontier::default();
    let mut check_root = |frontier: &Frontier| -> Result<(), VerifyError> {
        if let Some(root) = roots_noted.get_mut(&frontier.size) {
            *root = Some(frontier.root());
        }
        if let Some(cp) = signed.get(&frontier.size) {
            let computed = frontier.root();
            if computed != cp.root {
                return Err(VerifyError::LogRewritten {
                    size: cp.size,
                    signed: cp.root,
                    computed,
                });
            }
        }
        Ok(())
    };
    check_root(&frontier)?;
    for (expected, entry) in (0u64..).zip(&bundle.log) {
        if entry.position != expected {
            return Err(VerifyError::LogGap { position: expected });
        }
        frontier.append(entry.leaf_hash());
        check_root(&frontier)?;
    }
    if frontier.size < newest.size {
        return Err(VerifyError::LogTruncated {
            have: frontier.size,
            size: newest.size,
        });
    }
    let anchored = &bundle.log[..newest.size as usize];

    // 3. and 4. Each grant's chain, each event in the log.
    let by_event: BTreeMap<(GrantId, u64), Vec<&LogEntry>> =
        bundle.log.iter().fold(BTreeMap::new(), |mut m, e| {
            m.entry((e.grant_id, e.seq))
                .or_insert_with(Vec::new)
                .push(e);
            m
        });
    let mut seen_grants = BTreeSet::new();
    let mut events = 0;
    let mut in_bundle = HashSet::new();
    for grant in &bundle.grants {
        if !seen_grants.insert(grant.grant_id) {
            return Err(VerifyError::DuplicateGrant {
                grant_id: grant.grant_id,
            });
        }
        verify_chain(grant.grant_id, &grant.events, Some(&grant.head))?;
        for event in &grant.events {
            let logged = by_event
                .get(&(event.grant_id, event.seq))
                .into_iter()
                .flatten()
                .find(|e| e.event_hash == event.hash);
            let Some(entry) = logged else {
                return Err(VerifyError::NotInLog {
                    grant_id: event.grant_id,
                    seq: event.seq,
                    hash: event.hash.to_hex(),
                });
            };
            if entry.position >= newest.size {
                return Err(VerifyError::NotYetAnchored {
                    grant_id: event.grant_id,
                    seq: event.seq,
                    size: newest.size,
                });
            }
            if entry.ticket != bundle.ticket {
                return Err(VerifyError::OtherTicket {
                    grant_id: event.grant_id,
                    seq: event.seq,
                    logged: entry.ticket.clone(),
                    ticket: bundle.ticket.clone(),
                });
            }
            if event.at - entry.logged_at > MAX_CLOCK_SKEW {
                return Err(VerifyError::FutureDated {
                    grant_id: event.grant_id,
                    seq: event.seq,
                    at: event.at.to_rfc3339(),
                    logged_at: entry.logged_at.to_rfc3339(),
                });
            }
            if entry.logged_at - event.at > MAX_LOGGING_DELAY {
                return Err(VerifyError::Backdated {
                    grant_id: event.grant_id,
                    seq: event.seq,
                    at: event.at.to_rfc3339(),
                    logged_at: entry.logged_at.to_rfc3339(),
                });
            }
            in_bundle.insert((event.grant_id, event.seq, event.hash));
            events += 1;
        }
    }

    // 5. Every signed leaf of the ticket is in the bundle.
    for entry in anchored.iter().filter(|e| e.ticket == bundle.ticket) {
        if !in_bundle.contains(&(entry.grant_id, entry.seq, entry.event_hash)) {
            return Err(VerifyError::MissingFromBundle {
                grant_id: entry.grant_id,
                seq: entry.seq,
                position: entry.position,
            });
        }
    }

    // 6. The ticket's notes against the chains and the log.
    for (grant_id, witness) in &noted {
        let (grant_id, seq) = (*grant_id, witness.seq);
        let Some(grant) = bundle.grants.iter().find(|g| g.grant_id == grant_id) else {
            return Err(VerifyError::NoteOfMissingGrant { grant_id, seq });
        };
        let Some(event) = grant.events.iter().find(|e| e.seq == seq) else {
            return Err(VerifyError::NoteOfMissingEvent { grant_id, seq });
        };
        if event.hash != witness.chain_head {
            return Err(VerifyError::NoteContradictsChain {
                grant_id,
                seq,
                noted: witness.chain_head.to_hex(),
                recorded: event.hash.to_hex(),
            });
        }
        if let Some(cp) = witness.checkpoint {
            if cp.size > newest.size {
                return Err(VerifyError::NoteAheadOfLog {
                    grant_id,
                    seq,
                    size: cp.size,
                    newest: newest.size,
                });
            }
            // Every size up to the newest checkpoint's is in the log (2. checked it).
            let computed = roots_noted.get(&cp.size).copied().flatten();
            if computed != Some(cp.root) {
                return Err(VerifyError::NoteContradictsLog {
                    grant_id,
                    seq,
                    size: cp.size,
                    noted: cp.root,
                    computed: computed.unwrap_or(cp.root),
                });
            }
        }
    }

    Ok(Verified {
        ticket: bundle.ticket.clone(),
        checkpoints: signed.len(),
        checkpoint: newest,
        grants: bundle.grants.len(),
        events,
        notes_witnessed: noted.len(),
        notes_unwitnessed: unwitnessed,
        rollovers,
        notes_read_by_auditor: trust.notes.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use ticketbound_domain::{Actor, AuditAction, AuditRecord, Detail};

    use super::*;
    use crate::checkpoint::tests::TestSigner;
    use crate::witness::Witnessed;

    const LOG: &str = "ticketbound.example/test";
    const TICKET: &str = "jira#OPS-7";

    fn t(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
    }

    fn grant(n: u128, events: usize) -> GrantEvidence {
        let grant_id = GrantId::new(t(0), n);
        let mut head = ChainHead::genesis(grant_id);
        let mut out = Vec::new();
        for i in 0..events {
            let record =
                AuditRecord::new(t(i as i64), Actor::component("test"), AuditAction::Rotated)
                    .detail(Detail::Step, i);
            let e = AuditEvent::seal(grant_id, &head, record);
            head = e.head();
            out.push(e);
        }
        GrantEvidence {
            grant_id,
            head,
            events: out,
        }
    }

    /// What the checkpointer does: each event becomes the next leaf, logged a few
    /// seconds after it happened.
    struct Log {
        entries: Vec<LogEntry>,
        frontier: Frontier,
    }

    impl Log {
        fn new() -> Self {
            Self {
                entries: Vec::new(),
                frontier: Frontier::default(),
            }
        }

        fn append(&mut self, ticket: &str, e: &AuditEvent) {
            let entry = LogEntry {
                position: self.entries.len() as u64,
                ticket: ticket.into(),
                grant_id: e.grant_id,
                seq: e.seq,
                event_hash: e.hash,
                logged_at: e.at + Duration::seconds(3),
            };
            self.frontier.append(entry.leaf_hash());
            self.entries.push(entry);
        }

        fn checkpoint(&self, signer: &TestSigner) -> String {
            signer.sign(&Checkpoint {
                origin: LOG.into(),
                size: self.frontier.size,
                root: self.frontier.root(),
                time: t(100),
            })
        }
    }

    struct World {
        signer: TestSigner,
        bundle: Bundle,
    }

    impl World {
        fn trust(&self) -> Trust<'_> {
            Trust {
                key: &self.signer.key,
                ticket: TICKET,
                latest: None,
                notes: None,
            }
        }
    }

    /// Two grants of the ticket and one of another, all logged and checkpointed
    /// twice.
    fn world() -> World {
        let signer = TestSigner::new(LOG);
        let (a, b, other) = (grant(1, 3), grant(2, 2), grant(3, 2));
        let mut log = Log::new();
        for e in &a.events {
            log.append(TICKET, e);
        }
        log.append("jira#OPS-8", &other.events[0]);
        let first = log.checkpoint(&signer);
        let witnessed = Witnessed {
            size: log.frontier.size,
            root: log.frontier.root(),
        };
        // The ticket was told of a's events before any checkpoint, of b's after the
        // first; a person's comment (no marker) is among them.
        let mut notes: Vec<String> = a.events.iter().map(|e| note(e, None)).collect();
        notes.push("Thanks, approved.".into());
        notes.extend(b.events.iter().map(|e| note(e, Some(witnessed))));
        for e in b.events.iter().chain(&other.events[1..]) {
            log.append(
                if e.grant_id == other.grant_id {
                    "jira#OPS-8"
                } else {
                    TICKET
                },
                e,
            );
        }
        let second = log.checkpoint(&signer);
        World {
            signer,
            bundle: Bundle {
                format: BUNDLE_FORMAT,
                ticket: TICKET.into(),
                checkpoints: vec![first, second],
                log: log.entries,
                grants: vec![a, b],
                notes,
                keys: Vec::new(),
            },
        }
    }

    /// The note the write-back posts about `e`.
    fn note(e: &AuditEvent, checkpoint: Option<Witnessed>) -> String {
        let witness = Witness {
            seq: e.seq,
            chain_head: e.hash,
            checkpoint,
        };
        format!(
            "ticketbound: a step at {}\nA line.\n{}\n\nticketbound:{}:{}",
            e.at,
            witness.line(),
            e.grant_id,
            e.seq
        )
    }

    /// Builds the log again after its first `keep` leaves from the bundle's grants (as
    /// an insider who rewrote the tables would, for a verifier that trusted the
    /// operator's signer) and signs it.
    fn relog(w: &mut World, keep: usize) {
        let mut log = Log::new();
        for entry in &w.bundle.log[..keep] {
            log.frontier.append(entry.leaf_hash());
            log.entries.push(entry.clone());
        }
        for g in &w.bundle.grants {
            for e in &g.events {
                if !log.entries.iter().any(|l| l.event_hash == e.hash) {
                    log.append(TICKET, e);
                }
            }
        }
        w.bundle.checkpoints = vec![log.checkpoint(&w.signer)];
        w.bundle.log = log.entries;
    }

    fn reseal(g: &mut GrantEvidence, from: usize, change: impl Fn(&mut AuditRecord)) {
        let mut head = if from == 0 {
            ChainHead::genesis(g.grant_id)
        } else {
            g.events[from - 1].head()
        };
        for e in &mut g.events[from..] {
            let mut record = AuditRecord::new(e.at, e.actor.clone(), e.action);
            record.details = e.details.clone();
            change(&mut record);
            *e = AuditEvent::seal(g.grant_id, &head, record);
            head = e.head();
        }
        g.head = head;
    }

    #[test]
    fn an_honest_bundle_verifies() {
        let w = world();
        let v = verify_bundle(&w.bundle, &w.trust()).unwrap();
        assert_eq!(
            (v.grants, v.events, v.checkpoints, v.checkpoint.size),
            (2, 5, 2, 7)
        );
        assert_eq!((v.notes_witnessed, v.notes_unwitnessed), (5, 0));
    }

    /// The log as the world has it, checkpointed at `size` leaves by `sign`.
    fn checkpoint_at(w: &World, size: usize, sign: impl Fn(&Checkpoint) -> String) -> String {
        let mut frontier = Frontier::default();
        for e in &w.bundle.log[..size] {
            frontier.append(e.leaf_hash());
        }
        sign(&Checkpoint {
            origin: LOG.into(),
            size: size as u64,
            root: frontier.root(),
            time: t(100 + size as i64),
        })
    }

    /// A rollover from the world's key to `next`: the first checkpoint (4) by the old
    /// key, one (5) by both, then (6, 7) by the new key alone.
    fn rolled_over(w: &mut World, next: &TestSigner) {
        let first = w.bundle.checkpoints[0].clone();
        let both = checkpoint_at(w, 5, |cp| w.signer.sign_with(next, cp));
        let alone = checkpoint_at(w, 6, |cp| next.sign(cp));
        let newest = checkpoint_at(w, 7, |cp| next.sign(cp));
        w.bundle.checkpoints = vec![first, both, alone, newest];
        w.bundle.keys = vec![w.signer.key.vkey(), next.key.vkey()];
    }

    #[test]
    fn a_key_rollover_is_followed_from_either_key() {
        let mut w = world();
        let next = TestSigner::new(LOG);
        rolled_over(&mut w, &next);
        let v = verify_bundle(&w.bundle, &w.trust()).unwrap();
        assert_eq!(
            v.rollovers,
            [Rollover {
                size: 5,
                fingerprint: next.key.fingerprint()
            }]
        );
        // An auditor who pinned the new key verifies the older checkpoints too.
        let trust = Trust {
            key: &next.key,
            ..w.trust()
        };
        assert_eq!(verify_bundle(&w.bundle, &trust).unwrap().checkpoint.size, 7);
    }

    /// The old key leaks after its retirement: what it signs alone is refused.
    #[test]
    fn a_checkpoint_signed_by_a_retired_key_is_refused() {
        let mut w = world();
        let next = TestSigner::new(LOG);
        rolled_over(&mut w, &next);
        // The retired key signs the newest checkpoint alone (as the auditor's newest,
        // or in the bundle).
        let leaked = checkpoint_at(&w, 7, |cp| w.signer.sign(cp));
        w.bundle.checkpoints.pop();
        let trust = Trust {
            latest: Some(&leaked),
            ..w.trust()
        };
        assert!(matches!(
            verify_bundle(&w.bundle, &trust),
            Err(VerifyError::Unlinked { size: 7, .. })
        ));
    }

    /// The retired key signs a second copy of the newest honest checkpoint, to pass
    /// trust on to a checkpoint of its own: a copy counts only by the keys every copy
    /// carries.
    #[test]
    fn a_retired_key_cannot_ride_on_a_copy_of_an_honest_checkpoint() {
        let mut w = world();
        let next = TestSigner::new(LOG);
        rolled_over(&mut w, &next);
        w.bundle.checkpoints.pop();
        let copy = checkpoint_at(&w, 6, |cp| w.signer.sign(cp));
        let forged = checkpoint_at(&w, 7, |cp| w.signer.sign(cp));
        w.bundle.checkpoints.push(copy);
        w.bundle.checkpoints.push(forged);
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::Unlinked { size: 6, .. })
        ));
    }

    /// A key the bundle names, which no trusted key handed over to, certifies nothing.
    #[test]
    fn a_new_key_without_a_handover_is_refused() {
        let mut w = world();
        let other = TestSigner::new(LOG);
        let first = w.bundle.checkpoints[0].clone();
        let newest = checkpoint_at(&w, 7, |cp| other.sign(cp));
        w.bundle.checkpoints = vec![first, newest];
        w.bundle.keys = vec![other.key.vkey()];
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::Unlinked { size: 7, .. })
        ));
        // Nor does it alone.
        w.bundle.checkpoints.remove(0);
        assert_eq!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::NoCheckpoint)
        );
    }

    /// Even an insider who also holds the signer (or acts before the next checkpoint)
    /// cannot rewrite what the ticket was told.
    #[test]
    fn a_chain_and_log_rewritten_and_signed_again_is_named_by_the_ticket() {
        let mut w = world();
        reseal(&mut w.bundle.grants[0], 1, |r| {
            r.details.insert("step".into(), "rewritten".into());
        });
        relog(&mut w, 0);
        match verify_bundle(&w.bundle, &w.trust()) {
            Err(VerifyError::NoteContradictsChain {
                grant_id, seq: 2, ..
            }) => {
                assert_eq!(grant_id, w.bundle.grants[0].grant_id)
            }
            other => panic!("{other:?}"),
        }
    }

    /// The insider who rewrote the chain also builds the bundle, without the notes:
    /// the auditor's own read of the ticket still names the rewrite.
    #[test]
    fn notes_dropped_from_the_bundle_are_the_auditors_to_bring() {
        let mut w = world();
        let honest_notes = w.bundle.notes.clone();
        reseal(&mut w.bundle.grants[0], 1, |r| {
            r.details.insert("step".into(), "rewritten".into());
        });
        relog(&mut w, 0);
        w.bundle.notes.clear();
        let v = verify_bundle(&w.bundle, &w.trust()).unwrap();
        assert!(!v.notes_read_by_auditor && v.notes_witnessed == 0);
        let trust = Trust {
            notes: Some(&honest_notes),
            ..w.trust()
        };
        assert!(matches!(
            verify_bundle(&w.bundle, &trust),
            Err(VerifyError::NoteContradictsChain { seq: 2, .. })
        ));
    }

    #[test]
    fn a_grant_deleted_and_the_log_signed_again_is_named_by_the_ticket() {
        let mut w = world();
        let gone = w.bundle.grants.remove(1).grant_id;
        relog(&mut w, 4);
        match verify_bundle(&w.bundle, &w.trust()) {
            Err(VerifyError::NoteOfMissingGrant { grant_id, seq: 1 }) => {
                assert_eq!(grant_id, gone)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_newest_event_deleted_and_the_log_signed_again_is_named_by_the_ticket() {
        let mut w = world();
        let g = &mut w.bundle.grants[1];
        g.events.pop();
        g.head = g.events[0].head();
        relog(&mut w, 4);
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::NoteOfMissingEvent { seq: 2, .. })
        ));
    }

    #[test]
    fn a_log_signed_again_with_the_chains_intact_is_named_by_the_ticket() {
        let mut w = world();
        // The other ticket's leaf removed from under the first checkpoint, which b's
        // notes witnessed at 4 leaves.
        let other = w.bundle.log[3].clone();
        relog(&mut w, 0);
        assert!(!w.bundle.log.iter().any(|e| e.grant_id == other.grant_id));
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::NoteContradictsLog { size: 4, .. })
        ));
    }

    #[test]
    fn a_note_of_a_checkpoint_past_the_newest_is_named() {
        let mut w = world();
        w.bundle.checkpoints.truncate(1);
        w.bundle.log.truncate(4);
        w.bundle.grants.truncate(1);
        let late = w.bundle.grants[0].events[2].clone();
        w.bundle.notes = vec![note(
            &late,
            Some(Witnessed {
                size: 7,
                root: Hash([1; 32]),
            }),
        )];
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::NoteAheadOfLog {
                size: 7,
                newest: 4,
                ..
            })
        ));
    }

    #[test]
    fn a_mangled_note_is_named_and_an_old_one_is_counted() {
        let mut w = world();
        let first = w.bundle.grants[0].events[0].clone();
        w.bundle.notes[0] = format!("ticketbound: old\n\nticketbound:{}:1", first.grant_id);
        let v = verify_bundle(&w.bundle, &w.trust()).unwrap();
        assert_eq!((v.notes_witnessed, v.notes_unwitnessed), (4, 1));
        w.bundle.notes[1] = w.bundle.notes[1].replace("chain head ", "chain head 00");
        // A person's comment with what only looks like a marker is not ticketbound's.
        w.bundle.notes.push("ticketbound:please-extend".into());
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::NoteMalformed { index: 1, .. })
        ));
    }

    #[test]
    fn a_consistent_rewrite_of_a_whole_chain_and_its_head_is_named() {
        let mut w = world();
        reseal(&mut w.bundle.grants[0], 0, |r| {
            r.details.insert("step".into(), "nothing to see".into());
        });
        // The chain itself is perfect: that is what an insider can do to the table.
        let g = &w.bundle.grants[0];
        verify_chain(g.grant_id, &g.events, Some(&g.head)).unwrap();
        match verify_bundle(&w.bundle, &w.trust()) {
            Err(VerifyError::NotInLog {
                grant_id, seq: 1, ..
            }) => assert_eq!(grant_id, g.grant_id),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_log_rewritten_to_match_breaks_the_signed_root() {
        let mut w = world();
        reseal(&mut w.bundle.grants[0], 1, |r| {
            r.details.insert("step".into(), "rewritten".into());
        });
        for (entry, event) in w.bundle.log.iter_mut().zip(&w.bundle.grants[0].events) {
            entry.event_hash = event.hash;
        }
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::LogRewritten { size: 4, .. })
        ));
    }

    #[test]
    fn a_deleted_newest_event_is_named() {
        let mut w = world();
        let g = &mut w.bundle.grants[1];
        g.events.pop();
        g.head = g.events[0].head();
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::MissingFromBundle {
                seq: 2,
                position: 5,
                ..
            })
        ));
    }

    #[test]
    fn a_grant_deleted_with_all_its_events_is_named() {
        let mut w = world();
        let gone = w.bundle.grants.remove(0).grant_id;
        match verify_bundle(&w.bundle, &w.trust()) {
            Err(VerifyError::MissingFromBundle {
                grant_id,
                seq: 1,
                position: 0,
            }) => {
                assert_eq!(grant_id, gone)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_forged_grant_with_a_valid_chain_is_named() {
        let mut w = world();
        w.bundle.grants.push(grant(9, 2));
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::NotInLog { seq: 1, .. })
        ));
    }

    #[test]
    fn a_forged_grant_logged_today_but_dated_last_month_is_backdated() {
        let mut w = world();
        let forged = grant(9, 1);
        let mut log = Log::new();
        for entry in &w.bundle.log {
            log.frontier.append(entry.leaf_hash());
            log.entries.push(entry.clone());
        }
        log.append(TICKET, &forged.events[0]);
        log.entries.last_mut().unwrap().logged_at = forged.events[0].at + Duration::days(30);
        // Re-append the last leaf with its real logging time.
        let mut frontier = Frontier::default();
        for e in &log.entries {
            frontier.append(e.leaf_hash());
        }
        log.frontier = frontier;
        w.bundle.checkpoints.push(log.checkpoint(&w.signer));
        w.bundle.log = log.entries;
        w.bundle.grants.push(forged);
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::Backdated { seq: 1, .. })
        ));
    }

    #[test]
    fn a_checkpoint_signed_with_another_key_is_rejected() {
        let mut w = world();
        let insider = TestSigner::new(LOG);
        let mut log = Log::new();
        log.entries = w.bundle.log.clone();
        for e in &log.entries {
            log.frontier.append(e.leaf_hash());
        }
        w.bundle.checkpoints.push(log.checkpoint(&insider));
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::Checkpoint {
                index: 2,
                source: NoteError::NotSignedByPinnedKey { .. }
            })
        ));
    }

    #[test]
    fn two_checkpoints_of_one_size_are_a_fork() {
        let mut w = world();
        let mut log = Log::new();
        for e in &w.bundle.log[..6] {
            log.frontier.append(e.leaf_hash());
        }
        log.frontier
            .append(crate::merkle::leaf_hash(b"another seventh leaf"));
        w.bundle.checkpoints.push(log.checkpoint(&w.signer));
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::Fork { size: 7, .. })
        ));
    }

    #[test]
    fn an_event_after_the_newest_checkpoint_is_not_yet_anchored() {
        let mut w = world();
        w.bundle.checkpoints.pop();
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::NotYetAnchored {
                seq: 1,
                size: 4,
                ..
            })
        ));
    }

    #[test]
    fn a_log_cut_short_or_with_a_gap_is_named() {
        let mut w = world();
        w.bundle.log.truncate(5);
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::LogTruncated { have: 5, size: 7 })
        ));
        let mut w = world();
        w.bundle.log.remove(2);
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::LogGap { position: 2 })
        ));
    }

    #[test]
    fn no_checkpoint_certifies_nothing() {
        let mut w = world();
        w.bundle.checkpoints.clear();
        assert_eq!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::NoCheckpoint)
        );
    }

    /// An insider deletes the ticket's newest events and hands over a bundle cut back
    /// to the checkpoint signed before them: the auditor's own newest checkpoint,
    /// fetched from the bucket, is what the bundle must reach.
    #[test]
    fn a_bundle_rolled_back_to_an_older_checkpoint_is_caught_by_the_auditors_own() {
        let w = world();
        let latest = w.bundle.checkpoints[1].clone();
        let mut rolled = w.bundle.clone();
        rolled.checkpoints.truncate(1);
        rolled.log.truncate(4);
        rolled.grants.truncate(1);
        rolled.notes.truncate(3);
        // On its own word alone the cut bundle verifies: that is the gap.
        verify_bundle(&rolled, &w.trust()).unwrap();
        let trust = Trust {
            latest: Some(&latest),
            ..w.trust()
        };
        assert!(matches!(
            verify_bundle(&rolled, &trust),
            Err(VerifyError::LogTruncated { have: 4, size: 7 })
        ));
        verify_bundle(&w.bundle, &trust).unwrap();
    }

    #[test]
    fn a_bundle_of_another_spelling_of_the_ticket_is_refused() {
        let mut w = world();
        w.bundle.ticket = "jira#ops-7".into();
        w.bundle.grants.clear();
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::WrongTicket { .. })
        ));
    }

    #[test]
    fn an_event_dated_after_it_was_logged_is_refused() {
        let mut w = world();
        for e in w.bundle.log.iter_mut().take(3) {
            e.logged_at -= Duration::minutes(30);
        }
        // Re-sign the log as it now stands (an honest signer would have).
        let mut log = Log::new();
        for e in &w.bundle.log {
            log.frontier.append(e.leaf_hash());
        }
        let cp = log.checkpoint(&w.signer);
        w.bundle.checkpoints = vec![cp];
        assert!(matches!(
            verify_bundle(&w.bundle, &w.trust()),
            Err(VerifyError::FutureDated { seq: 1, .. })
        ));
    }
}
