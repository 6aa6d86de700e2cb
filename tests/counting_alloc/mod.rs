//! A counting global allocator for the allocation tests. Each test binary
//! that includes this module installs it:
//!
//! ```ignore
//! mod counting_alloc;
//! #[global_allocator]
//! static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;
//! ```
//!
//! Counting is switched on per thread, so the test harness's threads and a
//! test's own setup never show up in the counts.
#![allow(dead_code)] // each test binary uses a different subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Wraps the system allocator and counts what counting threads do.
pub struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` and `Copy`: reading it never allocates or registers a destructor.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

/// Starts or stops counting on the calling thread.
pub fn count_this_thread(on: bool) {
    COUNTING.with(|c| c.set(on));
}

/// Whether the calling thread is counting.
pub fn is_counting() -> bool {
    counting()
}

/// Allocations (including reallocations) counted so far, on all threads.
pub fn allocations() -> usize {
    ALLOCS.load(Ordering::Relaxed)
}

/// Frees counted so far, on all threads.
pub fn frees() -> usize {
    FREES.load(Ordering::Relaxed)
}

/// Allocations and frees made on this thread while `f` runs.
pub fn measure(f: impl FnOnce()) -> (usize, usize) {
    let (a0, f0) = (allocations(), frees());
    count_this_thread(true);
    f();
    count_this_thread(false);
    (allocations() - a0, frees() - f0)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        System.dealloc(ptr, layout)
    }
}
