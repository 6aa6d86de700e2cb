//! Reconnect delays: exponential growth, full jitter, a floor and a cap.
//!
//! Attempt `n` (counting from 1 since the last connection that proved the
//! server alive) waits a uniformly random time in
//!
//! ```text
//! [min, min(max, min × 1.6ⁿ)]
//! ```
//!
//! - **min 1 s, ×1.6, cap 120 s** are gRPC's published connection-backoff
//!   numbers (`doc/connection-backoff.md`): the first retry comes quickly, a
//!   server that stays down is retried about every minute or two, and the
//!   ceiling reaches the cap after ten failed attempts (1.6¹⁰ ≈ 110).
//! - **Full jitter** ("Exponential Backoff And Jitter", AWS Architecture Blog,
//!   2015) spreads each delay over the whole window instead of gRPC's ±20 %.
//!   When a server restarts, every one of its clients loses its connection in
//!   the same instant; full jitter is what turns their retries from one
//!   synchronized wave into a trickle the server can accept. lubdub keeps
//!   `min` as a floor (AWS's formula starts at zero) so that a dead server is
//!   never retried in a tight loop, and applies the jitter even to the first
//!   retry, which is the one a restart makes everybody take at once.
//! - The attempt count resets only when a new connection has *received* a
//!   frame: a server that accepts and then says nothing (overloaded, wedged,
//!   a port that something else holds) keeps the delays growing.
//!
//! Delays are in ticks; the shell converts the configured durations once.

use crate::rng::Rng;
use crate::time::Tick;

/// Growth factor per failed attempt (gRPC's `MULTIPLIER`).
pub const FACTOR: f64 = 1.6;

/// The delay window, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The shortest delay, and the first attempt's lower bound.
    pub min: Tick,
    /// The longest delay.
    pub max: Tick,
}

/// Per-client backoff state: one counter.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// A backoff at its first attempt.
    pub fn new() -> Backoff {
        Backoff::default()
    }

    /// Failed attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The upper end of the window for the next attempt.
    pub fn ceiling(&self, config: &BackoffConfig) -> Tick {
        let max = config.max.max(config.min);
        // Past 64 attempts the ceiling is long since `max`; stopping the
        // exponent there keeps the float finite.
        let grown = config.min as f64 * FACTOR.powi(self.attempt.min(64) as i32 + 1);
        if grown >= max as f64 {
            max
        } else {
            (grown as Tick).max(config.min)
        }
    }

    /// The delay before the next attempt, and counts that attempt.
    pub fn next_delay(&mut self, config: &BackoffConfig, rng: &mut Rng) -> Tick {
        let delay = rng.between(config.min, self.ceiling(config));
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Back to the first attempt: the server proved itself alive.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRPC_MS: BackoffConfig = BackoffConfig {
        min: 1_000,
        max: 120_000,
    };

    #[test]
    fn ceiling_grows_by_the_factor_up_to_the_cap() {
        let mut b = Backoff::new();
        let mut rng = Rng::new(1);
        let mut ceilings = Vec::new();
        for _ in 0..15 {
            ceilings.push(b.ceiling(&GRPC_MS));
            b.next_delay(&GRPC_MS, &mut rng);
        }
        assert_eq!(&ceilings[..4], &[1_600, 2_560, 4_096, 6_553]);
        for pair in ceilings.windows(2) {
            assert!(pair[1] >= pair[0], "{ceilings:?}");
        }
        assert_eq!(*ceilings.last().unwrap(), 120_000);
        // 1.6^10 × 1 s = 110 s: the eleventh attempt is the first one capped.
        assert!(
            ceilings[9] < 120_000 && ceilings[10] == 120_000,
            "{ceilings:?}"
        );
    }

    #[test]
    fn delays_are_jittered_inside_the_window() {
        let mut rng = Rng::new(42);
        for attempt in 0..20 {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..500 {
                let mut b = Backoff { attempt };
                let ceiling = b.ceiling(&GRPC_MS);
                let d = b.next_delay(&GRPC_MS, &mut rng);
                assert!(d >= GRPC_MS.min && d <= ceiling, "attempt {attempt}: {d}");
                seen.insert(d);
            }
            // Full jitter: 500 draws from a window ≥ 600 ticks wide are
            // nowhere near all equal, even on the first attempt.
            assert!(
                seen.len() > 100,
                "attempt {attempt}: {} distinct",
                seen.len()
            );
        }
    }

    #[test]
    fn grows_while_failing_and_resets_after_success() {
        let mut rng = Rng::new(3);
        let mut b = Backoff::new();
        let first_ceiling = b.ceiling(&GRPC_MS);
        for _ in 0..6 {
            b.next_delay(&GRPC_MS, &mut rng);
        }
        assert_eq!(b.attempt(), 6);
        assert!(b.ceiling(&GRPC_MS) > 10 * GRPC_MS.min);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.ceiling(&GRPC_MS), first_ceiling);
        let d = b.next_delay(&GRPC_MS, &mut rng);
        assert!(d <= first_ceiling);
    }

    #[test]
    fn degenerate_windows() {
        let mut rng = Rng::new(5);
        let fixed = BackoffConfig { min: 50, max: 50 };
        let mut b = Backoff::new();
        for _ in 0..10 {
            assert_eq!(b.next_delay(&fixed, &mut rng), 50);
        }
        // max below min is read as "no growth", not as a panic.
        let inverted = BackoffConfig { min: 50, max: 10 };
        assert_eq!(Backoff::new().next_delay(&inverted, &mut rng), 50);
        let zero = BackoffConfig { min: 0, max: 0 };
        assert_eq!(Backoff::new().next_delay(&zero, &mut rng), 0);
        let mut long = Backoff { attempt: u32::MAX };
        assert_eq!(long.ceiling(&GRPC_MS), 120_000);
        long.next_delay(&GRPC_MS, &mut rng);
        assert_eq!(long.attempt(), u32::MAX);
    }
}
