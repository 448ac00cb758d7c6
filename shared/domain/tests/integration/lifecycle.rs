//! The lifecycle and the audit chain, tested through the public API: examples for the
//! paths that matter, properties for the invariants.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use ticketbound_domain::Detail;
use ticketbound_domain::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
}

fn request() -> AccessRequest {
    let draft: RequestDraft = serde_json::from_str(include_str!(
        "../../../../tests/fixtures/generic/approved-request.json"
    ))
    .unwrap();
    draft.validate(now()).unwrap()
}

fn grant() -> Grant {
    Grant::approved(GrantId::new(now(), 7), request(), now())
}

fn credential(name: &str) -> CredentialRef {
    CredentialRef {
        secret_arn: format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}"),
        principal_name: name.to_owned(),
    }
}

fn step(g: &Grant, e: GrantEvent, at: DateTime<Utc>) -> (Grant, Transition) {
    g.apply(&e, at, &LifecycleRules::default()).unwrap()
}

#[test]
fn the_happy_path_issues_then_revokes() {
    let g = grant();
    let (g, t) = step(&g, GrantEvent::ProvisioningStarted, now());
    assert_eq!(
        (t.from, t.to),
        (GrantState::Approved, GrantState::Provisioning)
    );
    assert_eq!(t.effects, [Effect::IssueCredential]);
    assert_eq!(g.version, 2);

    let (g, t) = step(
        &g,
        GrantEvent::Provisioned {
            credential: credential("orders_etl_a"),
        },
        now(),
    );
    assert_eq!(t.to, GrantState::Active);

    let (g, t) = step(
        &g,
        GrantEvent::Expired {
            trigger: ExpiryTrigger::Schedule,
        },
        g.not_after(),
    );
    assert_eq!(t.to, GrantState::Revoking);
    assert_eq!(t.effects, [Effect::RevokeCredential]);
    assert_eq!(
        g.end_cause,
        Some(EndCause::Expired(ExpiryTrigger::Schedule))
    );

    let (g, t) = step(&g, GrantEvent::RevokeConfirmed, g.not_after());
    assert_eq!(t.to, GrantState::Revoked);
    assert_eq!(g.ended_at, Some(g.not_after()));
    assert_eq!(g.version, 5);
}

#[test]
fn the_first_trigger_wins_and_later_ones_are_no_ops() {
    let g = grant();
    let (g, _) = step(&g, GrantEvent::ProvisioningStarted, now());
    let (g, _) = step(
        &g,
        GrantEvent::Provisioned {
            credential: credential("r"),
        },
        now(),
    );
    let (g, _) = step(&g, GrantEvent::TicketWithdrawn, now());
    for late in [
        GrantEvent::Expired {
            trigger: ExpiryTrigger::TtlBackstop,
        },
        GrantEvent::TicketWithdrawn,
        GrantEvent::Expired {
            trigger: ExpiryTrigger::Sweep,
        },
    ] {
        let (same, t) = step(&g, late, g.not_after());
        assert!(!t.changed);
        assert_eq!(same, g);
    }
    assert_eq!(g.end_cause, Some(EndCause::TicketWithdrawn));
}

#[test]
fn provisioning_after_the_not_after_time_goes_straight_to_revocation() {
    let g = grant();
    let (g, _) = step(&g, GrantEvent::ProvisioningStarted, now());
    let late = g.not_after() + Duration::seconds(1);
    let (g, t) = step(
        &g,
        GrantEvent::Provisioned {
            credential: credential("r"),
        },
        late,
    );
    assert_eq!(t.to, GrantState::Revoking);
    assert_eq!(t.effects, [Effect::RevokeCredential]);
    assert_eq!(
        g.credential,
        Some(credential("r")),
        "revocation must know what to kill"
    );
}

#[test]
fn provisioning_gives_up_after_the_configured_attempts() {
    let rules = LifecycleRules {
        max_provisioning_attempts: 2,
    };
    let failure = GrantEvent::ProvisioningFailed {
        reason: "target unreachable".into(),
        retryable: true,
    };
    let mut g = grant();
    for _ in 0..2 {
        (g, _) = g
            .apply(&GrantEvent::ProvisioningStarted, now(), &rules)
            .unwrap();
        let (next, t) = g.apply(&failure, now(), &rules).unwrap();
        g = next;
        if g.provisioning_attempts < 2 {
            assert_eq!(
                t.to,
                GrantState::Provisioning,
                "a retryable failure is retried"
            );
        } else {
            assert_eq!(t.to, GrantState::Failed);
            assert_eq!(
                t.effects,
                [Effect::RevokeCredential],
                "partial work is undone"
            );
        }
    }
    assert_eq!(g.last_error.as_deref(), Some("target unreachable"));
    let err = g
        .apply(&GrantEvent::ProvisioningStarted, now(), &rules)
        .unwrap_err();
    assert!(matches!(err, TransitionError::Illegal { .. }));
}

