//! The rotation function against moto and the local PostgreSQL: the credential a
//! rotation makes logs in, the one it replaced keeps working (alternating users) or is
//! refused (single user), every step survives repetition and interruption, and a grant
//! that is not live is never rotated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration as StdDuration, Instant};
use ticketbound_domain::Detail;

use chrono::{Duration, Utc};
use secret_rotate::{Deps, RotateError, handle};
use ticketbound_domain::{AuditAction, EndCause, ExpiryTrigger, Grant, GrantEvent, GrantState};
use ticketbound_enforce::rotation::{Refusal, Step};
use ticketbound_local::rotation::{
    self as emulator, EmulatorError, RetryPolicy, Rotation, step_event,
};
use ticketbound_runtime::EnvReader;
use ticketbound_secrets::rotation::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use ticketbound_targets::{alternate_principal_name, principal_name};
use ticketbound_testkit::TestStack;
use ticketbound_testkit::issuing::{
    ALTERNATING_TARGET, IssuingFixture, SINGLE_USER_TARGET, make_overdue,
};

/// The rotation function moto knows (registered by `ticketbound local up`).
const ROTATION_FUNCTION_ARN: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-secret-rotate";

/// Secrets Manager's rotation of `arn` with the function under test.
async fn rotate(
    deps: &Deps,
    arn: &str,
    retry: RetryPolicy,
) -> Result<Rotation, EmulatorError<RotateError>> {
    let function = emulator::Function::new(
        &deps.enforcer.secrets_manager,
        &deps.store,
        |event| handle(deps, event),
        RotateError::is_refusal,
    );
    emulator::rotate(&function, arn, retry).await
}

struct Harness {
    stack: TestStack,
    deps: Deps,
    fixture: IssuingFixture,
    /// Every AWS call the function under test made.
    counts: ticketbound_local::calls::CallCounts,
    /// The function's SDK configuration (its calls are counted).
    sdk: aws_config::SdkConfig,
}

async fn harness() -> Harness {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let fixture = stack.issuing_fixture(Some(ROTATION_FUNCTION_ARN)).await;
    // The function's own calls are counted, to check them against its role.
    let counts = ticketbound_local::calls::CallCounts::new();
    let sdk = stack.local.function_sdk_config(&counts).await;
    let deps = Deps::from_env(
        &sdk,
        EnvReader::from_map([
            ("TICKETBOUND_GRANTS_TABLE", tables.grants.clone()),
            ("TICKETBOUND_AUDIT_TABLE", tables.audit.clone()),
            ("TICKETBOUND_TARGETS", fixture.targets.to_string()),
            // Re-read on every call, so a test can break and mend the target.
            ("TICKETBOUND_SECRET_CACHE_SECS", "0".to_owned()),
        ]),
    )
    .unwrap();
    Harness {
        stack,
        deps,
        fixture,
        counts,
        sdk,
    }
}

impl Harness {
    async fn active(&self, target: &str) -> (Grant, String) {
        self.fixture
            .active_grant(&self.stack, &self.deps.store, target, Duration::hours(2))
            .await
    }

    async fn logs_in(&self, user: &str, password: &str) -> bool {
        self.stack.pg_login(user, password).await.is_ok()
    }

