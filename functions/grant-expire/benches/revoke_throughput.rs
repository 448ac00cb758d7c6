//! Expiry throughput on the local stack: 1,000 Active grants with real PostgreSQL
//! logins and secrets pass their not-after time, DynamoDB TTL removes their expiry
//! triggers, and the REMOVE records reach `grant-expire` in stream batches of 100, as
//! Lambda's event source mapping would deliver them. Prints grants revoked per
//! second. Needs the local stack (`cargo run -p ticketbound -- local up`).
//!
//! `TB_BENCH_GRANTS` sets the number of grants (default 1000), `TB_BENCH_ROUND` how
//! many share one emulator (default 50). moto copies a whole table on every
//! transaction and never gives memory back, so one table of 1,000 grants measures
//! moto's copying (1.4 grants/s at 100, and worse after), and one emulator for the
//! whole run reached all 24 GB of this machine at 650 grants. Each round therefore
//! gets a moto server of its own (`ticketbound_local::emulator`), started before its clock
//! starts and stopped after; PostgreSQL is the local stack's throughout. The
//! revocation time is summed over the rounds; setting grants up is not measured.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot set up must stop

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Duration;
use futures::StreamExt;
use grant_expire::{ExpireEvent, handle, stream_response};
use ticketbound_domain::GrantState;
use ticketbound_local::emulator::{PrivateEmulator, cpu_seconds};
use ticketbound_testkit::streams::{StreamPoller, TtlMarks};

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: nothing to
    // measure then (as criterion does).
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "revoke_throughput: run it with `cargo bench -p grant-expire --bench revoke_throughput`"
        );
        return;
    }
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = var("TB_BENCH_GRANTS", 1000);
    let round = var("TB_BENCH_ROUND", 50).clamp(1, n.max(1));
    let (mut revoked, mut failed, mut batches, mut still_live) = (0, 0, 0, 0);
    let (mut setup, mut seconds, mut moto_cpu, mut own_cpu) = (0.0, 0.0, 0.0, 0.0);
    let mut concurrency = 0;
    let mut done = 0;
    while done < n {
        let size = round.min(n - done);
        let r = revoke_round(size).await;
        done += size;
        revoked += r.revoked;
        failed += r.failed;
        batches += r.batches;
        still_live += r.still_live;
        setup += r.setup;
        seconds += r.seconds;
        moto_cpu += r.moto_cpu;
        own_cpu += r.own_cpu;
        concurrency = r.concurrency;
        eprintln!(
            "round: {size} grants revoked in {:.2} s ({done}/{n})",
            r.seconds
        );
    }
    println!(
        "set up {n} Active grants with PostgreSQL logins and secrets in {setup:.1} s ({} rounds of {round})",
        n.div_ceil(round)
    );
    println!(
        "revoked {revoked} grants ({failed} failed) from {batches} stream batches in {seconds:.2} s: {:.1} grants/s \
         (concurrency {concurrency}); sampled grants all Revoked: {}",
        revoked as f64 / seconds.max(f64::EPSILON),
        still_live == 0
    );
    println!(
        "during revocation moto was busy {:.0}% of the time ({moto_cpu:.1} CPU s); the function and \
         the stream poller used {:.1} ms of CPU per grant ({own_cpu:.2} CPU s)",
        100.0 * moto_cpu / seconds.max(f64::EPSILON),
        1000.0 * own_cpu / (revoked.max(1) as f64)
    );
    // Kept for `scripts/bench`, which prints the last figures beside its own.
    let figures = serde_json::json!({
        "at": chrono::Utc::now(),
        "grants": n,
        "round": round,
        "revoked": revoked,
        "failed": failed,
        "batches": batches,
        "seconds": seconds,
        "grants_per_second": revoked as f64 / seconds.max(f64::EPSILON),
        "concurrency": concurrency,
        "moto_busy_percent": 100.0 * moto_cpu / seconds.max(f64::EPSILON),
        "function_cpu_ms_per_grant": 1000.0 * own_cpu / (revoked.max(1) as f64),
        "sampled_grants_revoked": still_live == 0,
    });
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench");
    let _ = std::fs::create_dir_all(dir);
    if let Err(e) = std::fs::write(format!("{dir}/expiry.json"), figures.to_string()) {
        eprintln!("could not write {dir}/expiry.json: {e}");
    }
}

