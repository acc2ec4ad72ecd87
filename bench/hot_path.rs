//! Micro-benchmarks of the hot paths (criterion): `cargo bench --bench hot_path`.
//!
//! - `udp/*`: one query answered the way the UDP threads answer it, by the fast path
//!   (pre-encoded answers) and by the general hickory path, on the demo's table plus a
//!   `geo` app (two regions of 100 subnets); their ratio is what the fast path buys, and
//!   the `geo`/`ECS` cases what client placement and the ECS echo cost.
//! - `udp/*/geo A with ECS, by database`: the same `geo` app with a `[geo] database` of
//!   100,000 IPv4 networks (an IPv6 tree, as GeoLite2's), the ECS in none of the 200
//!   subnets: what a database placement costs over a subnet one.
//! - `udp/signed fast path/*`, `udp/signed general path/*`: queries with DO=1 on the same
//!   table with the demo zone signed by an ECDSA P-256 CSK (the fast path holds signed
//!   sets, per region for the `geo` app, and NODATA; a missing name's denial is signed
//!   per query by the general path).
//! - `table/*`: planning and laying out the answer table for 1,000 apps on two clusters,
//!   which runs on every health change, and parsing that config, which runs on reload;
//!   signed, with the signatures of the last build cached (a health change) or none
//!   (the first build); and reading and verifying a `[geo] database` of 100,000
//!   networks, which runs at start and on reload.
//!
//! These guard against regressions; the throughput figures in the README come from
//! `bench/dnsperf.sh` and `bench/compare.sh`, which include the kernel's share.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use gslb::answer::AnswerTable;
use gslb::dns::Handler;
use gslb::dns::wire::{OUT_CAPACITY, PlainQuery};
use gslb::health::HealthSnapshot;
use gslb::metrics::Metrics;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use hickory_server::net::xfer::Protocol;

#[path = "../tests/support/mmdb_writer.rs"]
mod mmdb_writer;

fn table(config: &str) -> AnswerTable {
    let config = gslb::config::parse(config, "bench").expect("the bench config is valid");
    let inventory = Arc::new(config.inventory);
    AnswerTable::build(&HealthSnapshot::initial(&inventory, SystemTime::now()), 1)
}

/// `config` with its first zone signed by a new ECDSA P-256 CSK written into `dir`.
fn signed(config: &str, dir: &std::path::Path) -> String {
    let key = dir.join("csk.pem");
    std::fs::write(&key, gslb::dnssec::generate_pem("ecdsa-p256").unwrap()).unwrap();
    config.replacen(
        "[[cluster]]",
        &format!(
            "[zone.dnssec]\nkeys = [{{ file = {:?} }}]\n\n[[cluster]]",
            key.to_str().unwrap()
        ),
        1,
    )
}

/// With `ecs`, the OPT record carries an EDNS Client Subnet of 10.2.3.0/24; `dnssec_ok`
/// sets its DO bit.
fn query(name: &str, rtype: RecordType, edns: bool, ecs: bool, dnssec_ok: bool) -> Vec<u8> {
    query_subnet(name, rtype, edns, ecs.then_some([10, 2, 3, 0]), dnssec_ok)
}

/// The same with the ECS subnet `ecs`/24.
fn query_subnet(
    name: &str,
    rtype: RecordType,
    edns: bool,
    ecs: Option<[u8; 4]>,
    dnssec_ok: bool,
) -> Vec<u8> {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        if let Some(addr) = ecs {
            e.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(addr.into(), 24, 0)));
        }
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// The demo, plus a `geo` app over its clusters with two regions of 50 subnets each.
fn demo_with_geo() -> String {
    let mut text = format!(
        "{}\n[[app]]\nname = \"geo.tke-demo.cn\"\npolicy = \"geo\"\nprobe = {{ kind = \"tcp\", port = 80 }}\n[geo]\n",
        gslb::demo::CONFIG
    );
    for (region, first) in [("ap-guangzhou", 1), ("ap-shanghai", 100)] {
        let subnets: Vec<String> = (first..first + 50)
            .map(|i| format!("\"10.{i}.0.0/16\", \"10.{i}.128.0/20\""))
            .collect();
        text.push_str(&format!(
            "[[geo.region]]\nname = \"{region}\"\nsubnets = [{}]\n",
            subnets.join(", ")
        ));
    }
    text
}

