data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Names are fixed here, not read back from resources, so that the KMS key policy can
  # name the log groups and rules before they exist (no dependency cycle).
  grants_table_name = "${var.name_prefix}-grants"
  audit_table_name  = "${var.name_prefix}-audit"
  # The identity registry (shared/store/src/schema.rs: IDENTITIES).
  identities_table_name = "${var.name_prefix}-identities"
  # The signed log's leaves and head (shared/store/src/schema.rs: LOG), written by
  # log-checkpoint alone.
  log_table_name = "${var.name_prefix}-log"
  # The signed log: its name (each checkpoint's origin), and the Object Lock bucket
  # that keeps its checkpoints, unique per account by default.
  log_origin             = coalesce(var.log_origin, "ticketbound/${var.name_prefix}")
  checkpoint_bucket_name = coalesce(var.checkpoint_bucket_name, "${var.name_prefix}-checkpoints-${local.account_id}")
  # shared/store/src/schema.rs: GRANTS.indexes, in the same order.
  grants_index_names = ["by-ticket", "by-owner", "by-state-expiry"]
  event_bus_name     = "${var.name_prefix}-itsm"
  events_dlq_name    = "${var.name_prefix}-itsm-events-dlq"

  # EventBridge Scheduler: grant-provision creates one-time expiry schedules in this
  # group at run time, grant-expire one-time retries of failed revocations; the sweep
  # and reconcile schedules live there too.
  schedule_group_name  = var.name_prefix
  schedule_arn_pattern = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/${local.schedule_group_name}/*"
  schedule_dlq_name    = "${var.name_prefix}-expiry-schedules-dlq"
  scheduler_role_name  = "${var.name_prefix}-scheduler"
  sweep_schedule_name  = "${var.name_prefix}-sweep"
  # grant-reconcile's recurring schedule, in the same group, run by the same role.
  reconcile_schedule_name = "${var.name_prefix}-reconcile"
  # log-checkpoint's recurring schedule (a checkpoint of what was logged since the
  # last), in the same group, run by the same role.
  checkpoint_schedule_name = "${var.name_prefix}-checkpoint"
  # The recurring schedules' ARNs, built like schedule_arn_pattern rather than read
  # from the schedules: the function policies name them, and the schedules depend on
  # the functions, which depend on their policies (a cycle).
  recurring_schedule_arns = [
    for name in [local.sweep_schedule_name, local.reconcile_schedule_name, local.checkpoint_schedule_name] :
    "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/${local.schedule_group_name}/${name}"
  ]
  # The grants' one-time schedules in the group: each grant's expiry schedule,
  # tb-expire-<grant id> (shared/schedule, schedule_name), and grant-expire's retries of
  # a failed revocation, tb-expire-<grant id>-r<attempt>. The only ones grant-expire may
  # create.
  expiry_schedule_arn_pattern = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/${local.schedule_group_name}/tb-expire-*"
  # A grant's change window start schedule and its retries (tb-start-<grant id>[-r<n>]).
  start_schedule_arn_pattern = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/${local.schedule_group_name}/tb-start-*"

  # Credential secrets are named ticketbound/<environment>/<identity>/<grant id>
  # (shared/enforce, secret_name) and tagged managed-by=ticketbound (shared/secrets,
  # MANAGED_BY_TAG), whatever name_prefix is. IAM conditions rely on the tag.
  credential_secret_arn_pattern = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:ticketbound/*"
  managed_by_tag                = { key = "managed-by", value = "ticketbound" }

  # One Lambda function per entry. The key is the crate folder, the binary and the
  # Terraform function name (functions/<key>/), deployed as "<name_prefix>-<key>".
  # Each has its environment in local.function_environment, its permissions in
  # local.function_statements and local.module_key_actions. Only settings known before
  # any resource exists belong in this map. `vpc`: the function reaches the target
  # systems, so it joins the VPC when vpc_subnet_ids is set.
  functions = {
    "itsm-intake" = {
      description          = "ticketbound intake: ITSM approvals (signed webhooks on the function URL, EventBridge events) become grants"
      memory_size          = var.intake_memory_size
      timeout              = var.intake_timeout
      reserved_concurrency = var.intake_reserved_concurrency
      function_url         = true
      vpc                  = false
    }
    "grant-provision" = {
      description          = "ticketbound provisioning: an Approved grant (grants stream INSERT) becomes a credential at its target, in Secrets Manager, with its expiry schedule"
      memory_size          = var.provision_memory_size
      timeout              = var.provision_timeout
      reserved_concurrency = var.provision_reserved_concurrency
      function_url         = false
      vpc                  = true
    }
    "grant-expire" = {
      description          = "ticketbound expiry: revokes a grant's credential on its schedule, the TTL backstop, a move to Revoking or the sweep, whichever comes first"
      memory_size          = var.expire_memory_size
      timeout              = var.expire_timeout
      reserved_concurrency = var.expire_reserved_concurrency
      function_url         = false
      vpc                  = true
    }
    "secret-rotate" = {
      description          = "ticketbound rotation: Secrets Manager's rotation function for the credential secrets (createSecret, setSecret, testSecret, finishSecret)"
      memory_size          = var.rotate_memory_size
      timeout              = var.rotate_timeout
      reserved_concurrency = var.rotate_reserved_concurrency
      function_url         = false
      # setSecret and testSecret reach the target to change and try the credential.
      vpc = true
    }
    "ticket-writeback" = {
      description          = "ticketbound write-back: each lifecycle step of a grant (audit stream INSERT) told to its ticket as a ServiceNow work note or a Jira comment"
      memory_size          = var.writeback_memory_size
      timeout              = var.writeback_timeout
      reserved_concurrency = var.writeback_reserved_concurrency
      function_url         = false
      # It calls the ITSM's REST API over the internet, never a target.
      vpc = false
    }
    "grant-reconcile" = {
      description          = "ticketbound reconciliation: recorded grants against the live secrets and target logins (orphans, expired but live, missing, scope drift, overdue rotation), on a schedule"
      memory_size          = var.reconcile_memory_size
      timeout              = var.reconcile_timeout
      reserved_concurrency = var.reconcile_reserved_concurrency
      function_url         = false
      # It connects to the target databases to compare them with the records.
      vpc = true
    }
    "log-checkpoint" = {
      description          = "ticketbound signed log: every audit event (audit stream INSERT, MODIFY) a leaf of one log; checkpoints signed with KMS and kept in an Object Lock bucket"
      memory_size          = var.checkpoint_memory_size
      timeout              = var.checkpoint_timeout
      reserved_concurrency = var.checkpoint_reserved_concurrency
      function_url         = false
      # It calls AWS APIs only (DynamoDB, KMS, S3), never a target.
      vpc = false
    }
  }

  # The functions that join the VPC when one is configured.
  vpc_enabled   = length(var.vpc_subnet_ids) > 0
  vpc_functions = toset([for k, f in local.functions : k if f.vpc && local.vpc_enabled])

  function_names  = { for k, _ in local.functions : k => "${var.name_prefix}-${k}" }
  function_zips   = { for k, _ in local.functions : k => "${var.package_dir}/${k}/bootstrap.zip" }
  log_group_names = { for k, name in local.function_names : k => "/aws/lambda/${name}" }
  log_group_arns = {
    for k, name in local.log_group_names :
    k => "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${name}"
  }
  # Known before the functions exist: grant-provision's environment names the expiry
  # and rotation functions, which a resource cannot read from its own (for_each) block.
  function_arns = {
    for k, name in local.function_names :
    k => "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${name}"
  }
  function_dlq_names = { for k, name in local.function_names : k => "${name}-dlq" }

  # The grants stream's consumers: function => the records it is given. The patterns
  # filter on what each handler acts on (grant-provision: handle, grant-expire:
  # trigger_of); everything else never invokes them.
  stream_consumers = {
    "grant-provision" = [
      # A new grant, recorded Approved by the intake.
      {
        eventName = ["INSERT"]
        dynamodb = {
          Keys     = { sk = { S = ["GRANT"] } }
          NewImage = { state = { S = ["approved"] } }
        }
      },
    ]
    "grant-expire" = [
      # DynamoDB TTL removed a grant's expiry trigger: the backstop. A REMOVE by
      # anyone else is no signal.
      {
        eventName    = ["REMOVE"]
        userIdentity = { type = ["Service"], principalId = ["dynamodb.amazonaws.com"] }
        dynamodb = {
          Keys = { sk = { S = ["EXPIRY"] } }
        }
      },
      # A grant moved to Revoking (its ticket was withdrawn or closed).
      {
        eventName = ["MODIFY"]
        dynamodb = {
          Keys     = { sk = { S = ["GRANT"] } }
          NewImage = { state = { S = ["revoking"] } }
        }
      },
    ]
  }

  # The audit stream's consumers: function => the records it is given. The trail is
  # append-only, so an INSERT is a new audit event; ticket-writeback decides itself
  # which events are worth telling (and never tells of its own). log-checkpoint logs
  # every new event and every rewritten one (MODIFY: not something ticketbound does;
  # its second leaf is what the verifier reports).
  audit_stream_consumers = {
    "ticket-writeback" = [
      { eventName = ["INSERT"] },
    ]
    "log-checkpoint" = [
      { eventName = ["INSERT", "MODIFY"] },
    ]
  }

  # The audit stream's batch size: as many audit events as ticket-writeback can tell
  # within its timeout when the ITSM fails every attempt (each attempt up to two
  # requests of at most 15 s, shared/itsm/src/outbound.rs, then a wait of at most
  # writeback_max_wait_secs), so that a failing ITSM costs dead-letter records, not
  # timed-out batches. 5 with the defaults.
  writeback_note_worst_secs = var.writeback_attempts * 30 + (var.writeback_attempts - 1) * var.writeback_max_wait_secs
  writeback_batch_size      = max(1, min(10, floor(var.writeback_timeout / local.writeback_note_worst_secs)))
  # Each audit stream consumer's batch size. log-checkpoint appends a batch in
  # transactions of at most 100 items (shared/store/src/log.rs chunks them itself):
  # Lambda's default of 100 records.
  audit_stream_batch_sizes = {
    "ticket-writeback" = local.writeback_batch_size
    "log-checkpoint"   = 100
  }

  # One DLQ per stream consumer (of either stream) for the batches Lambda gave up on.
  stream_dlq_names = {
    for k in concat(keys(local.stream_consumers), keys(local.audit_stream_consumers)) :
    k => "${local.function_names[k]}-stream-dlq"
  }

  # Every dead-letter queue, for the alarms: key => queue name.
  dlq_names = merge(
    { for k, name in local.function_dlq_names : k => name },
    { for k, name in local.stream_dlq_names : "${k}-stream" => name },
    {
      "itsm-events"      = local.events_dlq_name
      "expiry-schedules" = local.schedule_dlq_name
    },
  )

  # TICKETBOUND_TARGETS: attributes a connector does not take are left out (the
  # code rejects unknown fields, and null is one), in an approvers rule too (the
  # intake reads an absent groups or users as none, and refuses null). The intake
  # reads each target's approvers; the enforcing functions accept and ignore them.
  targets_json = jsonencode({
    for id, target in var.targets : id => merge(
      { for k, v in target : k => v if v != null && k != "approvers" },
      target.approvers == null ? {} : {
        approvers = { for k, v in target.approvers : k => v if v != null }
      },
    )
  })

  webhook_integrations = toset(["jira", "servicenow", "generic"])
  # The ITSMs ticket-writeback writes to, each with an API credentials secret.
  itsm_api_integrations = toset(["jira", "servicenow"])

  # The intake's configuration: exactly the variables functions/itsm-intake/src/config.rs
  # reads. TICKETBOUND_POLICY_DIR is for packaged policy directories and stays unset;
  # log format and level come from logging_config (AWS_LAMBDA_LOG_FORMAT/LEVEL).
  function_environment = {
    "itsm-intake" = merge(
      {
        TICKETBOUND_GRANTS_TABLE   = aws_dynamodb_table.grants.name
        TICKETBOUND_AUDIT_TABLE    = aws_dynamodb_table.audit.name
        TICKETBOUND_RETENTION_DAYS = tostring(var.grant_retention_days)
        # The identity registry: a request's identity, owner, principals, targets and
        # environments are checked against its entry (GetItem, read only).
        TICKETBOUND_IDENTITIES_TABLE = aws_dynamodb_table.identities.name
        # Only each target's connector and environment are read: a request names a
        # target, and what kind of target it is (and what policy sees of its
        # capabilities) and which environment's rules apply come from here.
        TICKETBOUND_TARGETS                 = local.targets_json
        TICKETBOUND_JIRA_SECRET_ID          = aws_secretsmanager_secret.webhook["jira"].arn
        TICKETBOUND_SERVICENOW_SECRET_ID    = aws_secretsmanager_secret.webhook["servicenow"].arn
        TICKETBOUND_SERVICENOW_AUTH         = var.servicenow_auth
        TICKETBOUND_GENERIC_SECRET_ID       = aws_secretsmanager_secret.webhook["generic"].arn
        TICKETBOUND_REPLAY_WINDOW_SECS      = tostring(var.replay_window_secs)
        TICKETBOUND_DELIVERY_TTL_HOURS      = tostring(var.delivery_ttl_hours)
        TICKETBOUND_SECRET_CACHE_SECS       = tostring(var.secret_cache_secs)
        TICKETBOUND_SECRET_MIN_REFRESH_SECS = tostring(var.secret_min_refresh_secs)
        # EventBridge events are checked again by the intake: PutEvents lets its caller
        # set `source`, never `account` (EventBridge sets it), so both are compared.
        TICKETBOUND_EVENTBRIDGE_SOURCES = join(",", var.itsm_event_sources)
        TICKETBOUND_EVENTBRIDGE_ACCOUNT = local.account_id
      },
      # Minified: Lambda allows 4 KB of environment in all.
      var.jira_mapping_json == null ? {} : {
        TICKETBOUND_JIRA_MAPPING = jsonencode(jsondecode(var.jira_mapping_json))
      },
      var.servicenow_mapping_json == null ? {} : {
        TICKETBOUND_SERVICENOW_MAPPING = jsonencode(jsondecode(var.servicenow_mapping_json))
      },
      # The Jira read-back, with the intake's own read-only account: both or neither
      # (the code refuses one without the other, and so does jira_reader_secret_arn's
      # validation). Unset, Jira approvals are refused unless Jira is sender-only.
      var.jira_api_url == null || var.jira_reader_secret_arn == null ? {} : {
        TICKETBOUND_JIRA_API_URL        = var.jira_api_url
        TICKETBOUND_JIRA_READ_SECRET_ID = var.jira_reader_secret_arn
      },
      # The systems believed on their signature alone. Unset: none.
      length(var.sender_only_systems) == 0 ? {} : {
        TICKETBOUND_SENDER_ONLY = join(",", sort(distinct(var.sender_only_systems)))
      },
    )

    # functions/grant-provision/src/config.rs, exactly.
    "grant-provision" = {
      TICKETBOUND_GRANTS_TABLE      = aws_dynamodb_table.grants.name
      TICKETBOUND_AUDIT_TABLE       = aws_dynamodb_table.audit.name
      TICKETBOUND_IDENTITIES_TABLE  = aws_dynamodb_table.identities.name
      TICKETBOUND_RETENTION_DAYS    = tostring(var.grant_retention_days)
      TICKETBOUND_TARGETS           = local.targets_json
      TICKETBOUND_SECRET_KMS_KEY_ID = aws_kms_key.this.arn
      # The roles the credential secrets' resource policy does not deny (shared/secrets
      # resource_policy): rotation reads the current and pending values; these are
      # also the only roles that may change a credential secret (its value, stages,
      # rotation, policy, deletion): the reconciler revokes expired-but-live grants.
      TICKETBOUND_SECRET_ADMIN_PRINCIPALS = join(",", [
        aws_iam_role.function["grant-provision"].arn,
        aws_iam_role.function["grant-expire"].arn,
        aws_iam_role.function["secret-rotate"].arn,
        aws_iam_role.function["grant-reconcile"].arn,
      ])
      # What the expiry schedules invoke; and what a change window's start schedule
      # (tb-start-<grant id>, for a grant whose window has not begun) does:
      # grant-provision itself.
      TICKETBOUND_EXPIRY_FUNCTION_ARN       = local.function_arns["grant-expire"]
      TICKETBOUND_PROVISION_FUNCTION_ARN    = local.function_arns["grant-provision"]
      TICKETBOUND_SCHEDULER_ROLE_ARN        = aws_iam_role.scheduler.arn
      TICKETBOUND_SCHEDULE_GROUP            = aws_scheduler_schedule_group.this.name
      TICKETBOUND_SCHEDULE_DLQ_ARN          = aws_sqs_queue.schedule_dlq.arn
      TICKETBOUND_MAX_PROVISIONING_ATTEMPTS = tostring(var.max_provisioning_attempts)
      # The module's own secret-rotate: every credential secret rotates.
      TICKETBOUND_ROTATION_FUNCTION_ARN = local.function_arns["secret-rotate"]
    }

    # functions/grant-expire/src/config.rs, exactly.
    "grant-expire" = merge(
      {
        TICKETBOUND_GRANTS_TABLE       = aws_dynamodb_table.grants.name
        TICKETBOUND_AUDIT_TABLE        = aws_dynamodb_table.audit.name
        TICKETBOUND_RETENTION_DAYS     = tostring(var.grant_retention_days)
        TICKETBOUND_TARGETS            = local.targets_json
        TICKETBOUND_SCHEDULE_GROUP     = aws_scheduler_schedule_group.this.name
        TICKETBOUND_SECRET_CACHE_SECS  = tostring(var.target_admin_secret_cache_secs)
        TICKETBOUND_REVOKE_CONCURRENCY = tostring(var.revoke_concurrency)
        # A failed revocation is retried by a one-time schedule of its own
        # (tb-expire-<grant id>-r<attempt>, in the group above) invoking grant-expire
        # itself as the scheduler role: its own ARN from the names (a function cannot
        # read its own ARN from its own block), as grant-provision's expiry schedules.
        TICKETBOUND_EXPIRY_FUNCTION_ARN = local.function_arns["grant-expire"]
        TICKETBOUND_SCHEDULER_ROLE_ARN  = aws_iam_role.scheduler.arn
        # What a retry schedule cannot deliver goes where the expiry schedules' does.
        TICKETBOUND_SCHEDULE_DLQ_ARN = aws_sqs_queue.schedule_dlq.arn
        # The longest wait between two retries, and how long a grant fails to revoke
        # before RevocationEscalations (and its alarm) says so, once.
        TICKETBOUND_REVOCATION_RETRY_MAX_SECS      = tostring(var.revocation_retry_max_seconds)
        TICKETBOUND_REVOCATION_ESCALATE_AFTER_SECS = tostring(var.revocation_escalate_after_seconds)
      },
      # Unset: revoked credentials' secrets are deleted at once.
      var.secret_recovery_window_days == null ? {} : {
        TICKETBOUND_SECRET_RECOVERY_DAYS = tostring(var.secret_recovery_window_days)
      },
    )

    # functions/secret-rotate/src/config.rs, exactly.
    "secret-rotate" = {
      TICKETBOUND_GRANTS_TABLE      = aws_dynamodb_table.grants.name
      TICKETBOUND_AUDIT_TABLE       = aws_dynamodb_table.audit.name
      TICKETBOUND_RETENTION_DAYS    = tostring(var.grant_retention_days)
      TICKETBOUND_TARGETS           = local.targets_json
      TICKETBOUND_SECRET_CACHE_SECS = tostring(var.target_admin_secret_cache_secs)
    }

    # functions/ticket-writeback/src/config.rs, exactly. An ITSM is written to only
    # when its URL is set; its URL and credentials secret go together (the code
    # refuses one without the other), and it takes no empty value: an unset setting
    # is left out.
    "ticket-writeback" = merge(
      {
        TICKETBOUND_GRANTS_TABLE            = aws_dynamodb_table.grants.name
        TICKETBOUND_AUDIT_TABLE             = aws_dynamodb_table.audit.name
        TICKETBOUND_LOG_TABLE               = aws_dynamodb_table.log.name
        TICKETBOUND_RETENTION_DAYS          = tostring(var.grant_retention_days)
        TICKETBOUND_WRITEBACK_ATTEMPTS      = tostring(var.writeback_attempts)
        TICKETBOUND_WRITEBACK_MAX_WAIT_SECS = tostring(var.writeback_max_wait_secs)
        TICKETBOUND_SECRET_CACHE_SECS       = tostring(var.secret_cache_secs)
      },
      var.servicenow_instance_url == null ? {} : {
        TICKETBOUND_SERVICENOW_URL                   = var.servicenow_instance_url
        TICKETBOUND_SERVICENOW_CREDENTIALS_SECRET_ID = aws_secretsmanager_secret.itsm_api["servicenow"].arn
      },
      var.servicenow_revoked_state == null ? {} : {
        TICKETBOUND_SERVICENOW_REVOKED_STATE = var.servicenow_revoked_state
      },
      var.jira_site_url == null ? {} : {
        TICKETBOUND_JIRA_URL                   = var.jira_site_url
        TICKETBOUND_JIRA_CREDENTIALS_SECRET_ID = aws_secretsmanager_secret.itsm_api["jira"].arn
      },
      var.jira_revoked_transition_id == null ? {} : {
        TICKETBOUND_JIRA_REVOKED_TRANSITION_ID = var.jira_revoked_transition_id
      },
    )

    # functions/grant-reconcile/src/config.rs, exactly.
    "grant-reconcile" = merge(
      {
        TICKETBOUND_GRANTS_TABLE   = aws_dynamodb_table.grants.name
        TICKETBOUND_AUDIT_TABLE    = aws_dynamodb_table.audit.name
        TICKETBOUND_RETENTION_DAYS = tostring(var.grant_retention_days)
        # The identity registry: live grants are checked against it (Scan, read only).
        TICKETBOUND_IDENTITIES_TABLE     = aws_dynamodb_table.identities.name
        TICKETBOUND_TARGETS              = local.targets_json
        TICKETBOUND_SCHEDULE_GROUP       = aws_scheduler_schedule_group.this.name
        TICKETBOUND_SECRET_CACHE_SECS    = tostring(var.target_admin_secret_cache_secs)
        TICKETBOUND_RECONCILE_REMEDIATE  = var.reconcile_remediate ? "true" : "false"
        TICKETBOUND_RECONCILE_SEGMENTS   = tostring(var.reconcile_segments)
        TICKETBOUND_ROTATION_GRACE_HOURS = tostring(var.rotation_grace_hours)
      },
      # As grant-expire's: unset, the secrets it deletes are deleted at once.
      var.secret_recovery_window_days == null ? {} : {
        TICKETBOUND_SECRET_RECOVERY_DAYS = tostring(var.secret_recovery_window_days)
      },
    )

    # functions/log-checkpoint/src/config.rs, exactly.
    "log-checkpoint" = merge(
      {
        TICKETBOUND_GRANTS_TABLE   = aws_dynamodb_table.grants.name
        TICKETBOUND_AUDIT_TABLE    = aws_dynamodb_table.audit.name
        TICKETBOUND_RETENTION_DAYS = tostring(var.grant_retention_days)
        TICKETBOUND_LOG_TABLE      = aws_dynamodb_table.log.name
        # The signing key (ECC_NIST_P256, SIGN_VERIFY), by ARN.
        TICKETBOUND_LOG_KEY_ID       = local.log_signing_key.arn
        TICKETBOUND_LOG_BUCKET       = aws_s3_bucket.checkpoints.bucket
        TICKETBOUND_LOG_ORIGIN       = local.log_origin
        TICKETBOUND_CHECKPOINT_EVERY = tostring(var.checkpoint_every)
      },
      # During a rollover: the retiring key signs beside the new one.
      local.log_signing_previous_key == null ? {} : {
        TICKETBOUND_LOG_PREVIOUS_KEY_ID = local.log_signing_previous_key.arn
      },
    )
  }
}
