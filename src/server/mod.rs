//! The heartbeat server: one mio reactor that accepts, answers heartbeats and
//! evicts silent peers.
//!
//! # Shape
//!
//! One [`mio::Poll`], one [`slab::Slab`] of connections (the slot is the mio
//! token), one [`Wheel`] holding one liveness timer per connection plus the
//! reactor's own timers, one reactor-wide read buffer. The read path stamps
//! "seen at T" (nanoseconds) and queues replies; timers decide evictions (see
//! [`crate::liveness`]).
//!
//! # Driving it
//!
//! [`Server::run`] loops until a [`ShutdownHandle`] fires. A program with its
//! own loop calls [`Server::poll_once`] instead, with the longest it may block.
//!
//! ```no_run
//! use lubdub::server::{Config, Server};
//!
//! let config = Config { listen: "127.0.0.1:8898".parse().unwrap(), ..Config::default() };
//! let mut server = Server::bind(config, ()).expect("bind");
//! let stop = server.shutdown_handle();
//! std::thread::spawn(move || {
//!     std::thread::sleep(std::time::Duration::from_secs(60));
//!     stop.shutdown();
//! });
//! server.run().expect("reactor failed");
//! println!("{}", server.stats());
//! ```

mod accept;
mod config;
mod conn;
mod evidence;
mod handler;
mod io;
mod stats;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use slab::Slab;

pub use self::config::{Config, DEFAULT_MAX_BUFFERED};
pub use self::handler::{CloseReason, ConnId, Handler, Reply};
pub use self::stats::Stats;
pub use crate::check::ConfigError;
pub use crate::step::Step;

use self::conn::Conn;
use crate::keepalive::SocketOptions;
use crate::liveness::{ExcusedStalls, Rule, Verdict};
use crate::shutdown::ShutdownHandle;
use crate::time::{Clock, Stalls, Tick};
use crate::wheel::{TimerId, Wheel};

/// Token of the listener; connection tokens are slab slots, far below it.
const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the shutdown waker.
const WAKER: Token = Token(usize::MAX - 2);

/// Size of the one reactor-wide read buffer. Large enough that a burst of
/// pipelined heartbeats is drained in one `read`.
const SCRATCH_LEN: usize = 64 * 1024;

/// Full reads one connection may do per turn: 256 KiB with the scratch
/// buffer above, which also bounds the replies staged for one write (a reply
/// is never longer than its request, data frames aside). A peer that floods
/// faster than we read would otherwise keep the loop on itself and grow the
/// reply buffer without bound; past the budget it goes to the back of the
/// line and is resumed after everyone else's events.
const READ_BUDGET: u32 = 4;

/// Connections accepted (or refused) per turn. Past it the listener is
/// resumed after everyone else's events, so a connect flood — above
/// `max_connections` each accept is only an accept and a close — cannot keep
/// the loop from answering heartbeats.
const ACCEPT_BUDGET: u32 = 256;

/// Why a connection is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadCause {
    /// A readiness event; `closed` if it also carried the peer's FIN or an
    /// error.
    Event { closed: bool },
    /// Resumed after using up its read budget last turn.
    Resume,
    /// Before a verdict of silence: whatever the kernel holds.
    Evidence,
}

/// The time of one wakeup, read once: nanoseconds for "seen" stamps and
/// liveness checks, the tick (rounded down) for the wheel.
#[derive(Debug, Clone, Copy)]
struct Now {
    nanos: u64,
    tick: Tick,
}

/// What the wheel holds: small, because it is in one wheel node per
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The liveness check of the connection in this slot. The slot alone is
    /// enough: the timer's own id says which tenant it is for (a
    /// connection's timer is cancelled when it closes, and the id of the
    /// one that fired is checked against the tenant's), so the 64-bit
    /// serial need not ride along in every node.
    Liveness(u32),
    /// Log the counters.
    Stats,
    /// Try accepting again after running out of file descriptors.
    ResumeAccept,
}

/// Why the server could not start or keep running.
#[derive(Debug)]
pub enum ServerError {
    /// The configuration cannot work.
    Config(ConfigError),
    /// The listening socket could not be set up.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// The poll instance failed.
    Poll(std::io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(e) => write!(f, "bad configuration: {e}"),
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServerError::Poll(e) => write!(f, "poll failed: {e}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Config(e) => Some(e),
            ServerError::Bind { source, .. } => Some(source),
            ServerError::Poll(e) => Some(e),
        }
    }
}

