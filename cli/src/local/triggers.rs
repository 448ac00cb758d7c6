//! The triggers AWS would fire and moto does not: DynamoDB TTL deletions (with TTL's
//! stream identity), due EventBridge Scheduler one-time schedules, the periodic sweep,
//! and the grants stream feeding the expiry function. Each calls `grant_expire::handle`
//! with the event exactly as AWS shapes it. Secrets Manager's rotation schedule is
//! kept here too (see `rotation`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{NaiveDateTime, Utc};
use grant_expire::{Deps, ExpireEvent};
use ticketbound_runtime::EnvReader;
use ticketbound_runtime::local::LocalStack;
use ticketbound_testkit::streams::{StreamPoller, TtlMarks};

use super::{meter, targets};

/// How often the emulated triggers look for work while there is some.
pub const TICK: StdDuration = StdDuration::from_millis(200);
/// The longest an idle trigger waits before it looks again (a due schedule is never
/// waited past): an idle local stack stays near idle.
pub const IDLE_MAX: StdDuration = StdDuration::from_millis(3200);
/// How often DynamoDB TTL is emulated (AWS deletes within days; nothing is precise).
const TTL_EVERY: StdDuration = StdDuration::from_secs(2);

/// How long a polling loop waits: [`TICK`] after a round that found work, then twice
/// as long after each idle round, up to [`IDLE_MAX`].
#[derive(Debug, Clone, Copy)]
pub struct IdleBackoff(StdDuration);

impl Default for IdleBackoff {
    fn default() -> Self {
        Self(TICK)
    }
}

impl IdleBackoff {
    /// The wait after a round; `worked` says whether it found anything to do.
    pub fn after(&mut self, worked: bool) -> StdDuration {
        self.0 = if worked {
            TICK
        } else {
            (self.0 * 2).min(IDLE_MAX)
        };
        self.0
    }
}
/// How often the sweep runs (AWS: a schedule, every few minutes).
const SWEEP_EVERY: StdDuration = StdDuration::from_secs(15);
/// How often the reconciler runs (AWS: its schedule, every 15 minutes by default).
const RECONCILE_EVERY: StdDuration = StdDuration::from_secs(60);
/// How often the rotation schedule of each managed secret is looked at.
const ROTATION_CHECK_EVERY: StdDuration = StdDuration::from_secs(30);
/// Scheduler's retry policy of the expiry schedules (`maximum_retry_attempts`).
const SCHEDULE_ATTEMPTS: u32 = 20;