#[test]
fn a_withdrawn_approval_before_provisioning_ends_without_revocation_work() {
    let (g, t) = step(&grant(), GrantEvent::TicketWithdrawn, now());
    assert_eq!(t.to, GrantState::Revoked);
    assert!(t.effects.is_empty());
    assert_eq!(g.end_cause, Some(EndCause::TicketWithdrawn));
}

/// A grant whose ticket's change window begins an hour after its approval.
fn grant_with_later_window() -> Grant {
    let mut g = grant();
    g.request.change_window = Some(ChangeWindow {
        start: now() + Duration::hours(1),
        end: g.not_after(),
    });
    g
}

#[test]
fn nothing_is_issued_before_the_change_window_begins() {
    let g = grant_with_later_window();
    let start = now() + Duration::hours(1);
    assert_eq!(g.window_starts_after(now()), Some(start));
    let err = g
        .apply(
            &GrantEvent::ProvisioningStarted,
            now(),
            &LifecycleRules::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, TransitionError::BeforeChangeWindow { starts_at } if starts_at == start),
        "{err:?}"
    );
    let before = start - Duration::seconds(1);
    assert!(
        g.apply(
            &GrantEvent::ProvisioningStarted,
            before,
            &LifecycleRules::default()
        )
        .is_err(),
        "not a second early"
    );

    // Deferred once: the same deferral again changes nothing (no second audit event).
    let (deferred, t) = step(&g, GrantEvent::ProvisioningDeferred { until: start }, now());
    assert!(t.changed);
    assert_eq!(deferred.state, GrantState::Approved);
    assert_eq!(deferred.deferred_until, Some(start));
    let (_, again) = step(
        &deferred,
        GrantEvent::ProvisioningDeferred { until: start },
        now() + Duration::minutes(5),
    );
    assert!(!again.changed);
    // A deferral to any other time, or once the window began, is not the domain's.
    for (until, at) in [(start + Duration::hours(1), now()), (start, start)] {
        assert!(
            g.apply(
                &GrantEvent::ProvisioningDeferred { until },
                at,
                &LifecycleRules::default()
            )
            .is_err(),
            "deferred to {until} at {at}"
        );
    }

    // A start schedule refused for good fails the grant before anything is made; a
    // failure that may pass does not end it (the start's retry takes it).
    let (failed, _) = step(
        &deferred,
        GrantEvent::ProvisioningFailed {
            reason: "AccessDenied".into(),
            retryable: false,
        },
        now(),
    );
    assert_eq!(failed.state, GrantState::Failed);
    assert!(failed.credential.is_none());
    assert!(
        deferred
            .apply(
                &GrantEvent::ProvisioningFailed {
                    reason: "throttled".into(),
                    retryable: true
                },
                now(),
                &LifecycleRules::default()
            )
            .is_err()
    );

    // At the start it is issued as any other grant.
    let (started, t) = step(&deferred, GrantEvent::ProvisioningStarted, start);
    assert_eq!(started.state, GrantState::Provisioning);
    assert_eq!(t.effects, [Effect::IssueCredential]);

    // Withdrawn before the start, it ends with nothing to revoke, and the start's
    // schedule firing afterwards changes nothing.
    let (withdrawn, t) = step(&deferred, GrantEvent::TicketWithdrawn, now());
    assert_eq!(withdrawn.state, GrantState::Revoked);
    assert!(t.effects.is_empty());
    let (_, late) = step(&withdrawn, GrantEvent::ProvisioningStarted, start);
    assert!(!late.changed);
}

