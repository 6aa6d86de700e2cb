//! Faults made for real, each test named after its fault and asserting the
//! promise the fault attacks.
//!
//! The first four run lubdub in two network namespaces joined by a veth
//! pair (`common::netns`) and cut the path silently with nftables: packets
//! vanish on arrival, nobody gets a RST or an ICMP error, exactly as when a
//! cable is pulled somewhere along the way. They need root; without it each
//! prints why and passes. `restart_storm` runs over loopback and needs no
//! root.
//!
//! Timing assertions have strict lower bounds (what the code promises never
//! to do early) and generous upper ones (this machine is shared and noisy).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::netns::{NetPair, Side};
use common::peers::{restartable_port, Child};
use common::{log_ms, REQUEST, RESPONSE};

/// Slack for a loaded machine on top of every upper bound: scheduling, the
/// log line's trip through a pipe, `nft` runs.
const MARGIN: Duration = Duration::from_millis(1500);

/// How long the test's own peer or a client heartbeats before a cut.
const SETTLE: Duration = Duration::from_secs(1);

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The number of milliseconds in `key=NNNms` in a log line.
fn field_ms(line: &str, key: &str) -> u64 {
    let pat = format!(" {key}=");
    line.split(&pat)
        .nth(1)
        .and_then(|rest| rest.split("ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key}=NNNms in {line:?}"))
}

/// The `conn=SLOT#SERIAL` of a server log line: what names one connection
/// for the server's whole life (an address may be reused by a later one).
fn conn_id(line: &str) -> String {
    line.split(" conn=")
        .nth(1)
        .and_then(|rest| rest.split([' ', ':']).next())
        .unwrap_or_else(|| panic!("no conn= in {line:?}"))
        .to_string()
}

/// What the test's own peer saw: when it sent each request, and how many
/// replies came back (replies come in order, so reply `k` answers request
/// `k`).
struct Heartbeats {
    sent: Vec<Instant>,
    replies: usize,
}

impl Heartbeats {
    /// When the last request that was answered was sent: the server read it
    /// at this instant or later.
    fn last_answered(&self) -> Instant {
        assert!(self.replies > 0, "no reply ever came");
        self.sent[self.replies - 1]
    }
}

/// A heartbeating peer in a few lines: a blocking socket, one request every
/// `interval` until `stop`, counting whole replies.
fn heartbeat(addr: SocketAddr, interval: Duration, stop: Arc<AtomicBool>) -> Heartbeats {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("peer: connect {addr}: {e}"));
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let mut log = Heartbeats {
        sent: Vec::new(),
        replies: 0,
    };
    let (mut buf, mut unread) = ([0u8; 64], Vec::new());
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            log.sent.push(Instant::now());
            // After the cut the kernel takes the bytes and retransmits them
            // in vain; the write itself succeeds.
            s.write_all(&REQUEST).expect("peer: write");
            next += interval;
        }
        match s.read(&mut buf) {
            // The server closing (its FIN only arrives while the path is up).
            Ok(0) => break,
            Ok(n) => {
                unread.extend_from_slice(&buf[..n]);
                while unread.len() >= RESPONSE.len() {
                    assert_eq!(unread[..8], RESPONSE, "peer: unexpected bytes");
                    unread.drain(..8);
                    log.replies += 1;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("peer: read: {e}"),
        }
    }
    log
}

