//! The per-connection read and write path — the hot path.
//!
//! Per heartbeat: one `read` into the reactor-wide scratch buffer, decode in
//! place, one store of the "seen" tick, one `write` of all replies for the
//! event. Nothing on this path allocates or formats; keep it that way
//! (`tests/server_allocs.rs` and the loopback benchmark will notice).

use std::io::{ErrorKind, Read};
use std::time::Instant;

use log::trace;

use super::core::account;
use super::{CloseReason, ConnId, Context, Handler, ReadCause, Server};
use crate::protocol::{FrameType, Kind, Payloads, HEARTBEAT_RESPONSE};

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
        let Some(conn) = self.core.conns.get(slot) else {
            return;
        };
        if conn.closing {
            return;
        }
        if writable && conn.pending.is_some() {
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
    /// replies — in the order of the requests, heartbeats and data alike.
    pub(super) fn read_ready(&mut self, slot: usize, why: ReadCause) {
        let Server {
            core,
            scratch,
            handler,
            config,
            unfinished,
            clock,
            stalls,
            ..
        } = self;
        let Some(conn) = core.conns.get_mut(slot) else {
            return;
        };
        if conn.closing {
            return; // closes once the work in progress is done; not read
        }
        if conn.awaiting {
            return self.read_header(slot, why); // proxied.rs
        }
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
        core.out.clear();
        core.current = Some(id);
        let mut heartbeats = 0u64;
        let mut frames = 0u64;
        let mut close: Option<CloseReason> = None;
        let mut full_reads = 0;
        loop {
            let conn = &mut core.conns[slot];
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
            core.stats.bytes_in += n as u64;
            // A split data payload the handler wants is the one thing a read
            // can make the decoder hold (none at all when payloads are
            // skipped: the whole accounting folds away then).
            let held_before = if H::WANTS_DATA {
                conn.decoder.heap_bytes()
            } else {
                0
            };
            // The decoder is taken out while it hands out frames, so the
            // handler's context can reach every connection, this one too.
            let mut decoder = std::mem::take(&mut conn.decoder);
            let result = decoder.feed_with(&scratch[..n], config.max_frame, payloads, |frame| {
                // A close asked for by an earlier frame's callback (or forced
                // by a send that found this peer not reading) ends the
                // connection's input there: the frames after it in the same
                // read are neither handed out nor answered, as `Context`
                // promises of a closing connection.
                if core.conns[slot].closing {
                    return;
                }
                frames += 1;
                match frame.kind {
                    Kind::Known(FrameType::HeartbeatRequest) => {
                        // Answered in place: after the replies to what came
                        // before it, before those to what comes after.
                        heartbeats += 1;
                        core.out.extend_from_slice(&HEARTBEAT_RESPONSE);
                    }
                    Kind::Known(FrameType::HeartbeatResponse) => {
                        core.stats.heartbeat_responses += 1
                    }
                    Kind::Known(FrameType::Data) => {
                        core.stats.data_frames += 1;
                        let mut ctx = Context { core: &mut *core };
                        handler.on_data(&mut ctx, id, frame.payload);
                    }
                    Kind::Reserved(_) => core.stats.reserved_frames += 1,
                }
            });
            let conn = &mut core.conns[slot];
            conn.decoder = decoder;
            // Accounted before the result is looked at: one feed can both
            // complete (and free) a split payload and then fail on the next
            // header.
            if H::WANTS_DATA {
                let held_after = conn.decoder.heap_bytes();
                let over = account(
                    &mut core.stats,
                    held_before,
                    held_after,
                    config.max_buffered,
                );
                if over && !conn.closing {
                    close = Some(CloseReason::OverBudget);
                    break;
                }
            }
            // The handler (or a send that found this peer not reading)
            // closed it: nothing more is read, and the reason it was closed
            // for stands — not what the decoder made of the bytes after it
            // (a malformed header there is no protocol error of a
            // connection already closing).
            if conn.closing {
                break;
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
            let at_ns = clock.nanos(at);
            core.conns[slot].last_seen = at_ns;
            if heartbeats > 0 {
                core.stats.heartbeats += heartbeats;
                trace!("conn={id} heartbeats={heartbeats}");
                // Answered all the same (the replies are staged already): a
                // peer out of strikes is closed once they are out.
                if core.too_fast(slot, heartbeats, at_ns) && close.is_none() {
                    close = Some(CloseReason::TooFast);
                }
            }
        }
        // The replies go out (as far as the kernel takes them) before any
        // close, the handler's own included. A failed write marks the
        // connection closing, with its reason.
        let _ = core.flush_staged();
        core.current = None;
        if let Some(reason) = close {
            self.close_conn(slot, reason);
        }
        self.process_closes();
    }

    /// Writes the connection's backlog and then `fresh`; whatever the kernel
    /// does not take goes to (or stays in) the backlog. Closes the connection
    /// when the backlog would exceed its bound or the write fails.
    pub(super) fn flush(&mut self, slot: usize, fresh: &[u8]) {
        if let Err(failure) = self.core.write(slot, fresh) {
            self.close_conn(slot, failure.reason());
        }
    }
}

/// A reset or broken pipe is the peer going away, not our failure.
pub(super) fn io_close_reason(kind: ErrorKind) -> CloseReason {
    match kind {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            CloseReason::PeerClosed
        }
        kind => CloseReason::Io(kind),
    }
}
