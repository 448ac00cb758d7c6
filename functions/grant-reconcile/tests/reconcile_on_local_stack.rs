//! The reconciler against moto and the local PostgreSQL. Each kind of drift is made by
//! hand, as it happens in real life (a secret created outside ticketbound, a role
//! dropped by a DBA, a membership granted on the side, a grant recorded revoked while
//! its login survived), and the reconciler must find it, and fix what it may fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, Utc};
use grant_reconcile::{Deps, FindingKind, ReconcileReport, reconcile};
use ticketbound_domain::Detail;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, Grant, GrantEvent, GrantState, LifecycleRules,
};
use ticketbound_runtime::EnvReader;
use ticketbound_targets::principal_name;
use ticketbound_testkit::TestStack;
use ticketbound_testkit::issuing::{ALTERNATING_TARGET, IssuingFixture};

struct Harness {
    stack: TestStack,
    deps: Deps,
    fixture: IssuingFixture,
}

async fn harness(remediate: bool) -> Harness {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let fixture = stack.issuing_fixture(None).await;
    let registry = stack.seeded_registry().await;
    let deps = Deps::from_env(
        &stack.sdk,
        EnvReader::from_map([
            ("TICKETBOUND_GRANTS_TABLE", tables.grants.clone()),
            ("TICKETBOUND_AUDIT_TABLE", tables.audit.clone()),
            ("TICKETBOUND_IDENTITIES_TABLE", registry.table().to_owned()),
            ("TICKETBOUND_TARGETS", fixture.targets.to_string()),
            ("TICKETBOUND_SCHEDULE_GROUP", fixture.schedule_group.clone()),
            ("TICKETBOUND_SECRET_CACHE_SECS", "0".to_owned()),
            ("TICKETBOUND_RECONCILE_REMEDIATE", remediate.to_string()),
        ]),
    )
    .unwrap();
    Harness {
        stack,
        deps,
        fixture,
    }
}

impl Harness {
    async fn active(&self) -> (Grant, String) {
        self.fixture
            .active_grant(
                &self.stack,
                &self.deps.store,
                ALTERNATING_TARGET,
                Duration::hours(2),
            )
            .await
    }

    async fn admin(&self, sql: &str) {
        self.stack
            .pg_admin()
            .await
            .batch_execute(sql)
            .await
            .unwrap();
    }

    async fn drift_events(&self, g: &Grant) -> Vec<ticketbound_domain::AuditEvent> {
        self.deps
            .store
            .audit_trail(g.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == AuditAction::DriftFound)
            .collect()
    }
}

fn about<'a>(
    report: &'a ReconcileReport,
    kind: FindingKind,
    g: &Grant,
) -> Vec<&'a grant_reconcile::Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.kind == kind && f.grant_id == Some(g.id))
        .collect()
}

#[tokio::test]
async fn a_secret_and_a_login_made_outside_ticketbound_are_orphans() {
    let h = harness(true).await;
    let sm = h.stack.secretsmanager();
    let tag = |k: &str, v: &str| {
        aws_sdk_secretsmanager::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
    };
    let made_by_hand = sm
        .create_secret()
        .name(format!("ticketbound/prod/handmade/{}", ulid::Ulid::new()))
        .secret_string("{}")
        .tags(tag("managed-by", "ticketbound"))
        .tags(tag("grant-id", &ulid::Ulid::new().to_string()))
        .send()
        .await
        .unwrap();
    let login = format!(
        "tb_handmade_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    h.admin(&format!("CREATE ROLE {login} LOGIN PASSWORD 'x-by-hand'"))
        .await;

    let report = reconcile(&h.deps).await.unwrap();
    let orphans: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Orphan)
        .map(|f| f.subject.as_str())
        .collect();
    assert!(
        orphans.contains(&made_by_hand.arn().unwrap()),
        "{orphans:?}"
    );
    assert!(
        orphans.contains(&format!("{ALTERNATING_TARGET}/{login}").as_str()),
        "{orphans:?}"
    );
    assert!(report.secrets_seen >= 1 && report.logins_seen >= 1);
    h.admin(&format!("DROP ROLE {login}")).await;
}

