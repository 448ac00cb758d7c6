//! The identity registry: the non-human identities ticketbound may grant access for,
//! each registered by an operator, never by a requester.
//!
//! A ticket names an identity; who owns it, which workload principals may read its
//! credential, and which targets and environments it may be granted come from here.
//! A hostile requester controls every ticket field, so none of those is taken from
//! the ticket: a field the ticket still sends must agree with the registry (see
//! [`crate::RequestDraft::validate_for`]).
//!
//! Every change of an entry (registered, updated, retired) is an [`IdentityEvent`] in
//! a hash chain of its own, written in the same transaction as the entry, whose head
//! the entry keeps; [`verify_identity_chain`] checks it as [`crate::verify_chain`]
//! checks a grant's. Names are never reused: a retired identity stays retired.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::audit::{Actor, ChainErrorKind, ChainHead, Digest, Link, field, walk_chain};
use crate::model::{
    AccessRequest, Environment, IdentityKind, IdentityName, Owner, Principal, SystemId,
};
use crate::request::{FieldError, ValidationErrors};

/// What an operator registers: the identity and what it may be granted. Also the
/// shape of an entry in an import file (unknown fields are refused, so a misspelt
/// limit is not silently dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredIdentity {
    pub name: IdentityName,
    pub kind: IdentityKind,
    /// Who answers for the identity.
    pub owner: Owner,
    /// The workloads allowed to read its credential (IAM role ARNs, say).
    pub workload_principals: BTreeSet<Principal>,
    /// The targets (system ids) it may be granted access at.
    pub targets: BTreeSet<SystemId>,
    /// The environments it may be granted access in.
    pub environments: BTreeSet<Environment>,
    /// The longest grant it may hold, from the approval's acceptance to its not-after
    /// time; unset, the policy's limits alone apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl_hours: Option<u32>,
    /// Whether it may ever be granted outside the normal approval (break-glass).
    #[serde(default)]
    pub break_glass_eligible: bool,
}

impl RegisteredIdentity {
    /// The rules a registration must meet beyond its types: something to grant to,
    /// somewhere to grant it, a positive limit.
    pub fn check(&self) -> Result<(), ValidationErrors> {
        let mut problems = Vec::new();
        let mut add = |field: &str, problem: &str| {
            problems.push(FieldError {
                field: field.to_owned(),
                problem: problem.to_owned(),
            });
        };
        if self.workload_principals.is_empty() {
            add(
                "workload_principals",
                "must name at least one workload principal",
            );
        }
        if self.targets.is_empty() {
            add("targets", "must name at least one target");
        }
        if self.environments.is_empty() {
            add("environments", "must name at least one environment");
        }
        if self.max_ttl_hours == Some(0) {
            add(
                "max_ttl_hours",
                "must be at least 1 (leave it out for no limit of its own)",
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(problems))
        }
    }

    pub fn max_ttl(&self) -> Option<Duration> {
        self.max_ttl_hours.map(|h| Duration::hours(i64::from(h)))
    }

    /// Feeds every field, length-prefixed and in a fixed order (the sets are ordered),
    /// to the chain's hash.
    fn hash_into(&self, h: &mut Sha256) {
        field(h, self.name.as_str().as_bytes());
        field(h, self.kind.as_str().as_bytes());
        field(h, self.owner.as_str().as_bytes());
        let sets: [Vec<&str>; 3] = [
            self.workload_principals
                .iter()
                .map(Principal::as_str)
                .collect(),
            self.targets.iter().map(SystemId::as_str).collect(),
            self.environments.iter().map(|e| e.as_str()).collect(),
        ];
        for set in sets {
            field(h, &(set.len() as u64).to_be_bytes());
            for item in set {
                field(h, item.as_bytes());
            }
        }
        field(h, &self.max_ttl_hours.map_or(-1, i64::from).to_be_bytes());
        field(h, &[u8::from(self.break_glass_eligible)]);
    }
}

/// Whether an entry may still be granted.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum IdentityStatus {
    Active,
    /// No new grant; grants still live run to their end.
    Retired,
}

