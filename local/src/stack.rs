//! The local stack's description, as `ticketbound local up` writes it to
//! `.ticketbound/local.json`: where the AWS emulator and PostgreSQL listen and what
//! was started. The CLI and the tests read it; Lambda code never does.

use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde::{Deserialize, Serialize};

/// moto's server as the local stack runs it: DynamoDB requests one at a time, and
/// transactions undone item by item instead of by copies of whole tables.
///
/// moto serves requests on threads and runs `TransactWriteItems` without isolation:
/// it snapshots each table the transaction touches, and on a failed condition puts
/// the snapshots back, wiping whatever another request wrote in between. Two
/// functions writing one grant at once (the provisioner and the write-back, say) then
/// lose an update: an audit event survives while the grant item that counts it is
/// rolled back, and the grant can never be moved on again. DynamoDB serialises
/// conflicting transactions (or cancels one with `TransactionConflict`); serialising
/// moto's DynamoDB handler gives the same guarantee for the price of a lock (moto
/// holds Python's interpreter lock through every request anyway).
///
/// The snapshot itself is a `copy.deepcopy` of each whole table, stream records
/// included, on every transaction: its cost grows with the table, and the local
/// stack's memory with it (23 GB after an hour of ordinary use, measured). Here each
/// transaction instead remembers the items it names (a copy of each, as it was) and
/// how long each table's stream was, and a failed one puts exactly those back.
/// moto's own snapshot is made a no-op: its `deepcopy` of a `Table` returns the
/// table itself, so its rollback puts back what is already there. Stream reads take
/// the same lock, so none sees a record that is then undone.
pub const MOTO_SERVER_SCRIPT: &str = r#"import copy, sys, threading
import moto.dynamodb.models as _ddb
from moto.dynamodb.models.dynamo_type import DynamoType as _DynamoType
from moto.dynamodb.models.table import Table as _Table
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
_one_at_a_time = threading.RLock()
def _serialise(handler):
    call_action = handler.call_action
    def serialised(self, *args, **kwargs):
        with _one_at_a_time:
            return call_action(self, *args, **kwargs)
    handler.call_action = serialised
# Stream reads too: a GetRecords between a failed transaction's writes and their
# undo would see records that never happened.
_serialise(DynamoHandler)
_serialise(DynamoDBStreamsHandler)

class _NoTableCopies:
    def __getattr__(self, name):
        return getattr(copy, name)
    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, _Table) else copy.deepcopy(value, memo)
_ddb.copy = _NoTableCopies()

def _key_of(table, attrs):
    try:
        hash_value = _DynamoType(attrs[table.hash_key_attr])
        range_value = _DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
        return hash_value, range_value
    except (KeyError, TypeError):
        return None

def _put_back(table, hash_value, range_value, before):
    if range_value is None:
        if before is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = before
    elif before is None:
        if hash_value in table.items:
            table.items[hash_value].pop(range_value, None)
    else:
        table.items[hash_value][range_value] = before

_transact = _ddb.DynamoDBBackend.transact_write_items
def _transact_with_undo(self, transact_items):
    undo, streams = [], []
    for entry in transact_items or []:
        op = next(iter(entry.values()), None) if isinstance(entry, dict) else None
        table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        if table is None:
            continue
        shard = table.stream_shard
        if shard is not None and all(s is not shard for s, _ in streams):
            streams.append((shard, len(shard.items)))
        key = _key_of(table, op.get("Item") or op.get("Key") or {})
        if key is None:
            continue
        try:
            before = copy.deepcopy(table.get_item(*key))
        except Exception:
            continue
        undo.append((table, key[0], key[1], before))
    try:
        return _transact(self, transact_items)
    except BaseException:
        for table, hash_value, range_value, before in reversed(undo):
            _put_back(table, hash_value, range_value, before)
        for shard, length in streams:
            del shard.items[length:]
        raise
_ddb.DynamoDBBackend.transact_write_items = _transact_with_undo

from moto.server import main
sys.exit(main())
"#;

/// The name of the launcher the local stack writes beside moto's virtualenv (it names
/// moto's server, which is how a running one is recognised).
pub const MOTO_SERVER_SCRIPT_NAME: &str = "ticketbound_moto_server.py";

/// The people of the local ITSM stand-in (`{"jira": [{accountId, emailAddress,
/// displayName, groups}]}`): who raises, approves and is refused in the demo and the
/// tests. Their API tokens are made by `local up` and kept in the local Secrets
/// Manager (`ItsmCredentials::jira_people`).
pub const ITSM_PEOPLE: &str = include_str!("itsm-people.json");

