//! `with <builtin> as …` for the builtins usher supplies as extensions.
//!
//! OPA lets a test (or a policy) replace any function or builtin for one
//! expression: `allow with http.send as {"status_code": 200}`. regorus 0.14
//! accepts only its own builtins and the policy's functions as `with`
//! targets, so `with http.send as …` failed with "undefined rule".
//!
//! regorus looks a target up as a function of the package the `with` is
//! written in (`data.<pkg>.http.send`), and keys the replacement by the
//! target as written (`http.send`), which is also how every call site is
//! looked up before anything else. So for each package that names one of
//! usher's extensions as a `with` target, a one-line module makes that
//! name a function of the package, which calls the extension:
//!
//! ```rego
//! package authz_test.http
//! send(a1) := http.send(a1)
//! ```
//!
//! Inside `authz_test.http`, `http.send` is not a function of that package,
//! so the call reaches the extension; calls elsewhere are unchanged, and
//! calls from `authz_test` itself go through the shim to the same
//! extension. The replacement then applies wherever `http.send` is called
//! during the `with` expression, in any package, as in OPA.

use std::collections::{BTreeSet, HashSet};

use regorus::unstable::{Module, Ref};
use regorus::Value;

use crate::analysis::ref_path;

/// Where shim modules appear in errors (none is expected: the text is
/// generated from names that already parsed).
pub(crate) const SHIM_PATH_PREFIX: &str = "<usher: with-shim>";

/// `(path, text)` of one module per `(package, extension)` pair of
/// `with_targets` whose target is one of `extensions` (name, arity) and
/// not a regorus builtin (those are accepted by regorus already).
pub(crate) fn shims(
    with_targets: &[(String, String)],
    extensions: &[(&str, u8)],
) -> Vec<(String, String)> {
    let wanted: BTreeSet<(&str, &str, u8)> = with_targets
        .iter()
        .filter_map(|(package, target)| {
            let (name, arity) = extensions.iter().find(|(n, _)| n == target)?;
            if regorus::unstable::BUILTINS.contains_key(*name) {
                return None;
            }
            Some((package.as_str(), *name, *arity))
        })
        .collect();
    wanted
        .into_iter()
        .filter_map(|(package, name, arity)| {
            let (namespace, function) = name.rsplit_once('.')?;
            let args: Vec<String> = (1..=arity).map(|i| format!("a{i}")).collect();
            let args = args.join(", ");
            // Valid as v0 and as v1: a function with a value and no body.
            let text =
                format!("package {package}.{namespace}\n{function}({args}) := {name}({args})\n");
            Some((format!("{SHIM_PATH_PREFIX} {package} {name}"), text))
        })
        .collect()
}

/// The packages the shims add that no policy declares. OPA shows a package
/// holding only functions as `{}` in the object of its parent package; a
/// shim's package must not show, so a query whose value holds one has it
/// taken out again ([`Self::prune`]).
#[derive(Debug, Default)]
pub(crate) struct ShimPackages {
    /// Each shim's package path after `data`.
    paths: Vec<Vec<String>>,
    /// Every package path (and prefix of one) a policy module declares.
    declared: HashSet<Vec<String>>,
}

impl ShimPackages {
    /// From the modules loaded (shims included) and the targets found.
    pub(crate) fn new(modules: &[Ref<Module>], shims: &[(String, String)]) -> ShimPackages {
        let mut declared = HashSet::new();
        for m in modules {
            if m.package
                .span
                .source
                .get_path()
                .starts_with(SHIM_PATH_PREFIX)
            {
                continue;
            }
            if let Some(path) = ref_path(&m.package.refr) {
                let parts = components(&path);
                for n in 1..=parts.len() {
                    declared.insert(parts[..n].to_vec());
                }
            }
        }
        let paths = shims
            .iter()
            .filter_map(|(_, text)| text.lines().next()?.strip_prefix("package "))
            .map(components)
            .filter(|p| !declared.contains(p))
            .collect();
        ShimPackages { paths, declared }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Takes the shims' packages out of `value`, the value of `query`
    /// (`data.a.b`).
    pub(crate) fn prune(&self, query: &str, value: &mut Value) {
        let query = components(query.strip_prefix("data.").unwrap_or(""));
        for path in &self.paths {
            let Some(rel) = path.strip_prefix(query.as_slice()) else {
                continue;
            };
            if self.prune_at(value, &query, rel) {
                *value = Value::Undefined;
            }
        }
    }

    /// Removes `rel` below `value` (at `at`) where it leaves only empty
    /// objects no policy declared; true when `value` itself should go.
    fn prune_at(&self, value: &mut Value, at: &[String], rel: &[String]) -> bool {
        let removable = |v: &Value| matches!(v, Value::Object(o) if o.is_empty());
        let Some((first, rest)) = rel.split_first() else {
            return removable(value) && !self.declared.contains(at);
        };
        let Ok(obj) = value.as_object_mut() else {
            return false;
        };
        let key = Value::from(first.as_str());
        let mut child_at = at.to_vec();
        child_at.push(first.clone());
        if let Some(child) = obj.get_mut(&key) {
            if self.prune_at(child, &child_at, rest) {
                obj.remove(&key);
            }
        }
        obj.is_empty() && !self.declared.contains(at)
    }
}

/// `a.b["c.d"]` → `["a", "b", "c.d"]`.
fn components(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]").unwrap_or(r.len());
            out.push(r[..end].to_string());
            rest = r.get(end + 2..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_module_per_package_and_extension() {
        let targets = vec![
            ("authz_test".to_string(), "http.send".to_string()),
            ("authz_test".to_string(), "http.send".to_string()),
            ("authz_test".to_string(), "io.jwt.encode_sign".to_string()),
            ("other".to_string(), "http.send".to_string()),
            // A user function and a regorus builtin need no shim.
            ("authz_test".to_string(), "lookup".to_string()),
            ("authz_test".to_string(), "time.now_ns".to_string()),
        ];
        let ext = [
            ("http.send", 1),
            ("io.jwt.encode_sign", 3),
            ("time.now_ns", 0),
        ];
        let got = shims(&targets, &ext);
        let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "package authz_test.http\nsend(a1) := http.send(a1)\n",
                "package authz_test.io.jwt\nencode_sign(a1, a2, a3) := io.jwt.encode_sign(a1, a2, a3)\n",
                "package other.http\nsend(a1) := http.send(a1)\n",
            ]
        );
        assert!(got.iter().all(|(p, _)| p.starts_with(SHIM_PATH_PREFIX)));
    }
}
