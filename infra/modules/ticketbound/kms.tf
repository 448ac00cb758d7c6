# One customer-managed key for everything the module stores: tables (and so their
# streams), webhook and ITSM API secrets, log groups, the event bus, the dead-letter
# queues and the functions' environment.
resource "aws_kms_key" "this" {
  description             = "ticketbound (${var.name_prefix}): tables, secrets, logs, event bus, queues"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_in_days
  policy                  = local.kms_key_policy
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.this.key_id
}

locals {
  kms_key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # The key policy's root statement: the account administers the key, and IAM
        # policies (like the functions' roles) can grant its use. Without it IAM could
        # grant nothing on this key. The actions are listed one by one rather than as
        # "kms:*": no policy in this module has a wildcard action, and a test reviews
        # that (and tests/ticketbound.tftest.hcl checks this list). The list keeps the
        # key fully administrable through IAM (key policy, state, deletion, rotation,
        # aliases, tags, description, grants: no lockout) and holds the cryptographic
        # actions the module's roles are granted through IAM. A new KMS action is not
        # delegated until it is added here.
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          # Key policy and description.
          "kms:PutKeyPolicy",
          "kms:GetKeyPolicy",
          "kms:ListKeyPolicies",
          "kms:DescribeKey",
          "kms:UpdateKeyDescription",
          # Key state and deletion.
          "kms:EnableKey",
          "kms:DisableKey",
          "kms:ScheduleKeyDeletion",
          "kms:CancelKeyDeletion",
          # Rotation.
          "kms:EnableKeyRotation",
          "kms:DisableKeyRotation",
          "kms:GetKeyRotationStatus",
          "kms:RotateKeyOnDemand",
          "kms:ListKeyRotations",
          # Aliases (ListAliases is authorized by IAM alone; listed for completeness).
          "kms:CreateAlias",
          "kms:DeleteAlias",
          "kms:UpdateAlias",
          "kms:ListAliases",
          # Tags.
          "kms:TagResource",
          "kms:UntagResource",
          "kms:ListResourceTags",
          # Grants (ListRetirableGrants is authorized by IAM alone; listed for
          # completeness).
          "kms:CreateGrant",
          "kms:ListGrants",
          "kms:RevokeGrant",
          "kms:RetireGrant",
          "kms:ListRetirableGrants",
          # Use of the key, which IAM policies delegate (see ModuleKey in iam.tf).
          "kms:Encrypt",
          "kms:Decrypt",
          "kms:ReEncryptFrom",
          "kms:ReEncryptTo",
          "kms:GenerateDataKey",
          "kms:GenerateDataKeyWithoutPlaintext",
        ]
        Resource = "*"
      },
      {
        # CloudWatch Logs encrypts the functions' log groups, and only those.
        Sid       = "CloudWatchLogsForFunctionLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action = [
          "kms:Encrypt",
          "kms:Decrypt",
          "kms:ReEncryptFrom",
          "kms:ReEncryptTo",
          "kms:GenerateDataKey",
          "kms:GenerateDataKeyWithoutPlaintext",
          "kms:DescribeKey",
        ]
        Resource = "*"
        Condition = {
          ArnEquals = {
            "kms:EncryptionContext:aws:logs:arn" = values(local.log_group_arns)
          }
        }
      },
      {
        # EventBridge encrypts events on the ticketbound bus and sends failed deliveries
        # to the encrypted events DLQ (SQS has the sender do the KMS calls).
        Sid       = "EventBridgeInThisAccount"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action = [
          "kms:Decrypt",
          "kms:GenerateDataKey",
          "kms:DescribeKey",
        ]
        Resource = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })
}
