//! A minimal Lambda Runtime API, as a function's `bootstrap` sees it: `GET
//! /2018-06-01/runtime/invocation/next` hands out the queued events one by one with the
//! documented headers (and, once they are used up, holds the request open, as Lambda
//! does between invocations); `POST …/invocation/{id}/response` and `…/error` and
//! `POST …/runtime/init/error` are recorded with the time they arrived.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    events: Vec<Value>,
    handed_out: usize,
    first_next: Option<Instant>,
    answers: Vec<(Instant, bool)>,
    init_error: bool,
}

/// One emulated Runtime API, for one function process.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    answered: Arc<Notify>,
}

/// When a process reached the API and answered.
#[derive(Debug, Clone)]
pub struct Timings {
    pub first_next: Option<Instant>,
    /// Each answer's time and whether it was a success (`/response`).
    pub answers: Vec<(Instant, bool)>,
    pub init_error: bool,
}

impl RuntimeApi {
    /// Serves `events` on an ephemeral loopback port until dropped with the runtime.
    pub async fn start(events: Vec<Value>) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let api = Self {
            addr: listener.local_addr()?,
            state: Arc::new(Mutex::new(State {
                events,
                ..State::default()
            })),
            answered: Arc::new(Notify::new()),
        };
        let server = api.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let api = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let api = api.clone();
                        async move { api.serve(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(api)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn timings(&self) -> Timings {
        let s = self.lock();
        Timings {
            first_next: s.first_next,
            answers: s.answers.clone(),
            init_error: s.init_error,
        }
    }

    /// Waits until `n` invocations were answered (or init failed).
    pub async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.answered.notified();
            {
                let s = self.lock();
                if s.answers.len() >= n || s.init_error {
                    return;
                }
            }
            notified.await;
        }
    }

    async fn serve(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let _ = req.into_body().collect().await;
        if method == http::Method::GET && path == "/2018-06-01/runtime/invocation/next" {
            let next = {
                let mut s = self.lock();
                s.first_next.get_or_insert_with(Instant::now);
                let n = s.handed_out;
                let event = s.events.get(n).cloned();
                if event.is_some() {
                    s.handed_out += 1;
                }
                event.map(|e| (n, e))
            };
            let Some((n, event)) = next else {
                // No more work: Lambda would freeze the process here.
                std::future::pending::<()>().await;
                return Ok(Response::new(Full::new(Bytes::new())));
            };
            let deadline = chrono::Utc::now().timestamp_millis() + 300_000;
            let mut r = Response::new(Full::new(Bytes::from(event.to_string())));
            let h = r.headers_mut();
            let mut put = |k: &'static str, v: String| {
                if let Ok(v) = http::HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            };
            put("lambda-runtime-aws-request-id", format!("bench-{n}"));
            put("lambda-runtime-deadline-ms", deadline.to_string());
            put(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:bench".into(),
            );
            put(
                "lambda-runtime-trace-id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=0".into(),
            );
            put("content-type", "application/json".into());
            return Ok(r);
        }
        if method == http::Method::POST {
            let done = if path == "/2018-06-01/runtime/init/error" {
                self.lock().init_error = true;
                true
            } else if path.starts_with("/2018-06-01/runtime/invocation/") {
                let ok = path.ends_with("/response");
                self.lock().answers.push((Instant::now(), ok));
                true
            } else {
                false
            };
            if done {
                self.answered.notify_waiters();
                let mut r = Response::new(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")));
                *r.status_mut() = StatusCode::ACCEPTED;
                return Ok(r);
            }
        }
        let mut r = Response::new(Full::new(Bytes::from_static(b"not found")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        Ok(r)
    }
}
