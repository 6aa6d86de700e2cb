//! The `lubdub swarm` binary against a real server over loopback.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::log_ms;
use common::peers::{free_port, restartable_port, Answerer, Child, Lubdub};

fn swarm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lubdub"))
        .arg("swarm")
        .args(args)
        .output()
        .expect("run lubdub swarm")
}

/// The number after `"key":` in a flat-enough JSON text (each key used here
/// is unique in the report).
fn field(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} missing in {json}"))
        + pat.len();
    let end = json[at..].find([',', '}']).map(|e| at + e).unwrap();
    json[at..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

fn check_consistent(json: &str) {
    for key in [
        "target",
        "connected",
        "peak_connected",
        "connect_failures",
        "reconnects",
        "heartbeats_sent",
        "replies",
        "missing_replies",
        "protocol_errors",
        "elapsed_s",
        "replies_per_s",
        "p50",
        "p99",
        "p999",
        "max",
    ] {
        field(json, key);
    }
    assert!(json.contains("\"rtt_us\":{"), "{json}");
    assert!(
        field(json, "replies") <= field(json, "heartbeats_sent"),
        "{json}"
    );
    assert!(
        field(json, "connected") <= field(json, "peak_connected"),
        "{json}"
    );
    let (p50, p99, p999, max) = (
        field(json, "p50"),
        field(json, "p99"),
        field(json, "p999"),
        field(json, "max"),
    );
    assert!(p50 <= p99 && p99 <= p999 && p999 <= max, "{json}");
    let rate = field(json, "replies") / field(json, "elapsed_s");
    assert!(
        (field(json, "replies_per_s") - rate).abs() <= 1.0 + rate * 0.01,
        "{json}"
    );
}

#[test]
fn two_thousand_clients_all_connect_with_no_missing_replies() {
    // Both sides tolerate 200 ms × 10 of silence: a stall of this loaded
    // machine must not pass for a dead peer.
    let server = Lubdub::start(any_port(), Duration::from_millis(200), 10);
    let out = swarm(&[
        "--connect",
        &server.addr.to_string(),
        "--clients",
        "2000",
        "--interval",
        "200ms",
        "--misses",
        "10",
        "--duration",
        "4s",
        "--json",
        "-",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let json = stdout.trim();
    assert_eq!(
        json.lines().count(),
        1,
        "one JSON object on one line: {json}"
    );
    check_consistent(json);
    assert_eq!(field(json, "target"), 2000.0);
    assert_eq!(field(json, "connected"), 2000.0, "{json}");
    assert_eq!(field(json, "missing_replies"), 0.0, "{json}");
    assert_eq!(field(json, "reconnects"), 0.0, "{json}");
    assert_eq!(field(json, "protocol_errors"), 0.0, "{json}");
    // Ramp-up at 2000/s takes 1 s; then 5 heartbeats/s per client for ~3 s.
    assert!(field(json, "heartbeats_sent") >= 2000.0 * 10.0, "{json}");
    assert_eq!(
        field(json, "replies"),
        field(json, "heartbeats_sent"),
        "{json}"
    );
    assert!(stderr.contains("result:      ok"), "{stderr}");
    let server = server.stop();
    assert_eq!(server.peak_active, 2000, "{server:?}");
    assert_eq!(server.evicted, 0, "{server:?}");
    assert_eq!(
        server.heartbeats as f64,
        field(json, "heartbeats_sent"),
        "{server:?}"
    );
}

fn any_port() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

#[test]
fn every_client_reconnects_through_a_server_restart_spread_out_by_jitter() {
    let addr = restartable_port();
    let clients = 1000;
    let rule = (Duration::from_millis(200), 10);
    let server = Lubdub::start(addr, rule.0, rule.1);
    let mut swarm = Child::spawn(&[
        "swarm",
        "--connect",
        &addr.to_string(),
        "--clients",
        &clients.to_string(),
        "--interval",
        "200ms",
        "--misses",
        "10",
        "--backoff-min",
        "200ms",
        "--backoff-max",
        "1s",
        "--duration",
        "5s",
        "--log-level",
        "debug",
        "--json",
        "-",
    ]);
    let start = Instant::now();
    while server.accepted.load(std::sync::atomic::Ordering::Relaxed) < clients
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    server.stop();
    std::thread::sleep(Duration::from_millis(300));
    let _server = Lubdub::start(addr, rule.0, rule.1);

    let status = swarm.child.wait().unwrap();
    swarm.wait_for("\u{0}never", Duration::from_millis(500));
    let stdout = swarm.stdout_text();
    let log = swarm.log();
    let json = stdout.trim();
    // Replies in flight when the server died are missing, so the exit code
    // may say the target was missed; everything else must hold.
    assert!(
        matches!(status.code(), Some(0) | Some(3)),
        "{status:?} {json}"
    );
    check_consistent(json);
    assert_eq!(field(json, "connected"), clients as f64, "{json}");
    assert!(field(json, "reconnects") >= clients as f64, "{json}");

    // The first reconnect of every client: its delay was drawn with full
    // jitter from [200 ms, 320 ms], so they do not all land in one tick.
    let mut first_delay = std::collections::BTreeMap::new();
    for line in log.lines().filter(|l| l.contains(": reconnecting in ")) {
        let client: u64 = line
            .split("client ")
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let delay = line
            .split("reconnecting in ")
            .nth(1)
            .unwrap()
            .split([':', ' '])
            .next()
            .unwrap();
        let ms = lubdub::duration::parse(delay).unwrap().as_millis() as u64;
        first_delay.entry(client).or_insert(ms);
    }
    assert_eq!(
        first_delay.len(),
        clients as usize,
        "every client reconnected"
    );
    let delays: BTreeSet<u64> = first_delay.values().copied().collect();
    let (lo, hi) = (*delays.first().unwrap(), *delays.last().unwrap());
    assert!(lo >= 200 && hi <= 320, "{lo}..{hi}");
    assert!(delays.len() > 50, "only {} distinct delays", delays.len());
    assert!(hi - lo >= 60, "delays span only {lo}..{hi} ms");

    // And the connects after the restart are spread over many milliseconds.
    let restart_connects: BTreeSet<u64> = log
        .lines()
        .skip_while(|l| !l.contains("reconnecting in "))
        .filter(|l| l.contains(": connected"))
        .filter_map(log_ms)
        .collect();
    assert!(
        restart_connects.len() > 10,
        "reconnects landed in {} distinct ms",
        restart_connects.len()
    );
}

#[test]
fn fixed_request_and_reply_load_a_non_lubdub_server_in_flood_mode() {
    // A Redis-like server: every "PING\r\n" gets "+PONG\r\n".
    let server = Answerer::start(free_port(), None, 6, b"+PONG\r\n");
    let out = swarm(&[
        "--connect",
        &server.addr.to_string(),
        "--clients",
        "50",
        "--flood",
        "4",
        "--duration",
        "1s",
        "--request-hex",
        "50494e470d0a",
        "--reply-hex",
        "2b504f4e470d0a",
        "--json",
        "-",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{json}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_consistent(&json);
    assert!(json.contains("\"mode\":\"flood\""), "{json}");
    assert_eq!(field(&json, "missing_replies"), 0.0, "{json}");
    // A closed loop on loopback does far more than one round trip per ms.
    assert!(field(&json, "replies") > 5_000.0, "{json}");
}

#[test]
fn refuses_up_front_when_the_file_limit_is_too_low() {
    let out = swarm(&[
        "--connect",
        "127.0.0.1:9",
        "--clients",
        "5000000",
        "--duration",
        "1s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("5000100 open files needed"), "{stderr}");
    assert!(stderr.contains("at most"), "{stderr}");
}

#[test]
fn a_server_that_is_not_there_fails_the_run_with_a_reason() {
    let out = swarm(&[
        "--connect",
        &free_port().to_string(),
        "--clients",
        "10",
        "--duration",
        "500ms",
        "--json",
        "-",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(field(&json, "connect_failures") >= 10.0, "{json}");
    assert!(stderr.contains("only 0 of 10 connections"), "{stderr}");
}

#[test]
fn source_addrs_spread_connections_over_local_addresses() {
    let server = Answerer::heartbeats(free_port());
    let out = swarm(&[
        "--connect",
        &server.addr.to_string(),
        "--clients",
        "60",
        "--source-addrs",
        "127.0.0.2-127.0.0.4",
        "--interval",
        "100ms",
        "--duration",
        "700ms",
        "--json",
        "-",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(field(&json, "connected"), 60.0);
    let peers: Vec<String> = server
        .peers
        .lock()
        .unwrap()
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(peers, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
}

#[test]
fn a_server_that_answers_twice_is_not_amplified_and_fails_the_run() {
    // Two replies for every request. In flood mode only the first may send
    // the next request; the second answers nothing and must be counted.
    let twice: &'static [u8] = &[1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0];
    let server = Answerer::start(free_port(), None, 8, twice);
    for mode in [&["--flood", "1"][..], &["--interval", "50ms"][..]] {
        let mut args = vec![
            "--connect",
            &server.addr.to_string(),
            "--clients",
            "10",
            "--duration",
            "1s",
            "--json",
            "-",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend(mode.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = swarm(&args);
        let json = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{mode:?}: {json}\n{stderr}");
        check_consistent(&json);
        let (sent, replies, unexpected) = (
            field(&json, "heartbeats_sent"),
            field(&json, "replies"),
            field(&json, "unexpected_replies"),
        );
        // Every request got its reply, and one more that nobody asked for.
        assert!(replies >= 10.0, "{mode:?}: {json}");
        assert!(sent <= replies + 10.0, "{mode:?}: amplified: {json}");
        assert!(
            (unexpected - replies).abs() <= 10.0,
            "{mode:?}: every extra reply counted: {json}"
        );
        assert!(json.contains("\"ok\":false"), "{json}");
        assert!(stderr.contains("no request asked for"), "{stderr}");
    }
}

#[test]
fn lost_connections_are_counted_by_reason() {
    // A server at its connection limit accepts and closes at once: the
    // clients over it are rejected, over and over.
    let (_full, addr) = Child::server(&["--max-connections", "4"]);
    let out = swarm(&[
        "--connect",
        &addr.to_string(),
        "--clients",
        "8",
        "--interval",
        "100ms",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "100ms",
        "--duration",
        "1s",
        "--json",
        "-",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(field(&json, "rejected") >= 4.0, "{json}");
    assert_eq!(field(&json, "silent"), 0.0, "{json}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rejected "),
        "the summary names the reason"
    );

    // A server that never answers: its clients give up on silence.
    let quiet = Answerer::silent(free_port());
    let out = swarm(&[
        "--connect",
        &quiet.addr.to_string(),
        "--clients",
        "5",
        "--interval",
        "50ms",
        "--misses",
        "2",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "100ms",
        "--duration",
        "1s",
        "--json",
        "-",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(field(&json, "silent") >= 5.0, "{json}");
    assert_eq!(field(&json, "rejected"), 0.0, "{json}");

    // Nobody listening: connect failures, by reason.
    let out = swarm(&[
        "--connect",
        &free_port().to_string(),
        "--clients",
        "3",
        "--backoff-min",
        "50ms",
        "--duration",
        "300ms",
        "--json",
        "-",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(field(&json, "refused") >= 3.0, "{json}");
    assert_eq!(
        field(&json, "refused"),
        field(&json, "connect_failures"),
        "{json}"
    );
}

#[test]
fn churn_closes_idle_connections_on_purpose_and_costs_no_reply() {
    let server = Lubdub::any_port();
    let out = swarm(&[
        "--connect",
        &server.addr.to_string(),
        "--clients",
        "200",
        "--interval",
        "100ms",
        "--churn",
        "10",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "100ms",
        "--duration",
        "2500ms",
        "--json",
        "-",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{json}");
    // 10 % of 200 each second, from the first second on: 20 at 1 s and 2 s.
    let churned = field(&json, "churned");
    assert_eq!(churned, 40.0, "{json}");
    assert_eq!(field(&json, "reconnects"), 0.0, "{json}");
    assert_eq!(field(&json, "missing_replies"), 0.0, "{json}");
    let stats = server.stop();
    assert_eq!(stats.accepted, 200 + churned as u64, "{stats}");
    // Churned or closed at the end of the run: all by the swarm, none evicted.
    assert_eq!(stats.closed_by_peer, stats.accepted, "{stats}");
    assert_eq!(stats.evicted, 0, "{stats}");
}

#[test]
fn reconnects_that_hang_on_a_server_that_takes_no_new_connections_fail_the_run() {
    // Existing connections keep being answered; from 1.5 s on every new SYN
    // is dropped. Churn closes 10 a second, and their reconnects hang: by
    // the end, 2 s and 1 s after the last two waves, they are far past
    // the bound (2 × 200 ms), and the run must not call them open.
    let mut server = Answerer::heartbeats_backlog_one();
    let addr = server.addr.to_string();
    let started = Instant::now();
    let mut load = Child::spawn(&[
        "swarm",
        "--connect",
        &addr,
        "--clients",
        "100",
        "--interval",
        "200ms",
        "--churn",
        "10",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "100ms",
        "--duration",
        "4s",
        "--json",
        "-",
    ]);
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(started.elapsed()));
    server.stop_accepting();
    let status = load.wait_exit(Duration::from_secs(30));
    let json = load.stdout_text();
    let _ = load.wait_for_line("\u{0}never", Duration::from_millis(300));
    let log = load.log();
    assert_eq!(status.code(), Some(3), "{json}\n{log}");
    // Churn at 2 s and 3 s, 10 each; allow for a wave that found few idle.
    let stuck = field(&json, "stuck_connects");
    assert!(stuck >= 10.0, "{json}");
    assert!(field(&json, "longest_connect_ms") >= 900.0, "{json}");
    assert_eq!(field(&json, "max_connect_wait_ms"), 400.0, "{json}");
    assert!(
        field(&json, "connected") + field(&json, "churn_pending") + stuck <= 100.0,
        "a stuck reconnect counted as pending: {json}"
    );
    assert!(
        json.contains("connects were not done within --max-connect-wait 400ms"),
        "{json}"
    );
    assert!(log.contains("still hanging at the end"), "{log}");

    // The opening ramp the same: connects that hang from the start are
    // stuck, not pending.
    let out = swarm(&[
        "--connect",
        &addr,
        "--clients",
        "5",
        "--interval",
        "200ms",
        "--duration",
        "1s",
        "--json",
        "-",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{json}");
    assert_eq!(field(&json, "stuck_connects"), 5.0, "{json}");
    assert!(json.contains("5 connects were not done within"), "{json}");
}

#[test]
fn a_connect_wait_bound_out_of_range_is_a_usage_error_naming_the_flag() {
    let out = swarm(&[
        "--connect",
        "127.0.0.1:9",
        "--clients",
        "1",
        "--max-connect-wait",
        "0ms",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--max-connect-wait: must be between 1ms and 24h"),
        "{stderr}"
    );
    // And a value in range is taken: the run goes ahead (and fails, for
    // nobody listens there), rather than stopping at the flag.
    let out = swarm(&[
        "--connect",
        &free_port().to_string(),
        "--clients",
        "1",
        "--duration",
        "200ms",
        "--max-connect-wait",
        "50ms",
    ]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn unpaced_connects_are_spread_over_turns_and_no_connection_is_left_unused() {
    // --connect-rate 0 once started every connect in one turn: at 19,000
    // that turn took seconds, in which no connection it had opened was
    // used, and a server evicted them. The first status line comes in the
    // second turn of the loop at the earliest: by then one turn started
    // all 3000 connects, where a turn now starts at most 64.
    let server = Lubdub::start(any_port(), Duration::from_millis(500), 3);
    let out = swarm(&[
        "--connect",
        &server.addr.to_string(),
        "--clients",
        "3000",
        "--connect-rate",
        "0",
        "--interval",
        "500ms",
        "--duration",
        "2500ms",
        "--status-every",
        "1ms",
        "--json",
        "-",
    ]);
    let json = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .find(|l| l.contains("/3000 up "))
        .unwrap_or_else(|| panic!("no status line:\n{stderr}"));
    let number_before = |word: &str| -> u64 {
        first
            .split(word)
            .next()
            .and_then(|head| head.split(['/', ' ']).rfind(|w| !w.is_empty()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count before {word:?} in {first:?}"))
    };
    let started = number_before("/3000 up") + number_before(" connecting");
    assert!(
        started < 1000,
        "{started} connects started before the first status line: {first}"
    );
    assert_eq!(out.status.code(), Some(0), "{json}\n{stderr}");
    assert_eq!(field(&json, "connected"), 3000.0, "{json}");
    assert_eq!(field(&json, "reconnects"), 0.0, "{json}");
    // Every turn is timed; none held the loop anywhere near a second.
    let turns = json.split("\"swarm_turn_us\":").nth(1).unwrap();
    let longest = field(turns, "max");
    assert!(longest > 0.0 && longest < 1_000_000.0, "{json}");
    assert_eq!(server.stop().evicted, 0);
}
