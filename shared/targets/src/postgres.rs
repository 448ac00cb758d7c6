//! PostgreSQL: a grant is a LOGIN role of its own, with a password only its secret
//! holds, `VALID UNTIL` the grant's not-after time (defence in depth: even if every
//! revocation path failed, PostgreSQL itself refuses the password afterwards), and
//! membership in exactly the roles its scope names, each of which must be on the
//! operator's allow-list. Never SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or
//! BYPASSRLS.
//!
//! The password reaches the server only as a SCRAM-SHA-256 verifier computed here, so
//! it never appears in a statement (or in a server log that records statements).
//!
//! **Least privilege.** The administrator is not a superuser: `CREATEROLE` and
//! membership in `pg_signal_backend`, nothing else (as RDS's master user, which is
//! not a superuser either). On PostgreSQL 15 a CREATEROLE role may grant itself
//! membership in the non-superuser roles it manages, which `DROP OWNED` and
//! `REASSIGN OWNED` need; revocation does so for the grant's own logins only.
//!
//! **Against a hostile grantee.** Revocation never hands the grantee's objects to a
//! privileged role: in every database where the login owns or was granted anything
//! (the cluster-wide `pg_shdepend` says where), `DROP OWNED` removes them; when other
//! objects depend on them, or the target is configured to quarantine, they stay
//! with the login, disarmed: every grant on them revoked, `SECURITY DEFINER`
//! cleared. A login that cannot be dropped (quarantined objects, or privileges a DBA
//! granted it that only the grantor can revoke) is kept stripped: NOLOGIN, no
//! password, no membership either way; the receipt names it and why. Scope roles are checked on their whole membership
//! closure at every issue: no SUPERUSER, CREATEROLE, CREATEDB, BYPASSRLS,
//! REPLICATION, ADMIN OPTION or predefined `pg_*` role, and, below PostgreSQL 16
//! (where a member can always `SET ROLE` into its roles, so what it creates *as* a
//! scope role would outlive `DROP OWNED BY` the login), no role that can CREATE in a
//! schema or database or owns anything. Issue and revoke of one grant are serialised
//! by an advisory lock keyed by the grant, so a revocation never runs beside the
//! issue that would create what it looks for.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ticketbound_domain::Grant;
use ticketbound_runtime::{ExposeSecret, SecretString};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use crate::tls::Transport;
use crate::{TargetError, outside_allow_list, principal_name, principal_names};

/// How many connections one issued credential may hold at once.
const CONNECTION_LIMIT: i32 = 20;

/// Session settings of every administrator connection (lock waits, advisory locks
/// included, and statements are bounded).
const ADMIN_SESSION_OPTIONS: &str = "-c lock_timeout=10000 -c statement_timeout=60000";

/// How long revocation waits for each terminated session to end.
const TERMINATE_WAIT_MS: i64 = 5000;

/// What revocation does with objects a grantee owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnedObjects {
    /// Dropped; quarantined only where other objects depend on them.
    #[default]
    Drop,
    /// Always kept, disarmed, under the stripped login (for a DBA to look at).
    Quarantine,
}

/// The advisory-lock key of a grant: every issue and revocation of its logins holds it.
fn lock_key(grant: &Grant) -> String {
    format!("ticketbound:{}", grant.id)
}

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

/// `rolvaliduntil` as a time chrono can hold, whatever a role's owner set: `infinity`
/// (and no limit) is NULL, `-infinity` and anything before 1970 is 1970 (never valid
/// now), anything after 9999 is 9999. Unclamped, `VALID UNTIL '-infinity'` or a year
/// past chrono's range fails to decode, and one such role would stop every run that
/// reads it.
const VALID_UNTIL: &str = "CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL \
    WHEN r.rolvaliduntil < '1970-01-01 00:00:00+00' THEN '1970-01-01 00:00:00+00'::timestamptz \
    WHEN r.rolvaliduntil > '9999-12-31 00:00:00+00' THEN '9999-12-31 00:00:00+00'::timestamptz \
    ELSE r.rolvaliduntil END";

/// Every role `r` is a member of, directly or through others (a login in a group
/// that is in `pg_read_server_files` has that power too).
const MEMBER_OF_CLOSURE: &str = "ARRAY(WITH RECURSIVE m(roleid) AS ( \
       SELECT roleid FROM pg_auth_members WHERE member = r.oid \
       UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.roleid) \
     SELECT b.rolname::text FROM m JOIN pg_roles b ON b.oid = m.roleid)";

