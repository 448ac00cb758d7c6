//! What the expiry tests and the throughput benchmark share: a local stack harness
//! with an issuer that makes real credentials the way the provisioner does.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // shared by several targets

use chrono::{Duration, Utc};
use grant_expire::Deps;
use serde_json::json;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, Grant, GrantEvent, LifecycleRules, Permission, Scope, SystemId,
};
use ticketbound_enforce::{EnforceSettings, Enforcer, Targets};
use ticketbound_runtime::EnvReader;
use ticketbound_schedule::{ExpirySchedules, ScheduleSettings, ScheduleTarget};
use ticketbound_testkit::{PgFixture, TestStack, sample_grant};
use ticketbound_vault::{SecretCache, Vault};

pub struct Harness {
    pub stack: TestStack,
    pub deps: Deps,
    /// Issues credentials the way the provisioner does.
    pub issuer: Enforcer,
    pub pg: PgFixture,
    pub admin_secret: String,
}

pub async fn harness() -> Harness {
    let stack = TestStack::get().await;
    let tables = stack.fresh_tables().await.unwrap();
    let pg = stack.pg_fixture().await;
    let admin_secret = stack
        .create_secret("pg-admin", &stack.local.postgres.admin_dsn())
        .await;
    let group = format!("t{}", ulid::Ulid::new());
    aws_sdk_scheduler::Client::new(&stack.sdk)
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .unwrap();
    let targets = json!({
        "orders-db": {
            "connector": "postgres",
            "admin_secret_id": admin_secret,
            "host": stack.local.postgres.host,
            "port": stack.local.postgres.port,
            "dbname": stack.local.postgres.database,
            "allowed_roles": [pg.reader, pg.reporting],
        }
    });
    let deps = Deps::from_env(
        &stack.sdk,
        EnvReader::from_map([
            ("TICKETBOUND_GRANTS_TABLE", tables.grants.clone()),
            ("TICKETBOUND_AUDIT_TABLE", tables.audit.clone()),
            ("TICKETBOUND_TARGETS", targets.to_string()),
            ("TICKETBOUND_SCHEDULE_GROUP", group.clone()),
            // The admin secret is re-read on every call, so a test can break and mend it.
            ("TICKETBOUND_SECRET_CACHE_SECS", "0".to_owned()),
        ]),
    )
    .unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let issuer = Enforcer {
        vault: Vault::new(secrets.clone()),
        admin_secrets: SecretCache::new(
            secrets,
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
        ),
        schedules: ExpirySchedules::new(
            aws_sdk_scheduler::Client::new(&stack.sdk),
            ScheduleSettings {
                group,
                target: Some(ScheduleTarget {
                    arn: "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-grant-expire"
                        .into(),
                    role_arn: "arn:aws:iam::123456789012:role/ticketbound-scheduler".into(),
                    dead_letter_arn: None,
                }),
            },
        ),
        settings: EnforceSettings {
            targets: serde_json::from_value::<Targets>(targets).unwrap(),
            kms_key_id: None,
            admin_principals: vec![],
            rotation_function_arn: None,
            recovery_window_days: None,
        },
    };
    Harness {
        stack,
        deps,
        issuer,
        pg,
        admin_secret,
    }
}

/// An Active grant with a working credential, living `lifetime` from now. Returns the
/// grant and the credential's password.
pub async fn active_grant(h: &Harness, lifetime: Duration) -> (Grant, String) {
    let mut grant = sample_grant(Utc::now(), lifetime);
    grant.request.scope = Scope::new([Permission::new(&h.pg.reader).unwrap()]).unwrap();
    grant.request.target.system_id = SystemId::new("orders-db").unwrap();
    let e = grant.record(AuditRecord::new(
        Utc::now(),
        Actor::itsm_user("priya"),
        AuditAction::Requested,
    ));
    h.deps
        .store
        .create_grant(&grant, &[e], None, Utc::now())
        .await
        .unwrap();

    let rules = LifecycleRules::default();
    let (mut g, t) = grant
        .apply(&GrantEvent::ProvisioningStarted, Utc::now(), &rules)
        .unwrap();
    let e = g.record(
        AuditRecord::new(
            Utc::now(),
            Actor::component("test"),
            AuditAction::ProvisioningStarted,
        )
        .states(Some(t.from), Some(t.to)),
    );
    h.deps.store.save_grant(&g, &[e]).await.unwrap();
    let issued = h.issuer.issue(&g).await.unwrap();
    let (mut g, t) = g
        .apply(
            &GrantEvent::Provisioned {
                credential: issued.credential.clone(),
            },
            Utc::now(),
            &rules,
        )
        .unwrap();
    let e = g.record(
        AuditRecord::new(
            Utc::now(),
            Actor::component("test"),
            AuditAction::Provisioned,
        )
        .states(Some(t.from), Some(t.to)),
    );
    h.deps.store.save_grant(&g, &[e]).await.unwrap();
    let value = h.stack.secret_value(&issued.credential.secret_arn).await;
    let password = serde_json::from_str::<serde_json::Value>(&value).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    (g, password)
}

/// Makes the grant overdue without waiting: its not-after time moves into the past
/// (as if the clock had run on), written like any other change.
pub async fn make_overdue(h: &Harness, g: &Grant) -> Grant {
    let mut late = h
        .deps
        .store
        .get_grant(g.id)
        .await
        .unwrap()
        .unwrap()
        .noted(Utc::now());
    late.request.not_after = Utc::now() - Duration::seconds(5);
    let e = late.record(
        AuditRecord::new(
            Utc::now(),
            Actor::operator("test-clock"),
            AuditAction::DriftFound,
        )
        .detail("note", "clock moved past not-after"),
    );
    h.deps.store.save_grant(&late, &[e]).await.unwrap();
    late
}
