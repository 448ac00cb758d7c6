//! The inventory's view of Secrets Manager: every secret ticketbound does not manage,
//! each labelled with why it looks like a credential when its metadata says so (name,
//! description, tags, the service that owns them, rotation). Every one is listed, the
//! label is only a hint: a credential named `x1` with no description is listed too. No
//! value is ever read: ListSecrets returns none, and nothing here calls GetSecretValue.

use chrono::{DateTime, Utc};

use crate::credentials::{MANAGED_BY_TAG, to_utc};
use crate::{SecretsError, SecretsManager};

/// A secret that is not a grant's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnmanagedSecret {
    pub arn: String,
    pub name: String,
    /// Why it looks like a credential, when its metadata says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub looks_like: Option<String>,
    pub rotation_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owning_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// The day it was last read (Secrets Manager keeps the date only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed: Option<DateTime<Utc>>,
}

/// Words in a secret's name, description or tags that mark a credential. Matched as
/// whole words (`orders-db-password`, `api_key`), so `keyboard-layout` is not one.
const CREDENTIAL_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "credential",
    "credentials",
    "creds",
    "token",
    "apikey",
    "api-key",
    "key",
    "secret",
    "dsn",
    "login",
    "admin",
    "user",
    "username",
    "db",
    "database",
    "rds",
    "postgres",
    "postgresql",
    "pg",
    "mysql",
    "mariadb",
    "redis",
    "oauth",
    "jwt",
    "ssh",
    "private",
    "cert",
    "certificate",
    "webhook",
    "hmac",
];

/// The first credential word in `text`, if any.
fn credential_word(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    // `api-key` and `api_key` are one word to a reader: join neighbours too.
    let pairs = words.windows(2).map(|w| format!("{}-{}", w[0], w[1]));
    CREDENTIAL_WORDS.iter().copied().find(|cw| {
        words.contains(cw)
            || pairs.clone().any(|p| p == *cw)
            || (cw.len() > 4 && lower.contains(cw))
    })
}

/// Why a secret with this metadata looks like a credential, or `None`.
pub fn looks_like_credential(
    name: &str,
    description: Option<&str>,
    tags: &[(String, String)],
    owning_service: Option<&str>,
    rotation_enabled: bool,
) -> Option<String> {
    if let Some(service) = owning_service {
        return Some(format!("managed by {service} (a service's own credential)"));
    }
    if rotation_enabled {
        return Some("rotation is turned on".to_owned());
    }
    if let Some(w) = credential_word(name) {
        return Some(format!("its name says {w:?}"));
    }
    if let Some(w) = description.and_then(credential_word) {
        return Some(format!("its description says {w:?}"));
    }
    tags.iter()
        .find_map(|(k, v)| credential_word(k).or_else(|| credential_word(v)))
        .map(|w| format!("a tag says {w:?}"))
}

impl SecretsManager {
    /// Every secret not tagged `managed-by=ticketbound` (a tagged one no grant
    /// accounts for is the reconciler's orphan), not in `own` (ticketbound's own
    /// configuration: the targets' administrator secrets), not scheduled for deletion.
    /// Every page of ListSecrets.
    pub async fn list_unmanaged(
        &self,
        own: &[String],
    ) -> Result<Vec<UnmanagedSecret>, SecretsError> {
        let mut found = Vec::new();
        for entry in self.list_secrets(Vec::new()).await? {
            let (Some(arn), Some(name)) = (entry.arn(), entry.name()) else {
                continue;
            };
            let tags: Vec<(String, String)> = entry
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let managed = tags
                .iter()
                .any(|(k, v)| k == MANAGED_BY_TAG.0 && v == MANAGED_BY_TAG.1);
            let ours = own.iter().any(|o| o == name || o == arn);
            if managed || ours || entry.deleted_date().is_some() {
                continue;
            }
            let rotation_enabled = entry.rotation_enabled().unwrap_or(false);
            let looks_like = looks_like_credential(
                name,
                entry.description(),
                &tags,
                entry.owning_service(),
                rotation_enabled,
            );
            found.push(UnmanagedSecret {
                arn: arn.to_owned(),
                name: name.to_owned(),
                looks_like,
                rotation_enabled,
                owning_service: entry.owning_service().map(str::to_owned),
                created: entry.created_date().and_then(to_utc),
                last_accessed: entry.last_accessed_date().and_then(to_utc),
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_told_from_their_metadata() {
        let none: &[(String, String)] = &[];
        assert!(looks_like_credential("app/orders-db/password", None, none, None, false).is_some());
        assert!(looks_like_credential("payments_api_key", None, none, None, false).is_some());
        assert!(looks_like_credential("x", Some("Stripe API token"), none, None, false).is_some());
        assert!(looks_like_credential("rds!db-1234", None, none, Some("rds"), false).is_some());
        assert!(looks_like_credential("anything", None, none, None, true).is_some());
        let tagged = [("kind".to_owned(), "database-credentials".to_owned())];
        assert!(looks_like_credential("anything", None, &tagged, None, false).is_some());
        // Configuration that holds no credential, by its metadata.
        assert_eq!(
            looks_like_credential(
                "feature-flags/layout",
                Some("UI settings"),
                none,
                None,
                false
            ),
            None
        );
        assert_eq!(
            looks_like_credential("keyboard-layouts", None, none, None, false),
            None
        );
    }
}
