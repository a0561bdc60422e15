//! `GET /app-probe/<container>/<probe>`: the kubelet's HTTP probes of the
//! app, made by usher from inside the pod.
//!
//! With the pod's traffic captured (`usher init-net`), a kubelet probe of
//! an app port would reach usher's inbound listener, which wants mTLS, and
//! fail. `usher inject` therefore points each HTTP probe of the app at the
//! admin port (`/app-probe/orders/livenessProbe`) and hands usher the
//! original target in `USHER_APP_PROBES` (JSON: `{"orders/livenessProbe":
//! {"port": 8080, "path": "/healthz", "headers": [{"name": ..., "value":
//! ...}]}}`), as Istio does with its agent port. Only those recorded
//! targets can be asked for: the admin port cannot be used to reach any
//! other local port or path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::respond::{text, ProxyBody};

/// The environment variable `usher inject` sets on the sidecar.
pub(crate) const ENV: &str = "USHER_APP_PROBES";
/// A probe that takes longer fails (the kubelet's own timeout is usually
/// shorter and wins).
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PROBES: usize = 64;

/// Where one probe goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProbeTarget {
    pub(crate) port: u16,
    pub(crate) path: String,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

/// The recorded probes, by `<container>/<probe>`, and each one's last
/// answer: within [`CACHE_FOR`] it is given again without asking the app,
/// so that whoever reaches the admin port cannot turn it into a flood of
/// requests to the app.
#[derive(Clone, Debug, Default)]
pub(crate) struct AppProbes {
    targets: Arc<HashMap<String, ProbeTarget>>,
    last: Arc<Mutex<HashMap<String, Answered>>>,
}

/// A probe's answer and when it was given.
type Answered = (Instant, StatusCode, String);

/// How long an app probe's answer is reused.
const CACHE_FOR: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    port: u16,
    #[serde(default = "slash")]
    path: String,
    #[serde(default)]
    headers: Vec<RawHeader>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: String,
    value: String,
}

fn slash() -> String {
    "/".into()
}

