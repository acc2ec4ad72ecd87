//! Meaning checks over the deserialized sections, and the build of the validated
//! [`Config`]. Every check pushes a problem and carries on, so one run reports them all.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
use hickory_proto::rr::{Name, RData};

use super::raw::{
    RawApp, RawCluster, RawDnssec, RawGeo, RawProbe, RawQuorum, RawRecord, RawServer, RawZone,
};
use super::{
    Config, KeyPath, PathProblem, Quorum, QuorumHub, Sections, Server, Source, SourceKind,
};
use crate::dnssec::{KeyRole, ZoneKey, ZoneSigner};
use crate::geodb::{CONTINENTS, Code, GeoDatabase};
use crate::model::{
    AdaptiveTtl, App, Cluster, Geo, GeoRegion, Inventory, Policy, ProbeKind, ProbeSpec, QuorumRule,
    Required, StaticRecord, Transfer, TsigKey, Zone,
};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use std::sync::Arc;

/// Largest TTL we accept anywhere: one day. Longer TTLs defeat failover.
const MAX_TTL: u32 = 86_400;
/// Shortest `signature_validity`: signatures are renewed at half of it, and validators
/// cache them up to the TTL (at most a day).
const MIN_SIGNATURE_VALIDITY: Duration = Duration::from_secs(3 * 86_400);
/// Shortest probe interval: faster probing buys little and loads ingresses.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest interval between two reads of a peer's view.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(50);
const DEFAULT_POLL_INTERVAL: &str = "500ms";
/// `[quorum] namespace` by default: a hub namespace of their own, so that the hub RBAC
/// of views (deploy/*/hub-quorum-rbac.yaml) grants ConfigMaps there and nothing else.
const DEFAULT_VIEW_NAMESPACE: &str = "gslb-quorum";
/// Shortest recheck interval: a failing ingress is not hammered.
const MIN_RECHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Collects problems into `problems`; returns a config only if every section parsed.
pub(super) fn validate(sections: Sections, problems: &mut Vec<PathProblem>) -> Option<Config> {
    let mut sources = Vec::new();
    for (i, source) in sections.sources.iter().enumerate() {
        if let Some(raw) = source {
            sources.push(super::kube::source(
                raw,
                &KeyPath::key("source").index(i),
                problems,
            ));
        }
    }
    let has_sources = !sections.sources.is_empty();
    let mut v = Validator {
        problems,
        has_sources,
    };
    v.unique(
        sources.iter().flatten().map(|s| s.name.clone()),
        "source",
        "name",
        "source",
    );
    let server = v.server(&sections.server.unwrap_or_default());
    let quorum = sections.quorum.as_ref().map(|q| v.quorum(q, &sources));

    let mut zones = Vec::new();
    for (i, zone) in sections.zones.iter().enumerate() {
        if let Some(zone) = zone {
            zones.push(v.zone(zone, KeyPath::key("zone").index(i)));
        }
    }
    if sections.zones.is_empty() {
        v.push(KeyPath::key("zone"), "at least one [[zone]] is required");
    }
    v.unique(
        zones
            .iter()
            .flatten()
            .map(|z| z.origin.to_lowercase().to_ascii()),
        "zone",
        "name",
        "zone",
    );

    let mut clusters = Vec::new();
    for (i, cluster) in sections.clusters.iter().enumerate() {
        if let Some(cluster) = cluster {
            clusters.push(v.cluster(cluster, KeyPath::key("cluster").index(i)));
        }
    }
    v.unique(
        clusters.iter().flatten().map(|c| c.name.clone()),
        "cluster",
        "name",
        "cluster",
    );

    let zone_list: Vec<Zone> = zones.iter().flatten().cloned().collect();
    let cluster_list: Vec<Cluster> = clusters.iter().flatten().cloned().collect();
    let mut apps = Vec::new();
    for (i, app) in sections.apps.iter().enumerate() {
        if let Some(app) = app {
            apps.push(v.app(app, KeyPath::key("app").index(i), &zone_list, &cluster_list));
        }
    }
    v.unique(
        apps.iter()
            .flatten()
            .map(|a| a.name.to_lowercase().to_ascii()),
        "app",
        "name",
        "app",
    );

    let geo = sections
        .geo
        .as_ref()
        .map_or_else(|| Some(Geo::default()), |g| v.geo(g));
    for (i, app) in sections.apps.iter().enumerate() {
        let geo_app = matches!(app, Some(a) if a.policy == "geo");
        if geo_app && geo.as_ref().is_some_and(|g| g.regions.is_empty()) && !sections.geo_failed {
            v.push(
                KeyPath::key("app").index(i).then("policy"),
                "`geo` needs client regions: add [[geo.region]] sections with `subnets` (or `countries` and `continents` with `[geo] database`)",
            );
        }
    }

    let all_parsed = !sections.geo_failed
        && geo.is_some()
        && sections.zones.iter().all(Option::is_some)
        && sections.sources.iter().all(Option::is_some)
        && sources.iter().all(Option::is_some)
        && sections.clusters.iter().all(Option::is_some)
        && sections.apps.iter().all(Option::is_some)
        && zones.iter().all(Option::is_some)
        && clusters.iter().all(Option::is_some)
        && apps.iter().all(Option::is_some);
    if !all_parsed || sections.quorum_failed || !v.problems.is_empty() {
        return None;
    }
    let app_clusters = sections
        .apps
        .iter()
        .flatten()
        .map(|a| a.clusters.clone())
        .collect();
    let mut inventory = Inventory::new(
        zone_list,
        cluster_list,
        apps.into_iter().flatten().collect(),
    );
    inventory.geo = geo?;
    Some(Config {
        server: server?,
        inventory,
        sources: sources.into_iter().flatten().collect(),
        app_clusters,
        path: None,
        quorum: match quorum {
            Some(q) => Some(q?),
            None => None,
        },
    })
}

