//! Recursion between rules and functions, refused when a policy loads, as
//! OPA refuses it at compile time (`rego_recursion_error`): regorus would
//! otherwise recurse until the thread's stack overflows, which aborts the
//! whole process.
//!
//! The graph: one node per rule or function name of a package
//! (`data.pkg.name`; every definition of a name, and every rule whose ref
//! head starts with it, is one node). An edge for every reference in a
//! rule's head, arguments or bodies to another node: a bare name of the
//! same package, an imported name, or a `data.` path. Names a rule declares
//! as its own variables (`x := …`, `some x`, function arguments) are not
//! references.

use std::collections::{BTreeMap, HashMap, HashSet};

use regorus::unstable::{AssignOp, Expr, Literal, Module, Query, Ref, Rule, RuleHead, Span};

use crate::analysis::ref_path;

/// A cycle: the names in order (the first repeated at the end) and where
/// the first one is defined.
pub(crate) struct Cycle {
    pub names: Vec<String>,
    pub file: String,
    pub line: u32,
    pub col: u32,
}

struct Node {
    span: Span,
    /// Referenced paths, resolved to `data.…` but not yet to nodes.
    refs: Vec<String>,
}

/// The first cycle found (in name order, so the answer is stable).
pub(crate) fn find_cycle(modules: &[Ref<Module>]) -> Option<Cycle> {
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    // Package → the names it defines, for bare references.
    let mut names: HashMap<String, HashSet<String>> = HashMap::new();
    for m in modules {
        let Some(pkg) = ref_path(&m.package.refr) else {
            continue;
        };
        let pkg = format!("data.{pkg}");
        for rule in &m.policy {
            if let Some((name, _)) = rule_name(rule) {
                names.entry(pkg.clone()).or_default().insert(name);
            }
        }
    }
    for m in modules {
        let Some(pkg) = ref_path(&m.package.refr) else {
            continue;
        };
        let pkg = format!("data.{pkg}");
        let imports: HashMap<String, String> = m
            .imports
            .iter()
            .filter_map(|i| {
                let path = ref_path(&i.refr)?;
                if !path.starts_with("data.") {
                    return None; // input, future.keywords, rego.v1
                }
                let alias = match &i.r#as {
                    Some(span) => span.text().to_string(),
                    None => path.rsplit('.').next()?.to_string(),
                };
                Some((alias, path))
            })
            .collect();
        let local_names = names.get(&pkg);
        for rule in &m.policy {
            let Some((name, span)) = rule_name(rule) else {
                continue;
            };
            let mut refs = Refs {
                pkg: &pkg,
                names: local_names,
                imports: &imports,
                locals: declared_vars(rule),
                out: Vec::new(),
            };
            refs.rule(rule);
            let node = nodes.entry(format!("{pkg}.{name}")).or_insert(Node {
                span,
                refs: Vec::new(),
            });
            node.refs.extend(refs.out);
        }
    }

    // Resolve each reference to the node it reaches: the longest node name
    // that is the reference or a prefix of it (segment-wise).
    let keys: Vec<&String> = nodes.keys().collect();
    let resolve = |path: &str| -> Option<usize> {
        keys.iter()
            .enumerate()
            .filter(|(_, k)| {
                path == k.as_str()
                    || path
                        .strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|(_, k)| k.len())
            .map(|(i, _)| i)
    };
    let edges: Vec<Vec<usize>> = nodes
        .values()
        .map(|n| {
            let mut e: Vec<usize> = n.refs.iter().filter_map(|r| resolve(r)).collect();
            e.sort_unstable();
            e.dedup();
            e
        })
        .collect();

    // Depth-first search with colours; iterative, so a deep graph cannot
    // overflow the stack either.
    let n = keys.len();
    let mut colour = vec![0u8; n]; // 0 new, 1 on the path, 2 done
    for start in 0..n {
        if colour[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&w) = edges[v].get(*next) {
                *next += 1;
                match colour[w] {
                    0 => {
                        colour[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(x, _)| *x == w).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..]
                            .iter()
                            .map(|(x, _)| keys[*x].clone())
                            .collect();
                        cycle.push(keys[w].clone());
                        let span = &nodes[keys[w].as_str()].span;
                        return Some(Cycle {
                            names: cycle,
                            file: span.source.get_path().clone(),
                            line: span.line,
                            col: span.col,
                        });
                    }
                    _ => {}
                }
            } else {
                colour[v] = 2;
                stack.pop();
            }
        }
    }
    None
}

