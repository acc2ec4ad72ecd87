//! The only wiring: builds every component from a validated config, starts them in order,
//! and owns the shutdown order.
//!
//! Start: metrics → health snapshot and first answer table (every target `unknown`, so
//! every cluster is answered until probes say otherwise) → DNS and admin listeners (a
//! bind failure stops here, before anything runs) → health, answer planner, probes →
//! readiness latch once every endpoint has a first result.
//!
//! Stop: readiness drops first, then DNS stops answering, then probes and the rest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState, Mutations, Reads, Token};
use crate::answer::AnswerTable;
use crate::config::Config;
use crate::dns::{self, DnsServer};
use crate::health::{self, HealthBook, HealthSnapshot, Persist};
use crate::metrics::Metrics;
use crate::model::Inventory;
use crate::probe;
use crate::state::{Opened, StateStore};

/// Probe reports buffered between probes and health.
const REPORT_QUEUE: usize = 4096;
/// Zone changes buffered between the planner and the NOTIFY sender; when full, a
/// change goes unannounced (secondaries catch up at their SOA refresh).
const NOTICE_QUEUE: usize = 256;

/// A running gslb.
pub struct Running {
    /// Where DNS is served (UDP and TCP on each), with real ports.
    pub dns_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub table: Arc<ArcSwap<AnswerTable>>,
    shutdown_delay: Duration,
    reload_tx: mpsc::Sender<ReloadRequest>,
    dns: DnsServer,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("dns_addrs", &self.dns_addrs)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

/// Starts serving `config`.
///
/// # Errors
///
/// When a listener cannot be bound or a probe cannot be prepared; nothing is left running.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let Config {
        server,
        inventory,
        sources,
        app_clusters,
        path,
        quorum,
    } = config;
    warn_unused_database(&inventory.geo);
    let inventory = Arc::new(inventory);
    let metrics = Arc::new(Metrics::new());
    let now = SystemTime::now();

    let instance: Arc<str> = quorum
        .as_ref()
        .and_then(|q| q.instance.clone())
        .unwrap_or_else(host_name)
        .into();
    let mut book = HealthBook::new(inventory.clone(), now);
    if let Some(q) = &quorum {
        book = book.with_quorum(health::quorum::Peers::new(
            instance.to_string(),
            q.rule,
            &q.peers,
        ));
        tracing::info!(%instance, peers = q.peers.len(), required = %q.rule.required.as_text(), "deciding by quorum with the peers' views");
    }
    let state = server.state_file.as_deref().map(|path| {
        let (store, opened) = StateStore::open(path);
        let path = path.display();
        match &opened {
            Opened::Fresh => tracing::info!(%path, "no state file yet: starting from probes"),
            Opened::Loaded => tracing::info!(%path, "state file loaded: serving the last known answers"),
            Opened::Corrupt { reason, moved_to } => tracing::error!(
                %path,
                %reason,
                moved_to = %moved_to.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(could not be moved)".to_owned()),
                "state file unusable: starting from probes"
            ),
        }
        if opened == Opened::Loaded {
            let saved = store.contents();
            let restored = book.restore(|a, c, v| saved.endpoint_state(a, c, v), saved.overrides.clone(), now);
            tracing::info!(targets = restored.len(), overrides = book.snapshot().overrides.len(), "restored health and overrides");
        }
        Arc::new(store)
    });
    let token = match &server.admin_token_file {
        Some(path) => Some(Token::new(&std::fs::read_to_string(path).with_context(
            || format!("cannot read admin_token_file {}", path.display()),
        )?)),
        None => None,
    };
    let reads = match (server.admin_protect_reads, &token) {
        (false, _) => Reads::Open,
        (true, Some(token)) => Reads::Token(token.clone()),
        // Validation refuses this: never serve reads openly when asked not to.
        (true, None) => anyhow::bail!("admin_protect_reads needs admin_token_file"),
    };
    let mutations = Mutations::new(token, server.admin_listen);
    match &mutations {
        Mutations::OpenOnLoopback => {
            tracing::warn!("no admin_token_file: mutating admin calls are open to local users")
        }
        Mutations::Disabled => tracing::warn!(
            "no admin_token_file and the admin API is not on loopback: mutating calls are disabled"
        ),
        Mutations::Token(_) => {}
    }
    let first = Arc::new(book.snapshot().clone());
    for t in 0..inventory.targets.len() {
        let (app, cluster) = inventory.target_labels(t);
        metrics.init_target(&app, cluster, first.targets[t].state.is_usable());
    }
    // Serials go on from the last ones served (kept in the state file): a zone whose
    // content is the same keeps its serial, a changed one gets a higher one.
    let saved_versions = state
        .as_ref()
        .map(|s| s.contents().zones)
        .unwrap_or_default();
    let built = AnswerTable::build_versioned(&first, &saved_versions, unix_now());
    if let Some(store) = &state {
        if let Err(e) = store.save_versions(&built.versions) {
            tracing::error!(error = %e, "cannot save the zone serials to the state file");
        }
    }
    publish_serials(&built, &metrics);
    let table = Arc::new(ArcSwap::from_pointee(built));
    for (app, plan) in inventory.apps.iter().zip(&table.load().apps) {
        metrics.init_app(&app.display_name(), plan.fail_open);
    }

    let handler = dns::Handler::new(table.clone(), metrics.clone());
    let dns = dns::bind(
        &server.dns_listen,
        dns::TcpLimits {
            idle_timeout: server.tcp_idle_timeout,
            max_connections: server.tcp_max_connections,
        },
        handler,
        server.rate_limit,
    )
    .await
    .context("cannot start the DNS server")?;
    let admin_listener = admin::bind(server.admin_listen)
        .await
        .context("cannot start the admin API")?;
    let admin_addr = admin_listener.local_addr()?;

    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let (report_tx, report_rx) = mpsc::channel(REPORT_QUEUE);
    let report_tx_admin = report_tx.clone();
    let (health_tx, health_rx) = watch::channel(first);
    let persist = state.clone().map(|s| s as Arc<dyn Persist>);
    tasks.spawn(health::run(
        book,
        report_rx,
        health_tx,
        metrics.clone(),
        persist,
    ));
    let (notice_tx, notice_rx) = mpsc::channel(NOTICE_QUEUE);
    tasks.spawn(dns::notify::run(notice_rx, metrics.clone(), cancel.clone()));
    // Secondaries may have missed the last change while gslb was down: tell them the
    // current serials (one that has them already does nothing).
    send_notices(&table.load(), None, &notice_tx);
    tasks.spawn(plan_answers(
        health_rx.clone(),
        table.clone(),
        metrics.clone(),
        Publish {
            state: state.clone(),
            notices: notice_tx,
        },
    ));
    let probes = probe::spawn_all(&inventory, server.probe_source, report_tx.clone())?;
    let quorum_hub = match &quorum {
        Some(q) => {
            let token = match &q.token_file {
                Some(path) => Some(Token::new(&std::fs::read_to_string(path).with_context(
                    || format!("cannot read [quorum] token_file {}", path.display()),
                )?)),
                None => None,
            };
            let wiring = crate::quorum::Wiring {
                instance: instance.clone(),
                token,
                health: report_tx.clone(),
                snapshots: health_rx.clone(),
                metrics: metrics.clone(),
            };
            crate::quorum::spawn(q, wiring, &mut tasks, cancel.clone())?
        }
        None => None,
    };
    let (inventory_tx, inventory_rx) = mpsc::channel(16);
    let discovery_status = Arc::new(crate::discovery::DiscoveryStatus::default());
    let (base_tx, base_rx) = watch::channel(Arc::new(crate::discovery::Base {
        inventory: inventory.as_ref().clone(),
        app_clusters,
    }));
    if !sources.is_empty() {
        crate::discovery::spawn(
            &sources,
            base_rx,
            inventory_tx.clone(),
            metrics.clone(),
            discovery_status.clone(),
            &mut tasks,
            cancel.clone(),
        );
    }
    let (reload_tx, reload_rx) = mpsc::channel(4);
    tasks.spawn(reload_loop(
        path,
        reload_rx,
        ReloadTargets {
            server: server.clone(),
            sources: sources.clone(),
            quorum,
            inventories: inventory_tx,
            base: base_tx,
            metrics: metrics.clone(),
        },
    ));
    // Ready waits for discovery's first full inventory, when there are sources.
    let (discovered_tx, discovered_rx) = watch::channel(sources.is_empty());
    tasks.spawn(apply_inventories(
        inventory.clone(),
        server.probe_source,
        probes,
        inventory_rx,
        report_tx,
        discovered_tx,
        cancel.clone(),
    ));

    let ready = Arc::new(AtomicBool::new(false));
    tasks.spawn(latch_ready(
        discovered_rx,
        health_rx.clone(),
        ready.clone(),
        cancel.clone(),
    ));
    let admin_state = AdminState {
        health: health_rx,
        health_tx: report_tx_admin,
        table: table.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        mutations: Arc::new(mutations),
        reads: Arc::new(reads),
        state,
        dns_addrs: dns.local_addrs.clone(),
        discovery: discovery_status,
        reload: reload_tx.clone(),
        instance,
        quorum_hub,
    };
    let admin_cancel = cancel.clone();
    tasks.spawn(async move {
        if let Err(e) = admin::serve(admin_listener, admin_state, admin_cancel).await {
            tracing::error!(error = %e, "admin API stopped");
        }
    });

    let dns_addrs = dns.local_addrs.clone();
    for addr in &dns_addrs {
        tracing::info!(%addr, "DNS listening on udp and tcp");
    }
    tracing::info!(addr = %admin_addr, "admin API listening");
    Ok(Running {
        dns_addrs,
        admin_addr,
        ready,
        metrics,
        table,
        shutdown_delay: server.shutdown_delay,
        reload_tx,
        dns,
        cancel,
        tasks,
    })
}

