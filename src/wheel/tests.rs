use super::*;

/// splitmix64: a seeded, dependency-free PRNG for the randomized tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

impl<T> Wheel<T> {
    /// Walks every list and checks the whole structure: O(entries).
    fn check_invariants(&self) {
        let mut free = 0;
        let mut idx = self.free;
        while idx != NIL {
            match self.nodes[idx as usize] {
                Node::Free { next_free, .. } => idx = next_free,
                Node::Live { .. } => panic!("live node {idx} on the free list: {self:?}"),
            }
            free += 1;
        }
        let mut live = 0;
        for (level, lvl) in self.levels.iter().enumerate() {
            for slot in 0..SLOTS {
                let head = lvl.head[slot];
                let bit = lvl.occupied & (1 << slot) != 0;
                assert_eq!(
                    bit,
                    head != NIL,
                    "level {level} slot {slot} bitmap vs head {head}: {self:?}"
                );
                live += self.check_list(head, NIL, List::Slot { level, slot });
            }
        }
        live += self.check_list(self.due_head, self.due_tail, List::Due);
        assert_eq!(live, self.len, "linked entries vs len: {self:?}");
        assert_eq!(
            live + free,
            self.nodes.len(),
            "live + free vs nodes: {self:?}"
        );
    }

    /// Checks one list's links and that each entry belongs on it;
    /// returns its length.
    fn check_list(&self, head: u32, tail: u32, list: List) -> usize {
        let (mut prev, mut idx, mut n) = (NIL, head, 0);
        while idx != NIL {
            let node = &self.nodes[idx as usize];
            assert_eq!(
                node.links().0,
                prev,
                "node {idx} prev link on {list:?}: {self:?}"
            );
            let deadline = node.deadline();
            assert_eq!(
                self.list_of(deadline),
                list,
                "node {idx} due {deadline} on wrong list: {self:?}"
            );
            if list == List::Due {
                assert!(
                    self.due_floor <= deadline,
                    "due_floor above node {idx} due {deadline}: {self:?}"
                );
            }
            (prev, idx, n) = (idx, node.links().1, n + 1);
        }
        if list == List::Due {
            assert_eq!(prev, tail, "due_tail: {self:?}");
        }
        n
    }
}

/// Polls until `None`, returning what fired.
fn drain(wheel: &mut Wheel<u64>, now: Tick) -> Vec<(TimerId, Tick, u64)> {
    let effective = now.max(wheel.now());
    let mut fired = Vec::new();
    while let Some(entry) = wheel.poll(now) {
        assert!(entry.1 <= effective, "fired {entry:?} early at {effective}");
        fired.push(entry);
    }
    assert_eq!(
        wheel.now(),
        effective,
        "poll({now}) moved the wheel backwards"
    );
    fired
}

#[test]
fn node_is_32_bytes_for_u64_values() {
    assert_eq!(mem::size_of::<Node<u64>>(), 32);
    assert_eq!(mem::size_of::<TimerId>(), 8);
}

#[test]
fn fires_exactly_at_level_boundaries() {
    let mut ticks = vec![0, 1, u64::MAX - 1, u64::MAX];
    for level in 1..LEVELS as u32 {
        let b = 1u64 << (SLOT_BITS * level);
        ticks.extend([b - 1, b, b + 1, 3 * b - 1, 3 * b]);
    }
    ticks.sort_unstable();
    ticks.dedup();
    for &start in &ticks {
        for &deadline in ticks.iter().filter(|&&d| d > start) {
            let mut wheel = Wheel::new(start);
            let id = wheel.schedule(deadline, 7);
            let hint = wheel.next_deadline().unwrap();
            assert!(
                hint > start && hint <= deadline,
                "start {start} deadline {deadline} hint {hint}"
            );
            assert!(
                drain(&mut wheel, deadline - 1).is_empty(),
                "start {start}: {deadline} fired early"
            );
            assert_eq!(
                drain(&mut wheel, deadline),
                [(id, deadline, 7)],
                "start {start}"
            );
            assert!(wheel.is_empty() && wheel.next_deadline().is_none());
            wheel.check_invariants();
        }
    }
}

