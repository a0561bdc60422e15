//! `glob.match` as OPA has it (OPA uses gobwas/glob): regorus' version
//! differs — `**` does not cross delimiters when glued to other text
//! (`glob.match("/status**", ["/"], "/status/health/deep")` is true in OPA,
//! false in regorus) — and it caches patterns behind a process-wide mutex.
//!
//! Syntax: `*` any run of non-delimiters, `**` any run, `?` one
//! non-delimiter, `[abc]` / `[a-z]` / `[!a-z]` one character of (not of) a
//! class, `{a,b*}` alternatives (which may hold wildcards), `\x` the
//! character x. Delimiters: `null` none, `[]` the default `["."]`.
//!
//! Matching is a dynamic programme over (pattern token, input position):
//! O(tokens × input) per alternative, whatever the input; no backtracking.

/// Alternatives are expanded; more than this many is refused (undefined).
const MAX_ALTERNATIVES: usize = 256;

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Char(char),
    /// `*`
    Any,
    /// `**`
    Super,
    /// `?`
    Single,
    /// `[...]`: ranges, negated.
    Class(Vec<(char, char)>, bool),
}

/// A malformed pattern or delimiter: `glob.match` is then undefined, as a
/// failing builtin is in OPA's non-strict mode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GlobError;

/// Whether `input` matches `pattern`, with `delimiters` (`None`: none).
pub(crate) fn glob_match(
    pattern: &str,
    delimiters: Option<&[char]>,
    input: &str,
) -> Result<bool, GlobError> {
    let default = ['.'];
    let delimiters: &[char] = match delimiters {
        None => &[],
        Some([]) => &default,
        Some(d) => d,
    };
    let input: Vec<char> = input.chars().collect();
    let alternatives = expand(pattern)?;
    Ok(alternatives
        .iter()
        .any(|tokens| matches(tokens, &input, delimiters)))
}

/// The pattern as token lists, one per combination of `{…}` choices.
fn expand(pattern: &str) -> Result<Vec<Vec<Token>>, GlobError> {
    let chars: Vec<char> = pattern.chars().collect();
    let (alts, end) = sequence(&chars, 0, false)?;
    if end != chars.len() {
        return Err(GlobError);
    }
    Ok(alts)
}

/// Parses from `i` up to the end, or (inside braces) up to `,` or `}`.
/// Returns every expansion and where it stopped.
fn sequence(
    chars: &[char],
    mut i: usize,
    in_braces: bool,
) -> Result<(Vec<Vec<Token>>, usize), GlobError> {
    let mut alts: Vec<Vec<Token>> = vec![Vec::new()];
    let push = |alts: &mut Vec<Vec<Token>>, t: Token| {
        for a in alts.iter_mut() {
            a.push(t.clone());
        }
    };
    while i < chars.len() {
        match chars[i] {
            ',' | '}' if in_braces => return Ok((alts, i)),
            '\\' => {
                let c = *chars.get(i + 1).ok_or(GlobError)?;
                push(&mut alts, Token::Char(c));
                i += 2;
            }
            '*' => {
                if chars.get(i + 1) == Some(&'*') {
                    push(&mut alts, Token::Super);
                    i += 2;
                } else {
                    push(&mut alts, Token::Any);
                    i += 1;
                }
            }
            '?' => {
                push(&mut alts, Token::Single);
                i += 1;
            }
            '[' => {
                let (class, next) = class(chars, i + 1)?;
                push(&mut alts, class);
                i = next;
            }
            '{' => {
                // Each choice is a sequence of its own; the whole group
                // multiplies the expansions so far.
                let mut choices: Vec<Vec<Token>> = Vec::new();
                let mut j = i + 1;
                loop {
                    let (sub, stop) = sequence(chars, j, true)?;
                    choices.extend(sub);
                    match chars.get(stop) {
                        Some(',') => j = stop + 1,
                        Some('}') => {
                            i = stop + 1;
                            break;
                        }
                        _ => return Err(GlobError),
                    }
                }
                let mut next = Vec::with_capacity(alts.len() * choices.len());
                for a in &alts {
                    for c in &choices {
                        let mut joined = a.clone();
                        joined.extend(c.iter().cloned());
                        next.push(joined);
                    }
                }
                if next.len() > MAX_ALTERNATIVES {
                    return Err(GlobError);
                }
                alts = next;
            }
            c => {
                push(&mut alts, Token::Char(c));
                i += 1;
            }
        }
    }
    if in_braces {
        return Err(GlobError); // unclosed `{`
    }
    Ok((alts, i))
}

