//! A small MaxMind DB writer for tests: builds `.mmdb` files shaped like GeoLite2/GeoIP2
//! Country databases (`country.iso_code`, `continent.code`) from a list of networks,
//! following the published format (<https://maxmind.github.io/MaxMind-DB/>), version 2.0.
//!
//! Test-only, std only: it is included with `#[path]` by the library's unit tests, the
//! integration tests, the bench and the fuzz target, and is never part of gslb itself.
//!
//! What it writes: a binary search tree (IPv6 with the IPv4 space at `::/96`, or IPv4
//! only), 24-, 28- or 32-bit records; a data section with one copy of each distinct
//! record; the metadata map after the `\xAB\xCD\xEFMaxMind.com` marker. A network
//! inserted inside an earlier, shorter one takes its part of it (more specific wins).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// A value of the data section.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    U16(u16),
    U32(u32),
    U64(u64),
    Array(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// A map from `(key, value)` pairs.
    pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// A record as GeoLite2-Country has it: a country (when given) and its continent.
    pub fn country(iso_code: Option<&str>, continent: &str) -> Value {
        let names = |n: &str| Value::map([("en", Value::Str(n.to_owned()))]);
        let mut record = BTreeMap::new();
        record.insert(
            "continent".to_owned(),
            Value::map([
                ("code", Value::Str(continent.to_owned())),
                ("geoname_id", Value::U32(6_255_147)),
                ("names", names(continent)),
            ]),
        );
        if let Some(code) = iso_code {
            let country = Value::map([
                ("geoname_id", Value::U32(1_814_991)),
                ("iso_code", Value::Str(code.to_owned())),
                ("names", names(code)),
            ]);
            record.insert("country".to_owned(), country.clone());
            record.insert("registered_country".to_owned(), country);
        }
        Value::Map(record)
    }
}

/// The shape of the search tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4 only: a 32-level tree.
    V4,
    /// IPv6, IPv4 addresses under `::/96` (as MaxMind's own databases have them).
    V6,
}

/// A node's record while the tree is built.
#[derive(Debug, Clone)]
enum Slot {
    Empty,
    Data(usize),
    Node(Box<[Slot; 2]>),
}

/// Collects networks and their records, then writes the file.
#[derive(Debug)]
pub struct Writer {
    pub database_type: String,
    pub ip_version: IpVersion,
    /// 24, 28 or 32.
    pub record_size: u16,
    pub build_epoch: u64,
    root: Slot,
    records: Vec<Value>,
}

impl Writer {
    pub fn new(database_type: &str, ip_version: IpVersion) -> Self {
        Self {
            database_type: database_type.to_owned(),
            ip_version,
            record_size: 24,
            build_epoch: 1_764_460_800,
            root: Slot::Empty,
            records: Vec::new(),
        }
    }

    /// A GeoLite2-Country database (an IPv6 tree) of `(network, country, continent)`
    /// records ([`Value::country`]), inserted in order.
    pub fn countries(networks: &[(&str, Option<&str>, &str)]) -> Self {
        let mut writer = Self::new("GeoLite2-Country", IpVersion::V6);
        for &(network, country, continent) in networks {
            writer.insert(network, Value::country(country, continent));
        }
        writer
    }

