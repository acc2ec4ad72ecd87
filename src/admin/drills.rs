//! `GET/POST /api/v1/drills` and `GET /api/v1/drills/plan`: the server side of drills.
//! Drills themselves run in the client (`gslb drill run`); the server keeps their
//! timelines in the state file and counts them.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AdminState, error};
use crate::answer::plan::plan as plan_app;
use crate::drill::report::DrillRecord;
use crate::health::{HealthSnapshot, State as Health};
use crate::model::Inventory;

pub async fn list(State(s): State<AdminState>) -> Json<Vec<DrillRecord>> {
    Json(
        s.state
            .as_ref()
            .map(|st| st.contents().drills)
            .unwrap_or_default(),
    )
}

pub async fn record(
    State(s): State<AdminState>,
    headers: HeaderMap,
    body: Result<Json<DrillRecord>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err((code, msg)) = s.mutations.authorize(&headers) {
        return error(code, msg);
    }
    let Json(drill) = match body {
        Ok(b) => b,
        Err(e) => return super::body_rejected(&e),
    };
    let switch = drill
        .gslb_switch_seconds()
        .map(std::time::Duration::from_secs_f64);
    s.metrics.record_drill(drill.passed, switch);
    tracing::info!(target: "gslb::audit", action = "drill.recorded", cluster = %drill.cluster, passed = drill.passed, switch_seconds = drill.gslb_switch_seconds().unwrap_or(-1.0), "drill recorded");
    let Some(store) = s.state.clone() else {
        return (
            StatusCode::ACCEPTED,
            "no state_file is configured: the drill is counted but not kept\n",
        )
            .into_response();
    };
    match tokio::task::spawn_blocking(move || store.add_drill(drill)).await {
        Ok(Ok(())) => StatusCode::CREATED.into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub struct PlanQuery {
    pub cluster: String,
}

/// What one app answers now and would answer without the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillPlanEntry {
    pub app: String,
    pub now: Vec<String>,
    pub if_failed: Vec<String>,
    /// The cluster is in the app's answer now.
    pub affected: bool,
    /// Without the cluster, the app has no healthy cluster (it would fail open or go empty).
    pub left_with_nothing: bool,
}

pub async fn plan(State(s): State<AdminState>, Query(q): Query<PlanQuery>) -> Response {
    let health = s.health.borrow().clone();
    let inventory = &health.inventory;
    let Some(cluster) = inventory.clusters.iter().position(|c| c.name == q.cluster) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown cluster `{}`", q.cluster),
        );
    };
    Json(drill_plan(inventory, &health, cluster)).into_response()
}

/// For every app of `cluster`: its answer now, and with the cluster failed. Pure.
pub fn drill_plan(inv: &Inventory, health: &HealthSnapshot, cluster: usize) -> Vec<DrillPlanEntry> {
    let mut failed = health.clone();
    for (t, target) in inv.targets.iter().enumerate() {
        if target.cluster == cluster {
            failed.targets[t].state = Health::Down;
        }
    }
    (0..inv.apps.len())
        .filter(|&a| inv.apps[a].clusters.contains(&cluster))
        .map(|a| {
            let now = plan_app(inv, a, health);
            let after = plan_app(inv, a, &failed);
            let strings = |p: &crate::answer::AppPlan| {
                p.addresses()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            };
            DrillPlanEntry {
                app: inv.apps[a].display_name(),
                affected: now.clusters.contains(&cluster),
                left_with_nothing: !inv
                    .targets_of(a)
                    .any(|t| failed.targets[t].state.is_usable()),
                now: strings(&now),
                if_failed: strings(&after),
            }
        })
        .collect()
}
