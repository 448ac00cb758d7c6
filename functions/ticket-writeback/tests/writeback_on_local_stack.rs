//! The write-back against moto (the audit table's real stream) and a local HTTP server
//! speaking the vendors' documented request and error shapes (wiremock): a note per
//! lifecycle step, posted once however often the stream delivers it; 429 waits as long
//! as Retry-After says; a 401 goes to the dead-letter record and the next record still
//! gets through.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration as StdDuration, Instant};
use ticketbound_domain::Detail;

use aws_lambda_events::event::dynamodb::Event;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use ticket_writeback::{Deps, Outcome, handle};
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, Grant, GrantState, SourceSystem, TicketKey,
};
use ticketbound_runtime::EnvReader;
use ticketbound_store::{Store, WritebackState};
use ticketbound_testkit::proxy::{Fault, FaultyProxy, Upstream};
use ticketbound_testkit::streams::StreamPoller;
use ticketbound_testkit::{TestStack, sample_grant, unique_key};
use wiremock::matchers::{body_string_contains, header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Harness {
    store: Store,
    /// The signed log's table, as the checkpointer writes it.
    log: ticketbound_store::LogStore,
    deps: Deps,
    audit_stream: StreamPoller,
    server: MockServer,
    /// Between the write-back and Jira, when a test faults the HTTP exchange.
    proxy: Option<FaultyProxy>,
}

async fn harness() -> Harness {
    harness_with(false).await
}

/// `via_proxy`: Jira is reached through a fault-injecting proxy (`h.proxy`).
async fn harness_with(via_proxy: bool) -> Harness {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let log_table = format!("{}-log", tables.grants.trim_end_matches("-grants"));
    ticketbound_store::schema::ensure_table(
        &stack.dynamodb(),
        &ticketbound_store::schema::LOG,
        &log_table,
    )
    .await
    .unwrap();
    let server = MockServer::start().await;
    let proxy = if via_proxy {
        Some(
            FaultyProxy::start(*server.address(), Upstream::Itsm, 1)
                .await
                .unwrap(),
        )
    } else {
        None
    };
    let jira_url = proxy
        .as_ref()
        .map_or_else(|| server.uri(), FaultyProxy::url);
    let jira_secret = stack
        .create_secret(
            "jira-api",
            r#"{"email": "ticketbound@example.com", "api_token": "jira-token-1"}"#,
        )
        .await;
    let servicenow_secret = stack
        .create_secret(
            "servicenow-api",
            r#"{"auth": "oauth", "client_id": "tb-client", "client_secret": "sn-secret-1"}"#,
        )
        .await;
    let deps = Deps::from_env(
        &stack.sdk,
        EnvReader::from_map([
            ("TICKETBOUND_GRANTS_TABLE", tables.grants.clone()),
            ("TICKETBOUND_AUDIT_TABLE", tables.audit.clone()),
            ("TICKETBOUND_LOG_TABLE", log_table.clone()),
            ("TICKETBOUND_JIRA_URL", jira_url),
            ("TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID", jira_secret),
            ("TICKETBOUND_JIRA_REVOKED_TRANSITION_ID", "31".to_owned()),
            ("TICKETBOUND_SERVICENOW_URL", server.uri()),
            (
                "TICKETBOUND_SERVICENOW_CREDENTIALS_SECRET_ID",
                servicenow_secret,
            ),
            ("TICKETBOUND_SERVICENOW_REVOKED_STATE", "3".to_owned()),
            ("TICKETBOUND_WRITEBACK_ATTEMPTS", "3".to_owned()),
            ("TICKETBOUND_WRITEBACK_MAX_WAIT_SECS", "5".to_owned()),
        ]),
    )
    .unwrap();
    let audit_stream = StreamPoller::new(&stack.sdk, &tables.audit).await.unwrap();
    let store = stack.local_store_for(&tables);
    Harness {
        log: ticketbound_store::LogStore::new(stack.dynamodb(), log_table),
        store,
        deps,
        audit_stream,
        server,
        proxy,
    }
}

impl Harness {
    /// A grant on a ticket of `source`, recorded with its request and policy decision.
    async fn grant(&self, source: SourceSystem, key: &str) -> Grant {
        let mut g = sample_grant(Utc::now(), Duration::hours(4));
        g.request.ticket.source = source;
        g.request.ticket.key = TicketKey::new(key).unwrap();
        let requested = g.record(AuditRecord::new(
            Utc::now(),
            Actor::itsm_user("priya"),
            AuditAction::Requested,
        ));
        let evaluated = g.record(
            AuditRecord::new(
                Utc::now(),
                Actor::component("itsm-intake"),
                AuditAction::PolicyEvaluated,
            )
            .detail(Detail::Decision, "allow")
            .detail(Detail::PolicyIds, "permit-approved-requests"),
        );
        self.store
            .create_grant(&g, &[requested, evaluated], None, Utc::now())
            .await
            .unwrap();
        g
    }

    /// The audit stream's records so far (all of them, in order).
    async fn records(&mut self) -> Event {
        let mut all = Event::default();
        for _ in 0..50 {
            match self.audit_stream.next_batch().await.unwrap() {
                Some(batch) => {
                    let n = batch.records.len();
                    all.records.extend(batch.records);
                    self.audit_stream.complete(n, &Default::default());
                }
                None if !all.records.is_empty() => return all,
                None => tokio::time::sleep(StdDuration::from_millis(100)).await,
            }
        }
        all
    }

    async fn trail(&self, g: &Grant) -> Vec<ticketbound_domain::AuditEvent> {
        self.store.audit_trail(g.id).await.unwrap()
    }
}

fn jira_comment_created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": "10042",
        "self": "https://example.atlassian.net/rest/api/3/issue/10010/comment/10042",
        "created": "2026-11-29T10:00:00.000+0000"
    }))
}

