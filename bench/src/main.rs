//! `bench`: what a Lambda's users pay for, measured and kept. Run by `scripts/bench`,
//! which builds the release packages with cargo lambda first.
//!
//! - **Cold start** of each function's release `bootstrap`, spawned as Lambda starts
//!   it against a Runtime API emulated here, with the SDK pointed at the local stack:
//!   spawn → first `next` (init) and → first answer (first invocation), over N starts;
//!   beside the same for a hello-world `lambda_runtime` binary of the same profile.
//! - **Peak RSS** (VmHWM) over those starts and over warm invocations in one process.
//! - **Package size**: the stripped `bootstrap` and its zip, as cargo lambda made them.
//! - **Intake latency** with 1, 8 and 32 instances working at once (Lambda runs one
//!   event at a time per instance, so concurrent senders are concurrent instances):
//!   signed Jira approvals, each a new grant written to DynamoDB.
//!
//! One table on stdout, the same figures as JSON in `target/bench/<time>.json` and
//! `target/bench/latest.json`, and each figure against its budget (reported, never
//! asserted: machines are noisy).

mod lifecycle;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;
use serde_json::{Value, json};
use ticketbound_local::RunningStack;
use ticketbound_local::fixtures::fixture_json;

use ticketbound_local::runtime_api::{self, RuntimeApi};

#[derive(Debug, Parser)]
struct Args {
    /// Cold starts per function.
    #[arg(long, default_value_t = 20)]
    starts: usize,
    /// Warm invocations in one process, per function (the reconciler does a whole run
    /// per invocation and gets a twentieth of these).
    #[arg(long, default_value_t = 1000)]
    warm: usize,
    /// Intake instances working at once, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    senders: Vec<usize>,
    /// Approvals sent at each level of concurrency.
    #[arg(long, default_value_t = 96)]
    requests: usize,
    /// Whole grant lifecycles run through the local host to count AWS calls per grant
    /// (0: skip).
    #[arg(long, default_value_t = 10)]
    lifecycles: usize,
    /// Where the release binaries are (cargo lambda's x86_64 build).
    #[arg(long, default_value = "target/x86_64-unknown-linux-gnu/release")]
    binaries: PathBuf,
    /// Where cargo lambda put the zips.
    #[arg(long, default_value = "target/lambda")]
    packages: PathBuf,
}

const FUNCTIONS: [&str; 6] = [
    "itsm-intake",
    "grant-provision",
    "grant-expire",
    "secret-rotate",
    "ticket-writeback",
    "grant-reconcile",
];
const FLOOR: &str = "hello-lambda";

/// Budgets (docs/benchmarks.md): cold start within this many times the floor's median; peak RSS
/// and zip size under these.
const COLD_START_RATIO: f64 = 2.5;
const RSS_BUDGET_MB: f64 = 20.0;
const ZIP_BUDGET_MB: f64 = 4.0;

#[derive(Debug, Default, Serialize)]
struct Stats {
    median_ms: f64,
    p95_ms: f64,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    if samples.is_empty() {
        return Stats::default();
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i.min(samples.len() - 1)]
    };
    Stats {
        median_ms: at(0.5),
        p95_ms: at(0.95),
    }
}