#[tokio::test]
async fn a_login_dropped_by_hand_is_missing_and_reported_once() {
    let h = harness(true).await;
    let (g, _) = h.active().await;
    let (healthy, _) = h.active().await;
    h.admin(&format!("DROP ROLE {}", principal_name(&g))).await;

    let report = reconcile(&h.deps).await.unwrap();
    let missing = about(&report, FindingKind::Missing, &g);
    assert_eq!(missing.len(), 1, "{:#?}", report.findings);
    assert!(missing[0].detail.contains("login is gone"));
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.grant_id != Some(healthy.id)),
        "a grant whose live state matches has no finding: {:#?}",
        report.findings
    );
    assert_eq!(h.drift_events(&g).await.len(), 1);

    // The next run finds it again but does not say it again in the trail.
    let again = reconcile(&h.deps).await.unwrap();
    assert_eq!(about(&again, FindingKind::Missing, &g).len(), 1);
    assert_eq!(h.drift_events(&g).await.len(), 1);
}

#[tokio::test]
async fn a_membership_granted_on_the_side_is_scope_drift() {
    let h = harness(true).await;
    let (g, _) = h.active().await;
    h.admin(&format!(
        "GRANT {} TO {}",
        h.fixture.pg.payments,
        principal_name(&g)
    ))
    .await;

    let report = reconcile(&h.deps).await.unwrap();
    let drift = about(&report, FindingKind::ScopeDrift, &g);
    assert_eq!(drift.len(), 1, "{:#?}", report.findings);
    assert!(
        drift[0].detail.contains(&h.fixture.pg.payments),
        "{}",
        drift[0].detail
    );
    let recorded = h.drift_events(&g).await;
    assert_eq!(recorded[0].details[Detail::Kind.as_str()], "scope_drift");
}

/// Records the grant Revoked without touching the target: the failure this project
/// exists to catch.
async fn revoked_on_paper(h: &Harness, g: &Grant) {
    let rules = LifecycleRules::default();
    let current = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    let audit = |action| {
        move |_: &Grant, _: &ticketbound_domain::Transition| {
            AuditRecord::new(Utc::now(), Actor::operator("someone"), action)
        }
    };
    let (current, _) = h
        .deps
        .store
        .advance(
            current,
            &GrantEvent::TicketWithdrawn,
            Utc::now(),
            &rules,
            audit(AuditAction::RevocationStarted),
        )
        .await
        .unwrap();
    h.deps
        .store
        .advance(
            current,
            &GrantEvent::RevokeConfirmed,
            Utc::now(),
            &rules,
            audit(AuditAction::Revoked),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_revoked_grant_whose_login_survived_is_found_and_revoked() {
    let h = harness(true).await;
    let (g, password) = h.active().await;
    revoked_on_paper(&h, &g).await;
    assert!(
        h.stack
            .pg_login(&principal_name(&g), &password)
            .await
            .is_ok()
    );

    let report = reconcile(&h.deps).await.unwrap();
    let found = about(&report, FindingKind::ExpiredButLive, &g);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    let remediation = found[0].remediation.as_deref().unwrap();
    assert!(
        remediation.contains("revoked by the reconciler"),
        "{remediation}"
    );

    // Now it is dead for real, and the trail says who killed it.
    assert!(
        h.stack
            .pg_login(&principal_name(&g), &password)
            .await
            .is_err()
    );
    let secret = g.credential.as_ref().unwrap().secret_arn.clone();
    assert!(
        h.deps
            .enforcer
            .secrets_manager
            .describe(&secret)
            .await
            .unwrap()
            .is_none_or(|s| s.deleted)
    );
    let recorded = h.drift_events(&g).await;
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].details[Detail::Remediation.as_str()].contains("revoked"));
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Revoked);

    // And the next run has nothing to say about it.
    let again = reconcile(&h.deps).await.unwrap();
    assert!(again.findings.iter().all(|f| f.grant_id != Some(g.id)));
}

#[tokio::test]
async fn with_remediation_off_an_expired_but_live_credential_is_only_reported() {
    let h = harness(false).await;
    let (g, password) = h.active().await;
    revoked_on_paper(&h, &g).await;
    let report = reconcile(&h.deps).await.unwrap();
    let found = about(&report, FindingKind::ExpiredButLive, &g);
    assert_eq!(found.len(), 1);
    assert!(found[0].remediation.is_none());
    assert!(
        h.stack
            .pg_login(&principal_name(&g), &password)
            .await
            .is_ok()
    );
}

