//! What rotation's createSecret recorded before storing a pending value: one record
//! per rotation token beside the grant (`pk = GRANT#<id>`, `sk = ROTATION_PENDING#<token>`),
//! holding the value's digest, never the value. It is how the rotation function
//! trusts only a pending value it wrote itself (see `ticketbound_enforce::rotation`).

use serde::{Deserialize, Serialize};
use ticketbound_domain::Grant;

use crate::items::grant_pk;
use crate::{Store, StoreError};

const SK_PREFIX: &str = "ROTATION_PENDING#";

#[derive(Serialize, Deserialize)]
struct PendingItem {
    pk: String,
    sk: String,
    /// TTL: gone with the grant record at the latest.
    expires_at: i64,
    digest: String,
}

impl Store {
    /// The digest recorded for rotation `token` of `grant`'s secret, if any.
    pub async fn pending_digest(
        &self,
        grant: &Grant,
        token: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_item::<PendingItem>(grant_pk(grant.id), &format!("{SK_PREFIX}{token}"))
            .await?
            .map(|i| i.digest))
    }

    /// Records `digest` for rotation `token` of `grant`'s secret (a retried
    /// createSecret that makes a new value records it again, over the old one).
    pub async fn record_pending_digest(
        &self,
        grant: &Grant,
        token: &str,
        digest: &str,
    ) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(PendingItem {
            pk: grant_pk(grant.id),
            sk: format!("{SK_PREFIX}{token}"),
            expires_at: (grant.not_after() + self.settings.retention).timestamp(),
            digest: digest.to_owned(),
        })
        .map_err(StoreError::Mapping)?;
        self.client
            .put_item()
            .table_name(&self.settings.tables.grants)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }
}
