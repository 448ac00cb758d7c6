//! Checkpoints of the log, as signed notes: the body is a C2SP tlog-checkpoint
//! (origin, tree size, base64 root hash, then extension lines; ticketbound's one
//! extension is the signing time), the envelope a C2SP signed note, signed with
//! ECDSA over NIST P-256 and SHA-256 (signature type `0x02`, key id: the first four
//! bytes of the SHA-256 of the key's DER SubjectPublicKeyInfo).
//!
//! The signing itself happens elsewhere (AWS KMS in production, which hashes a `RAW`
//! message with SHA-256 and returns a DER signature); everything here is what an
//! auditor runs offline: parse, pick the signatures of the key they pinned, verify.

use std::fmt;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use crate::merkle::Hash;

/// The signed-note signature type of ECDSA keys.
const SIGNATURE_TYPE_ECDSA: u8 = 0x02;
/// The extension line that carries when a checkpoint was signed.
const TIME_PREFIX: &str = "time ";
/// Signatures looked at per note (the signed-note spec asks for at least 16).
const MAX_SIGNATURES: usize = 16;
/// Notes longer than this are refused before anything is parsed.
const MAX_NOTE_BYTES: usize = 64 * 1024;

/// One state of the log: its first `size` events hash to `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Names the log (the deployment), so a checkpoint of one log cannot stand in
    /// for another's.
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// When the checkpointer signed it.
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("the note is not a signed note: {0}")]
    Malformed(&'static str),
    #[error("the checkpoint body is malformed: {0}")]
    BadCheckpoint(&'static str),
    #[error("the key is not an ECDSA P-256 public key in DER SubjectPublicKeyInfo form")]
    BadKey,
    #[error("a signature of key {name} ({key_id:08x}) does not verify: the note was altered")]
    BadSignature { name: String, key_id: u32 },
    #[error(
        "the note carries no signature of the pinned key {name} ({key_id:08x}); \
         signatures of other keys certify nothing"
    )]
    NotSignedByPinnedKey { name: String, key_id: u32 },
    #[error("the checkpoint's origin {found:?} is not the pinned key's log {expected:?}")]
    WrongOrigin { expected: String, found: String },
}

impl Checkpoint {
    /// The note text that is signed (ends in a newline, as the format requires).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n{TIME_PREFIX}{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root.0),
            self.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }

    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let body = text.strip_suffix('\n').ok_or(NoteError::BadCheckpoint(
            "the text does not end in a newline",
        ))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::BadCheckpoint("no origin line"))?;
        let size = lines
            .next()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .filter(|s| s.len() == 1 || !s.starts_with('0'))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(NoteError::BadCheckpoint("the size is not a decimal number"))?;
        let root = lines
            .next()
            .and_then(|r| BASE64.decode(r).ok())
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .map(Hash)
            .ok_or(NoteError::BadCheckpoint(
                "the root is not a base64 SHA-256 hash",
            ))?;
        let mut time = None;
        for line in lines {
            if line.is_empty() {
                return Err(NoteError::BadCheckpoint("an empty extension line"));
            }
            if let Some(t) = line.strip_prefix(TIME_PREFIX) {
                let parsed = DateTime::parse_from_rfc3339(t)
                    .map_err(|_| NoteError::BadCheckpoint("the time is not RFC 3339"))?;
                if time.replace(parsed.with_timezone(&Utc)).is_some() {
                    return Err(NoteError::BadCheckpoint("two time lines"));
                }
            }
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            time: time.ok_or(NoteError::BadCheckpoint("no time line"))?,
        })
    }
}

/// The checkpointer's public key as an auditor pins it: the log's name and the DER
/// SubjectPublicKeyInfo (what KMS `GetPublicKey` returns).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    der: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.name, &self.fingerprint()[..16])
    }
}

