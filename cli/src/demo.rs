//! `ticketbound demo`: the lifecycle on the local stack, told step by step, driven the
//! way production is driven: signed ITSM webhooks to the intake's URL.
//!
//! What runs today: approval through the intake (signature, validation, Cedar policy,
//! one transaction), redelivery recognised, provisioning from the grants stream (a
//! PostgreSQL login role within its scope, its secret in Secrets Manager, an expiry
//! schedule), the credential used as the workload would use it, a policy denial
//! recorded with its reasons, a rotation in Secrets Manager's four steps (alternating
//! users), a withdrawal, an expiry on time, and each grant's audit chain verified.
//! It ends with the evidence for the first ticket, as `ticketbound evidence` prints it:
//! the verified timeline, the live state checked now, and the notes the write-back put
//! on the ticket (in the local Jira stand-in).

use std::path::Path;

use chrono::{Duration, Utc};
use serde_json::Value;
use ticketbound_domain::{GrantId, verify_chain};
use ticketbound_runtime::local::LocalStack;
use ticketbound_store::Store;
use ticketbound_testkit::{HttpAnswer, jira_approval, jira_cancellation, poll_grant, unique_key};

use crate::error::CliError;

struct Jira<'a> {
    stack: &'a LocalStack,
    secret: String,
}

impl Jira<'_> {
    /// Sends a webhook as Jira's sender does: signed body, delivery id header.
    async fn send(&self, body: &Value, delivery: &str) -> Result<HttpAnswer, CliError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CliError::Demo(e.to_string()))?;
        let headers = ticketbound_testkit::jira_webhook_headers(&self.secret, &bytes, delivery);
        ticketbound_testkit::post(&self.stack.intake_url, "/jira", &headers, &bytes)
            .await
            .map_err(|e| {
                CliError::Demo(format!(
                    "the intake at {} did not answer: {e}",
                    self.stack.intake_url
                ))
            })
    }
}

fn grant_id(answer: &HttpAnswer) -> Result<GrantId, CliError> {
    answer.json()["grant_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            CliError::Demo(format!(
                "the intake answered {} {}",
                answer.status, answer.body
            ))
        })
}

