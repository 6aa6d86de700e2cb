//! The one place where wall-clock time becomes ticks.
//!
//! Everything below the IO shell (`protocol`, `wheel`, `liveness`, the client
//! state machine) counts time in [`Tick`]s: plain `u64`s that start at zero
//! when a [`Clock`] is made. Only the shell holds a `Clock` and calls
//! [`Clock::now`]; the core is handed tick numbers, so its tests run on a fake
//! tick source and a 30-second timeout is tested in microseconds.
//!
//! Rounding follows tokio's time source: the current time rounds *down* (a
//! tick has begun), and a deadline or "seen at" instant rounds *up*, so a
//! deadline computed in ticks never fires before the duration it stands for.

use std::time::{Duration, Instant};

use crate::liveness::Excuses;

/// A point in time, counted in ticks since the [`Clock`]'s origin.
pub type Tick = u64;

/// See [`Clock::pause_threshold`].
const PAUSE_FLOOR_NS: u64 = 50_000_000;

/// Converts between `Instant`/`Duration` and [`Tick`]s of a fixed width.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    tick_ns: u64,
}

impl Clock {
    /// A clock whose tick zero is `origin` and whose ticks are `tick` long
    /// (at least one microsecond).
    pub fn new(origin: Instant, tick: Duration) -> Clock {
        Clock {
            origin,
            tick_ns: tick_width(tick),
        }
    }

    /// A clock starting now.
    pub fn start(tick: Duration) -> Clock {
        Clock::new(Instant::now(), tick)
    }

    /// The width of one tick.
    pub fn tick(&self) -> Duration {
        Duration::from_nanos(self.tick_ns)
    }

    /// The tick in progress at `instant` (rounded down).
    pub fn tick_at(&self, instant: Instant) -> Tick {
        self.nanos_since_origin(instant) / self.tick_ns
    }

    /// The first tick boundary at or after `instant` (rounded up): use it for
    /// "seen at" stamps so that deadlines derived from them are never early.
    pub fn tick_ceil(&self, instant: Instant) -> Tick {
        self.nanos_since_origin(instant).div_ceil(self.tick_ns)
    }

    /// The current tick (rounded down).
    pub fn now(&self) -> Tick {
        self.tick_at(Instant::now())
    }

    /// `instant` rounded down and rounded up at once — "now" for timers and
    /// "seen at" for stamps — from a single conversion: a reactor wakeup
    /// needs both, and the `Instant` arithmetic is most of its cost.
    pub fn tick_range(&self, instant: Instant) -> (Tick, Tick) {
        let nanos = self.nanos_since_origin(instant);
        (nanos / self.tick_ns, nanos.div_ceil(self.tick_ns))
    }

    /// Nanoseconds from the origin to `instant` (zero before the origin):
    /// the unit of "seen" stamps, which need no rounding at all.
    pub fn nanos(&self, instant: Instant) -> u64 {
        self.nanos_since_origin(instant)
    }

    /// The tick in progress at `nanos` since the origin (rounded down).
    pub fn tick_of(&self, nanos: u64) -> Tick {
        nanos / self.tick_ns
    }

    /// The first tick that begins at or after `nanos` since the origin
    /// (rounded up): a timer for that tick never fires before `nanos`.
    pub fn tick_after(&self, nanos: u64) -> Tick {
        nanos.div_ceil(self.tick_ns)
    }

    /// The width of one tick in nanoseconds.
    pub fn tick_nanos(&self) -> u64 {
        self.tick_ns
    }

    /// The shortest time, in nanoseconds, the reactor must have been kept
    /// from running to count as stalled (see [`Stalls`]): four ticks, and
    /// never under 50 ms. Being kept off the CPU a tick or so is the
    /// scheduler's ordinary jitter, and on a busy machine so are a few tens
    /// of milliseconds; longer is a stall that the peers did not cause.
    pub fn pause_threshold(&self) -> u64 {
        self.tick_ns.saturating_mul(4).max(PAUSE_FLOOR_NS)
    }

    /// `duration` in ticks, rounded up: a span of `ticks(d)` ticks is never
    /// shorter than `d`.
    pub fn ticks(&self, duration: Duration) -> Tick {
        ticks_in(duration, self.tick())
    }

