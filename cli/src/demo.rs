//! `ticketbound demo`: the lifecycle on the local stack, told step by step, driven the
//! way production is driven: people raise and approve a request on the local Jira
//! site, which sends its signed webhook to the intake's URL; the intake reads the
//! approval back from the site before it believes it.
//!
//! What runs today: approval through the intake (signature, read-back from Jira,
//! validation, Cedar policy, one transaction), redelivery recognised, a forged
//! approval and an approver without authority refused, provisioning from the grants stream (a
//! PostgreSQL login role within its scope, its secret in Secrets Manager, an expiry
//! schedule), the credential used as the workload would use it, a policy denial
//! recorded with its reasons, a rotation in Secrets Manager's four steps (alternating
//! users), a withdrawal, an expiry on time, a request for a change window that has not
//! begun (deferred, then issued by its start schedule at the start), each grant's
//! audit chain verified, and the inventory (a login a DBA made by hand, found
//! unmanaged and left alone).
//! It ends with the evidence for the first ticket, as `ticketbound evidence` prints it,
//! and its bundle verified offline (`ticketbound verify`, no network):
//! the verified timeline, the live state checked now, and the notes the write-back put
//! on the ticket (in the local Jira stand-in).

use std::path::Path;

use chrono::{Duration, Utc};
use serde_json::Value;
use ticketbound_domain::{
    AuditAction, AuditEvent, CredentialRef, Detail, EndCause, Grant, GrantId, GrantState,
    SourceSystem, Ticket, TicketKey, verify_chain,
};
use ticketbound_local::client::{HttpAnswer, poll_grant};
use ticketbound_local::jira_desk::{
    APPROVERS_FIELD, DANA, DEMO_PROJECT, JiraDesk, LI, MALLORY, PRIYA, account_id, request_fields,
};
use ticketbound_local::stack::LocalStack;
use ticketbound_store::Store;

use crate::error::CliError;

struct Jira<'a> {
    stack: &'a LocalStack,
    secret: String,
}

impl Jira<'_> {
    /// Sends a webhook as Jira's sender does: signed body, delivery id header.
    async fn send(&self, body: &Value, delivery: &str) -> Result<HttpAnswer, CliError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CliError::Demo(e.to_string()))?;
        let headers =
            ticketbound_local::client::jira_webhook_headers(&self.secret, &bytes, delivery);
        ticketbound_local::client::post(&self.stack.intake_url, "/jira", &headers, &bytes)
            .await
            .map_err(|e| {
                CliError::Demo(format!(
                    "the intake at {} did not answer: {e}",
                    self.stack.intake_url
                ))
            })
    }
}

