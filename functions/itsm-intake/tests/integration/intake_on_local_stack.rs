//! The intake handler against the local stack: every answer it can give, each checked
//! against what DynamoDB holds afterwards. Events are built from the vendors' fixture
//! envelopes (Function URL, API Gateway HTTP API, EventBridge), parsed into the real
//! Lambda event types.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use itsm_intake::{Deps, IntakeEvent, IntakeResponse, handle};
use serde_json::{Value, json};
use ticketbound_domain::Detail;
use ticketbound_domain::{GrantState, verify_chain};
use ticketbound_itsm::auth;
use ticketbound_runtime::EnvReader;
use ticketbound_testkit::{
    TestStack, fixture_json, jira_approval, jira_cancellation, servicenow_approval, unique_key,
};

const JIRA_SECRET: &str = "jira-webhook-secret-for-the-intake-tests";
const SN_SECRET: &str = "servicenow-hmac-secret-for-the-intake-tests";
const GENERIC_SECRET: &str = "generic-hmac-secret-for-the-intake-tests";

struct Harness {
    stack: TestStack,
    deps: Deps,
    jira_secret_id: String,
}

/// The targets the intake knows, as `TICKETBOUND_TARGETS` configures them.
const TARGETS: &str = r#"{
    "orders-db": {"connector": "postgres", "environment": "prod", "admin_secret_id": "x"},
    "billing-db": {"connector": "postgres", "environment": "non-prod", "admin_secret_id": "y"}
}"#;

async fn harness_with(extra: &[(&str, &str)]) -> Harness {
    let stack = TestStack::get().await;
    let (vars, jira_secret_id) = intake_env(&stack, extra).await;
    let deps = Deps::from_env(&stack.sdk, EnvReader::from_map(vars)).unwrap();
    Harness {
        stack,
        deps,
        jira_secret_id,
    }
}

