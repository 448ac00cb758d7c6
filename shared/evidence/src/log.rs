//! The log's leaves: one per audit event of every grant, in the order the
//! checkpointer read them from the audit stream.
//!
//! A leaf binds the event (its chain hash, which covers its content and every event
//! before it in its grant's chain) to its grant, its ticket and the time it was
//! logged. The ticket is what makes a ticket's evidence complete: every leaf naming
//! the ticket must be matched by an event in the bundle, so a grant deleted with all
//! its events, or a newest event cut off, is seen. The logging time is what dates a
//! forgery: an event inserted today that claims to be from last month was logged
//! today.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use ticketbound_domain::{Digest, GrantId};

use crate::merkle::{Hash, leaf_hash};

/// The leaf encoding's version: a leaf says how it was encoded, so a later encoding
/// can be added without making old leaves unverifiable.
pub const LEAF_VERSION: u8 = 1;

/// One leaf of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// 0 for the first leaf of the log.
    pub position: u64,
    /// `<system>#<key>` (`Ticket::qualified_key`), as the grant names its ticket.
    pub ticket: String,
    pub grant_id: GrantId,
    pub seq: u64,
    /// The event's hash in its grant's chain.
    pub event_hash: Digest,
    /// When the checkpointer read it from the stream.
    pub logged_at: DateTime<Utc>,
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

impl LogEntry {
    /// The leaf's bytes: versioned, every field length-prefixed, so that no two
    /// entries encode alike. The position is not in the leaf: the tree gives it.
    pub fn leaf_bytes(&self) -> Vec<u8> {
        // Hashed once more so the leaf stays 32 bytes whatever the ticket's length.
        let mut h = Sha256::new();
        h.update(b"ticketbound-log-leaf\n");
        h.update([LEAF_VERSION]);
        field(&mut h, self.ticket.as_bytes());
        field(&mut h, self.grant_id.to_string().as_bytes());
        field(&mut h, &self.seq.to_be_bytes());
        field(&mut h, self.event_hash.to_hex().as_bytes());
        field(&mut h, &self.logged_at.timestamp().to_be_bytes());
        field(
            &mut h,
            &self.logged_at.timestamp_subsec_nanos().to_be_bytes(),
        );
        let mut out = vec![LEAF_VERSION];
        out.extend_from_slice(&h.finalize());
        out
    }

    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.leaf_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> GrantId {
        GrantId::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap(), n)
    }

    fn entry() -> LogEntry {
        LogEntry {
            position: 0,
            ticket: "jira#OPS-1".into(),
            grant_id: id(1),
            seq: 1,
            event_hash: ticketbound_domain::ChainHead::genesis(id(1)).hash,
            logged_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn every_field_but_the_position_changes_the_leaf() {
        let e = entry();
        let base = e.leaf_hash();
        let variants = [
            LogEntry {
                ticket: "jira#OPS-2".into(),
                ..e.clone()
            },
            LogEntry {
                grant_id: id(2),
                ..e.clone()
            },
            LogEntry {
                seq: 2,
                ..e.clone()
            },
            LogEntry {
                event_hash: ticketbound_domain::ChainHead::genesis(id(3)).hash,
                ..e.clone()
            },
            LogEntry {
                logged_at: e.logged_at + chrono::Duration::seconds(1),
                ..e.clone()
            },
            LogEntry {
                logged_at: e.logged_at + chrono::Duration::nanoseconds(1),
                ..e.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.leaf_hash(), base, "{v:?}");
        }
        assert_eq!(LogEntry { position: 9, ..e }.leaf_hash(), base);
    }
}
