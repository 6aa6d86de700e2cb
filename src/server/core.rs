//! The part of the server a handler may act on: the connections, their
//! output, and the closes asked for. Everything here is reached through a
//! [`Context`](super::Context) (in a callback, from
//! [`Server::context`](super::Server::context), or by a command); the
//! reactor's own machinery — poll, wheel, clock, handler — is not.
//!
//! A send writes at once when nothing waits before it; otherwise it queues
//! behind what does. It never closes a connection and never calls the
//! handler: a peer found not to read is *marked* closing, and the reactor
//! closes it (and calls `on_close`) once the callback, command or call in
//! progress is done.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use slab::Slab;

use super::conn::Conn;
use super::handler::{CloseReason, ConnId};
use super::peer::V6Peers;
use super::stats::Stats;
use crate::nonblocking::write_some;
use crate::protocol::{self, FrameType, HEADER_LEN};
use crate::strikes::{Rate, RateRule, Verdict};
use crate::SendError;

/// Staged replies for the connection being read are written once they
/// reach this much, rather than at the end of the read: a handler that
/// answers small requests with large replies cannot grow the staging
/// buffer past it (plus one frame).
const STAGE_FLUSH: usize = 64 * 1024;

/// The bounds a send is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_frame: usize,
    pub max_backlog: usize,
    pub max_buffered: usize,
}

/// Why a write to one connection failed: the connection must close.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Failure {
    SlowReader,
    OverBudget,
    Io(std::io::ErrorKind),
}

impl Failure {
    /// The reason the connection is closed with.
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            Failure::SlowReader => CloseReason::SlowReader,
            Failure::OverBudget => CloseReason::OverBudget,
            Failure::Io(kind) => super::io::io_close_reason(kind),
        }
    }

    /// What the send that found it returns: the frame went nowhere either
    /// way, and the connection is closing.
    fn send_error(self) -> SendError {
        match self {
            Failure::SlowReader | Failure::OverBudget => SendError::Backlog,
            Failure::Io(_) => SendError::Closed,
        }
    }
}

pub(crate) struct Core<S> {
    pub(crate) conns: Slab<Conn<S>>,
    pub(crate) stats: Stats,
    pub(crate) limits: Limits,
    /// Replies staged for the connection being read (`current`): written
    /// in one `write` when the read is done, after what the connection
    /// already has waiting.
    pub(crate) out: Vec<u8>,
    pub(crate) current: Option<ConnId>,
    /// Closes asked for and not yet carried out, in the order asked.
    pub(crate) closing: Vec<(ConnId, CloseReason)>,
    /// Connections in `conns` marked closing. Not `closing.len()`: while
    /// the closes are carried out, that list still holds the marks of
    /// connections already gone (it is cleared once all are done), and a
    /// close carried out directly (an eviction) may leave a mark behind.
    pub(crate) marked: usize,
    /// One frame being encoded (reused: a send allocates nothing once it
    /// has grown to the largest frame sent).
    frame: Vec<u8>,
    /// A peer is being admitted: what on_connect sends is staged, not
    /// written, until it has decided (it may refuse).
    pub(crate) admitting: bool,
    /// Connections in `conns` still awaiting their PROXY header: not yet
    /// the handler's, so not counted open. Never marked closing as well (a
    /// connection the handler does not know is sent nothing and closed
    /// directly).
    pub(crate) awaiting: usize,
    /// The IPv6 peers of open connections (an IPv4 one is kept inline in
    /// its `Conn`: see `peer.rs`).
    pub(crate) v6: V6Peers,
    /// With a minimum heartbeat interval: the rule, and each slot's bucket
    /// (16 bytes a slot up to the most slots ever in use; empty without
    /// it, so a server without the flag pays nothing).
    pub(crate) rate: Option<RateRule>,
    pub(crate) rates: Vec<Rate>,
}

/// Deferred replies are numbered across every server in the process, so a
/// `Deferred` handed to the wrong server finds no hold there.
static NEXT_TICKET: AtomicU64 = AtomicU64::new(0);

/// A reply the handler will produce later: its place in the connection's
/// output is held, and what the peer is sent after it waits behind it.
/// Fill it with [`Context::reply`](super::Context::reply) (or a command), or
/// give it up with [`Context::discard`](super::Context::discard); one never
/// filled keeps that connection's later replies waiting until it closes.
#[derive(Debug, PartialEq, Eq, Hash)]
#[must_use = "a deferred reply holds up every later reply to its peer until it is filled or discarded"]
pub struct Deferred {
    pub(crate) conn: ConnId,
    pub(crate) ticket: u64,
}

