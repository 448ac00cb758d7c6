//! The function host: serves the Lambda functions on loopback the way AWS invokes them.
//!
//! - The intake, behind an HTTP server that turns each request into a Lambda Function
//!   URL event (payload format 2.0, AWS's field names and encoding rules), calls the
//!   same `handle` the Lambda runtime calls, and turns the response back into HTTP.
//! - The provisioner, fed from the grants table's stream as Lambda's event source
//!   mapping feeds it: batches in the DynamoDB event shape, partial-batch failures
//!   redelivered, a record that keeps failing given up after ten attempts (where AWS
//!   would send it to the on-failure destination), loudly.
//!
//! - The expiry function, on every trigger AWS would fire (see `triggers`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use itsm_intake::{Deps, IntakeEvent, IntakeResponse};
use serde_json::{Map, Value, json};
use ticketbound_runtime::EnvReader;
use ticketbound_runtime::local::LocalStack;

use super::meter;
use super::process::LocalError;

/// Lambda Function URLs accept request bodies up to 6 MB.
const FUNCTION_URL_MAX_BODY: usize = 6 * 1024 * 1024;

/// The environment a deployed intake would have, pointed at the local stack.
pub fn intake_env(stack: &LocalStack) -> Vec<(String, String)> {
    use itsm_intake::config as c;
    [
        (c::GRANTS_TABLE, stack.grants_table.clone()),
        (c::AUDIT_TABLE, stack.audit_table.clone()),
        (c::IDENTITIES_TABLE, stack.identities_table.clone()),
        (c::JIRA_SECRET_ID, stack.webhook_secrets.jira.clone()),
        (
            c::SERVICENOW_SECRET_ID,
            stack.webhook_secrets.servicenow.clone(),
        ),
        (c::GENERIC_SECRET_ID, stack.webhook_secrets.generic.clone()),
        // Jira approvals are read back from the local Jira site with the intake's
        // own read-only account; ServiceNow and generic senders have no read-back
        // here, so the local stack believes them on their signature, and says so in
        // every grant they make.
        (c::JIRA_API_URL, stack.jira_url()),
        (
            c::JIRA_READ_SECRET_ID,
            stack.itsm_credentials.jira_reader.clone(),
        ),
        (c::SENDER_ONLY, "servicenow,generic".to_owned()),
        (c::TARGETS, super::targets::targets_json(stack)),
        // The fixtures' integration, in moto's account.
        (c::EVENTBRIDGE_SOURCES, "com.example.itsm".to_owned()),
        (c::EVENTBRIDGE_ACCOUNT, "123456789012".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The intake's dependencies, built as its `main` builds them.
pub async fn intake_deps(stack: &LocalStack) -> Result<Deps, crate::CliError> {
    let sdk = stack
        .function_sdk_config(&meter::counts("itsm-intake"))
        .await;
    let mut vars = intake_env(stack);
    // Operators may point the local intake at their own policies.
    if let Ok(dir) = std::env::var(itsm_intake::config::POLICY_DIR) {
        vars.push((itsm_intake::config::POLICY_DIR.to_owned(), dir));
    }
    Deps::from_env(&sdk, EnvReader::from_map(vars))
        .map_err(|e| crate::CliError::Startup(Box::new(e)))
}

/// The environment a deployed provisioner would have, pointed at the local stack.
pub fn provision_env(stack: &LocalStack) -> Vec<(String, String)> {
    use super::targets;
    use grant_provision::config as c;
    [
        (c::GRANTS_TABLE, stack.grants_table.clone()),
        (c::AUDIT_TABLE, stack.audit_table.clone()),
        (c::IDENTITIES_TABLE, stack.identities_table.clone()),
        (c::TARGETS, targets::targets_json(stack)),
        (
            c::EXPIRY_FUNCTION_ARN,
            targets::EXPIRY_FUNCTION_ARN.to_owned(),
        ),
        (
            c::SCHEDULER_ROLE_ARN,
            targets::SCHEDULER_ROLE_ARN.to_owned(),
        ),
        (c::SCHEDULE_GROUP, targets::SCHEDULE_GROUP.to_owned()),
        (
            c::ROTATION_FUNCTION_ARN,
            targets::ROTATION_FUNCTION_ARN.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The environment a deployed write-back would have, pointed at the local stack and
/// its ITSM stand-in.
pub fn writeback_env(stack: &LocalStack) -> Vec<(String, String)> {
    use ticket_writeback::config as c;
    [
        (c::GRANTS_TABLE, stack.grants_table.clone()),
        (c::AUDIT_TABLE, stack.audit_table.clone()),
        (c::LOG_TABLE, stack.log.table.clone()),
        (c::JIRA_URL, stack.jira_url()),
        (c::JIRA_CREDENTIALS, stack.itsm_credentials.jira.clone()),
        (c::SERVICENOW_URL, stack.servicenow_url()),
        (
            c::SERVICENOW_CREDENTIALS,
            stack.itsm_credentials.servicenow.clone(),
        ),
        (c::SERVICENOW_REVOKED_STATE, "3".to_owned()),
        (c::MAX_WAIT_SECS, "5".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Feeds the audit table's stream to the write-back, forever (as its event source
/// mapping would: INSERTs in order, partial-batch failures redelivered).
async fn run_writeback(stack: LocalStack) -> Result<(), crate::CliError> {
    // The event source mapping reads the stream; the function's own calls are counted.
    let sdk = stack.sdk_config().await;
    let counted = stack
        .function_sdk_config(&meter::counts("ticket-writeback"))
        .await;
    let deps =
        ticket_writeback::Deps::from_env(&counted, EnvReader::from_map(writeback_env(&stack)))
            .map_err(crate::CliError::Config)?;
    eprintln!(
        "function host: ticket-writeback on the stream of {}, writing to the ITSM stand-in",
        stack.audit_table
    );
    feed_stream(
        &sdk,
        &stack,
        &stack.audit_table,
        "ticket-writeback",
        ticket_writeback::config::STREAM_FILTERS,
        |batch| async { Ok(ticket_writeback::handle(&deps, batch).await.into()) },
    )
    .await
}

/// Events logged past the last checkpoint before the local checkpointer signs
/// another (a deployment's default is 64; the schedule signs the rest).
pub const LOCAL_CHECKPOINT_EVERY: u64 = 16;
/// How often the local schedule asks the checkpointer to sign what is unsigned (a
/// deployment's: every 5 minutes).
pub const LOCAL_CHECKPOINT_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// The environment a deployed checkpointer would have, pointed at the local stack.
pub fn checkpoint_env(stack: &LocalStack) -> Vec<(String, String)> {
    use log_checkpoint::config as c;
    [
        (c::GRANTS_TABLE, stack.grants_table.clone()),
        (c::AUDIT_TABLE, stack.audit_table.clone()),
        (c::LOG_TABLE, stack.log.table.clone()),
        (c::LOG_KEY_ID, stack.log.key_id.clone()),
        (c::LOG_BUCKET, stack.log.bucket.clone()),
        (c::LOG_ORIGIN, stack.log.origin.clone()),
        (c::CHECKPOINT_EVERY, LOCAL_CHECKPOINT_EVERY.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Feeds the audit table's stream to the checkpointer (its second consumer, beside
/// the write-back), and invokes it on its schedule, forever.
async fn run_checkpointer(stack: LocalStack) -> Result<(), crate::CliError> {
    let sdk = stack.sdk_config().await;
    let counted = stack
        .function_sdk_config(&meter::counts("log-checkpoint"))
        .await;
    let deps = std::sync::Arc::new(
        log_checkpoint::Deps::from_env(&counted, EnvReader::from_map(checkpoint_env(&stack)))
            .map_err(crate::CliError::Config)?,
    );
    eprintln!(
        "function host: log-checkpoint on the stream of {}, signing into s3://{}",
        stack.audit_table, stack.log.bucket
    );
    let scheduled = std::sync::Arc::clone(&deps);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LOCAL_CHECKPOINT_PERIOD).await;
            if let Err(e) = log_checkpoint::handle_schedule(&scheduled).await {
                tracing::error!(error = %ticketbound_runtime::error_chain(&e), "the scheduled checkpoint failed");
            }
        }
    });
    feed_stream(
        &sdk,
        &stack,
        &stack.audit_table,
        "log-checkpoint",
        log_checkpoint::config::STREAM_FILTERS,
        |batch| async { Ok(log_checkpoint::handle_stream(&deps, batch).await.into()) },
    )
    .await
}

/// Feeds the grants table's stream to the provisioner, forever.
async fn run_provisioner(stack: LocalStack) -> Result<(), crate::CliError> {
    let sdk = stack.sdk_config().await;
    let counted = stack
        .function_sdk_config(&meter::counts("grant-provision"))
        .await;
    let deps =
        grant_provision::Deps::from_env(&counted, EnvReader::from_map(provision_env(&stack)))
            .map_err(crate::CliError::Config)?;
    eprintln!(
        "function host: grant-provision on the stream of {}",
        stack.grants_table
    );
    feed_stream(
        &sdk,
        &stack,
        &stack.grants_table,
        "grant-provision",
        grant_provision::config::STREAM_FILTERS,
        |batch| async {
            grant_provision::handle(&deps, batch)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await
}

/// The filter criteria of a function's event source mapping (its `STREAM_FILTERS`).
pub fn stream_filters(text: &str) -> Result<Vec<Value>, crate::CliError> {
    serde_json::from_str(text).map_err(crate::CliError::Filter)
}

/// Feeds `table`'s stream to `handle` as Lambda's event source mapping does: only the
/// records its `filters` pass, batches in order, what the answer reports as failed
/// delivered again (after a pause), a record that keeps failing given up after ten
/// attempts, loudly; a whole-batch error redelivers the batch.
async fn feed_stream<F, Fut>(
    sdk: &aws_config::SdkConfig,
    stack: &LocalStack,
    table: &str,
    function: &str,
    filters: &str,
    handle: F,
) -> Result<(), crate::CliError>
where
    F: Fn(aws_lambda_events::event::dynamodb::Event) -> Fut,
    Fut: std::future::Future<
            Output = Result<aws_lambda_events::event::streams::DynamoDbEventResponse, String>,
        >,
{
    let mut poller = open_stream(sdk, table).await;
    poller.checkpoint_to(stream_checkpoint(stack, function));
    poller.filter(stream_filters(filters)?);
    let mut backoff = super::triggers::IdleBackoff::default();
    loop {
        let batch = match poller.next_batch().await {
            Ok(Some(batch)) => {
                backoff.after(true);
                batch
            }
            Ok(None) => {
                tokio::time::sleep(backoff.after(false)).await;
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

/// Where `consumer`'s position in its stream is kept between hosts (beside the
/// description), as an event source mapping keeps its checkpoint.
pub fn stream_checkpoint(stack: &LocalStack, consumer: &str) -> std::path::PathBuf {
    stack.home().join(format!("stream-{consumer}.json"))
}

/// A poller on `table`'s stream, trying until the table answers: an event source
/// mapping does not give up because one DescribeTable failed.
pub async fn open_stream(
    sdk: &aws_config::SdkConfig,
    table: &str,
) -> ticketbound_testkit::streams::StreamPoller {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match ticketbound_testkit::streams::StreamPoller::new(sdk, table).await {
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

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = status;
    r
}

async fn serve(
    deps: Arc<Deps>,
    itsm: Arc<super::itsm::ItsmStandIn>,
    rotate: Arc<secret_rotate::Deps>,
    peer: SocketAddr,
    port: u16,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, FUNCTION_URL_MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large for a Function URL",
            ));
        }
    };
    if parts.uri.path().starts_with("/itsm/") {
        return Ok(itsm.serve(&parts, &body).await);
    }
    if let Some(route) = parts.uri.path().strip_prefix("/local/") {
        return Ok(serve_local(&rotate, &parts.method, route).await);
    }
    meter::invoked("itsm-intake", 1);
    let event: IntakeEvent =
        match serde_json::from_value(function_url_event(&parts, &body, peer, port)) {
            Ok(e) => e,
            Err(e) => {
                return Ok(plain(
                    StatusCode::BAD_REQUEST,
                    &format!("not a valid request: {e}"),
                ));
            }
        };
    let response = match itsm_intake::handle(&deps, event).await {
        Ok(IntakeResponse::Http(r)) => r,
        Ok(IntakeResponse::Event(_)) => {
            return Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected event response",
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "intake failed");
            return Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ));
        }
    };
    let body = match response.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => Bytes::from(t),
        Some(aws_lambda_events::encodings::Body::Binary(b)) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = StatusCode::from_u16(u16::try_from(response.status_code).unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *out.headers_mut() = response.headers;
    Ok(out)
}

/// The host's own routes: `GET /local/meter` (what each function has cost so far)
/// and `POST /local/rotate/<grant id>` (rotate that grant's credential now, as its
/// rotation schedule would, with the host's counted rotation function).
async fn serve_local(
    rotate: &secret_rotate::Deps,
    method: &http::Method,
    route: &str,
) -> Response<Full<Bytes>> {
    match (method.as_str(), route.split_once('/')) {
        ("GET", None) if route == "meter" => json_response(StatusCode::OK, &meter::snapshot()),
        ("POST", Some(("rotate", id))) => {
            let Ok(id) = id.parse::<ticketbound_domain::GrantId>() else {
                return plain(StatusCode::BAD_REQUEST, "not a grant id");
            };
            match super::rotation::rotate_grant_with(rotate, id).await {
                Ok(r) => json_response(
                    StatusCode::OK,
                    &json!({"secret": r.secret_arn, "version": r.token, "attempts": r.attempts}),
                ),
                Err(e) => plain(
                    match e {
                        crate::CliError::NotFound(_) => StatusCode::NOT_FOUND,
                        _ => StatusCode::CONFLICT,
                    },
                    &ticketbound_runtime::error_chain(&e),
                ),
            }
        }
        _ => plain(StatusCode::NOT_FOUND, "no such route"),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut out = Response::new(Full::new(Bytes::from(body.to_string())));
    *out.status_mut() = status;
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    out
}

/// The Jira project whose webhooks the local Jira site delivers to the local intake.
pub const JIRA_DEMO_PROJECT: &str = "OPS";

/// Serves until killed.
pub async fn run(stack: LocalStack, port: u16) -> Result<(), crate::CliError> {
    // The ITSM stand-in plays Jira and ServiceNow, not a function: it reaches the
    // emulator (for the credentials it accepts) straight, never through a detour.
    // The Jira site delivers its webhooks for the demo's project to this host's
    // intake, signed as a Jira administrator would configure it; other projects'
    // (the tests') are kept, not delivered.
    let webhook = super::itsm::WebhookTarget {
        url: format!("http://127.0.0.1:{port}/jira"),
        secret_id: stack.webhook_secrets.jira.clone(),
        projects: vec![JIRA_DEMO_PROJECT.to_owned()],
    };
    let itsm = Arc::new(super::itsm::ItsmStandIn::new(&stack, Some(webhook)).await);
    let deps = Arc::new(intake_deps(&stack).await?);
    let rotate = Arc::new(super::rotation::rotate_deps_counted(&stack).await?);
    let writeback_stack = stack.clone();
    tokio::spawn(async move {
        if let Err(e) = run_writeback(writeback_stack).await {
            tracing::error!(error = %e, "the write-back stopped");
        }
    });
    let checkpointer_stack = stack.clone();
    tokio::spawn(async move {
        if let Err(e) = run_checkpointer(checkpointer_stack).await {
            tracing::error!(error = %e, "the checkpointer stopped");
        }
    });
    let provisioner_stack = stack.clone();
    tokio::spawn(async move {
        if let Err(e) = run_provisioner(provisioner_stack).await {
            tracing::error!(error = %e, "the provisioner stopped");
        }
    });
    let expiry_stack = stack.clone();
    tokio::spawn(async move {
        if let Err(e) = super::triggers::run(expiry_stack).await {
            tracing::error!(error = %e, "the expiry triggers stopped");
        }
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| LocalError::Io {
            path: addr.to_string().into(),
            source,
        })?;
    eprintln!(
        "function host: itsm-intake at http://{addr}/ (routes /jira, /servicenow, /generic); the ITSM stand-in under /itsm/jira and /itsm/servicenow"
    );
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let deps = Arc::clone(&deps);
        let itsm = Arc::clone(&itsm);
        let rotate = Arc::clone(&rotate);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                serve(
                    Arc::clone(&deps),
                    Arc::clone(&itsm),
                    Arc::clone(&rotate),
                    peer,
                    port,
                    req,
                )
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
