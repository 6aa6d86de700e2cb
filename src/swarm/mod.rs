//! Many heartbeat clients in one poll loop: a load harness for a connection-heavy server.
//!
//! A swarm holds `clients` connections to one server from one thread: one
//! `mio::Poll`, one `Slab` of connections (slot = token), one timer
//! [`Wheel`](crate::wheel::Wheel) for every client's deadlines, and one
//! [`Machine`](crate::client::machine::Machine) per connection, the same state
//! machine `lubdub client` runs.
//!
//! - Connects, and reconnects, go through one token bucket
//!   ([`pace::Pacer`]) at `connect_rate` per second.
//! - Client `i` of `N` heartbeats on the ticks congruent to `i × interval / N`,
//!   so heartbeats are spread evenly over the interval however the connects
//!   were timed.
//! - In flood mode each connection instead keeps `depth` requests in flight,
//!   sending one more for every reply (a closed loop).
//! - Every request→reply round trip goes into an HDR histogram.
//!
//! "Missing replies" are counted honestly: requests lost with a dropped
//! connection count, and at the end the swarm stops sending, waits up to
//! `grace` for replies still in flight, and counts what never came back.
//!
//! The per-reply path (read → match reply → pop send stamp → record RTT →
//! maybe send the next request) allocates nothing: buffers are made once at
//! start and per-connection state is a few dozen bytes plus its ring of send
//! stamps.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::check::{self, ConfigError};
use crate::client::{Target, Timing, MAX_WAIT};
use crate::keepalive::{KeepaliveConfig, SocketOptions};

mod conn;
pub mod counters;
pub mod hdr;
pub mod json;
pub mod merge;
pub mod pace;
pub mod plan;
pub mod ports;
mod reactor;
pub mod report;
mod stall_log;
pub mod status;
pub mod verdict;

pub use counters::{Counters, FailedBy, LostBy, Rtt};
pub use merge::{Part, PartCounts};
pub use reactor::Swarm;
pub use report::{Histograms, Report};
pub use status::Snapshot;
pub use verdict::Criteria;

/// What a request and its reply are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// lubdub heartbeat frames; the server's other frames prove liveness.
    Heartbeat,
    /// Fixed byte strings, for servers that are not lubdub (e.g. Redis
    /// inline `PING\r\n` → `+PONG\r\n`). Replies are matched byte for byte.
    Fixed {
        /// Sent as is.
        request: Vec<u8>,
        /// Expected back as is, once per request.
        reply: Vec<u8>,
    },
}

/// Everything a [`Swarm`] needs, in human units.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// The server: an address, or a name looked up again (at most once a
    /// second) while connects are being made, each of its addresses tried
    /// in turn.
    pub connect: Target,
    /// Connections to hold.
    pub clients: usize,
    /// Connects (and reconnects) per second; 0 means unpaced.
    pub connect_rate: u64,
    /// Heartbeat interval; in flood mode, the liveness unit.
    pub interval: Duration,
    /// Intervals without a received frame before a connection is given up.
    pub misses: u32,
    /// How long to run; `None` runs until the shutdown handle fires.
    pub duration: Option<Duration>,
    /// Local addresses to connect from, round-robin (empty: the kernel chooses).
    pub sources: Vec<IpAddr>,
    /// Keep this many requests in flight per connection instead of heartbeating.
    pub flood: Option<u32>,
    /// Percent of the clients closed on purpose every second, each to
    /// reconnect after its backoff, as a fleet of devices that come and go
    /// (0: none). Only connections with no request in flight are chosen, so
    /// churn never costs a reply.
    pub churn: f64,
    /// Any received bytes prove liveness; unparseable bytes are dropped.
    pub lenient: bool,
    /// Request and reply.
    pub exchange: Exchange,
    /// How long a connect may take.
    pub connect_timeout: Duration,
    /// Shortest reconnect delay.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// How long to wait at the end for replies still in flight.
    pub grace: Duration,
    /// How often the status callback runs; each snapshot covers the window
    /// since the previous one.
    pub status_every: Duration,
    /// What makes the run fail.
    pub criteria: Criteria,
    /// Socket options applied on connect; the kernel keepalive's idle time
    /// follows the swarm's silence limit unless set.
    pub keepalive: KeepaliveConfig,
    /// Largest frame accepted from the server.
    pub max_frame: usize,
    /// Timer resolution.
    pub tick: Duration,
    /// Under load, how long to wait before polling again (see
    /// [`crate::time::Batching`]); zero polls at once.
    pub batch_wait: Duration,
    /// Seed for jitter (`None`: from the OS).
    pub seed: Option<u64>,
    /// This swarm's clients as a slice of a larger fleet's, when it is one
    /// worker of several (`None`: the whole fleet).
    pub slice: Option<Slice>,
    /// Where to serve Prometheus metrics (`GET /metrics`), from the
    /// swarm's own poll loop (`None`: off).
    pub metrics: Option<std::net::SocketAddr>,
}

