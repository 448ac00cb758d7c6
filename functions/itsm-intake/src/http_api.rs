//! The HTTP face of the intake: routes, limits, authentication and status codes.
//!
//! | answer | when |
//! | --- | --- |
//! | 202 | recorded: a new grant (Approved, or Rejected by policy), or a ticket's end applied |
//! | 200 | already seen (same delivery or same approval), or nothing to do |
//! | 400 | malformed: the body names the field |
//! | 401 | bad or missing signature; nothing else is said |
//! | 404 / 405 | unknown route, or an integration that is not configured / not POST |
//! | 409 | the ticket already has a live grant for different content |
//! | 413 | body over 256 KiB |
//! | 415 | not JSON |
//! | 500 / 503 | our failure; 503 when a retry may help |

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use chrono::Utc;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde_json::json;
use ticketbound_domain::SourceSystem;
use ticketbound_itsm::auth::{self, AuthError};
use ticketbound_itsm::{Inbound, generic, jira, servicenow};
use ticketbound_runtime::ExposeSecret;
use ticketbound_secrets::SecretsError;

use crate::config::SenderAuth;
use crate::intake::{self, DeliveryRef, IntakeError, Outcome};
use crate::{Deps, MAX_BODY_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Jira,
    ServiceNow,
    Generic,
}

impl Route {
    /// The system whose tickets this route's sender speaks for.
    fn system(self) -> SourceSystem {
        match self {
            Self::Jira => SourceSystem::Jira,
            Self::ServiceNow => SourceSystem::Servicenow,
            Self::Generic => SourceSystem::Generic,
        }
    }

    fn integration(self) -> &'static str {
        match self {
            Self::Jira => "jira",
            Self::ServiceNow => "servicenow",
            Self::Generic => "generic",
        }
    }
}

fn respond(status: i64, body: serde_json::Value) -> ApiGatewayV2httpResponse {
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = status;
    r.headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.body = Some(Body::Text(body.to_string()));
    r
}

