//! The UDP fast path: a plain query read straight from its bytes and answered from the
//! pre-encoded [`WireIndex`], without building a message.
//!
//! Only the common shape is taken: a QUERY with one IN question, an uncompressed name,
//! nothing in the answer and authority sections, and at most an EDNS(0) OPT record that
//! parses cleanly and carries no Client Subnet option (whose answer echoes it). Everything else, and every answer the index does not hold or that would
//! not fit the client's buffer, returns `None` and goes to the general hickory path, which
//! gives the same answers (the tests compare the two).

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;

use super::MAX_UDP_PAYLOAD;
use super::ecs::{self, Ecs};
use crate::answer::wire::WireAnswer;
use crate::answer::{AnswerTable, Client, Located};

const HEADER: usize = 12;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// An OPT record with an empty root owner and no options.
const OPT_LEN: usize = 11;
/// Room for the largest response the fast path sends.
pub const OUT_CAPACITY: usize = MAX_UDP_PAYLOAD as usize;

/// A query of the common shape, borrowing the packet.
#[derive(Debug)]
pub struct PlainQuery<'a> {
    packet: &'a [u8],
    /// End of the question section (name, type, class).
    question_end: usize,
    /// The question name in lowercase wire form.
    lower: [u8; 255],
    name_len: usize,
    pub qtype: u16,
    /// The buffer size the client offered, when it sent EDNS(0).
    pub edns_payload: Option<u16>,
    /// Its EDNS Client Subnet option, well formed.
    pub ecs: Option<Ecs>,
    /// The DO bit (RFC 3225): the client wants DNSSEC records.
    pub dnssec_ok: bool,
}

/// What the fast path sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastAnswer {
    /// Bytes written.
    pub len: usize,
    pub rcode: ResponseCode,
    /// Set when a `geo` app answered: the app, and where the client was placed.
    pub geo: Option<(usize, Located)>,
}

impl<'a> PlainQuery<'a> {
    /// Reads a query of the common shape, or `None` for anything else.
    pub fn parse(packet: &'a [u8]) -> Option<Self> {
        if packet.len() < HEADER + 5 {
            return None;
        }
        let flags = packet[2];
        // QR = 0, OPCODE = QUERY, AA and TC clear.
        if flags & 0b1111_1110 != 0 {
            return None;
        }
        let count = |i: usize| u16::from_be_bytes([packet[i], packet[i + 1]]);
        let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
        if qd != 1 || an != 0 || ns != 0 || ar > 1 {
            return None;
        }
        let mut lower = [0u8; 255];
        let mut at = HEADER;
        let mut name_len = 0;
        loop {
            let len = usize::from(*packet.get(at)?);
            if len > 63 || name_len + len + 1 > lower.len() {
                return None; // a compression pointer, an extended label, or too long
            }
            let label = packet.get(at..at + len + 1)?;
            for (to, from) in lower[name_len..name_len + len + 1].iter_mut().zip(label) {
                *to = from.to_ascii_lowercase();
            }
            // The length byte is below 64, so lowercasing left it alone.
            name_len += len + 1;
            at += len + 1;
            if len == 0 {
                break;
            }
        }
        let fixed = packet.get(at..at + 4)?;
        let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        if u16::from_be_bytes([fixed[2], fixed[3]]) != CLASS_IN {
            return None;
        }
        let question_end = at + 4;
        let (edns_payload, ecs, dnssec_ok) = if ar == 1 {
            let (payload, ecs, dnssec_ok) = read_opt(packet.get(question_end..)?)?;
            (Some(payload), ecs, dnssec_ok)
        } else if packet.len() == question_end {
            (None, None, false)
        } else {
            return None; // trailing bytes: let the general path judge them
        };
        Some(Self {
            packet,
            question_end,
            lower,
            name_len,
            qtype,
            edns_payload,
            ecs,
            dnssec_ok,
        })
    }

    /// The question name in lowercase wire form.
    pub fn lower_name(&self) -> &[u8] {
        &self.lower[..self.name_len]
    }

    /// The largest response this client takes over UDP.
    fn limit(&self) -> usize {
        usize::from(
            self.edns_payload
                .map_or(512, |p| p.clamp(512, MAX_UDP_PAYLOAD)),
        )
    }

