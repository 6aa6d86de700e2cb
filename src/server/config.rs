//! Server configuration and its validation.

use std::net::SocketAddr;
use std::time::Duration;

use crate::check::{self, ConfigError};
use crate::keepalive::{KeepaliveConfig, SocketOptions};
use crate::protocol::DEFAULT_MAX_FRAME;

/// How a [`Server`](super::Server) listens, judges liveness and protects
/// itself. `Config::default()` is the original Qt design's behaviour on port
/// 8898.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on. Default `0.0.0.0:8898`.
    pub listen: SocketAddr,
    /// Heartbeat interval peers are expected to keep. Default 5 s.
    pub interval: Duration,
    /// Intervals a peer may miss before it is evicted. Default 6.
    pub misses: u32,
    /// Width of one timer-wheel tick: evictions happen at most this late.
    /// `None` derives it from the interval (see [`Config::effective_tick`]).
    pub tick: Option<Duration>,
    /// Most connections held at once; more are accepted and closed at once.
    /// `None` derives it from the open-files limit at bind time.
    pub max_connections: Option<usize>,
    /// Largest frame accepted, header included. Default 64 KiB.
    pub max_frame: usize,
    /// Replies waiting for a peer that does not read, per connection, before
    /// it is closed. Default 64 KiB.
    pub max_backlog: usize,
    /// Bytes buffered across all connections — data payloads split across
    /// reads that the handler wants, and write backlogs — before the
    /// connection that would exceed it is closed. Default 64 MiB. Idle
    /// connections and heartbeats use none of it, and neither do data
    /// payloads when the handler does not read them.
    pub max_buffered: usize,
    /// Kernel keepalive and related socket options for accepted sockets.
    pub keepalive: KeepaliveConfig,
    /// Set `SO_REUSEPORT` so several processes can share the port.
    pub reuse_port: bool,
    /// `listen(2)` backlog; the kernel caps it at `net.core.somaxconn`.
    pub listen_backlog: i32,
    /// Log the counters at `info` this often.
    pub stats_every: Option<Duration>,
    /// How long accepting pauses when file descriptors run out.
    pub accept_pause: Duration,
    /// Readiness events fetched per poll.
    pub events_capacity: usize,
    /// While events come faster than this, wait up to this long before
    /// polling again, so one wakeup serves several peers (see
    /// [`crate::time::Batching`]); never past the next timer. Replies wait
    /// at most this much longer. Zero (the default): poll at once.
    pub batch_wait: Duration,
    /// Bytes sent to every peer as soon as it is accepted, unframed and
    /// exactly as given — as the original Qt server sends its welcome text,
    /// so clients written for it see what they expect. lubdub's own client
    /// and the swarm skip it when lenient. Default none.
    pub greeting: Option<Vec<u8>>,
    /// Send a heartbeat request to a peer silent for an interval (and again
    /// each further interval of silence), for peers that only answer. A
    /// peer that answers is kept; one that does not is evicted on the usual
    /// deadline. Costs one timer per connection per interval instead of per
    /// `interval × misses`. Default off.
    pub probe: bool,
    /// An already listening socket to accept from instead of binding
    /// `listen`: a descriptor inherited from a supervisor that shares one
    /// listener among several worker processes. The server takes it over
    /// (sets it non-blocking, closes it when it stops). Default none.
    pub listener_fd: Option<i32>,
    /// On a shutdown request, stop accepting and close the open
    /// connections spread evenly over this long (closes count as
    /// `drained`), so their clients' reconnects reach the next server as a
    /// trickle instead of a storm; then stop. `None` closes everything at
    /// once. Default none.
    pub drain: Option<Duration>,
    /// Commands from other threads that may wait for the loop
    /// ([`Commands`](super::Commands)); also the most applied per turn.
    /// Default 1024.
    pub command_queue: usize,
    /// Every connection begins with a PROXY protocol header (v1 or v2, see
    /// [`crate::proxy`]) from a load balancer in front: the client's address
    /// in it is the connection's peer — what
    /// [`Handler::on_connect`](super::Handler::on_connect) is given and
    /// every log line names. Until its header is complete a connection is
    /// not the handler's (no `on_connect`, no greeting, nothing read as
    /// frames); one whose header is malformed, or not complete within
    /// [`proxy_header_timeout`](Self::proxy_header_timeout), is closed and
    /// counted. A `LOCAL` header (the balancer's health check) admits the
    /// connection with the balancer's own address. Default off.
    pub proxy_protocol: bool,
    /// How long a connection may take to send its whole PROXY header,
    /// counted from the accept. Default 3 s.
    pub proxy_header_timeout: Duration,
    /// Where to serve Prometheus metrics (`GET /metrics`), from the
    /// server's own poll loop: one more listener, and at most
    /// [`MAX_SCRAPERS`](crate::metrics::MAX_SCRAPERS) scrape connections,
    /// with tokens after the connections' ([`Server::tokens`](super::Server::tokens)
    /// counts them). Default off.
    pub metrics: Option<SocketAddr>,
    /// Heartbeats faster than one per this, on average over the liveness
    /// window (`interval × misses`), earn strikes; see [`crate::strikes`].
    /// Replies are never withheld; a peer that runs out of strikes is
    /// closed ([`CloseReason::TooFast`](super::CloseReason::TooFast)). A
    /// fraction of `interval` (a quarter, say) leaves honest peers room
    /// for jitter and retries. Default off.
    pub min_heartbeat_interval: Option<Duration>,
    /// Strikes a peer may earn before it is closed for heartbeating too
    /// fast. Default 2.
    pub heartbeat_strikes: u8,
    /// At most this many connections open from one source address (IPv6:
    /// from one [`source_prefix_v6`](Self::source_prefix_v6) block); more
    /// are refused at the accept and counted (`over_source_limit`). With
    /// the PROXY protocol, the source is the client its header names.
    /// Default off: no table is kept.
    pub max_connections_per_source: Option<u32>,
    /// The IPv6 prefix length one source is counted by. Default 64 (one
    /// site's subnet: a host commonly holds all of it).
    pub source_prefix_v6: u8,
    /// `--allow` and `--deny` blocks: sources outside the allowed ones (if
    /// any are given) or inside a denied one are closed at the accept,
    /// before anything is read, and counted (`denied`). With the PROXY
    /// protocol the rules apply to the client its header names. Default:
    /// no rules.
    pub access: crate::access::AccessRules,
}

