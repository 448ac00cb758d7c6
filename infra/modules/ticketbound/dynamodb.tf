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
