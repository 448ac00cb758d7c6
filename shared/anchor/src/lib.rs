//! Where the signed log is anchored outside the operator's reach: the signing key in
//! AWS KMS (an asymmetric ECC_NIST_P256 key whose policy lets the checkpointer alone
//! sign) and the signed checkpoints in an S3 bucket with Object Lock in COMPLIANCE
//! mode, each written once.
//!
//! This crate owns every KMS and S3 SDK type. What AWS enforces and moto (the local
//! stack) does not, checked here where it can be: moto signs with a disabled key, so
//! [`Notary::sign`] checks the key's state first; moto hashes a `DIGEST` message
//! again, so only `RAW` messages are signed; moto lets a COMPLIANCE retention be
//! shortened, which nothing here ever asks (no `PutObjectRetention`, no bypass
//! header); only AWS keeps the lock.

use aws_config::SdkConfig;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_sdk_s3::error::SdkError;
use ticketbound_evidence::{NoteError, PublicKey};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the first signing key's public key is kept beside the checkpoints (written
/// once, with the first checkpoint).
pub const PUBLIC_KEY_OBJECT: &str = "public-key.der";
/// The prefix of every signing key's public key, the first and each rollover's.
pub const KEYS_PREFIX: &str = "keys/";
/// The prefix of the checkpoints signed by two keys (a rollover), kept apart so that
/// a bundle always carries them: they are how trust passes to the new key.
pub const HANDOVER_PREFIX: &str = "handovers/";

/// The object key of a signing key's DER public key (named by its SHA-256).
pub fn key_object(key: &PublicKey) -> String {
    format!("{KEYS_PREFIX}{}.der", key.fingerprint())
}

/// The object key of the rollover checkpoint of `size`.
pub fn handover_object(size: u64) -> String {
    format!("{HANDOVER_PREFIX}{size:020}")
}
/// The prefix of the checkpoints' object keys.
pub const CHECKPOINT_PREFIX: &str = "checkpoints/";

/// The object key of the checkpoint of `size` (zero-padded, so they list in order).
pub fn checkpoint_object(size: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{size:020}")
}

/// The size a checkpoint's object key names (`None` for any other key).
pub fn checkpoint_size(key: &str) -> Option<u64> {
    key.strip_prefix(CHECKPOINT_PREFIX)
        .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("KMS {operation} failed")]
    Kms {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("S3 {operation} failed")]
    S3 {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("the signing key is {0}, not Enabled: nothing is signed with it")]
    KeyNotEnabled(String),
    #[error("the signing key is {spec} for {usage}, not ECC_NIST_P256 for SIGN_VERIFY")]
    WrongKey { spec: String, usage: String },
    #[error("KMS answered no {0}")]
    Missing(&'static str),
    #[error("the key KMS returned is not usable: {0}")]
    BadPublicKey(#[source] NoteError),
}

/// The checkpointer's signing key.
#[derive(Debug, Clone)]
pub struct Notary {
    kms: aws_sdk_kms::Client,
    key_id: String,
}

impl Notary {
    pub fn new(sdk: &SdkConfig, key_id: impl Into<String>) -> Self {
        Self {
            kms: aws_sdk_kms::Client::new(sdk),
            key_id: key_id.into(),
        }
    }

    /// Whether the key is enabled and of the kind the log's checkpoints need (KMS
    /// itself refuses to sign with a disabled key; moto does not).
    pub async fn check_key(&self) -> Result<(), AnchorError> {
        let out = self
            .kms
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(kms("DescribeKey"))?;
        let meta = out
            .key_metadata
            .ok_or(AnchorError::Missing("key metadata"))?;
        if meta.key_state() != Some(&KeyState::Enabled) {
            return Err(AnchorError::KeyNotEnabled(
                meta.key_state()
                    .map_or("in no state".to_owned(), |s| s.as_str().to_owned()),
            ));
        }
        if meta.key_spec() != Some(&KeySpec::EccNistP256)
            || meta.key_usage() != Some(&KeyUsageType::SignVerify)
        {
            return Err(AnchorError::WrongKey {
                spec: meta.key_spec().map_or("-", |s| s.as_str()).to_owned(),
                usage: meta.key_usage().map_or("-", |u| u.as_str()).to_owned(),
            });
        }
        Ok(())
    }

    /// The public key, named `origin` (the log's name).
    pub async fn public_key(&self, origin: &str) -> Result<PublicKey, AnchorError> {
        let out = self
            .kms
            .get_public_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(kms("GetPublicKey"))?;
        let der = out
            .public_key
            .ok_or(AnchorError::Missing("public key"))?
            .into_inner();
        PublicKey::new(origin, der).map_err(AnchorError::BadPublicKey)
    }

    /// ECDSA P-256 over SHA-256 of `text` (KMS hashes a `RAW` message), DER.
    pub async fn sign(&self, text: &str) -> Result<Vec<u8>, AnchorError> {
        let out = self
            .kms
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(text.as_bytes()))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(kms("Sign"))?;
        Ok(out
            .signature
            .ok_or(AnchorError::Missing("signature"))?
            .into_inner())
    }
}

