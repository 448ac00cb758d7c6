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

  # The provisioner, the expiry, the rotation and the reconciliation function may
  # read, change and delete any ticketbound/* secret tagged managed-by=ticketbound: the
  # module's own secrets must never be.
  validation {
    condition     = !anytrue([for k, v in var.tags : lower(k) == "managed-by" && lower(v) == "ticketbound"])
    error_message = "tags must not hold managed-by = ticketbound: that tag marks the credential secrets grant-provision, grant-expire, secret-rotate and grant-reconcile may read, change and delete."
  }
}

# --- DynamoDB -----------------------------------------------------------------

variable "deletion_protection_enabled" {
  description = "Whether the grants, audit, identities and log tables are protected from deletion. Turn off only to tear down a test deployment."
  type        = bool
  default     = true
}

variable "identities_file" {
  description = "A JSON file of identity definitions (an array, as `ticketbound identities import` takes) imported with `ticketbound identities import` on apply, and again whenever its content changes: the same audited path operators use (each change is checked, then written with its event; the actor is \"terraform\"). The ticketbound CLI must be on the PATH of whoever runs terraform apply, with AWS credentials that may write the identities table. A relative path is relative to the directory terraform runs in (use path.root or path.module to be explicit). null (the default): no seed; operators register identities with the CLI."
  type        = string
  default     = null

  validation {
    condition     = var.identities_file == null || try(fileexists(var.identities_file), false)
    error_message = "identities_file must be null or the path of an existing file."
  }
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

variable "provision_memory_size" {
  description = "Memory of the grant-provision function, in MB."
  type        = number
  default     = 256
}

variable "provision_timeout" {
  description = "Timeout of the grant-provision function, in seconds: one batch of up to 10 grants, each reaching Secrets Manager, its target and Scheduler."
  type        = number
  default     = 120
}

variable "provision_reserved_concurrency" {
  description = "Reserved concurrency of the grant-provision function. null leaves it unreserved (stream consumers run one batch per shard at a time anyway)."
  type        = number
  default     = null
}

variable "expire_memory_size" {
  description = "Memory of the grant-expire function, in MB."
  type        = number
  default     = 256
}

variable "expire_timeout" {
  description = "Timeout of the grant-expire function, in seconds: a sweep revokes every overdue grant it finds in one invocation."
  type        = number
  default     = 300
}

variable "expire_reserved_concurrency" {
  description = "Reserved concurrency of the grant-expire function: keeps capacity for revocations whatever else runs in the account. null leaves it unreserved."
  type        = number
  default     = null
}

variable "rotate_memory_size" {
  description = "Memory of the secret-rotate function, in MB."
  type        = number
  default     = 256
}

variable "rotate_timeout" {
  description = "Timeout of the secret-rotate function, in seconds: one rotation step of one credential secret, reaching Secrets Manager, DynamoDB and (setSecret, testSecret) its target."
  type        = number
  default     = 60
}

variable "rotate_reserved_concurrency" {
  description = "Reserved concurrency of the secret-rotate function. null leaves it unreserved (Secrets Manager rotates one secret at a time, one step after the other)."
  type        = number
  default     = null
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

# The read-back (functions/itsm-intake/src/readback.rs): before a Jira approval is
# believed, the intake reads the issue, its changelog and its approvals back from
# Jira's REST API with a read-only account of its own.

variable "jira_api_url" {
  description = "The Jira site the intake reads every Jira approval back from, e.g. https://example.atlassian.net (TICKETBOUND_JIRA_API_URL; usually the same site as jira_site_url). Set together with jira_reader_secret_arn, or neither. null (the default): no read-back, and Jira approvals are refused unless \"jira\" is in sender_only_systems."
  type        = string
  default     = null

  validation {
    condition     = var.jira_api_url == null || can(regex("^https://[^\\s/]+(/\\S*)?$", var.jira_api_url))
    error_message = "jira_api_url must be null or an https:// URL."
  }
}

variable "jira_reader_secret_arn" {
  description = "Full ARN (with Secrets Manager's random suffix) of a secret you create holding the intake's own read-only Jira account, {\"email\": \"...\", \"api_token\": \"...\"} (TICKETBOUND_JIRA_READ_SECRET_ID). Not the write-back's Jira API credentials secret (that account may comment): an account that may only read. The intake may read this secret, and no other function may. Encrypt it with the module key or the account's aws/secretsmanager key (the intake can decrypt nothing else). Set together with jira_api_url, or neither."
  type        = string
  default     = null

  validation {
    condition     = var.jira_reader_secret_arn == null || can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.jira_reader_secret_arn))
    error_message = "jira_reader_secret_arn must be null or a Secrets Manager secret ARN."
  }

  # ticketbound/* are the credential secrets the grant functions manage, and with the
  # default name_prefix the module's own (webhook, and the write-back's ITSM API
  # credentials, whose Jira account may comment): the reader's is a secret of its own.
  validation {
    condition = var.jira_reader_secret_arn == null || !anytrue([
      for prefix in distinct(["ticketbound/", "${var.name_prefix}/"]) : strcontains(coalesce(var.jira_reader_secret_arn, "-"), ":secret:${prefix}")
    ])
    error_message = "jira_reader_secret_arn must be a secret of its own, not named ticketbound/... or <name_prefix>/...: those are the grants' credential secrets and the module's webhook and ITSM API secrets (the write-back's Jira account may comment; the reader must only read)."
  }

  validation {
    condition     = (var.jira_api_url == null) == (var.jira_reader_secret_arn == null)
    error_message = "Set jira_api_url and jira_reader_secret_arn together (the Jira read-back), or neither: the intake refuses to start with one of them."
  }
}

