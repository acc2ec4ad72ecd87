//! `gslb demo`: the whole product on one machine, no cluster needed.
//!
//! It serves the embedded `config/demo.toml` and starts a stand-in ingress for each of
//! its clusters (a real HTTP server on the cluster's VIP, 127.0.1.x). A small control
//! listener lets a second terminal stop, start or break a stand-in, to watch the answer
//! fail over and come back. [`StandIn`] is also the stand-in ingress of the tests.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::config::{self, Config};
use crate::model::ProbeKind;

/// The embedded demo config.
pub const CONFIG: &str = include_str!("../config/demo.toml");
/// Where the demo's control listener binds.
pub const CONTROL_LISTEN: &str = "127.0.0.1:19154";

/// The demo config, validated.
///
/// # Errors
///
/// Never for the shipped file (a test checks it); the error type is the config's.
pub fn config() -> Result<Config, config::ConfigError> {
    config::parse(CONFIG, "<embedded demo config>")
}

/// A stand-in ingress: a real HTTP server on one address that can be stopped (connection
/// refused), started again, or told to answer another status code.
#[derive(Debug)]
pub struct StandIn {
    pub addr: SocketAddr,
    name: String,
    status: Arc<AtomicU16>,
    /// When above 0, every n-th request is answered 503 (a flapping backend).
    fail_every: Arc<std::sync::atomic::AtomicU64>,
    /// Connections from these addresses are reset as soon as they are accepted: the
    /// ingress is unreachable from there only (one prober's network trouble).
    refused: Arc<std::sync::RwLock<std::collections::HashSet<IpAddr>>>,
    task: Option<JoinHandle<()>>,
}

/// A listener that resets, at once, connections from the refused addresses.
struct Refusing {
    inner: TcpListener,
    refused: Arc<std::sync::RwLock<std::collections::HashSet<IpAddr>>>,
}

impl axum::serve::Listener for Refusing {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.inner.accept().await else {
                // Out of descriptors or the like: try again shortly.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let refused = self
                .refused
                .read()
                .map(|r| r.contains(&peer.ip()))
                .unwrap_or(false);
            if refused {
                let _ = stream.set_zero_linger();
                continue; // dropped: the client sees a reset
            }
            return (stream, peer);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl StandIn {
    /// Binds and starts serving `200` with a body naming `name`.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn start(name: &str, addr: SocketAddr) -> std::io::Result<Self> {
        let mut s = Self {
            addr,
            name: name.to_owned(),
            status: Arc::new(AtomicU16::new(200)),
            fail_every: Arc::default(),
            refused: Arc::default(),
            task: None,
        };
        s.resume().await?;
        Ok(s)
    }

    /// Whether it is accepting connections.
    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Closes the listener: new connections are refused, as when an ingress dies.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same address.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound again.
    pub async fn resume(&mut self) -> std::io::Result<()> {
        if self.task.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        self.addr = listener.local_addr()?;
        let status = self.status.clone();
        let fail_every = self.fail_every.clone();
        let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let name = self.name.clone();
        // The body names the cluster and echoes the Host header, so a probe's
        // `body_contains` can check which name it asked for.
        let app = Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let n = requests.fetch_add(1, Ordering::Relaxed) + 1;
            let every = fail_every.load(Ordering::Relaxed);
            let code = if every > 0 && n % every == 0 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::from_u16(status.load(Ordering::Relaxed)).unwrap_or(StatusCode::OK)
            };
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = format!("stand-in ingress of {name}, host={host}\n");
            async move { (code, body) }
        });
        let listener = Refusing {
            inner: listener,
            refused: self.refused.clone(),
        };
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        Ok(())
    }

    /// Answers every request with `code` from now on (e.g. 503 for a broken backend).
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::Relaxed);
    }

    /// Resets every connection from `client` from now on (`refuse`), or serves it again:
    /// the ingress is unreachable from that address only.
    pub fn refuse_from(&self, client: IpAddr, refuse: bool) {
        if let Ok(mut r) = self.refused.write() {
            if refuse {
                r.insert(client);
            } else {
                r.remove(&client);
            }
        }
    }

    /// Answers every `n`-th request with 503 from now on (0: none), a backend that flaps.
    pub fn set_fail_every(&self, n: u64) {
        self.fail_every.store(n, Ordering::Relaxed);
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop();
    }
}

type StandIns = Arc<Mutex<BTreeMap<String, StandIn>>>;

