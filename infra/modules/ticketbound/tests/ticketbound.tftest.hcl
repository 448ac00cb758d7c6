# The module's security-relevant settings, planned and "applied" against a mocked AWS
# provider: no account, no credentials, nothing created. Each run costs about a
# second (a plan, or a plan and an apply): the checks of one configuration (the
# file's variables) share a run, one per part of the module, each check named in
# its own comment and error message; a run of its own sets variables or expects a
# failure.

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
  target = aws_dynamodb_table.identities
  values = {
    arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-identities"
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

override_resource {
  target = aws_cloudwatch_log_group.function["grant-provision"]
  values = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-provision" }
}

override_resource {
  target = aws_cloudwatch_log_group.function["grant-expire"]
  values = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-expire" }
}

override_resource {
  target = aws_iam_role.function["grant-provision"]
  values = { arn = "arn:aws:iam::111122223333:role/ticketbound-grant-provision" }
}

override_resource {
  target = aws_iam_role.function["grant-expire"]
  values = { arn = "arn:aws:iam::111122223333:role/ticketbound-grant-expire" }
}

override_resource {
  target = aws_iam_role.scheduler
  values = { arn = "arn:aws:iam::111122223333:role/ticketbound-scheduler" }
}

override_resource {
  target = aws_lambda_function.this["grant-provision"]
  values = { arn = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-provision" }
}

override_resource {
  target = aws_lambda_function.this["grant-expire"]
  values = { arn = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-expire" }
}

override_resource {
  target = aws_sqs_queue.function_dlq["grant-provision"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-provision-dlq" }
}

override_resource {
  target = aws_sqs_queue.function_dlq["grant-expire"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-expire-dlq" }
}

override_resource {
  target = aws_sqs_queue.stream_dlq["grant-provision"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-provision-stream-dlq" }
}

override_resource {
  target = aws_sqs_queue.stream_dlq["grant-expire"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-expire-stream-dlq" }
}

override_resource {
  target = aws_cloudwatch_log_group.function["secret-rotate"]
  values = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-secret-rotate" }
}

override_resource {
  target = aws_iam_role.function["secret-rotate"]
  values = { arn = "arn:aws:iam::111122223333:role/ticketbound-secret-rotate" }
}

override_resource {
  target = aws_lambda_function.this["secret-rotate"]
  values = { arn = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-secret-rotate" }
}

override_resource {
  target = aws_sqs_queue.function_dlq["secret-rotate"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-secret-rotate-dlq" }
}

override_resource {
  target = aws_sqs_queue.schedule_dlq
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-expiry-schedules-dlq" }
}

override_resource {
  target = aws_scheduler_schedule.sweep
  values = { arn = "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-sweep" }
}

override_resource {
  target = aws_scheduler_schedule.reconcile
  values = { arn = "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-reconcile" }
}

override_resource {
  target = aws_secretsmanager_secret.itsm_api["servicenow"]
  values = { arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/servicenow-AbCdEf" }
}

override_resource {
  target = aws_secretsmanager_secret.itsm_api["jira"]
  values = { arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/jira-AbCdEf" }
}

override_resource {
  target = aws_cloudwatch_log_group.function["ticket-writeback"]
  values = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-ticket-writeback" }
}

override_resource {
  target = aws_iam_role.function["ticket-writeback"]
  values = { arn = "arn:aws:iam::111122223333:role/ticketbound-ticket-writeback" }
}

override_resource {
  target = aws_lambda_function.this["ticket-writeback"]
  values = { arn = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-ticket-writeback" }
}

override_resource {
  target = aws_sqs_queue.function_dlq["ticket-writeback"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-ticket-writeback-dlq" }
}

override_resource {
  target = aws_sqs_queue.stream_dlq["ticket-writeback"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-ticket-writeback-stream-dlq" }
}

override_resource {
  target = aws_cloudwatch_log_group.function["grant-reconcile"]
  values = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-reconcile" }
}

override_resource {
  target = aws_iam_role.function["grant-reconcile"]
  values = { arn = "arn:aws:iam::111122223333:role/ticketbound-grant-reconcile" }
}

override_resource {
  target = aws_lambda_function.this["grant-reconcile"]
  values = { arn = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-reconcile" }
}

override_resource {
  target = aws_sqs_queue.function_dlq["grant-reconcile"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-reconcile-dlq" }
}

override_resource {
  target = aws_dynamodb_table.log
  values = {
    arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-log"
  }
}

override_resource {
  target = aws_cloudwatch_log_group.function["log-checkpoint"]
  values = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-log-checkpoint" }
}

override_resource {
  target = aws_iam_role.function["log-checkpoint"]
  values = { arn = "arn:aws:iam::111122223333:role/ticketbound-log-checkpoint" }
}

override_resource {
  target = aws_lambda_function.this["log-checkpoint"]
  values = { arn = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-log-checkpoint" }
}

override_resource {
  target = aws_sqs_queue.function_dlq["log-checkpoint"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-log-checkpoint-dlq" }
}

override_resource {
  target = aws_sqs_queue.stream_dlq["log-checkpoint"]
  values = { arn = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-log-checkpoint-stream-dlq" }
}

override_resource {
  target = aws_kms_key.log_signing
  values = {
    arn    = "arn:aws:kms:eu-west-1:111122223333:key/0b7f1c2e-0000-4000-8000-000000000002"
    key_id = "0b7f1c2e-0000-4000-8000-000000000002"
  }
}

override_resource {
  target = aws_s3_bucket.checkpoints
  values = {
    arn = "arn:aws:s3:::ticketbound-checkpoints-111122223333"
  }
}

override_resource {
  target = aws_scheduler_schedule.checkpoint
  values = { arn = "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-checkpoint" }
}

variables {
  package_dir = "tests/fixtures/package"
}

run "tables_and_who_may_write_them" {
  # grants_table_matches_the_schema
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

  # audit_table_matches_the_schema
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

  # identities_table_matches_the_schema
  assert {
    condition     = aws_dynamodb_table.identities.name == "ticketbound-identities"
    error_message = "identities table name: <name_prefix>-identities"
  }
  assert {
    condition     = aws_dynamodb_table.identities.hash_key == "pk" && aws_dynamodb_table.identities.range_key == "sk"
    error_message = "identities keys must be pk (hash) and sk (range)"
  }
  assert {
    condition     = { for a in aws_dynamodb_table.identities.attribute : a.name => a.type } == { pk = "S", sk = "S" }
    error_message = "identities attribute definitions differ from shared/store/src/schema.rs (IDENTITIES)"
  }
  assert {
    condition     = length(aws_dynamodb_table.identities.global_secondary_index) == 0 && length(aws_dynamodb_table.identities.local_secondary_index) == 0
    error_message = "the identities table has no indexes"
  }
  assert {
    condition     = !coalesce(aws_dynamodb_table.identities.stream_enabled, false)
    error_message = "the identities table has no stream: nothing consumes its changes"
  }
  assert {
    condition     = length(aws_dynamodb_table.identities.ttl) == 0 || !try(aws_dynamodb_table.identities.ttl[0].enabled, false)
    error_message = "the identities table must have no TTL: an entry is retired, never deleted, and its chain is evidence"
  }
  assert {
    condition     = aws_dynamodb_table.identities.point_in_time_recovery[0].enabled
    error_message = "identities table needs point-in-time recovery"
  }
  assert {
    condition     = aws_dynamodb_table.identities.server_side_encryption[0].enabled && aws_dynamodb_table.identities.server_side_encryption[0].kms_key_arn == aws_kms_key.this.arn
    error_message = "identities table must be encrypted with the module's KMS key"
  }
  assert {
    condition     = aws_dynamodb_table.identities.billing_mode == "PAY_PER_REQUEST" && aws_dynamodb_table.identities.deletion_protection_enabled
    error_message = "identities table: on-demand billing and deletion protection by default"
  }
  assert {
    condition     = output.identities_table_name == "ticketbound-identities" && output.identities_table_arn == "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-identities"
    error_message = "the identities table's name and ARN are outputs"
  }

  # identities_table_reaches_the_intake_the_provisioner_and_the_reconciler_only
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_IDENTITIES_TABLE"] == aws_dynamodb_table.identities.name
    error_message = "the intake is given the identities table (TICKETBOUND_IDENTITIES_TABLE)"
  }
  assert {
    condition     = aws_lambda_function.this["grant-reconcile"].environment[0].variables["TICKETBOUND_IDENTITIES_TABLE"] == aws_dynamodb_table.identities.name
    error_message = "the reconciler is given the identities table (TICKETBOUND_IDENTITIES_TABLE)"
  }
  assert {
    condition = toset([
      for k, f in aws_lambda_function.this : k if contains(keys(f.environment[0].variables), "TICKETBOUND_IDENTITIES_TABLE")
    ]) == toset(["itsm-intake", "grant-provision", "grant-reconcile"])
    error_message = "only the intake, the provisioner (right before it issues) and the reconciler read the identity registry"
  }

  # no_function_role_may_write_the_identity_registry
  # The registry says which principals may be granted what: whoever may write it may
  # register a principal. Operators do, through the CLI; no function may, above all not
  # the internet-facing intake.
  assert {
    condition = {
      for k, p in aws_iam_role_policy.function : k => join(" ", sort(distinct(flatten([
        for s in jsondecode(p.policy).Statement : flatten([s.Action])
        if s.Effect == "Allow" && contains(flatten([s.Resource]), aws_dynamodb_table.identities.arn)
      ]))))
      } == {
      "itsm-intake"      = "dynamodb:GetItem"
      "grant-provision"  = "dynamodb:GetItem"
      "grant-expire"     = ""
      "secret-rotate"    = ""
      "ticket-writeback" = ""
      "grant-reconcile"  = "dynamodb:Scan"
      "log-checkpoint"   = ""
    }
    error_message = "on the identities table: the intake and the provisioner may GetItem, the reconciler Scan, and no function anything else"
  }
  assert {
    condition = alltrue(flatten([
      for k, p in aws_iam_role_policy.function : [
        for s in jsondecode(p.policy).Statement : length(setintersection(
          toset(flatten([s.Action])),
          toset(["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:TransactWriteItems", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:RestoreTableToPointInTime"]),
        )) == 0
        if s.Effect == "Allow" && anytrue([
          # The table's ARN, anything under it, or a wildcard pattern covering it.
          for r in flatten([s.Resource]) : (
            r == aws_dynamodb_table.identities.arn ||
            startswith(r, "${aws_dynamodb_table.identities.arn}/") ||
            (strcontains(r, "*") && startswith(aws_dynamodb_table.identities.arn, split("*", r)[0]))
          )
        ])
      ]
    ]))
    error_message = "no function role policy allows a write (PutItem, UpdateItem, DeleteItem, TransactWriteItems, BatchWriteItem, ...) on the identities table, by its ARN or by a wildcard covering it"
  }
  assert {
    condition = alltrue(flatten([
      for p in concat([for p in aws_iam_role_policy.function : p.policy], [aws_iam_role_policy.scheduler.policy]) : [
        for s in jsondecode(p).Statement : !anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")])
        if s.Effect == "Allow" && anytrue([for r in flatten([s.Resource]) : strcontains(r, ":table/ticketbound-identities") && r != aws_dynamodb_table.identities.arn])
      ]
    ]))
    error_message = "no role policy names the identities table's indexes, stream or a pattern over it"
  }
  assert {
    condition = !anytrue([
      for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : contains(flatten([s.Resource]), aws_dynamodb_table.identities.arn)
    ])
    error_message = "the scheduler role has nothing on the identities table"
  }

  # each_role_writes_only_its_item_families_of_the_grants_table
  # "Fewer writers" (issue #17): the grants table holds three partition families,
  # GRANT#<id> (a grant and what lives beside it), DELIVERY#<source>#<id> and
  # TICKET#<source>#<key>. IAM sees only the partition key (dynamodb:LeadingKeys), so what
  # the policies can say is which families each role writes; every write on the table is
  # conditioned on them. moto enforces no condition: these runs are where it is checked.
  # infra/DEPLOY.md ("What each role can still write, and what catches it") says what is
  # left to each role.
  assert {
    condition = {
      for k, p in aws_iam_role_policy.function : k => {
        for family in ["GRANT#*", "DELIVERY#*", "TICKET#*"] : family => join(" ", sort(distinct(flatten([
          for s in jsondecode(p.policy).Statement : [
            for a in flatten([s.Action]) : a
            if contains(["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem", "dynamodb:BatchWriteItem", "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete"], a)
          ]
          if s.Effect == "Allow" && contains(flatten([s.Resource]), aws_dynamodb_table.grants.arn) && contains(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], []), family)
        ]))))
      }
      } == {
      "itsm-intake" = {
        "GRANT#*"    = "dynamodb:DeleteItem dynamodb:PutItem"
        "DELIVERY#*" = "dynamodb:PutItem"
        "TICKET#*"   = "dynamodb:ConditionCheckItem dynamodb:PutItem"
      }
      "grant-provision"  = { "GRANT#*" = "dynamodb:DeleteItem dynamodb:PutItem dynamodb:UpdateItem", "DELIVERY#*" = "", "TICKET#*" = "" }
      "grant-expire"     = { "GRANT#*" = "dynamodb:DeleteItem dynamodb:PutItem dynamodb:UpdateItem", "DELIVERY#*" = "", "TICKET#*" = "" }
      "secret-rotate"    = { "GRANT#*" = "dynamodb:DeleteItem dynamodb:PutItem", "DELIVERY#*" = "", "TICKET#*" = "" }
      "ticket-writeback" = { "GRANT#*" = "dynamodb:DeleteItem dynamodb:PutItem", "DELIVERY#*" = "", "TICKET#*" = "" }
      "grant-reconcile"  = { "GRANT#*" = "dynamodb:DeleteItem dynamodb:PutItem", "DELIVERY#*" = "", "TICKET#*" = "" }
      "log-checkpoint"   = { "GRANT#*" = "", "DELIVERY#*" = "", "TICKET#*" = "" }
    }
    error_message = "on the grants table, by partition family: the intake creates grants (Put, Delete of the trigger), delivery records (Put) and withdrawals (Put, ConditionCheck); the provisioner and expirer write GRANT# items only (Put, Delete, Update for the retry record); the rotation, write-back and reconciler GRANT# items only (Put, Delete); the checkpointer nothing"
  }
  assert {
    condition = alltrue(flatten([
      for k, p in aws_iam_role_policy.function : [
        for s in jsondecode(p.policy).Statement : (
          join(",", keys(try(s.Condition, {}))) == "ForAllValues:StringLike" &&
          join(",", keys(try(s.Condition["ForAllValues:StringLike"], {}))) == "dynamodb:LeadingKeys" &&
          length(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], [])) > 0 &&
          length(setsubtract(toset(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], [])), toset(["GRANT#*", "DELIVERY#*", "TICKET#*"]))) == 0
        )
        if s.Effect == "Allow" && length(setintersection(
          toset(flatten([s.Action])),
          toset(["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem", "dynamodb:BatchWriteItem", "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:UpdateTimeToLive", "dynamodb:RestoreTableToPointInTime"]),
          )) > 0 && anytrue([
          # The table's ARN, anything under it, or a wildcard pattern covering it.
          for r in flatten([s.Resource]) : (
            r == aws_dynamodb_table.grants.arn ||
            startswith(r, "${aws_dynamodb_table.grants.arn}/") ||
            (strcontains(r, "*") && startswith(aws_dynamodb_table.grants.arn, split("*", r)[0]))
          )
        ])
      ]
    ]))
    error_message = "every function role statement that allows a write on the grants table (by its ARN or a pattern covering it) is conditioned on ForAllValues:StringLike dynamodb:LeadingKeys, and only on the table's families (GRANT#*, DELIVERY#*, TICKET#*): no unconditioned write, no table-level write"
  }

  # no_role_but_the_intake_writes_delivery_records_or_withdrawals
  assert {
    condition = toset([
      for k, p in aws_iam_role_policy.function : k
      if anytrue([
        for s in jsondecode(p.policy).Statement : s.Effect == "Allow" && contains(flatten([s.Resource]), aws_dynamodb_table.grants.arn) && (
          length(setintersection(toset(flatten([s.Action])), toset(["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"]))) > 0
          ) && (
          !can(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]) ||
          contains(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], []), "DELIVERY#*") ||
          contains(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], []), "TICKET#*")
        )
      ])
    ]) == toset(["itsm-intake"])
    error_message = "only the intake may write delivery records (DELIVERY#*, the redelivery guard) or withdrawals (TICKET#*, which refuse an approval delivered after its ticket's withdrawal); no other role has a write on the grants table that could reach them"
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement : s.Sid
      if contains(flatten([s.Action]), "dynamodb:ConditionCheckItem")
    ] == ["TicketWithdrawalsWrite"]
    error_message = "the intake's only ConditionCheck is the withdrawal check in a new grant's transaction (TICKET#*): nothing on the audit table, nothing on GRANT# items"
  }
  assert {
    condition = toset([
      for k, p in aws_iam_role_policy.function : k
      if anytrue([for s in jsondecode(p.policy).Statement : s.Effect == "Allow" && contains(flatten([s.Action]), "dynamodb:ConditionCheckItem")])
    ]) == toset(["itsm-intake"])
    error_message = "no role but the intake has dynamodb:ConditionCheckItem (only create_grant has a ConditionCheck)"
  }

  # leading_keys_conditions_hold_only_keyed_actions_on_tables
  assert {
    condition = alltrue(flatten([
      for k, p in aws_iam_role_policy.function : [
        for s in jsondecode(p.policy).Statement : (
          length(setsubtract(toset(flatten([s.Action])), toset(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"]))) == 0 &&
          alltrue([for r in flatten([s.Resource]) : contains([aws_dynamodb_table.grants.arn, aws_dynamodb_table.audit.arn, aws_dynamodb_table.identities.arn, aws_dynamodb_table.log.arn], r)])
        )
        if strcontains(jsonencode(try(s.Condition, {})), "dynamodb:LeadingKeys")
      ]
    ]))
    error_message = "a statement conditioned on dynamodb:LeadingKeys holds only actions whose every request names a partition key (never Scan: ForAllValues over no key at all is true) and only table ARNs (never an index, where LeadingKeys is the index's key, or a stream)"
  }
  assert {
    condition = alltrue(flatten([
      for k, p in aws_iam_role_policy.function : [
        for s in jsondecode(p.policy).Statement : !contains(keys(s), "Condition")
        if anytrue([for r in flatten([s.Resource]) : strcontains(r, ":table/") && (strcontains(r, "/index/") || strcontains(r, "/stream/"))])
      ]
    ]))
    error_message = "statements on an index or a stream carry no condition: an index Query's LeadingKeys is the index's partition key (a ticket key, a state), which no item family matches"
  }
  assert {
    condition = alltrue(flatten([
      for k, p in aws_iam_role_policy.function : [
        for s in jsondecode(p.policy).Statement : !contains(keys(s), "Condition")
        if contains(flatten([s.Action]), "dynamodb:Scan")
      ]
    ]))
    error_message = "Scan (the reconciler's) is only ever in an unconditioned statement"
  }

  # no_role_may_change_or_delete_an_audit_event
  assert {
    condition = {
      for k, p in aws_iam_role_policy.function : k => join(" ", sort(distinct(flatten([
        for s in jsondecode(p.policy).Statement : flatten([s.Action])
        if s.Effect == "Allow" && contains(flatten([s.Resource]), aws_dynamodb_table.audit.arn)
      ]))))
      } == {
      "itsm-intake"      = "dynamodb:GetItem dynamodb:PutItem"
      "grant-provision"  = "dynamodb:GetItem dynamodb:PutItem"
      "grant-expire"     = "dynamodb:GetItem dynamodb:PutItem"
      "secret-rotate"    = "dynamodb:GetItem dynamodb:PutItem dynamodb:Query"
      "ticket-writeback" = "dynamodb:GetItem dynamodb:PutItem"
      "grant-reconcile"  = "dynamodb:GetItem dynamodb:PutItem dynamodb:Query"
      "log-checkpoint"   = "dynamodb:Query"
    }
    error_message = "on the audit table: the six roles that audit append (PutItem) and read back their own event (GetItem); the rotation and the reconciler query chains; the checkpointer only queries (a chain's first event); nobody UpdateItem, DeleteItem or ConditionCheckItem"
  }
  assert {
    condition = alltrue(flatten([
      for p in concat([for p in aws_iam_role_policy.function : p.policy], [aws_iam_role_policy.scheduler.policy]) : [
        for s in jsondecode(p).Statement : length(setintersection(
          toset(flatten([s.Action])),
          toset(["dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:PartiQLInsert", "dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:UpdateTimeToLive", "dynamodb:RestoreTableToPointInTime"]),
        )) == 0
        if s.Effect == "Allow" && anytrue([
          for r in flatten([s.Resource]) : (
            r == aws_dynamodb_table.audit.arn ||
            startswith(r, "${aws_dynamodb_table.audit.arn}/") ||
            (strcontains(r, "*") && startswith(aws_dynamodb_table.audit.arn, split("*", r)[0]))
          )
        ])
      ]
    ]))
    error_message = "no role policy allows UpdateItem, DeleteItem, BatchWriteItem, PartiQL writes or a table-level change on the audit table, by its ARN or a pattern covering it: an audit event can be added, or replaced by a Put (which the signed log logs as a second leaf), never deleted"
  }

  # log_table_matches_the_schema
  assert {
    condition     = aws_dynamodb_table.log.name == "ticketbound-log"
    error_message = "log table name: <name_prefix>-log"
  }
  assert {
    condition     = aws_dynamodb_table.log.hash_key == "pk" && aws_dynamodb_table.log.range_key == "sk"
    error_message = "log keys must be pk (hash) and sk (range)"
  }
  assert {
    condition     = { for a in aws_dynamodb_table.log.attribute : a.name => a.type } == { pk = "S", sk = "S" }
    error_message = "log attribute definitions differ from shared/store/src/schema.rs (LOG)"
  }
  assert {
    condition     = length(aws_dynamodb_table.log.global_secondary_index) == 0 && length(aws_dynamodb_table.log.local_secondary_index) == 0
    error_message = "the log table has no indexes"
  }
  assert {
    condition     = !coalesce(aws_dynamodb_table.log.stream_enabled, false)
    error_message = "the log table has no stream: nothing may react to it but the verifier"
  }
  assert {
    condition     = length(aws_dynamodb_table.log.ttl) == 0 || !try(aws_dynamodb_table.log.ttl[0].enabled, false)
    error_message = "the log table must have no TTL: a leaf is never removed"
  }
  assert {
    condition = (
      aws_dynamodb_table.log.point_in_time_recovery[0].enabled &&
      aws_dynamodb_table.log.server_side_encryption[0].enabled &&
      aws_dynamodb_table.log.server_side_encryption[0].kms_key_arn == aws_kms_key.this.arn &&
      aws_dynamodb_table.log.billing_mode == "PAY_PER_REQUEST" &&
      aws_dynamodb_table.log.deletion_protection_enabled
    )
    error_message = "log table: point-in-time recovery, the module's KMS key, on-demand billing, deletion protection by default"
  }
  assert {
    condition     = output.log_table_name == "ticketbound-log" && output.log_table_arn == "arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-log"
    error_message = "the log table's name and ARN are outputs"
  }

  # no_function_role_but_the_checkpointer_may_write_the_log
  # Whoever may write the log table may append leaves; the checkpointer alone does (the
  # same guard as the identity registry's, for the log table).
  assert {
    condition = {
      for k, p in aws_iam_role_policy.function : k => join(" ", sort(distinct(flatten([
        for s in jsondecode(p.policy).Statement : flatten([s.Action])
        if s.Effect == "Allow" && contains(flatten([s.Resource]), aws_dynamodb_table.log.arn)
      ]))))
      } == {
      "itsm-intake"      = ""
      "grant-provision"  = ""
      "grant-expire"     = ""
      "secret-rotate"    = ""
      "ticket-writeback" = "dynamodb:GetItem"
      "grant-reconcile"  = ""
      "log-checkpoint"   = "dynamodb:BatchGetItem dynamodb:GetItem dynamodb:PutItem dynamodb:Query dynamodb:UpdateItem"
    }
    error_message = "on the log table: log-checkpoint reads the head, markers and leaves, appends (PutItem in its transactions), records the signed size (UpdateItem) and the newest checkpoint (PutItem); ticket-writeback reads that one item; no other function anything, and nobody DeleteItem"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["ticket-writeback"].policy).Statement :
      try(s.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"], []) == ["CHECKPOINT"]
      if contains(flatten([s.Resource]), aws_dynamodb_table.log.arn)
    ])
    error_message = "ticket-writeback may read only the newest checkpoint's item of the log table (dynamodb:LeadingKeys = CHECKPOINT), not its leaves or head"
  }
  assert {
    condition = alltrue(flatten([
      for k, p in aws_iam_role_policy.function : [
        for s in jsondecode(p.policy).Statement : length(setintersection(
          toset(flatten([s.Action])),
          toset(["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:TransactWriteItems", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:RestoreTableToPointInTime"]),
        )) == 0
        if k != "log-checkpoint" && s.Effect == "Allow" && anytrue([
          # The table's ARN, anything under it, or a wildcard pattern covering it.
          for r in flatten([s.Resource]) : (
            r == aws_dynamodb_table.log.arn ||
            startswith(r, "${aws_dynamodb_table.log.arn}/") ||
            (strcontains(r, "*") && startswith(aws_dynamodb_table.log.arn, split("*", r)[0]))
          )
        ])
      ]
    ]))
    error_message = "no function role policy but log-checkpoint's allows a write on the log table, by its ARN or by a wildcard covering it"
  }
  assert {
    condition = alltrue(flatten([
      for p in concat([for p in aws_iam_role_policy.function : p.policy], [aws_iam_role_policy.scheduler.policy]) : [
        for s in jsondecode(p).Statement : !anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")])
        if s.Effect == "Allow" && anytrue([for r in flatten([s.Resource]) : strcontains(r, ":table/ticketbound-log") && r != aws_dynamodb_table.log.arn])
      ]
    ]))
    error_message = "no role policy names the log table's indexes, stream or a pattern over it"
  }
  assert {
    condition = !anytrue([
      for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : contains(flatten([s.Resource]), aws_dynamodb_table.log.arn)
    ])
    error_message = "the scheduler role has nothing on the log table"
  }

  # no_role_policy_grants_a_wildcard_action
  assert {
    condition = alltrue(flatten([
      for policy in concat([for p in aws_iam_role_policy.function : p.policy], [aws_iam_role_policy.scheduler.policy]) : [
        for s in jsondecode(policy).Statement : [
          for a in flatten([s.Action]) : a != "*" && !endswith(a, ":*") && !startswith(a, "*")
        ]
      ]
    ]))
    error_message = "no \"*\" action (nor service:*) in any role policy"
  }
  assert {
    condition = alltrue(flatten([
      for policy in concat([for p in aws_iam_role_policy.function : p.policy], [aws_iam_role_policy.scheduler.policy]) : [
        for s in jsondecode(policy).Statement : !contains(keys(s), "NotAction") && !contains(keys(s), "NotResource")
      ]
    ]))
    error_message = "no NotAction or NotResource anywhere"
  }
}

run "identities_seed_is_off_by_default" {
  command = plan
  assert {
    condition     = length(terraform_data.identities_seed) == 0
    error_message = "without identities_file nothing is imported on apply"
  }
}

run "identities_seed_imports_the_file_when_set" {
  # Plan only: an apply would run the provisioner, which needs the ticketbound CLI.
  command = plan
  variables {
    identities_file = "tests/identities.json"
  }
  assert {
    condition     = length(terraform_data.identities_seed) == 1
    error_message = "with identities_file, one seed resource"
  }
  assert {
    condition     = terraform_data.identities_seed[0].triggers_replace == filesha256("tests/identities.json")
    error_message = "the seed runs again whenever the file's content changes (and only then)"
  }
}

run "rejects_an_identities_file_that_does_not_exist" {
  command = plan
  variables {
    identities_file = "tests/no-such-identities.json"
  }
  expect_failures = [var.identities_file]
}

run "intake_function_url_and_events" {
  # intake_function_configuration
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

  # intake_environment_is_what_the_code_reads
  assert {
    condition = sort(keys(aws_lambda_function.this["itsm-intake"].environment[0].variables)) == sort([
      "TICKETBOUND_GRANTS_TABLE",
      "TICKETBOUND_AUDIT_TABLE",
      "TICKETBOUND_RETENTION_DAYS",
      "TICKETBOUND_IDENTITIES_TABLE",
      "TICKETBOUND_TARGETS",
      "TICKETBOUND_JIRA_SECRET_ID",
      "TICKETBOUND_SERVICENOW_SECRET_ID",
      "TICKETBOUND_SERVICENOW_AUTH",
      "TICKETBOUND_GENERIC_SECRET_ID",
      "TICKETBOUND_REPLAY_WINDOW_SECS",
      "TICKETBOUND_DELIVERY_TTL_HOURS",
      "TICKETBOUND_SECRET_CACHE_SECS",
      "TICKETBOUND_SECRET_MIN_REFRESH_SECS",
      "TICKETBOUND_EVENTBRIDGE_SOURCES",
      "TICKETBOUND_EVENTBRIDGE_ACCOUNT",
    ])
    error_message = "the intake's environment must be exactly the variables functions/itsm-intake/src/config.rs reads (mappings only when set, no POLICY_DIR)"
  }
  assert {
    condition = aws_lambda_function.this["itsm-intake"].environment[0].variables == tomap({
      TICKETBOUND_GRANTS_TABLE            = "ticketbound-grants"
      TICKETBOUND_AUDIT_TABLE             = "ticketbound-audit"
      TICKETBOUND_RETENTION_DAYS          = "400"
      TICKETBOUND_IDENTITIES_TABLE        = "ticketbound-identities"
      TICKETBOUND_TARGETS                 = "{}"
      TICKETBOUND_JIRA_SECRET_ID          = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/jira-AbCdEf"
      TICKETBOUND_SERVICENOW_SECRET_ID    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/servicenow-AbCdEf"
      TICKETBOUND_SERVICENOW_AUTH         = "hmac"
      TICKETBOUND_GENERIC_SECRET_ID       = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/generic-AbCdEf"
      TICKETBOUND_REPLAY_WINDOW_SECS      = "300"
      TICKETBOUND_DELIVERY_TTL_HOURS      = "72"
      TICKETBOUND_SECRET_CACHE_SECS       = "300"
      TICKETBOUND_SECRET_MIN_REFRESH_SECS = "30"
      TICKETBOUND_EVENTBRIDGE_SOURCES     = "com.example.itsm"
      TICKETBOUND_EVENTBRIDGE_ACCOUNT     = "111122223333"
    })
    error_message = "the intake's environment values (defaults match config.rs)"
  }

  # function_url_is_unauthenticated_at_aws_and_output
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

  # intake_policy_is_least_privilege
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
      s.Sid => {
        actions      = toset(flatten([s.Action]))
        resources    = toset(flatten([s.Resource]))
        leading_keys = join(" ", sort(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], s.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"], [])))
      }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")])
      } == {
      GrantsRead = {
        actions      = toset(["dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = ""
      }
      GrantRecordsWrite = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:DeleteItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = "GRANT#*"
      }
      DeliveryRecordsWrite = {
        actions      = toset(["dynamodb:PutItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = "DELIVERY#*"
      }
      TicketWithdrawalsWrite = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:ConditionCheckItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = "TICKET#*"
      }
      GrantsByTicket = {
        actions      = toset(["dynamodb:Query"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants/index/by-ticket"])
        leading_keys = ""
      }
      AuditTableAppend = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit"])
        leading_keys = ""
      }
      IdentitiesRead = {
        actions      = toset(["dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-identities"])
        leading_keys = ""
      }
    }
    error_message = "DynamoDB: exactly these actions on exactly the table and index ARNs (reads unconditioned; writes only on GRANT#, DELIVERY# and TICKET# partitions, each family with its own actions; Query on by-ticket only; no UpdateItem; audit append-only, with the read-back of its own event; the identity registry read only)"
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

  # webhook_secrets
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

  # eventbridge_delivers_to_the_intake_with_retries_and_a_dlq
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

# --- The read-back: every Jira approval read back from Jira with the intake's own
# read-only account; the systems believed on their signature alone -----------------

run "intake_has_no_read_back_and_no_sender_only_system_by_default" {
  command = plan
  assert {
    condition = length(setintersection(keys(aws_lambda_function.this["itsm-intake"].environment[0].variables), [
      "TICKETBOUND_JIRA_API_URL",
      "TICKETBOUND_JIRA_READ_SECRET_ID",
      "TICKETBOUND_SENDER_ONLY",
    ])) == 0
    error_message = "unset, the intake gets no read-back and no sender-only list (the code reads absence as: none; Jira, ServiceNow and generic approvals refused)"
  }
  assert {
    condition     = !anytrue([for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement : s.Sid == "JiraReaderSecret"])
    error_message = "without a reader secret the intake is allowed no secret beyond the webhook secrets"
  }
}

run "intake_reads_jira_approvals_back_with_its_own_reader" {
  variables {
    jira_api_url           = "https://example.atlassian.net"
    jira_reader_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:jira-reader/ticketbound-AbCdEf"
    # Jira in use (its write-back) and read back: jira need not be listed.
    jira_site_url           = "https://example.atlassian.net"
    servicenow_instance_url = "https://example.service-now.com"
    sender_only_systems     = ["servicenow", "generic", "servicenow"]
  }
  assert {
    condition = (
      aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_JIRA_API_URL"] == "https://example.atlassian.net" &&
      aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_JIRA_READ_SECRET_ID"] == "arn:aws:secretsmanager:eu-west-1:111122223333:secret:jira-reader/ticketbound-AbCdEf"
    )
    error_message = "the intake gets the Jira site and the reader secret (TICKETBOUND_JIRA_API_URL, TICKETBOUND_JIRA_READ_SECRET_ID)"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_SENDER_ONLY"] == "generic,servicenow"
    error_message = "TICKETBOUND_SENDER_ONLY is sender_only_systems, comma-separated, each once"
  }
  assert {
    condition = alltrue([
      for k, f in aws_lambda_function.this : length(setintersection(keys(f.environment[0].variables), [
        "TICKETBOUND_JIRA_API_URL", "TICKETBOUND_JIRA_READ_SECRET_ID", "TICKETBOUND_SENDER_ONLY",
      ])) == 0 if k != "itsm-intake"
    ])
    error_message = "only the intake reads approvals back: no other function gets the read-back's settings"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_JIRA_READ_SECRET_ID"] != aws_secretsmanager_secret.itsm_api["jira"].arn && aws_lambda_function.this["ticket-writeback"].environment[0].variables["TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID"] == aws_secretsmanager_secret.itsm_api["jira"].arn
    error_message = "the reader's credentials are not the write-back's (whose account may comment)"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement :
      s.Sid => { effect = s.Effect, actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "secretsmanager:")])
      } == {
      WebhookSecrets = {
        effect  = "Allow"
        actions = toset(["secretsmanager:GetSecretValue"])
        resources = toset([
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/jira-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/servicenow-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/generic-AbCdEf",
        ])
      }
      JiraReaderSecret = {
        effect    = "Allow"
        actions   = toset(["secretsmanager:GetSecretValue"])
        resources = toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:jira-reader/ticketbound-AbCdEf"])
      }
    }
    error_message = "Secrets Manager for the intake: GetSecretValue on the webhook secrets and on the reader secret, nothing else"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement : s.Sid => toset(flatten([s.Action])) if s.Sid == "ModuleKey"
    } == { ModuleKey = toset(["kms:Decrypt", "kms:GenerateDataKey"]) }
    error_message = "the intake's key permissions are unchanged (a reader secret under the module key or aws/secretsmanager needs no more)"
  }
  # Read by its ARN, or by any pattern covering it ("*" included): nobody but the intake.
  assert {
    condition = alltrue(flatten([
      for p in concat(
        [for k, p in aws_iam_role_policy.function : p.policy if k != "itsm-intake"],
        [aws_iam_role_policy.scheduler.policy],
        ) : [
        for s in jsondecode(p).Statement : !anytrue([
          for r in flatten([s.Resource]) : (
            r == "arn:aws:secretsmanager:eu-west-1:111122223333:secret:jira-reader/ticketbound-AbCdEf" ||
            (strcontains(r, "*") && startswith("arn:aws:secretsmanager:eu-west-1:111122223333:secret:jira-reader/ticketbound-AbCdEf", split("*", r)[0]))
          )
        ]) || !anytrue([for a in flatten([s.Action]) : contains(["secretsmanager:GetSecretValue", "secretsmanager:*", "*"], a)])
        if s.Effect == "Allow"
      ]
    ]))
    error_message = "no role but the intake's may read the reader secret, by its ARN or by a pattern covering it"
  }
}

run "rejects_a_jira_api_url_without_its_reader_secret" {
  command = plan
  variables {
    jira_api_url = "https://example.atlassian.net"
  }
  expect_failures = [var.jira_reader_secret_arn]
}

run "rejects_a_reader_secret_without_its_jira_api_url" {
  command = plan
  variables {
    jira_reader_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:jira-reader/ticketbound-AbCdEf"
  }
  expect_failures = [var.jira_reader_secret_arn]
}

run "rejects_a_jira_api_url_that_is_not_https" {
  command = plan
  variables {
    jira_api_url           = "http://example.atlassian.net"
    jira_reader_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:jira-reader/ticketbound-AbCdEf"
  }
  expect_failures = [var.jira_api_url]
}

run "rejects_the_write_backs_jira_secret_as_the_reader" {
  command = plan
  variables {
    jira_api_url = "https://example.atlassian.net"
    # The module's own ITSM API secret: its account may comment and transition.
    jira_reader_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/jira-AbCdEf"
  }
  expect_failures = [var.jira_reader_secret_arn]
}

run "rejects_a_reader_secret_that_is_not_a_secret_arn" {
  command = plan
  variables {
    jira_api_url           = "https://example.atlassian.net"
    jira_reader_secret_arn = "jira-reader"
  }
  expect_failures = [var.jira_reader_secret_arn]
}

run "rejects_an_unknown_sender_only_system" {
  command = plan
  variables {
    sender_only_systems = ["generic", "email"]
  }
  expect_failures = [var.sender_only_systems]
}

run "rejects_jira_in_use_neither_read_back_nor_sender_only" {
  command = plan
  variables {
    jira_site_url = "https://example.atlassian.net"
  }
  expect_failures = [var.sender_only_systems]
}

run "rejects_servicenow_in_use_without_sender_only" {
  command = plan
  variables {
    servicenow_instance_url = "https://example.service-now.com"
    # Listing the other systems does not do: ServiceNow has no read-back yet.
    sender_only_systems = ["jira", "generic"]
  }
  expect_failures = [var.sender_only_systems]
}

run "rejects_event_publishers_without_generic_sender_only" {
  command = plan
  variables {
    itsm_event_publishers = ["arn:aws:iam::111122223333:role/servicenow-integration"]
  }
  expect_failures = [var.sender_only_systems]
}

run "target_approvers_reach_every_function_without_nulls" {
  command = plan
  variables {
    targets = {
      orders = {
        connector       = "postgres"
        environment     = "prod"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
        host            = "orders.db.internal"
        port            = 5432
        dbname          = "orders"
        allowed_roles   = ["orders_read"]
        ca_file         = "/opt/rds-global-bundle.pem"
        approvers       = { groups = ["dba-approvers"] }
      }
      billing = {
        connector       = "postgres"
        environment     = "non-prod"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/billing/admin-AbCdEf"
        host            = "billing.db.internal"
        port            = 5432
        dbname          = "billing"
        allowed_roles   = ["billing_read"]
        ca_file         = "/opt/rds-global-bundle.pem"
      }
    }
    target_admin_secret_arns = [
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf",
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/billing/admin-AbCdEf",
    ]
  }
  assert {
    condition     = jsondecode(aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_TARGETS"]).orders.approvers == { groups = ["dba-approvers"] }
    error_message = "the approvers rule reaches the intake as written, with no null users (the code refuses null)"
  }
  assert {
    condition     = !contains(keys(jsondecode(aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_TARGETS"]).billing), "approvers")
    error_message = "a target without approvers has no approvers key (any approver counts)"
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire", "secret-rotate", "grant-reconcile"] :
      aws_lambda_function.this[k].environment[0].variables["TICKETBOUND_TARGETS"] == aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_TARGETS"]
    ])
    error_message = "every function reads the same TICKETBOUND_TARGETS (the enforcing functions accept and ignore approvers)"
  }
}

run "rejects_a_target_approvers_rule_naming_nobody" {
  command = plan
  variables {
    targets = {
      orders = {
        connector       = "postgres"
        environment     = "prod"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
        host            = "orders.db.internal"
        port            = 5432
        dbname          = "orders"
        allowed_roles   = ["orders_read"]
        ca_file         = "/opt/rds-global-bundle.pem"
        approvers       = { groups = [], users = [] }
      }
    }
  }
  expect_failures = [var.targets]
}

run "key_alarms_streams_and_scheduler" {
  # kms_key_and_its_policy
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
    condition = alltrue([
      for a in flatten([one([for s in jsondecode(aws_kms_key.this.policy).Statement : s if s.Sid == "AccountAdministers"]).Action]) : !strcontains(a, "*")
    ])
    error_message = "the root statement lists its actions: no \"*\" anywhere in them (no kms:*, no kms:Describe*)"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_kms_key.this.policy).Statement : alltrue([for a in flatten([s.Action]) : !strcontains(a, "*")]) && try(s.NotAction, null) == null
    ])
    error_message = "no wildcard action (and no NotAction) in any key policy statement"
  }
  assert {
    condition = toset(flatten([one([for s in jsondecode(aws_kms_key.this.policy).Statement : s if s.Sid == "AccountAdministers"]).Action])) == toset([
      "kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:ListKeyPolicies", "kms:DescribeKey", "kms:UpdateKeyDescription",
      "kms:EnableKey", "kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
      "kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:GetKeyRotationStatus", "kms:RotateKeyOnDemand", "kms:ListKeyRotations",
      "kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias", "kms:ListAliases",
      "kms:TagResource", "kms:UntagResource", "kms:ListResourceTags",
      "kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant", "kms:RetireGrant", "kms:ListRetirableGrants",
      "kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
    ])
    error_message = "the account keeps full administration of the key (policy, state, deletion, rotation, aliases, tags, grants: no lockout) and can delegate its use through IAM"
  }
  assert {
    condition = alltrue(flatten([
      for p in concat(values(aws_iam_role_policy.function)[*].policy, [aws_iam_role_policy.scheduler.policy]) : [
        for s in jsondecode(p).Statement : [
          for a in flatten([s.Action]) : contains(flatten([one([for r in jsondecode(aws_kms_key.this.policy).Statement : r if r.Sid == "AccountAdministers"]).Action]), a) if startswith(a, "kms:")
        ] if contains(flatten([s.Resource]), aws_kms_key.this.arn)
      ]
    ]))
    error_message = "every KMS action the functions' and the scheduler's roles are granted through IAM on the module key is delegated by the root statement"
  }
  assert {
    condition = alltrue(flatten([
      for p in concat(values(aws_iam_role_policy.function)[*].policy, [aws_iam_role_policy.scheduler.policy]) : [
        for s in jsondecode(p).Statement : alltrue([for r in flatten([s.Resource]) : contains([aws_kms_key.this.arn, aws_kms_key.log_signing["1"].arn], r)])
        if anytrue([for a in flatten([s.Action]) : startswith(a, "kms:")])
      ]
    ]))
    error_message = "every KMS statement of the roles names the module key or the log signing key, by ARN"
  }
  assert {
    condition = one([for s in jsondecode(aws_kms_key.this.policy).Statement : s if s.Sid == "CloudWatchLogsForFunctionLogGroups"]).Principal.Service == "logs.eu-west-1.amazonaws.com" && one([for s in jsondecode(aws_kms_key.this.policy).Statement : s if s.Sid == "CloudWatchLogsForFunctionLogGroups"]).Condition.ArnEquals["kms:EncryptionContext:aws:logs:arn"] == [
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-expire",
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-provision",
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-reconcile",
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-itsm-intake",
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-log-checkpoint",
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-secret-rotate",
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-ticket-writeback",
    ]
    error_message = "CloudWatch Logs of this region may use the key for the functions' log groups only"
  }
  assert {
    condition     = one([for s in jsondecode(aws_kms_key.this.policy).Statement : s if s.Sid == "EventBridgeInThisAccount"]).Condition.StringEquals["aws:SourceAccount"] == "111122223333"
    error_message = "EventBridge may use the key on behalf of this account only"
  }

  # alarms_without_a_topic
  assert {
    condition = toset(concat(
      [for a in aws_cloudwatch_metric_alarm.function_errors : a.alarm_name],
      [for a in aws_cloudwatch_metric_alarm.function_throttles : a.alarm_name],
      [for a in aws_cloudwatch_metric_alarm.dlq_messages : a.alarm_name],
      [aws_cloudwatch_metric_alarm.revocation_failures.alarm_name],
      [aws_cloudwatch_metric_alarm.revocation_escalations.alarm_name],
      [aws_cloudwatch_metric_alarm.writeback_failures.alarm_name],
      [aws_cloudwatch_metric_alarm.drift_findings.alarm_name],
      )) == toset([
      "ticketbound-itsm-intake-errors",
      "ticketbound-itsm-intake-throttles",
      "ticketbound-itsm-intake-dlq-messages",
      "ticketbound-itsm-events-dlq-messages",
      "ticketbound-grant-provision-errors",
      "ticketbound-grant-provision-throttles",
      "ticketbound-grant-provision-dlq-messages",
      "ticketbound-grant-provision-stream-dlq-messages",
      "ticketbound-grant-expire-errors",
      "ticketbound-grant-expire-throttles",
      "ticketbound-grant-expire-dlq-messages",
      "ticketbound-grant-expire-stream-dlq-messages",
      "ticketbound-grant-expire-revocation-failures",
      "ticketbound-grant-expire-revocation-escalations",
      "ticketbound-secret-rotate-errors",
      "ticketbound-secret-rotate-throttles",
      "ticketbound-secret-rotate-dlq-messages",
      "ticketbound-ticket-writeback-errors",
      "ticketbound-ticket-writeback-throttles",
      "ticketbound-ticket-writeback-dlq-messages",
      "ticketbound-ticket-writeback-stream-dlq-messages",
      "ticketbound-ticket-writeback-writeback-failures",
      "ticketbound-grant-reconcile-errors",
      "ticketbound-grant-reconcile-throttles",
      "ticketbound-grant-reconcile-dlq-messages",
      "ticketbound-grant-reconcile-drift-findings",
      "ticketbound-log-checkpoint-errors",
      "ticketbound-log-checkpoint-throttles",
      "ticketbound-log-checkpoint-dlq-messages",
      "ticketbound-log-checkpoint-stream-dlq-messages",
      "ticketbound-expiry-schedules-dlq-messages",
    ])
    error_message = "errors and throttles of each function, a message count alarm per DLQ, revocation failures and escalations, write-back failures, drift findings; nothing for functions that do not exist"
  }
  assert {
    condition = alltrue([
      for a in concat(values(aws_cloudwatch_metric_alarm.function_errors), values(aws_cloudwatch_metric_alarm.function_throttles), values(aws_cloudwatch_metric_alarm.dlq_messages), [aws_cloudwatch_metric_alarm.revocation_failures, aws_cloudwatch_metric_alarm.writeback_failures, aws_cloudwatch_metric_alarm.drift_findings]) :
      a.threshold == 0 && a.comparison_operator == "GreaterThanThreshold" && length(a.alarm_actions) == 0
    ])
    error_message = "alarms fire on anything above zero; no actions without a topic"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.revocation_escalations.namespace == "ticketbound" &&
      aws_cloudwatch_metric_alarm.revocation_escalations.metric_name == "RevocationEscalations" &&
      aws_cloudwatch_metric_alarm.revocation_escalations.dimensions == aws_cloudwatch_metric_alarm.revocation_failures.dimensions &&
      aws_cloudwatch_metric_alarm.revocation_escalations.statistic == "Sum" &&
      aws_cloudwatch_metric_alarm.revocation_escalations.period == 300 &&
      aws_cloudwatch_metric_alarm.revocation_escalations.evaluation_periods == 1 &&
      aws_cloudwatch_metric_alarm.revocation_escalations.threshold == 1 &&
      aws_cloudwatch_metric_alarm.revocation_escalations.comparison_operator == "GreaterThanOrEqualToThreshold" &&
      aws_cloudwatch_metric_alarm.revocation_escalations.treat_missing_data == "notBreaching" &&
      length(aws_cloudwatch_metric_alarm.revocation_escalations.alarm_actions) == 0
    )
    error_message = "revocation escalations: grant-expire's embedded metric in RevocationFailures' namespace and dimension, any escalation (>= 1 in 5 minutes) fires; no actions without a topic"
  }
  assert {
    condition = toset([for a in aws_cloudwatch_metric_alarm.dlq_messages : a.dimensions.QueueName]) == toset(concat(
      [for q in aws_sqs_queue.function_dlq : q.name],
      [for q in aws_sqs_queue.stream_dlq : q.name],
      [aws_sqs_queue.events_dlq.name, aws_sqs_queue.schedule_dlq.name],
    ))
    error_message = "the DLQ alarms watch the real queue names, every queue"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.revocation_failures.namespace == "ticketbound" &&
      aws_cloudwatch_metric_alarm.revocation_failures.metric_name == "RevocationFailures" &&
      aws_cloudwatch_metric_alarm.revocation_failures.dimensions == tomap({ function = "grant-expire" }) &&
      aws_cloudwatch_metric_alarm.revocation_failures.statistic == "Sum" &&
      aws_cloudwatch_metric_alarm.revocation_failures.period == 300
    )
    error_message = "revocation failures: the embedded metric shared/runtime/src/metrics.rs emits (namespace ticketbound, dimension function), summed over 5 minutes"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.writeback_failures.namespace == "ticketbound" &&
      aws_cloudwatch_metric_alarm.writeback_failures.metric_name == "WritebackFailures" &&
      aws_cloudwatch_metric_alarm.writeback_failures.dimensions == tomap({ function = "ticket-writeback" }) &&
      aws_cloudwatch_metric_alarm.writeback_failures.statistic == "Sum" &&
      aws_cloudwatch_metric_alarm.writeback_failures.period == 300
    )
    error_message = "write-back failures: ticket-writeback's embedded metric (namespace ticketbound, dimension function), summed over 5 minutes"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.drift_findings.namespace == "ticketbound" &&
      aws_cloudwatch_metric_alarm.drift_findings.metric_name == "DriftFindings" &&
      aws_cloudwatch_metric_alarm.drift_findings.dimensions == tomap({ function = "grant-reconcile" }) &&
      aws_cloudwatch_metric_alarm.drift_findings.statistic == "Sum" &&
      aws_cloudwatch_metric_alarm.drift_findings.period == 900 &&
      aws_cloudwatch_metric_alarm.drift_findings.evaluation_periods == 1 &&
      aws_cloudwatch_metric_alarm.drift_findings.treat_missing_data == "notBreaching"
    )
    error_message = "drift findings: grant-reconcile's embedded metric (namespace ticketbound, dimension function), summed over 15 minutes, any finding fires"
  }
  assert {
    condition = toset([for a in aws_cloudwatch_metric_alarm.dlq_messages : a.dimensions.QueueName if strcontains(a.dimensions.QueueName, "ticket-writeback") || strcontains(a.dimensions.QueueName, "grant-reconcile")]) == toset([
      "ticketbound-ticket-writeback-dlq",
      "ticketbound-ticket-writeback-stream-dlq",
      "ticketbound-grant-reconcile-dlq",
    ])
    error_message = "the new functions' DLQs (ticket-writeback: async and audit stream; grant-reconcile: async) are watched"
  }

  # grants_stream_mappings
  assert {
    condition = [
      for f in aws_lambda_event_source_mapping.grants_stream["grant-provision"].filter_criteria[0].filter : jsondecode(f.pattern)
      ] == [{
        eventName = ["INSERT"]
        dynamodb = {
          Keys     = { sk = { S = ["GRANT"] } }
          NewImage = { state = { S = ["approved"] } }
        }
    }]
    error_message = "grant-provision gets the inserts of Approved grants only"
  }
  assert {
    condition     = length(aws_lambda_event_source_mapping.grants_stream["grant-expire"].filter_criteria[0].filter) == 2
    error_message = "grant-expire has two filters"
  }
  assert {
    condition = one([
      for f in aws_lambda_event_source_mapping.grants_stream["grant-expire"].filter_criteria[0].filter : jsondecode(f.pattern) if jsondecode(f.pattern).eventName == ["REMOVE"]
      ]) == {
      eventName    = ["REMOVE"]
      userIdentity = { type = ["Service"], principalId = ["dynamodb.amazonaws.com"] }
      dynamodb     = { Keys = { sk = { S = ["EXPIRY"] } } }
    }
    error_message = "grant-expire gets the TTL removals (by DynamoDB itself) of expiry triggers"
  }
  assert {
    condition = one([
      for f in aws_lambda_event_source_mapping.grants_stream["grant-expire"].filter_criteria[0].filter : jsondecode(f.pattern) if jsondecode(f.pattern).eventName == ["MODIFY"]
      ]) == {
      eventName = ["MODIFY"]
      dynamodb = {
        Keys     = { sk = { S = ["GRANT"] } }
        NewImage = { state = { S = ["revoking"] } }
      }
    }
    error_message = "grant-expire gets the grants' moves to Revoking"
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire"] :
      aws_lambda_event_source_mapping.grants_stream[k].function_response_types == toset(["ReportBatchItemFailures"]) &&
      aws_lambda_event_source_mapping.grants_stream[k].bisect_batch_on_function_error &&
      aws_lambda_event_source_mapping.grants_stream[k].destination_config[0].on_failure[0].destination_arn == aws_sqs_queue.stream_dlq[k].arn
    ])
    error_message = "partial batch failures reported, failing batches split, given-up batches to the function's stream DLQ"
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire"] :
      aws_lambda_event_source_mapping.grants_stream[k].event_source_arn == aws_dynamodb_table.grants.stream_arn &&
      aws_lambda_event_source_mapping.grants_stream[k].function_name == aws_lambda_function.this[k].arn &&
      aws_lambda_event_source_mapping.grants_stream[k].starting_position == "LATEST" &&
      aws_lambda_event_source_mapping.grants_stream[k].batch_size == 10 &&
      aws_lambda_event_source_mapping.grants_stream[k].maximum_retry_attempts == 10 &&
      aws_lambda_event_source_mapping.grants_stream[k].maximum_record_age_in_seconds == 3600
    ])
    error_message = "both read the grants stream from LATEST, 10 records a batch, 10 retries, records at most an hour old"
  }
  assert {
    condition     = keys(aws_lambda_event_source_mapping.grants_stream) == ["grant-expire", "grant-provision"]
    error_message = "only grant-provision and grant-expire consume the grants stream (not the intake, the write-back or the reconciler)"
  }

  # audit_stream_mapping
  assert {
    condition = [
      for f in aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].filter_criteria[0].filter : jsondecode(f.pattern)
    ] == [{ eventName = ["INSERT"] }]
    error_message = "ticket-writeback gets the audit stream's INSERTs (new audit events) only"
  }
  assert {
    condition = (
      aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].function_response_types == toset(["ReportBatchItemFailures"]) &&
      aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].bisect_batch_on_function_error &&
      aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].maximum_retry_attempts == 10 &&
      aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].maximum_record_age_in_seconds == 3600
    )
    error_message = "partial batch failures reported, failing batches split, 10 retries, records at most an hour old"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].destination_config[0].on_failure[0].destination_arn == aws_sqs_queue.stream_dlq["ticket-writeback"].arn
    error_message = "given-up batches are described in ticket-writeback's stream DLQ"
  }
  assert {
    condition = (
      aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].event_source_arn == aws_dynamodb_table.audit.stream_arn &&
      aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].function_name == aws_lambda_function.this["ticket-writeback"].arn &&
      aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].starting_position == "LATEST"
    )
    error_message = "ticket-writeback reads the audit table's stream from LATEST, as the grants stream consumers do"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].batch_size == 5
    error_message = "5 audit events a batch with the defaults: what fits in 900 s when the ITSM fails every attempt (4 x 30 s + 3 x 20 s each)"
  }
  assert {
    condition     = keys(aws_lambda_event_source_mapping.audit_stream) == ["log-checkpoint", "ticket-writeback"]
    error_message = "ticket-writeback and log-checkpoint, and nothing else, consume the audit stream"
  }

  # scheduler_role_group_and_sweep
  assert {
    condition     = aws_scheduler_schedule_group.this.name == "ticketbound"
    error_message = "the schedule group is <name_prefix>"
  }
  assert {
    condition = jsondecode(aws_iam_role.scheduler.assume_role_policy).Statement == [{
      Effect    = "Allow"
      Principal = { Service = "scheduler.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = "111122223333" } }
    }]
    error_message = "only EventBridge Scheduler, on behalf of this account, assumes the scheduler role"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      } == {
      InvokeGrantExpire = {
        actions   = toset(["lambda:InvokeFunction"])
        resources = toset(["arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-expire"])
      }
      InvokeGrantProvision = {
        actions   = toset(["lambda:InvokeFunction"])
        resources = toset(["arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-provision"])
      }
      InvokeGrantReconcile = {
        actions   = toset(["lambda:InvokeFunction"])
        resources = toset(["arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-reconcile"])
      }
      InvokeLogCheckpoint = {
        actions   = toset(["lambda:InvokeFunction"])
        resources = toset(["arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-log-checkpoint"])
      }
      ScheduleDeadLetterQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-expiry-schedules-dlq"])
      }
      ScheduleDeadLetterQueueKey = {
        actions   = toset(["kms:Decrypt", "kms:GenerateDataKey"])
        resources = toset([aws_kms_key.this.arn])
      }
    }
    error_message = "the scheduler role invokes grant-expire, grant-provision (change window starts), grant-reconcile and log-checkpoint only, and sends to the schedules' (encrypted) DLQ"
  }
  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s.Condition if s.Sid == "ScheduleDeadLetterQueueKey"]) == { StringEquals = { "kms:ViaService" = "sqs.eu-west-1.amazonaws.com" } }
    error_message = "the scheduler role uses the key only through SQS"
  }
  assert {
    condition = (
      aws_scheduler_schedule.sweep.name == "ticketbound-sweep" &&
      aws_scheduler_schedule.sweep.group_name == "ticketbound" &&
      aws_scheduler_schedule.sweep.schedule_expression == "rate(5 minutes)" &&
      aws_scheduler_schedule.sweep.flexible_time_window[0].mode == "OFF"
    )
    error_message = "the sweep runs every 5 minutes in the group, on time"
  }
  assert {
    condition     = jsondecode(aws_scheduler_schedule.sweep.target[0].input) == { sweep = true }
    error_message = "the sweep's input is {\"sweep\": true} (functions/grant-expire ExpireEvent)"
  }
  assert {
    condition = (
      aws_scheduler_schedule.sweep.target[0].arn == aws_lambda_function.this["grant-expire"].arn &&
      aws_scheduler_schedule.sweep.target[0].role_arn == aws_iam_role.scheduler.arn &&
      aws_scheduler_schedule.sweep.target[0].dead_letter_config[0].arn == aws_sqs_queue.schedule_dlq.arn &&
      aws_scheduler_schedule.sweep.target[0].retry_policy[0].maximum_retry_attempts == 3 &&
      aws_scheduler_schedule.sweep.target[0].retry_policy[0].maximum_event_age_in_seconds == 300
    )
    error_message = "the sweep invokes grant-expire as the scheduler role, retries within its interval, then the schedules' DLQ"
  }
}

