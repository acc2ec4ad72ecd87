//! Outgoing zone transfers: AXFR (RFC 5936) and IXFR (RFC 1995) of the current answer
//! table, to the clients a zone's `allow_transfer` names, signed with TSIG (RFC 8945)
//! when the zone has a key.
//!
//! A transfer sends the zone's SOA, every record set (an app's answer as one set holding
//! every address it currently serves, as a secondary serves it to everyone) and the SOA
//! again, in as many messages as it takes. IXFR: a client at the current serial gets the
//! SOA alone; one behind gets the changes since its serial from the table's journal
//! (`answer/journal.rs`), or, when the journal does not reach back that far, the whole
//! zone in the AXFR form that RFC 1995 §4 allows. Over UDP, AXFR is refused and IXFR
//! gets the SOA alone (RFC 1995 §2: "use TCP"). Everything is computed from the table in hand: no lock, no I/O.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::tsig::{TSIG, TsigError, make_tsig_record};
use hickory_proto::rr::{LowerName, RData, Record, RecordType, TSigResponseContext, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::Handler;
use crate::answer::AnswerTable;
use crate::model::{TsigKey, Zone};

/// Bytes of records per transfer message; well under the 64 KiB a message may hold, so
/// that a secondary starts storing records early and a message is never too long.
const MESSAGE_BUDGET: usize = 16_000;
/// Clock skew accepted in TSIG-signed requests (RFC 8945 §10 recommends 300 s).
const TSIG_FUDGE: u16 = 300;

/// A transfer request, checked.
enum Verdict {
    /// An error response (REFUSED, NOTAUTH, FORMERR), possibly with an unsigned TSIG.
    Error(Vec<u8>),
    /// Serve the transfer; responses are signed when `signer` is set.
    Serve {
        zone: usize,
        signer: Option<(TSigner, Vec<u8>)>,
    },
}

impl Handler {
    /// Answers an AXFR or IXFR request: the response messages, in order, or `None` when
    /// `packet` is no transfer request (the general path answers it then).
    pub fn answer_transfer(
        &self,
        packet: &[u8],
        peer: SocketAddr,
        tcp: bool,
    ) -> Option<Vec<Vec<u8>>> {
        let request = Message::from_vec(packet).ok()?;
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            return None;
        }
        let [query] = request.queries.as_slice() else {
            return None;
        };
        let kind = match query.query_type() {
            RecordType::AXFR => "axfr",
            RecordType::IXFR => "ixfr",
            _ => return None,
        };
        let table = self.table.load();
        let name = LowerName::new(query.name());
        let zone = table.zone_index(&name);
        let label = zone.map_or_else(|| "other".to_owned(), |_| name.to_string());
        let now = unix_now();
        let (zone, signer) = match check(&table, &request, zone, packet, peer, tcp, now) {
            Verdict::Error(bytes) => {
                let result = if bytes.get(3).is_some_and(|b| b & 0x0f == 9) {
                    "notauth"
                } else {
                    "refused"
                };
                self.metrics.count_transfer(&label, kind, result);
                let rcode = bytes
                    .get(3)
                    .map_or(ResponseCode::ServFail, |b| ResponseCode::from(0, b & 0x0f));
                self.metrics
                    .count_query(tcp, super::QTYPE_OTHER, super::rcode_index(rcode));
                return Some(vec![bytes]);
            }
            Verdict::Serve { zone, signer } => (zone, signer),
        };
        let serial = table.serial_of(zone)?;
        let soa = table.zone_soa(zone)?;
        // IXFR: the client's serial is the SOA in the authority section.
        let client = request.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) if query.query_type() == RecordType::IXFR => Some(soa.serial),
            _ => None,
        });
        let current = client.is_some_and(|c| !serial_lt(c, serial));
        let (result, sections): (&str, Vec<Vec<Record>>) = if current {
            ("current", vec![vec![soa]])
        } else if kind == "ixfr" && !tcp {
            // Over UDP, a client that is behind gets the SOA alone: "come over TCP".
            ("full", vec![vec![soa]])
        } else if let Some(chain) = client.and_then(|c| table.changes_since(zone, c)) {
            // RFC 1995 §4: the current SOA, then per change the old SOA, what went, the
            // new SOA, what came, and the current SOA again.
            let mut all = vec![soa.clone()];
            for delta in chain {
                all.push(delta.old_soa.clone());
                all.extend(delta.removed.iter().cloned());
                all.push(delta.new_soa.clone());
                all.extend(delta.added.iter().cloned());
            }
            all.push(soa);
            ("incremental", split(all))
        } else {
            let copy = table.zone_copy(zone)?;
            let mut all = Vec::with_capacity(copy.records.len() + 2);
            all.push(copy.soa.clone());
            all.extend(copy.records);
            all.push(copy.soa);
            ("full", split(all))
        };
        let edns = request.edns.as_ref().map(|_| {
            let mut e = Edns::new();
            e.set_max_payload(super::MAX_UDP_PAYLOAD);
            e
        });
        let mut messages = Vec::with_capacity(sections.len());
        let mut previous_mac: Option<Vec<u8>> = None;
        for (i, answers) in sections.into_iter().enumerate() {
            let mut message =
                Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
            message.metadata.authoritative = true;
            message.metadata.recursion_desired = request.metadata.recursion_desired;
            if i == 0 {
                message.add_query(query.clone());
            }
            message.insert_answers(answers);
            if let Some(e) = &edns {
                message.set_edns(e.clone());
            }
            let bytes = match &signer {
                None => message.to_vec().ok()?,
                Some((signer, request_mac)) => {
                    let (bytes, mac) = sign(
                        &mut message,
                        signer,
                        request_mac,
                        previous_mac.as_deref(),
                        now,
                    )?;
                    previous_mac = Some(mac);
                    bytes
                }
            };
            messages.push(bytes);
        }
        self.metrics.count_transfer(&label, kind, result);
        self.metrics.count_query(tcp, super::QTYPE_OTHER, 0);
        if result != "current" && tcp {
            tracing::info!(zone = %label, kind, %peer, serial, from = ?client, result, messages = messages.len(), tsig = signer.is_some(), "zone transferred");
        } else {
            tracing::debug!(zone = %label, kind, %peer, serial, from = ?client, tcp, "zone transfer: SOA only");
        }
        Some(messages)
    }
}

