//! The reactor over real loopback sockets, with short intervals (50 ms × 3).
//! Timing assertions have strict lower bounds and generous upper ones.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use lubdub::server::{CloseReason, ConnId, Context, Handler};

const LIMIT: Duration = Duration::from_millis(150); // 50 ms × 3
/// One 7 ms tick, plus scheduling noise on a loaded machine.
const MARGIN: Duration = Duration::from_millis(1500);

#[test]
fn heartbeat_reply_bytes_are_exact() {
    let server = start((), fast);
    let mut s = connect(server.addr);
    s.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).unwrap();
    assert_eq!(read_n(&mut s, 8), [1, 0, 0, 0, 8, 0, 0, 0]);
    let stats = *server.stop().stats();
    assert_eq!(stats.heartbeats, 1);
    assert_eq!(stats.bytes_in, 8);
    assert_eq!(stats.bytes_out, 8);
}

#[test]
fn two_requests_in_one_write_get_two_replies() {
    let server = start((), fast);
    let mut s = connect(server.addr);
    s.write_all(&[REQUEST, REQUEST].concat()).unwrap();
    assert_eq!(read_n(&mut s, 16), [RESPONSE, RESPONSE].concat());
    // ... and nothing more.
    s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    let mut extra = [0u8; 8];
    assert!(s.read(&mut extra).is_err(), "a third reply arrived");
}

#[test]
fn a_request_split_into_one_byte_writes_gets_one_reply() {
    let server = start((), |c| c.interval = Duration::from_secs(5));
    let mut s = connect(server.addr);
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut probe = [0u8; 8];
    for (i, byte) in REQUEST.iter().enumerate() {
        s.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        if i < 7 {
            assert!(
                s.read(&mut probe).is_err(),
                "reply before the frame was complete (after byte {i})"
            );
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_n(&mut s, 8), RESPONSE);
    s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    assert!(s.read(&mut probe).is_err(), "more than one reply");
}

#[test]
fn a_connection_that_never_sends_is_evicted_at_the_limit_not_before() {
    let server = start((), fast);
    let start_at = Instant::now();
    let mut s = connect(server.addr);
    let closed = wait_closed(&mut s, LIMIT + MARGIN).expect("never evicted");
    let since_connect = start_at.elapsed();
    assert!(
        since_connect >= LIMIT,
        "evicted after {since_connect:?}, before {LIMIT:?}"
    );
    assert!(closed <= LIMIT + MARGIN);
    let stats = *server.stop().stats();
    assert_eq!(stats.evicted, 1);
    assert_eq!(stats.active, 0);
}

#[test]
fn a_connection_that_goes_quiet_is_evicted_at_the_limit_after_its_last_frame() {
    let server = start((), fast);
    let mut s = connect(server.addr);
    for _ in 0..5 {
        ping(&mut s);
        std::thread::sleep(Duration::from_millis(30));
    }
    let last = Instant::now();
    ping(&mut s);
    let closed = wait_closed(&mut s, LIMIT + MARGIN).expect("never evicted");
    let quiet = last.elapsed();
    assert!(quiet >= LIMIT, "evicted {quiet:?} after the last frame");
    assert!(closed <= LIMIT + MARGIN);
}

#[test]
fn a_connection_that_keeps_heartbeating_is_never_evicted() {
    let server = start((), fast);
    let mut s = connect(server.addr);
    // 40 heartbeats 25 ms apart: a full second, about 7 limits.
    for _ in 0..40 {
        ping(&mut s);
        std::thread::sleep(Duration::from_millis(25));
    }
    ping(&mut s);
    let stats = *server.stop().stats();
    assert_eq!(stats.evicted, 0);
    assert_eq!(stats.heartbeats, 41);
}

#[test]
fn garbage_closes_only_that_connection() {
    let server = start((), |c| c.interval = Duration::from_secs(5));
    let mut good = connect(server.addr);
    ping(&mut good);
    let mut short = connect(server.addr);
    short.write_all(&[0, 0, 0, 0, 3, 0, 0, 0]).unwrap();
    let mut huge = connect(server.addr);
    huge.write_all(&[2, 0, 0, 0]).unwrap();
    huge.write_all(&(10_000_000i32).to_le_bytes()).unwrap();
    let mut long_heartbeat = connect(server.addr);
    long_heartbeat
        .write_all(&[0, 0, 0, 0, 16, 0, 0, 0])
        .unwrap();
    for bad in [&mut short, &mut huge, &mut long_heartbeat] {
        assert!(
            wait_closed(bad, Duration::from_secs(5)).is_some(),
            "bad connection left open"
        );
        ping(&mut good);
    }
    ping(&mut good);
    let stats = *server.stop().stats();
    assert_eq!(stats.protocol_errors, 3);
    assert_eq!(stats.heartbeats, 5);
}

#[test]
fn reserved_frames_are_skipped_and_counted() {
    let server = start((), |c| c.interval = Duration::from_secs(5));
    let mut s = connect(server.addr);
    let mut stream = Vec::new();
    stream.extend_from_slice(&7i32.to_le_bytes());
    stream.extend_from_slice(&20i32.to_le_bytes());
    stream.extend_from_slice(&[0xAB; 12]);
    stream.extend_from_slice(&REQUEST);
    s.write_all(&stream).unwrap();
    assert_eq!(read_n(&mut s, 8), RESPONSE);
    let stats = *server.stop().stats();
    assert_eq!(stats.reserved_frames, 1);
    assert_eq!(stats.protocol_errors, 0);
}

#[test]
fn two_thousand_concurrent_connections_all_get_replies() {
    let server = start((), |c| c.interval = Duration::from_secs(30));
    let mut conns: Vec<TcpStream> = (0..2000).map(|_| connect(server.addr)).collect();
    for s in conns.iter_mut() {
        s.write_all(&REQUEST).unwrap();
    }
    for s in conns.iter_mut() {
        assert_eq!(read_n(s, 8), RESPONSE);
    }
    let stats = *server.stop().stats();
    assert_eq!(stats.accepted, 2000);
    assert_eq!(stats.peak_active, 2000);
    assert_eq!(stats.heartbeats, 2000);
}

#[test]
fn connections_over_the_maximum_are_closed_at_once_and_counted() {
    let server = start((), |c| {
        c.interval = Duration::from_secs(5);
        c.max_connections = Some(3);
    });
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(server.addr)).collect();
    for s in held.iter_mut() {
        ping(s);
    }
    let mut extra = connect(server.addr);
    let closed =
        wait_closed(&mut extra, Duration::from_secs(5)).expect("extra connection left open");
    assert!(closed < Duration::from_secs(5));
    ping(&mut held[0]);
    drop(held.remove(0));
    // A slot is free again: a new connection is served.
    assert!(eventually(Duration::from_secs(5), || {
        let mut s = connect(server.addr);
        s.write_all(&REQUEST).is_ok() && {
            let mut buf = [0u8; 8];
            s.read_exact(&mut buf).is_ok() && buf == RESPONSE
        }
    }));
    let stats = *server.stop().stats();
    assert!(stats.rejected >= 1);
}

