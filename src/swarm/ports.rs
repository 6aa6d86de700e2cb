//! How many local ports are really free towards one server.
//!
//! A connection is a four-tuple, so one local address reaches one server
//! through at most one ephemeral port range (`net.ipv4.ip_local_port_range`,
//! which IPv6 shares). Ports this host already uses towards that server —
//! open connections, and closed ones still in TIME_WAIT for a minute after
//! closing first — are not free, whatever `SO_REUSEADDR` says: the kernel
//! will not hand out a four-tuple that still exists. Reading them from
//! `/proc/net/tcp{,6}` lets the swarm refuse a run it cannot hold before
//! opening anything, instead of failing part of it with "address not
//! available".

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The ephemeral port range, inclusive.
pub fn port_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// Ports free towards `server` from each of `sources` (or from the address
/// the kernel would choose, when there are none), summed; `None` when the
/// range cannot be read.
pub fn free_ports(server: SocketAddr, sources: &[IpAddr]) -> Option<Free> {
    Some(InUse::towards(server)?.free(sources))
}

/// The ports this host uses towards one server now, by local address: read
/// once, then asked about any set of source addresses (a plan of several
/// workers asks about many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    /// Size of the ephemeral port range.
    pub range_size: u64,
    /// Ports in the range taken towards the server, by local address.
    pub by_source: HashMap<IpAddr, u64>,
}

impl InUse {
    /// Reads the range and `/proc/net/tcp{,6}`; `None` when the range
    /// cannot be read.
    pub fn towards(server: SocketAddr) -> Option<InUse> {
        let range = port_range()?;
        let mut by_source = HashMap::new();
        for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
            if let Ok(text) = std::fs::read_to_string(path) {
                count_in_use(&text, v6, server, range, &mut by_source);
            }
        }
        Some(InUse {
            range_size: u64::from(range.1.saturating_sub(range.0)) + 1,
            by_source,
        })
    }

    /// The ports from `sources` (from the kernel's choice when empty).
    pub fn free(&self, sources: &[IpAddr]) -> Free {
        let size = self.range_size;
        let taken = if sources.is_empty() {
            // One source, the kernel's choice: everything towards the server
            // counts, from whichever local address.
            self.by_source.values().sum::<u64>().min(size)
        } else {
            sources
                .iter()
                .map(|ip| self.by_source.get(ip).copied().unwrap_or(0).min(size))
                .sum()
        };
        Free {
            total: size * sources.len().max(1) as u64,
            taken,
        }
    }
}

/// Ephemeral ports towards one server: how many exist, how many are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Free {
    /// Range size times source addresses.
    pub total: u64,
    /// Used by sockets that exist now, in any state.
    pub taken: u64,
}

impl Free {
    /// Ports a new connection can get.
    pub fn available(&self) -> u64 {
        self.total.saturating_sub(self.taken)
    }

    /// Ports a new connection gets cheaply: two fifths of the range.
    /// Linux's `connect` looks for a port of one parity first (even ones,
    /// leaving odd ones to `bind`), from a point that moves on by a few
    /// random ports after each connect, so the taken ports are scattered
    /// over the even half. The further that half fills, the more taken
    /// ports each connect steps over before a free one — and once it is
    /// full, every connect scans all of it before it tries an odd port,
    /// thousands of hash lookups each. Measured here: with 18,000 of 28,232
    /// ports taken on each of eleven addresses, 77% of both cores went to
    /// `__inet_check_established` and the ramp crawled at 500 connects a
    /// second; filling even halves to the brim slowed the last connects to
    /// a few hundred a second. At four fifths of the even half a connect
    /// steps over five taken ports on average.
    pub fn cheap(&self) -> u64 {
        (self.total * 2 / 5).saturating_sub(self.taken)
    }
}

/// Adds, per local address, the sockets in `text` (the contents of
/// `/proc/net/tcp`, or `tcp6` when `v6`) whose remote end is `server` and
/// whose local port is in `range`.
pub fn count_in_use(
    text: &str,
    v6: bool,
    server: SocketAddr,
    range: (u16, u16),
    out: &mut HashMap<IpAddr, u64>,
) {
    for line in text.lines().skip(1) {
        let mut fields = line.split_whitespace().skip(1);
        let (Some(local), Some(remote)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Some(local), Some(remote)) = (endpoint(local, v6), endpoint(remote, v6)) else {
            continue;
        };
        if same_endpoint(remote, server) && (range.0..=range.1).contains(&local.port()) {
            *out.entry(canonical(local.ip())).or_insert(0) += 1;
        }
    }
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6). The kernel
/// prints each 32-bit word of the address as a number in the host's byte
/// order, so the word's native bytes are the address's bytes.
fn endpoint(text: &str, v6: bool) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = if v6 {
        let mut bytes = [0u8; 16];
        for i in 0..4 {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
        }
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::from(word(0)?))
    };
    Some(SocketAddr::new(ip, port))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Three sockets towards 10.0.0.2:8898 — one open, two in TIME_WAIT
    // (state 06) — one towards another server, one outside the range, and a
    // listener.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100000A:C350 0200000A:22C2 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100000A:C351 0200000A:22C2 06 00000000:00000000 03:00000F5E 00000000     0        0 0 3 0000000000000000
   2: 0300000A:C352 0200000A:22C2 06 00000000:00000000 03:00000F5E 00000000     0        0 0 3 0000000000000000
   3: 0100000A:C353 0300000A:22C2 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   4: 0100000A:0050 0200000A:22C2 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
   5: 00000000:22C2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn counts_sockets_towards_the_server_in_the_range_by_local_address() {
        let server: SocketAddr = "10.0.0.2:8898".parse().unwrap();
        let mut out = HashMap::new();
        count_in_use(TCP, false, server, (50_000, 50_199), &mut out);
        let from = |ip: &str| out.get(&ip.parse::<IpAddr>().unwrap()).copied();
        assert_eq!(from("10.0.0.1"), Some(2));
        assert_eq!(from("10.0.0.3"), Some(1));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn reads_ipv6_and_mapped_addresses() {
        // ::1 port 50000 towards [::1]:8898, and ::ffff:127.0.0.1 towards
        // 127.0.0.1:8898 (a dual-stack socket).
        let tcp6 =
            "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:C350 00000000000000000000000001000000:22C2 01
   1: 0000000000000000FFFF00000100007F:C351 0000000000000000FFFF00000100007F:22C2 06
";
        let mut out = HashMap::new();
        count_in_use(
            tcp6,
            true,
            "[::1]:8898".parse().unwrap(),
            (50_000, 50_199),
            &mut out,
        );
        assert_eq!(out.get(&"::1".parse::<IpAddr>().unwrap()), Some(&1));
        let mut out = HashMap::new();
        count_in_use(
            tcp6,
            true,
            "127.0.0.1:8898".parse().unwrap(),
            (50_000, 50_199),
            &mut out,
        );
        assert_eq!(out.get(&"127.0.0.1".parse::<IpAddr>().unwrap()), Some(&1));
    }

    #[test]
    fn reads_this_hosts_own_sockets() {
        // A real connection of this process shows up.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let _conn = std::net::TcpStream::connect(server).unwrap();
        let free = free_ports(server, &[]).unwrap();
        assert!(free.taken >= 1, "{free:?}");
        assert!(free.available() < free.total);
    }
}
