//! A Jira Service Management site that keeps its issues, for the local stack: people
//! raise access requests, edit them, approve them and move them through the workflow
//! over Jira's REST API v3 and JSM's approval API, and the site emits the signed
//! `jira:issue_updated` webhooks a real site would (with the changelog of the update).
//! ticketbound's accounts use it as they use Jira: the write-back comments and
//! transitions, the intake only reads (the issue, the changelog page by page, the
//! approvals, an approver's groups).
//!
//! What it keeps, in the vendor's shapes:
//! - issues with their fields (custom fields as given), status, reporter and
//!   creator, and a changelog entry for every field edit and status change;
//! - JSM approvals: one opens when an issue enters "Waiting for approval", naming the
//!   people of the Approvers field (`customfield_10003`); it is approved when all of
//!   them approve and declined when one declines, and the issue then moves to
//!   "Approved" or "Declined" on its own, as JSM's workflow does;
//! - people and their groups, from the checked-in directory, with API tokens kept in the
//!   local Secrets Manager (`crate::stack::ITSM_PEOPLE`).
//!
//! Not a Jira: no JQL, no screens or field configuration, no permissions beyond
//! "ticketbound's reader may only read, its write-back may comment and transition, a
//! person may do what a person does, and only a named approver may decide".

// The handlers answer either way with an HTTP response, served at once; boxing
// the refusal would only add noise to a stand-in.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use ticketbound_runtime::ExposeSecret;
use ticketbound_secrets::SecretCache;
use tokio::sync::Mutex;

use crate::itsm::{Answer, answer, jira_error, keep, query_value, secret_json};

/// A person of the stand-in's directory.
#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    #[serde(rename = "accountId")]
    pub account_id: String,
    #[serde(rename = "emailAddress")]
    pub email: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub groups: Vec<String>,
}

/// The stand-in's people (checked in; their tokens are made by `local up`).
pub fn people() -> Vec<Person> {
    #[derive(Deserialize)]
    struct Directory {
        jira: Vec<Person>,
    }
    serde_json::from_str::<Directory>(crate::stack::ITSM_PEOPLE)
        .map(|d| d.jira)
        .unwrap_or_default()
}

/// The Jira field JSM keeps the approvers of a request in.
pub const APPROVERS_FIELD: &str = "customfield_10003";
/// The field the webhook and the issue show approvals in (the mapping's default).
const APPROVALS_FIELD: &str = "customfield_10002";

