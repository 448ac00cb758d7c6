//! `ticket-writeback`: each lifecycle step of a grant, told to its ticket.
//!
//! Triggered by the audit table's stream (INSERTs; new images), in order per shard.
//! For each audit event worth telling (see `ticketbound_itsm::note`) it posts a work
//! note (ServiceNow) or a comment (Jira), and, when the grant is revoked, optionally
//! moves the ticket's state or transitions the issue.
//!
//! **Once, in effect.** Delivery is at least once, so a write-back record per audit
//! event is claimed before the post and settled after it: a redelivered record finds
//! it settled and posts nothing; one that finds it only claimed (the last attempt died
//! around the post) looks for the note's marker on the ticket before posting again.
//! The claim is a conditional put whose refusal carries the record in the way, and the
//! settlement is written in one transaction with the audit event that tells of it:
//! with the grant's read, two DynamoDB calls and the audit event per note (the newest
//! signed checkpoint each note names is read at most every few seconds).
//!
//! **Failures.** 429 and 5xx (and unreachable) are retried with backoff, honouring
//! Retry-After; a 401/403 is retried once with credentials read again (they may have
//! been rotated); any other 4xx is not retried. Once an attempt may have posted the
//! note without our knowing (a broken connection, a 5xx), the ticket is read for the
//! marker before the next post. When an invocation's attempts run out on failures
//! that may pass, the record is held (`ReportBatchItemFailures`; the claim keeps the
//! count) and the stream delivers it again, for `HOLD_ROUNDS` rounds; after that, or
//! at once on a refusal no retry can fix, the note goes to the dead-letter record,
//! the grant's audit says so (`ticket_update_failed`), the metric `WritebackFailures`
//! counts it, and the shard moves on. A failure of DynamoDB itself holds the shard
//! too, so nothing is lost.
//!
//! The write-back's own audit events (`ticket_updated`, `ticket_update_failed`) are
//! never told to the ticket, or it would tell of itself without end.

pub mod config;

use std::sync::Arc;
use std::time::Duration;
use ticketbound_domain::Detail;

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::Utc;
use serde::Serialize;
use ticketbound_domain::{
    Actor, AuditAction, AuditEvent, AuditRecord, Grant, SourceSystem, Ticket,
};
use ticketbound_evidence::{Witness, Witnessed};
use ticketbound_itsm::note::{self, Note, carries_marker};
use ticketbound_itsm::outbound::{Jira, PostError, Posted, ServiceNow};
use ticketbound_runtime::{ConfigError, EnvReader, ExposeSecret};
use ticketbound_secrets::{SecretCache, SecretsError};
use ticketbound_store::log::LogStore;
use ticketbound_store::stream::audit_from_image;
use ticketbound_store::{Claim, Store, StoreError, WritebackRecord, WritebackState};
use tokio::sync::Mutex;

pub use config::WritebackConfig;

/// Component name in audit events and metrics.
pub const COMPONENT: &str = "ticket-writeback";

#[derive(Debug)]
pub struct Deps {
    pub store: Store,
    /// The signed log's table, for the newest checkpoint each note names.
    pub log: LogStore,
    pub secrets: SecretCache,
    pub config: WritebackConfig,
    servicenow: Mutex<Option<Arc<ServiceNow>>>,
    jira: Mutex<Option<Arc<Jira>>>,
    /// The newest signed checkpoint as last read, and when: the notes of one batch
    /// (and of the batches of the next few seconds) name it without reading it again.
    newest_signed: std::sync::Mutex<Option<(std::time::Instant, Option<Witnessed>)>>,
    /// How long one read of it serves ([`CHECKPOINT_READ_SERVES`]).
    pub checkpoint_read_serves: Duration,
}

/// How long a read of the newest signed checkpoint serves the notes that follow. Any
/// checkpoint the log has signed is a valid witness (`ticketbound verify` checks the
/// note against the log, which only grows); a newer one only covers more.
pub const CHECKPOINT_READ_SERVES: Duration = Duration::from_secs(5);

impl Deps {
    /// The newest signed checkpoint, read at most every `checkpoint_read_serves`.
    async fn newest_signed(&self) -> Result<Option<Witnessed>, StoreError> {
        let fresh = self.newest_signed.lock().ok().and_then(|slot| {
            slot.as_ref()
                .filter(|(at, _)| at.elapsed() < self.checkpoint_read_serves)
                .map(|(_, w)| *w)
        });
        if let Some(witnessed) = fresh {
            return Ok(witnessed);
        }
        let witnessed = self.log.newest_signed().await?;
        if let Ok(mut slot) = self.newest_signed.lock() {
            *slot = Some((std::time::Instant::now(), witnessed));
        }
        Ok(witnessed)
    }
}

