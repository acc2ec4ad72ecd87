//! Plain domain types shared by every component: zones, clusters, apps, targets and the
//! inventory that numbers them. No I/O lives here.
//!
//! The inventory gives every (app, cluster) *target* and every (target, VIP) *endpoint* a
//! dense index, so that probes, health and the answer table talk in small integers rather
//! than strings, and a snapshot is a plain `Vec`.

use std::net::IpAddr;
use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use hickory_proto::rr::{Name, RData};

use crate::geodb::{Code, GeoDatabase};

/// A DNS zone we are authoritative for.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Fully qualified origin, e.g. `tke-demo.cn.`.
    pub origin: Name,
    /// Name servers listed in the apex NS set; the first is the SOA MNAME.
    pub nameservers: Vec<Name>,
    /// The SOA RNAME (mailbox of the zone's administrator, in DNS form).
    pub hostmaster: Name,
    /// TTL of static records that do not set their own.
    pub ttl: u32,
    /// TTL of negative answers (the SOA MINIMUM field, RFC 2308).
    pub negative_ttl: u32,
    /// Records served as written, next to the app answers.
    pub records: Vec<StaticRecord>,
    /// Zone transfers to secondaries (hidden primary): who may transfer, whom to notify.
    pub transfer: Transfer,
    /// Online DNSSEC signing: the keys and the signature cache. `None`: unsigned.
    pub dnssec: Option<std::sync::Arc<crate::dnssec::ZoneSigner>>,
}

/// Outgoing zone transfers (AXFR, IXFR) of one zone, and the NOTIFYs that announce a new
/// serial. Nobody may transfer when `allow` is empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transfer {
    /// Client prefixes allowed to transfer the zone.
    pub allow: Vec<ipnet::IpNet>,
    /// Secondaries told of every new serial (NOTIFY over UDP).
    pub notify: Vec<std::net::SocketAddr>,
    /// When set, a transfer request must carry a valid TSIG with this key.
    pub tsig: Option<TsigKey>,
}

impl Transfer {
    /// Whether `ip` may transfer the zone (before any TSIG check).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// A TSIG key (RFC 8945): its name, algorithm and secret. `Debug` never shows the secret.
#[derive(Clone, PartialEq)]
pub struct TsigKey {
    pub name: Name,
    pub algorithm: hickory_proto::rr::rdata::tsig::TsigAlgorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"(withheld)")
            .finish()
    }
}

/// One record of a zone that does not depend on health.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticRecord {
    /// Fully qualified owner name.
    pub name: Name,
    pub ttl: u32,
    pub rdata: RData,
}

/// A member cluster that serves apps behind its ingress VIPs.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub region: String,
    /// Ingress addresses, IPv4 and/or IPv6, in the order they are answered.
    pub vips: Vec<IpAddr>,
    /// Lower is preferred by the `failover` policy.
    pub priority: u32,
    /// Share of answers under the `weighted` policy.
    pub weight: u32,
}

/// How healthy clusters become an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The healthy clusters with the lowest priority value; ties answer together.
    Failover,
    /// Every healthy cluster, order rotated between queries.
    RoundRobin,
    /// One healthy cluster per answer, chosen in proportion to its weight.
    Weighted,
    /// The healthy clusters of the client's region (from EDNS Client Subnet or the
    /// resolver's address), else of the nearest region, else failover order.
    Geo,
}

impl Policy {
    /// The name used in config, logs and the status API.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Failover => "failover",
            Policy::RoundRobin => "round-robin",
            Policy::Weighted => "weighted",
            Policy::Geo => "geo",
        }
    }
}

/// The kind of probe, with what each kind needs.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    /// HTTP or HTTPS GET against the VIP with the app's Host header (and SNI).
    Http {
        https: bool,
        port: u16,
        path: String,
        host: String,
        expect_status: RangeInclusive<u16>,
        body_contains: Option<String>,
        tls_verify: bool,
    },
    /// A TCP connect to the VIP.
    Tcp { port: u16 },
}

