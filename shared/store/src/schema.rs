//! The tables, defined once. Terraform (`infra/`) must declare the same keys, indexes,
//! streams and TTL attribute; a test compares the two.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Number,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttr {
    pub name: &'static str,
    pub kind: AttrType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: &'static str,
    pub partition_key: KeyAttr,
    pub sort_key: Option<KeyAttr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamView {
    NewImage,
    NewAndOldImages,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSchema {
    /// The table's role; deployed names are configuration (`TICKETBOUND_*_TABLE`).
    pub role: &'static str,
    pub partition_key: KeyAttr,
    pub sort_key: Option<KeyAttr>,
    /// Global secondary indexes, all projecting every attribute.
    pub indexes: &'static [IndexSchema],
    pub ttl_attribute: Option<&'static str>,
    pub stream: Option<StreamView>,
}

const fn s(name: &'static str) -> KeyAttr {
    KeyAttr {
        name,
        kind: AttrType::String,
    }
}

const fn n(name: &'static str) -> KeyAttr {
    KeyAttr {
        name,
        kind: AttrType::Number,
    }
}

/// Grants, their expiry triggers and idempotency records (one table, told apart by
/// `sk`). The stream carries old and new images: provisioning reacts to inserts of
/// Approved grants, and expiry to TTL removals of triggers, which need the old image.
pub const GRANTS: TableSchema = TableSchema {
    role: "grants",
    partition_key: s("pk"),
    sort_key: Some(s("sk")),
    indexes: &[
        IndexSchema {
            name: "by-ticket",
            partition_key: s("ticket_key"),
            sort_key: Some(s("id")),
        },
        IndexSchema {
            name: "by-owner",
            partition_key: s("owner_key"),
            sort_key: Some(s("id")),
        },
        // The sweep asks for grants in a state whose not-after time has passed.
        IndexSchema {
            name: "by-state-expiry",
            partition_key: s("state"),
            sort_key: Some(n("not_after_epoch")),
        },
    ],
    ttl_attribute: Some("expires_at"),
    stream: Some(StreamView::NewAndOldImages),
};

/// The audit chains: one partition per grant, ordered by sequence number. The stream
/// feeds the ticket write-back.
pub const AUDIT: TableSchema = TableSchema {
    role: "audit",
    partition_key: s("grant_id"),
    sort_key: Some(n("seq")),
    indexes: &[],
    ttl_attribute: None,
    stream: Some(StreamView::NewImage),
};

/// The identity registry: one partition per identity, its entry and its chain of
/// changes. No stream (nothing reacts to it) and no TTL (an entry is retired, never
/// removed).
pub const IDENTITIES: TableSchema = TableSchema {
    role: "identities",
    partition_key: s("pk"),
    sort_key: Some(s("sk")),
    indexes: &[],
    ttl_attribute: None,
    stream: None,
};

/// The signed log's leaves (see `log`): written by the checkpointer alone. No stream
/// (nothing may react to it but the verifier) and no TTL (a leaf is never removed).
pub const LOG: TableSchema = TableSchema {
    role: "log",
    partition_key: s("pk"),
    sort_key: Some(s("sk")),
    indexes: &[],
    ttl_attribute: None,
    stream: None,
};

pub const ALL: [TableSchema; 4] = [GRANTS, AUDIT, IDENTITIES, LOG];

fn key(attr: KeyAttr, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(attr.name)
        .key_type(kind)
        .build()
        .map_err(|e| build_error("CreateTable", e))
}

fn build_error(operation: &'static str, e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Dynamo {
        operation,
        retryable: false,
        source: Box::new(e),
    }
}

fn key_schema(pk: KeyAttr, sk: Option<KeyAttr>) -> Result<Vec<KeySchemaElement>, StoreError> {
    let mut keys = vec![key(pk, KeyType::Hash)?];
    if let Some(sk) = sk {
        keys.push(key(sk, KeyType::Range)?);
    }
    Ok(keys)
}

/// Creates table `name` from `schema` if it does not exist, and turns on its TTL.
/// Safe to call again: an existing table is left as it is.
pub async fn ensure_table(
    client: &Client,
    schema: &TableSchema,
    name: &str,
) -> Result<(), StoreError> {
    let mut attrs: Vec<KeyAttr> = vec![schema.partition_key];
    attrs.extend(schema.sort_key);
    for index in schema.indexes {
        attrs.push(index.partition_key);
        attrs.extend(index.sort_key);
    }
    attrs.sort_by_key(|a| a.name);
    attrs.dedup_by_key(|a| a.name);

    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(schema.partition_key, schema.sort_key)?));
    for attr in attrs {
        let kind = match attr.kind {
            AttrType::String => ScalarAttributeType::S,
            AttrType::Number => ScalarAttributeType::N,
        };
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr.name)
                .attribute_type(kind)
                .build()
                .map_err(|e| build_error("CreateTable", e))?,
        );
    }
    for index in schema.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(key_schema(index.partition_key, index.sort_key)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(|e| build_error("CreateTable", e))?,
        );
    }
    if let Some(view) = schema.stream {
        let view = match view {
            StreamView::NewImage => StreamViewType::NewImage,
            StreamView::NewAndOldImages => StreamViewType::NewAndOldImages,
        };
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(view)
                .build()
                .map_err(|e| build_error("CreateTable", e))?,
        );
    }

    match request.send().await {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(StoreError::dynamo("CreateTable", e)),
    }
    wait_until_active(client, name).await?;

    if let Some(ttl) = schema.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(ttl)
                    .build()
                    .map_err(|e| build_error("UpdateTimeToLive", e))?,
            )
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateTimeToLive", e))?;
    }
    Ok(())
}

/// AWS creates tables asynchronously; writes fail until the table is ACTIVE.
async fn wait_until_active(client: &Client, name: &str) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::TableStatus;
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DescribeTable", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(StoreError::Dynamo {
        operation: "DescribeTable",
        retryable: true,
        source: format!("table {name} did not become ACTIVE within a minute").into(),
    })
}
