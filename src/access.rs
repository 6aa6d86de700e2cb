//! Who may connect: address rules (`--allow`, `--deny`) and a ceiling on
//! connections from one source (`--max-connections-per-source`).
//!
//! Both are decided at the accept, before anything is read from the peer —
//! with the PROXY protocol, as soon as the header names the real client.
//! An IPv4 address carried in IPv6 (`::ffff:a.b.c.d`, what a dual-stack
//! listener sees) is judged as the IPv4 address it is, and a block written
//! that way (`::ffff:10.0.0.0/104`) is the IPv4 block it carries.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address block: an address and how many of its leading bits matter.
/// `10.0.0.0/8`, `2001:db8::/32`; a bare address is the block of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let written: IpAddr = addr.parse().map_err(|_| {
            format!("{text:?} is not an address or block (e.g. 10.0.0.0/8, 2001:db8::/32)")
        })?;
        let addr = canonical(written);
        // A mapped address is written with an IPv6 prefix, whose first 96
        // bits are the mapping: `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
        let mapped = addr.is_ipv4() && written.is_ipv6();
        let (min, max) = match (addr.is_ipv4(), mapped) {
            (true, false) => (0, 32),
            (true, true) => (96, 128),
            (false, _) => (0, 128),
        };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if (min..=max).contains(&p) => p,
                _ => {
                    return Err(format!(
                        "{text:?}: the prefix length must be {min} to {max}"
                    ))
                }
            },
        };
        let prefix = if mapped { prefix - 96 } else { prefix };
        // The host bits are dropped, as every router does: 10.1.2.3/8 is
        // 10.0.0.0/8.
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(a), prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(a), prefix))),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4 address carried in IPv6 as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => bits & (u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - u32::from(p.min(128)))),
    }
}

/// The address rules: a source inside a denied block is refused; with any
/// allowed block given, a source outside all of them is refused too. Deny
/// wins over allow, whatever the order the flags came in, so a narrow deny
/// carves a hole in a wide allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRules {
    /// `--allow`: when not empty, only these sources are admitted.
    pub allow: Vec<Cidr>,
    /// `--deny`: these sources are refused.
    pub deny: Vec<Cidr>,
}

/// Why a source was refused by the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Inside a `--deny` block.
    Denied,
    /// Outside every `--allow` block.
    NotAllowed,
}

impl AccessRules {
    /// No rules: every source is admitted, and nothing is looked at.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether `ip` may connect.
    pub fn judge(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.deny.iter().any(|c| c.contains(ip)) {
            return Err(Refusal::Denied);
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|c| c.contains(ip)) {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }
}

/// What one source is, for counting its connections: an IPv4 address, or
/// an IPv6 address cut to the configured prefix (one host commonly holds a
/// whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address.
    V4(u32),
    /// An IPv6 address cut to the configured prefix.
    V6(u128),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Source::V4(a) => write!(f, "{}", Ipv4Addr::from(a)),
            Source::V6(a) => write!(f, "{}", Ipv6Addr::from(a)),
        }
    }
}

/// Open connections counted by source, for `--max-connections-per-source`.
///
/// A source has an entry only while it has a connection open, so the table
/// never holds more entries than there are connections, however many
/// sources a hostile spread of peers comes from; it gives memory back when
/// it has shrunk to a quarter of what it held.
#[derive(Debug)]
pub struct PerSource {
    limit: u32,
    v6_prefix: u8,
    open: HashMap<Source, u32>,
}

impl PerSource {
    /// At most `limit` connections from one source; IPv6 sources are cut to
    /// `v6_prefix` bits.
    pub fn new(limit: u32, v6_prefix: u8) -> PerSource {
        PerSource {
            limit,
            v6_prefix: v6_prefix.min(128),
            open: HashMap::new(),
        }
    }

    /// The source `ip` counts as.
    pub fn source(&self, ip: IpAddr) -> Source {
        match canonical(ip) {
            IpAddr::V4(a) => Source::V4(u32::from(a)),
            IpAddr::V6(a) => Source::V6(mask_v6(u128::from(a), self.v6_prefix)),
        }
    }

    /// Counts one more connection from `ip`, or refuses it (and counts
    /// nothing) when its source already has `limit` open. Returns the
    /// source either way, for the log line.
    pub fn admit(&mut self, ip: IpAddr) -> Result<Source, Source> {
        let source = self.source(ip);
        let open = self.open.entry(source).or_insert(0);
        if *open >= self.limit {
            if *open == 0 {
                // A limit of 0 leaves no entry behind.
                self.open.remove(&source);
            }
            return Err(source);
        }
        *open += 1;
        Ok(source)
    }

    /// Counts a connection from `ip` as closed.
    pub fn release(&mut self, ip: IpAddr) {
        let source = self.source(ip);
        if let Some(open) = self.open.get_mut(&source) {
            *open -= 1;
            if *open == 0 {
                self.open.remove(&source);
                if self.open.capacity() > 64 && self.open.len() < self.open.capacity() / 4 {
                    self.open.shrink_to(self.open.len() * 2);
                }
            }
        }
    }

    /// Sources with a connection open.
    pub fn sources(&self) -> usize {
        self.open.len()
    }

