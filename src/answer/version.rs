//! Zone versions: the SOA serial of each zone, which moves when, and only when, the zone's
//! content changes, and the whole content of a zone as a secondary transfers it.
//!
//! A zone's content is summed up in a digest (64-bit FNV-1a over its records in canonical
//! order, the SOA serial left out). A rebuild that gives a zone the same digest keeps its
//! serial, so health churn that does not move answers sends no secondary a transfer; a
//! new digest gets `max(now, last + 1)` (Unix time, as the serial was before). The digest
//! is stable across builds and processes, so it is kept in the state file next to the
//! serial and a restart with the same content keeps the same serial.

use std::collections::BTreeMap;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{LowerName, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use serde::{Deserialize, Serialize};

use super::{AnswerTable, ZoneTable};

/// One zone's serial and the digest of the content it was given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneVersion {
    pub serial: u32,
    pub digest: u64,
}

/// Versions by zone origin (lowercase, with the trailing dot).
pub type Versions = BTreeMap<String, ZoneVersion>;

impl ZoneVersion {
    /// The version for content `digest`, given the zone's last one and the time.
    pub fn next(last: Option<&ZoneVersion>, digest: u64, now: u32) -> Self {
        match last {
            Some(last) if last.digest == digest => *last,
            Some(last) => Self {
                serial: now.max(last.serial.wrapping_add(1)),
                digest,
            },
            None => Self {
                serial: now.max(1),
                digest,
            },
        }
    }
}

impl ZoneTable {
    /// Every record of the zone but the SOA, one set per (name, type) in canonical order:
    /// names sorted, types sorted, and a set that rotates given whole (every address any
    /// variant serves, once), as a secondary serves it to everyone.
    pub(super) fn content(&self) -> Vec<Record> {
        let mut names: Vec<&LowerName> = self.nodes.keys().collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let node = &self.nodes[name];
            let mut sets: Vec<_> = node
                .sets
                .iter()
                .filter(|s| s.rtype != RecordType::SOA)
                .collect();
            sets.sort_by_key(|s| u16::from(s.rtype));
            for set in sets {
                let mut records: Vec<&Record> = Vec::new();
                for r in set.variants.iter().flatten() {
                    if !records.iter().any(|seen| seen.data == r.data) {
                        records.push(r);
                    }
                }
                records.sort_by_cached_key(|r| rdata_bytes(r));
                out.extend(records.into_iter().cloned());
            }
        }
        out
    }

    /// The digest of the zone's content: its records and its SOA without the serial.
    pub(super) fn digest(&self) -> u64 {
        let mut hash = Fnv::default();
        if let Some(soa) = self.soa() {
            let mut soa = soa.clone();
            soa.data = RData::SOA(with_serial(&soa, 0));
            hash.record(&soa);
        }
        for r in self.content() {
            hash.record(&r);
        }
        hash.0
    }

    /// The apex SOA record (as served to SOA queries and first in a transfer).
    pub(super) fn soa(&self) -> Option<&Record> {
        self.nodes
            .get(&self.origin)?
            .sets
            .iter()
            .find(|s| s.rtype == RecordType::SOA)?
            .first()
            .first()
    }

    /// Writes `serial` into the apex SOA and the negative-answer SOA.
    pub(super) fn set_serial(&mut self, serial: u32) {
        let origin = self.origin.clone();
        if let Some(set) = self
            .nodes
            .get_mut(&origin)
            .and_then(|n| n.sets.iter_mut().find(|s| s.rtype == RecordType::SOA))
        {
            for r in set.variants.iter_mut().flatten() {
                r.data = RData::SOA(with_serial(r, serial));
            }
        }
        self.negative_soa.data = RData::SOA(with_serial(&self.negative_soa, serial));
    }
}

/// What a zone transfer sends: the SOA, then the content, then the SOA again.
#[derive(Debug)]
pub struct ZoneCopy {
    pub soa: Record,
    pub records: Vec<Record>,
    pub serial: u32,
}

impl AnswerTable {
    /// The index of the zone whose origin is exactly `name` (transfers name the apex).
    pub fn zone_index(&self, name: &LowerName) -> Option<usize> {
        self.zones.iter().position(|z| &z.origin == name)
    }

