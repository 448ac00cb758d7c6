//! The store against DynamoDB as emulated by the local stack: the conditional and
//! transactional guarantees the rest of ticketbound relies on. Each test has tables of
//! its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use ticketbound_domain::Detail;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, ChainErrorKind, CredentialRef, Grant, GrantEvent, GrantState,
    LifecycleRules, verify_chain,
};
use ticketbound_store::{Delivery, Store, StoreError};
use ticketbound_testkit::{TestStack, sample_grant};

fn requested(grant: &mut Grant) -> Vec<ticketbound_domain::AuditEvent> {
    let at = grant.created_at;
    vec![
        grant.record(
            AuditRecord::new(
                at,
                Actor::itsm_user("priya.raman@example.com"),
                AuditAction::Requested,
            )
            .states(None, Some(grant.state)),
        ),
    ]
}

fn delivery(grant: &Grant, id: &str, expires_in: Duration) -> Delivery {
    Delivery {
        source_system: "jira".into(),
        delivery_id: id.into(),
        content_hash: "abc".into(),
        grant_id: grant.id,
        received_at: Utc::now(),
        expires_at: Utc::now() + expires_in,
    }
}

async fn count_items(stack: &TestStack, table: &str) -> i32 {
    stack
        .dynamodb()
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .count()
}

async fn setup() -> (TestStack, Store) {
    let stack = TestStack::get().await;
    let store = stack.fresh_store().await;
    (stack, store)
}

#[tokio::test]
async fn a_created_grant_reads_back_and_is_found_by_ticket_and_owner() {
    let (_, store) = setup().await;
    let mut grant = sample_grant(Utc::now(), Duration::hours(1));
    let events = requested(&mut grant);
    store
        .create_grant(&grant, &events, None, Utc::now())
        .await
        .unwrap();

    assert_eq!(
        store.get_grant(grant.id).await.unwrap(),
        Some(grant.clone())
    );
    let by_ticket = store
        .grants_for_ticket(&grant.request.ticket)
        .await
        .unwrap();
    assert_eq!(by_ticket, [grant.clone()]);
    let by_owner = store
        .grants_for_owner(&grant.request.identity.owner)
        .await
        .unwrap();
    assert_eq!(by_owner, [grant.clone()]);
    let trail = store.audit_trail(grant.id).await.unwrap();
    assert_eq!(trail, events);
    assert!(verify_chain(grant.id, &trail, Some(&grant.audit_head)).is_ok());
}