/// The silent half of a half-open connection is the client: the server must
/// evict it `interval × misses` after its last heartbeat — never before,
/// and at most a tick (plus scheduling) after.
#[test]
fn half_open_server() {
    let Some(net) = NetPair::create("half_open_server") else {
        return;
    };
    let (interval, misses, tick) = (Duration::from_millis(200), 3, Duration::from_millis(10));
    let limit = interval * misses;
    let (mut server, addr) = net.lubdub_server(
        Side::A,
        &[
            "--interval",
            "200ms",
            "--misses",
            "3",
            "--tick",
            "10ms",
            "--log-level",
            "debug",
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let peer = {
        let stop = stop.clone();
        net.spawn_in(Side::B, move || heartbeat(addr, interval, stop))
    };
    server.expect_line("accepted peer=", Duration::from_secs(5));
    std::thread::sleep(SETTLE);

    let cut = net.cut();
    let evicted = server.wait_for_line("evicted peer=", limit + tick + MARGIN);
    stop.store(true, Ordering::Relaxed);
    let peer = peer.join().expect("peer thread");
    let Some((evicted_at, line)) = evicted else {
        panic!(
            "no eviction within {:?} of the cut; server log:\n{}",
            limit + tick + MARGIN,
            server.log()
        );
    };
    let after_cut = evicted_at - cut.done;
    let after_last = evicted_at - peer.last_answered();
    let idle = Duration::from_millis(field_ms(&line, "idle"));
    eprintln!(
        "half_open_server: evicted {} ms after the cut, {} ms after the last answered \
         heartbeat was sent; logged idle={} ms (limit {} ms, tick {} ms); {} heartbeats, {} replies",
        ms(after_cut),
        ms(after_last),
        ms(idle),
        ms(limit),
        ms(tick),
        peer.sent.len(),
        peer.replies
    );
    assert!(peer.replies >= 3, "the peer heartbeated before the cut");
    assert!(
        line.contains(&format!("peer={}:", net.ip(Side::B))),
        "{line}"
    );
    // Never early: the server read the last answered request no earlier
    // than it was sent, and evicts `limit` after the last request it read.
    assert!(
        after_last >= limit,
        "evicted {after_last:?} after the last heartbeat: {line}"
    );
    // The server's own measure: from the read of the last frame to the
    // eviction, never less than the limit.
    assert!(idle >= limit, "{line}");
    assert!(idle <= limit + tick + MARGIN, "{line}");
    assert!(line.contains(&format!("misses={misses} ")), "{line}");
    // Not late: the last request the server read left before the cut.
    assert!(
        after_cut <= limit + tick + MARGIN,
        "evicted {after_cut:?} after the cut: {line}"
    );

    assert_eq!(server.terminate(), Some(0), "{}", server.log());
    let stopped = server
        .seen
        .iter()
        .map(|(_, l)| l)
        .find(|l| l.contains("stopped: "))
        .unwrap_or_else(|| panic!("no final stats line:\n{}", server.log()));
    assert!(stopped.contains(" evicted=1 "), "{stopped}");
    assert!(stopped.contains(" accepted=1 "), "{stopped}");
}

/// The silent half is the server: the client must give up on it after
/// `interval × misses` of silence, keep retrying through the cut (each
/// attempt timing out silently, never an instant "no route"), and be back
/// soon after the path is.
#[test]
fn half_open_client() {
    let Some(net) = NetPair::create("half_open_client") else {
        return;
    };
    let (interval, misses) = (Duration::from_millis(200), 3);
    let limit = interval * misses;
    let (connect_timeout, backoff_max) = (Duration::from_secs(1), Duration::from_secs(1));
    // The server tolerates 2 s of silence: a stall of this machine must not
    // make it close the connection before the cut.
    let (_server, addr) = net.lubdub_server(Side::A, &["--interval", "200ms", "--misses", "10"]);
    let mut client = net.lubdub(
        Side::B,
        &[
            "client",
            "--connect",
            &addr.to_string(),
            "--interval",
            "200ms",
            "--misses",
            "3",
            "--backoff-min",
            "100ms",
            "--backoff-max",
            "1s",
            "--connect-timeout",
            "1s",
        ],
    );
    client.expect_line("connected to ", Duration::from_secs(5));
    std::thread::sleep(SETTLE);
    client.drain();
    assert!(
        !client.log().contains("reconnecting"),
        "unstable before the cut:\n{}",
        client.log()
    );

    let cut = net.cut();
    let Some((gave_up_at, line)) = client.wait_for_line("reconnecting to ", limit + MARGIN) else {
        panic!(
            "the client did not give up within {:?} of the cut:\n{}",
            limit + MARGIN,
            client.log()
        );
    };
    let silent = line
        .split("server silent for ")
        .nth(1)
        .unwrap_or_else(|| panic!("not a silence: {line}"));
    let silent = lubdub::duration::parse(silent.trim())
        .unwrap_or_else(|e| panic!("{silent:?}: {e:?} in {line}"));
    eprintln!(
        "half_open_client: gave up {} ms after the cut (limit {} ms), logged silent for {} ms",
        ms(gave_up_at - cut.began),
        ms(limit),
        ms(silent),
    );
    // The client's own measure of the silence.
    assert!(silent >= limit, "{line}");
    // The last reply came at most one interval before the cut: heartbeats
    // go every interval and a reply on loopback-like paths is immediate.
    assert!(
        gave_up_at - cut.began >= limit - interval,
        "gave up {:?} after the cut: {line}",
        gave_up_at - cut.began
    );
    assert!(
        gave_up_at - cut.done <= limit + MARGIN,
        "gave up {:?} after the cut: {line}",
        gave_up_at - cut.done
    );

    // Attempts during the cut: the SYNs vanish, so each one times out.
    std::thread::sleep(connect_timeout * 2 + Duration::from_millis(500));
    client.drain();
    let during: Vec<String> = client
        .seen
        .iter()
        .map(|(_, l)| l.clone())
        .skip_while(|l| !l.contains("server silent for"))
        .skip(1)
        .collect();
    assert!(
        during.iter().any(|l| l.contains("connect timed out")),
        "no attempt timed out during the cut:\n{}",
        during.join("\n")
    );
    for l in &during {
        assert!(
            l.contains("connect timed out"),
            "during a silent cut: {l}\n{}",
            client.log()
        );
    }

    let restore = net.restore();
    // An attempt started just before the restore may have its SYN lost and
    // run into its connect timeout; then the longest backoff.
    let bound = connect_timeout + backoff_max + MARGIN;
    let Some(back_at) = client.wait_for("connected to ", bound) else {
        panic!(
            "not reconnected within {bound:?} of the restore:\n{}",
            client.log()
        );
    };
    eprintln!(
        "half_open_client: {} attempts timed out during the cut; reconnected {} ms after the \
         restore (bound {} ms)",
        during.len(),
        ms(back_at - restore.done),
        ms(bound)
    );
    assert!(back_at - restore.done <= bound);
}

/// A peer that vanishes while nobody is sending: only the kernel's
/// keepalive can notice, and it must, within `idle + interval × count`.
/// Proves the keepalive socket options reach every accepted socket.
#[test]
fn kernel_keepalive() {
    let Some(net) = NetPair::create("kernel_keepalive") else {
        return;
    };
    // Probing starts after 1 s of silence, then every 1 s, twice; the user
    // timeout defaults to idle + interval × count and ends the probing.
    let (idle, probes) = (Duration::from_secs(1), Duration::from_secs(2));
    let (mut server, addr) = net.lubdub_server(
        Side::A,
        &[
            "--interval",
            "1h",
            "--keepalive-idle",
            "1s",
            "--keepalive-interval",
            "1s",
            "--keepalive-count",
            "2",
            "--log-level",
            "debug",
        ],
    );
    // One heartbeat at connect, then an hour of silence.
    let mut client = net.lubdub(
        Side::B,
        &["client", "--connect", &addr.to_string(), "--interval", "1h"],
    );
    let accepted = server.expect_line("accepted peer=", Duration::from_secs(5));
    let conn = (conn_id(&accepted), peer_of(&accepted));
    client.expect_line("connected to ", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));

    let cut = net.cut();
    // The server last heard from the peer at most `idle` before the cut
    // (any probe sent earlier was answered), so the kernel gives up at
    // least `interval × count` after it.
    let bound = idle + probes + MARGIN;
    expect_timed_out(
        "kernel_keepalive",
        "keepalive not applied?",
        &mut server,
        &conn,
        cut,
        probes..=bound,
    );
}

/// The `peer=ADDR` of a server log line.
fn peer_of(line: &str) -> String {
    line.split(" peer=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no peer= in {line:?}"))
        .to_string()
}

