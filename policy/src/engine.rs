//! Loading, compiling and evaluating a policy.
//!
//! A [`Policy`] is compiled once (parse, merge data, register the `io.jwt.*`
//! extensions it calls, check every function it calls exists, warm up with
//! representative inputs) and then evaluated per request through `&self`:
//!
//! - **RVM** (regorus' compiled VM) when it accepts the policy and gives the
//!   same answers as the interpreter on the warm-up inputs. Each thread keeps
//!   its own `RegoVM` for the policy in a thread-local (a VM is not `Clone`,
//!   and evaluation needs `&mut`), so there is no lock on the hot path.
//! - **Interpreter** otherwise (the RVM refuses `with`, `walk`, extensions
//!   such as `io.jwt.*`, and some rule shapes; and usher does not use it
//!   for object comprehensions and `key, value in xs` tests, which it
//!   evaluates differently from OPA): a prepared `Engine` template
//!   is cloned per evaluation (cheap: its parts are reference-counted).
//!
//! Measured numbers are in `policy/README.md`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError, Value};

use crate::builtins::{self, BOUNDED_BUILTINS, JWT_BUILTINS};
use crate::decision::Decision;
use crate::input::{BodyInput, RequestInput};
use crate::{analysis, future_imports, nesting, recursion, with_shim};

#[cfg(test)]
mod tests;

/// The query usher evaluates unless configured otherwise.
pub const DEFAULT_QUERY: &str = "data.usher.authz.allow";

/// Rego syntax version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegoVersion {
    /// Pre-1.0 OPA syntax (`allow { ... }` without `if`).
    V0,
    #[default]
    V1,
}

/// Bounds on one evaluation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// An evaluation still running after this long is stopped and the
    /// request denied. Default: 50 ms.
    pub eval_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            eval_timeout: Duration::from_millis(50),
        }
    }
}

/// The texts a policy is compiled from.
#[derive(Clone, Debug, Default)]
pub struct PolicySource {
    /// (display path, Rego text)
    pub policies: Vec<(String, String)>,
    /// (display path, value): each an object, merged at the root of `data`.
    pub data: Vec<(String, serde_json::Value)>,
}

/// Everything that can go wrong loading or evaluating a policy. Messages
/// name the file (and line and column where regorus gives them).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A data file that is not valid JSON / YAML, not an object, or conflicts.
    #[error("{path}: {message}")]
    Data { path: String, message: String },
    /// A Rego error with its position.
    #[error("{file}:{line}:{col}: {message}")]
    Located {
        file: String,
        line: u32,
        col: u32,
        message: String,
    },
    /// A Rego error regorus gave without a position.
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("query `{query}`: {message}")]
    Query { query: String, message: String },
    #[error("{0}")]
    Compile(String),
    #[error("evaluation error: {0}")]
    Eval(String),
    #[error("evaluation exceeded {}ms", .0.as_millis())]
    Timeout(Duration),
}

/// How a policy is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalPath {
    /// regorus' compiled VM.
    Rvm,
    /// regorus' tree-walking interpreter.
    Interpreter,
}

impl PolicySource {
    /// Reads .rego files and .json/.yaml/.yml data files. Errors name the file.
    pub fn from_files(
        policy_files: &[PathBuf],
        data_files: &[PathBuf],
    ) -> Result<PolicySource, PolicyError> {
        let mut source = PolicySource::default();
        for p in policy_files {
            let text = std::fs::read_to_string(p).map_err(|e| PolicyError::Io {
                path: display(p),
                source: e,
            })?;
            source.policies.push((display(p), text));
        }
        for p in data_files {
            source.data.push((display(p), read_data_file(p)?));
        }
        Ok(source)
    }
}

pub(crate) fn display(p: &Path) -> String {
    p.display().to_string()
}

pub(crate) fn is_data_file(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("json" | "yaml" | "yml")
    )
}

