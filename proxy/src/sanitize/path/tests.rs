use super::*;

fn norm(p: &str) -> Result<String, PathError> {
    normalize(p, &PathOptions::default()).map(|c| c.into_owned())
}

fn with(p: &str, escaped_slashes: EscapedSlashes) -> Result<String, PathError> {
    let opts = PathOptions {
        escaped_slashes,
        ..PathOptions::default()
    };
    normalize(p, &opts).map(|c| c.into_owned())
}

#[test]
fn plain_paths_are_borrowed_unchanged() {
    for p in ["/", "/orders/1", "/a-b_c~d", "/x.y/z.json", "/a;b=c/d"] {
        assert!(matches!(
            normalize(p, &PathOptions::default()),
            Ok(Cow::Borrowed(q)) if q == p
        ));
    }
}

#[test]
fn dot_segments_are_removed() {
    let cases = [
        ("/orders/../admin/stats", "/admin/stats"),
        ("/orders/./../admin", "/admin"),
        ("/orders/%2e%2e/admin/stats", "/admin/stats"),
        ("/orders/%2E%2e/admin", "/admin"),
        ("/orders/.%2e/admin", "/admin"),
        ("/a/b/c/./../../g", "/a/g"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/..", "/"),
        ("/../../..", "/"),
        ("/.", "/"),
        ("/a/...", "/a/..."),
        ("/a/.b", "/a/.b"),
        ("/.well-known/x", "/.well-known/x"),
    ];
    for (input, want) in cases {
        assert_eq!(norm(input).as_deref(), Ok(want), "{input}");
    }
}

#[test]
fn slashes_are_merged_before_dot_segments() {
    assert_eq!(norm("/orders//../../admin").as_deref(), Ok("/admin"));
    assert_eq!(norm("//reports/x").as_deref(), Ok("/reports/x"));
    assert_eq!(norm("/a///b//").as_deref(), Ok("/a/b/"));
}

#[test]
fn without_merging_empty_segments_count_as_segments() {
    let opts = PathOptions {
        merge_slashes: false,
        ..PathOptions::default()
    };
    assert_eq!(normalize("/a//../b", &opts).unwrap(), "/a/b");
    assert_eq!(normalize("//reports/x", &opts).unwrap(), "//reports/x");
}

#[test]
fn unreserved_characters_are_decoded_others_upper_cased() {
    assert_eq!(norm("/%72eports/x").as_deref(), Ok("/reports/x"));
    assert_eq!(norm("/a%7eb%2D%5f").as_deref(), Ok("/a~b-_"));
    assert_eq!(norm("/a%3bb%3F").as_deref(), Ok("/a%3Bb%3F"));
    assert_eq!(norm("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
    // Decoding runs once: %25 stays encoded, so %2532 is not "2".
    assert_eq!(norm("/a%252e%252e/b").as_deref(), Ok("/a%252e%252e/b"));
}

#[test]
fn without_decoding_encodings_stay_but_encoded_dots_still_count() {
    let opts = PathOptions {
        decode_unreserved: false,
        ..PathOptions::default()
    };
    assert_eq!(normalize("/%72eports", &opts).unwrap(), "/%72eports");
    assert_eq!(normalize("/orders/%2e%2e/admin", &opts).unwrap(), "/admin");
}

#[test]
fn hostile_encodings_are_refused() {
    assert_eq!(norm("/orders/%00"), Err(PathError::Nul));
    assert_eq!(norm("/orders/%0"), Err(PathError::InvalidEncoding));
    assert_eq!(norm("/orders/%zz"), Err(PathError::InvalidEncoding));
    assert_eq!(norm("/orders/%"), Err(PathError::InvalidEncoding));
    assert_eq!(
        norm("/orders/..;/admin"),
        Err(PathError::DotSegmentParameter)
    );
    assert_eq!(
        norm("/orders/.;x/admin"),
        Err(PathError::DotSegmentParameter)
    );
    assert_eq!(
        norm("/orders/%2e%2e;a/x"),
        Err(PathError::DotSegmentParameter)
    );
    assert_eq!(
        norm("/orders/..%3B/admin"),
        Err(PathError::DotSegmentParameter)
    );
    assert_eq!(
        norm("/orders/.%3bx/admin"),
        Err(PathError::DotSegmentParameter)
    );
    // Overlong UTF-8 for '.', which old decoders turned into a dot.
    assert_eq!(
        norm("/orders/%c0%ae%c0%ae/admin"),
        Err(PathError::InvalidEncoding)
    );
    // A parameter on an ordinary segment is fine.
    assert_eq!(norm("/orders;v=1/x").as_deref(), Ok("/orders;v=1/x"));
}

#[test]
fn slashes_and_backslashes_follow_the_configuration() {
    for p in ["/orders/%2F../admin", "/orders/%2f..", "/orders/%5Cx"] {
        assert_eq!(norm(p), Err(PathError::EscapedSlash), "{p}");
    }
    assert_eq!(norm("/orders/..\\admin"), Err(PathError::Backslash));

    let d = EscapedSlashes::Decode;
    assert_eq!(with("/orders/..\\admin", d).as_deref(), Ok("/admin"));
    assert_eq!(with("/orders/%2F..%2Fadmin", d).as_deref(), Ok("/admin"));
    assert_eq!(with("/orders%2F%2F..%5Cadmin", d).as_deref(), Ok("/admin"));

    let k = EscapedSlashes::Keep;
    assert_eq!(with("/a%2fb", k).as_deref(), Ok("/a%2Fb"));
    assert_eq!(with("/a\\b", k).as_deref(), Ok("/a\\b"));
}

#[test]
fn asterisk_form_is_left_alone() {
    assert_eq!(norm("*").as_deref(), Ok("*"));
}

#[test]
fn normalising_twice_changes_nothing() {
    let inputs = [
        "/orders/../admin",
        "/a/%2e%2e%2f",
        "/x//y/./z/..",
        "/%41%42/%2e/c",
        "/a/b/../../../c/",
        "/%2e%2e%2e/x",
    ];
    for p in inputs {
        for mode in [
            EscapedSlashes::Reject,
            EscapedSlashes::Keep,
            EscapedSlashes::Decode,
        ] {
            if let Ok(once) = with(p, mode) {
                assert_eq!(
                    with(&once, mode).as_deref(),
                    Ok(once.as_str()),
                    "{p} {mode:?}"
                );
            }
        }
    }
}

/// The fuzz target's properties (fuzz/fuzz_targets/path.rs) over many
/// paths made of the pieces attacks are built from, on every run: a normal
/// form is accepted again unchanged, keeps no dot segment (in any
/// spelling), no `//` when merging, no encoded NUL.
#[test]
fn normal_forms_are_stable_and_free_of_dot_segments() {
    const PIECES: &[&str] = &[
        "/", "//", ".", "..", "%2e", "%2E", "%2e%2e", "a", "b", "%41", "%2f", "%2F", "%5c", "\\",
        ";", "%3b", "%25", "%00", "%", "~", "-", "é", "%c3%a9", "%zz", "?",
    ];
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let modes = [
        EscapedSlashes::Reject,
        EscapedSlashes::Keep,
        EscapedSlashes::Decode,
    ];
    let mut normalised = 0;
    for _ in 0..20_000 {
        let mut path = String::from("/");
        for _ in 0..rng.usize(1..12) {
            path.push_str(PIECES[rng.usize(..PIECES.len())]);
        }
        let path = path.split('?').next().unwrap_or("/").to_string();
        let opts = PathOptions {
            decode_unreserved: rng.bool(),
            merge_slashes: rng.bool(),
            remove_dot_segments: true,
            escaped_slashes: modes[rng.usize(..3)],
        };
        let Ok(once) = normalize(&path, &opts) else {
            continue;
        };
        normalised += 1;
        let twice = normalize(&once, &opts).unwrap_or_else(|e| panic!("{path:?} -> {once:?}: {e}"));
        assert_eq!(once, twice, "{path:?}");
        for segment in once.split('/') {
            assert!(dots(segment) == 0, "dot segment in {once:?} from {path:?}");
        }
        if opts.merge_slashes {
            assert!(!once.contains("//"), "{once:?} from {path:?}");
        }
        assert!(!once.contains("%00"), "{once:?} from {path:?}");
    }
    assert!(
        normalised > 5_000,
        "too few inputs were accepted: {normalised}"
    );
}
