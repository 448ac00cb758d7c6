//! The local Jira site as its people use it: raising an access request, editing it,
//! approving it, moving it through the workflow, over Jira's REST API with each
//! person's own API token (from the local Secrets Manager). What the site then
//! emitted is read back from it, so that a test delivers a webhook the site made,
//! not one built by hand.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::client::{HttpAnswer, RunningStack, call};
use crate::fixtures::jira_approval;

/// The project whose webhooks the local site does not deliver on its own (the
/// tests deliver them to intakes of their own).
pub const TEST_PROJECT: &str = "TB";
/// The project whose webhooks the local site delivers to the local intake.
pub const DEMO_PROJECT: &str = "OPS";
/// The Approvers field of the local site's requests.
pub const APPROVERS_FIELD: &str = "customfield_10003";

/// People of the local directory, by e-mail.
pub const PRIYA: &str = "priya.raman@example.com";
pub const DANA: &str = "dana.okafor@example.com";
pub const LI: &str = "li.wei@example.com";
pub const SAM: &str = "sam.agent@example.com";
pub const MALLORY: &str = "mallory.finch@example.com";

/// The accountId of a person of the local directory.
pub fn account_id(email: &str) -> String {
    let directory: Value = serde_json::from_str(crate::stack::ITSM_PEOPLE).unwrap_or(Value::Null);
    directory["jira"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["emailAddress"] == email)
        .and_then(|p| p["accountId"].as_str())
        .map_or_else(
            || panic!("{email} is not in the local directory"),
            str::to_owned,
        )
}

/// The fields of the fixtures' access request (orders-etl on orders-db, prod), for
/// `lifetime` from `now`, with the given approvers.
pub fn request_fields(now: DateTime<Utc>, lifetime: Duration, approvers: &[&str]) -> Value {
    let webhook = jira_approval(now, "TB-1", lifetime);
    let mut fields = serde_json::Map::new();
    for (name, value) in webhook["issue"]["fields"].as_object().into_iter().flatten() {
        if name.starts_with("customfield_102") || name == "summary" {
            fields.insert(name.clone(), value.clone());
        }
    }
    fields.insert(
        APPROVERS_FIELD.into(),
        approvers
            .iter()
            .map(|a| json!({ "accountId": account_id(a) }))
            .collect(),
    );
    Value::Object(fields)
}

/// The local Jira site, and the tokens of its people.
#[derive(Debug, Clone)]
pub struct JiraDesk {
    url: String,
    tokens: Value,
}

impl RunningStack {
    /// The local Jira site.
    pub async fn jira_desk(&self) -> JiraDesk {
        let tokens = self
            .secret_value(&self.local.itsm_credentials.jira_people)
            .await;
        JiraDesk {
            url: self.local.jira_url(),
            tokens: serde_json::from_str(&tokens).unwrap_or(Value::Null),
        }
    }
}

impl JiraDesk {
    /// The site at `url` (`…/itsm/jira`), with the people's tokens of `other` (for a
    /// stack whose host moved).
    pub fn at(url: String, other: &JiraDesk) -> Self {
        Self {
            url,
            tokens: other.tokens.clone(),
        }
    }

