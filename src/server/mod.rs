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
//! Three ways, one code path:
//!
//! - [`Server::run`] loops until a [`ShutdownHandle`] (or a
//!   [`Commands::shutdown`]) fires;
//! - [`Server::poll_once`] is one turn of that loop, from a loop of the
//!   caller's, with the longest it may block;
//! - on a `mio::Poll` the caller owns ([`Server::bind_on`]): the caller asks
//!   for [`next_timeout`](Server::next_timeout), polls, hands over the
//!   events the server [`owns`](Server::owns) with
//!   [`handle_event`](Server::handle_event), and ends each turn with
//!   [`handle_timeout`](Server::handle_timeout). `poll_once` is exactly
//!   that, with a `Poll` of the server's own.
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
//!
//! # Without mio
//!
//! The per-connection logic is the sans-IO core, which another event loop
//! can drive with its own sockets and clock: a [`Decoder`](crate::protocol::Decoder)
//! per connection turns bytes into frames (split or many per read), every
//! complete frame stamps the peer seen, a heartbeat request is answered in
//! place (replies in request order), and a [`Rule`](crate::liveness::Rule)
//! judges the stamp against the clock:
//!
//! ```
//! use lubdub::liveness::{Rule, Verdict};
//! use lubdub::protocol::{Decoder, FrameType, Kind, Payloads, DEFAULT_MAX_FRAME};
//! use lubdub::protocol::{HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE};
//!
//! // 5 s × 6, in nanoseconds of the loop's own clock.
//! let rule = Rule::new(5_000_000_000, 6);
//! let mut decoder = Decoder::new();
//! let mut last_seen = 0u64;
//! let mut replies = Vec::new();
//!
//! // Bytes the loop read at t = 1 s: a heartbeat, and half of another.
//! let now = 1_000_000_000;
//! let read = [&HEARTBEAT_REQUEST[..], &HEARTBEAT_REQUEST[..4]].concat();
//! let mut frames = 0;
//! decoder
//!     .feed_with(&read, DEFAULT_MAX_FRAME, Payloads::Skip, |frame| {
//!         frames += 1;
//!         if frame.kind == Kind::Known(FrameType::HeartbeatRequest) {
//!             replies.extend_from_slice(&HEARTBEAT_RESPONSE);
//!         }
//!     })
//!     .expect("a malformed frame closes the connection");
//! if frames > 0 {
//!     last_seen = now; // a partial frame proves nothing
//! }
//! assert_eq!(replies, HEARTBEAT_RESPONSE); // the loop writes these
//! assert!(matches!(rule.check(last_seen, 30_999_999_999), Verdict::Alive { .. }));
//! assert!(matches!(rule.check(last_seen, 31_000_000_000), Verdict::Dead { .. }));
//! ```
//!
//! The reactor adds what a loop over many connections needs: one timer per
//! connection on a wheel instead of a scan, evidence read before every
//! verdict, stalls of its own excused, bounded buffers.

mod accept;
mod close_log;
mod commands;
mod config;
mod conn;
mod context;
mod core;
mod drain;
mod evidence;
mod handler;
mod io;
mod metrics;
mod output;
mod peer;
mod proxied;
mod room;
mod stats;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Poll, Registry, Token, Waker};

pub use self::accept::bind_listener;
pub use self::commands::{CommandError, Commands, NotQueued};
pub use self::config::{Config, DEFAULT_MAX_BUFFERED, MAX_BUFFERED, MAX_CONNECTIONS};
pub use self::context::Context;
pub use self::core::Deferred;
pub use self::handler::{CloseReason, ConnId, Handler};
pub use self::room::SharedRoom;
pub use self::stats::{Lateness, Stats, LATENESS_BOUNDS_US};
pub use crate::check::ConfigError;
pub use crate::step::Step;
pub use crate::SendError;

use self::commands::Command;
use self::conn::Conn;
use self::core::{Core, Limits};
use crate::access::{PerSource, Refusal};
use crate::keepalive::SocketOptions;
use crate::liveness::{ExcusedStalls, Rule, Verdict};
use crate::shutdown::ShutdownHandle;
use crate::strikes::RateRule;
use crate::time::{Batching, Clock, Stalls, Tick};
use crate::wheel::{TimerId, Wheel};

/// Tokens, counted from the server's first: the listener, then one per
/// connection slot.
const LISTENER: usize = 0;
const FIRST_CONN: usize = 1;
/// The waker's token on the server's own poll, out of every range.
const OWN_WAKER: Token = Token(usize::MAX);