impl PublicKey {
    /// `name` is the key name of the signature lines and the checkpoints' origin.
    pub fn new(name: &str, der: Vec<u8>) -> Result<Self, NoteError> {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
            return Err(NoteError::Malformed(
                "a key name is non-empty, without spaces or '+'",
            ));
        }
        // Parse now, so that a wrong file is refused as a key, not later as a
        // signature that fails.
        aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &der)
            .map_err(|_| NoteError::BadKey)?;
        Ok(Self {
            name: name.to_owned(),
            der,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// C2SP signed note, signature type 0x02: SHA-256 of the DER key, first 4 bytes.
    pub fn key_id(&self) -> u32 {
        let digest = Sha256::digest(&self.der);
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
    }

    /// The key as a verifier key string (`<name>+<key id, hex>+<base64 of 0x02 and
    /// the DER key>`, the form of Go's `golang.org/x/mod/sumdb/note`): the one line
    /// an auditor pins.
    pub fn vkey(&self) -> String {
        let mut blob = vec![SIGNATURE_TYPE_ECDSA];
        blob.extend_from_slice(&self.der);
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id(),
            BASE64.encode(blob)
        )
    }

    /// Reads a verifier key string ([`Self::vkey`]); its key id must be its key's.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let bad = NoteError::Malformed("a verifier key is <name>+<key id>+<base64 key>");
        // The base64 key may hold '+' itself: only the first two separate.
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(blob)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad);
        };
        let id = u32::from_str_radix(id, 16).map_err(|_| bad.clone())?;
        let blob = BASE64.decode(blob).map_err(|_| bad.clone())?;
        let Some((&SIGNATURE_TYPE_ECDSA, der)) = blob.split_first() else {
            return Err(NoteError::Malformed(
                "the verifier key is not an ECDSA (type 0x02) key",
            ));
        };
        let key = Self::new(name, der.to_vec())?;
        if key.key_id() != id {
            return Err(NoteError::Malformed(
                "the verifier key's id is not its key's",
            ));
        }
        Ok(key)
    }

    /// The SHA-256 of the DER key, hex: what an auditor compares with the one the
    /// operator published when the key was created.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.der))
    }
}

/// A signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// ECDSA, ASN.1 DER (for type 0x02 keys).
    pub signature: Vec<u8>,
}

/// A signed note: text, blank line, signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// A note of `text` with one signature by `key` (`signature` is DER ECDSA over
    /// the text).
    pub fn signed(text: String, key: &PublicKey, signature: Vec<u8>) -> Self {
        Self {
            text,
            signatures: vec![NoteSignature {
                name: key.name.clone(),
                key_id: key.key_id(),
                signature,
            }],
        }
    }

    /// Adds `key`'s signature of the same text (a key rollover: the retiring key and
    /// its successor both sign the first checkpoints of the new one).
    pub fn cosign(mut self, key: &PublicKey, signature: Vec<u8>) -> Self {
        self.signatures.push(NoteSignature {
            name: key.name.clone(),
            key_id: key.key_id(),
            signature,
        });
        self
    }

    pub fn encode(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            let mut blob = s.key_id.to_be_bytes().to_vec();
            blob.extend_from_slice(&s.signature);
            out.push_str(&format!("\u{2014} {} {}\n", s.name, BASE64.encode(blob)));
        }
        out
    }

    pub fn parse(note: &str) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed("longer than 64 KiB"));
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed(
                "a control character other than newline",
            ));
        }
        // The text ends at the last blank line; it keeps its final newline.
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, signature_block) = (&note[..=split], &note[split + 2..]);
        let lines = signature_block
            .strip_suffix('\n')
            .ok_or(NoteError::Malformed(
                "the last signature line has no newline",
            ))?;
        let mut signatures = Vec::new();
        for line in lines.split('\n') {
            let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed(
                "a signature line does not start with '— '",
            ))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("a signature line without a signature"))?;
            let blob = BASE64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            if name.is_empty() || blob.len() < 5 {
                return Err(NoteError::Malformed("a signature line is too short"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
                signature: blob[4..].to_vec(),
            });
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed("more than 16 signatures"));
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note's text if `key` signed it. Signatures of other keys are ignored (the
    /// spec), but one that claims to be the pinned key and fails rejects the note.
    pub fn verify(&self, key: &PublicKey) -> Result<&str, NoteError> {
        let verifier = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key.der);
        let mut verified = false;
        for s in &self.signatures {
            if s.name != key.name || s.key_id != key.key_id() {
                continue;
            }
            verifier
                .verify(self.text.as_bytes(), &s.signature)
                .map_err(|_| NoteError::BadSignature {
                    name: s.name.clone(),
                    key_id: s.key_id,
                })?;
            verified = true;
        }
        if !verified {
            return Err(NoteError::NotSignedByPinnedKey {
                name: key.name.clone(),
                key_id: key.key_id(),
            });
        }
        Ok(&self.text)
    }
}