run "intake_checks_eventbridge_sources_and_account" {
  command = plan

  variables {
    itsm_event_sources = ["com.example.itsm", "com.example.servicenow"]
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_EVENTBRIDGE_SOURCES"] == "com.example.itsm,com.example.servicenow"
    error_message = "TICKETBOUND_EVENTBRIDGE_SOURCES is itsm_event_sources, comma-separated"
  }
  assert {
    condition     = aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_EVENTBRIDGE_ACCOUNT"] == "111122223333"
    error_message = "TICKETBOUND_EVENTBRIDGE_ACCOUNT is the deploying account (the caller identity's)"
  }
  assert {
    condition     = toset(jsondecode(aws_cloudwatch_event_rule.intake["access-request-approved"].event_pattern).source) == toset(split(",", aws_lambda_function.this["itsm-intake"].environment[0].variables["TICKETBOUND_EVENTBRIDGE_SOURCES"]))
    error_message = "the intake accepts exactly the sources its rules match"
  }
}

run "event_bus_denies_put_events_to_all_but_the_publishers" {
  command = plan

  variables {
    # EventBridge events cannot be read back: the open path needs generic listed.
    sender_only_systems = ["generic"]
    itsm_event_publishers = [
      "arn:aws:iam::111122223333:role/servicenow-integration",
      "arn:aws:iam::111122223333:role/integrations/jira-forwarder",
    ]
  }
  assert {
    condition     = aws_cloudwatch_event_bus_policy.itsm.event_bus_name == aws_cloudwatch_event_bus.itsm.name
    error_message = "the policy is the ticketbound bus's"
  }
  assert {
    condition = jsondecode(aws_cloudwatch_event_bus_policy.itsm.policy) == {
      Version = "2012-10-17"
      Statement = [
        {
          Sid       = "OnlyNamedPublishers"
          Effect    = "Deny"
          Principal = "*"
          Action    = "events:PutEvents"
          Resource  = "arn:aws:events:eu-west-1:111122223333:event-bus/ticketbound-itsm"
          Condition = { ArnNotLike = { "aws:PrincipalArn" = [
            "arn:aws:iam::111122223333:role/servicenow-integration",
            "arn:aws:iam::111122223333:role/integrations/jira-forwarder",
          ] } }
        },
      ]
    }
    error_message = "PutEvents on the bus: denied to every principal but the publishers (ArnNotLike aws:PrincipalArn)"
  }
}

