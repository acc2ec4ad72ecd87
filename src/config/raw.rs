//! The config file as written: serde structs that mirror the TOML one to one.
//!
//! Every struct denies unknown fields, so a typo is an error rather than a silently
//! ignored key. Values stay strings where they need parsing with context (addresses,
//! durations, record values); `validate` turns them into the model.

use serde::Deserialize;

/// `[server]`: listeners and process-wide settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Addresses served on UDP and TCP.
    #[serde(default = "default_dns_listen")]
    pub dns_listen: Vec<String>,
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// A TCP connection that sends nothing for this long is closed.
    #[serde(default = "default_tcp_idle_timeout")]
    pub tcp_idle_timeout: String,
    /// TCP connections served at once; more are closed as soon as they are accepted.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    /// File holding the bearer token that mutating admin calls must present.
    pub admin_token_file: Option<String>,
    /// Reads (every admin call but `/healthz` and `/readyz`) need the token too.
    #[serde(default)]
    pub admin_protect_reads: bool,
    /// Where overrides, last known health and drills are kept across restarts.
    pub state_file: Option<String>,
    /// On SIGTERM, how long to keep answering DNS after readiness drops, so load
    /// balancers stop sending queries first.
    #[serde(default = "default_shutdown_delay")]
    pub shutdown_delay: String,
    /// `[server.rate_limit]`: response rate limiting over UDP.
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    /// The local address probes connect from (a VIP of the other family uses the
    /// system's choice); default: the system's choice.
    pub probe_source: Option<String>,
}

/// `[quorum]`: several gslb instances that decide together whether a target is down.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuorum {
    /// This instance's name in its view; default: the host name.
    pub instance: Option<String>,
    /// The peers' admin API base URLs, e.g. `http://10.0.0.2:19153`.
    pub peers: Option<Vec<String>>,
    /// A `[[source]]` (clusternet or karmada) whose hub API carries the views instead.
    pub hub: Option<String>,
    /// The hub namespace of the view objects.
    pub namespace: Option<String>,
    /// File holding the bearer token sent to the peers' admin APIs.
    pub token_file: Option<String>,
    /// `"majority"` (default), a number of views, or a share such as `"60%"`.
    pub required: Option<toml::Value>,
    /// A view received longer ago than this is ignored.
    #[serde(default = "default_fresh_within")]
    pub fresh_within: String,
    /// How often each peer's view is read (`peers` only).
    pub poll_interval: Option<String>,
}

fn default_fresh_within() -> String {
    "3s".to_owned()
}

/// `[server.rate_limit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Responses per second per client prefix; 0 turns limiting off.
    #[serde(default)]
    pub responses_per_second: u32,
    /// Every `slip`-th limited response goes out truncated; 0 drops them all.
    #[serde(default = "default_slip")]
    pub slip: u32,
    #[serde(default = "default_v4_prefix")]
    pub ipv4_prefix: u8,
    #[serde(default = "default_v6_prefix")]
    pub ipv6_prefix: u8,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        Self {
            responses_per_second: 0,
            slip: default_slip(),
            ipv4_prefix: default_v4_prefix(),
            ipv6_prefix: default_v6_prefix(),
        }
    }
}

fn default_slip() -> u32 {
    2
}
fn default_v4_prefix() -> u8 {
    24
}
fn default_v6_prefix() -> u8 {
    56
}

fn default_shutdown_delay() -> String {
    "0s".to_owned()
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            dns_listen: default_dns_listen(),
            admin_listen: default_admin_listen(),
            tcp_idle_timeout: default_tcp_idle_timeout(),
            tcp_max_connections: default_tcp_max_connections(),
            admin_token_file: None,
            admin_protect_reads: false,
            state_file: None,
            shutdown_delay: default_shutdown_delay(),
            rate_limit: RawRateLimit::default(),
            probe_source: None,
        }
    }
}

pub const DEFAULT_DNS_LISTEN: &str = "127.0.0.1:15353";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:19153";

fn default_dns_listen() -> Vec<String> {
    vec![DEFAULT_DNS_LISTEN.to_owned()]
}
fn default_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.to_owned()
}
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 1024;

fn default_tcp_max_connections() -> usize {
    DEFAULT_TCP_MAX_CONNECTIONS
}
fn default_tcp_idle_timeout() -> String {
    "10s".to_owned()
}

