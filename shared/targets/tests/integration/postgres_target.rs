//! The PostgreSQL connector against the local stack's real PostgreSQL: the credential
//! it issues logs in and can do exactly what its scope allows; revocation ends logins
//! and open sessions; retries and overlapping grants behave.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use ticketbound_domain::{Grant, Permission, Scope};
use ticketbound_runtime::SecretString;
use ticketbound_targets::postgres::{OwnedObjects, PostgresTarget};
use ticketbound_targets::tls::Transport;
use ticketbound_targets::{TargetError, principal_name};
use ticketbound_testkit::{TestStack, sample_grant};

struct Fixture {
    stack: TestStack,
    target: PostgresTarget,
    allowed: BTreeSet<String>,
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
        allowed.clone(),
        stack.pg_transport(),
    )
    .unwrap();
    Fixture {
        stack,
        target,
        allowed,
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

    let revoked = f.target.revoke(&grant).await.unwrap();
    assert_eq!(revoked.dropped, std::slice::from_ref(&name));
    assert_eq!(revoked.sessions_terminated, 1);
    assert_eq!(
        (revoked.logins_remaining, revoked.sessions_remaining),
        (0, 0),
        "the receipt shows nothing left"
    );
    assert!(
        open.query("SELECT 1", &[]).await.is_err(),
        "the open session is gone"
    );
    assert!(
        login(&f, &name, &pw).await.is_err(),
        "a new login is refused"
    );
    assert_eq!(f.target.inspect(&name).await.unwrap(), None);

    let again = f.target.revoke(&grant).await.unwrap();
    assert!(again.dropped.is_empty(), "a second revocation is a no-op");
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

    f.target.revoke(&a).await.unwrap();
    assert!(login(&f, &name_a, &pa).await.is_err());
    let still = login(&f, &name_b, &pb).await.unwrap();
    still
        .query(&format!("SELECT * FROM {}.orders", f.schema), &[])
        .await
        .unwrap();
}

/// A target whose allow-list is the fixture's plus `extra`, administered as usual.
fn target_allowing(f: &Fixture, extra: &[&str]) -> PostgresTarget {
    let mut allowed = f.allowed.clone();
    allowed.extend(extra.iter().map(|r| (*r).to_owned()));
    PostgresTarget::new(
        &SecretString::from(f.stack.local.postgres.admin_dsn()),
        allowed,
        f.stack.pg_transport(),
    )
    .unwrap()
}

fn suffix() -> String {
    ulid::Ulid::new().to_string().to_lowercase()[16..].to_owned()
}