    /// Version id → labels, and the version that is AWSCURRENT.
    async fn labels(&self, arn: &str) -> (Vec<(String, Vec<String>)>, String) {
        let info = self
            .deps
            .enforcer
            .secrets_manager
            .describe(arn)
            .await
            .unwrap()
            .unwrap();
        let current = info.version_with(AWSCURRENT).unwrap().to_owned();
        let labelled = info
            .versions
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(id, s)| (id, s.into_iter().collect()))
            .collect();
        (labelled, current)
    }

    /// Exactly one AWSCURRENT, one AWSPREVIOUS and no AWSPENDING.
    async fn assert_settled(&self, arn: &str) {
        let (labelled, _) = self.labels(arn).await;
        let count = |label: &str| {
            labelled
                .iter()
                .filter(|(_, s)| s.iter().any(|l| l == label))
                .count()
        };
        assert_eq!(count(AWSCURRENT), 1, "{labelled:?}");
        assert_eq!(count(AWSPREVIOUS), 1, "{labelled:?}");
        assert_eq!(count(AWSPENDING), 0, "{labelled:?}");
    }

    async fn rotations_audited(&self, g: &Grant) -> Vec<ticketbound_domain::AuditEvent> {
        self.deps
            .store
            .audit_trail(g.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == AuditAction::Rotated)
            .collect()
    }

    /// Stages a new rotation as Secrets Manager does and returns its token (with
    /// the fixture's uncounted clients: RotateSecret is the service's, not the
    /// function's).
    async fn begin(&self, arn: &str) -> String {
        let token = uuid_token();
        self.fixture
            .issuer
            .secrets_manager
            .begin_rotation(arn, &token, ROTATION_FUNCTION_ARN, 1)
            .await
            .unwrap();
        token
    }

    /// What someone who can write the secret does: stores, as the pending value of
    /// `token`, the grant's other login with a password they chose (returned).
    async fn plant_pending(&self, g: &Grant, arn: &str, token: &str) -> String {
        let mut planted: serde_json::Value =
            serde_json::from_str(&self.stack.secret_value(arn).await).unwrap();
        let chosen = format!("attacker-{}", ulid::Ulid::new());
        planted["username"] = alternate_principal_name(g).into();
        planted["password"] = chosen.clone().into();
        self.stack
            .secretsmanager()
            .put_secret_value()
            .secret_id(arn)
            .client_request_token(token)
            .secret_string(planted.to_string())
            .version_stages(AWSPENDING)
            .send()
            .await
            .unwrap();
        chosen
    }

    async fn step(&self, step: Step, arn: &str, token: &str) -> Result<(), RotateError> {
        handle(&self.deps, step_event(step, arn, token))
            .await
            .map(|_| ())
    }
}

fn uuid_token() -> String {
    // Secrets Manager's tokens are UUIDs; build one from a ULID's 128 bits.
    let n = ulid::Ulid::new().0;
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        pause: StdDuration::from_millis(100),
    }
}

