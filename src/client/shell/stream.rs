//! The client's connection: connecting (every address of an attempt, a
//! name looked up first), reading, answering and writing.

use std::io::{self, Read};

use mio::Interest;

use super::Client;
use crate::client::handler::{slow_reader, Handler, Outbox};
use crate::client::machine::{Proof, Reason, State};
use crate::client::socket::{
    completed_meanwhile, connect_progress, start_connect, ConnectProgress,
};
use crate::client::target::{Attempt, Target};
use crate::nonblocking::write_some;
use crate::protocol::{Decoder, Frame, FrameType, Kind, Payloads, HEARTBEAT_RESPONSE};
use crate::time::Tick;

/// Reads per turn: at most 4 × 64 KiB. A server that floods faster than
/// the client reads would otherwise keep it inside `read` — every frame is
/// proof of life, so nothing else would ever end that loop — and starve its
/// own heartbeats and its caller. Past the budget the client asks for a
/// zero timeout and reads on in the next turn: readiness is edge-triggered,
/// so the unread data raises no new event of its own.
const READ_BUDGET: u32 = 4;

impl<H: Handler> Client<H> {
    /// A finished name lookup, if one is in: the attempt it was for begins.
    pub(super) fn take_resolved(&mut self, now: Tick) {
        if let Some(answer) = self.resolver.answer() {
            // An answer for a connect no longer wanted (the client was
            // closed meanwhile) is dropped.
            if std::mem::take(&mut self.resolving) && self.machine.state() == State::Ready {
                self.addrs.resolved(answer, now);
                self.begin_attempt(now);
            }
        }
    }

    /// A connect out of time with addresses left tries the next one
    /// rather than giving the attempt up: a name whose first address
    /// swallows the SYN must not hide the one that answers. One that
    /// completed as its time ran out is taken, not dropped.
    pub(super) fn connect_timed_out(&mut self, now: Tick, seen: Tick) {
        if self.machine.connect_due(now) && self.attempt.has_next(&self.addrs, self.config.bind) {
            if completed_meanwhile(self.stream.as_ref()) {
                self.on_stream_ready(now, seen);
            } else {
                self.next_address(now);
            }
        }
    }

    pub(super) fn on_stream_ready(&mut self, now: Tick, seen: Tick) {
        if self.stream.is_none() {
            return; // an event for a socket already closed in this batch
        }
        if let State::Connecting { .. } = self.machine.state() {
            let Some(stream) = &self.stream else { return };
            match connect_progress(stream) {
                ConnectProgress::Pending => return,
                ConnectProgress::Failed(e) => {
                    log::debug!("connect failed{}: {e}", super::Peer(self.peer));
                    if self.attempt.has_next(&self.addrs, self.config.bind) {
                        self.next_address(now);
                    } else {
                        self.drop_stream();
                        self.attempt.failed(&mut self.addrs);
                        self.machine.handle_connect_failed(now, e.kind());
                    }
                    return;
                }
                ConnectProgress::Connected => {
                    if let Err(e) = self.socket_options.apply(stream) {
                        // The kernel keepalive is the second line of
                        // defence; the heartbeats still guard this one.
                        self.stats.sockopt_errors += 1;
                        log::warn!(
                            "connected to {}{}, but {e}",
                            self.config.connect,
                            super::Peer(self.peer)
                        );
                    }
                    self.stats.connects += 1;
                    let peer = stream.peer_addr().ok();
                    if peer.is_some() {
                        self.peer = peer;
                    }
                    log::info!(
                        "connected to {}{}",
                        self.config.connect,
                        super::Peer(self.peer)
                    );
                    if let Some(addr) = peer {
                        self.addrs.succeeded(addr);
                    }
                    // Stamped rounded up, as every proof of life: the silence
                    // limit counts from no earlier than the real connect.
                    self.machine.handle_connected(seen);
                    let mut out = Outbox {
                        buf: &mut self.outbuf,
                        max_frame: self.config.max_frame,
                        max_backlog: self.config.max_backlog,
                    };
                    self.handler.connected(&mut out);
                }
            }
        }
        if self.machine.is_connected() {
            self.read(seen);
            self.apply_actions(now);
            if self.machine.is_connected() {
                self.flush(now);
            }
        }
    }

