//! `usher policy test` (like `opa test`) and `usher policy check`.
//!
//! [`run`] loads every `.rego` file it is given (folders recursively) and
//! every `.json` / `.yaml` / `.yml` data file, **merged at the root of
//! `data`** (simpler than `opa test`, which mounts a data file at its
//! folder's path), then evaluates every rule named `test_*` of every
//! package: PASS when it is `true`, FAIL when it is `false` or undefined (or
//! any other value), ERROR when the evaluation fails. Tests run without an
//! `input` (use `with input as {...}`), each bounded by [`TEST_TIMEOUT`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regorus::{Engine, Value};

use crate::analysis;
use crate::builtins::JWT_BUILTINS;
use crate::engine::{
    build_engine, display, is_data_file, read_data_file, regorus_error, unknown_function, Limits,
    Policy, PolicyError, PolicySource, RegoVersion,
};

#[cfg(test)]
mod tests;

/// How long one test may run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How one test ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestOutcome {
    Pass,
    /// `false`, undefined, or a value other than `true`.
    Fail,
    /// The evaluation failed; the message says where and why.
    Error(String),
    /// A `todo_test_*` rule: not run, reported.
    Skipped,
}

/// How `usher policy test` runs, as `opa test` does.
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// `--run`: only tests whose full name (`data.pkg.test_x`) matches this
    /// regular expression.
    pub run: Option<String>,
}

/// One `test_*` rule's result.
#[derive(Clone, Debug)]
pub struct TestResult {
    /// `data.usher.authz`
    pub package: String,
    /// `test_allow_get`
    pub name: String,
    pub outcome: TestOutcome,
    pub duration: Duration,
    /// Where the rule is defined: `file:line`.
    pub location: String,
}

/// Every test's result, in file order.
#[derive(Clone, Debug, Default)]
pub struct TestReport {
    pub results: Vec<TestResult>,
}

impl TestReport {
    /// At least one test ran and every test passed.
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(|r| r.outcome == TestOutcome::Pass)
    }

    fn count(&self, f: impl Fn(&TestOutcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }

    pub fn pass_count(&self) -> usize {
        self.count(|o| *o == TestOutcome::Pass)
    }

    pub fn fail_count(&self) -> usize {
        self.count(|o| *o == TestOutcome::Fail)
    }

    pub fn error_count(&self) -> usize {
        self.count(|o| matches!(o, TestOutcome::Error(_)))
    }

    pub fn skip_count(&self) -> usize {
        self.count(|o| *o == TestOutcome::Skipped)
    }

    /// `opa test`'s exit status: 0 when every test passed (skipped ones
    /// too, with `zero_on_skipped`), 2 otherwise, 1 when no test ran.
    pub fn exit_code(&self, zero_on_skipped: bool) -> u8 {
        if self.results.is_empty() {
            return 1;
        }
        let ok = self.results.iter().all(|r| match r.outcome {
            TestOutcome::Pass => true,
            TestOutcome::Skipped => zero_on_skipped,
            _ => false,
        });
        if ok {
            0
        } else {
            2
        }
    }

    /// The report as `opa test` prints it: with `verbose` every test, else
    /// only those that did not pass; then the counts.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        if self.results.is_empty() {
            out.push_str("no tests found (rules named test_*)\n");
            return out;
        }
        for r in &self.results {
            if !verbose && r.outcome == TestOutcome::Pass {
                continue;
            }
            let took =
                Duration::from_micros(u64::try_from(r.duration.as_micros()).unwrap_or(u64::MAX));
            let word = match r.outcome {
                TestOutcome::Pass => "PASS",
                TestOutcome::Fail => "FAIL",
                TestOutcome::Error(_) => "ERROR",
                TestOutcome::Skipped => "SKIPPED",
            };
            if r.outcome == TestOutcome::Skipped {
                out.push_str(&format!("{}.{}: {word}\n", r.package, r.name));
            } else {
                out.push_str(&format!("{}.{}: {word} ({took:?})\n", r.package, r.name));
            }
            if let TestOutcome::Error(e) = &r.outcome {
                out.push_str(&format!("  {e}\n"));
            }
        }
        out.push_str(&"-".repeat(80));
        out.push('\n');
        let total = self.results.len();
        for (word, n) in [
            ("PASS", self.pass_count()),
            ("FAIL", self.fail_count()),
            ("SKIPPED", self.skip_count()),
            ("ERROR", self.error_count()),
        ] {
            if n > 0 {
                out.push_str(&format!("{word}: {n}/{total}\n"));
            }
        }
        out
    }
}

