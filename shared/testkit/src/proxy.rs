//! Fault injection at the HTTP layer: a proxy on loopback between the functions and
//! what they call (the AWS emulator, the ITSM stand-in) that answers a share of the
//! requests with a throttle or a server error without forwarding them, and lets
//! another share through to be applied, then drops the connection before the answer
//! ("applied, the answer lost": what a reset or a time-out does, and what the SDK
//! interceptor seam of [`crate::faults`] cannot stage, since the call never leaves the
//! process there), or applied and answered with a server error all the same. The
//! faults are drawn from a seeded generator (concurrent requests draw in the order
//! they arrive, so a run is alike, not replayed exactly); every fault is counted by
//! kind and operation. What it does not stage: a request applied *after* its client
//! gave up (a slow server), the one race a read-back before a re-post cannot close.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy stands in front of: it decides how a refusal is worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// An AWS endpoint: JSON protocols (`X-Amz-Target`) get a `__type`; REST ones
    /// (Scheduler) an `x-amzn-ErrorType` header, as AWS answers.
    Aws,
    /// A vendor's REST API: 429 with `Retry-After`, 503.
    Itsm,
}

/// How often each fault happens, as a share of the requests (0.0 to 1.0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// Answered 429 (REST) or 400 ThrottlingException (AWS JSON), not forwarded.
    pub throttled: f64,
    /// Answered 500 (AWS) or 503 (ITSM), not forwarded.
    pub server_error: f64,
    /// Forwarded and applied upstream; the connection is then closed unanswered.
    pub answer_dropped: f64,
    /// Forwarded and applied upstream; answered with a server error anyway (a
    /// gateway that timed out on a request the service went on to finish).
    pub applied_then_failed: f64,
}

impl FaultRates {
    /// `total` shared as the harness uses it: two fifths throttles, three tenths
    /// server errors, a fifth dropped answers, a tenth applied then failed.
    pub fn split(total: f64) -> Self {
        Self {
            throttled: total * 0.4,
            server_error: total * 0.3,
            answer_dropped: total * 0.2,
            applied_then_failed: total * 0.1,
        }
    }

    pub const NONE: Self = Self {
        throttled: 0.0,
        server_error: 0.0,
        answer_dropped: 0.0,
        applied_then_failed: 0.0,
    };
}

/// A fault the proxy injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    Throttled,
    ServerError,
    AnswerDropped,
    AppliedThenFailed,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::AnswerDropped => "answer_dropped",
            Self::AppliedThenFailed => "applied_then_failed",
        }
    }
}

#[derive(Debug)]
struct State {
    upstream: Mutex<SocketAddr>,
    kind: Upstream,
    rates: Mutex<FaultRates>,
    rng: Mutex<StdRng>,
    /// Faults asked for by name, before any drawn: (operation it contains, fault,
    /// how many more).
    scripted: Mutex<Vec<(String, Fault, u32)>>,
    /// (fault, operation) → how many.
    injected: Mutex<BTreeMap<(Fault, String), u64>>,
    requests: Mutex<u64>,
}

/// The running proxy; it stops when dropped.
#[derive(Debug)]
pub struct FaultyProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultyProxy {
    /// Starts a proxy to `upstream` on a free loopback port, injecting nothing until
    /// [`FaultyProxy::set_rates`].
    pub async fn start(upstream: SocketAddr, kind: Upstream, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream: Mutex::new(upstream),
            kind,
            rates: Mutex::new(FaultRates::NONE),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            scripted: Mutex::new(Vec::new()),
            injected: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(0),
        });
        let serving = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, say: wait rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { relay(&state, req).await }
                    });
                    // A dropped answer ends the connection with an error: expected.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where requests go from now on (the upstream moved, e.g. a restarted host).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        if let Ok(mut u) = self.state.upstream.lock() {
            *u = upstream;
        }
    }

    pub fn set_rates(&self, rates: FaultRates) {
        if let Ok(mut r) = self.state.rates.lock() {
            *r = rates;
        }
    }

    /// Injects `fault` into the next `times` requests whose operation contains
    /// `operation` (e.g. `POST /rest/api/3/issue`, `TransactWriteItems`), whatever
    /// the rates: a test stages one exact sequence.
    pub fn script(&self, operation: &str, fault: Fault, times: u32) {
        if let Ok(mut s) = self.state.scripted.lock() {
            s.push((operation.to_owned(), fault, times));
        }
    }

    /// Every fault injected so far: (fault, operation) → count.
    pub fn injected(&self) -> BTreeMap<(Fault, String), u64> {
        self.state
            .injected
            .lock()
            .map(|i| i.clone())
            .unwrap_or_default()
    }

    /// Faults injected so far by kind.
    pub fn injected_by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut by_kind = BTreeMap::new();
        for ((fault, _), n) in self.injected() {
            *by_kind.entry(fault.as_str()).or_default() += n;
        }
        by_kind
    }

    /// Requests seen so far, faulted or not.
    pub fn requests(&self) -> u64 {
        self.state.requests.lock().map(|r| *r).unwrap_or_default()
    }
}