/// The file name inside the state directory.
pub const FILE_NAME: &str = "local.json";
/// The region the local stack pretends to be in.
pub const REGION: &str = "eu-west-1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalStack {
    /// The AWS endpoint (moto's server), e.g. `http://127.0.0.1:45123`.
    pub aws_endpoint: String,
    pub region: String,
    pub grants_table: String,
    pub audit_table: String,
    /// The identity registry (`local up` seeds it through the CLI's import).
    #[serde(default = "default_identities_table")]
    pub identities_table: String,
    pub postgres: LocalPostgres,
    /// The intake, served as a Lambda Function URL would serve it.
    pub intake_url: String,
    /// The ids of the webhook signing secrets the local intake checks (in the
    /// emulator's Secrets Manager; the values never leave it).
    pub webhook_secrets: WebhookSecrets,
    /// The ids of the ITSM API credentials the write-back uses against the local
    /// ITSM stand-in (served by the function host under `/itsm/`).
    #[serde(default)]
    pub itsm_credentials: ItsmCredentials,
    /// Where the function host's functions reach AWS and the ITSM stand-in when
    /// something sits in between (the fault-injection harness's proxies).
    #[serde(default, skip_serializing_if = "Detour::is_direct")]
    pub detour: Detour,
    pub processes: LocalProcesses,
    /// The signed log: its table, the KMS key that signs its checkpoints, the bucket
    /// that keeps them (Object Lock), and its name.
    #[serde(default)]
    pub log: LocalLog,
}

/// Where the local stack's signed log lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalLog {
    pub table: String,
    /// The signing key's ARN in the emulator's KMS (made by `local up`).
    pub key_id: String,
    pub bucket: String,
    pub origin: String,
}

impl Default for LocalLog {
    fn default() -> Self {
        Self {
            table: "ticketbound-log".to_owned(),
            key_id: String::new(),
            bucket: "ticketbound-local-checkpoints".to_owned(),
            origin: "ticketbound.local/log".to_owned(),
        }
    }
}

impl LocalLog {
    /// The public key's verifier key string beside the description (what an auditor pins).
    pub fn public_key_file(stack: &LocalStack) -> PathBuf {
        stack.home().join("log-public-key.vkey")
    }
}

fn default_identities_table() -> String {
    "ticketbound-identities".to_owned()
}

/// A way round to AWS and to the ITSM stand-in for the function host's functions;
/// unset, they go straight to the emulator and to the host's own stand-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detour {
    /// An HTTP endpoint that forwards to the emulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<String>,
    /// An HTTP base URL that forwards to the function host (whose `/itsm/` routes
    /// are the stand-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itsm: Option<String>,
}