/// `[[zone]]`: one authoritative zone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub name: String,
    pub nameservers: Vec<String>,
    pub hostmaster: String,
    #[serde(default = "default_zone_ttl")]
    pub ttl: u32,
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl: u32,
    #[serde(default)]
    pub records: Vec<RawRecord>,
    /// Addresses or prefixes allowed to transfer the zone (AXFR, IXFR).
    #[serde(default)]
    pub allow_transfer: Vec<String>,
    /// Secondaries sent a NOTIFY on every new serial: `address:port` (port 53 if left out).
    #[serde(default)]
    pub notify: Vec<String>,
    /// Name of the TSIG key transfers must be signed with.
    pub tsig_key_name: Option<String>,
    /// File holding that key's secret, in base64.
    pub tsig_key_file: Option<String>,
    #[serde(default = "default_tsig_algorithm")]
    pub tsig_algorithm: String,
    /// Online DNSSEC signing of the zone, answers included.
    pub dnssec: Option<RawDnssec>,
}

/// `[zone.dnssec]`: the zone's signing keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnssec {
    pub keys: Vec<RawDnssecKey>,
    /// How long each signature is valid; re-signed when half of it has passed.
    #[serde(default = "default_signature_validity")]
    pub signature_validity: String,
}

/// One key of `[zone.dnssec]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnssecKey {
    /// PKCS#8 PEM private key: ECDSA P-256 or Ed25519.
    pub file: String,
    /// `csk`, `ksk` or `zsk`.
    #[serde(default = "default_key_role")]
    pub role: String,
}

fn default_signature_validity() -> String {
    "14d".to_owned()
}

fn default_key_role() -> String {
    "csk".to_owned()
}

fn default_tsig_algorithm() -> String {
    "hmac-sha256".to_owned()
}

fn default_zone_ttl() -> u32 {
    300
}
fn default_negative_ttl() -> u32 {
    30
}

/// One static record: `{ name = "ns1", type = "A", value = "127.0.0.1" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    /// Relative to the zone (`@` is the apex) unless it ends in `.` or in the zone name.
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub value: String,
    pub ttl: Option<u32>,
}

/// `[[cluster]]`: one member cluster and its ingress VIPs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: String,
    #[serde(default)]
    pub region: String,
    /// Static ingress VIPs; may be left out when a `[[source]]` discovers them.
    #[serde(default)]
    pub vips: Vec<String>,
    #[serde(default = "default_priority")]
    pub priority: u32,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_priority() -> u32 {
    1
}
fn default_weight() -> u32 {
    1
}

/// `[[app]]`: one served name and how it picks clusters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: String,
    #[serde(default = "default_policy")]
    pub policy: String,
    #[serde(default = "default_app_ttl")]
    pub ttl: u32,
    /// `{ min = 5 }`: shorter TTLs while a cluster is down or changing. Off when absent.
    pub adaptive_ttl: Option<RawAdaptiveTtl>,
    /// Defaults to every cluster, in config order.
    pub clusters: Option<Vec<String>>,
    pub probe: RawProbe,
    #[serde(default = "default_true")]
    pub fail_open: bool,
    /// `both` (default), `probes` or `workloads`.
    pub health: Option<String>,
    /// The Ingress (or LoadBalancer Service, `kind = "Service"`) whose status holds the
    /// app's VIP in each cluster.
    pub ingress: Option<RawObjectRef>,
    /// Workloads that must be ready for the app to count as up in a cluster.
    #[serde(default)]
    pub workloads: Vec<RawWorkload>,
}

/// `adaptive_ttl = { min = 5 }` of an app: TTL that follows health.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdaptiveTtl {
    /// The shortest TTL served while unsteady, in seconds.
    pub min: u32,
}

/// `{ namespace = "qcbm", name = "qcbm-ingress" }`, optionally `kind = "Service"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectRef {
    pub namespace: String,
    pub name: String,
    #[serde(default = "default_ingress_kind")]
    pub kind: String,
}

fn default_ingress_kind() -> String {
    "Ingress".to_owned()
}

/// `{ namespace = "qcbm", kind = "Deployment", name = "qcbm-gateway", min_ready = 1 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub namespace: String,
    pub name: String,
    #[serde(default = "default_workload_kind")]
    pub kind: String,
    #[serde(default = "default_min_ready")]
    pub min_ready: u32,
}

