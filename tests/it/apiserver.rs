//! A stand-in Kubernetes API server over real HTTP, for the discovery tests.
//!
//! A real kube-apiserver cannot run on our machines (no container engine, no binaries in
//! the package registries we reach). This one serves what kube-runtime's watcher uses:
//! list (`GET <collection>` → `{"items": [...], "metadata": {"resourceVersion"}}`) and
//! watch (`?watch=true&resourceVersion=N` → a stream of `{"type", "object"}` lines), with
//! namespaces, `metadata.name=` field selectors and equality label selectors. Tests change
//! objects while watches are open, make the API go down, and expire watches with `410
//! Gone` to force a relist. The objects are shaped after the engines' published CRD
//! schemas (`../shared/crds`).
//!
//! One write path, as kube-rs sends it for quorum views: server-side apply (`PATCH
//! .../namespaces/NS/configmaps/NAME?fieldManager=M&force=true`, content type
//! `application/apply-patch+yaml`), which creates or replaces the object whole (each view
//! object has a single manager, so field ownership is not merged) and stamps what a real
//! API server stamps: `uid`, `creationTimestamp`, `resourceVersion`, and `managedFields`
//! naming the manager. And `DELETE` of one object (a `DELETED` event for the watches).
//! Every write is recorded for tests to inspect.

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
    /// Every write request, in order.
    writes: Vec<Write>,
    /// List requests (not watches) per collection, answered or not.
    lists: BTreeMap<String, usize>,
}

/// A write request as received.
#[derive(Debug, Clone)]
pub struct Write {
    pub method: String,
    pub path: String,
    /// The decoded query parameters.
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    /// The status the stand-in answered.
    pub status: u16,
    /// A `DELETE`'s `preconditions.resourceVersion`.
    pub precondition: Option<String>,
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

    /// Deletes an object of a collection, as `DELETE` does: a `DELETED` event for the
    /// watches, and the object as it was, if there was one.
    pub fn delete(&self, collection: &str, namespace: &str, name: &str) -> Option<Value> {
        let mut inner = self.inner.lock().unwrap();
        let key = format!("{namespace}/{name}");
        let mut object = inner.objects.get_mut(collection)?.remove(&key)?;
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let line = json!({"type": "DELETED", "object": object});
        inner.history.push((rv, collection.to_owned(), line));
        drop(inner);
        let _ = self.changes.send(());
        Some(object)
    }

    /// The objects of a collection such as `api/v1/configmaps`, by "ns/name".
    pub fn objects(&self, collection: &str) -> BTreeMap<String, Value> {
        let inner = self.inner.lock().unwrap();
        inner.objects.get(collection).cloned().unwrap_or_default()
    }

    /// Every write request received so far.
    pub fn writes(&self) -> Vec<Write> {
        self.inner.lock().unwrap().writes.clone()
    }