#[tokio::test]
async fn alternating_users_keep_the_previous_login_working_until_the_next_rotation() {
    let h = harness().await;
    let (g, first_password) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let (primary, alternate) = (principal_name(&g), alternate_principal_name(&g));
    let (_, first_version) = h.labels(&arn).await;

    let started = Instant::now();
    let rotation = rotate(&h.deps, &arn, quick()).await.unwrap();
    println!(
        "one full rotation (4 steps, moto + PostgreSQL): {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(rotation.attempts, 1);

    // The new credential is the alternate login, and it works with the grant's scope.
    let (user, password) = h.stack.credential(&arn).await;
    assert_eq!(user, alternate);
    assert!(password != first_password);
    let client = h.stack.pg_login(&user, &password).await.unwrap();
    let schema = &h.fixture.pg.schema;
    client
        .simple_query(&format!("SELECT * FROM {schema}.orders"))
        .await
        .expect("the rotated login reads what the grant allows");
    assert!(
        client
            .simple_query(&format!("SELECT * FROM {schema}.payments"))
            .await
            .is_err(),
        "and nothing more"
    );
    // The credential the workload still holds keeps working until the next rotation.
    assert!(h.logs_in(&primary, &first_password).await);
    h.assert_settled(&arn).await;
    let (labelled, current) = h.labels(&arn).await;
    assert_eq!(current, rotation.token);
    assert!(
        labelled
            .iter()
            .any(|(id, s)| id == &first_version && s.iter().any(|l| l == AWSPREVIOUS))
    );

    // The grant records it, with versions and never a value.
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Active);
    assert_eq!(
        stored.secret_version.as_deref(),
        Some(rotation.token.as_str())
    );
    assert!(stored.last_rotated_at.is_some());
    let audited = h.rotations_audited(&g).await;
    assert_eq!(audited.len(), 1);
    assert_eq!(
        audited[0].details[Detail::CurrentVersion.as_str()],
        rotation.token
    );
    assert_eq!(
        audited[0].details[Detail::PreviousVersion.as_str()],
        first_version
    );
    assert_eq!(audited[0].details[Detail::Login.as_str()], alternate);
    let trail = serde_json::to_string(&h.deps.store.audit_trail(g.id).await.unwrap()).unwrap();
    assert!(!trail.contains(&password) && !trail.contains(&first_password));

    // The next rotation goes back to the first login, with a new password: its old
    // password is refused, the one rotated a moment ago still works.
    let second = rotate(&h.deps, &arn, quick()).await.unwrap();
    let (user2, password2) = h.stack.credential(&arn).await;
    assert_eq!(user2, primary);
    // (Compared without printing: a failed assert_ne would show the values.)
    assert!(password2 != first_password && password2 != password);
    assert!(h.logs_in(&primary, &password2).await);
    assert!(!h.logs_in(&primary, &first_password).await);
    assert!(h.logs_in(&alternate, &password).await);
    h.assert_settled(&arn).await;
    assert_eq!(h.labels(&arn).await.1, second.token);
    assert_eq!(h.rotations_audited(&g).await.len(), 2);

    // And the third back to the alternate login, whose previous password dies.
    rotate(&h.deps, &arn, quick()).await.unwrap();
    let (user3, password3) = h.stack.credential(&arn).await;
    assert_eq!(user3, alternate);
    assert!(password3 != password && password3 != first_password);
    assert!(h.logs_in(&alternate, &password3).await);
    assert!(!h.logs_in(&alternate, &password).await);
    assert!(h.logs_in(&primary, &password2).await);
    h.assert_settled(&arn).await;
    assert_eq!(h.rotations_audited(&g).await.len(), 3);
    let chain = h.deps.store.audit_trail(g.id).await.unwrap();
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    ticketbound_domain::verify_chain(g.id, &chain, Some(&stored.audit_head)).unwrap();
}