/// A .json / .yaml / .yml data file: an object (an empty YAML file is `{}`).
pub(crate) fn read_data_file(p: &Path) -> Result<serde_json::Value, PolicyError> {
    let path = display(p);
    let text = std::fs::read_to_string(p).map_err(|e| PolicyError::Io {
        path: path.clone(),
        source: e,
    })?;
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let value: serde_json::Value = match ext.as_str() {
        "json" => serde_json::from_str(&text).map_err(|e| PolicyError::Data {
            path: path.clone(),
            message: format!("not valid JSON: {e}"),
        })?,
        "yaml" | "yml" => yaml_serde::from_str(&text).map_err(|e| PolicyError::Data {
            path: path.clone(),
            message: format!("not valid YAML: {e}"),
        })?,
        _ => {
            return Err(PolicyError::Data {
                path,
                message: "a data file must be .json, .yaml or .yml".into(),
            })
        }
    };
    match value {
        serde_json::Value::Object(_) => Ok(value),
        serde_json::Value::Null => Ok(serde_json::Value::Object(Default::default())),
        _ => Err(PolicyError::Data {
            path,
            message: "the data must be an object (it is merged at the root of `data`)".into(),
        }),
    }
}

/// Turns a regorus error (whose text carries `--> file:line:col` and a
/// source excerpt) into `file:line:col: message`.
pub(crate) fn regorus_error(err: &anyhow::Error, file: &str) -> PolicyError {
    let text = format!("{err:#}");
    match locate(&text) {
        Some((file, line, col, message)) => PolicyError::Located {
            file,
            line,
            col,
            message,
        },
        None => PolicyError::File {
            file: file.to_string(),
            message: one_line(&text),
        },
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn locate(text: &str) -> Option<(String, u32, u32, String)> {
    let start = text.find("--> ")? + 4;
    let rest = text.get(start..)?;
    let (loc, after) = rest.split_once('\n').unwrap_or((rest, ""));
    let mut it = loc.trim().rsplitn(3, ':');
    let col = it.next()?.parse().ok()?;
    let line = it.next()?.parse().ok()?;
    let file = it.next()?.to_string();
    let before = one_line(text.get(..start.saturating_sub(4)).unwrap_or_default());
    let message = match after.find("error: ") {
        Some(i) => one_line(after.get(i + 7..).unwrap_or_default()),
        None => one_line(after),
    };
    let message = if before.is_empty() || before == "error:" {
        message
    } else {
        format!("{before} {message}")
    };
    Some((file, line, col, message))
}

const TIMER_CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(32) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

fn timer(timeout: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: timeout,
        check_interval: TIMER_CHECK_INTERVAL,
    }
}

/// An engine with the version, the timer and OPA's non-strict builtin
/// errors; the policies and data of `source` loaded; the functions they call
/// checked; the extensions they call registered.
pub(crate) fn build_engine(
    source: &PolicySource,
    version: RegoVersion,
    timeout: Duration,
) -> Result<(Engine, analysis::Scan), PolicyError> {
    for (path, text) in &source.policies {
        nesting::check(path, text)?;
    }
    let mut engine = Engine::new();
    engine.set_rego_v0(version == RegoVersion::V0);
    // An engine-specific timer also keeps regorus from reading its global
    // fallback configuration (behind a mutex) on every evaluation.
    engine.set_execution_timer_config(timer(timeout));
    engine.set_strict_builtin_errors(false);
    for (path, text) in &source.policies {
        engine
            .add_policy(
                path.clone(),
                future_imports::drop_redundant(text).into_owned(),
            )
            .map_err(|e| regorus_error(&e, path))?;
    }
    for (path, value) in &source.data {
        if !value.is_object() {
            return Err(PolicyError::Data {
                path: path.clone(),
                message: "the data must be an object (it is merged at the root of `data`)".into(),
            });
        }
        engine
            .add_data(Value::from(value.clone()))
            .map_err(|e| PolicyError::Data {
                path: path.clone(),
                message: format!("cannot merge into `data`: {}", one_line(&format!("{e:#}"))),
            })?;
    }
    if let Some(c) = recursion::find_cycle(engine.get_modules()) {
        return Err(PolicyError::Located {
            file: c.file,
            line: c.line,
            col: c.col,
            message: format!(
                "recursion: {} (OPA refuses this too: rego_recursion_error)",
                c.names.join(" → ")
            ),
        });
    }
    let scan = analysis::scan(engine.get_modules());
    if let Some(v) = scan.unused_declared.first() {
        return Err(PolicyError::Located {
            file: v.file.clone(),
            line: v.line,
            col: v.col,
            message: format!(
                "declared var {} unused (OPA refuses this too: rego_compile_error)",
                v.name
            ),
        });
    }
    let provided: Vec<&str> = JWT_BUILTINS.iter().map(|(n, _)| *n).collect();
    if let Some(c) = scan.unknown(&provided).next() {
        return Err(unknown_function(c));
    }
    let mocked = |name: &str| scan.with_targets.iter().any(|(_, t)| t == name);
    for (name, _) in JWT_BUILTINS.iter().chain(BOUNDED_BUILTINS) {
        if scan.calls_any(&[name]) || mocked(name) {
            if *name == "http.send" {
                builtins::register_http_send(&mut engine, timeout)?;
            } else {
                builtins::register_one(&mut engine, name)?;
            }
        }
    }
    // `with http.send as …`: see with_shim.
    for (path, text) in with_shim::shims(&scan.with_targets, JWT_BUILTINS) {
        engine
            .add_policy(path.clone(), text)
            .map_err(|e| regorus_error(&e, &path))?;
    }
    Ok((engine, scan))
}

pub(crate) fn unknown_function(c: &analysis::CallSite) -> PolicyError {
    PolicyError::Located {
        file: c.file.clone(),
        line: c.line,
        col: c.col,
        message: format!(
            "unknown function `{}`: not a regorus builtin, not an io.jwt.* builtin usher provides, \
             and not defined by the policy",
            c.name
        ),
    }
}

/// `data.a.b.rule`: the query must name a rule (or a rule's key) by a path.
fn check_query(query: &str) -> Result<(), PolicyError> {
    let bad = |message: &str| PolicyError::Query {
        query: query.to_string(),
        message: message.to_string(),
    };
    let Some(rest) = query.strip_prefix("data.") else {
        return Err(bad(
            "must be a rule path starting with `data.`, like data.usher.authz.allow",
        ));
    };
    let ok = !rest.is_empty()
        && rest.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '[' | ']' | '"' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(bad("must be a rule path like data.usher.authz.allow"))
    }
}

