//! The ITSM side of the local stack: a stand-in for the parts of ServiceNow's Table API
//! and Jira's REST API v3 that the write-back and the evidence use, served by the
//! function host under `/itsm/servicenow` and `/itsm/jira`. It checks credentials as
//! the vendors do (Jira: basic with an API token; ServiceNow: OAuth client credentials
//! or basic), answers in their documented shapes, and keeps what it received in
//! `.ticketbound/itsm.json`, so that the demo can show the notes each ticket got.
//!
//! Records are created on first sight: any `CHG…`/`RITM…` number or Jira key exists.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ticketbound_runtime::ExposeSecret;
use ticketbound_runtime::local::LocalStack;
use ticketbound_vault::SecretCache;
use tokio::sync::Mutex;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Received {
    /// Jira issue key → its comments (as Jira returns them).
    jira: BTreeMap<String, Vec<Value>>,
    /// Jira issue key → transitions applied.
    transitions: BTreeMap<String, Vec<String>>,
    /// ServiceNow number → the record.
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
    secrets: SecretCache,
    jira_secret: String,
    servicenow_secret: String,
    tokens: Mutex<Vec<String>>,
}

impl std::fmt::Debug for ItsmStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItsmStandIn")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: &Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn jira_error(status: StatusCode, message: &str) -> Answer {
    answer(status, &json!({ "errorMessages": [message], "errors": {} }))
}

fn servicenow_error(status: StatusCode, message: &str) -> Answer {
    answer(
        status,
        &json!({ "error": { "message": message, "detail": null }, "status": "failure" }),
    )
}

fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl ItsmStandIn {
    pub async fn new(stack: &LocalStack) -> Self {
        let sdk = stack.sdk_config().await;
        let file = stack.home().join("itsm.json");
        let received = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            received: Mutex::new(received),
            file,
            secrets: SecretCache::new(
                aws_sdk_secretsmanager::Client::new(&sdk),
                std::time::Duration::from_secs(5),
                std::time::Duration::ZERO,
            ),
            jira_secret: stack.itsm_credentials.jira.clone(),
            servicenow_secret: stack.itsm_credentials.servicenow.clone(),
            tokens: Mutex::new(Vec::new()),
        }
    }

    /// Written whole or not at all (a host killed mid-write must not leave half a
    /// file, which would lose every ticket's history on restart).
    async fn save(&self, received: &Received) {
        let partial = self.file.with_extension("json.partial");
        if let Ok(bytes) = serde_json::to_vec_pretty(received)
            && let Err(e) =
                std::fs::write(&partial, bytes).and_then(|()| std::fs::rename(&partial, &self.file))
        {
            tracing::warn!(file = %self.file.display(), error = %e, "could not keep what the ITSM stand-in received");
        }
    }

    async fn credentials(&self, secret: &str) -> Value {
        match self.secrets.get(secret).await {
            Ok(v) => serde_json::from_str(v.expose_secret()).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// Serves one request under `/itsm/`.
    pub async fn serve(&self, parts: &http::request::Parts, body: &[u8]) -> Answer {
        let path = parts.uri.path();
        let query = parts.uri.query().unwrap_or("");
        if let Some(rest) = path.strip_prefix("/itsm/jira") {
            return self.jira(parts, rest, query, body).await;
        }
        if let Some(rest) = path.strip_prefix("/itsm/servicenow") {
            return self.servicenow(parts, rest, query, body).await;
        }
        jira_error(StatusCode::NOT_FOUND, "no such ITSM")
    }

    async fn jira(
        &self,
        parts: &http::request::Parts,
        rest: &str,
        query: &str,
        body: &[u8],
    ) -> Answer {
        let creds = self.credentials(&self.jira_secret).await;
        let expected = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            creds["email"].as_str().unwrap_or_default(),
            creds["api_token"].as_str().unwrap_or_default()
        ));
        let given = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if creds.is_null() || given != format!("Basic {expected}") {
            return jira_error(
                StatusCode::UNAUTHORIZED,
                "Client must be authenticated to access this resource.",
            );
        }
        let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let (key, what) = match segments.as_slice() {
            ["rest", "api", "3", "issue", key, what] => (key.to_string(), *what),
            _ => return jira_error(StatusCode::NOT_FOUND, "Not Found"),
        };
        let mut received = self.received.lock().await;
        match (parts.method.as_str(), what) {
            ("POST", "comment") => {
                let Ok(request) = serde_json::from_slice::<Value>(body) else {
                    return jira_error(StatusCode::BAD_REQUEST, "Invalid request payload.");
                };
                if request["body"]["type"] != "doc" {
                    return jira_error(
                        StatusCode::BAD_REQUEST,
                        "Comment body is not valid! (Atlassian Document Format expected)",
                    );
                }
                let total: usize = received.jira.values().map(Vec::len).sum();
                let id = (10_000 + total + 1).to_string();
                let comment = json!({
                    "id": id,
                    "self": format!("/rest/api/3/issue/{key}/comment/{id}"),
                    "author": { "emailAddress": creds["email"], "displayName": "ticketbound" },
                    "body": request["body"],
                    "created": Utc::now().to_rfc3339(),
                });
                received.jira.entry(key).or_default().push(comment.clone());
                self.save(&received).await;
                answer(StatusCode::CREATED, &comment)
            }
            ("GET", "comment") => {
                let all = received.jira.get(&key).cloned().unwrap_or_default();
                let start: usize = query_value(query, "startAt")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let max: usize = query_value(query, "maxResults")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(50)
                    .clamp(1, 100);
                let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
                answer(
                    StatusCode::OK,
                    &json!({ "startAt": start, "maxResults": max, "total": all.len(), "comments": page }),
                )
            }
            ("POST", "transitions") => {
                let id = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v["transition"]["id"].as_str().map(str::to_owned));
                let Some(id) = id else {
                    return jira_error(StatusCode::BAD_REQUEST, "Missing transition id.");
                };
                received.transitions.entry(key).or_default().push(id);
                self.save(&received).await;
                let mut r = answer(StatusCode::NO_CONTENT, &Value::Null);
                *r.body_mut() = Full::new(Bytes::new());
                r
            }
            _ => jira_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        }
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
