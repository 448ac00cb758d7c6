//! The vendors' payload shapes (tests/fixtures) interpreted into the generic request,
//! and that request validated as the domain would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::{DateTime, TimeZone, Utc};
use ticketbound_domain::{AccessRequest, Environment, SourceSystem};
use ticketbound_itsm::jira::JiraMapping;
use ticketbound_itsm::servicenow::ServiceNowMapping;
use ticketbound_itsm::{Inbound, InboundError, TicketEnd, generic, jira, servicenow};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
}

fn approval(inbound: Inbound) -> AccessRequest {
    match inbound {
        Inbound::Approval(draft) => draft.validate(now()).unwrap(),
        other => panic!("expected an approval, got {other:?}"),
    }
}

#[test]
fn a_jira_approval_becomes_the_request_it_describes() {
    let request = approval(
        jira::interpret(
            &fixture("jira/issue-updated-approved.json"),
            &JiraMapping::default(),
        )
        .unwrap(),
    );
    assert_eq!(request.ticket.qualified_key(), "jira#OPS-4211");
    assert_eq!(
        request.ticket.link.as_deref(),
        Some("https://example.atlassian.net/browse/OPS-4211")
    );
    assert_eq!(request.requester.as_str(), "priya.raman@example.com");
    let approvers: Vec<&str> = request
        .approvals
        .iter()
        .map(|a| a.approver.as_str())
        .collect();
    assert_eq!(approvers, ["dana.okafor@example.com", "li.wei@example.com"]);
    assert_eq!(
        request.approvals[0].approved_at,
        Utc.with_ymd_and_hms(2026, 11, 29, 9, 40, 2).unwrap()
    );
    assert_eq!(request.identity.name.as_str(), "orders-etl");
    assert_eq!(request.target.environment, Environment::Prod);
    assert_eq!(request.scope.to_string(), "orders_reader, orders_reporting");
    assert_eq!(
        request.not_after,
        Utc.with_ymd_and_hms(2026, 11, 29, 18, 0, 0).unwrap()
    );
    assert_eq!(request.rotation_period.as_hours(), 8);
    assert!(request.change_window.is_some());
}

#[test]
fn a_jira_cancellation_withdraws_the_ticket() {
    match jira::interpret(
        &fixture("jira/issue-updated-cancelled.json"),
        &JiraMapping::default(),
    )
    .unwrap()
    {
        Inbound::TicketEnded(ended) => {
            assert_eq!(ended.source, SourceSystem::Jira);
            assert_eq!(ended.key.as_str(), "OPS-4211");
            assert_eq!(ended.end, TicketEnd::Withdrawn);
        }
        other => panic!("{other:?}"),
    }
}

/// A project the deployment does not take requests from (one whose admins shape
/// their own workflow, say) cannot approve access; it can still withdraw its own
/// tickets.
#[test]
fn an_approval_from_a_project_outside_the_mapping_is_refused_naming_it() {
    let mapping = JiraMapping {
        projects: Some(["SEC".to_owned(), "PLAT".to_owned()].into()),
        ..JiraMapping::default()
    };
    let err = jira::interpret(&fixture("jira/issue-updated-approved.json"), &mapping).unwrap_err();
    assert_eq!(err.field_name(), Some("issue.key"));
    assert!(
        err.to_string().contains("project \"OPS\" is not one")
            && err.to_string().contains("PLAT, SEC"),
        "{err}"
    );
    assert!(matches!(
        jira::interpret(&fixture("jira/issue-updated-cancelled.json"), &mapping).unwrap(),
        Inbound::TicketEnded(_)
    ));
    let ops = JiraMapping {
        projects: Some(["OPS".to_owned()].into()),
        ..JiraMapping::default()
    };
    approval(jira::interpret(&fixture("jira/issue-updated-approved.json"), &ops).unwrap());
    let parsed: JiraMapping = serde_json::from_value(serde_json::json!({
        "projects": ["OPS"],
        "approved_status": "Approved",
        "withdrawn_statuses": [],
        "closed_statuses": [],
        "fields": serde_json::to_value(JiraMapping::default().fields).unwrap(),
    }))
    .unwrap();
    assert_eq!(parsed.projects, ops.projects);
}

