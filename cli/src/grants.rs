//! `ticketbound grants list` and `grants show`: what the grants table records.

use ticketbound_domain::{Grant, GrantId, GrantState, Owner, verify_chain};

use crate::context::Context;
use crate::error::CliError;

/// Grants, newest first, filtered by state and owner.
pub async fn list(
    ctx: &Context,
    state: Option<GrantState>,
    owner: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let mut grants: Vec<Grant> = match (&owner, state) {
        (Some(owner), _) => {
            let owner =
                Owner::new(owner.clone()).map_err(|e| CliError::Event(format!("--owner: {e}")))?;
            ctx.store.grants_for_owner(&owner).await?
        }
        (None, Some(state)) => ctx.store.grants_due(state, None).await?,
        (None, None) => {
            let mut all = Vec::new();
            for state in <GrantState as strum::IntoEnumIterator>::iter() {
                all.extend(ctx.store.grants_due(state, None).await?);
            }
            all
        }
    };
    if let Some(state) = state {
        grants.retain(|g| g.state == state);
    }
    grants.sort_by_key(|g| std::cmp::Reverse(g.id));
    if json {
        return print_json(&grants);
    }
    println!(
        "{:<26}  {:<12}  {:<22}  {:<16}  {:<12}  {:<20}  owner",
        "grant", "state", "ticket", "identity", "target", "not after (UTC)"
    );
    for g in &grants {
        let r = &g.request;
        println!(
            "{:<26}  {:<12}  {:<22}  {:<16}  {:<12}  {:<20}  {}",
            g.id,
            g.state.as_str(),
            r.ticket.qualified_key(),
            r.identity.name.as_str(),
            r.target.system_id.as_str(),
            g.not_after().format("%Y-%m-%d %H:%M:%S"),
            r.identity.owner
        );
    }
    println!("{} grant(s)", grants.len());
    Ok(())
}

/// One grant, its audit trail and whether the chain verifies.
pub async fn show(ctx: &Context, id: GrantId, json: bool) -> Result<(), CliError> {
    let (grant, trail) = ctx
        .store
        .grant_with_trail(id)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("grant {id}")))?;
    let chain = verify_chain(id, &trail, Some(&grant.audit_head));
    if json {
        let out = serde_json::json!({
            "grant": grant,
            "audit": trail,
            "chain": chain_json(&chain),
        });
        print_json(&out)?;
    } else {
        let r = &grant.request;
        println!("grant {} ({})", grant.id, grant.state);
        println!("  ticket      {}", r.ticket.qualified_key());
        println!(
            "  identity    {} ({}), owner {}, used by {}",
            r.identity.name,
            r.identity.kind.as_str(),
            r.identity.owner,
            r.identity.workload_principal
        );
        println!(
            "  target      {} [{}], scope {}",
            r.target.system_id, r.target.environment, r.scope
        );
        println!("  not after   {}", grant.not_after().to_rfc3339());
        if let Some(c) = &grant.credential {
            println!(
                "  credential  {} (login {})",
                c.secret_arn, c.principal_name
            );
        }
        if let Some(at) = grant.last_rotated_at {
            println!("  rotated     {}", at.to_rfc3339());
        }
        if let Some(cause) = grant.end_cause {
            println!("  ended       by {}", cause.describe());
        }
        println!("  audit trail");
        for e in &trail {
            let details: Vec<String> = e.details.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "    #{:<3} {} {:<22} {:<24} {}",
                e.seq,
                e.at.format("%Y-%m-%d %H:%M:%S"),
                e.action.as_str(),
                e.actor.id,
                details.join(", ")
            );
        }
    }
    chain_verdict(chain, !json)
}

/// A chain's verification as `grants show --json` and `identities show --json` print it.
pub fn chain_json<E: std::fmt::Display>(
    chain: &Result<ticketbound_domain::ChainHead, E>,
) -> serde_json::Value {
    match chain {
        Ok(head) => {
            serde_json::json!({"verified": true, "events": head.seq, "head": head.hash.to_hex()})
        }
        Err(e) => serde_json::json!({"verified": false, "problem": e.to_string()}),
    }
}

/// How a `show` ends: the chain's verdict (as a line of text unless JSON was asked
/// for, where `chain_json` carries it), and a broken chain a non-zero exit.
pub fn chain_verdict<E: std::fmt::Display>(
    chain: Result<ticketbound_domain::ChainHead, E>,
    text: bool,
) -> Result<(), CliError> {
    if text {
        match &chain {
            Ok(head) => println!(
                "  chain verified: {} events, head {}",
                head.seq,
                head.hash.to_hex()
            ),
            Err(e) => println!("  CHAIN BROKEN: {e}"),
        }
    }
    chain
        .map(|_| ())
        .map_err(|e| CliError::Evidence(e.to_string()))
}

/// Prints `value` as indented JSON.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(json_error)?
    );
    Ok(())
}

pub fn json_error(e: serde_json::Error) -> CliError {
    CliError::Event(format!("could not write JSON: {e}"))
}
