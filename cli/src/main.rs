//! `ticketbound`, the operator CLI: starts and stops the local stack, runs the demo of
//! the lifecycle on it, and (as the lifecycle grows) shows grants and evidence.
//!
//! It talks to AWS (or the local emulator) through the same shared adapters as the
//! Lambda functions; it holds no logic of its own about grants.

mod bundle;
mod context;
mod demo;
mod error;
mod evidence;
mod grants;
mod identities;
mod inventory;
mod local;
mod report;

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
        env = ticketbound_runtime::vars::HOME,
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
    /// What the grants table records.
    Grants {
        #[command(subcommand)]
        action: GrantsAction,
    },
    /// The verified timeline of one ticket's grants, their live state checked now, the
    /// notes the ticket received, and the controls it evidences. Exits non-zero when an
    /// audit chain breaks, the signed log does not verify (with `--key`) or the live
    /// state contradicts the record.
    Evidence {
        /// The ticket: `jira#OPS-123`, `servicenow#CHG0031337`, or a bare key.
        ticket: String,
        /// `html`: one self-contained page with a timeline picture per grant.
        #[arg(long, value_enum, default_value = "md")]
        format: evidence::Format,
        /// Also verify the ticket's signed log, as `verify` does, against this pinned
        /// verifier key (or a file holding it) and the bucket's newest checkpoint.
        #[arg(long)]
        key: Option<String>,
        /// Instead, write the ticket's evidence bundle into this directory (grants,
        /// every audit event, the signed log, the newest checkpoints), for `verify`.
        #[arg(long)]
        bundle: Option<std::path::PathBuf>,
    },
    /// Verifies an evidence bundle offline (no AWS access): the checkpoints' signatures
    /// against the pinned key, the log against them, each chain, each event in the
    /// log, nothing of the ticket missing. Exits non-zero naming the first failure.
    Verify {
        /// The bundle's directory (`evidence --bundle`).
        dir: std::path::PathBuf,
        /// The checkpointer's verifier key (`<name>+<id>+<key>`), or a file holding
        /// it, as you pinned it (not the copy inside the bundle).
        #[arg(long)]
        key: String,
        /// The ticket you are auditing (`jira#OPS-123`).
        #[arg(long)]
        ticket: String,
        /// The newest checkpoint, fetched yourself from the bucket (`checkpoint`, or
        /// S3): the bundle must reach it. Required: without it, a bundle cut back to
        /// an older checkpoint would verify.
        #[arg(long)]
        latest: std::path::PathBuf,
        /// The ticket's notes as you read them from the ITSM yourself (a JSON array of
        /// their texts): checked instead of the bundle's copy, which whoever built the
        /// bundle chose.
        #[arg(long)]
        notes: Option<std::path::PathBuf>,
    },
    /// Prints the newest signed checkpoint of the log, as the bucket keeps it.
    Checkpoint,
    /// The identity registry: which non-human identities may be granted, who owns
    /// each, which workloads may read its credential, and where it may be granted.
    /// Tickets name an identity; all of that comes from here.
    Identities {
        #[command(subcommand)]
        action: IdentitiesAction,
    },
    /// Every registered identity with its owner, live grants (ticket, target, scope,
    /// expiry, last rotation) and last review; and what the targets and Secrets
    /// Manager hold that ticketbound does not manage (logins made by hand, secrets that
    /// look like credentials by their metadata), which is listed and never touched.
    Inventory {
        /// Only the identities this owner answers for.
        #[arg(long)]
        owner: Option<String>,
        /// Only this target (system id): identities registered for it, its grants, its
        /// unmanaged logins.
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Runs the reconciler once (recorded vs live state) and prints its findings.
    Reconcile {
        #[arg(long)]
        json: bool,
    },
    /// Checks every configured target: the administrator's privileges against what
    /// ticketbound needs, and each allowed scope role's membership closure. Exits
    /// non-zero when anything would make revocation fail or give a grantee too much.
    Targets {
        #[arg(long)]
        json: bool,
    },
    /// Rotates a grant's credential now, on the local stack: Secrets Manager's part
    /// (staging the version, invoking the four steps, retrying) is emulated there.
    Rotate {
        /// The grant's id (a ULID).
        grant_id: ticketbound_domain::GrantId,
    },
}

