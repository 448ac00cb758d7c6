//! The PostgreSQL connector against the local stack's real PostgreSQL: the credential
//! it issues logs in and can do exactly what its scope allows; revocation ends logins
//! and open sessions; retries and overlapping grants behave.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use ticketbound_domain::{Grant, Permission, Scope};
use ticketbound_runtime::SecretString;
use ticketbound_targets::postgres::PostgresTarget;
use ticketbound_targets::{TargetError, principal_name};
use ticketbound_testkit::{TestStack, sample_grant};

struct Fixture {
    stack: TestStack,
    target: PostgresTarget,
    reader: String,
    reporting: String,
    payments: String,
    schema: String,
}

/// The target may grant two of the fixture's three roles.
async fn fixture() -> Fixture {
    let stack = TestStack::get().await;
    let pg = stack.pg_fixture().await;
    let allowed: BTreeSet<String> = [pg.reader.clone(), pg.reporting.clone()].into();
    let target = PostgresTarget::new(
        &SecretString::from(stack.local.postgres.admin_dsn()),
        allowed,
    )
    .unwrap();
    Fixture {
        stack,
        target,
        reader: pg.reader,
        reporting: pg.reporting,
        payments: pg.payments,
        schema: pg.schema,
    }
}

fn grant_for(scope: &[&str]) -> Grant {
    let mut grant = sample_grant(Utc::now(), Duration::hours(2));
    grant.request.scope = Scope::new(scope.iter().map(|s| Permission::new(*s).unwrap())).unwrap();
    grant
}

async fn login(
    f: &Fixture,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    f.stack.pg_login(user, password).await
}

fn password() -> String {
    format!("pw-{}", ulid::Ulid::new())
}

#[tokio::test]
async fn the_issued_credential_logs_in_and_can_do_exactly_its_scope() {
    let f = fixture().await;
    let grant = grant_for(&[&f.reader, &f.reporting]);
    let pw = password();
    let name = f
        .target
        .issue(&grant, &SecretString::from(pw.clone()))
        .await
        .unwrap();
    assert_eq!(name, principal_name(&grant));

    let client = login(&f, &name, &pw).await.unwrap();
    let rows = client
        .query(&format!("SELECT total::text FROM {}.orders", f.schema), &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let refused = client
        .query(&format!("SELECT * FROM {}.payments", f.schema), &[])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    assert!(
        client
            .batch_execute("CREATE ROLE sneaky LOGIN")
            .await
            .is_err()
    );
    assert!(login(&f, &name, "not-the-password").await.is_err());

    let live = f.target.inspect(&name).await.unwrap().unwrap();
    assert!(live.can_login && !live.superuser);
    assert_eq!(
        live.member_of,
        BTreeSet::from([f.reader.clone(), f.reporting.clone()])
    );
    assert_eq!(
        live.valid_until.unwrap().timestamp(),
        grant.not_after().timestamp()
    );
}

#[tokio::test]
async fn a_scope_outside_the_allow_list_is_refused_before_anything_is_created() {
    let f = fixture().await;
    let grant = grant_for(&[&f.reader, &f.payments]);
    let err = f
        .target
        .issue(&grant, &SecretString::from(password()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TargetError::ScopeNotAllowed { refused } if refused == std::slice::from_ref(&f.payments)),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        f.target.inspect(&principal_name(&grant)).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn issuing_again_completes_the_same_role_without_a_second_one() {
    let f = fixture().await;
    let grant = grant_for(&[&f.reader]);
    let (first, second) = (password(), password());
    let name = f
        .target
        .issue(&grant, &SecretString::from(first.clone()))
        .await
        .unwrap();
    let again = f
        .target
        .issue(&grant, &SecretString::from(second.clone()))
        .await
        .unwrap();
    assert_eq!(name, again);
    assert!(login(&f, &name, &second).await.is_ok());
    assert!(
        login(&f, &name, &first).await.is_err(),
        "the retry's password is the one in force"
    );
    let managed = f.target.managed_roles().await.unwrap();
    assert_eq!(managed.iter().filter(|r| **r == name).count(), 1);
}

#[tokio::test]
async fn revocation_refuses_new_logins_and_ends_open_sessions() {
    let f = fixture().await;
    let grant = grant_for(&[&f.reader]);
    let pw = password();
    let name = f
        .target
        .issue(&grant, &SecretString::from(pw.clone()))
        .await
        .unwrap();
    let open = login(&f, &name, &pw).await.unwrap();
    open.query("SELECT 1", &[]).await.unwrap();

    let revoked = f.target.revoke(&name).await.unwrap();
    assert!(revoked.existed);
    assert_eq!(revoked.sessions_terminated, 1);
    assert!(
        open.query("SELECT 1", &[]).await.is_err(),
        "the open session is gone"
    );
    assert!(
        login(&f, &name, &pw).await.is_err(),
        "a new login is refused"
    );
    assert_eq!(f.target.inspect(&name).await.unwrap(), None);

    let again = f.target.revoke(&name).await.unwrap();
    assert!(!again.existed, "a second revocation is a no-op");
}

#[tokio::test]
async fn overlapping_grants_for_one_identity_do_not_revoke_each_other() {
    let f = fixture().await;
    let (a, b) = (grant_for(&[&f.reader]), grant_for(&[&f.reader]));
    let (pa, pb) = (password(), password());
    let name_a = f
        .target
        .issue(&a, &SecretString::from(pa.clone()))
        .await
        .unwrap();
    let name_b = f
        .target
        .issue(&b, &SecretString::from(pb.clone()))
        .await
        .unwrap();
    assert_ne!(name_a, name_b);

    f.target.revoke(&name_a).await.unwrap();
    assert!(login(&f, &name_a, &pa).await.is_err());
    let still = login(&f, &name_b, &pb).await.unwrap();
    still
        .query(&format!("SELECT * FROM {}.orders", f.schema), &[])
        .await
        .unwrap();
}
