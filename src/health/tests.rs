use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use super::*;
use crate::metrics::Metrics;

fn inventory() -> Arc<Inventory> {
    let text = r#"
[[zone]]
name = "tke-demo.cn"
nameservers = ["ns.example.net"]
hostmaster = "hostmaster.tke-demo.cn"
[[cluster]]
name = "gz-01"
vips = ["127.0.1.1", "127.0.1.11"]
[[cluster]]
name = "gz-02"
vips = ["127.0.1.2"]
[[app]]
name = "tke-demo.cn"
probe = { kind = "tcp", port = 80, rise = 2, fall = 2 }
"#;
    Arc::new(crate::config::parse(text, "t").unwrap().inventory)
}

fn report(endpoint: usize, ok: bool) -> ProbeReport {
    ProbeReport {
        generation: 0,
        endpoint,
        outcome: if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        detail: "".into(),
        latency: Duration::from_millis(1),
        at: SystemTime::now(),
    }
}

#[test]
fn a_target_stays_up_while_any_vip_passes() {
    let mut book = HealthBook::new(inventory(), SystemTime::now());
    // endpoints 0 and 1 are gz-01's two VIPs, 2 is gz-02's.
    assert_eq!(book.observe(report(0, true)).map(|t| t.to), Some(State::Up));
    assert_eq!(
        book.observe(report(1, false)),
        None,
        "still up through VIP 0"
    );
    assert_eq!(book.snapshot().endpoints[1].state, State::Down);
    assert_eq!(
        book.observe(report(0, false)),
        None,
        "one failure is not enough (fall 2)"
    );
    let t = book.observe(report(0, false)).unwrap();
    assert_eq!((t.target, t.from, t.to), (0, State::Up, State::Down));
    assert_eq!(book.snapshot().targets[0].state, State::Down);
    assert_eq!(book.snapshot().targets[1].state, State::Unknown);
}

#[test]
fn version_moves_only_on_state_changes() {
    let mut book = HealthBook::new(inventory(), SystemTime::now());
    book.observe(report(2, true));
    let v = book.snapshot().version;
    book.observe(report(2, true));
    book.observe(report(2, false));
    assert_eq!(book.snapshot().version, v);
    assert!(book.snapshot().endpoints[2].last.is_some());
    book.observe(report(2, false));
    assert!(book.snapshot().version > v);
}

#[test]
fn steadiness_moves_with_streaks_of_adaptive_apps_only() {
    let text = r#"
[[zone]]
name = "tke-demo.cn"
nameservers = ["ns.example.net"]
hostmaster = "hostmaster.tke-demo.cn"
[[cluster]]
name = "gz-01"
vips = ["127.0.1.1"]
[[app]]
name = "tke-demo.cn"
adaptive_ttl = { min = 5 }
probe = { kind = "tcp", port = 80, rise = 2, fall = 3 }
[[app]]
name = "plain.tke-demo.cn"
probe = { kind = "tcp", port = 80, rise = 2, fall = 3 }
"#;
    let inv = Arc::new(crate::config::parse(text, "t").unwrap().inventory);
    let mut book = HealthBook::new(inv, SystemTime::now());
    // Endpoint 0: the adaptive app's VIP; endpoint 1: the same VIP of the plain app.
    book.observe(report(0, true));
    book.observe(report(1, true));
    let (v, s) = (book.snapshot().version, book.snapshot().steadiness);
    book.observe(report(1, false));
    assert_eq!(book.snapshot().steadiness, s, "not an adaptive app");
    book.observe(report(0, true));
    assert_eq!(book.snapshot().steadiness, s, "steady: streak stays 0");
    for streak in 1..=2 {
        book.observe(report(0, false));
        assert_eq!(book.snapshot().endpoints[0].streak, streak);
        assert_eq!(
            book.snapshot().steadiness,
            s + u64::from(streak),
            "degrading"
        );
    }
    assert_eq!(
        book.snapshot().version,
        v,
        "no state moved: nothing to save"
    );
    book.observe(report(0, true));
    assert_eq!(book.snapshot().steadiness, s + 3, "steady again");
    assert_eq!(book.snapshot().version, v);
}

