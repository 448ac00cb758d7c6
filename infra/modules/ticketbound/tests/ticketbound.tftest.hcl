# The module's security-relevant settings, planned and "applied" against a mocked AWS
# provider: no account, no credentials, nothing created.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "111122223333"
      arn        = "arn:aws:iam::111122223333:user/terraform-test"
      user_id    = "AIDATESTUSER"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition          = "aws"
      dns_suffix         = "amazonaws.com"
      reverse_dns_prefix = "com.amazonaws"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn    = "arn:aws:kms:eu-west-1:111122223333:key/0b7f1c2e-0000-4000-8000-000000000001"
      key_id = "0b7f1c2e-0000-4000-8000-000000000001"
    }
  }
  # The provider validates ARNs it is given, so the generated ones must look like ARNs.
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111122223333:role/ticketbound-itsm-intake" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-itsm-intake"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-itsm-intake/invocations"
    }
  }
  mock_resource "aws_lambda_function_url" {
    defaults = { function_url = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-itsm-events-dlq" }
  }
  mock_resource "aws_cloudwatch_event_bus" {
    defaults = { arn = "arn:aws:events:eu-west-1:111122223333:event-bus/ticketbound-itsm" }
  }
}

# Real-shaped ARNs, so that the policies can be compared with what AWS would hold.
override_resource {
  target = aws_dynamodb_table.grants
  values = {
    arn        = "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"
    stream_arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants/stream/2025-01-01T00:00:00.000"
  }
}

override_resource {
  target = aws_dynamodb_table.audit
  values = {
    arn        = "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit"
    stream_arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit/stream/2025-01-01T00:00:00.000"
  }
}

