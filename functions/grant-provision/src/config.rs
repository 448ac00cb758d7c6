//! The provisioner's configuration, from environment variables.

use ticketbound_enforce::EnforceRole;
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_schedule::{ScheduleSettings, ScheduleUse};
use ticketbound_store::StoreSettings;

pub use ticketbound_runtime::vars::{
    AUDIT_TABLE, EXPIRY_FUNCTION_ARN, GRANTS_TABLE, IDENTITIES_TABLE, MAX_PROVISIONING_ATTEMPTS,
    PROVISION_FUNCTION_ARN, RETENTION_DAYS, ROTATION_FUNCTION_ARN, SCHEDULE_DLQ_ARN,
    SCHEDULE_GROUP, SCHEDULER_ROLE_ARN, SECRET_ADMIN_PRINCIPALS, SECRET_KMS_KEY_ID, TARGETS,
};

pub const STREAM_FILTERS: &str = r#"[
  {"eventName": ["INSERT"],
   "dynamodb": {"Keys": {"sk": {"S": ["GRANT"]}}, "NewImage": {"state": {"S": ["approved"]}}}}
]"#;

/// Every AWS operation this function calls (`service:Operation`, as IAM names it):
/// its role must allow each (checked against Terraform by `tests/infra-check`, and
/// each must appear in the code the function links), and what its tests observe at
/// the SDK's HTTP client must be among them.
pub const AWS_OPERATIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:TransactWriteItems",
    "scheduler:CreateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
    "secretsmanager:CreateSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetRandomPassword",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:RotateSecret",
];

/// Every variable the provisioner reads, for the infrastructure check.
pub const VARIABLES: &[&str] = &[
    GRANTS_TABLE,
    AUDIT_TABLE,
    RETENTION_DAYS,
    IDENTITIES_TABLE,
    TARGETS,
    SECRET_KMS_KEY_ID,
    SECRET_ADMIN_PRINCIPALS,
    ROTATION_FUNCTION_ARN,
    EXPIRY_FUNCTION_ARN,
    PROVISION_FUNCTION_ARN,
    SCHEDULER_ROLE_ARN,
    SCHEDULE_GROUP,
    SCHEDULE_DLQ_ARN,
    MAX_PROVISIONING_ATTEMPTS,
];

pub use ticketbound_enforce::{EnforceSettings, TargetConfig, Targets};

/// A comma-separated list.
#[derive(Debug, Clone)]
pub struct ProvisionConfig {
    pub store: StoreSettings,
    /// The identity registry, checked again right before a credential is issued.
    pub identities_table: String,
    pub enforce: EnforceSettings,
    pub schedules: ScheduleSettings,
    pub max_provisioning_attempts: u32,
}

impl ProvisionConfig {
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let store = StoreSettings::read(&mut env);
        let identities_table = ticketbound_store::Registry::read_table(&mut env);
        let enforce = EnforceSettings::read(&mut env, EnforceRole::Issues);
        let schedules = ScheduleSettings::read(&mut env, ScheduleUse::Creates);
        let attempts: u32 = env.or_default(MAX_PROVISIONING_ATTEMPTS, "a whole number", 5);
        env.finish_with("the provisioner's configuration", || {
            // `Creates` reported a missing target; the check only keeps it in the type.
            schedules.target.as_ref()?;
            Some(Self {
                store: store?,
                identities_table: identities_table?,
                enforce: enforce?,
                schedules,
                max_provisioning_attempts: attempts,
            })
        })
    }
}
