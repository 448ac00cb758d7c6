resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = local.log_group_names[each.key]
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:VPC attachment is optional and set through variables when targets are private (vpc_subnet_ids, vpc_security_group_ids: grant-provision, grant-expire, secret-rotate and grant-reconcile); itsm-intake and log-checkpoint call AWS APIs only and ticket-writeback AWS APIs and the ITSM's public REST API, none reaches a private network, so a VPC would add NAT or endpoints and protect nothing.
  #checkov:skip=CKV_AWS_272:cargo-lambda packages are not signed yet; set var.code_signing_config_arn to enforce a signing profile once they are.
  for_each = local.functions

  function_name = local.function_names[each.key]
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn

  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = local.function_zips[each.key]
  source_code_hash = filebase64sha256(local.function_zips[each.key])

  memory_size                    = each.value.memory_size
  timeout                        = each.value.timeout
  reserved_concurrent_executions = each.value.reserved_concurrency
  code_signing_config_arn        = var.code_signing_config_arn
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    variables = local.function_environment[each.key]
  }

  logging_config {
    log_format            = "JSON"
    application_log_level = var.log_level
    system_log_level      = "WARN"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
  }

  tracing_config {
    mode = "Active"
  }

  # Only the functions that reach the targets, and only when a VPC is configured.
  dynamic "vpc_config" {
    for_each = contains(local.vpc_functions, each.key) ? [1] : []
    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.function_dlq[each.key].arn
  }

  tags = var.tags

  # Lambda checks at creation that the role may send to the DLQ (and, in a VPC, that
  # it may create network interfaces).
  depends_on = [aws_iam_role_policy.function, aws_iam_role_policy_attachment.vpc_access]
}

resource "aws_lambda_function_url" "this" {
  #checkov:skip=CKV_AWS_258:ITSM webhooks (Jira, ServiceNow, generic senders) cannot sign AWS SigV4 requests; the intake authenticates every request itself (HMAC-SHA256 over the raw body, timestamped with a replay window) and answers 401 otherwise.
  for_each = { for k, f in local.functions : k => f if f.function_url }

  function_name = aws_lambda_function.this[each.key].function_name
  # The provider adds the resource-policy statement that lets anyone call the URL
  # (lambda:InvokeFunctionUrl, FunctionUrlAuthType NONE). See DEPLOY.md for the
  # lambda:InvokeFunction statement newer function URLs also need.
  authorization_type = "NONE"
  invoke_mode        = "BUFFERED"
}

# Secrets Manager invokes secret-rotate for the credential secrets whose rotation
# grant-provision turns on (RotateSecret with this function's ARN). Limited to this
# account with aws:SourceAccount, as the Secrets Manager documentation recommends;
# aws:SourceArn would tie the function to a single secret.
resource "aws_lambda_permission" "secrets_manager_rotation" {
  statement_id   = "AllowSecretsManagerRotation"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.this["secret-rotate"].function_name
  principal      = "secretsmanager.amazonaws.com"
  source_account = local.account_id
}
