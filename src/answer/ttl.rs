//! TTL that follows health: the TTL of an app's `A`/`AAAA` answers. Pure functions.
//!
//! Without `adaptive_ttl` an app always answers with its `ttl`. With it, the app answers
//! with `ttl` while every cluster it has is up and steady, and otherwise with the time
//! until the earliest state change that its probes could bring, at least `min` and at most
//! `ttl`, so that resolvers ask again about when the answer may have changed rather than a
//! whole `ttl` later. A cluster is not steady while it is down (by probes, an override or
//! its workloads), has no probe result yet, or has a VIP whose last results disagree with
//! its state (failing while up, short of `fall`; passing while down, short of `rise`).
//!
//! The TTL depends on states and streaks only, never on the clock, so it is fixed when the
//! table is built: health moves the snapshot's `steadiness` whenever a streak of such an
//! app changes, and the planner rebuilds.

use std::net::IpAddr;
use std::time::Duration;

use crate::health::{HealthSnapshot, State};
use crate::model::{HealthFrom, Inventory, ProbeSpec};

/// Why a cluster of an app (or one VIP of it) may change state soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsteady {
    /// No probe result yet: the first one decides at once.
    Unprobed,
    /// Up, with `streak` failures in a row of the `fall` that take it down.
    Degrading { streak: u32, fall: u32 },
    /// Down, with `streak` passes in a row of the `rise` that bring it back.
    Recovering { streak: u32, rise: u32 },
    /// Down, its probes failing: a pass starts its way back.
    Down,
    /// Held out by an operator override, which may be lifted at any moment.
    Overridden,
    /// Held out because its workloads are not ready; discovery may say otherwise at any
    /// moment.
    WorkloadsNotReady,
    /// Under `health = "workloads"`, no readiness is known yet.
    WorkloadsUnknown,
}

/// The cluster (or VIP) whose state could change soonest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsteadiness {
    /// Index into [`Inventory::clusters`].
    pub cluster: usize,
    /// The VIP whose probes say so; `None` when it is the whole target.
    pub vip: Option<IpAddr>,
    pub kind: Unsteady,
    /// The earliest its state could change, counted from the last result (zero: at any
    /// moment).
    pub next_change: Duration,
}

/// The TTL an app's `A`/`AAAA` answers carry now, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppTtl {
    /// Seconds, as served.
    pub seconds: u32,
    /// The app's `adaptive_ttl` minimum, when it has one.
    pub adaptive_min: Option<u32>,
    /// With `adaptive_ttl`, what keeps the app from being steady (the soonest change of
    /// all); `None` when every cluster is up and steady, or without `adaptive_ttl`.
    pub unsteady: Option<Unsteadiness>,
}

impl AppTtl {
    /// One sentence for status and explain: why the answers carry this TTL.
    pub fn why(&self, inventory: &Inventory, app: usize) -> String {
        let ttl = inventory.apps[app].ttl;
        let Some(min) = self.adaptive_min else {
            return "fixed: the app's ttl (no adaptive_ttl)".to_owned();
        };
        let Some(u) = &self.unsteady else {
            return format!(
                "every cluster is up and steady: the app's ttl (adaptive, {min}s at least while not)"
            );
        };
        let who = match u.vip {
            Some(vip) => format!("{} {vip}", inventory.clusters[u.cluster].name),
            None => inventory.clusters[u.cluster].name.clone(),
        };
        let what = match u.kind {
            Unsteady::Unprobed => "has no probe result yet".to_owned(),
            Unsteady::Degrading { streak, fall } => {
                format!("is failing its probes ({streak} of {fall} failures needed to go down)")
            }
            Unsteady::Recovering { streak, rise } => {
                format!(
                    "is passing its probes again ({streak} of {rise} passes needed to come back)"
                )
            }
            Unsteady::Down => "is down".to_owned(),
            Unsteady::Overridden => "is held out by an override".to_owned(),
            Unsteady::WorkloadsNotReady => "is held out: its workloads are not ready".to_owned(),
            Unsteady::WorkloadsUnknown => "has no workload readiness known yet".to_owned(),
        };
        let when = if u.next_change.is_zero() {
            "at any moment".to_owned()
        } else {
            format!("in {}", humantime::format_duration(u.next_change))
        };
        format!(
            "{who} {what} and could change state {when}: adaptive, at least {min}s, {ttl}s once steady"
        )
    }
}

