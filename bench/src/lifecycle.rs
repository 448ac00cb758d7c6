//! AWS calls per grant lifecycle, and what 1,000 grants cost at AWS list prices.
//!
//! Whole lifecycles run through the local host (signed Jira approval → intake →
//! provisioning from the grants stream → one rotation → expiry on its schedule →
//! write-back of every step to the ticket), each function's calls counted at its SDK's
//! HTTP client (`ticketbound_local::calls`, read from the host's `/local/meter`).
//! The calls per grant are the difference over the run divided by the grants; the
//! reconciler and the expiry sweep, whose cost is per deployment and hour, are shown
//! per run instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use ticketbound_domain::{GrantId, GrantState};
use ticketbound_local::RunningStack;
use ticketbound_local::calls::WAITED_MICROS;
use ticketbound_local::client::poll_grant;
use ticketbound_local::jira_desk::TEST_PROJECT;
use ticketbound_store::Store;

/// Functions whose cost is per run (a schedule), not per grant.
const PER_RUN: [&str; 2] = ["grant-reconcile", "grant-expire (sweep)"];

/// us-east-1 list prices (USD) the cost is derived from, as published by AWS in
/// 2025; docs/benchmarks.md's table says the same.
pub mod prices {
    /// Lambda, per request.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// Lambda on arm64, per GB-second.
    pub const LAMBDA_GB_SECOND_ARM64: f64 = 0.000_013_333_4;
    /// What an invocation is assumed to bill: 128 MB for 100 ms.
    pub const INVOCATION_GB_SECONDS: f64 = 0.128 * 0.1;
    /// DynamoDB on demand, per write and read request unit.
    pub const DYNAMODB_WRU: f64 = 0.625 / 1e6;
    pub const DYNAMODB_RRU: f64 = 0.125 / 1e6;
    /// Secrets Manager, per API call (the secret itself: 0.40 per month, pro rata).
    pub const SECRETS_MANAGER_CALL: f64 = 0.05 / 10_000.0;
    pub const SECRET_MONTH: f64 = 0.40;
    /// KMS, per request (Secrets Manager calls KMS once per value it reads or writes
    /// with a customer managed key).
    pub const KMS_REQUEST: f64 = 0.03 / 10_000.0;
    /// EventBridge Scheduler, per invocation (after 14 million free a month).
    pub const SCHEDULER_INVOCATION: f64 = 1.00 / 1e6;
}

#[derive(Debug, Serialize)]
pub struct LifecycleCosts {
    pub grants: usize,
    pub completed: usize,
    pub seconds: f64,
    /// Function → call → count per grant.
    pub per_grant: BTreeMap<String, BTreeMap<String, f64>>,
    /// Function → call → count over the run (schedules, not grants).
    pub per_run: BTreeMap<String, BTreeMap<String, f64>>,
    pub aws_calls_per_grant: f64,
    /// Service → USD per 1,000 grants.
    pub cost_per_1000_grants: BTreeMap<String, f64>,
    pub cost_per_1000_grants_total: f64,
    /// The secret's storage, which grows with the grant's lifetime: per grant-hour.
    pub secret_storage_per_grant_hour: f64,
    pub assumptions: &'static str,
}

pub const ASSUMPTIONS: &str = "us-east-1 list prices (2025); items of 1 KB or less (1 WRU per write, 2 per transactional item; 1 RRU per read or query page); each Lambda invocation billed 128 MB × 100 ms on arm64; Secrets Manager with a customer managed KMS key (1 KMS request per value read or written); the expiry schedule fires once per grant; stream reads by event source mappings are free; CloudWatch Logs, the secret's storage (shown apart: it grows with the lifetime) and free tiers not included";

async fn meter(stack: &RunningStack) -> BTreeMap<String, BTreeMap<String, u64>> {
    let answer = match ticketbound_local::client::get(&stack.local.intake_url, "/local/meter").await
    {
        Ok(a) if a.status == 200 => a,
        Ok(a) => panic!("the host's meter answered {}: {}", a.status, a.body),
        Err(e) => panic!("the host's meter did not answer: {e}"),
    };
    serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| serde_json::from_value(v["functions"].clone()).ok())
        .unwrap_or_default()
}

/// How long each lifecycle's grant lives: long enough for provisioning and a rotation
/// to finish before its end on a busy machine (ten lifecycles at once, beside a
/// build), so that the run measures instead of failing; its end comes on its expiry
/// schedule, as in AWS.
pub const LIFETIME: chrono::Duration = chrono::Duration::seconds(75);

