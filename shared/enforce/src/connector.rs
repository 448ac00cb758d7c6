//! The connector seam: every operation the lifecycle carries out at a target, for
//! every kind of target, in one place. [`Connector`] is an enum with exhaustive
//! matches (mini-redis style) rather than a trait object: adding a kind of target
//! means one variant here and one in [`TargetConfig`], and the compiler names every
//! operation the new variant still lacks. Nothing outside this module tells the kinds
//! of target apart by `if let` or `matches!`, which would compile unchanged for a new
//! kind and so fail open (a grant recorded Revoked without its target touched).

use std::collections::BTreeMap;
use ticketbound_domain::{ConnectorKind, Grant};
use ticketbound_runtime::SecretString;

use ticketbound_targets::postgres::{
    LiveRole, PostgresTarget, RevocationReceipt, UnmanagedLogin, UnsafeScopeRole,
};

use crate::{EnforceError, Enforcer, TargetConfig};

/// What `ticketbound targets check` reports of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TargetCheck {
    /// What would make issue or revocation fail, or give a grantee too much.
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl Enforcer {
    /// Checks every configured target (system id → findings).
    pub async fn check_targets(
        &self,
    ) -> Result<Vec<(String, Result<TargetCheck, EnforceError>)>, EnforceError> {
        let mut out = Vec::new();
        for (system, target) in &self.settings.targets.0 {
            let check = match self.connector(target).await {
                Ok(c) => c.check().await,
                Err(e) => Err(e),
            };
            out.push((system.clone(), check));
        }
        Ok(out)
    }
}

impl Enforcer {
    /// Each configured target's allowed scope roles that would now give a grantee
    /// more than its scope (system id → roles, with what carries the power). A role
    /// safe at issue may have been given more since: the reconciler reports the live
    /// grants that hold one.
    pub async fn unsafe_scope_roles(
        &self,
    ) -> Result<BTreeMap<String, Vec<UnsafeScopeRole>>, EnforceError> {
        let mut out = BTreeMap::new();
        for (system, target) in &self.settings.targets.0 {
            let unsafe_roles = self.connector(target).await?.unsafe_scope().await?;
            out.insert(system.clone(), unsafe_roles);
        }
        Ok(out)
    }
}

impl Enforcer {
    /// Every configured target's logins that ticketbound neither made nor administers
    /// with (system id → logins), for the inventory; only target `only`'s when given
    /// (no other target is reached). Read only: nothing unmanaged is ever touched.
    pub async fn unmanaged_logins(
        &self,
        only: Option<&str>,
    ) -> Result<BTreeMap<String, Vec<UnmanagedLogin>>, EnforceError> {
        let mut out = BTreeMap::new();
        for (system, target) in &self.settings.targets.0 {
            if only.is_some_and(|o| o != system) {
                continue;
            }
            out.insert(
                system.clone(),
                self.connector(target).await?.unmanaged().await?,
            );
        }
        Ok(out)
    }

    /// The secrets that are ticketbound's own configuration of its targets (their
    /// administrators' credentials): not grants', and not unmanaged either.
    pub fn target_admin_secret_ids(&self) -> Vec<String> {
        self.settings
            .targets
            .0
            .values()
            .map(|target| match target {
                TargetConfig::Postgres {
                    admin_secret_id, ..
                } => admin_secret_id.clone(),
            })
            .collect()
    }
}

/// A target, ready to act on: its administrator's credentials read.
// Built per operation and dropped right after: its size is of no consequence.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Connector {
    Postgres(PostgresTarget),
}

impl TargetConfig {
    /// The kind of connector this target is configured with.
    pub fn kind(&self) -> ConnectorKind {
        match self {
            Self::Postgres { .. } => ConnectorKind::Postgres,
        }
    }

    /// True when the target holds logins of its own that must be killed (and that
    /// the reconciler can look at).
    pub fn has_logins(&self) -> bool {
        match self {
            Self::Postgres { .. } => true,
        }
    }
}

impl Enforcer {
    /// The connector of `target`, with its administrator's credentials (cached), to
    /// revoke, inspect and report. Revocation goes ahead whatever the administrator
    /// lacks: what it can do (no new logins, the role gone) is better than nothing,
    /// and its receipt proves or refuses the rest.
    pub(crate) async fn connector(&self, target: &TargetConfig) -> Result<Connector, EnforceError> {
        self.connector_checked(target, false).await
    }

    /// The connector of `target` to issue or set a credential with: its
    /// administrator's privileges checked at their first use in this container, so
    /// that nothing is issued that could not be revoked completely.
    pub(crate) async fn issuing_connector(
        &self,
        target: &TargetConfig,
    ) -> Result<Connector, EnforceError> {
        self.connector_checked(target, true).await
    }