run "rejects_a_publisher_of_another_account" {
  command = plan

  variables {
    itsm_event_publishers = ["arn:aws:iam::444455556666:role/integrations/jira-forwarder"]
    sender_only_systems   = ["generic"]
  }
  expect_failures = [aws_cloudwatch_event_bus_policy.itsm]
}

run "event_bus_without_publishers_denies_put_events_to_everyone" {
  command = plan

  assert {
    condition = jsondecode(aws_cloudwatch_event_bus_policy.itsm.policy).Statement == [{
      Sid       = "NoPublisherNamed"
      Effect    = "Deny"
      Principal = "*"
      Action    = "events:PutEvents"
      Resource  = "arn:aws:events:eu-west-1:111122223333:event-bus/ticketbound-itsm"
    }]
    error_message = "no publisher named (the default): PutEvents is denied to \"*\", unconditionally, and nothing is allowed"
  }
}

run "rejects_an_aws_event_source" {
  command = plan

  variables {
    itsm_event_sources = ["com.example.itsm", "aws.events"]
  }
  expect_failures = [var.itsm_event_sources]
}

run "rejects_an_event_source_with_a_comma" {
  command = plan

  variables {
    itsm_event_sources = ["com.example.itsm,com.example.other"]
  }
  expect_failures = [var.itsm_event_sources]
}

run "rejects_a_publisher_that_is_not_an_iam_role_or_user_arn" {
  command = plan

  variables {
    itsm_event_publishers = ["arn:aws:sts::111122223333:assumed-role/servicenow-integration/session"]
    sender_only_systems   = ["generic"]
  }
  expect_failures = [var.itsm_event_publishers]
}

run "rejects_a_publisher_with_a_wildcard" {
  command = plan

  variables {
    itsm_event_publishers = ["arn:aws:iam::111122223333:role/integration-*"]
    sender_only_systems   = ["generic"]
  }
  expect_failures = [var.itsm_event_publishers]
}