static NEXT_POLICY_ID: AtomicU64 = AtomicU64::new(1);

/// A compiled policy: immutable, `Send + Sync`, shared behind an `Arc`.
pub struct Policy {
    id: u64,
    query: String,
    revision: String,
    files: Vec<String>,
    limits: Limits,
    /// A prepared interpreter, cloned per evaluation on the interpreter path.
    template: Engine,
    /// The query is not a rule path: evaluated as a query (no RVM).
    by_query: bool,
    /// Packages added for `with` on usher's builtins, hidden from results.
    shim_packages: with_shim::ShimPackages,
    rvm: Option<Rvm>,
    rvm_unavailable: Option<String>,
    /// Threads' cached evaluators hold a `Weak` of this: once the policy is
    /// dropped they let theirs go.
    alive: Arc<()>,
}

struct Rvm {
    program: Arc<Program>,
    data: Value,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
};

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("query", &self.query)
            .field("revision", &self.revision)
            .field("files", &self.files)
            .field("eval_path", &self.eval_path())
            .finish()
    }
}

enum Failure {
    Timeout,
    Error(String),
}

impl Policy {
    /// Parses, compiles, merges data, registers io.jwt extensions, and runs a
    /// warm-up evaluation with representative inputs so that a builtin nobody
    /// provides, or a query that names no rule, is reported now, not at the
    /// first request. Errors carry file:line:col where regorus gives them.
    pub fn compile(
        source: &PolicySource,
        query: &str,
        version: RegoVersion,
        limits: Limits,
    ) -> Result<Policy, PolicyError> {
        builtins::check_crypto_provider()?;
        check_query(query)?;
        if source.policies.is_empty() {
            return Err(PolicyError::Compile("no policy file".into()));
        }
        let (mut engine, scan) = build_engine(source, version, limits.eval_timeout)?;
        // `print` in a policy: gathered (and dropped after each evaluation),
        // not written to stderr under a lock on every request.
        engine.set_gather_prints(true);
        let query_err = |e: anyhow::Error| match regorus_error(&e, "") {
            located @ PolicyError::Located { .. } => located,
            other => PolicyError::Query {
                query: query.to_string(),
                message: match other {
                    PolicyError::File { message, .. } => message,
                    o => o.to_string(),
                },
            },
        };
        // A rule path compiles to an entry point (and maybe the RVM). Any
        // other path OPA accepts — a partial object built rule by rule
        // (`result["allowed"] := allow`), a package, a path into a rule's
        // value — is evaluated as a query by the interpreter, as OPA does.
        let compiled = match engine.compile_with_entrypoint(&query.into()) {
            Ok(compiled) => Some(compiled),
            Err(e) if format!("{e:#}").contains("not a valid rule path") => {
                if !names_rule_or_data(&mut engine, query) {
                    return Err(PolicyError::Query {
                        query: query.to_string(),
                        message: "names no rule, package or data document of the policy".into(),
                    });
                }
                None
            }
            Err(e) => return Err(query_err(e)),
        };
        let by_query = compiled.is_none();
        let shim_packages = with_shim::ShimPackages::new(
            engine.get_modules(),
            &with_shim::shims(&scan.with_targets, JWT_BUILTINS),
        );

        // Warm-up: the first evaluation prepares what is left; an error that
        // does not depend on the input is reported now.
        let samples = sample_inputs();
        let mut expected = Vec::with_capacity(samples.len());
        let mut conflicts = Vec::new();
        for input in &samples {
            let mut e = engine.clone();
            e.set_input(input.clone());
            // No http.send request from a warm-up evaluation.
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                crate::http_send::offline(|| {
                    if by_query {
                        e.eval_query(query.to_string(), false).map(first_value)
                    } else {
                        e.eval_rule(query.to_string())
                    }
                })
            }))
            .unwrap_or_else(|p| Err(anyhow::anyhow!(panic_message(p.as_ref()))));
            match result {
                Ok(v) => expected.push(Some(v)),
                Err(err) => {
                    let text = format!("{err:#}");
                    if text.contains("could not find function")
                        || text.contains("not a valid rule path")
                        || text.contains("not a rule")
                    {
                        return Err(query_err(err));
                    }
                    if text.contains("conflicts with rule") {
                        conflicts.push(err);
                    }
                    expected.push(None);
                }
            }
        }
        // Rules that conflict whatever the input (`allow := true` and
        // `allow := false`) are a compile error in OPA: refused here too,
        // rather than denying every request with an evaluation error.
        if conflicts.len() == samples.len() {
            if let Some(err) = conflicts.pop() {
                return Err(query_err(err));
            }
        }
        // Leave no request state in the template that every clone would copy.
        engine.set_input(Value::new_object());

        // The RVM, when it accepts the policy and agrees with the interpreter.
        let mut rvm_unavailable = None;
        let extensions: Vec<&str> = JWT_BUILTINS
            .iter()
            .chain(BOUNDED_BUILTINS)
            .map(|(n, _)| *n)
            .collect();
        let rvm_ok = !scan.calls_any(&extensions) && scan.rvm_hazard.is_none();
        let rvm = if let Some(compiled) = compiled.filter(|_| rvm_ok) {
            match Compiler::compile_from_policy(&compiled, &[query]) {
                Err(e) => {
                    rvm_unavailable = Some(format!("the RVM compiler refused it: {e}"));
                    None
                }
                Ok(program) => {
                    let rvm = Rvm {
                        program,
                        data: engine.get_data(),
                    };
                    let agrees = samples.iter().zip(&expected).all(|(input, want)| {
                        let got = new_vm(&rvm, limits.eval_timeout).ok().and_then(|mut vm| {
                            vm.set_input(input.clone());
                            std::panic::catch_unwind(AssertUnwindSafe(|| vm.execute().ok()))
                                .ok()
                                .flatten()
                        });
                        match (want, got) {
                            (Some(w), Some(g)) => *w == g,
                            (None, None) => true,
                            _ => false,
                        }
                    });
                    if agrees {
                        Some(rvm)
                    } else {
                        rvm_unavailable =
                            Some("the RVM and the interpreter disagreed on a warm-up input".into());
                        None
                    }
                }
            }
        } else if by_query {
            rvm_unavailable = Some("the query is not a rule path (evaluated as a query)".into());
            None
        } else if let Some(hazard) = scan.rvm_hazard {
            rvm_unavailable = Some(format!("the policy has {hazard}"));
            None
        } else {
            rvm_unavailable = Some("the policy calls builtins usher supplies as extensions".into());
            None
        };

        Ok(Policy {
            id: NEXT_POLICY_ID.fetch_add(1, Ordering::Relaxed),
            query: query.to_string(),
            revision: revision(source, query),
            files: source
                .policies
                .iter()
                .map(|(p, _)| p.clone())
                .chain(source.data.iter().map(|(p, _)| p.clone()))
                .collect(),
            limits,
            template: engine,
            by_query,
            shim_packages,
            rvm,
            rvm_unavailable,
            alive: Arc::new(()),
        })
    }

    /// sha256 over (path, contents) of every policy and data file and the
    /// query; hex, first 16 characters.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    pub fn query(&self) -> &str {
        &self.query
    }

    /// Display paths of the policy files, then the data files.
    pub fn files(&self) -> Vec<String> {
        self.files.clone()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Which engine evaluates this policy.
    pub fn eval_path(&self) -> EvalPath {
        if self.rvm.is_some() {
            EvalPath::Rvm
        } else {
            EvalPath::Interpreter
        }
    }

    /// Why the RVM is not used, when it is not.
    pub fn rvm_unavailable(&self) -> Option<&str> {
        self.rvm_unavailable.as_deref()
    }

    /// The same policy on the interpreter path (for comparisons and benchmarks).
    pub fn with_interpreter(mut self) -> Policy {
        if self.rvm.take().is_some() {
            self.rvm_unavailable = Some("the interpreter was asked for".into());
            // Threads may hold a VM for the old identity.
            self.id = NEXT_POLICY_ID.fetch_add(1, Ordering::Relaxed);
            self.alive = Arc::new(());
        }
        self
    }

    /// The per-request call. Never panics, never errors: fails closed.
    pub fn evaluate(&self, input: &RequestInput<'_>) -> Decision {
        let start = Instant::now();
        self.decide_value(input.to_value(), start)
    }

    /// For `usher policy eval`: the raw query result for an arbitrary JSON
    /// input (`null` when the result is undefined).
    pub fn evaluate_json(
        &self,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, PolicyError> {
        match self.eval_value(Value::from(input.clone())) {
            Ok(Value::Undefined) => Ok(serde_json::Value::Null),
            Ok(v) => serde_json::to_value(&v).map_err(|e| PolicyError::Eval(e.to_string())),
            Err(Failure::Timeout) => Err(PolicyError::Timeout(self.limits.eval_timeout)),
            Err(Failure::Error(e)) => Err(PolicyError::Eval(e)),
        }
    }

    /// The decision for an arbitrary JSON input (same mapping as evaluate).
    pub fn decide_json(&self, input: &serde_json::Value) -> Decision {
        let start = Instant::now();
        self.decide_value(Value::from(input.clone()), start)
    }

    fn decide_value(&self, input: Value, start: Instant) -> Decision {
        let mut d = match self.eval_value(input) {
            Ok(v) => Decision::from_value(&v),
            Err(Failure::Timeout) => Decision::deny(format!(
                "evaluation exceeded {}ms",
                self.limits.eval_timeout.as_millis()
            )),
            Err(Failure::Error(e)) => Decision::deny(format!("evaluation error: {e}")),
        };
        d.eval_micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        d
    }

    fn eval_value(&self, input: Value) -> Result<Value, Failure> {
        let start = Instant::now();
        self.with_evaluator(|ev| ev.run(input, &self.query))
            .map(|mut v| {
                if self.by_query && !self.shim_packages.is_empty() {
                    self.shim_packages.prune(&self.query, &mut v);
                }
                v
            })
            .map_err(|(limit, text)| {
                if limit || start.elapsed() >= self.limits.eval_timeout {
                    Failure::Timeout
                } else {
                    Failure::Error(match locate(&text) {
                        Some((file, line, col, message)) => {
                            format!("{file}:{line}:{col}: {message}")
                        }
                        None => one_line(&text),
                    })
                }
            })
    }

    fn new_evaluator(&self) -> Result<Evaluator, EvalError> {
        match &self.rvm {
            Some(rvm) => new_vm(rvm, self.limits.eval_timeout)
                .map(|vm| Evaluator::Vm(Box::new(vm)))
                .map_err(|e| (false, e.to_string())),
            None if self.by_query => Ok(Evaluator::Query(Box::new(self.template.clone()))),
            None => Ok(Evaluator::Interpreter(Box::new(self.template.clone()))),
        }
    }

    /// Runs `f` on this thread's evaluator for this policy (made on first
    /// use: a VM, or a clone of the prepared interpreter). No lock: each
    /// thread has its own. An evaluator whose run failed is dropped rather
    /// than reused; those of dropped policies are dropped on the next call.
    fn with_evaluator(
        &self,
        f: impl FnOnce(&mut Evaluator) -> Result<Value, EvalError>,
    ) -> Result<Value, EvalError> {
        thread_local! {
            static EVALUATORS: RefCell<Vec<(u64, Weak<()>, Evaluator)>> =
                const { RefCell::new(Vec::new()) };
        }
        /// Evaluators kept per thread: the policy in force and a few recent
        /// ones (a reload leaves the previous one in use for a while).
        const KEEP: usize = 4;
        EVALUATORS.with(|cell| {
            let Ok(mut evaluators) = cell.try_borrow_mut() else {
                // Re-entered on this thread (not expected): one of its own.
                return f(&mut self.new_evaluator()?);
            };
            evaluators.retain(|(_, alive, _)| alive.strong_count() > 0);
            let index = match evaluators.iter().position(|(id, _, _)| *id == self.id) {
                Some(i) => i,
                None => {
                    if evaluators.len() >= KEEP {
                        evaluators.remove(0);
                    }
                    let ev = self.new_evaluator()?;
                    evaluators.push((self.id, Arc::downgrade(&self.alive), ev));
                    evaluators.len() - 1
                }
            };
            let Some((_, _, ev)) = evaluators.get_mut(index) else {
                return f(&mut self.new_evaluator()?);
            };
            // A panic inside regorus (a builtin given an input it did not
            // expect) must not take the request's thread down: it is a
            // failed evaluation, and the evaluator, whose state is unknown,
            // is dropped.
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(ev)))
                .unwrap_or_else(|p| Err((false, panic_message(p.as_ref()))));
            if r.is_err() {
                evaluators.remove(index);
            }
            r
        })
    }
}

