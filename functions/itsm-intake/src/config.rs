//! The intake's configuration, from environment variables (set by Terraform, or by the
//! local stack's function host).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;

use chrono::Duration;
use serde::de::DeserializeOwned;
use ticketbound_domain::{ConnectorKind, Environment, SourceSystem, SystemId, TargetFacts};
use ticketbound_itsm::jira::JiraMapping;
use ticketbound_itsm::readback::ApproverRule;
use ticketbound_itsm::servicenow::ServiceNowMapping;
use ticketbound_runtime::{CommaList, ConfigError, EnvReader};
use ticketbound_secrets::SecretCache;
use ticketbound_store::StoreSettings;

/// A JSON value in an environment variable.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromStr for Json<T> {
    type Err = serde_json::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_str(s).map(Json)
    }
}

/// How ServiceNow (and generic senders) authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderAuth {
    /// `X-Ticketbound-Timestamp` + `X-Ticketbound-Signature` (HMAC), with a replay window.
    Hmac,
    /// `Authorization: Bearer <secret>`: weaker (no integrity, replayable), for
    /// instances that cannot compute an HMAC.
    Bearer,
}

impl FromStr for SenderAuth {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "hmac" => Ok(Self::Hmac),
            "bearer" => Ok(Self::Bearer),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JiraSettings {
    pub secret_id: String,
    pub mapping: JiraMapping,
    /// Where and how approvals are read back; unset, Jira approvals are refused
    /// unless Jira is one of the sender-only systems.
    pub read_back: Option<ReadBack>,
}

/// An ITSM API the intake reads approvals back from, with credentials of its own:
/// read-only ones (the write-back's, which may comment, are not the intake's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    /// The site URL (`https://example.atlassian.net`).
    pub url: String,
    /// The secret holding the reader's credentials (Jira: `{"email", "api_token"}`).
    pub secret_id: String,
}

/// `TICKETBOUND_SENDER_ONLY`: the systems whose approvals are believed on their
/// sender's signature alone, with no read-back (a generic sender has no API to ask).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderOnly(pub BTreeSet<SourceSystem>);

impl FromStr for SenderOnly {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let Ok(CommaList(items)) = s.parse();
        items
            .iter()
            .map(|x| x.parse::<SourceSystem>().map_err(|_| ()))
            .collect::<Result<_, ()>>()
            .map(Self)
    }
}

#[derive(Debug, Clone)]
pub struct ServiceNowSettings {
    pub secret_id: String,
    pub auth: SenderAuth,
    pub mapping: ServiceNowMapping,
}

/// `TICKETBOUND_TARGETS` as the intake reads it: system id → its connector, its
/// environment and who may approve it. The request names a target; what kind of
/// target it is (and so what policy sees of its capabilities), which environment it is
/// in (and so which of the policy's rules apply), and whose approval counts come from
/// here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetKinds {
    pub facts: BTreeMap<String, TargetFacts>,
    /// Targets without an entry take any approver (separation of duties still holds).
    pub approvers: BTreeMap<String, ApproverRule>,
}

impl FromStr for TargetKinds {
    type Err = serde_json::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        #[derive(serde::Deserialize)]
        struct Entry {
            connector: ConnectorKind,
            // Required: a target whose environment is not said would take the
            // request's word for it.
            environment: Environment,
            /// Kept as JSON so that an explicit `null` (what Terraform's jsonencode
            /// writes for an unset attribute) is seen, not taken for "no rule".
            #[serde(default, deserialize_with = "present")]
            approvers: Option<serde_json::Value>,
            /// The keys the other functions read, checked against the connector's.
            #[serde(flatten)]
            rest: BTreeMap<String, serde_json::Value>,
        }
        let entries: BTreeMap<String, Entry> = serde_json::from_str(s)?;
        if let Some((id, e)) = entries.iter().find(|(_, e)| e.connector.is_retired()) {
            return Err(serde::de::Error::custom(
                e.connector.retired_target_refusal(id),
            ));
        }
        fn present<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<serde_json::Value>, D::Error> {
            serde::Deserialize::deserialize(d).map(Some)
        }
        for (id, e) in &entries {
            let known = e.connector.target_keys();
            if let Some(key) = e.rest.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(serde::de::Error::custom(format!(
                    "target {id:?}: unknown key {key:?} (a {} target has: {})",
                    e.connector.as_str(),
                    known.join(", ")
                )));
            }
        }
        let mut kinds = Self::default();
        for (id, e) in entries {
            match e.approvers {
                None => {}
                Some(serde_json::Value::Null) => {
                    return Err(serde::de::Error::custom(format!(
                        "target {id:?}: approvers is null; name the groups or users who may approve, or leave the key out (then anyone may)"
                    )));
                }
                Some(rule) => {
                    let rule: ApproverRule = serde_json::from_value(rule).map_err(|e| {
                        serde::de::Error::custom(format!("target {id:?}: approvers: {e}"))
                    })?;
                    kinds.approvers.insert(id.clone(), rule);
                }
            }
            kinds.facts.insert(
                id,
                TargetFacts {
                    connector: e.connector,
                    environment: e.environment,
                },
            );
        }
        Ok(kinds)
    }
}

