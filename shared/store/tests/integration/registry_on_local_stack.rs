//! The identity registry against the local stack: what operators do through it, and
//! what an insider with write access to its table can and cannot get away with.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::Utc;
use ticketbound_domain::{Actor, IdentityName, RegisteredIdentity, RegistryChangeError};
use ticketbound_store::{Applied, RegistryError};
use ticketbound_testkit::TestStack;

fn operator() -> Actor {
    Actor::operator("ops@example.com")
}

fn definition(name: &str) -> RegisteredIdentity {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "kind": "database_credential",
        "owner": "team-data-platform",
        "workload_principals": [format!("arn:aws:iam::123456789012:role/{name}")],
        "targets": ["orders-db"],
        "environments": ["prod"]
    }))
    .unwrap()
}

fn name(n: &str) -> IdentityName {
    IdentityName::new(n).unwrap()
}

#[tokio::test]
async fn an_entry_edited_by_hand_is_not_believed_not_built_upon_and_is_reported() {
    let stack = TestStack::get().await;
    let registry = stack.fresh_registry().await;
    registry
        .register(definition("orders-etl"), &operator(), Utc::now())
        .await
        .unwrap();
    registry
        .register(definition("billing-export"), &operator(), Utc::now())
        .await
        .unwrap();
    assert!(
        registry
            .get_checked(&name("orders-etl"))
            .await
            .unwrap()
            .is_some()
    );

    stack
        .add_principal_by_hand(
            &registry,
            "orders-etl",
            "arn:aws:iam::999999999999:role/attacker",
        )
        .await;
    // What an approval relies on: refused.
    assert!(matches!(
        registry.get_checked(&name("orders-etl")).await,
        Err(RegistryError::Tampered { .. })
    ));
    // An operator's next change would seal the edit into the chain: refused too.
    assert!(matches!(
        registry
            .retire(
                &name("orders-etl"),
                &operator(),
                Utc::now(),
                "decommissioned"
            )
            .await,
        Err(RegistryError::Tampered { .. })
    ));
    assert!(matches!(
        registry
            .put(definition("orders-etl"), &operator(), Utc::now())
            .await,
        Err(RegistryError::Tampered { .. })
    ));
    // The reconciler's view: the good one counts, the edited one is reported.
    let audit = registry.audit().await.unwrap();
    assert_eq!(
        audit
            .entries
            .keys()
            .map(IdentityName::as_str)
            .collect::<Vec<_>>(),
        ["billing-export"]
    );
    assert_eq!(audit.broken.len(), 1, "{:?}", audit.broken);
    assert_eq!(audit.broken[0].0, "IDENTITY#orders-etl");
}

#[tokio::test]
async fn adding_a_registered_name_is_refused_and_an_import_is_all_or_nothing() {
    let stack = TestStack::get().await;
    let registry = stack.fresh_registry().await;
    registry
        .register(definition("orders-etl"), &operator(), Utc::now())
        .await
        .unwrap();
    // Another team "adding" the same name does not replace the first team's.
    let mut theirs = definition("orders-etl");
    theirs.owner = ticketbound_domain::Owner::new("team-other").unwrap();
    assert!(matches!(
        registry
            .register(theirs.clone(), &operator(), Utc::now())
            .await,
        Err(RegistryError::Change(
            RegistryChangeError::AlreadyRegistered(_)
        ))
    ));
    registry
        .retire(
            &name("orders-etl"),
            &operator(),
            Utc::now(),
            "decommissioned",
        )
        .await
        .unwrap();

    // A file naming the retired identity unchanged: it stays retired, the new one is
    // registered.
    let applied = registry
        .import(
            vec![definition("orders-etl"), definition("billing-export")],
            &operator(),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        applied.iter().map(|(_, a)| *a).collect::<Vec<_>>(),
        [Applied::StaysRetired, Applied::Registered]
    );
    // A file that would change the retired one: refused, and the new one in it is
    // not registered either.
    let before = registry.list().await.unwrap();
    let refused = registry
        .import(
            vec![definition("ledger-backfill"), theirs],
            &operator(),
            Utc::now(),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(RegistryError::Change(RegistryChangeError::Retired(_)))
        ),
        "{refused:?}"
    );
    assert_eq!(
        registry.list().await.unwrap(),
        before,
        "nothing was written"
    );
    assert!(
        registry
            .get(&name("ledger-backfill"))
            .await
            .unwrap()
            .is_none()
    );
}