#[test]
fn ticket_closure_revokes_only_when_the_request_says_so() {
    let mut g = grant();
    g.request.revocation_trigger = RevocationTrigger::NotAfter;
    let (_, t) = step(&g, GrantEvent::TicketClosed, now());
    assert!(!t.changed);
    g.request.revocation_trigger = RevocationTrigger::NotAfterOrTicketClosed;
    let (_, t) = step(&g, GrantEvent::TicketClosed, now());
    assert_eq!(t.to, GrantState::Revoked);
}

#[test]
fn a_credential_reported_for_an_ended_grant_is_an_error_the_caller_must_act_on() {
    let (g, _) = step(&grant(), GrantEvent::TicketWithdrawn, now());
    let err = g
        .apply(
            &GrantEvent::Provisioned {
                credential: credential("late"),
            },
            now(),
            &LifecycleRules::default(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        TransitionError::Terminal {
            state: GrantState::Revoked,
            event: EventKind::Provisioned
        }
    );
}

#[test]
fn a_rotation_is_recorded_once_and_never_keeps_an_expired_grant_alive() {
    let (g, _) = step(&grant(), GrantEvent::ProvisioningStarted, now());
    let (g, _) = step(
        &g,
        GrantEvent::Provisioned {
            credential: credential("a"),
        },
        now(),
    );
    let rotated = |v: &str| GrantEvent::Rotated {
        version_id: v.to_owned(),
    };
    let later = now() + Duration::hours(1);

    let (g, t) = step(&g, rotated("v1"), later);
    assert!(t.changed);
    assert_eq!(g.state, GrantState::Active);
    assert_eq!(g.secret_version.as_deref(), Some("v1"));
    assert_eq!(g.last_rotated_at, Some(later));

    // finishSecret retried: the same version again changes nothing.
    let (same, t) = step(&g, rotated("v1"), later + Duration::minutes(1));
    assert!(!t.changed);
    assert_eq!(same, g);

    // A rotation reported after the not-after time ends the grant instead.
    let (ended, t) = step(&g, rotated("v2"), g.not_after() + Duration::seconds(1));
    assert_eq!(t.to, GrantState::Revoking);
    assert_eq!(t.effects, vec![Effect::RevokeCredential]);
    assert_eq!(
        ended.end_cause,
        Some(EndCause::Expired(ExpiryTrigger::Rotation))
    );

    // And a rotation can never be reported for a grant that has ended.
    let (revoked, _) = step(
        &ended,
        GrantEvent::RevokeConfirmed,
        g.not_after() + Duration::minutes(1),
    );
    assert!(
        revoked
            .apply(
                &rotated("v3"),
                g.not_after() + Duration::minutes(2),
                &LifecycleRules::default()
            )
            .is_err()
    );
}

#[test]
fn grants_round_trip_through_json() {
    let mut g = grant();
    let e = g.record(AuditRecord::new(
        now(),
        Actor::component("test"),
        AuditAction::Requested,
    ));
    let text = serde_json::to_string(&g).unwrap();
    let back: Grant = serde_json::from_str(&text).unwrap();
    assert_eq!(back, g);
    let text = serde_json::to_string(&e).unwrap();
    let back: AuditEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(back, e);
    assert!(verify_chain(g.id, &[back], Some(&g.audit_head)).is_ok());
}

// ---------------------------------------------------------------- properties

fn any_event() -> impl Strategy<Value = GrantEvent> {
    let trigger = prop_oneof![
        Just(ExpiryTrigger::Schedule),
        Just(ExpiryTrigger::TtlBackstop),
        Just(ExpiryTrigger::Sweep),
        Just(ExpiryTrigger::Rotation),
        Just(ExpiryTrigger::LateEvent),
    ];
    prop_oneof![
        Just(GrantEvent::ProvisioningStarted),
        // The only deferral the provisioner records: to the window's start.
        Just(GrantEvent::ProvisioningDeferred {
            until: now() + Duration::hours(1)
        }),
        prop_oneof![Just("a"), Just("b")].prop_map(|n| GrantEvent::Provisioned {
            credential: credential(n)
        }),
        any::<bool>().prop_map(|retryable| GrantEvent::ProvisioningFailed {
            reason: "boom".into(),
            retryable
        }),
        prop_oneof![Just("v1"), Just("v2")].prop_map(|v| GrantEvent::Rotated {
            version_id: v.to_owned()
        }),
        trigger.prop_map(|trigger| GrantEvent::Expired { trigger }),
        Just(GrantEvent::TicketWithdrawn),
        Just(GrantEvent::TicketClosed),
        Just(GrantEvent::RevokeConfirmed),
    ]
}

/// A sequence of events, each at a time offset (seconds) from the grant's creation;
/// the grant lives for 8 hours, and offsets reach past that.
fn any_history() -> impl Strategy<Value = Vec<(GrantEvent, i64)>> {
    prop::collection::vec((any_event(), 0i64..40_000), 0..40).prop_map(|mut v| {
        // Time never runs backwards for one grant.
        v.sort_by_key(|(_, t)| *t);
        v
    })
}

proptest! {
    // The lifecycle is small and fast to run: many cases find rare orderings.
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn no_event_moves_a_grant_out_of_a_terminal_state(history in any_history(), rejected in any::<bool>()) {
        let mut g = if rejected {
            Grant::rejected(GrantId::new(now(), 1), request(), vec!["denied".into()], now())
        } else {
            grant()
        };
        let mut ended: Option<GrantState> = None;
        for (event, offset) in history {
            if let Some(state) = ended {
                prop_assert_eq!(g.state, state);
            }
            if let Ok((next, t)) = g.apply(&event, now() + Duration::seconds(offset), &LifecycleRules::default()) {
                if t.from.is_terminal() {
                    prop_assert!(!t.changed);
                    prop_assert_eq!(&next, &g);
                }
                g = next;
            }
            if g.state.is_terminal() {
                ended.get_or_insert(g.state);
            }
        }
        if rejected {
            prop_assert_eq!(g.state, GrantState::Rejected);
        }
    }

    #[test]
    fn a_grant_is_never_active_at_or_after_its_not_after_time(history in any_history()) {
        let mut g = grant();
        for (event, offset) in history {
            let at = now() + Duration::seconds(offset);
            if let Ok((next, _)) = g.apply(&event, at, &LifecycleRules::default()) {
                g = next;
                if g.state == GrantState::Active {
                    prop_assert!(at < g.not_after(), "Active at {} with not-after {}", at, g.not_after());
                }
            }
        }
    }

    #[test]
    fn nothing_is_issued_before_the_change_window_begins_whatever_the_order(history in any_history()) {
        let mut g = grant_with_later_window();
        let start = now() + Duration::hours(1);
        for (event, offset) in history {
            let at = now() + Duration::seconds(offset);
            if let Ok((next, t)) = g.apply(&event, at, &LifecycleRules::default()) {
                g = next;
                if at < start {
                    // (A credential reported for a failed grant is recorded to be
                    // revoked; nothing here asks for one to be made.)
                    prop_assert!(
                        !matches!(g.state, GrantState::Provisioning | GrantState::Active),
                        "{:?} at {} before the window's start {}", g.state, at, start
                    );
                    prop_assert!(!t.effects.contains(&Effect::IssueCredential));
                }
            }
        }
    }

    #[test]
    fn versions_increase_by_one_exactly_when_something_changed(history in any_history()) {
        let mut g = grant();
        for (event, offset) in history {
            if let Ok((next, t)) = g.apply(&event, now() + Duration::seconds(offset), &LifecycleRules::default()) {
                prop_assert_eq!(next.version, g.version + u64::from(t.changed));
                g = next;
            }
        }
    }
}

fn chain_of(len: usize, details: &[String]) -> (Grant, Vec<AuditEvent>) {
    let mut g = grant();
    let events = (0..len)
        .map(|i| {
            let mut record = AuditRecord::new(
                now() + Duration::seconds(i as i64),
                Actor::component("test"),
                AuditAction::Rotated,
            )
            .states(Some(GrantState::Active), Some(GrantState::Active));
            record = record
                .detail(Detail::Attempt, i)
                .detail(Detail::Note, &details[i % details.len()]);
            g.record(record)
        })
        .collect();
    (g, events)
}

#[derive(Debug, Clone)]
enum Damage {
    EditDetail(usize),
    EditTime(usize),
    EditActor(usize),
    EditAction(usize),
    EditState(usize),
    Remove(usize),
    Swap(usize, usize),
}

fn any_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::EditDetail),
        any::<usize>().prop_map(Damage::EditTime),
        any::<usize>().prop_map(Damage::EditActor),
        any::<usize>().prop_map(Damage::EditAction),
        any::<usize>().prop_map(Damage::EditState),
        any::<usize>().prop_map(Damage::Remove),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Damage::Swap(a, b)),
    ]
}

