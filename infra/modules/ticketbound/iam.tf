# One role per function, with an inline policy of exactly what that function calls.
# Policies are built with jsonencode() so that the tests can read them.

resource "aws_iam_role" "function" {
  for_each = local.functions

  name        = local.function_names[each.key]
  description = "ticketbound ${each.key} Lambda execution role"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "lambda.amazonaws.com" }
        Action    = "sts:AssumeRole"
      },
    ]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = local.function_names[each.key]
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

# The functions that reach the targets join the VPC when one is configured; Lambda
# then needs to manage their network interfaces (ec2:*NetworkInterface*, which take
# no resource-level permissions). Not attached otherwise.
resource "aws_iam_role_policy_attachment" "vpc_access" {
  for_each = local.vpc_functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

# The role EventBridge Scheduler assumes to run the module's schedules (the one-time
# expiry schedules grant-provision creates, the one-time revocation retries grant-expire
# creates, the sweep, the reconcile schedule, the checkpoint schedule): invoke
# grant-expire, grant-reconcile and log-checkpoint, and nothing else; send what it cannot deliver to the schedules' DLQ.
resource "aws_iam_role" "scheduler" {
  name        = local.scheduler_role_name
  description = "ticketbound: EventBridge Scheduler invokes grant-expire, grant-reconcile and log-checkpoint"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "scheduler.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
    ]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "scheduler" {
  name   = local.scheduler_role_name
  role   = aws_iam_role.scheduler.id
  policy = local.scheduler_policy
}

locals {
  # Who may write what on the grants table. Its items fall into three partition
  # families (shared/store/src/items.rs, withdrawal.rs):
  #   GRANT#<id>                  a grant (sk GRANT) and what lives beside it: its
  #                               expiry trigger (EXPIRY), write-back records
  #                               (WRITEBACK#<seq>), rotation records
  #                               (ROTATION_PENDING#<token>), its revocation retry
  #                               record (REVOCATION_RETRY);
  #   DELIVERY#<source>#<id>      an ITSM delivery, remembered (the intake's alone);
  #   TICKET#<source>#<key>       a ticket's withdrawal, remembered (the intake's alone).
  # IAM sees only the partition key (dynamodb:LeadingKeys), never the sort key, so a
  # role that writes any item of GRANT#<id> may write every item there, the grant
  # record included; and every role that audits must write the grant record anyway
  # (it holds the chain's head: Store::save_grant). What IAM can say is which
  # families a role writes: every write below is conditioned on them. Reads are not
  # (GetItem, Query, Scan stay on the whole table): they change nothing, and a read
  # narrowed wrongly would fail in AWS only (moto enforces no condition).
  #
  # Three rules keep the conditions right:
  # - A statement with a LeadingKeys condition holds only actions whose every request
  #   names a partition key (GetItem, PutItem, UpdateItem, DeleteItem,
  #   ConditionCheckItem, Query, BatchGetItem). Never Scan: it names none, and
  #   ForAllValues over no value at all is true, so the condition would not hold it.
  # - Never on an index: a Query on an index is authorised on the index ARN with the
  #   index's partition key as LeadingKeys (a state, a ticket key), which no item
  #   family pattern matches. Index statements stay separate and unconditioned.
  # - TransactWriteItems is authorised per item, each with its own LeadingKeys: a
  #   transaction that writes a grant, its trigger and a delivery record needs each
  #   family allowed.
  #
  # The audit table's partition key is the bare grant id (a ULID): no family to tell
  # apart, so its statements carry no condition. No role has UpdateItem or DeleteItem
  # there; PutItem cannot be made to carry attribute_not_exists (IAM has no condition
  # key for a condition expression), which is why the signed log logs every MODIFY.
  # infra/DEPLOY.md ("What each role can still write, and what catches it") says what
  # is left to each role, and the tests check it (tests/ticketbound.tftest.hcl).

  # What each function needs beyond logs, tracing, its DLQ and the key (common_statements).
  function_statements = {
    "itsm-intake" = concat(
      [
        {
          # Reads: a grant (Store::get_grant, after a known delivery, a duplicate or a
          # conflict), a delivery record (find_delivery) and a withdrawal
          # (Store::withdrawal), by key.
          Sid      = "GrantsRead"
          Effect   = "Allow"
          Action   = ["dynamodb:GetItem"]
          Resource = [aws_dynamodb_table.grants.arn]
        },
        {
          # A new grant and its expiry trigger (create_grant: two Puts in its
          # transaction), a grant moved on by its ticket's end (advance -> save_grant:
          # a Put, and a Delete of the expiry trigger when the grant ends there).
          Sid      = "GrantRecordsWrite"
          Effect   = "Allow"
          Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
          Resource = [aws_dynamodb_table.grants.arn]
          Condition = {
            "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["GRANT#*"] }
          }
        },
        {
          # The delivery record, in the new grant's transaction (create_grant: a Put).
          # No other role writes this family.
          Sid      = "DeliveryRecordsWrite"
          Effect   = "Allow"
          Action   = ["dynamodb:PutItem"]
          Resource = [aws_dynamodb_table.grants.arn]
          Condition = {
            "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["DELIVERY#*"] }
          }
        },
        {
          # A withdrawal remembered (record_withdrawal: PutItem), and checked absent in
          # the new grant's transaction (create_grant: a ConditionCheck). No other role
          # writes this family.
          Sid      = "TicketWithdrawalsWrite"
          Effect   = "Allow"
          Action   = ["dynamodb:PutItem", "dynamodb:ConditionCheckItem"]
          Resource = [aws_dynamodb_table.grants.arn]
          Condition = {
            "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["TICKET#*"] }
          }
        },
        {
          # The ticket's grants (grants_for_ticket), and no other index.
          Sid      = "GrantsByTicket"
          Effect   = "Allow"
          Action   = ["dynamodb:Query"]
          Resource = ["${aws_dynamodb_table.grants.arn}/index/by-ticket"]
        },
        {
          # Audit events are only ever appended, in the grant's transaction (a Put);
          # GetItem reads back the transaction's first event when DynamoDB cancelled
          # it, to tell its own earlier success from a conflict (Store::transact).
          Sid    = "AuditTableAppend"
          Effect = "Allow"
          Action = [
            "dynamodb:PutItem",
            "dynamodb:GetItem",
          ]
          Resource = [aws_dynamodb_table.audit.arn]
        },
        {
          # The identity registry: the entry of the identity a request names, strongly
          # consistent (a retirement counts at once). Read only: operators register
          # identities (the CLI), the internet-facing intake never can.
          Sid      = "IdentitiesRead"
          Effect   = "Allow"
          Action   = ["dynamodb:GetItem"]
          Resource = [aws_dynamodb_table.identities.arn]
        },
        {
          Sid      = "WebhookSecrets"
          Effect   = "Allow"
          Action   = ["secretsmanager:GetSecretValue"]
          Resource = [for name in sort(tolist(local.webhook_integrations)) : aws_secretsmanager_secret.webhook[name].arn]
        },
      ],
      # The read-back's read-only Jira account (jira_reader_secret_arn), when set: the
      # intake's alone, no other function may read it. Its key: the module's (ModuleKey)
      # or aws/secretsmanager, which needs no grant.
      var.jira_reader_secret_arn == null ? [] : [
        {
          Sid      = "JiraReaderSecret"
          Effect   = "Allow"
          Action   = ["secretsmanager:GetSecretValue"]
          Resource = [var.jira_reader_secret_arn]
        },
      ],
    )

    "grant-provision" = concat(
      [
        {
          # The grant (get_grant) and its revocation retry record
          # (record_revocation_failure reads it first), by key.
          Sid      = "GrantsRead"
          Effect   = "Allow"
          Action   = ["dynamodb:GetItem"]
          Resource = [aws_dynamodb_table.grants.arn]
        },
        {
          # The grant's moves (Approved -> Provisioning -> Active, or Failed, or
          # Revoked) in versioned transactions (advance, note -> save_grant: a Put, and
          # a Delete of the expiry trigger when the grant ends); the revocation retry
          # record of a credential issued for a grant that ended
          # (record_revocation_failure: PutItem; mark_told: UpdateItem). All GRANT#<id>:
          # no delivery record, no withdrawal, no ConditionCheck.
          Sid      = "GrantRecordsWrite"
          Effect   = "Allow"
          Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]
          Resource = [aws_dynamodb_table.grants.arn]
          Condition = {
            "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["GRANT#*"] }
          }
        },
        {
          # Appends in the grant's transactions; GetItem: the read-back of a cancelled
          # transaction's first event (Store::transact).
          Sid    = "AuditTableAppend"
          Effect = "Allow"
          Action = [
            "dynamodb:PutItem",
            "dynamodb:GetItem",
          ]
          Resource = [aws_dynamodb_table.audit.arn]
        },
        {
          # The identity registry again, right before a credential is issued (an
          # identity retired since the approval gets nothing). Read only.
          Sid      = "IdentitiesRead"
          Effect   = "Allow"
          Action   = ["dynamodb:GetItem"]
          Resource = [aws_dynamodb_table.identities.arn]
        },
      ],
      local.grants_stream_statements,
      [
        {
          # New credential secrets only with the managed-by=ticketbound tag (CreateSecret
          # with tags is also authorised as TagResource).
          Sid      = "CredentialSecretsCreate"
          Effect   = "Allow"
          Action   = ["secretsmanager:CreateSecret", "secretsmanager:TagResource"]
          Resource = [local.credential_secret_arn_pattern]
          Condition = {
            StringEquals = { "aws:RequestTag/${local.managed_by_tag.key}" = local.managed_by_tag.value }
          }
        },
        {
          # Whether a credential secret exists (metadata only, never a value). Not
          # tag-conditioned: on a secret that does not exist the tag condition would
          # deny, and "absent" could not be told from "forbidden".
          Sid      = "CredentialSecretsDescribe"
          Effect   = "Allow"
          Action   = ["secretsmanager:DescribeSecret"]
          Resource = [local.credential_secret_arn_pattern]
        },
        {
          # Existing credential secrets: only those tagged managed-by=ticketbound.
          Sid    = "CredentialSecretsManage"
          Effect = "Allow"
          Action = [
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
            "secretsmanager:PutResourcePolicy",
            "secretsmanager:GetResourcePolicy",
            "secretsmanager:DeleteSecret",
            "secretsmanager:RotateSecret",
          ]
          Resource = [local.credential_secret_arn_pattern]
          Condition = {
            StringEquals = { "aws:ResourceTag/${local.managed_by_tag.key}" = local.managed_by_tag.value }
          }
        },
        local.module_secret_guard,
        {
          # GetRandomPassword takes no resource-level permissions: AWS requires "*".
          Sid      = "RandomPassword"
          Effect   = "Allow"
          Action   = ["secretsmanager:GetRandomPassword"]
          Resource = "*"
        },
      ],
      local.target_admin_secret_statements,
      [
        {
          # RotateSecret also needs lambda:InvokeFunction on the rotation function: the
          # module's secret-rotate, and no other.
          Sid      = "RotationFunction"
          Effect   = "Allow"
          Action   = ["lambda:InvokeFunction"]
          Resource = [local.function_arns["secret-rotate"]]
        },
        {
          # The grant's one-time expiry schedule and its change window's start
          # schedules, in the module's group only, by their names.
          Sid      = "ExpirySchedules"
          Effect   = "Allow"
          Action   = ["scheduler:CreateSchedule", "scheduler:GetSchedule", "scheduler:DeleteSchedule"]
          Resource = [local.expiry_schedule_arn_pattern, local.start_schedule_arn_pattern]
        },
        local.recurring_schedule_guard,
        {
          # The schedules run as the scheduler role, and as nothing else.
          Sid      = "PassSchedulerRole"
          Effect   = "Allow"
          Action   = ["iam:PassRole"]
          Resource = [aws_iam_role.scheduler.arn]
          Condition = {
            StringEquals = { "iam:PassedToService" = "scheduler.amazonaws.com" }
          }
        },
        {
          # Batches the grants stream gave up on.
          Sid      = "StreamFailureQueue"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage"]
          Resource = [aws_sqs_queue.stream_dlq["grant-provision"].arn]
        },
      ],
    )

    "grant-expire" = concat(
      [
        {
          # The grant (get_grant) and its revocation retry record (revocation_retry),
          # by key.
          Sid      = "GrantsRead"
          Effect   = "Allow"
          Action   = ["dynamodb:GetItem"]
          Resource = [aws_dynamodb_table.grants.arn]
        },
        {
          # The grant's moves (-> Revoking -> Revoked: advance, note -> save_grant, a
          # Put and the expiry trigger's Delete), and the revocation retry record
          # (record_revocation_failure: PutItem; mark_told: UpdateItem;
          # clear_revocation_retry: DeleteItem). All GRANT#<id>: no delivery record,
          # no withdrawal, no ConditionCheck.
          Sid      = "GrantRecordsWrite"
          Effect   = "Allow"
          Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]
          Resource = [aws_dynamodb_table.grants.arn]
          Condition = {
            "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["GRANT#*"] }
          }
        },
        {
          # The sweep: overdue Active/Provisioning grants, waiting Revoking ones
          # (grants_due). On the index: no LeadingKeys condition (see above).
          Sid      = "GrantsByStateExpiry"
          Effect   = "Allow"
          Action   = ["dynamodb:Query"]
          Resource = ["${aws_dynamodb_table.grants.arn}/index/by-state-expiry"]
        },
        {
          # Appends in the grant's transactions; GetItem: the read-back of a cancelled
          # transaction's first event (Store::transact).
          Sid    = "AuditTableAppend"
          Effect = "Allow"
          Action = [
            "dynamodb:PutItem",
            "dynamodb:GetItem",
          ]
          Resource = [aws_dynamodb_table.audit.arn]
        },
      ],
      local.grants_stream_statements,
      [
        {
          # See CredentialSecretsDescribe in the provisioner's policy.
          Sid      = "CredentialSecretsDescribe"
          Effect   = "Allow"
          Action   = ["secretsmanager:DescribeSecret"]
          Resource = [local.credential_secret_arn_pattern]
        },
        {
          # Deleting a revoked credential's secret: only those tagged
          # managed-by=ticketbound.
          Sid      = "CredentialSecretsDelete"
          Effect   = "Allow"
          Action   = ["secretsmanager:DeleteSecret"]
          Resource = [local.credential_secret_arn_pattern]
          Condition = {
            StringEquals = { "aws:ResourceTag/${local.managed_by_tag.key}" = local.managed_by_tag.value }
          }
        },
        local.module_secret_guard,
      ],
      local.target_admin_secret_statements,
      [
        {
          Sid      = "ExpirySchedulesDelete"
          Effect   = "Allow"
          Action   = ["scheduler:DeleteSchedule", "scheduler:GetSchedule"]
          Resource = [local.schedule_arn_pattern]
        },
        {
          # A failed revocation's retry: a one-time schedule tb-expire-<grant id>-r<attempt>
          # invoking grant-expire itself, in the module's group; only tb-expire-* names
          # (never the recurring schedules, denied below whatever their names).
          Sid      = "RevocationRetrySchedules"
          Effect   = "Allow"
          Action   = ["scheduler:CreateSchedule"]
          Resource = [local.expiry_schedule_arn_pattern]
        },
        local.recurring_schedule_guard,
        {
          # The retry schedules run as the scheduler role, and as nothing else.
          Sid      = "PassSchedulerRole"
          Effect   = "Allow"
          Action   = ["iam:PassRole"]
          Resource = [aws_iam_role.scheduler.arn]
          Condition = {
            StringEquals = { "iam:PassedToService" = "scheduler.amazonaws.com" }
          }
        },
        {
          Sid      = "StreamFailureQueue"
          Effect   = "Allow"
          Action   = ["sqs:SendMessage"]
          Resource = [aws_sqs_queue.stream_dlq["grant-expire"].arn]
        },
      ],
    )

    # Secrets Manager invokes it with {Step, SecretId, ClientRequestToken}; it reads
    # the grant behind the secret and the last audit event of its chain, and records
    # the rotation (grant and audit events) in one transaction.
    "secret-rotate" = concat(
      [
        {
          # The grant by key (get_grant), and the digest createSecret recorded for a
          # rotation token (pending_digest). No Query, no index.
          Sid      = "GrantsRead"
          Effect   = "Allow"
          Action   = ["dynamodb:GetItem"]
          Resource = [aws_dynamodb_table.grants.arn]
        },
        {
          # The grant's new version, conditioned on the one read (advance, note,
          # save_grant: a Put in TransactWriteItems is authorised as PutItem). Saving a
          # grant that has ended (auditing a refused rotation, a late login revoked)
          # deletes its expiry trigger in the same transaction: DeleteItem. The digest
          # of a pending value (record_pending_digest: PutItem, ROTATION_PENDING#<token>
          # beside the grant). All GRANT#<id>.
          Sid      = "GrantRecordsWrite"
          Effect   = "Allow"
          Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
          Resource = [aws_dynamodb_table.grants.arn]
          Condition = {
            "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["GRANT#*"] }
          }
        },
        {
          # The head of the grant's audit chain (latest_audit: Query on the partition
          # key, newest first, limit 1), new events appended after it (a Put), and the
          # read-back of a cancelled transaction's first event (Store::transact:
          # GetItem).
          Sid    = "AuditTableAppend"
          Effect = "Allow"
          Action = [
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:GetItem",
          ]
          Resource = [aws_dynamodb_table.audit.arn]
        },
        {
          # The four rotation steps, on credential secrets tagged managed-by=ticketbound
          # only. The secret exists whenever Secrets Manager rotates it, so unlike the
          # provisioner's DescribeSecret this one is tag-conditioned too.
          Sid    = "CredentialSecretsRotate"
          Effect = "Allow"
          Action = [
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecretVersionStage",
            # A retried createSecret looks for a version already holding the value.
            "secretsmanager:ListSecretVersionIds",
          ]
          Resource = [local.credential_secret_arn_pattern]
          Condition = {
            StringEquals = { "aws:ResourceTag/${local.managed_by_tag.key}" = local.managed_by_tag.value }
          }
        },
        local.module_secret_guard,
        {
          # GetRandomPassword takes no resource-level permissions: AWS requires "*".
          Sid      = "RandomPassword"
          Effect   = "Allow"
          Action   = ["secretsmanager:GetRandomPassword"]
          Resource = "*"
        },
      ],
      local.target_admin_secret_statements,
    )

    # Fed by the audit stream; tells each audit event worth telling to its ticket, with
    # a write-back record per event (claimed, then settled) in the grants table, and
    # records what it did in the grant's audit trail.
    "ticket-writeback" = [
      {
        # The grant (get_grant) and its write-back record (Store::writeback, and after
        # a refused claim), by key. Query: a grant's write-back records by partition
        # (Store::dead_writebacks), which config::AWS_OPERATIONS declares; the handler
        # does not call it today.
        Sid      = "GrantsRead"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:Query"]
        Resource = [aws_dynamodb_table.grants.arn]
      },
      {
        # Its write-back records, claimed and settled (put_writeback: PutItem,
        # WRITEBACK#<seq> beside the grant); the grant's new version when the
        # write-back is audited (note -> save_grant: a Put), which for a grant that has
        # ended also deletes its expiry trigger in the same transaction (a Delete). The
        # records share the grant's partition, so this is write access to the grant
        # record too, which auditing needs anyway. No delivery record, no withdrawal.
        Sid      = "GrantRecordsWrite"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
        Resource = [aws_dynamodb_table.grants.arn]
        Condition = {
          "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["GRANT#*"] }
        }
      },
      {
        # The write-back's own events, appended in the grant's transaction (a Put), and
        # the read-back of a cancelled transaction's first event (Store::transact:
        # GetItem). No Query: it never reads a chain (the grant holds its head).
        Sid    = "AuditTableAppend"
        Effect = "Allow"
        Action = [
          "dynamodb:PutItem",
          "dynamodb:GetItem",
        ]
        Resource = [aws_dynamodb_table.audit.arn]
      },
      {
        # The newest signed checkpoint's size and root, which each note names so that
        # the ticket witnesses the log: that one item of the log table and nothing
        # else of it (its partition key is CHECKPOINT), read only.
        Sid      = "SignedLogNewestCheckpoint"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem"]
        Resource = [aws_dynamodb_table.log.arn]
        Condition = {
          "ForAllValues:StringEquals" = { "dynamodb:LeadingKeys" = ["CHECKPOINT"] }
        }
      },
      {
        Sid      = "AuditStreamRead"
        Effect   = "Allow"
        Action   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
        Resource = [aws_dynamodb_table.audit.stream_arn]
      },
      {
        # ListStreams takes no resource-level permissions: AWS requires "*".
        Sid      = "AuditStreamList"
        Effect   = "Allow"
        Action   = ["dynamodb:ListStreams"]
        Resource = "*"
      },
      {
        # The ITSM API credentials, and no other secret.
        Sid      = "ItsmApiSecrets"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [for name in sort(tolist(local.itsm_api_integrations)) : aws_secretsmanager_secret.itsm_api[name].arn]
      },
      {
        # Batches the audit stream gave up on.
        Sid      = "StreamFailureQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.stream_dlq["ticket-writeback"].arn]
      },
    ]

    # Invoked by the reconcile schedule: scans the grants (parallel Scan), lists the
    # managed secrets, compares them and the targets' logins with the records, audits
    # each finding and, with TICKETBOUND_RECONCILE_REMEDIATE, revokes what outlived its
    # grant (login, secret, expiry schedule) or hands an overdue Active grant to
    # revocation (saving the grant).
    "grant-reconcile" = concat(
      [
        {
          # Reads: every grant record (scan_grants: Scan in parallel segments, which
          # names no partition key and so must never share a LeadingKeys-conditioned
          # statement), the grant by key (advance, note: GetItem). No Query: the
          # reconciler reads no partition of the grants table.
          Sid      = "GrantsRead"
          Effect   = "Allow"
          Action   = ["dynamodb:Scan", "dynamodb:GetItem"]
          Resource = [aws_dynamodb_table.grants.arn]
        },
        {
          # The grant's new version when a finding is audited or an overdue grant is
          # handed to revocation (advance, note -> save_grant: a Put), and its expiry
          # trigger's removal in the same transaction when the grant has ended (a
          # Delete). All GRANT#<id>.
          Sid      = "GrantRecordsWrite"
          Effect   = "Allow"
          Action   = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
          Resource = [aws_dynamodb_table.grants.arn]
          Condition = {
            "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["GRANT#*"] }
          }
        },
        {
          # A grant's chain (audit_trail: Query), whether a finding was said already;
          # the finding's event appended (a Put); the read-back of a cancelled
          # transaction's first event (Store::transact: GetItem).
          Sid    = "AuditTableAppend"
          Effect = "Allow"
          Action = [
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:GetItem",
          ]
          Resource = [aws_dynamodb_table.audit.arn]
        },
        {
          # The identity registry, every entry (one Scan): live grants are checked
          # against it. Read only, as for the intake: operators write it (the CLI).
          Sid      = "IdentitiesScan"
          Effect   = "Allow"
          Action   = ["dynamodb:Scan"]
          Resource = [aws_dynamodb_table.identities.arn]
        },
        {
          # ListSecrets takes no resource-level permissions: AWS requires "*". It
          # returns every secret's metadata (never a value): the code checks those tagged
          # managed-by=ticketbound against the grants, lists the others as unmanaged
          # (the inventory), and may do nothing more with them (below).
          Sid      = "SecretsList"
          Effect   = "Allow"
          Action   = ["secretsmanager:ListSecrets"]
          Resource = "*"
        },
        {
          # Whether a credential secret exists (metadata only, never a value), as for
          # grant-expire: revoking an expired-but-live grant (the shared enforcer's
          # revoke, shared/secrets delete) describes the grant's secret before deleting
          # it, and that secret may be gone while its login lives on. On a secret that
          # does not exist a tag condition would deny, and "absent" could not be told
          # from "forbidden".
          Sid      = "CredentialSecretsDescribe"
          Effect   = "Allow"
          Action   = ["secretsmanager:DescribeSecret"]
          Resource = [local.credential_secret_arn_pattern]
        },
        {
          # Credential secrets tagged managed-by=ticketbound only: their resource policy
          # (scope drift), and deleting those that outlived their grant.
          Sid    = "CredentialSecretsReconcile"
          Effect = "Allow"
          Action = [
            "secretsmanager:GetResourcePolicy",
            "secretsmanager:DeleteSecret",
          ]
          Resource = [local.credential_secret_arn_pattern]
          Condition = {
            StringEquals = { "aws:ResourceTag/${local.managed_by_tag.key}" = local.managed_by_tag.value }
          }
        },
        local.module_secret_guard,
      ],
      local.target_admin_secret_statements,
      [
        {
          # A revoked grant's expiry schedule (looked up, then deleted), in the module's
          # group only; never creating one.
          Sid      = "ExpirySchedulesDelete"
          Effect   = "Allow"
          Action   = ["scheduler:GetSchedule", "scheduler:DeleteSchedule"]
          Resource = [local.schedule_arn_pattern]
        },
        local.recurring_schedule_guard,
      ],
    )

    # The signed log's only writer and signer: fed by the audit stream (a second
    # consumer beside ticket-writeback) and the checkpoint schedule. Nothing on the
    # grants table but reading a grant (for its ticket), nothing on the audit table but
    # reading a chain's first event (for its ticket): the events come from the stream.
    "log-checkpoint" = [
      {
        # The ticket of an event's grant, for its leaf, when the grant's first event
        # does not name it (get_grant).
        Sid      = "GrantsRead"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem"]
        Resource = [aws_dynamodb_table.grants.arn]
      },
      {
        # The ticket of an event's grant is its first event's (ticket_of ->
        # audit_trail: Query on the grant's partition), for an event after the first
        # whose grant the function has not seen since it started. Read only.
        Sid      = "AuditTableRead"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = [aws_dynamodb_table.audit.arn]
      },
      {
        # The head and a leaf by key (head, leaf: GetItem), whether events were logged
        # before (logged: BatchGetItem of their markers), the leaves since the last
        # checkpoint (entries_between: Query on LEAF). Reads, unconditioned.
        Sid    = "LogRead"
        Effect = "Allow"
        Action = [
          "dynamodb:GetItem",
          "dynamodb:BatchGetItem",
          "dynamodb:Query",
        ]
        Resource = [aws_dynamodb_table.log.arn]
      },
      {
        # Each batch appended in conditional transactions of Puts only (append: a leaf
        # LEAF/<position>, its marker EVENT#<grant>#<seq>#<hash>, the head HEAD;
        # TransactWriteItems is authorised per item: PutItem, and a Put's own condition
        # needs no ConditionCheckItem), and the newest checkpoint's item
        # (record_signed: PutItem on CHECKPOINT). Those four families and no other. No
        # DeleteItem: a leaf is never removed.
        Sid      = "LogWrite"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem"]
        Resource = [aws_dynamodb_table.log.arn]
        Condition = {
          "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["HEAD", "LEAF", "EVENT#*", "CHECKPOINT"] }
        }
      },
      {
        # The signed size recorded on the head (record_signed: UpdateItem), and on no
        # other item: a leaf or marker is never updated in place.
        Sid      = "LogHeadUpdate"
        Effect   = "Allow"
        Action   = ["dynamodb:UpdateItem"]
        Resource = [aws_dynamodb_table.log.arn]
        Condition = {
          "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["HEAD"] }
        }
      },
      {
        Sid      = "AuditStreamRead"
        Effect   = "Allow"
        Action   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
        Resource = [aws_dynamodb_table.audit.stream_arn]
      },
      {
        # ListStreams takes no resource-level permissions: AWS requires "*".
        Sid      = "AuditStreamList"
        Effect   = "Allow"
        Action   = ["dynamodb:ListStreams"]
        Resource = "*"
      },
      {
        # The signing key: its state (a disabled or pending-deletion key is refused),
        # its public key (kept beside the checkpoints, and checked against every
        # signature) and signing. Its key policy lets no other principal sign. During
        # a rollover, the retiring key's too: both sign each checkpoint.
        Sid      = "LogSigningKey"
        Effect   = "Allow"
        Action   = ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign"]
        Resource = [for generation in var.log_signing_key_generations : aws_kms_key.log_signing[generation].arn]
      },
      {
        # Checkpoints, edges and the public key, each written once (If-None-Match: *)
        # and read back. No delete: Object Lock and the bucket policy forbid it anyway.
        Sid      = "CheckpointObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject"]
        Resource = ["${aws_s3_bucket.checkpoints.arn}/*"]
      },
      {
        # The newest checkpoint is found by listing the bucket, not taken from the
        # log's head (which an insider with the table may change).
        Sid      = "CheckpointList"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.checkpoints.arn]
      },
      {
        # Batches the audit stream gave up on.
        Sid      = "StreamFailureQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.stream_dlq["log-checkpoint"].arn]
      },
    ]
  }

  # Statements the two grants stream consumers share.
  grants_stream_statements = [
    {
      Sid      = "GrantsStreamRead"
      Effect   = "Allow"
      Action   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
      Resource = [aws_dynamodb_table.grants.stream_arn]
    },
    {
      # ListStreams takes no resource-level permissions: AWS requires "*".
      Sid      = "GrantsStreamList"
      Effect   = "Allow"
      Action   = ["dynamodb:ListStreams"]
      Resource = "*"
    },
  ]
  target_admin_secret_statements = length(var.target_admin_secret_arns) == 0 ? [] : [
    {
      # The targets' administrator connection strings (TICKETBOUND_TARGETS), for
      # grant-provision, grant-expire, secret-rotate and grant-reconcile.
      Sid      = "TargetAdminSecrets"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = var.target_admin_secret_arns
    },
  ]

  # The credential secrets' actions, for the guard below.
  credential_secret_actions = [
    "secretsmanager:CreateSecret",
    "secretsmanager:TagResource",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:PutResourcePolicy",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:DeleteSecret",
    "secretsmanager:RotateSecret",
    "secretsmanager:UpdateSecretVersionStage",
  ]
  # With the default name_prefix the module's own secrets (ticketbound/webhook/*,
  # ticketbound/itsm-api/*) fall under the credential secrets' ARN pattern. Tag
  # conditions keep them out, unless someone tags them managed-by=ticketbound
  # (TagResource is conditioned on the tag it adds, not on the secret): this makes sure
  # the grant functions, the rotation function and the reconciler never touch them.
  module_secret_guard = {
    Sid    = "NeverTheModuleSecrets"
    Effect = "Deny"
    Action = local.credential_secret_actions
    Resource = concat(
      [for name in sort(tolist(local.webhook_integrations)) : aws_secretsmanager_secret.webhook[name].arn],
      [for name in sort(tolist(local.itsm_api_integrations)) : aws_secretsmanager_secret.itsm_api[name].arn],
    )
  }

  # The expiry schedules' permissions cover the whole group (a grant's schedule is
  # named at run time), and with it the sweep and reconcile schedules the module
  # creates there: deleting or changing either would silently stop the sweep or the
  # reconciliation. This makes sure the functions that manage expiry schedules
  # (grant-provision, grant-expire, grant-reconcile) never create, change or delete
  # those two.
  recurring_schedule_guard = {
    Sid      = "NeverTheRecurringSchedules"
    Effect   = "Deny"
    Action   = ["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"]
    Resource = local.recurring_schedule_arns
  }

  # What the module key is used for, per function (see ModuleKey below).
  module_key_actions = {
    "itsm-intake" = ["kms:Decrypt", "kms:GenerateDataKey"]
    # Creates and reads credential secrets encrypted with the key
    # (TICKETBOUND_SECRET_KMS_KEY_ID).
    "grant-provision" = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    "grant-expire"    = ["kms:Decrypt", "kms:GenerateDataKey"]
    # Reads and writes credential secret versions encrypted with the key.
    "secret-rotate" = ["kms:Decrypt", "kms:GenerateDataKey"]
    # Reads the audit stream and the ITSM API secrets; sends to its (encrypted) DLQs,
    # which is why every function also has GenerateDataKey.
    "ticket-writeback" = ["kms:Decrypt", "kms:GenerateDataKey"]
    "grant-reconcile"  = ["kms:Decrypt", "kms:GenerateDataKey"]
    # Reads the audit stream and the log table; writes and reads checkpoints in the
    # bucket (SSE-KMS with the module key, through S3).
    "log-checkpoint" = ["kms:Decrypt", "kms:GenerateDataKey"]
  }

  scheduler_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "InvokeGrantExpire"
        Effect   = "Allow"
        Action   = ["lambda:InvokeFunction"]
        Resource = [local.function_arns["grant-expire"]]
      },
      {
        # The change window start schedules (tb-start-<grant id>).
        Sid      = "InvokeGrantProvision"
        Effect   = "Allow"
        Action   = ["lambda:InvokeFunction"]
        Resource = [local.function_arns["grant-provision"]]
      },
      {
        # The reconcile schedule.
        Sid      = "InvokeGrantReconcile"
        Effect   = "Allow"
        Action   = ["lambda:InvokeFunction"]
        Resource = [local.function_arns["grant-reconcile"]]
      },
      {
        # The checkpoint schedule.
        Sid      = "InvokeLogCheckpoint"
        Effect   = "Allow"
        Action   = ["lambda:InvokeFunction"]
        Resource = [local.function_arns["log-checkpoint"]]
      },
      {
        Sid      = "ScheduleDeadLetterQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.schedule_dlq.arn]
      },
      {
        # The DLQ is encrypted with the module key, and SQS has the sender do the KMS
        # calls: only through SQS.
        Sid      = "ScheduleDeadLetterQueueKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [aws_kms_key.this.arn]
        Condition = {
          StringEquals = { "kms:ViaService" = "sqs.${local.region}.amazonaws.com" }
        }
      },
    ]
  })

  function_policies = {
    for k, _ in local.functions : k => jsonencode({
      Version = "2012-10-17"
      Statement = concat(
        [
          {
            Sid      = "OwnLogGroup"
            Effect   = "Allow"
            Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
            Resource = [aws_cloudwatch_log_group.function[k].arn, "${aws_cloudwatch_log_group.function[k].arn}:*"]
          },
          {
            # X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level
            # permissions: "*" is the only resource they accept. The intake's only "*"
            # resource; the grant functions add ListStreams and GetRandomPassword,
            # secret-rotate GetRandomPassword, ticket-writeback and log-checkpoint
            # ListStreams, grant-reconcile ListSecrets.
            Sid      = "XRayTracing"
            Effect   = "Allow"
            Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
            Resource = "*"
          },
          {
            Sid      = "OwnDeadLetterQueue"
            Effect   = "Allow"
            Action   = ["sqs:SendMessage"]
            Resource = [aws_sqs_queue.function_dlq[k].arn]
          },
          {
            # Tables, secrets and the DLQs are encrypted with the module key.
            Sid      = "ModuleKey"
            Effect   = "Allow"
            Action   = local.module_key_actions[k]
            Resource = [aws_kms_key.this.arn]
          },
        ],
        local.function_statements[k],
      )
    })
  }
}
