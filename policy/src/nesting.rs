//! A bound on how deeply `[ ]` and `{ }` nest in a policy's text, checked
//! before regorus parses it: its parser's time grows exponentially with
//! that depth (measured: each level about doubles it; 18 levels took over
//! 20 s in a debug build), so a policy file could otherwise hang a load or
//! a reload. Real policies nest a handful of levels.

use crate::engine::PolicyError;

/// Deepest `[`/`{` nesting accepted.
pub(crate) const MAX_NESTING: usize = 12;

/// Refuses `text` (the file `path`) if brackets and braces outside strings
/// and comments nest deeper than [`MAX_NESTING`], naming where.
pub(crate) fn check(path: &str, text: &str) -> Result<(), PolicyError> {
    let mut depth = 0usize;
    let (mut line, mut col) = (1u32, 0u32);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        col += 1;
        match c {
            '\n' => {
                line += 1;
                col = 0;
            }
            '#' => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        col = 0;
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    col += 1;
                    match c {
                        '\\' => {
                            chars.next();
                            col += 1;
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    col += 1;
                    if c == '\n' {
                        line += 1;
                        col = 0;
                    }
                    if c == '`' {
                        break;
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(PolicyError::Located {
                        file: path.to_string(),
                        line,
                        col,
                        message: format!(
                            "brackets and braces nest more than {MAX_NESTING} deep; split the expression \
                             (deeper nesting makes the Rego parser's time grow exponentially)"
                        ),
                    });
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_nesting_passes_deep_nesting_is_refused_with_its_place() {
        let ok = "package p\nallow if { x := {\"a\": [1, {\"b\": [2]}]}; x }\n";
        assert!(check("p.rego", ok).is_ok());
        let deep = format!("package p\nx := {}1{}\n", "[".repeat(13), "]".repeat(13));
        match check("p.rego", &deep) {
            Err(PolicyError::Located { line, col, .. }) => assert_eq!((line, col), (2, 18)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = format!(
            "package p\n# {}\nx := \"{}\"\ny := `{}`\n",
            "[".repeat(40),
            "{\\\"".repeat(40),
            "[".repeat(40)
        );
        assert!(check("p.rego", &text).is_ok());
    }
}
