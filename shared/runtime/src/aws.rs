//! The one AWS SDK configuration a process builds, once, at start-up.
//!
//! Region, credentials and endpoint come from the standard sources; in particular
//! `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_<SERVICE>`) redirects
//! every client, which is how the local stack is reached. No code path knows
//! whether it talks to AWS or to the emulator.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the shared SDK configuration from the environment.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}