/// Jira's comments with memory, as Jira keeps them: what is posted can be read back.
#[derive(Clone, Default)]
struct JiraComments(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);

impl JiraComments {
    /// Serves issue `key`'s comments on `server` (add and list); returns their path.
    async fn serve(&self, server: &MockServer, key: &str) -> String {
        let path = format!("/rest/api/3/issue/{key}/comment");
        Mock::given(method("POST"))
            .and(wiremock::matchers::path(path.clone()))
            .respond_with(AddComment(self.clone()))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(wiremock::matchers::path(path.clone()))
            .respond_with(ListComments(self.clone()))
            .mount(server)
            .await;
        path
    }

    fn texts(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|c| ticketbound_itsm::outbound::adf_text(&c["body"]))
            .collect()
    }
}

struct AddComment(JiraComments);

impl wiremock::Respond for AddComment {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let mut comments = (self.0).0.lock().unwrap();
        let id = (10_000 + comments.len()).to_string();
        comments.push(json!({"id": id, "body": body["body"]}));
        ResponseTemplate::new(201).set_body_json(json!({"id": id}))
    }
}

struct ListComments(JiraComments);

impl wiremock::Respond for ListComments {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let comments = (self.0).0.lock().unwrap().clone();
        ResponseTemplate::new(200).set_body_json(json!({
            "startAt": 0, "maxResults": 100, "total": comments.len(), "comments": comments
        }))
    }
}

/// Jira made the comment, but its answer was lost (the connection reset after the
/// request was handled): the retry must not make a second comment. Jira comments have
/// no idempotency key, so the write-back reads the ticket for the note's marker before
/// it posts again.
#[tokio::test]
async fn a_comment_made_whose_answer_was_lost_is_not_made_twice() {
    let mut h = harness_with(true).await;
    let key = unique_key("OPS");
    let g = h.grant(SourceSystem::Jira, &key).await;
    let comments = JiraComments::default();
    let path = comments.serve(&h.server, &key).await;
    let proxy = h.proxy.take().unwrap();
    proxy.script(&format!("POST {path}"), Fault::AnswerDropped, 1);

    let batch = h.records().await;
    let out = handle(&h.deps, batch).await;
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    let marker = ticketbound_itsm::note::marker(&g.id.to_string(), 2);
    let texts = comments.texts();
    assert_eq!(
        texts
            .iter()
            .filter(|t| ticketbound_itsm::note::carries_marker(t, &marker))
            .count(),
        1,
        "the note is on the ticket once: {texts:#?}"
    );
    assert_eq!(proxy.injected_by_kind().get("answer_dropped"), Some(&1));
    let record = h.store.writeback(g.id, 2).await.unwrap().unwrap();
    assert_eq!(record.state, WritebackState::Done);
    let told = h
        .trail(&g)
        .await
        .iter()
        .filter(|e| e.action == AuditAction::TicketUpdated)
        .count();
    assert_eq!(told, 1, "told once in the trail");
}

