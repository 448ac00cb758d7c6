//! The intake as the local stack serves it: over HTTP on loopback, as a Lambda
//! Function URL would, the way Jira's webhook sender reaches it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::{Duration, Utc};
use ticketbound_domain::GrantState;
use ticketbound_itsm::auth;
use ticketbound_testkit::{TestStack, jira_approval, poll_grant, post, unique_key};

#[tokio::test]
async fn a_signed_jira_webhook_over_http_becomes_a_grant() {
    let stack = TestStack::get().await;
    let secret = stack.secret_value(&stack.local.webhook_secrets.jira).await;
    let key = unique_key("OPS");
    let body = serde_json::to_vec(&jira_approval(Utc::now(), &key, Duration::hours(2))).unwrap();
    let headers = vec![
        ("Content-Type", "application/json; charset=UTF-8".to_owned()),
        ("User-Agent", "Atlassian Webhook HTTP Client".to_owned()),
        (
            "X-Atlassian-Webhook-Identifier",
            ulid::Ulid::new().to_string(),
        ),
        (
            "X-Hub-Signature",
            auth::hub_signature(secret.as_bytes(), &body),
        ),
    ];
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
    let secret = stack.secret_value(&stack.local.webhook_secrets.jira).await;
    let body = serde_json::to_vec(&jira_approval(
        Utc::now(),
        &unique_key("OPS"),
        Duration::hours(2),
    ))
    .unwrap();
    let headers = vec![
        ("Content-Type", "application/json".to_owned()),
        (
            "X-Atlassian-Webhook-Identifier",
            ulid::Ulid::new().to_string(),
        ),
        (
            "X-Hub-Signature",
            auth::hub_signature(secret.as_bytes(), &body),
        ),
    ];
    let answer = post(&stack.local.intake_url, "/jira", &headers, &body)
        .await
        .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    let grant_id = answer.json()["grant_id"].as_str().unwrap().parse().unwrap();

    let store = stack.local_store();
    let grant = poll_grant(&store, grant_id, 100, |g| {
        !matches!(g.state, GrantState::Approved | GrantState::Provisioning)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(grant.state, GrantState::Active, "{:?}", grant.last_error);

    let arn = grant.credential.unwrap().secret_arn;
    let value = stack
        .secretsmanager()
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .unwrap();
    let credential: serde_json::Value =
        serde_json::from_str(value.secret_string().unwrap()).unwrap();
    let db = stack
        .pg_login(
            credential["username"].as_str().unwrap(),
            credential["password"].as_str().unwrap(),
        )
        .await
        .unwrap();
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

/// The promise: a credential dies with its time. A grant living 10 seconds works, and
/// within 2 seconds after its not-after time a new login is refused and the session
/// that was open is gone, by the schedule (or the TTL backstop) the local stack fires
/// as AWS would.
#[tokio::test]
async fn a_ten_second_grant_is_refused_within_two_seconds_of_its_end() {
    let stack = TestStack::get().await;
    let secret = stack.secret_value(&stack.local.webhook_secrets.jira).await;
    let body = serde_json::to_vec(&jira_approval(
        Utc::now(),
        &unique_key("OPS"),
        Duration::seconds(10),
    ))
    .unwrap();
    let headers = vec![
        ("Content-Type", "application/json".to_owned()),
        (
            "X-Atlassian-Webhook-Identifier",
            ulid::Ulid::new().to_string(),
        ),
        (
            "X-Hub-Signature",
            auth::hub_signature(secret.as_bytes(), &body),
        ),
    ];
    let answer = post(&stack.local.intake_url, "/jira", &headers, &body)
        .await
        .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    let grant_id = answer.json()["grant_id"].as_str().unwrap().parse().unwrap();
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