/// The grant the site's own webhook made for `key` (up to 10 s).
async fn grant_of(store: &Store, key: &str) -> Result<GrantId, CliError> {
    let ticket = Ticket {
        source: SourceSystem::Jira,
        key: TicketKey::new(key).map_err(|e| CliError::Demo(e.0))?,
        link: None,
    };
    for _ in 0..100 {
        if let Some(grant) = store.grants_for_ticket(&ticket).await?.first() {
            return Ok(grant.id);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(CliError::Demo(format!(
        "the Jira site's webhook for {key} made no grant within 10 s; see .ticketbound/host.log"
    )))
}

/// Priya raises the demo's request on the Jira site (after `tweak` of its fields);
/// `approvers` approve it. The site sends its webhook to the intake on its own.
async fn raise_and_approve(
    desk: &JiraDesk,
    lifetime: Duration,
    approvers: &[&str],
    tweak: impl FnOnce(&mut Value),
) -> Result<(String, Value), CliError> {
    let mut fields = request_fields(Utc::now(), lifetime, approvers);
    tweak(&mut fields);
    let key = desk.raise(PRIYA, DEMO_PROJECT, &fields).await;
    for approver in approvers {
        let answer = desk.decide(approver, &key, "approve").await;
        if answer.status != 200 {
            return Err(CliError::Demo(format!(
                "{approver} could not approve {key}: {} {}",
                answer.status, answer.body
            )));
        }
    }
    let webhook = desk.last_status_webhook(&key).await;
    Ok((key, webhook))
}

/// Runs the demo: the local stack up, then each step in turn.
pub async fn run(home: &Path) -> Result<(), CliError> {
    println!("== ticketbound demo ==\n");
    let stack = crate::local::up(home, Default::default()).await?;
    crate::local::print(&stack, home);
    let demo = Demo::connect(&stack).await;

    let first = demo.approve_on_jira().await?;
    let later = demo.approve_for_a_later_window().await?;
    demo.redeliver(&first).await?;
    demo.refuse_a_foreign_principal().await?;
    demo.refuse_a_forged_approval(&first.webhook).await?;
    let issued = demo.provision_and_use(first.id).await?;
    let rotated = demo.rotate(first.id, &issued).await?;
    let denied = demo.deny_an_approver_without_authority().await?;
    demo.refuse_a_wildcard_scope().await?;
    demo.cancel_the_ticket(&first, issued, &rotated).await?;
    let short = demo.expire_on_time().await?;
    demo.window_opened(&later).await?;
    demo.print_audit_chains(&[first.id, denied, short, later.id])
        .await?;
    let ctx = demo.print_ticket_evidence(home, &first).await?;
    verify_bundle_offline(home, &ctx, &format!("jira#{}", first.key)).await?;
    demo.print_inventory(&ctx).await?;

    println!("\ndemo finished; `cargo run -p ticketbound -- local down` stops the local stack");
    Ok(())
}

/// What every step uses: the running stack, its store, the Jira site and the
/// webhook sender the demo plays.
struct Demo<'a> {
    stack: &'a LocalStack,
    tk: ticketbound_local::RunningStack,
    store: Store,
    jira: Jira<'a>,
    desk: JiraDesk,
}

/// The first ticket, approved in step 1 and followed to the end.
struct Approved {
    key: String,
    /// The site's webhook for the approval, which steps 2 and 2c send again.
    webhook: Value,
    id: GrantId,
}

/// The second ticket, approved in step 1b for a change window that begins later.
struct LaterWindow {
    key: String,
    id: GrantId,
    start: chrono::DateTime<Utc>,
}

/// A login read from a grant's secret. Deliberately neither `Debug` nor `Display`:
/// the password is never printed.
struct Login {
    user: String,
    password: String,
}

impl Login {
    /// The login in a secret's JSON value; `what` names the secret in the error.
    fn parse(value: &str, what: &str) -> Result<Self, CliError> {
        let secret: Value = serde_json::from_str(value)
            .map_err(|e| CliError::Demo(format!("{what} is not JSON: {e}")))?;
        let field = |name: &str| secret[name].as_str().unwrap_or_default().to_owned();
        Ok(Self {
            user: field("username"),
            password: field("password"),
        })
    }
}

/// A session of the workload's, asked later whether it still answers (`true` if it
/// does). Boxed because the CLI links no PostgreSQL client type of its own.
type SessionCheck = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// What step 3 issued and the workload used.
struct Issued {
    credential: CredentialRef,
    login: Login,
    /// The session the workload opened with `login`.
    session_answers: SessionCheck,
}

impl Demo<'_> {
    async fn connect(stack: &LocalStack) -> Demo<'_> {
        let tk = ticketbound_local::RunningStack {
            sdk: stack.sdk_config().await,
            local: stack.clone(),
        };
        let store = tk.local_store();
        // The demo plays Jira, so it signs with the webhook secret Jira would hold.
        let jira = Jira {
            stack,
            secret: tk.secret_value(&stack.webhook_secrets.jira).await,
        };
        let desk = tk.jira_desk().await;
        Demo {
            stack,
            tk,
            store,
            jira,
            desk,
        }
    }

    /// The login in the secret of provisioned grant `grant`, as its workload reads it.
    async fn login_of(&self, grant: &Grant) -> Result<Login, CliError> {
        let Some(credential) = &grant.credential else {
            return Err(not_provisioned(grant));
        };
        Login::parse(
            &self.tk.secret_value(&credential.secret_arn).await,
            "the secret",
        )
    }

    /// Whether `login` logs in to the target now.
    async fn logs_in(&self, login: &Login) -> bool {
        self.tk.pg_login(&login.user, &login.password).await.is_ok()
    }

    /// 1. On the Jira site, Priya raises an access request; Dana and Li (DBAs)
    ///    approve it; the site moves it to Approved and sends its webhook.
    async fn approve_on_jira(&self) -> Result<Approved, CliError> {
        let (key, webhook) =
            raise_and_approve(&self.desk, Duration::hours(6), &[DANA, LI], |_| {}).await?;
        let id = grant_of(&self.store, &key).await?;
        let (_, trail) = self
            .store
            .grant_with_trail(id)
            .await?
            .ok_or_else(|| CliError::Demo(format!("grant {id} cannot be read back")))?;
        let detail = |action, name| detail_of(&trail, action, name);
        println!(
            "\n1. {PRIYA} raised {key} on the Jira site at {}; {DANA} and {LI} approved it; the site sent its signed webhook to {}/jira",
            self.desk.url(),
            self.stack.intake_url
        );
        println!(
            "   the intake read the approval back from Jira with its read-only account (verified against: {}); grant {id}: {}, policy {} (policy set {}…)",
            detail(AuditAction::Requested, Detail::VerifiedAgainst),
            detail(AuditAction::PolicyEvaluated, Detail::Decision),
            detail(AuditAction::PolicyEvaluated, Detail::PolicyIds),
            &detail(AuditAction::PolicyEvaluated, Detail::PolicySetSha256)
                .get(..12)
                .unwrap_or_default()
        );
        Ok(Approved { key, webhook, id })
    }

    /// 1b. A second request, approved for a change window that begins in 40 s: nothing
    ///     is issued yet; a one-time schedule issues it at the start (step 7b).
    async fn approve_for_a_later_window(&self) -> Result<LaterWindow, CliError> {
        use ticketbound_local::fixtures::{CHANGE_WINDOW_START_FIELD, jira_time};
        let start = Utc::now() + Duration::seconds(40);
        let (key, _) = raise_and_approve(&self.desk, Duration::hours(2), &[DANA, LI], |fields| {
            fields[CHANGE_WINDOW_START_FIELD] = jira_time(start).into();
        })
        .await?;
        let id = grant_of(&self.store, &key).await?;
        let deferred = poll_grant(&self.store, id, 100, |g| g.deferred_until.is_some())
            .await?
            .filter(|g| g.deferred_until.is_some())
            .ok_or_else(|| {
                CliError::Demo(format!(
                    "grant {id} of {key} was not deferred to its change window; see .ticketbound/host.log"
                ))
            })?;
        println!(
            "\n1b. {key} was approved for a change window that begins at {}: grant {id} is {} and waits; no login exists yet, and a one-time schedule ({}) issues it at the start",
            start.format("%H:%M:%S"),
            deferred.state,
            grant_provision::start_schedule_name(id, 0)
        );
        Ok(LaterWindow { key, id, start })
    }

    /// 7b. The change window of step 1b has begun: its start schedule issued it.
    async fn window_opened(&self, later: &LaterWindow) -> Result<(), CliError> {
        let live = poll_grant(&self.store, later.id, 900, |g| {
            !matches!(g.state, GrantState::Approved | GrantState::Provisioning)
        })
        .await?
        .filter(|g| g.state == GrantState::Active)
        .ok_or_else(|| {
            CliError::Demo(format!(
                "grant {} of {} was not issued at its change window's start; see .ticketbound/host.log",
                later.id, later.key
            ))
        })?;
        let (_, trail) = self
            .store
            .grant_with_trail(later.id)
            .await?
            .ok_or_else(|| CliError::Demo(format!("grant {} cannot be read back", later.id)))?;
        let started = trail
            .iter()
            .find(|e| e.action == AuditAction::ProvisioningStarted)
            .map(|e| e.at);
        let login = self.login_of(&live).await?;
        println!(
            "\n7b. the change window of {} began at {}: its start schedule issued grant {} at {} ({}), login {}",
            later.key,
            later.start.format("%H:%M:%S%.3f"),
            later.id,
            started.map_or_else(
                || "an unrecorded time (bug)".to_owned(),
                |t| t.format("%H:%M:%S%.3f").to_string()
            ),
            match started {
                Some(t) if t >= later.start => "not before the start",
                _ => "BEFORE THE START (bug)",
            },
            if self.logs_in(&login).await {
                "works"
            } else {
                "FAILS (bug)"
            }
        );
        Ok(())
    }

    /// 11. The inventory, as `ticketbound inventory --target orders-db` prints it: the
    ///     identity with its owner and live grants, and a login a DBA made by hand at
    ///     the database, found unmanaged and left alone.
    async fn print_inventory(&self, ctx: &crate::context::Context) -> Result<(), CliError> {
        use ticketbound_local::targets::ORDERS_DB;
        let dba = self.dba().await?;
        let login = format!(
            "dba_made_{}",
            &ulid::Ulid::new().to_string().to_lowercase()[18..]
        );
        let password = ulid::Ulid::new().to_string();
        dba.batch_execute(&format!("CREATE ROLE {login} LOGIN PASSWORD '{password}'"))
            .await
            .map_err(|e| CliError::Demo(format!("the DBA could not make a login: {e}")))?;
        let filter = grant_reconcile::inventory::InventoryFilter {
            owner: None,
            target: Some(ORDERS_DB.to_owned()),
        };
        let inventory = grant_reconcile::inventory::inventory(&ctx.reconciler()?, &filter)
            .await
            .map_err(|e| CliError::Demo(ticketbound_runtime::error_chain(&e)))?;
        println!(
            "\n11. a DBA made login {login} by hand at {ORDERS_DB}; `ticketbound inventory --target {ORDERS_DB}` lists:"
        );
        for id in &inventory.identities {
            let tickets: Vec<&str> = id.live.iter().map(|g| g.ticket.as_str()).collect();
            println!(
                "   {} (owner {}): {} live grant(s) {}; last review: never",
                id.name,
                id.owner,
                id.live.len(),
                tickets.join(", ")
            );
        }
        let unmanaged: Vec<&str> = inventory
            .unmanaged
            .logins
            .values()
            .flatten()
            .map(|l| l.name.as_str())
            .collect();
        let found = unmanaged.contains(&login.as_str());
        let still = self.tk.pg_login(&login, &password).await.is_ok();
        println!(
            "   unmanaged logins: {}; {login} {} and {}",
            unmanaged.join(", "),
            if found {
                "is listed"
            } else {
                "IS NOT LISTED (bug)"
            },
            if still {
                "still logs in (listed, never touched)"
            } else {
                "NO LONGER LOGS IN (bug: it was touched)"
            }
        );
        dba.batch_execute(&format!("DROP ROLE {login}"))
            .await
            .map_err(|e| CliError::Demo(format!("the DBA could not drop {login}: {e}")))?;
        Ok(())
    }

    /// The local PostgreSQL's superuser, as a DBA holds it.
    async fn dba(&self) -> Result<tokio_postgres::Client, CliError> {
        let (client, connection) = self
            .stack
            .postgres
            .superuser_dsn()
            .parse::<tokio_postgres::Config>()
            .map_err(|e| CliError::Demo(format!("the local superuser DSN: {e}")))?
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| CliError::Demo(format!("the DBA cannot reach PostgreSQL: {e}")))?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// 2. Jira delivers it again: nothing is written twice.
    async fn redeliver(&self, first: &Approved) -> Result<(), CliError> {
        let again = self
            .jira
            .send(&first.webhook, &ulid::Ulid::new().to_string())
            .await?;
        let out = again.json();
        let same = out["grant_id"].as_str() == Some(first.id.to_string().as_str());
        println!(
            "\n2. the same webhook delivered again: intake answered {}, {}; {}",
            again.status,
            out["outcome"].as_str().unwrap_or("no outcome given"),
            if same {
                "the same grant, nothing written twice"
            } else {
                "NOT THE SAME GRANT (bug)"
            }
        );
        Ok(())
    }

    /// 2b. A requester puts a workload principal of their own in the request: the
    /// principal comes from the identity registry, so the approval is refused, naming
    /// the field, and nothing is made.
    async fn refuse_a_foreign_principal(&self) -> Result<(), CliError> {
        let (key, webhook) = raise_and_approve(&self.desk, Duration::hours(6), &[DANA, LI], |f| {
            f["customfield_10204"] = "arn:aws:iam::999999999999:role/someone-elses".into();
        })
        .await?;
        let answer = self
            .jira
            .send(&webhook, &ulid::Ulid::new().to_string())
            .await?;
        let out = answer.json();
        let error = &out["errors"][0];
        if answer.status != 400 || error["field"] != "identity.workload_principal" {
            return Err(CliError::Demo(format!(
                "an approval naming a foreign workload principal was not refused: {} {out}",
                answer.status
            )));
        }
        println!(
            "\n2b. {key} names a workload principal of the requester's choosing: intake answered {}, {}: {}",
            answer.status,
            error["field"].as_str().unwrap_or_default(),
            error["problem"].as_str().unwrap_or_default()
        );
        Ok(())
    }

    /// 2c. Whoever holds the webhook key signs an approval of a ticket Jira has not
    /// approved (here: the approved ticket's webhook, its key swapped for one only Dana
    /// has approved so far). The signature is valid; Jira disagrees; nothing is made.
    async fn refuse_a_forged_approval(&self, genuine: &Value) -> Result<(), CliError> {
        let pending = self
            .desk
            .raise(
                PRIYA,
                DEMO_PROJECT,
                &request_fields(Utc::now(), Duration::hours(6), &[DANA, LI]),
            )
            .await;
        self.desk.decide(DANA, &pending, "approve").await;
        let mut forged = genuine.clone();
        forged["issue"]["key"] = pending.clone().into();
        let answer = self
            .jira
            .send(&forged, &ulid::Ulid::new().to_string())
            .await?;
        let out = answer.json();
        let errors = out["errors"].as_array().cloned().unwrap_or_default();
        let Some(error) = errors.iter().find(|e| e["field"] == "ticket.status") else {
            return Err(CliError::Demo(format!(
                "a forged approval was not refused: {} {out}",
                answer.status
            )));
        };
        println!(
            "\n2c. a validly signed webhook claiming {pending} is approved (Jira still waits for {LI}): intake answered {} with {} problems, among them {}: {}",
            answer.status,
            errors.len(),
            error["field"].as_str().unwrap_or_default(),
            error["problem"].as_str().unwrap_or_default()
        );
        Ok(())
    }

    /// 3. The grants stream feeds the provisioner: the credential is made, and the
    ///    workload reads it and uses it within its scope.
    async fn provision_and_use(&self, id: GrantId) -> Result<Issued, CliError> {
        let grant = wait_until_settled(&self.store, id).await?;
        let credential = grant
            .credential
            .clone()
            .ok_or_else(|| not_provisioned(&grant))?;
        println!(
            "\n3. provisioned from the grants stream: grant is {}; login role {} at {}, scope {}",
            grant.state,
            credential.principal_name,
            grant.request.target.system_id,
            grant.request.scope
        );
        println!("   secret {}", credential.secret_arn);
        let described = self
            .tk
            .secretsmanager()
            .describe_secret()
            .secret_id(&credential.secret_arn)
            .send()
            .await
            .map_err(|e| CliError::Demo(format!("DescribeSecret failed: {e}")))?;
        let tags: Vec<String> = described
            .tags()
            .iter()
            .map(|t| {
                format!(
                    "{}={}",
                    t.key().unwrap_or_default(),
                    t.value().unwrap_or_default()
                )
            })
            .collect();
        println!("   tags {}", tags.join(", "));
        // The workload reads its credential and uses it; the value is never printed.
        let login = Login::parse(
            &self.tk.secret_value(&credential.secret_arn).await,
            "the secret",
        )?;
        let db = self
            .tk
            .pg_login(&login.user, &login.password)
            .await
            .map_err(|e| CliError::Demo(format!("the issued credential does not log in: {e}")))?;
        let rows = db
            .query("SELECT count(*) FROM orders.orders", &[])
            .await
            .map_err(|e| CliError::Demo(format!("the credential cannot read its scope: {e}")))?;
        let n: i64 = rows.first().map_or(0, |r| r.get(0));
        let payments = match db.query("SELECT * FROM orders.payments", &[]).await {
            Ok(_) => "ALLOWED (scope violated!)".to_owned(),
            Err(e) => format!("refused ({})", e.code().map_or("?", |c| c.code())),
        };
        println!(
            "   as the workload: logged in; orders.orders -> {n} rows; orders.payments -> {payments}"
        );
        Ok(Issued {
            credential,
            login,
            session_answers: Box::pin(async move { db.query("SELECT 1", &[]).await.is_ok() }),
        })
    }

    /// 3b. Rotation, as Secrets Manager runs it on the secret's schedule (here: now).
    ///     Returns the new login.
    async fn rotate(&self, id: GrantId, issued: &Issued) -> Result<Login, CliError> {
        let rotation = crate::local::rotation::rotate_grant(self.stack, id).await?;
        let rotated = Login::parse(
            &self.tk.secret_value(&issued.credential.secret_arn).await,
            "the rotated secret",
        )?;
        let verdict = |ok: bool| if ok { "works" } else { "refused" };
        println!(
            "\n3b. rotated (createSecret, setSecret, testSecret, finishSecret) in {} ms: AWSCURRENT is now version {}",
            rotation.elapsed.as_millis(),
            rotation.token
        );
        println!(
            "   alternating users: new login {} {}; the previous login {} still {} until the next rotation",
            rotated.user,
            verdict(self.logs_in(&rotated).await),
            issued.login.user,
            verdict(self.logs_in(&issued.login).await),
        );
        Ok(rotated)
    }

    /// 4. Another request names Dana and Mallory as approvers. Mallory is no DBA: her
    ///    approval does not count, and prod needs two that do. Returns the rejected
    ///    grant.
    async fn deny_an_approver_without_authority(&self) -> Result<GrantId, CliError> {
        let (key, _) = raise_and_approve(&self.desk, Duration::hours(6), &[DANA, MALLORY], |f| {
            f[APPROVERS_FIELD] = serde_json::json!([
                { "accountId": account_id(DANA) },
                { "accountId": account_id(MALLORY) }
            ]);
        })
        .await?;
        let id = grant_of(&self.store, &key).await?;
        let denied = wait_for_state(&self.store, id, GrantState::Rejected, 50).await?;
        let not_counted: Vec<String> = denied
            .request
            .approvals
            .iter()
            .filter_map(|a| a.discounted.clone())
            .collect();
        println!(
            "\n4. {key}, approved by {DANA} and {MALLORY}: {}; {}; reasons: {}",
            denied.state,
            not_counted.join("; "),
            denied.rejection_reasons.join("; ")
        );
        Ok(id)
    }

    /// 5. A request whose scope holds a wildcard is refused, naming the field, and
    ///    nothing is written.
    async fn refuse_a_wildcard_scope(&self) -> Result<(), CliError> {
        let (_, broken) = raise_and_approve(&self.desk, Duration::hours(6), &[DANA, LI], |f| {
            f["customfield_10208"] = serde_json::json!(["orders_reader", "*"]);
        })
        .await?;
        let refused = self
            .jira
            .send(&broken, &ulid::Ulid::new().to_string())
            .await?;
        println!(
            "\n5. a request whose scope holds a wildcard, approved on the site: intake answered {}, {}",
            refused.status,
            field_problems(&refused.json()["errors"])
        );
        Ok(())
    }

    /// 6. Priya cancels the first ticket on the site: its webhook revokes the grant,
    ///    both of its logins stop working and the workload's open session ends.
    async fn cancel_the_ticket(
        &self,
        first: &Approved,
        issued: Issued,
        rotated: &Login,
    ) -> Result<(), CliError> {
        let key = &first.key;
        let cancelled = self.desk.transition(PRIYA, key, "41").await;
        println!(
            "\n6. {PRIYA} cancelled {key} on the Jira site ({}); its webhook went to the intake",
            cancelled.status
        );
        let ended = wait_for_state(&self.store, first.id, GrantState::Revoked, 100).await?;
        let first_login_works = self.logs_in(&issued.login).await;
        let rotated_login_works = self.logs_in(rotated).await;
        let session_answers = issued.session_answers.await;
        println!(
            "   grant-expire revoked it ({}); both logins -> {}; the session opened in step 3 -> {}",
            ended.state,
            if !first_login_works && !rotated_login_works {
                "refused"
            } else {
                "STILL WORK (bug)"
            },
            if session_answers {
                "STILL OPEN (bug)"
            } else {
                "terminated"
            }
        );
        Ok(())
    }

    /// 7. A grant that lives 8 seconds dies on time, by its schedule. Returns it.
    async fn expire_on_time(&self) -> Result<GrantId, CliError> {
        let (key, _) =
            raise_and_approve(&self.desk, Duration::seconds(8), &[DANA, LI], |_| {}).await?;
        let id = grant_of(&self.store, &key).await?;
        let live = wait_until_settled(&self.store, id).await?;
        let login = self.login_of(&live).await?;
        println!(
            "\n7. {key} approved for 8 seconds: provisioned, login {}; waiting for its not-after time {}",
            if self.logs_in(&login).await {
                "works"
            } else {
                "FAILS (bug)"
            },
            live.not_after().format("%H:%M:%S%.3f")
        );
        let revoked = wait_for_state(&self.store, id, GrantState::Revoked, 150).await?;
        let refused_after = (Utc::now() - live.not_after()).num_milliseconds();
        // A trigger up to a minute early counts as on time (schedules fire within a
        // minute), so the login may be refused just before the not-after time.
        let when = if refused_after >= 0 {
            format!("{refused_after} ms after the not-after time")
        } else {
            format!(
                "{} ms before the not-after time (a trigger up to a minute early is on time)",
                -refused_after
            )
        };
        println!(
            "   revoked by {}; login {} {when}",
            revoked
                .end_cause
                .map_or("nothing recorded (bug)", EndCause::describe),
            if self.logs_in(&login).await {
                "STILL WORKS (bug)"
            } else {
                "refused"
            },
        );
        Ok(id)
    }

    /// 8. The evidence, as an auditor reads it: each grant's audit trail, its chain
    ///    verified.
    async fn print_audit_chains(&self, grants: &[GrantId]) -> Result<(), CliError> {
        println!("\n8. evidence");
        for &grant_id in grants {
            let (grant, trail) = self
                .store
                .grant_with_trail(grant_id)
                .await?
                .ok_or_else(|| CliError::Demo(format!("grant {grant_id} cannot be read back")))?;
            let head = verify_chain(grant_id, &trail, Some(&grant.audit_head))
                .map_err(|e| CliError::Demo(format!("the audit chain does not verify: {e}")))?;
            println!(
                "   grant {grant_id} ({}, {}): {}",
                grant.request.ticket.qualified_key(),
                grant.request.identity.name,
                grant.state
            );
            for e in &trail {
                println!(
                    "     #{} {} {:<18} by {:<28} {}",
                    e.seq,
                    e.at.format("%H:%M:%S"),
                    e.action.as_str(),
                    e.actor.id,
                    about(e)
                );
            }
            println!(
                "     chain verified: {} events, head {}…",
                head.seq,
                &head.hash.to_hex()[..16]
            );
        }
        Ok(())
    }

    /// 9. What the auditor gets for the first ticket: the verified timeline, the live
    ///    state checked now, and the notes the ticket received from the write-back.
    ///    Returns the context step 10 reads the evidence with.
    async fn print_ticket_evidence(
        &self,
        home: &Path,
        first: &Approved,
    ) -> Result<crate::context::Context, CliError> {
        let key = &first.key;
        let notes = wait_for_notes(&self.store, first.id).await?;
        println!(
            "\n9. the write-back told {key} of each step ({notes} notes in the Jira stand-in); \
             `ticketbound evidence jira#{key}` prints:\n"
        );
        let ctx = crate::context::Context::load(home).await?;
        crate::evidence::run(
            &ctx,
            &format!("jira#{key}"),
            crate::evidence::Format::Md,
            None,
        )
        .await?;
        Ok(ctx)
    }
}

