//! An access request as it arrives, before anything about it is trusted, and the one
//! function that turns it into an [`AccessRequest`] or into the full list of what is
//! wrong with it.
//!
//! [`RequestDraft`] is also ticketbound's documented generic JSON schema: ITSM
//! adapters map vendor payloads onto it, and any other system may send it as is.
//! Enumerations are plain strings here so that an unknown value is reported as a
//! field problem beside all the others instead of failing the whole parse.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    AccessRequest, Approval, ChangeWindow, ConnectorKind, Environment, Identity, IdentityKind,
    IdentityName, Justification, Owner, Permission, Principal, RevocationTrigger, RotationPeriod,
    Scope, SourceSystem, SystemId, Target, Ticket, TicketKey, ValueError,
};
use crate::registry::Registration;

/// Approval times may run this far ahead of our clock (ITSM clocks drift).
const CLOCK_SKEW: Duration = Duration::minutes(5);
/// The rotation period when the ticket does not say.
pub const DEFAULT_ROTATION_HOURS: u32 = 24;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketDraft {
    pub source: Option<String>,
    pub key: Option<String>,
    pub link: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityDraft {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub workload_principal: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDraft {
    pub system_id: Option<String>,
    pub connector: Option<String>,
    pub environment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDraft {
    pub approver: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeWindowDraft {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// An access request as received. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDraft {
    #[serde(default)]
    pub ticket: TicketDraft,
    pub requester: Option<String>,
    /// Who created the ticket, if not the requester.
    #[serde(default)]
    pub creator: Option<String>,
    #[serde(default)]
    pub approvals: Vec<ApprovalDraft>,
    #[serde(default)]
    pub identity: IdentityDraft,
    #[serde(default)]
    pub target: TargetDraft,
    #[serde(default)]
    pub scope: Vec<String>,
    pub not_after: Option<DateTime<Utc>>,
    pub justification: Option<String>,
    pub revocation_trigger: Option<String>,
    pub rotation_period_hours: Option<u32>,
    pub change_window: Option<ChangeWindowDraft>,
}

/// One thing wrong with one field, named by its path in the generic schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Everything wrong with a request, all at once, so that the sender fixes it in one go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.field.as_str())
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the request: ",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Collects field problems while the checks run to the end.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            problem: problem.into(),
        });
    }

    /// Checks a required value with `make`; records a problem and yields `None` if it
    /// is absent or refused.
    fn required<T>(
        &mut self,
        field: &str,
        value: Option<&str>,
        make: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        match value {
            None => {
                self.add(field, "is required");
                None
            }
            Some(v) => self.check(field, make(v)),
        }
    }

    fn check<T>(&mut self, field: &str, result: Result<T, ValueError>) -> Option<T> {
        result.map_err(|e| self.add(field, e.0)).ok()
    }
}

/// `value` as one of `T`'s variants, by the string each is written as; the error lists
/// them all.
fn one_of<T>(value: &str) -> Result<T, ValueError>
where
    T: std::str::FromStr + strum::IntoEnumIterator + Into<&'static str>,
{
    value.parse().map_err(|_| {
        let names: Vec<&'static str> = T::iter().map(Into::into).collect();
        ValueError(format!("must be one of {}", names.join(", ")))
    })
}

/// What ticketbound's configuration says of a target: how it is reached and which
/// environment it is in. A request names its target; these come from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetFacts {
    pub connector: ConnectorKind,
    pub environment: Environment,
}

/// The identity's kind, name, owner and workload principal, each if good.
type IdentityParts = (
    Option<IdentityKind>,
    Option<IdentityName>,
    Option<Owner>,
    Option<Principal>,
);

/// What a request says of its target besides naming it.
#[derive(Debug, Clone, Copy)]
struct ClaimedTarget<'a> {
    connector: Option<&'a str>,
    environment: Option<&'a str>,
}

