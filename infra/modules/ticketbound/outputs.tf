output "grants_table_name" {
  description = "Name of the grants table (TICKETBOUND_GRANTS_TABLE)."
  value       = aws_dynamodb_table.grants.name
}

output "grants_table_arn" {
  description = "ARN of the grants table."
  value       = aws_dynamodb_table.grants.arn
}

output "grants_table_stream_arn" {
  description = "ARN of the grants table's stream (new and old images): provisioning and expiry consume it."
  value       = aws_dynamodb_table.grants.stream_arn
}

output "audit_table_name" {
  description = "Name of the audit table (TICKETBOUND_AUDIT_TABLE)."
  value       = aws_dynamodb_table.audit.name
}

output "audit_table_arn" {
  description = "ARN of the audit table."
  value       = aws_dynamodb_table.audit.arn
}

output "audit_table_stream_arn" {
  description = "ARN of the audit table's stream (new images): the ticket write-back consumes it."
  value       = aws_dynamodb_table.audit.stream_arn
}

output "identities_table_name" {
  description = "Name of the identity registry table (TICKETBOUND_IDENTITIES_TABLE): operators manage it with `ticketbound identities add|import|retire`."
  value       = aws_dynamodb_table.identities.name
}

output "identities_table_arn" {
  description = "ARN of the identity registry table. No function role may write it; grant operators what the CLI needs on it (see infra/DEPLOY.md)."
  value       = aws_dynamodb_table.identities.arn
}

output "intake_function_name" {
  description = "Name of the itsm-intake Lambda function."
  value       = aws_lambda_function.this["itsm-intake"].function_name
}

output "intake_function_arn" {
  description = "ARN of the itsm-intake Lambda function."
  value       = aws_lambda_function.this["itsm-intake"].arn
}

output "intake_role_arn" {
  description = "ARN of the itsm-intake function's execution role."
  value       = aws_iam_role.function["itsm-intake"].arn
}

output "intake_function_url" {
  description = "The intake's HTTPS endpoint. Point the ITSM webhooks at <url>jira, <url>servicenow and <url>generic."
  value       = aws_lambda_function_url.this["itsm-intake"].function_url
}

output "intake_log_group_name" {
  description = "CloudWatch log group of the itsm-intake function."
  value       = aws_cloudwatch_log_group.function["itsm-intake"].name
}

output "event_bus_name" {
  description = "Name of the EventBridge bus the ITSM sends \"Access Request Approved\"/\"Access Request Withdrawn\" events to."
  value       = aws_cloudwatch_event_bus.itsm.name
}

output "event_bus_arn" {
  description = "ARN of the ticketbound EventBridge bus (grant events:PutEvents on it to senders)."
  value       = aws_cloudwatch_event_bus.itsm.arn
}

output "jira_webhook_secret_arn" {
  description = "ARN of the Jira webhook signing secret: put the webhook's secret value here."
  value       = aws_secretsmanager_secret.webhook["jira"].arn
}

output "servicenow_webhook_secret_arn" {
  description = "ARN of the ServiceNow shared secret (HMAC key or bearer token): put its value here."
  value       = aws_secretsmanager_secret.webhook["servicenow"].arn
}

output "generic_webhook_secret_arn" {
  description = "ARN of the generic senders' HMAC secret: put its value here."
  value       = aws_secretsmanager_secret.webhook["generic"].arn
}

output "servicenow_api_credentials_secret_arn" {
  description = "ARN of the ServiceNow API credentials secret ticket-writeback uses: put {\"auth\":\"basic\",\"username\":...,\"password\":...} or {\"auth\":\"oauth\",\"client_id\":...,\"client_secret\":...} here."
  value       = aws_secretsmanager_secret.itsm_api["servicenow"].arn
}

output "jira_api_credentials_secret_arn" {
  description = "ARN of the Jira API credentials secret ticket-writeback uses: put {\"email\":...,\"api_token\":...} here."
  value       = aws_secretsmanager_secret.itsm_api["jira"].arn
}

output "kms_key_arn" {
  description = "ARN of the module's customer-managed KMS key."
  value       = aws_kms_key.this.arn
}

output "kms_key_alias" {
  description = "Alias of the module's KMS key."
  value       = aws_kms_alias.this.name
}

output "intake_dlq_arn" {
  description = "ARN of the queue holding the intake's failed asynchronous invocations."
  value       = aws_sqs_queue.function_dlq["itsm-intake"].arn
}