#[tokio::test]
async fn a_single_user_rotation_refuses_the_old_password_at_once() {
    let h = harness().await;
    let (g, first_password) = h.active(SINGLE_USER_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    rotate(&h.deps, &arn, quick()).await.unwrap();

    let (user, password) = h.stack.credential(&arn).await;
    assert_eq!(user, principal_name(&g));
    assert!(h.logs_in(&user, &password).await);
    assert!(!h.logs_in(&user, &first_password).await);
    assert!(!h.logs_in(&alternate_principal_name(&g), &password).await);
    h.assert_settled(&arn).await;
}

#[tokio::test]
async fn every_step_run_twice_gives_the_same_end_state() {
    let h = harness().await;
    let (g, _) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let token = h.begin(&arn).await;
    for step in Step::ALL {
        h.step(step, &arn, &token).await.unwrap();
        h.step(step, &arn, &token).await.unwrap();
    }
    // And a whole rotation delivered again after it finished changes nothing.
    let settled = h.stack.credential(&arn).await;
    for step in Step::ALL {
        h.step(step, &arn, &token).await.unwrap();
    }
    assert!(h.stack.credential(&arn).await == settled);
    let (user, password) = settled;
    assert_eq!(user, alternate_principal_name(&g));
    assert!(h.logs_in(&user, &password).await);
    h.assert_settled(&arn).await;
    assert_eq!(h.labels(&arn).await.1, token);
    assert_eq!(h.rotations_audited(&g).await.len(), 1);
    // Every call the four steps made, twice and after the end, is one its role allows.
    let outside =
        ticketbound_testkit::calls_outside(&h.counts, secret_rotate::config::AWS_OPERATIONS);
    assert!(outside.is_empty(), "called beyond its role: {outside:?}");
}

#[tokio::test]
async fn a_rotation_interrupted_after_any_step_completes_on_retry() {
    let h = harness().await;
    for (done, target) in [
        (1, ALTERNATING_TARGET),
        (2, ALTERNATING_TARGET),
        (3, ALTERNATING_TARGET),
        (4, ALTERNATING_TARGET),
        (2, SINGLE_USER_TARGET),
    ] {
        let (g, old_password) = h.active(target).await;
        let arn = g.credential.as_ref().unwrap().secret_arn.clone();
        let (old_user, _) = h.stack.credential(&arn).await;
        let token = h.begin(&arn).await;
        // The function dies after `done` steps ...
        for step in &Step::ALL[..done] {
            h.step(*step, &arn, &token).await.unwrap();
        }
        // ... and until the rotation finishes, the credential in the secret still works.
        let (user, password) = h.stack.credential(&arn).await;
        if done < 4 {
            assert!(user == old_user && password == old_password);
            if target == ALTERNATING_TARGET {
                assert!(
                    h.logs_in(&user, &password).await,
                    "interrupted after {done}"
                );
            }
        }
        // Secrets Manager starts the rotation again with the same token.
        for step in Step::ALL {
            h.step(step, &arn, &token).await.unwrap();
        }
        let (user, password) = h.stack.credential(&arn).await;
        assert!(
            h.logs_in(&user, &password).await,
            "interrupted after {done} at {target}"
        );
        assert!(password != old_password);
        h.assert_settled(&arn).await;
        assert_eq!(h.rotations_audited(&g).await.len(), 1);
    }
}

#[tokio::test]
async fn a_failing_target_is_retried_and_a_pending_version_left_behind_does_not_block() {
    let h = harness().await;
    let (g, old_password) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let sm = h.stack.secretsmanager();
    let dsn = h.stack.local.postgres.admin_dsn();
    let broken = dsn.replace(&format!("port={}", h.stack.local.postgres.port), "port=1");
    assert_ne!(broken, dsn, "the DSN names its port");
    let set_admin = |value: String| {
        let sm = sm.clone();
        let id = h.fixture.admin_secret.clone();
        async move {
            sm.put_secret_value()
                .secret_id(id)
                .secret_string(value)
                .send()
                .await
                .unwrap();
        }
    };

    // The target is unreachable: every attempt fails in setSecret, nothing changes.
    set_admin(broken).await;
    let failed = rotate(&h.deps, &arn, quick()).await.unwrap_err();
    assert!(
        matches!(
            failed,
            EmulatorError::Failed {
                step: "setSecret",
                attempts: 3,
                ..
            }
        ),
        "{failed:?}"
    );
    let (user, password) = h.stack.credential(&arn).await;
    assert!(password == old_password);
    assert!(h.logs_in(&user, &password).await);
    assert!(h.rotations_audited(&g).await.is_empty());

    // Mended, the next rotation (a new token; the failed one's pending version is
    // still there) completes.
    set_admin(dsn).await;
    rotate(&h.deps, &arn, quick()).await.unwrap();
    let (user, password) = h.stack.credential(&arn).await;
    assert_eq!(user, alternate_principal_name(&g));
    assert!(h.logs_in(&user, &password).await);
    h.assert_settled(&arn).await;
    assert_eq!(h.rotations_audited(&g).await.len(), 1);
}

#[tokio::test]
async fn a_grant_past_its_time_is_not_rotated_but_handed_to_revocation() {
    let h = harness().await;
    let (g, password) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let before = h.labels(&arn).await;
    make_overdue(&h.deps.store, &g).await;

    let refused = rotate(&h.deps, &arn, quick()).await.unwrap_err();
    let EmulatorError::Failed { attempts, last, .. } = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(attempts, 1, "a refusal is final");
    assert!(
        matches!(
            last,
            RotateError::GrantNotLive {
                expired: true,
                handed_to_revocation: true,
                ..
            }
        ),
        "{last:?}"
    );

    // Nothing changed at the target or in the secret's current value.
    assert!(h.stack.credential(&arn).await.1 == password);
    assert_eq!(h.labels(&arn).await.1, before.1);
    let admin = h.stack.pg_admin().await;
    let alternate = admin
        .query_opt(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[&alternate_principal_name(&g)],
        )
        .await
        .unwrap();
    assert!(alternate.is_none(), "no second login was made");

    // The grant is on its way to revocation, and the audit says why.
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Revoking);
    assert_eq!(
        stored.end_cause,
        Some(EndCause::Expired(ExpiryTrigger::Rotation))
    );
    let last = h.deps.store.latest_audit(g.id).await.unwrap().unwrap();
    assert_eq!(last.action, AuditAction::RotationRefused);
    assert_eq!(last.state_after, Some(GrantState::Revoking));
    assert!(h.rotations_audited(&g).await.is_empty());
}

