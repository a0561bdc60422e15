//! OPA compatibility suite: OPA-Envoy-style policies evaluated by usher and
//! compared with what real OPA returned for them.
//!
//! Each case is a folder `policy/compat/cases/<name>/` (policy files, input,
//! optional data, query, Rego version); what OPA returned is recorded in
//! `policy/compat/expected/<name>.json` by `policy/compat/record.py` (see its
//! header; Python is needed only to record). Here every case is compiled and
//! evaluated as the sidecar does (`PolicySource::from_files`,
//! `Policy::compile`, then `evaluate_json` / `decide_json`, as
//! `usher policy eval` does), on the path `compile` chooses and, when that is
//! the RVM, on the interpreter too.
//!
//! Comparison: JSON equality, with numbers compared by value (`1` and `1.0`
//! are equal) and the arrays OPA recorded as sets compared as sets. An
//! undefined result must be undefined, an OPA error (parse, compile or
//! evaluation) must be an usher error of either kind.
//!
//! Cases where usher differs today are listed in
//! `policy/compat/known_differences.txt` (`<name>: <reason>`). The test fails
//! when a case not on the list differs, and when a listed case now matches
//! (take it off the list), so the list stays exact.
//!
//! `OPA_COMPAT_ONLY=name,name` runs only those cases; `OPA_COMPAT_VERBOSE=1`
//! prints whole values instead of their first characters; `OPA_COMPAT_DIR`
//! points the test at another folder laid out like `policy/compat`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use usher_policy::{EvalPath, Limits, Policy, PolicySource, RegoVersion};

/// `policy/compat`, or the folder `OPA_COMPAT_DIR` names (with the same
/// `cases/`, `expected/` and `known_differences.txt`), for trying cases out.
fn compat_dir() -> PathBuf {
    match std::env::var_os("OPA_COMPAT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("compat"),
    }
}

struct Case {
    name: String,
    version: RegoVersion,
    query: String,
    rego: Vec<PathBuf>,
    data: Vec<PathBuf>,
    input: Json,
}

fn load_case(dir: &Path) -> Result<Case, String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("bad case folder name")?
        .to_string();
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{name}: cannot read {f}: {e}"))
    };
    let mut version = RegoVersion::V1;
    if dir.join("meta").exists() {
        for line in read("meta")?.lines() {
            if let Some(v) = line.trim().strip_prefix("rego_version:") {
                version = match v.trim() {
                    "v0" => RegoVersion::V0,
                    "v1" => RegoVersion::V1,
                    other => return Err(format!("{name}: meta: unknown rego_version {other}")),
                };
            }
        }
    }
    let query = read("query.txt")?.trim().to_string();
    let input: Json = serde_json::from_str(&read("input.json")?)
        .map_err(|e| format!("{name}: input.json: {e}"))?;
    let mut rego: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{name}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rego"))
        .collect();
    rego.sort();
    if rego.is_empty() {
        return Err(format!("{name}: no .rego file"));
    }
    let data_file = dir.join("data.json");
    let data = if data_file.exists() {
        vec![data_file]
    } else {
        Vec::new()
    };
    Ok(Case {
        name,
        version,
        query,
        rego,
        data,
        input,
    })
}

/// What OPA returned, as record.py wrote it.
enum Expected {
    Value(Json),
    Undefined,
    Error(String),
}

struct Recorded {
    expected: Expected,
    /// Paths (object keys, array indexes, "*" for a set's elements) of the
    /// values that were sets.
    set_paths: Vec<Vec<Json>>,
}

fn load_expected(name: &str) -> Result<Recorded, String> {
    let path = compat_dir().join("expected").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!("{name}: no recorded OPA result ({e}): run python3 policy/compat/record.py {name}")
    })?;
    let doc: Json = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let expected = if let Some(v) = doc.get("result") {
        Expected::Value(v.clone())
    } else if doc.get("undefined") == Some(&Json::Bool(true)) {
        Expected::Undefined
    } else if let Some(code) = doc.get("error") {
        let kind = doc.get("kind").and_then(Json::as_str).unwrap_or_default();
        let message = doc
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or_default();
        Expected::Error(format!(
            "{} {kind}: {}",
            code.as_str().unwrap_or("error"),
            message.replace('\n', " ")
        ))
    } else {
        return Err(format!(
            "{}: neither result, undefined nor error",
            path.display()
        ));
    };
    let set_paths = match doc.get("set_paths") {
        Some(Json::Array(paths)) => paths
            .iter()
            .map(|p| p.as_array().cloned().unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    };
    Ok(Recorded {
        expected,
        set_paths,
    })
}

/// What usher did with a case.
enum Outcome {
    Value(Json),
    Undefined,
    /// Refused at load / compile time.
    CompileError(String),
    EvalError(String),
    Panic(String),
}

