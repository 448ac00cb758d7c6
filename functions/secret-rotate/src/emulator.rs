//! Secrets Manager's side of rotation, for the local stack (moto neither keeps
//! rotation schedules nor invokes rotation functions). Not used in AWS.
//!
//! For each rotation it does what Secrets Manager does: picks a token, stages it as
//! the AWSPENDING version (`RotateSecret` with that token), then invokes the four
//! steps in order with AWS's event shape, and when a step fails starts the whole
//! rotation again with the same token after a pause, a few times, before it gives
//! up. A refusal is not retried: the grant's state decides it, and the function has
//! already audited it.

use std::time::{Duration, Instant};

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use chrono::{DateTime, Utc};
use ticketbound_enforce::rotation::Step;
use ticketbound_secrets::VaultError;
use ticketbound_secrets::credentials::SecretInfo;

use crate::{Deps, RotateError, handle};

/// How Secrets Manager retries a rotation whose step failed.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            pause: Duration::from_secs(1),
        }
    }
}

/// A completed rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub secret_arn: String,
    pub token: String,
    pub attempts: u32,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("secret {0} does not exist")]
    NoSuchSecret(String),
    #[error("secret {0} has no rotation function configured")]
    NoRotationFunction(String),
    #[error("Secrets Manager (emulated) failed")]
    Vault(#[from] VaultError),
    #[error("rotation of {secret_arn} failed in {step} after {attempts} attempt(s)")]
    Failed {
        secret_arn: String,
        step: &'static str,
        attempts: u32,
        #[source]
        last: RotateError,
    },
}

/// The event Secrets Manager sends for `step`, built from its JSON form so that the
/// shape is AWS's, not ours.
pub fn step_event(step: Step, secret_id: &str, token: &str) -> SecretsManagerSecretRotationEvent {
    let json = serde_json::json!({
        "Step": step.as_str(),
        "SecretId": secret_id,
        "ClientRequestToken": token,
    });
    serde_json::from_value(json).unwrap_or_default()
}

/// Rotates `secret_id` once, now.
pub async fn rotate(
    deps: &Deps,
    secret_id: &str,
    retry: RetryPolicy,
) -> Result<Rotation, EmulatorError> {
    let started = Instant::now();
    let vault = &deps.enforcer.vault;
    let info = vault
        .describe(secret_id)
        .await?
        .ok_or_else(|| EmulatorError::NoSuchSecret(secret_id.to_owned()))?;
    let function = info
        .rotation_function_arn
        .clone()
        .ok_or_else(|| EmulatorError::NoRotationFunction(info.arn.clone()))?;
    let token = uuid::Uuid::new_v4().to_string();
    // moto keeps only whole-day rules (it drops `rate(N hours)` and then reports
    // rotation as disabled), so the version is staged with the interval in whole days,
    // rounded up; when rotations fall due is decided from the grant (see `due`).
    let days = interval(deps, &info)
        .await
        .map_or(1, |i| ((i.num_hours() + 23) / 24).max(1));
    vault
        .begin_rotation(&info.arn, &token, &function, days)
        .await?;

    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_steps(deps, &info.arn, &token).await {
            Ok(()) => {
                return Ok(Rotation {
                    secret_arn: info.arn,
                    token,
                    attempts: attempt,
                    elapsed: started.elapsed(),
                });
            }
            Err((step, e)) if e.is_refusal() || attempt >= retry.attempts => {
                return Err(EmulatorError::Failed {
                    secret_arn: info.arn,
                    step,
                    attempts: attempt,
                    last: e,
                });
            }
            Err((step, e)) => {
                tracing::warn!(secret = %info.arn, step, attempt, error = %ticketbound_runtime::error_chain(&e), "rotation step failed; Secrets Manager starts the rotation again");
                tokio::time::sleep(retry.pause).await;
            }
        }
    }
}

async fn run_steps(
    deps: &Deps,
    secret_arn: &str,
    token: &str,
) -> Result<(), (&'static str, RotateError)> {
    for step in Step::ALL {
        handle(deps, step_event(step, secret_arn, token))
            .await
            .map_err(|e| (step.as_str(), e))?;
    }
    Ok(())
}

/// The managed secrets whose rotation is due at `now`: a rotation function is
/// configured, and the interval has passed since the last rotation (or since the
/// secret was made).
pub async fn due(deps: &Deps, now: DateTime<Utc>) -> Result<Vec<SecretInfo>, VaultError> {
    let mut due = Vec::new();
    for secret in deps.enforcer.vault.list_managed().await? {
        let since = secret.last_rotated.or(secret.created);
        if secret.rotation_function_arn.is_none() {
            continue;
        }
        if let (Some(every), Some(since)) = (interval(deps, &secret).await, since)
            && since + every <= now
        {
            due.push(secret);
        }
    }
    Ok(due)
}

/// How often `secret` rotates: the rotation period its grant asked for (what the
/// provisioner configured), or failing that the secret's whole-day rule.
async fn interval(deps: &Deps, secret: &SecretInfo) -> Option<chrono::Duration> {
    let grant_id = secret.tag("grant-id").and_then(|id| id.parse().ok());
    if let Some(id) = grant_id
        && let Ok(Some(grant)) = deps.store.get_grant(id).await
    {
        return Some(chrono::Duration::hours(i64::from(
            grant.request.rotation_period.as_hours(),
        )));
    }
    secret.rotation_every_days.map(chrono::Duration::days)
}
