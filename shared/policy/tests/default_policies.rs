//! Each default policy denies what it should, and names itself in the decision; an
//! operator's own policy directory replaces the defaults and takes effect.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::{DateTime, TimeZone, Utc};
use ticketbound_domain::RequestDraft;
use ticketbound_policy::{PolicyEngine, PolicyError, PolicyFacts};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
}

/// The fixture request: prod, two approvers, 8 hours, inside its change window.
fn facts() -> PolicyFacts {
    let draft: RequestDraft = serde_json::from_str(include_str!(
        "../../../tests/fixtures/generic/approved-request.json"
    ))
    .unwrap();
    PolicyFacts::from_request(&draft.validate(now()).unwrap(), now())
}

fn engine() -> PolicyEngine {
    PolicyEngine::with_defaults().unwrap()
}

#[track_caller]
fn denied_by(facts: &PolicyFacts, policy: &str) {
    let decision = engine().evaluate(facts).unwrap();
    assert!(!decision.allowed, "{policy} should deny: {decision:?}");
    assert_eq!(decision.policy_ids, [policy], "{decision:?}");
    assert_eq!(decision.reasons.len(), 1);
}

#[test]
fn the_fixture_request_is_allowed_by_the_permit() {
    let decision = engine().evaluate(&facts()).unwrap();
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.policy_ids, ["permit-approved-requests"]);
    assert!(decision.reasons.is_empty());
}

#[test]
fn prod_ttl_is_at_most_8_hours() {
    let mut f = facts();
    f.change_window_end = None;
    f.ttl_seconds = 8 * 3600 + 1;
    denied_by(&f, "max-ttl-prod");
    f.ttl_seconds = 8 * 3600;
    assert!(engine().evaluate(&f).unwrap().allowed);
}

#[test]
fn non_prod_ttl_is_at_most_7_days() {
    let mut f = facts();
    f.environment = "non-prod".into();
    f.change_window_end = None;
    f.ttl_seconds = 7 * 86400 + 1;
    denied_by(&f, "max-ttl-non-prod");
    f.ttl_seconds = 3 * 86400;
    assert!(
        engine().evaluate(&f).unwrap().allowed,
        "non-prod may outlast prod's limit"
    );
}

#[test]
fn the_requester_never_approves() {
    let mut f = facts();
    f.approvers.push(f.requester.clone());
    denied_by(&f, "separation-of-duties");
}

#[test]
fn whoever_created_the_ticket_may_not_approve_it() {
    let mut f = facts();
    f.creator = Some(f.approvers[0].clone());
    denied_by(&f, "separation-of-duties-creator");
    f.creator = Some("service-desk-agent@example.com".into());
    assert!(engine().evaluate(&f).unwrap().allowed);
}

#[test]
fn every_decision_names_the_policy_set_that_made_it() {
    let defaults = engine();
    let decision = defaults.evaluate(&facts()).unwrap();
    assert_eq!(decision.policy_set_sha256.len(), 64);
    assert_eq!(decision.policy_set_sha256, defaults.policy_set_sha256());
    let edited = ticketbound_policy::DEFAULT_POLICIES.replace("28800", "28799");
    let other = PolicyEngine::from_sources(&[("default.cedar".to_owned(), edited)]).unwrap();
    assert_ne!(other.policy_set_sha256(), defaults.policy_set_sha256());
}

#[test]
fn prod_needs_two_distinct_approvers() {
    let mut f = facts();
    f.approvers.truncate(1);
    denied_by(&f, "prod-two-approvers");
    // The same person twice is still one approver.
    f.approvers.push(f.approvers[0].clone());
    denied_by(&f, "prod-two-approvers");
    f.environment = "non-prod".into();
    assert!(engine().evaluate(&f).unwrap().allowed);
}

#[test]
fn an_owner_is_required() {
    let mut f = facts();
    f.owner = None;
    denied_by(&f, "owner-required");
    f.owner = Some(String::new());
    denied_by(&f, "owner-required");
}

