//! Stalls: the reactor itself does not run for longer than the silence
//! limit — a stopped process, a caller that blocks, more ready sockets than
//! one batch of events — while its peers keep talking into their sockets.
//! The promise under attack: a live peer is never evicted (a live server
//! never declared silent), and a peer that really went silent before the
//! stall still is.

mod common;

use std::time::{Duration, Instant};

use common::beat::Heartbeaters;
use common::peers::{Child, Lubdub};
use common::{drive, embedded};

const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

/// The number in `...stalled for NNNms...`.
fn stalled_ms(line: &str) -> u64 {
    line.split("stalled for ")
        .nth(1)
        .and_then(|rest| rest.split("ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stall length in {line:?}"))
}

/// The value of `key=` in a stats line.
use common::log_value as stat;

#[test]
fn a_server_stopped_past_the_limit_evicts_no_live_peer_but_still_the_silent_one() {
    // 200 ms × 3: a 1.5 s stop is 2.5 limits.
    let (mut server, addr) = Child::server(&["--interval", "200ms", "--misses", "3"]);
    let peers = Heartbeaters::start(addr, 201, Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(700));
    // Peer 0 goes quiet just before the stop: its deadline falls inside it.
    peers.mute(0);
    std::thread::sleep(Duration::from_millis(100));
    server.signal(SIGSTOP);
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    server.signal(SIGCONT);
    let line = server.expect_line("stalled for", Duration::from_secs(5));
    assert!(
        stalled_ms(&line) >= 1000,
        "stall of {}ms reported for a 1.5 s stop: {line}",
        stalled_ms(&line)
    );
    std::thread::sleep(Duration::from_millis(1500));
    let logs = peers.finish();
    server.signal(15);
    let stats = server.expect_line("stopped:", Duration::from_secs(5));

    let silent = &logs[0];
    let closed = silent
        .closed_at
        .expect("the peer that went silent before the stop was never evicted");
    assert!(
        closed > stopped + Duration::from_millis(1500),
        "evicted during the stop?"
    );
    for (i, log) in logs.iter().enumerate().skip(1) {
        assert!(
            log.closed_at.is_none(),
            "live peer {i} was evicted after the stall: {log:?}\n{}",
            server.log()
        );
        assert!(
            log.replies + 2 >= log.sent,
            "peer {i} lost replies: {log:?}"
        );
    }
    assert_eq!(stat(&stats, "evicted"), 1, "{stats}");
    // The stop is one stall; a loaded machine may add a short one of its
    // own (a scheduling delay past the 50 ms threshold), which is counted
    // too, but no second long one.
    assert!(stat(&stats, "pauses") >= 1, "{stats}");
    let long_stalls = server
        .log()
        .lines()
        .filter(|l| l.contains("stalled for") && stalled_ms(l) >= 1000)
        .count();
    assert_eq!(long_stalls, 1, "the stop, once:\n{}", server.log());
    // The eviction line tells the whole silence (at least the 100 ms before
    // the stop and the 1.5 s of it), and the excused part apart; what is
    // left is at least the limit. (Before, it said idle=6xxms: the silence
    // less the stall.)
    let evicted = server
        .log()
        .lines()
        .find(|l| l.contains("evicted peer="))
        .expect("an eviction line")
        .to_string();
    let idle = stat(&evicted, "idle");
    let excused = stat(&evicted, "excused");
    assert!(idle >= 1600, "{evicted}");
    assert!(excused >= 1000 && idle >= excused + 600, "{evicted}");
}

