//! OPA's `http.send(request)`, supplied as a regorus extension (registered
//! by [`crate::builtins::register_one`]).
//!
//! The request object takes OPA's fields `method` and `url` (both required,
//! `http://` or `https://` only), `headers` (object of strings), `body` (any
//! value, sent as JSON, with `Content-Type: application/json` unless a
//! header sets it) or `raw_body` (a string, sent as is), `timeout` (a Go
//! duration string such as `"500ms"` or a number of nanoseconds),
//! `raise_error` (default `true`), `cache`, `force_cache`,
//! `force_cache_duration_seconds`, `enable_redirect` (default `false`, at
//! most [`MAX_REDIRECTS`]) and `force_json_decode` (accepted; the body is
//! always decoded when it is JSON). `tls_insecure_skip_verify: true` and
//! every other field (client certificates, custom CAs, Unix sockets...) are
//! refused: the call is *undefined* and the policy denies.
//!
//! The response is OPA's: `status_code`, `status` (`"200 OK"`), `headers`
//! (lower-case name -> array of values), `raw_body` (the body as a string)
//! and `body` (`raw_body` decoded as JSON, `null` when it is not JSON).
//!
//! A network failure (refused connection, TLS failure, timeout, a response
//! over [`MAX_RESPONSE_BYTES`], too many redirects) makes the call
//! *undefined* (as OPA without `--strict-builtin-errors`), or, with
//! `raise_error: false`, answers
//! `{"status_code": 0, "error": {"code": "eval_http_send_network_error", "message": ...}}`.
//!
//! Safety caps, for a sidecar: the timeout defaults to [`DEFAULT_TIMEOUT`]
//! (as OPA's) and never exceeds [`MAX_TIMEOUT`]; a response body is at most
//! [`MAX_RESPONSE_BYTES`]; the process-wide cache holds at most
//! [`MAX_CACHE_ENTRIES`] responses (expired ones are evicted first, then the
//! oldest). regorus' evaluation timer cannot interrupt a call in flight, so
//! `policy.eval_timeout` must cover the `timeout` of the calls a policy
//! makes.
//!
//! Caching (only responses with a status OPA caches, 200, 203, 204, 206,
//! 300, 301, 404, 405, 410, 414 and 501): `force_cache: true` keeps a
//! response `force_cache_duration_seconds` whatever its headers say;
//! `cache: true` keeps it for its `Cache-Control: max-age` (less its `Age`),
//! and not at all with `no-store` or `no-cache` or without `max-age`
//! (`Expires` and heuristic freshness are not read). The key is the request
//! object without `cache`, `force_cache` and `force_cache_duration_seconds`.
//!
//! A policy's warm-up evaluations at compile time send nothing: `http.send`
//! is undefined there, so loading a policy never reaches the network.
//!
//! The extension runs synchronously, on a tokio worker in the sidecar and on
//! plain threads in `usher policy eval/test`, so it never blocks on a future
//! itself: one background thread, started at the first call, owns a
//! current-thread runtime and a hyper-util client (HTTP/1.1; HTTP/2 when a
//! TLS server negotiates it by ALPN; server certificates checked against the
//! webpki roots). A call sends it a job and waits for the answer with a
//! timeout.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::io;
use std::pin::Pin;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use regorus::Value;
use serde_json::{json, Map, Value as Json};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

#[cfg(test)]
mod tests;

/// A call's timeout when the request sets none (OPA's default).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest timeout a request may set (longer ones are cut to this).
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body accepted; a larger one is a network error.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// The most responses the process-wide cache holds.
pub(crate) const MAX_CACHE_ENTRIES: usize = 1024;
/// The most redirects followed with `enable_redirect: true`.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// Statuses whose responses may be cached (OPA's list).
const CACHEABLE: &[u16] = &[200, 203, 204, 206, 300, 301, 404, 405, 410, 414, 501];

/// Fields that do not make a request different (left out of the cache key).
const CACHE_FIELDS: &[&str] = &["cache", "force_cache", "force_cache_duration_seconds"];

const KNOWN_FIELDS: &[&str] = &[
    "method",
    "url",
    "headers",
    "body",
    "raw_body",
    "timeout",
    "raise_error",
    "cache",
    "force_cache",
    "force_cache_duration_seconds",
    "enable_redirect",
    "force_json_decode",
    "tls_insecure_skip_verify",
];

thread_local! {
    /// Set while a policy is compiled: its warm-up evaluations must not
    /// reach the network.
    static OFFLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with `http.send` undefined (no request) on this thread: for the
/// warm-up evaluations of [`crate::Policy::compile`].
pub(crate) fn offline<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            OFFLINE.with(|o| o.set(self.0));
        }
    }
    let _reset = Reset(OFFLINE.with(|o| o.replace(true)));
    f()
}

