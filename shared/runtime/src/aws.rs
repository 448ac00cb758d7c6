//! The one AWS SDK configuration a process builds, once, at start-up.
//!
//! Functions build theirs from what Lambda puts in their environment
//! ([`lambda_sdk_config`]): the region, the execution role's credentials and, for the
//! local stack and the benchmarks, `AWS_ENDPOINT_URL`. They do not run the SDK's
//! credential-provider chain: inside Lambda the chain always ends at those variables,
//! and its other links (profile files, SSO, STS web identity, ECS, IMDS) cost start-up
//! time and about a megabyte of code in every package. Their HTTPS client trusts only
//! the Amazon Trust Services roots AWS endpoints chain to, compiled in: loading the
//! system trust store took most of a function's extra start-up time
//! (`scripts/bench`), and nothing a function calls through the SDK needs any other
//! root. No code path knows whether it talks to AWS or to the emulator.
//!
//! The CLI, run by an operator against a deployment, uses the full chain
//! ([`sdk_config_from_chain`]).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{ConfigError, EnvReader, VarProblem};

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, as PEM.
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("../certs/amazon-trust-services.pem");

/// The variables [`lambda_sdk_config`] reads (Lambda sets all but the endpoint).
pub const LAMBDA_VARIABLES: &[&str] = &[
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
];

#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the HTTPS client's trust store could not be built")]
    Tls(#[source] aws_smithy_http_client::HttpClientError),
}

/// The SDK configuration of a function, from the environment Lambda gives it.
pub fn lambda_sdk_config(mut env: EnvReader) -> Result<SdkConfig, AwsConfigError> {
    let region: Option<String> = env.required("AWS_REGION", "an AWS region, e.g. eu-west-1");
    let key_id: Option<String> = env.required(
        "AWS_ACCESS_KEY_ID",
        "the execution role's access key id (Lambda sets it)",
    );
    let secret: Option<String> = env.required(
        "AWS_SECRET_ACCESS_KEY",
        "the execution role's secret access key (Lambda sets it)",
    );
    let token: Option<String> = env.optional("AWS_SESSION_TOKEN", "a session token");
    let endpoint: Option<String> = env.optional("AWS_ENDPOINT_URL", "an http(s) URL");
    if let Some(url) = &endpoint
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        env.problem(
            "AWS_ENDPOINT_URL",
            VarProblem::Malformed {
                expected: "an http(s) URL".to_owned(),
            },
        );
    }
    env.finish()?;
    let (Some(region), Some(key_id), Some(secret)) = (region, key_id, secret) else {
        // finish() has reported each of these missing.
        return Err(ConfigError {
            problems: Vec::new(),
        }
        .into());
    };
    let credentials = Credentials::new(key_id, secret, token, None, "lambda-environment");
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(amazon_trust_https_client().map_err(AwsConfigError::Tls)?);
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    Ok(config.build())
}

/// The SDK's default HTTPS client (hyper 1, rustls on aws-lc, proxy settings from the
/// environment) with a trust store of the Amazon Trust Services roots only.
pub fn amazon_trust_https_client()
-> Result<SharedHttpClient, aws_smithy_http_client::HttpClientError> {
    let trust = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS))
        .build()?;
    Ok(
        Builder::new().build_with_connector_fn(move |settings, components| {
            let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ));
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.set_tls_context(trust.clone());
            connector.build()
        }),
    )
}

/// The SDK configuration from the standard chain (profiles, SSO, environment,
/// instance roles): for the operator's CLI. `AWS_ENDPOINT_URL` and the per-service
/// `AWS_ENDPOINT_URL_<SERVICE>` redirect every client.
pub async fn sdk_config_from_chain() -> SdkConfig {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::*;

    fn lambda_env(vars: &[(&str, &str)]) -> EnvReader {
        EnvReader::from_map(vars.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn the_trust_store_is_the_five_amazon_trust_services_roots() {
        let roots: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(roots.len(), 5);
        // Where the system store has them (Debian's ca-certificates), they are the same
        // bytes: nothing was altered on the way into the repository.
        for (name, ours) in [
            "Amazon_Root_CA_1",
            "Amazon_Root_CA_2",
            "Amazon_Root_CA_3",
            "Amazon_Root_CA_4",
            "Starfield_Services_Root_Certificate_Authority_-_G2",
        ]
        .iter()
        .zip(&roots)
        {
            if let Ok(pem) = std::fs::read(format!("/etc/ssl/certs/{name}.pem")) {
                let system = CertificateDer::from_pem_slice(&pem).unwrap();
                assert_eq!(&system, ours, "{name} differs from the system store's");
            }
        }
        assert!(amazon_trust_https_client().is_ok());
    }

    #[test]
    fn a_function_takes_region_credentials_and_endpoint_from_its_environment() {
        let config = lambda_sdk_config(lambda_env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "not-a-real-secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ]))
        .unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
        assert!(config.credentials_provider().is_some());
        assert!(config.http_client().is_some());
    }

    #[test]
    fn missing_credentials_are_named_and_no_value_is_repeated() {
        let err = lambda_sdk_config(lambda_env(&[
            ("AWS_SECRET_ACCESS_KEY", "hunter2-secret"),
            ("AWS_ENDPOINT_URL", "ftp://hunter2-endpoint"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("AWS_REGION is not set"), "{err}");
        assert!(err.contains("AWS_ACCESS_KEY_ID is not set"), "{err}");
        assert!(err.contains("AWS_ENDPOINT_URL is malformed"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
