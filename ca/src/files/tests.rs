use super::*;

use std::os::unix::fs::PermissionsExt as _;

#[test]
fn append_creates_private_file_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    assert!(
        read_jsonl(&path).unwrap().is_empty(),
        "missing file is empty"
    );
    append_jsonl(&path, r#"{"a":1}"#).unwrap();
    append_jsonl(&path, r#"{"a":2}"#).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        read_jsonl(&path).unwrap(),
        [(1, r#"{"a":1}"#.to_owned()), (2, r#"{"a":2}"#.to_owned())]
    );
}

#[test]
fn partial_last_line_is_skipped_and_isolated_by_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    fs::write(&path, "{\"a\":1}\n\n{\"a\":").unwrap();
    assert_eq!(read_jsonl(&path).unwrap(), [(1, r#"{"a":1}"#.to_owned())]);
    append_jsonl(&path, r#"{"a":3}"#).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "{\"a\":1}\n\n{\"a\":\n{\"a\":3}\n"
    );
    let lines = read_jsonl(&path).unwrap();
    assert_eq!(lines.last().unwrap(), &(4, r#"{"a":3}"#.to_owned()));
}

#[test]
fn invalid_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    fs::write(&path, b"{}\n{\xff}\n").unwrap();
    match read_jsonl(&path) {
        Err(CaError::CorruptLog { path: p, line, .. }) => {
            assert_eq!(p, path);
            assert_eq!(line, 2);
        }
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn refuse_existing_names_the_first_existing_path() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    refuse_existing(&[&a, &b]).unwrap();
    fs::write(&b, "x").unwrap();
    match refuse_existing(&[&a, &b]) {
        Err(CaError::AlreadyExists { path }) => assert_eq!(path, b),
        other => panic!("unexpected: {other:?}"),
    }
    remove_if_exists(&b).unwrap();
    remove_if_exists(&b).unwrap();
    refuse_existing(&[&a, &b]).unwrap();
}