/// The name a rule defines in its package (`result` for
/// `result["allowed"] := …`, `f` for `f(x) := …`) and where.
fn rule_name(rule: &Ref<Rule>) -> Option<(String, Span)> {
    let (refr, span) = match rule.as_ref() {
        Rule::Spec { head, span, .. } => match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => (refr, span),
        },
        Rule::Default { refr, span, .. } => (refr, span),
    };
    let mut base = refr;
    while let Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } = base.as_ref() {
        base = refr;
    }
    match base.as_ref() {
        Expr::Var { span: v, .. } => Some((v.text().to_string(), span.clone())),
        _ => None,
    }
}

/// Variables a rule declares for itself: function arguments, `x := …`,
/// `some x`, `some k, v in …`, `every k, v in …`.
fn declared_vars(rule: &Ref<Rule>) -> HashSet<String> {
    let mut out = HashSet::new();
    match rule.as_ref() {
        Rule::Spec { head, bodies, .. } => {
            if let RuleHead::Func { args, .. } = head {
                for a in args {
                    collect_vars(a, &mut out);
                }
            }
            for body in bodies {
                declared_in_query(&body.query, &mut out);
            }
        }
        Rule::Default { args, .. } => {
            for a in args {
                collect_vars(a, &mut out);
            }
        }
    }
    out
}

fn declared_in_query(q: &Query, out: &mut HashSet<String>) {
    for stmt in &q.stmts {
        match &stmt.literal {
            Literal::SomeVars { vars, .. } => {
                out.extend(vars.iter().map(|v| v.text().to_string()));
            }
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    collect_vars(k, out);
                }
                collect_vars(value, out);
                declared_in_comprehensions(collection, out);
            }
            Literal::Every {
                key,
                value,
                domain,
                query,
                ..
            } => {
                if let Some(k) = key {
                    out.insert(k.text().to_string());
                }
                out.insert(value.text().to_string());
                declared_in_comprehensions(domain, out);
                declared_in_query(query, out);
            }
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => {
                if let Expr::AssignExpr {
                    op: AssignOp::ColEq,
                    lhs,
                    ..
                } = expr.as_ref()
                {
                    collect_vars(lhs, out);
                }
                declared_in_comprehensions(expr, out);
            }
        }
    }
}

/// Variables declared inside the comprehensions of an expression
/// (`[u | some u in input.users]`): locals too, though a rule may bear the
/// name.
fn declared_in_comprehensions(e: &Expr, out: &mut HashSet<String>) {
    match e {
        Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
            declared_in_query(query, out);
            declared_in_comprehensions(term, out);
        }
        Expr::ObjectCompr {
            key, value, query, ..
        } => {
            declared_in_query(query, out);
            declared_in_comprehensions(key, out);
            declared_in_comprehensions(value, out);
        }
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            for i in items {
                declared_in_comprehensions(i, out);
            }
        }
        Expr::Object { fields, .. } => {
            for (_, k, v) in fields {
                declared_in_comprehensions(k, out);
                declared_in_comprehensions(v, out);
            }
        }
        Expr::Call { params, .. } => {
            for p in params {
                declared_in_comprehensions(p, out);
            }
        }
        Expr::UnaryExpr { expr, .. } => declared_in_comprehensions(expr, out),
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => {
            declared_in_comprehensions(lhs, out);
            declared_in_comprehensions(rhs, out);
        }
        Expr::Membership { collection, .. } => declared_in_comprehensions(collection, out),
        _ => {}
    }
}