impl Deferred {
    /// The connection the reply is for.
    pub fn conn(&self) -> ConnId {
        self.conn
    }
}

impl<S> Core<S> {
    pub(crate) fn new(limits: Limits) -> Core<S> {
        Core {
            conns: Slab::new(),
            stats: Stats::default(),
            limits,
            out: Vec::with_capacity(STAGE_FLUSH),
            current: None,
            closing: Vec::new(),
            marked: 0,
            frame: Vec::new(),
            admitting: false,
            awaiting: 0,
            v6: V6Peers::default(),
            rate: None,
            rates: Vec::new(),
        }
    }

    /// The slot of `id` if it is open, admitted and not closing.
    pub(crate) fn open_slot(&self, id: ConnId) -> Option<usize> {
        self.conns
            .get(id.slot as usize)
            .filter(|c| c.serial == id.serial && !c.closing && !c.awaiting)
            .map(|_| id.slot as usize)
    }

    /// The peer of the connection in `slot`: the client its PROXY header
    /// named, once that is in, or else the socket's peer as accepted.
    pub(crate) fn peer(&self, slot: usize) -> SocketAddr {
        self.v6.get(self.conns[slot].peer)
    }

    /// Gives the connection in `slot` a full bucket of heartbeats as of
    /// `now_ns`, when a minimum heartbeat interval is set.
    pub(crate) fn start_rate(&mut self, slot: usize, now_ns: u64) {
        if let Some(rule) = &self.rate {
            if self.rates.len() <= slot {
                self.rates.resize(slot + 1, Rate::default());
            }
            self.rates[slot] = Rate::new(rule, now_ns);
        }
    }

    /// Accounts `heartbeats` read from `slot` at `now_ns` against the
    /// minimum heartbeat interval, counting strikes; whether the peer is out
    /// of them.
    pub(crate) fn too_fast(&mut self, slot: usize, heartbeats: u64, now_ns: u64) -> bool {
        let (Some(rule), Some(rate)) = (&self.rate, self.rates.get_mut(slot)) else {
            return false;
        };
        for _ in 0..heartbeats {
            match rate.heartbeat(rule, now_ns) {
                Verdict::Fine => {}
                Verdict::Struck(_) => self.stats.strikes += 1,
                Verdict::Out => {
                    self.stats.strikes += 1;
                    return true;
                }
            }
        }
        false
    }

    /// Marks `slot` to be closed for `reason` once the work in progress is
    /// done; the first reason asked for wins.
    pub(crate) fn mark_closing(&mut self, slot: usize, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(slot) {
            debug_assert!(
                !conn.awaiting,
                "slot {slot} marked closing ({reason}) while awaiting its PROXY header"
            );
            if !conn.closing {
                conn.closing = true;
                self.marked += 1;
                self.closing.push((
                    ConnId {
                        slot: slot as u32,
                        serial: conn.serial,
                    },
                    reason,
                ));
            }
        }
    }

    /// Connections open, admitted and not closing.
    pub(crate) fn open_count(&self) -> usize {
        debug_assert!(
            self.marked + self.awaiting <= self.conns.len(),
            "{} marked closing and {} awaiting a header of {} connections",
            self.marked,
            self.awaiting,
            self.conns.len()
        );
        self.conns.len() - self.marked - self.awaiting
    }

    /// Encodes a data frame into `self.frame`.
    fn encode(&mut self, payload: &[u8]) -> Result<(), SendError> {
        if HEADER_LEN + payload.len() > self.limits.max_frame {
            return Err(SendError::TooLarge);
        }
        self.frame.clear();
        protocol::encode_frame(FrameType::Data, payload, &mut self.frame)
            .map_err(|_| SendError::TooLarge)
    }

    /// Sends a data frame to `id`.
    pub(crate) fn send(&mut self, id: ConnId, payload: &[u8]) -> Result<(), SendError> {
        self.encode(payload)?;
        let slot = self.open_slot(id).ok_or(SendError::Closed)?;
        let frame = std::mem::take(&mut self.frame);
        let sent = self.send_bytes(slot, &frame);
        self.frame = frame;
        sent
    }

