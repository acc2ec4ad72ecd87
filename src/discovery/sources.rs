//! The source tasks: kube clients, watchers into reflector stores, and the views built
//! from the stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{StreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::objects::{load_balancer_ips, no_execute_taint, ready_condition, replicas};
use super::{SeenCluster, View};
use crate::config::{Source, SourceKind};
use crate::model::ObjectRef;

/// Wait before retrying a source whose client cannot even be built (bad kubeconfig).
const CLIENT_RETRY: Duration = Duration::from_secs(30);
/// How often an unreachable API is asked whether it is back.
const RECHECK: Duration = Duration::from_secs(2);

/// What a watched feed is for.
#[derive(Debug, Clone)]
enum Role {
    /// Cluster objects of a hub (ManagedCluster, Cluster).
    Clusters(SourceKind),
    /// Clusternet `Description`s: per-cluster status copies of deployed objects.
    Descriptions,
    /// Karmada `ResourceBinding`s: per-cluster aggregated status.
    Bindings,
    /// One named object in one member cluster (kubeconfig sources).
    Object { cluster: String, object: ObjectRef },
    /// A member cluster's context exists (kubeconfig sources): the cluster is known.
    Member(String),
}

struct Feed {
    role: Role,
    store: Option<Store<DynamicObject>>,
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn core_resource(kind: &str) -> Option<ApiResource> {
    Some(match kind {
        "Ingress" => resource("networking.k8s.io", "v1", "Ingress", "ingresses"),
        "Service" => resource("", "v1", "Service", "services"),
        "Deployment" => resource("apps", "v1", "Deployment", "deployments"),
        "StatefulSet" => resource("apps", "v1", "StatefulSet", "statefulsets"),
        _ => return None,
    })
}

async fn client(source: &Source, context: Option<&str>) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(kube_config(source, context).await?)?)
}

/// The kube client config of `source` at `context` (its kubeconfig, else the default
/// one, else in-cluster), with the client's own retries off.
///
/// # Errors
///
/// When the kubeconfig cannot be read or names no such context.
pub(crate) async fn kube_config(
    source: &Source,
    context: Option<&str>,
) -> anyhow::Result<kube::Config> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let mut config = match (&source.kubeconfig, context) {
        (Some(path), _) => {
            kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options).await?,
        (None, None) => kube::Config::infer().await?,
    };
    // The client's own retry of 503/429/504 can hide an outage for minutes; the watcher
    // already backs off and retries, and we want to see (and report) the outage.
    config.default_retry = false;
    Ok(config)
}

/// The member contexts of a `kubeconfig` source.
fn member_contexts(source: &Source) -> anyhow::Result<Vec<String>> {
    if let Some(list) = &source.contexts {
        return Ok(list.clone());
    }
    let kc = match &source.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)?,
        None => Kubeconfig::read()?,
    };
    Ok(kc.contexts.into_iter().map(|c| c.name).collect())
}

/// kube-runtime's default watcher backoff (0.8 s, doubling up to 30 s, with jitter),
/// reset only once the API has answered. The stream's backoff is reset by every item,
/// and the watcher announces each list attempt with `Init` before the API has said
/// anything: with the plain default, a source that never completes a list (an API down
/// at start, or a relist after `410 Gone` that fails) retried about once a second.
struct ResetOnAnswer {
    inner: watcher::DefaultBackoff,
    /// Set by the stream when an event other than `Init` (or an error) came through.
    answered: Arc<AtomicBool>,
}

impl Iterator for ResetOnAnswer {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.inner.next()
    }
}

impl kube::runtime::utils::Backoff for ResetOnAnswer {
    fn reset(&mut self) {
        if self.answered.swap(false, Ordering::Relaxed) {
            self.inner.reset();
        }
    }
}

type FeedStream =
    stream::BoxStream<'static, (usize, watcher::Result<watcher::Event<DynamicObject>>)>;

