//! The Secrets Manager calls of the rotation protocol: reading a version by id and
//! label, putting the pending value, moving labels, and finding the secrets that are
//! due. Secrets Manager calls a rotation function with a token (the id of the version
//! being made) for createSecret, setSecret, testSecret and finishSecret in turn, and
//! starts the whole rotation again when a step fails, so each of these is safe to
//! repeat.

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, RotationRulesType};
use ticketbound_runtime::{ExposeSecret, SecretString};

use crate::credentials::{MANAGED_BY_TAG, SecretInfo};
use crate::{SecretsError, SecretsManager};

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Rotation every `hours` hours: whole days as `AutomaticallyAfterDays`, anything else
/// as `rate(N hours)` (Secrets Manager accepts 4 hours and up).
pub fn rules_every(hours: u32) -> RotationRulesType {
    let rules = RotationRulesType::builder();
    if hours.is_multiple_of(24) {
        rules
            .automatically_after_days(i64::from(hours / 24))
            .build()
    } else {
        rules
            .schedule_expression(format!("rate({hours} hours)"))
            .build()
    }
}

impl SecretsManager {
    /// The value of version `version_id` if it carries `stage` and has a value; `None`
    /// when it has none yet (a version Secrets Manager staged for a rotation that has
    /// not been given its value).
    pub async fn read_version(
        &self,
        secret_id: &str,
        version_id: &str,
        stage: &str,
    ) -> Result<Option<SecretString>, SecretsError> {
        let sent = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_id(version_id)
            .version_stage(stage)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.secret_string().map(SecretString::from)),
            Err(e) => match SecretsError::call("GetSecretValue", secret_id, e) {
                // Also what AWS answers for a staged version without a value yet.
                SecretsError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// True when a version other than `version_id` holds exactly `value`: a value that
    /// is not new. Reads every version id, deprecated ones included.
    pub async fn another_version_holds(
        &self,
        secret_id: &str,
        version_id: &str,
        value: &SecretString,
    ) -> Result<bool, SecretsError> {
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_secret_version_ids()
                .secret_id(secret_id)
                .include_deprecated(true)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| SecretsError::call("ListSecretVersionIds", secret_id, e))?;
            for other in out.versions().iter().filter_map(|v| v.version_id()) {
                if other == version_id {
                    continue;
                }
                let read = self
                    .client
                    .get_secret_value()
                    .secret_id(secret_id)
                    .version_id(other)
                    .send()
                    .await;
                let held = match read {
                    Ok(v) => v.secret_string().map(str::to_owned),
                    Err(e) => match SecretsError::call("GetSecretValue", secret_id, e) {
                        SecretsError::NotFound(_) => None,
                        e => return Err(e),
                    },
                };
                if held.as_deref() == Some(value.expose_secret()) {
                    return Ok(true);
                }
            }
            match out.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(false),
            }
        }
    }

    /// Stores `value` as version `token`, labelled AWSPENDING (Secrets Manager moves
    /// the label from any version that had it). Repeating it with the same value is a
    /// no-op.
    pub async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
    ) -> Result<(), SecretsError> {
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value.expose_secret())
            .version_stages(AWSPENDING)
            .send()
            .await
            .map_err(|e| SecretsError::call("PutSecretValue", secret_id, e))?;
        Ok(())
    }

    /// Moves `stage` to version `to` from version `from` (either may be absent: a
    /// label only attached, or only removed). Moving AWSCURRENT makes Secrets Manager
    /// label the version it left AWSPREVIOUS.
    pub async fn move_stage(
        &self,
        secret_id: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), SecretsError> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .set_move_to_version_id(to.map(str::to_owned))
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await
            .map_err(|e| SecretsError::call("UpdateSecretVersionStage", secret_id, e))?;
        Ok(())
    }

    /// Every secret tagged `managed-by=ticketbound`, page by page, with its versions and
    /// rotation settings.
    pub async fn list_managed(&self) -> Result<Vec<SecretInfo>, SecretsError> {
        let filters = vec![
            Filter::builder()
                .key(FilterNameStringType::TagKey)
                .values(MANAGED_BY_TAG.0)
                .build(),
            Filter::builder()
                .key(FilterNameStringType::TagValue)
                .values(MANAGED_BY_TAG.1)
                .build(),
        ];
        let mut found = Vec::new();
        for entry in self.list_secrets(filters).await? {
            let Some(arn) = entry.arn() else { continue };
            // ListSecrets leaves out what DescribeSecret says of versions and rotation
            // in some implementations: ask each one.
            if let Some(info) = self.describe(arn).await?
                && info.tag(MANAGED_BY_TAG.0) == Some(MANAGED_BY_TAG.1)
                && !info.deleted
            {
                found.push(info);
            }
        }
        Ok(found)
    }

    /// Every page of ListSecrets with `filters`, without those scheduled for deletion.
    pub(crate) async fn list_secrets(
        &self,
        filters: Vec<Filter>,
    ) -> Result<Vec<aws_sdk_secretsmanager::types::SecretListEntry>, SecretsError> {
        let mut entries = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_secrets()
                .set_filters((!filters.is_empty()).then(|| filters.clone()))
                .include_planned_deletion(false)
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| SecretsError::call("ListSecrets", "-", e))?;
            entries.extend(out.secret_list().iter().cloned());
            match out.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(entries),
            }
        }
    }

    /// Starts a rotation the way Secrets Manager does before it calls createSecret:
    /// `RotateSecret` with the token, which stages the version `token` as AWSPENDING.
    /// Only the local stack's stand-in for Secrets Manager's scheduler calls this; in
    /// AWS, Secrets Manager does it on the rotation schedule.
    pub async fn begin_rotation(
        &self,
        secret_id: &str,
        token: &str,
        rotation_function_arn: &str,
        every_days: i64,
    ) -> Result<(), SecretsError> {
        self.client
            .rotate_secret()
            .secret_id(secret_id)
            .client_request_token(token)
            .rotation_lambda_arn(rotation_function_arn)
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(every_days)
                    .build(),
            )
            // The local stand-in invokes the steps itself, as Secrets Manager would.
            .rotate_immediately(false)
            .send()
            .await
            .map_err(|e| SecretsError::call("RotateSecret", secret_id, e))?;
        Ok(())
    }
}
