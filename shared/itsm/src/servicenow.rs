//! ServiceNow outbound REST (a business rule or a Flow REST step) for a change_request
//! or sc_req_item. ServiceNow defines no payload for this, so the body is the record's
//! fields as the business rule serialises them (see `docs/servicenow-business-rule.js`
//! and docs/itsm-setup.md), and which field holds what is configuration.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ticketbound_domain::request::{ChangeWindowDraft, IdentityDraft, TargetDraft, TicketDraft};
use ticketbound_domain::{ApprovalDraft, RequestDraft, SourceSystem, TicketKey};

use crate::value::{at, hours, list, opt_text, person, time};
use crate::{Inbound, InboundError, TicketEnd, TicketEnded};

/// Which body field holds each part of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowFields {
    pub number: String,
    pub sys_id: String,
    pub table: String,
    pub instance: String,
    pub state: String,
    pub approval: String,
    pub requester: String,
    /// An array of `{approver, state, sys_updated_on}` built from sysapproval_approver.
    pub approvers: String,
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
    /// Who made the update that ended the ticket, if the body says.
    #[serde(default)]
    pub updated_by: Option<String>,
    /// Who created the record (who may then not approve it), if the body says.
    #[serde(default)]
    pub creator: Option<String>,
}

/// How a ServiceNow instance maps onto ticketbound, from `TICKETBOUND_SERVICENOW_MAPPING`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowMapping {
    /// Values of the approval field that mean approved.
    pub approved_values: Vec<String>,
    /// Values of the state field that withdraw the ticket (change_request 4 =
    /// Canceled; sc_req_item 4 = Closed Incomplete, 7 = Closed Skipped).
    pub withdrawn_states: Vec<String>,
    /// Values of the state field that close it normally (3 = Closed / Closed Complete).
    pub closed_states: Vec<String>,
    pub fields: ServiceNowFields,
}

impl Default for ServiceNowMapping {
    fn default() -> Self {
        let s = String::from;
        Self {
            approved_values: vec![s("approved")],
            withdrawn_states: vec![s("4"), s("7")],
            closed_states: vec![s("3")],
            fields: ServiceNowFields {
                number: s("number"),
                sys_id: s("sys_id"),
                table: s("sys_class_name"),
                instance: s("instance"),
                state: s("state"),
                approval: s("approval"),
                requester: s("requested_by"),
                approvers: s("approvers"),
                identity_kind: s("u_nhi_kind"),
                identity_name: s("u_nhi_name"),
                owner: s("u_nhi_owner"),
                workload_principal: s("u_workload_principal"),
                target_system: s("u_target_system"),
                connector: s("u_connector"),
                environment: s("u_environment"),
                scope: s("u_scope"),
                not_after: s("u_not_after"),
                justification: s("justification"),
                revocation_trigger: s("u_revocation_trigger"),
                rotation_period_hours: s("u_rotation_hours"),
                change_window_start: Some(s("start_date")),
                change_window_end: Some(s("end_date")),
                updated_by: Some(s("sys_updated_by")),
                creator: Some(s("sys_created_by")),
            },
        }
    }
}

impl ServiceNowMapping {
    /// The body field a generic request path comes from, to point a 400 at it.
    pub fn source_of(&self, generic_field: &str) -> Option<String> {
        let f = &self.fields;
        let root = generic_field.split('[').next().unwrap_or(generic_field);
        let id = match root {
            "ticket.key" => &f.number,
            "requester" => &f.requester,
            "approvals" => &f.approvers,
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
            "change_window.start" => f.change_window_start.as_ref()?,
            "change_window.end" => f.change_window_end.as_ref()?,
            _ => return None,
        };
        Some(id.clone())
    }
}