/// The checkpoint of `note` and which of `keys` signed it (each index once; none is
/// an empty list). A signature that claims the first key (the pinned one) and does
/// not verify rejects the note: it was altered. One that claims another key and
/// fails only does not count (its 4-byte key id may collide with a planted key's).
pub fn checkpoint_signers(
    note: &str,
    keys: &[PublicKey],
) -> Result<(Checkpoint, Vec<usize>), NoteError> {
    let note = SignedNote::parse(note)?;
    let mut signers = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        match note.verify(key) {
            Ok(_) => signers.push(i),
            Err(NoteError::NotSignedByPinnedKey { .. }) => {}
            Err(_) if i > 0 => {}
            Err(e) => return Err(e),
        }
    }
    let checkpoint = Checkpoint::parse(&note.text)?;
    if let Some(key) = keys.first()
        && checkpoint.origin != key.name
    {
        return Err(NoteError::WrongOrigin {
            expected: key.name.clone(),
            found: checkpoint.origin,
        });
    }
    Ok((checkpoint, signers))
}

/// Parses and verifies a signed checkpoint against the pinned key: the signature,
/// then that the checkpoint is of the key's log.
pub fn verify_checkpoint(note: &str, key: &PublicKey) -> Result<Checkpoint, NoteError> {
    let note = SignedNote::parse(note)?;
    let checkpoint = Checkpoint::parse(note.verify(key)?)?;
    if checkpoint.origin != key.name {
        return Err(NoteError::WrongOrigin {
            expected: key.name.clone(),
            found: checkpoint.origin,
        });
    }
    Ok(checkpoint)
}

