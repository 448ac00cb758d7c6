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
  alarm_sns_topic_arn         = var.alarm_sns_topic_arn
  jira_mapping_json           = var.jira_mapping_json
  deletion_protection_enabled = var.deletion_protection_enabled

  targets                  = var.targets
  target_admin_secret_arns = var.target_admin_secret_arns
  vpc_subnet_ids           = var.vpc_subnet_ids
  vpc_security_group_ids   = var.vpc_security_group_ids
}
