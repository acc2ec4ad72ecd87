//! Binding the DNS listeners: UDP and TCP on the same port of every configured address.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::tcp::{self, TcpLimits};
use super::udp::UdpWorkers;
use super::{Handler, rrl};

/// UDP receiving threads per socket: one per core, up to this many.
const MAX_UDP_THREADS: usize = 4;

/// A running DNS server.
pub struct DnsServer {
    /// `None` once stopped.
    udp: Option<UdpWorkers>,
    /// Stops the TCP accept loops and tells connections to close after the answer in hand.
    tcp_stop: CancellationToken,
    /// The accept loops and every TCP connection task.
    tcp_tasks: TaskTracker,
    /// The bound addresses (UDP and TCP share each), with real ports when 0 was asked.
    pub local_addrs: Vec<SocketAddr>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Stops accepting queries and waits for in-flight ones.
    ///
    /// # Errors
    ///
    /// When a UDP thread could not be joined.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let udp = self.udp.take();
        let udp = tokio::task::spawn_blocking(move || udp.map(UdpWorkers::stop));
        self.tcp_stop.cancel();
        self.tcp_tasks.close();
        self.tcp_tasks.wait().await;
        udp.await?;
        Ok(())
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.tcp_stop.cancel();
    }
}

/// Binds UDP and TCP on every address and starts serving.
///
/// Port 0 binds UDP to a free port and TCP to the same one (retrying if TCP's is taken),
/// which tests use.
///
/// # Errors
///
/// When an address cannot be bound (in use, or a privileged port without the capability).
pub async fn bind(
    addrs: &[SocketAddr],
    tcp_limits: TcpLimits,
    handler: Handler,
    rate_limit: rrl::RrlConfig,
) -> io::Result<DnsServer> {
    let rrl = rrl::Rrl::new(rate_limit).map(Arc::new);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_UDP_THREADS));
    let mut udp_workers = UdpWorkers::new();
    let tcp_stop = CancellationToken::new();
    let tcp_tasks = TaskTracker::new();
    let mut local_addrs = Vec::new();
    for &addr in addrs {
        let (udp, tcp) = bind_pair(addr).await?;
        local_addrs.push(udp.local_addr()?);
        udp_workers.serve(udp.into_std()?, threads, &handler, rrl.as_ref())?;
        tcp_tasks.spawn(tcp::serve(
            tcp,
            handler.clone(),
            tcp_limits,
            tcp_stop.clone(),
            tcp_tasks.clone(),
        ));
    }
    Ok(DnsServer {
        udp: Some(udp_workers),
        tcp_stop,
        tcp_tasks,
        local_addrs,
    })
}

async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("DNS over UDP on {addr}: {e}")))?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => {
                last = Some(io::Error::new(
                    e.kind(),
                    format!("DNS over TCP on {bound}: {e}"),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no attempt made")))
}
