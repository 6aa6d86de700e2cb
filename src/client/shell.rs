//! The mio shell around one [`Machine`]: the socket, the decoder and the clock.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::machine::{Action, Machine, Proof, Reason, State};
use super::socket::{completed_meanwhile, connect_progress, start_connect, ConnectProgress};
use super::target::{Addresses, Attempt, Resolver, Target};
use super::{ClientConfig, ClientError, SendError};
use crate::keepalive::SocketOptions;
use crate::nonblocking::write_some;
use crate::protocol::{
    encode_frame, Decoder, Frame, FrameType, Kind, Payloads, HEADER_LEN, HEARTBEAT_REQUEST,
    HEARTBEAT_RESPONSE,
};
use crate::rng::Rng;
use crate::shutdown::ShutdownHandle;
use crate::time::{Clock, Stalls, Tick};

const STREAM: Token = Token(0);
const WAKER: Token = Token(1);

/// Bytes read per `read` call; one buffer per client, reused.
const SCRATCH: usize = 64 * 1024;

/// Reads per turn: at most 4 × 64 KiB. A server that floods faster than
/// the client reads would otherwise keep it inside `read` — every frame is
/// proof of life, so nothing else would ever end that loop — and starve its
/// own heartbeats and its caller. Past the budget the client polls with a
/// zero timeout and reads on in the next turn: readiness is edge-triggered,
/// so the unread data raises no new event of its own.
const READ_BUDGET: u32 = 4;

/// Callbacks into the embedding program. Every method has a default that
/// does nothing, and `()` implements the trait for a heartbeat-only client.
pub trait Handler {
    /// A connection came up.
    fn connected(&mut self, _out: &mut Outbox<'_>) {}
    /// A data frame arrived.
    fn data(&mut self, _payload: &[u8], _out: &mut Outbox<'_>) {}
    /// The connection ended; the client will reconnect.
    fn disconnected(&mut self, _reason: &Reason) {}
}

impl Handler for () {}

/// Lets a [`Handler`] send data frames on the current connection.
pub struct Outbox<'a> {
    buf: &'a mut Vec<u8>,
    max_frame: usize,
    max_backlog: usize,
}

impl Outbox<'_> {
    /// Queues one data frame; it is written when the callback returns.
    pub fn send_data(&mut self, payload: &[u8]) -> Result<(), SendError> {
        queue_data(self.buf, self.max_frame, self.max_backlog, payload)
    }
}

/// The share of `max_backlog` data frames may fill. The last quarter is
/// kept for heartbeats and replies: a program that keeps the backlog full
/// of data (refused, retrying) must not leave the client's own heartbeat
/// to push it past the bound and close a server that does read, slowly.
fn data_limit(max_backlog: usize) -> usize {
    max_backlog - max_backlog / 4
}

fn queue_data(
    buf: &mut Vec<u8>,
    max_frame: usize,
    max_backlog: usize,
    payload: &[u8],
) -> Result<(), SendError> {
    if HEADER_LEN + payload.len() > max_frame {
        return Err(SendError::TooLarge);
    }
    if buf.len() + HEADER_LEN + payload.len() > data_limit(max_backlog) {
        return Err(SendError::Backlog);
    }
    encode_frame(FrameType::Data, payload, buf).map_err(|_| SendError::TooLarge)
}

/// Whether `unsent` bytes, left after the kernel took what it would, mean
/// the server does not read. Bounds the client's output buffer: every
/// request the server sends queues a reply, so a server that sends and
/// never reads would otherwise grow it without limit.
fn slow_reader(unsent: usize, max_backlog: usize) -> bool {
    unsent > max_backlog
}

/// Counters since the client was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Connections established.
    pub connects: u64,
    /// Connections (or connect attempts) given up, each followed by a backoff.
    pub disconnects: u64,
    /// Heartbeat requests sent.
    pub heartbeats_sent: u64,
    /// Heartbeat responses received.
    pub replies: u64,
    /// Heartbeats still unanswered when the next one fell due.
    pub missed_replies: u64,
    /// Heartbeats not sent because the client itself fell more than an
    /// interval behind its schedule (a stall of its own).
    pub skipped_heartbeats: u64,
    /// Data frames received.
    pub data_frames: u64,
    /// Connections closed for bytes that are not lubdub frames.
    pub protocol_errors: u64,
    /// Bytes discarded, when lenient, because they cannot start a frame.
    pub dropped_bytes: u64,
    /// Times the client was kept from running for longer than its stall
    /// threshold (stopped, starved, blocked); an excused stall is not
    /// counted as the server's silence.
    pub pauses: u64,
    /// Socket options the kernel refused on a new connection (the
    /// connection is kept).
    pub sockopt_errors: u64,
    /// Connections closed because the server did not read: more than
    /// `max_backlog` bytes waited to be written ([`Reason::SlowReader`]).
    pub slow_readers: u64,
}

