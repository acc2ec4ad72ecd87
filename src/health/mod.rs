//! Health: the one place that decides whether a target is up, and the one place that logs
//! and counts a transition.
//!
//! Probe reports and operator override commands arrive on one channel, so they are
//! applied in order. [`HealthBook`] (pure) feeds each report to the endpoint's rise/fall
//! [`Machine`], applies [overrides](overrides), and derives each target's probed and
//! effective state. [`run`] is the async shell around it: it logs and counts what changed,
//! persists the health state and overrides through [`Persist`] (an override is
//! acknowledged only once saved), lifts expired overrides, and publishes an immutable
//! [`HealthSnapshot`] on a `watch` channel for the answer planner and the admin API.

mod book;
mod machine;
pub mod overrides;
pub mod quorum;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

pub use book::{Cause, HealthBook, Transition};
pub use machine::{Machine, State, target_state};
pub use overrides::{Override, OverrideError, OverrideKind};

use crate::metrics::{Metrics, ProbeSeries};
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
    /// Index into [`crate::metrics::PROBE_RESULTS`].
    pub fn index(self) -> usize {
        match self {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::Timeout => 2,
        }
    }

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
    /// The [`Inventory::generation`] the endpoint index refers to.
    pub generation: u64,
    /// Index into [`Inventory::endpoints`].
    pub endpoint: usize,
    pub outcome: Outcome,
    /// What was seen, e.g. `HTTP 503` or `connection refused`; shared, so that
    /// publishing a snapshot does not copy every endpoint's text.
    pub detail: Arc<str>,
    pub latency: Duration,
    pub at: SystemTime,
}

/// Health of one endpoint (one VIP of one target).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointHealth {
    /// The state answers use: `own`, or with `[quorum]` the decision of a quorum of the
    /// fresh views.
    pub state: State,
    /// What this instance's own probes say, after its rise/fall: its view of the endpoint.
    pub own: State,
    /// With `[quorum]` and at least one fresh peer view: the votes behind `state`.
    pub votes: Option<quorum::Votes>,
    pub since: SystemTime,
    pub last: Option<ProbeReport>,
    /// Consecutive results that disagree with `state`, towards `rise` or `fall`.
    pub streak: u32,
}

/// Health of one (app, cluster) target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetHealth {
    /// The state answers use: `probed`, unless an override holds it down.
    pub state: State,
    pub since: SystemTime,
    /// What the probes alone say (with `[quorum]`, as decided by a quorum of the fresh
    /// views for each endpoint).
    pub probed: State,
    /// What this instance's own probes alone say (its endpoints' `own` states); equal to
    /// `probed` without `[quorum]`.
    pub own: State,
    /// The override holding the target down, if any.
    pub overridden: Option<Override>,
}

/// Everything health knows at one moment; immutable once published.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    /// What the indexes below refer to.
    pub inventory: Arc<Inventory>,
    /// Bumped on every change of an endpoint or target state or of the overrides;
    /// unchanged by a probe result that changed no state, so readers can skip work.
    /// What it covers is saved to the state file.
    pub version: u64,
    /// Bumped when the streak of an endpoint of an app with an adaptive TTL changes (a
    /// run of results that disagree with its state starts, grows or ends), which moves
    /// that app's TTL but no state: the planner rebuilds on it, nothing is saved.
    pub steadiness: u64,
    pub targets: Vec<TargetHealth>,
    pub endpoints: Vec<EndpointHealth>,
    pub overrides: Vec<Override>,
    /// With `[quorum]`: the peers and their last views.
    pub quorum: Option<quorum::Peers>,
}

impl HealthSnapshot {
    /// Every target and endpoint `Unknown` since `now`, no override: the start state.
    pub fn initial(inventory: &Arc<Inventory>, now: SystemTime) -> Self {
        Self {
            inventory: inventory.clone(),
            version: 0,
            steadiness: 0,
            targets: vec![
                TargetHealth {
                    state: State::Unknown,
                    since: now,
                    probed: State::Unknown,
                    own: State::Unknown,
                    overridden: None,
                };
                inventory.targets.len()
            ],
            endpoints: vec![
                EndpointHealth {
                    state: State::Unknown,
                    own: State::Unknown,
                    votes: None,
                    since: now,
                    last: None,
                    streak: 0,
                };
                inventory.endpoints.len()
            ],
            overrides: Vec::new(),
            quorum: None,
        }
    }

    /// Whether every endpoint has had at least one probe result.
    pub fn all_probed(&self) -> bool {
        self.endpoints.iter().all(|e| e.last.is_some())
    }
}

