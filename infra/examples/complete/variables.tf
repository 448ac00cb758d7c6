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

variable "itsm_event_publishers" {
  description = "IAM role or user ARNs that may put events on the ticketbound EventBridge bus (the integrations' roles); the bus denies PutEvents to everyone else. Empty (the default): nobody may, and the EventBridge path is closed."
  type        = list(string)
  default     = []
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
  description = "Protect the grants, audit and identities tables from deletion."
  type        = bool
  default     = true
}

variable "identities_file" {
  description = "A JSON file of identity definitions imported with `ticketbound identities import` on apply (relative to this directory); the ticketbound CLI must be on PATH. null: no seed."
  type        = string
  default     = null
}

variable "targets" {
  description = "Target systems: system id => { connector = \"postgres\", environment (\"prod\" or \"non-prod\", required), admin_secret_id, host, port, dbname, allowed_roles, ca_file = \"/opt/rds-global-bundle.pem\", tls (optional: \"verify_full\", the default, needs ca_file; or \"disabled\"), approvers (optional: { groups = [...], users = [...] }, whose approvals count) } (postgres is the only connector; see the module's variable)."
  type = map(object({
    connector       = string
    environment     = optional(string)
    admin_secret_id = optional(string)
    host            = optional(string)
    port            = optional(number)
    dbname          = optional(string)
    allowed_roles   = optional(list(string))
    tls             = optional(string)
    ca_file         = optional(string)
    approvers = optional(object({
      groups = optional(list(string))
      users  = optional(list(string))
    }))
  }))
  default = {}
}

variable "target_admin_secret_arns" {
  description = "Full ARNs of the targets' administrator secrets (every postgres target's admin_secret_id)."
  type        = list(string)
  default     = []
}

variable "vpc_subnet_ids" {
  description = "Subnets for grant-provision, grant-expire, secret-rotate and grant-reconcile when the targets are on a private network; empty: no VPC."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups for grant-provision, grant-expire, secret-rotate and grant-reconcile (with vpc_subnet_ids)."
  type        = list(string)
  default     = []
}

variable "servicenow_instance_url" {
  description = "ServiceNow instance the write-back posts work notes to (https://example.service-now.com); null: no ServiceNow write-back."
  type        = string
  default     = null
}

variable "servicenow_revoked_state" {
  description = "State a ServiceNow record is set to when its grant is revoked; null: work notes only."
  type        = string
  default     = null
}

variable "jira_site_url" {
  description = "Jira site the write-back comments on (https://example.atlassian.net); null: no Jira write-back."
  type        = string
  default     = null
}

variable "jira_api_url" {
  description = "Jira site every Jira approval is read back from (https://example.atlassian.net), with jira_reader_secret_arn; null: no read-back."
  type        = string
  default     = null
}

variable "jira_reader_secret_arn" {
  description = "ARN of the secret holding the intake's read-only Jira account ({\"email\", \"api_token\"}), with jira_api_url; null: no read-back."
  type        = string
  default     = null
}

variable "sender_only_systems" {
  description = "Systems (jira, servicenow, generic) whose approvals are believed on their signature alone, without a read-back; each such grant says sender_only."
  type        = list(string)
  default     = []
}

variable "jira_revoked_transition_id" {
  description = "Numeric id of the transition a Jira issue takes when its grant is revoked; null: comments only."
  type        = string
  default     = null
}

variable "writeback_attempts" {
  description = "Attempts at telling one audit event to its ticket."
  type        = number
  default     = 4
}

variable "writeback_max_wait_secs" {
  description = "Longest wait between two write-back attempts, in seconds."
  type        = number
  default     = 20
}

variable "reconcile_schedule_expression" {
  description = "When grant-reconcile runs: rate() or cron() (UTC)."
  type        = string
  default     = "rate(15 minutes)"
}

variable "reconcile_remediate" {
  description = "Whether grant-reconcile revokes what outlived its grant (true) or only reports it."
  type        = bool
  default     = true
}

variable "reconcile_segments" {
  description = "Parallel scan segments of grant-reconcile."
  type        = number
  default     = 4
}

variable "rotation_grace_hours" {
  description = "Grace, in hours, before a lagging rotation counts as drift."
  type        = number
  default     = 2
}

variable "revocation_retry_max_seconds" {
  description = "Longest wait, in seconds, between two retries of a failed revocation (10 to 3600)."
  type        = number
  default     = 300
}

variable "revocation_escalate_after_seconds" {
  description = "How long, in seconds, a grant may fail to revoke before grant-expire escalates (RevocationEscalations alarm), 60 to 86400."
  type        = number
  default     = 900
}

variable "log_origin" {
  description = "The signed log's name (no spaces or '+'). null: ticketbound/<name_prefix>."
  type        = string
  default     = null
}

variable "checkpoint_retention_days" {
  description = "How long S3 Object Lock (COMPLIANCE) keeps each checkpoint, in days."
  type        = number
  default     = 2557
}
