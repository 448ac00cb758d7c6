//! The Lambda entry point: initialise once, then serve the audit table's stream and
//! the schedule (an EventBridge Scheduler event, anything without `Records`).

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use log_checkpoint::{Deps, handle_schedule, handle_stream};
use serde_json::{Value, json};
use ticketbound_runtime::EnvReader;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ticketbound_runtime::logging::init_lambda_tracing()?;
    let sdk = ticketbound_runtime::aws::lambda_sdk_config(EnvReader::from_process())?;
    let deps = Deps::from_env(&sdk, EnvReader::from_process())?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        if event.payload.get("Records").is_some() {
            let batch: Event = serde_json::from_value(event.payload)?;
            let logged = handle_stream(deps, batch).await;
            Ok::<Value, Error>(serde_json::to_value(logged)?)
        } else {
            let signed = handle_schedule(deps).await?;
            Ok(json!({ "signed": signed }))
        }
    }))
    .await
}