/// How often a full server that left new connections to the others
/// looks at the listener again.
const LOOK_AGAIN: Duration = Duration::from_millis(50);

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
    /// Look at the listener again after leaving it to others while full.
    FullGrace,
    /// Close the next share of the connections being drained.
    Drain,
    /// A window of the close lines' rate limit ends: say what it held back.
    CloseLog,
    /// A metrics scraper may have run out of time.
    Scrape,
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
    /// [`Server::poll_once`] or [`Server::run`] on a server made with
    /// [`Server::bind_on`]: it is driven by the caller's poll.
    CallersPoll,
    /// The token range asked of [`Server::bind_on`] does not fit in a
    /// `usize` (it needs [`Server::tokens`] tokens from its first).
    Tokens,
    /// The metrics listener could not be set up.
    Metrics {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        source: std::io::Error,
    },
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(e) => write!(f, "bad configuration: {e}"),
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServerError::Poll(e) => write!(f, "poll failed: {e}"),
            ServerError::CallersPoll => f.write_str(
                "this server is on the caller's poll: drive it with handle_event and handle_timeout",
            ),
            ServerError::Tokens => f.write_str("the server's token range does not fit in a usize"),
            ServerError::Metrics { addr, source } => {
                write!(f, "cannot serve metrics on {addr}: {source}")
            }
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Config(e) => Some(e),
            ServerError::Bind { source, .. } | ServerError::Metrics { source, .. } => Some(source),
            ServerError::Poll(e) => Some(e),
            ServerError::CallersPoll | ServerError::Tokens => None,
        }
    }
}

/// The heartbeat server. See the [module docs](self).
pub struct Server<H: Handler = ()> {
    /// The server's own poll, or `None` on the caller's.
    poll: Option<Poll>,
    /// Where the server's sources are registered (the poll's, cloned).
    registry: Registry,
    /// The first of the server's tokens.
    base: usize,
    events: Events,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    /// The connections, the counters, and what the handler may act on.
    core: Core<H::State>,
    wheel: Wheel<Timer>,
    clock: Clock,
    /// The liveness rule in nanoseconds.
    rule: Rule,
    /// The reactor's own stalls, measured and excused.
    stalls: Stalls,
    /// The short wait before polling again under load (own poll only).
    batching: Batching,
    /// The excused ones that can still move a peer's deadline.
    excused: ExcusedStalls,
    config: Config,
    /// What accepted sockets get, resolved once from the configuration.
    socket_options: SocketOptions,
    max_connections: usize,
    scratch: Box<[u8]>,
    /// Connections that used up their read budget with data still waiting
    /// (edge-triggered: no new event will come for it), each listed once
    /// (`Conn::unfinished`). The turn in progress resumes the list it took
    /// at its start (`resume`), so neither allocates in steady state.
    unfinished: Vec<ConnId>,
    resume: Vec<ConnId>,
    /// The listener used up its accept budget; accept again next turn.
    accept_unfinished: bool,
    /// The turn in progress, from its first event (or its timeout) to
    /// `handle_timeout`'s end.
    turn: Option<Turn>,
    next_serial: u64,
    /// `Some(pauses)` while an out-of-descriptors episode lasts.
    accept_paused: Option<u64>,
    /// The one pending retry of the listener, if any.
    accept_retry: Option<TimerId>,
    /// The one pending look at the listener while full, if any.
    full_wait: Option<TimerId>,
    /// A drain in progress.
    drain: Option<Drain>,
    /// Room of the processes sharing the listener, this one's included.
    room: Option<SharedRoom>,
    /// The metrics endpoint (its tokens follow the connections'), and the
    /// one wheel timer pending for its scrapers' deadlines, with its tick.
    metrics: Option<crate::metrics::Endpoint>,
    scrape_timer: Option<(TimerId, Tick)>,
    /// `Some(closes)` while the buffer budget is exhausted: the first close
    /// of an episode is logged, the rest counted.
    over_budget: Option<u64>,
    /// Socket-option refusals already logged, by option and errno: each
    /// cause is logged once, every occurrence counted.
    sockopt_logged: Vec<(&'static str, Option<i32>)>,
    /// A connection without a valid PROXY header was logged at `warn`;
    /// later ones are counted and logged at `info`, held to a rate.
    proxy_warned: bool,
    /// With `max_connections_per_source`: connections open by source
    /// (every admitted connection counts under its peer's address, given
    /// back at its close). `None` without the limit.
    per_source: Option<PerSource>,
    /// The rate limit on `info` lines about closes (`close_log.rs`).
    close_log: close_log::CloseLog,
    handler: H,
    shutdown: ShutdownHandle,
    commands: Commands,
    /// `None` once stopped: commands sent then are refused as such.
    command_rx: Option<std::sync::mpsc::Receiver<Command>>,
    /// The last turn stopped at its command budget with more queued.
    commands_left: bool,
    stopped: bool,
}

/// A drain in progress: the connections open when it began are closed
/// evenly over its length.
#[derive(Debug, Clone, Copy)]
struct Drain {
    began: u64,
    over: u64,
    total: u64,
    closed: u64,
}

/// A turn of the loop in progress.
#[derive(Debug, Clone, Copy)]
struct Turn {
    woke: Instant,
    now: Now,
    /// The listener ran out of accept budget last turn: accept once more,
    /// after this turn's events.
    resume_accept: bool,
}

impl<H: Handler> Server<H> {
    /// Validates `config`, binds the listener and readies the reactor on a
    /// `mio::Poll` of its own: drive it with [`run`](Self::run) or
    /// [`poll_once`](Self::poll_once).
    pub fn bind(config: Config, handler: H) -> Result<Server<H>, ServerError> {
        let poll = Poll::new().map_err(ServerError::Poll)?;
        let registry = poll.registry().try_clone().map_err(ServerError::Poll)?;
        let waker = Waker::new(&registry, OWN_WAKER).map_err(ServerError::Poll)?;
        Server::setup(config, handler, Some(poll), registry, 0, Arc::new(waker))
    }