impl ProbeKind {
    /// Label value for metrics: `http`, `https` or `tcp`.
    pub fn label(&self) -> &'static str {
        match self {
            ProbeKind::Http { https: false, .. } => "http",
            ProbeKind::Http { https: true, .. } => "https",
            ProbeKind::Tcp { .. } => "tcp",
        }
    }
}

/// How and how often one app's targets are probed, and how many results flip health.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passes that bring a down endpoint up.
    pub rise: u32,
    /// Consecutive failures that take an up endpoint down.
    pub fall: u32,
    /// The pace of probes while a result disagrees with the endpoint's state, so that
    /// `fall` (or `rise`) confirmations come quickly; never longer than `interval`.
    pub recheck_interval: Duration,
}

/// One served name with a policy over clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// Fully qualified name answered with VIPs, e.g. `tke-demo.cn.`.
    pub name: Name,
    pub policy: Policy,
    /// TTL of the app's `A`/`AAAA` answers while every cluster is up and steady (and
    /// always, without `adaptive_ttl`).
    pub ttl: u32,
    /// Shorter answers while a cluster of the app is down or changing; `None`: always `ttl`.
    pub adaptive_ttl: Option<AdaptiveTtl>,
    /// Indexes into [`Inventory::clusters`], in config order.
    pub clusters: Vec<usize>,
    pub probe: ProbeSpec,
    /// Answer with every VIP when no cluster is healthy (the default) instead of nothing.
    pub fail_open: bool,
    /// Which signals make a target up.
    pub health: HealthFrom,
    /// Where the app's per-cluster VIPs and workloads are discovered, if anywhere.
    pub kube: Option<KubeApp>,
}

/// TTL that follows health: while any cluster of the app is down, held out, or on its way
/// in or out (probes disagreeing with its state, short of `rise` or `fall`), answers
/// carry the time until the earliest possible state change instead of `ttl`, at least
/// `min` and at most `ttl`, so resolvers come back when the answer may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveTtl {
    /// The shortest TTL served, in seconds (at least 1, at most the app's `ttl`).
    pub min: u32,
}

/// Which signals decide that a target is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthFrom {
    /// Probes pass and workloads are ready (workloads count only where known).
    Both,
    Probes,
    Workloads,
}

impl HealthFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthFrom::Both => "both",
            HealthFrom::Probes => "probes",
            HealthFrom::Workloads => "workloads",
        }
    }
}

/// What an app is in Kubernetes: the object carrying its ingress VIPs, and the
/// workloads that must be ready for it to count as up in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeApp {
    pub ingress: Option<ObjectRef>,
    pub workloads: Vec<WorkloadRef>,
}

/// A namespaced object: `kind` is `Ingress` or `Service` for VIPs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// A workload that must have at least `min_ready` ready replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    pub object: ObjectRef,
    pub min_ready: u32,
}

/// What discovery says about a target's workloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub ready: bool,
    /// e.g. `Deployment qcbm/qcbm-gateway: 0/2 ready`.
    pub detail: String,
}

impl App {
    /// The app's name as users write it, without the trailing dot.
    pub fn display_name(&self) -> String {
        let s = self.name.to_ascii();
        s.strip_suffix('.').map(str::to_owned).unwrap_or(s)
    }
}

/// One (app, cluster) pair whose health is tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub app: usize,
    pub cluster: usize,
    /// Workload readiness from discovery; `None` where nothing is known.
    pub workload: Option<Workload>,
}

/// One VIP of one target: the unit a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub target: usize,
    pub vip: IpAddr,
}

/// Everything that is served and probed, numbered.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub zones: Vec<Zone>,
    pub clusters: Vec<Cluster>,
    pub apps: Vec<App>,
    pub targets: Vec<Target>,
    pub endpoints: Vec<Endpoint>,
    /// Changes whenever the endpoints change, so probe results of an older inventory
    /// are recognized and dropped.
    pub generation: u64,
    /// Client regions for the `geo` policy (`[geo]` of the config).
    pub geo: Geo,
}

