//! Policy-as-code for access requests, with Cedar (the engine behind Amazon Verified
//! Permissions).
//!
//! An approved ticket is necessary, not sufficient: before anything is issued, the
//! request's facts ([`PolicyFacts`]) are evaluated against Cedar policies validated
//! against ticketbound's schema (`policies/ticketbound.cedarschema`). The defaults in
//! `policies/default.cedar` are compiled in; an operator may load a directory of their
//! own instead. Every policy must carry an `@id`, which decisions name, and should
//! carry a `@reason`, which denials quote.
//!
//! An operator's policies are validated strictly against the schema when they are
//! loaded, so that a broken policy fails the deployment, not the first approval. The
//! compiled-in defaults are validated by this crate's tests instead (and every
//! context [`PolicyFacts`] builds is checked against the schema there), so a function
//! starting with them parses neither the schema nor validates again: parsing the
//! schema alone was more than half of the intake's start-up. [`PendingEngine`] parses
//! them on a thread of its own while the first event's network calls run.
//!
//! Evaluation fails closed: a policy that errors while evaluating (which Cedar would
//! otherwise skip) turns the decision into a deny that says so.
//!
//! Depends on the domain only; knows nothing of AWS or of any ITSM.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, Policy, PolicyId,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ticketbound_domain::AccessRequest;

/// The schema policies are validated against.
pub const SCHEMA: &str = include_str!("../policies/ticketbound.cedarschema");
/// The default policies.
pub const DEFAULT_POLICIES: &str = include_str!("../policies/default.cedar");

const ACTION: &str = r#"Ticketbound::Action::"RequestAccess""#;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the Cedar schema does not parse")]
    Schema(#[source] Box<cedar_policy::CedarSchemaError>),
    #[error("{file}: the policies do not parse")]
    Parse {
        file: String,
        #[source]
        source: Box<cedar_policy::ParseErrors>,
    },
    #[error(
        "{file}: a policy has no @id annotation; every policy needs one so that decisions can name it"
    )]
    MissingId { file: String },
    #[error("policy id {0:?} is used twice")]
    DuplicateId(String),
    #[error("the policies do not match the schema: {0}")]
    Invalid(String),
    #[error("{path}: no *.cedar policy files found")]
    NoPolicies { path: PathBuf },
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not build the evaluation request: {0}")]
    Request(String),
    #[error("the policies loaded at start-up are not available: {0}")]
    Unavailable(String),
}

/// Whether a policy set is checked against the schema as it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checking {
    /// An operator's policies: the schema is parsed, the policies are validated in
    /// strict mode, and each request is validated against the schema.
    Strict,
    /// The compiled-in defaults, which the tests validate: parsed only.
    Shipped,
}

/// What policies see of a request. Built from a validated request by
/// [`PolicyFacts::from_request`]; public so that policies can be tested on facts a
/// validated request could never have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFacts {
    pub requester: String,
    /// Who created the ticket, when that is someone else than the requester.
    #[serde(default)]
    pub creator: Option<String>,
    pub approvers: Vec<String>,
    /// The approval was read back from the ITSM's API (not only the sender's word).
    #[serde(default)]
    pub verified_by_itsm: bool,
    pub owner: Option<String>,
    pub identity_kind: String,
    pub identity_name: String,
    pub target_system: String,
    pub connector: String,
    /// The connector's declared capabilities (from ticketbound's configuration of
    /// the target, never from the request).
    pub revocation_verified: bool,
    pub kills_sessions: bool,
    pub target_enforces_expiry: bool,
    pub environment: String,
    pub scope: Vec<String>,
    pub ttl_seconds: i64,
    pub not_after: i64,
    pub change_window_start: Option<i64>,
    pub change_window_end: Option<i64>,
    pub justification_length: i64,
    pub revocation_trigger: String,
    pub rotation_period_hours: i64,
}

