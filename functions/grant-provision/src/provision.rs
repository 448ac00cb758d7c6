//! Provisioning one grant, idempotently.

use chrono::{DateTime, Utc};
use ticketbound_domain::Detail;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, Effect, Grant, GrantEvent, GrantId, GrantState,
    LifecycleRules, Transition, TransitionError,
};
use ticketbound_enforce::{EnforceError, Issued};
use ticketbound_store::{AdvanceError, StoreError};

use crate::{COMPONENT, Deps};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the credential could not be issued or removed")]
    Enforce(#[from] EnforceError),
    #[error("the grant could not be moved on")]
    Advance(#[from] AdvanceError),
    #[error("provisioning of grant {0} failed and will be retried")]
    WillRetry(GrantId),
    /// The identity registry no longer accounts for the grant (retired since its
    /// approval, a principal or target removed, or a record that does not verify):
    /// nothing is issued.
    #[error("the identity registry no longer accounts for this grant: {0}; nothing is issued")]
    NotRegistered(String),
    #[error("the identity registry could not be read")]
    Registry(#[source] ticketbound_store::RegistryError),
}

impl ProvisionError {
    /// True when a later attempt may succeed: the stream should redeliver.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Enforce(e) => e.is_retryable(),
            Self::Advance(e) => e.is_retryable(),
            Self::WillRetry(_) => true,
            Self::NotRegistered(_) => false,
            Self::Registry(e) => e.is_retryable(),
        }
    }
}

/// What happened to a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    /// Now Active with this credential.
    Active {
        principal_name: String,
        secret_arn: String,
    },
    /// Nothing to do: the grant is not waiting for provisioning (a redelivery).
    NotPending(GrantState),
    /// The ticket's change window begins later: nothing is made until then, when its
    /// start schedule invokes the provisioner again.
    Deferred { until: DateTime<Utc> },
    /// Its time ran out, or its ticket ended, before or while it was provisioned;
    /// whatever was made for it is gone.
    Ended(GrantState),
    /// Provisioning gave up; whatever was made for it is gone.
    Failed(String),
}

/// Applies `event` to the stored grant and audits it as `action` with `details`,
/// re-reading the grant when someone else changed it in between.
async fn advance(
    deps: &Deps,
    grant: Grant,
    event: &GrantEvent,
    action: impl Fn(&Transition) -> AuditAction,
    at: DateTime<Utc>,
    details: &[(Detail, String)],
) -> Result<(Grant, Transition), ProvisionError> {
    let rules = LifecycleRules {
        max_provisioning_attempts: deps.config.max_provisioning_attempts,
    };
    let record = |_: &Grant, t: &Transition| {
        AuditRecord::new(at, Actor::component(COMPONENT), action(t))
            .states(Some(t.from), Some(t.to))
            .details(details)
    };
    Ok(deps.store.advance(grant, event, at, &rules, record).await?)
}

/// A change window starting within this long is waited for in the invocation rather
/// than scheduled.
pub const IN_PROCESS_WAIT: chrono::Duration = chrono::Duration::seconds(30);

/// Sleeps until the wall clock reads `until` (a monotonic sleep may end a moment
/// before it does).
pub(crate) async fn wait_until(until: DateTime<Utc>) {
    loop {
        let left = until - Utc::now();
        if left <= chrono::Duration::zero() {
            return;
        }
        tokio::time::sleep(
            (left + chrono::Duration::milliseconds(5))
                .to_std()
                .unwrap_or_default(),
        )
        .await;
    }
}

