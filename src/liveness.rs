//! The deadline rule for one peer, and how the reactor's own pauses are
//! kept out of it.
//!
//! # The rule
//!
//! A peer is alive while less than `limit = interval × misses` has passed
//! since the last complete frame it sent (or since the connection began).
//! The read path only stamps "seen at T" — one store, no timer work. One
//! timer per peer stands at `last_seen + limit`; when it fires,
//! [`Rule::check`] either finds a newer stamp and names the next deadline, or
//! declares the peer dead. So a peer heartbeating every interval costs one
//! timer event per `misses` intervals, and a tick costs only what is due.
//!
//! The rule counts in plain integer time units and reads no clock. The
//! server stamps in nanoseconds and hands the timer wheel
//! [`Rule::deadline`] rounded *up* to a whole tick, once: so an eviction is
//! never early, and at most one tick late, whatever the interval — the limit
//! is `interval × misses` exactly, never a rounded interval multiplied.
//!
//! # Evidence before verdict
//!
//! A verdict of [`Verdict::Dead`] is only as good as the stamp it was
//! judged on. The reactor reads whatever the kernel already holds for a peer
//! before it acts on the verdict, and judges again.
//!
//! # The reactor's own pauses
//!
//! A reactor that does not run — a stopped process, a paused VM, a starved
//! CPU, an embedding program that blocks — cannot read heartbeats, and its
//! peers' silence during that time is not theirs. [`pause`] tells such a
//! stall from ordinary scheduling jitter: the reactor woke later than its
//! earliest deadline by more than a threshold. After a pause, every peer's
//! stamp moves forward by the pause, and far enough that the peer still has
//! one whole interval of watched time before its deadline (see
//! [`Rule::excuse`]) — as Cassandra's failure detector convicts nobody on an
//! interval that spans a long local pause. That interval matters when the
//! whole host was paused: a remote peer's frames sent meanwhile were never
//! acknowledged and arrive only when its TCP retransmits them, after the
//! reactor is back. A peer that really went silent before the stall is
//! still evicted, later by the pause.

/// `interval` and `limit = interval × misses`, in the caller's time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    interval: u64,
    limit: u64,
}

/// What [`Rule::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Still alive; look again at `next_deadline`.
    Alive {
        /// `last_seen + limit`, strictly after `now`.
        next_deadline: u64,
    },
    /// Silent for at least `interval × misses`.
    Dead {
        /// Whole intervals without a frame (at least `misses`).
        misses: u64,
        /// Time since the last frame (at least the limit).
        idle: u64,
    },
}

impl Rule {
    /// A rule of `misses` intervals of `interval` units each; both are at
    /// least one. The product saturates rather than wrapping.
    pub fn new(interval: u64, misses: u32) -> Rule {
        let interval = interval.max(1);
        Rule::with_limit(interval, interval.saturating_mul(u64::from(misses.max(1))))
    }

    /// A rule whose limit was computed elsewhere (e.g. rounded to a coarser
    /// unit once). The limit is at least the interval.
    pub fn with_limit(interval: u64, limit: u64) -> Rule {
        let interval = interval.max(1);
        Rule {
            interval,
            limit: limit.max(interval),
        }
    }

    /// The interval.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// `interval × misses`: the silence after which a peer is dead.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// When a peer last seen at `last_seen` is due a check.
    pub fn deadline(&self, last_seen: u64) -> u64 {
        last_seen.saturating_add(self.limit)
    }

    /// Whole intervals without a frame at `now`.
    pub fn missed(&self, last_seen: u64, now: u64) -> u64 {
        now.saturating_sub(last_seen) / self.interval
    }

    /// The verdict at `now` for a peer last seen at `last_seen`.
    pub fn check(&self, last_seen: u64, now: u64) -> Verdict {
        let deadline = self.deadline(last_seen);
        if now >= deadline {
            Verdict::Dead {
                misses: self.missed(last_seen, now),
                idle: now.saturating_sub(last_seen),
            }
        } else {
            Verdict::Alive {
                next_deadline: deadline,
            }
        }
    }
}

