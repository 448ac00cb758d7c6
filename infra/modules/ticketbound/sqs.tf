# Dead-letter queues: one per function for failed asynchronous invocations, and one for
# events EventBridge could not deliver to the intake. Both encrypted with the module key.

resource "aws_sqs_queue" "function_dlq" {
  for_each = local.functions

  name                              = local.function_dlq_names[each.key]
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
  message_retention_seconds         = var.dlq_message_retention_seconds
  tags                              = var.tags
}

resource "aws_sqs_queue" "events_dlq" {
  name                              = local.events_dlq_name
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
  message_retention_seconds         = var.dlq_message_retention_seconds
  tags                              = var.tags
}

resource "aws_sqs_queue_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  policy    = local.events_dlq_policy
}

locals {
  events_dlq_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "EventBridgeRulesDeadLetter"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.events_dlq.arn
        Condition = {
          ArnEquals = {
            "aws:SourceArn" = [for rule in aws_cloudwatch_event_rule.intake : rule.arn]
          }
        }
      },
    ]
  })
}