override_resource {
  target = aws_secretsmanager_secret.webhook["jira"]
  values = { arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/jira-AbCdEf" }
}

override_resource {
  target = aws_secretsmanager_secret.webhook["servicenow"]
  values = { arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/servicenow-AbCdEf" }
}

override_resource {
  target = aws_secretsmanager_secret.webhook["generic"]
  values = { arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/generic-AbCdEf" }
}

override_resource {
  target = aws_cloudwatch_log_group.function["itsm-intake"]
  values = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-itsm-intake" }
}

override_resource {
  target = aws_sqs_queue.function_dlq["itsm-intake"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-itsm-intake-dlq" }
}

override_resource {
  target = aws_cloudwatch_event_rule.intake["access-request-approved"]
  values = { arn = "arn:aws:events:eu-west-1:111122223333:rule/ticketbound-itsm/ticketbound-access-request-approved" }
}

override_resource {
  target = aws_cloudwatch_event_rule.intake["access-request-withdrawn"]
  values = { arn = "arn:aws:events:eu-west-1:111122223333:rule/ticketbound-itsm/ticketbound-access-request-withdrawn" }
}

variables {
  package_dir = "tests/fixtures/package"
}

run "grants_table_matches_the_schema" {
  assert {
    condition     = aws_dynamodb_table.grants.name == "ticketbound-grants"
    error_message = "grants table name"
  }
  assert {
    condition     = aws_dynamodb_table.grants.hash_key == "pk" && aws_dynamodb_table.grants.range_key == "sk"
    error_message = "grants keys must be pk (hash) and sk (range)"
  }
  assert {
    condition = {
      for a in aws_dynamodb_table.grants.attribute : a.name => a.type
      } == {
      pk = "S", sk = "S", ticket_key = "S", owner_key = "S", id = "S", state = "S", not_after_epoch = "N"
    }
    error_message = "grants attribute definitions differ from shared/store/src/schema.rs"
  }
  assert {
    condition = {
      for g in aws_dynamodb_table.grants.global_secondary_index : g.name => [g.hash_key, g.range_key, g.projection_type]
      } == {
      "by-ticket"       = ["ticket_key", "id", "ALL"]
      "by-owner"        = ["owner_key", "id", "ALL"]
      "by-state-expiry" = ["state", "not_after_epoch", "ALL"]
    }
    error_message = "grants indexes differ from shared/store/src/schema.rs"
  }
  assert {
    condition     = aws_dynamodb_table.grants.stream_enabled && aws_dynamodb_table.grants.stream_view_type == "NEW_AND_OLD_IMAGES"
    error_message = "the grants stream must be on with new and old images (expiry needs the old image of TTL removals)"
  }
  assert {
    condition     = aws_dynamodb_table.grants.ttl[0].enabled && aws_dynamodb_table.grants.ttl[0].attribute_name == "expires_at"
    error_message = "grants TTL must be enabled on expires_at"
  }
  assert {
    condition     = aws_dynamodb_table.grants.point_in_time_recovery[0].enabled
    error_message = "grants table needs point-in-time recovery"
  }
  assert {
    condition     = aws_dynamodb_table.grants.server_side_encryption[0].enabled && aws_dynamodb_table.grants.server_side_encryption[0].kms_key_arn == aws_kms_key.this.arn
    error_message = "grants table must be encrypted with the module's KMS key"
  }
  assert {
    condition     = aws_dynamodb_table.grants.billing_mode == "PAY_PER_REQUEST" && aws_dynamodb_table.grants.deletion_protection_enabled
    error_message = "grants table: on-demand billing and deletion protection by default"
  }
}

run "audit_table_matches_the_schema" {
  assert {
    condition     = aws_dynamodb_table.audit.hash_key == "grant_id" && aws_dynamodb_table.audit.range_key == "seq"
    error_message = "audit keys must be grant_id (hash) and seq (range)"
  }
  assert {
    condition     = { for a in aws_dynamodb_table.audit.attribute : a.name => a.type } == { grant_id = "S", seq = "N" }
    error_message = "audit attribute definitions differ from shared/store/src/schema.rs"
  }
  assert {
    condition     = length(aws_dynamodb_table.audit.global_secondary_index) == 0
    error_message = "the audit table has no indexes"
  }
  assert {
    condition     = aws_dynamodb_table.audit.stream_enabled && aws_dynamodb_table.audit.stream_view_type == "NEW_IMAGE"
    error_message = "the audit stream must be on with new images"
  }
  assert {
    condition     = length(aws_dynamodb_table.audit.ttl) == 0 || !try(aws_dynamodb_table.audit.ttl[0].enabled, false)
    error_message = "the audit table must have no TTL: the trail is never deleted by DynamoDB"
  }
  assert {
    condition     = aws_dynamodb_table.audit.point_in_time_recovery[0].enabled
    error_message = "audit table needs point-in-time recovery"
  }
  assert {
    condition     = aws_dynamodb_table.audit.server_side_encryption[0].enabled && aws_dynamodb_table.audit.server_side_encryption[0].kms_key_arn == aws_kms_key.this.arn
    error_message = "audit table must be encrypted with the module's KMS key"
  }
  assert {
    condition     = output.grants_table_stream_arn == aws_dynamodb_table.grants.stream_arn && output.audit_table_stream_arn == aws_dynamodb_table.audit.stream_arn
    error_message = "both stream ARNs are outputs"
  }
}

run "intake_function_configuration" {
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].function_name == "ticketbound-itsm-intake"
    error_message = "the intake is named <name_prefix>-itsm-intake"
  }
  assert {
    condition = (
      aws_lambda_function.this["itsm-intake"].runtime == "provided.al2023" &&
      aws_lambda_function.this["itsm-intake"].architectures == tolist(["arm64"]) &&
      aws_lambda_function.this["itsm-intake"].handler == "bootstrap"
    )
    error_message = "the intake runs the cargo-lambda arm64 bootstrap on provided.al2023"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].filename == "tests/fixtures/package/itsm-intake/bootstrap.zip"
    error_message = "the package is <package_dir>/itsm-intake/bootstrap.zip"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].memory_size == 256 && aws_lambda_function.this["itsm-intake"].timeout == 10
    error_message = "default memory 256 MB, timeout 10 s"
  }
  assert {
    condition = (
      aws_lambda_function.this["itsm-intake"].logging_config[0].log_format == "JSON" &&
      aws_lambda_function.this["itsm-intake"].logging_config[0].application_log_level == "INFO" &&
      aws_lambda_function.this["itsm-intake"].logging_config[0].system_log_level == "WARN" &&
      aws_lambda_function.this["itsm-intake"].logging_config[0].log_group == "/aws/lambda/ticketbound-itsm-intake"
    )
    error_message = "logging: JSON, application INFO, system WARN, into its own log group"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].tracing_config[0].mode == "Active"
    error_message = "X-Ray tracing is active"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].dead_letter_config[0].target_arn == aws_sqs_queue.function_dlq["itsm-intake"].arn
    error_message = "failed async invocations go to the intake's DLQ"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].kms_key_arn == aws_kms_key.this.arn
    error_message = "the environment is encrypted with the module key"
  }
  assert {
    condition     = aws_cloudwatch_log_group.function["itsm-intake"].name == "/aws/lambda/ticketbound-itsm-intake" && aws_cloudwatch_log_group.function["itsm-intake"].retention_in_days == 365 && aws_cloudwatch_log_group.function["itsm-intake"].kms_key_id == aws_kms_key.this.arn
    error_message = "log group: /aws/lambda/<name>, 365 days, KMS-encrypted"
  }
  assert {
    condition     = aws_sqs_queue.function_dlq["itsm-intake"].kms_master_key_id == aws_kms_key.this.arn && aws_sqs_queue.events_dlq.kms_master_key_id == aws_kms_key.this.arn
    error_message = "both DLQs are encrypted with the module key"
  }
}

