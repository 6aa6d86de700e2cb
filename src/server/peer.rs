//! Each connection's peer address, kept from the accept for every log line
//! about it, in 8 bytes.
//!
//! The kernel forgets a peer once its connection is reset (`getpeername`
//! fails with `ENOTCONN`), which is exactly when a close line most needs to
//! name it; so the address is stored when the connection is accepted, and
//! replaced by the client a PROXY header names once that header is in.
//!
//! A `std::net::SocketAddr` is 32 bytes, and `Conn` is the product's
//! per-connection cost. An IPv4 address and port fit in the 8 bytes of a
//! [`PeerAddr`] inline; an IPv6 one (28 bytes with its flow label and scope)
//! is kept in a side table, [`V6Peers`], and the `PeerAddr` holds its index.
//! So an IPv4 peer costs 8 bytes, an IPv6 one 8 bytes plus a 32-byte table
//! entry (freed with the connection, its place reused by the next one).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use slab::Slab;

/// A connection's peer address in 8 bytes (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerAddr {
    /// An IPv4 peer, inline.
    V4 { ip: [u8; 4], port: u16 },
    /// An IPv6 peer: its index in [`V6Peers`].
    V6(u32),
}

/// The IPv6 peers of open connections, by the index their [`PeerAddr`]
/// holds. Empty while every peer is IPv4.
#[derive(Default)]
pub(crate) struct V6Peers {
    table: Slab<SocketAddrV6>,
}

impl V6Peers {
    /// Keeps `addr`: an IPv4 one inline, an IPv6 one in the table (release
    /// it with [`V6Peers::release`] when its connection goes).
    pub(crate) fn keep(&mut self, addr: SocketAddr) -> PeerAddr {
        match addr {
            SocketAddr::V4(v4) => PeerAddr::V4 {
                ip: v4.ip().octets(),
                port: v4.port(),
            },
            // A slab's keys stay below its length, which is bounded by the
            // open connections (u32 slots): the index fits.
            SocketAddr::V6(v6) => PeerAddr::V6(self.table.insert(v6) as u32),
        }
    }

    /// The address `peer` stands for. An index not in the table (not
    /// reached: every `PeerAddr::V6` is released once) reads as the
    /// unspecified address rather than panicking in a log line.
    pub(crate) fn get(&self, peer: PeerAddr) -> SocketAddr {
        match peer {
            PeerAddr::V4 { ip, port } => {
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))
            }
            PeerAddr::V6(index) => match self.table.get(index as usize) {
                Some(v6) => SocketAddr::V6(*v6),
                None => {
                    debug_assert!(false, "IPv6 peer {index} is not in the table");
                    SocketAddr::from(([0u16; 8], 0))
                }
            },
        }
    }

    /// Forgets `peer`, its connection gone (a no-op for an IPv4 one).
    pub(crate) fn release(&mut self, peer: PeerAddr) {
        if let PeerAddr::V6(index) = peer {
            self.table.try_remove(index as usize);
        }
    }

    /// Replaces `peer` with `addr` (a PROXY header's client), releasing
    /// what it held.
    pub(crate) fn replace(&mut self, peer: &mut PeerAddr, addr: SocketAddr) {
        self.release(*peer);
        *peer = self.keep(addr);
    }

    /// IPv6 peers held, for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_address_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<PeerAddr>(), 8);
    }

    #[test]
    fn addresses_come_back_as_kept_and_v6_entries_are_freed() {
        let mut peers = V6Peers::default();
        let v4: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1%3]:8898".parse().unwrap();
        let a = peers.keep(v4);
        let b = peers.keep(v6);
        assert_eq!(peers.len(), 1, "an IPv4 peer takes no table entry");
        assert_eq!(peers.get(a), v4);
        assert_eq!(peers.get(b), v6);
        if let SocketAddr::V6(back) = peers.get(b) {
            assert_eq!(back.scope_id(), 3);
        }
        let mut c = b;
        peers.replace(&mut c, v4);
        assert_eq!(peers.get(c), v4);
        assert_eq!(peers.len(), 0, "replacing an IPv6 peer frees its entry");
        peers.release(a);
        assert_eq!(peers.len(), 0);
    }
}
