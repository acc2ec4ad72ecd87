//! The per-target families are written by gslb itself ([`super::targets`]); these tests
//! hold their text to what the `prometheus` crate writes for the same series held as vec
//! children, as they were before: same families, labels, order, values and format.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::targets::{FAMILIES, PROBE_BUCKETS};
use super::*;

/// The four per-target families as `prometheus` vecs, registered as gslb registered them.
struct Reference {
    registry: Registry,
    up: IntGaugeVec,
    transitions: IntCounterVec,
    probes: IntCounterVec,
    duration: HistogramVec,
}

impl Reference {
    fn new() -> Self {
        let help = |name: &str| FAMILIES.iter().find(|f| f.name == name).unwrap().help;
        let up =
            IntGaugeVec::new(Opts::new(TARGET_UP, help(TARGET_UP)), &["app", "cluster"]).unwrap();
        let duration = HistogramVec::new(
            HistogramOpts::new(PROBE_DURATION, help(PROBE_DURATION))
                .buckets(PROBE_BUCKETS.to_vec()),
            &["app", "cluster", "kind"],
        )
        .unwrap();
        let probes = IntCounterVec::new(
            Opts::new(PROBES, help(PROBES)),
            &["app", "cluster", "result"],
        )
        .unwrap();
        let transitions = IntCounterVec::new(
            Opts::new(HEALTH_TRANSITIONS, help(HEALTH_TRANSITIONS)),
            &["app", "cluster", "to"],
        )
        .unwrap();
        let registry = Registry::new();
        registry.register(Box::new(up.clone())).unwrap();
        registry.register(Box::new(duration.clone())).unwrap();
        registry.register(Box::new(probes.clone())).unwrap();
        registry.register(Box::new(transitions.clone())).unwrap();
        Self {
            registry,
            up,
            transitions,
            probes,
            duration,
        }
    }

    fn init_target(&self, app: &str, cluster: &str, up: bool) {
        self.up
            .with_label_values(&[app, cluster])
            .set(i64::from(up));
        for to in ["up", "down"] {
            self.transitions.with_label_values(&[app, cluster, to]);
        }
        for result in PROBE_RESULTS {
            self.probes.with_label_values(&[app, cluster, result]);
        }
    }

    fn observe(&self, app: &str, cluster: &str, kind: &str, result: usize, latency: Duration) {
        self.duration
            .with_label_values(&[app, cluster, kind])
            .observe(latency.as_secs_f64());
        self.probes
            .with_label_values(&[app, cluster, PROBE_RESULTS[result]])
            .inc();
    }

    fn transition(&self, app: &str, cluster: &str, to: &str, up: bool) {
        self.up
            .with_label_values(&[app, cluster])
            .set(i64::from(up));
        self.transitions
            .with_label_values(&[app, cluster, to])
            .inc();
    }

    fn text(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }
}

