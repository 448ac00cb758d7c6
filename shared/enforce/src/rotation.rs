//! Rotation of a live grant's credential, in the four steps Secrets Manager calls a
//! rotation function with, each keyed by the token of the version being made:
//!
//! 1. **createSecret**: the pending value (a new password; with alternating users, for
//!    the login not in use) is stored as version `token`, labelled AWSPENDING;
//! 2. **setSecret**: the target is given it (the role made or its password set, with
//!    exactly the grant's scope and end);
//! 3. **testSecret**: a login with it succeeds where a workload would log in;
//! 4. **finishSecret**: AWSCURRENT moves to `token` (Secrets Manager labels the version
//!    it left AWSPREVIOUS) and AWSPENDING is removed, so exactly one of each remains.
//!
//! Secrets Manager starts the whole rotation again with the same token when a step
//! fails, so every step first looks at what an earlier attempt left and completes
//! it rather than doing it twice. Whether the grant may be rotated at all (Active,
//! before its not-after time) is the caller's decision, taken before each step.

use std::str::FromStr;

use ticketbound_domain::Grant;
use ticketbound_runtime::{ExposeSecret, SecretString};
use ticketbound_secrets::credentials::{DatabaseSecret, MANAGED_BY_TAG, SecretInfo};
use ticketbound_secrets::rotation::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use ticketbound_targets::postgres;
use ticketbound_targets::{TargetError, alternate_principal_name, principal_name};

use crate::{EnforceError, Enforcer, RotationStrategy, TargetConfig};

/// The step Secrets Manager asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    pub const ALL: [Step; 4] = [
        Self::CreateSecret,
        Self::SetSecret,
        Self::TestSecret,
        Self::FinishSecret,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateSecret => "createSecret",
            Self::SetSecret => "setSecret",
            Self::TestSecret => "testSecret",
            Self::FinishSecret => "finishSecret",
        }
    }
}

impl FromStr for Step {
    type Err = Refusal;
    fn from_str(s: &str) -> Result<Self, Refusal> {
        Self::ALL
            .into_iter()
            .find(|step| step.as_str() == s)
            .ok_or_else(|| Refusal::UnknownStep(s.to_owned()))
    }
}

/// Why a rotation request is refused. Nothing has changed anywhere when one is
/// returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "unknown rotation step {0:?}: expected createSecret, setSecret, testSecret or finishSecret"
    )]
    UnknownStep(String),
    #[error("secret {0} does not exist")]
    NoSuchSecret(String),
    #[error("secret {0} is scheduled for deletion")]
    SecretDeleted(String),
    #[error("secret {0} is not managed by ticketbound (it has no managed-by=ticketbound tag)")]
    NotManaged(String),
    #[error("secret {0} has no usable grant-id tag")]
    NoGrantTag(String),
    #[error("secret {0} does not have rotation enabled")]
    RotationDisabled(String),
    #[error("token {token} is not a version of secret {secret}")]
    TokenNotStaged { secret: String, token: String },
    #[error("version {token} of secret {secret} is not labelled AWSPENDING")]
    TokenNotPending { secret: String, token: String },
    #[error("version {token} of secret {secret} has no value yet: createSecret has not run")]
    PendingMissing { secret: String, token: String },
    #[error("secret {secret} is not the credential grant {grant_id} holds")]
    NotTheGrantsSecret { secret: String, grant_id: String },
    #[error(
        "version {token} of secret {secret} holds a pending value ticketbound did not write; it is not given to the target"
    )]
    ForeignPending { secret: String, token: String },
}

/// Where createSecret records what it is about to store as the pending value (a
/// digest, never the value), so that a retried createSecret and setSecret trust only
/// a pending value ticketbound wrote itself: one put there by anyone else who could
/// call `PutSecretValue` would otherwise become the target's password, known to them.
/// The function implements it over the grants table; the enforcer knows no DynamoDB.
#[allow(async_fn_in_trait)] // implemented and called with generics, never boxed
pub trait PendingWitness {
    /// The digest recorded for `token` of the grant's secret, if any.
    async fn recorded(&self, grant: &Grant, token: &str) -> Result<Option<String>, WitnessError>;
    /// Records `digest` for `token`, before the value is stored.
    async fn record(&self, grant: &Grant, token: &str, digest: &str) -> Result<(), WitnessError>;
}

/// A witness's failure, with its source.
pub type WitnessError = Box<dyn std::error::Error + Send + Sync>;

