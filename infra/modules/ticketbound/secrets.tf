# The webhook signing secrets. The module creates the containers only: the operator
# puts the value (the same one configured in the ITSM), so it never enters Terraform
# state.
resource "aws_secretsmanager_secret" "webhook" {
  #checkov:skip=CKV2_AWS_57:The value is shared with the ITSM and rotated there; the intake re-reads it when a signature fails, so no rotation Lambda applies.
  for_each = local.webhook_integrations

  name                    = "${var.name_prefix}/webhook/${each.key}"
  description             = "ticketbound: ${each.key} webhook signing secret, shared with the ITSM (value set by the operator)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.webhook_secret_recovery_window_in_days
  tags                    = var.tags
}

# The credentials ticket-writeback calls the ITSM's REST API with. Containers only, as
# above: the operator puts the value, JSON (shared/itsm/src/outbound.rs):
#   ServiceNow: {"auth": "basic", "username": "...", "password": "..."}
#            or {"auth": "oauth", "client_id": "...", "client_secret": "..."}
#   Jira:       {"email": "...", "api_token": "..."}
# Both exist whether or not their write-back is configured, so that turning one on is
# a variable and a value, not a new secret. Only ticket-writeback may read them.
resource "aws_secretsmanager_secret" "itsm_api" {
  #checkov:skip=CKV2_AWS_57:The value is an ITSM user's password, OAuth client secret or API token, issued and rotated in the ITSM; the write-back re-reads the secret when the ITSM answers 401/403, so no rotation Lambda applies.
  for_each = local.itsm_api_integrations

  name                    = "${var.name_prefix}/itsm-api/${each.key}"
  description             = "ticketbound: ${each.key} API credentials for the ticket write-back (JSON, value set by the operator)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.webhook_secret_recovery_window_in_days
  tags                    = var.tags
}
