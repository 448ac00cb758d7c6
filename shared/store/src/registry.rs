//! The identity registry in DynamoDB: a table of its own (`TICKETBOUND_IDENTITIES_TABLE`),
//! written only by operators through the CLI (and what calls the same path), read by
//! the intake and the reconciler. No function role may write it, so a compromised
//! internet-facing intake cannot register a principal of its own.
//!
//! One partition per identity (`pk = IDENTITY#<name>`): the entry (`sk = ENTRY`) and
//! its chain of changes (`sk = EVENT#<seq>`), the entry and each event written in one
//! transaction, the entry only at the version it was read at.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketbound_domain::{
    Actor, IdentityChainError, IdentityEvent, IdentityName, IdentityStatus, RegisteredIdentity,
    RegistryAction, RegistryChangeError, RegistryEntry, verify_identity_chain,
};

use crate::StoreError;
use crate::items::{self, Item};
use crate::store::build_error;

/// The variable naming the table.
pub use ticketbound_runtime::vars::IDENTITIES_TABLE;

const ENTRY: &str = "ENTRY";
/// Two items (the entry and its event) per identity in one `TransactWriteItems`.
pub const MAX_IMPORT_CHANGES: usize = 50;

fn pk(name: &IdentityName) -> String {
    format!("IDENTITY#{name}")
}

fn event_sk(seq: u64) -> String {
    format!("EVENT#{seq:010}")
}

#[derive(Serialize, Deserialize)]
struct EntryItem {
    pk: String,
    sk: String,
    /// The chain's length: what a change is conditioned on.
    version: u64,
    #[serde(flatten)]
    entry: RegistryEntry,
}

#[derive(Serialize, Deserialize)]
struct EventItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    event: IdentityEvent,
}

/// Why the registry could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Change(#[from] RegistryChangeError),
    #[error("identity {0} changed while this change was being made; read it again and retry")]
    Conflict(IdentityName),
    /// The entry, or its chain, is not what the registry writes: someone changed the
    /// table by other means. Nothing is decided on it, and nothing more is written.
    #[error(
        "the registry record of identity {identity} does not verify ({why}); an operator must look at it"
    )]
    Tampered { identity: String, why: String },
    #[error("an import may change at most {max} identities at once (one transaction); this one changes {0}", max = MAX_IMPORT_CHANGES)]
    ImportTooLarge(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Conflict(_) => true,
            Self::Change(_) | Self::Tampered { .. } | Self::ImportTooLarge(_) => false,
        }
    }
}

/// What a change, or an import of one definition, did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    Registered,
    Updated,
    Unchanged,
    Retired,
    /// A retired identity named again, unchanged, by an import: left retired.
    StaysRetired,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Retired => "retired",
            Self::StaysRetired => "retired (left as it is)",
        }
    }
}

/// The registry's table.
#[derive(Debug, Clone)]
pub struct Registry {
    client: Client,
    table: String,
}