/// `[geo]`: how clients map to regions, for apps with the `geo` policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Geo {
    /// The regions clients can be in, in config order; an index is a region id.
    pub regions: Vec<GeoRegion>,
    /// Where clients that match no subnet go; `None`: failover order.
    pub default_region: Option<usize>,
    /// The longest EDNS Client Subnet prefixes believed; longer ones are cut to these.
    pub ecs_ipv4_prefix: u8,
    pub ecs_ipv6_prefix: u8,
    /// `[geo] database`: places clients that match no subnet by their country or
    /// continent (`countries`, `continents` of the regions).
    pub database: Option<GeoDatabase>,
}

/// What gslb says, at start, on each reload and in `check-config`, of a `[geo] database`
/// that no region refers to ([`Geo::database_unused`]).
pub const UNUSED_DATABASE: &str =
    "`[geo] database` is loaded but no region lists countries or continents, so it is unused";

impl Geo {
    /// The `[geo] database` if it can place a client: some region lists `countries` or
    /// `continents`. Otherwise a lookup would place no one and only narrow the ECS scope
    /// to the database network, for an answer that does not depend on it; the answer
    /// table leaves such a database out.
    pub fn database_in_use(&self) -> Option<&GeoDatabase> {
        let codes = |r: &GeoRegion| !r.countries.is_empty() || !r.continents.is_empty();
        self.database
            .as_ref()
            .filter(|_| self.regions.iter().any(codes))
    }

    /// Whether a `[geo] database` is loaded that no region refers to: valid (a staged
    /// rollout may load the file before it lists any codes), but worth a warning.
    pub fn database_unused(&self) -> bool {
        self.database.is_some() && self.database_in_use().is_none()
    }
}

impl Default for Geo {
    fn default() -> Self {
        Self {
            regions: Vec::new(),
            default_region: None,
            ecs_ipv4_prefix: DEFAULT_ECS_IPV4_PREFIX,
            ecs_ipv6_prefix: DEFAULT_ECS_IPV6_PREFIX,
            database: None,
        }
    }
}

/// `addr` with every bit past the first `len` cleared.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// Default cap on believed ECS prefixes: what RFC 7871 §11.1 recommends resolvers send.
pub const DEFAULT_ECS_IPV4_PREFIX: u8 = 24;
pub const DEFAULT_ECS_IPV6_PREFIX: u8 = 56;

/// One client region: the subnets whose clients are in it, and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoRegion {
    /// Matches the `region` of clusters.
    pub name: String,
    /// Network address (host bits zero) and prefix length.
    pub subnets: Vec<(IpAddr, u8)>,
    /// Latitude and longitude in degrees, for "nearest region".
    pub location: Option<(f64, f64)>,
    /// Clients the database places in these countries (ISO 3166-1 codes) are in it.
    pub countries: Vec<Code>,
    /// Clients the database places in these continents are in it, unless their country
    /// is some region's.
    pub continents: Vec<Code>,
}

impl GeoRegion {
    /// Great-circle distance to another region in km, when both have a location.
    pub fn distance_km(&self, other: &GeoRegion) -> Option<f64> {
        let ((lat1, lon1), (lat2, lon2)) = (self.location?, other.location?);
        let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
        let dp = p2 - p1;
        let dl = (lon2 - lon1).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        Some(2.0 * 6371.0 * a.sqrt().min(1.0).asin())
    }
}

impl Inventory {
    /// Takes `old`'s signer for every zone whose keys and signature validity are unchanged
    /// (a reload that re-reads the same key files), so that its signature cache carries
    /// over and only the sets whose content changed are signed again.
    pub fn keep_signers(&mut self, old: &Inventory) {
        for zone in &mut self.zones {
            let Some(new) = &zone.dnssec else { continue };
            let kept = old
                .zones
                .iter()
                .filter(|z| z.origin == zone.origin)
                .find_map(|z| z.dnssec.as_ref())
                .filter(|o| !std::sync::Arc::ptr_eq(o, new) && ***o == **new);
            if let Some(kept) = kept {
                zone.dnssec = Some(kept.clone());
            }
        }
    }

