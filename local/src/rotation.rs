//! Secrets Manager's side of rotation, for the local stack (moto neither keeps
//! rotation schedules nor invokes rotation functions). Not used in AWS.
//!
//! For each rotation it does what Secrets Manager does: picks a token, stages it as
//! the AWSPENDING version (`RotateSecret` with that token), then invokes the four
//! steps in order with AWS's event shape, and when a step fails starts the whole
//! rotation again with the same token after a pause, a few times, before it gives
//! up. A refusal is not retried: the grant's state decides it, and the function has
//! already audited it.
//!
//! The rotation function is whatever the caller passes as a [`RotationFunction`]
//! (the CLI passes `secret-rotate`'s handler): this crate depends on no function.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use chrono::{DateTime, Utc};
use ticketbound_enforce::rotation::Step;
use ticketbound_secrets::credentials::SecretInfo;
use ticketbound_secrets::{SecretsError, SecretsManager};
use ticketbound_store::Store;

/// A rotation function as Secrets Manager sees it: invoked once per step with the
/// step's event, and either done or failed. It also says which of its failures are
/// refusals, which Secrets Manager's retries would only repeat.
pub trait RotationFunction {
    type Error: std::error::Error + 'static;

    /// Secrets Manager (emulated) as the function reaches it: where versions are
    /// staged and rotation rules kept.
    fn secrets_manager(&self) -> &SecretsManager;

    /// The grants, whose rotation period decides when a secret is due.
    fn store(&self) -> &Store;

    /// Invokes the function with one step's event.
    fn invoke(
        &self,
        event: SecretsManagerSecretRotationEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// True when `error` was a refusal on purpose rather than a failure.
    fn is_refusal(&self, error: &Self::Error) -> bool;
}

/// A [`RotationFunction`] made of its parts: the Secrets Manager and the grants it
/// reaches, a closure that invokes it, and its test for a refusal.
pub struct Function<'a, I, E> {
    secrets_manager: &'a SecretsManager,
    store: &'a Store,
    invoke: I,
    is_refusal: fn(&E) -> bool,
}

impl<'a, I, E> Function<'a, I, E> {
    pub fn new(
        secrets_manager: &'a SecretsManager,
        store: &'a Store,
        invoke: I,
        is_refusal: fn(&E) -> bool,
    ) -> Self {
        Self {
            secrets_manager,
            store,
            invoke,
            is_refusal,
        }
    }
}

impl<I, E> std::fmt::Debug for Function<'_, I, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").finish_non_exhaustive()
    }
}

impl<I, Fut, T, E> RotationFunction for Function<'_, I, E>
where
    I: Fn(SecretsManagerSecretRotationEvent) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send,
    E: std::error::Error + 'static,
{
    type Error = E;

    fn secrets_manager(&self) -> &SecretsManager {
        self.secrets_manager
    }

    fn store(&self) -> &Store {
        self.store
    }

    fn invoke(
        &self,
        event: SecretsManagerSecretRotationEvent,
    ) -> impl Future<Output = Result<(), E>> + Send {
        let invoked = (self.invoke)(event);
        async move { invoked.await.map(|_| ()) }
    }

    fn is_refusal(&self, error: &E) -> bool {
        (self.is_refusal)(error)
    }
}

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
pub enum EmulatorError<E: std::error::Error + 'static> {
    #[error("secret {0} does not exist")]
    NoSuchSecret(String),
    #[error("secret {0} has no rotation function configured")]
    NoRotationFunction(String),
    #[error("Secrets Manager (emulated) failed")]
    SecretsManager(#[from] SecretsError),
    #[error("rotation of {secret_arn} failed in {step} after {attempts} attempt(s)")]
    Failed {
        secret_arn: String,
        step: &'static str,
        attempts: u32,
        #[source]
        last: E,
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

/// Rotates `secret_id` once, now, with `function`.
pub async fn rotate<F: RotationFunction>(
    function: &F,
    secret_id: &str,
    retry: RetryPolicy,
) -> Result<Rotation, EmulatorError<F::Error>> {
    let started = Instant::now();
    let secrets_manager = function.secrets_manager();
    let info = secrets_manager
        .describe(secret_id)
        .await?
        .ok_or_else(|| EmulatorError::NoSuchSecret(secret_id.to_owned()))?;
    let function_arn = info
        .rotation_function_arn
        .clone()
        .ok_or_else(|| EmulatorError::NoRotationFunction(info.arn.clone()))?;
    let token = uuid::Uuid::new_v4().to_string();
    // moto keeps only whole-day rules (it drops `rate(N hours)` and then reports
    // rotation as disabled), so the version is staged with the interval in whole days,
    // rounded up; when rotations fall due is decided from the grant (see `due`).
    let days = interval(function.store(), &info)
        .await
        .map_or(1, |i| ((i.num_hours() + 23) / 24).max(1));
    secrets_manager
        .begin_rotation(&info.arn, &token, &function_arn, days)
        .await?;

    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_steps(function, &info.arn, &token).await {
            Ok(()) => {
                return Ok(Rotation {
                    secret_arn: info.arn,
                    token,
                    attempts: attempt,
                    elapsed: started.elapsed(),
                });
            }
            Err((step, e)) if function.is_refusal(&e) || attempt >= retry.attempts => {
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

async fn run_steps<F: RotationFunction>(
    function: &F,
    secret_arn: &str,
    token: &str,
) -> Result<(), (&'static str, F::Error)> {
    for step in Step::ALL {
        function
            .invoke(step_event(step, secret_arn, token))
            .await
            .map_err(|e| (step.as_str(), e))?;
    }
    Ok(())
}

/// The managed secrets of `secrets_manager` whose rotation is due at `now`: a rotation
/// function is configured, and the interval has passed since the last rotation (or
/// since the secret was made).
pub async fn due(
    secrets_manager: &SecretsManager,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Vec<SecretInfo>, SecretsError> {
    let mut due = Vec::new();
    for secret in secrets_manager.list_managed().await? {
        let since = secret.last_rotated.or(secret.created);
        if secret.rotation_function_arn.is_none() {
            continue;
        }
        if let (Some(every), Some(since)) = (interval(store, &secret).await, since)
            && since + every <= now
        {
            due.push(secret);
        }
    }
    Ok(due)
}

/// How often `secret` rotates: the rotation period its grant asked for (what the
/// provisioner configured), or failing that the secret's whole-day rule.
async fn interval(store: &Store, secret: &SecretInfo) -> Option<chrono::Duration> {
    let grant_id = secret.tag("grant-id").and_then(|id| id.parse().ok());
    if let Some(id) = grant_id
        && let Ok(Some(grant)) = store.get_grant(id).await
    {
        return Some(chrono::Duration::hours(i64::from(
            grant.request.rotation_period.as_hours(),
        )));
    }
    secret.rotation_every_days.map(chrono::Duration::days)
}