/// One grant's whole life; `Err` says where it stopped.
async fn one_lifecycle(stack: &RunningStack, store: &Store, secret: &str) -> Result<(), String> {
    // Raised and approved on the local Jira site; the intake reads it back there.
    let desk = stack.jira_desk().await;
    let (_, webhook) = desk
        .approved(TEST_PROJECT, Utc::now(), LIFETIME, |_| {})
        .await;
    let body = serde_json::to_vec(&webhook).map_err(|e| e.to_string())?;
    let headers = ticketbound_local::client::jira_webhook_headers(
        secret,
        &body,
        &ulid::Ulid::new().to_string(),
    );
    let answer = ticketbound_local::client::post(&stack.local.intake_url, "/jira", &headers, &body)
        .await
        .map_err(|e| format!("intake: {e}"))?;
    let id: GrantId = answer.json()["grant_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("intake answered {}: {}", answer.status, answer.body))?;
    // Provisioned within the first two thirds of its life, or the run says so.
    let polls = u32::try_from(LIFETIME.num_milliseconds() * 2 / 3 / 100).unwrap_or(u32::MAX);
    let active = poll_grant(store, id, polls, |g| g.state == GrantState::Active)
        .await
        .map_err(|e| e.to_string())?;
    let Some(active) = active.filter(|g| g.state == GrantState::Active) else {
        return Err(format!(
            "grant {id} was not provisioned within {} s",
            polls / 10
        ));
    };
    let rotated = ticketbound_local::client::post(
        &stack.local.intake_url,
        &format!("/local/rotate/{id}"),
        &[],
        &[],
    )
    .await
    .map_err(|e| format!("rotate: {e}"))?;
    if rotated.status != 200 {
        return Err(format!(
            "rotation of {id}: {} {}",
            rotated.status, rotated.body
        ));
    }
    // Revoked on its schedule: by its not-after time and a minute.
    let until_end = (active.not_after() - Utc::now()).num_milliseconds().max(0);
    let polls = u32::try_from((until_end + 60_000) / 100).unwrap_or(u32::MAX);
    let revoked = poll_grant(store, id, polls, |g| g.state == GrantState::Revoked)
        .await
        .map_err(|e| e.to_string())?;
    if revoked.is_none_or(|g| g.state != GrantState::Revoked) {
        return Err(format!(
            "grant {id} was not revoked within a minute of its end"
        ));
    }
    // The write-back has told the ticket of every step.
    for _ in 0..300 {
        let trail = store.audit_trail(id).await.map_err(|e| e.to_string())?;
        let (told, to_tell) = ticketbound_itsm::note::told_of(&trail);
        if told >= to_tell {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "the write-back did not finish telling the ticket of {id}"
    ))
}

fn delta(
    before: &BTreeMap<String, BTreeMap<String, u64>>,
    after: &BTreeMap<String, BTreeMap<String, u64>>,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    after
        .iter()
        .map(|(function, calls)| {
            let was = before.get(function);
            let diff = calls
                .iter()
                .map(|(call, n)| {
                    let old = was.and_then(|w| w.get(call)).copied().unwrap_or(0);
                    (call.clone(), n.saturating_sub(old))
                })
                .filter(|(_, n)| *n > 0)
                .collect::<BTreeMap<_, _>>();
            (function.clone(), diff)
        })
        .filter(|(_, calls)| !calls.is_empty())
        .collect()
}

/// What one call costs, by service, at the list prices above.
fn cost_of(call: &str, n: f64, items: Option<f64>) -> (&'static str, f64) {
    use prices::*;
    let (service, operation) = call.split_once('.').unwrap_or((call, ""));
    match service {
        "Lambda" => (
            "Lambda",
            n * (LAMBDA_REQUEST + INVOCATION_GB_SECONDS * LAMBDA_GB_SECOND_ARM64),
        ),
        "DynamoDB" => {
            let units = match operation {
                "TransactWriteItems" => 2.0 * items.unwrap_or(n),
                "TransactGetItems" => 2.0 * items.unwrap_or(n),
                "BatchWriteItem" | "BatchGetItem" => items.unwrap_or(n),
                _ => n,
            };
            let write = matches!(
                operation,
                "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
            );
            (
                "DynamoDB",
                units * if write { DYNAMODB_WRU } else { DYNAMODB_RRU },
            )
        }
        "SecretsManager" => {
            let kms = matches!(
                operation,
                "GetSecretValue" | "CreateSecret" | "PutSecretValue"
            );
            (
                "Secrets Manager (+KMS)",
                n * (SECRETS_MANAGER_CALL + if kms { KMS_REQUEST } else { 0.0 }),
            )
        }
        // Scheduler bills invocations (below), not its API.
        _ => ("other", 0.0),
    }
}

pub async fn measure(stack: &RunningStack, grants: usize) -> LifecycleCosts {
    let store = stack.local_store();
    let secret = stack.secret_value(&stack.local.webhook_secrets.jira).await;
    let before = meter(stack).await;
    let started = Instant::now();
    let results =
        futures::future::join_all((0..grants).map(|_| one_lifecycle(stack, &store, &secret))).await;
    let seconds = started.elapsed().as_secs_f64();
    let completed = results.iter().filter(|r| r.is_ok()).count();
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        eprintln!("bench: a lifecycle did not complete: {e}");
    }
    let after = meter(stack).await;
    let diff = delta(&before, &after);

    let per = completed.max(1) as f64;
    let mut per_grant = BTreeMap::new();
    let mut per_run = BTreeMap::new();
    let mut costs: BTreeMap<String, f64> = BTreeMap::new();
    let mut calls_per_grant = 0.0;
    for (function, calls) in &diff {
        let scaled: BTreeMap<String, f64> = calls
            .iter()
            .map(|(c, n)| (c.clone(), *n as f64 / per))
            .collect();
        if PER_RUN.contains(&function.as_str()) {
            per_run.insert(
                function.clone(),
                calls.iter().map(|(c, n)| (c.clone(), *n as f64)).collect(),
            );
            continue;
        }
        for (call, n) in &scaled {
            if call.ends_with(" items") || call == WAITED_MICROS {
                continue;
            }
            if !call.starts_with("Lambda.") {
                calls_per_grant += n;
            }
            let items = scaled.get(&format!("{call} items")).copied();
            let (service, usd) = cost_of(call, *n, items);
            *costs.entry(service.to_owned()).or_default() += usd * 1000.0;
        }
        per_grant.insert(function.clone(), scaled);
    }
    *costs.entry("EventBridge Scheduler".to_owned()).or_default() +=
        prices::SCHEDULER_INVOCATION * 1000.0;
    costs.retain(|_, usd| *usd > 0.0);
    let total = costs.values().sum();
    LifecycleCosts {
        grants,
        completed,
        seconds,
        per_grant,
        per_run,
        aws_calls_per_grant: calls_per_grant,
        cost_per_1000_grants: costs,
        cost_per_1000_grants_total: total,
        // Secrets Manager bills a secret pro rata by the hour; a month is 730 hours.
        secret_storage_per_grant_hour: prices::SECRET_MONTH / 730.0,
        assumptions: ASSUMPTIONS,
    }
}