/// The digest a [`PendingWitness`] keeps of a pending value: SHA-256, in hex. The
/// values are random passwords of 32 characters or more, so the digest gives nothing
/// away.
pub fn pending_digest(value: &SecretString) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(value.expose_secret().as_bytes()))
}

/// Refuses `value` as the pending value of `request` unless `witness` recorded its
/// digest (compared in constant time).
async fn ensure_witnessed(
    grant: &Grant,
    request: &RotationRequest,
    witness: &impl PendingWitness,
    value: &SecretString,
) -> Result<(), EnforceError> {
    use subtle::ConstantTimeEq as _;
    let recorded = witness
        .recorded(grant, &request.token)
        .await
        .map_err(EnforceError::Witness)?;
    let digest = pending_digest(value);
    if recorded.is_some_and(|r| bool::from(r.as_bytes().ct_eq(digest.as_bytes()))) {
        return Ok(());
    }
    Err(Refusal::ForeignPending {
        secret: request.secret.arn.clone(),
        token: request.token.clone(),
    }
    .into())
}

/// A rotation request checked against what Secrets Manager holds.
#[derive(Debug, Clone)]
pub struct RotationRequest {
    pub secret: SecretInfo,
    pub token: String,
    /// The grant named by the secret's `grant-id` tag.
    pub grant_id: String,
    /// `token` is already AWSCURRENT: an earlier finishSecret completed the rotation.
    pub already_current: bool,
}

/// What createSecret did.
#[derive(Debug, Clone)]
pub struct Created {
    /// False when an earlier attempt had already stored the pending value.
    pub fresh: bool,
    /// The login the pending value is for (database targets).
    pub login: Option<String>,
    /// The pending value now stored at the token: written by this call, or an earlier
    /// attempt's that the witness recorded. A caller that keeps it for the later steps
    /// of the same token (see [`Known`]) need not read it back.
    pub value: SecretString,
}

/// What an earlier step of the same rotation token in this process learned and a
/// later step may use instead of asking again: the pending value createSecret stored
/// (and recorded with the witness) and the login it is for. Secrets Manager changes
/// neither between the steps of one token; anything that went wrong in between makes
/// a step fail, and the caller forgets what it knew and starts from the secret again.
#[derive(Debug, Clone, Default)]
pub struct Known<'a> {
    pub pending: Option<&'a SecretString>,
    pub login: Option<&'a str>,
}

/// What finishSecret left: one AWSCURRENT (the token) and one AWSPREVIOUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub previous_version: Option<String>,
    pub current_version: String,
    /// The login now current (database targets).
    pub login: Option<String>,
    /// False when an earlier finishSecret had already moved AWSCURRENT.
    pub moved: bool,
}

impl Enforcer {
    /// Checks that `secret_id` is a ticketbound credential with rotation enabled and
    /// that `token` is a version staged for this rotation (or already made current).
    pub async fn rotation_request(
        &self,
        secret_id: &str,
        token: &str,
    ) -> Result<RotationRequest, EnforceError> {
        let Some(secret) = self.secrets_manager.describe(secret_id).await? else {
            return Err(Refusal::NoSuchSecret(secret_id.to_owned()).into());
        };
        if secret.deleted {
            return Err(Refusal::SecretDeleted(secret.arn).into());
        }
        if secret.tag(MANAGED_BY_TAG.0) != Some(MANAGED_BY_TAG.1) {
            return Err(Refusal::NotManaged(secret.arn).into());
        }
        let Some(grant_id) = secret.tag("grant-id").map(str::to_owned) else {
            return Err(Refusal::NoGrantTag(secret.arn).into());
        };
        if !secret.rotation_enabled {
            return Err(Refusal::RotationDisabled(secret.arn).into());
        }
        let Some(stages) = secret.stages(token) else {
            return Err(Refusal::TokenNotStaged {
                secret: secret.arn,
                token: token.to_owned(),
            }
            .into());
        };
        let already_current = stages.contains(AWSCURRENT);
        if !already_current && !stages.contains(AWSPENDING) {
            return Err(Refusal::TokenNotPending {
                secret: secret.arn,
                token: token.to_owned(),
            }
            .into());
        }
        Ok(RotationRequest {
            secret,
            token: token.to_owned(),
            grant_id,
            already_current,
        })
    }