    /// Adds a network, e.g. `"10.1.0.0/16"` or `"2001:db8::/32"`, with its record.
    ///
    /// # Panics
    ///
    /// On a malformed network, or an IPv6 one in an IPv4 tree.
    pub fn insert(&mut self, network: &str, record: Value) -> &mut Self {
        let (addr, len) = network
            .split_once('/')
            .expect("a network is ADDRESS/LENGTH");
        let addr: IpAddr = addr.parse().expect("an address");
        let len: u8 = len.parse().expect("a prefix length");
        let (bits, depth) = match (addr, self.ip_version) {
            (IpAddr::V4(a), IpVersion::V4) => (u128::from(u32::from(a)) << 96, len),
            (IpAddr::V4(a), IpVersion::V6) => (u128::from(u32::from(a)), 96 + len),
            (IpAddr::V6(a), IpVersion::V6) => (u128::from(a), len),
            (IpAddr::V6(_), IpVersion::V4) => panic!("an IPv6 network in an IPv4 database"),
        };
        let index = self.records.len();
        self.records.push(record);
        let mut slot = &mut self.root;
        for level in 0..depth {
            if let Slot::Data(_) | Slot::Empty = slot {
                // Split: the record (or the emptiness) covers both halves below.
                let was = slot.clone();
                *slot = Slot::Node(Box::new([was.clone(), was]));
            }
            let Slot::Node(children) = slot else {
                unreachable!()
            };
            let bit = (bits >> (127 - u32::from(level))) & 1;
            slot = &mut children[bit as usize];
        }
        *slot = Slot::Data(index);
        self
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Number the nodes breadth first; the root is node 0.
        let root = match &self.root {
            Slot::Node(_) => self.root.clone(),
            // A tree needs one node: both halves of the space alike.
            other => Slot::Node(Box::new([other.clone(), other.clone()])),
        };
        let mut nodes: Vec<&[Slot; 2]> = Vec::new();
        let mut queue = std::collections::VecDeque::new();
        queue.push_back(&root);
        while let Some(slot) = queue.pop_front() {
            if let Slot::Node(children) = slot {
                nodes.push(children);
                queue.extend(children.iter());
            }
        }
        // Data: one copy of each distinct record, found by its encoding.
        let mut data = Vec::new();
        let mut offsets: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut record_offset = Vec::with_capacity(self.records.len());
        for record in &self.records {
            let mut bytes = Vec::new();
            encode(record, &mut bytes);
            let offset = *offsets.entry(bytes.clone()).or_insert_with(|| {
                let at = data.len();
                data.extend_from_slice(&bytes);
                at
            });
            record_offset.push(offset);
        }
        let node_count = nodes.len();
        // Child node numbers follow the breadth-first order above.
        let mut next_child = 1;
        let mut tree = Vec::new();
        for children in &nodes {
            let mut values = [0u64; 2];
            for (i, child) in children.iter().enumerate() {
                values[i] = match child {
                    Slot::Empty => node_count as u64,
                    Slot::Data(r) => (node_count + 16 + record_offset[*r]) as u64,
                    Slot::Node(_) => {
                        next_child += 1;
                        (next_child - 1) as u64
                    }
                };
            }
            write_node(&mut tree, self.record_size, values[0], values[1]);
        }
        let mut out = tree;
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let metadata = Value::map([
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(self.build_epoch)),
            ("database_type", Value::Str(self.database_type.clone())),
            (
                "description",
                Value::map([("en", Value::Str("gslb test database".to_owned()))]),
            ),
            (
                "ip_version",
                Value::U16(match self.ip_version {
                    IpVersion::V4 => 4,
                    IpVersion::V6 => 6,
                }),
            ),
            ("languages", Value::Array(vec![Value::Str("en".to_owned())])),
            ("node_count", Value::U32(node_count as u32)),
            ("record_size", Value::U16(self.record_size)),
        ]);
        encode(&metadata, &mut out);
        out
    }

    /// Writes the file to `path`.
    ///
    /// # Panics
    ///
    /// When it cannot be written.
    pub fn write(&self, path: &std::path::Path) {
        std::fs::write(path, self.to_bytes()).expect("write the test database");
    }
}

/// One node: two records of `size` bits each.
fn write_node(out: &mut Vec<u8>, size: u16, left: u64, right: u64) {
    match size {
        24 => {
            out.extend_from_slice(&left.to_be_bytes()[5..]);
            out.extend_from_slice(&right.to_be_bytes()[5..]);
        }
        28 => {
            // The middle byte holds the top four bits of each record.
            out.extend_from_slice(&left.to_be_bytes()[5..]);
            out.push((((left >> 24) & 0x0f) << 4) as u8 | ((right >> 24) & 0x0f) as u8);
            out.extend_from_slice(&right.to_be_bytes()[5..]);
        }
        32 => {
            out.extend_from_slice(&left.to_be_bytes()[4..]);
            out.extend_from_slice(&right.to_be_bytes()[4..]);
        }
        other => panic!("record size {other} is not 24, 28 or 32"),
    }
}

/// A control byte (and the extended type byte) followed by the size's extra bytes.
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (low, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, Vec::new()),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if kind <= 7 {
        out.push((kind << 5) | low);
    } else {
        out.push(low);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

/// An unsigned integer in as few big-endian bytes as it needs.
fn unsigned(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Str(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(v) => unsigned(out, 5, u64::from(*v)),
        Value::U32(v) => unsigned(out, 6, u64::from(*v)),
        Value::U64(v) => unsigned(out, 9, *v),
        Value::Map(m) => {
            control(out, 7, m.len());
            for (k, v) in m {
                control(out, 2, k.len());
                out.extend_from_slice(k.as_bytes());
                encode(v, out);
            }
        }
        Value::Array(a) => {
            control(out, 11, a.len());
            for v in a {
                encode(v, out);
            }
        }
    }
}
