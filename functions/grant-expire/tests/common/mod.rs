//! What the expiry tests and the throughput benchmark share: a local stack harness
//! with an issuer that makes real credentials the way the provisioner does.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several targets

use chrono::Duration;
use grant_expire::Deps;
use ticketbound_domain::Grant;
use ticketbound_runtime::EnvReader;
use ticketbound_testkit::TestStack;
use ticketbound_testkit::issuing::{ALTERNATING_TARGET, IssuingFixture};

pub struct Harness {
    pub stack: TestStack,
    pub deps: Deps,
    /// The target, and an issuer that makes credentials the way the provisioner does.
    pub fixture: IssuingFixture,
    /// Every AWS call the function under test made.
    pub counts: ticketbound_local::calls::CallCounts,
}

pub async fn harness() -> Harness {
    harness_on(TestStack::get().await).await
}

/// A harness on `stack` (the shared local stack, or an emulator of the bench's own).
pub async fn harness_on(stack: TestStack) -> Harness {
    harness_with(stack, |_| {}, &[]).await
}

/// A harness whose expiry function sees the fixture's targets as `edit` leaves them,
/// and `extra` variables besides.
pub async fn harness_with(
    stack: TestStack,
    edit: impl FnOnce(&mut serde_json::Value),
    extra: &[(&str, String)],
) -> Harness {
    let tables = stack.fresh_tables().await.unwrap();
    let fixture = stack.issuing_fixture(None).await;
    let mut targets = fixture.targets.clone();
    edit(&mut targets);
    let mut env: Vec<(String, String)> = [
        ("TICKETBOUND_GRANTS_TABLE", tables.grants.clone()),
        ("TICKETBOUND_AUDIT_TABLE", tables.audit.clone()),
        ("TICKETBOUND_TARGETS", targets.to_string()),
        ("TICKETBOUND_SCHEDULE_GROUP", fixture.schedule_group.clone()),
        // The admin secret is re-read on every call, so a test can break and mend it.
        ("TICKETBOUND_SECRET_CACHE_SECS", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    // The function's own calls are counted, so a test can check them against what
    // its role allows (config::AWS_OPERATIONS).
    let counts = ticketbound_local::calls::CallCounts::new();
    let sdk = stack.local.function_sdk_config(&counts).await;
    let deps = Deps::from_env(&sdk, EnvReader::from_map(env)).unwrap();
    Harness {
        stack,
        deps,
        fixture,
        counts,
    }
}

/// An Active grant with a working credential, living `lifetime` from now. Returns the
/// grant and the credential's password.
pub async fn active_grant(h: &Harness, lifetime: Duration) -> (Grant, String) {
    h.fixture
        .active_grant(&h.stack, &h.deps.store, ALTERNATING_TARGET, lifetime)
        .await
}

/// Makes the grant overdue without waiting (see the testkit).
pub async fn make_overdue(h: &Harness, g: &Grant) -> Grant {
    ticketbound_testkit::issuing::make_overdue(&h.deps.store, g).await
}
