//! Hostile peers, made for real over loopback (clients against the server,
//! and at the end servers against the client): each test is named after what
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

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::peers::Child;
use common::*;
use fixtures::*;
use lubdub::server::{Config, Server};

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

const PINNED: usize = 1000;
const MAX_FRAME: usize = 64 * 1024;
const HALF_BODY: usize = 32 * 1024;

#[test]
fn pinning_max_size_bodies_costs_the_plain_server_no_memory() {
    let _serial = one_at_a_time();
    let _ = lubdub::limits::raise_file_limit();
    let (mut server, addr) = Child::server(&["--stats-every", "100ms"]);
    let pid = server.child.id();
    let mut good = connect(addr);
    ping(&mut good); // the read buffer and the reply path are touched
    let idle = rss_kib(pid);
    let announce = header(DATA, MAX_FRAME);
    let body = vec![0x55u8; HALF_BODY];
    let mut pinned: Vec<TcpStream> = (0..PINNED).map(|_| connect(addr)).collect();
    for s in pinned.iter_mut() {
        s.write_all(&announce).unwrap();
        s.write_all(&body).unwrap();
    }
    // Then trickle: a byte more of every body, a few times over.
    let trickles = 5;
    for _ in 0..trickles {
        std::thread::sleep(Duration::from_millis(50));
        for s in pinned.iter_mut() {
            s.write_all(&[0x55]).unwrap();
        }
        ping(&mut good);
    }
    // Wait for a stats line that shows every byte read.
    let everything = (8 * (1 + trickles) + PINNED * (8 + HALF_BODY + trickles)) as u64;
    let mut lines = Vec::new();
    let started = Instant::now();
    loop {
        let line = server.expect_line("stats ", Duration::from_secs(5));
        let done = field(&line, "bytes_in") == everything;
        lines.push(line);
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never read everything: {lines:#?}"
        );
    }
    let pinned_rss = rss_kib(pid);
    ping(&mut good);
    let grown = pinned_rss.saturating_sub(idle);
    eprintln!(
        "RSS idle {idle} KiB, with {PINNED} pinned half bodies {pinned_rss} KiB (+{grown} KiB)"
    );
    assert!(
        grown < 8 * 1024,
        "{PINNED} peers pinning half of a max-size body grew the server by {grown} KiB"
    );
    // Nothing was buffered at any time, no frame completed, nobody was
    // closed.
    let last = lines.last().unwrap();
    eprintln!("{last}");
    for line in &lines {
        assert_eq!(field(line, "buffered"), 0, "{line}");
        assert_eq!(field(line, "peak_buffered"), 0, "{line}");
    }
    assert_eq!(field(last, "active"), PINNED as u64 + 1, "{last}");
    assert_eq!(field(last, "data_frames"), 0, "{last}");
    drop(pinned);
}

#[test]
fn pinning_bodies_a_handler_wants_is_held_to_the_buffer_budget() {
    let _serial = one_at_a_time();
    let _ = lubdub::limits::raise_file_limit();
    let max_buffered = 4 * 1024 * 1024;
    let handler = WantsData::default();
    let server = start(handler.clone(), |c| {
        c.interval = Duration::from_secs(30);
        c.max_frame = MAX_FRAME;
        c.max_buffered = max_buffered;
    });
    let announce = header(DATA, MAX_FRAME);
    let body = vec![0x55u8; HALF_BODY];
    let mut pinned: Vec<TcpStream> = Vec::with_capacity(PINNED);
    for _ in 0..PINNED {
        let mut s = connect(server.addr);
        // The rest of the body goes out in one write later; a send buffer
        // that holds it whole lets it arrive in one segment, so finishing
        // a frame does not grow its buffer first.
        socket2::SockRef::from(&s)
            .set_send_buffer_size(256 * 1024)
            .unwrap();
        // A peer already closed for the budget may see its write fail.
        let _ = s.write_all(&announce).and_then(|()| s.write_all(&body));
        pinned.push(s);
    }
    // The server has read all it will when its counters stop moving.
    let mut last = server.stats_now();
    let mut still = 0;
    let started = Instant::now();
    while still < 5 {
        std::thread::sleep(Duration::from_millis(100));
        let now = server.stats_now();
        still = if now == last && now.accepted == PINNED as u64 {
            still + 1
        } else {
            0
        };
        last = now;
        assert!(started.elapsed() < Duration::from_secs(10), "{now:?}");
    }
    let during = server.stats_now();
    let (closed, mut open): (Vec<TcpStream>, Vec<TcpStream>) =
        pinned.into_iter().partition(is_closed);
    let closed = closed.len();
    eprintln!("{closed} of {PINNED} closed for the budget: {during:?}");
    // The overshoot is at most one read's worth.
    assert!(
        during.peak_buffered <= (max_buffered + MAX_FRAME) as u64,
        "peak_buffered={} with a budget of {max_buffered}",
        during.peak_buffered
    );
    assert!(during.over_budget > 0, "{during:?}");
    assert_eq!(closes(&during), [("over_budget", closed as u64)]);
    assert_eq!(during.active, (PINNED - closed) as u64);
    // The rest finish their frames and are answered.
    let mut rest = vec![0x55u8; MAX_FRAME - 8 - HALF_BODY];
    rest.extend_from_slice(&REQUEST);
    for s in open.iter_mut() {
        s.write_all(&rest).unwrap();
        assert_eq!(read_n(s, 8), RESPONSE);
    }
    assert!(
        eventually(Duration::from_secs(5), || server.stats_now().buffered == 0),
        "{:?}",
        server.stats_now()
    );
    let after = server.stats_now();
    assert_eq!(after.active, open.len() as u64, "{after:?}");
    assert_eq!(closes(&after), [("over_budget", closed as u64)]);
    assert_eq!(handler.frames.load(Ordering::Relaxed), open.len() as u64);
    assert_eq!(
        handler.bytes.load(Ordering::Relaxed),
        (open.len() * (MAX_FRAME - 8)) as u64
    );
}