/// The builtin: the response, OPA's error object, or undefined. No call
/// waits longer than `cap`: the policy's evaluation budget, which regorus'
/// timer cannot enforce inside a builtin, so a slow server cannot hold the
/// sidecar's worker threads for longer than a decision may take.
pub(crate) fn send(args: &[Value], cap: Duration) -> Value {
    if OFFLINE.with(|o| o.get()) {
        return Value::Undefined;
    }
    match send_json(args, cap) {
        Some(v) => Value::from(v),
        None => Value::Undefined,
    }
}

fn send_json(args: &[Value], cap: Duration) -> Option<Json> {
    let arg = serde_json::to_value(args.first()?).ok()?;
    let mut req = Request::parse(&arg).ok()?;
    req.timeout = req.timeout.min(cap);
    match call(&req) {
        Ok(resp) => Some(resp),
        Err(_) if req.raise_error => None,
        Err(message) => Some(json!({
            "status_code": 0,
            "error": {"code": "eval_http_send_network_error", "message": message},
        })),
    }
}

/// One validated request object.
#[derive(Debug, Clone)]
struct Request {
    method: Method,
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Bytes>,
    json_body: bool,
    timeout: Duration,
    raise_error: bool,
    cache: bool,
    force_cache: Option<Duration>,
    redirect: bool,
    key: String,
}

impl Request {
    fn parse(v: &Json) -> Result<Request, String> {
        let obj = v.as_object().ok_or("the request must be an object")?;
        if let Some(k) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(format!("unsupported request field {k:?}"));
        }
        let flag = |name: &str, default: bool| match obj.get(name) {
            None => Ok(default),
            Some(Json::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("{name} must be a boolean")),
        };
        if flag("tls_insecure_skip_verify", false)? {
            return Err("tls_insecure_skip_verify is refused".into());
        }
        flag("force_json_decode", false)?;
        let method = match obj.get("method") {
            Some(Json::String(m)) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|e| format!("method: {e}"))?,
            _ => return Err("method (a string) is required".into()),
        };
        let url = match obj.get("url") {
            Some(Json::String(u)) => checked_url(u)?,
            _ => return Err("url (a string) is required".into()),
        };
        let mut headers = Vec::new();
        match obj.get("headers") {
            None => {}
            Some(Json::Object(h)) => {
                for (k, v) in h {
                    let Json::String(v) = v else {
                        return Err(format!("header {k:?} must be a string"));
                    };
                    let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
                    let value = HeaderValue::from_str(v).map_err(|e| e.to_string())?;
                    headers.push((name, value));
                }
            }
            Some(_) => return Err("headers must be an object".into()),
        }
        let (body, json_body) = match (obj.get("raw_body"), obj.get("body")) {
            (Some(Json::String(raw)), _) => (Some(Bytes::from(raw.clone())), false),
            (Some(_), _) => return Err("raw_body must be a string".into()),
            (None, Some(b)) => (Some(Bytes::from(b.to_string())), true),
            (None, None) => (None, false),
        };
        let timeout = match obj.get("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(Json::String(s)) => go_duration(s).ok_or(format!("timeout {s:?}"))?,
            Some(Json::Number(n)) => match n.as_f64() {
                Some(ns) if ns >= 0.0 => Duration::from_nanos(ns.min(u64::MAX as f64) as u64),
                _ => return Err("timeout must not be negative".into()),
            },
            Some(_) => return Err("timeout must be a string or a number".into()),
        };
        // 0 is "no timeout" for OPA; here it is the default.
        let timeout = if timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            timeout.min(MAX_TIMEOUT)
        };
        let force_cache = if flag("force_cache", false)? {
            match obj
                .get("force_cache_duration_seconds")
                .and_then(Json::as_f64)
            {
                Some(s) if s >= 0.0 => Some(Duration::from_secs_f64(s.min(1e12))),
                _ => {
                    return Err("force_cache needs force_cache_duration_seconds".into());
                }
            }
        } else {
            None
        };
        let mut keyed = obj.clone();
        for f in CACHE_FIELDS {
            keyed.remove(*f);
        }
        Ok(Request {
            method,
            url,
            headers,
            body,
            json_body,
            timeout,
            raise_error: flag("raise_error", true)?,
            cache: flag("cache", false)?,
            force_cache,
            redirect: flag("enable_redirect", false)?,
            key: Json::Object(keyed).to_string(),
        })
    }
}

/// `u` parsed, when it is an absolute http(s) URL with a host.
fn checked_url(u: &str) -> Result<Uri, String> {
    let uri: Uri = u.parse().map_err(|e| format!("url {u:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("url {u:?}: only http and https are allowed")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(uri),
        _ => Err(format!("url {u:?} has no host")),
    }
}

/// A Go duration (`"1.5s"`, `"2m30s"`, `"500ms"`); Go's units only.
fn go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += n * unit;
        rest = &rest[end..];
    }
    Some(Duration::from_nanos(nanos.min(u64::MAX as f64) as u64))
}

