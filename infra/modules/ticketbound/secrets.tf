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