#[test]
fn other_jira_updates_are_ignored_and_a_bad_field_is_named() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("jira/issue-updated-approved.json")).unwrap();
    v["changelog"]["items"][0]["toString"] = "In Progress".into();
    let out = jira::interpret(&serde_json::to_vec(&v).unwrap(), &JiraMapping::default()).unwrap();
    assert!(matches!(out, Inbound::Ignored { .. }));

    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("jira/issue-updated-approved.json")).unwrap();
    v["issue"]["fields"]["customfield_10209"] = "next tuesday".into();
    let err =
        jira::interpret(&serde_json::to_vec(&v).unwrap(), &JiraMapping::default()).unwrap_err();
    assert_eq!(err.field_name(), Some("issue.fields.customfield_10209"));

    let err = jira::interpret(b"{not json", &JiraMapping::default()).unwrap_err();
    assert!(matches!(err, InboundError::NotJson(_)));
}

#[test]
fn a_jira_field_missing_from_the_issue_is_reported_with_its_jira_id() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&fixture("jira/issue-updated-approved.json")).unwrap();
    v["issue"]["fields"]
        .as_object_mut()
        .unwrap()
        .remove("customfield_10203");
    let mapping = JiraMapping::default();
    let draft = match jira::interpret(&serde_json::to_vec(&v).unwrap(), &mapping).unwrap() {
        Inbound::Approval(d) => d,
        other => panic!("{other:?}"),
    };
    let errors = draft.validate(now()).unwrap_err();
    assert_eq!(errors.fields().collect::<Vec<_>>(), ["identity.owner"]);
    assert_eq!(
        mapping.source_of("identity.owner").as_deref(),
        Some("customfield_10203")
    );
}

#[test]
fn a_servicenow_change_approval_becomes_the_request_it_describes() {
    let request = approval(
        servicenow::interpret(
            &fixture("servicenow/change-request-approved.json"),
            &ServiceNowMapping::default(),
        )
        .unwrap(),
    );
    assert_eq!(request.ticket.qualified_key(), "servicenow#CHG0031337");
    assert_eq!(
        request.ticket.link.as_deref(),
        Some(
            "https://example.service-now.com/change_request.do?sys_id=f0449e359480dae4383aef26b0f503ef"
        )
    );
    assert_eq!(request.requester.as_str(), "priya.raman@example.com");
    assert_eq!(request.approvals.len(), 2);
    assert_eq!(
        request.approvals[0].approved_at,
        Utc.with_ymd_and_hms(2026, 11, 29, 9, 12, 44).unwrap()
    );
    assert_eq!(request.scope.to_string(), "orders_reader, orders_reporting");
    assert_eq!(request.rotation_period.as_hours(), 8);
    let window = request.change_window.unwrap();
    assert_eq!(window.end, request.not_after);
}

/// The hostile sender adds an approver with no state, hoping it counts as approved:
/// the payload is refused, naming the entry.
#[test]
fn a_servicenow_approver_without_a_state_is_refused() {
    let mut body: serde_json::Value =
        serde_json::from_slice(&fixture("servicenow/change-request-approved.json")).unwrap();
    body["approvers"][1]
        .as_object_mut()
        .unwrap()
        .remove("state");
    let err = servicenow::interpret(
        &serde_json::to_vec(&body).unwrap(),
        &ServiceNowMapping::default(),
    )
    .unwrap_err();
    assert_eq!(err.field_name(), Some("approvers[1].state"), "{err:?}");
}

#[test]
fn a_servicenow_requested_item_approval_validates() {
    let request = approval(
        servicenow::interpret(
            &fixture("servicenow/sc-req-item-approved.json"),
            &ServiceNowMapping::default(),
        )
        .unwrap(),
    );
    assert_eq!(request.ticket.key.as_str(), "RITM0010001");
    assert_eq!(request.target.environment, Environment::NonProd);
    assert!(request.change_window.is_none());
}