    /// Validates `config`, binds the listener and registers it on the
    /// caller's `registry`, with tokens from `first` on: the listener is
    /// `first` and each connection one more — [`tokens`](Self::tokens) of
    /// them in all, which the caller keeps clear of its own. Drive it with
    /// [`next_timeout`](Self::next_timeout), [`handle_event`](Self::handle_event)
    /// for every event it [`owns`](Self::owns), and
    /// [`handle_timeout`](Self::handle_timeout).
    ///
    /// `waker` is the caller's own `mio::Waker` for that poll (mio allows
    /// one per poll: a program with several lubdub parts on one poll makes
    /// one and hands each a clone). [`Commands`] and the
    /// [`ShutdownHandle`] wake the poll with it; the caller needs to do
    /// nothing for its token but go on to `handle_timeout`, which applies
    /// what they queued.
    pub fn bind_on(
        config: Config,
        handler: H,
        registry: &Registry,
        first: Token,
        waker: Arc<Waker>,
    ) -> Result<Server<H>, ServerError> {
        let registry = registry.try_clone().map_err(ServerError::Poll)?;
        Server::setup(config, handler, None, registry, first.0, waker)
    }

    fn setup(
        config: Config,
        handler: H,
        poll: Option<Poll>,
        registry: Registry,
        base: usize,
        waker: Arc<Waker>,
    ) -> Result<Server<H>, ServerError> {
        config.validate().map_err(ServerError::Config)?;
        let max_connections = match config.max_connections {
            Some(n) => n,
            None => crate::limits::file_limit()
                .map(|l| l.max_connections().min(config::MAX_CONNECTIONS))
                .unwrap_or(1024),
        };
        let metrics_tokens = if config.metrics.is_some() {
            crate::metrics::TOKENS
        } else {
            0
        };
        if base
            .checked_add(FIRST_CONN + max_connections)
            .and_then(|end| end.checked_add(metrics_tokens))
            .is_none()
        {
            return Err(ServerError::Tokens);
        }
        let mut listener = accept::listen(&config).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        registry
            .register(
                &mut listener,
                Token(base + LISTENER),
                mio::Interest::READABLE,
            )
            .map_err(ServerError::Poll)?;
        let metrics = match config.metrics {
            Some(addr) => {
                let first = Token(base + FIRST_CONN + max_connections);
                let endpoint = crate::metrics::Endpoint::bind(addr, &registry, first)
                    .map_err(|source| ServerError::Metrics { addr, source })?;
                info!("metrics on http://{}/metrics", endpoint.local_addr());
                Some(endpoint)
            }
            None => None,
        };
        let shutdown = ShutdownHandle::with_waker(waker);
        let (commands, command_rx) =
            Commands::new(config.command_queue, shutdown.clone(), config.max_frame);

        let clock = Clock::start(config.effective_tick());
        // interval × misses, exact in nanoseconds: rounded to the wheel's
        // ticks once, per deadline, and never multiplied after rounding.
        let rule = Rule::new(config.interval.as_nanos() as u64, config.misses);
        let socket_options = config.socket_options();
        let mut wheel = Wheel::with_capacity(0, max_connections.min(1 << 16) + 2);
        if let Some(every) = config.stats_every {
            wheel.schedule(clock.ticks(every), Timer::Stats);
        }
        info!(
            "listening on {local_addr} interval={} misses={} tick={} max_connections={max_connections} \
             max_frame={} max_backlog={} max_buffered={} {socket_options} reuse_port={} data={} \
             probe={} greeting={}{}",
            crate::duration::format(config.interval),
            config.misses,
            crate::duration::format(clock.tick()),
            config.max_frame,
            config.max_backlog,
            config.max_buffered,
            config.reuse_port,
            if H::WANTS_DATA { "delivered" } else { "skipped" },
            config.probe,
            config.greeting.as_ref().map_or(0, |g| g.len()),
            if config.proxy_protocol {
                format!(
                    " proxy_protocol=on proxy_header_timeout={}",
                    crate::duration::format(config.proxy_header_timeout)
                )
            } else {
                String::new()
            },
        );
        if let Some(limits) = abuse_limits(&config) {
            info!("limits: {limits}");
        }
        Ok(Server {
            poll,
            registry,
            base,
            events: Events::with_capacity(config.events_capacity),
            listener: Some(listener),
            local_addr,
            core: {
                let mut core = Core::new(Limits {
                    max_frame: config.max_frame,
                    max_backlog: config.max_backlog,
                    max_buffered: config.max_buffered,
                });
                core.rate = config.min_heartbeat_interval.map(|min| {
                    RateRule::new(min, config.silence_limit(), config.heartbeat_strikes)
                });
                core
            },
            wheel,
            stalls: Stalls::new(clock.pause_threshold(), rule.limit(), rule.interval()),
            batching: Batching::new(config.batch_wait, config.events_capacity),
            excused: ExcusedStalls::default(),
            clock,
            rule,
            socket_options,
            max_connections,
            // The decoder keeps split frames itself, so the buffer need not
            // hold a whole max_frame.
            scratch: vec![0; SCRATCH_LEN].into_boxed_slice(),
            unfinished: Vec::with_capacity(64),
            resume: Vec::with_capacity(64),
            accept_unfinished: false,
            turn: None,
            next_serial: 0,
            accept_paused: None,
            accept_retry: None,
            full_wait: None,
            drain: None,
            room: None,
            metrics,
            scrape_timer: None,
            over_budget: None,
            sockopt_logged: Vec::new(),
            proxy_warned: false,
            per_source: config
                .max_connections_per_source
                .map(|n| PerSource::new(n, config.source_prefix_v6)),
            close_log: close_log::CloseLog::default(),
            handler,
            shutdown,
            commands,
            command_rx: Some(command_rx),
            commands_left: false,
            stopped: false,
            config,
        })
    }

