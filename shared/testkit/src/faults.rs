//! Fault injection at the AWS SDK's own seam: an interceptor that makes chosen
//! operations fail before they reach the wire, as a network failure would (the SDK
//! reports it as a dispatch failure, which ticketbound treats as transient). The
//! clients, the emulator and every other call stay real.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Operation name → how many more calls of it fail.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    plan: Arc<Mutex<HashMap<String, u32>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FaultInjector {
    /// Makes the next `times` calls of `operation` (e.g. `PutResourcePolicy`) fail.
    pub fn fail(&self, operation: &str, times: u32) {
        if let Ok(mut plan) = self.plan.lock() {
            plan.insert(operation.to_owned(), times);
        }
    }

    /// Every operation called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "ticketbound-fault-injector"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(operation) = cfg.load::<Metadata>().map(|m| m.name().to_owned()) else {
            return Ok(());
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(operation.clone());
        }
        let mut plan = self.plan.lock().map_err(|_| "fault plan poisoned")?;
        match plan.get_mut(&operation) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(format!("injected fault: {operation}").into())
            }
            _ => Ok(()),
        }
    }
}

/// A Secrets Manager client over `sdk` with `faults` and without the SDK's own
/// retries (ticketbound's retry is the stream's redelivery).
pub fn faulty_secretsmanager(
    sdk: &aws_config::SdkConfig,
    faults: &FaultInjector,
) -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::config::Builder::from(sdk)
        .interceptor(faults.clone())
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// The same for EventBridge Scheduler.
pub fn faulty_scheduler(
    sdk: &aws_config::SdkConfig,
    faults: &FaultInjector,
) -> aws_sdk_scheduler::Client {
    let config = aws_sdk_scheduler::config::Builder::from(sdk)
        .interceptor(faults.clone())
        .retry_config(aws_sdk_scheduler::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_scheduler::Client::from_conf(config)
}
