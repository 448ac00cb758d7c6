//! `ticketbound local up|down|status|host|invoke`: the local stack that stands in for
//! AWS and for a target system, on loopback only.
//!
//! - moto's server (pinned, installed with pip into a virtualenv under the state
//!   directory) emulates DynamoDB with Streams, Secrets Manager, EventBridge and
//!   Scheduler.
//! - PostgreSQL (the OS package; installed with apt-get if absent and we are root) runs
//!   as its own cluster on its own port, as the `postgres` user when we are root,
//!   because `initdb` refuses to run as root.
//! - The function host serves the Lambda functions as AWS would invoke them.
//!
//! `up` reuses whatever already runs, so it is safe to call before every test run;
//! `down` stops exactly what `up` recorded in `local.json`.

pub mod host;
pub mod rotation;
mod triggers;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ticketbound_local::stack::{
    Detour, FILE_NAME, ItsmCredentials, LocalPostgres, LocalProcesses, LocalStack, REGION,
    WebhookSecrets,
};
use ticketbound_local::{itsm, moto, postgres, process, targets};
use ticketbound_store::{StoreError, schema};

pub use process::LocalError;

/// The table names of the local stack itself (tests create their own).
const TABLE_PREFIX: &str = "ticketbound";

fn absolute(home: &Path) -> Result<PathBuf, LocalError> {
    std::fs::create_dir_all(home).map_err(|source| LocalError::Io {
        path: home.to_path_buf(),
        source,
    })?;
    std::fs::canonicalize(home).map_err(|source| LocalError::Io {
        path: home.to_path_buf(),
        source,
    })
}

fn description_path(home: &Path) -> PathBuf {
    home.join(FILE_NAME)
}

/// Brings the local stack up (or finds it up) and returns its description.
pub async fn up(home: &Path, detour: Detour) -> Result<LocalStack, LocalError> {
    let home = absolute(home)?;
    let previous = LocalStack::read(&description_path(&home)).ok();

    let moto = moto::ensure_running(&home, previous.as_ref()).await?;
    let pg = postgres::ensure_running(&home, previous.as_ref())?;

    let tables = ticketbound_store::Tables::with_prefix(TABLE_PREFIX);
    let mut stack = LocalStack {
        aws_endpoint: moto.endpoint,
        region: REGION.to_owned(),
        grants_table: tables.grants.clone(),
        audit_table: tables.audit.clone(),
        identities_table: format!("{TABLE_PREFIX}-identities"),
        postgres: LocalPostgres {
            host: "127.0.0.1".to_owned(),
            port: pg.port,
            socket_dir: pg.data_dir.clone(),
            admin_user: targets::ADMIN_ROLE.to_owned(),
            admin_password: pg.admin_password.clone(),
            ca_file: pg.ca_file.clone(),
            superuser: "postgres".to_owned(),
            database: "postgres".to_owned(),
        },
        intake_url: String::new(),
        webhook_secrets: WebhookSecrets {
            jira: "ticketbound/local/jira-webhook".to_owned(),
            servicenow: "ticketbound/local/servicenow-webhook".to_owned(),
            generic: "ticketbound/local/generic-webhook".to_owned(),
        },
        itsm_credentials: ItsmCredentials::default(),
        detour,
        log: previous.as_ref().map(|p| p.log.clone()).unwrap_or_default(),
        processes: LocalProcesses {
            moto_pid: moto.pid,
            moto_log: moto.log,
            postgres_data_dir: pg.data_dir,
            postgres_bin_dir: pg.bin_dir,
            postgres_os_user: pg.os_user,
            host_pid: 0,
            host_log: home.join("host.log"),
            host_binary_mtime: 0,
        },
    };
    // Written before anything else can fail, so that `down` can stop what runs.
    write_description(&home, &stack)?;

    let sdk = stack.sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    for (schema, name) in [
        (&schema::GRANTS, &tables.grants),
        (&schema::AUDIT, &tables.audit),
        (&schema::IDENTITIES, &stack.identities_table),
        (&schema::LOG, &stack.log.table.clone()),
    ] {
        schema::ensure_table(&client, schema, name)
            .await
            .map_err(|e: StoreError| LocalError::Tables(Box::new(e)))?;
    }
    seed_registry(&client, &stack.identities_table).await?;
    ensure_log_anchor(&sdk, &mut stack).await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    ensure_webhook_secrets(&secrets, &stack.webhook_secrets).await?;
    ensure_itsm_credentials(&secrets, &stack.itsm_credentials).await?;
    targets::ensure(&stack, &secrets, &aws_sdk_scheduler::Client::new(&sdk)).await?;
    moto::ensure_rotation_stub(&home, &stack, targets::ROTATION_FUNCTION_NAME)?;

    ensure_host(&home, &mut stack, previous.as_ref())?;
    write_description(&home, &stack)?;
    Ok(stack)
}