/// Interprets a ServiceNow outbound REST body.
pub fn interpret(body: &[u8], mapping: &ServiceNowMapping) -> Result<Inbound, InboundError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| InboundError::NotJson(e.to_string()))?;
    if !v.is_object() {
        return Err(InboundError::NotJson(
            "the body is not a JSON object".into(),
        ));
    }
    let f = &mapping.fields;
    let get = |name: &str| opt_text(&v, name, name);
    let number =
        get(&f.number)?.ok_or_else(|| InboundError::field(f.number.clone(), "is required"))?;
    let state = get(&f.state)?.unwrap_or_default();
    let approval = get(&f.approval)?.unwrap_or_default();
    let one_of =
        |values: &[String], value: &str| values.iter().any(|s| s.eq_ignore_ascii_case(value));

    let end = if one_of(&mapping.withdrawn_states, &state) {
        Some(TicketEnd::Withdrawn)
    } else if one_of(&mapping.closed_states, &state) {
        Some(TicketEnd::Closed)
    } else {
        None
    };
    if let Some(end) = end {
        let key = TicketKey::new(number).map_err(|e| InboundError::field(f.number.clone(), e.0))?;
        let actor = f
            .updated_by
            .as_deref()
            .and_then(|field| at(&v, field))
            .and_then(person)
            .unwrap_or_else(|| "servicenow".into());
        return Ok(Inbound::TicketEnded(TicketEnded {
            source: SourceSystem::Servicenow,
            key,
            end,
            actor,
            reason: Some(format!("state changed to {state}")),
        }));
    }
    if !one_of(&mapping.approved_values, &approval) {
        return Ok(Inbound::Ignored {
            why: format!("approval is {approval:?}, state is {state:?}: nothing to do"),
        });
    }

    let link = match (get(&f.instance)?, get(&f.table)?, get(&f.sys_id)?) {
        (Some(instance), Some(table), Some(sys_id)) => Some(format!(
            "{}/{table}.do?sys_id={sys_id}",
            instance.trim_end_matches('/')
        )),
        _ => None,
    };
    let change_window = match (&f.change_window_start, &f.change_window_end) {
        (Some(start), Some(end)) => {
            let start = at(&v, start).map_or(Ok(None), |x| time(x, start))?;
            let end = at(&v, end).map_or(Ok(None), |x| time(x, end))?;
            (start.is_some() || end.is_some()).then_some(ChangeWindowDraft { start, end })
        }
        _ => None,
    };
    let scope = at(&v, &f.scope).map_or(Ok(Vec::new()), |x| list(x, &f.scope))?;

    Ok(Inbound::Approval(Box::new(RequestDraft {
        ticket: TicketDraft {
            source: Some("servicenow".into()),
            key: Some(number),
            link,
        },
        requester: at(&v, &f.requester).and_then(person),
        creator: f
            .creator
            .as_deref()
            .and_then(|field| at(&v, field))
            .and_then(person),
        approvals: approvals(at(&v, &f.approvers), &f.approvers)?,
        identity: IdentityDraft {
            kind: get(&f.identity_kind)?,
            name: get(&f.identity_name)?,
            owner: get(&f.owner)?,
            workload_principal: get(&f.workload_principal)?,
        },
        target: TargetDraft {
            system_id: get(&f.target_system)?,
            connector: get(&f.connector)?,
            environment: get(&f.environment)?,
        },
        scope,
        not_after: at(&v, &f.not_after).map_or(Ok(None), |x| time(x, &f.not_after))?,
        justification: get(&f.justification)?,
        revocation_trigger: get(&f.revocation_trigger)?,
        rotation_period_hours: at(&v, &f.rotation_period_hours)
            .map_or(Ok(None), |x| hours(x, &f.rotation_period_hours))?,
        change_window,
    })))
}

/// Approvers whose sysapproval_approver record is `approved`. An entry without a
/// state is refused, naming it: counting it as approved would let a sender add
/// approvers by leaving the state out.
fn approvals(v: Option<&Value>, field: &str) -> Result<Vec<ApprovalDraft>, InboundError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let list = v
        .as_array()
        .ok_or_else(|| InboundError::field(field, "is not a list of approvers"))?;
    let mut out = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let Some(state) = a.get("state").and_then(Value::as_str) else {
            return Err(InboundError::field(
                format!("{field}[{i}].state"),
                "is required (the sysapproval_approver record's state)",
            ));
        };
        if !state.eq_ignore_ascii_case("approved") {
            continue;
        }
        let at_field = format!("{field}[{i}].sys_updated_on");
        out.push(ApprovalDraft {
            approver: a.get("approver").and_then(person),
            approved_at: a
                .get("sys_updated_on")
                .map_or(Ok(None), |t| time(t, &at_field))?,
        });
    }
    Ok(out)
}
