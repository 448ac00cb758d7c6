//! Revoking one grant, idempotently, whichever trigger asks.

use chrono::{DateTime, Duration, Utc};
use ticketbound_domain::Detail;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, EndCause, ExpiryTrigger, Grant, GrantEvent, GrantId,
    GrantState, LifecycleRules, Transition,
};
use ticketbound_enforce::EnforceError;
use ticketbound_store::{AdvanceError, StoreError, Told};

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
pub enum RevokeOutcome {
    /// This call revoked it.
    Now,
    /// Another trigger got there first, or the grant ended otherwise.
    AlreadyDone(GrantState),
    /// The trigger came early (a schedule far ahead of the not-after time): nothing done.
    NotDue,
    /// No such grant (its record outlived its retention).
    Missing,
    /// The target failed; a retry is scheduled (after `attempt` failures). The
    /// trigger is answered, so that it holds nothing else back.
    Deferred { attempt: u32 },
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
    details: &[(Detail, String)],
) -> Result<(Grant, bool), ExpireError> {
    let record = |next: &Grant, t: &Transition| {
        let action = match t.to {
            GrantState::Revoked => AuditAction::Revoked,
            _ => AuditAction::RevocationStarted,
        };
        AuditRecord::new(at, Actor::component(COMPONENT), action)
            .states(Some(t.from), Some(t.to))
            .detail(Detail::Trigger, trigger_name(next.end_cause))
            .details(details)
    };
    let (grant, t) = deps
        .store
        .advance(grant, event, at, &LifecycleRules::default(), record)
        .await?;
    Ok((grant, t.changed))
}

/// A failed attempt, told once: the first failure of a grant's revocation is audited
/// (and so reaches the ticket) with its reason; later ones are counted in its retry
/// record and the metric only, until one escalates (once, when the first failure is
/// older than the configured limit) or the revocation succeeds. The next attempt is
/// a one-time schedule with backoff, so the stream or schedule that asked is answered
/// and holds nothing back. Without a schedule target the error goes back to the
/// trigger, which retries as before.
async fn defer(
    deps: &Deps,
    grant: &Grant,
    error: ExpireError,
    now: DateTime<Utc>,
) -> Result<RevokeOutcome, ExpireError> {
    let reason = ticketbound_runtime::error_chain(&error);
    let can_schedule = deps.enforcer.schedules.can_create();
    let retry_max = deps.config.retry_max;
    let wait_after = |attempts: u32| {
        Duration::from_std(backoff(attempts, retry_max)).unwrap_or(Duration::seconds(60))
    };
    let recorded = deps
        .store
        .record_revocation_failure(grant, &reason, now, deps.config.escalate_after, wait_after)
        .await?;
    let attempt = recorded.retry.attempts;
    tracing::warn!(grant_id = %grant.id, attempt, error = %reason, "revocation failed");
    for (tell, what) in [
        (recorded.first, Told::FirstFailure),
        (recorded.escalated, Told::Escalation),
    ] {
        if !tell {
            continue;
        }
        let escalated = what == Told::Escalation;
        if escalated {
            ticketbound_runtime::metrics::count(COMPONENT, "RevocationEscalations", 1);
            tracing::error!(grant_id = %grant.id, attempt, since = %recorded.retry.first_failed_at, "revocation keeps failing; escalated");
        }
        let first_failed_at = recorded.retry.first_failed_at.to_rfc3339();
        // Told only once the note is in the trail: should it fail, a later attempt
        // takes the telling over (after a minute), so it is never silently lost.
        deps.store
            .note(grant.id, now, |g| {
                let mut r = AuditRecord::new(
                    now,
                    Actor::component(COMPONENT),
                    AuditAction::RevocationFailed,
                )
                .states(Some(g.state), Some(g.state))
                .detail(Detail::Reason, &reason)
                .detail(Detail::Retryable, error.is_retryable())
                .detail(Detail::Attempt, attempt)
                .detail(Detail::FailingSince, &first_failed_at);
                if escalated {
                    r = r.detail(Detail::Escalated, "true");
                }
                r
            })
            .await?;
        deps.store.mark_told(grant.id, what).await?;
    }
    if !can_schedule {
        return Err(error);
    }
    // One pending retry per grant: an attempt while it waits (the sweep, a
    // redelivered record) counts, and leaves the retry to the schedule already there.
    if let Some(at) = recorded.schedule_at {
        // Never in the past, however long this attempt took.
        let at = at.max(Utc::now() + Duration::seconds(5));
        deps.enforcer
            .schedules
            .ensure_retry(grant, attempt, at)
            .await
            .map_err(EnforceError::from)?;
    }
    Ok(RevokeOutcome::Deferred { attempt })
}

/// The waits before revoking again at once when the last try failed on a passing
/// AWS fault (a throttle, a 5xx, a lost answer the SDK's own attempts did not get
/// past): it then costs a second, not a deferred retry and a "revocation failed"
/// note on the ticket. Revocation is idempotent, so a try that half-happened is safe
/// to repeat. A target that cannot be reached is deferred at once, as before: trying
/// it again here would only hold back the grants behind it in the batch.
const QUICK_RETRIES: [std::time::Duration; 2] = [
    std::time::Duration::from_millis(200),
    std::time::Duration::from_millis(800),
];

