variable "name_prefix" {
  description = "Prefix of every resource name (tables, function, bus, secrets, queues, alarms)."
  type        = string
  default     = "ticketbound"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2 to 32 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'."
  }
}

variable "package_dir" {
  description = "Directory holding the functions' deployment packages as `cargo lambda build --release --arm64 --output-format zip` lays them out: <package_dir>/<function>/bootstrap.zip."
  type        = string
}

variable "tags" {
  description = "Tags applied to every resource the module creates."
  type        = map(string)
  default     = {}
}

# --- DynamoDB -----------------------------------------------------------------

variable "deletion_protection_enabled" {
  description = "Whether the grants and audit tables are protected from deletion. Turn off only to tear down a test deployment."
  type        = bool
  default     = true
}

variable "grant_retention_days" {
  description = "How long a grant record outlives its not-after time before DynamoDB TTL removes it (TICKETBOUND_RETENTION_DAYS)."
  type        = number
  default     = 400

  validation {
    condition     = var.grant_retention_days >= 1 && floor(var.grant_retention_days) == var.grant_retention_days
    error_message = "grant_retention_days must be a whole number of days, at least 1."
  }
}

# --- KMS -----------------------------------------------------------------------

variable "kms_deletion_window_in_days" {
  description = "Waiting period before the module's KMS key is deleted after it is scheduled for deletion."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30."
  }
}

# --- Lambda --------------------------------------------------------------------

variable "log_level" {
  description = "Application log level of the functions (Lambda logging_config; the code reads AWS_LAMBDA_LOG_LEVEL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' CloudWatch log groups, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention period CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "intake_memory_size" {
  description = "Memory of the itsm-intake function, in MB."
  type        = number
  default     = 256
}

variable "intake_timeout" {
  description = "Timeout of the itsm-intake function, in seconds."
  type        = number
  default     = 10
}

variable "intake_reserved_concurrency" {
  description = "Reserved concurrency of the itsm-intake function: caps what a burst of webhooks can spend and keeps capacity for it. null leaves it unreserved."
  type        = number
  default     = 10
}

variable "code_signing_config_arn" {
  description = "Optional Lambda code signing configuration applied to the functions. null deploys unsigned packages."
  type        = string
  default     = null
}

variable "dlq_message_retention_seconds" {
  description = "How long the dead-letter queues keep a message, in seconds (at most 14 days)."
  type        = number
  default     = 1209600

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600."
  }
}

# --- The intake's configuration (functions/itsm-intake/src/config.rs) --------------

variable "jira_mapping_json" {
  description = "JSON Jira mapping (statuses and custom field ids; see the README) for TICKETBOUND_JIRA_MAPPING. null uses the built-in default."
  type        = string
  default     = null

  validation {
    condition     = var.jira_mapping_json == null || can(jsondecode(var.jira_mapping_json))
    error_message = "jira_mapping_json must be valid JSON."
  }
}

variable "servicenow_mapping_json" {
  description = "JSON ServiceNow mapping for TICKETBOUND_SERVICENOW_MAPPING. null uses the built-in default."
  type        = string
  default     = null

  validation {
    condition     = var.servicenow_mapping_json == null || can(jsondecode(var.servicenow_mapping_json))
    error_message = "servicenow_mapping_json must be valid JSON."
  }
}

variable "servicenow_auth" {
  description = "How ServiceNow authenticates (TICKETBOUND_SERVICENOW_AUTH): hmac (timestamped HMAC) or bearer (weaker: no integrity, replayable)."
  type        = string
  default     = "hmac"

  validation {
    condition     = contains(["hmac", "bearer"], var.servicenow_auth)
    error_message = "servicenow_auth must be hmac or bearer."
  }
}

variable "replay_window_secs" {
  description = "Accepted clock difference for timestamped signatures, in seconds (TICKETBOUND_REPLAY_WINDOW_SECS)."
  type        = number
  default     = 300
}

variable "delivery_ttl_hours" {
  description = "How long a delivery id is remembered for idempotency, in hours (TICKETBOUND_DELIVERY_TTL_HOURS)."
  type        = number
  default     = 72
}

variable "secret_cache_secs" {
  description = "How long a webhook secret is served from memory, in seconds (TICKETBOUND_SECRET_CACHE_SECS)."
  type        = number
  default     = 300
}

variable "secret_min_refresh_secs" {
  description = "Least time between forced secret refreshes after a failed signature, in seconds (TICKETBOUND_SECRET_MIN_REFRESH_SECS)."
  type        = number
  default     = 30
}

variable "webhook_secret_recovery_window_in_days" {
  description = "Recovery window of the webhook secrets when they are deleted (0 deletes at once)."
  type        = number
  default     = 30

  validation {
    condition     = var.webhook_secret_recovery_window_in_days == 0 || (var.webhook_secret_recovery_window_in_days >= 7 && var.webhook_secret_recovery_window_in_days <= 30)
    error_message = "webhook_secret_recovery_window_in_days must be 0 or between 7 and 30."
  }
}

# --- EventBridge ----------------------------------------------------------------

variable "itsm_event_sources" {
  description = "Event `source` values the intake rules accept on the ticketbound bus."
  type        = list(string)
  default     = ["com.example.itsm"]

  validation {
    condition     = length(var.itsm_event_sources) > 0
    error_message = "itsm_event_sources needs at least one source."
  }
}

# --- Alarms ---------------------------------------------------------------------

variable "alarm_sns_topic_arn" {
  description = "SNS topic notified when an alarm fires or recovers. null creates the alarms without actions."
  type        = string
  default     = null
}
