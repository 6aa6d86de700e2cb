//! A machine's timing rules, in ticks, and their conversion from human
//! units.

use std::time::Duration;

use crate::client::backoff::BackoffConfig;
use crate::time::{ticks_in, Tick};

/// Timing rules for one client, in ticks.
///
/// [`Config::from_durations`] makes one from human units; the fields are
/// public for a shell that needs more (a swarm's phases, flood mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The width of one tick. The machine counts in ticks and never reads
    /// a clock; it needs the width only to tell a human how long a silence
    /// was ([`Reason::Silent`](super::Reason::Silent)). It must be the width of the ticks the
    /// shell passes in.
    pub tick: Duration,
    /// Ticks between heartbeats (at least 1).
    pub interval: Tick,
    /// Ticks without a received frame before the connection is given up:
    /// `interval × misses` converted to ticks once, rounding up — not the
    /// rounded interval multiplied, which could be many ticks too long.
    pub silence_limit: Tick,
    /// Ticks a connect may take.
    pub connect_timeout: Tick,
    /// Reconnect delay window.
    pub backoff: BackoffConfig,
    /// Any received bytes prove liveness; unparseable bytes are not fatal.
    pub lenient: bool,
    /// Send a heartbeat on connect and then every interval. A swarm in flood
    /// mode turns this off and sends its requests itself.
    pub heartbeats: bool,
    /// Heartbeats fall on ticks `t` with `t ≡ phase (mod interval)`. A swarm
    /// gives each client its own phase so heartbeats are spread evenly over
    /// the interval; `None` counts intervals from the connect.
    pub phase: Option<Tick>,
}

impl Config {
    /// Heartbeats every `interval`, the connection given up after
    /// `interval × misses` without a frame, in ticks `tick` wide; the rest
    /// as [`ClientConfig::default`](crate::client::ClientConfig::default) has it
    /// (connect timeout 10 s, reconnect delays 1 s … 120 s, strict), which
    /// the `with_` methods change.
    ///
    /// Every duration is converted once, rounding up
    /// ([`crate::time::ticks_in`]), so no rule is shorter than asked: the
    /// silence limit is `interval × misses` converted, not the rounded
    /// interval multiplied. The interval and the limit are at least one
    /// tick.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lubdub::client::machine::Config;
    ///
    /// let config = Config::from_durations(
    ///     Duration::from_millis(15),
    ///     Duration::from_millis(50),
    ///     4,
    /// )
    /// .with_backoff(Duration::from_millis(100), Duration::from_secs(2));
    /// assert_eq!(config.interval, 4); // 50 ms in 15 ms ticks, rounded up
    /// assert_eq!(config.silence_limit, 14); // 200 ms, not 4 × 4 ticks
    /// assert_eq!(config.backoff.min, 7);
    /// ```
    pub fn from_durations(tick: Duration, interval: Duration, misses: u32) -> Config {
        let tick = Duration::from_nanos(crate::time::tick_width(tick));
        let silence_limit = interval.checked_mul(misses).unwrap_or(Duration::MAX);
        let defaults = crate::client::ClientConfig::default();
        Config {
            tick,
            interval: ticks_in(interval, tick).max(1),
            silence_limit: ticks_in(silence_limit, tick).max(1),
            connect_timeout: ticks_in(defaults.connect_timeout, tick),
            backoff: BackoffConfig {
                min: ticks_in(defaults.backoff_min, tick),
                max: ticks_in(defaults.backoff_max, tick),
            },
            lenient: defaults.lenient,
            heartbeats: true,
            phase: None,
        }
    }

    /// The same, with a connect allowed to take `timeout`.
    pub fn with_connect_timeout(self, timeout: Duration) -> Config {
        Config {
            connect_timeout: ticks_in(timeout, self.tick),
            ..self
        }
    }

    /// The same, with reconnect delays between `min` and `max` (see
    /// [`backoff`](crate::client::backoff)).
    pub fn with_backoff(self, min: Duration, max: Duration) -> Config {
        Config {
            backoff: BackoffConfig {
                min: ticks_in(min, self.tick),
                max: ticks_in(max, self.tick),
            },
            ..self
        }
    }

    /// The same, lenient or not (see [`Config::lenient`]).
    pub fn with_lenient(self, lenient: bool) -> Config {
        Config { lenient, ..self }
    }

    /// `ticks` of this config's ticks as a duration.
    pub fn duration(&self, ticks: Tick) -> Duration {
        Duration::from_nanos(ticks.saturating_mul(crate::time::tick_width(self.tick)))
    }
}
