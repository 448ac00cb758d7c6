//! Fault injection at the AWS SDK's own seam: an interceptor that makes chosen
//! operations fail before they reach the wire, as a network failure would (the SDK
//! reports it as a dispatch failure, which ticketbound treats as transient); that
//! lets them reach the emulator and be applied, then loses the answer (the SDK sees a
//! 500 and retries, as it does after a reset or a time-out); or that holds a call
//! until the test lets it go, to interleave two functions at a chosen point. The
//! clients, the emulator and every other call stay real.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

/// A refusal to answer with: HTTP status, AWS error type, how many more answers.
type Refusal = (u16, String, u32);

/// Operation name → how many more calls of it fail.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    plan: Arc<Mutex<HashMap<String, u32>>>,
    lost: Arc<Mutex<HashMap<String, u32>>>,
    /// Operation → (status, error type, how many more answers are refused).
    refused: Arc<Mutex<HashMap<String, Refusal>>>,
    pauses: Arc<Mutex<HashMap<String, Hold>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

/// The injector's side of a pause: it says the call arrived, then waits to go on.
type Hold = (Sender<()>, Receiver<()>);

/// A call held by [`FaultInjector::pause`]: it has reached the wire's edge once
/// [`Paused::reached`] returns, and goes on when the `Paused` is released or dropped.
#[derive(Debug)]
pub struct Paused {
    reached: Receiver<()>,
    resume: Option<Sender<()>>,
}

impl Paused {
    /// Waits (off the async runtime) until the held call has arrived; false if it did
    /// not within `timeout`.
    pub async fn reached(&mut self, timeout: Duration) -> bool {
        let reached = std::mem::replace(&mut self.reached, channel().1);
        match tokio::task::spawn_blocking(move || (reached.recv_timeout(timeout).is_ok(), reached))
            .await
        {
            Ok((arrived, reached)) => {
                self.reached = reached;
                arrived
            }
            Err(_) => false,
        }
    }

    /// Lets the held call go on.
    pub fn release(mut self) {
        if let Some(resume) = self.resume.take() {
            let _ = resume.send(());
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(resume) = self.resume.take() {
            let _ = resume.send(());
        }
    }
}

impl FaultInjector {
    /// Makes the next `times` calls of `operation` (e.g. `PutResourcePolicy`) fail.
    pub fn fail(&self, operation: &str, times: u32) {
        if let Ok(mut plan) = self.plan.lock() {
            plan.insert(operation.to_owned(), times);
        }
    }

    /// Lets the next `times` calls of `operation` reach the emulator (which applies
    /// them) and then replaces each answer with a 500: the caller does not know its
    /// call succeeded, and the SDK's retry meets its own first success.
    pub fn lose_answer(&self, operation: &str, times: u32) {
        if let Ok(mut lost) = self.lost.lock() {
            lost.insert(operation.to_owned(), times);
        }
    }

    /// Replaces the next `times` answers to `operation` with AWS's refusal `error_type`
    /// at HTTP `status` (e.g. 403 `AccessDeniedException`), an error no retry fixes.
    /// The emulator has applied the call by then: only its answer is refused.
    pub fn refuse_answer(&self, operation: &str, status: u16, error_type: &str, times: u32) {
        if let Ok(mut refused) = self.refused.lock() {
            refused.insert(operation.to_owned(), (status, error_type.to_owned(), times));
        }
    }

    /// Holds the next call of `operation` before it is sent, until the returned
    /// handle is released. The call blocks its thread: use a multi-threaded runtime.
    pub fn pause(&self, operation: &str) -> Paused {
        let (reached_tx, reached_rx) = channel();
        let (resume_tx, resume_rx) = channel();
        if let Ok(mut pauses) = self.pauses.lock() {
            pauses.insert(operation.to_owned(), (reached_tx, resume_rx));
        }
        Paused {
            reached: reached_rx,
            resume: Some(resume_tx),
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
        let paused = self
            .pauses
            .lock()
            .map_err(|_| "pauses poisoned")?
            .remove(&operation);
        if let Some((reached, resume)) = paused {
            let _ = reached.send(());
            // Bounded, so that a test that forgets to release fails instead of hanging.
            let wait = || {
                let _ = resume.recv_timeout(Duration::from_secs(60));
            };
            // On a multi-threaded runtime the worker hands its other tasks on first.
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
                _ => wait(),
            }
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

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(operation) = cfg.load::<Metadata>().map(|m| m.name().to_owned()) else {
            return Ok(());
        };
        let mut refused = self.refused.lock().map_err(|_| "fault plan poisoned")?;
        if let Some((status, error_type, left)) = refused.get_mut(&operation)
            && *left > 0
        {
            *left -= 1;
            let response = context.response_mut();
            *response.status_mut() = (*status).try_into()?;
            response.headers_mut().remove("x-amz-crc32");
            response.headers_mut().remove("content-length");
            response
                .headers_mut()
                .insert("x-amzn-errortype", error_type.clone());
            *response.body_mut() = SdkBody::from(format!(
                r#"{{"__type":"{error_type}","message":"injected: refused"}}"#
            ));
            return Ok(());
        }
        drop(refused);
        let mut lost = self.lost.lock().map_err(|_| "fault plan poisoned")?;
        if let Some(left) = lost.get_mut(&operation)
            && *left > 0
        {
            *left -= 1;
            let response = context.response_mut();
            *response.status_mut() = 500u16.try_into()?;
            response.headers_mut().remove("x-amz-crc32");
            response.headers_mut().remove("content-length");
            *response.body_mut() = SdkBody::from(
                r#"{"__type":"InternalServerError","message":"injected: the answer was lost"}"#,
            );
        }
        Ok(())
    }
}

/// A DynamoDB client over `sdk` with `faults`, keeping the SDK's own retries (a lost
/// answer is only interesting when the SDK retries it).
pub fn faulty_dynamodb(
    sdk: &aws_config::SdkConfig,
    faults: &FaultInjector,
) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk)
        .interceptor(faults.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
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