run "intake_environment_is_what_the_code_reads" {
  assert {
    condition = sort(keys(aws_lambda_function.this["itsm-intake"].environment[0].variables)) == sort([
      "TICKETBOUND_GRANTS_TABLE",
      "TICKETBOUND_AUDIT_TABLE",
      "TICKETBOUND_RETENTION_DAYS",
      "TICKETBOUND_JIRA_SECRET_ID",
      "TICKETBOUND_SERVICENOW_SECRET_ID",
      "TICKETBOUND_SERVICENOW_AUTH",
      "TICKETBOUND_GENERIC_SECRET_ID",
      "TICKETBOUND_REPLAY_WINDOW_SECS",
      "TICKETBOUND_DELIVERY_TTL_HOURS",
      "TICKETBOUND_SECRET_CACHE_SECS",
      "TICKETBOUND_SECRET_MIN_REFRESH_SECS",
    ])
    error_message = "the intake's environment must be exactly the variables functions/itsm-intake/src/config.rs reads (mappings only when set, no POLICY_DIR)"
  }
  assert {
    condition = aws_lambda_function.this["itsm-intake"].environment[0].variables == tomap({
      TICKETBOUND_GRANTS_TABLE            = "ticketbound-grants"
      TICKETBOUND_AUDIT_TABLE             = "ticketbound-audit"
      TICKETBOUND_RETENTION_DAYS          = "400"
      TICKETBOUND_JIRA_SECRET_ID          = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/jira-AbCdEf"
      TICKETBOUND_SERVICENOW_SECRET_ID    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/servicenow-AbCdEf"
      TICKETBOUND_SERVICENOW_AUTH         = "hmac"
      TICKETBOUND_GENERIC_SECRET_ID       = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/generic-AbCdEf"
      TICKETBOUND_REPLAY_WINDOW_SECS      = "300"
      TICKETBOUND_DELIVERY_TTL_HOURS      = "72"
      TICKETBOUND_SECRET_CACHE_SECS       = "300"
      TICKETBOUND_SECRET_MIN_REFRESH_SECS = "30"
    })
    error_message = "the intake's environment values (defaults match config.rs)"
  }
}