/// The kernel closes connection `conn` (its id and peer) of `server` as
/// timed out, and the line names the peer though the kernel has forgotten
/// it by then; at least
/// `within.start()` after `cut` began (less 100 ms of jiffy rounding) and at
/// most `within.end()` after it was done.
fn expect_timed_out(
    test: &str,
    hint: &str,
    server: &mut Child,
    (conn, peer): &(String, String),
    cut: common::netns::Change,
    within: std::ops::RangeInclusive<Duration>,
) {
    let (least, bound) = (*within.start(), *within.end());
    let Some((closed_at, line)) = server.wait_for_line("closed peer=", bound) else {
        panic!(
            "{test}: the connection was still open {bound:?} after the cut ({hint}):\n{}",
            server.log()
        );
    };
    eprintln!(
        "{test}: closed {} ms after the cut (at least {} ms, at most {} ms): {line}",
        ms(closed_at - cut.began),
        ms(least),
        ms(bound)
    );
    assert!(
        line.contains(&format!(
            "closed peer={peer} conn={conn} reason=io_errors: io error: timed out"
        )),
        "{line}"
    );
    assert!(
        closed_at - cut.began >= least.saturating_sub(Duration::from_millis(100)),
        "{line}"
    );
    assert!(closed_at - cut.done <= bound, "{line}");
}

