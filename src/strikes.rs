//! Heartbeat rate strikes (`--min-heartbeat-interval`): a peer that
//! heartbeats faster than allowed is closed, one that only bursts is not.
//!
//! The rate is measured over a window, not gap by gap: each connection has
//! a bucket that fills at one heartbeat per minimum interval, up to as many
//! as a live peer could send in the whole liveness window (`interval ×
//! misses`), and each heartbeat takes one. A heartbeat that finds the bucket
//! empty is a strike; `strikes` of them and the peer is closed. The bucket
//! is refilled from the time since the previous heartbeat was read, so the
//! heartbeats a peer sent while the server was stalled (read all at once
//! after the stall) or while its connect was in flight are paid for by the
//! time they took to send: a burst is not a rate. A bucket full again —
//! a whole window within the rate — forgives the strikes.
//!
//! Replies are never withheld: a heartbeat within the allowance is answered
//! like any other, and so is a struck one until the peer is closed.

use std::time::Duration;

/// Fixed-point units of one heartbeat in a bucket: refills are fractions
/// of a heartbeat, and a peer at exactly the minimum interval must not lose
/// them to rounding.
const ONE: u64 = 1 << 16;

/// The rule every connection is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRule {
    min_interval_ns: u64,
    /// Bucket size, in `ONE`s.
    capacity: u64,
    strikes: u8,
}

impl RateRule {
    /// Heartbeats no faster than one per `min_interval` on average over
    /// `window` (the liveness window: `interval × misses`), `strikes`
    /// strikes allowed. `min_interval` must not be zero and `strikes` is at
    /// least 1.
    pub fn new(min_interval: Duration, window: Duration, strikes: u8) -> RateRule {
        let min_interval_ns = (min_interval.as_nanos() as u64).max(1);
        // At least two, so that a heartbeat and its retry in the same turn
        // are never a strike.
        let heartbeats = (window.as_nanos() as u64 / min_interval_ns).clamp(2, 1 << 20);
        RateRule {
            min_interval_ns,
            capacity: heartbeats * ONE,
            strikes: strikes.max(1),
        }
    }

    /// Heartbeats a full bucket holds.
    pub fn burst(&self) -> u64 {
        self.capacity / ONE
    }
}

/// One connection's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate {
    /// When the bucket was last refilled, in the reactor's nanoseconds.
    last_ns: u64,
    /// What is in it, in `ONE`s.
    tokens: u64,
    strikes: u8,
}

/// What one heartbeat came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate.
    Fine,
    /// Faster than the rate: the peer's `n`th strike, not yet its last.
    Struck(u8),
    /// The last strike: close the peer.
    Out,
}

impl Rate {
    /// A full bucket for a connection that begins at `now_ns`.
    pub fn new(rule: &RateRule, now_ns: u64) -> Rate {
        Rate {
            last_ns: now_ns,
            tokens: rule.capacity,
            strikes: 0,
        }
    }

    /// Strikes so far.
    pub fn strikes(&self) -> u8 {
        self.strikes
    }

