//! Jira Service Management webhooks (`jira:issue_updated`): an approval is the issue
//! reaching the configured approved status; a withdrawal or a closure is it reaching
//! one of the configured statuses for those. Request fields come from custom fields
//! whose ids are configuration, since every Jira site numbers them differently.

use std::borrow::Cow;
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ticketbound_domain::request::{ChangeWindowDraft, IdentityDraft, TargetDraft, TicketDraft};
use ticketbound_domain::{ApprovalDraft, RequestDraft, SourceSystem, TicketKey};

use crate::readback::{ApproverRef, FieldChange, ItsmTicket, RecordedApproval};
use crate::value::{at, hours, list, opt_text, person, text, time};
use crate::{Inbound, InboundError, TicketEnd, TicketEnded};

/// Which Jira field holds each part of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraFields {
    pub identity_kind: String,
    pub identity_name: String,
    pub owner: String,
    pub workload_principal: String,
    pub target_system: String,
    pub connector: String,
    pub environment: String,
    pub scope: String,
    pub not_after: String,
    pub justification: String,
    pub revocation_trigger: String,
    pub rotation_period_hours: String,
    #[serde(default)]
    pub change_window_start: Option<String>,
    #[serde(default)]
    pub change_window_end: Option<String>,
    /// The Jira Service Management "Approvals" field.
    pub approvals: String,
}

/// How a Jira site's workflow and fields map onto ticketbound. Deserialised from the
/// `TICKETBOUND_JIRA_MAPPING` JSON; the default matches the documented example site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraMapping {
    /// The projects whose issues may ask for access (their keys, `OPS`); unset,
    /// every project the webhook sends. A project whose workflow its own admins
    /// shape should not be one: withdrawals and closures are heard from any project
    /// (they only end access, and only the ticket's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<BTreeSet<String>>,
    pub approved_status: String,
    pub withdrawn_statuses: Vec<String>,
    pub closed_statuses: Vec<String>,
    pub fields: JiraFields,
}

impl Default for JiraMapping {
    fn default() -> Self {
        let f = |n: u32| format!("customfield_{n}");
        Self {
            projects: None,
            approved_status: "Approved".into(),
            withdrawn_statuses: [
                "Cancelled",
                "Canceled",
                "Declined",
                "Withdrawn",
                "Rolled back",
            ]
            .map(String::from)
            .to_vec(),
            closed_statuses: ["Closed", "Done", "Resolved"].map(String::from).to_vec(),
            fields: JiraFields {
                identity_kind: f(10201),
                identity_name: f(10202),
                owner: f(10203),
                workload_principal: f(10204),
                target_system: f(10205),
                connector: f(10206),
                environment: f(10207),
                scope: f(10208),
                not_after: f(10209),
                justification: f(10210),
                revocation_trigger: f(10211),
                rotation_period_hours: f(10212),
                change_window_start: Some(f(10213)),
                change_window_end: Some(f(10214)),
                approvals: f(10002),
            },
        }
    }
}

impl JiraMapping {
    /// The Jira fields whose change after an approval makes the approval stale: every
    /// request field, and the reporter (who the requester is).
    fn request_fields(&self) -> Vec<&str> {
        let f = &self.fields;
        let mut ids = vec![
            f.identity_kind.as_str(),
            &f.identity_name,
            &f.owner,
            &f.workload_principal,
            &f.target_system,
            &f.connector,
            &f.environment,
            &f.scope,
            &f.not_after,
            &f.justification,
            &f.revocation_trigger,
            &f.rotation_period_hours,
            "reporter",
        ];
        ids.extend(f.change_window_start.as_deref());
        ids.extend(f.change_window_end.as_deref());
        ids
    }

    /// The Jira field a generic request path comes from, to point a 400 at it.
    pub fn source_of(&self, generic_field: &str) -> Option<String> {
        let f = &self.fields;
        let root = generic_field.split('[').next().unwrap_or(generic_field);
        let id = match root {
            "ticket.key" => "issue.key",
            "requester" => "reporter",
            "approvals" => &f.approvals,
            "identity.kind" => &f.identity_kind,
            "identity.name" => &f.identity_name,
            "identity.owner" => &f.owner,
            "identity.workload_principal" => &f.workload_principal,
            "target.system_id" => &f.target_system,
            "target.connector" => &f.connector,
            "target.environment" => &f.environment,
            "scope" => &f.scope,
            "not_after" => &f.not_after,
            "justification" => &f.justification,
            "revocation_trigger" => &f.revocation_trigger,
            "rotation_period_hours" => &f.rotation_period_hours,
            "change_window.start" => f.change_window_start.as_deref()?,
            "change_window.end" => f.change_window_end.as_deref()?,
            _ => return None,
        };
        Some(id.to_owned())
    }
}