run "mappings_are_passed_minified_when_set" {
  variables {
    jira_mapping_json       = "{\n  \"approved_status\": \"Approved\"\n}"
    servicenow_mapping_json = "{\"approval_approved\": \"approved\"}"
    servicenow_auth         = "bearer"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_JIRA_MAPPING"] == "{\"approved_status\":\"Approved\"}"
    error_message = "TICKETBOUND_JIRA_MAPPING carries the (minified) mapping"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_SERVICENOW_MAPPING"] == "{\"approval_approved\":\"approved\"}"
    error_message = "TICKETBOUND_SERVICENOW_MAPPING carries the mapping"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_SERVICENOW_AUTH"] == "bearer"
    error_message = "TICKETBOUND_SERVICENOW_AUTH follows servicenow_auth"
  }
}

run "function_url_is_unauthenticated_at_aws_and_output" {
  assert {
    condition     = aws_lambda_function_url.this["itsm-intake"].authorization_type == "NONE"
    error_message = "ITSM webhooks cannot sign SigV4: the URL is NONE and the intake checks HMAC itself"
  }
  assert {
    condition     = aws_lambda_function_url.this["itsm-intake"].function_name == aws_lambda_function.this["itsm-intake"].function_name
    error_message = "the URL belongs to the intake"
  }
  assert {
    condition     = output.intake_function_url == aws_lambda_function_url.this["itsm-intake"].function_url
    error_message = "the function URL is an output"
  }
}

run "intake_policy_is_least_privilege" {
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement :
      alltrue([for a in flatten([s.Action]) : a != "*" && !endswith(a, ":*") && !startswith(a, "*")])
    ])
    error_message = "no wildcard action"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement : s.Effect == "Allow" && !contains(keys(s), "NotAction") && !contains(keys(s), "NotResource")
    ])
    error_message = "only plain Allow statements"
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement : s.Sid if contains(flatten([s.Resource]), "*")
    ] == ["XRayTracing"]
    error_message = "\"*\" is a resource only for X-Ray, which has no resource-level permissions"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement : s.Action if s.Sid == "XRayTracing"
    ])) == toset(["xray:PutTraceSegments", "xray:PutTelemetryRecords"])
    error_message = "the \"*\" statement holds only the two X-Ray actions"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")])
      } == {
      GrantsTable = {
        actions   = toset(["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"])
        resources = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
      }
      GrantsIndexes = {
        actions = toset(["dynamodb:Query"])
        resources = toset([
          "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants/index/by-ticket",
          "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants/index/by-owner",
          "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants/index/by-state-expiry",
        ])
      }
      AuditTableAppend = {
        actions   = toset(["dynamodb:PutItem", "dynamodb:ConditionCheckItem"])
        resources = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit"])
      }
    }
    error_message = "DynamoDB: exactly these actions on exactly the table and index ARNs (no /index/*, no UpdateItem, audit append-only)"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "secretsmanager:")])
      } == {
      WebhookSecrets = {
        actions = toset(["secretsmanager:GetSecretValue"])
        resources = toset([
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/jira-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/servicenow-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/generic-AbCdEf",
        ])
      }
    }
    error_message = "Secrets Manager: GetSecretValue on the three webhook secrets only"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "kms:") || startswith(a, "logs:") || startswith(a, "sqs:")])
      } == {
      ModuleKey = {
        actions   = toset(["kms:Decrypt", "kms:GenerateDataKey"])
        resources = toset([aws_kms_key.this.arn])
      }
      OwnLogGroup = {
        actions = toset(["logs:CreateLogStream", "logs:PutLogEvents"])
        resources = toset([
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-itsm-intake",
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-itsm-intake:*",
        ])
      }
      OwnDeadLetterQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-itsm-intake-dlq"])
      }
    }
    error_message = "KMS, logs and SQS: only the module key, the intake's log group and its DLQ"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement : [for a in flatten([s.Action]) : split(":", a)[0]]
    ])) == toset(["dynamodb", "secretsmanager", "kms", "logs", "xray", "sqs"])
    error_message = "no service beyond DynamoDB, Secrets Manager, KMS, Logs, X-Ray and SQS"
  }
  assert {
    condition = jsondecode(aws_iam_role.function["itsm-intake"].assume_role_policy).Statement == [{
      Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole"
    }]
    error_message = "only Lambda assumes the intake's role"
  }
}

run "kms_key_and_its_policy" {
  assert {
    condition     = aws_kms_key.this.enable_key_rotation && aws_kms_key.this.deletion_window_in_days == 30
    error_message = "the key rotates, and waits 30 days before deletion by default"
  }
  assert {
    condition     = aws_kms_alias.this.name == "alias/ticketbound"
    error_message = "alias/<name_prefix>"
  }
  assert {
    condition     = toset([for s in jsondecode(aws_kms_key.this.policy).Statement : s.Sid]) == toset(["AccountAdministers", "CloudWatchLogsForFunctionLogGroups", "EventBridgeInThisAccount"])
    error_message = "key policy: account, CloudWatch Logs and EventBridge, nobody else"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_kms_key.this.policy).Statement : s.Principal != "*" && try(s.Principal.AWS, "") != "*"
    ])
    error_message = "no wildcard principal in the key policy"
  }
  assert {
    condition     = one([for s in jsondecode(aws_kms_key.this.policy).Statement : s.Principal.AWS if s.Sid == "AccountAdministers"]) == "arn:aws:iam::111122223333:root"
    error_message = "the account root administers the key"
  }
  assert {
    condition = one([for s in jsondecode(aws_kms_key.this.policy).Statement : s if s.Sid == "CloudWatchLogsForFunctionLogGroups"]).Principal.Service == "logs.eu-west-1.amazonaws.com" && one([for s in jsondecode(aws_kms_key.this.policy).Statement : s if s.Sid == "CloudWatchLogsForFunctionLogGroups"]).Condition.ArnEquals["kms:EncryptionContext:aws:logs:arn"] == [
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-itsm-intake",
    ]
    error_message = "CloudWatch Logs of this region may use the key for the functions' log groups only"
  }
  assert {
    condition     = one([for s in jsondecode(aws_kms_key.this.policy).Statement : s if s.Sid == "EventBridgeInThisAccount"]).Condition.StringEquals["aws:SourceAccount"] == "111122223333"
    error_message = "EventBridge may use the key on behalf of this account only"
  }
}

