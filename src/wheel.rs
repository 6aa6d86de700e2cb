//! A hierarchical hashed timer wheel over integer [`Tick`]s.
//!
//! The reactor keeps one deadline per connection and re-arms it on every
//! heartbeat, with tens of thousands of connections live. So scheduling and
//! cancelling are O(1), and the work done on a tick is proportional to what
//! is due on it (plus cascading, below), never to how many timers exist. The
//! wheel is a pure function of the ticks it is handed: it never reads a
//! clock.
//!
//! # Levels and slots
//!
//! Read a tick as base-64 digits: digit `L` is bits `6L .. 6L + 6`. The wheel
//! has [`LEVELS`] levels of 64 slots; a slot at level `L` spans `64^L` ticks,
//! so level 0 has one slot per tick, level 1 slots of 64 ticks, level 2 slots
//! of 4096 ticks, and so on. Eleven levels of six bits cover all 64 bits of a
//! `Tick` (the top level only ever uses its first 16 slots), so every deadline
//! up to `u64::MAX` has a home and none has to be clamped or parked.
//!
//! While the wheel stands at tick `elapsed`, an entry with deadline
//! `d > elapsed` lives at the level of the highest digit in which `d` and
//! `elapsed` differ, in the slot numbered by `d`'s digit there:
//!
//! ```text
//!              digit:  ...   2    1    0
//!   elapsed  =         ...   3   17    5
//!   deadline =         ...   3   20    9   -> level 1, slot 20
//! ```
//!
//! Two facts follow. At every level, occupied slots lie strictly after
//! `elapsed`'s own digit (`d > elapsed` and the digits above agree); and every
//! entry at level `L` is later than every entry below `L`. The earliest
//! pending slot is therefore the lowest set bit of the lowest non-empty level,
//! and a `u64` occupancy bitmap per level finds it with one `trailing_zeros`:
//! [`Wheel::next_deadline`] and skipping an empty stretch of any length cost
//! O(levels).
//!
//! When the wheel reaches the first tick of an occupied slot at level `L > 0`,
//! its entries now share digit `L` with `elapsed` and *cascade*: each is
//! re-linked at a lower level, or into the due list if its deadline is that
//! very tick. An entry cascades at most `LEVELS - 1` times in its life. A
//! level-0 slot spans exactly one tick, so its entries are due when it comes
//! up.
//!
//! Cascading is where the wheel's work hides: a coarse slot is re-linked in
//! one burst when it comes up, so a level-2 slot (4096 ticks) holding many
//! timers costs one long tick rather than many short ones. A timer that is
//! re-armed (cancelled or rescheduled) before its coarse slot comes up, as a
//! heartbeat deadline usually is, never cascades at all.
//!
//! Deadlines at or before `elapsed` go straight to a FIFO *due list*, which
//! [`Wheel::poll`] drains before advancing: a deadline in the past is
//! reported by the next poll, not lost.
//!
//! # Storage
//!
//! Entries live in one `Vec` of nodes (32 bytes each for a `u64` payload).
//! Each slot and the due list are intrusive doubly linked lists threaded
//! through the nodes by `u32` index; free nodes form a LIFO free list, so
//! once the `Vec` has grown to the peak number of live timers, schedule,
//! cancel and poll allocate nothing. A node's generation is bumped when it is
//! freed and is part of its [`TimerId`], so a stale id never touches the
//! node's next tenant.
//!
//! A node does not record which list it is on. Its list is a function of
//! `(elapsed, deadline)`: the due list if `deadline <= elapsed`, otherwise the
//! level and slot described above. That stays true as `elapsed` moves, because
//! the wheel never passes the first tick of an occupied slot without
//! cascading it. This keeps the node small and lets [`Wheel::cancel`] unlink
//! in O(1) without searching.

use std::fmt;
use std::mem;

use crate::time::Tick;

