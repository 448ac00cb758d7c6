//! The step between an authenticated event and its validation: the approval is read
//! back from its ITSM with ticketbound's own read-only credentials, and what the ITSM
//! says replaces what the event says. A forged event (valid signature, approvals the
//! ITSM does not hold) is refused here; so is any field that differs, and a ticket the
//! ITSM does not call approved. Whose approval counts is decided here too: the
//! target's approver rule, with groups resolved through the ITSM.
//!
//! Systems with no read-back configured are refused, unless the operator listed them
//! in `TICKETBOUND_SENDER_ONLY`: then the sender's word is taken, and the grant says so.

use std::collections::BTreeMap;

use ticketbound_domain::{FieldError, RequestDraft, SourceSystem, Verification};
use ticketbound_itsm::outbound::{Jira, PostError};
use ticketbound_itsm::readback::{self, ApproverRef, ApproverRule, Verified};
use ticketbound_runtime::ExposeSecret;

use crate::config::{JIRA_API_URL, SENDER_ONLY};
use crate::intake::{IntakeError, field_error};
use crate::{COMPONENT, Deps};

/// The request to validate, and how it was checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub draft: RequestDraft,
    pub verification: Verification,
    /// Approver name → why their approval does not count.
    pub discounted: BTreeMap<String, String>,
}

/// Reads `event` back from `sender`'s ITSM. `Err(problems)` refuses the event (a 400
/// naming the fields); an `IntakeError` is the ITSM or a secret failing (a 503 the
/// sender retries).
pub async fn check(
    deps: &Deps,
    sender: SourceSystem,
    event: &RequestDraft,
) -> Result<Result<Checked, Vec<FieldError>>, IntakeError> {
    let read_back = match sender {
        SourceSystem::Jira => deps.config.jira.as_ref().and_then(|j| j.read_back.as_ref()),
        SourceSystem::Servicenow | SourceSystem::Generic => None,
    };
    let Some(read_back) = read_back else {
        if deps.config.sender_only.0.contains(&sender) {
            return Ok(Ok(sender_only(deps, event)));
        }
        return Ok(Err(vec![cannot_verify(sender)]));
    };
    let credentials = deps.secrets.get(&read_back.secret_id).await?;
    let jira =
        Jira::new(&read_back.url, credentials.expose_secret()).map_err(IntakeError::ReadBack)?;
    let mapping = deps
        .config
        .jira
        .as_ref()
        .map(|j| j.mapping.clone())
        .unwrap_or_default();
    let Some(key) = event.ticket.key.as_deref().filter(|k| is_jira_key(k)) else {
        return Ok(Err(vec![FieldError {
            field: "ticket.key".to_owned(),
            problem: format!(
                "is {:?}, which is not a Jira issue key (PROJECT-123)",
                event.ticket.key.as_deref().unwrap_or_default()
            ),
        }]));
    };
    let started = std::time::Instant::now();
    let issue = match jira.issue(key).await {
        Ok(issue) => issue,
        Err(PostError::Status { status: 404, .. }) => {
            return Ok(Err(vec![FieldError {
                field: "ticket.key".to_owned(),
                problem: format!(
                    "is {key}, an issue Jira does not hold (or ticketbound's reader may not see it)"
                ),
            }]));
        }
        Err(e) => return Err(read_failed(e)),
    };
    let histories = jira.changelog(key).await.map_err(read_failed)?;
    let approvals = jira.approvals(key).await.map_err(read_failed)?;
    let ticket =
        match ticketbound_itsm::jira::ticket_from_api(&issue, &histories, &approvals, &mapping) {
            Ok(t) => t,
            Err(e) => return Ok(Err(vec![field_error(&e)])),
        };
    let verified = match readback::verify(event, &ticket) {
        Ok(v) => v,
        Err(problems) => {
            tracing::warn!(ticket = key, problems = ?problems, "the event disagrees with Jira; refused");
            ticketbound_runtime::metrics::count(COMPONENT, "ReadBackMismatch", 1);
            return Ok(Err(problems));
        }
    };
    let discounted = with_authority(deps, &verified, |approver| {
        let jira = &jira;
        async move { jira.user_groups(&approver.id).await }
    })
    .await?;
    tracing::info!(
        ticket = key,
        elapsed_ms = started.elapsed().as_millis() as u64,
        approvals = verified.approvals.len(),
        discounted = discounted.len(),
        "approval read back from Jira"
    );
    Ok(Ok(Checked {
        draft: verified.draft,
        verification: Verification::ItsmApi,
        discounted,
    }))
}

