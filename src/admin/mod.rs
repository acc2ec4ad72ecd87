//! The admin HTTP listener (loopback by default). Endpoints:
//!
//! | path | what |
//! |---|---|
//! | `GET /metrics` | Prometheus text exposition of every metric |
//! | `GET /healthz` | 200 while the process serves HTTP (liveness) |
//! | `GET /readyz` | 200 once DNS is bound and every target has a first probe result, 503 before |
//! | `GET /api/v1/status` | JSON: every target, VIP and last probe, overrides, and every app's answer |
//! | `GET /api/v1/overrides` | the active overrides |
//! | `POST /api/v1/overrides` | set an override (token) |
//! | `DELETE /api/v1/overrides?cluster=X[&app=Y]` | clear overrides (token) |
//! | `GET /api/v1/explain?name=N[&type=A]` | why a name answers what it answers |
//! | `GET /api/v1/drills` | past drills |
//! | `POST /api/v1/drills` | record a drill's timeline (token) |
//! | `GET /api/v1/drills/plan?cluster=X` | what each app would answer if X failed |
//! | `POST /api/v1/reload` | reload the config file, like SIGHUP (token) |
//! | `GET /api/v1/view` | this instance's own view of every target, for its `[quorum]` peers (token, whenever one is configured) |
//!
//! Mutating calls are authorized by [`auth`], and so are reads with
//! `admin_protect_reads` (all but `/healthz` and `/readyz`, before anything else is
//! done with the request); every change is one audit log line (target `gslb::audit`).
//! Request bodies are capped at 64 KiB: a larger `Content-Length` is answered 413 before
//! any of the body is read, and a body without one (chunked) once its first 64 KiB are.

mod auth;
pub mod client;
pub mod drills;
pub mod explain;
pub mod overrides;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use auth::{Mutations, Reads, Token};

use crate::answer::AnswerTable;
use crate::health::{HealthInput, HealthSnapshot};
use crate::metrics::Metrics;
use crate::state::StateStore;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// What the admin endpoints read and where they send changes. Cloning is cheap.
#[derive(Clone)]
pub struct AdminState {
    pub health: watch::Receiver<Arc<HealthSnapshot>>,
    /// Override commands go to health, like probe results.
    pub health_tx: mpsc::Sender<HealthInput>,
    pub table: Arc<ArcSwap<AnswerTable>>,
    pub metrics: Arc<Metrics>,
    /// The readiness latch: set once by the app when serving is meaningful.
    pub ready: Arc<AtomicBool>,
    pub mutations: Arc<Mutations>,
    /// Whether reads need the token (`admin_protect_reads`).
    pub reads: Arc<Reads>,
    /// Where drills are kept; `None` without a state file (drills are then not kept).
    pub state: Option<Arc<StateStore>>,
    /// The DNS listeners, for clients (drills) that query gslb itself.
    pub dns_addrs: Vec<SocketAddr>,
    /// How each discovery source is doing.
    pub discovery: Arc<crate::discovery::DiscoveryStatus>,
    /// Reload requests (`POST /api/v1/reload`).
    pub reload: mpsc::Sender<crate::app::ReloadRequest>,
    /// This instance's name in its view (`[quorum] instance`, else the host name).
    pub instance: Arc<str>,
    /// With `[quorum] hub`: how the writes and the watch of views are doing.
    pub quorum_hub: Option<Arc<crate::quorum::hub::HubStatus>>,
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .route(
            "/api/v1/overrides",
            get(overrides::list)
                .post(overrides::set)
                .delete(overrides::clear),
        )
        .route("/api/v1/explain", get(explain::handler))
        .route("/api/v1/drills", get(drills::list).post(drills::record))
        .route("/api/v1/drills/plan", get(drills::plan))
        .route("/api/v1/reload", axum::routing::post(reload))
        .route("/api/v1/view", get(view))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(refuse_large_bodies))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authorize_reads,
        ))
        .with_state(state)
}

