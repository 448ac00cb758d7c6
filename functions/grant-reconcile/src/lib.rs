//! `grant-reconcile`: proves, on a schedule, that what the grants table records is what
//! lives at Secrets Manager and the targets, and says where it is not.
//!
//! One run reads every grant (parallel scan segments, every page), every secret tagged
//! `managed-by=ticketbound` (ListSecrets, every page) and every login role ticketbound
//! named at each database target, then finds:
//! - **orphan**: a managed secret or a `tb_…` login that no grant accounts for;
//! - **expired-but-live**: a grant that has ended (or is past its not-after time) whose
//!   secret or login still exists; revoked here unless remediation is off (a grant
//!   still Active is moved to Revoking, and the expiry function finishes it);
//! - **missing**: an Active grant whose secret or login is gone;
//! - **scope drift**: a login's role memberships, or the secret's resource policy,
//!   differ from what the grant allows;
//! - **rotation overdue**: an Active grant not rotated within its period (plus grace);
//! - **owner missing**: a live secret without its grant's owner tag;
//! - **identity unregistered**: an Active grant whose identity the registry does not
//!   hold (or holds retired), or holds without the grant's workload principal, target
//!   or environment (a grant made before the registry, or before a change to it): it
//!   runs to its end, reported;
//! - **registry tampered**: an identity's registry record whose chain of changes does
//!   not verify (changed by other means than `ticketbound identities`).
//!
//! - **provisioning stuck**: an Approved grant due (approved, or its change window
//!   begun) more than 30 minutes ago, or one in Provisioning that long, that nothing
//!   issues (the stream's record or the start schedule's retries gave up);
//! - **unmanaged** (reported apart, in `unmanaged`, and counted as
//!   `UnmanagedPrincipals`): a login at a target that ticketbound did not make and
//!   does not administer with, or a secret it does not manage that looks like a
//!   credential (judged from its metadata only); never touched. See [`inventory`].
//!
//! Each finding about a grant is recorded in its audit trail (once: the same finding
//! in the next run is not recorded again) and counted (metric `DriftFindings`).
//! Findings with no grant (orphans) are logged and counted.

pub mod config;
pub mod inventory;

use std::collections::{BTreeMap, BTreeSet};
use ticketbound_domain::Detail;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use serde::Serialize;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, ExpiryTrigger, Grant, GrantEvent, GrantId, GrantState,
    IdentityName, LifecycleRules, RegistryEntry,
};
use ticketbound_enforce::{EnforceError, Enforcer, TargetConfig};
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_secrets::SecretsError;
use ticketbound_secrets::credentials::SecretInfo;
use ticketbound_store::{AdvanceError, Registry, Store, StoreError};
use ticketbound_targets::postgres::UnsafeScopeRole;
use ticketbound_targets::principal_names;

pub use config::ReconcileConfig;

/// Component name in audit events and metrics.
pub const COMPONENT: &str = "grant-reconcile";

/// A grant in Revoking this long is late, not in progress.
const REVOKING_GRACE: chrono::Duration = chrono::Duration::minutes(10);
/// A grant due for provisioning (approved, or its change window begun) this long
/// without being issued is stuck, not in progress: whatever was to issue it (the
/// stream's delivery, a start schedule and its retries) gave up.
const PROVISIONING_GRACE: chrono::Duration = chrono::Duration::minutes(30);

/// A grant in flight for longer than [`PROVISIONING_GRACE`] since it became due.
fn stuck(grant: &Grant, now: DateTime<Utc>) -> Option<Finding> {
    let due = match grant.state {
        GrantState::Approved => grant.deferred_until.unwrap_or(grant.created_at),
        _ => grant.updated_at,
    };
    let waited = now - due;
    (waited > PROVISIONING_GRACE).then(|| {
        finding(
            FindingKind::ProvisioningStuck,
            grant,
            grant.id.to_string(),
            format!(
                "{} for {} min since it was due ({}), and nothing issues it: the stream's delivery or the change window's start schedule gave up (see grant-provision's dead-letter queue); nothing was made for it",
                grant.state,
                waited.num_minutes(),
                due.to_rfc3339()
            ),
        )
    })
}

