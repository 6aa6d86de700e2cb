//! The mio shell around one [`Machine`]: the socket, the decoder and the
//! clock, on a poll of its own or on the caller's.
//!
//! One code path drives both. A turn is
//!
//! ```text
//! next_timeout(now) → the poll → handle_event(e, now) for each of ours → handle_timeout(now)
//! ```
//!
//! and [`Client::poll_once`] is exactly that turn on the client's own poll.
//! The stall measure ([`Stalls`]) sees the same notes either way:
//! `next_timeout` is the sleep it allows, the first `handle_*` of a turn
//! judges, and the time from `handle_timeout` to the next call is the
//! caller's turn.

mod stream;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Events, Poll, Registry, Token, Waker};

use super::handler::{queue_data, Handler};
use super::machine::{Action, Machine, State};
use super::stats::ClientStats;
use super::target::{Addresses, Attempt, Resolver};
use super::{ClientConfig, ClientError, SendError};
use crate::keepalive::SocketOptions;
use crate::protocol::{Decoder, HEARTBEAT_REQUEST};
use crate::rng::Rng;
use crate::shutdown::ShutdownHandle;
use crate::step::Step;
use crate::time::{Clock, Stalls, Tick};

/// Bytes read per `read` call; one buffer per client, reused.
const SCRATCH: usize = 64 * 1024;

/// Readiness events taken per poll of the client's own poll: it has two
/// sources.
const OWN_EVENTS: usize = 16;

/// The stream's and the waker's tokens on the client's own poll.
const OWN_STREAM: Token = Token(0);
const OWN_WAKER: Token = Token(1);

/// One reconnecting heartbeat client: on its own `mio::Poll`
/// ([`Client::new`]) or on the caller's ([`Client::new_on`]).
pub struct Client<H: Handler = ()> {
    config: ClientConfig,
    socket_options: SocketOptions,
    clock: Clock,
    /// The client's own poll and its event buffer; `None` when the
    /// caller's poll drives it.
    own: Option<(Poll, Events)>,
    /// Where the stream is registered (a clone of the poll's registry).
    registry: Registry,
    /// The stream's token.
    stream_token: Token,
    shutdown: ShutdownHandle,
    machine: Machine,
    stalls: Stalls,
    /// A turn has been judged and not yet ended by `handle_timeout`.
    in_turn: bool,
    stream: Option<mio::net::TcpStream>,
    resolver: Resolver,
    /// A connect is due and waits for its name lookup.
    resolving: bool,
    /// The server's addresses (looked up again for every connect when it
    /// is a name), and which of them this attempt has tried.
    addrs: Addresses,
    attempt: Attempt,
    /// The address of the connect in flight, or of the connection up or
    /// last lost: the `peer=` of every line about it (the kernel forgets
    /// it once the connection is reset).
    peer: Option<std::net::SocketAddr>,
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
    /// A client on a poll of its own, driven by [`run`](Self::run) or
    /// [`poll_once`](Self::poll_once). It starts connecting on the first
    /// of them.
    pub fn new(config: ClientConfig, handler: H) -> Result<Client<H>, ClientError> {
        config.validate().map_err(ClientError::Config)?;
        let poll = Poll::new().map_err(ClientError::Setup)?;
        let registry = poll.registry().try_clone().map_err(ClientError::Setup)?;
        let waker = Waker::new(&registry, OWN_WAKER).map_err(ClientError::Setup)?;
        let own = (poll, Events::with_capacity(OWN_EVENTS));
        Client::build(
            config,
            handler,
            registry,
            OWN_STREAM,
            Arc::new(waker),
            Some(own),
        )
    }

    /// A client on the caller's poll: its stream is registered with
    /// `registry` under `token`, which the caller uses for nothing else.
    /// `waker` is the caller's own `mio::Waker` for that poll (mio allows
    /// one per poll: a program with several lubdub parts on one poll makes
    /// one and hands each a clone); the [shutdown handle](Self::shutdown_handle)
    /// and name lookups wake the poll with it, and the caller needs to do
    /// nothing for its token but go on to `handle_timeout`. The caller
    /// drives the client with [`next_timeout`](Self::next_timeout),
    /// [`handle_event`](Self::handle_event) and
    /// [`handle_timeout`](Self::handle_timeout) (see the
    /// [module docs](super#on-the-callers-poll)); it starts connecting on
    /// the first `handle_timeout`.
    pub fn new_on(
        config: ClientConfig,
        handler: H,
        registry: &Registry,
        token: Token,
        waker: Arc<Waker>,
    ) -> Result<Client<H>, ClientError> {
        config.validate().map_err(ClientError::Config)?;
        let registry = registry.try_clone().map_err(ClientError::Setup)?;
        Client::build(config, handler, registry, token, waker, None)
    }