/// The intake's environment on fresh tables and secrets, with `extra` added; and the
/// Jira webhook secret's id.
async fn intake_env(stack: &TestStack, extra: &[(&str, &str)]) -> (Vec<(String, String)>, String) {
    let tables = stack.fresh_tables().await.unwrap();
    let registry = stack.seeded_registry().await;
    let jira_secret_id = stack.create_secret("jira", JIRA_SECRET).await;
    let sn = stack.create_secret("servicenow", SN_SECRET).await;
    let generic = stack.create_secret("generic", GENERIC_SECRET).await;
    let mut vars: Vec<(String, String)> = vec![
        ("TICKETBOUND_GRANTS_TABLE".into(), tables.grants.clone()),
        ("TICKETBOUND_AUDIT_TABLE".into(), tables.audit.clone()),
        (
            "TICKETBOUND_IDENTITIES_TABLE".into(),
            registry.table().to_owned(),
        ),
        ("TICKETBOUND_JIRA_SECRET_ID".into(), jira_secret_id.clone()),
        ("TICKETBOUND_SERVICENOW_SECRET_ID".into(), sn),
        ("TICKETBOUND_GENERIC_SECRET_ID".into(), generic),
        ("TICKETBOUND_SECRET_MIN_REFRESH_SECS".into(), "0".into()),
        ("TICKETBOUND_TARGETS".into(), TARGETS.into()),
        // What these tests check (parsing, signatures, idempotency, validation,
        // the registry) happens whoever vouches for the approval, so they take the
        // sender's word; reading approvals back from Jira has tests of its own
        // (readback_on_local_stack.rs).
        (
            "TICKETBOUND_SENDER_ONLY".into(),
            "jira,servicenow,generic".into(),
        ),
        (
            "TICKETBOUND_EVENTBRIDGE_SOURCES".into(),
            "com.example.itsm, com.example.other-itsm".into(),
        ),
        (
            "TICKETBOUND_EVENTBRIDGE_ACCOUNT".into(),
            "123456789012".into(),
        ),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    (vars, jira_secret_id)
}

async fn harness() -> Harness {
    harness_with(&[]).await
}

/// A Function URL event (the fixture envelope) carrying `body` to `path`.
fn function_url_event(path: &str, body: &[u8], headers: &[(&str, String)]) -> IntakeEvent {
    let mut envelope = fixture_json("http/function-url-request.json");
    envelope["rawPath"] = path.into();
    envelope["requestContext"]["http"]["path"] = path.into();
    envelope["body"] = String::from_utf8(body.to_vec()).unwrap().into();
    let h = envelope["headers"].as_object_mut().unwrap();
    h.remove("x-hub-signature");
    h.remove("x-atlassian-webhook-identifier");
    for (k, v) in headers {
        h.insert((*k).to_owned(), v.clone().into());
    }
    serde_json::from_value(envelope).unwrap()
}

fn jira_event(body: &Value, delivery: &str) -> IntakeEvent {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = auth::hub_signature(JIRA_SECRET.as_bytes(), &bytes);
    function_url_event(
        "/jira",
        &bytes,
        &[
            ("x-hub-signature", sig),
            ("x-atlassian-webhook-identifier", delivery.to_owned()),
        ],
    )
}

/// An API Gateway HTTP API event (the fixture envelope) for ServiceNow, signed at `ts`.
fn servicenow_event(body: &Value, secret: &str, ts: i64) -> IntakeEvent {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut envelope = fixture_json("http/apigw-v2-request.json");
    envelope["body"] = String::from_utf8(bytes.clone()).unwrap().into();
    envelope["headers"]["x-ticketbound-timestamp"] = ts.to_string().into();
    envelope["headers"]["x-ticketbound-signature"] =
        auth::timestamped_signature(secret.as_bytes(), ts, &bytes).into();
    serde_json::from_value(envelope).unwrap()
}

async fn send(h: &Harness, event: IntakeEvent) -> (i64, Value) {
    match handle(&h.deps, event).await.unwrap() {
        IntakeResponse::Http(r) => {
            let body = match r.body {
                Some(Body::Text(t)) => serde_json::from_str(&t).unwrap(),
                other => panic!("unexpected body {other:?}"),
            };
            (r.status_code, body)
        }
        IntakeResponse::Event(e) => (0, serde_json::to_value(e).unwrap()),
    }
}

/// Every item of both tables, so that "nothing was written" can be asserted.
async fn item_counts(h: &Harness) -> (usize, usize) {
    let tables = h.deps.store.tables();
    let ddb = h.stack.dynamodb();
    let grants = ddb.scan().table_name(&tables.grants).send().await.unwrap();
    let audit = ddb.scan().table_name(&tables.audit).send().await.unwrap();
    (grants.items().len(), audit.items().len())
}

async fn grant_records(h: &Harness) -> Vec<ticketbound_domain::Grant> {
    let tables = h.deps.store.tables();
    let items = h
        .stack
        .dynamodb()
        .scan()
        .table_name(&tables.grants)
        .filter_expression("sk = :g")
        .expression_attribute_values(":g", AttributeValue::S("GRANT".into()))
        .send()
        .await
        .unwrap();
    let mut grants = Vec::new();
    for item in items.items() {
        let id = match &item["id"] {
            AttributeValue::S(s) => s.parse().unwrap(),
            other => panic!("{other:?}"),
        };
        grants.push(h.deps.store.get_grant(id).await.unwrap().unwrap());
    }
    grants
}

#[test]
fn the_vendor_envelopes_parse_into_the_lambda_event_types() {
    let url = fixture_json("http/function-url-request.json");
    let _: LambdaFunctionUrlRequest = serde_json::from_value(url.clone()).unwrap();
    let as_v2: ApiGatewayV2httpRequest = serde_json::from_value(url).unwrap();
    assert_eq!(as_v2.request_context.http.method, http::Method::POST);
    let api: ApiGatewayV2httpRequest =
        serde_json::from_value(fixture_json("http/apigw-v2-request.json")).unwrap();
    assert_eq!(api.route_key.as_deref(), Some("POST /servicenow"));
    for path in [
        "eventbridge/access-request-approved.json",
        "eventbridge/access-request-withdrawn.json",
    ] {
        let e: EventBridgeEvent<Value> = serde_json::from_value(fixture_json(path)).unwrap();
        assert!(e.detail_type.starts_with("Access Request"));
        assert!(matches!(
            serde_json::from_value::<IntakeEvent>(fixture_json(path)).unwrap(),
            IntakeEvent::EventBridge(_)
        ));
    }
    assert!(serde_json::from_value::<IntakeEvent>(json!({"hello": "world"})).is_err());
}

#[tokio::test]
async fn a_signed_jira_approval_is_recorded_as_an_approved_grant_with_its_evidence() {
    let h = harness().await;
    let key = unique_key("OPS");
    let (status, body) = send(
        &h,
        jira_event(&jira_approval(Utc::now(), &key, Duration::hours(4)), "d-1"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["outcome"], "accepted");
    assert_eq!(body["state"], "approved");
    assert_eq!(body["policy_ids"], json!(["permit-approved-requests"]));

    let grants = grant_records(&h).await;
    assert_eq!(grants.len(), 1);
    let grant = &grants[0];
    assert_eq!(grant.id.to_string(), body["grant_id"].as_str().unwrap());
    assert_eq!(grant.state, GrantState::Approved);
    assert_eq!(grant.request.ticket.qualified_key(), format!("jira#{key}"));
    assert_eq!(grant.request.approvals.len(), 2);

    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    verify_chain(grant.id, &trail, Some(&grant.audit_head)).unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].actor.id, "priya.raman@example.com");
    assert!(trail[0].details[Detail::ApprovedBy.as_str()].contains("dana.okafor@example.com"));
    assert_eq!(trail[1].details[Detail::Decision.as_str()], "allow");
    assert_eq!(
        trail[1].details[Detail::PolicyIds.as_str()],
        "permit-approved-requests"
    );
    assert_eq!(
        item_counts(&h).await,
        (3, 2),
        "grant, expiry trigger, delivery; two audit events"
    );
}

