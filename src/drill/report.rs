//! A drill's timeline: what was done when, and what clients saw. Plain data, kept in the
//! state file and printed by `gslb drill run` and `gslb drill list`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One drill, start to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    pub cluster: String,
    /// The apps watched (every app of the cluster unless one was named).
    pub apps: Vec<String>,
    /// Whether the switch happened within the expected time and the cluster came back.
    pub passed: bool,
    /// Why it failed, when it did.
    #[serde(default)]
    pub problem: Option<String>,
    /// The cluster's VIPs: the addresses that must leave the answers.
    pub vips: Vec<String>,
    /// Answers before the fault, per app.
    pub before: Vec<AppAnswer>,
    /// Answers while the cluster was out, per app.
    pub during: Vec<AppAnswer>,
    #[serde(with = "crate::rfc3339")]
    pub injected_at: SystemTime,
    /// When gslb's own answers stopped holding the cluster's VIPs.
    #[serde(default, with = "crate::rfc3339::option")]
    pub gslb_switched_at: Option<SystemTime>,
    /// The same through the recursive resolver, if one was given.
    #[serde(default)]
    pub resolver: Option<String>,
    #[serde(default, with = "crate::rfc3339::option")]
    pub resolver_switched_at: Option<SystemTime>,
    #[serde(default, with = "crate::rfc3339::option")]
    pub restored_at: Option<SystemTime>,
    /// When the cluster's VIPs were answered again (if they were before).
    #[serde(default, with = "crate::rfc3339::option")]
    pub returned_at: Option<SystemTime>,
    #[serde(default, with = "crate::rfc3339::option")]
    pub resolver_returned_at: Option<SystemTime>,
}

/// The addresses one app answered at some moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppAnswer {
    pub app: String,
    pub addresses: Vec<String>,
}

impl DrillRecord {
    /// Seconds between two optional times, for the timeline.
    fn between(a: SystemTime, b: Option<SystemTime>) -> Option<f64> {
        b.and_then(|b| b.duration_since(a).ok())
            .map(|d| d.as_secs_f64())
    }

    /// Fault to gslb's answer switching, in seconds.
    pub fn gslb_switch_seconds(&self) -> Option<f64> {
        Self::between(self.injected_at, self.gslb_switched_at)
    }

    /// Fault to the resolver's answer switching, in seconds.
    pub fn resolver_switch_seconds(&self) -> Option<f64> {
        Self::between(self.injected_at, self.resolver_switched_at)
    }

    /// The timeline as text, one event a line.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let t = crate::rfc3339::format;
        let since = |b: Option<SystemTime>| {
            Self::between(self.injected_at, b)
                .map_or_else(|| "-".to_owned(), |s| format!("+{s:.3}s"))
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "drill of cluster {} ({}): {}",
            self.cluster,
            self.apps.join(", "),
            if self.passed { "PASSED" } else { "FAILED" }
        );
        if let Some(p) = &self.problem {
            let _ = writeln!(out, "  problem: {p}");
        }
        let _ = writeln!(out, "  VIPs taken out: {}", self.vips.join(" "));
        for (b, d) in self.before.iter().zip(&self.during) {
            let _ = writeln!(
                out,
                "  {}: before [{}] -> during [{}]",
                b.app,
                b.addresses.join(" "),
                d.addresses.join(" ")
            );
        }
        let row = |out: &mut String, what: &str, at: Option<SystemTime>| {
            let _ = writeln!(
                out,
                "  {what:<28} {:<26} {}",
                at.map_or_else(|| "-".to_owned(), t),
                since(at)
            );
        };
        row(&mut out, "injected (fail override)", Some(self.injected_at));
        row(&mut out, "gslb answer switched", self.gslb_switched_at);
        if let Some(r) = &self.resolver {
            row(
                &mut out,
                &format!("resolver {r} switched"),
                self.resolver_switched_at,
            );
        }
        row(&mut out, "restored (override lifted)", self.restored_at);
        row(&mut out, "gslb answer returned", self.returned_at);
        if let Some(r) = &self.resolver {
            row(
                &mut out,
                &format!("resolver {r} returned"),
                self.resolver_returned_at,
            );
        }
        out
    }
}
