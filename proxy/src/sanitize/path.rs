//! Request path normalisation, as Envoy does it when Istio turns it on:
//! the policy, the rate limits and the app must all see the same path, or a
//! rule on `/orders/` can be walked around with `/orders/../admin`.
//!
//! In order, on the path (the query is left as sent):
//! 1. percent-encodings are checked (`%zz` refused), `%00` is refused, the
//!    unreserved characters (RFC 3986 §2.3) are decoded and the hex digits
//!    of the others upper-cased (§6.2.2);
//! 2. encoded slashes (`%2F`, `%5C`) and raw backslashes are refused,
//!    kept, or turned into `/`, as configured;
//! 3. runs of slashes are merged;
//! 4. dot segments are removed (§5.2.4), counting `%2e` as a dot whatever
//!    step 1 did; a dot segment with a `;parameter` (`..;`, which Java
//!    servers treat as `..`) is refused.

use std::borrow::Cow;

/// What to do with `%2F`, `%5C` and `\` in a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// 400: the safe default, since apps disagree on what they mean.
    #[default]
    Reject,
    /// Left as they are: the policy sees `%2F`, an app that decodes it may
    /// see another path.
    Keep,
    /// Turned into `/` (then merged and dot-segment removed).
    Decode,
}

/// Which normalisation steps run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathOptions {
    pub decode_unreserved: bool,
    pub merge_slashes: bool,
    pub remove_dot_segments: bool,
    pub escaped_slashes: EscapedSlashes,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions {
            decode_unreserved: true,
            merge_slashes: true,
            remove_dot_segments: true,
            escaped_slashes: EscapedSlashes::Reject,
        }
    }
}

/// Why a path was refused (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path has an invalid percent-encoding")]
    InvalidEncoding,
    #[error("the path contains an encoded NUL")]
    Nul,
    #[error("the path contains an encoded slash or backslash")]
    EscapedSlash,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path has a dot segment with parameters")]
    DotSegmentParameter,
    #[error("the request target is not an absolute path")]
    NotAbsolute,
}

/// The normalised form of `path` (no query), borrowed when nothing changes.
/// A path that does not start with `/` (`*` for `OPTIONS *`) is returned as is.
pub fn normalize<'a>(path: &'a str, opts: &PathOptions) -> Result<Cow<'a, str>, PathError> {
    if !path.starts_with('/') || is_plain(path) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path, opts)?;
    let merged = if opts.merge_slashes {
        merge_slashes(decoded)
    } else {
        decoded
    };
    check_dot_parameters(&merged)?;
    let out = if opts.remove_dot_segments {
        remove_dot_segments(merged)
    } else {
        merged
    };
    Ok(out)
}

/// Nothing to do: no `%`, no `\`, no `//`, no segment starting with `.`.
/// The common case, checked in one pass without allocating.
fn is_plain(path: &str) -> bool {
    let b = path.as_bytes();
    let mut prev = 0u8;
    for &c in b {
        match c {
            b'%' | b'\\' => return false,
            b'/' if prev == b'/' => return false,
            b'.' if prev == b'/' => return false,
            _ => {}
        }
        prev = c;
    }
    true
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Step 1 and 2: percent-encodings and backslashes.
fn decode<'a>(path: &'a str, opts: &PathOptions) -> Result<Cow<'a, str>, PathError> {
    let b = path.as_bytes();
    if !b.iter().any(|&c| c == b'%' || c == b'\\') {
        return Ok(Cow::Borrowed(path));
    }
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::InvalidEncoding);
                };
                let v = hi << 4 | lo;
                match v {
                    0 => return Err(PathError::Nul),
                    // Never valid in UTF-8: only overlong encodings
                    // (`%C0%AE` for `.`) start with them.
                    0xC0 | 0xC1 => return Err(PathError::InvalidEncoding),
                    b'/' | b'\\' => match opts.escaped_slashes {
                        EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                        EscapedSlashes::Decode => out.push(b'/'),
                        EscapedSlashes::Keep => push_encoded(&mut out, v),
                    },
                    _ if opts.decode_unreserved && is_unreserved(v) => out.push(v),
                    _ if opts.decode_unreserved => push_encoded(&mut out, v),
                    _ => out.extend_from_slice(&b[i..i + 3]),
                }
                i += 3;
            }
            b'\\' => {
                match opts.escaped_slashes {
                    EscapedSlashes::Reject => return Err(PathError::Backslash),
                    EscapedSlashes::Decode => out.push(b'/'),
                    EscapedSlashes::Keep => out.push(b'\\'),
                }
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Only ASCII was removed or added around the input's own bytes, and a
    // decoded byte is ASCII (unreserved or `/`): still UTF-8.
    Ok(Cow::Owned(
        String::from_utf8(out).map_err(|_| PathError::InvalidEncoding)?,
    ))
}

fn push_encoded(out: &mut Vec<u8>, v: u8) {
    out.push(b'%');
    out.push(HEX[usize::from(v >> 4)]);
    out.push(HEX[usize::from(v & 0xf)]);
}

/// Step 3.
fn merge_slashes(path: Cow<'_, str>) -> Cow<'_, str> {
    if !path.contains("//") {
        return path;
    }
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    Cow::Owned(out)
}

/// `.` or `..`, spelled with any mix of `.` and `%2e`: 1 or 2, else 0.
fn dots(segment: &str) -> usize {
    let mut rest = segment.as_bytes();
    let mut n = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && (rest[2] | 0x20) == b'e'
        {
            rest = &rest[3..];
        } else {
            return 0;
        }
        n += 1;
        if n > 2 {
            return 0;
        }
    }
    n
}

/// `..;x` and `.;x`: Tomcat and other Java servers drop the parameter and
/// then treat the segment as a dot segment. Refused: there is no one right
/// reading of it.
fn check_dot_parameters(path: &str) -> Result<(), PathError> {
    for segment in path.split('/') {
        // `;` or its encoding: servers that decode before they split
        // parameters off read `..%3B` as `..;`.
        let end = segment
            .find(';')
            .into_iter()
            .chain(["%3B", "%3b"].iter().filter_map(|p| segment.find(p)));
        if end.map(|i| &segment[..i]).any(|head| dots(head) > 0) {
            return Err(PathError::DotSegmentParameter);
        }
    }
    Ok(())
}

/// Step 4, RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: Cow<'_, str>) -> Cow<'_, str> {
    if !path.split('/').any(|s| dots(s) > 0) {
        return path;
    }
    let mut kept: Vec<&str> = Vec::new();
    // The input starts with '/': skip the empty first segment.
    let mut segments = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match dots(segment) {
            1 => trailing_slash = last,
            2 => {
                kept.pop();
                trailing_slash = last;
            }
            _ => {
                kept.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