#[test]
fn a_servicenow_cancellation_withdraws_the_ticket() {
    match servicenow::interpret(
        &fixture("servicenow/change-request-cancelled.json"),
        &ServiceNowMapping::default(),
    )
    .unwrap()
    {
        Inbound::TicketEnded(e) => {
            assert_eq!(
                (e.source, e.key.as_str(), e.end),
                (SourceSystem::Servicenow, "CHG0031337", TicketEnd::Withdrawn)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn eventbridge_details_use_the_generic_schema() {
    let envelope: serde_json::Value =
        serde_json::from_slice(&fixture("eventbridge/access-request-approved.json")).unwrap();
    let out = generic::interpret_eventbridge(
        envelope["detail-type"].as_str().unwrap(),
        &envelope["detail"],
    )
    .unwrap();
    let request = approval(out);
    assert_eq!(request.ticket.qualified_key(), "generic#REQ-2207");

    let envelope: serde_json::Value =
        serde_json::from_slice(&fixture("eventbridge/access-request-withdrawn.json")).unwrap();
    let out = generic::interpret_eventbridge(
        envelope["detail-type"].as_str().unwrap(),
        &envelope["detail"],
    )
    .unwrap();
    assert!(
        matches!(out, Inbound::TicketEnded(e) if e.end == TicketEnd::Withdrawn && e.key.as_str() == "REQ-2207")
    );
}

#[test]
fn generic_bodies_name_the_field_that_does_not_fit() {
    let err = generic::interpret(br#"{"event": "approved", "request": {"approvals": [{"approver": "a", "approved_at": 5}]}}"#).unwrap_err();
    assert_eq!(
        err.field_name(),
        Some("request.approvals[0].approved_at"),
        "{err}"
    );
    let err =
        generic::interpret(br#"{"event": "approved", "request": {"colour": "red"}}"#).unwrap_err();
    assert_eq!(err.field_name(), Some("request.colour"), "{err}");
    let err = generic::interpret(br#"{"event": "exploded"}"#).unwrap_err();
    assert!(err.field_name().is_some(), "{err}");
}

/// The read-back: what Jira's API answers for a request, compared with the webhook
/// the site sent for it.
#[test]
fn a_jira_read_back_agrees_with_its_own_webhook() {
    let json = |p: &str| serde_json::from_slice::<serde_json::Value>(&fixture(p)).unwrap();
    let mapping = JiraMapping::default();
    let histories = json("jira/api/changelog.json")["values"]
        .as_array()
        .unwrap()
        .clone();
    let approvals = json("jira/api/approvals.json")["values"]
        .as_array()
        .unwrap()
        .clone();
    let ticket = jira::ticket_from_api(
        &json("jira/api/issue.json"),
        &histories,
        &approvals,
        &mapping,
    )
    .unwrap();
    assert!(ticket.approved, "{}", ticket.status);
    assert_eq!(ticket.last_change, None, "only the status changed");
    let names: Vec<&str> = ticket
        .approvals
        .iter()
        .map(|a| a.approver.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["dana.okafor@example.com", "mallory.finch@example.com"]
    );
    assert_eq!(ticket.approvals[0].approver.id, "5b10ac8d82e05b22cc7d4ef5");

    let Inbound::Approval(event) =
        jira::interpret(&fixture("jira/api/webhook.json"), &mapping).unwrap()
    else {
        panic!("the webhook is an approval");
    };
    let verified = ticketbound_itsm::readback::verify(&event, &ticket).unwrap();
    assert_eq!(verified.counting().count(), 2);
    assert_eq!(verified.draft.identity.name.as_deref(), Some("orders-etl"));

    // A changelog that shows the scope edited after the approval makes both stale.
    let mut edited = histories.clone();
    edited.push(serde_json::json!({
        "id": "9999",
        "created": "2099-01-01T00:00:00.000+0000",
        "items": [{ "field": "customfield_10208", "fieldId": "customfield_10208" }]
    }));
    let stale =
        jira::ticket_from_api(&json("jira/api/issue.json"), &edited, &approvals, &mapping).unwrap();
    let verified = ticketbound_itsm::readback::verify(&event, &stale).unwrap();
    assert_eq!(verified.counting().count(), 0);
}
