//! The status report of `GET /api/v1/status`: every target with its VIPs and last probe,
//! and the current answer of every app. Built by a pure function from the snapshots; the
//! same types deserialize it in `gslb status`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::answer::AnswerTable;
use crate::health::{HealthSnapshot, Override};
use crate::model::Inventory;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    /// Whether every probe has reported at least once and DNS is serving.
    pub ready: bool,
    pub serial: u32,
    /// DNS listeners (UDP and TCP on each).
    #[serde(default)]
    pub dns: Vec<String>,
    pub targets: Vec<TargetStatus>,
    #[serde(default)]
    pub overrides: Vec<Override>,
    /// Discovery sources; one that is not `up` is stale: its last view stays in force.
    #[serde(default)]
    pub sources: Vec<crate::discovery::SourceState>,
    pub apps: Vec<AppStatus>,
    /// With `[quorum]`: the peers' views and whether any is fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumStatus>,
    /// With `[geo] database`: the database in use (read at start and on each reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_database: Option<GeoDatabaseStatus>,
}

/// The `[geo] database` in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoDatabaseStatus {
    /// The file as configured.
    pub path: String,
    /// Its `database_type`, e.g. `GeoLite2-Country`.
    pub database_type: String,
    /// When it was built (its `build_epoch`), RFC 3339.
    pub built: String,
    /// 4 or 6.
    pub ip_version: u16,
    /// The file's size, held in memory.
    pub size_bytes: usize,
    /// Whether it places clients: false when no region lists `countries` or
    /// `continents` (it is then never looked up). Servers before this field used every
    /// database they loaded.
    #[serde(default = "database_used")]
    pub used: bool,
}

fn database_used() -> bool {
    true
}

