//! The UDP fast path: a plain query read straight from its bytes and answered from the
//! pre-encoded [`WireIndex`], without building a message.
//!
//! Only the common shape is taken: a QUERY with one IN question, an uncompressed name,
//! nothing in the answer and authority sections, and at most an EDNS(0) OPT record that
//! parses cleanly. Everything else, and every answer the index does not hold or that would
//! not fit the client's buffer, returns `None` and goes to the general hickory path, which
//! gives the same answers (the tests compare the two).

use hickory_proto::op::ResponseCode;

use super::MAX_UDP_PAYLOAD;
use crate::answer::wire::{WireAnswer, WireIndex};

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
    /// The DO bit (RFC 3225): the client wants DNSSEC records.
    pub dnssec_ok: bool,
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
        let (edns_payload, dnssec_ok) = if ar == 1 {
            let (payload, dnssec_ok) = read_opt(packet.get(question_end..)?)?;
            (Some(payload), dnssec_ok)
        } else if packet.len() == question_end {
            (None, false)
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

    /// Writes the answer from `index` into `out`, returning its length and rcode, or
    /// `None` when the general path must answer.
    pub fn answer(&self, index: &WireIndex, out: &mut [u8]) -> Option<(usize, ResponseCode)> {
        match index.answer(self.lower_name(), self.qtype, self.dnssec_ok) {
            WireAnswer::Message(message, rcode) => {
                let len = message.len();
                if len + self.opt_len() > self.limit().min(out.len()) || len < self.question_end {
                    return None;
                }
                out[..len].copy_from_slice(message);
                self.patch_header(out, len, rcode, false)
                    .map(|len| (len, rcode))
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
                self.patch_header(out, len, ResponseCode::NXDomain, false)
                    .map(|len| (len, ResponseCode::NXDomain))
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
        self.patch_header(out, self.question_end, ResponseCode::NoError, true)
    }

    fn opt_len(&self) -> usize {
        if self.edns_payload.is_some() {
            OPT_LEN
        } else {
            0
        }
    }

    /// Writes the id, flags and question of the query over `out[..len]` (whose counts are
    /// already right for the sections present) and appends the OPT record if the client
    /// sent one.
    fn patch_header(
        &self,
        out: &mut [u8],
        len: usize,
        rcode: ResponseCode,
        truncated: bool,
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
        let additional = u16::from_be_bytes([out[10], out[11]]).checked_add(1)?;
        out[10..12].copy_from_slice(&additional.to_be_bytes());
        Some(end)
    }
}

/// Reads the one additional record, which must be an EDNS version 0 OPT at the root
/// whose options are well formed and which ends the packet: its buffer size and DO bit.
fn read_opt(rest: &[u8]) -> Option<(u16, bool)> {
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
    let mut options = rest.get(11..)?;
    if options.len() != rdlen {
        return None;
    }
    while !options.is_empty() {
        let head = options.get(..4)?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        options = options.get(4 + len..)?;
    }
    Some((payload, fixed[7] & 0x80 != 0))
}
