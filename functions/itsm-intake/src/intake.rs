//! What the intake does with an interpreted event, whatever transport brought it.

use std::collections::BTreeMap;
use ticketbound_domain::Detail;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use ticketbound_domain::{
    AccessRequest, Actor, AuditAction, AuditEvent, AuditRecord, EndCause, FieldError, Grant,
    GrantEvent, GrantId, GrantState, IdentityName, LifecycleRules, Registration, RequestDraft,
    SourceSystem, Ticket, ValidationErrors, Verification,
};
use ticketbound_itsm::{InboundError, TicketEnd, TicketEnded};
use ticketbound_policy::{PolicyDecision, PolicyEngine, PolicyError};
use ticketbound_secrets::SecretsError;
use ticketbound_store::{AdvanceError, Delivery, RegistryError, StoreError};

use crate::config::TargetKinds;
use crate::{COMPONENT, Deps};

/// What happened to an event. Serialised as the HTTP answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Recorded: Approved (to be provisioned) or Rejected by policy, with why.
    Accepted {
        grant_id: String,
        state: GrantState,
        policy_ids: Vec<String>,
        reasons: Vec<String>,
    },
    /// Seen before: the grant it produced then.
    Duplicate {
        grant_id: String,
        state: Option<GrantState>,
    },
    /// The ticket already has a live grant for different content.
    Conflict { grant_id: String, problem: String },
    /// The ticket ended; these grants moved toward revocation.
    TicketEnded { ticket: String, grants: Vec<String> },
    /// The approval came after its ticket's withdrawal: nothing was made.
    Withdrawn {
        ticket: String,
        withdrawn_at: Option<DateTime<Utc>>,
        problem: String,
    },
    /// Nothing for ticketbound in this event.
    Ignored { why: String },
    /// The event is not acceptable; nothing was written.
    Invalid { errors: Vec<FieldError> },
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("a configuration secret could not be read")]
    SecretsManager(#[from] SecretsError),
    #[error("the policies could not be evaluated")]
    Policy(#[from] PolicyError),
    #[error("a grant could not take the ticket's end")]
    Advance(#[from] AdvanceError),
    #[error("the identity registry could not be read")]
    Registry(#[source] RegistryError),
    #[error("the approval could not be read back from the ITSM")]
    ReadBack(#[source] ticketbound_itsm::outbound::PostError),
}

impl IntakeError {
    /// True when the sender should try again later (HTTP 503, or a failed Lambda
    /// invocation that EventBridge retries).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::SecretsManager(e) => e.is_retryable(),
            Self::Advance(e) => e.is_retryable(),
            Self::Registry(e) => e.is_retryable(),
            // Unavailable or throttled: nothing was decided, and the sender's retry
            // is read back again. A refusal of our reader (401/403, a request that is
            // not JSM's) is not retried: the operator is alerted by ReadBackFailed.
            Self::ReadBack(e) => e.is_retryable(),
            Self::Policy(_) => false,
        }
    }
}

/// Which delivery brought the event.
#[derive(Debug, Clone)]
pub struct DeliveryRef {
    /// `jira`, `servicenow`, `generic`, `eventbridge`.
    pub integration: &'static str,
    /// The system the sender speaks for (EventBridge: generic).
    pub sender: SourceSystem,
    /// The sender's delivery id, or the body's hash when it sends none.
    pub id: String,
    pub content_hash: String,
}

pub fn body_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn field_error(e: &InboundError) -> FieldError {
    FieldError {
        field: e.field_name().unwrap_or("body").to_owned(),
        problem: match e {
            InboundError::Field { problem, .. } => problem.clone(),
            InboundError::NotJson(why) => format!("is not JSON: {why}"),
        },
    }
}

/// A request ready to record: validated, evaluated, with its deterministic id.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: AccessRequest,
    pub decision: PolicyDecision,
    /// SHA-256 of the normalised request: equal for the same approval however often,
    /// and under whichever delivery id, it arrives.
    pub content_hash: String,
    pub grant_id: GrantId,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// The grant id of a request: a ULID timed at its approval, with entropy from the
/// ticket and the request's content, so the same approval always names the same grant.
pub fn grant_id_for(request: &AccessRequest, content_hash: &str) -> GrantId {
    let digest = Sha256::digest(format!(
        "{}\n{content_hash}",
        request.ticket.qualified_key()
    ));
    let mut entropy = [0u8; 16];
    entropy.copy_from_slice(&digest[..16]);
    GrantId::new(
        request.approved_at().unwrap_or_default(),
        u128::from_be_bytes(entropy),
    )
}

/// Validation and policy: the pure part of accepting an approval. The target's
/// connector and environment come from `targets`, the identity's owner and workload
/// from the registry (`registration`: what it holds for the draft's identity),
/// never from the request.
///
/// `verification` says how the draft was checked, and `discounted` (approver name →
/// why) which of its approvals do not count; both are recorded in the request, so
/// they are part of its content.
pub fn prepare(
    draft: &RequestDraft,
    targets: &TargetKinds,
    registration: Registration<'_>,
    policy: &PolicyEngine,
    now: DateTime<Utc>,
    verification: Verification,
    discounted: &BTreeMap<String, String>,
) -> Result<Prepared, PrepareError> {
    let mut request = draft.validate_for(now, |system| targets.facts_of(system), registration)?;
    request.verification = verification;
    for approval in &mut request.approvals {
        approval.discounted = discounted.get(approval.approver.as_str()).cloned();
    }
    let canonical = serde_json::to_vec(&request).unwrap_or_default();
    let content_hash = body_hash(&canonical);
    let mut decision = policy.evaluate_request(&request, now)?;
    // Whatever policies an operator loads: an approval that does not count, or the
    // ticket's creator, never makes a request allowed.
    let counting: Vec<_> = request.approvals.iter().filter(|a| a.counts()).collect();
    if decision.allowed {
        if counting.is_empty() {
            decision.allowed = false;
            decision
                .reasons
                .push("no approval on the ticket counts".to_owned());
        } else if let Some(creator) = &request.creator
            && counting.iter().any(|a| a.approver == *creator)
        {
            decision.allowed = false;
            decision
                .reasons
                .push("whoever created the ticket must not be one of its approvers".to_owned());
        }
    }
    let grant_id = grant_id_for(&request, &content_hash);
    Ok(Prepared {
        request,
        decision,
        content_hash,
        grant_id,
    })
}

fn requested_record(
    request: &AccessRequest,
    delivery: &DeliveryRef,
    now: DateTime<Utc>,
) -> AuditRecord {
    let approvers: Vec<String> = request
        .approvals
        .iter()
        .map(|a| {
            let mut line = format!("{} at {}", a.approver, a.approved_at.to_rfc3339());
            if let Some(why) = &a.discounted {
                line.push_str(&format!(" (not counted: {why})"));
            }
            line
        })
        .collect();
    let mut record = AuditRecord::new(
        now,
        Actor::itsm_user(request.requester.as_str()),
        AuditAction::Requested,
    )
    .detail(Detail::Ticket, request.ticket.qualified_key())
    .detail(Detail::VerifiedAgainst, request.verification.as_str())
    .detail(Detail::ApprovedBy, approvers.join("; "))
    .detail(Detail::Identity, &request.identity.name)
    .detail(Detail::IdentityKind, request.identity.kind.as_str())
    .detail(Detail::Owner, &request.identity.owner)
    .detail(
        Detail::WorkloadPrincipal,
        &request.identity.workload_principal,
    )
    .detail(Detail::Target, &request.target.system_id)
    .detail(Detail::Connector, request.target.connector.as_str())
    .detail(Detail::Environment, request.target.environment)
    .detail(Detail::Scope, &request.scope)
    .detail(Detail::NotAfter, request.not_after.to_rfc3339())
    .detail(Detail::Justification, &request.justification)
    .detail(
        Detail::RevocationTrigger,
        request.revocation_trigger.as_str(),
    )
    .detail(
        Detail::RotationPeriodHours,
        request.rotation_period.as_hours(),
    )
    .detail(
        Detail::Delivery,
        format!("{}:{}", delivery.integration, delivery.id),
    );
    if let Some(link) = &request.ticket.link {
        record = record.detail(Detail::TicketLink, link);
    }
    if let Some(creator) = &request.creator {
        record = record.detail(Detail::Creator, creator.as_str());
    }
    if let Some(w) = request.change_window {
        record = record.detail(
            Detail::ChangeWindow,
            format!("{} to {}", w.start.to_rfc3339(), w.end.to_rfc3339()),
        );
    }
    record
}

/// Accepts an approval: answers a known delivery or approval with its grant, refuses
/// invalid content and conflicting re-approvals, else records a grant (Approved or
/// Rejected by policy) with its audit events and the delivery, in one transaction.
pub async fn accept_approval(
    deps: &Deps,
    draft: &RequestDraft,
    delivery: &DeliveryRef,
    now: DateTime<Utc>,
) -> Result<Outcome, IntakeError> {
    let store = &deps.store;
    if let Some(seen) = store
        .find_delivery(delivery.integration, &delivery.id, now)
        .await?
    {
        // A redelivery carries the same body; a delivery id reused for other content
        // is not one, and is refused rather than answered as the first.
        if seen.content_hash != delivery.content_hash {
            tracing::warn!(delivery = %delivery.id, integration = delivery.integration, "delivery id reused for other content");
            return Ok(Outcome::Conflict {
                grant_id: seen.grant_id.to_string(),
                problem: format!(
                    "delivery id {} was received before with other content (grant {}); a redelivery must carry the same body",
                    delivery.id, seen.grant_id
                ),
            });
        }
        let state = store.get_grant(seen.grant_id).await?.map(|g| g.state);
        return Ok(Outcome::Duplicate {
            grant_id: seen.grant_id.to_string(),
            state,
        });
    }
    // What the ITSM itself says, in place of what the event says.
    let checked = match crate::readback::check(deps, delivery.sender, draft).await? {
        Ok(checked) => checked,
        Err(errors) => return Ok(Outcome::Invalid { errors }),
    };
    let draft = &checked.draft;
    // The registry's word on the identity the ticket names (a name that is not one
    // is reported by validation, beside every other problem).
    let entry = match draft.identity.name.as_deref().map(IdentityName::new) {
        Some(Ok(name)) => match deps.registry.get_checked(&name).await {
            Ok(entry) => entry,
            // An entry changed by other means than the registry's own path is not
            // believed: the approval is refused, and the operator is told.
            Err(RegistryError::Tampered { identity, why }) => {
                tracing::error!(identity = %identity, why = %why, "identity registry entry does not verify; approval refused");
                ticketbound_runtime::metrics::count(COMPONENT, "RegistryTampered", 1);
                return Ok(Outcome::Invalid {
                    errors: vec![FieldError {
                        field: "identity.name".to_owned(),
                        problem: format!(
                            "is {identity}, whose registry record does not verify; no grant is made for it until an operator repairs it"
                        ),
                    }],
                });
            }
            Err(RegistryError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(IntakeError::Registry(e)),
        },
        _ => None,
    };
    let registration = Registration::of(entry.as_ref());
    let prepared = match prepare(
        draft,
        &deps.config.targets,
        registration,
        deps.policy.get()?,
        now,
        checked.verification,
        &checked.discounted,
    ) {
        Ok(p) => p,
        Err(PrepareError::Invalid(errors)) => return Ok(Outcome::Invalid { errors: errors.0 }),
        Err(PrepareError::Policy(e)) => return Err(e.into()),
    };

    if let Some(w) = store.withdrawal(&prepared.request.ticket).await? {
        return Ok(withdrawn(&w.ticket, Some(w.withdrawn_at)));
    }
    let existing = store.grants_for_ticket(&prepared.request.ticket).await?;
    if let Some(same) = existing.iter().find(|g| g.id == prepared.grant_id) {
        return Ok(Outcome::Duplicate {
            grant_id: same.id.to_string(),
            state: Some(same.state),
        });
    }
    if let Some(live) = existing
        .iter()
        .find(|g| !g.state.is_terminal() && g.state != GrantState::Failed)
    {
        return Ok(Outcome::Conflict {
            grant_id: live.id.to_string(),
            problem: format!(
                "ticket {} already has live grant {} for different content; withdraw it before approving changed content",
                prepared.request.ticket.qualified_key(),
                live.id
            ),
        });
    }

    let Prepared {
        request,
        decision,
        grant_id,
        ..
    } = prepared;
    let requested = requested_record(&request, delivery, now);
    let mut grant = if decision.allowed {
        Grant::approved(grant_id, request, now)
    } else {
        Grant::rejected(grant_id, request, decision.reasons.clone(), now)
    };
    let evaluated = AuditRecord::new(
        now,
        Actor::component(COMPONENT),
        AuditAction::PolicyEvaluated,
    )
    .states(None, Some(grant.state))
    .detail(
        Detail::Decision,
        if decision.allowed { "allow" } else { "deny" },
    )
    .detail(Detail::PolicySetSha256, &decision.policy_set_sha256)
    .detail(Detail::PolicyIds, decision.policy_ids.join(", "))
    .detail(Detail::Reasons, decision.reasons.join("; "));
    let events: Vec<AuditEvent> = vec![grant.record(requested), grant.record(evaluated)];
    let record = Delivery {
        source_system: delivery.integration.to_owned(),
        delivery_id: delivery.id.clone(),
        content_hash: delivery.content_hash.clone(),
        grant_id,
        received_at: now,
        expires_at: now + deps.config.delivery_ttl,
    };

    match store
        .create_grant(&grant, &events, Some(&record), now)
        .await
    {
        Ok(()) => {
            tracing::info!(grant_id = %grant_id, state = %grant.state, ticket = %grant.request.ticket.qualified_key(),
                policy_ids = ?decision.policy_ids, "grant recorded");
            Ok(Outcome::Accepted {
                grant_id: grant_id.to_string(),
                state: grant.state,
                policy_ids: decision.policy_ids,
                reasons: decision.reasons,
            })
        }
        // Someone recorded the same approval or the same delivery first.
        Err(StoreError::GrantExists(id)) => Ok(Outcome::Duplicate {
            grant_id: id.to_string(),
            state: store.get_grant(id).await?.map(|g| g.state),
        }),
        // The withdrawal arrived between the check above and the transaction.
        Err(StoreError::TicketWithdrawn(ticket)) => Ok(withdrawn(&ticket, None)),
        Err(StoreError::DuplicateDelivery { .. }) => {
            let id = store
                .find_delivery(delivery.integration, &delivery.id, now)
                .await?
                .map_or(grant_id, |d| d.grant_id);
            Ok(Outcome::Duplicate {
                grant_id: id.to_string(),
                state: store.get_grant(id).await?.map(|g| g.state),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The answer to an approval of a withdrawn ticket.
fn withdrawn(ticket: &str, at: Option<DateTime<Utc>>) -> Outcome {
    tracing::warn!(ticket, withdrawn_at = ?at, "approval of a withdrawn ticket refused");
    Outcome::Withdrawn {
        ticket: ticket.to_owned(),
        withdrawn_at: at,
        problem: format!(
            "ticket {ticket} was withdrawn{}; an approval delivered after it is not provisioned (request again on a new ticket)",
            at.map(|t| format!(" at {}", t.to_rfc3339()))
                .unwrap_or_default()
        ),
    }
}

/// The ticket ended: every grant of it that is not over yet takes the event, each
/// change audited. Replays change nothing. A withdrawal is remembered first, grant
/// or none, so that an approval delivered after it is refused.
pub async fn end_ticket(
    deps: &Deps,
    ended: &TicketEnded,
    now: DateTime<Utc>,
) -> Result<Outcome, IntakeError> {
    let ticket = Ticket {
        source: ended.source,
        key: ended.key.clone(),
        link: None,
    };
    let event = match ended.end {
        TicketEnd::Withdrawn => GrantEvent::TicketWithdrawn,
        TicketEnd::Closed => GrantEvent::TicketClosed,
    };
    if ended.end == TicketEnd::Withdrawn {
        deps.store
            .record_withdrawal(&ticket, &ended.actor, now)
            .await?;
    }
    let rules = LifecycleRules::default();
    let mut changed = Vec::new();
    for grant in deps.store.grants_for_ticket(&ticket).await? {
        if grant.state.is_terminal() {
            continue;
        }
        let id = grant.id;
        let record = |next: &Grant, t: &ticketbound_domain::Transition| {
            let action = if next.state == GrantState::Revoked {
                AuditAction::Revoked
            } else {
                AuditAction::RevocationStarted
            };
            let cause = match next.end_cause {
                Some(EndCause::TicketClosed) => "ticket_closed",
                _ => "ticket_withdrawn",
            };
            let mut r = AuditRecord::new(now, Actor::itsm_user(&ended.actor), action)
                .states(Some(t.from), Some(t.to))
                .detail(Detail::Trigger, cause);
            if let Some(reason) = &ended.reason {
                r = r.detail(Detail::Reason, reason);
            }
            r
        };
        let (_, t) = deps
            .store
            .advance(grant, &event, now, &rules, record)
            .await?;
        if t.changed {
            tracing::info!(grant_id = %id, from = %t.from, to = %t.to, "ticket end applied");
            changed.push(id.to_string());
        }
    }
    Ok(Outcome::TicketEnded {
        ticket: ticket.qualified_key(),
        grants: changed,
    })
}
