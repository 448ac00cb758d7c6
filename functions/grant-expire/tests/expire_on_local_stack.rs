//! The expiry function on the local stack: each trigger alone revokes a live
//! credential at a real PostgreSQL; all together revoke once; a REMOVE that TTL did
//! not make revokes nothing; a target that fails is retried and the grant is never
//! recorded Revoked while its credential still works.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{Duration, Utc};
use common::{Harness, active_grant, harness, make_overdue};
use grant_expire::{ExpireEvent, ExpireResponse, handle};
use serde_json::json;
use ticketbound_domain::Detail;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, Grant, GrantEvent, GrantState, LifecycleRules, verify_chain,
};
use ticketbound_testkit::fixture_json;

fn login_name(g: &Grant) -> String {
    g.credential.as_ref().unwrap().principal_name.clone()
}

fn ttl_remove(g: &Grant, by_ttl: bool) -> ExpireEvent {
    let text = fixture_json("dynamodb/ttl-remove.json")
        .to_string()
        .replace("GRANT_ID_PLACEHOLDER", &g.id.to_string());
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    if !by_ttl {
        // The same REMOVE, made by a person or a process with the table's API.
        v["Records"][0]
            .as_object_mut()
            .unwrap()
            .remove("userIdentity");
    }
    serde_json::from_value(v).unwrap()
}

fn scheduled(g: &Grant) -> ExpireEvent {
    serde_json::from_value(json!({"grant_id": g.id.to_string(), "trigger": "schedule"})).unwrap()
}

async fn assert_revoked(h: &Harness, g: &Grant, password: &str, trigger: &str) {
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Revoked, "{:?}", stored.last_error);
    assert!(
        h.stack.pg_login(&login_name(g), password).await.is_err(),
        "the credential is refused"
    );
    assert!(
        h.fixture
            .issuer
            .secrets_manager
            .describe(&ticketbound_enforce::secret_name(g))
            .await
            .unwrap()
            .is_none(),
        "the secret is gone"
    );
    assert!(
        !h.fixture.issuer.schedules.exists(g.id).await.unwrap(),
        "the schedule is gone"
    );
    let trail = h.deps.store.audit_trail(g.id).await.unwrap();
    verify_chain(g.id, &trail, Some(&stored.audit_head)).unwrap();
    let started: Vec<_> = trail
        .iter()
        .filter(|e| e.action == AuditAction::RevocationStarted)
        .collect();
    let revoked: Vec<_> = trail
        .iter()
        .filter(|e| e.action == AuditAction::Revoked)
        .collect();
    assert_eq!(
        (started.len(), revoked.len()),
        (1, 1),
        "revoked once: {trail:#?}"
    );
    assert_eq!(started[0].details[Detail::Trigger.as_str()], trigger);
    assert_eq!(revoked[0].details[Detail::Trigger.as_str()], trigger);
}

async fn run(h: &Harness, event: ExpireEvent) -> ExpireResponse {
    handle(&h.deps, event).await.unwrap()
}

#[tokio::test]
async fn the_schedule_alone_revokes_and_ends_open_sessions() {
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::seconds(30)).await;
    let session = h.stack.pg_login(&login_name(&g), &pw).await.unwrap();
    session.query("SELECT 1", &[]).await.unwrap();
    // Scheduler fires within a minute of the time: 30 s early is on time.
    let out = run(&h, scheduled(&g)).await;
    assert_eq!(out.revoked, [g.id.to_string()]);
    assert!(
        session.query("SELECT 1", &[]).await.is_err(),
        "the open session was terminated"
    );
    assert_revoked(&h, &g, &pw, "schedule").await;
    let outside =
        ticketbound_testkit::calls_outside(&h.counts, grant_expire::config::AWS_OPERATIONS);
    assert!(outside.is_empty(), "called beyond its role: {outside:?}");
}

#[tokio::test]
async fn a_schedule_far_ahead_of_the_time_does_nothing() {
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::hours(1)).await;
    let out = run(&h, scheduled(&g)).await;
    assert!(out.revoked.is_empty() && out.failed.is_empty());
    assert_eq!(
        h.deps.store.get_grant(g.id).await.unwrap().unwrap().state,
        GrantState::Active
    );
    assert!(h.stack.pg_login(&login_name(&g), &pw).await.is_ok());
}

#[tokio::test]
async fn the_ttl_backstop_alone_revokes() {
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::hours(1)).await;
    let g = make_overdue(&h, &g).await;
    let out = run(&h, ttl_remove(&g, true)).await;
    assert_eq!(out.revoked, [g.id.to_string()], "{out:?}");
    assert_revoked(&h, &g, &pw, "ttl_backstop").await;
}

