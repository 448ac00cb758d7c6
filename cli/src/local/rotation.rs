//! Secrets Manager's rotation schedule on the local stack: the host rotates each
//! managed secret whose interval has passed, and `ticketbound rotate <grant id>`
//! rotates one now. Both go through `secret_rotate::emulator`, which stages the
//! version and invokes the rotation function's four steps as Secrets Manager does.

use chrono::Utc;
use secret_rotate::Deps;
use secret_rotate::emulator::{self, RetryPolicy, Rotation};
use ticketbound_domain::GrantId;
use ticketbound_runtime::EnvReader;
use ticketbound_runtime::local::LocalStack;

use super::targets;

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

/// Rotates grant `id`'s credential now.
pub async fn rotate_grant(stack: &LocalStack, id: GrantId) -> Result<Rotation, crate::CliError> {
    let deps = rotate_deps(stack).await?;
    let grant = deps
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
    emulator::rotate(&deps, &credential.secret_arn, RetryPolicy::default())
        .await
        .map_err(|e| crate::CliError::Rotation(Box::new(e)))
}

/// Rotates every managed secret that is due (the host calls this periodically).
pub async fn rotate_due(deps: &Deps) {
    let due = match emulator::due(deps, Utc::now()).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %ticketbound_runtime::error_chain(&e), "could not list the secrets due for rotation");
            return;
        }
    };
    for secret in due {
        match emulator::rotate(deps, &secret.arn, RetryPolicy::default()).await {
            Ok(r) => {
                tracing::info!(secret = %r.secret_arn, version = %r.token, attempts = r.attempts, "rotated on schedule")
            }
            Err(e) => {
                tracing::warn!(secret = %secret.arn, error = %ticketbound_runtime::error_chain(&e), "scheduled rotation failed")
            }
        }
    }
}
