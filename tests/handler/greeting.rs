//! The configured greeting: unframed bytes sent on accept, before anything
//! else, as the original Qt server sends its welcome text — and lubdub's
//! own client and swarm, when lenient, heartbeat past it.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use lubdub::client::{Client, ClientConfig};
use lubdub::server::{ConnId, Context, Handler};

use crate::common::peers::WELCOME;
use crate::common::{connect, json_number, read_n, start};
use crate::support::{arrives_within, concat, data, REQUEST, RESPONSE};

fn greet(config: &mut lubdub::server::Config) {
    config.greeting = Some(WELCOME.to_vec());
}

#[test]
fn a_raw_peer_reads_the_greeting_whole_and_first_then_its_replies() {
    let server = start((), greet);
    let mut peer = connect(server.addr);
    peer.write_all(&REQUEST).unwrap();
    assert_eq!(read_n(&mut peer, WELCOME.len()), WELCOME);
    assert_eq!(read_n(&mut peer, 8), RESPONSE);
    assert_eq!(arrives_within(&mut peer, Duration::from_millis(50)), b"");
    let stats = *server.stop().stats();
    assert_eq!(stats.bytes_out, (WELCOME.len() + 8) as u64, "{stats}");
}

/// Greets from `on_connect` as well.
struct Hello;

impl Handler for Hello {
    type State = ();
    fn on_connect(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, _peer: SocketAddr) {
        ctx.send(id, b"hello").unwrap();
    }
}

#[test]
fn a_handlers_greeting_follows_the_configured_one() {
    let server = start(Hello, greet);
    let mut peer = connect(server.addr);
    peer.write_all(&REQUEST).unwrap();
    let expected = concat(&[WELCOME, &data(b"hello"), &RESPONSE]);
    assert_eq!(read_n(&mut peer, expected.len()), expected);
}

fn client_config(addr: SocketAddr, lenient: bool) -> ClientConfig {
    ClientConfig {
        connect: addr.into(),
        interval: Duration::from_millis(50),
        misses: 10,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        lenient,
        ..ClientConfig::default()
    }
}

fn drive(client: &mut Client, how_long: Duration) {
    let end = Instant::now() + how_long;
    while Instant::now() < end {
        client
            .poll_once(Some(end.saturating_duration_since(Instant::now())))
            .unwrap();
    }
}

#[test]
fn a_lenient_client_heartbeats_past_the_greeting() {
    let server = start((), |c| {
        greet(c);
        c.interval = Duration::from_millis(50);
        c.misses = 10;
    });
    let mut client = Client::new(client_config(server.addr, true), ()).unwrap();
    drive(&mut client, Duration::from_secs(1));
    let stats = client.stats();
    assert!(client.is_connected(), "{stats:?}");
    assert_eq!((stats.connects, stats.disconnects), (1, 0), "{stats:?}");
    assert_eq!(stats.protocol_errors, 0, "{stats:?}");
    assert_eq!(stats.dropped_bytes, WELCOME.len() as u64, "{stats:?}");
    // 50 ms heartbeats for a second: 21, fewer only if this machine
    // stalled the client for whole intervals.
    assert!(stats.replies >= 10, "{stats:?}");
    client.close();
    let server = *server.stop().stats();
    assert_eq!(
        (server.accepted, server.evicted, server.protocol_errors),
        (1, 0, 0)
    );
    assert_eq!(server.heartbeats, stats.heartbeats_sent, "{server}");
}

#[test]
fn a_strict_client_takes_the_greeting_for_a_protocol_error() {
    // The other side of the test above: the greeting does reach the
    // client, and only leniency lets it pass.
    let server = start((), greet);
    let mut client = Client::new(client_config(server.addr, false), ()).unwrap();
    drive(&mut client, Duration::from_millis(300));
    assert!(client.stats().protocol_errors >= 1, "{:?}", client.stats());
}

/// `lubdub swarm ARGS` against `addr`, 20 clients heartbeating every
/// 200 ms for `duration`: its exit code and JSON report.
fn swarm(addr: SocketAddr, duration: &str, lenient: bool) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lubdub"));
    command.args(["swarm", "--connect", &addr.to_string(), "--clients", "20"]);
    command.args([
        "--interval",
        "200ms",
        "--misses",
        "10",
        "--duration",
        duration,
    ]);
    command.args(["--json", "-", "--log-level", "warn"]);
    if lenient {
        command.arg("--lenient");
    }
    let out = command.output().expect("run lubdub swarm");
    let json = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(json.starts_with('{'), "no report: {json}\n{stderr}");
    (out.status.code(), format!("{json}\n{stderr}"))
}

#[test]
fn a_lenient_swarm_heartbeats_past_the_greeting() {
    let server = start((), |c| {
        greet(c);
        c.interval = Duration::from_millis(200);
        c.misses = 10;
    });
    let (code, report) = swarm(server.addr, "2s", true);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(json_number(&report, "connected"), 20, "{report}");
    assert_eq!(json_number(&report, "reconnects"), 0, "{report}");
    assert_eq!(json_number(&report, "protocol_errors"), 0, "{report}");
    assert_eq!(json_number(&report, "missing_replies"), 0, "{report}");
    assert_eq!(
        json_number(&report, "dropped_bytes"),
        20 * WELCOME.len() as u64,
        "{report}"
    );
    let replies = json_number(&report, "replies");
    assert_eq!(replies, json_number(&report, "heartbeats_sent"), "{report}");
    // About ten heartbeats per client in two seconds.
    assert!(replies >= 20 * 5, "{report}");
    let stats = *server.stop().stats();
    assert_eq!(
        (stats.accepted, stats.evicted, stats.protocol_errors),
        (20, 0, 0),
        "{stats}"
    );
    assert!(stats.heartbeats >= replies, "{stats}");
}

#[test]
fn a_strict_swarm_takes_the_greeting_for_a_protocol_error() {
    let server = start((), greet);
    let (code, report) = swarm(server.addr, "1s", false);
    assert_eq!(code, Some(3), "{report}");
    assert!(json_number(&report, "protocol_errors") >= 20, "{report}");
}
