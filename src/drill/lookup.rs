//! A minimal DNS client for drills: the addresses a name resolves to, as a client of gslb
//! (or of a recursive resolver) sees them right now.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// How long to wait for one answer.
const TIMEOUT: Duration = Duration::from_secs(1);

/// The A and AAAA addresses `name` has at `server`, sorted.
///
/// # Errors
///
/// No answer in time, or an error rcode (NXDOMAIN, SERVFAIL, REFUSED...).
pub async fn addresses(server: SocketAddr, name: &Name) -> anyhow::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for qtype in [RecordType::A, RecordType::AAAA] {
        let response = query(server, name, qtype).await?;
        out.extend(response.answers.iter().filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        }));
    }
    out.sort();
    Ok(out)
}

async fn query(server: SocketAddr, name: &Name, qtype: RecordType) -> anyhow::Result<Message> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    let id: u16 = rand::random();
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name.clone(), qtype));
    socket.send(&msg.to_vec()?).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .with_context(|| format!("no answer from {server} within {TIMEOUT:?}"))??;
        let Ok(response) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if response.metadata.id != id {
            continue; // a late answer to an earlier query
        }
        if response.metadata.response_code != ResponseCode::NoError {
            bail!(
                "{server} answered {} for {name} {qtype}",
                response.metadata.response_code
            );
        }
        return Ok(response);
    }
}
