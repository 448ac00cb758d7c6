//! The lifecycle's effects at the systems it governs: `IssueCredential` (the secret,
//! the credential at the target, rotation, the expiry schedule) and `RevokeCredential`
//! (all of it gone, sessions included). Both are idempotent: every step finds what an
//! earlier attempt made instead of making it twice, and removing what is already gone
//! is success.
//!
//! Rotation (see [`rotation`]) makes a new credential for a live grant in Secrets
//! Manager's four steps.
//!
//! Functions call this crate; it calls the adapters (Secrets Manager, Scheduler, the
//! target connectors) and knows nothing of DynamoDB or of how it was triggered.

mod connector;
pub use connector::TargetCheck;
pub use ticketbound_targets::tls::Transport;
pub mod rotation;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use ticketbound_domain::Detail;

use serde::Deserialize;
use ticketbound_domain::{ConnectorKind, CredentialRef, Environment, Grant};
use ticketbound_runtime::{CommaList, EnvReader, ExposeSecret, SecretString, vars};
use ticketbound_schedule::{ExpirySchedules, ScheduleError, ScheduleSettings};
use ticketbound_secrets::credentials::{CredentialSecretSpec, DatabaseSecret, SecretInfo};
use ticketbound_secrets::rotation::AWSCURRENT;
use ticketbound_secrets::{SecretCache, SecretsError, SecretsManager};
use ticketbound_targets::postgres::LiveRole;
use ticketbound_targets::postgres::{OwnedObjects, PostgresTarget};
use ticketbound_targets::{TargetError, outside_allow_list, principal_name};

/// How to reach and what may be granted at one target system.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "connector", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    Postgres {
        /// Which environment the target is in: the policy's rules for it come from
        /// here, never from the request. Required to issue (the intake requires it
        /// too); a configuration without it still revokes, rotates and reconciles,
        /// so that a deployment whose code is newer than its configuration keeps
        /// ending grants.
        #[serde(default)]
        environment: Option<Environment>,
        /// Secrets Manager id of the administrator's libpq connection string.
        admin_secret_id: String,
        /// Where issued credentials connect (written into their secret).
        host: String,
        port: u16,
        dbname: String,
        /// The only roles a scope may name.
        allowed_roles: BTreeSet<String>,
        /// How the credential rotates (default: alternating users).
        #[serde(default)]
        rotation: RotationStrategy,
        /// What revocation does with objects the grantee made: `drop` (the default;
        /// quarantined where others depend on them) or `quarantine`.
        #[serde(default)]
        owned_objects: OwnedObjects,
        /// How the target is reached: `verify_full` (the default: TLS, the server's
        /// certificate verified against `ca_file` and its name against `host`) or
        /// `disabled` (plaintext; `ticketbound targets` reports it as a problem).
        #[serde(default)]
        tls: TlsMode,
        /// The PEM CA bundle the server's certificate must chain to (RDS's
        /// `global-bundle.pem`, packaged with the function, say). Required with
        /// `verify_full`.
        #[serde(default)]
        ca_file: Option<std::path::PathBuf>,
        /// Whose approval counts for this target: the intake reads it (groups and
        /// users, see `ApproverRule`); kept here only so that one
        /// `TICKETBOUND_TARGETS` serves every function.
        #[serde(default)]
        approvers: Option<serde_json::Value>,
    },
}

/// How a database target is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    #[default]
    VerifyFull,
    Disabled,
}

/// The transports built in this container, by CA bundle: a bundle is read and parsed
/// once, not at every connection (the reconciler builds one per grant it inspects).
#[derive(Debug, Default)]
pub struct Transports(std::sync::Mutex<BTreeMap<std::path::PathBuf, Transport>>);