#[derive(Debug)]
pub struct Deps {
    pub store: Store,
    pub registry: Registry,
    pub enforcer: Enforcer,
    pub config: ReconcileConfig,
}

impl Deps {
    pub fn from_env(sdk: &SdkConfig, env: EnvReader) -> Result<Self, ConfigError> {
        let config = ReconcileConfig::from_env(env)?;
        Ok(Self {
            store: Store::new(aws_sdk_dynamodb::Client::new(sdk), config.store.clone()),
            registry: Registry::new(
                aws_sdk_dynamodb::Client::new(sdk),
                config.identities_table.clone(),
            ),
            enforcer: Enforcer::connect(
                sdk,
                config.enforce.clone(),
                config.schedules.clone(),
                config.secret_cache_ttl,
            ),
            config,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Orphan,
    ExpiredButLive,
    Missing,
    ScopeDrift,
    RotationOverdue,
    OwnerMissing,
    /// A live grant of a connector ticketbound no longer issues with: it still ends on
    /// time, but nothing at a target proves a copy of its credential refused.
    RetiredConnector,
    /// A live grant the identity registry does not account for.
    IdentityUnregistered,
    /// An identity's registry record whose chain of changes does not verify.
    RegistryTampered,
    /// A login or credential-like secret that ticketbound does not manage.
    Unmanaged,
    /// A grant due for provisioning long ago that nothing issues.
    ProvisioningStuck,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orphan => "orphan",
            Self::ExpiredButLive => "expired_but_live",
            Self::Missing => "missing",
            Self::ScopeDrift => "scope_drift",
            Self::RotationOverdue => "rotation_overdue",
            Self::OwnerMissing => "owner_missing",
            Self::RetiredConnector => "retired_connector",
            Self::IdentityUnregistered => "identity_unregistered",
            Self::RegistryTampered => "registry_tampered",
            Self::Unmanaged => "unmanaged",
            Self::ProvisioningStuck => "provisioning_stuck",
        }
    }
}

/// One difference between the record and the live state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<GrantId>,
    /// What it is about: a secret's ARN, `<system>/<login>`.
    pub subject: String,
    pub detail: String,
    /// What the reconciler did about it, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
}

/// What one run saw and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileReport {
    pub grants_checked: usize,
    pub secrets_seen: usize,
    pub logins_seen: usize,
    pub findings: Vec<Finding>,
    /// What the targets and Secrets Manager hold that ticketbound does not manage:
    /// not drift, so not among `findings` (see [`inventory`]).
    pub unmanaged: Vec<Finding>,
    /// Why the unmanaged part could not be read this run, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmanaged_error: Option<String>,
    pub duration_ms: u128,
}

