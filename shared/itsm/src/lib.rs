//! ITSM inbound: how an approval (or its withdrawal) arrives from Jira Service
//! Management, ServiceNow, EventBridge or any other system, how its sender is
//! authenticated, and how its payload becomes ticketbound's generic
//! [`RequestDraft`](ticketbound_domain::RequestDraft).
//!
//! Everything inbound is pure: bytes and headers in, an [`Inbound`] or a precise error
//! out. Secrets are passed in by the caller (who fetched them from Secrets Manager).
//!
//! Outbound, [`note`] renders what a ticket is told about its grant (pure) and
//! [`outbound`] posts it: ServiceNow's Table API and Jira's REST API v3, over HTTPS,
//! with the vendors' error semantics (429 and 5xx worth retrying, honouring
//! Retry-After; other 4xx not).

pub mod auth;
pub mod generic;
pub mod jira;
pub mod note;
pub mod outbound;
pub mod servicenow;
mod value;

use serde::{Deserialize, Serialize};
use ticketbound_domain::{RequestDraft, SourceSystem, TicketKey};

/// What an inbound event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// The ticket was approved: issue this access.
    Approval(Box<RequestDraft>),
    /// The ticket ended before its grants did.
    TicketEnded(TicketEnded),
    /// Nothing for ticketbound (another transition, another event type).
    Ignored { why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketEnd {
    /// Cancelled, declined, rolled back: every live grant is revoked.
    Withdrawn,
    /// Closed or resolved normally: grants that asked for it are revoked.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEnded {
    pub source: SourceSystem,
    pub key: TicketKey,
    pub end: TicketEnd,
    /// Who ended it, as the ITSM names them.
    pub actor: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A payload that cannot be interpreted, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("{field}: {problem}")]
    Field { field: String, problem: String },
}

impl InboundError {
    pub(crate) fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The field at fault, when there is one.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            Self::NotJson(_) => None,
        }
    }
}
