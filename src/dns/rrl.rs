//! Response rate limiting (RRL) over UDP, so gslb cannot be used to flood a spoofed
//! victim with answers.
//!
//! Responses are counted per client prefix (/24 for IPv4, /56 for IPv6 by default) per
//! second. Past the limit, every `slip`-th response goes out truncated (TC set, no
//! records: a real client retries over TCP, which a spoofer cannot) and the rest are
//! dropped. TCP is never limited.
//!
//! The table is a fixed array of atomic counters indexed by a hash of the prefix: no
//! lock and no allocation on the query path, bounded memory whatever the number of
//! clients. Two prefixes that share a slot share a budget, which only errs towards
//! limiting sooner.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Slots in the table (a power of two).
const SLOTS: usize = 1 << 16;

/// The limits, from `[server.rate_limit]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrlConfig {
    /// Responses per second per prefix; 0 turns limiting off.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated; 0 drops them all.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self {
            responses_per_second: 0,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        }
    }
}

/// What to do with one UDP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send a truncated, empty response instead.
    Slip,
    Drop,
}

/// The limiter.
pub struct Rrl {
    config: RrlConfig,
    /// Per slot: the second (high 32 bits) and the count in it (low 32 bits).
    slots: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Rrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rrl")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Rrl {
    /// A limiter, or `None` when the config turns it off.
    pub fn new(config: RrlConfig) -> Option<Self> {
        (config.responses_per_second > 0).then(|| Self {
            config,
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            // Random keys: a client cannot aim at another prefix's slot.
            hasher: std::collections::hash_map::RandomState::new(),
        })
    }

    /// Counts a response to `client` and says what to do with it.
    pub fn check(&self, client: IpAddr) -> Verdict {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            & 0xffff_ffff;
        self.check_at(client, now)
    }

    fn check_at(&self, client: IpAddr, second: u64) -> Verdict {
        let slot = &self.slots[self.slot(client)];
        let mut current = slot.load(Ordering::Relaxed);
        let count = loop {
            let (at, n) = (current >> 32, current & 0xffff_ffff);
            let next = if at == second {
                (second << 32) | (n + 1).min(0xffff_ffff)
            } else {
                (second << 32) | 1
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break next & 0xffff_ffff,
                Err(seen) => current = seen,
            }
        };
        let limit = u64::from(self.config.responses_per_second);
        if count <= limit {
            return Verdict::Send;
        }
        let over = count - limit;
        match u64::from(self.config.slip) {
            0 => Verdict::Drop,
            slip if over % slip == 0 => Verdict::Slip,
            _ => Verdict::Drop,
        }
    }

    fn slot(&self, client: IpAddr) -> usize {
        let prefix: u128 = match client {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let keep = u32::from(self.config.ipv4_prefix.min(32));
                u128::from(if keep == 0 {
                    0
                } else {
                    bits & (u32::MAX << (32 - keep))
                })
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let keep = u32::from(self.config.ipv6_prefix.min(128));
                let masked = if keep == 0 {
                    0
                } else {
                    bits & (u128::MAX << (128 - keep))
                };
                masked | 1 // never equal to a v4 prefix
            }
        };
        let mut h = self.hasher.build_hasher();
        prefix.hash(&mut h);
        (std::hash::Hasher::finish(&h) as usize) & (SLOTS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(rps: u32, slip: u32) -> Rrl {
        Rrl::new(RrlConfig {
            responses_per_second: rps,
            slip,
            ..RrlConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn off_when_zero() {
        assert!(Rrl::new(RrlConfig::default()).is_none());
    }

    #[test]
    fn limits_per_prefix_per_second_with_slip() {
        let r = rrl(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_prefix: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let v: Vec<Verdict> = (0..7)
            .map(|i| r.check_at(if i % 2 == 0 { a } else { same_prefix }, 100))
            .collect();
        use Verdict::*;
        assert_eq!(v, vec![Send, Send, Send, Drop, Slip, Drop, Slip]);
        assert_eq!(
            r.check_at(other, 100),
            Send,
            "another prefix has its own budget"
        );
        assert_eq!(r.check_at(a, 101), Send, "a new second, a new budget");
    }

    #[test]
    fn slip_zero_drops_everything_over_the_limit() {
        let r = rrl(1, 0);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(r.check_at(a, 5), Verdict::Send);
        assert_eq!(r.check_at(a, 5), Verdict::Drop);
        assert_eq!(
            r.check_at("2001:db8:0:ff::1".parse().unwrap(), 5),
            Verdict::Drop,
            "same /56"
        );
    }
}
