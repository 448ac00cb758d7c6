# One customer-managed key for everything the module stores: tables (and so their
# streams), webhook secrets, log groups, the event bus, the dead-letter queues and the
# functions' environment.
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
        # The key policy's standard root statement: the account administers the key,
        # and IAM policies (like the functions' roles) can grant its use. Without it
        # IAM could grant nothing on this key.
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
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
