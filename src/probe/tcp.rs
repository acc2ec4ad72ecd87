//! The TCP probe: a connect to the VIP's port, closed at once.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use crate::health::Outcome;

#[derive(Debug, Clone)]
pub struct TcpCheck {
    addr: SocketAddr,
}

impl TcpCheck {
    pub fn new(vip: IpAddr, port: u16) -> Self {
        Self {
            addr: SocketAddr::new(vip, port),
        }
    }

    pub async fn run(&self) -> (Outcome, String) {
        match TcpStream::connect(self.addr).await {
            Ok(stream) => {
                // Close with a reset rather than FIN: nothing was sent, and a prober that
                // connects thousands of times a second must not leave as many TIME_WAIT
                // sockets behind (the kernel caps them, and each costs a handshake).
                let _ = stream.set_zero_linger();
                (Outcome::Success, "connected".to_owned())
            }
            Err(e) => (Outcome::Failure, e.to_string()),
        }
    }
}