/// Replies queued towards a peer that no longer acknowledges them: the
/// connection must fail within `TCP_USER_TIMEOUT`, not after the kernel's
/// ~15 minutes of retransmissions.
#[test]
fn user_timeout() {
    let Some(net) = NetPair::create("user_timeout") else {
        return;
    };
    let user_timeout = Duration::from_secs(2);
    let (mut server, addr) = net.lubdub_server(
        Side::A,
        &[
            "--interval",
            "1h",
            "--keepalive-idle",
            "1h",
            "--user-timeout",
            "2s",
            "--log-level",
            "debug",
        ],
    );
    let mut client = net.lubdub(
        Side::B,
        &[
            "client",
            "--connect",
            &addr.to_string(),
            "--interval",
            "300ms",
            "--misses",
            "100",
        ],
    );
    let accepted = server.expect_line("accepted peer=", Duration::from_secs(5));
    let conn = (conn_id(&accepted), peer_of(&accepted));
    client.expect_line("connected to ", Duration::from_secs(5));
    std::thread::sleep(SETTLE);

    // The client's requests still reach the server; the replies (and the
    // server's ACKs) are lost, so the server's send queue is never
    // acknowledged.
    let cut = net.cut_inbound_of(Side::B);
    // The oldest unacknowledged reply left at the cut or later (the path
    // is sub-millisecond); the kernel gives up `user_timeout` after it.
    expect_timed_out(
        "user_timeout",
        "TCP_USER_TIMEOUT not applied?",
        &mut server,
        &conn,
        cut,
        user_timeout..=Duration::from_secs(10),
    );
}

