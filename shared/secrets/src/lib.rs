//! The Secrets Manager adapter. It owns every Secrets Manager SDK type; values leave
//! it only as [`SecretString`], which never prints.
//!
//! [`SecretCache`] serves configuration secrets (webhook signing keys, ITSM API
//! credentials) from memory, refetching them after a time-to-live so that a rotated
//! secret is picked up without a restart, and on demand when a signature fails to
//! verify (at most once per `min_refresh`, so that a flood of bad signatures cannot
//! turn into a flood of Secrets Manager calls).
//!
//! AWS Secrets Manager, not HashiCorp Vault (the crate was `ticketbound-vault`). Of
//! ticketbound's crates it depends on `ticketbound-runtime` only: never on a function,
//! and never on the local stack (`ticketbound-local`), since Lambdas link it.

pub mod credentials;
pub mod inventory;
pub mod rotation;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use ticketbound_runtime::{EnvReader, ExposeSecret, SecretString, vars};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secret {0} does not exist")]
    NotFound(String),
    #[error("secret {0} has no string value")]
    NotAString(String),
    #[error("Secrets Manager {operation} failed for {secret_id}")]
    Call {
        operation: &'static str,
        secret_id: String,
        retryable: bool,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl SecretsError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Call {
                retryable: true,
                ..
            }
        )
    }

    fn call<E>(operation: &'static str, secret_id: &str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: StdError + ProvideErrorMetadata + Send + Sync + 'static,
    {
        if err.code() == Some("ResourceNotFoundException") {
            return Self::NotFound(secret_id.to_owned());
        }
        let retryable = ticketbound_runtime::aws::is_transient(
            &err,
            &[
                "ThrottlingException",
                "InternalServiceError",
                "InternalServiceErrorException",
            ],
        );
        Self::Call {
            operation,
            secret_id: secret_id.to_owned(),
            retryable,
            source: Box::new(err),
        }
    }
}

/// Secrets Manager for the credentials ticketbound issues (see [`credentials`]).
#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

struct Entry {
    value: SecretString,
    fetched: Instant,
}

/// Configuration secrets, cached.
pub struct SecretCache {
    secrets_manager: SecretsManager,
    ttl: Duration,
    min_refresh: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCache")
            .field("ttl", &self.ttl)
            .field("min_refresh", &self.min_refresh)
            .finish_non_exhaustive()
    }
}

impl SecretCache {
    /// Reads how long a value is served from memory (`TICKETBOUND_SECRET_CACHE_SECS`,
    /// 300 seconds unless set), for every function that keeps a cache.
    pub fn read_ttl(env: &mut EnvReader) -> Duration {
        Duration::from_secs(env.or_default(vars::SECRET_CACHE_SECS, "a number of seconds", 300))
    }

    /// `ttl`: how long a value is served before it is fetched again; `min_refresh`:
    /// how soon a forced refresh may follow the last fetch.
    pub fn new(client: Client, ttl: Duration, min_refresh: Duration) -> Self {
        Self {
            secrets_manager: SecretsManager::new(client),
            ttl,
            min_refresh,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The secret's current string value.
    pub async fn get(&self, secret_id: &str) -> Result<SecretString, SecretsError> {
        {
            let entries = self.entries.lock().await;
            if let Some(e) = entries.get(secret_id)
                && e.fetched.elapsed() < self.ttl
            {
                return Ok(e.value.clone());
            }
        }
        self.fetch(secret_id).await
    }

    /// Fetches the value again if the cached one is older than `min_refresh`, and
    /// returns it only if it changed: the caller retries its check with it.
    pub async fn refresh(&self, secret_id: &str) -> Result<Option<SecretString>, SecretsError> {
        let previous = {
            let entries = self.entries.lock().await;
            match entries.get(secret_id) {
                Some(e) if e.fetched.elapsed() < self.min_refresh => return Ok(None),
                Some(e) => Some(e.value.clone()),
                None => None,
            }
        };
        let fresh = self.fetch(secret_id).await?;
        let changed = previous.is_none_or(|p| p.expose_secret() != fresh.expose_secret());
        Ok(changed.then_some(fresh))
    }

    async fn fetch(&self, secret_id: &str) -> Result<SecretString, SecretsError> {
        let value = self.secrets_manager.read(secret_id).await?;
        tracing::debug!(secret_id, "fetched configuration secret");
        self.entries.lock().await.insert(
            secret_id.to_owned(),
            Entry {
                value: value.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(value)
    }
}
