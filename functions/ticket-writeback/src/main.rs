//! The Lambda entry point: initialise once, then serve the audit table's stream.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use ticket_writeback::{Deps, handle};
use ticketbound_runtime::EnvReader;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ticketbound_runtime::logging::init_lambda_tracing()?;
    let sdk = ticketbound_runtime::aws::lambda_sdk_config(EnvReader::from_process())?;
    let deps = Deps::from_env(&sdk, EnvReader::from_process())?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<DynamoDbEventResponse, Error>(handle(deps, event.payload).await.into())
    }))
    .await
}