    /// Connections open from the source `ip` counts as.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.open.get(&self.source(ip)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_parse_drop_host_bits_and_refuse_nonsense() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "127.0.0.2".parse::<Cidr>().unwrap().to_string(),
            "127.0.0.2/32"
        );
        assert_eq!(
            "2001:db8::1/32".parse::<Cidr>().unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
        // Mapped IPv4 is IPv4, prefix and all.
        assert_eq!(
            "::ffff:10.0.0.1".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.1/32"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host",
            "10.0.0.0/",
            "10.0.0.0/-1",
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_mapped_block_is_the_ipv4_block_it_carries() {
        // What a dual-stack operator writes for IPv4 clients as their
        // listener sees them: the prefix counts the 96 bits of the mapping.
        let block: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(block.to_string(), "10.0.0.0/8");
        assert!(block.contains(ip("10.200.0.1")));
        assert!(block.contains(ip("::ffff:10.1.2.3")));
        assert!(!block.contains(ip("11.0.0.1")));
        let all: Cidr = "::ffff:0.0.0.0/96".parse().unwrap();
        assert_eq!(all.to_string(), "0.0.0.0/0");
        assert!(all.contains(ip("192.0.2.1")));
        assert!(!all.contains(ip("2001:db8::1")));
        // A prefix shorter than the mapping reaches outside it: refused,
        // not silently narrowed to IPv4.
        let e = "::ffff:10.0.0.0/64".parse::<Cidr>().unwrap_err();
        assert!(e.contains("96 to 128"), "{e}");
        assert!("::ffff:10.0.0.0/129".parse::<Cidr>().is_err());
    }

    #[test]
    fn containment_at_the_edges_of_a_block() {
        let net: Cidr = "192.168.4.0/22".parse().unwrap();
        assert!(net.contains(ip("192.168.4.0")));
        assert!(net.contains(ip("192.168.7.255")));
        assert!(!net.contains(ip("192.168.8.0")));
        assert!(!net.contains(ip("192.168.3.255")));
        assert!(
            net.contains(ip("::ffff:192.168.5.1")),
            "a mapped address is IPv4"
        );
        assert!(!net.contains(ip("::1")));
        let all4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all4.contains(ip("255.255.255.255")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8:0:1::/64".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:0:1:ffff:ffff:ffff:ffff")));
        assert!(!v6.contains(ip("2001:db8:0:2::")));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
    }

    #[test]
    fn deny_wins_over_allow_and_no_allow_admits_all() {
        let mut rules = AccessRules::default();
        assert!(rules.is_empty());
        assert_eq!(rules.judge(ip("8.8.8.8")), Ok(()));
        rules.deny.push("127.0.0.2".parse().unwrap());
        assert_eq!(rules.judge(ip("127.0.0.2")), Err(Refusal::Denied));
        assert_eq!(rules.judge(ip("127.0.0.3")), Ok(()));
        rules.allow.push("127.0.0.0/8".parse().unwrap());
        assert_eq!(rules.judge(ip("127.0.0.2")), Err(Refusal::Denied));
        assert_eq!(rules.judge(ip("127.0.0.3")), Ok(()));
        assert_eq!(rules.judge(ip("10.0.0.1")), Err(Refusal::NotAllowed));
        assert_eq!(rules.judge(ip("::1")), Err(Refusal::NotAllowed));
    }

    #[test]
    fn per_source_counts_refuses_past_the_limit_and_forgets_idle_sources() {
        let mut table = PerSource::new(2, 64);
        let a = ip("127.0.0.2");
        assert!(table.admit(a).is_ok());
        assert!(table.admit(a).is_ok());
        assert_eq!(table.admit(a), Err(Source::V4(0x7f00_0002)));
        assert_eq!(table.open_from(a), 2, "a refusal counts nothing");
        assert!(table.admit(ip("127.0.0.3")).is_ok());
        assert_eq!(table.sources(), 2);
        table.release(a);
        assert!(table.admit(a).is_ok(), "room again after a close");
        table.release(a);
        table.release(a);
        assert_eq!(
            table.sources(),
            1,
            "a source with nothing open has no entry"
        );
        // IPv6: one /64 is one source.
        assert!(table.admit(ip("2001:db8::1")).is_ok());
        assert!(table.admit(ip("2001:db8::ffff:2")).is_ok());
        assert!(table.admit(ip("2001:db8::3")).is_err());
        assert!(
            table.admit(ip("2001:db8:0:1::1")).is_ok(),
            "the next /64 is another source"
        );
        // A mapped IPv4 address is the IPv4 source.
        assert!(table.admit(ip("::ffff:127.0.0.3")).is_ok());
        assert_eq!(table.open_from(ip("127.0.0.3")), 2);
    }

    #[test]
    fn a_spread_of_sources_never_outgrows_the_connections_open() {
        let mut table = PerSource::new(1, 128);
        let ips: Vec<IpAddr> = (0..10_000u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
            .collect();
        for &a in &ips {
            assert!(table.admit(a).is_ok());
        }
        assert_eq!(table.sources(), 10_000);
        for &a in &ips {
            table.release(a);
        }
        assert_eq!(table.sources(), 0);
        assert!(
            table.open.capacity() <= 128,
            "memory given back: {}",
            table.open.capacity()
        );
        let mut none = PerSource::new(0, 64);
        assert!(none.admit(ips[0]).is_err());
        assert_eq!(none.sources(), 0, "a limit of 0 keeps no entries");
    }
}