/// The heartbeat server. See the [module docs](self).
pub struct Server<H: Handler = ()> {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    conns: Slab<Conn>,
    wheel: Wheel<Timer>,
    clock: Clock,
    /// The liveness rule in nanoseconds.
    rule: Rule,
    /// The reactor's own stalls, measured and excused.
    stalls: Stalls,
    /// The excused ones that can still move a peer's deadline.
    excused: ExcusedStalls,
    config: Config,
    /// What accepted sockets get, resolved once from the configuration.
    socket_options: SocketOptions,
    max_connections: usize,
    scratch: Box<[u8]>,
    /// Replies staged for one connection during one readiness event.
    out: Vec<u8>,
    /// Connections that used up their read budget with data still waiting
    /// (edge-triggered: no new event will come for it), each listed once
    /// (`Conn::unfinished`). A spare list to swap with while resuming them,
    /// so neither allocates in steady state.
    unfinished: Vec<ConnId>,
    unfinished_spare: Vec<ConnId>,
    /// The listener used up its accept budget; accept again next turn.
    accept_unfinished: bool,
    next_serial: u64,
    /// `Some(pauses)` while an out-of-descriptors episode lasts.
    accept_paused: Option<u64>,
    /// The one pending retry of the listener, if any.
    accept_retry: Option<TimerId>,
    /// `Some(closes)` while the buffer budget is exhausted: the first close
    /// of an episode is logged, the rest counted.
    over_budget: Option<u64>,
    /// Socket-option refusals already logged, by option and errno: each
    /// cause is logged once, every occurrence counted.
    sockopt_logged: Vec<(&'static str, Option<i32>)>,
    stats: Stats,
    handler: H,
    shutdown: ShutdownHandle,
    stopped: bool,
}

impl<H: Handler> Server<H> {
    /// Validates `config`, binds the listener and readies the reactor.
    pub fn bind(config: Config, handler: H) -> Result<Server<H>, ServerError> {
        config.validate().map_err(ServerError::Config)?;
        let poll = Poll::new().map_err(ServerError::Poll)?;
        let mut listener = accept::listen(&config).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        poll.registry()
            .register(&mut listener, LISTENER, mio::Interest::READABLE)
            .map_err(ServerError::Poll)?;
        let shutdown = ShutdownHandle::new(poll.registry(), WAKER).map_err(ServerError::Poll)?;

        let clock = Clock::start(config.effective_tick());
        // interval × misses, exact in nanoseconds: rounded to the wheel's
        // ticks once, per deadline, and never multiplied after rounding.
        let rule = Rule::new(config.interval.as_nanos() as u64, config.misses);
        let socket_options = config.socket_options();
        let max_connections = match config.max_connections {
            Some(n) => n,
            None => crate::limits::file_limit()
                .map(|l| l.max_connections().min(config::MAX_CONNECTIONS))
                .unwrap_or(1024),
        };
        let mut wheel = Wheel::with_capacity(0, max_connections.min(1 << 16) + 2);
        if let Some(every) = config.stats_every {
            wheel.schedule(clock.ticks(every), Timer::Stats);
        }
        info!(
            "listening on {local_addr} interval={} misses={} tick={} max_connections={max_connections} \
             max_frame={} max_backlog={} max_buffered={} {socket_options} reuse_port={} data={}",
            crate::duration::format(config.interval),
            config.misses,
            crate::duration::format(clock.tick()),
            config.max_frame,
            config.max_backlog,
            config.max_buffered,
            config.reuse_port,
            if H::WANTS_DATA { "delivered" } else { "skipped" },
        );
        Ok(Server {
            poll,
            events: Events::with_capacity(config.events_capacity),
            listener: Some(listener),
            local_addr,
            conns: Slab::new(),
            wheel,
            stalls: Stalls::new(clock.pause_threshold(), rule.limit(), rule.interval()),
            excused: ExcusedStalls::default(),
            clock,
            rule,
            socket_options,
            max_connections,
            // The decoder keeps split frames itself, so the buffer need not
            // hold a whole max_frame.
            scratch: vec![0; SCRATCH_LEN].into_boxed_slice(),
            out: Vec::with_capacity(SCRATCH_LEN),
            unfinished: Vec::with_capacity(64),
            unfinished_spare: Vec::with_capacity(64),
            accept_unfinished: false,
            next_serial: 0,
            accept_paused: None,
            accept_retry: None,
            over_budget: None,
            sockopt_logged: Vec::new(),
            stats: Stats::default(),
            handler,
            shutdown,
            stopped: false,
            config,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The connection ceiling in force.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The handler, e.g. to read what it collected.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// A handle that stops [`run`](Self::run) from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs until shutdown is requested, then closes everything and returns.
    pub fn run(&mut self) -> Result<(), ServerError> {
        while self.poll_once(None)? == Step::Running {}
        Ok(())
    }

    /// Waits for readiness or the next due timer — but no longer than
    /// `timeout`, nor than the stall threshold (`max(4 ticks, 50 ms)`: a
    /// stop that began and ended inside a longer sleep could not be told
    /// from the sleep) — handles what is ready, and returns.
    ///
    /// The caller may keep control for `timeout` before it calls again
    /// (the threshold at least; `None` allows just the threshold): a loop
    /// that also waits on other sources for up to what it asked here is an
    /// ordinary loop. A caller that does not come back in time (it blocked
    /// or worked longer, or the process was stopped) loses nothing: the
    /// reactor sees the stall, reads what its peers sent meanwhile before
    /// it judges any of them, and may excuse it (see
    /// [`crate::liveness`]) — but time past the allowance is not time
    /// the reactor watched, so a caller that stalls on every turn earns
    /// no more excuses.
    pub fn poll_once(&mut self, timeout: Option<Duration>) -> Result<Step, ServerError> {
        if self.stopped {
            return Ok(Step::Stopped);
        }
        let wait = self
            .wheel
            .next_deadline()
            .map(|t| self.clock.until(t, Instant::now()));
        let wait = match (wait, timeout) {
            _ if !self.unfinished.is_empty() || self.accept_unfinished => Some(Duration::ZERO),
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wait = self.stalls.before_poll(Instant::now(), wait);
        if let Err(e) = self.poll.poll(&mut self.events, Some(wait)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(ServerError::Poll(e));
            }
        }
        let woke = Instant::now();
        let now = self.wake(woke);
        // What ran out of budget last turn is resumed after this turn's
        // events, once: a budget is per turn, and work left over from this
        // turn waits for the next.
        // Set only when the last accept call ran out of budget (not when it
        // failed), so it holds even inside a descriptor-pause episode: the
        // episode ends at the WouldBlock that drains the backlog.
        let resume_accept = self.accept_unfinished;
        let mut resume_reads = std::mem::replace(
            &mut self.unfinished,
            std::mem::take(&mut self.unfinished_spare),
        );
        // Take the events out so handling can borrow `self` mutably; the
        // empty stand-in allocates nothing.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            match event.token() {
                // While paused for lack of descriptors, the resume timer
                // retries; accepting on every new SYN would only fail again.
                // A listener already due a resume is accepted from once,
                // below.
                LISTENER if self.accept_paused.is_none() && !resume_accept => self.accept(now),
                LISTENER => {}
                WAKER => {}
                Token(slot) => self.connection_ready(
                    slot,
                    event.is_readable() || event.is_error(),
                    event.is_writable(),
                    event.is_read_closed() || event.is_error(),
                ),
            }
        }
        self.events = events;
        self.resume_unfinished(&mut resume_reads);
        self.unfinished_spare = resume_reads;
        if resume_accept {
            self.accept(now);
        }
        if self.shutdown.is_requested() {
            self.stop();
            return Ok(Step::Stopped);
        }
        // Judged again, on a fresh clock: a stop in the middle of the turn
        // is excused (or not) before any verdict, and verdicts are made at
        // the time they are made, not at the wakeup.
        let now = self.wake(Instant::now());
        self.fire_timers(now);
        self.end_budget_episode();
        let done = Instant::now();
        let turn = done.saturating_duration_since(woke).as_micros() as u64;
        self.stats.longest_turn_us = self.stats.longest_turn_us.max(turn);
        self.stalls.returned(done, timeout);
        Ok(Step::Running)
    }

    /// Reads the clock after a unit of work: the time to stamp it with
    /// (nanoseconds), and a progress point for the stall measure.
    fn fresh_nanos(&mut self) -> u64 {
        let instant = Instant::now();
        self.stalls.progress(instant);
        self.clock.nanos(instant)
    }

    /// Reads the clock for a judgement (a wakeup, or before the timers).
    /// If the reactor was kept from running since the last one (stopped,
    /// starved, blocked: see [`Stalls`]), that stall is not its peers'
    /// silence: when it is excused it is recorded, and every verdict from
    /// then on judges a peer's stamp moved as [`Rule::excuse`] says
    /// ([`ExcusedStalls`]: nothing is touched per connection now); it is
    /// logged once.
    fn wake(&mut self, instant: Instant) -> Now {
        let nanos = self.clock.nanos(instant);
        if let Some(stall) = self.stalls.judge(instant) {
            let stall_ms = stall.nanos / 1_000_000;
            self.stats.pauses += 1;
            self.stats.paused_ms += stall_ms;
            if stall.excused {
                self.stats.excused_pauses += 1;
                self.excused
                    .record(nanos, stall.nanos, nanos.saturating_sub(stall.since));
                warn!(
                    "reactor stalled for {stall_ms}ms (kept from running): excused; deadlines \
                     that fell inside it move by it ({} connections open)",
                    self.conns.len()
                );
            } else {
                log::debug!(
                    "reactor stalled for {stall_ms}ms; not excused (too soon after the last excused one)"
                );
            }
        }
        Now {
            nanos,
            tick: self.clock.tick_of(nanos),
        }
    }

    /// Queues a data frame to `id` from outside a callback. Returns `false`
    /// when `id` is no longer open (closed, or its slot has a new tenant).
    pub fn send_data(&mut self, id: ConnId, payload: &[u8]) -> bool {
        if !self.is_open(id) {
            return false;
        }
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let mut reply = Reply {
            out: &mut out,
            max_frame: self.config.max_frame,
            close: false,
        };
        let queued = reply.send_data(payload).is_ok();
        if queued {
            self.flush(id.slot as usize, &out);
        }
        self.out = out;
        queued
    }

    /// Closes `id` (with [`CloseReason::Requested`]) if it is still open.
    pub fn close(&mut self, id: ConnId) -> bool {
        if !self.is_open(id) {
            return false;
        }
        self.close_conn(id.slot as usize, CloseReason::Requested);
        true
    }

    /// Whether `id` names a connection that is open now.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.conn(id).is_some()
    }

