//! Property tests: the wheel against a model (a `Vec` of live timers) over
//! arbitrary sequences of schedule, cancel, reschedule and poll, with
//! deadlines and jumps anywhere from the past to `u64::MAX`.
//!
//! After every operation: `check_invariants`, `len`, `get` and `deadline`
//! of every live timer, and `next_deadline` exactly as documented. Every
//! poll: nothing before its deadline, nothing the model does not hold as
//! live (so nothing twice and nothing cancelled), timers in the order
//! `poll` documents (see [`Joins`]), and by the time it returns `None`
//! nothing due left behind. Ids are never handed out twice, and stale ones
//! (fired or cancelled, their node possibly reused) change nothing.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

/// A tick relative to where the wheel stands when the operation runs, so
/// that generated operations stay meaningful as time moves.
#[derive(Clone, Copy, Debug)]
enum When {
    /// `now - n`: in the past (for a poll: behind the wheel).
    Past(u64),
    /// `now + n`, any distance (saturating at `u64::MAX`).
    Ahead(u64),
    /// The first tick of the next slot of `level` (`64^level` ticks), then
    /// one tick earlier, exactly, or one later (`nudge` 0, 1, 2).
    Boundary { level: u32, nudge: u64 },
    /// `u64::MAX - n`.
    End(u64),
}

impl When {
    fn at(self, now: Tick) -> Tick {
        match self {
            When::Past(n) => now.saturating_sub(n),
            When::Ahead(n) => now.saturating_add(n),
            When::Boundary { level, nudge } => {
                let span = 1u64 << (SLOT_BITS * level);
                (now | (span - 1))
                    .saturating_add(1)
                    .saturating_add(nudge)
                    .saturating_sub(1)
            }
            When::End(n) => u64::MAX - n,
        }
    }
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        (0..2000u64).prop_map(When::Past),
        // Within a level-0 span or just past it.
        (0..=130u64).prop_map(When::Ahead),
        // Log-uniform distances: every level gets its share.
        (any::<u64>(), 0..64u32).prop_map(|(n, shift)| When::Ahead(n >> shift)),
        (1..LEVELS as u32, 0..=2u64).prop_map(|(level, nudge)| When::Boundary { level, nudge }),
        (0..3u64).prop_map(When::End),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Schedule(When),
    /// Cancels the id at this index among all ids handed out so far: live
    /// or stale.
    Cancel(Index),
    /// Reschedules the id at this index (live or stale).
    Reschedule(Index, When),
    /// One `poll`, as in a loop interrupted by other operations.
    PollOnce(When),
    /// `poll` until it returns `None`.
    Advance(When),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => when().prop_map(Op::Schedule),
        2 => any::<Index>().prop_map(Op::Cancel),
        2 => (any::<Index>(), when()).prop_map(|(i, w)| Op::Reschedule(i, w)),
        1 => when().prop_map(Op::PollOnce),
        2 => when().prop_map(Op::Advance),
    ]
}

/// A live timer as the model holds it.
#[derive(Clone, Copy, Debug)]
struct Live {
    id: TimerId,
    deadline: Tick,
    value: u64,
    /// When it joins the due list, which hands timers out in FIFO order.
    joins: Joins,
}

/// When a timer joins the due list, ordered as the wheel must hand timers
/// out: a future one at its deadline (in no particular order among those
/// due on the same tick), before one set already due on that tick (those in
/// the order they were set). So future timers come out in deadline order,
/// and one set already due comes out before any that falls due after it.
#[derive(Clone, Copy, Debug)]
enum Joins {
    /// Falls due when the wheel reaches `tick`.
    Future { tick: Tick },
    /// Was set already due (or rescheduled so) while the wheel stood at
    /// `tick`; `seq` orders it among the schedule and reschedule calls.
    Set { tick: Tick, seq: u64 },
}

impl Joins {
    fn new(deadline: Tick, now: Tick, seq: u64) -> Joins {
        if deadline > now {
            Joins::Future { tick: deadline }
        } else {
            Joins::Set { tick: now, seq }
        }
    }

    fn key(self) -> (Tick, u8, u64) {
        match self {
            Joins::Future { tick } => (tick, 0, 0),
            Joins::Set { tick, seq } => (tick, 1, seq),
        }
    }
}

struct Model {
    wheel: Wheel<u64>,
    live: Vec<Live>,
    /// Every id ever handed out, live or stale.
    ids: Vec<TimerId>,
    /// Counts schedule and reschedule calls: the value of a new timer, and
    /// the `seq` of `Joins::Set`.
    seq: u64,
}

impl Model {
    fn new(start: Tick) -> Model {
        Model {
            wheel: Wheel::new(start),
            live: Vec::new(),
            ids: Vec::new(),
            seq: 0,
        }
    }

    fn position(&self, id: TimerId) -> Option<usize> {
        self.live.iter().position(|l| l.id == id)
    }