    async fn connector_checked(
        &self,
        target: &TargetConfig,
        check_admin: bool,
    ) -> Result<Connector, EnforceError> {
        Ok(match target {
            TargetConfig::Postgres {
                admin_secret_id,
                allowed_roles,
                owned_objects,
                tls,
                ca_file,
                ..
            } => Connector::Postgres(
                self.postgres(
                    admin_secret_id,
                    allowed_roles,
                    *owned_objects,
                    (*tls, ca_file.as_deref()),
                    check_admin,
                )
                .await?,
            ),
        })
    }

    /// Revokes the grant at its target, with the receipt; `None` for a grant of a
    /// retired connector, which has no target to act on (only its secret and schedule,
    /// which the caller deletes).
    pub(crate) async fn revoke_at_target(
        &self,
        grant: &Grant,
    ) -> Result<Option<RevocationReceipt>, EnforceError> {
        if grant.request.target.connector.is_retired() {
            return Ok(None);
        }
        self.connector(self.target(grant)?)
            .await?
            .revoke(grant)
            .await
            .map(Some)
    }

    /// The grant's logins at its target (none for a grant of a retired connector).
    pub(crate) async fn inspect_at_target(
        &self,
        grant: &Grant,
    ) -> Result<Vec<LiveRole>, EnforceError> {
        if grant.request.target.connector.is_retired() {
            return Ok(Vec::new());
        }
        self.connector(self.target(grant)?)
            .await?
            .inspect(grant)
            .await
    }
}

impl Connector {
    /// Creates (or completes) the grant's credential at the target.
    pub(crate) async fn issue(
        &self,
        grant: &Grant,
        password: &SecretString,
    ) -> Result<(), EnforceError> {
        match self {
            Self::Postgres(t) => {
                t.issue(grant, password).await?;
            }
        }
        Ok(())
    }

    /// Sets login `login` of the grant to `password` (rotation's setSecret).
    pub(crate) async fn set(
        &self,
        grant: &Grant,
        login: &str,
        password: &SecretString,
    ) -> Result<(), EnforceError> {
        match self {
            Self::Postgres(t) => {
                t.issue_as(grant, login, password).await?;
            }
        }
        Ok(())
    }

    /// Kills everything of the grant at the target, with the receipt.
    pub(crate) async fn revoke(&self, grant: &Grant) -> Result<RevocationReceipt, EnforceError> {
        Ok(match self {
            Self::Postgres(t) => t.revoke(grant).await?,
        })
    }

    /// The grant's logins that exist at the target.
    pub(crate) async fn inspect(&self, grant: &Grant) -> Result<Vec<LiveRole>, EnforceError> {
        Ok(match self {
            Self::Postgres(t) => {
                let mut logins = Vec::new();
                for name in ticketbound_targets::principal_names(grant) {
                    if let Some(role) = t.inspect(&name).await? {
                        logins.push(role);
                    }
                }
                logins
            }
        })
    }

    /// What is wrong with the target's set-up for ticketbound (its administrator's
    /// privileges, its allow-list), and what is more than needed.
    pub(crate) async fn check(&self) -> Result<TargetCheck, EnforceError> {
        Ok(match self {
            Self::Postgres(t) => {
                let admin = t.check_admin().await?;
                let mut problems: Vec<String> = admin
                    .problems
                    .iter()
                    .chain(&admin.transport_problem)
                    .map(|p| format!("administrator {}: {p}", admin.user))
                    .collect();
                problems.extend(
                    t.check_scope()
                        .await?
                        .iter()
                        .map(|u| format!("allowed scope role {u}")),
                );
                TargetCheck {
                    problems,
                    notes: admin
                        .more_than_needed
                        .iter()
                        .map(|m| format!("administrator {}: {m}", admin.user))
                        .chain(std::iter::once(format!(
                            "PostgreSQL {}.{}, {}",
                            admin.server_version / 10000,
                            admin.server_version % 10000,
                            if admin.tls {
                                "reached over TLS, certificate verified (verify-full)"
                            } else {
                                "reached without TLS"
                            }
                        )))
                        .collect(),
                }
            }
        })
    }

    /// The allowed scope roles that would give a grantee more than its scope.
    pub(crate) async fn unsafe_scope(&self) -> Result<Vec<UnsafeScopeRole>, EnforceError> {
        Ok(match self {
            Self::Postgres(t) => t.check_scope().await?,
        })
    }

    /// Every login at the target that ticketbound did not make and does not
    /// administer with.
    pub(crate) async fn unmanaged(&self) -> Result<Vec<UnmanagedLogin>, EnforceError> {
        Ok(match self {
            Self::Postgres(t) => t.unmanaged_logins().await?,
        })
    }

    /// Every principal ticketbound made at the target.
    pub(crate) async fn managed(&self) -> Result<Vec<String>, EnforceError> {
        Ok(match self {
            Self::Postgres(t) => t.managed_roles().await?,
        })
    }
}
