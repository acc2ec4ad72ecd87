//! The answer table: an immutable snapshot, (name, type) -> records, that the DNS path
//! reads without locks or I/O.
//!
//! It is rebuilt from the inventory and a health snapshot on every health change
//! ([`AnswerTable::build`], a pure function in `build.rs`) and swapped in whole. A lookup
//! returns borrowed records: serving a query allocates nothing here.

mod build;
pub mod geo;
pub mod journal;
pub mod plan;
pub mod ttl;
pub mod version;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::rr::{LowerName, RData, Record, RecordType};

pub use geo::{Client, GeoIndex, Located};
pub use plan::AppPlan;
pub use version::{Versions, ZoneCopy, ZoneVersion};

/// Longest CNAME chain followed inside our zones.
pub const MAX_CHAIN: usize = 8;

/// Answers for every zone, and the plan of every app that produced them.
#[derive(Debug)]
pub struct AnswerTable {
    zones: Vec<ZoneTable>,
    /// Indexed like the apps of `inventory`.
    pub apps: Vec<AppPlan>,
    /// Each zone's SOA serial and content digest, by origin.
    pub versions: Versions,
    /// Each zone's recent changes, for IXFR (empty until [`AnswerTable::carry_journal`]).
    pub journal: journal::Journal,
    /// The inventory the plans' indexes refer to.
    pub inventory: std::sync::Arc<crate::model::Inventory>,
    /// The same answers pre-encoded, for the UDP fast path.
    pub wire: wire::WireIndex,
    /// Client → region, for the sets of `geo` apps.
    pub geo: GeoIndex,
}

#[derive(Debug)]
struct ZoneTable {
    origin: LowerName,
    /// The SOA as served in negative answers: TTL is min(SOA TTL, MINIMUM), RFC 2308 §3.
    negative_soa: Record,
    /// Its RRSIGs, when the zone is signed.
    negative_soa_sigs: Vec<Record>,
    nodes: HashMap<LowerName, Node>,
    /// The zone's keys, when it is signed (DNSSEC).
    signer: Option<std::sync::Arc<crate::dnssec::ZoneSigner>>,
}

/// Every record set at one name. An empty node is an empty non-terminal (NODATA).
#[derive(Debug, Default)]
struct Node {
    sets: Vec<RrSet>,
    /// In a signed zone: the NSEC listing the types held here, and its RRSIGs (NODATA).
    denial: Vec<Record>,
}

/// One record set, possibly in several variants served in turn.
#[derive(Debug)]
struct RrSet {
    rtype: RecordType,
    variants: Vec<Vec<Record>>,
    /// In a signed zone: the RRSIGs of each variant (the same ones when variants only
    /// rotate the order: a signature covers the set in canonical order).
    sigs: Vec<Vec<Record>>,
    next: AtomicUsize,
    /// Glue for NS and MX targets inside our zones.
    additional: Vec<Record>,
    /// A `geo` app's set: the app, and the variants of each region (`variants` then
    /// serve clients in no region).
    geo: Option<GeoSet>,
}

#[derive(Debug)]
struct GeoSet {
    app: usize,
    regions: Vec<Vec<Vec<Record>>>,
    /// In a signed zone: the RRSIGs of each variant of each region.
    region_sigs: Vec<Vec<Vec<Record>>>,
    /// In a signed zone: the NODATA proof (NSEC listing the types held for those clients,
    /// and its RRSIGs) for clients of each region, then for clients in none; used when
    /// this set has no records for them.
    denials: Vec<Vec<Record>>,
}

impl RrSet {
    fn new(rtype: RecordType, variants: Vec<Vec<Record>>) -> Self {
        Self {
            rtype,
            variants,
            sigs: Vec::new(),
            next: AtomicUsize::new(0),
            additional: Vec::new(),
            geo: None,
        }
    }

    /// The variants served to clients of `region` (`None`: in no region), and their
    /// signatures (empty in an unsigned zone).
    fn variants_for(&self, region: Option<usize>) -> (&[Vec<Record>], &[Vec<Record>]) {
        match (&self.geo, region) {
            (Some(geo), Some(r)) if r < geo.regions.len() => (
                &geo.regions[r],
                geo.region_sigs.get(r).map_or(&[], Vec::as_slice),
            ),
            _ => (&self.variants, &self.sigs),
        }
    }