#[test]
fn flooding_connects_above_max_connections_is_refused_without_hurting_held_peers() {
    let _serial = one_at_a_time();
    let server = start((), |c| {
        c.interval = Duration::from_millis(200);
        c.misses = 5;
        c.max_connections = Some(50);
    });
    let good = GoodPeers::start(server.addr, 40, Duration::from_millis(100));
    std::thread::sleep(Duration::from_millis(300));
    good.enter(1);
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr;
    let flooders: Vec<JoinHandle<u64>> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Reset rather than FIN: thousands of connections a
                    // second would otherwise fill the port range with
                    // TIME_WAIT for a minute.
                    if let Ok(s) = TcpStream::connect(addr) {
                        reset(s);
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let connects: u64 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    good.enter(2);
    std::thread::sleep(Duration::from_millis(300));
    let (rounds, _peers) = good.finish();
    eprintln!("{connects} flood connects; good peers: {rounds:?}");
    assert_eq!(rounds.failure, None);
    assert!(rounds.phases[1].rounds >= 20, "{rounds:?}");
    for (i, phase) in rounds.phases.iter().enumerate() {
        assert!(
            phase.max_rtt < Duration::from_secs(1),
            "phase {i}: a good peer waited {:?}",
            phase.max_rtt
        );
    }
    let stats = *server.stop().stats();
    eprintln!("{stats}");
    assert!(stats.rejected > 0, "{stats}");
    for (name, n) in closes(&stats) {
        // The flood's connections are refused, or admitted and then reset.
        assert!(
            matches!(name, "rejected" | "closed_by_peer" | "io_errors"),
            "{name}={n}: {stats}"
        );
    }
}

/// Opens `PINNED` connections to a server nobody polls — the kernel
/// completes the handshakes and queues them — then drives it one turn at a
/// time with no further connects (so no new edge from the listener), and
/// returns the total accepted after each turn.
fn accept_turns() -> Vec<u64> {
    let _ = lubdub::limits::raise_file_limit();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_connections: Some(2 * PINNED),
        ..Config::default()
    };
    let mut server = Server::bind(config, ()).unwrap();
    let queued: Vec<TcpStream> = (0..PINNED).map(|_| connect(server.local_addr())).collect();
    let mut turns = Vec::new();
    while server.stats().accepted < PINNED as u64 && turns.len() < 10 {
        server.poll_once(Some(Duration::ZERO)).unwrap();
        turns.push(server.stats().accepted);
    }
    eprintln!("accepted after each turn: {turns:?}");
    drop(queued);
    turns
}

/// Accepts in each turn, from the running totals.
fn per_turn(turns: &[u64]) -> Vec<u64> {
    let mut before = 0;
    turns
        .iter()
        .map(|&total| {
            let n = total - before;
            before = total;
            n
        })
        .collect()
}

#[test]
fn a_connect_backlog_left_over_a_turn_is_resumed_without_a_new_edge() {
    let _serial = one_at_a_time();
    let turns = accept_turns();
    let per_turn = per_turn(&turns);
    // A budget exists: the first turn leaves part of the backlog...
    assert!(turns.len() > 1, "all {PINNED} accepted in one turn");
    // ...which later turns take, a budget at most each, though the listener
    // raises no new edge; all of it within a handful of turns.
    assert!(
        per_turn[1..].iter().all(|&n| n > 0 && n <= 256),
        "{per_turn:?}"
    );
    assert_eq!(turns.last(), Some(&(PINNED as u64)), "{turns:?}");
    assert!(turns.len() <= 5, "{turns:?}");
}