impl TargetKinds {
    pub fn facts_of(&self, system: &SystemId) -> Option<TargetFacts> {
        self.facts.get(system.as_str()).copied()
    }

    pub fn approvers_of(&self, system: &str) -> Option<&ApproverRule> {
        self.approvers.get(system)
    }
}

/// Which EventBridge events may speak at all: PutEvents lets its caller set any
/// `source`, so the configured sources (the integrations' own) are checked, and
/// `account` (which EventBridge sets, and a caller cannot) must be the deployment's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBridgeSettings {
    pub sources: Vec<String>,
    pub account: String,
}

/// A comma-separated list of EventBridge `source` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceList(pub Vec<String>);

impl FromStr for SourceList {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let Ok(CommaList(sources)) = s.parse();
        // `aws.` sources are AWS services' own; none is an ITSM.
        if sources.is_empty() || sources.iter().any(|x| x.starts_with("aws.")) {
            return Err(());
        }
        Ok(Self(sources))
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountId(pub String);

impl FromStr for AccountId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        (s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(s.to_owned()))
            .ok_or(())
    }
}

#[derive(Debug, Clone)]
pub struct IntakeConfig {
    pub store: StoreSettings,
    /// The identity registry's table: who owns an identity, and which workloads,
    /// targets and environments it may be granted, come from there.
    pub identities_table: String,
    /// The targets ticketbound manages, and their connectors.
    pub targets: TargetKinds,
    /// A directory of `*.cedar` policies to use instead of the defaults.
    pub policy_dir: Option<PathBuf>,
    /// Each integration is enabled by configuring its secret; a request to a route
    /// whose integration is not configured gets 404.
    pub jira: Option<JiraSettings>,
    pub servicenow: Option<ServiceNowSettings>,
    pub generic_secret_id: Option<String>,
    /// Systems whose approvals are believed without a read-back.
    pub sender_only: SenderOnly,
    /// Unset: EventBridge events are refused.
    pub eventbridge: Option<EventBridgeSettings>,
    /// How far a signed timestamp may be from our clock.
    pub replay_window: Duration,
    /// How long a delivery id is remembered (redeliveries inside it answer 200).
    pub delivery_ttl: Duration,
    /// How long configuration secrets are served from memory.
    pub secret_cache_ttl: std::time::Duration,
    /// How soon after a fetch a failed signature may fetch the secret again.
    pub secret_min_refresh: std::time::Duration,
}

// The intake takes only each target's connector, environment and approver rule from
// `TICKETBOUND_TARGETS` (the rest, administrator secrets included, it ignores).
pub use ticketbound_runtime::vars::{
    AUDIT_TABLE, DELIVERY_TTL_HOURS, EVENTBRIDGE_ACCOUNT, EVENTBRIDGE_SOURCES, GENERIC_SECRET_ID,
    GRANTS_TABLE, IDENTITIES_TABLE, JIRA_API_URL, JIRA_MAPPING, JIRA_READ_SECRET_ID,
    JIRA_SECRET_ID, POLICY_DIR, REPLAY_WINDOW_SECS, RETENTION_DAYS, SECRET_CACHE_SECS,
    SECRET_MIN_REFRESH_SECS, SENDER_ONLY, SERVICENOW_AUTH, SERVICENOW_MAPPING,
    SERVICENOW_SECRET_ID, TARGETS,
};

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

