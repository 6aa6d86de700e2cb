//! A heartbeat client that reconnects when its server goes silent.
//!
//! Three layers, as everywhere in lubdub:
//!
//! - [`backoff`]: how long to wait before reconnecting (exponential, full
//!   jitter, reset once a new connection has received something);
//! - [`machine`]: the tick-driven state machine (connecting → connected →
//!   backing off → connecting …) with the liveness rule, no IO; its docs
//!   say what a shell of one's own must do;
//! - [`Client`]: the mio shell that owns the socket, converts `Instant` to
//!   ticks in one place, and carries out the machine's actions.
//!
//! The swarm (`crate::swarm`) drives many [`machine::Machine`]s with its own
//! shell; it shares [`socket`] with this one.
//!
//! # Three ways to drive a `Client`
//!
//! - [`Client::run`] on a thread of its own, until its
//!   [`ShutdownHandle`](crate::shutdown::ShutdownHandle) fires;
//! - [`Client::poll_once`] from the program's loop: one turn on the
//!   client's own `mio::Poll`, waiting at most the timeout given;
//! - on the program's own `mio::Poll` ([`Client::new_on`]), beside its
//!   other sockets: the client registers one token (its stream) and wakes
//!   the loop with the program's own waker, and the loop asks
//!   [`Client::next_timeout`] how long it may block, passes the client's
//!   events to [`Client::handle_event`] ([`Client::owns`] tells them
//!   apart) and calls [`Client::handle_timeout`] once per turn.
//!
//! `poll_once` is exactly the third way on a poll of the client's own, so
//! the three behave alike. All of them return [`Step::Stopped`](crate::Step)
//! once the client was shut down or [closed](Client::close), at once and
//! for good until [`Client::start`]. The [`Handler`] hears `connected`,
//! `data`, `disconnected` (a connection that was up ended) and
//! `connect_failed` (an attempt that never came up).
//!
//! # On the caller's poll
//!
//! A client beside a lubdub server, both on one thread and one poll, until
//! the client has had three replies (a server is started on a thread here
//! to have something to talk to):
//!
//! ```
//! use std::time::{Duration, Instant};
//! use lubdub::client::{Client, ClientConfig};
//! use lubdub::server::{Config, Server};
//! use lubdub::Step;
//! use mio::{Events, Poll, Token, Waker};
//!
//! let server = Server::bind(
//!     Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() },
//!     (),
//! )?;
//! let (addr, stop) = (server.local_addr(), server.shutdown_handle());
//! let thread = std::thread::spawn(move || { let mut server = server; server.run() });
//!
//! let mut poll = Poll::new()?;
//! let mut events = Events::with_capacity(64);
//! let config = ClientConfig {
//!     connect: addr.into(),
//!     interval: Duration::from_millis(20),
//!     ..ClientConfig::default()
//! };
//! // One waker for the poll (mio allows one), shared by every lubdub part
//! // on it; token 10 is the client's stream, the program keeps the others.
//! let waker = std::sync::Arc::new(Waker::new(poll.registry(), Token(0))?);
//! let mut client = Client::new_on(config, (), poll.registry(), Token(10), waker)?;
//! while client.stats().replies < 3 {
//!     // The program's own deadlines would be folded in with `min`.
//!     let timeout = client.next_timeout(Instant::now());
//!     poll.poll(&mut events, Some(timeout))?;
//!     let now = Instant::now();
//!     for event in events.iter() {
//!         if client.owns(event.token()) {
//!             client.handle_event(event, now);
//!         } // else: the program's own sockets
//!     }
//!     if client.handle_timeout(now) == Step::Stopped {
//!         break;
//!     }
//! }
//! assert_eq!(client.stats().pauses, 0, "an ordinary loop is never a stall");
//! client.close();
//! assert_eq!(client.handle_timeout(Instant::now()), Step::Stopped);
//! stop.shutdown();
//! thread.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # On a thread of its own
//!
//! ```no_run
//! use lubdub::client::{Client, ClientConfig, Handler, Outbox};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     fn data(&mut self, payload: &[u8], out: &mut Outbox<'_>) {
//!         let _ = out.send_data(payload);
//!     }
//! }
//!
//! let config = ClientConfig {
//!     connect: "localhost:8898".parse().unwrap(),
//!     ..ClientConfig::default()
//! };
//! let mut client = Client::new(config, Echo)?;
//! let stop = client.shutdown_handle(); // give to another thread to stop `run`
//! client.run()?;
//! # drop(stop);
//! # Ok::<(), lubdub::client::ClientError>(())
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::check::{self, ConfigError};
use crate::keepalive::{KeepaliveConfig, SocketOptions};
use crate::protocol::DEFAULT_MAX_FRAME;

