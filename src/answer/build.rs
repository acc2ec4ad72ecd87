//! Building the answer table from the inventory and a health snapshot: a pure function.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::plan::{self, rotations};
use super::version::{Versions, ZoneVersion};
use super::wire::WireIndex;
use super::{AnswerTable, GeoIndex, GeoSet, Node, RrSet, ZoneTable};
use crate::health::HealthSnapshot;
use crate::model::{Policy, Zone};

/// SOA timers, for secondaries: NOTIFY brings them each change at once, and a refresh
/// every hour catches a lost NOTIFY. Common values.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 604_800;

impl AnswerTable {
    /// Plans every app of the snapshot's inventory and lays out every zone, each with SOA
    /// serial `serial`, as a first build does.
    pub fn build(health: &HealthSnapshot, serial: u32) -> Self {
        Self::build_versioned(health, &Versions::new(), serial)
    }

    /// Plans every app and lays out every zone. A zone whose content is the same as in
    /// `last` keeps its serial; a changed or new one gets `max(now, last serial + 1)`
    /// (see [`ZoneVersion::next`]).
    pub fn build_versioned(health: &HealthSnapshot, last: &Versions, now: u32) -> Self {
        let inventory = &*health.inventory;
        let apps: Vec<plan::AppPlan> = (0..inventory.apps.len())
            .map(|app| plan::plan(inventory, app, health))
            .collect();
        let mut zones: Vec<ZoneTable> = inventory.zones.iter().map(|z| zone_table(z, 0)).collect();
        for (app, (spec, plan)) in inventory.apps.iter().zip(&apps).enumerate() {
            let Some(zone) = zones
                .iter_mut()
                .filter(|z| z.origin.zone_of(&LowerName::new(&spec.name)))
                .max_by_key(|z| z.origin.num_labels())
            else {
                continue; // validation guarantees a zone; nothing to serve otherwise
            };
            let records = |variants: &[Vec<IpAddr>]| -> Vec<Vec<Record>> {
                variants
                    .iter()
                    .map(|ips| {
                        ips.iter()
                            .map(|ip| address(&spec.name, plan.ttl.seconds, *ip))
                            .collect()
                    })
                    .collect()
            };
            let node = zone.node(&spec.name);
            for (rtype, v4) in [(RecordType::A, true), (RecordType::AAAA, false)] {
                let family = |v4s: &Vec<Vec<IpAddr>>, v6s: &Vec<Vec<IpAddr>>| {
                    if v4 { v4s.clone() } else { v6s.clone() }
                };
                let top = family(&plan.v4, &plan.v6);
                let regions: Vec<Vec<Vec<Record>>> = plan
                    .regions
                    .iter()
                    .map(|r| records(&family(&r.v4, &r.v6)))
                    .collect();
                if top.is_empty() && regions.iter().all(Vec::is_empty) {
                    continue;
                }
                let mut set = RrSet::new(rtype, records(&top));
                if spec.policy == Policy::Geo {
                    set.geo = Some(GeoSet {
                        app,
                        regions,
                        region_sigs: Vec::new(),
                        denials: Vec::new(),
                    });
                }
                node.sets.push(set);
            }
        }
        let mut versions = Versions::new();
        for zone in &mut zones {
            let origin = zone.origin.to_string();
            // A signed zone's digest also moves with the signature epoch, so that its
            // secondaries transfer renewed signatures.
            let epoch = zone.signer.as_ref().map_or(0, |s| s.epoch());
            let digest = zone.digest() ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let version = ZoneVersion::next(last.get(&origin), digest, now);
            zone.set_serial(version.serial);
            versions.insert(origin, version);
        }
        let mut table = AnswerTable {
            zones,
            apps,
            versions,
            journal: Default::default(),
            inventory: health.inventory.clone(),
            wire: WireIndex::default(),
            geo: GeoIndex::build(&inventory.geo),
        };
        table.add_glue();
        for zone in &mut table.zones {
            zone.sign();
        }
        table.wire = WireIndex::build(&table.zones);
        table
    }

    /// Fills the additional section of NS and MX sets with addresses we serve.
    fn add_glue(&mut self) {
        let mut glue: Vec<(usize, LowerName, RecordType, Vec<Record>)> = Vec::new();
        for (zi, zone) in self.zones.iter().enumerate() {
            for (name, node) in &zone.nodes {
                for set in &node.sets {
                    let targets: Vec<&Name> = set
                        .first()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::NS(ns) => Some(&ns.0),
                            RData::MX(mx) => Some(&mx.exchange),
                            _ => None,
                        })
                        .collect();
                    if targets.is_empty() {
                        continue;
                    }
                    let mut extra = Vec::new();
                    for target in targets {
                        let target = LowerName::new(target);
                        let Some(tz) = self.zones.iter().find(|z| z.origin.zone_of(&target)) else {
                            continue;
                        };
                        if let Some(node) = tz.nodes.get(&target) {
                            for s in &node.sets {
                                if matches!(s.rtype, RecordType::A | RecordType::AAAA) {
                                    extra.extend(s.first().iter().cloned());
                                }
                            }
                        }
                    }
                    glue.push((zi, name.clone(), set.rtype, extra));
                }
            }
        }
        for (zi, name, rtype, extra) in glue {
            if let Some(set) = self.zones[zi]
                .nodes
                .get_mut(&name)
                .and_then(|n| n.sets.iter_mut().find(|s| s.rtype == rtype))
            {
                set.additional = extra;
            }
        }
    }
}