#[tokio::test]
async fn a_revoked_grant_is_never_rotated_and_the_refusal_is_audited_once() {
    let h = harness().await;
    let (g, password) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    // Recorded Revoked while its secret survived (what the reconciler calls
    // expired-but-live): rotation must not breathe new life into it.
    let rules = ticketbound_domain::LifecycleRules::default();
    let current = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    let (current, _) = h
        .deps
        .store
        .advance(
            current,
            &GrantEvent::TicketWithdrawn,
            Utc::now(),
            &rules,
            |_, _| {
                ticketbound_domain::AuditRecord::new(
                    Utc::now(),
                    ticketbound_domain::Actor::component("test"),
                    AuditAction::RevocationStarted,
                )
            },
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
            |_, _| {
                ticketbound_domain::AuditRecord::new(
                    Utc::now(),
                    ticketbound_domain::Actor::component("test"),
                    AuditAction::Revoked,
                )
            },
        )
        .await
        .unwrap();
    let before = h.labels(&arn).await;
    let token = h.begin(&arn).await;
    for _ in 0..2 {
        let refused = h.step(Step::CreateSecret, &arn, &token).await.unwrap_err();
        assert!(
            matches!(
                refused,
                RotateError::GrantNotLive {
                    state: GrantState::Revoked,
                    handed_to_revocation: false,
                    ..
                }
            ),
            "{refused:?}"
        );
    }
    assert!(h.stack.credential(&arn).await.1 == password);
    assert_eq!(h.labels(&arn).await.1, before.1);
    let refusals = h
        .deps
        .store
        .audit_trail(g.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::RotationRefused)
        .count();
    assert_eq!(
        refusals, 1,
        "the same rotation is refused once in the trail"
    );
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Revoked);
}

#[tokio::test]
async fn requests_that_are_not_rotations_of_a_managed_secret_are_refused_by_name() {
    let h = harness().await;
    let (g, _) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let token = h.begin(&arn).await;

    let unknown_step = handle(
        &h.deps,
        serde_json::from_value(serde_json::json!({
            "Step": "dropEverything", "SecretId": arn, "ClientRequestToken": token
        }))
        .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        unknown_step,
        RotateError::Refused(Refusal::UnknownStep(_))
    ));

    let not_staged = h
        .step(Step::CreateSecret, &arn, &uuid_token())
        .await
        .unwrap_err();
    assert!(
        matches!(
            not_staged,
            RotateError::Refused(Refusal::TokenNotStaged { .. })
        ),
        "{not_staged:?}"
    );

    let foreign = h.stack.create_secret("someone-elses", "value").await;
    let not_managed = h
        .step(Step::CreateSecret, &foreign, &token)
        .await
        .unwrap_err();
    assert!(
        matches!(not_managed, RotateError::Refused(Refusal::NotManaged(_))),
        "{not_managed:?}"
    );

    let sm = h.stack.secretsmanager();
    let unrotated = sm
        .create_secret()
        .name(format!("managed-but-not-rotated-{}", ulid::Ulid::new()))
        .secret_string("{}")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("managed-by")
                .value("ticketbound")
                .build(),
        )
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("grant-id")
                .value(g.id.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let disabled = h
        .step(Step::CreateSecret, unrotated.arn().unwrap(), &token)
        .await
        .unwrap_err();
    assert!(
        matches!(disabled, RotateError::Refused(Refusal::RotationDisabled(_))),
        "{disabled:?}"
    );

    // None of it touched the grant's credential or its record.
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    assert_eq!(stored.version, g.version);
    let (labelled, _) = h.labels(&arn).await;
    assert!(labelled.iter().any(|(id, _)| id == &token));
}