/// The workflow's transitions, by id: any status may take any of them (a global
/// transition each, as many service desk workflows have).
const TRANSITIONS: &[(&str, &str)] = &[
    ("11", "Waiting for approval"),
    ("21", "Approved"),
    ("31", "In Progress"),
    ("41", "Cancelled"),
    ("51", "Done"),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Issue {
    id: String,
    key: String,
    fields: Map<String, Value>,
    status: String,
    reporter: String,
    creator: String,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    histories: Vec<Value>,
    approvals: Vec<Approval>,
    comments: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Approval {
    id: String,
    /// (accountId, decision: pending | approved | declined)
    approvers: Vec<(String, String)>,
    final_decision: String,
    created: DateTime<Utc>,
    completed: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    issues: BTreeMap<String, Issue>,
    next_issue: u64,
    next_history: u64,
    next_approval: u64,
    next_comment: u64,
    /// Every webhook body the site generated, per issue, oldest first.
    webhooks: BTreeMap<String, Vec<Value>>,
}

/// Where the site delivers its webhooks (as a Jira administrator configures one):
/// the URL, the secret it signs with, and the projects whose issues it covers.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret_id: String,
    pub projects: Vec<String>,
}

/// Who is calling.
#[derive(Debug, Clone)]
enum Caller {
    /// The intake's account: GET only.
    Reader(Value),
    /// The write-back's account: GET, comments and transitions.
    WriteBack(Value),
    Person(Person),
}

impl Caller {
    fn user(&self) -> Value {
        match self {
            Self::Reader(u) | Self::WriteBack(u) => u.clone(),
            Self::Person(p) => user_json(p),
        }
    }
}

pub struct JiraSite {
    state: Mutex<State>,
    file: PathBuf,
    secrets: Arc<SecretCache>,
    writeback_secret: String,
    reader_secret: String,
    people_secret: String,
    webhook: Option<WebhookTarget>,
    http: reqwest::Client,
}

impl std::fmt::Debug for JiraSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraSite")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

fn user_json(p: &Person) -> Value {
    json!({
        "self": format!("/rest/api/3/user?accountId={}", p.account_id),
        "accountId": p.account_id,
        "emailAddress": p.email,
        "displayName": p.display_name,
        "active": true,
        "accountType": "atlassian",
    })
}

fn service_user(email: &str, name: &str) -> Value {
    json!({
        "accountId": format!("service:{email}"),
        "emailAddress": email,
        "displayName": name,
        "active": true,
        "accountType": "app",
    })
}

fn jira_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn date_json(t: DateTime<Utc>) -> Value {
    json!({
        "iso8601": t.format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
        "jira": jira_time(t),
        "friendly": t.format("%d/%b/%y %l:%M %p").to_string(),
        "epochMillis": t.timestamp_millis(),
    })
}

fn forbidden(what: &str) -> Answer {
    jira_error(
        http::StatusCode::FORBIDDEN,
        &format!("You do not have permission to {what}."),
    )
}

fn no_content() -> Answer {
    let mut r = answer(http::StatusCode::NO_CONTENT, &Value::Null);
    *r.body_mut() = http_body_util::Full::new(bytes::Bytes::new());
    r
}

fn page_of(query: &str, start: &str, size: &str, default: usize) -> (usize, usize) {
    let start = query_value(query, start)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let size = query_value(query, size)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .clamp(1, 100);
    (start, size)
}

impl JiraSite {
    pub fn new(
        file: PathBuf,
        secrets: Arc<SecretCache>,
        credentials: &crate::stack::ItsmCredentials,
        webhook: Option<WebhookTarget>,
    ) -> Self {
        let state = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            state: Mutex::new(state),
            file,
            secrets,
            writeback_secret: credentials.jira.clone(),
            reader_secret: credentials.jira_reader.clone(),
            people_secret: credentials.jira_people.clone(),
            webhook,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    fn save(&self, state: &State) {
        keep(&self.file, state);
    }

    async fn secret_json(&self, id: &str) -> Value {
        secret_json(&self.secrets, id).await
    }

    /// The caller of a request, from its basic credentials (e-mail and API token).
    async fn caller(&self, parts: &http::request::Parts) -> Option<Caller> {
        let given = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())?
            .strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(given.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (email, token) = decoded.split_once(':')?;
        let matches = |creds: &Value| {
            !creds.is_null()
                && creds["email"].as_str() == Some(email)
                && creds["api_token"].as_str() == Some(token)
        };
        if matches(&self.secret_json(&self.reader_secret).await) {
            return Some(Caller::Reader(service_user(email, "ticketbound (reader)")));
        }
        if matches(&self.secret_json(&self.writeback_secret).await) {
            return Some(Caller::WriteBack(service_user(email, "ticketbound")));
        }
        let tokens = self.secret_json(&self.people_secret).await;
        if tokens[email].as_str() == Some(token) {
            return people()
                .into_iter()
                .find(|p| p.email == email)
                .map(Caller::Person);
        }
        None
    }

    /// Serves one request under `/itsm/jira`.
    pub async fn serve(
        &self,
        parts: &http::request::Parts,
        rest: &str,
        query: &str,
        body: &[u8],
    ) -> Answer {
        let Some(caller) = self.caller(parts).await else {
            return jira_error(
                http::StatusCode::UNAUTHORIZED,
                "Client must be authenticated to access this resource.",
            );
        };
        let method = parts.method.as_str();
        if method != "GET" && matches!(caller, Caller::Reader(_)) {
            return forbidden("change anything on this site");
        }
        let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let request: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => {
                    return jira_error(http::StatusCode::BAD_REQUEST, "Invalid request payload.");
                }
            }
        };
        let mut state = self.state.lock().await;
        let now = Utc::now();
        let result = match (method, segments.as_slice()) {
            ("POST", ["rest", "api", "3", "issue"]) => {
                self.create(&mut state, &caller, &request, now)
            }
            ("GET", ["rest", "api", "3", "issue", key]) => match state.issues.get(*key) {
                Some(issue) => Ok(answer(http::StatusCode::OK, &issue_json(issue))),
                None => Err(not_found()),
            },
            ("PUT", ["rest", "api", "3", "issue", key]) => {
                self.edit(&mut state, &caller, key, &request, now)
            }
            ("GET", ["rest", "api", "3", "issue", key, "changelog"]) => state
                .issues
                .get(*key)
                .map(|i| changelog_page(i, query))
                .ok_or_else(not_found),
            ("POST", ["rest", "api", "3", "issue", key, "transitions"]) => {
                self.transition(&mut state, &caller, key, &request, now)
            }
            ("POST", ["rest", "api", "3", "issue", key, "comment"]) => {
                self.comment(&mut state, &caller, key, &request, now)
            }
            ("GET", ["rest", "api", "3", "issue", key, "comment"]) => state
                .issues
                .get(*key)
                .map(|i| comment_page(i, query))
                .ok_or_else(not_found),
            ("GET", ["rest", "servicedeskapi", "request", key, "approval"]) => state
                .issues
                .get(*key)
                .map(|i| approval_page(i, query))
                .ok_or_else(not_found),
            ("POST", ["rest", "servicedeskapi", "request", key, "approval", id]) => {
                self.decide(&mut state, &caller, key, id, &request, now)
            }
            ("GET", ["rest", "api", "3", "user", "groups"]) => {
                let id = query_value(query, "accountId").unwrap_or_default();
                match people().into_iter().find(|p| p.account_id == id) {
                    Some(p) => {
                        let groups: Vec<Value> = p
                            .groups
                            .iter()
                            .map(|g| json!({ "name": g, "groupId": format!("group-{g}") }))
                            .collect();
                        Ok(answer(http::StatusCode::OK, &Value::Array(groups)))
                    }
                    None => Err(jira_error(
                        http::StatusCode::NOT_FOUND,
                        "The user with the given accountId does not exist.",
                    )),
                }
            }
            // Not Jira's: the webhook bodies the site generated for an issue, as its
            // administration pages would show them, for tests that deliver them to an
            // intake of their own.
            ("GET", ["_standin", "webhooks", key]) => Ok(answer(
                http::StatusCode::OK,
                &json!({ "webhooks": state.webhooks.get(*key).cloned().unwrap_or_default() }),
            )),
            _ => Err(jira_error(http::StatusCode::NOT_FOUND, "Not Found")),
        };
        match result {
            Ok(a) => a,
            Err(a) => a,
        }
    }

    fn create(
        &self,
        state: &mut State,
        caller: &Caller,
        request: &Value,
        now: DateTime<Utc>,
    ) -> Result<Answer, Answer> {
        let Caller::Person(person) = caller else {
            return Err(forbidden("create issues"));
        };
        let Some(fields) = request["fields"].as_object() else {
            return Err(bad("fields", "Field 'fields' is required."));
        };
        let Some(project) = fields
            .get("project")
            .and_then(|p| p["key"].as_str())
            .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_uppercase()))
        else {
            return Err(bad("project", "Specify a valid project ID or key"));
        };
        let approvers = approver_ids(fields.get(APPROVERS_FIELD))?;
        // Raised on someone's behalf when the reporter is given (an agent's request).
        let reporter = match fields.get("reporter").and_then(|r| r["accountId"].as_str()) {
            Some(id) => {
                people()
                    .into_iter()
                    .find(|p| p.account_id == id)
                    .ok_or_else(|| bad("reporter", "The reporter specified is not a user."))?
                    .account_id
            }
            None => person.account_id.clone(),
        };
        state.next_issue += 1;
        let number = state.next_issue;
        let key = format!("{project}-{number}");
        let mut stored: Map<String, Value> = fields.clone();
        stored.remove("reporter");
        stored.remove("project");
        stored.insert("project".into(), json!({ "key": project }));
        let mut issue = Issue {
            id: (10_000 + number).to_string(),
            key: key.clone(),
            fields: stored,
            status: "Waiting for approval".into(),
            reporter,
            creator: person.account_id.clone(),
            created: now,
            updated: now,
            histories: Vec::new(),
            approvals: Vec::new(),
            comments: Vec::new(),
        };
        open_approval(state, &mut issue, approvers, now);
        let created = json!({ "id": issue.id, "key": key, "self": format!("/rest/api/3/issue/{}", issue.id) });
        state.issues.insert(key, issue);
        self.save(state);
        Ok(answer(http::StatusCode::CREATED, &created))
    }

    fn edit(
        &self,
        state: &mut State,
        caller: &Caller,
        key: &str,
        request: &Value,
        now: DateTime<Utc>,
    ) -> Result<Answer, Answer> {
        if !matches!(caller, Caller::Person(_)) {
            return Err(forbidden("edit issues"));
        }
        let Some(fields) = request["fields"].as_object() else {
            return Err(bad("fields", "Field 'fields' is required."));
        };
        let history_id = next(&mut state.next_history);
        let issue = state.issues.get_mut(key).ok_or_else(not_found)?;
        let mut items = Vec::new();
        for (name, value) in fields {
            if name == "project" || name == "reporter" {
                return Err(bad(
                    name,
                    "Field cannot be set. It is not on the appropriate screen.",
                ));
            }
            let before = issue.fields.get(name).cloned().unwrap_or(Value::Null);
            if before != *value {
                items.push(json!({
                    "field": name,
                    "fieldtype": if name.starts_with("customfield_") { "custom" } else { "jira" },
                    "fieldId": name,
                    "from": null,
                    "fromString": display(&before),
                    "to": null,
                    "toString": display(value),
                }));
                issue.fields.insert(name.clone(), value.clone());
            }
        }
        if items.is_empty() {
            return Ok(no_content());
        }
        let history = json!({
            "id": history_id,
            "author": caller.user(),
            "created": jira_time(now),
            "items": items,
        });
        issue.histories.push(history.clone());
        issue.updated = now;
        let issue = issue.clone();
        self.emit(state, &issue, caller.user(), &history, now);
        self.save(state);
        Ok(no_content())
    }

    fn transition(
        &self,
        state: &mut State,
        caller: &Caller,
        key: &str,
        request: &Value,
        now: DateTime<Utc>,
    ) -> Result<Answer, Answer> {
        let Some(id) = request["transition"]["id"].as_str() else {
            return Err(bad("transition", "Missing transition id."));
        };
        let Some((_, to)) = TRANSITIONS.iter().find(|(t, _)| *t == id) else {
            return Err(bad(
                "transition",
                "Transition id is not valid for this issue.",
            ));
        };
        if !state.issues.contains_key(key) {
            return Err(not_found());
        }
        self.change_status(state, key, to, caller.user(), now);
        if *to == "Waiting for approval" {
            let mut issue = state.issues.get(key).cloned().ok_or_else(not_found)?;
            let approvers = approver_ids(issue.fields.get(APPROVERS_FIELD))?;
            open_approval(state, &mut issue, approvers, now);
            state.issues.insert(key.to_owned(), issue);
        }
        self.save(state);
        Ok(no_content())
    }

    fn comment(
        &self,
        state: &mut State,
        caller: &Caller,
        key: &str,
        request: &Value,
        now: DateTime<Utc>,
    ) -> Result<Answer, Answer> {
        if request["body"]["type"] != "doc" {
            return Err(jira_error(
                http::StatusCode::BAD_REQUEST,
                "Comment body is not valid! (Atlassian Document Format expected)",
            ));
        }
        state.next_comment += 1;
        let id = (10_000 + state.next_comment).to_string();
        let issue = state.issues.get_mut(key).ok_or_else(not_found)?;
        let comment = json!({
            "id": id,
            "self": format!("/rest/api/3/issue/{key}/comment/{id}"),
            "author": caller.user(),
            "body": request["body"],
            "created": jira_time(now),
        });
        issue.comments.push(comment.clone());
        self.save(state);
        Ok(answer(http::StatusCode::CREATED, &comment))
    }

    fn decide(
        &self,
        state: &mut State,
        caller: &Caller,
        key: &str,
        approval_id: &str,
        request: &Value,
        now: DateTime<Utc>,
    ) -> Result<Answer, Answer> {
        let Caller::Person(person) = caller else {
            return Err(forbidden("answer approvals"));
        };
        let decision = match request["decision"].as_str() {
            Some("approve") => "approved",
            Some("decline") => "declined",
            _ => return Err(bad("decision", "The decision must be approve or decline.")),
        };
        let issue = state.issues.get_mut(key).ok_or_else(not_found)?;
        let Some(approval) = issue.approvals.iter_mut().find(|a| a.id == approval_id) else {
            return Err(jira_error(
                http::StatusCode::NOT_FOUND,
                "The approval does not exist.",
            ));
        };
        if approval.final_decision != "pending" {
            return Err(bad("decision", "This approval has already been decided."));
        }
        let Some(mine) = approval
            .approvers
            .iter_mut()
            .find(|(id, _)| *id == person.account_id)
        else {
            return Err(forbidden("answer this approval"));
        };
        decision.clone_into(&mut mine.1);
        let outcome = if approval.approvers.iter().any(|(_, d)| d == "declined") {
            Some(("declined", "Declined"))
        } else if approval.approvers.iter().all(|(_, d)| d == "approved") {
            Some(("approved", "Approved"))
        } else {
            None
        };
        if let Some((final_decision, _)) = outcome {
            final_decision.clone_into(&mut approval.final_decision);
            approval.completed = Some(now);
        }
        let shown = approval_json(approval);
        if let Some((_, status)) = outcome {
            self.change_status(state, key, status, caller.user(), now);
        }
        self.save(state);
        Ok(answer(http::StatusCode::OK, &shown))
    }

    /// Moves `key` to `status` (a changelog entry, and the webhook).
    fn change_status(
        &self,
        state: &mut State,
        key: &str,
        status: &str,
        user: Value,
        now: DateTime<Utc>,
    ) {
        let history_id = next(&mut state.next_history);
        let Some(issue) = state.issues.get_mut(key) else {
            return;
        };
        let history = json!({
            "id": history_id,
            "author": user,
            "created": jira_time(now),
            "items": [{
                "field": "status",
                "fieldtype": "jira",
                "fieldId": "status",
                "from": status_id(&issue.status),
                "fromString": issue.status,
                "to": status_id(status),
                "toString": status,
            }],
        });
        status.clone_into(&mut issue.status);
        issue.updated = now;
        issue.histories.push(history.clone());
        let issue = issue.clone();
        self.emit(state, &issue, user, &history, now);
    }

    /// Records the `jira:issue_updated` webhook of `history`, and delivers it (signed,
    /// retried as Jira retries) when the issue's project is configured for it.
    fn emit(
        &self,
        state: &mut State,
        issue: &Issue,
        user: Value,
        history: &Value,
        now: DateTime<Utc>,
    ) {
        let body = json!({
            "timestamp": now.timestamp_millis(),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": user,
            "issue": issue_json(issue),
            "changelog": { "id": history["id"], "items": history["items"] },
        });
        state
            .webhooks
            .entry(issue.key.clone())
            .or_default()
            .push(body.clone());
        let Some(target) = self.webhook.clone() else {
            return;
        };
        let project = issue.key.split('-').next().unwrap_or_default();
        if !target.projects.iter().any(|p| p == project) {
            return;
        }
        let http = self.http.clone();
        let secrets = Arc::clone(&self.secrets);
        let delivery = ulid::Ulid::new().to_string();
        tokio::spawn(async move {
            deliver(http, secrets, target, delivery, body).await;
        });
    }
}

