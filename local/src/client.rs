//! The running local stack as a client sees it: its description, an SDK configuration
//! aimed at its emulator, and the few calls the demo, the benchmarks and the tests make
//! through it (its store and registry, a secret's value, a login to its PostgreSQL, a
//! webhook delivered over HTTP as an ITSM's sender would, a grant polled until it
//! settles). Test-only helpers (fresh tables, fixtures in PostgreSQL, fault injection)
//! are `ticketbound-testkit`'s.

use chrono::Duration;
use ticketbound_domain::{Grant, GrantId};
use ticketbound_store::{Store, StoreError, StoreSettings, Tables, schema};

use crate::stack::{LocalStack, LocalStackError};

/// The running local stack and an SDK configuration aimed at it.
#[derive(Debug, Clone)]
pub struct RunningStack {
    pub local: LocalStack,
    pub sdk: aws_config::SdkConfig,
}

impl RunningStack {
    /// Finds the local stack from the current directory upwards (cargo runs tests in
    /// the crate's directory, inside the workspace).
    pub async fn discover() -> Result<Self, LocalStackError> {
        let here = std::env::current_dir().unwrap_or_else(|_| ".".into());
        let local = LocalStack::discover(&here)?;
        let sdk = local.sdk_config().await;
        Ok(Self { local, sdk })
    }

    /// Like [`RunningStack::discover`], for tests and benchmarks: a missing stack
    /// fails with the instruction to start it.
    pub async fn get() -> Self {
        match Self::discover().await {
            Ok(stack) => stack,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn secretsmanager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    /// Tables of their own for one test or benchmark round, named `t<ulid>-grants` and `t<ulid>-audit`.
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

    /// The local stack's own registry (the one its intake reads).
    pub fn local_registry(&self) -> ticketbound_store::Registry {
        ticketbound_store::Registry::new(self.dynamodb(), self.local.identities_table.clone())
    }

    /// The store over the local stack's own tables (the ones its function host uses).
    pub fn local_store(&self) -> Store {
        self.local_store_for(&Tables {
            grants: self.local.grants_table.clone(),
            audit: self.local.audit_table.clone(),
        })
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

/// One HTTP/1.1 request on loopback, `Connection: close`.
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
