//! The provisioner's configuration, from environment variables.

use std::str::FromStr;

use ticketbound_runtime::{ConfigError, EnvReader, VarProblem};
use ticketbound_schedule::ScheduleSettings;
use ticketbound_store::StoreSettings;

pub use ticketbound_store::{AUDIT_TABLE, GRANTS_TABLE, IDENTITIES_TABLE, RETENTION_DAYS};
pub const TARGETS: &str = "TICKETBOUND_TARGETS";
pub const SECRET_KMS_KEY_ID: &str = "TICKETBOUND_SECRET_KMS_KEY_ID";
pub const SECRET_ADMIN_PRINCIPALS: &str = "TICKETBOUND_SECRET_ADMIN_PRINCIPALS";
pub const ROTATION_FUNCTION_ARN: &str = "TICKETBOUND_ROTATION_FUNCTION_ARN";
pub use ticketbound_schedule::{
    EXPIRY_FUNCTION_ARN, SCHEDULE_DLQ_ARN, SCHEDULE_GROUP, SCHEDULER_ROLE_ARN,
};
pub const MAX_PROVISIONING_ATTEMPTS: &str = "TICKETBOUND_MAX_PROVISIONING_ATTEMPTS";

/// The grants-stream records the event source mapping gives the provisioner (its
/// filter criteria, as `infra/modules/ticketbound/locals.tf` sets them and the local
/// host applies them; the infrastructure check keeps the two equal): a new grant,
/// recorded Approved by the intake.
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
    SCHEDULER_ROLE_ARN,
    SCHEDULE_GROUP,
    SCHEDULE_DLQ_ARN,
    MAX_PROVISIONING_ATTEMPTS,
];

pub use ticketbound_enforce::{EnforceSettings, TargetConfig, Targets};

/// A comma-separated list.
#[derive(Debug, Clone, Default)]
struct List(Vec<String>);

impl FromStr for List {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }
}

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
        let targets: Option<Targets> =
            env.required(TARGETS, "a JSON map of target systems (see the README)");
        let kms_key_id = env.optional(SECRET_KMS_KEY_ID, "a KMS key id or ARN");
        let admins: List = env.or_default(
            SECRET_ADMIN_PRINCIPALS,
            "comma-separated IAM ARNs",
            List::default(),
        );
        let rotation_function_arn = env.optional(ROTATION_FUNCTION_ARN, "a Lambda ARN");
        let schedules = ScheduleSettings::read(&mut env, true);
        let attempts: u32 = env.or_default(MAX_PROVISIONING_ATTEMPTS, "a whole number", 5);
        env.finish()?;
        let (Some(store), Some(identities_table), Some(targets), true) =
            (store, identities_table, targets, schedules.target.is_some())
        else {
            // finish() reported each; this only keeps the types honest.
            return Err(ConfigError {
                problems: vec![(GRANTS_TABLE.to_owned(), VarProblem::Missing)],
            });
        };
        Ok(Self {
            store,
            identities_table,
            enforce: EnforceSettings {
                targets,
                kms_key_id,
                admin_principals: admins.0,
                rotation_function_arn,
                recovery_window_days: None,
            },
            schedules,
            max_provisioning_attempts: attempts,
        })
    }
}
