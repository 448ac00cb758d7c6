//! The provisioner on the local stack: records arrive from the grants table's real
//! stream in Lambda's event shape; the credential lands in Secrets Manager and works at
//! a real PostgreSQL, exactly within its scope; retries, redeliveries and refusals
//! leave nothing twice and nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use aws_lambda_events::event::dynamodb::Event;
use chrono::{Duration, Utc};
use grant_provision::{Deps, handle, secret_name};
use serde_json::json;
use ticketbound_domain::Detail;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, Grant, GrantState, Permission, Scope, SystemId, verify_chain,
};
use ticketbound_runtime::{EnvReader, ExposeSecret};
use ticketbound_schedule::schedule_name;
use ticketbound_secrets::credentials::DatabaseSecret;
use ticketbound_targets::principal_name;
use ticketbound_testkit::streams::StreamPoller;
use ticketbound_testkit::{PgFixture, TestStack, sample_grant};

const PROVISION_FUNCTION_ARN: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-grant-provision";
const ROTATION_FUNCTION_ARN: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-secret-rotate";

struct Harness {
    stack: TestStack,
    deps: Deps,
    pg: PgFixture,
    poller: StreamPoller,
    group: String,
    counts: ticketbound_local::calls::CallCounts,
}

/// A harness whose target is administered with `admin_dsn` (default: the local
/// stack's least-privilege administrator).
async fn harness(admin_dsn: Option<String>, max_attempts: u32) -> Harness {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let pg = stack.pg_fixture().await;
    let admin = stack
        .create_secret("pg-admin", &stack.local.postgres.admin_dsn())
        .await;
    let group = format!("t{}", ulid::Ulid::new());
    aws_sdk_scheduler::Client::new(&stack.sdk)
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .unwrap();
    let admin_secret = match admin_dsn {
        Some(dsn) => stack.create_secret("pg-admin-other", &dsn).await,
        None => admin,
    };
    let targets = json!({
        "orders-db": {
            "connector": "postgres",
                "environment": "prod",
            "admin_secret_id": admin_secret,
            "host": stack.local.postgres.host,
            "port": stack.local.postgres.port,
            "dbname": stack.local.postgres.database,
            "ca_file": stack.local.postgres.ca_file,
            "allowed_roles": [pg.reader, pg.reporting],
        },
    });
    let registry = stack.seeded_registry().await;
    let env = EnvReader::from_map([
        ("TICKETBOUND_GRANTS_TABLE", tables.grants.clone()),
        ("TICKETBOUND_AUDIT_TABLE", tables.audit.clone()),
        ("TICKETBOUND_IDENTITIES_TABLE", registry.table().to_owned()),
        ("TICKETBOUND_TARGETS", targets.to_string()),
        (
            "TICKETBOUND_EXPIRY_FUNCTION_ARN",
            "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-grant-expire".into(),
        ),
        (
            "TICKETBOUND_PROVISION_FUNCTION_ARN",
            PROVISION_FUNCTION_ARN.into(),
        ),
        (
            "TICKETBOUND_SCHEDULER_ROLE_ARN",
            "arn:aws:iam::123456789012:role/ticketbound-scheduler".into(),
        ),
        ("TICKETBOUND_SCHEDULE_GROUP", group.clone()),
        (
            "TICKETBOUND_MAX_PROVISIONING_ATTEMPTS",
            max_attempts.to_string(),
        ),
        // `ticketbound local up` registers this function with the emulator.
        (
            "TICKETBOUND_ROTATION_FUNCTION_ARN",
            ROTATION_FUNCTION_ARN.to_owned(),
        ),
    ]);
    // The function's own calls are counted, to check them against its role.
    let counts = ticketbound_local::calls::CallCounts::new();
    let sdk = stack.local.function_sdk_config(&counts).await;
    let deps = Deps::from_env(&sdk, env).unwrap();
    let poller = StreamPoller::new(&stack.sdk, &tables.grants).await.unwrap();
    Harness {
        stack,
        deps,
        pg,
        poller,
        group,
        counts,
    }
}

/// Records `grant` Approved, lets the provisioner take it, and returns why it
/// failed (it must have).
async fn refused_at_provisioning(h: &mut Harness, grant: &Grant) -> String {
    let mut grant = grant.clone();
    let e = grant.record(
        AuditRecord::new(Utc::now(), Actor::itsm_user("sam"), AuditAction::Requested)
            .states(None, Some(GrantState::Approved)),
    );
    h.deps
        .store
        .create_grant(&grant, &[e], None, Utc::now())
        .await
        .unwrap();
    drain(h).await;
    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Failed, "{:?}", stored.last_error);
    stored.last_error.unwrap_or_default()
}

/// An Approved grant for orders-db with `scope`, recorded as the intake records it.
async fn approve(h: &Harness, scope: &[&str]) -> Grant {
    approve_with(h, scope, |_| {}).await
}

/// Like [`approve`], with the request as `edit` leaves it.
async fn approve_with(h: &Harness, scope: &[&str], edit: impl FnOnce(&mut Grant)) -> Grant {
    let mut grant = sample_grant(Utc::now(), Duration::hours(2));
    grant.request.scope = Scope::new(scope.iter().map(|s| Permission::new(*s).unwrap())).unwrap();
    grant.request.target.system_id = SystemId::new("orders-db").unwrap();
    edit(&mut grant);
    let e = grant.record(
        AuditRecord::new(
            Utc::now(),
            Actor::itsm_user("priya.raman@example.com"),
            AuditAction::Requested,
        )
        .states(None, Some(GrantState::Approved)),
    );
    h.deps
        .store
        .create_grant(&grant, &[e], None, Utc::now())
        .await
        .unwrap();
    grant
}

