//! Bytes in, response bytes out, through both DNS paths, as a UDP datagram and as a TCP
//! message: nothing panics, and whenever the fast path answers, the general path gives
//! the same answer (compared as parsed messages, sections as sorted text), on an unsigned
//! and a signed table.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use gslb::answer::AnswerTable;
use gslb::dns::Handler;
use gslb::dns::meaning::meaning;
use gslb::dns::wire::{OUT_CAPACITY, PlainQuery};
use gslb::health::HealthSnapshot;
use gslb::metrics::Metrics;
use hickory_server::net::xfer::Protocol;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/mmdb_writer.rs"]
mod mmdb_writer;

/// The demo, plus a `geo` app whose answers depend on the client (the source address or
/// an EDNS Client Subnet in the input), placed by subnets and by a `[geo] database`
/// (countries and continents); `[0]` unsigned, `[1]` with the demo zone signed (DO=1 in
/// the input gets RRSIGs, per region for the `geo` app).
fn handlers() -> &'static [Handler; 2] {
    static HANDLERS: OnceLock<[Handler; 2]> = OnceLock::new();
    HANDLERS.get_or_init(|| {
        let database = std::env::temp_dir().join(format!("gslb-fuzz-{}.mmdb", std::process::id()));
        mmdb_writer::Writer::countries(&[
            ("10.0.0.0/8", Some("DE"), "EU"),
            ("10.3.0.0/16", Some("CN"), "AS"),
            ("192.0.2.0/24", Some("JP"), "AS"),
            ("198.51.100.0/24", Some("US"), "NA"),
            ("2001:db8::/32", Some("CN"), "AS"),
            ("2001:db8:8000::/33", None, "EU"),
        ])
        .write(&database);
        let text = format!(
            "{}\n{}",
            gslb::demo::CONFIG,
            r#"
[[app]]
name = "geo.tke-demo.cn"
policy = "geo"
probe = { kind = "tcp", port = 80 }
[geo]
[[geo.region]]
name = "ap-guangzhou"
subnets = ["127.0.0.0/8", "10.1.0.0/16"]
countries = ["CN"]
[[geo.region]]
name = "elsewhere"
subnets = ["10.2.0.0/16", "10.2.128.0/20", "2001:db8:42::/48"]
continents = ["EU"]
lat = 31.2
lon = 121.5
"#
        )
        .replacen(
            "[geo]\n",
            &format!("[geo]\ndatabase = {:?}\n", database.to_str().unwrap()),
            1,
        );
        let key = std::env::temp_dir().join(format!("gslb-fuzz-{}.pem", std::process::id()));
        std::fs::write(&key, gslb::dnssec::generate_pem("ed25519").unwrap()).unwrap();
        let signed = text.replacen(
            "[[cluster]]",
            &format!(
                "[zone.dnssec]\nkeys = [{{ file = {:?} }}]\n\n[[cluster]]",
                key.to_str().unwrap()
            ),
            1,
        );
        let handler = |text: &str| {
            let config = gslb::config::parse(text, "demo").unwrap();
            let inventory = Arc::new(config.inventory);
            let table =
                AnswerTable::build(&HealthSnapshot::initial(&inventory, SystemTime::now()), 1);
            Handler::new(
                Arc::new(ArcSwap::from_pointee(table)),
                Arc::new(Metrics::new()),
            )
        };
        let handlers = [handler(&text), handler(&signed)];
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(&database);
        handlers
    })
}

fuzz_target!(|data: &[u8]| {
    for handler in handlers() {
        check(handler, data);
    }
});

fn check(handler: &Handler, data: &[u8]) {
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let general = handler.answer_general(data, src, Protocol::Udp);
    let _ = handler.answer_general(data, src, Protocol::Tcp);
    // Over TCP, the connection asks the transfer path first.
    let _ = handler.answer_transfer(data, src, true);
    if let Some(plain) = PlainQuery::parse(data) {
        let mut out = vec![0u8; OUT_CAPACITY];
        if let Some(fast) = plain.answer(&handler.table().load(), src.ip(), &mut out) {
            let len = fast.len;
            let general = general.expect("the general path answers what the fast path answers");
            assert_eq!(
                meaning(&out[..len]),
                meaning(&general),
                "fast and general paths differ"
            );
        }
    }
}
