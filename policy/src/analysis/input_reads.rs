//! Which parts of `input` a policy can read, found from its references.
//!
//! Every value a policy gets from `input` starts as a reference whose base
//! is the variable `input`: `input.attributes.source.principal`,
//! `input.parsed_path[0]`, `input.attributes.request.http.headers[name]`.
//! The static start of such a reference (up to its first index that is not
//! a string literal) names a subtree; the policy may see all of that
//! subtree, and nothing outside it, through that reference — also through
//! a variable bound to it, since the variable holds the same subtree. So
//! the union of those subtrees is all the policy can read.
//!
//! Anything else falls back to the whole document (`InputParts::ALL`):
//! `input` on its own (passed to a function or builtin, `walk(input)`,
//! `x := input`, `input[x]`), `with input… as`, `import input`. Imports of a
//! path below `input` (`import input.attributes.request.http as req`) read
//! that subtree, as a reference would. A policy's other modules (helpers,
//! tests) are walked too: the read set is over every module loaded.

use regorus::unstable::Expr;
use regorus::Value;

/// The static start of `e` below `input` when `e` is a reference based on
/// the variable `input` (`[]` for `input` itself, or `input[x]`).
pub(crate) fn input_path(e: &Expr) -> Option<Vec<String>> {
    walk(e).map(|(path, _)| path)
}

/// (the static start, whether it runs to the end of `e`)
fn walk(e: &Expr) -> Option<(Vec<String>, bool)> {
    let (mut path, whole) = match e {
        Expr::Var { span, .. } => return (span.text() == "input").then(|| (Vec::new(), true)),
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => walk(refr)?,
        _ => return None,
    };
    if !whole {
        return Some((path, false));
    }
    let segment = match e {
        Expr::RefDot { field, .. } => Some(match &field.1 {
            Value::String(s) => s.to_string(),
            _ => field.0.text().to_string(),
        }),
        Expr::RefBrack { index, .. } => match index.as_ref() {
            Expr::String {
                value: Value::String(s),
                ..
            }
            | Expr::RawString {
                value: Value::String(s),
                ..
            } => Some(s.to_string()),
            // A variable, a number, anything computed: the static start
            // ends here, and everything below it may be read.
            _ => None,
        },
        _ => None,
    };
    match segment {
        Some(s) => {
            path.push(s);
            Some((path, true))
        }
        None => Some((path, false)),
    }
}

/// Every index expression along a reference (to be walked for calls and
/// further references), base excluded.
pub(crate) fn indices(e: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut at = e;
    loop {
        match at {
            Expr::RefDot { refr, .. } => at = refr,
            Expr::RefBrack { refr, index, .. } => {
                out.push(index.as_ref());
                at = refr;
            }
            _ => return out,
        }
    }
}