/// Leaves the grant Approved until its change window's start: the start schedule
/// first (so that a crash after it leaves nothing unscheduled; a retry finds it), then
/// the deferral, audited once (a redelivery finds it recorded and writes nothing). A
/// schedule Scheduler refuses for good (a quota, a permission) fails the grant, told
/// to the ticket, rather than leave it waiting for nothing.
async fn defer(
    deps: &Deps,
    grant: Grant,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Provisioned, ProvisionError> {
    let schedule = match deps
        .enforcer
        .schedules
        .ensure_start(grant.id, until, 0)
        .await
    {
        Ok(name) => name,
        Err(e) if e.is_retryable() => return Err(ProvisionError::Enforce(e.into())),
        Err(e) => {
            let reason = format!(
                "the schedule that would issue it at its change window's start could not be made: {}",
                ticketbound_runtime::error_chain(&e)
            );
            let (grant, _) = advance(
                deps,
                grant,
                &GrantEvent::ProvisioningFailed {
                    reason: reason.clone(),
                    retryable: false,
                },
                |_| AuditAction::ProvisioningFailed,
                now,
                &[
                    (Detail::Reason, reason.clone()),
                    (Detail::Retryable, false.to_string()),
                ],
            )
            .await?;
            return Ok(match grant.state {
                GrantState::Failed => Provisioned::Failed(reason),
                other => Provisioned::Ended(other),
            });
        }
    };
    let (grant, _) = advance(
        deps,
        grant,
        &GrantEvent::ProvisioningDeferred { until },
        |_| AuditAction::ProvisioningDeferred,
        now,
        &[
            (Detail::DeferredUntil, until.to_rfc3339()),
            (Detail::StartSchedule, schedule),
        ],
    )
    .await?;
    if grant.state != GrantState::Approved {
        // Withdrawn or expired meanwhile: the start schedule finds it ended.
        return Ok(Provisioned::Ended(grant.state));
    }
    Ok(Provisioned::Deferred { until })
}

fn end_action(t: &Transition) -> AuditAction {
    match t.to {
        GrantState::Revoked => AuditAction::Revoked,
        GrantState::Revoking => AuditAction::RevocationStarted,
        GrantState::Failed => AuditAction::ProvisioningFailed,
        GrantState::Active => AuditAction::Provisioned,
        _ => AuditAction::ProvisioningStarted,
    }
}

/// Provisions the grant `id` (a no-op unless it waits for provisioning).
pub async fn provision_grant(
    deps: &Deps,
    id: GrantId,
    now: DateTime<Utc>,
) -> Result<Provisioned, ProvisionError> {
    let Some(grant) = deps.store.get_grant(id).await? else {
        return Ok(Provisioned::NotPending(GrantState::Rejected));
    };
    if !matches!(grant.state, GrantState::Approved | GrantState::Provisioning) {
        return Ok(Provisioned::NotPending(grant.state));
    }
    let mut now = now;
    if grant.state == GrantState::Approved
        && let Some(until) = grant.window_starts_after(now)
    {
        if until - now > IN_PROCESS_WAIT {
            return defer(deps, grant, until, now).await;
        }
        // Too close for a schedule (Scheduler fires within the minute after its time,
        // and a time already past by the time it is made may never fire): wait here.
        wait_until(until).await;
        now = Utc::now();
    }
    let attempt = (grant.provisioning_attempts + 1).to_string();
    let (grant, t) = advance(
        deps,
        grant,
        &GrantEvent::ProvisioningStarted,
        end_action,
        now,
        &[(Detail::Attempt, attempt)],
    )
    .await?;
    if grant.state != GrantState::Provisioning {
        // Its time was up before anything was made; clean up what an earlier
        // attempt may have left.
        if t.effects.contains(&Effect::RevokeCredential) {
            return finish_revocation(deps, grant, now).await;
        }
        return Ok(Provisioned::Ended(grant.state));
    }

    // The registry again, right before anything is made: an identity retired, or a
    // principal or target removed, since the approval gets nothing.
    let issued = match registry_refusal(deps, &grant).await? {
        Some(why) => Err(ProvisionError::NotRegistered(why)),
        None => deps
            .enforcer
            .issue(&grant)
            .await
            .map_err(ProvisionError::from),
    };
    match issued {
        Ok(Issued {
            credential,
            details,
        }) => {
            let principal = credential.principal_name.clone();
            let arn = credential.secret_arn.clone();
            let advanced = advance(
                deps,
                grant.clone(),
                &GrantEvent::Provisioned {
                    credential: credential.clone(),
                },
                end_action,
                Utc::now(),
                &details,
            )
            .await;
            let (grant, t) = match advanced {
                Err(ProvisionError::Advance(AdvanceError::Transition {
                    source: TransitionError::Terminal { state, .. },
                    ..
                })) => {
                    // The grant ended (and was recorded Revoked) while we issued: the
                    // revocation found nothing yet, so what we just made is killed now.
                    let mut ended = grant;
                    ended.credential = Some(credential);
                    ended.state = state;
                    return undo_late_issue(deps, ended, Made::Credential).await;
                }
                other => other?,
            };
            if t.effects.contains(&Effect::RevokeCredential) {
                // The ticket ended, or the time ran out, while we were issuing.
                return finish_revocation(deps, grant, Utc::now()).await;
            }
            Ok(Provisioned::Active {
                principal_name: principal,
                secret_arn: arn,
            })
        }
        Err(e) => {
            let retryable = e.is_retryable();
            let reason = ticketbound_runtime::error_chain(&e);
            let (grant, t) = advance(
                deps,
                grant,
                &GrantEvent::ProvisioningFailed {
                    reason: reason.clone(),
                    retryable,
                },
                |_| AuditAction::ProvisioningFailed,
                Utc::now(),
                &[
                    (Detail::Reason, reason.clone()),
                    (Detail::Retryable, retryable.to_string()),
                ],
            )
            .await?;
            if t.effects.contains(&Effect::RevokeCredential) {
                let notes = deps.enforcer.discard(&grant).await?;
                tracing::info!(grant_id = %grant.id, cleanup = ?notes, "provisioning gave up; cleaned up");
                return Ok(Provisioned::Failed(reason));
            }
            if grant.state == GrantState::Provisioning {
                return Err(ProvisionError::WillRetry(grant.id));
            }
            // It ended while we issued, and the issue failed for it (its secret
            // deleted under it, say) after it may have made the login: whatever it
            // made is killed now, not left to the reconciler.
            let made = Made::MaybeSomething {
                issue_error: &reason,
            };
            match grant.state {
                GrantState::Revoked | GrantState::Revoking => {
                    undo_late_issue(deps, grant, made).await
                }
                _ => Ok(Provisioned::Failed(reason)),
            }
        }
    }
}

/// Why the registry no longer accounts for `grant`, if it does not. A registry that
/// cannot be read is an error (the stream retries); one whose record of the identity
/// does not verify is a refusal.
async fn registry_refusal(
    deps: &Deps,
    grant: &ticketbound_domain::Grant,
) -> Result<Option<String>, ProvisionError> {
    let name = &grant.request.identity.name;
    match deps.registry.get_checked(name).await {
        Ok(Some(entry)) => Ok(entry.accounts_for(&grant.request).err()),
        Ok(None) => Ok(Some(format!(
            "identity {name} is not in the identity registry"
        ))),
        Err(ticketbound_store::RegistryError::Tampered { why, .. }) => Ok(Some(format!(
            "the registry record of identity {name} does not verify ({why})"
        ))),
        Err(e) => Err(ProvisionError::Registry(e)),
    }
}

/// What a provisioner that lost the race to a grant's end knows it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made<'a> {
    /// A whole credential: its issue succeeded.
    Credential,
    /// Perhaps a login, perhaps nothing: its issue failed part-way, for this reason.
    MaybeSomething { issue_error: &'a str },
}

impl Made<'_> {
    /// How the trail words it.
    fn late_credential(self, then: &str) -> String {
        match self {
            Self::Credential => format!("issued while the grant ended; {then}"),
            Self::MaybeSomething { .. } => {
                format!("made by an issue that failed while the grant ended; {then}")
            }
        }
    }
}