/// Who may transfer what: the zone, the transport, the address, then TSIG.
fn check(
    table: &AnswerTable,
    request: &Message,
    zone: Option<usize>,
    packet: &[u8],
    peer: SocketAddr,
    tcp: bool,
    now: u64,
) -> Verdict {
    let refused = |why: &str| {
        tracing::debug!(%peer, zone = %request.queries[0].name(), why, "zone transfer refused");
        Verdict::Error(error(request, ResponseCode::Refused, None))
    };
    let Some(zone) = zone else {
        return refused("not the apex of a zone served here");
    };
    let Some(spec): Option<&Zone> = table.inventory.zones.get(zone) else {
        return refused("zone unknown to the inventory");
    };
    if !tcp && request.queries[0].query_type() == RecordType::AXFR {
        return refused("AXFR over UDP");
    }
    if !spec.transfer.allows(peer.ip()) {
        return refused("address not in allow_transfer");
    }
    match (&spec.transfer.tsig, request.signature()) {
        (None, None) => Verdict::Serve { zone, signer: None },
        (None, Some(sig)) => {
            tracing::debug!(%peer, key = %sig.name, "zone transfer refused: TSIG key unknown (none configured)");
            let context =
                TSigResponseContext::unknown_key(request.metadata.id, now, sig.name.clone());
            Verdict::Error(error(request, ResponseCode::NotAuth, Some(context)))
        }
        (Some(_), None) => {
            tracing::debug!(%peer, "zone transfer refused: TSIG required, none given");
            Verdict::Error(error(request, ResponseCode::NotAuth, None))
        }
        (Some(key), Some(sig)) => verify(request, packet, key, sig, peer, now, zone),
    }
}

/// Checks the request's TSIG against the zone's key (RFC 8945 §5.2).
fn verify(
    request: &Message,
    packet: &[u8],
    key: &TsigKey,
    sig: &hickory_proto::rr::Record<TSIG>,
    peer: SocketAddr,
    now: u64,
    zone: usize,
) -> Verdict {
    let id = request.metadata.id;
    let Ok(signer) = TSigner::new(
        key.secret.clone(),
        key.algorithm.clone(),
        key.name.clone(),
        TSIG_FUDGE,
    ) else {
        return Verdict::Error(error(request, ResponseCode::ServFail, None));
    };
    if LowerName::new(&sig.name) != LowerName::new(&key.name) || sig.data.algorithm != key.algorithm
    {
        tracing::warn!(%peer, key = %sig.name, "zone transfer refused: unknown TSIG key");
        let context = TSigResponseContext::unknown_key(id, now, sig.name.clone());
        return Verdict::Error(error(request, ResponseCode::NotAuth, Some(context)));
    }
    match signer.verify_message_byte(packet, None, true) {
        Err(_) => {
            tracing::warn!(%peer, key = %sig.name, "zone transfer refused: bad TSIG signature");
            let context = TSigResponseContext::bad_signature(id, now, signer);
            Verdict::Error(error(request, ResponseCode::NotAuth, Some(context)))
        }
        Ok((mac, _, valid)) if now < valid.start || now > valid.end => {
            tracing::warn!(%peer, key = %sig.name, "zone transfer refused: TSIG time out of range");
            let context = TSigResponseContext::new(id, now, signer, mac, Some(TsigError::BadTime));
            Verdict::Error(error(request, ResponseCode::NotAuth, Some(context)))
        }
        Ok((mac, _, _)) => Verdict::Serve {
            zone,
            signer: Some((signer, mac)),
        },
    }
}

