//! Answers pre-encoded in DNS wire format, for the UDP fast path.
//!
//! Built once per answer table from the same record sets the general path serves: every
//! (name, type) set variant becomes a whole response message, encoded by hickory-proto
//! with a lowercase question, a zero id and no EDNS. Serving one copies it and patches the
//! id, the RD and CD flags and the question bytes (the client's own spelling, same length),
//! then appends an OPT record when the query had one. Negative answers are kept per name
//! (NODATA) and per zone (the SOA for NXDOMAIN, whose owner is a pointer into the
//! question). Anything the index cannot answer exactly as the general path would (a CNAME
//! chain, ANY, meta types, names outside our zones) is [`WireAnswer::Slow`].
//!
//! In a signed zone each set and each NODATA is also kept signed (the RRSIGs after the
//! set; the SOA's RRSIGs and the NSEC after the SOA), for DO=1 queries; a DO=1 query for
//! a missing name (whose denial is signed per query) or through a CNAME is Slow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::{MAX_CHAIN, Node, RrSet, ZoneTable, zone_of};

/// Pre-encoded answers for every name of every zone.
#[derive(Debug, Default)]
pub struct WireIndex {
    /// Keyed by the lowercase wire form of the owner name (ending in the root label).
    names: HashMap<Box<[u8]>, WireNode>,
    /// Zone origins, lowercase wire form, to the zone's NXDOMAIN material.
    zones: HashMap<Box<[u8]>, Negative>,
    /// Some zone is signed: DO=1 queries get the signed messages here (sets and NODATA of
    /// names without a CNAME in signed zones), or go to the general path.
    signed: bool,
}

#[derive(Debug)]
struct WireNode {
    /// The types answered with records: held at this name or, for a CNAME, at the end of
    /// its chain (the chain then leads each answer).
    sets: Vec<WireSet>,
    /// The response to every other type: NODATA, or for a CNAME what its chain ends in
    /// (NODATA or NXDOMAIN there, or a name outside our zones). `None`: the general path.
    other: Option<(Box<[u8]>, ResponseCode)>,
    /// In a signed zone, for DO=1 queries: the NODATA with the SOA's RRSIGs and the NSEC
    /// proof. `None`: DO=1 queries of this name go to the general path (a CNAME, or an
    /// unsigned zone when some other zone is signed).
    other_signed: Option<Box<[u8]>>,
}

#[derive(Debug)]
struct WireSet {
    /// The query type this set answers.
    rtype: u16,
    variants: Vec<Box<[u8]>>,
    /// In a signed zone, each variant with its RRSIGs after it (DO=1); else empty.
    signed: Vec<Box<[u8]>>,
    next: AtomicUsize,
    /// A `geo` app's set: its variants per region (`variants` and `signed` then serve
    /// clients in no region).
    geo: Option<GeoWire>,
}

#[derive(Debug)]
struct GeoWire {
    app: usize,
    /// The variants of each region.
    regions: Vec<Variants>,
    /// In a signed zone (and not after a chain), each region's variants with their
    /// RRSIGs; else empty.
    signed: Vec<Variants>,
    /// In a signed zone, for DO=1: the NODATA for clients of each region, then of none,
    /// when this set has no records for them (its proof lists the types held for them).
    nodata_signed: Vec<Option<Box<[u8]>>>,
}

/// The encoded variants of one set, served in turn.
type Variants = Vec<Box<[u8]>>;

/// What NXDOMAIN answers under one zone carry after the question.
#[derive(Debug)]
struct Negative {
    /// The SOA record from its TYPE field on (the owner is written as a pointer).
    soa_tail: Box<[u8]>,
}

/// The fast path's answer to one (name, type).
#[derive(Debug, PartialEq, Eq)]
pub enum WireAnswer<'a> {
    /// A whole response to patch: positive or NODATA.
    Message(&'a [u8], ResponseCode),
    /// NXDOMAIN: the header and question come from the query, then one SOA in the
    /// authority section whose owner is the zone origin, `origin_len` bytes at the end of
    /// the question name.
    NxDomain {
        origin_len: usize,
        soa_tail: &'a [u8],
    },
    /// Only the general path answers this exactly.
    Slow,
}

