//! `--metrics`, as an operator uses it: the real binary, known traffic,
//! a scrape checked against what was done; hostile scrapers; the
//! exposition judged by `promtool` and scraped by a real Prometheus.
//!
//! The `promtool` and Prometheus tests need the `prometheus` package: without
//! it and without root they say so in one line and pass; as root a missing
//! one is a failure (`.ci/run` installs it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::peers::Child;

/// The address a process logged as `metrics on http://ADDR/metrics`.
fn metrics_addr(child: &mut Child) -> SocketAddr {
    let line = match child
        .seen
        .iter()
        .find(|(_, l)| l.contains("metrics on http://"))
    {
        Some((_, line)) => line.clone(),
        None => child.expect_line("metrics on http://", Duration::from_secs(10)),
    };
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// One HTTP exchange: the raw request, the whole answer (the server closes).
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    String::from_utf8(answer).unwrap()
}

fn scrape(addr: SocketAddr) -> String {
    let answer = http(addr, b"GET /metrics HTTP/1.1\r\nHost: lubdub\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    body.to_string()
}

/// The value of the series `series` (name and labels, as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

/// The sum over every series of `name` whose labels contain `with`.
fn sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(with))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Sends a heartbeat and reads its reply.
fn heartbeat(s: &mut TcpStream) -> Duration {
    let sent = Instant::now();
    s.write_all(&lubdub::protocol::HEARTBEAT_REQUEST).unwrap();
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply, lubdub::protocol::HEARTBEAT_RESPONSE);
    sent.elapsed()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

