//! What the integration tests share, on top of the local stack (`ticketbound-local`):
//! freshly created tables with a unique prefix per test (so tests run in parallel on
//! one emulator without seeing each other), fixtures in the local PostgreSQL, the
//! sample approvals from `tests/fixtures` moved to the present, fault injection and
//! faulty proxies, issued grants to start from.
//!
//! Test-only: a dev-dependency of every crate that uses it, never a `[dependencies]`
//! entry (not of a function, nor of the CLI or the benchmarks; what they need at run
//! time is `ticketbound-local`'s). `tests/infra-check` holds every crate to that.

pub mod faults;
pub mod issuing;
pub mod proxy;

use std::ops::Deref;

use chrono::{DateTime, Duration, Utc};
use ticketbound_domain::{AccessRequest, Grant, GrantId, RequestDraft};
use ticketbound_local::RunningStack;
use ticketbound_local::stack::LocalStackError;
use ticketbound_store::{Store, schema};

// What the tests used from here before the local stack had a crate of its own.
pub use ticketbound_local::client::{HttpAnswer, get, jira_webhook_headers, poll_grant, post};
pub use ticketbound_local::fixtures::{fixture, fixture_json, jira_approval};
pub use ticketbound_local::{emulator, jira_desk, streams};

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

/// The running local stack ([`RunningStack`], whose fields and calls it derefs to)
/// with what tests do to it besides.
#[derive(Debug, Clone)]
pub struct TestStack(pub RunningStack);

impl Deref for TestStack {
    type Target = RunningStack;

    fn deref(&self) -> &RunningStack {
        &self.0
    }
}

impl From<RunningStack> for TestStack {
    fn from(stack: RunningStack) -> Self {
        Self(stack)
    }
}

impl TestStack {
    /// [`RunningStack::discover`], for tests.
    pub async fn discover() -> Result<Self, LocalStackError> {
        RunningStack::discover().await.map(Self)
    }

    /// Like [`TestStack::discover`], for tests: a missing stack fails the test with
    /// the instruction to start it.
    pub async fn get() -> Self {
        Self(RunningStack::get().await)
    }

    /// An identity registry of its own for one test, named `t<ulid>-identities`.
    pub async fn fresh_registry(&self) -> ticketbound_store::Registry {
        let table = format!(
            "t{}-identities",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        if let Err(e) = schema::ensure_table(&self.dynamodb(), &schema::IDENTITIES, &table).await {
            panic!("could not create the registry table on the local stack: {e:?}");
        }
        ticketbound_store::Registry::new(self.dynamodb(), table)
    }

    /// [`Self::fresh_registry`] holding the identities the fixtures name
    /// (`tests/fixtures/registry/identities.json`), imported as an operator would.
    pub async fn seeded_registry(&self) -> ticketbound_store::Registry {
        let registry = self.fresh_registry().await;
        let definitions: Vec<ticketbound_domain::RegisteredIdentity> =
            match serde_json::from_slice(&fixture("registry/identities.json")) {
                Ok(d) => d,
                Err(e) => panic!("the registry fixture does not parse: {e}"),
            };
        if let Err(e) = registry
            .import(
                definitions,
                &ticketbound_domain::Actor::operator("testkit"),
                chrono::Utc::now(),
            )
            .await
        {
            panic!("could not seed the registry: {e:?}");
        }
        registry
    }

    /// The insider's edit of the registry: `principal` added to identity `name`'s
    /// entry by a plain PutItem, with no event (what `ticketbound identities` never
    /// writes).
    pub async fn add_principal_by_hand(
        &self,
        registry: &ticketbound_store::Registry,
        name: &str,
        principal: &str,
    ) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let ddb = self.dynamodb();
        let key: std::collections::HashMap<String, AttributeValue> = [
            (
                "pk".to_owned(),
                AttributeValue::S(format!("IDENTITY#{name}")),
            ),
            ("sk".to_owned(), AttributeValue::S("ENTRY".to_owned())),
        ]
        .into();
        let read = ddb
            .get_item()
            .table_name(registry.table())
            .set_key(Some(key))
            .send()
            .await;
        let Some(mut item) = read.ok().and_then(|out| out.item) else {
            panic!("identity {name} has no entry to edit");
        };
        if let Some(AttributeValue::M(identity)) = item.get_mut("identity")
            && let Some(AttributeValue::L(principals)) = identity.get_mut("workload_principals")
        {
            principals.push(AttributeValue::S(principal.to_owned()));
        }
        if let Err(e) = ddb
            .put_item()
            .table_name(registry.table())
            .set_item(Some(item))
            .send()
            .await
        {
            panic!("could not edit the entry of {name}: {e:?}");
        }
    }

    /// A store over fresh tables.
    pub async fn fresh_store(&self) -> Store {
        let tables = match self.fresh_tables().await {
            Ok(t) => t,
            Err(e) => panic!("could not create tables on the local stack: {e:?}"),
        };
        self.local_store_for(&tables)
    }
}

fn glide_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The Jira cancellation webhook from the fixtures, for issue `key`.
pub fn jira_cancellation(now: DateTime<Utc>, key: &str) -> serde_json::Value {
    let mut v = fixture_json("jira/issue-updated-cancelled.json");
    v["issue"]["key"] = key.into();
    v["timestamp"] = now.timestamp_millis().into();
    v
}