/// A login at the target that ticketbound did not make and does not administer with:
/// for the inventory, never touched. PostgreSQL keeps no creation or last-use time of a
/// role, so neither is known; what is known is what it may do and whether it is in use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnmanagedLogin {
    pub name: String,
    pub superuser: bool,
    pub create_role: bool,
    pub create_db: bool,
    pub bypass_rls: bool,
    pub replication: bool,
    /// `VALID UNTIL`; `None` when it never expires (1970 stands for `-infinity` and
    /// anything earlier: never valid).
    pub valid_until: Option<DateTime<Utc>>,
    /// Every role it is a member of, directly or through others.
    pub member_of: BTreeSet<String>,
    /// Its sessions open now.
    pub sessions: i64,
}

impl UnmanagedLogin {
    /// What it may do beyond logging in: its role attributes, and the `pg_*` or
    /// `rds_superuser` roles it holds (directly or through a group).
    pub fn powers(&self) -> Vec<&str> {
        let attributes = [
            (self.superuser, "SUPERUSER"),
            (self.create_role, "CREATEROLE"),
            (self.create_db, "CREATEDB"),
            (self.bypass_rls, "BYPASSRLS"),
            (self.replication, "REPLICATION"),
        ];
        attributes
            .into_iter()
            .filter_map(|(has, name)| has.then_some(name))
            .chain(
                self.member_of
                    .iter()
                    .filter(|r| r.starts_with("pg_") || r.as_str() == "rds_superuser")
                    .map(String::as_str),
            )
            .collect()
    }
}

/// The oid below which PostgreSQL's own roles live (`FirstNormalObjectId`): the
/// bootstrap superuser (on RDS, `rdsadmin`) and the `pg_*` roles were not made by
/// anyone here. A name proves nothing: anyone may name a login `rdsadmin`.
const FIRST_NORMAL_OID: i64 = 16384;

/// What a revocation did, and what the target showed afterwards: the receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationReceipt {
    /// The grant's logins that existed and were dropped (none on a repetition).
    pub dropped: Vec<String>,
    pub sessions_terminated: i64,
    /// Objects the grantee owned that were dropped, across databases.
    pub objects_dropped: i64,
    /// Roles the grantee had made members of its login: removed, sessions ended.
    pub members_removed: Vec<String>,
    /// Objects kept, disarmed, because others depend on them or the target
    /// quarantines (`database.schema.name`).
    pub quarantined: Vec<String>,
    /// Logins that exist still but can do nothing, with what keeps them (privileges
    /// someone else granted them, or quarantined objects).
    pub kept_disabled: Vec<String>,
    /// Checked afterwards: logins of the grant still able to act (always 0, or the
    /// revocation failed), their sessions, and objects they still own (quarantined).
    pub logins_remaining: i64,
    pub sessions_remaining: i64,
    pub objects_owned_remaining: i64,
}

/// What [`PostgresTarget::check_admin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCheck {
    pub user: String,
    pub server_version: i32,
    /// The administrator's own connection is encrypted (PostgreSQL's `pg_stat_ssl`).
    pub tls: bool,
    /// Set when the target is configured without TLS: reported, but not a reason to
    /// refuse, since the operator chose it.
    pub transport_problem: Option<String>,
    /// What it lacks of what revocation and issue need.
    pub problems: Vec<String>,
    pub more_than_needed: Vec<String>,
}

/// Why a scope role may not be granted (see [`PostgresTarget::check_scope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeScopeRole {
    pub scope_role: String,
    /// The role in its membership closure that carries the power (may be itself).
    pub via: String,
    pub reason: String,
}

impl std::fmt::Display for UnsafeScopeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.via == self.scope_role {
            write!(f, "{}: {}", self.scope_role, self.reason)
        } else {
            write!(
                f,
                "{} (through {}): {}",
                self.scope_role, self.via, self.reason
            )
        }
    }
}

/// A PostgreSQL target, administered through `admin` (a libpq connection string).
#[derive(Clone)]
pub struct PostgresTarget {
    admin: Config,
    allowed_roles: BTreeSet<String>,
    owned_objects: OwnedObjects,
    transport: Transport,
}

impl std::fmt::Debug for PostgresTarget {
    // The admin configuration may hold a password: show only where it points.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("hosts", &self.admin.get_hosts().len())
            .field("dbname", &self.admin.get_dbname())
            .field("allowed_roles", &self.allowed_roles)
            .field("owned_objects", &self.owned_objects)
            .field("transport", &self.transport)
            .finish()
    }
}

