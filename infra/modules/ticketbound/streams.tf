# The grants stream feeds grant-provision (new Approved grants) and grant-expire (TTL
# removals of expiry triggers, moves to Revoking); the audit stream feeds
# ticket-writeback (new audit events) and log-checkpoint (new and rewritten ones). Each handler reports the records it could not
# finish (ReportBatchItemFailures); Lambda retries from there, splits failing batches,
# and after stream_maximum_retry_attempts (or an hour) sends the batch's description
# to the function's stream DLQ instead of blocking the shard. A revocation that fails
# does not hold the shard either: grant-expire records the failure, answers the record
# and retries with a one-time schedule of its own (tb-expire-<grant id>-r<attempt>).
resource "aws_lambda_event_source_mapping" "grants_stream" {
  for_each = local.stream_consumers

  function_name     = aws_lambda_function.this[each.key].arn
  event_source_arn  = aws_dynamodb_table.grants.stream_arn
  starting_position = "LATEST"
  batch_size        = 10

  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = var.stream_maximum_retry_attempts
  maximum_record_age_in_seconds  = 3600

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.stream_dlq[each.key].arn
    }
  }

  filter_criteria {
    dynamic "filter" {
      for_each = each.value
      content {
        pattern = jsonencode(filter.value)
      }
    }
  }

  # Lambda checks at creation that the role may read the stream and send to the DLQ.
  depends_on = [aws_iam_role_policy.function]
}

# The audit stream has two consumers, each with its own mapping (and so its own place
# in the shards): ticket-writeback and log-checkpoint.
#
# ticket-writeback holds the shard when DynamoDB fails, and while the ITSM fails in ways
# that may pass, for three invocations' worth of attempts (HOLD_ROUNDS, within the
# default 10 retries); an ITSM that keeps failing then costs a dead-letter record and a
# WritebackFailures count, and the shard moves on. The batch is as large as the
# function can finish within its timeout even then (local.writeback_batch_size).
# log-checkpoint logs a whole batch or none of it (the batch is delivered again from
# its first record); a batch given up on is an audit event missing from the signed log,
# which the verifier reports: the stream DLQ's alarm says so first.
resource "aws_lambda_event_source_mapping" "audit_stream" {
  for_each = local.audit_stream_consumers

  function_name     = aws_lambda_function.this[each.key].arn
  event_source_arn  = aws_dynamodb_table.audit.stream_arn
  starting_position = "LATEST"
  batch_size        = local.audit_stream_batch_sizes[each.key]

  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  # The checkpointer never gives a record up: one skipped is an audit event missing
  # from the signed log (a failure that persists is LogTampered's or
  # CheckpointFailures' alarm, and holds the shard until it is looked at).
  maximum_retry_attempts        = each.key == "log-checkpoint" ? -1 : var.stream_maximum_retry_attempts
  maximum_record_age_in_seconds = each.key == "log-checkpoint" ? -1 : 3600

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.stream_dlq[each.key].arn
    }
  }

  filter_criteria {
    dynamic "filter" {
      for_each = each.value
      content {
        pattern = jsonencode(filter.value)
      }
    }
  }

  depends_on = [aws_iam_role_policy.function]
}
