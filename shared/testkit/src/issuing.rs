//! What tests of the life after provisioning share: a target system in the local
//! PostgreSQL, its administrator secret, an issuer that makes real credentials the way
//! the provisioner does, and Active grants holding them.

use chrono::{Duration, Utc};
use serde_json::json;
use ticketbound_domain::Detail;
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, Grant, GrantEvent, LifecycleRules, Permission, Scope, SystemId,
};
use ticketbound_enforce::{EnforceSettings, Enforcer, Targets};
use ticketbound_schedule::{ExpirySchedules, ScheduleSettings, ScheduleTarget};
use ticketbound_secrets::{SecretCache, SecretsManager};
use ticketbound_store::Store;

use crate::{PgFixture, TestStack, sample_grant};

/// The target whose credentials rotate with alternating users (the default).
pub const ALTERNATING_TARGET: &str = "orders-db";
/// The same database, configured to rotate a single user.
pub const SINGLE_USER_TARGET: &str = "orders-db-single";

/// A target system, its configuration and an issuer, for one test.
#[derive(Debug)]
pub struct IssuingFixture {
    pub pg: PgFixture,
    pub admin_secret: String,
    /// `TICKETBOUND_TARGETS` for the functions under test.
    pub targets: serde_json::Value,
    /// A schedule group of this test's own.
    pub schedule_group: String,
    /// Issues credentials the way the provisioner does.
    pub issuer: Enforcer,
}

impl TestStack {
    /// A fresh fixture; `rotation_function_arn` turns rotation on for what it issues.
    pub async fn issuing_fixture(&self, rotation_function_arn: Option<&str>) -> IssuingFixture {
        let pg = self.pg_fixture().await;
        let admin_secret = self
            .create_secret("pg-admin", &self.local.postgres.admin_dsn())
            .await;
        let schedule_group = format!("t{}", ulid::Ulid::new());
        if let Err(e) = aws_sdk_scheduler::Client::new(&self.sdk)
            .create_schedule_group()
            .name(&schedule_group)
            .send()
            .await
        {
            panic!("could not create a schedule group: {e:?}");
        }
        let target = |rotation: &str| {
            json!({
                "connector": "postgres",
                "environment": "prod",
                "admin_secret_id": admin_secret,
                "host": self.local.postgres.host,
                "port": self.local.postgres.port,
                "dbname": self.local.postgres.database,
                "ca_file": self.local.postgres.ca_file,
                "allowed_roles": [pg.reader, pg.reporting],
                "rotation": rotation,
            })
        };
        let targets = json!({
            ALTERNATING_TARGET: target("alternating_users"),
            SINGLE_USER_TARGET: target("single_user"),
        });
        let parsed: Targets = match serde_json::from_value(targets.clone()) {
            Ok(t) => t,
            Err(e) => panic!("targets: {e}"),
        };
        let secrets = aws_sdk_secretsmanager::Client::new(&self.sdk);
        let issuer = Enforcer {
            secrets_manager: SecretsManager::new(secrets.clone()),
            admin_secrets: SecretCache::new(
                secrets,
                std::time::Duration::ZERO,
                std::time::Duration::ZERO,
            ),
            schedules: ExpirySchedules::new(
                aws_sdk_scheduler::Client::new(&self.sdk),
                ScheduleSettings {
                    group: schedule_group.clone(),
                    target: Some(ScheduleTarget {
                        arn: "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-grant-expire"
                            .into(),
                        role_arn: "arn:aws:iam::123456789012:role/ticketbound-scheduler".into(),
                        dead_letter_arn: None,
                        provision_arn: Some(
                            "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-grant-provision"
                                .into(),
                        ),
                    }),
                },
            ),
            settings: EnforceSettings {
                targets: parsed,
                kms_key_id: None,
                admin_principals: vec![],
                rotation_function_arn: rotation_function_arn.map(str::to_owned),
                recovery_window_days: None,
            },
            admins_checked: Default::default(),
            transports: Default::default(),
        };
        IssuingFixture {
            pg,
            admin_secret,
            targets,
            schedule_group,
            issuer,
        }
    }
}

impl IssuingFixture {
    /// An Active grant at `system` with a working credential (scope: the fixture's
    /// reader role), living `lifetime` from now, recorded in `store` step by step as
    /// the provisioner records it. Returns the grant and the credential's password.
    pub async fn active_grant(
        &self,
        stack: &TestStack,
        store: &Store,
        system: &str,
        lifetime: Duration,
    ) -> (Grant, String) {
        let mut grant = sample_grant(Utc::now(), lifetime);
        grant.request.scope = ok(Scope::new([ok(Permission::new(&self.pg.reader))]));
        grant.request.target.system_id = ok(SystemId::new(system));
        let g = requested(store, grant, "priya").await;
        let g = record_step(
            store,
            g,
            GrantEvent::ProvisioningStarted,
            AuditAction::ProvisioningStarted,
        )
        .await;
        let issued = ok(self.issuer.issue(&g).await);
        let g = record_step(
            store,
            g,
            GrantEvent::Provisioned {
                credential: issued.credential.clone(),
            },
            AuditAction::Provisioned,
        )
        .await;
        let (_, password) = stack.credential(&issued.credential.secret_arn).await;
        (g, password)
    }
}

