//! The operator commands as an operator runs them (the real binary, on the local
//! stack): `grants show` and `evidence` verify a grant's audit chain, and editing or
//! deleting one audit item makes `evidence` fail, naming where the chain breaks;
//! `reconcile --json` reports what it checked; `evidence --bundle` and `verify`
//! check a ticket offline against the pinned key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::PathBuf;
use std::process::Output;
use ticketbound_domain::Detail;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use ticketbound_domain::{
    Actor, AuditAction, AuditRecord, Grant, GrantId, SourceSystem, TicketKey,
};
use ticketbound_testkit::{TestStack, sample_request, unique_key};

/// The `.ticketbound` directory the local stack was started from.
fn home() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join(".ticketbound"))
        .find(|d| d.join("local.json").is_file())
        .expect("the local stack is up (ticketbound local up)")
}

fn ticketbound(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ticketbound"))
        .args(args)
        .env("TICKETBOUND_HOME", home())
        .env_remove("TICKETBOUND_GRANTS_TABLE")
        .output()
        .unwrap()
}

/// A grant the policy denied, on a ticket of the generic ITSM: nothing is provisioned
/// and nothing is written back, so nothing but this test touches its trail.
async fn denied_grant(stack: &TestStack) -> (Grant, String) {
    let key = unique_key("EVD");
    let mut request = sample_request(Utc::now(), Duration::hours(2));
    request.ticket.source = SourceSystem::Generic;
    request.ticket.key = TicketKey::new(key.clone()).unwrap();
    let mut g = Grant::rejected(
        GrantId::from_ulid(ulid::Ulid::new()),
        request,
        vec!["prod access needs at least two approvers".into()],
        Utc::now(),
    );
    let events = vec![
        g.record(AuditRecord::new(
            Utc::now(),
            Actor::itsm_user("priya"),
            AuditAction::Requested,
        )),
        g.record(
            AuditRecord::new(
                Utc::now(),
                Actor::component("itsm-intake"),
                AuditAction::PolicyEvaluated,
            )
            .detail(Detail::Decision, "deny")
            .detail(Detail::PolicyIds, "prod-two-approvers"),
        ),
        g.record(AuditRecord::new(
            Utc::now(),
            Actor::component("itsm-intake"),
            AuditAction::Rejected,
        )),
    ];
    stack
        .local_store()
        .create_grant(&g, &events, None, Utc::now())
        .await
        .unwrap();
    (g, format!("generic#{key}"))
}

/// Sets detail `name` of event `seq` of `g` to `value` in the audit table, by hand,
/// as an insider with write access would.
async fn edit_detail(stack: &TestStack, g: &Grant, seq: u64, name: &str, value: &str) {
    let (table, key) = audit_key(stack, g, seq);
    stack
        .dynamodb()
        .update_item()
        .table_name(&table)
        .set_key(Some(
            key.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ))
        .update_expression("SET details.#name = :value")
        .expression_attribute_names("#name", name)
        .expression_attribute_values(":value", AttributeValue::S(value.into()))
        .send()
        .await
        .unwrap();
}