impl Transports {
    /// The transport to a target configured with `tls` and `ca_file`.
    fn get(
        &self,
        tls: TlsMode,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Transport, EnforceError> {
        let ca = match (tls, ca_file) {
            (TlsMode::Disabled, _) => return Ok(Transport::Plaintext),
            (TlsMode::VerifyFull, None) => return Err(EnforceError::NoCaBundle),
            (TlsMode::VerifyFull, Some(ca)) => ca,
        };
        let lock = || {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(t) = lock().get(ca) {
            return Ok(t.clone());
        }
        let transport = Transport::verify_full(ca)?;
        lock().insert(ca.to_path_buf(), transport.clone());
        Ok(transport)
    }
}

/// How a database credential rotates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationStrategy {
    /// Two login roles per grant; each rotation sets a new password on the one not in
    /// use and makes it current, so the credential a workload holds keeps working
    /// until the rotation after next.
    #[default]
    AlternatingUsers,
    /// One login role whose password changes: the old one is refused at once. For
    /// targets that allow the workload only one login.
    SingleUser,
}

/// `TICKETBOUND_TARGETS`: system id → target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Targets(pub BTreeMap<String, TargetConfig>);

impl Targets {
    /// Reads `TICKETBOUND_TARGETS`, which every function that reaches a target needs.
    pub fn read(env: &mut EnvReader) -> Option<Self> {
        env.required(
            vars::TARGETS,
            "a JSON map of target systems (docs/configuration.md)",
        )
    }
}

impl FromStr for Targets {
    type Err = serde_json::Error;
    /// Each target read on its own, so that an error names it; one of a retired
    /// connector is refused with the reason rather than as an unknown variant.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use serde::de::Error as _;
        let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(s)?;
        let mut targets = BTreeMap::new();
        for (system, value) in raw {
            let kind = value
                .get("connector")
                .and_then(|c| serde_json::from_value::<ConnectorKind>(c.clone()).ok());
            if let Some(kind) = kind.filter(|k| k.is_retired()) {
                return Err(serde_json::Error::custom(
                    kind.retired_target_refusal(&system),
                ));
            }
            let target: TargetConfig = serde_json::from_value(value)
                .map_err(|e| serde_json::Error::custom(format!("target {system:?}: {e}")))?;
            let TargetConfig::Postgres { tls, ca_file, .. } = &target;
            if *tls == TlsMode::VerifyFull && ca_file.is_none() {
                return Err(serde_json::Error::custom(format!(
                    "target {system:?}: {}",
                    EnforceError::NoCaBundle
                )));
            }
            targets.insert(system, target);
        }
        Ok(Self(targets))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error("Secrets Manager failed")]
    SecretsManager(#[from] SecretsError),
    #[error("the target failed")]
    Target(#[from] TargetError),
    #[error("EventBridge Scheduler failed")]
    Schedule(#[from] ScheduleError),
    #[error("target system {0:?} is not configured (TICKETBOUND_TARGETS)")]
    UnknownTarget(String),
    #[error("grant recorded for a {recorded} target, but {system:?} is configured as {configured}")]
    ConnectorMismatch {
        system: String,
        recorded: &'static str,
        configured: &'static str,
    },
    #[error(
        "grant recorded for a {kind} target, a connector ticketbound no longer issues with (its revocation cannot be verified at any target); such a grant is only revoked"
    )]
    RetiredConnector { kind: &'static str },
    #[error("the target's administrator {user} cannot do what ticketbound needs: {}", .problems.join("; "))]
    AdministratorUnfit { user: String, problems: Vec<String> },
    #[error(
        "TLS verify_full (the default) needs ca_file, the PEM bundle the server's certificate chains to; or set tls to disabled"
    )]
    NoCaBundle,
    #[error(
        "target {system} is {configured}, but the grant was approved for {granted}: not issued"
    )]
    EnvironmentMismatch {
        system: String,
        configured: Environment,
        granted: Environment,
    },
    #[error(
        "target {0} has no environment in TICKETBOUND_TARGETS (\"prod\" or \"non-prod\"): nothing is issued there until it has"
    )]
    NoEnvironment(String),
    #[error(
        "secret {0} holds a value ticketbound did not write (its current version is not the one issue made); it is not given to the target"
    )]
    ForeignSecretValue(String),
    #[error("secret {0} holds no credential ticketbound can read")]
    UnreadableSecret(String),
    #[error("secret {0} is scheduled for deletion; it cannot be reused")]
    SecretPendingDeletion(String),
    #[error("rotation refused: {0}")]
    RotationRefused(#[from] rotation::Refusal),
    #[error("the record of the pending value could not be read or written")]
    Witness(#[source] rotation::WitnessError),
}

impl EnforceError {
    /// True when a later attempt may succeed.
    /// A passing failure of an AWS call (a throttle, a 5xx, a lost answer), worth
    /// trying again at once. A target that cannot be reached is not: trying it again
    /// at once only holds back what waits behind it.
    pub fn is_passing_aws_fault(&self) -> bool {
        match self {
            Self::SecretsManager(e) => e.is_retryable(),
            Self::Schedule(e) => e.is_retryable(),
            _ => false,
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            Self::SecretsManager(e) => e.is_retryable(),
            Self::Target(e) => e.is_retryable(),
            Self::Schedule(e) => e.is_retryable(),
            // The grants table: its errors are retryable or not, but a retried step
            // starts over safely either way.
            Self::Witness(_) => true,
            Self::UnknownTarget(_)
            | Self::ConnectorMismatch { .. }
            | Self::RetiredConnector { .. }
            | Self::AdministratorUnfit { .. }
            | Self::NoCaBundle
            | Self::EnvironmentMismatch { .. }
            | Self::NoEnvironment(_)
            | Self::ForeignSecretValue(_)
            | Self::UnreadableSecret(_)
            | Self::SecretPendingDeletion(_)
            | Self::RotationRefused(_) => false,
        }
    }
}

/// What the effects need besides the clients.
#[derive(Debug, Clone)]
pub struct EnforceSettings {
    pub targets: Targets,
    pub kms_key_id: Option<String>,
    /// ticketbound's own roles that keep read access to credential secrets.
    pub admin_principals: Vec<String>,
    /// When absent, rotation is not turned on (and the audit says so).
    pub rotation_function_arn: Option<String>,
    /// How many days a deleted credential secret can be recovered; `None` forces
    /// deletion at once (the default: a revoked credential has nothing to recover).
    pub recovery_window_days: Option<i64>,
}

/// What a function does at the targets, which decides what of [`EnforceSettings`] it
/// reads from its environment (and so which variables its Lambda is given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnforceRole {
    /// Issues credentials: their secrets' KMS key, who keeps access to them, and the
    /// rotation function turned on for them.
    Issues,
    /// Revokes credentials, and so deletes their secrets (with a recovery window, if
    /// one is configured).
    Revokes,
    /// Rotates credentials: the targets alone.
    Rotates,
}

