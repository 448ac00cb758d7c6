//! The module's README must describe the module as it is: its Inputs table lists
//! exactly the module's variables, its Outputs table exactly its outputs (names in
//! backticks in the first column), and an input's default says "required" exactly
//! when the variable has no default. Each difference fails here, naming the variable
//! or the output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use infra_check::Module;

fn module_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/modules/ticketbound")
}

/// Each `variable` block's name, and whether it has a `default`.
fn variables(module: &Module) -> BTreeMap<String, bool> {
    top_blocks(module, "variable")
        .map(|b| {
            let has_default = b.body().attributes().any(|a| a.key() == "default");
            (b.labels()[0].as_str().to_owned(), has_default)
        })
        .collect()
}

fn outputs(module: &Module) -> BTreeSet<String> {
    top_blocks(module, "output")
        .map(|b| b.labels()[0].as_str().to_owned())
        .collect()
}

fn top_blocks<'a>(module: &'a Module, kind: &'a str) -> impl Iterator<Item = &'a hcl::Block> {
    module
        .files
        .iter()
        .flat_map(|(_, body)| body.blocks())
        .filter(move |b| b.identifier() == kind && b.labels().len() == 1)
}

/// The cells of a markdown table row, split on `|` but not on `\|`.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The rows of the first table under the heading `## <heading>`, as cells: every
/// row whose first cell is a name in backticks (the header and the rule are not).
fn table(readme: &str, heading: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut lines = readme
        .lines()
        .skip_while(|l| l.trim() != format!("## {heading}"));
    if lines.next().is_none() {
        return Err(format!("the README has no \"## {heading}\" heading"));
    }
    let rows: Vec<_> = lines
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(cells)
        .filter_map(|cells| {
            let first = cells.first()?;
            let name = first.strip_prefix('`')?.strip_suffix('`')?.to_owned();
            Some((name, cells))
        })
        .collect();
    if rows.is_empty() {
        return Err(format!(
            "the README's \"{heading}\" section has no table rows"
        ));
    }
    Ok(rows)
}

/// One kind of block (`variable` in variables.tf, `output` in outputs.tf) against the
/// names of its README table: a name twice, missing, or extra.
struct Kind {
    block: &'static str,
    /// "a variable", "an output".
    a_block: &'static str,
    file: &'static str,
    table: &'static str,
}

const INPUTS: Kind = Kind {
    block: "variable",
    a_block: "a variable",
    file: "variables.tf",
    table: "Inputs",
};
const OUTPUTS: Kind = Kind {
    block: "output",
    a_block: "an output",
    file: "outputs.tf",
    table: "Outputs",
};

fn compare_names(
    kind: &Kind,
    in_module: &BTreeSet<String>,
    rows: &[(String, Vec<String>)],
) -> Vec<String> {
    let (block, a_block, file, table) = (kind.block, kind.a_block, kind.file, kind.table);
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for (name, _) in rows {
        if !listed.insert(name.clone()) {
            problems.push(format!("{block} `{name}` is listed twice in the README"));
        }
    }
    for name in in_module.difference(&listed) {
        problems.push(format!(
            "{block} `{name}` is in {file} but not in the README's {table} table"
        ));
    }
    for name in listed.difference(in_module) {
        problems.push(format!(
            "the README's {table} table lists `{name}`, which is not {a_block} of the module"
        ));
    }
    problems
}

/// Every way the README's Inputs and Outputs tables differ from the module.
fn problems(readme: &str, module: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    let variables = variables(module);
    match table(readme, INPUTS.table) {
        Err(e) => problems.push(e),
        Ok(rows) => {
            let names = variables.keys().cloned().collect();
            problems.extend(compare_names(&INPUTS, &names, &rows));
            for (name, cells) in &rows {
                let Some(&has_default) = variables.get(name) else {
                    continue;
                };
                if cells.len() != 4 {
                    problems.push(format!(
                        "input `{name}`: its row has {} cells, not 4 (name, type, default, description)",
                        cells.len()
                    ));
                    continue;
                }
                let says_required = cells[2] == "required";
                if says_required == has_default {
                    problems.push(if has_default {
                        format!(
                            "input `{name}` has a default in variables.tf, but the README says \"required\""
                        )
                    } else {
                        format!(
                            "input `{name}` has no default in variables.tf, so the README's default must say \"required\""
                        )
                    });
                }
            }
        }
    }
    match table(readme, OUTPUTS.table) {
        Err(e) => problems.push(e),
        Ok(rows) => problems.extend(compare_names(&OUTPUTS, &outputs(module), &rows)),
    }
    problems
}

#[test]
fn the_module_readme_lists_exactly_the_modules_inputs_and_outputs() {
    let dir = module_dir();
    let module = Module::read(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !variables(&module).is_empty() && !outputs(&module).is_empty(),
        "no variable or no output found in {}: the check would pass vacuously",
        dir.display()
    );
    let readme = std::fs::read_to_string(dir.join("README.md"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("README.md").display()));
    let problems = problems(&readme, &module);
    assert!(
        problems.is_empty(),
        "infra/modules/ticketbound/README.md disagrees with the module:\n- {}",
        problems.join("\n- ")
    );
}

/// The check itself: a missing, an extra and a wrongly required row are each named.
#[test]
fn the_check_names_each_difference() {
    let module = Module::from_text(
        r#"
variable "needed" {
  type = string
}
variable "optional" {
  type    = number
  default = 3
}
variable "missing" {
  type    = bool
  default = true
}
output "out" {
  value = 1
}
"#,
    )
    .unwrap();
    let readme = "\
## Inputs

| name | type | default | description |
| --- | --- | --- | --- |
| `needed` | `string` | `null` | says \\| a pipe |
| `optional` | `number` | required | a number |
| `extra` | `string` | `\"x\"` | not in the module |

## Outputs

| name | description |
| --- | --- |
| `gone` | no longer an output |
";
    let found = problems(readme, &module);
    let expect = [
        "variable `missing` is in variables.tf but not in the README's Inputs table",
        "input `needed` has no default in variables.tf, so the README's default must say \"required\"",
        "input `optional` has a default in variables.tf, but the README says \"required\"",
        "the README's Inputs table lists `extra`, which is not a variable of the module",
        "output `out` is in outputs.tf but not in the README's Outputs table",
        "the README's Outputs table lists `gone`, which is not an output of the module",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f == e),
            "not reported: {e}\nfound: {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}
