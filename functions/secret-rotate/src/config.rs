//! The rotation function's configuration, from environment variables.

use ticketbound_enforce::{EnforceRole, EnforceSettings};
pub use ticketbound_runtime::vars::{
    AUDIT_TABLE, GRANTS_TABLE, RETENTION_DAYS, SECRET_CACHE_SECS, TARGETS,
};
use ticketbound_runtime::{ConfigError, EnvReader};
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
        let enforce = EnforceSettings::read(&mut env, EnforceRole::Rotates);
        let secret_cache_ttl = SecretCache::read_ttl(&mut env);
        env.finish_with("the rotation function's configuration", || {
            Some(Self {
                store: store?,
                enforce: enforce?,
                secret_cache_ttl,
            })
        })
    }
}