/// Every variable the intake reads, for the infrastructure check.
pub const VARIABLES: &[&str] = &[
    GRANTS_TABLE,
    AUDIT_TABLE,
    RETENTION_DAYS,
    IDENTITIES_TABLE,
    TARGETS,
    POLICY_DIR,
    JIRA_SECRET_ID,
    JIRA_MAPPING,
    JIRA_API_URL,
    JIRA_READ_SECRET_ID,
    SENDER_ONLY,
    SERVICENOW_SECRET_ID,
    SERVICENOW_AUTH,
    SERVICENOW_MAPPING,
    GENERIC_SECRET_ID,
    EVENTBRIDGE_SOURCES,
    EVENTBRIDGE_ACCOUNT,
    REPLAY_WINDOW_SECS,
    DELIVERY_TTL_HOURS,
    SECRET_CACHE_SECS,
    SECRET_MIN_REFRESH_SECS,
];

impl IntakeConfig {
    /// Reads the configuration; one error names every missing or malformed variable.
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let store = StoreSettings::read(&mut env);
        let identities_table = ticketbound_store::Registry::read_table(&mut env);
        let targets: Option<TargetKinds> = env.required(
            TARGETS,
            "a JSON map of target systems, each with its connector (docs/configuration.md)",
        );
        let policy_dir = env.optional::<PathBuf>(POLICY_DIR, "a directory");
        let jira_secret: Option<String> =
            env.optional(JIRA_SECRET_ID, "a Secrets Manager secret id or ARN");
        let jira_mapping: Json<JiraMapping> = env.or_default(
            JIRA_MAPPING,
            "a JSON Jira mapping (docs/itsm-setup.md)",
            Json(JiraMapping::default()),
        );
        let read_back = env
            .both_or_neither(
                (JIRA_API_URL, "the Jira site's https URL"),
                (JIRA_READ_SECRET_ID, "a Secrets Manager secret id or ARN"),
            )
            .map(|(url, secret_id)| ReadBack { url, secret_id });
        let sender_only: SenderOnly = env.or_default(
            SENDER_ONLY,
            "a comma-separated list of jira, servicenow, generic",
            SenderOnly::default(),
        );
        let sn_secret: Option<String> =
            env.optional(SERVICENOW_SECRET_ID, "a Secrets Manager secret id or ARN");
        let sn_auth = env.or_default(SERVICENOW_AUTH, "hmac or bearer", SenderAuth::Hmac);
        let sn_mapping: Json<ServiceNowMapping> = env.or_default(
            SERVICENOW_MAPPING,
            "a JSON ServiceNow mapping (docs/itsm-setup.md)",
            Json(ServiceNowMapping::default()),
        );
        let generic_secret_id =
            env.optional(GENERIC_SECRET_ID, "a Secrets Manager secret id or ARN");
        let eventbridge = env
            .both_or_neither(
                (
                    EVENTBRIDGE_SOURCES,
                    "a comma-separated list of EventBridge source values (none starting with aws.)",
                ),
                (EVENTBRIDGE_ACCOUNT, "a 12-digit AWS account id"),
            )
            .map(
                |(sources, account): (SourceList, AccountId)| EventBridgeSettings {
                    sources: sources.0,
                    account: account.0,
                },
            );
        let window: i64 = env.or_default(REPLAY_WINDOW_SECS, "a number of seconds", 300);
        let delivery_hours: i64 = env.or_default(DELIVERY_TTL_HOURS, "a number of hours", 72);
        let secret_cache_ttl = SecretCache::read_ttl(&mut env);
        let min_refresh_secs: u64 =
            env.or_default(SECRET_MIN_REFRESH_SECS, "a number of seconds", 30);

