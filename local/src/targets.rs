//! The local stack's target systems and the AWS resources the provisioner expects:
//! `orders-db` (the local PostgreSQL, with a small `orders` schema and the group roles
//! grants may be given), the administrator
//! secret, and the expiry schedule group.

use crate::stack::LocalStack;
use aws_sdk_scheduler::error::ProvideErrorMetadata;
use serde_json::json;

use crate::process::LocalError;

/// The local stack's one target: its system id.
pub const ORDERS_DB: &str = "orders-db";
/// The Secrets Manager id of the local `orders-db` administrator's connection string.
pub const ORDERS_DB_ADMIN_SECRET: &str = "ticketbound/local/targets/orders-db";
/// The roles a grant at `orders-db` may be given. `orders_etl` may CREATE in a
/// staging schema, as ETL roles usually may: on PostgreSQL 15 a grant of it is
/// refused, with the reason, because what a grantee made as that role would outlive
/// the grant.
pub const ORDERS_DB_ROLES: [&str; 3] = ["orders_reader", "orders_reporting", "orders_etl"];
/// ticketbound's least-privilege administrator of the local PostgreSQL.
pub const ADMIN_ROLE: &str = "ticketbound_admin";
pub const SCHEDULE_GROUP: &str = "ticketbound";
/// Stand-ins for ARNs that exist only in AWS: the local stack fires schedules itself.
pub const EXPIRY_FUNCTION_ARN: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-grant-expire";
/// What change window start schedules invoke (the host runs grant-provision for them).
pub const PROVISION_FUNCTION_ARN: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-grant-provision";
pub const SCHEDULER_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ticketbound-scheduler";
/// The rotation function moto knows (a stand-in; the local stack drives rotations).
pub const ROTATION_FUNCTION_NAME: &str = "ticketbound-secret-rotate";
pub const ROTATION_FUNCTION_ARN: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:ticketbound-secret-rotate";

/// `orders-db`: group roles that can read orders (and nothing can read payments).
const ORDERS_DB_SQL: &str = "
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_reader') THEN CREATE ROLE orders_reader NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_reporting') THEN CREATE ROLE orders_reporting NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_etl') THEN CREATE ROLE orders_etl NOLOGIN; END IF;
  -- ticketbound's administrator, as the deploy guide asks for it: no superuser.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ticketbound_admin') THEN
    CREATE ROLE ticketbound_admin LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS;
  END IF;
END $$;
GRANT pg_signal_backend TO ticketbound_admin;
CREATE SCHEMA IF NOT EXISTS orders_staging;
GRANT USAGE, CREATE ON SCHEMA orders_staging TO orders_etl;
CREATE SCHEMA IF NOT EXISTS orders;
CREATE TABLE IF NOT EXISTS orders.orders (id int PRIMARY KEY, customer text, total numeric, placed_at timestamptz);
INSERT INTO orders.orders VALUES (1, 'acme', 120.50, now()), (2, 'globex', 99.00, now()) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS orders.payments (id int PRIMARY KEY, order_id int, card_last4 text);
CREATE OR REPLACE VIEW orders.daily_totals AS SELECT date_trunc('day', placed_at) AS day, sum(total) AS total FROM orders.orders GROUP BY 1;
GRANT USAGE ON SCHEMA orders TO orders_reader, orders_reporting;
GRANT SELECT ON orders.orders TO orders_reader;
GRANT SELECT ON orders.daily_totals TO orders_reporting;
";

pub async fn ensure(
    stack: &LocalStack,
    secrets: &aws_sdk_secretsmanager::Client,
    scheduler: &aws_sdk_scheduler::Client,
) -> Result<(), LocalError> {
    let (client, conn) =
        tokio_postgres::connect(&stack.postgres.superuser_dsn(), tokio_postgres::NoTls)
            .await
            .map_err(|e| LocalError::Target {
                what: "connect to the local PostgreSQL".into(),
                source: Box::new(e),
            })?;
    tokio::spawn(conn);
    client
        .batch_execute(ORDERS_DB_SQL)
        .await
        .map_err(|e| LocalError::Target {
            what: "create the orders-db schema and roles".into(),
            source: Box::new(e),
        })?;
    // Made per cluster, never printed; ULID characters need no quoting.
    client
        .batch_execute(&format!(
            "ALTER ROLE {ADMIN_ROLE} PASSWORD '{}'",
            stack.postgres.admin_password
        ))
        .await
        .map_err(|e| LocalError::Target {
            what: "set the administrator's password".into(),
            source: Box::new(e),
        })?;

    // The administrator's connection string, as a deployed target keeps it (a stack
    // brought up before the administrator was least-privilege gets the new one).
    let stored = secrets
        .get_secret_value()
        .secret_id(ORDERS_DB_ADMIN_SECRET)
        .send()
        .await
        .ok()
        .and_then(|v| v.secret_string().map(str::to_owned));
    if let Some(stored) = &stored
        && *stored != stack.postgres.admin_dsn()
    {
        secrets
            .put_secret_value()
            .secret_id(ORDERS_DB_ADMIN_SECRET)
            .secret_string(stack.postgres.admin_dsn())
            .send()
            .await
            .map_err(|e| LocalError::Secrets {
                what: format!("PutSecretValue {ORDERS_DB_ADMIN_SECRET}"),
                source: Box::new(e),
            })?;
    }
    if stored.is_none() {
        secrets
            .create_secret()
            .name(ORDERS_DB_ADMIN_SECRET)
            .description("how ticketbound administers the local orders-db")
            .secret_string(stack.postgres.admin_dsn())
            .send()
            .await
            .map_err(|e| LocalError::Secrets {
                what: format!("CreateSecret {ORDERS_DB_ADMIN_SECRET}"),
                source: Box::new(e),
            })?;
    }
    match scheduler
        .create_schedule_group()
        .name(SCHEDULE_GROUP)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ConflictException") => Ok(()),
        Err(e) => Err(LocalError::Target {
            what: "create the schedule group".into(),
            source: Box::new(e),
        }),
    }
}

/// `TICKETBOUND_TARGETS` for the local stack.
pub fn targets_json(stack: &LocalStack) -> String {
    json!({
        ORDERS_DB: {
            "connector": "postgres",
            "environment": "prod",
            "admin_secret_id": ORDERS_DB_ADMIN_SECRET,
            "host": stack.postgres.host,
            "port": stack.postgres.port,
            "dbname": stack.postgres.database,
            "ca_file": stack.postgres.ca_file,
            "allowed_roles": ORDERS_DB_ROLES,
            // Production access is approved by the DBAs, whoever the ticket's
            // Approvers field names.
            "approvers": { "groups": ["dba-approvers"] },
        },
    })
    .to_string()
}