run "webhook_secrets" {
  assert {
    condition     = toset([for s in aws_secretsmanager_secret.webhook : s.name]) == toset(["ticketbound/webhook/jira", "ticketbound/webhook/servicenow", "ticketbound/webhook/generic"])
    error_message = "three webhook secrets named <name_prefix>/webhook/<integration>"
  }
  assert {
    condition     = alltrue([for s in aws_secretsmanager_secret.webhook : s.kms_key_id == aws_kms_key.this.arn])
    error_message = "the webhook secrets are encrypted with the module key"
  }
  assert {
    condition = (
      output.jira_webhook_secret_arn == aws_secretsmanager_secret.webhook["jira"].arn &&
      output.servicenow_webhook_secret_arn == aws_secretsmanager_secret.webhook["servicenow"].arn &&
      output.generic_webhook_secret_arn == aws_secretsmanager_secret.webhook["generic"].arn
    )
    error_message = "the secret ARNs are outputs"
  }
}

run "eventbridge_delivers_to_the_intake_with_retries_and_a_dlq" {
  assert {
    condition     = aws_cloudwatch_event_bus.itsm.name == "ticketbound-itsm" && aws_cloudwatch_event_bus.itsm.kms_key_identifier == aws_kms_key.this.arn
    error_message = "the bus is <name_prefix>-itsm, encrypted with the module key"
  }
  assert {
    condition = {
      for k, r in aws_cloudwatch_event_rule.intake : k => jsondecode(r.event_pattern)
      } == {
      "access-request-approved"  = { source = ["com.example.itsm"], "detail-type" = ["Access Request Approved"] }
      "access-request-withdrawn" = { source = ["com.example.itsm"], "detail-type" = ["Access Request Withdrawn"] }
    }
    error_message = "one rule per detail-type the intake understands, from the configured sources"
  }
  assert {
    condition     = alltrue([for r in aws_cloudwatch_event_rule.intake : r.event_bus_name == aws_cloudwatch_event_bus.itsm.name])
    error_message = "the rules are on the ticketbound bus"
  }
  assert {
    condition = alltrue([
      for t in aws_cloudwatch_event_target.intake :
      t.arn == aws_lambda_function.this["itsm-intake"].arn &&
      t.retry_policy[0].maximum_event_age_in_seconds == 3600 &&
      t.retry_policy[0].maximum_retry_attempts == 10 &&
      t.dead_letter_config[0].arn == aws_sqs_queue.events_dlq.arn
    ])
    error_message = "targets: the intake, retried for an hour (10 attempts), then the events DLQ"
  }
  assert {
    condition = {
      for k, p in aws_lambda_permission.eventbridge : k => [p.principal, p.action, p.source_arn]
      } == {
      for k, r in aws_cloudwatch_event_rule.intake : k => ["events.amazonaws.com", "lambda:InvokeFunction", r.arn]
    }
    error_message = "EventBridge may invoke the intake only from these rules"
  }
  assert {
    condition = jsondecode(aws_sqs_queue_policy.events_dlq.policy).Statement == [{
      Sid       = "EventBridgeRulesDeadLetter"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.events_dlq.arn
      Condition = { ArnEquals = { "aws:SourceArn" = [
        "arn:aws:events:eu-west-1:111122223333:rule/ticketbound-itsm/ticketbound-access-request-approved",
        "arn:aws:events:eu-west-1:111122223333:rule/ticketbound-itsm/ticketbound-access-request-withdrawn",
      ] } }
    }]
    error_message = "only the intake rules may send to the events DLQ"
  }
}

