//! What the integration tests and the demo share to drive the local stack: finding it,
//! SDK clients aimed at it, freshly created tables with a unique prefix per test (so
//! tests run in parallel on one emulator without seeing each other), and the sample
//! approval from `tests/fixtures`, moved to the present.
//!
//! Never a dependency of a Lambda function.

pub mod emulator;
pub mod faults;
pub mod issuing;
pub mod jira_desk;
pub mod proxy;
pub mod streams;

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

    /// The local stack's own registry (the one its intake reads).
    pub fn local_registry(&self) -> ticketbound_store::Registry {
        ticketbound_store::Registry::new(self.dynamodb(), self.local.identities_table.clone())
    }

    /// The store over the local stack's own tables (the ones its function host uses).
    pub fn local_store(&self) -> Store {
        Store::new(
            self.dynamodb(),
            StoreSettings {
                tables: Tables {
                    grants: self.local.grants_table.clone(),
                    audit: self.local.audit_table.clone(),
                },
                retention: Duration::days(400),
            },
        )
    }

    /// A store over fresh tables.
    pub async fn fresh_store(&self) -> Store {
        let tables = match self.fresh_tables().await {
            Ok(t) => t,
            Err(e) => panic!("could not create tables on the local stack: {e:?}"),
        };
        self.local_store_for(&tables)
    }

    /// A store over `tables`.
    pub fn local_store_for(&self, tables: &Tables) -> Store {
        Store::new(
            self.dynamodb(),
            StoreSettings {
                tables: tables.clone(),
                retention: Duration::days(400),
            },
        )
    }
}

/// Reads a file under `tests/fixtures`.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/../../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    match std::fs::read(&full) {
        Ok(b) => b,
        Err(e) => panic!("fixture {full}: {e}"),
    }
}

/// A fixture parsed as JSON.
pub fn fixture_json(path: &str) -> serde_json::Value {
    match serde_json::from_slice(&fixture(path)) {
        Ok(v) => v,
        Err(e) => panic!("fixture {path} is not JSON: {e}"),
    }
}

fn jira_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn glide_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The Jira approval webhook from the fixtures, for issue `key`, approved ten minutes
/// before `now` and running for `lifetime`.
pub fn jira_approval(now: DateTime<Utc>, key: &str, lifetime: Duration) -> serde_json::Value {
    let mut v = fixture_json("jira/issue-updated-approved.json");
    v["issue"]["key"] = key.into();
    v["timestamp"] = now.timestamp_millis().into();
    let fields = &mut v["issue"]["fields"];
    let approved = now - Duration::minutes(10);
    if let Some(approvals) = fields["customfield_10002"].as_array_mut() {
        for a in approvals {
            a["completedDate"]["iso8601"] =
                approved.format("%Y-%m-%dT%H:%M:%S+0000").to_string().into();
            a["completedDate"]["jira"] = jira_time(approved).into();
            a["completedDate"]["epochMillis"] = approved.timestamp_millis().into();
        }
    }
    fields["customfield_10209"] = jira_time(now + lifetime).into();
    fields["customfield_10213"] = jira_time(now - Duration::minutes(30)).into();
    fields["customfield_10214"] = jira_time(now + lifetime).into();
    v
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
    pub fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

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

/// An HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

impl HttpAnswer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The headers Jira's webhook sender puts on `body`: JSON, its user agent, the
/// delivery id (the same on a redelivery), and the signature with `secret`, last.
pub fn jira_webhook_headers(
    secret: &str,
    body: &[u8],
    delivery: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json; charset=UTF-8".to_owned()),
        ("User-Agent", "Atlassian Webhook HTTP Client".to_owned()),
        ("X-Atlassian-Webhook-Identifier", delivery.to_owned()),
        (
            "X-Hub-Signature",
            ticketbound_itsm::auth::hub_signature(secret.as_bytes(), body),
        ),
    ]
}

/// POSTs `body` to `url` + `path` over HTTP/1.1 on loopback, as an ITSM's webhook
/// sender would. A few lines of HTTP are all the local intake needs; no client crate.
pub async fn post(
    url: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<HttpAnswer> {
    call("POST", url, path, headers, body).await
}

/// GETs `url` + `path` (the local host's own routes).
pub async fn get(url: &str, path: &str) -> std::io::Result<HttpAnswer> {
    call("GET", url, path, &[], &[]).await
}

pub(crate) async fn call(
    method: &str,
    url: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<HttpAnswer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head}")))?;
    Ok(HttpAnswer {
        status,
        body: body.to_owned(),
    })
}

impl TestStack {
    /// The value of a secret, for a test or the demo that plays the ITSM and must sign
    /// as it would.
    pub async fn secret_value(&self, id: &str) -> String {
        match self
            .secretsmanager()
            .get_secret_value()
            .secret_id(id)
            // As a workload asks; moto answers an unlabelled read from a stale default
            // after a rotation moved AWSCURRENT.
            .version_stage("AWSCURRENT")
            .send()
            .await
        {
            Ok(out) => out.secret_string().unwrap_or_default().to_owned(),
            Err(e) => panic!("could not read secret {id}: {e:?}"),
        }
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

    /// Logs in to the local PostgreSQL over TCP with a password, as a workload would.
    pub async fn pg_login(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        self.pg_login_in(&self.local.postgres.database, user, password)
            .await
    }

    /// The same, to database `dbname`.
    pub async fn pg_login_in(
        &self,
        dbname: &str,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.local.postgres.host)
            .port(self.local.postgres.port)
            .user(user)
            .password(password)
            .dbname(dbname);
        let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }
}

/// The AWS operations `counts` saw (as IAM names them, `service:Operation`) that
/// `declared` does not list: what a function called that its role may not allow.
pub fn calls_outside(
    counts: &ticketbound_runtime::calls::CallCounts,
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

/// Reads the stored grant every 100 ms, at most `tenths` times, until `done` holds.
/// Returns the last grant read, which fails `done` if time ran out.
pub async fn poll_grant(
    store: &Store,
    id: GrantId,
    tenths: u32,
    done: impl Fn(&Grant) -> bool,
) -> Result<Option<Grant>, StoreError> {
    let mut last = None;
    for _ in 0..tenths.max(1) {
        last = store.get_grant(id).await?;
        if last.as_ref().is_some_and(&done) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(last)
}
