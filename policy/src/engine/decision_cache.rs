//! Decisions remembered per thread, for policies whose decision is a
//! function of a few stable request fields.
//!
//! A policy qualifies when (decided at compile time, `cacheability`):
//! - the only parts of `input` it can read are among [`KEYED`] (principals,
//!   destination address, method, path — and `parsed_path` /
//!   `parsed_query`, which come from the path —, host, scheme, protocol,
//!   `version`): never headers, body, JWT claims, request id or the caller's
//!   address and port, which change with every request or connection;
//! - every builtin it calls is on the pure allow-list
//!   (`analysis::purity`), and it has no `with` modifier.
//!
//! Then its decision depends on those fields and on `data` alone, and
//! `data` belongs to the compiled [`super::Policy`]: the key is the exact bytes of
//! the fields the policy reads (length-prefixed, in a fixed order), the
//! value the [`Decision`]. A cache belongs to one policy id: a reload
//! compiles a new `Policy` (a new id), whose caches start empty, and those
//! of a dropped policy are freed at the thread's next evaluation.
//!
//! Each thread has its own cache (no lock), bounded to `entries` decisions
//! in two generations: when the young one holds half, it becomes the old
//! one and the previous old one is dropped; a hit in the old generation
//! moves the entry back to the young one. Only decisions of evaluations
//! that ran to their end are stored (never a timeout or an error).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::decision::Decision;
use crate::input::{InputParts, RequestInput};

#[cfg(test)]
mod tests;

/// The parts a cache key can hold.
pub(crate) const KEYED: InputParts = InputParts::SOURCE_PRINCIPAL
    .union(InputParts::DESTINATION_PRINCIPAL)
    .union(InputParts::DESTINATION_ADDRESS)
    .union(InputParts::METHOD)
    .union(InputParts::PATH)
    .union(InputParts::PARSED_PATH)
    .union(InputParts::PARSED_QUERY)
    .union(InputParts::HOST)
    .union(InputParts::SCHEME)
    .union(InputParts::PROTOCOL)
    .union(InputParts::VERSION);

/// Requests whose key would be longer (a very long path) are evaluated
/// without the cache: the bound on entries is then a bound on memory.
const MAX_KEY_BYTES: usize = 512;

/// The key of `input` for a policy that reads `parts` (all in [`KEYED`]):
/// the fields it reads, each length-prefixed, in a fixed order. `None` when
/// too long.
pub(crate) fn key(parts: InputParts, input: &RequestInput<'_>) -> Option<Vec<u8>> {
    let mut key = Vec::with_capacity(96);
    let mut field = |s: &str| {
        key.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
        key.extend_from_slice(s.as_bytes());
    };
    if parts.contains(InputParts::SOURCE_PRINCIPAL) {
        // Absent and empty differ: a tag first.
        match input.source_principal {
            None => field("\u{0}absent"),
            Some(p) => {
                field("\u{1}");
                field(p);
            }
        }
    }
    if parts.contains(InputParts::DESTINATION_PRINCIPAL) {
        field(input.destination_principal);
    }
    if parts.contains(InputParts::DESTINATION_ADDRESS) {
        field(&input.destination_address.to_string());
    }
    if parts.contains(InputParts::METHOD) {
        field(input.method);
    }
    // parsed_path and parsed_query are computed from the path and query.
    if parts.intersects(
        InputParts::PATH
            .union(InputParts::PARSED_PATH)
            .union(InputParts::PARSED_QUERY),
    ) {
        field(input.path);
    }
    if parts.contains(InputParts::HOST) {
        field(input.host);
    }
    if parts.contains(InputParts::SCHEME) {
        field(input.scheme);
    }
    if parts.contains(InputParts::PROTOCOL) {
        field(input.protocol);
    }
    (key.len() <= MAX_KEY_BYTES).then_some(key)
}

/// One policy's decisions on one thread.
pub(crate) struct DecisionCache {
    young: HashMap<Box<[u8]>, Decision>,
    old: HashMap<Box<[u8]>, Decision>,
    /// Entries per generation.
    half: usize,
}

impl DecisionCache {
    /// At most `entries` decisions (at least two).
    pub(crate) fn new(entries: usize) -> DecisionCache {
        DecisionCache {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (entries / 2).max(1),
        }
    }

    pub(crate) fn get(&mut self, key: &[u8]) -> Option<Decision> {
        if let Some(d) = self.young.get(key) {
            return Some(d.clone());
        }
        let (key, d) = self.old.remove_entry(key)?;
        let out = d.clone();
        self.insert(key, d);
        Some(out)
    }

    pub(crate) fn insert(&mut self, key: Box<[u8]>, decision: Decision) {
        if self.young.len() >= self.half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, decision);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// Caches kept per thread: the policy in force and a few recent ones (as
/// for evaluators).
const KEEP: usize = 4;

thread_local! {
    static CACHES: RefCell<Vec<(u64, Weak<()>, DecisionCache)>> =
        const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's cache for policy `id` (made with `entries`
/// on first use). `None` when the thread's caches are in use (re-entered).
pub(crate) fn with_cache<R>(
    id: u64,
    alive: &Arc<()>,
    entries: usize,
    f: impl FnOnce(&mut DecisionCache) -> R,
) -> Option<R> {
    CACHES.with(|cell| {
        let mut caches = cell.try_borrow_mut().ok()?;
        caches.retain(|(_, alive, _)| alive.strong_count() > 0);
        let index = match caches.iter().position(|(i, _, _)| *i == id) {
            Some(i) => i,
            None => {
                if caches.len() >= KEEP {
                    caches.remove(0);
                }
                caches.push((id, Arc::downgrade(alive), DecisionCache::new(entries)));
                caches.len() - 1
            }
        };
        let (_, _, cache) = caches.get_mut(index)?;
        Some(f(cache))
    })
}
