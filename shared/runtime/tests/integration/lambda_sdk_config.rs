//! A function's SDK configuration (built without the provider chain, with its own
//! HTTPS client) reaches the local stack exactly as the chain-built one does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ticketbound_runtime::EnvReader;
use ticketbound_runtime::aws::lambda_sdk_config;
use ticketbound_testkit::TestStack;

#[tokio::test]
async fn a_function_built_from_lambdas_environment_calls_dynamodb() {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let sdk = lambda_sdk_config(EnvReader::from_map([
        ("AWS_REGION", stack.local.region.as_str()),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_ENDPOINT_URL", stack.local.aws_endpoint.as_str()),
    ]))
    .unwrap();
    let described = aws_sdk_dynamodb::Client::new(&sdk)
        .describe_table()
        .table_name(&tables.grants)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.table().and_then(|t| t.table_name()),
        Some(tables.grants.as_str())
    );
}