    /// createSecret: stores the new value as the pending version, unless an earlier
    /// attempt did. A pending value that another version also holds is not a new
    /// credential and is replaced: AWS stages the version empty, but an emulator that
    /// copies an older value into it must not turn a rotation into a step back to an
    /// old password.
    ///
    /// A pending value found at the token is kept only if `witness` recorded it:
    /// anything else is refused ([`Refusal::ForeignPending`]), not overwritten, so
    /// that an operator sees it.
    pub async fn create_pending(
        &self,
        grant: &Grant,
        request: &RotationRequest,
        witness: &impl PendingWitness,
    ) -> Result<Created, EnforceError> {
        let arn = &request.secret.arn;
        let current = self.current_value(&request.secret).await?;
        let pending = self
            .secrets_manager
            .read_version(arn, &request.token, AWSPENDING)
            .await?;
        let target = self.target(grant)?;
        if let Some(pending) = pending
            && pending.expose_secret() != current.expose_secret()
            && !self
                .secrets_manager
                .another_version_holds(arn, &request.token, &pending)
                .await?
        {
            ensure_witnessed(grant, request, witness, &pending).await?;
            return Ok(Created {
                fresh: false,
                login: login_of(target, &pending),
                value: pending,
            });
        }

        let password = self.secrets_manager.random_password().await?;
        let TargetConfig::Postgres {
            host,
            port,
            dbname,
            rotation,
            ..
        } = target;
        let in_use = DatabaseSecret::from_secret(&current)
            .ok_or_else(|| EnforceError::UnreadableSecret(arn.clone()))?
            .username;
        let login = next_login(grant, &in_use, *rotation)?;
        let value = DatabaseSecret {
            engine: "postgres".into(),
            host: host.clone(),
            port: *port,
            username: login.clone(),
            password: password.expose_secret().to_owned(),
            dbname: dbname.clone(),
        }
        .to_secret();
        let login = Some(login);
        witness
            .record(grant, &request.token, &pending_digest(&value))
            .await
            .map_err(EnforceError::Witness)?;
        self.secrets_manager
            .put_pending(arn, &request.token, &value)
            .await?;
        Ok(Created {
            fresh: true,
            login,
            value,
        })
    }

    /// setSecret: gives the target the pending credential, if `witness` recorded it
    /// (else [`Refusal::ForeignPending`]). Repeating it sets the same password again.
    /// With the value createSecret stored in this process (`known.pending`), neither
    /// the secret nor the witness is asked again: it is the value the witness recorded.
    pub async fn set_pending(
        &self,
        grant: &Grant,
        request: &RotationRequest,
        witness: &impl PendingWitness,
        known: &Known<'_>,
    ) -> Result<(), EnforceError> {
        let target = self.target(grant)?;
        let value = match known.pending {
            Some(value) => value.clone(),
            None => {
                let value = self.pending_value(request).await?;
                ensure_witnessed(grant, request, witness, &value).await?;
                value
            }
        };
        let pending = DatabaseSecret::from_secret(&value)
            .ok_or_else(|| EnforceError::UnreadableSecret(request.secret.arn.clone()))?;
        self.issuing_connector(target)
            .await?
            .set(
                grant,
                &pending.username,
                &SecretString::from(pending.password.clone()),
            )
            .await?;
        Ok(())
    }

    /// testSecret: logs in with the pending credential where a workload would.
    pub async fn test_pending(
        &self,
        grant: &Grant,
        request: &RotationRequest,
    ) -> Result<(), EnforceError> {
        let TargetConfig::Postgres {
            host,
            port,
            dbname,
            tls,
            ca_file,
            ..
        } = self.target(grant)?;
        let pending = self.pending_database_secret(request).await?;
        postgres::login(
            host,
            *port,
            dbname,
            &pending.username,
            &SecretString::from(pending.password.clone()),
            &self.transports.get(*tls, ca_file.as_deref())?,
        )
        .await?;
        Ok(())
    }

    /// finishSecret: makes the token AWSCURRENT and removes AWSPENDING from it. The
    /// login now current is `known.login` when createSecret said it in this process,
    /// else read from the secret.
    pub async fn finish_rotation(
        &self,
        grant: &Grant,
        request: &RotationRequest,
        known: &Known<'_>,
    ) -> Result<Finished, EnforceError> {
        let arn = &request.secret.arn;
        let token = request.token.as_str();
        let current = request.secret.version_with(AWSCURRENT).map(str::to_owned);
        let moved = current.as_deref() != Some(token);
        let previous = if moved {
            self.secrets_manager
                .move_stage(arn, AWSCURRENT, Some(token), current.as_deref())
                .await?;
            current
        } else {
            request.secret.version_with(AWSPREVIOUS).map(str::to_owned)
        };
        if request
            .secret
            .stages(token)
            .is_some_and(|s| s.contains(AWSPENDING))
        {
            self.secrets_manager
                .move_stage(arn, AWSPENDING, None, Some(token))
                .await?;
        }
        let login = match known.login {
            Some(login) => Some(login.to_owned()),
            None => login_of(self.target(grant)?, &self.secrets_manager.read(arn).await?),
        };
        Ok(Finished {
            previous_version: previous,
            current_version: token.to_owned(),
            login,
            moved,
        })
    }

