//! The generic JSON schema, for any system that is neither Jira nor ServiceNow, over
//! HTTP (`{"event": "approved", "request": {...}}`) or as EventBridge `detail`.

use serde::{Deserialize, Serialize};
use ticketbound_domain::{RequestDraft, SourceSystem, TicketKey};

use crate::{Inbound, InboundError, TicketEnd, TicketEnded};

/// The EventBridge `detail-type` of an approval.
pub const DETAIL_TYPE_APPROVED: &str = "Access Request Approved";
/// The EventBridge `detail-type` of a withdrawal.
pub const DETAIL_TYPE_WITHDRAWN: &str = "Access Request Withdrawn";

/// The ticket a withdrawal or closure is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRef {
    pub source: SourceSystem,
    pub key: TicketKey,
}

/// The detail of a withdrawal or closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketEndDetail {
    pub ticket: TicketRef,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
}

/// A generic HTTP body: `{"event": "approved", "request": {..}}`, or
/// `{"event": "withdrawn" | "closed", "ticket": {..}, "reason": ..}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum GenericEvent {
    Approved { request: Box<RequestDraft> },
    Withdrawn(TicketEndDetail),
    Closed(TicketEndDetail),
}

fn path_error(prefix: &str, e: serde_path_to_error::Error<serde_json::Error>) -> InboundError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return InboundError::NotJson(inner.to_string());
    }
    let field = match (prefix, path.as_str()) {
        ("", ".") => "body".to_owned(),
        (p, ".") => p.to_owned(),
        ("", path) => path.to_owned(),
        (p, path) => format!("{p}.{path}"),
    };
    InboundError::field(field, inner.to_string())
}

/// Deserialises `value` into `T`, naming the first field that does not fit as
/// `prefix.path`.
fn from_value<T: for<'de> Deserialize<'de>>(
    prefix: &str,
    value: serde_json::Value,
) -> Result<T, InboundError> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(prefix, e))
}

/// Parses JSON into `T`, naming the path of the first field that does not fit.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, InboundError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| path_error("", e))
}

fn ended(detail: TicketEndDetail, end: TicketEnd, default_actor: &str) -> Inbound {
    Inbound::TicketEnded(TicketEnded {
        source: detail.ticket.source,
        key: detail.ticket.key,
        end,
        actor: detail.actor.unwrap_or_else(|| default_actor.to_owned()),
        reason: detail.reason,
    })
}

/// Interprets a generic HTTP body.
pub fn interpret(body: &[u8]) -> Result<Inbound, InboundError> {
    // Read the tag first: serde buffers internally tagged enums, which loses the path
    // of a field that does not fit.
    let mut value: serde_json::Value = parse(body)?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| InboundError::field("body", "must be a JSON object"))?;
    let event = object
        .remove("event")
        .ok_or_else(|| InboundError::field("event", "is required"))?;
    match event.as_str() {
        Some("approved") => {
            let request = object.remove("request").unwrap_or_default();
            if let Some(extra) = object.keys().next() {
                return Err(InboundError::field(
                    extra.clone(),
                    "is not a field of an approval",
                ));
            }
            from_value::<RequestDraft>("request", request).map(|d| Inbound::Approval(Box::new(d)))
        }
        Some("withdrawn") => Ok(ended(
            from_value("", value)?,
            TicketEnd::Withdrawn,
            "generic",
        )),
        Some("closed") => Ok(ended(from_value("", value)?, TicketEnd::Closed, "generic")),
        _ => Err(InboundError::field(
            "event",
            "must be one of approved, withdrawn, closed",
        )),
    }
}

/// Interprets an EventBridge event's `detail` by its `detail-type`.
pub fn interpret_eventbridge(
    detail_type: &str,
    detail: &serde_json::Value,
) -> Result<Inbound, InboundError> {
    match detail_type {
        DETAIL_TYPE_APPROVED => from_value::<RequestDraft>("detail", detail.clone())
            .map(|d| Inbound::Approval(Box::new(d))),
        DETAIL_TYPE_WITHDRAWN => from_value::<TicketEndDetail>("detail", detail.clone())
            .map(|d| ended(d, TicketEnd::Withdrawn, "eventbridge")),
        other => Ok(Inbound::Ignored {
            why: format!("detail-type {other:?} is not handled"),
        }),
    }
}