    fn build(
        config: ClientConfig,
        handler: H,
        registry: Registry,
        token: Token,
        waker: Arc<Waker>,
        own: Option<(Poll, Events)>,
    ) -> Result<Client<H>, ClientError> {
        let shutdown = ShutdownHandle::with_waker(waker);
        let resolver = Resolver::new(shutdown.waker());
        let clock = Clock::start(config.tick);
        let addrs = Addresses::new(&config.connect);
        let mut machine = Machine::new(config.machine_config(), Rng::from_entropy());
        machine.start(0);
        Ok(Client {
            socket_options: config.socket_options(),
            stalls: stalls_for(&clock, &machine),
            config,
            clock,
            own,
            registry,
            stream_token: token,
            shutdown,
            machine,
            in_turn: false,
            stream: None,
            resolver,
            resolving: false,
            addrs,
            attempt: Attempt::default(),
            peer: None,
            decoder: Decoder::new(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            outbuf: Vec::with_capacity(256),
            unfinished: false,
            handler,
            stats: ClientStats::default(),
        })
    }

    /// A handle that stops the client from any thread: the next
    /// [`handle_timeout`](Self::handle_timeout) (or `poll_once`, or `run`)
    /// closes the connection and returns [`Step::Stopped`]. Its waker ends
    /// a poll that is blocked at once. A shutdown is for good:
    /// [`start`](Self::start) does not undo it.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Counters so far.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The state machine's state ([`State::Stopped`] once closed or shut
    /// down).
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
    /// the connection ([`Reason::SlowReader`](super::Reason::SlowReader)).
    ///
    /// The frame is handed to the kernel at once. A write that fails here
    /// ends the connection, but as every close it is carried out and
    /// reported to the handler by the loop, at the next
    /// [`handle_timeout`](Self::handle_timeout) (which
    /// [`next_timeout`](Self::next_timeout) then asks for at once), never
    /// from inside this call.
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
        self.flush(self.clock.now());
        Ok(())
    }

    /// Whether `token` is the one this client registered its stream
    /// under: events for it go to [`handle_event`](Self::handle_event).
    pub fn owns(&self, token: Token) -> bool {
        token == self.stream_token
    }

    /// How long the caller may block in its poll, from `now`, before it
    /// calls [`handle_timeout`](Self::handle_timeout): until the machine's
    /// next deadline, zero when work is left over (a connect to begin, a
    /// close to report, data past the read budget, a shutdown to carry
    /// out), and never longer than the stall threshold (`max(4 ticks,
    /// 50 ms)`): a stop of the whole thread that began in a sleep cannot
    /// be told from the sleep until the sleep was due to end. Block for at
    /// most this (less is fine): longer is a stall of the client.
    ///
    /// Once the client is stopped it has nothing to wake for:
    /// `Duration::MAX` (take the minimum with your own timeout; `mio`
    /// accepts it, an `Instant` does not).
    pub fn next_timeout(&mut self, now: Instant) -> Duration {
        if self.is_stopped() {
            return Duration::MAX;
        }
        let wait = if self.work_left() {
            Some(Duration::ZERO)
        } else {
            self.machine
                .poll_timeout()
                .map(|deadline| self.clock.until(deadline, now))
        };
        self.stalls.before_poll(now, wait)
    }

    /// Handles a readiness event for one of this client's tokens
    /// ([`owns`](Self::owns)); others are ignored, as are events once the
    /// client is stopped. `now` is when the poll returned: it stamps what
    /// is read. The stream is read at once; verdicts wait for
    /// [`handle_timeout`](Self::handle_timeout).
    pub fn handle_event(&mut self, event: &Event, now: Instant) {
        if self.is_stopped() || !self.owns(event.token()) {
            return;
        }
        let (tick, seen) = self.begin_turn(now);
        self.on_stream_ready(tick, seen);
        // A connect that failed, or found no address, is reported now.
        self.apply_actions(tick);
    }

