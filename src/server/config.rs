//! Server configuration and its validation.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::keepalive::KeepaliveConfig;
use crate::protocol::{DEFAULT_MAX_FRAME, HEADER_LEN};

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
}

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
            keepalive: KeepaliveConfig::default(),
            reuse_port: false,
            listen_backlog: 4096,
            stats_every: None,
            accept_pause: Duration::from_millis(100),
            events_capacity: 1024,
        }
    }
}

/// A configuration value that cannot work, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong, for a human.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The tick in force: the configured one, or `interval / 20` clamped to
    /// 1 ms..=100 ms — fine enough that an eviction lands within 5 % of
    /// an interval of its due time, coarse enough that the wheel rarely wakes.
    pub fn effective_tick(&self) -> Duration {
        self.tick.unwrap_or_else(|| {
            (self.interval / 20).clamp(Duration::from_millis(1), Duration::from_millis(100))
        })
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.to_string(),
            })
        };
        if self.interval.is_zero() {
            return err("interval", "must be longer than zero");
        }
        if self.misses == 0 {
            return err("misses", "must be at least 1");
        }
        let tick = self.effective_tick();
        if tick < Duration::from_micros(100) {
            return err("tick", "must be at least 100us");
        }
        if tick > self.interval {
            return err("tick", "must not be longer than the interval");
        }
        if self.max_frame < HEADER_LEN || self.max_frame > i32::MAX as usize {
            return err(
                "max_frame",
                "must be between 8 bytes (one header) and 2 GiB",
            );
        }
        if self.max_connections == Some(0) {
            return err("max_connections", "must be at least 1");
        }
        if self.max_backlog < HEADER_LEN {
            return err("max_backlog", "must hold at least one reply (8 bytes)");
        }
        if self.events_capacity == 0 {
            return err("events_capacity", "must be at least 1");
        }
        if self.stats_every.is_some_and(|d| d.is_zero()) {
            return err("stats_every", "must be longer than zero");
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
        ];
        for (config, field) in bad {
            assert_eq!(config.validate().unwrap_err().field, field);
        }
    }
}