#[test]
fn a_stop_that_begins_and_ends_while_the_reactor_sleeps_is_still_measured() {
    // One quiet peer whose deadline is 30 s away: nothing is due, so the
    // reactor would sleep in `poll` far longer than the stop. A stop that
    // ends before a long sleep would have can only be seen if the reactor
    // never sleeps long.
    let (mut server, addr) =
        Child::server(&["--interval", "10s", "--misses", "3", "--log-level", "debug"]);
    let _peer = common::connect(addr);
    server.expect_line("accepted peer=", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    // The stall threshold here is 400 ms (four 100 ms ticks), and so is the
    // longest sleep: a stop is seen whole less at most that sleep.
    server.signal(SIGSTOP);
    std::thread::sleep(Duration::from_millis(1500));
    server.signal(SIGCONT);
    let line = server.expect_line("stalled for", Duration::from_secs(5));
    assert!(
        (1000..5000).contains(&stalled_ms(&line)),
        "stall of {}ms reported for a 1.5 s stop: {line}",
        stalled_ms(&line)
    );
    server.signal(15);
    let stats = server.expect_line("stopped:", Duration::from_secs(5));
    assert_eq!(stat(&stats, "pauses"), 1, "{stats}");
    assert_eq!(stat(&stats, "evicted"), 0, "{stats}");
}

#[test]
fn a_caller_that_blocks_past_the_limit_gets_no_live_peer_evicted() {
    let mut server = embedded(|c| {
        c.interval = Duration::from_millis(200);
        c.misses = 3;
        c.events_capacity = 16;
    });
    let peers = Heartbeaters::start(server.local_addr(), 200, Duration::from_millis(200));
    drive(&mut server, Duration::from_millis(600));
    assert_eq!(server.stats().active, 200);
    // The embedding program blocks for 2.5 limits; the peers keep sending.
    std::thread::sleep(Duration::from_millis(1500));
    drive(&mut server, Duration::from_millis(1000));
    let logs = peers.finish();
    let stats = *server.stats();
    assert_eq!(stats.evicted, 0, "{stats}");
    assert_eq!(stats.pauses, 1, "{stats}");
    assert!(stats.paused_ms >= 1000, "{stats}");
    for (i, log) in logs.iter().enumerate() {
        assert!(log.closed_at.is_none(), "peer {i}: {log:?}");
        assert!(log.replies + 2 >= log.sent, "peer {i}: {log:?}");
    }
}

#[test]
fn more_ready_peers_than_one_event_batch_with_their_timers_due_are_all_kept() {
    // Every peer is accepted at once, so every deadline falls on the same
    // tick; all of them send in time, and the server looks only after the
    // deadline and then gets events for only 8 of the 100 at a time.
    let mut server = embedded(|c| {
        c.interval = Duration::from_millis(300);
        c.misses = 2;
        c.tick = Some(Duration::from_millis(10));
        c.events_capacity = 8;
    });
    let addr = server.local_addr();
    let mut conns: Vec<std::net::TcpStream> = (0..100).map(|_| common::connect(addr)).collect();
    while server.stats().active < 100 {
        server.poll_once(Some(Duration::from_millis(5))).unwrap();
    }
    let accepted = Instant::now();
    while accepted.elapsed() < Duration::from_millis(400) {
        std::hint::spin_loop();
    }
    for c in conns.iter_mut() {
        use std::io::Write;
        c.write_all(&common::REQUEST).unwrap();
    }
    // Past the 600 ms deadline. The thread spins rather than sleeps: a
    // thread that is running is not stalled, so no excuse covers the
    // peers and only the read before the verdict can keep them.
    let look = accepted + Duration::from_millis(615);
    while Instant::now() < look {
        std::hint::spin_loop();
    }
    for _ in 0..40 {
        server.poll_once(Some(Duration::ZERO)).unwrap();
    }
    let stats = *server.stats();
    assert_eq!(
        stats.evicted,
        0,
        "evicted peers that sent in time (looked {:?} after the accept; pauses={})",
        accepted.elapsed(),
        stats.pauses
    );
    assert_eq!(stats.heartbeats, 100, "{stats}");
    for c in conns.iter_mut() {
        assert_eq!(common::read_n(c, 8), common::RESPONSE);
    }
}

#[test]
fn a_client_stopped_past_the_limit_does_not_call_its_live_server_silent() {
    let server = Lubdub::any_port();
    let addr = server.addr.to_string();
    let mut client = Child::spawn(&[
        "client",
        "--connect",
        &addr,
        "--interval",
        "100ms",
        "--misses",
        "3",
    ]);
    client.expect_line("connected to", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    client.signal(SIGSTOP);
    std::thread::sleep(Duration::from_millis(1000));
    client.signal(SIGCONT);
    let line = client.expect_line("stalled for", Duration::from_secs(5));
    assert!(stalled_ms(&line) >= 700, "{line}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(client.terminate(), Some(0));
    assert!(
        !client.log().contains("reconnecting"),
        "the client gave up a live server after its own stall:\n{}",
        client.log()
    );
    assert_eq!(server.stop().evicted, 0);
}

#[test]
fn a_client_stopped_while_its_server_went_silent_still_reconnects() {
    let (server, addr) = Child::server(&["--interval", "5s"]);
    let addr = addr.to_string();
    let mut client = Child::spawn(&[
        "client",
        "--connect",
        &addr,
        "--interval",
        "100ms",
        "--misses",
        "3",
        "--backoff-min",
        "100ms",
        "--backoff-max",
        "200ms",
    ]);
    client.expect_line("connected to", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    // The server goes silent, then the client stalls for longer than the
    // limit; the server stays silent after the client is back.
    server.signal(SIGSTOP);
    std::thread::sleep(Duration::from_millis(100));
    client.signal(SIGSTOP);
    std::thread::sleep(Duration::from_millis(1000));
    client.signal(SIGCONT);
    let back = Instant::now();
    let line = client.expect_line("reconnecting", Duration::from_secs(5));
    let took = back.elapsed();
    server.signal(SIGCONT);
    assert!(line.contains("server silent"), "{line}");
    // One interval of watched silence after the stall, and a margin.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

/// A swarm (`args` after `--connect ADDR`, a 3 s run, JSON on stdout)
/// against a healthy server, stopped `after` into the run for `stop`: its
/// exit status, its report, and the server.
fn swarm_stopped(
    args: &[&str],
    after: Duration,
    stop: Duration,
) -> (std::process::ExitStatus, String, Lubdub) {
    let server = Lubdub::any_port();
    let addr = server.addr.to_string();
    let mut command = vec![
        "swarm",
        "--connect",
        &addr,
        "--duration",
        "3s",
        "--json",
        "-",
    ];
    command.extend_from_slice(args);
    let mut swarm = Child::spawn(&command);
    std::thread::sleep(after);
    swarm.signal(SIGSTOP);
    std::thread::sleep(stop);
    swarm.signal(SIGCONT);
    let status = swarm.wait_exit(Duration::from_secs(20));
    (status, swarm.stdout_text(), server)
}

#[test]
fn a_swarm_stopped_past_the_limit_reports_no_reconnect_but_its_own_stall() {
    // A reply or two may come late on a loaded machine (the server here
    // shares it with the whole suite: seen once, late_replies=1, exit 3);
    // the stall itself must not make any late, and it holds a hundred in
    // flight, one per client (stall_adjusted_replies).
    let (status, json, server) = swarm_stopped(
        &[
            "--clients",
            "100",
            "--interval",
            "100ms",
            "--misses",
            "3",
            "--max-late",
            "5",
        ],
        Duration::from_millis(800),
        Duration::from_millis(1000),
    );
    let field = |key: &str| common::json_number(&json, key);
    // The server was never silent: no connection was given up.
    assert_eq!(field("reconnects"), 0, "{json}");
    assert_eq!(field("missing_replies"), 0, "{json}");
    assert_eq!(field("connected"), 100, "{json}");
    assert!(field("pauses") >= 1, "{json}");
    assert!(field("paused_ms") >= 700, "{json}");
    // But the swarm says it was the one that stalled, and does not call a
    // run with a hole in its load "ok": ten heartbeats per client were due
    // while it was stopped; the latest of them went out late, measured
    // from when it was due, the others are reported skipped.
    assert!(field("skipped_sends") >= 100 * 8, "{json}");
    let lag_max = json
        .split("\"swarm_lag_us\":")
        .nth(1)
        .and_then(|rest| rest.split("\"max\":").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(lag_max >= 50_000, "the swarm's own lag is reported: {json}");
    assert!(json.contains("the swarm itself fell behind"), "{json}");
    // Its own failures only, so its own exit code, and no word against
    // the server.
    assert_eq!(status.code(), Some(4), "{json}");
    assert!(json.contains("\"swarm_own_failure\":true"), "{json}");
    assert_server_not_blamed(&json);
    assert_eq!(server.stop().evicted, 0);
}

/// The failures that name the server: none of them may come from a stall
/// of the swarm's own.
fn assert_server_not_blamed(json: &str) {
    for blame in [
        "a reply took",
        "p99 round trip",
        "late replies",
        "got no reply",
    ] {
        assert!(!json.contains(blame), "the server blamed ({blame}): {json}");
    }
}

/// The `max` of `"rtt_us":{...}`.
fn rtt_max(json: &str) -> u64 {
    let rtt = json.split("\"rtt_us\":").nth(1).unwrap();
    common::json_number(rtt, "max")
}

#[test]
fn a_swarm_stopped_under_flood_names_its_own_stall_not_the_server() {
    // Closed loop: a reply that came while the swarm was stopped waits in
    // its socket; timed with the stop in it, it was "a stall longer than
    // --max-stall" blamed on a server that had answered at once.
    let (status, json, server) = swarm_stopped(
        &["--clients", "20", "--flood", "1"],
        Duration::from_millis(800),
        Duration::from_millis(1500),
    );
    let field = |key: &str| common::json_number(&json, key);
    // A harness that was not running for 1.5 s cannot vouch for the run:
    // failed, by its own doing, with its own exit code.
    assert_eq!(status.code(), Some(4), "{json}");
    assert!(json.contains("the swarm itself stalled 1."), "{json}");
    assert!(json.contains("\"swarm_own_failure\":true"), "{json}");
    assert_server_not_blamed(&json);
    assert!(field("longest_pause_ms") >= 1000, "{json}");
    // However the stop fell — in `poll` (every request in flight spans it,
    // and is adjusted) or in the middle of a turn (replies already
    // reported are timed to the wakeup before it; only requests sent
    // earlier in that turn span it) — no round trip keeps it.
    assert!(
        rtt_max(&json) < 1_000_000,
        "the stop left in a round trip: {json}"
    );
    assert_eq!(field("missing_replies"), 0, "{json}");
    assert_eq!(server.stop().evicted, 0);
}

#[test]
fn a_swarm_stopped_briefly_under_heartbeats_is_ok_and_reports_its_stall() {
    // A 0.6 s stop: shorter than an interval (nothing skipped) and than
    // --max-stall. The heartbeats due in it went out late, which the lag
    // shows; their round trips, the stop taken out, are the server's.
    // --max-stall is far above the stop: on a loaded machine the stop
    // outlasts the test's sleep (seen once: 1.25 s measured for 0.6 s
    // asked, which the default 1 s bound failed).
    let (status, json, server) = swarm_stopped(
        &[
            "--clients",
            "100",
            "--interval",
            "1s",
            "--misses",
            "3",
            "--max-stall",
            "5s",
        ],
        Duration::from_millis(1200),
        Duration::from_millis(600),
    );
    let field = |key: &str| common::json_number(&json, key);
    assert_eq!(status.code(), Some(0), "{json}");
    assert!(field("pauses") >= 1, "{json}");
    assert!(field("longest_pause_ms") >= 400, "{json}");
    // About 60 heartbeats fell due in the stop (100 clients, 10 ms apart).
    assert!(field("stall_adjusted_replies") >= 20, "{json}");
    assert!(
        rtt_max(&json) < 400_000,
        "the stop left in a round trip: {json}"
    );
    // Nothing skipped, unless the stop outlasted an interval after all.
    if field("longest_pause_ms") < 1000 {
        assert_eq!(field("skipped_sends"), 0, "{json}");
    }
    assert_server_not_blamed(&json);
    assert_eq!(server.stop().evicted, 0);
}

/// A handler whose every data frame takes 1.2 s: a turn of the reactor
/// stopped in its middle, as a SIGSTOP between two reads stops it.
struct StopsMidTurn;

impl lubdub::server::Handler for StopsMidTurn {
    type State = ();
    const WANTS_DATA: bool = true;

    fn on_data(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        _id: lubdub::server::ConnId,
        _payload: &[u8],
    ) {
        std::thread::sleep(Duration::from_millis(1200));
    }
}

#[test]
fn frames_read_after_a_stop_in_the_middle_of_a_turn_are_not_stamped_as_before_it() {
    // What evicted a live peer under randomized faults: a stop landed in
    // the middle of a turn, the turn went on after it and read the frames
    // that came during the stop, stamping them with the turn's wakeup —
    // before the stop. The stop was the second in the excuse window, so
    // nothing moved, and the next turn judged those peers silent for the
    // whole stop with their frames already read (`unread=0`). Here the stop
    // is a handler that takes 1.2 s, after a first stall (the caller away
    // 700 ms) spent the excuse. Before: 152 and 153 of 300 live peers
    // evicted, `unread=0`.
    let mut server = common::embedded_with(StopsMidTurn, |c| {
        c.interval = Duration::from_millis(200);
        c.misses = 3;
    });
    let peers = Heartbeaters::start(server.local_addr(), 300, Duration::from_millis(200));
    drive(&mut server, Duration::from_millis(600));
    assert_eq!(server.stats().active, 300);
    std::thread::sleep(Duration::from_millis(700));
    let mut first = common::connect(server.local_addr());
    drive(&mut server, Duration::from_millis(100));
    assert_eq!(server.stats().active, 301);
    assert_eq!(server.stats().excused_pauses, 1, "{}", server.stats());
    // Written before the others' next heartbeats, which pile up behind it
    // while the caller is away 100 ms: first in the batch, half the peers
    // after it.
    use std::io::Write;
    first.write_all(&[2, 0, 0, 0, 9, 0, 0, 0, 1]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drive(&mut server, Duration::from_millis(1500));
    let logs = peers.finish();
    let stats = *server.stats();
    assert_eq!(stats.excused_pauses, 1, "the stop is not excused: {stats}");
    assert!(stats.pauses >= 2, "{stats}");
    for (i, log) in logs.iter().enumerate() {
        assert!(log.closed_at.is_none(), "live peer {i} evicted: {stats}");
    }
    assert_eq!(stats.evicted, 0, "{stats}");
}