    /// The site URL (`…/itsm/jira`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A request to the site as `who` (a person of the directory).
    pub async fn call(
        &self,
        who: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> HttpAnswer {
        match self.try_call(who, method, path, body).await {
            Ok(a) => a,
            Err(e) => panic!("the local Jira site did not answer {method} {path}: {e}"),
        }
    }

    /// [`Self::call`], with the connection's failure for the caller to handle.
    pub async fn try_call(
        &self,
        who: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<HttpAnswer> {
        let token = self.tokens[who].as_str().unwrap_or_default();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{who}:{token}"));
        self.try_call_with(&format!("Basic {basic}"), method, path, body)
            .await
    }

    /// A request to the site with the given Authorization header.
    pub async fn call_with(
        &self,
        authorization: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> HttpAnswer {
        match self.try_call_with(authorization, method, path, body).await {
            Ok(a) => a,
            Err(e) => panic!("the local Jira site did not answer {method} {path}: {e}"),
        }
    }

    async fn try_call_with(
        &self,
        authorization: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<HttpAnswer> {
        let (origin, prefix) = split_url(&self.url);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let headers = [
            ("Authorization", authorization.to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        call(method, origin, &format!("{prefix}{path}"), &headers, &bytes).await
    }

    /// `reporter` raises a request in `project` with `fields`; its key.
    pub async fn raise(&self, reporter: &str, project: &str, fields: &Value) -> String {
        let mut fields = fields.clone();
        fields["project"] = json!({ "key": project });
        let created = self
            .call(
                reporter,
                "POST",
                "/rest/api/3/issue",
                Some(&json!({ "fields": fields })),
            )
            .await;
        assert_eq!(created.status, 201, "raise: {}", created.body);
        created.json()["key"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("raise: no key in {}", created.body))
    }

    /// `who` edits fields of `key`.
    pub async fn edit(&self, who: &str, key: &str, fields: &Value) -> HttpAnswer {
        self.call(
            who,
            "PUT",
            &format!("/rest/api/3/issue/{key}"),
            Some(&json!({ "fields": fields })),
        )
        .await
    }

    /// `who` moves `key` through transition `id` (11 Waiting for approval, 21
    /// Approved, 31 In Progress, 41 Cancelled, 51 Done).
    pub async fn transition(&self, who: &str, key: &str, id: &str) -> HttpAnswer {
        self.call(
            who,
            "POST",
            &format!("/rest/api/3/issue/{key}/transitions"),
            Some(&json!({ "transition": { "id": id } })),
        )
        .await
    }

    /// `who` answers the open approval of `key` (`approve` or `decline`).
    pub async fn decide(&self, who: &str, key: &str, decision: &str) -> HttpAnswer {
        let approvals = self
            .call(
                who,
                "GET",
                &format!("/rest/servicedeskapi/request/{key}/approval"),
                None,
            )
            .await
            .json();
        let open = approvals["values"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .find(|a| a["finalDecision"] == "pending")
            .and_then(|a| a["id"].as_str())
            .unwrap_or("none")
            .to_owned();
        self.call(
            who,
            "POST",
            &format!("/rest/servicedeskapi/request/{key}/approval/{open}"),
            Some(&json!({ "decision": decision })),
        )
        .await
    }

    /// Every webhook body the site generated for `key`, oldest first.
    pub async fn webhooks(&self, key: &str) -> Vec<Value> {
        let answer = self
            .call(PRIYA, "GET", &format!("/_standin/webhooks/{key}"), None)
            .await;
        answer.json()["webhooks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The last webhook of `key` that changed its status.
    pub async fn last_status_webhook(&self, key: &str) -> Value {
        self.webhooks(key)
            .await
            .into_iter()
            .rev()
            .find(|w| {
                w["changelog"]["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|i| i["fieldId"] == "status")
            })
            .unwrap_or_else(|| panic!("{key} never changed status"))
    }

    /// The fixtures' request raised by Priya in `project` (after `tweak` of its
    /// fields) and approved by Dana and Li: its key and the webhook of its approval.
    pub async fn approved(
        &self,
        project: &str,
        now: DateTime<Utc>,
        lifetime: Duration,
        tweak: impl FnOnce(&mut Value),
    ) -> (String, Value) {
        self.approved_by(project, now, lifetime, &[DANA, LI], tweak)
            .await
    }

    /// [`Self::approved`], with `approvers` in the Approvers field, each approving.
    pub async fn approved_by(
        &self,
        project: &str,
        now: DateTime<Utc>,
        lifetime: Duration,
        approvers: &[&str],
        tweak: impl FnOnce(&mut Value),
    ) -> (String, Value) {
        let mut fields = request_fields(now, lifetime, approvers);
        tweak(&mut fields);
        let key = self.raise(PRIYA, project, &fields).await;
        for approver in approvers {
            let answer = self.decide(approver, &key, "approve").await;
            assert_eq!(
                answer.status, 200,
                "{approver} approves {key}: {}",
                answer.body
            );
        }
        let webhook = self.last_status_webhook(&key).await;
        (key, webhook)
    }
}

/// `http://host:port/a/b` → (`http://host:port`, `/a/b`).
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.trim_start_matches("http://");
    match rest.find('/') {
        Some(i) => url.split_at(url.len() - rest.len() + i),
        None => (url, ""),
    }
}
