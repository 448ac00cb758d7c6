//! The ITSM side of the local stack, served by the function host under `/itsm/jira`
//! and `/itsm/servicenow`:
//! - Jira ([`crate::jira_site`]): a site that keeps its issues, approvals and people,
//!   and emits signed webhooks, kept in `.ticketbound/jira.json`;
//! - ServiceNow: a stand-in for the parts of the Table API the write-back and the
//!   evidence use (OAuth client credentials, records found by number, work notes,
//!   state), kept in `.ticketbound/itsm.json`. Its records are created on first
//!   sight: any `CHG…`/`RITM…` number exists.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::stack::LocalStack;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ticketbound_runtime::ExposeSecret;
use ticketbound_secrets::SecretCache;
use tokio::sync::Mutex;

pub use crate::jira_site::{JiraSite, WebhookTarget, people as jira_people};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Received {
    /// ServiceNow number → the record.
    #[serde(default)]
    servicenow: BTreeMap<String, SnRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnRecord {
    sys_id: String,
    table: String,
    state: Option<String>,
    /// (created, text), oldest first.
    work_notes: Vec<(String, String)>,
}

/// The stand-in's state and the credentials it accepts.
pub struct ItsmStandIn {
    received: Mutex<Received>,
    file: PathBuf,
    secrets: Arc<SecretCache>,
    servicenow_secret: String,
    tokens: Mutex<Vec<String>>,
    jira: JiraSite,
}

impl std::fmt::Debug for ItsmStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItsmStandIn")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

pub(super) type Answer = Response<Full<Bytes>>;

pub(super) fn answer(status: StatusCode, body: &Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn jira_error(status: StatusCode, message: &str) -> Answer {
    answer(status, &json!({ "errorMessages": [message], "errors": {} }))
}

fn servicenow_error(status: StatusCode, message: &str) -> Answer {
    answer(
        status,
        &json!({ "error": { "message": message, "detail": null }, "status": "failure" }),
    )
}

/// Writes `state` to `file` whole or not at all (a host killed mid-write must not
/// leave half a file, which would lose every ticket's history on restart).
pub(super) fn keep(file: &std::path::Path, state: &impl Serialize) {
    let partial = file.with_extension("json.partial");
    if let Ok(bytes) = serde_json::to_vec(state)
        && let Err(e) =
            std::fs::write(&partial, bytes).and_then(|()| std::fs::rename(&partial, file))
    {
        tracing::warn!(file = %file.display(), error = %e, "could not keep the ITSM stand-in's state");
    }
}

/// A credentials secret's JSON value; `null` when it cannot be read (which then
/// matches no caller).
pub(super) async fn secret_json(secrets: &SecretCache, id: &str) -> Value {
    match secrets.get(id).await {
        Ok(v) => serde_json::from_str(v.expose_secret()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

pub(super) fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl ItsmStandIn {
    /// `webhook`: where the Jira site delivers its webhooks, if anywhere.
    pub async fn new(stack: &LocalStack, webhook: Option<WebhookTarget>) -> Self {
        let sdk = stack.sdk_config().await;
        let file = stack.home().join("itsm.json");
        let received = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let secrets = Arc::new(SecretCache::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            std::time::Duration::from_secs(5),
            std::time::Duration::ZERO,
        ));
        Self {
            received: Mutex::new(received),
            file,
            jira: JiraSite::new(
                stack.home().join("jira.json"),
                Arc::clone(&secrets),
                &stack.itsm_credentials,
                webhook,
            ),
            secrets,
            servicenow_secret: stack.itsm_credentials.servicenow.clone(),
            tokens: Mutex::new(Vec::new()),
        }
    }

    async fn save(&self, received: &Received) {
        keep(&self.file, received);
    }

    async fn credentials(&self, secret: &str) -> Value {
        secret_json(&self.secrets, secret).await
    }

    /// Serves one request under `/itsm/`.
    pub async fn serve(&self, parts: &http::request::Parts, body: &[u8]) -> Answer {
        let path = parts.uri.path();
        let query = parts.uri.query().unwrap_or("");
        if let Some(rest) = path.strip_prefix("/itsm/jira") {
            return self.jira.serve(parts, rest, query, body).await;
        }
        if let Some(rest) = path.strip_prefix("/itsm/servicenow") {
            return self.servicenow(parts, rest, query, body).await;
        }
        jira_error(StatusCode::NOT_FOUND, "no such ITSM")
    }

    async fn servicenow(
        &self,
        parts: &http::request::Parts,
        rest: &str,
        query: &str,
        body: &[u8],
    ) -> Answer {
        let creds = self.credentials(&self.servicenow_secret).await;
        if rest == "/oauth_token.do" && parts.method == http::Method::POST {
            let form = |name| query_value(std::str::from_utf8(body).unwrap_or(""), name);
            let ok = form("grant_type").as_deref() == Some("client_credentials")
                && form("client_id").as_deref() == creds["client_id"].as_str()
                && form("client_secret").as_deref() == creds["client_secret"].as_str()
                && !creds.is_null();
            if !ok {
                return answer(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error_description": "access_denied", "error": "server_error"}),
                );
            }
            let token = ulid::Ulid::new().to_string();
            self.tokens.lock().await.push(token.clone());
            return answer(
                StatusCode::OK,
                &json!({"access_token": token, "scope": "useraccount", "token_type": "Bearer", "expires_in": 1799}),
            );
        }
        let given = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let authorised = match given.strip_prefix("Bearer ") {
            Some(token) => self.tokens.lock().await.iter().any(|t| t == token),
            None => false,
        };
        if !authorised {
            return servicenow_error(StatusCode::UNAUTHORIZED, "User Not Authenticated");
        }
        let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let mut received = self.received.lock().await;
        match (parts.method.as_str(), segments.as_slice()) {
            ("GET", ["api", "now", "table", "sys_journal_field"]) => {
                let q = query_value(query, "sysparm_query").unwrap_or_default();
                let sys_id = q
                    .split('^')
                    .find_map(|c| c.strip_prefix("element_id="))
                    .unwrap_or_default();
                let notes: Vec<Value> = received
                    .servicenow
                    .values()
                    .filter(|r| r.sys_id == sys_id)
                    .flat_map(|r| r.work_notes.iter())
                    .map(|(at, text)| json!({"value": text, "sys_created_on": at, "element": "work_notes"}))
                    .collect();
                answer(StatusCode::OK, &json!({ "result": notes }))
            }
            ("GET", ["api", "now", "table", table]) => {
                let q = query_value(query, "sysparm_query").unwrap_or_default();
                let Some(number) = q.strip_prefix("number=") else {
                    return answer(StatusCode::OK, &json!({ "result": [] }));
                };
                let record = received
                    .servicenow
                    .entry(number.to_owned())
                    .or_insert_with(|| SnRecord {
                        sys_id: format!("{:032x}", ulid::Ulid::new().0),
                        table: (*table).to_owned(),
                        state: None,
                        work_notes: Vec::new(),
                    })
                    .clone();
                if record.table != *table {
                    return answer(StatusCode::OK, &json!({ "result": [] }));
                }
                self.save(&received).await;
                answer(
                    StatusCode::OK,
                    &json!({ "result": [{ "sys_id": record.sys_id, "number": number }] }),
                )
            }
            ("PATCH", ["api", "now", "table", _table, sys_id]) => {
                let Ok(update) = serde_json::from_slice::<Value>(body) else {
                    return servicenow_error(
                        StatusCode::BAD_REQUEST,
                        "Exception while reading request",
                    );
                };
                let Some(record) = received
                    .servicenow
                    .values_mut()
                    .find(|r| r.sys_id == *sys_id)
                else {
                    return servicenow_error(StatusCode::NOT_FOUND, "No Record found");
                };
                if let Some(note) = update["work_notes"].as_str() {
                    record.work_notes.push((
                        Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
                        note.to_owned(),
                    ));
                }
                if let Some(state) = update["state"].as_str() {
                    record.state = Some(state.to_owned());
                }
                let result =
                    json!({ "result": { "sys_id": record.sys_id, "state": record.state } });
                self.save(&received).await;
                answer(StatusCode::OK, &result)
            }
            _ => servicenow_error(StatusCode::BAD_REQUEST, "Invalid table or method"),
        }
    }
}