/// Builds the feeds of a source and their watch streams.
async fn feeds(
    source: &Source,
    refs: &[ObjectRef],
) -> anyhow::Result<(Vec<Feed>, Vec<FeedStream>, Vec<kube::Client>)> {
    let mut clients = Vec::new();
    let mut feeds = Vec::new();
    let mut streams = Vec::new();
    let mut add =
        |role: Role, api: Option<(Api<DynamicObject>, ApiResource)>, cfg: watcher::Config| {
            let idx = feeds.len();
            let store = api.map(|(api, ar)| {
                let writer = Writer::new(ar);
                let store = writer.as_reader();
                let answered = Arc::new(AtomicBool::new(false));
                let seen = answered.clone();
                streams.push(
                    watcher(api, cfg)
                        .inspect(move |event| {
                            if matches!(event, Ok(e) if !matches!(e, watcher::Event::Init)) {
                                seen.store(true, Ordering::Relaxed);
                            }
                        })
                        .backoff(ResetOnAnswer {
                            inner: watcher::DefaultBackoff::default(),
                            answered,
                        })
                        .reflect(writer)
                        .map(move |e| (idx, e))
                        .boxed(),
                );
                store
            });
            feeds.push(Feed { role, store });
        };
    match source.kind {
        SourceKind::Clusternet => {
            let c = client(source, source.context.as_deref()).await?;
            clients.push(c.clone());
            let mc = resource(
                "clusters.clusternet.io",
                "v1beta1",
                "ManagedCluster",
                "managedclusters",
            );
            let desc = resource(
                "apps.clusternet.io",
                "v1alpha1",
                "Description",
                "descriptions",
            );
            add(
                Role::Clusters(SourceKind::Clusternet),
                Some((Api::all_with(c.clone(), &mc), mc)),
                watcher::Config::default(),
            );
            add(
                Role::Descriptions,
                Some((Api::all_with(c, &desc), desc)),
                watcher::Config::default(),
            );
        }
        SourceKind::Karmada => {
            let c = client(source, source.context.as_deref()).await?;
            clients.push(c.clone());
            let cl = resource("cluster.karmada.io", "v1alpha1", "Cluster", "clusters");
            let rb = resource(
                "work.karmada.io",
                "v1alpha2",
                "ResourceBinding",
                "resourcebindings",
            );
            add(
                Role::Clusters(SourceKind::Karmada),
                Some((Api::all_with(c.clone(), &cl), cl)),
                watcher::Config::default(),
            );
            add(
                Role::Bindings,
                Some((Api::all_with(c, &rb), rb)),
                watcher::Config::default(),
            );
        }
        SourceKind::Kubeconfig => {
            for ctx in member_contexts(source)? {
                let c = client(source, Some(&ctx)).await?;
                clients.push(c.clone());
                add(Role::Member(ctx.clone()), None, watcher::Config::default());
                for object in refs {
                    let Some(ar) = core_resource(&object.kind) else {
                        continue;
                    };
                    let api = Api::namespaced_with(c.clone(), &object.namespace, &ar);
                    let cfg = watcher::Config::default()
                        .fields(&format!("metadata.name={}", object.name));
                    add(
                        Role::Object {
                            cluster: ctx.clone(),
                            object: object.clone(),
                        },
                        Some((api, ar)),
                        cfg,
                    );
                }
            }
        }
    }
    Ok((feeds, streams, clients))
}

/// Runs one source until `cancel`, sending its view whenever it changes.
pub(super) async fn run(
    index: usize,
    source: Source,
    refs: Vec<ObjectRef>,
    views: mpsc::Sender<(usize, View)>,
    tracker: super::Tracker,
    cancel: CancellationToken,
) {
    let name = source.name.clone();
    let (feeds, streams, clients) = loop {
        match feeds(&source, &refs).await {
            Ok(f) => break f,
            Err(e) => {
                let error = crate::redact::error_text(&e);
                tracing::error!(source = %name, %error, "cannot set up discovery; retrying in 30s");
                tracker.down(error);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(CLIENT_RETRY) => {}
                }
            }
        }
    };
    let mut synced: Vec<bool> = feeds.iter().map(|f| f.store.is_none()).collect();
    let mut events = stream::select_all(streams);
    let mut up: Option<bool> = None;
    let mut last: Option<View> = None;
    // While down, ask the API for its version now and then: a watch that resumes after
    // an outage may carry no event for a long time.
    let mut recheck = tokio::time::interval(RECHECK);
    if synced.iter().all(|s| *s) {
        // Nothing to watch (a kubeconfig source with no objects named): the members are the view.
        let view = build(&feeds);
        let _ = views.send((index, view)).await;
        tracker.up();
        cancel.cancelled().await;
        return;
    }
    loop {
        let (feed, event) = tokio::select! {
            _ = cancel.cancelled() => return,
            e = events.next() => match e { Some(e) => e, None => return },
            _ = recheck.tick(), if up == Some(false) => {
                if reachable(&clients).await {
                    tracing::info!(source = %name, "discovery API reachable again");
                    up = Some(true);
                    tracker.up();
                }
                continue;
            }
        };
        match event {
            Err(e) => {
                if up != Some(false) {
                    let error = crate::redact::withheld(&e).unwrap_or_else(|| e.to_string());
                    tracing::warn!(source = %name, %error, "discovery API unreachable: keeping the last known state and retrying with backoff");
                    tracker.down(error);
                }
                up = Some(false);
                continue;
            }
            // `Init` is announced before each list attempt, before the API has said
            // anything: it proves nothing about reachability.
            Ok(watcher::Event::Init) => {
                synced[feed] = false;
                continue;
            }
            Ok(event) => {
                if up == Some(false) {
                    tracing::info!(source = %name, "discovery API reachable again");
                }
                up = Some(true);
                tracker.up();
                if matches!(event, watcher::Event::InitDone) {
                    synced[feed] = true;
                }
            }
        }
        if !synced.iter().all(|s| *s) {
            continue;
        }
        let view = build(&feeds);
        if last.as_ref() != Some(&view) {
            tracing::info!(source = %name, clusters = view.clusters.len(), vips = view.vips.len(), workloads = view.workloads.len(), "discovery view changed");
            last = Some(view.clone());
            if views.send((index, view)).await.is_err() {
                return;
            }
        }
    }
}

