//! `Config::parse`: usher.yaml, written by operators.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use usher_proxy::config::IdentitySource;
use usher_proxy::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.yaml");
    let base = Path::new("/tmp");
    match Config::parse(text, file, base) {
        Ok(config) => {
            // Every relative path is resolved against `base`.
            match &config.identity {
                IdentitySource::Files(files) => {
                    for p in [&files.cert, &files.key, &files.bundle] {
                        assert!(p.is_absolute(), "{p:?}");
                    }
                }
                IdentitySource::Ca(ca) => {
                    assert!(ca.bundle.is_absolute() && ca.token_file.is_absolute());
                }
            }
            if let Some(policy) = &config.policy {
                for p in policy.files.iter().chain(&policy.data) {
                    assert!(p.is_absolute(), "{p:?}");
                }
            }
            let _ = format!("{config:?}");
        }
        Err(e) => {
            // The error names the file it was given and displays.
            assert_eq!(e.file, file);
            let shown = e.to_string();
            assert!(shown.starts_with("fuzz.yaml: "), "{shown}");
            let _ = format!("{e:?}");
        }
    }
});
