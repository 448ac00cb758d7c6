//! What the integration tests and the demo share to drive the local stack: finding it,
//! SDK clients aimed at it, freshly created tables with a unique prefix per test (so
//! tests run in parallel on one emulator without seeing each other), and the sample
//! approval from `tests/fixtures`, moved to the present.
//!
//! Never a dependency of a Lambda function.

use chrono::{DateTime, Duration, Utc};
use ticketbound_domain::{AccessRequest, Grant, GrantId, RequestDraft};
use ticketbound_runtime::local::{LocalStack, LocalStackError};
use ticketbound_store::{Store, StoreError, StoreSettings, Tables, schema};

/// The generic approved request every example starts from.
pub const SAMPLE_REQUEST: &str =
    include_str!("../../../tests/fixtures/generic/approved-request.json");

/// The sample request with its times moved so that it was approved minutes ago and
/// runs for `lifetime` from `now`.
pub fn sample_draft(now: DateTime<Utc>, lifetime: Duration) -> RequestDraft {
    let mut draft: RequestDraft = match serde_json::from_str(SAMPLE_REQUEST) {
        Ok(d) => d,
        Err(e) => panic!("tests/fixtures/generic/approved-request.json no longer parses: {e}"),
    };
    for (i, approval) in draft.approvals.iter_mut().enumerate() {
        approval.approved_at = Some(now - Duration::minutes(20 - 10 * i as i64));
    }
    draft.not_after = Some(now + lifetime);
    if let Some(window) = draft.change_window.as_mut() {
        window.start = Some(now - Duration::minutes(30));
        window.end = Some(now + lifetime);
    }
    draft
}

/// The sample request, validated at `now`.
pub fn sample_request(now: DateTime<Utc>, lifetime: Duration) -> AccessRequest {
    match sample_draft(now, lifetime).validate(now) {
        Ok(r) => r,
        Err(e) => panic!("the sample request no longer validates: {e}"),
    }
}

/// A new Approved grant for the sample request, with a fresh id.
pub fn sample_grant(now: DateTime<Utc>, lifetime: Duration) -> Grant {
    Grant::approved(
        GrantId::from_ulid(ulid::Ulid::new()),
        sample_request(now, lifetime),
        now,
    )
}

/// The running local stack and an SDK configuration aimed at it.
#[derive(Debug, Clone)]
pub struct TestStack {
    pub local: LocalStack,
    pub sdk: aws_config::SdkConfig,
}

impl TestStack {
    /// Finds the local stack from the current directory upwards (cargo runs tests in
    /// the crate's directory, inside the workspace).
    pub async fn discover() -> Result<Self, LocalStackError> {
        let here = std::env::current_dir().unwrap_or_else(|_| ".".into());
        let local = LocalStack::discover(&here)?;
        let sdk = local.sdk_config().await;
        Ok(Self { local, sdk })
    }

    /// Like [`TestStack::discover`], for tests: a missing stack fails the test with
    /// the instruction to start it.
    pub async fn get() -> Self {
        match Self::discover().await {
            Ok(stack) => stack,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// Tables of their own for one test, named `t<ulid>-grants` and `t<ulid>-audit`.
    pub async fn fresh_tables(&self) -> Result<Tables, StoreError> {
        let tables = Tables::with_prefix(&format!(
            "t{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        let client = self.dynamodb();
        schema::ensure_table(&client, &schema::GRANTS, &tables.grants).await?;
        schema::ensure_table(&client, &schema::AUDIT, &tables.audit).await?;
        Ok(tables)
    }

    /// A store over fresh tables.
    pub async fn fresh_store(&self) -> Store {
        let tables = match self.fresh_tables().await {
            Ok(t) => t,
            Err(e) => panic!("could not create tables on the local stack: {e:?}"),
        };
        Store::new(
            self.dynamodb(),
            StoreSettings {
                tables,
                retention: Duration::days(400),
            },
        )
    }
}
