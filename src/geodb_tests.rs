//! The database reader against files made by the test writer (`tests/support`), whose
//! output the `maxminddb` crate also verifies whole.

use std::net::IpAddr;

use super::*;

use crate::mmdb_writer::{IpVersion, Value, Writer};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn code(text: &str) -> Option<Code> {
    Code::parse(text)
}

/// CN and JP in Asia, DE in Europe, a continent-only record, nested networks.
fn writer(version: IpVersion) -> Writer {
    let mut w = Writer::new("GeoLite2-Country", version);
    w.insert("10.0.0.0/8", Value::country(Some("CN"), "AS"))
        .insert("10.2.0.0/16", Value::country(Some("DE"), "EU"))
        .insert("10.3.0.0/20", Value::country(Some("JP"), "AS"))
        .insert("10.4.0.0/24", Value::country(None, "EU"));
    if version == IpVersion::V6 {
        w.insert("2001:db8::/32", Value::country(Some("DE"), "EU"));
    }
    w
}

fn open(w: &Writer) -> GeoDatabase {
    GeoDatabase::from_bytes(w.to_bytes(), "test.mmdb").unwrap()
}

#[test]
fn places_addresses_with_the_network_that_matched() {
    for version in [IpVersion::V4, IpVersion::V6] {
        for size in [24, 28, 32] {
            let mut w = writer(version);
            w.record_size = size;
            let db = open(&w);
            let m = db.lookup(ip("10.1.2.3"));
            // 10.0.0.0/8 less what was carved out of it: 10.0.0.0/15 is still whole.
            assert_eq!(m.network, (ip("10.0.0.0"), 15), "{version:?} {size}");
            let place = m.place.unwrap();
            assert_eq!((place.country, place.continent), (code("CN"), code("AS")));
            let m = db.lookup(ip("10.2.200.1"));
            assert_eq!(m.network, (ip("10.2.0.0"), 16));
            assert_eq!(m.place.unwrap().country, code("DE"));
            let m = db.lookup(ip("10.3.15.255"));
            assert_eq!(m.network, (ip("10.3.0.0"), 20));
            assert_eq!(m.place.unwrap().country, code("JP"));
            // A record with a continent only.
            let m = db.lookup(ip("10.4.0.9"));
            assert_eq!(m.network, (ip("10.4.0.0"), 24));
            assert_eq!(
                m.place,
                Some(Place {
                    country: None,
                    continent: code("EU")
                })
            );
            // Nothing there: the empty network around it.
            let m = db.lookup(ip("192.0.2.1"));
            assert_eq!(m.network, (ip("128.0.0.0"), 1));
            assert_eq!(m.place, None);
        }
    }
}

#[test]
fn ipv6_in_an_ipv6_database_and_not_in_an_ipv4_one() {
    let db = open(&writer(IpVersion::V6));
    let m = db.lookup(ip("2001:db8:42::1"));
    assert_eq!(m.network, (ip("2001:db8::"), 32));
    assert_eq!(m.place.unwrap().country, code("DE"));
    // IPv4 addresses live in the IPv6 tree under ::/96; the IPv4-compatible form finds
    // them there.
    let m = db.lookup(ip("::10.2.0.1"));
    assert_eq!(m.network, (ip("::10.2.0.0"), 112));
    assert_eq!(m.place.unwrap().country, code("DE"));

    let v4 = open(&writer(IpVersion::V4));
    let m = v4.lookup(ip("2001:db8::1"));
    assert_eq!(
        m,
        DbMatch {
            network: (ip("2001:db8::1"), 128),
            place: None
        }
    );
}

#[test]
fn an_ipv4_address_above_the_ipv4_subtree_takes_the_whole_ipv4_space() {
    // Only IPv6 data: the tree ends before ::/96, so all of IPv4 is one empty network.
    let mut w = Writer::new("GeoIP2-City", IpVersion::V6);
    w.insert("2001:db8::/32", Value::country(Some("FR"), "EU"));
    let db = open(&w);
    let m = db.lookup(ip("10.9.9.9"));
    assert_eq!(m.place, None);
    assert_eq!(m.network, (ip("0.0.0.0"), 0));
}

#[test]
fn rejects_what_is_not_a_country_database() {
    let mut asn = Writer::new("GeoLite2-ASN", IpVersion::V6);
    asn.insert(
        "10.0.0.0/8",
        Value::map([("autonomous_system_number", Value::U32(64512))]),
    );
    let e = GeoDatabase::from_bytes(asn.to_bytes(), "asn.mmdb").unwrap_err();
    assert!(
        e.contains("`GeoLite2-ASN` database") && e.contains("GeoLite2-Country"),
        "{e}"
    );

    let bytes = writer(IpVersion::V6).to_bytes();
    // Cut short: the metadata marker is gone.
    let e = GeoDatabase::from_bytes(bytes[..bytes.len() / 2].to_vec(), "cut.mmdb").unwrap_err();
    assert!(
        e.contains("cut.mmdb is not a valid MaxMind DB (.mmdb) file"),
        "{e}"
    );
    // A tree record pointing past the data section: caught by the verification.
    let mut broken = bytes.clone();
    broken[0..3].copy_from_slice(&[0xff, 0xff, 0xf0]);
    let e = GeoDatabase::from_bytes(broken, "broken.mmdb").unwrap_err();
    assert!(e.contains("broken.mmdb is not a valid MaxMind DB"), "{e}");
    let e = GeoDatabase::from_bytes(b"hello".to_vec(), "text.mmdb").unwrap_err();
    assert!(e.contains("not a valid MaxMind DB"), "{e}");
}

#[test]
fn open_names_the_file_that_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.mmdb");
    let e = GeoDatabase::open(&missing).unwrap_err();
    assert!(
        e.starts_with("cannot read ") && e.contains("missing.mmdb"),
        "{e}"
    );
    let e = GeoDatabase::open(dir.path()).unwrap_err();
    assert!(e.ends_with("is not a file"), "{e}");
    let path = dir.path().join("ok.mmdb");
    writer(IpVersion::V6).write(&path);
    let db = GeoDatabase::open(&path).unwrap();
    assert_eq!(db.info().database_type, "GeoLite2-Country");
    assert_eq!(db.info().ip_version, 6);
    assert_eq!(db.info().path, path.display().to_string());
}

#[test]
fn equal_by_content() {
    let a = open(&writer(IpVersion::V6));
    let b = open(&writer(IpVersion::V6));
    assert_eq!(a, b);
    let mut other = writer(IpVersion::V6);
    other.insert("10.5.0.0/16", Value::country(Some("FR"), "EU"));
    assert_ne!(a, open(&other));
}

#[test]
fn codes_are_two_capital_letters() {
    assert_eq!(
        Code::parse("CN").map(|c| c.to_string()),
        Some("CN".to_owned())
    );
    for bad in ["cn", "C", "CHN", "", "C1", "É"] {
        assert_eq!(Code::parse(bad), None, "{bad}");
    }
}
