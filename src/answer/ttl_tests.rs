use std::time::Duration;

use hickory_proto::rr::{LowerName, Name, RecordType};
use proptest::prelude::*;

use super::AnswerTable;
use super::fixtures::{health, inventory};
use super::ttl::{Unsteady, choose, endpoint, seconds};
use crate::health::State::{self, *};
use crate::health::{HealthSnapshot, Override, OverrideKind};
use crate::model::{Inventory, ProbeSpec, Workload};

/// Two clusters (gz-01 with two VIPs, gz-02 with one), ttl 30, `adaptive_ttl` as given
/// (`""` for none), rise 2, fall 3, recheck `recheck`.
fn app(adaptive: &str, recheck: &str) -> Inventory {
    inventory(&format!(
        r#"
[[cluster]]
name = "gz-01"
vips = ["127.0.1.1", "127.0.1.11"]
priority = 1
[[cluster]]
name = "gz-02"
vips = ["127.0.1.2"]
priority = 2
[[app]]
name = "tke-demo.cn"
ttl = 30
{adaptive}
probe = {{ kind = "tcp", port = 80, interval = "10s", timeout = "1s", rise = 2, fall = 3, recheck_interval = "{recheck}" }}
"#
    ))
}

fn adaptive(min: u32) -> Inventory {
    app(&format!("adaptive_ttl = {{ min = {min} }}"), "200ms")
}

/// A snapshot with endpoint states and streaks.
fn with_streaks(inv: &Inventory, states: &[(State, u32)]) -> HealthSnapshot {
    let plain: Vec<State> = states.iter().map(|s| s.0).collect();
    let mut h = health(inv, &plain);
    for (e, (_, streak)) in h.endpoints.iter_mut().zip(states) {
        e.streak = *streak;
    }
    h
}

fn spec(rise: u32, fall: u32, recheck_ms: u64) -> ProbeSpec {
    let mut p = adaptive(5).apps[0].probe.clone();
    (p.rise, p.fall, p.recheck_interval) = (rise, fall, Duration::from_millis(recheck_ms));
    p
}

#[test]
fn an_endpoint_is_unsteady_until_the_earliest_change_it_could_make() {
    let p = spec(2, 3, 200);
    let ms = Duration::from_millis;
    assert_eq!(endpoint(Up, 0, &p), None, "up and steady");
    assert_eq!(
        endpoint(Up, 1, &p),
        Some((Unsteady::Degrading { streak: 1, fall: 3 }, ms(400))),
        "two more failures, a recheck apart"
    );
    assert_eq!(
        endpoint(Up, 2, &p),
        Some((Unsteady::Degrading { streak: 2, fall: 3 }, ms(200)))
    );
    assert_eq!(
        endpoint(Down, 0, &p),
        Some((Unsteady::Down, ms(200))),
        "a pass may come at any probe, then rise - 1 rechecks"
    );
    assert_eq!(
        endpoint(Down, 1, &p),
        Some((Unsteady::Recovering { streak: 1, rise: 2 }, ms(200)))
    );
    assert_eq!(
        endpoint(Unknown, 0, &p),
        Some((Unsteady::Unprobed, Duration::ZERO)),
        "the first result decides at once"
    );
    assert_eq!(
        endpoint(Down, 0, &spec(1, 1, 200)),
        Some((Unsteady::Down, Duration::ZERO)),
        "rise 1: the next pass brings it back"
    );
}

#[test]
fn seconds_round_up_and_stay_between_min_and_ttl() {
    let ms = Duration::from_millis;
    assert_eq!(seconds(ms(400), 5, 30), 5, "clamped to the minimum");
    assert_eq!(seconds(ms(12_001), 5, 30), 13, "rounded up, never early");
    assert_eq!(seconds(ms(12_000), 5, 30), 12);
    assert_eq!(
        seconds(Duration::from_secs(600), 5, 30),
        30,
        "never above ttl"
    );
    assert_eq!(seconds(Duration::ZERO, 1, 30), 1);
    assert_eq!(seconds(Duration::MAX, 1, 30), 30);
}