    /// Writes the answer from `table` to a query from `src` into `out`, or returns `None`
    /// when the general path must answer.
    pub fn answer(&self, table: &AnswerTable, src: IpAddr, out: &mut [u8]) -> Option<FastAnswer> {
        let mut geo = None;
        let client = self.ecs.map_or(Client::Resolver(src), |e| e.client(src));
        let found = table
            .wire
            .answer(self.lower_name(), self.qtype, self.dnssec_ok, |app| {
                let located = table.geo.locate(client);
                geo = Some((app, located));
                located.region
            });
        let scope = geo.map_or(0, |(_, l): (usize, Located)| l.scope);
        let done = |len: Option<usize>, rcode| len.map(|len| FastAnswer { len, rcode, geo });
        match found {
            WireAnswer::Message(message, rcode) => {
                let len = message.len();
                if len + self.opt_len() > self.limit().min(out.len()) || len < self.question_end {
                    return None;
                }
                out[..len].copy_from_slice(message);
                done(self.patch_header(out, len, rcode, false, scope), rcode)
            }
            WireAnswer::NxDomain {
                origin_len,
                soa_tail,
            } => {
                let pointer = HEADER + self.name_len - origin_len;
                let len = self.question_end + 2 + soa_tail.len();
                if len + self.opt_len() > self.limit().min(out.len()) || pointer > 0x3fff {
                    return None;
                }
                out[self.question_end] = 0xc0 | (pointer >> 8) as u8;
                out[self.question_end + 1] = (pointer & 0xff) as u8;
                out[self.question_end + 2..len].copy_from_slice(soa_tail);
                // Counts: one question, one authority record.
                out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0]);
                done(
                    self.patch_header(out, len, ResponseCode::NXDomain, false, scope),
                    ResponseCode::NXDomain,
                )
            }
            WireAnswer::Slow => None,
        }
    }

    /// The TC=1 reply with no records that response rate limiting sends instead of an
    /// answer ("slip"), so that a real client retries over TCP.
    pub fn truncated(&self, out: &mut [u8]) -> Option<usize> {
        if self.question_end + self.opt_len() > out.len() {
            return None;
        }
        out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        self.patch_header(out, self.question_end, ResponseCode::NoError, true, 0)
    }

    fn opt_len(&self) -> usize {
        match (self.edns_payload, self.ecs) {
            (None, _) => 0,
            (Some(_), None) => OPT_LEN,
            (Some(_), Some(e)) => OPT_LEN + ecs_echo_len(e),
        }
    }

    /// Writes the id, flags and question of the query over `out[..len]` (whose counts are
    /// already right for the sections present) and appends the OPT record if the client
    /// sent one, echoing its ECS option with `scope` (RFC 7871 §7.2.1).
    fn patch_header(
        &self,
        out: &mut [u8],
        len: usize,
        rcode: ResponseCode,
        truncated: bool,
        scope: u8,
    ) -> Option<usize> {
        let query = self.packet;
        out[0] = query[0];
        out[1] = query[1];
        // QR, OPCODE 0, AA unless truncated, TC, and RD copied.
        out[2] = 0x80 | if truncated { 0x02 } else { 0x04 } | (query[2] & 0x01);
        // RA = 0, Z = 0, AD = 0, CD copied, then the rcode.
        out[3] = (query[3] & 0x10) | (u16::from(rcode) & 0x0f) as u8;
        if truncated {
            out[2] &= !0x04;
        }
        out[HEADER..self.question_end].copy_from_slice(&query[HEADER..self.question_end]);
        let Some(payload) = self.edns_payload else {
            return Some(len);
        };
        let end = len + OPT_LEN;
        let payload = payload.clamp(512, MAX_UDP_PAYLOAD).to_be_bytes();
        // The DO bit is copied back (RFC 3225 §3).
        let flags = if self.dnssec_ok { 0x80 } else { 0 };
        out.get_mut(len..end)?
            .copy_from_slice(&[0, 0, 41, payload[0], payload[1], 0, 0, flags, 0, 0, 0]);
        let end = match self.ecs {
            None => end,
            Some(e) => {
                let option = ecs_echo_len(e);
                let rdlen = (option as u16).to_be_bytes();
                out[end - 2..end].copy_from_slice(&rdlen);
                let data = option - 4;
                let octets = usize::from(e.source).div_ceil(8);
                let (family, bytes): (u16, [u8; 16]) = match e.addr {
                    IpAddr::V4(a) => {
                        let mut b = [0u8; 16];
                        b[..4].copy_from_slice(&a.octets());
                        (1, b)
                    }
                    IpAddr::V6(a) => (2, a.octets()),
                };
                let o = out.get_mut(end..end + option)?;
                o[..2].copy_from_slice(&ecs::OPTION_ECS.to_be_bytes());
                o[2..4].copy_from_slice(&(data as u16).to_be_bytes());
                o[4..6].copy_from_slice(&family.to_be_bytes());
                o[6] = e.source;
                o[7] = scope;
                o[8..8 + octets].copy_from_slice(&bytes[..octets]);
                end + option
            }
        };
        let additional = u16::from_be_bytes([out[10], out[11]]).checked_add(1)?;
        out[10..12].copy_from_slice(&additional.to_be_bytes());
        Some(end)
    }
}

/// The length of the ECS option echoed for `e`: code, length, family, prefixes, address.
fn ecs_echo_len(e: Ecs) -> usize {
    8 + usize::from(e.source).div_ceil(8)
}

/// Reads the one additional record, which must be an EDNS version 0 OPT at the root
/// whose options are well formed and which ends the packet: its buffer size, its ECS
/// option if it has a well-formed one (a malformed one is the general path's to answer
/// with FORMERR), and its DO bit.
fn read_opt(rest: &[u8]) -> Option<(u16, Option<Ecs>, bool)> {
    let fixed = rest.get(..11)?;
    if fixed[0] != 0 || u16::from_be_bytes([fixed[1], fixed[2]]) != TYPE_OPT {
        return None;
    }
    let payload = u16::from_be_bytes([fixed[3], fixed[4]]);
    // Extended rcode and version must be 0 (a later version gets BADVERS elsewhere).
    if fixed[5] != 0 || fixed[6] != 0 {
        return None;
    }
    let rdlen = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    let all = rest.get(11..)?;
    if all.len() != rdlen {
        return None;
    }
    let mut options = all;
    while !options.is_empty() {
        let head = options.get(..4)?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        options = options.get(4 + len..)?;
    }
    let ecs = ecs::from_options(all).ok()?;
    Some((payload, ecs, fixed[7] & 0x80 != 0))
}