/// A reload request: the reply says what changed, or why nothing did.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<String, String>>;

impl Running {
    /// Reloads the config file (as SIGHUP does).
    ///
    /// # Errors
    ///
    /// The config's problems: the running config then stays in force.
    pub async fn reload(&self) -> Result<String, String> {
        request_reload(&self.reload_tx).await
    }

    /// Stops in order: readiness, DNS, then probes, health and admin.
    ///
    /// # Errors
    ///
    /// When the DNS server reports a listener failure on the way down.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        // The reload task ends when every sender is gone; ours is the last after admin's.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.reload_tx, closed));
        self.ready.store(false, Ordering::Release);
        if !self.shutdown_delay.is_zero() {
            tracing::info!(delay = %humantime::format_duration(self.shutdown_delay), "not ready; still answering DNS for the shutdown delay");
            tokio::time::sleep(self.shutdown_delay).await;
        }
        let dns = self.dns.shutdown().await;
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        tracing::info!("stopped");
        dns
    }
}

/// Applies new inventories from discovery: health moves to it first (keeping what it
/// knows by names), then, if the probed endpoints changed, the probes are replaced.
async fn apply_inventories(
    mut current: Arc<Inventory>,
    probe_source: Option<std::net::IpAddr>,
    mut probes: JoinSet<()>,
    mut next: mpsc::Receiver<Inventory>,
    health: mpsc::Sender<health::HealthInput>,
    discovered: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    // Set when the probes of the current inventory could not be started: the next
    // inventory starts them, even with the same endpoints.
    let mut unprobed = false;
    loop {
        let mut inventory = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = probes.join_next(), if !probes.is_empty() => continue,
            n = next.recv() => match n {
                Some(n) => n,
                None => {
                    // No discovery: just keep the probes running until shutdown.
                    cancel.cancelled().await;
                    break;
                }
            },
        };
        // Probes are replaced when what they probe, or how, changed.
        let same_endpoints = !unprobed
            && inventory.endpoint_keys() == current.endpoint_keys()
            && inventory
                .apps
                .iter()
                .map(|a| &a.probe)
                .eq(current.apps.iter().map(|a| &a.probe));
        inventory.generation = current.generation + u64::from(!same_endpoints);
        inventory.keep_signers(&current);
        if inventory == *current {
            discovered.send_replace(true);
            continue;
        }
        let inventory = Arc::new(inventory);
        let (done, applied) = tokio::sync::oneshot::channel();
        let input = health::HealthInput::Reconfigure {
            inventory: inventory.clone(),
            done,
        };
        if health.send(input).await.is_err() || applied.await.is_err() {
            break;
        }
        if !same_endpoints {
            // Replacing the set drops the old one, which aborts its tasks.
            unprobed = false;
            match probe::spawn_all(&inventory, probe_source, health.clone()) {
                Ok(set) => probes = set,
                Err(e) => {
                    // The old probes' reports are of the replaced inventory: stop them.
                    probes.abort_all();
                    unprobed = true;
                    tracing::error!(error = %e, "cannot start the probes of the new inventory")
                }
            }
            tracing::info!(
                targets = inventory.targets.len(),
                endpoints = inventory.endpoints.len(),
                "inventory changed: probes replaced"
            );
        }
        current = inventory;
        discovered.send_replace(true);
    }
    probes.shutdown().await;
}

