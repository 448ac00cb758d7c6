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
//!
//! This is the wiring (which function, on which stream, with which dependencies and
//! environment); the machinery that stands in for Lambda and its event sources is
//! `ticketbound_local::host` and `ticketbound_local::triggers`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use itsm_intake::{Deps, IntakeEvent, IntakeResponse};
use serde_json::json;
use ticketbound_local::host::{
    FUNCTION_URL_MAX_BODY, feed_stream, function_url_event, json_response, plain,
};
use ticketbound_local::itsm::{ItsmStandIn, WebhookTarget};
use ticketbound_local::process::LocalError;
use ticketbound_local::stack::LocalStack;
use ticketbound_local::triggers::{Activity, QUIET_MAX};
use ticketbound_local::{meter, targets};
use ticketbound_runtime::EnvReader;

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
        (c::TARGETS, targets::targets_json(stack)),
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
            c::PROVISION_FUNCTION_ARN,
            targets::PROVISION_FUNCTION_ARN.to_owned(),
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
        (
            c::JIRA_CREDENTIALS_SECRET_ID,
            stack.itsm_credentials.jira.clone(),
        ),
        (c::SERVICENOW_URL, stack.servicenow_url()),
        (
            c::SERVICENOW_CREDENTIALS_SECRET_ID,
            stack.itsm_credentials.servicenow.clone(),
        ),
        (c::SERVICENOW_REVOKED_STATE, "3".to_owned()),
        (c::WRITEBACK_MAX_WAIT_SECS, "5".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Feeds the audit table's stream to the write-back, forever (as its event source
/// mapping would: INSERTs in order, partial-batch failures redelivered).
async fn run_writeback(stack: LocalStack, activity: Activity) -> Result<(), crate::CliError> {
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
        &activity,
        |batch| async { Ok(ticket_writeback::handle(&deps, batch).await.into()) },
    )
    .await
    .map_err(crate::CliError::Filter)
}

/// Events logged past the last checkpoint before the local checkpointer signs
/// another (a deployment's default is 64; the schedule signs the rest).
pub const LOCAL_CHECKPOINT_EVERY: u64 = 16;
/// How soon after something happens the local schedule asks the checkpointer to sign
/// what is unsigned (a deployment's schedule: every 5 minutes); with nothing
/// happening, once a minute.
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
async fn run_checkpointer(stack: LocalStack, activity: Activity) -> Result<(), crate::CliError> {
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
    let mut watch = activity.watch();
    tokio::spawn(async move {
        loop {
            // Quiet costs nothing: the schedule runs a moment after something happened
            // (what was logged meanwhile is signed together), else once a minute.
            if watch.sleep(QUIET_MAX).await {
                tokio::time::sleep(LOCAL_CHECKPOINT_PERIOD).await;
            }
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
        &activity,
        |batch| async { Ok(log_checkpoint::handle_stream(&deps, batch).await.into()) },
    )
    .await
    .map_err(crate::CliError::Filter)
}

/// Feeds the grants table's stream to the provisioner, forever.
async fn run_provisioner(stack: LocalStack, activity: Activity) -> Result<(), crate::CliError> {
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
        &activity,
        |batch| async {
            grant_provision::handle(&deps, batch)
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await
    .map_err(crate::CliError::Filter)
}

async fn serve(
    deps: Arc<Deps>,
    itsm: Arc<ItsmStandIn>,
    rotate: Arc<super::rotation::RotationWiring>,
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
    rotate: &super::rotation::RotationWiring,
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

/// The Jira project whose webhooks the local Jira site delivers to the local intake.
pub const JIRA_DEMO_PROJECT: &str = "OPS";

/// Serves until killed.
pub async fn run(stack: LocalStack, port: u16) -> Result<(), crate::CliError> {
    // The ITSM stand-in plays Jira and ServiceNow, not a function: it reaches the
    // emulator (for the credentials it accepts) straight, never through a detour.
    // The Jira site delivers its webhooks for the demo's project to this host's
    // intake, signed as a Jira administrator would configure it; other projects'
    // (the tests') are kept, not delivered.
    let webhook = WebhookTarget {
        url: format!("http://127.0.0.1:{port}/jira"),
        secret_id: stack.webhook_secrets.jira.clone(),
        projects: vec![JIRA_DEMO_PROJECT.to_owned()],
    };
    let itsm = Arc::new(ItsmStandIn::new(&stack, Some(webhook)).await);
    let deps = Arc::new(intake_deps(&stack).await?);
    let rotate = Arc::new(super::rotation::RotationWiring::counted(&stack).await?);
    // What wakes the idle loops: each request served here, each stream record read.
    let activity = Activity::default();
    let writeback_stack = stack.clone();
    let writeback_activity = activity.clone();
    tokio::spawn(async move {
        if let Err(e) = run_writeback(writeback_stack, writeback_activity).await {
            tracing::error!(error = %e, "the write-back stopped");
        }
    });
    let checkpointer_stack = stack.clone();
    let checkpointer_activity = activity.clone();
    tokio::spawn(async move {
        if let Err(e) = run_checkpointer(checkpointer_stack, checkpointer_activity).await {
            tracing::error!(error = %e, "the checkpointer stopped");
        }
    });
    let provisioner_stack = stack.clone();
    let provisioner_activity = activity.clone();
    tokio::spawn(async move {
        if let Err(e) = run_provisioner(provisioner_stack, provisioner_activity).await {
            tracing::error!(error = %e, "the provisioner stopped");
        }
    });
    let expiry_stack = stack.clone();
    let expiry_activity = activity.clone();
    tokio::spawn(async move {
        if let Err(e) = super::triggers::run(expiry_stack, expiry_activity).await {
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
        let activity = activity.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                // A request is likely to write (an approval, a note, a rotation):
                // the pollers look at once rather than at the end of their back-off.
                activity.note();
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