/// Default [`Config::max_buffered`]: room for a thousand max-size frames
/// split across reads at once, while one process's worth of connections
/// (about 20,000) that all sit idle costs none of it.
pub const DEFAULT_MAX_BUFFERED: usize = 64 * 1024 * 1024;

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8898)),
            interval: Duration::from_secs(5),
            misses: 6,
            tick: None,
            max_connections: None,
            max_frame: DEFAULT_MAX_FRAME,
            max_backlog: 64 * 1024,
            max_buffered: DEFAULT_MAX_BUFFERED,
            keepalive: KeepaliveConfig::default(),
            reuse_port: false,
            listen_backlog: 4096,
            stats_every: None,
            accept_pause: Duration::from_millis(100),
            events_capacity: 1024,
            batch_wait: Duration::ZERO,
            greeting: None,
            probe: false,
            listener_fd: None,
            drain: None,
            command_queue: 1024,
            proxy_protocol: false,
            proxy_header_timeout: Duration::from_secs(3),
            metrics: None,
            min_heartbeat_interval: None,
            heartbeat_strikes: 2,
            max_connections_per_source: None,
            source_prefix_v6: 64,
            access: crate::access::AccessRules::default(),
        }
    }
}

/// The most connections one reactor holds: far beyond any file limit seen
/// in practice (a limit above it is used only up to it).
pub const MAX_CONNECTIONS: usize = 100_000_000;

/// The most bytes `max_buffered` may allow: far beyond any real deployment.
pub const MAX_BUFFERED: usize = 1 << 40;

/// Upper bounds that keep every counter and buffer sane; far beyond any
/// real deployment.
const MAX_EVENTS: usize = 1 << 20;
const MAX_COMMANDS: usize = 1 << 20;

impl Config {
    /// The tick in force: the configured one, or `interval / 20` clamped to
    /// 1 ms..=100 ms — fine enough that an eviction lands within 5 % of
    /// an interval of its due time, coarse enough that the wheel rarely wakes.
    pub fn effective_tick(&self) -> Duration {
        self.tick.unwrap_or_else(|| {
            (self.interval / 20).clamp(Duration::from_millis(1), Duration::from_millis(100))
        })
    }

    /// `interval × misses`: the silence after which a peer is evicted
    /// (saturating; `validate` keeps it far from that).
    pub fn silence_limit(&self) -> Duration {
        self.interval
            .checked_mul(self.misses)
            .unwrap_or(Duration::MAX)
    }

    /// The socket options accepted connections get.
    pub fn socket_options(&self) -> SocketOptions {
        self.keepalive.resolve(self.silence_limit())
    }