        env.finish_with("the intake's configuration", || {
            Some(Self {
                store: store?,
                identities_table: identities_table?,
                targets: targets?,
                policy_dir,
                jira: jira_secret.map(|secret_id| JiraSettings {
                    secret_id,
                    mapping: jira_mapping.0,
                    read_back,
                }),
                servicenow: sn_secret.map(|secret_id| ServiceNowSettings {
                    secret_id,
                    auth: sn_auth,
                    mapping: sn_mapping.0,
                }),
                generic_secret_id,
                sender_only,
                eventbridge,
                replay_window: Duration::seconds(window),
                delivery_ttl: Duration::hours(delivery_hours),
                secret_cache_ttl,
                secret_min_refresh: std::time::Duration::from_secs(min_refresh_secs),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_target_of_the_retired_api_key_connector_is_refused_with_its_reason() {
        let err = r#"{"orders-db": {"connector": "postgres", "environment": "prod"}, "billing-api": {"connector": "generated_api_key", "environment": "prod"}}"#
            .parse::<TargetKinds>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"billing-api\"")
                && err.contains("generated_api_key connector was removed"),
            "{err}"
        );
        let kinds: TargetKinds =
            r#"{"orders-db": {"connector": "postgres", "environment": "prod"}}"#
                .parse()
                .unwrap();
        assert_eq!(
            kinds.facts_of(&SystemId::new("orders-db").unwrap()),
            Some(TargetFacts {
                connector: ConnectorKind::Postgres,
                environment: Environment::Prod
            })
        );
    }

    /// A misspelt key would leave the intake without the target's approver rule
    /// (anyone may approve); the other functions refuse it, and so does the intake.
    #[test]
    fn a_target_with_a_key_nobody_reads_is_refused_naming_it() {
        let err = r#"{"orders-db": {"connector": "postgres", "environment": "prod", "host": "db", "aprovers": {"groups": ["dba"]}}}"#
            .parse::<TargetKinds>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("target \"orders-db\": unknown key \"aprovers\"")
                && err.contains("approvers"),
            "{err}"
        );
        let kinds: TargetKinds = r#"{"orders-db": {"connector": "postgres", "environment": "prod", "admin_secret_id": "a", "host": "db", "port": 5432, "dbname": "orders", "allowed_roles": ["r"], "rotation": "single_user", "owned_objects": "drop", "tls": "disabled", "ca_file": "/ca.pem", "approvers": {"groups": ["dba"]}}}"#
            .parse()
            .unwrap();
        assert!(kinds.approvers_of("orders-db").is_some());
        let err =
            r#"{"orders-db": {"connector": "postgres", "environment": "prod", "approvers": null}}"#
                .parse::<TargetKinds>()
                .unwrap_err()
                .to_string();
        assert!(err.contains("approvers is null"), "{err}");
        let err = r#"{"orders-db": {"connector": "postgres", "environment": "prod", "approvers": {"group": ["dba"]}}}"#
            .parse::<TargetKinds>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("approvers: unknown field `group`"), "{err}");
    }

    #[test]
    fn eventbridge_settings_come_whole_or_not_at_all() {
        let base = [
            (GRANTS_TABLE, "g"),
            (AUDIT_TABLE, "a"),
            (IDENTITIES_TABLE, "i"),
            (
                TARGETS,
                r#"{"orders-db": {"connector": "postgres", "environment": "prod"}}"#,
            ),
        ];
        let read = |extra: &[(&str, &str)]| {
            IntakeConfig::from_env(EnvReader::from_map(
                base.iter()
                    .chain(extra)
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            ))
        };
        assert_eq!(read(&[]).unwrap().eventbridge, None);
        let both = read(&[
            (EVENTBRIDGE_SOURCES, "com.example.itsm"),
            (EVENTBRIDGE_ACCOUNT, "123456789012"),
        ])
        .unwrap();
        assert_eq!(both.eventbridge.unwrap().sources, ["com.example.itsm"]);
        let half = read(&[(EVENTBRIDGE_SOURCES, "com.example.itsm")]).unwrap_err();
        assert_eq!(half.problems[0].0, EVENTBRIDGE_ACCOUNT);
        for (var, bad) in [
            (EVENTBRIDGE_SOURCES, "aws.events"),
            (EVENTBRIDGE_SOURCES, " , "),
            (EVENTBRIDGE_ACCOUNT, "12345"),
        ] {
            let other = if var == EVENTBRIDGE_SOURCES {
                (EVENTBRIDGE_ACCOUNT, "123456789012")
            } else {
                (EVENTBRIDGE_SOURCES, "com.example.itsm")
            };
            let err = read(&[(var, bad), other]).unwrap_err();
            assert!(
                err.problems.iter().any(|(v, _)| v == var),
                "{var}={bad}: {err:?}"
            );
        }
    }

    #[test]
    fn a_target_must_say_its_environment() {
        let err = r#"{"orders-db": {"connector": "postgres"}}"#
            .parse::<TargetKinds>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `environment`"), "{err}");
        let err = r#"{"orders-db": {"connector": "postgres", "environment": "staging"}}"#
            .parse::<TargetKinds>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `staging`"), "{err}");
    }
}