    fn fire_timers(&mut self, now: Now) {
        while let Some((fired, _, timer)) = self.wheel.poll(now.tick) {
            // A unit of work ends with each timer (most re-arm a live peer
            // and touch nothing else): a progress point, so that millions
            // due at once are work, not a stall.
            self.stalls.progress(Instant::now());
            match timer {
                Timer::Liveness(slot) => self.check_liveness(slot as usize, fired, now),
                Timer::Stats => {
                    info!("stats {}", self.stats);
                    if let Some(every) = self.config.stats_every {
                        self.wheel
                            .schedule(now.tick + self.clock.ticks(every), Timer::Stats);
                    }
                }
                Timer::ResumeAccept => {
                    self.accept_retry = None;
                    self.accept(now);
                }
            }
        }
    }

    fn check_liveness(&mut self, slot: usize, fired: TimerId, now: Now) {
        let Some(conn) = self.conns.get(slot).filter(|c| c.timer == fired) else {
            // close_conn cancels a connection's timer, so a timer that
            // fires belongs to the slot's tenant: this is only a guard.
            return;
        };
        let id = ConnId {
            slot: slot as u32,
            serial: conn.serial,
        };
        let mut verdict = self
            .rule
            .check(self.excused.stamp(&self.rule, conn.last_seen), now.nanos);
        // Evidence before verdict: whatever the kernel already holds for
        // this peer is read first. After a stall, or with more ready
        // sockets than one batch of events, it may hold the very frames
        // that prove the peer alive, or its FIN. And once more if, after
        // that read, enough has arrived to complete a frame (it came in the
        // microseconds since): the verdict is on all the kernel holds.
        let mut looks = 0;
        while matches!(verdict, Verdict::Dead { .. })
            && (looks == 0 || (looks == 1 && self.frame_may_be_waiting(slot)))
        {
            looks += 1;
            self.read_ready(slot, ReadCause::Evidence);
            let Some(conn) = self.conn(id) else {
                return; // the read closed it, and counted why
            };
            verdict = self
                .rule
                .check(self.excused.stamp(&self.rule, conn.last_seen), now.nanos);
            if conn.unfinished && matches!(verdict, Verdict::Dead { .. }) {
                // More is waiting than one turn's budget reads, so the
                // evidence is not all in: judge again next tick, after the
                // resume. A peer that has that much to send is no silent
                // one, and a frame (max_frame at most) completes within a
                // bounded number of budgets.
                verdict = Verdict::Alive {
                    next_deadline: now.nanos + 1,
                };
            }
        }
        match verdict {
            Verdict::Alive { next_deadline } => {
                let at = self.clock.tick_after(next_deadline);
                let timer = self.wheel.schedule(at, Timer::Liveness(id.slot));
                if let Some(conn) = self.conns.get_mut(slot) {
                    conn.timer = timer;
                }
            }
            Verdict::Dead { .. } => {
                // Reported from the real stamp: the whole silence, and the
                // part of it an excused stall accounts for apart.
                // Read from the clock now, not the judgement's: a slow
                // timer or log line earlier in this turn is silence too.
                let at = self.fresh_nanos().max(now.nanos);
                let last_seen = self.conns[slot].last_seen;
                let judged = self.excused.stamp(&self.rule, last_seen);
                let misses = self.rule.missed(last_seen, at);
                let idle_ms = at.saturating_sub(last_seen) / 1_000_000;
                let excused_ms = (judged - last_seen) / 1_000_000;
                self.record_eviction_evidence(slot, id);
                info!(
                    "evicted peer={} misses={misses} idle={idle_ms}ms excused={excused_ms}ms conn={id}",
                    Peer(&self.conns[slot].stream)
                );
                self.close_conn(
                    slot,
                    CloseReason::Evicted {
                        misses,
                        idle_ms,
                        excused_ms,
                    },
                );
            }
        }
    }