impl IdentityStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What the registry holds for one identity now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEntry {
    pub identity: RegisteredIdentity,
    pub status: IdentityStatus,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
    /// The last event of the entry's chain.
    pub head: ChainHead,
}

/// What a change did.
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
pub enum RegistryAction {
    Registered,
    Updated,
    Retired,
}

impl RegistryAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for RegistryAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sealed change in an identity's chain: who did what, when, and the definition
/// as it stood after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityEvent {
    pub identity: IdentityName,
    /// 1 for the registration, then one more for each change.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: RegistryAction,
    pub definition: RegisteredIdentity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub prev_hash: Digest,
    pub hash: Digest,
}

/// The head of an identity's empty chain, bound to its name so that an event cannot
/// be moved to another identity's chain.
pub fn identity_genesis(name: &IdentityName) -> ChainHead {
    let mut h = Sha256::new();
    h.update(b"ticketbound-identity-genesis-v1\n");
    h.update(name.as_str().as_bytes());
    ChainHead {
        seq: 0,
        hash: Digest::finish(h),
    }
}

impl IdentityEvent {
    fn seal(head: &ChainHead, change: Change) -> Self {
        let mut event = Self {
            identity: change.definition.name.clone(),
            seq: head.seq + 1,
            at: change.at,
            actor: change.actor,
            action: change.action,
            definition: change.definition,
            reason: change.reason,
            prev_hash: head.hash,
            hash: head.hash,
        };
        event.hash = event.compute_hash();
        event
    }

    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// SHA-256 over a length-prefixed encoding of every field but `hash`.
    pub fn compute_hash(&self) -> Digest {
        let mut h = Sha256::new();
        h.update(b"ticketbound-identity-v1\n");
        field(&mut h, self.identity.as_str().as_bytes());
        field(&mut h, &self.seq.to_be_bytes());
        field(&mut h, &self.at.timestamp().to_be_bytes());
        field(&mut h, &self.at.timestamp_subsec_nanos().to_be_bytes());
        field(&mut h, self.actor.kind.as_str().as_bytes());
        field(&mut h, self.actor.id.as_bytes());
        field(&mut h, self.action.as_str().as_bytes());
        self.definition.hash_into(&mut h);
        field(&mut h, self.reason.as_deref().unwrap_or("").as_bytes());
        field(&mut h, self.prev_hash.as_bytes());
        Digest::finish(h)
    }
}

struct Change {
    at: DateTime<Utc>,
    actor: Actor,
    action: RegistryAction,
    definition: RegisteredIdentity,
    reason: Option<String>,
}

/// Why a change of the registry is refused. Nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryChangeError {
    #[error("the definition of identity {name} is not acceptable: {errors}")]
    Invalid {
        name: IdentityName,
        errors: ValidationErrors,
    },
    #[error(
        "identity {0} was retired; a retired identity is never changed or registered again (register the workload under a new name)"
    )]
    Retired(IdentityName),
    #[error("identity {0} is already registered; change it with an update")]
    AlreadyRegistered(IdentityName),
    #[error("identity {0} is not registered")]
    NotRegistered(IdentityName),
    #[error("a reason is required to retire identity {0}")]
    NoReason(IdentityName),
}

