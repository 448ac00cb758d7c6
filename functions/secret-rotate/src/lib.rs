//! `secret-rotate`: the rotation function Secrets Manager invokes with
//! `{Step, SecretId, ClientRequestToken}` for createSecret, setSecret, testSecret and
//! finishSecret (the protocol itself is in `ticketbound_enforce::rotation`).
//!
//! Before each step it checks, in this order, and refuses with a specific error
//! (changing nothing) when a check fails:
//! 1. the step is one of the four; the secret exists, is tagged
//!    `managed-by=ticketbound`, has rotation enabled, and the token is a version staged
//!    for this rotation;
//! 2. the grant the secret's `grant-id` tag names exists and holds this secret;
//! 3. the grant is **Active and before its not-after time**. A rotation never extends
//!    a credential's life: for a grant past its time the refusal moves it to Revoking
//!    (the expiry function, fed by the grants stream, revokes it); for any other state
//!    the refusal is audited once per token and nothing else happens.
//!
//! finishSecret records the rotation on the grant (last-rotated time and the version
//! now current) with an audit event naming the versions, never a value. A finishSecret
//! that Secrets Manager repeats records nothing twice.
//!
//! **What one rotation asks AWS.** Secrets Manager invokes the four steps of a token
//! one after another, usually in one warm instance. createSecret reads everything
//! (the secret's description and stages, the grant, the current value); the later
//! steps of the same token in the same instance use what it learned ([`Memo`])
//! instead of asking again, wherever nothing but this rotation could have changed
//! it: the description (the token's stages and the version now current), the grant
//! as last read, the pending value createSecret stored and recorded, and its login.
//! What another party can change is still read where it matters: the grant before
//! setSecret gives the target the password and again after (a revocation may run
//! meanwhile), and before finishSecret records the rotation; the pending value as
//! Secrets Manager holds it, by testSecret's login. A step that fails forgets the
//! memo, so the retry Secrets Manager starts reads everything again; a cold instance
//! has no memo and reads everything; a memo older than [`MEMO_SERVES`] is not used.
//! 15 calls for one rotation instead of 22 (14 with the target's administrator secret
//! cached).

pub mod config;

use aws_config::SdkConfig;
use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use ticketbound_domain::Detail;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, ExpiryTrigger, Grant, GrantEvent, GrantId, GrantState,
    LifecycleRules, Transition,
};
use ticketbound_enforce::rotation::{Known, Refusal, RotationRequest, Step};
use ticketbound_enforce::{EnforceError, Enforcer};
use ticketbound_runtime::SecretString;
use ticketbound_runtime::{ConfigError, EnvReader};
use ticketbound_schedule::ScheduleSettings;
use ticketbound_store::{AdvanceError, Store, StoreError};

pub use config::RotateConfig;

/// Component name in audit events and metrics.
pub const COMPONENT: &str = "secret-rotate";

#[derive(Debug)]
pub struct Deps {
    pub store: Store,
    pub enforcer: Enforcer,
    pub config: RotateConfig,
    /// What the steps of the rotation in progress learned (one token at a time).
    memo: std::sync::Mutex<Option<Memo>>,
}

/// What the earlier steps of one rotation token learned in this instance (see the
/// crate's documentation). It holds the pending value between the steps, as the
/// process holds any credential it uses; `Debug` never shows it.
#[derive(Debug, Clone)]
pub struct Memo {
    /// The rotation event's secret id and token.
    secret_id: String,
    token: String,
    request: RotationRequest,
    grant: Grant,
    pending: Option<SecretString>,
    login: Option<String>,
    /// When createSecret learned it: a memo older than [`MEMO_SERVES`] is not used
    /// (Secrets Manager runs a token's steps back to back; an old memo is of a
    /// rotation whose later steps ran in another instance).
    learned_at: std::time::Instant,
}

/// How long what createSecret learned serves the later steps of its token.
pub const MEMO_SERVES: std::time::Duration = std::time::Duration::from_secs(60);

impl Memo {
    fn known(&self) -> Known<'_> {
        Known {
            pending: self.pending.as_ref(),
            login: self.login.as_deref(),
        }
    }
}

impl Deps {
    /// What the earlier steps of `token` learned here, if they ran here.
    fn recall(&self, secret_id: &str, token: &str) -> Option<Memo> {
        self.memo
            .lock()
            .ok()?
            .as_ref()
            .filter(|m| {
                m.secret_id == secret_id && m.token == token && m.learned_at.elapsed() < MEMO_SERVES
            })
            .cloned()
    }

    fn remember(&self, memo: Option<Memo>) {
        if let Ok(mut slot) = self.memo.lock() {
            *slot = memo;
        }
    }
}