/// Delivers the stream to the handler like Lambda until nothing waits; returns the
/// batches delivered and how many deliveries reported failures.
async fn drain(h: &mut Harness) -> (Vec<Event>, usize) {
    let (mut batches, mut failures) = (Vec::new(), 0);
    for _ in 0..50 {
        let Some(batch) = h.poller.next_batch().await.unwrap() else {
            break;
        };
        let n = batch.records.len();
        let response = handle(&h.deps, batch.clone()).await.unwrap();
        failures += usize::from(!response.batch_item_failures.is_empty());
        h.poller.complete(n, &response);
        batches.push(batch);
    }
    assert_eq!(h.poller.backlog(), 0, "the stream settles");
    (batches, failures)
}

async fn secret_count(h: &Harness, name: &str) -> usize {
    use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values(name)
        .build();
    let pages = h
        .stack
        .secretsmanager()
        .list_secrets()
        .filters(filter)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    pages
        .into_iter()
        .map(Result::unwrap)
        .flat_map(|page| page.secret_list().to_vec())
        .filter(|s| s.name() == Some(name))
        .count()
}

async fn schedule_exists(h: &Harness, grant: &Grant) -> bool {
    aws_sdk_scheduler::Client::new(&h.stack.sdk)
        .get_schedule()
        .name(schedule_name(grant.id))
        .group_name(&h.group)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn an_approved_grant_becomes_a_working_credential_within_its_scope() {
    let mut h = harness(None, 5).await;
    let pg = h.pg.clone();
    let grant = approve(&h, &[&pg.reader, &pg.reporting]).await;
    drain(&mut h).await;
    // What the provisioner called (before this test reads anything through it).
    let outside =
        ticketbound_testkit::calls_outside(&h.counts, grant_provision::config::AWS_OPERATIONS);
    assert!(outside.is_empty(), "called beyond its role: {outside:?}");

    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Active, "{:?}", stored.last_error);
    let credential = stored.credential.clone().unwrap();
    assert_eq!(credential.principal_name, principal_name(&grant));

    // The secret: its name, tags and resource policy.
    let sm = h.stack.secretsmanager();
    let described = sm
        .describe_secret()
        .secret_id(&credential.secret_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(described.name(), Some(secret_name(&grant).as_str()));
    let tags: std::collections::HashMap<_, _> = described
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    assert_eq!(tags["managed-by"], "ticketbound");
    assert_eq!(tags["grant-id"], grant.id.to_string());
    assert_eq!(tags["ticket"], grant.request.ticket.qualified_key());
    assert_eq!(tags["owner"], "team-data-platform");
    assert_eq!(tags["expires-at"], grant.not_after().to_rfc3339());
    assert_eq!(
        described.rotation_lambda_arn(),
        Some(ROTATION_FUNCTION_ARN),
        "rotation is turned on"
    );
    let policy = sm
        .get_resource_policy()
        .secret_id(&credential.secret_arn)
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(policy.resource_policy().unwrap()).unwrap();
    assert_eq!(
        policy["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::123456789012:role/orders-etl"
    );
    assert_eq!(policy["Statement"][1]["Effect"], "Deny");

    // The credential read from the secret logs in and can do exactly its scope.
    let value = sm
        .get_secret_value()
        .secret_id(&credential.secret_arn)
        .send()
        .await
        .unwrap();
    let secret: DatabaseSecret = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(secret.engine, "postgres");
    assert_eq!(secret.username, credential.principal_name);
    let db = h
        .stack
        .pg_login(&secret.username, &secret.password)
        .await
        .unwrap();
    db.query(&format!("SELECT * FROM {}.orders", pg.schema), &[])
        .await
        .unwrap();
    let refused = db
        .query(&format!("SELECT * FROM {}.payments", pg.schema), &[])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );

    assert!(
        schedule_exists(&h, &grant).await,
        "the expiry schedule is set"
    );
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    verify_chain(grant.id, &trail, Some(&stored.audit_head)).unwrap();
    let actions: Vec<_> = trail.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::Requested,
            AuditAction::ProvisioningStarted,
            AuditAction::Provisioned
        ]
    );
    let provisioned = &trail[2].details;
    assert_eq!(provisioned["secret_arn"], credential.secret_arn);
    assert!(
        !provisioned.values().any(|v| v.contains(&secret.password)),
        "no secret value in the audit"
    );
}