/// The value of detail `name` on the first event of `action` in `trail` (empty if none).
fn detail_of(trail: &[AuditEvent], action: AuditAction, name: Detail) -> String {
    trail
        .iter()
        .find(|e| e.action == action)
        .and_then(|e| e.detail(name))
        .unwrap_or_default()
        .to_owned()
}

/// The details of an audit event step 8 shows, as `name=value` pairs.
fn about(e: &AuditEvent) -> String {
    [
        Detail::VerifiedAgainst,
        Detail::ApprovedBy,
        Detail::Decision,
        Detail::PolicyIds,
        Detail::Reasons,
        Detail::Trigger,
        Detail::Principal,
        Detail::ExpirySchedule,
        Detail::Rotation,
        Detail::CurrentVersion,
        Detail::Login,
        Detail::RolesDropped,
        Detail::SessionsTerminated,
    ]
    .iter()
    .filter_map(|k| {
        e.detail(*k)
            .filter(|v| !v.is_empty())
            .map(|v| format!("{k}={v}"))
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// The intake's `errors` (`[{field, problem}]`) in words: `field: problem; …`.
fn field_problems(errors: &Value) -> String {
    let listed: Vec<String> = errors
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["field"].as_str().unwrap_or("(no field)"),
                e["problem"].as_str().unwrap_or("(no problem given)")
            )
        })
        .collect();
    if listed.is_empty() {
        "with no problems named".to_owned()
    } else {
        listed.join("; ")
    }
}

