//! The input document, in the shape OPA-Envoy policies read.
//!
//! Built directly as a regorus [`Value`] (no JSON text in between):
//!
//! ```text
//! input.attributes.source.address.socketAddress.{address, portValue}
//! input.attributes.source.principal              (absent without a peer identity)
//! input.attributes.destination.address.socketAddress.{address, portValue}
//! input.attributes.destination.principal
//! input.attributes.request.http.{id, method, path, host, scheme, protocol, headers}
//! input.attributes.request.http.body             (only with a buffered body)
//! input.parsed_path     ["api", "v1", "orders"]  (percent-decoded segments)
//! input.parsed_query    {"page": ["2"]}          (percent-decoded, `+` is a space)
//! input.parsed_body     (with a body: its JSON when content-type is JSON and the body is whole, else null)
//! input.truncated_body  (with a body)
//! input.usher.jwt.claims (when usher authenticated a JWT)
//! input.version         {"ext_authz": "v3", "encoding": "protojson"}
//! ```
//!
//! A policy is given only the parts it can read ([`InputParts`], found by
//! `analysis::input_reads`): the objects above them are built, nothing else.

use std::cell::RefCell;
use std::net::SocketAddr;

use http::{HeaderMap, HeaderName};
use regorus::value::Object;
use regorus::{Rc, Value};

mod parts;
#[cfg(test)]
mod tests;

pub use parts::InputParts;

/// The request, as the authorization layer sees it.
pub struct RequestInput<'a> {
    /// The caller's SPIFFE ID (from its client certificate).
    pub source_principal: Option<&'a str>,
    pub source_address: SocketAddr,
    /// This workload's own SPIFFE ID.
    pub destination_principal: &'a str,
    pub destination_address: SocketAddr,
    pub method: &'a str,
    /// Path and query, as received.
    pub path: &'a str,
    pub host: &'a str,
    /// `"https"` inbound.
    pub scheme: &'a str,
    /// `"HTTP/1.1"` or `"HTTP/2"`.
    pub protocol: &'a str,
    pub headers: &'a HeaderMap,
    pub request_id: &'a str,
    /// The buffered body prefix, when the policy configuration asks for it.
    pub body: Option<&'a BodyInput>,
    /// Claims of a JWT usher verified.
    pub jwt_claims: Option<&'a serde_json::Value>,
}

/// A buffered request body (or its first bytes).
pub struct BodyInput {
    pub bytes: bytes::Bytes,
    /// Whether the body was longer than what was buffered.
    pub truncated: bool,
}

/// Values every input document repeats, kept per thread: the keys, and the
/// last value of fields that rarely change from one request to the next
/// (method, host, principals, addresses, header names). Reusing them saves
/// most allocations; cloning an `Arc<str>` owned by this thread does not
/// bounce a cache line between cores, as a process-wide one would.
struct Cache {
    k: Keys,
    empty_object: Value,
    method: Slot,
    host: Slot,
    scheme: Slot,
    protocol: Slot,
    /// `attributes.source` and `attributes.destination`: the same for every
    /// request of a connection (the destination for every request).
    source: Peer,
    destination: Peer,
    /// (name, its Value, the last value seen for it)
    header_names: Vec<(HeaderName, Value, Value)>,
}

/// The last peer object built, and what it was built from.
#[derive(Default)]
struct Peer {
    principal: Option<String>,
    address: Option<SocketAddr>,
    /// (with the principal, with the address): the parts it holds.
    shape: (bool, bool),
    value: Option<Value>,
}

impl Peer {
    /// `{address, principal}`, with only the parts asked for
    /// (`with_principal`, `with_address`).
    fn get(
        &mut self,
        k: &Keys,
        principal: Option<&str>,
        address: SocketAddr,
        shape: (bool, bool),
    ) -> Value {
        if let Some(v) = &self.value {
            if self.principal.as_deref() == principal
                && self.address == Some(address)
                && self.shape == shape
            {
                return v.clone();
            }
        }
        let (with_principal, with_address) = shape;
        let mut peer = Object::new();
        if with_address {
            let socket = object([
                (k.address.clone(), Value::from(address.ip().to_string())),
                (k.port_value.clone(), Value::from(u64::from(address.port()))),
            ]);
            peer.insert(
                k.address.clone(),
                object([(k.socket_address.clone(), socket)]),
            );
        }
        if let (true, Some(p)) = (with_principal, principal) {
            peer.insert(k.principal.clone(), Value::from(p));
        }
        let v = Value::Object(Rc::new(peer));
        *self = Peer {
            principal: principal.map(str::to_string),
            address: Some(address),
            shape,
            value: Some(v.clone()),
        };
        v
    }
}

/// The last string seen in a field, as a Value.
struct Slot(Value);

impl Default for Slot {
    fn default() -> Self {
        Slot(Value::Null)
    }
}

impl Slot {
    fn get(&mut self, s: &str) -> Value {
        match &self.0 {
            Value::String(v) if v.as_ref() == s => {}
            _ => self.0 = Value::from(s),
        }
        self.0.clone()
    }
}

/// At most this many header names are remembered per thread.
const HEADER_NAMES: usize = 48;

