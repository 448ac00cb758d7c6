//! An approval read back from the ITSM, and checked against the event that announced
//! it. An inbound event is a hint: whoever holds the webhook key (or may put events
//! on the bus) can say anything in it. What the ITSM's own API answers ticketbound's
//! read-only credentials is what counts: the status, the request fields, who
//! approved and when, and when a request field last changed.
//!
//! Everything here is pure: the vendor modules turn their API's answers into an
//! [`ItsmTicket`]; [`verify`] compares it with the event and keeps the approvals that
//! count; [`ApproverRule`] says whose approval counts for a target.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ticketbound_domain::{ApprovalDraft, FieldError, RequestDraft};

/// A person as the ITSM identifies them: `id` is the stable key (Jira's accountId,
/// ServiceNow's sys_id), `name` how requests name them (an e-mail address or a user
/// name, as the webhook's own mapping reads people).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ApproverRef {
    pub id: String,
    pub name: String,
}

/// One approver's final yes, as the ITSM records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedApproval {
    pub approver: ApproverRef,
    pub approved_at: DateTime<Utc>,
    /// The earliest the approver may have decided: `approved_at` when they alone
    /// decided the round, its opening when several did (JSM dates only the round).
    pub decided_from: DateTime<Utc>,
}

/// The last change of a request field after the ticket was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The ITSM's name of the field (`customfield_10208`, `u_scope`).
    pub field: String,
    pub at: DateTime<Utc>,
}

/// What the ITSM holds for one ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct ItsmTicket {
    /// The status (Jira) or approval state (ServiceNow), as the ITSM names it.
    pub status: String,
    /// Whether that status is the configured approved one.
    pub approved: bool,
    /// The request as the ITSM holds it (its approvals are in `approvals`).
    pub draft: RequestDraft,
    /// Every final approval, whenever it was given.
    pub approvals: Vec<RecordedApproval>,
    /// When a request field last changed, if it ever did after creation.
    pub last_change: Option<FieldChange>,
    /// When the latest approval round that is still open, or was declined, opened:
    /// approvals before it do not count (the issue was moved to Approved past it).
    pub reopened_at: Option<DateTime<Utc>>,
}

/// An approval the ITSM confirmed: the request as the ITSM holds it, with every
/// approver's final approval, and why some of them do not count.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The ITSM's request, its approvals the ITSM's (one per approver).
    pub draft: RequestDraft,
    pub approvals: Vec<RecordedApproval>,
    /// Approver name → why their approval does not count. The grant records these
    /// approvals with the reason, and policy does not see them.
    pub discounted: BTreeMap<String, String>,
}

impl Verified {
    /// The approvals that still count.
    pub fn counting(&self) -> impl Iterator<Item = &RecordedApproval> {
        self.approvals
            .iter()
            .filter(|a| !self.discounted.contains_key(&a.approver.name))
    }
}

