//! Connect pacing: a token bucket over ticks.
//!
//! A swarm opens its connections, and every reconnect, through one bucket so
//! that neither the ramp-up nor a mass reconnect after a server restart
//! exceeds `--connect-rate`. Credit is kept in integer units (a tick earns
//! `rate` units, a connect costs `ticks_per_second` units) so no rounding
//! drifts the rate over a long run.

use crate::time::Tick;

/// How much burst the bucket allows: 10 ms worth of connects, at least one
/// (and at least a tick's worth), so a late wakeup is caught up without a
/// long synchronized burst.
const BURST_DIVISOR: u64 = 100;

/// A token bucket of connects.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Connects per second; 0 means unpaced.
    rate: u64,
    ticks_per_second: u64,
    credit: u64,
    cap: u64,
    last: Tick,
}

impl Pacer {
    /// `rate` connects per second (0 = as fast as possible) on a clock of
    /// `ticks_per_second` ticks, starting at `now` with one connect's credit.
    pub fn new(rate: u64, ticks_per_second: u64, now: Tick) -> Pacer {
        let ticks_per_second = ticks_per_second.max(1);
        // Never less than a tick earns: with ticks longer than the burst
        // (`--tick` past 10 ms) a cap below it would throw away part of
        // every tick's credit, and the rate with it.
        let cap = (rate.saturating_mul(ticks_per_second) / BURST_DIVISOR)
            .max(ticks_per_second)
            .max(rate);
        Pacer {
            rate,
            ticks_per_second,
            credit: ticks_per_second,
            cap,
            last: now,
        }
    }

    fn refill(&mut self, now: Tick) {
        if now > self.last {
            let earned = (now - self.last).saturating_mul(self.rate);
            self.credit = self.credit.saturating_add(earned).min(self.cap);
            self.last = now;
        }
    }

    /// Takes one connect's credit if there is enough at `now`.
    pub fn try_take(&mut self, now: Tick) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now);
        if self.credit >= self.ticks_per_second {
            self.credit -= self.ticks_per_second;
            true
        } else {
            false
        }
    }

    /// The first tick at which [`try_take`](Self::try_take) will succeed.
    pub fn next_ready(&self, now: Tick) -> Tick {
        if self.rate == 0 || self.credit >= self.ticks_per_second {
            return now;
        }
        let missing = self.ticks_per_second - self.credit;
        self.last
            .max(now)
            .max(self.last + missing.div_ceil(self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connects taken by trying at every tick from 0 to `ticks`.
    fn taken(pacer: &mut Pacer, ticks: Tick) -> u64 {
        let mut n = 0;
        for now in 0..ticks {
            while pacer.try_take(now) {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn holds_the_rate_over_a_long_run() {
        // 1 ms ticks: 2000/s over 10 s, 150/s, and a rate below one per tick.
        for (rate, expected) in [(2_000, 20_000), (150, 1_500), (3, 30)] {
            let mut pacer = Pacer::new(rate, 1_000, 0);
            let n = taken(&mut pacer, 10_000);
            assert!(n + 1 >= expected && n <= expected + 1, "rate {rate}: {n}");
        }
    }

    #[test]
    fn holds_the_rate_on_ticks_longer_than_its_burst() {
        // 20 ms and 250 ms ticks (`swarm --tick`): each tick's connects
        // come at once, but every one of them comes: ten seconds of them,
        // and the one the bucket starts with.
        for ticks_per_second in [50, 4] {
            let mut pacer = Pacer::new(1_000, ticks_per_second, 0);
            let n = taken(&mut pacer, 10 * ticks_per_second + 1);
            assert!(
                (10_000..=10_001).contains(&n),
                "{ticks_per_second} ticks a second: {n}"
            );
        }
    }

    #[test]
    fn a_stall_allows_at_most_a_small_burst() {
        let mut pacer = Pacer::new(1_000, 1_000, 0);
        assert!(pacer.try_take(0));
        assert!(!pacer.try_take(0));
        // Five seconds without trying: only 10 ms of credit was kept.
        let mut burst = 0;
        while pacer.try_take(5_000) {
            burst += 1;
        }
        assert_eq!(burst, 10);
    }

    #[test]
    fn next_ready_is_exact() {
        let mut pacer = Pacer::new(4, 1_000, 0);
        assert_eq!(pacer.next_ready(0), 0);
        assert!(pacer.try_take(0));
        assert_eq!(pacer.next_ready(0), 250);
        assert!(!pacer.try_take(249));
        assert_eq!(pacer.next_ready(249), 250);
        assert!(pacer.try_take(250));
    }

    #[test]
    fn rate_zero_is_unpaced() {
        let mut pacer = Pacer::new(0, 1_000, 0);
        for _ in 0..100_000 {
            assert!(pacer.try_take(0));
        }
        assert_eq!(pacer.next_ready(7), 7);
    }
}
