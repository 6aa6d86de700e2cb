//! One connection's state, kept small: at 20,000 connections per process
//! every byte here is 20 KB of resident memory.
//!
//! The peer's address is kept, in 8 bytes (`peer.rs`): the kernel forgets
//! it once the connection is reset, which is when a close line most needs
//! it. With the PROXY protocol it is the client the header named, once the
//! header is in.
//!
//! While a connection is idle it owns no heap memory: the decoder keeps a
//! split header inline and only buffers a data frame's body while it is
//! actually split, and `pending` exists only while the kernel's send buffer
//! is full or a deferred reply holds its place. The handler's own state is
//! kept here too, and costs nothing when it is `()`.

use mio::net::TcpStream;

use super::output::Pending;
use super::peer::PeerAddr;
use crate::protocol::Decoder;
use crate::wheel::TimerId;

pub(crate) struct Conn<S> {
    pub(crate) stream: TcpStream,
    pub(crate) serial: u64,
    /// When the last complete frame (or the accept) was read, in
    /// nanoseconds since the reactor's clock began: exact, so that the
    /// deadline derived from it is rounded once, and `idle=` in the eviction
    /// line is never understated.
    pub(crate) last_seen: u64,
    /// The one wheel entry this connection holds: its next liveness check.
    pub(crate) timer: TimerId,
    /// Who is at the other end, for log lines and `Context::peer_addr`;
    /// an IPv6 address is in the core's table (`Core::v6`), and released
    /// with the connection.
    pub(crate) peer: PeerAddr,
    pub(crate) decoder: Decoder,
    /// Bytes the kernel would not take yet, and places held for deferred
    /// replies; `None` in the normal case. Boxed on purpose: 8 bytes per
    /// idle connection, for the price of one more allocation when a
    /// backlog actually forms.
    pub(crate) pending: Option<Box<Pending>>,
    /// On the reactor's list of connections that used up their read budget
    /// with data left, to be read again next turn (so at most once there,
    /// and not read for an event before then: one budget per turn).
    pub(crate) unfinished: bool,
    /// The peer's FIN or an error was signalled while reads were left over:
    /// a short read does not prove the socket drained, keep reading to EOF.
    /// (Both flags sit in what was padding: the struct does not grow.)
    pub(crate) peer_closed: bool,
    /// A close was asked for (by the handler, a command, or a send that
    /// found the peer does not read) and waits for the reactor to carry it
    /// out: nothing more is read from it or sent to it.
    pub(crate) closing: bool,
    /// With the PROXY protocol on, its header is not complete yet: the
    /// handler has not been told of it, and nothing is read from it as
    /// frames (see `proxied.rs`). (This flag too sits in what was padding.)
    pub(crate) awaiting: bool,
    /// The handler's state for this connection.
    pub(crate) state: S,
}

#[cfg(test)]
mod size {
    use super::*;

    /// Per-connection memory is the product's selling point: a slab entry is
    /// this struct plus slab's tag, and the wheel holds one more node.
    #[test]
    fn a_connection_stays_small() {
        // 64 bytes in a release build: 56 before the peer's address was
        // kept. In a debug build mio's stream also carries a selector id
        // for its own checks (16 bytes, not 4), and the padding moves with
        // it: 80.
        let bound = if cfg!(debug_assertions) { 80 } else { 64 };
        let conn = std::mem::size_of::<Conn<()>>();
        assert!(conn <= bound, "Conn grew to {conn} bytes");
        let node = crate::wheel::node_size::<super::super::Timer>();
        assert!(node <= 32, "a wheel node grew to {node} bytes");
    }
}
