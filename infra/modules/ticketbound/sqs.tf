# Dead-letter queues, all encrypted with the module key: one per function for failed
# asynchronous invocations; one for events EventBridge could not deliver to the intake;
# one per stream consumer (grants and audit streams) for the batches Lambda gave up
# on; one for schedule invocations (expiry, sweep, reconcile, checkpoint) EventBridge
# Scheduler could not deliver.

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

# Lambda sends a description of each stream batch it gives up on (shard, sequence
# numbers: read the records from the stream within 24 hours), as the function's role.
resource "aws_sqs_queue" "stream_dlq" {
  for_each = local.stream_dlq_names

  name                              = each.value
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
  message_retention_seconds         = var.dlq_message_retention_seconds
  tags                              = var.tags
}

# EventBridge Scheduler sends here, as the scheduler role, what it could not deliver to
# grant-expire (the one-time expiry schedules and the sweep), to grant-reconcile (the
# reconcile schedule) or to log-checkpoint (the checkpoint schedule). The name predates the reconcile schedule; renaming would replace
# the queue.
resource "aws_sqs_queue" "schedule_dlq" {
  name                              = local.schedule_dlq_name
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
