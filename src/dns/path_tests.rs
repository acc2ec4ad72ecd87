//! The UDP fast path answers exactly as the general hickory path does, for every query it
//! takes; and it takes the common ones.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_server::net::xfer::Protocol;
use proptest::prelude::*;

use super::Handler;
use super::wire::{OUT_CAPACITY, PlainQuery};
use crate::answer::AnswerTable;
use crate::answer::fixtures::{health, inventory};
use crate::health::State::{Down, Up};
use crate::metrics::Metrics;

/// The fixture zone, an app on two clusters (with an adaptive TTL, shortened to 5 s: a VIP
/// of it is down), and an app with 40 VIPs (too large for 512 bytes) served in rotation.
fn handler() -> Handler {
    build_handler("")
}

/// The same, with `tke-demo.cn` signed by a fresh Ed25519 CSK.
pub(super) fn signed_handler() -> Handler {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("csk.pem");
    std::fs::write(&key, crate::dnssec::generate_pem("ed25519").unwrap()).unwrap();
    build_handler(&format!(
        "[zone.dnssec]\nkeys = [{{ file = {:?}, role = \"csk\" }}]\n",
        key.to_str().unwrap()
    ))
}

/// A `[geo] database` for the fixture: 10/8 in Germany (east and west's subnets win
/// there; 10.3/16 is west's by continent), 192.0.2/24 in China (east's country), the
/// US at 198.51.100/24 (no region's), and 2001:db8::/32 in Germany.
fn write_database(path: &std::path::Path) {
    crate::mmdb_writer::Writer::countries(&[
        ("10.0.0.0/8", Some("DE"), "EU"),
        ("192.0.2.0/24", Some("CN"), "AS"),
        ("198.51.100.0/24", Some("US"), "NA"),
        ("2001:db8::/32", Some("DE"), "EU"),
    ])
    .write(path);
}

/// The handler of the fixture; `dnssec` is TOML that signs the zone `tke-demo.cn`.
fn build_handler(dnssec: &str) -> Handler {
    let big: Vec<String> = (1..=40).map(|i| format!("\"10.0.0.{i}\"")).collect();
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("GeoLite2-Country.mmdb");
    write_database(&database);
    let inv = inventory(&format!(
        r#"
{dnssec}
[[cluster]]
name = "gz-01"
vips = ["127.0.1.1", "2001:db8::1"]
priority = 1
[[cluster]]
name = "gz-02"
vips = ["127.0.1.2"]
priority = 2
[[cluster]]
name = "big"
vips = [{}]
[[cluster]]
name = "east"
region = "east"
vips = ["127.0.2.1", "2001:db8::2:1"]
[[app]]
name = "tke-demo.cn"
clusters = ["gz-01", "gz-02"]
policy = "failover"
adaptive_ttl = {{ min = 5 }}
probe = {{ kind = "tcp", port = 80 }}
[[app]]
name = "many.tke-demo.cn"
clusters = ["big"]
policy = "round-robin"
probe = {{ kind = "tcp", port = 80 }}
[[app]]
name = "geo.tke-demo.cn"
clusters = ["gz-02", "east"]
policy = "geo"
probe = {{ kind = "tcp", port = 80 }}
[geo]
database = {database:?}
[[geo.region]]
name = "east"
subnets = ["10.2.0.0/16", "127.0.0.0/8"]
countries = ["CN"]
[[geo.region]]
name = "west"
subnets = ["10.1.0.0/16", "10.1.128.0/20"]
continents = ["EU"]
[[zone]]
name = "other.cn"
nameservers = ["ns1.tke-demo.cn"]
hostmaster = "hostmaster.other.cn"
records = [
  {{ name = "loop1", type = "CNAME", value = "loop2.other.cn" }},
  {{ name = "loop2", type = "CNAME", value = "loop1.other.cn" }},
  {{ name = "dangling", type = "CNAME", value = "gone.tke-demo.cn" }},
  {{ name = "alias.other.cn.", type = "CNAME", value = "many.tke-demo.cn" }},
  {{ name = "togeo", type = "CNAME", value = "geo.tke-demo.cn" }},
]
"#,
        big.join(", "),
        database = database.to_str().unwrap()
    ));
    let states = vec![Up; inv.endpoints.len()];
    let mut states = states;
    states[0] = Down; // the first VIP of gz-01 is down: answers exclude it
    let table = AnswerTable::build(&health(&inv, &states), 2026112901);
    Handler::new(
        Arc::new(ArcSwap::from_pointee(table)),
        Arc::new(Metrics::new()),
    )
}

