//! The hub transport of multi-vantage quorum (`[quorum] hub`): views travel through the
//! hub's Kubernetes API, which every instance already reaches for discovery.
//!
//! Each instance keeps one ConfigMap, `gslb-view-<instance>` in `[quorum] namespace`,
//! labelled [`LABELS`], with its [`View`] as JSON under `data."view.json"`; it writes it
//! with server-side apply (one request that creates or replaces, and no conflict to
//! resolve: the instance is the object's only writer), at once when its own states
//! change and otherwise every third of `fresh_within`, so that a live instance's view
//! never turns stale for its peers. One write is in flight at a time, bounded by half of
//! `fresh_within`; a failed one is retried at the next renewal (or change).
//!
//! Each instance watches every view object by label (kube-runtime's watcher: list, then
//! watch, relisting after a broken or expired watch) and hands each new version of
//! another instance's object to health as a [`HealthInput::PeerView`], received now by
//! this instance's clock. Freshness is judged there, as for the admin transport: an
//! object that is no longer renewed (its instance stopped, or the hub is unreachable)
//! turns stale by itself. An object's first sight after a (re)list is not taken for a
//! renewal, since it may be old: it counts from its next change, at most a renewal later.
//!
//! An instance that stops deletes its own object (bounded by the write timeout), and its
//! peers forget it as soon as the deletion reaches them: instances named after their pods
//! leave nothing behind at each rollout. One that crashes leaves its object to turn
//! stale, to be deleted by hand if the instance is gone for good.
//!
//! Why a ConfigMap: its `data` is the natural home of a JSON document, it holds up to
//! 1 MiB (a Lease would carry the view in an annotation, 256 KiB for all of them, and
//! would suggest leader election to tools that read Leases), it needs no CRD installed on
//! the hub, and `kubectl get configmap -l app.kubernetes.io/component=quorum-view` shows
//! every view. A view larger than [`MAX_VIEW_BYTES`] (about 10,000 VIPs) is not written:
//! the error says so in the log, the status and `gslb_quorum_view_writes_total
//! {result="too_large"}`, and the peers see this instance's view stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Wiring;
use crate::config::QuorumHub;
use crate::health::quorum::{PeerRef, Via, View};
use crate::health::{HealthInput, HealthSnapshot};
use crate::metrics::Metrics;

/// The labels of every view object, and the watch's selector.
pub const LABELS: [(&str, &str); 2] = [
    ("app.kubernetes.io/name", "gslb"),
    ("app.kubernetes.io/component", "quorum-view"),
];
/// The `data` key of the view.
pub const VIEW_KEY: &str = "view.json";
/// The field manager of server-side apply.
const FIELD_MANAGER: &str = "gslb";
/// Largest view written: a ConfigMap's data may not exceed 1 MiB; the rest is room for
/// the key and the object's metadata.
pub const MAX_VIEW_BYTES: usize = 1024 * 1024 - 4096;
/// Wait before trying again to build a client from the source's kubeconfig.
const CLIENT_RETRY: Duration = Duration::from_secs(30);

/// How the hub transport is doing, for the status API: written by its tasks, read by
/// admin. A std mutex: never held across an await.
#[derive(Debug, Default)]
pub struct HubStatus(Mutex<HubState>);

/// The hub part of the quorum status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HubState {
    /// The `[[source]]` whose hub carries the views.
    pub source: String,
    pub namespace: String,
    /// This instance's view object.
    pub object: String,
    /// When this instance's view was last written (our clock).
    #[serde(with = "crate::rfc3339::option")]
    pub last_write: Option<SystemTime>,
    /// Why the last write failed, if it did; cleared by the next success.
    pub write_error: Option<String>,
    /// The watch of the view objects is established (listed, and no error since).
    pub watching: bool,
    /// Why the watch broke, while it is broken.
    pub watch_error: Option<String>,
}