/// A swarm's clients as clients `first ..first + clients` of a fleet of
/// `of`, held by `workers` swarms (the workers of `lubdub swarm
/// --workers`), this one the `index`th, the fleet split as evenly as can
/// be with the first ones one more. Their heartbeats interleave: this
/// swarm's client `j` heartbeats at `(j × workers + index) / of` of the
/// interval, so the fleet's heartbeats are spread as evenly as one swarm
/// would spread them, and each worker's are spread over the whole
/// interval too. (Contiguous phases would give each worker a burst: at a
/// million clients in 53 workers, every worker sent all of its heartbeats
/// within 0.6 s of each 30 s, and its round trips showed it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// The fleet's index of this swarm's first client.
    pub first: usize,
    /// Clients in the whole fleet.
    pub of: usize,
    /// This swarm's place among the fleet's swarms.
    pub index: usize,
    /// Swarms in the fleet.
    pub workers: usize,
}

impl Slice {
    /// Where in the interval (as a fraction's numerator, over `of`) this
    /// swarm's client `j` heartbeats.
    pub fn position(&self, j: usize) -> usize {
        let strided = j.saturating_mul(self.workers).saturating_add(self.index);
        if self.workers > 0 && self.index < self.workers && strided < self.of {
            strided
        } else {
            // Not split as described: contiguous, still inside the fleet.
            (self.first + j).min(self.of.saturating_sub(1))
        }
    }
}

impl Default for SwarmConfig {
    /// One client to `127.0.0.1:8898`, 2000 connects/s, 5 s × 6, 2 s grace.
    ///
    /// 2000 connects per second opens 10,000 connections in 5 s while
    /// staying well inside a default listen backlog (`somaxconn` 4096) even
    /// if the server stalls for a second.
    fn default() -> Self {
        SwarmConfig {
            connect: Target::Addr(SocketAddr::from(([127, 0, 0, 1], 8898))),
            clients: 1,
            connect_rate: 2000,
            interval: Duration::from_secs(5),
            misses: 6,
            duration: None,
            sources: Vec::new(),
            flood: None,
            churn: 0.0,
            lenient: false,
            exchange: Exchange::Heartbeat,
            connect_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(120),
            grace: Duration::from_secs(2),
            status_every: Duration::from_secs(1),
            criteria: Criteria::default(),
            keepalive: KeepaliveConfig::default(),
            max_frame: crate::protocol::DEFAULT_MAX_FRAME,
            tick: Duration::from_millis(1),
            batch_wait: Duration::ZERO,
            seed: None,
            slice: None,
            metrics: None,
        }
    }
}

/// What stops a swarm before it starts, or its loop.
#[derive(Debug)]
pub enum SwarmError {
    /// The configuration cannot work (no clients, an empty request, …).
    Config(ConfigError),
    /// More connections than the ephemeral ports towards one server allow.
    Ports(String),
    /// More connections than this process may open.
    FileLimit {
        /// Descriptors needed: clients plus a reserve.
        needed: u64,
        /// The hard open-files limit.
        limit: u64,
    },
    /// Creating the poll instance or its waker failed.
    Setup(io::Error),
    /// Waiting for events failed.
    Poll(io::Error),
    /// The metrics listener could not be set up.
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
}

impl fmt::Display for SwarmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwarmError::Config(e) => write!(f, "bad configuration: {e}"),
            SwarmError::Ports(what) => f.write_str(what),
            SwarmError::FileLimit { needed, limit } => write!(
                f,
                "{needed} open files needed ({} clients + {} reserve) but this process may hold at most {limit} (ulimit -Hn); lower --clients or run several swarms",
                needed - crate::limits::FD_RESERVE,
                crate::limits::FD_RESERVE
            ),
            SwarmError::Setup(e) => write!(f, "cannot set up the event loop: {e}"),
            SwarmError::Poll(e) => write!(f, "waiting for events failed: {e}"),
            SwarmError::Metrics { addr, source } => {
                write!(f, "cannot serve metrics on {addr}: {source}")
            }
        }
    }
}

impl std::error::Error for SwarmError {}

