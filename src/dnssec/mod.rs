//! DNSSEC for the zones gslb serves: signing keys read from files, RRSIGs for every record
//! set the answer table holds (cached by set content, so a rebuild re-signs only what
//! changed), and the NSEC records of negative answers ("compact denial", RFC 9824).
//!
//! Keys are PKCS#8 PEM files (`gslb dnssec keygen` writes them, as does `openssl genpkey`):
//! ECDSA P-256 (algorithm 13) or Ed25519 (algorithm 15). A key's role says what it signs: a
//! CSK signs everything, a KSK the DNSKEY set only, a ZSK everything else.
//!
//! Negative answers never reveal a neighbouring name, so the zone cannot be walked: a name
//! that exists but lacks the type gets an NSEC at that name listing its types, signed with
//! the table; a name that does not exist gets, at query time, an NSEC at the name listing
//! only RRSIG, NSEC and NXNAME, with the next name `\000.<name>`. Such answers are NOERROR
//! on the wire (RFC 9824 §3): a validator sees a proven NODATA.
//!
//! The clock is read when signing: signatures start an hour in the past (clock skew) and
//! last `validity`; the cache hands a signature out again only while more than half of its
//! validity remains, and the planner rebuilds the table often enough for that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, NSEC, RRSIG, SIG, SigInput};
use hickory_proto::dnssec::{Algorithm, DigestType, SigningKey, TBS, Verifier};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

/// Signatures start this long before they are made, for validators whose clock is behind.
const INCEPTION_SKEW: u64 = 3600;

/// The NXNAME meta type (RFC 9824): "this name does not exist", in an NSEC type bitmap.
pub const NXNAME: RecordType = RecordType::Unknown(128);

/// What a key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// Combined signing key: every set (DNSKEY flags 257).
    Csk,
    /// Key signing key: the DNSKEY set only (flags 257, the key the parent's DS names).
    Ksk,
    /// Zone signing key: every set but DNSKEY (flags 256).
    Zsk,
}

impl KeyRole {
    /// Parses `csk`, `ksk` or `zsk`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "csk" => Some(Self::Csk),
            "ksk" => Some(Self::Ksk),
            "zsk" => Some(Self::Zsk),
            _ => None,
        }
    }

    fn signs_keys(self) -> bool {
        matches!(self, Self::Csk | Self::Ksk)
    }

    fn signs_zone(self) -> bool {
        matches!(self, Self::Csk | Self::Zsk)
    }
}

/// One signing key of a zone.
pub struct ZoneKey {
    pub role: KeyRole,
    pub dnskey: DNSKEY,
    pub tag: u16,
    key: Box<dyn SigningKey>,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("ZoneKey")
            .field("role", &self.role)
            .field("algorithm", &self.dnskey.algorithm())
            .field("tag", &self.tag)
            .finish()
    }
}

impl ZoneKey {
    /// Reads a PKCS#8 PEM private key: ECDSA P-256 or Ed25519.
    ///
    /// # Errors
    ///
    /// A message for the configuration error: unreadable file, not PKCS#8 PEM, or a key of
    /// another algorithm.
    pub fn load(path: &str, role: KeyRole) -> Result<Self, String> {
        let der = PrivatePkcs8KeyDer::from_pem_file(path.trim())
            .map_err(|e| format!("cannot read a PKCS#8 PEM private key from `{path}`: {e}"))?;
        let key: Box<dyn SigningKey> = if let Ok(k) =
            EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256)
        {
            Box::new(k)
        } else if let Ok(k) = Ed25519SigningKey::from_pkcs8(&der) {
            Box::new(k)
        } else {
            return Err(format!(
                "the key in `{path}` is not supported: use ECDSA P-256 (algorithm 13) or Ed25519 (algorithm 15), in PKCS#8"
            ));
        };
        Self::from_key(key, role).map_err(|e| format!("the key in `{path}`: {e}"))
    }

    fn from_key(key: Box<dyn SigningKey>, role: KeyRole) -> Result<Self, String> {
        let public = key.to_public_key().map_err(|e| e.to_string())?;
        let dnskey = DNSKEY::new(true, role.signs_keys(), false, public);
        let tag = dnskey.calculate_key_tag().map_err(|e| e.to_string())?;
        Ok(Self {
            role,
            dnskey,
            tag,
            key,
        })
    }
}