#[tokio::test]
async fn a_remove_not_made_by_ttl_revokes_nothing() {
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::hours(1)).await;
    let g = make_overdue(&h, &g).await;
    let out = run(&h, ttl_remove(&g, false)).await;
    assert!(out.revoked.is_empty() && out.failed.is_empty(), "{out:?}");
    assert_eq!(
        h.deps.store.get_grant(g.id).await.unwrap().unwrap().state,
        GrantState::Active
    );
    assert!(h.stack.pg_login(&login_name(&g), &pw).await.is_ok());
}

#[tokio::test]
async fn a_withdrawal_alone_revokes() {
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::hours(1)).await;
    // The intake applies the withdrawal: Active -> Revoking.
    let (mut next, t) = g
        .apply(
            &GrantEvent::TicketWithdrawn,
            Utc::now(),
            &LifecycleRules::default(),
        )
        .unwrap();
    let e = next.record(
        AuditRecord::new(
            Utc::now(),
            Actor::itsm_user("priya"),
            AuditAction::RevocationStarted,
        )
        .states(Some(t.from), Some(t.to))
        .detail(Detail::Trigger, "ticket_withdrawn"),
    );
    h.deps.store.save_grant(&next, &[e]).await.unwrap();
    // The stream carries that MODIFY; read it as Lambda would get it.
    let mut poller = ticketbound_testkit::streams::StreamPoller::new(
        &h.stack.sdk,
        &h.deps.store.tables().grants,
    )
    .await
    .unwrap();
    let batch = poller.next_batch().await.unwrap().unwrap();
    let out = run(&h, ExpireEvent::Stream(Box::new(batch))).await;
    assert_eq!(out.revoked, [g.id.to_string()], "{out:?}");
    assert_revoked(&h, &g, &pw, "ticket_withdrawn").await;
}

#[tokio::test]
async fn the_sweep_alone_revokes_what_every_other_path_missed() {
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::hours(1)).await;
    let (live, live_pw) = active_grant(&h, Duration::hours(1)).await;
    let g = make_overdue(&h, &g).await;
    let out = run(&h, ExpireEvent::Sweep).await;
    assert_eq!(out.revoked, [g.id.to_string()], "{out:?}");
    assert_revoked(&h, &g, &pw, "sweep").await;
    assert!(
        h.stack.pg_login(&login_name(&live), &live_pw).await.is_ok(),
        "a grant not yet due is untouched"
    );
}

#[tokio::test]
async fn all_four_triggers_together_revoke_once_naming_the_first() {
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::hours(1)).await;
    let g = make_overdue(&h, &g).await;
    let first = run(&h, scheduled(&g)).await;
    assert_eq!(first.revoked.len(), 1);
    let (a, b, c) = tokio::join!(
        run(&h, ttl_remove(&g, true)),
        run(&h, ExpireEvent::Sweep),
        run(&h, scheduled(&g)),
    );
    for out in [a, b, c] {
        assert!(out.revoked.is_empty() && out.failed.is_empty(), "{out:?}");
    }
    assert_revoked(&h, &g, &pw, "schedule").await;
}

#[tokio::test]
async fn a_failing_target_is_retried_and_the_grant_is_never_revoked_while_the_credential_works() {
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::hours(1)).await;
    let g = make_overdue(&h, &g).await;
    let sm = h.stack.secretsmanager();
    // The target's administrator cannot connect (a port nobody listens on).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    sm.put_secret_value()
        .secret_id(&h.fixture.admin_secret)
        .secret_string(format!(
            "host=127.0.0.1 port={closed} user=postgres dbname=postgres connect_timeout=2"
        ))
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(
            handle(&h.deps, scheduled(&g)).await.is_err(),
            "Scheduler is told to retry"
        );
        let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
        assert_eq!(
            stored.state,
            GrantState::Revoking,
            "not Revoked while the credential works"
        );
        assert!(h.stack.pg_login(&login_name(&g), &pw).await.is_ok());
    }
    let trail = h.deps.store.audit_trail(g.id).await.unwrap();
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.action == AuditAction::RevocationFailed)
            .count(),
        1,
        "the first failure is told; the retry is only counted"
    );

    // The target is back: the next retry completes the revocation.
    sm.put_secret_value()
        .secret_id(&h.fixture.admin_secret)
        .secret_string(h.stack.local.postgres.admin_dsn())
        .send()
        .await
        .unwrap();
    let out = run(&h, scheduled(&g)).await;
    assert_eq!(out.revoked, [g.id.to_string()]);
    assert_revoked(&h, &g, &pw, "schedule").await;
}