/// Most connections one swarm holds: far past what one process's file
/// limit allows on any machine we know of.
pub const MAX_CLIENTS: usize = 10_000_000;
/// Deepest flood: requests kept in flight per connection.
pub const MAX_FLOOD_DEPTH: u32 = 4096;
/// Longest fixed request or reply.
pub const MAX_EXCHANGE_LEN: usize = 64 * 1024;

impl SwarmConfig {
    /// How long a connect may be in flight before it counts against the
    /// run: `--max-connect-wait`, or else the shorter of the connect timeout
    /// and two intervals. Two intervals: a connection that is not up by
    /// then has missed a heartbeat it should have sent, and a reconnect
    /// that hangs (a server that keeps its connections but takes no new
    /// ones) is seen long before the run ends rather than passing as a
    /// connection on its way back.
    pub fn connect_wait_bound(&self) -> Duration {
        self.criteria
            .max_connect_wait
            .unwrap_or_else(|| self.connect_timeout.min(self.interval.saturating_mul(2)))
    }

    pub(crate) fn timing(&self) -> Timing {
        Timing {
            interval: self.interval,
            misses: self.misses,
            connect_timeout: self.connect_timeout,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
        }
    }

    /// The socket options each connection gets: the kernel keepalive
    /// follows the swarm's own silence limit.
    pub fn socket_options(&self) -> SocketOptions {
        self.keepalive.resolve(self.timing().silence_limit())
    }

