//! `ticketbound evidence <ticket> --bundle <dir>` and `ticketbound verify <dir>`: a
//! ticket's evidence as files an auditor takes away, and their verification with no
//! AWS access at all.
//!
//! The bundle (`bundle.json`) holds the ticket's grants with their recorded chain
//! heads and every audit event, the signed log's leaves up to now, the newest
//! signed checkpoints as the bucket keeps them, and the ticket's notes as the ITSM
//! gives them back (each of ticketbound's names a chain head and a checkpoint); `public-key.vkey` is the key the
//! bucket keeps beside them, for reference only: a key inside a bundle certifies
//! nothing, so `verify` takes the auditor's own (`--key`), and the newest checkpoint
//! they fetched themselves (`--latest`), which the bundle must reach.

use std::path::Path;

use ticketbound_anchor::PUBLIC_KEY_OBJECT;
use ticketbound_evidence::{Bundle, PublicKey, Trust, verify_bundle};

use crate::context::Context;
use crate::error::CliError;

pub const BUNDLE_FILE: &str = "bundle.json";
pub const KEY_FILE: &str = "public-key.vkey";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |e| CliError::Evidence(format!("{}: {e}", path.display()))
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> CliError {
    CliError::Evidence(ticketbound_runtime::error_chain(&e))
}

/// The bundle of `ticket`, as the tables, the bucket and the ITSM hold it now.
///
/// The ticket's notes are read first and the tables and the bucket after: whatever
/// a note names (an event, a checkpoint) was written before the note, so it is in
/// what is read later, and an event told to the ticket meanwhile is not mistaken for
/// one deleted from the table.
pub async fn assemble(ctx: &Context, ticket: &str) -> Result<Bundle, CliError> {
    let (log, bucket) = ctx.log()?;
    let mut found = None;
    for t in crate::evidence::tickets(ticket)? {
        if !ctx.store.grants_for_ticket(&t).await?.is_empty() {
            found = Some(t);
            break;
        }
    }
    let found = found.ok_or_else(|| CliError::NotFound(format!("grant for ticket {ticket}")))?;
    // The ticket's own notes, read back from the ITSM: its witness of the chains and
    // the log.
    let notes = ticket_writeback::notes_of(&ctx.writeback()?, &found)
        .await
        .map_err(failed)?;
    let mut bundle = log_checkpoint::bundle::assemble(&ctx.store, &log, &bucket, &found)
        .await
        .map_err(failed)?;
    bundle.notes = notes;
    Ok(bundle)
}

/// Writes the bundle of `ticket` into `dir`.
pub async fn write(ctx: &Context, ticket: &str, dir: &Path) -> Result<Bundle, CliError> {
    let bundle = assemble(ctx, ticket).await?;
    let (_, bucket) = ctx.log()?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let file = dir.join(BUNDLE_FILE);
    let json = serde_json::to_vec_pretty(&bundle).map_err(|e| CliError::Evidence(e.to_string()))?;
    std::fs::write(&file, json).map_err(io(&file))?;
    // For reference beside the bundle (the auditor verifies with their own).
    if let Some(der) = bucket.get(PUBLIC_KEY_OBJECT).await.map_err(failed)? {
        let origin = bundle
            .checkpoints
            .last()
            .and_then(|n| n.lines().next())
            .unwrap_or_default()
            .to_owned();
        if let Ok(key) = PublicKey::new(&origin, der) {
            let file = dir.join(KEY_FILE);
            std::fs::write(&file, key.vkey()).map_err(io(&file))?;
        }
    }
    Ok(bundle)
}

/// One line of what a verification established.
pub fn verified_summary(v: &ticketbound_evidence::Verified, key: &PublicKey) -> String {
    format!(
        "ticket {}, {} grant(s), {} event(s), {} note(s) of the ticket agreeing with them{}, anchored in checkpoint {} of {} (signed {}, key {})",
        v.ticket,
        v.grants,
        v.events,
        v.notes_witnessed,
        if v.notes_unwitnessed > 0 {
            format!(
                " ({} older note(s) name no chain head)",
                v.notes_unwitnessed
            )
        } else {
            String::new()
        },
        v.checkpoint.size,
        v.checkpoint.origin,
        v.checkpoint.time.to_rfc3339(),
        &key.fingerprint()[..16]
    ) + if v.notes_read_by_auditor {
        "; the notes are the auditor's own read of the ticket"
    } else {
        "; the notes are the bundle's copy (bring your own read of the ticket with --notes)"
    } + &v
        .rollovers
        .iter()
        .map(|r| {
            format!(
                "; the key rolled over at checkpoint {} to key {}",
                r.size,
                &r.fingerprint[..16]
            )
        })
        .collect::<String>()
}

/// The pinned key: a verifier key string, or a file holding one.
pub fn pinned_key(key: &str) -> Result<PublicKey, CliError> {
    let text = if Path::new(key).is_file() {
        std::fs::read_to_string(key).map_err(io(Path::new(key)))?
    } else {
        key.to_owned()
    };
    PublicKey::from_vkey(&text).map_err(|e| CliError::Evidence(format!("--key: {e}")))
}

/// Verifies the bundle in `dir`; the error names the first thing that fails.
pub fn verify(
    dir: &Path,
    key: &PublicKey,
    ticket: &str,
    latest: Option<&Path>,
    notes: Option<&Path>,
) -> Result<ticketbound_evidence::Verified, CliError> {
    let file = dir.join(BUNDLE_FILE);
    let bundle: Bundle = serde_json::from_slice(&std::fs::read(&file).map_err(io(&file))?)
        .map_err(|e| CliError::Evidence(format!("{}: {e}", file.display())))?;
    let latest = latest
        .map(|p| std::fs::read_to_string(p).map_err(io(p)))
        .transpose()?;
    // The auditor's own read of the ticket's notes: a JSON array of their texts.
    let notes: Option<Vec<String>> = notes
        .map(|p| {
            serde_json::from_slice(&std::fs::read(p).map_err(io(p))?).map_err(|e| {
                CliError::Evidence(format!(
                    "{}: a JSON array of the ticket's notes' texts: {e}",
                    p.display()
                ))
            })
        })
        .transpose()?;
    let trust = Trust {
        key,
        ticket,
        latest: latest.as_deref(),
        notes: notes.as_deref(),
    };
    verify_bundle(&bundle, &trust).map_err(|e| CliError::Evidence(e.to_string()))
}
