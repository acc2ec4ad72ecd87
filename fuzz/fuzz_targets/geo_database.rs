//! Bytes in as a `[geo] database` file: a file that passes the checks of config loading
//! never makes a lookup panic, whatever its tree and data hold, and every lookup reports a
//! network of the address's own family. An input whose first byte is odd is taken
//! whole; any other is a list of (offset, byte) edits to a valid database made by the
//! test writer, so that damaged but plausible files are reached at once.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use gslb::geodb::GeoDatabase;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/mmdb_writer.rs"]
mod mmdb_writer;

fn valid() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        mmdb_writer::Writer::countries(&[
            ("10.0.0.0/8", Some("DE"), "EU"),
            ("10.64.0.0/10", Some("CN"), "AS"),
            ("192.0.2.0/24", None, "NA"),
            ("2001:db8::/32", Some("JP"), "AS"),
        ])
        .to_bytes()
    })
}

const ADDRESSES: &[&str] = &[
    "0.0.0.0",
    "10.1.2.3",
    "192.0.2.1",
    "255.255.255.255",
    "::",
    "::ffff:10.1.2.3",
    "2001:db8::1",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

fuzz_target!(|data: &[u8]| {
    let bytes = match data.first() {
        Some(b) if b % 2 == 1 => data.to_vec(),
        _ => {
            let mut bytes = valid().to_vec();
            for edit in data.get(1..).unwrap_or_default().chunks_exact(3) {
                let at = usize::from(u16::from_be_bytes([edit[0], edit[1]])) % bytes.len();
                bytes[at] = edit[2];
            }
            bytes
        }
    };
    let Ok(db) = GeoDatabase::from_bytes(bytes, "fuzz.mmdb") else {
        return;
    };
    for text in ADDRESSES {
        let addr: IpAddr = text.parse().unwrap();
        let found = db.lookup(addr);
        let (net, len) = found.network;
        assert_eq!(net.is_ipv4(), addr.is_ipv4(), "{addr} in {net}/{len}");
        assert!(len <= if addr.is_ipv4() { 32 } else { 128 });
    }
});
