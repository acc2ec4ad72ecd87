//! The admin-API transport of multi-vantage quorum (`[quorum] peers`): one task per peer
//! that reads the peer's view
//! from its admin API (`GET /api/v1/view`, with the `[quorum] token_file` token) every
//! `poll_interval`, and hands each outcome to health as [`HealthInput::PeerView`].
//!
//! Polling rather than a long poll: a view is small, a read is one request on a kept-alive
//! connection, every instance already serves the admin API, and a poll needs no state on
//! the serving side; a peer's change reaches us at most one `poll_interval` (plus the
//! request's time) later, which `bench/quorum_failover.sh` measures. Health is never
//! blocked: each task only waits for its own request, bounded by half of `fresh_within`,
//! and then for room on the health channel.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::Token;
use crate::config::Quorum;
use crate::health::HealthInput;
use crate::health::quorum::{PeerRef, Via, View};

/// Largest view body read from a peer.
const MAX_VIEW: usize = 16 * 1024 * 1024;

/// Starts one polling task per peer of `quorum` on `tasks`.
///
/// # Errors
///
/// When the HTTP client cannot be built.
pub fn spawn(
    quorum: &Quorum,
    token: Option<Token>,
    health: mpsc::Sender<HealthInput>,
    tasks: &mut JoinSet<()>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let timeout = (quorum.rule.fresh_within / 2).max(Duration::from_millis(50));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("gslb-quorum/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let token = token.map(Arc::new);
    for base in &quorum.peers {
        tasks.spawn(poll_peer(
            PeerRef {
                url: base.as_str().into(),
                via: Via::Admin,
            },
            format!("{base}/api/v1/view"),
            client.clone(),
            token.clone(),
            quorum.poll_interval,
            health.clone(),
            cancel.clone(),
        ));
    }
    Ok(())
}

/// Reads one peer's view every `interval` until cancelled or health stops.
async fn poll_peer(
    peer: PeerRef,
    url: String,
    client: reqwest::Client,
    token: Option<Arc<Token>>,
    interval: Duration,
    health: mpsc::Sender<HealthInput>,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let view = tokio::select! {
            _ = cancel.cancelled() => return,
            v = read_view(&client, &url, token.as_deref()) => v,
        };
        match (&view, &last_error) {
            (Err(e), None) => {
                tracing::warn!(peer = %url, error = %e, "cannot read the peer's view")
            }
            (Ok(_), Some(_)) => tracing::info!(peer = %url, "reading the peer's view again"),
            _ => {}
        }
        last_error = view.as_ref().err().cloned();
        let input = HealthInput::PeerView {
            peer: peer.clone(),
            view,
            at: SystemTime::now(),
        };
        if health.send(input).await.is_err() {
            return; // health has stopped
        }
    }
}

async fn read_view(
    client: &reqwest::Client,
    url: &str,
    token: Option<&Token>,
) -> Result<View, String> {
    let mut request = client.get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t.expose());
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| crate::probe::root_cause(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| crate::probe::root_cause(&e))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_VIEW {
            return Err(format!("view larger than {MAX_VIEW} bytes"));
        }
    }
    serde_json::from_slice(&body).map_err(|e| format!("not a view: {e}"))
}