fn error(status: i64, message: &str) -> ApiGatewayV2httpResponse {
    respond(status, json!({ "error": message }))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_json(headers: &HeaderMap) -> bool {
    header(headers, "content-type").is_some_and(|v| {
        let media = v
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        media == "application/json"
            || (media.starts_with("application/") && media.ends_with("+json"))
    })
}

/// Why a request could not be authenticated.
enum AuthFailure {
    Rejected(AuthError),
    NotConfigured,
    Secret(SecretsError),
}

/// Checks the sender with the integration's secret; a mismatch is tried once more
/// with a freshly fetched secret, so that a rotated secret is picked up at once.
async fn authenticate(
    deps: &Deps,
    route: Route,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), AuthFailure> {
    let config = &deps.config;
    let secret_id = match route {
        Route::Jira => config.jira.as_ref().map(|j| j.secret_id.as_str()),
        Route::ServiceNow => config.servicenow.as_ref().map(|s| s.secret_id.as_str()),
        Route::Generic => config.generic_secret_id.as_deref(),
    }
    .ok_or(AuthFailure::NotConfigured)?;
    let now = Utc::now();
    let bearer = config
        .servicenow
        .as_ref()
        .is_some_and(|s| s.auth == SenderAuth::Bearer);
    let check = |secret: &[u8]| match route {
        Route::Jira => auth::verify_hub_signature(secret, body, header(headers, "x-hub-signature")),
        Route::ServiceNow if bearer => {
            auth::verify_bearer(secret, header(headers, "authorization"))
        }
        Route::ServiceNow | Route::Generic => auth::verify_timestamped(
            secret,
            body,
            header(headers, "x-ticketbound-timestamp"),
            header(headers, "x-ticketbound-signature"),
            now,
            config.replay_window,
        ),
    };
    let secret = deps
        .secrets
        .get(secret_id)
        .await
        .map_err(AuthFailure::Secret)?;
    match check(secret.expose_secret().as_bytes()) {
        Ok(()) => Ok(()),
        // A secret just rotated (or replaced because it was too short) is fetched
        // again once.
        Err(first @ (AuthError::Mismatch | AuthError::WeakSecret)) => match deps
            .secrets
            .refresh(secret_id)
            .await
            .map_err(AuthFailure::Secret)?
        {
            Some(fresh) => check(fresh.expose_secret().as_bytes()).map_err(AuthFailure::Rejected),
            None => Err(AuthFailure::Rejected(first)),
        },
        Err(e) => Err(AuthFailure::Rejected(e)),
    }
}

fn outcome_response(outcome: &Outcome) -> ApiGatewayV2httpResponse {
    let status = match outcome {
        Outcome::Accepted { .. } => 202,
        Outcome::TicketEnded { grants, .. } if !grants.is_empty() => 202,
        Outcome::Duplicate { .. } | Outcome::TicketEnded { .. } | Outcome::Ignored { .. } => 200,
        Outcome::Conflict { .. } | Outcome::Withdrawn { .. } => 409,
        Outcome::Invalid { .. } => 400,
    };
    respond(status, serde_json::to_value(outcome).unwrap_or_default())
}

fn failure_response(e: &IntakeError) -> ApiGatewayV2httpResponse {
    if e.is_retryable() {
        tracing::warn!(error = %e, source = ?std::error::Error::source(e), "intake failed; the sender should retry");
        let mut r = error(503, "temporarily unavailable; retry later");
        r.headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        r
    } else {
        tracing::error!(error = %e, source = ?std::error::Error::source(e), "intake failed");
        error(500, "internal error")
    }
}

/// Points a generic field name at the vendor field it came from.
fn with_sources(outcome: Outcome, deps: &Deps, route: Route) -> Outcome {
    let Outcome::Invalid { errors } = outcome else {
        return outcome;
    };
    let source_of = |field: &str| match route {
        Route::Jira => deps
            .config
            .jira
            .as_ref()
            .and_then(|j| j.mapping.source_of(field)),
        Route::ServiceNow => deps
            .config
            .servicenow
            .as_ref()
            .and_then(|s| s.mapping.source_of(field)),
        Route::Generic => None,
    };
    Outcome::Invalid {
        errors: errors
            .into_iter()
            .map(|mut e| {
                if let Some(source) = source_of(&e.field) {
                    e.problem = format!("{} (from {source})", e.problem);
                }
                e
            })
            .collect(),
    }
}

pub async fn handle(deps: &Deps, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    let path = request
        .raw_path
        .clone()
        .or_else(|| request.request_context.http.path.clone())
        .unwrap_or_default();
    let route = match path.trim_end_matches('/') {
        "/jira" => Route::Jira,
        "/servicenow" => Route::ServiceNow,
        "/generic" => Route::Generic,
        _ => return error(404, "no such route; use /jira, /servicenow or /generic"),
    };
    if request.request_context.http.method != http::Method::POST {
        let mut r = error(405, "only POST is accepted");
        r.headers
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let raw = request.body.clone().unwrap_or_default();
    let body = if request.is_base64_encoded {
        match base64::engine::general_purpose::STANDARD.decode(raw.as_bytes()) {
            Ok(b) => b,
            Err(_) => return error(400, "the body is marked base64 but does not decode"),
        }
    } else {
        raw.into_bytes()
    };
    if body.len() > MAX_BODY_BYTES {
        return error(413, "the body is larger than 256 KiB");
    }

    match authenticate(deps, route, &request.headers, &body).await {
        Ok(()) => {}
        Err(AuthFailure::Rejected(why)) => {
            tracing::warn!(route = route.integration(), reason = %why, "sender not authenticated");
            if why == AuthError::WeakSecret {
                // Not the sender's fault: the operator must replace the secret, and
                // an alarm on this metric tells them so.
                ticketbound_runtime::metrics::count(crate::COMPONENT, "WeakWebhookSecret", 1);
            }
            return error(401, "unauthorized");
        }
        Err(AuthFailure::NotConfigured) => return error(404, "this integration is not configured"),
        Err(AuthFailure::Secret(e)) => return failure_response(&IntakeError::SecretsManager(e)),
    }
    if !is_json(&request.headers) {
        return error(415, "the body must be application/json");
    }

    let interpreted = match route {
        Route::Jira => match &deps.config.jira {
            Some(j) => jira::interpret(&body, &j.mapping),
            None => return error(404, "this integration is not configured"),
        },
        Route::ServiceNow => match &deps.config.servicenow {
            Some(s) => servicenow::interpret(&body, &s.mapping),
            None => return error(404, "this integration is not configured"),
        },
        Route::Generic => generic::interpret(&body),
    }
    .and_then(|inbound| inbound.spoken_for(route.system()));
    let now = Utc::now();
    let result = match interpreted {
        Err(e) => {
            let fe = intake::field_error(&e);
            return respond(
                400,
                json!({ "error": e.to_string(), "field": fe.field, "outcome": "invalid" }),
            );
        }
        Ok(Inbound::Ignored { why }) => Ok(Outcome::Ignored { why }),
        Ok(Inbound::Approval(draft)) => {
            let delivery_header = match route {
                Route::Jira => "x-atlassian-webhook-identifier",
                Route::ServiceNow | Route::Generic => "x-ticketbound-delivery",
            };
            let delivery = DeliveryRef {
                integration: route.integration(),
                sender: route.system(),
                id: header(&request.headers, delivery_header)
                    .map(str::to_owned)
                    .unwrap_or_else(|| intake::body_hash(&body)),
                content_hash: intake::body_hash(&body),
            };
            intake::accept_approval(deps, &draft, &delivery, now)
                .await
                .map(|o| with_sources(o, deps, route))
        }
        Ok(Inbound::TicketEnded(ended)) => intake::end_ticket(deps, &ended, now).await,
    };
    match result {
        Ok(outcome) => outcome_response(&outcome),
        Err(e) => failure_response(&e),
    }
}