#[test]
fn admin_and_wildcard_scopes_are_refused() {
    for bad in ["superuser", "rds_superuser", "pg_write_all_data", "admin"] {
        let mut f = facts();
        f.scope.push(bad.into());
        denied_by(&f, "no-admin-scope");
    }
    let mut f = facts();
    f.scope = vec!["orders_*".into()];
    denied_by(&f, "no-admin-scope");
}

#[test]
fn not_after_must_fall_within_the_change_window() {
    let mut f = facts();
    f.change_window_end = Some(f.not_after - 60);
    denied_by(&f, "within-change-window");
    f.change_window_end = None;
    assert!(
        engine().evaluate(&f).unwrap().allowed,
        "no window, no constraint"
    );
}

#[test]
fn several_violations_are_all_named() {
    let mut f = facts();
    f.approvers = vec![f.requester.clone()];
    f.scope.push("superuser".into());
    let decision = engine().evaluate(&f).unwrap();
    assert!(!decision.allowed);
    assert_eq!(
        decision.policy_ids,
        [
            "no-admin-scope",
            "prod-two-approvers",
            "separation-of-duties"
        ]
    );
    assert_eq!(decision.reasons.len(), 3);
    assert!(
        decision
            .reasons
            .contains(&"prod access needs at least two approvers".to_owned())
    );
}