/// The signed log's key and bucket: kept when the emulator still has them, made
/// otherwise (a fresh emulator has neither); the public key written beside the
/// description, for `verify --key`.
async fn ensure_log_anchor(
    sdk: &aws_config::SdkConfig,
    stack: &mut LocalStack,
) -> Result<(), LocalError> {
    let anchor_error = |e: ticketbound_anchor::AnchorError| {
        LocalError::Seed(format!(
            "the signed log's key or bucket: {}",
            ticketbound_runtime::error_chain(&e)
        ))
    };
    let notary = ticketbound_anchor::Notary::new(sdk, stack.log.key_id.clone());
    if stack.log.key_id.is_empty() || notary.check_key().await.is_err() {
        stack.log.key_id = ticketbound_anchor::create_signing_key(
            sdk,
            "ticketbound local stack: signs the log's checkpoints",
        )
        .await
        .map_err(anchor_error)?;
    }
    ticketbound_anchor::CheckpointBucket::new(sdk, stack.log.bucket.clone())
        .ensure(1)
        .await
        .map_err(anchor_error)?;
    let key = ticketbound_anchor::Notary::new(sdk, stack.log.key_id.clone())
        .public_key(&stack.log.origin)
        .await
        .map_err(anchor_error)?;
    let file = ticketbound_local::stack::LocalLog::public_key_file(stack);
    std::fs::write(&file, key.vkey()).map_err(|source| LocalError::Io { path: file, source })?;
    Ok(())
}

/// The identities the demo and the tests through the local stack name, registered
/// as an operator would (`identities import`); an import of the same file again
/// changes nothing.
const LOCAL_IDENTITIES: &str = include_str!("identities.json");

async fn seed_registry(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), LocalError> {
    let definitions: Vec<ticketbound_domain::RegisteredIdentity> =
        serde_json::from_str(LOCAL_IDENTITIES).map_err(|e| LocalError::Seed(e.to_string()))?;
    ticketbound_store::Registry::new(client.clone(), table)
        .import(
            definitions,
            &ticketbound_domain::Actor::operator("ticketbound local up"),
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| LocalError::Seed(ticketbound_runtime::error_chain(&e)))?;
    Ok(())
}

/// Creates each webhook signing secret with a random value unless it exists.
async fn ensure_webhook_secrets(
    client: &aws_sdk_secretsmanager::Client,
    secrets: &WebhookSecrets,
) -> Result<(), LocalError> {
    for name in [&secrets.jira, &secrets.servicenow, &secrets.generic] {
        if client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .is_ok()
        {
            continue;
        }
        let random = client
            .get_random_password()
            .password_length(48)
            .exclude_punctuation(true)
            .send()
            .await
            .map_err(|e| LocalError::Secrets {
                what: "GetRandomPassword".into(),
                source: Box::new(e),
            })?;
        client
            .create_secret()
            .name(name)
            .description("webhook signing secret of the local stack's intake")
            .secret_string(random.random_password().unwrap_or_default())
            .send()
            .await
            .map_err(|e| LocalError::Secrets {
                what: format!("CreateSecret {name}"),
                source: Box::new(e),
            })?;
    }
    Ok(())
}

/// Creates the local ITSM stand-in's credentials unless they exist, each with a
/// random secret part: the write-back's Jira API token and ServiceNow OAuth client,
/// the intake's read-only Jira token, and an API token for each of the stand-in's
/// people (`itsm-people.json`).
async fn ensure_itsm_credentials(
    client: &aws_sdk_secretsmanager::Client,
    names: &ItsmCredentials,
) -> Result<(), LocalError> {
    let people: Vec<String> = itsm::jira_people()
        .iter()
        .map(|p| p.email.clone())
        .collect();
    let wanted = [
        (
            &names.jira,
            "the write-back's Jira API token",
            Credential::Jira("ticketbound@local.test"),
        ),
        (
            &names.jira_reader,
            "the intake's read-only Jira API token",
            Credential::Jira("ticketbound-reader@local.test"),
        ),
        (
            &names.servicenow,
            "the write-back's ServiceNow OAuth client",
            Credential::ServiceNow,
        ),
        (
            &names.jira_people,
            "the Jira stand-in's people's API tokens",
            Credential::People(&people),
        ),
    ];
    for (name, what, credential) in wanted {
        if client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .is_ok()
        {
            continue;
        }
        let random = || async {
            client
                .get_random_password()
                .password_length(40)
                .exclude_punctuation(true)
                .send()
                .await
                .map(|r| r.random_password().unwrap_or_default().to_owned())
                .map_err(|e| LocalError::Secrets {
                    what: "GetRandomPassword".into(),
                    source: Box::new(e),
                })
        };
        let value = match credential {
            Credential::Jira(email) => {
                serde_json::json!({ "email": email, "api_token": random().await? })
            }
            Credential::ServiceNow => {
                serde_json::json!({ "auth": "oauth", "client_id": "ticketbound", "client_secret": random().await? })
            }
            Credential::People(people) => {
                let mut tokens = serde_json::Map::new();
                for email in people {
                    tokens.insert(email.clone(), random().await?.into());
                }
                serde_json::Value::Object(tokens)
            }
        };
        client
            .create_secret()
            .name(name)
            .description(format!("{what}, for the local ITSM stand-in"))
            .secret_string(value.to_string())
            .send()
            .await
            .map_err(|e| LocalError::Secrets {
                what: format!("CreateSecret {name}"),
                source: Box::new(e),
            })?;
    }
    Ok(())
}

