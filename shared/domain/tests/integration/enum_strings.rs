//! Each enum that is written out (in records, in Cedar's context, on tickets, in
//! DynamoDB keys) has its strings defined once, by strum's derive; serde names the
//! same strings by its own attribute. This keeps the two equal, variant by variant,
//! so that a renamed variant or a changed `rename_all` cannot make a record written
//! by serde unreadable through `as_str`/`FromStr`, or the other way round.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use strum::IntoEnumIterator;
use ticketbound_domain::{
    ActorKind, AuditAction, ConnectorKind, Detail, Environment, GrantState, IdentityKind,
    IdentityStatus, RegistryAction, RevocationTrigger, SourceSystem, Verification,
};

fn round_trips<T>()
where
    T: IntoEnumIterator + Into<&'static str> + FromStr + Serialize + DeserializeOwned,
    T: Copy + PartialEq + Debug,
{
    let mut seen = BTreeSet::new();
    for variant in T::iter() {
        let text: &'static str = variant.into();
        assert!(seen.insert(text), "{variant:?}: {text:?} is written twice");
        assert_eq!(
            serde_json::to_value(variant).unwrap(),
            serde_json::Value::String(text.to_owned()),
            "{variant:?}: serde writes another string than as_str"
        );
        assert_eq!(
            serde_json::from_value::<T>(serde_json::Value::String(text.to_owned())).unwrap(),
            variant,
            "{variant:?}: serde does not read {text:?} back"
        );
        assert_eq!(
            T::from_str(text).ok(),
            Some(variant),
            "{variant:?}: FromStr does not read {text:?} back"
        );
    }
    assert!(!seen.is_empty());
}

#[test]
fn every_written_enum_has_one_string_per_variant_in_serde_and_as_str() {
    round_trips::<GrantState>();
    round_trips::<AuditAction>();
    round_trips::<ActorKind>();
    round_trips::<SourceSystem>();
    round_trips::<IdentityKind>();
    round_trips::<ConnectorKind>();
    round_trips::<Environment>();
    round_trips::<RevocationTrigger>();
    round_trips::<Verification>();
    round_trips::<IdentityStatus>();
    round_trips::<RegistryAction>();
}

#[test]
fn the_strings_events_already_carry_are_kept() {
    // What records written before these enums were derived hold: a change here makes
    // old records unreadable or old chains unverifiable.
    assert_eq!(Environment::NonProd.as_str(), "non-prod");
    assert_eq!(
        AuditAction::TicketUpdateFailed.as_str(),
        "ticket_update_failed"
    );
    assert_eq!(ConnectorKind::GeneratedApiKey.as_str(), "generated_api_key");
    assert_eq!(
        RevocationTrigger::NotAfterOrTicketClosed.as_str(),
        "not_after_or_ticket_closed"
    );
    assert_eq!(Detail::PolicySetSha256.as_str(), "policy_set_sha256");
    assert_eq!(Detail::VerifiedAtTarget.as_str(), "verified_at_target");
    assert_eq!(Detail::AboutSeq.as_str(), "about_seq");
}

#[test]
fn every_detail_key_is_distinct_and_reads_back() {
    let mut seen = BTreeSet::new();
    for key in Detail::iter() {
        assert!(seen.insert(key.as_str()), "{key:?} shares its key");
        assert_eq!(Detail::from_str(key.as_str()).ok(), Some(key));
        assert!(
            key.as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{key:?}: {:?} is not snake_case",
            key.as_str()
        );
    }
}

#[test]
fn a_detail_written_is_read_back_by_its_variant() {
    let record = ticketbound_domain::AuditRecord::new(
        chrono::Utc::now(),
        ticketbound_domain::Actor::component("test"),
        AuditAction::Revoked,
    )
    .detail(Detail::RolesDropped, "tb_orders_etl_x");
    assert_eq!(record.details["roles_dropped"], "tb_orders_etl_x");
}