/// With `admin_protect_reads`, every call but the probes needs the token; unknown paths
/// too, so that nothing about the API is learnt without it.
async fn authorize_reads(State(s): State<AdminState>, request: Request, next: Next) -> Response {
    match s.reads.authorize(request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err((code, msg)) => error(code, msg),
    }
}

/// Answers 413 to a request that announces a body over [`MAX_BODY`], before reading any
/// of it. Bodies without a length are cut off at the limit as they are read
/// ([`DefaultBodyLimit`]); handlers that take no body never read it.
async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request bodies are limited to {} KiB", MAX_BODY / 1024),
        );
    }
    next.run(request).await
}

/// Most admin connections open at once; a connection past it is closed at once. Scrapers,
/// the CLI, probes of `/readyz` and peers need a handful.
pub const MAX_CONNECTIONS: usize = 128;
/// Longest wait for a request's headers, and for the next request on an idle keep-alive
/// connection: a client that trickles bytes (or none) cannot hold a slot longer.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the admin API until `cancel` fires: HTTP/1.1, at most [`MAX_CONNECTIONS`]
/// connections, each closed when its headers take longer than [`HEADER_TIMEOUT`]. At
/// `cancel`, idle connections close and requests in progress are finished.
///
/// # Errors
///
/// Never at present: accept errors (such as running out of descriptors) are logged and
/// retried, so that the API comes back when the cause goes away.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(
                limit = MAX_CONNECTIONS,
                "admin listener: connection refused at the cap"
            );
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let cancel = cancel.clone();
        connections.spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Binds the admin listener.
///
/// # Errors
///
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("admin listener on {addr}: {e}")))
}

/// A JSON error body: `{"error": "..."}`.
pub(crate) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// A JSON body that could not be taken: 413 when it was over [`MAX_BODY`], else 400.
pub(crate) fn body_rejected(e: &axum::extract::rejection::JsonRejection) -> Response {
    let code = match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    error(code, e.body_text())
}

/// The text is streamed a chunk at a time as it is written ([`Metrics::scrape`]): at
/// 10,000 targets it is 20 MB, which would otherwise be held whole for every scrape.
async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    let chunks = s.metrics.scrape().map(Ok::<_, std::convert::Infallible>);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        axum::body::Body::from_stream(futures::stream::iter(chunks)),
    )
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting (waiting for discovery and the first probe of every target) or shutting down\n",
        )
    }
}

impl AdminState {
    /// The current health snapshot and an answer table built from the same inventory.
    /// Right after discovery changes the inventory, the published table may still refer
    /// to the previous one for a moment; then one is built from the snapshot.
    pub(crate) fn current(&self) -> (Arc<HealthSnapshot>, Arc<AnswerTable>) {
        let health = self.health.borrow().clone();
        let table = self.table.load_full();
        if Arc::ptr_eq(&table.inventory, &health.inventory) {
            (health, table)
        } else {
            let table = Arc::new(AnswerTable::build_versioned(&health, &table.versions, 0));
            (health, table)
        }
    }
}

async fn reload(State(s): State<AdminState>, headers: axum::http::HeaderMap) -> Response {
    if let Err((code, msg)) = s.mutations.authorize(&headers) {
        return error(code, msg);
    }
    match crate::app::request_reload(&s.reload).await {
        Ok(summary) => Json(serde_json::json!({ "reloaded": summary })).into_response(),
        Err(problems) => error(StatusCode::UNPROCESSABLE_ENTITY, problems),
    }
}

