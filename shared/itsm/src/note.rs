//! What a ticket is told about its grant: one note per lifecycle step, rendered from
//! the audit event and the grant (pure; the clients in `outbound` post it).
//!
//! A note names who approved, the policy decision, what was created (identity,
//! target, scope, secret ARN: never a value), when it expires, each rotation, and when
//! and why it was revoked. Each ends with a marker line naming the grant and the audit
//! event, by which the write-back recognises a note it already posted.

use ticketbound_domain::Detail;
use ticketbound_domain::{AuditAction, AuditEvent, Grant};

/// A note for a ticket: a headline and lines of plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub headline: String,
    pub lines: Vec<String>,
    /// `ticketbound:<grant id>:<seq>`, also the last line of the text.
    pub marker: String,
}

impl Note {
    /// The note as plain text (ServiceNow work notes; each paragraph of Jira's ADF).
    pub fn text(&self) -> String {
        let mut text = self.headline.clone();
        for line in &self.lines {
            text.push('\n');
            text.push_str(line);
        }
        text.push_str("\n\n");
        text.push_str(&self.marker);
        text
    }
}

/// The marker of a note about event `seq` of grant `grant_id`.
pub fn marker(grant_id: &str, seq: u64) -> String {
    format!("ticketbound:{grant_id}:{seq}")
}

/// Whether `text` (a note as the ticket gives it back) carries `marker` on a line of
/// its own: `ticketbound:<grant>:2` is not found in a note marked `…:20`.
pub fn carries_marker(text: &str, marker: &str) -> bool {
    text.lines().any(|line| line.trim() == marker)
}

/// Whether an event is told to the ticket. The write-back's own events are not (they
/// would tell of themselves without end), nor the step between approval and
/// provisioning, which the next note covers.
pub fn is_noteworthy(action: AuditAction) -> bool {
    !matches!(
        action,
        AuditAction::Requested
            | AuditAction::ProvisioningStarted
            | AuditAction::TicketUpdated
            | AuditAction::TicketUpdateFailed
    )
}

/// How many notes a trail has led to (posted, or given up on after the last attempt),
/// and how many of its events are worth one: the ticket has been told of everything
/// once the first reaches the second.
pub fn told_of(trail: &[AuditEvent]) -> (usize, usize) {
    let told = trail
        .iter()
        .filter(|e| {
            matches!(
                e.action,
                AuditAction::TicketUpdated | AuditAction::TicketUpdateFailed
            )
        })
        .count();
    let to_tell = trail.iter().filter(|e| is_noteworthy(e.action)).count();
    (told, to_tell)
}

/// The note for `event` of `grant`, or `None` when the event is not told.
pub fn render(grant: &Grant, event: &AuditEvent) -> Option<Note> {
    if !is_noteworthy(event.action) {
        return None;
    }
    let facts = Facts::of(grant, event);
    let mut lines = Vec::new();
    let headline = match event.action {
        // The decision on the request.
        AuditAction::PolicyEvaluated => policy_evaluated(&facts, &mut lines),
        AuditAction::Rejected => rejected(&facts, &mut lines),
        // The credential's issue and rotation.
        AuditAction::ProvisioningDeferred => provisioning_deferred(&facts, &mut lines),
        AuditAction::Provisioned => provisioned(&facts, &mut lines),
        AuditAction::ProvisioningFailed => provisioning_failed(&facts, &mut lines),
        AuditAction::Rotated => rotated(&facts, &mut lines),
        AuditAction::RotationRefused => rotation_refused(&facts, &mut lines),
        // Its revocation.
        AuditAction::RevocationStarted => revocation_started(&facts, &mut lines),
        AuditAction::Revoked => revoked(&facts, &mut lines),
        AuditAction::RevocationFailed if facts.detail(Detail::Escalated).is_some() => {
            revocation_escalated(&facts, &mut lines)
        }
        AuditAction::RevocationFailed => revocation_failed(&facts, &mut lines),
        // What the reconciler found.
        AuditAction::DriftFound => drift_found(&facts, &mut lines),
        AuditAction::Requested
        | AuditAction::ProvisioningStarted
        | AuditAction::TicketUpdated
        | AuditAction::TicketUpdateFailed => return None,
    };
    // Record fields are written into the lines; one that held a new line would add a
    // line of its own (a marker, or a witness line, that is not the note's).
    let one_line = |text: String| text.replace(['\n', '\r'], " ");
    Some(Note {
        headline: one_line(headline),
        lines: lines.into_iter().map(one_line).collect(),
        marker: marker(&grant.id.to_string(), event.seq),
    })
}

