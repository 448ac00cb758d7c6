//! `ticketbound evidence <ticket>`: for one ticket, what an auditor needs to see that
//! the access it approved was given, used within its bounds and taken away.
//!
//! For each grant of the ticket: the timeline from its audit trail (requested,
//! approved by whom, the policy decision and its policy ids, what was provisioned,
//! each rotation, the end and its trigger, each write-back to the ticket), the hash
//! chain verified against the head the grant record holds, the live state checked now
//! (secret and logins), and the notes the ticket itself holds. Then the controls this
//! evidences, mapped to NIST CSF 2.0 and the OWASP Non-Human Identity Top 10.
//!
//! Exits non-zero when a chain fails to verify (naming where it breaks) or when the
//! live state contradicts the record.

use chrono::{DateTime, Utc};
use serde::Serialize;
use ticketbound_domain::Detail;
use ticketbound_domain::{
    AuditAction, AuditEvent, Grant, GrantState, SourceSystem, Ticket, TicketKey, verify_chain,
};

use ticketbound_evidence::{PublicKey, Trust, verify_bundle};

use crate::context::{Context, interactive};
use crate::error::CliError;
use crate::grants::json_error;

#[derive(Debug, Serialize)]
pub(crate) struct Evidence {
    pub ticket: String,
    pub generated_at: DateTime<Utc>,
    pub verdict: &'static str,
    /// The signed log's verification against the pinned key (`--key`), if one was
    /// given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_log: Option<SignedLog>,
    pub grants: Vec<GrantEvidence>,
    pub controls: &'static [Control],
}

/// The verdict when every check holds.
pub(crate) const CONSISTENT: &str = "consistent";