/// (hit the time limit, message)
type EvalError = (bool, String);

/// A thread's means of evaluating one policy.
enum Evaluator {
    Vm(Box<RegoVM>),
    Interpreter(Box<Engine>),
    /// The interpreter, for a query that is not a rule path.
    Query(Box<Engine>),
}

impl Evaluator {
    fn run(&mut self, input: Value, query: &str) -> Result<Value, EvalError> {
        match self {
            Evaluator::Vm(vm) => {
                vm.set_input(input);
                let r = vm.execute();
                // Hold no request data between requests.
                vm.set_input(Value::Null);
                r.map_err(|e| {
                    let limit = matches!(e, regorus::rvm::vm::VmError::TimeLimitExceeded { .. });
                    (limit, e.to_string())
                })
            }
            Evaluator::Interpreter(engine) => interpret(engine, input, query, false),
            Evaluator::Query(engine) => interpret(engine, input, query, true),
        }
    }
}

/// One evaluation on the interpreter: the rule at `query`, or `query` as
/// a query.
fn interpret(
    engine: &mut Engine,
    input: Value,
    query: &str,
    by_query: bool,
) -> Result<Value, EvalError> {
    engine.set_input(input);
    let r = if by_query {
        engine.eval_query(query.to_string(), false).map(first_value)
    } else {
        engine.eval_rule(query.to_string())
    };
    // Hold no request data between requests.
    engine.set_input(Value::Null);
    let _ = engine.take_prints();
    r.map_err(|e| {
        let limit = matches!(
            e.downcast_ref::<LimitError>(),
            Some(LimitError::TimeLimitExceeded { .. })
        );
        (limit, format!("{e:#}"))
    })
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let text = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!(
        "evaluation failed inside the Rego engine: {}",
        one_line(&text)
    )
}