impl RequestDraft {
    /// Checks every field and the rules between them at time `now`, taking the
    /// draft's `target.connector` and `target.environment` as given (required). For drafts whose connector is
    /// known to be right: fixtures, tests, records re-read. What arrives from outside
    /// goes through [`Self::validate_for`].
    pub fn validate(&self, now: DateTime<Utc>) -> Result<AccessRequest, ValidationErrors> {
        self.check(now, None, |p, _, claimed| {
            let connector = p.required("target.connector", claimed.connector, |v| {
                one_of::<ConnectorKind>(v)
            });
            let environment = p.required("target.environment", claimed.environment, |v| {
                one_of::<Environment>(v)
            });
            Some(TargetFacts {
                connector: connector?,
                environment: environment?,
            })
        })
    }

    /// Checks every field at `now`, with the target's connector and environment from
    /// ticketbound's configuration (`facts_of`), never from the request: the request
    /// names a target, and a `target.connector` or `target.environment` it still
    /// sends must agree with it (production asked for as `non-prod` would get
    /// non-prod's rules). A target that is not configured is refused.
    ///
    /// The identity is the registry's (`registration`, looked up by the draft's
    /// `identity.name`): its kind, owner and workload principal come from there, and
    /// an `identity.*` field the request still sends must agree; the target must be
    /// one the identity is registered for, in an environment it is registered for,
    /// and the grant no longer than the identity's own limit. An unregistered or
    /// retired identity is refused. Either all of it is good, or every problem found
    /// is returned together.
    pub fn validate_for(
        &self,
        now: DateTime<Utc>,
        facts_of: impl Fn(&SystemId) -> Option<TargetFacts>,
        registration: Registration<'_>,
    ) -> Result<AccessRequest, ValidationErrors> {
        self.check(now, Some(registration), |p, system, claimed| {
            let system = system?;
            let Some(configured) = facts_of(system) else {
                p.add("target.system_id", "is not a target ticketbound manages");
                return None;
            };
            let mut agrees = true;
            if let Some(connector) = claimed.connector
                && connector != configured.connector.as_str()
            {
                p.add(
                    "target.connector",
                    format!(
                        "is {connector:?}, but target {system} is a {} target; a request names its target, and the connector comes from ticketbound's configuration",
                        configured.connector.as_str()
                    ),
                );
                agrees = false;
            }
            if let Some(environment) = claimed.environment
                && environment != configured.environment.as_str()
            {
                p.add(
                    "target.environment",
                    format!(
                        "is {environment:?}, but target {system} is {}; a request names its target, and the environment comes from ticketbound's configuration",
                        configured.environment.as_str()
                    ),
                );
                agrees = false;
            }
            agrees.then_some(configured)
        })
    }