    /// Accounts one heartbeat read at `now_ns` (several read at once all
    /// pass the same time).
    pub fn heartbeat(&mut self, rule: &RateRule, now_ns: u64) -> Verdict {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        if elapsed > 0 {
            self.last_ns = now_ns;
            // Scaled before the division, so fractions of an interval add
            // up. A gap longer than the bucket (the server stalled, and
            // reads now what the peer sent meanwhile) fills it past its
            // size, by what the gap paid for; a surplus left from such a
            // gap is not cut by a later, smaller refill (the rest of the
            // burst may come in the next read).
            let refill = (elapsed as u128 * ONE as u128 / rule.min_interval_ns as u128)
                .min(u64::MAX as u128 / 2) as u64;
            let limit = rule.capacity.max(refill);
            if self.tokens < limit {
                self.tokens = (self.tokens + refill).min(limit);
            }
            if self.tokens >= rule.capacity {
                self.strikes = 0;
            }
        }
        if self.tokens >= ONE {
            self.tokens -= ONE;
            return Verdict::Fine;
        }
        self.strikes = self.strikes.saturating_add(1);
        if self.strikes >= rule.strikes {
            Verdict::Out
        } else {
            Verdict::Struck(self.strikes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn rule() -> RateRule {
        // Interval 1 s × 3 misses, at most one heartbeat per 250 ms: a
        // bucket of 12, two strikes.
        RateRule::new(Duration::from_millis(250), Duration::from_secs(3), 2)
    }

    #[test]
    fn a_peer_at_exactly_the_minimum_interval_is_never_struck() {
        let rule = rule();
        let mut rate = Rate::new(&rule, 0);
        for k in 1..100_000u64 {
            assert_eq!(
                rate.heartbeat(&rule, k * 250 * MS),
                Verdict::Fine,
                "heartbeat {k}"
            );
        }
        // Off the grid too: a third of a millisecond each time, for fractions.
        let step = 250 * MS + 1;
        let mut rate = Rate::new(&rule, 0);
        for k in 1..10_000u64 {
            assert_eq!(rate.heartbeat(&rule, k * step), Verdict::Fine);
        }
    }

    #[test]
    fn a_flood_is_out_after_its_strikes_once_the_bucket_is_spent() {
        let rule = rule();
        assert_eq!(rule.burst(), 12);
        let mut rate = Rate::new(&rule, 0);
        let now = 10 * MS;
        for _ in 0..12 {
            assert_eq!(rate.heartbeat(&rule, now), Verdict::Fine);
        }
        assert_eq!(rate.heartbeat(&rule, now), Verdict::Struck(1));
        assert_eq!(rate.heartbeat(&rule, now), Verdict::Out);
    }

    #[test]
    fn twice_the_rate_is_out_within_a_few_windows() {
        let rule = rule();
        let mut rate = Rate::new(&rule, 0);
        let mut out_at = None;
        for k in 1..1000u64 {
            if rate.heartbeat(&rule, k * 125 * MS) == Verdict::Out {
                out_at = Some(k * 125);
                break;
            }
        }
        // 12 in the bucket, net drain of one every 250 ms: about 3 s.
        let out_at = out_at.expect("struck out");
        assert!((2_500..=4_000).contains(&out_at), "out at {out_at} ms");
    }

    #[test]
    fn a_burst_after_a_stall_is_paid_for_by_the_time_it_took() {
        let rule = rule();
        let mut rate = Rate::new(&rule, 0);
        // One a second; then the server stalls 30 s — ten liveness windows
        // — and reads the 30 heartbeats queued meanwhile at once, more than
        // two buckets, over two reads: the gap paid for them.
        let mut now = 0;
        for _ in 0..5 {
            now += 1000 * MS;
            assert_eq!(rate.heartbeat(&rule, now), Verdict::Fine);
        }
        now += 30_000 * MS;
        for k in 0..20 {
            assert_eq!(
                rate.heartbeat(&rule, now),
                Verdict::Fine,
                "queued heartbeat {k}"
            );
        }
        now += MS;
        for k in 20..30 {
            assert_eq!(
                rate.heartbeat(&rule, now),
                Verdict::Fine,
                "queued heartbeat {k}"
            );
        }
        assert_eq!(rate.strikes(), 0);
        // And once the surplus is spent, the rule holds again.
        let mut verdicts = Vec::new();
        for _ in 0..200 {
            verdicts.push(rate.heartbeat(&rule, now));
        }
        assert_eq!(verdicts.last(), Some(&Verdict::Out));
    }

    #[test]
    fn a_full_bucket_forgives_strikes() {
        let rule = rule();
        let mut rate = Rate::new(&rule, 0);
        for _ in 0..12 {
            rate.heartbeat(&rule, MS);
        }
        assert_eq!(rate.heartbeat(&rule, MS), Verdict::Struck(1));
        // Quiet for a whole bucket's worth: forgiven, and a new burst of
        // a bucket is fine again.
        let later = MS + 12 * 250 * MS;
        for _ in 0..12 {
            assert_eq!(rate.heartbeat(&rule, later), Verdict::Fine);
        }
        assert_eq!(rate.heartbeat(&rule, later), Verdict::Struck(1));
    }

    #[test]
    fn extreme_rules_neither_panic_nor_misbehave() {
        let tiny = RateRule::new(Duration::ZERO, Duration::ZERO, 0);
        assert_eq!(tiny.burst(), 2);
        let mut rate = Rate::new(&tiny, 0);
        assert_eq!(rate.heartbeat(&tiny, u64::MAX), Verdict::Fine);
        let huge = RateRule::new(
            Duration::from_secs(86_400),
            Duration::from_secs(86_400 * 365 * 100),
            255,
        );
        let mut rate = Rate::new(&huge, u64::MAX / 2);
        assert_eq!(
            rate.heartbeat(&huge, 0),
            Verdict::Fine,
            "time going back refills nothing"
        );
    }
}
