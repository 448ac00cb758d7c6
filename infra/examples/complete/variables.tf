variable "region" {
  description = "AWS region to deploy ticketbound into."
  type        = string
  default     = "eu-west-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "ticketbound"
}

variable "package_dir" {
  description = "Where `cargo lambda build --release --arm64 --output-format zip` put the packages (<package_dir>/<function>/bootstrap.zip), relative to this directory."
  type        = string
  default     = "../../../target/lambda"
}

variable "tags" {
  description = "Tags applied to every resource (through the provider's default_tags)."
  type        = map(string)
  default = {
    Project   = "ticketbound"
    ManagedBy = "terraform"
  }
}

variable "itsm_event_sources" {
  description = "Event `source` values accepted on the ticketbound EventBridge bus."
  type        = list(string)
  default     = ["com.example.itsm"]
}

variable "alarm_sns_topic_arn" {
  description = "SNS topic for alarm notifications; null creates the alarms without actions."
  type        = string
  default     = null
}

variable "jira_mapping_json" {
  description = "JSON Jira mapping for the intake; null uses the built-in default."
  type        = string
  default     = null
}

variable "deletion_protection_enabled" {
  description = "Protect the grants and audit tables from deletion."
  type        = bool
  default     = true
}