#[tokio::test]
async fn a_redelivery_answers_200_with_the_same_grant_and_writes_nothing() {
    let h = harness().await;
    let body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    let (first, b1) = send(&h, jira_event(&body, "d-dup")).await;
    let counts = item_counts(&h).await;
    let (second, b2) = send(&h, jira_event(&body, "d-dup")).await;
    assert_eq!((first, second), (202, 200));
    assert_eq!(b2["outcome"], "duplicate");
    assert_eq!(b1["grant_id"], b2["grant_id"]);
    assert_eq!(b2["state"], "approved");
    assert_eq!(item_counts(&h).await, counts);

    // The same approval under another delivery id (Jira fired twice) is the same grant.
    let (third, b3) = send(&h, jira_event(&body, "d-other")).await;
    assert_eq!(third, 200, "{b3}");
    assert_eq!(b3["grant_id"], b1["grant_id"]);
    assert_eq!(item_counts(&h).await, counts);
}

#[tokio::test]
async fn the_same_delivery_sent_three_times_at_once_yields_one_grant() {
    let h = harness().await;
    let body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    let (a, b, c) = tokio::join!(
        send(&h, jira_event(&body, "d-race")),
        send(&h, jira_event(&body, "d-race")),
        send(&h, jira_event(&body, "d-race")),
    );
    let mut statuses = [a.0, b.0, c.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 202], "{a:?} {b:?} {c:?}");
    assert!(a.1["grant_id"] == b.1["grant_id"] && b.1["grant_id"] == c.1["grant_id"]);
    assert_eq!(grant_records(&h).await.len(), 1);
    assert_eq!(item_counts(&h).await, (3, 2));
}