pub fn expire_env(stack: &LocalStack) -> Vec<(String, String)> {
    use grant_expire::config as c;
    [
        (c::GRANTS_TABLE, stack.grants_table.clone()),
        (c::AUDIT_TABLE, stack.audit_table.clone()),
        (c::TARGETS, targets::targets_json(stack)),
        (c::SCHEDULE_GROUP, targets::SCHEDULE_GROUP.to_owned()),
        // So that a failing revocation schedules its own retry, as in AWS.
        (
            c::EXPIRY_FUNCTION_ARN,
            targets::EXPIRY_FUNCTION_ARN.to_owned(),
        ),
        (
            c::SCHEDULER_ROLE_ARN,
            targets::SCHEDULER_ROLE_ARN.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The reconciler's environment: the expiry function's, as far as it reads it.
pub fn reconcile_env(stack: &LocalStack) -> Vec<(String, String)> {
    let mut env = expire_env(stack);
    env.retain(|(k, _)| grant_reconcile::config::VARIABLES.contains(&k.as_str()));
    env.push((
        grant_reconcile::config::IDENTITIES_TABLE.to_owned(),
        stack.identities_table.clone(),
    ));
    env
}

/// Runs every emulated trigger until the process ends.
pub async fn run(stack: LocalStack) -> Result<(), crate::CliError> {
    // What the host does in AWS's place is not counted; the functions' calls are.
    let sdk = stack.sdk_config().await;
    let counted = |function: &'static str| {
        let stack = stack.clone();
        async move { stack.function_sdk_config(&meter::counts(function)).await }
    };
    let deps = Arc::new(
        Deps::from_env(
            &counted("grant-expire").await,
            EnvReader::from_map(expire_env(&stack)),
        )
        .map_err(crate::CliError::Config)?,
    );
    let sweeper = Deps::from_env(
        &counted(meter::EXPIRE_SWEEP).await,
        EnvReader::from_map(expire_env(&stack)),
    )
    .map_err(crate::CliError::Config)?;
    let marks: TtlMarks = Arc::new(Mutex::new(HashSet::new()));
    let mut poller = super::host::open_stream(&sdk, &stack.grants_table).await;
    poller.checkpoint_to(super::host::stream_checkpoint(&stack, "grant-expire"));
    poller.mark_ttl_removals(Arc::clone(&marks));
    poller.filter(super::host::stream_filters(
        grant_expire::config::STREAM_FILTERS,
    )?);
    eprintln!(
        "function host: grant-expire on schedules, TTL removals, the grants stream and a sweep every {}s; secret-rotate on each secret's rotation schedule (checked every {}s); grant-reconcile every {}s",
        SWEEP_EVERY.as_secs(),
        ROTATION_CHECK_EVERY.as_secs(),
        RECONCILE_EVERY.as_secs()
    );

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let scheduler = aws_sdk_scheduler::Client::new(&sdk);
    let rotation_schedule = super::rotation::rotate_deps(&stack).await?;
    let rotate = super::rotation::rotate_deps_counted(&stack).await?;
    let reconciler = grant_reconcile::Deps::from_env(
        &counted("grant-reconcile").await,
        EnvReader::from_map(reconcile_env(&stack)),
    )
    .map_err(crate::CliError::Config)?;

    // Each trigger on its own, as AWS runs them: a reconcile that takes seconds or a
    // backlog on the stream does not hold back a schedule that is due.
    let mut triggers = tokio::task::JoinSet::new();
    triggers.spawn(async move {
        loop {
            tokio::time::sleep(RECONCILE_EVERY).await;
            meter::invoked("grant-reconcile", 1);
            match grant_reconcile::reconcile(&reconciler).await {
                Ok(report) => tracing::info!(
                    grants = report.grants_checked,
                    findings = report.findings.len(),
                    ms = report.duration_ms as u64,
                    "reconciled"
                ),
                Err(e) => {
                    tracing::error!(error = %ticketbound_runtime::error_chain(&e), "reconcile failed")
                }
            }
        }
    });
    triggers.spawn(async move {
        loop {
            tokio::time::sleep(ROTATION_CHECK_EVERY).await;
            super::rotation::rotate_due(&rotation_schedule, &rotate).await;
        }
    });
    let table = stack.grants_table.clone();
    triggers.spawn(async move {
        loop {
            expire_ttl(&ddb, &table, &marks).await;
            tokio::time::sleep(TTL_EVERY).await;
        }
    });
    let stream_deps = Arc::clone(&deps);
    triggers.spawn(async move {
        let mut backoff = IdleBackoff::default();
        loop {
            let worked = deliver_stream(&stream_deps, &mut poller).await;
            tokio::time::sleep(backoff.after(worked)).await;
        }
    });
    triggers.spawn(async move {
        let mut attempts = std::collections::HashMap::new();
        let mut known = KnownSchedules::default();
        let mut backoff = IdleBackoff::default();
        loop {
            let round = fire_schedules(&deps, &scheduler, &mut attempts, &mut known).await;
            let mut wait = backoff.after(round.fired);
            // Never past the next due schedule.
            if let Some(next) = round.next_due {
                let until = (next - Utc::now()).to_std().unwrap_or_default();
                wait = wait.min(until.max(TICK));
            }
            tokio::time::sleep(wait).await;
        }
    });
    triggers.spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            meter::invoked(meter::EXPIRE_SWEEP, 1);
            match grant_expire::handle(&sweeper, ExpireEvent::Sweep).await {
                Ok(out) if !out.revoked.is_empty() => {
                    tracing::info!(revoked = ?out.revoked, "sweep revoked overdue grants")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "sweep failed"),
            }
        }
    });
    // The loops never end on their own; a panic in one is said, the others go on.
    while let Some(Err(e)) = triggers.join_next().await {
        tracing::error!(error = %e, "an emulated trigger stopped");
    }
    Ok(())
}

/// DynamoDB TTL: deletes items whose `expires_at` has passed (AWS does it within days;
/// here at once, which only makes the backstop arrive earlier).
async fn expire_ttl(ddb: &aws_sdk_dynamodb::Client, table: &str, marks: &TtlMarks) {
    let now = Utc::now().timestamp().to_string();
    let due = ddb
        .scan()
        .table_name(table)
        .filter_expression("expires_at <= :now")
        .expression_attribute_values(":now", AttributeValue::N(now.clone()))
        .projection_expression("pk, sk")
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    for item in due.into_iter().flatten() {
        let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
            (item.get("pk"), item.get("sk"))
        else {
            continue;
        };
        if let Ok(mut m) = marks.lock() {
            m.insert(format!("{pk}|{sk}"));
        }
        let deleted = ddb
            .delete_item()
            .table_name(table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(sk.clone()))
            .condition_expression("expires_at <= :now")
            .expression_attribute_values(":now", AttributeValue::N(now.clone()))
            .send()
            .await;
        if deleted.is_err()
            && let Ok(mut m) = marks.lock()
        {
            m.remove(&format!("{pk}|{sk}"));
        }
    }
}