/// The lines of `text` that belong to the per-target families.
fn target_lines(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            FAMILIES.iter().any(|f| {
                name.strip_prefix(f.name)
                    .is_some_and(|rest| rest.starts_with([' ', '{', '_']))
            })
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Targets whose labels sort in a different order than they are created, one with two
/// probe kinds (an app whose probe kind changed on reload), label values that need
/// escaping, and latencies on, between and beyond the bucket bounds.
#[test]
fn per_target_families_match_the_prometheus_encoder() {
    let metrics = Metrics::new();
    let reference = Reference::new();
    let targets = [
        ("shop.example.", "gz-02", true),
        ("shop.example.", "gz-01", false),
        ("api.example.", "sh\"1\\x\ny", true),
        ("api.example.", "gz-01", true),
        ("a.example.", "z", false),
    ];
    for (app, cluster, up) in targets {
        metrics.init_target(app, cluster, up);
        reference.init_target(app, cluster, up);
    }
    let latencies = [
        0.0, 0.0005, 0.001, 0.0011, 0.0025, 0.007, 0.1, 0.3, 0.999, 1.0, 2.5, 4.0, 10.0, 12.5,
    ];
    for (i, (app, cluster, _)) in targets.iter().enumerate().take(4) {
        let kinds: &[&'static str] = if i == 1 { &["tcp", "http"] } else { &["https"] };
        for kind in kinds {
            let series = metrics.probe_series(app, cluster, kind);
            for (j, l) in latencies.iter().enumerate().skip(i) {
                let latency = Duration::from_secs_f64(*l);
                let result = (i + j) % 3;
                series.observe(result, latency);
                reference.observe(app, cluster, kind, result, latency);
            }
        }
    }
    for (app, cluster, to, up) in [
        ("shop.example.", "gz-01", "up", true),
        ("shop.example.", "gz-01", "down", false),
        ("shop.example.", "gz-01", "up", true),
        ("api.example.", "sh\"1\\x\ny", "down", false),
        // An override lifted from a target with no probe result yet.
        ("a.example.", "z", "unknown", true),
    ] {
        metrics.record_transition(app, cluster, to, up);
        reference.transition(app, cluster, to, up);
    }
    metrics.set_target_up("a.example.", "z", true);
    reference.up.with_label_values(&["a.example.", "z"]).set(1);

    let expected = reference.text();
    let text = metrics.render();
    assert_eq!(target_lines(&text), expected);
    // Sanity of the comparison itself: every family is there, escapes included.
    for f in FAMILIES {
        assert!(expected.contains(&format!("# TYPE {} {}\n", f.name, f.kind)));
    }
    assert!(expected.contains(r#"cluster="sh\"1\\x\ny""#), "{expected}");
    assert!(expected.contains(r#"le="+Inf"} "#));
    assert!(expected.contains(r#"{app="a.example.",cluster="z",to="unknown"} 1"#));
    assert!(!expected.contains(r#"{app="api.example.",cluster="gz-01",to="unknown"}"#));
}

/// The families of a scrape come in name order, each once, the others' (the registry's)
/// interleaved with the per-target ones as a registry would gather them.
#[test]
fn families_come_in_name_order() {
    let metrics = Metrics::new();
    metrics.init_target("tke-demo.cn", "gz-01", true);
    metrics.init_app("tke-demo.cn", false);
    metrics
        .probe_series("tke-demo.cn", "gz-01", "tcp")
        .observe(0, Duration::from_millis(3));
    let text = metrics.render();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted);
    for family in [
        TARGET_UP,
        PROBES,
        PROBE_DURATION,
        HEALTH_TRANSITIONS,
        APP_FAIL_OPEN,
        BUILD_INFO,
    ] {
        assert!(names.contains(&family), "{family} missing: {names:?}");
    }
}

/// A scrape of many targets comes in several chunks of whole lines, which together are
/// the whole text.
#[test]
fn a_large_scrape_comes_in_chunks_of_whole_lines() {
    let metrics = Metrics::new();
    for t in 0..2_000 {
        let (app, cluster) = (format!("a{}.scale.test", t / 2), format!("c{t}"));
        metrics.init_target(&app, &cluster, true);
        metrics
            .probe_series(&app, &cluster, "tcp")
            .observe(0, Duration::from_micros(300));
    }
    let chunks: Vec<String> = metrics.scrape().collect();
    assert!(chunks.len() > 10, "{} chunks", chunks.len());
    for c in &chunks {
        assert!(c.ends_with('\n'));
        assert!(c.len() < 2 * SCRAPE_CHUNK);
    }
    let whole = chunks.concat();
    assert_eq!(whole, metrics.render());
    assert_eq!(
        whole
            .lines()
            .filter(|l| l.starts_with("gslb_target_up{"))
            .count(),
        2_000
    );
}

/// A family with no series is left out, as a registry leaves out an empty vec: no probe
/// duration before the first probe.
#[test]
fn no_duration_family_before_a_probe() {
    let metrics = Metrics::new();
    assert!(!metrics.render().contains(TARGET_UP));
    metrics.init_target("tke-demo.cn", "gz-01", true);
    let text = metrics.render();
    assert!(text.contains("# TYPE gslb_target_up gauge\n"), "{text}");
    assert!(!text.contains(PROBE_DURATION), "{text}");
}