impl AppProbes {
    /// From the JSON `usher inject` writes; an error says what is wrong.
    pub(crate) fn parse(json: &str) -> Result<AppProbes, String> {
        let raw: HashMap<String, RawTarget> =
            serde_json::from_str(json).map_err(|e| format!("{ENV}: not valid JSON: {e}"))?;
        if raw.len() > MAX_PROBES {
            return Err(format!("{ENV}: more than {MAX_PROBES} probes"));
        }
        let mut out = HashMap::new();
        for (key, t) in raw {
            let bad = |why: &str| format!("{ENV}: {key:?}: {why}");
            if t.port == 0 {
                return Err(bad("port 0"));
            }
            // An origin-form path: no scheme or authority can be smuggled.
            if !t.path.starts_with('/')
                || t.path.starts_with("//")
                || t.path.parse::<http::uri::PathAndQuery>().is_err()
            {
                return Err(bad("the path must be an absolute path such as /healthz"));
            }
            let mut headers = Vec::new();
            for h in t.headers {
                let name = HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| bad("a header name is not valid"))?;
                let value = HeaderValue::from_str(&h.value)
                    .map_err(|_| bad("a header value is not valid"))?;
                headers.push((name, value));
            }
            out.insert(
                key,
                ProbeTarget {
                    port: t.port,
                    path: t.path,
                    headers,
                },
            );
        }
        Ok(AppProbes {
            targets: Arc::new(out),
            last: Arc::default(),
        })
    }

    /// From the environment (none: no probes).
    pub(crate) fn from_env() -> Result<AppProbes, String> {
        match std::env::var(ENV) {
            Ok(json) => AppProbes::parse(&json),
            Err(std::env::VarError::NotPresent) => Ok(AppProbes::default()),
            Err(e) => Err(format!("{ENV}: {e}")),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Answers `/app-probe/<key>`: the app's status for a recorded probe
    /// (2xx/3xx pass, as the kubelet reads them), 503 when the app cannot
    /// be reached, 404 for a probe nobody recorded.
    pub(crate) async fn answer(&self, key: &str) -> http::Response<ProxyBody> {
        let Some(target) = self.targets.get(key) else {
            return text(StatusCode::NOT_FOUND, "no such app probe\n");
        };
        let cached = self.lock().get(key).and_then(|(at, status, body)| {
            (at.elapsed() < CACHE_FOR).then(|| (*status, body.clone()))
        });
        let (status, body) = match cached {
            Some(answer) => answer,
            None => {
                let answer = match tokio::time::timeout(TIMEOUT, get(target)).await {
                    Ok(Ok(status)) => (status, format!("app probe: {}\n", status.as_u16())),
                    Ok(Err(why)) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("app probe failed: {why}\n"),
                    ),
                    Err(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "app probe failed: no answer in time\n".to_string(),
                    ),
                };
                self.lock().insert(
                    key.to_string(),
                    (Instant::now(), answer.0, answer.1.clone()),
                );
                answer
            }
        };
        text(status, body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Answered>> {
        // A panic while holding it leaves a map that is still sound.
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `GET path` to the app on loopback; its status.
async fn get(target: &ProbeTarget) -> Result<StatusCode, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", target.port))
        .await
        .map_err(|e| format!("cannot connect to port {}: {}", target.port, e.kind()))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|_| "the app did not speak HTTP/1.1".to_string())?;
    tokio::spawn(conn);
    let mut req = Request::get(target.path.as_str())
        .header(http::header::HOST, format!("127.0.0.1:{}", target.port))
        .header(http::header::USER_AGENT, "kube-probe (usher)")
        .body(Empty::<Bytes>::new())
        .map_err(|_| "the recorded probe is not a valid request".to_string())?;
    // A probe's own Host or User-Agent replaces usher's (one of each).
    for (name, value) in &target.headers {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    let resp = send
        .send_request(req)
        .await
        .map_err(|_| "the app closed the connection".to_string())?;
    Ok(resp.status())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_sane_targets_parse() {
        let ok = AppProbes::parse(
            r#"{"orders/livenessProbe": {"port": 8080, "path": "/healthz?full=1", "headers": [{"name": "X-Probe", "value": "1"}]},
                "orders/readinessProbe": {"port": 8081}}"#,
        )
        .unwrap();
        assert_eq!(ok.targets["orders/readinessProbe"].path, "/");
        assert_eq!(ok.targets["orders/livenessProbe"].headers.len(), 1);
        for bad in [
            "[]",
            r#"{"a/b": {"port": 0}}"#,
            r#"{"a/b": {"port": 70000}}"#,
            r#"{"a/b": {"port": 80, "path": "http://evil/"}}"#,
            r#"{"a/b": {"port": 80, "path": "//evil/x"}}"#,
            r#"{"a/b": {"port": 80, "path": "/a b"}}"#,
            r#"{"a/b": {"port": 80, "headers": [{"name": "bad name", "value": "x"}]}}"#,
            r#"{"a/b": {"port": 80, "extra": 1}}"#,
        ] {
            assert!(AppProbes::parse(bad).is_err(), "{bad}");
        }
    }

    /// A real app on loopback: its status comes back; a dead port is 503;
    /// an unrecorded probe is 404.
    #[tokio::test]
    async fn the_apps_answer_or_why_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = tokio::spawn(async move {
            let mut heads = Vec::new();
            for status in ["200 OK", "500 Internal Server Error"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 2048];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    n += s.read(&mut buf[n..]).await.unwrap();
                }
                heads.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
            heads
        });
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        let probes = AppProbes::parse(&format!(
            r#"{{"app/livenessProbe": {{"port": {port}, "path": "/healthz", "headers": [{{"name": "x-probe", "value": "yes"}}, {{"name": "Host", "value": "app.local"}}]}},
                "app/startupProbe": {{"port": {port}, "path": "/started"}},
                "app/readinessProbe": {{"port": {dead_port}, "path": "/ready"}}}}"#
        ))
        .unwrap();
        assert_eq!(
            probes.answer("app/livenessProbe").await.status(),
            StatusCode::OK
        );
        // Asked again within a second: the same answer, the app not asked.
        assert_eq!(
            probes.answer("app/livenessProbe").await.status(),
            StatusCode::OK
        );
        assert_eq!(
            probes.answer("app/startupProbe").await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let heads = app.await.unwrap();
        assert!(
            heads[0].starts_with("GET /healthz HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(heads[0].contains("x-probe: yes"), "{}", heads[0]);
        // The probe's Host replaces usher's: one Host header.
        assert_eq!(
            heads[0].to_ascii_lowercase().matches("host:").count(),
            1,
            "{}",
            heads[0]
        );
        assert!(heads[0].contains("app.local"), "{}", heads[0]);
        assert!(
            heads[1].starts_with("GET /started HTTP/1.1\r\n"),
            "{}",
            heads[1]
        );
        let down = probes.answer("app/readinessProbe").await;
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = down.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).starts_with("app probe failed: cannot connect"));
        assert_eq!(
            probes.answer("app/other").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            probes.answer("../../etc").await.status(),
            StatusCode::NOT_FOUND
        );
    }
}
