//! The per-target families (`gslb_target_up`, `gslb_health_transitions_total`,
//! `gslb_probes_total`, `gslb_probe_duration_seconds`), held compactly and encoded
//! straight to text.
//!
//! They are most of what gslb exports: at 10,000 targets, 70,000 series. Held as
//! `prometheus` vec children, each series carried its own copy of its family's descriptor
//! (name, help, label names) and of its label values, several KiB per target; and each
//! scrape gathered every series into protobuf structs before encoding them, tens of MB
//! that the allocator kept. Here a target's series are one [`TargetCells`] of atomics with
//! its two label values, shared by every family, and a scrape writes their lines directly,
//! in the order and format of the `prometheus` text encoder, a chunk at a time (see
//! [`super::Scrape`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{HEALTH_TRANSITIONS, PROBE_DURATION, PROBE_RESULTS, PROBES, TARGET_UP};

/// Upper bounds of `gslb_probe_duration_seconds` (seconds); `+Inf` follows.
pub const PROBE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The `to` labels of `gslb_health_transitions_total`, in label-value order. `down` and
/// `up` exist from a target's start; `unknown` (an override lifted from a target with no
/// probe result yet) from its first count, as a vec child would.
pub const TRANSITION_TO: [&str; 3] = ["down", "unknown", "up"];
/// The index of `unknown` in [`TRANSITION_TO`].
const TO_UNKNOWN: usize = 1;

/// One family of this store: its name, help and type, as the text format writes them.
pub(super) struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: &'static str,
    which: Which,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Up,
    Transitions,
    Probes,
    Duration,
}

/// The families of this store, in name order (the order of the text exposition).
pub(super) const FAMILIES: [Family; 4] = [
    Family {
        name: HEALTH_TRANSITIONS,
        help: "Health state changes of a target, by new state.",
        kind: "counter",
        which: Which::Transitions,
    },
    Family {
        name: PROBE_DURATION,
        help: "Time taken by a probe, whatever its result.",
        kind: "histogram",
        which: Which::Duration,
    },
    Family {
        name: PROBES,
        help: "Probes run, by result: success, failure or timeout.",
        kind: "counter",
        which: Which::Probes,
    },
    Family {
        name: TARGET_UP,
        help: "1 while the target (app, cluster) is answered as up, 0 while it is down.",
        kind: "gauge",
        which: Which::Up,
    },
];