fn audit_key(
    stack: &TestStack,
    g: &Grant,
    seq: u64,
) -> (String, [(&'static str, AttributeValue); 2]) {
    (
        stack.local.audit_table.clone(),
        [
            ("grant_id", AttributeValue::S(g.id.to_string())),
            ("seq", AttributeValue::N(seq.to_string())),
        ],
    )
}

#[tokio::test]
async fn evidence_verifies_the_chain_and_names_where_an_edit_breaks_it() {
    let stack = TestStack::get().await;
    let (g, ticket) = denied_grant(&stack).await;

    let shown = ticketbound(&["grants", "show", &g.id.to_string(), "--json"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["chain"]["verified"], true);
    assert_eq!(shown["chain"]["events"], 3);

    let evidence = ticketbound(&["evidence", &ticket, "--format", "json"]);
    assert!(
        evidence.status.success(),
        "{}",
        String::from_utf8_lossy(&evidence.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&evidence.stdout).unwrap();
    assert_eq!(report["verdict"], "consistent");
    assert_eq!(report["grants"][0]["chain"]["verified"], true);
    assert_eq!(report["grants"][0]["live"]["consistent"], true);
    assert!(
        report["controls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "NHI1")
    );

    // Someone rewrites the policy decision in the audit table.
    edit_detail(&stack, &g, 2, "decision", "allow").await;
    let broken = ticketbound(&["evidence", &ticket, "--format", "md"]);
    assert!(!broken.status.success(), "an edited trail must not pass");
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("breaks at event #2"), "{stderr}");
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(stdout.contains("**BROKEN** at event #2"), "{stdout}");
}

#[tokio::test]
async fn evidence_names_where_a_deleted_audit_item_breaks_the_chain() {
    let stack = TestStack::get().await;
    let (g, ticket) = denied_grant(&stack).await;
    let (table, key) = audit_key(&stack, &g, 3);
    stack
        .dynamodb()
        .delete_item()
        .table_name(&table)
        .set_key(Some(
            key.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ))
        .send()
        .await
        .unwrap();
    let broken = ticketbound(&["evidence", &ticket, "--format", "json"]);
    assert!(!broken.status.success(), "a truncated trail must not pass");
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(report["verdict"], "audit chain broken");
    assert_eq!(report["grants"][0]["chain"]["verified"], false);
    assert_eq!(report["grants"][0]["chain"]["break_at_seq"], 3);
}

#[tokio::test]
async fn reconcile_reports_what_it_checked_as_json() {
    let stack = TestStack::get().await;
    denied_grant(&stack).await;
    let out = ticketbound(&["reconcile", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["grants_checked"].as_u64().unwrap() >= 1);
    assert!(report["findings"].is_array());
}

/// `targets`, as an operator runs it on the local stack: the least-privilege
/// administrator passes, and the local `orders_etl` scope role (which may CREATE in
/// `orders_staging`, as ETL roles usually may) is reported with its reason, so the
/// command exits non-zero. `orders_reader` is not reported.
#[test]
fn targets_check_reports_an_unsafe_scope_role_and_passes_the_administrator() {
    let out = ticketbound(&["targets"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("orders-db: PROBLEMS"), "{text}");
    assert!(
        text.contains("allowed scope role orders_etl: can CREATE in schema(s) orders_staging"),
        "{text}"
    );
    assert!(!text.contains("orders_reader"), "{text}");
    assert!(
        !text.contains("administrator ticketbound_admin: lacks")
            && !text.contains("is not a member of pg_signal_backend"),
        "{text}"
    );
}

/// `evidence --bundle`, `checkpoint` and `verify` as an auditor runs them: the honest
/// bundle verifies against the key `local up` wrote out and the bucket's newest
/// checkpoint; an audit item edited afterwards, or a key other than the pinned one,
/// makes `verify` exit non-zero naming why.
#[tokio::test]
async fn a_bundle_verifies_offline_and_an_edit_or_another_key_does_not() {
    let stack = TestStack::get().await;
    let (g, ticket) = denied_grant(&stack).await;
    let dir = tempdir(&g);
    let key_file = ticketbound_local::stack::LocalLog::public_key_file(&stack.local);
    let key = key_file.to_string_lossy().into_owned();
    let latest = dir.join("latest-checkpoint");
    let verify = |key: &str| {
        ticketbound(&[
            "verify",
            dir.to_str().unwrap(),
            "--key",
            key,
            "--ticket",
            &ticket,
            "--latest",
            latest.to_str().unwrap(),
        ])
    };
    // As an auditor does it: the newest checkpoint first, then the bundle.
    let bundle_and_latest = || {
        let newest = ticketbound(&["checkpoint"]);
        std::fs::write(&latest, &newest.stdout).unwrap();
        let written = ticketbound(&["evidence", &ticket, "--bundle", dir.to_str().unwrap()]);
        assert!(
            written.status.success(),
            "{}",
            String::from_utf8_lossy(&written.stderr)
        );
    };
    // The host's checkpointer logs the grant's events from the audit stream and signs
    // on its schedule (every 2 s locally).
    let mut last = None;
    for _ in 0..60 {
        bundle_and_latest();
        let out = verify(&key);
        if out.status.success() {
            last = Some(out);
            break;
        }
        last = Some(out);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let out = last.unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!(
            "verified: ticket {ticket}, 1 grant(s), 3 event(s)"
        )),
        "{said}"
    );

    // Another key (an insider's, say) certifies nothing.
    let other = ticketbound_evidence::PublicKey::new("ticketbound.local/log", another_key())
        .unwrap()
        .vkey();
    let refused = verify(&other);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("pinned key"), "{why}");

    // The policy decision rewritten in the table after it was logged.
    edit_detail(&stack, &g, 2, "decision", "allow").await;
    bundle_and_latest();
    let broken = verify(&key);
    assert!(!broken.status.success(), "an edited trail must not verify");
    let why = String::from_utf8_lossy(&broken.stderr);
    assert!(why.contains("breaks at sequence 2"), "{why}");
}

fn tempdir(g: &Grant) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ticketbound-bundle-{}", g.id));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A P-256 public key that is not the log's (DER SubjectPublicKeyInfo).
fn another_key() -> Vec<u8> {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    pair.public_key().as_der().unwrap().as_ref().to_vec()
}

/// A grant's whole life, dated within the last hour (the signed log refuses events
/// logged long after they say they happened): requested, approved, issued, rotated,
/// revoked at its not-after time and proven dead at the target. On the generic ITSM,
/// so nothing else touches it; nothing of it lives at the target, as the record says.
async fn ended_grant(stack: &TestStack) -> (Grant, String) {
    let key = unique_key("RPT");
    let start = Utc::now() - Duration::minutes(50);
    let mut request = sample_request(start, Duration::minutes(40));
    request.ticket.source = SourceSystem::Generic;
    request.ticket.key = TicketKey::new(key.clone()).unwrap();
    let mut g = Grant::approved(GrantId::from_ulid(ulid::Ulid::new()), request, start);
    let at = |m: i64| start + Duration::minutes(m);
    let steps = [
        AuditRecord::new(at(0), Actor::itsm_user("priya"), AuditAction::Requested),
        AuditRecord::new(
            at(1),
            Actor::component("itsm-intake"),
            AuditAction::PolicyEvaluated,
        )
        .detail(Detail::Decision, "allow")
        .detail(Detail::PolicyIds, "permit-approved-requests"),
        AuditRecord::new(
            at(2),
            Actor::component("grant-provision"),
            AuditAction::Provisioned,
        )
        .detail(Detail::Principal, "tb_orders_etl_rpt"),
        AuditRecord::new(
            at(20),
            Actor::component("secret-rotate"),
            AuditAction::Rotated,
        )
        .detail(Detail::CurrentVersion, "v2"),
        AuditRecord::new(
            at(41),
            Actor::component("grant-expire"),
            AuditAction::Revoked,
        )
        .detail(Detail::Trigger, "schedule")
        .detail(
            Detail::VerifiedAtTarget,
            "login refused: role does not exist",
        ),
    ];
    let events: Vec<_> = steps.into_iter().map(|r| g.record(r)).collect();
    g.state = ticketbound_domain::GrantState::Revoked;
    stack
        .local_store()
        .create_grant(&g, &events, None, Utc::now())
        .await
        .unwrap();
    (g, format!("generic#{key}"))
}

/// How many pixels of `png` are `colour` (`#rrggbb`), give or take 3 per channel.
fn pixels_of(png: &[u8], colour: &str) -> usize {
    let want: Vec<u8> = (1..7)
        .step_by(2)
        .map(|i| u8::from_str_radix(&colour[i..i + 2], 16).unwrap())
        .collect();
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| p.iter().zip(&want).all(|(a, b)| a.abs_diff(*b) <= 3))
        .count()
}

/// Renders `html` in headless Chromium: its screenshot and its DOM as the browser
/// built it.
fn render_in_chromium(html: &std::path::Path) -> (Vec<u8>, String) {
    let shot = html.with_extension("png");
    let profile = html.with_extension("profile");
    let chromium = |extra: &[&str]| {
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1100,2400",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .output()
            .expect("chromium runs (scripts/test installs Debian's chromium package)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom"]).stdout).into_owned();
    (std::fs::read(&shot).unwrap(), dom)
}

/// `evidence --format html --key`, opened in a real browser: the timeline is drawn
/// (each milestone's mark is on the screen in its colour), the verdict is shown and
/// the signed log verified. Then the record is edited in the table: the same page
/// must not show it as good.
#[tokio::test]
async fn the_html_report_draws_the_timeline_and_shows_the_verdict_in_a_browser() {
    use ticketbound_cli_colours::*;
    let stack = TestStack::get().await;
    let (g, ticket) = ended_grant(&stack).await;
    let dir = tempdir(&g);
    let html = dir.join("report.html");
    let key_file = ticketbound_local::stack::LocalLog::public_key_file(&stack.local);
    let key = key_file.to_string_lossy().into_owned();
    let report = || ticketbound(&["evidence", &ticket, "--format", "html", "--key", &key]);
    // The checkpointer signs on its schedule (every 2 s locally).
    let mut out = report();
    for _ in 0..60 {
        if out.status.success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        out = report();
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = String::from_utf8(out.stdout).unwrap();
    for external in ["src=", "href=", "url(", "@import", "<link", "<script"] {
        assert!(
            !page.contains(external),
            "self-contained: {external} in the page"
        );
    }
    std::fs::write(&html, &page).unwrap();
    let (shot, dom) = render_in_chromium(&html);
    assert!(dom.contains("Verdict: consistent"), "{dom}");
    assert!(dom.contains("Verified."), "the signed log verified: {dom}");
    for (what, colour) in [
        ("requested", REQUESTED),
        ("approved", APPROVED),
        ("issued", ISSUED),
        ("rotated", ROTATED),
        ("not after", NOT_AFTER),
        ("revoked", REVOKED),
        ("proven dead", PROVEN_DEAD),
        ("the good verdict", VERDICT_GOOD),
    ] {
        let n = pixels_of(&shot, colour);
        assert!(n > 30, "{what} ({colour}) is not drawn: {n} pixels");
    }
    assert_eq!(pixels_of(&shot, VERDICT_BAD), 0);

    // The policy decision rewritten in the table: the page says so, in red.
    edit_detail(&stack, &g, 2, "policy_ids", "forged").await;
    let out = report();
    assert!(
        !out.status.success(),
        "an edited record must not report as good"
    );
    std::fs::write(&html, &out.stdout).unwrap();
    let (shot, dom) = render_in_chromium(&html);
    assert!(dom.contains("Verdict: audit chain broken"), "{dom}");
    assert!(pixels_of(&shot, VERDICT_BAD) > 30);
    assert_eq!(pixels_of(&shot, VERDICT_GOOD), 0);
}

/// The report's colours (as `cli/src/report.rs` draws them), spelt out here: the test
/// reads the screen, not the code.
mod ticketbound_cli_colours {
    pub const REQUESTED: &str = "#6b7280";
    pub const APPROVED: &str = "#2563eb";
    pub const ISSUED: &str = "#16a34a";
    pub const ROTATED: &str = "#7c3aed";
    pub const NOT_AFTER: &str = "#ea580c";
    pub const REVOKED: &str = "#dc2626";
    pub const PROVEN_DEAD: &str = "#831843";
    pub const VERDICT_GOOD: &str = "#0f766e";
    pub const VERDICT_BAD: &str = "#b91c1c";
}

/// `inventory`, as an operator runs it on the local stack: the registered identity
/// with its owner and its live grant (ticket, target, expiry), and a login a DBA made
/// by hand at `orders-db`, listed as unmanaged and left alone; `--owner` narrows to
/// whom an owner answers for.
#[tokio::test]
async fn inventory_lists_identities_with_their_grants_and_what_is_unmanaged() {
    let stack = TestStack::get().await;
    let desk = stack.jira_desk().await;
    let (key, _) = desk
        .approved(
            ticketbound_testkit::jira_desk::DEMO_PROJECT,
            Utc::now(),
            Duration::hours(2),
            |_| {},
        )
        .await;
    let store = stack.local_store();
    let ticket = ticketbound_domain::Ticket {
        source: SourceSystem::Jira,
        key: TicketKey::new(&key).unwrap(),
        link: None,
    };
    let mut active = None;
    for _ in 0..150 {
        if let Some(g) = store.grants_for_ticket(&ticket).await.unwrap().first()
            && g.state == ticketbound_domain::GrantState::Active
        {
            active = Some(g.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let grant = active.unwrap_or_else(|| panic!("{key} never became an Active grant"));
    let login = format!("dba_made_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = stack.pg_admin().await;
    admin
        .batch_execute(&format!("CREATE ROLE {login} LOGIN PASSWORD 'dba-pw'"))
        .await
        .unwrap();

    let out = ticketbound(&["inventory", "--target", "orders-db", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let identity = inv["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == grant.request.identity.name.as_str())
        .unwrap_or_else(|| panic!("{} not listed: {inv}", grant.request.identity.name));
    assert_eq!(identity["owner"], grant.request.identity.owner.as_str());
    let live = identity["live"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["grant_id"] == grant.id.to_string())
        .unwrap_or_else(|| panic!("grant {} not listed: {identity}", grant.id));
    assert_eq!(live["ticket"], format!("jira#{key}"));
    assert_eq!(live["target"], "orders-db");
    assert_eq!(live["state"], "active");
    let unmanaged: Vec<&str> = inv["unmanaged"]["logins"]["orders-db"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert!(unmanaged.contains(&login.as_str()), "{unmanaged:?}");
    assert!(!unmanaged.contains(&"ticketbound_admin"), "{unmanaged:?}");
    assert!(
        !unmanaged.iter().any(|l| l.starts_with("tb_")),
        "ticketbound's own logins are not unmanaged: {unmanaged:?}"
    );

    // The table a person reads, and an owner with nothing.
    let out = ticketbound(&["inventory", "--target", "orders-db"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("login  orders-db/{login}")),
        "{text}"
    );
    assert!(text.contains(&format!("jira#{key}")), "{text}");
    let out = ticketbound(&["inventory", "--owner", "nobody-owns-this", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let none: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(none["identities"].as_array().unwrap().len(), 0);
    assert!(
        none["unmanaged_scope"]
            .as_str()
            .unwrap()
            .contains("not listed with --owner"),
        "{none}"
    );
    let out = ticketbound(&["inventory", "--target", "no-such-db"]);
    assert!(
        !out.status.success(),
        "an unknown target is an error, not an empty list"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no target no-such-db is configured"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Listed, never touched.
    let db = stack.pg_login(&login, "dba-pw").await;
    assert!(db.is_ok(), "the hand-made login still works");
    admin
        .batch_execute(&format!("DROP ROLE {login}"))
        .await
        .unwrap();
}
