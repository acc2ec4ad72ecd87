//! `GET /api/v1/explain?name=N[&type=A]`: why a name answers what it answers. For an app,
//! each cluster in or out of the answer and why (probes with latency, rise/fall progress,
//! overrides, policy tier, fail-open); for any name, the exact records a query gets now.

use std::str::FromStr;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hickory_proto::rr::{LowerName, Name, RecordType};
use serde::{Deserialize, Serialize};

use super::{AdminState, error};
use std::net::IpAddr;

use crate::answer::plan::RegionPlan;
use crate::answer::{AnswerTable, Client, Outcome};
use crate::health::{HealthSnapshot, Override, State as Health};
use crate::model::{Inventory, Policy};

#[derive(Debug, Deserialize)]
pub struct ExplainQuery {
    pub name: String,
    #[serde(rename = "type", default = "default_type")]
    pub qtype: String,
    /// `10.1.2.0/24` (as an EDNS Client Subnet) or `10.1.2.3` (as a resolver's address):
    /// who asks, for `geo` apps.
    pub client: Option<String>,
}

fn default_type() -> String {
    "A".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    /// `answer`, `nodata`, `nxdomain` or `refused`.
    pub outcome: String,
    /// The records a query gets now, as `dig` prints them.
    pub records: Vec<String>,
    /// Present when the name is an app.
    pub app: Option<AppExplanation>,
    /// Present when a client was given: where it is placed and what it gets.
    #[serde(default)]
    pub client: Option<ClientExplanation>,
}

/// Where a client lands under the `geo` policy, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientExplanation {
    /// As given.
    pub client: String,
    /// What is looked up after the ECS cap, e.g. `10.1.2.0/24`.
    pub believed: String,
    /// The client's region; `None` when it is in none.
    pub region: Option<String>,
    /// `subnet` (a `[[geo.region]]` subnet matched), `country` or `continent` (the
    /// `[geo] database` placed it in a region's `countries` or `continents`),
    /// `default_region`, or `unmapped`.
    pub rule: String,
    /// What placed it: the subnet for `subnet`, the database network for `country` and
    /// `continent`.
    pub matched: Option<String>,
    /// What the database said, when it was looked up (no subnet matched), whether or not
    /// that placed the client in a region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseExplanation>,
    /// The ECS SCOPE PREFIX-LENGTH its answer carries.
    pub scope: u8,
    /// How the region's answer was chosen; `None` for a name that is not a `geo` app.
    pub via: Option<String>,
    /// The clusters it is answered with.
    pub clusters: Vec<String>,
}

/// Where the `[geo] database` puts a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseExplanation {
    /// The database network holding the client, e.g. `20.1.0.0/16`: every client in it
    /// gets the same answer from the database.
    pub network: String,
    /// Its `country.iso_code`, e.g. `JP`; `None` when the record has none.
    pub country: Option<String>,
    /// Its `continent.code`, e.g. `AS`.
    pub continent: Option<String>,
    /// False when the database has no record for the network.
    pub found: bool,
}

/// One region's answer under the `geo` policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionExplanation {
    pub region: String,
    pub via: String,
    pub clusters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppExplanation {
    pub policy: String,
    /// The app's configured `ttl`.
    pub ttl: u32,
    /// The TTL its address answers carry now (below `ttl` while `adaptive_ttl` shortens
    /// it), and why.
    #[serde(default)]
    pub ttl_now: u32,
    #[serde(default)]
    pub ttl_why: String,
    /// The app's `adaptive_ttl` minimum, if it has one.
    #[serde(default)]
    pub adaptive_ttl_min: Option<u32>,
    pub fail_open: bool,
    pub clusters: Vec<ClusterExplanation>,
    /// `geo` only: the answer of each client region.
    #[serde(default)]
    pub regions: Vec<RegionExplanation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterExplanation {
    pub cluster: String,
    pub priority: u32,
    pub weight: u32,
    pub in_answer: bool,
    /// One sentence: why it is in or out.
    pub why: String,
    pub state: String,
    pub probed: String,
    #[serde(rename = "override")]
    pub overridden: Option<Override>,
    pub vips: Vec<VipExplanation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VipExplanation {
    pub vip: String,
    pub state: String,
    /// e.g. `1 of 2 passes needed to come back`.
    pub progress: String,
    pub last_probe: Option<String>,
}

pub async fn handler(State(s): State<AdminState>, Query(q): Query<ExplainQuery>) -> Response {
    let Ok(qtype) = RecordType::from_str(&q.qtype.to_ascii_uppercase()) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown record type `{}`", q.qtype),
        );
    };
    let Ok(mut name) = Name::from_ascii(q.name.trim()) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("`{}` is not a domain name", q.name),
        );
    };
    name.set_fqdn(true);
    let client = match q.client.as_deref().map(parse_client) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (health, table) = s.current();
    Json(explain(
        &health.inventory,
        &health,
        &table,
        &name,
        qtype,
        client,
    ))
    .into_response()
}