/// The local stack's TTL emulation: the expiry trigger item deleted "by TTL", its
/// REMOVE read from the real stream, delivered with TTL's identity, revokes.
#[tokio::test]
async fn the_local_ttl_emulation_delivers_removes_as_ttl_made_them() {
    use std::sync::{Arc, Mutex};
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::hours(1)).await;
    let g = make_overdue(&h, &g).await;
    let marks: ticketbound_testkit::streams::TtlMarks = Arc::new(Mutex::new(Default::default()));
    let mut poller = ticketbound_testkit::streams::StreamPoller::new(
        &h.stack.sdk,
        &h.deps.store.tables().grants,
    )
    .await
    .unwrap();
    poller.mark_ttl_removals(Arc::clone(&marks));
    while let Some(batch) = poller.next_batch().await.unwrap() {
        poller.complete(batch.records.len(), &Default::default());
    }
    let pk = format!("GRANT#{}", g.id);
    marks.lock().unwrap().insert(format!("{pk}|EXPIRY"));
    h.stack
        .dynamodb()
        .delete_item()
        .table_name(&h.deps.store.tables().grants)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("EXPIRY".into()),
        )
        .send()
        .await
        .unwrap();
    let batch = poller.next_batch().await.unwrap().unwrap();
    let identity = batch.records[0].user_identity.as_ref().unwrap();
    assert_eq!(
        (identity.type_.as_str(), identity.principal_id.as_str()),
        ("Service", "dynamodb.amazonaws.com")
    );
    let out = run(&h, ExpireEvent::Stream(Box::new(batch))).await;
    assert_eq!(out.revoked, [g.id.to_string()]);
    assert_revoked(&h, &g, &pw, "ttl_backstop").await;
}