    /// In a signed zone, the NODATA proof for clients of `region` when this `geo` set
    /// has no records for them.
    fn geo_denial(&self, region: Option<usize>) -> &[Record] {
        let Some(geo) = &self.geo else {
            return &[];
        };
        let i = region
            .filter(|r| *r < geo.regions.len())
            .unwrap_or(geo.regions.len());
        geo.denials.get(i).map_or(&[], Vec::as_slice)
    }

    /// The variant for this query: the next in turn when there are several.
    fn pick(&self, region: Option<usize>) -> usize {
        match self.variants_for(region).0.len() {
            0 | 1 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// The first variant, moving no rotation.
    fn first_for(&self, _region: Option<usize>) -> usize {
        0
    }

    fn first(&self) -> &[Record] {
        self.variant(None, 0).0
    }

    /// Variant `i` for clients of `region` and its signatures (none when the zone is
    /// unsigned).
    fn variant(&self, region: Option<usize>, i: usize) -> (&[Record], &[Record]) {
        let (variants, sigs) = self.variants_for(region);
        (
            variants.get(i).map_or(&[], Vec::as_slice),
            sigs.get(i).map_or(&[], Vec::as_slice),
        )
    }
}

/// What a query gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Records in the answer section (possibly only a CNAME chain leaving our zones).
    Answer,
    /// The name exists, not with this type: NOERROR, no answer, SOA in authority.
    NoData,
    /// The name does not exist: NXDOMAIN, SOA in authority.
    NxDomain,
    /// The name is in none of our zones: REFUSED (we are not a resolver).
    Refused,
}

/// A lookup result borrowing from the table.
#[derive(Debug)]
pub struct Response<'a> {
    pub outcome: Outcome,
    chain: [&'a [Record]; MAX_CHAIN + 1],
    /// The RRSIGs of each set of `chain` (empty slices in unsigned zones).
    chain_sigs: [&'a [Record]; MAX_CHAIN + 1],
    chain_len: usize,
    /// SOA for the authority section of negative answers.
    pub soa: Option<&'a Record>,
    /// In a signed zone, the SOA's RRSIGs and the proof of a NODATA (NSEC and RRSIGs).
    pub denial: [&'a [Record]; 2],
    /// For NXDOMAIN in a signed zone: the missing name and its zone's signer, which makes
    /// the denial of that name when the client asked for DNSSEC.
    pub missing: Option<(LowerName, &'a crate::dnssec::ZoneSigner, u32)>,
    pub additional: &'a [Record],
    /// Set when a `geo` app's set answered: the app, and where the client was placed.
    pub geo: Option<(usize, Located)>,
}

impl Response<'_> {
    /// The ECS SCOPE PREFIX-LENGTH to echo: how much of the client's address the answer
    /// depended on (0 unless a `geo` set answered).
    pub fn scope(&self) -> u8 {
        self.geo.map_or(0, |(_, l)| l.scope)
    }
}

impl<'a> Response<'a> {
    fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            chain: [&[]; MAX_CHAIN + 1],
            chain_sigs: [&[]; MAX_CHAIN + 1],
            chain_len: 0,
            soa: None,
            denial: [&[]; 2],
            missing: None,
            additional: &[],
            geo: None,
        }
    }

    /// Records of the answer section, in order (CNAMEs first, then the final set).
    pub fn answers(&self) -> impl Iterator<Item = &'a Record> + Send + 'a {
        let chain = self.chain;
        (0..self.chain_len).flat_map(move |i| chain[i].iter())
    }

    /// The answer section with each set followed by its RRSIGs, for DO=1 queries.
    pub fn signed_answers(&self) -> impl Iterator<Item = &'a Record> + Send + 'a {
        let (chain, sigs) = (self.chain, self.chain_sigs);
        (0..self.chain_len).flat_map(move |i| chain[i].iter().chain(sigs[i]))
    }

    /// Whether the answer comes from a signed zone (the last zone of a CNAME chain).
    pub fn signed(&self) -> bool {
        self.missing.is_some()
            || !self.denial[0].is_empty()
            || self.chain_sigs[..self.chain_len]
                .iter()
                .any(|s| !s.is_empty())
    }

    fn push(&mut self, (records, sigs): (&'a [Record], &'a [Record])) {
        if self.chain_len < self.chain.len() {
            self.chain[self.chain_len] = records;
            self.chain_sigs[self.chain_len] = sigs;
            self.chain_len += 1;
        }
    }
}

impl AnswerTable {
    /// Answers `qname`/`qtype` from the table, serving rotating sets in turn. `client`
    /// places the asker for `geo` apps (`None`: in no region).
    pub fn lookup(
        &self,
        qname: &LowerName,
        qtype: RecordType,
        client: Option<Client>,
    ) -> Response<'_> {
        self.resolve(qname, qtype, client, RrSet::pick)
    }

