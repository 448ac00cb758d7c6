//! The Lambda entry point: initialise once, then serve stream batches and change
//! window start schedules.

// Either event's handler nests the SDK clients deeply enough to pass the default limit.
#![recursion_limit = "256"]

use grant_provision::{Deps, ProvisionEvent, handle_event};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use ticketbound_runtime::EnvReader;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ticketbound_runtime::logging::init_lambda_tracing()?;
    let sdk = ticketbound_runtime::aws::lambda_sdk_config(EnvReader::from_process())?;
    let deps = Deps::from_env(&sdk, EnvReader::from_process())?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ProvisionEvent>| async move {
            handle_event(deps, event.payload).await
        },
    ))
    .await
}