/// What the notes are written from: the grant, the event, and the words several
/// notes share.
struct Facts<'a> {
    grant: &'a Grant,
    event: &'a AuditEvent,
    /// When the event happened.
    at: String,
    /// The access: identity, target and scope.
    what: String,
    /// `valid until <not-after time>`.
    until: String,
}

impl<'a> Facts<'a> {
    fn of(grant: &'a Grant, event: &'a AuditEvent) -> Self {
        let r = &grant.request;
        Self {
            grant,
            event,
            at: event.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            what: format!(
                "{} ({}) at {} [{}], scope {}",
                r.identity.name,
                r.identity.kind.as_str(),
                r.target.system_id,
                r.target.environment,
                r.scope
            ),
            until: format!(
                "valid until {}",
                grant.not_after().format("%Y-%m-%d %H:%M:%S UTC")
            ),
        }
    }

    /// The event's detail `k`, unless absent or empty.
    fn detail(&self, k: Detail) -> Option<String> {
        self.event
            .detail(k)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

// Each of the following writes one kind of note: it pushes the note's lines and
// returns its headline.

fn policy_evaluated(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    let r = &f.grant.request;
    let at = &f.at;
    let approvers = r
        .approvals
        .iter()
        .map(|a| {
            format!(
                "{} ({})",
                a.approver,
                a.approved_at.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    lines.push(format!(
        "Requested by {}; approved by {approvers}.",
        r.requester
    ));
    // Why an approval the ticket holds did not count, so the approvers know
    // what to do (approve again after a change; ask someone with authority).
    for approval in &r.approvals {
        if let Some(why) = &approval.discounted {
            lines.push(format!("Not counted: {why}."));
        }
    }
    if r.verification == ticketbound_domain::Verification::SenderOnly {
        lines.push(
            "The approval was taken on the sender's signature; it was not read back from the ITSM."
                .to_owned(),
        );
    }
    lines.push(format!("Access: {}, {}.", f.what, f.until));
    let policies = f.detail(Detail::PolicyIds).unwrap_or_else(|| "none".into());
    match f.detail(Detail::Decision).as_deref() {
        Some("allow") => {
            lines.push(format!("Policy decision: allowed (policies: {policies})."));
            format!("ticketbound: access approved by policy at {at}")
        }
        _ => {
            lines.push(format!(
                "Policy decision: denied (policies: {policies}): {}.",
                f.detail(Detail::Reasons)
                    .unwrap_or_else(|| "no reason given".into())
            ));
            format!("ticketbound: access denied by policy at {at}; nothing was created")
        }
    }
}

fn rejected(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    lines.push(format!("Access: {}.", f.what));
    format!(
        "ticketbound: request rejected at {}; nothing was created",
        f.at
    )
}

fn provisioned(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    let r = &f.grant.request;
    lines.push(format!(
        "Created: {}, {}; owner {}.",
        f.what, f.until, r.identity.owner
    ));
    if let Some(principal) = f.detail(Detail::Principal) {
        lines.push(format!("Login at the target: {principal}."));
    }
    if let Some(arn) = f
        .detail(Detail::SecretArn)
        .or_else(|| f.grant.credential.as_ref().map(|c| c.secret_arn.clone()))
    {
        lines.push(format!(
            "Credential held in AWS Secrets Manager: {arn} (readable only by {}).",
            r.identity.workload_principal
        ));
    }
    if let Some(rotation) = f.detail(Detail::Rotation) {
        lines.push(format!("Rotation: {rotation}."));
    }
    if let Some(schedule) = f.detail(Detail::ExpirySchedule) {
        lines.push(format!(
            "Revocation scheduled at the not-after time ({schedule})."
        ));
    }
    format!("ticketbound: credential issued at {}", f.at)
}

fn provisioning_deferred(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    let start = f
        .detail(Detail::DeferredUntil)
        .unwrap_or_else(|| "not recorded".into());
    lines.push(format!("Access: {}, {}.", f.what, f.until));
    lines.push(format!(
        "Nothing is issued before the change window begins ({start}); the credential is created then."
    ));
    if let Some(schedule) = f.detail(Detail::StartSchedule) {
        lines.push(format!(
            "Issue scheduled at the window's start ({schedule})."
        ));
    }
    format!("ticketbound: access waits for the change window ({})", f.at)
}

fn provisioning_failed(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    lines.push(format!(
        "Reason: {}.",
        f.detail(Detail::Reason)
            .unwrap_or_else(|| "not recorded".into())
    ));
    lines.push("Anything partly made has been removed.".into());
    format!("ticketbound: the credential could not be issued ({})", f.at)
}

fn rotated(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    lines.push(format!(
        "Secret version {} is now current{}.",
        f.detail(Detail::CurrentVersion).unwrap_or_default(),
        f.detail(Detail::PreviousVersion)
            .map(|p| format!(", replacing {p}"))
            .unwrap_or_default()
    ));
    if let Some(login) = f.detail(Detail::Login) {
        lines.push(format!("Login now in use: {login}."));
    }
    lines.push(format!("The grant stays {}.", f.until));
    format!("ticketbound: credential rotated at {}", f.at)
}

fn rotation_refused(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    lines.push(format!(
        "Reason: {}.",
        f.detail(Detail::Reason)
            .unwrap_or_else(|| "the grant is not live".into())
    ));
    format!("ticketbound: rotation refused at {}", f.at)
}

fn revocation_started(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    lines.push(format!(
        "Cause: {}.",
        cause(f.detail(Detail::Trigger).as_deref())
    ));
    format!("ticketbound: revocation started at {}", f.at)
}

fn revoked(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    lines.push(format!(
        "Cause: {}.",
        cause(f.detail(Detail::Trigger).as_deref())
    ));
    if let Some(roles) = f.detail(Detail::RolesDropped) {
        lines.push(format!("Logins dropped at the target: {roles}."));
    }
    if let Some(n) = f.detail(Detail::SessionsTerminated) {
        lines.push(format!("Open sessions terminated: {n}."));
    }
    if let Some(n) = f.detail(Detail::ObjectsDropped) {
        lines.push(format!("Objects the credential had made, dropped: {n}."));
    }
    if let Some(kept) = f.detail(Detail::ObjectsQuarantined) {
        lines.push(format!(
            "Objects others depend on, kept disarmed (no grant, no SECURITY DEFINER): {kept}."
        ));
    }
    if let Some(kept) = f.detail(Detail::LoginsKeptDisabled) {
        lines.push(format!(
            "Logins that cannot be dropped yet, kept unable to log in or act: {kept}."
        ));
    }
    if let Some(late) = f.detail(Detail::LateCredential) {
        lines.push(format!("A credential {late}."));
    }
    if f.detail(Detail::SecretDeleted).as_deref() == Some("true") {
        lines.push("The secret was deleted from AWS Secrets Manager.".into());
    }
    if let Some(n) = f.detail(Detail::FailedAttempts) {
        lines.push(format!("It succeeded after {n} failed attempts."));
    }
    if let Some(receipt) = f.detail(Detail::VerifiedAtTarget) {
        lines.push(format!("Checked at the target afterwards: {receipt}."));
    }
    format!("ticketbound: access revoked at {}", f.at)
}

fn revocation_escalated(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    lines.push(format!(
        "It has kept failing since {} ({} attempts); last reason: {}. Escalated to the operators; retries go on, and this ticket hears again when it succeeds.",
        f.detail(Detail::FailingSince).unwrap_or_default(),
        f.detail(Detail::Attempt).unwrap_or_default(),
        f.detail(Detail::Reason).unwrap_or_default()
    ));
    format!("ticketbound: revocation escalated at {}", f.at)
}

fn revocation_failed(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    lines.push(format!(
        "Reason: {}. It is retried with backoff until it succeeds; the grant is not recorded revoked before then, and this ticket hears again only when it succeeds or is escalated.",
        f.detail(Detail::Reason).unwrap_or_default()
    ));
    format!("ticketbound: a revocation attempt failed at {}", f.at)
}

fn drift_found(f: &Facts<'_>, lines: &mut Vec<String>) -> String {
    lines.push(format!(
        "{}.",
        f.detail(Detail::Finding)
            .or_else(|| f.detail(Detail::Note))
            .unwrap_or_else(|| "recorded and live state differ".into())
    ));
    if let Some(done) = f.detail(Detail::Remediation) {
        lines.push(format!("Remediation: {done}."));
    }
    format!("ticketbound: drift found at {}", f.at)
}

fn cause(trigger: Option<&str>) -> &'static str {
    match trigger {
        Some("schedule") => "its not-after time was reached (expiry schedule)",
        Some("ttl_backstop") => "its not-after time had passed (DynamoDB TTL backstop)",
        Some("sweep") => "its not-after time had passed (found by the sweep)",
        Some("rotation_after_expiry") => "a rotation was asked for after its not-after time",
        Some("late_event") => "its not-after time had passed",
        Some("ticket_withdrawn") => "the ticket was withdrawn",
        Some("ticket_closed") => "the ticket was closed",
        Some("provisioning_failed") => "provisioning failed",
        Some("reconciler") => "the reconciler found the credential alive after the grant ended",
        _ => "not recorded",
    }
}

#[cfg(test)]
mod marker_tests {
    use super::*;

    #[test]
    fn a_deferral_tells_the_ticket_when_the_credential_will_be_made() {
        use ticketbound_domain::{Actor, AuditRecord, GrantId, RequestDraft};
        let draft: RequestDraft = serde_json::from_str(include_str!(
            "../../../tests/fixtures/generic/approved-request.json"
        ))
        .unwrap_or_else(|e| panic!("the fixture parses: {e}"));
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let request = draft
            .validate(at)
            .unwrap_or_else(|e| panic!("the fixture validates: {e:?}"));
        let mut grant = Grant::approved(GrantId::new(at, 1), request, at);
        let event = grant.record(
            AuditRecord::new(
                at,
                Actor::component("grant-provision"),
                AuditAction::ProvisioningDeferred,
            )
            .detail(Detail::DeferredUntil, "2026-11-29T10:00:00+00:00")
            .detail(Detail::StartSchedule, "tb-start-x"),
        );
        let note = render(&grant, &event).unwrap_or_else(|| panic!("a deferral is told"));
        assert!(
            note.headline.contains("waits for the change window"),
            "{note:?}"
        );
        let text = note.lines.join("\n");
        assert!(
            text.contains(
                "Nothing is issued before the change window begins (2026-11-29T10:00:00+00:00)"
            ),
            "{text}"
        );
        assert!(text.contains("tb-start-x"), "{text}");
    }

    #[test]
    fn a_marker_is_found_on_its_own_line_only() {
        let m = marker("01M8T7H278EZX1R6JW3JQT0G7Z", 2);
        assert!(carries_marker(&format!("Revoked\n\n{m}"), &m));
        assert!(carries_marker(&format!("Revoked\n\n{m}\n"), &m));
        let twenty = marker("01M8T7H278EZX1R6JW3JQT0G7Z", 20);
        assert!(!carries_marker(&format!("Rotated\n\n{twenty}"), &m));
        assert!(!carries_marker(&format!("see {m} above"), &m));
    }
}