    /// The instant at which tick `tick` begins.
    pub fn instant(&self, tick: Tick) -> Instant {
        self.origin + Duration::from_nanos(tick.saturating_mul(self.tick_ns))
    }

    /// A span of `ticks` ticks as a duration.
    pub fn duration(&self, ticks: Tick) -> Duration {
        Duration::from_nanos(ticks.saturating_mul(self.tick_ns))
    }

    /// How long to sleep from `now` until tick `deadline` has begun; zero if
    /// it already has.
    pub fn until(&self, deadline: Tick, now: Instant) -> Duration {
        let deadline_nanos = deadline.saturating_mul(self.tick_ns);
        Duration::from_nanos(deadline_nanos.saturating_sub(self.nanos_since_origin(now)))
    }

    fn nanos_since_origin(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.origin).as_nanos() as u64
    }
}

/// The width in nanoseconds of a tick asked to be `tick` long, as every
/// [`Clock`] takes it: at least one microsecond (a finer tick would only
/// make timers wake for nothing), at most `u64::MAX` nanoseconds.
pub fn tick_width(tick: Duration) -> u64 {
    u64::try_from(tick.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1_000)
}

/// `duration` in ticks `tick` wide ([`tick_width`]), rounded up: a span of
/// that many ticks is never shorter than `duration`. Pure arithmetic, so
/// the sans-IO core converts its settings with it and agrees with the
/// shell's [`Clock::ticks`] to the tick.
pub fn ticks_in(duration: Duration, tick: Duration) -> Tick {
    u64::try_from(duration.as_nanos())
        .unwrap_or(u64::MAX)
        .div_ceil(tick_width(tick))
}

/// Finds the stretches of time a reactor's thread was kept from running —
/// stopped, starved of CPU, paused with its VM, or held by an embedding
/// program past the time it said it would be away — and says which of those
/// stalls to excuse ([`crate::liveness::Excuses`]).
///
/// # Segments
///
/// The reactor's time is cut into segments by the moments it notes:
///
/// - a *progress point* ([`Stalls::progress`]): it just did one bounded
///   unit of work (read a peer, accepted, fired a timer);
/// - *entering `poll`* ([`Stalls::before_poll`]) with a timeout;
/// - a *judgement* ([`Stalls::judge`]): at every wakeup, and again before
///   the timers run;
/// - *returning to its caller* ([`Stalls::returned`]), who asked it to block
///   for at most some timeout.
///
/// Every segment has an allowance: the timeout asked of `poll` (rounded up
/// to the millisecond `poll` sleeps in) for a sleep, the caller's timeout
/// (and never less than the threshold) for the caller's turn, nothing for
/// work. A segment that outlasts its allowance by more than the threshold
/// is a stall — a stop, a paused VM, a starved CPU or a caller that did not
/// come back in time shows up as one long segment, because nothing is noted
/// while the thread does not run.
///
/// Work is never a stall, however much of it there is: it is cut into
/// bounded units by progress points, so a busy reactor has only short
/// segments. (An earlier measure — wall time less the thread's CPU time —
/// counted time the kernel spent in interrupts on the thread's behalf as
/// "not run" where the kernel accounts interrupt time apart
/// (`CONFIG_IRQ_TIME_ACCOUNTING`), and could not tell the caller's own work
/// between calls from the reactor's. No CPU clock is read now.)
///
/// Each judgement reports the single longest overrun since the last one:
/// small delays, however many, never add up to a stall, and a stall is
/// never longer than the stretch it was. Time past the threshold of an
/// overrun was not watched; the rest was, and only what was watched before
/// a stall began counts toward its excuse ([`Excuses`]).
#[derive(Debug)]
pub struct Stalls {
    threshold: Duration,
    /// Where the current segment began, and its allowance.
    segment: Option<(Instant, Duration)>,
    /// The segment with the longest overrun since the last judgement.
    worst: Option<Worst>,
    /// Time watched since the last judgement: every segment's length,
    /// less its overrun where that is past the threshold.
    watched: Duration,
    excuses: Excuses,
}

/// The segment with the longest overrun in a span between judgements.
#[derive(Debug, Clone, Copy)]
struct Worst {
    overrun: Duration,
    /// Where the segment began: the earliest the stall can have begun.
    began: Instant,
    /// Time watched in the span before the segment began.
    watched_before: Duration,
}