#[tokio::test]
async fn a_redelivered_record_creates_nothing_twice() {
    let mut h = harness(None, 5).await;
    let pg = h.pg.clone();
    let grant = approve(&h, &[&pg.reader]).await;
    let (batches, _) = drain(&mut h).await;
    let first = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    let trail_len = h.deps.store.audit_trail(grant.id).await.unwrap().len();

    // Lambda delivers the same batch again (at least once).
    for batch in batches {
        let response = handle(&h.deps, batch).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(
        h.deps.store.get_grant(grant.id).await.unwrap().unwrap(),
        first
    );
    assert_eq!(
        h.deps.store.audit_trail(grant.id).await.unwrap().len(),
        trail_len
    );
    assert_eq!(secret_count(&h, &secret_name(&grant)).await, 1);
    assert_eq!(role_count(&h, &grant).await, 1);
}

#[tokio::test]
async fn a_scope_outside_the_allow_list_is_refused_before_anything_is_created() {
    let mut h = harness(None, 5).await;
    let pg = h.pg.clone();
    let grant = approve(&h, &[&pg.reader, &pg.payments]).await;
    let (_, failures) = drain(&mut h).await;
    assert_eq!(failures, 0, "a refusal is final, not retried");

    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Failed);
    assert!(stored.last_error.unwrap().contains(&pg.payments));
    assert_eq!(secret_count(&h, &secret_name(&grant)).await, 0);
    assert!(!schedule_exists(&h, &grant).await);
    assert_eq!(role_count(&h, &grant).await, 0);
}

#[tokio::test]
async fn an_unreachable_target_is_retried_then_given_up_with_nothing_left_behind() {
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // An unreachable target: a port nobody listens on.
    let dsn = format!(
        "host=127.0.0.1 port={closed_port} user=postgres dbname=postgres connect_timeout=2"
    );
    let mut h = harness(Some(dsn), 3).await;
    let pg = h.pg.clone();
    let grant = approve(&h, &[&pg.reader]).await;
    let (_, failures) = drain(&mut h).await;
    assert_eq!(
        failures, 2,
        "two retryable failures, then the third attempt gives up"
    );

    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Failed);
    assert_eq!(stored.provisioning_attempts, 3);
    // The secret made on the first attempt was reused by the retries, then removed.
    assert_eq!(secret_count(&h, &secret_name(&grant)).await, 0);
    assert!(!schedule_exists(&h, &grant).await);
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    verify_chain(grant.id, &trail, Some(&stored.audit_head)).unwrap();
    let failed = trail
        .iter()
        .filter(|e| e.action == AuditAction::ProvisioningFailed)
        .count();
    assert_eq!(failed, 3);
}

/// An administrator that could not end a revoked login's sessions (CREATEROLE
/// without `pg_signal_backend`) is found at its first use: nothing is issued, the
/// grant fails at once with the reason, and no secret or login is left.
#[tokio::test]
async fn an_administrator_that_could_not_revoke_completely_issues_nothing() {
    let stack = TestStack::get().await;
    let weak = format!(
        "weak_admin_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    stack
        .pg_admin()
        .await
        .batch_execute(&format!(
            "CREATE ROLE {weak} LOGIN CREATEROLE PASSWORD 'weak-pw'"
        ))
        .await
        .unwrap();
    let pg = &stack.local.postgres;
    let dsn = format!(
        "host={} port={} user={weak} password=weak-pw dbname={}",
        pg.host, pg.port, pg.database
    );
    let mut h = harness(Some(dsn), 5).await;
    let reader = h.pg.reader.clone();
    let grant = approve(&h, &[&reader]).await;
    drain(&mut h).await;

    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Failed, "refused, not retried");
    let reason = stored.last_error.unwrap_or_default();
    assert!(
        reason.contains(&weak) && reason.contains("pg_signal_backend"),
        "{reason}"
    );
    assert_eq!(secret_count(&h, &secret_name(&grant)).await, 0);
    assert_eq!(role_count(&h, &grant).await, 0, "no login was made");
}

/// Someone who can write secrets makes the grant's secret first, with a password
/// they know (the name is predictable): provisioning refuses to give that value to
/// the target, and no login is made with it.
#[tokio::test]
async fn a_secret_value_ticketbound_did_not_write_is_never_given_to_the_target() {
    let mut h = harness(None, 5).await;
    let reader = h.pg.reader.clone();
    let mut grant = sample_grant(Utc::now(), Duration::hours(2));
    grant.request.scope = Scope::new([Permission::new(&reader).unwrap()]).unwrap();
    grant.request.target.system_id = SystemId::new("orders-db").unwrap();
    let planted = DatabaseSecret {
        engine: "postgres".into(),
        host: h.stack.local.postgres.host.clone(),
        port: h.stack.local.postgres.port,
        username: principal_name(&grant),
        password: "attacker-knows-this".into(),
        dbname: h.stack.local.postgres.database.clone(),
    };
    h.stack
        .secretsmanager()
        .create_secret()
        .name(secret_name(&grant))
        .secret_string(planted.to_secret().expose_secret())
        .send()
        .await
        .unwrap();
    let reason = refused_at_provisioning(&mut h, &grant).await;
    assert!(reason.contains("did not write"), "{reason}");
    assert!(!reason.contains("attacker-knows-this"), "{reason}");
    assert_eq!(
        role_count(&h, &grant).await,
        0,
        "no login with that password"
    );
    assert!(
        h.stack
            .pg_login(&principal_name(&grant), "attacker-knows-this")
            .await
            .is_err()
    );
}

