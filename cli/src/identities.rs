//! `ticketbound identities …`: the identity registry, managed by operators.
//!
//! Every change goes through [`Registry`] (the same path `local up` seeds the local
//! registry by, and a Terraform seed calls): checked first, then written with its
//! event in one transaction. The actor recorded is the one `--by` names (the
//! operator's own account name by default); the authoritative record of who wrote the
//! table is CloudTrail's, since anyone who may write the table may also say anything.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::Utc;
use ticketbound_domain::{
    Actor, Environment, IdentityKind, IdentityName, Owner, Principal, RegisteredIdentity,
    RegistryEntry, SystemId, verify_identity_chain,
};
use ticketbound_store::{Registry, RegistryError};

use crate::error::CliError;
use crate::grants::{chain_json, chain_verdict, print_json};

/// The operator a change is recorded under.
pub fn actor(by: Option<String>) -> Actor {
    let name = by
        .or_else(|| std::env::var("USER").ok())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "operator".to_owned());
    Actor::operator(&name)
}

/// What `identities add` was told.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The identity's name, as tickets name it.
    #[arg(long)]
    pub name: String,
    /// service_account, api_key, token, database_credential, certificate, delegated_access.
    #[arg(long)]
    pub kind: String,
    /// Who answers for it.
    #[arg(long)]
    pub owner: String,
    /// A workload allowed to read its credential (an IAM role ARN); repeat for more.
    #[arg(long = "principal", required = true)]
    pub principals: Vec<String>,
    /// A target it may be granted access at; repeat for more.
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// prod or non-prod; repeat for both.
    #[arg(long = "environment", required = true)]
    pub environments: Vec<String>,
    /// The longest grant it may hold.
    #[arg(long)]
    pub max_ttl_hours: Option<u32>,
    /// It may be granted outside the normal approval (break-glass).
    #[arg(long)]
    pub break_glass: bool,
}

impl AddArgs {
    /// The definition, every bad value named at once.
    fn definition(self) -> Result<RegisteredIdentity, CliError> {
        let mut problems = Vec::new();
        let mut note = |flag: &str, value: &str, why: String| {
            problems.push(format!("--{flag} {value:?}: {why}"));
        };
        let name = IdentityName::new(&self.name)
            .map_err(|e| note("name", &self.name, e.0))
            .ok();
        let kind: Option<IdentityKind> =
            serde_json::from_value(serde_json::Value::String(self.kind.clone()))
                .map_err(|_| {
                    note(
                        "kind",
                        &self.kind,
                        "must be one of service_account, api_key, token, database_credential, certificate, delegated_access".into(),
                    )
                })
                .ok();
        let owner = Owner::new(&self.owner)
            .map_err(|e| note("owner", &self.owner, e.0))
            .ok();
        let mut principals = BTreeSet::new();
        for p in &self.principals {
            match Principal::new(p) {
                Ok(p) => {
                    principals.insert(p);
                }
                Err(e) => note("principal", p, e.0),
            }
        }
        let mut targets = BTreeSet::new();
        for t in &self.targets {
            match SystemId::new(t) {
                Ok(t) => {
                    targets.insert(t);
                }
                Err(e) => note("target", t, e.0),
            }
        }
        let mut environments = BTreeSet::new();
        for e in &self.environments {
            match serde_json::from_value::<Environment>(serde_json::Value::String(e.clone())) {
                Ok(e) => {
                    environments.insert(e);
                }
                Err(_) => note("environment", e, "must be prod or non-prod".into()),
            }
        }
        match (name, kind, owner) {
            (Some(name), Some(kind), Some(owner)) if problems.is_empty() => {
                Ok(RegisteredIdentity {
                    name,
                    kind,
                    owner,
                    workload_principals: principals,
                    targets,
                    environments,
                    max_ttl_hours: self.max_ttl_hours,
                    break_glass_eligible: self.break_glass,
                })
            }
            _ => Err(CliError::Event(problems.join("; "))),
        }
    }
}

fn registry_error(e: RegistryError) -> CliError {
    match e {
        RegistryError::Store(e) => CliError::Store(e),
        e @ RegistryError::Tampered { .. } => CliError::Evidence(e.to_string()),
        other => CliError::Event(other.to_string()),
    }
}

fn parse_name(name: &str) -> Result<IdentityName, CliError> {
    IdentityName::new(name).map_err(|e| CliError::Event(format!("{name:?}: {e}")))
}