/// Every client of a server loses its connection in the same instant when
/// the server dies. The restarted server must get all of them back within
/// the longest backoff, and the reconnects must be spread by the backoff's
/// jitter — a first retry drawn from [backoff-min, 1.6 × backoff-min] — not
/// come as one synchronized wave.
#[test]
fn restart_storm() {
    const CLIENTS: usize = 5000;
    let backoff_min = Duration::from_secs(1);
    let backoff_max = Duration::from_secs(3);
    let addr = restartable_port();
    let mut first = storm_server(addr, &["--stats-every", "250ms"]);
    let mut swarm = Child::spawn(&[
        "swarm",
        "--connect",
        &addr.to_string(),
        "--clients",
        &CLIENTS.to_string(),
        "--interval",
        "1s",
        "--backoff-min",
        "1s",
        "--backoff-max",
        "3s",
        "--connect-rate",
        "0",
        "--log-level",
        "info",
    ]);
    let all = format!("stats active={CLIENTS} ");
    if first.wait_for(&all, Duration::from_secs(20)).is_none() {
        panic!(
            "not all {CLIENTS} clients connected; server:\n{}\nswarm:\n{}",
            first.log(),
            swarm.log()
        );
    }

    first.signal(9);
    first.wait_exit(Duration::from_secs(5));
    let killed = Instant::now();
    let mut second = storm_server(addr, &["--log-level", "debug"]);
    let (restarted, listening) = second
        .seen
        .iter()
        .find(|(_, l)| l.contains("listening on "))
        .and_then(|(at, l)| Some((*at, log_ms(l)?)))
        .expect("listening line with a timestamp");
    let bound = backoff_max + MARGIN;
    let mut accepts = Vec::with_capacity(CLIENTS);
    while accepts.len() < CLIENTS {
        let left = (killed + bound).saturating_duration_since(Instant::now());
        let Some((_, line)) = second.wait_for_line("accepted peer=", left) else {
            break;
        };
        // The server's own timestamp: the reader of its stderr may lag
        // behind a burst of lines. (Modulo a day, for a run across midnight.)
        let at = log_ms(&line).expect("timestamp") as i64 - listening as i64;
        accepts.push(at.rem_euclid(86_400_000));
    }
    swarm.signal(2);
    let status = swarm.wait_exit(Duration::from_secs(10));

    let histogram = per_100ms(&accepts);
    eprintln!(
        "restart_storm: restarted {} ms after the kill; {} of {CLIENTS} back, {} ms after the \
         restart at the latest; accepts per 100 ms since the restart:",
        ms(restarted - killed),
        accepts.len(),
        accepts.iter().max().copied().unwrap_or(0)
    );
    for (bucket, count) in &histogram {
        eprintln!(
            "  {:>5} ms {count:>5} {}",
            bucket * 100,
            "#".repeat(count.div_ceil(25))
        );
    }
    assert_eq!(
        accepts.len(),
        CLIENTS,
        "not every client back within {bound:?} of the kill; swarm:\n{}",
        swarm.log()
    );
    // 3: the restart cost replies; 4: the swarm itself fell behind in the
    // storm (its own failure only). Either way it ran to its report.
    assert!(
        matches!(status.code(), Some(0) | Some(3) | Some(4)),
        "swarm exit {status:?}\n{}",
        swarm.log()
    );
    // The jitter window is 0.6 × backoff-min wide (600 ms, six buckets): a
    // wave would put most of them in one or two.
    let busiest = histogram.values().copied().max().unwrap_or(0);
    assert!(
        busiest * 10 <= CLIENTS * 4,
        "{busiest} of {CLIENTS} reconnects in one 100 ms window"
    );
    let span = accepts.iter().max().unwrap() - accepts.iter().min().unwrap();
    let window = backoff_min.as_millis() as i64 * 6 / 10;
    assert!(
        span * 2 >= window,
        "reconnects spread over only {span} ms of a {window} ms jitter window"
    );
}

/// `lubdub server` on `addr` for the storm: the swarm heartbeats every
/// second, and ten missed seconds would be needed for an eviction.
fn storm_server(addr: SocketAddr, extra: &[&str]) -> Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lubdub"));
    command
        .args(["server", "--listen", &addr.to_string()])
        .args(["--interval", "1s", "--misses", "10"])
        .args(extra);
    Child::listening(command).0
}

/// Counts per 100 ms bucket (bucket `k` is `[100k, 100k + 100)` ms).
fn per_100ms(ms: &[i64]) -> std::collections::BTreeMap<i64, usize> {
    let mut buckets = std::collections::BTreeMap::new();
    for &t in ms {
        *buckets.entry(t.div_euclid(100)).or_insert(0) += 1;
    }
    buckets
}
