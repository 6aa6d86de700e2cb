//! Range checks shared by every configuration, and the error they give.
//!
//! Every numeric setting of the server, the client and the swarm has a
//! range, checked before anything is opened. A value outside it is a
//! [`ConfigError`] naming the field; the command line turns the field's name
//! into its flag (`max_buffered` → `--max-buffered`), so a user learns in
//! one line which flag to change and to what.

use std::fmt;
use std::time::Duration;

use crate::duration::format;

/// A configuration value that cannot work, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field, spelled as the struct field (and, with dashes,
    /// as the command-line flag).
    pub field: &'static str,
    /// What is wrong, for a human.
    pub reason: String,
}

impl ConfigError {
    /// An error about `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// `value` must lie in `min..=max`.
pub(crate) fn number<T>(field: &'static str, value: T, min: T, max: T) -> Result<(), ConfigError>
where
    T: PartialOrd + fmt::Display + Copy,
{
    if value < min || value > max {
        return Err(ConfigError::new(
            field,
            format!("must be between {min} and {max} (got {value})"),
        ));
    }
    Ok(())
}

/// `value` must lie in `min..=max`.
pub(crate) fn duration(
    field: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(
            field,
            format!(
                "must be between {} and {} (got {})",
                format(min),
                format(max),
                format(value)
            ),
        ));
    }
    Ok(())
}

/// The longest heartbeat interval any part of lubdub accepts.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The shortest heartbeat interval: a millisecond, the client's and the
/// swarm's timer resolution.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The most misses any part of lubdub accepts: with [`MAX_INTERVAL`] a
/// silence limit of over 27 years, far inside every counter's range.
pub const MAX_MISSES: u32 = 10_000;

/// `interval` and `misses`, the pair every heartbeat side has.
pub(crate) fn heartbeat(interval: Duration, misses: u32) -> Result<(), ConfigError> {
    duration("interval", interval, MIN_INTERVAL, MAX_INTERVAL)?;
    number("misses", misses, 1, MAX_MISSES)
}

/// `max_frame`, the frame limit every side applies to what it reads: room
/// for a header, and no more than a frame's `len` field can say.
pub(crate) fn max_frame(value: usize) -> Result<(), ConfigError> {
    number(
        "max_frame",
        value,
        crate::protocol::HEADER_LEN,
        i32::MAX as usize,
    )
}

/// The most bytes a send backlog may be allowed: far beyond any real use.
pub const MAX_BACKLOG: usize = 1 << 30;

/// `max_backlog`, the bound on bytes waiting to be written to one peer that
/// the server and the client share: room for a heartbeat at least.
pub(crate) fn max_backlog(value: usize) -> Result<(), ConfigError> {
    number(
        "max_backlog",
        value,
        crate::protocol::HEADER_LEN,
        MAX_BACKLOG,
    )
}

/// The longest `--batch-wait`: past a tenth of a second it is no longer a
/// short wait for more events but a latency of its own.
pub(crate) fn batch_wait(wait: Duration) -> Result<(), ConfigError> {
    duration(
        "batch_wait",
        wait,
        Duration::ZERO,
        Duration::from_millis(100),
    )
}

/// The client's and the swarm's `tick`: from 100 µs to the interval, and
/// never over a second (their timers are due every interval).
pub(crate) fn client_tick(tick: Duration, interval: Duration) -> Result<(), ConfigError> {
    duration(
        "tick",
        tick,
        Duration::from_micros(100),
        interval.min(Duration::from_secs(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_range_and_the_value() {
        let e = number("misses", 0u32, 1, 10).unwrap_err();
        assert_eq!(e.to_string(), "misses: must be between 1 and 10 (got 0)");
        let e = duration(
            "interval",
            Duration::from_micros(500),
            MIN_INTERVAL,
            MAX_INTERVAL,
        )
        .unwrap_err();
        assert_eq!(e.field, "interval");
        assert_eq!(e.reason, "must be between 1ms and 24h (got 500us)");
        assert!(heartbeat(Duration::from_secs(5), 6).is_ok());
        assert_eq!(
            heartbeat(Duration::from_secs(5), MAX_MISSES + 1)
                .unwrap_err()
                .field,
            "misses"
        );
    }
}