proptest! {
    #[test]
    fn an_intact_chain_verifies(len in 0usize..30, details in prop::collection::vec(".{0,20}", 1..4)) {
        let (g, events) = chain_of(len, &details);
        prop_assert_eq!(verify_chain(g.id, &events, Some(&g.audit_head)), Ok(g.audit_head));
    }

    #[test]
    fn any_single_change_removal_or_reordering_is_detected(
        len in 1usize..30,
        details in prop::collection::vec(".{0,20}", 1..4),
        damage in any_damage(),
    ) {
        let (g, mut events) = chain_of(len, &details);
        let pick = |i: usize| i % len;
        match damage {
            Damage::EditDetail(i) => { events[pick(i)].details.insert("note".into(), "edited by hand".into()); }
            Damage::EditTime(i) => { events[pick(i)].at += Duration::nanoseconds(1); }
            Damage::EditActor(i) => { events[pick(i)].actor.id.push('x'); }
            Damage::EditAction(i) => { events[pick(i)].action = AuditAction::Revoked; }
            Damage::EditState(i) => { events[pick(i)].state_after = Some(GrantState::Revoked); }
            Damage::Remove(i) => { events.remove(pick(i)); }
            Damage::Swap(a, b) => {
                let (a, b) = (pick(a), pick(b));
                prop_assume!(a != b);
                events.swap(a, b);
            }
        }
        prop_assert!(verify_chain(g.id, &events, Some(&g.audit_head)).is_err());
    }

    #[test]
    fn a_recomputed_hash_does_not_hide_an_edit(len in 2usize..20, at in 0usize..19) {
        // An attacker who edits an event and recomputes its hash breaks the next link.
        let (g, mut events) = chain_of(len, &["x".to_owned()]);
        let i = at % (len - 1);
        events[i].details.insert("note".into(), "forged".into());
        events[i].hash = events[i].compute_hash();
        let err = verify_chain(g.id, &events, Some(&g.audit_head)).unwrap_err();
        prop_assert_eq!(err.kind, ChainErrorKind::BrokenLink);
        prop_assert_eq!(err.seq, events[i + 1].seq);
    }
}

