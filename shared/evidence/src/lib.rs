//! The evidence an auditor verifies without trusting the operator.
//!
//! Beside each grant's hash chain, every audit event of every grant is a leaf of one
//! append-only log ([`log`]), a Merkle tree in the shape of RFC 9162 ([`merkle`]).
//! A checkpointer, the only holder of a signing key, signs the log's size and root as
//! a C2SP checkpoint ([`checkpoint`]) and keeps each one where the operator cannot
//! take it back. [`verify`] checks a ticket's bundle offline with nothing but the
//! pinned public key.
//!
//! Pure: no AWS types, no IO. The signing (KMS) and the storage (DynamoDB, S3) are
//! the adapters' and the checkpointer's.

pub mod checkpoint;
pub mod log;
pub mod merkle;
pub mod verify;
pub mod witness;

pub use checkpoint::{
    Checkpoint, NoteError, PublicKey, SignedNote, checkpoint_signers, verify_checkpoint,
};
pub use log::LogEntry;
pub use merkle::{Frontier, Hash};
pub use verify::{
    BUNDLE_FORMAT, Bundle, GrantEvidence, Rollover, Trust, Verified, VerifyError, verify_bundle,
};
pub use witness::{Witness, Witnessed};