#[cfg(test)]
pub(crate) mod tests {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};

    use super::*;
    use crate::merkle::leaf_hash;

    /// A signer standing in for KMS (same algorithm, same DER output).
    pub(crate) struct TestSigner {
        pair: EcdsaKeyPair,
        pub key: PublicKey,
    }

    impl TestSigner {
        pub(crate) fn new(name: &str) -> Self {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
            let der = pair.public_key().as_der().unwrap().as_ref().to_vec();
            let key = PublicKey::new(name, der).unwrap();
            Self { pair, key }
        }

        pub(crate) fn sign(&self, checkpoint: &Checkpoint) -> String {
            let text = checkpoint.body();
            let sig = self
                .pair
                .sign(&SystemRandom::new(), text.as_bytes())
                .unwrap();
            SignedNote::signed(text, &self.key, sig.as_ref().to_vec()).encode()
        }

        /// `checkpoint` signed by `self` and then `successor` (a key rollover).
        pub(crate) fn sign_with(&self, successor: &TestSigner, checkpoint: &Checkpoint) -> String {
            let text = checkpoint.body();
            let sig = |pair: &EcdsaKeyPair| {
                pair.sign(&SystemRandom::new(), text.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec()
            };
            SignedNote::signed(text.clone(), &self.key, sig(&self.pair))
                .cosign(&successor.key, sig(&successor.pair))
                .encode()
        }
    }

    pub(crate) fn checkpoint(origin: &str, size: u64) -> Checkpoint {
        Checkpoint {
            origin: origin.to_owned(),
            size,
            root: leaf_hash(format!("root {size}").as_bytes()),
            time: DateTime::parse_from_rfc3339("2026-12-02T14:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_against_its_pinned_key() {
        let signer = TestSigner::new("ticketbound.example/prod");
        let cp = checkpoint("ticketbound.example/prod", 42);
        let note = signer.sign(&cp);
        assert!(note.starts_with("ticketbound.example/prod\n42\n"));
        assert!(note.contains("\n\n\u{2014} ticketbound.example/prod "));
        assert_eq!(verify_checkpoint(&note, &signer.key).unwrap(), cp);
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_rejected() {
        let honest = TestSigner::new("ticketbound.example/prod");
        let insider = TestSigner::new("ticketbound.example/prod");
        let note = insider.sign(&checkpoint("ticketbound.example/prod", 42));
        assert!(matches!(
            verify_checkpoint(&note, &honest.key),
            Err(NoteError::NotSignedByPinnedKey { .. })
        ));
    }

    #[test]
    fn an_altered_checkpoint_fails_its_signature() {
        let signer = TestSigner::new("log");
        let note = signer.sign(&checkpoint("log", 42));
        let altered = note.replacen("\n42\n", "\n41\n", 1);
        assert!(matches!(
            verify_checkpoint(&altered, &signer.key),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_forged_signature_under_the_pinned_name_and_id_rejects_the_note() {
        let signer = TestSigner::new("log");
        let cp = checkpoint("log", 7);
        let honest = SignedNote::parse(&signer.sign(&cp)).unwrap();
        let mut forged = honest.clone();
        forged.signatures.push(NoteSignature {
            signature: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
            ..honest.signatures[0].clone()
        });
        assert!(matches!(
            verify_checkpoint(&forged.encode(), &signer.key),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_checkpoint_of_another_log_is_refused() {
        let signer = TestSigner::new("log-a");
        let note = signer.sign(&checkpoint("log-b", 3));
        assert!(matches!(
            verify_checkpoint(&note, &signer.key),
            Err(NoteError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn malformed_notes_and_keys_are_named() {
        let signer = TestSigner::new("log");
        let note = signer.sign(&checkpoint("log", 3));
        for (bad, why) in [
            (note.replace("\n\n", "\n"), "no blank line"),
            (note.replace('\u{2014}', "-"), "does not start with"),
            (format!("{note}\u{7}"), "control character"),
        ] {
            let err = SignedNote::parse(&bad).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        }
        let body = checkpoint("log", 3).body();
        for (bad, why) in [
            (body.replacen("\n3\n", "\n03\n", 1), "decimal"),
            (body.replacen("\n3\n", "\n-3\n", 1), "decimal"),
            (body.replace("time ", "tame "), "no time line"),
            (body.trim_end().to_owned(), "newline"),
        ] {
            let err = Checkpoint::parse(&bad).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        }
        assert_eq!(
            PublicKey::new("log", b"not a key".to_vec()),
            Err(NoteError::BadKey)
        );
        assert!(PublicKey::new("two words", signer.key.der().to_vec()).is_err());
    }

    #[test]
    fn a_verifier_key_string_round_trips_and_a_wrong_id_is_refused() {
        let signer = TestSigner::new("ticketbound.example/prod");
        let vkey = signer.key.vkey();
        assert!(vkey.starts_with(&format!(
            "ticketbound.example/prod+{:08x}+",
            signer.key.key_id()
        )));
        assert_eq!(PublicKey::from_vkey(&vkey).unwrap(), signer.key);
        let wrong = vkey.replacen(&format!("+{:08x}+", signer.key.key_id()), "+00000000+", 1);
        assert!(PublicKey::from_vkey(&wrong).is_err());
        assert!(PublicKey::from_vkey("log+1234").is_err());
    }

    #[test]
    fn the_key_id_is_the_c2sp_ecdsa_one() {
        let signer = TestSigner::new("log");
        let digest = Sha256::digest(signer.key.der());
        assert_eq!(signer.key.key_id().to_be_bytes(), digest[..4]);
        assert_eq!(signer.key.fingerprint(), hex::encode(digest));
    }
}
