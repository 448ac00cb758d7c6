//! `ticketbound inventory`: the registry's identities with their owners and live
//! access, and what ticketbound does not manage at the targets and in Secrets Manager,
//! as a table or as JSON. Read only.

use grant_reconcile::inventory::{Inventory, InventoryFilter, LiveGrant};

use crate::context::Context;
use crate::error::CliError;

pub async fn run(ctx: &Context, filter: &InventoryFilter, json: bool) -> Result<(), CliError> {
    let deps = ctx.reconciler()?;
    let inventory = grant_reconcile::inventory::inventory(&deps, filter)
        .await
        .map_err(|e| CliError::Function(Box::new(e)))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&inventory).map_err(crate::grants::json_error)?
        );
        return Ok(());
    }
    print!("{}", render(&inventory));
    Ok(())
}

fn live_line(g: &LiveGrant) -> String {
    format!(
        "    {} {} at {} ({}) until {}; last rotated {}; grant {}\n",
        g.state.as_str(),
        g.ticket,
        g.target,
        g.scope.join(", "),
        g.not_after.format("%Y-%m-%d %H:%M UTC"),
        g.last_rotated_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "never".into()),
        g.grant_id
    )
}

/// The inventory for a person.
fn render(inv: &Inventory) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "registered identities: {}\n",
        inv.identities.len()
    ));
    for id in &inv.identities {
        out.push_str(&format!(
            "  {} ({}, {}), owner {}, targets {}; last review: {}\n",
            id.name,
            id.kind,
            id.status,
            id.owner,
            id.targets.join(", "),
            id.last_review
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never (recurring access review is not built yet)".into())
        ));
        if id.live.is_empty() {
            out.push_str("    no live grant\n");
        }
        for g in &id.live {
            out.push_str(&live_line(g));
        }
    }
    if !inv.unregistered.is_empty() {
        out.push_str(&format!(
            "{} live grant(s) of identities the registry does not hold\n",
            inv.unregistered.len()
        ));
        for g in &inv.unregistered {
            out.push_str(&live_line(g));
        }
    }
    for (identity, why) in &inv.unverified {
        out.push_str(&format!(
            "registry record {identity} does not verify ({why}): not shown\n"
        ));
    }
    let logins: usize = inv.unmanaged.logins.values().map(Vec::len).sum();
    out.push_str(&format!(
        "unmanaged (listed, never touched; {}): {logins} login(s), {} secret(s)\n",
        inv.unmanaged_scope,
        inv.unmanaged.secrets.len()
    ));
    for (system, list) in &inv.unmanaged.logins {
        for login in list {
            let powers = login.powers();
            out.push_str(&format!(
                "  login  {system}/{}{}; member of [{}]; {}; {} session(s)\n",
                login.name,
                if powers.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", powers.join(", "))
                },
                login
                    .member_of
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                grant_reconcile::inventory::valid_until_words(login.valid_until),
                login.sessions
            ));
        }
    }
    for secret in &inv.unmanaged.secrets {
        out.push_str(&format!(
            "  secret {} ({}); last read {}\n",
            secret.name,
            secret
                .looks_like
                .as_deref()
                .unwrap_or("no metadata says credential"),
            secret
                .last_accessed
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "never".into())
        ));
    }
    out
}