/// The value of a one-expression query: undefined when it has no result.
fn first_value(results: regorus::QueryResults) -> Value {
    results
        .result
        .into_iter()
        .next()
        .and_then(|r| r.expressions.into_iter().next())
        .map_or(Value::Undefined, |e| e.value)
}

/// `data.a["b"].c` → `data.a.b.c`.
fn dotted(path: &str) -> String {
    path.replace("[\"", ".").replace("\"]", "")
}

/// Whether `query` reaches a rule (above, at or below it) or a data
/// document of the policy.
fn names_rule_or_data(engine: &mut Engine, query: &str) -> bool {
    let q = dotted(query);
    // `p` is the query or lies below it.
    let at_or_below = |p: &str| {
        p == q
            || p.strip_prefix(q.as_str())
                .is_some_and(|r| r.starts_with('.'))
    };
    // Or, for a rule, the query is a path into its value.
    let related = |p: &str| at_or_below(p) || q.strip_prefix(p).is_some_and(|r| r.starts_with('.'));
    let rules = engine.get_modules().iter().any(|m| {
        let Some(pkg) = analysis::ref_path(&m.package.refr) else {
            return false;
        };
        let pkg = format!("data.{pkg}");
        at_or_below(&pkg)
            || analysis::rule_names(m)
                .iter()
                .any(|(name, _)| related(&dotted(&format!("{pkg}.{name}"))))
    });
    if rules {
        return true;
    }
    let mut data = engine.get_data();
    for seg in q.split('.').skip(1) {
        data = data[seg].clone();
        if data == Value::Undefined {
            return false;
        }
    }
    true
}