/// A stall found at a judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// How long the thread was kept from running, in nanoseconds: the
    /// overrun of one segment past its allowance.
    pub nanos: u64,
    /// Nanoseconds from the earliest moment the stall can have begun (the
    /// start of the segment it overran) to the judgement: at least `nanos`.
    /// A peer whose deadline had passed before then was dead while the
    /// reactor watched; one whose deadline is after it gets the benefit of
    /// the doubt.
    pub since: u64,
    /// Whether it is excused (the peers' deadlines move by it).
    pub excused: bool,
}

impl Stalls {
    /// Stalls over `threshold` nanoseconds count; which are excused is
    /// decided for peers held to `limit` with heartbeats every `interval`
    /// (nanoseconds, see [`Excuses`]).
    pub fn new(threshold: u64, limit: u64, interval: u64) -> Stalls {
        Stalls {
            threshold: Duration::from_nanos(threshold),
            segment: None,
            worst: None,
            watched: Duration::ZERO,
            excuses: Excuses::new(threshold, limit, interval),
        }
    }

    /// The thread did a unit of work that ended at `now`.
    pub fn progress(&mut self, now: Instant) {
        self.begin_segment(now, Duration::ZERO);
    }

    /// The thread is about to wait in `poll` for at most `timeout`: returns
    /// the timeout to use, never longer than the threshold. A stop that
    /// begins while the thread sleeps cannot be told from the sleep until
    /// the sleep was due to end, so the reactor wakes at least that often
    /// (an idle server with the default 5 s interval and 100 ms tick, 2.5
    /// times a second; at most 20 times) and no stall longer than twice the
    /// threshold goes unseen.
    pub fn before_poll(&mut self, now: Instant, timeout: Option<Duration>) -> Duration {
        let timeout = timeout.map_or(self.threshold, |t| t.min(self.threshold));
        // `poll` sleeps in whole milliseconds, rounded up: that much is the
        // sleep asked for, not a stall.
        self.begin_segment(now, ceil_millis(timeout));
        timeout
    }

    /// Control goes back to the caller at `now`, who asked to be kept for
    /// at most `timeout`: its turn is allowed that long (and at least the
    /// threshold — `None`, "until the next timer", allows just that) before
    /// it counts as a stall. A caller that asked for `Some(ZERO)` and then
    /// worked or slept for half a second kept the reactor from running for
    /// that long, whatever it did meanwhile.
    pub fn returned(&mut self, now: Instant, timeout: Option<Duration>) {
        let allowed = timeout.unwrap_or(Duration::ZERO).max(self.threshold);
        self.begin_segment(now, allowed);
    }

    /// A judgement at `now` (a wakeup, or the moment before timers run):
    /// the stall since the last judgement, if there was one, and whether it
    /// is excused. What follows is work until noted otherwise.
    pub fn judge(&mut self, now: Instant) -> Option<Stall> {
        self.begin_segment(now, Duration::ZERO);
        let watched = std::mem::take(&mut self.watched);
        let nanos = |d: Duration| d.as_nanos() as u64;
        let Some(worst) = self.worst.take() else {
            // Jitter at most, not a stall: all of the span was watched.
            self.excuses.observe(nanos(watched), 0);
            return None;
        };
        // Only what was watched before the stall began earns it an excuse:
        // watched time after it (the caller's ordinary turn that followed a
        // stop late in a turn, say) would otherwise let a stall right after
        // the last excuse — before the deadline that one moved a dead peer
        // to — be excused, and move it again, turn after turn.
        let excused = self
            .excuses
            .observe(nanos(worst.watched_before), nanos(worst.overrun))?;
        if !excused {
            self.excuses
                .observe(nanos(watched.saturating_sub(worst.watched_before)), 0);
        }
        // After an excuse, what was watched between the stall and this
        // judgement counts toward no window: deadlines move from here on.
        Some(Stall {
            nanos: nanos(worst.overrun),
            since: nanos(now.saturating_duration_since(worst.began)),
            excused,
        })
    }

