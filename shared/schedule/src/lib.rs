//! The precise expiry path: an EventBridge Scheduler one-time schedule per grant, at its
//! not-after time, invoking the expiry function with `{"grant_id": …}`. Scheduler fires
//! within a minute of the time; DynamoDB TTL (which may lag by days) is only the
//! backstop. The schedule deletes itself after it fires (`ActionAfterCompletion:
//! DELETE`), retries on failure, and sends what it cannot deliver to a dead-letter
//! queue.
//!
//! This crate owns every Scheduler SDK type.

use std::error::Error as StdError;

use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::config::http::HttpResponse;
use aws_sdk_scheduler::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};
use chrono::{DateTime, Duration, Utc};
use ticketbound_domain::{Grant, GrantId};

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("no schedule target is configured; this function cannot create schedules")]
    NoTarget,
    #[error("EventBridge Scheduler {operation} failed for {name}")]
    Call {
        operation: &'static str,
        name: String,
        retryable: bool,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl ScheduleError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Call {
                retryable: true,
                ..
            }
        )
    }

    fn call<E>(operation: &'static str, name: &str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: StdError + ProvideErrorMetadata + Send + Sync + 'static,
    {
        let retryable = ticketbound_runtime::aws::is_transient(
            &err,
            &["ThrottlingException", "InternalServerException"],
        );
        Self::Call {
            operation,
            name: name.to_owned(),
            retryable,
            source: Box::new(err),
        }
    }
}

/// What an expiry schedule invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTarget {
    /// The expiry function's ARN.
    pub arn: String,
    /// The role Scheduler assumes to invoke it.
    pub role_arn: String,
    pub dead_letter_arn: Option<String>,
    /// What a change window's start schedule invokes: the provisioner itself (only
    /// the provisioner makes them; the other uses leave it unset).
    pub provision_arn: Option<String>,
}

/// Where expiry schedules live and what they invoke. Functions that only delete
/// schedules have no target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSettings {
    pub group: String,
    pub target: Option<ScheduleTarget>,
}

pub use ticketbound_runtime::vars::{
    EXPIRY_FUNCTION_ARN, PROVISION_FUNCTION_ARN, SCHEDULE_DLQ_ARN, SCHEDULE_GROUP,
    SCHEDULER_ROLE_ARN,
};

/// What a function does with expiry schedules, which decides what of
/// [`ScheduleSettings`] it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleUse {
    /// Makes every grant's expiry schedule, and the start schedule of a grant whose
    /// change window has not begun: both targets are required.
    Creates,
    /// Makes retry schedules when a target is configured (both its ARNs), and leaves
    /// retries to its other triggers when not.
    RetriesIfTargeted,
    /// Only finds and deletes schedules: the group alone.
    Deletes,
}

impl ScheduleSettings {
    /// Reads the group and, for a use that makes schedules, the target they invoke.
    /// With [`ScheduleUse::Creates`] a missing target is recorded in `env` (and
    /// reported by its `finish`); with `RetriesIfTargeted` the target is there only
    /// when both its ARNs are.
    pub fn read(env: &mut ticketbound_runtime::EnvReader, use_: ScheduleUse) -> Self {
        let group: String = env.or_default(
            SCHEDULE_GROUP,
            "a schedule group name",
            "ticketbound".to_owned(),
        );
        let (arn, role_arn, provision_arn): (Option<String>, Option<String>, _) = match use_ {
            ScheduleUse::Creates => (
                env.required(EXPIRY_FUNCTION_ARN, "a Lambda ARN"),
                env.required(SCHEDULER_ROLE_ARN, "an IAM role ARN"),
                env.required(PROVISION_FUNCTION_ARN, "a Lambda ARN"),
            ),
            ScheduleUse::RetriesIfTargeted => (
                env.optional(EXPIRY_FUNCTION_ARN, "a Lambda ARN"),
                env.optional(SCHEDULER_ROLE_ARN, "an IAM role ARN"),
                None,
            ),
            ScheduleUse::Deletes => {
                return Self {
                    group,
                    target: None,
                };
            }
        };
        let dead_letter_arn = env.optional(SCHEDULE_DLQ_ARN, "an SQS queue ARN");
        let target = match (arn, role_arn) {
            (Some(arn), Some(role_arn)) => Some(ScheduleTarget {
                arn,
                role_arn,
                dead_letter_arn,
                provision_arn,
            }),
            _ => None,
        };
        Self { group, target }
    }
}