impl HubStatus {
    pub fn get(&self) -> HubState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The label selector of the view objects.
pub fn selector() -> String {
    LABELS
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts the writer and the watch of `hub` on `tasks`.
///
/// # Errors
///
/// When the instance name makes no Kubernetes object name.
pub fn spawn(
    hub: &QuorumHub,
    fresh_within: Duration,
    wiring: Wiring,
    tasks: &mut JoinSet<()>,
    cancel: CancellationToken,
) -> anyhow::Result<Arc<HubStatus>> {
    let object = crate::config::view_object(&wiring.instance).map_err(anyhow::Error::msg)?;
    let status = Arc::new(HubStatus(Mutex::new(HubState {
        source: hub.source.name.clone(),
        namespace: hub.namespace.clone(),
        object: object.clone(),
        ..HubState::default()
    })));
    wiring.metrics.init_view_writes();
    let timing = Timing {
        renew: (fresh_within / 3).max(Duration::from_millis(50)),
        timeout: (fresh_within / 2).max(Duration::from_millis(50)),
    };
    tasks.spawn(run(
        hub.clone(),
        object,
        timing,
        wiring,
        status.clone(),
        cancel,
    ));
    tracing::info!(source = %hub.source.name, namespace = %hub.namespace, renew = ?timing.renew, "quorum views travel through the hub");
    Ok(status)
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Longest time between two writes of our view.
    renew: Duration,
    /// Bound of one write.
    timeout: Duration,
}

/// Builds the hub client (retrying while the kubeconfig does not do), then writes and
/// watches until cancelled.
async fn run(
    hub: QuorumHub,
    object: String,
    timing: Timing,
    wiring: Wiring,
    status: Arc<HubStatus>,
    cancel: CancellationToken,
) {
    let mut logged = false;
    let (client, base) = loop {
        let built = async {
            let config =
                crate::discovery::sources::kube_config(&hub.source, hub.source.context.as_deref())
                    .await?;
            let base = config.cluster_url.to_string();
            anyhow::Ok((kube::Client::try_from(config)?, base))
        }
        .await;
        match built {
            Ok(c) => break c,
            Err(e) => {
                let e = crate::redact::error_text(&e);
                if !logged {
                    tracing::error!(source = %hub.source.name, error = %e, "cannot build a client for the quorum hub; retrying");
                    logged = true;
                }
                status.lock().watch_error = Some(e);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(CLIENT_RETRY) => {}
                }
            }
        }
    };
    let api: Api<ConfigMap> = Api::namespaced(client, &hub.namespace);
    let base = format!(
        "{}/api/v1/namespaces/{}/configmaps",
        base.trim_end_matches('/'),
        hub.namespace
    );
    let Wiring {
        instance,
        health,
        snapshots,
        metrics,
        ..
    } = wiring;
    tokio::join!(
        publish(
            api.clone(),
            object.clone(),
            instance,
            snapshots,
            timing,
            metrics,
            status.clone(),
            cancel.clone()
        ),
        watch_views(api, object, base, health, timing.renew, status, cancel),
    );
}

/// Why a write did not happen.
#[derive(Debug)]
enum WriteError {
    TooLarge(usize),
    Failed(String),
}

/// Writes our view at once, then again on every change of our own states and at least
/// every `renew`.
#[allow(clippy::too_many_arguments)]
async fn publish(
    api: Api<ConfigMap>,
    object: String,
    instance: Arc<str>,
    mut snapshots: watch::Receiver<Arc<HealthSnapshot>>,
    timing: Timing,
    metrics: Arc<Metrics>,
    status: Arc<HubStatus>,
    cancel: CancellationToken,
) {
    let namespace = status.get().namespace;
    let mut failing: Option<String> = None;
    // The resourceVersion of our last write: the object is deleted at the stop only if
    // it is still that version (not a successor's write under the same name).
    let mut written: Option<String> = None;
    loop {
        let view = View::of(&instance, &snapshots.borrow_and_update(), SystemTime::now());
        // Not cut short by a stop: a write dropped in flight may still be applied after
        // the deletion below and bring the object back. It is bounded by its timeout.
        let outcome = write(&api, &object, &namespace, &view, timing.timeout).await;
        match outcome {
            Ok(rv) => {
                written = Some(rv);
                metrics.count_view_write("ok");
                if failing.take().is_some() {
                    tracing::info!(%object, "writing this instance's quorum view on the hub again");
                }
                let mut s = status.lock();
                s.last_write = Some(SystemTime::now());
                s.write_error = None;
            }
            Err(e) => {
                let (result, text) = match e {
                    WriteError::TooLarge(n) => (
                        "too_large",
                        format!(
                            "the view is {n} bytes, more than a ConfigMap holds ({MAX_VIEW_BYTES}): not written, peers see this instance's view stale"
                        ),
                    ),
                    WriteError::Failed(e) => ("error", e),
                };
                metrics.count_view_write(result);
                // Once per kind of failure, not at every renewal.
                if failing.as_deref().map(kind) != Some(kind(&text)) {
                    if result == "too_large" {
                        tracing::error!(%object, error = %text, "cannot write this instance's quorum view on the hub");
                    } else {
                        tracing::warn!(%object, error = %text, "cannot write this instance's quorum view on the hub; retrying at each renewal");
                    }
                }
                status.lock().write_error = Some(text.clone());
                failing = Some(text);
            }
        }
        // Until the next renewal, or a change of our own states.
        let next = tokio::time::Instant::now() + timing.renew;
        let cancelled = loop {
            tokio::select! {
                _ = cancel.cancelled() => break true,
                _ = tokio::time::sleep_until(next) => break false,
                r = snapshots.changed() => {
                    if r.is_err() {
                        break true; // health has stopped
                    }
                    let now = View::of(&instance, &snapshots.borrow_and_update(), SystemTime::now());
                    if !now.same_states(&view) {
                        break false;
                    }
                }
            }
        };
        if cancelled {
            break;
        }
    }
    if let Some(rv) = written {
        retire(&api, &object, rv, timing.timeout).await;
    }
}

/// Deletes our view object as this instance stops, so that its peers forget it at once
/// and instances named after their pods leave nothing behind at every rollout: only if
/// it is still at `rv`, our last write. Bounded by `timeout`: a hub that does not answer
/// leaves the object to turn stale, as after a crash.
async fn retire(api: &Api<ConfigMap>, object: &str, rv: String, timeout: Duration) {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: Some(rv),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    match tokio::time::timeout(timeout, api.delete(object, &params)).await {
        Ok(Ok(_)) => tracing::info!(%object, "removed this instance's quorum view from the hub"),
        // Gone already, or written since by another instance of the same name (a new pod
        // that started before this one stopped): not ours to delete.
        Ok(Err(kube::Error::Api(s))) if s.code == 404 || s.code == 409 => {
            tracing::info!(%object, "this instance's quorum view on the hub is gone or written by a successor: left as it is")
        }
        Ok(Err(e)) => {
            tracing::warn!(%object, error = %api_error(&e), "cannot remove this instance's quorum view from the hub; it turns stale")
        }
        Err(_) => tracing::warn!(
            %object,
            "no answer from the hub within {}: this instance's quorum view is left to turn stale",
            humantime::format_duration(timeout)
        ),
    }
}

/// An error's kind for logging once: its text up to the first digit (sizes and
/// addresses aside).
fn kind(text: &str) -> &str {
    text.split(|c: char| c.is_ascii_digit())
        .next()
        .unwrap_or(text)
}

/// The view object as applied: the labels and the view's JSON under [`VIEW_KEY`].
fn body(object: &str, namespace: &str, view: &View) -> Result<serde_json::Value, WriteError> {
    let text = serde_json::to_string(view).map_err(|e| WriteError::Failed(e.to_string()))?;
    if text.len() > MAX_VIEW_BYTES {
        return Err(WriteError::TooLarge(text.len()));
    }
    let labels: serde_json::Map<String, serde_json::Value> = LABELS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    Ok(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": object, "namespace": namespace, "labels": labels},
        "data": {VIEW_KEY: text},
    }))
}

