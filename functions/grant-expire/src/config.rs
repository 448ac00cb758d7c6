//! The expiry function's configuration, from environment variables.

use ticketbound_enforce::{EnforceRole, EnforceSettings};
pub use ticketbound_runtime::vars::{
    AUDIT_TABLE, EXPIRY_FUNCTION_ARN, GRANTS_TABLE, RETENTION_DAYS, REVOCATION_ESCALATE_AFTER_SECS,
    REVOCATION_RETRY_MAX_SECS, REVOKE_CONCURRENCY, SCHEDULE_DLQ_ARN, SCHEDULE_GROUP,
    SCHEDULER_ROLE_ARN, SECRET_CACHE_SECS, SECRET_RECOVERY_DAYS, TARGETS,
};
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_schedule::{ScheduleSettings, ScheduleUse};
use ticketbound_secrets::SecretCache;
use ticketbound_store::StoreSettings;

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
        let enforce = EnforceSettings::read(&mut env, EnforceRole::Revokes);
        // Without a target, failed revocations are retried by the event source and
        // the sweep instead of a schedule of their own.
        let schedules = ScheduleSettings::read(&mut env, ScheduleUse::RetriesIfTargeted);
        let secret_cache_ttl = SecretCache::read_ttl(&mut env);
        let concurrency: usize = env.or_default(REVOKE_CONCURRENCY, "a whole number", 8);
        let escalate: i64 =
            env.or_default(REVOCATION_ESCALATE_AFTER_SECS, "a number of seconds", 900);
        let retry_max: u64 = env.or_default(REVOCATION_RETRY_MAX_SECS, "a number of seconds", 300);
        env.finish_with("the expiry function's configuration", || {
            Some(Self {
                store: store?,
                enforce: enforce?,
                schedules,
                secret_cache_ttl,
                concurrency: concurrency.max(1),
                escalate_after: chrono::Duration::seconds(escalate.max(0)),
                retry_max: std::time::Duration::from_secs(retry_max.max(1)),
            })
        })
    }
}