/// An ITSM failing every attempt of one invocation in a way that may pass (503s) is
/// waited out on the stream's own retries: the record is held with its attempts
/// counted, not dead-lettered, and the redelivery, after reading the ticket, posts
/// the note once.
#[tokio::test]
async fn an_itsm_failing_for_a_while_holds_the_record_then_posts_once() {
    let mut h = harness().await;
    let key = unique_key("OPS");
    let g = h.grant(SourceSystem::Jira, &key).await;
    let comments = JiraComments::default();
    let path = comments.serve(&h.server, &key).await;
    // The first three posts meet a 503 before the comments' own answer.
    Mock::given(method("POST"))
        .and(wiremock::matchers::path(path))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&h.server)
        .await;

    let batch = h.records().await;
    let first = handle(&h.deps, batch.clone()).await;
    assert_eq!(first.batch_item_failures.len(), 1, "held: {first:?}");
    let claim = h.store.writeback(g.id, 2).await.unwrap().unwrap();
    assert_eq!(claim.state, WritebackState::Posting);
    assert_eq!(claim.attempts, 3, "the attempts are kept with the claim");
    assert!(h.store.dead_writebacks(g.id).await.unwrap().is_empty());
    assert!(comments.texts().is_empty());

    let second = handle(&h.deps, batch).await;
    assert!(second.batch_item_failures.is_empty(), "{second:?}");
    let marker = ticketbound_itsm::note::marker(&g.id.to_string(), 2);
    assert_eq!(
        comments
            .texts()
            .iter()
            .filter(|t| ticketbound_itsm::note::carries_marker(t, &marker))
            .count(),
        1
    );
    let settled = h.store.writeback(g.id, 2).await.unwrap().unwrap();
    assert_eq!(settled.state, WritebackState::Done);
    assert!(
        !h.trail(&g)
            .await
            .iter()
            .any(|e| e.action == AuditAction::TicketUpdateFailed),
        "nothing was given up"
    );
}

#[tokio::test]
async fn a_redelivered_audit_record_posts_once() {
    let mut h = harness().await;
    let key = unique_key("OPS");
    let g = h.grant(SourceSystem::Jira, &key).await;
    Mock::given(method("POST"))
        .and(path(format!("/rest/api/3/issue/{key}/comment")))
        .and(header(
            "authorization",
            "Basic dGlja2V0Ym91bmRAZXhhbXBsZS5jb206amlyYS10b2tlbi0x",
        ))
        .and(body_string_contains("approved by dana.okafor@example.com"))
        .and(body_string_contains(format!("ticketbound:{}:2", g.id)))
        .respond_with(jira_comment_created())
        .expect(1)
        .mount(&h.server)
        .await;

    let batch = h.records().await;
    let first = handle(&h.deps, batch.clone()).await;
    assert!(first.batch_item_failures.is_empty());
    assert!(first.outcomes.contains(&Outcome::Posted {
        system: "jira".into(),
        reference: "10042".into()
    }));
    // Lambda delivers the same batch again (a retry, a duplicate): nothing more.
    let second = handle(&h.deps, batch).await;
    assert!(
        !second
            .outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Posted { .. }))
    );
    assert!(second.outcomes.contains(&Outcome::AlreadyDone));

    // The note is in the grant's trail, and the trail's own record is not told again.
    let trail = h.trail(&g).await;
    let updates: Vec<_> = trail
        .iter()
        .filter(|e| e.action == AuditAction::TicketUpdated)
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].details[Detail::Reference.as_str()], "10042");
    assert_eq!(
        updates[0].details[Detail::About.as_str()],
        "policy_evaluated"
    );
    let more = h.records().await;
    let outcomes = handle(&h.deps, more).await.outcomes;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Skipped { .. })),
        "{outcomes:?}"
    );
    h.server.verify().await;
}