const NAMES: &[&str] = &[
    "tke-demo.cn.",
    "TKE-Demo.CN.",
    "many.tke-demo.cn.",
    "www.tke-demo.cn.",
    "out.tke-demo.cn.",
    "info.tke-demo.cn.",
    "pool.tke-demo.cn.",
    "Pool.Tke-Demo.cn.",
    "ns1.tke-demo.cn.",
    "mail.tke-demo.cn.",
    "b.tke-demo.cn.",
    "a.b.tke-demo.cn.",
    "deep.a.b.tke-demo.cn.",
    "nothing.tke-demo.cn.",
    "x.y.Nothing.tke-demo.cn.",
    "example.org.",
    "cn.",
    "loop1.other.cn.",
    "dangling.other.cn.",
    "alias.other.cn.",
    "gone.tke-demo.cn.",
    "geo.tke-demo.cn.",
    "GEO.tke-demo.cn.",
    "togeo.other.cn.",
];

/// EDNS Client Subnet options sent with queries (option data, hex-free): none, and
/// subnets in each region by subnet and by the database, in none, /0, and the last
/// [`MALFORMED`] malformed ones.
const SUBNETS: &[Option<&[u8]>] = &[
    None,
    Some(&[0, 1, 24, 0, 10, 2, 3]),
    Some(&[0, 1, 24, 0, 10, 1, 130]),
    Some(&[0, 1, 32, 0, 10, 1, 2, 3]),
    Some(&[0, 1, 24, 0, 192, 0, 2]),
    Some(&[0, 1, 0, 0]),
    Some(&[0, 2, 48, 0, 0x20, 1, 0x0d, 0xb8, 0, 1]),
    Some(&[0, 1, 24, 0, 10, 3, 0]),
    Some(&[0, 1, 24, 0, 198, 51, 100]),
    Some(&[0, 1, 16, 0, 192, 0]),
    Some(&[0, 2, 56, 0, 0x20, 1, 0x0d, 0xb9, 0, 0, 0]),
    Some(&[0, 1, 24, 0, 10, 2]),
    Some(&[0, 1, 20, 0, 10, 1, 0x81]),
];

const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::SOA,
    RecordType::NS,
    RecordType::MX,
    RecordType::TXT,
    RecordType::CNAME,
    RecordType::CAA,
    RecordType::ANY,
    RecordType::AXFR,
    RecordType::Unknown(65280),
];

fn query(name: &str, rtype: RecordType, edns: Option<u16>, id: u16, rd: bool) -> Vec<u8> {
    query_full(name, rtype, edns, id, rd, None, false)
}

/// A query, with an ECS option (its raw data) appended to the OPT record when `ecs` is
/// given (and EDNS is).
fn query_ecs(
    name: &str,
    rtype: RecordType,
    edns: Option<u16>,
    id: u16,
    rd: bool,
    ecs: Option<&[u8]>,
) -> Vec<u8> {
    query_full(name, rtype, edns, id, rd, ecs, false)
}

/// A query; `dnssec_ok` sets the DO bit of its OPT record (with `edns` only).
fn query_do(
    name: &str,
    rtype: RecordType,
    edns: Option<u16>,
    id: u16,
    rd: bool,
    dnssec_ok: bool,
) -> Vec<u8> {
    query_full(name, rtype, edns, id, rd, None, dnssec_ok)
}

/// A query with an ECS option (raw data, with `edns` only) and the DO bit as given.
fn query_full(
    name: &str,
    rtype: RecordType,
    edns: Option<u16>,
    id: u16,
    rd: bool,
    ecs: Option<&[u8]>,
    dnssec_ok: bool,
) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = rd;
    m.metadata.checking_disabled = id % 3 == 0;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    let mut bytes = m.to_vec().unwrap();
    if let (Some(_), Some(data)) = (edns, ecs) {
        // The OPT record ends the message with RDLENGTH 0: grow it by the option.
        let at = bytes.len() - 2;
        let len = 4 + data.len();
        bytes[at..].copy_from_slice(&(len as u16).to_be_bytes());
        bytes.extend_from_slice(&8u16.to_be_bytes());
        bytes.extend_from_slice(&(data.len() as u16).to_be_bytes());
        bytes.extend_from_slice(data);
    }
    bytes
}

fn src() -> SocketAddr {
    "127.0.0.1:5353".parse().unwrap()
}

/// Sources in each region and in none.
const SOURCES: &[&str] = &[
    "127.0.0.1:5353",
    "10.1.2.3:53",
    "10.2.9.9:53",
    "192.0.2.7:53",
    "10.3.0.9:53",
    "198.51.100.9:53",
    "[2001:db8::9]:53",
];

/// How many of [`SUBNETS`], at its end, are malformed.
const MALFORMED: usize = 2;

/// The types asked in the ECS grid: addresses, NODATA (TXT) and ANY (general path only).
const ECS_TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::TXT,
    RecordType::ANY,
];

