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
pub mod readback;
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

impl Inbound {
    /// The event, if its ticket belongs to `sender`'s system. A sender is
    /// authenticated for one system and speaks only for that system's tickets: a
    /// generic sender (or anyone who may put events on the bus) naming a Jira issue
    /// or a ServiceNow record could otherwise approve, comment on or withdraw it. A
    /// request that names no system is the sender's.
    pub fn spoken_for(self, sender: SourceSystem) -> Result<Self, InboundError> {
        let claimed = match &self {
            Self::Approval(draft) => draft.ticket.source.clone(),
            Self::TicketEnded(ended) => Some(ended.source.as_str().to_owned()),
            Self::Ignored { .. } => None,
        };
        match claimed {
            Some(claimed) if claimed != sender.as_str() => Err(Self::foreign(&claimed, sender)),
            _ => Ok(self),
        }
    }

    fn foreign(claimed: &str, sender: SourceSystem) -> InboundError {
        InboundError::field(
            "ticket.source",
            format!(
                "is {claimed:?}, but this sender speaks only for {} tickets",
                sender.as_str()
            ),
        )
    }
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

#[cfg(test)]
mod sender_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn approval(source: Option<&str>) -> Inbound {
        let mut draft = RequestDraft::default();
        draft.ticket.source = source.map(str::to_owned);
        Inbound::Approval(Box::new(draft))
    }

    #[test]
    fn a_sender_speaks_only_for_its_own_system() {
        let err = approval(Some("jira"))
            .spoken_for(SourceSystem::Generic)
            .unwrap_err();
        assert_eq!(err.field_name(), Some("ticket.source"));
        assert!(
            err.to_string().contains("speaks only for generic tickets"),
            "{err}"
        );
        assert!(
            approval(Some("generic"))
                .spoken_for(SourceSystem::Generic)
                .is_ok()
        );
        assert!(approval(None).spoken_for(SourceSystem::Generic).is_ok());

        let withdrawal = Inbound::TicketEnded(TicketEnded {
            source: SourceSystem::Servicenow,
            key: TicketKey::new("CHG0031337").unwrap(),
            end: TicketEnd::Withdrawn,
            actor: "someone".into(),
            reason: None,
        });
        assert!(
            withdrawal
                .clone()
                .spoken_for(SourceSystem::Generic)
                .is_err()
        );
        assert!(withdrawal.spoken_for(SourceSystem::Servicenow).is_ok());
    }
}