impl Outcome {
    fn describe(&self, verbose: bool) -> String {
        match self {
            Outcome::Value(v) => short(&v.to_string(), verbose),
            Outcome::Undefined => "undefined".into(),
            Outcome::CompileError(e) => format!("compile error: {}", short(e, verbose)),
            Outcome::EvalError(e) => format!("evaluation error: {}", short(e, verbose)),
            Outcome::Panic(e) => format!("PANIC: {}", short(e, verbose)),
        }
    }
}

fn describe_expected(e: &Expected, verbose: bool) -> String {
    match e {
        Expected::Value(v) => short(&v.to_string(), verbose),
        Expected::Undefined => "undefined".into(),
        Expected::Error(msg) => format!("error: {}", short(msg, verbose)),
    }
}

fn short(s: &str, verbose: bool) -> String {
    const MAX: usize = 400;
    if verbose || s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}... ({} chars)", s.chars().count())
    }
}

fn limits() -> Limits {
    // Generous: a debug build on a shared machine; the suite is about
    // answers, not speed.
    Limits {
        eval_timeout: Duration::from_secs(10),
    }
}

fn compile(case: &Case) -> Result<Policy, String> {
    let source = PolicySource::from_files(&case.rego, &case.data).map_err(|e| e.to_string())?;
    Policy::compile(&source, &case.query, case.version, limits()).map_err(|e| e.to_string())
}

fn evaluate(policy: &Policy, input: &Json) -> Outcome {
    match policy.evaluate_json(input) {
        // evaluate_json gives null for an undefined result; the decision's
        // reason tells undefined from a policy that returned null.
        Ok(Json::Null) => {
            if policy.decide_json(input).reason.as_deref() == Some("undefined result") {
                Outcome::Undefined
            } else {
                Outcome::Value(Json::Null)
            }
        }
        Ok(v) => Outcome::Value(v),
        Err(e) => Outcome::EvalError(e.to_string()),
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}

/// The outcome on the path `compile` chose, and on the interpreter when
/// that path was the RVM.
fn run_case(case: &Case) -> Vec<(&'static str, Outcome)> {
    let first = catch_unwind(AssertUnwindSafe(|| match compile(case) {
        Err(e) => (None, Outcome::CompileError(e)),
        Ok(policy) => {
            let path = policy.eval_path();
            (Some(path), evaluate(&policy, &case.input))
        }
    }));
    let (path, outcome) = match first {
        Ok(r) => r,
        Err(p) => return vec![("compile", Outcome::Panic(panic_text(p)))],
    };
    let label = match path {
        Some(EvalPath::Rvm) => "rvm",
        Some(EvalPath::Interpreter) => "interpreter",
        None => "compile",
    };
    let mut out = vec![(label, outcome)];
    if path == Some(EvalPath::Rvm) {
        let second = catch_unwind(AssertUnwindSafe(|| match compile(case) {
            Err(e) => Outcome::CompileError(e),
            Ok(policy) => evaluate(&policy.with_interpreter(), &case.input),
        }));
        out.push((
            "interpreter",
            second.unwrap_or_else(|p| Outcome::Panic(panic_text(p))),
        ));
    }
    out
}

/// Numbers by value (integral floats as integers), arrays that were sets
/// sorted.
fn canonical(v: &Json, path: &mut Vec<Json>, set_paths: &[Vec<Json>]) -> Json {
    match v {
        Json::Number(n) => {
            if n.is_i64() || n.is_u64() {
                v.clone()
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Json::from(f as i64),
                    _ => v.clone(),
                }
            }
        }
        Json::Array(items) => {
            let is_set = set_paths.iter().any(|p| p == path);
            let mut out: Vec<Json> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(if is_set {
                        Json::from("*")
                    } else {
                        Json::from(i)
                    });
                    let c = canonical(item, path, set_paths);
                    path.pop();
                    c
                })
                .collect();
            if is_set {
                out.sort_by_key(|a| a.to_string());
            }
            Json::Array(out)
        }
        Json::Object(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, item)| {
                    path.push(Json::from(k.as_str()));
                    let c = canonical(item, path, set_paths);
                    path.pop();
                    (k.clone(), c)
                })
                .collect(),
        ),
        _ => v.clone(),
    }
}

fn agrees(recorded: &Recorded, outcome: &Outcome) -> bool {
    match (&recorded.expected, outcome) {
        (Expected::Value(want), Outcome::Value(got)) => {
            canonical(want, &mut Vec::new(), &recorded.set_paths)
                == canonical(got, &mut Vec::new(), &recorded.set_paths)
        }
        (Expected::Undefined, Outcome::Undefined) => true,
        (Expected::Error(_), Outcome::CompileError(_) | Outcome::EvalError(_)) => true,
        _ => false,
    }
}

