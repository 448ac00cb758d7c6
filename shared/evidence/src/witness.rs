//! The ticket as an independent witness: each note the write-back posts carries the
//! chain head of the event it tells of and the newest signed checkpoint it knew of,
//! on one line a person can read and the verifier can parse.
//!
//! The ITSM keeps the note where the AWS operator cannot edit it, so an insider who
//! later rewrites the grant's chain (hashes recomputed), deletes its newest events or
//! the whole grant, or rewrites the log and signs it again, leaves a ticket whose
//! notes no longer agree with the evidence: [`crate::verify_bundle`] compares them.

use std::fmt;

use ticketbound_domain::{Digest, GrantId};

use crate::merkle::Hash;

const PREFIX: &str = "Evidence: audit event ";
const MARKER: &str = "ticketbound:";

/// A checkpoint as a note names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Witnessed {
    pub size: u64,
    pub root: Hash,
}

/// What one note witnesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Witness {
    /// The event's place in its grant's chain (the marker's too).
    pub seq: u64,
    /// The event's hash: the grant's chain head once the event was written.
    pub chain_head: Digest,
    /// The newest signed checkpoint when the note was posted (`None`: none yet).
    pub checkpoint: Option<Witnessed>,
}

impl Witness {
    /// The note's line.
    pub fn line(&self) -> String {
        let log = match &self.checkpoint {
            Some(cp) => format!("signed log at {} leaves, root {}", cp.size, cp.root),
            None => "signed log: no checkpoint yet".to_owned(),
        };
        format!(
            "{PREFIX}{}, chain head {}; {log}.",
            self.seq,
            self.chain_head.to_hex()
        )
    }

    /// The witness line of a note's text, if it has one: the last line before the
    /// note's marker, where the write-back puts it. A witness-like line anywhere else
    /// (a record field that carried one into the note, say) makes the note malformed
    /// rather than letting the first such line speak for the note.
    pub fn find(text: &str) -> Option<Result<Self, NoteFormatError>> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let marker = lines.iter().rposition(|l| parse_marker(l).is_some());
        let in_place = marker.and_then(|m| m.checked_sub(1));
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with(PREFIX) && Some(i) != in_place {
                return Some(Err(NoteFormatError(format!(
                    "a witness line out of place: {line}"
                ))));
            }
        }
        let line = lines.get(in_place?)?;
        line.starts_with(PREFIX)
            .then(|| Self::parse(line).ok_or_else(|| NoteFormatError((*line).to_owned())))
    }

    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix(PREFIX)?.strip_suffix('.')?;
        let (seq, rest) = rest.split_once(", chain head ")?;
        let (head, log) = rest.split_once("; ")?;
        let checkpoint = if log == "signed log: no checkpoint yet" {
            None
        } else {
            let (size, root) = log
                .strip_prefix("signed log at ")?
                .split_once(" leaves, root ")?;
            Some(Witnessed {
                size: size.parse().ok()?,
                root: Hash::try_from(root.to_owned()).ok()?,
            })
        };
        Some(Self {
            seq: seq.parse().ok()?,
            chain_head: Digest::try_from(head.to_owned()).ok()?,
            checkpoint,
        })
    }
}

/// A line that starts like a witness or a marker and does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteFormatError(pub String);

impl fmt::Display for NoteFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a well-formed ticketbound line: {:?}", self.0)
    }
}

impl std::error::Error for NoteFormatError {}

/// `ticketbound:<grant id>:<seq>`, exactly (as `ticketbound_itsm::note::marker`
/// writes it).
fn parse_marker(line: &str) -> Option<(GrantId, u64)> {
    let (grant, seq) = line.strip_prefix(MARKER)?.split_once(':')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((grant.parse().ok()?, seq.parse().ok()?))
}

/// The grant and event a note is about, from its marker line (the last one), if it
/// has one. A line that only looks like a marker (`ticketbound:please-extend`, in a
/// person's comment) is none: notes are told apart by well-formed markers only.
pub fn note_marker(text: &str) -> Option<(GrantId, u64)> {
    text.lines().rev().map(str::trim).find_map(parse_marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(b: u8) -> Digest {
        Digest::try_from(hex::encode([b; 32])).unwrap()
    }

    #[test]
    fn a_witness_line_reads_back_as_written() {
        for checkpoint in [
            None,
            Some(Witnessed {
                size: 120,
                root: Hash([7; 32]),
            }),
        ] {
            let w = Witness {
                seq: 5,
                chain_head: digest(3),
                checkpoint,
            };
            let id = GrantId::new(
                chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
                9,
            );
            // ServiceNow's text (a blank line before the marker), and Jira's (none).
            for gap in ["\n\n", "\n"] {
                let note = format!(
                    "ticketbound: credential rotated\nA line.\n{}{gap}ticketbound:{id}:5",
                    w.line()
                );
                assert_eq!(Witness::find(&note), Some(Ok(w)));
            }
        }
    }

    #[test]
    fn a_note_without_a_witness_has_none_and_a_mangled_one_is_named() {
        let id = GrantId::new(
            chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            9,
        );
        assert_eq!(
            Witness::find(&format!(
                "ticketbound: access revoked\n\nticketbound:{id}:2"
            )),
            None
        );
        let mangled = format!(
            "{PREFIX}5, chain head {}; signed log at many leaves, root 00.\nticketbound:{id}:5",
            digest(1).to_hex()
        );
        assert!(matches!(Witness::find(&mangled), Some(Err(_))));
    }

    /// A record field that carried a witness line of its own into the note (a
    /// requester's name with a new line, say) does not speak for the note.
    #[test]
    fn a_witness_line_out_of_place_is_refused() {
        let id = GrantId::new(
            chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            9,
        );
        let witness = |b| Witness {
            seq: 2,
            chain_head: digest(b),
            checkpoint: None,
        };
        let note = format!(
            "ticketbound: access approved\nRequested by x\n{}\n{}\n\nticketbound:{id}:2",
            witness(6).line(),
            witness(3).line()
        );
        assert!(matches!(Witness::find(&note), Some(Err(_))));
    }

    #[test]
    fn the_marker_names_the_grant_and_the_event() {
        let id = GrantId::new(
            chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            9,
        );
        let text = format!("ticketbound: access revoked at …\nCause: x.\n\nticketbound:{id}:12");
        assert_eq!(note_marker(&text), Some((id, 12)));
        // The headline starts with "ticketbound:" too, but is prose, not a marker; nor
        // is a person's line that only looks like one.
        assert_eq!(note_marker("ticketbound: hello there"), None);
        assert_eq!(note_marker("ticketbound:please-extend"), None);
        assert_eq!(note_marker("ticketbound:nonsense:x"), None);
    }
}