impl ReconcileReport {
    pub fn count(&self, kind: FindingKind) -> usize {
        self.findings.iter().filter(|f| f.kind == kind).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the grants could not be read")]
    Store(#[from] StoreError),
    #[error("the managed secrets could not be listed")]
    SecretsManager(#[from] SecretsError),
    #[error("a target could not be inspected")]
    Enforce(#[from] EnforceError),
    #[error("a grant could not be moved on")]
    Advance(#[from] AdvanceError),
    /// A target asked for by name (the inventory's `--target`) that is not configured.
    #[error("no target {target} is configured here (targets: {known})")]
    UnknownTarget { target: String, known: String },
}

impl From<ReconcileError> for lambda_runtime::Diagnostic {
    fn from(e: ReconcileError) -> Self {
        Self {
            error_type: "ReconcileFailed".to_owned(),
            error_message: ticketbound_runtime::error_chain(&e),
        }
    }
}

/// Runs the reconciler once.
pub async fn reconcile(deps: &Deps) -> Result<ReconcileReport, ReconcileError> {
    let started = std::time::Instant::now();
    let now = Utc::now();
    let grants = deps.store.scan_grants(deps.config.segments).await?;
    let secrets = deps.enforcer.secrets_manager.list_managed().await?;
    let logins = deps.enforcer.managed_logins().await?;
    let unsafe_roles = deps.enforcer.unsafe_scope_roles().await?;
    // Only entries whose chains verify count as registered; the others are reported.
    let audit = deps.registry.audit().await?;
    let registry: BTreeMap<IdentityName, RegistryEntry> = audit.entries;
    let mut report = ReconcileReport {
        grants_checked: grants.len(),
        secrets_seen: secrets.len(),
        logins_seen: logins.len(),
        ..ReconcileReport::default()
    };

    let mut secrets_by_grant: BTreeMap<String, Vec<&SecretInfo>> = BTreeMap::new();
    for secret in &secrets {
        secrets_by_grant
            .entry(secret.tag("grant-id").unwrap_or_default().to_owned())
            .or_default()
            .push(secret);
    }
    let login_owner: BTreeMap<String, GrantId> = grants
        .iter()
        .flat_map(|g| principal_names(g).map(|n| (n, g.id)))
        .collect();
    let live_logins: BTreeSet<&str> = logins.iter().map(|(_, l)| l.as_str()).collect();

    for grant in &grants {
        let secrets_of = secrets_by_grant
            .get(&grant.id.to_string())
            .cloned()
            .unwrap_or_default();
        let logins_of: Vec<String> = principal_names(grant)
            .into_iter()
            .filter(|n| live_logins.contains(n.as_str()))
            .collect();
        let findings = match grant.state {
            // In flight: the provisioner is at work, unless it has been too long.
            GrantState::Approved | GrantState::Provisioning => {
                stuck(grant, now).into_iter().collect()
            }
            GrantState::Active if !grant.is_expired_at(now) => {
                let live = Live {
                    secrets: &secrets_of,
                    logins: &logins_of,
                    unsafe_roles: &unsafe_roles,
                    registry: &registry,
                };
                check_live(deps, grant, &live, now).await?
            }
            GrantState::Revoking if now - grant.updated_at < REVOKING_GRACE => Vec::new(),
            _ => check_ended(deps, grant, &secrets_of, &logins_of).await?,
        };
        for finding in findings {
            record(deps, grant, &finding, now).await?;
            report.findings.push(finding);
        }
    }

    // Grant id → its recorded secret, once it has one: a second secret tagged for the
    // same grant is not its credential, whatever its tags say.
    let known: BTreeMap<String, Option<&str>> = grants
        .iter()
        .map(|g| {
            (
                g.id.to_string(),
                g.credential.as_ref().map(|c| c.secret_arn.as_str()),
            )
        })
        .collect();
    for secret in &secrets {
        let grant_id = secret.tag("grant-id").unwrap_or_default();
        if let Some(Some(recorded)) = known.get(grant_id)
            && *recorded != secret.arn
        {
            report.findings.push(Finding {
                kind: FindingKind::Orphan,
                grant_id: None,
                subject: secret.arn.clone(),
                detail: format!(
                    "a secret tagged managed-by=ticketbound for grant {grant_id}, whose credential is another secret ({recorded})"
                ),
                remediation: None,
            });
        } else if !known.contains_key(grant_id) {
            report.findings.push(Finding {
                kind: FindingKind::Orphan,
                grant_id: None,
                subject: secret.arn.clone(),
                detail: format!(
                    "a secret tagged managed-by=ticketbound that no grant accounts for (grant-id tag {:?})",
                    grant_id
                ),
                remediation: None,
            });
        }
    }
    for (system, login) in &logins {
        if !login_owner.contains_key(login) {
            report.findings.push(Finding {
                kind: FindingKind::Orphan,
                grant_id: None,
                subject: format!("{system}/{login}"),
                detail: "a login named by ticketbound that no grant accounts for".into(),
                remediation: None,
            });
        }
    }

    for (subject, why) in audit.broken {
        report.findings.push(Finding {
            kind: FindingKind::RegistryTampered,
            grant_id: None,
            subject,
            detail: format!(
                "the identity registry's record does not verify ({why}): it was changed by other means than ticketbound identities; no grant is made for it meanwhile"
            ),
            remediation: None,
        });
    }

    report
        .findings
        .sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
    if !report.findings.is_empty() {
        ticketbound_runtime::metrics::count(
            COMPONENT,
            "DriftFindings",
            report.findings.len() as u64,
        );
        for f in &report.findings {
            tracing::warn!(kind = f.kind.as_str(), grant_id = ?f.grant_id, subject = %f.subject, detail = %f.detail, remediation = ?f.remediation, "drift");
        }
    }
    // The inventory's part, last and best-effort: a target or ListSecrets failing here
    // must not cost the drift already found (and remedied) above.
    match inventory::unmanaged(deps).await {
        Ok(unmanaged) => {
            report.unmanaged = unmanaged.findings();
            ticketbound_runtime::metrics::count(
                COMPONENT,
                "UnmanagedPrincipals",
                report.unmanaged.len() as u64,
            );
            // One line, not one per item: the report holds them.
            tracing::info!(
                logins = unmanaged.logins.values().map(Vec::len).sum::<usize>(),
                secrets = unmanaged.secrets.len(),
                "unmanaged at the targets and in Secrets Manager (ticketbound inventory lists them)"
            );
        }
        Err(e) => {
            let why = ticketbound_runtime::error_chain(&e);
            ticketbound_runtime::metrics::count(COMPONENT, "InventoryFailed", 1);
            tracing::warn!(error = %why, "what is unmanaged could not be read this run");
            report.unmanaged_error = Some(why);
        }
    }
    report.duration_ms = started.elapsed().as_millis();
    Ok(report)
}

fn finding(
    kind: FindingKind,
    grant: &Grant,
    subject: impl Into<String>,
    detail: String,
) -> Finding {
    Finding {
        kind,
        grant_id: Some(grant.id),
        subject: subject.into(),
        detail,
        remediation: None,
    }
}

/// What one run saw live, for one grant.
struct Live<'a> {
    secrets: &'a [&'a SecretInfo],
    logins: &'a [String],
    /// Per target, the allowed scope roles that now give more than a scope.
    unsafe_roles: &'a BTreeMap<String, Vec<UnsafeScopeRole>>,
    registry: &'a BTreeMap<IdentityName, RegistryEntry>,
}

/// What the registry does not account for in a live grant, if anything.
fn unregistered(grant: &Grant, registry: &BTreeMap<IdentityName, RegistryEntry>) -> Option<String> {
    let name = &grant.request.identity.name;
    let Some(entry) = registry.get(name) else {
        return Some(format!(
            "identity {name} is not in the identity registry (or its record does not verify); the grant runs to its end, and no new grant is made for it until it is registered"
        ));
    };
    entry.accounts_for(&grant.request).err().map(|why| {
        format!("the registry no longer accounts for the grant ({why}); it runs to its end")
    })
}

/// An Active grant within its time: everything must be there, as granted.
async fn check_live(
    deps: &Deps,
    grant: &Grant,
    live: &Live<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, ReconcileError> {
    let (secrets, logins) = (live.secrets, live.logins);
    let mut found = Vec::new();
    if let Some(detail) = unregistered(grant, live.registry) {
        found.push(finding(
            FindingKind::IdentityUnregistered,
            grant,
            grant.request.identity.name.to_string(),
            detail,
        ));
    }
    let system = grant.request.target.system_id.as_str();
    for role in live.unsafe_roles.get(system).into_iter().flatten() {
        if grant
            .request
            .scope
            .permissions()
            .any(|p| p.as_str() == role.scope_role)
        {
            found.push(finding(
                FindingKind::ScopeDrift,
                grant,
                format!("{system}/{}", role.scope_role),
                format!("scope role {role}: the grant holds more than its approved scope"),
            ));
        }
    }
    let secret_arn = grant
        .credential
        .as_ref()
        .map(|c| c.secret_arn.clone())
        .unwrap_or_default();
    let is_database = deps
        .enforcer
        .settings
        .targets
        .0
        .get(grant.request.target.system_id.as_str())
        .is_some_and(TargetConfig::has_logins);
    let kind = grant.request.target.connector;
    if kind.is_retired() {
        found.push(finding(
            FindingKind::RetiredConnector,
            grant,
            grant.request.target.system_id.to_string(),
            format!(
                "the grant is of the retired {} connector: it is revoked at {} (its secret deleted), but nothing at a target can prove a copy of its credential refused; reissue it at a supported target",
                kind.as_str(),
                grant.not_after().to_rfc3339()
            ),
        ));
    }

    match secrets
        .iter()
        .find(|s| s.arn == secret_arn)
        .or(secrets.first())
    {
        None => found.push(finding(
            FindingKind::Missing,
            grant,
            secret_arn.clone(),
            "the grant is Active but its secret is gone".into(),
        )),
        Some(secret) => {
            let owner = grant.request.identity.owner.as_str();
            if secret.tag("owner") != Some(owner) {
                found.push(finding(
                    FindingKind::OwnerMissing,
                    grant,
                    secret.arn.clone(),
                    format!(
                        "the secret's owner tag is {:?}; the grant's owner is {owner:?}",
                        secret.tag("owner")
                    ),
                ));
            }
            if let Some(problem) = policy_drift(deps, grant, &secret.arn).await? {
                found.push(finding(
                    FindingKind::ScopeDrift,
                    grant,
                    secret.arn.clone(),
                    problem,
                ));
            }
        }
    }

    if is_database {
        if logins.is_empty() {
            found.push(finding(
                FindingKind::Missing,
                grant,
                format!(
                    "{}/{}",
                    grant.request.target.system_id,
                    principal_names(grant)[0]
                ),
                "the grant is Active but its login is gone from the target".into(),
            ));
        } else {
            let granted: BTreeSet<String> = grant
                .request
                .scope
                .permissions()
                .map(|p| p.to_string())
                .collect();
            for role in deps.enforcer.inspect_logins(grant).await? {
                if role.member_of != granted || role.superuser {
                    let extra: Vec<_> = role.member_of.difference(&granted).collect();
                    let missing: Vec<_> = granted.difference(&role.member_of).collect();
                    found.push(finding(
                        FindingKind::ScopeDrift,
                        grant,
                        format!("{}/{}", grant.request.target.system_id, role.name),
                        format!(
                            "memberships differ from the grant's scope: extra {extra:?}, missing {missing:?}{}",
                            if role.superuser { ", and it is SUPERUSER" } else { "" }
                        ),
                    ));
                }
            }
        }
    }

    let since = grant.last_rotated_at.unwrap_or(grant.created_at);
    let period = chrono::Duration::hours(i64::from(grant.request.rotation_period.as_hours()));
    if now - since > period + deps.config.rotation_grace {
        found.push(finding(
            FindingKind::RotationOverdue,
            grant,
            secret_arn,
            format!(
                "last rotated {} ({} hours ago); the period is {} hours",
                since.to_rfc3339(),
                (now - since).num_hours(),
                period.num_hours()
            ),
        ));
    }
    Ok(found)
}

/// The secret's resource policy must let the grant's workload read and deny everyone
/// else (shared/secrets `resource_policy`). Says what differs, if anything.
async fn policy_drift(
    deps: &Deps,
    grant: &Grant,
    arn: &str,
) -> Result<Option<String>, ReconcileError> {
    let Some(text) = deps.enforcer.secrets_manager.policy(arn).await? else {
        return Ok(Some("the secret has no resource policy".into()));
    };
    let policy: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    let by_sid = |sid: &str| statements.iter().find(|s| s["Sid"] == sid).cloned();
    let workload = grant.request.identity.workload_principal.as_str();
    let reads = by_sid("WorkloadReads");
    if reads.as_ref().map(|s| &s["Principal"]["AWS"]) != Some(&serde_json::json!(workload))
        || reads.as_ref().map(|s| &s["Effect"]) != Some(&serde_json::json!("Allow"))
    {
        return Ok(Some(format!(
            "the resource policy does not let exactly {workload} read the secret"
        )));
    }
    if by_sid("NobodyElseReads").map(|s| s["Effect"].clone()) != Some(serde_json::json!("Deny")) {
        return Ok(Some(
            "the resource policy no longer denies everyone else".into(),
        ));
    }
    let allows_more = statements
        .iter()
        .any(|s| s["Effect"] == "Allow" && s["Sid"] != "WorkloadReads");
    Ok(allows_more.then(|| "the resource policy allows more than the workload".into()))
}

/// A grant that ended (or is past its time): nothing of it may live.
async fn check_ended(
    deps: &Deps,
    grant: &Grant,
    secrets: &[&SecretInfo],
    logins: &[String],
) -> Result<Vec<Finding>, ReconcileError> {
    if secrets.is_empty() && logins.is_empty() {
        return Ok(Vec::new());
    }
    let mut alive: Vec<String> = secrets.iter().map(|s| s.arn.clone()).collect();
    alive.extend(logins.iter().cloned());
    let mut f = finding(
        FindingKind::ExpiredButLive,
        grant,
        alive.join(", "),
        format!(
            "the grant is {}{} but its credential lives on",
            grant.state,
            if grant.state == GrantState::Active {
                " and past its not-after time"
            } else {
                ""
            }
        ),
    );
    if !deps.config.remediate {
        return Ok(vec![f]);
    }
    f.remediation = Some(
        if grant.state.is_terminal() || grant.state == GrantState::Failed {
            let done = deps.enforcer.revoke(grant).await?;
            format!(
                "revoked by the reconciler: logins dropped {:?}, sessions terminated {}, secret deleted {}",
                done.roles_dropped, done.sessions_terminated, done.secret_deleted
            )
        } else {
            // Active past its time, or stuck in Revoking: the expiry path finishes it.
            deps.store
                .advance(
                    grant.clone(),
                    &GrantEvent::Expired {
                        trigger: ExpiryTrigger::Sweep,
                    },
                    Utc::now(),
                    &LifecycleRules::default(),
                    |_, t| {
                        AuditRecord::new(
                            Utc::now(),
                            Actor::component(COMPONENT),
                            AuditAction::RevocationStarted,
                        )
                        .states(Some(t.from), Some(t.to))
                        .detail(Detail::Trigger, "sweep")
                    },
                )
                .await?;
            "handed to revocation (Revoking); the expiry function revokes it".into()
        },
    );
    Ok(vec![f])
}

/// Records a finding in the grant's audit trail, unless the last event there already
/// says the same.
async fn record(
    deps: &Deps,
    grant: &Grant,
    finding: &Finding,
    now: DateTime<Utc>,
) -> Result<(), ReconcileError> {
    // Said already when a drift event for it follows the grant's last other event: a
    // grant with two findings would otherwise have each re-recorded at every run, the
    // other one being the latest event.
    let trail = deps.store.audit_trail(grant.id).await?;
    let said = trail
        .iter()
        .rev()
        .take_while(|e| e.action == AuditAction::DriftFound)
        .any(|e| {
            e.detail(Detail::Kind) == Some(finding.kind.as_str())
                && e.details.get(Detail::Subject.as_str()) == Some(&finding.subject)
        });
    if said && finding.remediation.is_none() {
        return Ok(());
    }
    deps.store
        .note(grant.id, now, |g| {
            let mut r = AuditRecord::new(now, Actor::component(COMPONENT), AuditAction::DriftFound)
                .states(Some(g.state), Some(g.state))
                .detail(Detail::Kind, finding.kind.as_str())
                .detail(Detail::Subject, &finding.subject)
                .detail(Detail::Finding, &finding.detail);
            if let Some(done) = &finding.remediation {
                r = r.detail(Detail::Remediation, done);
            }
            r
        })
        .await?;
    Ok(())
}
