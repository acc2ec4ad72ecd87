//! [`HealthBook`]: the rise/fall machines of every endpoint, the operator overrides, and
//! the snapshot they produce. Pure: time comes in as arguments.

use std::sync::Arc;
use std::time::SystemTime;

use super::overrides::{Override, OverrideError};
use super::quorum::{Changed, Peers, View};
use super::{HealthSnapshot, Machine, Outcome, ProbeReport, State, target_state};
use crate::model::{HealthFrom, Inventory};

/// What moved a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    Probe,
    /// An override was set (or replaced) on the target.
    OverrideSet,
    /// The target's override was cleared, or expired.
    OverrideLifted,
    /// Restored from the state file at start.
    Restored,
    /// Discovery changed what is known (workload readiness, VIPs, clusters).
    Discovery,
    /// A quorum of the fresh views (ours and the peers') decided, or which views are
    /// fresh changed.
    Quorum,
}

impl Cause {
    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::Probe => "probe",
            Cause::OverrideSet => "override set",
            Cause::OverrideLifted => "override lifted",
            Cause::Restored => "restored",
            Cause::Discovery => "discovery",
            Cause::Quorum => "quorum",
        }
    }
}

/// A target whose effective state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub target: usize,
    pub from: State,
    pub to: State,
    pub cause: Cause,
}