#[tokio::test]
async fn a_malformed_approval_is_400_naming_the_field_and_writes_nothing() {
    let h = harness().await;
    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["issue"]["fields"]["customfield_10203"] = "team-hostile".into();
    body["issue"]["fields"]["customfield_10208"] = json!(["orders_reader", "*"]);
    let (status, out) = send(&h, jira_event(&body, "d-bad")).await;
    assert_eq!(status, 400, "{out}");
    let fields: Vec<&str> = out["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["identity.owner", "scope[1]"]);
    assert!(
        out["errors"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("customfield_10203"),
        "{out}"
    );

    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["issue"]["fields"]["customfield_10209"] = "soon".into();
    let (status, out) = send(&h, jira_event(&body, "d-bad-2")).await;
    assert_eq!(status, 400);
    assert_eq!(out["field"], "issue.fields.customfield_10209");
    assert_eq!(item_counts(&h).await, (0, 0));
}

/// The hostile requester edits the ticket's connector field to a laxer kind of
/// target, or names a target ticketbound does not manage: both are 400s naming the
/// field, and nothing is written. Leaving the connector out is fine: it comes from
/// the configuration.
#[tokio::test]
async fn the_connector_is_the_targets_not_the_requests() {
    let h = harness().await;
    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["issue"]["fields"]["customfield_10206"] = "generated_api_key".into();
    let (status, out) = send(&h, jira_event(&body, "d-claims-api-key")).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["errors"][0]["field"], "target.connector", "{out}");
    assert!(
        out["errors"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("orders-db is a postgres target"),
        "{out}"
    );

    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["issue"]["fields"]["customfield_10205"] = "payments-db".into();
    let (status, out) = send(&h, jira_event(&body, "d-unknown-target")).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["errors"][0]["field"], "target.system_id", "{out}");
    assert_eq!(item_counts(&h).await, (0, 0), "nothing was written");

    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["issue"]["fields"]
        .as_object_mut()
        .unwrap()
        .remove("customfield_10206");
    let (status, out) = send(&h, jira_event(&body, "d-no-connector")).await;
    assert_eq!(status, 202, "{out}");
    let grants = grant_records(&h).await;
    assert_eq!(grants.len(), 1);
    assert_eq!(
        grants[0].request.target.connector,
        ticketbound_domain::ConnectorKind::Postgres
    );
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_401_and_says_nothing_more() {
    let h = harness().await;
    let body = serde_json::to_vec(&jira_approval(
        Utc::now(),
        &unique_key("OPS"),
        Duration::hours(4),
    ))
    .unwrap();
    let forged = auth::hub_signature(b"not-the-secret", &body);
    for headers in [vec![("x-hub-signature", forged)], vec![]] {
        let (status, out) = send(&h, function_url_event("/jira", &body, &headers)).await;
        assert_eq!(status, 401);
        assert_eq!(out, json!({"error": "unauthorized"}));
    }
    // A valid signature over a different body is no signature at all.
    let other = auth::hub_signature(JIRA_SECRET.as_bytes(), b"{}");
    let (status, _) = send(
        &h,
        function_url_event("/jira", &body, &[("x-hub-signature", other)]),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(item_counts(&h).await, (0, 0));
}

#[tokio::test]
async fn a_rotated_webhook_secret_is_picked_up_without_a_restart() {
    let h = harness().await;
    let body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    // Warm the cache with the old secret.
    let (status, _) = send(&h, jira_event(&body, "d-warm")).await;
    assert_eq!(status, 202);

    h.stack
        .secretsmanager()
        .put_secret_value()
        .secret_id(&h.jira_secret_id)
        .secret_string("the-rotated-jira-secret-of-enough-bytes")
        .send()
        .await
        .unwrap();
    let other = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    let bytes = serde_json::to_vec(&other).unwrap();
    let sig = auth::hub_signature(b"the-rotated-jira-secret-of-enough-bytes", &bytes);
    let (status, out) = send(
        &h,
        function_url_event(
            "/jira",
            &bytes,
            &[
                ("x-hub-signature", sig),
                ("x-atlassian-webhook-identifier", "d-new".into()),
            ],
        ),
    )
    .await;
    assert_eq!(status, 202, "{out}");
    // And the old secret no longer works.
    let (status, _) = send(
        &h,
        jira_event(
            &jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4)),
            "d-old",
        ),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_same_ticket_approved_again_with_different_content_is_409() {
    let h = harness().await;
    let key = unique_key("OPS");
    let body = jira_approval(Utc::now(), &key, Duration::hours(4));
    let (status, first) = send(&h, jira_event(&body, "d-a")).await;
    assert_eq!(status, 202);
    let counts = item_counts(&h).await;

    let mut changed = body.clone();
    changed["issue"]["fields"]["customfield_10208"] = json!(["orders_reader", "orders_writer"]);
    let (status, out) = send(&h, jira_event(&changed, "d-b")).await;
    assert_eq!(status, 409, "{out}");
    assert_eq!(out["grant_id"], first["grant_id"]);
    assert_eq!(item_counts(&h).await, counts);
}

#[tokio::test]
async fn oversized_and_non_json_bodies_are_refused_before_anything_is_written() {
    let h = harness().await;
    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["padding"] = "x".repeat(300 * 1024).into();
    let (status, _) = send(&h, jira_event(&body, "d-big")).await;
    assert_eq!(status, 413);

    let body = serde_json::to_vec(&jira_approval(
        Utc::now(),
        &unique_key("OPS"),
        Duration::hours(4),
    ))
    .unwrap();
    let sig = auth::hub_signature(JIRA_SECRET.as_bytes(), &body);
    let (status, _) = send(
        &h,
        function_url_event(
            "/jira",
            &body,
            &[
                ("x-hub-signature", sig),
                ("content-type", "text/plain".into()),
            ],
        ),
    )
    .await;
    assert_eq!(status, 415);

    let (status, _) = send(&h, function_url_event("/nowhere", b"{}", &[])).await;
    assert_eq!(status, 404);
    assert_eq!(item_counts(&h).await, (0, 0));
}

#[tokio::test]
async fn a_policy_denial_is_recorded_as_a_rejected_grant_with_its_reasons() {
    let h = harness().await;
    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    // One approver only, on prod.
    body["issue"]["fields"]["customfield_10002"][0]["approvers"]
        .as_array_mut()
        .unwrap()
        .truncate(1);
    let (status, out) = send(&h, jira_event(&body, "d-deny")).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["state"], "rejected");
    assert_eq!(out["policy_ids"], json!(["prod-two-approvers"]));
    assert_eq!(
        out["reasons"],
        json!(["prod access needs at least two approvers"])
    );

    let grant = grant_records(&h).await.pop().unwrap();
    assert_eq!(grant.state, GrantState::Rejected);
    assert_eq!(
        grant.rejection_reasons,
        ["prod access needs at least two approvers"]
    );
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    assert_eq!(trail[1].details[Detail::Decision.as_str()], "deny");
    assert_eq!(
        trail[1].details[Detail::PolicyIds.as_str()],
        "prod-two-approvers"
    );
    assert_eq!(
        item_counts(&h).await,
        (2, 2),
        "no expiry trigger for a rejected grant"
    );
}

#[tokio::test]
async fn a_cancelled_ticket_ends_its_grants_once() {
    let h = harness().await;
    let key = unique_key("OPS");
    let (status, approved) = send(
        &h,
        jira_event(&jira_approval(Utc::now(), &key, Duration::hours(4)), "d-1"),
    )
    .await;
    assert_eq!(status, 202);

    let (status, out) = send(&h, jira_event(&jira_cancellation(Utc::now(), &key), "d-2")).await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["outcome"], "ticket_ended");
    assert_eq!(out["grants"], json!([approved["grant_id"]]));

    let grant = grant_records(&h).await.pop().unwrap();
    // Never provisioned, so nothing to revoke at a target: straight to Revoked.
    assert_eq!(grant.state, GrantState::Revoked);
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    verify_chain(grant.id, &trail, Some(&grant.audit_head)).unwrap();
    let last = trail.last().unwrap();
    assert_eq!(last.details[Detail::Trigger.as_str()], "ticket_withdrawn");
    assert_eq!(last.actor.id, "priya.raman@example.com");

    let (status, out) = send(&h, jira_event(&jira_cancellation(Utc::now(), &key), "d-3")).await;
    assert_eq!(status, 200, "a replayed withdrawal changes nothing: {out}");
    assert_eq!(
        h.deps.store.audit_trail(grant.id).await.unwrap().len(),
        trail.len()
    );
}

#[tokio::test]
async fn servicenow_is_authenticated_by_a_timestamped_hmac() {
    let h = harness().await;
    let body = servicenow_approval(Utc::now(), &unique_key("CHG"), Duration::hours(4));
    let (status, out) = send(
        &h,
        servicenow_event(&body, SN_SECRET, Utc::now().timestamp()),
    )
    .await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["state"], "approved");
    let grant = grant_records(&h).await.pop().unwrap();
    assert!(
        grant
            .request
            .ticket
            .link
            .unwrap()
            .ends_with("change_request.do?sys_id=f0449e359480dae4383aef26b0f503ef")
    );

    // A replay outside the window, and a wrong key, are refused.
    let stale = Utc::now().timestamp() - 301;
    let other = servicenow_approval(Utc::now(), &unique_key("CHG"), Duration::hours(4));
    assert_eq!(
        send(&h, servicenow_event(&other, SN_SECRET, stale)).await.0,
        401
    );
    assert_eq!(
        send(
            &h,
            servicenow_event(&other, "wrong", Utc::now().timestamp())
        )
        .await
        .0,
        401
    );
}