/// `name: reason` lines; `#` comments and blank lines ignored.
fn known_differences() -> BTreeMap<String, String> {
    let path = compat_dir().join("known_differences.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(':') {
            Some((name, reason)) => (name.trim().to_string(), reason.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

#[test]
fn opa_compat() {
    let verbose = std::env::var_os("OPA_COMPAT_VERBOSE").is_some();
    let only: Option<BTreeSet<String>> = std::env::var("OPA_COMPAT_ONLY")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().to_string()).collect());
    let cases_dir = compat_dir().join("cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", cases_dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let known = known_differences();
    let all_names: BTreeSet<String> = dirs
        .iter()
        .filter_map(|d| d.file_name().and_then(|n| n.to_str()).map(String::from))
        .collect();

    let mut failures = Vec::new();
    for name in known.keys() {
        if !all_names.contains(name) {
            failures.push(format!(
                "{name}: listed in known_differences.txt but there is no such case"
            ));
        }
    }

    let (mut total, mut matching, mut known_count) = (0, 0, 0);
    for dir in &dirs {
        let case = match load_case(dir) {
            Ok(c) => c,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if only.as_ref().is_some_and(|o| !o.contains(&case.name)) {
            continue;
        }
        total += 1;
        let recorded = match load_expected(&case.name) {
            Ok(r) => r,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let outcomes = run_case(&case);
        let differing: Vec<&(&str, Outcome)> = outcomes
            .iter()
            .filter(|(_, o)| !agrees(&recorded, o))
            .collect();
        let listed = known.get(&case.name);
        match (differing.is_empty(), listed) {
            (true, None) => matching += 1,
            (true, Some(_)) => failures.push(format!(
                "{}: matches OPA now: take it off policy/compat/known_differences.txt",
                case.name
            )),
            (false, listed) => {
                let mut text = format!(
                    "{}{}\n    OPA:   {}",
                    case.name,
                    listed.map(|r| format!(" (known: {r})")).unwrap_or_default(),
                    describe_expected(&recorded.expected, verbose)
                );
                for (label, outcome) in &differing {
                    text.push_str(&format!(
                        "\n    usher [{label}]: {}",
                        outcome.describe(verbose)
                    ));
                }
                if listed.is_some() {
                    known_count += 1;
                    eprintln!("known difference: {text}");
                } else {
                    eprintln!("NEW DIFFERENCE: {text}");
                    failures.push(format!(
                        "{}: differs from OPA and is not in policy/compat/known_differences.txt",
                        case.name
                    ));
                }
            }
        }
    }

    println!("opa-compat: {total} cases, {matching} match, {known_count} known differences");
    assert!(
        failures.is_empty(),
        "opa-compat: {} problem(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    assert!(total > 0, "opa-compat: no case ran");
}

/// The `opa_test_*` cases are test files written for `opa test`; their query
/// is the test package, so OPA recorded which test rules are true. Here the
/// same files go through `usher policy test` (`testing::run`): a test passes
/// exactly when OPA's rule is true, fails when OPA's is absent (undefined or
/// false), and `todo_test_*` rules are skipped, as `opa test` does.
#[test]
fn opa_test_cases_run_as_opa_test_runs_them() {
    let cases_dir = compat_dir().join("cases");
    let mut ran = 0;
    for dir in std::fs::read_dir(&cases_dir)
        .unwrap()
        .filter_map(|e| e.ok())
    {
        let name = dir.file_name().to_string_lossy().to_string();
        if !name.starts_with("opa_test_") {
            continue;
        }
        let case = load_case(&dir.path()).unwrap();
        let recorded = load_expected(&name).unwrap();
        let Expected::Value(Json::Object(opa)) = &recorded.expected else {
            panic!("{name}: OPA recorded no object for the test package");
        };
        let mut paths = case.rego.clone();
        paths.extend(case.data.iter().cloned());
        let report = usher_policy::testing::run(&paths, case.version)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let package = case.query.clone();
        let mut seen = BTreeSet::new();
        for result in report.results.iter().filter(|r| r.package == package) {
            let opa_true = opa.get(&result.name) == Some(&Json::Bool(true));
            let want = if result.name.starts_with("todo_test_") {
                usher_policy::testing::TestOutcome::Skipped
            } else if opa_true {
                usher_policy::testing::TestOutcome::Pass
            } else {
                usher_policy::testing::TestOutcome::Fail
            };
            assert_eq!(result.outcome, want, "{name}: {}\n{report}", result.name);
            seen.insert(result.name.clone());
        }
        // Every test rule OPA found true was run by usher.
        for key in opa.keys().filter(|k| k.starts_with("test_")) {
            assert!(
                seen.contains(key),
                "{name}: {key} not run by usher\n{report}"
            );
        }
        assert!(
            report.fail_count() > 0 && report.pass_count() > 0,
            "{name}: a case should hold passing and failing tests\n{report}"
        );
        ran += 1;
    }
    assert!(ran > 0, "no opa_test_ case");
}
