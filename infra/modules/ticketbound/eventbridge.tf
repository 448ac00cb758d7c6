# The ITSM's (or an integration's) events arrive on a custom bus; one rule per
# detail-type the intake understands.

resource "aws_cloudwatch_event_bus" "itsm" {
  name               = local.event_bus_name
  kms_key_identifier = aws_kms_key.this.arn
  tags               = var.tags
}

locals {
  # rule name suffix => detail-type (functions/itsm-intake, generic::interpret_eventbridge)
  intake_rules = {
    "access-request-approved"  = "Access Request Approved"
    "access-request-withdrawn" = "Access Request Withdrawn"
  }
}

resource "aws_cloudwatch_event_rule" "intake" {
  for_each = local.intake_rules

  name           = "${var.name_prefix}-${each.key}"
  description    = "ticketbound: \"${each.value}\" events to the intake"
  event_bus_name = aws_cloudwatch_event_bus.itsm.name
  event_pattern = jsonencode({
    source        = var.itsm_event_sources
    "detail-type" = [each.value]
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "intake" {
  for_each = local.intake_rules

  rule           = aws_cloudwatch_event_rule.intake[each.key].name
  event_bus_name = aws_cloudwatch_event_bus.itsm.name
  target_id      = "itsm-intake"
  arn            = aws_lambda_function.this["itsm-intake"].arn

  # The intake is idempotent: retrying for an hour is safe, and what still fails is kept.
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

resource "aws_lambda_permission" "eventbridge" {
  for_each = local.intake_rules

  statement_id  = "AllowEventBridge-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["itsm-intake"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.intake[each.key].arn
}
