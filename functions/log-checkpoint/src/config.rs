//! The checkpointer's configuration, from environment variables.

use ticketbound_runtime::{ConfigError, EnvReader, VarProblem};
use ticketbound_store::StoreSettings;
// The KMS key that signs checkpoints (ECC_NIST_P256, SIGN_VERIFY) and, during a
// rollover, the retiring one that signs beside it; the Object Lock bucket; the log's
// name; how many events past the last checkpoint make another (docs/configuration.md).
pub use ticketbound_runtime::vars::{
    AUDIT_TABLE, CHECKPOINT_EVERY, GRANTS_TABLE, LOG_BUCKET, LOG_KEY_ID, LOG_ORIGIN,
    LOG_PREVIOUS_KEY_ID, LOG_TABLE, RETENTION_DAYS,
};

/// The audit-stream records the event source mapping gives the checkpointer (its
/// filter criteria, as `infra/modules/ticketbound/locals.tf` sets them and the local
/// host applies them): new audit events and rewritten ones. A rewrite is not
/// something ticketbound does; logging it is how the verifier sees it.
pub const STREAM_FILTERS: &str = r#"[{"eventName": ["INSERT", "MODIFY"]}]"#;

/// Every AWS operation this function calls (`service:Operation`, as IAM names it):
/// its role must allow each (checked against Terraform by `tests/infra-check`).
pub const AWS_OPERATIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
    // The newest checkpoint's item, which the write-back reads.
    "dynamodb:PutItem",
    "dynamodb:TransactWriteItems",
    "kms:DescribeKey",
    "kms:GetPublicKey",
    "kms:Sign",
    "s3:GetObject",
    "s3:PutObject",
    // The newest checkpoint is found by listing (IAM: s3:ListBucket on the bucket).
    "s3:ListObjectsV2",
];

/// Every variable the checkpointer reads, for the infrastructure check.
pub const VARIABLES: &[&str] = &[
    GRANTS_TABLE,
    AUDIT_TABLE,
    RETENTION_DAYS,
    LOG_TABLE,
    LOG_KEY_ID,
    LOG_PREVIOUS_KEY_ID,
    LOG_BUCKET,
    LOG_ORIGIN,
    CHECKPOINT_EVERY,
];

#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    pub store: StoreSettings,
    pub log_table: String,
    pub key_id: String,
    /// The retiring key, during a rollover.
    pub previous_key_id: Option<String>,
    pub bucket: String,
    pub origin: String,
    pub every: u64,
}

impl CheckpointConfig {
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let store = StoreSettings::read(&mut env);
        let log_table = ticketbound_store::LogStore::read_table(&mut env);
        let key_id: Option<String> = env.required(LOG_KEY_ID, "a KMS key ARN");
        let previous_key_id: Option<String> =
            env.optional(LOG_PREVIOUS_KEY_ID, "the retiring KMS key's ARN");
        if previous_key_id.is_some() && previous_key_id == key_id {
            env.problem(
                LOG_PREVIOUS_KEY_ID,
                VarProblem::Malformed {
                    expected: "another key than TICKETBOUND_LOG_KEY_ID".to_owned(),
                },
            );
        }
        let bucket: Option<String> = env.required(LOG_BUCKET, "an S3 bucket name");
        let origin: Option<String> = env.required(
            LOG_ORIGIN,
            "the log's name, without spaces or '+' (e.g. ticketbound.example.com/prod)",
        );
        let every: u64 = env.or_default(CHECKPOINT_EVERY, "a whole number from 1", 64);
        if let Some(o) = &origin
            && (o.is_empty() || o.chars().any(|c| c.is_whitespace() || c == '+'))
        {
            env.problem(
                LOG_ORIGIN,
                VarProblem::Malformed {
                    expected: "a name without spaces or '+'".to_owned(),
                },
            );
        }
        env.finish_with("the checkpointer's configuration", || {
            Some(Self {
                store: store?,
                log_table: log_table?,
                key_id: key_id?,
                previous_key_id,
                bucket: bucket?,
                origin: origin?,
                every: every.max(1),
            })
        })
    }
}
