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
        let tick_ns = (tick.as_nanos() as u64).max(1_000);
        Clock { origin, tick_ns }
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
        (duration.as_nanos() as u64).div_ceil(self.tick_ns)
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

/// Measures how long a reactor's thread was kept from running — stopped,
/// starved of CPU, blocked in a write to a full pipe, or held by an
/// embedding program between calls — and says which of those stalls to
/// excuse ([`crate::liveness::Excuses`]).
///
/// Over a span of wakeups, the stall is the wall time less the CPU time the
/// thread used and less the sleep it asked `poll` for. The reactor's own
/// work is CPU time, so however busy it is, work is never a stall (were it
/// one, a reactor saturated by a flood would excuse every silent peer for
/// ever); a stop, a starved CPU or a blocked thread uses no CPU and shows in
/// full. The thread's CPU clock (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`,
/// a system call) is read only when a wakeup comes more than the threshold
/// after the last one, not counting the sleep asked for — anything shorter
/// cannot hold a stall — or the span since the last reading has lasted
/// twice the threshold: an idle reactor pays for a reading every other
/// wakeup at most, a busy one for about one per threshold of work.
#[derive(Debug)]
pub struct Stalls {
    /// The last reading of the thread's CPU time, and when it was taken.
    mark: Option<(Instant, Duration)>,
    /// The sleep `poll` was allowed since the mark.
    allowed: Duration,
    /// The last wakeup.
    last_wake: Option<Instant>,
    /// When the thread last went into `poll`, and the timeout it asked for.
    sleep: Option<(Instant, Option<Duration>)>,
    threshold: Duration,
    excuses: Excuses,
}

/// A stall found at a wakeup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// How long the thread was kept from running, in nanoseconds.
    pub nanos: u64,
    /// Whether it is excused (the peers' stamps move by it).
    pub excused: bool,
}

impl Stalls {
    /// Stalls over `threshold` nanoseconds count; which are excused is
    /// decided for peers held to `limit` with heartbeats every `interval`
    /// (nanoseconds, see [`Excuses`]).
    pub fn new(threshold: u64, limit: u64, interval: u64) -> Stalls {
        Stalls {
            mark: None,
            allowed: Duration::ZERO,
            last_wake: None,
            sleep: None,
            threshold: Duration::from_nanos(threshold),
            excuses: Excuses::new(threshold, limit, interval),
        }
    }

    /// The thread is about to wait in `poll` for at most `timeout`: returns
    /// the timeout to use, never longer than the threshold. A stop that
    /// begins while the thread sleeps cannot be told from the sleep until
    /// the sleep was due to end, so the reactor wakes at least that often
    /// (an idle server with the default 5 s interval and 100 ms tick, 2.5 times
    /// a second; at most 20 times) and no stall longer than
    /// twice the threshold goes unseen.
    pub fn before_poll(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        let timeout = timeout.map_or(self.threshold, |t| t.min(self.threshold));
        self.sleep = Some((Instant::now(), Some(timeout)));
        Some(timeout)
    }

