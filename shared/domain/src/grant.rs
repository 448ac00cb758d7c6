//! A grant and its lifecycle, as one pure function from (grant, event, time) to the
//! next grant and the effects the caller must carry out.
//!
//! ```text
//! Approved ──start──► Provisioning ──provisioned──► Active ──expired/withdrawn──► Revoking ──confirmed──► Revoked
//!    │                    │   └─failed (give up)──► Failed ──expired/withdrawn──┘
//!    └─expired/withdrawn──┴────────────────────────────────► (Revoked if nothing was issued, else Revoking)
//! Rejected: created so by intake when policy denies; terminal like Revoked.
//! ```
//!
//! Delivery is at least once everywhere, so an event that has already had its effect
//! (a second expiry trigger, a redelivered provisioning start) is a no-op, not an
//! error. Errors are kept for events that cannot be right in the state the grant is in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::ChainHead;
use crate::model::{AccessRequest, RevocationTrigger};

/// A grant's id: a ULID, so that ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrantId(ulid::Ulid);

impl GrantId {
    /// A new id for a grant created at `at`, with `entropy` from the caller's source of
    /// randomness (the domain has none of its own).
    pub fn new(at: DateTime<Utc>, entropy: u128) -> Self {
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        Self(ulid::Ulid::from_parts(ms, entropy))
    }

    pub fn from_ulid(id: ulid::Ulid) -> Self {
        Self(id)
    }
}

impl FromStr for GrantId {
    type Err = ulid::DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s).map(Self)
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrantId({})", self.0)
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
pub enum GrantState {
    Approved,
    Provisioning,
    Active,
    Revoking,
    Revoked,
    Rejected,
    Failed,
}

impl GrantState {
    /// No event moves a grant out of a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Revoked | Self::Rejected)
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for GrantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the credential lives, never what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRef {
    /// The Secrets Manager secret that holds the value.
    pub secret_arn: String,
    /// The identifier at the target (a login role's name, an API key's id).
    pub principal_name: String,
}

/// Which of the expiry paths noticed that the grant's time was up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryTrigger {
    /// The EventBridge Scheduler one-time schedule at the not-after time.
    Schedule,
    /// DynamoDB TTL removed the grant's expiry trigger item.
    TtlBackstop,
    /// The periodic sweep found the grant overdue.
    Sweep,
    /// A rotation was asked for after the not-after time.
    Rotation,
    /// Another event arrived for an Active grant after its not-after time, before any
    /// expiry path had fired.
    LateEvent,
}

/// Why a grant ended (or is ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "cause", content = "via")]
pub enum EndCause {
    Expired(ExpiryTrigger),
    TicketWithdrawn,
    TicketClosed,
    PolicyDenied,
    ProvisioningFailed,
}

impl EndCause {
    /// What ended the grant, in words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Expired(ExpiryTrigger::Schedule) => "its expiry schedule",
            Self::Expired(ExpiryTrigger::TtlBackstop) => "the DynamoDB TTL backstop",
            Self::Expired(ExpiryTrigger::Sweep) => "the sweep of overdue grants",
            Self::Expired(ExpiryTrigger::Rotation) => "a rotation asked for after its time",
            Self::Expired(ExpiryTrigger::LateEvent) => "an event that came after its time",
            Self::TicketWithdrawn => "the withdrawal of its ticket",
            Self::TicketClosed => "the closure of its ticket",
            Self::PolicyDenied => "a policy denial",
            Self::ProvisioningFailed => "a provisioning that failed",
        }
    }
}