impl EnforceSettings {
    /// Reads the settings a function in `role` needs; what it does not need keeps its
    /// default. Problems are recorded in `env` (its `finish` reports them); `None`
    /// then.
    pub fn read(env: &mut EnvReader, role: EnforceRole) -> Option<Self> {
        let targets = Targets::read(env);
        let (mut kms_key_id, mut admin_principals, mut rotation_function_arn) =
            (None, Vec::new(), None);
        let mut recovery_window_days = None;
        match role {
            EnforceRole::Issues => {
                kms_key_id = env.optional(vars::SECRET_KMS_KEY_ID, "a KMS key id or ARN");
                let admins: CommaList = env.or_default(
                    vars::SECRET_ADMIN_PRINCIPALS,
                    "comma-separated IAM ARNs",
                    CommaList::default(),
                );
                admin_principals = admins.0;
                rotation_function_arn = env.optional(vars::ROTATION_FUNCTION_ARN, "a Lambda ARN");
            }
            EnforceRole::Revokes => {
                let recovery: Option<RecoveryDays> = env.optional(
                    vars::SECRET_RECOVERY_DAYS,
                    "a number of days from 7 to 30 (unset: delete at once)",
                );
                recovery_window_days = recovery.map(|r| r.0);
            }
            EnforceRole::Rotates => {}
        }
        Some(Self {
            targets: targets?,
            kms_key_id,
            admin_principals,
            rotation_function_arn,
            recovery_window_days,
        })
    }
}

