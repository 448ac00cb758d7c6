//! What each function of the local host has cost: its AWS calls, counted at its SDK's
//! HTTP client ([`crate::calls`]), and its invocations. Only the functions'
//! own calls count: what the host does in AWS's place (stream polling by the event
//! source mapping, Scheduler firing and deleting schedules, TTL deletions, Secrets
//! Manager choosing which secret is due) uses a configuration that is not counted,
//! as none of it is billed to the functions in AWS.
//!
//! Served as JSON at `GET /local/meter` on the host; `scripts/bench` reads it before
//! and after whole grant lifecycles.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use crate::calls::CallCounts;

/// The key under which a function's invocations are counted.
pub const INVOCATIONS: &str = "Lambda.Invocations";

/// The expiry function when invoked by its sweep schedule: counted apart, as its cost
/// is per deployment and hour, not per grant.
pub const EXPIRE_SWEEP: &str = "grant-expire (sweep)";

static METER: LazyLock<Mutex<BTreeMap<String, CallCounts>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// The counts of `function` (the same counts on every call).
pub fn counts(function: &str) -> CallCounts {
    METER
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(function.to_owned())
        .or_default()
        .clone()
}

/// One invocation of `function`.
pub fn invoked(function: &str, times: u64) {
    counts(function).add(INVOCATIONS, times);
}

/// Every function's counts so far.
pub fn snapshot() -> serde_json::Value {
    let all: BTreeMap<String, BTreeMap<String, u64>> = METER
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(function, counts)| (function.clone(), counts.snapshot()))
        .collect();
    serde_json::json!({ "functions": all })
}