#[test]
fn a_connect_backlog_is_accepted_at_most_a_budget_per_turn() {
    let _serial = one_at_a_time();
    let per_turn = per_turn(&accept_turns());
    assert!(per_turn.iter().all(|&n| n > 0 && n <= 256), "{per_turn:?}");
}

#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning_and_resumes() {
    use std::os::unix::process::CommandExt;
    let _serial = one_at_a_time();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lubdub"));
    command.args([
        "server",
        "--listen",
        "127.0.0.1:0",
        "--max-connections",
        "1000",
        "--interval",
        "30s",
    ]);
    // SAFETY: setrlimit is async-signal-safe; the child gets a hard limit of
    // 48 descriptors that it cannot raise.
    unsafe {
        command.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 48,
                rlim_max: 48,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (mut server, addr) = Child::listening(command);
    let pid = server.child.id();
    // 80 connections: the kernel completes them all (backlog), the server
    // can take only about 40.
    let mut conns: Vec<TcpStream> = (0..80).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (paused_at, paused) = server
        .wait_for_line("accept paused", Duration::from_secs(10))
        .expect("accepting never paused");
    assert!(paused.contains("open connections"), "{paused}");
    // Paused with connections waiting in the backlog: retrying every
    // accept_pause (100 ms), not spinning on them.
    let cpu_before = cpu_time(pid);
    let wall = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_time(pid) - cpu_before;
    let wall = wall.elapsed();
    eprintln!("paused: {cpu:?} of CPU in {wall:?}");
    assert!(
        cpu < wall / 4,
        "paused, the server used {cpu:?} of CPU in {wall:?}"
    );
    let mut answered = 0;
    for c in conns.iter_mut() {
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        if c.write_all(&REQUEST).is_ok() && c.read_exact(&mut [0u8; 8]).is_ok() {
            answered += 1;
        }
    }
    assert!(answered > 20 && answered < 80, "answered {answered}");
    // Free more descriptors than are still queued: the server resumes and
    // serves every connection that is left.
    conns.drain(..45);
    let resumed_at = server
        .wait_for("accepting again", Duration::from_secs(10))
        .expect("accepting never resumed");
    let mut served_late = 0;
    for c in conns.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(&REQUEST);
        match c.read_exact(&mut [0u8; 8]) {
            Ok(()) => served_late += 1,
            Err(e) => eprintln!("not served: {e}"),
        }
    }
    assert_eq!(
        served_late, 35,
        "after resuming, every remaining connection is served"
    );
    server.signal(libc::SIGTERM);
    let stopped = server.expect_line("stopped", Duration::from_secs(5));
    // A pause is one retry period: the count follows the clock, not the
    // connections waiting.
    let episode = resumed_at - paused_at;
    let pauses = field(&stopped, "accept_pauses");
    eprintln!("{pauses} pauses in {episode:?}");
    let periods = episode.as_millis() as u64 / 100;
    assert!(
        (1..=periods + 3).contains(&pauses),
        "{pauses} pauses in {episode:?}"
    );
    // One line for the whole episode, however many retries it took.
    let lines = server
        .seen
        .iter()
        .filter(|(_, l)| l.contains("accept paused"))
        .count();
    assert_eq!(lines, 1, "{}", server.log());
}

// Hostile servers, against the client.

/// Records why each connection ended.
#[derive(Default)]
struct Reasons(Vec<lubdub::client::Reason>);

impl lubdub::client::Handler for Reasons {
    fn disconnected(&mut self, reason: &lubdub::client::Reason) {
        self.0.push(*reason);
    }
}

fn client_config(addr: std::net::SocketAddr) -> lubdub::client::ClientConfig {
    lubdub::client::ClientConfig {
        connect: addr.into(),
        interval: Duration::from_millis(10),
        // A second of silence: only a real failure ends a connection.
        misses: 100,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(100),
        ..lubdub::client::ClientConfig::default()
    }
}

