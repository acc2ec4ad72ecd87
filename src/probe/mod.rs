//! Probes: one task per endpoint (one VIP of one app's cluster) that checks it every
//! interval and sends the result, as data, to health.
//!
//! A probe never runs past its timeout and never overlaps the next one (validation keeps
//! the timeout within the interval). Start times are jittered so that many targets do not
//! probe in lockstep; the first probe runs right away so health converges quickly after
//! a start.

mod http;
mod tcp;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::health::{HealthInput, Outcome, ProbeReport};
use crate::model::{Inventory, ProbeKind};

/// Most start-up jitter before the first probe.
const FIRST_PROBE_JITTER: Duration = Duration::from_millis(100);

/// One endpoint's check, ready to run repeatedly.
#[derive(Debug, Clone)]
pub enum Check {
    Http(http::HttpCheck),
    Tcp(tcp::TcpCheck),
}

impl Check {
    /// Prepares the check of `vip` for a probe spec.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built (a TLS backend failure).
    pub fn new(kind: &ProbeKind, vip: std::net::IpAddr, timeout: Duration) -> anyhow::Result<Self> {
        Ok(match kind {
            ProbeKind::Http { .. } => Check::Http(http::HttpCheck::new(kind, vip, timeout)?),
            ProbeKind::Tcp { port } => Check::Tcp(tcp::TcpCheck::new(vip, *port)),
        })
    }

    /// Runs once, bounded by `timeout`: the outcome and a short human description.
    pub async fn run(&self, timeout: Duration) -> (Outcome, String) {
        let attempt = async {
            match self {
                Check::Http(c) => c.run().await,
                Check::Tcp(c) => c.run().await,
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => (
                Outcome::Timeout,
                format!("no answer within {}", humantime::format_duration(timeout)),
            ),
        }
    }
}

/// Starts a probe task for every endpoint of the inventory.
///
/// # Errors
///
/// When a check cannot be prepared.
pub fn spawn_all(
    inventory: &Arc<Inventory>,
    reports: mpsc::Sender<HealthInput>,
    cancel: CancellationToken,
) -> anyhow::Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    for (idx, endpoint) in inventory.endpoints.iter().enumerate() {
        let spec = inventory.apps[inventory.targets[endpoint.target].app]
            .probe
            .clone();
        let check = Check::new(&spec.kind, endpoint.vip, spec.timeout)?;
        let jitter =
            rand::rng().random_range(Duration::ZERO..=FIRST_PROBE_JITTER.min(spec.interval));
        tasks.spawn(run_endpoint(
            (inventory.generation, idx),
            check,
            spec.interval,
            spec.timeout,
            jitter,
            reports.clone(),
            cancel.clone(),
        ));
    }
    Ok(tasks)
}

async fn run_endpoint(
    (generation, endpoint): (u64, usize),
    check: Check,
    interval: Duration,
    timeout: Duration,
    jitter: Duration,
    reports: mpsc::Sender<HealthInput>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + jitter, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let start = Instant::now();
        let (outcome, detail) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = check.run(timeout) => r,
        };
        let report = ProbeReport {
            generation,
            endpoint,
            outcome,
            detail,
            latency: start.elapsed(),
            at: SystemTime::now(),
        };
        if reports.send(HealthInput::Probe(report)).await.is_err() {
            return; // health has stopped: so do we
        }
    }
}

/// The innermost cause of an error, which is the part a human wants ("connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
