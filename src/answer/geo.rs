//! Client → region mapping for the `geo` policy: a longest-prefix match over the subnets
//! of `[[geo.region]]`, compiled once per answer table, then, for a client no subnet
//! holds, the `[geo] database` (its country, else its continent, by the regions'
//! `countries` and `continents`; a database no region lists codes for is left out when
//! the index is built). Pure: the database is already in memory.
//!
//! A subnet lookup costs one hash probe per distinct prefix length in the table (longest
//! first), at most 33 for IPv4 and 129 for IPv6, in practice a handful; a database lookup
//! a walk down its tree and the read of two codes, without allocating.
//!
//! The scope it reports is the prefix length the answer depended on, for the EDNS Client
//! Subnet echo (RFC 7871 §7.2.1): the matched subnet's length, raised to that of the
//! longest subnet nested inside it (clients there map elsewhere, so the answer does not
//! hold for the whole matched subnet), and never above what the client said. A database
//! placement is scoped the same way, with the database network that matched in the role
//! of the subnet.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::geodb::{Code, DbMatch, GeoDatabase, Place};
use crate::model::{Geo, mask};

/// Who asked, as far as a query tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The source address of the query (the resolver): no ECS, or ECS with source /0.
    Resolver(IpAddr),
    /// An EDNS Client Subnet: address (bits past the prefix zero) and source prefix length.
    Subnet(IpAddr, u8),
}

/// Which rule placed a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A `[[geo.region]]` subnet matched.
    Subnet,
    /// No subnet matched; the database placed the client in a region's `countries`.
    Country,
    /// No subnet matched; the database placed the client in a region's `continents`.
    Continent,
    /// No subnet matched: `[geo] default_region`.
    Default,
    /// No subnet matched and there is no default region: failover order.
    Unmapped,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Subnet => "subnet",
            Rule::Country => "country",
            Rule::Continent => "continent",
            Rule::Default => "default_region",
            Rule::Unmapped => "unmapped",
        }
    }
}

/// Where a client was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// An index into `Geo::regions`; `None` for clients in no region.
    pub region: Option<usize>,
    pub rule: Rule,
    /// What placed the client: the subnet for [`Rule::Subnet`], the database network for
    /// [`Rule::Country`] and [`Rule::Continent`].
    pub matched: Option<(IpAddr, u8)>,
    /// What the database said, whenever it was looked up (no subnet matched), whether or
    /// not that placed the client in a region.
    pub database: Option<DbMatch>,
    /// The ECS SCOPE PREFIX-LENGTH of an answer that depends on the region.
    pub scope: u8,
    /// The address and prefix length actually looked up (after the ECS cap).
    pub believed: (IpAddr, u8),
}

/// The compiled subnets of every region.
#[derive(Debug, Default)]
pub struct GeoIndex {
    v4: Prefixes,
    v6: Prefixes,
    default_region: Option<usize>,
    cap_v4: u8,
    cap_v6: u8,
    database: Option<GeoDatabase>,
    /// Country code → region, sorted by code.
    countries: Vec<(Code, usize)>,
    /// Continent code → region, sorted by code.
    continents: Vec<(Code, usize)>,
}

#[derive(Debug, Default)]
struct Prefixes {
    /// Distinct prefix lengths present, longest first.
    lengths: Vec<u8>,
    /// (network bits, length) → (region, scope).
    entries: HashMap<(u128, u8), (usize, u8)>,
    /// Every subnet as (network bits, length), sorted: those inside a block are together.
    sorted: Vec<(u128, u8)>,
}

impl Prefixes {
    fn build(subnets: &[(u128, u8, usize)]) -> Self {
        // Sorted by network then length, the subnets nested in one (itself included)
        // follow it directly: a scan while they stay inside its block finds the longest.
        let mut sorted = subnets.to_vec();
        sorted.sort_unstable_by_key(|&(bits, len, _)| (bits, len));
        let mut entries = HashMap::with_capacity(sorted.len());
        for (i, &(bits, len, region)) in sorted.iter().enumerate() {
            let scope = sorted[i..]
                .iter()
                .take_while(|&&(b, _, _)| prefix_bits(b, len) == bits)
                .map(|&(_, l, _)| l)
                .max()
                .unwrap_or(len);
            entries.insert((bits, len), (region, scope));
        }
        let mut lengths: Vec<u8> = subnets.iter().map(|s| s.1).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        Self {
            lengths,
            entries,
            sorted: sorted.iter().map(|&(bits, len, _)| (bits, len)).collect(),
        }
    }

    /// The longest subnet inside the block `(bits, len)` (the block itself included), if
    /// any: clients there map by it, not by whatever placed the block.
    fn longest_within(&self, bits: u128, len: u8) -> Option<u8> {
        let start = self.sorted.partition_point(|&(b, _)| b < bits);
        self.sorted[start..]
            .iter()
            .take_while(|&&(b, _)| prefix_bits(b, len) == bits)
            .filter(|&&(_, l)| l >= len)
            .map(|&(_, l)| l)
            .max()
    }