/// One query of the ECS grid, sent with EDNS (1232 bytes) and RD from `from`.
#[derive(Debug)]
struct Case<'a> {
    name: &'a str,
    /// The query id: the name's index in its list.
    id: u16,
    rtype: RecordType,
    /// An option data of [`SUBNETS`].
    ecs: Option<&'static [u8]>,
    /// A source of [`SOURCES`].
    from: SocketAddr,
    dnssec_ok: bool,
}

impl Case<'_> {
    fn packet(&self) -> Vec<u8> {
        query_full(
            self.name,
            self.rtype,
            Some(1232),
            self.id,
            true,
            self.ecs,
            self.dnssec_ok,
        )
    }

    /// Asks both paths: the general one answers, and when the fast path takes the query
    /// (the return value), it answers alike.
    fn answered_alike(&self, handler: &Handler) -> bool {
        let packet = self.packet();
        let general = handler
            .answer_general(&packet, self.from, Protocol::Udp)
            .expect("the general path answers every query");
        let Some(fast) = fast_from(handler, &packet, self.from) else {
            return false;
        };
        assert_eq!(meaning(&fast), meaning(&general), "{self:?}");
        true
    }
}

/// The ECS grid: each DO bit of `dnssec_ok` × name of `names` × type of `types` ×
/// [`SUBNETS`] × [`SOURCES`], in that order.
fn ecs_cases<'a>(
    dnssec_ok: &'a [bool],
    names: &'a [&'a str],
    types: &'a [RecordType],
) -> impl Iterator<Item = Case<'a>> {
    dnssec_ok.iter().flat_map(move |&dnssec_ok| {
        names.iter().enumerate().flat_map(move |(id, &name)| {
            types.iter().flat_map(move |&rtype| {
                SUBNETS.iter().flat_map(move |&ecs| {
                    SOURCES.iter().map(move |from| Case {
                        name,
                        id: id as u16,
                        rtype,
                        ecs,
                        from: from.parse().unwrap(),
                        dnssec_ok,
                    })
                })
            })
        })
    })
}

fn fast(handler: &Handler, packet: &[u8]) -> Option<Vec<u8>> {
    fast_from(handler, packet, src())
}

fn fast_from(handler: &Handler, packet: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let plain = PlainQuery::parse(packet)?;
    let mut out = vec![0; OUT_CAPACITY];
    let answer = plain.answer(&handler.table.load(), from.ip(), &mut out)?;
    Some(out[..answer.len].to_vec())
}

/// A response in a form where two encodings of the same answer compare equal: sections
/// as sorted text (rotation order differs between the paths' counters); see
/// `super::meaning`. These responses must parse.
fn meaning(bytes: &[u8]) -> super::meaning::Meaning {
    super::meaning::meaning(bytes).expect("a response that parses as a DNS message")
}

#[test]
fn fast_answers_equal_general_answers() {
    for (handler, dnssec_ok) in [
        (handler(), false),
        (handler(), true),
        (signed_handler(), false),
        (signed_handler(), true),
    ] {
        compare_paths(&handler, dnssec_ok);
    }
}

/// In a signed table, DO=1 queries for sets and NODATA take the fast path too (signed
/// messages built with the table); missing names (denial signed per query) and CNAME
/// chains are left to the general path.
#[test]
fn signed_answers_take_the_fast_path_where_they_can() {
    let handler = signed_handler();
    for (name, rtype) in [
        ("tke-demo.cn.", RecordType::AAAA),
        ("tke-demo.cn.", RecordType::SOA),
        ("tke-demo.cn.", RecordType::DNSKEY),
        ("info.tke-demo.cn.", RecordType::A),
        ("a.b.tke-demo.cn.", RecordType::A),
    ] {
        let packet = query_do(name, rtype, Some(1232), 5, true, true);
        let m = Message::from_vec(&fast(&handler, &packet).expect(name)).unwrap();
        assert!(
            (m.answers.iter().chain(&m.authorities)).any(|r| r.record_type() == RecordType::RRSIG),
            "{name} {rtype}: {m:?}"
        );
    }
    for (name, rtype) in [
        ("nothing.tke-demo.cn.", RecordType::A),
        ("www.tke-demo.cn.", RecordType::A),
        // An unsigned zone next to a signed one.
        ("dangling.other.cn.", RecordType::CNAME),
    ] {
        let packet = query_do(name, rtype, Some(1232), 5, true, true);
        assert!(fast(&handler, &packet).is_none(), "{name} {rtype}");
    }
}

