# EventBridge Scheduler: grant-provision creates each grant's one-time expiry schedule
# in this group at run time (functions/grant-provision, shared/schedule), and
# grant-expire a one-time retry of each revocation that failed
# (tb-expire-<grant id>-r<attempt>); the sweep below catches whatever every other
# expiry path missed, the reconcile schedule has grant-reconcile compare the records
# with what is live, and the checkpoint schedule has log-checkpoint sign the log.
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

# A rate() expression's interval, in seconds, when it is one (cron(): an hour). A
# reconcile delivery older than the interval is superseded by the next run.
locals {
  rate_unit_secs = { minute = 60, minutes = 60, hour = 3600, hours = 3600, day = 86400, days = 86400 }
  reconcile_rate = try(regex("^rate\\((\\d+) (minute|minutes|hour|hours|day|days)\\)$", var.reconcile_schedule_expression), [])
  reconcile_interval_secs = try(
    tonumber(local.reconcile_rate[0]) * lookup(local.rate_unit_secs, local.reconcile_rate[1]),
    3600,
  )
}

resource "aws_scheduler_schedule" "reconcile" {
  #checkov:skip=CKV_AWS_297:The only payload is the constant {"reconcile": true}; a customer managed key would protect nothing secret (as for the sweep).
  name        = local.reconcile_schedule_name
  group_name  = aws_scheduler_schedule_group.this.name
  description = "ticketbound: grant-reconcile compares the recorded grants with the live secrets and target logins"

  schedule_expression          = var.reconcile_schedule_expression
  schedule_expression_timezone = "UTC"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["grant-reconcile"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ reconcile = true })

    retry_policy {
      maximum_event_age_in_seconds = max(60, min(86400, local.reconcile_interval_secs))
      maximum_retry_attempts       = 3
    }

    # The same DLQ as the expiry schedules: the scheduler role may send there.
    dead_letter_config {
      arn = aws_sqs_queue.schedule_dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}

# log-checkpoint's schedule: a checkpoint of whatever was logged since the last one,
# however few events (the checkpointer also signs every checkpoint_every events), so a
# quiet log is never long unsigned. A run with nothing new logged signs nothing.
locals {
  checkpoint_rate = try(regex("^rate\\((\\d+) (minute|minutes|hour|hours|day|days)\\)$", var.checkpoint_schedule), [])
  checkpoint_interval_secs = try(
    tonumber(local.checkpoint_rate[0]) * lookup(local.rate_unit_secs, local.checkpoint_rate[1]),
    3600,
  )
}

resource "aws_scheduler_schedule" "checkpoint" {
  #checkov:skip=CKV_AWS_297:The only payload is the constant {"checkpoint": true}; a customer managed key would protect nothing secret (as for the sweep).
  name        = local.checkpoint_schedule_name
  group_name  = aws_scheduler_schedule_group.this.name
  description = "ticketbound: log-checkpoint signs a checkpoint of the audit events logged since the last one"

  schedule_expression          = var.checkpoint_schedule
  schedule_expression_timezone = "UTC"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    # Anything without "Records" is the schedule (functions/log-checkpoint/src/main.rs).
    arn      = aws_lambda_function.this["log-checkpoint"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ checkpoint = true })

    # The next run comes within the interval: retrying longer is pointless.
    retry_policy {
      maximum_event_age_in_seconds = max(60, min(86400, local.checkpoint_interval_secs))
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = aws_sqs_queue.schedule_dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}
