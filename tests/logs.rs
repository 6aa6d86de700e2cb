//! Logs an operator can use, checked on the binary: every close line names
//! its peer (even after a reset, when the kernel has forgotten it); a peer
//! that sends text is told so in one `info` line; a flood of bad peers
//! writes a bounded number of lines whose counts add up; and every line of
//! `--log-format json` — server, client, swarm, `server --workers 2` — is
//! one well-formed object (checked by a parser of the test's own).

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::json::{self, Value};
use common::peers::Child;

/// The lines of `child` so far that contain `needle`.
fn lines_with<'a>(child: &'a Child, needle: &'a str) -> impl Iterator<Item = &'a str> {
    child
        .seen
        .iter()
        .map(|(_, l)| l.as_str())
        .filter(move |l| l.contains(needle))
}

/// Waits until the server has certainly read what was sent (there is no
/// handle on it; a tenth of a second is a hundred turns of an idle loop).
fn let_it_read() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn a_peer_that_resets_mid_frame_is_named_in_its_close_line() {
    let (mut server, addr) = Child::server(&[]);
    let peer = TcpStream::connect(addr).unwrap();
    let local = peer.local_addr().unwrap();
    (&peer).write_all(&[0, 0, 0]).unwrap();
    let_it_read();
    // SO_LINGER 0: close sends a reset, and the server's socket loses the
    // peer's address with it.
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    let line = server.expect_line(&format!("closed peer={local} "), Duration::from_secs(5));
    assert!(line.contains("[INFO]"), "{line}");
    assert!(line.contains("reason=closed_mid_frame"), "{line}");
    assert!(
        line.contains("the peer closed 3 bytes into a frame"),
        "{line}"
    );
    assert_eq!(server.terminate(), Some(0));
    assert!(!server.log().contains("unknown"), "{}", server.log());
}

#[test]
fn a_peer_that_sends_text_gets_one_info_line_naming_it() {
    let (mut server, addr) = Child::server(&[]);
    // What `printf 'hello\n' | nc` does: a few bytes, then its FIN.
    let hello = TcpStream::connect(addr).unwrap();
    let hello_addr = hello.local_addr().unwrap();
    (&hello).write_all(b"hello\n").unwrap();
    let_it_read();
    hello.shutdown(Shutdown::Write).unwrap();
    let line = server.expect_line(&format!("peer={hello_addr} "), Duration::from_secs(5));
    assert!(line.contains("[INFO] closed peer="), "{line}");
    assert!(
        line.ends_with(r#"the peer sent text, not a frame: "hello\n""#),
        "{line}"
    );
    // A browser or curl: a whole header of text, a protocol error.
    let http = TcpStream::connect(addr).unwrap();
    let http_addr = http.local_addr().unwrap();
    (&http)
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let line = server.expect_line(&format!("peer={http_addr} "), Duration::from_secs(5));
    assert!(line.contains("[INFO] closed peer="), "{line}");
    assert!(line.contains("reason=protocol_errors"), "{line}");
    assert!(
        line.ends_with(r#"the peer sent text, not a frame: "GET / HT""#),
        "{line}"
    );
    assert_eq!(server.terminate(), Some(0));
    for peer in [hello_addr, http_addr] {
        let named = lines_with(&server, &format!("peer={peer} ")).count();
        assert_eq!(named, 1, "{peer}:\n{}", server.log());
    }
}

#[test]
fn a_flood_of_protocol_errors_writes_a_bounded_number_of_lines_that_add_up() {
    const PEERS: u64 = 1000;
    let (mut server, addr) = Child::server(&[]);
    let began = Instant::now();
    for _ in 0..PEERS {
        // `len` 3 is below the header: a protocol error at once.
        let mut peer = TcpStream::connect(addr).unwrap();
        peer.write_all(&[0, 0, 0, 0, 3, 0, 0, 0]).unwrap();
    }
    let flooded = began.elapsed();
    // The window's end says what it held back, without waiting for a stop.
    server.expect_line(
        "suppressed kind=protocol_errors count=",
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.terminate(), Some(0));
    let spent = began.elapsed();
    let written = lines_with(&server, "reason=protocol_errors").count() as u64;
    let held: u64 = lines_with(&server, "suppressed kind=protocol_errors count=")
        .map(|l| {
            let count = l.split(" count=").nth(1).and_then(|r| r.split(':').next());
            count
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{l}"))
        })
        .sum();
    let stopped = lines_with(&server, "stopped:").next().unwrap().to_string();
    assert_eq!(common::log_value(&stopped, "protocol_errors"), PEERS);
    assert_eq!(
        written + held,
        PEERS,
        "{written} written + {held} held back, flood took {flooded:?}"
    );
    // Five a second, a window opening at its first close.
    let windows = spent.as_secs() + 1;
    assert!(
        (5..=5 * windows).contains(&written),
        "{written} lines in {spent:?}"
    );
    assert!(
        server.seen.len() < 40 + 2 * windows as usize,
        "{} lines:\n{}",
        server.seen.len(),
        server.log()
    );
}

/// `lubdub server --log-format json --listen 127.0.0.1:0 ARGS`, and the
/// address its `listening` line gives.
fn json_server(args: &[&str]) -> (Child, SocketAddr) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lubdub"));
    command
        .args(["server", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args);
    let mut child = Child::from_command(command);
    let (_, line) = child
        .wait_for_line("\"event\":\"listening\"", Duration::from_secs(10))
        .expect("no listening line");
    let v = json::log_line(&line);
    let msg = v.get("msg").and_then(Value::as_str).unwrap();
    let addr = msg.strip_prefix("on ").unwrap().parse().unwrap();
    (child, addr)
}

/// Every line of `child` parsed, each checked to have the shape of a log
/// line.
fn all_lines(child: &Child) -> Vec<Value> {
    assert!(!child.seen.is_empty(), "no lines at all");
    child.seen.iter().map(|(_, l)| json::log_line(l)).collect()
}

fn event<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|v| v.get("event").and_then(Value::as_str) == Some(name))
        .collect()
}