impl Registry {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Reads the table's name from `env` (a missing one is recorded there).
    pub fn read_table(env: &mut ticketbound_runtime::EnvReader) -> Option<String> {
        env.required(IDENTITIES_TABLE, "a DynamoDB table name")
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The entry of `name`, strongly consistent (a retirement counts at once).
    pub async fn get(&self, name: &IdentityName) -> Result<Option<RegistryEntry>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk(name), ENTRY)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item
            .map(|item| from_item::<EntryItem>(item, &pk(name)).map(|i| i.entry))
            .transpose()
    }

    /// Every entry, retired ones included, by name.
    pub async fn list(&self) -> Result<Vec<RegistryEntry>, StoreError> {
        let mut entries = Vec::new();
        for item in self.scan(Some(ENTRY)).await? {
            entries.push(from_item::<EntryItem>(item, "registry entry")?.entry);
        }
        entries.sort_by(|a, b| a.identity.name.cmp(&b.identity.name));
        Ok(entries)
    }

    /// Every item of the table (every page), or only those whose `sk` is `only`.
    async fn scan(&self, only: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if let Some(sk) = only {
                request = request
                    .filter_expression("sk = :only")
                    .expression_attribute_values(":only", AttributeValue::S(sk.to_owned()));
            }
            let out = request
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Scan", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// The chain of `name`'s changes, in order.
    pub async fn events(&self, name: &IdentityName) -> Result<Vec<IdentityEvent>, StoreError> {
        let mut events = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :event)")
                .expression_attribute_values(":pk", AttributeValue::S(pk(name)))
                .expression_attribute_values(":event", AttributeValue::S("EVENT#".to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for item in out.items.unwrap_or_default() {
                events.push(from_item::<EventItem>(item, &pk(name))?.event);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(events)
    }

    /// The entry of `name` as an approval may rely on it: it must agree with the event
    /// at its head (one read more), else it is [`RegistryError::Tampered`].
    pub async fn get_checked(
        &self,
        name: &IdentityName,
    ) -> Result<Option<RegistryEntry>, RegistryError> {
        let Some(entry) = self.get(name).await? else {
            return Ok(None);
        };
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk(name), &event_sk(entry.head.seq))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let last = match out.item {
            Some(item) => Some(from_item::<EventItem>(item, &pk(name))?.event),
            None => None,
        };
        if !entry.agrees_with_last(last.as_ref()) {
            return Err(RegistryError::Tampered {
                identity: name.to_string(),
                why: "the entry is not what its last recorded change made it".into(),
            });
        }
        Ok(Some(entry))
    }

    /// The entry of `name` with its whole chain verified: what every change starts
    /// from, so that a change never seals an edit made by other means into the chain.
    pub async fn get_verified(
        &self,
        name: &IdentityName,
    ) -> Result<Option<RegistryEntry>, RegistryError> {
        let entry = self.get(name).await?;
        let events = self.events(name).await?;
        if entry.is_none() && events.is_empty() {
            return Ok(None);
        }
        verify_identity_chain(name, &events, entry.as_ref()).map_err(tampered)?;
        match entry {
            Some(entry) => Ok(Some(entry)),
            None => Err(RegistryError::Tampered {
                identity: name.to_string(),
                why: "its changes are recorded but its entry is gone".into(),
            }),
        }
    }

    /// Every identity with its chain verified (one scan of the table): the good
    /// entries by name, and what does not verify or parse, by subject. For the
    /// reconciler, which reports the latter instead of stopping at it.
    pub async fn audit(&self) -> Result<RegistryAudit, StoreError> {
        let mut partitions: std::collections::BTreeMap<String, (Option<Item>, Vec<Item>)> =
            std::collections::BTreeMap::new();
        for item in self.scan(None).await? {
            let (Some(AttributeValue::S(p)), Some(AttributeValue::S(sk))) =
                (item.get("pk").cloned(), item.get("sk").cloned())
            else {
                continue;
            };
            let slot = partitions.entry(p).or_default();
            if sk == ENTRY {
                slot.0 = Some(item);
            } else {
                slot.1.push(item);
            }
        }
        let mut audit = RegistryAudit::default();
        for (p, (entry, events)) in partitions {
            match verify_partition(&p, entry, events) {
                Ok(entry) => {
                    audit.entries.insert(entry.identity.name.clone(), entry);
                }
                Err(why) => audit.broken.push((p, why)),
            }
        }
        Ok(audit)
    }

    /// Registers `definition`; an identity of that name already registered (or
    /// retired) is refused.
    pub async fn register(
        &self,
        definition: RegisteredIdentity,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Applied, RegistryError> {
        let previous = self.get_verified(&definition.name).await?;
        match &previous {
            Some(entry) if entry.status == IdentityStatus::Retired => {
                return Err(RegistryChangeError::Retired(definition.name).into());
            }
            Some(_) => return Err(RegistryChangeError::AlreadyRegistered(definition.name).into()),
            None => {}
        }
        self.apply(previous, definition, actor, at).await
    }

    /// Updates the registered identity to `definition` (nothing is written when it is
    /// the same); one not registered is refused.
    pub async fn update(
        &self,
        definition: RegisteredIdentity,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Applied, RegistryError> {
        let previous = self.get_verified(&definition.name).await?;
        if previous.is_none() {
            return Err(RegistryChangeError::NotRegistered(definition.name).into());
        }
        self.apply(previous, definition, actor, at).await
    }

    /// Registers `definition`, or updates the registered one to it (nothing is
    /// written when it is the same).
    pub async fn put(
        &self,
        definition: RegisteredIdentity,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Applied, RegistryError> {
        let previous = self.get_verified(&definition.name).await?;
        self.apply(previous, definition, actor, at).await
    }

    /// Writes what `definition` changes of `previous` (read and verified by the caller).
    async fn apply(
        &self,
        previous: Option<RegistryEntry>,
        definition: RegisteredIdentity,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Applied, RegistryError> {
        let (applied, change) = planned(previous.as_ref(), definition, actor, at)?;
        if let Some((entry, event)) = change {
            self.commit(&[(previous, entry, event)]).await?;
        }
        Ok(applied)
    }

    /// Retires `name`: no grant is made for it again.
    pub async fn retire(
        &self,
        name: &IdentityName,
        actor: &Actor,
        at: DateTime<Utc>,
        reason: &str,
    ) -> Result<Applied, RegistryError> {
        let Some(previous) = self.get_verified(name).await? else {
            return Err(RegistryChangeError::NotRegistered(name.clone()).into());
        };
        let (entry, event) = previous.retire(actor.clone(), at, reason)?;
        self.commit(&[(Some(previous), entry, event)]).await?;
        Ok(Applied::Retired)
    }

    /// Registers or updates every definition of an import in one transaction: a file
    /// with one bad definition (or one that cannot be written) changes nothing. A
    /// retired identity named unchanged stays retired; named changed, it is refused.
    pub async fn import(
        &self,
        definitions: Vec<RegisteredIdentity>,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Vec<(IdentityName, Applied)>, RegistryError> {
        let mut names = std::collections::BTreeSet::new();
        let mut applied = Vec::with_capacity(definitions.len());
        let mut changes = Vec::new();
        for definition in definitions {
            let name = definition.name.clone();
            if !names.insert(name.clone()) {
                return Err(RegistryChangeError::Invalid {
                    name,
                    errors: ticketbound_domain::ValidationErrors(vec![
                        ticketbound_domain::FieldError {
                            field: "name".to_owned(),
                            problem: "appears twice in the import".to_owned(),
                        },
                    ]),
                }
                .into());
            }
            let previous = self.get_verified(&name).await?;
            if let Some(entry) = &previous
                && entry.status == IdentityStatus::Retired
                && entry.identity == definition
            {
                applied.push((name, Applied::StaysRetired));
                continue;
            }
            let (what, change) = planned(previous.as_ref(), definition, actor, at)?;
            applied.push((name, what));
            if let Some((entry, event)) = change {
                changes.push((previous, entry, event));
            }
        }
        if changes.len() > MAX_IMPORT_CHANGES {
            return Err(RegistryError::ImportTooLarge(changes.len()));
        }
        if !changes.is_empty() {
            self.commit(&changes).await?;
        }
        Ok(applied)
    }

    /// Writes each change (the entry at the version it was read at, and its event) in
    /// one transaction.
    async fn commit(
        &self,
        changes: &[(Option<RegistryEntry>, RegistryEntry, IdentityEvent)],
    ) -> Result<(), RegistryError> {
        let mut writes = Vec::with_capacity(2 * changes.len());
        for (previous, entry, event) in changes {
            let name = &entry.identity.name;
            let entry_item = serde_dynamo::to_item(EntryItem {
                pk: pk(name),
                sk: ENTRY.to_owned(),
                version: entry.head.seq,
                entry: entry.clone(),
            })
            .map_err(StoreError::Mapping)?;
            let event_item = serde_dynamo::to_item(EventItem {
                pk: pk(name),
                sk: event_sk(event.seq),
                event: event.clone(),
            })
            .map_err(StoreError::Mapping)?;
            let mut put_entry = Put::builder()
                .table_name(&self.table)
                .set_item(Some(entry_item));
            put_entry = match previous {
                None => put_entry.condition_expression("attribute_not_exists(pk)"),
                Some(p) => put_entry
                    .condition_expression("version = :read")
                    .expression_attribute_values(
                        ":read",
                        AttributeValue::N(p.head.seq.to_string()),
                    ),
            };
            let put_event = Put::builder()
                .table_name(&self.table)
                .set_item(Some(event_item))
                .condition_expression("attribute_not_exists(pk)");
            for put in [put_entry, put_event] {
                writes.push(
                    TransactWriteItem::builder()
                        .put(
                            put.build()
                                .map_err(|e| build_error("TransactWriteItems", e))?,
                        )
                        .build(),
                );
            }
        }
        // The changes' event hashes name the transaction: a retry of the same
        // changes is the same request to DynamoDB.
        let token = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            for (_, _, event) in changes {
                h.update(event.hash.to_hex());
            }
            hex::encode(h.finalize())[..36].to_owned()
        };
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .client_request_token(token)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    TransactWriteItemsError::TransactionCanceledException(c)
                        if c.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                ) =>
            {
                // Applied before its answer was lost, or someone else's change won.
                let mut all_applied = true;
                for (_, entry, _) in changes {
                    all_applied &= self.get(&entry.identity.name).await?.as_ref() == Some(entry);
                }
                if all_applied {
                    return Ok(());
                }
                Err(RegistryError::Conflict(changes[0].1.identity.name.clone()))
            }
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e).into()),
        }
    }
}

/// What the reconciler learns from one scan of the registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryAudit {
    /// Entries whose chains verify.
    pub entries: std::collections::BTreeMap<IdentityName, RegistryEntry>,
    /// Partitions that do not parse or verify: `(pk, why)`.
    pub broken: Vec<(String, String)>,
}

