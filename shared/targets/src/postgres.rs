//! PostgreSQL: a grant is a LOGIN role of its own, with a password only its secret
//! holds, `VALID UNTIL` the grant's not-after time (defence in depth: even if every
//! revocation path failed, PostgreSQL itself refuses the password afterwards), and
//! membership in exactly the roles its scope names, each of which must be on the
//! operator's allow-list. Never SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or
//! BYPASSRLS.
//!
//! The password reaches the server only as a SCRAM-SHA-256 verifier computed here, so
//! it never appears in a statement (or in a server log that records statements).

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ticketbound_domain::Grant;
use ticketbound_runtime::{ExposeSecret, SecretString};
use tokio_postgres::{Client, Config, NoTls};

use crate::{TargetError, outside_allow_list, principal_name};

/// How many connections one issued credential may hold at once.
const CONNECTION_LIMIT: i32 = 20;

/// `"name"` with embedded quotes doubled: a safe SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled: a safe SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn db(operation: &'static str) -> impl FnOnce(tokio_postgres::Error) -> TargetError {
    move |source| TargetError::Database { operation, source }
}

/// What the target holds for one login role, for tests and the reconciler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRole {
    pub name: String,
    pub can_login: bool,
    pub superuser: bool,
    pub valid_until: Option<DateTime<Utc>>,
    pub member_of: BTreeSet<String>,
    pub sessions: i64,
}

/// What a revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// False when the role was already gone (a repeated revocation).
    pub existed: bool,
    pub sessions_terminated: i64,
}

/// A PostgreSQL target, administered through `admin` (a libpq connection string).
#[derive(Clone)]
pub struct PostgresTarget {
    admin: Config,
    allowed_roles: BTreeSet<String>,
}

impl std::fmt::Debug for PostgresTarget {
    // The admin configuration may hold a password: show only where it points.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("hosts", &self.admin.get_hosts().len())
            .field("dbname", &self.admin.get_dbname())
            .field("allowed_roles", &self.allowed_roles)
            .finish()
    }
}

impl PostgresTarget {
    /// `admin_dsn`: how ticketbound administers the target (from a secret in
    /// production). `allowed_roles`: the only roles a grant's scope may name.
    pub fn new(
        admin_dsn: &SecretString,
        allowed_roles: BTreeSet<String>,
    ) -> Result<Self, TargetError> {
        let admin = Config::from_str(admin_dsn.expose_secret()).map_err(TargetError::Connect)?;
        Ok(Self {
            admin,
            allowed_roles,
        })
    }