struct Round {
    revoked: usize,
    failed: usize,
    batches: usize,
    still_live: usize,
    setup: f64,
    seconds: f64,
    /// CPU seconds moto and this process used while revoking.
    moto_cpu: f64,
    own_cpu: f64,
    concurrency: usize,
}

/// `n` Active grants on fresh tables pass their time; TTL removes their triggers; the
/// REMOVE records reach grant-expire in stream batches until every grant is done.
async fn revoke_round(n: usize) -> Round {
    let shared = ticketbound_testkit::TestStack::get().await;
    let emulator = PrivateEmulator::start(&shared).await.unwrap();
    let h = common::harness_on(emulator.stack.clone().into()).await;

    let started = Instant::now();
    let grants: Vec<_> = futures::stream::iter(0..n)
        .map(|_| async {
            let (g, _) = common::active_grant(&h, Duration::minutes(30)).await;
            common::make_overdue(&h, &g).await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let setup = started.elapsed().as_secs_f64();

    // What was on the stream before the grants expired is not the measurement.
    let marks: TtlMarks = Arc::new(Mutex::new(HashSet::new()));
    let mut poller = StreamPoller::new(&h.stack.sdk, &h.deps.store.tables().grants)
        .await
        .unwrap();
    poller.mark_ttl_removals(Arc::clone(&marks));
    while let Some(batch) = poller.next_batch().await.unwrap() {
        poller.complete(batch.records.len(), &Default::default());
    }

    // DynamoDB TTL removes the expiry triggers.
    let ddb = h.stack.dynamodb();
    let table = h.deps.store.tables().grants.clone();
    futures::stream::iter(&grants)
        .for_each_concurrent(16, |g| {
            let (ddb, marks, table) = (ddb.clone(), Arc::clone(&marks), table.clone());
            async move {
                let pk = format!("GRANT#{}", g.id);
                marks.lock().unwrap().insert(format!("{pk}|EXPIRY"));
                ddb.delete_item()
                    .table_name(table)
                    .key("pk", AttributeValue::S(pk))
                    .key("sk", AttributeValue::S("EXPIRY".into()))
                    .send()
                    .await
                    .unwrap();
            }
        })
        .await;

    let started = Instant::now();
    let cpu_at_start = (emulator.cpu_seconds(), cpu_seconds(std::process::id()));
    let (mut batches, mut revoked, mut failed) = (0, 0, 0);
    while revoked + failed < n {
        let Some(batch) = poller.next_batch().await.unwrap() else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let size = batch.records.len();
        let out = handle(&h.deps, ExpireEvent::Stream(Box::new(batch)))
            .await
            .unwrap();
        revoked += out.revoked.len();
        failed += out.failed.len();
        poller.complete(size, &stream_response(&out));
        batches += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_used =
        |before: Option<f64>, after: Option<f64>| after.zip(before).map_or(0.0, |(a, b)| a - b);
    let moto_cpu = cpu_used(cpu_at_start.0, emulator.cpu_seconds());
    let own_cpu = cpu_used(cpu_at_start.1, cpu_seconds(std::process::id()));

    let mut still_live = 0;
    for g in grants.iter().take(5) {
        let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
        still_live += usize::from(stored.state != GrantState::Revoked);
    }
    // The round's emulator, and everything it held, goes with it.
    drop(emulator);
    Round {
        revoked,
        failed,
        batches,
        still_live,
        setup,
        seconds,
        moto_cpu,
        own_cpu,
        concurrency: h.deps.config.concurrency,
    }
}