#[derive(Debug, Serialize)]
pub(crate) struct SignedLog {
    pub verified: bool,
    /// What was verified, or the first thing that failed.
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct GrantEvidence {
    pub grant_id: String,
    pub state: GrantState,
    pub identity: String,
    pub owner: String,
    pub target: String,
    pub scope: String,
    pub not_after: DateTime<Utc>,
    pub timeline: Vec<Step>,
    /// The milestones of the timeline picture.
    pub marks: Vec<Mark>,
    pub chain: Chain,
    pub live: Live,
    pub ticket_notes: Vec<String>,
    pub dead_letters: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Step {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub action: AuditAction,
    pub actor: String,
    pub summary: String,
}

/// A milestone of a grant's life, as the timeline draws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Milestone {
    Requested,
    Approved,
    Denied,
    Issued,
    Rotated,
    NotAfter,
    Revoked,
    /// Checked at the target after the revocation: nothing of the credential lives.
    ProvenDead,
    /// A step that failed (provisioning, a revocation attempt) or drift found.
    Failed,
}

impl Milestone {
    pub fn as_class(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Issued => "issued",
            Self::Rotated => "rotated",
            Self::NotAfter => "not-after",
            Self::Revoked => "revoked",
            Self::ProvenDead => "proven-dead",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Mark {
    pub at: DateTime<Utc>,
    pub milestone: Milestone,
    pub label: String,
}

/// The milestones of `trail`, and the not-after time once a credential was issued.
fn marks(grant: &Grant, trail: &[AuditEvent]) -> Vec<Mark> {
    let mark = |at, milestone, label: &str| Mark {
        at,
        milestone,
        label: label.to_owned(),
    };
    let mut out = Vec::new();
    for e in trail {
        let detail = |k: Detail| e.detail(k);
        match e.action {
            AuditAction::Requested => out.push(mark(e.at, Milestone::Requested, "requested")),
            AuditAction::PolicyEvaluated if detail(Detail::Decision) == Some("allow") => {
                out.push(mark(e.at, Milestone::Approved, "approved"));
            }
            AuditAction::PolicyEvaluated => out.push(mark(e.at, Milestone::Denied, "denied")),
            AuditAction::Provisioned => out.push(mark(e.at, Milestone::Issued, "issued")),
            AuditAction::Rotated => out.push(mark(e.at, Milestone::Rotated, "rotated")),
            AuditAction::Revoked => {
                out.push(mark(e.at, Milestone::Revoked, "revoked"));
                if detail(Detail::VerifiedAtTarget).is_some() {
                    out.push(mark(
                        e.at,
                        Milestone::ProvenDead,
                        "proven dead at the target",
                    ));
                }
            }
            AuditAction::ProvisioningFailed => {
                out.push(mark(e.at, Milestone::Failed, "provisioning failed"));
            }
            AuditAction::RevocationFailed => {
                out.push(mark(e.at, Milestone::Failed, "revocation attempt failed"));
            }
            AuditAction::DriftFound => out.push(mark(e.at, Milestone::Failed, "drift found")),
            // The deferral to the change window's start is in the trail; the issue
            // that follows it is the milestone.
            AuditAction::Rejected
            | AuditAction::ProvisioningDeferred
            | AuditAction::ProvisioningStarted
            | AuditAction::RotationRefused
            | AuditAction::RevocationStarted
            | AuditAction::TicketUpdated
            | AuditAction::TicketUpdateFailed => {}
        }
    }
    if out.iter().any(|m| m.milestone == Milestone::Issued) {
        out.push(mark(grant.not_after(), Milestone::NotAfter, "not after"));
    }
    out
}

#[derive(Debug, Serialize)]
pub(crate) struct Chain {
    pub verified: bool,
    pub events: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_at_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Live {
    pub checked_at: DateTime<Utc>,
    pub secret_exists: bool,
    pub logins: Vec<String>,
    pub can_log_in: bool,
    pub expected: &'static str,
    pub consistent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Control {
    pub framework: &'static str,
    pub id: &'static str,
    pub name: &'static str,
    pub evidenced_by: &'static str,
}

const CONTROLS: &[Control] = &[
    Control {
        framework: "NIST CSF 2.0",
        id: "PR.AA-01",
        name: "Identities and credentials are managed",
        evidenced_by: "one credential per approved grant, its owner, its secret, rotation and revocation in the timeline",
    },
    Control {
        framework: "NIST CSF 2.0",
        id: "PR.AA-05",
        name: "Access permissions are defined in policy, least privilege, separation of duties",
        evidenced_by: "the policy decision with its policy ids; the scope within the target's allow-list; approvers other than the requester",
    },
    Control {
        framework: "NIST CSF 2.0",
        id: "PR.PS-04",
        name: "Log records are generated and made available for continuous monitoring",
        evidenced_by: "the hash-chained audit trail, verified here, and the notes written back to the ticket",
    },
    Control {
        framework: "NIST CSF 2.0",
        id: "DE.CM-03",
        name: "Technology usage is monitored to find adverse events",
        evidenced_by: "the live state checked now against the record; the reconciler's findings in the trail",
    },
    Control {
        framework: "OWASP NHI Top 10 (2025)",
        id: "NHI1",
        name: "Improper Offboarding",
        evidenced_by: "revocation on time (or on withdrawal) with its trigger, logins dropped and sessions terminated; nothing alive after",
    },
    Control {
        framework: "OWASP NHI Top 10 (2025)",
        id: "NHI2",
        name: "Secret Leakage",
        evidenced_by: "the value lives only in Secrets Manager behind a deny-others resource policy; no value in any note or audit event",
    },
    Control {
        framework: "OWASP NHI Top 10 (2025)",
        id: "NHI5",
        name: "Overprivileged NHI",
        evidenced_by: "the scope named role by role, allow-listed, never superuser; scope drift reported by the reconciler",
    },
    Control {
        framework: "OWASP NHI Top 10 (2025)",
        id: "NHI7",
        name: "Long-Lived Secrets",
        evidenced_by: "a not-after time enforced by schedule, TTL backstop and VALID UNTIL; rotation while live",
    },
    Control {
        framework: "OWASP NHI Top 10 (2025)",
        id: "NHI9",
        name: "NHI Reuse",
        evidenced_by: "a login and a secret of its own for each grant; overlapping grants share nothing",
    },
];

/// `jira#OPS-123`, or a bare key tried in every ITSM.
pub(crate) fn tickets(key: &str) -> Result<Vec<Ticket>, CliError> {
    let (sources, key) = match key.split_once('#') {
        Some((source, key)) => {
            let source: SourceSystem =
                serde_json::from_value(serde_json::json!(source)).map_err(|_| {
                    CliError::Event(format!(
                        "unknown ITSM {source:?}: use jira#KEY, servicenow#NUMBER or generic#KEY"
                    ))
                })?;
            (vec![source], key)
        }
        None => (
            vec![
                SourceSystem::Jira,
                SourceSystem::Servicenow,
                SourceSystem::Generic,
            ],
            key,
        ),
    };
    let key = TicketKey::new(key).map_err(|e| CliError::Event(format!("ticket key: {e}")))?;
    Ok(sources
        .into_iter()
        .map(|source| Ticket {
            source,
            key: key.clone(),
            link: None,
        })
        .collect())
}

fn summary(e: &AuditEvent) -> String {
    let d = |k: Detail| e.detail(k).unwrap_or_default().to_owned();
    match e.action {
        AuditAction::Requested => {
            // Grants recorded before read-back carry no verification detail: they
            // were believed on the sender's word.
            let verified = match e.detail(Detail::VerifiedAgainst) {
                Some("itsm_api") => "read back from the ITSM's API",
                _ => "on the sender's signature only (not read back from the ITSM)",
            };
            format!(
                "access requested, approval {verified}; approved by {}",
                d(Detail::ApprovedBy)
            )
        }
        AuditAction::PolicyEvaluated => format!(
            "policy decision: {} (policies: {}; policy set sha256 {}){}",
            d(Detail::Decision),
            d(Detail::PolicyIds),
            e.detail(Detail::PolicySetSha256).unwrap_or("not recorded"),
            e.detail(Detail::Reasons)
                .filter(|r| !r.is_empty())
                .map(|r| format!("; {r}"))
                .unwrap_or_default()
        ),
        AuditAction::Provisioned => format!(
            "provisioned login {} with secret {}; rotation {}",
            d(Detail::Principal),
            d(Detail::SecretArn),
            d(Detail::Rotation)
        ),
        AuditAction::Rotated => format!(
            "rotated: version {} current (was {}), login {}",
            d(Detail::CurrentVersion),
            d(Detail::PreviousVersion),
            d(Detail::Login)
        ),
        AuditAction::RevocationStarted | AuditAction::Revoked => format!(
            "{} (trigger: {}){}{}",
            e.action,
            d(Detail::Trigger),
            e.detail(Detail::RolesDropped)
                .map(|r| format!(
                    "; logins dropped {r}, sessions terminated {}",
                    d(Detail::SessionsTerminated)
                ))
                .unwrap_or_default(),
            e.detail(Detail::VerifiedAtTarget)
                .map(|v| format!("; verified at the target: {v}"))
                .unwrap_or_default()
        ),
        AuditAction::TicketUpdated => format!(
            "ticket told of event #{} ({}) in {} as {}",
            d(Detail::AboutSeq),
            d(Detail::About),
            d(Detail::System),
            d(Detail::Reference)
        ),
        AuditAction::TicketUpdateFailed => format!(
            "ticket NOT told of event #{} ({}): {}",
            d(Detail::AboutSeq),
            d(Detail::About),
            d(Detail::Reason)
        ),
        AuditAction::DriftFound => format!("drift: {} {}", d(Detail::Kind), d(Detail::Finding)),
        _ => e
            .details
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

async fn grant_evidence(
    ctx: &Context,
    reconciler: &grant_reconcile::Deps,
    writeback: &ticket_writeback::Deps,
    grant: &Grant,
) -> Result<GrantEvidence, CliError> {
    // The grant as of its trail: the write-back may have added to both since the
    // grant was listed.
    let (grant, trail) = ctx
        .store
        .grant_with_trail(grant.id)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("grant {}", grant.id)))?;
    let grant = &grant;
    let chain = match verify_chain(grant.id, &trail, Some(&grant.audit_head)) {
        Ok(head) => Chain {
            verified: true,
            events: head.seq,
            head: Some(head.hash.to_hex()),
            break_at_seq: None,
            problem: None,
        },
        Err(e) => Chain {
            verified: false,
            events: trail.len() as u64,
            head: None,
            break_at_seq: Some(e.seq),
            problem: Some(e.to_string()),
        },
    };

    let now = Utc::now();
    let state = reconciler
        .enforcer
        .inspect(grant)
        .await
        .map_err(|e| CliError::Function(Box::new(e)))?;
    let can_log_in = state.can_log_in(now);
    let live_expected = grant.state == GrantState::Active && !grant.is_expired_at(now);
    let has_logins = reconciler
        .enforcer
        .settings
        .targets
        .0
        .get(grant.request.target.system_id.as_str())
        .is_some_and(ticketbound_enforce::TargetConfig::has_logins);
    let (expected, problem) = match grant.state {
        GrantState::Approved | GrantState::Provisioning => ("being provisioned", None),
        GrantState::Revoking => ("being revoked", None),
        _ if live_expected => (
            "a secret and a login that works",
            (state.secret.is_none() || (has_logins && !can_log_in)).then(|| {
                "the grant is Active but its credential is missing or does not work".to_owned()
            }),
        ),
        _ => (
            "nothing alive",
            state
                .anything_alive()
                .then(|| "the grant has ended but its credential lives on".to_owned()),
        ),
    };

    let marker = format!("ticketbound:{}:", grant.id);
    let notes = ticket_writeback::read_notes(writeback, grant)
        .await
        .map_err(|e| CliError::Function(Box::new(e)))?;
    let r = &grant.request;
    Ok(GrantEvidence {
        grant_id: grant.id.to_string(),
        state: grant.state,
        identity: format!("{} ({})", r.identity.name, r.identity.kind.as_str()),
        owner: r.identity.owner.to_string(),
        target: format!("{} [{}]", r.target.system_id, r.target.environment),
        scope: r.scope.to_string(),
        not_after: grant.not_after(),
        timeline: trail
            .iter()
            .map(|e| Step {
                seq: e.seq,
                at: e.at,
                action: e.action,
                actor: e.actor.id.clone(),
                summary: summary(e),
            })
            .collect(),
        marks: marks(grant, &trail),
        chain,
        live: Live {
            checked_at: now,
            secret_exists: state.secret.is_some(),
            logins: state.logins.iter().map(|l| l.name.clone()).collect(),
            can_log_in,
            expected,
            consistent: problem.is_none(),
            problem,
        },
        ticket_notes: notes.into_iter().filter(|n| n.contains(&marker)).collect(),
        dead_letters: ctx
            .store
            .dead_writebacks(grant.id)
            .await?
            .into_iter()
            .map(|d| format!("event #{}: {}", d.seq, d.reason.unwrap_or_default()))
            .collect(),
    })
}

/// How `evidence` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Json,
    /// One self-contained HTML page (`report`).
    Html,
}

pub async fn run(
    ctx: &Context,
    ticket: &str,
    format: Format,
    key: Option<&PublicKey>,
) -> Result<(), CliError> {
    let out = build(ctx, ticket, key).await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(json_error)?
        ),
        Format::Md => print_markdown(&out),
        Format::Html => print!("{}", crate::report::render(&out)),
    }
    if let Some(g) = out.grants.iter().find(|g| !g.chain.verified) {
        return Err(CliError::Evidence(format!(
            "the audit chain of grant {} breaks at event #{}: {}",
            g.grant_id,
            g.chain.break_at_seq.unwrap_or_default(),
            g.chain.problem.clone().unwrap_or_default()
        )));
    }
    if let Some(log) = out.signed_log.as_ref().filter(|l| !l.verified) {
        return Err(CliError::Evidence(format!(
            "the signed log does not verify: {}",
            log.summary
        )));
    }
    if let Some(g) = out.grants.iter().find(|g| !g.live.consistent) {
        return Err(CliError::Evidence(format!(
            "grant {}: {}",
            g.grant_id,
            g.live.problem.clone().unwrap_or_default()
        )));
    }
    Ok(())
}

/// The evidence of `ticket`, checked now (and its signed log against `key`, if given).
pub(crate) async fn build(
    ctx: &Context,
    ticket: &str,
    key: Option<&PublicKey>,
) -> Result<Evidence, CliError> {
    let reconciler = ctx.reconciler()?;
    let writeback = ctx.writeback()?;
    let mut grants = Vec::new();
    let mut qualified = ticket.to_owned();
    for t in tickets(ticket)? {
        let found = ctx.store.grants_for_ticket(&t).await?;
        if !found.is_empty() {
            qualified = t.qualified_key();
            grants = found;
            break;
        }
    }
    if grants.is_empty() {
        return Err(CliError::NotFound(format!("grant for ticket {ticket}")));
    }
    grants.sort_by_key(|g| g.id);
    let mut evidence = Vec::new();
    for (n, grant) in grants.iter().enumerate() {
        if interactive() {
            eprintln!(
                "checking grant {} ({}/{}): audit chain, live state, ticket notes…",
                grant.id,
                n + 1,
                grants.len()
            );
        }
        evidence.push(grant_evidence(ctx, &reconciler, &writeback, grant).await?);
    }
    let signed_log = match key {
        Some(key) => Some(signed_log(ctx, ticket, &qualified, key).await?),
        None => None,
    };
    let broken = evidence.iter().find(|g| !g.chain.verified);
    let contradicted = evidence.iter().find(|g| !g.live.consistent);
    let unsigned = signed_log.as_ref().filter(|l| !l.verified);
    let out = Evidence {
        ticket: qualified,
        generated_at: Utc::now(),
        verdict: match (broken, unsigned, contradicted) {
            (Some(_), _, _) => "audit chain broken",
            (None, Some(_), _) => "the signed log contradicts the record",
            (None, None, Some(_)) => "live state contradicts the record",
            (None, None, None) => CONSISTENT,
        },
        signed_log,
        grants: evidence,
        controls: CONTROLS,
    };
    Ok(out)
}

/// The ticket's bundle, verified as `ticketbound verify` would, against the pinned key
/// and the bucket's newest checkpoint.
async fn signed_log(
    ctx: &Context,
    ticket: &str,
    qualified: &str,
    key: &PublicKey,
) -> Result<SignedLog, CliError> {
    // The newest checkpoint first, as an auditor fetches it: the log read after it
    // reaches it (one signed in between would leave the bundle short of it).
    let (_, bucket) = ctx.log()?;
    let latest = log_checkpoint::bundle::newest_checkpoint(&bucket)
        .await
        .map_err(|e| CliError::Evidence(ticketbound_runtime::error_chain(&e)))?;
    let bundle = crate::bundle::assemble(ctx, ticket).await?;
    let trust = Trust {
        key,
        ticket: qualified,
        latest: latest.as_deref(),
        notes: None,
    };
    Ok(match verify_bundle(&bundle, &trust) {
        Ok(v) => SignedLog {
            verified: true,
            summary: crate::bundle::verified_summary(&v, key),
        },
        Err(e) => SignedLog {
            verified: false,
            summary: e.to_string(),
        },
    })
}

fn print_markdown(e: &Evidence) {
    println!("# Evidence for {}", e.ticket);
    println!();
    println!(
        "Generated {} by ticketbound. Verdict: **{}**.",
        e.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        e.verdict
    );
    if let Some(log) = &e.signed_log {
        println!();
        println!(
            "Signed log: {} {}",
            if log.verified {
                "**verified**:"
            } else {
                "**DOES NOT VERIFY**:"
            },
            log.summary
        );
    }
    for g in &e.grants {
        println!();
        println!("## Grant {} ({})", g.grant_id, g.state);
        println!();
        println!("- identity: {}, owner {}", g.identity, g.owner);
        println!("- target: {}, scope {}", g.target, g.scope);
        println!(
            "- not after: {}",
            g.not_after.format("%Y-%m-%d %H:%M:%S UTC")
        );
        println!();
        println!("### Timeline");
        println!();
        println!("| # | time (UTC) | step | by | what |");
        println!("| --- | --- | --- | --- | --- |");
        for s in &g.timeline {
            println!(
                "| {} | {} | {} | {} | {} |",
                s.seq,
                s.at.format("%Y-%m-%d %H:%M:%S"),
                s.action,
                s.actor,
                s.summary.replace('|', "\\|")
            );
        }
        println!();
        match (&g.chain.head, &g.chain.problem) {
            (Some(head), _) => println!(
                "Audit chain: **verified**, {} events, head `{}`.",
                g.chain.events, head
            ),
            (None, problem) => println!(
                "Audit chain: **BROKEN** at event #{}: {}.",
                g.chain.break_at_seq.unwrap_or_default(),
                problem.clone().unwrap_or_default()
            ),
        }
        println!();
        println!(
            "Live state at {}: secret {}, logins {}, a login works: {}. Expected: {}. {}",
            g.live.checked_at.format("%H:%M:%S UTC"),
            if g.live.secret_exists {
                "present"
            } else {
                "absent"
            },
            if g.live.logins.is_empty() {
                "none".to_owned()
            } else {
                g.live.logins.join(", ")
            },
            if g.live.can_log_in { "yes" } else { "no" },
            g.live.expected,
            match &g.live.problem {
                None => "**Consistent with the record.**".to_owned(),
                Some(p) => format!("**CONTRADICTS THE RECORD: {p}.**"),
            }
        );
        println!();
        println!("### Notes the ticket received ({})", g.ticket_notes.len());
        for note in &g.ticket_notes {
            println!();
            for line in note.lines() {
                println!("> {line}");
            }
        }
        if !g.dead_letters.is_empty() {
            println!();
            println!("Write-backs that failed for good (dead-letter records):");
            for d in &g.dead_letters {
                println!("- {d}");
            }
        }
    }
    println!();
    println!("## Controls evidenced");
    println!();
    println!("| framework | control | evidenced by |");
    println!("| --- | --- | --- |");
    for c in e.controls {
        println!(
            "| {} | {} {} | {} |",
            c.framework, c.id, c.name, c.evidenced_by
        );
    }
}