output "intake_dlq_url" {
  description = "URL of the queue holding the intake's failed asynchronous invocations."
  value       = aws_sqs_queue.function_dlq["itsm-intake"].url
}

output "events_dlq_arn" {
  description = "ARN of the queue holding events EventBridge could not deliver to the intake."
  value       = aws_sqs_queue.events_dlq.arn
}

output "events_dlq_url" {
  description = "URL of the queue holding events EventBridge could not deliver to the intake."
  value       = aws_sqs_queue.events_dlq.url
}

output "provision_function_name" {
  description = "Name of the grant-provision Lambda function."
  value       = aws_lambda_function.this["grant-provision"].function_name
}

output "provision_function_arn" {
  description = "ARN of the grant-provision Lambda function."
  value       = aws_lambda_function.this["grant-provision"].arn
}

output "provision_role_arn" {
  description = "ARN of the grant-provision function's execution role (one of the principals the credential secrets' resource policies let read)."
  value       = aws_iam_role.function["grant-provision"].arn
}

output "expire_function_name" {
  description = "Name of the grant-expire Lambda function."
  value       = aws_lambda_function.this["grant-expire"].function_name
}

output "expire_function_arn" {
  description = "ARN of the grant-expire Lambda function."
  value       = aws_lambda_function.this["grant-expire"].arn
}

output "expire_role_arn" {
  description = "ARN of the grant-expire function's execution role."
  value       = aws_iam_role.function["grant-expire"].arn
}

output "rotate_function_name" {
  description = "Name of the secret-rotate Lambda function (Secrets Manager's rotation function for the credential secrets)."
  value       = aws_lambda_function.this["secret-rotate"].function_name
}

output "rotate_function_arn" {
  description = "ARN of the secret-rotate Lambda function (TICKETBOUND_ROTATION_FUNCTION_ARN of grant-provision)."
  value       = aws_lambda_function.this["secret-rotate"].arn
}

output "rotate_role_arn" {
  description = "ARN of the secret-rotate function's execution role (one of the principals the credential secrets' resource policies let read)."
  value       = aws_iam_role.function["secret-rotate"].arn
}

output "schedule_group_name" {
  description = "EventBridge Scheduler group of the expiry schedules, the sweep and the reconcile schedule."
  value       = aws_scheduler_schedule_group.this.name
}

output "scheduler_role_arn" {
  description = "ARN of the role EventBridge Scheduler assumes to invoke grant-expire and grant-reconcile."
  value       = aws_iam_role.scheduler.arn
}

output "sweep_schedule_arn" {
  description = "ARN of the recurring schedule that invokes grant-expire's sweep."
  value       = aws_scheduler_schedule.sweep.arn
}

output "provision_dlq_arn" {
  description = "ARN of the queue holding grant-provision's failed asynchronous invocations."
  value       = aws_sqs_queue.function_dlq["grant-provision"].arn
}

output "expire_dlq_arn" {
  description = "ARN of the queue holding grant-expire's failed asynchronous invocations (expiry schedules and sweeps that failed in the function)."
  value       = aws_sqs_queue.function_dlq["grant-expire"].arn
}

output "rotate_dlq_arn" {
  description = "ARN of the queue holding secret-rotate's failed asynchronous invocations."
  value       = aws_sqs_queue.function_dlq["secret-rotate"].arn
}

output "provision_stream_dlq_arn" {
  description = "ARN of the queue describing the grants stream batches grant-provision gave up on."
  value       = aws_sqs_queue.stream_dlq["grant-provision"].arn
}

output "expire_stream_dlq_arn" {
  description = "ARN of the queue describing the grants stream batches grant-expire gave up on."
  value       = aws_sqs_queue.stream_dlq["grant-expire"].arn
}

output "schedule_dlq_arn" {
  description = "ARN of the queue holding the schedule invocations (expiry schedules, sweep, reconcile) EventBridge Scheduler could not deliver."
  value       = aws_sqs_queue.schedule_dlq.arn
}

output "writeback_function_name" {
  description = "Name of the ticket-writeback Lambda function."
  value       = aws_lambda_function.this["ticket-writeback"].function_name
}

output "writeback_function_arn" {
  description = "ARN of the ticket-writeback Lambda function."
  value       = aws_lambda_function.this["ticket-writeback"].arn
}

output "writeback_role_arn" {
  description = "ARN of the ticket-writeback function's execution role."
  value       = aws_iam_role.function["ticket-writeback"].arn
}

