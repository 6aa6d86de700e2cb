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

/// Bytes one scheduled timer of `T` takes in the wheel.
#[cfg(test)]
pub(crate) fn node_size<T>() -> usize {
    mem::size_of::<Node<T>>()
}

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
mod tests;