/// [`demo_with_geo`] with a `[geo] database` written into `dir`: 100,000 IPv4 networks of
/// /16 to /24 spread over the unicast space, in 20 countries of 5 continents; the regions
/// take CN by country and EU by continent. Returns the config and an address of a CN
/// network in no subnet.
fn demo_with_database(dir: &std::path::Path) -> (String, [u8; 4]) {
    use mmdb_writer::{IpVersion, Value, Writer};
    const COUNTRIES: [(&str, &str); 20] = [
        ("CN", "AS"),
        ("JP", "AS"),
        ("IN", "AS"),
        ("KR", "AS"),
        ("SG", "AS"),
        ("DE", "EU"),
        ("FR", "EU"),
        ("GB", "EU"),
        ("NL", "EU"),
        ("PL", "EU"),
        ("US", "NA"),
        ("CA", "NA"),
        ("MX", "NA"),
        ("BR", "SA"),
        ("AR", "SA"),
        ("AU", "OC"),
        ("NZ", "OC"),
        ("ZA", "AF"),
        ("EG", "AF"),
        ("NG", "AF"),
    ];
    let mut w = Writer::new("GeoLite2-Country", IpVersion::V6);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        seed >> 33
    };
    for i in 0..100_000u64 {
        let addr = (next() as u32 % 0xdf00_0000) + 0x0100_0000;
        let len = 16 + (next() % 9) as u32;
        let net = addr & (u32::MAX << (32 - len));
        let (country, continent) = COUNTRIES[(i % 20) as usize];
        let [a, b, c, d] = net.to_be_bytes();
        w.insert(
            &format!("{a}.{b}.{c}.{d}/{len}"),
            Value::country(Some(country), continent),
        );
    }
    // The client of the ECS rows: a CN network of its own.
    w.insert("203.0.113.0/24", Value::country(Some("CN"), "AS"));
    let path = dir.join("GeoLite2-Country.mmdb");
    w.write(&path);
    let text = demo_with_geo()
        .replacen(
            "[geo]\n",
            &format!("[geo]\ndatabase = {:?}\n", path.to_str().unwrap()),
            1,
        )
        .replacen(
            "name = \"ap-guangzhou\"\n",
            "name = \"ap-guangzhou\"\ncountries = [\"CN\"]\n",
            1,
        )
        .replacen(
            "name = \"ap-shanghai\"\n",
            "name = \"ap-shanghai\"\ncontinents = [\"EU\"]\n",
            1,
        );
    (text, [203, 0, 113, 0])
}

/// 1,000 apps, each on the same two clusters, in one zone.
fn thousand_apps() -> String {
    let mut text = String::from(
        r#"[[zone]]
name = "bench.example"
nameservers = ["ns1.bench.example"]
hostmaster = "hostmaster.bench.example"
records = [{ name = "ns1", type = "A", value = "127.0.0.1" }]
[[cluster]]
name = "a"
vips = ["192.0.2.1"]
priority = 1
[[cluster]]
name = "b"
vips = ["192.0.2.2"]
priority = 2
"#,
    );
    for i in 0..1000 {
        text.push_str(&format!(
            "[[app]]\nname = \"app{i}.bench.example\"\nclusters = [\"a\", \"b\"]\nprobe = {{ kind = \"tcp\", port = 80 }}\n"
        ));
    }
    text
}