/// Whether every client's API server answers `/version`.
async fn reachable(clients: &[kube::Client]) -> bool {
    for c in clients {
        if c.apiserver_version().await.is_err() {
            return false;
        }
    }
    true
}

/// The view of a source's stores. Pure over the store contents.
fn build(feeds: &[Feed]) -> View {
    let mut view = View::default();
    for feed in feeds {
        let objects = feed.store.as_ref().map(Store::state).unwrap_or_default();
        match &feed.role {
            Role::Member(ctx) => {
                view.clusters.entry(ctx.clone()).or_default();
            }
            Role::Clusters(kind) => {
                for o in &objects {
                    let labels = o.metadata.labels.clone().unwrap_or_default();
                    let name = match kind {
                        SourceKind::Clusternet => labels
                            .get("clusters.clusternet.io/cluster-name")
                            .cloned()
                            .or_else(|| o.metadata.name.clone()),
                        _ => o.metadata.name.clone(),
                    };
                    let Some(name) = name else { continue };
                    let region = o.data["spec"]["region"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| labels.get("topology.kubernetes.io/region").cloned())
                        .or_else(|| labels.get("region").cloned());
                    view.clusters.insert(
                        name,
                        SeenCluster {
                            region,
                            // A NoExecute taint evicts the cluster's workloads: not ready.
                            ready: if no_execute_taint(&o.data["spec"]) {
                                Some(false)
                            } else {
                                ready_condition(&o.data["status"])
                            },
                        },
                    );
                }
            }
            Role::Descriptions => {
                for o in &objects {
                    let labels = o.metadata.labels.clone().unwrap_or_default();
                    let Some(cluster) = labels.get("clusters.clusternet.io/cluster-name") else {
                        continue;
                    };
                    for ms in o.data["status"]["manifestStatuses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        record(&mut view, ms, &ms["observedStatus"], cluster);
                    }
                }
            }
            Role::Bindings => {
                for o in &objects {
                    let resource = &o.data["spec"]["resource"];
                    for agg in o.data["status"]["aggregatedStatus"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let Some(cluster) = agg["clusterName"].as_str() else {
                            continue;
                        };
                        record(&mut view, resource, &agg["status"], cluster);
                    }
                }
            }
            Role::Object { cluster, object } => {
                view.clusters.entry(cluster.clone()).or_default();
                if let Some(o) = objects
                    .iter()
                    .find(|o| o.metadata.name.as_deref() == Some(&object.name))
                {
                    let status = &o.data["status"];
                    let key = (object.clone(), cluster.clone());
                    match object.kind.as_str() {
                        "Ingress" | "Service" => {
                            view.vips.insert(key, load_balancer_ips(status));
                        }
                        _ => {
                            view.workloads.insert(key, replicas(status));
                        }
                    }
                }
            }
        }
    }
    view
}

/// Records one object's status (named by `meta`: kind, namespace, name) for a cluster.
fn record(view: &mut View, meta: &serde_json::Value, status: &serde_json::Value, cluster: &str) {
    let (Some(kind), Some(name)) = (meta["kind"].as_str(), meta["name"].as_str()) else {
        return;
    };
    let key = (
        ObjectRef {
            kind: kind.to_owned(),
            namespace: meta["namespace"].as_str().unwrap_or_default().to_owned(),
            name: name.to_owned(),
        },
        cluster.to_owned(),
    );
    match kind {
        "Ingress" | "Service" => {
            view.vips.insert(key, load_balancer_ips(status));
        }
        "Deployment" | "StatefulSet" => {
            view.workloads.insert(key, replicas(status));
        }
        _ => {}
    }
}
