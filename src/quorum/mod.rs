//! The transports of multi-vantage quorum: how views travel between gslb instances.
//!
//! - `admin.rs` (`[quorum] peers`): one task per peer polls its admin API
//!   (`GET /api/v1/view`);
//! - `hub.rs` (`[quorum] hub`): each instance writes its own view to a ConfigMap on the
//!   hub's Kubernetes API and watches everybody's.
//!
//! Both hand every view (or why it could not be had) to health as
//! [`crate::health::HealthInput::PeerView`], received by this instance's clock; health
//! (`health::quorum`) judges freshness and decides. Neither ever blocks health.

mod admin;
pub mod hub;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::Token;
use crate::config::Quorum;
use crate::health::{HealthInput, HealthSnapshot};
use crate::metrics::Metrics;

/// What a transport needs from the rest of gslb.
pub struct Wiring {
    /// This instance's name in its view.
    pub instance: Arc<str>,
    /// The peers' admin token (`[quorum] token_file`), for `peers`.
    pub token: Option<Token>,
    /// Views received go there.
    pub health: mpsc::Sender<HealthInput>,
    /// This instance's health, whose own states make its view (written to the hub).
    pub snapshots: watch::Receiver<Arc<HealthSnapshot>>,
    pub metrics: Arc<Metrics>,
}

/// Starts the transport `quorum` names on `tasks`; for the hub, returns the state of its
/// writer and watch, for the status API.
///
/// # Errors
///
/// When the HTTP client cannot be built, or with `hub`, when the instance name makes no
/// object name.
pub fn spawn(
    quorum: &Quorum,
    wiring: Wiring,
    tasks: &mut JoinSet<()>,
    cancel: CancellationToken,
) -> anyhow::Result<Option<Arc<hub::HubStatus>>> {
    match &quorum.hub {
        Some(h) => hub::spawn(h, quorum.rule.fresh_within, wiring, tasks, cancel).map(Some),
        None => {
            admin::spawn(quorum, wiring.token, wiring.health, tasks, cancel)?;
            Ok(None)
        }
    }
}