    /// Like [`lookup`](Self::lookup) but without moving any rotation: for `explain`.
    pub fn peek(
        &self,
        qname: &LowerName,
        qtype: RecordType,
        client: Option<Client>,
    ) -> Response<'_> {
        self.resolve(qname, qtype, client, RrSet::first_for)
    }

    fn resolve<'a>(
        &'a self,
        qname: &LowerName,
        qtype: RecordType,
        client: Option<Client>,
        choose: fn(&'a RrSet, Option<usize>) -> usize,
    ) -> Response<'a> {
        let Some(zone) = self.zone_of(qname) else {
            return Response::new(Outcome::Refused);
        };
        let mut response = Response::new(Outcome::Answer);
        let mut name = qname.clone();
        let mut zone = zone;
        for _ in 0..=MAX_CHAIN {
            let Some(node) = zone.nodes.get(&name) else {
                response.outcome = Outcome::NxDomain;
                response.soa = Some(&zone.negative_soa);
                if let Some(signer) = &zone.signer {
                    response.denial[0] = &zone.negative_soa_sigs;
                    response.missing = Some((name, signer, zone.negative_soa.ttl));
                }
                return response;
            };
            let wanted = if qtype == RecordType::ANY {
                // RFC 8482: answer ANY with one record set rather than all of them.
                node.sets.first()
            } else {
                node.sets.iter().find(|s| s.rtype == qtype)
            };
            if let Some(set) = wanted {
                let region = match &set.geo {
                    None => None,
                    Some(geo) => {
                        let located = client.map(|c| self.geo.locate(c));
                        if let Some(l) = located {
                            response.geo = Some((geo.app, l));
                        }
                        located.and_then(|l| l.region)
                    }
                };
                let (records, sigs) = set.variant(region, choose(set, region));
                if records.is_empty() && set.geo.is_some() {
                    // This region's answer has no address of this family.
                    response.outcome = Outcome::NoData;
                    response.soa = Some(&zone.negative_soa);
                    if zone.signer.is_some() {
                        response.denial = [&zone.negative_soa_sigs, set.geo_denial(region)];
                    }
                    return response;
                }
                response.push((records, sigs));
                response.additional = &set.additional;
                return response;
            }
            let Some(cname) = node.sets.iter().find(|s| s.rtype == RecordType::CNAME) else {
                response.outcome = Outcome::NoData;
                response.soa = Some(&zone.negative_soa);
                if zone.signer.is_some() {
                    response.denial = [&zone.negative_soa_sigs, &node.denial];
                }
                return response;
            };
            let (records, sigs) = cname.variant(None, choose(cname, None));
            response.push((records, sigs));
            let Some(RData::CNAME(target)) = records.first().map(|r| &r.data) else {
                return response;
            };
            name = LowerName::new(&target.0);
            match self.zone_of(&name) {
                Some(z) => zone = z,
                // The chain leaves our zones: the resolver follows it from here.
                None => return response,
            }
        }
        // A loop or an over-long chain: answer what we have, as resolvers expect.
        response
    }

    /// The zone holding `name`: the one with the longest matching origin.
    fn zone_of(&self, name: &LowerName) -> Option<&ZoneTable> {
        zone_of(&self.zones, name)
    }
}

/// The zone of `zones` holding `name`: the one with the longest matching origin.
fn zone_of<'a>(zones: &'a [ZoneTable], name: &LowerName) -> Option<&'a ZoneTable> {
    zones
        .iter()
        .filter(|z| z.origin.zone_of(name))
        .max_by_key(|z| z.origin.num_labels())
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod geo_db_tests;
#[cfg(test)]
mod geo_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod ttl_tests;
#[cfg(test)]
mod wire_tests;
