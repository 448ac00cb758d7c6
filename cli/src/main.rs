//! `ticketbound`, the operator CLI: starts and stops the local stack, runs the demo of
//! the lifecycle on it, and (as the lifecycle grows) shows grants and evidence.
//!
//! It talks to AWS (or the local emulator) through the same shared adapters as the
//! Lambda functions; it holds no logic of its own about grants.

mod demo;
mod error;
mod local;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "ticketbound",
    version,
    about = "Ticket-bound, time-bound access for non-human identities"
)]
struct Cli {
    /// Where the local stack keeps its state (virtualenv, logs, local.json).
    #[arg(
        long,
        global = true,
        env = "TICKETBOUND_HOME",
        default_value = ".ticketbound"
    )]
    home: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The local stack: moto's AWS emulator and PostgreSQL on loopback.
    Local {
        #[command(subcommand)]
        action: LocalAction,
    },
    /// Runs the lifecycle on the local stack (starting it if needed) and tells what it did.
    Demo,
    /// Rotates a grant's credential now, on the local stack: Secrets Manager's part
    /// (staging the version, invoking the four steps, retrying) is emulated there.
    Rotate {
        /// The grant's id (a ULID).
        grant_id: ticketbound_domain::GrantId,
    },
}

#[derive(Debug, Subcommand)]
enum LocalAction {
    /// Installs what is missing, starts what is not running, creates the tables.
    Up,
    /// Stops exactly what `up` started.
    Down,
    /// Says what runs and where.
    Status,
    /// Serves the functions on loopback (started by `up`; not for direct use).
    #[command(hide = true)]
    Host {
        #[arg(long)]
        port: u16,
    },
    /// Runs one function's handler once with a raw Lambda event JSON and prints its answer.
    Invoke {
        /// The function, as its crate is named: itsm-intake, grant-expire, secret-rotate.
        function: String,
        /// A file holding the Lambda event, exactly as AWS would deliver it.
        #[arg(long)]
        event: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match &cli.command {
        // The host is a service: say what it serves.
        Command::Local {
            action: LocalAction::Host { .. },
        } => "info",
        _ => "warn",
    };
    if let Err(e) = ticketbound_runtime::logging::init_cli_tracing(default_filter) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ticketbound_runtime::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Local {
            action: LocalAction::Up,
        } => {
            let stack = local::up(&cli.home).await?;
            local::print(&stack, &cli.home);
            Ok(())
        }
        Command::Local {
            action: LocalAction::Down,
        } => local::down(&cli.home),
        Command::Local {
            action: LocalAction::Status,
        } => local::status(&cli.home),
        Command::Local {
            action: LocalAction::Host { port },
        } => {
            let file = cli.home.join(ticketbound_runtime::local::FILE_NAME);
            let stack = ticketbound_runtime::local::LocalStack::read(&file)?;
            local::host::run(stack, port).await
        }
        Command::Local {
            action: LocalAction::Invoke { function, event },
        } => local::invoke(&cli.home, &function, &event).await,
        Command::Demo => demo::run(&cli.home).await,
        Command::Rotate { grant_id } => {
            let file = cli.home.join(ticketbound_runtime::local::FILE_NAME);
            let stack = ticketbound_runtime::local::LocalStack::read(&file)?;
            let done = local::rotation::rotate_grant(&stack, grant_id).await?;
            println!(
                "rotated grant {grant_id}: secret {} now at version {} ({} attempt(s), {} ms)",
                done.secret_arn,
                done.token,
                done.attempts,
                done.elapsed.as_millis()
            );
            Ok(())
        }
    }
}
