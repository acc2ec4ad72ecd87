//! A stand-in Kubernetes API server over real HTTP, for the discovery tests.
//!
//! A real kube-apiserver cannot run on our machines (no container engine, no binaries in
//! the package registries we reach). This one serves what kube-runtime's watcher uses:
//! list (`GET <collection>` → `{"items": [...], "metadata": {"resourceVersion"}}`) and
//! watch (`?watch=true&resourceVersion=N` → a stream of `{"type", "object"}` lines), with
//! namespaces and `metadata.name=` field selectors. Tests change objects while watches are
//! open, make the API go down, and expire watches with `410 Gone` to force a relist. The
//! objects are shaped after the engines' published CRD schemas (`../shared/crds`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Default)]
struct Inner {
    rv: u64,
    /// collection (e.g. `apis/apps/v1/deployments`) → "ns/name" → object
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    /// (rv, collection, event line) of every change, for watches that resume.
    history: Vec<(u64, String, Value)>,
    down: bool,
    /// Watches opened from now on get `410 Gone` (until the next list).
    gone: bool,
    /// Every distinct `Authorization` header seen.
    authorizations: std::collections::BTreeSet<String>,
}

#[derive(Clone)]
pub struct FakeApi {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    /// Ends open watch streams (down, or 410).
    cut: broadcast::Sender<()>,
    changes: broadcast::Sender<()>,
}

impl FakeApi {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = Self {
            addr: listener.local_addr().unwrap(),
            inner: Arc::default(),
            cut: broadcast::channel(16).0,
            changes: broadcast::channel(1024).0,
        };
        let app = axum::Router::new().fallback(handle).with_state(api.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        api
    }

    /// Creates or replaces an object in a collection such as `apis/apps/v1/deployments`.
    pub fn put(&self, collection: &str, mut object: Value) {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = format!(
            "{}/{}",
            object["metadata"]["namespace"].as_str().unwrap_or(""),
            object["metadata"]["name"].as_str().unwrap()
        );
        let existed = inner
            .objects
            .entry(collection.to_owned())
            .or_default()
            .insert(key, object.clone())
            .is_some();
        let line = json!({"type": if existed { "MODIFIED" } else { "ADDED" }, "object": object});
        inner.history.push((rv, collection.to_owned(), line));
        drop(inner);
        let _ = self.changes.send(());
    }

    /// The API answers 503 to everything and open watches end, or it comes back.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
        if down {
            let _ = self.cut.send(());
        }
    }

    /// Every distinct `Authorization` header clients have sent.
    pub fn authorizations(&self) -> Vec<String> {
        self.inner
            .lock()
            .unwrap()
            .authorizations
            .iter()
            .cloned()
            .collect()
    }

    /// Open watches end and the next ones get `410 Gone`, so clients must list again.
    pub fn expire_watches(&self) {
        self.inner.lock().unwrap().gone = true;
        let _ = self.cut.send(());
    }

    /// A kubeconfig with one context per `(context, api)` pair, over plain HTTP.
    pub fn kubeconfig(dir: &std::path::Path, contexts: &[(&str, &FakeApi)]) -> std::path::PathBuf {
        Self::kubeconfig_with_token(dir, contexts, "test-token")
    }

    /// As [`FakeApi::kubeconfig`], with the user's bearer token `token`.
    pub fn kubeconfig_with_token(
        dir: &std::path::Path,
        contexts: &[(&str, &FakeApi)],
        token: &str,
    ) -> std::path::PathBuf {
        let mut clusters = String::new();
        let mut ctxs = String::new();
        for (name, api) in contexts {
            clusters.push_str(&format!(
                "- name: {name}\n  cluster:\n    server: http://{}\n",
                api.addr
            ));
            ctxs.push_str(&format!(
                "- name: {name}\n  context:\n    cluster: {name}\n    user: tester\n"
            ));
        }
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{ctxs}current-context: {}\nusers:\n- name: tester\n  user:\n    token: {token}\n",
            contexts[0].0
        );
        let path = dir.join(format!("{}.kubeconfig", contexts[0].0));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `(collection, namespace filter)` of a request path.
fn parse_path(path: &str) -> Option<(String, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match *parts.first()? {
        "api" => (parts[..2].join("/"), &parts[2..]),
        "apis" => (parts.get(..3)?.join("/"), &parts[3..]),
        _ => return None,
    };
    match rest {
        [plural] => Some((format!("{prefix}/{plural}"), None)),
        ["namespaces", ns, plural] => Some((format!("{prefix}/{plural}"), Some((*ns).to_owned()))),
        _ => None,
    }
}

