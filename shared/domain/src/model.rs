//! The nouns of an access request. Every value type checks itself on construction and
//! again on deserialisation (`serde(try_from)`), so a stored or received value that
//! breaks a rule can never become a live one.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a single value was refused. The message never repeats the value itself: some
/// fields travel next to secrets, and errors end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(why.into()))
}

/// Declares a validated string newtype: `new` runs the check, serde goes through it.
macro_rules! checked_string {
    ($(#[$meta:meta])* $name:ident, $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), ValueError> = $check;
                check(&value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(value: String) -> Result<Self, ValueError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

fn within(value: &str, min: usize, max: usize) -> Result<(), ValueError> {
    let len = value.chars().count();
    if len < min {
        return refuse(if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        });
    }
    if len > max {
        return refuse(format!("must be at most {max} characters"));
    }
    Ok(())
}

fn printable(value: &str) -> Result<(), ValueError> {
    if value.chars().any(char::is_control) {
        return refuse("must not contain control characters");
    }
    if value.trim() != value {
        return refuse("must not start or end with white space");
    }
    Ok(())
}

checked_string!(
    /// A ticket's key in its own system: `CHG0031337`, `RITM0010001`, `OPS-123`.
    TicketKey,
    |v| {
        within(v, 1, 64)?;
        if !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return refuse("may hold only letters, digits, '-', '_' and '.'");
        }
        Ok(())
    }
);

checked_string!(
    /// The name of a non-human identity. It becomes part of role and secret names at
    /// the target, so it is kept to what every target accepts unquoted.
    IdentityName,
    |v| {
        within(v, 1, 32)?;
        if !v.starts_with(|c: char| c.is_ascii_lowercase()) {
            return refuse("must start with a lower-case letter");
        }
        if !v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')) {
            return refuse("may hold only lower-case letters, digits, '_' and '-'");
        }
        Ok(())
    }
);

checked_string!(
    /// A person or machine as the ITSM or AWS knows it: a user name, an e-mail
    /// address, a sys_id, an IAM role ARN.
    Principal,
    |v| {
        within(v, 1, 256)?;
        printable(v)
    }
);

checked_string!(
    /// The accountable owner of an identity: a team or a person who answers for it.
    Owner,
    |v| {
        within(v, 1, 128)?;
        printable(v)
    }
);

checked_string!(
    /// The id of a target system in the connector configuration, e.g. `orders-db`.
    SystemId,
    |v| {
        within(v, 1, 48)?;
        if !v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')) {
            return refuse("may hold only lower-case letters, digits, '_' and '-'");
        }
        Ok(())
    }
);

checked_string!(
    /// One permission at the target: a database role to be a member of, an API
    /// scope. Wildcards are refused here, structurally; which names count as admin is
    /// the policy's business.
    Permission,
    |v| {
        within(v, 1, 63)?;
        if v.contains(['*', '%', '?']) {
            return refuse("must not be a wildcard");
        }
        if v.eq_ignore_ascii_case("all") || v.eq_ignore_ascii_case("any") {
            return refuse("must name a permission, not 'all'");
        }
        if !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/')) {
            return refuse("may hold only letters, digits, '_', '-', ':', '.' and '/'");
        }
        Ok(())
    }
);

checked_string!(
    /// Why the access is needed, in the approver's words.
    Justification,
    |v| {
        within(v, 10, 2000)?;
        if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return refuse("must not contain control characters");
        }
        Ok(())
    }
);

/// The ITSM a ticket lives in.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SourceSystem {
    Servicenow,
    Jira,
    Generic,
}

impl SourceSystem {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for SourceSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The approval artifact: a ticket in an ITSM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub source: SourceSystem,
    pub key: TicketKey,
    /// Where a human opens the ticket; informational only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Ticket {
    /// The key that identifies the ticket across ITSMs, e.g. `jira#OPS-123`.
    pub fn qualified_key(&self) -> String {
        format!("{}#{}", self.source, self.key)
    }
}

/// What kind of non-human identity is being granted.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum IdentityKind {
    ServiceAccount,
    ApiKey,
    Token,
    DatabaseCredential,
    Certificate,
    DelegatedAccess,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The non-human identity the grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub kind: IdentityKind,
    pub name: IdentityName,
    /// Who answers for this identity when something goes wrong.
    pub owner: Owner,
    /// The workload that will use the credential (an IAM role ARN, say): the only
    /// principal allowed to read the secret.
    pub workload_principal: Principal,
}