    /// How many tokens the server uses from its first: the listener and one
    /// per connection it may hold, then with [`Config::metrics`] the
    /// metrics endpoint's ([`crate::metrics::TOKENS`]).
    pub fn tokens(&self) -> usize {
        FIRST_CONN
            + self.max_connections
            + if self.config.metrics.is_some() {
                crate::metrics::TOKENS
            } else {
                0
            }
    }

    /// Where metrics are served, if they are (useful with port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// Whether `token` is one of the server's: its events go to
    /// [`handle_event`](Self::handle_event).
    pub fn owns(&self, token: Token) -> bool {
        token
            .0
            .checked_sub(self.base)
            .is_some_and(|offset| offset < self.tokens())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
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

    /// What a handler can do, from outside its callbacks: send, close,
    /// broadcast, reach the connections' state (see [`Context`]). Closes
    /// asked for here are carried out, and reported to the handler, at the
    /// next turn.
    pub fn context(&mut self) -> Context<'_, H::State> {
        Context {
            core: &mut self.core,
        }
    }

    /// The handler and a [`Context`] at once, for code outside the
    /// callbacks that needs both.
    pub fn handler_and_context(&mut self) -> (&mut H, Context<'_, H::State>) {
        (
            &mut self.handler,
            Context {
                core: &mut self.core,
            },
        )
    }

    /// A handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// A handle that sends, closes, broadcasts and stops from any thread
    /// (see [`Commands`]).
    pub fn commands(&self) -> Commands {
        self.commands.clone()
    }

    /// Shares the listener's work with other processes by `room` (made by
    /// their supervisor): while full, this server leaves new connections
    /// to those that say they have room, and refuses only when none has —
    /// so no connection is refused while a process has room.
    pub fn share_room(&mut self, room: SharedRoom) {
        self.room = Some(room);
        self.update_room();
    }

    /// Tells the processes sharing the listener how much room this one
    /// has: none once it no longer accepts.
    fn update_room(&self) {
        if let Some(room) = &self.room {
            let open = if self.listener.is_some() {
                self.max_connections.saturating_sub(self.core.conns.len())
            } else {
                0
            };
            room.set(open);
        }
    }

    /// Whether `id` names a connection that is open now (and not closing).
    pub fn is_open(&self, id: ConnId) -> bool {
        self.core.open_slot(id).is_some()
    }

    /// Runs until shutdown is requested, then closes everything and returns.
    pub fn run(&mut self) -> Result<(), ServerError> {
        while self.poll_once(None)? == Step::Running {}
        Ok(())
    }