/// Every series of one (app, cluster) target. Created on first use and kept for the
/// process's life, like a `prometheus` vec child: a target that leaves the inventory keeps
/// its last values, and one that comes back continues its counters.
pub struct TargetCells {
    app: Arc<str>,
    cluster: Arc<str>,
    up: AtomicI64,
    /// By [`TRANSITION_TO`].
    transitions: [AtomicU64; 3],
    /// By [`PROBE_RESULTS`].
    probes: [AtomicU64; 3],
    /// The duration histogram of each probe kind the target was probed with (one, unless
    /// a reload changed the app's probe kind), sorted by kind.
    durations: Mutex<Vec<(&'static str, Arc<DurationCells>)>>,
}

/// One `gslb_probe_duration_seconds` series.
pub struct DurationCells {
    /// Per bucket of [`PROBE_BUCKETS`] then `+Inf`, not cumulative.
    buckets: [AtomicU64; PROBE_BUCKETS.len() + 1],
    /// The sum of observations, as `f64` bits.
    sum: AtomicU64,
}

impl DurationCells {
    fn new() -> Self {
        Self {
            buckets: Default::default(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation, in seconds.
    pub fn observe(&self, v: f64) {
        let bucket = PROBE_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(PROBE_BUCKETS.len());
        // The sum first, then the count: a scrape between them sees a sum one observation
        // ahead of the count rather than behind it. Only health's task observes, so the
        // loop runs once.
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((f64::from_bits(s) + v).to_bits())
            });
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

impl TargetCells {
    pub fn set_up(&self, up: bool) {
        self.up.store(i64::from(up), Ordering::Relaxed);
    }

    /// Counts a transition to `to` (`up` or `down`).
    pub fn count_transition(&self, to: &str) {
        if let Some(i) = TRANSITION_TO.iter().position(|t| *t == to) {
            self.transitions[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a probe result, an index into [`PROBE_RESULTS`].
    pub fn count_probe(&self, result: usize) {
        self.probes[result.min(PROBE_RESULTS.len() - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// The duration series of probes of `kind`, created at its first use.
    pub fn duration(&self, kind: &'static str) -> Arc<DurationCells> {
        let mut durations = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        match durations.binary_search_by(|(k, _)| (*k).cmp(kind)) {
            Ok(i) => durations[i].1.clone(),
            Err(i) => {
                let d = Arc::new(DurationCells::new());
                durations.insert(i, (kind, d.clone()));
                d
            }
        }
    }
}

/// A target's label values: app, cluster.
type TargetLabels = (Arc<str>, Arc<str>);

/// Every target's series, by (app, cluster).
#[derive(Default)]
pub struct TargetSeries {
    by_labels: Mutex<HashMap<TargetLabels, Arc<TargetCells>>>,
}

impl TargetSeries {
    /// The series of target (`app`, `cluster`), created (at zero, up gauge 0) if new.
    pub fn get(&self, app: &str, cluster: &str) -> Arc<TargetCells> {
        let key: TargetLabels = (app.into(), cluster.into());
        let mut map = self.by_labels.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.clone())
            .or_insert_with(|| {
                Arc::new(TargetCells {
                    app: key.0,
                    cluster: key.1,
                    up: AtomicI64::new(0),
                    transitions: Default::default(),
                    probes: Default::default(),
                    durations: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// Every target's series, sorted by (app, cluster) as the text format orders them.
    pub(super) fn sorted(&self) -> Vec<Arc<TargetCells>> {
        let map = self.by_labels.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = map.values().cloned().collect();
        drop(map);
        all.sort_unstable_by(|a, b| (&a.app, &a.cluster).cmp(&(&b.app, &b.cluster)));
        all
    }
}

/// Appends the `# HELP` and `# TYPE` lines of `family`.
pub(super) fn write_header(out: &mut String, family: &Family) {
    let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
    let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
}

/// Whether target `t` has series in `family` (one never probed has no duration series).
pub(super) fn has_series(family: &Family, t: &TargetCells) -> bool {
    match family.which {
        Which::Duration => !t
            .durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty(),
        _ => true,
    }
}

/// Appends the samples of one target in `family` (none if it has no series there).
pub(super) fn write_target(out: &mut String, family: &Family, t: &TargetCells) {
    let labels = |out: &mut String| {
        out.push_str("{app=\"");
        push_escaped(out, &t.app);
        out.push_str("\",cluster=\"");
        push_escaped(out, &t.cluster);
        out.push('"');
    };
    match family.which {
        Which::Up => {
            out.push_str(family.name);
            labels(out);
            out.push_str("} ");
            push_value(out, t.up.load(Ordering::Relaxed) as f64);
        }
        Which::Transitions | Which::Probes => {
            // In label-value order: `down` < `unknown` < `up`; `failure` < `success` <
            // `timeout`.
            let (label, names, cells, order): (&str, &[&str], &[AtomicU64], &[usize]) =
                match family.which {
                    Which::Transitions => ("to", &TRANSITION_TO, &t.transitions, &[0, 1, 2]),
                    _ => ("result", &PROBE_RESULTS, &t.probes, &[1, 0, 2]),
                };
            for &i in order {
                if family.which == Which::Transitions
                    && i == TO_UNKNOWN
                    && cells[i].load(Ordering::Relaxed) == 0
                {
                    continue; // never counted, so never created
                }
                out.push_str(family.name);
                labels(out);
                let _ = write!(out, ",{label}=\"{}\"}} ", names[i]);
                push_value(out, cells[i].load(Ordering::Relaxed) as f64);
            }
        }
        Which::Duration => {
            let durations = t.durations.lock().unwrap_or_else(|e| e.into_inner());
            for (kind, d) in durations.iter() {
                let sum = f64::from_bits(d.sum.load(Ordering::Relaxed));
                let mut cumulative = 0u64;
                for (i, count) in d.buckets.iter().enumerate() {
                    cumulative += count.load(Ordering::Relaxed);
                    out.push_str(family.name);
                    out.push_str("_bucket");
                    labels(out);
                    out.push_str(",kind=\"");
                    push_escaped(out, kind);
                    out.push_str("\",le=\"");
                    match PROBE_BUCKETS.get(i) {
                        Some(b) => {
                            let _ = write!(out, "{b}");
                        }
                        None => out.push_str("+Inf"),
                    }
                    out.push_str("\"} ");
                    push_value(out, cumulative as f64);
                }
                for (suffix, value) in [("_sum", sum), ("_count", cumulative as f64)] {
                    out.push_str(family.name);
                    out.push_str(suffix);
                    labels(out);
                    out.push_str(",kind=\"");
                    push_escaped(out, kind);
                    out.push_str("\"} ");
                    push_value(out, value);
                }
            }
        }
    }
}

/// A sample value and the line's end, as the `prometheus` text encoder writes them (`f64`
/// `Display`: `3`, `0.25`).
fn push_value(out: &mut String, v: f64) {
    let _ = writeln!(out, "{v}");
}

/// A label value, escaped for the text format: `\`, newline and `"`.
fn push_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}