#[tokio::test]
async fn servicenow_may_use_a_bearer_token_instead() {
    let h = harness_with(&[("TICKETBOUND_SERVICENOW_AUTH", "bearer")]).await;
    let body = serde_json::to_vec(&servicenow_approval(
        Utc::now(),
        &unique_key("CHG"),
        Duration::hours(4),
    ))
    .unwrap();
    let mut envelope = fixture_json("http/apigw-v2-request.json");
    envelope["body"] = String::from_utf8(body).unwrap().into();
    envelope["headers"]["authorization"] = format!("Bearer {SN_SECRET}").into();
    let (status, out) = send(&h, serde_json::from_value(envelope.clone()).unwrap()).await;
    assert_eq!(status, 202, "{out}");
    envelope["headers"]["authorization"] = "Bearer guess".into();
    assert_eq!(
        send(&h, serde_json::from_value(envelope).unwrap()).await.0,
        401
    );
}

/// The hostile requester's cheapest trick: the production database asked for as
/// `non-prod`, whose rules want one approver and allow twelve hours. The target's
/// environment comes from the configuration: refused, naming the field, and nothing
/// is written.
#[tokio::test]
async fn a_prod_target_asked_for_as_non_prod_is_refused_and_nothing_is_written() {
    let h = harness().await;
    let key = unique_key("REQ");
    let mut approved = eventbridge_approval(&key);
    approved["detail"]["target"]["system_id"] = "orders-db".into();
    let (_, out) = send(&h, serde_json::from_value(approved.clone()).unwrap()).await;
    assert_eq!(out["outcome"]["outcome"], "invalid", "{out}");
    let errors = out["outcome"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{out}");
    assert_eq!(errors[0]["field"], "target.environment");
    assert!(
        errors[0]["problem"]
            .as_str()
            .unwrap()
            .contains("orders-db is prod"),
        "{out}"
    );
    let ticket = ticketbound_domain::Ticket {
        source: ticketbound_domain::SourceSystem::Generic,
        key: ticketbound_domain::TicketKey::new(&key).unwrap(),
        link: None,
    };
    assert!(
        h.deps
            .store
            .grants_for_ticket(&ticket)
            .await
            .unwrap()
            .is_empty(),
        "no grant"
    );

    // Left out, the environment is the target's: prod's rules apply, and one
    // approver for twelve hours is not enough.
    approved["id"] = ulid::Ulid::new().to_string().into();
    approved["detail"]["target"]
        .as_object_mut()
        .unwrap()
        .remove("environment");
    let (_, out) = send(&h, serde_json::from_value(approved).unwrap()).await;
    assert_eq!(out["outcome"]["state"], "rejected", "{out}");
    assert!(
        out["outcome"]["reasons"]
            .to_string()
            .contains("prod access needs at least two approvers"),
        "{out}"
    );
}

/// A generic sender (its HMAC key is all it holds) approving a *Jira* issue, or
/// withdrawing one: it speaks for generic tickets only, so it can neither approve,
/// comment on nor withdraw another system's tickets. Refused, naming ticket.source,
/// and nothing is written; the same request for a generic ticket is accepted.
#[tokio::test]
async fn a_generic_sender_cannot_speak_for_a_jira_ticket() {
    let h = harness().await;
    let generic_event = |body: &Value| {
        let bytes = serde_json::to_vec(body).unwrap();
        let ts = Utc::now().timestamp();
        function_url_event(
            "/generic",
            &bytes,
            &[
                ("x-ticketbound-timestamp", ts.to_string()),
                (
                    "x-ticketbound-signature",
                    auth::timestamped_signature(GENERIC_SECRET.as_bytes(), ts, &bytes),
                ),
                ("x-ticketbound-delivery", ulid::Ulid::new().to_string()),
            ],
        )
    };
    let now = Utc::now();
    let mut request = fixture_json("generic/approved-request.json");
    request["ticket"]["key"] = unique_key("OPS").into();
    request["approvals"][0]["approved_at"] = (now - Duration::minutes(20)).to_rfc3339().into();
    request["approvals"][1]["approved_at"] = (now - Duration::minutes(10)).to_rfc3339().into();
    request["not_after"] = (now + Duration::hours(4)).to_rfc3339().into();
    assert_eq!(request["ticket"]["source"], "jira");
    let before = item_counts(&h).await;

    let (status, out) = send(
        &h,
        generic_event(&json!({"event": "approved", "request": request})),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["field"], "ticket.source", "{out}");
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("speaks only for generic tickets"),
        "{out}"
    );
    let withdrawal = json!({"event": "withdrawn", "ticket": {"source": "jira", "key": request["ticket"]["key"]}});
    let (status, out) = send(&h, generic_event(&withdrawal)).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["field"], "ticket.source", "{out}");
    assert_eq!(item_counts(&h).await, before, "nothing was written");

    request["ticket"]["source"] = "generic".into();
    let (status, out) = send(
        &h,
        generic_event(&json!({"event": "approved", "request": request})),
    )
    .await;
    assert_eq!(status, 202, "{out}");
}

