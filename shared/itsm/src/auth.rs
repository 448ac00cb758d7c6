//! Authenticating the sender of an inbound event. Comparisons are constant-time; a
//! failure says only what is logged internally, never to the sender.
//!
//! - Jira admin webhooks with a secret sign the raw body: `X-Hub-Signature:
//!   sha256=<hex HMAC-SHA256>`.
//! - ServiceNow has no signing of its own, so ticketbound defines one for it (and for
//!   generic senders): `X-Ticketbound-Timestamp: <unix seconds>` and
//!   `X-Ticketbound-Signature: v1=<HMAC-SHA256 of "<timestamp>.<body>", hex or base64>`, accepted
//!   within a replay window. A static bearer token is the documented weaker option.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a sender was not authenticated. For logs and metrics only: the HTTP answer is
/// a bare 401 whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the signature does not match")]
    Mismatch,
    #[error("the timestamp is outside the replay window")]
    OutsideWindow,
    /// The configured secret is too short to authenticate anyone (an empty one
    /// would let every sender sign): nothing is accepted until it is replaced.
    #[error("the configured secret is shorter than {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
}

/// The shortest signing secret or bearer token accepted: 32 bytes, as long as
/// HMAC-SHA256's output (a shorter key is the weaker link).
pub const MIN_SECRET_BYTES: usize = 32;

fn strong(secret: &[u8]) -> Result<(), AuthError> {
    if secret.trim_ascii().len() < MIN_SECRET_BYTES {
        return Err(AuthError::WeakSecret);
    }
    Ok(())
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

fn verify_hex(m: HmacSha256, hex_sig: &str, header: &'static str) -> Result<(), AuthError> {
    let expected = hex::decode(hex_sig.trim()).map_err(|_| AuthError::Malformed(header))?;
    m.verify_slice(&expected).map_err(|_| AuthError::Mismatch)
}

/// A MAC written as hex (64 characters) or base64 (what ServiceNow's
/// `GlideCertificateEncryption.generateMac` returns).
fn verify_hex_or_base64(m: HmacSha256, sig: &str, header: &'static str) -> Result<(), AuthError> {
    let sig = sig.trim();
    if sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return verify_hex(m, sig, header);
    }
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .map_err(|_| AuthError::Malformed(header))?;
    m.verify_slice(&expected).map_err(|_| AuthError::Mismatch)
}

/// The `X-Hub-Signature` value Jira sends for `body`.
pub fn hub_signature(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// Verifies Jira's `X-Hub-Signature: sha256=<hex>` over the raw body.
pub fn verify_hub_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), AuthError> {
    const NAME: &str = "X-Hub-Signature";
    strong(secret)?;
    let value = header.ok_or(AuthError::Missing(NAME))?;
    let hex_sig = value
        .strip_prefix("sha256=")
        .ok_or(AuthError::Malformed(NAME))?;
    let mut m = mac(secret);
    m.update(body);
    verify_hex(m, hex_sig, NAME)
}

/// The `X-Ticketbound-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn timestamped_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("v1={}", hex::encode(m.finalize().into_bytes()))
}

/// Verifies `X-Ticketbound-Timestamp` and `X-Ticketbound-Signature` at `now`.
pub fn verify_timestamped(
    secret: &[u8],
    body: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<(), AuthError> {
    const TS: &str = "X-Ticketbound-Timestamp";
    const SIG: &str = "X-Ticketbound-Signature";
    strong(secret)?;
    let ts_text = timestamp.ok_or(AuthError::Missing(TS))?;
    let signature = signature.ok_or(AuthError::Missing(SIG))?;
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| AuthError::Malformed(TS))?;
    let hex_sig = signature
        .strip_prefix("v1=")
        .ok_or(AuthError::Malformed(SIG))?;
    let mut m = mac(secret);
    m.update(ts_text.trim().as_bytes());
    m.update(b".");
    m.update(body);
    verify_hex_or_base64(m, hex_sig, SIG)?;
    // Checked after the signature, so that the timestamp is known to be the sender's.
    if (now.timestamp() - ts).abs() > window.num_seconds() {
        return Err(AuthError::OutsideWindow);
    }
    Ok(())
}

