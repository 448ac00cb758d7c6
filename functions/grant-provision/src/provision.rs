//! Provisioning one grant, idempotently.

use chrono::{DateTime, Utc};
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, Effect, Grant, GrantEvent, GrantId, GrantState,
    LifecycleRules, Transition, TransitionError,
};
use ticketbound_enforce::{EnforceError, Issued};
use ticketbound_store::StoreError;

use crate::{COMPONENT, Deps};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the credential could not be issued or removed")]
    Enforce(#[from] EnforceError),
    #[error("grant {grant_id} cannot take this event")]
    Transition {
        grant_id: GrantId,
        #[source]
        source: TransitionError,
    },
    #[error("grant {0} kept changing under us")]
    Contended(GrantId),
    #[error("provisioning of grant {0} failed and will be retried")]
    WillRetry(GrantId),
}

impl ProvisionError {
    /// True when a later attempt may succeed: the stream should redeliver.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Enforce(e) => e.is_retryable(),
            Self::Contended(_) | Self::WillRetry(_) => true,
            Self::Transition { .. } => false,
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
    /// Its time ran out, or its ticket ended, before or while it was provisioned;
    /// whatever was made for it is gone.
    Ended(GrantState),
    /// Provisioning gave up; whatever was made for it is gone.
    Failed(String),
}

/// Saves `next` with one audit record for `t`, or reports the version conflict.
async fn save(
    deps: &Deps,
    mut next: Grant,
    t: &Transition,
    action: AuditAction,
    at: DateTime<Utc>,
    details: &[(&str, String)],
) -> Result<Grant, StoreError> {
    let mut record =
        AuditRecord::new(at, Actor::component(COMPONENT), action).states(Some(t.from), Some(t.to));
    for (k, v) in details {
        record = record.detail(k, v);
    }
    let event = next.record(record);
    deps.store.save_grant(&next, &[event]).await?;
    Ok(next)
}

/// Applies `event` to the stored grant, re-reading it when someone else changed it in
/// between. Returns the grant as stored and the transition.
async fn advance(
    deps: &Deps,
    mut grant: Grant,
    event: &GrantEvent,
    action: impl Fn(&Transition) -> AuditAction,
    at: DateTime<Utc>,
    details: &[(&str, String)],
) -> Result<(Grant, Transition), ProvisionError> {
    let rules = LifecycleRules {
        max_provisioning_attempts: deps.config.max_provisioning_attempts,
    };
    for _ in 0..5 {
        let (next, t) =
            grant
                .apply(event, at, &rules)
                .map_err(|source| ProvisionError::Transition {
                    grant_id: grant.id,
                    source,
                })?;
        if !t.changed {
            return Ok((grant, t));
        }
        match save(deps, next, &t, action(&t), at, details).await {
            Ok(saved) => return Ok((saved, t)),
            Err(StoreError::StaleVersion { .. }) => {
                grant = deps
                    .store
                    .get_grant(grant.id)
                    .await?
                    .ok_or(ProvisionError::Contended(grant.id))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProvisionError::Contended(grant.id))
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
    let attempt = (grant.provisioning_attempts + 1).to_string();
    let (grant, t) = advance(
        deps,
        grant,
        &GrantEvent::ProvisioningStarted,
        end_action,
        now,
        &[("attempt", attempt)],
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

    match deps
        .enforcer
        .issue(&grant)
        .await
        .map_err(ProvisionError::from)
    {
        Ok(Issued {
            credential,
            details,
        }) => {
            let principal = credential.principal_name.clone();
            let arn = credential.secret_arn.clone();
            let (grant, t) = advance(
                deps,
                grant,
                &GrantEvent::Provisioned { credential },
                end_action,
                Utc::now(),
                &details,
            )
            .await?;
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
                    ("reason", reason.clone()),
                    ("retryable", retryable.to_string()),
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
            Ok(Provisioned::Failed(reason))
        }
    }
}

/// Kills what was made for a grant that must not live, and records it Revoked.
async fn finish_revocation(
    deps: &Deps,
    grant: Grant,
    now: DateTime<Utc>,
) -> Result<Provisioned, ProvisionError> {
    let mut notes = deps.enforcer.revoke(&grant).await?.details();
    notes.push(("revoked_by", COMPONENT.to_owned()));
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
