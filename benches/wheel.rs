//! The timer wheel against two baselines, at N live timers.
//!
//! - `wheel`: `lubdub::wheel::Wheel`.
//! - `heap`: a `BinaryHeap<Reverse<(Tick, id)>>` with lazy deletion: cancel
//!   bumps the id's generation in a table; advancing pops and skips dead
//!   entries.
//! - `full_scan`: the original Qt design: one countdown per timer, and every
//!   tick decrements every countdown and collects the ones that reach zero.
//!
//! Live deadlines are spread uniformly over the next 30,000 ticks (30 s at
//! 1 ms ticks). Three groups, each reading as a comparison
//! (`<structure>/<N>`):
//!
//! - `schedule`: one schedule while N timers are live (ns per op).
//! - `cancel`: one cancel of a random live timer (ns per op).
//! - `advance_one_tick_k100`: advance one tick on which exactly 100 timers
//!   are due, collecting them (ns per tick). The N timers keep being re-armed
//!   30,000 ticks ahead as they fire, so the wheel's cascading is included.
//!
//! Standing structures are built once per benchmark and restored between
//! measured chunks, outside the timed region, so no 1M-entry structure is
//! rebuilt per iteration. The heap's lazy deletion leaves dead entries
//! behind; the restore step compacts it once dead entries outnumber live
//! ones, so it is measured at between N and 2N entries, which flatters it
//! compared with a heartbeat server re-arming every connection's deadline.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use lubdub::time::Tick;
use lubdub::wheel::{TimerId, Wheel};

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
/// Deadlines lie in `now + 1 ..= now + SPREAD`.
const SPREAD: Tick = 30_000;
/// Timers due on the measured tick.
const K: usize = 100;

/// splitmix64; the crate has no `rand`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// What the benchmarks drive: three timer structures behind one interface.
trait Timers {
    type Id: Copy;
    const NAME: &'static str;
    fn build(now: Tick, capacity: usize) -> Self;
    fn schedule(&mut self, deadline: Tick) -> Self::Id;
    fn cancel(&mut self, id: Self::Id) -> bool;
    /// Advances to `now`, pushing what fires onto `out`.
    fn advance(&mut self, now: Tick, out: &mut Vec<Self::Id>);
    /// Untimed housekeeping between measured chunks.
    fn tidy(&mut self) {}
}

impl Timers for Wheel<u64> {
    type Id = TimerId;
    const NAME: &'static str = "wheel";
    fn build(now: Tick, capacity: usize) -> Self {
        Wheel::with_capacity(now, capacity)
    }
    fn schedule(&mut self, deadline: Tick) -> TimerId {
        Wheel::schedule(self, deadline, deadline)
    }
    fn cancel(&mut self, id: TimerId) -> bool {
        Wheel::cancel(self, id).is_some()
    }
    fn advance(&mut self, now: Tick, out: &mut Vec<TimerId>) {
        while let Some((id, _, _)) = self.poll(now) {
            out.push(id);
        }
    }
}

/// Binary heap with lazy deletion. An id is `generation << 32 | index`.
struct Heap {
    heap: BinaryHeap<Reverse<(Tick, u64)>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    live: usize,
}

impl Heap {
    fn is_live(generations: &[u32], id: u64) -> bool {
        generations[(id & 0xffff_ffff) as usize] == (id >> 32) as u32
    }

    /// Marks `id` dead if it is live.
    fn kill(&mut self, id: u64) -> bool {
        let index = (id & 0xffff_ffff) as u32;
        if !Self::is_live(&self.generations, id) {
            return false;
        }
        self.generations[index as usize] = self.generations[index as usize].wrapping_add(1);
        self.free.push(index);
        self.live -= 1;
        true
    }
}

impl Timers for Heap {
    type Id = u64;
    const NAME: &'static str = "heap";
    fn build(_now: Tick, capacity: usize) -> Self {
        Heap {
            heap: BinaryHeap::with_capacity(2 * capacity),
            generations: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            live: 0,
        }
    }
    fn schedule(&mut self, deadline: Tick) -> u64 {
        let index = self.free.pop().unwrap_or_else(|| {
            self.generations.push(0);
            (self.generations.len() - 1) as u32
        });
        let id = (u64::from(self.generations[index as usize]) << 32) | u64::from(index);
        self.heap.push(Reverse((deadline, id)));
        self.live += 1;
        id
    }
    fn cancel(&mut self, id: u64) -> bool {
        self.kill(id)
    }
    fn advance(&mut self, now: Tick, out: &mut Vec<u64>) {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if self.kill(id) {
                out.push(id);
            }
        }
    }
    fn tidy(&mut self) {
        if self.heap.len() > 2 * self.live.max(K) {
            let generations = &self.generations;
            self.heap
                .retain(|&Reverse((_, id))| Self::is_live(generations, id));
        }
    }
}

/// The Qt design: a countdown per timer (0 = idle), all decremented per tick.
struct FullScan {
    countdowns: Vec<i32>,
    free: Vec<u32>,
    now: Tick,
}