impl WireIndex {
    /// Encodes every set of every zone, following CNAME chains inside our zones as the
    /// general path does. A name whose answers fail to encode is left to the general path
    /// (it would fail there too, as SERVFAIL).
    pub(super) fn build(zones: &[ZoneTable]) -> Self {
        let mut index = WireIndex {
            signed: zones.iter().any(|z| z.signer.is_some()),
            ..WireIndex::default()
        };
        for zone in zones {
            let Some(origin) = wire_name(&zone.origin) else {
                continue;
            };
            let Some(soa_tail) = soa_tail(&zone.negative_soa, origin.len()) else {
                continue;
            };
            for (name, node) in &zone.nodes {
                let Some(key) = wire_name(name) else { continue };
                // A name the index cannot answer is still held, so that it is never
                // taken for a missing name (NXDOMAIN): every query of it goes slow.
                let wire = WireNode::build(zones, zone, name, node).unwrap_or(WireNode {
                    sets: Vec::new(),
                    other: None,
                    other_signed: None,
                });
                index.names.insert(key, wire);
            }
            index.zones.insert(
                origin,
                Negative {
                    soa_tail: soa_tail.into_boxed_slice(),
                },
            );
        }
        index
    }

    /// Whether some zone is signed.
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// The answer to `qname` (lowercase wire form, ending in the root label) and `qtype`,
    /// moving the rotation of sets served in turn. When a `geo` app's set answers,
    /// `locate` is called with the app and returns the client's region. `dnssec_ok`: the
    /// client set DO; when some zone is signed, only signed answers held here are served,
    /// the rest is [`WireAnswer::Slow`].
    pub fn answer(
        &self,
        qname: &[u8],
        qtype: u16,
        dnssec_ok: bool,
        locate: impl FnOnce(usize) -> Option<usize>,
    ) -> WireAnswer<'_> {
        if is_special(qtype) {
            return WireAnswer::Slow;
        }
        let signed = dnssec_ok && self.signed;
        if let Some(node) = self.names.get(qname) {
            if let Some(set) = node.sets.iter().find(|s| s.rtype == qtype) {
                let variants = match &set.geo {
                    None if signed => &set.signed,
                    None => &set.variants,
                    Some(g) => {
                        let region = locate(g.app).filter(|r| *r < g.regions.len());
                        let plain = region.map_or(&set.variants, |r| &g.regions[r]);
                        if plain.is_empty() {
                            // This region's answer has no address of this type: NODATA
                            // (after the chain that led here), as the general path says.
                            if signed {
                                let i = region.unwrap_or(g.regions.len());
                                return match g.nodata_signed.get(i) {
                                    Some(Some(m)) => WireAnswer::Message(m, ResponseCode::NoError),
                                    _ => WireAnswer::Slow,
                                };
                            }
                            return match &node.other {
                                Some((m, rcode)) => WireAnswer::Message(m, *rcode),
                                None => WireAnswer::Slow,
                            };
                        }
                        match (signed, region) {
                            (false, _) => plain,
                            (true, None) => &set.signed,
                            (true, Some(r)) => match g.signed.get(r) {
                                Some(v) => v,
                                None => return WireAnswer::Slow,
                            },
                        }
                    }
                };
                let variant = match variants.len() {
                    0 => return WireAnswer::Slow,
                    1 => &variants[0],
                    n => &variants[set.next.fetch_add(1, Ordering::Relaxed) % n],
                };
                return WireAnswer::Message(variant, ResponseCode::NoError);
            }
            if signed {
                return match &node.other_signed {
                    Some(m) => WireAnswer::Message(m, ResponseCode::NoError),
                    None => WireAnswer::Slow,
                };
            }
            return match &node.other {
                Some((m, rcode)) => WireAnswer::Message(m, *rcode),
                None => WireAnswer::Slow,
            };
        }
        if signed {
            // A missing name in a signed zone: its denial is signed per query.
            return WireAnswer::Slow;
        }
        // Not a name we hold: NXDOMAIN in the closest enclosing zone, if any. Walking
        // from the full name towards the root finds the longest origin first.
        let mut at = 0;
        while at < qname.len() {
            let suffix = &qname[at..];
            if let Some(negative) = self.zones.get(suffix) {
                return WireAnswer::NxDomain {
                    origin_len: suffix.len(),
                    soa_tail: &negative.soa_tail,
                };
            }
            let len = usize::from(qname[at]);
            if len == 0 {
                break;
            }
            at += len + 1;
        }
        WireAnswer::Slow
    }
}