    /// One turn on the server's own poll: waits for readiness or the next
    /// due timer — but no longer than `timeout`, nor than the stall
    /// threshold (`max(4 ticks, 50 ms)`: a stop that began and ended inside
    /// a longer sleep could not be told from the sleep) — handles what is
    /// ready, and returns. It is [`next_timeout`](Self::next_timeout), a
    /// poll, [`handle_event`](Self::handle_event) for each event and
    /// [`handle_timeout`](Self::handle_timeout).
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
        let Some(mut poll) = self.poll.take() else {
            return Err(ServerError::CallersPoll);
        };
        let called = Instant::now();
        let mut until = self.bounded_wait(called, timeout);
        // A wait for more events first, under load: never past a timer, nor
        // past what the caller allowed.
        let pause = self.batching.pause(until);
        let mut now = called;
        if !pause.is_zero() {
            // Asked for, like a poll's sleep: not a stall (and, like a
            // poll's, never longer than the stall threshold).
            std::thread::sleep(self.stalls.before_poll(called, Some(pause)));
            now = Instant::now();
            let left = timeout.map(|t| t.saturating_sub(now.saturating_duration_since(called)));
            until = self.bounded_wait(now, left);
        }
        let wait = self.stalls.before_poll(now, until);
        let polled = poll.poll(&mut self.events, Some(wait));
        self.poll = Some(poll);
        if let Err(e) = polled {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(ServerError::Poll(e));
            }
        }
        // Take the events out so handling can borrow `self` mutably; the
        // empty stand-in allocates nothing.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let mut count = 0;
        for event in events.iter() {
            self.handle_event(event, Instant::now());
            count += 1;
        }
        self.events = events;
        let handled = Instant::now();
        self.batching.polled(handled, count);
        if count > 0 {
            self.core.stats.wakeups += 1;
            self.core.stats.events += count as u64;
        }
        Ok(self.end_turn(handled, timeout))
    }

    /// How long the caller's poll may block before it must call
    /// [`handle_timeout`](Self::handle_timeout): until the next timer, zero
    /// when work is left over (a read budget, closes, commands), and never
    /// longer than the stall threshold (see [`poll_once`](Self::poll_once)).
    /// Polling with a shorter timeout (the caller's own sources may need
    /// one) is fine; a longer one is a stall. Once the server has stopped,
    /// `Duration::MAX`.
    pub fn next_timeout(&mut self, now: Instant) -> Duration {
        if self.stopped {
            // Nothing left to wake for (take the minimum with your own
            // timeout: mio accepts this, adding it to an `Instant` does not).
            return Duration::MAX;
        }
        let wait = self.wait(now);
        self.stalls.before_poll(now, wait)
    }

    /// [`wait`](Self::wait), no longer than `timeout`.
    fn bounded_wait(&self, now: Instant, timeout: Option<Duration>) -> Option<Duration> {
        match (self.wait(now), timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Until the next timer, or zero with work left over.
    fn wait(&self, now: Instant) -> Option<Duration> {
        if !self.unfinished.is_empty()
            || self.accept_unfinished
            || self.metrics.as_ref().is_some_and(|m| m.has_work())
            || self.commands_left
            || !self.core.closing.is_empty()
        {
            return Some(Duration::ZERO);
        }
        self.wheel.next_deadline().map(|t| self.clock.until(t, now))
    }

    /// Handles one readiness event for a token the server
    /// [`owns`](Self::owns) (others are ignored). The first event of a turn
    /// begins it; [`handle_timeout`](Self::handle_timeout) ends it.
    pub fn handle_event(&mut self, event: &Event, now: Instant) {
        if self.stopped || !self.owns(event.token()) {
            return;
        }
        let offset = event.token().0 - self.base;
        let turn = self.begin_turn(now);
        if offset >= FIRST_CONN + self.max_connections {
            return self.scrape_ready(event.token(), now);
        }
        match offset {
            // While paused for lack of descriptors, the resume timer
            // retries; accepting on every new SYN would only fail again. A
            // listener already due a resume is accepted from once, at the
            // turn's end.
            LISTENER if self.accept_paused.is_none() && !turn.resume_accept => {
                self.accept(turn.now)
            }
            LISTENER => {}
            offset => self.connection_ready(
                offset - FIRST_CONN,
                event.is_readable() || event.is_error(),
                event.is_writable(),
                event.is_read_closed() || event.is_error(),
            ),
        }
    }

    /// Ends a turn of the caller's loop: resumes what ran out of budget,
    /// applies commands and closes, stops if asked, runs the timers that
    /// are due (evictions, probes) and returns whether to go on. Call it
    /// once per turn of the loop, after the events, whether or not any was
    /// the server's.
    pub fn handle_timeout(&mut self, now: Instant) -> Step {
        self.end_turn(now, None)
    }

    /// Begins a turn if none is in progress: judges the time since the
    /// last (a stall?) and takes the list of reads to resume.
    fn begin_turn(&mut self, instant: Instant) -> Turn {
        if let Some(turn) = self.turn {
            return turn;
        }
        let now = self.wake(instant);
        // What ran out of budget last turn is resumed after this turn's
        // events, once: a budget is per turn, and work left over from this
        // turn waits for the next. Set only when the last accept call ran
        // out of budget (not when it failed), so it holds even inside a
        // descriptor-pause episode: the episode ends at the WouldBlock that
        // drains the backlog.
        std::mem::swap(&mut self.unfinished, &mut self.resume);
        let turn = Turn {
            woke: instant,
            now,
            resume_accept: self.accept_unfinished,
        };
        self.turn = Some(turn);
        turn
    }

    /// The end of a turn, `timeout` the time the caller may keep control.
    fn end_turn(&mut self, instant: Instant, timeout: Option<Duration>) -> Step {
        if self.stopped {
            return Step::Stopped;
        }
        let turn = self.begin_turn(instant);
        let mut resume = std::mem::take(&mut self.resume);
        self.resume_unfinished(&mut resume);
        self.resume = resume;
        if turn.resume_accept {
            self.accept(turn.now);
        }
        self.resume_scrapes();
        self.apply_commands();
        self.process_closes();
        if self.shutdown.is_requested() && self.drain.is_none() {
            // Every command queued before the stop is applied: when it was
            // asked for the queue held at most one queue's worth, all of it
            // ahead of anything queued since.
            self.apply_commands();
            self.process_closes();
            match self.config.drain {
                Some(over) if !self.core.conns.is_empty() => self.begin_drain(turn.now, over),
                _ => {
                    self.stop();
                    self.turn = None;
                    return Step::Stopped;
                }
            }
        }
        if self.drain.is_some() && self.core.conns.is_empty() {
            self.stop();
            self.turn = None;
            return Step::Stopped;
        }
        // Judged again, on a fresh clock: a stop in the middle of the turn
        // is excused (or not) before any verdict, and verdicts are made at
        // the time they are made, not at the wakeup.
        let now = self.wake(Instant::now());
        self.fire_timers(now);
        self.process_closes();
        self.end_budget_episode();
        let done = Instant::now();
        let length = done.saturating_duration_since(turn.woke).as_micros() as u64;
        self.core.stats.longest_turn_us = self.core.stats.longest_turn_us.max(length);
        self.stalls.returned(done, timeout);
        self.turn = None;
        Step::Running
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
            let stats = &mut self.core.stats;
            stats.pauses += 1;
            stats.paused_ms += stall_ms;
            if stall.excused {
                stats.excused_pauses += 1;
                self.excused
                    .record(nanos, stall.nanos, nanos.saturating_sub(stall.since));
                warn!(
                    "reactor stalled for {stall_ms}ms (kept from running): excused; deadlines \
                     that fell inside it move by it ({} connections open)",
                    self.core.conns.len()
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

    /// Applies the commands queued by other threads, in order, up to one
    /// queue's worth per turn (a thread that keeps queueing cannot keep the
    /// loop from its peers).
    fn apply_commands(&mut self) {
        self.commands_left = false;
        for _ in 0..self.config.command_queue {
            let Some(Ok(command)) = self.command_rx.as_ref().map(|rx| rx.try_recv()) else {
                return;
            };
            let core = &mut self.core;
            let result = match command {
                Command::Send(id, payload) => core.send(id, &payload),
                Command::Broadcast(payload) => core.broadcast(&payload).map(|_| ()),
                Command::Close(id) => match core.open_slot(id) {
                    Some(slot) => {
                        core.mark_closing(slot, CloseReason::Requested);
                        Ok(())
                    }
                    None => Err(SendError::Closed),
                },
                Command::Reply(deferred, payload) => core.fill(deferred, Some(&payload)),
                Command::Discard(deferred) => core.fill(deferred, None),
            };
            core.stats.commands += 1;
            if let Err(e) = result {
                core.stats.commands_failed += 1;
                log::debug!("command not carried out: {e}");
            }
            self.process_closes();
            // A unit of work (a broadcast to every connection may be a
            // long one): a progress point, so a turn of commands is work,
            // not a stall.
            self.stalls.progress(Instant::now());
        }
        self.commands_left = true;
    }

    /// Carries out the closes asked for, in order, with whatever those
    /// closes' callbacks ask for in turn.
    fn process_closes(&mut self) {
        let mut i = 0;
        while i < self.core.closing.len() {
            let (id, reason) = self.core.closing[i];
            i += 1;
            if self
                .core
                .conns
                .get(id.slot as usize)
                .is_some_and(|c| c.serial == id.serial)
            {
                self.close_conn(id.slot as usize, reason);
            }
        }
        self.core.closing.clear();
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
                    info!("stats {}", self.core.stats);
                    if let Some(every) = self.config.stats_every {
                        self.wheel
                            .schedule(now.tick + self.clock.ticks(every), Timer::Stats);
                    }
                }
                Timer::ResumeAccept => {
                    self.accept_retry = None;
                    self.accept(now);
                }
                Timer::FullGrace => {
                    self.full_wait = None;
                    self.accept(now);
                }
                Timer::Drain => self.drain_some(now),
                Timer::CloseLog => {
                    let at = self.clock.nanos(Instant::now());
                    self.close_log.flush(at, close_log::summary);
                }
                Timer::Scrape => self.scrapes_due(),
            }
        }
    }

    fn check_liveness(&mut self, slot: usize, fired: TimerId, now: Now) {
        let Some(conn) = self.core.conns.get(slot).filter(|c| c.timer == fired) else {
            // close_conn cancels a connection's timer, so a timer that
            // fires belongs to the slot's tenant: this is only a guard.
            return;
        };
        let id = ConnId {
            slot: slot as u32,
            serial: conn.serial,
        };
        if conn.awaiting {
            // Not a peer yet: this is its PROXY header's deadline.
            return self.header_due(slot, id);
        }
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
                let wake = self.probe(slot, now.nanos, next_deadline);
                let at = self.clock.tick_after(wake);
                let timer = self.wheel.schedule(at, Timer::Liveness(id.slot));
                if let Some(conn) = self.core.conns.get_mut(slot) {
                    conn.timer = timer;
                }
            }
            Verdict::Dead { .. } => {
                // Reported from the real stamp: the whole silence, and the
                // part of it an excused stall accounts for apart.
                // Read from the clock now, not the judgement's: a slow
                // timer or log line earlier in this turn is silence too.
                let at = self.fresh_nanos().max(now.nanos);
                let last_seen = self.core.conns[slot].last_seen;
                let judged = self.excused.stamp(&self.rule, last_seen);
                let misses = self.rule.missed(last_seen, at);
                let idle_ms = at.saturating_sub(last_seen) / 1_000_000;
                let excused_ms = (judged - last_seen) / 1_000_000;
                let late_us = at.saturating_sub(self.rule.deadline(judged)) / 1_000;
                self.core.stats.eviction_lateness.record(late_us);
                self.record_eviction_evidence(slot, id);
                info!(
                    "evicted peer={} misses={misses} idle={idle_ms}ms excused={excused_ms}ms conn={id}",
                    self.peer(slot)
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

    /// With probes on, asks a peer silent for at least one interval for a
    /// heartbeat reply, and says when to look at it again: at its next
    /// whole interval of silence, or its deadline if that is sooner.
    /// Without, just its deadline.
    fn probe(&mut self, slot: usize, now: u64, deadline: u64) -> u64 {
        if !self.config.probe {
            return deadline;
        }
        let judged = self
            .excused
            .stamp(&self.rule, self.core.conns[slot].last_seen);
        let interval = self.rule.interval();
        let silent = now.saturating_sub(judged);
        if silent >= interval && !self.core.conns[slot].closing {
            self.core.stats.probes += 1;
            if let Err(failure) = self.core.write(slot, &crate::protocol::HEARTBEAT_REQUEST) {
                self.core.mark_closing(slot, failure.reason());
            }
        }
        let next = judged + interval * (silent / interval + 1);
        next.min(deadline)
    }

    /// The open connection `id` names, if any (closing ones included).
    fn conn(&self, id: ConnId) -> Option<&Conn<H::State>> {
        self.core
            .conns
            .get(id.slot as usize)
            .filter(|c| c.serial == id.serial && !c.closing)
    }

    /// The peer of the connection in `slot`, for a log line.
    fn peer(&self, slot: usize) -> SocketAddr {
        self.core.peer(slot)
    }

    /// Takes a connection out of every table — slab, wheel, poll, buffer
    /// gauge, counts of open ones — and hands it back with its peer's
    /// address. Nothing is counted as a reason, and the handler is not
    /// told: the caller does both.
    fn remove_conn(&mut self, slot: usize) -> Option<(Conn<H::State>, SocketAddr)> {
        let mut conn = self.core.conns.try_remove(slot)?;
        let peer = self.core.v6.get(conn.peer);
        self.core.v6.release(conn.peer);
        // Admitted connections were counted by their source (one still
        // awaiting its PROXY header was not judged yet).
        if let (Some(table), false) = (self.per_source.as_mut(), conn.awaiting) {
            table.release(peer.ip());
        }
        if conn.closing {
            self.core.marked -= 1;
        }
        self.update_room();
        if conn.awaiting {
            self.core.awaiting -= 1;
        }
        self.wheel.cancel(conn.timer);
        let _ = self.registry.deregister(&mut conn.stream);
        let stats = &mut self.core.stats;
        stats.buffered -= core::held(&conn) as u64;
        stats.active -= 1;
        Some((conn, peer))
    }

    /// The address rules and the per-source ceiling, for a connection from
    /// `peer`: whether it may stay. A refusal is counted and logged; an
    /// admission is counted against its source (and given back when the
    /// connection is removed).
    pub(super) fn screen(&mut self, peer: SocketAddr) -> bool {
        let ip = peer.ip();
        if let Err(refusal) = self.config.access.judge(ip) {
            self.core.stats.denied += 1;
            let why = match refusal {
                Refusal::Denied => "inside a --deny block",
                Refusal::NotAllowed => "outside every --allow block",
            };
            if self.close_line(close_log::Kind::Denied) {
                info!("refused peer={peer} reason=denied: its address is {why}");
            }
            return false;
        }
        if let Some(table) = self.per_source.as_mut() {
            if let Err(source) = table.admit(ip) {
                self.core.stats.over_source_limit += 1;
                let open = table.open_from(ip);
                if self.close_line(close_log::Kind::OverSourceLimit) {
                    info!(
                        "refused peer={peer} reason=over_source_limit: {open} connections open from {source} \
                         (max_connections_per_source)"
                    );
                }
                return false;
            }
        }
        true
    }

    /// Removes a connection, counts why, tells the handler (if it was
    /// ever told of it: not while it awaited its PROXY header).
    fn close_conn(&mut self, slot: usize, reason: CloseReason) {
        let Some((conn, peer)) = self.remove_conn(slot) else {
            return;
        };
        let stats = &mut self.core.stats;
        let mut episode_began = false;
        match reason {
            CloseReason::Evicted { .. } => stats.evicted += 1,
            CloseReason::PeerClosed => stats.closed_by_peer += 1,
            CloseReason::Protocol(_) => stats.protocol_errors += 1,
            CloseReason::SlowReader => stats.slow_readers += 1,
            CloseReason::OverBudget => {
                stats.over_budget += 1;
                let closes = self.over_budget.get_or_insert(0);
                *closes += 1;
                if *closes == 1 {
                    episode_began = true;
                    warn!(
                        "buffer budget of {} bytes exhausted: closed peer={peer} conn={slot}#{}; \
                         further closes are counted (over_budget) until buffering is back under half",
                        self.config.max_buffered,
                        conn.serial
                    );
                }
            }
            CloseReason::Io(_) => stats.io_errors += 1,
            CloseReason::Requested => stats.closed_by_request += 1,
            CloseReason::Shutdown => stats.closed_by_shutdown += 1,
            CloseReason::TooFast => stats.too_fast += 1,
        }
        // Before its PROXY header, the socket's peer is the balancer.
        let side = if conn.awaiting { "via" } else { "peer" };
        let kind = match reason {
            CloseReason::Protocol(_) => Some(close_log::Kind::Protocol),
            CloseReason::SlowReader => Some(close_log::Kind::SlowReader),
            CloseReason::OverBudget if !episode_began => Some(close_log::Kind::OverBudget),
            CloseReason::Io(_) => Some(close_log::Kind::Io),
            CloseReason::TooFast => Some(close_log::Kind::TooFast),
            // A peer that closed mid-frame may have sent something that is
            // not frames at all (text from a shell): worth a line.
            CloseReason::PeerClosed if conn.decoder.pending() > 0 => {
                Some(close_log::Kind::MidFrame)
            }
            _ => None,
        };
        match kind {
            Some(kind) if self.close_line(kind) => {
                let id = format_args!("{slot}#{}", conn.serial);
                let key = kind.key();
                match reason {
                    CloseReason::Protocol(_) => {
                        let seen = conn.decoder.failed_header().unwrap_or_default();
                        info!(
                            "closed {side}={peer} conn={id} reason={key}: {reason}; {}",
                            close_log::describe(&seen)
                        );
                    }
                    CloseReason::PeerClosed => {
                        let partial = conn.decoder.partial_header();
                        let what = if partial.is_empty() {
                            String::new()
                        } else {
                            format!("; {}", close_log::describe(partial))
                        };
                        info!(
                            "closed {side}={peer} conn={id} reason={key}: the peer closed {} bytes \
                             into a frame{what}",
                            conn.decoder.pending()
                        );
                    }
                    _ => info!("closed {side}={peer} conn={id} reason={key}: {reason}"),
                }
            }
            Some(_) => {}
            None if matches!(reason, CloseReason::Requested) => {
                log::debug!("closed {side}={peer} conn={slot}#{}: {reason}", conn.serial);
            }
            None => {}
        }
        let id = ConnId {
            slot: slot as u32,
            serial: conn.serial,
        };
        // The socket closes here, before the callback: its descriptor is
        // free for the next accept whatever the handler does.
        drop(conn.stream);
        if conn.awaiting {
            return; // never admitted: the handler does not know it
        }
        let mut ctx = Context {
            core: &mut self.core,
        };
        self.handler.on_close(&mut ctx, id, conn.state, reason);
    }

    /// Whether the `info` line about a close of `kind` is written now, or
    /// held back by the rate limit (and counted, its summary timed).
    fn close_line(&mut self, kind: close_log::Kind) -> bool {
        if !log::log_enabled!(log::Level::Info) {
            return false;
        }
        let now = self.clock.nanos(Instant::now());
        match self.close_log.admit(kind, now, close_log::summary) {
            close_log::Verdict::Log => true,
            close_log::Verdict::Suppressed { flush_at } => {
                if let Some(at) = flush_at {
                    self.wheel
                        .schedule(self.clock.tick_after(at), Timer::CloseLog);
                }
                false
            }
        }
    }

    /// Ends an over-budget episode once buffering is back under half the
    /// budget, so the next exhaustion is logged again.
    fn end_budget_episode(&mut self) {
        if let Some(closes) = self.over_budget {
            if self.core.stats.buffered <= self.config.max_buffered as u64 / 2 {
                self.over_budget = None;
                info!(
                    "buffering back under half the budget ({} bytes) after closing {closes} connections",
                    self.core.stats.buffered
                );
            }
        }
    }

    fn stop(&mut self) {
        // Commands queued before the stop were applied; later ones are
        // refused as such.
        self.command_rx = None;
        self.stopped = true;
        // Nothing is left over for a turn that will not come.
        self.commands_left = false;
        self.accept_unfinished = false;
        self.unfinished.clear();
        if let Some(mut listener) = self.listener.take() {
            let _ = self.registry.deregister(&mut listener);
        }
        if let Some(mut metrics) = self.metrics.take() {
            metrics.close_all(&self.registry);
        }
        let slots: Vec<usize> = self.core.conns.iter().map(|(slot, _)| slot).collect();
        let open = slots.len();
        for slot in slots {
            self.close_conn(slot, CloseReason::Shutdown);
        }
        // Closes the handler asked for from on_close are moot now.
        self.core.closing.clear();
        self.close_log.finish(close_log::summary);
        info!(
            "stopped: closed listener and {open} connections; {}",
            self.core.stats
        );
    }
}

/// When to look first at a peer first seen (accepted, or admitted after
/// its PROXY header) at `seen`: its deadline, or with probes one interval
/// on.
fn first_check(config: &Config, rule: &Rule, seen: u64) -> u64 {
    if config.probe {
        seen + rule.interval()
    } else {
        rule.deadline(seen)
    }
}

/// The abuse limits in force, for the start-up log; `None` with none.
fn abuse_limits(config: &Config) -> Option<String> {
    let join = |blocks: &[crate::access::Cidr]| {
        blocks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut parts = Vec::new();
    if let Some(min) = config.min_heartbeat_interval {
        parts.push(format!(
            "min_heartbeat_interval={} heartbeat_strikes={}",
            crate::duration::format(min),
            config.heartbeat_strikes
        ));
    }
    if let Some(n) = config.max_connections_per_source {
        parts.push(format!(
            "max_connections_per_source={n} source_prefix_v6={}",
            config.source_prefix_v6
        ));
    }
    if !config.access.allow.is_empty() {
        parts.push(format!("allow={}", join(&config.access.allow)));
    }
    if !config.access.deny.is_empty() {
        parts.push(format!("deny={}", join(&config.access.deny)));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}
