//! The IXFR journal: the last few changes of each zone as differences (records removed,
//! records added, from one serial to the next), so that a secondary a few serials behind
//! transfers only what changed (RFC 1995).
//!
//! Each table carries the journal of the one before it plus the change between the two
//! ([`AnswerTable::carry_journal`], a pure function run where the table is built). The
//! deltas are shared (`Arc`) between tables, and at most [`JOURNAL_LEN`] are kept per zone.
//! The journal lives in memory only: after a restart, a secondary that is behind gets the
//! whole zone once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::AnswerTable;

/// Changes kept per zone.
pub const JOURNAL_LEN: usize = 32;

/// One change of a zone, as an IXFR sends it.
#[derive(Debug)]
pub struct Delta {
    /// The SOA before (its serial is where the change starts) and after.
    pub old_soa: Record,
    pub new_soa: Record,
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

impl Delta {
    pub fn from_serial(&self) -> u32 {
        soa_serial(&self.old_soa)
    }

    pub fn to_serial(&self) -> u32 {
        soa_serial(&self.new_soa)
    }
}

/// The recent changes of every zone, oldest first, by origin.
pub type Journal = BTreeMap<String, Vec<Arc<Delta>>>;

impl AnswerTable {
    /// Takes over `prev`'s journal, adding one delta for each zone whose serial changed
    /// since (and dropping zones that are gone).
    pub fn carry_journal(&mut self, prev: &AnswerTable) {
        let mut journal = Journal::new();
        for (index, zone) in self.zones.iter().enumerate() {
            let origin = zone.origin.to_string();
            let mut deltas = prev.journal.get(&origin).cloned().unwrap_or_default();
            let before = prev.zone_index(&zone.origin);
            let changed = before.is_some_and(|i| prev.serial_of(i) != self.serial_of(index));
            // Only a changed zone's content is compared (a rebuild touches few zones).
            let copies = before
                .filter(|_| changed)
                .and_then(|i| Some((prev.zone_copy(i)?, self.zone_copy(index)?)));
            if let Some((before, after)) = copies {
                let removed = minus(&before.records, &after.records);
                let added = minus(&after.records, &before.records);
                deltas.push(Arc::new(Delta {
                    old_soa: before.soa,
                    new_soa: after.soa,
                    removed,
                    added,
                }));
                let excess = deltas.len().saturating_sub(JOURNAL_LEN);
                deltas.drain(..excess);
            }
            if !deltas.is_empty() {
                journal.insert(origin, deltas);
            }
        }
        self.journal = journal;
    }

    /// The changes that take the zone at `index` from serial `from` to its current serial,
    /// in order, or `None` when the journal does not reach back that far or the zone is
    /// signed (then IXFR falls back to a full transfer, RFC 1995 §4).
    pub fn changes_since(&self, index: usize, from: u32) -> Option<Vec<Arc<Delta>>> {
        let zone = self.zones.get(index)?;
        if zone.signer.is_some() {
            // The journal holds no signatures: a signed zone is always sent whole.
            return None;
        }
        let current = self.serial_of(index)?;
        let deltas = self.journal.get(&zone.origin.to_string())?;
        let start = deltas.iter().position(|d| d.from_serial() == from)?;
        let mut chain = Vec::new();
        let mut at = from;
        for delta in &deltas[start..] {
            if delta.from_serial() != at {
                return None;
            }
            chain.push(delta.clone());
            at = delta.to_serial();
        }
        (at == current).then_some(chain)
    }
}

/// Records of `a` that are not in `b` (same owner, type, TTL and data), in `a`'s order.
fn minus(a: &[Record], b: &[Record]) -> Vec<Record> {
    let b: HashSet<Vec<u8>> = b.iter().map(canonical).collect();
    a.iter()
        .filter(|r| !b.contains(&canonical(r)))
        .cloned()
        .collect()
}

/// A record's canonical wire form: lowercase names, no compression.
fn canonical(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_canonical_form(true);
    encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
    let _ = record.emit(&mut encoder);
    bytes
}

fn soa_serial(record: &Record) -> u32 {
    match &record.data {
        hickory_proto::rr::RData::SOA(soa) => soa.serial,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::{LowerName, Name, RecordType};

    use super::*;
    use crate::answer::fixtures::{health, two_clusters};
    use crate::health::State::*;

    #[test]
    fn the_journal_holds_each_change_and_chains_them_to_the_current_serial() {
        let inv = two_clusters("failover");
        let zone = |t: &AnswerTable| {
            t.zone_index(&LowerName::new(&Name::from_ascii("tke-demo.cn.").unwrap()))
                .unwrap()
        };
        let a = AnswerTable::build_versioned(&health(&inv, &[Up, Up]), &Default::default(), 100);
        let mut b = AnswerTable::build_versioned(&health(&inv, &[Down, Up]), &a.versions, 200);
        b.carry_journal(&a);
        let mut c = AnswerTable::build_versioned(&health(&inv, &[Up, Up]), &b.versions, 300);
        c.carry_journal(&b);
        // Same content: no new delta, the journal carried over.
        let mut d = AnswerTable::build_versioned(&health(&inv, &[Up, Down]), &c.versions, 400);
        d.carry_journal(&c);
        assert_eq!(d.serial_of(zone(&d)), Some(300));

        let z = zone(&d);
        let chain = d.changes_since(z, 100).unwrap();
        assert_eq!(chain.len(), 2);
        let addresses = |records: &[Record]| -> Vec<String> {
            records
                .iter()
                .filter(|r| r.record_type() == RecordType::A)
                .map(|r| r.data.to_string())
                .collect()
        };
        assert_eq!((chain[0].from_serial(), chain[0].to_serial()), (100, 200));
        assert_eq!(addresses(&chain[0].removed), vec!["127.0.1.1"]);
        assert_eq!(addresses(&chain[0].added), vec!["127.0.1.2"]);
        assert_eq!((chain[1].from_serial(), chain[1].to_serial()), (200, 300));
        assert_eq!(addresses(&chain[1].removed), vec!["127.0.1.2"]);
        assert_eq!(addresses(&chain[1].added), vec!["127.0.1.1"]);
        assert_eq!(d.changes_since(z, 200).unwrap().len(), 1);
        // A serial the journal never saw, or the current one: no chain.
        assert!(d.changes_since(z, 150).is_none());
        assert!(d.changes_since(z, 300).is_none());
    }

    #[test]
    fn the_journal_keeps_the_last_changes_only() {
        let inv = two_clusters("failover");
        let mut t = AnswerTable::build_versioned(&health(&inv, &[Up, Up]), &Default::default(), 1);
        for i in 0..(JOURNAL_LEN as u32 + 5) {
            let states = if i % 2 == 0 { [Down, Up] } else { [Up, Up] };
            let mut next =
                AnswerTable::build_versioned(&health(&inv, &states), &t.versions, 10 + i);
            next.carry_journal(&t);
            t = next;
        }
        let deltas = t.journal.values().next().unwrap();
        assert_eq!(deltas.len(), JOURNAL_LEN);
        assert!(
            t.changes_since(0, 1).is_none(),
            "the first change has been dropped"
        );
        assert!(t.changes_since(0, deltas[0].from_serial()).is_some());
    }
}