impl Cache {
    fn new() -> Cache {
        Cache {
            k: Keys::new(),
            empty_object: Value::new_object(),
            method: Slot::default(),
            host: Slot::default(),
            scheme: Slot::default(),
            protocol: Slot::default(),
            source: Peer::default(),
            destination: Peer::default(),
            header_names: Vec::new(),
        }
    }

    /// The name's Value, and the value's: the one of the last request when
    /// equal (`accept`, `user-agent` and the like rarely change).
    fn header(&mut self, name: &HeaderName, value: &str) -> (Value, Value) {
        let i = match self.header_names.iter().position(|(n, _, _)| n == name) {
            Some(i) => i,
            None => {
                if self.header_names.len() >= HEADER_NAMES {
                    self.header_names.clear();
                }
                self.header_names
                    .push((name.clone(), Value::from(name.as_str()), Value::Null));
                self.header_names.len() - 1
            }
        };
        let Some((_, n, last)) = self.header_names.get_mut(i) else {
            return (Value::from(name.as_str()), Value::from(value));
        };
        match last {
            Value::String(s) if s.as_ref() == value => {}
            _ => *last = Value::from(value),
        }
        (n.clone(), last.clone())
    }
}

/// The keys of the input document.
struct Keys {
    attributes: Value,
    source: Value,
    destination: Value,
    address: Value,
    socket_address: Value,
    port_value: Value,
    principal: Value,
    request: Value,
    http: Value,
    id: Value,
    method: Value,
    path: Value,
    host: Value,
    scheme: Value,
    protocol: Value,
    headers: Value,
    body: Value,
    parsed_path: Value,
    parsed_query: Value,
    parsed_body: Value,
    truncated_body: Value,
    usher: Value,
    jwt: Value,
    claims: Value,
    version: Value,
    version_value: Value,
}

impl Keys {
    fn new() -> Keys {
        let s = Value::from;
        let version_value = object([(s("encoding"), s("protojson")), (s("ext_authz"), s("v3"))]);
        Keys {
            attributes: s("attributes"),
            source: s("source"),
            destination: s("destination"),
            address: s("address"),
            socket_address: s("socketAddress"),
            port_value: s("portValue"),
            principal: s("principal"),
            request: s("request"),
            http: s("http"),
            id: s("id"),
            method: s("method"),
            path: s("path"),
            host: s("host"),
            scheme: s("scheme"),
            protocol: s("protocol"),
            headers: s("headers"),
            body: s("body"),
            parsed_path: s("parsed_path"),
            parsed_query: s("parsed_query"),
            parsed_body: s("parsed_body"),
            truncated_body: s("truncated_body"),
            usher: s("usher"),
            jwt: s("jwt"),
            claims: s("claims"),
            version: s("version"),
            version_value,
        }
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::new());
}

/// An object from (key, value) pairs: inserted into regorus' mutable
/// representation and wrapped as is (two allocations; `Value::from` of a
/// `BTreeMap` would also sort a copy and compact it).
fn object<const N: usize>(pairs: [(Value, Value); N]) -> Value {
    object_from(pairs)
}

fn object_from(pairs: impl IntoIterator<Item = (Value, Value)>) -> Value {
    let mut o = Object::new();
    for (k, v) in pairs {
        o.insert(k, v);
    }
    Value::Object(Rc::new(o))
}

