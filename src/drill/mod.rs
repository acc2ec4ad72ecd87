//! The client side of failover drills: take a cluster out on purpose through the admin
//! API, watch the answer change as a client sees it (gslb itself, and a recursive
//! resolver if given), put the cluster back, and report the timeline.
//!
//! Whatever happens (success, timeout, error, Ctrl-C) the drill lifts its override before
//! returning; the override also carries an expiry as a second safety net, so even a drill
//! process that is killed outright cannot leave a cluster out for good.

pub mod fault;
pub mod lookup;
pub mod report;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use hickory_proto::rr::Name;

use crate::admin::client::AdminClient;
use report::{AppAnswer, DrillRecord};

/// How often the answer is polled.
pub const POLL: Duration = Duration::from_millis(50);

/// What a drill does.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub cluster: String,
    /// Watch only this app (default: every app of the cluster).
    pub app: Option<String>,
    /// How long the cluster stays out once the switch is seen.
    pub hold: Duration,
    /// A recursive resolver to watch too.
    pub resolver: Option<SocketAddr>,
    /// The drill fails if the answer has not switched within this long.
    pub expect_within: Duration,
    /// Go ahead even if an app would be left with no healthy cluster.
    pub force: bool,
    /// How the cluster is taken out.
    pub method: fault::Method,
    /// Query gslb's DNS here rather than where its status says it listens (for a drill
    /// run from outside the pod or host).
    pub dns: Option<SocketAddr>,
}

