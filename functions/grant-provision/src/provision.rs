//! Provisioning one grant, idempotently.

use chrono::{DateTime, Utc};
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, CredentialRef, Effect, Grant, GrantEvent, GrantId, GrantState,
    LifecycleRules, Transition, TransitionError,
};
use ticketbound_runtime::{ExposeSecret, SecretString};
use ticketbound_schedule::ScheduleError;
use ticketbound_store::StoreError;
use ticketbound_targets::postgres::PostgresTarget;
use ticketbound_targets::{TargetError, outside_allow_list, principal_name};
use ticketbound_vault::VaultError;
use ticketbound_vault::credentials::{CredentialSecretSpec, DatabaseSecret};

use crate::config::TargetConfig;
use crate::{COMPONENT, Deps};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("Secrets Manager failed")]
    Vault(#[from] VaultError),
    #[error("the target failed")]
    Target(#[from] TargetError),
    #[error("EventBridge Scheduler failed")]
    Schedule(#[from] ScheduleError),
    #[error("target system {0:?} is not configured (TICKETBOUND_TARGETS)")]
    UnknownTarget(String),
    #[error("secret {0} holds no credential ticketbound can read")]
    UnreadableSecret(String),
    #[error("secret {0} is scheduled for deletion; it cannot be reused")]
    SecretPendingDeletion(String),
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
            Self::Vault(e) => e.is_retryable(),
            Self::Target(e) => e.is_retryable(),
            Self::Schedule(e) => e.is_retryable(),
            Self::Contended(_) | Self::WillRetry(_) => true,
            Self::UnknownTarget(_)
            | Self::UnreadableSecret(_)
            | Self::SecretPendingDeletion(_)
            | Self::Transition { .. } => false,
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

/// `ticketbound/<environment>/<identity>/<grant id>`.
pub fn secret_name(grant: &Grant) -> String {
    format!(
        "ticketbound/{}/{}/{}",
        grant.request.target.environment, grant.request.identity.name, grant.id
    )
}

fn spec(deps: &Deps, grant: &Grant) -> CredentialSecretSpec {
    let r = &grant.request;
    CredentialSecretSpec {
        name: secret_name(grant),
        description: format!(
            "ticketbound credential for {} at {}, grant {} ({}), expires {}",
            r.identity.name,
            r.target.system_id,
            grant.id,
            r.ticket.qualified_key(),
            grant.not_after().to_rfc3339()
        ),
        tags: vec![
            ("ticket".into(), r.ticket.qualified_key()),
            ("grant-id".into(), grant.id.to_string()),
            ("owner".into(), r.identity.owner.to_string()),
            ("identity".into(), r.identity.name.to_string()),
            ("target".into(), r.target.system_id.to_string()),
            ("expires-at".into(), grant.not_after().to_rfc3339()),
        ],
        kms_key_id: deps.config.kms_key_id.clone(),
        workload_principal: r.identity.workload_principal.to_string(),
        ticketbound_principals: deps.config.admin_principals.clone(),
    }
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

    match issue(deps, &grant).await {
        Ok((credential, details)) => {
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
            let reason = describe(&e);
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
                let notes = remove_everything(deps, &grant).await?;
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

/// The error and its causes on one line, for the grant's record (no secret values:
/// none of these errors carries one).
fn describe(e: &ProvisionError) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Makes (or finds, on a retry) the secret, the credential, rotation and the schedule.
async fn issue(
    deps: &Deps,
    grant: &Grant,
) -> Result<(CredentialRef, Vec<(&'static str, String)>), ProvisionError> {
    let system = grant.request.target.system_id.as_str();
    let target = deps
        .config
        .targets
        .0
        .get(system)
        .ok_or_else(|| ProvisionError::UnknownTarget(system.to_owned()))?;
    // Refuse a scope outside the allow-list before anything exists.
    if let TargetConfig::Postgres { allowed_roles, .. } = target {
        let refused = outside_allow_list(grant.request.scope.permissions(), allowed_roles);
        if !refused.is_empty() {
            return Err(TargetError::ScopeNotAllowed { refused }.into());
        }
    }

    let principal = principal_name(grant);
    let spec = spec(deps, grant);
    let (arn, password, rotation_on) = match deps.vault.describe(&spec.name).await? {
        Some(info) if info.deleted => return Err(ProvisionError::SecretPendingDeletion(info.name)),
        Some(info) => {
            // An earlier attempt made it: reuse its password, so target and secret agree.
            let value = deps.vault.read(&info.arn).await?;
            let password = match target {
                TargetConfig::Postgres { .. } => DatabaseSecret::from_secret(&value)
                    .map(|s| SecretString::from(s.password))
                    .ok_or_else(|| ProvisionError::UnreadableSecret(info.arn.clone()))?,
                TargetConfig::GeneratedApiKey {} => value,
            };
            deps.vault.put_policy(&info.arn, &spec).await?;
            (info.arn, password, info.rotation_enabled)
        }
        None => {
            let password = deps.vault.random_password().await?;
            let value = match target {
                TargetConfig::Postgres {
                    host, port, dbname, ..
                } => DatabaseSecret {
                    engine: "postgres".into(),
                    host: host.clone(),
                    port: *port,
                    username: principal.clone(),
                    password: password.expose_secret().to_owned(),
                    dbname: dbname.clone(),
                }
                .to_secret(),
                TargetConfig::GeneratedApiKey {} => password.clone(),
            };
            let arn = deps.vault.create_credential(&spec, &value).await?;
            (arn, password, false)
        }
    };

    if let TargetConfig::Postgres {
        admin_secret_id,
        allowed_roles,
        ..
    } = target
    {
        let admin = deps.admin_secrets.get(admin_secret_id).await?;
        PostgresTarget::new(&admin, allowed_roles.clone())?
            .issue(grant, &password)
            .await?;
    }

    let rotation = match &deps.config.rotation_function_arn {
        Some(function) if !rotation_on => {
            let hours = grant.request.rotation_period.as_hours();
            deps.vault.enable_rotation(&arn, function, hours).await?;
            format!("every {hours} hours")
        }
        Some(_) => format!("every {} hours", grant.request.rotation_period.as_hours()),
        None => "not configured (TICKETBOUND_ROTATION_FUNCTION_ARN)".to_owned(),
    };
    let schedule = deps.schedules.ensure(grant).await?;

    let details = vec![
        ("secret_arn", arn.clone()),
        ("principal", principal.clone()),
        ("target", system.to_owned()),
        ("scope", grant.request.scope.to_string()),
        ("expires_at", grant.not_after().to_rfc3339()),
        ("expiry_schedule", schedule),
        ("rotation", rotation),
    ];
    Ok((
        CredentialRef {
            secret_arn: arn,
            principal_name: principal,
        },
        details,
    ))
}

/// Removes everything that may have been made for `grant`: the schedule, the secret
/// (so the value can no longer be read), then the credential at the target (with its
/// sessions). Each part is idempotent. A target that cannot be reached does not hold
/// up the stream: that is noted (and audited by the caller), and the reconciler finds
/// the login role if it exists.
async fn remove_everything(
    deps: &Deps,
    grant: &Grant,
) -> Result<Vec<(&'static str, String)>, ProvisionError> {
    deps.schedules.delete(grant.id).await?;
    deps.vault.delete(&secret_name(grant), true, 7).await?;
    let mut notes = vec![("secret_deleted", secret_name(grant))];
    if let Some(TargetConfig::Postgres {
        admin_secret_id,
        allowed_roles,
        ..
    }) = deps
        .config
        .targets
        .0
        .get(grant.request.target.system_id.as_str())
    {
        let principal = principal_name(grant);
        let revoked = async {
            let admin = deps.admin_secrets.get(admin_secret_id).await?;
            PostgresTarget::new(&admin, allowed_roles.clone())?
                .revoke(&principal)
                .await?;
            Ok::<_, ProvisionError>(())
        }
        .await;
        match revoked {
            Ok(()) => notes.push(("target_role_removed", principal)),
            Err(e) => {
                tracing::warn!(grant_id = %grant.id, role = %principal, error = %describe(&e), "target cleanup failed; the reconciler will retry");
                notes.push(("target_cleanup_failed", describe(&e)));
            }
        }
    }
    Ok(notes)
}

/// Kills what was made for a grant that must not live, and records it Revoked.
async fn finish_revocation(
    deps: &Deps,
    grant: Grant,
    now: DateTime<Utc>,
) -> Result<Provisioned, ProvisionError> {
    let mut notes = remove_everything(deps, &grant).await?;
    if notes.iter().any(|(k, _)| *k == "target_cleanup_failed") {
        // The credential may still work: the grant stays Revoking until it is gone.
        return Err(ProvisionError::WillRetry(grant.id));
    }
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