/// The TTL of app `app`'s address answers under `health`.
pub fn choose(inventory: &Inventory, app: usize, health: &HealthSnapshot) -> AppTtl {
    let spec = &inventory.apps[app];
    let Some(adaptive) = spec.adaptive_ttl else {
        return AppTtl {
            seconds: spec.ttl,
            adaptive_min: None,
            unsteady: None,
        };
    };
    // The first of equals wins: clusters in the app's order, VIPs in theirs.
    let soonest = unsteadiness(inventory, app, health)
        .into_iter()
        .reduce(|a, b| if b.next_change < a.next_change { b } else { a });
    AppTtl {
        seconds: soonest.map_or(spec.ttl, |u| seconds(u.next_change, adaptive.min, spec.ttl)),
        adaptive_min: Some(adaptive.min),
        unsteady: soonest,
    }
}

/// Every cluster (or VIP) of the app that is not up and steady.
fn unsteadiness(inventory: &Inventory, app: usize, health: &HealthSnapshot) -> Vec<Unsteadiness> {
    let spec = &inventory.apps[app];
    let mut out = Vec::new();
    for t in inventory.targets_of(app) {
        let target = &inventory.targets[t];
        let endpoints = inventory.endpoints_of(t);
        if endpoints.is_empty() {
            continue; // never answered: nothing of it can change the answer
        }
        let whole = |kind| Unsteadiness {
            cluster: target.cluster,
            vip: None,
            kind,
            next_change: Duration::ZERO,
        };
        if health.targets[t].overridden.is_some() {
            out.push(whole(Unsteady::Overridden));
            continue;
        }
        let ready = target.workload.as_ref().map(|w| w.ready);
        match (spec.health, ready) {
            (HealthFrom::Both | HealthFrom::Workloads, Some(false)) => {
                out.push(whole(Unsteady::WorkloadsNotReady));
                continue;
            }
            (HealthFrom::Workloads, None) => {
                out.push(whole(Unsteady::WorkloadsUnknown));
                continue;
            }
            // With workload health alone, probes do not decide.
            (HealthFrom::Workloads, Some(true)) => continue,
            _ => {}
        }
        for e in endpoints {
            let h = &health.endpoints[e];
            if let Some((kind, next_change)) = endpoint(h.state, h.streak, &spec.probe) {
                out.push(Unsteadiness {
                    cluster: target.cluster,
                    vip: Some(inventory.endpoints[e].vip),
                    kind,
                    next_change,
                });
            }
        }
    }
    out
}

/// Whether one probed endpoint may change state soon, and the earliest it could: the
/// results it still needs, each `recheck_interval` after the previous one (a probe that
/// fails at once, as on a refused connection, takes no time of its own). A down endpoint
/// may get its first pass at its next probe, at any moment. `None` while up with no
/// failure since its last pass.
pub fn endpoint(state: State, streak: u32, probe: &ProbeSpec) -> Option<(Unsteady, Duration)> {
    let after = |results: u32| probe.recheck_interval.saturating_mul(results);
    match state {
        State::Unknown => Some((Unsteady::Unprobed, Duration::ZERO)),
        State::Up if streak == 0 => None,
        State::Up => Some((
            Unsteady::Degrading {
                streak,
                fall: probe.fall,
            },
            after(probe.fall.saturating_sub(streak)),
        )),
        State::Down if streak == 0 => Some((Unsteady::Down, after(probe.rise.saturating_sub(1)))),
        State::Down => Some((
            Unsteady::Recovering {
                streak,
                rise: probe.rise,
            },
            after(probe.rise.saturating_sub(streak)),
        )),
    }
}

/// `next_change` in whole seconds (rounded up), at least `min` and at most `ttl`.
pub fn seconds(next_change: Duration, min: u32, ttl: u32) -> u32 {
    let secs = next_change.as_millis().div_ceil(1000);
    u32::try_from(secs).unwrap_or(u32::MAX).max(min).min(ttl)
}