/// Verifies `Authorization: Bearer <token>` against the expected token.
pub fn verify_bearer(expected: &[u8], authorization: Option<&str>) -> Result<(), AuthError> {
    const NAME: &str = "Authorization";
    strong(expected)?;
    let value = authorization.ok_or(AuthError::Missing(NAME))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::Malformed(NAME))?;
    if expected.is_empty() || !bool::from(token.trim().as_bytes().ct_eq(expected)) {
        return Err(AuthError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"webhook-secret-for-the-auth-unit-tests";

    #[test]
    fn hub_signatures_verify_and_any_change_fails() {
        let body = br#"{"webhookEvent":"jira:issue_updated"}"#;
        let sig = hub_signature(SECRET, body);
        assert_eq!(verify_hub_signature(SECRET, body, Some(&sig)), Ok(()));
        assert_eq!(
            verify_hub_signature(SECRET, b"{}", Some(&sig)),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            verify_hub_signature(
                b"another-webhook-secret-of-32-bytes-or-more",
                body,
                Some(&sig)
            ),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            verify_hub_signature(SECRET, body, None),
            Err(AuthError::Missing("X-Hub-Signature"))
        );
        assert_eq!(
            verify_hub_signature(SECRET, body, Some("sha1=abc")),
            Err(AuthError::Malformed("X-Hub-Signature"))
        );
    }

    #[test]
    fn timestamped_signatures_have_a_replay_window() {
        let now = Utc::now();
        let body = b"{}";
        let ts = now.timestamp() - 100;
        let sig = timestamped_signature(SECRET, ts, body);
        let check = |ts: &str, sig: &str, window| {
            verify_timestamped(
                SECRET,
                body,
                Some(ts),
                Some(sig),
                now,
                Duration::seconds(window),
            )
        };
        assert_eq!(check(&ts.to_string(), &sig, 300), Ok(()));
        assert_eq!(
            check(&ts.to_string(), &sig, 60),
            Err(AuthError::OutsideWindow)
        );
        // Moving the timestamp into the window breaks the signature.
        assert_eq!(
            check(&now.timestamp().to_string(), &sig, 300),
            Err(AuthError::Mismatch)
        );
    }

    /// The attacker's signature made with an empty (or short) key, against an intake
    /// configured with one: refused whatever the signature, until the key is fixed.
    #[test]
    fn an_empty_or_short_secret_authenticates_nobody() {
        let body = br#"{"issue":{}}"#;
        for weak in [
            &b""[..],
            b"   ",
            b"short-secret",
            b"a-31-byte-secret-is-still-weak!",
        ] {
            let forged = hub_signature(weak, body);
            assert_eq!(
                verify_hub_signature(weak, body, Some(&forged)),
                Err(AuthError::WeakSecret)
            );
            let now = Utc::now();
            let forged = timestamped_signature(weak, now.timestamp(), body);
            assert_eq!(
                verify_timestamped(
                    weak,
                    body,
                    Some(&now.timestamp().to_string()),
                    Some(&forged),
                    now,
                    Duration::minutes(5)
                ),
                Err(AuthError::WeakSecret)
            );
        }
        assert_eq!(
            verify_bearer(b"short", Some("Bearer short")),
            Err(AuthError::WeakSecret)
        );
    }

    #[test]
    fn bearer_tokens_compare_exactly() {
        assert_eq!(
            verify_bearer(
                b"token-of-at-least-thirty-two-bytes",
                Some("Bearer token-of-at-least-thirty-two-bytes")
            ),
            Ok(())
        );
        assert_eq!(
            verify_bearer(
                b"token-of-at-least-thirty-two-bytes",
                Some("Bearer token-of-at-least-thirty-two-byte")
            ),
            Err(AuthError::Mismatch)
        );
        assert_eq!(
            verify_bearer(b"", Some("Bearer ")),
            Err(AuthError::WeakSecret)
        );
        assert_eq!(
            verify_bearer(b"token-of-at-least-thirty-two-bytes", Some("Basic dG9r")),
            Err(AuthError::Malformed("Authorization"))
        );
    }
}