fn compare_paths(handler: &Handler, dnssec_ok: bool) {
    let mut taken = 0;
    let mut total = 0;
    for (i, name) in NAMES.iter().enumerate() {
        for rtype in TYPES {
            for edns in [None, Some(0), Some(512), Some(1232), Some(4096)] {
                let packet = query_do(name, *rtype, edns, i as u16 * 7 + 1, i % 2 == 0, dnssec_ok);
                let general = handler
                    .answer_general(&packet, src(), Protocol::Udp)
                    .expect("the general path answers every query");
                total += 1;
                let Some(fast) = fast(handler, &packet) else {
                    continue;
                };
                taken += 1;
                assert_eq!(
                    meaning(&fast),
                    meaning(&general),
                    "{name} {rtype} edns {edns:?} do {dnssec_ok}"
                );
            }
        }
    }
    // The common queries go fast: every A/AAAA/SOA/NS/MX/TXT/CAA of a name without a CNAME
    // and every NXDOMAIN, minus the 40-VIP answer without EDNS (over 512 bytes). Signed
    // DO=1 answers leave out NXDOMAIN and chains, and more of them outgrow 512 bytes.
    let signed = dnssec_ok && handler.table.load().wire.signed();
    let (part, whole) = if signed { (2, 5) } else { (1, 2) };
    assert!(
        taken * whole > total * part,
        "only {taken} of {total} took the fast path"
    );
}

#[test]
fn the_common_queries_take_the_fast_path() {
    let handler = handler();
    for (name, rtype) in [
        ("tke-demo.cn.", RecordType::A),
        ("tke-demo.cn.", RecordType::AAAA),
        ("tke-demo.cn.", RecordType::SOA),
        ("tke-demo.cn.", RecordType::NS),
        ("nothing.tke-demo.cn.", RecordType::A),
        ("a.b.tke-demo.cn.", RecordType::A),
    ] {
        for edns in [None, Some(1232)] {
            assert!(
                fast(&handler, &query(name, rtype, edns, 1, true)).is_some(),
                "{name} {rtype} {edns:?}"
            );
        }
    }
    // CNAME chains inside our zones, and leaving them.
    for (name, rtype) in [
        ("www.tke-demo.cn.", RecordType::A),
        ("www.tke-demo.cn.", RecordType::TXT),
        ("www.tke-demo.cn.", RecordType::CNAME),
        ("out.tke-demo.cn.", RecordType::A),
        ("loop1.other.cn.", RecordType::CNAME),
        ("dangling.other.cn.", RecordType::A),
        ("alias.other.cn.", RecordType::AAAA),
    ] {
        assert!(
            fast(&handler, &query(name, rtype, None, 1, true)).is_some(),
            "{name} {rtype}"
        );
    }
    // What the general path must judge: ANY, transfers, other zones, loops, and answers
    // too large for the client's buffer.
    for (name, rtype, edns) in [
        ("loop1.other.cn.", RecordType::A, None),
        ("tke-demo.cn.", RecordType::ANY, None),
        ("tke-demo.cn.", RecordType::AXFR, None),
        ("example.org.", RecordType::A, None),
        ("many.tke-demo.cn.", RecordType::A, None),
    ] {
        assert!(fast(&handler, &query(name, rtype, edns, 1, true)).is_none());
    }
    assert!(
        fast(
            &handler,
            &query("many.tke-demo.cn.", RecordType::A, Some(1232), 1, true)
        )
        .is_some()
    );
}

#[test]
fn the_fast_path_serves_the_adaptive_ttl() {
    let handler = handler();
    let ttls = |name: &str, rtype| -> Vec<(RecordType, u32)> {
        let packet = query(name, rtype, Some(1232), 9, false);
        let m = Message::from_vec(&fast(&handler, &packet).unwrap()).unwrap();
        m.answers.iter().map(|r| (r.record_type(), r.ttl)).collect()
    };
    // gz-01 answers (through its IPv6 VIP; its IPv4 one is down, so A is NODATA).
    assert_eq!(
        ttls("tke-demo.cn.", RecordType::AAAA),
        vec![(RecordType::AAAA, 5)]
    );
    // Through a CNAME: the static CNAME keeps the zone's TTL, the app's set is short.
    assert_eq!(
        ttls("www.tke-demo.cn.", RecordType::AAAA),
        vec![(RecordType::CNAME, 300), (RecordType::AAAA, 5)]
    );
    // The other app has no adaptive_ttl: its default ttl.
    assert!(
        ttls("many.tke-demo.cn.", RecordType::A)
            .iter()
            .all(|&(_, ttl)| ttl == 30)
    );
}

#[test]
fn rotation_serves_every_variant_in_turn() {
    let handler = handler();
    let firsts: std::collections::HashSet<String> = (0..40)
        .map(|i| {
            let packet = query("many.tke-demo.cn.", RecordType::A, Some(1232), i, false);
            let m = Message::from_vec(&fast(&handler, &packet).unwrap()).unwrap();
            m.answers[0].data.to_string()
        })
        .collect();
    // 40 VIPs are served in MAX_ROTATIONS evenly spaced rotations.
    assert_eq!(firsts.len(), crate::answer::plan::MAX_ROTATIONS.min(40));
}