    /// Sends the data frame to every connection open and not closing;
    /// returns how many it was queued for (a peer found not to read is
    /// marked closing and not counted).
    pub(crate) fn broadcast(&mut self, payload: &[u8]) -> Result<usize, SendError> {
        self.encode(payload)?;
        let frame = std::mem::take(&mut self.frame);
        let mut reached = 0;
        let mut staged = None;
        // Peers found not to read; no allocation unless there are some.
        let mut failed = Vec::new();
        let Core {
            conns,
            stats,
            limits,
            current,
            ..
        } = self;
        for (slot, conn) in conns.iter_mut() {
            if conn.closing || conn.awaiting {
                continue;
            }
            if current.is_some_and(|c| c.slot as usize == slot) {
                // Staged after the loop, within the staging bound.
                staged = Some(slot);
                continue;
            }
            match write_conn(conn, stats, *limits, &frame) {
                Ok(()) => reached += 1,
                Err(failure) => failed.push((slot, failure.reason())),
            }
        }
        for (slot, reason) in failed {
            self.mark_closing(slot, reason);
        }
        if let Some(slot) = staged {
            if self.send_bytes(slot, &frame).is_ok() {
                reached += 1;
            }
        }
        self.frame = frame;
        Ok(reached)
    }

    /// Queues raw bytes for `slot` (a frame, or a greeting): staged if it
    /// is the connection being read, written otherwise.
    pub(crate) fn send_bytes(&mut self, slot: usize, bytes: &[u8]) -> Result<(), SendError> {
        if self.current.is_some_and(|c| c.slot as usize == slot) {
            if self.admitting && self.out.len() + bytes.len() > self.limits.max_backlog {
                // Nothing may go out before on_connect has decided (it may
                // yet refuse), so the staging is held to a backlog's bound.
                self.mark_closing(slot, CloseReason::SlowReader);
                return Err(SendError::Backlog);
            }
            self.out.extend_from_slice(bytes);
            if self.out.len() < STAGE_FLUSH || self.admitting {
                return Ok(());
            }
            return self.flush_staged();
        }
        let waiting = self.conns[slot].pending.as_ref().map_or(0, |p| p.len());
        if waiting > 0 && waiting + bytes.len() > self.limits.max_backlog {
            // Refused before any of it is written: a frame is not sent in
            // part when the backlog alone says it cannot be.
            self.mark_closing(slot, CloseReason::SlowReader);
            return Err(SendError::Backlog);
        }
        match self.write(slot, bytes) {
            Ok(()) => Ok(()),
            Err(failure) => {
                self.mark_closing(slot, failure.reason());
                Err(failure.send_error())
            }
        }
    }

    /// Writes what is staged for the connection being read.
    pub(crate) fn flush_staged(&mut self) -> Result<(), SendError> {
        let Some(id) = self.current else {
            return Ok(());
        };
        let out = std::mem::take(&mut self.out);
        let result = self.write(id.slot as usize, &out);
        self.out = out;
        self.out.clear();
        result.map_err(|failure| {
            self.mark_closing(id.slot as usize, failure.reason());
            failure.send_error()
        })
    }