enum Credential<'a> {
    Jira(&'static str),
    ServiceNow,
    People(&'a [String]),
}

fn binary_mtime(path: &Path) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn host_alive(stack: &LocalStack) -> bool {
    let port = stack
        .intake_url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok());
    process::process_cmdline(stack.processes.host_pid).is_some_and(|c| c.contains("local host"))
        && port.is_some_and(process::port_answers)
}

/// Starts the function host unless the one `previous` describes still runs the
/// current binary.
fn ensure_host(
    home: &Path,
    stack: &mut LocalStack,
    previous: Option<&LocalStack>,
) -> Result<(), LocalError> {
    let exe = std::env::current_exe().map_err(|source| LocalError::Spawn {
        what: "the ticketbound binary".into(),
        source,
    })?;
    let mtime = binary_mtime(&exe);
    if let Some(prev) = previous.filter(|p| host_alive(p)) {
        if prev.processes.host_binary_mtime == mtime
            && prev.aws_endpoint == stack.aws_endpoint
            && prev.detour == stack.detour
        {
            stack.intake_url = prev.intake_url.clone();
            stack.processes.host_pid = prev.processes.host_pid;
            stack.processes.host_binary_mtime = mtime;
            return Ok(());
        }
        stop_host(&prev.processes);
    }
    let port = process::free_port()?;
    stack.intake_url = format!("http://127.0.0.1:{port}");
    // The host reads the description at start.
    write_description(home, stack)?;
    let log = &stack.processes.host_log;
    // Appended to: what a host said before it died is what a post-mortem needs.
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| LocalError::Io {
            path: log.clone(),
            source,
        })?;
    let err = out.try_clone().map_err(|source| LocalError::Io {
        path: log.clone(),
        source,
    })?;
    let child = Command::new(&exe)
        .arg("--home")
        .arg(home)
        .args(["local", "host", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|source| LocalError::Spawn {
            what: "the function host".into(),
            source,
        })?;
    stack.processes.host_pid = child.id();
    stack.processes.host_binary_mtime = mtime;
    process::wait_for("the function host", 30, log.clone(), || {
        process::port_answers(port)
    })
}

fn stop_host(p: &LocalProcesses) {
    process::stop_group(p.host_pid, "local host", &p.host_log);
}

fn write_description(home: &Path, stack: &LocalStack) -> Result<(), LocalError> {
    let path = description_path(home);
    let text = serde_json::to_string_pretty(stack).map_err(LocalError::Json)?;
    std::fs::write(&path, text + "\n").map_err(|source| LocalError::Io { path, source })
}

pub fn print(stack: &LocalStack, home: &Path) {
    println!("local stack is up");
    println!(
        "  AWS endpoint      {}  (region {})",
        stack.aws_endpoint, stack.region
    );
    println!(
        "  DynamoDB tables   {}, {}",
        stack.grants_table, stack.audit_table
    );
    println!(
        "  PostgreSQL        {}:{} (credentials log in here; the administrator over TLS, CA {})",
        stack.postgres.host,
        stack.postgres.port,
        stack.postgres.ca_file.display()
    );
    println!(
        "  intake            {}/jira, /servicenow, /generic (a Function URL, served locally)",
        stack.intake_url
    );
    println!(
        "  webhook secrets   {}, {}, {} (Secrets Manager ids)",
        stack.webhook_secrets.jira, stack.webhook_secrets.servicenow, stack.webhook_secrets.generic
    );
    println!(
        "  ITSM stand-in     {} (Jira REST v3), {} (ServiceNow Table API)",
        stack.jira_url(),
        stack.servicenow_url()
    );
    println!("  described in      {}", description_path(home).display());
}

/// Stops what `up` started and forgets it.
pub fn down(home: &Path) -> Result<(), crate::CliError> {
    let path = description_path(home);
    let Ok(stack) = LocalStack::read(&path) else {
        println!(
            "local stack is not up (no {}); nothing to stop",
            path.display()
        );
        return Ok(());
    };
    stop_host(&stack.processes);
    moto::stop(&stack.processes);
    postgres::stop(&stack.processes)?;
    std::fs::remove_file(&path).map_err(|source| LocalError::Io { path, source })?;
    println!("local stack is down");
    Ok(())
}

