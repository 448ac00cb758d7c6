# The signed log's anchors: the KMS key log-checkpoint signs checkpoints with, and the
# S3 Object Lock bucket it keeps them in (shared/anchor). The log's leaves are in
# aws_dynamodb_table.log (dynamodb.tf), the function in local.functions.

# ECDSA P-256 (C2SP signed note, signature type 0x02). Only the checkpointer's role may
# sign: the account administers the key but is not given kms:Sign, and an explicit Deny
# refuses kms:Sign to every other principal whatever IAM policies or grants allow.
#
# One key per generation (log_signing_key_generations): the last signs; during a
# rollover the one before it signs beside it (TICKETBOUND_LOG_PREVIOUS_KEY_ID), so that
# an auditor who pinned the old key follows to the new one. Dropping the old generation
# from the list, once a checkpoint signed by both is kept, schedules its deletion.
resource "aws_kms_key" "log_signing" {
  #checkov:skip=CKV_AWS_7:Automatic rotation exists for symmetric encryption keys only; KMS refuses it for an asymmetric ECC_NIST_P256 SIGN_VERIFY key. Verifiers pin this key, so a new one is a deliberate rollover (a new generation the old one signs beside), not a rotation.
  for_each                 = toset(var.log_signing_key_generations)
  description              = "ticketbound (${var.name_prefix}): signs the signed log's checkpoints, generation ${each.key} (log-checkpoint only)"
  customer_master_key_spec = "ECC_NIST_P256"
  key_usage                = "SIGN_VERIFY"
  enable_key_rotation      = false
  deletion_window_in_days  = var.kms_deletion_window_in_days
  policy                   = local.log_signing_key_policy
  tags                     = var.tags
}

# Deployed before keys had generations: the one key is generation "1".
moved {
  from = aws_kms_key.log_signing
  to   = aws_kms_key.log_signing["1"]
}

# The alias names the key that signs now.
resource "aws_kms_alias" "log_signing" {
  name          = "alias/${var.name_prefix}-log-signing"
  target_key_id = local.log_signing_key.key_id
}

locals {
  log_signing_generations = var.log_signing_key_generations
  # The signing key, and the retiring one during a rollover (null otherwise).
  log_signing_key = aws_kms_key.log_signing[local.log_signing_generations[length(local.log_signing_generations) - 1]]
  log_signing_previous_key = (
    length(local.log_signing_generations) == 2
    ? aws_kms_key.log_signing[local.log_signing_generations[0]]
    : null
  )

  log_checkpoint_role_arn = aws_iam_role.function["log-checkpoint"].arn

  log_signing_key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # The account administers the key (no lockout: policy, state, deletion,
        # aliases, tags, grants) and may let auditors read it (DescribeKey,
        # GetPublicKey) through IAM; it is not given kms:Sign, so no IAM policy can
        # delegate signing. Actions listed one by one, as for the module key.
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          # Key policy and description.
          "kms:PutKeyPolicy",
          "kms:GetKeyPolicy",
          "kms:ListKeyPolicies",
          "kms:DescribeKey",
          "kms:GetPublicKey",
          "kms:UpdateKeyDescription",
          # Key state and deletion.
          "kms:EnableKey",
          "kms:DisableKey",
          "kms:ScheduleKeyDeletion",
          "kms:CancelKeyDeletion",
          # Rotation status (an asymmetric key does not rotate; read-only).
          "kms:GetKeyRotationStatus",
          # Aliases.
          "kms:CreateAlias",
          "kms:DeleteAlias",
          "kms:UpdateAlias",
          "kms:ListAliases",
          # Tags.
          "kms:TagResource",
          "kms:UntagResource",
          "kms:ListResourceTags",
          # Grants: a grant cannot confer kms:Sign past the Deny below.
          "kms:CreateGrant",
          "kms:ListGrants",
          "kms:RevokeGrant",
          "kms:RetireGrant",
          "kms:ListRetirableGrants",
        ]
        Resource = "*"
      },
      {
        # The checkpointer: the key's state, its public key, and signing.
        Sid       = "CheckpointerSigns"
        Effect    = "Allow"
        Principal = { AWS = local.log_checkpoint_role_arn }
        Action    = ["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"]
        Resource  = "*"
      },
      {
        # Nobody else signs, whatever their IAM policies or a grant say: the account
        # root, administrators and every other role of this or any account included.
        Sid       = "OnlyTheCheckpointerSigns"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = ["kms:Sign"]
        Resource  = "*"
        Condition = {
          ArnNotEquals = { "aws:PrincipalArn" = local.log_checkpoint_role_arn }
        }
      },
    ]
  })
}