    /// The longest subnet holding the first `known` bits of `bits`.
    fn find(&self, bits: u128, known: u8) -> Option<(u8, usize, u8)> {
        self.lengths
            .iter()
            .filter(|&&len| len <= known)
            .find_map(|&len| {
                self.entries
                    .get(&(prefix_bits(bits, len), len))
                    .map(|&(region, scope)| (len, region, scope))
            })
    }
}

/// The first `len` bits of a left-aligned 128-bit value.
fn prefix_bits(bits: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(len.min(128))))
    }
}

/// An address as left-aligned bits (IPv4 in the top 32) and its family's size in bits.
fn bits_of(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

impl GeoIndex {
    pub fn build(geo: &Geo) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (r, region) in geo.regions.iter().enumerate() {
            for &(addr, len) in &region.subnets {
                let (bits, _) = bits_of(addr);
                if addr.is_ipv4() {
                    v4.push((bits, len, r));
                } else {
                    v6.push((bits, len, r));
                }
            }
        }
        let codes = |list: fn(&crate::model::GeoRegion) -> &Vec<Code>| {
            let mut map: Vec<(Code, usize)> = geo
                .regions
                .iter()
                .enumerate()
                .flat_map(|(r, region)| list(region).iter().map(move |&c| (c, r)))
                .collect();
            map.sort_unstable();
            map
        };
        Self {
            v4: Prefixes::build(&v4),
            v6: Prefixes::build(&v6),
            default_region: geo.default_region,
            cap_v4: geo.ecs_ipv4_prefix,
            cap_v6: geo.ecs_ipv6_prefix,
            // Only a database some region refers to is looked up: otherwise it places
            // no one, and the hot path skips the lookup (and the scope stays the
            // client's, as without a database).
            database: geo.database_in_use().cloned(),
            countries: codes(|r| &r.countries),
            continents: codes(|r| &r.continents),
        }
    }

    /// The region a place is in: its country's, else its continent's.
    fn region_of(&self, place: Place) -> Option<(usize, Rule)> {
        let find = |map: &[(Code, usize)], code: Option<Code>| {
            let code = code?;
            map.binary_search_by_key(&code, |&(c, _)| c)
                .ok()
                .map(|i| map[i].1)
        };
        find(&self.countries, place.country)
            .map(|r| (r, Rule::Country))
            .or_else(|| find(&self.continents, place.continent).map(|r| (r, Rule::Continent)))
    }

    /// Places a client. The resolver's address is looked up whole and its answers scope 0
    /// (they hold for every client of that resolver); an ECS subnet is cut to the
    /// configured cap first.
    pub fn locate(&self, client: Client) -> Located {
        let (addr, known, ecs) = match client {
            Client::Resolver(addr) => (addr, if addr.is_ipv4() { 32 } else { 128 }, false),
            Client::Subnet(addr, source) => {
                let cap = if addr.is_ipv4() {
                    self.cap_v4
                } else {
                    self.cap_v6
                };
                let known = source.min(cap);
                (mask(addr, known), known, true)
            }
        };
        // An IPv4-mapped IPv6 source (a dual-stack socket) is an IPv4 client.
        let (addr, known) = match addr {
            IpAddr::V6(v6) if !ecs => v6
                .to_ipv4_mapped()
                .map_or((addr, known), |v4| (IpAddr::V4(v4), 32)),
            _ => (addr, known),
        };
        let (bits, _) = bits_of(addr);
        let table = if addr.is_ipv4() { &self.v4 } else { &self.v6 };
        let scope_of = |s: u8| if ecs { s.min(known) } else { 0 };
        if let Some((len, region, scope)) = table.find(bits, known) {
            return Located {
                region: Some(region),
                rule: Rule::Subnet,
                matched: Some((mask(addr, len), len)),
                database: None,
                scope: scope_of(scope),
                believed: (addr, known),
            };
        }
        let fallback = |database, scope| Located {
            region: self.default_region,
            rule: if self.default_region.is_some() {
                Rule::Default
            } else {
                Rule::Unmapped
            },
            matched: None,
            database,
            scope,
            believed: (addr, known),
        };
        let Some(database) = &self.database else {
            // Nothing matched up to what the client said: the answer holds for its
            // whole subnet, and no more is known.
            return fallback(None, scope_of(known));
        };
        let found = database.lookup(addr);
        let (net, len) = found.network;
        // The answer holds for the database network, less the subnets inside it.
        let (net_bits, _) = bits_of(net);
        let depends = table
            .longest_within(net_bits, len)
            .map_or(len, |l| l.max(len));
        match found.place.and_then(|p| self.region_of(p)) {
            Some((region, rule)) => Located {
                region: Some(region),
                rule,
                matched: Some(found.network),
                database: Some(found),
                scope: scope_of(depends),
                believed: (addr, known),
            },
            None => fallback(Some(found), scope_of(depends)),
        }
    }
}