/// The verified approvals, each checked against the target's approver rule (groups
/// resolved by `groups_of`, once per approver who needs it).
async fn with_authority<F, Fut>(
    deps: &Deps,
    verified: &Verified,
    groups_of: F,
) -> Result<BTreeMap<String, String>, IntakeError>
where
    F: Fn(ApproverRef) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, PostError>>,
{
    let mut discounted = verified.discounted.clone();
    let Some(rule) = rule_for(deps, &verified.draft) else {
        return Ok(discounted);
    };
    for approval in verified.counting() {
        let groups = if rule.needs_groups(&approval.approver) {
            groups_of(approval.approver.clone())
                .await
                .map_err(read_failed)?
        } else {
            Vec::new()
        };
        if !rule.admits(&approval.approver, &groups) {
            discounted.insert(
                approval.approver.name.clone(),
                rule.refusal(&approval.approver),
            );
        }
    }
    Ok(discounted)
}

fn rule_for<'a>(deps: &'a Deps, draft: &RequestDraft) -> Option<&'a ApproverRule> {
    draft
        .target
        .system_id
        .as_deref()
        .and_then(|system| deps.config.targets.approvers_of(system))
}

/// The sender's word, as the operator chose. Groups cannot be resolved without an
/// ITSM to ask, so only approvers the rule names count.
fn sender_only(deps: &Deps, event: &RequestDraft) -> Checked {
    let mut discounted = BTreeMap::new();
    if let Some(rule) = rule_for(deps, event) {
        for approval in &event.approvals {
            let Some(name) = approval.approver.clone() else {
                continue;
            };
            let who = ApproverRef {
                id: name.clone(),
                name: name.clone(),
            };
            if !rule.admits(&who, &[]) {
                discounted.insert(
                    name,
                    format!(
                        "{} (group membership cannot be checked for a sender-only system)",
                        rule.refusal(&who)
                    ),
                );
            }
        }
    }
    Checked {
        draft: event.clone(),
        verification: Verification::SenderOnly,
        discounted,
    }
}

fn cannot_verify(sender: SourceSystem) -> FieldError {
    let how = match sender {
        SourceSystem::Jira => format!(
            "Jira approvals are read back from Jira's API, and none is configured ({JIRA_API_URL})"
        ),
        SourceSystem::Servicenow => {
            "ServiceNow approvals cannot be read back by this version".to_owned()
        }
        SourceSystem::Generic => {
            "a generic sender has no API to read approvals back from".to_owned()
        }
    };
    FieldError {
        field: "ticket.source".to_owned(),
        problem: format!(
            "is {sender}: {how}, and {sender} is not in {SENDER_ONLY} (the systems whose approvals are believed on their signature alone)"
        ),
    }
}

fn read_failed(e: PostError) -> IntakeError {
    ticketbound_runtime::metrics::count(COMPONENT, "ReadBackFailed", 1);
    IntakeError::ReadBack(e)
}

/// `PROJECT-123`: the only shape that goes into a URL path.
fn is_jira_key(key: &str) -> bool {
    let Some((project, number)) = key.split_once('-') else {
        return false;
    };
    project.len() <= 32
        && project.starts_with(|c: char| c.is_ascii_uppercase())
        && project
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !number.is_empty()
        && number.len() <= 12
        && number.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_issue_key_reaches_a_url() {
        for good in ["OPS-4211", "A1_B-7"] {
            assert!(is_jira_key(good), "{good}");
        }
        for bad in [
            "ops-1",
            "OPS-",
            "OPS-1/../../admin",
            "OPS-1?x=1",
            "-1",
            "OPS-1-2",
            "",
        ] {
            assert!(!is_jira_key(bad), "{bad}");
        }
    }
}
