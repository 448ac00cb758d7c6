//! The secrets that hold issued credentials: one per grant, named
//! `ticketbound/<environment>/<identity>/<grant id>`, tagged so that anyone (and the
//! reconciler) can tell whose it is and when it dies, encrypted with the configured
//! KMS key, and readable only by the grant's workload (and ticketbound's own roles).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_secretsmanager::types::Tag;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketbound_runtime::{ExposeSecret, SecretString};

use crate::SecretsError;

/// The tag that marks a secret as ticketbound's (IAM conditions and the reconciler
/// rely on it).
pub const MANAGED_BY_TAG: (&str, &str) = ("managed-by", "ticketbound");

/// Everything a credential secret is created with, except its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSecretSpec {
    pub name: String,
    pub description: String,
    /// Tags besides `managed-by=ticketbound`: ticket, grant-id, owner, expires-at.
    pub tags: Vec<(String, String)>,
    pub kms_key_id: Option<String>,
    /// The only principal (besides `ticketbound_principals`) that may read the value.
    pub workload_principal: String,
    /// ticketbound's own roles that must keep access (rotation, expiry).
    pub ticketbound_principals: Vec<String>,
    /// CreateSecret's ClientRequestToken (32 to 64 characters), derived from the
    /// grant: a retried create (by the SDK, the function or a redelivered event) is
    /// the same request, and Secrets Manager answers it as the first.
    pub create_token: String,
}

/// A database credential in the structure AWS's rotation functions use. Never
/// `Debug`: it holds the password.
#[derive(Serialize, Deserialize)]
pub struct DatabaseSecret {
    pub engine: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub dbname: String,
}

impl std::fmt::Debug for DatabaseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSecret")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("dbname", &self.dbname)
            .finish()
    }
}

impl DatabaseSecret {
    /// The JSON to store, as a secret.
    pub fn to_secret(&self) -> SecretString {
        SecretString::from(serde_json::to_string(self).unwrap_or_default())
    }

    /// Parses a stored value; the error never repeats it.
    pub fn from_secret(value: &SecretString) -> Option<Self> {
        serde_json::from_str(value.expose_secret()).ok()
    }
}

/// What Secrets Manager knows of a secret, without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub arn: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub rotation_enabled: bool,
    pub deleted: bool,
    /// Version id → its staging labels (AWSCURRENT, AWSPENDING, AWSPREVIOUS, …).
    pub versions: BTreeMap<String, BTreeSet<String>>,
    pub rotation_function_arn: Option<String>,
    /// The rotation interval, when it is given in days (`AutomaticallyAfterDays`).
    pub rotation_every_days: Option<i64>,
    pub created: Option<DateTime<Utc>>,
    pub last_rotated: Option<DateTime<Utc>>,
}

impl SecretInfo {
    /// The staging labels of `version_id`, or `None` if the secret has no such version.
    pub fn stages(&self, version_id: &str) -> Option<&BTreeSet<String>> {
        self.versions.get(version_id)
    }

    /// The version that carries `stage`, if one does.
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.contains(stage))
            .map(|(id, _)| id.as_str())
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The resource policy: the workload may read; nobody else may, whatever their IAM
/// policies say, except ticketbound's own roles.
/// Every Secrets Manager action that changes a secret, its versions, its policy or
/// its rotation: denied by the resource policy to all but ticketbound's roles.
pub const WRITE_ACTIONS: &[&str] = &[
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:RotateSecret",
    "secretsmanager:CancelRotateSecret",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:DeleteResourcePolicy",
    "secretsmanager:DeleteSecret",
    "secretsmanager:RestoreSecret",
    "secretsmanager:TagResource",
    "secretsmanager:UntagResource",
    "secretsmanager:ReplicateSecretToRegions",
    "secretsmanager:RemoveRegionsFromReplication",
    "secretsmanager:StopReplicationToReplica",
];