run "alarms_notify_the_topic" {
  variables {
    alarm_sns_topic_arn = "arn:aws:sns:eu-west-1:111122223333:ops"
  }
  assert {
    condition = alltrue([
      for a in concat(values(aws_cloudwatch_metric_alarm.function_errors), values(aws_cloudwatch_metric_alarm.function_throttles), values(aws_cloudwatch_metric_alarm.dlq_messages), [aws_cloudwatch_metric_alarm.revocation_failures, aws_cloudwatch_metric_alarm.revocation_escalations, aws_cloudwatch_metric_alarm.writeback_failures, aws_cloudwatch_metric_alarm.drift_findings]) :
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
      aws_dynamodb_table.identities.name == "tb-test-identities" &&
      aws_lambda_function.this["itsm-intake"].function_name == "tb-test-itsm-intake" &&
      aws_cloudwatch_event_bus.itsm.name == "tb-test-itsm" &&
      aws_kms_alias.this.name == "alias/tb-test" &&
      aws_secretsmanager_secret.webhook["jira"].name == "tb-test/webhook/jira" &&
      aws_lambda_function.this["grant-provision"].function_name == "tb-test-grant-provision" &&
      aws_lambda_function.this["grant-expire"].function_name == "tb-test-grant-expire" &&
      aws_lambda_function.this["secret-rotate"].function_name == "tb-test-secret-rotate" &&
      aws_scheduler_schedule_group.this.name == "tb-test" &&
      aws_scheduler_schedule.sweep.name == "tb-test-sweep" &&
      aws_scheduler_schedule.sweep.group_name == "tb-test" &&
      aws_iam_role.scheduler.name == "tb-test-scheduler" &&
      aws_sqs_queue.schedule_dlq.name == "tb-test-expiry-schedules-dlq" &&
      aws_sqs_queue.stream_dlq["grant-expire"].name == "tb-test-grant-expire-stream-dlq" &&
      aws_lambda_function.this["ticket-writeback"].function_name == "tb-test-ticket-writeback" &&
      aws_lambda_function.this["grant-reconcile"].function_name == "tb-test-grant-reconcile" &&
      aws_sqs_queue.stream_dlq["ticket-writeback"].name == "tb-test-ticket-writeback-stream-dlq" &&
      aws_secretsmanager_secret.itsm_api["servicenow"].name == "tb-test/itsm-api/servicenow" &&
      aws_secretsmanager_secret.itsm_api["jira"].name == "tb-test/itsm-api/jira" &&
      aws_scheduler_schedule.reconcile.name == "tb-test-reconcile" &&
      aws_scheduler_schedule.reconcile.group_name == "tb-test"
    )
    error_message = "every name follows name_prefix"
  }
  assert {
    condition = (
      aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_SCHEDULE_GROUP"] == "tb-test" &&
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_SCHEDULE_GROUP"] == "tb-test" &&
      aws_lambda_function.this["grant-reconcile"].environment[0].variables["TICKETBOUND_SCHEDULE_GROUP"] == "tb-test" &&
      aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_EXPIRY_FUNCTION_ARN"] == "arn:aws:lambda:eu-west-1:111122223333:function:tb-test-grant-expire" &&
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_EXPIRY_FUNCTION_ARN"] == "arn:aws:lambda:eu-west-1:111122223333:function:tb-test-grant-expire" &&
      aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_ROTATION_FUNCTION_ARN"] == "arn:aws:lambda:eu-west-1:111122223333:function:tb-test-secret-rotate"
    )
    error_message = "the functions' schedule group, expiry and rotation functions follow name_prefix"
  }
  assert {
    condition = contains(
      flatten([for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement : s.Resource if s.Sid == "ExpirySchedules"]),
      "arn:aws:scheduler:eu-west-1:111122223333:schedule/tb-test/tb-start-*"
    )
    error_message = "the schedule permissions follow the group's name"
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement : s.Resource if s.Sid == "RevocationRetrySchedules"
    ] == [["arn:aws:scheduler:eu-west-1:111122223333:schedule/tb-test/tb-expire-*"]]
    error_message = "grant-expire's retry schedules follow the group's name"
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire", "grant-reconcile"] :
      [for s in jsondecode(aws_iam_role_policy.function[k].policy).Statement : toset(s.Resource) if s.Sid == "NeverTheRecurringSchedules"] == [toset([
        "arn:aws:scheduler:eu-west-1:111122223333:schedule/tb-test/tb-test-sweep",
        "arn:aws:scheduler:eu-west-1:111122223333:schedule/tb-test/tb-test-reconcile",
        "arn:aws:scheduler:eu-west-1:111122223333:schedule/tb-test/tb-test-checkpoint",
      ])]
    ])
    error_message = "the deny on the recurring schedules follows the group's and the schedules' names"
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement : s.Resource if s.Sid == "RotationFunction"
    ] == [["arn:aws:lambda:eu-west-1:111122223333:function:tb-test-secret-rotate"]]
    error_message = "the provisioner may invoke the rotation function of this deployment only"
  }
  assert {
    condition     = !aws_dynamodb_table.grants.deletion_protection_enabled && !aws_dynamodb_table.audit.deletion_protection_enabled && !aws_dynamodb_table.identities.deletion_protection_enabled
    error_message = "deletion protection follows its variable"
  }
  assert {
    condition = alltrue([
      for tags in concat(
        [aws_dynamodb_table.grants.tags, aws_dynamodb_table.audit.tags, aws_dynamodb_table.identities.tags, aws_kms_key.this.tags, aws_cloudwatch_event_bus.itsm.tags, aws_sqs_queue.events_dlq.tags],
        [for r in aws_lambda_function.this : r.tags],
        [for r in aws_iam_role.function : r.tags],
        [for r in aws_cloudwatch_log_group.function : r.tags],
        [for r in aws_sqs_queue.function_dlq : r.tags],
        [for r in aws_secretsmanager_secret.webhook : r.tags],
        [for r in aws_secretsmanager_secret.itsm_api : r.tags],
        [for r in aws_cloudwatch_event_rule.intake : r.tags],
        [for r in aws_cloudwatch_metric_alarm.dlq_messages : r.tags],
        [for r in aws_sqs_queue.stream_dlq : r.tags],
        [aws_sqs_queue.schedule_dlq.tags, aws_iam_role.scheduler.tags, aws_scheduler_schedule_group.this.tags, aws_cloudwatch_metric_alarm.revocation_failures.tags],
        [aws_cloudwatch_metric_alarm.writeback_failures.tags, aws_cloudwatch_metric_alarm.drift_findings.tags, aws_cloudwatch_metric_alarm.revocation_escalations.tags],
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

# --- grant-provision and grant-expire ---------------------------------------------

run "provision_and_expire" {
  # grant_functions_follow_the_intake_pattern
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire"] :
      aws_lambda_function.this[k].function_name == "ticketbound-${k}" &&
      aws_lambda_function.this[k].runtime == "provided.al2023" &&
      aws_lambda_function.this[k].architectures == tolist(["arm64"]) &&
      aws_lambda_function.this[k].handler == "bootstrap" &&
      aws_lambda_function.this[k].filename == "tests/fixtures/package/${k}/bootstrap.zip" &&
      aws_lambda_function.this[k].kms_key_arn == aws_kms_key.this.arn
    ])
    error_message = "<name_prefix>-<function>: the cargo-lambda arm64 bootstrap on provided.al2023, from <package_dir>/<function>/bootstrap.zip, environment encrypted with the module key"
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire"] :
      aws_lambda_function.this[k].logging_config[0].log_format == "JSON" &&
      aws_lambda_function.this[k].logging_config[0].application_log_level == "INFO" &&
      aws_lambda_function.this[k].logging_config[0].system_log_level == "WARN" &&
      aws_lambda_function.this[k].logging_config[0].log_group == "/aws/lambda/ticketbound-${k}" &&
      aws_cloudwatch_log_group.function[k].retention_in_days == 365 &&
      aws_cloudwatch_log_group.function[k].kms_key_id == aws_kms_key.this.arn
    ])
    error_message = "logging: JSON, INFO, WARN, into an own KMS-encrypted log group kept 365 days"
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire"] :
      aws_lambda_function.this[k].tracing_config[0].mode == "Active" &&
      aws_lambda_function.this[k].dead_letter_config[0].target_arn == aws_sqs_queue.function_dlq[k].arn &&
      aws_sqs_queue.function_dlq[k].kms_master_key_id == aws_kms_key.this.arn &&
      aws_sqs_queue.stream_dlq[k].kms_master_key_id == aws_kms_key.this.arn
    ])
    error_message = "X-Ray active, failed async invocations to an own DLQ; every DLQ encrypted with the module key"
  }
  assert {
    condition     = aws_sqs_queue.schedule_dlq.kms_master_key_id == aws_kms_key.this.arn
    error_message = "the schedules' DLQ is encrypted with the module key"
  }
  assert {
    condition     = alltrue([for k, f in aws_lambda_function.this : length(f.vpc_config) == 0]) && length(aws_iam_role_policy_attachment.vpc_access) == 0
    error_message = "no VPC, and no VPC access policy, unless vpc_subnet_ids is set"
  }
  assert {
    condition     = length(aws_lambda_function_url.this) == 1 && contains(keys(aws_lambda_function_url.this), "itsm-intake")
    error_message = "only the intake has a function URL"
  }
  assert {
    condition = (
      output.provision_function_name == "ticketbound-grant-provision" &&
      output.expire_function_name == "ticketbound-grant-expire" &&
      output.provision_function_arn == aws_lambda_function.this["grant-provision"].arn &&
      output.expire_function_arn == aws_lambda_function.this["grant-expire"].arn &&
      output.schedule_group_name == "ticketbound" &&
      output.scheduler_role_arn == "arn:aws:iam::111122223333:role/ticketbound-scheduler" &&
      output.sweep_schedule_arn == "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-sweep" &&
      output.provision_dlq_arn == aws_sqs_queue.function_dlq["grant-provision"].arn &&
      output.expire_dlq_arn == aws_sqs_queue.function_dlq["grant-expire"].arn &&
      output.provision_stream_dlq_arn == aws_sqs_queue.stream_dlq["grant-provision"].arn &&
      output.expire_stream_dlq_arn == aws_sqs_queue.stream_dlq["grant-expire"].arn &&
      output.schedule_dlq_arn == aws_sqs_queue.schedule_dlq.arn
    )
    error_message = "the new functions, the schedule group, the scheduler role, the sweep and the new DLQs are outputs"
  }

  # provision_environment_is_what_the_code_reads
  assert {
    condition = sort(keys(aws_lambda_function.this["grant-provision"].environment[0].variables)) == sort([
      "TICKETBOUND_GRANTS_TABLE",
      "TICKETBOUND_AUDIT_TABLE",
      "TICKETBOUND_IDENTITIES_TABLE",
      "TICKETBOUND_RETENTION_DAYS",
      "TICKETBOUND_TARGETS",
      "TICKETBOUND_SECRET_KMS_KEY_ID",
      "TICKETBOUND_SECRET_ADMIN_PRINCIPALS",
      "TICKETBOUND_EXPIRY_FUNCTION_ARN",
      "TICKETBOUND_PROVISION_FUNCTION_ARN",
      "TICKETBOUND_SCHEDULER_ROLE_ARN",
      "TICKETBOUND_SCHEDULE_GROUP",
      "TICKETBOUND_SCHEDULE_DLQ_ARN",
      "TICKETBOUND_MAX_PROVISIONING_ATTEMPTS",
      "TICKETBOUND_ROTATION_FUNCTION_ARN",
    ])
    error_message = "grant-provision's environment is exactly what functions/grant-provision/src/config.rs reads (the rotation function always: the module's secret-rotate)"
  }
  assert {
    condition = aws_lambda_function.this["grant-provision"].environment[0].variables == tomap({
      TICKETBOUND_GRANTS_TABLE              = "ticketbound-grants"
      TICKETBOUND_AUDIT_TABLE               = "ticketbound-audit"
      TICKETBOUND_IDENTITIES_TABLE          = "ticketbound-identities"
      TICKETBOUND_RETENTION_DAYS            = "400"
      TICKETBOUND_TARGETS                   = "{}"
      TICKETBOUND_SECRET_KMS_KEY_ID         = "arn:aws:kms:eu-west-1:111122223333:key/0b7f1c2e-0000-4000-8000-000000000001"
      TICKETBOUND_SECRET_ADMIN_PRINCIPALS   = "arn:aws:iam::111122223333:role/ticketbound-grant-provision,arn:aws:iam::111122223333:role/ticketbound-grant-expire,arn:aws:iam::111122223333:role/ticketbound-secret-rotate,arn:aws:iam::111122223333:role/ticketbound-grant-reconcile"
      TICKETBOUND_EXPIRY_FUNCTION_ARN       = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-expire"
      TICKETBOUND_PROVISION_FUNCTION_ARN    = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-provision"
      TICKETBOUND_SCHEDULER_ROLE_ARN        = "arn:aws:iam::111122223333:role/ticketbound-scheduler"
      TICKETBOUND_SCHEDULE_GROUP            = "ticketbound"
      TICKETBOUND_SCHEDULE_DLQ_ARN          = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-expiry-schedules-dlq"
      TICKETBOUND_MAX_PROVISIONING_ATTEMPTS = "5"
      TICKETBOUND_ROTATION_FUNCTION_ARN     = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-secret-rotate"
    })
    error_message = "grant-provision's environment values"
  }
  assert {
    condition     = aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_EXPIRY_FUNCTION_ARN"] == aws_lambda_function.this["grant-expire"].arn
    error_message = "the expiry function ARN, built from names, is grant-expire's"
  }
  assert {
    condition     = aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_PROVISION_FUNCTION_ARN"] == aws_lambda_function.this["grant-provision"].arn
    error_message = "the change window start schedules' function ARN, built from names, is grant-provision's own"
  }
  assert {
    condition     = aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_ROTATION_FUNCTION_ARN"] == aws_lambda_function.this["secret-rotate"].arn
    error_message = "the rotation function ARN, built from names, is secret-rotate's"
  }
  assert {
    condition = contains(
      split(",", aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_SECRET_ADMIN_PRINCIPALS"]),
      aws_iam_role.function["secret-rotate"].arn
    )
    error_message = "the credential secrets' resource policy must let secret-rotate's role read them (it denies GetSecretValue to every other principal)"
  }
  assert {
    condition = alltrue([
      for f in ["grant-provision", "grant-expire", "secret-rotate", "grant-reconcile"] : contains(
        split(",", aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_SECRET_ADMIN_PRINCIPALS"]),
        aws_iam_role.function[f].arn
      )
      ]) && !contains(
      split(",", aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_SECRET_ADMIN_PRINCIPALS"]),
      aws_iam_role.function["itsm-intake"].arn
    )
    error_message = "only the roles that change credential secrets (provision, expire, rotate, reconcile) escape the resource policy's denies; never the internet-facing intake"
  }

  # expire_environment_is_what_the_code_reads
  assert {
    condition = sort(keys(aws_lambda_function.this["grant-expire"].environment[0].variables)) == sort([
      "TICKETBOUND_GRANTS_TABLE",
      "TICKETBOUND_AUDIT_TABLE",
      "TICKETBOUND_RETENTION_DAYS",
      "TICKETBOUND_TARGETS",
      "TICKETBOUND_SCHEDULE_GROUP",
      "TICKETBOUND_SECRET_CACHE_SECS",
      "TICKETBOUND_REVOKE_CONCURRENCY",
      "TICKETBOUND_EXPIRY_FUNCTION_ARN",
      "TICKETBOUND_SCHEDULER_ROLE_ARN",
      "TICKETBOUND_SCHEDULE_DLQ_ARN",
      "TICKETBOUND_REVOCATION_RETRY_MAX_SECS",
      "TICKETBOUND_REVOCATION_ESCALATE_AFTER_SECS",
    ])
    error_message = "grant-expire's environment is exactly what functions/grant-expire/src/config.rs reads (no recovery window unless set)"
  }
  assert {
    condition = aws_lambda_function.this["grant-expire"].environment[0].variables == tomap({
      TICKETBOUND_GRANTS_TABLE       = "ticketbound-grants"
      TICKETBOUND_AUDIT_TABLE        = "ticketbound-audit"
      TICKETBOUND_RETENTION_DAYS     = "400"
      TICKETBOUND_TARGETS            = "{}"
      TICKETBOUND_SCHEDULE_GROUP     = "ticketbound"
      TICKETBOUND_SECRET_CACHE_SECS  = "300"
      TICKETBOUND_REVOKE_CONCURRENCY = "8"
      # Its retry schedules invoke grant-expire itself, as the scheduler role.
      TICKETBOUND_EXPIRY_FUNCTION_ARN            = "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-expire"
      TICKETBOUND_SCHEDULER_ROLE_ARN             = "arn:aws:iam::111122223333:role/ticketbound-scheduler"
      TICKETBOUND_SCHEDULE_DLQ_ARN               = "arn:aws:sqs:eu-west-1:111122223333:ticketbound-expiry-schedules-dlq"
      TICKETBOUND_REVOCATION_RETRY_MAX_SECS      = "300"
      TICKETBOUND_REVOCATION_ESCALATE_AFTER_SECS = "900"
    })
    error_message = "grant-expire's environment values (defaults match config.rs)"
  }
  assert {
    condition = (
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_EXPIRY_FUNCTION_ARN"] == aws_lambda_function.this["grant-expire"].arn &&
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_SCHEDULER_ROLE_ARN"] == aws_iam_role.scheduler.arn &&
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_SCHEDULE_GROUP"] == aws_scheduler_schedule_group.this.name
    )
    error_message = "grant-expire's retry schedules invoke grant-expire itself (its ARN, built from names), as the scheduler role, in the module's schedule group"
  }

  # provision_policy_is_least_privilege
  assert {
    condition = toset([
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement : s.Sid if contains(flatten([s.Resource]), "*")
    ]) == toset(["XRayTracing", "GrantsStreamList", "RandomPassword"])
    error_message = "\"*\" is a resource only where AWS requires it: X-Ray, ListStreams, GetRandomPassword"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if contains(flatten([s.Resource]), "*")
      } == {
      XRayTracing      = { actions = toset(["xray:PutTraceSegments", "xray:PutTelemetryRecords"]), resources = toset(["*"]) }
      GrantsStreamList = { actions = toset(["dynamodb:ListStreams"]), resources = toset(["*"]) }
      RandomPassword   = { actions = toset(["secretsmanager:GetRandomPassword"]), resources = toset(["*"]) }
    }
    error_message = "the \"*\" statements hold only the actions that take no resource"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement :
      s.Sid => {
        actions      = toset(flatten([s.Action]))
        resources    = toset(flatten([s.Resource]))
        leading_keys = join(" ", sort(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], s.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"], [])))
      }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")])
      } == {
      GrantsRead = {
        actions      = toset(["dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = ""
      }
      GrantRecordsWrite = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = "GRANT#*"
      }
      AuditTableAppend = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit"])
        leading_keys = ""
      }
      IdentitiesRead = {
        actions      = toset(["dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-identities"])
        leading_keys = ""
      }
      GrantsStreamRead = {
        actions      = toset(["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants/stream/2025-01-01T00:00:00.000"])
        leading_keys = ""
      }
      GrantsStreamList = {
        actions      = toset(["dynamodb:ListStreams"])
        resources    = toset(["*"])
        leading_keys = ""
      }
    }
    error_message = "DynamoDB: the grants table (GetItem; writes on GRANT# partitions only; no Query, no ConditionCheckItem), the audit table append-only with the read-back of its own event, the identity registry read-only, the grants stream"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement :
      s.Sid => { effect = s.Effect, actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])), condition = try(s.Condition, null) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "secretsmanager:")])
      } == {
      CredentialSecretsCreate = {
        effect    = "Allow"
        actions   = toset(["secretsmanager:CreateSecret", "secretsmanager:TagResource"])
        resources = toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*"])
        condition = { StringEquals = { "aws:RequestTag/managed-by" = "ticketbound" } }
      }
      CredentialSecretsDescribe = {
        effect    = "Allow"
        actions   = toset(["secretsmanager:DescribeSecret"])
        resources = toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*"])
        condition = null
      }
      CredentialSecretsManage = {
        effect = "Allow"
        actions = toset([
          "secretsmanager:GetSecretValue",
          "secretsmanager:PutSecretValue",
          "secretsmanager:PutResourcePolicy",
          "secretsmanager:GetResourcePolicy",
          "secretsmanager:DeleteSecret",
          "secretsmanager:RotateSecret",
        ])
        resources = toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*"])
        condition = { StringEquals = { "aws:ResourceTag/managed-by" = "ticketbound" } }
      }
      NeverTheModuleSecrets = {
        effect = "Deny"
        actions = toset([
          "secretsmanager:CreateSecret",
          "secretsmanager:TagResource",
          "secretsmanager:DescribeSecret",
          "secretsmanager:GetSecretValue",
          "secretsmanager:PutSecretValue",
          "secretsmanager:PutResourcePolicy",
          "secretsmanager:GetResourcePolicy",
          "secretsmanager:DeleteSecret",
          "secretsmanager:RotateSecret",
          "secretsmanager:UpdateSecretVersionStage",
        ])
        resources = toset([
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/jira-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/servicenow-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/generic-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/jira-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/servicenow-AbCdEf",
        ])
        condition = null
      }
      RandomPassword = {
        effect    = "Allow"
        actions   = toset(["secretsmanager:GetRandomPassword"])
        resources = toset(["*"])
        condition = null
      }
    }
    error_message = "Secrets Manager: create only with managed-by=ticketbound, touch only secrets tagged so, under ticketbound/*; never the module's webhook and ITSM API secrets; no admin secrets unless listed"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement :
      try(s.Condition.StringEquals["aws:RequestTag/managed-by"], s.Condition.StringEquals["aws:ResourceTag/managed-by"], "") == "ticketbound"
      if s.Effect == "Allow" && contains(flatten([s.Resource]), "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*") && flatten([s.Action]) != ["secretsmanager:DescribeSecret"]
    ])
    error_message = "every Allow on the credential secrets' ARN pattern but DescribeSecret (metadata only) carries a managed-by=ticketbound condition"
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement :
      { actions = s.Action, resources = s.Resource, condition = s.Condition } if contains(flatten([s.Action]), "iam:PassRole")
      ] == [{
        actions   = ["iam:PassRole"]
        resources = ["arn:aws:iam::111122223333:role/ticketbound-scheduler"]
        condition = { StringEquals = { "iam:PassedToService" = "scheduler.amazonaws.com" } }
    }]
    error_message = "iam:PassRole: the scheduler role only, and only to EventBridge Scheduler"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "scheduler:") || startswith(a, "sqs:") || startswith(a, "kms:") || startswith(a, "logs:")])
      } == {
      ExpirySchedules = {
        actions = toset(["scheduler:CreateSchedule", "scheduler:GetSchedule", "scheduler:DeleteSchedule"])
        resources = toset([
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/tb-expire-*",
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/tb-start-*",
        ])
      }
      NeverTheRecurringSchedules = {
        actions = toset(["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"])
        resources = toset([
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-sweep",
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-reconcile",
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-checkpoint",
        ])
      }
      StreamFailureQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-provision-stream-dlq"])
      }
      OwnDeadLetterQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-provision-dlq"])
      }
      ModuleKey = {
        actions   = toset(["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"])
        resources = toset([aws_kms_key.this.arn])
      }
      OwnLogGroup = {
        actions = toset(["logs:CreateLogStream", "logs:PutLogEvents"])
        resources = toset([
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-provision",
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-provision:*",
        ])
      }
    }
    error_message = "Scheduler, SQS, KMS and logs: the module's schedule group but never its recurring schedules, its own DLQs, the module key, its log group"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement : [for a in flatten([s.Action]) : split(":", a)[0]]
    ])) == toset(["dynamodb", "secretsmanager", "scheduler", "iam", "lambda", "kms", "logs", "xray", "sqs"])
    error_message = "no service beyond DynamoDB, Secrets Manager, Scheduler, IAM (PassRole), Lambda (the rotation function), KMS, Logs, X-Ray and SQS"
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement :
      { sid = s.Sid, effect = s.Effect, actions = s.Action, resources = s.Resource, condition = try(s.Condition, null) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "lambda:")])
      ] == [{
        sid       = "RotationFunction"
        effect    = "Allow"
        actions   = ["lambda:InvokeFunction"]
        resources = ["arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-secret-rotate"]
        condition = null
    }]
    error_message = "turning rotation on (RotateSecret) needs lambda:InvokeFunction on the rotation function: secret-rotate, and only that one"
  }
  assert {
    condition = one(flatten([
      for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement : s.Resource if s.Sid == "RotationFunction"
    ])) == aws_lambda_function.this["secret-rotate"].arn
    error_message = "the provisioner's lambda:InvokeFunction names the module's secret-rotate function"
  }

  # expire_policy_is_least_privilege
  assert {
    condition = toset([
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement : s.Sid if contains(flatten([s.Resource]), "*")
    ]) == toset(["XRayTracing", "GrantsStreamList"])
    error_message = "\"*\" is a resource only for X-Ray and ListStreams"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement :
      s.Sid => {
        actions      = toset(flatten([s.Action]))
        resources    = toset(flatten([s.Resource]))
        leading_keys = join(" ", sort(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], s.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"], [])))
      }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")])
      } == {
      GrantsRead = {
        actions      = toset(["dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = ""
      }
      GrantRecordsWrite = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = "GRANT#*"
      }
      GrantsByStateExpiry = {
        actions      = toset(["dynamodb:Query"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants/index/by-state-expiry"])
        leading_keys = ""
      }
      AuditTableAppend = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit"])
        leading_keys = ""
      }
      GrantsStreamRead = {
        actions      = toset(["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants/stream/2025-01-01T00:00:00.000"])
        leading_keys = ""
      }
      GrantsStreamList = {
        actions      = toset(["dynamodb:ListStreams"])
        resources    = toset(["*"])
        leading_keys = ""
      }
    }
    error_message = "DynamoDB: the grants table (GetItem; writes on GRANT# partitions only; no ConditionCheckItem), Query on by-state-expiry only (unconditioned: an index), the audit table append-only with the read-back of its own event, the grants stream"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement :
      s.Sid => { effect = s.Effect, actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])), condition = try(s.Condition, null) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "secretsmanager:")]) && s.Effect == "Allow"
      } == {
      CredentialSecretsDescribe = {
        effect    = "Allow"
        actions   = toset(["secretsmanager:DescribeSecret"])
        resources = toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*"])
        condition = null
      }
      CredentialSecretsDelete = {
        effect    = "Allow"
        actions   = toset(["secretsmanager:DeleteSecret"])
        resources = toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*"])
        condition = { StringEquals = { "aws:ResourceTag/managed-by" = "ticketbound" } }
      }
    }
    error_message = "Secrets Manager: describe credential secrets (metadata, unconditioned), delete those tagged managed-by=ticketbound, nothing else (no admin secrets unless listed)"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "scheduler:") || startswith(a, "sqs:") || startswith(a, "kms:")])
      } == {
      ExpirySchedulesDelete = {
        actions   = toset(["scheduler:DeleteSchedule", "scheduler:GetSchedule"])
        resources = toset(["arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/*"])
      }
      RevocationRetrySchedules = {
        actions   = toset(["scheduler:CreateSchedule"])
        resources = toset(["arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/tb-expire-*"])
      }
      NeverTheRecurringSchedules = {
        actions = toset(["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"])
        resources = toset([
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-sweep",
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-reconcile",
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-checkpoint",
        ])
      }
      StreamFailureQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-expire-stream-dlq"])
      }
      OwnDeadLetterQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-expire-dlq"])
      }
      ModuleKey = {
        actions   = toset(["kms:Decrypt", "kms:GenerateDataKey"])
        resources = toset([aws_kms_key.this.arn])
      }
    }
    error_message = "Scheduler: delete and read the group's schedules, create only tb-expire-* ones (its retries), never the recurring ones; its own DLQs; the module key"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement : [for a in flatten([s.Action]) : split(":", a)[0]]
    ])) == toset(["dynamodb", "secretsmanager", "scheduler", "iam", "kms", "logs", "xray", "sqs"])
    error_message = "no service beyond DynamoDB, Secrets Manager, Scheduler, IAM (PassRole of the scheduler role), KMS, Logs, X-Ray and SQS (no lambda)"
  }

  # expire_creates_only_retry_schedules_and_passes_only_the_scheduler_role
  # A failed revocation is recorded once and retried by a one-time schedule grant-expire
  # creates itself (tb-expire-<grant id>-r<attempt>, beside the grant's expiry schedule
  # tb-expire-<grant id>), invoking grant-expire as the scheduler role; a grant that keeps
  # failing is escalated once (RevocationEscalations).
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement :
      { sid = s.Sid, resources = s.Resource, condition = try(s.Condition, null) }
      if s.Effect == "Allow" && anytrue([for a in flatten([s.Action]) : a == "scheduler:CreateSchedule" || strcontains(a, "*")])
      ] == [{
        sid       = "RevocationRetrySchedules"
        resources = ["arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/tb-expire-*"]
        condition = null
    }]
    error_message = "grant-expire may create schedules only named tb-expire-* in the module's schedule group (no wildcard action)"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement :
      alltrue([for r in flatten([s.Resource]) : startswith(r, "arn:aws:scheduler:eu-west-1:111122223333:schedule/${aws_scheduler_schedule_group.this.name}/")])
      if s.Effect == "Allow" && anytrue([for a in flatten([s.Action]) : startswith(a, "scheduler:")])
    ])
    error_message = "every schedule grant-expire may touch is in the module's schedule group"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement :
      s.Effect == "Deny" && !contains(keys(s), "Condition") && contains(flatten([s.Action]), "scheduler:CreateSchedule") &&
      toset(flatten([s.Resource])) == toset([aws_scheduler_schedule.sweep.arn, aws_scheduler_schedule.reconcile.arn, aws_scheduler_schedule.checkpoint.arn])
    ])
    error_message = "the explicit Deny on creating (and so replacing) the sweep and reconcile schedules stays in grant-expire's policy"
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement :
      { sid = s.Sid, effect = s.Effect, actions = s.Action, resources = s.Resource, condition = try(s.Condition, null) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "iam:")])
      ] == [{
        sid       = "PassSchedulerRole"
        effect    = "Allow"
        actions   = ["iam:PassRole"]
        resources = [aws_iam_role.scheduler.arn]
        condition = { StringEquals = { "iam:PassedToService" = "scheduler.amazonaws.com" } }
    }]
    error_message = "iam: only PassRole of the scheduler role, and only to EventBridge Scheduler"
  }
  assert {
    condition = (
      [for s in jsondecode(aws_iam_role_policy.function["grant-expire"].policy).Statement : s if contains(flatten([s.Action]), "iam:PassRole")] ==
      [for s in jsondecode(aws_iam_role_policy.function["grant-provision"].policy).Statement : s if contains(flatten([s.Action]), "iam:PassRole")]
    )
    error_message = "grant-expire's PassRole statement is exactly grant-provision's"
  }
  assert {
    condition = contains(
      flatten([for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s.Resource if s.Sid == "InvokeGrantExpire"]),
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_EXPIRY_FUNCTION_ARN"]
    )
    error_message = "the scheduler role may invoke the function grant-expire's retry schedules name"
  }
  assert {
    condition = contains(
      flatten([for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s.Resource if s.Sid == "InvokeGrantProvision"]),
      aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_PROVISION_FUNCTION_ARN"]
    )
    error_message = "the scheduler role may invoke the function grant-provision's change window start schedules name"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.revocation_escalations.alarm_name == "ticketbound-grant-expire-revocation-escalations" &&
      aws_cloudwatch_metric_alarm.revocation_escalations.namespace == aws_cloudwatch_metric_alarm.revocation_failures.namespace &&
      aws_cloudwatch_metric_alarm.revocation_escalations.dimensions == aws_cloudwatch_metric_alarm.revocation_failures.dimensions &&
      aws_cloudwatch_metric_alarm.revocation_escalations.metric_name == "RevocationEscalations" &&
      aws_cloudwatch_metric_alarm.revocation_escalations.threshold == 1 &&
      aws_cloudwatch_metric_alarm.revocation_escalations.comparison_operator == "GreaterThanOrEqualToThreshold" &&
      aws_cloudwatch_metric_alarm.revocation_escalations.alarm_actions == aws_cloudwatch_metric_alarm.revocation_failures.alarm_actions
    )
    error_message = "an alarm on RevocationEscalations >= 1, beside RevocationFailures' (same namespace, dimensions and actions)"
  }
}