run "alarms_without_a_topic" {
  assert {
    condition = toset(concat(
      [for a in aws_cloudwatch_metric_alarm.function_errors : a.alarm_name],
      [for a in aws_cloudwatch_metric_alarm.function_throttles : a.alarm_name],
      [for a in aws_cloudwatch_metric_alarm.dlq_messages : a.alarm_name],
      )) == toset([
      "ticketbound-itsm-intake-errors",
      "ticketbound-itsm-intake-throttles",
      "ticketbound-itsm-intake-dlq-messages",
      "ticketbound-itsm-events-dlq-messages",
    ])
    error_message = "errors and throttles of the intake, and a message count alarm per DLQ; nothing for functions that do not exist"
  }
  assert {
    condition = alltrue([
      for a in concat(values(aws_cloudwatch_metric_alarm.function_errors), values(aws_cloudwatch_metric_alarm.function_throttles), values(aws_cloudwatch_metric_alarm.dlq_messages)) :
      a.threshold == 0 && a.comparison_operator == "GreaterThanThreshold" && length(a.alarm_actions) == 0
    ])
    error_message = "alarms fire on anything above zero; no actions without a topic"
  }
  assert {
    condition     = toset([for a in aws_cloudwatch_metric_alarm.dlq_messages : a.dimensions.QueueName]) == toset([aws_sqs_queue.function_dlq["itsm-intake"].name, aws_sqs_queue.events_dlq.name])
    error_message = "the DLQ alarms watch the real queue names"
  }
}

run "alarms_notify_the_topic" {
  variables {
    alarm_sns_topic_arn = "arn:aws:sns:eu-west-1:111122223333:ops"
  }
  assert {
    condition = alltrue([
      for a in concat(values(aws_cloudwatch_metric_alarm.function_errors), values(aws_cloudwatch_metric_alarm.function_throttles), values(aws_cloudwatch_metric_alarm.dlq_messages)) :
      a.alarm_actions == toset(["arn:aws:sns:eu-west-1:111122223333:ops"]) && a.ok_actions == toset(["arn:aws:sns:eu-west-1:111122223333:ops"])
    ])
    error_message = "every alarm notifies the topic when it fires and when it recovers"
  }
}

run "name_prefix_and_tags_apply_everywhere" {
  variables {
    name_prefix                 = "tb-test"
    tags                        = { team = "platform" }
    deletion_protection_enabled = false
  }
  assert {
    condition = (
      aws_dynamodb_table.grants.name == "tb-test-grants" &&
      aws_dynamodb_table.audit.name == "tb-test-audit" &&
      aws_lambda_function.this["itsm-intake"].function_name == "tb-test-itsm-intake" &&
      aws_cloudwatch_event_bus.itsm.name == "tb-test-itsm" &&
      aws_kms_alias.this.name == "alias/tb-test" &&
      aws_secretsmanager_secret.webhook["jira"].name == "tb-test/webhook/jira"
    )
    error_message = "every name follows name_prefix"
  }
  assert {
    condition     = !aws_dynamodb_table.grants.deletion_protection_enabled && !aws_dynamodb_table.audit.deletion_protection_enabled
    error_message = "deletion protection follows its variable"
  }
  assert {
    condition = alltrue([
      for tags in concat(
        [aws_dynamodb_table.grants.tags, aws_dynamodb_table.audit.tags, aws_kms_key.this.tags, aws_cloudwatch_event_bus.itsm.tags, aws_sqs_queue.events_dlq.tags],
        [for r in aws_lambda_function.this : r.tags],
        [for r in aws_iam_role.function : r.tags],
        [for r in aws_cloudwatch_log_group.function : r.tags],
        [for r in aws_sqs_queue.function_dlq : r.tags],
        [for r in aws_secretsmanager_secret.webhook : r.tags],
        [for r in aws_cloudwatch_event_rule.intake : r.tags],
        [for r in aws_cloudwatch_metric_alarm.dlq_messages : r.tags],
      ) : tags == tomap({ team = "platform" })
    ])
    error_message = "the tags reach every taggable resource"
  }
}

run "rejects_an_unknown_log_level" {
  command = plan
  variables {
    log_level = "VERBOSE"
  }
  expect_failures = [var.log_level]
}

run "rejects_an_unknown_servicenow_auth" {
  command = plan
  variables {
    servicenow_auth = "basic"
  }
  expect_failures = [var.servicenow_auth]
}

run "rejects_a_mapping_that_is_not_json" {
  command = plan
  variables {
    jira_mapping_json = "{not json"
  }
  expect_failures = [var.jira_mapping_json]
}