    /// `registration` is `None` only for [`Self::validate`]: the identity as given.
    fn check(
        &self,
        now: DateTime<Utc>,
        registration: Option<Registration<'_>>,
        target: impl FnOnce(&mut Problems, Option<&SystemId>, ClaimedTarget<'_>) -> Option<TargetFacts>,
    ) -> Result<AccessRequest, ValidationErrors> {
        let mut p = Problems::default();

        let source = p.required("ticket.source", self.ticket.source.as_deref(), |v| {
            one_of::<SourceSystem>(v)
        });
        let key = p.required("ticket.key", self.ticket.key.as_deref(), |v| {
            TicketKey::new(v)
        });
        let requester = p.required("requester", self.requester.as_deref(), |v| {
            Principal::new(v)
        });

        let approvals = self.check_approvals(&mut p, requester.as_ref(), now);
        let creator = match self.creator.as_deref() {
            None => Some(None),
            Some(v) => p.check("creator", Principal::new(v)).map(Some),
        };

        let (kind, name, owner, workload) = match registration {
            None => self.identity_as_given(&mut p),
            Some(registration) => self.identity_registered(&mut p, registration),
        };

        let system_id = p.required("target.system_id", self.target.system_id.as_deref(), |v| {
            SystemId::new(v)
        });
        let facts = target(
            &mut p,
            system_id.as_ref(),
            ClaimedTarget {
                connector: self.target.connector.as_deref(),
                environment: self.target.environment.as_deref(),
            },
        );
        let (connector, environment) = (facts.map(|f| f.connector), facts.map(|f| f.environment));
        let registered = match registration {
            Some(Registration::Active(r)) => Some(r),
            _ => None,
        };
        if let (Some(r), Some(system), Some(environment)) =
            (registered, system_id.as_ref(), environment)
        {
            if !r.targets.contains(system) {
                p.add(
                    "target.system_id",
                    format!(
                        "is {system}, a target identity {} is not registered for; an operator registers the targets an identity may be granted",
                        r.name
                    ),
                );
            } else if !r.environments.contains(&environment) {
                p.add(
                    "target.system_id",
                    format!(
                        "is {system}, which is {environment}, and identity {} is not registered for {environment}",
                        r.name
                    ),
                );
            }
        }

        let scope = self.check_scope(&mut p);

        let not_after = match self.not_after {
            None => {
                p.add("not_after", "is required");
                None
            }
            Some(t) if t <= now => {
                p.add("not_after", "is already in the past");
                None
            }
            Some(t) => Some(t),
        };
        if let (Some(t), Some(list)) = (not_after, approvals.as_ref())
            && list.iter().any(|a| a.approved_at >= t)
        {
            p.add("not_after", "must be later than every approval");
        }
        if let (Some(t), Some(r)) = (not_after, registered)
            && let Some(max) = r.max_ttl()
            && t - now > max
        {
            p.add(
                "not_after",
                format!(
                    "is {} hours away; identity {} may be granted for at most {} hours at a time",
                    ((t - now).num_minutes() + 59) / 60,
                    r.name,
                    max.num_hours()
                ),
            );
        }

        let justification = p.required("justification", self.justification.as_deref(), |v| {
            Justification::new(v)
        });
        let trigger = p.required(
            "revocation_trigger",
            self.revocation_trigger.as_deref(),
            one_of::<RevocationTrigger>,
        );
        let rotation = p.check(
            "rotation_period_hours",
            RotationPeriod::hours(self.rotation_period_hours.unwrap_or(DEFAULT_ROTATION_HOURS)),
        );
        let change_window = self.check_change_window(&mut p);
        if let (Some(not_after), Some(Some(window))) = (self.not_after, change_window) {
            // The grant is issued at the window's start: one that ends by then would
            // never be usable.
            if not_after <= window.start {
                p.add("not_after", "must be later than change_window.start");
            }
        }

        match (
            source,
            key,
            requester,
            approvals,
            (kind, name, owner, workload),
            (system_id, connector, environment),
            scope,
            (not_after, justification, trigger, rotation, change_window),
            creator,
        ) {
            (
                Some(source),
                Some(key),
                Some(requester),
                Some(approvals),
                (Some(kind), Some(name), Some(owner), Some(workload_principal)),
                (Some(system_id), Some(connector), Some(environment)),
                Some(scope),
                (
                    Some(not_after),
                    Some(justification),
                    Some(revocation_trigger),
                    Some(rotation_period),
                    Some(change_window),
                ),
                Some(creator),
            ) if p.0.is_empty() => Ok(AccessRequest {
                creator: creator.filter(|c| *c != requester),
                ticket: Ticket {
                    source,
                    key,
                    link: self.ticket.link.clone(),
                },
                requester,
                approvals,
                identity: Identity {
                    kind,
                    name,
                    owner,
                    workload_principal,
                },
                target: Target {
                    system_id,
                    connector,
                    environment,
                },
                scope,
                not_after,
                justification,
                revocation_trigger,
                rotation_period,
                change_window,
                verification: crate::model::Verification::SenderOnly,
            }),
            _ => Err(ValidationErrors(p.0)),
        }
    }

    /// Fixtures and re-read records: every identity field required, as given.
    fn identity_as_given(&self, p: &mut Problems) -> IdentityParts {
        let kind = p.required("identity.kind", self.identity.kind.as_deref(), |v| {
            one_of::<IdentityKind>(v)
        });
        let name = p.required("identity.name", self.identity.name.as_deref(), |v| {
            IdentityName::new(v)
        });
        let owner = p.required("identity.owner", self.identity.owner.as_deref(), |v| {
            Owner::new(v)
        });
        let workload = p.required(
            "identity.workload_principal",
            self.identity.workload_principal.as_deref(),
            |v| Principal::new(v),
        );
        (kind, name, owner, workload)
    }

    /// The identity from the registry; what the request claims of it must agree.
    fn identity_registered(
        &self,
        p: &mut Problems,
        registration: Registration<'_>,
    ) -> IdentityParts {
        let name = p.required("identity.name", self.identity.name.as_deref(), |v| {
            IdentityName::new(v)
        });
        let Some(name) = name else {
            return (None, None, None, None);
        };
        let r = match registration {
            Registration::Active(r) if r.name == name => r,
            Registration::Active(_) | Registration::Unknown => {
                p.add(
                    "identity.name",
                    format!(
                        "is {name}, which is not an identity registered with ticketbound; an operator registers an identity (ticketbound identities add) before it can be granted"
                    ),
                );
                return (None, None, None, None);
            }
            Registration::Retired { at } => {
                p.add(
                    "identity.name",
                    format!(
                        "is {name}, which was retired at {}; a retired identity is not granted again",
                        at.to_rfc3339()
                    ),
                );
                return (None, None, None, None);
            }
        };
        let disagrees = |field: &str, claimed: &str, registered: &str| FieldError {
            field: field.to_owned(),
            problem: format!(
                "is {claimed:?}, but identity {name} is registered with {registered:?}; it comes from the identity registry, never from the request"
            ),
        };
        if let Some(kind) = self.identity.kind.as_deref()
            && kind != r.kind.as_str()
        {
            p.0.push(disagrees("identity.kind", kind, r.kind.as_str()));
        }
        if let Some(owner) = self.identity.owner.as_deref()
            && owner != r.owner.as_str()
        {
            p.0.push(disagrees("identity.owner", owner, r.owner.as_str()));
        }
        let principal = match self.identity.workload_principal.as_deref() {
            Some(claimed) => match r.workload_principals.iter().find(|w| w.as_str() == claimed) {
                Some(w) => Some(w.clone()),
                None => {
                    p.add(
                        "identity.workload_principal",
                        format!(
                            "is {claimed:?}, which is not a workload principal registered for identity {name}; only a registered workload may read its credential"
                        ),
                    );
                    None
                }
            },
            None => match r.workload_principals.iter().collect::<Vec<_>>().as_slice() {
                [only] => Some((*only).clone()),
                several => {
                    p.add(
                        "identity.workload_principal",
                        format!(
                            "is required: identity {name} has {} registered workload principals; the request names one",
                            several.len()
                        ),
                    );
                    None
                }
            },
        };
        (Some(r.kind), Some(name), Some(r.owner.clone()), principal)
    }

    fn check_approvals(
        &self,
        p: &mut Problems,
        requester: Option<&Principal>,
        now: DateTime<Utc>,
    ) -> Option<Vec<Approval>> {
        if self.approvals.is_empty() {
            p.add("approvals", "must hold at least one approval");
            return None;
        }
        let before = p.0.len();
        let mut seen = BTreeSet::new();
        let mut approvals = Vec::with_capacity(self.approvals.len());
        for (i, draft) in self.approvals.iter().enumerate() {
            let field = format!("approvals[{i}].approver");
            let approver = p.required(&field, draft.approver.as_deref(), |v| Principal::new(v));
            let at = match draft.approved_at {
                None => {
                    p.add(format!("approvals[{i}].approved_at"), "is required");
                    None
                }
                Some(t) if t > now + CLOCK_SKEW => {
                    p.add(format!("approvals[{i}].approved_at"), "is in the future");
                    None
                }
                Some(t) => Some(t),
            };
            if let Some(approver) = &approver
                && !seen.insert(approver.clone())
            {
                p.add(&field, "approves twice; each approver counts once");
            }
            // Separation of duties is the policy's rule, but a request that lists its
            // own requester as approver is malformed whatever the policy says.
            if let (Some(approver), Some(requester)) = (&approver, requester)
                && approver == requester
            {
                p.add(
                    &field,
                    "is the requester; nobody approves their own request",
                );
            }
            if let (Some(approver), Some(approved_at)) = (approver, at) {
                approvals.push(Approval {
                    approver,
                    approved_at,
                    discounted: None,
                });
            }
        }
        // A canonical order, so that the same approvals compare (and hash) equal
        // whatever order the ITSM listed them in.
        approvals.sort_by(|a, b| (a.approved_at, &a.approver).cmp(&(b.approved_at, &b.approver)));
        (p.0.len() == before).then_some(approvals)
    }

    fn check_scope(&self, p: &mut Problems) -> Option<Scope> {
        if self.scope.is_empty() {
            p.add("scope", "must name at least one permission");
            return None;
        }
        let before = p.0.len();
        let permissions: Vec<Permission> = self
            .scope
            .iter()
            .enumerate()
            .filter_map(|(i, v)| p.check(&format!("scope[{i}]"), Permission::new(v.as_str())))
            .collect();
        if p.0.len() != before {
            return None;
        }
        p.check("scope", Scope::new(permissions))
    }

    /// `Some(None)` is a valid absence; `None` means a problem was recorded.
    fn check_change_window(&self, p: &mut Problems) -> Option<Option<ChangeWindow>> {
        let Some(window) = &self.change_window else {
            return Some(None);
        };
        match (window.start, window.end) {
            (Some(start), Some(end)) if start < end => Some(Some(ChangeWindow { start, end })),
            (Some(_), Some(_)) => {
                p.add(
                    "change_window.end",
                    "must be later than change_window.start",
                );
                None
            }
            (start, end) => {
                if start.is_none() {
                    p.add(
                        "change_window.start",
                        "is required when a change window is given",
                    );
                }
                if end.is_none() {
                    p.add(
                        "change_window.end",
                        "is required when a change window is given",
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    pub(crate) fn good_draft() -> RequestDraft {
        serde_json::from_value(serde_json::json!({
            "ticket": {"source": "jira", "key": "OPS-123", "link": "https://example.atlassian.net/browse/OPS-123"},
            "requester": "alice@example.com",
            "approvals": [
                {"approver": "bob@example.com", "approved_at": "2026-11-29T11:00:00Z"},
                {"approver": "carol@example.com", "approved_at": "2026-11-29T11:30:00Z"}
            ],
            "identity": {"kind": "database_credential", "name": "orders-etl", "owner": "team-data",
                         "workload_principal": "arn:aws:iam::123456789012:role/orders-etl"},
            "target": {"system_id": "orders-db", "connector": "postgres", "environment": "prod"},
            "scope": ["orders_reader"],
            "not_after": "2026-11-29T20:00:00Z",
            "justification": "Nightly reconciliation job needs read access to orders",
            "revocation_trigger": "not_after_or_ticket_closed"
        }))
        .unwrap()
    }

    fn configured(system: &SystemId) -> Option<TargetFacts> {
        (system.as_str() == "orders-db").then_some(TargetFacts {
            connector: ConnectorKind::Postgres,
            environment: Environment::Prod,
        })
    }

    fn registry_entry() -> crate::RegisteredIdentity {
        serde_json::from_value(serde_json::json!({
            "name": "orders-etl",
            "kind": "database_credential",
            "owner": "team-data",
            "workload_principals": ["arn:aws:iam::123456789012:role/orders-etl"],
            "targets": ["orders-db"],
            "environments": ["prod"]
        }))
        .unwrap()
    }

    fn registered() -> Registration<'static> {
        Registration::Active(Box::leak(Box::new(registry_entry())))
    }

    /// The hostile requester names a workload of their own: it would go into the
    /// secret's resource policy and read the credential. Refused; so are another
    /// owner, an unregistered identity, a retired one, and a target or environment
    /// the identity is not registered for.
    #[test]
    fn the_identity_comes_from_the_registry_never_from_the_request() {
        let mut draft = good_draft();
        draft.identity.workload_principal = Some("arn:aws:iam::999999999999:role/attacker".into());
        let errors = draft
            .validate_for(now(), configured, registered())
            .unwrap_err();
        assert_eq!(
            errors.fields().collect::<Vec<_>>(),
            ["identity.workload_principal"]
        );

        let mut draft = good_draft();
        draft.identity.owner = Some("team-someone-else".into());
        draft.identity.kind = Some("token".into());
        let errors = draft
            .validate_for(now(), configured, registered())
            .unwrap_err();
        assert_eq!(
            errors.fields().collect::<Vec<_>>(),
            ["identity.kind", "identity.owner"]
        );

        // Left out, every identity field is the registry's.
        let mut draft = good_draft();
        draft.identity.owner = None;
        draft.identity.kind = None;
        draft.identity.workload_principal = None;
        let request = draft.validate_for(now(), configured, registered()).unwrap();
        assert_eq!(request.identity.owner.as_str(), "team-data");
        assert_eq!(
            request.identity.workload_principal.as_str(),
            "arn:aws:iam::123456789012:role/orders-etl"
        );

        let errors = good_draft()
            .validate_for(now(), configured, Registration::Unknown)
            .unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["identity.name"]);
        assert!(errors.0[0].problem.contains("not an identity registered"));
        let errors = good_draft()
            .validate_for(now(), configured, Registration::Retired { at: now() })
            .unwrap_err();
        assert!(errors.0[0].problem.contains("was retired"));

        // Registered for another target only, or for non-prod only.
        let mut elsewhere = registry_entry();
        elsewhere.targets = [SystemId::new("billing-db").unwrap()].into();
        let errors = good_draft()
            .validate_for(now(), configured, Registration::Active(&elsewhere))
            .unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["target.system_id"]);
        let mut non_prod = registry_entry();
        non_prod.environments = [Environment::NonProd].into();
        let errors = good_draft()
            .validate_for(now(), configured, Registration::Active(&non_prod))
            .unwrap_err();
        assert!(
            errors.0[0].problem.contains("not registered for prod"),
            "{errors}"
        );

        // The identity's own limit: 8 hours asked, 4 allowed.
        let mut short = registry_entry();
        short.max_ttl_hours = Some(4);
        let errors = good_draft()
            .validate_for(now(), configured, Registration::Active(&short))
            .unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["not_after"]);
        assert!(errors.0[0].problem.contains("at most 4 hours"), "{errors}");
    }

    /// The hostile requester's cheapest trick: production asked for as `non-prod`,
    /// whose policy wants one approver and allows longer grants.
    #[test]
    fn the_environment_comes_from_the_configuration_never_from_the_request() {
        let mut draft = good_draft();
        draft.target.environment = Some("non-prod".into());
        let errors = draft
            .validate_for(now(), configured, registered())
            .unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["target.environment"]);
        assert!(
            errors.0[0].problem.contains("orders-db is prod"),
            "{}",
            errors.0[0].problem
        );

        // Left out, it is the configured one; said and right, it is accepted.
        let mut draft = good_draft();
        draft.target.environment = None;
        let request = draft.validate_for(now(), configured, registered()).unwrap();
        assert_eq!(request.target.environment, Environment::Prod);
        let request = good_draft()
            .validate_for(now(), configured, registered())
            .unwrap();
        assert_eq!(request.target.environment, Environment::Prod);

        // Only fixtures and re-read records go without the configuration, and there
        // it stays required.
        let mut draft = good_draft();
        draft.target.environment = None;
        let errors = draft.validate(now()).unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["target.environment"]);
    }

