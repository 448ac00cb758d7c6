output "intake_function_url" {
  description = "The intake's HTTPS endpoint: ITSM webhooks go to <url>jira, <url>servicenow, <url>generic."
  value       = module.ticketbound.intake_function_url
}

output "intake_function_name" {
  description = "Name of the itsm-intake Lambda function."
  value       = module.ticketbound.intake_function_name
}

output "intake_function_arn" {
  description = "ARN of the itsm-intake Lambda function."
  value       = module.ticketbound.intake_function_arn
}

output "intake_role_arn" {
  description = "ARN of the intake's execution role."
  value       = module.ticketbound.intake_role_arn
}

output "grants_table_name" {
  description = "Name of the grants table."
  value       = module.ticketbound.grants_table_name
}

output "grants_table_arn" {
  description = "ARN of the grants table."
  value       = module.ticketbound.grants_table_arn
}

output "grants_table_stream_arn" {
  description = "ARN of the grants table's stream."
  value       = module.ticketbound.grants_table_stream_arn
}

output "audit_table_name" {
  description = "Name of the audit table."
  value       = module.ticketbound.audit_table_name
}

output "audit_table_arn" {
  description = "ARN of the audit table."
  value       = module.ticketbound.audit_table_arn
}

output "audit_table_stream_arn" {
  description = "ARN of the audit table's stream."
  value       = module.ticketbound.audit_table_stream_arn
}

output "identities_table_name" {
  description = "Name of the identity registry table (TICKETBOUND_IDENTITIES_TABLE for `ticketbound identities`)."
  value       = module.ticketbound.identities_table_name
}

output "identities_table_arn" {
  description = "ARN of the identity registry table."
  value       = module.ticketbound.identities_table_arn
}

output "event_bus_name" {
  description = "Name of the ticketbound EventBridge bus."
  value       = module.ticketbound.event_bus_name
}

output "event_bus_arn" {
  description = "ARN of the ticketbound EventBridge bus."
  value       = module.ticketbound.event_bus_arn
}

output "jira_webhook_secret_arn" {
  description = "ARN of the Jira webhook secret (put its value with `aws secretsmanager put-secret-value`)."
  value       = module.ticketbound.jira_webhook_secret_arn
}

output "servicenow_webhook_secret_arn" {
  description = "ARN of the ServiceNow shared secret."
  value       = module.ticketbound.servicenow_webhook_secret_arn
}

output "generic_webhook_secret_arn" {
  description = "ARN of the generic senders' secret."
  value       = module.ticketbound.generic_webhook_secret_arn
}

output "kms_key_arn" {
  description = "ARN of the ticketbound KMS key."
  value       = module.ticketbound.kms_key_arn
}

output "intake_dlq_arn" {
  description = "ARN of the intake's dead-letter queue."
  value       = module.ticketbound.intake_dlq_arn
}

output "intake_dlq_url" {
  description = "URL of the intake's dead-letter queue."
  value       = module.ticketbound.intake_dlq_url
}

output "events_dlq_arn" {
  description = "ARN of the EventBridge dead-letter queue."
  value       = module.ticketbound.events_dlq_arn
}

output "events_dlq_url" {
  description = "URL of the EventBridge dead-letter queue."
  value       = module.ticketbound.events_dlq_url
}

output "provision_function_name" {
  description = "Name of the grant-provision Lambda function."
  value       = module.ticketbound.provision_function_name
}

output "expire_function_name" {
  description = "Name of the grant-expire Lambda function."
  value       = module.ticketbound.expire_function_name
}

output "rotate_function_name" {
  description = "Name of the secret-rotate Lambda function (the credential secrets' rotation function)."
  value       = module.ticketbound.rotate_function_name
}

output "rotate_function_arn" {
  description = "ARN of the secret-rotate Lambda function."
  value       = module.ticketbound.rotate_function_arn
}

output "schedule_group_name" {
  description = "EventBridge Scheduler group of the expiry schedules, the sweep and the reconcile schedule."
  value       = module.ticketbound.schedule_group_name
}

output "scheduler_role_arn" {
  description = "Role EventBridge Scheduler assumes to invoke grant-expire, grant-reconcile and log-checkpoint."
  value       = module.ticketbound.scheduler_role_arn
}

output "sweep_schedule_arn" {
  description = "ARN of the sweep schedule."
  value       = module.ticketbound.sweep_schedule_arn
}

output "provision_stream_dlq_arn" {
  description = "Grants stream batches grant-provision gave up on."
  value       = module.ticketbound.provision_stream_dlq_arn
}

output "expire_stream_dlq_arn" {
  description = "Grants stream batches grant-expire gave up on."
  value       = module.ticketbound.expire_stream_dlq_arn
}

output "expire_dlq_arn" {
  description = "grant-expire's failed asynchronous invocations (schedules, sweeps)."
  value       = module.ticketbound.expire_dlq_arn
}

output "schedule_dlq_arn" {
  description = "Schedule invocations (expiry, sweep, reconcile) EventBridge Scheduler could not deliver."
  value       = module.ticketbound.schedule_dlq_arn
}

output "servicenow_api_credentials_secret_arn" {
  description = "ServiceNow API credentials secret of the write-back (put its JSON value with `aws secretsmanager put-secret-value`)."
  value       = module.ticketbound.servicenow_api_credentials_secret_arn
}

output "jira_api_credentials_secret_arn" {
  description = "Jira API credentials secret of the write-back (put its JSON value with `aws secretsmanager put-secret-value`)."
  value       = module.ticketbound.jira_api_credentials_secret_arn
}

output "writeback_function_name" {
  description = "Name of the ticket-writeback Lambda function."
  value       = module.ticketbound.writeback_function_name
}

output "writeback_dlq_arn" {
  description = "ticket-writeback's failed asynchronous invocations."
  value       = module.ticketbound.writeback_dlq_arn
}

output "writeback_stream_dlq_arn" {
  description = "Audit stream batches ticket-writeback gave up on."
  value       = module.ticketbound.writeback_stream_dlq_arn
}

output "reconcile_function_name" {
  description = "Name of the grant-reconcile Lambda function."
  value       = module.ticketbound.reconcile_function_name
}

output "reconcile_dlq_arn" {
  description = "grant-reconcile's failed asynchronous (scheduled) invocations."
  value       = module.ticketbound.reconcile_dlq_arn
}

output "reconcile_schedule_arn" {
  description = "ARN of the reconcile schedule."
  value       = module.ticketbound.reconcile_schedule_arn
}

output "log_table_name" {
  description = "The signed log's table (TICKETBOUND_LOG_TABLE for the CLI's evidence bundles)."
  value       = module.ticketbound.log_table_name
}

output "log_signing_key_arn" {
  description = "The KMS key that signs the checkpoints (only log-checkpoint may sign)."
  value       = module.ticketbound.log_signing_key_arn
}

output "log_origin" {
  description = "The signed log's name, which verifiers pin with its key."
  value       = module.ticketbound.log_origin
}

output "checkpoint_bucket_name" {
  description = "The Object Lock bucket that keeps the checkpoints (TICKETBOUND_LOG_BUCKET)."
  value       = module.ticketbound.checkpoint_bucket_name
}

output "checkpoint_function_name" {
  description = "Name of the log-checkpoint Lambda function."
  value       = module.ticketbound.checkpoint_function_name
}

output "checkpoint_stream_dlq_arn" {
  description = "Audit stream batches log-checkpoint gave up on: events missing from the signed log."
  value       = module.ticketbound.checkpoint_stream_dlq_arn
}