/// The verbose report (`opa test -v`): every test, a rule, the counts.
impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(true))
    }
}

/// Every .rego and data file under `paths` (folders recursively, sorted;
/// hidden entries skipped).
fn collect(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), PolicyError> {
    fn walk(p: &Path, rego: &mut Vec<PathBuf>, data: &mut Vec<PathBuf>) -> Result<(), PolicyError> {
        let meta = std::fs::metadata(p).map_err(|e| PolicyError::Io {
            path: display(p),
            source: e,
        })?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| PolicyError::Io {
                    path: display(p),
                    source: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| {
                    !e.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
                })
                .collect();
            entries.sort();
            for e in entries {
                walk(&e, rego, data)?;
            }
        } else if p.extension().and_then(|e| e.to_str()) == Some("rego") {
            rego.push(p.to_path_buf());
        } else if is_data_file(p) {
            data.push(p.to_path_buf());
        }
        Ok(())
    }
    let (mut rego, mut data) = (Vec::new(), Vec::new());
    for p in paths {
        // A file named explicitly is loaded whatever its extension.
        if std::fs::metadata(p).map(|m| m.is_file()).unwrap_or(false) && !is_data_file(p) {
            rego.push(p.clone());
        } else {
            walk(p, &mut rego, &mut data)?;
        }
    }
    Ok((rego, data))
}

/// Runs every `test_*` rule found in `paths` (see the module docs).
pub fn run(paths: &[PathBuf], version: RegoVersion) -> Result<TestReport, PolicyError> {
    run_with(paths, version, &TestOptions::default())
}

