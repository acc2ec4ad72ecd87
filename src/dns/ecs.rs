//! EDNS Client Subnet (RFC 7871) as queries carry it: found in the raw message and checked
//! strictly, because hickory's decoder accepts extra address octets and bits set past the
//! source prefix, both of which RFC 7871 §6 says to answer with FORMERR.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::answer::Client;

const TYPE_OPT: u16 = 41;
/// The ECS option code.
pub const OPTION_ECS: u16 = 8;

/// A well-formed ECS option of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecs {
    /// The address with every bit past `source` zero.
    pub addr: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
}

impl Ecs {
    /// Who the answer is for: the subnet, or with a source prefix of 0 (the client asked
    /// that its address not be used, RFC 7871 §7.1.2), the resolver that sent the query.
    pub fn client(self, resolver: IpAddr) -> Client {
        if self.source == 0 {
            Client::Resolver(resolver)
        } else {
            Client::Subnet(self.addr, self.source)
        }
    }
}

/// An ECS option that must be answered with FORMERR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Reads one ECS option's data (after the option code and length).
///
/// # Errors
///
/// [`Malformed`] for an unknown family, a source prefix longer than the address, an address
/// of the wrong number of octets, or bits set past the source prefix.
pub fn parse_option(data: &[u8]) -> Result<Ecs, Malformed> {
    let head = data.get(..4).ok_or(Malformed)?;
    let family = u16::from_be_bytes([head[0], head[1]]);
    let source = head[2];
    let address = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(Malformed),
    };
    if source > max || address.len() != usize::from(source).div_ceil(8) {
        return Err(Malformed);
    }
    let addr = if family == 1 {
        let mut octets = [0u8; 4];
        octets[..address.len()].copy_from_slice(address);
        IpAddr::V4(Ipv4Addr::from(octets))
    } else {
        let mut octets = [0u8; 16];
        octets[..address.len()].copy_from_slice(address);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    if crate::model::mask(addr, source) != addr {
        return Err(Malformed);
    }
    Ok(Ecs { addr, source })
}

/// Reads the options of an OPT record's data: the one ECS option, if any.
///
/// # Errors
///
/// [`Malformed`] for a bad ECS option or more than one.
pub fn from_options(mut options: &[u8]) -> Result<Option<Ecs>, Malformed> {
    let mut found = None;
    while options.len() >= 4 {
        let code = u16::from_be_bytes([options[0], options[1]]);
        let len = usize::from(u16::from_be_bytes([options[2], options[3]]));
        let Some(data) = options.get(4..4 + len) else {
            break;
        };
        if code == OPTION_ECS {
            if found.is_some() {
                return Err(Malformed);
            }
            found = Some(parse_option(data)?);
        }
        options = &options[4 + len..];
    }
    Ok(found)
}

/// Finds the ECS option of a query message. A message that cannot be walked has none
/// (the decoder has judged it already).
///
/// # Errors
///
/// [`Malformed`] as for [`from_options`].
pub fn find(packet: &[u8]) -> Result<Option<Ecs>, Malformed> {
    let Some(counts) = packet.get(4..12) else {
        return Ok(None);
    };
    let count = |i: usize| usize::from(u16::from_be_bytes([counts[i], counts[i + 1]]));
    let (qd, an, ns, ar) = (count(0), count(2), count(4), count(6));
    let mut at = 12;
    for _ in 0..qd {
        let Some(end) = skip_name(packet, at) else {
            return Ok(None);
        };
        at = end + 4;
    }
    for i in 0..an + ns + ar {
        let Some(end) = skip_name(packet, at) else {
            return Ok(None);
        };
        let Some(fixed) = packet.get(end..end + 10) else {
            return Ok(None);
        };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let Some(rdata) = packet.get(end + 10..end + 10 + rdlen) else {
            return Ok(None);
        };
        if i >= an + ns && rtype == TYPE_OPT {
            return from_options(rdata);
        }
        at = end + 10 + rdlen;
    }
    Ok(None)
}

/// The offset just past the name at `at` (labels, then a root label or a pointer).
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *packet.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l < 64 => at += usize::from(l) + 1,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_options_read_back() {
        assert_eq!(
            parse_option(&[0, 1, 24, 0, 10, 1, 2]),
            Ok(Ecs {
                addr: "10.1.2.0".parse().unwrap(),
                source: 24
            })
        );
        assert_eq!(
            parse_option(&[0, 1, 0, 0]),
            Ok(Ecs {
                addr: "0.0.0.0".parse().unwrap(),
                source: 0
            })
        );
        assert_eq!(
            parse_option(&[0, 2, 56, 0, 0x20, 1, 0x0d, 0xb8, 0, 1, 0]),
            Ok(Ecs {
                addr: "2001:db8:1::".parse().unwrap(),
                source: 56
            })
        );
        // A bit past the prefix inside the last octet.
        assert_eq!(
            parse_option(&[0, 1, 20, 0, 10, 1, 0x10]).map(|e| e.source),
            Ok(20)
        );
    }

    #[test]
    fn malformed_options_are_refused() {
        for bad in [
            &[0, 1, 24][..],                   // short
            &[0, 3, 8, 0, 10],                 // unknown family
            &[0, 1, 33, 0, 10, 1, 2, 3, 4],    // prefix over 32
            &[0, 1, 24, 0, 10, 1],             // too few octets
            &[0, 1, 24, 0, 10, 1, 2, 0],       // too many octets
            &[0, 1, 20, 0, 10, 1, 0x18],       // a bit set past /20
            &[0, 1, 0, 0, 10],                 // /0 with an address octet
            &[0, 2, 129, 0, 0, 0, 0, 0, 0, 0], // prefix over 128
        ] {
            assert_eq!(parse_option(bad), Err(Malformed), "{bad:?}");
        }
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 10, 1, 2];
        let twice: Vec<u8> = ecs.iter().chain(&ecs).copied().collect();
        assert_eq!(from_options(&twice), Err(Malformed));
    }
}