/// `TICKETBOUND_SECRET_RECOVERY_DAYS`: between 7 and 30, as Secrets Manager's
/// recovery window allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryDays(pub i64);

impl FromStr for RecoveryDays {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.parse::<i64>() {
            Ok(d) if (7..=30).contains(&d) => Ok(Self(d)),
            _ => Err(()),
        }
    }
}

/// A credential made for a grant, and what to record about it (never its value).
#[derive(Debug, Clone)]
pub struct Issued {
    pub credential: CredentialRef,
    pub details: Vec<(Detail, String)>,
}

/// What a revocation removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocation {
    pub secret_deleted: bool,
    pub schedule_deleted: bool,
    /// The login roles that were dropped (none when they were already gone).
    pub roles_dropped: Vec<String>,
    pub sessions_terminated: i64,
    /// Objects the grantee had made, dropped at the target.
    pub objects_dropped: i64,
    /// Objects kept, powerless, under the target's quarantine role.
    pub quarantined: Vec<String>,
    /// Logins kept, unable to act, because they cannot be dropped yet.
    pub kept_disabled: Vec<String>,
    /// Roles someone had made members of the grant's login: put out.
    pub members_removed: Vec<String>,
    /// What the target showed afterwards (`None` for a target without logins).
    pub receipt: Option<String>,
}

impl Revocation {
    pub fn details(&self) -> Vec<(Detail, String)> {
        let mut d = vec![
            (Detail::SecretDeleted, self.secret_deleted.to_string()),
            (Detail::ScheduleDeleted, self.schedule_deleted.to_string()),
            (
                Detail::SessionsTerminated,
                self.sessions_terminated.to_string(),
            ),
        ];
        if !self.roles_dropped.is_empty() {
            d.push((Detail::RolesDropped, self.roles_dropped.join(",")));
        }
        if self.objects_dropped > 0 {
            d.push((Detail::ObjectsDropped, self.objects_dropped.to_string()));
        }
        if !self.quarantined.is_empty() {
            d.push((Detail::ObjectsQuarantined, self.quarantined.join(",")));
        }
        if !self.kept_disabled.is_empty() {
            d.push((Detail::LoginsKeptDisabled, self.kept_disabled.join("; ")));
        }
        if !self.members_removed.is_empty() {
            d.push((Detail::MembersRemoved, self.members_removed.join(",")));
        }
        if let Some(receipt) = &self.receipt {
            d.push((Detail::VerifiedAtTarget, receipt.clone()));
        }
        d
    }
}

/// The receipt's words: what the target showed after the revocation.
fn receipt(revoked: &ticketbound_targets::postgres::RevocationReceipt) -> String {
    format!(
        "logins remaining {}, sessions remaining {}, objects owned remaining {}",
        revoked.logins_remaining, revoked.sessions_remaining, revoked.objects_owned_remaining
    )
}

/// `ticketbound/<environment>/<identity>/<grant id>`.
pub fn secret_name(grant: &Grant) -> String {
    format!(
        "ticketbound/{}/{}/{}",
        grant.request.target.environment, grant.request.identity.name, grant.id
    )
}

/// The lifecycle's effects, with the clients they use.
#[derive(Debug)]
pub struct Enforcer {
    pub secrets_manager: SecretsManager,
    /// Target administrator credentials (connection strings), cached.
    pub admin_secrets: SecretCache,
    pub schedules: ExpirySchedules,
    pub settings: EnforceSettings,
    /// The target administrators whose privileges this container has checked.
    pub admins_checked: AdminsChecked,
    pub transports: Transports,
}