    /// Numbers targets (app-major, in each app's cluster order) and their endpoints, the
    /// VIPs of each cluster.
    pub fn new(zones: Vec<Zone>, clusters: Vec<Cluster>, apps: Vec<App>) -> Self {
        let targets = apps
            .iter()
            .enumerate()
            .flat_map(|(a, app)| app.clusters.iter().map(move |&c| (a, c)))
            .map(|(app, cluster)| {
                let target = Target {
                    app,
                    cluster,
                    workload: None,
                };
                (target, clusters[cluster].vips.clone())
            })
            .collect();
        Self::with_targets(zones, clusters, apps, targets)
    }

    /// An inventory whose targets carry their own VIPs (discovered per app and cluster).
    /// Targets must come app-major, as [`targets_of`](Self::targets_of) expects.
    pub fn with_targets(
        zones: Vec<Zone>,
        clusters: Vec<Cluster>,
        apps: Vec<App>,
        targets: Vec<(Target, Vec<IpAddr>)>,
    ) -> Self {
        let mut list = Vec::with_capacity(targets.len());
        let mut endpoints = Vec::new();
        debug_assert!(
            targets.windows(2).all(|w| w[0].0.app <= w[1].0.app),
            "targets must come app-major"
        );
        for (idx, (target, vips)) in targets.into_iter().enumerate() {
            endpoints.extend(vips.into_iter().map(|vip| Endpoint { target: idx, vip }));
            list.push(target);
        }
        Self {
            zones,
            clusters,
            apps,
            targets: list,
            endpoints,
            generation: 0,
            geo: Geo::default(),
        }
    }

    /// The endpoints of one target: they are contiguous.
    pub fn endpoints_of(&self, target: usize) -> Range<usize> {
        let start = self.endpoints.partition_point(|e| e.target < target);
        let end = self.endpoints.partition_point(|e| e.target <= target);
        start..end
    }

    /// `(app, cluster, vip)` of every endpoint, in order: two inventories with the same
    /// keys probe the same things.
    pub fn endpoint_keys(&self) -> Vec<(String, &str, IpAddr)> {
        self.endpoints
            .iter()
            .map(|e| {
                let (app, cluster) = self.target_labels(e.target);
                (app, cluster, e.vip)
            })
            .collect()
    }

    /// Indexes of the targets of one app, in its cluster order.
    pub fn targets_of(&self, app: usize) -> Range<usize> {
        // Targets come app-major (see `with_targets`): a binary search, not a scan, so
        // planning every app stays linear in the number of targets.
        let start = self.targets.partition_point(|t| t.app < app);
        let end = self.targets.partition_point(|t| t.app <= app);
        start..end
    }

    /// `(app name, cluster name)` of a target, for logs and metric labels.
    pub fn target_labels(&self, target: usize) -> (String, &str) {
        let t = &self.targets[target];
        (
            self.apps[t.app].display_name(),
            self.clusters[t.cluster].name.as_str(),
        )
    }
}

/// How many of the fresh views must say a target is down for it to count as down, with
/// several gslb instances (`[quorum] required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    /// More than half of the views that have a say.
    Majority,
    /// At least this many views (all of them when fewer have a say).
    AtLeast(u32),
    /// At least this share of the views, in percent (1–100), rounded up, at least one.
    Percent(u8),
}

impl Required {
    /// Down views needed among `views` views that have a say (Up or Down); `views` ≥ 1.
    pub fn needed(self, views: u32) -> u32 {
        match self {
            Required::Majority => views / 2 + 1,
            Required::AtLeast(n) => n.clamp(1, views.max(1)),
            Required::Percent(p) => (views * u32::from(p)).div_ceil(100).max(1),
        }
    }

    /// As written in the config: `majority`, `2`, `60%`.
    pub fn as_text(self) -> String {
        match self {
            Required::Majority => "majority".to_owned(),
            Required::AtLeast(n) => n.to_string(),
            Required::Percent(p) => format!("{p}%"),
        }
    }
}

/// How views of several instances combine into a decision (`[quorum]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumRule {
    pub required: Required,
    /// A peer's view last received longer ago than this is ignored.
    pub fresh_within: std::time::Duration,
}
