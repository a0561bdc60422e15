//! The log filter and the audit records it cannot hide, with the real
//! JSON subscriber writing into a buffer.

use std::io;
use std::sync::{Arc, Mutex};

use super::*;

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

impl Buf {
    /// The messages written since the last call.
    fn take_messages(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["message"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}

#[test]
fn the_audit_directive_parses() {
    AUDIT_DIRECTIVE.parse::<Directive>().unwrap();
}

#[test]
fn every_filter_keeps_the_audit_directive() {
    for (directives, shown) in [
        ("info", "usher::audit=info,info"),
        ("off", "usher::audit=info,off"),
        ("debug,usher::audit=off", "usher::audit=info,debug"),
        ("usher::audit=error", "usher::audit=info"),
    ] {
        assert_eq!(
            parse(directives).unwrap().to_string(),
            shown,
            "{directives}"
        );
    }
    assert!(matches!(parse(""), Err(LogLevelError::Invalid(_))));
    assert!(matches!(parse("info,["), Err(LogLevelError::Invalid(_))));
}

#[test]
fn audit_records_are_written_whatever_the_filter_says() {
    let buf = Buf::default();
    let (subscriber, handle) = json_subscriber(parse("info").unwrap(), buf.clone());
    tracing::subscriber::with_default(subscriber, || {
        for directives in [
            "off",
            "error",
            "usher::audit=off",
            "usher=off,usher::audit=error",
            // More specific than usher::audit=info: a field directive.
            "off,usher::audit[{peer}]=off",
            "off,[{peer}]=off",
        ] {
            let shown = set_on(Some(&handle), directives).unwrap();
            assert!(shown.contains(AUDIT_DIRECTIVE), "{directives}: {shown}");
            assert_eq!(
                buf.take_messages(),
                ["log filter changed"],
                "{directives}: the change itself is an audit record"
            );
            tracing::warn!(target: "usher::audit", peer = "spiffe://td/a", "denied");
            tracing::info!(target: "usher::audit", peer = "spiffe://td/a", "allowed");
            tracing::warn!(target: "usher::other", peer = "spiffe://td/a", "ordinary");
            tracing::debug!(target: "usher::audit", peer = "spiffe://td/a", "audit detail");
            assert_eq!(buf.take_messages(), ["denied", "allowed"], "{directives}");
        }
        // The filter still works for everything else.
        set_on(Some(&handle), "debug").unwrap();
        buf.take_messages();
        tracing::debug!(target: "usher::other", "ordinary detail");
        assert_eq!(buf.take_messages(), ["ordinary detail"]);
    });
}