/// `Service.Operation n, …` with `decimals` places.
fn calls_line(calls: &BTreeMap<String, f64>, decimals: usize) -> String {
    calls
        .iter()
        .map(|(call, n)| format!("{call} {n:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn print(c: &LifecycleCosts) {
    println!();
    println!(
        "AWS calls per grant lifecycle (approval, provisioning, one rotation, expiry, write-back; {} of {} lifecycles completed in {:.1} s):",
        c.completed, c.grants, c.seconds
    );
    for (function, calls) in &c.per_grant {
        let waited = calls.get(WAITED_MICROS).copied().unwrap_or(0.0) / 1000.0;
        let calls: BTreeMap<String, f64> = calls
            .iter()
            .filter(|(call, _)| *call != WAITED_MICROS)
            .map(|(call, n)| (call.clone(), *n))
            .collect();
        let count: f64 = calls
            .iter()
            .filter(|(call, _)| !call.ends_with(" items") && !call.starts_with("Lambda."))
            .map(|(_, n)| n)
            .sum();
        println!(
            "  {function:<17} {count:.1} calls, {waited:.0} ms waiting on AWS: {}",
            calls_line(&calls, 1)
        );
    }
    println!("  total: {:.1} AWS calls per grant", c.aws_calls_per_grant);
    if c.completed < c.grants {
        println!(
            "  NOT VALID: {} lifecycles did not complete, and their calls are counted above as if they had",
            c.grants - c.completed
        );
    }
    for (function, calls) in &c.per_run {
        println!(
            "  per run, not per grant: {function}: {}",
            calls_line(calls, 0)
        );
    }
    let line: Vec<String> = c
        .cost_per_1000_grants
        .iter()
        .map(|(service, usd)| format!("{service} {usd:.4}"))
        .collect();
    println!(
        "cost per 1,000 grants: USD {:.4} ({})",
        c.cost_per_1000_grants_total,
        line.join(", ")
    );
    println!(
        "  plus the secret's storage: USD {:.5} per grant-hour of lifetime",
        c.secret_storage_per_grant_hour
    );
    println!("  assuming {}", c.assumptions);
}
