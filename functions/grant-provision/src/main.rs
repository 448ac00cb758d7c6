//! The Lambda entry point: initialise once, then serve stream batches.

use aws_lambda_events::event::dynamodb::Event;
use grant_provision::{Deps, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use ticketbound_runtime::EnvReader;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ticketbound_runtime::logging::init_lambda_tracing()?;
    let sdk = ticketbound_runtime::aws::lambda_sdk_config(EnvReader::from_process())?;
    let deps = Deps::from_env(&sdk, EnvReader::from_process())?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        handle(deps, event.payload).await
    }))
    .await
}
