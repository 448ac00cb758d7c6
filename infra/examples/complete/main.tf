provider "aws" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}

module "ticketbound" {
  source = "../../modules/ticketbound"

  name_prefix                 = var.name_prefix
  package_dir                 = var.package_dir
  itsm_event_sources          = var.itsm_event_sources
  itsm_event_publishers       = var.itsm_event_publishers
  alarm_sns_topic_arn         = var.alarm_sns_topic_arn
  jira_mapping_json           = var.jira_mapping_json
  deletion_protection_enabled = var.deletion_protection_enabled

  # Optional: identities imported with `ticketbound identities import` on apply (the
  # CLI must be on PATH). Operators otherwise register them with the CLI.
  identities_file = var.identities_file

  targets                  = var.targets
  target_admin_secret_arns = var.target_admin_secret_arns
  vpc_subnet_ids           = var.vpc_subnet_ids
  vpc_security_group_ids   = var.vpc_security_group_ids

  # The ticket write-back: each ITSM is written to only when its URL is set.
  servicenow_instance_url    = var.servicenow_instance_url
  servicenow_revoked_state   = var.servicenow_revoked_state
  jira_site_url              = var.jira_site_url
  jira_revoked_transition_id = var.jira_revoked_transition_id
  writeback_attempts         = var.writeback_attempts
  writeback_max_wait_secs    = var.writeback_max_wait_secs

  # Every Jira approval read back from Jira with the intake's read-only account, and
  # the systems believed on their signature alone (ServiceNow has no read-back yet).
  jira_api_url           = var.jira_api_url
  jira_reader_secret_arn = var.jira_reader_secret_arn
  sender_only_systems    = var.sender_only_systems

  # Revocations that fail: retried by grant-expire's own one-time schedules, escalated
  # (RevocationEscalations) once a grant has failed for this long.
  revocation_retry_max_seconds      = var.revocation_retry_max_seconds
  revocation_escalate_after_seconds = var.revocation_escalate_after_seconds

  # Reconciliation.
  reconcile_schedule_expression = var.reconcile_schedule_expression
  reconcile_remediate           = var.reconcile_remediate
  reconcile_segments            = var.reconcile_segments
  rotation_grace_hours          = var.rotation_grace_hours

  # The signed log: its name (pinned by verifiers with its key) and how long Object Lock
  # keeps each checkpoint (COMPLIANCE mode; 7 years by default).
  log_origin                = var.log_origin
  checkpoint_retention_days = var.checkpoint_retention_days
}
