//! Evaluating a compiled policy per request: each thread keeps its own
//! evaluator for the policy (a `RegoVM`, or a clone of the prepared
//! interpreter), a failure or a timeout denies, and a panic inside regorus
//! is a failed evaluation, never a lost thread.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Value};

use super::error::{eval_error_message, hit_time_limit, panic_message, vm_hit_time_limit};
use super::{decision_cache, timer, Policy, PolicyError, Rvm};
use crate::decision::Decision;
use crate::input::RequestInput;

enum Failure {
    Timeout,
    Error(String),
}

impl Policy {
    /// The per-request call. Never panics, never errors: fails closed.
    ///
    /// Builds only the parts of the input document the policy reads, and
    /// answers from this thread's decision cache when the policy has one
    /// (see `decision_cache`).
    pub fn evaluate(&self, input: &RequestInput<'_>) -> Decision {
        let start = Instant::now();
        let entries = self.decision_cache_entries();
        let key = match entries {
            0 => None,
            _ => decision_cache::key(self.input_parts, input),
        };
        let Some(key) = key else {
            return self
                .decide_value(input.to_value_with(self.input_parts), start)
                .0;
        };
        let cached = decision_cache::with_cache(self.id, &self.alive, entries, |c| c.get(&key));
        if let Some(Some(mut d)) = cached {
            d.eval_micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            return d;
        }
        let (d, complete) = self.decide_value(input.to_value_with(self.input_parts), start);
        if complete {
            let value = d.clone();
            decision_cache::with_cache(self.id, &self.alive, entries, |c| {
                c.insert(key.into_boxed_slice(), value)
            });
        }
        d
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
        self.decide_value(Value::from(input.clone()), start).0
    }

    /// The decision, and whether the evaluation ran to its end (no
    /// timeout, no error: a decision that may be cached).
    fn decide_value(&self, input: Value, start: Instant) -> (Decision, bool) {
        let (mut d, complete) = match self.eval_value(input) {
            Ok(v) => (Decision::from_value(&v), true),
            Err(Failure::Timeout) => (
                Decision::deny(format!(
                    "evaluation exceeded {}ms",
                    self.limits.eval_timeout.as_millis()
                )),
                false,
            ),
            Err(Failure::Error(e)) => (Decision::deny(format!("evaluation error: {e}")), false),
        };
        d.eval_micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        (d, complete)
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
                    Failure::Error(eval_error_message(&text))
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
                r.map_err(|e| (vm_hit_time_limit(&e), e.to_string()))
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
    r.map_err(|e| (hit_time_limit(&e), format!("{e:#}")))
}

/// The value of a one-expression query: undefined when it has no result.
pub(super) fn first_value(results: regorus::QueryResults) -> Value {
    results
        .result
        .into_iter()
        .next()
        .and_then(|r| r.expressions.into_iter().next())
        .map_or(Value::Undefined, |e| e.value)
}

pub(super) fn new_vm(rvm: &Rvm, timeout: Duration) -> Result<RegoVM, regorus::rvm::vm::VmError> {
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
