//! `ticketbound demo`: the lifecycle on the local stack, told step by step, driven the
//! way production is driven: signed ITSM webhooks to the intake's URL.
//!
//! What runs today: approval through the intake (signature, validation, Cedar policy,
//! one transaction), redelivery recognised, a policy denial recorded with its reasons,
//! a withdrawal ending the grant, and each grant's audit chain verified. Provisioning,
//! rotation, expiry and write-back join as they are built; the demo says which steps
//! are not there yet rather than pretending.

use std::path::Path;

use chrono::{Duration, Utc};
use serde_json::Value;
use ticketbound_domain::{GrantId, verify_chain};
use ticketbound_itsm::auth;
use ticketbound_runtime::local::LocalStack;
use ticketbound_store::{Store, StoreSettings, Tables};
use ticketbound_testkit::{HttpAnswer, jira_approval, jira_cancellation, unique_key};

use crate::error::CliError;

struct Jira<'a> {
    stack: &'a LocalStack,
    secret: String,
}

impl Jira<'_> {
    /// Sends a webhook as Jira's sender does: signed body, delivery id header.
    async fn send(&self, body: &Value, delivery: &str) -> Result<HttpAnswer, CliError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CliError::Demo(e.to_string()))?;
        let headers = [
            ("Content-Type", "application/json; charset=UTF-8".to_owned()),
            ("User-Agent", "Atlassian Webhook HTTP Client".to_owned()),
            ("X-Atlassian-Webhook-Identifier", delivery.to_owned()),
            (
                "X-Hub-Signature",
                auth::hub_signature(self.secret.as_bytes(), &bytes),
            ),
        ];
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
    let stack = crate::local::up(home).await?;
    crate::local::print(&stack, home);

    let tk = ticketbound_testkit::TestStack {
        sdk: stack.sdk_config().await,
        local: stack.clone(),
    };
    let store = Store::new(
        tk.dynamodb(),
        StoreSettings {
            tables: Tables {
                grants: stack.grants_table.clone(),
                audit: stack.audit_table.clone(),
            },
            retention: Duration::days(400),
        },
    );
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

    // 3. Another ticket asks for prod access with one approver: policy says no.
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
        "\n3. {denied_key} asks for prod access with a single approver: {} {}, reasons {}",
        denied.status,
        denied.json()["state"],
        denied.json()["reasons"]
    );

    // 4. A malformed approval is refused, naming the field, and writes nothing.
    let mut broken = jira_approval(Utc::now(), &unique_key("OPS"), Duration::hours(6));
    broken["issue"]["fields"]["customfield_10208"] = serde_json::json!(["orders_reader", "*"]);
    let refused = jira.send(&broken, &ulid::Ulid::new().to_string()).await?;
    println!(
        "\n4. an approval whose scope holds a wildcard: {} {}",
        refused.status,
        refused.json()["errors"]
    );

    // 5. The first ticket is cancelled: its grant ends.
    let cancelled = jira
        .send(
            &jira_cancellation(Utc::now(), &key),
            &ulid::Ulid::new().to_string(),
        )
        .await?;
    println!(
        "\n5. Jira cancelled {key}: {} {}, grants ended: {}",
        cancelled.status,
        cancelled.json()["outcome"],
        cancelled.json()["grants"]
    );

    // 6. The evidence, as an auditor reads it.
    println!("\n6. evidence");
    for grant_id in [id, denied_id] {
        let grant = store
            .get_grant(grant_id)
            .await?
            .ok_or_else(|| CliError::Demo(format!("grant {grant_id} cannot be read back")))?;
        let trail = store.audit_trail(grant_id).await?;
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
                "approved_by",
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

    println!(
        "\nNot yet part of the demo: provisioning a PostgreSQL login, rotation, expiry on schedule \
         and ticket write-back; each arrives with its own issue."
    );
    println!("\ndemo finished; `cargo run -p ticketbound -- local down` stops the local stack");
    Ok(())
}