#[test]
fn tick_by_tick_across_wraparounds_fires_each_on_its_tick() {
    // Start just short of a level-2 boundary so slots of levels 1 and 2
    // wrap and cascade during the run.
    let start = 4096 * 7 - 5;
    let mut wheel = Wheel::new(start);
    let mut rng = Rng(1);
    let mut expected = std::collections::BTreeMap::<Tick, Vec<u64>>::new();
    for value in 0..2000 {
        let deadline = start + 1 + rng.below(9000);
        wheel.schedule(deadline, value);
        expected.entry(deadline).or_default().push(value);
    }
    for now in start + 1..=start + 9000 {
        let mut got: Vec<u64> = drain(&mut wheel, now)
            .into_iter()
            .map(|(_, deadline, value)| {
                assert_eq!(deadline, now);
                value
            })
            .collect();
        got.sort_unstable();
        let mut want = expected.remove(&now).unwrap_or_default();
        want.sort_unstable();
        assert_eq!(got, want, "tick {now}");
    }
    assert!(wheel.is_empty());
    wheel.check_invariants();
}

#[test]
fn a_stale_id_cannot_touch_the_reused_node() {
    let mut wheel = Wheel::new(0);
    let a = wheel.schedule(100, 1);
    assert_eq!(wheel.cancel(a), Some(1));
    let b = wheel.schedule(200, 2);
    assert_eq!(b.index, a.index, "the freed node is reused");
    assert_ne!(b, a);
    assert_eq!(wheel.cancel(a), None);
    assert!(!wheel.reschedule(a, 5));
    assert_eq!((wheel.get(a), wheel.deadline(a)), (None, None));
    assert_eq!((wheel.get(b), wheel.deadline(b)), (Some(&2), Some(200)));
    assert_eq!(drain(&mut wheel, 200), [(b, 200, 2)]);
    // Fired ids are stale too, and so is b against b's successor.
    let c = wheel.schedule(300, 3);
    assert_eq!(c.index, b.index);
    assert_eq!((wheel.cancel(b), wheel.cancel(a)), (None, None));
    assert_eq!(wheel.len(), 1);
    assert_eq!(drain(&mut wheel, 300), [(c, 300, 3)]);
}

#[test]
fn a_deadline_in_the_past_is_reported_by_the_next_poll() {
    let mut wheel = Wheel::new(0);
    assert!(drain(&mut wheel, 1000).is_empty());
    let late = wheel.schedule(5, 1);
    let now = wheel.schedule(1000, 2);
    let ancient = wheel.schedule(0, 3);
    assert_eq!(
        wheel.next_deadline(),
        Some(0),
        "a lower bound of the due deadlines"
    );
    // A `now` behind the wheel counts as the wheel's now; FIFO order.
    assert_eq!(
        drain(&mut wheel, 10),
        [(late, 5, 1), (now, 1000, 2), (ancient, 0, 3)]
    );
    assert_eq!(wheel.now(), 1000);
    assert!(wheel.is_empty());
}

#[test]
fn entries_scheduled_during_a_poll_loop_are_returned_by_it() {
    let mut wheel = Wheel::new(0);
    for d in 100..110 {
        wheel.schedule(d, d);
    }
    let mut fired = Vec::new();
    while let Some((_, deadline, value)) = wheel.poll(200) {
        if fired.is_empty() {
            assert_eq!(wheel.now(), 100, "the wheel stops at the first due slot");
            wheel.schedule(50, 50); // already due
            wheel.schedule(150, 150); // between now() and the polled now
            wheel.schedule(200, 200); // exactly the polled now
            wheel.schedule(201, 201); // not due
        }
        fired.push((deadline, value));
    }
    let expected: Vec<(Tick, u64)> = [100, 50]
        .into_iter()
        .chain(101..110)
        .chain([150, 200])
        .map(|d| (d, d))
        .collect();
    assert_eq!(fired, expected);
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.next_deadline(), Some(201));
}

#[test]
fn future_timers_come_out_in_deadline_order_across_a_big_jump() {
    let mut wheel = Wheel::new(12345);
    let mut rng = Rng(2);
    for v in 0..5000 {
        wheel.schedule(12346 + rng.below(1 << 40), v);
    }
    let fired = drain(&mut wheel, 12345 + (1 << 40));
    assert_eq!(fired.len(), 5000);
    assert!(fired.windows(2).all(|w| w[0].1 <= w[1].1), "out of order");
}

#[test]
fn a_long_empty_stretch_costs_levels_not_ticks() {
    let mut wheel = Wheel::new(0);
    let near = wheel.schedule(1_000_000_007, 1);
    let never = wheel.schedule(u64::MAX, 2);
    assert!(drain(&mut wheel, 1_000_000_000).is_empty());
    // The jump itself cascades `near` down as its coarse slots come up.
    assert!(
        wheel.cascades <= LEVELS as u64,
        "{} cascades",
        wheel.cascades
    );
    assert_eq!(drain(&mut wheel, 1_000_000_010), [(near, 1_000_000_007, 1)]);
    assert!(
        wheel.cascades <= LEVELS as u64,
        "{} cascades",
        wheel.cascades
    );
    assert!(drain(&mut wheel, u64::MAX - 1).is_empty());
    assert_eq!(drain(&mut wheel, u64::MAX), [(never, u64::MAX, 2)]);
    assert!(
        wheel.cascades <= 2 * LEVELS as u64,
        "{} cascades",
        wheel.cascades
    );
}