// ---- cache ----------------------------------------------------------------

struct Entry {
    response: Json,
    expires: Instant,
    inserted: Instant,
}

static CACHE: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());

fn cache_get(key: &str) -> Option<Json> {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    match cache.get(key) {
        Some(e) if e.expires > now => Some(e.response.clone()),
        Some(_) => {
            cache.remove(key);
            None
        }
        None => None,
    }
}

fn cache_put(key: String, response: Json, ttl: Duration) {
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    insert(&mut cache, key, response, ttl);
}

/// Adds an entry to `cache`, making room first when it is full: the
/// expired entries go, then the oldest.
fn insert(cache: &mut BTreeMap<String, Entry>, key: String, response: Json, ttl: Duration) {
    let now = Instant::now();
    let Some(expires) = now.checked_add(ttl) else {
        return;
    };
    if cache.len() >= MAX_CACHE_ENTRIES && !cache.contains_key(&key) {
        cache.retain(|_, e| e.expires > now);
        if cache.len() >= MAX_CACHE_ENTRIES {
            let oldest = cache
                .iter()
                .min_by_key(|(_, e)| e.inserted)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                cache.remove(&k);
            }
        }
    }
    cache.insert(
        key,
        Entry {
            response,
            expires,
            inserted: now,
        },
    );
}

/// How long `cache: true` may keep a response, from its headers.
fn max_age(response: &Json) -> Option<Duration> {
    let values = |name: &str| -> Vec<String> {
        response["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_ascii_lowercase))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut max_age = None;
    for value in values("cache-control") {
        for directive in value.split(',').map(str::trim) {
            if directive == "no-store" || directive == "no-cache" {
                return None;
            }
            if let Some(n) = directive.strip_prefix("max-age=") {
                max_age = Some(n.trim_matches('"').parse::<u64>().ok()?);
            }
        }
    }
    let age = values("age")
        .first()
        .and_then(|a| a.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age
        .and_then(|m: u64| m.checked_sub(age))
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

/// The response (from the cache or the server), or the network error.
fn call(req: &Request) -> Result<Json, String> {
    let cached = req.cache || req.force_cache.is_some();
    if cached {
        if let Some(hit) = cache_get(&req.key) {
            return Ok(hit);
        }
    }
    let response = fetch(req)?;
    if cached
        && response["status_code"]
            .as_u64()
            .is_some_and(|s| CACHEABLE.iter().any(|c| u64::from(*c) == s))
    {
        let ttl = req.force_cache.or_else(|| max_age(&response));
        if let Some(ttl) = ttl.filter(|t| !t.is_zero()) {
            cache_put(req.key.clone(), response.clone(), ttl);
        }
    }
    Ok(response)
}

// ---- the background client ------------------------------------------------

type HttpClient = Client<Connector, Full<Bytes>>;

type ConnectFuture = Pin<Box<dyn std::future::Future<Output = io::Result<Stream>> + Send>>;

/// TCP, then TLS for `https` (webpki roots; ALPN h2 and http/1.1).
#[derive(Clone)]
struct Connector {
    tls: Arc<rustls::ClientConfig>,
}

impl tower::Service<Uri> for Connector {
    type Response = Stream;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> ConnectFuture {
        Box::pin(connect(uri, self.tls.clone()))
    }
}

async fn connect(uri: Uri, tls: Arc<rustls::ClientConfig>) -> io::Result<Stream> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(io::Error::other("only http and https are allowed")),
    };
    let host = uri
        .host()
        .ok_or_else(|| io::Error::other("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    let _ = tcp.set_nodelay(true);
    if !https {
        return Ok(Stream::Plain(TokioIo::new(tcp)));
    }
    let name = rustls_pki_types::ServerName::try_from(host).map_err(io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    Ok(Stream::Tls(Box::new(TokioIo::new(tls))))
}

/// A connection to a server, plain or TLS.
enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(_) => Connected::new(),
            Stream::Tls(s) if s.inner().get_ref().1.alpn_protocol() == Some(b"h2") => {
                Connected::new().negotiated_h2()
            }
            Stream::Tls(_) => Connected::new(),
        }
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn client() -> Result<HttpClient, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(8)
        .build(Connector { tls: Arc::new(tls) }))
}

/// `e` and its sources, `: `-separated.
fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `location` resolved against `base`.
fn resolve(base: &Uri, location: &str) -> Result<Uri, String> {
    if location.contains("://") {
        return checked_url(location);
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    let url = if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{authority}{dir}{location}")
    };
    checked_url(&url)
}

/// The request on the wire, following redirects when asked.
async fn execute(client: &HttpClient, req: &Request) -> Result<Json, String> {
    let fail = |url: &Uri, e: String| format!("{} {:?}: {e}", req.method, url.to_string());
    let mut url = req.url.clone();
    let mut method = req.method.clone();
    let mut body = req.body.clone();
    let mut headers = req.headers.clone();
    for hop in 0..=MAX_REDIRECTS {
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(url.clone());
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        if req.json_body
            && body.is_some()
            && !headers.iter().any(|(k, _)| k == http::header::CONTENT_TYPE)
        {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(body.clone().unwrap_or_default()))
            .map_err(|e| fail(&url, e.to_string()))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| fail(&url, chain(&e)))?;
        let status = response.status();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        match location {
            Some(location) if req.redirect && status.is_redirection() => {
                if hop == MAX_REDIRECTS {
                    return Err(fail(
                        &url,
                        format!("stopped after {MAX_REDIRECTS} redirects"),
                    ));
                }
                let next = resolve(&url, &location).map_err(|e| fail(&url, e))?;
                if next.host() != url.host() || next.port_u16() != url.port_u16() {
                    // As Go's client: no credentials to another host.
                    headers.retain(|(k, _)| {
                        k != http::header::AUTHORIZATION && k != http::header::COOKIE
                    });
                }
                if status == StatusCode::SEE_OTHER
                    || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                        && method == Method::POST)
                {
                    method = Method::GET;
                    body = None;
                }
                url = next;
            }
            _ => return read_response(response).await.map_err(|e| fail(&url, e)),
        }
    }
    Err(fail(
        &url,
        format!("stopped after {MAX_REDIRECTS} redirects"),
    ))
}