run "optional_settings_reach_the_environment_and_the_policy" {
  variables {
    secret_recovery_window_days = 7
    max_provisioning_attempts   = 3
    revoke_concurrency          = 4
    target_admin_secret_arns = [
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf",
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/ledger/admin-GhIjKl",
    ]
    targets = {
      orders = {
        connector       = "postgres"
        environment     = "prod"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
        host            = "orders.db.internal"
        port            = 5432
        dbname          = "orders"
        allowed_roles   = ["orders_read", "orders_write"]
        ca_file         = "/opt/rds-global-bundle.pem"
      }
      ledger = {
        connector       = "postgres"
        environment     = "prod"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/ledger/admin-GhIjKl"
        host            = "ledger.db.internal"
        port            = 6432
        dbname          = "ledger"
        allowed_roles   = ["ledger_read"]
        ca_file         = "/opt/rds-global-bundle.pem"
      }
    }
  }
  assert {
    condition = (
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_SECRET_RECOVERY_DAYS"] == "7" &&
      aws_lambda_function.this["grant-reconcile"].environment[0].variables["TICKETBOUND_SECRET_RECOVERY_DAYS"] == "7"
    )
    error_message = "TICKETBOUND_SECRET_RECOVERY_DAYS follows secret_recovery_window_days (grant-expire and grant-reconcile, which both delete credential secrets)"
  }
  assert {
    condition = (
      aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_MAX_PROVISIONING_ATTEMPTS"] == "3" &&
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_REVOKE_CONCURRENCY"] == "4"
    )
    error_message = "max_provisioning_attempts and revoke_concurrency reach the environment"
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire", "secret-rotate", "grant-reconcile"] :
      jsondecode(aws_lambda_function.this[k].environment[0].variables["TICKETBOUND_TARGETS"]) == {
        orders = {
          connector       = "postgres"
          environment     = "prod"
          admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
          host            = "orders.db.internal"
          port            = 5432
          dbname          = "orders"
          allowed_roles   = ["orders_read", "orders_write"]
          ca_file         = "/opt/rds-global-bundle.pem"
        }
        ledger = {
          connector       = "postgres"
          environment     = "prod"
          admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/ledger/admin-GhIjKl"
          host            = "ledger.db.internal"
          port            = 6432
          dbname          = "ledger"
          allowed_roles   = ["ledger_read"]
          ca_file         = "/opt/rds-global-bundle.pem"
        }
      }
    ])
    error_message = "TICKETBOUND_TARGETS is the targets map as JSON, every target with its own settings"
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire", "secret-rotate", "grant-reconcile"] :
      [for s in jsondecode(aws_iam_role_policy.function[k].policy).Statement : { actions = s.Action, resources = s.Resource } if s.Sid == "TargetAdminSecrets"] == [{
        actions                                                                          = ["secretsmanager:GetSecretValue"]
        resources = [
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/ledger/admin-GhIjKl",
        ]
      }]
    ])
    error_message = "the four target-facing functions may read the target admin secrets, and only GetSecretValue"
  }
  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.function["ticket-writeback"].policy).Statement : s if s.Sid == "TargetAdminSecrets"]) == 0 && length([for s in jsondecode(aws_iam_role_policy.function["itsm-intake"].policy).Statement : s if s.Sid == "TargetAdminSecrets"]) == 0
    error_message = "the intake and the write-back never read a target admin secret"
  }
}

run "revocation_retry_settings_reach_the_environment" {
  variables {
    revocation_retry_max_seconds      = 60
    revocation_escalate_after_seconds = 3600
    alarm_sns_topic_arn               = "arn:aws:sns:eu-west-1:111122223333:ops"
  }
  assert {
    condition = (
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_REVOCATION_RETRY_MAX_SECS"] == "60" &&
      aws_lambda_function.this["grant-expire"].environment[0].variables["TICKETBOUND_REVOCATION_ESCALATE_AFTER_SECS"] == "3600"
    )
    error_message = "revocation_retry_max_seconds and revocation_escalate_after_seconds reach grant-expire's environment"
  }
  assert {
    condition     = strcontains(aws_cloudwatch_metric_alarm.revocation_escalations.alarm_description, "3600 s")
    error_message = "the escalation alarm says after how long a failing revocation escalates"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.revocation_escalations.alarm_actions == toset(["arn:aws:sns:eu-west-1:111122223333:ops"]) &&
      aws_cloudwatch_metric_alarm.revocation_escalations.ok_actions == toset(["arn:aws:sns:eu-west-1:111122223333:ops"])
    )
    error_message = "the escalation alarm notifies the topic"
  }
}

run "rejects_revocation_retry_settings_below_their_range" {
  command = plan
  variables {
    revocation_retry_max_seconds      = 9
    revocation_escalate_after_seconds = 59
  }
  expect_failures = [var.revocation_retry_max_seconds, var.revocation_escalate_after_seconds]
}

run "rejects_revocation_retry_settings_above_their_range" {
  command = plan
  variables {
    revocation_retry_max_seconds      = 3601
    revocation_escalate_after_seconds = 86401
  }
  expect_failures = [var.revocation_retry_max_seconds, var.revocation_escalate_after_seconds]
}

# --- secret-rotate ------------------------------------------------------------------

run "secret_rotate" {
  # secret_rotate_follows_the_function_pattern
  assert {
    condition = (
      aws_lambda_function.this["secret-rotate"].function_name == "ticketbound-secret-rotate" &&
      aws_lambda_function.this["secret-rotate"].runtime == "provided.al2023" &&
      aws_lambda_function.this["secret-rotate"].architectures == tolist(["arm64"]) &&
      aws_lambda_function.this["secret-rotate"].handler == "bootstrap" &&
      aws_lambda_function.this["secret-rotate"].filename == "tests/fixtures/package/secret-rotate/bootstrap.zip" &&
      aws_lambda_function.this["secret-rotate"].kms_key_arn == aws_kms_key.this.arn
    )
    error_message = "<name_prefix>-secret-rotate: the cargo-lambda arm64 bootstrap on provided.al2023, from <package_dir>/secret-rotate/bootstrap.zip, environment encrypted with the module key"
  }
  assert {
    condition = (
      aws_lambda_function.this["secret-rotate"].memory_size == 256 &&
      aws_lambda_function.this["secret-rotate"].timeout == 60 &&
      coalesce(aws_lambda_function.this["secret-rotate"].reserved_concurrent_executions, -1) == -1
    )
    error_message = "default memory 256 MB, timeout 60 s, no reserved concurrency"
  }
  assert {
    condition = (
      aws_lambda_function.this["secret-rotate"].logging_config[0].log_format == "JSON" &&
      aws_lambda_function.this["secret-rotate"].logging_config[0].application_log_level == "INFO" &&
      aws_lambda_function.this["secret-rotate"].logging_config[0].system_log_level == "WARN" &&
      aws_lambda_function.this["secret-rotate"].logging_config[0].log_group == "/aws/lambda/ticketbound-secret-rotate" &&
      aws_cloudwatch_log_group.function["secret-rotate"].name == "/aws/lambda/ticketbound-secret-rotate" &&
      aws_cloudwatch_log_group.function["secret-rotate"].retention_in_days == 365 &&
      aws_cloudwatch_log_group.function["secret-rotate"].kms_key_id == aws_kms_key.this.arn
    )
    error_message = "logging: JSON, INFO, WARN, into an own KMS-encrypted log group kept 365 days"
  }
  assert {
    condition = (
      aws_lambda_function.this["secret-rotate"].tracing_config[0].mode == "Active" &&
      aws_lambda_function.this["secret-rotate"].dead_letter_config[0].target_arn == aws_sqs_queue.function_dlq["secret-rotate"].arn &&
      aws_sqs_queue.function_dlq["secret-rotate"].name == "ticketbound-secret-rotate-dlq" &&
      aws_sqs_queue.function_dlq["secret-rotate"].kms_master_key_id == aws_kms_key.this.arn
    )
    error_message = "X-Ray active, failed async invocations to an own DLQ encrypted with the module key"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.function_errors["secret-rotate"].alarm_name == "ticketbound-secret-rotate-errors" &&
      aws_cloudwatch_metric_alarm.function_errors["secret-rotate"].dimensions == tomap({ FunctionName = "ticketbound-secret-rotate" }) &&
      aws_cloudwatch_metric_alarm.function_errors["secret-rotate"].metric_name == "Errors" &&
      aws_cloudwatch_metric_alarm.function_errors["secret-rotate"].threshold == 0
    )
    error_message = "an alarm on any secret-rotate error (a failed step leaves a pending version that blocks the next rotation)"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function_url.this), "secret-rotate") && !contains(keys(aws_lambda_event_source_mapping.grants_stream), "secret-rotate")
    error_message = "secret-rotate has no function URL and does not consume the grants stream"
  }
  assert {
    condition = (
      output.rotate_function_name == "ticketbound-secret-rotate" &&
      output.rotate_function_arn == aws_lambda_function.this["secret-rotate"].arn &&
      output.rotate_role_arn == "arn:aws:iam::111122223333:role/ticketbound-secret-rotate" &&
      output.rotate_dlq_arn == aws_sqs_queue.function_dlq["secret-rotate"].arn
    )
    error_message = "the function's name and ARN, its role and its DLQ are outputs"
  }

  # secret_rotate_environment_is_what_the_code_reads
  assert {
    condition = aws_lambda_function.this["secret-rotate"].environment[0].variables == tomap({
      TICKETBOUND_GRANTS_TABLE      = "ticketbound-grants"
      TICKETBOUND_AUDIT_TABLE       = "ticketbound-audit"
      TICKETBOUND_RETENTION_DAYS    = "400"
      TICKETBOUND_TARGETS           = "{}"
      TICKETBOUND_SECRET_CACHE_SECS = "300"
    })
    error_message = "secret-rotate's environment is exactly what functions/secret-rotate/src/config.rs reads"
  }

  # secret_rotate_is_invoked_by_secrets_manager_of_this_account_only
  assert {
    condition = (
      aws_lambda_permission.secrets_manager_rotation.principal == "secretsmanager.amazonaws.com" &&
      aws_lambda_permission.secrets_manager_rotation.action == "lambda:InvokeFunction" &&
      aws_lambda_permission.secrets_manager_rotation.function_name == aws_lambda_function.this["secret-rotate"].function_name
    )
    error_message = "Secrets Manager may invoke secret-rotate"
  }
  assert {
    condition     = aws_lambda_permission.secrets_manager_rotation.source_account == "111122223333"
    error_message = "only on behalf of this account (aws:SourceAccount): no confused deputy for another account's secrets"
  }
  assert {
    condition     = aws_lambda_permission.secrets_manager_rotation.qualifier == null || aws_lambda_permission.secrets_manager_rotation.qualifier == ""
    error_message = "the permission is on the function itself, the ARN grant-provision hands to RotateSecret"
  }
  assert {
    condition     = length([for p in aws_lambda_permission.eventbridge : p if p.function_name == aws_lambda_function.this["secret-rotate"].function_name]) == 0
    error_message = "nothing else may invoke secret-rotate"
  }

  # rotate_policy_is_least_privilege
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["secret-rotate"].policy).Statement :
      alltrue([for a in flatten([s.Action]) : a != "*" && !endswith(a, ":*") && !startswith(a, "*")])
    ])
    error_message = "no wildcard action"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["secret-rotate"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if contains(flatten([s.Resource]), "*")
      } == {
      XRayTracing    = { actions = toset(["xray:PutTraceSegments", "xray:PutTelemetryRecords"]), resources = toset(["*"]) }
      RandomPassword = { actions = toset(["secretsmanager:GetRandomPassword"]), resources = toset(["*"]) }
    }
    error_message = "\"*\" is a resource only where AWS requires it (X-Ray, GetRandomPassword), and those statements hold nothing else"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["secret-rotate"].policy).Statement :
      s.Sid => {
        actions      = toset(flatten([s.Action]))
        resources    = toset(flatten([s.Resource]))
        leading_keys = join(" ", sort(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], s.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"], [])))
      }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")])
      } == {
      GrantsRead = {
        actions      = toset(["dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = ""
      }
      GrantRecordsWrite = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:DeleteItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = "GRANT#*"
      }
      AuditTableAppend = {
        actions      = toset(["dynamodb:Query", "dynamodb:PutItem", "dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit"])
        leading_keys = ""
      }
    }
    error_message = "DynamoDB: read the grant by key, write GRANT# partitions only (DeleteItem: saving an ended grant deletes its expiry trigger in the same transaction), query, append to and read back the audit table; no index, no stream, no UpdateItem"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["secret-rotate"].policy).Statement :
      s.Sid => { effect = s.Effect, actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])), condition = try(s.Condition, null) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "secretsmanager:")])
      } == {
      CredentialSecretsRotate = {
        effect = "Allow"
        actions = toset([
          "secretsmanager:DescribeSecret",
          "secretsmanager:GetSecretValue",
          "secretsmanager:PutSecretValue",
          "secretsmanager:UpdateSecretVersionStage",
          "secretsmanager:ListSecretVersionIds",
        ])
        resources = toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*"])
        condition = { StringEquals = { "aws:ResourceTag/managed-by" = "ticketbound" } }
      }
      NeverTheModuleSecrets = {
        effect = "Deny"
        actions = toset([
          "secretsmanager:CreateSecret",
          "secretsmanager:TagResource",
          "secretsmanager:DescribeSecret",
          "secretsmanager:GetSecretValue",
          "secretsmanager:PutSecretValue",
          "secretsmanager:PutResourcePolicy",
          "secretsmanager:GetResourcePolicy",
          "secretsmanager:DeleteSecret",
          "secretsmanager:RotateSecret",
          "secretsmanager:UpdateSecretVersionStage",
        ])
        resources = toset([
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/jira-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/servicenow-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/generic-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/jira-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/servicenow-AbCdEf",
        ])
        condition = null
      }
      RandomPassword = {
        effect    = "Allow"
        actions   = toset(["secretsmanager:GetRandomPassword"])
        resources = toset(["*"])
        condition = null
      }
    }
    error_message = "Secrets Manager: the four rotation actions on ticketbound/* secrets tagged managed-by=ticketbound only; never the module's webhook and ITSM API secrets; no create, delete, tag, resource policy or RotateSecret; no admin secrets unless listed"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["secret-rotate"].policy).Statement :
      try(s.Condition.StringEquals["aws:ResourceTag/managed-by"], "") == "ticketbound"
      if s.Effect == "Allow" && contains(flatten([s.Resource]), "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*")
    ])
    error_message = "every Allow on the credential secrets' ARN pattern, DescribeSecret included, carries the managed-by=ticketbound resource tag condition"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["secret-rotate"].policy).Statement :
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
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-secret-rotate",
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-secret-rotate:*",
        ])
      }
      OwnDeadLetterQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-secret-rotate-dlq"])
      }
    }
    error_message = "KMS, logs and SQS: the module key (decrypt and encrypt secret versions), its own log group, its own DLQ"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.function["secret-rotate"].policy).Statement : [for a in flatten([s.Action]) : split(":", a)[0]]
    ])) == toset(["dynamodb", "secretsmanager", "kms", "logs", "xray", "sqs"])
    error_message = "no service beyond DynamoDB, Secrets Manager, KMS, Logs, X-Ray and SQS (no iam, no lambda, no scheduler)"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["secret-rotate"].policy).Statement : !contains(keys(s), "NotAction") && !contains(keys(s), "NotResource")
    ])
    error_message = "no NotAction or NotResource"
  }
  assert {
    condition = jsondecode(aws_iam_role.function["secret-rotate"].assume_role_policy).Statement == [{
      Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole"
    }]
    error_message = "only Lambda assumes secret-rotate's role"
  }
  assert {
    condition     = aws_iam_role.function["secret-rotate"].name == "ticketbound-secret-rotate" && aws_iam_role_policy.function["secret-rotate"].role == aws_iam_role.function["secret-rotate"].id
    error_message = "secret-rotate has its own role, with its own policy"
  }
}