#[test]
fn without_adaptive_ttl_the_ttl_is_fixed_whatever_the_health() {
    let inv = app("", "200ms");
    for states in [[Up, Up, Up], [Down, Down, Up], [Unknown, Unknown, Unknown]] {
        let t = choose(&inv, 0, &health(&inv, &states));
        assert_eq!((t.seconds, t.adaptive_min, t.unsteady), (30, None, None));
    }
    let t = choose(&inv, 0, &with_streaks(&inv, &[(Up, 2), (Up, 0), (Up, 0)]));
    assert_eq!(t.seconds, 30);
    assert_eq!(t.why(&inv, 0), "fixed: the app's ttl (no adaptive_ttl)");
}

#[test]
fn every_cluster_up_and_steady_answers_the_full_ttl() {
    let inv = adaptive(5);
    let t = choose(&inv, 0, &health(&inv, &[Up, Up, Up]));
    assert_eq!((t.seconds, t.adaptive_min, t.unsteady), (30, Some(5), None));
    assert!(t.why(&inv, 0).starts_with("every cluster is up and steady"));
}

#[test]
fn a_failing_vip_shortens_the_ttl_to_the_minimum_with_fast_rechecks() {
    let inv = adaptive(5);
    let t = choose(&inv, 0, &with_streaks(&inv, &[(Up, 0), (Up, 1), (Up, 0)]));
    assert_eq!(t.seconds, 5);
    let u = t.unsteady.unwrap();
    assert_eq!(
        (u.cluster, u.vip, u.kind),
        (
            0,
            Some("127.0.1.11".parse().unwrap()),
            Unsteady::Degrading { streak: 1, fall: 3 }
        )
    );
    assert_eq!(
        t.why(&inv, 0),
        "gz-01 127.0.1.11 is failing its probes (1 of 3 failures needed to go down) and could \
         change state in 400ms: adaptive, at least 5s, 30s once steady"
    );
}

#[test]
fn slow_rechecks_give_the_time_until_the_earliest_change() {
    let inv = app("adaptive_ttl = { min = 2 }", "6s");
    // Two more failures, 6 s apart: 12 s.
    let t = choose(&inv, 0, &with_streaks(&inv, &[(Up, 1), (Up, 0), (Up, 0)]));
    assert_eq!(t.seconds, 12);
    // A down standby may come back after one pass and one recheck (6 s), which is sooner
    // than a primary VIP with one failure of three (12 s): the soonest decides.
    let t = choose(&inv, 0, &with_streaks(&inv, &[(Up, 1), (Up, 0), (Down, 0)]));
    assert_eq!(t.seconds, 6);
    assert_eq!(t.unsteady.unwrap().kind, Unsteady::Down);
    assert_eq!(t.unsteady.unwrap().cluster, 1);
    // One failure short of fall: 6 s.
    let t = choose(&inv, 0, &with_streaks(&inv, &[(Up, 2), (Up, 0), (Up, 0)]));
    assert_eq!(t.seconds, 6);
    // A recovering VIP one pass short of rise: 6 s; with none yet, a pass may come at
    // the next probe and another 6 s later.
    let t = choose(
        &inv,
        0,
        &with_streaks(&inv, &[(Down, 1), (Down, 0), (Up, 0)]),
    );
    assert_eq!(t.seconds, 6);
    assert_eq!(
        t.unsteady.unwrap().kind,
        Unsteady::Recovering { streak: 1, rise: 2 }
    );
}

#[test]
fn a_down_cluster_keeps_the_ttl_short_until_it_is_back_and_steady() {
    let inv = adaptive(5);
    // Failed over: gz-01 down, answers from gz-02.
    let t = choose(&inv, 0, &health(&inv, &[Down, Down, Up]));
    assert_eq!(t.seconds, 5);
    assert_eq!(t.unsteady.unwrap().kind, Unsteady::Down);
    // A down standby counts too: its return changes nothing now, but the app is not
    // steady (the rule is "every cluster").
    let t = choose(&inv, 0, &health(&inv, &[Up, Up, Down]));
    assert_eq!(t.seconds, 5);
    // Unknown (a restart): the first result decides at once.
    let t = choose(&inv, 0, &health(&inv, &[Unknown, Up, Up]));
    assert_eq!(t.seconds, 5);
    assert_eq!(t.unsteady.unwrap().kind, Unsteady::Unprobed);
}

