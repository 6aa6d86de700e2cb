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
    /// 1 in the middle of the work, 2 in the caller's time.
    stop: Option<(u64, u8)>,
}

fn turn() -> impl Strategy<Value = Turn> {
    (
        prop_oneof![Just(None), (0u64..400).prop_map(Some)],
        0u64..80,
        vec(0u64..8, 0..6),
        prop_oneof![0u64..60, 0u64..800],
        proptest::option::weighted(0.3, (0u64..2_500, 0u8..3)),
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
        let rule = Rule::new(INTERVAL, MISSES);
        let mut sim = Sim {
            t0: Instant::now(),
            now: 0,
            stalls: Stalls::new(THRESHOLD, rule.limit(), rule.interval()),
            excused: ExcusedStalls::default(),
            rule,
            last_seen: silent_from * MS,
        };
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
