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
}
