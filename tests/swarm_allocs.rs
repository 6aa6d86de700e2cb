//! Proves the swarm's steady state allocates nothing: a counting global
//! allocator, switched on for the swarm's own thread only, between two
//! status callbacks once every connection is up. Covers the per-reply path
//! (flood mode: read → match → stamp → histogram → next request) and the
//! per-heartbeat path with its timer-wheel traffic (interval mode).

mod common;

use std::time::Duration;

use common::peers::Lubdub;
use lubdub::swarm::{Swarm, SwarmConfig};

mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

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
                window = (counting_alloc::allocations(), s.counters.replies.max(1));
                counting_alloc::count_this_thread(true);
            } else if counting_alloc::is_counting() && calls >= 5 {
                counting_alloc::count_this_thread(false);
                window = (
                    counting_alloc::allocations() - window.0,
                    s.counters.replies - window.1,
                );
            }
        })
        .unwrap();
    counting_alloc::count_this_thread(false);
    assert!(report.ok(), "{}", report.summary());
    window
}

fn config(addr: std::net::SocketAddr) -> SwarmConfig {
    SwarmConfig {
        connect: addr.into(),
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
