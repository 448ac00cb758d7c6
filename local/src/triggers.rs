//! The triggers AWS would fire and moto does not, as generic machinery: DynamoDB TTL
//! deletions (marked so that the stream poller gives their REMOVE records TTL's
//! identity), due EventBridge Scheduler one-time schedules (fired with their input,
//! retried, deleted after success), and the back-off of every polling loop. Which
//! function each trigger invokes is the caller's wiring (the CLI's function host);
//! this crate depends on no function.
//!
//! An idle host costs little: each loop backs off when it finds nothing, up to
//! [`IDLE_MAX`] (TTL and the signing schedule up to a minute), and wakes early when
//! something happens ([`Activity`]: a request to the host, a stream record read, a
//! schedule fired). No loop sleeps past the next thing it knows is due.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{NaiveDateTime, Utc};

use crate::streams::TtlMarks;
use crate::targets;

/// How often the emulated triggers look for work while there is some.
pub const TICK: StdDuration = StdDuration::from_millis(200);
/// The longest an idle poller waits before it looks again (a due schedule is never
/// waited past, and [`Activity`] wakes it at once): what a write that does not pass
/// through the host (a test's, another process's) may wait to be seen.
pub const IDLE_MAX: StdDuration = StdDuration::from_millis(12_800);
/// The shortest time between two emulated TTL scans (AWS deletes within days;
/// nothing is precise): a burst of writes is scanned once.
pub const TTL_EVERY: StdDuration = StdDuration::from_secs(2);
/// The longest an idle TTL emulation or signing schedule waits when nothing happens
/// and nothing is due.
pub const QUIET_MAX: StdDuration = StdDuration::from_secs(60);

/// What the host has seen happen, for the loops that wait on it: each note wakes every
/// loop waiting in [`ActivityWatch::sleep`]. A poller that reads records from a
/// stream notes it (so the TTL emulation of a table that was written to looks again,
/// and the other consumers of the stream poll at once), as do a request to the host
/// and a schedule fired. Clones share one count.
#[derive(Debug, Clone)]
pub struct Activity(Arc<tokio::sync::watch::Sender<u64>>);

impl Default for Activity {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(0)))
    }
}

impl Activity {
    /// Something happened: every waiting loop wakes.
    pub fn note(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A waiter that sees what is noted from now on.
    pub fn watch(&self) -> ActivityWatch {
        ActivityWatch(self.0.subscribe())
    }
}

/// One loop's view of [`Activity`].
#[derive(Debug)]
pub struct ActivityWatch(tokio::sync::watch::Receiver<u64>);

impl ActivityWatch {
    /// Waits `wait`, or less if something was noted since this watch last woke (a
    /// note while the loop was busy is not missed); true when woken early.
    pub async fn sleep(&mut self, wait: StdDuration) -> bool {
        tokio::select! {
            changed = self.0.changed() => {
                if changed.is_err() {
                    // Nobody can note any more: only the time is left to wait for.
                    tokio::time::sleep(wait).await;
                    return false;
                }
                self.0.borrow_and_update();
                true
            }
            () = tokio::time::sleep(wait) => false,
        }
    }
}

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
/// Scheduler's retry policy of the expiry schedules (`maximum_retry_attempts`).
const SCHEDULE_ATTEMPTS: u32 = 20;

/// DynamoDB TTL: deletes items whose `expires_at` has passed (AWS does it within days;
/// here at once, which only makes the backstop arrive earlier). Returns when the
/// earliest item still to expire is due (`None`: none is), so that the caller need
/// not scan again before then unless the table is written to.
pub async fn expire_ttl(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    marks: &TtlMarks,
) -> Option<chrono::DateTime<Utc>> {
    let now_secs = Utc::now().timestamp();
    let now = now_secs.to_string();
    let expiring = ddb
        .scan()
        .table_name(table)
        .filter_expression("attribute_exists(expires_at)")
        .projection_expression("pk, sk, expires_at")
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let mut next_due: Option<i64> = None;
    for item in expiring.into_iter().flatten() {
        let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
            (item.get("pk"), item.get("sk"))
        else {
            continue;
        };
        // TTL ignores an attribute that is not a number of seconds.
        let Some(at) = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        if at > now_secs {
            next_due = Some(next_due.map_or(at, |n| n.min(at)));
            continue;
        }
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
    next_due.and_then(|at| chrono::DateTime::from_timestamp(at, 0))
}

/// How long the TTL emulation may wait after a scan: until the next item is due, at
/// least [`TTL_EVERY`], at most [`QUIET_MAX`].
pub fn ttl_wait(next_due: Option<chrono::DateTime<Utc>>) -> StdDuration {
    let until = match next_due {
        // Already past (the scan was a moment ago): as soon as may be.
        Some(at) => (at - Utc::now()).to_std().unwrap_or_default(),
        None => QUIET_MAX,
    };
    until.clamp(TTL_EVERY, QUIET_MAX)
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
#[derive(Debug, Clone, Copy)]
pub struct ScheduleRound {
    pub fired: bool,
    pub next_due: Option<chrono::DateTime<Utc>>,
}

/// Each schedule's time and input as last read, by name and last modification: a
/// schedule is read once (GetSchedule), not at every look, unless it changes.
/// A schedule as last read: its last modification, when it is due, what it invokes
/// and with what input.
#[derive(Debug)]
struct KnownSchedule {
    modified: Option<aws_sdk_scheduler::primitives::DateTime>,
    at: Option<chrono::DateTime<Utc>>,
    target: String,
    input: String,
}

#[derive(Debug, Default)]
pub struct KnownSchedules(std::collections::HashMap<String, KnownSchedule>);

/// One look at the schedule group: `invoke` runs each due schedule's target (its
/// ARN, the first argument) with the schedule's input (its error, if any, is what
/// Scheduler logs before it retries).
pub async fn fire_schedules<F, Fut>(
    invoke: F,
    scheduler: &aws_sdk_scheduler::Client,
    attempts: &mut std::collections::HashMap<String, u32>,
    known: &mut KnownSchedules,
) -> ScheduleRound
where
    F: Fn(String, String) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
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
            let target = schedule
                .target()
                .map(|t| t.arn().to_owned())
                .unwrap_or_default();
            known.0.insert(
                name.to_owned(),
                KnownSchedule {
                    modified,
                    at,
                    target,
                    input,
                },
            );
        }
        let Some(KnownSchedule {
            at, target, input, ..
        }) = known.0.get(name)
        else {
            continue;
        };
        match at {
            Some(t) if *t <= Utc::now() => {
                due.push((name.to_owned(), target.clone(), input.clone()))
            }
            Some(t) => next_due = Some(next_due.map_or(*t, |n: chrono::DateTime<Utc>| n.min(*t))),
            None => {}
        }
    }
    let round = ScheduleRound {
        fired: !due.is_empty(),
        next_due,
    };
    // Scheduler invokes each due schedule on its own, not one after another.
    let invoke = &invoke;
    let fired = futures::future::join_all(
        due.into_iter()
            .map(|(name, target, input)| async move { (name, invoke(target, input).await) }),
    )
    .await;
    for (name, outcome) in fired {
        let tries = attempts.entry(name.clone()).or_insert(0);
        *tries += 1;
        match outcome {
            Ok(()) => {}
            Err(e) if *tries < SCHEDULE_ATTEMPTS => {
                tracing::warn!(schedule = name, attempt = *tries, error = %e, "a schedule's target failed; Scheduler retries");
                continue;
            }
            Err(e) => {
                tracing::error!(schedule = name, error = %e, "a schedule's target kept failing; given up (AWS: dead-letter queue)")
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
