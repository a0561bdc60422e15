//! [`PolicyError`], and reading regorus' errors.
//!
//! regorus 0.14.1 gives most of its errors as `anyhow` messages with no
//! type to downcast to: a position appears only as `--> file:line:col` in
//! the text, and a missing function, a query that names no rule or two
//! conflicting rule values only as words. Only its limits have types
//! ([`LimitError`] from the interpreter, [`VmError`] from the RVM). This
//! module is the one place that reads either: [`regorus_error`] and
//! [`eval_error_message`] take the position out of the text, [`ErrorKinds`]
//! says what kind of failure a message describes, and [`hit_time_limit`] /
//! [`vm_hit_time_limit`] check the typed limit errors.

use std::time::Duration;

use regorus::rvm::vm::VmError;
use regorus::LimitError;

use crate::analysis;

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

pub(super) fn one_line(s: &str) -> String {
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

pub(super) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
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

/// A query error as usher reports it: at a position when regorus gives
/// one, otherwise as a [`PolicyError::Query`] naming the query.
pub(super) fn query_error(err: &anyhow::Error, query: &str) -> PolicyError {
    match regorus_error(err, "") {
        located @ PolicyError::Located { .. } => located,
        other => PolicyError::Query {
            query: query.to_string(),
            message: match other {
                PolicyError::File { message, .. } => message,
                o => o.to_string(),
            },
        },
    }
}

/// An evaluation error's text as one line, `file:line:col: message` when
/// it carries a position.
pub(super) fn eval_error_message(text: &str) -> String {
    match locate(text) {
        Some((file, line, col, message)) => format!("{file}:{line}:{col}: {message}"),
        None => one_line(text),
    }
}

/// The kinds of failure usher tells apart in a regorus error.
///
/// regorus 0.14.1 has no error type for any of them: each is an
/// `anyhow!`/`bail!` message (`"not a valid rule path"` from its rule
/// lookup, `"could not find function …"` and `"rule conflicts with rule at
/// …"` from the interpreter), so they can only be told apart by their
/// words, and [`ErrorKinds::of`] is the only place that looks. If a regorus
/// release gives them types, this is what to change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ErrorKinds {
    /// The query is not a path to a rule (`compile_with_entrypoint`,
    /// `eval_rule`).
    pub(super) not_a_rule_path: bool,
    /// The policy calls a function nobody defines.
    pub(super) unknown_function: bool,
    /// `not a rule`: no message of regorus 0.14.1 says this any more;
    /// kept so that the warm-up refuses exactly what it refused before.
    pub(super) not_a_rule: bool,
    /// Two complete definitions of a rule gave different values.
    pub(super) rule_conflict: bool,
}

impl ErrorKinds {
    pub(super) fn of(err: &anyhow::Error) -> ErrorKinds {
        let text = format!("{err:#}");
        ErrorKinds {
            not_a_rule_path: text.contains("not a valid rule path"),
            unknown_function: text.contains("could not find function"),
            not_a_rule: text.contains("not a rule"),
            rule_conflict: text.contains("conflicts with rule"),
        }
    }
}

/// Whether the interpreter stopped at the evaluation's time limit.
pub(super) fn hit_time_limit(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<LimitError>(),
        Some(LimitError::TimeLimitExceeded { .. })
    )
}

/// Whether the RVM stopped at the evaluation's time limit.
pub(super) fn vm_hit_time_limit(err: &VmError) -> bool {
    matches!(err, VmError::TimeLimitExceeded { .. })
}