/// Anyone who may put events on the bus speaks for generic tickets only: an event
/// naming a Jira issue is refused, naming ticket.source, and nothing is written.
#[tokio::test]
async fn an_eventbridge_event_cannot_speak_for_a_jira_ticket() {
    let h = harness().await;
    let mut approved = eventbridge_approval(&unique_key("OPS"));
    approved["detail"]["ticket"]["source"] = "jira".into();
    let before = item_counts(&h).await;
    let (_, out) = send(&h, serde_json::from_value(approved).unwrap()).await;
    assert_eq!(out["outcome"]["outcome"], "invalid", "{out}");
    assert_eq!(
        out["outcome"]["errors"][0]["field"], "ticket.source",
        "{out}"
    );
    assert_eq!(item_counts(&h).await, before, "nothing was written");
}

/// The EventBridge approval of the fixtures for ticket `key`: a new event id, approved
/// five minutes ago, running twelve hours.
fn eventbridge_approval(key: &str) -> Value {
    let now = Utc::now();
    let mut approved = fixture_json("eventbridge/access-request-approved.json");
    approved["id"] = ulid::Ulid::new().to_string().into();
    approved["detail"]["ticket"]["key"] = key.into();
    approved["detail"]["approvals"][0]["approved_at"] =
        (now - Duration::minutes(5)).to_rfc3339().into();
    approved["detail"]["not_after"] = (now + Duration::hours(12)).to_rfc3339().into();
    approved
}

#[tokio::test]
async fn eventbridge_approvals_and_withdrawals_take_the_same_path() {
    let h = harness().await;
    let key = unique_key("REQ");
    let approved = eventbridge_approval(&key);
    let (_, out) = send(&h, serde_json::from_value(approved.clone()).unwrap()).await;
    assert_eq!(out["outcome"]["outcome"], "accepted", "{out}");
    assert_eq!(out["outcome"]["state"], "approved");
    // EventBridge redelivers with the same event id.
    let (_, again) = send(&h, serde_json::from_value(approved).unwrap()).await;
    assert_eq!(again["outcome"]["outcome"], "duplicate");

    let mut withdrawn = fixture_json("eventbridge/access-request-withdrawn.json");
    withdrawn["detail"]["ticket"]["key"] = key.into();
    let (_, out) = send(&h, serde_json::from_value(withdrawn).unwrap()).await;
    assert_eq!(out["outcome"]["outcome"], "ticket_ended", "{out}");
    assert_eq!(out["outcome"]["grants"].as_array().unwrap().len(), 1);
    assert_eq!(grant_records(&h).await[0].state, GrantState::Revoked);
}

#[tokio::test]
async fn an_operators_policy_directory_takes_effect() {
    let dir = std::env::temp_dir().join(format!("tb-intake-policies-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("policy.cedar"),
        r#"@id("permit") permit (principal, action, resource);
@id("no-orders-db") @reason("orders-db is frozen for the audit")
forbid (principal, action, resource == Ticketbound::Target::"orders-db");"#,
    )
    .unwrap();
    let h = harness_with(&[("TICKETBOUND_POLICY_DIR", dir.to_str().unwrap())]).await;
    let (status, out) = send(
        &h,
        jira_event(
            &jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4)),
            "d",
        ),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(out["state"], "rejected");
    assert_eq!(out["reasons"], json!(["orders-db is frozen for the audit"]));
    std::fs::remove_dir_all(dir).unwrap();
}

/// An operator's policy that does not match the schema (a context attribute the
/// schema does not declare, which Cedar would otherwise only see as an error while
/// evaluating) stops the intake at start-up: it never serves, rather than serving
/// with policies it cannot apply. The shipped policies are not checked here but in
/// the policy crate's tests; an operator's are, every time.
#[tokio::test]
async fn an_operators_policy_that_does_not_match_the_schema_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("tb-intake-bad-policies-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("policy.cedar"),
        r#"@id("permit") permit (principal, action, resource);
@id("typo") forbid (principal, action, resource) when { context.enviroment == "prod" };"#,
    )
    .unwrap();
    let stack = TestStack::get().await;
    let (vars, _) = intake_env(&stack, &[("TICKETBOUND_POLICY_DIR", dir.to_str().unwrap())]).await;
    let started = Deps::from_env(&stack.sdk, EnvReader::from_map(vars));
    std::fs::remove_dir_all(dir).unwrap();
    match started {
        Err(itsm_intake::StartupError::Policy(ticketbound_policy::PolicyError::Invalid(why))) => {
            assert!(why.contains("enviroment"), "{why}");
        }
        other => panic!("a policy the schema refuses must stop the start: {other:?}"),
    }
}