/// A grant recorded for the retired `generated_api_key` connector (a request that
/// reached the table before the connector was removed) is never issued: it fails at
/// once, with its reason, and nothing is made for it.
#[tokio::test]
async fn a_grant_of_the_retired_api_key_connector_is_never_issued() {
    let mut h = harness(None, 5).await;
    let mut grant = sample_grant(Utc::now(), Duration::hours(2));
    grant.request.target.system_id = SystemId::new("billing-api").unwrap();
    grant.request.target.connector = ticketbound_domain::ConnectorKind::GeneratedApiKey;
    let reason = refused_at_provisioning(&mut h, &grant).await;
    assert!(
        reason.contains("generated_api_key") && reason.contains("no longer issues"),
        "{reason}"
    );
    assert!(
        h.deps
            .enforcer
            .secrets_manager
            .describe(&secret_name(&grant))
            .await
            .unwrap()
            .is_none(),
        "no secret was made"
    );
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.action == AuditAction::ProvisioningFailed)
            .count(),
        1,
        "refused once, not retried: {trail:#?}"
    );
}

/// Secrets Manager and Scheduler failing at each step the provisioner takes (as a
/// network failure would, injected at the SDK's interceptor seam).
fn inject_faults(h: &mut Harness, faults: &ticketbound_testkit::faults::FaultInjector) {
    use ticketbound_testkit::faults::{faulty_scheduler, faulty_secretsmanager};
    let sm = faulty_secretsmanager(&h.stack.sdk, faults);
    h.deps.enforcer.secrets_manager = ticketbound_secrets::SecretsManager::new(sm.clone());
    h.deps.enforcer.admin_secrets = ticketbound_secrets::SecretCache::new(
        sm,
        std::time::Duration::ZERO,
        std::time::Duration::ZERO,
    );
    h.deps.enforcer.schedules = ticketbound_schedule::ExpirySchedules::new(
        faulty_scheduler(&h.stack.sdk, faults),
        h.deps.config.schedules.clone(),
    );
}

/// How many login roles named for `grant` exist at the target.
async fn role_count(h: &Harness, grant: &Grant) -> i64 {
    logins_of(&h.stack, grant).await
}

async fn logins_of(stack: &TestStack, grant: &Grant) -> i64 {
    stack
        .pg_admin()
        .await
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = $1",
            &[&principal_name(grant)],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_transient_failure_at_any_step_is_retried_to_exactly_one_of_everything() {
    for step in [
        "DescribeSecret",
        "GetRandomPassword",
        "CreateSecret",
        "PutResourcePolicy",
        "GetSecretValue",
        "CreateSchedule",
    ] {
        let mut h = harness(None, 5).await;
        let faults = ticketbound_testkit::faults::FaultInjector::default();
        inject_faults(&mut h, &faults);
        faults.fail(step, 1);
        let pg = h.pg.clone();
        let grant = approve(&h, &[&pg.reader]).await;
        let (_, failures) = drain(&mut h).await;

        let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
        assert_eq!(
            stored.state,
            GrantState::Active,
            "{step}: {:?}",
            stored.last_error
        );
        assert_eq!(
            failures, 1,
            "{step}: one failed delivery, then the retry completes"
        );
        assert_eq!(stored.provisioning_attempts, 2, "{step}");
        assert_eq!(secret_count(&h, &secret_name(&grant)).await, 1, "{step}");
        assert_eq!(role_count(&h, &grant).await, 1, "{step}");
        assert!(schedule_exists(&h, &grant).await, "{step}");
        assert!(
            faults.calls().iter().any(|c| c == step),
            "{step} was called"
        );
    }
}

#[tokio::test]
async fn a_failure_that_outlasts_the_attempts_leaves_no_orphan_role_secret_or_schedule() {
    let mut h = harness(None, 3).await;
    let faults = ticketbound_testkit::faults::FaultInjector::default();
    inject_faults(&mut h, &faults);
    // The last step fails on every attempt: the secret and the role exist by then.
    faults.fail("CreateSchedule", 3);
    let pg = h.pg.clone();
    let grant = approve(&h, &[&pg.reader]).await;
    drain(&mut h).await;

    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Failed);
    assert_eq!(
        secret_count(&h, &secret_name(&grant)).await,
        0,
        "no orphan secret"
    );
    assert_eq!(role_count(&h, &grant).await, 0, "no orphan role");
    assert!(!schedule_exists(&h, &grant).await, "no orphan schedule");
}

/// The race of the exactly-once issue: the ticket is withdrawn and the grant revoked
/// (finding nothing at the target yet) while the provisioner is between reading the
/// grant and creating the login. The login it then creates must not live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_while_the_credential_is_issued_leaves_no_working_login() {
    withdrawal_during_issue(false).await;
}

/// The same race, and the undoing fails half-way (the login is dropped, the secret
/// cannot be deleted yet): the grant is recorded ended, so the undoing is handed to a
/// revocation retry of its own (record and schedule, which grant-expire honours for
/// ended grants), told once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_credential_whose_undoing_fails_is_handed_to_a_retry() {
    withdrawal_during_issue(true).await;
}

/// A grant whose recorded environment is not its target's (recorded before the target
/// said its environment, or written by something other than the intake) was approved
/// under other rules: it is not issued, and nothing is made.
#[tokio::test]
async fn a_grant_approved_for_another_environment_than_its_targets_is_not_issued() {
    let mut h = harness(None, 5).await;
    let pg = h.pg.clone();
    let grant = approve_with(&h, &[&pg.reader], |g| {
        g.request.target.environment = ticketbound_domain::Environment::NonProd;
    })
    .await;
    drain(&mut h).await;
    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Failed, "{:?}", stored.last_error);
    assert!(
        stored.last_error.as_deref().is_some_and(
            |e| e.contains("target orders-db is prod, but the grant was approved for non-prod")
        ),
        "{:?}",
        stored.last_error
    );
    assert_eq!(role_count(&h, &grant).await, 0, "no login was made");
    assert_eq!(
        secret_count(&h, &secret_name(&grant)).await,
        0,
        "no secret either"
    );
}

