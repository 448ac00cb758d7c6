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

/// The inventory's part of each run: logins made by hand at the target and secrets
/// ticketbound did not make are reported as `unmanaged` (apart from drift) and left
/// alone: the login still logs in and the secrets are still there after the run,
/// remediation on. Hiding places an attacker would try are listed too: a neutral
/// secret name, a scope role given the right to log in, a power held through a group,
/// `VALID UNTIL` values chrono cannot hold (which must not stop the run). A role that
/// cannot log in, ticketbound's administrator and the grant's own login and secret are
/// not listed.
#[tokio::test]
async fn logins_and_secrets_made_by_hand_are_listed_as_unmanaged_and_left_alone() {
    let h = harness(true).await;
    let id = ulid::Ulid::new().to_string().to_lowercase();
    let (login, group) = (format!("handmade_{id}"), format!("handgroup_{id}"));
    let (never, far) = (format!("never_{id}"), format!("far_{id}"));
    let scope_role = h.fixture.pg.reader.clone();
    h.admin(&format!(
        "CREATE ROLE {group} NOLOGIN; GRANT pg_read_server_files TO {group}; \
         CREATE ROLE {login} LOGIN PASSWORD 'by-hand-pw' IN ROLE {group}; \
         CREATE ROLE {never} LOGIN VALID UNTIL '-infinity'; \
         CREATE ROLE {far} LOGIN VALID UNTIL '270000-01-01'"
    ))
    .await;
    let sm = h.stack.secretsmanager();
    let made = |name: String, description: Option<&'static str>| {
        let sm = sm.clone();
        async move {
            sm.create_secret()
                .name(name)
                .set_description(description.map(str::to_owned))
                .secret_string("not read by anyone here")
                .send()
                .await
                .unwrap()
                .arn()
                .unwrap()
                .to_owned()
        }
    };
    let password = made(format!("app/orders/{id}/db-password"), None).await;
    let neutral = made(format!("x1-{id}"), Some("settings")).await;
    let (grant, _) = h.active().await;
    // After the issue (which refuses a scope role that can log in).
    h.admin(&format!("ALTER ROLE {scope_role} LOGIN")).await;
    // A secret that claims to be the live grant's by its tags: not its credential.
    let tag = |k: &str, v: &str| {
        aws_sdk_secretsmanager::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
    };
    let impostor = sm
        .create_secret()
        .name(format!("ticketbound/prod/impostor/{id}"))
        .secret_string("{}")
        .tags(tag("managed-by", "ticketbound"))
        .tags(tag("grant-id", &grant.id.to_string()))
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();

    let report = reconcile(&h.deps).await.unwrap();
    h.admin(&format!(
        "ALTER ROLE {scope_role} NOLOGIN; DROP ROLE {never}; DROP ROLE {far}"
    ))
    .await;
    assert_eq!(report.unmanaged_error, None);
    let unmanaged: Vec<&str> = report
        .unmanaged
        .iter()
        .map(|f| f.subject.as_str())
        .collect();
    let at = |role: &str| format!("{ALTERNATING_TARGET}/{role}");
    for listed in [
        at(&login),
        at(&never),
        at(&far),
        at(&scope_role),
        password.clone(),
        neutral.clone(),
    ] {
        assert!(
            unmanaged.contains(&listed.as_str()),
            "{listed}: {unmanaged:?}"
        );
    }
    let detail = |subject: &str| {
        report
            .unmanaged
            .iter()
            .find(|f| f.subject == subject)
            .unwrap()
            .detail
            .clone()
    };
    let hand = detail(&at(&login));
    assert!(
        hand.contains("pg_read_server_files"),
        "through its group: {hand}"
    );
    assert!(hand.contains(&group), "{hand}");
    assert!(hand.contains("never expires"), "{hand}");
    assert!(
        detail(&at(&never)).contains("never valid"),
        "{}",
        detail(&at(&never))
    );
    assert!(
        detail(&at(&far)).contains("valid until 9999-12-31"),
        "{}",
        detail(&at(&far))
    );
    assert!(detail(&password).contains("looks like a credential"));
    assert!(
        !detail(&neutral).contains("looks like"),
        "listed without a label"
    );
    for not_listed in [
        at(&group),
        at("ticketbound_admin"),
        at("postgres"),
        at(&principal_name(&grant)),
        grant.credential.clone().unwrap().secret_arn,
    ] {
        assert!(
            !unmanaged.contains(&not_listed.as_str()),
            "{not_listed} listed: {unmanaged:?}"
        );
    }
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::Orphan && f.subject == impostor),
        "a second secret tagged for a live grant is an orphan: {:#?}",
        report.findings
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind != FindingKind::Unmanaged),
        "unmanaged is not drift"
    );

    // Left alone: the login still works, the secrets are still there.
    h.stack.pg_login(&login, "by-hand-pw").await.unwrap();
    for arn in [&password, &neutral, &impostor] {
        let described = sm.describe_secret().secret_id(arn).send().await.unwrap();
        assert!(described.deleted_date().is_none(), "{arn} was touched");
        sm.delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
    }
    h.admin(&format!("DROP ROLE {login}; DROP ROLE {group}"))
        .await;
}

/// An approval nothing issues (the stream's record or a start schedule's retries gave
/// up) does not wait unseen: 30 minutes after it was due it is `provisioning_stuck`,
/// recorded in its trail once. One approved a moment ago, and one whose change window
/// has not begun, are in flight, not stuck.
#[tokio::test]
async fn an_approval_nothing_issues_is_reported_stuck_once() {
    let h = harness(true).await;
    let store = &h.deps.store;
    let record = |mut g: Grant| async move {
        let e = g.record(
            AuditRecord::new(
                g.created_at,
                Actor::itsm_user("sam"),
                AuditAction::Requested,
            )
            .states(None, Some(GrantState::Approved)),
        );
        store
            .create_grant(&g, &[e], None, g.created_at)
            .await
            .unwrap();
        g
    };
    let long_ago = Utc::now() - Duration::minutes(40);
    let stuck = record(ticketbound_testkit::sample_grant(
        long_ago,
        Duration::hours(3),
    ))
    .await;
    let fresh = record(ticketbound_testkit::sample_grant(
        Utc::now(),
        Duration::hours(3),
    ))
    .await;
    let mut waiting = ticketbound_testkit::sample_grant(long_ago, Duration::hours(3));
    waiting.deferred_until = Some(Utc::now() + Duration::hours(1));
    let waiting = record(waiting).await;

    let report = reconcile(&h.deps).await.unwrap();
    let found = about(&report, FindingKind::ProvisioningStuck, &stuck);
    assert_eq!(found.len(), 1, "{:#?}", report.findings);
    assert!(
        found[0].detail.contains("nothing issues it"),
        "{}",
        found[0].detail
    );
    for in_flight in [&fresh, &waiting] {
        assert!(
            about(&report, FindingKind::ProvisioningStuck, in_flight).is_empty(),
            "{:#?}",
            report.findings
        );
    }
    assert_eq!(h.drift_events(&stuck).await.len(), 1);
    reconcile(&h.deps).await.unwrap();
    assert_eq!(h.drift_events(&stuck).await.len(), 1, "said once");
}
