//! The TCP probe: a connect to the VIP's port (from `[server] probe_source` when set),
//! closed at once.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use crate::health::Outcome;

#[derive(Debug, Clone)]
pub struct TcpCheck {
    addr: SocketAddr,
    source: Option<IpAddr>,
}

impl TcpCheck {
    pub fn new(vip: IpAddr, port: u16, source: Option<IpAddr>) -> Self {
        Self {
            addr: SocketAddr::new(vip, port),
            source,
        }
    }

    pub async fn run(&self) -> (Outcome, Cow<'static, str>) {
        match connect(self.addr, self.source).await {
            Ok(stream) => {
                // Close with a reset rather than FIN: nothing was sent, and a prober that
                // connects thousands of times a second must not leave as many TIME_WAIT
                // sockets behind (the kernel caps them, and each costs a handshake).
                let _ = stream.set_zero_linger();
                (Outcome::Success, Cow::Borrowed("connected"))
            }
            Err(e) => (Outcome::Failure, Cow::Owned(e.to_string())),
        }
    }
}

/// Connects to `addr`, from `source` when given (`[server] probe_source`); shared by the
/// TCP and HTTP probes.
pub(super) async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}
