//! NOTIFY (RFC 1996): tells a zone's secondaries of a new serial at once, so that they
//! transfer it now rather than at their next refresh. Signed with the zone's TSIG key
//! when it has one, so a secondary may require the key on NOTIFY too.
//!
//! The planner hands a [`Notice`] per changed zone to [`run`], which never blocks it: each
//! (zone, secondary) pair gets a task that sends the NOTIFY over UDP and waits for the
//! answer, retrying after 1, 2, 4 and 8 seconds, then gives up (the secondary still
//! refreshes on the SOA timer). A newer serial for the same pair replaces a task still
//! retrying an older one.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType, TSigner};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::model::TsigKey;

/// Sends per secondary and serial: the first and four retries.
const TRIES: u32 = 5;
/// Wait for an answer after the first send; doubled after each.
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// A zone's new serial, for its secondaries.
#[derive(Debug, Clone)]
pub struct Notice {
    pub zone: Name,
    /// The zone's SOA, sent in the answer section as a hint (RFC 1996 §3.7).
    pub soa: Record,
    pub secondaries: Vec<SocketAddr>,
    /// The zone's transfer key: NOTIFYs are signed with it too.
    pub tsig: Option<TsigKey>,
}

/// Sends the NOTIFYs of every notice received, until `cancel`.
pub async fn run(
    mut notices: mpsc::Receiver<Notice>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut pending: HashMap<(Name, SocketAddr), AbortHandle> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let notice = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            notice = notices.recv() => match notice {
                Some(notice) => notice,
                None => break,
            },
        };
        pending.retain(|_, task| !task.is_finished());
        for to in notice.secondaries {
            if let Some(older) = pending.remove(&(notice.zone.clone(), to)) {
                older.abort();
            }
            let task = tasks.spawn(notify(
                notice.zone.clone(),
                notice.soa.clone(),
                notice.tsig.clone(),
                to,
                metrics.clone(),
            ));
            pending.insert((notice.zone.clone(), to), task);
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// Sends one NOTIFY until it is answered or the tries run out.
async fn notify(
    zone: Name,
    soa: Record,
    tsig: Option<TsigKey>,
    to: SocketAddr,
    metrics: Arc<Metrics>,
) {
    let label = zone.to_lowercase().to_string();
    let local: SocketAddr = if to.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(zone = %label, secondary = %to, error = %e, "cannot send NOTIFY");
            metrics.count_notify(&label, "failed");
            return;
        }
    };
    let id: u16 = rand::random();
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    let mut query = Query::query(zone.clone(), RecordType::SOA);
    query.set_query_class(DNSClass::IN);
    message.add_query(query);
    message.add_answer(soa);
    if let Some(key) = tsig {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signed = TSigner::new(key.secret, key.algorithm, key.name, 300)
            .map_err(|e| e.to_string())
            .and_then(|signer| message.finalize(&signer, now).map_err(|e| e.to_string()));
        if let Err(e) = signed {
            tracing::warn!(zone = %label, error = %e, "cannot sign NOTIFY; sending it unsigned");
        }
    }
    let Ok(bytes) = message.to_vec() else {
        return;
    };
    let mut wait = FIRST_WAIT;
    let mut buf = vec![0u8; 4096];
    for attempt in 1..=TRIES {
        if let Err(e) = socket.send_to(&bytes, to).await {
            tracing::debug!(zone = %label, secondary = %to, error = %e, "sending NOTIFY");
        } else {
            metrics.count_notify(&label, "sent");
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
            let Ok(Ok((len, from))) = received else {
                break; // timed out (or an ICMP error): send again
            };
            if from != to {
                continue;
            }
            let Ok(answer) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            if answer.metadata.id == id
                && answer.metadata.message_type == MessageType::Response
                && answer.metadata.op_code == OpCode::Notify
            {
                metrics.count_notify(&label, "answered");
                tracing::debug!(zone = %label, secondary = %to, attempt, rcode = %answer.metadata.response_code, "NOTIFY answered");
                return;
            }
        }
        wait *= 2;
    }
    metrics.count_notify(&label, "failed");
    tracing::warn!(zone = %label, secondary = %to, tries = TRIES, "NOTIFY not answered; the secondary will catch up at its SOA refresh");
}
