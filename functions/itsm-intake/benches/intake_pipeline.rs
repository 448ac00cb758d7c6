//! The CPU cost of accepting one Jira approval, without IO: verify the signature, parse
//! the webhook, validate the request, evaluate the Cedar policies. Target: < 100 µs.

#![allow(clippy::expect_used)] // a benchmark that cannot set up must stop

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use itsm_intake::prepare;
use ticketbound_domain::Verification;
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
    let no_discounts = std::collections::BTreeMap::new();
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
        b.iter(|| {
            prepare(
                black_box(&draft),
                &targets,
                registration,
                &policy,
                now,
                Verification::SenderOnly,
                &no_discounts,
            )
        })
    });
    group.bench_function("verify_parse_policy", |b| {
        b.iter(|| {
            auth::verify_hub_signature(secret, black_box(&body), Some(&signature))
                .expect("valid signature");
            let Ok(Inbound::Approval(draft)) = jira::interpret(&body, &mapping) else {
                panic!("the fixture is an approval");
            };
            let prepared = prepare(
                &draft,
                &targets,
                registration,
                &policy,
                now,
                Verification::SenderOnly,
                &no_discounts,
            )
            .expect("the fixture prepares");
            assert!(prepared.decision.allowed);
            prepared
        })
    });
    // The read-back's own CPU (its HTTP round trips are the benchmark command's):
    // Jira's three answers parsed and compared with the webhook.
    let api = |name: &str| -> Vec<u8> {
        let path = format!(
            "{}/../../tests/fixtures/jira/api/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).expect("the read-back fixtures are readable")
    };
    let (issue, changelog, approvals) = (api("issue"), api("changelog"), api("approvals"));
    let Ok(Inbound::Approval(event)) = jira::interpret(&api("webhook"), &mapping) else {
        panic!("the read-back webhook is an approval");
    };
    // From the three answers' bodies, as they come off the wire.
    group.bench_function("readback_parse_and_compare", |b| {
        b.iter(|| {
            let parse = |bytes: &[u8]| -> serde_json::Value {
                serde_json::from_slice(black_box(bytes)).expect("JSON")
            };
            let issue = parse(&issue);
            let histories = parse(&changelog)["values"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let approvals = parse(&approvals)["values"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ticket = jira::ticket_from_api(&issue, &histories, &approvals, &mapping)
                .expect("the read-back parses");
            ticketbound_itsm::readback::verify(&event, &ticket).expect("it agrees")
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
