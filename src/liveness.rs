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
//! # The reactor's own stalls
//!
//! A reactor that does not run — a stopped process, a paused VM, a starved
//! CPU, an embedding program that blocks or stays away between calls —
//! cannot read heartbeats, and its peers' silence during that time is not
//! theirs. The shell measures how long it was kept from running past what
//! it allowed ([`crate::time::Stalls`]: its own work is never a stall, so
//! a busy reactor is never excused). [`Excuses`] decides which stalls to
//! excuse — longer than a threshold, and at most one per window of watched
//! time a little longer than the silence limit — and for those, the stamp
//! a peer is judged by moves forward as [`Rule::excuse`] says
//! ([`ExcusedStalls`] replays them at the verdict), as Cassandra's failure
//! detector convicts nobody on an interval that spans a long local pause.
//! A peer whose deadline had passed before the stall began is not moved:
//! it was dead on evidence the reactor had. So a dead peer's deadline moves
//! at most once, and no pattern of stalls can postpone its eviction for
//! ever (`props.rs` checks the bound over arbitrary callers and stops).
//!
//! Most stalls need no excuse to keep a live peer: its frames wait in the
//! kernel and the read before the verdict finds them. The excuse is for the
//! stall of a whole host — a paused VM — whose remote peers' frames were
//! never acknowledged and arrive only when their TCP retransmits them, some
//! time after the reactor is back.

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

impl Rule {
    /// A peer's last-seen stamp after the reactor stalled for `pause`,
    /// which began at `began` at the earliest, and woke at `now`: moved
    /// forward by the pause; after a stall of an interval or more, also far
    /// enough that its deadline is at least one interval away — long enough
    /// for a paused host's remote peers to be heard again once TCP
    /// retransmits. Never moved back, never past `now`.
    ///
    /// A peer whose deadline had passed before the stall began is not moved
    /// at all: it was dead on evidence the reactor had while it watched,
    /// and a stall after the fact is no excuse. Without this, a caller that
    /// stalled once per excuse window could keep a dead peer for ever.
    pub fn excuse(&self, last_seen: u64, pause: u64, began: u64, now: u64) -> u64 {
        if self.deadline(last_seen) <= began {
            return last_seen;
        }
        let one_more_interval = if pause >= self.interval {
            now.saturating_sub(self.limit).saturating_add(self.interval)
        } else {
            0
        };
        last_seen
            .saturating_add(pause)
            .max(one_more_interval)
            .min(now)
            .max(last_seen)
    }
}

/// The excused stalls recent enough to matter, so that a peer's stamp can
/// stay what it really was — the time its last frame was read — and the
/// stamp the rule judges is derived when it is needed: the real one with
/// every excused stall since applied ([`Rule::excuse`]). Nothing is touched
/// per connection when a stall is excused, and an eviction can report the
/// real silence and the excused part apart.
///
/// Four are kept. Only the first excused stall after a peer's last frame
/// can move its stamp: excuses are at least a window of watched time
/// apart ([`Excuses`]), longer than the limit, so by the time the next one
/// begins the moved deadline has passed (and the peer is dead on evidence
/// the reactor had); a peer still open has its last frame after the older
/// of the last two.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExcusedStalls {
    /// `(now, pause, began)` of each, oldest first once full.
    recent: [(u64, u64, u64); 4],
    len: usize,
}

impl ExcusedStalls {
    /// A stall of `pause` that began at `began` was excused at `now`.
    pub fn record(&mut self, now: u64, pause: u64, began: u64) {
        if self.len == self.recent.len() {
            self.recent.rotate_left(1);
            self.len -= 1;
        }
        self.recent[self.len] = (now, pause, began);
        self.len += 1;
    }

    /// The stamp to judge a peer by whose last frame was read at
    /// `last_seen`: every excused stall after it applied in turn.
    pub fn stamp(&self, rule: &Rule, last_seen: u64) -> u64 {
        self.recent[..self.len]
            .iter()
            .filter(|&&(now, _, _)| now > last_seen)
            .fold(last_seen, |stamp, &(now, pause, began)| {
                rule.excuse(stamp, pause, began, now)
            })
    }
}