pub mod backoff;
mod handler;
pub mod machine;
mod shell;
pub mod socket;
mod stats;
pub mod target;

pub use handler::{Handler, Outbox};
pub use machine::Reason;
pub use shell::Client;
pub use stats::ClientStats;
pub use target::Target;

/// Everything a [`Client`] needs, in human units.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server: an address, or a name looked up again for every connect.
    pub connect: Target,
    /// Local address to connect from (`None`: the kernel chooses).
    pub bind: Option<IpAddr>,
    /// Time between heartbeats (default 5 s, the Qt original's).
    pub interval: Duration,
    /// Intervals of silence before reconnecting (default 6, the original's).
    pub misses: u32,
    /// How long a connect may take (default 10 s).
    pub connect_timeout: Duration,
    /// Shortest reconnect delay (default 1 s; see [`backoff`]).
    pub backoff_min: Duration,
    /// Longest reconnect delay (default 120 s; see [`backoff`]).
    pub backoff_max: Duration,
    /// Any received bytes prove liveness and unparseable bytes are dropped.
    pub lenient: bool,
    /// Socket options applied on connect; the kernel keepalive's idle time
    /// follows this client's silence limit unless set.
    pub keepalive: KeepaliveConfig,
    /// Largest frame accepted from the server.
    pub max_frame: usize,
    /// Bytes waiting to be written past which the server is taken for one
    /// that does not read and the connection is closed
    /// ([`Reason::SlowReader`]); default [`DEFAULT_MAX_BACKLOG`]. Data
    /// frames may fill three quarters of it (see [`Client::send_data`]).
    pub max_backlog: usize,
    /// Timer resolution (default 1 ms).
    pub tick: Duration,
}

impl Default for ClientConfig {
    /// `127.0.0.1:8898`, 5 s × 6, backoff 1 s…120 s, connect timeout 10 s.
    ///
    /// The connect timeout is longer than any healthy handshake (Linux
    /// retransmits a lost SYN after 1 s and again 2 s later, so 10 s allows
    /// three tries) and shorter than the 30 s silence limit, so an
    /// unreachable server is noticed before a silent one would be.
    fn default() -> Self {
        ClientConfig {
            connect: Target::Addr(SocketAddr::from(([127, 0, 0, 1], 8898))),
            bind: None,
            interval: Duration::from_secs(5),
            misses: 6,
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(120),
            lenient: false,
            keepalive: KeepaliveConfig::default(),
            max_frame: DEFAULT_MAX_FRAME,
            max_backlog: DEFAULT_MAX_BACKLOG,
            tick: Duration::from_millis(1),
        }
    }
}

impl ClientConfig {
    /// The timing rules in ticks of [`tick`](Self::tick), for a shell of
    /// its own around a [`machine::Machine`]
    /// ([`machine::Config::from_durations`] with every field of this).
    pub fn machine_config(&self) -> machine::Config {
        self.timing().machine_config(self.tick, self.lenient)
    }

    /// The socket options each connection gets: the kernel keepalive
    /// follows this client's own silence limit.
    pub fn socket_options(&self) -> SocketOptions {
        self.keepalive.resolve(self.timing().silence_limit())
    }