impl PolicyFacts {
    /// The facts of `request` as evaluated at `now`.
    pub fn from_request(request: &AccessRequest, now: DateTime<Utc>) -> Self {
        Self {
            requester: request.requester.to_string(),
            creator: request.creator.as_ref().map(ToString::to_string),
            verified_by_itsm: request.verification == ticketbound_domain::Verification::ItsmApi,
            approvers: request
                .approvals
                .iter()
                .filter(|a| a.counts())
                .map(|a| a.approver.to_string())
                .collect(),
            owner: Some(request.identity.owner.to_string()),
            identity_kind: request.identity.kind.as_str().to_owned(),
            identity_name: request.identity.name.to_string(),
            target_system: request.target.system_id.to_string(),
            connector: request.target.connector.as_str().to_owned(),
            revocation_verified: request.target.connector.capabilities().revocation_verified,
            kills_sessions: request.target.connector.capabilities().kills_sessions,
            target_enforces_expiry: request
                .target
                .connector
                .capabilities()
                .target_enforces_expiry,
            environment: request.target.environment.to_string(),
            scope: request.scope.permissions().map(|p| p.to_string()).collect(),
            ttl_seconds: (request.not_after - now).num_seconds(),
            not_after: request.not_after.timestamp(),
            change_window_start: request.change_window.map(|w| w.start.timestamp()),
            change_window_end: request.change_window.map(|w| w.end.timestamp()),
            justification_length: request.justification.as_str().chars().count() as i64,
            revocation_trigger: request.revocation_trigger.as_str().to_owned(),
            rotation_period_hours: i64::from(request.rotation_period.as_hours()),
        }
    }

    fn context(&self) -> Result<Context, PolicyError> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let set = |vs: &[String]| RestrictedExpression::new_set(vs.iter().map(|v| s(v)));
        let approvers: BTreeSet<&String> = self.approvers.iter().collect();
        let wildcard = self
            .scope
            .iter()
            .any(|p| p.contains(['*', '%', '?']) || p.eq_ignore_ascii_case("all"));
        let mut pairs = vec![
            ("requester", s(&self.requester)),
            ("approvers", set(&self.approvers)),
            (
                "approver_count",
                RestrictedExpression::new_long(approvers.len() as i64),
            ),
            (
                "verified_by_itsm",
                RestrictedExpression::new_bool(self.verified_by_itsm),
            ),
            ("identity_kind", s(&self.identity_kind)),
            ("identity_name", s(&self.identity_name)),
            ("target_system", s(&self.target_system)),
            ("connector", s(&self.connector)),
            (
                "capabilities",
                RestrictedExpression::new_record([
                    (
                        "revocation_verified".to_owned(),
                        RestrictedExpression::new_bool(self.revocation_verified),
                    ),
                    (
                        "kills_sessions".to_owned(),
                        RestrictedExpression::new_bool(self.kills_sessions),
                    ),
                    (
                        "target_enforces_expiry".to_owned(),
                        RestrictedExpression::new_bool(self.target_enforces_expiry),
                    ),
                ])
                .map_err(|e| PolicyError::Request(e.to_string()))?,
            ),
            ("environment", s(&self.environment)),
            ("scope", set(&self.scope)),
            (
                "scope_has_wildcard",
                RestrictedExpression::new_bool(wildcard),
            ),
            (
                "ttl_seconds",
                RestrictedExpression::new_long(self.ttl_seconds),
            ),
            ("not_after", RestrictedExpression::new_long(self.not_after)),
            (
                "justification_length",
                RestrictedExpression::new_long(self.justification_length),
            ),
            ("revocation_trigger", s(&self.revocation_trigger)),
            (
                "rotation_period_hours",
                RestrictedExpression::new_long(self.rotation_period_hours),
            ),
        ];
        if let Some(owner) = &self.owner {
            pairs.push(("owner", s(owner)));
        }
        if let Some(creator) = &self.creator {
            pairs.push(("creator", s(creator)));
        }
        if let Some(start) = self.change_window_start {
            pairs.push(("change_window_start", RestrictedExpression::new_long(start)));
        }
        if let Some(end) = self.change_window_end {
            pairs.push(("change_window_end", RestrictedExpression::new_long(end)));
        }
        Context::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)))
            .map_err(|e| PolicyError::Request(e.to_string()))
    }
}

/// The outcome of evaluating one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    pub allowed: bool,
    /// The policies that determined the decision: the permits that allowed it, or the
    /// forbids that denied it.
    pub policy_ids: Vec<String>,
    /// For a deny, why, in the policies' own words (`@reason`).
    pub reasons: Vec<String>,
    /// SHA-256 of the policy set that decided (its files' names and texts), so the
    /// evidence says which policies were in force.
    #[serde(default)]
    pub policy_set_sha256: String,
}

