# One role per function, with an inline policy of exactly what that function calls.
# Policies are built with jsonencode() so that the tests can read them.

resource "aws_iam_role" "function" {
  for_each = local.functions

  name        = local.function_names[each.key]
  description = "ticketbound ${each.key} Lambda execution role"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "lambda.amazonaws.com" }
        Action    = "sts:AssumeRole"
      },
    ]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = local.function_names[each.key]
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

locals {
  grants_index_arns = [for index in local.grants_index_names : "${aws_dynamodb_table.grants.arn}/index/${index}"]

  # What each function needs beyond logs, tracing, its DLQ and the key (common_statements).
  function_statements = {
    "itsm-intake" = [
      {
        # Grants, expiry triggers and delivery records: read, create and change
        # (TransactWriteItems is authorised per item action).
        Sid    = "GrantsTable"
        Effect = "Allow"
        Action = [
          "dynamodb:GetItem",
          "dynamodb:Query",
          "dynamodb:PutItem",
          "dynamodb:DeleteItem",
          "dynamodb:ConditionCheckItem",
        ]
        Resource = [aws_dynamodb_table.grants.arn]
      },
      {
        Sid      = "GrantsIndexes"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = local.grants_index_arns
      },
      {
        # Audit events are only ever appended, in the grant's transaction.
        Sid    = "AuditTableAppend"
        Effect = "Allow"
        Action = [
          "dynamodb:PutItem",
          "dynamodb:ConditionCheckItem",
        ]
        Resource = [aws_dynamodb_table.audit.arn]
      },
      {
        Sid      = "WebhookSecrets"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [for name in sort(tolist(local.webhook_integrations)) : aws_secretsmanager_secret.webhook[name].arn]
      },
    ]
  }

  function_policies = {
    for k, _ in local.functions : k => jsonencode({
      Version = "2012-10-17"
      Statement = concat(
        [
          {
            Sid      = "OwnLogGroup"
            Effect   = "Allow"
            Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
            Resource = [aws_cloudwatch_log_group.function[k].arn, "${aws_cloudwatch_log_group.function[k].arn}:*"]
          },
          {
            # X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level
            # permissions: "*" is the only resource they accept. The only "*" resource here.
            Sid      = "XRayTracing"
            Effect   = "Allow"
            Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
            Resource = "*"
          },
          {
            Sid      = "OwnDeadLetterQueue"
            Effect   = "Allow"
            Action   = ["sqs:SendMessage"]
            Resource = [aws_sqs_queue.function_dlq[k].arn]
          },
          {
            # Tables, secrets and the DLQ are encrypted with the module key.
            Sid      = "ModuleKey"
            Effect   = "Allow"
            Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
            Resource = [aws_kms_key.this.arn]
          },
        ],
        local.function_statements[k],
      )
    })
  }
}