pub fn status(home: &Path) -> Result<(), crate::CliError> {
    let path = description_path(home);
    let Ok(stack) = LocalStack::read(&path) else {
        println!("local stack is not up");
        return Ok(());
    };
    let state = |alive: bool| if alive { "running" } else { "NOT running" };
    println!(
        "moto        {} (pid {}, {})",
        state(moto::is_alive(&stack)),
        stack.processes.moto_pid,
        stack.aws_endpoint
    );
    println!(
        "postgresql  {} (port {}, data {})",
        state(postgres::is_running(&stack.processes)),
        stack.postgres.port,
        stack.processes.postgres_data_dir.display()
    );
    println!(
        "host        {} (pid {}, intake {})",
        state(host_alive(&stack)),
        stack.processes.host_pid,
        stack.intake_url
    );
    Ok(())
}

/// Runs a function's handler once with a raw Lambda event and prints its answer.
pub async fn invoke(home: &Path, function: &str, event_file: &Path) -> Result<(), crate::CliError> {
    let stack = LocalStack::read(&description_path(home))?;
    let text = std::fs::read_to_string(event_file).map_err(|source| LocalError::Io {
        path: event_file.to_path_buf(),
        source,
    })?;
    let not_an_event =
        |e: serde_json::Error| crate::CliError::Event(format!("{}: {e}", event_file.display()));
    let response = match function {
        "itsm-intake" => {
            let event: itsm_intake::IntakeEvent =
                serde_json::from_str(&text).map_err(not_an_event)?;
            let deps = host::intake_deps(&stack).await?;
            let response = itsm_intake::handle(&deps, event)
                .await
                .map_err(crate::CliError::Intake)?;
            serde_json::to_value(response)
        }
        "grant-expire" => {
            let event: grant_expire::ExpireEvent =
                serde_json::from_str(&text).map_err(not_an_event)?;
            let sdk = stack.sdk_config().await;
            let deps = grant_expire::Deps::from_env(
                &sdk,
                ticketbound_runtime::EnvReader::from_map(triggers::expire_env(&stack)),
            )
            .map_err(crate::CliError::Config)?;
            let response = grant_expire::handle(&deps, event)
                .await
                .map_err(|e| crate::CliError::Function(Box::new(e)))?;
            serde_json::to_value(response)
        }
        "secret-rotate" => {
            let event: aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent =
                serde_json::from_str(&text).map_err(not_an_event)?;
            let deps = rotation::rotate_deps(&stack).await?;
            let response = secret_rotate::handle(&deps, event)
                .await
                .map_err(|e| crate::CliError::Function(Box::new(e)))?;
            serde_json::to_value(response)
        }
        "grant-reconcile" => {
            // Its schedule's event carries nothing it reads; it must still be JSON.
            let _: serde_json::Value = serde_json::from_str(&text).map_err(not_an_event)?;
            let sdk = stack.sdk_config().await;
            let deps = grant_reconcile::Deps::from_env(
                &sdk,
                ticketbound_runtime::EnvReader::from_map(triggers::reconcile_env(&stack)),
            )
            .map_err(crate::CliError::Config)?;
            let report = grant_reconcile::reconcile(&deps)
                .await
                .map_err(|e| crate::CliError::Function(Box::new(e)))?;
            serde_json::to_value(report)
        }
        other => {
            return Err(crate::CliError::Event(format!(
                "no function named {other:?}; the functions are: itsm-intake, grant-expire, secret-rotate, grant-reconcile"
            )));
        }
    }
    .map_err(LocalError::Json)?;
    let json = serde_json::to_string_pretty(&response).map_err(LocalError::Json)?;
    println!("{json}");
    Ok(())
}

/// The environment function `name` has on the local stack, as the host gives it.
pub fn function_env(stack: &LocalStack, name: &str) -> Option<Vec<(String, String)>> {
    let mut env = match name {
        "itsm-intake" => host::intake_env(stack),
        "grant-provision" => host::provision_env(stack),
        "grant-expire" => triggers::expire_env(stack),
        "secret-rotate" => rotation::rotate_env(stack),
        "ticket-writeback" => host::writeback_env(stack),
        "log-checkpoint" => host::checkpoint_env(stack),
        "grant-reconcile" => triggers::reconcile_env(stack),
        _ => return None,
    };
    env.push(("AWS_ENDPOINT_URL".to_owned(), stack.aws_endpoint.clone()));
    env.push(("AWS_REGION".to_owned(), stack.region.clone()));
    Some(env)
}