/// Runs a drill; `progress` receives one line whenever something happens or every second
/// while waiting; `interrupt` (Ctrl-C) ends it early, override lifted.
///
/// # Errors
///
/// When the drill cannot start (gslb unreachable, unknown cluster, guard rail). A drill
/// that ran but did not pass returns `Ok` with `passed: false`.
pub async fn run(
    client: &AdminClient,
    opts: &DrillOptions,
    interrupt: impl Future<Output = ()>,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<DrillRecord> {
    let status = client.status().await?;
    let mut vips = BTreeSet::new();
    let mut apps = BTreeSet::new();
    for t in status.targets.iter().filter(|t| t.cluster == opts.cluster) {
        if opts.app.as_deref().is_none_or(|a| a == t.app) {
            apps.insert(t.app.clone());
            vips.extend(t.vips.iter().filter_map(|v| v.vip.parse::<IpAddr>().ok()));
        }
    }
    // A drill must not replace (and then clear) an operator's override on the cluster.
    let uses_override = matches!(opts.method, fault::Method::Override);
    if let Some(o) = status.overrides.iter().filter(|_| uses_override).find(|o| {
        o.cluster == opts.cluster && (o.app.is_none() || opts.app.is_none() || o.app == opts.app)
    }) {
        bail!(
            "cluster `{}` already has a {} override{} set by {} ({}): clear it first, or drill another cluster",
            o.cluster,
            o.kind.as_str(),
            o.app
                .as_ref()
                .map(|a| format!(" for `{a}`"))
                .unwrap_or_default(),
            o.set_by,
            o.reason
        );
    }
    if apps.is_empty() {
        bail!(
            "cluster `{}` serves no app{} on this gslb",
            opts.cluster,
            opts.app
                .as_ref()
                .map(|a| format!(" named `{a}`"))
                .unwrap_or_default()
        );
    }
    let dns = match opts.dns {
        Some(d) => d,
        None => status
            .dns
            .first()
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(reachable)
            .context("the status does not say where gslb serves DNS: pass --dns")?,
    };
    let names: Vec<(String, Name)> = apps
        .iter()
        .map(|a| Ok((a.clone(), Name::from_ascii(format!("{a}."))?)))
        .collect::<anyhow::Result<_>>()?;
    let before = answers(dns, &names).await?;
    let expected_back = before.iter().any(|a| holds(a, &vips));

    let safety = opts.hold + opts.expect_within * 3 + Duration::from_secs(60);
    let req = fault::override_request(
        &opts.cluster,
        opts.app.as_deref(),
        opts.force,
        humantime::format_duration(safety).to_string(),
        format!("gslb drill ({})", whoami()),
    );
    let (fault, injected) = fault::Fault::inject(&opts.method, client, req).await?;
    let mut record = DrillRecord {
        cluster: opts.cluster.clone(),
        apps: apps.into_iter().collect(),
        passed: false,
        problem: None,
        vips: vips.iter().map(ToString::to_string).collect(),
        before: before.clone(),
        during: Vec::new(),
        injected_at: SystemTime::now(),
        gslb_switched_at: None,
        resolver: opts.resolver.map(|r| r.to_string()),
        resolver_switched_at: None,
        restored_at: None,
        returned_at: None,
        resolver_returned_at: None,
    };
    progress(&injected);

    let watched = Watched {
        dns,
        resolver: opts.resolver,
        names,
        vips,
    };
    let steps = observe(
        client,
        &fault,
        opts,
        &watched,
        expected_back,
        &mut record,
        &mut progress,
    );
    let outcome = tokio::select! {
        r = steps => r,
        _ = interrupt => Err(anyhow::anyhow!("interrupted")),
    };
    if record.restored_at.is_none() {
        // Always undo what we did, whatever ended the drill.
        let restored = fault.restore(client).await;
        record.restored_at = Some(SystemTime::now());
        match restored {
            Ok(line) => progress(&line),
            Err(e) => progress(&format!(
                "could not undo the fault: {}; an override expires by itself, a scale needs `gslb drill undo`",
                crate::redact::error_text(&e)
            )),
        }
    }
    if let Err(e) = outcome {
        // Kept in the state file and listed: no quote from a kubeconfig or plugin.
        record.problem = Some(crate::redact::error_text(&e));
    }
    record.passed = record.problem.is_none();
    if let Err(e) = client.record_drill(&record).await {
        progress(&format!("could not record the drill on the server: {e:#}"));
    }
    Ok(record)
}

/// Waits for the switch, holds, lifts the override, and waits for the return.
async fn observe(
    client: &AdminClient,
    fault: &fault::Fault,
    opts: &DrillOptions,
    w: &Watched,
    expected_back: bool,
    record: &mut DrillRecord,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<()> {
    let out = |a: &[AppAnswer]| !a.iter().any(|x| holds(x, &w.vips));
    let switched = watch(w, opts.expect_within, &out, "the switch", progress).await;
    record.gslb_switched_at = switched.gslb;
    record.resolver_switched_at = switched.resolver;
    record.during = switched.last.clone().unwrap_or_default();
    if let Some(s) = record.gslb_switch_seconds() {
        progress(&format!(
            "gslb switched after {s:.3}s: {}",
            describe(&record.during)
        ));
    }
    if let Some(s) = record.resolver_switch_seconds() {
        progress(&format!("resolver switched after {s:.3}s"));
    }
    if let Some(p) = switched.problem {
        bail!(p);
    }
    if !opts.hold.is_zero() {
        progress(&format!(
            "holding for {}",
            humantime::format_duration(opts.hold)
        ));
        tokio::time::sleep(opts.hold).await;
    }
    let line = fault.restore(client).await?;
    record.restored_at = Some(SystemTime::now());
    progress(&line);
    if !expected_back {
        progress("the cluster was not in the answer before the drill: nothing to wait for");
        return Ok(());
    }
    let back = |a: &[AppAnswer]| a.iter().any(|x| holds(x, &w.vips));
    let returned = watch(w, opts.expect_within, &back, "the return", progress).await;
    record.returned_at = returned.gslb;
    record.resolver_returned_at = returned.resolver;
    if let (Some(r), Some(at)) = (record.restored_at, record.returned_at) {
        let s = at.duration_since(r).unwrap_or_default().as_secs_f64();
        progress(&format!("gslb answers the cluster again after {s:.3}s"));
    }
    match returned.problem {
        Some(p) => bail!(p),
        None => Ok(()),
    }
}

/// What a drill watches: the apps' names at gslb (and a resolver), for the cluster's VIPs.
struct Watched {
    dns: SocketAddr,
    resolver: Option<SocketAddr>,
    names: Vec<(String, Name)>,
    vips: BTreeSet<IpAddr>,
}

/// When gslb's and the resolver's answers first met a condition.
struct Seen {
    gslb: Option<SystemTime>,
    resolver: Option<SystemTime>,
    /// gslb's answers when it met the condition (or the last seen).
    last: Option<Vec<AppAnswer>>,
    problem: Option<String>,
}

/// Polls gslb (and the resolver) every [`POLL`] until both meet `done`, or `limit` passes.
async fn watch(
    w: &Watched,
    limit: Duration,
    done: &impl Fn(&[AppAnswer]) -> bool,
    what: &str,
    progress: &mut impl FnMut(&str),
) -> Seen {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_note = tokio::time::Instant::now();
    let mut seen = Seen {
        gslb: None,
        resolver: None,
        last: None,
        problem: None,
    };
    loop {
        let now = answers(w.dns, &w.names).await;
        if seen.gslb.is_none() {
            if let Ok(a) = &now {
                seen.last = Some(a.clone());
                if done(a) {
                    seen.gslb = Some(SystemTime::now());
                }
            }
        }
        if let Some(r) = w.resolver.filter(|_| seen.resolver.is_none()) {
            if answers(r, &w.names).await.is_ok_and(|a| done(&a)) {
                seen.resolver = Some(SystemTime::now());
            }
        }
        if seen.gslb.is_some() && (w.resolver.is_none() || seen.resolver.is_some()) {
            return seen;
        }
        if tokio::time::Instant::now() > deadline {
            let who = if seen.gslb.is_none() {
                "gslb"
            } else {
                "the resolver"
            };
            seen.problem = Some(format!(
                "{who} did not show {what} within {}",
                humantime::format_duration(limit)
            ));
            return seen;
        }
        if last_note.elapsed() >= Duration::from_secs(1) {
            last_note = tokio::time::Instant::now();
            let shown = now
                .as_ref()
                .map_or_else(|e| format!("{e:#}"), |a| describe(a));
            progress(&format!("waiting for {what}: gslb answers {shown}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Each app's addresses now.
async fn answers(server: SocketAddr, names: &[(String, Name)]) -> anyhow::Result<Vec<AppAnswer>> {
    let mut out = Vec::with_capacity(names.len());
    for (app, name) in names {
        let addrs = lookup::addresses(server, name).await?;
        out.push(AppAnswer {
            app: app.clone(),
            addresses: addrs.iter().map(ToString::to_string).collect(),
        });
    }
    Ok(out)
}

fn holds(answer: &AppAnswer, vips: &BTreeSet<IpAddr>) -> bool {
    answer
        .addresses
        .iter()
        .any(|a| a.parse::<IpAddr>().is_ok_and(|ip| vips.contains(&ip)))
}

fn describe(answers: &[AppAnswer]) -> String {
    answers
        .iter()
        .map(|a| format!("{} [{}]", a.app, a.addresses.join(" ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A wildcard listen address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
