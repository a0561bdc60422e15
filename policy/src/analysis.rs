//! A static walk over the parsed modules: every function call (so that a
//! builtin nobody provides is reported when the policy loads, wherever the
//! call sits), the user-defined functions, the rules of each package, the
//! parts of `input` the policy can read (`input_reads`) and whether its
//! calls are all pure (`purity`).

use std::collections::HashSet;

use regorus::unstable::{Expr, Literal, Module, Query, Ref, Rule, RuleHead, Span};
use regorus::Value;

use crate::input::InputParts;

mod input_reads;
mod purity;
#[cfg(test)]
mod tests;

pub(crate) use purity::first_impure_call;

/// A call in the source.
pub(crate) struct CallSite {
    pub name: String,
    pub file: String,
    pub line: u32,
    pub col: u32,
}

#[derive(Default)]
pub(crate) struct Scan {
    pub calls: Vec<CallSite>,
    /// Last segment of every user-defined function (`f` for `a.b.f(x)`).
    pub functions: HashSet<String>,
    /// `(package, target)` of every `with` modifier whose target is a plain
    /// reference outside `data` and `input` (a function or builtin), e.g.
    /// `("authz_test", "http.send")`.
    pub with_targets: Vec<(String, String)>,
    /// A construct regorus' RVM evaluates differently from OPA (and from
    /// the interpreter), when the policy has one: the RVM is then not used.
    pub rvm_hazard: Option<&'static str>,
    /// Variables declared by `some x` or `every k, v in` and never used,
    /// which OPA refuses ("declared var x unused").
    pub unused_declared: Vec<CallSite>,
    /// The parts of `input` the policy can read (see `input_reads`).
    pub input_parts: InputParts,
    /// Some statement has a `with` modifier (on anything).
    pub has_with: bool,
    /// The package of the module being walked.
    package: String,
    /// The text of the rule being walked.
    rule_text: String,
}

impl Scan {
    pub(crate) fn calls_any(&self, names: &[&str]) -> bool {
        self.calls.iter().any(|c| names.contains(&c.name.as_str()))
    }

    /// Calls that are neither a regorus builtin, one of `extra` (usher's
    /// extensions), nor (by name) a user-defined function.
    pub(crate) fn unknown<'a>(
        &'a self,
        extra: &'a [&str],
    ) -> impl Iterator<Item = &'a CallSite> + 'a {
        self.calls.iter().filter(move |c| {
            let last = c.name.rsplit('.').next().unwrap_or_default();
            !(c.name == "print"
                || regorus::unstable::BUILTINS.contains_key(c.name.as_str())
                || extra.contains(&c.name.as_str())
                || self.functions.contains(last))
        })
    }
}