    /// The thread woke at `now`: the stall since the last wakeup, if it
    /// was one.
    ///
    /// A stall is found at the wakeup it ends: the time since the last
    /// wakeup not asleep in `poll` must pass the threshold, and of that
    /// time, the part the thread did not run is the stall. The CPU clock
    /// is read then, and also once the span since the last reading has
    /// lasted twice the threshold, only to keep spans short: without a
    /// reading at every wakeup, the CPU time is known per span, and a
    /// span's "not run" includes every small delay in it — so a stall is
    /// never longer than the one wakeup it ended, and small delays, however
    /// many, never add up to one.
    pub fn after_poll(&mut self, now: Instant) -> Option<Stall> {
        let mut awake = now.saturating_duration_since(self.last_wake.unwrap_or(now));
        if let Some((entered, timeout)) = self.sleep.take() {
            let slept = now.saturating_duration_since(entered);
            // `poll` sleeps in whole milliseconds, rounded up: that much
            // over the timeout is the sleep asked for, not a stall.
            let allowed = timeout.map_or(slept, |t| slept.min(ceil_millis(t)));
            self.allowed += allowed;
            awake = awake.saturating_sub(allowed);
        }
        self.last_wake = Some(now);
        let Some((mark, mark_cpu)) = self.mark else {
            self.mark = Some((now, thread_cpu_time()));
            self.allowed = Duration::ZERO;
            return None;
        };
        let gap = now.saturating_duration_since(mark);
        if awake <= self.threshold && gap < self.threshold * 2 {
            return None; // nothing that could be a stall, and a short span
        }
        let cpu = thread_cpu_time();
        let not_run = gap
            .saturating_sub(cpu.saturating_sub(mark_cpu))
            .saturating_sub(self.allowed);
        let stalled = if awake > self.threshold {
            not_run.min(awake)
        } else {
            Duration::ZERO
        };
        self.mark = Some((now, cpu));
        self.allowed = Duration::ZERO;
        let nanos = stalled.as_nanos() as u64;
        let watched = gap.saturating_sub(stalled).as_nanos() as u64;
        let excused = self.excuses.observe(watched, nanos)?;
        Some(Stall { nanos, excused })
    }
}

/// `d` rounded up to whole milliseconds.
fn ceil_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; the clock id is
    // a constant every Linux supports.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
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

    #[test]
    fn a_blocked_thread_is_stalled_and_a_busy_one_is_not() {
        let mut stalls = Stalls::new(20_000_000, 1_000_000_000, 100_000_000);
        // Never asleep longer than the threshold: a stop inside a long
        // sleep would look like the sleep.
        let cap = Some(Duration::from_millis(20));
        assert_eq!(stalls.before_poll(None), cap);
        assert_eq!(stalls.before_poll(Some(Duration::from_secs(30))), cap);
        // Asleep in poll as asked: no stall.
        stalls.before_poll(Some(Duration::from_millis(5)));
        std::thread::sleep(Duration::from_millis(5));
        let now = Instant::now();
        assert_eq!(stalls.after_poll(now), None);
        // Working for 60 ms (CPU time): no stall.
        let until = Instant::now() + Duration::from_millis(60);
        while Instant::now() < until {}
        stalls.before_poll(Some(Duration::ZERO));
        let now = Instant::now();
        assert_eq!(stalls.after_poll(now), None, "work is not a stall");
        // Kept from running for 60 ms (here: asleep outside poll).
        std::thread::sleep(Duration::from_millis(60));
        stalls.before_poll(Some(Duration::ZERO));
        let now = Instant::now();
        let stall = stalls.after_poll(now).expect("a stall");
        assert!(stall.nanos >= 55_000_000, "{stall:?}");
        assert!(stall.excused);
        // Over-sleeping what poll was asked for is a stall too; the second
        // within the window is counted but not excused.
        stalls.before_poll(Some(Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(60));
        let now = Instant::now();
        let stall = stalls.after_poll(now).expect("a stall");
        assert!(!stall.excused, "{stall:?}");
    }

    #[test]
    fn small_delays_again_and_again_are_never_summed_into_a_stall() {
        // Every wakeup a little late (here 0.4 ms on a 1 ms sleep): jitter,
        // not a stall, however long it goes on.
        let mut stalls = Stalls::new(20_000_000, 1_000_000_000, 100_000_000);
        for i in 0..200 {
            stalls.before_poll(Some(Duration::from_millis(1)));
            std::thread::sleep(Duration::from_micros(1400));
            if i % 50 == 49 {
                // Now and then a hiccup, still under the threshold.
                std::thread::sleep(Duration::from_millis(15));
            }
            let now = Instant::now();
            assert_eq!(stalls.after_poll(now), None, "wakeup {i}");
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
}
