//! Talking to the ITSM: posting to the ticket (ServiceNow's Table API: a work note on
//! the record, and optionally its state; Jira's REST API v3: a comment in Atlassian
//! Document Format, and optionally a transition), reading the notes back for the
//! evidence, and reading an approval back for the intake (Jira: the issue, its
//! changelog, its Jira Service Management approvals, an approver's groups).
//!
//! Credentials come from Secrets Manager as JSON and never print:
//! - ServiceNow: `{"auth": "basic", "username", "password"}` or
//!   `{"auth": "oauth", "client_id", "client_secret"}` (OAuth client credentials,
//!   token from `/oauth_token.do`, cached until shortly before it expires);
//! - Jira: `{"email", "api_token"}` (basic authentication with an API token).
//!
//! Errors keep the HTTP status and Retry-After, so the caller can tell what to retry
//! (429 and 5xx) from what not to (every other 4xx).

use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::note::Note;

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("{system} answered HTTP {status} to {operation}: {message}")]
    Status {
        system: &'static str,
        operation: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        /// The vendor's error text (never a credential: we send those, they don't).
        message: String,
    },
    #[error("could not reach {system} for {operation}")]
    Transport {
        system: &'static str,
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{system} answered {operation} with something unexpected: {problem}")]
    Unexpected {
        system: &'static str,
        operation: &'static str,
        problem: String,
    },
    #[error("the {system} credentials secret is not what it should be: {problem}")]
    Credentials {
        system: &'static str,
        problem: &'static str,
    },
    #[error("{system} has no record {number} in table {table}")]
    NoSuchRecord {
        system: &'static str,
        table: String,
        number: String,
    },
}

impl PostError {
    /// 429, 5xx and transport failures: a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Transport { .. } => true,
            Self::Unexpected { .. } | Self::Credentials { .. } | Self::NoSuchRecord { .. } => false,
        }
    }

    /// Whether the call may have taken effect although it failed: the connection
    /// broke after the request left, or the server failed while (or after) handling
    /// it. A re-post after one of these must first look for its own note (Jira
    /// comments have no idempotency key). A 429 or another 4xx was refused before anything happened; an answer
    /// we could not read is not retried at all.
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500,
            Self::Transport { .. } => true,
            Self::Unexpected { .. } | Self::Credentials { .. } | Self::NoSuchRecord { .. } => false,
        }
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// `Retry-After`: a number of seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Where the note went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The comment's id (Jira) or the record's sys_id (ServiceNow).
    pub reference: String,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("ticketbound/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

async fn send(
    system: &'static str,
    operation: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Value, PostError> {
    let response = request
        .send()
        .await
        .map_err(|source| PostError::Transport {
            system,
            operation,
            source,
        })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()));
    let body = response
        .bytes()
        .await
        .map_err(|source| PostError::Transport {
            system,
            operation,
            source,
        })?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(PostError::Status {
            system,
            operation,
            status: status.as_u16(),
            retry_after,
            message: text.chars().take(300).collect(),
        });
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|e| PostError::Unexpected {
        system,
        operation,
        problem: format!("not JSON: {e}"),
    })
}

/// ServiceNow's two ways in.
enum ServiceNowAuth {
    Basic {
        username: String,
        password: String,
    },
    OAuth {
        client_id: String,
        client_secret: String,
    },
}

/// A ServiceNow instance's Table API.
pub struct ServiceNow {
    base: String,
    http: reqwest::Client,
    auth: ServiceNowAuth,
    token: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for ServiceNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNow")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

const SN: &str = "ServiceNow";

/// The table a ServiceNow number lives in, by its prefix.
pub fn servicenow_table(number: &str) -> &'static str {
    let prefix: String = number
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    match prefix.to_ascii_uppercase().as_str() {
        "RITM" => "sc_req_item",
        "REQ" => "sc_request",
        "INC" => "incident",
        "SCTASK" => "sc_task",
        _ => "change_request",
    }
}

