//! Operator overrides: the hand on the switch. Pure data and rules, no I/O.
//!
//! An override takes a whole cluster, or one app in a cluster, out of answers. `drain` is
//! planned maintenance; `fail` is a drill that treats the target exactly as if its probes
//! had failed. Both win over probes and go through the same health path, so answers, logs
//! and metrics treat them alike. Overrides are keyed by names, not indexes, so they keep
//! their meaning across restarts and config changes.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What an override is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverrideKind {
    /// Planned maintenance.
    Drain,
    /// A drill: as if probes failed.
    Fail,
}

impl OverrideKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::Drain => "drain",
            OverrideKind::Fail => "fail",
        }
    }
}

/// One override, as set through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub cluster: String,
    /// `None`: every app of the cluster.
    pub app: Option<String>,
    pub kind: OverrideKind,
    pub reason: String,
    /// Who or what set it (a user, `gslb drill`).
    pub set_by: String,
    #[serde(with = "crate::rfc3339")]
    pub set_at: SystemTime,
    /// When it lifts itself; `None`: only when cleared.
    #[serde(default, with = "crate::rfc3339::option")]
    pub expires_at: Option<SystemTime>,
}

impl Override {
    /// Whether it covers the target (`app`, `cluster`).
    pub fn covers(&self, app: &str, cluster: &str) -> bool {
        self.cluster == cluster && self.app.as_deref().is_none_or(|a| a == app)
    }

    /// Whether it occupies the same slot as `other` (same cluster and app scope): a new
    /// override replaces the one in its slot.
    pub fn same_slot(&self, cluster: &str, app: Option<&str>) -> bool {
        self.cluster == cluster && self.app.as_deref() == app
    }

    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// Why an override request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("unknown cluster `{0}`")]
    UnknownCluster(String),
    #[error("unknown app `{0}`")]
    UnknownApp(String),
    #[error("app `{app}` is not served by cluster `{cluster}`")]
    NotInApp { app: String, cluster: String },
    #[error(
        "refused: this would leave {} with no healthy cluster; use --force to do it anyway",
        .0.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
    )]
    WouldEmpty(Vec<String>),
    #[error("no override for cluster `{cluster}`{}", .app.as_ref().map(|a| format!(" and app `{a}`")).unwrap_or_default())]
    NotFound {
        cluster: String,
        app: Option<String>,
    },
    #[error("the override was not saved to the state file, so it was not applied: {0}")]
    NotPersisted(String),
}
