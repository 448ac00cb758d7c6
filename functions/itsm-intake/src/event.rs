//! The two event shapes the intake receives, told apart by their fields, and the
//! EventBridge path.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Utc;
use serde::{Deserialize, Deserializer, Serialize};
use ticketbound_domain::SourceSystem;
use ticketbound_itsm::{Inbound, InboundError, generic};

use crate::Deps;
use crate::intake::{self, DeliveryRef, IntakeError, Outcome};

/// A Lambda event for the intake: an HTTP request (Function URL or API Gateway HTTP
/// API, payload 2.0) or an EventBridge event.
#[derive(Debug, Clone)]
pub enum IntakeEvent {
    Http(Box<ApiGatewayV2httpRequest>),
    EventBridge(Box<EventBridgeEvent<serde_json::Value>>),
}

impl<'de> Deserialize<'de> for IntakeEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("detail-type").is_some() {
            serde_json::from_value(value)
                .map(|e| Self::EventBridge(Box::new(e)))
                .map_err(|e| D::Error::custom(format!("not an EventBridge event: {e}")))
        } else if value.get("requestContext").is_some() {
            serde_json::from_value(value)
                .map(|e| Self::Http(Box::new(e)))
                .map_err(|e| D::Error::custom(format!("not an HTTP (payload 2.0) event: {e}")))
        } else {
            Err(D::Error::custom(
                "neither an HTTP (payload 2.0) event nor an EventBridge event",
            ))
        }
    }
}

/// What the intake did with an EventBridge event (Lambda's return value; also logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventOutcome {
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum IntakeResponse {
    Http(ApiGatewayV2httpResponse),
    Event(EventOutcome),
}

/// Why an event's sender is not one the intake listens to, if it is not. `source` is
/// whatever the PutEvents caller said, so it only narrows; `account` is set by
/// EventBridge itself, so an event put from another account is refused here even if
/// the bus would take it. (A direct `lambda:InvokeFunction` can forge both; only
/// IAM, and the function's resource policy, stop that.)
fn sender_problem(
    deps: &Deps,
    event: &EventBridgeEvent<serde_json::Value>,
) -> Option<InboundError> {
    let field = |field: &str, problem: String| InboundError::Field {
        field: field.to_owned(),
        problem,
    };
    let Some(settings) = &deps.config.eventbridge else {
        return Some(field(
            "source",
            format!(
                "EventBridge events are not accepted here: {} and {} are not configured",
                crate::config::EVENTBRIDGE_SOURCES,
                crate::config::EVENTBRIDGE_ACCOUNT
            ),
        ));
    };
    if !settings.sources.contains(&event.source) {
        return Some(field(
            "source",
            format!(
                "is {:?}, which is not an integration this intake listens to",
                event.source
            ),
        ));
    }
    if event.account.as_deref() != Some(settings.account.as_str()) {
        return Some(field(
            "account",
            format!(
                "is {:?}; only events from this deployment's account are accepted",
                event.account.as_deref().unwrap_or("")
            ),
        ));
    }
    None
}

/// An EventBridge event carries the generic schema in `detail`. Permanent problems
/// (a malformed event) are answered, not retried: retrying cannot fix them, and the
/// outcome says why. Transient ones fail the invocation so that EventBridge retries.
pub async fn handle_eventbridge(
    deps: &Deps,
    event: EventBridgeEvent<serde_json::Value>,
) -> Result<EventOutcome, IntakeError> {
    let now = Utc::now();
    let delivery_id = event
        .id
        .clone()
        .unwrap_or_else(|| intake::body_hash(event.detail.to_string().as_bytes()));
    // Only the configured integrations, from the deployment's own account, speak;
    // and whoever may put events on the bus speaks for generic tickets only.
    let interpreted = sender_problem(deps, &event)
        .map_or(Ok(()), Err)
        .and_then(|()| generic::interpret_eventbridge(&event.detail_type, &event.detail))
        .and_then(|inbound| inbound.spoken_for(SourceSystem::Generic));
    let outcome = match interpreted {
        Err(e) => Outcome::Invalid {
            errors: vec![intake::field_error(&e)],
        },
        Ok(Inbound::Ignored { why }) => Outcome::Ignored { why },
        Ok(Inbound::Approval(draft)) => {
            let delivery = DeliveryRef {
                integration: "eventbridge",
                sender: ticketbound_domain::SourceSystem::Generic,
                id: delivery_id,
                content_hash: intake::body_hash(event.detail.to_string().as_bytes()),
            };
            intake::accept_approval(deps, &draft, &delivery, now).await?
        }
        Ok(Inbound::TicketEnded(ended)) => intake::end_ticket(deps, &ended, now).await?,
    };
    if let Outcome::Invalid { errors } = &outcome
        && errors
            .iter()
            .any(|e| e.field == "source" || e.field == "account")
    {
        tracing::warn!(source = %event.source, account = ?event.account, "eventbridge event from a sender this intake does not listen to");
    }
    tracing::info!(detail_type = %event.detail_type, outcome = ?outcome, "eventbridge event handled");
    Ok(EventOutcome { outcome })
}