/// One webhook delivery: up to five attempts, backing off, while the receiver answers
/// 429 or 5xx or cannot be reached (Jira's documented retry behaviour).
async fn deliver(
    http: reqwest::Client,
    secrets: Arc<SecretCache>,
    target: WebhookTarget,
    delivery: String,
    body: Value,
) {
    let bytes = body.to_string().into_bytes();
    for attempt in 0..5u32 {
        let secret = match secrets.get(&target.secret_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the Jira stand-in cannot read its webhook secret");
                return;
            }
        };
        let signature =
            ticketbound_itsm::auth::hub_signature(secret.expose_secret().as_bytes(), &bytes);
        let sent = http
            .post(&target.url)
            .header("Content-Type", "application/json; charset=UTF-8")
            .header("User-Agent", "Atlassian Webhook HTTP Client")
            .header("X-Atlassian-Webhook-Identifier", &delivery)
            .header("X-Hub-Signature", signature)
            .body(bytes.clone())
            .send()
            .await;
        match sent {
            Ok(r)
                if r.status().is_success()
                    || (r.status().is_client_error() && r.status() != 429) =>
            {
                tracing::info!(
                    delivery,
                    status = r.status().as_u16(),
                    "Jira stand-in delivered a webhook"
                );
                return;
            }
            Ok(r) => tracing::warn!(
                delivery,
                status = r.status().as_u16(),
                attempt,
                "webhook delivery failed; retrying"
            ),
            Err(e) => {
                tracing::warn!(delivery, error = %e, attempt, "webhook delivery failed; retrying")
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
    }
}

fn next(counter: &mut u64) -> String {
    *counter += 1;
    counter.to_string()
}

fn bad(field: &str, message: &str) -> Answer {
    answer(
        http::StatusCode::BAD_REQUEST,
        &json!({ "errorMessages": [], "errors": { field: message } }),
    )
}

fn not_found() -> Answer {
    jira_error(
        http::StatusCode::NOT_FOUND,
        "Issue does not exist or you do not have permission to see it.",
    )
}

fn status_id(status: &str) -> String {
    let n = TRANSITIONS
        .iter()
        .position(|(_, s)| *s == status)
        .map_or(99, |i| i + 1);
    (10_000 + n).to_string()
}

/// The people of an Approvers field (`[{"accountId": …}]`), each a known person.
fn approver_ids(field: Option<&Value>) -> Result<Vec<String>, Answer> {
    let list = field.and_then(Value::as_array).cloned().unwrap_or_default();
    if list.is_empty() {
        return Err(bad(APPROVERS_FIELD, "Approvers is required."));
    }
    let known = people();
    list.iter()
        .map(|v| {
            v["accountId"]
                .as_str()
                .filter(|id| known.iter().any(|p| p.account_id == *id))
                .map(str::to_owned)
                .ok_or_else(|| bad(APPROVERS_FIELD, "An approver is not a user."))
        })
        .collect()
}

fn open_approval(state: &mut State, issue: &mut Issue, approvers: Vec<String>, now: DateTime<Utc>) {
    let id = next(&mut state.next_approval);
    issue.approvals.push(Approval {
        id,
        approvers: approvers
            .into_iter()
            .map(|a| (a, "pending".to_owned()))
            .collect(),
        final_decision: "pending".into(),
        created: now,
        completed: None,
    });
}

fn person_json(account_id: &str) -> Value {
    people()
        .iter()
        .find(|p| p.account_id == account_id)
        .map_or_else(|| json!({ "accountId": account_id }), user_json)
}

fn approval_json(a: &Approval) -> Value {
    let mut v = json!({
        "id": a.id,
        "name": "Waiting for approval",
        "finalDecision": a.final_decision,
        "canAnswerApproval": a.final_decision == "pending",
        "approvers": a.approvers.iter().map(|(id, d)| json!({
            "approver": person_json(id),
            "approverDecision": d,
        })).collect::<Vec<_>>(),
        "createdDate": date_json(a.created),
    });
    if let Some(done) = a.completed {
        v["completedDate"] = date_json(done);
    }
    v
}

fn issue_json(issue: &Issue) -> Value {
    let mut fields = issue.fields.clone();
    fields.insert(
        "status".into(),
        json!({ "name": issue.status, "id": status_id(&issue.status) }),
    );
    fields.insert("reporter".into(), person_json(&issue.reporter));
    fields.insert("creator".into(), person_json(&issue.creator));
    fields.insert("created".into(), jira_time(issue.created).into());
    fields.insert("updated".into(), jira_time(issue.updated).into());
    fields.insert(
        APPROVALS_FIELD.into(),
        issue.approvals.iter().map(approval_json).collect(),
    );
    if let Some(approvers) = issue.fields.get(APPROVERS_FIELD).and_then(Value::as_array) {
        let shown: Vec<Value> = approvers
            .iter()
            .filter_map(|a| a["accountId"].as_str())
            .map(person_json)
            .collect();
        fields.insert(APPROVERS_FIELD.into(), shown.into());
    }
    json!({
        "id": issue.id,
        "key": issue.key,
        "self": format!("/rest/api/3/issue/{}", issue.id),
        "fields": fields,
    })
}

fn changelog_page(issue: &Issue, query: &str) -> Answer {
    let (start, max) = page_of(query, "startAt", "maxResults", 100);
    let values: Vec<Value> = issue
        .histories
        .iter()
        .skip(start)
        .take(max)
        .cloned()
        .collect();
    let total = issue.histories.len();
    answer(
        http::StatusCode::OK,
        &json!({
            "self": format!("/rest/api/3/issue/{}/changelog?startAt={start}&maxResults={max}", issue.key),
            "maxResults": max,
            "startAt": start,
            "total": total,
            "isLast": start + values.len() >= total,
            "values": values,
        }),
    )
}

fn comment_page(issue: &Issue, query: &str) -> Answer {
    let (start, max) = page_of(query, "startAt", "maxResults", 50);
    let page: Vec<Value> = issue
        .comments
        .iter()
        .skip(start)
        .take(max)
        .cloned()
        .collect();
    answer(
        http::StatusCode::OK,
        &json!({ "startAt": start, "maxResults": max, "total": issue.comments.len(), "comments": page }),
    )
}

fn approval_page(issue: &Issue, query: &str) -> Answer {
    let (start, limit) = page_of(query, "start", "limit", 50);
    let values: Vec<Value> = issue
        .approvals
        .iter()
        .skip(start)
        .take(limit)
        .map(approval_json)
        .collect();
    answer(
        http::StatusCode::OK,
        &json!({
            "size": values.len(),
            "start": start,
            "limit": limit,
            "isLastPage": start + values.len() >= issue.approvals.len(),
            "values": values,
        }),
    )
}

/// How Jira's changelog shows a value.
fn display(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(s) => s.clone().into(),
        Value::Object(o) => o
            .get("value")
            .or_else(|| o.get("name"))
            .cloned()
            .unwrap_or_else(|| v.to_string().into()),
        Value::Array(items) => items
            .iter()
            .map(|i| match display(i) {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
            .into(),
        other => other.to_string().into(),
    }
}
