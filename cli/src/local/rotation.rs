//! Secrets Manager's rotation schedule on the local stack: the host rotates each
//! managed secret whose interval has passed, and `ticketbound rotate <grant id>`
//! rotates one now. Both go through `ticketbound_local::rotation`, which stages the
//! version and invokes the rotation function's four steps as Secrets Manager does;
//! the function it invokes is `secret-rotate`'s handler, wired here.

use chrono::Utc;
use secret_rotate::{Deps, RotateError};
use ticketbound_domain::GrantId;
use ticketbound_local::rotation::{self as emulator, RetryPolicy, Rotation, RotationFunction};
use ticketbound_local::stack::LocalStack;
use ticketbound_local::{meter, targets};
use ticketbound_runtime::EnvReader;

/// `secret-rotate` with `wiring.function`, as Secrets Manager invokes it: what
/// Secrets Manager itself does around the steps (describing the secret, staging the
/// version, reading the rotation period) goes through `wiring.secrets_manager`, so
/// that a meter on the function's clients counts only the function's own calls.
pub fn function(wiring: &RotationWiring) -> impl RotationFunction<Error = RotateError> + '_ {
    emulator::Function::new(
        &wiring.secrets_manager.enforcer.secrets_manager,
        &wiring.secrets_manager.store,
        |event| secret_rotate::handle(&wiring.function, event),
        RotateError::is_refusal,
    )
}

/// The rotation function and, beside it, the clients Secrets Manager's own side of
/// rotation uses (never the function's: see [`function`]).
#[derive(Debug)]
pub struct RotationWiring {
    pub secrets_manager: Deps,
    pub function: Deps,
}

impl RotationWiring {
    /// Both sides on the same clients, none counted (`ticketbound rotate`).
    pub async fn uncounted(stack: &LocalStack) -> Result<Self, crate::CliError> {
        Ok(Self {
            secrets_manager: rotate_deps(stack).await?,
            function: rotate_deps(stack).await?,
        })
    }

    /// As the host runs it: the function's calls counted (`meter`), Secrets
    /// Manager's not.
    pub async fn counted(stack: &LocalStack) -> Result<Self, crate::CliError> {
        Ok(Self {
            secrets_manager: rotate_deps(stack).await?,
            function: rotate_deps_counted(stack).await?,
        })
    }
}

/// The environment a deployed rotation function would have, pointed at the local stack.
pub fn rotate_env(stack: &LocalStack) -> Vec<(String, String)> {
    use secret_rotate::config as c;
    [
        (c::GRANTS_TABLE, stack.grants_table.clone()),
        (c::AUDIT_TABLE, stack.audit_table.clone()),
        (c::TARGETS, targets::targets_json(stack)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub async fn rotate_deps(stack: &LocalStack) -> Result<Deps, crate::CliError> {
    let sdk = stack.sdk_config().await;
    Deps::from_env(&sdk, EnvReader::from_map(rotate_env(stack))).map_err(crate::CliError::Config)
}

/// The rotation function as the host runs it: its calls counted (`meter`).
pub async fn rotate_deps_counted(stack: &LocalStack) -> Result<Deps, crate::CliError> {
    let sdk = stack
        .function_sdk_config(&meter::counts("secret-rotate"))
        .await;
    Deps::from_env(&sdk, EnvReader::from_map(rotate_env(stack))).map_err(crate::CliError::Config)
}

/// Rotates grant `id`'s credential now.
pub async fn rotate_grant(stack: &LocalStack, id: GrantId) -> Result<Rotation, crate::CliError> {
    rotate_grant_with(&RotationWiring::uncounted(stack).await?, id).await
}

/// Rotates grant `id`'s credential now, with `wiring`.
pub async fn rotate_grant_with(
    wiring: &RotationWiring,
    id: GrantId,
) -> Result<Rotation, crate::CliError> {
    let grant = wiring
        .secrets_manager
        .store
        .get_grant(id)
        .await?
        .ok_or_else(|| crate::CliError::NotFound(format!("grant {id}")))?;
    let Some(credential) = &grant.credential else {
        return Err(crate::CliError::NotFound(format!(
            "a credential for grant {id} (it is {})",
            grant.state
        )));
    };
    let rotation = emulator::rotate(
        &function(wiring),
        &credential.secret_arn,
        RetryPolicy::default(),
    )
    .await
    .map_err(|e| crate::CliError::Rotation(Box::new(e)))?;
    count_invocations(&rotation);
    Ok(rotation)
}

/// Secrets Manager invokes the function once per step: four per attempt.
fn count_invocations(rotation: &Rotation) {
    meter::invoked("secret-rotate", 4 * u64::from(rotation.attempts));
}

/// Rotates every managed secret that is due (the host calls this periodically):
/// what is due is looked for as Secrets Manager does itself, with its clients.
pub async fn rotate_due(wiring: &RotationWiring) {
    let due = match emulator::due(
        &wiring.secrets_manager.enforcer.secrets_manager,
        &wiring.secrets_manager.store,
        Utc::now(),
    )
    .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %ticketbound_runtime::error_chain(&e), "could not list the secrets due for rotation");
            return;
        }
    };
    for secret in due {
        match emulator::rotate(&self::function(wiring), &secret.arn, RetryPolicy::default()).await {
            Ok(r) => {
                count_invocations(&r);
                tracing::info!(secret = %r.secret_arn, version = %r.token, attempts = r.attempts, "rotated on schedule")
            }
            Err(e) => {
                tracing::warn!(secret = %secret.arn, error = %ticketbound_runtime::error_chain(&e), "scheduled rotation failed")
            }
        }
    }
}
