//! Abuse limits: heartbeat rate strikes, connections per source, and the
//! address rules — each against a real server on loopback, where sources
//! are told apart by binding 127.0.0.2, 127.0.0.3, ….

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::beat::Heartbeaters;
use common::{connect, eventually, ping, wait_closed, REQUEST, RESPONSE};
use socket2::{Domain, Socket, Type};

/// A connection to `server` from `source` (any port).
fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&local.into()).expect("bind the source address");
    socket.connect(&server.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Whether the server kept `s`: a heartbeat gets its reply, rather than
/// an EOF or a reset.
fn answered(s: &mut TcpStream) -> bool {
    if s.write_all(&REQUEST).is_err() {
        return false;
    }
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).is_ok() && reply == RESPONSE
}

/// Resets `s` (SO_LINGER 0), as a crashed or hostile peer does.
fn reset(s: TcpStream) {
    let socket = Socket::from(s);
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    drop(socket);
}

#[test]
fn a_flooding_peer_is_closed_within_its_strike_window_while_honest_peers_keep_their_replies() {
    // Interval 200 ms × 3: a bucket of 600 ms / 50 ms = 12 heartbeats.
    let server = common::start((), |c| {
        c.interval = Duration::from_millis(200);
        c.misses = 3;
        c.min_heartbeat_interval = Some(Duration::from_millis(50));
    });
    let honest = Heartbeaters::start(server.addr, 20, Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(300));

    // 64 heartbeats in flight at a time, as fast as the replies come.
    let mut flood = connect(server.addr);
    let start = Instant::now();
    let burst: Vec<u8> = REQUEST.repeat(64);
    let mut sent = 0u64;
    let closed_after = loop {
        if flood.write_all(&burst).is_err() {
            break start.elapsed();
        }
        sent += 64;
        let mut replies = [0u8; 64 * 8];
        match flood.read_exact(&mut replies) {
            Ok(()) => {}
            Err(_) => break start.elapsed(),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a flood of {sent} was never closed"
        );
    };
    // Out as soon as its bucket and strikes are spent: 12 + 2, read in the
    // first burst.
    assert!(sent <= 128, "{sent} heartbeats sent before the close");
    assert!(
        closed_after < Duration::from_secs(5),
        "closed after {closed_after:?}"
    );

    std::thread::sleep(Duration::from_millis(600));
    let peers = honest.finish();
    let stats = *server.stop().stats();
    assert_eq!(stats.too_fast, 1, "{stats:?}");
    assert!(stats.strikes >= 2, "{stats:?}");
    for (i, peer) in peers.iter().enumerate() {
        assert!(
            peer.closed_at.is_none(),
            "honest peer {i} was closed: {peer:?}"
        );
        assert!(peer.sent >= 3, "honest peer {i} barely ran: {peer:?}");
        assert!(
            peer.replies + 1 >= peer.sent,
            "honest peer {i} lost replies: {peer:?}"
        );
        // Their round trips kept too: generous, for a shared machine, but a
        // flood answered in full for seconds on end would show here.
        assert!(
            peer.max_rtt < Duration::from_secs(1),
            "honest peer {i}: {peer:?}"
        );
    }
    assert_eq!(stats.evicted, 0, "{stats:?}");
}