    /// Ends the current segment at `now` (keeping it if its overrun is the
    /// longest since the last judgement) and begins one with `allowed`.
    fn begin_segment(&mut self, now: Instant, allowed: Duration) {
        if let Some((began, allowance)) = self.segment {
            let len = now.saturating_duration_since(began);
            let overrun = len.saturating_sub(allowance);
            // An overrun within the threshold is work or jitter, and was
            // watched like the rest; past it, none of it was.
            if overrun <= self.threshold {
                self.watched += len;
            } else {
                if self.worst.is_none_or(|w| overrun > w.overrun) {
                    self.worst = Some(Worst {
                        overrun,
                        began,
                        watched_before: self.watched,
                    });
                }
                self.watched += len - overrun;
            }
        }
        self.segment = Some((now, allowed));
    }
}

/// `d` rounded up to whole milliseconds.
fn ceil_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// A short wait before polling again, so that one wakeup serves several
/// peers when they come faster than one at a time.
///
/// An idle load wakes a reactor for one heartbeat at a time: every
/// heartbeat pays a whole sleep and wakeup (two context switches and the
/// `epoll_wait` around them) for one read and one write. While events come
/// in faster than `window` — the last poll returned more than one, or came
/// within `window` of the one before — the loop sleeps up to `window`
/// before polling again, and the poll then returns all that arrived
/// meanwhile. The wait never runs past the next timer (evictions stay on
/// time) and is skipped after a full batch (there is more waiting already)
/// and while events are sparse (a lone heartbeat is answered at once). A
/// reply waits at most `window` longer; that is the price.
#[derive(Debug)]
pub struct Batching {
    window: Duration,
    full: usize,
    last_events: usize,
    last_wake: Option<Instant>,
    gap: Duration,
}

impl Batching {
    /// Waits of up to `window` (zero: never), for polls of `full` events.
    pub fn new(window: Duration, full: usize) -> Batching {
        Batching {
            window,
            full,
            last_events: 0,
            last_wake: None,
            gap: Duration::MAX,
        }
    }

    /// A poll returned `events` at `now`.
    pub fn polled(&mut self, now: Instant, events: usize) {
        self.last_events = events;
        if events > 0 {
            if let Some(last) = self.last_wake {
                self.gap = now.saturating_duration_since(last);
            }
            self.last_wake = Some(now);
        }
    }