/// The race the fault-injection harness found: the grant is revoked after its secret
/// was made and before its login was (the revocation finds no login and deletes the
/// secret); the issue then makes the login and fails on the secret gone from under
/// it. The failed issue must not leave its login behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_that_fails_for_a_grant_ended_meanwhile_leaves_no_working_login() {
    // RotateSecret comes right after the login is made.
    let HeldIssue {
        stack,
        deps,
        grant,
        provisioner,
        held,
        ..
    } = issue_held_at("RotateSecret").await;
    // What the revocation did, having run before the login existed: the grant is
    // recorded Revoked and its secret deleted.
    let stored = deps.store.get_grant(grant.id).await.unwrap().unwrap();
    let (revoked, _) =
        ticketbound_testkit::issuing::withdraw_and_revoke(&deps.store, stored, None).await;
    assert_eq!(revoked.state, GrantState::Revoked);
    stack
        .secretsmanager()
        .delete_secret()
        .secret_id(secret_name(&grant))
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    held.release();

    let outcome = provisioner.await.unwrap();
    assert_eq!(
        outcome.unwrap(),
        grant_provision::Provisioned::Ended(GrantState::Revoked)
    );
    let logins = logins_of(&stack, &grant).await;
    assert_eq!(
        logins, 0,
        "the login the failed issue made was revoked at once"
    );
    let trail = deps.store.audit_trail(grant.id).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.action == AuditAction::Revoked && e.detail(Detail::LateCredential).is_some()),
        "the trail (and so the ticket) says what happened: {trail:#?}"
    );
    verify_chain(grant.id, &trail, None).unwrap();
}

/// A provisioner issuing a fresh grant, held at its first call of `operation`.
struct HeldIssue {
    stack: TestStack,
    deps: std::sync::Arc<grant_provision::Deps>,
    group: String,
    grant: Grant,
    faults: ticketbound_testkit::faults::FaultInjector,
    provisioner: tokio::task::JoinHandle<
        Result<grant_provision::Provisioned, grant_provision::ProvisionError>,
    >,
    held: ticketbound_testkit::faults::Paused,
}

async fn issue_held_at(operation: &str) -> HeldIssue {
    use std::sync::Arc;

    let mut h = harness(None, 5).await;
    let faults = ticketbound_testkit::faults::FaultInjector::default();
    inject_faults(&mut h, &faults);
    let mut held = faults.pause(operation);
    let pg = h.pg.clone();
    let grant = approve(&h, &[&pg.reader]).await;
    let Harness {
        stack, deps, group, ..
    } = h;
    let deps = Arc::new(deps);
    let provisioner = {
        let deps = Arc::clone(&deps);
        tokio::spawn(
            async move { grant_provision::provision_grant(&deps, grant.id, Utc::now()).await },
        )
    };
    assert!(
        held.reached(std::time::Duration::from_secs(30)).await,
        "the provisioner reached {operation}"
    );
    HeldIssue {
        stack,
        deps,
        group,
        grant,
        faults,
        provisioner,
        held,
    }
}

async fn withdrawal_during_issue(fail_undo: bool) {
    let HeldIssue {
        stack,
        deps,
        group,
        grant,
        faults,
        provisioner,
        held,
    } = issue_held_at("GetRandomPassword").await;

    // Meanwhile grant-expire: the withdrawal, a revocation that finds nothing, Revoked.
    let stored = deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Provisioning);
    let (revoked, found) = ticketbound_testkit::issuing::withdraw_and_revoke(
        &deps.store,
        stored,
        Some(&deps.enforcer),
    )
    .await;
    assert!(
        found.unwrap().roles_dropped.is_empty(),
        "nothing existed yet"
    );
    assert_eq!(revoked.state, GrantState::Revoked);

    if fail_undo {
        faults.fail("DeleteSecret", 1);
    }
    held.release();
    let outcome = provisioner.await.unwrap();
    if fail_undo {
        assert!(outcome.is_err(), "{outcome:?}");
        let retry = deps
            .store
            .revocation_retry(grant.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(retry.attempts, 1);
        assert!(retry.first_told);
        let schedule = aws_sdk_scheduler::Client::new(&stack.sdk)
            .get_schedule()
            .name(ticketbound_schedule::retry_schedule_name(grant.id, 1))
            .group_name(&group)
            .send()
            .await;
        assert!(schedule.is_ok(), "the retry is scheduled");
        let trail = deps.store.audit_trail(grant.id).await.unwrap();
        assert!(
            trail
                .iter()
                .any(|e| e.action == AuditAction::RevocationFailed
                    && e.detail(Detail::LateCredential).is_some()),
            "{trail:#?}"
        );
    } else {
        assert_eq!(
            outcome.unwrap(),
            grant_provision::Provisioned::Ended(GrantState::Revoked)
        );
    }

    let logins = logins_of(&stack, &grant).await;
    assert_eq!(logins, 0, "the late login was revoked at once");
    if fail_undo {
        // The login is dead at the target; the secret's deletion is left to the retry.
        return;
    }
    let secret = stack
        .secretsmanager()
        .describe_secret()
        .secret_id(secret_name(&grant))
        .send()
        .await;
    assert!(
        secret.is_err() || secret.unwrap().deleted_date().is_some(),
        "its secret is gone"
    );
    let schedule = aws_sdk_scheduler::Client::new(&stack.sdk)
        .get_schedule()
        .name(schedule_name(grant.id))
        .group_name(&group)
        .send()
        .await;
    assert!(schedule.is_err(), "its schedule is gone");
    let trail = deps.store.audit_trail(grant.id).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.action == AuditAction::Revoked && e.detail(Detail::LateCredential).is_some()),
        "the trail (and so the ticket) says what happened"
    );
    verify_chain(grant.id, &trail, None).unwrap();
}

