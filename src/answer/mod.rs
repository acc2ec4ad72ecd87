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
    nodes: HashMap<LowerName, Node>,
}

/// Every record set at one name. An empty node is an empty non-terminal (NODATA).
#[derive(Debug, Default)]
struct Node {
    sets: Vec<RrSet>,
}

/// One record set, possibly in several variants served in turn.
#[derive(Debug)]
struct RrSet {
    rtype: RecordType,
    variants: Vec<Vec<Record>>,
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
}

impl RrSet {
    fn new(rtype: RecordType, variants: Vec<Vec<Record>>) -> Self {
        Self {
            rtype,
            variants,
            next: AtomicUsize::new(0),
            additional: Vec::new(),
            geo: None,
        }
    }

    /// The variants served to clients of `region` (`None`: in no region).
    fn variants_for(&self, region: Option<usize>) -> &[Vec<Record>] {
        match (&self.geo, region) {
            (Some(geo), Some(r)) => geo.regions.get(r).map_or(&self.variants, |v| v),
            _ => &self.variants,
        }
    }

    /// The variant for this query: the next in turn when there are several.
    fn pick(&self, region: Option<usize>) -> &[Record] {
        let variants = self.variants_for(region);
        match variants.len() {
            0 => &[],
            1 => &variants[0],
            n => &variants[self.next.fetch_add(1, Ordering::Relaxed) % n],
        }
    }

    /// The first variant for `region`, moving no rotation.
    fn first_for(&self, region: Option<usize>) -> &[Record] {
        self.variants_for(region).first().map_or(&[], Vec::as_slice)
    }

    fn first(&self) -> &[Record] {
        self.first_for(None)
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
    chain_len: usize,
    /// SOA for the authority section of negative answers.
    pub soa: Option<&'a Record>,
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
            chain_len: 0,
            soa: None,
            additional: &[],
            geo: None,
        }
    }

    /// Records of the answer section, in order (CNAMEs first, then the final set).
    pub fn answers(&self) -> impl Iterator<Item = &'a Record> + Send + 'a {
        let chain = self.chain;
        (0..self.chain_len).flat_map(move |i| chain[i].iter())
    }

    fn push(&mut self, records: &'a [Record]) {
        if self.chain_len < self.chain.len() {
            self.chain[self.chain_len] = records;
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
        choose: fn(&'a RrSet, Option<usize>) -> &'a [Record],
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
                let records = choose(set, region);
                if records.is_empty() && set.geo.is_some() {
                    // This region's answer has no address of this family.
                    response.outcome = Outcome::NoData;
                    response.soa = Some(&zone.negative_soa);
                    return response;
                }
                response.push(records);
                response.additional = &set.additional;
                return response;
            }
            let Some(cname) = node.sets.iter().find(|s| s.rtype == RecordType::CNAME) else {
                response.outcome = Outcome::NoData;
                response.soa = Some(&zone.negative_soa);
                return response;
            };
            let records = choose(cname, None);
            response.push(records);
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
mod geo_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod ttl_tests;
#[cfg(test)]
mod wire_tests;
