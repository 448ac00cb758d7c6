//! The Lambda entry point: initialise once, then reconcile on each scheduled call.

use grant_reconcile::{Deps, reconcile};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use ticketbound_runtime::EnvReader;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ticketbound_runtime::logging::init_lambda_tracing()?;
    let sdk = ticketbound_runtime::aws::lambda_sdk_config(EnvReader::from_process())?;
    let deps = Deps::from_env(&sdk, EnvReader::from_process())?;
    let deps = &deps;
    // The schedule's input ({"reconcile": true}) carries nothing the run depends on.
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move { reconcile(deps).await },
    ))
    .await
}
