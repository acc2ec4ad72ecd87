//! Multi-vantage quorum: the views of other gslb instances, and how they combine with
//! ours. Pure: time comes in as an argument.
//!
//! Each instance publishes its [`View`] (`GET /api/v1/view`): per endpoint (one VIP of one
//! app's cluster), its own probed state after its own rise/fall hysteresis, never its
//! overrides or its quorum decision (so views never echo each other). [`Peers`] holds the
//! last view read from each peer and when it was read (by our clock, so clock skew between
//! instances does not matter). An endpoint is down when at least [`Required::needed`] of
//! the fresh views that have a say (`up` or `down`; `unknown` and a view without the
//! endpoint abstain) say down; targets derive from their endpoints as without quorum.
//! With no fresh peer view, an instance falls back to its own view.
//!
//! Views are per endpoint rather than per target so that, of a target with several VIPs,
//! the one that everybody sees down is left out of answers while the others stay.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::State;
use crate::model::{Inventory, QuorumRule, Required};

/// One instance's view, as `GET /api/v1/view` serves it: a contract between instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The instance's name (`[quorum] instance`, default the host name).
    pub instance: String,
    /// Moves on with every health change of the instance; restarts from 0 when it does.
    pub sequence: u64,
    /// When the view was served, by the instance's clock (informative: freshness is
    /// judged by the reader's clock, when it received the view).
    #[serde(with = "crate::rfc3339")]
    pub at: SystemTime,
    pub endpoints: Vec<ViewEndpoint>,
}

/// One endpoint in a [`View`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEndpoint {
    pub app: String,
    pub cluster: String,
    pub vip: IpAddr,
    /// What the instance's own probes say, after its rise/fall: `up`, `down` or `unknown`.
    pub state: State,
}

/// The votes behind a quorum decision on one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Votes {
    /// Fresh views (ours included) that have a say on the endpoint (`up` or `down`).
    pub views: u32,
    /// Of those, the views that say down.
    pub down: u32,
    /// Down views needed for the endpoint to count as down.
    pub needed: u32,
}

impl View {
    /// `instance`'s view in `snapshot`: each endpoint's `own` state by names and VIP.
    pub fn of(instance: &str, snapshot: &super::HealthSnapshot, at: SystemTime) -> Self {
        let endpoints = (snapshot.inventory.endpoint_keys().into_iter())
            .zip(&snapshot.endpoints)
            .map(|((app, cluster, vip), h)| ViewEndpoint {
                app,
                cluster: cluster.to_owned(),
                vip,
                state: h.own,
            })
            .collect();
        Self {
            instance: instance.to_owned(),
            sequence: snapshot.version,
            at,
            endpoints,
        }
    }

    /// The same endpoints in the same states as `other` (sequence and time aside).
    pub fn same_states(&self, other: &View) -> bool {
        self.instance == other.instance && self.endpoints == other.endpoints
    }
}

/// How views travel between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Read from the peer's admin API (`[quorum] peers`).
    Admin,
    /// Watched on the hub's Kubernetes API, one object per instance (`[quorum] hub`).
    Hub,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Admin => "admin",
            Via::Hub => "hub",
        }
    }
}

/// What is known of one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Where its view comes from: the base URL of its admin API, as configured, or the
    /// URL of its view object on the hub.
    pub url: String,
    /// How its view travels.
    pub via: Via,
    /// Its last view, if one was ever read.
    pub view: Option<Arc<View>>,
    /// When we last received a view from it (our clock).
    pub received: Option<SystemTime>,
    /// Why the last read failed, if it did; cleared by the next success.
    pub error: Option<String>,
    /// Its view was fresh at the last decision.
    pub fresh: bool,
    /// The URL answered with our own view (the peers list names this instance too).
    pub is_self: bool,
    /// The view's state of each endpoint of the current inventory (by index).
    states: Arc<Vec<Option<State>>>,
}

/// The quorum side of health: the rule, our name, and every peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Peers {
    pub instance: String,
    pub rule: QuorumRule,
    pub peers: Vec<Peer>,
}