/// The ServiceNow change approval from the fixtures, for change `number`, approved
/// ten minutes before `now` and running for `lifetime`.
pub fn servicenow_approval(
    now: DateTime<Utc>,
    number: &str,
    lifetime: Duration,
) -> serde_json::Value {
    let mut v = fixture_json("servicenow/change-request-approved.json");
    v["number"] = number.into();
    if let Some(approvers) = v["approvers"].as_array_mut() {
        for (i, a) in approvers.iter_mut().enumerate() {
            a["sys_updated_on"] = glide_time(now - Duration::minutes(20 - 5 * i as i64)).into();
        }
    }
    v["u_not_after"] = glide_time(now + lifetime).into();
    v["start_date"] = glide_time(now - Duration::minutes(30)).into();
    v["end_date"] = glide_time(now + lifetime).into();
    v["sys_updated_on"] = glide_time(now).into();
    v
}

/// A unique ticket key for one test, e.g. `OPS-4821337`.
pub fn unique_key(prefix: &str) -> String {
    let n = ulid::Ulid::new().random() % 10_000_000;
    format!("{prefix}-{n}")
}

impl TestStack {
    /// Creates a secret of its own for one test and returns its id (name).
    pub async fn create_secret(&self, purpose: &str, value: &str) -> String {
        let name = format!("t/{purpose}/{}", ulid::Ulid::new());
        if let Err(e) = self
            .secretsmanager()
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await
        {
            panic!("could not create secret {name} on the local stack: {e:?}");
        }
        name
    }
}

/// Objects of one test's own in the local PostgreSQL: a schema with an `orders` and a
/// `payments` table, and three group roles (NOLOGIN): `reader` may read orders,
/// `reporting` nothing yet, `payments` may read payments.
#[derive(Debug, Clone)]
pub struct PgFixture {
    pub schema: String,
    pub reader: String,
    pub reporting: String,
    pub payments: String,
}

impl TestStack {
    /// A connection as the local cluster's superuser: for fixtures and for looking
    /// at what is there, never for what ticketbound does.
    pub async fn pg_admin(&self) -> tokio_postgres::Client {
        self.pg_superuser_in(&self.local.postgres.database).await
    }

    /// The same, in database `dbname`.
    pub async fn pg_superuser_in(&self, dbname: &str) -> tokio_postgres::Client {
        let mut config: tokio_postgres::Config = match self.local.postgres.superuser_dsn().parse() {
            Ok(c) => c,
            Err(e) => panic!("the local superuser DSN does not parse: {e}"),
        };
        config.dbname(dbname);
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                client
            }
            Err(e) => panic!("cannot reach the local PostgreSQL as its superuser: {e}"),
        }
    }

    /// Creates a [`PgFixture`] with a unique suffix.
    pub async fn pg_fixture(&self) -> PgFixture {
        let s = ulid::Ulid::new().to_string().to_lowercase()[18..].to_owned();
        let f = PgFixture {
            schema: format!("shop_{s}"),
            reader: format!("orders_reader_{s}"),
            reporting: format!("orders_reporting_{s}"),
            payments: format!("payments_reader_{s}"),
        };
        let PgFixture {
            schema,
            reader,
            reporting,
            payments,
        } = &f;
        let sql = format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.orders (id int PRIMARY KEY, total numeric);
             INSERT INTO {schema}.orders VALUES (1, 9.99);
             CREATE TABLE {schema}.payments (id int PRIMARY KEY, card text);
             CREATE ROLE {reader} NOLOGIN; CREATE ROLE {reporting} NOLOGIN; CREATE ROLE {payments} NOLOGIN;
             GRANT USAGE ON SCHEMA {schema} TO {reader}, {reporting}, {payments};
             GRANT SELECT ON {schema}.orders TO {reader};
             GRANT SELECT ON {schema}.payments TO {payments};"
        );
        if let Err(e) = self.pg_admin().await.batch_execute(&sql).await {
            panic!("could not create the PostgreSQL fixture: {e}");
        }
        f
    }

    /// How ticketbound reaches the local PostgreSQL: TLS, verified against the local
    /// stack's CA.
    pub fn pg_transport(&self) -> ticketbound_enforce::Transport {
        match ticketbound_enforce::Transport::verify_full(&self.local.postgres.ca_file) {
            Ok(t) => t,
            Err(e) => panic!("the local stack's CA does not load: {e}"),
        }
    }
}

/// The AWS operations `counts` saw (as IAM names them, `service:Operation`) that
/// `declared` does not list: what a function called that its role may not allow.
pub fn calls_outside(
    counts: &ticketbound_local::calls::CallCounts,
    declared: &[&str],
) -> Vec<String> {
    counts
        .snapshot()
        .keys()
        .filter(|k| !k.contains(' '))
        .filter_map(|k| {
            let (service, op) = k.split_once('.')?;
            let call = format!("{}:{op}", service.to_ascii_lowercase());
            (!declared.contains(&call.as_str())).then_some(call)
        })
        .collect()
}