    /// How long to sleep before the next poll, `until_timer` the time to
    /// the next timer (`None`: no timer).
    pub fn pause(&self, until_timer: Option<Duration>) -> Duration {
        let busy = self.last_events >= 2 || (self.last_events == 1 && self.gap < self.window);
        if self.window.is_zero() || !busy || self.last_events >= self.full {
            return Duration::ZERO;
        }
        until_timer.map_or(self.window, |t| t.min(self.window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_never_makes_a_deadline_early() {
        let origin = Instant::now();
        let clock = Clock::new(origin, Duration::from_millis(10));
        let seen = origin + Duration::from_millis(13);
        assert_eq!(clock.tick_at(seen), 1);
        assert_eq!(clock.tick_ceil(seen), 2);
        let limit = clock.ticks(Duration::from_millis(95));
        assert_eq!(limit, 10);
        // The deadline tick begins no earlier than seen + 95 ms.
        let deadline = clock.tick_ceil(seen) + limit;
        assert!(clock.instant(deadline) >= seen + Duration::from_millis(95));
        // ...and no later than one tick after seen + 95 ms (plus the rounding of `seen`).
        assert!(clock.instant(deadline) <= seen + Duration::from_millis(95 + 20));
        assert_eq!(clock.tick_ceil(origin + Duration::from_millis(20)), 2);
    }

    #[test]
    fn tick_range_is_floor_and_ceil() {
        let origin = Instant::now();
        let clock = Clock::new(origin, Duration::from_millis(10));
        for ms in [0, 1, 9, 10, 11, 19, 20, 12345] {
            let at = origin + Duration::from_millis(ms);
            assert_eq!(
                clock.tick_range(at),
                (clock.tick_at(at), clock.tick_ceil(at)),
                "{ms} ms"
            );
        }
    }

    #[test]
    fn nanos_and_ticks_agree_off_the_grid() {
        let origin = Instant::now();
        let clock = Clock::new(origin, Duration::from_millis(100));
        let at = origin + Duration::from_millis(150);
        assert_eq!(clock.nanos(at), 150_000_000);
        assert_eq!(clock.tick_of(150_000_000), 1);
        assert_eq!(clock.tick_after(150_000_000), 2);
        assert_eq!(clock.tick_after(200_000_000), 2);
        assert_eq!(clock.nanos(origin - Duration::from_millis(1)), 0);
        assert_eq!(clock.pause_threshold(), 400_000_000);
        let fine = Clock::new(origin, Duration::from_millis(1));
        assert_eq!(fine.pause_threshold(), 50_000_000);
    }

    /// A reactor's notes driven on a made-up clock: `ms` from `t0`.
    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_stopped_thread_is_stalled_and_a_busy_one_is_not() {
        let t0 = Instant::now();
        let mut stalls = Stalls::new(20_000_000, 1_000_000_000, 100_000_000);
        // Never asleep longer than the threshold: a stop inside a long
        // sleep would look like the sleep.
        let cap = Duration::from_millis(20);
        assert_eq!(stalls.before_poll(t0, None), cap);
        assert_eq!(stalls.judge(at(t0, 20)), None, "asleep as asked");
        // 60 ms of work in units of 1 ms: no stall.
        for ms in 21..=80 {
            stalls.progress(at(t0, ms));
        }
        stalls.before_poll(at(t0, 80), Some(Duration::from_millis(5)));
        assert_eq!(stalls.judge(at(t0, 85)), None, "work is not a stall");
        // Stopped for 60 ms in the middle of a turn: one unit of work
        // that took 60 ms.
        stalls.progress(at(t0, 86));
        stalls.progress(at(t0, 146));
        let stall = stalls.judge(at(t0, 150)).expect("a stall");
        assert_eq!(stall.nanos, 60_000_000);
        assert_eq!(stall.since, 64_000_000, "it began at 86 ms at the latest");
        assert!(stall.excused);
        // Over-sleeping what poll was asked for is a stall too; the second
        // within the window is counted but not excused.
        stalls.before_poll(at(t0, 150), Some(Duration::from_millis(1)));
        let stall = stalls.judge(at(t0, 211)).expect("a stall");
        assert_eq!(stall.nanos, 60_000_000);
        assert!(!stall.excused, "{stall:?}");
    }

    #[test]
    fn a_caller_is_allowed_the_timeout_it_asked_for_and_no_more() {
        let t0 = Instant::now();
        let threshold = 50_000_000;
        let mut stalls = Stalls::new(threshold, 300_000_000, 100_000_000);
        let mut ms = 0;
        // A loop that asks for 200 ms and comes back after 200 ms (its own
        // poll, another reactor's turn): ordinary, for ever.
        for _ in 0..50 {
            stalls.before_poll(at(t0, ms), Some(Duration::from_millis(200)));
            stalls.judge(at(t0, ms + 1));
            stalls.returned(at(t0, ms + 1), Some(Duration::from_millis(200)));
            ms += 201;
            assert_eq!(
                stalls.before_poll(at(t0, ms), None),
                Duration::from_millis(50)
            );
            assert_eq!(stalls.judge(at(t0, ms)), None, "at {ms} ms");
        }
        // Any caller may take the threshold, even one that asked for zero.
        stalls.returned(at(t0, ms), Some(Duration::ZERO));
        ms += 50;
        stalls.before_poll(at(t0, ms), Some(Duration::ZERO));
        assert_eq!(stalls.judge(at(t0, ms)), None);
        // Asked for zero, gone 650 ms (work or sleep alike): 600 ms past
        // its allowance is a stall.
        stalls.returned(at(t0, ms), Some(Duration::ZERO));
        ms += 650;
        stalls.before_poll(at(t0, ms), Some(Duration::ZERO));
        let stall = stalls.judge(at(t0, ms)).expect("a stall");
        assert_eq!(stall.nanos, 600_000_000);
        assert!(stall.excused, "the first is");
        // The same again and again: the caller's excess is not watched
        // time, only its 50 ms allowance is, so the next excuse waits for
        // a window (300 + 100 + 50 ms) of that watched before a stall
        // begins: one turn in ten, where counting the caller's time as
        // watched would excuse every turn.
        let mut excused = Vec::new();
        for turn in 1..=27 {
            stalls.returned(at(t0, ms), Some(Duration::ZERO));
            ms += 650;
            stalls.before_poll(at(t0, ms), Some(Duration::ZERO));
            let stall = stalls.judge(at(t0, ms)).expect("a stall");
            if stall.excused {
                excused.push(turn);
            }
        }
        assert_eq!(excused, [10, 20]);
    }

    #[test]
    fn work_is_watched_time() {
        // Window: 300 + 100 + 50 ms. After one excused stall, a reactor
        // busy for 500 ms (units of 5 ms, never asleep) has watched a
        // window, and the next stall is excused.
        let t0 = Instant::now();
        let mut stalls = Stalls::new(50_000_000, 300_000_000, 100_000_000);
        stalls.judge(at(t0, 0));
        stalls.progress(at(t0, 0));
        stalls.progress(at(t0, 100));
        assert!(stalls.judge(at(t0, 100)).expect("a stall").excused);
        let mut ms = 100;
        while ms < 600 {
            ms += 5;
            stalls.progress(at(t0, ms));
            if ms % 50 == 0 {
                stalls.before_poll(at(t0, ms), Some(Duration::ZERO));
                assert_eq!(stalls.judge(at(t0, ms)), None);
            }
        }
        stalls.progress(at(t0, ms + 100));
        let stall = stalls.judge(at(t0, ms + 100)).expect("a stall");
        assert!(stall.excused, "500 ms of work is a window watched");
    }

    #[test]
    fn small_delays_again_and_again_are_never_summed_into_a_stall() {
        // Every wakeup a little late (here 0.4 ms on a 1 ms sleep), every
        // unit of work a few ms: jitter, not a stall, however long it goes
        // on.
        let t0 = Instant::now();
        let mut stalls = Stalls::new(20_000_000, 1_000_000_000, 100_000_000);
        let mut us = 0u64;
        let t = |us: u64| t0 + Duration::from_micros(us);
        for i in 0..2000 {
            stalls.before_poll(t(us), Some(Duration::from_millis(1)));
            us += 1400;
            if i % 50 == 49 {
                us += 15_000; // now and then a hiccup, still under the threshold
            }
            assert_eq!(stalls.judge(t(us)), None, "wakeup {i}");
            us += 3000;
            stalls.progress(t(us));
            assert_eq!(stalls.judge(t(us)), None, "turn {i}");
        }
    }

    #[test]
    fn until_is_zero_for_past_deadlines() {
        let origin = Instant::now();
        let clock = Clock::new(origin, Duration::from_millis(5));
        let now = origin + Duration::from_millis(12);
        assert_eq!(clock.until(2, now), Duration::ZERO);
        assert_eq!(clock.until(3, now), Duration::from_millis(3));
    }

    #[test]
    fn batching_waits_only_while_events_come_faster_than_its_window() {
        let w = Duration::from_millis(5);
        let t0 = Instant::now();
        let mut b = Batching::new(w, 1024);
        // Nothing seen yet, and a lone event after a long quiet: no wait.
        assert_eq!(b.pause(None), Duration::ZERO);
        b.polled(t0, 1);
        assert_eq!(b.pause(None), Duration::ZERO);
        b.polled(t0 + Duration::from_secs(1), 1);
        assert_eq!(b.pause(None), Duration::ZERO);
        // One event soon after another, or several at once: wait, never
        // past the next timer.
        b.polled(t0 + Duration::from_millis(1001), 1);
        assert_eq!(b.pause(None), w);
        assert_eq!(
            b.pause(Some(Duration::from_millis(2))),
            Duration::from_millis(2)
        );
        b.polled(t0 + Duration::from_millis(1010), 3);
        assert_eq!(b.pause(Some(Duration::from_secs(1))), w);
        // A timer wakeup with no events, and a full batch: no wait.
        b.polled(t0 + Duration::from_millis(1020), 0);
        assert_eq!(b.pause(None), Duration::ZERO);
        b.polled(t0 + Duration::from_millis(1021), 1024);
        assert_eq!(b.pause(None), Duration::ZERO);
        // A zero window never waits.
        let mut off = Batching::new(Duration::ZERO, 1024);
        off.polled(t0, 100);
        assert_eq!(off.pause(None), Duration::ZERO);
    }
}