    async fn connect(&self) -> Result<Client, TargetError> {
        let (client, connection) = self
            .admin
            .connect(NoTls)
            .await
            .map_err(TargetError::Connect)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "target connection ended");
            }
        });
        Ok(client)
    }

    /// Creates (or, on a retry, completes) the grant's login role with `password`.
    /// Returns the role's name. Refuses, creating nothing, a scope outside the
    /// allow-list or naming a role the target does not have.
    pub async fn issue(
        &self,
        grant: &Grant,
        password: &SecretString,
    ) -> Result<String, TargetError> {
        self.issue_as(grant, &principal_name(grant), password).await
    }

    /// [`Self::issue`] for login role `name`, which must be one of the grant's own
    /// (see [`crate::principal_names`]): rotation sets a new password on an existing
    /// role, or makes the alternate role, with exactly the grant's scope and end.
    pub async fn issue_as(
        &self,
        grant: &Grant,
        name: &str,
        password: &SecretString,
    ) -> Result<String, TargetError> {
        if !crate::principal_names(grant).iter().any(|n| n == name) {
            return Err(TargetError::NotTheGrantsRole(name.to_owned()));
        }
        let scope: Vec<String> = grant
            .request
            .scope
            .permissions()
            .map(|p| p.to_string())
            .collect();
        let refused = outside_allow_list(grant.request.scope.permissions(), &self.allowed_roles);
        if !refused.is_empty() {
            return Err(TargetError::ScopeNotAllowed { refused });
        }
        let mut client = self.connect().await?;
        for role in &scope {
            let found = client
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[role])
                .await
                .map_err(db("look up scope role"))?;
            if found.is_none() {
                return Err(TargetError::UnknownScopeRole(role.clone()));
            }
        }

        let name = name.to_owned();
        let verifier =
            postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
        let valid_until = grant.not_after().format("%Y-%m-%d %H:%M:%S+00").to_string();
        let attributes = format!(
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT \
             CONNECTION LIMIT {CONNECTION_LIMIT} PASSWORD {} VALID UNTIL {}",
            literal(&verifier),
            literal(&valid_until)
        );

        let tx = client.transaction().await.map_err(db("begin"))?;
        let exists = tx
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .map_err(db("look up login role"))?
            .is_some();
        let statement = if exists {
            format!("ALTER ROLE {} WITH {attributes}", ident(&name))
        } else {
            format!("CREATE ROLE {} WITH {attributes}", ident(&name))
        };
        tx.batch_execute(&statement)
            .await
            .map_err(db("create login role"))?;
        let current: Vec<String> = tx
            .query(
                "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON m.roleid = b.oid \
                 JOIN pg_roles r ON m.member = r.oid WHERE r.rolname = $1",
                &[&name],
            )
            .await
            .map_err(db("read memberships"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for role in scope.iter().filter(|r| !current.contains(r)) {
            tx.batch_execute(&format!("GRANT {} TO {}", ident(role), ident(&name)))
                .await
                .map_err(db("grant scope role"))?;
        }
        // A retry after the scope changed must not keep what is no longer granted.
        for role in current.iter().filter(|r| !scope.contains(r)) {
            tx.batch_execute(&format!("REVOKE {} FROM {}", ident(role), ident(&name)))
                .await
                .map_err(db("revoke stale scope role"))?;
        }
        tx.commit().await.map_err(db("commit"))?;
        tracing::info!(grant_id = %grant.id, role = %name, "login role issued");
        Ok(name)
    }

    /// Kills `principal`: no new logins, every open session terminated, the role and
    /// anything it owns in the administered database dropped. Repeating it is harmless.
    pub async fn revoke(&self, principal: &str) -> Result<Revoked, TargetError> {
        let client = self.connect().await?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&principal])
            .await
            .map_err(db("look up login role"))?
            .is_some();
        if !exists {
            return Ok(Revoked {
                existed: false,
                sessions_terminated: 0,
            });
        }
        // First no new logins, then end the sessions, so none can slip in between.
        client
            .batch_execute(&format!("ALTER ROLE {} NOLOGIN", ident(principal)))
            .await
            .map_err(db("disable login"))?;
        let terminated: i64 = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1",
                &[&principal],
            )
            .await
            .map_err(db("terminate sessions"))?
            .get(0);
        client
            .batch_execute(&format!(
                "REASSIGN OWNED BY {0} TO CURRENT_USER; DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}",
                ident(principal)
            ))
            .await
            .map_err(db("drop login role"))?;
        tracing::info!(role = %principal, sessions_terminated = terminated, "login role revoked");
        Ok(Revoked {
            existed: true,
            sessions_terminated: terminated,
        })
    }

    /// What the target has for `principal`, or `None` if the role does not exist.
    pub async fn inspect(&self, principal: &str) -> Result<Option<LiveRole>, TargetError> {
        let client = self.connect().await?;
        let row = client
            .query_opt(
                "SELECT r.rolcanlogin, r.rolsuper, \
                   CASE WHEN r.rolvaliduntil = 'infinity' THEN NULL ELSE r.rolvaliduntil END, \
                   ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON m.roleid = b.oid \
                         WHERE m.member = r.oid), \
                   (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname) \
                 FROM pg_roles r WHERE r.rolname = $1",
                &[&principal],
            )
            .await
            .map_err(db("inspect login role"))?;
        Ok(row.map(|row| LiveRole {
            name: principal.to_owned(),
            can_login: row.get(0),
            superuser: row.get(1),
            valid_until: row.get(2),
            member_of: row.get::<_, Vec<String>>(3).into_iter().collect(),
            sessions: row.get(4),
        }))
    }

    /// Every login role ticketbound has made at this target (named `tb_…`).
    pub async fn managed_roles(&self) -> Result<Vec<String>, TargetError> {
        let client = self.connect().await?;
        let rows = client
            .query(
                "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'tb\\_%' ORDER BY rolname",
                &[],
            )
            .await
            .map_err(db("list login roles"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Logs in as `user` with `password` where a workload would (`host`, `port`,
/// `dbname`) and runs a query: the check that a credential really works.
pub async fn login(
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
    password: &SecretString,
) -> Result<(), TargetError> {
    let mut config = Config::new();
    config
        .host(host)
        .port(port)
        .dbname(dbname)
        .user(user)
        .password(password.expose_secret())
        .connect_timeout(std::time::Duration::from_secs(10));
    let (client, connection) = config.connect(NoTls).await.map_err(TargetError::Connect)?;
    let running = tokio::spawn(connection);
    client
        .simple_query("SELECT 1")
        .await
        .map_err(db("test login"))?;
    drop(client);
    let _ = running.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
