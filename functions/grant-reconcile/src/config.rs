//! The reconciler's configuration, from environment variables.

use ticketbound_enforce::{EnforceRole, EnforceSettings};
pub use ticketbound_runtime::vars::{
    AUDIT_TABLE, GRANTS_TABLE, IDENTITIES_TABLE, RECONCILE_REMEDIATE, RECONCILE_SEGMENTS,
    RETENTION_DAYS, ROTATION_GRACE_HOURS, SCHEDULE_GROUP, SECRET_CACHE_SECS, SECRET_RECOVERY_DAYS,
    TARGETS,
};
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_schedule::{ScheduleSettings, ScheduleUse};
use ticketbound_secrets::SecretCache;
use ticketbound_store::StoreSettings;

/// Every AWS operation this function calls (`service:Operation`, as IAM names it):
/// its role must allow each (checked against Terraform by `tests/infra-check`, and
/// each must appear in the code the function links), and what its tests observe at
/// the SDK's HTTP client must be among them.
pub const AWS_OPERATIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:TransactWriteItems",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
    "secretsmanager:DeleteSecret",
    "secretsmanager:DescribeSecret",
    // The targets' administrator secrets.
    "secretsmanager:GetSecretValue",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:ListSecrets",
];

/// Every variable the reconciler reads, for the infrastructure check.
pub const VARIABLES: &[&str] = &[
    GRANTS_TABLE,
    AUDIT_TABLE,
    RETENTION_DAYS,
    IDENTITIES_TABLE,
    TARGETS,
    SCHEDULE_GROUP,
    SECRET_CACHE_SECS,
    SECRET_RECOVERY_DAYS,
    RECONCILE_REMEDIATE,
    RECONCILE_SEGMENTS,
    ROTATION_GRACE_HOURS,
];

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub store: StoreSettings,
    /// The identity registry's table: live grants are checked against it.
    pub identities_table: String,
    pub enforce: EnforceSettings,
    pub schedules: ScheduleSettings,
    pub secret_cache_ttl: std::time::Duration,
    /// Revoke what outlived its grant (expired-but-live); off: only report it.
    pub remediate: bool,
    /// Parallel scan segments of the grants table.
    pub segments: i32,
    /// How late a rotation may be before it is reported overdue.
    pub rotation_grace: chrono::Duration,
}

impl ReconcileConfig {
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let store = StoreSettings::read(&mut env);
        let identities_table = ticketbound_store::Registry::read_table(&mut env);
        // The reconciler revokes what outlived its grant, and deletes schedules.
        let enforce = EnforceSettings::read(&mut env, EnforceRole::Revokes);
        let schedules = ScheduleSettings::read(&mut env, ScheduleUse::Deletes);
        let secret_cache_ttl = SecretCache::read_ttl(&mut env);
        let remediate: bool = env.or_default(RECONCILE_REMEDIATE, "true or false", true);
        let segments: i32 = env.or_default(RECONCILE_SEGMENTS, "a whole number from 1", 4);
        let grace: i64 = env.or_default(ROTATION_GRACE_HOURS, "a number of hours", 2);
        env.finish_with("the reconciler's configuration", || {
            Some(Self {
                store: store?,
                identities_table: identities_table?,
                enforce: enforce?,
                schedules,
                secret_cache_ttl,
                remediate,
                segments: segments.max(1),
                rotation_grace: chrono::Duration::hours(grace.max(0)),
            })
        })
    }
}