/// What happened to a grant, as reported by a handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum GrantEvent {
    /// The ticket's change window has not begun: the grant waits, Approved, for a
    /// one-time schedule at `until` (the window's start) to provision it.
    ProvisioningDeferred {
        until: DateTime<Utc>,
    },
    ProvisioningStarted,
    Provisioned {
        credential: CredentialRef,
    },
    ProvisioningFailed {
        reason: String,
        retryable: bool,
    },
    /// A rotation finished: the secret's AWSCURRENT version is now `version_id`.
    Rotated {
        version_id: String,
    },
    Expired {
        trigger: ExpiryTrigger,
    },
    /// The ticket was cancelled, rolled back or its approval withdrawn.
    TicketWithdrawn,
    /// The ticket was closed or resolved normally.
    TicketClosed,
    RevokeConfirmed,
}

/// The name of an event without its data, for errors and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ProvisioningDeferred,
    ProvisioningStarted,
    Provisioned,
    ProvisioningFailed,
    Rotated,
    Expired,
    TicketWithdrawn,
    TicketClosed,
    RevokeConfirmed,
}

impl GrantEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            Self::ProvisioningDeferred { .. } => EventKind::ProvisioningDeferred,
            Self::ProvisioningStarted => EventKind::ProvisioningStarted,
            Self::Provisioned { .. } => EventKind::Provisioned,
            Self::ProvisioningFailed { .. } => EventKind::ProvisioningFailed,
            Self::Rotated { .. } => EventKind::Rotated,
            Self::Expired { .. } => EventKind::Expired,
            Self::TicketWithdrawn => EventKind::TicketWithdrawn,
            Self::TicketClosed => EventKind::TicketClosed,
            Self::RevokeConfirmed => EventKind::RevokeConfirmed,
        }
    }
}

/// Work the caller must do because of a transition. Each is idempotent at the
/// adapters, since the transition that asked for it may be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Create the credential at the target, store it, turn on rotation, schedule expiry.
    IssueCredential,
    /// Kill the credential at the target (and its sessions), delete the secret and
    /// the schedule. Also used to clean up after a provisioning that gave up.
    RevokeCredential,
}

/// Settings of the lifecycle that are configuration, not law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleRules {
    /// How many provisioning attempts before the grant is marked Failed.
    pub max_provisioning_attempts: u32,
}

impl Default for LifecycleRules {
    fn default() -> Self {
        Self {
            max_provisioning_attempts: 5,
        }
    }
}

/// An event that cannot be right for the grant's state. Nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("grant is {state}; it has ended and takes no {event:?} event")]
    Terminal { state: GrantState, event: EventKind },
    #[error("a {event:?} event is not possible for a grant that is {state}")]
    Illegal { state: GrantState, event: EventKind },
    #[error("grant already holds credential {recorded}; a second one ({reported}) was reported")]
    CredentialMismatch { recorded: String, reported: String },
    /// Nothing is issued before the ticket's change window begins.
    #[error("the ticket's change window begins at {starts_at}; nothing is issued before it")]
    BeforeChangeWindow { starts_at: DateTime<Utc> },
}

/// The result of applying one event: the state before and after and the effects to
/// carry out. `changed == false` means the event had already had its effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: GrantState,
    pub to: GrantState,
    pub effects: Vec<Effect>,
    pub changed: bool,
}

/// A grant of access: the approved request plus where it is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: GrantId,
    pub request: AccessRequest,
    pub state: GrantState,
    /// Optimistic-locking version; each stored change increments it by one.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub provisioning_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated_at: Option<DateTime<Utc>>,
    /// The secret version the last completed rotation made current (a Secrets Manager
    /// version id, never a value); a rotation reported twice is recognised by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_version: Option<String>,
    /// Set by the first event that starts the end of the grant; never overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_cause: Option<EndCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Policy reasons, for a Rejected grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejection_reasons: Vec<String>,
    /// The last audit event written with this grant; the audit chain must end here.
    pub audit_head: ChainHead,
    /// When provisioning was deferred to (the change window's start), once it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_until: Option<DateTime<Utc>>,
}

impl Grant {
    /// A grant for an approved request, about to be provisioned.
    pub fn approved(id: GrantId, request: AccessRequest, at: DateTime<Utc>) -> Self {
        Self::new(id, request, GrantState::Approved, at)
    }

