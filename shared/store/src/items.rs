//! How domain values become items, and back. Key and index attributes are derived
//! from the domain value here and nowhere else.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use ticketbound_domain::{AuditEvent, Grant, GrantId};

use crate::StoreError;

pub type Item = HashMap<String, AttributeValue>;

/// `sk` of a grant record.
pub const ITEM_GRANT: &str = "GRANT";
/// `sk` of a grant's expiry trigger: the item DynamoDB TTL removes at the not-after
/// time, whose REMOVE record on the stream is the backstop revocation signal.
pub const ITEM_EXPIRY: &str = "EXPIRY";
const ITEM_DELIVERY: &str = "DELIVERY";

pub fn grant_pk(id: GrantId) -> String {
    format!("GRANT#{id}")
}

fn delivery_pk(source: &str, delivery_id: &str) -> String {
    format!("DELIVERY#{source}#{delivery_id}")
}

pub fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

pub fn owner_key(owner: &str) -> String {
    format!("OWNER#{owner}")
}

/// A grant item's image as a stream delivers it (only the grant is read).
#[derive(Deserialize)]
pub(crate) struct GrantImage {
    #[serde(flatten)]
    pub grant: Grant,
}

#[derive(Serialize, Deserialize)]
struct GrantItem {
    pk: String,
    sk: String,
    ticket_key: String,
    owner_key: String,
    not_after_epoch: i64,
    /// TTL: the grant record is kept for the retention period after its not-after time.
    expires_at: i64,
    #[serde(flatten)]
    grant: Grant,
}

pub fn grant_to_item(grant: &Grant, retention: Duration) -> Result<Item, StoreError> {
    let not_after = grant.not_after();
    serde_dynamo::to_item(GrantItem {
        pk: grant_pk(grant.id),
        sk: ITEM_GRANT.to_owned(),
        ticket_key: grant.request.ticket.qualified_key(),
        owner_key: owner_key(grant.request.identity.owner.as_str()),
        not_after_epoch: not_after.timestamp(),
        expires_at: (not_after + retention).timestamp(),
        grant: grant.clone(),
    })
    .map_err(StoreError::Mapping)
}

pub fn grant_from_item(item: Item) -> Result<Grant, StoreError> {
    let key = describe_key(&item);
    serde_dynamo::from_item::<_, GrantItem>(item)
        .map(|i| i.grant)
        .map_err(|source| StoreError::Malformed { key, source })
}

#[derive(Serialize, Deserialize)]
struct ExpiryTriggerItem {
    pk: String,
    sk: String,
    grant_id: GrantId,
    ticket_key: String,
    not_after: DateTime<Utc>,
    /// TTL: exactly the not-after time.
    expires_at: i64,
}

pub fn expiry_trigger_item(grant: &Grant) -> Result<Item, StoreError> {
    serde_dynamo::to_item(ExpiryTriggerItem {
        pk: grant_pk(grant.id),
        sk: ITEM_EXPIRY.to_owned(),
        grant_id: grant.id,
        ticket_key: grant.request.ticket.qualified_key(),
        not_after: grant.not_after(),
        // Rounded up: TTL must never remove the trigger before the not-after time.
        expires_at: ceil_seconds(grant.not_after()),
    })
    .map_err(StoreError::Mapping)
}

