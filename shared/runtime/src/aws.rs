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

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Whether an AWS call that failed may succeed if tried again: no answer, a broken
/// answer, a server-side failure (5xx), throttling (429), or one of the service's own
/// transient error `codes`.
pub fn is_transient<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
    codes: &[&str],
) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            let status = e.raw().status();
            status.is_server_error()
                || status.as_u16() == 429
                || e.err().code().is_some_and(|c| codes.contains(&c))
        }
        _ => false,
    }
}