#[test]
fn sleeping_until_next_deadline_fires_each_timer_on_its_tick() {
    // The reactor's loop: sleep until next_deadline(), poll, repeat.
    let mut wheel = Wheel::new(0);
    let mut rng = Rng(3);
    let n = 3000;
    for v in 0..n {
        let span = [64, 30_000, 1 << 36, u64::MAX][rng.below(4) as usize];
        wheel.schedule(1 + rng.below(span - 1), v);
    }
    let (mut wakeups, mut fired) = (0, 0);
    while let Some(next) = wheel.next_deadline() {
        assert!(next > wheel.now(), "would spin at {next}: {wheel:?}");
        wakeups += 1;
        for (_, deadline, _) in drain(&mut wheel, next) {
            assert_eq!(deadline, next, "overslept");
            fired += 1;
        }
    }
    assert_eq!(fired, n);
    assert!(
        wakeups <= n * LEVELS as u64,
        "{wakeups} wake-ups for {n} timers"
    );
}

#[test]
fn reschedule_keeps_the_id_and_moves_the_deadline() {
    let mut wheel = Wheel::new(0);
    let a = wheel.schedule(10, 1);
    let b = wheel.schedule(20, 2);
    assert!(wheel.reschedule(a, 5000));
    assert!(wheel.reschedule(b, 0)); // into the past: due now
    assert_eq!(wheel.deadline(a), Some(5000));
    assert_eq!(drain(&mut wheel, 4999), [(b, 0, 2)]);
    assert_eq!(drain(&mut wheel, 5000), [(a, 5000, 1)]);
    wheel.check_invariants();
}

#[test]
fn steady_state_does_not_allocate() {
    let mut wheel = Wheel::with_capacity(0, 1000);
    let mut rng = Rng(4);
    let mut ids: Vec<TimerId> = (0..1000)
        .map(|v| wheel.schedule(1 + rng.below(30_000), v))
        .collect();
    let capacity = wheel.nodes.capacity();
    let mut now = 0;
    for v in 0..200_000 {
        let i = rng.below(ids.len() as u64) as usize;
        if wheel.cancel(ids[i]).is_none() {
            now += 1; // ids[i] fired; advance time instead
            while wheel.poll(now).is_some() {}
        }
        ids[i] = wheel.schedule(now + 1 + rng.below(30_000), v);
    }
    assert!(wheel.len() <= 1000);
    assert_eq!(
        (wheel.nodes.len(), wheel.nodes.capacity()),
        (1000, capacity)
    );
}

/// One model entry: what the wheel should hold for `id`.
#[derive(Clone, Copy, Debug)]
struct Expect {
    id: TimerId,
    deadline: Tick,
    value: u64,
    /// Scheduled already due: exempt from the deadline-order check.
    was_due: bool,
}

fn random_deadline(rng: &mut Rng, now: Tick) -> Tick {
    let boundary = |b: u64| (now | (b - 1)).saturating_add(1);
    match rng.below(10) {
        0 => now.saturating_sub(rng.below(1000)),
        1 => now,
        2 => now.saturating_add(1 + rng.below(64)),
        3 => boundary(64).saturating_add(rng.below(3)).saturating_sub(1),
        4 => boundary(4096)
            .saturating_add(rng.below(3))
            .saturating_sub(1),
        5 => now.saturating_add(rng.below(30_000)),
        6 => now.saturating_add(rng.below(1 << 40)),
        // Past the 2^36 ticks of tokio's six levels.
        7 => now.saturating_add((1 << 36) + rng.below(1 << 50)),
        8 => u64::MAX - rng.below(1000),
        _ => now + rng.below(u64::MAX - now),
    }
}

fn random_jump(rng: &mut Rng, now: Tick) -> Tick {
    match rng.below(1000) {
        0 => u64::MAX,
        1..=9 => now.saturating_add(rng.below(1 << 45)),
        10..=49 => now.saturating_add(rng.below(1 << 32)),
        50..=199 => (now | 63).saturating_add(rng.below(2)),
        200..=299 => (now | 4095).saturating_add(rng.below(2)),
        300..=499 => now.saturating_add(rng.below(5000)),
        500..=549 => now,
        // Behind the wheel: must count as `now`.
        550..=599 => now.saturating_sub(1 + rng.below(100)),
        _ => now.saturating_add(1 + rng.below(64)),
    }
}