    /// The open connection `id` names, if any.
    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns
            .get(id.slot as usize)
            .filter(|c| c.serial == id.serial)
    }

    /// Removes a connection, counts why, tells the handler.
    fn close_conn(&mut self, slot: usize, reason: CloseReason) {
        let Some(mut conn) = self.conns.try_remove(slot) else {
            return;
        };
        self.wheel.cancel(conn.timer);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.stats.buffered -= held(&conn) as u64;
        match reason {
            CloseReason::Evicted { .. } => self.stats.evicted += 1,
            CloseReason::PeerClosed => self.stats.closed_by_peer += 1,
            CloseReason::Protocol(_) => self.stats.protocol_errors += 1,
            CloseReason::SlowReader => self.stats.slow_readers += 1,
            CloseReason::OverBudget => {
                self.stats.over_budget += 1;
                let closes = self.over_budget.get_or_insert(0);
                *closes += 1;
                if *closes == 1 {
                    warn!(
                        "buffer budget of {} bytes exhausted: closed peer={} conn={slot}#{}; \
                         further closes are counted (over_budget) until buffering is back under half",
                        self.config.max_buffered,
                        Peer(&conn.stream),
                        conn.serial
                    );
                }
            }
            CloseReason::Io(_) => self.stats.io_errors += 1,
            CloseReason::Requested => self.stats.closed_by_request += 1,
            // Counted by the "stopped" log line, which names how many.
            CloseReason::Shutdown => {}
        }
        self.stats.active -= 1;
        if !matches!(
            reason,
            CloseReason::Evicted { .. }
                | CloseReason::PeerClosed
                | CloseReason::Shutdown
                | CloseReason::OverBudget
        ) {
            log::debug!(
                "closed peer={} conn={slot}#{}: {reason}",
                Peer(&conn.stream),
                conn.serial
            );
        }
        self.handler.on_close(
            ConnId {
                slot: slot as u32,
                serial: conn.serial,
            },
            reason,
        );
    }