/// The error for a grant that settled without a credential, saying in words what it
/// is now and why.
fn not_provisioned(grant: &Grant) -> CliError {
    CliError::Demo(format!(
        "grant {} was not provisioned: it is {}, {}",
        grant.id,
        grant.state,
        grant
            .last_error
            .as_deref()
            .filter(|e| !e.is_empty())
            .map_or_else(
                || "with no error recorded".to_owned(),
                |e| format!("because {e}")
            )
    ))
}

/// Step 10: writes the ticket's evidence bundle, fetches the bucket's newest checkpoint
/// as an auditor would, and runs `ticketbound verify` in a network namespace of its
/// own (`unshare -rn`: no route to AWS or anything else) against the key `local up`
/// wrote out. The checkpointer signs on its schedule, so the newest events may need
/// a moment to be anchored.
async fn verify_bundle_offline(
    home: &Path,
    ctx: &crate::context::Context,
    ticket: &str,
) -> Result<(), CliError> {
    let stack = LocalStack::read(&home.join(ticketbound_local::stack::FILE_NAME))?;
    let key_file = ticketbound_local::stack::LocalLog::public_key_file(&stack);
    let key = crate::bundle::pinned_key(&key_file.to_string_lossy())?;
    let dir = stack.home().join("evidence").join(ticket.replace('#', "-"));
    let latest_file = dir.join("latest-checkpoint");
    let (_, bucket) = ctx.log()?;
    let started = std::time::Instant::now();
    let verified = loop {
        // As an auditor does it: the newest checkpoint first, then the bundle (whose
        // log, read later, reaches it).
        let latest = log_checkpoint::bundle::newest_checkpoint(&bucket)
            .await
            .map_err(|e| CliError::Demo(ticketbound_runtime::error_chain(&e)))?
            .unwrap_or_default();
        let bundle = crate::bundle::write(ctx, ticket, &dir).await?;
        std::fs::write(&latest_file, &latest)
            .map_err(|e| CliError::Demo(format!("{}: {e}", latest_file.display())))?;
        match crate::bundle::verify(&dir, &key, ticket, Some(&latest_file), None) {
            Ok(v) => break (v, bundle),
            Err(e)
                if started.elapsed() < std::time::Duration::from_secs(30)
                    && (e.to_string().contains("not yet anchored")
                        || e.to_string().contains("is not in the signed log")) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(CliError::Demo(format!("the bundle does not verify: {e}"))),
        }
    };
    println!(
        "\n10. evidence bundle of {ticket} in {}: {} grant(s), {} events, the signed log's {} leaves, {} checkpoint(s) signed with the KMS key {}",
        dir.display(),
        verified.1.grants.len(),
        verified.0.events,
        verified.1.log.len(),
        verified.1.checkpoints.len(),
        &key.fingerprint()[..16]
    );
    let exe = std::env::current_exe().map_err(|e| CliError::Demo(e.to_string()))?;
    let mut verify = std::process::Command::new("unshare");
    verify.arg("-rn").arg(&exe);
    let unshared = std::process::Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !unshared {
        println!("    (no unshare here: verifying without a network namespace)");
        verify = std::process::Command::new(&exe);
    }
    let out = verify
        .arg("verify")
        .arg(&dir)
        .arg("--key")
        .arg(&key_file)
        .arg("--ticket")
        .arg(ticket)
        .arg("--latest")
        .arg(&latest_file)
        .output()
        .map_err(|e| CliError::Demo(format!("ticketbound verify: {e}")))?;
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(CliError::Demo(format!(
            "ticketbound verify failed: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    println!(
        "    `ticketbound verify` with no network{}: {}",
        if unshared { " (unshare -rn)" } else { "" },
        said.trim()
    );
    // The same, as a page people read (`evidence --format html --key …`).
    let evidence = crate::evidence::build(ctx, ticket, Some(&key)).await?;
    let report = dir.join("report.html");
    std::fs::write(&report, crate::report::render(&evidence))
        .map_err(|e| CliError::Demo(format!("{}: {e}", report.display())))?;
    println!(
        "    the report for people, one self-contained page with each grant's timeline: {} (verdict: {})",
        report.display(),
        evidence.verdict
    );
    Ok(())
}

/// Waits (up to 20 s) until the write-back has told the ticket of every step of the
/// grant so far, and returns how many notes that is.
async fn wait_for_notes(store: &Store, id: GrantId) -> Result<usize, CliError> {
    for _ in 0..200 {
        let trail = store.audit_trail(id).await?;
        let (told, to_tell) = ticketbound_itsm::note::told_of(&trail);
        if told >= to_tell {
            return Ok(told);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(CliError::Demo(format!(
        "the write-back did not tell the ticket of every step of grant {id} within 20 s; see .ticketbound/host.log"
    )))
}

/// Waits (up to 15 s) until the provisioner has taken the grant out of Approved and
/// Provisioning.
async fn wait_until_settled(
    store: &Store,
    id: GrantId,
) -> Result<ticketbound_domain::Grant, CliError> {
    use ticketbound_domain::GrantState::{Approved, Provisioning};
    poll_grant(store, id, 150, |g| {
        !matches!(g.state, Approved | Provisioning)
    })
    .await?
    .filter(|g| !matches!(g.state, Approved | Provisioning))
    .ok_or_else(|| {
        CliError::Demo(format!(
            "grant {id} was not provisioned within 15 s; see .ticketbound/host.log"
        ))
    })
}

/// Waits up to `tenths` tenths of a second for the grant to reach `state`.
async fn wait_for_state(
    store: &Store,
    id: GrantId,
    state: ticketbound_domain::GrantState,
    tenths: u32,
) -> Result<ticketbound_domain::Grant, CliError> {
    poll_grant(store, id, tenths, |g| g.state == state)
        .await?
        .filter(|g| g.state == state)
        .ok_or_else(|| {
            CliError::Demo(format!(
                "grant {id} did not become {state}; see .ticketbound/host.log"
            ))
        })
}