/// Random schedule / cancel / reschedule / lookup / poll against a Vec
/// model, checking the wheel's whole structure after every step.
fn run_model(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let start = [0, 1 << 20, u64::MAX - (1 << 40)][rng.below(3) as usize];
    let mut wheel = Wheel::with_capacity(start, 64);
    let mut model: Vec<Expect> = Vec::new();
    let mut dead: Vec<TimerId> = Vec::new();
    let mut next_value = 0;
    let mut schedule = |wheel: &mut Wheel<u64>, model: &mut Vec<Expect>, deadline: Tick| {
        next_value += 1;
        let id = wheel.schedule(deadline, next_value);
        assert!(
            model.iter().all(|e| e.id != id),
            "live id {id:?} handed out twice"
        );
        let was_due = deadline <= wheel.now();
        model.push(Expect {
            id,
            deadline,
            value: next_value,
            was_due,
        });
    };
    for step in 0..steps {
        let now = wheel.now();
        match rng.below(100) {
            0..=34 => schedule(&mut wheel, &mut model, random_deadline(&mut rng, now)),
            35..=49 if !model.is_empty() => {
                let e = model.swap_remove(rng.below(model.len() as u64) as usize);
                assert_eq!(
                    wheel.cancel(e.id),
                    Some(e.value),
                    "step {step}: cancel {e:?}"
                );
                dead.push(e.id);
            }
            50..=57 if !dead.is_empty() => {
                let id = dead[rng.below(dead.len() as u64) as usize];
                let reused = model.iter().any(|e| e.id.index == id.index);
                assert_eq!(
                    wheel.cancel(id),
                    None,
                    "step {step}: stale {id:?} (reused: {reused})"
                );
                assert!(!wheel.reschedule(id, now), "step {step}: stale reschedule");
                assert_eq!((wheel.get(id), wheel.deadline(id)), (None, None));
            }
            58..=64 if !model.is_empty() => {
                let e = model[rng.below(model.len() as u64) as usize];
                assert_eq!(wheel.get(e.id), Some(&e.value), "step {step}");
                assert_eq!(wheel.deadline(e.id), Some(e.deadline), "step {step}");
            }
            65..=69 if !model.is_empty() => {
                let i = rng.below(model.len() as u64) as usize;
                let deadline = random_deadline(&mut rng, now);
                assert!(wheel.reschedule(model[i].id, deadline));
                model[i].deadline = deadline;
                model[i].was_due = deadline <= now;
            }
            _ => {
                let asked = random_jump(&mut rng, now);
                let target = asked.max(now);
                let mut last_future = 0;
                while let Some((id, deadline, value)) = wheel.poll(asked) {
                    assert!(
                        deadline <= target,
                        "step {step}: {id:?} due {deadline} fired at {target}"
                    );
                    let pos = model.iter().position(|e| e.id == id);
                    let e = model.swap_remove(pos.expect("fired an id the model does not hold"));
                    assert_eq!((deadline, value), (e.deadline, e.value), "step {step}");
                    if !e.was_due {
                        assert!(
                            deadline >= last_future,
                            "step {step}: {e:?} out of deadline order"
                        );
                        last_future = deadline;
                    }
                    dead.push(id);
                    if rng.below(10) == 0 {
                        // Anything from already due to just past `target`.
                        let d = wheel
                            .now()
                            .saturating_sub(10)
                            .saturating_add(rng.below((target - wheel.now()).saturating_add(20)));
                        schedule(&mut wheel, &mut model, d);
                    }
                }
                assert_eq!(wheel.now(), target);
                let left: Vec<_> = model.iter().filter(|e| e.deadline <= target).collect();
                assert!(
                    left.is_empty(),
                    "step {step}: poll({target}) left behind {left:?}"
                );
                assert!(
                    !matches!(wheel.next_deadline(), Some(d) if d <= target),
                    "step {step}: would spin"
                );
            }
        }
        wheel.check_invariants();
        assert_eq!(wheel.len(), model.len(), "step {step}");
        let min = model.iter().map(|e| e.deadline).min();
        match (wheel.next_deadline(), min) {
            (None, None) => {}
            (Some(hint), Some(min)) => {
                assert!(hint <= min, "step {step}: next_deadline {hint} > {min}")
            }
            other => panic!("step {step}: next_deadline vs model {other:?}"),
        }
    }
}

#[test]
fn matches_a_reference_model_under_random_operations() {
    for seed in 0..12 {
        run_model(seed, 4000);
    }
}

/// The same model, driven by proptest: arbitrary operation sequences, shrunk
/// to a minimal one on failure.
mod props;