run "rotate_reads_the_target_admin_secrets_when_listed" {
  variables {
    target_admin_secret_arns       = ["arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"]
    target_admin_secret_cache_secs = 120
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["secret-rotate"].policy).Statement : { effect = s.Effect, actions = s.Action, resources = s.Resource, condition = try(s.Condition, null) } if s.Sid == "TargetAdminSecrets"
      ] == [{
        effect    = "Allow"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = ["arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"]
        condition = null
    }]
    error_message = "secret-rotate may read the listed target admin secrets, GetSecretValue only"
  }
  assert {
    condition     = aws_lambda_function.this["secret-rotate"].environment[0].variables["TICKETBOUND_SECRET_CACHE_SECS"] == "120"
    error_message = "TICKETBOUND_SECRET_CACHE_SECS follows target_admin_secret_cache_secs"
  }
}

run "sweep_interval_follows_its_variable" {
  command = plan
  variables {
    sweep_interval_minutes = 1
  }
  assert {
    condition     = aws_scheduler_schedule.sweep.schedule_expression == "rate(1 minute)"
    error_message = "rate() takes the singular for one minute"
  }
}

run "vpc_only_for_the_functions_that_reach_targets" {
  variables {
    vpc_subnet_ids         = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    vpc_security_group_ids = ["sg-0123456789abcdef0"]
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire", "secret-rotate", "grant-reconcile"] :
      aws_lambda_function.this[k].vpc_config[0].subnet_ids == toset(["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]) &&
      aws_lambda_function.this[k].vpc_config[0].security_group_ids == toset(["sg-0123456789abcdef0"])
    ])
    error_message = "grant-provision, grant-expire, secret-rotate and grant-reconcile (all reach the targets) join the VPC"
  }
  assert {
    condition     = length(aws_lambda_function.this["itsm-intake"].vpc_config) == 0
    error_message = "the intake stays out of the VPC"
  }
  assert {
    condition     = length(aws_lambda_function.this["ticket-writeback"].vpc_config) == 0
    error_message = "ticket-writeback stays out of the VPC: it calls the ITSM over the internet and reaches no target"
  }
  assert {
    condition = {
      for k, a in aws_iam_role_policy_attachment.vpc_access : k => a.policy_arn
      } == {
      "grant-provision" = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
      "grant-expire"    = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
      "secret-rotate"   = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
      "grant-reconcile" = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    }
    error_message = "the VPC access policy, for the four VPC functions only"
  }
}

run "rejects_a_postgres_target_without_its_settings" {
  command = plan
  variables {
    targets = { orders = { connector = "postgres", environment = "prod", host = "orders.db.internal" } }
  }
  expect_failures = [var.targets]
}

run "rejects_a_target_without_its_environment" {
  command = plan
  variables {
    # The intake takes a target's environment from here; without one it would have to
    # believe the request.
    targets = {
      orders = {
        connector       = "postgres"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
        host            = "orders.db.internal"
        port            = 5432
        dbname          = "orders"
        allowed_roles   = ["orders_read"]
        ca_file         = "/opt/rds-global-bundle.pem"
      }
    }
  }
  expect_failures = [var.targets]
}

run "rejects_an_environment_that_is_neither_prod_nor_non_prod" {
  command = plan
  variables {
    targets = {
      orders = {
        connector       = "postgres"
        environment     = "staging"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
        host            = "orders.db.internal"
        port            = 5432
        dbname          = "orders"
        allowed_roles   = ["orders_read"]
        ca_file         = "/opt/rds-global-bundle.pem"
      }
    }
  }
  expect_failures = [var.targets]
}

run "rejects_a_postgres_target_without_a_ca_file" {
  command = plan
  variables {
    # tls defaults to verify_full, which needs the CA bundle to verify the server against.
    targets = {
      orders = {
        connector       = "postgres"
        environment     = "prod"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
        host            = "orders.db.internal"
        port            = 5432
        dbname          = "orders"
        allowed_roles   = ["orders_read"]
      }
    }
  }
  expect_failures = [var.targets]
}

run "rejects_an_unknown_tls_mode" {
  command = plan
  variables {
    targets = {
      orders = {
        connector       = "postgres"
        environment     = "prod"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
        host            = "orders.db.internal"
        port            = 5432
        dbname          = "orders"
        allowed_roles   = ["orders_read"]
        tls             = "bogus"
        ca_file         = "/opt/rds-global-bundle.pem"
      }
    }
  }
  expect_failures = [var.targets]
}

run "tls_disabled_needs_no_ca_file_and_reaches_the_environment" {
  variables {
    target_admin_secret_arns = ["arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"]
    targets = {
      orders = {
        connector       = "postgres"
        environment     = "prod"
        admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
        host            = "orders.db.internal"
        port            = 5432
        dbname          = "orders"
        allowed_roles   = ["orders_read"]
        tls             = "disabled"
      }
    }
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire", "secret-rotate", "grant-reconcile"] :
      jsondecode(aws_lambda_function.this[k].environment[0].variables["TICKETBOUND_TARGETS"]) == {
        orders = {
          connector       = "postgres"
          environment     = "prod"
          admin_secret_id = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"
          host            = "orders.db.internal"
          port            = 5432
          dbname          = "orders"
          allowed_roles   = ["orders_read"]
          tls             = "disabled"
        }
      }
    ])
    error_message = "tls = \"disabled\" is accepted without ca_file and reaches TICKETBOUND_TARGETS, ca_file (null) left out"
  }
  assert {
    condition     = strcontains(aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_TARGETS"], "\"tls\":\"disabled\"") && !strcontains(aws_lambda_function.this["grant-provision"].environment[0].variables["TICKETBOUND_TARGETS"], "ca_file")
    error_message = "TICKETBOUND_TARGETS carries \"tls\":\"disabled\" and no ca_file key"
  }
}

run "rejects_a_generated_api_key_target" {
  command = plan
  variables {
    # Removed: its revocation cannot be verified at any target (it only deleted the secret).
    targets = { billing-api = { connector = "generated_api_key", environment = "prod" } }
  }
  expect_failures = [var.targets]
}

run "rejects_an_unknown_connector" {
  command = plan
  variables {
    targets = { orders = { connector = "mysql", environment = "prod" } }
  }
  expect_failures = [var.targets]
}

run "rejects_half_a_vpc" {
  command = plan
  variables {
    vpc_subnet_ids = ["subnet-0123456789abcdef0"]
  }
  expect_failures = [var.vpc_security_group_ids]
}

run "rejects_a_recovery_window_secrets_manager_refuses" {
  command = plan
  variables {
    secret_recovery_window_days = 3
  }
  expect_failures = [var.secret_recovery_window_days]
}

run "rejects_the_managed_by_tag_on_module_resources" {
  command = plan
  variables {
    tags = { Managed-By = "ticketbound" }
  }
  expect_failures = [var.tags]
}

# --- ticket-writeback ---------------------------------------------------------------

run "writeback" {
  # writeback_follows_the_function_pattern
  assert {
    condition = (
      aws_lambda_function.this["ticket-writeback"].function_name == "ticketbound-ticket-writeback" &&
      aws_lambda_function.this["ticket-writeback"].runtime == "provided.al2023" &&
      aws_lambda_function.this["ticket-writeback"].architectures == tolist(["arm64"]) &&
      aws_lambda_function.this["ticket-writeback"].handler == "bootstrap" &&
      aws_lambda_function.this["ticket-writeback"].filename == "tests/fixtures/package/ticket-writeback/bootstrap.zip" &&
      aws_lambda_function.this["ticket-writeback"].kms_key_arn == aws_kms_key.this.arn
    )
    error_message = "<name_prefix>-ticket-writeback: the cargo-lambda arm64 bootstrap on provided.al2023, from <package_dir>/ticket-writeback/bootstrap.zip, environment encrypted with the module key"
  }
  assert {
    condition = (
      aws_lambda_function.this["ticket-writeback"].memory_size == 256 &&
      aws_lambda_function.this["ticket-writeback"].timeout == 900 &&
      coalesce(aws_lambda_function.this["ticket-writeback"].reserved_concurrent_executions, -1) == -1
    )
    error_message = "default memory 256 MB, timeout 900 s, no reserved concurrency"
  }
  assert {
    condition = (
      aws_lambda_function.this["ticket-writeback"].logging_config[0].log_format == "JSON" &&
      aws_lambda_function.this["ticket-writeback"].logging_config[0].application_log_level == "INFO" &&
      aws_lambda_function.this["ticket-writeback"].logging_config[0].system_log_level == "WARN" &&
      aws_lambda_function.this["ticket-writeback"].logging_config[0].log_group == "/aws/lambda/ticketbound-ticket-writeback" &&
      aws_cloudwatch_log_group.function["ticket-writeback"].retention_in_days == 365 &&
      aws_cloudwatch_log_group.function["ticket-writeback"].kms_key_id == aws_kms_key.this.arn
    )
    error_message = "logging: JSON, INFO, WARN, into an own KMS-encrypted log group kept 365 days"
  }
  assert {
    condition = (
      aws_lambda_function.this["ticket-writeback"].tracing_config[0].mode == "Active" &&
      aws_lambda_function.this["ticket-writeback"].dead_letter_config[0].target_arn == aws_sqs_queue.function_dlq["ticket-writeback"].arn &&
      aws_sqs_queue.function_dlq["ticket-writeback"].name == "ticketbound-ticket-writeback-dlq" &&
      aws_sqs_queue.function_dlq["ticket-writeback"].kms_master_key_id == aws_kms_key.this.arn &&
      aws_sqs_queue.stream_dlq["ticket-writeback"].name == "ticketbound-ticket-writeback-stream-dlq" &&
      aws_sqs_queue.stream_dlq["ticket-writeback"].kms_master_key_id == aws_kms_key.this.arn
    )
    error_message = "X-Ray active, failed async invocations to an own DLQ, given-up audit stream batches to an own stream DLQ, both encrypted with the module key"
  }
  assert {
    condition     = length(aws_lambda_function.this["ticket-writeback"].vpc_config) == 0 && !contains(keys(aws_lambda_function_url.this), "ticket-writeback")
    error_message = "no VPC (it calls the ITSM over the internet), no function URL"
  }
  assert {
    condition     = jsondecode(aws_iam_role.function["ticket-writeback"].assume_role_policy).Statement == [{ Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" }] && aws_iam_role_policy.function["ticket-writeback"].role == aws_iam_role.function["ticket-writeback"].id
    error_message = "its own role, assumed by Lambda only, with its own policy"
  }
  assert {
    condition = (
      output.writeback_function_name == "ticketbound-ticket-writeback" &&
      output.writeback_function_arn == aws_lambda_function.this["ticket-writeback"].arn &&
      output.writeback_role_arn == "arn:aws:iam::111122223333:role/ticketbound-ticket-writeback" &&
      output.writeback_dlq_arn == aws_sqs_queue.function_dlq["ticket-writeback"].arn &&
      output.writeback_stream_dlq_arn == aws_sqs_queue.stream_dlq["ticket-writeback"].arn
    )
    error_message = "the function's name and ARN, its role and its DLQs are outputs"
  }

  # writeback_environment_without_an_itsm
  assert {
    condition = aws_lambda_function.this["ticket-writeback"].environment[0].variables == tomap({
      TICKETBOUND_GRANTS_TABLE            = "ticketbound-grants"
      TICKETBOUND_AUDIT_TABLE             = "ticketbound-audit"
      TICKETBOUND_LOG_TABLE               = "ticketbound-log"
      TICKETBOUND_RETENTION_DAYS          = "400"
      TICKETBOUND_WRITEBACK_ATTEMPTS      = "4"
      TICKETBOUND_WRITEBACK_MAX_WAIT_SECS = "20"
      TICKETBOUND_SECRET_CACHE_SECS       = "300"
    })
    error_message = "with no ITSM URL the write-back gets no URL, credentials secret, revoked state or transition (the code takes no empty value and wants URL and secret together)"
  }

  # writeback_policy_is_least_privilege
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["ticket-writeback"].policy).Statement :
      s.Effect == "Allow" && !contains(keys(s), "NotAction") && !contains(keys(s), "NotResource") &&
      alltrue([for a in flatten([s.Action]) : !strcontains(a, "*")])
    ])
    error_message = "only plain Allow statements, no wildcard action"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["ticket-writeback"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if contains(flatten([s.Resource]), "*")
      } == {
      XRayTracing     = { actions = toset(["xray:PutTraceSegments", "xray:PutTelemetryRecords"]), resources = toset(["*"]) }
      AuditStreamList = { actions = toset(["dynamodb:ListStreams"]), resources = toset(["*"]) }
    }
    error_message = "\"*\" is a resource only where AWS requires it (X-Ray, ListStreams), and those statements hold nothing else"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["ticket-writeback"].policy).Statement :
      s.Sid => {
        actions      = toset(flatten([s.Action]))
        resources    = toset(flatten([s.Resource]))
        leading_keys = join(" ", sort(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], s.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"], [])))
      }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")])
      } == {
      GrantsRead = {
        actions      = toset(["dynamodb:GetItem", "dynamodb:Query"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = ""
      }
      GrantRecordsWrite = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:DeleteItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = "GRANT#*"
      }
      AuditTableAppend = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit"])
        leading_keys = ""
      }
      SignedLogNewestCheckpoint = {
        actions      = toset(["dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-log"])
        leading_keys = "CHECKPOINT"
      }
      AuditStreamRead = {
        actions      = toset(["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit/stream/2025-01-01T00:00:00.000"])
        leading_keys = ""
      }
      AuditStreamList = {
        actions      = toset(["dynamodb:ListStreams"])
        resources    = toset(["*"])
        leading_keys = ""
      }
    }
    error_message = "DynamoDB: the grants table (reads; writes on GRANT# partitions only: write-back records, audited grant updates), the audit table's appends and the read-back of its own event (no Query), the log table's newest checkpoint item (read only), the audit stream; no index, no grants stream, no UpdateItem"
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["ticket-writeback"].policy).Statement :
      { sid = s.Sid, actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])), condition = try(s.Condition, null) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "secretsmanager:")])
      ] == [{
        sid     = "ItsmApiSecrets"
        actions = toset(["secretsmanager:GetSecretValue"])
        resources = toset([
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/jira-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/servicenow-AbCdEf",
        ])
        condition = null
    }]
    error_message = "Secrets Manager: GetSecretValue on the two ITSM API credentials secrets, and nothing else (no webhook, credential or target admin secret)"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.function["ticket-writeback"].policy).Statement : s.Resource if contains(flatten([s.Action]), "secretsmanager:GetSecretValue")
    ])) == toset([aws_secretsmanager_secret.itsm_api["servicenow"].arn, aws_secretsmanager_secret.itsm_api["jira"].arn])
    error_message = "the secrets ticket-writeback may read are exactly the module's two ITSM API secrets"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["ticket-writeback"].policy).Statement :
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
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-ticket-writeback",
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-ticket-writeback:*",
        ])
      }
      OwnDeadLetterQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-ticket-writeback-dlq"])
      }
      StreamFailureQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-ticket-writeback-stream-dlq"])
      }
    }
    error_message = "KMS, logs and SQS: the module key (the stream, the secrets, the encrypted DLQs), its own log group, its own DLQs"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.function["ticket-writeback"].policy).Statement : [for a in flatten([s.Action]) : split(":", a)[0]]
    ])) == toset(["dynamodb", "secretsmanager", "kms", "logs", "xray", "sqs"])
    error_message = "no service beyond DynamoDB, Secrets Manager, KMS, Logs, X-Ray and SQS (no scheduler, no iam, no lambda)"
  }

  # itsm_api_secrets
  assert {
    condition     = { for k, s in aws_secretsmanager_secret.itsm_api : k => s.name } == { jira = "ticketbound/itsm-api/jira", servicenow = "ticketbound/itsm-api/servicenow" }
    error_message = "two ITSM API credentials secrets named <name_prefix>/itsm-api/<itsm>"
  }
  assert {
    condition     = alltrue([for s in aws_secretsmanager_secret.itsm_api : s.kms_key_id == aws_kms_key.this.arn && s.recovery_window_in_days == 30])
    error_message = "encrypted with the module key, recoverable for webhook_secret_recovery_window_in_days"
  }
  assert {
    condition     = alltrue([for s in aws_secretsmanager_secret.itsm_api : !contains(keys(s.tags), "managed-by")])
    error_message = "not tagged managed-by=ticketbound: that tag marks credential secrets the grant functions may change and delete"
  }
  assert {
    condition = (
      output.servicenow_api_credentials_secret_arn == aws_secretsmanager_secret.itsm_api["servicenow"].arn &&
      output.jira_api_credentials_secret_arn == aws_secretsmanager_secret.itsm_api["jira"].arn
    )
    error_message = "the secrets' ARNs are outputs, for the operator to put their values"
  }
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire", "secret-rotate", "grant-reconcile"] :
      toset([for s in jsondecode(aws_iam_role_policy.function[k].policy).Statement : s if s.Sid == "NeverTheModuleSecrets"][0].Resource) == toset(concat(
        [for s in aws_secretsmanager_secret.webhook : s.arn],
        [for s in aws_secretsmanager_secret.itsm_api : s.arn],
      )) && [for s in jsondecode(aws_iam_role_policy.function[k].policy).Statement : s if s.Sid == "NeverTheModuleSecrets"][0].Effect == "Deny"
    ])
    error_message = "the functions that touch ticketbound/* secrets are denied the module's webhook and ITSM API secrets (which fall under that pattern with the default name_prefix)"
  }
  assert {
    condition = alltrue([
      for k in ["itsm-intake", "grant-provision", "grant-expire", "secret-rotate", "grant-reconcile"] : !anytrue([
        for s in jsondecode(aws_iam_role_policy.function[k].policy).Statement :
        s.Effect == "Allow" && length(setintersection(flatten([s.Resource]), [for x in aws_secretsmanager_secret.itsm_api : x.arn])) > 0
      ])
    ])
    error_message = "no function but ticket-writeback is allowed anything on the ITSM API secrets by name"
  }
}

run "writeback_environment_is_what_the_code_reads" {
  variables {
    servicenow_instance_url    = "https://example.service-now.com"
    servicenow_revoked_state   = "3"
    jira_site_url              = "https://example.atlassian.net"
    jira_revoked_transition_id = "31"
    writeback_attempts         = 5
    writeback_max_wait_secs    = 30
    secret_cache_secs          = 120
    # Both ITSMs in use, neither read back.
    sender_only_systems = ["jira", "servicenow"]
  }
  assert {
    condition = sort(keys(aws_lambda_function.this["ticket-writeback"].environment[0].variables)) == sort([
      "TICKETBOUND_GRANTS_TABLE",
      "TICKETBOUND_AUDIT_TABLE",
      "TICKETBOUND_LOG_TABLE",
      "TICKETBOUND_RETENTION_DAYS",
      "TICKETBOUND_SERVICENOW_URL",
      "TICKETBOUND_SERVICENOW_CREDENTIALS_SECRET_ID",
      "TICKETBOUND_SERVICENOW_REVOKED_STATE",
      "TICKETBOUND_JIRA_URL",
      "TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID",
      "TICKETBOUND_JIRA_REVOKED_TRANSITION_ID",
      "TICKETBOUND_WRITEBACK_ATTEMPTS",
      "TICKETBOUND_WRITEBACK_MAX_WAIT_SECS",
      "TICKETBOUND_SECRET_CACHE_SECS",
    ])
    error_message = "with everything set, the write-back's environment is exactly the thirteen variables functions/ticket-writeback/src/config.rs reads"
  }
  assert {
    condition = aws_lambda_function.this["ticket-writeback"].environment[0].variables == tomap({
      TICKETBOUND_GRANTS_TABLE                     = "ticketbound-grants"
      TICKETBOUND_AUDIT_TABLE                      = "ticketbound-audit"
      TICKETBOUND_LOG_TABLE                        = "ticketbound-log"
      TICKETBOUND_RETENTION_DAYS                   = "400"
      TICKETBOUND_SERVICENOW_URL                   = "https://example.service-now.com"
      TICKETBOUND_SERVICENOW_CREDENTIALS_SECRET_ID = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/servicenow-AbCdEf"
      TICKETBOUND_SERVICENOW_REVOKED_STATE         = "3"
      TICKETBOUND_JIRA_URL                         = "https://example.atlassian.net"
      TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID       = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/jira-AbCdEf"
      TICKETBOUND_JIRA_REVOKED_TRANSITION_ID       = "31"
      TICKETBOUND_WRITEBACK_ATTEMPTS               = "5"
      TICKETBOUND_WRITEBACK_MAX_WAIT_SECS          = "30"
      TICKETBOUND_SECRET_CACHE_SECS                = "120"
    })
    error_message = "each ITSM's URL with its own API credentials secret; the revoked state, transition, attempts, wait and cache follow their variables"
  }
}

run "writeback_environment_with_one_itsm" {
  variables {
    jira_site_url       = "https://example.atlassian.net"
    sender_only_systems = ["jira"]
  }
  assert {
    condition = (
      aws_lambda_function.this["ticket-writeback"].environment[0].variables["TICKETBOUND_JIRA_URL"] == "https://example.atlassian.net" &&
      aws_lambda_function.this["ticket-writeback"].environment[0].variables["TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID"] == aws_secretsmanager_secret.itsm_api["jira"].arn
    )
    error_message = "the Jira URL comes with the Jira API credentials secret"
  }
  assert {
    condition = length(setintersection(keys(aws_lambda_function.this["ticket-writeback"].environment[0].variables), [
      "TICKETBOUND_SERVICENOW_URL",
      "TICKETBOUND_SERVICENOW_CREDENTIALS_SECRET_ID",
      "TICKETBOUND_SERVICENOW_REVOKED_STATE",
      "TICKETBOUND_JIRA_REVOKED_TRANSITION_ID",
    ])) == 0
    error_message = "no ServiceNow setting without a ServiceNow URL, no transition unless set"
  }
}

run "writeback_batch_size_fits_the_timeout" {
  command = plan
  variables {
    writeback_timeout       = 120
    writeback_attempts      = 2
    writeback_max_wait_secs = 10
  }
  assert {
    condition     = aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].batch_size == 1
    error_message = "a note that may take 70 s leaves room for 1 in 120 s"
  }
}

run "writeback_batch_size_is_at_least_one_and_at_most_ten" {
  command = plan
  variables {
    writeback_timeout  = 60
    writeback_attempts = 10
  }
  assert {
    condition     = aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].batch_size == 1
    error_message = "never less than one record a batch"
  }
}

