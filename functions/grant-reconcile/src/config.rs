//! The reconciler's configuration, from environment variables.

use ticketbound_enforce::{EnforceSettings, RecoveryDays, Targets};
use ticketbound_runtime::{ConfigError, EnvReader, VarProblem};
use ticketbound_schedule::ScheduleSettings;
use ticketbound_store::StoreSettings;
pub use ticketbound_store::{AUDIT_TABLE, GRANTS_TABLE, IDENTITIES_TABLE, RETENTION_DAYS};

pub const TARGETS: &str = "TICKETBOUND_TARGETS";
pub const SCHEDULE_GROUP: &str = "TICKETBOUND_SCHEDULE_GROUP";
pub const SECRET_CACHE_SECS: &str = "TICKETBOUND_SECRET_CACHE_SECS";
pub const SECRET_RECOVERY_DAYS: &str = "TICKETBOUND_SECRET_RECOVERY_DAYS";
pub const REMEDIATE: &str = "TICKETBOUND_RECONCILE_REMEDIATE";
pub const SEGMENTS: &str = "TICKETBOUND_RECONCILE_SEGMENTS";
pub const ROTATION_GRACE_HOURS: &str = "TICKETBOUND_ROTATION_GRACE_HOURS";

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
    REMEDIATE,
    SEGMENTS,
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
        let targets: Option<Targets> =
            env.required(TARGETS, "a JSON map of target systems (see the README)");
        let group: String = env.or_default(
            SCHEDULE_GROUP,
            "a schedule group name",
            "ticketbound".to_owned(),
        );
        let cache: u64 = env.or_default(SECRET_CACHE_SECS, "a number of seconds", 300);
        let recovery: Option<RecoveryDays> = env.optional(
            SECRET_RECOVERY_DAYS,
            "a number of days from 7 to 30 (unset: delete at once)",
        );
        let remediate: bool = env.or_default(REMEDIATE, "true or false", true);
        let segments: i32 = env.or_default(SEGMENTS, "a whole number from 1", 4);
        let grace: i64 = env.or_default(ROTATION_GRACE_HOURS, "a number of hours", 2);
        env.finish()?;
        let (Some(store), Some(identities_table), Some(targets)) =
            (store, identities_table, targets)
        else {
            return Err(ConfigError {
                problems: vec![(GRANTS_TABLE.to_owned(), VarProblem::Missing)],
            });
        };
        Ok(Self {
            store,
            identities_table,
            enforce: EnforceSettings {
                targets,
                kms_key_id: None,
                admin_principals: Vec::new(),
                rotation_function_arn: None,
                recovery_window_days: recovery.map(|r| r.0),
            },
            schedules: ScheduleSettings {
                group,
                target: None,
            },
            secret_cache_ttl: std::time::Duration::from_secs(cache),
            remediate,
            segments: segments.max(1),
            rotation_grace: chrono::Duration::hours(grace.max(0)),
        })
    }
}