/// One server-side apply of the view object: the resourceVersion it was stored at.
async fn write(
    api: &Api<ConfigMap>,
    object: &str,
    namespace: &str,
    view: &View,
    timeout: Duration,
) -> Result<String, WriteError> {
    let body = body(object, namespace, view)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match tokio::time::timeout(timeout, api.patch(object, &params, &Patch::Apply(&body))).await {
        Ok(Ok(stored)) => Ok(stored.metadata.resource_version.unwrap_or_default()),
        Ok(Err(e)) => Err(WriteError::Failed(api_error(&e))),
        Err(_) => Err(WriteError::Failed(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        ))),
    }
}

/// A kube error in a line: the API's own message for an error status.
fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({}): {}", s.reason, s.code, s.message),
        other => crate::redact::withheld(other).unwrap_or_else(|| other.to_string()),
    }
}

/// Retries a broken watch every `renew`: a hub that returns is noticed within a
/// renewal, and views are stale by then anyway.
struct Retry(Duration);

impl Iterator for Retry {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(self.0)
    }
}

impl kube::runtime::utils::Backoff for Retry {
    fn reset(&mut self) {}
}

/// Watches every view object and hands the other instances' to health.
async fn watch_views(
    api: Api<ConfigMap>,
    own: String,
    base: String,
    health: mpsc::Sender<HealthInput>,
    retry: Duration,
    status: Arc<HubStatus>,
    cancel: CancellationToken,
) {
    let config = watcher::Config::default().labels(&selector());
    let mut events = watcher(api, config).backoff(Retry(retry)).boxed();
    // The resourceVersion last seen of each object, by name.
    let mut seen: HashMap<String, String> = HashMap::new();
    // The names of a (re)list in progress: objects deleted while the watch was broken
    // send no event, so those the list no longer has are forgotten at its end.
    let mut relisted: Option<std::collections::HashSet<String>> = None;
    let mut failing = false;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = events.next() => e,
        };
        let Some(event) = event else { return };
        let (object, live) = match event {
            Err(e) => {
                let text = e.to_string();
                if !failing {
                    tracing::warn!(error = %text, "cannot watch the quorum views on the hub; peers' views turn stale");
                    failing = true;
                }
                let mut s = status.lock();
                s.watching = false;
                s.watch_error = Some(text);
                continue;
            }
            Ok(event) => {
                // Any event after an error: the watch is back (a resumed watch has no
                // InitDone, only the changes since).
                if failing || matches!(event, watcher::Event::InitDone) {
                    if failing {
                        tracing::info!("watching the quorum views on the hub again");
                        failing = false;
                    }
                    let mut s = status.lock();
                    s.watching = true;
                    s.watch_error = None;
                }
                match event {
                    watcher::Event::Apply(cm) => (cm, true),
                    watcher::Event::InitApply(cm) => {
                        if let (Some(names), Some(name)) = (&mut relisted, &cm.metadata.name) {
                            names.insert(name.clone());
                        }
                        (cm, false)
                    }
                    watcher::Event::Delete(cm) => {
                        // Its instance stopped and removed it (or an operator did): the
                        // peer is forgotten at once rather than kept as a stale view.
                        let Some(name) = cm.metadata.name else {
                            continue;
                        };
                        seen.remove(&name);
                        if name == own {
                            continue;
                        }
                        let url = peer_url(&base, &name);
                        if health.send(HealthInput::PeerGone { url }).await.is_err() {
                            return; // health has stopped
                        }
                        continue;
                    }
                    watcher::Event::Init => {
                        relisted = Some(std::collections::HashSet::new());
                        continue;
                    }
                    watcher::Event::InitDone => {
                        let listed = relisted.take().unwrap_or_default();
                        let gone: Vec<String> = (seen.keys())
                            .filter(|n| !listed.contains(*n))
                            .cloned()
                            .collect();
                        for name in gone {
                            seen.remove(&name);
                            let url = peer_url(&base, &name);
                            if health.send(HealthInput::PeerGone { url }).await.is_err() {
                                return; // health has stopped
                            }
                        }
                        continue;
                    }
                }
            }
        };
        let at = SystemTime::now();
        let Some(name) = object.metadata.name.clone() else {
            continue;
        };
        if name == own {
            continue;
        }
        let rv = object.metadata.resource_version.clone().unwrap_or_default();
        let before = seen.insert(name.clone(), rv.clone());
        if !renewed(before.as_deref(), &rv, live) {
            continue;
        }
        let view = object
            .data
            .as_ref()
            .and_then(|d| d.get(VIEW_KEY))
            .ok_or_else(|| format!("no `{VIEW_KEY}` in the object's data"))
            .and_then(|text| {
                serde_json::from_str::<View>(text).map_err(|e| format!("not a view: {e}"))
            });
        let input = HealthInput::PeerView {
            peer: PeerRef {
                url: peer_url(&base, &name),
                via: Via::Hub,
            },
            view,
            at,
        };
        if health.send(input).await.is_err() {
            return; // health has stopped
        }
    }
}