    fn timing(&self) -> Timing {
        Timing {
            interval: self.interval,
            misses: self.misses,
            connect_timeout: self.connect_timeout,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
        }
    }

    /// Checks every field against its range; the first problem is returned,
    /// naming the field as the command line names its flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.timing().validate()?;
        self.keepalive.validate()?;
        check::max_frame(self.max_frame)?;
        check::max_backlog(self.max_backlog)?;
        check::client_tick(self.tick, self.interval)
    }
}

/// Default [`ClientConfig::max_backlog`]: the bound the client always had
/// on unsent data, kept so an embedding program's flow control changes
/// little; one client holding it costs nothing worth counting.
pub const DEFAULT_MAX_BACKLOG: usize = 1024 * 1024;

/// The timing settings a client and a swarm share, in human units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub interval: Duration,
    pub misses: u32,
    pub connect_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// The shortest reconnect delay accepted: anything shorter retries a dead
/// server in what amounts to a tight loop.
pub const MIN_BACKOFF: Duration = Duration::from_millis(10);

/// The longest connect timeout and reconnect delay accepted.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

impl Timing {
    /// `interval × misses`, saturating (validation keeps it far from that).
    pub fn silence_limit(&self) -> Duration {
        self.interval
            .checked_mul(self.misses)
            .unwrap_or(Duration::MAX)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        check::heartbeat(self.interval, self.misses)?;
        check::duration(
            "connect_timeout",
            self.connect_timeout,
            Duration::from_millis(1),
            MAX_WAIT,
        )?;
        check::duration("backoff_min", self.backoff_min, MIN_BACKOFF, MAX_WAIT)?;
        check::duration("backoff_max", self.backoff_max, self.backoff_min, MAX_WAIT)
    }

    /// The rules in ticks of `clock`. The silence limit is converted once,
    /// rounding up, so it is never shorter than `interval × misses` and
    /// never a rounded interval multiplied.
    pub fn machine_config(&self, tick: Duration, lenient: bool) -> machine::Config {
        machine::Config::from_durations(tick, self.interval, self.misses)
            .with_connect_timeout(self.connect_timeout)
            .with_backoff(self.backoff_min, self.backoff_max)
            .with_lenient(lenient)
    }
}

/// What can stop a client's loop. Connection trouble never does: it is
/// answered by reconnecting.
#[derive(Debug)]
pub enum ClientError {
    /// The configuration cannot work.
    Config(ConfigError),
    /// Creating the poll instance or its waker failed.
    Setup(io::Error),
    /// Waiting for events failed.
    Poll(io::Error),
    /// [`Client::poll_once`] (or `run`) on a client made with
    /// [`Client::new_on`]: the caller's poll drives it, through
    /// `next_timeout`, `handle_event` and `handle_timeout`.
    CallersPoll,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Config(e) => write!(f, "bad configuration: {e}"),
            ClientError::Setup(e) => write!(f, "cannot set up the event loop: {e}"),
            ClientError::Poll(e) => write!(f, "waiting for events failed: {e}"),
            ClientError::CallersPoll => f.write_str(
                "this client is driven by the caller's poll (Client::new_on): \
                 use next_timeout, handle_event and handle_timeout, not poll_once or run",
            ),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Config(e) => Some(e),
            ClientError::Setup(e) | ClientError::Poll(e) => Some(e),
            ClientError::CallersPoll => None,
        }
    }
}

pub use crate::send::SendError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_backlog_is_range_checked() {
        let with = |max_backlog| ClientConfig {
            max_backlog,
            ..ClientConfig::default()
        };
        assert!(with(DEFAULT_MAX_BACKLOG).validate().is_ok());
        assert!(with(crate::protocol::HEADER_LEN).validate().is_ok());
        for bad in [0, crate::protocol::HEADER_LEN - 1, check::MAX_BACKLOG + 1] {
            assert_eq!(with(bad).validate().unwrap_err().field, "max_backlog");
        }
    }
}
