//! Policies: which VIPs an app answers with, and with which TTL (`ttl.rs`), given health.
//! Pure functions.
//!
//! A plan lists *variants* per address family: the DNS path serves one variant per query,
//! in turn. Rotation (`round-robin`, and ties under `failover`) is a variant per rotation;
//! `weighted` is a smooth weighted round-robin schedule whose variants are one cluster's
//! VIPs each, so over any window of queries each cluster gets its share of answers.
//! `geo` plans every client region once (its own healthy clusters, else the nearest
//! located region's, else failover order), so that a query only picks a region's plan.

use std::net::IpAddr;

use super::ttl::{self, AppTtl};
use crate::health::HealthSnapshot;
use crate::model::{HealthFrom, Inventory, Policy};

/// Most rotations kept per answer; longer answers rotate through this many starting points.
pub const MAX_ROTATIONS: usize = 16;
/// Longest weighted schedule; larger weight sums are scaled down to fit.
const MAX_SCHEDULE: u32 = 100;

/// What one app answers right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPlan {
    /// True when no cluster was usable and every VIP is answered (fail-open).
    pub fail_open: bool,
    /// Clusters (inventory indexes) the answer draws from.
    pub clusters: Vec<usize>,
    pub v4: Vec<Vec<IpAddr>>,
    pub v6: Vec<Vec<IpAddr>>,
    /// The TTL of the app's `A`/`AAAA` records, and why.
    pub ttl: AppTtl,
    /// `geo` only: the answer of each client region (indexed like `inventory.geo.regions`).
    /// The fields above are then what clients in no region get: failover order.
    pub regions: Vec<RegionPlan>,
}

/// What clients of one region get under the `geo` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPlan {
    /// Why these clusters.
    pub via: Via,
    /// Clusters (inventory indexes) the answer draws from.
    pub clusters: Vec<usize>,
    pub v4: Vec<Vec<IpAddr>>,
    pub v6: Vec<Vec<IpAddr>>,
}

/// How a region's answer was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The healthy clusters of the region itself.
    Own,
    /// The region has none: the healthy clusters of the nearest region (an index) that has.
    Nearest(usize),
    /// No region with a location has any: failover order over every healthy cluster.
    Failover,
    /// Nothing is healthy: every VIP (`fail_open`), or nothing.
    FailOpen,
    Nothing,
}

impl Via {
    /// For status and explain.
    pub fn describe(self, geo: &crate::model::Geo) -> String {
        match self {
            Via::Own => "its own clusters".to_owned(),
            Via::Nearest(r) => format!(
                "nearest region with healthy clusters: {}",
                geo.regions.get(r).map_or("?", |r| r.name.as_str())
            ),
            Via::Failover => {
                "no healthy cluster in the region or a located one nearby: failover order"
                    .to_owned()
            }
            Via::FailOpen => "nothing healthy: fail-open, every VIP".to_owned(),
            Via::Nothing => "nothing healthy and fail_open = false: no address".to_owned(),
        }
    }
}

impl AppPlan {
    /// Every address that some variant answers, first-seen order.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for ip in self.v4.iter().chain(&self.v6).flatten() {
            if !out.contains(ip) {
                out.push(*ip);
            }
        }
        out
    }
}

/// A candidate cluster with the VIPs it may be answered with.
struct Candidate {
    cluster: usize,
    priority: u32,
    weight: u32,
    vips: Vec<IpAddr>,
}

/// Plans one app's answer from the health snapshot.
pub fn plan(inventory: &Inventory, app: usize, health: &HealthSnapshot) -> AppPlan {
    let spec = &inventory.apps[app];
    let mut healthy = Vec::new();
    let mut every = Vec::new();
    for t in inventory.targets_of(app) {
        let cluster = &inventory.clusters[inventory.targets[t].cluster];
        let endpoints = inventory
            .endpoints_of(t)
            .map(|e| (&inventory.endpoints[e], &health.endpoints[e]));
        // With workload health alone, probes do not pick VIPs either.
        let probes_count = spec.health != HealthFrom::Workloads;
        let usable: Vec<IpAddr> = endpoints
            .clone()
            .filter(|(_, h)| !probes_count || h.state.is_usable())
            .map(|(e, _)| e.vip)
            .collect();
        let candidate = |vips| Candidate {
            cluster: inventory.targets[t].cluster,
            priority: cluster.priority,
            weight: cluster.weight,
            vips,
        };
        if health.targets[t].state.is_usable() && !usable.is_empty() {
            healthy.push(candidate(usable));
        }
        every.push(candidate(endpoints.map(|(e, _)| e.vip).collect()));
    }
    let fail_open = healthy.is_empty() && spec.fail_open;
    let candidates: &[Candidate] = if fail_open { &every } else { &healthy };
    // Failing open answers every VIP, whatever the policy: with nothing known to be good,
    // spreading clients over everything gives most of them a working address.
    let policy = if fail_open {
        Policy::RoundRobin
    } else {
        spec.policy
    };
    let chosen: Vec<&Candidate> = match policy {
        // Clients in no region get failover order under `geo`.
        Policy::Failover | Policy::Geo => lowest_priority(candidates.iter()),
        Policy::RoundRobin | Policy::Weighted => candidates.iter().collect(),
    };
    let regions = if spec.policy == Policy::Geo {
        (0..inventory.geo.regions.len())
            .map(|r| plan_region(inventory, r, &healthy, candidates, fail_open))
            .collect()
    } else {
        Vec::new()
    };
    let (v4, v6) = families(&chosen, policy);
    AppPlan {
        fail_open,
        clusters: chosen.iter().map(|c| c.cluster).collect(),
        v4,
        v6,
        ttl: ttl::choose(inventory, app, health),
        regions,
    }
}