/// Kills what was made for a grant that had already ended (a whole credential, or
/// what a failed issue made before it failed), and adds that to the grant's trail
/// (and so to its ticket) when there was something. Should the target be unreachable, the
/// error goes back to the stream; the reconciler finds the login of an ended grant
/// in any case.
async fn undo_late_issue(
    deps: &Deps,
    ended: Grant,
    made: Made<'_>,
) -> Result<Provisioned, ProvisionError> {
    let state = ended.state;
    let revoked = match deps.enforcer.revoke(&ended).await {
        Ok(r) => r,
        Err(e) => return hand_to_retry(deps, &ended, e, made).await,
    };
    let found_something = !revoked.roles_dropped.is_empty()
        || !revoked.kept_disabled.is_empty()
        || !revoked.members_removed.is_empty()
        || revoked.sessions_terminated > 0
        || revoked.secret_deleted;
    if matches!(made, Made::MaybeSomething { .. }) && !found_something {
        // The failed issue had made nothing that was left: nothing to tell.
        return Ok(Provisioned::Ended(state));
    }
    if state == GrantState::Revoking {
        // grant-expire is revoking it and will record (and tell) the end; this only
        // killed what it may not have seen.
        tracing::warn!(grant_id = %ended.id, revocation = ?revoked, "a failed issue for a grant being revoked; what it made is revoked too");
        return Ok(Provisioned::Ended(state));
    }
    let mut notes = revoked.details();
    notes.push((Detail::RevokedBy, COMPONENT.to_owned()));
    notes.push((
        Detail::LateCredential,
        made.late_credential("revoked at once"),
    ));
    if let Made::MaybeSomething { issue_error } = made {
        notes.push((Detail::IssueError, issue_error.to_owned()));
    }
    tracing::warn!(grant_id = %ended.id, "credential issued for a grant that had ended; revoked");
    deps.store
        .note(ended.id, Utc::now(), |g| {
            AuditRecord::new(
                Utc::now(),
                Actor::component(COMPONENT),
                AuditAction::Revoked,
            )
            .states(Some(g.state), Some(g.state))
            .details(&notes)
        })
        .await?;
    Ok(Provisioned::Ended(state))
}

