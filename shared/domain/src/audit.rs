//! The audit trail: one append-only sequence of events per grant, hash-chained so that
//! any edit, deletion or reordering is detectable.
//!
//! Each event carries the SHA-256 of the one before it; the first event links to a
//! genesis hash derived from the grant id, so an event cannot be moved to another
//! grant's chain. The grant record stores the head (last sequence number and hash) in
//! the same transaction as the event, which makes a truncated tail detectable too.
//!
//! Events never carry a secret value: the details are what a ticket or an auditor may
//! read (ids, names, ARNs, reasons).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::grant::{Grant, GrantId, GrantState};

/// A SHA-256 digest, hex-encoded when serialised.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The digest a hasher has computed (for the other chains of this crate).
    pub(crate) fn finish(h: Sha256) -> Self {
        Self(h.finalize().into())
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&value, &mut out)
            .map_err(|e| format!("not a SHA-256 hex digest: {e}"))?;
        Ok(Self(out))
    }
}

impl From<Digest> for String {
    fn from(value: Digest) -> String {
        value.to_hex()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Feeds one length-prefixed field to a chain's hash, so that no two different
/// events encode to the same bytes.
pub(crate) fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// Where a grant's chain ends: the last sequence number and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Digest,
}

impl ChainHead {
    /// The head of an empty chain: sequence 0 and a hash bound to the grant id.
    pub fn genesis(grant_id: GrantId) -> Self {
        let mut h = Sha256::new();
        h.update(b"ticketbound-audit-genesis-v1\n");
        h.update(grant_id.to_string().as_bytes());
        Self {
            seq: 0,
            hash: Digest(h.finalize().into()),
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ActorKind {
    /// A person or integration user in the ITSM (requester, approver, the webhook user).
    ItsmUser,
    /// A ticketbound function.
    Component,
    /// A person using the operator CLI.
    Operator,
    /// An AWS service acting on its own (DynamoDB TTL, Secrets Manager rotation).
    AwsService,
}

impl ActorKind {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
}

impl Actor {
    pub fn component(name: &str) -> Self {
        Self {
            kind: ActorKind::Component,
            id: name.to_owned(),
        }
    }

    pub fn itsm_user(id: &str) -> Self {
        Self {
            kind: ActorKind::ItsmUser,
            id: id.to_owned(),
        }
    }

    pub fn operator(id: &str) -> Self {
        Self {
            kind: ActorKind::Operator,
            id: id.to_owned(),
        }
    }
}

/// What happened.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AuditAction {
    Requested,
    PolicyEvaluated,
    Rejected,
    /// The change window has not begun: provisioning waits for its start.
    ProvisioningDeferred,
    ProvisioningStarted,
    Provisioned,
    ProvisioningFailed,
    Rotated,
    RotationRefused,
    RevocationStarted,
    Revoked,
    RevocationFailed,
    TicketUpdated,
    /// A write-back to the ticket failed for good (it is in the dead-letter record).
    TicketUpdateFailed,
    DriftFound,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of one detail of an audit event. Every writer, the ticket notes and the
/// evidence name a detail by its variant, so a detail cannot be renamed in one place
/// and quietly read as absent in another. The string (`snake_case` of the variant) is
/// what the chain hashes: a variant's string never changes once events carry it. Events
/// read back keep any key they were written with (older events, other versions).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
    strum::Display,
)]
#[strum(serialize_all = "snake_case")]
pub enum Detail {
    /// Write-back: the action of the event a note was about.
    About,
    /// Write-back: the sequence number of the event a note was about.
    AboutSeq,
    /// Who approved, as the ITSM names them, `; `-separated.
    ApprovedBy,
    /// Which attempt this is (of a revocation, a provisioning, a write-back).
    Attempt,
    /// How many attempts were made.
    Attempts,
    /// The ticket's change window, as approved.
    ChangeWindow,
    /// The target's connector kind.
    Connector,
    /// Who created the ticket.
    Creator,
    /// Rotation: the secret's version now current.
    CurrentVersion,
    /// The policy's decision (`allow` or `deny`).
    Decision,
    /// Provisioning: the time it was deferred to (the change window's start).
    DeferredUntil,
    /// The inbound delivery (`integration:id`) that brought the approval.
    Delivery,
    /// The target's environment.
    Environment,
    /// Set when a failure was escalated (once).
    Escalated,
    /// The grant's not-after time, as set on the credential.
    ExpiresAt,
    /// The expiry schedule's name.
    ExpirySchedule,
    /// How many attempts failed before this one.
    FailedAttempts,
    /// When the failure began.
    FailingSince,
    /// Reconciliation: what differs between the record and the target.
    Finding,
    /// The identity's name.
    Identity,
    /// The identity's kind.
    IdentityKind,
    /// Provisioning: why the issue at the target failed (it may have done something).
    IssueError,
    /// The requester's justification.
    Justification,
    /// Reconciliation: the kind of finding.
    Kind,
    /// A credential made after the grant ended, and what was done about it.
    LateCredential,
    /// The login at the target.
    Login,
    /// Revocation: logins left disabled instead of dropped, and why.
    LoginsKeptDisabled,
    /// Revocation: members taken out of the grant's roles.
    MembersRemoved,
    /// The grant's not-after time, as requested.
    NotAfter,
    /// Free text (a reconciliation note, a write-back note).
    Note,
    /// Revocation: how many of the grantee's objects were dropped.
    ObjectsDropped,
    /// Revocation: objects kept, owned by the quarantine role.
    ObjectsQuarantined,
    /// Who answers for the identity.
    Owner,
    /// The policies that decided.
    PolicyIds,
    /// The SHA-256 of the policy set that decided.
    PolicySetSha256,
    /// Rotation: the secret's version before.
    PreviousVersion,
    /// The workload principal allowed to read the secret.
    Principal,
    /// Why (a refusal, a failure, a revocation).
    Reason,
    /// The policy's reasons.
    Reasons,
    /// Write-back: the ITSM's reference of the note posted.
    Reference,
    /// Reconciliation: what was done about a finding.
    Remediation,
    /// Whether a retry can help.
    Retryable,
    /// What ends the grant (its not-after time, the ticket's closure).
    RevocationTrigger,
    /// The component that revoked.
    RevokedBy,
    /// Revocation: the login roles dropped at the target.
    RolesDropped,
    /// Whether and how often the credential rotates.
    Rotation,
    /// The rotation period requested.
    RotationPeriodHours,
    /// Revocation: whether the expiry schedule was deleted.
    ScheduleDeleted,
    /// The scope granted.
    Scope,
    /// The Secrets Manager secret's ARN (never its value).
    SecretArn,
    /// Revocation: whether the secret was deleted (or its name, once deleted).
    SecretDeleted,
    /// Revocation: how many of the grantee's sessions were ended.
    SessionsTerminated,
    /// Provisioning: the name of the schedule that issues the grant at its change
    /// window's start.
    StartSchedule,
    /// Rotation: the step of Secrets Manager's protocol.
    Step,
    /// Reconciliation: what the finding is about.
    Subject,
    /// Write-back: the ITSM written to.
    System,
    /// The target system.
    Target,
    /// Revocation: a clean-up at the target that failed, and why.
    TargetCleanupFailed,
    /// Revocation: the target's role kept disabled, and why.
    TargetRoleKeptDisabled,
    /// Revocation: the target's role removed.
    TargetRoleRemoved,
    /// The ticket (`source#key`).
    Ticket,
    /// Where a person opens the ticket.
    TicketLink,
    /// Rotation: the rotation's token (its client request token).
    Token,
    /// What set off a revocation.
    Trigger,
    /// What the approval was verified against (the ITSM's read-back, or the sender).
    VerifiedAgainst,
    /// Revocation: the target's receipt that the credential is refused.
    VerifiedAtTarget,
    /// The workload principal requested.
    WorkloadPrincipal,
}

impl Detail {
    /// The key as events carry it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The content of an audit event before it is placed in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    pub state_before: Option<GrantState>,
    pub state_after: Option<GrantState>,
    pub details: BTreeMap<String, String>,
}

impl AuditRecord {
    pub fn new(at: DateTime<Utc>, actor: Actor, action: AuditAction) -> Self {
        Self {
            at,
            actor,
            action,
            state_before: None,
            state_after: None,
            details: BTreeMap::new(),
        }
    }