/// OPA's response object, the body at most [`MAX_RESPONSE_BYTES`].
async fn read_response(response: http::Response<hyper::body::Incoming>) -> Result<Json, String> {
    let too_big = || format!("response body larger than {MAX_RESPONSE_BYTES} bytes");
    let status = response.status();
    let length = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.parse::<u64>().ok());
    if length.is_some_and(|l| l > MAX_RESPONSE_BYTES as u64) {
        return Err(too_big());
    }
    let mut headers = Map::new();
    for name in response.headers().keys() {
        let values: Vec<Json> = response
            .headers()
            .get_all(name)
            .iter()
            .map(|v| Json::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.insert(name.as_str().to_string(), Json::Array(values));
    }
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_big()
            } else {
                chain(e.as_ref())
            }
        })?
        .to_bytes();
    let body = serde_json::from_slice::<Json>(&bytes).unwrap_or(Json::Null);
    let reason = status.canonical_reason().unwrap_or("");
    Ok(json!({
        "status_code": status.as_u16(),
        "status": format!("{} {reason}", status.as_u16()).trim_end(),
        "headers": headers,
        "raw_body": String::from_utf8_lossy(&bytes),
        "body": body,
    }))
}

struct Job {
    req: Request,
    reply: std_mpsc::SyncSender<Result<Json, String>>,
}

static WORKER: OnceLock<Option<tokio::sync::mpsc::UnboundedSender<Job>>> = OnceLock::new();

fn worker() -> Option<&'static tokio::sync::mpsc::UnboundedSender<Job>> {
    WORKER
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
            std::thread::Builder::new()
                .name("usher-http-send".into())
                .spawn(move || {
                    rt.block_on(async move {
                        let client = match client() {
                            Ok(c) => c,
                            Err(_) => return,
                        };
                        while let Some(job) = rx.recv().await {
                            let client = client.clone();
                            tokio::spawn(async move {
                                let timeout = job.req.timeout;
                                let got = tokio::time::timeout(timeout, execute(&client, &job.req))
                                    .await
                                    .unwrap_or_else(|_| Err(timed_out(&job.req)));
                                let _ = job.reply.send(got);
                            });
                        }
                    })
                })
                .ok()?;
            Some(tx)
        })
        .as_ref()
}

fn timed_out(req: &Request) -> String {
    format!(
        "{} {:?}: request timed out after {:?}",
        req.method, req.url, req.timeout
    )
}

/// Runs `req` on the background thread; waits at most its timeout.
fn fetch(req: &Request) -> Result<Json, String> {
    let worker = worker().ok_or("http.send: no client thread")?;
    let (reply, answer) = std_mpsc::sync_channel(1);
    worker
        .send(Job {
            req: req.clone(),
            reply,
        })
        .map_err(|_| "http.send: the client thread is gone".to_string())?;
    // A little grace: the runtime's own timeout answers first normally.
    match answer.recv_timeout(req.timeout + Duration::from_millis(100)) {
        Ok(got) => got,
        Err(_) => Err(timed_out(req)),
    }
}
