//! The `geo` policy with `[geo] database`: clients no subnet holds are placed by the
//! database's country, else its continent; subnets win; the ECS scope is the database
//! network's length, raised past the subnets nested in it, capped by what the client said.

use std::net::IpAddr;
use std::path::Path;

use hickory_proto::rr::{LowerName, Name, RecordType};
use proptest::prelude::*;

use super::AnswerTable;
use super::fixtures::{health, inventory};
use super::geo::{Client, GeoIndex, Located, Rule};
use super::geo_tests::{BJ, FRA, GZ, SH, geo_inventory, ip, subnet};
use crate::geodb::Code;
use crate::health::State::*;
use crate::model::Inventory;

use crate::mmdb_writer::Writer;

/// CN at 10/8 and 20/8 (JP carved out of it), Europe at 30/8, the US at 40/8, and CN at
/// 2001:db8:2::/48.
fn write_database(path: &Path) {
    Writer::countries(&[
        ("10.0.0.0/8", Some("CN"), "AS"),
        ("20.0.0.0/8", Some("CN"), "AS"),
        ("20.1.0.0/16", Some("JP"), "AS"),
        ("30.0.0.0/8", Some("DE"), "EU"),
        ("30.5.0.0/16", Some("FR"), "EU"),
        ("40.0.0.0/8", Some("US"), "NA"),
        ("2001:db8:2::/48", Some("CN"), "AS"),
    ])
    .write(path);
}

/// Guangzhou has CN; Shanghai the rest of Asia; Beijing a subnet inside the database's
/// CN network; Frankfurt a subnet inside its CN network and Europe.
fn db_inventory(dir: &Path, extra_geo: &str) -> Inventory {
    let path = dir.join("GeoLite2-Country.mmdb");
    write_database(&path);
    inventory(&format!(
        r#"
[geo]
database = {path:?}
{extra_geo}
[[geo.region]]
name = "guangzhou"
subnets = ["2001:db8:1::/48"]
countries = ["CN"]
[[geo.region]]
name = "shanghai"
continents = ["AS"]
[[geo.region]]
name = "beijing"
subnets = ["20.200.0.0/16"]
[[geo.region]]
name = "frankfurt"
subnets = ["10.4.0.0/16"]
continents = ["EU"]
[[cluster]]
name = "gz-01"
region = "guangzhou"
vips = ["127.0.1.1"]
[[cluster]]
name = "sh-01"
region = "shanghai"
vips = ["127.0.1.2"]
[[cluster]]
name = "bj-01"
region = "beijing"
vips = ["127.0.1.3"]
[[cluster]]
name = "fra-01"
region = "frankfurt"
vips = ["127.0.1.4"]
[[app]]
name = "tke-demo.cn"
policy = "geo"
probe = {{ kind = "tcp", port = 80 }}
"#
    ))
}

/// (region, rule, matched network, scope)
fn placed(l: Located) -> (Option<usize>, Rule, Option<String>, u8) {
    (
        l.region,
        l.rule,
        l.matched.map(|(a, n)| format!("{a}/{n}")),
        l.scope,
    )
}

fn net(s: &str) -> Option<String> {
    Some(s.to_owned())
}

#[test]
fn the_database_places_clients_by_country_then_continent() {
    let dir = tempfile::tempdir().unwrap();
    let geo = GeoIndex::build(&db_inventory(dir.path(), "").geo);
    let at = |c| placed(geo.locate(c));
    // CN: Guangzhou's country. The rest of 20/8 is one network with CN less JP's /16:
    // 20.2.0.0/15 holds the client.
    assert_eq!(
        at(subnet("20.2.0.0/24")),
        (Some(GZ), Rule::Country, net("20.2.0.0/15"), 15)
    );
    let l = geo.locate(subnet("20.2.0.0/24"));
    let place = l.database.unwrap().place.unwrap();
    assert_eq!(
        (place.country, place.continent),
        (Code::parse("CN"), Code::parse("AS"))
    );
    // JP is no region's country: its continent, Asia, is Shanghai's.
    assert_eq!(
        at(subnet("20.1.5.0/24")),
        (Some(SH), Rule::Continent, net("20.1.0.0/16"), 16)
    );
    // DE and FR by continent.
    assert_eq!(
        at(subnet("30.5.1.0/24")),
        (Some(FRA), Rule::Continent, net("30.5.0.0/16"), 16)
    );
    // The resolver's own address: scope 0, the answer is the resolver's alone.
    assert_eq!(
        at(Client::Resolver(ip("20.1.5.7"))),
        (Some(SH), Rule::Continent, net("20.1.0.0/16"), 0)
    );
    // A dual-stack socket's IPv4-mapped source is an IPv4 client.
    assert_eq!(
        at(Client::Resolver(ip("::ffff:20.1.5.7"))),
        (Some(SH), Rule::Continent, net("20.1.0.0/16"), 0)
    );
}