#[tokio::test]
async fn the_local_schedule_finds_a_secret_once_its_rotation_period_has_passed() {
    let h = harness().await;
    let (g, _) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let period = Duration::hours(i64::from(g.request.rotation_period.as_hours()));
    let listed =
        |due: Vec<ticketbound_secrets::credentials::SecretInfo>| due.iter().any(|s| s.arn == arn);
    assert!(!listed(
        emulator::due(&h.deps.enforcer.secrets_manager, &h.deps.store, Utc::now())
            .await
            .unwrap()
    ));
    assert!(listed(
        emulator::due(
            &h.deps.enforcer.secrets_manager,
            &h.deps.store,
            Utc::now() + period + Duration::minutes(1)
        )
        .await
        .unwrap()
    ));
}

/// The race of the enforcement-seam issue: setSecret has checked that the grant is
/// live and is about to make the second login of an alternating-users rotation, when
/// the grant is revoked (the revocation finds no second login yet). The login it then
/// makes is killed at once, and the trail says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_set_while_the_grant_is_revoked_does_not_survive() {
    use std::sync::Arc;
    use ticketbound_testkit::faults::{FaultInjector, faulty_secretsmanager};

    let mut h = harness().await;
    let (g, _) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let token = h.begin(&arn).await;
    h.step(Step::CreateSecret, &arn, &token).await.unwrap();

    // The administrator's secret is read right before the login is set: hold it there.
    let faults = FaultInjector::default();
    h.deps.enforcer.admin_secrets = ticketbound_secrets::SecretCache::new(
        faulty_secretsmanager(&h.stack.sdk, &faults),
        StdDuration::ZERO,
        StdDuration::ZERO,
    );
    let mut held = faults.pause("GetSecretValue");
    let Harness { stack, deps, .. } = h;
    let deps = Arc::new(deps);
    let set = {
        let (deps, arn, token) = (Arc::clone(&deps), arn.clone(), token.clone());
        tokio::spawn(async move { handle(&deps, step_event(Step::SetSecret, &arn, &token)).await })
    };
    assert!(held.reached(StdDuration::from_secs(30)).await);

    // Meanwhile the grant is withdrawn and revoked: its second login does not exist yet.
    let stored = deps.store.get_grant(g.id).await.unwrap().unwrap();
    let (_, revocation) = ticketbound_testkit::issuing::withdraw_and_revoke(
        &deps.store,
        stored,
        Some(&deps.enforcer),
    )
    .await;
    assert_eq!(
        revocation.unwrap().roles_dropped,
        [principal_name(&g)],
        "only the first login existed"
    );

    held.release();
    let answer = set.await.unwrap();
    assert!(
        answer.is_err(),
        "setSecret does not report success: {answer:?}"
    );
    let logins = logins_of(&stack, &g).await;
    assert_eq!(logins, 0, "the login setSecret made was revoked at once");
    let trail = deps.store.audit_trail(g.id).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.action == AuditAction::Revoked && e.detail(Detail::LateCredential).is_some()),
        "{trail:#?}"
    );
    ticketbound_domain::verify_chain(g.id, &trail, None).unwrap();
}