    /// Carries out what is due at `now`: call it once after every poll,
    /// with or without events for the client. Reads what the kernel holds
    /// before the server may be called silent (evidence before verdict,
    /// with or without an event), sends heartbeats, reconnects. Returns
    /// [`Step::Stopped`] once the shutdown handle has fired (the
    /// connection closed, [`Handler::disconnected`] told
    /// [`Reason::Requested`](super::Reason::Requested)) or the client was
    /// closed; from then on it returns `Stopped` at once and does nothing.
    pub fn handle_timeout(&mut self, now: Instant) -> Step {
        self.turn(now, None)
    }

    /// One turn on the client's own poll: [`next_timeout`](Self::next_timeout),
    /// a poll for at most that and `timeout`, [`handle_event`](Self::handle_event)
    /// for each event, [`handle_timeout`](Self::handle_timeout).
    ///
    /// The caller may keep control for `timeout` (at least the stall
    /// threshold) before it calls again: a loop that drives this client
    /// beside a server and sockets of its own, each waiting in turn for up
    /// to what it asked, counts no stall; time past that is a stall,
    /// excused at most once per window of watched time (see
    /// [`crate::liveness`]). Once stopped it returns [`Step::Stopped`] at
    /// once, without polling. A client made with
    /// [`new_on`](Self::new_on) has no poll of its own:
    /// [`ClientError::CallersPoll`].
    pub fn poll_once(&mut self, timeout: Option<Duration>) -> Result<Step, ClientError> {
        let Some((mut poll, mut events)) = self.own.take() else {
            return Err(ClientError::CallersPoll);
        };
        let result = self.poll_own(&mut poll, &mut events, timeout);
        self.own = Some((poll, events));
        result
    }

    fn poll_own(
        &mut self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> Result<Step, ClientError> {
        if self.is_stopped() {
            return Ok(Step::Stopped);
        }
        let wait = self.next_timeout(Instant::now());
        let wait = timeout.map_or(wait, |t| t.min(wait));
        match poll.poll(events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ClientError::Poll(e)),
        }
        let now = Instant::now();
        for event in events.iter() {
            self.handle_event(event, now);
        }
        Ok(self.turn(now, timeout))
    }

    /// Runs until the client stops: the shutdown handle fires (the
    /// connection is closed then), or it was closed before.
    pub fn run(&mut self) -> Result<(), ClientError> {
        while self.poll_once(None)? == Step::Running {}
        Ok(())
    }

    /// Closes the connection and stops reconnecting. An open connection is
    /// reported to [`Handler::disconnected`] as
    /// [`Reason::Requested`](super::Reason::Requested); a connect in
    /// flight is dropped silently. Then every turn returns
    /// [`Step::Stopped`] at once until [`start`](Self::start).
    pub fn close(&mut self) {
        if !self.is_stopped() {
            self.stop_at(self.clock.now());
        }
    }

    /// Starts connecting again after [`close`](Self::close), with a fresh
    /// backoff (the first retry waits from the shortest window again); the
    /// connect begins at the next `handle_timeout`. Returns
    /// [`Step::Running`], or [`Step::Stopped`] once the shutdown handle has
    /// fired: a shutdown is for good. Does nothing to a running client.
    pub fn start(&mut self) -> Step {
        if self.shutdown.is_requested() {
            return Step::Stopped;
        }
        if self.is_stopped() {
            // Time spent stopped was not watched: the stall measure starts
            // over, as for a new client.
            self.stalls = stalls_for(&self.clock, &self.machine);
            self.in_turn = false;
            self.machine.start(self.clock.now());
        }
        Step::Running
    }

    fn is_stopped(&self) -> bool {
        self.machine.state() == State::Stopped
    }

    /// Whether a turn must come without sleeping.
    fn work_left(&self) -> bool {
        self.unfinished || self.machine.has_action() || self.shutdown.is_requested()
    }