impl ServiceNow {
    /// `base`: the instance URL (`https://example.service-now.com`); `credentials`:
    /// the secret's JSON value.
    pub fn new(base: &str, credentials: &str) -> Result<Self, PostError> {
        #[derive(Deserialize)]
        struct Raw {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
            client_id: Option<String>,
            client_secret: Option<String>,
        }
        let bad = |problem| PostError::Credentials {
            system: SN,
            problem,
        };
        let raw: Raw = serde_json::from_str(credentials).map_err(|_| bad("not a JSON object"))?;
        let auth = match raw.auth.as_deref().unwrap_or("basic") {
            "basic" => ServiceNowAuth::Basic {
                username: raw
                    .username
                    .ok_or_else(|| bad("basic auth needs username"))?,
                password: raw
                    .password
                    .ok_or_else(|| bad("basic auth needs password"))?,
            },
            "oauth" => ServiceNowAuth::OAuth {
                client_id: raw.client_id.ok_or_else(|| bad("oauth needs client_id"))?,
                client_secret: raw
                    .client_secret
                    .ok_or_else(|| bad("oauth needs client_secret"))?,
            },
            _ => return Err(bad("auth must be \"basic\" or \"oauth\"")),
        };
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: http_client(),
            auth,
            token: Mutex::new(None),
        })
    }

    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, PostError> {
        match &self.auth {
            ServiceNowAuth::Basic { username, password } => {
                Ok(request.basic_auth(username, Some(password)))
            }
            ServiceNowAuth::OAuth {
                client_id,
                client_secret,
            } => {
                let mut cached = self.token.lock().await;
                if let Some((token, until)) = cached.as_ref()
                    && Instant::now() < *until
                {
                    return Ok(request.bearer_auth(token));
                }
                let form = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", client_secret)
                    .finish();
                let answer = send(
                    SN,
                    "oauth_token",
                    self.http
                        .post(format!("{}/oauth_token.do", self.base))
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(form),
                )
                .await?;
                let token = answer["access_token"]
                    .as_str()
                    .ok_or_else(|| PostError::Unexpected {
                        system: SN,
                        operation: "oauth_token",
                        problem: "no access_token".into(),
                    })?
                    .to_owned();
                let lifetime = answer["expires_in"].as_u64().unwrap_or(1800);
                // Renewed a minute early, so a request never carries a token that dies
                // on the way.
                let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60));
                *cached = Some((token.clone(), until));
                Ok(request.bearer_auth(token))
            }
        }
    }

    async fn call(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, PostError> {
        let request = self
            .authorize(request.header("Accept", "application/json"))
            .await?;
        send(SN, operation, request).await
    }

    /// The sys_id of record `number`.
    pub async fn sys_id(&self, number: &str) -> Result<String, PostError> {
        let table = servicenow_table(number);
        let answer = self
            .call(
                "find record",
                self.http
                    .get(format!("{}/api/now/table/{table}", self.base))
                    .query(&[
                        ("sysparm_query", format!("number={number}")),
                        ("sysparm_fields", "sys_id".into()),
                        ("sysparm_limit", "1".into()),
                    ]),
            )
            .await?;
        answer["result"][0]["sys_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| PostError::NoSuchRecord {
                system: SN,
                table: table.to_owned(),
                number: number.to_owned(),
            })
    }

    /// Adds `note` as a work note to record `number`, and sets its `state` if given.
    pub async fn add_work_note(
        &self,
        number: &str,
        note: &Note,
        state: Option<&str>,
    ) -> Result<Posted, PostError> {
        let sys_id = self.sys_id(number).await?;
        let mut body = json!({ "work_notes": note.text() });
        if let Some(state) = state {
            body["state"] = json!(state);
        }
        self.call(
            "add work note",
            self.http
                .patch(format!(
                    "{}/api/now/table/{}/{sys_id}",
                    self.base,
                    servicenow_table(number)
                ))
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
        .await?;
        Ok(Posted { reference: sys_id })
    }

    /// The work notes of record `number`, oldest first.
    pub async fn work_notes(&self, number: &str) -> Result<Vec<String>, PostError> {
        let sys_id = self.sys_id(number).await?;
        let answer = self
            .call(
                "read work notes",
                self.http
                    .get(format!("{}/api/now/table/sys_journal_field", self.base))
                    .query(&[
                        (
                            "sysparm_query",
                            format!("element_id={sys_id}^element=work_notes^ORDERBYsys_created_on"),
                        ),
                        ("sysparm_fields", "value,sys_created_on".into()),
                    ]),
            )
            .await?;
        Ok(answer["result"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r["value"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A Jira Cloud site's REST API v3.
pub struct Jira {
    base: String,
    http: reqwest::Client,
    email: String,
    api_token: String,
}

impl std::fmt::Debug for Jira {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jira")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

const JIRA: &str = "Jira";

/// The most pages read of one list (100 pages of changelog is 10,000 changes): a
/// site that never says "last page" must not keep the intake reading.
const MAX_PAGES: usize = 100;

fn too_many_pages(operation: &'static str) -> PostError {
    PostError::Unexpected {
        system: JIRA,
        operation,
        problem: format!("more than {MAX_PAGES} pages"),
    }
}

/// A note in Atlassian Document Format: the headline in bold, then one paragraph per
/// line, then the marker.
pub fn adf(note: &Note) -> Value {
    let paragraph = |text: &str, bold: bool| {
        let mut node = json!({ "type": "text", "text": text });
        if bold {
            node["marks"] = json!([{ "type": "strong" }]);
        }
        json!({ "type": "paragraph", "content": [node] })
    };
    let mut content = vec![paragraph(&note.headline, true)];
    content.extend(note.lines.iter().map(|l| paragraph(l, false)));
    content.push(paragraph(&note.marker, false));
    json!({ "type": "doc", "version": 1, "content": content })
}

/// The plain text of an ADF document (paragraphs joined by new lines).
pub fn adf_text(doc: &Value) -> String {
    fn collect(node: &Value, out: &mut String) {
        if let Some(text) = node["text"].as_str() {
            out.push_str(text);
        }
        if let Some(children) = node["content"].as_array() {
            for child in children {
                collect(child, out);
            }
            if node["type"] == "paragraph" {
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    collect(doc, &mut out);
    out.trim_end().to_owned()
}

impl Jira {
    /// `base`: the site URL (`https://example.atlassian.net`); `credentials`: the
    /// secret's JSON value.
    pub fn new(base: &str, credentials: &str) -> Result<Self, PostError> {
        #[derive(Deserialize)]
        struct Raw {
            email: Option<String>,
            api_token: Option<String>,
        }
        let bad = |problem| PostError::Credentials {
            system: JIRA,
            problem,
        };
        let raw: Raw = serde_json::from_str(credentials).map_err(|_| bad("not a JSON object"))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: http_client(),
            email: raw.email.ok_or_else(|| bad("needs email"))?,
            api_token: raw.api_token.ok_or_else(|| bad("needs api_token"))?,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.email, self.api_token));
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Basic {basic}"))
            .header("Accept", "application/json")
    }

    /// Adds `note` as a comment on issue `key`.
    pub async fn add_comment(&self, key: &str, note: &Note) -> Result<Posted, PostError> {
        let answer = send(
            JIRA,
            "add comment",
            self.request(
                reqwest::Method::POST,
                &format!("/rest/api/3/issue/{key}/comment"),
            )
            .header("Content-Type", "application/json")
            .body(json!({ "body": adf(note) }).to_string()),
        )
        .await?;
        let id = answer["id"].as_str().ok_or_else(|| PostError::Unexpected {
            system: JIRA,
            operation: "add comment",
            problem: "no comment id".into(),
        })?;
        Ok(Posted {
            reference: id.to_owned(),
        })
    }

    /// Moves issue `key` through transition `transition_id`.
    pub async fn transition(&self, key: &str, transition_id: &str) -> Result<(), PostError> {
        send(
            JIRA,
            "transition",
            self.request(
                reqwest::Method::POST,
                &format!("/rest/api/3/issue/{key}/transitions"),
            )
            .header("Content-Type", "application/json")
            .body(json!({ "transition": { "id": transition_id } }).to_string()),
        )
        .await?;
        Ok(())
    }

    /// Issue `key` with its fields (`GET /rest/api/3/issue/{key}`).
    pub async fn issue(&self, key: &str) -> Result<Value, PostError> {
        send(
            JIRA,
            "read issue",
            self.request(reqwest::Method::GET, &format!("/rest/api/3/issue/{key}")),
        )
        .await
    }

    /// Every changelog history of issue `key`, oldest first, 100 per page (the
    /// vendor's maximum).
    pub async fn changelog(&self, key: &str) -> Result<Vec<Value>, PostError> {
        let mut histories = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = send(
                JIRA,
                "read changelog",
                self.request(
                    reqwest::Method::GET,
                    &format!(
                        "/rest/api/3/issue/{key}/changelog?startAt={}&maxResults=100",
                        histories.len()
                    ),
                ),
            )
            .await?;
            let values = page["values"].as_array().cloned().unwrap_or_default();
            let done = values.is_empty()
                || page["isLast"].as_bool().unwrap_or(true)
                    && page["total"]
                        .as_u64()
                        .is_none_or(|t| histories.len() as u64 + values.len() as u64 >= t);
            histories.extend(values);
            if done {
                return Ok(histories);
            }
        }
        Err(too_many_pages("read changelog"))
    }

    /// Every approval of request `key` (Jira Service Management), page by page.
    pub async fn approvals(&self, key: &str) -> Result<Vec<Value>, PostError> {
        let mut approvals = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = send(
                JIRA,
                "read approvals",
                self.request(
                    reqwest::Method::GET,
                    &format!(
                        "/rest/servicedeskapi/request/{key}/approval?start={}&limit=50",
                        approvals.len()
                    ),
                ),
            )
            .await?;
            let values = page["values"].as_array().cloned().unwrap_or_default();
            let done = values.is_empty() || page["isLastPage"].as_bool().unwrap_or(true);
            approvals.extend(values);
            if done {
                return Ok(approvals);
            }
        }
        Err(too_many_pages("read approvals"))
    }

    /// The names of the groups user `account_id` belongs to.
    pub async fn user_groups(&self, account_id: &str) -> Result<Vec<String>, PostError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("accountId", account_id)
            .finish();
        let answer = send(
            JIRA,
            "read user groups",
            self.request(
                reqwest::Method::GET,
                &format!("/rest/api/3/user/groups?{query}"),
            ),
        )
        .await?;
        let groups = answer.as_array().ok_or_else(|| PostError::Unexpected {
            system: JIRA,
            operation: "read user groups",
            problem: "not a list of groups".into(),
        })?;
        Ok(groups
            .iter()
            .filter_map(|g| g["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// The text of every comment on issue `key`, oldest first, page by page.
    pub async fn comments(&self, key: &str) -> Result<Vec<String>, PostError> {
        let mut texts = Vec::new();
        let mut start = 0u64;
        loop {
            let page = send(
                JIRA,
                "read comments",
                self.request(
                    reqwest::Method::GET,
                    &format!("/rest/api/3/issue/{key}/comment?startAt={start}&maxResults=100"),
                ),
            )
            .await?;
            let comments = page["comments"].as_array().cloned().unwrap_or_default();
            texts.extend(comments.iter().map(|c| adf_text(&c["body"])));
            start += comments.len() as u64;
            let total = page["total"].as_u64().unwrap_or(start);
            if comments.is_empty() || start >= total {
                return Ok(texts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn numbers_find_their_tables() {
        assert_eq!(servicenow_table("CHG0031337"), "change_request");
        assert_eq!(servicenow_table("RITM0010001"), "sc_req_item");
    }

    #[test]
    fn adf_round_trips_to_text() {
        let note = Note {
            headline: "h".into(),
            lines: vec!["a".into(), "b".into()],
            marker: "ticketbound:x:1".into(),
        };
        assert_eq!(adf_text(&adf(&note)), "h\na\nb\nticketbound:x:1");
    }
}
