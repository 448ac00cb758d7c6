//! Connectors: where a grant stops being a record and becomes enforcement.
//!
//! A connector creates the credential for a grant at its target system, kills it again
//! (with any session it holds), and reports what the target really has, for the
//! reconciler. Every operation is idempotent, because every caller may be retried.
//!
//! **Overlapping grants.** Each grant gets a credential of its own (a login role named
//! after the identity *and* the grant), so two live grants for the same identity at
//! the same target never share anything: revoking one cannot take away what the other
//! still covers, and each dies on its own not-after time.
//!
//! This crate knows the target systems and nothing of AWS.

pub mod postgres;
pub mod tls;

use ticketbound_domain::{Grant, Permission};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("scope {refused:?} is outside the target's allow-list; nothing was created")]
    ScopeNotAllowed { refused: Vec<String> },
    #[error("scope role {0:?} does not exist at the target; nothing was created")]
    UnknownScopeRole(String),
    #[error("the target refused or failed: {operation}")]
    Database {
        operation: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("could not connect to the target")]
    Connect(#[source] tokio_postgres::Error),
    #[error("the target's CA bundle {ca_file} {problem}")]
    Tls { ca_file: String, problem: String },
    #[error("login role {0:?} is not one of the grant's own; nothing was changed")]
    NotTheGrantsRole(String),
    #[error("scope role(s) would give the grantee more than the scope: {}; nothing was created", .0.join("; "))]
    UnsafeScopeRole(Vec<String>),
    #[error("the revocation is not proven at the target: {0}")]
    NotProven(String),
}

impl TargetError {
    /// True when trying again later may succeed (the target was unreachable or
    /// busy); false when the request itself is at fault.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Database { source, .. } => {
                source.as_db_error().is_none()
                    || source.is_closed()
                    || source.code().is_some_and(is_concurrency_conflict)
            }
            // What was not proven dead is tried again until it is.
            Self::NotProven(_) => true,
            Self::ScopeNotAllowed { .. }
            | Self::UnknownScopeRole(_)
            | Self::NotTheGrantsRole(_)
            | Self::UnsafeScopeRole(_)
            | Self::Tls { .. } => false,
        }
    }
}

/// Errors a second writer of the same catalogue rows causes (two revocations, or a
/// revocation and an issue, of one grant at once): trying again converges.
fn is_concurrency_conflict(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        // lock_timeout and statement_timeout of the administrator's sessions.
        SqlState::QUERY_CANCELED,
        // "tuple concurrently updated" is an internal error (XX000).
        SqlState::INTERNAL_ERROR,
        // A role or object another revocation dropped between our look-up and use.
        SqlState::UNDEFINED_OBJECT,
    ]
    .contains(code)
}

/// The login name a grant's credential has at the target: the identity's name and
/// the grant's id, so that it says whose it is and never collides with another grant.
pub fn principal_name(grant: &Grant) -> String {
    let identity = grant.request.identity.name.as_str().replace('-', "_");
    format!("tb_{identity}_{}", grant.id.to_string().to_lowercase())
}

/// The second login role of a grant whose credential rotates with alternating users:
/// the rotation that makes one login current leaves the other working until the next
/// rotation. It fits PostgreSQL's 63-byte names for every identity name (the identity
/// part is shortened if it must be; the grant id keeps it unique).
pub fn alternate_principal_name(grant: &Grant) -> String {
    let identity = grant.request.identity.name.as_str().replace('-', "_");
    let identity = &identity[..identity.len().min(30)];
    format!("tb_{identity}_{}_b", grant.id.to_string().to_lowercase())
}

/// Both login roles a grant may have at a target (the second only exists once an
/// alternating-users rotation made it).
pub fn principal_names(grant: &Grant) -> [String; 2] {
    [principal_name(grant), alternate_principal_name(grant)]
}

/// The scope permissions not in `allowed`, in order.
pub fn outside_allow_list<'a>(
    scope: impl Iterator<Item = &'a Permission>,
    allowed: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    scope
        .filter(|p| !allowed.contains(p.as_str()))
        .map(|p| p.to_string())
        .collect()
}
