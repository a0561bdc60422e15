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
//!
//! The parts: [`source`] reads the policy and data files, `compile` builds
//! the engine and compiles a [`Policy`], `warmup` runs the warm-up inputs
//! and decides whether the RVM is used, `eval` evaluates per request,
//! `decision_cache` remembers decisions of policies that read only a few
//! stable request fields, and `error` turns regorus' errors into
//! [`PolicyError`]s (and is the one place that reads their text).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use regorus::rvm::program::Program;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};

use crate::input::InputParts;
use crate::with_shim;

mod compile;
mod decision_cache;
mod error;
mod eval;
mod source;
mod warmup;

#[cfg(test)]
mod tests;

pub(crate) use compile::build_engine;
pub use error::PolicyError;
pub(crate) use error::{regorus_error, unknown_function};
pub use source::PolicySource;
pub(crate) use source::{display, is_data_file, read_data_file};

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

/// How a policy is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalPath {
    /// regorus' compiled VM.
    Rvm,
    /// regorus' tree-walking interpreter.
    Interpreter,
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
    /// The parts of the input document built for an evaluation: those the
    /// policy can read (`analysis::input_reads`), or all of them.
    input_parts: InputParts,
    /// Why decisions cannot be cached, when they cannot.
    cache_unavailable: Option<String>,
    /// Decisions kept per thread (0: no cache); see `decision_cache`.
    cache_entries: usize,
    /// The policy calls `http.send`: a decision can wait on the network.
    calls_out: bool,
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
            .field("input_parts", &self.input_parts.paths())
            .field("decision_cache", &self.decision_cache_entries())
            .finish()
    }
}

impl Policy {
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

    /// The parts of the input document built for each evaluation: only
    /// those the policy can read when every reference to `input` is a
    /// static path, else all.
    pub fn input_parts(&self) -> InputParts {
        self.input_parts
    }

    /// The input document as this policy is given it (only the parts it reads).
    pub fn input_document(&self, input: &crate::RequestInput<'_>) -> Value {
        input.to_value_with(self.input_parts)
    }

    /// Whether the policy calls `http.send`: its decisions can wait on the
    /// network (up to `Limits`' evaluation timeout), holding the thread
    /// that evaluates them.
    pub fn calls_out(&self) -> bool {
        self.calls_out
    }

    /// Why this policy's decisions cannot be cached, when they cannot (it
    /// reads headers, calls a builtin that is not pure...).
    pub fn decision_cache_unavailable(&self) -> Option<&str> {
        self.cache_unavailable.as_deref()
    }

    /// Decisions kept per thread: 0 when off or unavailable.
    pub fn decision_cache_entries(&self) -> usize {
        if self.cache_unavailable.is_some() {
            0
        } else {
            self.cache_entries
        }
    }

    /// The same policy with a per-thread cache of up to `entries` decisions
    /// (0: none, the default), used only when the policy qualifies (see
    /// [`Self::decision_cache_unavailable`]).
    pub fn with_decision_cache(mut self, entries: usize) -> Policy {
        self.cache_entries = entries;
        // Threads may hold a cache made with another size.
        self.id = NEXT_POLICY_ID.fetch_add(1, Ordering::Relaxed);
        self.alive = Arc::new(());
        self
    }

    /// The same policy given the whole input document, whatever it reads
    /// (for comparisons and benchmarks). The decision cache needs the
    /// policy's own read set, so it is off too.
    pub fn with_whole_input(mut self) -> Policy {
        self.input_parts = InputParts::ALL;
        self.cache_unavailable = Some("the whole input document was asked for".into());
        self
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
}
