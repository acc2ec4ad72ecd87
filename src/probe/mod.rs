//! Probes: one task per endpoint (one VIP of one app's cluster) that checks it every
//! interval and sends the result, as data, to health.
//!
//! A probe never runs past its timeout and never overlaps the next one (validation keeps
//! the timeout within the interval). Start times are jittered so that many targets do not
//! probe in lockstep; the first probe runs right away so health converges quickly after
//! a start.

mod http;
mod tcp;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::health::{HealthInput, Machine, Outcome, ProbeReport};
use crate::model::{Inventory, ProbeKind, ProbeSpec};

/// Least spread of the first probes after a start; a larger inventory spreads them wider
/// (see [`first_probe_spread`]).
const FIRST_PROBE_JITTER: Duration = Duration::from_millis(100);
/// How far apart, on average, first probes are spread at least.
const FIRST_PROBE_GAP: Duration = Duration::from_micros(100);

/// One endpoint's check, ready to run repeatedly.
#[derive(Debug, Clone)]
pub enum Check {
    Http(http::HttpCheck),
    Tcp(tcp::TcpCheck),
}

impl Check {
    /// Prepares the check of `vip` for a probe spec, connecting from `source` (`[server]
    /// probe_source`) when it is of the VIP's family.
    ///
    /// # Errors
    ///
    /// When an HTTPS probe's TLS settings cannot be built (the platform's root store), or
    /// its host cannot be sent as a Host header or SNI name.
    pub fn new(
        kind: &ProbeKind,
        vip: std::net::IpAddr,
        source: Option<std::net::IpAddr>,
    ) -> anyhow::Result<Self> {
        let source = source.filter(|s| s.is_ipv4() == vip.is_ipv4());
        Ok(match kind {
            ProbeKind::Http { .. } => Check::Http(http::HttpCheck::new(kind, vip, source)?),
            ProbeKind::Tcp { port } => Check::Tcp(tcp::TcpCheck::new(vip, *port, source)),
        })
    }

    /// Runs once, unbounded: the caller bounds it with the probe's timeout. The outcome
    /// and a short human description.
    async fn attempt(&self) -> (Outcome, Cow<'static, str>) {
        match self {
            Check::Http(c) => {
                let (outcome, detail) = c.run().await;
                (outcome, Cow::Owned(detail))
            }
            Check::Tcp(c) => c.run().await,
        }
    }
}

/// Starts a probe task for every endpoint of the inventory, connecting from `source`
/// when given (`[server] probe_source`). The tasks run until aborted (dropping the set
/// aborts them) or until health stops.
///
/// # Errors
///
/// When a check cannot be prepared.
pub fn spawn_all(
    inventory: &Arc<Inventory>,
    source: Option<std::net::IpAddr>,
    reports: mpsc::Sender<HealthInput>,
) -> anyhow::Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    let mut rng = rand::rng();
    // One spec per app, shared by its endpoints' tasks.
    let specs: Vec<Arc<ProbeSpec>> = inventory
        .apps
        .iter()
        .map(|a| Arc::new(a.probe.clone()))
        .collect();
    for (idx, endpoint) in inventory.endpoints.iter().enumerate() {
        let spec = &specs[inventory.targets[endpoint.target].app];
        let check = Check::new(&spec.kind, endpoint.vip, source)?;
        let spread = first_probe_spread(inventory.endpoints.len(), spec.interval);
        let jitter = rng.random_range(Duration::ZERO..=spread);
        tasks.spawn(run_endpoint(
            (inventory.generation, idx),
            check,
            spec.clone(),
            jitter,
            reports.clone(),
        ));
    }
    Ok(tasks)
}

