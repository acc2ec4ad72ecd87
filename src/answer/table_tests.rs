use hickory_proto::rr::{LowerName, Name, RData, RecordType};

use super::fixtures::{health, inventory, two_clusters};
use super::{AnswerTable, Outcome};
use crate::health::State::*;

fn name(s: &str) -> LowerName {
    LowerName::new(&Name::from_ascii(s).unwrap())
}

fn table(policy: &str, states: &[crate::health::State]) -> AnswerTable {
    let inv = two_clusters(policy);
    AnswerTable::build(&health(&inv, states), 2026112901)
}

fn rdata(t: &AnswerTable, q: &str, qtype: RecordType) -> Vec<String> {
    t.lookup(&name(q), qtype, None)
        .answers()
        .map(|r| r.data.to_string())
        .collect()
}

#[test]
fn app_name_answers_with_the_planned_vip() {
    let t = table("failover", &[Up, Up]);
    let r = t.lookup(&name("tke-demo.cn."), RecordType::A, None);
    assert_eq!(r.outcome, Outcome::Answer);
    assert_eq!(rdata(&t, "tke-demo.cn.", RecordType::A), vec!["127.0.1.1"]);
    let t = table("failover", &[Down, Up]);
    assert_eq!(rdata(&t, "TKE-Demo.CN.", RecordType::A), vec!["127.0.1.2"]);
}

#[test]
fn ipv4_only_app_gives_nodata_for_aaaa() {
    let t = table("failover", &[Up, Up]);
    let r = t.lookup(&name("tke-demo.cn."), RecordType::AAAA, None);
    assert_eq!(r.outcome, Outcome::NoData);
    assert_eq!(r.answers().count(), 0);
    assert!(matches!(r.soa.unwrap().data, RData::SOA(_)));
}

#[test]
fn missing_names_are_nxdomain_with_the_negative_soa() {
    let t = table("failover", &[Up, Up]);
    let r = t.lookup(&name("nothing.tke-demo.cn."), RecordType::A, None);
    assert_eq!(r.outcome, Outcome::NxDomain);
    let soa = r.soa.unwrap();
    // RFC 2308: negative TTL is min(SOA TTL 300, MINIMUM 60).
    assert_eq!(soa.ttl, 60);
    let RData::SOA(s) = &soa.data else { panic!() };
    assert_eq!(s.serial, 2026112901);
    assert_eq!(s.minimum, 60);
}

#[test]
fn empty_non_terminals_are_nodata() {
    let t = table("failover", &[Up, Up]);
    assert_eq!(
        t.lookup(&name("a.b.tke-demo.cn."), RecordType::A, None)
            .outcome,
        Outcome::NoData
    );
    assert_eq!(
        t.lookup(&name("b.tke-demo.cn."), RecordType::TXT, None)
            .outcome,
        Outcome::NoData
    );
    assert_eq!(
        rdata(&t, "deep.a.b.tke-demo.cn.", RecordType::TXT),
        vec!["x"]
    );
}

#[test]
fn names_outside_our_zones_are_refused() {
    let t = table("failover", &[Up, Up]);
    for q in ["example.com.", "cn.", "xtke-demo.cn."] {
        assert_eq!(
            t.lookup(&name(q), RecordType::A, None).outcome,
            Outcome::Refused,
            "{q}"
        );
    }
}

#[test]
fn cnames_are_followed_inside_our_zones() {
    let t = table("failover", &[Down, Up]);
    assert_eq!(
        rdata(&t, "www.tke-demo.cn.", RecordType::A),
        vec!["tke-demo.cn.", "127.0.1.2"]
    );
    // Leaving our zones: the CNAME alone.
    assert_eq!(
        rdata(&t, "out.tke-demo.cn.", RecordType::A),
        vec!["elsewhere.example.net."]
    );
    // Asking for the CNAME itself.
    assert_eq!(
        rdata(&t, "www.tke-demo.cn.", RecordType::CNAME),
        vec!["tke-demo.cn."]
    );
}

#[test]
fn ns_and_mx_carry_glue_for_names_we_serve() {
    let t = table("failover", &[Up, Up]);
    let r = t.lookup(&name("tke-demo.cn."), RecordType::NS, None);
    assert_eq!(r.answers().count(), 2);
    let glue: Vec<String> = r
        .additional
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(glue, vec!["ns1.tke-demo.cn. 127.0.0.1"]);
    let r = t.lookup(&name("tke-demo.cn."), RecordType::MX, None);
    let glue: Vec<String> = r.additional.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(glue, vec!["2001:db8::25"]);
}

#[test]
fn soa_and_static_records_are_served() {
    let t = table("failover", &[Up, Up]);
    let soa = rdata(&t, "tke-demo.cn.", RecordType::SOA);
    assert_eq!(soa.len(), 1);
    assert!(
        soa[0].starts_with("ns1.tke-demo.cn. hostmaster.tke-demo.cn. 2026112901"),
        "{soa:?}"
    );
    assert_eq!(
        rdata(&t, "info.tke-demo.cn.", RecordType::TXT),
        vec!["served by gslb"]
    );
}

