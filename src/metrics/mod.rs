//! Prometheus metrics: every name in one place, registered on one registry.
//!
//! Metric and label names are a contract with dashboards and alerts; add, never rename.
//! The DNS query counter is on the hot path, so its label combinations are resolved once
//! into a fixed table of counters (no hashing or locking per query); only combinations that
//! occurred are exported. The per-target families, most of the series, are held in
//! [`targets`] and encoded there; a scrape is a [`Scrape`], written a chunk at a time.

mod targets;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use targets::{DurationCells, FAMILIES};
pub use targets::{PROBE_BUCKETS, TargetCells, TargetSeries};

pub const TARGET_UP: &str = "gslb_target_up";
pub const PROBE_DURATION: &str = "gslb_probe_duration_seconds";
pub const PROBES: &str = "gslb_probes_total";
pub const HEALTH_TRANSITIONS: &str = "gslb_health_transitions_total";
pub const APP_FAIL_OPEN: &str = "gslb_app_fail_open";
pub const ANSWER_CHANGES: &str = "gslb_answer_changes_total";
pub const DNS_QUERIES: &str = "gslb_dns_queries_total";
pub const BUILD_INFO: &str = "gslb_build_info";
pub const OVERRIDE_ACTIVE: &str = "gslb_override_active";
pub const DISCOVERY_UP: &str = "gslb_discovery_up";
pub const RATE_LIMITED: &str = "gslb_dns_rate_limited_total";
pub const TCP_REFUSED: &str = "gslb_dns_tcp_refused_total";
pub const CONFIG_RELOADS: &str = "gslb_config_reloads_total";
pub const DISCOVERY_LAST_SYNC: &str = "gslb_discovery_last_sync_timestamp_seconds";
pub const DRILLS: &str = "gslb_drills_total";
pub const DRILL_SWITCH: &str = "gslb_drill_switch_seconds";
pub const ZONE_SERIAL: &str = "gslb_zone_serial";
pub const ZONE_TRANSFERS: &str = "gslb_zone_transfers_total";
pub const NOTIFIES: &str = "gslb_notify_total";

/// Results of a transfer request (`gslb_zone_transfers_total`).
pub const TRANSFER_RESULTS: [&str; 5] = ["full", "incremental", "current", "refused", "notauth"];
/// What became of a NOTIFY (`gslb_notify_total`): each datagram `sent`, then per
/// secondary and serial `answered` or, after the last try, `failed`.
pub const NOTIFY_RESULTS: [&str; 3] = ["sent", "answered", "failed"];
pub const QUORUM_VIEWS: &str = "gslb_quorum_views";
pub const QUORUM_VIEW_WRITES: &str = "gslb_quorum_view_writes_total";
/// The `result` label of `gslb_quorum_view_writes_total`.
pub const VIEW_WRITE_RESULTS: [&str; 3] = ["ok", "error", "too_large"];
pub const GEO_ANSWERS: &str = "gslb_geo_answers_total";
/// The `region` label of `geo` answers to clients in no region.
pub const REGION_UNMAPPED: &str = "unmapped";

/// Query types counted by name; everything else is `other`.
pub const QTYPES: [&str; 16] = [
    "A", "AAAA", "SOA", "NS", "CNAME", "MX", "TXT", "SRV", "PTR", "CAA", "HTTPS", "SVCB", "DS",
    "DNSKEY", "ANY", "other",
];
/// Response codes counted by name; everything else is `other`.
pub const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];
/// Transports: index 0 is UDP, 1 is TCP.
pub const TRANSPORTS: [&str; 2] = ["udp", "tcp"];

const DNS_CELLS: usize = TRANSPORTS.len() * QTYPES.len() * RCODES.len();

