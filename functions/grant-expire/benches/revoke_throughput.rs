//! Expiry throughput on the local stack: 1,000 Active grants with real PostgreSQL
//! logins and secrets pass their not-after time, DynamoDB TTL removes their expiry
//! triggers, and the REMOVE records reach `grant-expire` in stream batches of 100, as
//! Lambda's event source mapping would deliver them. Prints grants revoked per
//! second. Needs the local stack (`cargo run -p ticketbound -- local up`).
//!
//! `TB_BENCH_GRANTS` sets the number of grants (default 1000), `TB_BENCH_ROUND` how
//! many share one pair of tables (default 50). moto copies a whole table on every
//! transaction, so one table of 1,000 grants measures moto's copying (1.4 grants/s at
//! 100, and worse after); rounds on fresh tables keep each table the size of one
//! stream batch or so and measure the function. The revocation time is summed over
//! the rounds; setting grants up is not measured.

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
    let (mut setup, mut seconds) = (0.0, 0.0);
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
}

struct Round {
    revoked: usize,
    failed: usize,
    batches: usize,
    still_live: usize,
    setup: f64,
    seconds: f64,
    concurrency: usize,
}

/// `n` Active grants on fresh tables pass their time; TTL removes their triggers; the
/// REMOVE records reach grant-expire in stream batches until every grant is done.
async fn revoke_round(n: usize) -> Round {
    let h = common::harness().await;

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

    let mut still_live = 0;
    for g in grants.iter().take(5) {
        let stored = h.deps.store.get_grant(g.id).await.unwrap().unwrap();
        still_live += usize::from(stored.state != GrantState::Revoked);
    }
    // moto copies every table it holds on each transaction: a round leaves none behind.
    for table in [&h.deps.store.tables().grants, &h.deps.store.tables().audit] {
        let _ = ddb.delete_table().table_name(table).send().await;
    }
    Round {
        revoked,
        failed,
        batches,
        still_live,
        setup,
        seconds,
        concurrency: h.deps.config.concurrency,
    }
}