/// How often the tables of signed zones are rebuilt when nothing else changes: renewing
/// signatures well before they expire (validity is at least 3 days, renewed at half).
const RESIGN_CHECK: Duration = Duration::from_secs(3600);

/// Rebuilds the answer table on every health state change (and every change of
/// steadiness, which moves adaptive TTLs), and logs and counts what each app's answer
/// became.
async fn plan_answers(
    mut health: watch::Receiver<Arc<HealthSnapshot>>,
    table: Arc<ArcSwap<AnswerTable>>,
    metrics: Arc<Metrics>,
    publish: Publish,
) {
    let moves = |s: &HealthSnapshot| (s.version, s.steadiness);
    let mut seen = moves(&health.borrow());
    loop {
        // Signed zones are rebuilt every RESIGN_CHECK even when nothing changes, so that
        // signatures past half of their validity are renewed (the others come from the
        // signer's cache).
        let signed = (health.borrow().inventory.zones.iter()).any(|z| z.dnssec.is_some());
        let resign = if signed {
            match tokio::time::timeout(RESIGN_CHECK, health.changed()).await {
                Ok(Ok(())) => false,
                Ok(Err(_)) => break,
                Err(_) => true,
            }
        } else if health.changed().await.is_ok() {
            false
        } else {
            break;
        };
        let snapshot = health.borrow_and_update().clone();
        if !resign && moves(&snapshot) == seen {
            continue; // new probe results, same states and streaks: answers cannot have changed
        }
        seen = moves(&snapshot);
        let inventory = snapshot.inventory.clone();
        let last = table.load_full();
        // Building is CPU work that grows with the inventory (tens of ms for thousands of
        // apps): off the async workers, so probes and the admin API keep running.
        let started = tokio::time::Instant::now();
        let Ok(next) = tokio::task::spawn_blocking(move || {
            let mut next = AnswerTable::build_versioned(&snapshot, &last.versions, unix_now());
            // The IXFR journal: the last table's, plus what changed since.
            next.carry_journal(&last);
            next
        })
        .await
        else {
            tracing::error!("building the answer table failed; keeping the current one");
            continue;
        };
        let took = started.elapsed();
        let prev = table.load();
        // Match the previous plans by name: a reload may add, drop or reorder apps. Same
        // inventory (the usual case, a health change): same indexes.
        let same = Arc::ptr_eq(&prev.inventory, &inventory);
        let by_name: std::collections::HashMap<&hickory_proto::rr::Name, usize> = if same {
            std::collections::HashMap::new()
        } else {
            (prev.inventory.apps.iter().enumerate())
                .map(|(i, a)| (&a.name, i))
                .collect()
        };
        for (i, (app, after)) in inventory.apps.iter().zip(&next.apps).enumerate() {
            let index = if same {
                Some(i)
            } else {
                by_name.get(&app.name).copied()
            };
            let Some(before) = index.and_then(|i| prev.apps.get(i)) else {
                let name = app.display_name();
                metrics.init_app(&name, after.fail_open);
                continue;
            };
            if before.ttl.seconds != after.ttl.seconds {
                tracing::debug!(app = %app.display_name(), ttl = after.ttl.seconds, why = %after.ttl.why(&inventory, i), "answer ttl changed");
            }
            let (mut was, mut now) = (before.addresses(), after.addresses());
            was.sort();
            now.sort();
            if was == now && before.fail_open == after.fail_open {
                continue;
            }
            let name = app.display_name();
            if was != now {
                metrics.count_answer_change(&name);
                let answer: Vec<String> =
                    after.addresses().iter().map(ToString::to_string).collect();
                tracing::info!(app = %name, answer = %answer.join(" "), fail_open = after.fail_open, "answer changed");
            }
            if before.fail_open != after.fail_open {
                metrics.set_fail_open(&name, after.fail_open);
                if after.fail_open {
                    tracing::warn!(app = %name, "no cluster is healthy: failing open, answering every VIP");
                } else {
                    tracing::info!(app = %name, "a cluster is healthy again: fail-open ended");
                }
            }
        }
        let next = Arc::new(next);
        table.store(next.clone());
        if next.versions != prev.versions {
            publish_serials(&next, &metrics);
            send_notices(&next, Some(&prev), &publish.notices);
            if let Some(store) = publish.state.clone() {
                // After the swap: a crash in between loses at most this save, and the next
                // serial after a restart is at least the time, so it still moves up.
                let versions = next.versions.clone();
                match tokio::task::spawn_blocking(move || store.save_versions(&versions)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot save the zone serials to the state file")
                    }
                    Err(e) => tracing::error!(error = %e, "saving the zone serials failed"),
                }
            }
        }
        // While states churn (thousands of first probe results at start, a flapping
        // network), rebuild at most half of the time: wait as long as the build took
        // before looking at the next snapshot. A single change after a quiet spell is
        // applied at once.
        tokio::time::sleep(took).await;
    }
}

