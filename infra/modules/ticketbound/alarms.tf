locals {
  alarm_actions = var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = local.functions

  alarm_name          = "${local.function_names[each.key]}-errors"
  alarm_description   = "${local.function_names[each.key]} failed (any error is worth a look: see its logs)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  for_each = local.functions

  alarm_name          = "${local.function_names[each.key]}-throttles"
  alarm_description   = "${local.function_names[each.key]} was throttled (reserved concurrency reached)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dlq_messages" {
  for_each = local.dlq_names

  alarm_name          = "${each.value}-messages"
  alarm_description   = "${each.value} holds messages: events or invocations that were given up on. Inspect, fix, redrive."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  depends_on = [aws_sqs_queue.function_dlq, aws_sqs_queue.events_dlq, aws_sqs_queue.stream_dlq, aws_sqs_queue.schedule_dlq]
}

# grant-expire counts the revocations it could not finish (CloudWatch embedded metric
# format, shared/runtime/src/metrics.rs): a credential that outlives its grant.
resource "aws_cloudwatch_metric_alarm" "revocation_failures" {
  alarm_name          = "${local.function_names["grant-expire"]}-revocation-failures"
  alarm_description   = "${local.function_names["grant-expire"]} could not revoke a grant: a credential may outlive its grant. See the function's logs and the grant's audit trail; the revocation is retried by a one-time schedule of its own."
  namespace           = "ticketbound"
  metric_name         = "RevocationFailures"
  dimensions          = { function = "grant-expire" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# grant-expire escalates, once per grant, a revocation that has kept failing for longer
# than revocation_escalate_after_seconds (its retries, one-time schedules of its own, go
# on): the same metric namespace and dimension as RevocationFailures.
resource "aws_cloudwatch_metric_alarm" "revocation_escalations" {
  alarm_name          = "${local.function_names["grant-expire"]}-revocation-escalations"
  alarm_description   = "${local.function_names["grant-expire"]} has failed to revoke a grant for longer than ${var.revocation_escalate_after_seconds} s: a credential is outliving its grant. Its retries go on; see the function's logs and the grant's audit trail, and fix the target or revoke by hand."
  namespace           = "ticketbound"
  metric_name         = "RevocationEscalations"
  dimensions          = { function = "grant-expire" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# ticket-writeback counts the audit events it could not tell their ticket after every
# attempt: the note is in a dead-letter record, the grant's audit says
# ticket_update_failed, and the ticket does not show the step.
resource "aws_cloudwatch_metric_alarm" "writeback_failures" {
  alarm_name          = "${local.function_names["ticket-writeback"]}-writeback-failures"
  alarm_description   = "${local.function_names["ticket-writeback"]} could not update a ticket after every attempt: the ticket lacks a step of its grant. See the function's logs (ITSM unreachable, credentials refused?) and the grant's dead-letter write-back records."
  namespace           = "ticketbound"
  metric_name         = "WritebackFailures"
  dimensions          = { function = "ticket-writeback" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# grant-reconcile counts what it finds live that the records do not account for (or
# recorded that is not live): summed over a default reconcile interval.
resource "aws_cloudwatch_metric_alarm" "drift_findings" {
  alarm_name          = "${local.function_names["grant-reconcile"]}-drift-findings"
  alarm_description   = "${local.function_names["grant-reconcile"]} found the live state differing from the recorded grants (orphaned credential or secret, expired but live, scope drift). See the function's logs and the grants' audit trails."
  namespace           = "ticketbound"
  metric_name         = "DriftFindings"
  dimensions          = { function = "grant-reconcile" }
  statistic           = "Sum"
  period              = 900
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# The intake's own alarms on what an operator must fix: a webhook secret under 32
# bytes (its route authenticates nobody) and an identity registry entry that does not
# verify against its chain of changes (written by other means than `ticketbound
# identities`; its approvals are refused).
locals {
  intake_operator_alarms = {
    "weak-webhook-secret" = {
      metric      = "WeakWebhookSecret"
      description = "refused a webhook because its route's signing secret or bearer token is shorter than 32 bytes. Replace the secret in Secrets Manager (and in the ITSM)."
    }
    "registry-tampered" = {
      metric      = "RegistryTampered"
      description = "found an identity registry entry that does not verify against its chain of changes, and refused its approvals. Inspect it with `ticketbound identities show`, and the table's CloudTrail data events."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "intake_operator" {
  for_each = local.intake_operator_alarms

  alarm_name          = "${local.function_names["itsm-intake"]}-${each.key}"
  alarm_description   = "${local.function_names["itsm-intake"]} ${each.value.description}"
  namespace           = "ticketbound"
  metric_name         = each.value.metric
  dimensions          = { function = "itsm-intake" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# log-checkpoint's own alarms (namespace ticketbound, dimension function =
# log-checkpoint, functions/log-checkpoint/src/lib.rs alarm_on): the signed log was
# rewritten under it, two roots were found for one size, or a checkpoint could not be
# logged or signed for another reason. Its Errors, Throttles and DLQ alarms are the
# ones every function has (above).
locals {
  checkpoint_alarms = {
    "log-tampered" = {
      metric      = "LogTampered"
      description = "refused to sign: the log table's head or leaves do not hash to the last signed checkpoint (or a checkpoint in the bucket does not verify). Someone rewrote the signed log in DynamoDB; see the function's logs, the log table's CloudTrail data events and `ticketbound verify`."
    }
    "checkpoint-fork" = {
      metric      = "CheckpointFork"
      description = "found a checkpoint in the bucket with the same size and a different root than its own: the log forked. See the function's logs and both checkpoints."
    }
    "checkpoint-failures" = {
      metric      = "CheckpointFailures"
      description = "could not log a batch or sign a checkpoint (DynamoDB, KMS or S3 refused or failed). The batch is delivered again; see the function's logs."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "checkpoint" {
  for_each = local.checkpoint_alarms

  alarm_name          = "${local.function_names["log-checkpoint"]}-${each.key}"
  alarm_description   = "${local.function_names["log-checkpoint"]} ${each.value.description}"
  namespace           = "ticketbound"
  metric_name         = each.value.metric
  dimensions          = { function = "log-checkpoint" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# A checkpoint is late when the checkpointer stops running, not when it signs nothing:
# a quiet system logs no event and so signs no checkpoint, and CheckpointsSigned is only
# ever published when one is signed (a count of 1), so an alarm on "CheckpointsSigned
# below 1" would either never fire (missing data not breaching) or fire all night on a
# quiet system (missing data breaching). What must not go missing is the run itself:
# the checkpoint schedule invokes log-checkpoint every checkpoint_schedule whatever the
# traffic, and each run signs whatever was logged since the last checkpoint. So this
# alarms when Lambda records no invocation at all for an hour (or two intervals of a
# slower schedule): the schedule deleted or disabled, the scheduler role unable to
# invoke, the function gone. Missing data is breaching here, because invocations are
# expected even when nothing happens. A run that fails is the function's Errors alarm
# (function_errors) and CheckpointFailures, LogTampered or CheckpointFork above.
locals {
  checkpoint_late_period = min(86400, max(3600, ceil(2 * local.checkpoint_interval_secs / 3600) * 3600))
}

resource "aws_cloudwatch_metric_alarm" "checkpoint_late" {
  alarm_name          = "${local.function_names["log-checkpoint"]}-checkpoint-late"
  alarm_description   = "${local.function_names["log-checkpoint"]} has not run for ${local.checkpoint_late_period / 3600} h although its schedule (${var.checkpoint_schedule}) invokes it: audit events go unsigned. Check the ${local.checkpoint_schedule_name} schedule, the scheduler role and the schedules' DLQ."
  namespace           = "AWS/Lambda"
  metric_name         = "Invocations"
  dimensions          = { FunctionName = aws_lambda_function.this["log-checkpoint"].function_name }
  statistic           = "Sum"
  period              = local.checkpoint_late_period
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}
