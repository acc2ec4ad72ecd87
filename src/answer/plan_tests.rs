use std::net::IpAddr;

use proptest::prelude::*;

use super::fixtures::{health, inventory, two_clusters};
use super::plan::{plan, rotations, schedule};
use crate::health::State::{self, *};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|s| ip(s)).collect()
}

#[test]
fn failover_answers_the_lowest_priority_healthy_cluster() {
    let inv = two_clusters("failover");
    let p = plan(&inv, 0, &health(&inv, &[Up, Up]));
    assert_eq!(p.v4, vec![ips(&["127.0.1.1"])]);
    assert!(!p.fail_open);
    let p = plan(&inv, 0, &health(&inv, &[Down, Up]));
    assert_eq!(p.v4, vec![ips(&["127.0.1.2"])]);
    assert!(p.v6.is_empty(), "IPv4-only app: no AAAA variants");
}

#[test]
fn failover_ties_answer_together_and_rotate() {
    let inv = inventory(
        r#"
[[cluster]]
name = "a"
vips = ["10.0.0.1"]
[[cluster]]
name = "b"
vips = ["10.0.0.2"]
[[cluster]]
name = "c"
vips = ["10.0.0.3"]
priority = 5
[[app]]
name = "tke-demo.cn"
probe = { kind = "tcp", port = 80 }
"#,
    );
    let p = plan(&inv, 0, &health(&inv, &[Up, Up, Up]));
    assert_eq!(
        p.v4,
        vec![
            ips(&["10.0.0.1", "10.0.0.2"]),
            ips(&["10.0.0.2", "10.0.0.1"])
        ]
    );
}

#[test]
fn unknown_is_answered_so_a_restart_never_blackholes() {
    let inv = two_clusters("failover");
    let p = plan(&inv, 0, &health(&inv, &[Unknown, Unknown]));
    assert_eq!(p.v4, vec![ips(&["127.0.1.1"])]);
    assert!(!p.fail_open);
}

#[test]
fn nothing_healthy_fails_open_with_every_vip() {
    for policy in ["failover", "round-robin", "weighted"] {
        let inv = two_clusters(policy);
        let p = plan(&inv, 0, &health(&inv, &[Down, Down]));
        assert!(p.fail_open, "{policy}");
        // Every variant holds every VIP, whatever the policy.
        for v in &p.v4 {
            let mut v = v.clone();
            v.sort();
            assert_eq!(v, ips(&["127.0.1.1", "127.0.1.2"]), "{policy}");
        }
    }
}

#[test]
fn fail_open_off_answers_nothing() {
    let mut inv = two_clusters("failover");
    inv.apps[0].fail_open = false;
    let p = plan(&inv, 0, &health(&inv, &[Down, Down]));
    assert!(!p.fail_open);
    assert!(p.v4.is_empty() && p.v6.is_empty());
}

#[test]
fn round_robin_answers_all_healthy_in_every_rotation() {
    let inv = two_clusters("round-robin");
    let p = plan(&inv, 0, &health(&inv, &[Up, Up]));
    assert_eq!(
        p.v4,
        vec![
            ips(&["127.0.1.1", "127.0.1.2"]),
            ips(&["127.0.1.2", "127.0.1.1"])
        ]
    );
    let p = plan(&inv, 0, &health(&inv, &[Up, Down]));
    assert_eq!(p.v4, vec![ips(&["127.0.1.1"])]);
}

#[test]
fn weighted_follows_the_weights() {
    let inv = two_clusters("weighted");
    let p = plan(&inv, 0, &health(&inv, &[Up, Up]));
    let first = p.v4.iter().filter(|v| v[0] == ip("127.0.1.1")).count();
    assert_eq!((first, p.v4.len()), (3, 4), "{:?}", p.v4);
    let p = plan(&inv, 0, &health(&inv, &[Up, Down]));
    assert!(p.v4.iter().all(|v| v == &ips(&["127.0.1.1"])));
}

#[test]
fn only_passing_vips_of_a_healthy_cluster_are_answered() {
    let inv = inventory(
        r#"
[[cluster]]
name = "a"
vips = ["10.0.0.1", "10.0.0.2", "2001:db8::1"]
[[app]]
name = "tke-demo.cn"
probe = { kind = "tcp", port = 80 }
"#,
    );
    let p = plan(&inv, 0, &health(&inv, &[Up, Down, Up]));
    assert_eq!(p.v4, vec![ips(&["10.0.0.1"])]);
    assert_eq!(p.v6, vec![ips(&["2001:db8::1"])]);
}

#[test]
fn schedule_is_smooth() {
    assert_eq!(schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(schedule(&[2, 2]), vec![0, 1]);
    assert!(schedule(&[]).is_empty());
}

#[test]
fn rotations_are_capped() {
    let r = rotations((0..40).collect::<Vec<u32>>());
    assert_eq!(r.len(), 16);
    assert!(r.iter().all(|v| v.len() == 40));
    assert!(rotations(Vec::<u32>::new()).is_empty());
}

proptest! {
    /// Whatever the health, an answer never holds a VIP that is down, unless the app is
    /// failing open; failover only answers the best priority that is usable; and the
    /// app fails open exactly when no target is usable.
    #[test]
    fn answers_follow_health(
        states in proptest::collection::vec(prop_oneof![Just(Up), Just(Down), Just(Unknown)], 4),
        policy in prop_oneof![Just("failover"), Just("round-robin"), Just("weighted")],
        prios in proptest::collection::vec(1u32..3, 3),
    ) {
        let inv = inventory(&format!(r#"
[[cluster]]
name = "a"
vips = ["10.0.0.1", "10.0.0.2"]
priority = {}
[[cluster]]
name = "b"
vips = ["10.0.0.3"]
priority = {}
weight = 2
[[cluster]]
name = "c"
vips = ["2001:db8::3"]
priority = {}
[[app]]
name = "tke-demo.cn"
policy = "{policy}"
probe = {{ kind = "tcp", port = 80 }}
"#, prios[0], prios[1], prios[2]));
        let h = health(&inv, &states);
        let p = plan(&inv, 0, &h);
        let usable: Vec<IpAddr> = inv.endpoints.iter().zip(&states)
            .filter(|(_, s)| s.is_usable()).map(|(e, _)| e.vip).collect();
        prop_assert_eq!(p.fail_open, usable.is_empty());
        if p.fail_open {
            prop_assert_eq!(p.addresses().len(), inv.endpoints.len());
        } else {
            for a in p.addresses() {
                prop_assert!(usable.contains(&a), "{a} answered while down");
            }
            prop_assert!(!p.addresses().is_empty());
        }
        if policy == "failover" && !p.fail_open {
            let best = inv.endpoints.iter().zip(&states)
                .filter(|(_, s)| s.is_usable())
                .map(|(e, _)| inv.clusters[inv.targets[e.target].cluster].priority)
                .min().unwrap();
            for &c in &p.clusters {
                prop_assert_eq!(inv.clusters[c].priority, best);
            }
        }
        let _: &[State] = &states;
    }

    /// Over one schedule, each index appears exactly in proportion to its weight.
    #[test]
    fn schedule_is_proportional(weights in proptest::collection::vec(1u32..10, 1..6)) {
        let s = schedule(&weights);
        let g = weights.iter().fold(0, |a, &b| gcd(a, b));
        prop_assert_eq!(s.len() as u32, weights.iter().sum::<u32>() / g);
        for (i, w) in weights.iter().enumerate() {
            prop_assert_eq!(s.iter().filter(|&&x| x == i).count() as u32, w / g);
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}