#[tokio::test]
async fn a_429_is_retried_after_the_time_retry_after_asks_for() {
    let mut h = harness().await;
    let key = unique_key("OPS");
    h.grant(SourceSystem::Jira, &key).await;
    let comment_path = format!("/rest/api/3/issue/{key}/comment");
    Mock::given(method("POST"))
        .and(path(comment_path.clone()))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "2")
                .set_body_json(json!({"errorMessages": ["Rate limit exceeded."]})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("POST"))
        .and(path(comment_path))
        .respond_with(jira_comment_created())
        .expect(1)
        .mount(&h.server)
        .await;

    let batch = h.records().await;
    let started = Instant::now();
    let response = handle(&h.deps, batch).await;
    let waited = started.elapsed();
    assert!(
        response
            .outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Posted { .. }))
    );
    assert!(
        waited >= StdDuration::from_secs(2),
        "Retry-After: 2 was honoured ({waited:?})"
    );
    h.server.verify().await;
}

#[tokio::test]
async fn a_401_goes_to_the_dead_letter_record_and_later_records_still_post() {
    let mut h = harness().await;
    let refused_key = unique_key("OPS");
    let fine_key = unique_key("OPS");
    let refused = h.grant(SourceSystem::Jira, &refused_key).await;
    let fine = h.grant(SourceSystem::Jira, &fine_key).await;
    Mock::given(method("POST"))
        .and(path(format!("/rest/api/3/issue/{refused_key}/comment")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "errorMessages": ["You do not have permission to comment on this issue."],
            "errors": {}
        })))
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/rest/api/3/issue/{fine_key}/comment")))
        .respond_with(jira_comment_created())
        .expect(1)
        .mount(&h.server)
        .await;

    let batch = h.records().await;
    let response = handle(&h.deps, batch).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "the shard moves on"
    );
    assert!(
        response
            .outcomes
            .iter()
            .any(|o| matches!(o, Outcome::DeadLettered { reason } if reason.contains("401")))
    );
    assert!(
        response
            .outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Posted { .. }))
    );

    let dead = h.store.dead_writebacks(refused.id).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].state, WritebackState::Dead);
    assert_eq!(dead[0].attempts, 1, "a 401 is not retried");
    let failed = h
        .trail(&refused)
        .await
        .into_iter()
        .find(|e| e.action == AuditAction::TicketUpdateFailed)
        .expect("the failure is audited");
    assert!(failed.details[Detail::Reason.as_str()].contains("401"));
    assert!(
        h.trail(&fine)
            .await
            .iter()
            .any(|e| e.action == AuditAction::TicketUpdated)
    );
    h.server.verify().await;
}

#[tokio::test]
async fn servicenow_gets_a_work_note_through_oauth_and_its_state_on_revocation() {
    let mut h = harness().await;
    let number = format!("CHG{}", &unique_key("X")[2..]);
    let g = h.grant(SourceSystem::Servicenow, &number).await;
    Mock::given(method("POST"))
        .and(path("/oauth_token.do"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=tb-client"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "sn-access-token",
            "token_type": "Bearer",
            "expires_in": 1799
        })))
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/change_request"))
        .and(query_param("sysparm_query", format!("number={number}")))
        .and(header("authorization", "Bearer sn-access-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": [{"sys_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90"}]
        })))
        .mount(&h.server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(
            "^/api/now/table/change_request/a1b2c3d4e5f60718293a4b5c6d7e8f90$",
        ))
        .and(body_string_contains("work_notes"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {}})))
        .expect(2)
        .mount(&h.server)
        .await;

    let batch = h.records().await;
    let response = handle(&h.deps, batch).await;
    assert!(
        response
            .outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Posted { .. }))
    );

    // The grant is revoked: the note says why, and the record's state is set.
    let current = h.store.get_grant(g.id).await.unwrap().unwrap();
    let mut revoked = current.noted(Utc::now());
    revoked.state = GrantState::Revoked;
    let e = revoked.record(
        AuditRecord::new(
            Utc::now(),
            Actor::component("grant-expire"),
            AuditAction::Revoked,
        )
        .detail(Detail::Trigger, "ticket_withdrawn")
        .detail(Detail::RolesDropped, "tb_orders_etl_x")
        .detail(Detail::SessionsTerminated, 1),
    );
    h.store.save_grant(&revoked, &[e]).await.unwrap();
    let batch = h.records().await;
    let response = handle(&h.deps, batch).await;
    assert!(
        response
            .outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Posted { .. }))
    );
    let patches: Vec<Value> = h
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let last = patches.last().unwrap();
    assert_eq!(last["state"], "3");
    let text = last["work_notes"].as_str().unwrap();
    assert!(text.contains("the ticket was withdrawn"), "{text}");
    assert!(text.contains("Open sessions terminated: 1"), "{text}");
    assert!(
        patches[0].get("state").is_none(),
        "only revocation moves the state"
    );
    h.server.verify().await;
}

