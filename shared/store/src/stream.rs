//! Reading the grants table's stream records (as Lambda delivers them) without
//! knowing the item layout outside this crate.

use ticketbound_domain::{AuditEvent, Grant, GrantId};

use crate::StoreError;
use crate::items::{ITEM_EXPIRY, ITEM_GRANT};

/// What a stream record's keys point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamItem {
    Grant(GrantId),
    ExpiryTrigger(GrantId),
    Other,
}

fn text<'a>(item: &'a serde_dynamo::Item, key: &str) -> Option<&'a str> {
    match item.get(key) {
        Some(serde_dynamo::AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

/// Classifies a record by its `Keys`.
pub fn classify(keys: &serde_dynamo::Item) -> StreamItem {
    let id = text(keys, "pk")
        .and_then(|pk| pk.strip_prefix("GRANT#"))
        .and_then(|id| id.parse().ok());
    match (id, text(keys, "sk")) {
        (Some(id), Some(ITEM_GRANT)) => StreamItem::Grant(id),
        (Some(id), Some(ITEM_EXPIRY)) => StreamItem::ExpiryTrigger(id),
        _ => StreamItem::Other,
    }
}

/// The grant in a record's image.
pub fn grant_from_image(image: serde_dynamo::Item) -> Result<Grant, StoreError> {
    serde_dynamo::from_item::<_, crate::items::GrantImage>(image)
        .map(|i| i.grant)
        .map_err(|source| StoreError::Malformed {
            key: "stream image".into(),
            source,
        })
}

/// The audit event in an audit-table record's new image.
pub fn audit_from_image(image: serde_dynamo::Item) -> Result<AuditEvent, StoreError> {
    serde_dynamo::from_item(image).map_err(|source| StoreError::Malformed {
        key: "audit stream image".into(),
        source,
    })
}