/// How ticketbound enforces at the target system.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConnectorKind {
    /// A LOGIN role in PostgreSQL with memberships in the scope's roles.
    Postgres,
    /// Retired: a random key held in Secrets Manager, read by the target system
    /// itself. No target can be configured with it any more (nothing of ticketbound's
    /// could prove a copy of the key refused after revocation); grants recorded with it
    /// earlier still end on time, their secret deleted, and the reconciler reports them.
    GeneratedApiKey,
}

impl ConnectorKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// True for a kind no target may be configured with any more: grants of it are
    /// revoked (secret and schedule deleted) with no target to act on, and never issued.
    pub fn is_retired(self) -> bool {
        match self {
            Self::Postgres => false,
            Self::GeneratedApiKey => true,
        }
    }

    /// Why configuring target `system` with this (retired) kind is refused: one
    /// wording for every reader of `TICKETBOUND_TARGETS`.
    pub fn retired_target_refusal(self, system: &str) -> String {
        format!(
            "target {system:?}: the {} connector was removed (its revocation cannot be verified at any target); take the target out of the configuration, grants already made with it still end on time",
            self.as_str()
        )
    }

    /// Every key a `TICKETBOUND_TARGETS` entry of this kind may hold. Each function
    /// reads the keys it needs; this list lets each refuse the ones nobody reads, so
    /// that a misspelt `approvers` is an error, not a target anyone may approve.
    pub fn target_keys(self) -> &'static [&'static str] {
        match self {
            Self::Postgres => &[
                "connector",
                "environment",
                "admin_secret_id",
                "host",
                "port",
                "dbname",
                "allowed_roles",
                "rotation",
                "owned_objects",
                "tls",
                "ca_file",
                "approvers",
            ],
            Self::GeneratedApiKey => &["connector"],
        }
    }

    /// What the connector can enforce, declared honestly, so that policy can refuse
    /// or cap grants at a target that cannot, say, end sessions. One match: a new
    /// connector does not compile until it says what it can do.
    pub fn capabilities(self) -> Capabilities {
        match self {
            Self::Postgres => Capabilities {
                revocation_verified: true,
                kills_sessions: true,
                target_enforces_expiry: true,
                rotation: &["alternating_users", "single_user"],
            },
            // The key is only a secret value: revoking deletes the secret, but no
            // system of ticketbound's refuses a copy of it afterwards.
            Self::GeneratedApiKey => Capabilities {
                revocation_verified: false,
                kills_sessions: false,
                target_enforces_expiry: false,
                rotation: &["new_value"],
            },
        }
    }
}

/// What a connector can enforce at its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Revocation is proven at the target (the credential is refused afterwards).
    pub revocation_verified: bool,
    /// Open sessions of a revoked credential are ended.
    pub kills_sessions: bool,
    /// The target itself refuses the credential after its not-after time (PostgreSQL
    /// `VALID UNTIL`), even if every revocation path failed.
    pub target_enforces_expiry: bool,
    /// The rotation strategies it supports.
    pub rotation: &'static [&'static str],
}

/// Where the target runs. Policies treat production more strictly.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Environment {
    Prod,
    NonProd,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The system the credential is issued at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub system_id: SystemId,
    pub connector: ConnectorKind,
    pub environment: Environment,
}

/// The permissions granted: a non-empty set, each a named permission (never a
/// wildcard). Sorted and de-duplicated so that equal scopes compare equal.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Permission>", into = "Vec<Permission>")]
pub struct Scope(BTreeSet<Permission>);

impl Scope {
    pub const MAX_PERMISSIONS: usize = 32;

    pub fn new(permissions: impl IntoIterator<Item = Permission>) -> Result<Self, ValueError> {
        let set: BTreeSet<Permission> = permissions.into_iter().collect();
        if set.is_empty() {
            return refuse("must name at least one permission");
        }
        if set.len() > Self::MAX_PERMISSIONS {
            return refuse(format!(
                "must name at most {} permissions",
                Self::MAX_PERMISSIONS
            ));
        }
        Ok(Self(set))
    }

    pub fn permissions(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }

    pub fn contains(&self, permission: &Permission) -> bool {
        self.0.contains(permission)
    }
}

impl TryFrom<Vec<Permission>> for Scope {
    type Error = ValueError;
    fn try_from(value: Vec<Permission>) -> Result<Self, ValueError> {
        Self::new(value)
    }
}