variable "sender_only_systems" {
  description = "Systems whose approvals the intake believes on the webhook signature alone, without reading them back (TICKETBOUND_SENDER_ONLY): any of \"jira\", \"servicenow\", \"generic\" (generic senders and EventBridge events). Each grant so approved is marked sender_only, in the grant, its audit trail and the evidence. Empty (the default): none; an approval from a system neither read back nor listed is refused. ServiceNow has no read-back yet: list \"servicenow\" when you use ServiceNow (the plan requires it with servicenow_instance_url set), \"generic\" when you use the generic webhook or EventBridge (required with itsm_event_publishers named), and \"jira\" when you use Jira without the read-back (required with jira_site_url set and no jira_api_url)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.sender_only_systems : contains(["jira", "servicenow", "generic"], s)])
    error_message = "sender_only_systems may hold only \"jira\", \"servicenow\" and \"generic\"."
  }

  # The module wires every integration up; the variables below say which ones a
  # deployment uses. An integration in use whose approvals would all be refused is a
  # configuration error, better found at plan than by every approval failing.
  validation {
    condition     = var.jira_site_url == null || var.jira_api_url != null || contains(var.sender_only_systems, "jira")
    error_message = "jira_site_url is set (Jira is in use) but Jira approvals are neither read back nor sender-only: set jira_api_url and jira_reader_secret_arn (the read-back, preferred), or list \"jira\" in sender_only_systems. Otherwise the intake refuses every Jira approval."
  }

  validation {
    condition     = var.servicenow_instance_url == null || contains(var.sender_only_systems, "servicenow")
    error_message = "servicenow_instance_url is set (ServiceNow is in use), and ServiceNow approvals cannot be read back by this version: list \"servicenow\" in sender_only_systems (its grants are then marked sender_only). Otherwise the intake refuses every ServiceNow approval."
  }

  validation {
    condition     = length(var.itsm_event_publishers) == 0 || contains(var.sender_only_systems, "generic")
    error_message = "itsm_event_publishers names publishers (the EventBridge path is open), and an EventBridge event has no API to be read back from: list \"generic\" in sender_only_systems (its grants are then marked sender_only). Otherwise the intake refuses every EventBridge approval."
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
  description = "How long itsm-intake serves a webhook secret, and ticket-writeback an ITSM API credentials secret, from memory, in seconds (TICKETBOUND_SECRET_CACHE_SECS)."
  type        = number
  default     = 300
}

