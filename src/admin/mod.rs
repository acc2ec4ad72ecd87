//! The admin HTTP listener (loopback by default). Endpoints:
//!
//! | path | what |
//! |---|---|
//! | `GET /metrics` | Prometheus text exposition of every metric |
//! | `GET /healthz` | 200 while the process serves HTTP (liveness) |
//! | `GET /readyz` | 200 once DNS is bound and every target has a first probe result, 503 before |
//! | `GET /api/v1/status` | JSON: every target, VIP and last probe, and every app's answer |

pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::answer::AnswerTable;
use crate::health::HealthSnapshot;
use crate::metrics::Metrics;
use crate::model::Inventory;

/// What the admin endpoints read. Cloning is cheap (handles only).
#[derive(Clone)]
pub struct AdminState {
    pub inventory: Arc<Inventory>,
    pub health: watch::Receiver<Arc<HealthSnapshot>>,
    pub table: Arc<ArcSwap<AnswerTable>>,
    pub metrics: Arc<Metrics>,
    /// The readiness latch: set once by the app when serving is meaningful.
    pub ready: Arc<AtomicBool>,
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .with_state(state)
}

/// Serves the admin API until `cancel` fires.
///
/// # Errors
///
/// When the listener fails.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
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

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the first probe of every target\n",
        )
    }
}

async fn status(State(s): State<AdminState>) -> impl IntoResponse {
    let health = s.health.borrow().clone();
    let table = s.table.load_full();
    Json(status::report(
        &s.inventory,
        &health,
        &table,
        s.ready.load(Ordering::Acquire),
    ))
}
