//! Merging what the sources see with the static config into an [`Inventory`]. Pure.
//!
//! - Clusters: the static `[[cluster]]` entries in config order, then every discovered
//!   cluster not named there, by name. A static entry with the name of a discovered
//!   cluster adds or overrides its priority, weight and region (and may add VIPs).
//! - Each app answers with the clusters its `clusters` list names (those that exist), or
//!   with every cluster when it has no list.
//! - A target's VIPs are the app's ingress VIPs in that cluster when a source reports
//!   them, else the cluster's static VIPs.
//! - A target's workload state: not ready when its cluster reports `Ready=False`, or when
//!   a named workload has fewer ready replicas than its minimum; ready when every named
//!   workload is seen and ready; unknown (no say) otherwise.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Base, View};
use crate::model::{Cluster, Inventory, Target, Workload};

/// Builds the inventory for the current views.
pub fn merge(base: &Base, views: &[View]) -> Inventory {
    let stat = &base.inventory;
    let mut clusters: Vec<Cluster> = stat.clusters.clone();
    let mut seen: BTreeMap<&str, (Option<&str>, Option<bool>)> = BTreeMap::new();
    for view in views {
        for (name, c) in &view.clusters {
            let entry = seen.entry(name.as_str()).or_insert((None, None));
            entry.0 = entry.0.or(c.region.as_deref());
            // Any source saying NotReady wins; Ready needs someone to say so.
            entry.1 = match (entry.1, c.ready) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), _) | (_, Some(true)) => Some(true),
                _ => None,
            };
        }
    }
    for (name, (region, _)) in &seen {
        match clusters.iter_mut().find(|c| c.name == *name) {
            Some(c) if c.region.is_empty() => c.region = region.unwrap_or_default().to_owned(),
            Some(_) => {}
            None => clusters.push(Cluster {
                name: (*name).to_owned(),
                region: region.unwrap_or_default().to_owned(),
                vips: Vec::new(),
                priority: 1,
                weight: 1,
            }),
        }
    }

    let mut apps = stat.apps.clone();
    let mut targets = Vec::new();
    for (a, app) in apps.iter_mut().enumerate() {
        app.clusters = match base.app_clusters.get(a).and_then(Option::as_ref) {
            Some(names) => names
                .iter()
                .filter_map(|n| clusters.iter().position(|c| &c.name == n))
                .collect(),
            None => (0..clusters.len()).collect(),
        };
        for &c in &app.clusters {
            let cluster = &clusters[c];
            let kube = app.kube.as_ref();
            let discovered: Option<Vec<IpAddr>> =
                kube.and_then(|k| k.ingress.as_ref()).and_then(|ingress| {
                    let key = (ingress.clone(), cluster.name.clone());
                    views
                        .iter()
                        .filter_map(|v| v.vips.get(&key))
                        .find(|vips| !vips.is_empty())
                        .cloned()
                });
            let vips = discovered
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| cluster.vips.clone());
            let mut workload = None;
            if let Some(k) = kube.filter(|k| !k.workloads.is_empty()) {
                let mut details = Vec::new();
                let mut all_seen = true;
                let mut all_ready = true;
                for w in &k.workloads {
                    let key = (w.object.clone(), cluster.name.clone());
                    match views.iter().find_map(|v| v.workloads.get(&key)) {
                        Some(r) => {
                            let ok = r.ready >= w.min_ready;
                            all_ready &= ok;
                            details.push(format!(
                                "{} {}/{}: {}/{} ready (min {})",
                                w.object.kind,
                                w.object.namespace,
                                w.object.name,
                                r.ready,
                                r.desired,
                                w.min_ready
                            ));
                        }
                        None => all_seen = false,
                    }
                }
                if !all_ready {
                    workload = Some(Workload {
                        ready: false,
                        detail: details.join("; "),
                    });
                } else if all_seen {
                    workload = Some(Workload {
                        ready: true,
                        detail: details.join("; "),
                    });
                }
            }
            if seen.get(cluster.name.as_str()).and_then(|s| s.1) == Some(false) && kube.is_some() {
                workload = Some(Workload {
                    ready: false,
                    detail: format!("cluster {} reports Ready=False", cluster.name),
                });
            }
            targets.push((
                Target {
                    app: a,
                    cluster: c,
                    workload,
                },
                vips,
            ));
        }
    }
    let mut inventory = Inventory::with_targets(stat.zones.clone(), clusters, apps, targets);
    inventory.geo = stat.geo.clone();
    inventory
}
