//! DNS over TCP (RFC 7766): length-prefixed queries on a capped number of connections.
//!
//! Each connection is a task that reads a query, answers it through the general path
//! ([`Handler::answer_general`], no size limit), or a zone transfer in as many messages as
//! it takes ([`Handler::answer_transfer`]), and writes the answer before reading the
//! next, so pipelined queries are answered in order. A connection closes when it sends
//! nothing for `idle_timeout`, when a query or an answer takes longer than that to cross
//! the wire, or at shutdown (after the answer in hand). At `max_connections`, a new
//! connection is closed as soon as it is accepted: the client retries elsewhere, and the
//! descriptors that probes need are never used up by idle clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::xfer::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Handler, xfr};

/// Limits of the TCP side, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts connections until `stop` is cancelled; connection tasks join `tracker`.
pub(super) async fn serve(
    listener: TcpListener,
    handler: Handler,
    limits: TcpLimits,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before accept: keep going,
                    // after a pause so that a persistent error does not spin.
                    tracing::debug!(error = %e, "accepting a DNS connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "DNS over TCP: connection cap reached, closing");
            handler.metrics.count_tcp_refused();
            drop(stream);
            continue;
        };
        let handler = handler.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            connection(stream, peer, &handler, limits.idle_timeout, &stop).await;
            drop(slot);
        });
    }
}

/// Serves one connection until the client leaves, idles out, or `stop`.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &Handler,
    idle: Duration,
    stop: &CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut query = Vec::new();
    loop {
        let len = tokio::select! {
            _ = stop.cancelled() => return,
            len = tokio::time::timeout(idle, stream.read_u16()) => match len {
                Ok(Ok(len)) => usize::from(len),
                _ => return, // idle, closed, or reset
            },
        };
        query.resize(len, 0);
        if !matches!(
            tokio::time::timeout(idle, stream.read_exact(&mut query)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let answers = if xfr::asks_transfer(&query) {
            handler.answer_transfer(&query, peer, true)
        } else {
            None
        };
        let answers = match answers {
            Some(messages) => messages,
            None => match handler.answer_general(&query, peer, Protocol::Tcp) {
                Some(answer) => vec![answer],
                None => continue, // a response or headerless packet: nothing to say
            },
        };
        for answer in answers {
            let Ok(answer_len) = u16::try_from(answer.len()) else {
                return;
            };
            let mut framed = Vec::with_capacity(answer.len() + 2);
            framed.extend_from_slice(&answer_len.to_be_bytes());
            framed.extend_from_slice(&answer);
            if !matches!(
                tokio::time::timeout(idle, stream.write_all(&framed)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
    }
}
