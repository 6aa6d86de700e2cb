//! The client over loopback: against a heartbeat server, through its death
//! and restart, against a silent server, and against the original Qt
//! server's unframed welcome text.

mod common;

use std::time::{Duration, Instant};

use common::peers::{free_port, restartable_port, Answerer, Child, Lubdub};
use lubdub::client::{Client, ClientConfig, Handler, Outbox, Reason};

fn config(addr: std::net::SocketAddr, interval_ms: u64, misses: u32) -> ClientConfig {
    ClientConfig {
        connect: addr.into(),
        interval: Duration::from_millis(interval_ms),
        misses,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..ClientConfig::default()
    }
}

/// Drives `client` for `how_long` of wall time.
fn drive<H: Handler>(client: &mut Client<H>, how_long: Duration) {
    let end = Instant::now() + how_long;
    while Instant::now() < end {
        client
            .poll_once(Some(end.saturating_duration_since(Instant::now())))
            .unwrap();
    }
}

#[test]
fn stays_connected_over_many_intervals_with_no_reconnects() {
    // 50 ms heartbeats; both sides tolerate 500 ms of silence, so a loaded
    // machine's scheduling stalls do not pass for a dead peer.
    let server = Lubdub::start(free_port_zero(), Duration::from_millis(50), 10);
    let mut client = Client::new(config(server.addr, 50, 10), ()).unwrap();
    // 30 intervals.
    drive(&mut client, Duration::from_millis(1_500));
    let stats = client.stats();
    assert!(client.is_connected());
    assert_eq!(stats.connects, 1, "{stats:?}");
    assert_eq!(stats.disconnects, 0, "{stats:?}");
    assert_eq!(stats.missed_replies, 0, "{stats:?}");
    // One heartbeat on connect and one per interval: 31 in 1.5 s, fewer
    // only if this machine stalled the loop for whole intervals.
    assert!(
        stats.heartbeats_sent >= 20 && stats.heartbeats_sent <= 32,
        "{stats:?}"
    );
    assert!(stats.replies + 1 >= stats.heartbeats_sent, "{stats:?}");
    client.close();
    let server = server.stop();
    assert_eq!((server.accepted, server.evicted), (1, 0), "{server:?}");
    assert_eq!(server.heartbeats, stats.heartbeats_sent, "{server:?}");
}

fn free_port_zero() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

#[derive(Default)]
struct Reasons(Vec<(Instant, Reason)>);

impl Handler for Reasons {
    fn disconnected(&mut self, reason: &Reason) {
        self.0.push((Instant::now(), *reason));
    }
}

#[test]
fn a_silent_server_is_given_up_after_interval_times_misses_not_before() {
    let server = Answerer::silent(free_port());
    // 50 ms × 4 on a 15 ms tick: the interval is 3 1/3 ticks; rounding it
    // before multiplying would give up after 240 ms instead of 200 ms.
    let config = ClientConfig {
        tick: Duration::from_millis(15),
        ..config(server.addr, 50, 4)
    };
    let mut client = Client::new(config, Reasons::default()).unwrap();
    let start = Instant::now();
    while client.stats().connects == 0 && start.elapsed() < Duration::from_secs(5) {
        client.poll_once(Some(Duration::from_millis(10))).unwrap();
    }
    let connected_at = Instant::now();
    while client.handler().0.is_empty() && connected_at.elapsed() < Duration::from_secs(5) {
        client.poll_once(Some(Duration::from_millis(50))).unwrap();
    }
    let (at, reason) = client.handler().0[0];
    assert!(matches!(reason, Reason::Silent { .. }), "{reason:?}");
    let after = at.duration_since(connected_at);
    // 50 ms × 4 = 200 ms: never earlier; later only by a tick and
    // scheduling noise.
    assert!(
        after >= Duration::from_millis(195),
        "gave up after {after:?}"
    );
    assert!(
        after < Duration::from_millis(200 + 800),
        "gave up after {after:?}"
    );
    assert!(client.stats().missed_replies >= 2, "{:?}", client.stats());
}

