//! `ticketbound evidence <ticket> --bundle <dir>` and `ticketbound verify <dir>`: a
//! ticket's evidence as files an auditor takes away, and their verification with no
//! AWS access at all.
//!
//! The bundle (`bundle.json`) holds the ticket's grants with their recorded chain
//! heads and every audit event, the signed log's leaves up to now, and the newest
//! signed checkpoints as the bucket keeps them; `public-key.vkey` is the key the
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

/// Writes the bundle of `ticket` into `dir`.
pub async fn write(ctx: &Context, ticket: &str, dir: &Path) -> Result<Bundle, CliError> {
    let (log, bucket) = ctx.log()?;
    let mut bundle = None;
    for t in crate::evidence::tickets(ticket)? {
        let b = log_checkpoint::bundle::assemble(&ctx.store, &log, &bucket, &t)
            .await
            .map_err(failed)?;
        if !b.grants.is_empty() {
            bundle = Some(b);
            break;
        }
    }
    let bundle = bundle.ok_or_else(|| CliError::NotFound(format!("grant for ticket {ticket}")))?;
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
) -> Result<ticketbound_evidence::Verified, CliError> {
    let file = dir.join(BUNDLE_FILE);
    let bundle: Bundle = serde_json::from_slice(&std::fs::read(&file).map_err(io(&file))?)
        .map_err(|e| CliError::Evidence(format!("{}: {e}", file.display())))?;
    let latest = latest
        .map(|p| std::fs::read_to_string(p).map_err(io(p)))
        .transpose()?;
    let trust = Trust {
        key,
        ticket,
        latest: latest.as_deref(),
    };
    verify_bundle(&bundle, &trust).map_err(|e| CliError::Evidence(e.to_string()))
}
