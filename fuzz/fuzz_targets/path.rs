//! Path normalisation: whatever a caller sends, the normal form is stable
//! under a second normalisation, has no dot segment left, no `//` when
//! slashes are merged, and never an encoded or raw NUL.
//!
//! Input: the first byte picks the options, the rest is the path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher_proxy::sanitize::path::{normalize, EscapedSlashes, PathOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(tail) = std::str::from_utf8(rest) else {
        return;
    };
    let path = format!("/{tail}");
    let opts = PathOptions {
        decode_unreserved: flags & 1 != 0,
        merge_slashes: flags & 2 != 0,
        remove_dot_segments: true,
        escaped_slashes: match (flags >> 2) % 3 {
            0 => EscapedSlashes::Reject,
            1 => EscapedSlashes::Keep,
            _ => EscapedSlashes::Decode,
        },
    };
    let Ok(once) = normalize(&path, &opts) else {
        return;
    };
    let twice = normalize(&once, &opts).expect("a normal form is accepted again");
    assert_eq!(once, twice, "not stable for {path:?}");
    assert!(once.starts_with('/'));
    for segment in once.split('/') {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        assert!(decoded != "." && decoded != "..", "dot segment left in {once:?}");
    }
    if opts.merge_slashes {
        assert!(!once.contains("//"), "// left in {once:?}");
    }
    assert!(!once.contains("%00"), "encoded NUL left in {once:?}");
});