run "rejects_an_itsm_url_that_is_not_https" {
  command = plan
  variables {
    servicenow_instance_url = "http://example.service-now.com"
    jira_site_url           = "example.atlassian.net"
    sender_only_systems     = ["jira", "servicenow"]
  }
  expect_failures = [var.servicenow_instance_url, var.jira_site_url]
}

run "rejects_an_empty_revoked_state_and_a_named_transition" {
  command = plan
  variables {
    servicenow_revoked_state   = ""
    jira_revoked_transition_id = "Done"
  }
  expect_failures = [var.servicenow_revoked_state, var.jira_revoked_transition_id]
}

run "rejects_no_writeback_attempt" {
  command = plan
  variables {
    writeback_attempts = 0
  }
  expect_failures = [var.writeback_attempts]
}

# --- grant-reconcile ----------------------------------------------------------------

run "reconcile" {
  # reconcile_follows_the_function_pattern
  assert {
    condition = (
      aws_lambda_function.this["grant-reconcile"].function_name == "ticketbound-grant-reconcile" &&
      aws_lambda_function.this["grant-reconcile"].runtime == "provided.al2023" &&
      aws_lambda_function.this["grant-reconcile"].architectures == tolist(["arm64"]) &&
      aws_lambda_function.this["grant-reconcile"].handler == "bootstrap" &&
      aws_lambda_function.this["grant-reconcile"].filename == "tests/fixtures/package/grant-reconcile/bootstrap.zip" &&
      aws_lambda_function.this["grant-reconcile"].kms_key_arn == aws_kms_key.this.arn
    )
    error_message = "<name_prefix>-grant-reconcile: the cargo-lambda arm64 bootstrap on provided.al2023, from <package_dir>/grant-reconcile/bootstrap.zip, environment encrypted with the module key"
  }
  assert {
    condition = (
      aws_lambda_function.this["grant-reconcile"].memory_size == 256 &&
      aws_lambda_function.this["grant-reconcile"].timeout == 600 &&
      coalesce(aws_lambda_function.this["grant-reconcile"].reserved_concurrent_executions, -1) == -1
    )
    error_message = "default memory 256 MB, timeout 600 s (below the 15-minute interval), no reserved concurrency"
  }
  assert {
    condition = (
      aws_lambda_function.this["grant-reconcile"].logging_config[0].log_format == "JSON" &&
      aws_lambda_function.this["grant-reconcile"].logging_config[0].application_log_level == "INFO" &&
      aws_lambda_function.this["grant-reconcile"].logging_config[0].system_log_level == "WARN" &&
      aws_lambda_function.this["grant-reconcile"].logging_config[0].log_group == "/aws/lambda/ticketbound-grant-reconcile" &&
      aws_cloudwatch_log_group.function["grant-reconcile"].retention_in_days == 365 &&
      aws_cloudwatch_log_group.function["grant-reconcile"].kms_key_id == aws_kms_key.this.arn
    )
    error_message = "logging: JSON, INFO, WARN, into an own KMS-encrypted log group kept 365 days"
  }
  assert {
    condition = (
      aws_lambda_function.this["grant-reconcile"].tracing_config[0].mode == "Active" &&
      aws_lambda_function.this["grant-reconcile"].dead_letter_config[0].target_arn == aws_sqs_queue.function_dlq["grant-reconcile"].arn &&
      aws_sqs_queue.function_dlq["grant-reconcile"].name == "ticketbound-grant-reconcile-dlq" &&
      aws_sqs_queue.function_dlq["grant-reconcile"].kms_master_key_id == aws_kms_key.this.arn
    )
    error_message = "X-Ray active, failed (asynchronous, scheduled) invocations to an own DLQ encrypted with the module key"
  }
  assert {
    condition = (
      !contains(keys(aws_lambda_function_url.this), "grant-reconcile") &&
      !contains(keys(aws_lambda_event_source_mapping.grants_stream), "grant-reconcile") &&
      !contains(keys(aws_lambda_event_source_mapping.audit_stream), "grant-reconcile") &&
      !contains(keys(aws_sqs_queue.stream_dlq), "grant-reconcile")
    )
    error_message = "grant-reconcile has no function URL and consumes no stream"
  }
  assert {
    condition     = jsondecode(aws_iam_role.function["grant-reconcile"].assume_role_policy).Statement == [{ Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" }] && aws_iam_role_policy.function["grant-reconcile"].role == aws_iam_role.function["grant-reconcile"].id
    error_message = "its own role, assumed by Lambda only, with its own policy"
  }
  assert {
    condition = (
      output.reconcile_function_name == "ticketbound-grant-reconcile" &&
      output.reconcile_function_arn == aws_lambda_function.this["grant-reconcile"].arn &&
      output.reconcile_role_arn == "arn:aws:iam::111122223333:role/ticketbound-grant-reconcile" &&
      output.reconcile_dlq_arn == aws_sqs_queue.function_dlq["grant-reconcile"].arn &&
      output.reconcile_schedule_arn == "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-reconcile"
    )
    error_message = "the function's name and ARN, its role, its DLQ and its schedule are outputs"
  }

  # reconcile_environment_is_what_the_code_reads
  assert {
    condition = aws_lambda_function.this["grant-reconcile"].environment[0].variables == tomap({
      TICKETBOUND_GRANTS_TABLE         = "ticketbound-grants"
      TICKETBOUND_AUDIT_TABLE          = "ticketbound-audit"
      TICKETBOUND_RETENTION_DAYS       = "400"
      TICKETBOUND_IDENTITIES_TABLE     = "ticketbound-identities"
      TICKETBOUND_TARGETS              = "{}"
      TICKETBOUND_SCHEDULE_GROUP       = "ticketbound"
      TICKETBOUND_SECRET_CACHE_SECS    = "300"
      TICKETBOUND_RECONCILE_REMEDIATE  = "true"
      TICKETBOUND_RECONCILE_SEGMENTS   = "4"
      TICKETBOUND_ROTATION_GRACE_HOURS = "2"
    })
    error_message = "grant-reconcile's environment is what its config reads (no recovery window unless set, as grant-expire)"
  }

  # reconcile_schedule
  assert {
    condition = (
      aws_scheduler_schedule.reconcile.name == "ticketbound-reconcile" &&
      aws_scheduler_schedule.reconcile.group_name == aws_scheduler_schedule_group.this.name &&
      aws_scheduler_schedule.reconcile.schedule_expression == "rate(15 minutes)" &&
      aws_scheduler_schedule.reconcile.schedule_expression_timezone == "UTC" &&
      aws_scheduler_schedule.reconcile.flexible_time_window[0].mode == "OFF"
    )
    error_message = "grant-reconcile runs every 15 minutes, in the module's group, on time"
  }
  assert {
    condition = (
      aws_scheduler_schedule.reconcile.target[0].arn == aws_lambda_function.this["grant-reconcile"].arn &&
      aws_scheduler_schedule.reconcile.target[0].arn == "arn:aws:lambda:eu-west-1:111122223333:function:ticketbound-grant-reconcile" &&
      aws_scheduler_schedule.reconcile.target[0].role_arn == aws_iam_role.scheduler.arn
    )
    error_message = "the schedule invokes grant-reconcile as the scheduler role"
  }
  assert {
    condition     = jsondecode(aws_scheduler_schedule.reconcile.target[0].input) == { reconcile = true }
    error_message = "the schedule's input is {\"reconcile\": true}"
  }
  assert {
    condition = (
      aws_scheduler_schedule.reconcile.target[0].dead_letter_config[0].arn == aws_sqs_queue.schedule_dlq.arn &&
      aws_scheduler_schedule.reconcile.target[0].retry_policy[0].maximum_retry_attempts == 3 &&
      aws_scheduler_schedule.reconcile.target[0].retry_policy[0].maximum_event_age_in_seconds == 900
    )
    error_message = "retried within its interval (the next run supersedes it), then the schedules' DLQ"
  }
  assert {
    condition     = contains(flatten([for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s.Resource if contains(flatten([s.Action]), "lambda:InvokeFunction")]), aws_scheduler_schedule.reconcile.target[0].arn)
    error_message = "the scheduler role may invoke the schedule's target"
  }

  # grant_functions_never_touch_the_recurring_schedules
  # The expiry schedules' permissions cover the whole group, where the sweep and reconcile
  # schedules live too: an explicit Deny keeps the grant functions from deleting or
  # changing them (which would silently stop the sweep or the reconciliation).
  assert {
    condition = alltrue([
      for k in ["grant-provision", "grant-expire", "grant-reconcile"] : anytrue([
        for s in jsondecode(aws_iam_role_policy.function[k].policy).Statement :
        s.Effect == "Deny" && !contains(keys(s), "Condition") &&
        toset(flatten([s.Resource])) == toset([aws_scheduler_schedule.sweep.arn, aws_scheduler_schedule.reconcile.arn, aws_scheduler_schedule.checkpoint.arn]) &&
        length(setsubtract(["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"], flatten([s.Action]))) == 0
      ])
    ])
    error_message = "grant-provision, grant-expire and grant-reconcile each deny, unconditionally, creating, updating and deleting exactly the sweep, reconcile and checkpoint schedules"
  }
  assert {
    condition = alltrue(flatten([
      for k, p in aws_iam_role_policy.function : [
        for a in flatten([
          for s in jsondecode(p.policy).Statement : s.Action
          if s.Effect == "Allow" && anytrue([for r in flatten([s.Resource]) : startswith(r, "arn:aws:scheduler:")])
          ]) : a == "scheduler:GetSchedule" || anytrue([
          for d in jsondecode(p.policy).Statement :
          d.Effect == "Deny" && contains(flatten([d.Action]), a) &&
          length(setsubtract([aws_scheduler_schedule.sweep.arn, aws_scheduler_schedule.reconcile.arn, aws_scheduler_schedule.checkpoint.arn], flatten([d.Resource]))) == 0
        ])
      ]
    ]))
    error_message = "every scheduler action but GetSchedule that a function is allowed on the schedule group is denied on the sweep and reconcile schedules"
  }
  assert {
    condition = toset([
      for k, p in aws_iam_role_policy.function : k
      if anytrue([for s in jsondecode(p.policy).Statement : s.Sid == "NeverTheRecurringSchedules"])
    ]) == toset(["grant-provision", "grant-expire", "grant-reconcile"])
    error_message = "the guard is in exactly the policies of the functions that manage expiry schedules"
  }

  # reconcile_policy_is_least_privilege
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement :
      !contains(keys(s), "NotAction") && !contains(keys(s), "NotResource") && alltrue([for a in flatten([s.Action]) : !strcontains(a, "*")])
    ])
    error_message = "no wildcard action, no NotAction or NotResource"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if contains(flatten([s.Resource]), "*")
      } == {
      XRayTracing = { actions = toset(["xray:PutTraceSegments", "xray:PutTelemetryRecords"]), resources = toset(["*"]) }
      SecretsList = { actions = toset(["secretsmanager:ListSecrets"]), resources = toset(["*"]) }
    }
    error_message = "\"*\" is a resource only where AWS requires it (X-Ray, ListSecrets), and those statements hold nothing else"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement :
      s.Sid => {
        actions      = toset(flatten([s.Action]))
        resources    = toset(flatten([s.Resource]))
        leading_keys = join(" ", sort(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], s.Condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"], [])))
      }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")])
      } == {
      GrantsRead = {
        actions      = toset(["dynamodb:Scan", "dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = ""
      }
      GrantRecordsWrite = {
        actions      = toset(["dynamodb:PutItem", "dynamodb:DeleteItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
        leading_keys = "GRANT#*"
      }
      AuditTableAppend = {
        actions      = toset(["dynamodb:Query", "dynamodb:PutItem", "dynamodb:GetItem"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit"])
        leading_keys = ""
      }
      IdentitiesScan = {
        actions      = toset(["dynamodb:Scan"])
        resources    = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-identities"])
        leading_keys = ""
      }
    }
    error_message = "DynamoDB: scan and read the grants table (unconditioned), write GRANT# partitions only (no Query), query, append to and read back the audit table, scan the identity registry (read only); no index, no stream, no UpdateItem"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement :
      s.Sid => { effect = s.Effect, actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])), condition = try(s.Condition, null) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "secretsmanager:")])
      } == {
      SecretsList = {
        effect    = "Allow"
        actions   = toset(["secretsmanager:ListSecrets"])
        resources = toset(["*"])
        condition = null
      }
      CredentialSecretsDescribe = {
        effect    = "Allow"
        actions   = toset(["secretsmanager:DescribeSecret"])
        resources = toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*"])
        condition = null
      }
      CredentialSecretsReconcile = {
        effect = "Allow"
        actions = toset([
          "secretsmanager:GetResourcePolicy",
          "secretsmanager:DeleteSecret",
        ])
        resources = toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*"])
        condition = { StringEquals = { "aws:ResourceTag/managed-by" = "ticketbound" } }
      }
      NeverTheModuleSecrets = {
        effect = "Deny"
        actions = toset([
          "secretsmanager:CreateSecret",
          "secretsmanager:TagResource",
          "secretsmanager:DescribeSecret",
          "secretsmanager:GetSecretValue",
          "secretsmanager:PutSecretValue",
          "secretsmanager:PutResourcePolicy",
          "secretsmanager:GetResourcePolicy",
          "secretsmanager:DeleteSecret",
          "secretsmanager:RotateSecret",
          "secretsmanager:UpdateSecretVersionStage",
        ])
        resources = toset([
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/jira-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/servicenow-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/webhook/generic-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/jira-AbCdEf",
          "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/itsm-api/servicenow-AbCdEf",
        ])
        condition = null
      }
    }
    error_message = "Secrets Manager: list (no resource-level permissions), describe ticketbound/* secrets (metadata, unconditioned: an absent secret must read as absent), read the resource policy of and delete only those tagged managed-by=ticketbound; never the module's own secrets; no value read, no admin secrets unless listed"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement :
      try(s.Condition.StringEquals["aws:ResourceTag/managed-by"], "") == "ticketbound"
      if s.Effect == "Allow" && contains(flatten([s.Resource]), "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ticketbound/*") && flatten([s.Action]) != ["secretsmanager:DescribeSecret"]
    ])
    error_message = "every Allow on the credential secrets' ARN pattern but DescribeSecret (metadata only) carries the managed-by=ticketbound resource tag condition"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement :
      try(s.Condition.StringEquals["aws:ResourceTag/managed-by"], "") == "ticketbound"
      if s.Effect == "Allow" && anytrue([for a in flatten([s.Action]) : contains(["secretsmanager:GetResourcePolicy", "secretsmanager:DeleteSecret"], a)])
    ])
    error_message = "grant-reconcile may read the resource policy of, and delete, only secrets tagged managed-by=ticketbound"
  }
  assert {
    condition = !anytrue([
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement :
      s.Effect == "Allow" && anytrue([for a in flatten([s.Action]) : contains(["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:PutResourcePolicy", "secretsmanager:RotateSecret"], a)])
    ])
    error_message = "grant-reconcile never reads a credential's value, and never creates, tags, writes or rotates a secret (no target admin secrets unless listed)"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement :
      s.Sid => { actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      if anytrue([for a in flatten([s.Action]) : startswith(a, "scheduler:") || startswith(a, "sqs:") || startswith(a, "kms:") || startswith(a, "logs:")])
      } == {
      ExpirySchedulesDelete = {
        actions   = toset(["scheduler:GetSchedule", "scheduler:DeleteSchedule"])
        resources = toset(["arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/*"])
      }
      NeverTheRecurringSchedules = {
        actions = toset(["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"])
        resources = toset([
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-sweep",
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-reconcile",
          "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-checkpoint",
        ])
      }
      OwnDeadLetterQueue = {
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-grant-reconcile-dlq"])
      }
      ModuleKey = {
        actions   = toset(["kms:Decrypt", "kms:GenerateDataKey"])
        resources = toset([aws_kms_key.this.arn])
      }
      OwnLogGroup = {
        actions = toset(["logs:CreateLogStream", "logs:PutLogEvents"])
        resources = toset([
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-reconcile",
          "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-grant-reconcile:*",
        ])
      }
    }
    error_message = "Scheduler: read and delete the group's schedules, never create, never the recurring ones; its own DLQ, the module key, its own log group"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement : [for a in flatten([s.Action]) : split(":", a)[0]]
    ])) == toset(["dynamodb", "secretsmanager", "scheduler", "kms", "logs", "xray", "sqs"])
    error_message = "no service beyond DynamoDB, Secrets Manager, Scheduler, KMS, Logs, X-Ray and SQS (no iam, no lambda)"
  }
}

run "reconcile_settings_reach_the_environment" {
  variables {
    reconcile_remediate            = false
    reconcile_segments             = 8
    rotation_grace_hours           = 6
    secret_recovery_window_days    = 14
    target_admin_secret_cache_secs = 60
  }
  assert {
    condition = sort(keys(aws_lambda_function.this["grant-reconcile"].environment[0].variables)) == sort([
      "TICKETBOUND_GRANTS_TABLE",
      "TICKETBOUND_AUDIT_TABLE",
      "TICKETBOUND_RETENTION_DAYS",
      "TICKETBOUND_IDENTITIES_TABLE",
      "TICKETBOUND_TARGETS",
      "TICKETBOUND_SCHEDULE_GROUP",
      "TICKETBOUND_SECRET_CACHE_SECS",
      "TICKETBOUND_SECRET_RECOVERY_DAYS",
      "TICKETBOUND_RECONCILE_REMEDIATE",
      "TICKETBOUND_RECONCILE_SEGMENTS",
      "TICKETBOUND_ROTATION_GRACE_HOURS",
    ])
    error_message = "with a recovery window, grant-reconcile's environment is exactly the eleven variables it reads"
  }
  assert {
    condition = (
      aws_lambda_function.this["grant-reconcile"].environment[0].variables["TICKETBOUND_RECONCILE_REMEDIATE"] == "false" &&
      aws_lambda_function.this["grant-reconcile"].environment[0].variables["TICKETBOUND_RECONCILE_SEGMENTS"] == "8" &&
      aws_lambda_function.this["grant-reconcile"].environment[0].variables["TICKETBOUND_ROTATION_GRACE_HOURS"] == "6" &&
      aws_lambda_function.this["grant-reconcile"].environment[0].variables["TICKETBOUND_SECRET_RECOVERY_DAYS"] == "14" &&
      aws_lambda_function.this["grant-reconcile"].environment[0].variables["TICKETBOUND_SECRET_CACHE_SECS"] == "60"
    )
    error_message = "remediate (rendered true/false), segments, grace, recovery window and the admin secret cache follow their variables"
  }
}

run "reconcile_schedule_follows_its_variable" {
  command = plan
  variables {
    reconcile_schedule_expression = "rate(1 hour)"
  }
  assert {
    condition     = aws_scheduler_schedule.reconcile.schedule_expression == "rate(1 hour)" && aws_scheduler_schedule.reconcile.target[0].retry_policy[0].maximum_event_age_in_seconds == 3600
    error_message = "the expression and the retry window follow reconcile_schedule_expression"
  }
}

run "reconcile_schedule_takes_cron" {
  command = plan
  variables {
    reconcile_schedule_expression = "cron(0 * * * ? *)"
  }
  assert {
    condition     = aws_scheduler_schedule.reconcile.schedule_expression == "cron(0 * * * ? *)" && aws_scheduler_schedule.reconcile.target[0].retry_policy[0].maximum_event_age_in_seconds == 3600
    error_message = "a cron() expression is taken as is, retried for at most an hour"
  }
}

run "rejects_a_reconcile_schedule_that_is_not_recurring" {
  command = plan
  variables {
    reconcile_schedule_expression = "at(2030-01-01T00:00:00)"
  }
  expect_failures = [var.reconcile_schedule_expression]
}

run "reconcile_reads_the_target_admin_secrets_when_listed" {
  variables {
    target_admin_secret_arns = ["arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"]
  }
  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement : { effect = s.Effect, actions = s.Action, resources = s.Resource, condition = try(s.Condition, null) } if s.Sid == "TargetAdminSecrets"
      ] == [{
        effect    = "Allow"
        actions   = ["secretsmanager:GetSecretValue"]
        resources = ["arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"]
        condition = null
    }]
    error_message = "grant-reconcile may read the listed target admin secrets (to connect to the targets), GetSecretValue only"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_iam_role_policy.function["grant-reconcile"].policy).Statement : s.Resource if s.Effect == "Allow" && contains(flatten([s.Action]), "secretsmanager:GetSecretValue")
    ])) == toset(["arn:aws:secretsmanager:eu-west-1:111122223333:secret:db/orders/admin-AbCdEf"])
    error_message = "the target admin secrets are the only values grant-reconcile may read"
  }
}

run "rejects_no_reconcile_segment" {
  command = plan
  variables {
    reconcile_segments = 0
  }
  expect_failures = [var.reconcile_segments]
}

# --- log-checkpoint and the signed log -----------------------------------------------