/// The administrator secrets whose privileges were checked at their first use in
/// this container (not at Lambda init: a target that is down must not stop a function
/// from starting, and each container checks once, not at every call).
#[derive(Debug, Default)]
pub struct AdminsChecked(std::sync::Mutex<BTreeSet<String>>);

impl AdminsChecked {
    fn contains(&self, secret_id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(secret_id)
    }

    fn insert(&self, secret_id: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(secret_id.to_owned());
    }
}

impl Enforcer {
    /// The enforcer a function builds once at start-up, with its clients made from
    /// `sdk`. Target administrator secrets are served from memory for `admin_secret_ttl`.
    pub fn connect(
        sdk: &aws_config::SdkConfig,
        settings: EnforceSettings,
        schedules: ScheduleSettings,
        admin_secret_ttl: std::time::Duration,
    ) -> Self {
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        Self {
            secrets_manager: SecretsManager::new(secrets.clone()),
            admin_secrets: SecretCache::new(secrets, admin_secret_ttl, std::time::Duration::ZERO),
            schedules: ExpirySchedules::new(aws_sdk_scheduler::Client::new(sdk), schedules),
            settings,
            admins_checked: AdminsChecked::default(),
            transports: Transports::default(),
        }
    }

    /// The grant's target as configured. A grant recorded with another kind of
    /// connector than its target now has is refused (fail closed): the two would
    /// disagree on what there is to kill.
    fn target(&self, grant: &Grant) -> Result<&TargetConfig, EnforceError> {
        let recorded = grant.request.target.connector;
        if recorded.is_retired() {
            return Err(EnforceError::RetiredConnector {
                kind: recorded.as_str(),
            });
        }
        let system = grant.request.target.system_id.as_str();
        let target = self
            .settings
            .targets
            .0
            .get(system)
            .ok_or_else(|| EnforceError::UnknownTarget(system.to_owned()))?;
        if target.kind() != grant.request.target.connector {
            return Err(EnforceError::ConnectorMismatch {
                system: system.to_owned(),
                recorded: grant.request.target.connector.as_str(),
                configured: target.kind().as_str(),
            });
        }
        Ok(target)
    }

    /// The PostgreSQL target administered with `admin_secret_id`; with
    /// `check_admin`, the administrator's privileges are checked at their first use in
    /// this container, and an administrator that lacks one is refused with the reason.
    async fn postgres(
        &self,
        admin_secret_id: &str,
        allowed: &BTreeSet<String>,
        owned_objects: OwnedObjects,
        (tls, ca_file): (TlsMode, Option<&std::path::Path>),
        check_admin: bool,
    ) -> Result<PostgresTarget, EnforceError> {
        let admin = self.admin_secrets.get(admin_secret_id).await?;
        let target =
            PostgresTarget::new(&admin, allowed.clone(), self.transports.get(tls, ca_file)?)?
                .with_owned_objects(owned_objects);
        if check_admin && !self.admins_checked.contains(admin_secret_id) {
            // Boxed: one more async layer inline took the provisioner's future past
            // the compiler's layout depth limit.
            let check = Box::pin(target.check_admin()).await?;
            if !check.problems.is_empty() {
                return Err(EnforceError::AdministratorUnfit {
                    user: check.user,
                    problems: check.problems,
                });
            }
            for more in &check.more_than_needed {
                tracing::warn!(administrator = %check.user, "target administrator has more than it needs: {more}");
            }
            self.admins_checked.insert(admin_secret_id);
        }
        Ok(target)
    }