/// Writes a new private key, PKCS#8 PEM, for `algorithm` `ecdsa-p256` or `ed25519`.
///
/// # Errors
///
/// An unknown algorithm name, or a failure of the key generator.
pub fn generate_pem(algorithm: &str) -> Result<String, String> {
    let der = match algorithm {
        "ecdsa-p256" | "13" => EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256),
        "ed25519" | "15" => Ed25519SigningKey::generate_pkcs8(),
        other => {
            return Err(format!(
                "`{other}` is not supported: use ecdsa-p256 or ed25519"
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    let body = data_encoding::BASE64.encode(der.secret_pkcs8_der());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// The keys of one zone and the signatures made with them.
#[derive(Debug)]
pub struct ZoneSigner {
    origin: Name,
    keys: Vec<ZoneKey>,
    validity: Duration,
    cache: Mutex<Cache>,
}

/// Signatures by set content. An entry unused for two builds is dropped.
#[derive(Debug, Default)]
struct Cache {
    build: u64,
    sets: HashMap<Vec<u8>, (u64, Vec<Record>)>,
}

impl PartialEq for ZoneSigner {
    /// Same zone and keys (a reload with the same key files is no change).
    fn eq(&self, other: &Self) -> bool {
        self.origin == other.origin
            && self.validity == other.validity
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.role == b.role && a.dnskey == b.dnskey)
    }
}

impl ZoneSigner {
    /// A signer for `origin`, whose signatures last `validity`.
    ///
    /// # Errors
    ///
    /// When no key signs the DNSKEY set or none signs the rest.
    pub fn new(origin: Name, keys: Vec<ZoneKey>, validity: Duration) -> Result<Self, String> {
        if !keys.iter().any(|k| k.role.signs_keys()) {
            return Err("needs a key with role `csk` or `ksk` to sign the DNSKEY set".into());
        }
        if !keys.iter().any(|k| k.role.signs_zone()) {
            return Err("needs a key with role `csk` or `zsk` to sign the zone".into());
        }
        Ok(Self {
            origin,
            keys,
            validity,
            cache: Mutex::new(Cache::default()),
        })
    }

    pub fn keys(&self) -> &[ZoneKey] {
        &self.keys
    }

    /// How long a signature lasts.
    pub fn validity(&self) -> Duration {
        self.validity
    }

    /// The apex DNSKEY set, with `ttl`.
    pub fn dnskey_records(&self, ttl: u32) -> Vec<Record> {
        self.keys
            .iter()
            .map(|k| {
                Record::from_rdata(
                    self.origin.clone(),
                    ttl,
                    RData::DNSSEC(DNSSECRData::DNSKEY(k.dnskey.clone())),
                )
            })
            .collect()
    }

    /// The DS records (SHA-256) of the keys the parent points at: the KSKs or CSKs.
    pub fn ds_records(&self, ttl: u32) -> Vec<Record> {
        self.keys
            .iter()
            .filter(|k| k.role.signs_keys())
            .filter_map(|k| {
                let digest = k.dnskey.to_digest(&self.origin, DigestType::SHA256).ok()?;
                let ds = DS::new(
                    k.tag,
                    k.dnskey.algorithm(),
                    DigestType::SHA256,
                    digest.as_ref().to_vec(),
                );
                Some(Record::from_rdata(
                    self.origin.clone(),
                    ttl,
                    RData::DNSSEC(DNSSECRData::DS(ds)),
                ))
            })
            .collect()
    }

    /// Starts a table build: signatures not asked for in this build or the last are
    /// dropped from the cache.
    pub fn begin_build(&self) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.build += 1;
        let keep = cache.build.saturating_sub(1);
        cache.sets.retain(|_, (used, _)| *used >= keep);
    }

    #[cfg(test)]
    fn cached_sets(&self) -> usize {
        self.cache.lock().unwrap().sets.len()
    }

    /// The RRSIGs of the set `records` (one owner, one type, one TTL), from the cache when
    /// the same set was signed recently enough.
    pub fn sign_cached(&self, records: &[Record]) -> Vec<Record> {
        let Some(key) = set_key(records) else {
            return Vec::new();
        };
        let now = unix_now();
        let fresh = |sigs: &[Record]| {
            sigs.iter().all(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::RRSIG(s)) => {
                    u64::from(s.input().sig_expiration.get()) > now + self.validity.as_secs() / 2
                }
                _ => false,
            })
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let build = cache.build;
        if let Some((used, sigs)) = cache.sets.get_mut(&key) {
            if fresh(sigs) {
                *used = build;
                return sigs.clone();
            }
        }
        drop(cache);
        let sigs = self.sign(records, now);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.sets.insert(key, (build, sigs.clone()));
        sigs
    }

    /// The RRSIGs of `records` (one owner, one type, one TTL), made now: one per key whose
    /// role covers the type.
    pub fn sign(&self, records: &[Record], now: u64) -> Vec<Record> {
        let Some(first) = records.first() else {
            return Vec::new();
        };
        let rtype = first.record_type();
        let inception = now.saturating_sub(INCEPTION_SKEW);
        let expiration = now + self.validity.as_secs();
        self.keys
            .iter()
            .filter(|k| {
                if rtype == RecordType::DNSKEY {
                    k.role.signs_keys()
                } else {
                    k.role.signs_zone()
                }
            })
            .filter_map(|k| {
                let input = SigInput {
                    type_covered: rtype,
                    algorithm: k.key.algorithm(),
                    num_labels: first.name.num_labels(),
                    original_ttl: first.ttl,
                    sig_expiration: SerialNumber::new(expiration as u32),
                    sig_inception: SerialNumber::new(inception as u32),
                    key_tag: k.tag,
                    signer_name: self.origin.clone(),
                };
                let tbs =
                    TBS::from_input(&first.name, DNSClass::IN, &input, records.iter()).ok()?;
                let sig = k.key.sign(&tbs).ok()?;
                Some(Record::from_rdata(
                    first.name.clone(),
                    first.ttl,
                    RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, sig))),
                ))
            })
            .collect()
    }

    /// The NSEC at `owner` saying which types it has (compact denial: the next name is
    /// `\000.<owner>`, so it covers no other name), with its RRSIGs. `types` `None`: the
    /// name does not exist (NXNAME), signed now rather than from the cache.
    pub fn denial(&self, owner: &Name, types: Option<&[RecordType]>, ttl: u32) -> Vec<Record> {
        let Ok(next) = Name::from_labels([&[0u8][..]]).and_then(|zero| zero.append_name(owner))
        else {
            return Vec::new();
        };
        let mut bitmap: Vec<RecordType> = types.unwrap_or_default().to_vec();
        if types.is_none() {
            bitmap.push(NXNAME);
        }
        self.nsec(owner, next, &bitmap, ttl, types.is_some())
    }

    /// The NSEC at `owner` pointing at `next` for the types `types` (RRSIG and NSEC are
    /// added), and its RRSIGs: from the cache when `cached`, else made now.
    pub fn nsec(
        &self,
        owner: &Name,
        next: Name,
        types: &[RecordType],
        ttl: u32,
        cached: bool,
    ) -> Vec<Record> {
        let mut bitmap = types.to_vec();
        bitmap.extend([RecordType::RRSIG, RecordType::NSEC]);
        let nsec = Record::from_rdata(
            owner.clone(),
            ttl,
            RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(next, bitmap))),
        );
        let sigs = if cached {
            self.sign_cached(std::slice::from_ref(&nsec))
        } else {
            self.sign(std::slice::from_ref(&nsec), unix_now())
        };
        std::iter::once(nsec).chain(sigs).collect()
    }

    /// A number that moves every quarter of the signature validity: folded into the
    /// zone's digest, it moves the serial, so that secondaries transfer the renewed
    /// signatures long before theirs expire.
    pub fn epoch(&self) -> u64 {
        unix_now() / (self.validity.as_secs() / 4).max(1)
    }
}

/// The cache key of a set: owner, type, TTL and the sorted canonical RDATA of each record.
fn set_key(records: &[Record]) -> Option<Vec<u8>> {
    let first = records.first()?;
    let mut rdatas: Vec<Vec<u8>> = records
        .iter()
        .map(|r| {
            let mut bytes = Vec::new();
            let mut encoder = BinEncoder::new(&mut bytes);
            encoder.set_canonical_form(true);
            encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
            let _ = r.data.emit(&mut encoder);
            bytes
        })
        .collect();
    rdatas.sort();
    rdatas.dedup();
    let mut key = first.name.to_lowercase().to_ascii().into_bytes();
    key.extend(u16::from(first.record_type()).to_be_bytes());
    key.extend(first.ttl.to_be_bytes());
    for r in rdatas {
        key.extend((r.len() as u16).to_be_bytes());
        key.extend(r);
    }
    Some(key)
}

/// Whether `record` is an RRSIG.
pub fn is_rrsig(record: &Record) -> bool {
    matches!(&record.data, RData::DNSSEC(DNSSECRData::RRSIG(_)))
}

/// The signature fields of an RRSIG record.
pub fn rrsig(record: &Record) -> Option<&SIG> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