/// Sets the readiness latch once discovery (if any) has delivered its first inventory and
/// every endpoint has a first probe result, or the longest probe interval and timeout
/// have passed twice over since (so one unreachable target cannot hold readiness back
/// forever).
async fn latch_ready(
    mut discovered: watch::Receiver<bool>,
    mut health: watch::Receiver<Arc<HealthSnapshot>>,
    ready: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let longest = health
        .borrow()
        .inventory
        .apps
        .iter()
        .map(|a| a.probe.interval + a.probe.timeout)
        .max()
        .unwrap_or(Duration::ZERO);
    // With sources, nothing useful is served before discovery's first inventory: wait
    // for it without a time limit (an unready pod gets no traffic, which is right).
    tokio::select! {
        _ = cancel.cancelled() => return,
        r = discovered.wait_for(|d| *d) => if r.is_err() { return },
    }
    let all_probed = async {
        while !health.borrow_and_update().all_probed() {
            if health.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = all_probed => {}
        _ = tokio::time::sleep(longest * 2) => {
            tracing::warn!("not every target answered a first probe in time; ready anyway");
        }
    }
    ready.store(true, Ordering::Release);
    tracing::info!("ready");
}

/// This host's name, the default instance name in views (a pod's name in Kubernetes).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gslb".to_owned())
}

