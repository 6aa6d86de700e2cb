//! What an embedding program sees of the reactor: connection ids, events and
//! close reasons.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use super::context::Context;
use crate::protocol::DecodeError;

/// A connection, as the reactor names it to its handler.
///
/// `slot` is the slab index (and mio token); slots are reused after a close,
/// so `serial` — unique per accept for the reactor's whole life (a 64-bit
/// count that a million accepts a second would take half a million years to
/// wrap) — tells a later tenant of the same slot apart. A stale id never
/// reaches the new tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) slot: u32,
    pub(crate) serial: u64,
}

impl ConnId {
    /// The slab slot (reused after close).
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The accept serial number, unique per accept.
    pub fn serial(&self) -> u64 {
        self.serial
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.slot, self.serial)
    }
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Silent for `interval × misses`.
    Evicted {
        /// Whole intervals without a frame.
        misses: u64,
        /// Milliseconds since the last complete frame (or the accept): the
        /// whole silence, stalls of the reactor included.
        idle_ms: u64,
        /// Of `idle_ms`, the part excused because the reactor itself was
        /// kept from running (zero unless such a stall fell inside it).
        excused_ms: u64,
    },
    /// The peer closed its side (EOF) or reset.
    PeerClosed,
    /// The peer sent a malformed frame.
    Protocol(DecodeError),
    /// More than the write-backlog bound of replies was waiting: the peer
    /// sends but does not read.
    SlowReader,
    /// Buffering this connection's split frame or write backlog would have
    /// taken the bytes buffered across all connections past their budget.
    OverBudget,
    /// A read or write failed.
    Io(io::ErrorKind),
    /// The handler or the embedding program asked for it
    /// ([`Context::close`], a command).
    Requested,
    /// The server is shutting down.
    Shutdown,
    /// The peer heartbeated faster than
    /// [`Config::min_heartbeat_interval`](super::Config::min_heartbeat_interval)
    /// allows and ran out of strikes.
    TooFast,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Evicted {
                misses,
                idle_ms,
                excused_ms,
            } => {
                write!(
                    f,
                    "evicted after {misses} missed intervals ({idle_ms} ms idle, \
                     {excused_ms} ms of it excused)"
                )
            }
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::SlowReader => f.write_str("peer does not read its replies"),
            CloseReason::OverBudget => f.write_str("buffer budget exhausted"),
            CloseReason::Io(kind) => write!(f, "io error: {kind}"),
            CloseReason::Requested => f.write_str("closed on request"),
            CloseReason::Shutdown => f.write_str("server shutting down"),
            CloseReason::TooFast => {
                f.write_str("heartbeats faster than the allowed rate, out of strikes")
            }
        }
    }
}

/// Callbacks from the reactor. Every method has a no-op default, so
/// `impl Handler for MyType { type State = (); }` is a working heartbeat
/// server.
///
/// Every callback gets a [`Context`]: it can send to and close any
/// connection by id, broadcast, defer a reply, see how many connections are
/// open and reach each one's [`State`](Self::State). Nothing a callback does
/// through it calls back into the handler: a close asked for there (or
/// forced by a send that finds a peer that does not read) is carried out by
/// the reactor once the callback has returned, and reported through
/// [`on_close`](Self::on_close).
///
/// The callbacks run on the reactor thread, inside the event loop: they must
/// not block.
pub trait Handler {
    /// Per-connection state of the handler's own, kept in the connection's
    /// slot: made with `Default` when the connection is accepted, reached
    /// through [`Context::state`] and [`Context::state_mut`], and handed
    /// back by value to [`on_close`](Self::on_close). `()` costs nothing.
    type State: Default;

    /// Whether [`on_data`](Self::on_data) wants payloads. When `false`, the
    /// reactor never reads a data payload into memory: data frames are
    /// counted and prove their peer alive, but their bodies are skipped, so
    /// a peer that announces a large frame and trickles its body pins no
    /// memory. `true` unless a handler says otherwise; `()` says `false`.
    const WANTS_DATA: bool = true;

    /// A connection was accepted, and nothing of the peer's has been read
    /// yet. Greet it ([`Context::send`]; it follows the configured
    /// greeting, if any) or refuse it ([`Context::close`]: it is closed
    /// before anything it sent is read or answered).
    ///
    /// With [`Config::proxy_protocol`](super::Config::proxy_protocol), it
    /// is called once the connection's PROXY header is whole, and `peer` is
    /// the client the header named (the balancer's own address for a
    /// `LOCAL` or `UNKNOWN` header); a connection closed for its header is
    /// never the handler's, and gets neither this nor `on_close`.
    fn on_connect(&mut self, _ctx: &mut Context<'_, Self::State>, _id: ConnId, _peer: SocketAddr) {}

    /// A data frame (type 2) arrived; `payload` excludes the header.
    /// Answer it now ([`Context::send`] to `id`: the reply leaves after the
    /// replies to everything the peer sent before, and before those to what
    /// it sent after) or later ([`Context::defer`]).
    fn on_data(&mut self, _ctx: &mut Context<'_, Self::State>, _id: ConnId, _payload: &[u8]) {}

    /// A connection was closed; its id is dead from now on, and `state` is
    /// what its slot held.
    fn on_close(
        &mut self,
        _ctx: &mut Context<'_, Self::State>,
        _id: ConnId,
        _state: Self::State,
        _reason: CloseReason,
    ) {
    }
}

/// The plain heartbeat server: no callbacks, no state, and data payloads
/// skipped.
impl Handler for () {
    type State = ();
    const WANTS_DATA: bool = false;
}