fn udp(c: &mut Criterion) {
    let handler = Handler::new(
        Arc::new(ArcSwap::from_pointee(table(&demo_with_geo()))),
        Arc::new(Metrics::new()),
    );
    let table = handler.table();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let mut out = vec![0u8; OUT_CAPACITY];
    for (label, name, rtype, ecs) in [
        ("A", "tke-demo.cn.", RecordType::A, false),
        ("CNAME chain", "www.tke-demo.cn.", RecordType::A, false),
        ("NXDOMAIN", "nope.tke-demo.cn.", RecordType::A, false),
        // A non-geo name asked with ECS: echoed with scope 0.
        ("A with ECS", "tke-demo.cn.", RecordType::A, true),
        // A geo app placed by the source address, then by ECS (100 regions' subnets).
        ("geo A", "geo.tke-demo.cn.", RecordType::A, false),
        ("geo A with ECS", "geo.tke-demo.cn.", RecordType::A, true),
    ] {
        let packet = query(name, rtype, true, ecs, false);
        c.bench_function(&format!("udp/fast path/{label}"), |b| {
            b.iter(|| {
                let plain = PlainQuery::parse(black_box(&packet)).unwrap();
                black_box(plain.answer(&table.load(), src.ip(), &mut out).unwrap())
            })
        });
        c.bench_function(&format!("udp/general path/{label}"), |b| {
            b.iter(|| {
                black_box(
                    handler
                        .answer_general(black_box(&packet), src, Protocol::Udp)
                        .unwrap(),
                )
            })
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let (text, client) = demo_with_database(dir.path());
    let with_database = Handler::new(
        Arc::new(ArcSwap::from_pointee(self::table(&text))),
        Arc::new(Metrics::new()),
    );
    let database_table = with_database.table();
    let packet = query_subnet("geo.tke-demo.cn.", RecordType::A, true, Some(client), false);
    c.bench_function("udp/fast path/geo A with ECS, by database", |b| {
        b.iter(|| {
            let plain = PlainQuery::parse(black_box(&packet)).unwrap();
            black_box(
                plain
                    .answer(&database_table.load(), src.ip(), &mut out)
                    .unwrap(),
            )
        })
    });
    c.bench_function("udp/general path/geo A with ECS, by database", |b| {
        b.iter(|| {
            black_box(
                with_database
                    .answer_general(black_box(&packet), src, Protocol::Udp)
                    .unwrap(),
            )
        })
    });
    let signed = Handler::new(
        Arc::new(ArcSwap::from_pointee(self::table(&signed(
            &demo_with_geo(),
            dir.path(),
        )))),
        Arc::new(Metrics::new()),
    );
    let signed_table = signed.table();
    for (label, name, rtype, ecs) in [
        ("A", "tke-demo.cn.", RecordType::A, false),
        ("NODATA", "tke-demo.cn.", RecordType::TXT, false),
        ("CNAME chain", "www.tke-demo.cn.", RecordType::A, false),
        ("NXDOMAIN", "nope.tke-demo.cn.", RecordType::A, false),
        ("geo A with ECS", "geo.tke-demo.cn.", RecordType::A, true),
    ] {
        let packet = query(name, rtype, true, ecs, true);
        if PlainQuery::parse(&packet)
            .unwrap()
            .answer(&signed_table.load(), src.ip(), &mut out)
            .is_some()
        {
            c.bench_function(&format!("udp/signed fast path/{label}"), |b| {
                b.iter(|| {
                    let plain = PlainQuery::parse(black_box(&packet)).unwrap();
                    black_box(
                        plain
                            .answer(&signed_table.load(), src.ip(), &mut out)
                            .unwrap(),
                    )
                })
            });
        }
        c.bench_function(&format!("udp/signed general path/{label}"), |b| {
            b.iter(|| {
                black_box(
                    signed
                        .answer_general(black_box(&packet), src, Protocol::Udp)
                        .unwrap(),
                )
            })
        });
    }
}

fn tables(c: &mut Criterion) {
    let text = thousand_apps();
    let config = gslb::config::parse(&text, "bench").unwrap();
    let inventory = Arc::new(config.inventory);
    let health = HealthSnapshot::initial(&inventory, SystemTime::now());
    c.bench_function("table/build 1000 apps", |b| {
        b.iter(|| black_box(AnswerTable::build(black_box(&health), 1)))
    });
    c.bench_function("table/parse 1000-app config", |b| {
        b.iter(|| black_box(gslb::config::parse(black_box(&text), "bench").unwrap()))
    });
    let dir = tempfile::tempdir().unwrap();
    let signed_text = signed(&text, dir.path());
    let signed_health = || {
        let config = gslb::config::parse(&signed_text, "bench").unwrap();
        HealthSnapshot::initial(&Arc::new(config.inventory), SystemTime::now())
    };
    let warm = signed_health();
    AnswerTable::build(&warm, 1);
    c.bench_function("table/build 1000 apps signed, cached", |b| {
        b.iter(|| black_box(AnswerTable::build(black_box(&warm), 1)))
    });
    let mut group = c.benchmark_group("table");
    group.sample_size(10);
    // What a start or reload adds with `[geo] database`: reading and verifying the file.
    let db_dir = tempfile::tempdir().unwrap();
    demo_with_database(db_dir.path());
    let db_path = db_dir.path().join("GeoLite2-Country.mmdb");
    group.bench_function("open a 100,000-network database", |b| {
        b.iter(|| black_box(gslb::geodb::GeoDatabase::open(black_box(&db_path)).unwrap()))
    });
    group.bench_function("build 1000 apps signed, first", |b| {
        b.iter_batched(
            signed_health,
            |h| black_box(AnswerTable::build(&h, 1)),
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, udp, tables);
criterion_main!(benches);