    /// `now` as ticks (rounded down, and up for "seen" stamps); the first
    /// call of a turn judges the time since the last (see [`Stalls`]).
    fn begin_turn(&mut self, now: Instant) -> (Tick, Tick) {
        let (tick, seen) = self.clock.tick_range(now);
        if !self.in_turn {
            self.in_turn = true;
            self.excuse_stall(now, tick);
        }
        (tick, seen)
    }

    /// The end of a turn: `handle_timeout`'s work, with control going back
    /// to the caller for at most `allowed` (see [`Stalls::returned`]).
    fn turn(&mut self, now: Instant, allowed: Option<Duration>) -> Step {
        if self.is_stopped() {
            return Step::Stopped;
        }
        let (tick, seen) = self.begin_turn(now);
        if self.shutdown.is_requested() {
            self.stop_at(tick);
            return Step::Stopped;
        }
        self.take_resolved(tick);
        // What was left for this turn: the first connect, or a close that
        // `send_data` found.
        self.apply_actions(tick);
        // Evidence before verdict: read before the machine may call the
        // server silent, even without an event (the event may have been
        // consumed before a stall, or the data arrived during one).
        if self.unfinished || self.machine.silence_due(tick) {
            self.on_stream_ready(tick, seen);
        }
        self.connect_timed_out(tick, seen);
        // Data past the read budget may hold the frame that proves the
        // server alive: the verdict waits for it, one turn (of zero
        // timeout) at a time. Never for long: a frame is at most
        // `max_frame` bytes, so one completes within a bounded number of
        // turns, and it moves the silence deadline on.
        if !(self.unfinished && self.machine.silence_due(tick)) {
            self.machine.handle_timeout(tick);
        }
        self.apply_actions(tick);
        self.in_turn = false;
        // Measured when control really goes back: this turn's own work
        // (a slow handler, say) is work, judged as such, not the caller's
        // allowance.
        self.stalls.returned(Instant::now(), allowed);
        Step::Running
    }

    /// Stops the machine and closes the connection; one that was up is
    /// reported as closed on request.
    fn stop_at(&mut self, now: Tick) {
        // A loss the loop has not yet carried out (a write in `send_data`
        // failed) is reported as what it was first.
        if self.machine.state() != State::Ready {
            self.apply_actions(now);
        }
        let was_up = self.machine.is_connected();
        self.machine.stop();
        self.resolving = false;
        self.in_turn = false;
        self.drop_stream();
        if was_up {
            self.stats.disconnects += 1;
            log::info!(
                "closed the connection to {}{}",
                self.config.connect,
                Peer(self.peer)
            );
            self.handler
                .disconnected(&super::machine::Reason::Requested);
        }
    }

    /// If the client was kept from running since its last turn (see
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
                        "missed reply: {unanswered} heartbeat(s) unanswered after {}{}",
                        crate::duration::format(self.config.interval),
                        Peer(self.peer)
                    );
                }
                Action::Disconnect { reason, retry_in } => {
                    self.stats.disconnects += 1;
                    self.drop_stream();
                    self.log_retry(&reason, retry_in);
                    self.handler.disconnected(&reason);
                }
                Action::ConnectFailed { reason, retry_in } => {
                    self.stats.connect_failures += 1;
                    self.drop_stream();
                    self.log_retry(&reason, retry_in);
                    self.handler
                        .connect_failed(&reason, self.clock.duration(retry_in));
                }
            }
        }
    }

    fn log_retry(&self, reason: &super::machine::Reason, retry_in: Tick) {
        log::info!(
            "reconnecting to {} in {}{}: {reason}",
            self.config.connect,
            crate::duration::format(self.clock.duration(retry_in)),
            Peer(self.peer)
        );
    }
}

/// ` peer=ADDR` in a log line, or nothing before any address was tried
/// (the server's name did not resolve).
struct Peer(Option<std::net::SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, " peer={addr}"),
            None => Ok(()),
        }
    }
}

/// A fresh stall measure for a client with `machine`'s rules.
fn stalls_for(clock: &Clock, machine: &Machine) -> Stalls {
    let config = machine.config();
    Stalls::new(
        clock.pause_threshold(),
        config.silence_limit.saturating_mul(clock.tick_nanos()),
        config.interval.saturating_mul(clock.tick_nanos()),
    )
}