impl ZoneTable {
    /// In a signed zone: signs every variant of every set (of each region too, for a
    /// `geo` app), the negative SOA, and each name's NODATA proof. Signatures come from
    /// the signer's cache when the same set was signed by a recent build, so a health
    /// change re-signs only the sets it moved.
    fn sign(&mut self) {
        let Some(signer) = self.signer.clone() else {
            return;
        };
        signer.begin_build();
        self.negative_soa_sigs = signer.sign_cached(std::slice::from_ref(&self.negative_soa));
        let ttl = self.negative_soa.ttl;
        let sign_all = |variants: &[Vec<Record>]| -> Vec<Vec<Record>> {
            variants.iter().map(|v| signer.sign_cached(v)).collect()
        };
        for (name, node) in &mut self.nodes {
            let owner = Name::from(name);
            for set in &mut node.sets {
                set.sigs = sign_all(&set.variants);
                if let Some(geo) = &mut set.geo {
                    geo.region_sigs = geo.regions.iter().map(|v| sign_all(v)).collect();
                }
            }
            // The types held for clients of `region`: a `geo` set with no records for
            // them is not there (their NODATA proof must not list it).
            let types = |region: Option<usize>| -> Vec<RecordType> {
                let mut types: Vec<RecordType> = (node.sets.iter())
                    .filter(|s| s.geo.is_none() || !s.variant(region, 0).0.is_empty())
                    .map(|s| s.rtype)
                    .collect();
                types.sort_by_key(|t| u16::from(*t));
                types
            };
            let all: Vec<RecordType> = {
                let mut all: Vec<RecordType> = node.sets.iter().map(|s| s.rtype).collect();
                all.sort_by_key(|t| u16::from(*t));
                all
            };
            node.denial = signer.denial(&owner, Some(&all), ttl);
            let regions = (node.sets.iter())
                .filter_map(|s| s.geo.as_ref().map(|g| g.regions.len()))
                .max();
            if let Some(n) = regions {
                let denials: Vec<Vec<Record>> = (0..=n)
                    .map(|r| {
                        let here = types((r < n).then_some(r));
                        if here == all {
                            node.denial.clone()
                        } else {
                            signer.denial(&owner, Some(&here), ttl)
                        }
                    })
                    .collect();
                for set in &mut node.sets {
                    if let Some(geo) = &mut set.geo {
                        geo.denials = denials.clone();
                    }
                }
            }
        }
    }

    /// The node at `name`, created with every missing ancestor up to the origin (so that
    /// empty non-terminals answer NODATA, not NXDOMAIN).
    fn node(&mut self, name: &Name) -> &mut Node {
        let mut ancestor = name.base_name();
        while ancestor.num_labels() > self.origin.num_labels() {
            self.nodes.entry(LowerName::new(&ancestor)).or_default();
            ancestor = ancestor.base_name();
        }
        self.nodes.entry(LowerName::new(name)).or_default()
    }
}

fn zone_table(zone: &Zone, serial: u32) -> ZoneTable {
    let mname = zone
        .nameservers
        .first()
        .cloned()
        .unwrap_or_else(|| zone.origin.clone());
    let soa = SOA::new(
        mname,
        zone.hostmaster.clone(),
        serial,
        SOA_REFRESH,
        SOA_RETRY,
        SOA_EXPIRE,
        zone.negative_ttl,
    );
    let soa_record = Record::from_rdata(zone.origin.clone(), zone.ttl, RData::SOA(soa.clone()));
    let negative_soa = Record::from_rdata(
        zone.origin.clone(),
        zone.ttl.min(zone.negative_ttl),
        RData::SOA(soa),
    );
    let mut table = ZoneTable {
        origin: LowerName::new(&zone.origin),
        negative_soa,
        negative_soa_sigs: Vec::new(),
        nodes: HashMap::new(),
        signer: zone.dnssec.clone(),
    };
    let apex = table.node(&zone.origin);
    apex.sets
        .push(RrSet::new(RecordType::SOA, vec![vec![soa_record]]));
    let ns: Vec<Record> = zone
        .nameservers
        .iter()
        .map(|n| Record::from_rdata(zone.origin.clone(), zone.ttl, RData::NS(NS(n.clone()))))
        .collect();
    apex.sets.push(RrSet::new(RecordType::NS, vec![ns]));
    if let Some(signer) = &zone.dnssec {
        let keys = signer.dnskey_records(zone.ttl);
        apex.sets.push(RrSet::new(RecordType::DNSKEY, vec![keys]));
    }

    // Static records, grouped into sets by (name, type) in config order.
    let mut sets: Vec<(Name, RecordType, Vec<Record>)> = Vec::new();
    for r in &zone.records {
        let rtype = r.rdata.record_type();
        let record = Record::from_rdata(r.name.clone(), r.ttl, r.rdata.clone());
        match sets
            .iter_mut()
            .find(|(n, t, _)| *t == rtype && LowerName::new(n) == LowerName::new(&r.name))
        {
            Some((_, _, records)) => records.push(record),
            None => sets.push((r.name.clone(), rtype, vec![record])),
        }
    }
    for (name, rtype, mut records) in sets {
        // One TTL per set (RFC 2181 §5.2): the lowest written.
        let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(zone.ttl);
        for r in &mut records {
            r.ttl = ttl;
        }
        let variants = if matches!(rtype, RecordType::A | RecordType::AAAA) {
            rotations(records)
        } else {
            vec![records]
        };
        table.node(&name).sets.push(RrSet::new(rtype, variants));
    }
    table
}

fn address(name: &Name, ttl: u32, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name.clone(), ttl, rdata)
}