impl Deps {
    pub fn from_env(sdk: &SdkConfig, env: EnvReader) -> Result<Self, ConfigError> {
        let config = WritebackConfig::from_env(env)?;
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        Ok(Self {
            store: Store::new(dynamodb.clone(), config.store.clone()),
            log: LogStore::new(dynamodb, config.log_table.clone()),
            secrets: SecretCache::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                config.secret_cache_ttl,
                Duration::from_secs(5),
            ),
            config,
            servicenow: Mutex::new(None),
            jira: Mutex::new(None),
            newest_signed: std::sync::Mutex::new(None),
            checkpoint_read_serves: CHECKPOINT_READ_SERVES,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WritebackError {
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the ITSM credentials could not be read")]
    Credentials(#[from] SecretsError),
    #[error("the ticket's notes could not be read from the ITSM")]
    ItsmUnreadable(#[source] PostError),
    #[error("the record is not an audit event")]
    Malformed(#[source] StoreError),
    /// The ITSM failed every attempt of this invocation in a way that may pass; the
    /// record is held (the stream delivers it again) until `HOLD_ROUNDS` rounds are
    /// spent.
    #[error(
        "the ITSM kept failing ({attempts} attempts so far); held for the stream to deliver again"
    )]
    ItsmFailing {
        attempts: u32,
        #[source]
        source: PostError,
    },
}

/// How many invocations' worth of attempts a note gets while the ITSM fails in ways
/// that may pass (throttles, 5xx, broken connections) before it is dead-lettered: a
/// passing storm is waited out on the stream's own retries instead of costing the
/// note, and an ITSM that stays down still ends in one dead-letter record, told once.
pub const HOLD_ROUNDS: u32 = 3;

/// What became of one audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Posted {
        system: String,
        reference: String,
    },
    /// A redelivery: the note was posted (or given up) before.
    AlreadyDone,
    /// Given up: in the dead-letter record, and audited.
    DeadLettered {
        reason: String,
    },
    Skipped {
        why: String,
    },
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WritebackResponse {
    pub outcomes: Vec<Outcome>,
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<DynamoDbBatchItemFailure>,
}

impl From<WritebackResponse> for DynamoDbEventResponse {
    fn from(r: WritebackResponse) -> Self {
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = r.batch_item_failures;
        response
    }
}

/// Handles one batch from the audit table's stream, record by record in order. A
/// record that fails on DynamoDB stops the batch there: Lambda redelivers from it.
pub async fn handle(deps: &Deps, event: Event) -> WritebackResponse {
    let mut response = WritebackResponse::default();
    for record in &event.records {
        match write_back(deps, record).await {
            Ok(outcome) => response.outcomes.push(outcome),
            Err(WritebackError::Malformed(e)) => {
                tracing::error!(error = %ticketbound_runtime::error_chain(&e), event_id = ?record.event_id, "not an audit event; skipped");
                response.outcomes.push(Outcome::Skipped {
                    why: "not an audit event".into(),
                });
            }
            Err(e) => {
                tracing::error!(error = %ticketbound_runtime::error_chain(&e), "write-back held; the stream redelivers from this record");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                break;
            }
        }
    }
    response
}

fn skipped(why: impl Into<String>) -> Outcome {
    Outcome::Skipped { why: why.into() }
}

async fn write_back(deps: &Deps, record: &EventRecord) -> Result<Outcome, WritebackError> {
    if record.event_name != "INSERT" {
        return Ok(skipped("not a new audit event"));
    }
    let event =
        audit_from_image(record.change.new_image.clone()).map_err(WritebackError::Malformed)?;
    if !note::is_noteworthy(event.action) {
        return Ok(skipped(format!(
            "{} is not told to the ticket",
            event.action
        )));
    }
    let Some(grant) = deps.store.get_grant(event.grant_id).await? else {
        return Ok(skipped("the grant no longer exists"));
    };
    let Some(mut note) = note::render(&grant, &event) else {
        return Ok(skipped("nothing to tell"));
    };
    let ticket = &grant.request.ticket;
    let system = ticket.source.as_str();
    let configured = match ticket.source {
        SourceSystem::Jira => deps.config.jira.is_some(),
        SourceSystem::Servicenow => deps.config.servicenow.is_some(),
        SourceSystem::Generic => false,
    };
    if !configured {
        return Ok(skipped(format!(
            "no write-back configured for {system} tickets"
        )));
    }

    let mut claim = WritebackRecord {
        grant_id: grant.id,
        seq: event.seq,
        state: WritebackState::Posting,
        system: system.to_owned(),
        ticket: ticket.key.to_string(),
        attempts: 0,
        reference: None,
        reason: None,
        claimed_by: Some(ulid::Ulid::new().to_string()),
        updated_at: Utc::now(),
    };
    let taken_over = match deps.store.claim_writeback(&grant, &claim).await? {
        Claim::Ours => false,
        Claim::Held(r) if r.state != WritebackState::Posting => return Ok(Outcome::AlreadyDone),
        Claim::Gone => return Ok(Outcome::AlreadyDone),
        // The last attempt claimed it and died: the note may have got there, so the
        // ticket is asked before anything is posted.
        Claim::Held(r) => {
            claim = r;
            true
        }
    };
    // The ticket witnesses the chain and the signed log as they are now: an insider who
    // rewrites either later is contradicted by the ITSM (`ticketbound verify`).
    let witness = Witness {
        seq: event.seq,
        chain_head: event.hash,
        checkpoint: deps.newest_signed().await?,
    };
    note.lines.push(witness.line());
    match post_with_retries(deps, &grant, &event, &note, &mut claim.attempts, taken_over).await? {
        Ok(posted) => {
            let reference = posted.reference.clone();
            settle_done(deps, &grant, &event, claim, posted.reference).await?;
            Ok(Outcome::Posted {
                system: system.to_owned(),
                reference,
            })
        }
        Err(e) if e.is_retryable() && claim.attempts < deps.config.attempts * HOLD_ROUNDS => {
            // Kept as the claim, with its attempts: the redelivery takes it over,
            // reads the ticket first and counts on from here.
            claim.updated_at = Utc::now();
            deps.store.put_writeback(&grant, &claim).await?;
            Err(WritebackError::ItsmFailing {
                attempts: claim.attempts,
                source: e,
            })
        }
        Err(e) => {
            let reason = ticketbound_runtime::error_chain(&e);
            tracing::error!(grant_id = %grant.id, seq = event.seq, error = %reason, "write-back given up; dead-letter record written");
            ticketbound_runtime::metrics::count(COMPONENT, "WritebackFailures", 1);
            claim.state = WritebackState::Dead;
            claim.reason = Some(reason.clone());
            claim.updated_at = Utc::now();
            let attempts = claim.attempts;
            // The dead-letter record and the audit event that says so, together.
            deps.store
                .settle_writeback(&grant, &claim, Utc::now(), |g| {
                    AuditRecord::new(
                        Utc::now(),
                        Actor::component(COMPONENT),
                        AuditAction::TicketUpdateFailed,
                    )
                    .states(Some(g.state), Some(g.state))
                    .detail(Detail::System, system)
                    .detail(Detail::Ticket, &ticket.key)
                    .detail(Detail::AboutSeq, event.seq)
                    .detail(Detail::About, event.action)
                    .detail(Detail::Attempts, attempts)
                    .detail(Detail::Reason, &reason)
                })
                .await?;
            Ok(Outcome::DeadLettered { reason })
        }
    }
}

async fn settle_done(
    deps: &Deps,
    grant: &Grant,
    event: &AuditEvent,
    mut record: WritebackRecord,
    reference: String,
) -> Result<(), WritebackError> {
    record.state = WritebackState::Done;
    record.reference = Some(reference.clone());
    record.updated_at = Utc::now();
    // The record says done exactly when the trail says the ticket was told.
    deps.store
        .settle_writeback(grant, &record, Utc::now(), |g| {
            AuditRecord::new(
                Utc::now(),
                Actor::component(COMPONENT),
                AuditAction::TicketUpdated,
            )
            .states(Some(g.state), Some(g.state))
            .detail(Detail::System, &record.system)
            .detail(Detail::Ticket, &record.ticket)
            .detail(Detail::Reference, &reference)
            .detail(Detail::AboutSeq, event.seq)
            .detail(Detail::About, event.action)
        })
        .await?;
    Ok(())
}

/// Posts `note`, retrying what may succeed later. Once an attempt may have posted it
/// without our knowing (`maybe_posted`: from the start when an earlier invocation's
/// claim is taken over), the ticket is read for the note's marker before each post;
/// a read that fails in a way that may pass is a failed attempt, not a reason to
/// post. The outer error is DynamoDB or Secrets Manager (hold the shard); the inner
/// one is the ITSM's last answer.
async fn post_with_retries(
    deps: &Deps,
    grant: &Grant,
    event: &AuditEvent,
    note: &Note,
    attempts: &mut u32,
    mut maybe_posted: bool,
) -> Result<Result<Posted, PostError>, WritebackError> {
    let mut reauthenticated = false;
    loop {
        *attempts += 1;
        let result = if maybe_posted {
            match ticket_notes(deps, grant).await? {
                Ok(notes) if notes.iter().any(|n| carries_marker(n, &note.marker)) => {
                    finish_found(deps, grant, event).await?;
                    return Ok(Ok(Posted {
                        reference: "found on the ticket".into(),
                    }));
                }
                Ok(_) => post(deps, grant, event, note).await?,
                // Not knowing whether it is there, posting now could make it twice:
                // this attempt failed, the next reads again.
                Err(e) if e.is_retryable() => Err(e),
                // The ticket will not say (we may not read its notes): a note twice
                // is better than none.
                Err(e) => {
                    tracing::warn!(grant_id = %grant.id, error = %ticketbound_runtime::error_chain(&e), "the ticket's notes cannot be read; posting without the check");
                    post(deps, grant, event, note).await?
                }
            }
        } else {
            post(deps, grant, event, note).await?
        };
        let error = match result {
            Ok(posted) => return Ok(Ok(posted)),
            Err(e) => e,
        };
        maybe_posted |= error.may_have_been_applied();
        let unauthorised = matches!(
            error,
            PostError::Status {
                status: 401 | 403,
                ..
            }
        );
        if unauthorised
            && !reauthenticated
            && renew_client(deps, grant.request.ticket.source).await?
        {
            reauthenticated = true;
            continue;
        }
        if !error.is_retryable() || *attempts >= deps.config.attempts {
            return Ok(Err(error));
        }
        let backoff = Duration::from_millis(500 * 2u64.pow((*attempts - 1).min(6)));
        let wait = error
            .retry_after()
            .unwrap_or(backoff)
            .min(deps.config.max_wait);
        tracing::warn!(grant_id = %grant.id, attempt = *attempts, wait_ms = wait.as_millis() as u64, error = %ticketbound_runtime::error_chain(&error), "write-back attempt failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

async fn post(
    deps: &Deps,
    grant: &Grant,
    event: &AuditEvent,
    note: &Note,
) -> Result<Result<Posted, PostError>, WritebackError> {
    let key = grant.request.ticket.key.as_str();
    let revoked = event.action == AuditAction::Revoked;
    Ok(match grant.request.ticket.source {
        SourceSystem::Servicenow => match servicenow(deps).await? {
            Ok(client) => {
                let state = deps
                    .config
                    .servicenow_revoked_state
                    .as_deref()
                    .filter(|_| revoked);
                client.add_work_note(key, note, state).await
            }
            Err(e) => Err(e),
        },
        SourceSystem::Jira => match jira(deps).await? {
            Ok(client) => match client.add_comment(key, note).await {
                Ok(posted) => {
                    revoked_transition(deps, &client, grant, event).await;
                    Ok(posted)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        SourceSystem::Generic => Err(PostError::Unexpected {
            system: "generic",
            operation: "write back",
            problem: "generic tickets have no ITSM to write to".into(),
        }),
    })
}

/// What the post does besides the note, done when the note is found already made (its
/// answer was lost): a revocation's Jira transition, which is its own call. On
/// ServiceNow the state travels in the note's own update, so it is there too.
async fn finish_found(
    deps: &Deps,
    grant: &Grant,
    event: &AuditEvent,
) -> Result<(), WritebackError> {
    if grant.request.ticket.source == SourceSystem::Jira
        && let Ok(client) = jira(deps).await?
    {
        revoked_transition(deps, &client, grant, event).await;
    }
    Ok(())
}

/// Moves the Jira issue on when its grant was revoked, if a transition is configured.
/// The comment is there either way; a workflow that does not allow the transition
/// now is the ticket's business, and logged.
async fn revoked_transition(deps: &Deps, client: &Jira, grant: &Grant, event: &AuditEvent) {
    if let Some(transition) = deps
        .config
        .jira_revoked_transition
        .as_deref()
        .filter(|_| event.action == AuditAction::Revoked)
        && let Err(e) = client
            .transition(grant.request.ticket.key.as_str(), transition)
            .await
    {
        tracing::warn!(grant_id = %grant.id, error = %ticketbound_runtime::error_chain(&e), "the revoked transition was refused");
    }
}

/// The notes the ticket has now (for the marker check after a crash); none when
/// they cannot be read.
pub async fn read_notes(deps: &Deps, grant: &Grant) -> Result<Vec<String>, WritebackError> {
    Ok(ticket_notes(deps, grant).await?.unwrap_or_else(|e| {
        tracing::warn!(error = %ticketbound_runtime::error_chain(&e), "could not read the ticket's notes");
        Vec::new()
    }))
}

/// Every note `ticket` holds, ticketbound's and anyone's, as the ITSM gives them back
/// (for the evidence bundle, where an ITSM that does not answer is an error, not an
/// empty ticket).
pub async fn notes_of(deps: &Deps, ticket: &Ticket) -> Result<Vec<String>, WritebackError> {
    ticket_notes_of(deps, ticket)
        .await?
        .map_err(WritebackError::ItsmUnreadable)
}

/// The notes the ticket has now, or the ITSM's refusal to tell.
async fn ticket_notes(
    deps: &Deps,
    grant: &Grant,
) -> Result<Result<Vec<String>, PostError>, WritebackError> {
    ticket_notes_of(deps, &grant.request.ticket).await
}

async fn ticket_notes_of(
    deps: &Deps,
    ticket: &Ticket,
) -> Result<Result<Vec<String>, PostError>, WritebackError> {
    let key = ticket.key.as_str();
    Ok(match ticket.source {
        SourceSystem::Servicenow => match servicenow(deps).await? {
            Ok(client) => client.work_notes(key).await,
            Err(e) => Err(e),
        },
        SourceSystem::Jira => match jira(deps).await? {
            Ok(client) => client.comments(key).await,
            Err(e) => Err(e),
        },
        SourceSystem::Generic => Ok(Vec::new()),
    })
}

async fn servicenow(deps: &Deps) -> Result<Result<Arc<ServiceNow>, PostError>, WritebackError> {
    client(
        deps,
        &deps.servicenow,
        deps.config.servicenow.as_ref(),
        "ServiceNow",
        ServiceNow::new,
    )
    .await
}

async fn jira(deps: &Deps) -> Result<Result<Arc<Jira>, PostError>, WritebackError> {
    client(
        deps,
        &deps.jira,
        deps.config.jira.as_ref(),
        "Jira",
        Jira::new,
    )
    .await
}

/// The client in `slot`, built on first use from the endpoint and its credentials.
async fn client<C>(
    deps: &Deps,
    slot: &Mutex<Option<Arc<C>>>,
    endpoint: Option<&config::Endpoint>,
    system: &'static str,
    make: fn(&str, &str) -> Result<C, PostError>,
) -> Result<Result<Arc<C>, PostError>, WritebackError> {
    let mut slot = slot.lock().await;
    if let Some(client) = slot.as_ref() {
        return Ok(Ok(Arc::clone(client)));
    }
    let Some(endpoint) = endpoint else {
        return Ok(Err(not_configured(system)));
    };
    let credentials = deps.secrets.get(&endpoint.credentials_secret_id).await?;
    Ok(make(&endpoint.url, credentials.expose_secret()).map(|c| {
        let c = Arc::new(c);
        *slot = Some(Arc::clone(&c));
        c
    }))
}

fn not_configured(system: &'static str) -> PostError {
    PostError::Unexpected {
        system,
        operation: "write back",
        problem: "not configured".into(),
    }
}

/// After a 401/403: reads the credentials again and, if they changed, drops the client
/// so that the next attempt builds one with them. True when there is something new.
async fn renew_client(deps: &Deps, source: SourceSystem) -> Result<bool, WritebackError> {
    let endpoint = match source {
        SourceSystem::Servicenow => deps.config.servicenow.as_ref(),
        SourceSystem::Jira => deps.config.jira.as_ref(),
        SourceSystem::Generic => None,
    };
    let Some(endpoint) = endpoint else {
        return Ok(false);
    };
    let changed = deps
        .secrets
        .refresh(&endpoint.credentials_secret_id)
        .await?
        .is_some();
    if changed {
        match source {
            SourceSystem::Servicenow => *deps.servicenow.lock().await = None,
            SourceSystem::Jira => *deps.jira.lock().await = None,
            SourceSystem::Generic => {}
        }
    }
    Ok(changed)
}