    #[test]
    fn the_connector_comes_from_the_configuration_never_from_the_request() {
        // No connector in the request: the configured one.
        let mut draft = good_draft();
        draft.target.connector = None;
        let request = draft.validate_for(now(), configured, registered()).unwrap();
        assert_eq!(request.target.connector, ConnectorKind::Postgres);

        // A hostile requester claims a laxer kind of target for the same system.
        let mut draft = good_draft();
        draft.target.connector = Some("generated_api_key".into());
        let errors = draft
            .validate_for(now(), configured, registered())
            .unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["target.connector"]);
        assert!(
            errors.0[0]
                .problem
                .contains("orders-db is a postgres target")
        );

        // A target ticketbound does not manage.
        let mut draft = good_draft();
        draft.target.system_id = Some("payments-db".into());
        draft.target.connector = None;
        let errors = draft
            .validate_for(now(), configured, registered())
            .unwrap_err();
        assert_eq!(errors.fields().collect::<Vec<_>>(), ["target.system_id"]);
    }

    #[test]
    fn a_complete_request_validates() {
        let request = good_draft().validate(now()).unwrap();
        assert_eq!(request.ticket.qualified_key(), "jira#OPS-123");
        assert_eq!(request.rotation_period.as_hours(), DEFAULT_ROTATION_HOURS);
        assert_eq!(request.approvals.len(), 2);
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let mut draft = good_draft();
        draft.identity.name = Some("Bad Name".into());
        draft.scope = vec!["orders_reader".into(), "*".into()];
        draft.not_after = None;
        draft.target.environment = Some("staging".into());
        draft.approvals[1].approver = Some("alice@example.com".into());
        let errors = draft.validate(now()).unwrap_err();
        let fields: Vec<&str> = errors.fields().collect();
        assert_eq!(
            fields,
            [
                "approvals[1].approver",
                "identity.name",
                "target.environment",
                "scope[1]",
                "not_after"
            ]
        );
        assert!(errors.to_string().starts_with("5 problems in the request"));
    }

    #[test]
    fn time_rules_hold() {
        let mut draft = good_draft();
        draft.not_after = Some(now() - Duration::seconds(1));
        assert_eq!(
            draft.validate(now()).unwrap_err().0[0].problem,
            "is already in the past"
        );

        let mut draft = good_draft();
        draft.approvals[0].approved_at = Some(now() + Duration::hours(1));
        assert_eq!(
            draft.validate(now()).unwrap_err().0[0].field,
            "approvals[0].approved_at"
        );

        let mut draft = good_draft();
        draft.change_window = Some(ChangeWindowDraft {
            start: Some(now()),
            end: Some(now() - Duration::hours(1)),
        });
        assert_eq!(
            draft.validate(now()).unwrap_err().0[0].field,
            "change_window.end"
        );

        // A grant that would end before its window begins could never be used.
        let mut draft = good_draft();
        let not_after = draft.not_after.unwrap();
        draft.change_window = Some(ChangeWindowDraft {
            start: Some(not_after),
            end: Some(not_after + Duration::hours(1)),
        });
        let problems = draft.validate(now()).unwrap_err().0;
        assert_eq!(problems[0].field, "not_after");
        assert_eq!(
            problems[0].problem,
            "must be later than change_window.start"
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_the_schema() {
        let parsed: Result<RequestDraft, _> =
            serde_json::from_value(serde_json::json!({"ticket": {"key": "A-1", "colour": "red"}}));
        assert!(parsed.is_err());
    }
}