/// A loaded, validated policy set, ready to evaluate requests. Build once at start-up.
#[derive(Debug)]
pub struct PolicyEngine {
    policies: PolicySet,
    /// Present for policies loaded with [`Checking::Strict`]: requests are validated
    /// against it. The shipped defaults have none (their contexts are checked by the
    /// tests, and a context a policy does not expect makes it error, which denies).
    schema: Option<Schema>,
    reasons: HashMap<PolicyId, String>,
    action: EntityUid,
    authorizer: Authorizer,
    set_sha256: String,
}

impl PolicyEngine {
    /// The default policies compiled into the binary, parsed without the schema
    /// (this crate's tests validate them and the contexts against it).
    pub fn with_defaults() -> Result<Self, PolicyError> {
        Self::load(&Self::default_sources(), Checking::Shipped)
    }

    /// The default policies as `(file name, text)`, as [`PolicyEngine::from_sources`]
    /// takes them (to validate them strictly).
    pub fn default_sources() -> [(String, String); 1] {
        [("default.cedar".to_owned(), DEFAULT_POLICIES.to_owned())]
    }

    /// Every `*.cedar` file in `dir`, in name order, instead of the defaults.
    pub fn from_dir(dir: &Path) -> Result<Self, PolicyError> {
        let read_err = |source| PolicyError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cedar"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(PolicyError::NoPolicies {
                path: dir.to_path_buf(),
            });
        }
        let sources = files
            .iter()
            .map(|path| {
                std::fs::read_to_string(path)
                    // The file's name, not its path: the policy set's hash must not
                    // depend on where a deployment unpacked it.
                    .map(|text| {
                        let name = path.file_name().map_or_else(
                            || path.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        );
                        (name, text)
                    })
                    .map_err(|source| PolicyError::Read {
                        path: path.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_sources(&sources)
    }

    /// Policies from `(file name, text)` pairs, validated against the schema.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Self, PolicyError> {
        Self::load(sources, Checking::Strict)
    }

    fn load(sources: &[(String, String)], checking: Checking) -> Result<Self, PolicyError> {
        let mut policies = PolicySet::new();
        let mut reasons = HashMap::new();
        for (file, text) in sources {
            let parsed = PolicySet::from_str(text).map_err(|e| PolicyError::Parse {
                file: file.clone(),
                source: Box::new(e),
            })?;
            for policy in parsed.policies() {
                let id = policy
                    .annotation("id")
                    .ok_or_else(|| PolicyError::MissingId { file: file.clone() })?;
                let id = PolicyId::new(id);
                let renamed: Policy = policy.new_id(id.clone());
                if let Some(reason) = policy.annotation("reason") {
                    reasons.insert(id.clone(), reason.to_owned());
                }
                policies
                    .add(renamed)
                    .map_err(|_| PolicyError::DuplicateId(id.to_string()))?;
            }
        }
        let schema = match checking {
            Checking::Shipped => None,
            Checking::Strict => {
                let (schema, _warnings) = Schema::from_cedarschema_str(SCHEMA)
                    .map_err(|e| PolicyError::Schema(Box::new(e)))?;
                let validation =
                    Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
                if !validation.validation_passed() {
                    let problems: Vec<String> = validation
                        .validation_errors()
                        .map(|e| e.to_string())
                        .collect();
                    return Err(PolicyError::Invalid(problems.join("; ")));
                }
                Some(schema)
            }
        };
        let action =
            EntityUid::from_str(ACTION).map_err(|e| PolicyError::Request(e.to_string()))?;
        let mut digest = Sha256::new();
        for (file, text) in sources {
            // Lengths first, so that moving text between files changes the hash.
            digest.update((file.len() as u64).to_be_bytes());
            digest.update(file.as_bytes());
            digest.update((text.len() as u64).to_be_bytes());
            digest.update(text.as_bytes());
        }
        Ok(Self {
            policies,
            schema,
            reasons,
            action,
            authorizer: Authorizer::new(),
            set_sha256: hex::encode(digest.finalize()),
        })
    }

    /// SHA-256 (hex) of the loaded policy files, as every decision records it.
    pub fn policy_set_sha256(&self) -> &str {
        &self.set_sha256
    }

    /// The ids of the loaded policies, in no particular order.
    pub fn policy_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.policies.policies().map(|p| p.id().to_string())
    }

    /// Evaluates `facts`. Fails closed: evaluation errors deny.
    pub fn evaluate(&self, facts: &PolicyFacts) -> Result<PolicyDecision, PolicyError> {
        let uid = |kind: &str, id: &str| -> Result<EntityUid, PolicyError> {
            let name =
                EntityTypeName::from_str(kind).map_err(|e| PolicyError::Request(e.to_string()))?;
            Ok(EntityUid::from_type_name_and_id(name, EntityId::new(id)))
        };
        let request = Request::new(
            uid("Ticketbound::Requester", &facts.requester)?,
            self.action.clone(),
            uid("Ticketbound::Target", &facts.target_system)?,
            facts.context()?,
            self.schema.as_ref(),
        )
        .map_err(|e| PolicyError::Request(e.to_string()))?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &Entities::empty());

        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        let mut policy_ids: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policy_ids.sort();
        if !errors.is_empty() {
            return Ok(PolicyDecision {
                allowed: false,
                policy_set_sha256: self.set_sha256.clone(),
                policy_ids,
                reasons: errors
                    .into_iter()
                    .map(|e| format!("a policy failed to evaluate, so the request is denied: {e}"))
                    .collect(),
            });
        }
        let allowed = response.decision() == Decision::Allow;
        let reasons = if allowed {
            Vec::new()
        } else if policy_ids.is_empty() {
            vec!["no policy permits this request".to_owned()]
        } else {
            response
                .diagnostics()
                .reason()
                .map(|id| {
                    self.reasons
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| format!("forbidden by policy {id}"))
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        Ok(PolicyDecision {
            allowed,
            policy_ids,
            reasons,
            policy_set_sha256: self.set_sha256.clone(),
        })
    }

    /// Evaluates a validated request at `now`.
    pub fn evaluate_request(
        &self,
        request: &AccessRequest,
        now: DateTime<Utc>,
    ) -> Result<PolicyDecision, PolicyError> {
        self.evaluate(&PolicyFacts::from_request(request, now))
    }
}

/// A policy engine that may still be loading: what a function holds from start-up.
///
/// An operator's policies are loaded (and validated) before the function serves, so
/// that a broken policy set fails the start. The compiled-in defaults, which the tests
/// validate, are parsed on a thread of their own: the intake's first approval makes
/// its network calls (the webhook secret, the delivery record, the read-back, the
/// registry) before it evaluates anything, and the parse (about 1.5 ms) runs beside
/// them instead of before the first `next`. [`PendingEngine::get`] waits for it when
/// it is not done yet.
#[derive(Debug)]
pub struct PendingEngine {
    loaded: OnceLock<Result<PolicyEngine, String>>,
    loading: Mutex<Option<JoinHandle<Result<PolicyEngine, PolicyError>>>>,
}

impl PendingEngine {
    /// An engine already loaded.
    pub fn ready(engine: PolicyEngine) -> Self {
        Self {
            loaded: OnceLock::from(Ok(engine)),
            loading: Mutex::new(None),
        }
    }

    /// The compiled-in defaults ([`PolicyEngine::with_defaults`]), parsed on a thread
    /// started here.
    pub fn defaults_in_background() -> Self {
        Self {
            loaded: OnceLock::new(),
            loading: Mutex::new(Some(std::thread::spawn(PolicyEngine::with_defaults))),
        }
    }

    /// The engine, once it is loaded (this waits for the loading thread, a blocking
    /// wait of at most the parse's remaining time, on the first call only). Every
    /// call after a failed load fails the same way: the function denies nothing and
    /// allows nothing without its policies.
    pub fn get(&self) -> Result<&PolicyEngine, PolicyError> {
        let loaded = self.loaded.get_or_init(|| {
            let thread = match self.loading.lock() {
                Ok(mut loading) => loading.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            match thread.map(JoinHandle::join) {
                Some(Ok(Ok(engine))) => Ok(engine),
                Some(Ok(Err(e))) => Err(error_chain(&e)),
                Some(Err(_)) => Err("the thread loading the policies panicked".to_owned()),
                None => Err("no policies were loaded".to_owned()),
            }
        });
        loaded
            .as_ref()
            .map_err(|why| PolicyError::Unavailable(why.clone()))
    }
}

/// `e` and its sources, for an error that must be kept as text.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
