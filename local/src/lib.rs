//! The local stack: everything that stands in for AWS and for the ITSM on loopback,
//! so that nothing needs an AWS account to run or to test.
//!
//! - [`stack`]: the stack's description (`.ticketbound/local.json`, [`LocalStack`]),
//!   the moto launcher script, SDK configurations aimed at the emulator;
//! - [`moto`], [`postgres`], [`process`], [`targets`]: starting, finding and stopping
//!   moto's server and the local PostgreSQL cluster, and the target fixtures and AWS
//!   resources a local deployment expects;
//! - [`streams`], [`host`], [`triggers`]: what Lambda and its event sources do around
//!   a function (stream pollers with filter criteria, Function URL events, TTL
//!   deletions with TTL's identity, due Scheduler one-time schedules);
//! - [`rotation`]: Secrets Manager's four-step rotation protocol, driving whatever
//!   rotation function the caller passes;
//! - [`itsm`], [`jira_site`], [`jira_desk`]: the ITSM stand-in (a Jira site, a
//!   ServiceNow Table API) and the client its people use;
//! - [`calls`], [`meter`]: the AWS call meter, plugged into a function's SDK through
//!   its HTTP client;
//! - [`runtime_api`]: a Lambda Runtime API, for a function's release `bootstrap`;
//! - [`emulator`]: a moto server of one's own, for benchmarks;
//! - [`client`], [`fixtures`]: the running stack as the demo, the benchmarks and the
//!   tests reach it.
//!
//! Never a dependency of a Lambda: no crate under `functions/` nor any crate a
//! function links has it in `[dependencies]` (`tests/infra-check` proves it; tests
//! may take it as a dev-dependency). So that those tests can, it depends on no
//! function either: which function runs on which trigger (the wiring) is the CLI's.

pub mod calls;
pub mod client;
pub mod emulator;
pub mod fixtures;
pub mod host;
pub mod itsm;
pub mod jira_desk;
pub mod jira_site;
pub mod meter;
pub mod moto;
pub mod postgres;
pub mod process;
pub mod rotation;
pub mod runtime_api;
pub mod stack;
pub mod streams;
pub mod targets;
pub mod triggers;

pub use client::RunningStack;
pub use stack::{LocalStack, LocalStackError};