/// Bits of a tick consumed per level.
const SLOT_BITS: u32 = 6;
/// Slots per level: one per value of a six-bit digit.
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Number of levels: enough six-bit digits to cover a whole `u64` (11).
pub const LEVELS: usize = (u64::BITS as usize).div_ceil(SLOT_BITS as usize);
/// "No node": ends a list. Also why at most `u32::MAX - 1` timers can be live.
const NIL: u32 = u32::MAX;

/// Names one scheduled timer: a node index plus the node's generation at the
/// time it was scheduled. Once the timer fires or is cancelled the id is
/// stale for good, even after its node is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

/// One entry of the node `Vec`. The links sit inside the `Live` variant so
/// the enum tag fits in padding: 32 bytes for `Node<u64>`, where a struct
/// with an `Option<T>` would take 40.
enum Node<T> {
    /// A scheduled timer, linked into a slot list or the due list.
    Live {
        deadline: Tick,
        value: T,
        prev: u32,
        next: u32,
        generation: u32,
    },
    /// On the free list; `generation` is what the next tenant will carry.
    Free { next_free: u32, generation: u32 },
}

impl<T> Node<T> {
    fn generation(&self) -> u32 {
        match *self {
            Node::Live { generation, .. } | Node::Free { generation, .. } => generation,
        }
    }

    // The accessors below are only called on nodes reached through a slot or
    // due list, which hold live nodes only; a free node there means the
    // wheel's own bookkeeping is corrupt, never bad input.
    fn deadline(&self) -> Tick {
        match *self {
            Node::Live { deadline, .. } => deadline,
            Node::Free { .. } => unreachable!("free node reached through a timer list"),
        }
    }

    fn links(&self) -> (u32, u32) {
        match *self {
            Node::Live { prev, next, .. } => (prev, next),
            Node::Free { .. } => unreachable!("free node reached through a timer list"),
        }
    }

    fn links_mut(&mut self) -> (&mut u32, &mut u32) {
        match self {
            Node::Live { prev, next, .. } => (prev, next),
            Node::Free { .. } => unreachable!("free node reached through a timer list"),
        }
    }
}

/// One level: the head of each slot's list and a bitmap of non-empty slots.
#[derive(Clone, Copy)]
struct Level {
    occupied: u64,
    head: [u32; SLOTS],
}

/// The list an entry belongs on; see "Storage" in the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Due,
    Slot { level: usize, slot: usize },
}