/// The write-back's DynamoDB, with faults of `faults`, as the function would see it.
async fn with_faulty_store(h: &mut Harness, faults: &ticketbound_testkit::faults::FaultInjector) {
    let stack = TestStack::get().await;
    h.deps.store = Store::new(
        ticketbound_testkit::faults::faulty_dynamodb(&stack.sdk, faults),
        ticketbound_store::StoreSettings {
            tables: h.store.tables().clone(),
            retention: Duration::days(400),
        },
    );
}

/// The claim is applied, its answer lost, and the SDK's retry fails its condition
/// because of the claim's own first success: the note is still posted, once.
#[tokio::test]
async fn a_claim_applied_without_an_answer_still_posts_the_note_once() {
    let mut h = harness().await;
    let faults = ticketbound_testkit::faults::FaultInjector::default();
    with_faulty_store(&mut h, &faults).await;
    let key = unique_key("OPS");
    let g = h.grant(SourceSystem::Jira, &key).await;
    Mock::given(method("POST"))
        .and(path(format!("/rest/api/3/issue/{key}/comment")))
        .and(body_string_contains(format!("ticketbound:{}:2", g.id)))
        .respond_with(jira_comment_created())
        .expect(1)
        .mount(&h.server)
        .await;

    faults.lose_answer("PutItem", 1);
    let batch = h.records().await;
    let out = handle(&h.deps, batch).await;
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    assert!(
        out.outcomes.contains(&Outcome::Posted {
            system: "jira".into(),
            reference: "10042".into()
        }),
        "{:?}",
        out.outcomes
    );
    let calls = faults.calls();
    assert!(
        calls.iter().filter(|c| *c == "PutItem").count() >= 2
            && calls.iter().any(|c| c == "TransactWriteItems"),
        "the claim was retried by the SDK, then settled with its audit event: {calls:?}",
    );
    let record = h.store.writeback(g.id, 2).await.unwrap().unwrap();
    assert_eq!(record.state, WritebackState::Done);
    h.server.verify().await;
}

/// The note's audit event is written, its answer lost, the SDK retries: the trail
/// holds one `ticket_updated`, not two.
#[tokio::test]
async fn an_audit_append_applied_without_an_answer_is_not_written_twice() {
    let mut h = harness().await;
    let faults = ticketbound_testkit::faults::FaultInjector::default();
    with_faulty_store(&mut h, &faults).await;
    let key = unique_key("OPS");
    let g = h.grant(SourceSystem::Jira, &key).await;
    Mock::given(method("POST"))
        .and(path(format!("/rest/api/3/issue/{key}/comment")))
        .respond_with(jira_comment_created())
        .expect(1)
        .mount(&h.server)
        .await;

    faults.lose_answer("TransactWriteItems", 1);
    let batch = h.records().await;
    let out = handle(&h.deps, batch).await;
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    let trail = h.trail(&g).await;
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.action == AuditAction::TicketUpdated)
            .count(),
        1,
        "{trail:#?}"
    );
    assert!(ticketbound_domain::verify_chain(g.id, &trail, None).is_ok());
    h.server.verify().await;
}