fn matches(object: &Value, ns: &Option<String>, name: &Option<String>) -> bool {
    ns.as_ref()
        .is_none_or(|n| object["metadata"]["namespace"] == n.as_str())
        && name
            .as_ref()
            .is_none_or(|n| object["metadata"]["name"] == n.as_str())
}

async fn handle(State(api): State<FakeApi>, req: Request) -> Response {
    if let Some(auth) = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut inner = api.inner.lock().unwrap();
        inner.authorizations.insert(auth.to_owned());
    }
    if req.uri().path().ends_with("/scale") {
        return scale(&api, req)
            .await
            .unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response());
    }
    handle_plain(api, req).await
}

/// `GET`/`PATCH .../namespaces/NS/deployments/NAME/scale`; like a real controller, a
/// patched replica count becomes the ready count at once.
async fn scale(api: &FakeApi, req: Request) -> Option<Response> {
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.len() != 8 || parts[0] != "apis" || parts[3] != "namespaces" {
        return None;
    }
    let collection = format!("{}/{}/{}/{}", parts[0], parts[1], parts[2], parts[5]);
    let key = format!("{}/{}", parts[4], parts[6]);
    let patch = req.method() == axum::http::Method::PATCH;
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.ok()?;
    let mut object = api
        .inner
        .lock()
        .unwrap()
        .objects
        .get(&collection)?
        .get(&key)?
        .clone();
    if patch {
        let p: Value = serde_json::from_slice(&body).ok()?;
        let n = p["spec"]["replicas"].clone();
        object["spec"]["replicas"] = n.clone();
        object["status"]["replicas"] = n.clone();
        object["status"]["readyReplicas"] = n;
        api.put(&collection, object.clone());
    }
    let replicas = object["spec"]["replicas"].clone();
    Some(
        axum::Json(json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": parts[6], "namespace": parts[4]},
        "spec": {"replicas": replicas}, "status": {"replicas": replicas}}))
        .into_response(),
    )
}

async fn handle_plain(api: FakeApi, req: Request) -> Response {
    let query: BTreeMap<String, String> = url_decode(req.uri().query().unwrap_or(""));
    if req.uri().path() == "/version" {
        if api.inner.lock().unwrap().down {
            return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
        }
        return axum::Json(json!({"major": "1", "minor": "30", "gitVersion": "v1.30.0", "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64"})).into_response();
    }
    let Some((collection, ns)) = parse_path(req.uri().path()) else {
        return (StatusCode::NOT_FOUND, "no such path").into_response();
    };
    let name = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_owned);
    let mut inner = api.inner.lock().unwrap();
    if inner.down {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    if query.get("watch").map(String::as_str) != Some("true") {
        inner.gone = false;
        let items: Vec<Value> = inner
            .objects
            .get(&collection)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|o| matches(o, &ns, &name))
            .cloned()
            .collect();
        let body = json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items});
        return axum::Json(body).into_response();
    }
    if inner.gone {
        let line = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}});
        return Body::from(format!("{line}\n")).into_response();
    }
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    drop(inner);
    // Replay what changed after `from`, then follow changes until cut.
    let (mut changes, mut cut) = (api.changes.subscribe(), api.cut.subscribe());
    let inner = api.inner.clone();
    let stream = async_stream(move |tx: tokio::sync::mpsc::Sender<String>| async move {
        let mut sent = from;
        loop {
            let lines: Vec<(u64, String)> = inner
                .lock()
                .unwrap()
                .history
                .iter()
                .filter(|(rv, c, l)| {
                    *rv > sent && *c == collection && matches(&l["object"], &ns, &name)
                })
                .map(|(rv, _, l)| (*rv, format!("{l}\n")))
                .collect();
            for (rv, line) in lines {
                if tx.send(line).await.is_err() {
                    return;
                }
                sent = rv;
            }
            tokio::select! {
                _ = cut.recv() => return,
                r = changes.recv() => if matches!(r, Err(broadcast::error::RecvError::Closed)) { return },
            }
        }
    });
    Body::from_stream(stream.map(Ok::<_, std::io::Error>)).into_response()
}

/// A stream fed by a task.
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = String>
where
    F: FnOnce(tokio::sync::mpsc::Sender<String>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<String>,
) -> impl futures::Stream<Item = String> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn url_decode(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