impl TestStack {
    /// The login and password the credential secret holds now (AWSCURRENT).
    pub async fn credential(&self, secret_arn: &str) -> (String, String) {
        let value: serde_json::Value =
            ok(serde_json::from_str(&self.secret_value(secret_arn).await));
        let field = |name: &str| {
            value[name]
                .as_str()
                .unwrap_or_else(|| panic!("the secret has no {name}"))
                .to_owned()
        };
        (field("username"), field("password"))
    }
}

fn ok<T, E: std::fmt::Debug>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("test setup failed: {e:?}"))
}

/// Makes the grant overdue without waiting: its not-after time moves into the past
/// (as if the clock had run on), written like any other change.
pub async fn make_overdue(store: &Store, g: &Grant) -> Grant {
    let Some(current) = ok(store.get_grant(g.id).await) else {
        panic!("grant {} is not stored", g.id)
    };
    let mut late = current.noted(Utc::now());
    late.request.not_after = Utc::now() - Duration::seconds(5);
    let e = late.record(
        AuditRecord::new(
            Utc::now(),
            Actor::operator("test-clock"),
            AuditAction::DriftFound,
        )
        .detail(Detail::Note, "clock moved past not-after"),
    );
    ok(store.save_grant(&late, &[e]).await);
    late
}

/// What grant-expire does when a ticket is withdrawn, step by step, for tests that
/// interleave it with another function: the grant moved to Revoking, its credential
/// revoked by `enforcer` (when given: `None` records the end without touching the
/// target, as a revocation that failed to see a late credential would), then recorded
/// Revoked. Returns the grant as stored and what the revocation removed.
pub async fn withdraw_and_revoke(
    store: &Store,
    grant: Grant,
    enforcer: Option<&Enforcer>,
) -> (Grant, Option<ticketbound_enforce::Revocation>) {
    let rules = LifecycleRules::default();
    let record = |action| {
        move |_: &Grant, t: &ticketbound_domain::Transition| {
            AuditRecord::new(Utc::now(), Actor::component("grant-expire"), action)
                .states(Some(t.from), Some(t.to))
        }
    };
    let (revoking, _) = ok(store
        .advance(
            grant,
            &GrantEvent::TicketWithdrawn,
            Utc::now(),
            &rules,
            record(AuditAction::RevocationStarted),
        )
        .await);
    let revocation = match enforcer {
        Some(e) => Some(ok(e.revoke(&revoking).await)),
        None => None,
    };
    let (revoked, _) = ok(store
        .advance(
            revoking,
            &GrantEvent::RevokeConfirmed,
            Utc::now(),
            &rules,
            record(AuditAction::Revoked),
        )
        .await);
    (revoked, revocation)
}

/// A grant made before the `generated_api_key` connector was retired: its secret is
/// the key, and no target of it is configured any more.
pub async fn retired_api_key_grant(stack: &TestStack, store: &Store) -> Grant {
    let mut grant = sample_grant(Utc::now(), Duration::hours(1));
    grant.request.target.system_id = ok(SystemId::new("billing-api"));
    grant.request.target.connector = ticketbound_domain::ConnectorKind::GeneratedApiKey;
    let g = record_step(
        store,
        requested(store, grant, "sam").await,
        GrantEvent::ProvisioningStarted,
        AuditAction::ProvisioningStarted,
    )
    .await;
    let made = stack
        .secretsmanager()
        .create_secret()
        .name(ticketbound_enforce::secret_name(&g))
        .secret_string(format!("key-{}", ulid::Ulid::new()))
        .tags(tag("managed-by", "ticketbound"))
        .tags(tag("grant-id", &g.id.to_string()))
        .tags(tag("owner", g.request.identity.owner.as_str()))
        .send()
        .await;
    let made = ok(made);
    let credential = ticketbound_domain::CredentialRef {
        secret_arn: made.arn().unwrap_or_default().to_owned(),
        principal_name: g.request.identity.name.to_string(),
    };
    record_step(
        store,
        g,
        GrantEvent::Provisioned { credential },
        AuditAction::Provisioned,
    )
    .await
}

/// Stores `grant` as requested by `requester`.
async fn requested(store: &Store, mut grant: Grant, requester: &str) -> Grant {
    let e = grant.record(AuditRecord::new(
        Utc::now(),
        Actor::itsm_user(requester),
        AuditAction::Requested,
    ));
    ok(store.create_grant(&grant, &[e], None, Utc::now()).await);
    grant
}

/// Moves `grant` on by `event`, audited as `action`, and stores it.
async fn record_step(store: &Store, grant: Grant, event: GrantEvent, action: AuditAction) -> Grant {
    let (mut g, t) = ok(grant.apply(&event, Utc::now(), &LifecycleRules::default()));
    let e = g.record(
        AuditRecord::new(Utc::now(), Actor::component("test"), action)
            .states(Some(t.from), Some(t.to)),
    );
    ok(store.save_grant(&g, &[e]).await);
    g
}

fn tag(key: &str, value: &str) -> aws_sdk_secretsmanager::types::Tag {
    aws_sdk_secretsmanager::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}