impl RegistryEntry {
    /// A new entry for `definition`, with its first event.
    pub fn register(
        definition: RegisteredIdentity,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<(Self, IdentityEvent), RegistryChangeError> {
        checked(&definition)?;
        let event = IdentityEvent::seal(
            &identity_genesis(&definition.name),
            Change {
                at,
                actor,
                action: RegistryAction::Registered,
                definition: definition.clone(),
                reason: None,
            },
        );
        Ok((
            Self {
                identity: definition,
                status: IdentityStatus::Active,
                registered_at: at,
                updated_at: at,
                retired_at: None,
                head: event.head(),
            },
            event,
        ))
    }

    /// The entry with `definition` instead, and its event; `None` when nothing
    /// changes (an import of the same file twice writes nothing).
    pub fn update(
        &self,
        definition: RegisteredIdentity,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<Option<(Self, IdentityEvent)>, RegistryChangeError> {
        self.still_active()?;
        checked(&definition)?;
        if definition.name != self.identity.name {
            return Err(RegistryChangeError::NotRegistered(definition.name));
        }
        if definition == self.identity {
            return Ok(None);
        }
        Ok(Some(self.next(Change {
            at,
            actor,
            action: RegistryAction::Updated,
            definition,
            reason: None,
        })))
    }

    /// The entry retired, and its event.
    pub fn retire(
        &self,
        actor: Actor,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<(Self, IdentityEvent), RegistryChangeError> {
        self.still_active()?;
        if reason.trim().is_empty() {
            return Err(RegistryChangeError::NoReason(self.identity.name.clone()));
        }
        let (mut entry, event) = self.next(Change {
            at,
            actor,
            action: RegistryAction::Retired,
            definition: self.identity.clone(),
            reason: Some(reason.trim().to_owned()),
        });
        entry.status = IdentityStatus::Retired;
        entry.retired_at = Some(at);
        Ok((entry, event))
    }

    fn still_active(&self) -> Result<(), RegistryChangeError> {
        match self.status {
            IdentityStatus::Active => Ok(()),
            IdentityStatus::Retired => {
                Err(RegistryChangeError::Retired(self.identity.name.clone()))
            }
        }
    }

    fn next(&self, change: Change) -> (Self, IdentityEvent) {
        let event = IdentityEvent::seal(&self.head, change);
        let entry = Self {
            identity: event.definition.clone(),
            status: self.status,
            registered_at: self.registered_at,
            updated_at: event.at,
            retired_at: self.retired_at,
            head: event.head(),
        };
        (entry, event)
    }

    /// What a request may be checked against.
    pub fn registration(&self) -> Registration<'_> {
        match self.status {
            IdentityStatus::Active => Registration::Active(&self.identity),
            IdentityStatus::Retired => Registration::Retired {
                at: self.retired_at.unwrap_or(self.updated_at),
            },
        }
    }
}

fn checked(definition: &RegisteredIdentity) -> Result<(), RegistryChangeError> {
    definition
        .check()
        .map_err(|errors| RegistryChangeError::Invalid {
            name: definition.name.clone(),
            errors,
        })
}

/// What the registry says of the identity a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration<'a> {
    Active(&'a RegisteredIdentity),
    Retired { at: DateTime<Utc> },
    Unknown,
}

impl<'a> Registration<'a> {
    pub fn of(entry: Option<&'a RegistryEntry>) -> Self {
        entry.map_or(Self::Unknown, RegistryEntry::registration)
    }
}

/// Where and how an identity's chain failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("registry chain of identity {identity} breaks at sequence {seq}: {kind:?}")]
pub struct IdentityChainError {
    pub identity: String,
    pub seq: u64,
    pub kind: ChainErrorKind,
}

/// Verifies `events` (in stored order) as the whole chain of identity `name`, and that
/// it ends at the entry's `head` when given. The last event's definition must be the
/// entry's, so an entry edited without an event is caught too.
pub fn verify_identity_chain(
    name: &IdentityName,
    events: &[IdentityEvent],
    entry: Option<&RegistryEntry>,
) -> Result<ChainHead, IdentityChainError> {
    let fail = |seq, kind| IdentityChainError {
        identity: name.to_string(),
        seq,
        kind,
    };
    // What the events say must be a history the registry can make: registered first
    // and only then, nothing after a retirement, a retirement changing no definition.
    let coherent =
        |previous: Option<&IdentityEvent>, event: &IdentityEvent| match (previous, event.action) {
            (None, RegistryAction::Registered) => true,
            (None, _) | (Some(_), RegistryAction::Registered) => false,
            (Some(p), _) if p.action == RegistryAction::Retired => false,
            (Some(p), RegistryAction::Retired) => p.definition == event.definition,
            (Some(_), RegistryAction::Updated) => true,
        };
    let links = events.iter().enumerate().map(|(i, e)| Link {
        belongs: &e.identity == name && e.definition.name == *name,
        seq: e.seq,
        prev_hash: e.prev_hash,
        hash: e.hash,
        computed: e.compute_hash(),
        coherent: coherent(i.checked_sub(1).map(|p| &events[p]), e),
    });
    let running = walk_chain(identity_genesis(name), links, entry.map(|e| &e.head))
        .map_err(|(seq, kind)| fail(seq, kind))?;
    if let Some(entry) = entry
        && !entry.agrees_with_last(events.last())
    {
        return Err(fail(running.seq, ChainErrorKind::Tampered));
    }
    Ok(running)
}

impl RegistryEntry {
    /// Whether the entry still accounts for `request` (approved against it, or
    /// before it existed): active, and with the request's workload principal, owner,
    /// target and environment. Otherwise, what it no longer accounts for.
    pub fn accounts_for(&self, request: &AccessRequest) -> Result<(), String> {
        let (identity, target) = (&request.identity, &request.target);
        if self.status == IdentityStatus::Retired {
            return Err(format!("identity {} was retired", identity.name));
        }
        let r = &self.identity;
        let mut differs = Vec::new();
        if r.name != identity.name {
            differs.push(format!("the entry is of identity {}", r.name));
        }
        if !r.workload_principals.contains(&identity.workload_principal) {
            differs.push(format!(
                "workload principal {} is not registered for identity {}",
                identity.workload_principal, identity.name
            ));
        }
        if r.owner != identity.owner {
            differs.push(format!(
                "owner {} is not the registered owner {}",
                identity.owner, r.owner
            ));
        }
        if !r.targets.contains(&target.system_id) {
            differs.push(format!(
                "target {} is not registered for identity {}",
                target.system_id, identity.name
            ));
        }
        if !r.environments.contains(&target.environment) {
            differs.push(format!(
                "environment {} is not registered for identity {}",
                target.environment, identity.name
            ));
        }
        if differs.is_empty() {
            Ok(())
        } else {
            Err(differs.join("; "))
        }
    }

    /// Whether the entry is what its last event (`last`, the one at the entry's head)
    /// says: the same hash, definition and status. The intake checks this on every
    /// approval (one read more), so an entry edited without an event is not believed;
    /// the whole chain is verified by the reconciler and `identities show`.
    pub fn agrees_with_last(&self, last: Option<&IdentityEvent>) -> bool {
        last.is_some_and(|e| {
            e.identity == self.identity.name
                && e.head() == self.head
                && e.compute_hash() == e.hash
                && e.definition == self.identity
                && (e.action == RegistryAction::Retired) == (self.status == IdentityStatus::Retired)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    pub(crate) fn orders_etl() -> RegisteredIdentity {
        serde_json::from_value(serde_json::json!({
            "name": "orders-etl",
            "kind": "database_credential",
            "owner": "team-data-platform",
            "workload_principals": ["arn:aws:iam::123456789012:role/orders-etl"],
            "targets": ["orders-db"],
            "environments": ["prod"],
            "max_ttl_hours": 12
        }))
        .unwrap()
    }

    fn operator() -> Actor {
        Actor::operator("ops@example.com")
    }

    #[test]
    fn a_registration_needs_somewhere_and_someone_to_grant_to() {
        let mut empty = orders_etl();
        empty.workload_principals.clear();
        empty.targets.clear();
        empty.max_ttl_hours = Some(0);
        let err = RegistryEntry::register(empty, operator(), at(1)).unwrap_err();
        let RegistryChangeError::Invalid { errors, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            errors.fields().collect::<Vec<_>>(),
            ["workload_principals", "targets", "max_ttl_hours"]
        );
        // A misspelt field in an import file is refused, not dropped.
        let typo = serde_json::from_value::<RegisteredIdentity>(serde_json::json!({
            "name": "x", "kind": "token", "owner": "o", "workload_principals": ["p"],
            "targets": ["t"], "environments": ["prod"], "max_ttl_hour": 1
        }));
        assert!(typo.unwrap_err().to_string().contains("max_ttl_hour"));
    }

    #[test]
    fn changes_chain_and_verify_and_a_retired_name_stays_retired() {
        let (entry, first) = RegistryEntry::register(orders_etl(), operator(), at(1)).unwrap();
        // The same definition again changes nothing.
        assert!(
            entry
                .update(orders_etl(), operator(), at(2))
                .unwrap()
                .is_none()
        );
        let mut wider = orders_etl();
        wider.targets.insert(SystemId::new("billing-db").unwrap());
        let (entry, second) = entry.update(wider, operator(), at(2)).unwrap().unwrap();
        let (retired, third) = entry
            .retire(operator(), at(3), "workload decommissioned")
            .unwrap();
        let events = vec![first, second, third];
        let name = IdentityName::new("orders-etl").unwrap();
        assert_eq!(
            verify_identity_chain(&name, &events, Some(&retired)).unwrap(),
            retired.head
        );
        assert_eq!(retired.registration(), Registration::Retired { at: at(3) });
        assert!(matches!(
            retired.update(orders_etl(), operator(), at(4)),
            Err(RegistryChangeError::Retired(_))
        ));
        assert!(matches!(
            retired.retire(operator(), at(4), "again"),
            Err(RegistryChangeError::Retired(_))
        ));
    }

    /// The insider's edits: a principal slipped into an event, an event removed, or
    /// the entry widened without any event. Each is found.
    #[test]
    fn an_edited_removed_or_unrecorded_change_is_found() {
        let (entry, first) = RegistryEntry::register(orders_etl(), operator(), at(1)).unwrap();
        let mut wider = orders_etl();
        wider
            .workload_principals
            .insert(Principal::new("arn:aws:iam::999999999999:role/attacker").unwrap());
        let (entry2, second) = entry
            .update(wider.clone(), operator(), at(2))
            .unwrap()
            .unwrap();
        let name = IdentityName::new("orders-etl").unwrap();

        let mut edited = first.clone();
        edited.definition = wider.clone();
        let err = verify_identity_chain(&name, &[edited], None).unwrap_err();
        assert_eq!(err.kind, ChainErrorKind::Tampered);

        let err =
            verify_identity_chain(&name, std::slice::from_ref(&first), Some(&entry2)).unwrap_err();
        assert_eq!(err.kind, ChainErrorKind::Truncated);

        let mut unrecorded = entry.clone();
        unrecorded.identity = wider;
        let err = verify_identity_chain(&name, std::slice::from_ref(&first), Some(&unrecorded))
            .unwrap_err();
        assert_eq!(err.kind, ChainErrorKind::Tampered);

        // A history no registry makes: the retirement dropped, replaced by an update
        // after it; or a registration again.
        let (retired, third) = entry2.retire(operator(), at(3), "decommissioned").unwrap();
        assert!(
            verify_identity_chain(
                &name,
                &[first.clone(), second.clone(), third.clone()],
                Some(&retired)
            )
            .is_ok()
        );
        assert!(retired.agrees_with_last(Some(&third)));
        assert!(
            !entry2.agrees_with_last(Some(&third)),
            "an entry un-retired by hand"
        );
        let mut again = second.clone();
        again.action = RegistryAction::Registered;
        again.hash = again.compute_hash();
        let err = verify_identity_chain(&name, &[first.clone(), again], None).unwrap_err();
        assert_eq!(err.kind, ChainErrorKind::Tampered);
        let revived = IdentityEvent::seal(
            &third.head(),
            Change {
                at: at(4),
                actor: operator(),
                action: RegistryAction::Updated,
                definition: orders_etl(),
                reason: None,
            },
        );
        let err = verify_identity_chain(
            &name,
            &[first.clone(), second.clone(), third, revived],
            None,
        )
        .unwrap_err();
        assert_eq!((err.kind, err.seq), (ChainErrorKind::Tampered, 4));

        let other = IdentityName::new("billing-export").unwrap();
        let err = verify_identity_chain(&other, &[first, second], None).unwrap_err();
        assert_eq!(err.kind, ChainErrorKind::ForeignEvent);
    }
}