/// `10.1.2.0/24` is an ECS subnet (bits past the prefix are cleared), `10.1.2.3` a
/// resolver's address.
pub fn parse_client(text: &str) -> Result<Client, String> {
    let bad = || format!("`{text}` is not an address or a subnet such as 10.1.2.0/24");
    match text.trim().split_once('/') {
        None => IpAddr::from_str(text.trim())
            .map(Client::Resolver)
            .map_err(|_| bad()),
        Some((addr, len)) => {
            let addr = IpAddr::from_str(addr).map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len: u8 = len.parse().ok().filter(|l| *l <= max).ok_or_else(bad)?;
            Ok(if len == 0 {
                // ECS /0 asks that the client's address not be used: see the DNS path.
                Client::Subnet(crate::model::mask(addr, 0), 0)
            } else {
                Client::Subnet(crate::model::mask(addr, len), len)
            })
        }
    }
}

/// Builds the explanation; pure.
pub fn explain(
    inv: &Inventory,
    health: &HealthSnapshot,
    table: &AnswerTable,
    name: &Name,
    qtype: RecordType,
    client: Option<Client>,
) -> Explanation {
    // An ECS /0 is answered as for the resolver; explain has none, so it is in no region.
    let lookup_client = client.filter(|c| !matches!(c, Client::Subnet(_, 0)));
    let found = table.peek(&LowerName::new(name), qtype, lookup_client);
    let outcome = match found.outcome {
        Outcome::Answer => "answer",
        Outcome::NoData => "nodata",
        Outcome::NxDomain => "nxdomain",
        Outcome::Refused => "refused",
    };
    let records = found
        .answers()
        .chain(found.soa)
        .map(|r| format!("{} {} IN {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect();
    let app_index = inv
        .apps
        .iter()
        .position(|a| a.name.to_lowercase() == name.to_lowercase());
    let located = lookup_client.map(|c| table.geo.locate(c));
    let region_plan = app_index.and_then(|a| {
        let plan = &table.apps[a];
        let region = located.and_then(|l| l.region)?;
        plan.regions.get(region)
    });
    let app = app_index.map(|a| explain_app(inv, health, table, a, region_plan));
    let client = client.map(|given| {
        let located = located.unwrap_or_else(|| {
            table
                .geo
                .locate(Client::Resolver(std::net::Ipv4Addr::UNSPECIFIED.into()))
        });
        let geo_app = app_index.filter(|&a| inv.apps[a].policy == Policy::Geo);
        let (via, clusters) = match (geo_app, region_plan) {
            (None, _) => (None, Vec::new()),
            (Some(_), Some(r)) => (Some(r.via.describe(&inv.geo)), r.clusters.clone()),
            (Some(a), None) => (
                Some("in no region: failover order".to_owned()),
                table.apps[a].clusters.clone(),
            ),
        };
        ClientExplanation {
            client: match given {
                Client::Resolver(ip) => ip.to_string(),
                Client::Subnet(ip, len) => format!("{ip}/{len}"),
            },
            believed: match given {
                Client::Subnet(_, 0) => {
                    "none: ECS /0 is answered for the resolver's address".to_owned()
                }
                _ => format!("{}/{}", located.believed.0, located.believed.1),
            },
            region: located
                .region
                .and_then(|r| inv.geo.regions.get(r))
                .map(|r| r.name.clone()),
            rule: located.rule.as_str().to_owned(),
            matched: located.matched.map(|(ip, len)| format!("{ip}/{len}")),
            database: located.database.map(|d| DatabaseExplanation {
                network: format!("{}/{}", d.network.0, d.network.1),
                country: d.place.and_then(|p| p.country).map(|c| c.to_string()),
                continent: d.place.and_then(|p| p.continent).map(|c| c.to_string()),
                found: d.place.is_some(),
            }),
            scope: if geo_app.is_some() && lookup_client.is_some() {
                located.scope
            } else {
                0
            },
            via,
            clusters: clusters
                .iter()
                .map(|&c| inv.clusters[c].name.clone())
                .collect(),
        }
    });
    Explanation {
        name: name.to_ascii(),
        qtype: qtype.to_string(),
        outcome: outcome.to_owned(),
        records,
        app,
        client,
    }
}

fn explain_app(
    inv: &Inventory,
    health: &HealthSnapshot,
    table: &AnswerTable,
    app: usize,
    region_plan: Option<&RegionPlan>,
) -> AppExplanation {
    let spec = &inv.apps[app];
    let plan = &table.apps[app];
    let answered = region_plan.map_or(&plan.clusters, |r| &r.clusters);
    let usable: Vec<usize> = inv
        .targets_of(app)
        .filter(|&t| health.targets[t].state.is_usable())
        .collect();
    let best = usable
        .iter()
        .map(|&t| inv.clusters[inv.targets[t].cluster].priority)
        .min();
    let total_weight: u32 = usable
        .iter()
        .map(|&t| inv.clusters[inv.targets[t].cluster].weight)
        .sum();
    let clusters = inv
        .targets_of(app)
        .map(|t| {
            let ci = inv.targets[t].cluster;
            let cluster = &inv.clusters[ci];
            let th = &health.targets[t];
            let in_answer = answered.contains(&ci);
            let vips: Vec<VipExplanation> = inv
                .endpoints_of(t)
                .map(|i| (&inv.endpoints[i], &health.endpoints[i]))
                .map(|(e, h)| VipExplanation {
                    vip: e.vip.to_string(),
                    state: h.state.as_str().to_owned(),
                    // The streak belongs to this instance's own view; with [quorum] the
                    // state may be the peers' decision.
                    progress: {
                        let own = match h.own {
                            Health::Up => format!(
                                "{} of {} failures needed to go down",
                                h.streak, spec.probe.fall
                            ),
                            Health::Down => format!(
                                "{} of {} passes needed to come back",
                                h.streak, spec.probe.rise
                            ),
                            Health::Unknown => {
                                "no probe result yet: answered as up".to_owned()
                            }
                        };
                        match h.votes {
                            Some(v) => format!(
                                "{} by quorum: {} of {} fresh views say down, {} needed; own view {}: {own}",
                                h.state.as_str(),
                                v.down,
                                v.views,
                                v.needed,
                                h.own.as_str()
                            ),
                            None => own,
                        }
                    },
                    last_probe: h.last.as_ref().map(|p| {
                        format!(
                            "{} in {:.1} ms at {}: {}",
                            p.outcome.as_str(),
                            p.latency.as_secs_f64() * 1000.0,
                            crate::rfc3339::format(p.at),
                            p.detail
                        )
                    }),
                })
                .collect();
            let why = if let Some(o) = &th.overridden {
                format!(
                    "held out by a {} override set by {} ({}); probes say {}",
                    o.kind.as_str(),
                    o.set_by,
                    o.reason,
                    th.probed.as_str()
                )
            } else if plan.fail_open {
                "no cluster is healthy: failing open, every VIP is answered".to_owned()
            } else if let Some(w) = inv.targets[t].workload.as_ref().filter(|w| !w.ready) {
                format!("down: workloads not ready ({})", w.detail)
            } else if !th.state.is_usable() {
                "down: its probes fail (see the VIPs)".to_owned()
            } else {
                match spec.policy {
                    Policy::Failover if Some(cluster.priority) == best => format!(
                        "{}, in the best healthy priority tier ({})",
                        th.state.as_str(),
                        cluster.priority
                    ),
                    Policy::Failover => format!(
                        "healthy standby: priority {} is behind {}",
                        cluster.priority,
                        best.unwrap_or(0)
                    ),
                    Policy::RoundRobin => {
                        format!("{}, rotated with every healthy cluster", th.state.as_str())
                    }
                    Policy::Weighted => format!(
                        "{}, answered in {} of {} answers",
                        th.state.as_str(),
                        cluster.weight,
                        total_weight.max(1)
                    ),
                    Policy::Geo => format!(
                        "{}, region `{}`: answered to the clients its region serves (see regions)",
                        th.state.as_str(),
                        cluster.region
                    ),
                }
            };
            ClusterExplanation {
                cluster: cluster.name.clone(),
                priority: cluster.priority,
                weight: cluster.weight,
                in_answer,
                why,
                state: th.state.as_str().to_owned(),
                probed: th.probed.as_str().to_owned(),
                overridden: th.overridden.clone(),
                vips,
            }
        })
        .collect();
    AppExplanation {
        policy: spec.policy.as_str().to_owned(),
        ttl: spec.ttl,
        ttl_now: plan.ttl.seconds,
        ttl_why: plan.ttl.why(&table.inventory, app),
        adaptive_ttl_min: plan.ttl.adaptive_min,
        fail_open: plan.fail_open,
        clusters,
        regions: plan
            .regions
            .iter()
            .zip(&inv.geo.regions)
            .map(|(r, region)| RegionExplanation {
                region: region.name.clone(),
                via: r.via.describe(&inv.geo),
                clusters: r
                    .clusters
                    .iter()
                    .map(|&c| inv.clusters[c].name.clone())
                    .collect(),
            })
            .collect(),
    }
}

/// Renders an explanation as `gslb explain` prints it.
pub fn render(e: &Explanation) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{} {}: {}", e.name, e.qtype, e.outcome);
    if let Some(app) = &e.app {
        // A gslb from before adaptive TTLs sends no `ttl_now`: it serves `ttl`.
        let now = if app.ttl_now == 0 {
            app.ttl
        } else {
            app.ttl_now
        };
        let adaptive = app
            .adaptive_ttl_min
            .map(|min| format!(" (adaptive, {min}s to {}s)", app.ttl))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "app: policy {}, ttl {}s{adaptive}{}",
            app.policy,
            now,
            if app.fail_open { ", FAILING OPEN" } else { "" }
        );
        if app.adaptive_ttl_min.is_some() {
            let _ = writeln!(out, "  ttl {now}s: {}", app.ttl_why);
        }
        for r in &app.regions {
            let _ = writeln!(
                out,
                "  region {}: {} ({})",
                r.region,
                if r.clusters.is_empty() {
                    "-".to_owned()
                } else {
                    r.clusters.join(", ")
                },
                r.via
            );
        }
        for c in &app.clusters {
            let _ = writeln!(
                out,
                "  {} {} (priority {}, weight {}): {}",
                if c.in_answer { "+" } else { "-" },
                c.cluster,
                c.priority,
                c.weight,
                c.why
            );
            for v in &c.vips {
                let _ = writeln!(
                    out,
                    "      {} {}: {}; last probe: {}",
                    v.vip,
                    v.state,
                    v.progress,
                    v.last_probe.as_deref().unwrap_or("none")
                );
            }
        }
    }
    if let Some(c) = &e.client {
        let _ = writeln!(
            out,
            "client {} (looked up as {}): region {} by rule {}{}, ECS scope /{}",
            c.client,
            c.believed,
            c.region.as_deref().unwrap_or("none"),
            c.rule,
            c.matched
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            c.scope
        );
        if let Some(d) = &c.database {
            let _ = writeln!(
                out,
                "  database: {} {}",
                d.network,
                if d.found {
                    format!(
                        "country {}, continent {}",
                        d.country.as_deref().unwrap_or("none"),
                        d.continent.as_deref().unwrap_or("none")
                    )
                } else {
                    "has no record".to_owned()
                }
            );
        }
        if let Some(via) = &c.via {
            let _ = writeln!(
                out,
                "  answered with {}: {via}",
                if c.clusters.is_empty() {
                    "-".to_owned()
                } else {
                    c.clusters.join(", ")
                }
            );
        }
    }
    let _ = writeln!(out, "records now:");
    if e.records.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for r in &e.records {
        let _ = writeln!(out, "  {r}");
    }
    out
}
