//! The intake reads every Jira approval back from Jira before it records anything.
//! People raise and approve requests on the local Jira site (its REST API, their own
//! tokens); the site makes the webhooks; the tests deliver them, signed, to an intake
//! whose read-back uses ticketbound's read-only account. Each attack a hostile sender
//! (or a careless workflow) would try is refused, and nothing is written for it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use aws_lambda_events::encodings::Body;
use chrono::{Duration, Utc};
use itsm_intake::{Deps, IntakeEvent, IntakeResponse, handle};
use serde_json::{Value, json};
use ticketbound_domain::Detail;
use ticketbound_domain::{AuditAction, Verification};
use ticketbound_itsm::auth;
use ticketbound_runtime::EnvReader;
use ticketbound_testkit::jira_desk::{
    DANA, JiraDesk, LI, MALLORY, PRIYA, SAM, TEST_PROJECT, account_id, request_fields,
};
use ticketbound_testkit::{TestStack, fixture_json};

const JIRA_SECRET: &str = "jira-webhook-secret-for-the-read-back-tests";

/// orders-db is prod and approved by the DBAs; billing-db takes any approver.
const TARGETS: &str = r#"{
    "orders-db": {"connector": "postgres", "environment": "prod",
                  "approvers": {"groups": ["dba-approvers"]}},
    "billing-db": {"connector": "postgres", "environment": "non-prod"}
}"#;

struct Harness {
    stack: TestStack,
    deps: Deps,
    desk: JiraDesk,
}

async fn harness_with(read_back: bool) -> Harness {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let registry = stack.seeded_registry().await;
    let secret = stack.create_secret("jira", JIRA_SECRET).await;
    let mut vars: Vec<(String, String)> = vec![
        ("TICKETBOUND_GRANTS_TABLE".into(), tables.grants.clone()),
        ("TICKETBOUND_AUDIT_TABLE".into(), tables.audit.clone()),
        (
            "TICKETBOUND_IDENTITIES_TABLE".into(),
            registry.table().to_owned(),
        ),
        ("TICKETBOUND_JIRA_SECRET_ID".into(), secret),
        ("TICKETBOUND_TARGETS".into(), TARGETS.into()),
    ];
    if read_back {
        vars.push(("TICKETBOUND_JIRA_API_URL".into(), stack.local.jira_url()));
        vars.push((
            "TICKETBOUND_JIRA_READ_SECRET_ID".into(),
            stack.local.itsm_credentials.jira_reader.clone(),
        ));
    }
    let deps = Deps::from_env(&stack.sdk, EnvReader::from_map(vars)).unwrap();
    let desk = stack.jira_desk().await;
    Harness { stack, deps, desk }
}

async fn harness() -> Harness {
    harness_with(true).await
}

/// `body` delivered to `/jira` as Jira delivers it (signed, with a delivery id).
async fn deliver(h: &Harness, body: &Value) -> (i64, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut envelope = fixture_json("http/function-url-request.json");
    envelope["body"] = String::from_utf8(bytes.clone()).unwrap().into();
    let headers = envelope["headers"].as_object_mut().unwrap();
    headers.insert(
        "x-hub-signature".into(),
        auth::hub_signature(JIRA_SECRET.as_bytes(), &bytes).into(),
    );
    headers.insert(
        "x-atlassian-webhook-identifier".into(),
        ulid::Ulid::new().to_string().into(),
    );
    let event: IntakeEvent = serde_json::from_value(envelope).unwrap();
    match handle(&h.deps, event).await.unwrap() {
        IntakeResponse::Http(r) => {
            let body = match r.body {
                Some(Body::Text(t)) => serde_json::from_str(&t).unwrap(),
                other => panic!("unexpected body {other:?}"),
            };
            (r.status_code, body)
        }
        IntakeResponse::Event(_) => panic!("an HTTP event answers HTTP"),
    }
}

async fn grants_written(h: &Harness) -> usize {
    let tables = h.deps.store.tables();
    let scan = h
        .stack
        .dynamodb()
        .scan()
        .table_name(&tables.grants)
        .send()
        .await
        .unwrap();
    scan.items().len()
}