/// A live grant of the retired `generated_api_key` connector is reported, once, for
/// what it is: a credential nothing at a target can prove refused after its end.
#[tokio::test]
async fn a_live_grant_of_the_retired_api_key_connector_is_reported_once() {
    let h = harness(false).await;
    let g = ticketbound_testkit::issuing::retired_api_key_grant(&h.stack, &h.deps.store).await;
    let report = reconcile(&h.deps).await.unwrap();
    let found = about(&report, FindingKind::RetiredConnector, &g);
    assert_eq!(found.len(), 1, "{report:#?}");
    assert!(found[0].detail.contains("generated_api_key"), "{found:?}");
    assert!(
        about(&report, FindingKind::Missing, &g).is_empty(),
        "its secret is there and it has no login to miss: {report:#?}"
    );
    let first = h.drift_events(&g).await.len();
    assert!(
        first >= 2,
        "its policy finding too (the test made its secret without one)"
    );
    reconcile(&h.deps).await.unwrap();
    assert_eq!(
        h.drift_events(&g).await.len(),
        first,
        "each finding told once, not at every run"
    );
}

/// A scope role safe at issue is given more by hand afterwards (here membership in
/// `pg_read_all_data`): the live grant that holds it is reported as scope drift, with
/// what carries the power, though its own memberships did not change.
#[tokio::test]
async fn a_scope_role_given_more_after_issue_is_scope_drift_on_the_closure() {
    let h = harness(false).await;
    let (g, _) = h.active().await;
    let reader = h.fixture.pg.reader.clone();
    h.admin(&format!("GRANT pg_read_all_data TO {reader}"))
        .await;
    let report = reconcile(&h.deps).await.unwrap();
    h.admin(&format!("REVOKE pg_read_all_data FROM {reader}"))
        .await;
    let drift = about(&report, FindingKind::ScopeDrift, &g);
    assert_eq!(drift.len(), 1, "{report:#?}");
    assert!(
        drift[0].detail.contains(&reader) && drift[0].detail.contains("pg_read_all_data"),
        "{drift:?}"
    );
    let report = reconcile(&h.deps).await.unwrap();
    assert!(
        about(&report, FindingKind::ScopeDrift, &g).is_empty(),
        "gone once the DBA took it back: {report:#?}"
    );
}

/// The reconciler's `identity_unregistered` findings about `grant`, from a run now.
async fn unregistered_findings(
    h: &Harness,
    grant: ticketbound_domain::GrantId,
) -> Vec<grant_reconcile::Finding> {
    reconcile(&h.deps)
        .await
        .unwrap()
        .findings
        .into_iter()
        .filter(|f| f.kind == FindingKind::IdentityUnregistered && f.grant_id == Some(grant))
        .collect()
}

/// Grants made before the registry, or before a change to it, run to their end; the
/// reconciler says which the registry no longer accounts for, and why, and leaves
/// them be (this is a report, not a revocation).
#[tokio::test]
async fn a_live_grant_the_registry_no_longer_accounts_for_is_reported_identity_unregistered() {
    let h = harness(true).await;
    let (grant, _) = h.active().await;
    let report = reconcile(&h.deps).await.unwrap();
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::IdentityUnregistered),
        "a registered identity is accounted for: {:#?}",
        report.findings
    );

    let name = ticketbound_domain::IdentityName::new("orders-etl").unwrap();
    let mut moved = h.deps.registry.get(&name).await.unwrap().unwrap().identity;
    moved.workload_principals =
        [
            ticketbound_domain::Principal::new("arn:aws:iam::123456789012:role/orders-etl-v2")
                .unwrap(),
        ]
        .into();
    let operator = Actor::operator("ops@example.com");
    h.deps
        .registry
        .put(moved, &operator, Utc::now())
        .await
        .unwrap();
    let found = unregistered_findings(&h, grant.id).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].detail.contains("workload principal"),
        "{}",
        found[0].detail
    );
    assert!(found[0].remediation.is_none());

    h.deps
        .registry
        .retire(&name, &operator, Utc::now(), "workload decommissioned")
        .await
        .unwrap();
    let found = unregistered_findings(&h, grant.id).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].detail.contains("was retired"),
        "{}",
        found[0].detail
    );
    let still = h.deps.store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(still.state, GrantState::Active, "reported, not revoked");
}