impl From<Scope> for Vec<Permission> {
    fn from(value: Scope) -> Self {
        value.0.into_iter().collect()
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.iter().map(Permission::as_str))
            .finish()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(Permission::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

/// One approval recorded on the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approver: Principal,
    pub approved_at: DateTime<Utc>,
    /// Why this approval, which the ticket holds, does not count (it predates a
    /// change of the request, or the approver has no authority over the target).
    /// Set by the intake after reading the ticket back, never by a request. Policy
    /// sees only the approvals that count; the evidence shows them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discounted: Option<String>,
}

impl Approval {
    pub fn counts(&self) -> bool {
        self.discounted.is_none()
    }
}

/// What ends the grant besides its not-after time, which always does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RevocationTrigger {
    /// Only the not-after time (or a withdrawal of the ticket) ends it.
    NotAfter,
    /// Also revoke as soon as the ticket is closed or resolved.
    NotAfterOrTicketClosed,
}

impl RevocationTrigger {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How often the credential is rotated while it lives, in hours. Secrets Manager's
/// shortest rotation schedule is four hours; the longest sensible one is a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct RotationPeriod(u32);

impl RotationPeriod {
    pub const MIN_HOURS: u32 = 4;
    pub const MAX_HOURS: u32 = 24 * 365;

    pub fn hours(hours: u32) -> Result<Self, ValueError> {
        if !(Self::MIN_HOURS..=Self::MAX_HOURS).contains(&hours) {
            return refuse(format!(
                "must be between {} and {} hours",
                Self::MIN_HOURS,
                Self::MAX_HOURS
            ));
        }
        Ok(Self(hours))
    }

    pub fn as_hours(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for RotationPeriod {
    type Error = ValueError;
    fn try_from(value: u32) -> Result<Self, ValueError> {
        Self::hours(value)
    }
}

impl From<RotationPeriod> for u32 {
    fn from(value: RotationPeriod) -> u32 {
        value.0
    }
}

/// The change window approved on the ticket, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A validated, approved request for access. Build it with
/// [`RequestDraft::validate`](crate::RequestDraft::validate), which checks every field
/// and the rules between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub ticket: Ticket,
    pub requester: Principal,
    pub approvals: Vec<Approval>,
    pub identity: Identity,
    pub target: Target,
    pub scope: Scope,
    pub not_after: DateTime<Utc>,
    pub justification: Justification,
    pub revocation_trigger: RevocationTrigger,
    pub rotation_period: RotationPeriod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_window: Option<ChangeWindow>,
    /// Who created the ticket, when the ITSM says and it is not the requester (an
    /// agent raising a request on someone's behalf): they may not approve it either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<Principal>,
    /// What the approval was checked against. Never taken from a request (the
    /// generic schema has no such field): the intake sets it.
    #[serde(default)]
    pub verification: Verification,
}

/// Whether an approval was read back from the ITSM's own API or believed on the
/// sender's word (a generic sender has no API to ask; an operator may choose to trust
/// it, and every grant says so).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Verification {
    /// The status, fields and approvals were read back from the ITSM's API with
    /// ticketbound's own credentials, and agreed with the event.
    ItsmApi,
    /// Only the sender's signature vouches for the event. Grants recorded before
    /// read-back existed are this.
    #[default]
    SenderOnly,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AccessRequest {
    /// The time of the last approval: the moment the request became approved.
    pub fn approved_at(&self) -> Option<DateTime<Utc>> {
        self.approvals.iter().map(|a| a.approved_at).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_all_are_not_permissions() {
        for bad in ["*", "orders_*", "ALL", "any", "", "a b"] {
            assert!(Permission::new(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(Permission::new("orders_reader").is_ok());
    }

    #[test]
    fn scope_is_a_deduplicated_non_empty_set() {
        let p = |s: &str| Permission::new(s).unwrap();
        let scope = Scope::new([p("b"), p("a"), p("b")]).unwrap();
        assert_eq!(scope.to_string(), "a, b");
        assert!(Scope::new([]).is_err());
    }

    #[test]
    fn deserialising_runs_the_same_checks() {
        let bad: Result<IdentityName, _> = serde_json::from_str("\"Robert'); DROP\"");
        assert!(bad.is_err());
        let bad_scope: Result<Scope, _> = serde_json::from_str("[]");
        assert!(bad_scope.is_err());
        let bad_period: Result<RotationPeriod, _> = serde_json::from_str("1");
        assert!(bad_period.is_err());
    }

    #[test]
    fn value_errors_do_not_repeat_the_value() {
        let err = Principal::new(" sneaky-secret-value ").unwrap_err();
        assert!(!err.to_string().contains("sneaky-secret-value"));
    }
}