# The checkpoints, the tree's right edge at each and the public key, each written once
# (If-None-Match: *) and kept by Object Lock in COMPLIANCE mode: nobody, the account
# root included, can delete or overwrite a version, or shorten its retention, before
# checkpoint_retention_days have passed. This is what an insider who can rewrite the
# DynamoDB tables cannot change.
resource "aws_s3_bucket" "checkpoints" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a second bucket of the module's own; the bucket is written by one role, a few objects per checkpoint, and CloudTrail (the account's trail, with S3 data events if wanted) records every request with its principal. Object Lock, not logging, is what keeps the checkpoints.
  #checkov:skip=CKV_AWS_144:Cross-region replication needs a second Object Lock bucket in another region and a replication role, which are the operator's choice of region and account; COMPLIANCE-mode Object Lock already keeps every version from deletion, and verifiers keep the checkpoints they fetch.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to a new checkpoint: verifiers and the CLI (`ticketbound checkpoint`) fetch the newest when they need it. An event notification would have no consumer.
  bucket              = local.checkpoint_bucket_name
  object_lock_enabled = true
  # Never: locked objects cannot be deleted anyway, and the bucket must outlive them.
  force_destroy = false
  tags          = var.tags
}

resource "aws_s3_bucket_versioning" "checkpoints" {
  bucket = aws_s3_bucket.checkpoints.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "checkpoints" {
  bucket = aws_s3_bucket.checkpoints.id

  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.checkpoint_retention_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.checkpoints]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "checkpoints" {
  bucket = aws_s3_bucket.checkpoints.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    # One data key per bucket rather than per object: fewer KMS calls, same key.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "checkpoints" {
  bucket                  = aws_s3_bucket.checkpoints.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "checkpoints" {
  bucket = aws_s3_bucket.checkpoints.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Objects are never replaced (If-None-Match: *) nor deleted (Object Lock), so the only
# lifecycle worth having is cleaning up uploads that never completed. No expiration:
# the checkpoints are kept for good (Object Lock keeps them at least
# checkpoint_retention_days).
resource "aws_s3_bucket_lifecycle_configuration" "checkpoints" {
  bucket = aws_s3_bucket.checkpoints.id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.checkpoints]
}

resource "aws_s3_bucket_policy" "checkpoints" {
  bucket = aws_s3_bucket.checkpoints.id
  policy = local.checkpoint_bucket_policy

  # The policy denies s3:PutBucketObjectLockConfiguration to everyone: the lock must be
  # configured first. And public access blocks must be in place before any policy.
  depends_on = [aws_s3_bucket_object_lock_configuration.checkpoints, aws_s3_bucket_public_access_block.checkpoints]
}

locals {
  checkpoint_bucket_objects = "${aws_s3_bucket.checkpoints.arn}/*"

  checkpoint_bucket_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # TLS only. The actions are listed (no policy in this module has a wildcard
        # action): every data-plane read and write the bucket serves.
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action = [
          "s3:GetObject",
          "s3:GetObjectVersion",
          "s3:GetObjectAttributes",
          "s3:GetObjectVersionAttributes",
          "s3:GetObjectRetention",
          "s3:GetObjectLegalHold",
          "s3:PutObject",
          "s3:ListBucket",
          "s3:ListBucketVersions",
        ]
        Resource  = [aws_s3_bucket.checkpoints.arn, local.checkpoint_bucket_objects]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        # Nobody deletes a checkpoint, shortens or lifts its retention, or changes the
        # bucket's lock: Object Lock in COMPLIANCE mode already refuses the first two
        # within the retention period; this holds after it too, and for the lock
        # configuration itself (Terraform included: see checkpoint_retention_days).
        Sid       = "NobodyDeletesOrUnlocks"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action = [
          "s3:DeleteObject",
          "s3:DeleteObjectVersion",
          "s3:PutObjectRetention",
          "s3:BypassGovernanceRetention",
          "s3:PutBucketObjectLockConfiguration",
        ]
        Resource = [aws_s3_bucket.checkpoints.arn, local.checkpoint_bucket_objects]
      },
      {
        # Only the checkpointer writes objects: nobody else can put a checkpoint of a
        # size not yet signed (it could not sign one, but it would take the name).
        Sid       = "OnlyTheCheckpointerWrites"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = ["s3:PutObject"]
        Resource  = [local.checkpoint_bucket_objects]
        Condition = {
          ArnNotEquals = { "aws:PrincipalArn" = local.log_checkpoint_role_arn }
        }
      },
      {
        Sid       = "CheckpointerReadsAndWrites"
        Effect    = "Allow"
        Principal = { AWS = local.log_checkpoint_role_arn }
        Action    = ["s3:GetObject", "s3:PutObject"]
        Resource  = [local.checkpoint_bucket_objects]
      },
    ]
  })
}