/// Each note names its event's chain head and the newest signed checkpoint, so the
/// ticket can later contradict a chain or a log rewritten in AWS.
#[tokio::test]
async fn each_note_witnesses_the_chain_head_and_the_newest_checkpoint() {
    use ticketbound_evidence::{Hash, Witness, Witnessed};
    let mut h = harness().await;
    let key = unique_key("OPS");
    let g = h.grant(SourceSystem::Jira, &key).await;
    let comments = JiraComments::default();
    comments.serve(&h.server, &key).await;

    let batch = h.records().await;
    let out = handle(&h.deps, batch).await;
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    let trail = h.trail(&g).await;
    let texts = comments.texts();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    let witness = Witness::find(&texts[0]).expect("a witness line").unwrap();
    assert_eq!(
        witness,
        Witness {
            seq: 2,
            chain_head: trail[1].hash,
            checkpoint: None
        }
    );

    // The checkpointer signs; the next note names that checkpoint.
    let signed = Witnessed {
        size: 7,
        root: Hash([9; 32]),
    };
    h.log
        .record_signed(signed.size, Some(signed.root))
        .await
        .unwrap();
    // An older checkpoint recorded late does not move it back.
    h.log.record_signed(5, Some(Hash([1; 32]))).await.unwrap();
    // A note within seconds of the last names the checkpoint read for that one (any
    // checkpoint the log signed is a valid witness); one read later names the new one.
    h.deps.checkpoint_read_serves = std::time::Duration::ZERO;
    audit_a_rotation(&h.store, &g).await;
    let batch = h.records().await;
    let out = handle(&h.deps, batch).await;
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    let trail = h.trail(&g).await;
    let rotated = trail
        .iter()
        .find(|e| e.action == AuditAction::Rotated)
        .unwrap();
    let texts = comments.texts();
    let note = texts
        .iter()
        .find(|t| t.contains("credential rotated"))
        .expect("the rotation's note");
    assert_eq!(
        Witness::find(note).unwrap().unwrap(),
        Witness {
            seq: rotated.seq,
            chain_head: rotated.hash,
            checkpoint: Some(signed)
        }
    );
}

/// The newest checkpoint is read once for the notes of the next few seconds, not once
/// per note: a note right after another names the checkpoint read for the first, even
/// when the log has signed a newer one since (both are valid witnesses).
#[tokio::test]
async fn notes_in_quick_succession_read_the_checkpoint_once() {
    use ticketbound_evidence::{Hash, Witness};
    let mut h = harness().await;
    assert_eq!(
        h.deps.checkpoint_read_serves,
        ticket_writeback::CHECKPOINT_READ_SERVES
    );
    let key = unique_key("OPS");
    let g = h.grant(SourceSystem::Jira, &key).await;
    let comments = JiraComments::default();
    comments.serve(&h.server, &key).await;
    let batch = h.records().await;
    let out = handle(&h.deps, batch).await;
    assert!(out.batch_item_failures.is_empty(), "{out:?}");

    h.log.record_signed(3, Some(Hash([7; 32]))).await.unwrap();
    audit_a_rotation(&h.store, &g).await;
    let batch = h.records().await;
    let out = handle(&h.deps, batch).await;
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    let texts = comments.texts();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    for text in &texts {
        let witness = Witness::find(text).expect("a witness line").unwrap();
        assert_eq!(witness.checkpoint, None, "{text}");
    }
}

/// Adds a rotation's audit event to `g`'s trail, as the rotation function would.
async fn audit_a_rotation(store: &Store, g: &ticketbound_domain::Grant) {
    let current = store.get_grant(g.id).await.unwrap().unwrap();
    let mut rotated = current.noted(Utc::now());
    let e = rotated.record(
        AuditRecord::new(
            Utc::now(),
            Actor::component("secret-rotate"),
            AuditAction::Rotated,
        )
        .detail(Detail::CurrentVersion, "v2"),
    );
    store.save_grant(&rotated, &[e]).await.unwrap();
}