/// The dotted text of a reference (`io.jwt.decode`, `data.a["b"].c`).
pub(crate) fn ref_path(e: &Expr) -> Option<String> {
    match e {
        Expr::Var { span, .. } => Some(span.text().to_string()),
        Expr::RefDot { refr, field, .. } => {
            let base = ref_path(refr)?;
            let name = match &field.1 {
                Value::String(s) => s.to_string(),
                _ => field.0.text().to_string(),
            };
            Some(format!("{base}.{name}"))
        }
        Expr::RefBrack { refr, index, .. } => {
            let base = ref_path(refr)?;
            match index.as_ref() {
                Expr::String {
                    value: Value::String(s),
                    ..
                } => Some(format!("{base}[{s:?}]")),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The longest static start of a reference: `codes` for `codes[k]`,
/// `a.b` for `a.b[x].c`.
pub(crate) fn static_prefix(e: &Expr) -> Option<String> {
    if let Some(path) = ref_path(e) {
        return Some(path);
    }
    match e {
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => static_prefix(refr),
        _ => None,
    }
}

/// The leftmost part of a reference (`io` of `io.jwt.decode`): where it starts.
fn ref_base(e: &Expr) -> &Expr {
    match e {
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => ref_base(refr),
        other => other,
    }
}

pub(crate) fn scan(modules: &[Ref<Module>]) -> Scan {
    let mut s = Scan::default();
    for m in modules {
        s.package = ref_path(&m.package.refr).unwrap_or_default();
        // `import input.a.b as x` reads that subtree; `import input`, all.
        for import in &m.imports {
            s.expr(&import.refr);
        }
        for rule in &m.policy {
            s.rule(rule);
        }
    }
    s
}

fn site(span: &Span) -> (String, u32, u32) {
    (span.source.get_path().clone(), span.line, span.col)
}

impl Scan {
    fn rule(&mut self, rule: &Rule) {
        match rule {
            Rule::Spec {
                head, bodies, span, ..
            } => {
                self.rule_text = span.text().to_string();
                match head {
                    RuleHead::Compr { refr, assign, .. } => {
                        self.expr(refr);
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                    RuleHead::Set { refr, key, .. } => {
                        self.expr(refr);
                        if let Some(k) = key {
                            self.expr(k);
                        }
                    }
                    RuleHead::Func {
                        refr, args, assign, ..
                    } => {
                        if let Some(name) = ref_path(refr) {
                            let last = name.rsplit('.').next().unwrap_or_default().to_string();
                            self.functions.insert(last);
                        }
                        for a in args {
                            self.expr(a);
                        }
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                }
                for body in bodies {
                    if let Some(a) = &body.assign {
                        self.expr(&a.value);
                    }
                    self.query(&body.query);
                }
            }
            Rule::Default {
                refr, args, value, ..
            } => {
                if !args.is_empty() {
                    if let Some(name) = ref_path(refr) {
                        let last = name.rsplit('.').next().unwrap_or_default().to_string();
                        self.functions.insert(last);
                    }
                }
                self.expr(value);
            }
        }
    }

    fn query(&mut self, q: &Query) {
        for stmt in &q.stmts {
            match &stmt.literal {
                Literal::SomeVars { vars, .. } => {
                    // Used: named again anywhere in the rule (conservative:
                    // a string or comment with the name counts too).
                    for v in vars {
                        if v.text() != "_" && mentions(&self.rule_text, v.text()) < 2 {
                            self.unused(v);
                        }
                    }
                }
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(k) = key {
                        self.expr(k);
                    }
                    self.expr(value);
                    self.expr(collection);
                }
                Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => self.expr(expr),
                Literal::Every {
                    key,
                    value,
                    domain,
                    query,
                    ..
                } => {
                    // Used: named in the body.
                    let body = query.span.text();
                    for v in key.iter().chain(Some(value)) {
                        if v.text() != "_" && mentions(body, v.text()) == 0 {
                            self.unused(v);
                        }
                    }
                    self.expr(domain);
                    self.query(query);
                }
            }
            for w in &stmt.with_mods {
                self.has_with = true;
                // `with input as …`, `with input.a as …`: the whole document,
                // rather than reason about what the replacement hides.
                if input_reads::input_path(&w.refr).is_some() {
                    self.input_parts = InputParts::ALL;
                }
                if let Some(target) = ref_path(&w.refr) {
                    let root = target.split(['.', '[']).next().unwrap_or_default();
                    if root != "data" && root != "input" {
                        self.with_targets.push((self.package.clone(), target));
                    }
                }
                self.expr(&w.refr);
                self.expr(&w.r#as);
            }
        }
    }

    fn unused(&mut self, var: &Span) {
        let (file, line, col) = site(var);
        self.unused_declared.push(CallSite {
            name: var.text().to_string(),
            file,
            line,
            col,
        });
    }

    fn expr(&mut self, e: &Expr) {
        if let Some(path) = input_reads::input_path(e) {
            // A read of `input`: its subtree is needed. Only the indices
            // along the reference are walked further (the base is `input`).
            let parts = InputParts::reached_by(&path);
            self.input_parts = self.input_parts.union(parts);
            for index in input_reads::indices(e) {
                self.expr(index);
            }
            return;
        }
        match e {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. }
            | Expr::Var { .. } => {}
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                for i in items {
                    self.expr(i);
                }
            }
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    self.expr(k);
                    self.expr(v);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.expr(term);
                self.query(query);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                // The RVM keeps one value of a key given two, where OPA
                // fails with "object keys must be unique".
                self.rvm_hazard.get_or_insert(
                    "an object comprehension (the RVM does not refuse duplicate keys)",
                );
                self.expr(key);
                self.expr(value);
                self.query(query);
            }
            Expr::Call { fcn, params, .. } => {
                if let Some(name) = ref_path(fcn) {
                    let (file, line, col) = site(ref_base(fcn).span());
                    self.calls.push(CallSite {
                        name,
                        file,
                        line,
                        col,
                    });
                }
                for p in params {
                    self.expr(p);
                }
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr),
            Expr::RefDot { refr, .. } => self.expr(refr),
            Expr::RefBrack { refr, index, .. } => {
                self.expr(refr);
                self.expr(index);
            }
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if key.is_some() {
                    // `k, v in xs`: the RVM does not compare the key.
                    self.rvm_hazard.get_or_insert(
                        "a `key, value in collection` test (the RVM ignores the key)",
                    );
                }
                if let Some(k) = key {
                    self.expr(k);
                }
                self.expr(value);
                self.expr(collection);
            }
        }
    }
}

/// The rules a module defines: (name, span), in source order, each name once.
pub(crate) fn rule_names(module: &Module) -> Vec<(String, Span)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for rule in &module.policy {
        let (refr, span) = match rule.as_ref() {
            Rule::Spec {
                head: RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. },
                span,
                ..
            } => (refr, span),
            _ => continue,
        };
        if let Some(name) = static_prefix(refr) {
            if seen.insert(name.clone()) {
                out.push((name, span.clone()));
            }
        }
    }
    out
}

/// How many times `name` appears in `text` as a whole identifier.
fn mentions(text: &str, name: &str) -> usize {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.split(|c: char| !is_ident(c))
        .filter(|word| *word == name)
        .count()
}
