//! Reads a Terraform module with hcl-rs and answers what the code needs to compare
//! itself against: which Lambda functions it declares, which environment variables
//! each is given, how its DynamoDB tables are keyed, indexed, streamed and expired,
//! and which policy statements name an action with a wildcard.
//!
//! Terraform is not evaluated (no variables, no provider); the module is written so
//! that what matters here is literal: function names are the keys of
//! `local.functions`, environments the object keys under `local.function_environment`
//! (wherever they sit inside `merge(…)` or a conditional), tables literal blocks.
//! This crate knows nothing of ticketbound's code; its tests bring both together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::expr::{Expression, ObjectKey, Operation, TraversalOperator};
use hcl::{Block, Body};

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid HCL")]
    Parse {
        path: PathBuf,
        #[source]
        source: hcl::Error,
    },
    #[error("the module has no local value {0:?}")]
    NoLocal(&'static str),
    #[error("local.{0} is not an object literal")]
    NotAnObject(&'static str),
}

/// Every `.tf` file of one module, parsed.
#[derive(Debug, Clone)]
pub struct Module {
    pub files: Vec<(PathBuf, Body)>,
}

impl Module {
    /// Parses every `*.tf` file directly in `dir`.
    pub fn read(dir: &Path) -> Result<Self, InfraError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| InfraError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| InfraError::Read {
                path: dir.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "tf"))
            .collect();
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let body = hcl::parse(&read(&path)?).map_err(|source| InfraError::Parse {
                path: path.clone(),
                source,
            })?;
            files.push((path, body));
        }
        Ok(Self { files })
    }

    /// A module from HCL text, for tests of the checks themselves.
    pub fn from_text(text: &str) -> Result<Self, InfraError> {
        let path = PathBuf::from("inline.tf");
        let body = hcl::parse(text).map_err(|source| InfraError::Parse {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            files: vec![(path, body)],
        })
    }

    fn top_blocks(&self) -> impl Iterator<Item = &Block> {
        self.files.iter().flat_map(|(_, body)| body.blocks())
    }

    /// The expression of `local.<name>`.
    pub fn local(&self, name: &'static str) -> Result<&Expression, InfraError> {
        self.top_blocks()
            .filter(|b| b.identifier() == "locals")
            .flat_map(|b| b.body().attributes())
            .find(|a| a.key() == name)
            .map(|a| a.expr())
            .ok_or(InfraError::NoLocal(name))
    }

    fn local_by_name(&self, name: &str) -> Option<&Expression> {
        self.top_blocks()
            .filter(|b| b.identifier() == "locals")
            .flat_map(|b| b.body().attributes())
            .find(|a| a.key() == name)
            .map(|a| a.expr())
    }

    /// The keys of the object literal `local.<name>`.
    pub fn local_keys(&self, name: &'static str) -> Result<BTreeSet<String>, InfraError> {
        match self.local(name)? {
            Expression::Object(object) => Ok(object.keys().filter_map(key_text).collect()),
            _ => Err(InfraError::NotAnObject(name)),
        }
    }

    /// For each key of the object literal `local.<name>`, every object key written
    /// anywhere in its value (the variables of an environment built with `merge`).
    pub fn local_key_sets(
        &self,
        name: &'static str,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, InfraError> {
        let Expression::Object(object) = self.local(name)? else {
            return Err(InfraError::NotAnObject(name));
        };
        Ok(object
            .iter()
            .filter_map(|(k, v)| {
                let mut keys = BTreeSet::new();
                walk(v, &mut |key, _| {
                    keys.insert(key.to_owned());
                });
                key_text(k).map(|k| (k, keys))
            })
            .collect())
    }

    /// For each key of the object literal `local.<name>` (a list of policy
    /// statements per function), every action its `Allow` statements name.
    pub fn allowed_actions(
        &self,
        name: &'static str,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, InfraError> {
        let Expression::Object(object) = self.local(name)? else {
            return Err(InfraError::NotAnObject(name));
        };
        let mut out = BTreeMap::new();
        for (k, v) in object.iter() {
            let Some(function) = key_text(k) else {
                continue;
            };
            let mut actions = BTreeSet::new();
            allow_statements(v, &|name| self.local_by_name(name), &mut actions, 0);
            out.insert(function, actions);
        }
        Ok(out)
    }

    /// `resource "<kind>" "<name>"`.
    pub fn resource(&self, kind: &str, name: &str) -> Option<&Block> {
        self.top_blocks().find(|b| {
            b.identifier() == "resource"
                && b.labels().len() == 2
                && b.labels()[0].as_str() == kind
                && b.labels()[1].as_str() == name
        })
    }

    /// Every action, in a policy statement anywhere in the module, that holds a `*`:
    /// `Action`/`NotAction` keys of `jsonencode`d documents and `actions` attributes
    /// of `aws_iam_policy_document` statements. Each with the file it is in.
    pub fn wildcard_actions(&self) -> Vec<(PathBuf, String)> {
        let mut found = Vec::new();
        for (path, body) in &self.files {
            let mut note = |value: &Expression| {
                for action in strings(value) {
                    if action.contains('*') {
                        found.push((path.clone(), action));
                    }
                }
            };
            visit_body(body, &mut |key, value| {
                if matches!(key, "Action" | "NotAction" | "actions" | "not_actions") {
                    note(value);
                }
            });
        }
        found
    }
}