/// The attacker's late approval: the ticket is cancelled before its approval is
/// delivered (a webhook retried after a 503). The withdrawal is remembered though
/// no grant existed, so the approval, when it comes, is refused (409) and nothing
/// is made; a grant for the ticket cannot be created behind the intake's back
/// either (the store's own transaction checks the withdrawal).
#[tokio::test]
async fn an_approval_delivered_after_its_tickets_withdrawal_is_refused() {
    let h = harness().await;
    let key = unique_key("OPS");
    let approval = jira_approval(Utc::now() - Duration::minutes(1), &key, Duration::hours(4));
    let (status, out) = send(&h, jira_event(&jira_cancellation(Utc::now(), &key), "d-w")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["grants"], json!([]), "no grant yet: {out}");

    let (status, out) = send(&h, jira_event(&approval, "d-late")).await;
    assert_eq!(status, 409, "{out}");
    assert_eq!(out["outcome"], "withdrawn", "{out}");
    assert!(
        out["problem"]
            .as_str()
            .unwrap()
            .contains("was withdrawn at"),
        "{out}"
    );
    assert!(grant_records(&h).await.is_empty(), "no grant was made");
    let (_, audit) = item_counts(&h).await;
    assert_eq!(audit, 0, "no audit event for a grant that does not exist");

    // Past the intake's check (as an approval racing the withdrawal would be): the
    // grant's own transaction refuses it.
    let mut grant = ticketbound_testkit::sample_grant(Utc::now(), Duration::hours(1));
    grant.request.ticket = ticketbound_domain::Ticket {
        source: ticketbound_domain::SourceSystem::Jira,
        key: ticketbound_domain::TicketKey::new(&key).unwrap(),
        link: None,
    };
    let e = grant.record(ticketbound_domain::AuditRecord::new(
        Utc::now(),
        ticketbound_domain::Actor::itsm_user("sam"),
        ticketbound_domain::AuditAction::Requested,
    ));
    let refused = h
        .deps
        .store
        .create_grant(&grant, &[e], None, Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ticketbound_store::StoreError::TicketWithdrawn(_)),
        "{refused:?}"
    );
    assert!(grant_records(&h).await.is_empty());
}

/// A hostile sender reuses a delivery id it saw, with other content (a wider scope,
/// another ticket): not a redelivery, so it is refused (409) instead of being
/// answered 200 as the first, and nothing is written.
#[tokio::test]
async fn a_delivery_id_reused_for_other_content_is_refused() {
    let h = harness().await;
    let first = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    let (status, b1) = send(&h, jira_event(&first, "d-reused")).await;
    assert_eq!(status, 202, "{b1}");
    let counts = item_counts(&h).await;

    let other = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    let (status, out) = send(&h, jira_event(&other, "d-reused")).await;
    assert_eq!(status, 409, "{out}");
    assert!(
        out["problem"]
            .as_str()
            .unwrap()
            .contains("was received before with other content"),
        "{out}"
    );
    assert_eq!(item_counts(&h).await, counts, "nothing was written");

    let (status, again) = send(&h, jira_event(&first, "d-reused")).await;
    assert_eq!(status, 200, "the true redelivery still answers: {again}");
    assert_eq!(again["grant_id"], b1["grant_id"]);
}