/// The level whose slots hold `deadline` while the wheel stands at `elapsed`.
fn level_for(elapsed: Tick, deadline: Tick) -> usize {
    debug_assert!(
        deadline > elapsed,
        "level_for: deadline {deadline} not after elapsed {elapsed}"
    );
    // OR-ing in the digit-0 mask maps differences confined to digit 0 to
    // level 0 and keeps leading_zeros below 64.
    let masked = (elapsed ^ deadline) | SLOT_MASK;
    let significant = u64::BITS - 1 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

/// The slot of `deadline` at `level`: its digit there.
fn slot_for(deadline: Tick, level: usize) -> usize {
    ((deadline >> (SLOT_BITS as usize * level)) & SLOT_MASK) as usize
}

/// A hierarchical timer wheel holding values of type `T`; see the module doc.
pub struct Wheel<T> {
    nodes: Vec<Node<T>>,
    /// Head of the free list (LIFO, so the warmest node is reused first).
    free: u32,
    len: usize,
    /// The tick the wheel has been advanced to.
    elapsed: Tick,
    levels: [Level; LEVELS],
    due_head: u32,
    due_tail: u32,
    /// A lower bound on the deadlines in the due list (meaningful only while
    /// it is non-empty). Cancelling does not raise it, which keeps it O(1)
    /// and still a valid answer for `next_deadline`.
    due_floor: Tick,
    /// Slots cascaded so far, so tests can check that work is O(levels).
    #[cfg(test)]
    cascades: u64,
}

impl<T> Wheel<T> {
    /// An empty wheel standing at tick `now`.
    pub fn new(now: Tick) -> Self {
        Self::with_capacity(now, 0)
    }

    /// An empty wheel standing at `now`, with room for `capacity` timers
    /// before it allocates.
    pub fn with_capacity(now: Tick, capacity: usize) -> Self {
        Wheel {
            nodes: Vec::with_capacity(capacity),
            free: NIL,
            len: 0,
            elapsed: now,
            levels: [Level {
                occupied: 0,
                head: [NIL; SLOTS],
            }; LEVELS],
            due_head: NIL,
            due_tail: NIL,
            due_floor: 0,
            #[cfg(test)]
            cascades: 0,
        }
    }

    /// The tick the wheel has been advanced to. Inside a `poll` loop this can
    /// lag the `now` being polled for; it reaches it when `poll` returns
    /// `None`.
    pub fn now(&self) -> Tick {
        self.elapsed
    }

    /// How many timers are scheduled (including due ones not yet polled).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `value` to be returned by the first [`poll`](Self::poll)
    /// whose `now` is at least `deadline`. O(1). A deadline `<= now()` is not
    /// lost: it is returned by the next poll.
    ///
    /// # Panics
    ///
    /// If `u32::MAX - 1` timers are already live.
    pub fn schedule(&mut self, deadline: Tick, value: T) -> TimerId {
        // Hot path: allocates only while the node Vec grows to its peak.
        let id = self.alloc(deadline, value);
        self.link(id.index);
        id
    }

    /// Cancels a timer and returns its value. O(1), no search. A stale id
    /// (already fired or cancelled, even if its node has been reused) returns
    /// `None` and touches nothing.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.live(id)?;
        self.unlink(id.index);
        let (_, _, value) = self.release(id.index);
        Some(value)
    }

    /// Moves a live timer to a new deadline, keeping its id. O(1). Returns
    /// `false`, touching nothing, if `id` is stale.
    pub fn reschedule(&mut self, id: TimerId, deadline: Tick) -> bool {
        if self.live(id).is_none() {
            return false;
        }
        self.unlink(id.index);
        if let Node::Live { deadline: d, .. } = &mut self.nodes[id.index as usize] {
            *d = deadline;
        }
        self.link(id.index);
        true
    }

    /// The value of a live timer.
    pub fn get(&self, id: TimerId) -> Option<&T> {
        self.live(id).map(|(_, value)| value)
    }

    /// The deadline of a live timer.
    pub fn deadline(&self, id: TimerId) -> Option<Tick> {
        self.live(id).map(|(deadline, _)| deadline)
    }

    /// `None` when empty; otherwise a tick no later than the earliest pending
    /// deadline, so sleeping until it never oversleeps one. O(levels).
    ///
    /// It is exact when the earliest timer sits at level 0 (due within the
    /// next 64 ticks, at most); otherwise it is the first tick of that
    /// timer's slot, where the wheel must cascade before it can say more. A
    /// caller that sleeps until this tick and polls reaches any timer within
    /// [`LEVELS`] wake-ups. After a `poll(now)` loop has returned `None`, the
    /// answer is `> now`, so such a caller never spins.
    pub fn next_deadline(&self) -> Option<Tick> {
        if self.due_head != NIL {
            return Some(self.due_floor);
        }
        self.next_expiration().map(|(_, _, start)| start)
    }

    /// Advances the wheel to `now` (a `now` before [`now()`](Self::now) counts
    /// as `now()`) and removes and returns one timer whose deadline is
    /// `<= now`, or `None` when nothing is due. Call it in a loop until it
    /// returns `None`; timers scheduled between calls, including already due
    /// ones, are returned by the same loop. Timers scheduled for a future
    /// tick come out in deadline order; ones scheduled already due come out
    /// before any timer that falls due after them.
    pub fn poll(&mut self, now: Tick) -> Option<(TimerId, Tick, T)> {
        let now = now.max(self.elapsed);
        loop {
            if self.due_head != NIL {
                let (id, deadline, value) = self.pop_due();
                debug_assert!(
                    deadline <= now,
                    "poll({now}) fired {id:?} due at {deadline}: {self:?}"
                );
                return Some((id, deadline, value));
            }
            match self.next_expiration() {
                Some((level, slot, start)) if start <= now => self.cascade(level, slot, start),
                // Nothing starts at or before `now`, so no slot is skipped
                // and every entry keeps its level and slot at `elapsed = now`.
                _ => {
                    self.elapsed = now;
                    return None;
                }
            }
        }
    }

    /// The earliest occupied slot as `(level, slot, first tick of slot)`.
    fn next_expiration(&self) -> Option<(usize, usize, Tick)> {
        // Every entry of a lower level is earlier than every entry of a
        // higher one, so the lowest non-empty level holds the earliest slot.
        let (level, lvl) = self
            .levels
            .iter()
            .enumerate()
            .find(|(_, lvl)| lvl.occupied != 0)?;
        let slot = lvl.occupied.trailing_zeros() as usize;
        debug_assert!(
            slot > slot_for(self.elapsed, level),
            "slot {slot} of level {level} is not ahead of elapsed: {self:?}"
        );
        let shift = SLOT_BITS as usize * level;
        // Ticks spanned by the level, minus one; the top level spans all u64.
        let level_mask = 1u64
            .checked_shl((shift as u32) + SLOT_BITS)
            .map_or(u64::MAX, |span| span - 1);
        let start = (self.elapsed & !level_mask) | ((slot as u64) << shift);
        Some((level, slot, start))
    }

    /// Moves the wheel to `start`, the first tick of `slot` at `level`, and
    /// re-links that slot's entries lower down (or into the due list).
    fn cascade(&mut self, level: usize, slot: usize, start: Tick) {
        debug_assert!(
            start > self.elapsed,
            "cascade of level {level} slot {slot} at {start} would not advance: {self:?}"
        );
        #[cfg(test)]
        {
            self.cascades += 1;
        }
        self.elapsed = start;
        let lvl = &mut self.levels[level];
        let mut idx = mem::replace(&mut lvl.head[slot], NIL);
        lvl.occupied &= !(1 << slot);
        while idx != NIL {
            let (_, next) = self.nodes[idx as usize].links();
            let list = self.link(idx);
            debug_assert!(
                match list {
                    List::Due => true,
                    List::Slot { level: l, .. } => l < level,
                },
                "node {idx} cascaded from level {level} slot {slot} to {list:?}: {self:?}"
            );
            idx = next;
        }
    }

    /// The list a live entry with `deadline` belongs on right now.
    fn list_of(&self, deadline: Tick) -> List {
        if deadline <= self.elapsed {
            List::Due
        } else {
            let level = level_for(self.elapsed, deadline);
            List::Slot {
                level,
                slot: slot_for(deadline, level),
            }
        }
    }

    /// Links live node `idx` into the list its deadline calls for: the back
    /// of the due list, or the front of a slot.
    fn link(&mut self, idx: u32) -> List {
        let deadline = self.nodes[idx as usize].deadline();
        let list = self.list_of(deadline);
        match list {
            List::Due => {
                let tail = self.due_tail;
                self.set_links(idx, tail, NIL);
                if tail == NIL {
                    self.due_head = idx;
                    self.due_floor = deadline;
                } else {
                    *self.nodes[tail as usize].links_mut().1 = idx;
                    self.due_floor = self.due_floor.min(deadline);
                }
                self.due_tail = idx;
            }
            List::Slot { level, slot } => {
                let head = self.levels[level].head[slot];
                self.set_links(idx, NIL, head);
                if head != NIL {
                    *self.nodes[head as usize].links_mut().0 = idx;
                }
                self.levels[level].head[slot] = idx;
                self.levels[level].occupied |= 1 << slot;
            }
        }
        list
    }

    /// Unlinks live node `idx` from whichever list it is on, in O(1).
    fn unlink(&mut self, idx: u32) {
        let node = &self.nodes[idx as usize];
        let (prev, next) = node.links();
        let list = self.list_of(node.deadline());
        if prev != NIL {
            *self.nodes[prev as usize].links_mut().1 = next;
        } else {
            let head = match list {
                List::Due => &mut self.due_head,
                List::Slot { level, slot } => &mut self.levels[level].head[slot],
            };
            debug_assert!(
                *head == idx,
                "node {idx} has no prev but is not the head of {list:?}"
            );
            *head = next;
            if let (List::Slot { level, slot }, NIL) = (list, next) {
                self.levels[level].occupied &= !(1 << slot);
            }
        }
        if next != NIL {
            *self.nodes[next as usize].links_mut().0 = prev;
        } else if list == List::Due {
            self.due_tail = prev;
        }
    }

    fn set_links(&mut self, idx: u32, prev: u32, next: u32) {
        let (p, n) = self.nodes[idx as usize].links_mut();
        *p = prev;
        *n = next;
    }

    /// Unlinks and frees the head of the due list.
    fn pop_due(&mut self) -> (TimerId, Tick, T) {
        let idx = self.due_head;
        self.unlink(idx);
        self.release(idx)
    }

    /// The deadline and value of `id`, if it is live.
    fn live(&self, id: TimerId) -> Option<(Tick, &T)> {
        match self.nodes.get(id.index as usize)? {
            Node::Live {
                deadline,
                value,
                generation,
                ..
            } if *generation == id.generation => Some((*deadline, value)),
            _ => None,
        }
    }

    /// Takes a node off the free list (or grows the Vec) for a new timer,
    /// unlinked.
    fn alloc(&mut self, deadline: Tick, value: T) -> TimerId {
        let index = if self.free != NIL {
            let index = self.free;
            match self.nodes[index as usize] {
                Node::Free { next_free, .. } => self.free = next_free,
                Node::Live { .. } => unreachable!("live node {index} on the free list"),
            }
            index
        } else {
            let index = self.nodes.len();
            assert!(
                index < NIL as usize,
                "timer wheel is full ({index} live timers)"
            );
            self.nodes.push(Node::Free {
                next_free: NIL,
                generation: 0,
            });
            index as u32
        };
        let generation = self.nodes[index as usize].generation();
        self.nodes[index as usize] = Node::Live {
            deadline,
            value,
            prev: NIL,
            next: NIL,
            generation,
        };
        self.len += 1;
        TimerId { index, generation }
    }

    /// Frees an unlinked live node, bumping its generation so every id that
    /// named it is stale. A slot reused 2^32 times wraps its generation; an
    /// id held across all of those reuses could then alias, which no timer
    /// in this crate lives long enough to do.
    fn release(&mut self, index: u32) -> (TimerId, Tick, T) {
        let generation = self.nodes[index as usize].generation();
        let freed = Node::Free {
            next_free: self.free,
            generation: generation.wrapping_add(1),
        };
        self.free = index;
        self.len -= 1;
        match mem::replace(&mut self.nodes[index as usize], freed) {
            Node::Live {
                deadline, value, ..
            } => (TimerId { index, generation }, deadline, value),
            Node::Free { .. } => unreachable!("freeing free node {index}"),
        }
    }
}

/// Shows the wheel's bookkeeping (not the values, which need not be
/// `Debug`): what the `debug_assert!`s print.
impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Hex(u64);
        impl fmt::Debug for Hex {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#018x}", self.0)
            }
        }
        /// Non-empty levels only, as `level: bitmap`.
        struct Occupied<'a>(&'a [Level; LEVELS]);
        impl fmt::Debug for Occupied<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(
                        self.0
                            .iter()
                            .enumerate()
                            .filter(|(_, l)| l.occupied != 0)
                            .map(|(i, l)| (i, Hex(l.occupied))),
                    )
                    .finish()
            }
        }
        f.debug_struct("Wheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len)
            .field("nodes", &self.nodes.len())
            .field("free", &self.free)
            .field("due_head", &self.due_head)
            .field("due_tail", &self.due_tail)
            .field("due_floor", &self.due_floor)
            .field("occupied", &Occupied(&self.levels))
            .finish()
    }
}

#[cfg(test)]
mod tests {
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
                        let e =
                            model.swap_remove(pos.expect("fired an id the model does not hold"));
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
                            let d = wheel.now().saturating_sub(10).saturating_add(
                                rng.below((target - wheel.now()).saturating_add(20)),
                            );
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
}