/// Which stalls of the reactor are excused: those longer than `threshold`
/// (shorter ones are scheduling jitter), and no more than one per window of
/// time the reactor was watching — running, or asleep in `poll` where any
/// event would wake it. The second rule is what keeps the excuse honest: a
/// reactor kept from running again and again (a CPU-throttled container)
/// has at most one stall forgiven per window it actually watched, so a dead
/// peer is still evicted, however often and however long the reactor
/// stalls.
///
/// The window is `limit + interval + threshold`: strictly longer than the
/// watched time an excuse can leave a dead peer before its next deadline
/// (at most the limit, or one interval: [`Rule::excuse`]) plus the part of
/// a stall that a sleep in `poll` hides (at most the threshold). With a
/// window of just the limit, `misses = 1` and a stop that always began
/// just before the deadline would have excused the same dead peer for
/// ever.
#[derive(Debug, Clone, Copy)]
pub struct Excuses {
    threshold: u64,
    window: u64,
    /// Watched time since the last excused stall (`None`: none yet).
    watched: Option<u64>,
}

impl Excuses {
    /// Excuses of stalls over `threshold`, for peers held to `limit` with
    /// heartbeats every `interval` (all in one unit).
    pub fn new(threshold: u64, limit: u64, interval: u64) -> Excuses {
        Excuses {
            threshold,
            window: limit.saturating_add(interval).saturating_add(threshold),
            watched: None,
        }
    }

    /// Since the last wakeup the reactor watched for `watched` and was kept
    /// from running for `stall`: `None` when that was no stall, else
    /// whether it is excused.
    pub fn observe(&mut self, watched: u64, stall: u64) -> Option<bool> {
        if let Some(w) = &mut self.watched {
            *w = w.saturating_add(watched);
        }
        if stall <= self.threshold {
            return None;
        }
        let excused = self.watched.is_none_or(|w| w >= self.window);
        if excused {
            self.watched = Some(0);
        }
        Some(excused)
    }
}