pub async fn run(home: &Path) -> Result<(), CliError> {
    println!("== ticketbound demo ==\n");
    let stack = crate::local::up(home, Default::default()).await?;
    crate::local::print(&stack, home);

    let tk = ticketbound_testkit::TestStack {
        sdk: stack.sdk_config().await,
        local: stack.clone(),
    };
    let store = tk.local_store();
    // The demo plays Jira, so it signs with the webhook secret Jira would hold.
    let jira = Jira {
        stack: &stack,
        secret: tk.secret_value(&stack.webhook_secrets.jira).await,
    };

    // 1. Jira: the access request OPS-… reaches "Approved" with two approvers.
    let key = unique_key("OPS");
    let approval = jira_approval(Utc::now(), &key, Duration::hours(6));
    let delivery = ulid::Ulid::new().to_string();
    let answer = jira.send(&approval, &delivery).await?;
    let id = grant_id(&answer)?;
    let out = answer.json();
    println!(
        "\n1. Jira sent the approval of {key} to {}/jira (signed, X-Hub-Signature)",
        stack.intake_url
    );
    println!(
        "   intake answered {}: grant {id} is {}, allowed by policy {}",
        answer.status, out["state"], out["policy_ids"]
    );

    // 2. Jira delivers it again: nothing is written twice.
    let again = jira.send(&approval, &delivery).await?;
    println!(
        "\n2. the same delivery again: {} {} (same grant: {})",
        again.status,
        again.json()["outcome"],
        again.json()["grant_id"] == out["grant_id"]
    );

    refuse_a_foreign_principal(&jira).await?;

    // 3. The grants stream feeds the provisioner: the credential is made.
    let grant = wait_until_settled(&store, id).await?;
    let credential = grant.credential.clone().ok_or_else(|| {
        CliError::Demo(format!(
            "grant {id} was not provisioned: {} ({})",
            grant.state,
            grant.last_error.clone().unwrap_or_default()
        ))
    })?;
    println!(
        "\n3. provisioned from the grants stream: grant is {}; login role {} at {}, scope {}",
        grant.state, credential.principal_name, grant.request.target.system_id, grant.request.scope
    );
    println!("   secret {}", credential.secret_arn);
    let sm = tk.secretsmanager();
    let described = sm
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
    let value = tk.secret_value(&credential.secret_arn).await;
    let secret: Value = serde_json::from_str(&value)
        .map_err(|e| CliError::Demo(format!("the secret is not JSON: {e}")))?;
    let db = tk
        .pg_login(
            secret["username"].as_str().unwrap_or_default(),
            secret["password"].as_str().unwrap_or_default(),
        )
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

    // 3b. Rotation, as Secrets Manager runs it on the secret's schedule (here: now).
    let rotation = crate::local::rotation::rotate_grant(&stack, id).await?;
    let rotated: Value = serde_json::from_str(&tk.secret_value(&credential.secret_arn).await)
        .map_err(|e| CliError::Demo(format!("the rotated secret is not JSON: {e}")))?;
    let login = |v: &Value| {
        (
            v["username"].as_str().unwrap_or_default().to_owned(),
            v["password"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let (old_user, old_pass) = login(&secret);
    let (new_user, new_pass) = login(&rotated);
    let verdict = |ok: bool| if ok { "works" } else { "refused" };
    println!(
        "\n3b. rotated (createSecret, setSecret, testSecret, finishSecret) in {} ms: AWSCURRENT is now version {}",
        rotation.elapsed.as_millis(),
        rotation.token
    );
    println!(
        "   alternating users: new login {new_user} {}; the previous login {old_user} still {} until the next rotation",
        verdict(tk.pg_login(&new_user, &new_pass).await.is_ok()),
        verdict(tk.pg_login(&old_user, &old_pass).await.is_ok()),
    );

    // 4. Another ticket asks for prod access with one approver: policy says no.
    let denied_key = unique_key("OPS");
    let mut one_approver = jira_approval(Utc::now(), &denied_key, Duration::hours(6));
    if let Some(approvers) =
        one_approver["issue"]["fields"]["customfield_10002"][0]["approvers"].as_array_mut()
    {
        approvers.truncate(1);
    }
    let denied = jira
        .send(&one_approver, &ulid::Ulid::new().to_string())
        .await?;
    let denied_id = grant_id(&denied)?;
    println!(
        "\n4. {denied_key} asks for prod access with a single approver: {} {}, reasons {}",
        denied.status,
        denied.json()["state"],
        denied.json()["reasons"]
    );

    // 5. A malformed approval is refused, naming the field, and writes nothing.
    let mut broken = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(6));
    broken["issue"]["fields"]["customfield_10208"] = serde_json::json!(["orders_reader", "*"]);
    let refused = jira.send(&broken, &ulid::Ulid::new().to_string()).await?;
    println!(
        "\n5. an approval whose scope holds a wildcard: {} {}",
        refused.status,
        refused.json()["errors"]
    );

    // 6. The first ticket is cancelled: the grant is revoked at the target.
    let cancelled = jira
        .send(
            &jira_cancellation(Utc::now(), &key),
            &ulid::Ulid::new().to_string(),
        )
        .await?;
    println!(
        "\n6. Jira cancelled {key}: {} {}, grants ending: {}",
        cancelled.status,
        cancelled.json()["outcome"],
        cancelled.json()["grants"]
    );
    let ended = wait_for_state(&store, id, ticketbound_domain::GrantState::Revoked, 100).await?;
    let relogin = tk
        .pg_login(
            secret["username"].as_str().unwrap_or_default(),
            secret["password"].as_str().unwrap_or_default(),
        )
        .await;
    let rotated_login = tk.pg_login(&new_user, &new_pass).await;
    let open_session = db.query("SELECT 1", &[]).await;
    println!(
        "   grant-expire revoked it ({}); both logins -> {}; the session opened in step 3 -> {}",
        ended.state,
        if relogin.is_err() && rotated_login.is_err() {
            "refused"
        } else {
            "STILL WORK (bug)"
        },
        if open_session.is_err() {
            "terminated"
        } else {
            "STILL OPEN (bug)"
        }
    );

    // 7. A grant that lives 8 seconds dies on time, by its schedule.
    let short_key = unique_key("OPS");
    let short = jira
        .send(
            &jira_approval(Utc::now(), &short_key, Duration::seconds(8)),
            &ulid::Ulid::new().to_string(),
        )
        .await?;
    let short_id = grant_id(&short)?;
    let live = wait_until_settled(&store, short_id).await?;
    let short_secret: Value = match &live.credential {
        Some(c) => serde_json::from_str(&tk.secret_value(&c.secret_arn).await)
            .map_err(|e| CliError::Demo(format!("the secret is not JSON: {e}")))?,
        None => {
            return Err(CliError::Demo(format!(
                "grant {short_id} was not provisioned: {:?}",
                live.last_error
            )));
        }
    };
    let (user, pass) = (
        short_secret["username"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        short_secret["password"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let works = tk.pg_login(&user, &pass).await.is_ok();
    println!(
        "\n7. {short_key} approved for 8 seconds: provisioned, login {}; waiting for its not-after time {}",
        if works { "works" } else { "FAILS (bug)" },
        live.not_after().format("%H:%M:%S%.3f")
    );
    let revoked = wait_for_state(
        &store,
        short_id,
        ticketbound_domain::GrantState::Revoked,
        150,
    )
    .await?;
    let refused_after = Utc::now() - live.not_after();
    println!(
        "   revoked by {}; login {} {} ms after the not-after time",
        revoked.end_cause.map_or(
            "nothing recorded (bug)",
            ticketbound_domain::EndCause::describe
        ),
        if tk.pg_login(&user, &pass).await.is_err() {
            "refused"
        } else {
            "STILL WORKS (bug)"
        },
        refused_after.num_milliseconds()
    );

    // 8. The evidence, as an auditor reads it.
    println!("\n8. evidence");
    for grant_id in [id, denied_id, short_id] {
        let (grant, trail) = store
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
            let about = [
                "decision",
                "policy_ids",
                "reasons",
                "trigger",
                "principal",
                "expiry_schedule",
                "rotation",
                "current_version",
                "login",
                "roles_dropped",
                "sessions_terminated",
            ]
            .iter()
            .filter_map(|k| {
                e.details
                    .get(*k)
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{k}={v}"))
            })
            .collect::<Vec<_>>()
            .join(", ");
            println!(
                "     #{} {} {:<18} by {:<28} {}",
                e.seq,
                e.at.format("%H:%M:%S"),
                e.action.as_str(),
                e.actor.id,
                about
            );
        }
        println!(
            "     chain verified: {} events, head {}…",
            head.seq,
            &head.hash.to_hex()[..16]
        );
    }

    // 9. What the auditor gets for the first ticket: the verified timeline, the live
    //    state checked now, and the notes the ticket received from the write-back.
    let notes = wait_for_notes(&store, id).await?;
    println!(
        "\n9. the write-back told {key} of each step ({notes} notes in the Jira stand-in); \
         `ticketbound evidence jira#{key}` prints:\n"
    );
    let ctx = crate::context::Context::load(home).await?;
    crate::evidence::run(&ctx, &format!("jira#{key}"), "md").await?;

    println!("\ndemo finished; `cargo run -p ticketbound -- local down` stops the local stack");
    Ok(())
}

/// 2b. A requester edits the ticket's workload principal to a role of their own: the
/// principal comes from the identity registry, so the approval is refused, naming
/// the field, and nothing is made.
async fn refuse_a_foreign_principal(jira: &Jira<'_>) -> Result<(), CliError> {
    let key = unique_key("OPS");
    let mut approval = jira_approval(Utc::now(), &key, Duration::hours(6));
    approval["issue"]["fields"]["customfield_10204"] =
        "arn:aws:iam::999999999999:role/someone-elses".into();
    let answer = jira.send(&approval, &ulid::Ulid::new().to_string()).await?;
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