/// Machines, overrides and the snapshot they produce.
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

    /// Decides with the views of `peers` from now on (`[quorum]`).
    pub fn with_quorum(mut self, peers: Peers) -> Self {
        self.snapshot.quorum = Some(peers);
        self
    }

    /// Applies the outcome of a read of peer `index`'s view, `received` then, at `now`;
    /// returns the targets that moved.
    pub fn peer_view(
        &mut self,
        from: &super::quorum::PeerRef,
        result: Result<View, String>,
        received: SystemTime,
        now: SystemTime,
    ) -> Vec<Transition> {
        let Some(peers) = self.snapshot.quorum.as_mut() else {
            return Vec::new();
        };
        let changed = peers.receive(from, result, &self.inventory, received, now);
        self.decide_again(changed, now)
    }

    /// Forgets the hub peer whose view object at `url` was deleted, deciding again
    /// without its view if it counted.
    pub fn peer_gone(&mut self, url: &str, now: SystemTime) -> Vec<Transition> {
        let Some(peers) = self.snapshot.quorum.as_mut() else {
            return Vec::new();
        };
        let changed = peers.forget(url);
        self.decide_again(changed, now)
    }

    /// Re-judges which peer views are fresh at `now` (one may have turned stale).
    pub fn refresh_quorum(&mut self, now: SystemTime) -> Vec<Transition> {
        let Some(peers) = self.snapshot.quorum.as_mut() else {
            return Vec::new();
        };
        let changed = peers.refresh(now);
        self.decide_again(changed, now)
    }

    /// When a fresh peer view turns stale next, if any is fresh.
    pub fn next_stale(&self) -> Option<SystemTime> {
        self.snapshot.quorum.as_ref()?.next_stale()
    }

    /// Decides the `changed` endpoints again, and their targets.
    fn decide_again(&mut self, changed: Changed, now: SystemTime) -> Vec<Transition> {
        let endpoints: Vec<usize> = match changed {
            Changed::All => (0..self.inventory.endpoints.len()).collect(),
            Changed::Some(e) => e,
        };
        let inventory = self.inventory.clone();
        let mut targets: Vec<usize> = endpoints
            .into_iter()
            .filter(|&e| self.decide(e, now))
            .map(|e| inventory.endpoints[e].target)
            .collect();
        if targets.is_empty() {
            return Vec::new();
        }
        self.snapshot.version += 1;
        targets.dedup();
        targets
            .into_iter()
            .filter_map(|t| self.recompute(t, now, Cause::Quorum))
            .collect()
    }

    pub fn inventory(&self) -> &Arc<Inventory> {
        &self.inventory
    }

    pub fn snapshot(&self) -> &HealthSnapshot {
        &self.snapshot
    }

    /// Applies one probe report; returns the target transition it caused, if any.
    pub fn observe(&mut self, report: ProbeReport) -> Option<Transition> {
        if report.generation != self.inventory.generation {
            return None; // a probe of an inventory that has since been replaced
        }
        let idx = report.endpoint;
        let endpoint = *self.inventory.endpoints.get(idx)?;
        let app = &self.inventory.apps[self.inventory.targets[endpoint.target].app];
        let probe = &app.probe;
        let at = report.at;
        let passed = report.outcome == Outcome::Success;
        let changed = self.machines[idx].observe(passed, probe.rise, probe.fall);
        let e = &mut self.snapshot.endpoints[idx];
        e.last = Some(report);
        let streak = self.machines[idx].streak();
        if streak != e.streak && app.adaptive_ttl.is_some() {
            // The app's TTL follows the streak; other apps' answers cannot change here.
            self.snapshot.steadiness += 1;
        }
        e.streak = streak;
        e.own = changed?;
        // Our view changed (peers read it), whether or not the decision moves.
        self.snapshot.version += 1;
        self.decide(idx, at);
        self.recompute(endpoint.target, at, Cause::Probe)
    }

    /// Decides endpoint `idx` from its own state and, with `[quorum]`, the fresh peer
    /// views; returns whether its state moved.
    fn decide(&mut self, idx: usize, at: SystemTime) -> bool {
        let e = &mut self.snapshot.endpoints[idx];
        let (state, votes) = match &self.snapshot.quorum {
            Some(peers) => peers.decide(idx, e.own),
            None => (e.own, None),
        };
        e.votes = votes;
        if state == e.state {
            return false;
        }
        e.state = state;
        e.since = at;
        true
    }

    /// Resumes endpoints at saved states: `(app, cluster, vip) -> state`. Unknown names
    /// are ignored (the config changed since). Returns the targets that moved.
    pub fn restore(
        &mut self,
        saved: impl Fn(&str, &str, std::net::IpAddr) -> Option<State>,
        overrides: Vec<Override>,
        now: SystemTime,
    ) -> Vec<Transition> {
        for (i, e) in self.inventory.endpoints.iter().enumerate() {
            let (app, cluster) = self.inventory.target_labels(e.target);
            if let Some(state) = saved(&app, cluster, e.vip).filter(|s| *s != State::Unknown) {
                self.machines[i] = Machine::resumed(state);
                self.snapshot.endpoints[i].state = state;
                self.snapshot.endpoints[i].own = state;
            }
        }
        self.snapshot.overrides = overrides
            .into_iter()
            .filter(|o| !o.is_expired(now) && self.check(o).is_ok())
            .collect();
        self.snapshot.version += 1;
        self.recompute_all(now, Cause::Restored)
    }

    /// Sets an override, replacing any in the same slot. Refuses one that would leave an
    /// app that has a usable cluster with none, unless `force`.
    ///
    /// # Errors
    ///
    /// Unknown names, or the guard rail.
    pub fn set_override(
        &mut self,
        ov: Override,
        force: bool,
        now: SystemTime,
    ) -> Result<Vec<Transition>, OverrideError> {
        self.check(&ov)?;
        let mut trial = self.clone();
        trial.put(ov.clone());
        let transitions = trial.recompute_all(now, Cause::OverrideSet);
        if !force {
            let emptied = self.emptied_by(&trial);
            if !emptied.is_empty() {
                return Err(OverrideError::WouldEmpty(emptied));
            }
        }
        *self = trial;
        Ok(transitions)
    }

    /// Clears the override(s) of `cluster` with exactly this app scope, or every one of
    /// the cluster when `app` is `None`.
    ///
    /// # Errors
    ///
    /// [`OverrideError::NotFound`] when nothing matched.
    pub fn clear_override(
        &mut self,
        cluster: &str,
        app: Option<&str>,
        now: SystemTime,
    ) -> Result<(Vec<Override>, Vec<Transition>), OverrideError> {
        let (removed, kept): (Vec<Override>, Vec<Override>) =
            std::mem::take(&mut self.snapshot.overrides)
                .into_iter()
                .partition(|o| o.cluster == cluster && (app.is_none() || o.app.as_deref() == app));
        self.snapshot.overrides = kept;
        if removed.is_empty() {
            return Err(OverrideError::NotFound {
                cluster: cluster.to_owned(),
                app: app.map(str::to_owned),
            });
        }
        self.snapshot.version += 1;
        Ok((removed, self.recompute_all(now, Cause::OverrideLifted)))
    }

    /// Lifts every override whose expiry has passed.
    pub fn expire(&mut self, now: SystemTime) -> (Vec<Override>, Vec<Transition>) {
        let (expired, kept): (Vec<Override>, Vec<Override>) =
            std::mem::take(&mut self.snapshot.overrides)
                .into_iter()
                .partition(|o| o.is_expired(now));
        self.snapshot.overrides = kept;
        if expired.is_empty() {
            return (expired, Vec::new());
        }
        self.snapshot.version += 1;
        (expired, self.recompute_all(now, Cause::OverrideLifted))
    }

    /// Moves to a new inventory (discovery or a reload): endpoints and targets that
    /// exist in both keep their machines and states, matched by names; new ones start
    /// `Unknown`; overrides stay. Returns the targets whose effective state moved.
    pub fn reconfigure(&mut self, inventory: Arc<Inventory>, now: SystemTime) -> Vec<Transition> {
        let old = std::mem::replace(&mut self.inventory, inventory.clone());
        let fresh = HealthSnapshot::initial(&inventory, now);
        let old_endpoints: std::collections::HashMap<_, usize> = old
            .endpoint_keys()
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        let mut machines = vec![Machine::new(); inventory.endpoints.len()];
        let mut endpoints = fresh.endpoints;
        for (i, key) in inventory.endpoint_keys().into_iter().enumerate() {
            if let Some(&j) = old_endpoints.get(&key) {
                machines[i] = self.machines[j].clone();
                endpoints[i] = self.snapshot.endpoints[j].clone();
            }
        }
        let old_targets: std::collections::HashMap<(String, String), usize> =
            (0..old.targets.len())
                .map(|t| {
                    let (a, c) = old.target_labels(t);
                    ((a, c.to_owned()), t)
                })
                .collect();
        let mut targets = fresh.targets;
        for (t, slot) in targets.iter_mut().enumerate() {
            let (a, c) = inventory.target_labels(t);
            if let Some(&j) = old_targets.get(&(a, c.to_owned())) {
                *slot = self.snapshot.targets[j].clone();
            }
        }
        self.machines = machines;
        self.snapshot.endpoints = endpoints;
        self.snapshot.targets = targets;
        if let Some(peers) = self.snapshot.quorum.as_mut() {
            peers.reconfigure(&inventory);
        }
        for e in 0..inventory.endpoints.len() {
            self.decide(e, now);
        }
        self.snapshot.inventory = inventory;
        self.snapshot.version += 1;
        self.recompute_all(now, Cause::Discovery)
    }

    /// Puts back a saved list of overrides (used to undo a change that could not be
    /// persisted).
    pub fn replace_overrides(
        &mut self,
        overrides: Vec<Override>,
        now: SystemTime,
    ) -> Vec<Transition> {
        self.snapshot.overrides = overrides;
        self.snapshot.version += 1;
        self.recompute_all(now, Cause::OverrideLifted)
    }

    /// The earliest expiry among the overrides.
    pub fn next_expiry(&self) -> Option<SystemTime> {
        self.snapshot
            .overrides
            .iter()
            .filter_map(|o| o.expires_at)
            .min()
    }

    /// Names in an override must exist, and an app-scoped one must be served by the cluster.
    fn check(&self, ov: &Override) -> Result<(), OverrideError> {
        let inv = &self.inventory;
        let cluster = inv
            .clusters
            .iter()
            .position(|c| c.name == ov.cluster)
            .ok_or_else(|| OverrideError::UnknownCluster(ov.cluster.clone()))?;
        if let Some(app_name) = &ov.app {
            let app = inv
                .apps
                .iter()
                .position(|a| a.display_name() == *app_name)
                .ok_or_else(|| OverrideError::UnknownApp(app_name.clone()))?;
            if !inv.apps[app].clusters.contains(&cluster) {
                return Err(OverrideError::NotInApp {
                    app: app_name.clone(),
                    cluster: ov.cluster.clone(),
                });
            }
        }
        Ok(())
    }

    fn put(&mut self, ov: Override) {
        self.snapshot
            .overrides
            .retain(|o| !o.same_slot(&ov.cluster, ov.app.as_deref()));
        self.snapshot.overrides.push(ov);
        self.snapshot.version += 1;
    }

    /// Apps that have a usable target here but none in `after`.
    fn emptied_by(&self, after: &HealthBook) -> Vec<String> {
        let usable = |book: &HealthBook, app: usize| {
            self.inventory
                .targets_of(app)
                .any(|t| book.snapshot.targets[t].state.is_usable())
        };
        (0..self.inventory.apps.len())
            .filter(|&a| usable(self, a) && !usable(after, a))
            .map(|a| self.inventory.apps[a].display_name())
            .collect()
    }

    fn recompute_all(&mut self, at: SystemTime, cause: Cause) -> Vec<Transition> {
        (0..self.inventory.targets.len())
            .filter_map(|t| self.recompute(t, at, cause.clone()))
            .collect()
    }

    /// Derives a target's probed state from its endpoints and its effective state from
    /// that and the overrides; returns the transition if the effective state moved.
    fn recompute(&mut self, target: usize, at: SystemTime, cause: Cause) -> Option<Transition> {
        let endpoints = || {
            self.inventory
                .endpoints_of(target)
                .map(|e| &self.snapshot.endpoints[e])
        };
        let from_probes = target_state(endpoints().map(|e| e.state));
        let from_own = target_state(endpoints().map(|e| e.own));
        let by_quorum = endpoints().any(|e| e.votes.is_some());
        let spec = &self.inventory.targets[target];
        let mode = self.inventory.apps[spec.app].health;
        let derive = |from_probes| match (mode, &spec.workload) {
            (HealthFrom::Probes, _) => from_probes,
            (HealthFrom::Workloads, Some(w)) if w.ready => State::Up,
            (HealthFrom::Workloads, Some(_)) => State::Down,
            (HealthFrom::Workloads, None) => State::Unknown,
            (HealthFrom::Both, Some(w)) if !w.ready => State::Down,
            (HealthFrom::Both, _) => from_probes,
        };
        let (probed, own) = (derive(from_probes), derive(from_own));
        // A state reached with peer views is the quorum's doing, whatever set it off.
        let cause = if by_quorum && cause == Cause::Probe {
            Cause::Quorum
        } else {
            cause
        };
        let (app, cluster) = self.inventory.target_labels(target);
        let covering = self
            .snapshot
            .overrides
            .iter()
            .find(|o| o.covers(&app, cluster))
            .cloned();
        let effective = if covering.is_some() {
            State::Down
        } else {
            probed
        };
        let t = &mut self.snapshot.targets[target];
        t.probed = probed;
        t.own = own;
        t.overridden = covering;
        if effective == t.state {
            return None;
        }
        let from = t.state;
        t.state = effective;
        t.since = at;
        Some(Transition {
            target,
            from,
            to: effective,
            cause,
        })
    }
}