#[test]
fn a_scrape_counts_the_heartbeats_closes_and_eviction_that_were_done() {
    let (mut server, addr) = Child::server(&[
        "--interval",
        "300ms",
        "--misses",
        "2",
        "--tick",
        "10ms",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let metrics = metrics_addr(&mut server);
    // One peer that stays silent (evicted at 600 ms), one that sends a
    // malformed frame, three that heartbeat until the eviction.
    let _silent = connect(addr);
    let mut bad = connect(addr);
    bad.write_all(&[0, 0, 0, 0, 4, 0, 0, 0]).unwrap(); // len 4 < 8
    let mut peers: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    let mut sent = 0u64;
    let started = Instant::now();
    while server
        .seen
        .iter()
        .all(|(_, l)| !l.contains("evicted peer="))
    {
        for p in &mut peers {
            heartbeat(p);
            sent += 1;
        }
        // Lines read without waiting, so the heartbeats keep their pace.
        let _ = server.wait_for_line("evicted peer=", Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(10), "no eviction");
    }
    let text = scrape(metrics);
    assert_eq!(value(&text, "lubdub_heartbeats_total"), sent as f64);
    assert_eq!(value(&text, "lubdub_connections_accepted_total"), 5.0);
    assert_eq!(value(&text, "lubdub_connections_active"), 3.0);
    assert_eq!(
        value(
            &text,
            "lubdub_connections_closed_total{reason=\"protocol\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&text, "lubdub_connections_closed_total{reason=\"evicted\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "lubdub_bytes_received_total"),
        (sent * 8 + 8) as f64
    );
    assert_eq!(value(&text, "lubdub_bytes_sent_total"), (sent * 8) as f64);
    assert_eq!(value(&text, "lubdub_eviction_lateness_seconds_count"), 1.0);
    // Fired within a tick or so of its deadline on an idle machine; a
    // second on a loaded one is still "on time" for this check.
    assert_eq!(
        value(&text, "lubdub_eviction_lateness_seconds_bucket{le=\"1\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "lubdub_metrics_scrapes_total{result=\"served\"}"),
        1.0
    );
    // A peer that leaves is counted as such, and a second scrape sees it.
    drop(peers.pop());
    assert!(common::eventually(Duration::from_secs(5), || {
        value(
            &scrape(metrics),
            "lubdub_connections_closed_total{reason=\"peer\"}",
        ) == 1.0
    }));
    // Paths and methods other than GET /metrics.
    let index = http(metrics, b"GET / HTTP/1.1\r\n\r\n");
    assert!(
        index.starts_with("HTTP/1.1 200 OK") && index.contains("/metrics"),
        "{index}"
    );
    let missing = http(metrics, b"GET /nope HTTP/1.1\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    let post = http(
        metrics,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    let text = scrape(metrics);
    assert_eq!(
        value(&text, "lubdub_metrics_scrapes_total{result=\"not_found\"}"),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "lubdub_metrics_scrapes_total{result=\"bad_request\"}"
        ),
        1.0
    );
    // At the stop, what was open is counted as closed by the shutdown;
    // the final stats line says so.
    server.terminate();
    let stopped = server
        .seen
        .iter()
        .find(|(_, l)| l.contains("stopped:"))
        .map(|(_, l)| l.clone())
        .unwrap_or_else(|| server.expect_line("stopped:", Duration::from_secs(5)));
    assert_eq!(
        common::log_value(&stopped, "closed_by_shutdown"),
        2,
        "{stopped}"
    );
}

#[test]
fn hostile_scrapers_are_capped_timed_out_and_never_delay_a_heartbeat() {
    let (mut server, addr) = Child::server(&["--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&mut server);
    let mut peer = connect(addr);
    heartbeat(&mut peer);
    // 20 scrapers: one that trickles a request head that never ends, a
    // byte every 100 ms, then 19 that never send a byte. The cap holds 16,
    // the other 4 are accepted and closed at once.
    let began = Instant::now();
    let mut trickler = TcpStream::connect(metrics).unwrap();
    let trickled = std::thread::spawn(move || {
        let head = b"GET /metrics HTTP/1.1\r\nX-Slow: ";
        let mut i = 0;
        // Until the server closes it (a write fails), for at most 20 s.
        while began.elapsed() < Duration::from_secs(20) {
            let byte = head.get(i).copied().unwrap_or(b'a');
            if trickler.write_all(&[byte]).is_err() {
                break;
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        began.elapsed()
    });
    // Connected after the trickler's, so accepted after it.
    std::thread::sleep(Duration::from_millis(200));
    let mut hanging: Vec<TcpStream> = (0..19)
        .map(|_| {
            let s = TcpStream::connect(metrics).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            s
        })
        .collect();
    let mut refused = 0;
    for s in &mut hanging[15..] {
        let mut byte = [0u8; 1];
        // EOF (or a reset) comes at once, long before any timeout.
        let closed_at = Instant::now();
        match s.read(&mut byte) {
            Ok(0) | Err(_) => refused += 1,
            Ok(_) => panic!("a refused scraper got bytes"),
        }
        assert!(closed_at.elapsed() < Duration::from_secs(3));
    }
    assert_eq!(refused, 4);
    // Meanwhile heartbeats are answered as ever.
    let mut slowest = Duration::ZERO;
    while began.elapsed() < Duration::from_secs(3) {
        slowest = slowest.max(heartbeat(&mut peer));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        slowest < Duration::from_millis(500),
        "heartbeat took {slowest:?}"
    );
    // The 16 are closed once their 5 s are up: not before, not much after,
    // the trickler too, however steadily it sends.
    for s in &mut hanging[..15] {
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Ok(0) | Err(_) => {}
            Ok(_) => panic!("a silent scraper got bytes"),
        }
        let at = began.elapsed();
        assert!(at >= Duration::from_secs(5), "closed after {at:?}");
        assert!(at < Duration::from_secs(12), "closed after {at:?}");
    }
    let at = trickled.join().unwrap();
    // A write fails only once the close is known: a little after it.
    assert!(at >= Duration::from_secs(5), "trickler closed after {at:?}");
    assert!(at < Duration::from_secs(12), "trickler closed after {at:?}");
    // A head past 8 KiB is refused with 431.
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while huge.len() < 9 * 1024 {
        huge.extend_from_slice(format!("X-Pad: {}\r\n", "a".repeat(200)).as_bytes());
    }
    let mut s = TcpStream::connect(metrics).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&huge); // the server may close before taking it all
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let text = scrape(metrics);
    assert_eq!(
        value(&text, "lubdub_metrics_scrapes_total{result=\"rejected\"}"),
        4.0
    );
    assert_eq!(
        value(&text, "lubdub_metrics_scrapes_total{result=\"timed_out\"}"),
        16.0
    );
    assert_eq!(
        value(
            &text,
            "lubdub_metrics_scrapes_total{result=\"bad_request\"}"
        ),
        1.0
    );
    assert_eq!(value(&text, "lubdub_metrics_scrapers_open"), 1.0);
    heartbeat(&mut peer);
}

#[test]
fn a_swarm_exposes_its_connections_requests_replies_and_round_trips() {
    let (_server, addr) = Child::server(&[]);
    let addr = addr.to_string();
    let mut swarm = Child::spawn(&[
        "swarm",
        "--connect",
        &addr,
        "--clients",
        "10",
        "--interval",
        "100ms",
        "--duration",
        "30s",
        "--status-every",
        "500ms",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let metrics = metrics_addr(&mut swarm);
    let mut text = String::new();
    assert!(
        common::eventually(Duration::from_secs(10), || {
            text = scrape(metrics);
            value(&text, "lubdub_swarm_replies_total") >= 50.0
        }),
        "{text}"
    );
    assert_eq!(value(&text, "lubdub_swarm_connections_up"), 10.0);
    assert_eq!(value(&text, "lubdub_swarm_connects_total"), 10.0);
    let requests = value(&text, "lubdub_swarm_requests_total");
    let replies = value(&text, "lubdub_swarm_replies_total");
    assert!(replies <= requests && requests <= replies + 10.0, "{text}");
    // Every timed reply is in the histogram, the open status window's too.
    let untimed = value(&text, "lubdub_swarm_untimed_replies_total");
    assert_eq!(
        value(&text, "lubdub_swarm_rtt_seconds_count"),
        replies - untimed
    );
    assert_eq!(
        value(&text, "lubdub_swarm_rtt_seconds_bucket{le=\"+Inf\"}"),
        replies - untimed
    );
    assert_eq!(sum(&text, "lubdub_swarm_reconnects_total", ""), 0.0);
    swarm.signal(libc::SIGINT);
    swarm.wait_exit(Duration::from_secs(10));
}

#[test]
fn two_workers_are_served_by_their_supervisor_each_labelled() {
    let (mut server, addr) = Child::server(&["--workers", "2", "--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&mut server);
    let mut peers: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
    for _ in 0..5 {
        for p in &mut peers {
            heartbeat(p);
        }
    }
    // Workers report once a second.
    let mut text = String::new();
    assert!(
        common::eventually(Duration::from_secs(10), || {
            text = scrape(metrics);
            sum(&text, "lubdub_heartbeats_total", "worker=") == 40.0
        }),
        "{text}"
    );
    assert_eq!(sum(&text, "lubdub_connections_active", "worker="), 8.0);
    assert_eq!(value(&text, "lubdub_workers_running"), 2.0);
    for worker in ["worker=\"0\"", "worker=\"1\""] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("lubdub_heartbeats_total{") && l.contains(worker)),
            "{worker} missing:\n{text}"
        );
        assert!(
            text.lines().any(
                |l| l.starts_with("lubdub_eviction_lateness_seconds_bucket{") && l.contains(worker)
            ),
            "{worker} has no histogram:\n{text}"
        );
    }
    // Only the supervisor listens for scrapes: no worker was handed
    // --metrics (with port 0 each would have bound one of its own).
    let _ = server.wait_for_line("never logged", Duration::from_millis(200));
    let listening: Vec<&String> = server
        .seen
        .iter()
        .map(|(_, l)| l)
        .filter(|l| l.contains("metrics on http://"))
        .collect();
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert!(!listening[0].contains("worker="), "{listening:?}");
}

/// Whether `tool` can run; false (having said why) when the test should
/// pass without it.
/// Whether `tool` (from the prometheus package) is here; if not, the
/// test skips with one line — or fails, where `LUBDUB_REQUIRE_TOOLS` says
/// every test must run (`.ci/run`).
fn have_tool(test: &str, tool: &str) -> bool {
    match common::netns::missing_tool(tool, "--version", "prometheus") {
        None => true,
        Some(why) => {
            common::netns::skip(test, &why);
            false
        }
    }
}

#[test]
fn promtool_accepts_the_server_and_swarm_expositions() {
    if !have_tool("promtool", "promtool") {
        return;
    }
    let (mut server, addr) = Child::server(&["--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&mut server);
    let mut peer = connect(addr);
    heartbeat(&mut peer);
    let addr = addr.to_string();
    let mut swarm = Child::spawn(&[
        "swarm",
        "--connect",
        &addr,
        "--clients",
        "2",
        "--interval",
        "100ms",
        "--duration",
        "30s",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let swarm_metrics = metrics_addr(&mut swarm);
    for (what, at) in [("server", metrics), ("swarm", swarm_metrics)] {
        let text = scrape(at);
        let mut check = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics failed on the {what}'s exposition: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    swarm.signal(libc::SIGINT);
    swarm.wait_exit(Duration::from_secs(10));
}

#[test]
fn a_real_prometheus_scrapes_the_server_and_reads_its_heartbeats_back() {
    if !have_tool("prometheus", "prometheus") {
        return;
    }
    let (mut server, addr) = Child::server(&["--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&mut server);
    let mut peer = connect(addr);
    for _ in 0..7 {
        heartbeat(&mut peer);
    }
    let dir = std::env::temp_dir().join(format!("lubdub-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: lubdub\n    static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .unwrap();
    let web = common::peers::free_port();
    let mut command = std::process::Command::new("prometheus");
    command.args([
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address={web}"),
        "--log.level=warn".to_string(),
    ]);
    let mut prometheus = Child::from_command(command);
    let query = format!(
        "GET /api/v1/query?query=lubdub_heartbeats_total HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let found = common::eventually(Duration::from_secs(60), || {
        answer = match TcpStream::connect(web) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(query.as_bytes());
                let mut a = String::new();
                let _ = s.read_to_string(&mut a);
                a
            }
            Err(_) => String::new(),
        };
        answer.contains("\"lubdub_heartbeats_total\"")
    });
    prometheus.terminate();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        found,
        "Prometheus never had lubdub_heartbeats_total: {answer}\nits log:\n{}",
        prometheus.log()
    );
    // The value as scraped: the seven heartbeats.
    assert!(answer.contains("\"7\"]"), "{answer}");
    assert!(answer.contains("\"job\":\"lubdub\""), "{answer}");
}

#[test]
fn an_embedded_server_serves_metrics_from_the_callers_poll_within_its_tokens() {
    use lubdub::server::{Config, Server, Step};
    use mio::{Events, Poll, Token, Waker};
    const FIRST: Token = Token(1000);
    let poll = Poll::new().unwrap();
    let waker = std::sync::Arc::new(Waker::new(poll.registry(), Token(2)).unwrap());
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_connections: Some(64),
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    };
    let mut server = Server::bind_on(config, (), poll.registry(), FIRST, waker).unwrap();
    // The listener, 64 connections, then the metrics listener and its 16
    // scrapers: the caller keeps all of them clear of its own.
    assert_eq!(server.tokens(), 1 + 64 + 1 + 16);
    assert!(server.owns(Token(FIRST.0 + server.tokens() - 1)));
    assert!(!server.owns(Token(FIRST.0 + server.tokens())));
    let addr = server.local_addr();
    let metrics = server.metrics_addr().expect("metrics are on");
    let stop = server.shutdown_handle();
    let looped = std::thread::spawn(move || {
        let mut poll = poll;
        let mut events = Events::with_capacity(64);
        let began = Instant::now();
        loop {
            let timeout = server.next_timeout(Instant::now());
            poll.poll(&mut events, Some(timeout)).unwrap();
            for event in &events {
                if server.owns(event.token()) {
                    server.handle_event(event, Instant::now());
                }
            }
            if server.handle_timeout(Instant::now()) == Step::Stopped {
                return server;
            }
            assert!(began.elapsed() < Duration::from_secs(30), "loop ran away");
        }
    });
    let mut peer = connect(addr);
    for _ in 0..3 {
        heartbeat(&mut peer);
    }
    let text = scrape(metrics);
    assert_eq!(value(&text, "lubdub_heartbeats_total"), 3.0);
    assert_eq!(value(&text, "lubdub_connections_active"), 1.0);
    stop.shutdown();
    let server = looped.join().unwrap();
    assert_eq!(server.stats().closed_by_shutdown, 1);
    assert!(
        TcpStream::connect(metrics).is_err(),
        "the metrics listener outlived the server"
    );
}