#[test]
fn the_break_is_reported_where_it_is() {
    let (g, mut events) = chain_of(5, &["x".to_owned()]);
    events.remove(4);
    let err = verify_chain(g.id, &events, Some(&g.audit_head)).unwrap_err();
    assert_eq!((err.seq, err.kind), (5, ChainErrorKind::Truncated));

    let (g, mut events) = chain_of(5, &["x".to_owned()]);
    events.remove(2);
    let err = verify_chain(g.id, &events, Some(&g.audit_head)).unwrap_err();
    assert_eq!((err.seq, err.kind), (3, ChainErrorKind::OutOfSequence));

    let (g, mut events) = chain_of(5, &["x".to_owned()]);
    events[1].actor.id = "mallory".into();
    let err = verify_chain(g.id, &events, Some(&g.audit_head)).unwrap_err();
    assert_eq!((err.seq, err.kind), (2, ChainErrorKind::Tampered));

    let (other, _) = chain_of(1, &["x".to_owned()]);
    let mut foreign = Grant::approved(GrantId::new(now(), 99), request(), now());
    let e = foreign.record(AuditRecord::new(
        now(),
        Actor::component("t"),
        AuditAction::Requested,
    ));
    let err = verify_chain(other.id, &[e], None).unwrap_err();
    assert_eq!(err.kind, ChainErrorKind::ForeignEvent);
}

#[test]
fn any_event_on_an_active_grant_past_its_time_starts_revocation() {
    // Found by the property above: a straggler event must not leave the grant Active.
    let g = grant();
    let (g, _) = step(&g, GrantEvent::ProvisioningStarted, now());
    let (g, _) = step(
        &g,
        GrantEvent::Provisioned {
            credential: credential("a"),
        },
        now(),
    );
    let late = g.not_after();
    let (g, t) = step(
        &g,
        GrantEvent::ProvisioningFailed {
            reason: "boom".into(),
            retryable: false,
        },
        late,
    );
    assert_eq!(t.to, GrantState::Revoking);
    assert_eq!(t.effects, [Effect::RevokeCredential]);
    assert_eq!(
        g.end_cause,
        Some(EndCause::Expired(ExpiryTrigger::LateEvent))
    );
}