/// The hostile requester names a workload principal of their own on the ticket: it
/// would be written into the secret's resource policy, and their role would read the
/// credential. The principal comes from the identity registry: refused, naming the
/// field and the Jira field it came from, and nothing is written. So are an
/// identity nobody registered, and a target the identity is not registered for.
#[tokio::test]
async fn a_ticket_cannot_choose_the_workload_principal_the_identity_or_its_targets() {
    let h = harness().await;
    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["issue"]["fields"]["customfield_10204"] = "arn:aws:iam::999999999999:role/attacker".into();
    let (status, out) = send(&h, jira_event(&body, "d-foreign-principal")).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(
        out["errors"][0]["field"], "identity.workload_principal",
        "{out}"
    );
    let problem = out["errors"][0]["problem"].as_str().unwrap();
    assert!(
        problem.contains("not a workload principal registered for identity orders-etl")
            && problem.contains("customfield_10204"),
        "{out}"
    );

    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["issue"]["fields"]["customfield_10202"] = "payroll-bot".into();
    let (status, out) = send(&h, jira_event(&body, "d-unregistered")).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["errors"][0]["field"], "identity.name", "{out}");
    assert!(
        out["errors"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("not an identity registered"),
        "{out}"
    );

    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["issue"]["fields"]["customfield_10202"] = "ledger-backfill".into();
    body["issue"]["fields"]["customfield_10203"] = "team-finance-eng".into();
    body["issue"]["fields"]
        .as_object_mut()
        .unwrap()
        .remove("customfield_10204");
    let (status, out) = send(&h, jira_event(&body, "d-unregistered-target")).await;
    assert_eq!(status, 400, "{out}");
    let fields: Vec<&str> = out["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["target.system_id"], "{out}");
    assert_eq!(item_counts(&h).await, (0, 0), "nothing was written");
}

/// The honest ticket that leaves the identity's owner and workload out gets the
/// registry's; once the identity is retired, a new approval for it is refused while
/// nothing else changes.
#[tokio::test]
async fn the_owner_and_principal_are_the_registrys_and_a_retired_identity_gets_nothing() {
    let h = harness().await;
    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    for field in ["customfield_10203", "customfield_10204"] {
        body["issue"]["fields"]
            .as_object_mut()
            .unwrap()
            .remove(field);
    }
    let (status, out) = send(&h, jira_event(&body, "d-from-registry")).await;
    assert_eq!(status, 202, "{out}");
    let grants = grant_records(&h).await;
    assert_eq!(grants.len(), 1);
    let identity = &grants[0].request.identity;
    assert_eq!(identity.owner.as_str(), "team-data-platform");
    assert_eq!(
        identity.workload_principal.as_str(),
        "arn:aws:iam::123456789012:role/orders-etl"
    );

    h.deps
        .registry
        .retire(
            &ticketbound_domain::IdentityName::new("orders-etl").unwrap(),
            &ticketbound_domain::Actor::operator("ops@example.com"),
            Utc::now(),
            "workload decommissioned",
        )
        .await
        .unwrap();
    let before = item_counts(&h).await;
    let body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    let (status, out) = send(&h, jira_event(&body, "d-retired")).await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["errors"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("was retired"),
        "{out}"
    );
    assert_eq!(item_counts(&h).await, before, "nothing was written");
}

/// A hostile insider with `events:PutEvents` sets any `source` they like, and one in
/// another account may reach the bus too: an approval from a source that is no
/// configured integration, or from another account, is refused naming the field, and
/// nothing is written. Without the EventBridge settings, no event is accepted at all.
#[tokio::test]
async fn an_eventbridge_event_from_an_unlisted_source_or_another_account_is_refused() {
    let h = harness().await;
    let mut forged = eventbridge_approval(&unique_key("REQ"));
    forged["source"] = "com.example.anything".into();
    let (_, out) = send(&h, serde_json::from_value(forged).unwrap()).await;
    assert_eq!(out["outcome"]["outcome"], "invalid", "{out}");
    assert_eq!(out["outcome"]["errors"][0]["field"], "source", "{out}");

    let mut foreign = eventbridge_approval(&unique_key("REQ"));
    foreign["account"] = "999999999999".into();
    let (_, out) = send(&h, serde_json::from_value(foreign).unwrap()).await;
    assert_eq!(out["outcome"]["errors"][0]["field"], "account", "{out}");
    assert_eq!(item_counts(&h).await, (0, 0), "nothing was written");

    // The second configured integration is heard.
    let mut other = eventbridge_approval(&unique_key("REQ"));
    other["source"] = "com.example.other-itsm".into();
    let (_, out) = send(&h, serde_json::from_value(other).unwrap()).await;
    assert_eq!(out["outcome"]["outcome"], "accepted", "{out}");

    let unconfigured = harness_with(&[]).await;
    let mut env_less = unconfigured;
    env_less.deps.config.eventbridge = None;
    let (_, out) = send(
        &env_less,
        serde_json::from_value(eventbridge_approval(&unique_key("REQ"))).unwrap(),
    )
    .await;
    assert!(
        out["outcome"]["errors"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{out}"
    );
}

/// An operator who configured a short webhook secret (31 bytes here; an empty one
/// would let anyone sign) has configured nobody: a delivery signed with it is 401,
/// and nothing is written, until the secret is replaced.
#[tokio::test]
async fn a_webhook_secret_shorter_than_32_bytes_authenticates_nobody() {
    let h = harness().await;
    let weak = "a-31-byte-secret-is-still-weak!";
    h.stack
        .secretsmanager()
        .put_secret_value()
        .secret_id(&h.jira_secret_id)
        .secret_string(weak)
        .send()
        .await
        .unwrap();
    let bytes = serde_json::to_vec(&jira_approval(
        Utc::now(),
        &unique_key("OPS"),
        Duration::hours(4),
    ))
    .unwrap();
    let signed_with_the_weak_key = function_url_event(
        "/jira",
        &bytes,
        &[
            (
                "x-hub-signature",
                auth::hub_signature(weak.as_bytes(), &bytes),
            ),
            ("x-atlassian-webhook-identifier", "d-weak".to_owned()),
        ],
    );
    let (status, out) = send(&h, signed_with_the_weak_key).await;
    assert_eq!(status, 401, "{out}");
    assert_eq!(item_counts(&h).await, (0, 0), "nothing was written");
}

/// An insider with write access to the registry's table adds their own role to an
/// identity's entry, then approves a ticket naming it: the entry no longer agrees
/// with its last recorded change, so it is not believed, and nothing is written.
#[tokio::test]
async fn a_registry_entry_edited_by_hand_grants_nothing() {
    let h = harness().await;
    let attacker = "arn:aws:iam::999999999999:role/attacker";
    h.stack
        .add_principal_by_hand(&h.deps.registry, "orders-etl", attacker)
        .await;

    let mut body = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(4));
    body["issue"]["fields"]["customfield_10204"] = attacker.into();
    let (status, out) = send(&h, jira_event(&body, "d-tampered")).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["errors"][0]["field"], "identity.name", "{out}");
    assert!(
        out["errors"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{out}"
    );
    assert_eq!(item_counts(&h).await, (0, 0), "nothing was written");
}
