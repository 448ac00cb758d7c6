//! The conformance suite: what every connector must pass to exist, written once,
//! generic over the connector under test ([`Subject`]). Each check is a question a
//! user or an attacker would ask of the live target (does the credential work, and
//! only within its scope; is it refused after revocation; does anything the grantee
//! planted still give anyone anything), never whether a function returned Ok.
//!
//! [`run`] collects every failed check instead of stopping at the first, so that a
//! connector's report names all it gets wrong; the suite's own test proves it can
//! fail (a connector whose revoke leaves the login is caught).

use ticketbound_domain::Grant;

/// A credential the suite holds: a login and its password.
#[derive(Debug, Clone)]
pub struct Credential {
    pub login: String,
    pub password: String,
}

/// The target refused an action for want of privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// What a connector's revoke says it verified at the target afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receipt {
    pub logins_able_to_act: i64,
    pub sessions: i64,
    pub objects_owned: i64,
}

/// How a credential rotates (the connector's declared strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The same login gets a new password: the old one is refused at once.
    SingleUser,
    /// The other login of the grant becomes current: the old one keeps working.
    AlternatingUsers,
}

/// What a hostile grantee did while its grant was live.
#[derive(Debug)]
pub struct Planted<P, S> {
    /// Things that would give someone something if they survived (the subject
    /// knows how to try each one as a bystander).
    pub objects: Vec<P>,
    /// Credentials the grantee made for itself (a new password, say).
    pub credentials: Vec<Credential>,
    /// Sessions it keeps open.
    pub sessions: Vec<S>,
}

/// A connector under test, at a real target, with the probes the suite needs.
#[allow(async_fn_in_trait)] // used by generics in one test binary, never boxed
pub trait Subject {
    type Session;
    type Plant: std::fmt::Debug;

    /// A fresh grant this target may issue (its scope within the allow-list).
    fn grant(&self) -> Grant;
    /// The rotation strategies the connector declares.
    fn strategies(&self) -> Vec<Strategy>;

    async fn issue(&self, grant: &Grant, password: &str) -> Result<String, String>;
    /// Rotates `current` with `strategy`; returns the login now current.
    async fn rotate(
        &self,
        grant: &Grant,
        current: &str,
        strategy: Strategy,
        password: &str,
    ) -> Result<String, String>;
    async fn revoke(&self, grant: &Grant) -> Result<Receipt, String>;
    /// True when `login` exists at the target and may still act.
    async fn can_act(&self, login: &str) -> Result<bool, String>;
    /// Every principal the connector says it manages.
    async fn managed(&self) -> Result<Vec<String>, String>;

    async fn connect(&self, credential: &Credential) -> Result<Self::Session, String>;
    async fn in_scope(&self, session: &Self::Session) -> Result<(), String>;
    /// Tries what the scope does not allow: `Err(Refused)` only when the target
    /// refused it for want of privilege (not for any other error, which would make
    /// the check pass for a probe that is simply wrong).
    async fn beyond_scope(&self, session: &Self::Session) -> Result<(), Refused>;
    async fn alive(&self, session: &Self::Session) -> bool;

    /// Everything an attacker holding `credential` would try while live.
    async fn plant(
        &self,
        credential: &Credential,
        session: &Self::Session,
    ) -> Planted<Self::Plant, Self::Session>;
    /// True when `plant` gives someone who is not the grantee anything.
    async fn still_gives(&self, plant: &Self::Plant) -> bool;

    /// A principal made by hand with ticketbound's naming, as an orphan would be.
    async fn make_orphan(&self) -> String;
    /// Gives `login` something beyond its scope by hand (drift), and tells whether
    /// the connector's inspection shows it.
    async fn drift_is_seen(&self, login: &str) -> Result<bool, String>;
    /// Removes what the subject made for the suite (not what the grant made).
    async fn clean_up(&self);
}