/// Someone who can write the secret (a misconfigured policy, an account
/// administrator) stores the pending value of a rotation before createSecret runs,
/// with a password they chose: the rotation refuses it at createSecret and at
/// setSecret, and their password never reaches the target.
#[tokio::test]
async fn a_pending_value_ticketbound_did_not_write_never_reaches_the_target() {
    let h = harness().await;
    let (g, old_password) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let token = h.begin(&arn).await;
    let (user, _) = h.stack.credential(&arn).await;
    let chosen = h.plant_pending(&g, &arn, &token).await;

    for step in [Step::CreateSecret, Step::SetSecret] {
        let refused = h.step(step, &arn, &token).await.unwrap_err();
        assert!(refused.is_refusal(), "{step:?}: {refused:?}");
        let words = ticketbound_runtime::error_chain(&refused);
        assert!(
            words.contains("pending value ticketbound did not write") && !words.contains(&chosen),
            "{step:?}: {words}"
        );
    }
    assert!(
        !h.logs_in(&alternate_principal_name(&g), &chosen).await,
        "the chosen password was never set"
    );
    assert!(
        h.logs_in(&user, &old_password).await,
        "the credential in use still works"
    );
    assert!(h.rotations_audited(&g).await.is_empty());
}

/// The function's own AWS calls, by `Service.Operation`, without the item counts and
/// the time waited.
fn own_calls(
    counts: &ticketbound_local::calls::CallCounts,
) -> std::collections::BTreeMap<String, u64> {
    counts
        .snapshot()
        .into_iter()
        .filter(|(k, _)| !k.contains(' '))
        .collect()
}