#[test]
fn slip_is_a_truncated_empty_answer_with_the_question() {
    let packet = query("Tke-Demo.cn.", RecordType::A, Some(4096), 77, true);
    let plain = PlainQuery::parse(&packet).unwrap();
    let mut out = vec![0; OUT_CAPACITY];
    let len = plain.truncated(&mut out).unwrap();
    let m = Message::from_vec(&out[..len]).unwrap();
    assert_eq!(m.metadata.id, 77);
    assert!(m.metadata.truncation && m.metadata.recursion_desired);
    assert!(!m.metadata.authoritative);
    assert_eq!(m.queries[0].name().to_string(), "Tke-Demo.cn.");
    assert!(m.answers.is_empty());
    assert_eq!(m.edns.unwrap().max_payload(), 1232);
}

#[test]
fn ecs_queries_and_geo_names_are_answered_alike_from_every_source() {
    let handler = handler();
    let (mut taken, mut total) = (0, 0);
    for case in ecs_cases(&[false], NAMES, ECS_TYPES) {
        total += 1;
        taken += usize::from(case.answered_alike(&handler));
    }
    assert!(
        taken * 2 > total,
        "only {taken} of {total} took the fast path"
    );
    // Geo names, with ECS or without, in a region or not, go fast; malformed ECS does not.
    for ecs in &SUBNETS[..SUBNETS.len() - MALFORMED] {
        for from in SOURCES {
            let packet = query_ecs("geo.tke-demo.cn.", RecordType::A, Some(1232), 1, true, *ecs);
            assert!(
                fast_from(&handler, &packet, from.parse().unwrap()).is_some(),
                "{ecs:?} {from}"
            );
        }
    }
    for ecs in &SUBNETS[SUBNETS.len() - MALFORMED..] {
        let packet = query_ecs("geo.tke-demo.cn.", RecordType::A, Some(1232), 1, true, *ecs);
        assert!(fast(&handler, &packet).is_none(), "{ecs:?}");
    }
}

#[test]
fn the_general_path_echoes_ecs_with_the_scope_of_the_answer() {
    let handler = handler();
    let ask = |name: &str, ecs: &[u8], from: &str| {
        let packet = query_ecs(name, RecordType::A, Some(1232), 1, true, Some(ecs));
        let bytes = handler
            .answer_general(&packet, from.parse().unwrap(), Protocol::Udp)
            .unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        let subnet = m.edns.as_ref().and_then(|e| {
            match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)? {
                hickory_proto::rr::rdata::opt::EdnsOption::Subnet(s) => {
                    Some((s.addr().to_string(), s.source_prefix(), s.scope_prefix()))
                }
                _ => None,
            }
        });
        let answers: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        (m.metadata.response_code.to_string(), answers, subnet)
    };
    let east = vec!["127.0.2.1".to_owned()];
    // East by ECS: its own cluster, scope /16.
    assert_eq!(
        ask("geo.tke-demo.cn.", &[0, 1, 24, 0, 10, 2, 3], "192.0.2.7:53"),
        (
            "No Error".into(),
            east.clone(),
            Some(("10.2.3.0".into(), 24, 16))
        )
    );
    // West (no cluster there, no location): failover order, east's priority 1 before
    // gz-02's 2; the scope is that of the /20 nested inside 10.1/16.
    assert_eq!(
        ask("geo.tke-demo.cn.", &[0, 1, 24, 0, 10, 1, 2], "10.2.0.1:53"),
        (
            "No Error".into(),
            east.clone(),
            Some(("10.1.2.0".into(), 24, 20))
        )
    );
    // /0: the resolver's address decides (127.0.0.1 is east), scope 0.
    assert_eq!(
        ask("geo.tke-demo.cn.", &[0, 1, 0, 0], "127.0.0.1:53"),
        ("No Error".into(), east, Some(("0.0.0.0".into(), 0, 0)))
    );
    // A static name: scope 0.
    assert_eq!(
        ask(
            "pool.tke-demo.cn.",
            &[0, 1, 24, 0, 10, 2, 3],
            "127.0.0.1:53"
        )
        .2,
        Some(("10.2.3.0".into(), 24, 0))
    );
    // Malformed: FORMERR.
    assert_eq!(
        ask("geo.tke-demo.cn.", &[0, 1, 24, 0, 10, 2], "127.0.0.1:53").0,
        "Form Error"
    );
}