output "writeback_dlq_arn" {
  description = "ARN of the queue holding ticket-writeback's failed asynchronous invocations."
  value       = aws_sqs_queue.function_dlq["ticket-writeback"].arn
}

output "writeback_stream_dlq_arn" {
  description = "ARN of the queue describing the audit stream batches ticket-writeback gave up on."
  value       = aws_sqs_queue.stream_dlq["ticket-writeback"].arn
}

output "reconcile_function_name" {
  description = "Name of the grant-reconcile Lambda function."
  value       = aws_lambda_function.this["grant-reconcile"].function_name
}

output "reconcile_function_arn" {
  description = "ARN of the grant-reconcile Lambda function."
  value       = aws_lambda_function.this["grant-reconcile"].arn
}

output "reconcile_role_arn" {
  description = "ARN of the grant-reconcile function's execution role."
  value       = aws_iam_role.function["grant-reconcile"].arn
}

output "reconcile_dlq_arn" {
  description = "ARN of the queue holding grant-reconcile's failed asynchronous invocations (reconcile runs that failed in the function)."
  value       = aws_sqs_queue.function_dlq["grant-reconcile"].arn
}

output "reconcile_schedule_arn" {
  description = "ARN of the recurring schedule that invokes grant-reconcile."
  value       = aws_scheduler_schedule.reconcile.arn
}

output "log_table_name" {
  description = "Name of the signed log's table (TICKETBOUND_LOG_TABLE): written by log-checkpoint alone; the CLI reads it for evidence bundles."
  value       = aws_dynamodb_table.log.name
}

output "log_table_arn" {
  description = "ARN of the signed log's table. No function role but log-checkpoint's may write it."
  value       = aws_dynamodb_table.log.arn
}

output "log_signing_key_arn" {
  description = "ARN of the KMS key (ECC_NIST_P256, SIGN_VERIFY) that signs the checkpoints (TICKETBOUND_LOG_KEY_ID): only log-checkpoint's role may sign. Verifiers pin its public key (public-key.der in the bucket, or kms:GetPublicKey)."
  value       = local.log_signing_key.arn
}

output "log_signing_previous_key_arn" {
  description = "During a key rollover (two log_signing_key_generations): ARN of the retiring key, which signs each checkpoint beside the new one (TICKETBOUND_LOG_PREVIOUS_KEY_ID); null otherwise."
  value       = local.log_signing_previous_key == null ? null : local.log_signing_previous_key.arn
}

output "log_origin" {
  description = "The signed log's name (TICKETBOUND_LOG_ORIGIN): every checkpoint's origin line and its key's name."
  value       = local.log_origin
}

output "checkpoint_bucket_name" {
  description = "Name of the Object Lock (COMPLIANCE) bucket that keeps the checkpoints (TICKETBOUND_LOG_BUCKET): auditors fetch the newest checkpoint here."
  value       = aws_s3_bucket.checkpoints.bucket
}

output "checkpoint_bucket_arn" {
  description = "ARN of the checkpoints bucket."
  value       = aws_s3_bucket.checkpoints.arn
}

output "checkpoint_function_name" {
  description = "Name of the log-checkpoint Lambda function."
  value       = aws_lambda_function.this["log-checkpoint"].function_name
}

output "checkpoint_function_arn" {
  description = "ARN of the log-checkpoint Lambda function."
  value       = aws_lambda_function.this["log-checkpoint"].arn
}

output "checkpoint_role_arn" {
  description = "ARN of the log-checkpoint function's execution role: the only principal that may write the log table and sign with the log key."
  value       = aws_iam_role.function["log-checkpoint"].arn
}

output "checkpoint_dlq_arn" {
  description = "ARN of log-checkpoint's dead-letter queue (failed asynchronous invocations: the schedule's)."
  value       = aws_sqs_queue.function_dlq["log-checkpoint"].arn
}

output "checkpoint_stream_dlq_arn" {
  description = "ARN of log-checkpoint's audit stream DLQ: batches Lambda gave up on, i.e. audit events missing from the signed log."
  value       = aws_sqs_queue.stream_dlq["log-checkpoint"].arn
}

output "checkpoint_schedule_arn" {
  description = "ARN of the schedule that has log-checkpoint sign a checkpoint of what was logged since the last."
  value       = aws_scheduler_schedule.checkpoint.arn
}
