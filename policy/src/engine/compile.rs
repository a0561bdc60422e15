//! Compiling a policy: the engine with usher's settings, builtins and
//! checks ([`build_engine`]), the query checked and resolved to a rule (or
//! evaluated as a query when it names a package, a partial object or a
//! path into a rule's value), the warm-up and the RVM (see `warmup`), and
//! the policy's revision.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use regorus::{CompiledPolicy, Engine, Value};

use super::decision_cache::KEYED;
use super::error::{one_line, query_error, regorus_error, unknown_function, ErrorKinds};
use super::warmup::{choose_rvm, sample_inputs, warm_up};
use super::{timer, Limits, Policy, PolicyError, PolicySource, RegoVersion, NEXT_POLICY_ID};
use crate::builtins::{self, BOUNDED_BUILTINS, JWT_BUILTINS};
use crate::input::InputParts;
use crate::{analysis, future_imports, nesting, recursion, with_shim};

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
        let compiled = entry_point(&mut engine, query)?;
        let by_query = compiled.is_none();
        let shim_packages = with_shim::ShimPackages::new(
            engine.get_modules(),
            &with_shim::shims(&scan.with_targets, JWT_BUILTINS),
        );

        // Warm-up: the first evaluation prepares what is left; an error that
        // does not depend on the input is reported now.
        let expected = warm_up(&engine, query, by_query, &sample_inputs(InputParts::ALL))?;
        // Only the parts of the input the policy reads are built; checked on
        // the warm-up inputs too (the analysis is meant to make this never
        // fail; if it did, the whole document it is).
        let mut input_parts = scan.input_parts;
        let mut samples = sample_inputs(input_parts);
        if !input_parts.is_all()
            && warm_up(&engine, query, by_query, &samples).ok().as_ref() != Some(&expected)
        {
            input_parts = InputParts::ALL;
            samples = sample_inputs(input_parts);
        }
        // Leave no request state in the template that every clone would copy.
        engine.set_input(Value::new_object());

        // The RVM, when it accepts the policy and agrees with the interpreter.
        let (rvm, rvm_unavailable) = match choose_rvm(
            compiled,
            &engine,
            &scan,
            query,
            &samples,
            &expected,
            limits.eval_timeout,
        ) {
            Ok(rvm) => (Some(rvm), None),
            Err(why) => (None, Some(why)),
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
            input_parts,
            cache_unavailable: cacheability(&scan, input_parts).err(),
            cache_entries: 0,
            calls_out: scan.calls.iter().any(|c| c.name == "http.send"),
            alive: Arc::new(()),
        })
    }
}

/// Whether the policy's decision is a function of the few stable request
/// fields a cache key holds (see `decision_cache`); if not, why not.
fn cacheability(scan: &analysis::Scan, parts: InputParts) -> Result<(), String> {
    if !KEYED.contains(parts) {
        return Err(format!(
            "the policy reads input.{} (not part of a cache key)",
            parts.without(KEYED).paths().join(", input.")
        ));
    }
    if let Some(name) = analysis::first_impure_call(scan) {
        return Err(format!(
            "the policy calls {name}, which is not known to be pure"
        ));
    }
    if scan.has_with {
        return Err("the policy has a `with` modifier".into());
    }
    Ok(())
}

/// The query as a rule's entry point, or `None` when it is to be
/// evaluated as a query.
///
/// A rule path compiles to an entry point (and maybe the RVM). Any other
/// path OPA accepts — a partial object built rule by rule
/// (`result["allowed"] := allow`), a package, a path into a rule's value —
/// is evaluated as a query by the interpreter, as OPA does.
fn entry_point(engine: &mut Engine, query: &str) -> Result<Option<CompiledPolicy>, PolicyError> {
    match engine.compile_with_entrypoint(&query.into()) {
        Ok(compiled) => Ok(Some(compiled)),
        Err(e) if ErrorKinds::of(&e).not_a_rule_path => {
            if !names_rule_or_data(engine, query) {
                return Err(PolicyError::Query {
                    query: query.to_string(),
                    message: "names no rule, package or data document of the policy".into(),
                });
            }
            Ok(None)
        }
        Err(e) => Err(query_error(&e, query)),
    }
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