run "log_checkpoint" {
  # log_checkpoint_follows_the_function_pattern
  assert {
    condition = (
      aws_lambda_function.this["log-checkpoint"].function_name == "ticketbound-log-checkpoint" &&
      aws_lambda_function.this["log-checkpoint"].runtime == "provided.al2023" &&
      aws_lambda_function.this["log-checkpoint"].architectures == tolist(["arm64"]) &&
      aws_lambda_function.this["log-checkpoint"].handler == "bootstrap" &&
      aws_lambda_function.this["log-checkpoint"].filename == "tests/fixtures/package/log-checkpoint/bootstrap.zip" &&
      aws_lambda_function.this["log-checkpoint"].kms_key_arn == aws_kms_key.this.arn &&
      aws_lambda_function.this["log-checkpoint"].memory_size == 256 &&
      aws_lambda_function.this["log-checkpoint"].timeout == 300 &&
      aws_lambda_function.this["log-checkpoint"].tracing_config[0].mode == "Active" &&
      aws_lambda_function.this["log-checkpoint"].logging_config[0].log_group == "/aws/lambda/ticketbound-log-checkpoint"
    )
    error_message = "<name_prefix>-log-checkpoint: the cargo-lambda arm64 bootstrap on provided.al2023, 256 MB, 300 s, X-Ray, its own log group"
  }
  assert {
    condition = (
      aws_lambda_function.this["log-checkpoint"].dead_letter_config[0].target_arn == aws_sqs_queue.function_dlq["log-checkpoint"].arn &&
      aws_sqs_queue.function_dlq["log-checkpoint"].kms_master_key_id == aws_kms_key.this.arn &&
      aws_sqs_queue.stream_dlq["log-checkpoint"].name == "ticketbound-log-checkpoint-stream-dlq" &&
      aws_sqs_queue.stream_dlq["log-checkpoint"].kms_master_key_id == aws_kms_key.this.arn
    )
    error_message = "failed async invocations to an own DLQ, given-up audit stream batches to an own stream DLQ, both encrypted with the module key"
  }
  assert {
    condition     = length(aws_lambda_function.this["log-checkpoint"].vpc_config) == 0 && !contains(keys(aws_lambda_function_url.this), "log-checkpoint")
    error_message = "no VPC (AWS APIs only), no function URL"
  }
  assert {
    condition = aws_lambda_function.this["log-checkpoint"].environment[0].variables == tomap({
      TICKETBOUND_GRANTS_TABLE     = "ticketbound-grants"
      TICKETBOUND_AUDIT_TABLE      = "ticketbound-audit"
      TICKETBOUND_RETENTION_DAYS   = "400"
      TICKETBOUND_LOG_TABLE        = "ticketbound-log"
      TICKETBOUND_LOG_KEY_ID       = "arn:aws:kms:eu-west-1:111122223333:key/0b7f1c2e-0000-4000-8000-000000000002"
      TICKETBOUND_LOG_BUCKET       = "ticketbound-checkpoints-111122223333"
      TICKETBOUND_LOG_ORIGIN       = "ticketbound/ticketbound"
      TICKETBOUND_CHECKPOINT_EVERY = "64"
    })
    error_message = "log-checkpoint's environment is exactly what functions/log-checkpoint/src/config.rs reads"
  }
  assert {
    condition = (
      output.checkpoint_function_name == "ticketbound-log-checkpoint" &&
      output.checkpoint_function_arn == aws_lambda_function.this["log-checkpoint"].arn &&
      output.checkpoint_role_arn == "arn:aws:iam::111122223333:role/ticketbound-log-checkpoint" &&
      output.log_signing_key_arn == aws_kms_key.log_signing["1"].arn &&
      output.checkpoint_bucket_name == "ticketbound-checkpoints-111122223333" &&
      output.log_origin == "ticketbound/ticketbound"
    )
    error_message = "the checkpointer's function, role, key, bucket and origin are outputs"
  }

  # log_checkpoint_policy_is_least_privilege
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["log-checkpoint"].policy).Statement :
      s.Sid => { effect = s.Effect, actions = toset(flatten([s.Action])), resources = toset(flatten([s.Resource])) }
      } == {
      OwnLogGroup = {
        effect    = "Allow"
        actions   = toset(["logs:CreateLogStream", "logs:PutLogEvents"])
        resources = toset(["arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-log-checkpoint", "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ticketbound-log-checkpoint:*"])
      }
      XRayTracing = {
        effect    = "Allow"
        actions   = toset(["xray:PutTraceSegments", "xray:PutTelemetryRecords"])
        resources = toset(["*"])
      }
      OwnDeadLetterQueue = {
        effect    = "Allow"
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-log-checkpoint-dlq"])
      }
      ModuleKey = {
        effect    = "Allow"
        actions   = toset(["kms:Decrypt", "kms:GenerateDataKey"])
        resources = toset([aws_kms_key.this.arn])
      }
      GrantsRead = {
        effect    = "Allow"
        actions   = toset(["dynamodb:GetItem"])
        resources = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-grants"])
      }
      AuditTableRead = {
        effect    = "Allow"
        actions   = toset(["dynamodb:Query"])
        resources = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit"])
      }
      LogRead = {
        effect    = "Allow"
        actions   = toset(["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"])
        resources = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-log"])
      }
      LogWrite = {
        effect    = "Allow"
        actions   = toset(["dynamodb:PutItem"])
        resources = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-log"])
      }
      LogHeadUpdate = {
        effect    = "Allow"
        actions   = toset(["dynamodb:UpdateItem"])
        resources = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-log"])
      }
      AuditStreamRead = {
        effect    = "Allow"
        actions   = toset(["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"])
        resources = toset(["arn:aws:dynamodb:eu-west-1:111122223333:table/ticketbound-audit/stream/2025-01-01T00:00:00.000"])
      }
      AuditStreamList = {
        effect    = "Allow"
        actions   = toset(["dynamodb:ListStreams"])
        resources = toset(["*"])
      }
      LogSigningKey = {
        effect    = "Allow"
        actions   = toset(["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"])
        resources = toset(["arn:aws:kms:eu-west-1:111122223333:key/0b7f1c2e-0000-4000-8000-000000000002"])
      }
      CheckpointObjects = {
        effect    = "Allow"
        actions   = toset(["s3:GetObject", "s3:PutObject"])
        resources = toset(["arn:aws:s3:::ticketbound-checkpoints-111122223333/*"])
      }
      CheckpointList = {
        effect    = "Allow"
        actions   = toset(["s3:ListBucket"])
        resources = toset(["arn:aws:s3:::ticketbound-checkpoints-111122223333"])
      }
      StreamFailureQueue = {
        effect    = "Allow"
        actions   = toset(["sqs:SendMessage"])
        resources = toset(["arn:aws:sqs:eu-west-1:111122223333:ticketbound-log-checkpoint-stream-dlq"])
      }
    }
    error_message = "log-checkpoint: a grant read, a chain read (the first event's ticket), the log table, the audit stream, the signing key, the bucket's objects, its DLQs and the module key; no write on the audit table, no secret, no delete"
  }
  assert {
    condition = {
      for s in jsondecode(aws_iam_role_policy.function["log-checkpoint"].policy).Statement :
      s.Sid => join(" ", sort(try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], [])))
      if anytrue([for a in flatten([s.Action]) : startswith(a, "dynamodb:")]) && contains(flatten([s.Resource]), aws_dynamodb_table.log.arn)
      } == {
      LogRead       = ""
      LogWrite      = "CHECKPOINT EVENT#* HEAD LEAF"
      LogHeadUpdate = "HEAD"
    }
    error_message = "on the log table, log-checkpoint puts only the head, leaves, markers and the newest checkpoint's item, and updates only the head (dynamodb:LeadingKeys); its reads are unconditioned"
  }
  assert {
    condition = toset([
      for k, p in aws_iam_role_policy.function : k
      if anytrue([for s in jsondecode(p.policy).Statement : s.Effect == "Allow" && contains(flatten([s.Action]), "kms:Sign")])
    ]) == toset(["log-checkpoint"])
    error_message = "no function role but log-checkpoint's is allowed kms:Sign"
  }
  assert {
    condition = !anytrue(flatten([
      for p in concat([for p in aws_iam_role_policy.function : p.policy], [aws_iam_role_policy.scheduler.policy]) : [
        for s in jsondecode(p).Statement : contains(flatten([s.Resource]), aws_kms_key.log_signing["1"].arn)
      ]
      if p != aws_iam_role_policy.function["log-checkpoint"].policy
    ]))
    error_message = "no other role names the log signing key"
  }

  # log_signing_key_and_its_policy
  assert {
    condition = (
      aws_kms_key.log_signing["1"].customer_master_key_spec == "ECC_NIST_P256" &&
      aws_kms_key.log_signing["1"].key_usage == "SIGN_VERIFY" &&
      !aws_kms_key.log_signing["1"].enable_key_rotation &&
      aws_kms_key.log_signing["1"].deletion_window_in_days == 30
    )
    error_message = "the signing key is ECC_NIST_P256 / SIGN_VERIFY (ECDSA P-256 checkpoints), not rotated (KMS cannot rotate asymmetric keys), 30 days before deletion"
  }
  assert {
    condition     = aws_kms_alias.log_signing.name == "alias/ticketbound-log-signing"
    error_message = "alias/<name_prefix>-log-signing"
  }
  assert {
    condition     = toset([for s in jsondecode(aws_kms_key.log_signing["1"].policy).Statement : s.Sid]) == toset(["AccountAdministers", "CheckpointerSigns", "OnlyTheCheckpointerSigns"])
    error_message = "key policy: the account administers, the checkpointer signs, everybody else is denied signing"
  }
  assert {
    condition = (
      one([for s in jsondecode(aws_kms_key.log_signing["1"].policy).Statement : s.Principal.AWS if s.Sid == "AccountAdministers"]) == "arn:aws:iam::111122223333:root" &&
      !contains(flatten([one([for s in jsondecode(aws_kms_key.log_signing["1"].policy).Statement : s if s.Sid == "AccountAdministers"]).Action]), "kms:Sign")
    )
    error_message = "the account root administers the key but is not given kms:Sign (so no IAM policy can delegate it)"
  }
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_kms_key.log_signing["1"].policy).Statement : [
        for a in flatten([s.Action]) : !strcontains(a, "*")
      ]
    ]))
    error_message = "no wildcard action in the signing key's policy (kms:* or kms:Sign* would hand out signing)"
  }
  assert {
    condition = [
      for s in jsondecode(aws_kms_key.log_signing["1"].policy).Statement : s.Principal.AWS
      if s.Effect == "Allow" && contains(flatten([s.Action]), "kms:Sign")
    ] == ["arn:aws:iam::111122223333:role/ticketbound-log-checkpoint"]
    error_message = "kms:Sign is allowed to the log-checkpoint role only"
  }
  assert {
    condition     = toset(flatten([one([for s in jsondecode(aws_kms_key.log_signing["1"].policy).Statement : s if s.Sid == "CheckpointerSigns"]).Action])) == toset(["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"])
    error_message = "the checkpointer may sign, read the public key and describe the key, nothing more"
  }
  assert {
    condition = one([for s in jsondecode(aws_kms_key.log_signing["1"].policy).Statement : s if s.Sid == "OnlyTheCheckpointerSigns"]) == {
      Sid       = "OnlyTheCheckpointerSigns"
      Effect    = "Deny"
      Principal = { AWS = "*" }
      Action    = ["kms:Sign"]
      Resource  = "*"
      Condition = { ArnNotEquals = { "aws:PrincipalArn" = "arn:aws:iam::111122223333:role/ticketbound-log-checkpoint" } }
    }
    error_message = "an explicit Deny of kms:Sign to every principal that is not the log-checkpoint role, whatever IAM or a grant allows"
  }

  # checkpoint_bucket_is_locked
  assert {
    condition     = aws_s3_bucket.checkpoints.bucket == "ticketbound-checkpoints-111122223333" && aws_s3_bucket.checkpoints.object_lock_enabled && !aws_s3_bucket.checkpoints.force_destroy
    error_message = "the checkpoints bucket is <name_prefix>-checkpoints-<account>, created with Object Lock, never force-destroyed"
  }
  assert {
    condition     = aws_s3_bucket_versioning.checkpoints.versioning_configuration[0].status == "Enabled"
    error_message = "versioning is enabled (Object Lock requires it)"
  }
  assert {
    condition = (
      aws_s3_bucket_object_lock_configuration.checkpoints.rule[0].default_retention[0].mode == "COMPLIANCE" &&
      aws_s3_bucket_object_lock_configuration.checkpoints.rule[0].default_retention[0].days == 2557
    )
    error_message = "every object is locked in COMPLIANCE mode for 2557 days (7 years) by default"
  }
  assert {
    condition = alltrue([
      for r in aws_s3_bucket_server_side_encryption_configuration.checkpoints.rule :
      r.apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms" && r.apply_server_side_encryption_by_default[0].kms_master_key_id == aws_kms_key.this.arn && r.bucket_key_enabled
    ]) && length(aws_s3_bucket_server_side_encryption_configuration.checkpoints.rule) == 1
    error_message = "SSE-KMS with the module key (a bucket key)"
  }
  assert {
    condition = (
      aws_s3_bucket_public_access_block.checkpoints.block_public_acls &&
      aws_s3_bucket_public_access_block.checkpoints.block_public_policy &&
      aws_s3_bucket_public_access_block.checkpoints.ignore_public_acls &&
      aws_s3_bucket_public_access_block.checkpoints.restrict_public_buckets &&
      aws_s3_bucket_ownership_controls.checkpoints.rule[0].object_ownership == "BucketOwnerEnforced"
    )
    error_message = "no public access of any kind, no ACLs"
  }
  assert {
    condition = toset(flatten([
      for s in jsondecode(aws_s3_bucket_policy.checkpoints.policy).Statement : s.Action
      if s.Effect == "Deny" && s.Principal == { AWS = "*" } && !contains(keys(s), "Condition")
    ])) == toset(["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration"])
    error_message = "everyone is denied, unconditionally, deleting objects or versions, changing or bypassing their retention, and changing the lock"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_s3_bucket_policy.checkpoints.policy).Statement :
      s.Effect == "Deny" && s.Principal == { AWS = "*" } && try(s.Condition.Bool["aws:SecureTransport"], "") == "false" && contains(s.Action, "s3:GetObject") && contains(s.Action, "s3:PutObject")
    ])
    error_message = "requests without TLS are denied"
  }
  assert {
    condition = [
      for s in jsondecode(aws_s3_bucket_policy.checkpoints.policy).Statement : { principal = s.Principal, actions = toset(s.Action), resources = s.Resource }
      if s.Effect == "Allow"
      ] == [{
        principal = { AWS = "arn:aws:iam::111122223333:role/ticketbound-log-checkpoint" }
        actions   = toset(["s3:GetObject", "s3:PutObject"])
        resources = ["arn:aws:s3:::ticketbound-checkpoints-111122223333/*"]
    }]
    error_message = "the bucket policy allows the checkpointer (only) to put and get objects"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_s3_bucket_policy.checkpoints.policy).Statement :
      s.Effect == "Deny" && s.Action == ["s3:PutObject"] && try(s.Condition, null) == { ArnNotEquals = { "aws:PrincipalArn" = "arn:aws:iam::111122223333:role/ticketbound-log-checkpoint" } }
    ])
    error_message = "nobody but the checkpointer puts an object"
  }

  # audit_stream_has_the_checkpointer
  assert {
    condition = [
      for f in aws_lambda_event_source_mapping.audit_stream["log-checkpoint"].filter_criteria[0].filter : jsondecode(f.pattern)
    ] == [{ eventName = ["INSERT", "MODIFY"] }]
    error_message = "log-checkpoint gets the audit stream's INSERTs and MODIFYs (functions/log-checkpoint STREAM_FILTERS)"
  }
  assert {
    condition = (
      aws_lambda_event_source_mapping.audit_stream["log-checkpoint"].event_source_arn == aws_dynamodb_table.audit.stream_arn &&
      aws_lambda_event_source_mapping.audit_stream["log-checkpoint"].function_name == aws_lambda_function.this["log-checkpoint"].arn &&
      aws_lambda_event_source_mapping.audit_stream["log-checkpoint"].starting_position == "LATEST" &&
      aws_lambda_event_source_mapping.audit_stream["log-checkpoint"].batch_size == 100 &&
      aws_lambda_event_source_mapping.audit_stream["log-checkpoint"].function_response_types == toset(["ReportBatchItemFailures"])
    )
    error_message = "log-checkpoint reads the audit table's stream from LATEST, 100 records a batch, reporting batch failures"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.audit_stream["log-checkpoint"].destination_config[0].on_failure[0].destination_arn == aws_sqs_queue.stream_dlq["log-checkpoint"].arn
    error_message = "given-up batches are described in log-checkpoint's own stream DLQ"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.audit_stream["ticket-writeback"].batch_size == 5
    error_message = "ticket-writeback keeps its own batch size"
  }

  # checkpoint_schedule
  assert {
    condition = (
      aws_scheduler_schedule.checkpoint.name == "ticketbound-checkpoint" &&
      aws_scheduler_schedule.checkpoint.group_name == "ticketbound" &&
      aws_scheduler_schedule.checkpoint.schedule_expression == "rate(5 minutes)" &&
      aws_scheduler_schedule.checkpoint.flexible_time_window[0].mode == "OFF"
    )
    error_message = "the checkpoint schedule runs every 5 minutes in the group, on time"
  }
  assert {
    condition = (
      aws_scheduler_schedule.checkpoint.target[0].arn == aws_lambda_function.this["log-checkpoint"].arn &&
      aws_scheduler_schedule.checkpoint.target[0].role_arn == aws_iam_role.scheduler.arn &&
      jsondecode(aws_scheduler_schedule.checkpoint.target[0].input) == { checkpoint = true } &&
      aws_scheduler_schedule.checkpoint.target[0].dead_letter_config[0].arn == aws_sqs_queue.schedule_dlq.arn &&
      aws_scheduler_schedule.checkpoint.target[0].retry_policy[0].maximum_event_age_in_seconds == 300
    )
    error_message = "the schedule invokes log-checkpoint (an event without Records) as the scheduler role, retries within its interval, then the schedules' DLQ"
  }
  assert {
    condition     = output.checkpoint_schedule_arn == "arn:aws:scheduler:eu-west-1:111122223333:schedule/ticketbound/ticketbound-checkpoint"
    error_message = "the checkpoint schedule's ARN is an output"
  }

  # checkpoint_alarms
  assert {
    condition = {
      for k, a in aws_cloudwatch_metric_alarm.checkpoint : a.alarm_name => a.metric_name
      if a.namespace == "ticketbound" && a.dimensions == tomap({ function = "log-checkpoint" }) && a.statistic == "Sum" && a.threshold == 1 && a.comparison_operator == "GreaterThanOrEqualToThreshold" && a.treat_missing_data == "notBreaching"
      } == {
      "ticketbound-log-checkpoint-log-tampered"        = "LogTampered"
      "ticketbound-log-checkpoint-checkpoint-fork"     = "CheckpointFork"
      "ticketbound-log-checkpoint-checkpoint-failures" = "CheckpointFailures"
    }
    error_message = "LogTampered, CheckpointFork and CheckpointFailures each alarm at 1 (namespace ticketbound, function = log-checkpoint)"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.checkpoint_late.alarm_name == "ticketbound-log-checkpoint-checkpoint-late" &&
      aws_cloudwatch_metric_alarm.checkpoint_late.namespace == "AWS/Lambda" &&
      aws_cloudwatch_metric_alarm.checkpoint_late.metric_name == "Invocations" &&
      aws_cloudwatch_metric_alarm.checkpoint_late.dimensions == tomap({ FunctionName = "ticketbound-log-checkpoint" }) &&
      aws_cloudwatch_metric_alarm.checkpoint_late.period == 3600 &&
      aws_cloudwatch_metric_alarm.checkpoint_late.threshold == 1 &&
      aws_cloudwatch_metric_alarm.checkpoint_late.comparison_operator == "LessThanThreshold" &&
      aws_cloudwatch_metric_alarm.checkpoint_late.treat_missing_data == "breaching"
    )
    error_message = "checkpoint late: no invocation of log-checkpoint in an hour (the schedule runs it every 5 minutes however quiet the system), missing data breaching"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.function_errors["log-checkpoint"].alarm_name == "ticketbound-log-checkpoint-errors"
    error_message = "a failing run is the function's Errors alarm"
  }

  # one_key_generation_has_no_previous_key
  assert {
    condition = (
      !contains(keys(aws_lambda_function.this["log-checkpoint"].environment[0].variables), "TICKETBOUND_LOG_PREVIOUS_KEY_ID") &&
      output.log_signing_previous_key_arn == null
    )
    error_message = "outside a rollover the checkpointer has no previous key"
  }
}

run "checkpoint_retention_follows_its_variable" {
  command = plan
  variables {
    checkpoint_retention_days = 3653
  }
  assert {
    condition     = aws_s3_bucket_object_lock_configuration.checkpoints.rule[0].default_retention[0].days == 3653
    error_message = "checkpoint_retention_days sets the default retention"
  }
}

run "checkpoint_settings_follow_their_variables" {
  command = plan
  variables {
    name_prefix         = "tb-test"
    log_origin          = "audit.example.com/prod"
    checkpoint_every    = 16
    checkpoint_schedule = "rate(2 hours)"
  }
  assert {
    condition = (
      aws_lambda_function.this["log-checkpoint"].environment[0].variables["TICKETBOUND_LOG_ORIGIN"] == "audit.example.com/prod" &&
      aws_lambda_function.this["log-checkpoint"].environment[0].variables["TICKETBOUND_CHECKPOINT_EVERY"] == "16" &&
      aws_lambda_function.this["log-checkpoint"].environment[0].variables["TICKETBOUND_LOG_TABLE"] == "tb-test-log" &&
      aws_s3_bucket.checkpoints.bucket == "tb-test-checkpoints-111122223333"
    )
    error_message = "log_origin, checkpoint_every and name_prefix reach the checkpointer's environment and names"
  }
  assert {
    condition     = aws_scheduler_schedule.checkpoint.schedule_expression == "rate(2 hours)" && aws_cloudwatch_metric_alarm.checkpoint_late.period == 14400
    error_message = "checkpoint_schedule sets the schedule, and the late alarm waits two of its intervals"
  }
}

run "rejects_a_log_origin_with_a_space_or_plus" {
  command = plan
  variables {
    log_origin = "ticketbound prod+1"
  }
  expect_failures = [var.log_origin]
}

run "the_checkpointer_never_gives_an_audit_record_up" {
  command = plan

  assert {
    condition = (
      aws_lambda_event_source_mapping.audit_stream["log-checkpoint"].maximum_retry_attempts == -1 &&
      aws_lambda_event_source_mapping.audit_stream["log-checkpoint"].maximum_record_age_in_seconds == -1
    )
    error_message = "a record the checkpointer's mapping gave up on would be an audit event missing from the signed log"
  }
}

# A key rollover: two generations, the first retiring. The checkpointer signs with the
# second and, beside it, the first (TICKETBOUND_LOG_PREVIOUS_KEY_ID); its role may use
# both; the alias names the new one (log_checkpoint checks one generation alone).
run "a_key_rollover_signs_with_both_generations" {
  variables {
    log_signing_key_generations = ["1", "2"]
  }

  assert {
    condition     = length(aws_kms_key.log_signing) == 2
    error_message = "two generations: two signing keys"
  }
  assert {
    condition = (
      contains(keys(aws_lambda_function.this["log-checkpoint"].environment[0].variables), "TICKETBOUND_LOG_PREVIOUS_KEY_ID") &&
      output.log_signing_previous_key_arn != null
    )
    error_message = "during a rollover the checkpointer is given the retiring key (TICKETBOUND_LOG_PREVIOUS_KEY_ID), and it is an output"
  }
  assert {
    condition = length(one([
      for s in jsondecode(aws_iam_role_policy.function["log-checkpoint"].policy).Statement : s.Resource if s.Sid == "LogSigningKey"
    ])) == 2
    error_message = "during a rollover the checkpointer may sign with both generations"
  }
}

run "key_generations_are_one_or_two_distinct_names" {
  command = plan

  variables {
    log_signing_key_generations = ["1", "1"]
  }

  expect_failures = [var.log_signing_key_generations]
}