/// The administrator is what the deploy guide asks for (CREATEROLE and
/// `pg_signal_backend`, never SUPERUSER), and ticketbound reaches it only over TLS
/// with the server's certificate verified: in the clear the server turns it away, and
/// a server whose certificate another CA signed (a man in the middle) is refused.
#[tokio::test]
async fn the_administrator_is_least_privilege_and_reached_over_verified_tls() {
    let f = fixture().await;
    let check = f.target.check_admin().await.unwrap();
    assert!(check.problems.is_empty(), "{check:?}");
    assert!(
        check.more_than_needed.is_empty(),
        "not a superuser: {check:?}"
    );
    assert!(check.tls && check.transport_problem.is_none(), "{check:?}");
    let row = f
        .stack
        .pg_admin()
        .await
        .query_one(
            "SELECT rolsuper, rolcreaterole, pg_has_role($1, 'pg_signal_backend', 'MEMBER') \
             FROM pg_roles WHERE rolname = $1",
            &[&f.stack.local.postgres.admin_user],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2)
        ),
        (false, true, true),
        "CREATEROLE and pg_signal_backend, as on RDS; never SUPERUSER"
    );

    let dsn = SecretString::from(f.stack.local.postgres.admin_dsn());
    let plain = PostgresTarget::new(&dsn, f.allowed.clone(), Transport::Plaintext).unwrap();
    let refused = plain.check_admin().await.unwrap_err();
    assert!(matches!(refused, TargetError::Connect(_)), "{refused:?}");

    let other_ca = std::env::temp_dir().join(format!("other-ca-{}.pem", suffix()));
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other_ca, params.self_signed(&key).unwrap().pem()).unwrap();
    let impostor_trusting = PostgresTarget::new(
        &dsn,
        f.allowed.clone(),
        Transport::verify_full(&other_ca).unwrap(),
    )
    .unwrap();
    let refused = impostor_trusting.check_admin().await.unwrap_err();
    assert!(
        format!("{:?}", refused)
            .to_lowercase()
            .contains("certificate"),
        "refused for its certificate: {refused:?}"
    );
    std::fs::remove_file(&other_ca).ok();

    let err = Transport::verify_full(std::path::Path::new("/nonexistent/ca.pem")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

/// The hostile grantee: while its credential lives it plants what would outlive the
/// grant, as itself, in this database and in another one, opens everything to
/// PUBLIC, sets default privileges, changes its own password and keeps a session.
/// After revocation nothing it did gives anyone anything.
#[tokio::test]
async fn nothing_a_hostile_grantee_planted_survives_revocation() {
    let f = fixture().await;
    let s = suffix();
    let sandbox = format!("sandbox_{s}");
    let other_db = format!("analytics_{s}");
    let su = f.stack.pg_admin().await;
    su.batch_execute(&format!(
        "CREATE SCHEMA {sandbox}; GRANT USAGE ON SCHEMA {sandbox} TO PUBLIC;"
    ))
    .await
    .unwrap();
    su.batch_execute(&format!("CREATE DATABASE {other_db}"))
        .await
        .unwrap();

    let grant = grant_for(&[&f.reader]);
    let pw = password();
    let name = f
        .target
        .issue(&grant, &SecretString::from(pw.clone()))
        .await
        .unwrap();
    // A DBA's slip (or an old default): the login itself may create here and there.
    su.batch_execute(&format!("GRANT CREATE ON SCHEMA {sandbox} TO {name}"))
        .await
        .unwrap();
    let su_other = f.stack.pg_superuser_in(&other_db).await;
    su_other
        .batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {name}"))
        .await
        .unwrap();

    let grantee = login(&f, &name, &pw).await.unwrap();
    let payments = format!("{}.payments", f.schema);
    grantee
        .batch_execute(&format!(
            "CREATE FUNCTION {sandbox}.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
               AS 'SELECT count(*) FROM {payments}'; \
             GRANT EXECUTE ON FUNCTION {sandbox}.peek() TO PUBLIC; \
             CREATE VIEW {sandbox}.leak AS SELECT * FROM {payments}; \
             GRANT SELECT ON {sandbox}.leak TO PUBLIC; \
             CREATE TABLE {sandbox}.loot AS SELECT * FROM {schema}.orders; \
             GRANT ALL ON {sandbox}.loot TO PUBLIC; \
             ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC;",
            schema = f.schema
        ))
        .await
        .unwrap();
    // Into its scope role: that role cannot create anything (the allow-list check
    // refuses roles that could), so nothing is made there.
    assert!(
        grantee
            .batch_execute(&format!(
                "SET ROLE {}; CREATE TABLE {sandbox}.as_scope (x int)",
                f.reader
            ))
            .await
            .is_err(),
        "a scope role cannot create"
    );
    grantee.batch_execute("RESET ROLE").await.ok();
    let elsewhere = f.stack.pg_login_in(&other_db, &name, &pw).await.unwrap();
    elsewhere
        .batch_execute(
            "CREATE TABLE public.stash (x int); GRANT ALL ON public.stash TO PUBLIC; \
             CREATE FUNCTION public.backdoor() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
        )
        .await
        .unwrap();
    let new_pw = password();
    grantee
        .batch_execute(&format!("ALTER ROLE {name} PASSWORD '{new_pw}'"))
        .await
        .unwrap();

    let revoked = f.target.revoke(&grant).await.unwrap();
    // The CREATE privileges the DBA granted it can be revoked only by their grantor:
    // the login stays, stripped of everything, and the receipt says so.
    assert!(revoked.dropped.is_empty(), "{revoked:?}");
    assert!(
        revoked.kept_disabled.len() == 1
            && revoked.kept_disabled[0].contains("privileges for schema"),
        "{revoked:?}"
    );
    assert_eq!(revoked.sessions_terminated, 2, "both open sessions");
    assert!(
        revoked.objects_dropped >= 5,
        "function, view, table, default privileges and the other database's two: {revoked:?}"
    );
    assert!(revoked.quarantined.is_empty());
    assert_eq!(
        (
            revoked.logins_remaining,
            revoked.sessions_remaining,
            revoked.objects_owned_remaining
        ),
        (0, 0, 0)
    );

    assert!(grantee.batch_execute("SELECT 1").await.is_err());
    assert!(elsewhere.batch_execute("SELECT 1").await.is_err());
    assert!(login(&f, &name, &pw).await.is_err());
    assert!(
        login(&f, &name, &new_pw).await.is_err(),
        "its own new password too"
    );
    for (db, object) in [
        (&su, format!("to_regprocedure('{sandbox}.peek()')::text")),
        (&su, format!("to_regclass('{sandbox}.leak')::text")),
        (&su, format!("to_regclass('{sandbox}.loot')::text")),
        (&su_other, "to_regclass('public.stash')::text".to_owned()),
        (
            &su_other,
            "to_regprocedure('public.backdoor()')::text".to_owned(),
        ),
    ] {
        let found: Option<String> = db
            .query_one(&format!("SELECT {object}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(found, None, "{object} is gone");
    }
    let default_acls: i64 = su
        .query_one("SELECT count(*) FROM pg_default_acl", &[])
        .await
        .unwrap()
        .get(0);
    let by_grantee: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_default_acl d WHERE pg_get_userbyid(d.defaclrole) = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        by_grantee, 0,
        "its default privileges are gone ({default_acls} in all)"
    );
    // Nobody inherited its objects: nothing in either database is owned by the
    // administrator that was not there before.
    let admin = f.stack.local.postgres.admin_user.clone();
    for db in [&su, &su_other] {
        let owned: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)",
                &[&admin],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(owned, 0, "the administrator was handed nothing");
    }
    let stripped = su
        .query_one(
            "SELECT rolcanlogin, (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid OR m.roleid = r.oid) \
             FROM pg_roles r WHERE rolname = $1",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(
        (stripped.get::<_, bool>(0), stripped.get::<_, i64>(1)),
        (false, 0)
    );

    // Once the DBA takes back what they granted, revoking again drops the login.
    su.batch_execute(&format!("REVOKE CREATE ON SCHEMA {sandbox} FROM {name}"))
        .await
        .unwrap();
    su_other
        .batch_execute(&format!("REVOKE CREATE ON SCHEMA public FROM {name}"))
        .await
        .unwrap();
    let again = f.target.revoke(&grant).await.unwrap();
    assert_eq!(again.dropped, std::slice::from_ref(&name), "{again:?}");
    assert_eq!(f.target.inspect(&name).await.unwrap(), None);
    drop(su_other);
    su.batch_execute(&format!("DROP DATABASE {other_db} WITH (FORCE)"))
        .await
        .unwrap();
}

/// Where another role's object depends on what the grantee made, the grantee's
/// objects cannot be dropped: they are quarantined, powerless, and the revocation
/// still completes.
#[tokio::test]
async fn objects_others_depend_on_are_quarantined_powerless_and_revocation_completes() {
    let f = fixture().await;
    let s = suffix();
    let sandbox = format!("sandbox_{s}");
    let bystander = format!("bystander_{s}");
    let bystander_pw = password();
    let su = f.stack.pg_admin().await;
    su.batch_execute(&format!(
        "CREATE SCHEMA {sandbox}; CREATE ROLE {bystander} LOGIN PASSWORD '{bystander_pw}'; \
         GRANT USAGE, CREATE ON SCHEMA {sandbox} TO {bystander}; GRANT USAGE ON SCHEMA {sandbox} TO PUBLIC;"
    ))
    .await
    .unwrap();
    let grant = grant_for(&[&f.reader]);
    let pw = password();
    let name = f
        .target
        .issue(&grant, &SecretString::from(pw.clone()))
        .await
        .unwrap();
    su.batch_execute(&format!("GRANT CREATE ON SCHEMA {sandbox} TO {name}"))
        .await
        .unwrap();
    let grantee = login(&f, &name, &pw).await.unwrap();
    grantee
        .batch_execute(&format!(
            "CREATE TABLE {sandbox}.copy AS SELECT * FROM {schema}.orders; \
             GRANT SELECT ON {sandbox}.copy TO {bystander}, PUBLIC; \
             CREATE FUNCTION {sandbox}.act() RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user::text'; \
             GRANT EXECUTE ON FUNCTION {sandbox}.act() TO PUBLIC;",
            schema = f.schema
        ))
        .await
        .unwrap();
    let other = login(&f, &bystander, &bystander_pw).await.unwrap();
    other
        .batch_execute(&format!(
            "CREATE VIEW {sandbox}.bystander_view AS SELECT * FROM {sandbox}.copy"
        ))
        .await
        .unwrap();

    let revoked = f.target.revoke(&grant).await.unwrap();
    assert_eq!(
        (revoked.logins_remaining, revoked.sessions_remaining),
        (0, 0),
        "the revocation completes: {revoked:?}"
    );
    assert!(revoked.kept_disabled.iter().any(|k| k.starts_with(&name)));
    assert!(login(&f, &name, &pw).await.is_err(), "the login is refused");
    assert!(
        revoked
            .quarantined
            .iter()
            .any(|q| q.ends_with(&format!("{sandbox}.copy"))),
        "{revoked:?}"
    );
    let owner: String = su
        .query_one(
            &format!("SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = '{sandbox}.copy'::regclass"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        owner, name,
        "held by the stripped login, which nobody can become"
    );
    // Neither the bystander nor anyone else can read the grantee's table any more.
    let refused = other
        .query(&format!("SELECT * FROM {sandbox}.bystander_view"), &[])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    assert!(
        other
            .query(&format!("SELECT {sandbox}.act()"), &[])
            .await
            .is_err(),
        "its function runs for nobody"
    );
    let definer: bool = su
        .query_one(
            &format!("SELECT prosecdef FROM pg_proc WHERE oid = '{sandbox}.act()'::regprocedure"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!definer, "SECURITY DEFINER is cleared");
}

#[tokio::test]
async fn a_target_configured_to_quarantine_keeps_objects_powerless_instead_of_dropping() {
    let f = fixture().await;
    let s = suffix();
    let sandbox = format!("sandbox_{s}");
    let su = f.stack.pg_admin().await;
    su.batch_execute(&format!(
        "CREATE SCHEMA {sandbox}; GRANT USAGE ON SCHEMA {sandbox} TO PUBLIC"
    ))
    .await
    .unwrap();
    let target = target_allowing(&f, &[]).with_owned_objects(OwnedObjects::Quarantine);
    let grant = grant_for(&[&f.reader]);
    let pw = password();
    let name = target
        .issue(&grant, &SecretString::from(pw.clone()))
        .await
        .unwrap();
    su.batch_execute(&format!("GRANT CREATE ON SCHEMA {sandbox} TO {name}"))
        .await
        .unwrap();
    login(&f, &name, &pw)
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE TABLE {sandbox}.kept (x int); GRANT ALL ON {sandbox}.kept TO PUBLIC"
        ))
        .await
        .unwrap();
    let revoked = target.revoke(&grant).await.unwrap();
    assert_eq!(revoked.objects_dropped, 0);
    assert_eq!(revoked.quarantined.len(), 1, "{revoked:?}");
    let public_acl: Option<String> = su
        .query_one(
            &format!("SELECT relacl::text FROM pg_class WHERE oid = '{sandbox}.kept'::regclass"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // A PUBLIC entry is the one with no grantee name before `=`.
    let acl = public_acl.unwrap_or_default();
    assert!(
        !acl.contains("{=") && !acl.contains(",="),
        "no grant to PUBLIC is left: {acl}"
    );
}

/// PostgreSQL 15 lets a member SET ROLE into any of its roles, so what a grantee
/// creates as a scope role would be owned by that role and outlive the grant: such
/// scope roles, and roles with powers beyond a scope, are refused at issue, naming
/// the role and the reason, before anything exists.
#[tokio::test]
async fn scope_roles_that_could_outlive_the_grant_are_refused_with_the_reason() {
    let f = fixture().await;
    let s = suffix();
    let creator = format!("etl_{s}");
    let reads_all = format!("reads_all_{s}");
    let delegator = format!("delegator_{s}");
    let logs_in = format!("logs_in_{s}");
    let regrants = format!("regrants_{s}");
    let su = f.stack.pg_admin().await;
    su.batch_execute(&format!(
        "CREATE ROLE {creator} NOLOGIN; GRANT CREATE ON SCHEMA {schema} TO {creator}; \
         CREATE ROLE {reads_all} NOLOGIN; GRANT pg_read_all_data TO {reads_all}; \
         CREATE ROLE {delegator} NOLOGIN; GRANT {reader} TO {delegator} WITH ADMIN OPTION; \
         CREATE ROLE {logs_in} LOGIN; \
         CREATE ROLE {regrants} NOLOGIN; \
         GRANT SELECT ON {schema}.orders TO {regrants} WITH GRANT OPTION;",
        schema = f.schema,
        reader = f.reader
    ))
    .await
    .unwrap();
    let target = target_allowing(&f, &[&creator, &reads_all, &delegator, &logs_in, &regrants]);
    for (role, says) in [
        (&creator, "can CREATE in schema"),
        (&reads_all, "predefined pg_* role"),
        (&delegator, "WITH ADMIN OPTION"),
        (&logs_in, "can log in"),
        (&regrants, "WITH GRANT OPTION"),
    ] {
        let grant = grant_for(&[&f.reader, role]);
        let err = target
            .issue(&grant, &SecretString::from(password()))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, TargetError::UnsafeScopeRole(_))
                && text.contains(role.as_str())
                && text.contains(says),
            "{role}: {text}"
        );
        assert!(!err.is_retryable());
        assert_eq!(
            target.inspect(&principal_name(&grant)).await.unwrap(),
            None,
            "{role}: nothing was created"
        );
    }
    let reported = target.check_scope().await.unwrap();
    for role in [&creator, &reads_all, &delegator, &logs_in, &regrants] {
        assert!(
            reported.iter().any(|r| &r.scope_role == role),
            "{role} is reported by the check: {reported:?}"
        );
    }
    assert!(
        !reported.iter().any(|r| r.scope_role == f.reader),
        "a plain read role is safe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_revocations_of_one_grant_converge() {
    let f = fixture().await;
    let grant = grant_for(&[&f.reader]);
    let pw = password();
    let name = f
        .target
        .issue(&grant, &SecretString::from(pw.clone()))
        .await
        .unwrap();
    let _session = login(&f, &name, &pw).await.unwrap();
    let results = futures::future::join_all((0..4).map(|_| f.target.revoke(&grant))).await;
    let mut dropped = 0;
    for r in results {
        let r = r.expect("every concurrent revocation succeeds");
        dropped += r.dropped.len();
        assert_eq!((r.logins_remaining, r.sessions_remaining), (0, 0));
    }
    assert_eq!(dropped, 1, "exactly one of them dropped the login");
    assert!(login(&f, &name, &pw).await.is_err());
}

/// The grantee cannot let an accomplice into its login (this PostgreSQL refuses a
/// role's grant of itself); should someone else have (a DBA's slip), revocation
/// removes the membership, ends the member's session and still drops the login.
#[tokio::test]
async fn a_member_of_the_login_is_put_out_and_its_session_ended() {
    let f = fixture().await;
    let s = suffix();
    let accomplice = format!("accomplice_{s}");
    let accomplice_pw = password();
    let su = f.stack.pg_admin().await;
    su.batch_execute(&format!(
        "CREATE ROLE {accomplice} LOGIN PASSWORD '{accomplice_pw}'"
    ))
    .await
    .unwrap();
    let grant = grant_for(&[&f.reader]);
    let pw = password();
    let name = f
        .target
        .issue(&grant, &SecretString::from(pw.clone()))
        .await
        .unwrap();
    let grantee = login(&f, &name, &pw).await.unwrap();
    assert!(
        grantee
            .batch_execute(&format!("GRANT {name} TO {accomplice}"))
            .await
            .is_err(),
        "the grantee cannot grant its own login to anyone"
    );
    su.batch_execute(&format!("GRANT {name} TO {accomplice}"))
        .await
        .unwrap();
    let other = login(&f, &accomplice, &accomplice_pw).await.unwrap();
    other
        .batch_execute(&format!("SET ROLE {name}"))
        .await
        .unwrap();

    let revoked = f.target.revoke(&grant).await.unwrap();
    assert_eq!(revoked.members_removed, std::slice::from_ref(&accomplice));
    assert_eq!(revoked.dropped, std::slice::from_ref(&name));
    assert!(
        other.batch_execute("SELECT 1").await.is_err(),
        "the accomplice's session ended"
    );
    let memberships: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member \
             WHERE m.rolname = $1",
            &[&accomplice],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(memberships, 0);
}