/// Runs the whole suite against `s`; returns every check that failed.
pub async fn run<S: Subject>(s: &S) -> Vec<String> {
    let mut failed = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            failed.push(what.to_owned());
        }
    };

    // Issue: the credential works within its scope and not beyond; issuing again
    // (a retry) completes the same login.
    let grant = s.grant();
    let first = Credential {
        login: String::new(),
        password: password(),
    };
    let login = match s.issue(&grant, &first.password).await {
        Ok(l) => l,
        Err(e) => return vec![format!("issue failed: {e}")],
    };
    let cred = Credential { login, ..first };
    let again = s.issue(&grant, &cred.password).await;
    check(
        again.as_deref() == Ok(cred.login.as_str()),
        "issuing again completes the same login",
    );
    let Ok(session) = s.connect(&cred).await else {
        check(false, "the issued credential logs in");
        return failed;
    };
    check(
        s.in_scope(&session).await.is_ok(),
        "the credential can do its scope",
    );
    check(
        s.beyond_scope(&session).await == Err(Refused),
        "the credential can do nothing beyond its scope (refused for want of privilege)",
    );
    let managed = s.managed().await.unwrap_or_default();
    check(
        managed.iter().filter(|m| **m == cred.login).count() == 1,
        "the connector lists the login it made, once",
    );

    // Drift and orphans, as the reconciler needs to see them.
    let orphan = s.make_orphan().await;
    check(
        s.managed().await.unwrap_or_default().contains(&orphan),
        "a principal made by hand with ticketbound's naming is listed (an orphan to report)",
    );
    check(
        s.drift_is_seen(&cred.login).await == Ok(true),
        "a privilege given by hand beyond the scope shows in the inspection (drift)",
    );

    // The hostile grantee.
    let planted = s.plant(&cred, &session).await;
    check(
        !planted.objects.is_empty() && !planted.credentials.is_empty(),
        "the subject plants something (a suite with nothing to check passes vacuously)",
    );
    for p in &planted.objects {
        // The probe must be able to see a plant working, or its "gone" below is empty.
        check(
            s.still_gives(p).await,
            &format!("while live, the planted {p:?} works (the probe can see it)"),
        );
    }

    // Revoke: refused, sessions ended, nothing planted gives anything, receipt right.
    match s.revoke(&grant).await {
        Ok(receipt) => check(
            receipt == Receipt::default(),
            &format!("the receipt shows nothing left (got {receipt:?})"),
        ),
        Err(e) => check(false, &format!("revoke succeeds ({e})")),
    }
    check(
        s.connect(&cred).await.is_err(),
        "after revocation the credential is refused (a revoke that leaves the login still logs in)",
    );
    for c in &planted.credentials {
        check(
            s.connect(c).await.is_err(),
            &format!(
                "after revocation the grantee's own credential for {} is refused",
                c.login
            ),
        );
    }
    check(
        !s.alive(&session).await,
        "after revocation the open session is ended",
    );
    for (i, other) in planted.sessions.iter().enumerate() {
        check(
            !s.alive(other).await,
            &format!("after revocation the grantee's other session #{i} is ended"),
        );
    }
    for p in &planted.objects {
        check(
            !s.still_gives(p).await,
            &format!("after revocation the planted {p:?} gives nobody anything"),
        );
    }
    check(
        s.can_act(&cred.login).await == Ok(false),
        "after revocation the login cannot act (dropped, or kept disabled)",
    );
    // Idempotent: a repeated revocation (a retry, a second trigger) succeeds and
    // finds nothing.
    check(
        s.revoke(&grant).await == Ok(Receipt::default()),
        "revoking again succeeds with nothing left",
    );

    // Rotation, per declared strategy, each on a grant of its own.
    check(
        !s.strategies().is_empty(),
        "the connector declares at least one rotation strategy",
    );
    for strategy in s.strategies() {
        let g = s.grant();
        let old = Credential {
            login: String::new(),
            password: password(),
        };
        let Ok(login) = s.issue(&g, &old.password).await else {
            check(false, &format!("{strategy:?}: issue"));
            continue;
        };
        let old = Credential { login, ..old };
        let new_password = password();
        match s.rotate(&g, &old.login, strategy, &new_password).await {
            Ok(login) => {
                let new = Credential {
                    login,
                    password: new_password,
                };
                check(
                    s.connect(&new).await.is_ok(),
                    &format!("{strategy:?}: the rotated credential logs in"),
                );
                let old_works = s.connect(&old).await.is_ok();
                check(
                    old_works == (strategy == Strategy::AlternatingUsers),
                    &format!(
                        "{strategy:?}: the previous credential works only where the strategy keeps it"
                    ),
                );
                let _ = s.revoke(&g).await;
                check(
                    s.connect(&new).await.is_err() && s.connect(&old).await.is_err(),
                    &format!("{strategy:?}: revocation refuses every login of the grant"),
                );
            }
            Err(e) => check(false, &format!("{strategy:?}: rotate ({e})")),
        }
    }

    s.clean_up().await;
    failed
}

fn password() -> String {
    format!("pw-{}", ulid::Ulid::new())
}
