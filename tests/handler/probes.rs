//! Probes: with `Config::probe`, a peer silent for an interval is sent a
//! heartbeat request, again each further interval; a peer that only
//! answers is kept, one that never answers is evicted on the usual
//! deadline, and one that heartbeats on its own is left alone.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lubdub::server::Config;

use crate::common::{connect, start};
use crate::support::{pending_bytes, read_to_end, End, REQUEST, RESPONSE};

const INTERVAL: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_millis(300); // 100 ms × 3
/// A tick, plus scheduling noise on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

fn probing(config: &mut Config) {
    config.interval = INTERVAL;
    config.misses = 3;
    config.probe = true;
}

/// What a peer that never speaks first saw while it answered every
/// heartbeat request at once.
struct Answered {
    /// When each request arrived, and when its answer was written.
    requests: Vec<Instant>,
    answers: Vec<Instant>,
    /// When the server closed the connection, if it did.
    closed: Option<Instant>,
}

/// Answers every heartbeat request from the server for `how_long` (or
/// until it closes); sends nothing of its own.
fn answer_only(peer: &mut TcpStream, how_long: Duration) -> Answered {
    let until = Instant::now() + how_long;
    let mut seen = Answered {
        requests: Vec::new(),
        answers: Vec::new(),
        closed: None,
    };
    peer.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut frame = [0u8; 8];
    let mut have = 0;
    while Instant::now() < until {
        match peer.read(&mut frame[have..]) {
            Ok(0) => {
                seen.closed = Some(Instant::now());
                break;
            }
            Ok(n) => have += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                seen.closed = Some(Instant::now());
                break;
            }
        }
        if have == 8 {
            assert_eq!(frame, REQUEST, "the server sent something else");
            seen.requests.push(Instant::now());
            peer.write_all(&RESPONSE).unwrap();
            seen.answers.push(Instant::now());
            have = 0;
        }
    }
    seen
}

#[test]
fn a_peer_that_only_answers_probes_is_kept_for_many_intervals() {
    let server = start((), probing);
    let connecting = Instant::now();
    let mut peer = connect(server.addr);
    let seen = answer_only(&mut peer, Duration::from_millis(1200));
    assert_eq!(seen.closed, None, "evicted though it answered every probe");
    let live = server.stats_now();
    assert_eq!((live.active, live.evicted), (1, 0), "{live}");
    let n = seen.requests.len();
    // One probe per interval of silence at most, for four limits' worth of
    // time; at least a few, however loaded the machine.
    assert!((3..=12).contains(&n), "{n} probes in 1.2 s");
    // A probe comes no sooner than an interval after the accept, and no
    // sooner than an interval after the answer to the one before (the
    // server stamps the answer when it reads it, after it was written).
    let first = seen.requests[0] - connecting;
    assert!(first >= INTERVAL, "first probe after {first:?}");
    for (answer, next) in seen.answers.iter().zip(&seen.requests[1..]) {
        let gap = *next - *answer;
        assert!(gap >= INTERVAL, "a probe {gap:?} after the last answer");
    }
    let stats = *server.stop().stats();
    // The server may have sent one more, or read one answer fewer, in the
    // moments before it stopped.
    assert!(
        stats.probes as usize >= n && stats.probes as usize <= n + 1,
        "{stats}"
    );
    assert!(stats.heartbeat_responses as usize + 1 >= n, "{stats}");
    assert_eq!(stats.heartbeats, 0, "{stats}");
    assert_eq!(stats.evicted, 0, "{stats}");
}

#[test]
fn a_peer_that_never_answers_probes_is_evicted_on_the_usual_deadline() {
    let server = start((), probing);
    let connecting = Instant::now();
    let mut peer = connect(server.addr);
    let (got, end) = read_to_end(&mut peer, LIMIT + SLACK);
    let after = connecting.elapsed();
    assert_eq!(end, End::Eof);
    assert!(after >= LIMIT, "evicted after {after:?}, before {LIMIT:?}");
    assert!(after <= LIMIT + SLACK, "evicted after {after:?}");
    // Probes at one and two intervals of silence; the third interval ends
    // at the deadline.
    let probes = got.len() / 8;
    assert_eq!(
        got,
        REQUEST.repeat(probes),
        "the server sent something else"
    );
    assert!((1..=3).contains(&probes), "{probes} probes");
    let stats = *server.stop().stats();
    assert_eq!((stats.evicted, stats.probes), (1, probes as u64), "{stats}");
}

#[test]
fn without_probes_a_peer_that_only_answers_is_evicted() {
    let server = start((), |c| {
        probing(c);
        c.probe = false;
    });
    let connecting = Instant::now();
    let mut peer = connect(server.addr);
    let seen = answer_only(&mut peer, LIMIT + SLACK);
    let closed = seen.closed.expect("never evicted") - connecting;
    assert!(closed >= LIMIT, "evicted after {closed:?}");
    assert!(seen.requests.is_empty(), "probed with probes off");
    let stats = *server.stop().stats();
    assert_eq!((stats.evicted, stats.probes), (1, 0), "{stats}");
}

#[test]
fn a_peer_that_heartbeats_on_its_own_is_not_probed() {
    let server = start((), probing);
    let mut peer = connect(server.addr);
    let mut got = Vec::new();
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(1) {
        peer.write_all(&REQUEST).unwrap();
        sent += 1;
        std::thread::sleep(INTERVAL / 2);
        got.extend(pending_bytes(&mut peer));
    }
    std::thread::sleep(Duration::from_millis(50));
    got.extend(pending_bytes(&mut peer));
    assert_eq!(got.len() % 8, 0);
    let frames: Vec<&[u8]> = got.chunks(8).collect();
    let probes = frames.iter().filter(|f| **f == REQUEST).count();
    let replies = frames.iter().filter(|f| **f == RESPONSE).count();
    assert_eq!(probes + replies, frames.len(), "neither request nor reply");
    assert_eq!(replies, sent, "a heartbeat was not answered");
    // None at all unless this thread was kept from running for a whole
    // interval, which a loaded machine may do once.
    assert!(
        probes <= 1,
        "{probes} probes to a peer heartbeating every 50 ms"
    );
    let stats = *server.stop().stats();
    assert!(stats.probes <= 1, "{stats}");
    assert_eq!(stats.evicted, 0, "{stats}");
}
