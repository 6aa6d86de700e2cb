//! A client's life as an embedding program sees it: shut down, closed,
//! started again; connects that fail told apart from connections lost;
//! reasons that read as durations; a server's heartbeat requests answered.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::peers::{free_port, Answerer, Lubdub};
use common::{REQUEST, RESPONSE};
use lubdub::client::{Client, ClientConfig, Handler, Outbox, Reason};
use lubdub::Step;

fn config(addr: SocketAddr) -> ClientConfig {
    ClientConfig {
        connect: addr.into(),
        interval: Duration::from_millis(20),
        misses: 25,
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(40),
        ..ClientConfig::default()
    }
}

/// Everything the handler was told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    Connected,
    Disconnected(Reason),
    ConnectFailed(Reason, Duration),
}

#[derive(Default)]
struct Log(Vec<Heard>);

impl Handler for Log {
    fn connected(&mut self, _out: &mut Outbox<'_>) {
        self.0.push(Heard::Connected);
    }
    fn disconnected(&mut self, reason: &Reason) {
        self.0.push(Heard::Disconnected(*reason));
    }
    fn connect_failed(&mut self, reason: &Reason, retry_in: Duration) {
        self.0.push(Heard::ConnectFailed(*reason, retry_in));
    }
}

impl Log {
    fn count(&self, f: impl Fn(&Heard) -> bool) -> usize {
        self.0.iter().filter(|h| f(h)).count()
    }
}

/// Polls until `done` holds; panics after 5 s.
fn poll_until(client: &mut Client<Log>, done: impl Fn(&Client<Log>) -> bool) {
    let start = Instant::now();
    while !done(client) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never happened: {:?} {:?}",
            client.handler().0,
            client.stats()
        );
        let step = client.poll_once(Some(Duration::from_millis(10))).unwrap();
        assert_eq!(step, Step::Running);
    }
}

/// `poll_once(timeout)` on a stopped client: `Stopped`, at once.
fn stopped_at_once(client: &mut Client<Log>, timeout: Option<Duration>) {
    let asked = Instant::now();
    assert_eq!(client.poll_once(timeout).unwrap(), Step::Stopped);
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(10), "{timeout:?}: {took:?}");
}

#[test]
fn the_shutdown_handle_stops_the_client_within_a_turn_and_nothing_is_sent_after() {
    // A server of the test's own, to see every byte the client sends.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = Client::new(config(listener.local_addr().unwrap()), Log::default()).unwrap();
    let stop = client.shutdown_handle();
    poll_until(&mut client, |c| c.stats().heartbeats_sent >= 3);
    let (mut peer, _) = listener.accept().unwrap();

    // From another thread, while the client waits in its poll.
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stop.shutdown();
    });
    let mut polls = 0;
    let asked = Instant::now();
    while client.poll_once(Some(Duration::from_secs(2))).unwrap() == Step::Running {
        polls += 1;
        assert!(polls < 100, "still running after {polls} polls");
    }
    let stopped = asked.elapsed();
    thread.join().unwrap();
    // 20 ms heartbeats wake it a few times before the 50 ms are up; the
    // shutdown itself takes at most one more turn.
    assert!(polls <= 10, "{polls} polls");
    assert!(stopped < Duration::from_millis(50 + 500), "{stopped:?}");
    assert_eq!(
        client.handler().0.last(),
        Some(&Heard::Disconnected(Reason::Requested))
    );
    assert_eq!(client.state(), lubdub::client::machine::State::Stopped);

    // Every later call returns at once, and nothing more is sent: the
    // server reads the heartbeats sent before, then the end of the stream.
    let sent = client.stats().heartbeats_sent;
    stopped_at_once(&mut client, None);
    for _ in 0..20 {
        stopped_at_once(&mut client, Some(Duration::from_millis(100)));
    }
    assert_eq!(client.stats().heartbeats_sent, sent);
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got.len() as u64, sent * 8, "bytes after the last heartbeat");
    // A shutdown is for good.
    assert_eq!(client.start(), Step::Stopped);
    stopped_at_once(&mut client, None);
}