/// Where the planner publishes new zone serials besides the table.
struct Publish {
    state: Option<Arc<StateStore>>,
    notices: mpsc::Sender<dns::notify::Notice>,
}

/// The Unix time, as SOA serials count it.
fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// Sets `gslb_zone_serial` for every zone of `table`.
fn publish_serials(table: &AnswerTable, metrics: &Metrics) {
    for (zone, version) in &table.versions {
        metrics.set_zone_serial(zone, version.serial);
    }
}

/// Queues a NOTIFY for every zone of `table` with secondaries whose serial differs from
/// `prev` (every such zone without `prev`). Never waits: a full queue drops the notice.
fn send_notices(
    table: &AnswerTable,
    prev: Option<&AnswerTable>,
    notices: &mpsc::Sender<dns::notify::Notice>,
) {
    for (index, zone) in table.inventory.zones.iter().enumerate() {
        if zone.transfer.notify.is_empty() {
            continue;
        }
        let (Some(soa), Some(serial)) = (table.zone_soa(index), table.serial_of(index)) else {
            continue;
        };
        let origin = hickory_proto::rr::LowerName::new(&zone.origin).to_string();
        let before = prev.and_then(|p| p.versions.get(&origin)).map(|v| v.serial);
        if before == Some(serial) {
            continue;
        }
        tracing::info!(zone = %origin, serial, secondaries = zone.transfer.notify.len(), "notifying secondaries of the zone serial");
        let notice = dns::notify::Notice {
            zone: zone.origin.clone(),
            soa,
            secondaries: zone.transfer.notify.clone(),
            tsig: zone.transfer.tsig.clone(),
        };
        if notices.try_send(notice).is_err() {
            tracing::warn!(zone = %origin, "NOTIFY queue full; secondaries will catch up at their SOA refresh");
        }
    }
}

