//! DNS over UDP: a few OS threads per socket, each receiving, answering and sending in a
//! loop, the way NSD and gdnsd serve.
//!
//! A packet costs two system calls and, for the common queries, a copy from the
//! pre-encoded index ([`super::wire`]); no task, future or message is built for it.
//! Other packets go through the hickory handler on the same thread: it never awaits
//! anything but handing back its response, so it is polled to completion in place.
//! Response rate limiting is decided here, before either path.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{Record, RecordType};
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};

use super::wire::{OUT_CAPACITY, PlainQuery};
use super::{Handler, qtype_index, rcode_index, rrl};

/// How often an idle receiving thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Largest query read; longer datagrams are cut and then fail to parse (FORMERR).
const MAX_QUERY: usize = 4096;

/// The threads serving the UDP sockets. Dropping this stops them (without waiting).
pub(super) struct UdpWorkers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Each socket's address and thread count, to wake the threads at stop.
    sockets: Vec<(SocketAddr, usize)>,
}

impl UdpWorkers {
    pub(super) fn new() -> Self {
        Self {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            sockets: Vec::new(),
        }
    }

    /// Starts `threads` receiving threads on `socket`.
    pub(super) fn serve(
        &mut self,
        socket: UdpSocket,
        threads: usize,
        handler: &Handler,
        rrl: Option<&Arc<rrl::Rrl>>,
    ) -> io::Result<()> {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(STOP_POLL))?;
        let socket = Arc::new(socket);
        let local = socket.local_addr()?;
        self.sockets.push((local, threads.max(1)));
        for i in 0..threads.max(1) {
            let worker = Worker {
                socket: socket.clone(),
                handler: handler.clone(),
                rrl: rrl.cloned(),
                stop: self.stop.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || worker.run())
                .map_err(|e| io::Error::other(format!("DNS over UDP on {local}: {e}")))?;
            self.threads.push(thread);
        }
        Ok(())
    }

    /// Stops receiving and waits for every thread to finish the packet in hand.
    pub(super) fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the threads blocked in recv with an empty datagram each, rather than
        // waiting for their read timeout. Best effort: the timeout stays the backstop.
        for (addr, threads) in &self.sockets {
            let mut to = *addr;
            if to.ip().is_unspecified() {
                to.set_ip(match to {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let from = if to.is_ipv4() {
                "127.0.0.1:0"
            } else {
                "[::1]:0"
            };
            if let Ok(waker) = UdpSocket::bind(from) {
                for _ in 0..*threads {
                    let _ = waker.send_to(&[], to);
                }
            }
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for UdpWorkers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Worker {
    socket: Arc<UdpSocket>,
    handler: Handler,
    rrl: Option<Arc<rrl::Rrl>>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(self) {
        let mut packet = vec![0u8; MAX_QUERY];
        let mut out = vec![0u8; OUT_CAPACITY];
        while !self.stop.load(Ordering::Relaxed) {
            let (len, src) = match self.socket.recv_from(&mut packet) {
                Ok(received) => received,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some systems.
                    tracing::debug!(error = %e, "receiving a DNS query over UDP");
                    continue;
                }
            };
            if src.port() == 0 || src.ip().is_unspecified() {
                continue; // nowhere to answer
            }
            if let Some(response) = self.answer(&packet[..len], src, &mut out) {
                if let Err(e) = self.socket.send_to(response, src) {
                    tracing::debug!(error = %e, %src, "failed to send a DNS response");
                }
            }
        }
    }

    /// The response to one datagram, or `None` to send nothing.
    fn answer<'o>(&self, packet: &[u8], src: SocketAddr, out: &'o mut [u8]) -> Option<&'o [u8]> {
        let plain = PlainQuery::parse(packet);
        let metrics = &self.handler.metrics;
        let verdict = self
            .rrl
            .as_ref()
            .map_or(rrl::Verdict::Send, |limiter| limiter.check(src.ip()));
        match verdict {
            rrl::Verdict::Send => {}
            rrl::Verdict::Drop => {
                metrics.count_rate_limited("drop");
                return None;
            }
            rrl::Verdict::Slip => {
                let Some(plain) = plain else {
                    metrics.count_rate_limited("drop");
                    return None;
                };
                metrics.count_rate_limited("slip");
                let len = plain.truncated(out)?;
                metrics.count_query(
                    false,
                    qtype_index(RecordType::from(plain.qtype)),
                    rcode_index(ResponseCode::NoError),
                );
                return Some(&out[..len]);
            }
        }
        if let Some(plain) = &plain {
            let table = self.handler.table.load();
            if let Some(fast) = plain.answer(&table, src.ip(), out) {
                metrics.count_query(
                    false,
                    qtype_index(RecordType::from(plain.qtype)),
                    rcode_index(fast.rcode),
                );
                if let Some((app, located)) = fast.geo {
                    self.handler.count_geo_answer(&table, app, located.region);
                }
                return Some(&out[..fast.len]);
            }
        }
        let response = self.handler.answer_general(packet, src, Protocol::Udp)?;
        let len = response.len().min(out.len());
        out[..len].copy_from_slice(&response[..len]);
        Some(&out[..len])
    }
}

impl Handler {
    /// Answers one query (a UDP datagram, or one TCP message without its length) through
    /// the hickory handler, as hickory's own server would: nothing for a packet without a
    /// header or for a response, FORMERR for one that does not parse. Over UDP the answer
    /// fits the client's buffer (TC set if records had to go).
    pub fn answer_general(
        &self,
        packet: &[u8],
        src: SocketAddr,
        protocol: Protocol,
    ) -> Option<Vec<u8>> {
        if protocol == Protocol::Udp && super::xfr::asks_transfer(packet) {
            if let Some(messages) = self.answer_transfer(packet, src, false) {
                return messages.into_iter().next();
            }
        }
        let capture = Capture {
            slot: Arc::default(),
            tcp: protocol == Protocol::Tcp,
        };
        match Request::from_bytes(packet.to_vec(), src, protocol) {
            Ok(request) => {
                if request.metadata.message_type == MessageType::Response {
                    return None;
                }
                futures::executor::block_on(
                    self.handle_request::<_, TokioTime>(&request, capture.clone()),
                );
            }
            Err(_) => {
                let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
                if header.metadata.message_type == MessageType::Response {
                    return None;
                }
                let queries = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
                let response = MessageResponseBuilder::new(&queries, None)
                    .error_msg(&header.metadata, ResponseCode::FormErr);
                let info = futures::executor::block_on(capture.clone().send_response(response));
                if let Ok(info) = info {
                    self.metrics.count_query(
                        capture.tcp,
                        super::QTYPE_OTHER,
                        rcode_index(info.response_code),
                    );
                }
            }
        }
        capture.take()
    }
}

/// A response handler that keeps the encoded response for the caller to send.
#[derive(Clone)]
struct Capture {
    slot: Arc<Mutex<Option<Vec<u8>>>>,
    /// No size limit over TCP.
    tcp: bool,
}

impl Capture {
    fn take(&self) -> Option<Vec<u8>> {
        self.slot.lock().ok()?.take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // The UDP limit hickory's own UDP server applies: the EDNS size (which the handler
        // already capped), else 512 bytes (RFC 1035 §4.2.1). Over it, records are dropped
        // and TC set.
        let max = if self.tcp {
            u16::MAX
        } else {
            response.edns().map_or(512, |e| e.max_payload())
        };
        let id = response.metadata().id;
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a DNS response; sending SERVFAIL");
                bytes.clear();
                let mut encoder = BinEncoder::new(&mut bytes);
                let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                header.emit(&mut encoder)?;
                ResponseInfo::from(header)
            }
        };
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(bytes);
        }
        Ok(info)
    }
}