/// An identity retired (or its principal removed, because it was compromised) after
/// the approval was accepted and before the provisioner took it: nothing is issued.
/// The grant fails with the registry's reason, no login exists at the target, and no
/// secret was made.
#[tokio::test]
async fn an_identity_retired_before_provisioning_gets_no_credential() {
    let mut h = harness(None, 5).await;
    let pg = h.pg.clone();
    let grant = sample_grant(Utc::now(), Duration::hours(2));
    h.deps
        .registry
        .retire(
            &grant.request.identity.name,
            &Actor::operator("ops@example.com"),
            Utc::now(),
            "workload compromised",
        )
        .await
        .unwrap();
    let mut grant = grant;
    grant.request.scope = Scope::new([Permission::new(pg.reader.as_str()).unwrap()]).unwrap();
    let why = refused_at_provisioning(&mut h, &grant).await;
    assert!(why.contains("identity orders-etl was retired"), "{why}");
    assert_eq!(role_count(&h, &grant).await, 0, "no login was made");
    assert_eq!(secret_count(&h, &secret_name(&grant)).await, 0, "no secret");
}

/// An Approved grant whose ticket's change window begins `starts_in` from now.
async fn approve_for_window(h: &Harness, starts_in: Duration) -> (Grant, chrono::DateTime<Utc>) {
    let pg = h.pg.clone();
    let start = Utc::now() + starts_in;
    let grant = approve_with(h, &[&pg.reader], |g| {
        g.request.change_window = Some(ticketbound_domain::ChangeWindow {
            start,
            end: g.request.not_after,
        });
    })
    .await;
    (grant, start)
}

/// The credential of an Active grant logs in.
async fn logs_in(h: &Harness, grant_id: ticketbound_domain::GrantId) -> bool {
    let stored = h.deps.store.get_grant(grant_id).await.unwrap().unwrap();
    let Some(credential) = stored.credential else {
        return false;
    };
    let value = h
        .stack
        .secretsmanager()
        .get_secret_value()
        .secret_id(&credential.secret_arn)
        .send()
        .await
        .unwrap();
    let secret: DatabaseSecret = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    h.stack
        .pg_login(&secret.username, &secret.password)
        .await
        .is_ok()
}

fn actions(trail: &[ticketbound_domain::AuditEvent]) -> Vec<AuditAction> {
    trail.iter().map(|e| e.action).collect()
}

/// The start schedule of `grant` (`attempt` 0) or of a retry: what it invokes, with
/// what, and when.
async fn start_schedule(
    h: &Harness,
    grant: &Grant,
    attempt: u32,
) -> Option<(String, serde_json::Value, String)> {
    let schedule = aws_sdk_scheduler::Client::new(&h.stack.sdk)
        .get_schedule()
        .name(grant_provision::start_schedule_name(grant.id, attempt))
        .group_name(&h.group)
        .send()
        .await
        .ok()?;
    let target = schedule.target()?;
    Some((
        target.arn().to_owned(),
        serde_json::from_str(target.input()?).unwrap(),
        schedule.schedule_expression()?.to_owned(),
    ))
}

/// What `grant`'s start schedule (`attempt` 0) or its retry invokes the provisioner
/// with.
fn start_event(grant: &Grant, attempt: u32) -> grant_provision::WindowStartEvent {
    grant_provision::WindowStartEvent {
        grant_id: grant.id,
        trigger: grant_provision::WindowStartTrigger::WindowStart,
        attempt,
    }
}

/// `at(…)` of `t` rounded up to the second, as a schedule that must not fire early.
fn at_or_after(t: chrono::DateTime<Utc>) -> String {
    format!(
        "at({})",
        (t + Duration::seconds(1)).format("%Y-%m-%dT%H:%M:%S")
    )
}