/// A revocation that keeps failing (here for a few seconds of a scaled clock: it
/// escalates after 2 s instead of 15 minutes) is told once, escalated once, retried
/// by schedules of its own with backoff, and never holds back another grant's
/// revocation in the same stream batch; when the target is back it completes and
/// says after how many attempts.
#[tokio::test]
async fn a_failing_revocation_is_told_once_escalated_once_and_holds_nothing_back() {
    use ticketbound_testkit::issuing::{ALTERNATING_TARGET, SINGLE_USER_TARGET};
    let stack = ticketbound_testkit::TestStack::get().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broken = stack
        .create_secret(
            "pg-admin-broken",
            &format!(
                "host=127.0.0.1 port={closed} user=postgres dbname=postgres connect_timeout=2"
            ),
        )
        .await;
    let broken_id = broken.clone();
    let h = common::harness_with(
        stack,
        move |targets| targets[SINGLE_USER_TARGET]["admin_secret_id"] = json!(broken_id),
        &[
            (
                "TICKETBOUND_EXPIRY_FUNCTION_ARN",
                "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-grant-expire"
                    .to_owned(),
            ),
            (
                "TICKETBOUND_SCHEDULER_ROLE_ARN",
                "arn:aws:iam::123456789012:role/ticketbound-scheduler".to_owned(),
            ),
            ("TICKETBOUND_REVOCATION_ESCALATE_AFTER_SECS", "2".to_owned()),
            ("TICKETBOUND_REVOCATION_RETRY_MAX_SECS", "10".to_owned()),
        ],
    )
    .await;
    let (failing, failing_pw) = h
        .fixture
        .active_grant(
            &h.stack,
            &h.deps.store,
            SINGLE_USER_TARGET,
            Duration::hours(1),
        )
        .await;
    let (healthy, healthy_pw) = h
        .fixture
        .active_grant(
            &h.stack,
            &h.deps.store,
            ALTERNATING_TARGET,
            Duration::hours(1),
        )
        .await;
    let failing = make_overdue(&h, &failing).await;
    let healthy = make_overdue(&h, &healthy).await;

    // One stream batch carries both TTL removals: the healthy grant is revoked, the
    // failing one deferred, and the batch is answered whole.
    let ExpireEvent::Stream(mut batch) = ttl_remove(&failing, true) else {
        unreachable!()
    };
    let ExpireEvent::Stream(other) = ttl_remove(&healthy, true) else {
        unreachable!()
    };
    batch.records.extend(other.records);
    // The clock of the retries starts at the first failure: the first retry is due
    // 5 s after it (2 s of slack make an attempt from 3 s on count as that retry).
    let out = run(&h, ExpireEvent::Stream(batch)).await;
    assert_eq!(out.revoked, [healthy.id.to_string()]);
    assert_eq!(out.deferred, [failing.id.to_string()]);
    assert!(out.batch_item_failures.is_empty(), "the shard is not held");
    assert!(
        h.stack
            .pg_login(&login_name(&healthy), &healthy_pw)
            .await
            .is_err()
    );

    // Retries, as their schedules would fire them, for a little over the escalation
    // time: every one fails and is counted, none is told but the escalation.
    let retry = || {
        serde_json::from_value::<ExpireEvent>(
            json!({"grant_id": failing.id.to_string(), "trigger": "retry"}),
        )
        .unwrap()
    };
    // Timed from the first failure as recorded (a busy machine may take a while over
    // the first batch), and ending before 3 s after it.
    let first_failed_at = h
        .deps
        .store
        .revocation_retry(failing.id)
        .await
        .unwrap()
        .unwrap()
        .first_failed_at;
    let mut attempts = 1;
    while Utc::now() < first_failed_at + Duration::milliseconds(2500) {
        let out = run(&h, retry()).await;
        assert_eq!(out.deferred, [failing.id.to_string()], "{out:?}");
        attempts += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let stored = h.deps.store.get_grant(failing.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Revoking);
    assert!(
        h.stack
            .pg_login(&login_name(&failing), &failing_pw)
            .await
            .is_ok(),
        "the target is unreachable for ticketbound, not for this test"
    );
    let retry_record = h
        .deps
        .store
        .revocation_retry(failing.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retry_record.attempts, attempts);
    // One retry pending, made by the first failure; the attempts before it fired
    // counted but scheduled nothing more (retries never multiply).
    let schedules = &h.fixture.issuer.schedules;
    assert!(
        schedules
            .exists_named(&ticketbound_schedule::retry_schedule_name(failing.id, 1))
            .await
            .unwrap(),
        "the next retry is scheduled"
    );
    for n in 2..=attempts {
        assert!(
            !schedules
                .exists_named(&ticketbound_schedule::retry_schedule_name(failing.id, n))
                .await
                .unwrap(),
            "no second pending retry (attempt {n})"
        );
    }
    assert!(retry_record.next_retry_at.unwrap() > retry_record.first_failed_at);
    let trail = h.deps.store.audit_trail(failing.id).await.unwrap();
    let failures: Vec<_> = trail
        .iter()
        .filter(|e| e.action == AuditAction::RevocationFailed)
        .collect();
    assert_eq!(
        failures.len(),
        2,
        "{attempts} failures, told twice: {failures:#?}"
    );
    assert!(failures[0].detail(Detail::Escalated).is_none());
    assert_eq!(failures[1].details[Detail::Escalated.as_str()], "true");
    let headlines: Vec<_> = failures
        .iter()
        .filter_map(|e| ticketbound_itsm::note::render(&stored, e))
        .map(|n| n.headline)
        .collect();
    assert_eq!(headlines.len(), 2, "two notes for the ticket");
    assert!(
        headlines[1].contains("escalated"),
        "the ticket hears of the escalation: {headlines:?}"
    );

    // The target is back: the next retry completes and says how long it took.
    h.stack
        .secretsmanager()
        .put_secret_value()
        .secret_id(&broken)
        .secret_string(h.stack.local.postgres.admin_dsn())
        .send()
        .await
        .unwrap();
    let out = run(&h, retry()).await;
    assert_eq!(out.revoked, [failing.id.to_string()]);
    assert!(
        h.stack
            .pg_login(&login_name(&failing), &failing_pw)
            .await
            .is_err()
    );
    let trail = h.deps.store.audit_trail(failing.id).await.unwrap();
    let revoked = trail
        .iter()
        .find(|e| e.action == AuditAction::Revoked)
        .unwrap();
    assert_eq!(
        revoked.details[Detail::FailedAttempts.as_str()],
        attempts.to_string()
    );
    assert!(
        h.deps
            .store
            .revocation_retry(failing.id)
            .await
            .unwrap()
            .is_none()
    );
    println!("{attempts} failed attempts in 2.5 s: 2 audit events, 1 escalation");
    let outside =
        ticketbound_testkit::calls_outside(&h.counts, grant_expire::config::AWS_OPERATIONS);
    assert!(outside.is_empty(), "called beyond its role: {outside:?}");
}

/// A grant recorded Revoked whose login still works (a credential issued for it after
/// it ended, whose undoing failed and was handed to a retry record): the retry
/// schedule revokes it and says so. Without a retry record, a retry trigger for an
/// ended grant does nothing (a stale schedule).
#[tokio::test]
async fn a_retry_revokes_what_an_ended_grant_still_holds_and_only_then() {
    let h = harness().await;
    let (g, pw) = active_grant(&h, Duration::hours(1)).await;
    // Recorded ended, though its login lives on (as after a failed undoing).
    let (ended, _) =
        ticketbound_testkit::issuing::withdraw_and_revoke(&h.deps.store, g.clone(), None).await;
    assert!(h.stack.pg_login(&login_name(&g), &pw).await.is_ok());
    let retry = || {
        serde_json::from_value::<ExpireEvent>(
            json!({"grant_id": g.id.to_string(), "trigger": "retry"}),
        )
        .unwrap()
    };

    // No retry record: a stale retry schedule changes nothing.
    let out = run(&h, retry()).await;
    assert!(out.revoked.is_empty() && out.already_done == 1, "{out:?}");
    assert!(h.stack.pg_login(&login_name(&g), &pw).await.is_ok());

    h.deps
        .store
        .record_revocation_failure(
            &ended,
            "the target was unreachable",
            Utc::now(),
            Duration::hours(1),
            |_| Duration::seconds(5),
        )
        .await
        .unwrap();
    let out = run(&h, retry()).await;
    assert_eq!(out.revoked, [g.id.to_string()]);
    assert!(
        h.stack.pg_login(&login_name(&g), &pw).await.is_err(),
        "the credential is refused"
    );
    assert!(h.deps.store.revocation_retry(g.id).await.unwrap().is_none());
    let trail = h.deps.store.audit_trail(g.id).await.unwrap();
    let last = trail.last().unwrap();
    assert_eq!(last.action, AuditAction::Revoked);
    assert!(last.detail(Detail::LateCredential).is_some(), "{last:?}");
    verify_chain(g.id, &trail, None).unwrap();
}

/// The retired connector's grants still end on time: the secret (the key itself) is
/// deleted and the grant recorded Revoked, with no target to act on and no receipt
/// claiming one was checked.
#[tokio::test]
async fn a_grant_of_the_retired_api_key_connector_still_ends_on_time() {
    let h = harness().await;
    let g = ticketbound_testkit::issuing::retired_api_key_grant(&h.stack, &h.deps.store).await;
    let g = make_overdue(&h, &g).await;
    let out = run(&h, scheduled(&g)).await;
    assert_eq!(out.revoked, [g.id.to_string()], "{out:?}");
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Revoked, "{:?}", stored.last_error);
    assert!(
        h.deps
            .enforcer
            .secrets_manager
            .describe(&ticketbound_enforce::secret_name(&g))
            .await
            .unwrap()
            .is_none(),
        "the key's secret is gone"
    );
    let trail = h.deps.store.audit_trail(g.id).await.unwrap();
    let revoked = trail
        .iter()
        .find(|e| e.action == AuditAction::Revoked)
        .expect("a revoked event");
    assert_eq!(revoked.details[Detail::SecretDeleted.as_str()], "true");
    assert!(
        revoked.detail(Detail::VerifiedAtTarget).is_none(),
        "nothing was verified at a target: {revoked:?}"
    );
}