/// The name of a grant's expiry schedule.
pub fn schedule_name(id: GrantId) -> String {
    format!("tb-expire-{id}")
}

/// The name of the one-time schedule that provisions a grant at its change window's
/// start (`attempt` 0), or retries that after its `attempt`th failure.
pub fn start_schedule_name(id: GrantId, attempt: u32) -> String {
    match attempt {
        0 => format!("tb-start-{id}"),
        n => format!("tb-start-{id}-r{n}"),
    }
}

/// What a change window's start schedule hands the provisioner: which grant, that the
/// window's start is why, and which retry this is (0: the start itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowStartEvent {
    pub grant_id: GrantId,
    pub trigger: WindowStartTrigger,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The one trigger a start schedule names (a field of its own, so that an event of
/// any other shape is never read as one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStartTrigger {
    WindowStart,
}

/// The name of the schedule that retries a grant's revocation after its `attempt`th
/// failure (within Scheduler's 64 characters).
pub fn retry_schedule_name(id: GrantId, attempt: u32) -> String {
    format!("{}-r{attempt}", schedule_name(id))
}

/// `at(…)` for `t`, rounded up to the second: never early.
fn at_expression(t: DateTime<Utc>) -> String {
    let rounded = if t.timestamp_subsec_nanos() > 0 {
        t + Duration::nanoseconds(1_000_000_000 - i64::from(t.timestamp_subsec_nanos()))
    } else {
        t
    };
    format!("at({})", rounded.format("%Y-%m-%dT%H:%M:%S"))
}

/// Which function a schedule invokes.
#[derive(Debug, Clone, Copy)]
enum Invokes {
    Expiry,
    Provisioner,
}

#[derive(Debug, Clone)]
pub struct ExpirySchedules {
    client: Client,
    settings: ScheduleSettings,
}

impl ExpirySchedules {
    pub fn new(client: Client, settings: ScheduleSettings) -> Self {
        Self { client, settings }
    }

    /// True when these settings can create schedules (they name a target).
    pub fn can_create(&self) -> bool {
        self.settings.target.is_some()
    }

    /// Creates the grant's expiry schedule unless it exists. Returns its name.
    pub async fn ensure(&self, grant: &Grant) -> Result<String, ScheduleError> {
        self.create_once(
            Invokes::Expiry,
            schedule_name(grant.id),
            grant.not_after(),
            serde_json::json!({"grant_id": grant.id.to_string(), "trigger": "schedule"}),
            format!(
                "revoke grant {} ({}) at its not-after time",
                grant.id,
                grant.request.ticket.qualified_key()
            ),
            format!("{}-expiry", grant.id),
        )
        .await
    }