    /// The API answers 503 to everything and open watches end, or it comes back.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
        if down {
            let _ = self.cut.send(());
        }
    }

    /// How many list requests (answered or not) a collection has had.
    pub fn lists(&self, collection: &str) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.lists.get(collection).copied().unwrap_or(0)
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

    /// Removes an object without a `DELETED` event, as a deletion made while a client's
    /// watch was broken looks to it: only a new list shows it gone.
    pub fn remove_unseen(&self, collection: &str, namespace: &str, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(objects) = inner.objects.get_mut(collection) {
            objects.remove(&format!("{namespace}/{name}"));
        }
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

/// `(collection, namespace, name)` of a request path for one namespaced object.
fn parse_object_path(path: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match *parts.first()? {
        "api" => (parts.get(..2)?.join("/"), &parts[2..]),
        "apis" => (parts.get(..3)?.join("/"), &parts[3..]),
        _ => return None,
    };
    match rest {
        ["namespaces", ns, plural, name] => Some((
            format!("{prefix}/{plural}"),
            (*ns).to_owned(),
            (*name).to_owned(),
        )),
        _ => None,
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

/// The object is in the namespace, has the name, and every label of the selector
/// (`k=v,k2=v2`; equality is all gslb sends).
fn matches(object: &Value, ns: &Option<String>, name: &Option<String>, labels: &str) -> bool {
    ns.as_ref()
        .is_none_or(|n| object["metadata"]["namespace"] == n.as_str())
        && name
            .as_ref()
            .is_none_or(|n| object["metadata"]["name"] == n.as_str())
        && labels.split(',').filter(|t| !t.is_empty()).all(|term| {
            let (k, v) = term.split_once('=').unwrap_or((term, ""));
            object["metadata"]["labels"][k] == v.trim_start_matches('=')
        })
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
    if req.method() == axum::http::Method::PATCH && !req.uri().path().ends_with("/scale") {
        return apply(&api, req).await;
    }
    if req.method() == axum::http::Method::DELETE {
        return delete(&api, req).await;
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

/// Server-side apply of a whole object: creates it or replaces it, keeping its `uid` and
/// `creationTimestamp`, and answers the object as stored.
async fn apply(api: &FakeApi, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let query = url_decode(req.uri().query().unwrap_or(""));
    let content_type = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = axum::body::to_bytes(req.into_body(), 3 << 20).await;
    let response = (|| {
        if api.inner.lock().unwrap().down {
            return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
        }
        let Some((collection, ns, name)) = parse_object_path(&path) else {
            return failure(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no such path {path}"),
            );
        };
        if content_type != "application/apply-patch+yaml" {
            return failure(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("the stand-in only takes server-side apply, not {content_type}"),
            );
        }
        let Some(manager) = query.get("fieldManager").cloned() else {
            return failure(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "PATCH, application/apply-patch+yaml: fieldManager is required".into(),
            );
        };
        let Ok(Ok(mut object)) = body.map(|b| serde_json::from_slice::<Value>(&b)) else {
            return failure(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "not an object".into(),
            );
        };
        if object["metadata"]["name"] != name.as_str()
            || object["metadata"]["namespace"] != ns.as_str()
        {
            return failure(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the name and namespace of the body must match the path".into(),
            );
        }
        // A ConfigMap's data may not exceed 1 MiB (keys and values together).
        let size: usize = object["data"]
            .as_object()
            .map(|d| {
                d.iter()
                    .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                    .sum()
            })
            .unwrap_or(0);
        if size > 1024 * 1024 {
            return failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!(
                    "ConfigMap \"{name}\" is invalid: []: Too long: must have at most 1048576 bytes"
                ),
            );
        }
        let key = format!("{ns}/{name}");
        let old = api
            .inner
            .lock()
            .unwrap()
            .objects
            .get(&collection)
            .and_then(|m| m.get(&key))
            .cloned();
        let now = "2026-11-30T00:00:00Z";
        let meta = &mut object["metadata"];
        meta["uid"] = old.as_ref().map_or_else(
            || {
                json!(format!(
                    "00000000-0000-4000-8000-{:012x}",
                    name.len() * 7919 + ns.len()
                ))
            },
            |o| o["metadata"]["uid"].clone(),
        );
        meta["creationTimestamp"] = old.as_ref().map_or_else(
            || json!(now),
            |o| o["metadata"]["creationTimestamp"].clone(),
        );
        meta["managedFields"] = json!([{"manager": manager, "operation": "Apply", "apiVersion": "v1",
            "time": now, "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:view.json": {}}, "f:metadata": {"f:labels": {}}}}]);
        api.put(&collection, object);
        let stored = api.objects(&collection).get(&key).cloned().unwrap();
        (
            if old.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            axum::Json(stored),
        )
            .into_response()
    })();
    api.inner.lock().unwrap().writes.push(Write {
        method: "PATCH".into(),
        path,
        query,
        content_type,
        status: response.status().as_u16(),
        precondition: None,
    });
    response
}

/// A `Status` failure, as the API server answers one.
fn failure(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

/// `DELETE` of one object, honouring `preconditions.resourceVersion` in the body's
/// DeleteOptions: the object as it was, `404` or `409` with a `Status`.
async fn delete(api: &FakeApi, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let query = url_decode(req.uri().query().unwrap_or(""));
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let options: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let precondition = options["preconditions"]["resourceVersion"].as_str();
    let response = if api.inner.lock().unwrap().down {
        (StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
    } else if let Some((collection, ns, name)) = parse_object_path(&path) {
        let stored = api
            .objects(&collection)
            .get(&format!("{ns}/{name}"))
            .cloned();
        match stored {
            None => failure(StatusCode::NOT_FOUND, "NotFound", "NotFound".to_owned()),
            Some(o) if precondition.is_some_and(|rv| o["metadata"]["resourceVersion"] != rv) => {
                failure(StatusCode::CONFLICT, "Conflict", "Conflict".to_owned())
            }
            Some(_) => match api.delete(&collection, &ns, &name) {
                Some(object) => axum::Json(object).into_response(),
                None => failure(StatusCode::NOT_FOUND, "NotFound", "NotFound".to_owned()),
            },
        }
    } else {
        failure(StatusCode::NOT_FOUND, "NotFound", "NotFound".to_owned())
    };
    api.inner.lock().unwrap().writes.push(Write {
        method: "DELETE".into(),
        path,
        query,
        content_type: String::new(),
        status: response.status().as_u16(),
        precondition: precondition.map(str::to_owned),
    });
    response
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
    let labels = query.get("labelSelector").cloned().unwrap_or_default();
    let mut inner = api.inner.lock().unwrap();
    let list = query.get("watch").map(String::as_str) != Some("true");
    if list {
        *inner.lists.entry(collection.clone()).or_default() += 1;
    }
    if inner.down {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    if list {
        inner.gone = false;
        let items: Vec<Value> = inner
            .objects
            .get(&collection)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|o| matches(o, &ns, &name, &labels))
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
                    *rv > sent && *c == collection && matches(&l["object"], &ns, &name, &labels)
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