    fn spec(&self, grant: &Grant) -> CredentialSecretSpec {
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
            kms_key_id: self.settings.kms_key_id.clone(),
            workload_principal: r.identity.workload_principal.to_string(),
            ticketbound_principals: self.settings.admin_principals.clone(),
            create_token: format!("{}-initial-version", grant.id),
        }
    }

    /// Makes (or finds, on a retry) the secret, the credential, rotation and the
    /// schedule. A scope outside the target's allow-list is refused before anything
    /// exists. The secret comes first, so that a retry reuses its password.
    pub async fn issue(&self, grant: &Grant) -> Result<Issued, EnforceError> {
        let target = self.target(grant)?;
        let TargetConfig::Postgres {
            environment,
            allowed_roles,
            host,
            port,
            dbname,
            ..
        } = target;
        // The intake took the environment from this configuration; a grant that says
        // otherwise was approved under other rules (recorded before the target's
        // environment was set, or not by the intake at all) and is not issued.
        let system = grant.request.target.system_id.to_string();
        let Some(environment) = *environment else {
            return Err(EnforceError::NoEnvironment(system));
        };
        if grant.request.target.environment != environment {
            return Err(EnforceError::EnvironmentMismatch {
                system,
                configured: environment,
                granted: grant.request.target.environment,
            });
        }
        let refused = outside_allow_list(grant.request.scope.permissions(), allowed_roles);
        if !refused.is_empty() {
            return Err(TargetError::ScopeNotAllowed { refused }.into());
        }
        // Before anything exists: an administrator that could not revoke completely
        // is refused here, with the reason, not after the secret is made.
        let connector = self.issuing_connector(target).await?;

        let principal = principal_name(grant);
        let spec = self.spec(grant);
        let (arn, password, rotation_on) = match self.secrets_manager.describe(&spec.name).await? {
            Some(info) if info.deleted => {
                return Err(EnforceError::SecretPendingDeletion(info.name));
            }
            // Only the value this issue wrote (its version is the create token): one
            // put there by anyone else, whose password they know, is not given to the
            // target.
            Some(info) if info.version_with(AWSCURRENT) != Some(spec.create_token.as_str()) => {
                return Err(EnforceError::ForeignSecretValue(info.arn));
            }
            Some(info) => {
                let value = self.secrets_manager.read(&info.arn).await?;
                let password = DatabaseSecret::from_secret(&value)
                    .map(|s| SecretString::from(s.password))
                    .ok_or_else(|| EnforceError::UnreadableSecret(info.arn.clone()))?;
                self.secrets_manager.put_policy(&info.arn, &spec).await?;
                (info.arn, password, info.rotation_enabled)
            }
            None => {
                let password = self.secrets_manager.random_password().await?;
                let value = DatabaseSecret {
                    engine: "postgres".into(),
                    host: host.clone(),
                    port: *port,
                    username: principal.clone(),
                    password: password.expose_secret().to_owned(),
                    dbname: dbname.clone(),
                }
                .to_secret();
                let arn = self
                    .secrets_manager
                    .create_credential(&spec, &value)
                    .await?;
                (arn, password, false)
            }
        };

        connector.issue(grant, &password).await?;

        let hours = grant.request.rotation_period.as_hours();
        let rotation = match &self.settings.rotation_function_arn {
            Some(function) => {
                if !rotation_on {
                    self.secrets_manager
                        .enable_rotation(&arn, function, hours)
                        .await?;
                }
                format!("every {hours} hours")
            }
            None => "not configured (TICKETBOUND_ROTATION_FUNCTION_ARN)".to_owned(),
        };
        let schedule = self.schedules.ensure(grant).await?;

        Ok(Issued {
            details: vec![
                (Detail::SecretArn, arn.clone()),
                (Detail::Principal, principal.clone()),
                (Detail::Target, grant.request.target.system_id.to_string()),
                (Detail::Scope, grant.request.scope.to_string()),
                (Detail::ExpiresAt, grant.not_after().to_rfc3339()),
                (Detail::ExpirySchedule, schedule),
                (Detail::Rotation, rotation),
            ],
            credential: CredentialRef {
                secret_arn: arn,
                principal_name: principal,
            },
        })
    }

    /// Revokes everything made for `grant`: first the credential at the target (no new
    /// logins, open sessions ended, role dropped), then the secret, then the schedule.
    /// The target comes first: if it cannot be reached, the caller keeps the grant in
    /// Revoking and retries, and the secret is still there to say what to kill.
    pub async fn revoke(&self, grant: &Grant) -> Result<Revocation, EnforceError> {
        let mut done = Revocation::default();
        // Both logins of an alternating-users rotation, whichever is current.
        if let Some(revoked) = self.revoke_at_target(grant).await? {
            done.receipt = Some(receipt(&revoked));
            done.roles_dropped = revoked.dropped;
            done.sessions_terminated = revoked.sessions_terminated;
            done.objects_dropped = revoked.objects_dropped;
            done.quarantined = revoked.quarantined;
            done.kept_disabled = revoked.kept_disabled;
            done.members_removed = revoked.members_removed;
        }
        let secret = grant
            .credential
            .as_ref()
            .map_or_else(|| secret_name(grant), |c| c.secret_arn.clone());
        done.secret_deleted = match self.settings.recovery_window_days {
            None => self.secrets_manager.delete(&secret, true, 0).await?,
            Some(days) => self.secrets_manager.delete(&secret, false, days).await?,
        };
        done.schedule_deleted = self.schedules.delete(grant.id).await?;
        tracing::info!(grant_id = %grant.id, revocation = ?done, "credential revoked");
        Ok(done)
    }
}