    /// A grant whose request policy denied: recorded, never provisioned.
    pub fn rejected(
        id: GrantId,
        request: AccessRequest,
        reasons: Vec<String>,
        at: DateTime<Utc>,
    ) -> Self {
        let mut grant = Self::new(id, request, GrantState::Rejected, at);
        grant.end_cause = Some(EndCause::PolicyDenied);
        grant.ended_at = Some(at);
        grant.rejection_reasons = reasons;
        grant
    }

    fn new(id: GrantId, request: AccessRequest, state: GrantState, at: DateTime<Utc>) -> Self {
        Self {
            id,
            request,
            state,
            version: 1,
            created_at: at,
            updated_at: at,
            provisioning_attempts: 0,
            last_error: None,
            credential: None,
            last_rotated_at: None,
            secret_version: None,
            end_cause: None,
            ended_at: None,
            rejection_reasons: Vec::new(),
            audit_head: ChainHead::genesis(id),
            deferred_until: None,
        }
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.request.not_after
    }

    /// The start of the ticket's change window when it is later than `at`: nothing
    /// may be issued before it.
    pub fn window_starts_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.request
            .change_window
            .map(|w| w.start)
            .filter(|start| *start > at)
    }

    /// True once the not-after time is reached: the grant must no longer be Active.
    pub fn is_expired_at(&self, at: DateTime<Utc>) -> bool {
        at >= self.request.not_after
    }

    /// Applies `event` at time `at`. On success returns the grant as it must be stored
    /// (version incremented if anything changed) and the transition.
    pub fn apply(
        &self,
        event: &GrantEvent,
        at: DateTime<Utc>,
        rules: &LifecycleRules,
    ) -> Result<(Grant, Transition), TransitionError> {
        use GrantState as S;

        let mut next = self.clone();
        let from = self.state;
        let kind = event.kind();
        let illegal = || TransitionError::Illegal {
            state: from,
            event: kind,
        };
        let expired = self.is_expired_at(at);
        let mut effects = Vec::new();

        if from.is_terminal() {
            // Replays of triggers and confirmations are normal; something that claims
            // work was done for an ended grant is not, and the caller must undo it.
            return match event {
                GrantEvent::Provisioned { .. } | GrantEvent::Rotated { .. } => {
                    Err(TransitionError::Terminal {
                        state: from,
                        event: kind,
                    })
                }
                _ => Ok(self.unchanged()),
            };
        }

        // Whatever touches an Active grant past its not-after time ends it: a grant is
        // never Active after its time, even if every expiry path has yet to fire.
        if from == S::Active && expired {
            let ends_anyway = matches!(
                event,
                GrantEvent::Expired { .. } | GrantEvent::TicketWithdrawn
            ) || (matches!(event, GrantEvent::TicketClosed)
                && self.revokes_on_closure());
            if !ends_anyway {
                if let GrantEvent::Provisioned { credential } = event {
                    self.check_same_credential(credential)?;
                }
                if matches!(event, GrantEvent::RevokeConfirmed) {
                    return Err(illegal());
                }
                let trigger = match event {
                    GrantEvent::Rotated { version_id } => {
                        next.record_rotation(version_id, at);
                        ExpiryTrigger::Rotation
                    }
                    _ => ExpiryTrigger::LateEvent,
                };
                next.end(EndCause::Expired(trigger), S::Revoking, at);
                effects.push(Effect::RevokeCredential);
                return Ok(next.finish(self, effects, at));
            }
        }

        match (from, event) {
            (S::Approved, GrantEvent::ProvisioningStarted) if expired => {
                // Nothing was issued, so there is nothing to revoke.
                next.end(EndCause::Expired(ExpiryTrigger::Sweep), S::Revoked, at);
            }
            (S::Provisioning, GrantEvent::ProvisioningStarted) if expired => {
                // A retry after the time is up: clean up whatever the earlier attempt made.
                next.end(EndCause::Expired(ExpiryTrigger::Sweep), S::Revoking, at);
                effects.push(Effect::RevokeCredential);
            }
            (S::Approved | S::Provisioning, GrantEvent::ProvisioningStarted) => {
                if let Some(starts_at) = self.window_starts_after(at) {
                    return Err(TransitionError::BeforeChangeWindow { starts_at });
                }
                next.state = S::Provisioning;
                next.provisioning_attempts += 1;
                effects.push(Effect::IssueCredential);
            }
            (S::Approved, GrantEvent::ProvisioningDeferred { until }) => {
                if self.deferred_until == Some(*until) {
                    // The same deferral again (the stream redelivered the record).
                    return Ok(self.unchanged());
                }
                if self.window_starts_after(at) != Some(*until) {
                    // Deferred to anything but the window's start, or once it began.
                    return Err(illegal());
                }
                next.deferred_until = Some(*until);
            }
            (S::Approved, GrantEvent::ProvisioningFailed { reason, retryable }) if !*retryable => {
                // Nothing could be set in motion for it (its change window's start
                // schedule was refused for good): it fails before anything was made.
                next.last_error = Some(reason.clone());
                next.state = S::Failed;
                next.end_cause.get_or_insert(EndCause::ProvisioningFailed);
            }
            (S::Approved, GrantEvent::Expired { trigger }) => {
                next.end(EndCause::Expired(*trigger), S::Revoked, at);
            }
            (S::Approved, GrantEvent::TicketWithdrawn) => {
                next.end(EndCause::TicketWithdrawn, S::Revoked, at);
            }
            (S::Approved, GrantEvent::TicketClosed) if self.revokes_on_closure() => {
                next.end(EndCause::TicketClosed, S::Revoked, at);
            }

            (S::Provisioning, GrantEvent::Provisioned { credential }) => {
                self.check_same_credential(credential)?;
                next.credential = Some(credential.clone());
                next.last_error = None;
                if expired {
                    next.end(EndCause::Expired(ExpiryTrigger::Sweep), S::Revoking, at);
                    effects.push(Effect::RevokeCredential);
                } else {
                    next.state = S::Active;
                }
            }
            (S::Provisioning, GrantEvent::ProvisioningFailed { reason, retryable }) => {
                next.last_error = Some(reason.clone());
                if !*retryable || self.provisioning_attempts >= rules.max_provisioning_attempts {
                    next.state = S::Failed;
                    next.end_cause.get_or_insert(EndCause::ProvisioningFailed);
                    effects.push(Effect::RevokeCredential);
                }
            }

            (S::Active, GrantEvent::Rotated { version_id })
                if self.secret_version.as_deref() == Some(version_id) =>
            {
                // The same rotation reported again (finishSecret retried).
                return Ok(self.unchanged());
            }
            (S::Active, GrantEvent::Rotated { version_id }) => {
                next.record_rotation(version_id, at);
            }

            (S::Provisioning | S::Active | S::Failed, GrantEvent::Expired { trigger }) => {
                next.end(EndCause::Expired(*trigger), S::Revoking, at);
                effects.push(Effect::RevokeCredential);
            }
            (S::Provisioning | S::Active | S::Failed, GrantEvent::TicketWithdrawn) => {
                next.end(EndCause::TicketWithdrawn, S::Revoking, at);
                effects.push(Effect::RevokeCredential);
            }
            (S::Provisioning | S::Active | S::Failed, GrantEvent::TicketClosed)
                if self.revokes_on_closure() =>
            {
                next.end(EndCause::TicketClosed, S::Revoking, at);
                effects.push(Effect::RevokeCredential);
            }
            (S::Failed, GrantEvent::Provisioned { credential }) => {
                // A late success after we gave up: the credential must not live.
                next.credential.get_or_insert_with(|| credential.clone());
                next.end(EndCause::ProvisioningFailed, S::Revoking, at);
                effects.push(Effect::RevokeCredential);
            }

            (S::Revoking, GrantEvent::RevokeConfirmed) => {
                next.state = S::Revoked;
                next.ended_at = Some(at);
            }
            (S::Revoking, GrantEvent::Provisioned { credential }) => {
                // Provisioning finished after revocation began: record what was made
                // so that revocation covers it too.
                if next.credential.is_none() {
                    next.credential = Some(credential.clone());
                    effects.push(Effect::RevokeCredential);
                } else {
                    self.check_same_credential(credential)?;
                }
            }

            // Replays and stragglers: the event has already had its effect.
            (S::Revoking, _)
            | (S::Approved | S::Provisioning | S::Active | S::Failed, GrantEvent::TicketClosed)
            | (S::Active, GrantEvent::ProvisioningStarted)
            | (S::Active, GrantEvent::ProvisioningFailed { .. })
            | (S::Failed, GrantEvent::ProvisioningFailed { .. })
            // A deferral that lost the race with the start schedule: moot.
            | (
                S::Provisioning | S::Active | S::Failed,
                GrantEvent::ProvisioningDeferred { .. },
            ) => {
                return Ok(self.unchanged());
            }
            (S::Active, GrantEvent::Provisioned { credential }) => {
                self.check_same_credential(credential)?;
                return Ok(self.unchanged());
            }

            (S::Approved, GrantEvent::Provisioned { .. })
            | (S::Approved, GrantEvent::ProvisioningFailed { .. })
            | (S::Approved | S::Provisioning | S::Failed, GrantEvent::Rotated { .. })
            | (
                S::Approved | S::Provisioning | S::Active | S::Failed,
                GrantEvent::RevokeConfirmed,
            )
            | (S::Failed, GrantEvent::ProvisioningStarted) => return Err(illegal()),

            (S::Revoked | S::Rejected, _) => return Ok(self.unchanged()),
        }

        Ok(next.finish(self, effects, at))
    }

    /// Completes a change from `before`: bumps the version and stamps the time.
    fn finish(
        mut self,
        before: &Grant,
        effects: Vec<Effect>,
        at: DateTime<Utc>,
    ) -> (Grant, Transition) {
        self.version = before.version + 1;
        self.updated_at = at;
        let transition = Transition {
            from: before.state,
            to: self.state,
            effects,
            changed: true,
        };
        (self, transition)
    }

    /// The grant as stored with nothing changed but a note in its record (a failed
    /// revocation attempt, say): the version moves so that the audit event is written
    /// in the same conditional transaction as every other change.
    pub fn noted(&self, at: DateTime<Utc>) -> Grant {
        let mut next = self.clone();
        next.version += 1;
        next.updated_at = at;
        next
    }

    fn unchanged(&self) -> (Grant, Transition) {
        (
            self.clone(),
            Transition {
                from: self.state,
                to: self.state,
                effects: Vec::new(),
                changed: false,
            },
        )
    }

    fn revokes_on_closure(&self) -> bool {
        self.request.revocation_trigger == RevocationTrigger::NotAfterOrTicketClosed
    }

    fn check_same_credential(&self, reported: &CredentialRef) -> Result<(), TransitionError> {
        match &self.credential {
            Some(recorded) if recorded != reported => Err(TransitionError::CredentialMismatch {
                recorded: recorded.principal_name.clone(),
                reported: reported.principal_name.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn record_rotation(&mut self, version_id: &str, at: DateTime<Utc>) {
        self.last_rotated_at = Some(at);
        self.secret_version = Some(version_id.to_owned());
    }

    /// Starts the end of the grant. The first cause wins: later triggers are replays.
    fn end(&mut self, cause: EndCause, state: GrantState, at: DateTime<Utc>) {
        self.end_cause.get_or_insert(cause);
        self.state = state;
        if state.is_terminal() {
            self.ended_at = Some(at);
        }
    }
}