    /// Reads what the kernel holds, up to [`READ_BUDGET`] reads; with data
    /// still waiting then, `unfinished` has the next turn read on (mio's
    /// readiness is edge-triggered). The replies each read queues are
    /// written before the next read, so only what the server leaves unread
    /// counts against `max_backlog`. Hot path: no allocation in steady
    /// state (`outbuf` keeps its capacity), no formatting.
    fn read(&mut self, seen: Tick) {
        self.unfinished = false;
        let mut reads = 0;
        loop {
            // A write below may have closed the connection.
            if !self.machine.is_connected() {
                return;
            }
            if reads == READ_BUDGET {
                self.unfinished = true;
                return;
            }
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            let n = match stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.machine.handle_closed(seen, Reason::PeerClosed);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.machine.handle_closed(seen, Reason::Io(e.kind()));
                    return;
                }
            };
            reads += 1;
            self.machine.handle_received(seen, Proof::Bytes);
            let Client {
                decoder,
                scratch,
                machine,
                handler,
                outbuf,
                stats,
                config,
                peer,
                ..
            } = self;
            let (max_frame, max_backlog) = (config.max_frame, config.max_backlog);
            let mut on_frame = |frame: Frame<'_>| {
                let proof = match frame.kind {
                    Kind::Known(FrameType::HeartbeatResponse) => {
                        stats.replies += 1;
                        log::trace!("heartbeat reply");
                        Proof::Reply
                    }
                    Kind::Known(FrameType::HeartbeatRequest) => {
                        // A peer that asks is answered, whichever side it
                        // is. A reply is no longer than its request, so
                        // one read queues at most a read's worth; the
                        // flush after the read judges what is left.
                        stats.requests_answered += 1;
                        outbuf.extend_from_slice(&HEARTBEAT_RESPONSE);
                        Proof::Frame
                    }
                    Kind::Known(FrameType::Data) => {
                        stats.data_frames += 1;
                        let mut out = Outbox {
                            buf: outbuf,
                            max_frame,
                            max_backlog,
                        };
                        handler.data(frame.payload, &mut out);
                        Proof::Frame
                    }
                    Kind::Reserved(_) => Proof::Frame,
                };
                machine.handle_received(seen, proof);
            };
            if config.lenient {
                // The original Qt server greets with unframed text: only
                // the bytes that cannot start a frame go; the frames around
                // them, in the same read too, are kept.
                let dropped = decoder.feed_lenient(
                    &scratch[..n],
                    max_frame,
                    Payloads::Deliver,
                    &mut on_frame,
                );
                if dropped > 0 {
                    stats.dropped_bytes += dropped as u64;
                    log::debug!(
                        "dropped {dropped} bytes that are not frames{}",
                        super::Peer(*peer)
                    );
                }
            } else if let Err(e) =
                decoder.feed_with(&scratch[..n], max_frame, Payloads::Deliver, &mut on_frame)
            {
                self.stats.protocol_errors += 1;
                self.machine.handle_closed(seen, Reason::Protocol(e));
                return;
            }
            if !self.outbuf.is_empty() {
                self.flush(seen);
            }
        }
    }

    /// Writes what the kernel takes now; more than `max_backlog` left over
    /// is a server that does not read, and the connection is closed.
    pub(super) fn flush(&mut self, now: Tick) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        // The disconnect either close triggers clears `outbuf` with the
        // stream, so its memory is bounded by what one turn can queue.
        match write_some(stream, &self.outbuf) {
            Ok(written) => {
                self.outbuf.drain(..written);
                if slow_reader(self.outbuf.len(), self.config.max_backlog)
                    && self.machine.is_connected()
                {
                    self.stats.slow_readers += 1;
                    self.machine.handle_closed(now, Reason::SlowReader);
                }
            }
            Err(kind) => self.machine.handle_closed(now, Reason::Io(kind)),
        }
    }

    /// A connect is due: look the name up first (for every connect, so a
    /// DNS change is followed), or go straight to the address.
    pub(super) fn connect(&mut self, now: Tick) {
        match &self.config.connect {
            Target::Name { host, port } => {
                self.resolver.request(host, *port);
                self.resolving = true;
            }
            Target::Addr(_) => self.begin_attempt(now),
        }
    }

    /// Starts an attempt over the addresses known now; none known (the
    /// name did not resolve) is connection trouble like any other.
    fn begin_attempt(&mut self, now: Tick) {
        self.machine.handle_connect_started(now);
        self.attempt = Attempt::default();
        if self.addrs.is_empty() {
            self.machine
                .handle_connect_failed(now, io::ErrorKind::NotFound);
            return;
        }
        self.open(now);
    }

    /// Starts a connect to the next address of this attempt not yet tried;
    /// with none left, the attempt has failed.
    fn open(&mut self, now: Tick) {
        let source = self.config.bind;
        // What the attempt failed with if no address fits the source's
        // family at all: not a port shortage.
        let mut last = io::ErrorKind::InvalidInput;
        while self.attempt.has_next(&self.addrs, source) {
            let addr = match self.attempt.next(&mut self.addrs, source) {
                Ok(addr) => addr,
                Err(e) => {
                    last = e.kind();
                    break;
                }
            };
            let (registry, token) = (&self.registry, self.stream_token);
            let started = start_connect(addr, source).and_then(|mut stream| {
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
                Ok(stream)
            });
            match started {
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.peer = Some(addr);
                    return;
                }
                Err(e) => {
                    self.attempt.failed(&mut self.addrs);
                    last = e.kind();
                }
            }
        }
        self.machine.handle_connect_failed(now, last);
    }

    /// The connect in flight failed or ran out of time, and this attempt
    /// has another address: on to it, with a connect timeout of its own.
    fn next_address(&mut self, now: Tick) {
        self.drop_stream();
        self.attempt.failed(&mut self.addrs);
        self.machine.restart_connect(now);
        self.open(now);
    }

    pub(super) fn drop_stream(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = self.registry.deregister(&mut stream);
        }
        self.decoder = Decoder::new();
        self.outbuf.clear();
        self.unfinished = false;
    }
}