/// What exists now, at Secrets Manager and the target, for one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveState {
    /// The credential secret, unless it is gone (a secret scheduled for deletion
    /// counts as gone: nobody can read it).
    pub secret: Option<SecretInfo>,
    /// The grant's login roles that exist at the target.
    pub logins: Vec<LiveRole>,
}

impl LiveState {
    /// True when anything of the credential survives.
    pub fn anything_alive(&self) -> bool {
        self.secret.is_some() || !self.logins.is_empty()
    }

    /// True when a login still works (it exists, may log in, and its VALID UNTIL has
    /// not passed).
    pub fn can_log_in(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.logins
            .iter()
            .any(|l| l.can_login && l.valid_until.is_none_or(|v| v > now))
    }
}

impl Enforcer {
    /// Every login role ticketbound made at every configured database target, as
    /// (system id, role name).
    pub async fn managed_logins(&self) -> Result<Vec<(String, String)>, EnforceError> {
        let mut logins = Vec::new();
        for (system, target) in &self.settings.targets.0 {
            for role in self.connector(target).await?.managed().await? {
                logins.push((system.clone(), role));
            }
        }
        Ok(logins)
    }

    /// Looks at what exists for `grant` now: its secret and its login roles.
    pub async fn inspect(&self, grant: &Grant) -> Result<LiveState, EnforceError> {
        let secret_id = grant
            .credential
            .as_ref()
            .map_or_else(|| secret_name(grant), |c| c.secret_arn.clone());
        let secret = self
            .secrets_manager
            .describe(&secret_id)
            .await?
            .filter(|s| !s.deleted);
        let logins = self.inspect_logins(grant).await?;
        Ok(LiveState { secret, logins })
    }

    /// The grant's login roles that exist at its target (none for a target without
    /// logins).
    pub async fn inspect_logins(&self, grant: &Grant) -> Result<Vec<LiveRole>, EnforceError> {
        self.inspect_at_target(grant).await
    }
}