struct Validator<'a> {
    problems: &'a mut Vec<PathProblem>,
    /// With sources, clusters may have no static VIPs and apps may name clusters that
    /// only discovery knows.
    has_sources: bool,
}

impl Validator<'_> {
    fn push(&mut self, path: KeyPath, message: impl Into<String>) {
        self.problems.push(PathProblem::new(path, message));
    }

    /// Reports a value that does not parse; returns it parsed otherwise.
    fn parse<T>(&mut self, path: KeyPath, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.push(path, e)).ok()
    }

    fn unique(
        &mut self,
        names: impl Iterator<Item = String>,
        section: &str,
        key: &str,
        what: &str,
    ) {
        let mut seen = HashSet::new();
        for (i, name) in names.enumerate() {
            if !seen.insert(name.clone()) {
                self.push(
                    KeyPath::key(section).index(i).then(key),
                    format!("duplicate {what} name `{name}`"),
                );
            }
        }
    }

    fn server(&mut self, raw: &RawServer) -> Option<Server> {
        let at = KeyPath::key("server");
        let mut dns_listen = Vec::new();
        for (i, a) in raw.dns_listen.iter().enumerate() {
            dns_listen.extend(self.parse(at.then("dns_listen").index(i), socket_addr(a)));
        }
        if raw.dns_listen.is_empty() {
            self.push(at.then("dns_listen"), "needs at least one address");
        }
        let admin_listen = self.parse(at.then("admin_listen"), socket_addr(&raw.admin_listen));
        let tcp_idle_timeout =
            self.parse(at.then("tcp_idle_timeout"), duration(&raw.tcp_idle_timeout));
        if tcp_idle_timeout.is_some_and(|t| t.is_zero()) {
            self.push(
                at.then("tcp_idle_timeout"),
                "must be above zero: 0 would keep idle TCP connections open forever",
            );
        }
        if raw.tcp_max_connections == 0 {
            self.push(
                at.then("tcp_max_connections"),
                "must be at least 1: 0 would refuse every DNS query over TCP",
            );
        }
        let admin_token_file = raw.admin_token_file.as_ref().map(std::path::PathBuf::from);
        if let Some(path) = &admin_token_file {
            match std::fs::read_to_string(path) {
                Ok(t) if t.trim().len() >= 16 => {}
                Ok(_) => self.push(
                    at.then("admin_token_file"),
                    format!(
                        "the token in {} must be at least 16 characters",
                        path.display()
                    ),
                ),
                Err(e) => self.push(
                    at.then("admin_token_file"),
                    format!("cannot read {}: {e}", path.display()),
                ),
            }
        }
        if raw.admin_protect_reads && admin_token_file.is_none() {
            self.push(
                at.then("admin_protect_reads"),
                "needs admin_token_file: reads would be refused to everyone, with no token to present",
            );
        }
        let state_file = raw.state_file.as_ref().map(std::path::PathBuf::from);
        if let Some(dir) = state_file
            .as_ref()
            .and_then(|p| p.parent())
            .filter(|d| !d.as_os_str().is_empty())
        {
            if !dir.is_dir() {
                self.push(
                    at.then("state_file"),
                    format!("the folder {} does not exist", dir.display()),
                );
            }
        }
        let shutdown_delay = self.parse(at.then("shutdown_delay"), duration(&raw.shutdown_delay));
        let probe_source = raw.probe_source.as_ref().and_then(|s| {
            self.parse(
                at.then("probe_source"),
                s.parse::<IpAddr>().map_err(|_| {
                    format!("`{s}` is not an IPv4 or IPv6 address (no port), such as 10.0.0.5")
                }),
            )
        });
        let rl = &raw.rate_limit;
        if rl.ipv4_prefix > 32 {
            self.push(at.then("rate_limit").then("ipv4_prefix"), "must be 0 to 32");
        }
        if rl.ipv6_prefix > 128 {
            self.push(
                at.then("rate_limit").then("ipv6_prefix"),
                "must be 0 to 128",
            );
        }
        Some(Server {
            rate_limit: crate::dns::rrl::RrlConfig {
                responses_per_second: rl.responses_per_second,
                slip: rl.slip,
                ipv4_prefix: rl.ipv4_prefix,
                ipv6_prefix: rl.ipv6_prefix,
            },
            shutdown_delay: shutdown_delay?,
            dns_listen,
            admin_listen: admin_listen?,
            tcp_idle_timeout: tcp_idle_timeout?,
            tcp_max_connections: raw.tcp_max_connections,
            admin_token_file,
            admin_protect_reads: raw.admin_protect_reads,
            state_file,
            probe_source,
        })
    }

    /// `hub` and `namespace` of `[quorum]`; `None` without `hub` or when they are wrong.
    fn quorum_hub(&mut self, raw: &RawQuorum, sources: &[Option<Source>]) -> Option<QuorumHub> {
        let at = KeyPath::key("quorum");
        let Some(name) = &raw.hub else {
            if raw.namespace.is_some() {
                self.push(at.then("namespace"), "applies with `hub` only");
            }
            return None;
        };
        let namespace = raw
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_VIEW_NAMESPACE.to_owned());
        let label = !namespace.is_empty()
            && namespace.len() <= 63
            && namespace
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !namespace.starts_with('-')
            && !namespace.ends_with('-');
        if !label {
            self.push(
                at.then("namespace"),
                format!("`{namespace}` is not a namespace name: 1 to 63 lowercase letters, digits or `-`, starting and ending with a letter or digit"),
            );
        }
        let source = sources.iter().flatten().find(|s| &s.name == name);
        match source {
            None => {
                let known: Vec<&str> = sources.iter().flatten().map(|s| s.name.as_str()).collect();
                self.push(
                    at.then("hub"),
                    if known.is_empty() {
                        format!("names the [[source]] `{name}`, but there is no [[source]]: add one of kind `clusternet` or `karmada` for the hub")
                    } else {
                        format!("names the [[source]] `{name}`, which does not exist (sources: {})", known.join(", "))
                    },
                );
                None
            }
            Some(s) if s.kind == SourceKind::Kubeconfig => {
                self.push(
                    at.then("hub"),
                    format!("the [[source]] `{name}` is of kind `kubeconfig`, which has no hub: name a `clusternet` or `karmada` source"),
                );
                None
            }
            Some(s) => label.then(|| QuorumHub {
                source: s.clone(),
                namespace,
            }),
        }
    }

    fn quorum(&mut self, raw: &RawQuorum, sources: &[Option<Source>]) -> Option<Quorum> {
        let at = KeyPath::key("quorum");
        if let Some(name) = &raw.instance {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if !ok {
                self.push(
                    at.then("instance"),
                    format!("`{name}` must be 1 to 253 letters, digits, `-`, `.` or `_`"),
                );
            } else if raw.hub.is_some() {
                if let Err(e) = super::view_object(name) {
                    self.push(at.then("instance"), e);
                }
            }
        }
        let mut peers = Vec::new();
        let mut seen = HashSet::new();
        for (i, p) in raw.peers.iter().flatten().enumerate() {
            let base = p.trim_end_matches('/');
            match reqwest::Url::parse(base) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.path() == "/"
                        && u.query().is_none() =>
                {
                    if seen.insert(base.to_ascii_lowercase()) {
                        peers.push(base.to_owned());
                    } else {
                        self.push(at.then("peers").index(i), format!("duplicate peer `{p}`"));
                    }
                }
                _ => self.push(
                    at.then("peers").index(i),
                    format!(
                        "`{p}` is not the base URL of a peer's admin API, such as http://10.0.0.2:19153"
                    ),
                ),
            }
        }
        let hub = self.quorum_hub(raw, sources);
        match (&raw.peers, &raw.hub) {
            (Some(_), Some(_)) => self.push(
                at.then("hub"),
                "`peers` and `hub` exclude each other: views travel either through the peers' admin APIs or through the hub",
            ),
            (Some(p), None) if p.is_empty() => self.push(
                at.then("peers"),
                "needs at least one peer: alone, an instance decides from its own view (leave out [quorum])",
            ),
            (None, None) => self.push(
                at.clone(),
                "needs `peers` (the peers' admin APIs) or `hub` (a [[source]] whose hub API carries the views)",
            ),
            _ => {}
        }
        if raw.hub.is_some() {
            if raw.token_file.is_some() {
                self.push(
                    at.then("token_file"),
                    "applies to `peers` only: through the hub, views are read and written with the source's kubeconfig",
                );
            }
            if raw.poll_interval.is_some() {
                self.push(
                    at.then("poll_interval"),
                    "applies to `peers` only: through the hub, views are watched, and each instance renews its own every third of `fresh_within`",
                );
            }
        }
        let token_file = raw.token_file.as_ref().map(std::path::PathBuf::from);
        if let Some(path) = &token_file {
            match std::fs::read_to_string(path) {
                Ok(t) if t.trim().len() >= 16 => {}
                Ok(_) => self.push(
                    at.then("token_file"),
                    format!(
                        "the token in {} must be at least 16 characters",
                        path.display()
                    ),
                ),
                Err(e) => self.push(
                    at.then("token_file"),
                    format!("cannot read {}: {e}", path.display()),
                ),
            }
        }
        let required = match &raw.required {
            None => Some(Required::Majority),
            Some(value) => {
                // Through the hub, the number of instances is only known at run time.
                let instances = match &raw.hub {
                    Some(_) => None,
                    None => Some(raw.peers.as_ref().map_or(0, Vec::len) + 1),
                };
                let r = required(value, instances);
                self.parse(at.then("required"), r)
            }
        };
        let fresh_within = self.parse(at.then("fresh_within"), duration(&raw.fresh_within));
        let poll_interval = self.parse(
            at.then("poll_interval"),
            duration(
                raw.poll_interval
                    .as_deref()
                    .unwrap_or(DEFAULT_POLL_INTERVAL),
            ),
        );
        if poll_interval.is_some_and(|p| p < MIN_POLL_INTERVAL) {
            self.push(
                at.then("poll_interval"),
                format!(
                    "must be at least {}",
                    humantime::format_duration(MIN_POLL_INTERVAL)
                ),
            );
        }
        if let (Some(f), Some(p), None) = (fresh_within, poll_interval, &raw.hub) {
            if f < p * 2 {
                self.push(
                    at.then("fresh_within"),
                    format!(
                        "{} must be at least twice poll_interval ({}), or one late answer would make a live peer's view stale",
                        humantime::format_duration(f),
                        humantime::format_duration(p)
                    ),
                );
            }
        }
        if let (Some(f), Some(_)) = (fresh_within, &raw.hub) {
            if f < MIN_POLL_INTERVAL * 3 {
                self.push(
                    at.then("fresh_within"),
                    format!(
                        "must be at least {} with `hub` (each instance renews its view every third of it)",
                        humantime::format_duration(MIN_POLL_INTERVAL * 3)
                    ),
                );
            }
        }
        Some(Quorum {
            instance: raw.instance.clone(),
            peers,
            hub: match &raw.hub {
                Some(_) => Some(hub?),
                None => None,
            },
            token_file,
            rule: QuorumRule {
                required: required?,
                fresh_within: fresh_within?,
            },
            poll_interval: poll_interval?,
        })
    }

    fn zone(&mut self, raw: &RawZone, at: KeyPath) -> Option<Zone> {
        let origin = self.parse(at.then("name"), fqdn(&raw.name))?;
        let mut nameservers = Vec::new();
        for (i, ns) in raw.nameservers.iter().enumerate() {
            nameservers.extend(self.parse(at.then("nameservers").index(i), fqdn(ns)));
        }
        if raw.nameservers.is_empty() {
            self.push(at.then("nameservers"), "needs at least one name server");
        }
        let hostmaster = self.parse(at.then("hostmaster"), mailbox(&raw.hostmaster));
        for (key, ttl) in [("ttl", raw.ttl), ("negative_ttl", raw.negative_ttl)] {
            if ttl > MAX_TTL {
                self.push(
                    at.then(key),
                    format!("{ttl} is over the limit of {MAX_TTL} seconds"),
                );
            }
        }
        let mut records = Vec::new();
        for (i, r) in raw.records.iter().enumerate() {
            let rat = at.then("records").index(i);
            records.extend(self.record(r, &origin, raw.ttl, rat));
        }
        self.zone_consistency(&origin, &nameservers, &records, &at);
        let transfer = self.transfer(raw, &at);
        let dnssec = match &raw.dnssec {
            None => None,
            Some(d) => Some(Arc::new(self.dnssec(d, &origin, at.then("dnssec"))?)),
        };
        Some(Zone {
            origin,
            nameservers,
            hostmaster: hostmaster?,
            ttl: raw.ttl,
            negative_ttl: raw.negative_ttl,
            records,
            transfer: transfer?,
            dnssec,
        })
    }

    /// `[zone.dnssec]`: the keys are read here, so that a reload picks up new ones.
    fn dnssec(&mut self, raw: &RawDnssec, origin: &Name, at: KeyPath) -> Option<ZoneSigner> {
        let mut keys = Vec::new();
        let mut ok = true;
        if raw.keys.is_empty() {
            self.push(
                at.then("keys"),
                "needs at least one key (a `csk`, or a `ksk` and a `zsk`)",
            );
            return None;
        }
        for (i, k) in raw.keys.iter().enumerate() {
            let kat = at.then("keys").index(i);
            let Some(role) = KeyRole::parse(&k.role) else {
                self.push(
                    kat.then("role"),
                    format!("`{}` is not a key role; use csk, ksk or zsk", k.role),
                );
                ok = false;
                continue;
            };
            match ZoneKey::load(&k.file, role) {
                Ok(key) => keys.push(key),
                Err(e) => {
                    self.push(kat.then("file"), e);
                    ok = false;
                }
            }
        }
        let validity = self.parse(
            at.then("signature_validity"),
            duration(&raw.signature_validity),
        );
        let validity = match validity {
            Some(v) if v < MIN_SIGNATURE_VALIDITY => {
                self.push(
                    at.then("signature_validity"),
                    format!(
                        "{} is too short: use at least {} (signatures are renewed at half of it)",
                        humantime::format_duration(v),
                        humantime::format_duration(MIN_SIGNATURE_VALIDITY)
                    ),
                );
                None
            }
            v => v,
        };
        if !ok {
            return None;
        }
        match ZoneSigner::new(origin.clone(), keys, validity?) {
            Ok(signer) => Some(signer),
            Err(e) => {
                self.push(at.then("keys"), e);
                None
            }
        }
    }

    /// `allow_transfer`, `notify` and the TSIG key of a zone. The key's secret is read
    /// here, so that a reload picks up a new one.
    fn transfer(&mut self, raw: &RawZone, at: &KeyPath) -> Option<Transfer> {
        let mut transfer = Transfer::default();
        let mut ok = true;
        for (i, a) in raw.allow_transfer.iter().enumerate() {
            match prefix(a) {
                Ok(net) => transfer.allow.push(net),
                Err(e) => {
                    self.push(at.then("allow_transfer").index(i), e);
                    ok = false;
                }
            }
        }
        for (i, n) in raw.notify.iter().enumerate() {
            match notify_addr(n) {
                Ok(addr) => transfer.notify.push(addr),
                Err(e) => {
                    self.push(at.then("notify").index(i), e);
                    ok = false;
                }
            }
        }
        if !raw.notify.is_empty() && raw.allow_transfer.is_empty() {
            self.push(
                at.then("notify"),
                "secondaries are notified to transfer the zone, but `allow_transfer` is empty, so none may",
            );
        }
        let algorithm = match raw.tsig_algorithm.trim().to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(TsigAlgorithm::HmacSha256),
            "hmac-sha384" => Some(TsigAlgorithm::HmacSha384),
            "hmac-sha512" => Some(TsigAlgorithm::HmacSha512),
            other => {
                self.push(
                    at.then("tsig_algorithm"),
                    format!(
                        "`{other}` is not supported; use hmac-sha256, hmac-sha384 or hmac-sha512"
                    ),
                );
                None
            }
        };
        match (&raw.tsig_key_name, &raw.tsig_key_file) {
            (None, None) => {}
            (Some(_), None) => {
                self.push(
                    at.then("tsig_key_file"),
                    "`tsig_key_name` needs `tsig_key_file`, the file holding the key's secret",
                );
            }
            (None, Some(_)) => {
                self.push(at.then("tsig_key_name"), "`tsig_key_file` needs `tsig_key_name`, the key's name as the secondaries know it");
            }
            (Some(name), Some(file)) => {
                if raw.allow_transfer.is_empty() {
                    self.push(
                        at.then("tsig_key_name"),
                        "a TSIG key only authenticates transfers, and `allow_transfer` is empty",
                    );
                }
                let name = self.parse(at.then("tsig_key_name"), fqdn(name));
                let secret = self.parse(at.then("tsig_key_file"), tsig_secret(file));
                match (name, secret, algorithm) {
                    (Some(name), Some(secret), Some(algorithm)) => {
                        transfer.tsig = Some(TsigKey {
                            name,
                            algorithm,
                            secret,
                        });
                    }
                    _ => ok = false,
                }
            }
        }
        ok.then_some(transfer)
    }

    fn record(
        &mut self,
        r: &RawRecord,
        origin: &Name,
        ttl: u32,
        at: KeyPath,
    ) -> Option<StaticRecord> {
        let name = self.parse(at.then("name"), owner_name(origin, &r.name))?;
        if !origin.zone_of(&name) {
            self.push(
                at.then("name"),
                format!("`{name}` is outside the zone `{origin}`"),
            );
            return None;
        }
        let rdata = self.parse(
            at.then("value"),
            rdata(&r.rtype, &r.value).map_err(|e| {
                if e.starts_with("unsupported") {
                    e
                } else {
                    format!("{e} (for a {} record)", r.rtype.to_uppercase())
                }
            }),
        )?;
        if matches!(rdata, RData::CNAME(_)) && &name == origin {
            self.push(at.then("name"), "a CNAME cannot stand at the zone apex");
        }
        let ttl = r.ttl.unwrap_or(ttl);
        if ttl > MAX_TTL {
            self.push(
                at.then("ttl"),
                format!("{ttl} is over the limit of {MAX_TTL} seconds"),
            );
        }
        Some(StaticRecord { name, ttl, rdata })
    }

    /// CNAMEs stand alone, and in-zone name servers have glue.
    fn zone_consistency(
        &mut self,
        origin: &Name,
        ns: &[Name],
        records: &[StaticRecord],
        at: &KeyPath,
    ) {
        let mut types: HashMap<Name, Vec<&'static str>> = HashMap::new();
        for r in records {
            types
                .entry(r.name.to_lowercase())
                .or_default()
                .push(rtype_name(&r.rdata));
        }
        for (name, t) in &types {
            if t.contains(&"CNAME") && t.len() > 1 {
                self.push(
                    at.then("records"),
                    format!("`{name}` has a CNAME and other records; a CNAME must stand alone"),
                );
            }
        }
        for (i, n) in ns.iter().enumerate() {
            let lower = n.to_lowercase();
            let has_glue = types
                .get(&lower)
                .is_some_and(|t| t.iter().any(|t| *t == "A" || *t == "AAAA"));
            if origin.zone_of(n) && !has_glue {
                self.push(
                    at.then("nameservers").index(i),
                    format!("`{n}` is inside the zone, so it needs an A or AAAA record in `records` (glue)"),
                );
            }
        }
    }

    /// `[geo]`: regions with unique names, subnets, countries and continents in at most
    /// one region, locations in range, ECS caps within the address sizes, a database that
    /// reads and places addresses in countries.
    fn geo(&mut self, raw: &RawGeo) -> Option<Geo> {
        let at = KeyPath::key("geo");
        if !(1..=32).contains(&raw.ecs_ipv4_prefix) {
            self.push(
                at.then("ecs_ipv4_prefix"),
                format!("{} must be 1 to 32", raw.ecs_ipv4_prefix),
            );
        }
        if !(1..=128).contains(&raw.ecs_ipv6_prefix) {
            self.push(
                at.then("ecs_ipv6_prefix"),
                format!("{} must be 1 to 128", raw.ecs_ipv6_prefix),
            );
        }
        let database = raw.database.as_ref().and_then(|path| {
            self.parse(
                at.then("database"),
                GeoDatabase::open(std::path::Path::new(path)),
            )
        });
        let mut regions = Vec::new();
        let mut seen: HashMap<(IpAddr, u8), String> = HashMap::new();
        let mut seen_codes: HashMap<(&str, Code), String> = HashMap::new();
        for (i, r) in raw.region.iter().enumerate() {
            let rat = at.then("region").index(i);
            if r.name.trim().is_empty() {
                self.push(rat.then("name"), "must not be empty");
            }
            let mut codes = |key: &'static str, list: &[String], this: &mut Self| {
                let mut out = Vec::new();
                for (j, text) in list.iter().enumerate() {
                    let kat = rat.then(key).index(j);
                    let code = match (key, Code::parse(text)) {
                        ("continents", Some(c)) if !CONTINENTS.contains(&c.as_str()) => None,
                        (_, c) => c,
                    };
                    let Some(code) = code else {
                        this.push(
                            kat,
                            if key == "countries" {
                                format!("`{text}` must be two capital letters: an ISO 3166-1 country code as the database's `country.iso_code` has it, e.g. `CN`")
                            } else {
                                format!("`{text}` is not a continent code: expected one of {} (the database's `continent.code`)", CONTINENTS.join(", "))
                            },
                        );
                        continue;
                    };
                    match seen_codes.get(&(key, code)) {
                        Some(other) => {
                            this.push(kat, format!("`{text}` is already in region `{other}`"))
                        }
                        None => {
                            seen_codes.insert((key, code), r.name.clone());
                            out.push(code);
                        }
                    }
                }
                if !list.is_empty() && raw.database.is_none() {
                    this.push(
                        rat.then(key),
                        format!("needs `[geo] database`: {key} are looked up in a MaxMind-format database"),
                    );
                }
                out
            };
            let countries = codes("countries", &r.countries, self);
            let continents = codes("continents", &r.continents, self);
            let mut subnets = Vec::new();
            for (j, text) in r.subnets.iter().enumerate() {
                let Some(net) = self.parse(rat.then("subnets").index(j), subnet(text)) else {
                    continue;
                };
                match seen.get(&net) {
                    Some(other) => self.push(
                        rat.then("subnets").index(j),
                        format!("`{text}` is already a subnet of region `{other}`"),
                    ),
                    None => {
                        seen.insert(net, r.name.clone());
                        subnets.push(net);
                    }
                }
            }
            let location = match (r.lat, r.lon) {
                (None, None) => None,
                (Some(lat), Some(lon)) => {
                    if !(-90.0..=90.0).contains(&lat) {
                        self.push(
                            rat.then("lat"),
                            format!("{lat} must be -90 to 90 (degrees)"),
                        );
                    }
                    if !(-180.0..=180.0).contains(&lon) {
                        self.push(
                            rat.then("lon"),
                            format!("{lon} must be -180 to 180 (degrees)"),
                        );
                    }
                    Some((lat, lon))
                }
                (Some(_), None) => {
                    self.push(rat.then("lat"), "needs `lon` too");
                    None
                }
                (None, Some(_)) => {
                    self.push(rat.then("lon"), "needs `lat` too");
                    None
                }
            };
            regions.push(GeoRegion {
                name: r.name.clone(),
                subnets,
                location,
                countries,
                continents,
            });
        }
        self.unique(
            raw.region.iter().map(|r| r.name.clone()),
            "geo.region",
            "name",
            "region",
        );
        let default_region = match &raw.default_region {
            None => None,
            Some(name) => {
                let found = regions.iter().position(|r| &r.name == name);
                if found.is_none() {
                    self.push(
                        at.then("default_region"),
                        format!("unknown region `{name}`; define it in a [[geo.region]] section"),
                    );
                }
                found
            }
        };
        Some(Geo {
            regions,
            default_region,
            ecs_ipv4_prefix: raw.ecs_ipv4_prefix,
            ecs_ipv6_prefix: raw.ecs_ipv6_prefix,
            database,
        })
    }

    fn cluster(&mut self, raw: &RawCluster, at: KeyPath) -> Option<Cluster> {
        if raw.name.trim().is_empty() {
            self.push(at.then("name"), "must not be empty");
        }
        let mut vips = Vec::new();
        for (i, v) in raw.vips.iter().enumerate() {
            vips.extend(
                self.parse(
                    at.then("vips").index(i),
                    IpAddr::from_str(v.trim())
                        .map_err(|_| format!("`{v}` is not an IPv4 or IPv6 address")),
                ),
            );
        }
        if raw.vips.is_empty() && !self.has_sources {
            self.push(
                at.then("vips"),
                "needs at least one ingress VIP (or a [[source]] that discovers them)",
            );
        }
        if raw.weight == 0 {
            self.push(at.then("weight"), "must be at least 1");
        }
        Some(Cluster {
            name: raw.name.clone(),
            region: raw.region.clone(),
            vips,
            priority: raw.priority,
            weight: raw.weight,
        })
    }

    fn app(
        &mut self,
        raw: &RawApp,
        at: KeyPath,
        zones: &[Zone],
        clusters: &[Cluster],
    ) -> Option<App> {
        let name = self.parse(at.then("name"), fqdn(&raw.name));
        if let Some(name) = &name {
            match zones.iter().find(|z| z.origin.zone_of(name)) {
                None => self.push(
                    at.then("name"),
                    format!("`{name}` is in none of the configured zones"),
                ),
                Some(zone) => {
                    if let Some(r) = zone.records.iter().find(|r| {
                        r.name.to_lowercase() == name.to_lowercase()
                            && matches!(r.rdata, RData::A(_) | RData::AAAA(_) | RData::CNAME(_))
                    }) {
                        self.push(
                            at.then("name"),
                            format!("`{name}` also has a static {} record in zone `{}`; an app owns its A and AAAA answers", rtype_name(&r.rdata), zone.origin),
                        );
                    }
                }
            }
        }
        let policy = self.parse(
            at.then("policy"),
            match raw.policy.as_str() {
                "failover" => Ok(Policy::Failover),
                "round-robin" => Ok(Policy::RoundRobin),
                "weighted" => Ok(Policy::Weighted),
                "geo" => Ok(Policy::Geo),
                other => Err(format!(
                    "unknown policy `{other}`, expected `failover`, `round-robin`, `weighted` or `geo`"
                )),
            },
        );
        if raw.ttl > MAX_TTL {
            self.push(
                at.then("ttl"),
                format!("{} is over the limit of {MAX_TTL} seconds", raw.ttl),
            );
        }
        let adaptive_ttl = raw
            .adaptive_ttl
            .as_ref()
            .map(|a| AdaptiveTtl { min: a.min });
        if let Some(a) = adaptive_ttl.filter(|a| a.min == 0 || a.min > raw.ttl) {
            self.push(
                at.then("adaptive_ttl").then("min"),
                format!(
                    "{} must be at least 1 and at most the app's ttl ({})",
                    a.min, raw.ttl
                ),
            );
        }
        let mut members = Vec::new();
        match &raw.clusters {
            None => members.extend(0..clusters.len()),
            Some(list) => {
                for (i, c) in list.iter().enumerate() {
                    match clusters.iter().position(|k| &k.name == c) {
                        Some(idx) if members.contains(&idx) => self.push(
                            at.then("clusters").index(i),
                            format!("cluster `{c}` is listed twice"),
                        ),
                        Some(idx) => members.push(idx),
                        // With sources, the name may be one that discovery reports.
                        None if self.has_sources => {}
                        None => self.push(
                            at.then("clusters").index(i),
                            format!("unknown cluster `{c}`; define it in a [[cluster]] section"),
                        ),
                    }
                }
            }
        }
        if members.is_empty() && !self.has_sources {
            self.push(at.then("clusters"), "the app has no cluster to answer with");
        }
        let (health, kube) = super::kube::app(raw, &at, self.has_sources, self.problems);
        let default_host = name
            .as_ref()
            .map(|n| n.to_ascii().trim_end_matches('.').to_owned());
        let probe = self.probe(
            &raw.probe,
            at.then("probe"),
            default_host.unwrap_or_default(),
        );
        Some(App {
            name: name?,
            policy: policy?,
            ttl: raw.ttl,
            adaptive_ttl,
            clusters: members,
            probe: probe?,
            fail_open: raw.fail_open,
            health,
            kube,
        })
    }

    fn probe(&mut self, raw: &RawProbe, at: KeyPath, default_host: String) -> Option<ProbeSpec> {
        let interval = self.parse(at.then("interval"), duration(&raw.interval));
        let timeout = self.parse(at.then("timeout"), duration(&raw.timeout));
        if let Some(i) = interval.filter(|i| *i < MIN_INTERVAL) {
            self.push(
                at.then("interval"),
                format!(
                    "{} is below the minimum of 100ms",
                    humantime::format_duration(i)
                ),
            );
        }
        if let (Some(i), Some(t)) = (interval, timeout) {
            if t > i || t.is_zero() {
                self.push(at.then("timeout"), format!(
                    "{} must be above zero and no longer than the interval ({}), so probes never overlap",
                    humantime::format_duration(t), humantime::format_duration(i)
                ));
            }
        }
        let recheck = match &raw.recheck_interval {
            Some(text) => self.parse(at.then("recheck_interval"), duration(text)),
            None => {
                interval.map(|i| i.min(duration(super::raw::DEFAULT_RECHECK_INTERVAL).unwrap_or(i)))
            }
        };
        if let (Some(r), Some(i)) = (recheck, interval) {
            if r < MIN_RECHECK_INTERVAL || r > i {
                self.push(
                    at.then("recheck_interval"),
                    format!(
                        "{} must be between {} and the interval ({})",
                        humantime::format_duration(r),
                        humantime::format_duration(MIN_RECHECK_INTERVAL),
                        humantime::format_duration(i)
                    ),
                );
            }
        }
        for (key, n) in [("rise", raw.rise), ("fall", raw.fall)] {
            if n == 0 {
                self.push(at.then(key), "must be at least 1");
            }
        }
        let http_only = [
            ("path", raw.path.is_some()),
            ("host", raw.host.is_some()),
            ("expect_status", raw.expect_status.is_some()),
            ("body_contains", raw.body_contains.is_some()),
            ("tls_verify", raw.tls_verify.is_some()),
        ];
        let kind = match raw.kind.as_str() {
            "http" | "https" => {
                let https = raw.kind == "https";
                let path = raw.path.clone().unwrap_or_else(|| "/".to_owned());
                if !path.starts_with('/') {
                    self.push(at.then("path"), format!("`{path}` must start with `/`"));
                } else if !path.bytes().all(|b| b.is_ascii_graphic()) {
                    self.push(
                        at.then("path"),
                        format!(
                            "`{path}` must be visible ASCII, without spaces (percent-encode other characters, e.g. `%20`)"
                        ),
                    );
                }
                if let Some(host) = raw
                    .host
                    .as_deref()
                    .filter(|h| !h.bytes().all(|b| b.is_ascii_graphic()))
                {
                    self.push(
                        at.then("host"),
                        format!("`{host}` must be visible ASCII, without spaces (an IDN in its xn-- form)"),
                    );
                }
                let expect = self.parse(
                    at.then("expect_status"),
                    status_range(raw.expect_status.as_deref().unwrap_or("200-399")),
                );
                Some(ProbeKind::Http {
                    https,
                    port: raw.port.unwrap_or(if https { 443 } else { 80 }),
                    path,
                    host: raw.host.clone().unwrap_or(default_host),
                    expect_status: expect?,
                    body_contains: raw.body_contains.clone(),
                    tls_verify: raw.tls_verify.unwrap_or(true),
                })
            }
            "tcp" => {
                for (key, set) in http_only {
                    if set {
                        self.push(at.then(key), "applies only to `http` and `https` probes");
                    }
                }
                match raw.port {
                    Some(port) => Some(ProbeKind::Tcp { port }),
                    None => {
                        self.push(at.then("port"), "a `tcp` probe needs a port");
                        None
                    }
                }
            }
            other => {
                self.push(
                    at.then("kind"),
                    format!("unknown probe kind `{other}`, expected `http`, `https` or `tcp`"),
                );
                None
            }
        };
        if raw.port == Some(0) {
            self.push(at.then("port"), "must be between 1 and 65535");
        }
        Some(ProbeSpec {
            kind: kind?,
            interval: interval?,
            timeout: timeout?,
            rise: raw.rise,
            fall: raw.fall,
            recheck_interval: recheck?,
        })
    }
}

