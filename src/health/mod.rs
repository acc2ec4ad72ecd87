//! Health: the one place that decides whether a target is up, and the one place that logs
//! and counts a transition.
//!
//! Probe reports arrive on a channel; [`HealthBook`] (pure) feeds each one to the
//! endpoint's rise/fall [`Machine`] and derives the target's state; [`run`] logs and counts
//! what changed and publishes an immutable [`HealthSnapshot`] on a `watch` channel, which
//! the answer planner and the admin API read.

mod machine;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub use machine::{Machine, State, target_state};

use crate::metrics::Metrics;
use crate::model::Inventory;

/// How one probe ended. A failed probe is data, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Timeout,
}

impl Outcome {
    /// The `result` label of `gslb_probes_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
        }
    }
}

/// The result of one probe of one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    /// Index into [`Inventory::endpoints`].
    pub endpoint: usize,
    pub outcome: Outcome,
    /// What was seen, e.g. `HTTP 503` or `connection refused`.
    pub detail: String,
    pub latency: Duration,
    pub at: SystemTime,
}

/// Health of one endpoint (one VIP of one target).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointHealth {
    pub state: State,
    pub since: SystemTime,
    pub last: Option<ProbeReport>,
}

/// Health of one (app, cluster) target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetHealth {
    pub state: State,
    pub since: SystemTime,
}

/// Everything health knows at one moment; immutable once published.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    /// Bumped on every state change of an endpoint or target; unchanged by a probe result
    /// that changed no state, so readers can skip work.
    pub version: u64,
    pub targets: Vec<TargetHealth>,
    pub endpoints: Vec<EndpointHealth>,
}

impl HealthSnapshot {
    /// Every target and endpoint `Unknown` since `now`: the start state.
    pub fn initial(inventory: &Inventory, now: SystemTime) -> Self {
        Self {
            version: 0,
            targets: vec![
                TargetHealth {
                    state: State::Unknown,
                    since: now
                };
                inventory.targets.len()
            ],
            endpoints: vec![
                EndpointHealth {
                    state: State::Unknown,
                    since: now,
                    last: None
                };
                inventory.endpoints.len()
            ],
        }
    }

    /// Whether every endpoint has had at least one probe result.
    pub fn all_probed(&self) -> bool {
        self.endpoints.iter().all(|e| e.last.is_some())
    }
}

/// A target that changed state, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub target: usize,
    pub from: State,
    pub to: State,
}

/// The rise/fall machines of every endpoint and the snapshot they produce.
#[derive(Debug, Clone)]
pub struct HealthBook {
    inventory: Arc<Inventory>,
    machines: Vec<Machine>,
    snapshot: HealthSnapshot,
}

impl HealthBook {
    pub fn new(inventory: Arc<Inventory>, now: SystemTime) -> Self {
        let snapshot = HealthSnapshot::initial(&inventory, now);
        Self {
            machines: vec![Machine::new(); inventory.endpoints.len()],
            inventory,
            snapshot,
        }
    }

    pub fn snapshot(&self) -> &HealthSnapshot {
        &self.snapshot
    }

    /// Applies one probe report; returns the target transition it caused, if any.
    pub fn observe(&mut self, report: ProbeReport) -> Option<Transition> {
        let idx = report.endpoint;
        let endpoint = *self.inventory.endpoints.get(idx)?;
        let probe = &self.inventory.apps[self.inventory.targets[endpoint.target].app].probe;
        let at = report.at;
        let changed =
            self.machines[idx].observe(report.outcome == Outcome::Success, probe.rise, probe.fall);
        let e = &mut self.snapshot.endpoints[idx];
        e.last = Some(report);
        let to = changed?;
        e.state = to;
        e.since = at;
        self.snapshot.version += 1;

        let target = endpoint.target;
        let derived = target_state(
            self.inventory
                .endpoints
                .iter()
                .zip(&self.snapshot.endpoints)
                .filter(|(ep, _)| ep.target == target)
                .map(|(_, h)| h.state),
        );
        let t = &mut self.snapshot.targets[target];
        if derived == t.state {
            return None;
        }
        let from = t.state;
        t.state = derived;
        t.since = at;
        Some(Transition {
            target,
            from,
            to: derived,
        })
    }
}

/// Applies probe reports until the channel closes, publishing a snapshot after each batch.
///
/// Reports that arrive together are applied together and published once, so a burst of
/// results costs one snapshot, and the answer planner rebuilds at most once per burst.
pub async fn run(
    mut book: HealthBook,
    mut reports: mpsc::Receiver<ProbeReport>,
    publish: watch::Sender<Arc<HealthSnapshot>>,
    metrics: Arc<Metrics>,
) {
    let inventory = book.inventory.clone();
    let mut batch = Vec::with_capacity(64);
    while reports.recv_many(&mut batch, 256).await > 0 {
        for report in batch.drain(..) {
            let endpoint = inventory.endpoints[report.endpoint];
            let (app, cluster) = inventory.target_labels(endpoint.target);
            let kind = inventory.apps[inventory.targets[endpoint.target].app]
                .probe
                .kind
                .label();
            metrics.observe_probe(&app, cluster, kind, report.outcome, report.latency);
            if report.outcome != Outcome::Success {
                tracing::debug!(app, cluster, vip = %endpoint.vip, result = report.outcome.as_str(), detail = %report.detail, "probe failed");
            }
            let detail = report.detail.clone();
            if let Some(t) = book.observe(report) {
                tracing::info!(
                    app,
                    cluster,
                    from = t.from.as_str(),
                    to = t.to.as_str(),
                    vip = %endpoint.vip,
                    last_probe = %detail,
                    "target health changed"
                );
                metrics.record_transition(&app, cluster, t.to);
            }
        }
        // Every batch carries new probe results for the status API, so always publish.
        publish.send_replace(Arc::new(book.snapshot().clone()));
    }
}

#[cfg(test)]
mod tests;