#[test]
fn close_reports_the_connection_stops_at_once_and_start_connects_again() {
    let server = Lubdub::any_port();
    let mut client = Client::new(config(server.addr), Log::default()).unwrap();
    poll_until(&mut client, |c| c.stats().replies >= 2);

    client.close();
    assert_eq!(
        client.handler().0,
        [Heard::Connected, Heard::Disconnected(Reason::Requested)]
    );
    assert_eq!(Reason::Requested.to_string(), "closed on purpose");
    assert!(!client.is_connected());
    // A closed client neither blocks nor wakes: every poll is Stopped at
    // once, whatever the timeout.
    stopped_at_once(&mut client, None);
    stopped_at_once(&mut client, Some(Duration::from_secs(1)));
    client.close(); // again: nothing more to report
    assert_eq!(client.handler().0.len(), 2);
    let sent = client.stats().heartbeats_sent;

    // Started again, it connects at once (a fresh backoff, no delay).
    let restarted = Instant::now();
    assert_eq!(client.start(), Step::Running);
    poll_until(&mut client, |c| c.stats().replies >= 4);
    assert!(restarted.elapsed() < Duration::from_secs(2));
    assert_eq!(client.stats().connects, 2);
    assert!(client.stats().heartbeats_sent > sent);
    assert_eq!(client.handler().0.len(), 3);
    assert_eq!(client.handler().0[2], Heard::Connected);
    // No stall was counted for the time it stood closed.
    assert_eq!(client.stats().pauses, 0);
    client.close();
    let server = server.stop();
    assert_eq!(server.accepted, 2, "{server:?}");
}

#[test]
fn a_connect_to_a_closed_port_is_a_failed_connect_not_a_disconnect() {
    let mut client = Client::new(config(free_port()), Log::default()).unwrap();
    poll_until(&mut client, |c| c.stats().connect_failures >= 3);
    let heard = &client.handler().0;
    assert_eq!(client.handler().count(|h| matches!(h, Heard::Connected)), 0);
    assert_eq!(
        client
            .handler()
            .count(|h| matches!(h, Heard::Disconnected(_))),
        0,
        "{heard:?}"
    );
    for h in heard {
        let Heard::ConnectFailed(reason, retry_in) = h else {
            panic!("{h:?}");
        };
        assert_eq!(
            *reason,
            Reason::ConnectFailed(std::io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(reason.to_string(), "connect failed: connection refused");
        // Within the backoff window, 20 ms … 40 ms.
        assert!(
            *retry_in >= Duration::from_millis(20) && *retry_in <= Duration::from_millis(40),
            "{retry_in:?}"
        );
    }
    assert_eq!(client.stats().disconnects, 0);
    // Closing a client that never connected reports nothing.
    client.close();
    assert_eq!(
        client
            .handler()
            .count(|h| matches!(h, Heard::Disconnected(_))),
        0
    );
}

#[test]
fn a_silent_server_is_reported_as_a_duration_not_ticks() {
    let server = Answerer::silent(free_port());
    // 50 ms × 4 on a 15 ms tick: the limit is 14 ticks, 210 ms.
    let config = ClientConfig {
        tick: Duration::from_millis(15),
        interval: Duration::from_millis(50),
        misses: 4,
        ..config(server.addr)
    };
    let mut client = Client::new(config, Log::default()).unwrap();
    poll_until(&mut client, |c| c.stats().disconnects == 1);
    let Some(Heard::Disconnected(reason)) = client.handler().0.last().cloned() else {
        panic!("{:?}", client.handler().0);
    };
    let Reason::Silent { idle } = reason else {
        panic!("{reason:?}");
    };
    assert!(idle >= Duration::from_millis(210), "{idle:?}");
    assert_eq!(idle.as_nanos() % 15_000_000, 0, "whole ticks: {idle:?}");
    let text = reason.to_string();
    let shown = text.strip_prefix("server silent for ").expect(&text);
    assert_eq!(lubdub::duration::parse(shown), Ok(idle), "{text}");
}

#[test]
fn a_server_that_only_sends_heartbeat_requests_gets_a_reply_to_each() {
    // A server that probes (00 00 00 00 08 00 00 00) and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let probes = 10;
    let (done, hold) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..probes {
            peer.write_all(&REQUEST).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        // Read until every probe is answered: the client's own heartbeat
        // requests come in between.
        let (mut responses, mut requests) = (0, 0);
        let mut frame = [0u8; 8];
        while responses < probes {
            peer.read_exact(&mut frame).unwrap();
            match frame {
                RESPONSE => responses += 1,
                REQUEST => requests += 1,
                other => panic!("{other:?}"),
            }
        }
        // The connection stays open until the test has looked.
        let _ = hold.recv();
        (responses, requests)
    });
    let mut client = Client::new(config(addr), Log::default()).unwrap();
    poll_until(&mut client, |c| c.stats().requests_answered == probes);
    // Left to run a little: no more replies than probes.
    let end = Instant::now() + Duration::from_millis(100);
    while Instant::now() < end {
        client.poll_once(Some(Duration::from_millis(10))).unwrap();
    }
    let stats = client.stats();
    done.send(()).unwrap();
    let (responses, requests) = server.join().unwrap();
    assert_eq!(responses, probes);
    assert!(requests >= 1, "the client's own heartbeats go out too");
    assert_eq!(stats.requests_answered, probes, "{stats:?}");
    // Its own heartbeats went unanswered, but the probes proved the
    // server alive: still one connection, never given up.
    assert_eq!(
        (stats.replies, stats.connects, stats.disconnects),
        (0, 1, 0)
    );
}