#[cfg(test)]
mod props;

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
    fn one_stall_per_window_watched_is_excused_and_short_ones_never() {
        // Window: 200 + 50 + 50.
        let mut excuses = Excuses::new(50, 200, 50);
        assert_eq!(excuses.observe(1000, 50), None, "jitter");
        assert_eq!(excuses.observe(0, 51), Some(true));
        assert_eq!(
            excuses.observe(299, 500),
            Some(false),
            "watched too little since"
        );
        assert_eq!(excuses.observe(1, 500), Some(true));
    }

    #[test]
    fn stalls_again_and_again_still_let_a_dead_peer_be_evicted() {
        // A reactor kept from running for 90 of every 100 units (a
        // throttled container) and running 10, interval 10 × 3. The dead
        // peer, last seen at 0, is evicted once it has been watched silent
        // for about a limit, however the stalls fall.
        let rule = Rule::new(10, 3);
        let mut excuses = Excuses::new(5, rule.limit(), rule.interval());
        let mut stamp = 0;
        let mut evicted = None;
        'run: for cycle in 1..100u64 {
            let wake = cycle * 100;
            if excuses.observe(10, 90) == Some(true) {
                stamp = rule.excuse(stamp, 90, wake - 90, wake);
            }
            // Running for 10 units, timers checked as they come.
            for now in wake..wake + 10 {
                if matches!(rule.check(stamp, now), Verdict::Dead { .. }) {
                    evicted = Some(now);
                    break 'run;
                }
            }
        }
        assert!(evicted.is_some_and(|at| at <= 300), "{evicted:?}");
    }

    #[test]
    fn a_stop_that_always_begins_just_before_the_deadline_still_lets_a_dead_peer_go() {
        // The worst timing for every misses: the reactor watches until just
        // before the dead peer's deadline, then is stopped for longer than
        // an interval, the stop beginning inside a sleep in `poll` (so up to
        // a threshold of it counts as watched). Again and again.
        let threshold = 5;
        for misses in 1..=4 {
            let rule = Rule::new(10, misses);
            let mut excuses = Excuses::new(threshold, rule.limit(), rule.interval());
            let (mut stamp, mut wake) = (0, 0);
            let mut evicted_after = None;
            for stop in 1..=20 {
                let deadline = rule.deadline(stamp);
                let watched = deadline - 1 - wake + threshold;
                let stall = 25 - threshold;
                wake = deadline - 1 + 25;
                if excuses.observe(watched, stall) == Some(true) {
                    stamp = rule.excuse(stamp, stall, wake - stall, wake);
                }
                if matches!(rule.check(stamp, wake), Verdict::Dead { .. }) {
                    evicted_after = Some(stop);
                    break;
                }
            }
            assert!(
                evicted_after.is_some_and(|stops| stops <= 2),
                "misses={misses}: {evicted_after:?}"
            );
        }
    }

    #[test]
    fn excusing_moves_a_stamp_by_the_pause_and_leaves_one_interval() {
        let rule = Rule::new(10, 3);
        // Moved by the pause when that leaves more than an interval.
        assert_eq!(rule.excuse(100, 50, 110, 160), 150);
        // Otherwise far enough that the deadline is one interval away: the
        // deadline (130) fell inside a stall from 120 to 500.
        assert_eq!(rule.excuse(100, 380, 120, 500), 480);
        assert_eq!(rule.check(480, 500), Verdict::Alive { next_deadline: 510 });
        // A stall shorter than an interval moves the stamp by itself only.
        assert_eq!(rule.excuse(100, 9, 125, 134), 109);
        // Never into the future, never backwards, no overflow.
        assert_eq!(rule.excuse(990, 50, 950, 1000), 1000);
        assert_eq!(rule.excuse(1200, 50, 950, 1000), 1200);
        assert_eq!(
            rule.excuse(u64::MAX - 1, 50, u64::MAX - 50, u64::MAX),
            u64::MAX
        );
        assert_eq!(Rule::new(10, 1).excuse(0, 5, 8, 13), 5);
        assert_eq!(Rule::new(10, 1).excuse(0, 10, 5, 15), 15);
    }

    #[test]
    fn a_peer_dead_before_the_stall_began_is_not_rescued_by_it() {
        let rule = Rule::new(10, 3);
        // Deadline 130; the stall began at 130 or later: dead already.
        assert_eq!(rule.excuse(100, 50, 130, 180), 100);
        assert_eq!(rule.excuse(100, 370, 130, 500), 100);
        assert!(matches!(rule.check(100, 180), Verdict::Dead { .. }));
        // Began one unit before the deadline: the peer was still alive,
        // and is left one interval after the wakeup.
        assert_eq!(rule.excuse(100, 50, 129, 179), 159);
    }

    #[test]
    fn a_stall_convicts_nobody_on_its_own_evidence() {
        // Peer heartbeats every 10, limit 30. The whole host is stopped
        // from 105 to 250 — the peer too, or its frames wait for TCP to
        // retransmit them — so nothing new is in the kernel on waking.
        let rule = Rule::new(10, 3);
        let last_read = 100;
        let wake = 250;
        let paused = 145;
        assert_eq!(
            Excuses::new(5, rule.limit(), rule.interval()).observe(5, paused),
            Some(true)
        );
        let stamp = rule.excuse(last_read, paused, wake - paused, wake);
        // Moved by the whole stall: as if the reactor had never stopped.
        assert_eq!(
            rule.check(stamp, wake),
            Verdict::Alive { next_deadline: 275 }
        );
        assert!(matches!(rule.check(stamp, 275), Verdict::Dead { .. }));
        // A peer silent since 90, whose deadline (120) fell inside the
        // stall, is moved by the stall too, and no more.
        let stamp = rule.excuse(90, paused, wake - paused, wake);
        assert_eq!(
            rule.check(stamp, wake),
            Verdict::Alive { next_deadline: 265 }
        );
        assert!(matches!(rule.check(stamp, 265), Verdict::Dead { .. }));
        // A peer silent since 10, dead at 40, long before the stall: the
        // stall excuses nothing of its silence.
        let stamp = rule.excuse(10, paused, wake - paused, wake);
        assert!(matches!(rule.check(stamp, wake), Verdict::Dead { .. }));
    }

    #[test]
    fn the_excuse_log_replays_only_stalls_after_the_last_frame() {
        let rule = Rule::new(10, 3);
        let mut log = ExcusedStalls::default();
        assert_eq!(log.stamp(&rule, 100), 100);
        // Excused at 250 after 145: began at 105.
        log.record(250, 145, 105);
        assert_eq!(log.stamp(&rule, 100), 245);
        assert_eq!(log.stamp(&rule, 250), 250, "read at the wakeup: after it");
        assert_eq!(log.stamp(&rule, 10), 10, "dead before it began");
        // A second excuse a window later rescues nobody the first moved:
        // the moved deadline (275) passed before it began.
        log.record(700, 100, 600);
        assert_eq!(log.stamp(&rule, 100), 245);
        assert!(matches!(rule.check(245, 700), Verdict::Dead { .. }));
        // Old entries fall off; a peer heard from since is untouched by them.
        for at in [1000, 2000, 3000] {
            log.record(at, 100, at - 100);
        }
        assert_eq!(log.stamp(&rule, 2950), 3000);
        assert_eq!(log.stamp(&rule, 3000), 3000);
    }
}