impl Timers for FullScan {
    type Id = u32;
    const NAME: &'static str = "full_scan";
    fn build(now: Tick, capacity: usize) -> Self {
        FullScan {
            countdowns: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            now,
        }
    }
    fn schedule(&mut self, deadline: Tick) -> u32 {
        let ticks = deadline.saturating_sub(self.now).clamp(1, i32::MAX as u64) as i32;
        match self.free.pop() {
            Some(index) => {
                self.countdowns[index as usize] = ticks;
                index
            }
            None => {
                self.countdowns.push(ticks);
                (self.countdowns.len() - 1) as u32
            }
        }
    }
    fn cancel(&mut self, id: u32) -> bool {
        let countdown = &mut self.countdowns[id as usize];
        if *countdown <= 0 {
            return false;
        }
        *countdown = 0;
        self.free.push(id);
        true
    }
    fn advance(&mut self, now: Tick, out: &mut Vec<u32>) {
        while self.now < now {
            self.now += 1;
            let first = out.len();
            for (index, countdown) in self.countdowns.iter_mut().enumerate() {
                if *countdown > 0 {
                    *countdown -= 1;
                    if *countdown == 0 {
                        out.push(index as u32);
                    }
                }
            }
            self.free.extend_from_slice(&out[first..]);
        }
    }
}

/// A structure holding `n` timers due uniformly over the next SPREAD ticks.
fn standing<S: Timers>(n: usize, rng: &mut Rng) -> (S, Vec<S::Id>) {
    let mut timers = S::build(0, n + 1_000);
    let ids = (0..n)
        .map(|_| timers.schedule(1 + rng.below(SPREAD)))
        .collect();
    (timers, ids)
}

/// Ops per timed chunk: small next to N, large next to `Instant::now()`.
fn chunk(n: usize) -> usize {
    (n / 10).clamp(100, 1_000)
}

fn schedule<S: Timers>(group: &mut BenchmarkGroup<WallTime>, n: usize) {
    let mut rng = Rng(n as u64);
    let (mut timers, _ids) = standing::<S>(n, &mut rng);
    let (mut deadlines, mut batch) = (Vec::new(), Vec::new());
    group.bench_function(BenchmarkId::new(S::NAME, n), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let m = left.min(chunk(n));
                deadlines.clear();
                deadlines.extend((0..m).map(|_| 1 + rng.below(SPREAD)));
                let start = Instant::now();
                for &deadline in &deadlines {
                    batch.push(timers.schedule(deadline));
                }
                timed += start.elapsed();
                for id in batch.drain(..) {
                    timers.cancel(id);
                }
                timers.tidy();
                left -= m;
            }
            timed
        })
    });
}

fn cancel<S: Timers>(group: &mut BenchmarkGroup<WallTime>, n: usize) {
    let mut rng = Rng(n as u64);
    let (mut timers, mut ids) = standing::<S>(n, &mut rng);
    group.bench_function(BenchmarkId::new(S::NAME, n), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let m = left.min(chunk(n));
                // Move m distinct random victims to the end of `ids`.
                for j in 0..m {
                    let r = rng.below((n - j) as u64) as usize;
                    ids.swap(r, n - 1 - j);
                }
                let start = Instant::now();
                for &id in &ids[n - m..] {
                    black_box(timers.cancel(id));
                }
                timed += start.elapsed();
                for id in &mut ids[n - m..] {
                    *id = timers.schedule(1 + rng.below(SPREAD));
                }
                timers.tidy();
                left -= m;
            }
            timed
        })
    });
}

fn advance_one_tick<S: Timers>(group: &mut BenchmarkGroup<WallTime>, n: usize) {
    let mut rng = Rng(n as u64);
    let mut timers = S::build(0, n + 2 * K);
    // How many of the N standing timers fall due on each tick of the window.
    let ring = SPREAD as usize + 1;
    let mut standing_due = vec![0usize; ring];
    for _ in 0..n {
        let deadline = 1 + rng.below(SPREAD);
        timers.schedule(deadline);
        standing_due[deadline as usize % ring] += 1;
    }
    let mut now: Tick = 0;
    let mut fired = Vec::with_capacity(4 * K);
    group.bench_function(BenchmarkId::new(S::NAME, n), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let tick = now + 1;
                // Top the tick up to K due timers with short-lived extras.
                let standing = std::mem::take(&mut standing_due[tick as usize % ring]);
                for _ in standing..K {
                    timers.schedule(tick);
                }
                fired.clear();
                let start = Instant::now();
                timers.advance(tick, &mut fired);
                timed += start.elapsed();
                assert_eq!(fired.len(), standing.max(K), "{} tick {tick}", S::NAME);
                // Re-arm the standing timers that fired, keeping N live and
                // their deadlines uniform over the next SPREAD ticks.
                for _ in 0..standing {
                    timers.schedule(tick + SPREAD);
                }
                standing_due[(tick + SPREAD) as usize % ring] += standing;
                timers.tidy();
                now = tick;
            }
            timed
        })
    });
}

fn bench(c: &mut Criterion) {
    type Run = fn(&mut BenchmarkGroup<WallTime>, usize);
    let groups: [(&str, [Run; 3]); 3] = [
        (
            "schedule",
            [
                schedule::<Wheel<u64>>,
                schedule::<Heap>,
                schedule::<FullScan>,
            ],
        ),
        (
            "cancel",
            [cancel::<Wheel<u64>>, cancel::<Heap>, cancel::<FullScan>],
        ),
        (
            "advance_one_tick_k100",
            [
                advance_one_tick::<Wheel<u64>>,
                advance_one_tick::<Heap>,
                advance_one_tick::<FullScan>,
            ],
        ),
    ];
    for (name, runs) in groups {
        let mut group = c.benchmark_group(name);
        for n in SIZES {
            for run in runs {
                run(&mut group, n);
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // Modest defaults so the whole run takes a couple of minutes; command-line
    // flags (--warm-up-time, --measurement-time) still override them.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