/// Delivers one batch, if there is one; true when there was.
async fn deliver_stream(deps: &Deps, poller: &mut StreamPoller) -> bool {
    let batch = match poller.next_batch().await {
        Ok(Some(b)) => b,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(error = %e, "reading the grants stream failed");
            return false;
        }
    };
    let n = batch.records.len();
    meter::invoked("grant-expire", 1);
    match grant_expire::handle(deps, ExpireEvent::Stream(Box::new(batch))).await {
        Ok(out) => {
            for dropped in poller.complete(n, &grant_expire::stream_response(&out)) {
                tracing::error!(record = %dropped["eventID"], "grant-expire kept failing on a record; given up (AWS: on-failure destination)");
            }
        }
        Err(e) => tracing::error!(error = %e, "grant-expire failed a stream batch"),
    }
    true
}

/// `at(2026-11-29T18:00:01)` in UTC.
fn due_time(expression: &str) -> Option<chrono::DateTime<Utc>> {
    let inner = expression.strip_prefix("at(")?.strip_suffix(')')?;
    NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// EventBridge Scheduler: invokes the target of each due one-time schedule with its
/// input, deletes it after success (ActionAfterCompletion DELETE), retries it on
/// failure, and gives up (AWS: dead-letter queue) after the retry policy's attempts.
/// What one look at the schedules did: whether any fired, and when the next is due.
struct ScheduleRound {
    fired: bool,
    next_due: Option<chrono::DateTime<Utc>>,
}

/// Each schedule's time and input as last read, by name and last modification: a
/// schedule is read once (GetSchedule), not at every look, unless it changes.
/// A schedule as last read: its last modification, when it is due, its input.
struct KnownSchedule {
    modified: Option<aws_sdk_scheduler::primitives::DateTime>,
    at: Option<chrono::DateTime<Utc>>,
    input: String,
}

#[derive(Default)]
struct KnownSchedules(std::collections::HashMap<String, KnownSchedule>);

async fn fire_schedules(
    deps: &Deps,
    scheduler: &aws_sdk_scheduler::Client,
    attempts: &mut std::collections::HashMap<String, u32>,
    known: &mut KnownSchedules,
) -> ScheduleRound {
    let idle = ScheduleRound {
        fired: false,
        next_due: None,
    };
    let Ok(list) = scheduler
        .list_schedules()
        .group_name(targets::SCHEDULE_GROUP)
        .send()
        .await
    else {
        return idle;
    };
    let listed: HashSet<&str> = list.schedules().iter().filter_map(|s| s.name()).collect();
    known.0.retain(|name, _| listed.contains(name.as_str()));
    let mut due = Vec::new();
    let mut next_due = None;
    for summary in list.schedules() {
        let Some(name) = summary.name() else { continue };
        let modified = summary.last_modification_date().copied();
        let fresh = known
            .0
            .get(name)
            .is_some_and(|k| k.modified.is_some() && k.modified == modified);
        if !fresh {
            let Ok(schedule) = scheduler
                .get_schedule()
                .name(name)
                .group_name(targets::SCHEDULE_GROUP)
                .send()
                .await
            else {
                continue;
            };
            let at = schedule.schedule_expression().and_then(due_time);
            let input = schedule
                .target()
                .map(|t| t.input().unwrap_or("{}"))
                .unwrap_or("{}")
                .to_owned();
            known.0.insert(
                name.to_owned(),
                KnownSchedule {
                    modified,
                    at,
                    input,
                },
            );
        }
        let Some(KnownSchedule { at, input, .. }) = known.0.get(name) else {
            continue;
        };
        match at {
            Some(t) if *t <= Utc::now() => due.push((name.to_owned(), input.clone())),
            Some(t) => next_due = Some(next_due.map_or(*t, |n: chrono::DateTime<Utc>| n.min(*t))),
            None => {}
        }
    }
    let round = ScheduleRound {
        fired: !due.is_empty(),
        next_due,
    };
    // Scheduler invokes each due schedule on its own, not one after another.
    let fired = futures::future::join_all(due.into_iter().map(|(name, input)| async move {
        meter::invoked("grant-expire", 1);
        let outcome = match serde_json::from_str::<ExpireEvent>(&input) {
            Ok(event) => grant_expire::handle(deps, event)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("the schedule's input is not an expiry event: {e}")),
        };
        (name, outcome)
    }))
    .await;
    for (name, outcome) in fired {
        let tries = attempts.entry(name.clone()).or_insert(0);
        *tries += 1;
        match outcome {
            Ok(()) => {}
            Err(e) if *tries < SCHEDULE_ATTEMPTS => {
                tracing::warn!(schedule = name, attempt = *tries, error = %e, "scheduled expiry failed; Scheduler retries");
                continue;
            }
            Err(e) => {
                tracing::error!(schedule = name, error = %e, "scheduled expiry kept failing; given up (AWS: dead-letter queue)")
            }
        }
        attempts.remove(&name);
        let _ = scheduler
            .delete_schedule()
            .name(&name)
            .group_name(targets::SCHEDULE_GROUP)
            .send()
            .await;
    }
    round
}