impl Deps {
    pub fn from_env(sdk: &SdkConfig, env: EnvReader) -> Result<Self, ConfigError> {
        let config = RotateConfig::from_env(env)?;
        Ok(Self {
            store: Store::new(aws_sdk_dynamodb::Client::new(sdk), config.store.clone()),
            // Rotation never touches schedules; the enforcer only needs a client.
            enforcer: Enforcer::connect(
                sdk,
                config.enforce.clone(),
                ScheduleSettings {
                    group: "ticketbound".to_owned(),
                    target: None,
                },
                config.secret_cache_ttl,
            ),
            config,
            memo: std::sync::Mutex::new(None),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("rotation refused")]
    Refused(#[source] Refusal),
    #[error("grant {0} (named by the secret's grant-id tag) does not exist")]
    UnknownGrant(GrantId),
    #[error(
        "grant {grant_id} is {state}{}: its credential is not rotated{}",
        if *.expired { " and past its not-after time" } else { "" },
        if *.handed_to_revocation { "; it has been handed to revocation" } else { "" }
    )]
    GrantNotLive {
        grant_id: GrantId,
        state: GrantState,
        expired: bool,
        handed_to_revocation: bool,
    },
    #[error("{step} failed for grant {grant_id}")]
    Step {
        step: &'static str,
        grant_id: GrantId,
        #[source]
        source: EnforceError,
    },
    #[error("the secret could not be checked")]
    Check(#[source] EnforceError),
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the grant could not be updated")]
    Advance(#[from] AdvanceError),
}

impl RotateError {
    /// True when the rotation was refused on purpose (a retry by Secrets Manager gets
    /// the same answer) rather than failed.
    pub fn is_refusal(&self) -> bool {
        // `Check` never holds a refusal: `From<EnforceError>` makes that `Refused`.
        matches!(
            self,
            Self::Refused(_)
                | Self::UnknownGrant(_)
                | Self::GrantNotLive { .. }
                | Self::Step {
                    source: EnforceError::RotationRefused(_),
                    ..
                }
        )
    }
}

impl From<EnforceError> for RotateError {
    fn from(e: EnforceError) -> Self {
        match e {
            EnforceError::RotationRefused(r) => Self::Refused(r),
            other => Self::Check(other),
        }
    }
}

/// What one step did (Secrets Manager ignores it; the local stand-in prints it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepDone {
    pub step: &'static str,
    pub grant_id: String,
    /// False when an earlier attempt had already done this step's work.
    pub changed: bool,
}

/// Handles one step of one rotation.
pub async fn handle(
    deps: &Deps,
    event: SecretsManagerSecretRotationEvent,
) -> Result<StepDone, RotateError> {
    let step: Step = event.step.parse().map_err(RotateError::Refused)?;
    // A rotation (re)starts at createSecret: it reads everything afresh.
    let memo = match step {
        Step::CreateSecret => None,
        _ => deps.recall(&event.secret_id, &event.client_request_token),
    };
    let done = run_step(deps, &event, step, memo).await;
    if done.is_err() {
        // Whatever this step learned or assumed may be wrong now: the retry reads.
        deps.remember(None);
    }
    done
}

/// The rotation request and the grant: from `memo` when an earlier step of the same
/// token learned them here, else from Secrets Manager and the grants table.
/// The second value is true when they came from the memo.
async fn request_and_grant(
    deps: &Deps,
    event: &SecretsManagerSecretRotationEvent,
    memo: Option<Memo>,
) -> Result<(Memo, bool), RotateError> {
    if let Some(memo) = memo {
        return Ok((memo, true));
    }
    let request = deps
        .enforcer
        .rotation_request(&event.secret_id, &event.client_request_token)
        .await?;
    let grant_id: GrantId = request
        .grant_id
        .parse()
        .map_err(|_| RotateError::Refused(Refusal::NoGrantTag(request.secret.arn.clone())))?;
    let grant = deps
        .store
        .get_grant(grant_id)
        .await?
        .ok_or(RotateError::UnknownGrant(grant_id))?;
    let memo = Memo {
        secret_id: event.secret_id.clone(),
        token: event.client_request_token.clone(),
        request,
        grant,
        pending: None,
        login: None,
        learned_at: std::time::Instant::now(),
    };
    Ok((memo, false))
}

async fn run_step(
    deps: &Deps,
    event: &SecretsManagerSecretRotationEvent,
    step: Step,
    memo: Option<Memo>,
) -> Result<StepDone, RotateError> {
    let now = Utc::now();
    let (mut memo, recalled) = request_and_grant(deps, event, memo).await?;
    // setSecret gives the target a password and finishSecret records the rotation:
    // each decides on the grant as stored now, not as an earlier step saw it.
    if matches!(step, Step::SetSecret | Step::FinishSecret) && recalled {
        memo.grant = deps
            .store
            .get_grant(memo.grant.id)
            .await?
            .ok_or(RotateError::UnknownGrant(memo.grant.id))?;
    }
    let grant = memo.grant.clone();
    let grant_id = grant.id;
    let request = memo.request.clone();
    if let Some(credential) = &grant.credential
        && credential.secret_arn != request.secret.arn
    {
        return Err(RotateError::Refused(Refusal::NotTheGrantsSecret {
            secret: request.secret.arn.clone(),
            grant_id: grant_id.to_string(),
        }));
    }
    if grant.state != GrantState::Active || grant.is_expired_at(now) {
        return Err(refuse(deps, grant, step, &request, now).await?);
    }

    let span = tracing::info_span!("rotation", grant_id = %grant.id, step = step.as_str(), token = %request.token);
    let _entered = span.enter();
    let failed = |source: EnforceError| {
        ticketbound_runtime::metrics::count(COMPONENT, "RotationStepFailures", 1);
        RotateError::Step {
            step: step.as_str(),
            grant_id,
            source,
        }
    };
    let changed = match step {
        // The token is already current: an earlier attempt finished the rotation.
        Step::CreateSecret | Step::SetSecret if request.already_current => false,
        Step::CreateSecret => {
            let created = deps
                .enforcer
                .create_pending(&grant, &request, &Witness(&deps.store))
                .await
                .map_err(failed)?;
            tracing::info!(fresh = created.fresh, login = ?created.login, "pending version ready");
            memo.pending = Some(created.value);
            memo.login = created.login;
            created.fresh
        }
        Step::SetSecret => {
            deps.enforcer
                .set_pending(&grant, &request, &Witness(&deps.store), &memo.known())
                .await
                .map_err(failed)?;
            // The grant may have ended while the login was set (an alternating-users
            // rotation may just have made its second login, after a revocation that
            // looked for it): a login made for an ended grant is killed at once.
            match deps.store.get_grant(grant_id).await? {
                Some(ended) if ended.state != GrantState::Active => {
                    return Err(revoke_late_login(deps, ended, step, &request, now).await?);
                }
                Some(stored) => memo.grant = stored,
                None => {}
            }
            true
        }
        Step::TestSecret => {
            deps.enforcer
                .test_pending(&grant, &request)
                .await
                .map_err(failed)?;
            true
        }
        Step::FinishSecret => {
            let finished = deps
                .enforcer
                .finish_rotation(&grant, &request, &memo.known())
                .await
                .map_err(failed)?;
            let changed = record_rotation(deps, grant, &request, &finished, now).await?;
            // The rotation is over: nothing of it is needed again.
            deps.remember(None);
            return Ok(StepDone {
                step: step.as_str(),
                grant_id: grant_id.to_string(),
                changed,
            });
        }
    };
    deps.remember(Some(memo));
    Ok(StepDone {
        step: step.as_str(),
        grant_id: grant_id.to_string(),
        changed,
    })
}

/// A login setSecret made or set for a grant that ended meanwhile: revoked at once
/// (and the revocation audited on a terminal grant), then the step refused.
async fn revoke_late_login(
    deps: &Deps,
    ended: Grant,
    step: Step,
    request: &RotationRequest,
    now: DateTime<Utc>,
) -> Result<RotateError, RotateError> {
    let grant_id = ended.id;
    let revocation = deps.enforcer.revoke(&ended).await.map_err(|source| {
        ticketbound_runtime::metrics::count(COMPONENT, "RotationStepFailures", 1);
        RotateError::Step {
            step: step.as_str(),
            grant_id,
            source,
        }
    })?;
    tracing::warn!(state = %ended.state, revocation = ?revocation, "the grant ended during setSecret; its logins revoked");
    if ended.state.is_terminal() {
        let mut details = revocation.details();
        details.push((Detail::RevokedBy, COMPONENT.to_owned()));
        details.push((
            Detail::LateCredential,
            "set by a rotation while the grant ended; revoked at once".to_owned(),
        ));
        deps.store
            .note(grant_id, Utc::now(), |g| {
                AuditRecord::new(
                    Utc::now(),
                    Actor::component(COMPONENT),
                    AuditAction::Revoked,
                )
                .states(Some(g.state), Some(g.state))
                .details(&details)
            })
            .await?;
    }
    refuse(deps, ended, step, request, now).await
}

/// Records a completed rotation on the grant; a repeated finishSecret records nothing.
async fn record_rotation(
    deps: &Deps,
    grant: Grant,
    request: &RotationRequest,
    finished: &ticketbound_enforce::rotation::Finished,
    now: DateTime<Utc>,
) -> Result<bool, RotateError> {
    let event = GrantEvent::Rotated {
        version_id: finished.current_version.clone(),
    };
    let record = |_: &Grant, t: &Transition| {
        let action = if t.to == GrantState::Active {
            AuditAction::Rotated
        } else {
            AuditAction::RevocationStarted
        };
        let mut r = AuditRecord::new(now, Actor::component(COMPONENT), action)
            .states(Some(t.from), Some(t.to))
            .detail(Detail::SecretArn, &request.secret.arn)
            .detail(Detail::CurrentVersion, &finished.current_version);
        if let Some(previous) = &finished.previous_version {
            r = r.detail(Detail::PreviousVersion, previous);
        }
        if let Some(login) = &finished.login {
            r = r.detail(Detail::Login, login);
        }
        if t.to != GrantState::Active {
            r = r.detail(Detail::Trigger, "rotation_after_expiry");
        }
        r
    };
    let (stored, t) = deps
        .store
        .advance(grant, &event, now, &LifecycleRules::default(), record)
        .await?;
    if t.changed {
        ticketbound_runtime::metrics::count(COMPONENT, "Rotations", 1);
        tracing::info!(grant_id = %stored.id, version = %finished.current_version, moved = finished.moved, "rotation recorded");
    }
    Ok(t.changed || finished.moved)
}

/// Refuses to rotate a grant that is not live: audits it (once per token), hands an
/// expired Active grant to revocation, and returns the error to give Secrets Manager.
async fn refuse(
    deps: &Deps,
    grant: Grant,
    step: Step,
    request: &RotationRequest,
    now: DateTime<Utc>,
) -> Result<RotateError, RotateError> {
    let expired = grant.is_expired_at(now);
    let grant_id = grant.id;
    let state = grant.state;
    ticketbound_runtime::metrics::count(COMPONENT, "RotationsRefused", 1);
    let why = if state == GrantState::Active {
        "the grant's not-after time has passed"
    } else {
        "the grant is not active"
    };
    let record = |from: GrantState, to: GrantState| {
        AuditRecord::new(
            now,
            Actor::component(COMPONENT),
            AuditAction::RotationRefused,
        )
        .states(Some(from), Some(to))
        .detail(Detail::Step, step.as_str())
        .detail(Detail::Token, &request.token)
        .detail(Detail::SecretArn, &request.secret.arn)
        .detail(Detail::Reason, why)
    };

    let handed_to_revocation = if state == GrantState::Active && expired {
        let (stored, _) = deps
            .store
            .advance(
                grant,
                &GrantEvent::Expired {
                    trigger: ExpiryTrigger::Rotation,
                },
                now,
                &LifecycleRules::default(),
                |_, t| record(t.from, t.to).detail(Detail::Trigger, "rotation_after_expiry"),
            )
            .await?;
        stored.state == GrantState::Revoking
    } else {
        let latest = deps.store.latest_audit(grant_id).await?;
        let already_said = latest.is_some_and(|e| {
            e.action == AuditAction::RotationRefused
                && e.details.get(Detail::Token.as_str()) == Some(&request.token)
        });
        if !already_said {
            let mut next = grant.noted(now);
            let event = next.record(record(state, state));
            deps.store.save_grant(&next, &[event]).await?;
        }
        false
    };
    tracing::warn!(grant_id = %grant_id, state = %state, expired, handed_to_revocation, "rotation refused");
    Ok(RotateError::GrantNotLive {
        grant_id,
        state,
        expired,
        handed_to_revocation,
    })
}

/// What Secrets Manager records as the rotation's failure: a stable type and the
/// whole cause (never a value: no error here carries one).
impl From<RotateError> for lambda_runtime::Diagnostic {
    fn from(e: RotateError) -> Self {
        Self {
            error_type: if e.is_refusal() {
                "RotationRefused"
            } else {
                "RotationFailed"
            }
            .to_owned(),
            error_message: ticketbound_runtime::error_chain(&e),
        }
    }
}

/// The grants table as the record of the pending values createSecret wrote.
struct Witness<'a>(&'a ticketbound_store::Store);

impl ticketbound_enforce::rotation::PendingWitness for Witness<'_> {
    async fn recorded(
        &self,
        grant: &Grant,
        token: &str,
    ) -> Result<Option<String>, ticketbound_enforce::rotation::WitnessError> {
        Ok(self.0.pending_digest(grant, token).await?)
    }

    async fn record(
        &self,
        grant: &Grant,
        token: &str,
        digest: &str,
    ) -> Result<(), ticketbound_enforce::rotation::WitnessError> {
        Ok(self.0.record_pending_digest(grant, token, digest).await?)
    }
}