/// A fault that passes (a Secrets Manager call that fails once as a network failure
/// would) costs a second try at once, not a deferred
/// retry seconds later: the same trigger revokes the grant, and neither the trail nor
/// the ticket hears of a failure.
#[tokio::test]
async fn a_passing_fault_during_revocation_is_tried_again_at_once_not_deferred() {
    use ticketbound_testkit::faults::{FaultInjector, faulty_secretsmanager};
    let mut h = harness().await;
    let faults = FaultInjector::default();
    h.deps.enforcer.secrets_manager =
        ticketbound_secrets::SecretsManager::new(faulty_secretsmanager(&h.stack.sdk, &faults));
    let (g, password) = active_grant(&h, Duration::hours(1)).await;
    let g = make_overdue(&h, &g).await;
    faults.fail("DeleteSecret", 1);
    let started = std::time::Instant::now();
    let out = run(&h, scheduled(&g)).await;
    assert_eq!(out.revoked, [g.id.to_string()], "{out:?}");
    assert!(out.deferred.is_empty(), "{out:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "well before the first deferred retry would be due"
    );
    assert_revoked(&h, &g, &password, "schedule").await;
    let trail = h.deps.store.audit_trail(g.id).await.unwrap();
    assert!(
        !trail
            .iter()
            .any(|e| e.action == AuditAction::RevocationFailed),
        "nothing failed for good: {trail:#?}"
    );
    assert!(
        h.deps.store.revocation_retry(g.id).await.unwrap().is_none(),
        "no retry pending"
    );
    assert_eq!(
        faults
            .calls()
            .iter()
            .filter(|c| c.as_str() == "DeleteSecret")
            .count(),
        2,
        "the failed call, then the quick retry's"
    );
}