variable "secret_min_refresh_secs" {
  description = "Least time between forced secret refreshes after a failed signature, in seconds (TICKETBOUND_SECRET_MIN_REFRESH_SECS)."
  type        = number
  default     = 30
}

variable "webhook_secret_recovery_window_in_days" {
  description = "Recovery window of the webhook secrets and the ITSM API credentials secrets when they are deleted (0 deletes at once)."
  type        = number
  default     = 30

  validation {
    condition     = var.webhook_secret_recovery_window_in_days == 0 || (var.webhook_secret_recovery_window_in_days >= 7 && var.webhook_secret_recovery_window_in_days <= 30)
    error_message = "webhook_secret_recovery_window_in_days must be 0 or between 7 and 30."
  }
}

# --- The ticket write-back (functions/ticket-writeback) ----------------------------

variable "writeback_memory_size" {
  description = "Memory of the ticket-writeback function, in MB."
  type        = number
  default     = 256
}

variable "writeback_timeout" {
  description = "Timeout of the ticket-writeback function, in seconds. The audit stream's batch size follows from it: as many audit events as fit when the ITSM fails every attempt (see writeback_attempts, writeback_max_wait_secs)."
  type        = number
  default     = 900

  validation {
    condition     = var.writeback_timeout >= 1 && var.writeback_timeout <= 900 && floor(var.writeback_timeout) == var.writeback_timeout
    error_message = "writeback_timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "writeback_reserved_concurrency" {
  description = "Reserved concurrency of the ticket-writeback function. null leaves it unreserved (a stream consumer runs one batch per shard at a time anyway)."
  type        = number
  default     = null
}

variable "servicenow_instance_url" {
  description = "ServiceNow instance the write-back posts work notes to, e.g. https://example.service-now.com (TICKETBOUND_SERVICENOW_URL). null (the default): no ServiceNow write-back. When set, put the API credentials in the servicenow_api_credentials_secret_arn secret."
  type        = string
  default     = null

  validation {
    condition     = var.servicenow_instance_url == null || can(regex("^https://[^\\s/]+(/\\S*)?$", var.servicenow_instance_url))
    error_message = "servicenow_instance_url must be null or an https:// URL."
  }
}

variable "servicenow_revoked_state" {
  description = "The `state` value a ServiceNow record is set to when its grant is revoked (TICKETBOUND_SERVICENOW_REVOKED_STATE), e.g. \"3\" (Closed Complete on sc_req_item). null (the default): the write-back only adds a work note, never changes the state."
  type        = string
  default     = null

  validation {
    condition     = var.servicenow_revoked_state == null || try(length(trimspace(var.servicenow_revoked_state)) > 0, false)
    error_message = "servicenow_revoked_state must be null or a non-empty state value."
  }
}

variable "jira_site_url" {
  description = "Jira site the write-back comments on, e.g. https://example.atlassian.net (TICKETBOUND_JIRA_URL). null (the default): no Jira write-back. When set, put the API credentials in the jira_api_credentials_secret_arn secret."
  type        = string
  default     = null

  validation {
    condition     = var.jira_site_url == null || can(regex("^https://[^\\s/]+(/\\S*)?$", var.jira_site_url))
    error_message = "jira_site_url must be null or an https:// URL."
  }
}

variable "jira_revoked_transition_id" {
  description = "The transition a Jira issue takes when its grant is revoked (TICKETBOUND_JIRA_REVOKED_TRANSITION_ID; the numeric id from GET /rest/api/3/issue/<key>/transitions). null (the default): the write-back only comments, never transitions."
  type        = string
  default     = null

  validation {
    condition     = var.jira_revoked_transition_id == null || can(regex("^[0-9]+$", var.jira_revoked_transition_id))
    error_message = "jira_revoked_transition_id must be null or a numeric transition id."
  }
}

variable "writeback_attempts" {
  description = "Attempts at telling one audit event to its ticket before it goes to the dead-letter record (TICKETBOUND_WRITEBACK_ATTEMPTS)."
  type        = number
  default     = 4

  validation {
    condition     = var.writeback_attempts >= 1 && var.writeback_attempts <= 10 && floor(var.writeback_attempts) == var.writeback_attempts
    error_message = "writeback_attempts must be a whole number from 1 to 10."
  }
}

variable "writeback_max_wait_secs" {
  description = "The longest wait between two write-back attempts, in seconds; a longer Retry-After is cut to it (TICKETBOUND_WRITEBACK_MAX_WAIT_SECS)."
  type        = number
  default     = 20

  validation {
    condition     = var.writeback_max_wait_secs >= 0 && var.writeback_max_wait_secs <= 120 && floor(var.writeback_max_wait_secs) == var.writeback_max_wait_secs
    error_message = "writeback_max_wait_secs must be a whole number of seconds from 0 to 120."
  }
}

# --- Provisioning, expiry and rotation (functions/grant-provision, grant-expire, secret-rotate) ---

variable "targets" {
  description = <<-EOT
    The target systems grants are issued at (TICKETBOUND_TARGETS, read by grant-provision,
    grant-expire, secret-rotate and grant-reconcile): system id => target. A PostgreSQL target:
      { connector = "postgres", environment = "prod", admin_secret_id = "<Secrets
        Manager ARN of the administrator's libpq connection string>", host = "db.internal",
        port = 5432, dbname = "app", allowed_roles = ["app_read", "app_write"],
        ca_file = "/opt/rds-global-bundle.pem" }
    (environment: "prod" or "non-prod", required; the intake takes it from here, never
    from the request, and refuses a request that says otherwise; allowed_roles: the
    only roles a grant's scope may name). tls: "verify_full" (the
    default: TLS, the server's certificate verified against ca_file and its name
    against host; ca_file is then required, a PEM CA bundle in the function package or
    a layer) or "disabled" (plaintext). postgres is the only
    connector. List every admin_secret_id in target_admin_secret_arns too.
    approvers (optional, read by the intake only): whose approvals count for the
    target, { groups = ["dba-approvers"], users = ["<Jira accountId or e-mail>"] };
    groups are resolved through the Jira read-back (jira_api_url), so a sender-only
    system's approvers count only when named in users. Without approvers any approver
    counts (separation of duties still holds). Lambda allows 4 KB of environment in
    all: keep this map small.
  EOT
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

  # The intake reads a rule that names nobody as admitting nobody: every approval of
  # the target would be discounted. Leave approvers out to take any approver.
  validation {
    condition = alltrue([
      for t in values(var.targets) : t.approvers == null || (
        length(concat(coalesce(try(t.approvers.groups, null), []), coalesce(try(t.approvers.users, null), []))) > 0 &&
        alltrue([for x in concat(coalesce(try(t.approvers.groups, null), []), coalesce(try(t.approvers.users, null), [])) : trimspace(x) != ""])
      )
    ])
    error_message = "A target's approvers must name at least one group or user, none of them empty: a rule naming nobody admits nobody. Leave approvers out to let any approver count."
  }

  validation {
    condition = alltrue([
      for t in values(var.targets) : t.connector == "postgres"
    ])
    error_message = "Every target's connector must be postgres. generated_api_key was removed because its revocation cannot be verified at any target (it only deleted the secret); remove such targets: grants already issued with it are still revoked on time, their secret deleted."
  }

  validation {
    condition = alltrue([
      for t in values(var.targets) : t.environment != null && contains(["prod", "non-prod"], coalesce(t.environment, "-"))
    ])
    error_message = "Every target says its environment, \"prod\" or \"non-prod\": the policy's rules for a grant follow the target's environment, never the request's."
  }

  validation {
    condition = alltrue([
      for t in values(var.targets) : t.connector != "postgres" || (
        t.admin_secret_id != null && t.host != null && t.port != null && t.dbname != null && t.allowed_roles != null
      )
    ])
    error_message = "A postgres target needs admin_secret_id, host, port, dbname and allowed_roles."
  }

  validation {
    condition = alltrue([
      for t in values(var.targets) : t.connector != "postgres" || t.port == null || try(t.port >= 1 && t.port <= 65535 && floor(t.port) == t.port, false)
    ])
    error_message = "A postgres target's port must be a whole number from 1 to 65535."
  }

  validation {
    condition = alltrue([
      for t in values(var.targets) : contains(["verify_full", "disabled"], coalesce(t.tls, "verify_full"))
    ])
    error_message = "A target's tls must be \"verify_full\" (the default) or \"disabled\"."
  }

  validation {
    condition = alltrue([
      for t in values(var.targets) : t.connector != "postgres" || t.tls == "disabled" || t.ca_file != null
    ])
    error_message = "TLS verify_full, the default, needs ca_file: the PEM bundle the database server's certificate chains to (for RDS, the global bundle packaged with the functions or in a layer); or set tls = \"disabled\", which `ticketbound targets` reports as a problem."
  }
}

variable "target_admin_secret_arns" {
  description = "ARNs of the secrets holding the targets' administrator connection strings (every postgres target's admin_secret_id): grant-provision, grant-expire, secret-rotate and grant-reconcile may read these, and no other secret outside their own credential secrets. Full ARNs, with Secrets Manager's random suffix. Encrypt them with the module key or the account's aws/secretsmanager key (the functions can decrypt nothing else)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.target_admin_secret_arns : can(regex("^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", arn))])
    error_message = "target_admin_secret_arns must be Secrets Manager secret ARNs."
  }
}