fn ceil_seconds(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

/// One received ITSM delivery, remembered until `expires_at` so that a redelivery is
/// recognised and answered with the grant it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The integration it came through: `jira`, `servicenow`, `eventbridge` …
    pub source_system: String,
    /// The sender's delivery id (`X-Atlassian-Webhook-Identifier`, an event id …).
    pub delivery_id: String,
    /// SHA-256 of the normalised request, to tell a redelivery from a changed request.
    pub content_hash: String,
    pub grant_id: GrantId,
    pub received_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct DeliveryItem {
    pk: String,
    sk: String,
    #[serde(rename = "expires_at")]
    expires_at_epoch: i64,
    #[serde(flatten)]
    delivery: DeliveryFields,
}

/// The delivery without `expires_at`, which the item holds as epoch seconds for TTL.
#[derive(Serialize, Deserialize)]
struct DeliveryFields {
    source_system: String,
    delivery_id: String,
    content_hash: String,
    grant_id: GrantId,
    received_at: DateTime<Utc>,
}

pub fn delivery_to_item(d: &Delivery) -> Result<Item, StoreError> {
    serde_dynamo::to_item(DeliveryItem {
        pk: delivery_pk(&d.source_system, &d.delivery_id),
        sk: ITEM_DELIVERY.to_owned(),
        expires_at_epoch: d.expires_at.timestamp(),
        delivery: DeliveryFields {
            source_system: d.source_system.clone(),
            delivery_id: d.delivery_id.clone(),
            content_hash: d.content_hash.clone(),
            grant_id: d.grant_id,
            received_at: d.received_at,
        },
    })
    .map_err(StoreError::Mapping)
}

pub fn delivery_key(source: &str, delivery_id: &str) -> Item {
    key(delivery_pk(source, delivery_id), ITEM_DELIVERY)
}

pub fn delivery_from_item(item: Item) -> Result<Delivery, StoreError> {
    let key = describe_key(&item);
    let i: DeliveryItem =
        serde_dynamo::from_item(item).map_err(|source| StoreError::Malformed { key, source })?;
    Ok(Delivery {
        source_system: i.delivery.source_system,
        delivery_id: i.delivery.delivery_id,
        content_hash: i.delivery.content_hash,
        grant_id: i.delivery.grant_id,
        received_at: i.delivery.received_at,
        expires_at: DateTime::from_timestamp(i.expires_at_epoch, 0).unwrap_or(DateTime::UNIX_EPOCH),
    })
}

pub fn audit_to_item(event: &AuditEvent) -> Result<Item, StoreError> {
    serde_dynamo::to_item(event).map_err(StoreError::Mapping)
}

pub fn audit_from_item(item: Item) -> Result<AuditEvent, StoreError> {
    let key = describe_key(&item);
    serde_dynamo::from_item(item).map_err(|source| StoreError::Malformed { key, source })
}

fn describe_key(item: &Item) -> String {
    ["pk", "sk", "grant_id", "seq"]
        .iter()
        .filter_map(|k| match item.get(*k) {
            Some(AttributeValue::S(v)) | Some(AttributeValue::N(v)) => Some(format!("{k}={v}")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ticketbound_domain::{Actor, AuditAction, AuditRecord, Detail, RequestDraft};

    fn grant() -> Grant {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        let draft: RequestDraft = serde_json::from_str(include_str!(
            "../../../tests/fixtures/generic/approved-request.json"
        ))
        .unwrap();
        Grant::approved(GrantId::new(now, 42), draft.validate(now).unwrap(), now)
    }

    #[test]
    fn grants_and_audit_events_round_trip_through_items() {
        let mut g = grant();
        let event = g.record(
            AuditRecord::new(g.created_at, Actor::component("t"), AuditAction::Requested)
                .detail(Detail::Note, "v"),
        );
        let item = grant_to_item(&g, Duration::days(400)).unwrap();
        assert_eq!(item["state"], AttributeValue::S("approved".into()));
        assert_eq!(
            item["ticket_key"],
            AttributeValue::S("jira#OPS-4211".into())
        );
        assert_eq!(item["version"], AttributeValue::N("1".into()));
        assert_eq!(grant_from_item(item).unwrap(), g);

        let item = audit_to_item(&event).unwrap();
        assert_eq!(item["seq"], AttributeValue::N("1".into()));
        assert_eq!(audit_from_item(item).unwrap(), event);
    }

    #[test]
    fn a_malformed_item_names_its_key() {
        let mut item = grant_to_item(&grant(), Duration::days(1)).unwrap();
        item.insert("state".into(), AttributeValue::S("dancing".into()));
        let err = grant_from_item(item).unwrap_err();
        assert!(err.to_string().contains("pk=GRANT#"), "{err}");
    }
}
