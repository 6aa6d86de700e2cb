//! Proves the swarm's steady state allocates nothing: a counting global
//! allocator, switched on for the swarm's own thread only, between two
//! status callbacks once every connection is up. Covers the per-reply path
//! (flood mode: read → match → stamp → histogram → next request) and the
//! per-heartbeat path with its timer-wheel traffic (interval mode).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lubdub::swarm::{Swarm, SwarmConfig};
use support::Lubdub;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
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
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs a swarm and returns (allocations while counting, replies while counting).
fn steady_state_allocs(config: SwarmConfig) -> (usize, u64) {
    let clients = config.clients as u64;
    let mut swarm = Swarm::new(config).unwrap();
    let mut calls = 0;
    let mut window = (0usize, 0u64);
    let report = swarm
        .run(|s| {
            calls += 1;
            // Start once all are up; stop two status periods later.
            if window.1 == 0 && s.counters.connected == clients && calls >= 2 {
                window = (ALLOCS.load(Ordering::Relaxed), s.counters.replies.max(1));
                COUNTING.with(|c| c.set(true));
            } else if COUNTING.with(Cell::get) && calls >= 5 {
                COUNTING.with(|c| c.set(false));
                window = (
                    ALLOCS.load(Ordering::Relaxed) - window.0,
                    s.counters.replies - window.1,
                );
            }
        })
        .unwrap();
    COUNTING.with(|c| c.set(false));
    assert!(report.ok(), "{}", report.summary());
    window
}

fn config(addr: std::net::SocketAddr) -> SwarmConfig {
    SwarmConfig {
        connect: addr,
        clients: 200,
        interval: Duration::from_millis(20),
        // 1 s of silence tolerated: a stall on a loaded machine must not
        // cause a reconnect inside the measured window.
        misses: 50,
        duration: Some(Duration::from_millis(1_600)),
        status_every: Duration::from_millis(200),
        seed: Some(1),
        ..SwarmConfig::default()
    }
}

#[test]
fn steady_state_allocates_nothing() {
    let server = Lubdub::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        Duration::from_millis(20),
        50,
    );

    let (allocs, replies) = steady_state_allocs(config(server.addr));
    assert!(
        replies > 1_000,
        "interval mode measured only {replies} replies"
    );
    assert_eq!(
        allocs, 0,
        "interval mode: {allocs} allocations over {replies} replies"
    );

    let (allocs, replies) = steady_state_allocs(SwarmConfig {
        flood: Some(8),
        ..config(server.addr)
    });
    assert!(
        replies > 5_000,
        "flood mode measured only {replies} replies"
    );
    assert_eq!(
        allocs, 0,
        "flood mode: {allocs} allocations over {replies} replies"
    );
}