impl Detour {
    pub fn is_direct(&self) -> bool {
        self.aws.is_none() && self.itsm.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItsmCredentials {
    /// The write-back's Jira account (may comment and transition).
    pub jira: String,
    pub servicenow: String,
    /// The intake's Jira account, which may only read (approvals are read back
    /// with it).
    #[serde(default = "default_jira_reader")]
    pub jira_reader: String,
    /// The API tokens of the stand-in's people (`{"<e-mail>": "<token>"}`), who
    /// raise, edit and approve tickets in the demo and the tests.
    #[serde(default = "default_jira_people")]
    pub jira_people: String,
}

fn default_jira_reader() -> String {
    "ticketbound/local/jira-reader".to_owned()
}

fn default_jira_people() -> String {
    "ticketbound/local/jira-people".to_owned()
}

impl Default for ItsmCredentials {
    fn default() -> Self {
        Self {
            jira: "ticketbound/local/jira-api".to_owned(),
            servicenow: "ticketbound/local/servicenow-api".to_owned(),
            jira_reader: default_jira_reader(),
            jira_people: default_jira_people(),
        }
    }
}

impl LocalStack {
    /// The local Jira stand-in's site URL, as the write-back reaches it.
    pub fn jira_url(&self) -> String {
        format!("{}/itsm/jira", self.itsm_base())
    }

    /// The local ServiceNow stand-in's instance URL, as the write-back reaches it.
    pub fn servicenow_url(&self) -> String {
        format!("{}/itsm/servicenow", self.itsm_base())
    }

    /// The directory the stack keeps its state in (`--home`: the description, logs,
    /// the ITSM stand-in's file, the stream checkpoints).
    pub fn home(&self) -> PathBuf {
        self.processes
            .host_log
            .parent()
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
    }

    fn itsm_base(&self) -> &str {
        self.detour.itsm.as_deref().unwrap_or(&self.intake_url)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecrets {
    pub jira: String,
    pub servicenow: String,
    pub generic: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalPostgres {
    /// Where credentials issued by ticketbound log in (password authentication).
    pub host: String,
    pub port: u16,
    /// The Unix socket directory the cluster's superuser connects through (trust
    /// authentication: it only builds fixtures).
    pub socket_dir: PathBuf,
    /// ticketbound's administrator: CREATEROLE and `pg_signal_backend`, not a
    /// superuser (as on RDS), so the tests run with the privileges production has.
    pub admin_user: String,
    /// Its password: it connects over TCP with TLS, as to a production target
    /// (local only, made for each fresh cluster).
    #[serde(default)]
    pub admin_password: String,
    /// The PEM CA the server's certificate chains to (`verify-full`).
    #[serde(default)]
    pub ca_file: PathBuf,
    /// The cluster's superuser: sets up the fixtures (schemas, scope roles) as a DBA
    /// would; ticketbound never uses it.
    #[serde(default = "default_superuser")]
    pub superuser: String,
    pub database: String,
}

fn default_superuser() -> String {
    "postgres".to_owned()
}

impl LocalPostgres {
    /// A libpq/tokio-postgres connection string for ticketbound's administrator:
    /// over TCP, with its password (the transport, TLS, is the target's setting).
    pub fn admin_dsn(&self) -> String {
        format!(
            "host={} port={} user={} password={} dbname={} sslmode=require",
            self.host, self.port, self.admin_user, self.admin_password, self.database
        )
    }

    /// The same for the cluster's superuser (fixtures and inspection only).
    pub fn superuser_dsn(&self) -> String {
        self.dsn(&self.superuser)
    }

    fn dsn(&self, user: &str) -> String {
        format!(
            "host={} port={} user={user} dbname={}",
            self.socket_dir.display(),
            self.port,
            self.database
        )
    }
}

/// What `local up` started, so that `local down` stops exactly that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalProcesses {
    pub moto_pid: u32,
    pub moto_log: PathBuf,
    pub postgres_data_dir: PathBuf,
    pub postgres_bin_dir: PathBuf,
    /// The OS user PostgreSQL runs as (`postgres` when started by root).
    pub postgres_os_user: Option<String>,
    /// The function host (`ticketbound local host`).
    pub host_pid: u32,
    pub host_log: PathBuf,
    /// The modification time (unix seconds) of the binary the host runs: a rebuilt
    /// binary restarts the host on the next `up`.
    pub host_binary_mtime: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalStackError {
    #[error(
        "no local stack description was found (looked for .ticketbound/{FILE_NAME} from {from} upwards); \
         run `cargo run -p ticketbound -- local up` first (the README's test command does it)"
    )]
    NotStarted { from: PathBuf },
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a local stack description")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl LocalStack {
    /// Finds the description: `$TICKETBOUND_LOCAL_FILE`, else `.ticketbound/local.json`
    /// in `start` or the nearest directory above it that has one.
    pub fn discover(start: &Path) -> Result<Self, LocalStackError> {
        let path = match std::env::var_os(ticketbound_runtime::vars::LOCAL_FILE) {
            Some(p) => PathBuf::from(p),
            None => start
                .ancestors()
                .map(|dir| dir.join(".ticketbound").join(FILE_NAME))
                .find(|p| p.is_file())
                .ok_or_else(|| LocalStackError::NotStarted {
                    from: start.to_path_buf(),
                })?,
        };
        Self::read(&path)
    }

    pub fn read(path: &Path) -> Result<Self, LocalStackError> {
        let text = std::fs::read_to_string(path).map_err(|source| LocalStackError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| LocalStackError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The SDK configuration the function host gives a function: every call counted
    /// into `counts` (the host gives each function its own), and through the detour
    /// when there is one. What the host does in AWS's place (stream polling, firing
    /// schedules, TTL) uses [`LocalStack::sdk_config`] and goes straight: those are
    /// AWS's own machinery, not calls a function makes.
    pub async fn function_sdk_config(&self, counts: &crate::calls::CallCounts) -> SdkConfig {
        let config = match &self.detour.aws {
            Some(via) => self.sdk_config_at(via).await,
            None => self.sdk_config().await,
        };
        match ticketbound_runtime::aws::amazon_trust_https_client() {
            Ok(client) => config
                .into_builder()
                .http_client(counts.wrap(client))
                .build(),
            // The compiled-in roots always make a client; if they ever did not, the calls
            // would go uncounted rather than not at all, and the log says so.
            Err(e) => {
                tracing::warn!(error = %e, "AWS calls of this function are not counted");
                config
            }
        }
    }

    /// An SDK configuration aimed at the emulator, with its dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_at(&self.aws_endpoint).await
    }

    async fn sdk_config_at(&self, endpoint: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(self.region.clone()))
            .credentials_provider(aws_credential_types::Credentials::new(
                "local",
                "local",
                None,
                None,
                "ticketbound-local",
            ))
            .load()
            .await
    }
}
