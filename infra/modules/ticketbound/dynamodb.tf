# The tables as shared/store/src/schema.rs defines them (keys, indexes, streams, TTL);
# keep the two in step.

resource "aws_dynamodb_table" "grants" {
  name                        = local.grants_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection_enabled

  # Provisioning reacts to inserts of Approved grants, expiry to TTL removals of
  # expiry triggers: both need the images.
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  attribute {
    name = "ticket_key"
    type = "S"
  }
  attribute {
    name = "owner_key"
    type = "S"
  }
  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "state"
    type = "S"
  }
  attribute {
    name = "not_after_epoch"
    type = "N"
  }

  global_secondary_index {
    name            = "by-ticket"
    hash_key        = "ticket_key"
    range_key       = "id"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "by-owner"
    hash_key        = "owner_key"
    range_key       = "id"
    projection_type = "ALL"
  }
  global_secondary_index {
    name            = "by-state-expiry"
    hash_key        = "state"
    range_key       = "not_after_epoch"
    projection_type = "ALL"
  }

  # TTL is the backstop and the garbage collector, never the clock.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = var.tags
}

resource "aws_dynamodb_table" "audit" {
  name                        = local.audit_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "grant_id"
  range_key                   = "seq"
  deletion_protection_enabled = var.deletion_protection_enabled

  # Feeds the ticket write-back; the chain is append-only, so new images suffice.
  stream_enabled   = true
  stream_view_type = "NEW_IMAGE"

  attribute {
    name = "grant_id"
    type = "S"
  }
  attribute {
    name = "seq"
    type = "N"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = var.tags
}

# The identity registry: which non-human identities may be granted, who owns them,
# their workload principals, targets and environments, each entry with its own chain of
# changes (shared/store/src/registry.rs). Written by operators only, through the CLI
# (`ticketbound identities add|import|retire`, or the optional seed below); no
# function role may write it, so the internet-facing intake can never register a
# principal. The intake reads an entry (GetItem), the reconciler scans it.
resource "aws_dynamodb_table" "identities" {
  name                        = local.identities_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection_enabled

  # No stream (nothing consumes its changes) and no TTL (an entry is retired, never
  # deleted: its chain is evidence).

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = var.tags
}

# The signed log (shared/store/src/log.rs): one partition per leaf, a marker per logged
# event (a redelivered record is not logged twice) and the head (the tree's right edge,
# its size, the last signed size). Written by log-checkpoint alone, in conditional
# transactions; no other function role may write it (tests/ticketbound.tftest.hcl). A
# rewrite here cannot pass unseen: the checkpointer rebuilds the root from the last
# signed edge in the Object Lock bucket before it signs again (LogTampered otherwise).
resource "aws_dynamodb_table" "log" {
  name                        = local.log_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection_enabled

  # No stream (nothing may react to it but the verifier) and no TTL (a leaf is never
  # removed).

  attribute {
    name = "pk"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = var.tags
}

# The optional seed of the registry (var.identities_file): the operators' own path, the
# CLI's `identities import`, run where terraform runs, so every entry is checked and
# written with its event exactly as an operator's change is (never a raw PutItem from
# Terraform, which would bypass the chain). Run again whenever the file changes; an
# unchanged definition writes nothing. The CLI records "terraform" as the actor;
# CloudTrail records who really wrote (the credentials terraform apply runs with).
resource "terraform_data" "identities_seed" {
  count = var.identities_file == null ? 0 : 1

  triggers_replace = filesha256(var.identities_file)

  provisioner "local-exec" {
    # The path through the environment, quoted: never spliced into the shell command.
    command = "ticketbound identities import \"$IDENTITIES_SEED_FILE\" --by terraform"
    environment = {
      IDENTITIES_SEED_FILE         = abspath(var.identities_file)
      TICKETBOUND_GRANTS_TABLE     = aws_dynamodb_table.grants.name
      TICKETBOUND_AUDIT_TABLE      = aws_dynamodb_table.audit.name
      TICKETBOUND_IDENTITIES_TABLE = aws_dynamodb_table.identities.name
      AWS_REGION                   = local.region
    }
  }
}