/// Saves health state somewhere durable (the state file). Called off the async runtime.
pub trait Persist: Send + Sync + 'static {
    /// Saves the snapshot's endpoint states and overrides.
    ///
    /// # Errors
    ///
    /// Any I/O failure, as text for logs and API replies.
    fn save(&self, inventory: &Inventory, snapshot: &HealthSnapshot) -> Result<(), String>;
}

/// What the health task takes in.
#[derive(Debug)]
pub enum HealthInput {
    Probe(ProbeReport),
    /// A new inventory (discovery or reload); `done` fires once it is applied.
    Reconfigure {
        inventory: Arc<Inventory>,
        done: oneshot::Sender<()>,
    },
    SetOverride {
        ov: Override,
        force: bool,
        reply: oneshot::Sender<Result<Override, OverrideError>>,
    },
    ClearOverride {
        cluster: String,
        app: Option<String>,
        reply: oneshot::Sender<Result<Vec<Override>, OverrideError>>,
    },
    /// The outcome of a read of a peer's view (`[quorum]`), `peer` naming where it came
    /// from, received `at`.
    PeerView {
        peer: quorum::PeerRef,
        view: Result<quorum::View, String>,
        at: SystemTime,
    },
    /// A peer's view object on the hub was deleted (its instance stopped and removed
    /// it): the peer is forgotten. `url` names it as in [`quorum::PeerRef`].
    PeerGone {
        url: Arc<str>,
    },
}