#[derive(Debug, Subcommand)]
enum GrantsAction {
    /// Grants, newest first.
    List {
        #[arg(long)]
        state: Option<ticketbound_domain::GrantState>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One grant with its audit trail, the chain verified.
    Show {
        grant_id: ticketbound_domain::GrantId,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum IdentitiesAction {
    /// Registers a new identity (a name already registered is refused).
    Add {
        #[command(flatten)]
        args: identities::AddArgs,
        /// Who makes the change (recorded in the identity's chain); default `$USER`.
        #[arg(long)]
        by: Option<String>,
    },
    /// Changes a registered identity to exactly this definition.
    Update {
        #[command(flatten)]
        args: identities::AddArgs,
        #[arg(long)]
        by: Option<String>,
    },
    /// Registers or updates every identity of a JSON file (an array of definitions);
    /// all are checked before any is written.
    Import {
        file: PathBuf,
        #[arg(long)]
        by: Option<String>,
    },
    /// Every registered identity, retired ones included.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One identity and its chain of changes, verified.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Retires an identity: no new grant for it, ever (live grants run to their end).
    Retire {
        name: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum LocalAction {
    /// Installs what is missing, starts what is not running, creates the tables.
    Up {
        /// The functions reach AWS through this endpoint instead of the emulator's
        /// (something that forwards to it: the fault-injection harness's proxy).
        #[arg(long, value_name = "URL")]
        aws_via: Option<String>,
        /// The write-back reaches the ITSM stand-in through this base URL instead of
        /// the host's own (something that forwards to the host).
        #[arg(long, value_name = "URL")]
        itsm_via: Option<String>,
    },
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
        /// The function, as its crate is named: itsm-intake, grant-expire, secret-rotate,
        /// grant-reconcile.
        function: String,
        /// A file holding the Lambda event, exactly as AWS would deliver it.
        #[arg(long)]
        event: PathBuf,
    },
    /// Prints, as a JSON object, the environment a function's Lambda would have on the
    /// local stack (what the benchmarks start release binaries with).
    Env {
        /// The function, as its crate is named.
        function: String,
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
            action: LocalAction::Up { aws_via, itsm_via },
        } => {
            let detour = ticketbound_local::stack::Detour {
                aws: aws_via,
                itsm: itsm_via,
            };
            let stack = local::up(&cli.home, detour).await?;
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
            let file = cli.home.join(ticketbound_local::stack::FILE_NAME);
            let stack = ticketbound_local::stack::LocalStack::read(&file)?;
            local::host::run(stack, port).await
        }
        Command::Local {
            action: LocalAction::Invoke { function, event },
        } => local::invoke(&cli.home, &function, &event).await,
        Command::Local {
            action: LocalAction::Env { function },
        } => {
            let file = cli.home.join(ticketbound_local::stack::FILE_NAME);
            let stack = ticketbound_local::stack::LocalStack::read(&file)?;
            let env = local::function_env(&stack, &function).ok_or_else(|| {
                CliError::NotFound(format!("function {function:?} (see functions/)"))
            })?;
            let map: serde_json::Map<String, serde_json::Value> = env
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            println!("{}", serde_json::Value::Object(map));
            Ok(())
        }
        Command::Demo => demo::run(&cli.home).await,
        Command::Grants { action } => {
            let ctx = context::Context::load(&cli.home).await?;
            match action {
                GrantsAction::List { state, owner, json } => {
                    grants::list(&ctx, state, owner, json).await
                }
                GrantsAction::Show { grant_id, json } => grants::show(&ctx, grant_id, json).await,
            }
        }
        Command::Evidence {
            ticket,
            bundle: Some(dir),
            ..
        } => {
            let ctx = context::Context::load(&cli.home).await?;
            let written = bundle::write(&ctx, &ticket, &dir).await?;
            println!(
                "wrote {}: {} grant(s), {} leaves of the log, {} checkpoint(s), {} note(s) of the ticket",
                dir.join(bundle::BUNDLE_FILE).display(),
                written.grants.len(),
                written.log.len(),
                written.checkpoints.len(),
                written.notes.len()
            );
            Ok(())
        }
        Command::Evidence {
            ticket,
            format,
            key,
            bundle: None,
        } => {
            let key = key.as_deref().map(bundle::pinned_key).transpose()?;
            let ctx = context::Context::load(&cli.home).await?;
            evidence::run(&ctx, &ticket, format, key.as_ref()).await
        }
        Command::Verify {
            dir,
            key,
            ticket,
            latest,
            notes,
        } => {
            let key = bundle::pinned_key(&key)?;
            let v = bundle::verify(&dir, &key, &ticket, Some(&latest), notes.as_deref())?;
            println!("verified: {}", bundle::verified_summary(&v, &key));
            eprintln!(
                "the newest checkpoint is {} old: the evidence holds up to then",
                humanize_age(chrono::Utc::now() - v.checkpoint.time)
            );
            Ok(())
        }
        Command::Checkpoint => {
            let ctx = context::Context::load(&cli.home).await?;
            let (_, bucket) = ctx.log()?;
            let note = log_checkpoint::bundle::newest_checkpoint(&bucket)
                .await
                .map_err(|e| CliError::Evidence(ticketbound_runtime::error_chain(&e)))?
                .ok_or_else(|| CliError::NotFound("signed checkpoint".into()))?;
            print!("{note}");
            Ok(())
        }
        Command::Identities { action } => {
            let ctx = context::Context::load(&cli.home).await?;
            let registry = ctx.registry()?;
            match action {
                IdentitiesAction::Add { args, by } => {
                    identities::add(registry, args, by, false).await
                }
                IdentitiesAction::Update { args, by } => {
                    identities::add(registry, args, by, true).await
                }
                IdentitiesAction::Import { file, by } => {
                    identities::import(registry, &file, by).await
                }
                IdentitiesAction::List { json } => identities::list(registry, json).await,
                IdentitiesAction::Show { name, json } => {
                    identities::show(registry, &name, json).await
                }
                IdentitiesAction::Retire { name, reason, by } => {
                    identities::retire(registry, &name, &reason, by).await
                }
            }
        }
        Command::Inventory {
            owner,
            target,
            json,
        } => {
            let ctx = context::Context::load(&cli.home).await?;
            let filter = grant_reconcile::inventory::InventoryFilter { owner, target };
            inventory::run(&ctx, &filter, json).await
        }
        Command::Reconcile { json } => {
            let ctx = context::Context::load(&cli.home).await?;
            reconcile(&ctx, json).await
        }
        Command::Targets { json } => {
            let ctx = context::Context::load(&cli.home).await?;
            check_targets(&ctx, json).await
        }
        Command::Rotate { grant_id } => {
            let file = cli.home.join(ticketbound_local::stack::FILE_NAME);
            let stack = ticketbound_local::stack::LocalStack::read(&file)?;
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

async fn check_targets(ctx: &context::Context, json: bool) -> Result<(), CliError> {
    let deps = ctx.reconciler()?;
    let checks = deps
        .enforcer
        .check_targets()
        .await
        .map_err(|e| CliError::Function(Box::new(e)))?;
    let mut failed = 0;
    let mut report = serde_json::Map::new();
    for (system, check) in checks {
        match check {
            Ok(c) => {
                failed += usize::from(!c.problems.is_empty());
                if !json {
                    let verdict = if c.problems.is_empty() {
                        "ok"
                    } else {
                        "PROBLEMS"
                    };
                    println!("{system}: {verdict}");
                    for p in &c.problems {
                        println!("  problem: {p}");
                    }
                    for n in &c.notes {
                        println!("  note: {n}");
                    }
                }
                report.insert(
                    system,
                    serde_json::to_value(&c).map_err(grants::json_error)?,
                );
            }
            Err(e) => {
                failed += 1;
                let why = ticketbound_runtime::error_chain(&e);
                if !json {
                    println!("{system}: UNREACHABLE\n  problem: {why}");
                }
                report.insert(system, serde_json::json!({"problems": [why]}));
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(report))
                .map_err(grants::json_error)?
        );
    }
    if failed > 0 {
        return Err(CliError::Check(format!("{failed} target(s) with problems")));
    }
    Ok(())
}

async fn reconcile(ctx: &context::Context, json: bool) -> Result<(), CliError> {
    let deps = ctx.reconciler()?;
    if context::interactive() {
        eprintln!("reconciling: every grant, every managed secret, every login at each target…");
    }
    let report = grant_reconcile::reconcile(&deps)
        .await
        .map_err(|e| CliError::Function(Box::new(e)))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(grants::json_error)?
        );
        return Ok(());
    }
    println!(
        "checked {} grants, {} managed secrets, {} logins in {} ms: {} finding(s); {} unmanaged (ticketbound inventory)",
        report.grants_checked,
        report.secrets_seen,
        report.logins_seen,
        report.duration_ms,
        report.findings.len(),
        report.unmanaged.len()
    );
    for f in report.findings.iter().chain(&report.unmanaged) {
        println!(
            "  {:<17} {:<28} {}  {}{}",
            f.kind.as_str(),
            f.grant_id
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
            f.subject,
            f.detail,
            f.remediation
                .as_ref()
                .map(|r| format!(" [{r}]"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// A duration in the largest unit that fits, for a person.
fn humanize_age(d: chrono::Duration) -> String {
    match d.num_seconds() {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}