/// A requester's ticket approved for a change window that begins in an hour: nothing
/// is made before it (not by the stream, not by a redelivery, not by anyone invoking
/// the provisioner with the start schedule's own payload); the deferral is audited
/// once; at the window's start the grant is issued and its login works.
#[tokio::test]
async fn a_grant_for_a_later_change_window_is_issued_at_its_start_and_not_before() {
    let mut h = harness(None, 5).await;
    let (grant, start) = approve_for_window(&h, Duration::hours(1)).await;
    let (batches, failures) = drain(&mut h).await;
    assert_eq!(failures, 0);

    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(
        stored.state,
        GrantState::Approved,
        "{:?}",
        stored.last_error
    );
    assert_eq!(stored.deferred_until, Some(start));
    assert_eq!(role_count(&h, &grant).await, 0, "no login before the start");
    assert_eq!(
        secret_count(&h, &secret_name(&grant)).await,
        0,
        "no secret either"
    );
    assert!(!schedule_exists(&h, &grant).await, "no expiry schedule yet");

    // The start schedule: at the window's start (never earlier), invoking the
    // provisioner with the grant's id.
    let (arn, input, fires_at) = start_schedule(&h, &grant, 0).await.unwrap();
    assert_eq!(arn, PROVISION_FUNCTION_ARN);
    assert_eq!(
        input,
        json!({"grant_id": grant.id.to_string(), "trigger": "window_start"})
    );
    assert_eq!(fires_at, at_or_after(start), "never before the start");

    // The stream redelivers: nothing new, not even an audit event.
    let trail_len = h.deps.store.audit_trail(grant.id).await.unwrap().len();
    for batch in batches {
        assert!(
            handle(&h.deps, batch)
                .await
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
    }
    // Anyone allowed to invoke the provisioner sends the start schedule's payload an
    // hour early: nothing is made, and a schedule of its own fires at the start
    // (should the first one have fired and gone already).
    let early: grant_provision::ProvisionEvent = serde_json::from_value(input).unwrap();
    let answer = grant_provision::handle_event(&h.deps, early).await.unwrap();
    assert!(
        serde_json::to_string(&answer)
            .unwrap()
            .contains("RetryScheduled"),
        "{answer:?}"
    );
    let (_, retry_input, retry_at) = start_schedule(&h, &grant, 1).await.unwrap();
    assert_eq!(retry_input["attempt"], 1);
    assert_eq!(retry_at, at_or_after(start));
    assert_eq!(role_count(&h, &grant).await, 0, "still no login");
    assert_eq!(secret_count(&h, &secret_name(&grant)).await, 0);
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    assert_eq!(trail.len(), trail_len, "the deferral is audited once");
    assert_eq!(
        actions(&trail),
        [AuditAction::Requested, AuditAction::ProvisioningDeferred]
    );
    assert_eq!(
        trail[1].detail(Detail::DeferredUntil),
        Some(start.to_rfc3339().as_str())
    );

    // At the window's start the grant is issued as any other.
    let outcome = grant_provision::provision_grant(&h.deps, grant.id, start)
        .await
        .unwrap();
    assert!(
        matches!(outcome, grant_provision::Provisioned::Active { .. }),
        "{outcome:?}"
    );
    assert!(
        logs_in(&h, grant.id).await,
        "the credential works from the start"
    );
    assert!(schedule_exists(&h, &grant).await, "its expiry is scheduled");
    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    verify_chain(grant.id, &trail, Some(&stored.audit_head)).unwrap();
    assert_eq!(
        actions(&trail),
        [
            AuditAction::Requested,
            AuditAction::ProvisioningDeferred,
            AuditAction::ProvisioningStarted,
            AuditAction::Provisioned
        ]
    );
    // The retry's schedule firing at the start finds the grant issued.
    let again = start_event(&grant, 1);
    let outcome = grant_provision::handle_window_start(&h.deps, &again)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        grant_provision::WindowStarted::Done(grant_provision::Provisioned::NotPending(
            GrantState::Active
        ))
    );
    assert_eq!(role_count(&h, &grant).await, 1, "one login, not two");
}

/// The ticket is withdrawn before its window begins: the grant ends with nothing made,
/// and the start schedule firing afterwards makes nothing either.
#[tokio::test]
async fn a_withdrawal_before_the_change_window_begins_leaves_nothing_to_issue() {
    let mut h = harness(None, 5).await;
    let (grant, start) = approve_for_window(&h, Duration::hours(1)).await;
    drain(&mut h).await;
    let deferred = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(deferred.deferred_until, Some(start));
    let (withdrawn, _) = h
        .deps
        .store
        .advance(
            deferred,
            &ticketbound_domain::GrantEvent::TicketWithdrawn,
            Utc::now(),
            &ticketbound_domain::LifecycleRules::default(),
            |_, t| {
                AuditRecord::new(
                    Utc::now(),
                    Actor::itsm_user("priya.raman@example.com"),
                    AuditAction::Revoked,
                )
                .states(Some(t.from), Some(t.to))
            },
        )
        .await
        .unwrap();
    assert_eq!(withdrawn.state, GrantState::Revoked);

    // The start schedule fires at the start, as Scheduler would.
    let outcome = grant_provision::provision_grant(&h.deps, grant.id, start + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        grant_provision::Provisioned::NotPending(GrantState::Revoked)
    );
    assert_eq!(role_count(&h, &grant).await, 0, "no login, ever");
    assert_eq!(secret_count(&h, &secret_name(&grant)).await, 0, "no secret");
    assert!(!schedule_exists(&h, &grant).await, "no expiry schedule");
}