    /// Ends an over-budget episode once buffering is back under half the
    /// budget, so the next exhaustion is logged again.
    fn end_budget_episode(&mut self) {
        if let Some(closes) = self.over_budget {
            if self.stats.buffered <= self.config.max_buffered as u64 / 2 {
                self.over_budget = None;
                info!(
                    "buffering back under half the budget ({} bytes) after closing {closes} connections",
                    self.stats.buffered
                );
            }
        }
    }

    fn stop(&mut self) {
        self.stopped = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        let open = slots.len();
        for slot in slots {
            self.close_conn(slot, CloseReason::Shutdown);
        }
        info!(
            "stopped: closed listener and {open} connections; {}",
            self.stats
        );
    }
}

/// Formats a connection's peer address, asked of the kernel only when a log
/// line is actually written.
struct Peer<'a>(&'a mio::net::TcpStream);

impl fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.peer_addr() {
            Ok(addr) => write!(f, "{addr}"),
            Err(_) => f.write_str("unknown"),
        }
    }
}

/// Heap bytes a connection holds: a split data payload and a write
/// backlog, by capacity — what the buffer budget counts.
fn held(conn: &Conn) -> usize {
    let backlog = conn.backlog.as_ref().map_or(0, |b| b.capacity());
    conn.decoder.heap_bytes() + backlog
}

/// The replies to `n` heartbeat requests, appended to `out`.
fn push_heartbeat_replies(out: &mut Vec<u8>, n: usize) {
    for _ in 0..n {
        out.extend_from_slice(&crate::protocol::HEARTBEAT_RESPONSE);
    }
}