#[test]
fn overrides_and_workloads_hold_a_cluster_out_at_any_moment() {
    let inv = adaptive(3);
    let mut h = health(&inv, &[Up, Up, Up]);
    h.targets[1].overridden = Some(Override {
        cluster: "gz-02".to_owned(),
        app: None,
        kind: OverrideKind::Drain,
        reason: "node upgrade".to_owned(),
        set_by: "test".to_owned(),
        set_at: std::time::SystemTime::UNIX_EPOCH,
        expires_at: None,
    });
    h.targets[1].state = Down;
    let t = choose(&inv, 0, &h);
    assert_eq!(t.seconds, 3);
    let u = t.unsteady.unwrap();
    assert_eq!((u.cluster, u.vip, u.kind), (1, None, Unsteady::Overridden));
    assert!(
        t.why(&inv, 0)
            .contains("gz-02 is held out by an override and could change state at any moment"),
        "{}",
        t.why(&inv, 0)
    );

    let mut inv = adaptive(3);
    inv.targets[0].workload = Some(Workload {
        ready: false,
        detail: "Deployment qcbm/gw: 0/2 ready".to_owned(),
    });
    let t = choose(&inv, 0, &health(&inv, &[Up, Up, Up]));
    assert_eq!(t.unsteady.unwrap().kind, Unsteady::WorkloadsNotReady);
    assert_eq!(t.seconds, 3);
}

#[test]
fn with_workload_health_probes_do_not_unsettle_the_ttl() {
    let mut inv = adaptive(5);
    inv.apps[0].health = crate::model::HealthFrom::Workloads;
    for t in &mut inv.targets {
        t.workload = Some(Workload {
            ready: true,
            detail: String::new(),
        });
    }
    let t = choose(&inv, 0, &with_streaks(&inv, &[(Down, 1), (Up, 2), (Up, 0)]));
    assert_eq!((t.seconds, t.unsteady), (30, None));
    inv.targets[1].workload = None;
    let t = choose(&inv, 0, &health(&inv, &[Up, Up, Up]));
    assert_eq!(t.unsteady.unwrap().kind, Unsteady::WorkloadsUnknown);
}

#[test]
fn a_target_without_vips_is_never_answered_and_does_not_count() {
    let mut inv = adaptive(5);
    // Drop gz-02's VIP: its target has no endpoint (as a discovered cluster without an
    // ingress address).
    inv.endpoints.retain(|e| e.target != 1);
    let t = choose(&inv, 0, &health(&inv, &[Up, Up]));
    assert_eq!((t.seconds, t.unsteady), (30, None));
}

#[test]
fn the_table_serves_the_chosen_ttl() {
    let inv = adaptive(5);
    let peek = |t: &AnswerTable| -> Vec<u32> {
        let name = LowerName::new(&Name::from_ascii("tke-demo.cn.").unwrap());
        t.peek(&name, RecordType::A, None)
            .answers()
            .map(|r| r.ttl)
            .collect()
    };
    let steady = AnswerTable::build(&health(&inv, &[Up, Up, Up]), 1);
    assert_eq!(peek(&steady), vec![30, 30]);
    assert_eq!(steady.apps[0].ttl.seconds, 30);
    let degrading = AnswerTable::build(&with_streaks(&inv, &[(Up, 1), (Up, 0), (Up, 0)]), 2);
    assert_eq!(peek(&degrading), vec![5, 5], "same VIPs, shorter TTL");
    let failed_over = AnswerTable::build(&health(&inv, &[Down, Down, Up]), 3);
    assert_eq!(peek(&failed_over), vec![5]);
}

proptest! {
    /// Whatever the health, the TTL lies between the minimum and the app's ttl, and is
    /// the app's ttl exactly when every VIP is up with no disagreeing result.
    #[test]
    fn ttl_stays_in_bounds_and_is_full_only_when_steady(
        states in proptest::collection::vec(
            (prop_oneof![Just(Up), Just(Down), Just(Unknown)], 0u32..3), 3),
        min in 1u32..30,
        recheck_ms in 50u64..=10_000,
    ) {
        let inv = app(&format!("adaptive_ttl = {{ min = {min} }}"), &format!("{recheck_ms}ms"));
        let states: Vec<(State, u32)> = states
            .into_iter()
            .map(|(s, k)| (s, if s == Unknown { 0 } else { k }))
            .collect();
        let t = choose(&inv, 0, &with_streaks(&inv, &states));
        prop_assert!((min..=30).contains(&t.seconds));
        let steady = states.iter().all(|&(s, k)| s == Up && k == 0);
        prop_assert_eq!(t.unsteady.is_none(), steady);
        if steady {
            prop_assert_eq!(t.seconds, 30);
        }
    }
}
