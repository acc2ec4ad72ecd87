//! `GET/POST/DELETE /api/v1/overrides`: the operator's hand on the switch.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{AdminState, error};
use crate::health::{HealthInput, Override, OverrideError, OverrideKind};

/// The body of `POST /api/v1/overrides`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetOverride {
    pub cluster: String,
    #[serde(default)]
    pub app: Option<String>,
    pub kind: OverrideKind,
    pub reason: String,
    /// How long until it lifts itself, e.g. `"1h"`.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// Apply even if an app is left with no healthy cluster.
    #[serde(default)]
    pub force: bool,
    /// Who sets it; defaults to `admin-api`.
    #[serde(default)]
    pub set_by: Option<String>,
}

/// The query of `DELETE /api/v1/overrides`.
#[derive(Debug, Deserialize)]
pub struct ClearQuery {
    pub cluster: String,
    pub app: Option<String>,
}

pub async fn list(State(s): State<AdminState>) -> Json<Vec<Override>> {
    Json(s.health.borrow().overrides.clone())
}

pub async fn set(
    State(s): State<AdminState>,
    headers: HeaderMap,
    body: Result<Json<SetOverride>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err((code, msg)) = s.mutations.authorize(&headers) {
        return error(code, msg);
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return super::body_rejected(&e),
    };
    if req.reason.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "a reason is required");
    }
    let now = SystemTime::now();
    let expires_at = match req.expires_in.as_deref().map(crate::config::duration) {
        None => None,
        Some(Ok(d)) => Some(now + d),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("expires_in: {e}")),
    };
    let ov = Override {
        cluster: req.cluster,
        app: req.app,
        kind: req.kind,
        reason: req.reason,
        set_by: req.set_by.unwrap_or_else(|| "admin-api".to_owned()),
        set_at: now,
        expires_at,
    };
    let (reply, rx) = oneshot::channel();
    if s.health_tx
        .send(HealthInput::SetOverride {
            ov: ov.clone(),
            force: req.force,
            reply,
        })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(Ok(ov)) => {
            tracing::info!(target: "gslb::audit", action = "override.set", cluster = %ov.cluster, app = ov.app.as_deref().unwrap_or("*"), kind = ov.kind.as_str(), reason = %ov.reason, set_by = %ov.set_by, expires_at = ov.expires_at.map(crate::rfc3339::format).unwrap_or_default(), force = req.force, "override set");
            (StatusCode::CREATED, Json(ov)).into_response()
        }
        Ok(Err(e)) => {
            tracing::info!(target: "gslb::audit", action = "override.refused", cluster = %ov.cluster, app = ov.app.as_deref().unwrap_or("*"), kind = ov.kind.as_str(), set_by = %ov.set_by, error = %e, "override refused");
            error(code_of(&e), e.to_string())
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

pub async fn clear(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<ClearQuery>,
) -> Response {
    if let Err((code, msg)) = s.mutations.authorize(&headers) {
        return error(code, msg);
    }
    let (reply, rx) = oneshot::channel();
    let input = HealthInput::ClearOverride {
        cluster: q.cluster.clone(),
        app: q.app.clone(),
        reply,
    };
    if s.health_tx.send(input).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(Ok(removed)) => {
            for o in &removed {
                tracing::info!(target: "gslb::audit", action = "override.cleared", cluster = %o.cluster, app = o.app.as_deref().unwrap_or("*"), kind = o.kind.as_str(), reason = %o.reason, set_by = %o.set_by, "override cleared");
            }
            Json(removed).into_response()
        }
        Ok(Err(e)) => error(code_of(&e), e.to_string()),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

fn code_of(e: &OverrideError) -> StatusCode {
    match e {
        OverrideError::UnknownCluster(_)
        | OverrideError::UnknownApp(_)
        | OverrideError::NotFound { .. } => StatusCode::NOT_FOUND,
        OverrideError::NotInApp { .. } => StatusCode::BAD_REQUEST,
        OverrideError::WouldEmpty(_) => StatusCode::CONFLICT,
        OverrideError::NotPersisted(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
