//! Binding the DNS listeners: UDP and TCP on the same port of every configured address.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

use std::sync::Arc;

use super::udp::UdpWorkers;
use super::{Handler, rrl};

/// Pending TCP responses buffered per connection.
const TCP_RESPONSE_BUFFER: usize = 32;
/// UDP receiving threads per socket: one per core, up to this many.
const MAX_UDP_THREADS: usize = 4;

/// A running DNS server.
pub struct DnsServer {
    /// TCP, through hickory-server.
    server: Server<Handler>,
    udp: UdpWorkers,
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
    /// When a listener task failed while running.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let udp = self.udp;
        let udp = tokio::task::spawn_blocking(move || udp.stop());
        self.server.shutdown_gracefully().await?;
        udp.await?;
        Ok(())
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
    tcp_idle_timeout: Duration,
    handler: Handler,
    rate_limit: rrl::RrlConfig,
) -> io::Result<DnsServer> {
    let rrl = rrl::Rrl::new(rate_limit).map(Arc::new);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_UDP_THREADS));
    let mut udp_workers = UdpWorkers::new();
    let mut server = Server::new(handler.clone());
    let mut local_addrs = Vec::new();
    for &addr in addrs {
        let (udp, tcp) = bind_pair(addr).await?;
        local_addrs.push(udp.local_addr()?);
        udp_workers.serve(udp.into_std()?, threads, &handler, rrl.as_ref())?;
        server.register_listener(tcp, tcp_idle_timeout, TCP_RESPONSE_BUFFER);
    }
    Ok(DnsServer {
        server,
        udp: udp_workers,
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