/// Runs the demo until `shutdown` resolves.
///
/// # Errors
///
/// When a stand-in, the control listener or gslb itself cannot start.
pub async fn run(shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let mut config = config().map_err(|e| anyhow::anyhow!("{e}"))?;
    // Keep overrides and drills across demo runs, so `gslb drill list` has something to show.
    config.server.state_file = Some(std::env::temp_dir().join("gslb-demo-state.json"));
    let inv = &config.inventory;
    let mut stand_ins = BTreeMap::new();
    for cluster in &inv.clusters {
        let port = inv
            .apps
            .iter()
            .find(|a| {
                a.clusters
                    .iter()
                    .any(|&c| inv.clusters[c].name == cluster.name)
            })
            .map(|a| match a.probe.kind {
                ProbeKind::Http { port, .. } | ProbeKind::Tcp { port } => port,
            })
            .unwrap_or(18080);
        for &vip in &cluster.vips {
            let addr = SocketAddr::new(vip, port);
            let s = StandIn::start(&cluster.name, addr).await.with_context(|| {
                format!(
                    "cannot start the stand-in ingress of {} on {addr}",
                    cluster.name
                )
            })?;
            stand_ins.insert(cluster.name.clone(), s);
        }
    }
    let listed: Vec<(String, SocketAddr)> =
        stand_ins.iter().map(|(n, s)| (n.clone(), s.addr)).collect();
    let stand_ins: StandIns = Arc::new(Mutex::new(stand_ins));
    let control = TcpListener::bind(CONTROL_LISTEN)
        .await
        .with_context(|| format!("cannot start the demo control listener on {CONTROL_LISTEN}"))?;
    let control_task = tokio::spawn(serve_control(control, stand_ins.clone()));

    let running = crate::app::start(config).await?;
    print_guide(&running, &listed);
    shutdown.await;
    control_task.abort();
    running.shutdown().await
}

fn print_guide(running: &crate::app::Running, stand_ins: &[(String, SocketAddr)]) {
    let dns = running.dns_addrs[0];
    let (ip, port) = (dns.ip(), dns.port());
    let at = match ip {
        IpAddr::V6(v6) => format!("@{v6}"),
        IpAddr::V4(v4) => format!("@{v4}"),
    };
    println!("gslb demo: authoritative DNS for tke-demo.cn on {dns} (UDP and TCP)");
    for (name, addr) in stand_ins {
        println!("  stand-in ingress of {name:<14} http://{addr}/");
    }
    println!();
    println!("Ask it (the answer is the healthy cluster with the lowest priority):");
    println!("  dig {at} -p {port} tke-demo.cn A +short");
    println!("  dig {at} -p {port} tke-demo.cn SOA");
    println!("  dig {at} -p {port} nothing.tke-demo.cn A      # NXDOMAIN, SOA in authority");
    println!("  dig {at} -p {port} example.com A              # REFUSED: not an open resolver");
    println!("  gslb status --admin http://{}", running.admin_addr);
    println!(
        "  curl -s http://{}/metrics | grep ^gslb_",
        running.admin_addr
    );
    println!();
    println!("Fail over, from a second terminal:");
    println!(
        "  curl -X POST http://{CONTROL_LISTEN}/ingress/guangzhou-01/stop    # refuse connections"
    );
    println!(
        "  watch -n 0.5 dig {at} -p {port} tke-demo.cn A +short              # 127.0.1.2 within ~3 s"
    );
    println!(
        "  curl -X POST http://{CONTROL_LISTEN}/ingress/guangzhou-01/start   # back to 127.0.1.1"
    );
    println!(
        "  curl -X POST 'http://{CONTROL_LISTEN}/ingress/guangzhou-01/status?code=503'  # up but broken"
    );
    println!();
    println!("Stop with Ctrl-C.");
}

#[derive(Deserialize)]
struct StatusQuery {
    code: u16,
}

async fn serve_control(listener: TcpListener, stand_ins: StandIns) {
    let app = Router::new()
        .route("/ingress", get(list))
        .route("/ingress/{cluster}/stop", post(stop))
        .route("/ingress/{cluster}/start", post(start))
        .route("/ingress/{cluster}/status", post(set_status))
        .with_state(stand_ins);
    let _ = axum::serve(listener, app).await;
}

async fn list(State(s): State<StandIns>) -> String {
    let s = s.lock().await;
    s.iter()
        .map(|(n, i)| {
            format!(
                "{n} {} {}\n",
                i.addr,
                if i.is_running() { "running" } else { "stopped" }
            )
        })
        .collect()
}

async fn stop(State(s): State<StandIns>, Path(cluster): Path<String>) -> (StatusCode, String) {
    match s.lock().await.get_mut(&cluster) {
        Some(i) => {
            i.stop();
            (
                StatusCode::OK,
                format!("stand-in ingress of {cluster} stopped\n"),
            )
        }
        None => (
            StatusCode::NOT_FOUND,
            format!("no stand-in ingress named {cluster}\n"),
        ),
    }
}

async fn start(State(s): State<StandIns>, Path(cluster): Path<String>) -> (StatusCode, String) {
    match s.lock().await.get_mut(&cluster) {
        Some(i) => match i.resume().await {
            Ok(()) => {
                i.set_status(200);
                (
                    StatusCode::OK,
                    format!("stand-in ingress of {cluster} started\n"),
                )
            }
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot start: {e}\n"),
            ),
        },
        None => (
            StatusCode::NOT_FOUND,
            format!("no stand-in ingress named {cluster}\n"),
        ),
    }
}

async fn set_status(
    State(s): State<StandIns>,
    Path(cluster): Path<String>,
    Query(q): Query<StatusQuery>,
) -> (StatusCode, String) {
    if !(100..=599).contains(&q.code) {
        return (StatusCode::BAD_REQUEST, "code must be 100-599\n".to_owned());
    }
    match s.lock().await.get(&cluster) {
        Some(i) => {
            i.set_status(q.code);
            (
                StatusCode::OK,
                format!("stand-in ingress of {cluster} now answers {}\n", q.code),
            )
        }
        None => (
            StatusCode::NOT_FOUND,
            format!("no stand-in ingress named {cluster}\n"),
        ),
    }
}