variable "target_admin_secret_cache_secs" {
  description = "How long grant-expire, secret-rotate and grant-reconcile serve a target's administrator secret from memory, in seconds (TICKETBOUND_SECRET_CACHE_SECS)."
  type        = number
  default     = 300
}

variable "vpc_subnet_ids" {
  description = "Subnets grant-provision, grant-expire, secret-rotate and grant-reconcile run in, to reach targets on a private network. Empty (the default): no VPC. The subnets need a route to DynamoDB, Secrets Manager, EventBridge Scheduler and KMS (NAT, or VPC endpoints)."
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  description = "Security groups of grant-provision, grant-expire, secret-rotate and grant-reconcile when vpc_subnet_ids is set: they must allow the connections out to the targets (and to the AWS endpoints)."
  type        = list(string)
  default     = []

  validation {
    condition     = (length(var.vpc_subnet_ids) == 0) == (length(var.vpc_security_group_ids) == 0)
    error_message = "Set vpc_subnet_ids and vpc_security_group_ids together, or neither."
  }
}

variable "max_provisioning_attempts" {
  description = "Attempts at provisioning a grant before it becomes Failed (TICKETBOUND_MAX_PROVISIONING_ATTEMPTS)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_provisioning_attempts >= 1 && floor(var.max_provisioning_attempts) == var.max_provisioning_attempts
    error_message = "max_provisioning_attempts must be a whole number, at least 1."
  }
}

