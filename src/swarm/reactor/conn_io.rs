//! Socket IO for one swarm connection: connect completion, the read path
//! (replies, round trips, flood refills), writes from the shared request
//! template, and closing with honest accounting of unanswered requests.

use std::io::{self, Read, Write};
use std::time::Instant;

use super::{Link, Phase, Swarm};
use crate::client::machine::{Proof, Reason, State};
use crate::client::socket::{connect_progress, ConnectProgress};
use crate::swarm::conn::Matched;
use crate::time::Tick;

/// Reads per connection per turn, as in the server: at most 4 × 64 KiB.
const READ_BUDGET: u32 = 4;

impl Swarm {
    /// Readiness for `slot`: connect completion, replies, writable again.
    /// `closed` is the event's read-closed or error flag.
    pub(super) fn on_ready(&mut self, slot: usize, closed: bool) {
        let instant = Instant::now();
        let (now, seen) = self.clock.tick_range(instant);
        let now_us = self.rtt_clock.tick_at(instant) as u32;
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(stream) = conn.stream.as_ref() else {
            return; // closed earlier in this batch
        };
        if conn.link == Link::Connecting {
            match connect_progress(stream) {
                ConnectProgress::Pending => return,
                ConnectProgress::Failed(e) => {
                    // The next address of this attempt, if one is left.
                    if !self.next_address(slot, now) {
                        self.conns[slot].attempt.failed(&mut self.addrs);
                        self.conns[slot]
                            .machine
                            .handle_connect_failed(now, e.kind());
                    }
                }
                ConnectProgress::Connected => {
                    if let Err(e) = self.socket_options.apply(stream) {
                        // Kept: the heartbeats still guard it. Logged once.
                        self.counters.sockopt_errors += 1;
                        if self.counters.sockopt_errors == 1 {
                            log::warn!("socket option refused: {e}; connections are kept, further refusals counted");
                        }
                    }
                    {
                        if let Ok(addr) = stream.peer_addr() {
                            self.addrs.succeeded(addr);
                        }
                        conn.link = Link::Up;
                        conn.answered = false;
                        conn.churned = false;
                        self.counters.connecting -= 1;
                        self.counters.connected += 1;
                        self.counters.connects += 1;
                        self.counters.peak_connected =
                            self.counters.peak_connected.max(self.counters.connected);
                        log::debug!(
                            "client {slot}: connected{}",
                            Peer(conn.attempt.last(&self.addrs))
                        );
                        conn.machine.handle_connected(seen);
                        self.connect_done(slot, now, true);
                        if let Some(depth) = self.config.flood {
                            self.queue_requests(slot, depth, now_us);
                        }
                    }
                }
            }
            if self.conns[slot].link != Link::Up {
                self.settle(slot, now, now_us);
                return;
            }
        }
        // The event that brought us here came with the wakeup: its reply
        // had arrived by then.
        self.read(slot, closed, seen, now_us, Some(self.wake_us));
        self.settle(slot, now, now_us);
    }