#[test]
fn a_server_flooding_requests_without_reading_is_left_by_the_binary_in_bounded_memory() {
    let _serial = one_at_a_time();
    let flooder = FloodingServer::start(false, u64::MAX);
    let mut client = Child::spawn(&[
        "client",
        "--connect",
        &flooder.addr.to_string(),
        "--interval",
        "1s",
        "--backoff-min",
        "100ms",
        "--backoff-max",
        "200ms",
    ]);
    let pid = client.child.id();
    // Every 50 ms for 3 s; an unbounded client is stopped as soon as it
    // passes the limit (it would pass a gigabyte within seconds).
    let limit_kib = 16 * 1024;
    let began = Instant::now();
    let mut peak_kib = 0;
    while began.elapsed() < Duration::from_secs(3) && peak_kib <= limit_kib {
        peak_kib = peak_kib.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let accepted = flooder.accepted.load(Ordering::Relaxed);
    let written = flooder.written.load(Ordering::Relaxed);
    eprintln!(
        "client peak RSS {peak_kib} KiB after {:?}; {accepted} connections, {written} request bytes written",
        began.elapsed()
    );
    let left = client.wait_for_line("server does not read", Duration::from_secs(2));
    assert_eq!(client.terminate(), Some(0), "{}", client.log());
    assert!(
        peak_kib <= limit_kib,
        "RSS {peak_kib} KiB > {limit_kib} KiB"
    );
    let (_, line) = left.unwrap_or_else(|| panic!("no slow-reader line: {}", client.log()));
    assert!(line.contains("reconnecting to"), "{line}");
    // Left, then back: the flooder is given up each time it floods.
    assert!(accepted >= 2, "{accepted} connections");
    assert!(client.log().contains("slow_readers"), "{}", client.log());
}

#[test]
fn a_server_flooding_requests_without_reading_is_closed_as_a_slow_reader_within_the_bound() {
    let _serial = one_at_a_time();
    let flooder = FloodingServer::start(false, u64::MAX);
    let max_backlog = 64 * 1024;
    let config = lubdub::client::ClientConfig {
        max_backlog,
        ..client_config(flooder.addr)
    };
    let mut client = lubdub::client::Client::new(config, Reasons::default()).unwrap();
    let began = Instant::now();
    let mut peak = 0;
    while client.handler().0.is_empty() && began.elapsed() < Duration::from_secs(10) {
        client.poll_once(Some(Duration::from_millis(10))).unwrap();
        peak = peak.max(client.unsent());
    }
    let stats = client.stats();
    eprintln!(
        "closed after {:?}: {:?}, unsent peak {peak}; {} request bytes written; {stats:?}",
        began.elapsed(),
        client.handler().0,
        flooder.written.load(Ordering::Relaxed)
    );
    assert_eq!(
        client.handler().0,
        [lubdub::client::Reason::SlowReader],
        "{stats:?}"
    );
    assert_eq!((stats.slow_readers, stats.disconnects), (1, 1), "{stats:?}");
    assert!(peak <= max_backlog, "unsent {peak} > {max_backlog}");
    assert_eq!(client.unsent(), 0, "the backlog goes with the connection");
}

#[test]
fn a_server_flooding_requests_it_does_read_cannot_keep_the_client_from_its_turns() {
    let _serial = one_at_a_time();
    // 64 MiB of requests: over 250 read budgets' worth.
    let cap = 64 << 20;
    let flooder = FloodingServer::start(true, cap);
    // Room for the replies to the flood's whole lead, so that the client
    // never has cause to call the flooder a slow reader.
    let config = lubdub::client::ClientConfig {
        max_backlog: 2 * fixtures::LEAD as usize,
        ..client_config(flooder.addr)
    };
    let mut client = lubdub::client::Client::new(config, Reasons::default()).unwrap();
    let began = Instant::now();
    let (mut turns, mut heartbeats) = (0u32, 0u64);
    let mut first_flood_turn = None;
    while began.elapsed() < Duration::from_secs(60) {
        client.poll_once(Some(Duration::from_millis(10))).unwrap();
        let written = flooder.written.load(Ordering::Relaxed);
        if written >= cap {
            break;
        }
        if written > 0 {
            // Turns that returned while the flood was on, and heartbeats
            // sent during them.
            turns += 1;
            let sent = client.stats().heartbeats_sent;
            let first = *first_flood_turn.get_or_insert(sent);
            heartbeats = sent - first;
        }
    }
    let flood = began.elapsed();
    // Let the rest of the flood in.
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end {
        client.poll_once(Some(Duration::from_millis(10))).unwrap();
    }
    let stats = client.stats();
    eprintln!(
        "{turns} turns and {heartbeats} heartbeats during {flood:?} of flood; the server saw {} requests; {stats:?}",
        flooder.client_requests.load(Ordering::Relaxed)
    );
    assert!(client.is_connected(), "{:?} {stats:?}", client.handler().0);
    assert_eq!(stats.disconnects, 0, "{:?}", client.handler().0);
    // Each turn reads at most 4 × 64 KiB, so a flood this long takes
    // hundreds; a client held inside `read` returns once or twice.
    assert!(turns >= 50, "only {turns} turns returned during the flood");
    // 10 ms heartbeats keep going out during it.
    assert!(heartbeats >= 2, "{heartbeats} heartbeats during the flood");
    assert!(flooder.client_requests.load(Ordering::Relaxed) >= 2);
}
