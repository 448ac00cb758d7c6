//! The write-back's configuration, from environment variables. Each ITSM is written
//! to only when its URL and credentials secret are both set.

use std::time::Duration;

pub use ticketbound_runtime::vars::{
    AUDIT_TABLE, GRANTS_TABLE, JIRA_CREDENTIALS_SECRET_ID, JIRA_REVOKED_TRANSITION_ID, JIRA_URL,
    LOG_TABLE, RETENTION_DAYS, SECRET_CACHE_SECS, SERVICENOW_CREDENTIALS_SECRET_ID,
    SERVICENOW_REVOKED_STATE, SERVICENOW_URL, WRITEBACK_ATTEMPTS, WRITEBACK_MAX_WAIT_SECS,
};
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_secrets::SecretCache;
use ticketbound_store::StoreSettings;
use ticketbound_store::log::LogStore;

/// The audit-stream records the event source mapping gives the write-back (its
/// filter criteria, as `infra/modules/ticketbound/locals.tf` sets them and the local
/// host applies them; the infrastructure check keeps the two equal): new audit events.
pub const STREAM_FILTERS: &str = r#"[{"eventName": ["INSERT"]}]"#;

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
    "secretsmanager:GetSecretValue",
];

/// Every variable the write-back reads, for the infrastructure check.
pub const VARIABLES: &[&str] = &[
    GRANTS_TABLE,
    AUDIT_TABLE,
    RETENTION_DAYS,
    LOG_TABLE,
    SERVICENOW_URL,
    SERVICENOW_CREDENTIALS_SECRET_ID,
    SERVICENOW_REVOKED_STATE,
    JIRA_URL,
    JIRA_CREDENTIALS_SECRET_ID,
    JIRA_REVOKED_TRANSITION_ID,
    WRITEBACK_ATTEMPTS,
    WRITEBACK_MAX_WAIT_SECS,
    SECRET_CACHE_SECS,
];

/// One ITSM to write to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub credentials_secret_id: String,
}

#[derive(Debug, Clone)]
pub struct WritebackConfig {
    pub store: StoreSettings,
    /// The signed log's table: each note names its newest checkpoint.
    pub log_table: String,
    pub servicenow: Option<Endpoint>,
    /// The `state` value a ServiceNow record is set to when its grant is revoked.
    pub servicenow_revoked_state: Option<String>,
    pub jira: Option<Endpoint>,
    /// The transition a Jira issue takes when its grant is revoked.
    pub jira_revoked_transition: Option<String>,
    /// Attempts per note before it goes to the dead-letter record.
    pub attempts: u32,
    /// The longest wait between attempts (a longer Retry-After is cut to this).
    pub max_wait: Duration,
    pub secret_cache_ttl: Duration,
}

fn endpoint(
    env: &mut EnvReader,
    url_var: &'static str,
    secret_var: &'static str,
) -> Option<Endpoint> {
    env.both_or_neither(
        (url_var, "an https:// base URL"),
        (secret_var, "a Secrets Manager secret id"),
    )
    .map(|(url, credentials_secret_id)| Endpoint {
        url,
        credentials_secret_id,
    })
}

impl WritebackConfig {
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let store = StoreSettings::read(&mut env);
        let log_table = LogStore::read_table(&mut env);
        let servicenow = endpoint(&mut env, SERVICENOW_URL, SERVICENOW_CREDENTIALS_SECRET_ID);
        let servicenow_revoked_state: Option<String> =
            env.optional(SERVICENOW_REVOKED_STATE, "a ServiceNow state value");
        let jira = endpoint(&mut env, JIRA_URL, JIRA_CREDENTIALS_SECRET_ID);
        let jira_revoked_transition: Option<String> =
            env.optional(JIRA_REVOKED_TRANSITION_ID, "a Jira transition id");
        let attempts: u32 = env.or_default(WRITEBACK_ATTEMPTS, "a whole number from 1", 4);
        let max_wait: u64 = env.or_default(WRITEBACK_MAX_WAIT_SECS, "a number of seconds", 20);
        let secret_cache_ttl = SecretCache::read_ttl(&mut env);
        env.finish_with("the write-back's configuration", || {
            Some(Self {
                store: store?,
                log_table: log_table?,
                servicenow,
                servicenow_revoked_state,
                jira,
                jira_revoked_transition,
                attempts: attempts.max(1),
                max_wait: Duration::from_secs(max_wait),
                secret_cache_ttl,
            })
        })
    }
}