/// The candidates of the lowest priority value.
fn lowest_priority<'a>(
    candidates: impl Iterator<Item = &'a Candidate> + Clone,
) -> Vec<&'a Candidate> {
    match candidates.clone().map(|c| c.priority).min() {
        Some(best) => candidates.filter(|c| c.priority == best).collect(),
        None => Vec::new(),
    }
}

/// The answer of clients in region `region`: its own healthy clusters, else those of the
/// nearest located region that has some, else failover order; with nothing healthy, the
/// app's fail-open answer (`candidates` is then every cluster, or nothing).
fn plan_region(
    inventory: &Inventory,
    region: usize,
    healthy: &[Candidate],
    candidates: &[Candidate],
    fail_open: bool,
) -> RegionPlan {
    let regions = &inventory.geo.regions;
    let region_of = |c: &Candidate| -> Option<usize> {
        let name = &inventory.clusters[c.cluster].region;
        regions.iter().position(|r| &r.name == name)
    };
    let (via, chosen): (Via, Vec<&Candidate>) = if healthy.is_empty() {
        let via = if fail_open {
            Via::FailOpen
        } else {
            Via::Nothing
        };
        (via, candidates.iter().collect())
    } else {
        let own: Vec<&Candidate> = healthy
            .iter()
            .filter(|c| region_of(c) == Some(region))
            .collect();
        if !own.is_empty() {
            (Via::Own, own)
        } else {
            // The nearest located region with a healthy cluster; ties go to config order.
            let nearest = healthy
                .iter()
                .filter_map(|c| {
                    let r = region_of(c)?;
                    Some((regions[region].distance_km(&regions[r])?, r))
                })
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            match nearest {
                Some((_, r)) => (
                    Via::Nearest(r),
                    healthy.iter().filter(|c| region_of(c) == Some(r)).collect(),
                ),
                None => (Via::Failover, lowest_priority(healthy.iter())),
            }
        }
    };
    // Within the region (or the fail-open set) every chosen cluster answers, rotated.
    let (v4, v6) = families(&chosen, Policy::RoundRobin);
    RegionPlan {
        via,
        clusters: chosen.iter().map(|c| c.cluster).collect(),
        v4,
        v6,
    }
}

/// The IPv4 and IPv6 variants of an answer drawn from `chosen`.
fn families(chosen: &[&Candidate], policy: Policy) -> (Vec<Vec<IpAddr>>, Vec<Vec<IpAddr>>) {
    let family = |v4: bool| -> Vec<Vec<IpAddr>> {
        let of_family: Vec<(&Candidate, Vec<IpAddr>)> = chosen
            .iter()
            .map(|c| {
                (
                    *c,
                    c.vips
                        .iter()
                        .copied()
                        .filter(|ip| ip.is_ipv4() == v4)
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, vips)| !vips.is_empty())
            .collect();
        if policy == Policy::Weighted {
            let weights: Vec<u32> = of_family.iter().map(|(c, _)| c.weight).collect();
            schedule(&weights)
                .into_iter()
                .map(|i| of_family[i].1.clone())
                .collect()
        } else {
            rotations(of_family.into_iter().flat_map(|(_, v)| v).collect())
        }
    };
    (family(true), family(false))
}

/// The rotations of a list, at most [`MAX_ROTATIONS`]; empty for an empty list.
pub fn rotations<T: Clone>(items: Vec<T>) -> Vec<Vec<T>> {
    let n = items.len();
    let count = n.min(MAX_ROTATIONS);
    (0..count)
        .map(|k| {
            let start = k * n / count.max(1);
            let mut v = items.clone();
            v.rotate_left(start);
            v
        })
        .collect()
}

/// Smooth weighted round-robin: indexes in an order where each appears in proportion to
/// its weight, spread out rather than bunched. Weights summing over [`MAX_SCHEDULE`] are
/// scaled down (each keeps at least 1).
pub fn schedule(weights: &[u32]) -> Vec<usize> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: u64 = weights.iter().map(|&w| u64::from(w.max(1))).sum();
    let scaled: Vec<i64> = weights
        .iter()
        .map(|&w| {
            let w = u64::from(w.max(1));
            if sum > u64::from(MAX_SCHEDULE) {
                ((w * u64::from(MAX_SCHEDULE)) / sum).max(1) as i64
            } else {
                w as i64
            }
        })
        .collect();
    let g = scaled.iter().fold(0, |a, &b| gcd(a, b));
    let scaled: Vec<i64> = scaled.iter().map(|w| w / g).collect();
    let total: i64 = scaled.iter().sum();
    let mut current = vec![0i64; scaled.len()];
    (0..total)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&scaled) {
                *c += w;
            }
            let best = (0..current.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}
