//! The Terraform module and the code must agree: a function crate without its Lambda,
//! a variable the code reads that its Lambda is not given (or one given that no code
//! reads), a table whose keys, indexes, stream or TTL attribute differ from
//! `shared/store/src/schema.rs`, or a policy statement with a wildcard action, each
//! fails here, naming what differs. So does a Lambda that links the local stack or the
//! testkit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use infra_check::{Module, blocks, bool_attr, literal_json, string_attr};
use ticketbound_store::schema::{self, AttrType, KeyAttr, StreamView, TableSchema};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn module() -> Module {
    Module::read(&repo().join("infra/modules/ticketbound")).unwrap_or_else(|e| panic!("{e}"))
}

/// Each function crate's configuration: the variables it lists (its
/// `config::VARIABLES`, what Terraform must give its Lambda) and what its `from_env`
/// asks for, run on an empty environment. A new function crate must be added here;
/// the first test says so.
type ReadVariables = fn() -> BTreeSet<String>;
fn function_configs() -> BTreeMap<&'static str, (&'static [&'static str], ReadVariables)> {
    use ticketbound_runtime::variables_read;
    BTreeMap::from([
        (
            "itsm-intake",
            (
                itsm_intake::config::VARIABLES,
                (|| variables_read(itsm_intake::config::IntakeConfig::from_env)) as ReadVariables,
            ),
        ),
        (
            "grant-provision",
            (grant_provision::config::VARIABLES, || {
                variables_read(grant_provision::config::ProvisionConfig::from_env)
            }),
        ),
        (
            "grant-expire",
            (grant_expire::config::VARIABLES, || {
                variables_read(grant_expire::config::ExpireConfig::from_env)
            }),
        ),
        (
            "grant-reconcile",
            (grant_reconcile::config::VARIABLES, || {
                variables_read(grant_reconcile::config::ReconcileConfig::from_env)
            }),
        ),
        (
            "secret-rotate",
            (secret_rotate::config::VARIABLES, || {
                variables_read(secret_rotate::config::RotateConfig::from_env)
            }),
        ),
        (
            "ticket-writeback",
            (ticket_writeback::config::VARIABLES, || {
                variables_read(ticket_writeback::config::WritebackConfig::from_env)
            }),
        ),
        (
            "log-checkpoint",
            (log_checkpoint::config::VARIABLES, || {
                variables_read(log_checkpoint::config::CheckpointConfig::from_env)
            }),
        ),
    ])
}

/// What each function crate reads from its environment (its `config::VARIABLES`).
fn variables_by_function() -> BTreeMap<&'static str, &'static [&'static str]> {
    function_configs()
        .into_iter()
        .map(|(function, (listed, _))| (function, listed))
        .collect()
}

/// Variables a function reads but the module deliberately leaves unset, and why.
const UNSET_ON_PURPOSE: &[(&str, &str, &str)] = &[(
    "itsm-intake",
    "TICKETBOUND_POLICY_DIR",
    "the policies are compiled in; an operator's directory is for packaged deployments",
)];

fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(repo().join("functions"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_function_crate_is_a_lambda_and_every_lambda_a_crate() {
    let module = module();
    let crates = function_crates();
    let lambdas = module.local_keys("functions").unwrap();
    let without_lambda: Vec<_> = crates.difference(&lambdas).collect();
    let without_crate: Vec<_> = lambdas.difference(&crates).collect();
    assert!(
        without_lambda.is_empty(),
        "function crates with no entry in local.functions (infra/modules/ticketbound/locals.tf): {without_lambda:?}"
    );
    assert!(
        without_crate.is_empty(),
        "local.functions entries with no crate under functions/: {without_crate:?}"
    );
    let known: BTreeSet<String> = variables_by_function()
        .keys()
        .map(|k| (*k).to_owned())
        .collect();
    assert_eq!(
        known, crates,
        "variables_by_function() in this test must list every function crate"
    );

    // One resource makes them all, as Lambda runs Rust: provided.al2023 on arm64.
    let lambda = module
        .resource("aws_lambda_function", "this")
        .expect("resource aws_lambda_function.this (for_each = local.functions)");
    assert_eq!(
        string_attr(lambda, "runtime").as_deref(),
        Some("provided.al2023")
    );
    assert_eq!(string_attr(lambda, "handler").as_deref(), Some("bootstrap"));
    let tracing = blocks(lambda, "tracing_config").next().expect("X-Ray");
    assert_eq!(string_attr(tracing, "mode").as_deref(), Some("Active"));
    assert!(blocks(lambda, "logging_config").next().is_some());
}

#[test]
fn each_lambda_is_given_exactly_the_variables_its_code_reads() {
    let given = module().local_key_sets("function_environment").unwrap();
    let mut problems = Vec::new();
    for (function, reads) in variables_by_function() {
        let set = given.get(function).cloned().unwrap_or_default();
        for variable in reads.iter().copied() {
            let unset_on_purpose = UNSET_ON_PURPOSE
                .iter()
                .any(|(f, v, _)| *f == function && *v == variable);
            if !set.contains(variable) && !unset_on_purpose {
                problems.push(format!(
                    "{function} reads {variable}, which its Lambda does not set"
                ));
            }
        }
        for variable in &set {
            if !reads.contains(&variable.as_str()) {
                problems.push(format!(
                    "{function}'s Lambda sets {variable}, which its code does not read"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

fn attr_type(kind: AttrType) -> &'static str {
    match kind {
        AttrType::String => "S",
        AttrType::Number => "N",
    }
}

fn check_table(module: &Module, table: &TableSchema) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(resource) = module.resource("aws_dynamodb_table", table.role) else {
        return vec![format!("no aws_dynamodb_table.{}", table.role)];
    };
    let mut expect = |what: &str, found: Option<String>, wanted: Option<&str>| {
        if found.as_deref() != wanted {
            problems.push(format!(
                "{}: {what} is {found:?} in Terraform, {wanted:?} in schema.rs",
                table.role
            ));
        }
    };
    expect(
        "hash_key",
        string_attr(resource, "hash_key"),
        Some(table.partition_key.name),
    );
    expect(
        "range_key",
        string_attr(resource, "range_key"),
        table.sort_key.map(|k| k.name),
    );

    // Attributes: exactly the key attributes of the table and its indexes.
    let mut keys: Vec<KeyAttr> = vec![table.partition_key];
    keys.extend(table.sort_key);
    for index in table.indexes {
        keys.push(index.partition_key);
        keys.extend(index.sort_key);
    }
    let wanted: BTreeSet<(String, String)> = keys
        .iter()
        .map(|k| (k.name.to_owned(), attr_type(k.kind).to_owned()))
        .collect();
    let declared: BTreeSet<(String, String)> = blocks(resource, "attribute")
        .map(|a| {
            (
                string_attr(a, "name").unwrap_or_default(),
                string_attr(a, "type").unwrap_or_default(),
            )
        })
        .collect();
    expect(
        "attributes",
        Some(format!("{declared:?}")),
        Some(&format!("{wanted:?}")),
    );

    // Indexes: same names, keys and an ALL projection (the code reads whole grants).
    let wanted: BTreeSet<(String, String, String, String)> = table
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.to_owned(),
                i.partition_key.name.to_owned(),
                i.sort_key.map(|k| k.name.to_owned()).unwrap_or_default(),
                "ALL".to_owned(),
            )
        })
        .collect();
    let declared: BTreeSet<(String, String, String, String)> =
        blocks(resource, "global_secondary_index")
            .map(|g| {
                (
                    string_attr(g, "name").unwrap_or_default(),
                    string_attr(g, "hash_key").unwrap_or_default(),
                    string_attr(g, "range_key").unwrap_or_default(),
                    string_attr(g, "projection_type").unwrap_or_default(),
                )
            })
            .collect();
    expect(
        "global secondary indexes",
        Some(format!("{declared:?}")),
        Some(&format!("{wanted:?}")),
    );

    let ttl = blocks(resource, "ttl").next();
    let ttl_attribute = ttl
        .filter(|t| bool_attr(t, "enabled") == Some(true))
        .and_then(|t| string_attr(t, "attribute_name"));
    expect("the TTL attribute", ttl_attribute, table.ttl_attribute);

    let view = match table.stream {
        Some(StreamView::NewImage) => Some("NEW_IMAGE"),
        Some(StreamView::NewAndOldImages) => Some("NEW_AND_OLD_IMAGES"),
        None => None,
    };
    let streamed = bool_attr(resource, "stream_enabled") == Some(true);
    expect(
        "the stream view",
        string_attr(resource, "stream_view_type").filter(|_| streamed),
        view,
    );
    problems
}

#[test]
fn the_tables_are_keyed_indexed_streamed_and_expired_as_the_code_defines_them() {
    let module = module();
    let problems: Vec<String> = schema::ALL
        .iter()
        .flat_map(|t| check_table(&module, t))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_table_check_notices_a_difference() {
    // The same check against a table that has drifted from the schema.
    let drifted = Module::from_text(
        r#"
resource "aws_dynamodb_table" "audit" {
  hash_key         = "grant_id"
  range_key        = "sequence"
  stream_enabled   = true
  stream_view_type = "KEYS_ONLY"
  attribute {
    name = "grant_id"
    type = "S"
  }
  attribute {
    name = "sequence"
    type = "N"
  }
}
"#,
    )
    .unwrap();
    let problems = check_table(&drifted, &schema::AUDIT);
    assert!(
        problems.iter().any(|p| p.contains("range_key")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("stream view")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("attributes")),
        "{problems:#?}"
    );
}

#[test]
fn no_policy_statement_grants_a_wildcard_action() {
    let found = module().wildcard_actions();
    assert!(
        found.is_empty(),
        "actions with a wildcard (name each action instead): {found:#?}"
    );
}

/// The event source mappings' filter criteria (`local.stream_consumers` and
/// `local.audit_stream_consumers`) are the ones the functions declare and the local
/// host applies (`STREAM_FILTERS`): a pattern changed on one side only would let the
/// local stack invoke a function for records AWS never gives it, or the reverse.
#[test]
fn stream_filters_are_the_functions_own() {
    let module = module();
    let declared = BTreeMap::from([
        ("grant-provision", grant_provision::config::STREAM_FILTERS),
        ("grant-expire", grant_expire::config::STREAM_FILTERS),
        ("ticket-writeback", ticket_writeback::config::STREAM_FILTERS),
        ("log-checkpoint", log_checkpoint::config::STREAM_FILTERS),
    ]);
    let mut in_terraform = BTreeMap::new();
    for local in ["stream_consumers", "audit_stream_consumers"] {
        let value = literal_json(module.local(local).unwrap())
            .unwrap_or_else(|| panic!("local.{local} is not a literal"));
        for (function, patterns) in value.as_object().expect("an object literal") {
            in_terraform.insert(function.clone(), patterns.clone());
        }
    }
    let functions: BTreeSet<String> = declared.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(
        in_terraform.keys().cloned().collect::<BTreeSet<_>>(),
        functions,
        "stream consumers in Terraform and functions declaring STREAM_FILTERS differ"
    );
    for (function, text) in declared {
        let code: serde_json::Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{function}'s STREAM_FILTERS is not JSON: {e}"));
        assert_eq!(
            in_terraform[function], code,
            "{function}: the filter criteria in infra/modules/ticketbound/locals.tf differ from its STREAM_FILTERS"
        );
    }
}

/// What each function crate declares it calls (its `config::AWS_OPERATIONS`).
fn operations_by_function() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("itsm-intake", itsm_intake::config::AWS_OPERATIONS),
        ("grant-provision", grant_provision::config::AWS_OPERATIONS),
        ("grant-expire", grant_expire::config::AWS_OPERATIONS),
        ("grant-reconcile", grant_reconcile::config::AWS_OPERATIONS),
        ("secret-rotate", secret_rotate::config::AWS_OPERATIONS),
        ("ticket-writeback", ticket_writeback::config::AWS_OPERATIONS),
        ("log-checkpoint", log_checkpoint::config::AWS_OPERATIONS),
    ])
}

/// Calls whose IAM action has another name.
const IAM_ACTION_OF: &[(&str, &str)] = &[("s3:ListObjectsV2", "s3:ListBucket")];

/// Calls whose permission is not an action of its own.
const NOT_AN_ACTION: &[(&str, &str)] = &[(
    "dynamodb:TransactWriteItems",
    "authorised per item (PutItem, DeleteItem, ConditionCheckItem, UpdateItem), not as an action",
)];

/// Every AWS operation a function declares (and its tests see it call: the test
/// harnesses count at the SDK's HTTP client) is allowed to its role in Terraform, and
/// each is really called somewhere in the code the function links (a scan of the
/// SDK clients' fluent calls in its crate and every workspace crate it depends on:
/// an over-approximation, so it can only prove a declared call exists, not that it
/// runs). moto enforces no IAM here: this check is what stands between a missing
/// permission and a function that fails in AWS alone, as the rotation role's missing
/// `ListSecretVersionIds` (createSecret retried) and grant-expire's `UpdateItem`
/// (the retry record) would have.
#[test]
fn every_aws_operation_a_function_calls_is_allowed_to_its_role() {
    let workspace = infra_check::sdk::Workspace::read(&repo()).unwrap_or_else(|e| panic!("{e}"));
    let allowed = module().allowed_actions("function_statements").unwrap();
    let declared = operations_by_function();
    assert_eq!(
        declared
            .keys()
            .map(|k| (*k).to_owned())
            .collect::<BTreeSet<_>>(),
        function_crates()
            .into_iter()
            .filter(|f| f != "hello-lambda")
            .collect::<BTreeSet<_>>(),
        "every function declares its AWS operations"
    );
    let mut problems = Vec::new();
    for (function, operations) in declared {
        let linked = workspace.calls_of_function(function).unwrap();
        let granted = allowed.get(function).cloned().unwrap_or_default();
        for op in operations {
            if !linked.contains(*op) {
                problems.push(format!(
                    "{function} declares {op}, which no code it links calls"
                ));
            }
            let action = IAM_ACTION_OF
                .iter()
                .find(|(call, _)| call == op)
                .map_or(*op, |(_, action)| *action);
            if !NOT_AN_ACTION.iter().any(|(a, _)| a == op) && !granted.contains(action) {
                problems.push(format!(
                    "{function} calls {op}, which its role is not allowed"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The scan finds what is there: the rotation code's ListSecretVersionIds, the
/// write-back's claim PutItem, and no schedule of the write-back's.
#[test]
fn the_operation_scan_sees_real_calls() {
    let workspace = infra_check::sdk::Workspace::read(&repo()).unwrap_or_else(|e| panic!("{e}"));
    let rotate = workspace.calls_of_function("secret-rotate").unwrap();
    assert!(
        rotate.contains("secretsmanager:ListSecretVersionIds"),
        "{rotate:?}"
    );
    assert!(rotate.contains("secretsmanager:UpdateSecretVersionStage"));
    let writeback = workspace.calls_of_function("ticket-writeback").unwrap();
    assert!(writeback.contains("dynamodb:PutItem"), "{writeback:?}");
    assert!(
        !writeback.contains("scheduler:CreateSchedule"),
        "{writeback:?}"
    );
    let checkpointer = workspace.calls_of_function("log-checkpoint").unwrap();
    assert!(checkpointer.contains("kms:Sign"), "{checkpointer:?}");
    assert!(checkpointer.contains("s3:PutObject"), "{checkpointer:?}");
    assert!(!writeback.contains("kms:Sign"), "{writeback:?}");
}

/// A target that `cargo test` skips (`test = false`: the functions' `main.rs`, the
/// benchmark harnesses) holds no test, so that skipping it cannot silently drop one.
/// The skips keep the test build from linking a test harness of each binary, about
/// 50 MB apiece that tested nothing.
#[test]
fn no_test_is_written_where_cargo_test_skips_it() {
    let workspace = infra_check::sdk::Workspace::read(&repo()).unwrap_or_else(|e| panic!("{e}"));
    let skipped = workspace
        .untested_targets()
        .unwrap_or_else(|e| panic!("{e}"));
    let names: BTreeSet<&str> = skipped.iter().map(|(_, t, _)| t.as_str()).collect();
    for function in function_crates() {
        assert!(
            names.contains(function.as_str()),
            "{function}'s binary is tested by `cargo test` (or not found): {names:?}"
        );
    }
    let mut problems = Vec::new();
    for (krate, target, files) in &skipped {
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            for marker in ["#[test]", "#[tokio::test", "#[cfg(test)]"] {
                if text.contains(marker) {
                    problems.push(format!(
                        "{krate}'s target {target} has `test = false`, but {} holds {marker}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// No Lambda links the local stack or the testkit: for every package under
/// `functions/`, the closure of its normal dependencies (not dev, not build; for the
/// host platform, from `cargo metadata`) holds neither `ticketbound-local` nor
/// `ticketbound-testkit`. The local stack links no function (the functions' tests take
/// it as a dev-dependency), and the CLI and the benchmarks have the testkit as a
/// dev-dependency at most.
#[test]
fn no_lambda_links_the_local_stack_or_the_testkit() {
    const LOCAL: &str = "ticketbound-local";
    const TESTKIT: &str = "ticketbound-testkit";
    let workspace = infra_check::sdk::Workspace::read(&repo()).unwrap_or_else(|e| panic!("{e}"));
    let functions = workspace.crates_under(&repo().join("functions"));
    assert_eq!(
        functions,
        function_crates(),
        "cargo metadata and functions/ disagree on the function crates"
    );
    let mut problems = Vec::new();
    for function in &functions {
        let linked = workspace.linked(function);
        for forbidden in [LOCAL, TESTKIT] {
            if linked.contains(forbidden) {
                problems.push(format!(
                    "{function} links {forbidden} (through its [dependencies]; a test may take it as a dev-dependency)"
                ));
            }
        }
    }
    let local = workspace.linked(LOCAL);
    for function in functions.intersection(&local) {
        problems.push(format!("{LOCAL} links the function {function}"));
    }
    for tool in ["ticketbound", "bench"] {
        assert!(
            !workspace.linked(tool).is_empty(),
            "no workspace crate named {tool}"
        );
        if workspace.depends_on(tool, TESTKIT) {
            problems.push(format!(
                "{tool} has {TESTKIT} in [dependencies]; only a dev-dependency may name it"
            ));
        }
    }
    assert!(
        workspace.dev_depends_on("ticketbound", TESTKIT),
        "the CLI's tests use {TESTKIT} as a dev-dependency"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The functions in the order of a grant's life, as the configuration reference lists
/// its readers.
const LIFECYCLE_ORDER: &[&str] = &[
    "itsm-intake",
    "grant-provision",
    "grant-expire",
    "secret-rotate",
    "ticket-writeback",
    "grant-reconcile",
    "log-checkpoint",
];

/// A function's `config::VARIABLES` (what Terraform gives its Lambda, by the tests
/// above) is exactly what its configuration code reads: a variable read but not
/// listed would never be set in AWS (its default would silently hold), one listed but
/// not read is configuration that does nothing.
#[test]
fn each_function_lists_exactly_the_variables_its_code_reads() {
    let configs = function_configs();
    assert_eq!(
        LIFECYCLE_ORDER.iter().copied().collect::<BTreeSet<_>>(),
        configs.keys().copied().collect::<BTreeSet<_>>()
    );
    let mut problems = Vec::new();
    for (function, (names, read_variables)) in &configs {
        let names: BTreeSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let read = read_variables();
        for unlisted in read.difference(&names) {
            problems.push(format!(
                "{function} reads {unlisted}, which its config::VARIABLES does not list"
            ));
        }
        for unread in names.difference(&read) {
            problems.push(format!(
                "{function} lists {unread} in config::VARIABLES, but its from_env never reads it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One table of the configuration reference, generated from the registry.
fn reference_table(
    rows: &[ticketbound_runtime::vars::Variable],
    readers_of: impl Fn(&str) -> Vec<String>,
) -> String {
    let mut table =
        String::from("| variable | read by | meaning, default |\n| --- | --- | --- |\n");
    for row in rows {
        let mut readers = readers_of(row.name);
        readers.extend(row.also_read_by.iter().map(|r| (*r).to_owned()));
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            row.name,
            readers.join(", "),
            row.meaning
        ));
    }
    table
}

/// `docs/configuration.md` with its two tables as the registry
/// (`shared/runtime/src/vars.rs`) and the functions' `config::VARIABLES` make them.
fn configuration_reference(current: &str) -> Result<String, String> {
    use ticketbound_runtime::vars;
    let listed = variables_by_function();
    let readers_of = |name: &str| -> Vec<String> {
        LIFECYCLE_ORDER
            .iter()
            .filter(|f| listed[*f].contains(&name))
            .map(|f| (*f).to_owned())
            .collect()
    };
    let mut text = current.to_owned();
    for (marker, table) in [
        ("functions", reference_table(vars::FUNCTIONS, readers_of)),
        ("local", reference_table(vars::LOCAL, |_| Vec::new())),
    ] {
        let begin = format!("<!-- generated: {marker} -->\n");
        let end = format!("<!-- end: {marker} -->");
        let (Some(from), Some(to)) = (text.find(&begin), text.find(&end)) else {
            return Err(format!(
                "docs/configuration.md has no {begin:?} … {end:?} block"
            ));
        };
        text.replace_range(from + begin.len()..to, &table);
    }
    Ok(text)
}

/// The configuration reference is generated from the registry, in which every
/// variable is defined once: a variable without a meaning, a row of the docs for a
/// variable nothing reads, or readers that drift from `config::VARIABLES`, each
/// fails here. `BLESS=1` rewrites the docs from the registry.
#[test]
fn the_configuration_reference_is_the_registry() {
    use ticketbound_runtime::vars;
    let path = repo().join("docs/configuration.md");
    let current = std::fs::read_to_string(&path).unwrap();
    let expected = configuration_reference(&current).unwrap_or_else(|e| panic!("{e}"));
    let blessed = std::env::var_os("BLESS").is_some();
    if blessed && current != expected {
        std::fs::write(&path, &expected).unwrap();
    }
    assert!(
        blessed || current == expected,
        "docs/configuration.md is not what shared/runtime/src/vars.rs and the functions' \
         config::VARIABLES make; run `BLESS=1 cargo test -p infra-check --test \
         integration the_configuration_reference` and review the diff"
    );

    // Every registered variable has a reader, and a function variable is read by a
    // function (a local one by none).
    let listed = variables_by_function();
    let read_by_functions: BTreeSet<&str> =
        listed.values().flat_map(|v| v.iter().copied()).collect();
    let mut problems = Vec::new();
    for row in vars::FUNCTIONS {
        if !read_by_functions.contains(row.name) {
            problems.push(format!(
                "{} is a function variable no function reads",
                row.name
            ));
        }
    }
    for row in vars::LOCAL {
        if read_by_functions.contains(row.name) {
            problems.push(format!(
                "{} is read by a function but registered as local",
                row.name
            ));
        }
        if row.also_read_by.is_empty() {
            problems.push(format!("{} names no reader", row.name));
        }
    }
    for name in &read_by_functions {
        if !vars::FUNCTIONS.iter().any(|row| row.name == *name) {
            problems.push(format!(
                "{name} is read by a function but not in vars::FUNCTIONS"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The files that may name a variable, and whether a string literal of a name is
/// allowed in them (only the registry and the tests spell one out).
fn files_naming_variables() -> Vec<(PathBuf, bool)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(
                    name.as_str(),
                    "target" | ".terraform" | "node_modules" | ".git"
                ) {
                    walk(&path, out);
                }
            } else {
                out.push(path);
            }
        }
    }
    let repo = repo();
    let mut files = Vec::new();
    for dir in [
        "shared",
        "functions",
        "cli",
        "local",
        "bench",
        "scripts",
        ".ci",
        "infra",
        "docs",
    ] {
        walk(&repo.join(dir), &mut files);
    }
    for top in ["README.md", "CONTRIBUTING.md"] {
        files.push(repo.join(top));
    }
    let registry = repo.join("shared/runtime/src/vars.rs");
    files
        .into_iter()
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
            matches!(
                ext,
                "rs" | "md" | "tf" | "tftest.hcl" | "hcl" | "json" | "sh" | "py"
            ) || p
                .parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d == "scripts" || d == ".ci")
        })
        .map(|p| {
            let in_src = p.components().any(|c| c.as_os_str() == "src");
            let literal_allowed = p == registry || !in_src;
            (p, literal_allowed)
        })
        .collect()
}

/// Every `TICKETBOUND_*` name the code, the scripts, Terraform and the docs mention is
/// a registered one (a typo or a stale name in a message or a page fails here), and
/// code names a variable through its constant in `ticketbound_runtime::vars`, never a
/// string literal of its own (tests and their `#[cfg(test)]` modules may: their
/// samples are not configuration).
#[test]
fn variables_are_named_through_the_registry() {
    use ticketbound_runtime::vars;
    let registered: BTreeSet<&str> = vars::FUNCTIONS
        .iter()
        .chain(vars::LOCAL)
        .map(|row| row.name)
        .collect();
    let mut problems = Vec::new();
    for (path, literal_allowed) in files_naming_variables() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let shown = path
            .strip_prefix(repo())
            .unwrap_or(&path)
            .display()
            .to_string();
        let is_rust = path.extension().is_some_and(|e| e == "rs");
        // A Rust file's tests may use sample names; only what comes before them counts.
        let text = if is_rust && !literal_allowed {
            text.split("#[cfg(test)]").next().unwrap_or_default()
        } else if is_rust && (shown.contains("/tests/") || shown.contains("/benches/")) {
            continue;
        } else {
            text.as_str()
        };
        for (at, _) in text.match_indices(vars::PREFIX) {
            let rest = &text[at + vars::PREFIX.len()..];
            let tail: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let tail = tail.trim_end_matches('_');
            let line = text[..at].lines().count().max(1);
            if !tail.is_empty() {
                let name = format!("{}{tail}", vars::PREFIX);
                if !registered.contains(name.as_str()) {
                    problems.push(format!(
                        "{shown}:{line}: {name} is not a registered variable"
                    ));
                }
            }
            if !literal_allowed && text[..at].ends_with('"') {
                problems.push(format!(
                    "{shown}:{line}: a string literal spells out a variable's name; use its constant in ticketbound_runtime::vars"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