    pub fn states(mut self, before: Option<GrantState>, after: Option<GrantState>) -> Self {
        self.state_before = before;
        self.state_after = after;
        self
    }

    /// Adds a detail. Never pass a secret value here: details are shown on tickets.
    pub fn detail(mut self, key: Detail, value: impl fmt::Display) -> Self {
        self.details
            .insert(key.as_str().to_owned(), value.to_string());
        self
    }

    /// [`Self::detail`] for each pair (what an effect reports it did).
    pub fn details<'a, V: fmt::Display + 'a>(
        mut self,
        pairs: impl IntoIterator<Item = &'a (Detail, V)>,
    ) -> Self {
        for (k, v) in pairs {
            self.details.insert(k.as_str().to_owned(), v.to_string());
        }
        self
    }
}

/// One sealed event in a grant's audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub grant_id: GrantId,
    /// 1 for the first event of a grant, then one more for each.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_before: Option<GrantState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_after: Option<GrantState>,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    pub prev_hash: Digest,
    pub hash: Digest,
}

impl AuditEvent {
    /// The detail `key`, if the event carries it.
    pub fn detail(&self, key: Detail) -> Option<&str> {
        self.details.get(key.as_str()).map(String::as_str)
    }

    /// Seals `record` as the event after `head` in `grant_id`'s chain.
    pub fn seal(grant_id: GrantId, head: &ChainHead, record: AuditRecord) -> Self {
        let mut event = Self {
            grant_id,
            seq: head.seq + 1,
            at: record.at,
            actor: record.actor,
            action: record.action,
            state_before: record.state_before,
            state_after: record.state_after,
            details: record.details,
            prev_hash: head.hash,
            hash: head.hash,
        };
        event.hash = event.compute_hash();
        event
    }

    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// SHA-256 over an unambiguous encoding of every field but `hash`: each field is
    /// length-prefixed, so no two different events encode to the same bytes.
    pub fn compute_hash(&self) -> Digest {
        let state = |s: Option<GrantState>| s.map_or("", GrantState::as_str);
        let mut h = Sha256::new();
        h.update(b"ticketbound-audit-v1\n");
        field(&mut h, self.grant_id.to_string().as_bytes());
        field(&mut h, &self.seq.to_be_bytes());
        field(&mut h, &self.at.timestamp().to_be_bytes());
        field(&mut h, &self.at.timestamp_subsec_nanos().to_be_bytes());
        field(&mut h, self.actor.kind.as_str().as_bytes());
        field(&mut h, self.actor.id.as_bytes());
        field(&mut h, self.action.as_str().as_bytes());
        field(&mut h, state(self.state_before).as_bytes());
        field(&mut h, state(self.state_after).as_bytes());
        field(&mut h, &(self.details.len() as u64).to_be_bytes());
        for (k, v) in &self.details {
            field(&mut h, k.as_bytes());
            field(&mut h, v.as_bytes());
        }
        field(&mut h, &self.prev_hash.0);
        Digest(h.finalize().into())
    }
}

impl Grant {
    /// Seals `record` onto this grant's chain and moves the grant's head to it. The
    /// caller stores the grant and the returned event together, in one transaction.
    pub fn record(&mut self, record: AuditRecord) -> AuditEvent {
        let event = AuditEvent::seal(self.id, &self.audit_head, record);
        self.audit_head = event.head();
        event
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainErrorKind {
    /// The event's content does not match its hash: it was edited.
    Tampered,
    /// The event does not link to the hash of the one before it.
    BrokenLink,
    /// A sequence number is missing or out of order: an event was removed or moved.
    OutOfSequence,
    /// The event belongs to another grant.
    ForeignEvent,
    /// The chain ends before the head the grant record holds: events were removed.
    Truncated,
    /// The chain is longer than, or differs from, the head the grant record holds.
    HeadMismatch,
}

/// Where and how a chain failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("audit chain of grant {grant_id} breaks at sequence {seq}: {kind:?}")]
pub struct ChainError {
    pub grant_id: GrantId,
    /// The sequence number where the break was found.
    pub seq: u64,
    pub kind: ChainErrorKind,
}

/// What a chain walk needs of one event, whatever its chain.
pub(crate) struct Link {
    /// The event names this chain's subject (its grant, its identity).
    pub belongs: bool,
    pub seq: u64,
    pub prev_hash: Digest,
    pub hash: Digest,
    /// What its content hashes to now.
    pub computed: Digest,
    /// What the chain's own rules say of it after the one before (always true for
    /// grants; the registry's history rules for identities).
    pub coherent: bool,
}

/// Walks a chain from `genesis`: each link must belong, come next, hash to its hash,
/// link to the one before and be coherent; then, when `head` is given, the chain must
/// end exactly there. Where and how it broke, otherwise.
pub(crate) fn walk_chain(
    genesis: ChainHead,
    links: impl IntoIterator<Item = Link>,
    head: Option<&ChainHead>,
) -> Result<ChainHead, (u64, ChainErrorKind)> {
    let mut running = genesis;
    for link in links {
        let expected_seq = running.seq + 1;
        if !link.belongs {
            return Err((expected_seq, ChainErrorKind::ForeignEvent));
        }
        if link.seq != expected_seq {
            return Err((expected_seq, ChainErrorKind::OutOfSequence));
        }
        if link.computed != link.hash {
            return Err((link.seq, ChainErrorKind::Tampered));
        }
        if link.prev_hash != running.hash {
            return Err((link.seq, ChainErrorKind::BrokenLink));
        }
        if !link.coherent {
            return Err((link.seq, ChainErrorKind::Tampered));
        }
        running = ChainHead {
            seq: link.seq,
            hash: link.hash,
        };
    }
    if let Some(head) = head {
        if head.seq > running.seq {
            return Err((running.seq + 1, ChainErrorKind::Truncated));
        }
        if *head != running {
            return Err((running.seq, ChainErrorKind::HeadMismatch));
        }
    }
    Ok(running)
}

/// Verifies `events` (in stored order) as the whole chain of `grant_id`, and, when the
/// grant record's `head` is given, that the chain ends exactly there.
pub fn verify_chain(
    grant_id: GrantId,
    events: &[AuditEvent],
    head: Option<&ChainHead>,
) -> Result<ChainHead, ChainError> {
    let links = events.iter().map(|e| Link {
        belongs: e.grant_id == grant_id,
        seq: e.seq,
        prev_hash: e.prev_hash,
        hash: e.hash,
        computed: e.compute_hash(),
        coherent: true,
    });
    walk_chain(ChainHead::genesis(grant_id), links, head).map_err(|(seq, kind)| ChainError {
        grant_id,
        seq,
        kind,
    })
}
