//! Withdrawn tickets, remembered: one record per ticket (`pk = TICKET#<source>#<key>`,
//! `sk = WITHDRAWN`), written when a withdrawal arrives, whether or not the ticket has
//! a grant yet. An approval delivered after its ticket's withdrawal (a webhook
//! retried after a 503, an EventBridge redelivery) would otherwise find no trace of
//! it and be provisioned; every grant's creation checks the record in its own
//! transaction, so even an approval racing the withdrawal cannot slip past it.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketbound_domain::Ticket;

use crate::items;
use crate::{Store, StoreError};

const SK: &str = "WITHDRAWN";

fn ticket_pk(ticket: &Ticket) -> String {
    format!("TICKET#{}", ticket.qualified_key())
}

/// That a ticket was withdrawn, by whom and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketWithdrawal {
    pub ticket: String,
    pub actor: String,
    pub withdrawn_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct WithdrawalItem {
    pk: String,
    sk: String,
    /// TTL: kept as long as grants are.
    expires_at: i64,
    #[serde(flatten)]
    withdrawal: TicketWithdrawal,
}

impl Store {
    /// Remembers that `ticket` was withdrawn (the first withdrawal stays: a
    /// redelivered one changes nothing).
    pub async fn record_withdrawal(
        &self,
        ticket: &Ticket,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(WithdrawalItem {
            pk: ticket_pk(ticket),
            sk: SK.to_owned(),
            expires_at: (at + self.settings.retention).timestamp(),
            withdrawal: TicketWithdrawal {
                ticket: ticket.qualified_key(),
                actor: actor.to_owned(),
                withdrawn_at: at,
            },
        })
        .map_err(StoreError::Mapping)?;
        match self
            .client
            .put_item()
            .table_name(&self.settings.tables.grants)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(service))
                if service.err().is_conditional_check_failed_exception() =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError::dynamo("PutItem", e)),
        }
    }

    /// The withdrawal of `ticket`, if it was withdrawn.
    pub async fn withdrawal(
        &self,
        ticket: &Ticket,
    ) -> Result<Option<TicketWithdrawal>, StoreError> {
        Ok(self
            .read_item::<WithdrawalItem>(ticket_pk(ticket), SK)
            .await?
            .map(|i| i.withdrawal))
    }

    /// The transaction item that fails a grant's creation when its ticket was
    /// withdrawn.
    pub(crate) fn not_withdrawn(&self, ticket: &Ticket) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.settings.tables.grants)
            .set_key(Some(items::key(ticket_pk(ticket), SK)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| crate::store::build_error("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }
}
