use std::error::Error as StdError;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use ticketbound_domain::GrantId;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What can go wrong in the store, with enough shape for callers to choose: conflicts
/// are answers (someone else got there first), `Dynamo` may be retried when
/// [`StoreError::is_retryable`] says so.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("grant {0} already exists")]
    GrantExists(GrantId),
    #[error("ticket {0} was withdrawn: no grant is made for it")]
    TicketWithdrawn(String),
    #[error("delivery {delivery_id} from {source_system} was already received")]
    DuplicateDelivery {
        source_system: String,
        delivery_id: String,
    },
    #[error("grant {id} is no longer at version {expected}: it changed since it was read")]
    StaleVersion { id: GrantId, expected: u64 },
    #[error("audit event {seq} of grant {id} already exists")]
    AuditEventExists { id: GrantId, seq: u64 },
    #[error("grant {0} was not found")]
    NotFound(GrantId),
    #[error("a transaction may hold at most 100 items; this one needs {0}")]
    TooManyItems(usize),
    #[error("stored item {key} does not match the expected shape")]
    Malformed {
        key: String,
        #[source]
        source: serde_dynamo::Error,
    },
    #[error("could not map a value to a DynamoDB item")]
    Mapping(#[source] serde_dynamo::Error),
    #[error("DynamoDB {operation} failed")]
    Dynamo {
        operation: &'static str,
        retryable: bool,
        #[source]
        source: BoxError,
    },
}

/// Error codes after which the same request may succeed.
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TransactionConflictException",
];

impl StoreError {
    /// True when trying the same call again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Dynamo { retryable, .. } => *retryable,
            // A concurrent writer got there first; a re-read settles it. (moto, unlike
            // DynamoDB, can let two transactions on one grant interleave, so the audit
            // event's condition may fail where the grant's version check did not.)
            Self::StaleVersion { .. } | Self::AuditEventExists { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn dynamo<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: StdError + ProvideErrorMetadata + Send + Sync + 'static,
    {
        let retryable = ticketbound_runtime::aws::is_transient(&err, RETRYABLE_CODES);
        Self::Dynamo {
            operation,
            retryable,
            source: Box::new(err),
        }
    }
}