/// `[...]` from just after `[`: the class and the index after `]`.
fn class(chars: &[char], mut i: usize) -> Result<(Token, usize), GlobError> {
    let negated = chars.get(i) == Some(&'!');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *chars.get(i).ok_or(GlobError)?;
        if c == ']' && !ranges.is_empty() {
            return Ok((Token::Class(ranges, negated), i + 1));
        }
        let c = if c == '\\' {
            i += 1;
            *chars.get(i).ok_or(GlobError)?
        } else {
            c
        };
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|e| *e != ']') {
            let hi = chars[i + 2];
            if hi < c {
                return Err(GlobError);
            }
            ranges.push((c, hi));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
}

/// `row[j]`: the tokens from the current one on match `input[j..]`.
fn matches(tokens: &[Token], input: &[char], delimiters: &[char]) -> bool {
    let n = input.len();
    let is_delim = |c: char| delimiters.contains(&c);
    let mut next = vec![false; n + 1];
    next[n] = true;
    let mut row = vec![false; n + 1];
    for t in tokens.iter().rev() {
        match t {
            Token::Any | Token::Super => {
                row[n] = next[n];
                for j in (0..n).rev() {
                    let step = matches!(t, Token::Super) || !is_delim(input[j]);
                    row[j] = next[j] || (step && row[j + 1]);
                }
            }
            _ => {
                row[n] = false;
                for j in 0..n {
                    let c = input[j];
                    let one = match t {
                        Token::Char(p) => *p == c,
                        Token::Single => !is_delim(c),
                        Token::Class(ranges, negated) => {
                            !is_delim(c)
                                && ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
                                    != *negated
                        }
                        Token::Any | Token::Super => false,
                    };
                    row[j] = one && next[j + 1];
                }
            }
        }
        std::mem::swap(&mut row, &mut next);
    }
    next[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, d: Option<&[char]>, s: &str) -> bool {
        glob_match(p, d, s).unwrap()
    }

    /// The examples of OPA's documentation of glob.match.
    #[test]
    fn opa_documented_examples() {
        let dot: &[char] = &[];
        assert!(m("*.github.com", Some(dot), "api.github.com"));
        assert!(!m("*.github.com", Some(dot), "api.cdn.github.com"));
        assert!(m("*hub.com", None, "api.cdn.github.com"));
        assert!(m("*:github:com", Some(&[':']), "api:github:com"));
        assert!(m("api.**.com", Some(dot), "api.github.com"));
        assert!(m("api.**.com", Some(dot), "api.cdn.github.com"));
        assert!(m("?at", Some(dot), "cat"));
        assert!(!m("?at", Some(dot), "at"));
        assert!(m("[abc]at", Some(dot), "bat"));
        assert!(!m("[abc]at", Some(dot), "fat"));
        assert!(m("[!abc]at", Some(dot), "fat"));
        assert!(m("[a-c]at", Some(dot), "cat"));
        assert!(!m("[!a-c]at", Some(dot), "cat"));
        assert!(m("{cat,bat,[fr]at}", Some(dot), "rat"));
        assert!(!m("{cat,bat,[fr]at}", Some(dot), "at"));
    }

    #[test]
    fn super_asterisk_glued_to_text_crosses_delimiters() {
        let slash: &[char] = &['/'];
        assert!(m("/status**", Some(slash), "/status/health/deep"));
        assert!(m("/api/**.json", Some(slash), "/api/v1/orders.json"));
        assert!(!m("/api/*.json", Some(slash), "/api/v1/orders.json"));
        assert!(m("/api/*", Some(slash), "/api/orders"));
        assert!(!m("/api/*", Some(slash), "/api/orders/1"));
    }

    #[test]
    fn escapes_and_bad_patterns() {
        assert!(m("a\\*b", None, "a*b"));
        assert!(!m("a\\*b", None, "axb"));
        for bad in ["a{b", "[", "[]", "a\\", "[z-a]"] {
            assert_eq!(glob_match(bad, None, "x"), Err(GlobError), "{bad}");
        }
    }

    #[test]
    fn long_inputs_take_linear_time_per_token() {
        let s = "a".repeat(20_000);
        assert!(!m("*a*a*a*a*a*a*a*b", None, &s));
    }
}
