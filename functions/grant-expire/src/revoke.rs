//! Revoking one grant, idempotently, whichever trigger asks.

use chrono::{DateTime, Duration, Utc};
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, EndCause, ExpiryTrigger, Grant, GrantEvent, GrantId,
    GrantState, LifecycleRules, Transition,
};
use ticketbound_enforce::EnforceError;
use ticketbound_store::{AdvanceError, StoreError};

use crate::{COMPONENT, Deps, ExpiryTriggerOrEnd};

/// Schedules fire within a minute of their time and clocks drift: a trigger this far
/// ahead of the not-after time still counts as on time.
const EARLY_TOLERANCE: Duration = Duration::seconds(60);

#[derive(Debug, thiserror::Error)]
pub enum ExpireError {
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the credential could not be revoked")]
    Enforce(#[from] EnforceError),
    #[error("the grant could not be moved on")]
    Advance(#[from] AdvanceError),
}

impl ExpireError {
    /// Every failure of a revocation is worth retrying except a configuration that no
    /// retry can fix; even then the trigger is reported, never dropped.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Enforce(e) => e.is_retryable(),
            Self::Advance(e) => e.is_retryable(),
        }
    }
}

/// What a trigger achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// This call revoked it.
    Now,
    /// Another trigger got there first, or the grant ended otherwise.
    AlreadyDone(GrantState),
    /// The trigger came early (a schedule far ahead of the not-after time): nothing done.
    NotDue,
    /// No such grant (its record outlived its retention).
    Missing,
}

fn trigger_name(cause: Option<EndCause>) -> &'static str {
    match cause {
        Some(EndCause::Expired(ExpiryTrigger::Schedule)) => "schedule",
        Some(EndCause::Expired(ExpiryTrigger::TtlBackstop)) => "ttl_backstop",
        Some(EndCause::Expired(ExpiryTrigger::Sweep)) => "sweep",
        Some(EndCause::Expired(ExpiryTrigger::Rotation)) => "rotation_after_expiry",
        Some(EndCause::Expired(ExpiryTrigger::LateEvent)) => "late_event",
        Some(EndCause::TicketWithdrawn) => "ticket_withdrawn",
        Some(EndCause::TicketClosed) => "ticket_closed",
        Some(EndCause::PolicyDenied) => "policy_denied",
        Some(EndCause::ProvisioningFailed) => "provisioning_failed",
        None => "unknown",
    }
}

/// Applies `event` and saves it with one audit record, re-reading on a conflict.
/// Returns the grant as stored and whether it changed.
async fn advance(
    deps: &Deps,
    grant: Grant,
    event: &GrantEvent,
    at: DateTime<Utc>,
    details: &[(&'static str, String)],
) -> Result<(Grant, bool), ExpireError> {
    let record = |next: &Grant, t: &Transition| {
        let action = match t.to {
            GrantState::Revoked => AuditAction::Revoked,
            _ => AuditAction::RevocationStarted,
        };
        let mut r = AuditRecord::new(at, Actor::component(COMPONENT), action)
            .states(Some(t.from), Some(t.to))
            .detail("trigger", trigger_name(next.end_cause));
        for (k, v) in details {
            r = r.detail(k, v);
        }
        r
    };
    let (grant, t) = deps
        .store
        .advance(grant, event, at, &LifecycleRules::default(), record)
        .await?;
    Ok((grant, t.changed))
}

/// Records a failed attempt in the grant's audit trail (best effort: the failure
/// itself is what the caller reports).
async fn note_failure(deps: &Deps, grant: &Grant, error: &ExpireError, at: DateTime<Utc>) {
    let mut next = grant.noted(at);
    let audit = next.record(
        AuditRecord::new(
            at,
            Actor::component(COMPONENT),
            AuditAction::RevocationFailed,
        )
        .states(Some(grant.state), Some(grant.state))
        .detail("reason", ticketbound_runtime::error_chain(error))
        .detail("retryable", error.is_retryable()),
    );
    if let Err(e) = deps.store.save_grant(&next, &[audit]).await {
        tracing::warn!(grant_id = %grant.id, error = %e, "could not audit the failed revocation");
    }
}

/// Revokes grant `id` for `trigger` at `now`.
pub async fn revoke_grant(
    deps: &Deps,
    id: GrantId,
    trigger: ExpiryTriggerOrEnd,
    now: DateTime<Utc>,
) -> Result<Revoked, ExpireError> {
    let Some(grant) = deps.store.get_grant(id).await? else {
        return Ok(Revoked::Missing);
    };
    if grant.state.is_terminal() {
        return Ok(Revoked::AlreadyDone(grant.state));
    }
    let grant = match (grant.state, trigger) {
        (GrantState::Revoking, _) => grant,
        (_, ExpiryTriggerOrEnd::AlreadyEnding) => return Ok(Revoked::AlreadyDone(grant.state)),
        (_, ExpiryTriggerOrEnd::Expiry(t)) => {
            if now + EARLY_TOLERANCE < grant.not_after() {
                tracing::warn!(grant_id = %id, trigger = ?t, not_after = %grant.not_after(), "expiry trigger before the not-after time; ignored");
                return Ok(Revoked::NotDue);
            }
            let (grant, _) =
                advance(deps, grant, &GrantEvent::Expired { trigger: t }, now, &[]).await?;
            if grant.state.is_terminal() {
                // Nothing was ever issued (it was still Approved).
                return Ok(Revoked::Now);
            }
            grant
        }
    };
    if grant.state != GrantState::Revoking {
        return Ok(Revoked::AlreadyDone(grant.state));
    }

    let revocation = match deps.enforcer.revoke(&grant).await {
        Ok(r) => r,
        Err(e) => {
            let e = ExpireError::from(e);
            note_failure(deps, &grant, &e, now).await;
            return Err(e);
        }
    };
    let (grant, changed) = advance(
        deps,
        grant,
        &GrantEvent::RevokeConfirmed,
        chrono::Utc::now(),
        &revocation.details(),
    )
    .await?;
    Ok(if changed {
        Revoked::Now
    } else {
        Revoked::AlreadyDone(grant.state)
    })
}
