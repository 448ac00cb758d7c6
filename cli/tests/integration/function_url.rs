//! The intake as the local stack serves it: over HTTP on loopback, as a Lambda
//! Function URL would, the way Jira's webhook sender reaches it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::{Duration, Utc};
use ticketbound_domain::GrantState;
use ticketbound_domain::{SourceSystem, Ticket, TicketKey};
use ticketbound_testkit::jira_desk::{DEMO_PROJECT, TEST_PROJECT};
use ticketbound_testkit::{TestStack, jira_webhook_headers, poll_grant, post};

#[tokio::test]
async fn a_signed_jira_webhook_over_http_becomes_a_grant() {
    let stack = TestStack::get().await;
    let secret = stack.secret_value(&stack.local.webhook_secrets.jira).await;
    let desk = stack.jira_desk().await;
    let (key, webhook) = desk
        .approved(TEST_PROJECT, Utc::now(), Duration::hours(2), |_| {})
        .await;
    let body = serde_json::to_vec(&webhook).unwrap();
    let headers = jira_headers(&secret, &body);
    let answer = post(&stack.local.intake_url, "/jira", &headers, &body)
        .await
        .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    let grant_id = answer.json()["grant_id"].as_str().unwrap().parse().unwrap();

    let again = post(&stack.local.intake_url, "/jira", &headers, &body)
        .await
        .unwrap();
    assert_eq!(again.status, 200, "{}", again.body);

    let store = stack.local_store();
    let grant = store.get_grant(grant_id).await.unwrap().unwrap();
    // The host's provisioner may already have picked it up from the stream.
    assert!(
        matches!(
            grant.state,
            GrantState::Approved | GrantState::Provisioning | GrantState::Active
        ),
        "{:?}",
        grant.state
    );
    assert_eq!(grant.request.ticket.key.as_str(), key);

    let unsigned = post(&stack.local.intake_url, "/jira", &headers[..3], &body)
        .await
        .unwrap();
    assert_eq!(unsigned.status, 401);
    let wrong_route = post(&stack.local.intake_url, "/nope", &headers, &body)
        .await
        .unwrap();
    assert_eq!(wrong_route.status, 404);
}