/// The inventory's part of each run: a login made by hand at the target and a secret
/// that looks like a credential, neither made by ticketbound, are reported as
/// `unmanaged` (apart from drift) and left alone: the login still logs in and the
/// secret is still there after the run, remediation on. What is not a credential, a
/// role that cannot log in, ticketbound's administrator and its managed secrets are
/// not listed.
#[tokio::test]
async fn logins_and_secrets_made_by_hand_are_listed_as_unmanaged_and_left_alone() {
    let h = harness(true).await;
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let (login, group) = (format!("handmade_{id}"), format!("handgroup_{id}"));
    h.admin(&format!(
        "CREATE ROLE {group} NOLOGIN; CREATE ROLE {login} LOGIN PASSWORD 'by-hand-pw' IN ROLE {group}"
    ))
    .await;
    let sm = h.stack.secretsmanager();
    let password = sm
        .create_secret()
        .name(format!("app/orders/{id}/db-password"))
        .secret_string("not read by anyone here")
        .send()
        .await
        .unwrap();
    let flags = sm
        .create_secret()
        .name(format!("ui/{id}/feature-flags"))
        .description("layout settings")
        .secret_string("{}")
        .send()
        .await
        .unwrap();
    let (grant, _) = h.active().await;
    // Hiding places: a login named as RDS names its own, and an allowed scope role
    // given the right to log in.
    let disguised = format!("rdsadmin_{id}");
    h.admin(&format!("CREATE ROLE {disguised} LOGIN")).await;
    let scope_role = h.fixture.pg.reader.clone();
    h.admin(&format!("ALTER ROLE {scope_role} LOGIN")).await;

    let report = reconcile(&h.deps).await.unwrap();
    h.admin(&format!(
        "ALTER ROLE {scope_role} NOLOGIN; DROP ROLE {disguised}"
    ))
    .await;
    let unmanaged: Vec<&str> = report
        .unmanaged
        .iter()
        .map(|f| f.subject.as_str())
        .collect();
    for listed in [&disguised, &scope_role] {
        let subject = format!("{ALTERNATING_TARGET}/{listed}");
        assert!(
            unmanaged.contains(&subject.as_str()),
            "{subject}: {unmanaged:?}"
        );
    }
    let hand_login = format!("{ALTERNATING_TARGET}/{login}");
    assert!(unmanaged.contains(&hand_login.as_str()), "{unmanaged:?}");
    assert!(
        unmanaged.contains(&password.arn().unwrap()),
        "{unmanaged:?}"
    );
    assert!(
        !unmanaged.contains(&flags.arn().unwrap()),
        "not a credential by its metadata"
    );
    let about_login = report
        .unmanaged
        .iter()
        .find(|f| f.subject == hand_login)
        .unwrap();
    assert!(
        about_login.detail.contains(&format!("member of {group}")),
        "{}",
        about_login.detail
    );
    assert!(
        about_login.detail.contains("never expires"),
        "{}",
        about_login.detail
    );
    for not_listed in [
        format!("{ALTERNATING_TARGET}/{group}"),
        format!("{ALTERNATING_TARGET}/ticketbound_admin"),
        format!("{ALTERNATING_TARGET}/postgres"),
        format!("{ALTERNATING_TARGET}/{}", principal_name(&grant)),
    ] {
        assert!(
            !unmanaged.contains(&not_listed.as_str()),
            "{not_listed} listed: {unmanaged:?}"
        );
    }
    let managed = grant.credential.clone().unwrap().secret_arn;
    assert!(
        !unmanaged.contains(&managed.as_str()),
        "a grant's secret is managed"
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind != FindingKind::Unmanaged),
        "unmanaged is not drift"
    );

    // Left alone: the login still works, the secret is still there.
    h.stack.pg_login(&login, "by-hand-pw").await.unwrap();
    let described = sm
        .describe_secret()
        .secret_id(password.arn().unwrap())
        .send()
        .await
        .unwrap();
    assert!(described.deleted_date().is_none());
    h.admin(&format!("DROP ROLE {login}; DROP ROLE {group}"))
        .await;
}