/// A window that begins within seconds is too close for a schedule (Scheduler fires
/// within the minute after its time): the stream's invocation waits for it, on the
/// real clock, and issues no earlier than the start.
#[tokio::test]
async fn a_window_starting_within_seconds_is_waited_for_not_issued_early() {
    let mut h = harness(None, 5).await;
    let (grant, start) = approve_for_window(&h, Duration::seconds(3)).await;
    drain(&mut h).await;
    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Active, "{:?}", stored.last_error);
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    let started = trail
        .iter()
        .find(|e| e.action == AuditAction::ProvisioningStarted)
        .unwrap();
    assert!(
        started.at >= start,
        "started {} before the start {start}",
        started.at
    );
    assert!(
        !actions(&trail).contains(&AuditAction::ProvisioningDeferred),
        "waited, not deferred"
    );
    assert!(
        start_schedule(&h, &grant, 0).await.is_none(),
        "no start schedule"
    );
    assert!(logs_in(&h, grant.id).await);
}

/// Scheduler refuses the start schedule for good (the provisioner's role may not
/// create it): the grant is not left waiting for a schedule that will never fire. It
/// fails, with the reason in its trail (which the ticket is told), and nothing is made.
#[tokio::test]
async fn a_start_schedule_that_cannot_be_made_fails_the_grant_with_the_reason() {
    let mut h = harness(None, 5).await;
    let faults = ticketbound_testkit::faults::FaultInjector::default();
    inject_faults(&mut h, &faults);
    faults.refuse_answer("CreateSchedule", 403, "AccessDeniedException", 1);
    let (grant, _) = approve_for_window(&h, Duration::hours(1)).await;
    let (_, failures) = drain(&mut h).await;
    assert_eq!(failures, 0, "not retried: it cannot succeed");
    let stored = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Failed);
    let why = stored.last_error.unwrap_or_default();
    assert!(
        why.contains(
            "the schedule that would issue it at its change window's start could not be made"
        ),
        "{why}"
    );
    assert!(why.contains("AccessDenied"), "{why}");
    let trail = h.deps.store.audit_trail(grant.id).await.unwrap();
    assert_eq!(
        actions(&trail),
        [AuditAction::Requested, AuditAction::ProvisioningFailed]
    );
    assert_eq!(role_count(&h, &grant).await, 0);
    assert_eq!(secret_count(&h, &secret_name(&grant)).await, 0);
}

/// The start schedule's provisioning fails on the way (Secrets Manager down for a
/// moment): nothing else would retry it (Scheduler invoked Lambda asynchronously, and
/// the stream's record is long done), so it schedules its own retry, which issues it.
#[tokio::test]
async fn a_start_that_fails_on_the_way_is_retried_by_a_schedule_of_its_own() {
    let mut h = harness(None, 5).await;
    let faults = ticketbound_testkit::faults::FaultInjector::default();
    inject_faults(&mut h, &faults);
    // Its window began a moment ago; the stream's record is not delivered (done long
    // ago, as far as this test goes): the start schedule is what issues it.
    let (grant, _) = approve_for_window(&h, Duration::seconds(-1)).await;
    faults.fail("CreateSecret", 1);
    let start = start_event(&grant, 0);
    let outcome = grant_provision::handle_window_start(&h.deps, &start)
        .await
        .unwrap();
    let grant_provision::WindowStarted::RetryScheduled { name, at } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(name, grant_provision::start_schedule_name(grant.id, 1));
    assert!(
        at > Utc::now() + Duration::seconds(50),
        "a minute later at the soonest (Scheduler's precision), not at once"
    );
    let (_, input, _) = start_schedule(&h, &grant, 1).await.unwrap();
    assert_eq!(input["attempt"], 1);
    assert_eq!(
        role_count(&h, &grant).await,
        0,
        "nothing issued by the failed attempt"
    );

    // The retry's schedule fires.
    let retry: grant_provision::WindowStartEvent = serde_json::from_value(input).unwrap();
    let outcome = grant_provision::handle_window_start(&h.deps, &retry)
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            grant_provision::WindowStarted::Done(grant_provision::Provisioned::Active { .. })
        ),
        "{outcome:?}"
    );
    assert!(logs_in(&h, grant.id).await);
    assert_eq!(
        secret_count(&h, &secret_name(&grant)).await,
        1,
        "one secret"
    );
}

/// What invokes the provisioner is told apart by its shape: a stream batch, or a start
/// schedule's payload and nothing else (an expiry schedule's payload, or one with a
/// field more, is refused rather than read as either).
#[test]
fn the_provisioners_events_are_told_apart_by_their_shape() {
    use grant_provision::ProvisionEvent;
    let id = ulid::Ulid::new().to_string();
    let start: ProvisionEvent =
        serde_json::from_value(json!({"grant_id": id, "trigger": "window_start"})).unwrap();
    assert!(matches!(start, ProvisionEvent::WindowStart(e) if e.attempt == 0));
    let retry: ProvisionEvent =
        serde_json::from_value(json!({"grant_id": id, "trigger": "window_start", "attempt": 3}))
            .unwrap();
    assert!(matches!(retry, ProvisionEvent::WindowStart(e) if e.attempt == 3));
    let stream: ProvisionEvent = serde_json::from_value(json!({"Records": []})).unwrap();
    assert!(matches!(stream, ProvisionEvent::Stream(_)));
    for refused in [
        json!({"grant_id": id, "trigger": "schedule"}),
        json!({"grant_id": id}),
        json!({"grant_id": id, "trigger": "window_start", "scope": ["all"]}),
        json!({"sweep": true}),
    ] {
        let parsed: Result<ProvisionEvent, _> = serde_json::from_value(refused.clone());
        assert!(parsed.is_err(), "{refused} was read as {parsed:?}");
    }
}
