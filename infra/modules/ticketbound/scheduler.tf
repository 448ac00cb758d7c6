# EventBridge Scheduler: grant-provision creates each grant's one-time expiry schedule
# in this group at run time (functions/grant-provision, shared/schedule); the sweep
# below catches whatever every other expiry path missed.
resource "aws_scheduler_schedule_group" "this" {
  name = local.schedule_group_name
  tags = var.tags
}

resource "aws_scheduler_schedule" "sweep" {
  #checkov:skip=CKV_AWS_297:The sweep's only payload is the constant {"sweep": true}, and the one-time expiry schedules grant-provision creates carry a grant id and use the AWS owned key too; a customer managed key would protect nothing secret.
  name        = local.sweep_schedule_name
  group_name  = aws_scheduler_schedule_group.this.name
  description = "ticketbound: grant-expire sweeps for overdue Active/Provisioning grants and waiting Revoking ones"

  schedule_expression          = var.sweep_interval_minutes == 1 ? "rate(1 minute)" : "rate(${var.sweep_interval_minutes} minutes)"
  schedule_expression_timezone = "UTC"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["grant-expire"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ sweep = true })

    # The next sweep comes within sweep_interval_minutes: retrying longer is pointless.
    retry_policy {
      maximum_event_age_in_seconds = max(60, min(86400, var.sweep_interval_minutes * 60))
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = aws_sqs_queue.schedule_dlq.arn
    }
  }

  # Scheduler checks nothing at creation, but the first run must find the role able to
  # invoke the function.
  depends_on = [aws_iam_role_policy.scheduler]
}