    /// Writes what waits for `slot` and then `fresh`; what the kernel does
    /// not take is queued, within the connection's backlog bound and the
    /// budget shared by all. On a failure nothing of `fresh` is queued and
    /// the connection must close.
    pub(crate) fn write(&mut self, slot: usize, fresh: &[u8]) -> Result<(), Failure> {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Ok(());
        };
        write_conn(conn, &mut self.stats, self.limits, fresh)
    }

    /// Holds a place for a reply to `id` after everything queued for it so
    /// far (staged replies included).
    pub(crate) fn defer(&mut self, id: ConnId) -> Result<Deferred, SendError> {
        let slot = self.open_slot(id).ok_or(SendError::Closed)?;
        let ticket = NEXT_TICKET.fetch_add(1, Ordering::Relaxed);
        let limits = self.limits;
        let conn = &mut self.conns[slot];
        let before = held(conn);
        let pending = conn.pending.get_or_insert_with(Default::default);
        if self.current == Some(id) && !self.out.is_empty() {
            // What is staged came before the request being deferred: it
            // goes first, and the hold after it. Moved, not written: the
            // read's own write sends it (and while a peer is being
            // admitted, nothing goes out before on_connect has decided).
            pending.push(&self.out);
            self.out.clear();
        }
        let held_ok = pending.hold(ticket);
        if pending.is_empty() {
            conn.pending = None;
        }
        let over = account(&mut self.stats, before, held(conn), limits.max_buffered);
        if over {
            self.mark_closing(slot, CloseReason::OverBudget);
            return Err(SendError::Backlog);
        }
        if !held_ok {
            return Err(SendError::Backlog);
        }
        Ok(Deferred { conn: id, ticket })
    }

    /// Fills a deferred reply with a data frame carrying `payload` (or with
    /// nothing, for `None`), and writes what that lets go. A payload too
    /// large for a frame gives the hold up (nothing is sent in its place),
    /// so the peer's later replies are not held for ever by a reply that
    /// can never be sent.
    pub(crate) fn fill(
        &mut self,
        deferred: Deferred,
        payload: Option<&[u8]>,
    ) -> Result<(), SendError> {
        let encoded = match payload {
            Some(payload) => self.encode(payload),
            None => {
                self.frame.clear();
                Ok(())
            }
        };
        if encoded.is_err() {
            self.frame.clear();
        }
        let slot = self.open_slot(deferred.conn).ok_or(SendError::Closed)?;
        let limits = self.limits;
        let conn = &mut self.conns[slot];
        let before = held(conn);
        let filled = conn
            .pending
            .as_mut()
            .is_some_and(|p| p.fill(deferred.ticket, &self.frame));
        if account(
            &mut self.stats,
            before,
            held(&self.conns[slot]),
            limits.max_buffered,
        ) {
            self.mark_closing(slot, CloseReason::OverBudget);
            return Err(SendError::Backlog);
        }
        if !filled {
            return Err(SendError::Closed);
        }
        encoded?;
        if self.current.is_some_and(|c| c.slot as usize == slot) {
            // The staged replies follow it; they go with the read's write,
            // which judges what the kernel leaves against the bound.
            return Ok(());
        }
        // Judged after the kernel was offered what the fill let go, as any
        // write is: a full-size reply to a peer that reads is no backlog.
        self.write(slot, &[]).map_err(|failure| {
            self.mark_closing(slot, failure.reason());
            failure.send_error()
        })
    }
}

/// Writes what waits for `conn` and then `fresh` (see [`Core::write`]).
fn write_conn<S>(
    conn: &mut Conn<S>,
    stats: &mut Stats,
    limits: Limits,
    fresh: &[u8],
) -> Result<(), Failure> {
    let before = held(conn);
    let mut result = Ok(());
    if let Some(pending) = conn.pending.as_mut() {
        let writable = pending.writable();
        if !writable.is_empty() {
            match write_some(&mut conn.stream, writable) {
                Ok(written) => {
                    stats.bytes_out += written as u64;
                    pending.consumed(written);
                }
                Err(kind) => result = Err(Failure::Io(kind)),
            }
        }
        if result.is_ok() && pending.is_empty() {
            conn.pending = None;
        }
    }
    let mut rest = fresh;
    if result.is_ok() && conn.pending.is_none() && !rest.is_empty() {
        match write_some(&mut conn.stream, rest) {
            Ok(written) => {
                stats.bytes_out += written as u64;
                rest = &rest[written..];
            }
            Err(kind) => result = Err(Failure::Io(kind)),
        }
    }
    if result.is_ok() && !rest.is_empty() {
        let pending = conn.pending.get_or_insert_with(Default::default);
        if pending.len() + rest.len() > limits.max_backlog {
            result = Err(Failure::SlowReader);
        } else {
            pending.push(rest);
        }
    }
    // A filled hold can leave more waiting than the bound (the fill is
    // spliced in before the kernel is offered it): judged on what the
    // kernel left.
    if result.is_ok()
        && conn
            .pending
            .as_ref()
            .is_some_and(|p| p.len() > limits.max_backlog)
    {
        result = Err(Failure::SlowReader);
    }
    let over = account(stats, before, held(conn), limits.max_buffered);
    if over && result.is_ok() {
        result = Err(Failure::OverBudget);
    }
    result
}

/// Heap bytes a connection holds: a split data payload and what waits to
/// be written, by capacity — what the buffer budget counts.
pub(crate) fn held<S>(conn: &Conn<S>) -> usize {
    let pending = conn.pending.as_ref().map_or(0, |p| p.heap_bytes());
    conn.decoder.heap_bytes() + pending
}

/// Moves the gauge of bytes buffered by one connection's change from
/// `before` to `after` bytes held; true when that growth took the total past
/// `budget` — the connection that grew is the one to close (the overshoot is
/// at most that one read or write, freed at once with it).
pub(crate) fn account(stats: &mut Stats, before: usize, after: usize, budget: usize) -> bool {
    stats.buffered = stats.buffered - before as u64 + after as u64;
    if after <= before {
        return false;
    }
    stats.peak_buffered = stats.peak_buffered.max(stats.buffered);
    stats.buffered > budget as u64
}