impl JiraMapping {
    /// Every issue field a webhook's interpretation reads.
    fn read_fields(&self) -> Vec<&str> {
        let mut ids = self.request_fields();
        ids.extend([self.fields.approvals.as_str(), "creator"]);
        ids
    }
}

/// The webhook as JSON, holding only what [`interpret`] reads. A Jira webhook is
/// mostly what ticketbound never reads (avatars, project, issue type, the fields of
/// other apps): those are stepped over ([`IgnoredAny`]) instead of being built,
/// which is most of the intake's parse (see `benches/intake_pipeline.rs`).
fn slim(body: &[u8], mapping: &JiraMapping) -> Result<Value, InboundError> {
    let wanted = mapping.read_fields();
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = Keep::Top(&wanted)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| InboundError::NotJson(e.to_string()))?;
    Ok(v)
}

/// Which keys of an object are kept (as [`Value`]); the rest are skipped.
#[derive(Clone, Copy)]
enum Keep<'m> {
    /// The webhook: its event, user, changelog and issue.
    Top(&'m [&'m str]),
    /// The issue: its key, link and the wanted fields.
    Issue(&'m [&'m str]),
    /// `issue.fields`: the wanted ones.
    Fields(&'m [&'m str]),
}

impl<'de> DeserializeSeed<'de> for Keep<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Keep<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let kept = match (self, key.as_ref()) {
                (Self::Top(w), "issue") => Some(map.next_value_seed(Self::Issue(w))?),
                (Self::Top(_), "webhookEvent" | "user" | "changelog")
                | (Self::Issue(_), "key" | "self") => Some(map.next_value::<Value>()?),
                (Self::Issue(w), "fields") => Some(map.next_value_seed(Self::Fields(w))?),
                (Self::Fields(w), field) if w.contains(&field) => Some(map.next_value::<Value>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
            if let Some(value) = kept {
                out.insert(key.into_owned(), value);
            }
        }
        Ok(Value::Object(out))
    }
}