/// A block's attribute as a string literal.
pub fn string_attr(block: &Block, key: &str) -> Option<String> {
    block
        .body()
        .attributes()
        .find(|a| a.key() == key)
        .and_then(|a| match a.expr() {
            Expression::String(s) => Some(s.clone()),
            _ => None,
        })
}

/// A block's attribute as a boolean literal.
pub fn bool_attr(block: &Block, key: &str) -> Option<bool> {
    block
        .body()
        .attributes()
        .find(|a| a.key() == key)
        .and_then(|a| match a.expr() {
            Expression::Bool(b) => Some(*b),
            _ => None,
        })
}

/// The nested blocks of `block` named `name`.
pub fn blocks<'a>(block: &'a Block, name: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    block
        .body()
        .blocks()
        .filter(move |b| b.identifier() == name)
}

fn key_text(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Identifier(id) => Some(id.to_string()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A literal expression (objects, arrays, strings, numbers, booleans, null) as JSON;
/// `None` if any part of it is computed (a reference, a call, a template).
pub fn literal_json(expr: &Expression) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match expr {
        Expression::Null => Value::Null,
        Expression::Bool(b) => Value::Bool(*b),
        Expression::Number(n) => serde_json::to_value(n).ok()?,
        Expression::String(s) => Value::String(s.clone()),
        Expression::Array(items) => {
            Value::Array(items.iter().map(literal_json).collect::<Option<_>>()?)
        }
        Expression::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| Some((key_text(k)?, literal_json(v)?)))
                .collect::<Option<_>>()?,
        ),
        Expression::Parenthesis(inner) => literal_json(inner)?,
        _ => return None,
    })
}

/// Every action of every `Allow` statement in `expr`, through `concat`, conditionals
/// (both branches), arrays and `local.<name>` references (resolved by `local`).
fn allow_statements<'a>(
    expr: &'a Expression,
    local: &dyn Fn(&str) -> Option<&'a Expression>,
    actions: &mut BTreeSet<String>,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    let mut go = |e: &'a Expression| allow_statements(e, local, actions, depth + 1);
    match expr {
        Expression::Object(st) => {
            let field = |name: &str| {
                st.iter()
                    .find(|(k, _)| key_text(k).as_deref() == Some(name))
                    .map(|(_, v)| v)
            };
            if let Some(effect) = field("Effect") {
                if matches!(effect, Expression::String(s) if s == "Allow")
                    && let Some(action) = field("Action")
                {
                    actions.extend(strings(action));
                }
            } else {
                st.iter().for_each(|(_, v)| go(v));
            }
        }
        Expression::Array(items) => items.iter().for_each(go),
        Expression::FuncCall(call) => call.args.iter().for_each(go),
        Expression::Parenthesis(inner) => go(inner),
        Expression::Conditional(c) => {
            go(&c.true_expr);
            go(&c.false_expr);
        }
        Expression::Traversal(t) => {
            if let (Expression::Variable(root), Some(TraversalOperator::GetAttr(name))) =
                (&t.expr, t.operators.first())
                && root.as_str() == "local"
                && let Some(value) = local(name.as_str())
            {
                go(value);
            }
        }
        _ => {}
    }
}

