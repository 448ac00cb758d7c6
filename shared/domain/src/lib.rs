//! The ticketbound domain: what an access request, a grant and an audit event are,
//! and how a grant moves through its life.
//!
//! Everything here is pure: no AWS types, no IO, no clock, no async runtime. Time is
//! always passed in, so the same inputs give the same outputs and the invariants can
//! be property-tested. Adapters (DynamoDB, Secrets Manager, target systems) depend on
//! this crate; this crate depends on none of them.

pub mod audit;
pub mod grant;
pub mod model;
pub mod registry;
pub mod request;

pub use audit::{
    Actor, ActorKind, AuditAction, AuditEvent, AuditRecord, ChainError, ChainErrorKind, ChainHead,
    Detail, Digest, verify_chain,
};
pub use grant::{
    CredentialRef, Effect, EndCause, EventKind, ExpiryTrigger, Grant, GrantEvent, GrantId,
    GrantState, LifecycleRules, Transition, TransitionError,
};
pub use model::{
    AccessRequest, Approval, Capabilities, ChangeWindow, ConnectorKind, Environment, Identity,
    IdentityKind, IdentityName, Justification, Owner, Permission, Principal, RevocationTrigger,
    RotationPeriod, Scope, SourceSystem, SystemId, Ticket, TicketKey, ValueError, Verification,
};
pub use registry::{
    IdentityChainError, IdentityEvent, IdentityStatus, RegisteredIdentity, Registration,
    RegistryAction, RegistryChangeError, RegistryEntry, verify_identity_chain,
};
pub use request::{ApprovalDraft, FieldError, RequestDraft, TargetFacts, ValidationErrors};