#[test]
fn all_probed_once_every_endpoint_reported() {
    let mut book = HealthBook::new(inventory(), SystemTime::now());
    for e in 0..3 {
        assert!(!book.snapshot().all_probed());
        book.observe(report(e, e != 1));
    }
    assert!(book.snapshot().all_probed());
}

#[tokio::test]
async fn run_publishes_snapshots_and_counts_transitions() {
    let inv = inventory();
    let book = HealthBook::new(inv.clone(), SystemTime::now());
    let (tx, rx) = mpsc::channel(16);
    let (pub_tx, mut pub_rx) = watch::channel(Arc::new(book.snapshot().clone()));
    let metrics = Arc::new(Metrics::new());
    let task = tokio::spawn(run(book, rx, pub_tx, metrics.clone(), None));
    tx.send(HealthInput::Probe(report(2, true))).await.unwrap();
    pub_rx.changed().await.unwrap();
    assert_eq!(pub_rx.borrow_and_update().targets[1].state, State::Up);
    for _ in 0..2 {
        tx.send(HealthInput::Probe(report(2, false))).await.unwrap();
    }
    drop(tx);
    task.await.unwrap();
    assert_eq!(pub_rx.borrow().targets[1].state, State::Down);
    let text = metrics.render();
    assert!(
        text.contains(
            r#"gslb_health_transitions_total{app="tke-demo.cn",cluster="gz-02",to="down"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"gslb_target_up{app="tke-demo.cn",cluster="gz-02"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gslb_probes_total{app="tke-demo.cn",cluster="gz-02",result="failure"} 2"#),
        "{text}"
    );
}

fn ov(
    cluster: &str,
    app: Option<&str>,
    kind: OverrideKind,
    expires_at: Option<SystemTime>,
) -> Override {
    Override {
        cluster: cluster.to_owned(),
        app: app.map(str::to_owned),
        kind,
        reason: "test".to_owned(),
        set_by: "tests".to_owned(),
        set_at: SystemTime::now(),
        expires_at,
    }
}

fn up_book() -> HealthBook {
    let mut book = HealthBook::new(inventory(), SystemTime::now());
    for e in 0..3 {
        book.observe(report(e, true));
    }
    book
}

#[test]
fn an_override_wins_over_probes_and_shows_both_states() {
    let mut book = up_book();
    let t = book
        .set_override(
            ov("gz-01", None, OverrideKind::Drain, None),
            false,
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].target, t[0].to, t[0].cause.clone()),
        (0, State::Down, Cause::OverrideSet)
    );
    let target = &book.snapshot().targets[0];
    assert_eq!((target.state, target.probed), (State::Down, State::Up));
    assert_eq!(
        target.overridden.as_ref().unwrap().kind,
        OverrideKind::Drain
    );
    // Probes keep running underneath but do not bring it back.
    assert_eq!(book.observe(report(0, true)), None);
    let (removed, t) = book
        .clear_override("gz-01", None, SystemTime::now())
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(
        (t[0].to, t[0].cause.clone()),
        (State::Up, Cause::OverrideLifted)
    );
}