/// Clients placed by the database get their region's answer with the database
/// network's scope (raised past the subnets nested in it), alike on both paths.
#[test]
fn database_placements_echo_the_scope_of_the_database_network() {
    let handler = handler();
    let ask = |ecs: &[u8], from: &str| {
        let packet = query_ecs(
            "geo.tke-demo.cn.",
            RecordType::A,
            Some(1232),
            1,
            true,
            Some(ecs),
        );
        let from: SocketAddr = from.parse().unwrap();
        let general = handler
            .answer_general(&packet, from, Protocol::Udp)
            .unwrap();
        let fast = fast_from(&handler, &packet, from).expect("geo names go fast");
        assert_eq!(meaning(&fast), meaning(&general), "{ecs:?}");
        let m = Message::from_vec(&fast).unwrap();
        let scope = m.edns.as_ref().and_then(|e| {
            match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)? {
                hickory_proto::rr::rdata::opt::EdnsOption::Subnet(s) => Some(s.scope_prefix()),
                _ => None,
            }
        });
        let answers: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        (answers, scope)
    };
    let east = vec!["127.0.2.1".to_owned()];
    // 192.0.2.0/24 is CN, east's country: east's cluster, scope /24 (the network).
    assert_eq!(
        ask(&[0, 1, 24, 0, 192, 0, 2], "127.0.0.1:53"),
        (east.clone(), Some(24))
    );
    // A /16 source around it: believed as given, the answer holds for the /16.
    assert_eq!(ask(&[0, 1, 16, 0, 192, 0], "127.0.0.1:53").1, Some(16));
    // 10.3.0.0/24 is in the database's 10/8 (DE, west by continent), which holds west's
    // 10.1.128.0/20: scope /20. West has no cluster: failover order (east first).
    assert_eq!(
        ask(&[0, 1, 24, 0, 10, 3, 0], "127.0.0.1:53"),
        (east.clone(), Some(20))
    );
    // The US is no region's: failover order, scope of its /24.
    assert_eq!(
        ask(&[0, 1, 24, 0, 198, 51, 100], "127.0.0.1:53"),
        (east, Some(24))
    );
    // The resolver's address placed by the database: no ECS asked, none echoed.
    let packet = query_ecs("geo.tke-demo.cn.", RecordType::A, Some(1232), 1, true, None);
    let from: SocketAddr = "10.3.0.9:53".parse().unwrap();
    let general = handler
        .answer_general(&packet, from, Protocol::Udp)
        .unwrap();
    let fast = fast_from(&handler, &packet, from).unwrap();
    assert_eq!(meaning(&fast), meaning(&general));
}

proptest! {
    /// Damaged queries: the fast path never panics, and whatever it answers, the general
    /// path answers the same way.
    #[test]
    fn damaged_queries_are_declined_or_answered_alike(
        name in 0..NAMES.len(),
        rtype in 0..TYPES.len(),
        edns in proptest::option::of(0u16..5000),
        dnssec_ok in any::<bool>(),
        edits in proptest::collection::vec((0usize..64, any::<u8>()), 0..4),
        cut in 0usize..80,
    ) {
        let handler = handler();
        let mut packet = query_do(NAMES[name], TYPES[rtype], edns, 4242, true, dnssec_ok);
        for (at, byte) in edits {
            let at = at % packet.len();
            packet[at] = byte;
        }
        packet.truncate(packet.len().saturating_sub(cut % 8));
        if let Some(fast) = fast(&handler, &packet) {
            let general = handler.answer_general(&packet, src(), Protocol::Udp);
            prop_assert!(general.is_some());
            prop_assert_eq!(meaning(&fast), meaning(&general.unwrap()));
        }
    }
}

