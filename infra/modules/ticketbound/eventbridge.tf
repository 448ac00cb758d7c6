# The ITSM's (or an integration's) events arrive on a custom bus; one rule per
# detail-type the intake understands.

resource "aws_cloudwatch_event_bus" "itsm" {
  name               = local.event_bus_name
  kms_key_identifier = aws_kms_key.this.arn
  tags               = var.tags
}

# Who may put events on the bus. The intake checks each event's source and account
# itself, but PutEvents lets its caller choose `source`, and a caller in this account
# gets this account's `account`: only the bus can say who the caller is.
resource "aws_cloudwatch_event_bus_policy" "itsm" {
  event_bus_name = aws_cloudwatch_event_bus.itsm.name
  policy         = local.event_bus_policy

  lifecycle {
    # The intake hears only events whose account is this one (EventBridge sets it to
    # the publisher's): a publisher elsewhere would have every event refused.
    precondition {
      condition     = alltrue([for arn in var.itsm_event_publishers : split(":", arn)[4] == local.account_id])
      error_message = "itsm_event_publishers must be roles or users of this account: the intake refuses events from any other account (TICKETBOUND_EVENTBRIDGE_ACCOUNT)."
    }
  }
}

locals {
  # An Allow alone would not do: in this account a principal whose identity policy
  # allows events:PutEvents needs nothing from the bus policy. An explicit Deny in the
  # resource policy stops every principal, whatever its identity policies allow. An
  # assumed-role session's aws:PrincipalArn is its role's ARN, so roles can be named.
  # With no publisher named, ArnNotLike would have nothing to compare with: the bus
  # then denies PutEvents to everyone, and the EventBridge path stays closed until
  # itsm_event_publishers names the integrations' roles.
  # No Allow is needed: publishers are of this account (see the precondition), and
  # their identity policies allow them.
  event_bus_policy = length(var.itsm_event_publishers) == 0 ? jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "NoPublisherNamed"
        Effect    = "Deny"
        Principal = "*"
        Action    = "events:PutEvents"
        Resource  = aws_cloudwatch_event_bus.itsm.arn
      },
    ]
    }) : jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "OnlyNamedPublishers"
        Effect    = "Deny"
        Principal = "*"
        Action    = "events:PutEvents"
        Resource  = aws_cloudwatch_event_bus.itsm.arn
        Condition = { ArnNotLike = { "aws:PrincipalArn" = var.itsm_event_publishers } }
      },
    ]
  })
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
