//! The triggers AWS would fire and moto does not, wired to the functions: DynamoDB TTL
//! deletions (with TTL's stream identity), due EventBridge Scheduler one-time
//! schedules, the periodic sweep, and the grants stream feeding the expiry function.
//! Each calls `grant_expire::handle` with the event exactly as AWS shapes it (a change
//! window's start schedule, `grant_provision::handle_event`); the
//! machinery itself is `ticketbound_local::triggers`. Secrets Manager's rotation
//! schedule is kept here too (see `rotation`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::Utc;
use grant_expire::{Deps, ExpireEvent};
use ticketbound_local::host::{
    idle_wait, next_batch_noting, open_stream, stream_checkpoint, stream_filters,
};
use ticketbound_local::stack::LocalStack;
use ticketbound_local::streams::{StreamPoller, TtlMarks};
use ticketbound_local::triggers::{
    Activity, IdleBackoff, KnownSchedules, TICK, TTL_EVERY, expire_ttl, fire_schedules, ttl_wait,
};
use ticketbound_local::{meter, targets};
use ticketbound_runtime::EnvReader;

/// How often the sweep runs (AWS: a schedule, every few minutes).
const SWEEP_EVERY: StdDuration = StdDuration::from_secs(15);
/// How often the reconciler runs (AWS: its schedule, every 15 minutes by default).
/// Each run reads every grant and every login of the stack, so it is most of what an
/// idle stack costs; `ticketbound local invoke grant-reconcile --event <file of {}>` runs it
/// at once.
const RECONCILE_EVERY: StdDuration = StdDuration::from_secs(300);
/// How often the rotation schedule of each managed secret is looked at.
const ROTATION_CHECK_EVERY: StdDuration = StdDuration::from_secs(30);
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
pub async fn run(stack: LocalStack, activity: Activity) -> Result<(), crate::CliError> {
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
    // The start schedules' provisioner: another instance of grant-provision, as Lambda
    // would run one for the schedule beside the stream's.
    let starter = grant_provision::Deps::from_env(
        &counted("grant-provision").await,
        EnvReader::from_map(super::host::provision_env(&stack)),
    )
    .map_err(crate::CliError::Config)?;
    let sweeper = Deps::from_env(
        &counted(meter::EXPIRE_SWEEP).await,
        EnvReader::from_map(expire_env(&stack)),
    )
    .map_err(crate::CliError::Config)?;
    let marks: TtlMarks = Arc::new(Mutex::new(HashSet::new()));
    let mut poller = open_stream(&sdk, &stack.grants_table).await;
    poller.checkpoint_to(stream_checkpoint(&stack, "grant-expire"));
    poller.mark_ttl_removals(Arc::clone(&marks));
    poller.filter(
        stream_filters(grant_expire::config::STREAM_FILTERS).map_err(crate::CliError::Filter)?,
    );
    eprintln!(
        "function host: grant-expire on schedules, TTL removals, the grants stream and a sweep every {}s; secret-rotate on each secret's rotation schedule (checked every {}s); grant-reconcile every {}s",
        SWEEP_EVERY.as_secs(),
        ROTATION_CHECK_EVERY.as_secs(),
        RECONCILE_EVERY.as_secs()
    );

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let scheduler = aws_sdk_scheduler::Client::new(&sdk);
    let rotation = super::rotation::RotationWiring::counted(&stack).await?;
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
            super::rotation::rotate_due(&rotation).await;
        }
    });
    let table = stack.grants_table.clone();
    let mut ttl_watch = activity.watch();
    triggers.spawn(async move {
        loop {
            // Scan again when the next item is due, or soon after the table was
            // written to (the grants stream's pollers note it); not every few seconds.
            let next_due = expire_ttl(&ddb, &table, &marks).await;
            if ttl_watch.sleep(ttl_wait(next_due)).await {
                tokio::time::sleep(TTL_EVERY).await;
            }
        }
    });
    let stream_deps = Arc::clone(&deps);
    let stream_activity = activity.clone();
    triggers.spawn(async move {
        let mut backoff = IdleBackoff::default();
        let mut watch = stream_activity.watch();
        loop {
            if deliver_stream(&stream_deps, &mut poller, &stream_activity).await {
                tokio::time::sleep(backoff.after(true)).await;
            } else {
                idle_wait(&mut watch, &mut backoff).await;
            }
        }
    });
    let mut schedule_watch = activity.watch();
    triggers.spawn(async move {
        let mut attempts = std::collections::HashMap::new();
        let mut known = KnownSchedules::default();
        let mut backoff = IdleBackoff::default();
        let deps = &*deps;
        let starter = &starter;
        let invoke = move |target: String, input: String| async move {
            if target == targets::PROVISION_FUNCTION_ARN {
                meter::invoked("grant-provision", 1);
                return match serde_json::from_str::<grant_provision::ProvisionEvent>(&input) {
                    Ok(event) => grant_provision::handle_event(starter, event)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(format!(
                        "the schedule's input is not a provisioner's event: {e}"
                    )),
                };
            }
            meter::invoked("grant-expire", 1);
            match serde_json::from_str::<ExpireEvent>(&input) {
                Ok(event) => grant_expire::handle(deps, event)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("the schedule's input is not an expiry event: {e}")),
            }
        };
        loop {
            let round = fire_schedules(&invoke, &scheduler, &mut attempts, &mut known).await;
            if round.fired {
                activity.note();
            }
            let mut wait = backoff.after(round.fired);
            // Never past the next due schedule.
            if let Some(next) = round.next_due {
                let until = (next - Utc::now()).to_std().unwrap_or_default();
                wait = wait.min(until.max(TICK));
            }
            // A schedule is created by a function the host runs, after a write it
            // notes: look at once then.
            if schedule_watch.sleep(wait).await {
                backoff.after(true);
            }
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

/// Delivers one batch, if there is one; true when there was.
async fn deliver_stream(deps: &Deps, poller: &mut StreamPoller, activity: &Activity) -> bool {
    let batch = match next_batch_noting(poller, activity).await {
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