fn new_vm(rvm: &Rvm, timeout: Duration) -> Result<RegoVM, regorus::rvm::vm::VmError> {
    let mut vm = RegoVM::new();
    vm.load_program(rvm.program.clone());
    vm.set_data(rvm.data.clone())?;
    vm.set_execution_timer_config(Some(timer(timeout)));
    // The timer bounds the work; the default cap (25,000 instructions) would
    // refuse ordinary policies over large data.
    vm.set_max_instructions(usize::MAX);
    vm.set_strict_builtin_errors(false);
    Ok(vm)
}

/// sha256 over every (path, contents) and the query; 16 hex characters.
fn revision(source: &PolicySource, query: &str) -> String {
    use aws_lc_rs::digest::{Context, SHA256};
    let mut ctx = Context::new(&SHA256);
    let mut field = |tag: u8, bytes: &[u8]| {
        ctx.update(&[tag]);
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    let mut policies: Vec<&(String, String)> = source.policies.iter().collect();
    policies.sort();
    for (path, text) in policies {
        field(b'p', path.as_bytes());
        field(b'P', text.as_bytes());
    }
    let mut data: Vec<(&String, String)> = source
        .data
        .iter()
        .map(|(p, v)| (p, v.to_string()))
        .collect();
    data.sort();
    for (path, text) in data {
        field(b'd', path.as_bytes());
        field(b'D', text.as_bytes());
    }
    field(b'q', query.as_bytes());
    let digest = ctx.finish();
    let mut hex = String::with_capacity(16);
    for b in digest.as_ref().iter().take(8) {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Inputs that look like real requests, for the warm-up and for checking
/// that the RVM agrees with the interpreter.
fn sample_inputs() -> Vec<Value> {
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut h = http::HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, http::HeaderValue::from_static(v));
        }
        h
    };
    let client: SocketAddr = SocketAddr::from(([10, 0, 0, 7], 41234));
    let server: SocketAddr = SocketAddr::from(([10, 0, 0, 8], 15006));
    let get_headers = headers(&[
        ("user-agent", "curl/8.5"),
        ("accept", "*/*"),
        (
            "x-forwarded-client-cert",
            "By=spiffe://usher.invalid/ns/default/sa/server",
        ),
    ]);
    let post_headers = headers(&[
        ("content-type", "application/json"),
        (
            "authorization",
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3YXJtLXVwIn0.",
        ),
    ]);
    let body = BodyInput {
        bytes: bytes::Bytes::from_static(br#"{"name":"warm-up","count":1}"#),
        truncated: false,
    };
    let claims = serde_json::json!({"sub": "warm-up", "roles": ["reader"], "scope": "read"});
    let base = RequestInput {
        source_principal: Some("spiffe://usher.invalid/ns/default/sa/client"),
        source_address: client,
        destination_principal: "spiffe://usher.invalid/ns/default/sa/server",
        destination_address: server,
        method: "GET",
        path: "/",
        host: "server",
        scheme: "https",
        protocol: "HTTP/1.1",
        headers: &get_headers,
        request_id: "00000000-0000-0000-0000-000000000000",
        body: None,
        jwt_claims: None,
    };
    let post = RequestInput {
        source_principal: None,
        method: "POST",
        path: "/api/v1/items?page=2&q=a%20b",
        protocol: "HTTP/2",
        headers: &post_headers,
        body: Some(&body),
        jwt_claims: Some(&claims),
        ..base
    };
    let admin = RequestInput {
        method: "DELETE",
        path: "/admin/users/7",
        ..base
    };
    vec![base.to_value(), post.to_value(), admin.to_value()]
}
