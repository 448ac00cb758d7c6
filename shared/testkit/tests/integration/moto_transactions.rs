//! The local stack's moto undoes a failed `TransactWriteItems` item by item (see
//! `MOTO_SERVER_SCRIPT`) instead of restoring copies of whole tables: a cancelled
//! transaction must leave every item it named, and the table's stream, exactly as
//! they were, and what other writes did in between must survive.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use ticketbound_testkit::TestStack;
use ticketbound_testkit::streams::{StreamPoller, batch_keys};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

async fn value_of(stack: &TestStack, table: &str, pk: &str) -> Option<String> {
    let out = stack
        .dynamodb()
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s("GRANT"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
        .and_then(|i| i.get("v").and_then(|v| v.as_s().ok()).cloned())
}

#[tokio::test]
async fn a_cancelled_transaction_changes_no_item_and_no_stream_record() {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let ddb = stack.dynamodb();
    for (pk, v) in [("A", "1"), ("OTHER", "kept")] {
        ddb.put_item()
            .table_name(&tables.grants)
            .item("pk", s(pk))
            .item("sk", s("GRANT"))
            .item("v", s(v))
            .send()
            .await
            .unwrap();
    }

    // A reader of the stream, as the function host's, before the transaction: it
    // must go on reading the same stream after it (moto's own rollback put a copy of
    // the table, stream and all, in place of the one being read).
    let mut poller = StreamPoller::new(&stack.sdk, &tables.grants).await.unwrap();
    let first = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(batch_keys(&first), ["A", "OTHER"]);
    poller.complete(first.records.len(), &Default::default());

    // A changed in place, B created, then a condition on C fails: all undone.
    let update = Update::builder()
        .table_name(&tables.grants)
        .key("pk", s("A"))
        .key("sk", s("GRANT"))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", s("2"))
        .build()
        .unwrap();
    let put = Put::builder()
        .table_name(&tables.grants)
        .item("pk", s("B"))
        .item("sk", s("GRANT"))
        .item("v", s("new"))
        .build()
        .unwrap();
    let check = ConditionCheck::builder()
        .table_name(&tables.grants)
        .key("pk", s("C"))
        .key("sk", s("GRANT"))
        .condition_expression("attribute_exists(pk)")
        .build()
        .unwrap();
    let cancelled = ddb
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(update).build())
        .transact_items(TransactWriteItem::builder().put(put).build())
        .transact_items(TransactWriteItem::builder().condition_check(check).build())
        .send()
        .await;
    assert!(cancelled.is_err(), "the condition on C fails");
    assert_eq!(
        value_of(&stack, &tables.grants, "A").await.as_deref(),
        Some("1")
    );
    assert_eq!(value_of(&stack, &tables.grants, "B").await, None);
    assert_eq!(
        value_of(&stack, &tables.grants, "OTHER").await.as_deref(),
        Some("kept")
    );

    // A write after it is the next record the reader gets.
    ddb.put_item()
        .table_name(&tables.grants)
        .item("pk", s("D"))
        .item("sk", s("GRANT"))
        .send()
        .await
        .unwrap();
    let batch = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(
        batch_keys(&batch),
        ["D"],
        "no record of the cancelled writes, and D"
    );
}
