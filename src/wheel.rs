//! TEMPORARY stand-in for the `wheel` branch (a heap, not a wheel), with the
//! API agreed for it, so the client branch builds before that branch lands.
//! Replaced wholesale by the real module on merge; do not extend.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::Tick;

/// Names one scheduled timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

/// Timer set.
#[derive(Debug)]
pub struct Wheel<T> {
    heap: BinaryHeap<Reverse<(Tick, u64)>>,
    values: std::collections::HashMap<u64, (Tick, T)>,
    next: u64,
}

impl<T> Wheel<T> {
    /// Empty.
    pub fn new(now: Tick) -> Wheel<T> {
        Wheel::with_capacity(now, 0)
    }

    /// Empty with room.
    pub fn with_capacity(_now: Tick, cap: usize) -> Wheel<T> {
        Wheel {
            heap: BinaryHeap::with_capacity(cap),
            values: Default::default(),
            next: 0,
        }
    }

    /// Schedules.
    pub fn schedule(&mut self, deadline: Tick, value: T) -> TimerId {
        self.next += 1;
        self.heap.push(Reverse((deadline, self.next)));
        self.values.insert(self.next, (deadline, value));
        TimerId(self.next)
    }

    /// Cancels.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.values.remove(&id.0).map(|(_, v)| v)
    }

    /// Earliest deadline.
    pub fn next_deadline(&mut self) -> Option<Tick> {
        while let Some(Reverse((d, id))) = self.heap.peek().copied() {
            if self.values.contains_key(&id) {
                return Some(d);
            }
            self.heap.pop();
        }
        None
    }

    /// One due timer.
    pub fn poll(&mut self, now: Tick) -> Option<(TimerId, Tick, T)> {
        loop {
            let Reverse((d, id)) = *self.heap.peek()?;
            if d > now {
                return None;
            }
            self.heap.pop();
            if let Some((d, v)) = self.values.remove(&id) {
                return Some((TimerId(id), d, v));
            }
        }
    }
}