/// The operation a request is: the JSON protocols' target, else method and path.
fn operation(req: &Request<Incoming>) -> String {
    if let Some(target) = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    format!("{} {}", req.method(), req.uri().path())
}

fn draw(state: &State, operation: &str) -> Option<Fault> {
    if let Ok(mut scripted) = state.scripted.lock()
        && let Some(entry) = scripted
            .iter_mut()
            .find(|(op, _, left)| *left > 0 && operation.contains(op.as_str()))
    {
        entry.2 -= 1;
        return Some(entry.1);
    }
    let rates = state.rates.lock().map(|r| *r).unwrap_or_default();
    let x: f64 = state.rng.lock().map(|mut r| r.random()).unwrap_or(1.0);
    if x < rates.throttled {
        Some(Fault::Throttled)
    } else if x < rates.throttled + rates.server_error {
        Some(Fault::ServerError)
    } else if x < rates.throttled + rates.server_error + rates.answer_dropped {
        Some(Fault::AnswerDropped)
    } else if x < rates.throttled
        + rates.server_error
        + rates.answer_dropped
        + rates.applied_then_failed
    {
        Some(Fault::AppliedThenFailed)
    } else {
        None
    }
}

/// The refusal AWS or a vendor would give for `fault`.
fn refusal(kind: Upstream, fault: Fault, json_protocol: bool) -> Response<Full<Bytes>> {
    let (status, error_type) = match (kind, fault) {
        (Upstream::Aws, Fault::Throttled) if json_protocol => {
            (StatusCode::BAD_REQUEST, "ThrottlingException")
        }
        (Upstream::Aws, Fault::Throttled) => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
        (Upstream::Aws, _) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        (Upstream::Itsm, Fault::Throttled) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        (Upstream::Itsm, _) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
    };
    let body = serde_json::json!({
        "__type": error_type,
        "message": "injected by the fault-injection proxy",
    });
    let mut answer = Response::new(Full::new(Bytes::from(body.to_string())));
    *answer.status_mut() = status;
    let headers = answer.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(if json_protocol {
            "application/x-amz-json-1.0"
        } else {
            "application/json"
        }),
    );
    if kind == Upstream::Aws && !json_protocol {
        headers.insert(
            "x-amzn-errortype",
            http::HeaderValue::from_static(error_type),
        );
    }
    if kind == Upstream::Itsm && fault == Fault::Throttled {
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    answer
}

/// Why a relayed request got no answer.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("answer dropped by the fault-injection proxy")]
    Dropped,
    #[error("upstream: {0}")]
    Upstream(String),
}

async fn relay(state: &State, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, RelayError> {
    if let Ok(mut n) = state.requests.lock() {
        *n += 1;
    }
    let op = operation(&req);
    let json_protocol = req.headers().contains_key("x-amz-target");
    let fault = draw(state, &op);
    if let Some(fault) = fault
        && let Ok(mut injected) = state.injected.lock()
    {
        *injected.entry((fault, op)).or_default() += 1;
    }
    match fault {
        Some(f @ (Fault::Throttled | Fault::ServerError)) => {
            // Read the request through, as a server would before answering.
            let _ = req.into_body().collect().await;
            Ok(refusal(state.kind, f, json_protocol))
        }
        Some(Fault::AnswerDropped) => {
            let _ = forward(state, req).await;
            Err(RelayError::Dropped)
        }
        Some(Fault::AppliedThenFailed) => {
            let _ = forward(state, req).await;
            Ok(refusal(state.kind, Fault::ServerError, json_protocol))
        }
        None => forward(state, req).await,
    }
}

/// Sends `req` upstream on a connection of its own and returns the whole answer.
async fn forward(
    state: &State,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, RelayError> {
    let upstream = state
        .upstream
        .lock()
        .map(|u| *u)
        .map_err(|_| RelayError::Upstream("poisoned".into()))?;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| RelayError::Upstream(e.to_string()))?
        .to_bytes();
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| RelayError::Upstream(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| RelayError::Upstream(e.to_string()))?;
    tokio::spawn(connection);
    let answer = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| RelayError::Upstream(e.to_string()))?;
    let (parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| RelayError::Upstream(e.to_string()))?
        .to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
