//! "No pattern of stalls can postpone an eviction for ever", as a property:
//! a reactor's loop simulated on a made-up clock — the stall measure
//! ([`Stalls`]), the excuses ([`ExcusedStalls`]) and the rule, wired as the
//! server wires them — driven by an arbitrary caller (any timeout, any mix
//! of work and sleep between calls) and arbitrary stops of the process, with
//! one peer that sent a frame and went silent. It must be evicted, never
//! before the limit, and within a bound that does not grow with the run.

use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use super::{ExcusedStalls, Rule, Verdict};
use crate::time::Stalls;

const MS: u64 = 1_000_000;
const INTERVAL: u64 = 100 * MS;
const MISSES: u32 = 3;
const THRESHOLD: u64 = 50 * MS;

/// One call of the caller's loop and what happens around it (milliseconds).
#[derive(Debug, Clone)]
struct Turn {
    /// The timeout the caller passes: `None`, or `Some` of that many ms.
    timeout: Option<u64>,
    /// How long `poll` really sleeps, if less than asked (an event).
    woken_after: u64,
    /// Units of the reactor's own work after the wakeup, each this long.
    work: Vec<u64>,
    /// The caller's own time before it calls again (work or sleep alike).
    caller: u64,
    /// A stop of the whole process, and where it lands: 0 in `poll`,
    /// 1 in the middle of the work, 2 in the caller's time, 3 in the work
    /// after the verdict (the rest of `fire_timers`: an evidence read, a
    /// handler's `on_close`, a log line on a full pipe).
    stop: Option<(u64, u8)>,
}

fn turn() -> impl Strategy<Value = Turn> {
    (
        prop_oneof![
            Just(None),
            (0u64..400).prop_map(Some),
            (0u64..1200).prop_map(Some)
        ],
        0u64..80,
        vec(0u64..8, 0..6),
        prop_oneof![0u64..60, 0u64..800],
        proptest::option::weighted(0.3, (0u64..2_500, 0u8..4)),
    )
        .prop_map(|(timeout, woken_after, work, caller, stop)| Turn {
            timeout,
            woken_after,
            work,
            caller,
            stop,
        })
}

/// The simulated reactor and its one dead peer.
struct Sim {
    t0: Instant,
    /// Now, in nanoseconds since `t0`.
    now: u64,
    stalls: Stalls,
    excused: ExcusedStalls,
    rule: Rule,
    last_seen: u64,
}

impl Sim {
    /// The reactor at time zero, its peer last heard from at `last_seen`.
    fn new(last_seen: u64) -> Sim {
        let rule = Rule::new(INTERVAL, MISSES);
        Sim {
            t0: Instant::now(),
            now: 0,
            stalls: Stalls::new(THRESHOLD, rule.limit(), rule.interval()),
            excused: ExcusedStalls::default(),
            rule,
            last_seen,
        }
    }

    fn at(&self) -> Instant {
        self.t0 + Duration::from_nanos(self.now)
    }

    fn judge(&mut self) {
        if let Some(stall) = self.stalls.judge(self.at()) {
            if stall.excused {
                self.excused
                    .record(self.now, stall.nanos, self.now.saturating_sub(stall.since));
            }
        }
    }

    /// Whether the timer fired and the verdict was death.
    fn verdict(&self) -> bool {
        let stamp = self.excused.stamp(&self.rule, self.last_seen);
        matches!(self.rule.check(stamp, self.now), Verdict::Dead { .. })
    }