variable "stream_maximum_retry_attempts" {
  description = "How often Lambda retries a failing batch of the grants or the audit stream (per function) before it gives up on it and sends its description to the function's stream DLQ."
  type        = number
  default     = 10

  validation {
    condition     = var.stream_maximum_retry_attempts >= 0 && var.stream_maximum_retry_attempts <= 10000 && floor(var.stream_maximum_retry_attempts) == var.stream_maximum_retry_attempts
    error_message = "stream_maximum_retry_attempts must be a whole number from 0 to 10000."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a revoked credential's secret stays recoverable (TICKETBOUND_SECRET_RECOVERY_DAYS, 7 to 30). null (the default): deleted at once; a revoked credential has nothing worth recovering."
  type        = number
  default     = null

  validation {
    condition     = var.secret_recovery_window_days == null || try(var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30 && floor(var.secret_recovery_window_days) == var.secret_recovery_window_days, false)
    error_message = "secret_recovery_window_days must be null or a whole number from 7 to 30."
  }
}

variable "revoke_concurrency" {
  description = "How many grants of one batch grant-expire revokes at once (TICKETBOUND_REVOKE_CONCURRENCY)."
  type        = number
  default     = 8

  validation {
    condition     = var.revoke_concurrency >= 1 && floor(var.revoke_concurrency) == var.revoke_concurrency
    error_message = "revoke_concurrency must be a whole number, at least 1."
  }
}

variable "revocation_retry_max_seconds" {
  description = "Longest wait, in seconds, between two retries of a failed revocation (TICKETBOUND_REVOCATION_RETRY_MAX_SECS). grant-expire records the failure, answers its trigger and retries with a one-time schedule of its own (tb-expire-<grant id>-r<attempt>) instead of holding the grants stream's shard."
  type        = number
  default     = 300

  validation {
    condition     = var.revocation_retry_max_seconds >= 10 && var.revocation_retry_max_seconds <= 3600 && floor(var.revocation_retry_max_seconds) == var.revocation_retry_max_seconds
    error_message = "revocation_retry_max_seconds must be a whole number from 10 to 3600."
  }
}

variable "revocation_escalate_after_seconds" {
  description = "How long, in seconds, a grant may fail to revoke before grant-expire escalates, once (TICKETBOUND_REVOCATION_ESCALATE_AFTER_SECS): the RevocationEscalations metric and its alarm. The retries go on."
  type        = number
  default     = 900

  validation {
    condition     = var.revocation_escalate_after_seconds >= 60 && var.revocation_escalate_after_seconds <= 86400 && floor(var.revocation_escalate_after_seconds) == var.revocation_escalate_after_seconds
    error_message = "revocation_escalate_after_seconds must be a whole number from 60 to 86400."
  }
}

variable "sweep_interval_minutes" {
  description = "How often the sweep schedule invokes grant-expire to find overdue grants every other path missed, in minutes."
  type        = number
  default     = 5

  validation {
    condition     = var.sweep_interval_minutes >= 1 && var.sweep_interval_minutes <= 1440 && floor(var.sweep_interval_minutes) == var.sweep_interval_minutes
    error_message = "sweep_interval_minutes must be a whole number from 1 to 1440."
  }
}

# --- Reconciliation (functions/grant-reconcile) -----------------------------------

variable "reconcile_memory_size" {
  description = "Memory of the grant-reconcile function, in MB."
  type        = number
  default     = 256
}

variable "reconcile_timeout" {
  description = "Timeout of the grant-reconcile function, in seconds: one run scans every grant and compares it with its target, its secret and its schedule. Keep it below the schedule's interval."
  type        = number
  default     = 600
}

variable "reconcile_reserved_concurrency" {
  description = "Reserved concurrency of the grant-reconcile function. null leaves it unreserved."
  type        = number
  default     = null
}

variable "reconcile_schedule_expression" {
  description = "When EventBridge Scheduler runs grant-reconcile: a rate() or cron() expression (UTC)."
  type        = string
  default     = "rate(15 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.reconcile_schedule_expression))
    error_message = "reconcile_schedule_expression must be a rate(...) or cron(...) expression."
  }
}