#[test]
fn an_operators_policy_directory_replaces_the_defaults() {
    let dir = std::env::temp_dir().join(format!("tb-policies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("10-permit.cedar"),
        r#"@id("permit-all-approved") permit (principal, action, resource);"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("20-payments.cedar"),
        r#"@id("no-payments-db") @reason("payments-db is managed by the PCI team only")
forbid (principal, action, resource == Ticketbound::Target::"payments-db");"#,
    )
    .unwrap();
    let engine = PolicyEngine::from_dir(&dir).unwrap();

    let mut f = facts();
    f.approvers.truncate(1); // allowed now: the default two-approver rule is gone
    assert!(engine.evaluate(&f).unwrap().allowed);
    f.target_system = "payments-db".into();
    let decision = engine.evaluate(&f).unwrap();
    assert!(!decision.allowed);
    assert_eq!(decision.policy_ids, ["no-payments-db"]);
    assert_eq!(
        decision.reasons,
        ["payments-db is managed by the PCI team only"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn policies_are_checked_when_loaded() {
    let load = |text: &str| PolicyEngine::from_sources(&[("p.cedar".into(), text.into())]);
    assert!(matches!(
        load("permit (principal, action, resource);"),
        Err(PolicyError::MissingId { .. })
    ));
    let misspelt = load(
        r#"@id("x") forbid (principal, action, resource) when { context.enviroment == "prod" };"#,
    );
    assert!(
        matches!(misspelt, Err(PolicyError::Invalid(_))),
        "{misspelt:?}"
    );
    assert!(matches!(
        load("@id(\"x\") permit ("),
        Err(PolicyError::Parse { .. })
    ));
    assert!(matches!(
        load(
            r#"@id("x") permit (principal, action, resource); @id("x") permit (principal, action, resource);"#
        ),
        Err(PolicyError::DuplicateId(_))
    ));
}

#[test]
fn with_no_permit_everything_is_denied() {
    let engine = PolicyEngine::from_sources(&[(
        "only-forbid.cedar".into(),
        r#"@id("f") forbid (principal, action, resource) when { context.environment == "x" };"#
            .into(),
    )])
    .unwrap();
    let decision = engine.evaluate(&facts()).unwrap();
    assert!(!decision.allowed);
    assert!(decision.policy_ids.is_empty());
    assert_eq!(decision.reasons, ["no policy permits this request"]);
}

/// The target's capabilities (declared by its connector, from the configuration)
/// reach the policy: an operator can refuse grants at targets that cannot end a
/// revoked credential's sessions, whatever the request says.
#[test]
fn a_policy_can_refuse_targets_by_their_connectors_capabilities() {
    let engine = PolicyEngine::from_sources(&[(
        "caps.cedar".into(),
        r#"@id("permit-all") permit (principal, action, resource);
@id("sessions-must-die") @reason("the target cannot end a revoked credential's sessions")
forbid (principal, action, resource) unless { context.capabilities.kills_sessions };"#
            .into(),
    )])
    .unwrap();
    let mut f = facts();
    assert!(f.kills_sessions, "the fixture is a PostgreSQL target");
    assert!(engine.evaluate(&f).unwrap().allowed);
    f.kills_sessions = false;
    let decision = engine.evaluate(&f).unwrap();
    assert!(!decision.allowed);
    assert_eq!(decision.policy_ids, ["sessions-must-die"]);
}

/// The defaults are loaded at start-up without the schema (parsing it was most of the
/// intake's start-up): this is where they are validated instead. They pass strict
/// validation, and the strictly loaded set has the same hash, so decisions name the
/// same policy set whichever way it was loaded.
#[test]
fn the_shipped_policies_pass_strict_validation_against_the_schema() {
    let strict = PolicyEngine::from_sources(&PolicyEngine::default_sources())
        .unwrap_or_else(|e| panic!("the shipped policies do not validate: {e}"));
    assert_eq!(strict.policy_set_sha256(), engine().policy_set_sha256());
    let mut shipped: Vec<String> = engine().policy_ids().collect();
    let mut checked: Vec<String> = strict.policy_ids().collect();
    shipped.sort();
    checked.sort();
    assert_eq!(shipped, checked);
}

/// Facts with every optional field set, and with none: the strictly loaded engine
/// checks each context against the schema (an attribute it does not declare, or of
/// another type, is an error), and the shipped engine decides as it does.
#[test]
fn every_context_the_facts_build_matches_the_schema_and_decides_alike() {
    let strict = PolicyEngine::from_sources(&PolicyEngine::default_sources()).unwrap();
    let shipped = engine();
    let mut variants = Vec::new();
    let all = {
        let mut f = facts();
        f.creator = Some("someone.else".into());
        f.owner = Some("team-payments".into());
        f
    };
    assert!(all.change_window_start.is_some() && all.change_window_end.is_some());
    variants.push(all.clone());
    let mut none = all.clone();
    none.creator = None;
    none.owner = None;
    none.change_window_start = None;
    none.change_window_end = None;
    variants.push(none);
    let mut denied = all.clone();
    denied.approvers = vec![denied.requester.clone()];
    denied.scope.push("superuser".into());
    variants.push(denied);
    let mut non_prod = all;
    non_prod.environment = "non-prod".into();
    non_prod.kills_sessions = false;
    variants.push(non_prod);
    for f in &variants {
        let checked = strict
            .evaluate(f)
            .unwrap_or_else(|e| panic!("the context does not match the schema: {e}: {f:?}"));
        assert_eq!(shipped.evaluate(f).unwrap(), checked, "{f:?}");
    }
}

/// What a function holds from start-up: the defaults, parsed on their own thread,
/// decide as the engine loaded in place; an engine handed over loaded is served as is.
#[test]
fn the_defaults_loaded_in_the_background_decide_as_the_defaults() {
    let pending = ticketbound_policy::PendingEngine::defaults_in_background();
    let engine = pending.get().unwrap();
    assert_eq!(engine.evaluate(&facts()).unwrap(), defaults_decision());
    // A second call serves the same engine.
    assert!(std::ptr::eq(engine, pending.get().unwrap()));
    let ready = ticketbound_policy::PendingEngine::ready(engine_with_no_permit());
    assert!(!ready.get().unwrap().evaluate(&facts()).unwrap().allowed);
}

fn defaults_decision() -> ticketbound_policy::PolicyDecision {
    engine().evaluate(&facts()).unwrap()
}

fn engine_with_no_permit() -> PolicyEngine {
    PolicyEngine::from_sources(&[(
        "forbid.cedar".into(),
        r#"@id("nothing") forbid (principal, action, resource);"#.into(),
    )])
    .unwrap()
}