    fn apply(&mut self, op: Op) {
        let now = self.wheel.now();
        match op {
            Op::Schedule(when) => {
                let deadline = when.at(now);
                self.seq += 1;
                let id = self.wheel.schedule(deadline, self.seq);
                // Ids are never reused, even when nodes are: a stale id
                // must not name the node's next tenant.
                assert!(!self.ids.contains(&id), "{id:?} handed out twice");
                self.live.push(Live {
                    id,
                    deadline,
                    value: self.seq,
                    joins: Joins::new(deadline, now, self.seq),
                });
                self.ids.push(id);
            }
            Op::Cancel(i) if !self.ids.is_empty() => {
                let id = *i.get(&self.ids);
                let got = self.wheel.cancel(id);
                match self.position(id) {
                    Some(p) => assert_eq!(got, Some(self.live.swap_remove(p).value), "{id:?}"),
                    None => assert_eq!(got, None, "stale {id:?}"),
                }
            }
            Op::Reschedule(i, when) if !self.ids.is_empty() => {
                let id = *i.get(&self.ids);
                let deadline = when.at(now);
                let moved = self.wheel.reschedule(id, deadline);
                match self.position(id) {
                    Some(p) => {
                        assert!(moved, "live {id:?} not rescheduled");
                        self.live[p].deadline = deadline;
                        self.seq += 1;
                        self.live[p].joins = Joins::new(deadline, now, self.seq);
                    }
                    None => assert!(!moved, "stale {id:?} rescheduled"),
                }
            }
            Op::Cancel(_) | Op::Reschedule(..) => {}
            Op::PollOnce(when) => {
                self.poll(when.at(now));
            }
            Op::Advance(when) => {
                let target = when.at(now);
                // Each poll but the last removes a live timer.
                for _ in 0..=self.live.len() {
                    if !self.poll(target) {
                        return;
                    }
                }
                panic!("poll({target}) returned more timers than were live");
            }
        }
    }

    /// One `poll(target)`, checked; whether it returned a timer.
    fn poll(&mut self, target: Tick) -> bool {
        // A `now` behind the wheel counts as the wheel's.
        let now = target.max(self.wheel.now());
        match self.wheel.poll(target) {
            Some((id, deadline, value)) => {
                assert!(deadline <= now, "{id:?} due at {deadline} fired at {now}");
                let p = self
                    .position(id)
                    .unwrap_or_else(|| panic!("poll({target}) returned {id:?}, not live"));
                let live = self.live.swap_remove(p);
                assert_eq!((deadline, value), (live.deadline, live.value), "{live:?}");
                let early: Vec<&Live> = self
                    .live
                    .iter()
                    .filter(|l| l.joins.key() < live.joins.key())
                    .collect();
                assert!(early.is_empty(), "{live:?} came out before {early:?}");
                assert!(self.wheel.now() <= now, "wheel ran ahead of poll({target})");
                true
            }
            None => {
                assert_eq!(self.wheel.now(), now, "poll({target}) returned None");
                let left: Vec<&Live> = self.live.iter().filter(|l| l.deadline <= now).collect();
                assert!(left.is_empty(), "poll({target}) left behind {left:?}");
                false
            }
        }
    }

    /// What must hold between any two operations.
    fn check(&self) {
        let wheel = &self.wheel;
        wheel.check_invariants();
        assert_eq!(wheel.len(), self.live.len());
        assert_eq!(wheel.is_empty(), self.live.is_empty());
        for l in &self.live {
            assert_eq!(wheel.get(l.id), Some(&l.value), "{l:?}");
            assert_eq!(wheel.deadline(l.id), Some(l.deadline), "{l:?}");
        }
        for &id in &self.ids {
            if self.position(id).is_none() {
                assert_eq!((wheel.get(id), wheel.deadline(id)), (None, None), "{id:?}");
            }
        }
        let now = wheel.now();
        let earliest = self.live.iter().map(|l| l.deadline).min();
        match (wheel.next_deadline(), earliest) {
            (None, None) => {}
            // Something is due: any answer no later than it will do.
            (Some(hint), Some(min)) if min <= now => {
                assert!(hint <= min, "next_deadline {hint}, yet {min} is due")
            }
            // Nothing due: exactly the first tick of the earliest timer's
            // slot, so exact at level 0 and never `<= now`.
            (Some(hint), Some(min)) => {
                assert_eq!(hint, slot_start(now, min), "earliest {min}, now {now}")
            }
            other => panic!("next_deadline vs earliest: {other:?}"),
        }
    }
}

/// The first tick of the slot that holds `deadline` (later than `now`): its
/// level is the highest base-64 digit in which the two differ, and the
/// digits below that level are cleared.
fn slot_start(now: Tick, deadline: Tick) -> Tick {
    let level = (u64::BITS - 1 - (now ^ deadline).leading_zeros()) / SLOT_BITS;
    deadline & !((1u64 << (SLOT_BITS * level)) - 1)
}

proptest! {
    // Each case checks the whole structure after every step; proptest's
    // default of 256 cases of up to 64 steps takes about a third of a second
    // in a debug build. `PROPTEST_CASES=20000` makes a longer hunt.

    #[test]
    fn matches_the_model_under_arbitrary_operations(
        start in prop_oneof![Just(0u64), any::<u64>(), Just(u64::MAX - (1 << 40)), Just(u64::MAX)],
        ops in vec(op(), 0..=64),
    ) {
        let mut model = Model::new(start);
        model.check();
        for op in ops {
            model.apply(op);
            model.check();
        }
    }
}