fn kms<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> AnchorError {
    move |e| AnchorError::Kms {
        operation,
        source: Box::new(e),
    }
}

fn s3<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> AnchorError {
    move |e| AnchorError::S3 {
        operation,
        source: Box::new(e),
    }
}

/// Makes a signing key of the kind checkpoints need (the local stack's; a deployment's
/// comes from Terraform, with its key policy). Returns its ARN.
pub async fn create_signing_key(sdk: &SdkConfig, description: &str) -> Result<String, AnchorError> {
    let out = aws_sdk_kms::Client::new(sdk)
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description(description)
        .send()
        .await
        .map_err(kms("CreateKey"))?;
    out.key_metadata
        .and_then(|m| m.arn)
        .ok_or(AnchorError::Missing("key ARN"))
}

/// What a write-once put found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Written,
    /// The object was there already (its content may differ: the caller compares).
    AlreadyThere,
}

/// The bucket that keeps the checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointBucket {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl CheckpointBucket {
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>) -> Self {
        let mut config = aws_sdk_s3::config::Builder::from(sdk);
        // An emulator on loopback has no per-bucket host names.
        if sdk.endpoint_url().is_some() {
            config = config.force_path_style(true);
        }
        Self {
            s3: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: bucket.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.bucket
    }

    /// Makes the bucket with Object Lock and a default COMPLIANCE retention of
    /// `retention_days`, unless it is there (the local stack's; a deployment's comes
    /// from Terraform, with its deny-delete policy).
    pub async fn ensure(&self, retention_days: i32) -> Result<(), AnchorError> {
        if self
            .s3
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let mut create = self
            .s3
            .create_bucket()
            .bucket(&self.bucket)
            .object_lock_enabled_for_bucket(true);
        // Outside us-east-1, S3 wants the region said again.
        if let Some(region) = self.s3.config().region().map(|r| r.as_ref().to_owned())
            && region != "us-east-1"
        {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        region.as_str(),
                    ))
                    .build(),
            );
        }
        create.send().await.map_err(s3("CreateBucket"))?;
        use aws_sdk_s3::types::{
            DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
            ObjectLockRule,
        };
        let rule = ObjectLockRule::builder()
            .default_retention(
                DefaultRetention::builder()
                    .mode(ObjectLockRetentionMode::Compliance)
                    .days(retention_days)
                    .build(),
            )
            .build();
        self.s3
            .put_object_lock_configuration()
            .bucket(&self.bucket)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(rule)
                    .build(),
            )
            .send()
            .await
            .map_err(s3("PutObjectLockConfiguration"))?;
        Ok(())
    }

    /// Writes `body` at `key` unless something is there already (`If-None-Match: *`):
    /// a checkpoint is never replaced.
    pub async fn put_once(&self, key: &str, body: Vec<u8>) -> Result<Put, AnchorError> {
        match self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            // S3 refuses a put into a bucket with a default retention unless it
            // carries an integrity checksum.
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .body(body.into())
            .send()
            .await
        {
            Ok(_) => Ok(Put::Written),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 412 => {
                Ok(Put::AlreadyThere)
            }
            Err(e) => Err(s3("PutObject")(e)),
        }
    }

    /// The object at `key`, if there is one.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AnchorError> {
        match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(s3("GetObject"))?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => Ok(None),
            Err(e) => Err(s3("GetObject")(e)),
        }
    }

    /// The size of the newest checkpoint the bucket keeps, looking only at those
    /// after `after` (a lower bound that saves listing them all); `None` if none.
    /// Objects under the prefix that are not checkpoints are not counted.
    pub async fn newest_checkpoint_size(
        &self,
        after: Option<u64>,
    ) -> Result<Option<u64>, AnchorError> {
        let start = after.map(checkpoint_object);
        let keys = self.list_after(CHECKPOINT_PREFIX, start.as_deref()).await?;
        Ok(keys.iter().filter_map(|k| checkpoint_size(k)).max())
    }

    /// Every object key under `prefix`, in order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, AnchorError> {
        self.list_after(prefix, None).await
    }

    /// The object keys under `prefix` that sort after `start_after`, in order.
    pub async fn list_after(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<String>, AnchorError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_start_after(start_after.map(str::to_owned))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(s3("ListObjectsV2"))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match out.next_continuation_token {
                Some(t) if out.is_truncated == Some(true) => token = Some(t),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }
}
