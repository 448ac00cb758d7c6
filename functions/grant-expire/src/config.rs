//! The expiry function's configuration, from environment variables.

use ticketbound_enforce::{EnforceSettings, RecoveryDays, Targets};
use ticketbound_runtime::{ConfigError, EnvReader, VarProblem};
use ticketbound_schedule::ScheduleSettings;
use ticketbound_store::StoreSettings;
pub use ticketbound_store::{AUDIT_TABLE, GRANTS_TABLE, RETENTION_DAYS};

pub const TARGETS: &str = "TICKETBOUND_TARGETS";
pub const SCHEDULE_GROUP: &str = "TICKETBOUND_SCHEDULE_GROUP";
pub const SECRET_RECOVERY_DAYS: &str = "TICKETBOUND_SECRET_RECOVERY_DAYS";
pub const SECRET_CACHE_SECS: &str = "TICKETBOUND_SECRET_CACHE_SECS";
pub const REVOKE_CONCURRENCY: &str = "TICKETBOUND_REVOKE_CONCURRENCY";

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

/// Every variable the expiry function reads, for the infrastructure check.
pub const VARIABLES: &[&str] = &[
    GRANTS_TABLE,
    AUDIT_TABLE,
    RETENTION_DAYS,
    TARGETS,
    SCHEDULE_GROUP,
    SECRET_RECOVERY_DAYS,
    SECRET_CACHE_SECS,
    REVOKE_CONCURRENCY,
];

#[derive(Debug, Clone)]
pub struct ExpireConfig {
    pub store: StoreSettings,
    pub enforce: EnforceSettings,
    pub schedules: ScheduleSettings,
    pub secret_cache_ttl: std::time::Duration,
    /// How many grants of one batch are revoked at once.
    pub concurrency: usize,
}

impl ExpireConfig {
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let store = StoreSettings::read(&mut env);
        let targets: Option<Targets> =
            env.required(TARGETS, "a JSON map of target systems (see the README)");
        let group: String = env.or_default(
            SCHEDULE_GROUP,
            "a schedule group name",
            "ticketbound".to_owned(),
        );
        let recovery: Option<RecoveryDays> = env.optional(
            SECRET_RECOVERY_DAYS,
            "a number of days from 7 to 30 (unset: delete at once)",
        );
        let cache: u64 = env.or_default(SECRET_CACHE_SECS, "a number of seconds", 300);
        let concurrency: usize = env.or_default(REVOKE_CONCURRENCY, "a whole number", 8);
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
            schedules: ScheduleSettings {
                group,
                target: None,
            },
            secret_cache_ttl: std::time::Duration::from_secs(cache),
            concurrency: concurrency.max(1),
        })
    }
}