impl Peers {
    /// The peers at `urls` (their admin APIs); through the hub, `urls` is empty and
    /// peers join as their views are first received.
    pub fn new(instance: String, rule: QuorumRule, urls: &[String]) -> Self {
        Self {
            instance,
            rule,
            peers: urls.iter().map(|url| Peer::new(url, Via::Admin)).collect(),
        }
    }

    /// Views counted at the last decision: (fresh, stale), ours included in the fresh.
    pub fn counts(&self) -> (usize, usize) {
        let others = self.peers.iter().filter(|p| !p.is_self);
        let fresh = others.clone().filter(|p| p.fresh).count();
        (fresh + 1, others.count() - fresh)
    }

    /// True while no peer's view is fresh: decisions are ours alone.
    pub fn fallback(&self) -> bool {
        self.counts().0 == 1
    }

    /// Records the outcome of a read of peer `index`'s view, `received` then, applied at
    /// `now` (later, when health was busy: freshness is judged at `now`, so a late view
    /// is not taken for fresher than it is). Returns the endpoints whose peer state
    /// changed (all of them when which views are fresh did).
    ///
    /// `from` names the peer by where its view came from; one not known yet joins (a
    /// hub object seen for the first time).
    pub fn receive(
        &mut self,
        from: &PeerRef,
        result: Result<View, String>,
        inventory: &Inventory,
        received: SystemTime,
        now: SystemTime,
    ) -> Changed {
        let instance = self.instance.clone();
        let index = match self.peers.iter().position(|p| *p.url == *from.url) {
            Some(i) => i,
            None => {
                self.peers.push(Peer::new(&from.url, from.via));
                self.peers.len() - 1
            }
        };
        let peer = &mut self.peers[index];
        match result {
            Ok(view) => {
                peer.error = None;
                peer.is_self = view.instance == instance;
                peer.received = Some(received);
                let states = if peer.is_self {
                    Vec::new()
                } else {
                    map_states(&view, inventory)
                };
                let changed = if peer.fresh {
                    (0..inventory.endpoints.len())
                        .filter(|&e| states.get(e) != peer.states.get(e))
                        .collect()
                } else {
                    Vec::new()
                };
                peer.states = Arc::new(states);
                peer.view = Some(Arc::new(view));
                if peer.fresh && !peer.is_self {
                    return Changed::Some(changed);
                }
            }
            Err(e) => {
                peer.error = Some(e);
                return Changed::Some(Vec::new());
            }
        }
        self.refresh(now)
    }

    /// Forgets the hub peer whose view object at `url` was deleted (its instance stopped
    /// and removed it): its view no longer counts, fresh or not. Configured (admin API)
    /// peers are never forgotten. Every endpoint needs a new decision when the view was
    /// fresh.
    pub fn forget(&mut self, url: &str) -> Changed {
        let Some(index) = (self.peers.iter()).position(|p| p.via == Via::Hub && *p.url == *url)
        else {
            return Changed::Some(Vec::new());
        };
        if self.peers.remove(index).fresh {
            Changed::All
        } else {
            Changed::Some(Vec::new())
        }
    }

    /// Re-judges which views are fresh at `now`; every endpoint needs a new decision
    /// when that changed.
    pub fn refresh(&mut self, now: SystemTime) -> Changed {
        let within = self.rule.fresh_within;
        let mut moved = false;
        for p in &mut self.peers {
            let fresh = !p.is_self
                && p.received
                    .is_some_and(|r| now.duration_since(r).map_or(true, |age| age <= within));
            moved |= fresh != p.fresh;
            p.fresh = fresh;
        }
        if moved {
            Changed::All
        } else {
            Changed::Some(Vec::new())
        }
    }

    /// When the next fresh view turns stale, if one is fresh.
    pub fn next_stale(&self) -> Option<SystemTime> {
        self.peers
            .iter()
            .filter(|p| p.fresh)
            .filter_map(|p| p.received)
            .min()
            .map(|r| r + self.rule.fresh_within)
    }