    /// Drains the socket. The per-reply path: no allocation, no formatting.
    ///
    /// As in the server, a short read proves the socket drained (the next
    /// byte raises a new edge), so the `EAGAIN` read is skipped unless the
    /// event also carried the peer's FIN or an error (`closed`).
    ///
    /// At most [`READ_BUDGET`] reads: a server that floods faster than the
    /// swarm reads would otherwise hold the whole swarm inside one
    /// connection's loop. Past it the connection is read on next turn
    /// (`resume_reads`); until then other reads of it wait for that one.
    ///
    /// `reported` is the wakeup (µs) whose readiness event led here, if
    /// one did: a reply to a request sent before it is timed to it, not to
    /// when the turn got round to reading it. What the turn took is the
    /// swarm's own delay (`swarm_turn_us`), and a stop in the middle of a
    /// turn is found only at the next wakeup, too late to be taken out of
    /// replies read in the rest of that turn.
    pub(super) fn read(
        &mut self,
        slot: usize,
        closed: bool,
        seen: Tick,
        now_us: u32,
        reported: Option<u64>,
    ) {
        let flood = self.config.flood.is_some() && self.phase == Phase::Running;
        let mut reads = 0;
        loop {
            let conn = &mut self.conns[slot];
            if conn.unfinished {
                return;
            }
            if reads == READ_BUDGET {
                conn.unfinished = true;
                self.unfinished.push(slot);
                return;
            }
            reads += 1;
            let Some(stream) = conn.stream.as_mut() else {
                return;
            };
            let mut drained = false;
            let failure = match stream.read(&mut self.scratch) {
                Ok(0) => Some(Reason::PeerClosed),
                Ok(n) => {
                    drained = n < self.scratch.len() && !closed;
                    let out = conn.reader.read(
                        &self.scratch[..n],
                        &self.reply,
                        self.config.max_frame,
                        self.config.lenient,
                    );
                    conn.machine.handle_received(seen, Proof::Bytes);
                    conn.answered = true;
                    let mut answered = 0;
                    for _ in 0..out.replies {
                        let proof = match conn.inflight.pop() {
                            Matched::Stamped(sent) => {
                                // Stamps are 32-bit (71 minutes); the stall
                                // log and the wakeup are on the whole clock.
                                let now = self.wake_us
                                    + u64::from(now_us.wrapping_sub(self.wake_us as u32));
                                let sent = now.saturating_sub(u64::from(now_us.wrapping_sub(sent)));
                                let received = match reported {
                                    Some(at) if at > sent => at,
                                    _ => now,
                                };
                                let stalled = self.stall_log.since(sent);
                                if stalled > 0 {
                                    self.counters.stall_adjusted_replies += 1;
                                }
                                let rtt = (received - sent).saturating_sub(stalled);
                                self.rtts.record(rtt.max(1));
                                answered += 1;
                                Proof::Reply
                            }
                            Matched::Unstamped => {
                                self.counters.untimed_replies += 1;
                                answered += 1;
                                Proof::Reply
                            }
                            // A reply nobody asked for is a whole frame, so
                            // proof of life, but it answers nothing: it is
                            // counted, fails the run, and — in flood mode —
                            // sends nothing, so a server that answers twice
                            // cannot make the swarm amplify its own load.
                            Matched::Unsolicited => {
                                self.counters.unexpected_replies += 1;
                                Proof::Frame
                            }
                        };
                        conn.machine.handle_received(seen, proof);
                    }
                    self.in_flight -= answered as u64;
                    self.counters.replies += answered as u64;
                    if out.others > 0 {
                        self.counters.other_frames += out.others as u64;
                        conn.machine.handle_received(seen, Proof::Frame);
                    }
                    self.counters.dropped_bytes += out.dropped;
                    if flood && answered > 0 {
                        self.queue_requests(slot, answered, now_us);
                    }
                    out.error
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
                Err(e) => Some(Reason::Io(e.kind())),
            };
            if let Some(reason) = failure {
                self.close(slot, seen, reason);
                return;
            }
            if drained {
                return;
            }
        }
    }

    /// ` peer=ADDR` for a line about the connection in `slot`: the server
    /// address its attempt connected to (kept as an index, not asked of
    /// the kernel, which forgets it once the connection is reset).
    pub(super) fn peer(&self, slot: usize) -> Peer {
        Peer(self.conns[slot].attempt.last(&self.addrs))
    }

    /// The connection ended: through the machine while running, directly
    /// while draining (the machine is stopped then).
    pub(super) fn close(&mut self, slot: usize, now: Tick, reason: Reason) {
        if matches!(reason, Reason::Protocol(_) | Reason::UnexpectedReply) {
            self.counters.protocol_errors += 1;
        }
        let conn = &mut self.conns[slot];
        if conn.machine.state() == State::Stopped {
            log::debug!(
                "client {slot}: closed while draining{}: {reason}",
                self.peer(slot)
            );
            self.drop_stream(slot);
        } else {
            conn.machine.handle_closed(now, reason);
        }
    }

    /// Queues `count` requests stamped `now_us` and writes what the socket takes.
    pub(super) fn queue_requests(&mut self, slot: usize, count: u32, now_us: u32) {
        let conn = &mut self.conns[slot];
        for _ in 0..count {
            conn.inflight.push(now_us);
        }
        conn.unsent += count as u64 * self.request_len as u64;
        self.in_flight += count as u64;
        self.counters.heartbeats_sent += count as u64;
    }

    /// Writes the request backlog from the template.
    pub(super) fn flush(&mut self, slot: usize) -> Option<Reason> {
        let conn = &mut self.conns[slot];
        let stream = conn.stream.as_mut()?;
        while conn.unsent > 0 {
            // The template is whole requests and write_pos < request_len, so
            // the slice starts mid-request exactly where the stream is.
            let start = conn.write_pos;
            let end = (start as u64 + conn.unsent).min(self.template.len() as u64) as usize;
            match stream.write(&self.template[start..end]) {
                Ok(0) => return Some(Reason::Io(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    conn.unsent -= n as u64;
                    conn.write_pos = (start + n) % self.request_len;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Reason::Io(e.kind())),
            }
        }
        None
    }

    /// Closes the socket, and counts its unanswered requests as missing.
    pub(super) fn drop_stream(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        match conn.link {
            Link::Up => self.counters.connected -= 1,
            Link::Connecting => self.counters.connecting -= 1,
            Link::Down => {}
        }
        conn.link = Link::Down;
        let lost = conn.inflight.clear();
        self.in_flight -= lost;
        self.counters.missing_replies += lost;
        conn.reader.reset();
        conn.unsent = 0;
        conn.write_pos = 0;
        conn.unfinished = false;
    }
}

/// ` peer=ADDR` in a line about one connection, or nothing if it has not
/// tried an address yet.
pub(super) struct Peer(Option<std::net::SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, " peer={addr}"),
            None => Ok(()),
        }
    }
}