    /// Creates the one-time schedule that retries a failed revocation of `grant`
    /// (its `attempt`th failure) at `at`; a name per attempt, so that the schedule
    /// firing now (deleted once it completes) never stands in the way of the next.
    pub async fn ensure_retry(
        &self,
        grant: &Grant,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> Result<String, ScheduleError> {
        self.create_once(
            Invokes::Expiry,
            retry_schedule_name(grant.id, attempt),
            at,
            serde_json::json!({"grant_id": grant.id.to_string(), "trigger": "retry"}),
            format!(
                "retry the revocation of grant {} ({}) after failure {attempt}",
                grant.id,
                grant.request.ticket.qualified_key()
            ),
            format!("{}-retry-{attempt}", grant.id),
        )
        .await
    }

    /// Creates the one-time schedule that provisions grant `id` at `at` (its change
    /// window's start, or a retry's time) unless it exists; `attempt` 0 is the start
    /// itself, each retry a schedule of its own name and request token, so that one
    /// that fired (and deleted itself) never stands in the way of the next. Returns
    /// its name.
    pub async fn ensure_start(
        &self,
        id: GrantId,
        at: DateTime<Utc>,
        attempt: u32,
    ) -> Result<String, ScheduleError> {
        let event = WindowStartEvent {
            grant_id: id,
            trigger: WindowStartTrigger::WindowStart,
            attempt,
        };
        let name = start_schedule_name(id, attempt);
        self.create_once(
            Invokes::Provisioner,
            name.clone(),
            at,
            serde_json::to_value(&event).unwrap_or_default(),
            match attempt {
                0 => format!("issue grant {id} at its change window's start"),
                n => format!("issue grant {id}, retry {n} after its change window's start"),
            },
            name,
        )
        .await
    }

    async fn create_once(
        &self,
        invokes: Invokes,
        name: String,
        at: DateTime<Utc>,
        input: serde_json::Value,
        description: String,
        client_token: String,
    ) -> Result<String, ScheduleError> {
        let settings = self
            .settings
            .target
            .as_ref()
            .ok_or(ScheduleError::NoTarget)?;
        let function_arn = match invokes {
            Invokes::Expiry => &settings.arn,
            Invokes::Provisioner => settings
                .provision_arn
                .as_ref()
                .ok_or(ScheduleError::NoTarget)?,
        };
        let input = input.to_string();
        let mut target = Target::builder()
            .arn(function_arn)
            .role_arn(&settings.role_arn)
            .input(input)
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_event_age_in_seconds(3600)
                    .maximum_retry_attempts(20)
                    .build(),
            );
        if let Some(dlq) = &settings.dead_letter_arn {
            target = target.dead_letter_config(DeadLetterConfig::builder().arn(dlq).build());
        }
        let target = target.build().map_err(|e| ScheduleError::Call {
            operation: "CreateSchedule",
            name: name.clone(),
            retryable: false,
            source: Box::new(e),
        })?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| ScheduleError::Call {
                operation: "CreateSchedule",
                name: name.clone(),
                retryable: false,
                source: Box::new(e),
            })?;
        let created = self
            .client
            .create_schedule()
            .name(&name)
            // From the cause, so that a retried create is the same request.
            .client_token(client_token)
            .group_name(&self.settings.group)
            .description(description)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .target(target)
            .action_after_completion(ActionAfterCompletion::Delete)
            .send()
            .await;
        match created {
            Ok(_) => Ok(name),
            Err(e) if e.code() == Some("ConflictException") => Ok(name),
            Err(e) => Err(ScheduleError::call("CreateSchedule", &name, e)),
        }
    }

    /// Whether the grant's expiry schedule exists.
    pub async fn exists(&self, id: GrantId) -> Result<bool, ScheduleError> {
        self.exists_named(&schedule_name(id)).await
    }

    /// Whether schedule `name` exists in the group.
    pub async fn exists_named(&self, name: &str) -> Result<bool, ScheduleError> {
        match self
            .client
            .get_schedule()
            .name(name)
            .group_name(&self.settings.group)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(ScheduleError::call("GetSchedule", name, e)),
        }
    }

    /// Deletes the schedule of retry `attempt` of grant `id`, if it is still there
    /// (it deletes itself once it fired).
    pub async fn delete_retry(&self, id: GrantId, attempt: u32) -> Result<bool, ScheduleError> {
        self.delete_named(retry_schedule_name(id, attempt)).await
    }

    /// Deletes the grant's expiry schedule; one already gone (fired, or deleted
    /// before) is fine. Returns whether there was one.
    pub async fn delete(&self, id: GrantId) -> Result<bool, ScheduleError> {
        self.delete_named(schedule_name(id)).await
    }

    async fn delete_named(&self, name: String) -> Result<bool, ScheduleError> {
        match self
            .client
            .delete_schedule()
            .name(&name)
            .group_name(&self.settings.group)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(ScheduleError::call("DeleteSchedule", &name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_never_fire_early() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 18, 0, 0).unwrap();
        assert_eq!(at_expression(t), "at(2026-11-29T18:00:00)");
        assert_eq!(
            at_expression(t + Duration::milliseconds(1)),
            "at(2026-11-29T18:00:01)"
        );
    }
}