/// Interprets a Jira webhook body.
pub fn interpret(body: &[u8], mapping: &JiraMapping) -> Result<Inbound, InboundError> {
    let v = slim(body, mapping)?;
    let event = at(&v, "webhookEvent")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if event != "jira:issue_updated" {
        return Ok(Inbound::Ignored {
            why: format!("webhook event {event:?} is not an issue update"),
        });
    }
    let Some(new_status) = at(&v, "changelog.items")
        .and_then(Value::as_array)
        .and_then(|items| {
            items.iter().find(|i| {
                i.get("fieldId")
                    .or_else(|| i.get("field"))
                    .and_then(Value::as_str)
                    == Some("status")
            })
        })
        .and_then(|i| i.get("toString"))
        .and_then(Value::as_str)
    else {
        return Ok(Inbound::Ignored {
            why: "the update does not change the status".into(),
        });
    };
    let key_text = opt_text(&v, "issue.key", "issue.key")?
        .ok_or_else(|| InboundError::field("issue.key", "is required"))?;
    let is = |list: &[String]| list.iter().any(|s| s.eq_ignore_ascii_case(new_status));

    let end = if is(&mapping.withdrawn_statuses) {
        Some(TicketEnd::Withdrawn)
    } else if is(&mapping.closed_statuses) {
        Some(TicketEnd::Closed)
    } else {
        None
    };
    if let Some(end) = end {
        let key = TicketKey::new(key_text).map_err(|e| InboundError::field("issue.key", e.0))?;
        return Ok(Inbound::TicketEnded(TicketEnded {
            source: SourceSystem::Jira,
            key,
            end,
            actor: at(&v, "user")
                .and_then(person)
                .unwrap_or_else(|| "jira".into()),
            reason: Some(format!("status changed to {new_status}")),
        }));
    }
    if !new_status.eq_ignore_ascii_case(&mapping.approved_status) {
        return Ok(Inbound::Ignored {
            why: format!("status changed to {new_status:?}, which is not an approval"),
        });
    }
    if let Some(projects) = &mapping.projects {
        let project = key_text
            .split_once('-')
            .map_or(key_text.as_str(), |(p, _)| p);
        if !projects.contains(project) {
            return Err(InboundError::field(
                "issue.key",
                format!(
                    "project {project:?} is not one ticketbound takes access requests from \
                     (the Jira mapping's projects: {})",
                    projects.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    draft(&v, key_text, mapping).map(|d| Inbound::Approval(Box::new(d)))
}

fn draft(v: &Value, key: String, mapping: &JiraMapping) -> Result<RequestDraft, InboundError> {
    let f = &mapping.fields;
    let field = |id: &str| {
        at(v, &format!("issue.fields.{id}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let name = |id: &str| format!("issue.fields.{id}");
    let txt = |id: &str| text(&field(id), &name(id));

    let link = at(v, "issue.self").and_then(Value::as_str).and_then(|s| {
        s.find("/rest/")
            .map(|i| format!("{}/browse/{key}", &s[..i]))
    });

    let change_window = match (&f.change_window_start, &f.change_window_end) {
        (Some(start), Some(end)) => {
            let (start, end) = (
                time(&field(start), &name(start))?,
                time(&field(end), &name(end))?,
            );
            (start.is_some() || end.is_some()).then_some(ChangeWindowDraft { start, end })
        }
        _ => None,
    };

    Ok(RequestDraft {
        ticket: TicketDraft {
            source: Some("jira".into()),
            key: Some(key),
            link,
        },
        requester: at(v, "issue.fields.reporter").and_then(person),
        creator: at(v, "issue.fields.creator").and_then(person),
        approvals: approvals(&field(&f.approvals), &name(&f.approvals))?,
        identity: IdentityDraft {
            kind: txt(&f.identity_kind)?,
            name: txt(&f.identity_name)?,
            owner: txt(&f.owner)?,
            workload_principal: txt(&f.workload_principal)?,
        },
        target: TargetDraft {
            system_id: txt(&f.target_system)?,
            connector: txt(&f.connector)?,
            environment: txt(&f.environment)?,
        },
        scope: list(&field(&f.scope), &name(&f.scope))?,
        not_after: time(&field(&f.not_after), &name(&f.not_after))?,
        justification: txt(&f.justification)?,
        revocation_trigger: txt(&f.revocation_trigger)?,
        rotation_period_hours: hours(
            &field(&f.rotation_period_hours),
            &name(&f.rotation_period_hours),
        )?,
        change_window,
    })
}

/// Approvers who said yes, from a Jira Service Management Approvals field: every
/// approval whose final decision is `approved`, timed at its completion.
fn approvals(v: &Value, field: &str) -> Result<Vec<ApprovalDraft>, InboundError> {
    let Some(list) = v.as_array() else {
        return match v {
            Value::Null => Ok(Vec::new()),
            _ => Err(InboundError::field(
                field,
                "is not a Jira Service Management approvals list",
            )),
        };
    };
    let mut out = Vec::new();
    for (i, approval) in list.iter().enumerate() {
        if approval.get("finalDecision").and_then(Value::as_str) != Some("approved") {
            continue;
        }
        let completed = approval.get("completedDate").unwrap_or(&Value::Null);
        let approved_at = time(completed, &format!("{field}[{i}].completedDate"))?;
        for approver in approval
            .get("approvers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if approver.get("approverDecision").and_then(Value::as_str) == Some("approved") {
                out.push(ApprovalDraft {
                    approver: approver.get("approver").and_then(person),
                    approved_at,
                });
            }
        }
    }
    Ok(out)
}

/// What Jira's API holds for an issue: `issue` from `GET /rest/api/3/issue/{key}`,
/// `histories` every page of `GET /rest/api/3/issue/{key}/changelog`, `approvals`
/// every page of Jira Service Management's `GET
/// /rest/servicedeskapi/request/{key}/approval`. The changelog embedded by
/// `expand=changelog` is truncated, so it is not used.
pub fn ticket_from_api(
    issue: &Value,
    histories: &[Value],
    approvals: &[Value],
    mapping: &JiraMapping,
) -> Result<ItsmTicket, InboundError> {
    let key = opt_text(issue, "key", "issue.key")?
        .ok_or_else(|| InboundError::field("issue.key", "is missing from Jira's answer"))?;
    let wrapped = serde_json::json!({ "issue": issue });
    let mut draft = draft(&wrapped, key, mapping)?;
    draft.approvals.clear();
    let status = opt_text(issue, "fields.status.name", "issue.fields.status")?.unwrap_or_default();

    let mut recorded = Vec::new();
    let mut reopened_at: Option<DateTime<Utc>> = None;
    for (i, approval) in approvals.iter().enumerate() {
        let created = time(
            approval.get("createdDate").unwrap_or(&Value::Null),
            &format!("approval[{i}].createdDate"),
        )?;
        if approval.get("finalDecision").and_then(Value::as_str) != Some("approved") {
            // A round still open, or declined: nothing it followed counts (the
            // issue was moved to Approved past it).
            let since = created.unwrap_or(DateTime::<Utc>::MIN_UTC);
            reopened_at = Some(reopened_at.map_or(since, |t| t.max(since)));
            continue;
        }
        // JSM gives each approver's decision but only the approval's completion time.
        let field = format!("approval[{i}].completedDate");
        let Some(approved_at) = time(
            approval.get("completedDate").unwrap_or(&Value::Null),
            &field,
        )?
        else {
            return Err(InboundError::field(
                field,
                "is missing from an approved approval",
            ));
        };
        let approvers: Vec<&Value> = approval
            .get("approvers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.get("approverDecision").and_then(Value::as_str) == Some("approved"))
            .collect();
        // With several approvers, each may have decided any time after the round
        // opened (only its completion is dated): a change after the opening may
        // postdate someone's yes.
        let decided_from = if approvers.len() > 1 {
            created.unwrap_or(DateTime::<Utc>::MIN_UTC)
        } else {
            approved_at
        };
        for approver in approvers {
            let who = approver.get("approver").unwrap_or(&Value::Null);
            let (Some(id), Some(name)) =
                (who.get("accountId").and_then(Value::as_str), person(who))
            else {
                return Err(InboundError::field(
                    format!("approval[{i}].approvers"),
                    "names an approver without an accountId",
                ));
            };
            recorded.push(RecordedApproval {
                approver: ApproverRef {
                    id: id.to_owned(),
                    name,
                },
                approved_at,
                decided_from,
            });
        }
    }

    let watched = mapping.request_fields();
    let mut last_change: Option<FieldChange> = None;
    for (i, history) in histories.iter().enumerate() {
        let field = format!("changelog[{i}].created");
        let Some(at) = time(history.get("created").unwrap_or(&Value::Null), &field)? else {
            return Err(InboundError::field(field, "is missing"));
        };
        for item in history
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = item
                .get("fieldId")
                .or_else(|| item.get("field"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            // An item without a fieldId names its field by display name only: a
            // custom field changed that way cannot be told apart from a request
            // field, so it counts as one.
            let unnamed_custom = item.get("fieldId").is_none()
                && item.get("fieldtype").and_then(Value::as_str) == Some("custom");
            if (watched.contains(&id) || unnamed_custom)
                && last_change.as_ref().is_none_or(|c| at > c.at)
            {
                last_change = Some(FieldChange {
                    field: id.to_owned(),
                    at,
                });
            }
        }
    }
    Ok(ItsmTicket {
        reopened_at,
        approved: status.eq_ignore_ascii_case(&mapping.approved_status),
        status,
        draft,
        approvals: recorded,
        last_change,
    })
}

#[cfg(test)]
mod slim_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_what_is_read_is_kept_and_a_body_that_is_not_an_object_is_refused() {
        let body = br#"{"webhookEvent": "jira:issue_updated", "timestamp": 1,
            "user": {"accountId": "a"},
            "issue": {"key": "OPS-1", "id": "10", "self": "https://x/rest/api/3/issue/10",
                      "fields": {"customfield_10208": ["orders_reader"], "customfield_99999": {"big": [1, 2, 3]},
                                 "reporter": {"accountId": "r"}, "summary": "s"}},
            "changelog": {"items": []}}"#;
        let v = slim(body, &JiraMapping::default()).unwrap();
        let fields = v["issue"]["fields"].as_object().unwrap();
        let mut kept: Vec<&str> = fields.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["customfield_10208", "reporter"]);
        assert_eq!(v["issue"]["key"], "OPS-1");
        assert!(v.get("timestamp").is_none());
        for bad in [&b"[1, 2]"[..], b"\"x\"", b"{\"issue\": 5}", b"{} trailing"] {
            assert!(
                matches!(
                    slim(bad, &JiraMapping::default()),
                    Err(InboundError::NotJson(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