/// The credential secret's resource policy. Only AWS enforces it (moto stores
/// resource policies and enforces none): the tests check the document, not its effect.
pub fn resource_policy(spec: &CredentialSecretSpec) -> String {
    let mut allowed = vec![spec.workload_principal.clone()];
    allowed.extend(spec.ticketbound_principals.iter().cloned());
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WorkloadReads",
                "Effect": "Allow",
                "Principal": {"AWS": spec.workload_principal},
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": "*"
            },
            {
                "Sid": "NobodyElseReads",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:PrincipalArn": allowed}}
            },
            {
                // Whoever else may write the secret could stage a value of their own
                // (a password they know) or take the policy away: only ticketbound's
                // roles change it. The workload reads, never writes.
                "Sid": "OnlyTicketboundChanges",
                "Effect": "Deny",
                "Principal": "*",
                "Action": WRITE_ACTIONS,
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:PrincipalArn": spec.ticketbound_principals}}
            }
        ]
    })
    .to_string()
}

pub(crate) fn to_utc(t: &aws_sdk_secretsmanager::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

impl crate::SecretsManager {
    /// A random password from Secrets Manager, without characters that need quoting
    /// in a connection string.
    pub async fn random_password(&self) -> Result<SecretString, SecretsError> {
        let out = self
            .client
            .get_random_password()
            .password_length(40)
            .exclude_characters("\"'\\/@:;`$ ")
            .send()
            .await
            .map_err(|e| SecretsError::call("GetRandomPassword", "-", e))?;
        Ok(SecretString::from(
            out.random_password().unwrap_or_default(),
        ))
    }

    /// The secret named `name`, if it exists (a secret scheduled for deletion counts,
    /// with `deleted` set).
    pub async fn describe(&self, name: &str) -> Result<Option<SecretInfo>, SecretsError> {
        match self.client.describe_secret().secret_id(name).send().await {
            Ok(out) => Ok(Some(SecretInfo {
                versions: out
                    .version_ids_to_stages()
                    .map(|m| {
                        m.iter()
                            .map(|(id, stages)| (id.clone(), stages.iter().cloned().collect()))
                            .collect()
                    })
                    .unwrap_or_default(),
                rotation_function_arn: out
                    .rotation_lambda_arn()
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned),
                rotation_every_days: out
                    .rotation_rules()
                    .and_then(|r| r.automatically_after_days())
                    .filter(|d| *d > 0),
                created: out.created_date().and_then(to_utc),
                last_rotated: out.last_rotated_date().and_then(to_utc),
                arn: out.arn().unwrap_or_default().to_owned(),
                name: out.name().unwrap_or_default().to_owned(),
                tags: out
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_owned(),
                            t.value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
                rotation_enabled: out.rotation_enabled().unwrap_or(false),
                deleted: out.deleted_date().is_some(),
            })),
            Err(e) => match SecretsError::call("DescribeSecret", name, e) {
                SecretsError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The current value of a secret (its AWSCURRENT version, asked for by name: an
    /// unlabelled read is AWSCURRENT in AWS, but not in every emulator mid-rotation).
    pub async fn read(&self, secret_id: &str) -> Result<SecretString, SecretsError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(crate::rotation::AWSCURRENT)
            .send()
            .await
            .map_err(|e| SecretsError::call("GetSecretValue", secret_id, e))?;
        out.secret_string()
            .map(SecretString::from)
            .ok_or_else(|| SecretsError::NotAString(secret_id.to_owned()))
    }

    /// Creates the credential secret with `value` and its resource policy. Returns the
    /// ARN.
    pub async fn create_credential(
        &self,
        spec: &CredentialSecretSpec,
        value: &SecretString,
    ) -> Result<String, SecretsError> {
        let mut request = self
            .client
            .create_secret()
            .name(&spec.name)
            .client_request_token(&spec.create_token)
            .description(&spec.description)
            .secret_string(value.expose_secret())
            .tags(
                Tag::builder()
                    .key(MANAGED_BY_TAG.0)
                    .value(MANAGED_BY_TAG.1)
                    .build(),
            );
        for (k, v) in &spec.tags {
            request = request.tags(Tag::builder().key(k).value(v).build());
        }
        if let Some(key) = &spec.kms_key_id {
            request = request.kms_key_id(key);
        }
        let out = request
            .send()
            .await
            .map_err(|e| SecretsError::call("CreateSecret", &spec.name, e))?;
        let arn = out.arn().unwrap_or_default().to_owned();
        self.put_policy(&arn, spec).await?;
        Ok(arn)
    }

    /// Sets the resource policy (again): idempotent.
    pub async fn put_policy(
        &self,
        arn: &str,
        spec: &CredentialSecretSpec,
    ) -> Result<(), SecretsError> {
        self.client
            .put_resource_policy()
            .secret_id(arn)
            .resource_policy(resource_policy(spec))
            .send()
            .await
            .map_err(|e| SecretsError::call("PutResourcePolicy", arn, e))?;
        Ok(())
    }

    /// The resource policy in force, for the reconciler and tests.
    pub async fn policy(&self, arn: &str) -> Result<Option<String>, SecretsError> {
        let out = self
            .client
            .get_resource_policy()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| SecretsError::call("GetResourcePolicy", arn, e))?;
        Ok(out.resource_policy().map(str::to_owned))
    }

    /// Turns on rotation by `rotation_function_arn` every `hours` hours, without
    /// rotating now (the credential was just made). Whole days are given as
    /// `AutomaticallyAfterDays`, other periods as `rate(N hours)`.
    pub async fn enable_rotation(
        &self,
        arn: &str,
        rotation_function_arn: &str,
        hours: u32,
    ) -> Result<(), SecretsError> {
        self.client
            .rotate_secret()
            .secret_id(arn)
            .rotation_lambda_arn(rotation_function_arn)
            .rotation_rules(crate::rotation::rules_every(hours))
            .rotate_immediately(false)
            .send()
            .await
            .map_err(|e| SecretsError::call("RotateSecret", arn, e))?;
        Ok(())
    }

    /// Deletes a credential secret; `force` skips the recovery window (a revoked
    /// credential has nothing worth recovering). A secret already gone (or already
    /// scheduled for deletion) is fine. Whether it exists is asked first: IAM
    /// conditions on the secret's tags deny calls on a secret that does not exist,
    /// which would hide "gone" behind "forbidden".
    pub async fn delete(
        &self,
        secret_id: &str,
        force: bool,
        recovery_days: i64,
    ) -> Result<bool, SecretsError> {
        match self.describe(secret_id).await? {
            None => return Ok(false),
            Some(info) if info.deleted && !force => return Ok(false),
            Some(_) => {}
        }
        let mut request = self.client.delete_secret().secret_id(secret_id);
        request = if force {
            request.force_delete_without_recovery(true)
        } else {
            request.recovery_window_in_days(recovery_days)
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => match SecretsError::call("DeleteSecret", secret_id, e) {
                SecretsError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CredentialSecretSpec {
        CredentialSecretSpec {
            name: "ticketbound/prod/orders-etl/01J".into(),
            description: "d".into(),
            tags: vec![],
            kms_key_id: None,
            workload_principal: "arn:aws:iam::123456789012:role/orders-etl".into(),
            ticketbound_principals: vec!["arn:aws:iam::123456789012:role/tb-rotate".into()],
            create_token: "01J-initial-version".into(),
        }
    }

    /// The workload reads; nobody but ticketbound's roles may stage a value, move a
    /// stage, rotate, or change or delete the policy.
    #[test]
    fn only_ticketbound_changes_the_secret_and_only_the_workload_and_ticketbound_read_it() {
        let policy: serde_json::Value = serde_json::from_str(&resource_policy(&spec())).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        let deny_writes = statements
            .iter()
            .find(|s| s["Sid"] == "OnlyTicketboundChanges")
            .unwrap();
        assert_eq!(deny_writes["Effect"], "Deny");
        assert_eq!(deny_writes["Principal"], "*");
        let actions: Vec<&str> = deny_writes["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for must in [
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecretVersionStage",
            "secretsmanager:DeleteResourcePolicy",
            "secretsmanager:PutResourcePolicy",
            "secretsmanager:RotateSecret",
        ] {
            assert!(actions.contains(&must), "{must} is denied to others");
        }
        assert_eq!(
            deny_writes["Condition"]["StringNotEquals"]["aws:PrincipalArn"],
            serde_json::json!(["arn:aws:iam::123456789012:role/tb-rotate"]),
            "the workload is not among the writers"
        );
        let deny_reads = statements
            .iter()
            .find(|s| s["Sid"] == "NobodyElseReads")
            .unwrap();
        assert_eq!(
            deny_reads["Condition"]["StringNotEquals"]["aws:PrincipalArn"],
            serde_json::json!([
                "arn:aws:iam::123456789012:role/orders-etl",
                "arn:aws:iam::123456789012:role/tb-rotate"
            ])
        );
    }
}
