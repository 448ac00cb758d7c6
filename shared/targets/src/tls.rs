//! How ticketbound reaches a target: TLS with the server's certificate verified
//! against a CA bundle the operator gives and its name checked against the host
//! (libpq's `verify-full`), or, where the operator says so, in the clear. A connector
//! never falls back from one to the other.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::TargetError;

/// The transport to a target.
#[derive(Clone)]
pub enum Transport {
    /// TLS, the chain verified against the bundle and the host name against the
    /// certificate (`verify-full`).
    VerifyFull(MakeRustlsConnect),
    /// No TLS: passwords and data in the clear. Only for a target the operator
    /// configured so; `ticketbound targets` reports it as a problem.
    Plaintext,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::VerifyFull(_) => "VerifyFull",
            Self::Plaintext => "Plaintext",
        })
    }
}

impl Transport {
    /// TLS verified against the PEM CA bundle at `ca_file` (RDS's `global-bundle.pem`,
    /// say, packaged with the function).
    pub fn verify_full(ca_file: &Path) -> Result<Self, TargetError> {
        let bad = |problem: String| TargetError::Tls {
            ca_file: ca_file.display().to_string(),
            problem,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| bad(format!("cannot be read: {e}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("is not a PEM bundle: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad("holds no usable CA certificate".into()));
        }
        // The provider named, not the process default: the AWS SDK and this crate
        // link two, and rustls refuses to guess between them.
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self::VerifyFull(MakeRustlsConnect::new(config)))
    }

    /// True when the connection is encrypted and the server verified.
    pub fn is_verified(&self) -> bool {
        match self {
            Self::VerifyFull(_) => true,
            Self::Plaintext => false,
        }
    }
}
