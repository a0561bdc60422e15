use super::*;

use std::fs;
use std::time::Duration;

use crate::csr::{check_csr, make_key_and_csr};
use crate::issue::Ca;
use crate::test_support::TD;

const WEB: &str = "spiffe://example.org/ns/default/sa/web";

fn new_ca() -> (tempfile::TempDir, Ca) {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::store::init_ca(dir.path(), TD, false).unwrap();
    (dir, ca)
}

fn sign(ca: &Ca, log: &IssuedLog) -> SignedLeaf {
    let id = SpiffeId::parse(WEB).unwrap();
    let csr = check_csr(&make_key_and_csr(&id).unwrap().1).unwrap();
    let serial = log.fresh_serial().unwrap();
    ca.sign_csr_with_serial(&csr, Duration::from_secs(3600), Some(serial))
        .unwrap()
}

#[test]
fn entries_are_appended_and_survive_reopening() {
    let (dir, ca) = new_ca();
    let id = SpiffeId::parse(WEB).unwrap();
    let mut log = IssuedLog::open(dir.path()).unwrap();
    assert!(log.is_empty());
    let a = sign(&ca, &log);
    let entry = log.record(&a, &id, IssuedHow::Token).unwrap();
    assert_eq!(entry.serial, a.serial_hex);
    assert_eq!(entry.spiffe_id, WEB);
    assert_eq!(entry.how, IssuedHow::Token);
    assert_eq!(entry.not_after, rfc3339(a.not_after));
    assert_eq!(entry.not_before, rfc3339(a.not_before));
    assert!(entry.issued_at.ends_with('Z'));
    let b = sign(&ca, &log);
    log.record(&b, &id, IssuedHow::Renewal).unwrap();
    assert!(log.contains(&a.serial_hex) && log.contains(&b.serial_hex));

    let reopened = IssuedLog::open(dir.path()).unwrap();
    assert_eq!(reopened.len(), 2);
    assert!(reopened.contains(&a.serial_hex) && reopened.contains(&b.serial_hex));
    let entries = read_issued_log(dir.path()).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].how, IssuedHow::Renewal);

    let text = fs::read_to_string(dir.path().join(ISSUED_LOG_FILE)).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["how"], "token");
    for key in [
        "serial",
        "spiffe_id",
        "not_before",
        "not_after",
        "issued_at",
    ] {
        assert!(first[key].is_string(), "{key}");
    }
    humantime::parse_rfc3339(first["not_after"].as_str().unwrap()).unwrap();
}

#[test]
fn a_serial_already_in_the_log_is_drawn_again() {
    let (dir, ca) = new_ca();
    let id = SpiffeId::parse(WEB).unwrap();
    let mut log = IssuedLog::open(dir.path()).unwrap();
    let a = sign(&ca, &log);
    log.record(&a, &id, IssuedHow::Token).unwrap();
    let taken: [u8; 16] = {
        let mut s = [0u8; 16];
        for (i, b) in s.iter_mut().enumerate() {
            *b = u8::from_str_radix(&a.serial_hex[2 * i..2 * i + 2], 16).unwrap();
        }
        s
    };
    let fresh = [0x11u8; 16];
    let mut draws = vec![fresh, taken, taken];
    let got = log.fresh_serial_with(|| Ok(draws.pop().unwrap())).unwrap();
    assert_eq!(got, fresh, "the two colliding draws were skipped");
    // A generator that only ever repeats a used serial is an error, not a loop.
    assert!(matches!(
        log.fresh_serial_with(|| Ok(taken)),
        Err(CaError::Random { .. })
    ));
}

#[test]
fn corrupt_log_line_is_an_error_naming_the_line() {
    let (dir, _ca) = new_ca();
    let path = dir.path().join(ISSUED_LOG_FILE);
    fs::write(&path, "{\"serial\":\"ab\",\"spiffe_id\":\"x\",\"not_before\":\"a\",\"not_after\":\"b\",\"issued_at\":\"c\",\"how\":\"token\"}\nnonsense\n").unwrap();
    match IssuedLog::open(dir.path()) {
        Err(CaError::CorruptLog { path: p, line, .. }) => {
            assert_eq!(p, path);
            assert_eq!(line, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    fs::write(&path, "{\"serial\":\"XY\",\"spiffe_id\":\"x\",\"not_before\":\"a\",\"not_after\":\"b\",\"issued_at\":\"c\",\"how\":\"token\"}\n").unwrap();
    assert!(matches!(
        IssuedLog::open(dir.path()),
        Err(CaError::CorruptLog { line: 1, .. })
    ));
}
