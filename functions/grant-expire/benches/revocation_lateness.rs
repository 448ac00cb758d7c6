//! Revocation lateness over a burst: `TB_BENCH_BURST` (default 20) Active grants with
//! real PostgreSQL logins, each holding an open session, all reach their not-after
//! time within one second of each other; each grant's expiry schedule fires exactly
//! at its time (as EventBridge Scheduler's one-time schedule, or the local stack's
//! stand-in for it, invokes `grant-expire`), all at once. Measured per grant: from the
//! not-after time to the moment its open session is refused (PostgreSQL's own
//! `VALID UNTIL` already refuses a fresh login at the time; the session is what only
//! revocation ends). Prints p50, p99 and max, and writes `target/bench/lateness.json`.
//! Scheduler's own delay (AWS: within a minute of the time) is not in the figure.
//! Needs the local stack (`cargo run -p ticketbound -- local up`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot set up must stop

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use grant_expire::{ExpireEvent, handle};

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "revocation_lateness: run it with `cargo test -p grant-expire --bench revocation_lateness -- --bench`"
        );
        return;
    }
    let n: usize = std::env::var("TB_BENCH_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let h = Arc::new(common::harness().await);
    // Long enough to set every grant up first; their ends spread over one second.
    let setup_allowance = Duration::seconds(5 + (n as i64) / 2);
    let base = Utc::now() + setup_allowance;
    let mut grants = Vec::new();
    for i in 0..n {
        let end = base + Duration::milliseconds((i as i64 * 1000) / n.max(1) as i64);
        let (g, pw) = common::active_grant(&h, end - Utc::now()).await;
        let login = g.credential.as_ref().unwrap().principal_name.clone();
        let session = h.stack.pg_login(&login, &pw).await.unwrap();
        grants.push((g, session));
    }
    assert!(
        Utc::now() < base,
        "setting up took longer than allowed; raise the allowance"
    );

    let tasks: Vec<_> = grants
        .into_iter()
        .map(|(g, session)| {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                let not_after = g.not_after();
                let wait = (not_after - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let event: ExpireEvent = serde_json::from_value(
                    serde_json::json!({"grant_id": g.id.to_string(), "trigger": "schedule"}),
                )
                .unwrap();
                let fire = tokio::spawn({
                    let h = Arc::clone(&h);
                    async move { handle(&h.deps, event).await }
                });
                loop {
                    if session.simple_query("SELECT 1").await.is_err() {
                        break;
                    }
                    tokio::time::sleep(StdDuration::from_millis(20)).await;
                }
                let lateness = (Utc::now() - not_after).num_milliseconds();
                let out = fire.await.unwrap().unwrap();
                (lateness, out.revoked.len())
            })
        })
        .collect();
    let mut late = Vec::new();
    let mut revoked = 0;
    for t in tasks {
        let (ms, r) = t.await.unwrap();
        late.push(ms);
        revoked += r;
    }
    late.sort_unstable();
    let at = |q: f64| late[((late.len() as f64 - 1.0) * q).round() as usize];
    let (p50, p99, max) = (at(0.5), at(0.99), *late.last().unwrap());
    println!(
        "revocation lateness over a burst of {n} grants ending within 1 s: session refused p50 {p50} ms, p99 {p99} ms, max {max} ms after the not-after time; {revoked} revoked"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("lateness.json"),
        serde_json::json!({"burst": n, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "revoked": revoked})
            .to_string(),
    )
    .unwrap();
}