/// Records events; echoes data frames back, closes on payload "bye".
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Handler for Recorder {
    type State = ();
    fn on_connect(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _peer: std::net::SocketAddr) {
        self.0.lock().unwrap().push(format!("connect {id}"));
    }
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, payload: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("data {id} {}", String::from_utf8_lossy(payload)));
        if payload == b"bye" {
            ctx.close(id);
        } else {
            ctx.send(id, payload).unwrap();
        }
    }
    fn on_close(
        &mut self,
        _ctx: &mut Context<'_, ()>,
        id: ConnId,
        _state: (),
        reason: CloseReason,
    ) {
        self.0.lock().unwrap().push(format!("close {id} {reason}"));
    }
}

fn data_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&2i32.to_le_bytes());
    f.extend_from_slice(&((8 + payload.len()) as i32).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn data_frames_reach_the_handler_and_its_replies_come_back() {
    let events = Recorder::default();
    let server = start(events.clone(), |c| c.interval = Duration::from_secs(5));
    let mut s = connect(server.addr);
    // Data frame split across two writes, then a heartbeat.
    let frame = data_frame(b"hello");
    s.write_all(&frame[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(&[&frame[10..], &REQUEST[..]].concat()).unwrap();
    let got = read_n(&mut s, frame.len() + 8);
    assert_eq!(&got[..frame.len()], &frame[..]);
    assert_eq!(&got[frame.len()..], &RESPONSE);
    s.write_all(&data_frame(b"bye")).unwrap();
    assert!(wait_closed(&mut s, Duration::from_secs(5)).is_some());
    let stats = *server.stop().stats();
    assert_eq!(stats.data_frames, 2);
    assert_eq!(stats.closed_by_request, 1);
    let log = events.0.lock().unwrap().clone();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log[0].starts_with("connect "));
    assert!(log[1].ends_with(" hello"));
    assert!(log[2].ends_with(" bye"));
    assert!(log[3].ends_with("closed on request"), "{log:?}");
}

#[test]
fn eviction_reaches_the_handler_with_the_miss_count() {
    let events = Recorder::default();
    let server = start(events.clone(), fast);
    let mut s = connect(server.addr);
    assert!(wait_closed(&mut s, LIMIT + MARGIN).is_some());
    drop(server.stop());
    let log = events.0.lock().unwrap().clone();
    assert!(
        log[1].contains("evicted after 3 missed intervals"),
        "{log:?}"
    );
}

#[test]
fn a_flooding_peer_does_not_starve_the_others() {
    let server = start((), |c| c.interval = Duration::from_secs(5));
    let flooder = connect(server.addr);
    let mut reader = flooder.try_clone().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop_w, stop_r) = (stop.clone(), stop.clone());
    let writer = std::thread::spawn(move || {
        let mut flooder = flooder;
        let burst = REQUEST.repeat(64 * 1024);
        while !stop_w.load(std::sync::atomic::Ordering::Relaxed) {
            if flooder.write_all(&burst).is_err() {
                break;
            }
        }
    });
    let drainer = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        while !stop_r.load(std::sync::atomic::Ordering::Relaxed) {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        total
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut other = connect(server.addr);
    for _ in 0..5 {
        let asked = Instant::now();
        ping(&mut other);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "a ping took {:?} beside a flooder",
            asked.elapsed()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let stats = *server.stop().stats();
    writer.join().unwrap();
    let flooded = drainer.join().unwrap();
    assert!(
        flooded > 1 << 20,
        "the flooder was barely served: {flooded} bytes"
    );
    assert!(stats.heartbeats > 5);
}

#[test]
fn ipv6_peers_are_served_and_evicted_like_ipv4_ones() {
    let server = start((), |c| {
        fast(c);
        c.listen = "[::1]:0".parse().unwrap();
    });
    assert!(server.addr.is_ipv6());
    let mut s = connect(server.addr);
    ping(&mut s);
    assert!(
        wait_closed(&mut s, LIMIT + MARGIN).is_some(),
        "an IPv6 peer was never evicted"
    );
    let stats = *server.stop().stats();
    assert_eq!(stats.evicted, 1);
}