fn field(v: &Value, key: &str) -> Option<u64> {
    v.get("fields")?.get(key)?.as_u64()
}

#[test]
fn the_json_parser_of_these_tests_takes_json_and_refuses_what_is_not() {
    let v = json::parse(r#" {"a":[1,-2.5e3,true,null],"b":"x\"\\\n\u00e9\ud83d\ude00"} "#).unwrap();
    assert_eq!(v.get("b").and_then(Value::as_str), Some("x\"\\\né😀"));
    for bad in [
        "{\"a\":1,}",
        "{\"a\" 1}",
        "\"tab\there\"",
        "\"\\q\"",
        "01",
        "1.",
        "{} x",
        "\"\\ud800\"",
        "[1 2]",
    ] {
        assert!(json::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn server_json_lines_each_parse_and_carry_peer_conn_and_fields() {
    let (mut server, addr) = json_server(&["--log-level", "debug", "--stats-every", "200ms"]);
    // Quotes, a backslash and a tab: text the line must escape twice over
    // (once as the peer's text, once as JSON).
    let text = TcpStream::connect(addr).unwrap();
    let text_addr = text.local_addr().unwrap();
    (&text).write_all(b"\"a\\b\" \tx").unwrap();
    // And bytes that are no text at all, nor UTF-8.
    let binary = TcpStream::connect(addr).unwrap();
    (&binary)
        .write_all(&[0xff, 0xfe, 0x80, 0x01, 0xc3, 0x28, 0x00, 0x7f])
        .unwrap();
    server.expect_line("\"event\":\"stats\"", Duration::from_secs(5));
    let_it_read();
    assert_eq!(server.terminate(), Some(0));
    let lines = all_lines(&server);

    let text_line = event(&lines, "closed")
        .into_iter()
        .find(|v| v.get("peer").and_then(Value::as_str) == Some(&text_addr.to_string()))
        .unwrap_or_else(|| panic!("no close line for {text_addr}:\n{}", server.log()));
    assert!(text_line.get("conn").and_then(Value::as_str).is_some());
    assert_eq!(
        text_line
            .get("fields")
            .unwrap()
            .get("reason")
            .and_then(Value::as_str),
        Some("protocol_errors")
    );
    let msg = text_line.get("msg").and_then(Value::as_str).unwrap();
    assert!(
        msg.ends_with(r#"the peer sent text, not a frame: "\"a\\b\" \tx""#),
        "{msg}"
    );
    assert!(server
        .log()
        .contains("header bytes ff fe 80 01 c3 28 00 7f"));

    let stopped = event(&lines, "stopped");
    assert_eq!(stopped.len(), 1, "{}", server.log());
    assert_eq!(field(stopped[0], "protocol_errors"), Some(2));
    assert_eq!(field(stopped[0], "accepted"), Some(2));
    assert!(!event(&lines, "stats").is_empty());
    assert!(!event(&lines, "accepted").is_empty(), "debug lines too");
    for v in &lines {
        assert_eq!(
            v.keys()[..6],
            ["time", "level", "event", "peer", "conn", "fields"],
            "{v:?}"
        );
    }
}

#[test]
fn client_json_lines_each_parse_and_name_the_server() {
    let server = common::peers::Lubdub::any_port();
    let addr = server.addr.to_string();
    let mut client = Child::spawn(&[
        "client",
        "--connect",
        &addr,
        "--interval",
        "100ms",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "100ms",
        "--log-format",
        "json",
    ]);
    client.expect_line("\"event\":\"connected\"", Duration::from_secs(5));
    server.stop();
    client.expect_line("\"event\":\"reconnecting\"", Duration::from_secs(5));
    assert_eq!(client.terminate(), Some(0));
    let lines = all_lines(&client);
    for name in ["connected", "reconnecting"] {
        let v = event(&lines, name)[0];
        assert_eq!(
            v.get("peer").and_then(Value::as_str),
            Some(addr.as_str()),
            "{v:?}"
        );
    }
}

#[test]
fn swarm_json_lines_each_parse_status_lines_included() {
    let server = common::peers::Lubdub::any_port();
    let addr = server.addr.to_string();
    let mut swarm = Child::spawn(&[
        "swarm",
        "--connect",
        &addr,
        "--clients",
        "3",
        "--interval",
        "100ms",
        "--duration",
        "1s",
        "--status-every",
        "250ms",
        "--log-level",
        "debug",
        "--log-format",
        "json",
    ]);
    let status = swarm.wait_exit(Duration::from_secs(30));
    // The rest of its lines, up to the pipe's end.
    while swarm
        .wait_for_line("\0", Duration::from_millis(500))
        .is_some()
    {}
    assert!(status.success(), "{status}:\n{}", swarm.log());
    let lines = all_lines(&swarm);
    let statuses = event(&lines, "status");
    assert!(!statuses.is_empty(), "{}", swarm.log());
    assert!(statuses.iter().any(|v| field(v, "connected") == Some(3)));
    let connected: Vec<_> = event(&lines, "client")
        .into_iter()
        .filter(|v| {
            v.get("msg")
                .and_then(Value::as_str)
                .is_some_and(|m| m.ends_with(": connected"))
        })
        .collect();
    assert_eq!(connected.len(), 3, "{}", swarm.log());
    for v in connected {
        assert_eq!(v.get("peer").and_then(Value::as_str), Some(addr.as_str()));
    }
    server.stop();
}

#[test]
fn workers_json_lines_each_parse_and_the_supervisor_still_sums_them() {
    let (mut server, addr) = json_server(&["--workers", "2", "--stats-every", "200ms"]);
    let mut peer = TcpStream::connect(addr).unwrap();
    common::ping(&mut peer);
    // The supervisor's own stats line (no `worker`) counts the accept,
    // which it could only have read from a worker's JSON line.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, line) = server
            .wait_for_line("\"event\":\"stats\"", deadline - Instant::now())
            .unwrap_or_else(|| panic!("no summed stats line:\n{}", server.log()));
        let v = json::log_line(&line);
        if v.get("worker").is_none() && field(&v, "accepted") == Some(1) {
            break;
        }
    }
    drop(peer);
    assert_eq!(server.terminate(), Some(0));
    let lines = all_lines(&server);
    let workers: std::collections::BTreeSet<u64> = lines
        .iter()
        .filter_map(|v| v.get("worker").and_then(Value::as_u64))
        .collect();
    assert_eq!(workers, [0, 1].into(), "{}", server.log());
    let summed = event(&lines, "stopped")
        .into_iter()
        .find(|v| v.get("worker").is_none())
        .unwrap_or_else(|| panic!("no supervisor stopped line:\n{}", server.log()));
    assert_eq!(field(summed, "accepted"), Some(1), "{}", server.log());
}