/// An address (a host) or a prefix: `192.0.2.1`, `10.0.0.0/8`, `2001:db8::/32`.
fn prefix(s: &str) -> Result<ipnet::IpNet, String> {
    let t = s.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    t.parse::<ipnet::IpNet>().map(|n| n.trunc()).map_err(|_| {
        format!("`{s}` is not an address or a prefix, such as 192.0.2.1 or 10.0.0.0/8")
    })
}

/// A secondary to notify: `address:port`, or an address alone for port 53.
fn notify_addr(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    socket_addr(t)
}

/// The secret of a TSIG key: the file's text, base64 (as `tsig-keygen` and `keymgr -t`
/// print it), surrounding white space ignored.
fn tsig_secret(path: &str) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path.trim())
        .map_err(|e| format!("cannot read the TSIG secret from `{path}`: {e}"))?;
    let secret = data_encoding::BASE64
        .decode(text.trim().as_bytes())
        .map_err(|_| {
            format!("`{path}` does not hold a base64 secret (as tsig-keygen prints it)")
        })?;
    if secret.len() < 16 {
        return Err(format!(
            "the secret in `{path}` is {} bytes; use at least 16 (tsig-keygen makes 32)",
            secret.len()
        ));
    }
    Ok(secret)
}

/// `required` of `[quorum]`: `"majority"`, a number of views from 1 to `instances` (when
/// known), or a percentage from 1% to 100%.
fn required(value: &toml::Value, instances: Option<usize>) -> Result<Required, String> {
    let wrong = || match instances {
        Some(instances) => format!(
            "must be \"majority\", a number of views from 1 to {instances} (the peers and this instance), or a share such as \"60%\""
        ),
        None => "must be \"majority\", a number of views of at least 1, or a share such as \"60%\""
            .to_owned(),
    };
    match value {
        toml::Value::Integer(n) => match u32::try_from(*n) {
            Ok(n) if n >= 1 && instances.is_none_or(|i| (n as usize) <= i) => {
                Ok(Required::AtLeast(n))
            }
            _ => Err(wrong()),
        },
        toml::Value::String(s) if s == "majority" => Ok(Required::Majority),
        toml::Value::String(s) => match s.strip_suffix('%').map(str::parse::<u8>) {
            Some(Ok(p)) if (1..=100).contains(&p) => Ok(Required::Percent(p)),
            _ => Err(wrong()),
        },
        _ => Err(wrong()),
    }
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    SocketAddr::from_str(s.trim()).map_err(|_| {
        format!("`{s}` is not an address with a port, such as 127.0.0.1:53 or [::1]:53")
    })
}