/// Probes one endpoint until aborted: every `interval` (start to start) while results
/// agree with its state, and `recheck_interval` after the previous probe ends while they
/// do not, so that a failure is confirmed (or dismissed) in a fraction of the interval.
///
/// The state is followed with a copy of health's own rise/fall [`Machine`], fed the same
/// results; it only sets the pace, health decides.
///
/// The task lives as long as the endpoint, so what it holds between probes is kept small:
/// the spec is shared, and the probe attempt is boxed while it runs. Per probe it does as
/// little as it can, since at 10,000 endpoints it runs 10,000 times a second: one timer,
/// set once for the start and again for the timeout; no cancellation future (the set of
/// tasks is aborted to stop them); the description shared with the previous report while
/// it is the same text.
async fn run_endpoint(
    (generation, endpoint): (u64, usize),
    check: Check,
    spec: Arc<ProbeSpec>,
    jitter: Duration,
    reports: mpsc::Sender<HealthInput>,
) {
    let mut pace = Machine::new();
    let mut next = Instant::now() + jitter;
    let mut last_detail: Arc<str> = Arc::from("");
    let timer = tokio::time::sleep_until(next);
    tokio::pin!(timer);
    loop {
        let scheduled = next;
        timer.as_mut().reset(next);
        timer.as_mut().await;
        let start = Instant::now();
        timer.as_mut().reset(start + spec.timeout);
        let (outcome, detail) = tokio::select! {
            biased;
            // Boxed: an HTTP(S) exchange (connect, TLS, HTTP/1.1) is a future of a few
            // KiB, which would otherwise sit in every endpoint's task, TCP ones included,
            // between probes too; boxed, it exists only while it runs.
            r = Box::pin(check.attempt()) => r,
            () = timer.as_mut() => (
                Outcome::Timeout,
                Cow::Owned(format!(
                    "no answer within {}",
                    humantime::format_duration(spec.timeout)
                )),
            ),
        };
        let (latency, at) = (start.elapsed(), SystemTime::now());
        pace.observe(outcome == Outcome::Success, spec.rise, spec.fall);
        next = next_start(&spec, pace.streak(), scheduled, Instant::now());
        if *last_detail != *detail {
            last_detail = Arc::from(detail.as_ref());
        }
        // A slot first, then the report: the send's future does not hold a whole
        // `HealthInput` in the task.
        let Ok(slot) = reports.reserve().await else {
            return; // health has stopped: so do we
        };
        slot.send(HealthInput::Probe(ProbeReport {
            generation,
            endpoint,
            outcome,
            detail: last_detail.clone(),
            latency,
            at,
        }));
    }
}

/// How widely the first probes after a start are spread: at least [`FIRST_PROBE_JITTER`],
/// wider for large inventories so that a round is not one burst, at most `interval`.
fn first_probe_spread(endpoints: usize, interval: Duration) -> Duration {
    let wide = FIRST_PROBE_GAP.saturating_mul(u32::try_from(endpoints).unwrap_or(u32::MAX));
    wide.max(FIRST_PROBE_JITTER).min(interval)
}

/// When the next probe starts, given the one scheduled at `start` that ended at `end`:
/// `recheck_interval` after the end while `streak` results disagree with the state, else
/// `interval` after the scheduled start, so that timer lateness does not add up from
/// round to round (at once if that has passed).
fn next_start(spec: &ProbeSpec, streak: u32, start: Instant, end: Instant) -> Instant {
    if streak > 0 {
        end + spec.recheck_interval
    } else {
        (start + spec.interval).max(end)
    }
}

/// The innermost cause of an error, which is the part a human wants ("connection refused").
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProbeSpec {
        ProbeSpec {
            kind: ProbeKind::Tcp { port: 80 },
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(800),
            rise: 2,
            fall: 3,
            recheck_interval: Duration::from_millis(200),
        }
    }

    /// Feeds results to the pacing machine and returns the gaps between probe starts, for
    /// probes that each take `took`.
    fn gaps(results: &[bool], took: Duration) -> Vec<Duration> {
        let spec = spec();
        let mut pace = Machine::new();
        let mut start = Instant::now();
        results
            .iter()
            .map(|&passed| {
                pace.observe(passed, spec.rise, spec.fall);
                let next = next_start(&spec, pace.streak(), start, start + took);
                let gap = next - start;
                start = next;
                gap
            })
            .collect()
    }

    #[test]
    fn first_probes_spread_wider_for_large_inventories() {
        let second = Duration::from_secs(1);
        assert_eq!(first_probe_spread(2, second), FIRST_PROBE_JITTER);
        assert_eq!(
            first_probe_spread(5_000, second),
            Duration::from_millis(500)
        );
        assert_eq!(first_probe_spread(10_000, second), second);
        assert_eq!(first_probe_spread(100_000, second), second);
        // Never wider than the interval, even below the usual minimum spread.
        let fast = Duration::from_millis(50);
        assert_eq!(first_probe_spread(2, fast), fast);
    }

    #[test]
    fn failures_are_confirmed_at_the_recheck_pace_then_the_interval_resumes() {
        let ms = Duration::from_millis;
        // pass (up), fail, fail, fail (down at the third), then down steadily.
        assert_eq!(
            gaps(&[true, false, false, false, false], ms(10)),
            [ms(1000), ms(210), ms(210), ms(1000), ms(1000)]
        );
        // A single failure is dismissed by the next pass, and the interval resumes.
        assert_eq!(
            gaps(&[true, false, true, true], ms(10)),
            [ms(1000), ms(210), ms(1000), ms(1000)]
        );
        // Down, then passes: the rise is confirmed at the recheck pace too.
        assert_eq!(
            gaps(&[false, true, true, true], ms(10)),
            [ms(1000), ms(210), ms(1000), ms(1000)]
        );
        // Probes that time out: rechecks wait after the end, never overlap.
        assert_eq!(gaps(&[true, false], ms(800)), [ms(1000), ms(1000)]);
    }
}
