//! The `geo` policy: client placement (longest prefix, ECS cap, scopes) and per-region
//! plans (own region, nearest region, failover order, fail-open), and the table serving
//! them.

use std::net::IpAddr;

use hickory_proto::rr::{LowerName, Name, RecordType};
use proptest::prelude::*;

use super::fixtures::{health, inventory};
use super::geo::{Client, GeoIndex, Rule};
use super::plan::{Via, plan};
use super::{AnswerTable, Outcome};
use crate::geo_regions;
use crate::health::State::{self, *};
use crate::model::Inventory;

/// Four regions (Frankfurt, added to the shared three, without a location), three
/// clusters, one `geo` app.
pub(super) fn geo_inventory(extra_geo: &str, fail_open: bool) -> Inventory {
    let regions = geo_regions::regions([&["2001:db8:1::/48"], &["10.1.128.0/20"], &[]]);
    let clusters = geo_regions::clusters(["127.0.1.1", "127.0.1.2", "127.0.1.3"]);
    inventory(&format!(
        r#"
[geo]
{extra_geo}
{regions}
[[geo.region]]
name = "frankfurt"
subnets = ["10.4.0.0/16"]
{clusters}
[[app]]
name = "tke-demo.cn"
policy = "geo"
fail_open = {fail_open}
probe = {{ kind = "tcp", port = 80 }}
"#
    ))
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An ECS client from `address/length`.
pub(super) fn subnet(s: &str) -> Client {
    let (a, l) = s.split_once('/').unwrap();
    Client::Subnet(ip(a), l.parse().unwrap())
}

// The fixtures' regions, in their order (the database tests' fixture keeps it).
pub(super) const GZ: usize = 0;
pub(super) const SH: usize = 1;
pub(super) const BJ: usize = 2;
pub(super) const FRA: usize = 3;

#[test]
fn clients_land_in_the_region_of_their_longest_matching_subnet() {
    let inv = geo_inventory("", true);
    let geo = GeoIndex::build(&inv.geo);
    let at = |c| {
        let l = geo.locate(c);
        (l.region, l.rule, l.scope)
    };
    // A /24 inside guangzhou's /16, outside the shanghai /20 nested in it: scope 20, not
    // 16, since a resolver must not serve this answer to clients of that /20.
    assert_eq!(at(subnet("10.1.2.0/24")), (Some(GZ), Rule::Subnet, 20));
    // Inside the nested /20: shanghai, scope 20.
    assert_eq!(at(subnet("10.1.130.0/24")), (Some(SH), Rule::Subnet, 20));
    assert_eq!(at(subnet("10.3.7.0/24")), (Some(BJ), Rule::Subnet, 16));
    assert_eq!(
        at(subnet("2001:db8:1:ff00::/56")),
        (Some(GZ), Rule::Subnet, 48)
    );
    // Matching nothing: in no region, and the answer holds for the client's subnet.
    assert_eq!(at(subnet("192.0.2.0/24")), (None, Rule::Unmapped, 24));
    // A source shorter than every subnet matches none of them.
    assert_eq!(at(subnet("10.0.0.0/8")), (None, Rule::Unmapped, 8));
    // The resolver's own address: same regions, scope 0 (no ECS to scope).
    assert_eq!(
        at(Client::Resolver(ip("10.2.9.9"))),
        (Some(SH), Rule::Subnet, 0)
    );
    assert_eq!(
        at(Client::Resolver(ip("::ffff:10.3.1.1"))),
        (Some(BJ), Rule::Subnet, 0)
    );
    // A /16 source inside guangzhou: the answer depends on the nested /20, which the
    // client did not say; the scope cannot be more than it said.
    assert_eq!(at(subnet("10.1.0.0/16")), (Some(GZ), Rule::Subnet, 16));
}

#[test]
fn ecs_prefixes_are_cut_to_the_cap() {
    let inv = geo_inventory("ecs_ipv4_prefix = 16\necs_ipv6_prefix = 40", true);
    let geo = GeoIndex::build(&inv.geo);
    // /32 is believed to /16 only: the nested shanghai /20 is out of sight.
    let l = geo.locate(subnet("10.1.130.7/32"));
    assert_eq!((l.region, l.scope), (Some(GZ), 16));
    assert_eq!(l.believed, (ip("10.1.0.0"), 16));
    // 2001:db8:1::/48 is longer than the IPv6 cap of 40: unmatched.
    let l = geo.locate(subnet("2001:db8:1::/56"));
    assert_eq!((l.region, l.rule, l.scope), (None, Rule::Unmapped, 40));
}

#[test]
fn unmatched_clients_go_to_the_default_region() {
    let inv = geo_inventory("default_region = \"beijing\"", true);
    let l = GeoIndex::build(&inv.geo).locate(subnet("192.0.2.0/24"));
    assert_eq!((l.region, l.rule, l.scope), (Some(BJ), Rule::Default, 24));
}

fn clusters_of(inv: &Inventory, h: &[State], region: usize) -> (Via, Vec<String>) {
    let p = plan(inv, 0, &health(inv, h));
    let r = &p.regions[region];
    (
        r.via,
        r.clusters
            .iter()
            .map(|&c| inv.clusters[c].name.clone())
            .collect(),
    )
}

#[test]
fn each_region_gets_its_own_clusters_while_they_are_healthy() {
    let inv = geo_inventory("", true);
    let all = [Up, Up, Up];
    assert_eq!(
        clusters_of(&inv, &all, GZ),
        (Via::Own, vec!["gz-01".into()])
    );
    assert_eq!(
        clusters_of(&inv, &all, SH),
        (Via::Own, vec!["sh-01".into()])
    );
    assert_eq!(
        clusters_of(&inv, &all, BJ),
        (Via::Own, vec!["bj-01".into()])
    );
    // Frankfurt has no cluster and no location: failover order.
    assert_eq!(
        clusters_of(&inv, &all, FRA),
        (Via::Failover, vec!["gz-01".into()])
    );
    // Clients in no region: failover order too.
    let p = plan(&inv, 0, &health(&inv, &all));
    assert_eq!(p.clusters, vec![0]);
}

#[test]
fn a_region_without_healthy_clusters_gets_the_nearest_region_that_has_some() {
    let inv = geo_inventory("", true);
    // Guangzhou down: Shanghai (~1200 km) is nearer than Beijing (~1900 km).
    assert_eq!(
        clusters_of(&inv, &[Down, Up, Up], GZ),
        (Via::Nearest(SH), vec!["sh-01".into()])
    );
    // Shanghai down too: Beijing.
    assert_eq!(
        clusters_of(&inv, &[Down, Down, Up], GZ),
        (Via::Nearest(BJ), vec!["bj-01".into()])
    );
    // Beijing down: Shanghai (~1070 km) before Guangzhou (~1900 km).
    assert_eq!(
        clusters_of(&inv, &[Up, Up, Down], BJ),
        (Via::Nearest(SH), vec!["sh-01".into()])
    );
    // Frankfurt, without a location, falls to failover order: the best priority up.
    assert_eq!(
        clusters_of(&inv, &[Down, Up, Up], FRA),
        (Via::Failover, vec!["sh-01".into()])
    );
}

#[test]
fn nothing_healthy_fails_open_in_every_region_or_answers_nothing() {
    let inv = geo_inventory("", true);
    let (via, clusters) = clusters_of(&inv, &[Down, Down, Down], SH);
    assert_eq!(via, Via::FailOpen);
    assert_eq!(clusters.len(), 3);
    let inv = geo_inventory("", false);
    assert_eq!(
        clusters_of(&inv, &[Down, Down, Down], SH),
        (Via::Nothing, Vec::<String>::new())
    );
}

#[test]
fn the_table_answers_each_client_for_its_region_with_the_scope() {
    let inv = geo_inventory("", true);
    let table = AnswerTable::build(&health(&inv, &[Up, Down, Up]), 1);
    let name = LowerName::new(&Name::from_ascii("tke-demo.cn.").unwrap());
    let answer = |client| {
        let r = table.lookup(&name, RecordType::A, client);
        let ips: Vec<String> = r.answers().map(|r| r.data.to_string()).collect();
        (ips, r.scope())
    };
    assert_eq!(
        answer(Some(subnet("10.1.2.0/24"))),
        (vec!["127.0.1.1".into()], 20)
    );
    // Shanghai's cluster is down: nearest is Beijing (~1070 km) over Guangzhou (~1210 km).
    assert_eq!(
        answer(Some(subnet("10.2.0.0/24"))),
        (vec!["127.0.1.3".into()], 16)
    );
    assert_eq!(
        answer(Some(subnet("10.3.3.0/24"))),
        (vec!["127.0.1.3".into()], 16)
    );
    assert_eq!(
        answer(Some(Client::Resolver(ip("10.3.3.3")))),
        (vec!["127.0.1.3".into()], 0)
    );
    // In no region: failover order, scope = what the client said.
    assert_eq!(
        answer(Some(subnet("192.0.2.0/24"))),
        (vec!["127.0.1.1".into()], 24)
    );
    // AAAA: no cluster has IPv6, NODATA whatever the region.
    let r = table.lookup(&name, RecordType::AAAA, Some(subnet("10.3.3.0/24")));
    assert_eq!(r.outcome, Outcome::NoData);
    // Static names do not depend on the client: scope 0.
    let info = LowerName::new(&Name::from_ascii("info.tke-demo.cn.").unwrap());
    let r = table.lookup(&info, RecordType::TXT, Some(subnet("10.3.3.0/24")));
    assert_eq!((r.outcome, r.scope()), (Outcome::Answer, 0));
}

proptest! {
    /// Whatever is up: a region answers its own healthy clusters when it has some; else
    /// only healthy clusters of one region, none nearer than it; fail-open only when
    /// nothing is healthy.
    #[test]
    fn region_plans_follow_health(states in proptest::collection::vec(
        prop_oneof![Just(Up), Just(Down), Just(Unknown)], 3)) {
        let inv = geo_inventory("", true);
        let h = health(&inv, &states);
        let p = plan(&inv, 0, &h);
        let healthy: Vec<usize> = (0..3).filter(|&c| states[c] != Down).collect();
        for (r, rp) in p.regions.iter().enumerate() {
            if healthy.is_empty() {
                prop_assert_eq!(rp.via, Via::FailOpen);
                prop_assert_eq!(rp.clusters.len(), 3);
                continue;
            }
            prop_assert!(rp.clusters.iter().all(|c| healthy.contains(c)));
            prop_assert!(!rp.clusters.is_empty());
            let own: Vec<usize> = healthy.iter().copied().filter(|&c| c == r).collect();
            if !own.is_empty() {
                prop_assert_eq!(rp.via, Via::Own);
                prop_assert_eq!(&rp.clusters, &own);
            } else if let Via::Nearest(n) = rp.via {
                let d = |x: usize| inv.geo.regions[r].distance_km(&inv.geo.regions[x]).unwrap();
                prop_assert!(healthy.iter().all(|&c| d(n) <= d(c)));
            } else {
                prop_assert_eq!(r, FRA);
                prop_assert_eq!(rp.via, Via::Failover);
            }
        }
    }
}