/// Every variable in a pattern (`x`, `[a, b]`, `{"k": v}`).
fn collect_vars(e: &Expr, out: &mut HashSet<String>) {
    match e {
        Expr::Var { span, .. } => {
            out.insert(span.text().to_string());
        }
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            for i in items {
                collect_vars(i, out);
            }
        }
        Expr::Object { fields, .. } => {
            for (_, _, v) in fields {
                collect_vars(v, out);
            }
        }
        _ => {}
    }
}

/// The references of one rule, resolved to `data.…` paths.
struct Refs<'a> {
    pkg: &'a str,
    names: Option<&'a HashSet<String>>,
    imports: &'a HashMap<String, String>,
    locals: HashSet<String>,
    out: Vec<String>,
}

impl Refs<'_> {
    fn rule(&mut self, rule: &Ref<Rule>) {
        match rule.as_ref() {
            Rule::Spec { head, bodies, .. } => {
                match head {
                    RuleHead::Compr { refr, assign, .. } => {
                        self.head_ref(refr);
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                    RuleHead::Set { refr, key, .. } => {
                        self.head_ref(refr);
                        if let Some(k) = key {
                            self.expr(k);
                        }
                    }
                    RuleHead::Func { assign, .. } => {
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
            Rule::Default { value, .. } => self.expr(value),
        }
    }

    /// Only the index expressions of a rule's own head are references
    /// (`result[input.x]`), not its name.
    fn head_ref(&mut self, refr: &Expr) {
        let mut cur = refr;
        loop {
            match cur {
                Expr::RefDot { refr, .. } => cur = refr,
                Expr::RefBrack { refr, index, .. } => {
                    self.expr(index);
                    cur = refr;
                }
                _ => return,
            }
        }
    }

    fn query(&mut self, q: &Query) {
        for stmt in &q.stmts {
            match &stmt.literal {
                Literal::SomeVars { .. } => {}
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
                Literal::Every { domain, query, .. } => {
                    self.expr(domain);
                    self.query(query);
                }
            }
            for w in &stmt.with_mods {
                self.expr(&w.r#as);
            }
        }
    }

    /// A reference path as written, resolved against imports and the
    /// package's own names.
    fn reference(&mut self, path: &str) {
        let first = path
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_string();
        if first == "data" {
            self.out.push(path.to_string());
        } else if self.locals.contains(&first) {
            // The rule's own variable.
        } else if let Some(target) = self.imports.get(&first) {
            self.out.push(format!("{target}{}", &path[first.len()..]));
        } else if self.names.is_some_and(|n| n.contains(&first)) {
            self.out.push(format!("{}.{path}", self.pkg));
        }
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Var { span, .. } => self.reference(span.text()),
            Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                match ref_path(e) {
                    Some(path) => self.reference(&path),
                    None => {
                        // `a[x].b`: the part before the first dynamic index.
                        let mut cur = e;
                        while let Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } = cur {
                            if let Some(path) = ref_path(refr) {
                                self.reference(&path);
                                break;
                            }
                            cur = refr;
                        }
                    }
                }
                // Index expressions may hold references of their own.
                let mut cur = e;
                while let Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } = cur {
                    if let Expr::RefBrack { index, .. } = cur {
                        self.expr(index);
                    }
                    cur = refr;
                }
            }
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
                self.expr(key);
                self.expr(value);
                self.query(query);
            }
            Expr::Call { fcn, params, .. } => {
                if let Some(name) = ref_path(fcn) {
                    self.reference(&name);
                }
                for p in params {
                    self.expr(p);
                }
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr),
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
                if let Some(k) = key {
                    self.expr(k);
                }
                self.expr(value);
                self.expr(collection);
            }
        }
    }
}
