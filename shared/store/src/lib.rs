//! The DynamoDB adapter: where grants, their audit chains and idempotency records live.
//!
//! [`schema`] is the one definition of the tables: the local stack and the tests create
//! them from it, and the Terraform module is checked against it. [`Store`] maps domain
//! values to items (with `serde_dynamo`) and writes them only conditionally: a grant is
//! created only if absent, changed only at the version it was read at, and always
//! together with its audit events in one transaction, so that the record and its
//! evidence can never disagree.
//!
//! This crate owns every DynamoDB SDK type; nothing above it sees one.

mod error;
mod items;
pub mod log;
mod pending;
mod registry;
mod retry;
pub mod schema;
mod store;
pub mod stream;
mod withdrawal;
mod writeback;

pub use error::StoreError;
pub use items::{Delivery, ITEM_EXPIRY, ITEM_GRANT, audit_to_item, grant_to_item};
pub use log::{LOG_TABLE, LogError, LogHead, LogStore};
pub use registry::{
    Applied, IDENTITIES_TABLE, MAX_IMPORT_CHANGES, Registry, RegistryAudit, RegistryError,
};
pub use retry::{RecordedFailure, RevocationRetry, Told};
pub use schema::{TableSchema, ensure_table};
pub use store::{
    AUDIT_TABLE, AdvanceError, GRANTS_TABLE, RETENTION_DAYS, Store, StoreSettings, Tables,
};
pub use withdrawal::TicketWithdrawal;
pub use writeback::{Claim, WritebackRecord, WritebackState};