/// The late credential could not be revoked now: the grant is already recorded
/// ended, so no trigger of its own would come again. A revocation retry record and
/// schedule (which grant-expire honours for ended grants) take it over, and the
/// failure is told once; the error goes back to the stream all the same.
async fn hand_to_retry(
    deps: &Deps,
    ended: &Grant,
    error: EnforceError,
    made: Made<'_>,
) -> Result<Provisioned, ProvisionError> {
    let reason = ticketbound_runtime::error_chain(&error);
    let now = Utc::now();
    let recorded = deps
        .store
        .record_revocation_failure(ended, &reason, now, chrono::Duration::days(1), |_| {
            chrono::Duration::seconds(5)
        })
        .await?;
    if recorded.first {
        deps.store
            .note(ended.id, now, |g| {
                AuditRecord::new(
                    now,
                    Actor::component(COMPONENT),
                    AuditAction::RevocationFailed,
                )
                .states(Some(g.state), Some(g.state))
                .detail(Detail::Reason, &reason)
                .detail(
                    Detail::LateCredential,
                    made.late_credential("its revocation is retried"),
                )
            })
            .await?;
        deps.store
            .mark_told(ended.id, ticketbound_store::Told::FirstFailure)
            .await?;
    }
    if let Some(at) = recorded.schedule_at {
        deps.enforcer
            .schedules
            .ensure_retry(ended, recorded.retry.attempts, at)
            .await
            .map_err(EnforceError::from)?;
    }
    tracing::error!(grant_id = %ended.id, error = %reason, "a credential issued for an ended grant could not be revoked yet; retry scheduled");
    Err(ProvisionError::Enforce(error))
}

/// Kills what was made for a grant that must not live, and records it Revoked.
async fn finish_revocation(
    deps: &Deps,
    grant: Grant,
    now: DateTime<Utc>,
) -> Result<Provisioned, ProvisionError> {
    let mut notes = deps.enforcer.revoke(&grant).await?.details();
    notes.push((Detail::RevokedBy, COMPONENT.to_owned()));
    let (grant, _) = advance(
        deps,
        grant,
        &GrantEvent::RevokeConfirmed,
        |_| AuditAction::Revoked,
        now,
        &notes,
    )
    .await?;
    Ok(Provisioned::Ended(grant.state))
}