/// An error response echoing the question, with a TSIG when `context` says so.
fn error(request: &Message, rcode: ResponseCode, context: Option<TSigResponseContext>) -> Vec<u8> {
    let mut message = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    message.metadata.response_code = rcode;
    message.metadata.recursion_desired = request.metadata.recursion_desired;
    message.add_queries(request.queries.iter().cloned());
    let mut bytes = message.to_vec().unwrap_or_default();
    if let Some(context) = context {
        if let Ok(tsig) = context.sign(&bytes) {
            message.set_signature(tsig);
            bytes = message.to_vec().unwrap_or(bytes);
        }
    }
    bytes
}

/// Signs one message of a transfer (RFC 8945 §5.3.1): the first with the request's MAC
/// and every TSIG variable, the next ones with the previous MAC and the timers only.
/// Returns the signed bytes and the MAC, which the next message chains from.
fn sign(
    message: &mut Message,
    signer: &TSigner,
    request_mac: &[u8],
    previous_mac: Option<&[u8]>,
    now: u64,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let unsigned = message.to_vec().ok()?;
    let id = message.metadata.id;
    let tsig = match previous_mac {
        None => TSigResponseContext::new(id, now, signer.clone(), request_mac.to_vec(), None)
            .sign(&unsigned)
            .ok()?,
        Some(previous) => {
            let mut tbs = Vec::with_capacity(previous.len() + unsigned.len() + 10);
            tbs.extend_from_slice(&u16::try_from(previous.len()).ok()?.to_be_bytes());
            tbs.extend_from_slice(previous);
            tbs.extend_from_slice(&unsigned);
            tbs.extend_from_slice(&now.to_be_bytes()[2..]);
            tbs.extend_from_slice(&TSIG_FUDGE.to_be_bytes());
            let mac = signer.sign(&tbs).ok()?;
            let rdata = TSIG::new(
                signer.algorithm().clone(),
                now,
                TSIG_FUDGE,
                mac,
                id,
                None,
                Vec::new(),
            );
            Box::new(make_tsig_record(signer.signer_name().clone(), rdata))
        }
    };
    let mac = tsig.data.mac.clone();
    message.set_signature(tsig);
    Some((message.to_vec().ok()?, mac))
}

/// Cuts the records into messages of about [`MESSAGE_BUDGET`] bytes, in order.
fn split(records: Vec<Record>) -> Vec<Vec<Record>> {
    let mut messages = vec![Vec::new()];
    let mut used = 0;
    let mut scratch = Vec::with_capacity(512);
    for record in records {
        scratch.clear();
        let mut encoder = BinEncoder::new(&mut scratch);
        let size = record.emit(&mut encoder).map_or(512, |()| scratch.len());
        let last = messages.last_mut().expect("never empty");
        if used + size > MESSAGE_BUDGET && !last.is_empty() {
            messages.push(Vec::new());
            used = 0;
        }
        used += size;
        messages.last_mut().expect("never empty").push(record);
    }
    messages
}

/// `a < b` in serial number arithmetic (RFC 1982).
fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a packet asks AXFR or IXFR: a look at the question's type without parsing the
/// message, so that other queries pay nothing for transfers.
pub(super) fn asks_transfer(packet: &[u8]) -> bool {
    if packet.len() < 12 || packet[4..6] != [0, 1] {
        return false;
    }
    let mut at = 12;
    while let Some(&len) = packet.get(at) {
        match len {
            0 => {
                let qtype = packet.get(at + 1..at + 3);
                return qtype.is_some_and(|t| {
                    let t = u16::from_be_bytes([t[0], t[1]]);
                    t == u16::from(RecordType::AXFR) || t == u16::from(RecordType::IXFR)
                });
            }
            1..=63 => at += 1 + usize::from(len),
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
#[path = "xfr_tests.rs"]
mod tests;
