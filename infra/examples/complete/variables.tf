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

variable "targets" {
  description = "Target systems: system id => { connector = \"postgres\", admin_secret_id, host, port, dbname, allowed_roles } or { connector = \"generated_api_key\" } (see the module's variable)."
  type = map(object({
    connector       = string
    admin_secret_id = optional(string)
    host            = optional(string)
    port            = optional(number)
    dbname          = optional(string)
    allowed_roles   = optional(list(string))
  }))
  default = {}
}

variable "target_admin_secret_arns" {
  description = "Full ARNs of the targets' administrator secrets (every postgres target's admin_secret_id)."
  type        = list(string)
  default     = []
}

variable "vpc_subnet_ids" {
  description = "Subnets for grant-provision, grant-expire and secret-rotate when the targets are on a private network; empty: no VPC."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups for grant-provision, grant-expire and secret-rotate (with vpc_subnet_ids)."
  type        = list(string)
  default     = []
}