/// Compares the event with the ITSM. Every field the event states must be the
/// ITSM's, every approval it names must be one the ITSM holds, and the ticket must be
/// approved in the ITSM now; any difference is a problem naming the field (by its
/// generic path; the intake adds the vendor's field). An approval counts only if it
/// came after the last change of a request field, so a request edited after its
/// approval needs a new one.
pub fn verify(event: &RequestDraft, itsm: &ItsmTicket) -> Result<Verified, Vec<FieldError>> {
    let (e, i) = (event, &itsm.draft);
    let sorted = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    // Each request field, as the event states it and as the ITSM holds it.
    let compared = [
        ("ticket.key", json(&e.ticket.key), json(&i.ticket.key)),
        ("requester", json(&e.requester), json(&i.requester)),
        ("creator", json(&e.creator), json(&i.creator)),
        (
            "identity.kind",
            json(&e.identity.kind),
            json(&i.identity.kind),
        ),
        (
            "identity.name",
            json(&e.identity.name),
            json(&i.identity.name),
        ),
        (
            "identity.owner",
            json(&e.identity.owner),
            json(&i.identity.owner),
        ),
        (
            "identity.workload_principal",
            json(&e.identity.workload_principal),
            json(&i.identity.workload_principal),
        ),
        (
            "target.system_id",
            json(&e.target.system_id),
            json(&i.target.system_id),
        ),
        (
            "target.connector",
            json(&e.target.connector),
            json(&i.target.connector),
        ),
        (
            "target.environment",
            json(&e.target.environment),
            json(&i.target.environment),
        ),
        ("scope", json(&sorted(&e.scope)), json(&sorted(&i.scope))),
        ("not_after", json(&e.not_after), json(&i.not_after)),
        (
            "justification",
            json(&e.justification),
            json(&i.justification),
        ),
        (
            "revocation_trigger",
            json(&e.revocation_trigger),
            json(&i.revocation_trigger),
        ),
        (
            "rotation_period_hours",
            json(&e.rotation_period_hours),
            json(&i.rotation_period_hours),
        ),
        (
            "change_window",
            json(&e.change_window),
            json(&i.change_window),
        ),
    ];
    let mut problems = Vec::new();
    for (field, event, itsm) in compared {
        if event != itsm {
            // The ITSM's value is logged, not answered: whoever holds a webhook key
            // must not read tickets through the intake.
            tracing::warn!(field, event = %event, itsm = %itsm, "the event disagrees with the ITSM");
            problems.push(FieldError {
                field: field.to_owned(),
                problem: format!(
                    "is {event} in the event, which is not what the ITSM holds; the ITSM's record is what counts, and the two must agree"
                ),
            });
        }
    }

    for (n, claimed) in e.approvals.iter().enumerate() {
        let Some(name) = claimed.approver.as_deref() else {
            continue;
        };
        let held = itsm
            .approvals
            .iter()
            .any(|a| a.approver.name == name || a.approver.id == name);
        if !held {
            problems.push(FieldError {
                field: format!("approvals[{n}].approver"),
                problem: format!(
                    "is {name}, whose approval the ITSM does not hold; only the ITSM's approvals count"
                ),
            });
        }
    }
    if !itsm.approved {
        problems.push(FieldError {
            field: "ticket.status".to_owned(),
            problem: format!(
                "is {:?} in the ITSM, not approved; an event cannot approve a ticket the ITSM has not",
                itsm.status
            ),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // One approver counts once: the latest of their approvals (a request with two
    // approval steps may hold two by the same person).
    let mut latest: BTreeMap<&ApproverRef, &RecordedApproval> = BTreeMap::new();
    for approval in &itsm.approvals {
        let entry = latest.entry(&approval.approver).or_insert(approval);
        if approval.approved_at > entry.approved_at {
            *entry = approval;
        }
    }
    let approvals: Vec<RecordedApproval> = latest.into_values().cloned().collect();
    let mut discounted = BTreeMap::new();
    if let Some(reopened) = itsm.reopened_at {
        for approval in approvals.iter().filter(|a| a.approved_at <= reopened) {
            discounted.insert(
                approval.approver.name.clone(),
                format!(
                    "the approval by {} at {} does not count: a later approval round, opened at {}, is pending or was declined",
                    approval.approver.name,
                    approval.approved_at.to_rfc3339(),
                    reopened.to_rfc3339()
                ),
            );
        }
    }
    if let Some(change) = &itsm.last_change {
        for approval in approvals.iter().filter(|a| a.decided_from <= change.at) {
            discounted.insert(
                approval.approver.name.clone(),
                format!(
                    "the approval by {} at {} does not count: {} changed afterwards, at {}, and a changed request needs a new approval",
                    approval.approver.name,
                    approval.approved_at.to_rfc3339(),
                    change.field,
                    change.at.to_rfc3339()
                ),
            );
        }
    }
    // The link too is the ITSM's: a sender must not plant one in the evidence.
    let mut draft = itsm.draft.clone();
    draft.approvals = approvals.iter().map(RecordedApproval::as_draft).collect();
    Ok(Verified {
        draft,
        approvals,
        discounted,
    })
}

impl RecordedApproval {
    pub fn as_draft(&self) -> ApprovalDraft {
        ApprovalDraft {
            approver: Some(self.approver.name.clone()),
            approved_at: Some(self.approved_at),
        }
    }
}

/// Whose approval counts for a target: members of the named ITSM groups, and the
/// named people (by id or name). Configured per target, never by the ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverRule {
    #[serde(default)]
    pub groups: BTreeSet<String>,
    #[serde(default)]
    pub users: BTreeSet<String>,
}

impl ApproverRule {
    /// Whether `approver`, a member of `groups` (as the ITSM resolved them), may
    /// approve. A rule that names nobody admits nobody.
    pub fn admits(&self, approver: &ApproverRef, groups: &[String]) -> bool {
        self.users.contains(&approver.id)
            || self.users.contains(&approver.name)
            || groups.iter().any(|g| self.groups.contains(g))
    }

    /// Whether deciding needs the approver's groups (a named user needs none).
    pub fn needs_groups(&self, approver: &ApproverRef) -> bool {
        !self.groups.is_empty()
            && !self.users.contains(&approver.id)
            && !self.users.contains(&approver.name)
    }

    /// Why `approver` does not count, in words for the ticket.
    pub fn refusal(&self, approver: &ApproverRef) -> String {
        let mut who = Vec::new();
        if !self.groups.is_empty() {
            let groups: Vec<&str> = self.groups.iter().map(String::as_str).collect();
            who.push(format!("members of {}", groups.join(", ")));
        }
        if !self.users.is_empty() {
            who.push(format!("{} named approver(s)", self.users.len()));
        }
        let who = if who.is_empty() {
            "nobody (the target's approver rule names no one)".to_owned()
        } else {
            who.join(" or ")
        };
        format!(
            "the approval by {} does not count: this target is approved only by {who}",
            approver.name
        )
    }
}

/// A compared part as JSON (all of them serialise; a failure compares as null).
fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Duration;

    fn person(name: &str) -> ApproverRef {
        ApproverRef {
            id: format!("id-{name}"),
            name: name.to_owned(),
        }
    }

    fn ticket(now: DateTime<Utc>) -> ItsmTicket {
        let mut draft = RequestDraft::default();
        draft.ticket.key = Some("OPS-1".into());
        draft.requester = Some("priya".into());
        draft.scope = vec!["b".into(), "a".into()];
        draft.not_after = Some(now + Duration::hours(4));
        ItsmTicket {
            status: "Approved".into(),
            approved: true,
            draft,
            approvals: vec![
                RecordedApproval {
                    approver: person("dana"),
                    approved_at: now - Duration::minutes(10),
                    decided_from: now - Duration::minutes(10),
                },
                RecordedApproval {
                    approver: person("li"),
                    approved_at: now - Duration::minutes(5),
                    decided_from: now - Duration::minutes(5),
                },
            ],
            last_change: None,
            reopened_at: None,
        }
    }

    fn event_of(itsm: &ItsmTicket) -> RequestDraft {
        let mut e = itsm.draft.clone();
        e.scope.reverse();
        e.approvals = itsm
            .approvals
            .iter()
            .map(RecordedApproval::as_draft)
            .collect();
        e
    }

    #[test]
    fn an_event_that_agrees_takes_the_itsms_approvals() {
        let now = Utc::now();
        let itsm = ticket(now);
        let v = verify(&event_of(&itsm), &itsm).unwrap();
        assert_eq!(v.counting().count(), 2);
        assert!(v.discounted.is_empty());
        assert_eq!(v.draft.approvals.len(), 2);
    }

    #[test]
    fn a_field_that_differs_or_an_approval_the_itsm_lacks_is_refused() {
        let now = Utc::now();
        let itsm = ticket(now);
        let mut e = event_of(&itsm);
        e.scope.push("orders_writer".into());
        e.approvals.push(ApprovalDraft {
            approver: Some("mallory".into()),
            approved_at: Some(now),
        });
        let errors = verify(&e, &itsm).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["scope", "approvals[2].approver"]);
        assert!(errors[0].problem.contains("orders_writer"), "{errors:?}");
        assert!(
            !errors[0].problem.contains(r#"["a","b"]"#),
            "the ITSM's value is not answered: {errors:?}"
        );
    }

    #[test]
    fn a_ticket_the_itsm_has_not_approved_is_refused() {
        let now = Utc::now();
        let mut itsm = ticket(now);
        let e = event_of(&itsm);
        itsm.approved = false;
        itsm.status = "Waiting for approval".into();
        let errors = verify(&e, &itsm).unwrap_err();
        assert_eq!(errors[0].field, "ticket.status");
    }

    #[test]
    fn approvals_before_the_last_change_of_a_field_do_not_count() {
        let now = Utc::now();
        let mut itsm = ticket(now);
        let e = event_of(&itsm);
        itsm.last_change = Some(FieldChange {
            field: "customfield_10208".into(),
            at: now - Duration::minutes(7),
        });
        let v = verify(&e, &itsm).unwrap();
        let counting: Vec<&str> = v.counting().map(|a| a.approver.name.as_str()).collect();
        assert_eq!(counting, ["li"]);
        assert!(
            v.discounted["dana"].contains("customfield_10208"),
            "{:?}",
            v.discounted
        );
        // Both approvals stay on record, for the evidence.
        assert_eq!(v.draft.approvals.len(), 2);
        // At the same instant is not after.
        itsm.last_change.as_mut().unwrap().at = now - Duration::minutes(5);
        assert_eq!(verify(&e, &itsm).unwrap().counting().count(), 0);
    }

    #[test]
    fn a_shared_round_edited_while_open_and_a_later_round_left_open_do_not_count() {
        let now = Utc::now();
        let mut itsm = ticket(now);
        let e = event_of(&itsm);
        // Dana and Li decided one round, opened 20 minutes ago and completed 5
        // minutes ago; the scope changed 15 minutes ago, maybe after Dana's yes.
        for a in &mut itsm.approvals {
            a.approved_at = now - Duration::minutes(5);
            a.decided_from = now - Duration::minutes(20);
        }
        itsm.last_change = Some(FieldChange {
            field: "customfield_10208".into(),
            at: now - Duration::minutes(15),
        });
        assert_eq!(verify(&e, &itsm).unwrap().counting().count(), 0);

        let mut itsm = ticket(now);
        itsm.reopened_at = Some(now - Duration::minutes(1));
        let v = verify(&e, &itsm).unwrap();
        assert_eq!(v.counting().count(), 0);
        assert!(
            v.discounted["li"].contains("pending or was declined"),
            "{:?}",
            v.discounted
        );
    }

    #[test]
    fn an_approver_rule_admits_its_groups_and_users_only() {
        let rule = ApproverRule {
            groups: ["dba-approvers".to_owned()].into(),
            users: ["id-li".to_owned()].into(),
        };
        assert!(rule.admits(&person("dana"), &["dba-approvers".into()]));
        assert!(!rule.admits(&person("dana"), &["orders-engineering".into()]));
        assert!(rule.admits(&person("li"), &[]));
        assert!(!rule.needs_groups(&person("li")));
        assert!(rule.needs_groups(&person("dana")));
        assert!(!ApproverRule::default().admits(&person("li"), &["x".into()]));
        assert!(rule.refusal(&person("mallory")).contains("dba-approvers"));
    }
}