#[test]
fn the_guard_rail_refuses_to_empty_an_app_unless_forced() {
    let mut book = up_book();
    book.set_override(
        ov("gz-01", Some("tke-demo.cn"), OverrideKind::Fail, None),
        false,
        SystemTime::now(),
    )
    .unwrap();
    let err = book
        .set_override(
            ov("gz-02", None, OverrideKind::Fail, None),
            false,
            SystemTime::now(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        OverrideError::WouldEmpty(vec!["tke-demo.cn".to_owned()])
    );
    assert!(err.to_string().contains("`tke-demo.cn`"));
    assert_eq!(
        book.snapshot().overrides.len(),
        1,
        "a refused override changes nothing"
    );
    book.set_override(
        ov("gz-02", None, OverrideKind::Fail, None),
        true,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(book.snapshot().overrides.len(), 2);
}

#[test]
fn unknown_names_are_refused() {
    let mut book = up_book();
    let now = SystemTime::now();
    assert!(matches!(
        book.set_override(ov("nope", None, OverrideKind::Fail, None), true, now),
        Err(OverrideError::UnknownCluster(_))
    ));
    assert!(matches!(
        book.set_override(
            ov("gz-01", Some("x.cn"), OverrideKind::Fail, None),
            true,
            now
        ),
        Err(OverrideError::UnknownApp(_))
    ));
    assert!(matches!(
        book.clear_override("gz-01", None, now),
        Err(OverrideError::NotFound { .. })
    ));
}

#[test]
fn a_new_override_replaces_the_one_in_its_slot() {
    let mut book = up_book();
    let now = SystemTime::now();
    book.set_override(ov("gz-01", None, OverrideKind::Drain, None), false, now)
        .unwrap();
    book.set_override(ov("gz-01", None, OverrideKind::Fail, None), false, now)
        .unwrap();
    assert_eq!(book.snapshot().overrides.len(), 1);
    assert_eq!(book.snapshot().overrides[0].kind, OverrideKind::Fail);
}

#[test]
fn overrides_lift_themselves_at_expiry() {
    let mut book = up_book();
    let now = SystemTime::now();
    let at = now + Duration::from_secs(60);
    book.set_override(ov("gz-01", None, OverrideKind::Drain, Some(at)), false, now)
        .unwrap();
    assert_eq!(book.next_expiry(), Some(at));
    assert!(book.expire(now).0.is_empty());
    let (expired, t) = book.expire(at);
    assert_eq!(expired.len(), 1);
    assert_eq!(t[0].to, State::Up);
    assert_eq!(book.next_expiry(), None);
}

#[test]
fn restore_resumes_saved_states_and_drops_stale_overrides() {
    let mut book = HealthBook::new(inventory(), SystemTime::now());
    let now = SystemTime::now();
    let saved = |app: &str, cluster: &str, _vip: std::net::IpAddr| {
        (app == "tke-demo.cn" && cluster == "gz-01").then_some(State::Down)
    };
    let overrides = vec![
        ov("gz-02", None, OverrideKind::Drain, None),
        ov("gone-cluster", None, OverrideKind::Drain, None),
        ov(
            "gz-02",
            Some("tke-demo.cn"),
            OverrideKind::Fail,
            Some(now - Duration::from_secs(1)),
        ),
    ];
    book.restore(saved, overrides, now);
    let s = book.snapshot();
    assert_eq!(s.targets[0].state, State::Down, "saved state, not Unknown");
    assert_eq!(
        s.overrides.len(),
        1,
        "unknown cluster and expired override dropped"
    );
    assert_eq!(s.targets[1].state, State::Down);
    // A restored Down endpoint needs a full `rise` run to come back.
    assert_eq!(book.observe(report(0, true)), None);
    assert!(book.observe(report(0, true)).is_some());
}

#[tokio::test]
async fn an_override_is_acknowledged_only_once_persisted() {
    struct Failing;
    impl Persist for Failing {
        fn save(&self, _: &Inventory, _: &HealthSnapshot) -> Result<(), String> {
            Err("disk full".to_owned())
        }
    }
    let inv = inventory();
    let book = HealthBook::new(inv.clone(), SystemTime::now());
    let (tx, rx) = mpsc::channel(16);
    let (pub_tx, pub_rx) = watch::channel(Arc::new(book.snapshot().clone()));
    let task = tokio::spawn(run(
        book,
        rx,
        pub_tx,
        Arc::new(Metrics::new()),
        Some(Arc::new(Failing)),
    ));
    let (reply, answer) = tokio::sync::oneshot::channel();
    tx.send(HealthInput::SetOverride {
        ov: ov("gz-01", None, OverrideKind::Drain, None),
        force: true,
        reply,
    })
    .await
    .unwrap();
    let err = answer.await.unwrap().unwrap_err();
    assert!(
        matches!(err, OverrideError::NotPersisted(ref e) if e == "disk full"),
        "{err}"
    );
    drop(tx);
    task.await.unwrap();
    assert!(
        pub_rx.borrow().overrides.is_empty(),
        "not saved, so not applied"
    );
    assert_eq!(pub_rx.borrow().targets[0].state, State::Unknown);
}

/// A view of `gz-01`'s first VIP (endpoint 0) from instance `name`, saying `state`.
/// The admin peer `http://p{i+1}`.
fn admin_peer(i: usize) -> quorum::PeerRef {
    quorum::PeerRef {
        url: format!("http://p{}", i + 1).into(),
        via: quorum::Via::Admin,
    }
}

fn peer_view(name: &str, state: State) -> quorum::View {
    quorum::View {
        instance: name.to_owned(),
        sequence: 1,
        at: SystemTime::now(),
        endpoints: vec![quorum::ViewEndpoint {
            app: "tke-demo.cn".into(),
            cluster: "gz-01".into(),
            vip: "127.0.1.1".parse().unwrap(),
            state,
        }],
    }
}

#[test]
fn a_quorum_combines_post_hysteresis_views_and_says_so() {
    let rule = crate::model::QuorumRule {
        required: crate::model::Required::Majority,
        fresh_within: Duration::from_secs(60),
    };
    let urls = ["http://p1".to_owned(), "http://p2".to_owned()];
    let now = SystemTime::now();
    let mut book =
        HealthBook::new(inventory(), now).with_quorum(quorum::Peers::new("me".into(), rule, &urls));
    // Only endpoint 0 (of gz-01's two VIPs) is probed here; endpoint 1 stays down.
    book.observe(report(1, false));
    book.observe(report(0, true));
    assert!(
        book.peer_view(&admin_peer(0), Ok(peer_view("p1", State::Up)), now, now)
            .is_empty()
    );
    book.peer_view(&admin_peer(1), Ok(peer_view("p2", State::Up)), now, now);
    // Our probes fail past `fall`: our view says down, the quorum (2 of 3 up) says up.
    book.observe(report(0, false));
    assert_eq!(book.observe(report(0, false)), None);
    let e = &book.snapshot().endpoints[0];
    assert_eq!((e.own, e.state), (State::Down, State::Up));
    assert_eq!(
        e.votes.map(|v| (v.views, v.down, v.needed)),
        Some((3, 1, 2))
    );
    assert_eq!(book.snapshot().targets[0].own, State::Down);
    assert_eq!(book.snapshot().targets[0].probed, State::Up);
    // One peer's view, after its own rise/fall, says down: a majority, and the cause says
    // it was the quorum.
    let t = book.peer_view(&admin_peer(0), Ok(peer_view("p1", State::Down)), now, now);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].to, t[0].cause.clone()), (State::Down, Cause::Quorum));
    // Our own probe passes once: our view keeps its hysteresis (rise 2), nothing moves.
    assert_eq!(book.observe(report(0, true)), None);
    assert_eq!(book.snapshot().endpoints[0].own, State::Down);
    // The second pass moves our view up; with p2 that is 2 of 3 up: back up by quorum.
    let t = book.observe(report(0, true)).unwrap();
    assert_eq!((t.to, t.cause), (State::Up, Cause::Quorum));
    // Overrides stay local and win over the quorum.
    book.set_override(ov("gz-01", None, OverrideKind::Drain, None), true, now)
        .unwrap();
    assert_eq!(book.snapshot().targets[0].state, State::Down);
    assert_eq!(book.snapshot().targets[0].probed, State::Up);
    // Both peers go stale: ours alone decides again, without votes.
    let t = book.refresh_quorum(now + Duration::from_secs(61));
    assert!(t.is_empty(), "held down by the override: {t:?}");
    assert_eq!(book.snapshot().endpoints[0].votes, None);
    assert_eq!(
        book.snapshot().quorum.as_ref().map(quorum::Peers::fallback),
        Some(true)
    );
}
