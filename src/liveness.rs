//! The deadline rule for one peer, in ticks.
//!
//! A peer is alive while less than `interval × misses` has passed since the
//! last complete frame it sent (or since the connection began). The read path
//! only stamps "seen at tick T" — one store, no timer work. One timer per peer
//! stands at `last_seen + limit`; when it fires, [`Rule::check`] either finds
//! a newer stamp and names the next deadline, or declares the peer dead. So a
//! peer heartbeating every interval costs one timer event per `misses`
//! intervals, and a tick costs only what is due.
//!
//! Ticks come from [`crate::time::Clock`], which stamps "seen" rounding up and
//! reads "now" rounding down; with deadlines as `seen + limit` this makes an
//! eviction never early and at most one tick late.

use crate::time::Tick;

/// `interval` and `misses`, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    interval: Tick,
    misses: u32,
}

/// What [`Rule::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Still alive; look again at `next_deadline`.
    Alive {
        /// `last_seen + limit`, strictly after `now`.
        next_deadline: Tick,
    },
    /// Silent for at least `interval × misses`.
    Dead {
        /// Whole intervals without a frame (at least `misses`).
        misses: u64,
        /// Ticks since the last frame.
        idle: Tick,
    },
}

impl Rule {
    /// A rule of `misses` intervals of `interval` ticks each; both are at
    /// least one.
    pub fn new(interval: Tick, misses: u32) -> Rule {
        Rule {
            interval: interval.max(1),
            misses: misses.max(1),
        }
    }

    /// The interval in ticks.
    pub fn interval(&self) -> Tick {
        self.interval
    }

    /// Intervals allowed without a frame.
    pub fn misses(&self) -> u32 {
        self.misses
    }

    /// `interval × misses`: the silence after which a peer is dead.
    pub fn limit(&self) -> Tick {
        self.interval.saturating_mul(Tick::from(self.misses))
    }

    /// The tick at which a peer last seen at `last_seen` is due a check.
    pub fn deadline(&self, last_seen: Tick) -> Tick {
        last_seen.saturating_add(self.limit())
    }

    /// Whole intervals without a frame at `now`.
    pub fn missed(&self, last_seen: Tick, now: Tick) -> u64 {
        now.saturating_sub(last_seen) / self.interval
    }

    /// The verdict at `now` for a peer last seen at `last_seen`.
    pub fn check(&self, last_seen: Tick, now: Tick) -> Verdict {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a `Rule::new(10, 3)` reports when it fires exactly on time.
    const DEAD_AT_LIMIT: Verdict = Verdict::Dead {
        misses: 3,
        idle: 30,
    };

    /// A fake peer driven tick by tick: it sends a frame at each tick in
    /// `frames`; the "reactor" checks only when the timer fires.
    fn eviction_tick(rule: Rule, frames: &[Tick], horizon: Tick) -> Option<(Tick, Verdict)> {
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
        assert_eq!(eviction_tick(rule, &[], 1000), Some((30, DEAD_AT_LIMIT)));
    }

    #[test]
    fn eviction_is_exactly_limit_after_the_last_frame() {
        let rule = Rule::new(10, 3);
        for last in [1, 5, 29, 30, 31, 57, 100] {
            let (at, verdict) = eviction_tick(rule, &[last], 1000).unwrap();
            if last <= 30 {
                assert_eq!(at, last + 30, "last frame at {last}");
                assert_eq!(verdict, DEAD_AT_LIMIT);
            } else {
                // A frame after the first deadline is too late (one in the
                // deadline's own tick is read before the timer runs).
                assert_eq!(at, 30);
            }
        }
    }

    #[test]
    fn a_peer_that_keeps_talking_is_never_evicted() {
        let rule = Rule::new(10, 3);
        // A frame every 29 ticks: just inside the limit, over 100 limits.
        let frames: Vec<Tick> = (1..110).map(|i| i * 29).collect();
        assert_eq!(eviction_tick(rule, &frames, 3000), None);
        // Every 31 ticks: dead at the first gap that reaches 30.
        let frames: Vec<Tick> = (1..100).map(|i| i * 31).collect();
        assert_eq!(
            eviction_tick(rule, &frames, 3000),
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
    fn degenerate_values_are_clamped() {
        let rule = Rule::new(0, 0);
        assert_eq!(rule.limit(), 1);
        assert_eq!(rule.deadline(Tick::MAX), Tick::MAX);
    }
}
