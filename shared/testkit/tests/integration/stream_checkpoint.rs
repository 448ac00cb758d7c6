//! The local event source mapping keeps its position like Lambda's: a poller started
//! after another died goes on from the first record not yet done, and never delivers
//! again what was done.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use ticketbound_testkit::TestStack;
use ticketbound_testkit::streams::{StreamPoller, batch_keys};

async fn put(stack: &TestStack, table: &str, pk: &str) {
    stack
        .dynamodb()
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(pk.to_owned()))
        .item("sk", AttributeValue::S("GRANT".to_owned()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_new_poller_goes_on_from_the_first_record_not_done() {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let file = std::env::temp_dir().join(format!("checkpoint-{}.json", ulid::Ulid::new()));
    for pk in ["A", "B", "C"] {
        put(&stack, &tables.grants, pk).await;
    }

    let mut first = StreamPoller::new(&stack.sdk, &tables.grants).await.unwrap();
    first.checkpoint_to(file.clone());
    let batch = first.next_batch().await.unwrap().unwrap();
    assert_eq!(batch_keys(&batch), ["A", "B", "C"]);
    // A and B done, C failed: the function reports it, and then the host dies.
    let c = batch.records[2].change.sequence_number.clone().unwrap();
    let mut answer = DynamoDbEventResponse::default();
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(c);
    answer.batch_item_failures.push(failure);
    assert!(first.complete(3, &answer).is_empty());
    drop(first);

    put(&stack, &tables.grants, "D").await;
    let mut second = StreamPoller::new(&stack.sdk, &tables.grants).await.unwrap();
    second.checkpoint_to(file.clone());
    let batch = second.next_batch().await.unwrap().unwrap();
    assert_eq!(
        batch_keys(&batch),
        ["C", "D"],
        "C again, then what came after; never A or B"
    );
    second.complete(2, &DynamoDbEventResponse::default());
    drop(second);

    let mut third = StreamPoller::new(&stack.sdk, &tables.grants).await.unwrap();
    third.checkpoint_to(file.clone());
    assert!(
        third.next_batch().await.unwrap().is_none(),
        "everything was done"
    );

    // A checkpoint of another stream (a new emulator, another table) is not used.
    let other = stack.fresh_tables().await.unwrap();
    put(&stack, &other.grants, "E").await;
    let mut fourth = StreamPoller::new(&stack.sdk, &other.grants).await.unwrap();
    fourth.checkpoint_to(file.clone());
    assert_eq!(
        batch_keys(&fourth.next_batch().await.unwrap().unwrap()),
        ["E"]
    );
    let _ = std::fs::remove_file(&file);
}