#[test]
fn subnets_win_over_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let geo = GeoIndex::build(&db_inventory(dir.path(), "").geo);
    let at = |c| placed(geo.locate(c));
    // The database says CN (Guangzhou); Frankfurt's subnet says otherwise, and wins
    // without the database being asked.
    assert_eq!(
        at(subnet("10.4.1.0/24")),
        (Some(FRA), Rule::Subnet, net("10.4.0.0/16"), 16)
    );
    assert_eq!(geo.locate(subnet("10.4.1.0/24")).database, None);
    assert_eq!(
        at(subnet("20.200.1.0/24")),
        (Some(BJ), Rule::Subnet, net("20.200.0.0/16"), 16)
    );
    // A CN network holding Beijing's subnet: the answer holds for the /16 around the
    // client, not the whole /9, whose clients in 20.200/16 go elsewhere.
    assert_eq!(
        at(subnet("20.130.0.0/24")),
        (Some(GZ), Rule::Country, net("20.128.0.0/9"), 16)
    );
    // The same for the database's 10.0.0.0/8 around Frankfurt's 10.4.0.0/16.
    assert_eq!(
        at(subnet("10.1.0.0/24")),
        (Some(GZ), Rule::Country, net("10.0.0.0/8"), 16)
    );
}

#[test]
fn the_scope_never_exceeds_what_the_client_said_or_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let geo = GeoIndex::build(&db_inventory(dir.path(), "ecs_ipv4_prefix = 20").geo);
    let at = |c| placed(geo.locate(c));
    // A /12 source holds networks of several countries: the answer is that of its first
    // address (20.0.0.0/16, CN) and holds for what the client said.
    assert_eq!(
        at(subnet("20.0.0.0/12")),
        (Some(GZ), Rule::Country, net("20.0.0.0/16"), 12)
    );
    // A /32 is believed as a /20, and the network that matched is shorter.
    let l = geo.locate(subnet("20.1.5.7/32"));
    assert_eq!(l.believed, (ip("20.1.0.0"), 20));
    assert_eq!(
        placed(l),
        (Some(SH), Rule::Continent, net("20.1.0.0/16"), 16)
    );
}

#[test]
fn clients_the_database_puts_in_no_region_go_to_the_default_region() {
    let dir = tempfile::tempdir().unwrap();
    let inv = db_inventory(dir.path(), "");
    let geo = GeoIndex::build(&inv.geo);
    // The US is no region's: unmapped, but explain can still tell where it is.
    let l = geo.locate(subnet("40.1.0.0/24"));
    assert_eq!(placed(l), (None, Rule::Unmapped, None, 8));
    let found = l.database.unwrap();
    assert_eq!(found.network, (ip("40.0.0.0"), 8));
    assert_eq!(found.place.unwrap().country, Code::parse("US"));
    // Nowhere in the database: the empty network around it scopes the answer.
    let l = geo.locate(subnet("50.0.0.0/24"));
    assert_eq!(placed(l), (None, Rule::Unmapped, None, 4));
    assert_eq!(l.database.unwrap().network, (ip("48.0.0.0"), 4));
    assert_eq!(l.database.unwrap().place, None);

    let dir = tempfile::tempdir().unwrap();
    let inv = db_inventory(dir.path(), "default_region = \"beijing\"");
    let geo = GeoIndex::build(&inv.geo);
    assert_eq!(
        placed(geo.locate(subnet("40.1.0.0/24"))),
        (Some(BJ), Rule::Default, None, 8)
    );
}

#[test]
fn ipv6_clients_are_placed_by_the_ipv6_tree() {
    let dir = tempfile::tempdir().unwrap();
    let geo = GeoIndex::build(&db_inventory(dir.path(), "").geo);
    let at = |c| placed(geo.locate(c));
    assert_eq!(
        at(subnet("2001:db8:2:100::/56")),
        (Some(GZ), Rule::Country, net("2001:db8:2::/48"), 48)
    );
    assert_eq!(
        at(subnet("2001:db8:1:100::/56")),
        (Some(GZ), Rule::Subnet, net("2001:db8:1::/48"), 48)
    );
    // A /64 is believed as the default cap, /56.
    let l = geo.locate(subnet("2001:db8:2:1ff:2::/64"));
    assert_eq!(l.believed, (ip("2001:db8:2:100::"), 56));
    assert_eq!(l.scope, 48);
    // IPv4 clients live under ::/96 of the tree; the network is reported as IPv4.
    assert_eq!(at(subnet("20.1.5.0/24")).2, net("20.1.0.0/16"),);
}