/// One rotation, its four steps in one warm instance as Secrets Manager invokes them,
/// asks AWS at most 14 times: the later steps use what createSecret learned (the
/// secret's stages, the grant, the pending value and its login) and read only what
/// someone else may have changed (the grant, before setSecret and after it, and
/// before finishSecret). The instance is warm as a deployed one is after its first
/// rotation: the target's administrator secret is in its cache (300 s, the deployed
/// default), so the measured rotation is the second one of this instance. (A later
/// rotation of the same secret costs two calls more here and not on AWS: moto gives
/// the version RotateSecret stages a value, an old one, which createSecret must then
/// compare with every version's; AWS stages it empty.)
#[tokio::test]
async fn one_warm_rotation_makes_at_most_fourteen_aws_calls() {
    let mut h = harness().await;
    h.deps.enforcer.admin_secrets = ticketbound_secrets::SecretCache::new(
        aws_sdk_secretsmanager::Client::new(&h.sdk),
        StdDuration::from_secs(300),
        StdDuration::ZERO,
    );
    let (g, _) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    // Another grant of the same target warms the instance (and its cache of the
    // target's administrator secret), as the grants a deployed instance serves do.
    let (other, _) = h.active(ALTERNATING_TARGET).await;
    let other_arn = other.credential.as_ref().unwrap().secret_arn.clone();
    let warm_up = h.begin(&other_arn).await;
    for step in Step::ALL {
        h.step(step, &other_arn, &warm_up).await.unwrap();
    }
    let token = h.begin(&arn).await;
    let before = own_calls(&h.counts);
    for step in Step::ALL {
        h.step(step, &arn, &token).await.unwrap();
    }
    let after = own_calls(&h.counts);
    let made: std::collections::BTreeMap<&str, u64> = after
        .iter()
        .map(|(k, n)| (k.as_str(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total: u64 = made.values().sum();
    println!("one warm rotation: {total} AWS calls: {made:?}");
    assert!(total <= 14, "{total} calls: {made:?}");
    assert_eq!(
        made.get("SecretsManager.DescribeSecret"),
        Some(&1),
        "{made:?}"
    );
    assert_eq!(
        made.get("SecretsManager.GetSecretValue"),
        Some(&3),
        "the current value and the pending version (createSecret), the pending value \
         testSecret logs in with; not the administrator's secret again: {made:?}"
    );
    // It rotated: the new credential is current and works.
    h.assert_settled(&arn).await;
    let (user, password) = h.stack.credential(&arn).await;
    assert!(h.logs_in(&user, &password).await);
    assert_eq!(h.rotations_audited(&g).await.len(), 1);
}

/// Someone who can write the secret replaces the pending value after createSecret
/// stored it (the warm instance no longer reads it back for setSecret): the target
/// gets ticketbound's value, not theirs; testSecret, which logs in with what Secrets
/// Manager holds, fails; the rotation does not finish, and its retry refuses the
/// foreign value.
#[tokio::test]
async fn a_pending_value_replaced_after_create_secret_is_never_made_current() {
    let h = harness().await;
    let (g, old_password) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let (user, _) = h.stack.credential(&arn).await;
    let token = h.begin(&arn).await;
    h.step(Step::CreateSecret, &arn, &token).await.unwrap();
    let chosen = h.plant_pending(&g, &arn, &token).await;

    h.step(Step::SetSecret, &arn, &token).await.unwrap();
    assert!(
        !h.logs_in(&alternate_principal_name(&g), &chosen).await,
        "the planted password never reaches the target"
    );
    let failed = h.step(Step::TestSecret, &arn, &token).await.unwrap_err();
    assert!(!failed.is_refusal(), "{failed:?}");
    // Secrets Manager starts the rotation again: the foreign value is refused.
    let refused = h.step(Step::CreateSecret, &arn, &token).await.unwrap_err();
    assert!(
        ticketbound_runtime::error_chain(&refused)
            .contains("pending value ticketbound did not write"),
        "{refused:?}"
    );
    assert!(
        h.logs_in(&user, &old_password).await,
        "the credential in use still works"
    );
    assert_ne!(
        h.labels(&arn).await.1,
        token,
        "the planted version is not current"
    );
    assert!(h.rotations_audited(&g).await.is_empty());
}

/// The grant is withdrawn and revoked between testSecret and finishSecret, in a warm
/// instance that learned the grant Active: finishSecret reads the grant again before
/// it records anything and refuses.
#[tokio::test]
async fn a_grant_revoked_before_finish_secret_is_not_recorded_as_rotated() {
    let h = harness().await;
    let (g, _) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let token = h.begin(&arn).await;
    for step in [Step::CreateSecret, Step::SetSecret, Step::TestSecret] {
        h.step(step, &arn, &token).await.unwrap();
    }
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    let (revoked, _) = ticketbound_testkit::issuing::withdraw_and_revoke(
        &h.deps.store,
        stored,
        Some(&h.deps.enforcer),
    )
    .await;
    assert_eq!(revoked.state, GrantState::Revoked);

    let refused = h.step(Step::FinishSecret, &arn, &token).await.unwrap_err();
    assert!(
        matches!(
            refused,
            RotateError::GrantNotLive {
                state: GrantState::Revoked,
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(h.rotations_audited(&g).await.is_empty());
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Revoked);
    assert_eq!(
        stored.last_rotated_at, revoked.last_rotated_at,
        "the revoked grant records no rotation"
    );
}

/// The grant is withdrawn and revoked between createSecret and setSecret, in a warm
/// instance that learned it Active: setSecret reads the grant before it gives the
/// target anything, refuses, and no second login is made.
#[tokio::test]
async fn a_grant_revoked_before_set_secret_gets_no_login_from_a_warm_instance() {
    let h = harness().await;
    let (g, _) = h.active(ALTERNATING_TARGET).await;
    let arn = g.credential.as_ref().unwrap().secret_arn.clone();
    let token = h.begin(&arn).await;
    h.step(Step::CreateSecret, &arn, &token).await.unwrap();
    let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
    ticketbound_testkit::issuing::withdraw_and_revoke(
        &h.deps.store,
        stored,
        Some(&h.deps.enforcer),
    )
    .await;

    let refused = h.step(Step::SetSecret, &arn, &token).await.unwrap_err();
    assert!(
        matches!(
            refused,
            RotateError::GrantNotLive {
                state: GrantState::Revoked,
                ..
            }
        ),
        "{refused:?}"
    );
    let logins = logins_of(&h.stack, &g).await;
    assert_eq!(logins, 0, "no login of the revoked grant exists");
}

/// How many of `g`'s two logins exist at the target.
async fn logins_of(stack: &TestStack, g: &Grant) -> i64 {
    stack
        .pg_admin()
        .await
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)",
            &[&vec![principal_name(g), alternate_principal_name(g)]],
        )
        .await
        .unwrap()
        .get(0)
}