/// The change `definition` makes to `previous`, and what it amounts to.
fn planned(
    previous: Option<&RegistryEntry>,
    definition: RegisteredIdentity,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Result<(Applied, Option<(RegistryEntry, IdentityEvent)>), RegistryError> {
    Ok(match previous {
        None => (
            Applied::Registered,
            Some(RegistryEntry::register(definition, actor.clone(), at)?),
        ),
        Some(entry) => match entry.update(definition, actor.clone(), at)? {
            None => (Applied::Unchanged, None),
            Some(change) => {
                debug_assert_eq!(change.1.action, RegistryAction::Updated);
                (Applied::Updated, Some(change))
            }
        },
    })
}

fn tampered(e: IdentityChainError) -> RegistryError {
    RegistryError::Tampered {
        identity: e.identity.clone(),
        why: e.to_string(),
    }
}

fn verify_partition(
    p: &str,
    entry: Option<Item>,
    events: Vec<Item>,
) -> Result<RegistryEntry, String> {
    let entry = entry.ok_or("changes recorded, but no entry")?;
    let entry = from_item::<EntryItem>(entry, p)
        .map_err(|e| ticketbound_runtime::error_chain(&e))?
        .entry;
    let mut chain = Vec::with_capacity(events.len());
    for item in events {
        chain.push(
            from_item::<EventItem>(item, p)
                .map_err(|e| ticketbound_runtime::error_chain(&e))?
                .event,
        );
    }
    chain.sort_by_key(|e| e.seq);
    if pk(&entry.identity.name) != p {
        return Err(format!("the entry names identity {}", entry.identity.name));
    }
    verify_identity_chain(&entry.identity.name, &chain, Some(&entry)).map_err(|e| e.to_string())?;
    Ok(entry)
}

fn from_item<T: serde::de::DeserializeOwned>(
    item: HashMap<String, AttributeValue>,
    key: &str,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|source| StoreError::Malformed {
        key: key.to_owned(),
        source,
    })
}