    /// The highest serial of any zone: it moves whenever some zone's content does.
    pub fn serial(&self) -> u32 {
        self.versions.values().map(|v| v.serial).max().unwrap_or(0)
    }

    /// The serial served for the zone at `index`.
    pub fn serial_of(&self, index: usize) -> Option<u32> {
        let zone = self.zones.get(index)?;
        self.versions
            .get(&zone.origin.to_string())
            .map(|v| v.serial)
    }

    /// The apex SOA of the zone at `index`.
    pub fn zone_soa(&self, index: usize) -> Option<Record> {
        self.zones.get(index)?.soa().cloned()
    }

    /// The zone at `index` as a transfer sends it.
    pub fn zone_copy(&self, index: usize) -> Option<ZoneCopy> {
        let zone = self.zones.get(index)?;
        let soa = zone.soa()?.clone();
        let serial = match &soa.data {
            RData::SOA(s) => s.serial,
            _ => return None,
        };
        let mut records = zone.content();
        if let Some(signer) = &zone.signer {
            records = signed_copy(zone, signer, &soa, records);
        }
        Some(ZoneCopy {
            soa,
            records,
            serial,
        })
    }
}

/// The content of a signed zone as a secondary serves it: each set followed by its RRSIGs
/// (the SOA's among them), and an NSEC chain over every name that holds records, signed.
/// Unlike the online answers, this chain names each next name: a secondary that serves
/// it lets its clients walk the zone.
fn signed_copy(
    zone: &ZoneTable,
    signer: &crate::dnssec::ZoneSigner,
    soa: &Record,
    content: Vec<Record>,
) -> Vec<Record> {
    let mut out = Vec::with_capacity(content.len() * 3);
    out.extend(signer.sign_cached(std::slice::from_ref(soa)));
    // Names in content order (canonical), each with its types.
    let mut names: Vec<(hickory_proto::rr::Name, Vec<RecordType>)> =
        vec![(soa.name.clone(), vec![RecordType::SOA])];
    let mut start = 0;
    while start < content.len() {
        let first = &content[start];
        let end = start
            + content[start..]
                .iter()
                .take_while(|r| r.name == first.name && r.record_type() == first.record_type())
                .count();
        let set = &content[start..end];
        out.extend(set.iter().cloned());
        out.extend(signer.sign_cached(set));
        match names.last_mut() {
            Some((name, types)) if *name == first.name => types.push(first.record_type()),
            _ => names.push((first.name.clone(), vec![first.record_type()])),
        }
        start = end;
    }
    let ttl = zone.negative_soa.ttl;
    for (i, (name, types)) in names.iter().enumerate() {
        let next = names.get(i + 1).map_or(&soa.name, |(n, _)| n);
        let mut types = types.clone();
        types.sort_by_key(|t| u16::from(*t));
        out.extend(signer.nsec(name, next.clone(), &types, ttl, true));
    }
    out
}

fn with_serial(record: &Record, serial: u32) -> SOA {
    match &record.data {
        RData::SOA(s) => {
            let mut soa = s.clone();
            soa.serial = serial;
            soa
        }
        // Only ever called on SOA records.
        _ => SOA::new(record.name.clone(), record.name.clone(), serial, 0, 0, 0, 0),
    }
}

fn rdata_bytes(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_canonical_form(true);
    encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
    let _ = record.data.emit(&mut encoder);
    bytes
}

/// 64-bit FNV-1a: small, stable across builds and platforms (unlike `DefaultHasher`).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The record's canonical wire form (RFC 4034 §6.2: lowercase names, no compression).
    fn record(&mut self, record: &Record) {
        let mut bytes = Vec::new();
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_canonical_form(true);
        encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
        let _ = record.emit(&mut encoder);
        self.bytes(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_moves_only_with_the_content() {
        let first = ZoneVersion::next(None, 7, 1_000);
        assert_eq!(first.serial, 1_000);
        assert_eq!(ZoneVersion::next(Some(&first), 7, 5_000), first);
        let changed = ZoneVersion::next(Some(&first), 8, 5_000);
        assert_eq!(changed.serial, 5_000);
        // Two changes within a second, or a clock behind the last serial: still up.
        assert_eq!(ZoneVersion::next(Some(&changed), 9, 5_000).serial, 5_001);
        assert_eq!(ZoneVersion::next(Some(&changed), 9, 10).serial, 5_001);
    }
}