variable "reconcile_remediate" {
  description = "Whether grant-reconcile revokes what outlived its grant (true; a grant still Active is handed to grant-expire) or only reports it (false): TICKETBOUND_RECONCILE_REMEDIATE. Either way each finding is audited and counted in the DriftFindings metric and its alarm."
  type        = bool
  default     = true
}

variable "reconcile_segments" {
  description = "Parallel scan segments grant-reconcile reads the grants table in (TICKETBOUND_RECONCILE_SEGMENTS)."
  type        = number
  default     = 4

  validation {
    condition     = var.reconcile_segments >= 1 && var.reconcile_segments <= 1000000 && floor(var.reconcile_segments) == var.reconcile_segments
    error_message = "reconcile_segments must be a whole number from 1 to 1000000 (DynamoDB's limit on scan segments)."
  }
}

variable "rotation_grace_hours" {
  description = "How late, in hours past its rotation period, an Active grant's rotation may be before grant-reconcile reports it overdue (TICKETBOUND_ROTATION_GRACE_HOURS)."
  type        = number
  default     = 2

  validation {
    condition     = var.rotation_grace_hours >= 0 && floor(var.rotation_grace_hours) == var.rotation_grace_hours
    error_message = "rotation_grace_hours must be a whole number of hours, 0 or more."
  }
}

