//! Policies: which VIPs an app answers with, and with which TTL (`ttl.rs`), given health.
//! Pure functions.
//!
//! A plan lists *variants* per address family: the DNS path serves one variant per query,
//! in turn. Rotation (`round-robin`, and ties under `failover`) is a variant per rotation;
//! `weighted` is a smooth weighted round-robin schedule whose variants are one cluster's
//! VIPs each, so over any window of queries each cluster gets its share of answers.

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
    let candidates = if healthy.is_empty() && spec.fail_open {
        every
    } else {
        healthy
    };
    // Failing open answers every VIP, whatever the policy: with nothing known to be good,
    // spreading clients over everything gives most of them a working address.
    let policy = if fail_open {
        Policy::RoundRobin
    } else {
        spec.policy
    };
    let chosen: Vec<&Candidate> = match policy {
        Policy::Failover => match candidates.iter().map(|c| c.priority).min() {
            Some(best) => candidates.iter().filter(|c| c.priority == best).collect(),
            None => Vec::new(),
        },
        Policy::RoundRobin | Policy::Weighted => candidates.iter().collect(),
    };
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
    AppPlan {
        fail_open,
        clusters: chosen.iter().map(|c| c.cluster).collect(),
        v4: family(true),
        v6: family(false),
        ttl: ttl::choose(inventory, app, health),
    }
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