/// Longest a probe result that changed no state waits before it is published.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Applies inputs until the channel closes, publishing a snapshot after each batch.
///
/// Inputs that arrive together are applied together and published once, so a burst of
/// results costs one snapshot, and the answer planner rebuilds at most once per burst.
pub async fn run(
    mut book: HealthBook,
    mut inputs: mpsc::Receiver<HealthInput>,
    publish: watch::Sender<Arc<HealthSnapshot>>,
    metrics: Arc<Metrics>,
    persist: Option<Arc<dyn Persist>>,
) {
    let mut inventory = book.inventory().clone();
    let mut batch = Vec::with_capacity(64);
    let mut saved_version = book.snapshot().version;
    let mut active = active_overrides(&inventory, book.snapshot());
    for (app, cluster, kind) in &active {
        metrics.set_override_active(app, cluster, kind, true);
    }
    let mut series = probe_series(&inventory, &metrics);
    let mut alone = None;
    set_quorum_views(&metrics, book.snapshot(), &mut alone);
    let mut unpublished = false;
    // The publish timer is kept and moved only when a snapshot is published, rather than
    // made anew for every batch: at thousands of probes a second, batches are many.
    // Its deadline is when the last snapshot was published plus PUBLISH_EVERY.
    let publish_timer = tokio::time::sleep_until(tokio::time::Instant::now() + PUBLISH_EVERY);
    tokio::pin!(publish_timer);
    loop {
        let expiry = book.next_expiry().map(|t| {
            t.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        let stale = book.next_stale().map(|t| {
            t.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                + Duration::from_millis(1)
        });
        let mut expired_any = false;
        // The stale and expiry timers exist only while there is something to wait for:
        // a branch's future is made even when it is disabled, but an async block makes
        // its timer only once polled.
        tokio::select! {
            n = inputs.recv_many(&mut batch, 256) => if n == 0 { return },
            // A peer's view turns stale: decide again without it (a little after the
            // bound, so that the view is past it by then).
            () = async { tokio::time::sleep(stale.unwrap_or(Duration::MAX)).await }, if stale.is_some() => {
                let transitions = book.refresh_quorum(SystemTime::now());
                log_transitions(&inventory, &metrics, &transitions, "", book.snapshot());
                set_quorum_views(&metrics, book.snapshot(), &mut alone);
                publish_now(&publish, &book, publish_timer.as_mut());
                unpublished = false;
                continue;
            }
            () = async { tokio::time::sleep(expiry.unwrap_or(Duration::MAX)).await }, if expiry.is_some() => {
                let (expired, transitions) = book.expire(SystemTime::now());
                expired_any = !expired.is_empty();
                for o in &expired {
                    tracing::info!(target: "gslb::audit", action = "override.expired", cluster = %o.cluster, app = o.app.as_deref().unwrap_or("*"), kind = o.kind.as_str(), reason = %o.reason, set_by = %o.set_by, "override expired");
                }
                log_transitions(&inventory, &metrics, &transitions, "", book.snapshot());
            }
            () = &mut publish_timer, if unpublished => {
                publish_now(&publish, &book, publish_timer.as_mut());
                unpublished = false;
                continue;
            }
        }
        let mut replies: Vec<Box<dyn FnOnce(Option<String>) + Send>> = Vec::new();
        let mut applied = Vec::new();
        let version_before = book.snapshot().version;
        let steadiness_before = book.snapshot().steadiness;
        let overrides_before = book.snapshot().overrides.clone();
        for input in batch.drain(..) {
            match input {
                HealthInput::Probe(report) => {
                    apply_report(&mut book, &inventory, &metrics, &series, report)
                }
                HealthInput::Reconfigure {
                    inventory: next,
                    done,
                } => {
                    let transitions = book.reconfigure(next.clone(), SystemTime::now());
                    inventory = next;
                    series = probe_series(&inventory, &metrics);
                    for (t, h) in book.snapshot().targets.iter().enumerate() {
                        let (app, cluster) = inventory.target_labels(t);
                        metrics.init_target(&app, cluster, h.state.is_usable());
                    }
                    log_transitions(
                        &inventory,
                        &metrics,
                        &transitions,
                        "discovery",
                        book.snapshot(),
                    );
                    applied.push(done);
                }
                HealthInput::SetOverride { ov, force, reply } => {
                    match book.set_override(ov.clone(), force, SystemTime::now()) {
                        Ok(transitions) => {
                            log_transitions(
                                &inventory,
                                &metrics,
                                &transitions,
                                &ov.reason,
                                book.snapshot(),
                            );
                            replies.push(Box::new(move |err| {
                                let _ = reply.send(match err {
                                    None => Ok(ov),
                                    Some(e) => Err(OverrideError::NotPersisted(e)),
                                });
                            }));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                HealthInput::PeerView { peer, view, at } => {
                    let transitions = book.peer_view(&peer, view, at, SystemTime::now());
                    log_transitions(&inventory, &metrics, &transitions, "", book.snapshot());
                }
                HealthInput::PeerGone { url } => {
                    let transitions = book.peer_gone(&url, SystemTime::now());
                    log_transitions(&inventory, &metrics, &transitions, "", book.snapshot());
                }
                HealthInput::ClearOverride {
                    cluster,
                    app,
                    reply,
                } => match book.clear_override(&cluster, app.as_deref(), SystemTime::now()) {
                    Ok((removed, transitions)) => {
                        log_transitions(
                            &inventory,
                            &metrics,
                            &transitions,
                            "override cleared",
                            book.snapshot(),
                        );
                        replies.push(Box::new(move |err| {
                            let _ = reply.send(match err {
                                None => Ok(removed),
                                Some(e) => Err(OverrideError::NotPersisted(e)),
                            });
                        }));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
            }
        }
        // Persist state changes before acknowledging any override: acknowledged means saved.
        let mut failure = None;
        if book.snapshot().version != saved_version {
            if let Some(p) = &persist {
                let (p, inv, snap) = (p.clone(), inventory.clone(), book.snapshot().clone());
                let result = tokio::task::spawn_blocking(move || p.save(&inv, &snap))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                match result {
                    Ok(()) => saved_version = book.snapshot().version,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot save the state file");
                        failure = Some(e);
                    }
                }
            }
        }
        if failure.is_some() && !replies.is_empty() {
            // Not saved: undo the override changes of this batch (probe results stay).
            book.replace_overrides(overrides_before.clone(), SystemTime::now());
        }
        let had_replies = !replies.is_empty();
        for reply in replies {
            reply(failure.clone());
        }
        // Which targets overrides hold down changes only with the overrides or the
        // inventory, never with a probe result: skip the walk over every target otherwise.
        if expired_any || !applied.is_empty() || book.snapshot().overrides != overrides_before {
            let now_active = active_overrides(&inventory, book.snapshot());
            for (app, cluster, kind) in active.difference(&now_active) {
                metrics.set_override_active(app, cluster, kind, false);
            }
            for (app, cluster, kind) in now_active.difference(&active) {
                metrics.set_override_active(app, cluster, kind, true);
            }
            active = now_active;
        }
        // A state change, a change of steadiness that moves a TTL, or a caller waiting on
        // this batch, is published at once. Probe results that changed neither only
        // refresh the status API's details: they are published at most every
        // PUBLISH_EVERY, so that thousands of endpoints do not copy the snapshot for
        // every batch.
        set_quorum_views(&metrics, book.snapshot(), &mut alone);
        let urgent = book.snapshot().version != version_before
            || book.snapshot().steadiness != steadiness_before
            || !applied.is_empty()
            || had_replies;
        if urgent || publish_timer.deadline() <= tokio::time::Instant::now() {
            publish_now(&publish, &book, publish_timer.as_mut());
            unpublished = false;
        } else {
            unpublished = true;
        }
        for done in applied {
            let _ = done.send(());
        }
    }
}

/// The probe series of every target of `inventory`, by target index.
fn probe_series(inventory: &Inventory, metrics: &Metrics) -> Vec<ProbeSeries> {
    (0..inventory.targets.len())
        .map(|t| {
            let (app, cluster) = inventory.target_labels(t);
            let kind = inventory.apps[inventory.targets[t].app].probe.kind.label();
            metrics.probe_series(&app, cluster, kind)
        })
        .collect()
}

fn apply_report(
    book: &mut HealthBook,
    inventory: &Inventory,
    metrics: &Metrics,
    series: &[ProbeSeries],
    report: ProbeReport,
) {
    if report.generation != inventory.generation {
        return; // a late result from probes of a replaced inventory
    }
    let endpoint = inventory.endpoints[report.endpoint];
    if let Some(s) = series.get(endpoint.target) {
        s.observe(report.outcome.index(), report.latency);
    }
    if report.outcome != Outcome::Success {
        let (app, cluster) = inventory.target_labels(endpoint.target);
        tracing::debug!(app, cluster, vip = %endpoint.vip, result = report.outcome.as_str(), detail = %report.detail, "probe failed");
    }
    let detail = report.detail.clone();
    if let Some(t) = book.observe(report) {
        log_transitions(
            inventory,
            metrics,
            &[t],
            &format!("{} ({})", detail, endpoint.vip),
            book.snapshot(),
        );
    }
}

/// Publishes the book's snapshot now, and moves the publish timer to PUBLISH_EVERY later.
fn publish_now(
    publish: &watch::Sender<Arc<HealthSnapshot>>,
    book: &HealthBook,
    timer: std::pin::Pin<&mut tokio::time::Sleep>,
) {
    publish.send_replace(Arc::new(book.snapshot().clone()));
    timer.reset(tokio::time::Instant::now() + PUBLISH_EVERY);
}

/// One log line and one count per target transition.
fn log_transitions(
    inventory: &Inventory,
    metrics: &Metrics,
    transitions: &[Transition],
    detail: &str,
    snapshot: &HealthSnapshot,
) {
    for t in transitions {
        let (app, cluster) = inventory.target_labels(t.target);
        let votes: Vec<String> = inventory
            .endpoints_of(t.target)
            .filter_map(|e| {
                let h = snapshot.endpoints.get(e)?;
                let v = h.votes?;
                Some(format!(
                    "{}: {} of {} fresh views say down, {} needed, own view {}",
                    inventory.endpoints[e].vip,
                    v.down,
                    v.views,
                    v.needed,
                    h.own.as_str()
                ))
            })
            .collect();
        let votes = (!votes.is_empty()).then(|| votes.join("; "));
        let detail = match (&votes, detail.is_empty()) {
            (Some(v), true) if t.cause == Cause::Quorum => v.clone(),
            (Some(v), false) if t.cause == Cause::Quorum => format!("{detail}; {v}"),
            (None, true) if t.cause == Cause::Quorum => {
                "no fresh peer view: this instance's own view decides".to_owned()
            }
            _ => detail.to_owned(),
        };
        tracing::info!(
            app,
            cluster,
            from = t.from.as_str(),
            to = t.to.as_str(),
            cause = t.cause.as_str(),
            detail,
            "target health changed"
        );
        metrics.record_transition(&app, cluster, t.to.as_str(), t.to.is_usable());
    }
}

/// `gslb_quorum_views{fresh}`: the views counted at the last decision, with `[quorum]`.
/// Logs when the instance starts or stops deciding alone (no fresh peer view).
fn set_quorum_views(metrics: &Metrics, snapshot: &HealthSnapshot, alone: &mut Option<bool>) {
    if let Some(peers) = &snapshot.quorum {
        let (fresh, stale) = peers.counts();
        metrics.set_quorum_views(fresh, stale);
        let now_alone = peers.fallback();
        match (*alone, now_alone) {
            (Some(false), true) => tracing::warn!(
                stale,
                "no fresh peer view: deciding from this instance's own view alone"
            ),
            (Some(true), false) | (None, false) => {
                tracing::info!(fresh, stale, "deciding by quorum of the fresh views")
            }
            _ => {}
        }
        *alone = Some(now_alone);
    }
}

/// `(app, cluster, kind)` of every target an override holds down.
fn active_overrides(
    inventory: &Inventory,
    snapshot: &HealthSnapshot,
) -> HashSet<(String, String, &'static str)> {
    snapshot
        .targets
        .iter()
        .enumerate()
        .filter_map(|(t, h)| {
            let o = h.overridden.as_ref()?;
            let (app, cluster) = inventory.target_labels(t);
            Some((app, cluster.to_owned(), o.kind.as_str()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