async fn revoke_at_target(
    deps: &Deps,
    grant: &Grant,
) -> Result<ticketbound_enforce::Revocation, EnforceError> {
    let mut waits = QUICK_RETRIES.iter();
    loop {
        match deps.enforcer.revoke(grant).await {
            Err(e) if e.is_passing_aws_fault() => {
                let Some(wait) = waits.next() else {
                    return Err(e);
                };
                tracing::info!(grant_id = %grant.id, error = %ticketbound_runtime::error_chain(&e), "revocation failed; trying again at once");
                tokio::time::sleep(*wait).await;
            }
            done => return done,
        }
    }
}

/// 5 s after the first failure, doubling, at most `max`.
fn backoff(attempt: u32, max: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(5u64.saturating_mul(1 << attempt.saturating_sub(1).min(16)))
        .min(max)
}

/// A grant recorded ended whose target may still hold something of it (a credential
/// issued or set after the revocation, whose undoing failed): revoked again, and the
/// success told; a failure is deferred like any other.
async fn revoke_after_end(
    deps: &Deps,
    grant: Grant,
    retry: ticketbound_store::RevocationRetry,
    now: DateTime<Utc>,
) -> Result<RevokeOutcome, ExpireError> {
    let revocation = match revoke_at_target(deps, &grant).await {
        Ok(r) => r,
        Err(e) => return defer(deps, &grant, ExpireError::from(e), now).await,
    };
    let mut details = revocation.details();
    details.push((Detail::FailedAttempts, retry.attempts.to_string()));
    details.push((
        Detail::LateCredential,
        "made after the grant ended; revoked on retry".to_owned(),
    ));
    deps.store
        .note(grant.id, now, |g| {
            AuditRecord::new(now, Actor::component(COMPONENT), AuditAction::Revoked)
                .states(Some(g.state), Some(g.state))
                .details(&details)
        })
        .await?;
    if let Err(e) = deps.store.clear_revocation_retry(grant.id).await {
        tracing::warn!(grant_id = %grant.id, error = %e, "could not clear the retry record");
    }
    Ok(RevokeOutcome::Now)
}

/// Revokes grant `id` for `trigger` at `now`.
pub async fn revoke_grant(
    deps: &Deps,
    id: GrantId,
    trigger: ExpiryTriggerOrEnd,
    now: DateTime<Utc>,
) -> Result<RevokeOutcome, ExpireError> {
    let Some(grant) = deps.store.get_grant(id).await? else {
        return Ok(RevokeOutcome::Missing);
    };
    if grant.state.is_terminal() {
        if trigger == ExpiryTriggerOrEnd::Retry
            && let Some(retry) = deps.store.revocation_retry(id).await?
        {
            return revoke_after_end(deps, grant, retry, now).await;
        }
        return Ok(RevokeOutcome::AlreadyDone(grant.state));
    }
    let was_revoking = grant.state == GrantState::Revoking;
    let grant = match (grant.state, trigger) {
        (GrantState::Revoking, _) => grant,
        (_, ExpiryTriggerOrEnd::AlreadyEnding | ExpiryTriggerOrEnd::Retry) => {
            return Ok(RevokeOutcome::AlreadyDone(grant.state));
        }
        (_, ExpiryTriggerOrEnd::Expiry(t)) => {
            if now + EARLY_TOLERANCE < grant.not_after() {
                tracing::warn!(grant_id = %id, trigger = ?t, not_after = %grant.not_after(), "expiry trigger before the not-after time; ignored");
                return Ok(RevokeOutcome::NotDue);
            }
            let (grant, _) =
                advance(deps, grant, &GrantEvent::Expired { trigger: t }, now, &[]).await?;
            if grant.state.is_terminal() {
                // Nothing was ever issued (it was still Approved).
                return Ok(RevokeOutcome::Now);
            }
            grant
        }
    };
    if grant.state != GrantState::Revoking {
        return Ok(RevokeOutcome::AlreadyDone(grant.state));
    }

    // Only a grant already Revoking before this call may have failed before.
    let retry = if was_revoking {
        deps.store.revocation_retry(id).await?
    } else {
        None
    };
    let revocation = match revoke_at_target(deps, &grant).await {
        Ok(r) => r,
        Err(e) => return defer(deps, &grant, ExpireError::from(e), now).await,
    };
    let mut details = revocation.details();
    if let Some(r) = &retry {
        details.push((Detail::FailedAttempts, r.attempts.to_string()));
        details.push((Detail::FailingSince, r.first_failed_at.to_rfc3339()));
    }
    let (grant, changed) = advance(
        deps,
        grant,
        &GrantEvent::RevokeConfirmed,
        chrono::Utc::now(),
        &details,
    )
    .await?;
    if let Some(r) = retry {
        // Housekeeping: a record or schedule left behind only costs a no-op later.
        if let Err(e) = deps.store.clear_revocation_retry(id).await {
            tracing::warn!(grant_id = %id, error = %e, "could not clear the retry record");
        }
        let _ = deps.enforcer.schedules.delete_retry(id, r.attempts).await;
    }
    Ok(if changed {
        RevokeOutcome::Now
    } else {
        RevokeOutcome::AlreadyDone(grant.state)
    })
}