/// Every gslb metric.
pub struct Metrics {
    registry: Registry,
    /// `gslb_target_up`, `gslb_health_transitions_total`, `gslb_probes_total` and
    /// `gslb_probe_duration_seconds`.
    targets: TargetSeries,
    app_fail_open: IntGaugeVec,
    answer_changes: IntCounterVec,
    dns_queries: IntCounterVec,
    geo_answers: IntCounterVec,
    override_active: IntGaugeVec,
    discovery_up: IntGaugeVec,
    rate_limited: IntCounterVec,
    tcp_refused: prometheus::IntCounter,
    reloads: IntCounterVec,
    discovery_last_sync: prometheus::GaugeVec,
    drills: IntCounterVec,
    drill_switch: prometheus::Histogram,
    zone_serial: IntGaugeVec,
    zone_transfers: IntCounterVec,
    notifies: IntCounterVec,
    quorum_views: IntGaugeVec,
    quorum_view_writes: IntCounterVec,
    dns_cells: Box<[OnceLock<IntCounter>]>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates and registers every metric, and sets `gslb_build_info`.
    ///
    /// # Panics
    ///
    /// Only if two metrics share a name, which is a programming error caught by tests.
    pub fn new() -> Self {
        let registry = Registry::new();
        let app_fail_open = IntGaugeVec::new(
            Opts::new(
                APP_FAIL_OPEN,
                "1 while the app answers with every VIP because no cluster is healthy.",
            ),
            &["app"],
        )
        .unwrap();
        let answer_changes = IntCounterVec::new(
            Opts::new(
                ANSWER_CHANGES,
                "Times the set of addresses an app answers changed.",
            ),
            &["app"],
        )
        .unwrap();
        let dns_queries = IntCounterVec::new(
            Opts::new(
                DNS_QUERIES,
                "DNS queries answered, by transport, query type and rcode.",
            ),
            &["transport", "qtype", "rcode"],
        )
        .unwrap();
        let geo_answers = IntCounterVec::new(
            Opts::new(
                GEO_ANSWERS,
                "Answers of `geo` apps, by app and the client's region (`unmapped`: in none).",
            ),
            &["app", "region"],
        )
        .unwrap();
        let build_info = IntGaugeVec::new(
            Opts::new(
                BUILD_INFO,
                "Always 1; the version label says which gslb is running.",
            ),
            &["version"],
        )
        .unwrap();
        let override_active = IntGaugeVec::new(
            Opts::new(
                OVERRIDE_ACTIVE,
                "1 while an operator override (drain or fail) holds the target out of answers.",
            ),
            &["app", "cluster", "kind"],
        )
        .unwrap();
        let drills = IntCounterVec::new(
            Opts::new(
                DRILLS,
                "Failover drills recorded, by result: passed or failed.",
            ),
            &["result"],
        )
        .unwrap();
        let drill_switch = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                DRILL_SWITCH,
                "Time from a drill's fault to gslb's answer leaving the cluster.",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
            ]),
        )
        .unwrap();
        let discovery_up = IntGaugeVec::new(
            Opts::new(DISCOVERY_UP, "1 while the source's API answers; 0 while it does not (its last view stays in force)."),
            &["source"],
        )
        .unwrap();
        let discovery_last_sync = prometheus::GaugeVec::new(
            Opts::new(
                DISCOVERY_LAST_SYNC,
                "Unix time of the last successful event from the source's API.",
            ),
            &["source"],
        )
        .unwrap();
        let rate_limited = IntCounterVec::new(
            Opts::new(
                RATE_LIMITED,
                "UDP responses held back by response rate limiting: dropped, or slipped (sent truncated).",
            ),
            &["action"],
        )
        .unwrap();
        let quorum_views = IntGaugeVec::new(
            Opts::new(
                QUORUM_VIEWS,
                "With [quorum]: views counted in health decisions (fresh=\"true\", this instance's own included) and peers' views ignored as stale or never read (fresh=\"false\").",
            ),
            &["fresh"],
        )
        .unwrap();
        let quorum_view_writes = IntCounterVec::new(
            Opts::new(
                QUORUM_VIEW_WRITES,
                "With [quorum] hub: writes of this instance's view object on the hub, by result (ok; error: refused or unreachable, retried at the next renewal; too_large: the view exceeds a ConfigMap and is not written).",
            ),
            &["result"],
        )
        .unwrap();
        let tcp_refused = prometheus::IntCounter::new(
            TCP_REFUSED,
            "DNS TCP connections closed on accept because tcp_max_connections were open.",
        )
        .unwrap();
        let reloads = IntCounterVec::new(
            Opts::new(
                CONFIG_RELOADS,
                "Config reloads, by result: success or failure.",
            ),
            &["result"],
        )
        .unwrap();
        let zone_serial = IntGaugeVec::new(
            Opts::new(
                ZONE_SERIAL,
                "The SOA serial served for the zone; it moves when the zone's content does.",
            ),
            &["zone"],
        )
        .unwrap();
        let zone_transfers = IntCounterVec::new(
            Opts::new(
                ZONE_TRANSFERS,
                "Zone transfer requests (AXFR, IXFR), by zone (`other` for a name that is no zone apex), kind and result: full, incremental (changes since the client's serial), current (the client had the serial), refused (not allowed, or over UDP), notauth (TSIG missing or wrong).",
            ),
            &["zone", "kind", "result"],
        )
        .unwrap();
        let notifies = IntCounterVec::new(
            Opts::new(
                NOTIFIES,
                "NOTIFY messages to secondaries, by zone and result: sent (each datagram, retries included), answered, failed (no answer after the last try).",
            ),
            &["zone", "result"],
        )
        .unwrap();
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        for result in ["passed", "failed"] {
            drills.with_label_values(&[result]);
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for c in [
            Box::new(app_fail_open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(answer_changes.clone()),
            Box::new(dns_queries.clone()),
            Box::new(geo_answers.clone()),
            Box::new(build_info),
            Box::new(override_active.clone()),
            Box::new(discovery_up.clone()),
            Box::new(rate_limited.clone()),
            Box::new(tcp_refused.clone()),
            Box::new(reloads.clone()),
            Box::new(discovery_last_sync.clone()),
            Box::new(drills.clone()),
            Box::new(drill_switch.clone()),
            Box::new(zone_serial.clone()),
            Box::new(zone_transfers.clone()),
            Box::new(notifies.clone()),
            Box::new(quorum_views.clone()),
            Box::new(quorum_view_writes.clone()),
        ] {
            registry.register(c).unwrap();
        }
        Self {
            registry,
            targets: TargetSeries::default(),
            app_fail_open,
            answer_changes,
            dns_queries,
            geo_answers,
            override_active,
            discovery_up,
            rate_limited,
            tcp_refused,
            reloads,
            discovery_last_sync,
            drills,
            drill_switch,
            zone_serial,
            zone_transfers,
            notifies,
            quorum_views,
            quorum_view_writes,
            dns_cells: (0..DNS_CELLS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Creates every series of a target at its start state, so that dashboards and
    /// `rate()` see zeros rather than missing series before the first change.
    pub fn init_target(&self, app: &str, cluster: &str, up: bool) {
        self.set_target_up(app, cluster, up);
    }

    /// Creates the per-app series at their start values.
    pub fn init_app(&self, app: &str, fail_open: bool) {
        self.set_fail_open(app, fail_open);
        self.answer_changes.with_label_values(&[app]);
    }

    /// Sets the up gauge of a target (a target with no probe result yet is answered, so
    /// it counts as up).
    pub fn set_target_up(&self, app: &str, cluster: &str, up: bool) {
        self.targets.get(app, cluster).set_up(up);
    }

    /// The probe series of one target, looked up once so that a probe result costs two
    /// atomic updates rather than two label lookups.
    /// `kind` is the probe kind's label ([`crate::model::ProbeKind::label`]).
    pub fn probe_series(&self, app: &str, cluster: &str, kind: &'static str) -> ProbeSeries {
        let target = self.targets.get(app, cluster);
        ProbeSeries {
            duration: target.duration(kind),
            target,
        }
    }

    /// Counts a target transition (`to`: up or down) and sets its up gauge.
    pub fn record_transition(&self, app: &str, cluster: &str, to: &str, up: bool) {
        let target = self.targets.get(app, cluster);
        target.set_up(up);
        target.count_transition(to);
    }

    pub fn set_override_active(&self, app: &str, cluster: &str, kind: &str, active: bool) {
        self.override_active
            .with_label_values(&[app, cluster, kind])
            .set(i64::from(active));
    }

    pub fn count_reload(&self, result: &str) {
        self.reloads.with_label_values(&[result]).inc();
    }

    /// Counts a response held back by rate limiting (`drop` or `slip`).
    pub fn count_rate_limited(&self, action: &str) {
        self.rate_limited.with_label_values(&[action]).inc();
    }

    pub fn set_zone_serial(&self, zone: &str, serial: u32) {
        self.zone_serial
            .with_label_values(&[zone])
            .set(i64::from(serial));
    }

    /// Counts a transfer request; `zone` is a configured origin or `other`, `kind` is
    /// `axfr` or `ixfr`, `result` one of [`TRANSFER_RESULTS`].
    pub fn count_transfer(&self, zone: &str, kind: &str, result: &str) {
        self.zone_transfers
            .with_label_values(&[zone, kind, result])
            .inc();
    }

    /// Counts a NOTIFY outcome, one of [`NOTIFY_RESULTS`].
    pub fn count_notify(&self, zone: &str, result: &str) {
        self.notifies.with_label_values(&[zone, result]).inc();
    }

    /// Counts a TCP connection closed at the connection cap.
    /// `gslb_quorum_views`: fresh views (ours included) and stale peer views.
    pub fn set_quorum_views(&self, fresh: usize, stale: usize) {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.quorum_views.with_label_values(&["true"]).set(n(fresh));
        self.quorum_views
            .with_label_values(&["false"])
            .set(n(stale));
    }

    /// Counts a write of this instance's view object on the hub (`result` one of
    /// [`VIEW_WRITE_RESULTS`]).
    pub fn count_view_write(&self, result: &str) {
        self.quorum_view_writes.with_label_values(&[result]).inc();
    }

    /// Shows `gslb_quorum_view_writes_total` at 0 for every result (with `[quorum] hub`).
    pub fn init_view_writes(&self) {
        for r in VIEW_WRITE_RESULTS {
            self.quorum_view_writes.with_label_values(&[r]).inc_by(0);
        }
    }

    pub fn count_tcp_refused(&self) {
        self.tcp_refused.inc();
    }

    pub fn set_discovery_up(&self, source: &str, up: bool) {
        self.discovery_up
            .with_label_values(&[source])
            .set(i64::from(up));
    }

    pub fn set_discovery_synced(&self, source: &str, at: std::time::SystemTime) {
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.discovery_last_sync
            .with_label_values(&[source])
            .set(secs);
    }

    /// Counts a recorded drill and, if it switched, how long the switch took.
    pub fn record_drill(&self, passed: bool, switch: Option<Duration>) {
        self.drills
            .with_label_values(&[if passed { "passed" } else { "failed" }])
            .inc();
        if let Some(d) = switch {
            self.drill_switch.observe(d.as_secs_f64());
        }
    }

    pub fn set_fail_open(&self, app: &str, fail_open: bool) {
        self.app_fail_open
            .with_label_values(&[app])
            .set(i64::from(fail_open));
    }

    pub fn count_answer_change(&self, app: &str) {
        self.answer_changes.with_label_values(&[app]).inc();
    }

    /// The counter of `geo` answers of `app` to clients of `region`, for the DNS path to
    /// keep (it resolves each once per inventory, not per query).
    pub fn geo_answer_counter(&self, app: &str, region: &str) -> IntCounter {
        self.geo_answers.with_label_values(&[app, region])
    }

    /// Counts one answered query; indexes come from [`qtype_index`] and [`rcode_index`].
    pub fn count_query(&self, tcp: bool, qtype: usize, rcode: usize) {
        let (qtype, rcode) = (qtype.min(QTYPES.len() - 1), rcode.min(RCODES.len() - 1));
        let cell = (usize::from(tcp) * QTYPES.len() + qtype) * RCODES.len() + rcode;
        self.dns_cells[cell]
            .get_or_init(|| {
                self.dns_queries.with_label_values(&[
                    TRANSPORTS[usize::from(tcp)],
                    QTYPES[qtype],
                    RCODES[rcode],
                ])
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric, whole; `/metrics` streams a
    /// [`Metrics::scrape`] instead.
    pub fn render(&self) -> String {
        self.scrape().collect()
    }

    /// The Prometheus text exposition of every metric, as chunks of about
    /// [`SCRAPE_CHUNK`] bytes written as they are taken, so that a scrape of many
    /// targets never holds its whole text (20 MB at 10,000 targets) nor a copy of every
    /// series. The same text, family for family and line for line, as the `prometheus`
    /// text encoder writes for a registry holding every series.
    pub fn scrape(&self) -> Scrape {
        let mut parts: Vec<Part> = self
            .registry
            .gather()
            .into_iter()
            .map(Part::Registry)
            .collect();
        let targets = self.targets.sorted();
        for (i, family) in FAMILIES.iter().enumerate() {
            if targets.iter().any(|t| targets::has_series(family, t)) {
                parts.push(Part::Targets(i));
            }
        }
        // Families in name order, as a registry gathers them.
        parts.sort_by(|a, b| a.name().cmp(b.name()));
        Scrape {
            parts: parts.into_iter(),
            current: None,
            targets,
        }
    }
}

/// About how large a [`Scrape`] chunk is.
pub const SCRAPE_CHUNK: usize = 64 * 1024;

/// One scrape's text, chunk by chunk: see [`Metrics::scrape`].
pub struct Scrape {
    parts: std::vec::IntoIter<Part>,
    /// The per-target family being written, and the next target to write.
    current: Option<(usize, usize)>,
    /// Every target's series, in label order.
    targets: Vec<Arc<TargetCells>>,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

enum Part {
    /// A family of the registry, gathered.
    Registry(MetricFamily),
    /// A family of [`targets::FAMILIES`], by index.
    Targets(usize),
}

impl Part {
    fn name(&self) -> &str {
        match self {
            Part::Registry(mf) => mf.name(),
            Part::Targets(i) => FAMILIES[*i].name,
        }
    }
}

impl Iterator for Scrape {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut out = String::with_capacity(SCRAPE_CHUNK + 4096);
        while out.len() < SCRAPE_CHUNK {
            if let Some((family, next)) = self.current.as_mut() {
                let family = &FAMILIES[*family];
                match self.targets.get(*next) {
                    Some(t) => {
                        targets::write_target(&mut out, family, t);
                        *next += 1;
                    }
                    None => self.current = None,
                }
                continue;
            }
            match self.parts.next() {
                Some(Part::Registry(mf)) => {
                    // Encoding into a String cannot fail for the text format.
                    let _ = TextEncoder::new().encode_utf8(&[mf], &mut out);
                }
                Some(Part::Targets(i)) => {
                    targets::write_header(&mut out, &FAMILIES[i]);
                    self.current = Some((i, 0));
                }
                None => break,
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// The `result` labels of `gslb_probes_total`, in [`ProbeSeries::observe`]'s index order.
pub const PROBE_RESULTS: [&str; 3] = ["success", "failure", "timeout"];

/// One target's probe duration histogram and result counters.
#[derive(Clone)]
pub struct ProbeSeries {
    target: Arc<TargetCells>,
    duration: Arc<DurationCells>,
}

impl ProbeSeries {
    /// Records one probe: `result` indexes [`PROBE_RESULTS`].
    pub fn observe(&self, result: usize, latency: Duration) {
        self.duration.observe(latency.as_secs_f64());
        self.target.count_probe(result);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Index of a query type name in [`QTYPES`] (`other` when not listed).
pub fn qtype_index(name: &str) -> usize {
    QTYPES
        .iter()
        .position(|q| *q == name)
        .unwrap_or(QTYPES.len() - 1)
}

/// Index of a response code name in [`RCODES`] (`other` when not listed).
pub fn rcode_index(name: &str) -> usize {
    RCODES
        .iter()
        .position(|r| *r == name)
        .unwrap_or(RCODES.len() - 1)
}

#[cfg(test)]
mod tests;