#[test]
fn round_robin_rotates_between_queries() {
    let t = table("round-robin", &[Up, Up]);
    let firsts: Vec<String> = (0..4)
        .map(|_| rdata(&t, "tke-demo.cn.", RecordType::A)[0].clone())
        .collect();
    assert_eq!(
        firsts,
        vec!["127.0.1.1", "127.0.1.2", "127.0.1.1", "127.0.1.2"]
    );
    // Static address sets rotate too.
    let a = rdata(&t, "pool.tke-demo.cn.", RecordType::A);
    let b = rdata(&t, "pool.tke-demo.cn.", RecordType::A);
    assert_ne!(a, b);
}

#[test]
fn weighted_answers_in_proportion() {
    let t = table("weighted", &[Up, Up]);
    let first = (0..400)
        .filter(|_| rdata(&t, "tke-demo.cn.", RecordType::A) == vec!["127.0.1.1"])
        .count();
    assert_eq!(first, 300);
}

#[test]
fn any_is_answered_with_one_record_set() {
    let t = table("failover", &[Up, Up]);
    let r = t.lookup(&name("tke-demo.cn."), RecordType::ANY, None);
    assert_eq!(r.outcome, Outcome::Answer);
    let types: std::collections::HashSet<RecordType> =
        r.answers().map(|r| r.record_type()).collect();
    assert_eq!(types.len(), 1);
}

#[test]
fn the_table_reports_each_apps_plan() {
    let inv = inventory(
        r#"
[[cluster]]
name = "a"
vips = ["10.0.0.1"]
[[app]]
name = "api.tke-demo.cn"
probe = { kind = "tcp", port = 80 }
"#,
    );
    let t = AnswerTable::build(&health(&inv, &[Down]), 1);
    assert!(t.apps[0].fail_open);
    assert_eq!(
        rdata(&t, "api.tke-demo.cn.", RecordType::A),
        vec!["10.0.0.1"]
    );
}

#[test]
fn a_zone_keeps_its_serial_until_its_content_changes() {
    let inv = two_clusters("failover");
    let serial = |t: &AnswerTable| {
        let soa = t.lookup(&name("tke-demo.cn."), RecordType::SOA, None);
        match &soa.answers().next().unwrap().data {
            RData::SOA(s) => s.serial,
            other => panic!("{other:?}"),
        }
    };
    let first = AnswerTable::build_versioned(&health(&inv, &[Up, Up]), &Default::default(), 1000);
    assert_eq!(serial(&first), 1000);
    assert_eq!(first.serial_of(0), Some(1000));
    // Same answers (the standby's state moved, not the answer): same serial, same digest.
    let same = AnswerTable::build_versioned(&health(&inv, &[Up, Down]), &first.versions, 2000);
    assert_eq!(serial(&same), 1000);
    assert_eq!(same.versions, first.versions);
    // Failover: a new serial, in the SOA, the negative answers and the transfer copy.
    let moved = AnswerTable::build_versioned(&health(&inv, &[Down, Up]), &same.versions, 2000);
    assert_eq!(serial(&moved), 2000);
    let nx = moved.lookup(&name("nothing.tke-demo.cn."), RecordType::A, None);
    assert!(matches!(&nx.soa.unwrap().data, RData::SOA(s) if s.serial == 2000));
    let copy = moved.zone_copy(0).unwrap();
    assert_eq!(copy.serial, 2000);
    let a: Vec<String> = (copy.records.iter())
        .filter(|r| r.record_type() == RecordType::A && r.name.to_ascii() == "tke-demo.cn.")
        .map(|r| r.data.to_string())
        .collect();
    assert_eq!(a, vec!["127.0.1.2"]);
    // Back to the first answers: the serial still only moves up.
    let back = AnswerTable::build_versioned(&health(&inv, &[Up, Up]), &moved.versions, 2000);
    assert_eq!(serial(&back), 2001);
}

#[test]
fn a_transfer_copy_holds_every_address_a_rotating_set_serves() {
    let inv = two_clusters("round-robin");
    let t = AnswerTable::build(&health(&inv, &[Up, Up]), 1);
    let copy = t
        .zone_copy(t.zone_index(&name("tke-demo.cn.")).unwrap())
        .unwrap();
    let mut a: Vec<String> = (copy.records.iter())
        .filter(|r| r.record_type() == RecordType::A && r.name.to_ascii() == "tke-demo.cn.")
        .map(|r| r.data.to_string())
        .collect();
    a.sort();
    assert_eq!(a, vec!["127.0.1.1", "127.0.1.2"]);
    assert!(
        copy.records
            .iter()
            .all(|r| r.record_type() != RecordType::SOA)
    );
    assert_eq!(t.zone_index(&name("www.tke-demo.cn.")), None);
}