impl Enforcer {
    /// Removes what a provisioning that gave up may have made: the schedule and the
    /// secret (so nobody can read the value) always, then the role at the target. A
    /// target that cannot be reached is noted, not fatal: the grant never became
    /// Active, and the reconciler finds a login role that survived.
    pub async fn discard(&self, grant: &Grant) -> Result<Vec<(Detail, String)>, EnforceError> {
        self.schedules.delete(grant.id).await?;
        self.secrets_manager
            .delete(&secret_name(grant), true, 0)
            .await?;
        let mut notes = vec![(Detail::SecretDeleted, secret_name(grant))];
        let principal = principal_name(grant);
        let dropped = self.revoke_at_target(grant).await;
        {
            match dropped {
                Ok(Some(r)) if r.kept_disabled.is_empty() => {
                    notes.push((Detail::TargetRoleRemoved, principal))
                }
                Ok(Some(r)) => {
                    notes.push((Detail::TargetRoleKeptDisabled, r.kept_disabled.join("; ")))
                }
                Ok(None) => {}
                Err(e) => {
                    let why = ticketbound_runtime::error_chain(&e);
                    tracing::warn!(grant_id = %grant.id, role = %principal, error = %why, "target cleanup failed; the reconciler will find the role");
                    notes.push((Detail::TargetCleanupFailed, why));
                }
            }
        }
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_are_read_one_by_one_and_a_retired_connector_is_refused_with_its_reason() {
        let err = r#"{"billing-api": {"connector": "generated_api_key"}}"#
            .parse::<Targets>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"billing-api\"")
                && err.contains("generated_api_key connector was removed"),
            "{err}"
        );
        let err = r#"{"orders-db": {"connector": "postgres", "host": "db"}}"#
            .parse::<Targets>()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("target \"orders-db\": missing field"),
            "{err}"
        );
        let ok: Targets = r#"{"orders-db": {"connector": "postgres", "environment": "prod", "admin_secret_id": "a", "host": "db", "port": 5432, "dbname": "orders", "allowed_roles": ["orders_reader"], "ca_file": "/opt/ca.pem"}}"#
            .parse()
            .unwrap();
        assert_eq!(ok.0["orders-db"].kind(), ConnectorKind::Postgres);
        // TLS is verified by default, so a target without its CA bundle is refused.
        let err = r#"{"orders-db": {"connector": "postgres", "environment": "prod", "admin_secret_id": "a", "host": "db", "port": 5432, "dbname": "orders", "allowed_roles": ["orders_reader"]}}"#
            .parse::<Targets>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"orders-db\"") && err.contains("needs ca_file"),
            "{err}"
        );
        let plain: Targets = r#"{"orders-db": {"connector": "postgres", "environment": "prod", "admin_secret_id": "a", "host": "db", "port": 5432, "dbname": "orders", "allowed_roles": ["orders_reader"], "tls": "disabled"}}"#
            .parse()
            .unwrap();
        let TargetConfig::Postgres { tls, .. } = &plain.0["orders-db"];
        assert_eq!(*tls, TlsMode::Disabled);
    }

    /// The intake refuses keys outside `ConnectorKind::target_keys`; a key listed
    /// there that this crate does not know would be refused here instead.
    #[test]
    fn every_key_the_connector_lists_is_one_a_target_may_hold() {
        let every_key = r#"{"orders-db": {"connector": "postgres", "environment": "prod", "admin_secret_id": "a", "host": "db", "port": 5432, "dbname": "orders", "allowed_roles": ["orders_reader"], "rotation": "single_user", "owned_objects": "quarantine", "tls": "verify_full", "ca_file": "/opt/ca.pem", "approvers": {"groups": ["dba"]}}}"#;
        let raw: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
            serde_json::from_str(every_key).unwrap();
        let mut held: Vec<&str> = raw["orders-db"].keys().map(String::as_str).collect();
        let mut listed = ConnectorKind::Postgres.target_keys().to_vec();
        held.sort_unstable();
        listed.sort_unstable();
        assert_eq!(held, listed);
        every_key.parse::<Targets>().unwrap();
        let misspelt = every_key.replace("\"approvers\"", "\"aprovers\"");
        let err = misspelt.parse::<Targets>().unwrap_err().to_string();
        assert!(err.contains("unknown field `aprovers`"), "{err}");
    }
}
