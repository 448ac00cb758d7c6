//! The expiry function's configuration, from environment variables.

use ticketbound_enforce::{EnforceSettings, RecoveryDays, Targets};
use ticketbound_runtime::{ConfigError, EnvReader, VarProblem};
use ticketbound_schedule::ScheduleSettings;
use ticketbound_store::StoreSettings;
pub use ticketbound_store::{AUDIT_TABLE, GRANTS_TABLE, RETENTION_DAYS};

pub const TARGETS: &str = "TICKETBOUND_TARGETS";
pub use ticketbound_schedule::{
    EXPIRY_FUNCTION_ARN, SCHEDULE_DLQ_ARN, SCHEDULE_GROUP, SCHEDULER_ROLE_ARN,
};
pub const SECRET_RECOVERY_DAYS: &str = "TICKETBOUND_SECRET_RECOVERY_DAYS";
pub const SECRET_CACHE_SECS: &str = "TICKETBOUND_SECRET_CACHE_SECS";
pub const REVOKE_CONCURRENCY: &str = "TICKETBOUND_REVOKE_CONCURRENCY";
pub const REVOCATION_ESCALATE_AFTER_SECS: &str = "TICKETBOUND_REVOCATION_ESCALATE_AFTER_SECS";
pub const REVOCATION_RETRY_MAX_SECS: &str = "TICKETBOUND_REVOCATION_RETRY_MAX_SECS";

/// The grants-stream records the event source mapping gives the expiry function (its
/// filter criteria, as `infra/modules/ticketbound/locals.tf` sets them and the local
/// host applies them; the infrastructure check keeps the two equal): DynamoDB TTL
/// removing an expiry trigger (a REMOVE by anyone else is no signal), and a grant
/// moved to Revoking.
pub const STREAM_FILTERS: &str = r#"[
  {"eventName": ["REMOVE"],
   "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
   "dynamodb": {"Keys": {"sk": {"S": ["EXPIRY"]}}}},
  {"eventName": ["MODIFY"],
   "dynamodb": {"Keys": {"sk": {"S": ["GRANT"]}}, "NewImage": {"state": {"S": ["revoking"]}}}}
]"#;

/// Every AWS operation this function calls (`service:Operation`, as IAM names it):
/// its role must allow each (checked against Terraform by `tests/infra-check`, and
/// each must appear in the code the function links), and what its tests observe at
/// the SDK's HTTP client must be among them.
pub const AWS_OPERATIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:TransactWriteItems",
    "scheduler:CreateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
    "secretsmanager:DeleteSecret",
    "secretsmanager:DescribeSecret",
    // The targets' administrator secrets.
    "secretsmanager:GetSecretValue",
];

/// Every variable the expiry function reads, for the infrastructure check.
pub const VARIABLES: &[&str] = &[
    GRANTS_TABLE,
    AUDIT_TABLE,
    RETENTION_DAYS,
    TARGETS,
    SCHEDULE_GROUP,
    EXPIRY_FUNCTION_ARN,
    SCHEDULER_ROLE_ARN,
    SCHEDULE_DLQ_ARN,
    SECRET_RECOVERY_DAYS,
    SECRET_CACHE_SECS,
    REVOKE_CONCURRENCY,
    REVOCATION_ESCALATE_AFTER_SECS,
    REVOCATION_RETRY_MAX_SECS,
];

#[derive(Debug, Clone)]
pub struct ExpireConfig {
    pub store: StoreSettings,
    pub enforce: EnforceSettings,
    pub schedules: ScheduleSettings,
    pub secret_cache_ttl: std::time::Duration,
    /// How many grants of one batch are revoked at once.
    pub concurrency: usize,
    /// A revocation failing for longer than this is escalated (once).
    pub escalate_after: chrono::Duration,
    /// The longest wait between two retries of a failing revocation.
    pub retry_max: std::time::Duration,
}

impl ExpireConfig {
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let store = StoreSettings::read(&mut env);
        let targets: Option<Targets> =
            env.required(TARGETS, "a JSON map of target systems (see the README)");
        // Without a target, failed revocations are retried by the event source and
        // the sweep instead of a schedule of their own.
        let schedules = ScheduleSettings::read(&mut env, false);
        let recovery: Option<RecoveryDays> = env.optional(
            SECRET_RECOVERY_DAYS,
            "a number of days from 7 to 30 (unset: delete at once)",
        );
        let cache: u64 = env.or_default(SECRET_CACHE_SECS, "a number of seconds", 300);
        let concurrency: usize = env.or_default(REVOKE_CONCURRENCY, "a whole number", 8);
        let escalate: i64 =
            env.or_default(REVOCATION_ESCALATE_AFTER_SECS, "a number of seconds", 900);
        let retry_max: u64 = env.or_default(REVOCATION_RETRY_MAX_SECS, "a number of seconds", 300);
        env.finish()?;
        let (Some(store), Some(targets)) = (store, targets) else {
            // finish() reported each; this only keeps the types honest.
            return Err(ConfigError {
                problems: vec![(GRANTS_TABLE.to_owned(), VarProblem::Missing)],
            });
        };
        Ok(Self {
            store,
            enforce: EnforceSettings {
                targets,
                kms_key_id: None,
                admin_principals: Vec::new(),
                rotation_function_arn: None,
                recovery_window_days: recovery.map(|r| r.0),
            },
            schedules,
            secret_cache_ttl: std::time::Duration::from_secs(cache),
            concurrency: concurrency.max(1),
            escalate_after: chrono::Duration::seconds(escalate.max(0)),
            retry_max: std::time::Duration::from_secs(retry_max.max(1)),
        })
    }
}