/// The whole way from an ITSM approval to a working credential, as the local stack
/// runs it: the intake records the grant, the stream feeds the provisioner, the
/// credential lands in Secrets Manager and logs in to PostgreSQL within its scope.
#[tokio::test]
async fn a_jira_approval_becomes_a_working_credential() {
    let stack = TestStack::get().await;
    // Raised and approved on the local Jira site, whose webhook for the demo's
    // project goes to the local intake on its own (signed, as Jira sends it).
    let desk = stack.jira_desk().await;
    let (key, _) = desk
        .approved(DEMO_PROJECT, Utc::now(), Duration::hours(2), |_| {})
        .await;
    let store = stack.local_store();
    let ticket = Ticket {
        source: SourceSystem::Jira,
        key: TicketKey::new(&key).unwrap(),
        link: None,
    };
    let mut grant_id = None;
    for _ in 0..100 {
        if let Some(g) = store.grants_for_ticket(&ticket).await.unwrap().first() {
            grant_id = Some(g.id);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let grant_id = grant_id.unwrap_or_else(|| panic!("the site's webhook for {key} made no grant"));

    let grant = poll_grant(&store, grant_id, 100, |g| {
        !matches!(g.state, GrantState::Approved | GrantState::Provisioning)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(grant.state, GrantState::Active, "{:?}", grant.last_error);

    let db = logged_in(&stack, &grant).await;
    db.query("SELECT customer, total FROM orders.orders", &[])
        .await
        .unwrap();
    db.query("SELECT * FROM orders.daily_totals", &[])
        .await
        .unwrap();
    let refused = db
        .query("SELECT * FROM orders.payments", &[])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}

/// A Jira request approved for a change window that begins 35 seconds later (past the
/// provisioner's 30 s of waiting in place), on the local stack end to end (the site's
/// webhook, the intake, the provisioner on the stream deferring it, the host firing the
/// start schedule as Scheduler would): before the start the grant waits and no login
/// exists at the database; from the start its credential works.
#[tokio::test]
async fn a_jira_approval_for_a_later_change_window_works_from_its_start_only() {
    let stack = TestStack::get().await;
    let desk = stack.jira_desk().await;
    let start = Utc::now() + Duration::seconds(35);
    let (key, _) = desk
        .approved(DEMO_PROJECT, Utc::now(), Duration::hours(2), |fields| {
            fields[ticketbound_local::fixtures::CHANGE_WINDOW_START_FIELD] =
                ticketbound_local::fixtures::jira_time(start).into();
        })
        .await;
    let store = stack.local_store();
    let ticket = Ticket {
        source: SourceSystem::Jira,
        key: TicketKey::new(&key).unwrap(),
        link: None,
    };
    let deferred = poll_grant_of(&store, &ticket, |g| g.deferred_until.is_some()).await;
    assert_eq!(
        deferred.state,
        GrantState::Approved,
        "{:?}",
        deferred.last_error
    );
    assert!(Utc::now() < start, "the test is too slow to see the wait");
    let login = ticketbound_targets::principal_name(&deferred);
    let logins = || async {
        let admin = stack.pg_admin().await;
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_roles WHERE rolname = $1",
                &[&login],
            )
            .await
            .unwrap()
            .get(0);
        n
    };
    assert_eq!(logins().await, 0, "no login before the window's start");

    let grant = poll_grant(&store, deferred.id, 600, |g| {
        !matches!(g.state, GrantState::Approved | GrantState::Provisioning)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(grant.state, GrantState::Active, "{:?}", grant.last_error);
    let trail = store.audit_trail(grant.id).await.unwrap();
    let issued = trail
        .iter()
        .find(|e| e.action == ticketbound_domain::AuditAction::ProvisioningStarted)
        .unwrap();
    assert!(
        issued.at >= start,
        "issued at {} before the start {start}",
        issued.at
    );
    assert!(
        trail
            .iter()
            .any(|e| e.action == ticketbound_domain::AuditAction::ProvisioningDeferred),
        "deferred by the stream's invocation, issued by the start schedule"
    );
    let fired = aws_sdk_scheduler::Client::new(&stack.sdk)
        .get_schedule()
        .name(grant_provision::start_schedule_name(grant.id, 0))
        .group_name(ticketbound_local::targets::SCHEDULE_GROUP)
        .send()
        .await;
    assert!(
        fired.is_err(),
        "the start schedule fired and deleted itself"
    );
    let db = logged_in(&stack, &grant).await;
    db.query("SELECT customer FROM orders.orders", &[])
        .await
        .unwrap();

    // The ticket was told it waits, and why.
    let note = note_saying(&desk, &key, "waits for the change window")
        .await
        .unwrap_or_else(|| panic!("{key} was never told that it waits"));
    assert!(
        note.contains("Nothing is issued before the change window begins"),
        "{note}"
    );
}

/// A session at the database with the login in `grant`'s secret, as its workload
/// opens one.
async fn logged_in(stack: &TestStack, grant: &ticketbound_domain::Grant) -> tokio_postgres::Client {
    let value = stack
        .secret_value(&grant.credential.clone().unwrap().secret_arn)
        .await;
    let credential: serde_json::Value = serde_json::from_str(&value).unwrap();
    stack
        .pg_login(
            credential["username"].as_str().unwrap(),
            credential["password"].as_str().unwrap(),
        )
        .await
        .unwrap()
}

/// The first note on Jira issue `key` that says `words`, as the requester reads the
/// issue's comments (polled for up to 15 s).
async fn note_saying(
    desk: &ticketbound_testkit::jira_desk::JiraDesk,
    key: &str,
    words: &str,
) -> Option<String> {
    for _ in 0..150 {
        let comments = desk
            .call(
                ticketbound_testkit::jira_desk::PRIYA,
                "GET",
                &format!("/rest/api/3/issue/{key}/comment"),
                None,
            )
            .await
            .json();
        let told = comments["comments"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| ticketbound_itsm::outbound::adf_text(&c["body"]))
            .find(|t| t.contains(words));
        if told.is_some() {
            return told;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// The first grant of `ticket` once `done` holds for it (polled for up to 15 s).
async fn poll_grant_of(
    store: &ticketbound_store::Store,
    ticket: &Ticket,
    done: impl Fn(&ticketbound_domain::Grant) -> bool,
) -> ticketbound_domain::Grant {
    for _ in 0..150 {
        if let Some(g) = store.grants_for_ticket(ticket).await.unwrap().first()
            && done(g)
        {
            return g.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "no grant of {} came to the state awaited",
        ticket.qualified_key()
    );
}

/// The promise: a credential dies with its time. A grant living 10 seconds works, and
/// within 2 seconds after its not-after time a new login is refused and the session
/// that was open is gone, by the schedule (or the TTL backstop) the local stack fires
/// as AWS would.
#[tokio::test]
async fn a_ten_second_grant_is_refused_within_two_seconds_of_its_end() {
    let stack = TestStack::get().await;
    let grant_id = approve(&stack, Duration::seconds(10)).await;
    let store = stack.local_store();
    let grant = poll_grant(&store, grant_id, 50, |g| g.state == GrantState::Active)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.state, GrantState::Active, "{:?}", grant.last_error);
    let value = stack
        .secret_value(&grant.credential.clone().unwrap().secret_arn)
        .await;
    let credential: serde_json::Value = serde_json::from_str(&value).unwrap();
    let (user, password) = (
        credential["username"].as_str().unwrap(),
        credential["password"].as_str().unwrap(),
    );
    let session = stack.pg_login(user, password).await.unwrap();
    session
        .query("SELECT count(*) FROM orders.orders", &[])
        .await
        .unwrap();

    let deadline = grant.not_after() + Duration::seconds(2);
    tokio::time::sleep(
        (grant.not_after() - Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
    .await;
    let mut refused_at = None;
    while Utc::now() < deadline {
        if stack.pg_login(user, password).await.is_err()
            && session.query("SELECT 1", &[]).await.is_err()
        {
            refused_at = Some(Utc::now());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused_at = refused_at
        .unwrap_or_else(|| panic!("the credential still worked 2 s after its not-after time"));
    println!(
        "refused {} ms after the not-after time",
        (refused_at - grant.not_after()).num_milliseconds()
    );
    let stored = poll_grant(&store, grant_id, 20, |g| g.state == GrantState::Revoked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, GrantState::Revoked);
}

/// The headers Jira's webhook sender puts on `body`, a new delivery each time.
fn jira_headers(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    jira_webhook_headers(secret, body, &ulid::Ulid::new().to_string())
}

/// Sends a signed Jira approval for `lifetime` as Jira's webhook sender does; returns
/// the new grant's id.
async fn approve(stack: &TestStack, lifetime: Duration) -> ticketbound_domain::GrantId {
    let secret = stack.secret_value(&stack.local.webhook_secrets.jira).await;
    let desk = stack.jira_desk().await;
    let (_, webhook) = desk
        .approved(TEST_PROJECT, Utc::now(), lifetime, |_| {})
        .await;
    let body = serde_json::to_vec(&webhook).unwrap();
    let answer = post(
        &stack.local.intake_url,
        "/jira",
        &jira_headers(&secret, &body),
        &body,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    answer.json()["grant_id"].as_str().unwrap().parse().unwrap()
}

/// `GET /local/meter` as a map of function → call → count.
async fn meter(stack: &TestStack) -> serde_json::Value {
    let answer = ticketbound_testkit::get(&stack.local.intake_url, "/local/meter")
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["functions"].clone()
}

fn grew(before: &serde_json::Value, after: &serde_json::Value, function: &str, call: &str) -> u64 {
    let n = |v: &serde_json::Value| v[function][call].as_u64().unwrap_or(0);
    n(after).saturating_sub(n(before))
}

#[tokio::test]
async fn the_host_counts_each_functions_aws_calls_and_rotates_on_request() {
    let stack = TestStack::get().await;
    let before = meter(&stack).await;
    let id = approve(&stack, Duration::hours(2)).await;
    let store = stack.local_store();
    let active = poll_grant(&store, id, 150, |g| g.state == GrantState::Active)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.state, GrantState::Active);

    let rotated = post(
        &stack.local.intake_url,
        &format!("/local/rotate/{id}"),
        &[],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let after_rotation = store.get_grant(id).await.unwrap().unwrap();
    assert!(after_rotation.last_rotated_at.is_some());
    assert_ne!(after_rotation.secret_version, active.secret_version);

    let after = meter(&stack).await;
    // Each function's own calls, under its name; retries would only add to them.
    assert!(grew(&before, &after, "itsm-intake", "Lambda.Invocations") >= 1);
    assert!(
        grew(
            &before,
            &after,
            "itsm-intake",
            "DynamoDB.TransactWriteItems"
        ) >= 1
    );
    assert!(
        grew(
            &before,
            &after,
            "itsm-intake",
            "DynamoDB.TransactWriteItems items"
        ) >= 2
    );
    assert!(grew(&before, &after, "grant-provision", "Lambda.Invocations") >= 1);
    assert!(
        grew(
            &before,
            &after,
            "grant-provision",
            "SecretsManager.CreateSecret"
        ) >= 1
    );
    assert!(
        grew(
            &before,
            &after,
            "grant-provision",
            "Scheduler.CreateSchedule"
        ) >= 1
    );
    assert!(grew(&before, &after, "secret-rotate", "Lambda.Invocations") >= 4);
    assert!(
        grew(
            &before,
            &after,
            "secret-rotate",
            "SecretsManager.PutSecretValue"
        ) >= 1
    );
    // What the host does in AWS's place (reading the streams) is nobody's call.
    for function in ["itsm-intake", "grant-provision", "ticket-writeback"] {
        assert_eq!(
            grew(&before, &after, function, "DynamoDBStreams.GetRecords"),
            0,
            "{function}"
        );
    }

    let unknown = post(
        &stack.local.intake_url,
        &format!(
            "/local/rotate/{}",
            ticketbound_domain::GrantId::new(Utc::now(), 7)
        ),
        &[],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let malformed = post(&stack.local.intake_url, "/local/rotate/nope", &[], &[])
        .await
        .unwrap();
    assert_eq!(malformed.status, 400);
}

/// An approver without authority over the target: the site's own webhook makes a
/// Rejected grant, and the write-back tells the ticket why, naming the approval that
/// did not count.
#[tokio::test]
async fn the_ticket_is_told_which_approval_did_not_count() {
    use ticketbound_testkit::jira_desk::{DANA, MALLORY};
    let stack = TestStack::get().await;
    let desk = stack.jira_desk().await;
    let (key, _) = desk
        .approved_by(
            DEMO_PROJECT,
            Utc::now(),
            Duration::hours(2),
            &[DANA, MALLORY],
            |_| {},
        )
        .await;
    let note = note_saying(&desk, &key, "access denied by policy")
        .await
        .unwrap_or_else(|| panic!("{key} was never told of its denial"));
    assert!(
        note.contains(&format!(
            "Not counted: the approval by {MALLORY} does not count"
        )),
        "{note}"
    );
    assert!(
        note.contains("prod access needs at least two approvers"),
        "{note}"
    );
    assert!(!note.contains("sender's signature"), "{note}");
}