#[tokio::test]
async fn a_duplicate_create_is_refused_and_changes_nothing() {
    let (stack, store) = setup().await;
    let mut grant = sample_grant(Utc::now(), Duration::hours(1));
    let events = requested(&mut grant);
    store
        .create_grant(&grant, &events, None, Utc::now())
        .await
        .unwrap();
    let items_before = count_items(&stack, &store.tables().grants).await;

    let mut again = grant.clone();
    again.request.scope =
        ticketbound_domain::Scope::new([ticketbound_domain::Permission::new("other").unwrap()])
            .unwrap();
    let err = store
        .create_grant(&again, &[], None, Utc::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::GrantExists(id) if id == grant.id),
        "{err:?}"
    );

    assert_eq!(
        store.get_grant(grant.id).await.unwrap(),
        Some(grant.clone())
    );
    assert_eq!(
        count_items(&stack, &store.tables().grants).await,
        items_before
    );
    assert_eq!(store.audit_trail(grant.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_stale_version_is_refused() {
    let (_, store) = setup().await;
    let mut grant = sample_grant(Utc::now(), Duration::hours(1));
    let events = requested(&mut grant);
    store
        .create_grant(&grant, &events, None, Utc::now())
        .await
        .unwrap();

    // Two handlers read version 1 and both try to move the grant on.
    let rules = LifecycleRules::default();
    let (mut first, _) = grant
        .apply(&GrantEvent::ProvisioningStarted, Utc::now(), &rules)
        .unwrap();
    let (mut second, _) = grant
        .apply(&GrantEvent::TicketWithdrawn, Utc::now(), &rules)
        .unwrap();
    let e1 = first.record(AuditRecord::new(
        Utc::now(),
        Actor::component("a"),
        AuditAction::ProvisioningStarted,
    ));
    let e2 = second.record(AuditRecord::new(
        Utc::now(),
        Actor::component("b"),
        AuditAction::RevocationStarted,
    ));

    store.save_grant(&first, &[e1]).await.unwrap();
    let err = store.save_grant(&second, &[e2]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::StaleVersion { expected: 1, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable(), "the loser re-reads and tries again");

    let stored = store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Provisioning);
    assert_eq!(stored.version, 2);
    let trail = store.audit_trail(grant.id).await.unwrap();
    assert_eq!(trail.len(), 2, "the losing write left no audit event");
    assert!(verify_chain(grant.id, &trail, Some(&stored.audit_head)).is_ok());
}

#[tokio::test]
async fn a_failed_transaction_leaves_nothing_behind() {
    let (stack, store) = setup().await;
    let mut first = sample_grant(Utc::now(), Duration::hours(1));
    let events = requested(&mut first);
    store
        .create_grant(
            &first,
            &events,
            Some(&delivery(&first, "d-1", Duration::hours(24))),
            Utc::now(),
        )
        .await
        .unwrap();
    let grants_items = count_items(&stack, &store.tables().grants).await;
    let audit_items = count_items(&stack, &store.tables().audit).await;
    assert_eq!(grants_items, 3, "grant, expiry trigger, delivery");

    // The same delivery again, as a new grant: the delivery write fails, so the grant,
    // its trigger and its audit event must not appear either.
    let mut second = sample_grant(Utc::now(), Duration::hours(1));
    let events = requested(&mut second);
    let err = store
        .create_grant(
            &second,
            &events,
            Some(&delivery(&second, "d-1", Duration::hours(24))),
            Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateDelivery { delivery_id, .. } if delivery_id == "d-1"),
        "{err:?}"
    );

    assert_eq!(store.get_grant(second.id).await.unwrap(), None);
    assert!(store.audit_trail(second.id).await.unwrap().is_empty());
    assert_eq!(
        count_items(&stack, &store.tables().grants).await,
        grants_items
    );
    assert_eq!(
        count_items(&stack, &store.tables().audit).await,
        audit_items
    );
    let kept = store
        .find_delivery("jira", "d-1", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.grant_id, first.id,
        "the delivery still answers with the first grant"
    );
}

#[tokio::test]
async fn an_expired_idempotency_record_no_longer_blocks() {
    let (_, store) = setup().await;
    let mut old = sample_grant(Utc::now(), Duration::hours(1));
    let events = requested(&mut old);
    // Recorded with a lifetime that has run out; DynamoDB TTL has not deleted it yet.
    let stale = Delivery {
        received_at: Utc::now() - Duration::hours(25),
        ..delivery(&old, "d-2", -Duration::hours(1))
    };
    store
        .create_grant(
            &old,
            &events,
            Some(&stale),
            Utc::now() - Duration::hours(25),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .find_delivery("jira", "d-2", Utc::now())
            .await
            .unwrap(),
        None
    );

    let mut new = sample_grant(Utc::now(), Duration::hours(1));
    let events = requested(&mut new);
    store
        .create_grant(
            &new,
            &events,
            Some(&delivery(&new, "d-2", Duration::hours(24))),
            Utc::now(),
        )
        .await
        .unwrap();
    let found = store
        .find_delivery("jira", "d-2", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.grant_id, new.id);
}

#[tokio::test]
async fn an_ended_grant_keeps_its_record_but_loses_its_expiry_trigger() {
    let (stack, store) = setup().await;
    let mut grant = sample_grant(Utc::now(), Duration::hours(1));
    let events = requested(&mut grant);
    store
        .create_grant(&grant, &events, None, Utc::now())
        .await
        .unwrap();

    let rules = LifecycleRules::default();
    let mut g = grant.clone();
    for event in [
        GrantEvent::ProvisioningStarted,
        GrantEvent::Provisioned {
            credential: CredentialRef {
                secret_arn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x".into(),
                principal_name: "orders_etl_x".into(),
            },
        },
        GrantEvent::TicketWithdrawn,
        GrantEvent::RevokeConfirmed,
    ] {
        let (mut next, t) = g.apply(&event, Utc::now(), &rules).unwrap();
        let e = next.record(
            AuditRecord::new(Utc::now(), Actor::component("test"), AuditAction::Requested)
                .states(Some(t.from), Some(t.to)),
        );
        store.save_grant(&next, &[e]).await.unwrap();
        g = next;
    }

    let stored = store.get_grant(grant.id).await.unwrap().unwrap();
    assert_eq!(stored.state, GrantState::Revoked);
    assert_eq!(
        stored.request.approvals, grant.request.approvals,
        "who approved is kept"
    );
    let items = stack
        .dynamodb()
        .scan()
        .table_name(&store.tables().grants)
        .send()
        .await
        .unwrap();
    let sort_keys: Vec<_> = items.items().iter().map(|i| i["sk"].clone()).collect();
    assert_eq!(sort_keys, [AttributeValue::S("GRANT".into())]);
    // The grant record itself expires only after the retention period.
    let ttl: i64 = match &items.items()[0]["expires_at"] {
        AttributeValue::N(n) => n.parse().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(ttl >= (grant.not_after() + Duration::days(399)).timestamp());
    let trail = store.audit_trail(grant.id).await.unwrap();
    assert_eq!(
        verify_chain(grant.id, &trail, Some(&stored.audit_head))
            .unwrap()
            .seq,
        5
    );
}

#[tokio::test]
async fn an_audit_item_edited_in_the_table_breaks_verification() {
    let (stack, store) = setup().await;
    let mut grant = sample_grant(Utc::now(), Duration::hours(1));
    let mut events = requested(&mut grant);
    events.push(
        grant.record(
            AuditRecord::new(
                Utc::now(),
                Actor::component("policy"),
                AuditAction::PolicyEvaluated,
            )
            .detail(Detail::Decision, "allow"),
        ),
    );
    store
        .create_grant(&grant, &events, None, Utc::now())
        .await
        .unwrap();

    stack
        .dynamodb()
        .update_item()
        .table_name(&store.tables().audit)
        .key("grant_id", AttributeValue::S(grant.id.to_string()))
        .key("seq", AttributeValue::N("2".into()))
        .update_expression("SET details.decision = :d")
        .expression_attribute_values(":d", AttributeValue::S("deny".into()))
        .send()
        .await
        .unwrap();

    let trail = store.audit_trail(grant.id).await.unwrap();
    let err = verify_chain(grant.id, &trail, Some(&grant.audit_head)).unwrap_err();
    assert_eq!((err.seq, err.kind), (2, ChainErrorKind::Tampered));
}