/// The NODATA of a signed zone for DO=1: the SOA and its RRSIGs, then `denial` (the NSEC
/// and its RRSIGs).
fn signed_nodata(owner: &Name, zone: &ZoneTable, denial: &[Record]) -> Option<Box<[u8]>> {
    let authority: Vec<Record> = std::iter::once(&zone.negative_soa)
        .chain(&zone.negative_soa_sigs)
        .chain(denial)
        .cloned()
        .collect();
    encode(
        owner,
        RecordType::A,
        ResponseCode::NoError,
        &[],
        &authority,
        &[],
    )
}

impl WireNode {
    fn build(zones: &[ZoneTable], zone: &ZoneTable, name: &LowerName, node: &Node) -> Option<Self> {
        let owner = Name::from(name);
        let set = |rtype: RecordType, prefix: &[Record], set: &RrSet| -> Option<WireSet> {
            let encode_all = |variants: &[Vec<Record>], sigs: Option<&[Vec<Record>]>| {
                variants
                    .iter()
                    .enumerate()
                    .map(|(i, records)| {
                        let sigs =
                            sigs.map_or(&[][..], |s| s.get(i).map_or(&[][..], Vec::as_slice));
                        let answers: Vec<Record> =
                            prefix.iter().chain(records).chain(sigs).cloned().collect();
                        encode(
                            &owner,
                            rtype,
                            ResponseCode::NoError,
                            &answers,
                            &[],
                            &set.additional,
                        )
                    })
                    .collect::<Option<Vec<_>>>()
            };
            // Signed variants for names without a chain (a chain's DO=1 answers are the
            // general path's).
            let signing = prefix.is_empty() && zone.signer.is_some();
            let geo = match &set.geo {
                None => None,
                Some(g) => Some(GeoWire {
                    app: g.app,
                    regions: (g.regions.iter())
                        .map(|v| encode_all(v, None))
                        .collect::<Option<Vec<_>>>()?,
                    signed: if signing {
                        (g.regions.iter().zip(&g.region_sigs))
                            .map(|(v, sigs)| encode_all(v, Some(sigs)))
                            .collect::<Option<Vec<_>>>()?
                    } else {
                        Vec::new()
                    },
                    nodata_signed: if signing {
                        (0..=g.regions.len())
                            .map(|r| {
                                let region = (r < g.regions.len()).then_some(r);
                                if !set.variant(region, 0).0.is_empty() {
                                    return None;
                                }
                                signed_nodata(&owner, zone, set.geo_denial(region))
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                }),
            };
            Some(WireSet {
                rtype: u16::from(rtype),
                variants: encode_all(&set.variants, None)?,
                signed: if signing {
                    encode_all(&set.variants, Some(&set.sigs))?
                } else {
                    Vec::new()
                },
                next: AtomicUsize::new(0),
                geo,
            })
        };
        let Some(cname) = node.sets.iter().find(|s| s.rtype == RecordType::CNAME) else {
            let sets = node
                .sets
                .iter()
                .map(|s| set(s.rtype, &[], s))
                .collect::<Option<Vec<_>>>()?;
            let nodata = negative(&owner, ResponseCode::NoError, &[], zone)?;
            let other_signed = match zone.signer {
                Some(_) => Some(signed_nodata(&owner, zone, &node.denial)?),
                None => None,
            };
            return Some(Self {
                sets,
                other: Some((nodata, ResponseCode::NoError)),
                other_signed,
            });
        };
        // Follow the chain: CNAME sets have one variant; the end decides the rest.
        let mut chain: Vec<Record> = Vec::new();
        let mut here = cname;
        for _ in 0..MAX_CHAIN {
            chain.extend(here.first().iter().cloned());
            let Some(RData::CNAME(target)) = here.first().first().map(|r| &r.data) else {
                return None;
            };
            let target = LowerName::new(&target.0);
            let Some(tz) = zone_of(zones, &target) else {
                // The chain leaves our zones: every type gets the chain alone.
                let exit = encode(
                    &owner,
                    RecordType::A,
                    ResponseCode::NoError,
                    &chain,
                    &[],
                    &[],
                )?;
                return Some(Self {
                    sets: vec![set(RecordType::CNAME, &[], cname)?],
                    other: Some((exit, ResponseCode::NoError)),
                    other_signed: None,
                });
            };
            let Some(end) = tz.nodes.get(&target) else {
                let nx = negative(&owner, ResponseCode::NXDomain, &chain, tz)?;
                return Some(Self {
                    sets: vec![set(RecordType::CNAME, &[], cname)?],
                    other: Some((nx, ResponseCode::NXDomain)),
                    other_signed: None,
                });
            };
            match end.sets.iter().find(|s| s.rtype == RecordType::CNAME) {
                Some(next) => here = next,
                None => {
                    let mut sets = vec![set(RecordType::CNAME, &[], cname)?];
                    for s in &end.sets {
                        sets.push(set(s.rtype, &chain, s)?);
                    }
                    let nodata = negative(&owner, ResponseCode::NoError, &chain, tz)?;
                    return Some(Self {
                        sets,
                        other: Some((nodata, ResponseCode::NoError)),
                        other_signed: None,
                    });
                }
            }
        }
        // A loop or an over-long chain: the general path answers what it can.
        Some(Self {
            sets: vec![set(RecordType::CNAME, &[], cname)?],
            other: None,
            other_signed: None,
        })
    }
}

/// A negative response (NODATA or NXDOMAIN) after `chain`, with `zone`'s SOA.
fn negative(
    owner: &Name,
    rcode: ResponseCode,
    chain: &[Record],
    zone: &ZoneTable,
) -> Option<Box<[u8]>> {
    encode(
        owner,
        RecordType::A,
        rcode,
        chain,
        std::slice::from_ref(&zone.negative_soa),
        &[],
    )
}

/// Query types the general path treats specially: 0, OPT, and the meta and question-only
/// types 128–255 (AXFR, IXFR, ANY…).
fn is_special(qtype: u16) -> bool {
    qtype == 0 || qtype == u16::from(RecordType::OPT) || (128..=255).contains(&qtype)
}

/// The lowercase wire form of a name, root label included.
fn wire_name(name: &LowerName) -> Option<Box<[u8]>> {
    let mut bytes = Vec::with_capacity(64);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
    Name::from(name).emit(&mut encoder).ok()?;
    Some(bytes.into_boxed_slice())
}

/// A response with the given sections, as the general path would encode it for a query
/// of `name`/`rtype` with id 0 and no flags.
fn encode(
    name: &Name,
    rtype: RecordType,
    rcode: ResponseCode,
    answers: &[Record],
    authorities: &[Record],
    additionals: &[Record],
) -> Option<Box<[u8]>> {
    let mut message = Message::new(0, MessageType::Response, OpCode::Query);
    message.metadata.authoritative = true;
    message.metadata.response_code = rcode;
    message.add_query(Query::query(name.clone(), rtype));
    message.add_answers(answers.iter().cloned());
    message.add_authorities(authorities.iter().cloned());
    message.add_additionals(additionals.iter().cloned());
    message.to_vec().ok().map(Vec::into_boxed_slice)
}

/// The negative SOA from its TYPE field on, encoded without compression so that it reads
/// the same wherever it lands.
fn soa_tail(soa: &Record, origin_len: usize) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(96);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    soa.emit(&mut encoder).ok()?;
    (bytes.len() > origin_len).then(|| bytes.split_off(origin_len))
}