    /// Checks every field; the first problem found is returned, naming the
    /// field as the command line names its flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::heartbeat(self.interval, self.misses)?;
        if let Some(tick) = self.tick {
            check::duration("tick", tick, Duration::from_micros(100), self.interval)?;
        }
        check::max_frame(self.max_frame)?;
        if let Some(n) = self.max_connections {
            check::number("max_connections", n, 1, MAX_CONNECTIONS)?;
        }
        check::max_backlog(self.max_backlog)?;
        let floor = self.max_frame.max(self.max_backlog);
        if self.max_buffered < floor {
            return Err(ConfigError::new(
                "max_buffered",
                format!(
                    "must hold at least one frame of max_frame and one backlog of max_backlog ({floor} bytes; got {})",
                    self.max_buffered
                ),
            ));
        }
        check::number("max_buffered", self.max_buffered, floor, MAX_BUFFERED)?;
        self.keepalive.validate()?;
        check::number("listen_backlog", self.listen_backlog, 1, i32::MAX)?;
        if let Some(every) = self.stats_every {
            check::duration(
                "stats_every",
                every,
                Duration::from_millis(1),
                check::MAX_INTERVAL,
            )?;
        }
        check::duration(
            "accept_pause",
            self.accept_pause,
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?;
        check::number("events_capacity", self.events_capacity, 1, MAX_EVENTS)?;
        check::batch_wait(self.batch_wait)?;
        check::number("command_queue", self.command_queue, 1, MAX_COMMANDS)?;
        if let Some(drain) = self.drain {
            check::duration(
                "drain",
                drain,
                Duration::from_millis(1),
                check::MAX_INTERVAL,
            )?;
        }
        // A balancer sends its header at once; a minute is far past any
        // reason to hold a slot for one.
        check::duration(
            "proxy_header_timeout",
            self.proxy_header_timeout,
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?;
        if let Some(min) = self.min_heartbeat_interval {
            // Faster than the interval itself would strike honest peers.
            check::duration(
                "min_heartbeat_interval",
                min,
                Duration::from_millis(1),
                self.interval,
            )?;
        }
        check::number("heartbeat_strikes", self.heartbeat_strikes, 1, u8::MAX)?;
        if let Some(n) = self.max_connections_per_source {
            check::number("max_connections_per_source", n, 1, MAX_CONNECTIONS as u32)?;
        }
        check::number("source_prefix_v6", self.source_prefix_v6, 1, 128)?;
        if let Some(greeting) = &self.greeting {
            // Sent whole on accept: it must fit the backlog a peer is
            // allowed, or every connection would close as a slow reader.
            check::number("greeting", greeting.len(), 1, self.max_backlog)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals_and_valid() {
        let c = Config::default();
        assert_eq!(c.listen.port(), 8898);
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.misses, 6);
        assert_eq!(c.effective_tick(), Duration::from_millis(100));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_short_interval_is_blamed_on_the_interval_not_on_the_derived_tick() {
        let c = Config {
            interval: Duration::from_millis(1),
            ..Config::default()
        };
        assert_eq!(c.effective_tick(), Duration::from_millis(1));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn tick_follows_short_intervals() {
        let c = Config {
            interval: Duration::from_millis(100),
            ..Config::default()
        };
        assert_eq!(c.effective_tick(), Duration::from_millis(5));
        let c = Config {
            interval: Duration::from_millis(10),
            ..Config::default()
        };
        assert_eq!(c.effective_tick(), Duration::from_millis(1));
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = [
            (
                Config {
                    interval: Duration::ZERO,
                    ..Config::default()
                },
                "interval",
            ),
            (
                Config {
                    misses: 0,
                    ..Config::default()
                },
                "misses",
            ),
            (
                Config {
                    tick: Some(Duration::from_secs(10)),
                    ..Config::default()
                },
                "tick",
            ),
            (
                Config {
                    max_frame: 7,
                    ..Config::default()
                },
                "max_frame",
            ),
            (
                Config {
                    max_connections: Some(0),
                    ..Config::default()
                },
                "max_connections",
            ),
            (
                Config {
                    max_backlog: 0,
                    ..Config::default()
                },
                "max_backlog",
            ),
            (
                Config {
                    interval: Duration::from_micros(500),
                    ..Config::default()
                },
                "interval",
            ),
            (
                Config {
                    misses: u32::MAX,
                    ..Config::default()
                },
                "misses",
            ),
            (
                Config {
                    max_buffered: 1000,
                    ..Config::default()
                },
                "max_buffered",
            ),
            (
                Config {
                    keepalive: KeepaliveConfig {
                        idle: Some(Duration::from_millis(500)),
                        ..KeepaliveConfig::default()
                    },
                    ..Config::default()
                },
                "keepalive_idle",
            ),
            (
                Config {
                    proxy_header_timeout: Duration::ZERO,
                    ..Config::default()
                },
                "proxy_header_timeout",
            ),
        ];
        for (config, field) in bad {
            assert_eq!(config.validate().unwrap_err().field, field);
        }
    }
}
