//! A tracing subscriber that keeps every event, for the tests of what the
//! CA logs (tests/enrol_log.rs, tests/k8s_log.rs).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub(crate) type Fields = BTreeMap<String, String>;

/// Every event of the current thread, its fields as text (`target` and
/// `message` included).
#[derive(Clone, Default)]
pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<Fields>>>);

struct Visit<'a>(&'a mut Fields);

impl tracing::field::Visit for Visit<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields::new();
        fields.insert("target".to_owned(), event.metadata().target().to_owned());
        event.record(&mut Visit(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl Capture {
    /// The events whose message starts with `prefix`.
    pub(crate) fn messages(&self, prefix: &str) -> Vec<Fields> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.get("message").is_some_and(|m| m.starts_with(prefix)))
            .cloned()
            .collect()
    }
}