#[test]
fn the_table_answers_database_clients_for_their_region_with_the_scope() {
    let dir = tempfile::tempdir().unwrap();
    let inv = db_inventory(dir.path(), "");
    let table = AnswerTable::build(&health(&inv, &[Up, Up, Up, Up]), 1);
    let name = LowerName::new(&Name::from_ascii("tke-demo.cn.").unwrap());
    let answer = |client| {
        let r = table.lookup(&name, RecordType::A, Some(client));
        let ips: Vec<String> = r.answers().map(|r| r.data.to_string()).collect();
        (ips, r.scope())
    };
    assert_eq!(
        answer(subnet("20.2.0.0/24")),
        (vec!["127.0.1.1".into()], 15)
    );
    assert_eq!(
        answer(subnet("20.1.5.0/24")),
        (vec!["127.0.1.2".into()], 16)
    );
    assert_eq!(
        answer(subnet("20.200.5.0/24")),
        (vec!["127.0.1.3".into()], 16)
    );
    // 30.0.0.0/14: the part of 30/8 (DE) that FR's 30.5/16 does not split.
    assert_eq!(
        answer(subnet("30.1.0.0/24")),
        (vec!["127.0.1.4".into()], 14)
    );
}

/// A database no region lists `countries` or `continents` for places no one: the index
/// leaves it out, so clients are placed and scoped as without it (the ECS scope is the
/// matched subnet's, else what the client said, 0 for the resolver's own address), not
/// narrowed to a database network the answer does not depend on.
#[test]
fn a_database_no_region_lists_codes_for_is_not_looked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoLite2-Country.mmdb");
    write_database(&path);
    let with = geo_inventory(&format!("database = {path:?}"), true);
    assert!(with.geo.database.is_some());
    assert!(with.geo.database_unused() && with.geo.database_in_use().is_none());
    let without = geo_inventory("", true);
    let (with_db, without_db) = (GeoIndex::build(&with.geo), GeoIndex::build(&without.geo));
    let clients = [
        subnet("20.2.0.0/24"),
        subnet("10.5.0.0/24"),
        subnet("10.1.2.0/24"),
        subnet("30.5.1.0/24"),
        subnet("2001:db8:2:100::/56"),
        subnet("20.0.0.0/8"),
        Client::Resolver(ip("20.1.5.7")),
    ];
    for client in clients {
        assert_eq!(
            with_db.locate(client),
            without_db.locate(client),
            "{client:?}"
        );
    }
    let at = |c| placed(with_db.locate(c));
    // In the database's CN 20.2.0.0/15, but no region has CN: the client's /24, not /15.
    assert_eq!(at(subnet("20.2.0.0/24")), (None, Rule::Unmapped, None, 24));
    // 10/8 holds subnets up to /20: still the client's /24, not /20.
    assert_eq!(at(subnet("10.5.0.0/24")), (None, Rule::Unmapped, None, 24));
    assert_eq!(
        at(subnet("10.1.2.0/24")),
        (Some(GZ), Rule::Subnet, net("10.1.0.0/16"), 20)
    );
    assert_eq!(
        at(Client::Resolver(ip("20.1.5.7"))),
        (None, Rule::Unmapped, None, 0)
    );
    assert_eq!(with_db.locate(subnet("20.2.0.0/24")).database, None);

    // The table serves that scope.
    let table = AnswerTable::build(&health(&with, &[Up, Up, Up]), 1);
    let name = LowerName::new(&Name::from_ascii("tke-demo.cn.").unwrap());
    let scope = |client| table.lookup(&name, RecordType::A, Some(client)).scope();
    assert_eq!(scope(subnet("20.2.0.0/24")), 24);
    assert_eq!(scope(Client::Resolver(ip("20.2.0.1"))), 0);
}

proptest! {
    /// The scope is honest: every client subnet that shares the first `scope` bits with
    /// one placed with a scope shorter than its source gets the same region.
    #[test]
    fn clients_within_the_scope_get_the_same_region(
        first in prop_oneof![Just(10u32), Just(20), Just(30), Just(40), Just(50)],
        a in any::<u32>(),
        b in any::<u32>(),
        source in 1u8..=32,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let geo = GeoIndex::build(&db_inventory(dir.path(), "").geo);
        let addr = (first << 24) | (a >> 8);
        let l = geo.locate(Client::Subnet(IpAddr::V4(addr.into()), source));
        prop_assert!(l.scope <= source.min(24));
        // Another address with the same first `scope` bits.
        let keep = if l.scope == 0 { 0 } else { u32::MAX << (32 - u32::from(l.scope)) };
        let other = (addr & keep) | (b & !keep);
        let o = geo.locate(Client::Subnet(IpAddr::V4(other.into()), source));
        prop_assert_eq!(l.region, o.region, "{:?} vs {:?}", l, o);
    }
}