/// How a peer is named to health: the URL of its view object (`base` is the
/// collection's).
fn peer_url(base: &str, name: &str) -> Arc<str> {
    format!("{base}/{name}").into()
}

/// Whether an object at `rv`, last seen at `before`, was written since: a change seen
/// live, or one made while we were not watching; not a first sight in a list (the object
/// may be the last write of an instance long gone) nor the same version again.
fn renewed(before: Option<&str>, rv: &str, live: bool) -> bool {
    match before {
        None => live,
        Some(b) => b != rv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_seen_count_as_renewals() {
        // At start (or after a relist), an object listed for the first time may be old.
        assert!(!renewed(None, "7", false));
        // A new object seen by the watch was just written.
        assert!(renewed(None, "7", true));
        // Listed again after the watch broke: counts only if it changed meanwhile.
        assert!(!renewed(Some("7"), "7", false));
        assert!(renewed(Some("7"), "9", false));
        assert!(renewed(Some("7"), "9", true));
    }

    #[test]
    fn the_selector_names_both_labels() {
        assert_eq!(
            selector(),
            "app.kubernetes.io/name=gslb,app.kubernetes.io/component=quorum-view"
        );
    }

    #[test]
    fn failures_of_one_kind_log_once_whatever_their_numbers() {
        assert_eq!(
            kind("no answer within 500ms"),
            kind("no answer within 1s 500ms")
        );
        assert_ne!(
            kind("ServiceUnavailable (503): down"),
            kind("no answer within 1s")
        );
    }

    fn view(vips: usize) -> View {
        View {
            instance: "gslb-1".into(),
            sequence: 7,
            at: SystemTime::UNIX_EPOCH,
            endpoints: (0..vips)
                .map(|i| crate::health::quorum::ViewEndpoint {
                    app: format!("app-{}.tke-demo.cn", i / 4),
                    cluster: format!("guangzhou-{:02}", i % 4),
                    vip: std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
                    state: crate::health::State::Up,
                })
                .collect(),
        }
    }

    #[test]
    fn the_object_carries_the_view_and_the_labels_and_a_huge_view_is_refused() {
        let b = body("gslb-view-gslb-1", "gslb", &view(2)).unwrap();
        assert_eq!(
            b["metadata"]["labels"]["app.kubernetes.io/component"],
            "quorum-view"
        );
        let text = b["data"][VIEW_KEY].as_str().unwrap();
        assert_eq!(serde_json::from_str::<View>(text).unwrap(), view(2));
        // About 100 bytes a VIP: 10,000 fit, 12,000 do not.
        assert!(body("o", "gslb", &view(10_000)).is_ok());
        match body("o", "gslb", &view(12_000)) {
            Err(WriteError::TooLarge(n)) => assert!(n > MAX_VIEW_BYTES),
            other => panic!("{other:?}"),
        }
    }
}