/// What a DO=1 client of a signed zone gets, and that DO=0 clients get no DNSSEC records.
#[test]
fn signed_zone_answers_carry_signatures_and_denials() {
    use hickory_proto::dnssec::rdata::DNSSECRData;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RData;
    let handler = signed_handler();
    let ask = |name: &str, rtype, dnssec_ok| {
        let packet = query_do(name, rtype, Some(1232), 3, false, dnssec_ok);
        Message::from_vec(
            &handler
                .answer_general(&packet, src(), Protocol::Udp)
                .unwrap(),
        )
        .unwrap()
    };
    let types = |records: &[Record]| -> Vec<RecordType> {
        records.iter().map(Record::record_type).collect()
    };
    let nsec_types = |m: &Message| -> Vec<RecordType> {
        m.authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n.type_bit_maps().collect()),
                _ => None,
            })
            .expect("an NSEC in the authority section")
    };

    let plain = ask("tke-demo.cn.", RecordType::AAAA, false);
    assert_eq!(types(&plain.answers), [RecordType::AAAA]);
    assert!(!plain.edns.unwrap().flags().dnssec_ok);
    let signed = ask("tke-demo.cn.", RecordType::AAAA, true);
    assert_eq!(
        types(&signed.answers),
        [RecordType::AAAA, RecordType::RRSIG]
    );
    assert!(signed.edns.unwrap().flags().dnssec_ok);
    let chain = ask("www.tke-demo.cn.", RecordType::AAAA, true);
    assert_eq!(
        types(&chain.answers),
        [
            RecordType::CNAME,
            RecordType::RRSIG,
            RecordType::AAAA,
            RecordType::RRSIG
        ]
    );
    let keys = ask("tke-demo.cn.", RecordType::DNSKEY, true);
    assert_eq!(
        types(&keys.answers),
        [RecordType::DNSKEY, RecordType::RRSIG]
    );

    // A missing name: NXDOMAIN without DO; with DO, a proven NODATA (RFC 9824).
    let nx = ask("nothing.tke-demo.cn.", RecordType::A, false);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(types(&nx.authorities), [RecordType::SOA]);
    let nx = ask("nothing.tke-demo.cn.", RecordType::A, true);
    assert_eq!(nx.metadata.response_code, ResponseCode::NoError);
    assert!(nx.answers.is_empty());
    assert_eq!(
        types(&nx.authorities),
        [
            RecordType::SOA,
            RecordType::RRSIG,
            RecordType::NSEC,
            RecordType::RRSIG
        ]
    );
    assert!(nsec_types(&nx).contains(&crate::dnssec::NXNAME));
    assert_eq!(nx.authorities[2].name.to_string(), "nothing.tke-demo.cn.");

    // NODATA: the NSEC at the name lists what it has.
    let nodata = ask("info.tke-demo.cn.", RecordType::A, true);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    let listed = nsec_types(&nodata);
    assert!(listed.contains(&RecordType::TXT) && !listed.contains(&RecordType::A));
    assert!(!listed.contains(&crate::dnssec::NXNAME));
    // An empty non-terminal exists: no NXNAME either.
    assert!(
        !nsec_types(&ask("a.b.tke-demo.cn.", RecordType::A, true)).contains(&crate::dnssec::NXNAME)
    );

    // The unsigned zone answers as before, DO or not.
    let other = ask("dangling.other.cn.", RecordType::CNAME, true);
    assert_eq!(types(&other.answers), [RecordType::CNAME]);
}

/// In a signed zone with a `geo` app, every region's answer comes with its own RRSIGs, on
/// both paths and with or without ECS; the ECS echo keeps its scope next to the DO bit.
#[test]
fn signed_geo_answers_are_alike_on_both_paths_with_and_without_ecs() {
    let handler = signed_handler();
    let (mut taken, mut total, mut geo_signed_fast) = (0, 0, 0);
    let names = [
        "geo.tke-demo.cn.",
        "GEO.tke-demo.cn.",
        "togeo.other.cn.",
        "tke-demo.cn.",
        "nothing.tke-demo.cn.",
        "many.tke-demo.cn.",
    ];
    for case in ecs_cases(&[false, true], &names, ECS_TYPES) {
        total += 1;
        if case.answered_alike(&handler) {
            taken += 1;
            // The two spellings of the geo name.
            if case.dnssec_ok && case.id < 2 {
                geo_signed_fast += 1;
            }
        }
    }
    // ANY, chains, malformed ECS and (with DO=1) missing names stay on the general path.
    assert!(
        taken * 5 > total * 2,
        "only {taken} of {total} took the fast path"
    );
    // Geo names with DO=1 go fast, in every region and none, with ECS or without: every
    // A, AAAA and TXT (NODATA) query of the two spellings but those with malformed ECS.
    assert_eq!(
        geo_signed_fast,
        2 * 3 * (SUBNETS.len() - MALFORMED) * SOURCES.len()
    );
}

/// A signed zone with a `geo` app over two regions, east (IPv4 and IPv6) and west (IPv4
/// only: its clients get a NODATA for AAAA while east's get an address).
fn signed_two_region_handler() -> Handler {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("csk.pem");
    std::fs::write(&key, crate::dnssec::generate_pem("ecdsa-p256").unwrap()).unwrap();
    let inv = inventory(&format!(
        r#"
[zone.dnssec]
keys = [{{ file = {:?} }}]
[[cluster]]
name = "east"
region = "east"
vips = ["127.0.2.1", "2001:db8::2:1"]
[[cluster]]
name = "west"
region = "west"
vips = ["127.0.3.1"]
[[app]]
name = "geo.tke-demo.cn"
clusters = ["east", "west"]
policy = "geo"
probe = {{ kind = "tcp", port = 80 }}
[geo]
[[geo.region]]
name = "east"
subnets = ["10.2.0.0/16", "127.0.0.0/8"]
[[geo.region]]
name = "west"
subnets = ["10.1.0.0/16"]
"#,
        key.to_str().unwrap()
    ));
    let table = AnswerTable::build(&health(&inv, &vec![Up; inv.endpoints.len()]), 2026113001);
    Handler::new(
        Arc::new(ArcSwap::from_pointee(table)),
        Arc::new(Metrics::new()),
    )
}

