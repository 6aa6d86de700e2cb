//! The per-connection read and write path — the hot path.
//!
//! Per heartbeat: one `read` into the reactor-wide scratch buffer, decode in
//! place, one store of the "seen" tick, one `write` of all replies for the
//! event. Nothing on this path allocates or formats; keep it that way
//! (`tests/server_allocs.rs` and the loopback benchmark will notice).

use std::io::{ErrorKind, Read};
use std::time::Instant;

use log::trace;

use super::{held, push_heartbeat_replies, CloseReason, ConnId, Handler, ReadCause, Reply, Server};
use crate::nonblocking::write_some;
use crate::protocol::{FrameType, Kind, Payloads};

impl<H: Handler> Server<H> {
    pub(super) fn connection_ready(
        &mut self,
        slot: usize,
        readable: bool,
        writable: bool,
        closed: bool,
    ) {
        // Events for a slot we no longer hold (closed earlier in this batch)
        // are normal: mio may still report them. Ignore. If the slot was
        // closed *and* reused by an accept in the same batch, the stale event
        // reaches the new tenant; that is harmless, because an event only
        // makes us try a read (WouldBlock if there is nothing) and flush a
        // backlog the new tenant cannot have yet.
        if !self.conns.contains(slot) {
            return;
        }
        if writable && self.conns[slot].backlog.is_some() {
            self.flush(slot, &[]);
        }
        if readable || closed {
            self.read_ready(slot, ReadCause::Event { closed });
        }
    }

    /// Reads again from connections that hit their read budget last turn
    /// (`again`, left empty); those that hit it again wait for the next.
    pub(super) fn resume_unfinished(&mut self, again: &mut Vec<ConnId>) {
        for id in again.drain(..) {
            if self.is_open(id) {
                self.read_ready(id.slot as usize, ReadCause::Resume);
            }
        }
    }

    /// Reads what the kernel holds for `slot` (up to the read budget), hands
    /// out its frames, stamps it seen if a frame completed, and writes the
    /// replies.
    pub(super) fn read_ready(&mut self, slot: usize, why: ReadCause) {
        let Server {
            conns,
            scratch,
            out,
            stats,
            handler,
            config,
            unfinished,
            clock,
            stalls,
            ..
        } = self;
        let Some(conn) = conns.get_mut(slot) else {
            return;
        };
        // With the FIN (or an error) signalled, a short read does not prove
        // the socket drained: keep reading to see the EOF.
        let closed = match why {
            ReadCause::Event { closed } if conn.unfinished => {
                // Already due a resume this turn: that read covers this
                // event too, within the one budget a turn allows.
                conn.peer_closed |= closed;
                return;
            }
            ReadCause::Event { closed } => closed,
            ReadCause::Resume => {
                conn.unfinished = false;
                conn.peer_closed
            }
            // Due a resume already: it is being read, a budget a turn.
            // Reading more now would spend a second budget; the verdict
            // waits for the resume instead.
            ReadCause::Evidence if conn.unfinished => return,
            ReadCause::Evidence => conn.peer_closed,
        };
        let payloads = if H::WANTS_DATA {
            Payloads::Deliver
        } else {
            Payloads::Skip
        };
        let id = ConnId {
            slot: slot as u32,
            serial: conn.serial,
        };
        out.clear();
        let mut heartbeats = 0usize;
        let mut frames = 0u64;
        let mut close: Option<CloseReason> = None;
        let mut close_after_write = false;
        let mut full_reads = 0;
        loop {
            let n = match conn.stream.read(scratch) {
                Ok(0) => {
                    close = Some(CloseReason::PeerClosed);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    close = Some(io_close_reason(e.kind()));
                    break;
                }
            };
            stats.bytes_in += n as u64;
            // A split data payload the handler wants is the one thing a read
            // can make the decoder hold (none at all when payloads are
            // skipped: the whole accounting folds away then).
            let held_before = if H::WANTS_DATA {
                conn.decoder.heap_bytes()
            } else {
                0
            };
            let result =
                conn.decoder
                    .feed_with(&scratch[..n], config.max_frame, payloads, |frame| {
                        frames += 1;
                        match frame.kind {
                            Kind::Known(FrameType::HeartbeatRequest) => heartbeats += 1,
                            Kind::Known(FrameType::HeartbeatResponse) => {
                                stats.heartbeat_responses += 1
                            }
                            Kind::Known(FrameType::Data) => {
                                stats.data_frames += 1;
                                let mut reply = Reply {
                                    out: &mut *out,
                                    max_frame: config.max_frame,
                                    close: false,
                                };
                                handler.on_data(id, frame.payload, &mut reply);
                                close_after_write |= reply.close;
                            }
                            Kind::Reserved(_) => stats.reserved_frames += 1,
                        }
                    });
            // Accounted before the result is looked at: one feed can both
            // complete (and free) a split payload and then fail on the next
            // header.
            if H::WANTS_DATA {
                let held_after = conn.decoder.heap_bytes();
                if account(stats, held_before, held_after, config.max_buffered) {
                    close = Some(CloseReason::OverBudget);
                    break;
                }
            }
            if let Err(e) = result {
                close = Some(CloseReason::Protocol(e));
                break;
            }
            // A short read drained the socket: the next byte to arrive raises
            // a new edge, so the EAGAIN read that would follow is skipped —
            // one syscall saved per heartbeat. Not when the peer's FIN or an
            // error came with this event: keep reading to see it.
            if n < scratch.len() && !closed {
                break;
            }
            if n == scratch.len() {
                full_reads += 1;
                if full_reads == super::READ_BUDGET {
                    if !conn.unfinished {
                        conn.unfinished = true;
                        unfinished.push(id);
                    }
                    conn.peer_closed = closed;
                    break;
                }
            }
        }
        // One clock read per read, after it: a stamp is never earlier than
        // the frames it vouches for, even late in a long turn (a stamp from
        // the wakeup could be, by up to the turn, and so could an eviction
        // based on it). It is also the stall measure's progress point.
        let at = Instant::now();
        stalls.progress(at);
        if frames > 0 {
            // The read path only stamps; the wheel is not touched here.
            conn.last_seen = clock.nanos(at);
        }
        if heartbeats > 0 {
            // Heartbeat replies carry no sequence number, so they follow
            // whatever data frames the handler queued during this event.
            push_heartbeat_replies(out, heartbeats);
            stats.heartbeats += heartbeats as u64;
            trace!("conn={id} heartbeats={heartbeats}");
        }
        let pending = std::mem::take(out);
        if !pending.is_empty() {
            self.flush(slot, &pending);
        }
        self.out = pending;
        if let Some(reason) = close {
            self.close_conn(slot, reason);
        } else if close_after_write {
            self.close_conn(slot, CloseReason::Requested);
        }
    }