/// The pause to excuse at a wakeup at `now`, if the reactor's earliest
/// deadline `earliest` had passed by more than `threshold`: the whole
/// lateness, so that after [`excuse`] the reactor stands where it would
/// have stood had it woken on time.
///
/// Measured against a deadline rather than the previous wakeup, so it
/// needs no record of how long the reactor meant to sleep and holds for
/// every way of driving it: a blocking poll, a caller's loop that calls in
/// late, or a burst of work between wakeups.
pub fn pause(now: u64, earliest: Option<u64>, threshold: u64) -> Option<u64> {
    let late = now.saturating_sub(earliest?);
    (late > threshold).then_some(late)
}

impl Rule {
    /// A peer's last-seen stamp after the reactor stalled for `pause` and
    /// woke at `now`: moved forward by the pause, and at least far enough
    /// that its deadline is one interval away — no peer is evicted on the
    /// evidence of the stall alone. Never moved back, never past `now`.
    pub fn excuse(&self, last_seen: u64, pause: u64, now: u64) -> u64 {
        let one_more_interval = now.saturating_sub(self.limit).saturating_add(self.interval);
        last_seen
            .saturating_add(pause)
            .max(one_more_interval)
            .min(now)
            .max(last_seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a `Rule::new(10, 3)` reports when it fires exactly on time.
    const DEAD_AT_LIMIT: Verdict = Verdict::Dead {
        misses: 3,
        idle: 30,
    };

    /// A fake peer driven unit by unit: it sends a frame at each time in
    /// `frames`; the "reactor" checks only when the timer fires.
    fn eviction_time(rule: Rule, frames: &[u64], horizon: u64) -> Option<(u64, Verdict)> {
        let mut last_seen = 0;
        let mut timer = rule.deadline(last_seen);
        for now in 0..horizon {
            if frames.contains(&now) {
                last_seen = now; // the read path: one store, no timer work
            }
            if now >= timer {
                match rule.check(last_seen, now) {
                    Verdict::Alive { next_deadline } => {
                        assert!(next_deadline > now, "rescheduled into the past");
                        timer = next_deadline;
                    }
                    dead => return Some((now, dead)),
                }
            }
        }
        None
    }

    #[test]
    fn silent_from_the_start_is_evicted_exactly_at_the_limit() {
        let rule = Rule::new(10, 3);
        assert_eq!(eviction_time(rule, &[], 1000), Some((30, DEAD_AT_LIMIT)));
    }

    #[test]
    fn eviction_is_exactly_limit_after_the_last_frame() {
        let rule = Rule::new(10, 3);
        for last in [1, 5, 29, 30, 31, 57, 100] {
            let (at, verdict) = eviction_time(rule, &[last], 1000).unwrap();
            if last <= 30 {
                assert_eq!(at, last + 30, "last frame at {last}");
                assert_eq!(verdict, DEAD_AT_LIMIT);
            } else {
                // A frame after the first deadline is too late (one at the
                // deadline itself is read before the timer runs).
                assert_eq!(at, 30);
            }
        }
    }

    #[test]
    fn a_peer_that_keeps_talking_is_never_evicted() {
        let rule = Rule::new(10, 3);
        // A frame every 29 units: just inside the limit, over 100 limits.
        let frames: Vec<u64> = (1..110).map(|i| i * 29).collect();
        assert_eq!(eviction_time(rule, &frames, 3000), None);
        // Every 31: dead at the first gap that reaches 30.
        let frames: Vec<u64> = (1..100).map(|i| i * 31).collect();
        assert_eq!(
            eviction_time(rule, &frames, 3000),
            Some((30, DEAD_AT_LIMIT))
        );
    }

    #[test]
    fn miss_count_is_whole_intervals() {
        let rule = Rule::new(10, 3);
        assert_eq!(rule.missed(5, 5), 0);
        assert_eq!(rule.missed(5, 14), 0);
        assert_eq!(rule.missed(5, 15), 1);
        assert_eq!(rule.missed(5, 44), 3);
        // A late check reports the real count, not just `misses`.
        assert_eq!(
            rule.check(0, 47),
            Verdict::Dead {
                misses: 4,
                idle: 47
            }
        );
        assert_eq!(rule.check(20, 49), Verdict::Alive { next_deadline: 50 });
    }

    #[test]
    fn the_limit_is_the_exact_product_not_a_rounded_interval_multiplied() {
        // 150 ms × 20 in nanoseconds is exactly 3 s: no tick enters the rule.
        let rule = Rule::new(150_000_000, 20);
        assert_eq!(rule.limit(), 3_000_000_000);
    }

    #[test]
    fn degenerate_values_are_clamped_and_nothing_overflows() {
        let rule = Rule::new(0, 0);
        assert_eq!(rule.limit(), 1);
        let huge = Rule::new(u64::MAX / 2, u32::MAX);
        assert_eq!(huge.limit(), u64::MAX);
        assert_eq!(huge.deadline(7), u64::MAX);
        assert!(matches!(huge.check(0, u64::MAX), Verdict::Dead { .. }));
    }

    #[test]
    fn a_pause_is_lateness_past_the_threshold_against_the_earliest_deadline() {
        assert_eq!(pause(1000, None, 50), None, "nothing was due");
        assert_eq!(pause(1000, Some(2000), 50), None, "woke early");
        assert_eq!(pause(1050, Some(1000), 50), None, "jitter");
        assert_eq!(pause(1051, Some(1000), 50), Some(51));
        assert_eq!(pause(2500, Some(1000), 50), Some(1500));
    }

    #[test]
    fn excusing_moves_a_stamp_by_the_pause_and_leaves_one_interval() {
        let rule = Rule::new(10, 3);
        // Moved by the pause when that leaves more than an interval.
        assert_eq!(rule.excuse(100, 50, 160), 150);
        // Otherwise far enough that the deadline is one interval away.
        assert_eq!(rule.excuse(100, 50, 500), 480);
        assert_eq!(rule.check(480, 500), Verdict::Alive { next_deadline: 510 });
        // Never into the future, never backwards, no overflow.
        assert_eq!(rule.excuse(990, 50, 1000), 1000);
        assert_eq!(rule.excuse(1200, 50, 1000), 1200);
        assert_eq!(rule.excuse(u64::MAX - 1, 50, u64::MAX), u64::MAX);
        assert_eq!(Rule::new(10, 1).excuse(0, 5, 100), 100);
    }

    #[test]
    fn a_stall_convicts_nobody_on_its_own_evidence() {
        // Peer heartbeats every 10, limit 30. The whole host is stopped
        // from 105 to 250 — the peer too, or its frames wait for TCP to
        // retransmit them — so nothing new is in the kernel on waking.
        let rule = Rule::new(10, 3);
        let last_read = 100;
        let wake = 250;
        let paused = pause(wake, Some(rule.deadline(last_read)), 5).unwrap();
        assert_eq!(paused, 120, "late for the deadline at 130");
        let stamp = rule.excuse(last_read, paused, wake);
        assert_eq!(
            rule.check(stamp, wake),
            Verdict::Alive { next_deadline: 260 }
        );
        // It has one interval to be heard from; if it is not, it is dead.
        assert!(matches!(rule.check(stamp, 260), Verdict::Dead { .. }));
        // A peer silent since 10 (its deadline at 40 long past when the
        // stall began) is still dead once that interval has passed.
        let stamp = rule.excuse(10, paused, wake);
        assert!(matches!(rule.check(stamp, 260), Verdict::Dead { .. }));
    }
}