/// [`run`] with `opa test`'s options; `todo_test_*` rules are reported as
/// skipped.
pub fn run_with(
    paths: &[PathBuf],
    version: RegoVersion,
    options: &TestOptions,
) -> Result<TestReport, PolicyError> {
    let filter = match &options.run {
        Some(pattern) => Some(regex::Regex::new(pattern).map_err(|e| {
            PolicyError::Compile(format!(
                "--run {pattern:?} is not a regular expression: {e}"
            ))
        })?),
        None => None,
    };
    let (rego, data) = collect(paths)?;
    if rego.is_empty() {
        return Err(PolicyError::Compile(format!(
            "no .rego file in {}",
            paths
                .iter()
                .map(|p| display(p))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let source = PolicySource::from_files(&rego, &[])?;
    let source = PolicySource {
        data: data
            .iter()
            .map(|p| read_data_file(p).map(|v| (display(p), v)))
            .collect::<Result<_, _>>()?,
        ..source
    };
    let (mut engine, _) = build_engine(&source, version, TEST_TIMEOUT)?;

    // (package, name, location) of every test, each rule path once.
    let mut tests: Vec<(String, String, String)> = Vec::new();
    for module in engine.get_modules().iter() {
        let Some(package) = analysis::ref_path(&module.package.refr) else {
            continue;
        };
        let package = format!("data.{package}");
        for (name, span) in analysis::rule_names(module) {
            let is_test = name.starts_with("test_") || name.starts_with("todo_test_");
            let selected = filter
                .as_ref()
                .is_none_or(|f| f.is_match(&format!("{package}.{name}")));
            if is_test && selected && !tests.iter().any(|(p, n, _)| *p == package && *n == name) {
                let location = format!("{}:{}", span.source.get_path(), span.line);
                tests.push((package.clone(), name, location));
            }
        }
    }
    let Some((package, name, _)) = tests.iter().find(|(_, n, _)| n.starts_with("test_")) else {
        // Nothing to run: every selected test is a todo (or none is).
        let results = tests
            .into_iter()
            .map(|(package, name, location)| TestResult {
                package,
                name,
                outcome: TestOutcome::Skipped,
                duration: Duration::ZERO,
                location,
            })
            .collect();
        return Ok(TestReport { results });
    };
    // Prepare once (analysis errors surface here), not in every clone.
    engine
        .compile_with_entrypoint(&format!("{package}.{name}").as_str().into())
        .map_err(|e| regorus_error(&e, ""))?;

    let mut report = TestReport::default();
    for (package, name, location) in tests {
        if name.starts_with("todo_test_") {
            report.results.push(TestResult {
                package,
                name,
                outcome: TestOutcome::Skipped,
                duration: Duration::ZERO,
                location,
            });
            continue;
        }
        let mut e = engine.clone();
        let start = Instant::now();
        let r = e.eval_rule(format!("{package}.{name}"));
        let duration = start.elapsed();
        let outcome = match r {
            Ok(Value::Bool(true)) => TestOutcome::Pass,
            Ok(_) => TestOutcome::Fail,
            Err(err) => TestOutcome::Error(regorus_error(&err, &location).to_string()),
        };
        report.results.push(TestResult {
            package,
            name,
            outcome,
            duration,
            location,
        });
    }
    Ok(report)
}

/// Parses and compiles each file (.json / .yaml / .yml are checked as data
/// files), then compiles the whole as the sidecar does, with `query` or
/// with each rule; every error is `file:line:col: message`.
pub fn check_files(
    files: &[PathBuf],
    version: RegoVersion,
    query: Option<&str>,
) -> Result<(), Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut source = PolicySource::default();
    for p in files {
        if is_data_file(p) {
            match read_data_file(p) {
                Ok(v) => source.data.push((display(p), v)),
                Err(e) => errors.push(e),
            }
            continue;
        }
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                errors.push(PolicyError::Io {
                    path: display(p),
                    source: e,
                });
                continue;
            }
        };
        // Each file alone first, so that every file's syntax error is reported.
        if let Err(e) = crate::nesting::check(&display(p), &text) {
            errors.push(e);
            continue;
        }
        let mut alone = Engine::new();
        alone.set_rego_v0(version == RegoVersion::V0);
        match alone.add_policy(display(p), text.clone()) {
            Ok(_) => source.policies.push((display(p), text)),
            Err(e) => errors.push(regorus_error(&e, &display(p))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if source.policies.is_empty() {
        return Ok(());
    }

    // Then together: functions nobody provides, and regorus' analysis.
    let mut engine = Engine::new();
    engine.set_rego_v0(version == RegoVersion::V0);
    for (path, text) in &source.policies {
        if let Err(e) = engine.add_policy(path.clone(), text.clone()) {
            errors.push(regorus_error(&e, path));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let scan = analysis::scan(engine.get_modules());
    let provided: Vec<&str> = JWT_BUILTINS.iter().map(|(n, _)| *n).collect();
    errors.extend(scan.unknown(&provided).map(unknown_function));
    if !errors.is_empty() {
        return Err(errors);
    }
    // Then as the sidecar loads it (recursion, conflicts, unsafe variables,
    // a query that names nothing): through `Policy::compile` itself, with
    // `query`, or else with every rule in turn (tests aside), since which
    // one the sidecar will ask for is not known here.
    let queries = match query {
        Some(q) => vec![q.to_string()],
        None => match build_engine(&source, version, TEST_TIMEOUT) {
            Ok((mut engine, _)) => rule_paths(&mut engine),
            Err(e) => {
                errors.push(e);
                Vec::new()
            }
        },
    };
    for q in &queries {
        if let Err(e) = Policy::compile(&source, q, version, Limits::default()) {
            let text = e.to_string();
            if !errors.iter().any(|seen| seen.to_string() == text) {
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `data.pkg.rule` for every rule of every package that is not a test.
fn rule_paths(engine: &mut Engine) -> Vec<String> {
    let mut out = Vec::new();
    for m in engine.get_modules() {
        let Some(package) = analysis::ref_path(&m.package.refr) else {
            continue;
        };
        for (name, _) in analysis::rule_names(m) {
            let root = name.split(['.', '[']).next().unwrap_or_default();
            if root.starts_with("test_") || root.starts_with("todo_test_") {
                continue;
            }
            let path = format!("data.{package}.{name}");
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}