fn default_workload_kind() -> String {
    "Deployment".to_owned()
}
fn default_min_ready() -> u32 {
    1
}

/// `[geo]`: client regions for apps with `policy = "geo"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeo {
    /// The longest EDNS Client Subnet IPv4 prefix believed; longer ones are cut.
    #[serde(default = "default_ecs_ipv4_prefix")]
    pub ecs_ipv4_prefix: u8,
    /// The same for IPv6.
    #[serde(default = "default_ecs_ipv6_prefix")]
    pub ecs_ipv6_prefix: u8,
    /// The region of clients that match no subnet (and that the database, if any, puts in
    /// no region); default: none (failover order).
    pub default_region: Option<String>,
    /// A MaxMind-format database file (GeoLite2/GeoIP2 Country or City), read at start and
    /// on every reload: places clients that match no subnet by `countries` and
    /// `continents`.
    pub database: Option<String>,
    /// `[[geo.region]]`: the regions and their subnets.
    #[serde(default)]
    pub region: Vec<RawGeoRegion>,
}

fn default_ecs_ipv4_prefix() -> u8 {
    crate::model::DEFAULT_ECS_IPV4_PREFIX
}
fn default_ecs_ipv6_prefix() -> u8 {
    crate::model::DEFAULT_ECS_IPV6_PREFIX
}

/// `[[geo.region]]`: one client region.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeoRegion {
    /// Matches the `region` of clusters.
    pub name: String,
    /// `"10.1.0.0/16"`, `"2001:db8:1::/48"`: clients in these subnets are in the region.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// `["CN", "HK"]`: clients the database places in these countries (its
    /// `country.iso_code`) are in the region. Needs `[geo] database`.
    #[serde(default)]
    pub countries: Vec<String>,
    /// `["AS"]`: clients the database places in these continents (its `continent.code`)
    /// are in the region, unless their country is listed by some region.
    #[serde(default)]
    pub continents: Vec<String>,
    /// Degrees, -90 to 90; with `lon`, places the region for "nearest region".
    pub lat: Option<f64>,
    /// Degrees, -180 to 180.
    pub lon: Option<f64>,
}

/// `[[source]]`: where clusters and VIPs are discovered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: String,
    /// `clusternet`, `karmada` or `kubeconfig`.
    pub kind: String,
    /// Default: `$KUBECONFIG` or `~/.kube/config` if present, else the in-cluster
    /// service account.
    pub kubeconfig: Option<String>,
    /// The hub's context (clusternet, karmada); default: the current context.
    pub context: Option<String>,
    /// For `kubeconfig`: the member clusters' contexts (default: every context); each
    /// context's name is the cluster's name.
    pub contexts: Option<Vec<String>>,
}

fn default_policy() -> String {
    "failover".to_owned()
}
fn default_app_ttl() -> u32 {
    30
}
fn default_true() -> bool {
    true
}

/// `probe = { kind = "http", ... }` of an app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// `http`, `https` or `tcp`.
    pub kind: String,
    pub port: Option<u16>,
    pub path: Option<String>,
    /// Host header and TLS SNI; defaults to the app name.
    pub host: Option<String>,
    /// `"200-399"` or a single code such as `"204"`.
    pub expect_status: Option<String>,
    pub body_contains: Option<String>,
    pub tls_verify: Option<bool>,
    #[serde(default = "default_interval")]
    pub interval: String,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default = "default_rise")]
    pub rise: u32,
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// The pace of probes while results disagree with the endpoint's state (a failure
    /// while up, a pass while down), until `fall` or `rise` settles it. Defaults to the
    /// smaller of [`DEFAULT_RECHECK_INTERVAL`] and `interval`.
    pub recheck_interval: Option<String>,
}

/// Probe defaults, justified in the README ("How failover timing works").
pub const DEFAULT_INTERVAL: &str = "1s";
pub const DEFAULT_TIMEOUT: &str = "800ms";
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;
pub const DEFAULT_RECHECK_INTERVAL: &str = "200ms";

fn default_interval() -> String {
    DEFAULT_INTERVAL.to_owned()
}
fn default_timeout() -> String {
    DEFAULT_TIMEOUT.to_owned()
}
fn default_rise() -> u32 {
    DEFAULT_RISE
}
fn default_fall() -> u32 {
    DEFAULT_FALL
}
