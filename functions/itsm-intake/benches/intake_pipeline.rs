//! The CPU cost of accepting one Jira approval, without IO: verify the signature, parse
//! the webhook, validate the request, evaluate the Cedar policies. Target: < 100 µs.

#![allow(clippy::expect_used)] // a benchmark that cannot set up must stop

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use itsm_intake::prepare;
use ticketbound_itsm::jira::JiraMapping;
use ticketbound_itsm::{Inbound, auth, jira};
use ticketbound_policy::PolicyEngine;

fn pipeline(c: &mut Criterion) {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/jira/issue-updated-approved.json"
    ))
    .expect("the Jira fixture is readable");
    let secret = b"bench-webhook-secret-0123456789abcdef";
    let signature = auth::hub_signature(secret, &body);
    let mapping = JiraMapping::default();
    let policy = PolicyEngine::with_defaults().expect("the default policies load");
    let now = Utc
        .with_ymd_and_hms(2026, 11, 29, 10, 0, 0)
        .single()
        .expect("a valid time");

    let targets: itsm_intake::config::TargetKinds =
        r#"{"orders-db": {"connector": "postgres", "environment": "prod"}}"#
            .parse()
            .expect("targets");
    let registered: ticketbound_domain::RegisteredIdentity = serde_json::from_str(
        r#"{"name": "orders-etl", "kind": "database_credential", "owner": "team-data-platform",
            "workload_principals": ["arn:aws:iam::123456789012:role/orders-etl"],
            "targets": ["orders-db"], "environments": ["prod"]}"#,
    )
    .expect("registry entry");
    let registration = ticketbound_domain::Registration::Active(&registered);
    let mut group = c.benchmark_group("intake");
    group.bench_function("verify", |b| {
        b.iter(|| auth::verify_hub_signature(secret, black_box(&body), Some(&signature)))
    });
    group.bench_function("parse", |b| {
        b.iter(|| jira::interpret(black_box(&body), &mapping))
    });
    let Ok(Inbound::Approval(draft)) = jira::interpret(&body, &mapping) else {
        panic!("the fixture is an approval");
    };
    group.bench_function("validate_and_policy", |b| {
        b.iter(|| prepare(black_box(&draft), &targets, registration, &policy, now))
    });
    group.bench_function("verify_parse_policy", |b| {
        b.iter(|| {
            auth::verify_hub_signature(secret, black_box(&body), Some(&signature))
                .expect("valid signature");
            let Ok(Inbound::Approval(draft)) = jira::interpret(&body, &mapping) else {
                panic!("the fixture is an approval");
            };
            let prepared = prepare(&draft, &targets, registration, &policy, now)
                .expect("the fixture prepares");
            assert!(prepared.decision.allowed);
            prepared
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