    /// Checks every field against its range; the first problem is returned,
    /// naming the field as the command line names its flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::number("clients", self.clients, 1, MAX_CLIENTS)?;
        check::number("connect_rate", self.connect_rate, 0, 1_000_000)?;
        self.timing().validate()?;
        if let Some(duration) = self.duration {
            check::duration(
                "duration",
                duration,
                Duration::from_millis(1),
                Duration::from_secs(366 * 24 * 3600),
            )?;
        }
        if let Some(depth) = self.flood {
            check::number("flood", depth, 1, MAX_FLOOD_DEPTH)?;
        }
        if !(0.0..=100.0).contains(&self.churn) {
            return Err(ConfigError::new(
                "churn",
                format!(
                    "must be a percentage between 0 and 100 (got {})",
                    self.churn
                ),
            ));
        }
        if self.churn > 0.0 && self.flood.is_some() {
            return Err(ConfigError::new(
                "churn",
                "needs interval mode: in flood mode every connection always has requests in flight",
            ));
        }
        if let Exchange::Fixed { request, reply } = &self.exchange {
            check::number("request_hex", request.len(), 1, MAX_EXCHANGE_LEN)?;
            check::number("reply_hex", reply.len(), 1, MAX_EXCHANGE_LEN)?;
        }
        check::duration("grace", self.grace, Duration::ZERO, MAX_WAIT)?;
        check::duration(
            "status_every",
            self.status_every,
            Duration::from_millis(1),
            MAX_WAIT,
        )?;
        self.keepalive.validate()?;
        check::duration(
            "max_p99",
            self.criteria.max_p99,
            Duration::from_micros(1),
            MAX_WAIT,
        )?;
        check::duration(
            "max_stall",
            self.criteria.max_stall,
            Duration::from_micros(1),
            MAX_WAIT,
        )?;
        if let Some(wait) = self.criteria.max_connect_wait {
            check::duration("max_connect_wait", wait, Duration::from_millis(1), MAX_WAIT)?;
        }
        check::max_frame(self.max_frame)?;
        check::client_tick(self.tick, self.interval)?;
        check::batch_wait(self.batch_wait)?;
        if let Some(slice) = self.slice {
            if slice.first.saturating_add(self.clients) > slice.of {
                return Err(ConfigError::new(
                    "worker",
                    format!(
                        "clients {}..{} are not within a fleet of {}",
                        slice.first,
                        slice.first.saturating_add(self.clients),
                        slice.of
                    ),
                ));
            }
        }
        if let Some(first) = self.sources.first() {
            if self
                .sources
                .iter()
                .any(|ip| ip.is_ipv4() != first.is_ipv4())
            {
                return Err(ConfigError::new(
                    "source_addrs",
                    "mixes IPv4 and IPv6 addresses; a connection can only come from its server's family",
                ));
            }
            if let Some(server) = self.connect.addr() {
                if first.is_ipv4() != server.is_ipv4() {
                    return Err(ConfigError::new(
                        "source_addrs",
                        format!(
                            "are {} but the server {server} is not",
                            if first.is_ipv4() { "IPv4" } else { "IPv6" },
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Parses `--source-addrs`: a single address, a comma list, or an inclusive
/// IPv4 range `A-B` (`127.0.0.2-127.0.0.20`), or any comma list of those.
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            None => out.push(
                part.parse::<IpAddr>()
                    .map_err(|_| format!("`{part}` is not an IP address"))?,
            ),
            Some((a, b)) => {
                let a: Ipv4Addr = a
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
                let b: Ipv4Addr = b
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{b}` is not an IPv4 address"))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a {
                    return Err(format!("`{part}` ends before it starts"));
                }
                if b - a >= 65_536 {
                    return Err(format!("`{part}` is more than 65536 addresses"));
                }
                out.extend((a..=b).map(|ip| IpAddr::V4(Ipv4Addr::from(ip))));
            }
        }
    }
    if out.is_empty() {
        return Err("no address given".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_split_in_slices_heartbeats_on_every_position_once_each_worker_all_over() {
        // 10 clients in 3 workers: 4, 3, 3, as the plan splits them.
        let (of, workers) = (10, 3);
        let mut seen = vec![0; of];
        let mut first = 0;
        for index in 0..workers {
            let clients = of / workers + usize::from(index < of % workers);
            let slice = Slice {
                first,
                of,
                index,
                workers,
            };
            let positions: Vec<usize> = (0..clients).map(|j| slice.position(j)).collect();
            for &p in &positions {
                seen[p] += 1;
            }
            // Spread over the whole interval, not a third of it.
            assert!(positions[0] < workers && *positions.last().unwrap() >= of - workers);
            first += clients;
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
        // A slice not split so stays inside the fleet.
        let odd = Slice {
            first: 8,
            of: 10,
            index: 5,
            workers: 3,
        };
        assert!((0..2).all(|j| odd.position(j) < 10));
    }

    #[test]
    fn parses_ranges_lists_and_single_addresses() {
        let v = parse_sources("127.0.0.2-127.0.0.20").unwrap();
        assert_eq!(v.len(), 19);
        assert_eq!(v[0], "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(v[18], "127.0.0.20".parse::<IpAddr>().unwrap());
        let v = parse_sources("127.0.0.1, ::1,10.0.0.255-10.0.1.0").unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[3], "10.0.1.0".parse::<IpAddr>().unwrap());
        assert!(parse_sources("127.0.0.9-127.0.0.2").is_err());
        assert!(parse_sources("nope").is_err());
        assert!(parse_sources("").is_err());
        assert!(parse_sources("0.0.0.0-255.255.255.255").is_err());
    }

    #[test]
    fn every_field_is_range_checked_by_name() {
        let base = SwarmConfig::default();
        assert_eq!(base.validate(), Ok(()));
        let long = SwarmConfig {
            exchange: Exchange::Fixed {
                request: vec![0],
                reply: vec![0; MAX_EXCHANGE_LEN + 1],
            },
            ..base.clone()
        };
        assert_eq!(long.validate().unwrap_err().field, "reply_hex");
        let empty = SwarmConfig {
            exchange: Exchange::Fixed {
                request: Vec::new(),
                reply: vec![0],
            },
            ..base.clone()
        };
        assert_eq!(empty.validate().unwrap_err().field, "request_hex");
        let v6_from_v4 = SwarmConfig {
            sources: vec!["::1".parse().unwrap()],
            ..base.clone()
        };
        assert_eq!(v6_from_v4.validate().unwrap_err().field, "source_addrs");
        let misses = SwarmConfig {
            misses: u32::MAX,
            ..base.clone()
        };
        assert_eq!(misses.validate().unwrap_err().field, "misses");
        let wait = SwarmConfig {
            criteria: Criteria {
                max_connect_wait: Some(Duration::ZERO),
                ..Criteria::default()
            },
            ..base
        };
        assert_eq!(wait.validate().unwrap_err().field, "max_connect_wait");
    }

    #[test]
    fn the_connect_wait_bound_is_the_shorter_of_the_connect_timeout_and_two_intervals() {
        let at = |interval_ms, timeout_ms| SwarmConfig {
            interval: Duration::from_millis(interval_ms),
            connect_timeout: Duration::from_millis(timeout_ms),
            ..SwarmConfig::default()
        };
        assert_eq!(
            at(200, 10_000).connect_wait_bound(),
            Duration::from_millis(400)
        );
        assert_eq!(
            at(5_000, 3_000).connect_wait_bound(),
            Duration::from_millis(3_000)
        );
        let flag = SwarmConfig {
            criteria: Criteria {
                max_connect_wait: Some(Duration::from_secs(7)),
                ..Criteria::default()
            },
            ..at(200, 10_000)
        };
        assert_eq!(flag.connect_wait_bound(), Duration::from_secs(7));
    }
}