#[derive(Debug, Default, Serialize)]
struct FunctionFigures {
    cold_start: Stats,
    init: Stats,
    first_invocation: Stats,
    /// Cold start median over the floor's.
    cold_start_ratio: f64,
    /// Init median over the floor's: the start-up alone, without the first event's
    /// own work (its calls to AWS).
    init_ratio: f64,
    failed_starts: usize,
    peak_rss_cold_mb: f64,
    warm_invocations: usize,
    warm: Stats,
    peak_rss_warm_mb: f64,
    bootstrap_mb: Option<f64>,
    zip_mb: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Latency {
    instances: usize,
    /// Whether the intake read each approval back from the local Jira site (the
    /// shipped configuration) or took the sender's word (`TICKETBOUND_SENDER_ONLY`),
    /// so the difference is the read-back's cost.
    read_back: bool,
    requests: usize,
    accepted: usize,
    p50_ms: f64,
    p99_ms: f64,
    throughput_per_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    at: chrono::DateTime<chrono::Utc>,
    machine: String,
    starts: usize,
    functions: BTreeMap<String, FunctionFigures>,
    intake_latency: Vec<Latency>,
    intake_cpu_per_event_us: Option<f64>,
    lifecycle: Option<lifecycle::LifecycleCosts>,
    /// The expiry benchmark's last figures (`target/bench/expiry.json`), if it ran.
    expiry: Option<Value>,
    arm64: &'static str,
    budgets: Value,
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The environment a function has on the local stack (`ticketbound local env`).
fn function_env(function: &str) -> Vec<(String, String)> {
    if function == FLOOR {
        return Vec::new();
    }
    let out = std::process::Command::new("target/debug/ticketbound")
        .args(["local", "env", function])
        .output()
        .unwrap_or_else(|e| panic!("target/debug/ticketbound local env: {e}"));
    let env: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "local env {function}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    env.into_iter().collect()
}

/// One process of `binary`, started as Lambda starts it, given `events`; returns the
/// timings and its peak RSS, then stops it.
async fn run_process(
    binary: &Path,
    function: &str,
    env: &[(String, String)],
    events: Vec<Value>,
) -> (runtime_api::Timings, Instant, f64) {
    let n = events.len();
    let api = RuntimeApi::start(events)
        .await
        .unwrap_or_else(|e| panic!("runtime API: {e}"));
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        )
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let pid = child.id().unwrap_or(0);
    let _ = tokio::time::timeout(Duration::from_secs(120), api.wait_for(n)).await;
    let rss = peak_rss_mb(pid);
    let _ = child.kill().await;
    (api.timings(), started, rss)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The event each function is started with: real work against the local stack where
/// the function has cheap real work to do.
fn cold_event(function: &str) -> Value {
    match function {
        // A webhook whose signature does not verify: the secret is fetched from Secrets
        // Manager, the HMAC checked, 401 answered; nothing written.
        "itsm-intake" => {
            let mut e = fixture_json("http/function-url-request.json");
            e["body"] = json!("{\"webhookEvent\":\"jira:issue_updated\"}");
            e
        }
        // A stream record none of them acts on (a REMOVE by someone other than TTL).
        "grant-provision" | "ticket-writeback" => {
            let text = String::from_utf8(ticketbound_local::fixtures::fixture(
                "dynamodb/ttl-remove.json",
            ))
            .unwrap_or_default()
            .replace("GRANT_ID_PLACEHOLDER", &ulid::Ulid::new().to_string());
            serde_json::from_str(&text).unwrap_or(Value::Null)
        }
        // The sweep: three queries of the grants table.
        "grant-expire" => json!({"sweep": true}),
        // A rotation of a secret that does not exist: DescribeSecret, refused.
        "secret-rotate" => json!({
            "Step": "createSecret",
            "SecretId": "ticketbound/bench/no-such-secret",
            "ClientRequestToken": "00000000-0000-4000-8000-000000000000"
        }),
        "grant-reconcile" => json!({"reconcile": true}),
        _ => json!({"hello": "world"}),
    }
}

async fn measure_function(
    args: &Args,
    function: &str,
    floor_median: Option<f64>,
) -> FunctionFigures {
    let binary = args.binaries.join(function);
    let env = function_env(function);
    let mut cold = Vec::new();
    let mut init = Vec::new();
    let mut first = Vec::new();
    let mut rss_cold: f64 = 0.0;
    let mut failed = 0;
    for _ in 0..args.starts {
        let (t, started, rss) =
            run_process(&binary, function, &env, vec![cold_event(function)]).await;
        rss_cold = rss_cold.max(rss);
        if t.init_error {
            failed += 1;
            continue;
        }
        match (t.first_next, t.answers.first()) {
            (Some(next), Some((answered, _))) => {
                init.push(ms(next - started));
                first.push(ms(*answered - next));
                cold.push(ms(*answered - started));
            }
            _ => failed += 1,
        }
    }
    let warm_n = if function == "grant-reconcile" {
        (args.warm / 20).max(1)
    } else {
        args.warm
    };
    let events = (0..warm_n).map(|_| cold_event(function)).collect();
    let (t, _, rss_warm) = run_process(&binary, function, &env, events).await;
    let warm: Vec<f64> = t.answers.windows(2).map(|w| ms(w[1].0 - w[0].0)).collect();
    let cold_start = stats(cold);
    let ratio = floor_median.map_or(1.0, |f| cold_start.median_ms / f.max(0.001));
    let zip = args.packages.join(function).join("bootstrap.zip");
    FunctionFigures {
        cold_start_ratio: ratio,
        // Set once the floor's init is known.
        init_ratio: 0.0,
        cold_start,
        init: stats(init),
        first_invocation: stats(first),
        failed_starts: failed,
        peak_rss_cold_mb: rss_cold,
        warm_invocations: t.answers.len(),
        warm: stats(warm),
        peak_rss_warm_mb: rss_warm,
        bootstrap_mb: std::fs::metadata(&binary)
            .ok()
            .map(|m| m.len() as f64 / 1e6),
        zip_mb: std::fs::metadata(&zip).ok().map(|m| m.len() as f64 / 1e6),
    }
}

/// Intake latency: `instances` processes, each taking approvals one at a time from its
/// own Runtime API, all at once; latency is from hand-out to answer.
async fn intake_latency(
    args: &Args,
    stack: &RunningStack,
    instances: usize,
    read_back: bool,
) -> Latency {
    let tables = stack
        .fresh_tables()
        .await
        .unwrap_or_else(|e| panic!("fresh tables: {e}"));
    let mut env = function_env("itsm-intake");
    for (k, v) in env.iter_mut() {
        if k == ticketbound_runtime::vars::GRANTS_TABLE {
            v.clone_from(&tables.grants);
        } else if k == ticketbound_runtime::vars::AUDIT_TABLE {
            v.clone_from(&tables.audit);
        }
    }
    if !read_back {
        use itsm_intake::config::{JIRA_API_URL, JIRA_READ_SECRET_ID, SENDER_ONLY};
        env.retain(|(k, _)| {
            ![JIRA_API_URL, JIRA_READ_SECRET_ID, SENDER_ONLY].contains(&k.as_str())
        });
        env.push((SENDER_ONLY.to_owned(), "jira,servicenow,generic".to_owned()));
    }
    let secret = stack.secret_value(&stack.local.webhook_secrets.jira).await;
    let per = args.requests.div_ceil(instances);
    let binary = args.binaries.join("itsm-intake");
    // Each approval a ticket the local Jira site holds (raised and approved before
    // the clock starts), since the intake reads every one back from the site.
    let desk = stack.jira_desk().await;
    let mut webhooks = Vec::new();
    for _ in 0..per * instances {
        let (_, webhook) = desk
            .approved(
                ticketbound_local::jira_desk::TEST_PROJECT,
                chrono::Utc::now(),
                chrono::Duration::hours(2),
                |_| {},
            )
            .await;
        webhooks.push(webhook);
    }
    let mut webhooks = webhooks.into_iter();
    let started = Instant::now();
    let runs = (0..instances).map(|_| {
        let events: Vec<Value> = webhooks
            .by_ref()
            .take(per)
            .map(|webhook| {
                let body = serde_json::to_string(&webhook).unwrap_or_default();
                let mut e = fixture_json("http/function-url-request.json");
                e["headers"]["x-hub-signature"] = json!(ticketbound_itsm::auth::hub_signature(
                    secret.as_bytes(),
                    body.as_bytes()
                ));
                e["headers"]["x-atlassian-webhook-identifier"] =
                    json!(ulid::Ulid::new().to_string());
                e["body"] = json!(body);
                e
            })
            .collect();
        let env = env.clone();
        let binary = binary.clone();
        async move {
            // Warm the instance first (its cold start is measured elsewhere).
            let mut all = vec![cold_event("itsm-intake")];
            all.extend(events);
            run_process(&binary, "itsm-intake", &env, all).await
        }
    });
    let results = futures::future::join_all(runs).await;
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    let mut accepted = 0;
    for (t, _, _) in &results {
        // Each event is handed out right after the previous answer: the time between
        // answers is the time of one event.
        for w in t.answers.windows(2) {
            latencies.push(ms(w[1].0 - w[0].0));
            if w[1].1 {
                accepted += 1;
            }
        }
    }
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Latency {
        instances,
        read_back,
        requests: latencies.len(),
        accepted,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        throughput_per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
    }
}

/// criterion's last mean estimate (µs) of one step of the intake (`verify`, `parse`,
/// `validate_and_policy`, or all of it: `verify_parse_policy`), if `cargo bench -p
/// itsm-intake --bench intake_pipeline` has run on this machine.
fn criterion_intake_us(step: &str) -> Option<f64> {
    let path = format!("target/criterion/intake/{step}/new/estimates.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64().map(|ns| ns / 1000.0)
}

fn verdict(over: &[&str]) -> String {
    if over.is_empty() {
        "ok".to_owned()
    } else {
        format!("over: {}", over.join(", "))
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let stack = RunningStack::get().await;
    let (functions, floor_median) = measure_functions(&args).await;
    let intake = measure_intake(&args, &stack).await;
    let lifecycle = measure_lifecycles(&args, &stack).await;
    let expiry = last_expiry_figures();

    print_function_table(&functions);
    print_intake_latency(&intake);
    let cpu = criterion_intake_us("verify_parse_policy");
    print_intake_cpu(cpu);
    if let Some(c) = &lifecycle {
        lifecycle::print(c);
    }
    print_expiry(expiry.as_ref());
    print_budgets(floor_median);

    write_report(&Report {
        at: chrono::Utc::now(),
        machine: format!(
            "{} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        starts: args.starts,
        functions,
        intake_latency: intake,
        intake_cpu_per_event_us: cpu,
        lifecycle,
        expiry,
        arm64: ARM64,
        budgets: json!({
            "cold_start_ratio": COLD_START_RATIO,
            "peak_rss_mb": RSS_BUDGET_MB,
            "zip_mb": ZIP_BUDGET_MB,
        }),
    });
}

/// Why there are no arm64 figures.
const ARM64: &str = "not built: this machine's toolchain has no aarch64 standard library and rustup cannot fetch one (only package registries are reachable); the zips above are x86_64";

/// Cold starts, warm invocations and package sizes of every function and of the floor,
/// each function's init compared with the floor's. Returns the figures by function
/// (the floor among them) and the floor's cold start median.
async fn measure_functions(args: &Args) -> (BTreeMap<String, FunctionFigures>, f64) {
    eprintln!(
        "bench: cold starts ({} each), warm invocations, package sizes…",
        args.starts
    );
    let floor = measure_function(args, FLOOR, None).await;
    let floor_median = floor.cold_start.median_ms;
    let mut functions = BTreeMap::new();
    for function in FUNCTIONS {
        eprintln!("bench: {function}");
        functions.insert(
            function.to_owned(),
            measure_function(args, function, Some(floor_median)).await,
        );
    }
    let floor_init = floor.init.median_ms.max(0.001);
    functions.insert(FLOOR.to_owned(), floor);
    for f in functions.values_mut() {
        f.init_ratio = f.init.median_ms / floor_init;
    }
    (functions, floor_median)
}

/// Intake latency at each level of concurrency asked for, then once more with one
/// instance and no read-back.
async fn measure_intake(args: &Args, stack: &RunningStack) -> Vec<Latency> {
    let mut intake = Vec::new();
    for &n in &args.senders {
        eprintln!("bench: intake latency with {n} instance(s)");
        intake.push(intake_latency(args, stack, n, true).await);
    }
    // The same approvals without the read-back, one instance: what reading each one
    // back from the (local) Jira costs.
    eprintln!("bench: intake latency with 1 instance, without the read-back");
    intake.push(intake_latency(args, stack, 1, false).await);
    intake
}

/// AWS calls per grant over whole lifecycles through the local host, unless skipped.
async fn measure_lifecycles(
    args: &Args,
    stack: &RunningStack,
) -> Option<lifecycle::LifecycleCosts> {
    if args.lifecycles == 0 {
        return None;
    }
    eprintln!(
        "bench: {} whole grant lifecycles through the local host, counting AWS calls",
        args.lifecycles
    );
    Some(lifecycle::measure(stack, args.lifecycles).await)
}

/// The expiry benchmark's last figures, if it has run.
fn last_expiry_figures() -> Option<Value> {
    std::fs::read("target/bench/expiry.json")
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Which budgets a function misses (the floor is the yardstick, not measured).
fn over_budget(f: &FunctionFigures, name: &str) -> Vec<&'static str> {
    if name == FLOOR {
        return Vec::new();
    }
    let mut over = Vec::new();
    if f.cold_start_ratio > COLD_START_RATIO {
        over.push("cold start");
    }
    if f.peak_rss_cold_mb.max(f.peak_rss_warm_mb) >= RSS_BUDGET_MB {
        over.push("RSS");
    }
    if f.zip_mb.is_some_and(|z| z >= ZIP_BUDGET_MB) {
        over.push("zip");
    }
    over
}

/// One line per function: its figures and the budgets it misses.
fn print_function_table(functions: &BTreeMap<String, FunctionFigures>) {
    println!();
    println!(
        "{:<17} {:>9} {:>8} {:>7} {:>8} {:>7} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7}",
        "function",
        "cold p50",
        "p95",
        "init",
        "1st inv",
        "×floor",
        "init×",
        "RSS cold",
        "RSS warm",
        "warm p50",
        "binary",
        "zip"
    );
    for (name, f) in functions {
        println!(
            "{:<17} {:>7.1}ms {:>6.1}ms {:>5.1}ms {:>6.1}ms {:>6.2}× {:>6.2}× {:>7.1}MB {:>7.1}MB {:>6.2}ms {:>6.2}MB {:>5.2}MB  {}",
            name,
            f.cold_start.median_ms,
            f.cold_start.p95_ms,
            f.init.median_ms,
            f.first_invocation.median_ms,
            f.cold_start_ratio,
            f.init_ratio,
            f.peak_rss_cold_mb,
            f.peak_rss_warm_mb,
            f.warm.median_ms,
            f.bootstrap_mb.unwrap_or(0.0),
            f.zip_mb.unwrap_or(0.0),
            verdict(&over_budget(f, name)),
        );
    }
}

/// The intake's latency at each level, and what the read-back adds.
fn print_intake_latency(intake: &[Latency]) {
    println!();
    println!(
        "intake latency (signed Jira approvals, each a new grant in DynamoDB; read back from the local Jira site unless said):"
    );
    for l in intake {
        println!(
            "  {:>2} instance(s){}: p50 {:>6.1} ms, p99 {:>6.1} ms, {:>6.1} approvals/s ({} of {} accepted)",
            l.instances,
            if l.read_back { "" } else { ", no read-back" },
            l.p50_ms,
            l.p99_ms,
            l.throughput_per_s,
            l.accepted,
            l.requests
        );
    }
    let one = |read_back: bool| {
        intake
            .iter()
            .find(|l| l.instances == 1 && l.read_back == read_back)
            .map(|l| l.p50_ms)
    };
    if let (Some(with), Some(without)) = (one(true), one(false)) {
        println!(
            "  the read-back adds {:.1} ms at p50 with one instance (3 GET to the local Jira site, plus one per approver outside the target's rule)",
            with - without
        );
    }
}

/// The intake's CPU per event as criterion last measured it (`cpu`, µs), by step.
fn print_intake_cpu(cpu: Option<f64>) {
    match cpu {
        Some(us) => {
            let step = |name| criterion_intake_us(name).unwrap_or(f64::NAN);
            println!(
                "intake CPU per event (criterion): {us:.1} µs for verify + parse + policy \
                 (verify {:.1} µs, parse {:.1} µs, validate + policy {:.1} µs)",
                step("verify"),
                step("parse"),
                step("validate_and_policy")
            )
        }
        None => println!(
            "intake CPU per event: not measured in this run (run `cargo bench -p itsm-intake --bench intake_pipeline`)"
        ),
    }
}

/// The expiry benchmark's last figures, or how to get them.
fn print_expiry(expiry: Option<&Value>) {
    match expiry {
        Some(e) => println!(
            "expiry throughput (target/bench/expiry.json, {}): {} grants revoked through stream batches at {:.1} grants/s",
            e["at"].as_str().unwrap_or("?"),
            e["revoked"],
            e["grants_per_second"].as_f64().unwrap_or(0.0)
        ),
        None => println!(
            "expiry throughput: not measured in this run (scripts/bench --expiry, or `cargo bench -p grant-expire --bench revoke_throughput`)"
        ),
    }
}

/// The arm64 note and the budgets each figure is held to.
fn print_budgets(floor_median: f64) {
    println!("arm64 packages: {ARM64}");
    println!(
        "budgets: cold start ≤ {COLD_START_RATIO}× the floor's median ({floor_median:.1} ms here), peak RSS < {RSS_BUDGET_MB} MB, zip < {ZIP_BUDGET_MB} MB"
    );
    println!(
        "  cold start = init (the function's start-up; init× compares it with the floor's) + the first event's own work, \
         which for most functions is real calls to the local stack (moto: 1–3 ms each) that the floor does not make"
    );
}

/// The figures as JSON in `target/bench/<time>.json` and `target/bench/latest.json`.
fn write_report(report: &Report) {
    let dir = PathBuf::from("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    let stamped = dir.join(format!("{}.json", report.at.format("%Y%m%dT%H%M%SZ")));
    for path in [stamped, dir.join("latest.json")] {
        if let Err(e) = std::fs::write(&path, &json) {
            eprintln!("could not write {}: {e}", path.display());
        }
    }
    println!("figures written to target/bench/latest.json");
}