    /// Runs the turns over and over until the peer is evicted or `horizon`
    /// passes; returns when it was evicted, and the longest stretch
    /// between two verdicts (a stop included).
    fn run(&mut self, turns: &[Turn], horizon: u64) -> (Option<u64>, u64) {
        let mut longest = 0;
        let mut last_verdict = self.now;
        for turn in turns.iter().cycle() {
            if self.now > horizon {
                return (None, longest);
            }
            let stop = |place: u8| match turn.stop {
                Some((ms, p)) if p == place => ms * MS,
                _ => 0,
            };
            // poll: the reactor's next timer is the peer's deadline.
            let deadline = self
                .rule
                .deadline(self.excused.stamp(&self.rule, self.last_seen));
            let until_timer = Duration::from_nanos(deadline.saturating_sub(self.now));
            let asked = turn.timeout.map(Duration::from_millis);
            let wait = Some(asked.map_or(until_timer, |a| a.min(until_timer)));
            let wait = self.stalls.before_poll(self.at(), wait);
            let slept = (wait.as_nanos() as u64).min(turn.woken_after * MS);
            self.now += slept + stop(0);
            self.judge();
            // The reactor's work, a stop perhaps in the middle of it.
            for (i, &ms) in turn.work.iter().enumerate() {
                self.now += ms * MS + if i == 0 { stop(1) } else { 0 };
                self.stalls.progress(self.at());
            }
            if turn.work.is_empty() {
                self.now += stop(1);
            }
            self.judge();
            longest = longest.max(self.now - last_verdict);
            last_verdict = self.now;
            if self.verdict() {
                return (Some(self.now), longest);
            }
            if stop(3) > 0 {
                self.now += stop(3);
                self.stalls.progress(self.at());
            }
            self.stalls.returned(self.at(), asked);
            self.now += turn.caller * MS + stop(2);
        }
        unreachable!("cycle() never ends")
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_pattern_of_stalls_keeps_a_dead_peer_alive(
        turns in vec(turn(), 1..12),
        silent_from in 0u64..500,
    ) {
        let mut sim = Sim::new(silent_from * MS);
        let rule = sim.rule;
        let horizon = 600_000 * MS;
        let (evicted, longest) = sim.run(&turns, horizon);
        let Some(evicted) = evicted else {
            return Err(TestCaseError::fail("never evicted in ten minutes"));
        };
        let dead_at = sim.last_seen + rule.limit();
        prop_assert!(evicted >= dead_at, "evicted early: {evicted} < {dead_at}");
        // At most one stall can move a dead peer's deadline (the next
        // excuse begins after the moved deadline has passed), by at most
        // its own length plus an interval, and the verdict comes at the
        // next turn: so within a bound set by the longest stretch between
        // two verdicts, however long the run.
        let bound = dead_at + 2 * longest + rule.interval();
        prop_assert!(
            evicted <= bound,
            "evicted at {} ms, bound {} ms (longest stretch {} ms)",
            evicted / MS,
            bound / MS,
            longest / MS
        );
    }
}

/// A stop in the work after the verdict (the rest of the timers, a log line
/// on a full pipe) is judged only at the next wakeup, after the caller's
/// whole ordinary turn. Were that turn, watched after the stop, counted
/// toward the stop's excuse, the stop — begun right after the last excuse,
/// before the deadline that one moved the dead peer to — would be excused
/// and move it again, every turn (evicted at 3.25 s against a bound of
/// 1.7 s before).
#[test]
fn a_stop_after_the_verdict_in_every_turn_cannot_keep_a_dead_peer() {
    let rule = Rule::new(INTERVAL, MISSES);
    let turn = Turn {
        timeout: Some(600),
        woken_after: 0,
        work: vec![],
        caller: 500,
        stop: Some((150, 3)),
    };
    let mut sim = Sim::new(0);
    let (evicted, longest) = sim.run(&[turn], 60_000 * MS);
    // The property's bound: deadline + 2 × longest stretch + interval.
    let bound = rule.limit() + 2 * longest + rule.interval();
    let evicted = evicted.expect("never evicted in 60 s");
    assert!(
        evicted <= bound,
        "silent since 0: evicted at {} ms, bound {} ms (longest stretch {} ms)",
        evicted / MS,
        bound / MS,
        longest / MS
    );
}

/// A whole-host pause (a paused VM) that begins while the reactor sleeps in
/// `poll` towards a peer's deadline. Dated from the end of the sleep (the
/// latest it can have begun), at or after that deadline, the stall would
/// take the peer for "dead before the stall began" though the pause began
/// 30 ms before its deadline, and its frame sent during the pause (held by
/// its TCP until it retransmits) could not save it. Dated from the start of
/// the segment it overran, the peer gets the benefit of the doubt.
#[test]
fn a_pause_that_begins_inside_the_sleep_before_a_deadline_excuses_that_peer() {
    let rule = Rule::new(INTERVAL, MISSES); // 100 ms × 3
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut stalls = Stalls::new(THRESHOLD, rule.limit(), rule.interval());
    let mut excused = ExcusedStalls::default();
    let last_seen = 0; // its last frame read at 0: deadline 300 ms
                       // Watching, idle, until 260 ms (first judgement at 0).
    stalls.judge(at(0));
    for ms in (0..260).step_by(50) {
        stalls.before_poll(at(ms), Some(Duration::from_millis(50)));
        assert_eq!(stalls.judge(at(ms + 50)), None);
    }
    // Asleep towards the deadline (40 ms); the host is paused at 270 ms
    // for a second; the reactor runs again at 1270 ms.
    stalls.before_poll(at(260), Some(Duration::from_millis(40)));
    let stall = stalls.judge(at(1270)).expect("a stall");
    assert!(stall.excused);
    let now = 1270 * MS;
    let began = now - stall.since;
    excused.record(now, stall.nanos, began);
    let stamp = excused.stamp(&rule, last_seen);
    assert!(
        matches!(rule.check(stamp, now), Verdict::Alive { .. }),
        "the pause began at 270 ms, before the deadline (300 ms), but it was dated from {} ms: \
         the peer is judged on stamp {} ms and dead",
        began / MS,
        stamp / MS
    );
}
