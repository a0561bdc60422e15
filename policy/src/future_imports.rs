//! `import future.keywords` next to `import future.keywords.every`.
//!
//! Policies written for OPA 0.x often import the whole `future.keywords`
//! and one of its keywords too; under Rego v1 both are no-ops and OPA 1.x
//! loads the module. regorus refuses it in v1 ("this import shadows
//! previous import of `every`"), so when a module imports the whole set,
//! its single-keyword imports are blanked before parsing (the line stays,
//! empty, so that every position in an error is unchanged).

use std::borrow::Cow;

/// `text` with its `import future.keywords.<kw>` lines blanked when it also
/// has `import future.keywords`; `text` itself otherwise.
pub(crate) fn drop_redundant(text: &str) -> Cow<'_, str> {
    let whole = text.lines().any(|l| import_of(l) == Some(None));
    let single = text.lines().any(|l| matches!(import_of(l), Some(Some(_))));
    if !(whole && single) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if matches!(import_of(line), Some(Some(_))) {
            out.extend(line.chars().filter(|c| *c == '\r' || *c == '\n'));
        } else {
            out.push_str(line);
        }
    }
    Cow::Owned(out)
}

/// `Some(None)` for `import future.keywords`, `Some(Some(kw))` for
/// `import future.keywords.kw` (a trailing comment allowed), `None` for any
/// other line.
fn import_of(line: &str) -> Option<Option<&str>> {
    let code = line.split('#').next().unwrap_or_default().trim();
    let rest = code.strip_prefix("import")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let path = rest.trim();
    if path == "future.keywords" {
        return Some(None);
    }
    let kw = path.strip_prefix("future.keywords.")?;
    if !kw.is_empty() && kw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Some(Some(kw))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_imports_are_blanked_only_beside_the_whole_set() {
        let both = "package p\nimport future.keywords\nimport future.keywords.every # loop\r\nimport  future.keywords.in\nallow if true\n";
        assert_eq!(
            drop_redundant(both),
            "package p\nimport future.keywords\n\r\n\nallow if true\n"
        );
        for unchanged in [
            "package p\nimport future.keywords.every\nimport future.keywords.in\n",
            "package p\nimport future.keywords\n",
            "package p\nimport future.keywords\nimport data.future.keywords.every\n",
            "package p\nimport future.keywords\nimportant := \"import future.keywords.in\"\n",
        ] {
            assert!(
                matches!(drop_redundant(unchanged), Cow::Borrowed(_)),
                "{unchanged}"
            );
        }
    }
}
