//! Bytes in as a `[geo] database` file: a file that passes the checks of config loading
//! never makes a lookup panic, whatever its tree and data hold, and every lookup reports a
//! network of the address's own family.
#![no_main]

use std::net::IpAddr;

use gslb::geodb::GeoDatabase;
use libfuzzer_sys::fuzz_target;

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
    let Ok(db) = GeoDatabase::from_bytes(data.to_vec(), "fuzz.mmdb") else {
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