/// This instance's view: each endpoint's state by its own probes, after its own rise/fall,
/// without overrides or the quorum's decision (see [`crate::health::quorum`]).
async fn view(
    State(s): State<AdminState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<crate::health::quorum::View>, (StatusCode, String)> {
    s.mutations.authorize_view(&headers)?;
    let health = s.health.borrow().clone();
    Ok(Json(crate::health::quorum::View::of(
        &s.instance,
        &health,
        std::time::SystemTime::now(),
    )))
}

async fn status(State(s): State<AdminState>) -> Response {
    // All of it off the async workers, the table too when the planner has not yet
    // built the current inventory's (see `AdminState::current`).
    json_stream(move || {
        let (health, table) = s.current();
        let ready = s.ready.load(Ordering::Acquire);
        let mut report = status::report(&health.inventory, &health, &table, ready, &s.dns_addrs);
        report.sources = s.discovery.sources();
        if let (Some(q), Some(hub)) = (report.quorum.as_mut(), &s.quorum_hub) {
            q.hub = Some(hub.get());
        }
        report
    })
}

/// About how large a chunk of a streamed JSON body is.
const JSON_CHUNK: usize = 64 * 1024;

/// A JSON response made by `make` and serialized on a blocking thread, streamed a chunk
/// at a time as it is written. At 10,000 targets a status is 4.8 MB of JSON and 40 ms of
/// CPU: built and serialized whole on an async worker, it held probes back for as long,
/// and its buffer (twice over while it grew) was the peak of gslb's resident memory.
/// A value that fails to serialize (none does: every map has string keys), or a panic
/// while making it, aborts the response mid-body, so the client sees a cut response
/// rather than a complete-looking truncated one.
fn json_stream<T, F>(make: F) -> Response
where
    T: serde::Serialize,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            buf: Vec::with_capacity(JSON_CHUNK),
            tx,
            done: false,
        };
        match serde_json::to_writer(&mut out, &make()) {
            Ok(()) if out.buf.is_empty() => out.done = true,
            Ok(()) => out.done = out.send().is_ok(),
            Err(e) if e.is_io() => {} // the client is gone
            Err(e) => tracing::error!(error = %e, "cannot serialize an admin API response"),
        }
    });
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((chunk, rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

/// Collects serialized bytes and hands them on in chunks of about [`JSON_CHUNK`]. Dropped
/// before the whole value was sent (an error, a panic), it sends an error, which aborts
/// the response.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    done: bool,
}

impl ChunkWriter {
    /// Sends what is collected; fails once the client is gone, which ends serializing.
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(JSON_CHUNK));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if !self.done {
            let cut = std::io::Error::other("the response could not be made whole");
            let _ = self.tx.blocking_send(Err(cut));
        }
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= JSON_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_large_json_body_is_streamed_in_chunks_that_make_the_whole() {
        let value: Vec<String> = (0..40_000).map(|i| format!("target-{i}")).collect();
        let expected = serde_json::to_vec(&value).unwrap();
        let response = json_stream(move || value);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let chunks: Vec<_> = response.into_body().into_data_stream().collect().await;
        let chunks: Vec<_> = chunks.into_iter().map(Result::unwrap).collect();
        assert!(chunks.len() > 5, "{} chunks", chunks.len());
        assert!(
            chunks
                .iter()
                .all(|c| !c.is_empty() && c.len() < 2 * JSON_CHUNK)
        );
        assert_eq!(chunks.concat(), expected);
    }

    #[tokio::test]
    async fn a_response_that_cannot_be_made_is_cut_not_completed() {
        let response = json_stream(|| -> Vec<u8> { panic!("no report") });
        let chunks: Vec<_> = response.into_body().into_data_stream().collect().await;
        assert!(chunks.last().is_some_and(Result::is_err), "{chunks:?}");
        // A map with non-string keys does not serialize to JSON.
        let bad = || std::collections::BTreeMap::from([((1, 2), "x")]);
        let chunks: Vec<_> = json_stream(bad)
            .into_body()
            .into_data_stream()
            .collect()
            .await;
        assert!(chunks.last().is_some_and(Result::is_err), "{chunks:?}");
    }

    #[tokio::test]
    async fn a_small_json_body_is_one_chunk() {
        let response = json_stream(|| serde_json::json!({"ok": true}));
        let chunks: Vec<_> = response.into_body().into_data_stream().collect().await;
        assert_eq!(chunks.len(), 1);
        assert_eq!(&chunks[0].as_ref().unwrap()[..], br#"{"ok":true}"#);
    }
}
