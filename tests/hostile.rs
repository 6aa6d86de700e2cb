//! Hostile peers, made for real over loopback: each test is named after what
//! a bad peer does and asserts the promise that behaviour attacks — one bad
//! peer never hurts the others; memory stays bounded; nothing is lost or
//! hidden, everything is counted.
//!
//! Timing bounds are strict below and generous above (the machines that run
//! this are small and noisy). The tests run one at a time
//! ([`one_at_a_time`]): each measures time or memory, and two at once would
//! measure each other.

mod common;
#[path = "hostile/fixtures.rs"]
mod fixtures;

use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use common::*;
use fixtures::*;
use lubdub::server::Config;

#[test]
fn trickling_a_frame_a_byte_at_a_time_is_evicted_on_time_beside_a_served_peer() {
    let _serial = one_at_a_time();
    let interval = Duration::from_millis(100);
    let server = start((), |c| {
        c.interval = interval;
        c.misses = 3;
    });
    let limit = interval * 3;
    let tick = Config {
        interval,
        ..Default::default()
    }
    .effective_tick();
    let every = Duration::from_millis(50);
    // A heartbeat's 8 bytes take 350 ms, a data frame's 1,000 take 50 s:
    // bytes keep coming, but no frame completes within the limit.
    let mut data = header(DATA, 1000).to_vec();
    data.resize(1000, 0x55);
    let addr = server.addr;
    let tricklers: Vec<_> = [REQUEST.to_vec(), data]
        .into_iter()
        .map(|bytes| {
            std::thread::spawn(move || trickle(addr, &bytes, every, Duration::from_secs(5)))
        })
        .collect();
    let mut good = connect(server.addr);
    let mut max_rtt = Duration::ZERO;
    let began = Instant::now();
    while began.elapsed() < limit * 3 {
        let asked = Instant::now();
        ping(&mut good);
        max_rtt = max_rtt.max(asked.elapsed());
        std::thread::sleep(every);
    }
    let margin = Duration::from_secs(1);
    for (name, t) in ["heartbeat", "data frame"].iter().zip(tricklers) {
        let (closed, replies) = t.join().unwrap();
        let closed = closed.unwrap_or_else(|| panic!("the {name} trickler was never evicted"));
        eprintln!("{name} trickler: evicted after {closed:?}, {replies} reply bytes before");
        assert!(
            closed >= limit,
            "{name} trickler evicted after {closed:?}, before {limit:?}"
        );
        assert!(
            closed <= limit + tick + margin,
            "{name} trickler evicted only after {closed:?}"
        );
    }
    ping(&mut good);
    eprintln!("good peer: max round trip {max_rtt:?}");
    assert!(
        max_rtt < Duration::from_secs(1),
        "good peer waited {max_rtt:?}"
    );
    let stats = *server.stop().stats();
    assert_eq!(closes(&stats), [("evicted", 2)]);
    assert_eq!(stats.data_frames, 0);
}

#[test]
fn flooding_heartbeats_without_reading_closes_the_flooder_and_spares_a_hundred_peers() {
    let _serial = one_at_a_time();
    let _ = lubdub::limits::raise_file_limit();
    let max_backlog = 64 * 1024;
    let server = start((), |c| {
        c.interval = Duration::from_secs(5);
        c.max_backlog = max_backlog;
    });
    let good = GoodPeers::start(server.addr, 100, Duration::from_millis(10));
    std::thread::sleep(Duration::from_millis(300));
    good.enter(1);
    let mut hog = connect(server.addr);
    hog.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let burst = REQUEST.repeat(8192); // 64 KiB of requests
    let began = Instant::now();
    let mut sent = 0usize;
    let closed = loop {
        match hog.write(&burst) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset or broken pipe: the server closed it.
            Err(_) => break Some(began.elapsed()),
        }
        if began.elapsed() > Duration::from_secs(10) {
            break None;
        }
    };
    good.enter(2);
    std::thread::sleep(Duration::from_millis(200));
    let (rounds, _peers) = good.finish();
    let closed = closed.expect("the server never closed a peer that does not read");
    eprintln!("flooder: {sent} bytes sent, closed after {closed:?}; good peers: {rounds:?}");
    assert_eq!(rounds.failure, None);
    for (i, phase) in rounds.phases.iter().enumerate() {
        assert!(phase.rounds > 0, "no rounds in phase {i}: {rounds:?}");
        assert!(
            phase.max_rtt < Duration::from_secs(1),
            "phase {i}: a good peer waited {:?}",
            phase.max_rtt
        );
    }
    let stats = *server.stop().stats();
    eprintln!("{stats}");
    assert_eq!(closes(&stats), [("slow_readers", 1)]);
    // The flooder's backlog is the only one, and a Vec grown by doubling up
    // to max_backlog holds less than twice it.
    assert!(
        stats.peak_buffered < 2 * max_backlog as u64,
        "peak_buffered={}",
        stats.peak_buffered
    );
}

#[test]
fn half_closing_after_a_heartbeat_still_gets_the_reply_then_eof() {
    let _serial = one_at_a_time();
    let server = start((), |c| c.interval = Duration::from_secs(5));
    let mut s = connect(server.addr);
    s.write_all(&REQUEST).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_n(&mut s, 8), RESPONSE);
    let mut rest = [0u8; 8];
    assert_eq!(read_once(&mut s, &mut rest).expect("EOF, not a reset"), 0);
    assert!(eventually(Duration::from_secs(5), || {
        server.stats_now().active == 0
    }));
    let stats = *server.stop().stats();
    assert_eq!(closes(&stats), [("closed_by_peer", 1)]);
    assert_eq!(stats.heartbeats, 1);
    assert_eq!(stats.bytes_out, 8);
}

#[test]
fn resetting_mid_frame_is_counted_as_closed_by_peer_and_frees_what_it_held() {
    let _serial = one_at_a_time();
    // A handler that wants payloads, so that a split body is buffered.
    let server = start(WantsData::default(), |c| {
        c.interval = Duration::from_secs(5)
    });
    let mut good = connect(server.addr);
    ping(&mut good);
    let mut half_header = connect(server.addr);
    half_header.write_all(&REQUEST[..4]).unwrap();
    let mut half_body = connect(server.addr);
    let mut partial = header(DATA, 1008).to_vec();
    partial.resize(8 + 500, 0x55);
    half_body.write_all(&partial).unwrap();
    // Both are mid-frame on the server before they reset: the body is held.
    let read_all = (8 + 4 + partial.len()) as u64;
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = server.stats_now();
            s.bytes_in == read_all && s.buffered >= 500
        }),
        "{:?}",
        server.stats_now()
    );
    reset(half_header);
    reset(half_body);
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = server.stats_now();
            s.active == 1 && s.buffered == 0
        }),
        "{:?}",
        server.stats_now()
    );
    ping(&mut good);
    let stats = *server.stop().stats();
    assert_eq!(closes(&stats), [("closed_by_peer", 2)]);
    assert_eq!(stats.data_frames, 0);
    assert_eq!(stats.heartbeats, 2);
}
