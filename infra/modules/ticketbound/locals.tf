data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Names are fixed here, not read back from resources, so that the KMS key policy can
  # name the log groups and rules before they exist (no dependency cycle).
  grants_table_name = "${var.name_prefix}-grants"
  audit_table_name  = "${var.name_prefix}-audit"
  # shared/store/src/schema.rs: GRANTS.indexes, in the same order.
  grants_index_names = ["by-ticket", "by-owner", "by-state-expiry"]
  event_bus_name     = "${var.name_prefix}-itsm"
  events_dlq_name    = "${var.name_prefix}-itsm-events-dlq"

  # One Lambda function per entry. The key is the crate folder, the binary and the
  # Terraform function name (functions/<key>/), deployed as "<name_prefix>-<key>".
  # Later functions (grant-provision, secret-rotate, grant-expire, ticket-writeback,
  # grant-reconcile) join as entries here, with their environment in
  # local.function_environment and their permissions in local.function_statements.
  # Only settings known before any resource exists belong in this map.
  functions = {
    "itsm-intake" = {
      description          = "ticketbound intake: ITSM approvals (signed webhooks on the function URL, EventBridge events) become grants"
      memory_size          = var.intake_memory_size
      timeout              = var.intake_timeout
      reserved_concurrency = var.intake_reserved_concurrency
      function_url         = true
    }
  }

  function_names  = { for k, _ in local.functions : k => "${var.name_prefix}-${k}" }
  function_zips   = { for k, _ in local.functions : k => "${var.package_dir}/${k}/bootstrap.zip" }
  log_group_names = { for k, name in local.function_names : k => "/aws/lambda/${name}" }
  log_group_arns = {
    for k, name in local.log_group_names :
    k => "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${name}"
  }
  function_dlq_names = { for k, name in local.function_names : k => "${name}-dlq" }

  # Every dead-letter queue, for the alarms: key => queue name.
  dlq_names = merge(
    { for k, name in local.function_dlq_names : k => name },
    { "itsm-events" = local.events_dlq_name },
  )

  webhook_integrations = toset(["jira", "servicenow", "generic"])

  # The intake's configuration: exactly the variables functions/itsm-intake/src/config.rs
  # reads. TICKETBOUND_POLICY_DIR is for packaged policy directories and stays unset;
  # log format and level come from logging_config (AWS_LAMBDA_LOG_FORMAT/LEVEL).
  function_environment = {
    "itsm-intake" = merge(
      {
        TICKETBOUND_GRANTS_TABLE            = aws_dynamodb_table.grants.name
        TICKETBOUND_AUDIT_TABLE             = aws_dynamodb_table.audit.name
        TICKETBOUND_RETENTION_DAYS          = tostring(var.grant_retention_days)
        TICKETBOUND_JIRA_SECRET_ID          = aws_secretsmanager_secret.webhook["jira"].arn
        TICKETBOUND_SERVICENOW_SECRET_ID    = aws_secretsmanager_secret.webhook["servicenow"].arn
        TICKETBOUND_SERVICENOW_AUTH         = var.servicenow_auth
        TICKETBOUND_GENERIC_SECRET_ID       = aws_secretsmanager_secret.webhook["generic"].arn
        TICKETBOUND_REPLAY_WINDOW_SECS      = tostring(var.replay_window_secs)
        TICKETBOUND_DELIVERY_TTL_HOURS      = tostring(var.delivery_ttl_hours)
        TICKETBOUND_SECRET_CACHE_SECS       = tostring(var.secret_cache_secs)
        TICKETBOUND_SECRET_MIN_REFRESH_SECS = tostring(var.secret_min_refresh_secs)
      },
      # Minified: Lambda allows 4 KB of environment in all.
      var.jira_mapping_json == null ? {} : {
        TICKETBOUND_JIRA_MAPPING = jsonencode(jsondecode(var.jira_mapping_json))
      },
      var.servicenow_mapping_json == null ? {} : {
        TICKETBOUND_SERVICENOW_MAPPING = jsonencode(jsondecode(var.servicenow_mapping_json))
      },
    )
  }
}