# --- EventBridge ----------------------------------------------------------------

variable "itsm_event_sources" {
  description = "Event `source` values the intake rules accept on the ticketbound bus; the intake checks them again itself (TICKETBOUND_EVENTBRIDGE_SOURCES, comma-separated)."
  type        = list(string)
  default     = ["com.example.itsm"]

  validation {
    condition     = length(var.itsm_event_sources) > 0
    error_message = "itsm_event_sources needs at least one source."
  }

  # The intake refuses an aws. source at start-up (it trims each value first): those
  # are AWS services' own, never an ITSM's.
  validation {
    condition     = alltrue([for s in var.itsm_event_sources : !startswith(trimspace(s), "aws.")])
    error_message = "itsm_event_sources must not name an aws. source: those are AWS services' events, never an ITSM's."
  }

  # The intake reads the list comma-separated and trimmed; the rules match each value
  # exactly. A comma, an empty value or surrounding blanks would make the two differ.
  validation {
    condition     = alltrue([for s in var.itsm_event_sources : !strcontains(s, ",") && s != "" && trimspace(s) == s])
    error_message = "itsm_event_sources values must be non-empty, without a comma and without leading or trailing blanks."
  }
}

variable "itsm_event_publishers" {
  description = <<-EOT
    IAM role and user ARNs that may put events on the ticketbound bus (the integrations'
    roles; an assumed-role session counts as its role). The bus policy denies
    events:PutEvents to every other principal, this account's included, whatever their
    identity policies allow. They must be of this account: the intake refuses events
    from any other (checked at plan). Empty (the default): nobody may put events, and the EventBridge path is
    closed until publishers are named. The roles and users must exist when the policy
    is applied: AWS refuses a policy naming an unknown principal.
  EOT
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.itsm_event_publishers : can(regex("^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:(role|user)/.+", arn))])
    error_message = "itsm_event_publishers must be IAM role or user ARNs (arn:aws:iam::<account>:role/<name> or :user/<name>)."
  }

  # The same ARNs are the Allow statement's principals, and a principal takes no
  # wildcard: name each role.
  validation {
    condition     = alltrue([for arn in var.itsm_event_publishers : !strcontains(arn, "*") && !strcontains(arn, "?")])
    error_message = "itsm_event_publishers must name each role or user: no * or ? wildcards."
  }
}

# --- The signed log (functions/log-checkpoint) ------------------------------------

variable "checkpoint_memory_size" {
  description = "Memory of the log-checkpoint function, in MB."
  type        = number
  default     = 256
}

