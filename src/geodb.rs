//! A MaxMind-format database (GeoLite2/GeoIP2 Country or City, `[geo] database`) as
//! client placement data for the `geo` policy: read whole into memory and checked once
//! when the config is loaded, then looked up per query without allocating.
//!
//! A lookup walks the database's search tree (at most 32 or 128 steps) and reads two
//! short strings of the record it ends on, `country.iso_code` and `continent.code`,
//! borrowed from the file's bytes. It also reports the network the answer holds for (the
//! tree's leaf), which becomes the ECS scope of a placement the database decided.
//!
//! The file is read into memory rather than mapped: a database replaced in place while
//! mapped could fault a DNS thread, and a copy costs only the file's size.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use maxminddb::Reader;
use serde::Deserialize;

/// The largest file taken: GeoIP2 City, the largest of the kinds taken, is well under.
const MAX_SIZE: u64 = 2 << 30;

/// An ISO code of two ASCII capital letters: a country (`CN`) or a continent (`AS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code([u8; 2]);

impl Code {
    /// `Some` for exactly two ASCII capital letters.
    pub fn parse(text: &str) -> Option<Self> {
        match text.as_bytes() {
            &[a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Some(Self([a, b])),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        // Two ASCII letters are UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The continent codes GeoLite2/GeoIP2 use in `continent.code`.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Where the database puts an address: its country and continent, as far as it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Place {
    pub country: Option<Code>,
    pub continent: Option<Code>,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbMatch {
    /// The database network holding the address (host bits zero), whether or not it has
    /// a record: every address in it gets the same answer from the database.
    pub network: (IpAddr, u8),
    /// The record's place; `None` when the database has no record for the network (or
    /// the record could not be read).
    pub place: Option<Place>,
}

/// What the database says about itself, for status and reload summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// The file as configured.
    pub path: String,
    /// `database_type` from its metadata, e.g. `GeoLite2-Country`.
    pub database_type: String,
    /// When it was built (`build_epoch`), in seconds since 1970.
    pub build_epoch: u64,
    /// 4 or 6.
    pub ip_version: u16,
    pub node_count: u32,
    /// The file's size in bytes (what it holds in memory).
    pub size: usize,
}

/// A loaded database; cheap to clone (shared), compared by content.
#[derive(Clone)]
pub struct GeoDatabase {
    inner: Arc<Inner>,
}

struct Inner {
    bytes: Arc<[u8]>,
    reader: Reader<Arc<[u8]>>,
    info: DatabaseInfo,
}

impl fmt::Debug for GeoDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDatabase")
            .field("info", &self.inner.info)
            .finish()
    }
}

impl PartialEq for GeoDatabase {
    /// The same file content: a reload that re-reads an unchanged file changes nothing.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.info.path == other.inner.info.path
                && self.inner.bytes == other.inner.bytes)
    }
}

/// The record fields placement reads; everything else in the record is skipped.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<CountryField<'a>>,
    #[serde(borrow, default)]
    continent: Option<ContinentField<'a>>,
}

#[derive(Deserialize)]
struct CountryField<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct ContinentField<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

impl GeoDatabase {
    /// Reads and checks the database at `path`.
    ///
    /// # Errors
    ///
    /// One sentence for a config problem: the file cannot be read, is not a valid MaxMind
    /// DB file (its whole tree and data are verified), or is not a database of countries
    /// (an ASN or ISP database, say).
    pub fn open(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.len() > MAX_SIZE => {
                return Err(format!(
                    "{shown} is {} bytes, more than any country database ({MAX_SIZE} at most)",
                    m.len()
                ));
            }
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(format!("{shown} is not a file")),
            Err(e) => return Err(format!("cannot read {shown}: {e}")),
        }
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        Self::from_bytes(bytes, &path.display().to_string())
    }

    /// Checks a database held in memory; `path` names it in errors and status.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), but for the reading.
    pub fn from_bytes(bytes: Vec<u8>, path: &str) -> Result<Self, String> {
        let bytes: Arc<[u8]> = bytes.into();
        let invalid = |e: maxminddb::MaxMindDbError| {
            format!("{path} is not a valid MaxMind DB (.mmdb) file: {e}")
        };
        let reader = Reader::from_source(Arc::clone(&bytes)).map_err(invalid)?;
        reader.verify().map_err(invalid)?;
        let m = reader.metadata();
        let kind = &m.database_type;
        if !["Country", "City", "Enterprise"]
            .iter()
            .any(|k| kind.contains(k))
        {
            return Err(format!(
                "{path} is a `{kind}` database, which does not place addresses in countries: \
                 use a Country or City database (GeoLite2-Country, GeoLite2-City, GeoIP2-Country, GeoIP2-City)"
            ));
        }
        let info = DatabaseInfo {
            path: path.to_owned(),
            database_type: kind.clone(),
            build_epoch: m.build_epoch,
            ip_version: m.ip_version,
            node_count: m.node_count,
            size: bytes.len(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                bytes,
                reader,
                info,
            }),
        })
    }

    pub fn info(&self) -> &DatabaseInfo {
        &self.inner.info
    }

    /// The network holding `addr` and its place. Never fails: an address the database
    /// cannot take (IPv6 in an IPv4-only database) or a record it cannot read is
    /// reported as having no place, for the address alone.
    pub fn lookup(&self, addr: IpAddr) -> DbMatch {
        let whole = (addr, if addr.is_ipv4() { 32 } else { 128 });
        let Ok(result) = self.inner.reader.lookup(addr) else {
            return DbMatch {
                network: whole,
                place: None,
            };
        };
        let network = match result.network() {
            Ok(net) => match (addr, net.ip()) {
                // The leaf is above the IPv4 subtree (`::/96`): it holds all of IPv4.
                (IpAddr::V4(_), IpAddr::V6(_)) => (IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
                (_, ip) => (ip, net.prefix()),
            },
            Err(_) => whole,
        };
        let place = match result.decode::<Record<'_>>() {
            Ok(Some(record)) => Some(Place {
                country: record
                    .country
                    .and_then(|c| c.iso_code)
                    .and_then(Code::parse),
                continent: record.continent.and_then(|c| c.code).and_then(Code::parse),
            }),
            Ok(None) | Err(_) => None,
        };
        DbMatch { network, place }
    }
}

#[cfg(test)]
#[path = "geodb_tests.rs"]
mod tests;