/// Registers a new identity (`update: false`: one of that name already registered is
/// refused, so that nobody replaces another team's identity by adding theirs), or
/// updates a registered one to exactly what is given.
pub async fn add(
    registry: &Registry,
    args: AddArgs,
    by: Option<String>,
    update: bool,
) -> Result<(), CliError> {
    let definition = args.definition()?;
    let name = definition.name.clone();
    let (actor, now) = (actor(by), Utc::now());
    let applied = if update {
        registry.update(definition, &actor, now).await
    } else {
        registry.register(definition, &actor, now).await
    }
    .map_err(registry_error)?;
    println!("identity {name}: {}", applied.as_str());
    Ok(())
}

/// Imports a JSON file holding an array of definitions (see
/// `tests/fixtures/registry/identities.json`): all are checked before any is written.
pub async fn import(registry: &Registry, file: &Path, by: Option<String>) -> Result<(), CliError> {
    let bytes =
        std::fs::read(file).map_err(|e| CliError::Event(format!("{}: {e}", file.display())))?;
    let definitions: Vec<RegisteredIdentity> = serde_json::from_slice(&bytes)
        .map_err(|e| CliError::Event(format!("{}: {e}", file.display())))?;
    let applied = registry
        .import(definitions, &actor(by), Utc::now())
        .await
        .map_err(registry_error)?;
    for (name, what) in &applied {
        println!("identity {name}: {}", what.as_str());
    }
    println!(
        "{} identit{} in the file",
        applied.len(),
        if applied.len() == 1 { "y" } else { "ies" }
    );
    Ok(())
}

pub async fn retire(
    registry: &Registry,
    name: &str,
    reason: &str,
    by: Option<String>,
) -> Result<(), CliError> {
    let name = parse_name(name)?;
    registry
        .retire(&name, &actor(by), Utc::now(), reason)
        .await
        .map_err(registry_error)?;
    println!(
        "identity {name}: retired; no grant is made for it again (live grants run to their end)"
    );
    Ok(())
}

pub async fn list(registry: &Registry, json: bool) -> Result<(), CliError> {
    let entries = registry.list().await?;
    if json {
        return print_json(&entries);
    }
    println!(
        "{:<24}  {:<8}  {:<20}  {:<24}  {:<16}  principals",
        "identity", "status", "kind", "owner", "environments"
    );
    for e in &entries {
        let r = &e.identity;
        println!(
            "{:<24}  {:<8}  {:<20}  {:<24}  {:<16}  {}",
            r.name.as_str(),
            e.status.as_str(),
            r.kind.as_str(),
            r.owner.as_str(),
            join(r.environments.iter().map(|e| e.as_str())),
            r.workload_principals.len()
        );
    }
    println!(
        "{} identit{}",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" }
    );
    Ok(())
}

/// One identity with its chain of changes, verified; non-zero exit when it breaks.
pub async fn show(registry: &Registry, name: &str, json: bool) -> Result<(), CliError> {
    let name = parse_name(name)?;
    let entry: RegistryEntry = registry
        .get(&name)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("identity {name}")))?;
    let events = registry.events(&name).await?;
    let chain = verify_identity_chain(&name, &events, Some(&entry));
    if json {
        let out = serde_json::json!({
            "entry": entry,
            "events": events,
            "chain": chain_json(&chain),
        });
        print_json(&out)?;
    } else {
        let r = &entry.identity;
        println!("identity {} ({})", r.name, entry.status.as_str());
        println!("  kind          {}", r.kind.as_str());
        println!("  owner         {}", r.owner);
        println!(
            "  principals    {}",
            join(r.workload_principals.iter().map(Principal::as_str))
        );
        println!(
            "  targets       {}",
            join(r.targets.iter().map(SystemId::as_str))
        );
        println!(
            "  environments  {}",
            join(r.environments.iter().map(|e| e.as_str()))
        );
        if let Some(h) = r.max_ttl_hours {
            println!("  max TTL       {h} hours");
        }
        println!(
            "  break-glass   {}",
            if r.break_glass_eligible {
                "eligible"
            } else {
                "no"
            }
        );
        println!("  changes");
        for e in &events {
            println!(
                "    #{:<3} {} {:<10} by {}{}",
                e.seq,
                e.at.format("%Y-%m-%d %H:%M:%S"),
                e.action.as_str(),
                e.actor.id,
                e.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
    }
    chain_verdict(chain, !json)
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
