//! The rotation function's configuration, from environment variables.

use ticketbound_enforce::{EnforceSettings, Targets};
use ticketbound_runtime::{ConfigError, EnvReader, VarProblem};
use ticketbound_store::StoreSettings;
pub use ticketbound_store::{AUDIT_TABLE, GRANTS_TABLE, RETENTION_DAYS};

pub const TARGETS: &str = "TICKETBOUND_TARGETS";
pub const SECRET_CACHE_SECS: &str = "TICKETBOUND_SECRET_CACHE_SECS";

/// Every AWS operation this function calls (`service:Operation`, as IAM names it):
/// its role must allow each (checked against Terraform by `tests/infra-check`, and
/// each must appear in the code the function links), and what its tests observe at
/// the SDK's HTTP client must be among them.
pub const AWS_OPERATIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:TransactWriteItems",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetRandomPassword",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:ListSecretVersionIds",
];

/// Every variable the rotation function reads, for the infrastructure check.
pub const VARIABLES: &[&str] = &[
    GRANTS_TABLE,
    AUDIT_TABLE,
    RETENTION_DAYS,
    TARGETS,
    SECRET_CACHE_SECS,
];

#[derive(Debug, Clone)]
pub struct RotateConfig {
    pub store: StoreSettings,
    pub enforce: EnforceSettings,
    /// How long a target's administrator secret is served from memory.
    pub secret_cache_ttl: std::time::Duration,
}

impl RotateConfig {
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let store = StoreSettings::read(&mut env);
        let targets: Option<Targets> =
            env.required(TARGETS, "a JSON map of target systems (see the README)");
        let cache: u64 = env.or_default(SECRET_CACHE_SECS, "a number of seconds", 300);
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
                recovery_window_days: None,
            },
            secret_cache_ttl: std::time::Duration::from_secs(cache),
        })
    }
}