impl PostgresTarget {
    /// `admin_dsn`: how ticketbound administers the target (from a secret in
    /// production). `allowed_roles`: the only roles a grant's scope may name.
    /// `transport`: verified TLS, or plaintext where the operator said so; whatever
    /// `sslmode` the DSN names, the transport decides.
    pub fn new(
        admin_dsn: &SecretString,
        allowed_roles: BTreeSet<String>,
        transport: Transport,
    ) -> Result<Self, TargetError> {
        let admin = Config::from_str(admin_dsn.expose_secret()).map_err(TargetError::Connect)?;
        Ok(Self {
            admin,
            allowed_roles,
            owned_objects: OwnedObjects::Drop,
            transport,
        })
    }

    /// The same target, keeping what a revoked grantee owned under quarantine.
    pub fn with_owned_objects(mut self, owned_objects: OwnedObjects) -> Self {
        self.owned_objects = owned_objects;
        self
    }

    async fn connect(&self) -> Result<Client, TargetError> {
        self.connect_to(None).await
    }

    /// The administrator's connection, to database `dbname` instead of its own.
    async fn connect_to(&self, dbname: Option<&str>) -> Result<Client, TargetError> {
        let mut config = self.admin.clone();
        if let Some(db) = dbname {
            config.dbname(db);
        }
        // Nothing ticketbound does may wait without end: a lock a grantee's accomplice
        // holds (or the advisory lock of a revocation stuck behind one) fails the
        // attempt, which is retried, instead of hanging it and everything after it.
        config.options(ADMIN_SESSION_OPTIONS);
        connect(&config, &self.transport).await
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
        let version = server_version(&client).await?;
        let unsafe_roles = self.check_scope_with(&client, &scope, version).await?;
        if !unsafe_roles.is_empty() {
            return Err(TargetError::UnsafeScopeRole(
                unsafe_roles.iter().map(ToString::to_string).collect(),
            ));
        }
        let inherit_only = version >= 160_000;

        let name = name.to_owned();
        let verifier =
            postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
        let valid_until = grant.not_after().format("%Y-%m-%d %H:%M:%S+00").to_string();
        // SUPERUSER, REPLICATION and BYPASSRLS may be named only by a superuser, even
        // to switch them off: a role created here never has them, and `inspect`
        // reports one that somehow does.
        let attributes = format!(
            "LOGIN NOCREATEDB NOCREATEROLE INHERIT \
             CONNECTION LIMIT {CONNECTION_LIMIT} PASSWORD {} VALID UNTIL {}",
            literal(&verifier),
            literal(&valid_until)
        );
        let creation_only = "NOSUPERUSER NOREPLICATION NOBYPASSRLS";

        let tx = client.transaction().await.map_err(db("begin"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lock_key(grant)],
        )
        .await
        .map_err(db("lock the grant"))?;
        let exists = tx
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .map_err(db("look up login role"))?
            .is_some();
        let statement = if exists {
            format!("ALTER ROLE {} WITH {attributes}", ident(&name))
        } else {
            format!(
                "CREATE ROLE {} WITH {creation_only} {attributes}",
                ident(&name)
            )
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
            // From PostgreSQL 16 a membership can give the privileges without SET
            // ROLE, so nothing the grantee makes is owned by a scope role (untested
            // here: the local stack has PostgreSQL 15, where scope roles that could
            // create anything are refused above instead).
            let options = if inherit_only {
                " WITH INHERIT TRUE, SET FALSE"
            } else {
                ""
            };
            tx.batch_execute(&format!(
                "GRANT {} TO {}{options}",
                ident(role),
                ident(&name)
            ))
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

    /// Kills every login of `grant`: no new logins, every open session ended, what it
    /// owns dropped (or quarantined, powerless) in every database, what it was granted
    /// gone, the roles dropped; then checks that nothing of it is left and says so in
    /// the receipt. Repeating it is harmless, and so is running it beside another
    /// revocation or an issue of the same grant (they wait for each other).
    pub async fn revoke(&self, grant: &Grant) -> Result<RevocationReceipt, TargetError> {
        let client = self.connect().await?;
        client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&lock_key(grant)],
            )
            .await
            .map_err(db("lock the grant"))?;
        let result = self.revoke_locked(&client, grant).await;
        // The lock also ends with the connection; unlocking says so sooner.
        let _ = client
            .execute(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&lock_key(grant)],
            )
            .await;
        result
    }

    async fn revoke_locked(
        &self,
        client: &Client,
        grant: &Grant,
    ) -> Result<RevocationReceipt, TargetError> {
        let mut done = RevocationReceipt::default();
        let logins = principal_names(grant);
        for login in &logins {
            let exists = client
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[login])
                .await
                .map_err(db("look up login role"))?
                .is_some();
            if !exists {
                continue;
            }
            // Nobody is ever made a member of a grant's login but the administrator:
            // a member is someone the grantee let in (below PostgreSQL 16 a role may
            // grant itself). Their sessions end and their membership goes first.
            let members: Vec<String> = client
                .query(
                    "SELECT m.rolname::text FROM pg_auth_members a \
                     JOIN pg_roles m ON m.oid = a.member JOIN pg_roles r ON r.oid = a.roleid \
                     WHERE r.rolname = $1 AND m.rolname <> current_user",
                    &[login],
                )
                .await
                .map_err(db("read the login's members"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for member in &members {
                client
                    .batch_execute(&format!("REVOKE {} FROM {}", ident(login), ident(member)))
                    .await
                    .map_err(db("revoke the login from its members"))?;
                done.sessions_terminated += terminate_sessions(client, member).await?;
                done.members_removed.push(member.clone());
            }
            // First no new logins, then end the sessions, so none can slip in between.
            // The membership lets a non-superuser administrator drop what the login
            // owns (PostgreSQL requires the privileges of the role for that).
            client
                .batch_execute(&format!(
                    "ALTER ROLE {0} NOLOGIN; GRANT {0} TO CURRENT_USER",
                    ident(login)
                ))
                .await
                .map_err(db("disable login"))?;
            done.sessions_terminated += terminate_sessions(client, login).await?;
            for database in databases_with_dependencies(client, login).await? {
                let there = self.connect_to(Some(&database)).await?;
                self.clear_owned(&there, &database, login, &mut done)
                    .await?;
            }
            match client
                .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(login)))
                .await
            {
                Ok(()) => done.dropped.push(login.clone()),
                // What keeps it: objects others depend on (disarmed above), or
                // privileges someone else granted to it, which only their grantor can
                // take back. The role stays, unable to do anything: no login, no
                // password, no membership, nobody a member of it.
                Err(e) if sqlstate(&e) == Some("2BP01") => {
                    let why = e
                        .as_db_error()
                        .and_then(|d| d.detail())
                        .unwrap_or("objects depend on it")
                        .replace('\n', "; ");
                    strip_role(client, login).await?;
                    tracing::warn!(role = %login, why = %why, "login kept, disabled: it cannot be dropped yet");
                    done.kept_disabled.push(format!("{login} ({why})"));
                }
                Err(source) => {
                    return Err(TargetError::Database {
                        operation: "drop login role",
                        source,
                    });
                }
            }
        }
        self.verify(client, grant, &logins, &mut done).await?;
        tracing::info!(grant_id = %grant.id, dropped = ?done.dropped, kept_disabled = ?done.kept_disabled, sessions_terminated = done.sessions_terminated, objects_dropped = done.objects_dropped, quarantined = done.quarantined.len(), "logins revoked");
        Ok(done)
    }

    /// The receipt: what the target shows now. A login of the grant that still
    /// exists must be unable to act (no LOGIN, no membership either way, no session),
    /// or the revocation is not done.
    async fn verify(
        &self,
        client: &Client,
        grant: &Grant,
        logins: &[String],
        done: &mut RevocationReceipt,
    ) -> Result<(), TargetError> {
        let after = client
            .query_one(
                "SELECT \
                   (SELECT count(*) FROM pg_roles r WHERE r.rolname = ANY($1) AND (r.rolcanlogin \
                      OR EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid OR m.roleid = r.oid))), \
                   (SELECT count(*) FROM pg_stat_activity WHERE usename = ANY($1)), \
                   (SELECT count(*) FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid \
                      WHERE r.rolname = ANY($1) AND s.deptype = 'o'), \
                   (SELECT count(*) FROM pg_prepared_xacts WHERE owner = ANY($1))",
                &[&logins.to_vec()],
            )
            .await
            .map_err(db("verify revocation"))?;
        done.logins_remaining = after.get(0);
        done.sessions_remaining = after.get(1);
        done.objects_owned_remaining = after.get(2);
        let prepared: i64 = after.get(3);
        if done.logins_remaining > 0 || done.sessions_remaining > 0 || prepared > 0 {
            // A prepared transaction survives its session's end and only a superuser
            // (or its owner, who can no longer log in) can finish it: a DBA must.
            return Err(TargetError::NotProven(format!(
                "{} login(s) able to act, {} session(s) and {prepared} prepared transaction(s) of grant {} still there after revocation",
                done.logins_remaining, done.sessions_remaining, grant.id
            )));
        }
        Ok(())
    }

    /// In `database` (connected as `client`): drops what `login` owns, and what it
    /// was granted by ticketbound's administrator. Where other objects depend on its
    /// objects (or the target quarantines), they are kept under the login, disarmed.
    async fn clear_owned(
        &self,
        client: &Client,
        database: &str,
        login: &str,
        done: &mut RevocationReceipt,
    ) -> Result<(), TargetError> {
        let owned: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid \
                 JOIN pg_database d ON d.oid = s.dbid \
                 WHERE r.rolname = $1 AND s.deptype = 'o' AND d.datname = current_database()",
                &[&login],
            )
            .await
            .map_err(db("count owned objects"))?
            .get(0);
        if self.owned_objects == OwnedObjects::Drop {
            match client
                .batch_execute(&format!("DROP OWNED BY {} RESTRICT", ident(login)))
                .await
            {
                Ok(()) => {
                    done.objects_dropped += owned;
                    return Ok(());
                }
                Err(e) if sqlstate(&e) == Some("2BP01") => {
                    tracing::warn!(role = %login, database, "objects of the grantee have dependents; quarantining them");
                }
                Err(source) => {
                    return Err(TargetError::Database {
                        operation: "drop owned objects",
                        source,
                    });
                }
            }
        }
        done.quarantined
            .extend(disarm_owned(client, database, login).await?);
        Ok(())
    }

    /// What ticketbound's administrator may do here, against what it needs: the
    /// problems (empty when it can do all of it) and what is more than it needs.
    pub async fn check_admin(&self) -> Result<AdminCheck, TargetError> {
        let client = self.connect().await?;
        let row = client
            .query_one(
                "SELECT current_user::text, rolsuper, rolcreaterole, \
                        pg_has_role(current_user, 'pg_signal_backend', 'USAGE'), \
                        current_setting('server_version_num')::int, \
                        coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) \
                 FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(db("read the administrator's attributes"))?;
        let (user, superuser, createrole, signal, version): (String, bool, bool, bool, i32) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let mut check = AdminCheck {
            user,
            server_version: version,
            tls: row.get(5),
            transport_problem: None,
            problems: Vec::new(),
            more_than_needed: Vec::new(),
        };
        if !self.transport.is_verified() {
            check.transport_problem = Some(
                "connects without TLS (tls: disabled): its password and the grants' password verifiers cross the network in the clear".into(),
            );
        }
        if superuser {
            check.more_than_needed.push(
                "SUPERUSER: works, but ticketbound needs only CREATEROLE and pg_signal_backend"
                    .into(),
            );
        } else {
            if !createrole {
                check.problems.push(
                    "lacks CREATEROLE: it cannot create, alter or drop the grants' logins".into(),
                );
            }
            if !signal {
                check.problems.push(
                    "is not a member of pg_signal_backend: a revoked login's open sessions could not be ended"
                        .into(),
                );
            }
        }
        Ok(check)
    }

    /// Every allowed role that would give a grantee more than its privileges (see
    /// the crate's notes), with the reason: for `ticketbound targets check` and the
    /// reconciler. Empty when the allow-list is safe.
    pub async fn check_scope(&self) -> Result<Vec<UnsafeScopeRole>, TargetError> {
        let client = self.connect().await?;
        let roles: Vec<String> = self.allowed_roles.iter().cloned().collect();
        let version = server_version(&client).await?;
        self.check_scope_with(&client, &roles, version).await
    }

    /// [`Self::check_scope`] for `roles`, on a server of `server_version_num`.
    async fn check_scope_with(
        &self,
        client: &Client,
        roles: &[String],
        version: i32,
    ) -> Result<Vec<UnsafeScopeRole>, TargetError> {
        let below_16 = version < 160_000;
        // The closure: each scope role and every role it is a member of, at any depth.
        let rows = client
            .query(
                "WITH RECURSIVE closure(scope_role, oid) AS ( \
                   SELECT rolname::text, oid FROM pg_roles WHERE rolname = ANY($1) \
                   UNION SELECT c.scope_role, m.roleid FROM pg_auth_members m JOIN closure c ON m.member = c.oid) \
                 SELECT c.scope_role, r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolcreatedb, \
                        r.rolbypassrls, r.rolreplication, r.rolname LIKE 'pg\\_%', \
                        EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid AND m.admin_option), \
                        EXISTS (SELECT 1 FROM pg_shdepend s WHERE s.refobjid = r.oid AND s.deptype = 'o' \
                                AND s.refclassid = 'pg_authid'::regclass), \
                        (SELECT string_agg(d.datname, ', ') FROM pg_database d \
                          WHERE has_database_privilege(r.oid, d.oid, 'CREATE')), \
                        (SELECT string_agg(n.nspname, ', ') FROM pg_namespace n \
                          WHERE has_schema_privilege(r.oid, n.oid, 'CREATE')), \
                        r.rolcanlogin, \
                        EXISTS (SELECT 1 FROM pg_class x, aclexplode(x.relacl) a \
                                 WHERE a.grantee = r.oid AND a.is_grantable) \
                        OR EXISTS (SELECT 1 FROM pg_namespace x, aclexplode(x.nspacl) a \
                                 WHERE a.grantee = r.oid AND a.is_grantable) \
                        OR EXISTS (SELECT 1 FROM pg_proc x, aclexplode(x.proacl) a \
                                 WHERE a.grantee = r.oid AND a.is_grantable) \
                        OR EXISTS (SELECT 1 FROM pg_attribute x, aclexplode(x.attacl) a \
                                 WHERE a.grantee = r.oid AND a.is_grantable) \
                 FROM closure c JOIN pg_roles r ON r.oid = c.oid ORDER BY 1, 2",
                &[&roles.to_vec()],
            )
            .await
            .map_err(db("check scope roles"))?;
        let mut found = Vec::new();
        for row in &rows {
            let (scope_role, via): (String, String) = (row.get(0), row.get(1));
            let mut reasons: Vec<String> = [
                (2, "is SUPERUSER"),
                (3, "has CREATEROLE"),
                (4, "has CREATEDB"),
                (5, "has BYPASSRLS"),
                (6, "has REPLICATION"),
                (7, "is a predefined pg_* role"),
                (8, "holds a membership WITH ADMIN OPTION"),
            ]
            .into_iter()
            .filter(|(i, _)| row.get::<_, bool>(*i))
            .map(|(_, r)| r.to_owned())
            .collect();
            if row.get::<_, bool>(13) {
                // What the grantee grants on from it names the scope role as grantor,
                // so DROP OWNED BY the login would leave it in force.
                reasons.push(format!(
                    "holds a privilege WITH GRANT OPTION in database {}",
                    self.admin.get_dbname().unwrap_or("?")
                ));
            }
            if below_16 {
                if row.get::<_, bool>(12) {
                    reasons.push("can log in (a grantee could SET ROLE to it and change its password, below PostgreSQL 16)".into());
                }
                if row.get::<_, bool>(9) {
                    reasons.push("owns objects (a grantee could SET ROLE to it and use them, below PostgreSQL 16)".into());
                }
                if let Some(dbs) = row.get::<_, Option<String>>(10) {
                    reasons.push(format!("can CREATE in database(s) {dbs} (what a grantee makes as this role would outlive the grant, below PostgreSQL 16)"));
                }
                if let Some(schemas) = row.get::<_, Option<String>>(11) {
                    reasons.push(format!("can CREATE in schema(s) {schemas} of database {} (what a grantee makes as this role would outlive the grant, below PostgreSQL 16)", self.admin.get_dbname().unwrap_or("?")));
                }
            }
            for reason in reasons {
                found.push(UnsafeScopeRole {
                    scope_role: scope_role.clone(),
                    via: via.clone(),
                    reason,
                });
            }
        }
        Ok(found)
    }

    /// What the target has for `principal`, or `None` if the role does not exist.
    pub async fn inspect(&self, principal: &str) -> Result<Option<LiveRole>, TargetError> {
        let client = self.connect().await?;
        // Direct memberships: what the grant gave, compared with its scope.
        let query = format!(
            "SELECT r.rolcanlogin, r.rolsuper, {VALID_UNTIL}, \
               ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON m.roleid = b.oid \
                     WHERE m.member = r.oid), \
               (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname) \
             FROM pg_roles r WHERE r.rolname = $1"
        );
        let row = client
            .query_opt(&query, &[&principal])
            .await
            .map_err(db("inspect login role"))?;
        row.map(|row| {
            Ok(LiveRole {
                name: principal.to_owned(),
                can_login: row.try_get(0)?,
                superuser: row.try_get(1)?,
                valid_until: row.try_get(2)?,
                member_of: row.try_get::<_, Vec<String>>(3)?.into_iter().collect(),
                sessions: row.try_get(4)?,
            })
        })
        .transpose()
        .map_err(db("read login role"))
    }

    /// Every login at this target ticketbound does not manage: not named `tb_…` (one
    /// of those without a grant is an orphan), not the administrator it connects as,
    /// not built in (PostgreSQL's own roles, by oid). An allowed scope role that has
    /// been made able to log in is listed: it is a credential nobody governs. Read
    /// from `pg_roles`, which every role may read: the least-privilege administrator
    /// needs nothing more.
    pub async fn unmanaged_logins(&self) -> Result<Vec<UnmanagedLogin>, TargetError> {
        let client = self.connect().await?;
        // `left(…) <> 'tb_'` rather than LIKE: with standard_conforming_strings off
        // (settable per role or database) the escape in a LIKE pattern changes.
        let query = format!(
            "SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, \
               r.rolreplication, {VALID_UNTIL}, {MEMBER_OF_CLOSURE}, \
               (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname) \
             FROM pg_roles r \
             WHERE r.rolcanlogin AND r.oid::bigint >= $1 AND r.rolname <> current_user \
               AND left(r.rolname, 3) <> 'tb_' \
             ORDER BY r.rolname"
        );
        let rows = client
            .query(&query, &[&FIRST_NORMAL_OID])
            .await
            .map_err(db("list unmanaged logins"))?;
        rows.iter()
            .map(|row| {
                Ok(UnmanagedLogin {
                    name: row.try_get(0)?,
                    superuser: row.try_get(1)?,
                    create_role: row.try_get(2)?,
                    create_db: row.try_get(3)?,
                    bypass_rls: row.try_get(4)?,
                    replication: row.try_get(5)?,
                    valid_until: row.try_get(6)?,
                    member_of: row.try_get::<_, Vec<String>>(7)?.into_iter().collect(),
                    sessions: row.try_get(8)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(db("read unmanaged logins"))
    }

    /// Every login role ticketbound has made at this target (named `tb_…`).
    pub async fn managed_roles(&self) -> Result<Vec<String>, TargetError> {
        let client = self.connect().await?;
        let rows = client
            .query(
                "SELECT rolname::text FROM pg_roles WHERE left(rolname, 3) = 'tb_' ORDER BY rolname",
                &[],
            )
            .await
            .map_err(db("list login roles"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Ends every session of `role`, waiting for each to go; returns how many ended.
async fn terminate_sessions(client: &Client, role: &str) -> Result<i64, TargetError> {
    Ok(client
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $2)) \
             FROM pg_stat_activity WHERE usename = $1",
            &[&role, &TERMINATE_WAIT_MS],
        )
        .await
        .map_err(db("terminate sessions"))?
        .get(0))
}

/// `server_version_num`, e.g. 150018.
async fn server_version(client: &Client) -> Result<i32, TargetError> {
    let v: String = client
        .query_one("SHOW server_version_num", &[])
        .await
        .map_err(db("read the server version"))?
        .get(0);
    v.trim()
        .parse()
        .map_err(|_| TargetError::NotProven(format!("server_version_num {v:?} is not a number")))
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// Every database where `login` owns something or was granted something (from the
/// cluster-wide dependency catalogue), that accepts connections.
async fn databases_with_dependencies(
    client: &Client,
    login: &str,
) -> Result<Vec<String>, TargetError> {
    let rows = client
        .query(
            "SELECT DISTINCT d.datname::text FROM pg_shdepend s \
             JOIN pg_roles r ON r.oid = s.refobjid JOIN pg_database d ON d.oid = s.dbid \
             WHERE r.rolname = $1 AND d.datallowconn ORDER BY 1",
            &[&login],
        )
        .await
        .map_err(db("find databases with the login's objects"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Leaves `login` able to do nothing: no login, no password, no connection, no
/// membership in any role, and nobody (ticketbound's administrator included) a
/// member of it. For a login that cannot be dropped yet.
async fn strip_role(client: &Client, login: &str) -> Result<(), TargetError> {
    let rows = client
        .query(
            "SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid \
             JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1",
            &[&login],
        )
        .await
        .map_err(db("read memberships"))?;
    let mut sql = format!(
        "ALTER ROLE {0} NOLOGIN PASSWORD NULL CONNECTION LIMIT 0 VALID UNTIL 'epoch'; ",
        ident(login)
    );
    for row in &rows {
        let role: String = row.get(0);
        sql.push_str(&format!("REVOKE {} FROM {}; ", ident(&role), ident(login)));
    }
    sql.push_str(&format!("REVOKE {} FROM CURRENT_USER;", ident(login)));
    client
        .batch_execute(&sql)
        .await
        .map_err(db("strip the login that cannot be dropped"))
}

/// Makes what `owner` owns in this database harmless, in place: no grant on it for
/// anyone, functions and procedures no longer SECURITY DEFINER. (Handing it to a
/// separate quarantine role would need that role to have CREATE on every schema
/// involved, which a least-privilege administrator cannot give.) Returns what it
/// holds, as `database.schema.name`.
async fn disarm_owned(
    client: &Client,
    database: &str,
    owner: &str,
) -> Result<Vec<String>, TargetError> {
    let relations = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), \
                    CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, \
                    ARRAY(SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
                                 ELSE quote_ident(pg_get_userbyid(a.grantee)) END \
                          FROM (SELECT (aclexplode(c.relacl)).grantee \
                                UNION SELECT (aclexplode(t.attacl)).grantee FROM pg_attribute t \
                                       WHERE t.attrelid = c.oid AND t.attacl IS NOT NULL) a \
                          WHERE a.grantee <> c.relowner) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = $1) \
               AND c.relkind IN ('r', 'v', 'm', 'S', 'f', 'p')",
            &[&owner],
        )
        .await
        .map_err(db("list the grantee's relations"))?;
    let routines = client
        .query(
            "SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), \
                    p.prosecdef, \
                    ARRAY(SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
                                 ELSE quote_ident(pg_get_userbyid(a.grantee)) END \
                          FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a \
                          WHERE a.grantee <> p.proowner) \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.proowner = (SELECT oid FROM pg_roles WHERE rolname = $1) AND p.prokind IN ('f', 'p', 'a', 'w')",
            &[&owner],
        )
        .await
        .map_err(db("list the grantee's routines"))?;
    let mut held = Vec::new();
    let mut sql = String::new();
    for row in &relations {
        let (name, kind, grantees): (String, String, Vec<String>) =
            (row.get(0), row.get(1), row.get(2));
        if !grantees.is_empty() {
            sql.push_str(&format!(
                "REVOKE ALL ON {kind} {name} FROM {}; ",
                grantees.join(", ")
            ));
        }
        held.push(format!("{database}.{name}"));
    }
    for row in &routines {
        let (name, definer, grantees): (String, bool, Vec<String>) =
            (row.get(0), row.get(1), row.get(2));
        // Aggregates and window functions take grants but no SECURITY clause.
        if !grantees.is_empty() {
            sql.push_str(&format!(
                "REVOKE ALL ON ROUTINE {name} FROM {}; ",
                grantees.join(", ")
            ));
        }
        if definer {
            sql.push_str(&format!("ALTER ROUTINE {name} SECURITY INVOKER; "));
        }
        held.push(format!("{database}.{name}"));
    }
    // Its default privileges apply only to what it creates, and it can create
    // nothing any more (no login, nobody a member of it).
    if !sql.is_empty() {
        client
            .batch_execute(&sql)
            .await
            .map_err(db("disarm the grantee's objects"))?;
    }
    Ok(held)
}

/// Connects with `config` over `transport`: with TLS required and verified, or in
/// the clear; never one falling back to the other.
async fn connect(config: &Config, transport: &Transport) -> Result<Client, TargetError> {
    let mut config = config.clone();
    Ok(match transport {
        Transport::VerifyFull(tls) => {
            config.ssl_mode(SslMode::Require);
            let (client, connection) = config
                .connect(tls.clone())
                .await
                .map_err(TargetError::Connect)?;
            drive(connection);
            client
        }
        Transport::Plaintext => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config.connect(NoTls).await.map_err(TargetError::Connect)?;
            drive(connection);
            client
        }
    })
}

/// Runs a connection's I/O until it ends (the client is dropped, or the server
/// goes away).
fn drive(
    connection: impl std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "target connection ended");
        }
    });
}

/// Logs in as `user` with `password` where a workload would (`host`, `port`,
/// `dbname`, over `transport`) and runs a query: the check that a credential really
/// works.
pub async fn login(
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
    password: &SecretString,
    transport: &Transport,
) -> Result<(), TargetError> {
    let mut config = Config::new();
    config
        .host(host)
        .port(port)
        .dbname(dbname)
        .user(user)
        .password(password.expose_secret())
        .connect_timeout(std::time::Duration::from_secs(10));
    let client = connect(&config, transport).await?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(db("test login"))?;
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