/// Parses a duration that carries its unit: `"1s"`, `"800ms"`, `"2m"`.
/// `10.1.0.0/16` or `2001:db8::/32`: a network address with no bit set past the prefix.
pub(crate) fn subnet(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = s
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a subnet such as 10.1.0.0/16 or 2001:db8::/32"))?;
    let addr =
        IpAddr::from_str(addr).map_err(|_| format!("`{s}`: `{addr}` is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?;
    let masked = crate::model::mask(addr, len);
    if masked != addr {
        return Err(format!(
            "`{s}` has bits set past the prefix length; write {masked}/{len}"
        ));
    }
    Ok((addr, len))
}

pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration with a unit, such as \"800ms\" or \"2s\" ({e})")
    })
}

/// A fully qualified domain name, with or without its trailing dot.
pub(crate) fn fqdn(s: &str) -> Result<Name, String> {
    let s = s.trim();
    if s.is_empty() || s == "." {
        return Err("must be a domain name, such as `tke-demo.cn`".to_owned());
    }
    let mut name =
        Name::from_ascii(s).map_err(|e| format!("`{s}` is not a valid domain name ({e})"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// The SOA RNAME: `hostmaster.tke-demo.cn`, or `hostmaster@tke-demo.cn` written as a mail address.
fn mailbox(s: &str) -> Result<Name, String> {
    fqdn(&s.trim().replacen('@', ".", 1))
}

/// A record owner: `@` is the apex; names are relative unless they end with a dot or the zone.
fn owner_name(origin: &Name, s: &str) -> Result<Name, String> {
    let s = s.trim();
    if s == "@" || s.is_empty() {
        return Ok(origin.clone());
    }
    let name = Name::from_ascii(s).map_err(|e| format!("`{s}` is not a valid name ({e})"))?;
    if s.ends_with('.') {
        return Ok(name);
    }
    let absolute = fqdn(s)?;
    if origin.zone_of(&absolute) {
        Ok(absolute)
    } else {
        name.append_domain(origin)
            .map_err(|e| format!("`{s}` is too long inside `{origin}` ({e})"))
    }
}

fn rdata(rtype: &str, value: &str) -> Result<RData, String> {
    let v = value.trim();
    Ok(match rtype.to_ascii_uppercase().as_str() {
        "A" => RData::A(A(v
            .parse()
            .map_err(|_| format!("`{v}` is not an IPv4 address"))?)),
        "AAAA" => RData::AAAA(AAAA(
            v.parse()
                .map_err(|_| format!("`{v}` is not an IPv6 address"))?,
        )),
        "CNAME" => RData::CNAME(CNAME(fqdn(v)?)),
        "TXT" => RData::TXT(TXT::new(txt_strings(value))),
        "MX" => {
            let (pref, host) = v.split_once(char::is_whitespace).ok_or_else(|| {
                format!("`{v}` must be `PREFERENCE EXCHANGE`, such as `10 mail.tke-demo.cn`")
            })?;
            let pref = pref
                .parse::<u16>()
                .map_err(|_| format!("`{pref}` is not a preference from 0 to 65535"))?;
            RData::MX(MX::new(pref, fqdn(host)?))
        }
        other => {
            return Err(format!(
                "unsupported record type `{other}`; static records may be A, AAAA, CNAME, TXT or MX"
            ));
        }
    })
}

/// TXT character-strings hold at most 255 bytes each: split longer text on char boundaries.
fn txt_strings(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for ch in value.chars() {
        if current.len() + ch.len_utf8() > 255 {
            out.push(std::mem::take(&mut current));
        }
        current.push(ch);
    }
    out.push(current);
    out
}

fn status_range(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let bad = || format!("`{s}` must be a status code or range, such as \"200\" or \"200-399\"");
    let (lo, hi) = match s.trim().split_once('-') {
        Some((lo, hi)) => (lo.trim(), hi.trim()),
        None => (s.trim(), s.trim()),
    };
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
        return Err(bad());
    }
    Ok(lo..=hi)
}

fn rtype_name(rdata: &RData) -> &'static str {
    match rdata {
        RData::A(_) => "A",
        RData::AAAA(_) => "AAAA",
        RData::CNAME(_) => "CNAME",
        RData::TXT(_) => "TXT",
        RData::MX(_) => "MX",
        _ => "other",
    }
}