    /// Maps every peer's view onto a new inventory, by names.
    pub fn reconfigure(&mut self, inventory: &Inventory) {
        for p in &mut self.peers {
            p.states = Arc::new(match &p.view {
                Some(v) if !p.is_self => map_states(v, inventory),
                _ => Vec::new(),
            });
        }
    }

    /// The state of `endpoint` given our own view `own` and the fresh peer views, and the
    /// votes behind it; no votes when no peer view is fresh (ours alone decides).
    pub fn decide(&self, endpoint: usize, own: State) -> (State, Option<Votes>) {
        let peers = self.peers.iter().filter(|p| p.fresh);
        let mut any = false;
        let states = std::iter::once(Some(own)).chain(peers.map(|p| {
            any = true;
            p.states.get(endpoint).copied().flatten()
        }));
        let (state, votes) = combine(self.rule.required, states);
        if any {
            (state, Some(votes))
        } else {
            (own, None)
        }
    }
}

impl Peer {
    fn new(url: &str, via: Via) -> Self {
        Self {
            url: url.to_owned(),
            via,
            view: None,
            received: None,
            error: None,
            fresh: false,
            is_self: false,
            states: Arc::default(),
        }
    }
}

/// Names a peer in [`Peers::receive`]: where its view came from, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRef {
    pub url: Arc<str>,
    pub via: Via,
}

/// Which endpoints need a new decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    All,
    Some(Vec<usize>),
}

/// The quorum arithmetic over the views of one endpoint (`None`: the view does not know
/// it): down when at least `needed` of the views that say `up` or `down` say down;
/// `unknown` when none does.
pub fn combine(
    required: Required,
    views: impl IntoIterator<Item = Option<State>>,
) -> (State, Votes) {
    let (mut said, mut down) = (0u32, 0u32);
    for s in views.into_iter().flatten() {
        match s {
            State::Up => said += 1,
            State::Down => {
                said += 1;
                down += 1;
            }
            State::Unknown => {}
        }
    }
    if said == 0 {
        let votes = Votes {
            views: 0,
            down: 0,
            needed: 0,
        };
        return (State::Unknown, votes);
    }
    let needed = required.needed(said);
    let state = if down >= needed {
        State::Down
    } else {
        State::Up
    };
    (
        state,
        Votes {
            views: said,
            down,
            needed,
        },
    )
}