fn fields_of(out: &Value) -> Vec<String> {
    out["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn an_approval_the_itsm_holds_is_recorded_as_verified() {
    let h = harness().await;
    let (key, webhook) = h
        .desk
        .approved(TEST_PROJECT, Utc::now(), Duration::hours(4), |_| {})
        .await;
    let (status, out) = deliver(&h, &webhook).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["state"], "approved", "{out}");
    let grant = h
        .deps
        .store
        .get_grant(out["grant_id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.request.ticket.key.as_str(), key);
    assert_eq!(grant.request.verification, Verification::ItsmApi);
    let approvers: Vec<String> = grant
        .request
        .approvals
        .iter()
        .map(|a| a.approver.to_string())
        .collect();
    assert_eq!(approvers, [DANA, LI]);
    assert!(grant.request.approvals.iter().all(|a| a.counts()));
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    let requested = trail
        .iter()
        .find(|e| e.action == AuditAction::Requested)
        .unwrap();
    assert_eq!(
        requested.details[Detail::VerifiedAgainst.as_str()],
        "itsm_api"
    );
    let evaluated = trail
        .iter()
        .find(|e| e.action == AuditAction::PolicyEvaluated)
        .unwrap();
    assert_eq!(
        evaluated.details[Detail::PolicySetSha256.as_str()],
        h.deps.policy.get().unwrap().policy_set_sha256()
    );
}

#[tokio::test]
async fn a_signed_webhook_claiming_what_the_itsm_does_not_hold_is_refused() {
    let h = harness().await;
    let now = Utc::now();
    let (_, genuine) = h
        .desk
        .approved(TEST_PROJECT, now, Duration::hours(4), |_| {})
        .await;

    // Another ticket, which only Dana has approved so far: Jira still waits for Li.
    let pending = h
        .desk
        .raise(
            PRIYA,
            TEST_PROJECT,
            &request_fields(now, Duration::hours(4), &[DANA, LI]),
        )
        .await;
    assert_eq!(h.desk.decide(DANA, &pending, "approve").await.status, 200);
    let mut forged = genuine.clone();
    forged["issue"]["key"] = pending.clone().into();
    let (status, out) = deliver(&h, &forged).await;
    assert_eq!(status, 400, "{out}");
    assert!(
        fields_of(&out).contains(&"ticket.status".to_owned()),
        "{out}"
    );

    // The genuine ticket, with an approver Jira never recorded.
    let mut padded = genuine.clone();
    let approvals = padded["issue"]["fields"]["customfield_10002"][0]["approvers"]
        .as_array_mut()
        .unwrap();
    approvals.push(json!({ "approver": { "accountId": account_id(MALLORY), "emailAddress": MALLORY }, "approverDecision": "approved" }));
    let (status, out) = deliver(&h, &padded).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(fields_of(&out), ["approvals[2].approver"], "{out}");

    // The genuine ticket, its scope widened in the body only.
    let mut widened = genuine;
    widened["issue"]["fields"]["customfield_10208"] = json!(["orders_reader", "orders_writer"]);
    let (status, out) = deliver(&h, &widened).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(fields_of(&out), ["scope"], "{out}");
    assert!(
        out["errors"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("customfield_10208"),
        "{out}"
    );

    assert_eq!(
        grants_written(&h).await,
        0,
        "nothing is written for a refused event"
    );
}

#[tokio::test]
async fn a_request_edited_after_its_approval_needs_a_new_approval() {
    let h = harness().await;
    let (key, _) = h
        .desk
        .approved(TEST_PROJECT, Utc::now(), Duration::hours(4), |_| {})
        .await;
    // After the approval, the scope is edited and the issue re-enters Approved
    // through a global transition, which opens no new approval.
    assert_eq!(
        h.desk
            .edit(
                PRIYA,
                &key,
                &json!({ "customfield_10208": ["orders_reader", "orders_writer"] })
            )
            .await
            .status,
        204
    );
    assert_eq!(h.desk.transition(PRIYA, &key, "31").await.status, 204);
    assert_eq!(h.desk.transition(PRIYA, &key, "21").await.status, 204);
    let (status, out) = deliver(&h, &h.desk.last_status_webhook(&key).await).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["state"], "rejected", "{out}");
    let reasons = out["reasons"].to_string();
    assert!(
        reasons.contains("no approval on the ticket counts"),
        "{out}"
    );
    let grant = h
        .deps
        .store
        .get_grant(out["grant_id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    for approval in &grant.request.approvals {
        let why = approval.discounted.as_deref().unwrap_or_default();
        assert!(
            why.contains("customfield_10208 changed afterwards"),
            "{approval:?}"
        );
    }

    // Asked again: the approvals that follow the change count.
    assert_eq!(h.desk.transition(PRIYA, &key, "11").await.status, 204);
    for approver in [DANA, LI] {
        assert_eq!(h.desk.decide(approver, &key, "approve").await.status, 200);
    }
    let (status, out) = deliver(&h, &h.desk.last_status_webhook(&key).await).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["state"], "approved", "{out}");
}

#[tokio::test]
async fn a_field_change_beyond_the_first_changelog_page_is_still_seen() {
    let h = harness().await;
    let (key, _) = h
        .desk
        .approved(TEST_PROJECT, Utc::now(), Duration::hours(4), |_| {})
        .await;
    // 105 edits of a field that is not part of the request, then one that is: the
    // change of scope is on the changelog's second page (100 per page).
    for n in 0..105 {
        let edit = h
            .desk
            .edit(
                PRIYA,
                &key,
                &json!({ "summary": format!("quarter-end, take {n}") }),
            )
            .await;
        assert_eq!(edit.status, 204);
    }
    assert_eq!(
        h.desk
            .edit(
                PRIYA,
                &key,
                &json!({ "customfield_10208": ["orders_reader"] })
            )
            .await
            .status,
        204
    );
    assert_eq!(h.desk.transition(PRIYA, &key, "31").await.status, 204);
    assert_eq!(h.desk.transition(PRIYA, &key, "21").await.status, 204);
    let (status, out) = deliver(&h, &h.desk.last_status_webhook(&key).await).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(
        out["state"], "rejected",
        "the scope change on page two was missed: {out}"
    );
}

#[tokio::test]
async fn only_approvers_with_authority_over_the_target_count() {
    let h = harness().await;
    // Mallory is in orders-engineering, not dba-approvers: her yes does not count,
    // and prod needs two that do.
    let (_, webhook) = h
        .desk
        .approved_by(
            TEST_PROJECT,
            Utc::now(),
            Duration::hours(4),
            &[DANA, MALLORY],
            |_| {},
        )
        .await;
    let (status, out) = deliver(&h, &webhook).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["state"], "rejected", "{out}");
    assert!(
        out["reasons"]
            .to_string()
            .contains("at least two approvers"),
        "{out}"
    );
    let grant = h
        .deps
        .store
        .get_grant(out["grant_id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let mallory = grant
        .request
        .approvals
        .iter()
        .find(|a| a.approver.as_str() == MALLORY)
        .unwrap();
    assert!(
        mallory
            .discounted
            .as_deref()
            .unwrap()
            .contains("members of dba-approvers"),
        "{mallory:?}"
    );
    let dana = grant
        .request
        .approvals
        .iter()
        .find(|a| a.approver.as_str() == DANA)
        .unwrap();
    assert!(dana.counts());
}

#[tokio::test]
async fn whoever_raised_the_ticket_for_someone_else_may_not_approve_it() {
    let h = harness().await;
    // Sam, a service desk agent and a DBA, raises the request on Priya's behalf and
    // approves it with Dana.
    let mut fields = request_fields(Utc::now(), Duration::hours(4), &[SAM, DANA]);
    fields["reporter"] = json!({ "accountId": account_id(PRIYA) });
    let key = h.desk.raise(SAM, TEST_PROJECT, &fields).await;
    for approver in [SAM, DANA] {
        assert_eq!(h.desk.decide(approver, &key, "approve").await.status, 200);
    }
    let (status, out) = deliver(&h, &h.desk.last_status_webhook(&key).await).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["state"], "rejected", "{out}");
    assert!(
        out["policy_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "separation-of-duties-creator"),
        "{out}"
    );
}

#[tokio::test]
async fn an_approval_after_the_tickets_cancellation_is_refused() {
    let h = harness().await;
    let (key, approval) = h
        .desk
        .approved(TEST_PROJECT, Utc::now(), Duration::hours(4), |_| {})
        .await;
    assert_eq!(h.desk.transition(PRIYA, &key, "41").await.status, 204);
    let cancellation = h.desk.last_status_webhook(&key).await;
    let (status, out) = deliver(&h, &cancellation).await;
    assert_eq!(status, 200, "{out}");
    // The approval's webhook, retried after the cancellation: Jira now says Cancelled.
    let (status, out) = deliver(&h, &approval).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(fields_of(&out), ["ticket.status"], "{out}");
    assert_eq!(grants_written(&h).await, 1, "only the withdrawal's record");
}

#[tokio::test]
async fn the_intakes_account_can_read_but_not_write() {
    let h = harness().await;
    let (key, _) = h
        .desk
        .approved(TEST_PROJECT, Utc::now(), Duration::hours(4), |_| {})
        .await;
    let reader: Value = serde_json::from_str(
        &h.stack
            .secret_value(&h.stack.local.itsm_credentials.jira_reader)
            .await,
    )
    .unwrap();
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            reader["email"].as_str().unwrap(),
            reader["api_token"].as_str().unwrap()
        ))
    );
    let read = h
        .desk
        .call_with(&basic, "GET", &format!("/rest/api/3/issue/{key}"), None)
        .await;
    assert_eq!(read.status, 200);
    let comment = json!({ "body": { "type": "doc", "version": 1, "content": [] } });
    for (method, path, body) in [
        (
            "POST",
            format!("/rest/api/3/issue/{key}/comment"),
            Some(&comment),
        ),
        (
            "PUT",
            format!("/rest/api/3/issue/{key}"),
            Some(&json!({ "fields": { "summary": "x" } })),
        ),
        (
            "POST",
            format!("/rest/api/3/issue/{key}/transitions"),
            Some(&json!({ "transition": { "id": "41" } })),
        ),
    ] {
        let answer = h.desk.call_with(&basic, method, &path, body).await;
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
    }
}

