//! The generic half of the function host: what Lambda does around a function, for any
//! function. Streams fed as an event source mapping feeds them (filter criteria,
//! batches, partial-batch failures redelivered, a record that keeps failing given up,
//! a checkpoint kept between hosts), and an HTTP request turned into a Function URL
//! event. Which function runs where, with which dependencies, is the CLI's wiring
//! (`cli/src/local/host.rs`); this crate depends on no function.

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::meter;
use crate::stack::LocalStack;
use crate::streams::{StreamError, StreamPoller};
use crate::triggers::{Activity, ActivityWatch, IdleBackoff};

/// Lambda Function URLs accept request bodies up to 6 MB.
pub const FUNCTION_URL_MAX_BODY: usize = 6 * 1024 * 1024;

/// The filter criteria of a function's event source mapping (its `STREAM_FILTERS`).
pub fn stream_filters(text: &str) -> Result<Vec<Value>, serde_json::Error> {
    serde_json::from_str(text)
}

/// Feeds `table`'s stream to `handle` as Lambda's event source mapping does: only the
/// records its `filters` pass, batches in order, what the answer reports as failed
/// delivered again (after a pause), a record that keeps failing given up after ten
/// attempts, loudly; a whole-batch error redelivers the batch. An idle poller backs
/// off and wakes on `activity`. Returns only when `filters` are not JSON.
pub async fn feed_stream<F, Fut>(
    sdk: &aws_config::SdkConfig,
    stack: &LocalStack,
    table: &str,
    function: &str,
    filters: &str,
    activity: &Activity,
    handle: F,
) -> Result<(), serde_json::Error>
where
    F: Fn(aws_lambda_events::event::dynamodb::Event) -> Fut,
    Fut: std::future::Future<
            Output = Result<aws_lambda_events::event::streams::DynamoDbEventResponse, String>,
        >,
{
    let mut poller = open_stream(sdk, table).await;
    poller.checkpoint_to(stream_checkpoint(stack, function));
    poller.filter(stream_filters(filters)?);
    let mut backoff = IdleBackoff::default();
    let mut watch = activity.watch();
    loop {
        let batch = match next_batch_noting(&mut poller, activity).await {
            Ok(Some(batch)) => {
                backoff.after(true);
                batch
            }
            Ok(None) => {
                idle_wait(&mut watch, &mut backoff).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, table, "reading the stream failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let n = batch.records.len();
        meter::invoked(function, 1);
        match handle(batch).await {
            Ok(response) => {
                let retrying = !response.batch_item_failures.is_empty();
                for dropped in poller.complete(n, &response) {
                    tracing::error!(record = %dropped["eventID"], function, "kept failing on a record; given up (AWS: on-failure destination)");
                }
                if retrying {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, function, "failed the whole batch; redelivering");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// The poller's next batch, noting on `activity` that the table was written to when
/// the poll read any record (one the filters drop included).
pub async fn next_batch_noting(
    poller: &mut StreamPoller,
    activity: &Activity,
) -> Result<Option<aws_lambda_events::event::dynamodb::Event>, StreamError> {
    let before = poller.records_read();
    let batch = poller.next_batch().await;
    if poller.records_read() > before {
        activity.note();
    }
    batch
}

/// An idle poller's wait: the back-off's, cut short (and the back-off started over)
/// when something happens.
pub async fn idle_wait(watch: &mut ActivityWatch, backoff: &mut IdleBackoff) {
    if watch.sleep(backoff.after(false)).await {
        backoff.after(true);
    }
}

/// Where `consumer`'s position in its stream is kept between hosts (beside the
/// description), as an event source mapping keeps its checkpoint.
pub fn stream_checkpoint(stack: &LocalStack, consumer: &str) -> std::path::PathBuf {
    stack.home().join(format!("stream-{consumer}.json"))
}

/// A poller on `table`'s stream, trying until the table answers: an event source
/// mapping does not give up because one DescribeTable failed.
pub async fn open_stream(sdk: &aws_config::SdkConfig, table: &str) -> StreamPoller {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match StreamPoller::new(sdk, table).await {
            Ok(poller) => return poller,
            // A table that is not there is a broken stack, not a passing fault: loud.
            Err(e) if attempt.is_multiple_of(10) => {
                tracing::error!(error = %ticketbound_runtime::error_chain(&e), table, attempt, "still cannot open the stream; trying again");
            }
            Err(e) => {
                tracing::warn!(error = %ticketbound_runtime::error_chain(&e), table, attempt, "could not open the stream; trying again");
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Lambda's rule for Function URLs: text-like content arrives as text, anything else
/// base64-encoded.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
        )
}

/// The Function URL event for one HTTP request.
pub fn function_url_event(
    parts: &http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    port: u16,
) -> Value {
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        // Lambda joins repeated headers with commas.
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) if is_text(content_type) => (text.to_owned(), false),
        _ => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = Utc::now();
    let path = parts.uri.path();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": format!("127.0.0.1:{port}"),
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": ulid::Ulid::new().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": body,
        "isBase64Encoded": encoded,
    })
}

pub fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = status;
    r
}

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut out = Response::new(Full::new(Bytes::from(body.to_string())));
    *out.status_mut() = status;
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    out
}