    /// Writes the connection's backlog and then `fresh`; whatever the kernel
    /// does not take goes to (or stays in) the backlog. Closes the connection
    /// when the backlog would exceed its bound or the write fails.
    pub(super) fn flush(&mut self, slot: usize, fresh: &[u8]) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let max_backlog = self.config.max_backlog;
        let held_before = held(conn);
        let mut failure: Option<Failure> = None;
        if let Some(backlog) = conn.backlog.as_mut() {
            match write_some(&mut conn.stream, backlog) {
                Ok(written) => {
                    self.stats.bytes_out += written as u64;
                    backlog.drain(..written);
                }
                Err(kind) => failure = Some(Failure::Io(kind)),
            }
            if failure.is_none() && backlog.is_empty() {
                conn.backlog = None;
            }
        }
        let mut rest = fresh;
        if failure.is_none() && conn.backlog.is_none() && !rest.is_empty() {
            match write_some(&mut conn.stream, rest) {
                Ok(written) => {
                    self.stats.bytes_out += written as u64;
                    rest = &rest[written..];
                }
                Err(kind) => failure = Some(Failure::Io(kind)),
            }
        }
        if failure.is_none() && !rest.is_empty() {
            let backlog = conn.backlog.get_or_insert_with(Default::default);
            if backlog.len() + rest.len() > max_backlog {
                failure = Some(Failure::SlowReader);
            } else {
                backlog.extend_from_slice(rest);
            }
        }
        let over = account(
            &mut self.stats,
            held_before,
            held(conn),
            self.config.max_buffered,
        );
        if over && failure.is_none() {
            failure = Some(Failure::OverBudget);
        }
        match failure {
            None => {}
            Some(Failure::SlowReader) => self.close_conn(slot, CloseReason::SlowReader),
            Some(Failure::OverBudget) => self.close_conn(slot, CloseReason::OverBudget),
            Some(Failure::Io(kind)) => self.close_conn(slot, io_close_reason(kind)),
        }
    }
}

/// Moves the gauge of bytes buffered by one connection's change from
/// `before` to `after` bytes held; true when that growth took the total past
/// `budget` — the connection that grew is the one to close (the overshoot is
/// at most that one read or write, freed at once with it).
fn account(stats: &mut super::Stats, before: usize, after: usize, budget: usize) -> bool {
    stats.buffered = stats.buffered - before as u64 + after as u64;
    if after <= before {
        return false;
    }
    stats.peak_buffered = stats.peak_buffered.max(stats.buffered);
    stats.buffered > budget as u64
}

enum Failure {
    SlowReader,
    OverBudget,
    Io(ErrorKind),
}

/// A reset or broken pipe is the peer going away, not our failure.
fn io_close_reason(kind: ErrorKind) -> CloseReason {
    match kind {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            CloseReason::PeerClosed
        }
        kind => CloseReason::Io(kind),
    }
}