/// A view's states by endpoint index of `inventory` (endpoints that it does not know:
/// `None`), matched by names and VIP.
fn map_states(view: &View, inventory: &Inventory) -> Vec<Option<State>> {
    let by_name: HashMap<(&str, &str, IpAddr), State> = view
        .endpoints
        .iter()
        .map(|e| ((e.app.as_str(), e.cluster.as_str(), e.vip), e.state))
        .collect();
    inventory
        .endpoint_keys()
        .into_iter()
        .map(|(app, cluster, vip)| by_name.get(&(app.as_str(), cluster, vip)).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::{Down, Unknown, Up};

    /// The admin peer `http://p{i+1}`.
    fn peer(i: usize) -> PeerRef {
        PeerRef {
            url: format!("http://p{}", i + 1).into(),
            via: Via::Admin,
        }
    }

    fn decide(required: Required, views: &[State]) -> State {
        combine(required, views.iter().map(|s| Some(*s))).0
    }

    #[test]
    fn majority_of_one_two_and_three_views() {
        let m = Required::Majority;
        assert_eq!(decide(m, &[Down]), Down);
        assert_eq!(decide(m, &[Up]), Up);
        // Two views: a majority is both.
        assert_eq!(decide(m, &[Down, Up]), Up);
        assert_eq!(decide(m, &[Down, Down]), Down);
        // Three: two of them.
        assert_eq!(decide(m, &[Down, Up, Up]), Up);
        assert_eq!(decide(m, &[Down, Down, Up]), Down);
        assert_eq!(decide(m, &[Up, Down, Down]), Down);
        assert_eq!(m.needed(4), 3);
        assert_eq!(m.needed(5), 3);
    }

    #[test]
    fn counts_are_capped_by_the_views_that_have_a_say() {
        assert_eq!(Required::AtLeast(2).needed(3), 2);
        assert_eq!(Required::AtLeast(3).needed(2), 2);
        assert_eq!(Required::AtLeast(1).needed(3), 1);
        assert_eq!(decide(Required::AtLeast(1), &[Up, Up, Down]), Down);
        assert_eq!(decide(Required::AtLeast(3), &[Down, Down]), Down);
    }

    #[test]
    fn percentages_round_up_and_need_at_least_one_view() {
        let p = Required::Percent;
        assert_eq!(p(50).needed(2), 1);
        assert_eq!(p(50).needed(3), 2);
        assert_eq!(p(60).needed(3), 2);
        assert_eq!(p(67).needed(3), 3);
        assert_eq!(p(100).needed(3), 3);
        assert_eq!(p(1).needed(3), 1);
        assert_eq!(decide(p(60), &[Down, Down, Up]), Down);
        assert_eq!(decide(p(67), &[Down, Down, Up]), Up);
    }

    #[test]
    fn unknown_and_missing_views_abstain() {
        // Down and up have a say; unknown and a view without the target do not: one down
        // of two is not a majority.
        let (state, votes) = combine(
            Required::Majority,
            [Some(Down), Some(Unknown), None, Some(Up)],
        );
        assert_eq!(state, Up);
        assert_eq!(
            votes,
            Votes {
                views: 2,
                down: 1,
                needed: 2
            }
        );
        assert_eq!(
            combine(Required::Majority, [Some(Unknown), None]).0,
            Unknown
        );
    }

    fn inventory() -> Inventory {
        crate::config::parse(
            r#"
[[zone]]
name = "tke-demo.cn"
nameservers = ["ns.example.net"]
hostmaster = "hostmaster.tke-demo.cn"
[[cluster]]
name = "a"
vips = ["127.0.0.1"]
[[cluster]]
name = "b"
vips = ["127.0.0.2"]
[[app]]
name = "tke-demo.cn"
probe = { kind = "tcp", port = 80 }
"#,
            "test",
        )
        .unwrap()
        .inventory
    }

    fn view(instance: &str, a: State, b: State) -> View {
        View {
            instance: instance.to_owned(),
            sequence: 1,
            at: SystemTime::UNIX_EPOCH,
            endpoints: vec![
                ViewEndpoint {
                    app: "tke-demo.cn".into(),
                    cluster: "a".into(),
                    vip: "127.0.0.1".parse().unwrap(),
                    state: a,
                },
                ViewEndpoint {
                    app: "tke-demo.cn".into(),
                    cluster: "b".into(),
                    vip: "127.0.0.2".parse().unwrap(),
                    state: b,
                },
            ],
        }
    }

    #[test]
    fn stale_views_are_ignored_and_no_fresh_view_falls_back_to_our_own() {
        let inv = inventory();
        let rule = QuorumRule {
            required: Required::Majority,
            fresh_within: std::time::Duration::from_secs(5),
        };
        let urls = ["http://p1".to_owned(), "http://p2".to_owned()];
        let mut peers = Peers::new("me".into(), rule, &urls);
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let s = std::time::Duration::from_secs;
        // No view yet: ours alone decides, without votes.
        assert_eq!(peers.decide(0, Down), (Down, None));
        assert!(peers.fallback());
        assert_eq!(peers.counts(), (1, 2));
        // Both peers see `a` up: our down is outvoted.
        assert_eq!(
            peers.receive(&peer(0), Ok(view("p1", Up, Up)), &inv, t0, t0),
            Changed::All
        );
        peers.receive(
            &peer(1),
            Ok(view("p2", Up, Down)),
            &inv,
            t0 + s(2),
            t0 + s(2),
        );
        assert_eq!(peers.counts(), (3, 0));
        let (state, votes) = peers.decide(0, Down);
        assert_eq!(state, Up);
        assert_eq!(
            votes,
            Some(Votes {
                views: 3,
                down: 1,
                needed: 2
            })
        );
        assert_eq!(peers.decide(1, Down).0, Down);
        // p1's view turns stale: two fresh views, both must say down.
        assert_eq!(peers.next_stale(), Some(t0 + s(5)));
        assert_eq!(peers.refresh(t0 + s(6)), Changed::All);
        assert_eq!(peers.counts(), (2, 1));
        assert_eq!(peers.decide(0, Down).0, Up);
        assert_eq!(peers.decide(1, Down).0, Down);
        // And p2's: ours alone again.
        peers.refresh(t0 + s(8));
        assert!(peers.fallback());
        assert_eq!(peers.decide(0, Down), (Down, None));
        // A failed read keeps the last view (stale by now) and says why.
        peers.receive(
            &peer(0),
            Err("connection refused".into()),
            &inv,
            t0 + s(9),
            t0 + s(9),
        );
        assert_eq!(peers.peers[0].error.as_deref(), Some("connection refused"));
        assert!(peers.fallback());
        // A peer answering with our own name is ourselves: never counted.
        peers.receive(&peer(1), Ok(view("me", Up, Up)), &inv, t0 + s(9), t0 + s(9));
        assert!(peers.peers[1].is_self);
        assert_eq!(peers.counts(), (1, 1));
        assert_eq!(peers.decide(0, Down), (Down, None));
    }

    #[test]
    fn a_view_applied_late_is_judged_by_when_it_was_received() {
        let inv = inventory();
        let rule = QuorumRule {
            required: Required::Majority,
            fresh_within: std::time::Duration::from_secs(5),
        };
        let mut peers = Peers::new("me".into(), rule, &["http://p1".to_owned()]);
        let t0 = SystemTime::UNIX_EPOCH;
        let s = std::time::Duration::from_secs;
        // Received at t0 but only applied 6 s later: already stale.
        peers.receive(&peer(0), Ok(view("p1", Down, Down)), &inv, t0, t0 + s(6));
        assert!(peers.fallback());
        assert_eq!(peers.decide(0, Up), (Up, None));
    }

    #[test]
    fn a_fresh_peer_reports_only_the_endpoints_whose_state_moved() {
        let inv = inventory();
        let rule = QuorumRule {
            required: Required::Majority,
            fresh_within: std::time::Duration::from_secs(5),
        };
        let mut peers = Peers::new("me".into(), rule, &["http://p1".to_owned()]);
        let t0 = SystemTime::UNIX_EPOCH;
        peers.receive(&peer(0), Ok(view("p1", Up, Up)), &inv, t0, t0);
        assert_eq!(
            peers.receive(&peer(0), Ok(view("p1", Up, Down)), &inv, t0, t0),
            Changed::Some(vec![1])
        );
    }

    #[test]
    fn hub_peers_join_when_their_first_view_arrives_and_age_out_like_the_others() {
        let inv = inventory();
        let rule = QuorumRule {
            required: Required::Majority,
            fresh_within: std::time::Duration::from_secs(3),
        };
        let mut peers = Peers::new("me".into(), rule, &[]);
        let s = std::time::Duration::from_secs;
        let t0 = SystemTime::UNIX_EPOCH;
        assert_eq!(peers.counts(), (1, 0));
        let object = |name: &str| PeerRef {
            url: format!("https://hub:6443/api/v1/namespaces/gslb/configmaps/gslb-view-{name}")
                .into(),
            via: Via::Hub,
        };
        peers.receive(&object("p1"), Ok(view("p1", Up, Up)), &inv, t0, t0);
        peers.receive(&object("p2"), Ok(view("p2", Up, Down)), &inv, t0, t0);
        // The same object again is the same peer.
        peers.receive(
            &object("p1"),
            Ok(view("p1", Up, Up)),
            &inv,
            t0 + s(1),
            t0 + s(1),
        );
        assert_eq!(peers.peers.len(), 2);
        assert!(peers.peers.iter().all(|p| p.via == Via::Hub));
        assert_eq!(peers.counts(), (3, 0));
        assert_eq!(peers.decide(0, Down).0, Up);
        // p2's object is no longer renewed: stale after fresh_within, then p1's too.
        peers.refresh(t0 + s(4));
        assert_eq!(peers.counts(), (2, 1));
        peers.refresh(t0 + s(5));
        assert!(peers.fallback());
    }
}
