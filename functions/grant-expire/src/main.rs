//! The Lambda entry point: initialise once, then serve schedules, stream batches and
//! sweeps.

use grant_expire::{Deps, ExpireEvent, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use ticketbound_runtime::EnvReader;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ticketbound_runtime::logging::init_lambda_tracing()?;
    let sdk = ticketbound_runtime::aws::lambda_sdk_config(EnvReader::from_process())?;
    let deps = Deps::from_env(&sdk, EnvReader::from_process())?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ExpireEvent>| async move { handle(deps, event.payload).await },
    ))
    .await
}
