//! Discovery: where clusters, per-cluster ingress VIPs and workload readiness come from,
//! besides the static config.
//!
//! Each `[[source]]` runs one task that list-watches its objects through kube-runtime's
//! watcher (which relists after `410 Gone`, resumes from the last resourceVersion, and
//! backs off on errors) into reflector stores, and turns them into a [`View`] whenever
//! they change, once every initial list is complete. A merge task combines the views of
//! every source with the static config ([`merge::merge`]) and hands the new inventory to
//! the app, which applies it through health.
//!
//! An unreachable API is not a reason to fail anything over: the last view stays in
//! force, `gslb_discovery_up{source}` drops to 0, and the outage is logged once (and its
//! end once), not per retry. Errors that may quote credentials (a kubeconfig that does
//! not parse, a failed auth exec plugin) are logged and reported without the quote
//! ([`crate::redact`]).
//!
//! | kind | objects watched |
//! |---|---|
//! | `clusternet` | hub: `ManagedCluster` (clusters.clusternet.io/v1beta1), `Description` (apps.clusternet.io/v1alpha1) |
//! | `karmada` | hub: `Cluster` (cluster.karmada.io/v1alpha1), `ResourceBinding` (work.karmada.io/v1alpha2) |
//! | `kubeconfig` | each member context: the apps' Ingress/Service and Deployment/StatefulSet by name |

pub mod merge;
mod objects;
pub(crate) mod sources;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Source;
use crate::metrics::Metrics;
use crate::model::{Inventory, ObjectRef};

/// The static config that discovery adds to.
#[derive(Debug, Clone)]
pub struct Base {
    pub inventory: Inventory,
    /// Each app's `clusters` list as written (`None`: every cluster).
    pub app_clusters: Vec<Option<Vec<String>>>,
}

/// What one source sees at a moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub clusters: BTreeMap<String, SeenCluster>,
    /// Load-balancer addresses of an Ingress or Service, per cluster.
    pub vips: HashMap<(ObjectRef, String), Vec<IpAddr>>,
    /// Replicas of a Deployment or StatefulSet, per cluster.
    pub workloads: HashMap<(ObjectRef, String), Replicas>,
}

/// A cluster as a source reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenCluster {
    pub region: Option<String>,
    /// `Ready` condition; `None` when unknown.
    pub ready: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replicas {
    pub ready: u32,
    pub desired: u32,
}

/// How each source is doing, for the status API. Written by the source tasks, read by
/// admin; never touched on the DNS path.
#[derive(Debug, Default)]
pub struct DiscoveryStatus(std::sync::Mutex<BTreeMap<String, SourceState>>);

/// One source's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    pub name: String,
    pub kind: String,
    /// The API answers. While it does not, the last known view stays in force (stale).
    pub up: bool,
    #[serde(with = "crate::rfc3339::option")]
    pub last_sync: Option<std::time::SystemTime>,
    pub last_error: Option<String>,
}

impl DiscoveryStatus {
    /// Every source, by name.
    pub fn sources(&self) -> Vec<SourceState> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SourceState>> {
        // Never held across an await; a poisoned map is still a valid map.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reports a source's reachability to metrics and the status API together.
#[derive(Clone)]
pub(crate) struct Tracker {
    name: String,
    metrics: Arc<Metrics>,
    status: Arc<DiscoveryStatus>,
}

impl Tracker {
    pub(crate) fn up(&self) {
        let now = std::time::SystemTime::now();
        self.metrics.set_discovery_up(&self.name, true);
        self.metrics.set_discovery_synced(&self.name, now);
        if let Some(s) = self.status.lock().get_mut(&self.name) {
            s.up = true;
            s.last_sync = Some(now);
        }
    }

    pub(crate) fn down(&self, error: String) {
        self.metrics.set_discovery_up(&self.name, false);
        if let Some(s) = self.status.lock().get_mut(&self.name) {
            s.up = false;
            s.last_error = Some(error);
        }
    }
}

/// Starts a task per source and the merge task, which sends each new inventory to
/// `inventories`.
pub fn spawn(
    sources: &[Source],
    mut base: tokio::sync::watch::Receiver<Arc<Base>>,
    inventories: mpsc::Sender<Inventory>,
    metrics: Arc<Metrics>,
    status: Arc<DiscoveryStatus>,
    tasks: &mut JoinSet<()>,
    cancel: CancellationToken,
) {
    let (views_tx, mut views_rx) = mpsc::channel::<(usize, View)>(64);
    let refs = referenced_objects(&base.borrow().inventory);
    for (i, source) in sources.iter().enumerate() {
        metrics.set_discovery_up(&source.name, false);
        status.lock().insert(
            source.name.clone(),
            SourceState {
                name: source.name.clone(),
                kind: source.kind.as_str().to_owned(),
                up: false,
                last_sync: None,
                last_error: None,
            },
        );
        let tracker = Tracker {
            name: source.name.clone(),
            metrics: metrics.clone(),
            status: status.clone(),
        };
        tasks.spawn(sources::run(
            i,
            source.clone(),
            refs.clone(),
            views_tx.clone(),
            tracker,
            cancel.clone(),
        ));
    }
    let count = sources.len();
    tasks.spawn(async move {
        let mut views: Vec<Option<View>> = vec![None; count];
        loop {
            // A new view, or a reloaded config to merge the same views with.
            tokio::select! {
                v = views_rx.recv() => match v {
                    Some((i, view)) => views[i] = Some(view),
                    None => return,
                },
                r = base.changed() => if r.is_err() { return },
            }
            if views.iter().any(Option::is_none) {
                continue; // the static inventory serves until every source has reported
            }
            let known: Vec<View> = views.iter().flatten().cloned().collect();
            let current = base.borrow_and_update().clone();
            let inventory = merge::merge(&current, &known);
            if inventories.send(inventory).await.is_err() {
                return;
            }
        }
    });
}

/// Every Ingress/Service and workload the apps name, for sources that watch by name.
fn referenced_objects(inventory: &Inventory) -> Vec<ObjectRef> {
    let mut refs: Vec<ObjectRef> = inventory
        .apps
        .iter()
        .filter_map(|a| a.kube.as_ref())
        .flat_map(|k| {
            k.ingress
                .iter()
                .cloned()
                .chain(k.workloads.iter().map(|w| w.object.clone()))
        })
        .collect();
    refs.sort();
    refs.dedup();
    refs
}