/// The quorum part of the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuorumStatus {
    /// This instance's name in its view.
    pub instance: String,
    /// `[quorum] required` as configured: `majority`, a count, or a share.
    pub required: String,
    pub fresh_within_ms: u64,
    /// Fresh views counted in decisions, this instance's own included.
    pub fresh_views: usize,
    /// Peers whose view is stale or was never read.
    pub stale_views: usize,
    /// True while no peer's view is fresh: this instance decides from its own view alone.
    pub fallback: bool,
    pub peers: Vec<PeerStatus>,
    /// With `[quorum] hub`: this instance's view object and the watch of the others'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<crate::quorum::hub::HubState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Where its view comes from: its admin API's base URL, or its view object's URL on
    /// the hub.
    pub url: String,
    /// How its view travels: `admin` (`[quorum] peers`) or `hub`.
    #[serde(default = "via_admin")]
    pub via: crate::health::quorum::Via,
    /// The instance name in its last view.
    pub instance: Option<String>,
    pub fresh: bool,
    /// The URL serves this very instance (it is ignored).
    #[serde(default)]
    pub is_self: bool,
    /// RFC 3339 time its last view was received (our clock).
    pub last_view: Option<String>,
    /// The `sequence` of its last view.
    pub sequence: Option<u64>,
    /// Why the last read failed, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub app: String,
    pub cluster: String,
    pub region: String,
    /// The state answers use: `unknown` (no result yet, answered as up), `up` or `down`.
    pub state: String,
    /// What the probes alone say (differs from `state` under an override).
    #[serde(default)]
    pub probed: String,
    /// What this instance's own probes alone say (after its rise/fall). Equal to
    /// `probed` without `[quorum]`.
    #[serde(default)]
    pub own: String,
    /// The override holding the target out of answers, if any.
    #[serde(default, rename = "override")]
    pub overridden: Option<Override>,
    /// Workload readiness from discovery, e.g. `Deployment qcbm/gw: 0/2 ready (min 1)`.
    #[serde(default)]
    pub workload: Option<String>,
    /// RFC 3339 time of the last state change (or of the start).
    pub since: String,
    pub vips: Vec<VipStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VipStatus {
    pub vip: String,
    pub state: String,
    pub since: String,
    /// What this instance's own probes say (its view, after its rise/fall); `state` is
    /// the quorum's decision with `[quorum]`, else the same.
    #[serde(default)]
    pub own: String,
    /// With `[quorum]` and a fresh peer view: the votes that decided `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub votes: Option<crate::health::quorum::Votes>,
    /// Consecutive results so far towards the next state change.
    #[serde(default)]
    pub streak: u32,
    pub last_probe: Option<ProbeStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeStatus {
    /// `success`, `failure` or `timeout`.
    pub result: String,
    pub detail: String,
    pub latency_ms: f64,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatus {
    pub app: String,
    pub policy: String,
    /// True while no cluster is healthy and every VIP is answered.
    pub fail_open: bool,
    /// Clusters the current answer draws from.
    pub clusters: Vec<String>,
    /// Every address currently answered (A and AAAA).
    pub answer: Vec<String>,
    /// The TTL of those answers now, in seconds: the app's `ttl`, or shorter with
    /// `adaptive_ttl` while a cluster is down or changing.
    #[serde(default)]
    pub ttl: u32,
    /// True while the app has `adaptive_ttl` and a cluster of it is down or changing: the
    /// TTL is then the time until its earliest possible change (at least `min`, at most
    /// `ttl`).
    #[serde(default)]
    pub ttl_unsteady: bool,
    /// Why the answers carry that TTL.
    #[serde(default)]
    pub ttl_why: String,
    /// `geo` only: what the clients of each region get (`clusters` and `answer` above are
    /// then what clients in no region get).
    #[serde(default)]
    pub regions: Vec<RegionStatus>,
}

/// One client region of a `geo` app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionStatus {
    pub region: String,
    /// Its subnets as configured.
    pub subnets: Vec<String>,
    /// Its `countries` and `continents` as configured (placed by `[geo] database`).
    #[serde(default)]
    pub countries: Vec<String>,
    #[serde(default)]
    pub continents: Vec<String>,
    /// How its answer was chosen: its own clusters, the nearest region's, failover order.
    pub via: String,
    pub clusters: Vec<String>,
    pub answer: Vec<String>,
}

fn time(t: SystemTime) -> String {
    crate::rfc3339::format(t)
}

/// Builds the report from the current snapshots.
pub fn report(
    inventory: &Inventory,
    health: &HealthSnapshot,
    table: &AnswerTable,
    ready: bool,
    dns: &[std::net::SocketAddr],
) -> StatusReport {
    let targets = inventory
        .targets
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let cluster = &inventory.clusters[t.cluster];
            let th = &health.targets[ti];
            TargetStatus {
                app: inventory.apps[t.app].display_name(),
                cluster: cluster.name.clone(),
                region: cluster.region.clone(),
                state: th.state.as_str().to_owned(),
                probed: th.probed.as_str().to_owned(),
                own: th.own.as_str().to_owned(),
                overridden: th.overridden.clone(),
                workload: t.workload.as_ref().map(|w| {
                    format!(
                        "{}: {}",
                        if w.ready { "ready" } else { "NOT READY" },
                        w.detail
                    )
                }),
                since: time(th.since),
                vips: inventory
                    .endpoints_of(ti)
                    .map(|i| (&inventory.endpoints[i], &health.endpoints[i]))
                    .map(|(e, h)| VipStatus {
                        vip: e.vip.to_string(),
                        state: h.state.as_str().to_owned(),
                        since: time(h.since),
                        own: h.own.as_str().to_owned(),
                        votes: h.votes,
                        streak: h.streak,
                        last_probe: h.last.as_ref().map(|p| ProbeStatus {
                            result: p.outcome.as_str().to_owned(),
                            detail: p.detail.to_string(),
                            latency_ms: p.latency.as_secs_f64() * 1000.0,
                            at: time(p.at),
                        }),
                    })
                    .collect(),
            }
        })
        .collect();
    let apps = inventory
        .apps
        .iter()
        .zip(&table.apps)
        .enumerate()
        .map(|(i, (app, plan))| AppStatus {
            app: app.display_name(),
            policy: app.policy.as_str().to_owned(),
            fail_open: plan.fail_open,
            clusters: plan
                .clusters
                .iter()
                .map(|&c| inventory.clusters[c].name.clone())
                .collect(),
            answer: plan.addresses().iter().map(ToString::to_string).collect(),
            ttl: plan.ttl.seconds,
            ttl_unsteady: plan.ttl.unsteady.is_some(),
            ttl_why: plan.ttl.why(&table.inventory, i),
            regions: plan
                .regions
                .iter()
                .zip(&inventory.geo.regions)
                .map(|(r, region)| {
                    let mut answer: Vec<String> = Vec::new();
                    for ip in r.v4.iter().chain(&r.v6).flatten() {
                        let ip = ip.to_string();
                        if !answer.contains(&ip) {
                            answer.push(ip);
                        }
                    }
                    RegionStatus {
                        region: region.name.clone(),
                        subnets: region
                            .subnets
                            .iter()
                            .map(|(ip, len)| format!("{ip}/{len}"))
                            .collect(),
                        countries: region.countries.iter().map(ToString::to_string).collect(),
                        continents: region.continents.iter().map(ToString::to_string).collect(),
                        via: r.via.describe(&inventory.geo),
                        clusters: r
                            .clusters
                            .iter()
                            .map(|&c| inventory.clusters[c].name.clone())
                            .collect(),
                        answer,
                    }
                })
                .collect(),
        })
        .collect();
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ready,
        serial: table.serial(),
        dns: dns.iter().map(ToString::to_string).collect(),
        targets,
        overrides: health.overrides.clone(),
        sources: Vec::new(),
        apps,
        quorum: health.quorum.as_ref().map(|q| {
            let (fresh_views, stale_views) = q.counts();
            QuorumStatus {
                instance: q.instance.clone(),
                required: q.rule.required.as_text(),
                fresh_within_ms: u64::try_from(q.rule.fresh_within.as_millis()).unwrap_or(u64::MAX),
                fresh_views,
                stale_views,
                fallback: q.fallback(),
                peers: q
                    .peers
                    .iter()
                    .map(|p| PeerStatus {
                        url: p.url.clone(),
                        via: p.via,
                        instance: p.view.as_ref().map(|v| v.instance.clone()),
                        fresh: p.fresh,
                        is_self: p.is_self,
                        last_view: p.received.map(time),
                        sequence: p.view.as_ref().map(|v| v.sequence),
                        error: p.error.clone(),
                    })
                    .collect(),
                hub: None,
            }
        }),
        geo_database: inventory.geo.database.as_ref().map(|d| {
            let info = d.info();
            GeoDatabaseStatus {
                path: info.path.clone(),
                database_type: info.database_type.clone(),
                built: time(
                    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(info.build_epoch),
                ),
                ip_version: info.ip_version,
                size_bytes: info.size,
                used: inventory.geo.database_in_use().is_some(),
            }
        }),
    }
}