variable "checkpoint_timeout" {
  description = "Timeout of the log-checkpoint function, in seconds: one audit stream batch logged, or one checkpoint signed and kept."
  type        = number
  default     = 300

  validation {
    condition     = var.checkpoint_timeout >= 1 && var.checkpoint_timeout <= 900 && floor(var.checkpoint_timeout) == var.checkpoint_timeout
    error_message = "checkpoint_timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "checkpoint_reserved_concurrency" {
  description = "Reserved concurrency of the log-checkpoint function. null leaves it unreserved (appends are conditional: a concurrent checkpointer makes the other retry, never fork the log)."
  type        = number
  default     = null
}

variable "log_origin" {
  description = "The signed log's name (TICKETBOUND_LOG_ORIGIN): each checkpoint's origin line and its key's name in the signature, so verifiers pin it with the key. No spaces and no '+'. null (the default): ticketbound/<name_prefix>. Changing it later makes new checkpoints name a different log."
  type        = string
  default     = null

  validation {
    condition     = var.log_origin == null || can(regex("^[^\\s+]+$", var.log_origin))
    error_message = "log_origin must be non-empty, without spaces or '+'."
  }
}

variable "log_signing_key_generations" {
  description = "The signed log's signing keys, by generation name, oldest first: one (the key that signs), or two during a rollover (the first, retiring, signs each checkpoint beside the second, so that auditors who pinned it follow to the new one). To roll over, add a generation; once `ticketbound checkpoint` shows a checkpoint with two signatures, drop the old one (its key is scheduled for deletion; its public key stays in the bucket)."
  type        = list(string)
  default     = ["1"]

  validation {
    condition = (
      length(var.log_signing_key_generations) >= 1 &&
      length(var.log_signing_key_generations) <= 2 &&
      length(distinct(var.log_signing_key_generations)) == length(var.log_signing_key_generations) &&
      alltrue([for g in var.log_signing_key_generations : can(regex("^[a-z0-9-]{1,16}$", g))])
    )
    error_message = "log_signing_key_generations holds one or two distinct names of at most 16 lower-case letters, digits or '-'."
  }
}

variable "checkpoint_every" {
  description = "How many events are logged past the last checkpoint before the next is signed (TICKETBOUND_CHECKPOINT_EVERY); the schedule signs one anyway, whatever the count."
  type        = number
  default     = 64

  validation {
    condition     = var.checkpoint_every >= 1 && floor(var.checkpoint_every) == var.checkpoint_every
    error_message = "checkpoint_every must be a whole number from 1."
  }
}

variable "checkpoint_schedule" {
  description = "When EventBridge Scheduler invokes log-checkpoint to sign a checkpoint of what was logged since the last one: a rate() or cron() expression (UTC). The checkpoint-late alarm fires when Lambda records no invocation for two intervals of a rate() (at least an hour, at most a day) or two hours for a cron()."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.checkpoint_schedule))
    error_message = "checkpoint_schedule must be a rate(...) or cron(...) expression."
  }
}

variable "checkpoint_retention_days" {
  description = "How long S3 Object Lock (COMPLIANCE mode: nobody, the account root included, can shorten it or delete the object) keeps each checkpoint, edge and the public key, in days. 2557 (the default) is 7 years. The bucket policy denies s3:PutBucketObjectLockConfiguration to everyone, Terraform included: changing this after the first apply needs that statement lifted first (see infra/DEPLOY.md)."
  type        = number
  default     = 2557

  validation {
    condition     = var.checkpoint_retention_days >= 1 && var.checkpoint_retention_days <= 36500 && floor(var.checkpoint_retention_days) == var.checkpoint_retention_days
    error_message = "checkpoint_retention_days must be a whole number of days from 1 to 36500."
  }
}

variable "checkpoint_bucket_name" {
  description = "Name of the Object Lock bucket that keeps the checkpoints (TICKETBOUND_LOG_BUCKET). null (the default): <name_prefix>-checkpoints-<account id>, unique per account; set it when two deployments with the same name_prefix share an account (in two regions)."
  type        = string
  default     = null

  validation {
    condition     = var.checkpoint_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.checkpoint_bucket_name))
    error_message = "checkpoint_bucket_name must be a valid S3 bucket name: 3 to 63 characters of a-z, 0-9, '.' and '-'."
  }
}

# --- Alarms ---------------------------------------------------------------------

variable "alarm_sns_topic_arn" {
  description = "SNS topic notified when an alarm fires or recovers. null creates the alarms without actions."
  type        = string
  default     = null
}