/// Sends a reload request and waits for its outcome.
///
/// # Errors
///
/// The config's problems, or that gslb is shutting down.
pub async fn request_reload(tx: &mpsc::Sender<ReloadRequest>) -> Result<String, String> {
    let (reply, outcome) = tokio::sync::oneshot::channel();
    tx.send(reply)
        .await
        .map_err(|_| "shutting down".to_owned())?;
    outcome.await.map_err(|_| "shutting down".to_owned())?
}

/// Where a reloaded config goes.
struct ReloadTargets {
    server: crate::config::Server,
    sources: Vec<crate::config::Source>,
    quorum: Option<crate::config::Quorum>,
    /// Without sources, the new static inventory is applied directly.
    inventories: mpsc::Sender<Inventory>,
    /// With sources, discovery merges its views with the new static config.
    base: watch::Sender<Arc<crate::discovery::Base>>,
    metrics: Arc<Metrics>,
}

/// Reloads the config file on request: a valid one replaces zones, clusters and apps
/// without dropping a query (through the same path as discovery); an invalid one is
/// rejected with its problems and the running config stays.
async fn reload_loop(
    path: Option<std::path::PathBuf>,
    mut requests: mpsc::Receiver<ReloadRequest>,
    targets: ReloadTargets,
) {
    while let Some(reply) = requests.recv().await {
        let outcome = match &path {
            None => Err("this gslb was not started from a config file".to_owned()),
            Some(path) => reload_once(path, &targets).await,
        };
        let result = if outcome.is_ok() {
            "success"
        } else {
            "failure"
        };
        targets.metrics.count_reload(result);
        tracing::info!(target: "gslb::audit", action = "config.reload", result, "config reload");
        match &outcome {
            Ok(summary) => tracing::info!(%summary, "config reloaded"),
            Err(e) => {
                tracing::error!(problems = %e, "config reload rejected; the running config stays")
            }
        }
        let _ = reply.send(outcome);
    }
}

/// Logs a warning, at start and on each reload, when a `[geo] database` is loaded that no
/// region refers to (`model::UNUSED_DATABASE`); says whether it did.
fn warn_unused_database(geo: &crate::model::Geo) -> bool {
    let unused = geo.database_unused();
    if let (true, Some(db)) = (unused, &geo.database) {
        tracing::warn!(path = %db.info().path, "{}", crate::model::UNUSED_DATABASE);
    }
    unused
}

async fn reload_once(path: &std::path::Path, targets: &ReloadTargets) -> Result<String, String> {
    // Off the runtime: a `[geo] database` is read and verified whole.
    let owned = path.to_owned();
    let config = tokio::task::spawn_blocking(move || crate::config::load(&owned))
        .await
        .map_err(|e| format!("the reload failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    if let Some(db) = &config.inventory.geo.database {
        let info = db.info();
        notes.push(format!(
            "geo database {} read ({}, built {}){}",
            info.path,
            info.database_type,
            crate::rfc3339::format(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(info.build_epoch)
            ),
            if warn_unused_database(&config.inventory.geo) {
                ", unused: no region lists countries or continents"
            } else {
                ""
            }
        ));
    }
    if config.server != targets.server {
        notes.push("[server] changes need a restart and were not applied".to_owned());
    }
    if config.sources != targets.sources {
        notes.push("[[source]] changes need a restart and were not applied".to_owned());
    }
    if config.quorum != targets.quorum {
        notes.push("[quorum] changes need a restart and were not applied".to_owned());
    }
    let summary = format!(
        "{} zones, {} clusters, {} apps{}",
        config.inventory.zones.len(),
        config.inventory.clusters.len(),
        config.inventory.apps.len(),
        if notes.is_empty() {
            String::new()
        } else {
            format!("; {}", notes.join("; "))
        }
    );
    if targets.sources.is_empty() {
        targets
            .inventories
            .send(config.inventory)
            .await
            .map_err(|_| "shutting down".to_owned())?;
    } else {
        targets.base.send_replace(Arc::new(crate::discovery::Base {
            inventory: config.inventory,
            app_clusters: config.app_clusters,
        }));
    }
    Ok(summary)
}