    async fn current_value(&self, secret: &SecretInfo) -> Result<SecretString, EnforceError> {
        let unreadable = || EnforceError::UnreadableSecret(secret.arn.clone());
        let version = secret.version_with(AWSCURRENT).ok_or_else(unreadable)?;
        self.secrets_manager
            .read_version(&secret.arn, version, AWSCURRENT)
            .await?
            .ok_or_else(unreadable)
    }

    async fn pending_database_secret(
        &self,
        request: &RotationRequest,
    ) -> Result<DatabaseSecret, EnforceError> {
        let value = self.pending_value(request).await?;
        DatabaseSecret::from_secret(&value)
            .ok_or_else(|| EnforceError::UnreadableSecret(request.secret.arn.clone()))
    }

    /// The value of the version being made (AWSCURRENT once finishSecret moved it).
    async fn pending_value(&self, request: &RotationRequest) -> Result<SecretString, EnforceError> {
        let arn = &request.secret.arn;
        let stage = if request.already_current {
            AWSCURRENT
        } else {
            AWSPENDING
        };
        Ok(self
            .secrets_manager
            .read_version(arn, &request.token, stage)
            .await?
            .ok_or_else(|| Refusal::PendingMissing {
                secret: arn.clone(),
                token: request.token.clone(),
            })?)
    }
}

/// The login the next credential is for: with alternating users the one not in use,
/// otherwise the same. A login that is not the grant's own is refused (a secret edited
/// by hand must not turn rotation against another role).
fn next_login(
    grant: &Grant,
    in_use: &str,
    strategy: RotationStrategy,
) -> Result<String, TargetError> {
    let (primary, alternate) = (principal_name(grant), alternate_principal_name(grant));
    if in_use != primary && in_use != alternate {
        return Err(TargetError::NotTheGrantsRole(in_use.to_owned()));
    }
    Ok(match strategy {
        RotationStrategy::SingleUser => in_use.to_owned(),
        RotationStrategy::AlternatingUsers if in_use == primary => alternate,
        RotationStrategy::AlternatingUsers => primary,
    })
}

fn login_of(target: &TargetConfig, value: &SecretString) -> Option<String> {
    match target {
        TargetConfig::Postgres { .. } => DatabaseSecret::from_secret(value).map(|s| s.username),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    /// A grant from the generic fixture, with the longest identity name there can be.
    fn grant() -> Grant {
        let draft: ticketbound_domain::RequestDraft = serde_json::from_str(include_str!(
            "../../../tests/fixtures/generic/approved-request.json"
        ))
        .unwrap_or_else(|e| panic!("fixture: {e}"));
        // The fixture's approvals are of this morning.
        let now = Utc
            .with_ymd_and_hms(2026, 11, 29, 10, 0, 0)
            .single()
            .unwrap_or_else(Utc::now);
        let mut request = draft
            .validate(now)
            .unwrap_or_else(|e| panic!("fixture: {e:?}"));
        request.identity.name = ticketbound_domain::IdentityName::new("a".repeat(32))
            .unwrap_or_else(|e| panic!("{e:?}"));
        request.not_after = now + Duration::hours(1);
        Grant::approved(ticketbound_domain::GrantId::new(now, 1), request, now)
    }

    #[test]
    fn alternating_users_take_turns_and_single_user_stays() {
        let g = grant();
        let (a, b) = (principal_name(&g), alternate_principal_name(&g));
        assert_ne!(a, b);
        assert!(b.len() <= 63);
        let alt = RotationStrategy::AlternatingUsers;
        assert_eq!(next_login(&g, &a, alt).ok(), Some(b.clone()));
        assert_eq!(next_login(&g, &b, alt).ok(), Some(a.clone()));
        assert_eq!(
            next_login(&g, &a, RotationStrategy::SingleUser).ok(),
            Some(a.clone())
        );
        assert!(matches!(
            next_login(&g, "postgres", alt),
            Err(TargetError::NotTheGrantsRole(_))
        ));
    }

    #[test]
    fn steps_parse_from_aws_names_only() {
        assert_eq!("finishSecret".parse::<Step>(), Ok(Step::FinishSecret));
        assert!(matches!(
            "FinishSecret".parse::<Step>(),
            Err(Refusal::UnknownStep(_))
        ));
    }
}
