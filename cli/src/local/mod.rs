//! `ticketbound local up|down|status`: the local stack that stands in for AWS and for a
//! target system, on loopback only.
//!
//! - moto's server (pinned, installed with pip into a virtualenv under the state
//!   directory) emulates DynamoDB with Streams, Secrets Manager, EventBridge and
//!   Scheduler.
//! - PostgreSQL (the OS package; installed with apt-get if absent and we are root) runs
//!   as its own cluster on its own port, as the `postgres` user when we are root,
//!   because `initdb` refuses to run as root.
//!
//! `up` reuses whatever already runs, so it is safe to call before every test run;
//! `down` stops exactly what `up` recorded in `local.json`.

mod moto;
mod postgres;
mod process;

use std::path::{Path, PathBuf};

use ticketbound_runtime::local::{FILE_NAME, LocalPostgres, LocalProcesses, LocalStack, REGION};
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
pub async fn up(home: &Path) -> Result<LocalStack, LocalError> {
    let home = absolute(home)?;
    let previous = LocalStack::read(&description_path(&home)).ok();

    let moto = moto::ensure_running(&home, previous.as_ref()).await?;
    let pg = postgres::ensure_running(&home, previous.as_ref())?;

    let tables = ticketbound_store::Tables::with_prefix(TABLE_PREFIX);
    let stack = LocalStack {
        aws_endpoint: moto.endpoint,
        region: REGION.to_owned(),
        grants_table: tables.grants.clone(),
        audit_table: tables.audit.clone(),
        postgres: LocalPostgres {
            host: "127.0.0.1".to_owned(),
            port: pg.port,
            socket_dir: pg.data_dir.clone(),
            admin_user: "postgres".to_owned(),
            database: "postgres".to_owned(),
        },
        processes: LocalProcesses {
            moto_pid: moto.pid,
            moto_log: moto.log,
            postgres_data_dir: pg.data_dir,
            postgres_bin_dir: pg.bin_dir,
            postgres_os_user: pg.os_user,
        },
    };
    // Written before the tables are made, so that `down` can stop what runs even if
    // the emulator misbehaves now.
    write_description(&home, &stack)?;

    let client = aws_sdk_dynamodb::Client::new(&stack.sdk_config().await);
    for (schema, name) in [
        (&schema::GRANTS, &tables.grants),
        (&schema::AUDIT, &tables.audit),
    ] {
        schema::ensure_table(&client, schema, name)
            .await
            .map_err(|e: StoreError| LocalError::Tables(Box::new(e)))?;
    }
    Ok(stack)
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
        "  PostgreSQL        {}:{} (credentials log in here), admin via socket {}",
        stack.postgres.host,
        stack.postgres.port,
        stack.postgres.socket_dir.display()
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
    let moto_alive = moto::is_alive(&stack);
    let pg_alive = postgres::is_running(&stack.processes);
    println!(
        "moto        {} (pid {}, {})",
        if moto_alive { "running" } else { "NOT running" },
        stack.processes.moto_pid,
        stack.aws_endpoint
    );
    println!(
        "postgresql  {} (port {}, data {})",
        if pg_alive { "running" } else { "NOT running" },
        stack.postgres.port,
        stack.processes.postgres_data_dir.display()
    );
    Ok(())
}