fn via_admin() -> crate::health::quorum::Via {
    crate::health::quorum::Via::Admin
}

/// Renders a report as the table `gslb status` prints.
pub fn render(report: &StatusReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "gslb {}  ready: {}  serial: {}",
        report.version,
        if report.ready { "yes" } else { "no" },
        report.serial
    );
    if let Some(d) = &report.geo_database {
        let _ = writeln!(
            out,
            "geo database {}: {} built {}, IPv{}, {} bytes{}",
            d.path,
            d.database_type,
            d.built,
            d.ip_version,
            d.size_bytes,
            if d.used {
                ""
            } else {
                "; unused: no region lists countries or continents"
            }
        );
    }
    for src in &report.sources {
        let _ = writeln!(
            out,
            "discovery {} ({}): {}{}{}",
            src.name,
            src.kind,
            if src.up {
                "up"
            } else {
                "DOWN, serving its last known state (stale)"
            },
            src.last_sync
                .map(|t| format!(", last sync {}", time(t)))
                .unwrap_or_default(),
            src.last_error
                .as_ref()
                .filter(|_| !src.up)
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default(),
        );
    }
    if let Some(q) = &report.quorum {
        let _ = writeln!(
            out,
            "quorum as {}: {} fresh view{} (this one included), {} stale; down needs {} of them{}",
            q.instance,
            q.fresh_views,
            if q.fresh_views == 1 { "" } else { "s" },
            q.stale_views,
            q.required,
            if q.fallback {
                "; NO FRESH PEER VIEW: deciding from this instance's own view alone"
            } else {
                ""
            }
        );
        if let Some(h) = &q.hub {
            let _ = writeln!(
                out,
                "  views through the hub of source {} in namespace {}: this view as {}{}; watch {}",
                h.source,
                h.namespace,
                h.object,
                match (&h.write_error, h.last_write) {
                    (Some(e), _) => format!(", NOT WRITTEN: {e}"),
                    (None, Some(t)) => format!(", written {}", time(t)),
                    (None, None) => ", not written yet".to_owned(),
                },
                match (&h.watch_error, h.watching) {
                    (Some(e), _) => format!("DOWN: {e}"),
                    (None, true) => "up".to_owned(),
                    (None, false) => "starting".to_owned(),
                },
            );
        }
        for p in &q.peers {
            let what = if p.is_self {
                "this instance (ignored)".to_owned()
            } else if p.fresh {
                "fresh".to_owned()
            } else {
                "STALE".to_owned()
            };
            let _ = writeln!(
                out,
                "  peer {} ({}): {what}{}{}",
                p.url,
                p.instance.as_deref().unwrap_or("?"),
                p.last_view
                    .as_ref()
                    .map(|t| format!(", last view {t}"))
                    .unwrap_or_default(),
                p.error
                    .as_ref()
                    .map(|e| format!(", error: {e}"))
                    .unwrap_or_default(),
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} {:<16} {:<12} {:<24} {:<8} {:<10} LAST PROBE",
        "APP", "CLUSTER", "STATE", "SINCE", "VIP", "VIP STATE"
    );
    for t in &report.targets {
        for (i, v) in t.vips.iter().enumerate() {
            let state = match &t.overridden {
                Some(o) => format!("{}({})", t.state, o.kind.as_str()),
                None => t.state.clone(),
            };
            let (app, cluster, state, since) = if i == 0 {
                (
                    t.app.as_str(),
                    t.cluster.as_str(),
                    state.as_str(),
                    t.since.as_str(),
                )
            } else {
                ("", "", "", "")
            };
            let probe = v.last_probe.as_ref().map_or_else(
                || "-".to_owned(),
                |p| format!("{} {:.1}ms {}", p.result, p.latency_ms, p.detail),
            );
            let _ = writeln!(
                out,
                "{app:<24} {cluster:<16} {state:<12} {since:<24} {:<8} {:<10} {probe}",
                v.vip, v.state
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} {:<12} {:<10} {:<6} ANSWER",
        "APP", "POLICY", "FAIL-OPEN", "TTL"
    );
    for a in &report.apps {
        let answer = if a.answer.is_empty() {
            "(nothing)".to_owned()
        } else {
            a.answer.join(" ")
        };
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<10} {:<6} {answer}",
            a.app,
            a.policy,
            if a.fail_open { "YES" } else { "no" },
            format!("{}s", a.ttl)
        );
        for r in &a.regions {
            let answer = if r.answer.is_empty() {
                "(nothing)".to_owned()
            } else {
                r.answer.join(" ")
            };
            let mut placed = Vec::new();
            if !r.countries.is_empty() {
                placed.push(format!("countries {}", r.countries.join(" ")));
            }
            if !r.continents.is_empty() {
                placed.push(format!("continents {}", r.continents.join(" ")));
            }
            let placed = if placed.is_empty() {
                String::new()
            } else {
                format!("  [{}]", placed.join("; "))
            };
            let _ = writeln!(
                out,
                "  region {:<15} {answer}  ({}){placed}",
                r.region, r.via
            );
        }
    }
    // Targets on which the quorum and this instance's own probes disagree.
    let outvoted: Vec<(&TargetStatus, &VipStatus, crate::health::quorum::Votes)> = report
        .targets
        .iter()
        .flat_map(|t| t.vips.iter().map(move |v| (t, v)))
        .filter_map(|(t, v)| Some((t, v, v.votes.filter(|_| v.own != v.state)?)))
        .collect();
    if !outvoted.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "QUORUM DIFFERS FROM OWN VIEW");
        for (t, v, votes) in outvoted {
            let _ = writeln!(
                out,
                "  {} {} {}: {} by quorum ({} of {} fresh views say down, {} needed); own view {}",
                t.app, t.cluster, v.vip, v.state, votes.down, votes.views, votes.needed, v.own
            );
        }
    }
    // Only adaptive TTLs that are not at rest need a reason here; `--json` and explain
    // give every one.
    if report.apps.iter().any(|a| a.ttl_unsteady) {
        let _ = writeln!(out);
        let _ = writeln!(out, "SHORT TTL");
        for a in report.apps.iter().filter(|a| a.ttl_unsteady) {
            let _ = writeln!(out, "  {} {}s: {}", a.app, a.ttl, a.ttl_why);
        }
    }
    if !report.overrides.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "OVERRIDES");
        for o in &report.overrides {
            let _ = writeln!(
                out,
                "  {} {}/{} by {} since {}{}: {}",
                o.kind.as_str(),
                o.cluster,
                o.app.as_deref().unwrap_or("*"),
                o.set_by,
                time(o.set_at),
                o.expires_at
                    .map(|t| format!(" until {}", time(t)))
                    .unwrap_or_default(),
                o.reason
            );
        }
    }
    out
}