#[test]
fn a_region_without_an_address_type_gets_its_own_signed_nodata_on_both_paths() {
    let handler = signed_two_region_handler();
    for case in ecs_cases(&[false, true], &["geo.tke-demo.cn."], &ECS_TYPES[..3]) {
        case.answered_alike(&handler);
    }
    let east: &[u8] = &[0, 1, 24, 0, 10, 2, 3];
    let west: &[u8] = &[0, 1, 24, 0, 10, 1, 2];
    let (seen, nodata) = check_regions(
        &handler,
        &[
            (Some(east), "192.0.2.7:53", 16),
            (Some(west), "192.0.2.7:53", 16),
        ],
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(nodata, 1, "west's AAAA");
}

#[test]
fn each_region_answer_of_a_signed_geo_app_verifies_and_echoes_its_scope() {
    // East, west and no region by ECS (from a source in no region), and by the source.
    let (seen, _) = check_regions(
        &signed_handler(),
        &[
            (SUBNETS[1], "192.0.2.7:53", 16),
            (SUBNETS[2], "192.0.2.7:53", 20),
            (SUBNETS[4], "192.0.2.7:53", 24),
            (None, "10.2.9.9:53", 0),
        ],
    );
    // A and AAAA answers, each signed.
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// Asks A and AAAA of `geo.tke-demo.cn` with DO=1 for each (ECS, source, expected scope)
/// on the fast path, checks the DO bit and the echoed scope, and that each answer's RRSIG
/// (or a NODATA's NSEC and its RRSIG) verifies against the zone's DNSKEY; returns the
/// address sets seen and the number of NODATA answers.
fn check_regions(
    handler: &Handler,
    cases: &[(Option<&[u8]>, &str, u8)],
) -> (std::collections::HashSet<Vec<String>>, usize) {
    use crate::dnssec::rrsig;
    use hickory_proto::dnssec::PublicKey;
    use hickory_proto::dnssec::TBS;
    use hickory_proto::dnssec::rdata::DNSSECRData;
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::rr::{DNSClass, RData};
    let keys = Message::from_vec(
        &handler
            .answer_general(
                &query_do(
                    "tke-demo.cn.",
                    RecordType::DNSKEY,
                    Some(1232),
                    1,
                    false,
                    true,
                ),
                src(),
                Protocol::Udp,
            )
            .unwrap(),
    )
    .unwrap();
    let verifies = |set: &[Record], sig: &Record| -> bool {
        let sig = rrsig(sig).unwrap();
        keys.answers.iter().any(|k| match &k.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) => {
                let tbs =
                    TBS::from_input(&set[0].name, DNSClass::IN, sig.input(), set.iter()).unwrap();
                key.public_key().verify(tbs.as_ref(), sig.sig()).is_ok()
            }
            _ => false,
        })
    };
    let mut seen = std::collections::HashSet::new();
    let mut nodata = 0;
    for &(ecs, from, scope) in cases {
        for rtype in [RecordType::A, RecordType::AAAA] {
            let packet = query_full("geo.tke-demo.cn.", rtype, Some(1232), 7, true, ecs, true);
            let from: SocketAddr = from.parse().unwrap();
            let bytes = fast_from(handler, &packet, from).expect("DO=1 geo queries go fast");
            let m = Message::from_vec(&bytes).unwrap();
            let edns = m.edns.as_ref().unwrap();
            assert!(edns.flags().dnssec_ok);
            match edns.option(EdnsCode::Subnet) {
                Some(EdnsOption::Subnet(s)) => assert_eq!(s.scope_prefix(), scope, "{ecs:?}"),
                None => assert!(ecs.is_none()),
                other => panic!("{other:?}"),
            }
            let set: Vec<Record> = (m.answers.iter())
                .filter(|r| r.record_type() == rtype)
                .cloned()
                .collect();
            let sigs: Vec<&Record> = (m.answers.iter())
                .filter(|r| r.record_type() == RecordType::RRSIG)
                .collect();
            if set.is_empty() {
                // This region has no address of this type: a NODATA proven by an NSEC
                // without it, signed.
                let nsec: Vec<Record> = (m.authorities.iter())
                    .filter(|r| r.record_type() == RecordType::NSEC)
                    .cloned()
                    .collect();
                let RData::DNSSEC(DNSSECRData::NSEC(n)) = &nsec[0].data else {
                    unreachable!()
                };
                assert!(n.type_bit_maps().all(|t| t != rtype), "{ecs:?} {rtype}");
                let sig = (m.authorities.iter())
                    .find(|r| rrsig(r).is_some_and(|s| s.input().type_covered == RecordType::NSEC))
                    .unwrap();
                assert!(verifies(&nsec, sig));
                nodata += 1;
                continue;
            }
            assert!(!sigs.is_empty(), "{ecs:?} {rtype}: {m:?}");
            assert!(sigs.iter().all(|s| verifies(&set, s)), "{ecs:?} {rtype}");
            let mut addrs: Vec<String> = set.iter().map(|r| r.data.to_string()).collect();
            addrs.sort();
            seen.insert(addrs);
        }
    }
    (seen, nodata)
}