/// One reconnecting heartbeat client on its own `mio::Poll`.
pub struct Client<H: Handler = ()> {
    config: ClientConfig,
    socket_options: SocketOptions,
    clock: Clock,
    poll: Poll,
    events: Events,
    shutdown: ShutdownHandle,
    machine: Machine,
    stalls: Stalls,
    stream: Option<mio::net::TcpStream>,
    resolver: Resolver,
    /// A connect is due and waits for its name lookup.
    resolving: bool,
    /// The server's addresses (looked up again for every connect when it
    /// is a name), and which of them this attempt has tried.
    addrs: Addresses,
    attempt: Attempt,
    decoder: Decoder,
    scratch: Box<[u8]>,
    /// Bytes for the server not yet written: never more than
    /// `max_backlog` between turns, and within a read at most one read's
    /// worth of replies over it before the write that follows.
    outbuf: Vec<u8>,
    /// The last read stopped at its budget with data still waiting.
    unfinished: bool,
    handler: H,
    stats: ClientStats,
}

impl<H: Handler> Client<H> {
    /// A client that starts connecting on the first [`poll_once`](Self::poll_once)
    /// or [`run`](Self::run).
    pub fn new(config: ClientConfig, handler: H) -> Result<Client<H>, ClientError> {
        config.validate().map_err(ClientError::Config)?;
        let poll = Poll::new().map_err(ClientError::Setup)?;
        let shutdown = ShutdownHandle::new(poll.registry(), WAKER).map_err(ClientError::Setup)?;
        let resolver = Resolver::new(shutdown.waker());
        let clock = Clock::start(config.tick);
        let addrs = Addresses::new(&config.connect);
        let machine_config = config.machine_config();
        let stalls = Stalls::new(
            clock.pause_threshold(),
            machine_config
                .silence_limit
                .saturating_mul(clock.tick_nanos()),
            machine_config.interval.saturating_mul(clock.tick_nanos()),
        );
        let mut machine = Machine::new(machine_config, Rng::from_entropy());
        machine.start(0);
        Ok(Client {
            socket_options: config.socket_options(),
            config,
            clock,
            poll,
            events: Events::with_capacity(16),
            shutdown,
            machine,
            stalls,
            stream: None,
            resolver,
            resolving: false,
            addrs,
            attempt: Attempt::default(),
            decoder: Decoder::new(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            outbuf: Vec::with_capacity(256),
            unfinished: false,
            handler,
            stats: ClientStats::default(),
        })
    }

    /// A handle that stops [`run`](Self::run) from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The state machine's state.
    pub fn state(&self) -> State {
        self.machine.state()
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.machine.is_connected()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The clock that turns instants into this client's ticks.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Bytes queued on the current connection that the kernel has not
    /// taken yet (zero when none is up).
    pub fn unsent(&self) -> usize {
        self.outbuf.len()
    }

    /// Sends one data frame on the current connection.
    ///
    /// Data frames may fill three quarters of
    /// [`max_backlog`](ClientConfig::max_backlog); past that this returns
    /// [`SendError::Backlog`] and the connection stays up. The last quarter
    /// is for heartbeats and replies, whose growth past the bound closes
    /// the connection ([`Reason::SlowReader`]).
    pub fn send_data(&mut self, payload: &[u8]) -> Result<(), SendError> {
        if !self.machine.is_connected() {
            return Err(SendError::Closed);
        }
        queue_data(
            &mut self.outbuf,
            self.config.max_frame,
            self.config.max_backlog,
            payload,
        )?;
        let now = self.clock.now();
        self.flush(now);
        self.apply_actions(now);
        Ok(())
    }

    /// Runs until the shutdown handle fires, then closes the connection.
    pub fn run(&mut self) -> Result<(), ClientError> {
        while !self.shutdown.is_requested() {
            self.poll_once(None)?;
        }
        self.close();
        Ok(())
    }

    /// Closes the connection and stops reconnecting.
    pub fn close(&mut self) {
        self.machine.stop();
        self.resolving = false;
        self.drop_stream();
    }

    /// One step: carry out due actions, wait for events for at most
    /// `timeout` (or until the next timer when `None`), handle them and the
    /// timers that fell due.
    ///
    /// The server is declared silent only after what the kernel already
    /// holds from it has been read, and a stall of the client itself (a
    /// stopped process, a caller that comes back late) is not counted as
    /// the server's silence. The caller may keep control for `timeout`
    /// (at least the stall threshold) before it calls again: a loop that
    /// drives this client beside a server and sockets of its own, each
    /// waiting in turn for up to what it asked, counts no stall; time past
    /// that is a stall, excused at most once per window of watched time
    /// (see [`crate::liveness`]).
    pub fn poll_once(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        // What is already due: the first connect, or whatever an earlier
        // step or `send_data` left. Timers are judged only after the poll.
        self.apply_actions(self.clock.now());

        let wait = self
            .machine
            .poll_timeout()
            .map(|deadline| self.clock.until(deadline, Instant::now()));
        let wait = match (wait, timeout) {
            // Data left over by the read budget: look at the other events,
            // but do not sleep on data already here.
            _ if self.unfinished => Some(Duration::ZERO),
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wait = self.stalls.before_poll(Instant::now(), wait);
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ClientError::Poll(e)),
        }
        let instant = Instant::now();
        let (now, seen) = self.clock.tick_range(instant);
        self.excuse_stall(instant, now);
        let mut stream_ready = false;
        for event in self.events.iter() {
            // Events for the waker need nothing: the loop re-checks the flag.
            stream_ready |= event.token() == STREAM;
        }
        if let Some(answer) = self.resolver.answer() {
            // An answer for a connect no longer wanted (the client was
            // closed meanwhile) is dropped.
            if std::mem::take(&mut self.resolving) && self.machine.state() == State::Ready {
                self.addrs.resolved(answer, now);
                self.begin_attempt(now);
            }
        }
        // Evidence before verdict: read before the machine may call the
        // server silent, even without an event (the event may have been
        // consumed before a stall, or the data arrived during one).
        if stream_ready || self.unfinished || self.machine.silence_due(now) {
            self.on_stream_ready(now, seen);
        }
        // A connect out of time with addresses left tries the next one
        // rather than giving the attempt up: a name whose first address
        // swallows the SYN must not hide the one that answers. One that
        // completed as its time ran out is taken, not dropped.
        if self.machine.connect_due(now) && self.attempt.has_next(&self.addrs, self.config.bind) {
            if completed_meanwhile(self.stream.as_ref()) {
                self.on_stream_ready(now, seen);
            } else {
                self.next_address(now);
            }
        }
        // Data past the read budget may hold the frame that proves the
        // server alive: the verdict waits for it, one turn (of zero
        // timeout) at a time. Never for long: a frame is at most
        // `max_frame` bytes, so one completes within a bounded number of
        // turns, and it moves the silence deadline on.
        if !(self.unfinished && self.machine.silence_due(now)) {
            self.machine.handle_timeout(now);
        }
        self.apply_actions(now);
        self.stalls.returned(Instant::now(), timeout);
        Ok(())
    }

    /// If the client was kept from running since its last wakeup (see
    /// [`Stalls`]) and the stall is excused, the machine moves its liveness
    /// stamp by it; it is logged once.
    fn excuse_stall(&mut self, instant: Instant, now: Tick) {
        if let Some(stall) = self.stalls.judge(instant) {
            self.stats.pauses += 1;
            if stall.excused {
                let tick = self.clock.tick_nanos();
                let began = now.saturating_sub(stall.since.div_ceil(tick));
                self.machine.excuse(stall.nanos / tick, began, now);
                log::warn!(
                    "client stalled for {}ms (kept from running): not counted as the server's silence",
                    stall.nanos / 1_000_000
                );
            }
        }
    }

    fn on_stream_ready(&mut self, now: Tick, seen: Tick) {
        if self.stream.is_none() {
            return; // an event for a socket already closed in this batch
        }
        if let State::Connecting { .. } = self.machine.state() {
            let Some(stream) = &self.stream else { return };
            match connect_progress(stream) {
                ConnectProgress::Pending => return,
                ConnectProgress::Failed(e) => {
                    log::debug!("connect failed: {e}");
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
                        log::warn!("connected to {}, but {e}", self.config.connect);
                    }
                    self.stats.connects += 1;
                    let peer = stream.peer_addr().ok();
                    match (&self.config.connect, peer) {
                        (Target::Name { .. }, Some(addr)) => {
                            log::info!("connected to {} ({addr})", self.config.connect)
                        }
                        _ => log::info!("connected to {}", self.config.connect),
                    }
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
                    log::debug!("dropped {dropped} bytes that are not frames");
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
    fn flush(&mut self, now: Tick) {
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

    fn apply_actions(&mut self, now: Tick) {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Connect => self.connect(now),
                Action::SkippedHeartbeats { count } => {
                    self.stats.skipped_heartbeats += u64::from(count);
                    log::debug!(
                        "{count} heartbeat(s) skipped: the client fell behind its schedule"
                    );
                }
                Action::SendHeartbeat { .. } => {
                    self.stats.heartbeats_sent += 1;
                    log::trace!("heartbeat");
                    self.outbuf.extend_from_slice(&HEARTBEAT_REQUEST);
                    self.flush(now);
                }
                Action::MissedReply { unanswered } => {
                    self.stats.missed_replies += 1;
                    log::debug!(
                        "missed reply: {unanswered} heartbeat(s) unanswered after {}",
                        crate::duration::format(self.config.interval)
                    );
                }
                // Told apart by the handler from the next change on.
                Action::Disconnect { reason, retry_in }
                | Action::ConnectFailed { reason, retry_in } => {
                    self.stats.disconnects += 1;
                    self.drop_stream();
                    log::info!(
                        "reconnecting to {} in {}: {reason}",
                        self.config.connect,
                        crate::duration::format(self.clock.duration(retry_in)),
                    );
                    self.handler.disconnected(&reason);
                }
            }
        }
    }

    /// A connect is due: look the name up first (for every connect, so a
    /// DNS change is followed), or go straight to the address.
    fn connect(&mut self, now: Tick) {
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
            let registry = self.poll.registry();
            let started = start_connect(addr, source).and_then(|mut stream| {
                registry.register(&mut stream, STREAM, Interest::READABLE | Interest::WRITABLE)?;
                Ok(stream)
            });
            match started {
                Ok(stream) => {
                    self.stream = Some(stream);
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

    fn drop_stream(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        self.decoder = Decoder::new();
        self.outbuf.clear();
        self.unfinished = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_fill_three_quarters_of_the_backlog_and_no_more() {
        let max_backlog = 1024;
        let mut buf = Vec::new();
        // 16-byte frames: 48 fit in 768 bytes, the 49th is refused.
        for _ in 0..48 {
            queue_data(&mut buf, 64, max_backlog, &[7; 8]).unwrap();
        }
        assert_eq!(buf.len(), 768);
        assert_eq!(
            queue_data(&mut buf, 64, max_backlog, &[7; 8]),
            Err(SendError::Backlog)
        );
        assert_eq!(buf.len(), 768, "a refused frame queues nothing");
        // The quarter kept back takes 32 heartbeats before the bound...
        buf.extend(std::iter::repeat_n(0, 32 * HEADER_LEN));
        assert!(!slow_reader(buf.len(), max_backlog));
        // ...and one more is a server that does not read.
        buf.extend_from_slice(&HEARTBEAT_REQUEST);
        assert!(slow_reader(buf.len(), max_backlog));
    }

    #[test]
    fn too_large_is_judged_before_the_backlog() {
        let mut buf = vec![0; 1024];
        assert_eq!(
            queue_data(&mut buf, 16, 1024, &[0; 9]),
            Err(SendError::TooLarge)
        );
        assert_eq!(
            queue_data(&mut buf, 16, 1024, &[0; 8]),
            Err(SendError::Backlog)
        );
    }

    #[test]
    fn the_smallest_backlog_still_bounds() {
        // HEADER_LEN is the least `max_backlog` accepted: one heartbeat
        // may wait, a second may not; no data frame fits.
        assert!(!slow_reader(HEADER_LEN, HEADER_LEN));
        assert!(slow_reader(2 * HEADER_LEN, HEADER_LEN));
        assert_eq!(
            queue_data(&mut Vec::new(), 64, HEADER_LEN, &[]),
            Err(SendError::Backlog)
        );
        assert_eq!(data_limit(crate::client::DEFAULT_MAX_BACKLOG), 768 * 1024);
    }
}