#[test]
fn a_peer_just_under_the_rate_is_never_struck() {
    let server = common::start((), |c| {
        c.interval = Duration::from_millis(200);
        c.misses = 3;
        c.min_heartbeat_interval = Some(Duration::from_millis(50));
    });
    // One every 60 ms for 3 s: 50 heartbeats, four buckets' worth.
    let mut peer = connect(server.addr);
    let start = Instant::now();
    for k in 0..50u32 {
        ping(&mut peer);
        let next = start + Duration::from_millis(60) * (k + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    assert!(answered(&mut peer));
    let stats = *server.stop().stats();
    assert_eq!((stats.strikes, stats.too_fast), (0, 0), "{stats:?}");
}

#[test]
fn a_burst_after_a_server_stall_or_a_reconnect_is_not_struck() {
    // The caller's loop drives the server, so the test can stall it.
    let mut server = common::embedded(|c| {
        c.interval = Duration::from_millis(200);
        c.misses = 3;
        c.min_heartbeat_interval = Some(Duration::from_millis(50));
    });
    let addr = server.local_addr();
    let mut peer = connect(addr);
    peer.set_nonblocking(true).unwrap();
    common::drive(&mut server, Duration::from_millis(50));

    // The server stalls 3 s, five liveness windows; the peer keeps its
    // interval meanwhile: 15 heartbeats queue up, more than its bucket of
    // 12, and are read at once after the stall.
    let stall = Instant::now();
    let mut queued = 0;
    while stall.elapsed() < Duration::from_secs(3) {
        peer.write_all(&REQUEST).unwrap();
        queued += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    common::drive(&mut server, Duration::from_millis(300));
    let mut replies = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => panic!("closed after the stall"),
            Ok(n) => replies.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(replies.len(), queued * 8, "every queued heartbeat answered");

    // A reconnecting client catching up: ten heartbeats in its first write.
    let mut fresh = connect(addr);
    fresh.write_all(&REQUEST.repeat(10)).unwrap();
    common::drive(&mut server, Duration::from_millis(100));
    fresh.set_nonblocking(true).unwrap();
    let n = fresh.read(&mut buf).unwrap();
    assert_eq!(n, 80);

    let stats = server.stats();
    assert_eq!((stats.strikes, stats.too_fast), (0, 0), "{stats:?}");
    assert_eq!(stats.evicted, 0, "the stall was excused: {stats:?}");
}

#[test]
fn connections_past_the_per_source_limit_are_refused_and_counted() {
    let server = common::start((), |c| c.max_connections_per_source = Some(10));
    let mut from_two: Vec<TcpStream> = (0..50)
        .map(|_| connect_from("127.0.0.2", server.addr))
        .collect();
    let mut from_three: Vec<TcpStream> = (0..10)
        .map(|_| connect_from("127.0.0.3", server.addr))
        .collect();
    assert!(eventually(Duration::from_secs(5), || server
        .stats_now()
        .over_source_limit
        == 40));
    let kept_two = from_two
        .iter_mut()
        .map(answered)
        .filter(|&kept| kept)
        .count();
    let kept_three = from_three
        .iter_mut()
        .map(answered)
        .filter(|&kept| kept)
        .count();
    assert_eq!((kept_two, kept_three), (10, 10));
    // The count is given back at a close, even a reset's, whose address
    // the kernel has forgotten.
    let mut open: Vec<TcpStream> = from_two
        .into_iter()
        .filter_map(|mut s| answered(&mut s).then_some(s))
        .collect();
    for s in open.drain(..5) {
        reset(s);
    }
    assert!(eventually(Duration::from_secs(5), || server
        .stats_now()
        .active
        == 15));
    let mut again: Vec<TcpStream> = (0..6)
        .map(|_| connect_from("127.0.0.2", server.addr))
        .collect();
    let kept = again.iter_mut().map(answered).filter(|&kept| kept).count();
    assert_eq!(kept, 5, "room for the five reset, no more");
    let stats = *server.stop().stats();
    assert_eq!(stats.over_source_limit, 41, "{stats:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");
}

#[test]
fn address_rules_refuse_before_anything_is_read() {
    let server = common::start((), |c| {
        c.access.allow.push("127.0.0.0/29".parse().unwrap());
        c.access.deny.push("127.0.0.3".parse().unwrap());
    });
    let mut allowed = connect_from("127.0.0.2", server.addr);
    assert!(answered(&mut allowed));
    let mut denied = connect_from("127.0.0.3", server.addr);
    assert!(wait_closed(&mut denied, Duration::from_secs(5)).is_some());
    let mut outside = connect_from("127.0.0.9", server.addr);
    assert!(wait_closed(&mut outside, Duration::from_secs(5)).is_some());
    let stats = *server.stop().stats();
    assert_eq!((stats.denied, stats.heartbeats), (2, 1), "{stats:?}");
    assert_eq!(stats.accepted, 1, "{stats:?}");
}

#[test]
fn behind_a_balancer_the_rules_judge_the_client_the_header_names() {
    let server = common::start((), |c| {
        c.proxy_protocol = true;
        c.access.deny.push("10.9.9.9".parse().unwrap());
        c.max_connections_per_source = Some(1);
    });
    let header = |client: &str| format!("PROXY TCP4 {client} 127.0.0.1 40000 8898\r\n");
    // The balancer's own address (127.0.0.1) is the same for all three.
    let mut banned = connect(server.addr);
    banned.write_all(header("10.9.9.9").as_bytes()).unwrap();
    assert!(wait_closed(&mut banned, Duration::from_secs(5)).is_some());
    let mut first = connect(server.addr);
    first.write_all(header("10.9.9.8").as_bytes()).unwrap();
    assert!(answered(&mut first));
    let mut second = connect(server.addr);
    second.write_all(header("10.9.9.8").as_bytes()).unwrap();
    assert!(wait_closed(&mut second, Duration::from_secs(5)).is_some());
    let mut other = connect(server.addr);
    other.write_all(header("10.9.9.7").as_bytes()).unwrap();
    assert!(answered(&mut other));
    let stats = *server.stop().stats();
    assert_eq!((stats.denied, stats.over_source_limit), (1, 1), "{stats:?}");
}

#[test]
fn bad_limit_flags_are_one_line_usage_errors() {
    let bin = env!("CARGO_BIN_EXE_lubdub");
    for (args, needle) in [
        (
            &["--allow", "10.0.0.0/33"][..],
            "prefix length must be 0 to 32",
        ),
        (&["--deny", "example.com"][..], "not an address or block"),
        (
            &["--min-heartbeat-interval", "6s"][..],
            "--min-heartbeat-interval",
        ),
        (&["--heartbeat-strikes", "0"][..], "--heartbeat-strikes"),
        (
            &["--max-connections-per-source", "0"][..],
            "--max-connections-per-source",
        ),
        (&["--source-prefix-v6", "129"][..], "--source-prefix-v6"),
    ] {
        let out = std::process::Command::new(bin)
            .arg("server")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn each_limit_logs_its_refusals_at_info_naming_the_peer() {
    let (mut server, addr) = common::peers::Child::server(&[
        "--interval",
        "1s",
        "--min-heartbeat-interval",
        "100ms",
        "--max-connections-per-source",
        "1",
        "--deny",
        "127.0.0.3",
        "--metrics",
        "127.0.0.1:0",
    ]);
    // Logged before the `listening on` line the fixture waited for.
    let metrics_line = server
        .seen
        .iter()
        .map(|(_, l)| l.clone())
        .find(|l| l.contains("metrics on http://"))
        .unwrap_or_else(|| panic!("no metrics line: {}", server.log()));
    let metrics: SocketAddr = metrics_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{metrics_line}"));
    server.expect_line(
        "limits: min_heartbeat_interval=100ms heartbeat_strikes=2",
        Duration::from_secs(5),
    );
    let mut flood = connect_from("127.0.0.2", addr);
    let local = flood.local_addr().unwrap();
    let _ = flood.write_all(&REQUEST.repeat(100));
    let line = server.expect_line(&format!("closed peer={local} "), Duration::from_secs(5));
    assert!(
        line.contains("[INFO]") && line.contains("reason=too_fast"),
        "{line}"
    );
    let _kept = connect_from("127.0.0.4", addr);
    let _second = connect_from("127.0.0.4", addr);
    let line = server.expect_line("reason=over_source_limit", Duration::from_secs(5));
    assert!(
        line.contains("[INFO] refused peer=127.0.0.4:")
            && line.contains("1 connections open from 127.0.0.4"),
        "{line}"
    );
    let _denied = connect_from("127.0.0.3", addr);
    let line = server.expect_line("reason=denied", Duration::from_secs(5));
    assert!(
        line.contains("refused peer=127.0.0.3:") && line.contains("inside a --deny block"),
        "{line}"
    );
    // The same counts in the metrics, as closes by reason and strikes.
    let mut scrape = TcpStream::connect(metrics).unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    scrape.read_to_string(&mut text).unwrap();
    for series in [
        "lubdub_connections_closed_total{reason=\"too_fast\"} 1",
        "lubdub_connections_closed_total{reason=\"denied\"} 1",
        "lubdub_connections_closed_total{reason=\"over_source_limit\"} 1",
    ] {
        assert!(text.lines().any(|l| l == series), "no {series:?} in {text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("lubdub_heartbeat_strikes_total ") && !l.ends_with(" 0")),
        "{text}"
    );
    assert_eq!(server.terminate(), Some(0));
    let log = server.log();
    let stopped = log
        .lines()
        .find(|l| l.contains("stopped"))
        .unwrap_or_else(|| panic!("no stopped line: {log}"));
    assert_eq!(
        (
            common::log_value(stopped, "too_fast"),
            common::log_value(stopped, "over_source_limit"),
            common::log_value(stopped, "denied")
        ),
        (1, 1, 1),
        "{stopped}"
    );
}