impl RequestInput<'_> {
    /// The input document for this request.
    pub fn to_value(&self) -> Value {
        self.to_value_with(InputParts::ALL)
    }

    /// The input document with only `parts` (and the objects above them):
    /// a policy that reads no other part sees the same as in the whole
    /// document, for less work (see [`InputParts`]).
    pub fn to_value_with(&self, parts: InputParts) -> Value {
        CACHE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut cache) => self.build(&mut cache, parts),
            Err(_) => self.build(&mut Cache::new(), parts),
        })
    }

    /// The input document as JSON (for logs, `usher policy eval` files, tests).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.to_value()).unwrap_or(serde_json::Value::Null)
    }

    fn build(&self, c: &mut Cache, parts: InputParts) -> Value {
        let has = |p: InputParts| parts.contains(p);
        let mut attributes = Object::new();
        let source = (
            has(InputParts::SOURCE_PRINCIPAL),
            has(InputParts::SOURCE_ADDRESS),
        );
        if source != (false, false) {
            let v = c
                .source
                .get(&c.k, self.source_principal, self.source_address, source);
            attributes.insert(c.k.source.clone(), v);
        }
        let destination = (
            has(InputParts::DESTINATION_PRINCIPAL),
            has(InputParts::DESTINATION_ADDRESS),
        );
        if destination != (false, false) {
            let v = c.destination.get(
                &c.k,
                Some(self.destination_principal),
                self.destination_address,
                destination,
            );
            attributes.insert(c.k.destination.clone(), v);
        }

        let mut http = Object::new();
        if has(InputParts::ID) {
            http.insert(c.k.id.clone(), Value::from(self.request_id));
        }
        if has(InputParts::METHOD) {
            http.insert(c.k.method.clone(), c.method.get(self.method));
        }
        if has(InputParts::PATH) {
            http.insert(c.k.path.clone(), Value::from(self.path));
        }
        if has(InputParts::HOST) {
            http.insert(c.k.host.clone(), c.host.get(self.host));
        }
        if has(InputParts::SCHEME) {
            http.insert(c.k.scheme.clone(), c.scheme.get(self.scheme));
        }
        if has(InputParts::PROTOCOL) {
            http.insert(c.k.protocol.clone(), c.protocol.get(self.protocol));
        }
        if has(InputParts::HEADERS) {
            let headers = headers_value(self.headers, c);
            http.insert(c.k.headers.clone(), headers);
        }
        let k = &c.k;
        let mut top = Object::new();
        if let Some(body) = self.body {
            let text = String::from_utf8_lossy(&body.bytes);
            if has(InputParts::BODY) {
                http.insert(k.body.clone(), Value::from(text.as_ref()));
            }
            if has(InputParts::PARSED_BODY) {
                let parsed = if !body.truncated && is_json(self.headers) {
                    parse_json_body(&text)
                } else {
                    Value::Null
                };
                top.insert(k.parsed_body.clone(), parsed);
            }
            if has(InputParts::TRUNCATED_BODY) {
                top.insert(k.truncated_body.clone(), Value::from(body.truncated));
            }
        }
        if !http.is_empty() {
            let request = object([(k.http.clone(), Value::Object(Rc::new(http)))]);
            attributes.insert(k.request.clone(), request);
        }
        if !attributes.is_empty() {
            top.insert(k.attributes.clone(), Value::Object(Rc::new(attributes)));
        }
        let (path, query) = split_path(self.path);
        if has(InputParts::PARSED_PATH) {
            top.insert(k.parsed_path.clone(), parsed_path(path));
        }
        if has(InputParts::PARSED_QUERY) {
            let query = if query.is_empty() {
                c.empty_object.clone()
            } else {
                parsed_query(query)
            };
            top.insert(k.parsed_query.clone(), query);
        }
        if has(InputParts::VERSION) {
            top.insert(k.version.clone(), k.version_value.clone());
        }
        if let (true, Some(claims)) = (has(InputParts::JWT_CLAIMS), self.jwt_claims) {
            let jwt = object([(k.claims.clone(), Value::from(claims.clone()))]);
            top.insert(k.usher.clone(), object([(k.jwt.clone(), jwt)]));
        }
        Value::Object(Rc::new(top))
    }
}

/// Header names are lower-case in an `http::HeaderMap`; several values of
/// one name are joined with ", " (as Envoy does); bytes that are not UTF-8
/// are replaced.
fn headers_value(headers: &HeaderMap, c: &mut Cache) -> Value {
    let mut map = Object::new();
    for name in headers.keys() {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else { continue };
        let (name, value) = match (values.next(), first.to_str()) {
            (None, Ok(s)) => c.header(name, s),
            (second, _) => {
                let mut joined = String::from_utf8_lossy(first.as_bytes()).into_owned();
                for v in second.into_iter().chain(values) {
                    joined.push_str(", ");
                    joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
                c.header(name, &joined)
            }
        };
        map.insert(name, value);
    }
    Value::Object(Rc::new(map))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::CONTENT_TYPE).iter().any(|v| {
        v.to_str()
            .map(|s| s.to_ascii_lowercase().contains("application/json"))
            .unwrap_or(false)
    })
}

/// The body as JSON; null when it is empty or not JSON (the policy sees the
/// raw text in `input.attributes.request.http.body` either way).
fn parse_json_body(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Null;
    }
    Value::from_json_str(text).unwrap_or(Value::Null)
}

/// (path, query) of a request target; a fragment is dropped.
fn split_path(target: &str) -> (&str, &str) {
    let target = target.split('#').next().unwrap_or_default();
    match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    }
}

/// As opa-envoy-plugin: leading slashes trimmed, the path percent-decoded,
/// then split on `/` (so an encoded `%2F` separates segments too, as the app
/// may well decode it). `"/"` gives `[""]`.
pub(crate) fn parsed_path(path: &str) -> Value {
    let decoded = percent_decode(path.trim_start_matches('/'));
    Value::from(decoded.split('/').map(Value::from).collect::<Vec<Value>>())
}

/// As Go's `url.ParseQuery`: `&`-separated `name=value` pairs, `+` is a
/// space; pairs with a `;` or a bad escape are skipped; values of a
/// repeated name are kept in order.
pub(crate) fn parsed_query(query: &str) -> Value {
    let mut map: std::collections::BTreeMap<String, Vec<Value>> = std::collections::BTreeMap::new();
    for pair in query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(name), Some(value)) = (strict_unescape(name), strict_unescape(value)) else {
            continue;
        };
        map.entry(name).or_default().push(Value::from(value));
    }
    object_from(
        map.into_iter()
            .map(|(k, v)| (Value::from(k), Value::from(v))),
    )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Query unescaping; `None` on a malformed `%` escape.
fn strict_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val)?;
                let lo = bytes.get(i + 2).copied().and_then(hex_val)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Percent-decoding that leaves a malformed escape as it is.
fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}