#[test]
fn the_binary_reconnects_when_its_server_dies_and_is_back_after_a_restart() {
    let addr = restartable_port();
    let mut server = spawn_server(addr);
    let mut client = Child::spawn(&[
        "client",
        "--connect",
        &addr.to_string(),
        "--interval",
        "100ms",
        "--misses",
        "3",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "400ms",
    ]);
    assert!(
        client
            .wait_for("connected to", Duration::from_secs(10))
            .is_some(),
        "{}",
        client.log()
    );
    std::thread::sleep(Duration::from_millis(300));

    // SIGKILL: the server gets no chance to say goodbye; its kernel does.
    let killed = Instant::now();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let noticed = client
        .wait_for("reconnecting", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no reconnecting line: {}", client.log()));
    // interval × misses = 300 ms, plus a generous margin for a loaded machine.
    assert!(noticed.duration_since(killed) < Duration::from_millis(300 + 1_000));

    // Down for a while: attempts keep failing and the delays grow to the cap.
    std::thread::sleep(Duration::from_millis(1_500));
    let mut server = spawn_server(addr);
    let restarted = Instant::now();
    let back = client
        .wait_for("connected to", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("not reconnected: {}", client.log()));
    // backoff-max = 400 ms, plus margin.
    assert!(
        back.duration_since(restarted) < Duration::from_millis(400 + 1_000),
        "{:?}",
        back.duration_since(restarted)
    );
    assert_eq!(server.terminate(), Some(0), "{}", server.log());
    assert_eq!(client.terminate(), Some(0), "{}", client.log());
    let log = client.log();
    assert!(log.contains("connect failed"), "{log}");
    // Each reconnecting line names the delay and the reason.
    assert!(
        log.lines()
            .filter(|l| l.contains("reconnecting"))
            .all(|l| l.contains(" in ") && l.contains(": ")),
        "{log}"
    );
}

/// `lubdub server` on `addr`, once its "listening on" line is out (retried
/// while the port is still held by the previous run's closing sockets).
fn spawn_server(addr: std::net::SocketAddr) -> Child {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listen = addr.to_string();
        let mut server = Child::spawn(&[
            "server",
            "--listen",
            &listen,
            "--interval",
            "100ms",
            "--misses",
            "3",
        ]);
        if server
            .wait_for("listening on", Duration::from_secs(5))
            .is_some()
        {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "server never listened: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Default)]
struct Counting {
    connected: u32,
    disconnected: u32,
}

impl Handler for Counting {
    fn connected(&mut self, _out: &mut Outbox<'_>) {
        self.connected += 1;
    }
    fn disconnected(&mut self, _reason: &Reason) {
        self.disconnected += 1;
    }
}

#[test]
fn lenient_keeps_a_connection_whose_server_sends_unframed_text_first() {
    let server = Answerer::with_welcome(free_port());
    let mut client = Client::new(
        ClientConfig {
            lenient: true,
            ..config(server.addr, 50, 10)
        },
        Counting::default(),
    )
    .unwrap();
    drive(&mut client, Duration::from_millis(1_000));
    let stats = client.stats();
    assert_eq!(client.handler().connected, 1);
    assert_eq!(client.handler().disconnected, 0, "{stats:?}");
    assert_eq!(stats.protocol_errors, 0, "{stats:?}");
    assert!(stats.replies >= 10, "{stats:?}");
    assert!(client.is_connected());
}

#[test]
fn without_lenient_the_same_server_is_a_protocol_error() {
    let server = Answerer::with_welcome(free_port());
    let mut client = Client::new(config(server.addr, 50, 3), Counting::default()).unwrap();
    drive(&mut client, Duration::from_millis(500));
    let stats = client.stats();
    assert!(stats.protocol_errors >= 1, "{stats:?}");
    assert!(client.handler().disconnected >= 1);
}

/// Records data frames and echoes each one back, upper-cased.
#[derive(Default)]
struct Shouter(Vec<Vec<u8>>);

impl Handler for Shouter {
    fn data(&mut self, payload: &[u8], out: &mut Outbox<'_>) {
        self.0.push(payload.to_vec());
        out.send_data(&payload.to_ascii_uppercase()).unwrap();
    }
}

#[test]
fn data_frames_flow_both_ways_through_the_library_api() {
    use lubdub::protocol::{encode_frame, Decoder, FrameType, Kind, DEFAULT_MAX_FRAME};
    use std::io::{Read, Write};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        encode_frame(FrameType::Data, b"hello", &mut out).unwrap();
        peer.write_all(&out).unwrap();
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < 2 {
            let n = peer.read(&mut buf).unwrap();
            assert!(n > 0, "client closed early");
            decoder
                .feed(&buf[..n], DEFAULT_MAX_FRAME, |f| {
                    if f.kind == Kind::Known(FrameType::Data) {
                        got.push(f.payload.to_vec());
                    }
                })
                .unwrap();
        }
        got
    });
    let mut client = Client::new(config(addr, 1_000, 3), Shouter::default()).unwrap();
    let start = Instant::now();
    while client.handler().0.is_empty() && start.elapsed() < Duration::from_secs(5) {
        client.poll_once(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(client.handler().0, vec![b"hello".to_vec()]);
    client.send_data(b"from the app").unwrap();
    drive(&mut client, Duration::from_millis(50));
    let got = server.join().unwrap();
    assert_eq!(got, vec![b"HELLO".to_vec(), b"from the app".to_vec()]);
    client.close();
    assert_eq!(
        client.send_data(b"x"),
        Err(lubdub::client::SendError::Closed)
    );
}

#[test]
fn a_name_is_resolved_for_every_connect_and_each_address_tried() {
    // `dual.lubdub.test` is ::1 and 127.0.0.1, as `localhost` is on a
    // standard Debian; the server listens on IPv4 only.
    let server = common::peers::Lubdub::any_port();
    let target = format!("dual.lubdub.test:{}", server.addr.port());
    let hosts = "::1 dual.lubdub.test\n127.0.0.1 dual.lubdub.test\n";
    let Some(mut client) = common::with_hosts(
        "a_name_is_resolved_for_every_connect_and_each_address_tried",
        hosts,
        &["client", "--connect", &target, "--interval", "100ms"],
    ) else {
        return;
    };
    let line = client.expect_line("connected to", Duration::from_secs(5));
    assert!(
        line.contains(&format!(" peer=127.0.0.1:{}", server.addr.port())),
        "{line}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(client.terminate(), Some(0));
    assert!(
        !client.log().contains("reconnecting"),
        "the IPv6 address cost a failed attempt:\n{}",
        client.log()
    );
}

#[test]
fn a_name_that_does_not_resolve_is_connection_trouble_not_the_end() {
    let mut client = common::peers::Child::spawn(&[
        "client",
        "--connect",
        "no-such-host.invalid:8898",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "100ms",
    ]);
    let line = client.expect_line("reconnecting", Duration::from_secs(10));
    assert!(line.contains("the name did not resolve"), "{line}");
    client.expect_line("reconnecting", Duration::from_secs(10));
    assert_eq!(client.terminate(), Some(0), "{}", client.log());
}

#[test]
fn a_dns_change_is_followed_at_the_next_reconnect() {
    use common::peers::Lubdub;
    let first = Lubdub::start("127.0.0.2:0".parse().unwrap(), Duration::from_secs(5), 6);
    let port = first.addr.port();
    let second_addr: std::net::SocketAddr = format!("127.0.0.3:{port}").parse().unwrap();
    let second = Lubdub::start(second_addr, Duration::from_secs(5), 6);
    let test = "a_dns_change_is_followed_at_the_next_reconnect";
    let target = format!("moving.lubdub.test:{port}");
    let Some(mut client) = common::with_hosts(
        test,
        "127.0.0.2 moving.lubdub.test\n",
        &[
            "client",
            "--connect",
            &target,
            "--interval",
            "100ms",
            "--backoff-min",
            "50ms",
            "--backoff-max",
            "100ms",
        ],
    ) else {
        return;
    };
    let line = client.expect_line("connected to", Duration::from_secs(5));
    assert!(line.contains(" peer=127.0.0.2:"), "{line}");
    // The name moves (the file is rewritten in place, so the bind mount
    // shows it), then the old server goes away.
    let hosts = std::env::temp_dir().join(format!("lubdub-hosts-{}-{test}", std::process::id()));
    std::fs::write(&hosts, "127.0.0.3 moving.lubdub.test\n").unwrap();
    first.stop();
    let line = client.expect_line("connected to", Duration::from_secs(5));
    assert!(
        line.contains(" peer=127.0.0.3:"),
        "{line}\n{}",
        client.log()
    );
    assert_eq!(client.terminate(), Some(0));
    assert!(second.stop().accepted >= 1);
}