#[tokio::test]
async fn without_a_read_back_jira_approvals_are_refused_unless_the_operator_trusts_the_sender() {
    let h = harness_with(false).await;
    let (_, webhook) = h
        .desk
        .approved(TEST_PROJECT, Utc::now(), Duration::hours(4), |_| {})
        .await;
    let (status, out) = deliver(&h, &webhook).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(fields_of(&out), ["ticket.source"], "{out}");
    assert!(
        out["errors"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("TICKETBOUND_SENDER_ONLY"),
        "{out}"
    );
    assert_eq!(grants_written(&h).await, 0);
}

#[tokio::test]
async fn an_edit_between_two_approvers_yes_leaves_neither_counted() {
    let h = harness().await;
    let fields = request_fields(Utc::now(), Duration::hours(4), &[DANA, LI]);
    let key = h.desk.raise(PRIYA, TEST_PROJECT, &fields).await;
    assert_eq!(h.desk.decide(DANA, &key, "approve").await.status, 200);
    // Dana said yes to the request as it was; the scope changes before Li's yes.
    // JSM dates only the round's completion, so neither yes is known to follow it.
    let widened = json!({ "customfield_10208": ["orders_reader", "orders_writer"] });
    assert_eq!(h.desk.edit(PRIYA, &key, &widened).await.status, 204);
    assert_eq!(h.desk.decide(LI, &key, "approve").await.status, 200);
    let (status, out) = deliver(&h, &h.desk.last_status_webhook(&key).await).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["state"], "rejected", "{out}");
}