/// The string literals an expression holds (a string, or an array of them).
fn strings(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::String(s) => vec![s.clone()],
        Expression::Array(items) => items.iter().flat_map(strings).collect(),
        Expression::Parenthesis(inner) => strings(inner),
        _ => Vec::new(),
    }
}

fn visit_body(body: &Body, f: &mut dyn FnMut(&str, &Expression)) {
    for attribute in body.attributes() {
        f(attribute.key(), attribute.expr());
        walk(attribute.expr(), f);
    }
    for block in body.blocks() {
        visit_body(block.body(), f);
    }
}

/// Calls `f` with every (key, value) of every object literal inside `expr`.
fn walk(expr: &Expression, f: &mut dyn FnMut(&str, &Expression)) {
    match expr {
        Expression::Object(object) => {
            for (key, value) in object.iter() {
                if let Some(k) = key_text(key) {
                    f(&k, value);
                }
                walk(value, f);
            }
        }
        Expression::Array(items) => items.iter().for_each(|e| walk(e, f)),
        Expression::FuncCall(call) => call.args.iter().for_each(|e| walk(e, f)),
        Expression::Parenthesis(inner) => walk(inner, f),
        Expression::Conditional(c) => {
            walk(&c.cond_expr, f);
            walk(&c.true_expr, f);
            walk(&c.false_expr, f);
        }
        Expression::ForExpr(for_expr) => {
            walk(&for_expr.collection_expr, f);
            if let Some(key) = &for_expr.key_expr {
                walk(key, f);
            }
            walk(&for_expr.value_expr, f);
        }
        Expression::Traversal(traversal) => {
            walk(&traversal.expr, f);
            for op in &traversal.operators {
                if let TraversalOperator::Index(index) = op {
                    walk(index, f);
                }
            }
        }
        Expression::Operation(op) => match op.as_ref() {
            Operation::Unary(u) => walk(&u.expr, f),
            Operation::Binary(b) => {
                walk(&b.lhs_expr, f);
                walk(&b.rhs_expr, f);
            }
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
locals {
  functions = {
    "one" = { vpc = false }
    "two" = { vpc = true }
  }
  function_environment = {
    "one" = merge(
      { A = "1", B = var.b },
      var.c == null ? {} : { C = var.c },
    )
    "two" = { D = local.d }
  }
}

resource "aws_iam_role_policy" "p" {
  policy = jsonencode({
    Statement = [
      { Effect = "Allow", Action = ["dynamodb:GetItem", "s3:Get*"], Resource = "*" },
      { Effect = "Allow", Action = "kms:*", Resource = "*" },
    ]
  })
}

data "aws_iam_policy_document" "d" {
  statement {
    actions   = ["*"]
    resources = ["*"]
  }
}
"#;

    #[test]
    fn environments_are_read_through_merge_and_conditionals() {
        let m = Module::from_text(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
        let functions = m.local_keys("functions").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(functions, ["one", "two"].map(String::from).into());
        let env = m
            .local_key_sets("function_environment")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(env["one"], ["A", "B", "C"].map(String::from).into());
        assert_eq!(env["two"], ["D"].map(String::from).into());
    }

    #[test]
    fn every_wildcard_action_is_found_and_nothing_else() {
        let m = Module::from_text(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
        let found: Vec<String> = m.wildcard_actions().into_iter().map(|(_, a)| a).collect();
        assert_eq!(found, ["s3:Get*", "kms:*", "*"].map(String::from));
    }
}

/// The AWS SDK operations code can call: found in the source of the workspace crates
/// a function links, as the fluent calls `.<operation>()` of the SDK clients their
/// crate depends on, with each service's operations read from its SDK crate
/// (`src/operation/<name>`). A static over-approximation (a call in a branch that
/// never runs counts), which is what a permission must cover.
pub mod sdk {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// The IAM prefix of each SDK crate the functions use.
    pub const SERVICES: &[(&str, &str)] = &[
        ("aws-sdk-dynamodb", "dynamodb"),
        ("aws-sdk-secretsmanager", "secretsmanager"),
        ("aws-sdk-scheduler", "scheduler"),
        ("aws-sdk-kms", "kms"),
        ("aws-sdk-s3", "s3"),
    ];

    #[derive(Debug)]
    pub struct Workspace {
        /// Workspace crate → (its directory, its normal dependencies).
        crates: BTreeMap<String, (PathBuf, BTreeSet<String>)>,
        /// Workspace crate → its dev-dependencies.
        dev_dependencies: BTreeMap<String, BTreeSet<String>>,
        /// SDK crate → its operations, snake case.
        operations: BTreeMap<String, BTreeSet<String>>,
        /// The workspace's targets that `cargo test` skips (`test = false`):
        /// (crate, target, root source file).
        untested_targets: Vec<(String, String, PathBuf)>,
    }

    /// `file` and the module files its `mod name;` items declare, recursively (the
    /// `name.rs` or `name/mod.rs` beside a crate root or a `mod.rs`, under `stem/`
    /// beside any other file), as rustc resolves them.
    fn module_files(file: &Path, is_root: bool, out: &mut Vec<PathBuf>) -> Result<(), String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        out.push(file.to_path_buf());
        let dir = file.parent().unwrap_or(Path::new("."));
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let base = if is_root || stem == "mod" {
            dir.to_path_buf()
        } else {
            dir.join(stem)
        };
        // `#[path = "…"]` on the line before a `mod` names its file outright.
        let mut path_attribute: Option<PathBuf> = None;
        for line in text.lines().map(str::trim) {
            if let Some(path) = line
                .strip_prefix("#[path = \"")
                .and_then(|p| p.strip_suffix("\"]"))
            {
                path_attribute = Some(dir.join(path));
                continue;
            }
            let named = path_attribute.take();
            let Some(rest) = line
                .strip_prefix("mod ")
                .or_else(|| line.strip_prefix("pub mod "))
            else {
                continue;
            };
            // An inline module (`mod x {`) is in this file's text already.
            let Some(name) = rest.strip_suffix(';') else {
                continue;
            };
            let flat = base.join(format!("{name}.rs"));
            let found = if let Some(named) = named {
                named
            } else if flat.exists() {
                flat
            } else {
                base.join(name).join("mod.rs")
            };
            module_files(&found, false, out)?;
        }
        Ok(())
    }

    fn pascal(snake: &str) -> String {
        snake
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    impl Workspace {
        /// The platform this check runs on, as `rustc -vV` names it.
        fn host_platform(root: &Path) -> Result<String, String> {
            let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
            let out = std::process::Command::new(rustc)
                .arg("-vV")
                .current_dir(root)
                .output()
                .map_err(|e| format!("rustc -vV: {e}"))?;
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: "))
                .map(str::to_owned)
                .ok_or_else(|| "rustc -vV names no host platform".to_owned())
        }

        /// From `cargo metadata` of the workspace at `root` (offline), for the host
        /// platform only: a build downloads only the host's packages, and a clean
        /// machine has no other (CI failed on `android_system_properties`, which only
        /// Android builds need).
        pub fn read(root: &Path) -> Result<Self, String> {
            let platform = Self::host_platform(root)?;
            let out = std::process::Command::new(env!("CARGO"))
                .args(["metadata", "--format-version", "1", "--offline", "--locked"])
                .args(["--filter-platform", &platform])
                .current_dir(root)
                .output()
                .map_err(|e| format!("cargo metadata: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            let meta: serde_json::Value =
                serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
            let members: BTreeSet<&str> = meta["workspace_members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str())
                .collect();
            let mut crates = BTreeMap::new();
            let mut dev_dependencies = BTreeMap::new();
            let mut operations = BTreeMap::new();
            let mut untested_targets = Vec::new();
            for package in meta["packages"].as_array().into_iter().flatten() {
                let name = package["name"].as_str().unwrap_or_default().to_owned();
                let dir = Path::new(package["manifest_path"].as_str().unwrap_or_default())
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let id = package["id"].as_str().unwrap_or_default();
                if members.contains(id) {
                    // `kind` is null for a normal dependency, "dev" or "build" otherwise.
                    let deps_of = |kind: Option<&str>| -> BTreeSet<String> {
                        package["dependencies"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|d| d["kind"].as_str() == kind)
                            .filter_map(|d| d["name"].as_str().map(str::to_owned))
                            .collect()
                    };
                    dev_dependencies.insert(name.clone(), deps_of(Some("dev")));
                    for target in package["targets"].as_array().into_iter().flatten() {
                        if target["test"].as_bool() == Some(false) {
                            untested_targets.push((
                                name.clone(),
                                target["name"].as_str().unwrap_or_default().to_owned(),
                                PathBuf::from(target["src_path"].as_str().unwrap_or_default()),
                            ));
                        }
                    }
                    crates.insert(name, (dir, deps_of(None)));
                } else if SERVICES.iter().any(|(c, _)| *c == name) {
                    let ops: BTreeSet<String> = std::fs::read_dir(dir.join("src/operation"))
                        .map_err(|e| format!("{name}: {e}"))?
                        .filter_map(Result::ok)
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    operations.entry(name).or_insert(ops);
                }
            }
            Ok(Self {
                crates,
                dev_dependencies,
                operations,
                untested_targets,
            })
        }

        /// The targets `cargo test` skips (`test = false` in their manifest), each with
        /// the source files it compiles: its root and the files its `mod name;` items
        /// name, followed down.
        pub fn untested_targets(&self) -> Result<Vec<(String, String, Vec<PathBuf>)>, String> {
            self.untested_targets
                .iter()
                .map(|(krate, target, root)| {
                    let mut files = Vec::new();
                    module_files(root, true, &mut files)?;
                    Ok((krate.clone(), target.clone(), files))
                })
                .collect()
        }

        /// The workspace crates whose manifest lies in a folder below `dir`.
        pub fn crates_under(&self, dir: &Path) -> BTreeSet<String> {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            self.crates
                .iter()
                .filter(|(_, (at, _))| at.starts_with(&dir) && at != &dir)
                .map(|(name, _)| name.clone())
                .collect()
        }

        /// Whether `krate` names `dependency` in its `[dependencies]` (the platform's
        /// included), as opposed to its dev- or build-dependencies.
        pub fn depends_on(&self, krate: &str, dependency: &str) -> bool {
            self.crates
                .get(krate)
                .is_some_and(|(_, deps)| deps.contains(dependency))
        }

        /// Whether `krate` names `dependency` in its `[dev-dependencies]`.
        pub fn dev_depends_on(&self, krate: &str, dependency: &str) -> bool {
            self.dev_dependencies
                .get(krate)
                .is_some_and(|deps| deps.contains(dependency))
        }

        /// The workspace crates `krate` links (itself included).
        pub fn linked(&self, krate: &str) -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![krate.to_owned()];
            while let Some(c) = todo.pop() {
                if let Some((_, deps)) = self.crates.get(&c)
                    && seen.insert(c)
                {
                    todo.extend(
                        deps.iter()
                            .filter(|d| self.crates.contains_key(*d))
                            .cloned(),
                    );
                }
            }
            seen
        }

        /// Every `service:Operation` the source of crate `krate` (not its tests) calls.
        pub fn calls_of(&self, krate: &str) -> Result<BTreeSet<String>, String> {
            let Some((dir, deps)) = self.crates.get(krate) else {
                return Ok(BTreeSet::new());
            };
            let mut sources = Vec::new();
            collect_rs(&dir.join("src"), &mut sources)?;
            let mut calls = BTreeSet::new();
            for file in sources {
                let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
                // Unit tests are not what a Lambda runs.
                let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                for (sdk, prefix) in SERVICES {
                    if !deps.contains(*sdk) {
                        continue;
                    }
                    for op in self.operations.get(*sdk).into_iter().flatten() {
                        if text.contains(&format!(".{op}()")) {
                            calls.insert(format!("{prefix}:{}", pascal(op)));
                        }
                    }
                }
            }
            Ok(calls)
        }

        /// Every `service:Operation` a function's binary can call.
        pub fn calls_of_function(&self, function: &str) -> Result<BTreeSet<String>, String> {
            let mut all = BTreeSet::new();
            for c in self.linked(function) {
                all.extend(self.calls_of(&c)?);
            }
            Ok(all)
        }
    }

    fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                collect_rs(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
        Ok(())
    }
}
