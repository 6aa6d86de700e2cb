//! `--proxy-protocol` over loopback: hand-written PROXY headers, v1 and
//! v2, IPv4 and IPv6, `LOCAL` and `UNKNOWN`, in front of heartbeats.
//!
//! What each test attacks: the handler hears of a connection only once its
//! header is whole, and then with the header's address (`on_connect`,
//! `Context::peer_addr`, log lines); the header may come a byte at a time;
//! what follows it in the same write is decoded as frames; garbage, an
//! overlong header and a header that does not come in time are closed and
//! counted without reaching the handler, the deadline never early; and a
//! connection still awaiting its header is none of the handler's business
//! (not open, not broadcast to, not listed).
//!
//! Most tests step an embedded server in the test's own thread, so "not
//! yet" is exact: between two bytes of a header the server has read all
//! there was and still has not admitted the connection.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::peers::Child;
use common::{connect, drive, embedded_with, read_n, wait_closed, REQUEST, RESPONSE};
use lubdub::server::{CloseReason, Config, ConnId, Context, Handler, Server};

/// Records what the handler is told.
#[derive(Default)]
struct Seen {
    connects: Vec<(ConnId, SocketAddr)>,
    /// What `Context::peer_addr` said during `on_connect`.
    peer_addrs: Vec<Option<SocketAddr>>,
    closes: Vec<(ConnId, CloseReason)>,
    data: Vec<Vec<u8>>,
}

impl Handler for Seen {
    type State = ();
    fn on_connect(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, peer: SocketAddr) {
        self.connects.push((id, peer));
        self.peer_addrs.push(ctx.peer_addr(id));
    }
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, payload: &[u8]) {
        self.data.push(payload.to_vec());
        let _ = ctx.send(id, payload);
    }
    fn on_close(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _: (), reason: CloseReason) {
        self.closes.push((id, reason));
    }
}

fn proxied(config: &mut Config) {
    config.proxy_protocol = true;
}

fn server() -> Server<Seen> {
    embedded_with(Seen::default(), proxied)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`.
fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// A v2 header, by hand: signature, version/command, family/protocol,
/// length, addresses.
fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    let mut body = Vec::new();
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            h.push(0x11); // TCP over IPv4
            body.extend(s.ip().octets());
            body.extend(d.ip().octets());
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            h.push(0x21); // TCP over IPv6
            body.extend(s.ip().octets());
            body.extend(d.ip().octets());
        }
        _ => unreachable!("one family"),
    }
    body.extend(src.port().to_be_bytes());
    body.extend(dst.port().to_be_bytes());
    h.extend((body.len() as u16).to_be_bytes());
    h.extend(body);
    h
}

/// A v2 `LOCAL` header, as a balancer's health check sends it.
fn v2_local() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend([0x20, 0x00, 0, 0]);
    h
}

/// Sends `header` a byte at a time, stepping the server after each byte,
/// and checks it has not told the handler before the last; the last byte
/// goes in one write with a heartbeat. Returns the connection, answered.
fn byte_by_byte(server: &mut Server<Seen>, header: &[u8]) -> TcpStream {
    let before = server.handler().connects.len();
    let open = server.context().open();
    let mut peer = connect(server.local_addr());
    let (last, rest) = header.split_last().unwrap();
    for (i, byte) in rest.iter().enumerate() {
        peer.write_all(&[*byte]).unwrap();
        drive(server, Duration::from_millis(2));
        assert_eq!(
            server.handler().connects.len(),
            before,
            "on_connect after {} of {} header bytes",
            i + 1,
            header.len()
        );
        assert_eq!(server.context().open(), open, "counted open early");
    }
    peer.write_all(&[&[*last][..], &REQUEST[..]].concat())
        .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while server.stats().heartbeats == 0 || server.handler().connects.len() == before {
        assert!(Instant::now() < until, "not admitted: {}", server.stats());
        drive(server, Duration::from_millis(2));
    }
    assert_eq!(read_n(&mut peer, 8), RESPONSE);
    peer
}

/// The header's address, not the socket's, is the peer: a byte at a time,
/// v1 and v2, IPv4 and IPv6.
#[test]
fn a_header_sent_a_byte_at_a_time_admits_its_client() {
    let cases = [
        v1(addr("192.0.2.7:56324"), addr("198.51.100.1:8898")),
        v1(addr("[2001:db8::7]:40000"), addr("[2001:db8::1]:8898")),
        v2(addr("203.0.113.9:4444"), addr("198.51.100.1:8898")),
        v2(addr("[2001:db8::9]:5555"), addr("[2001:db8::1]:8898")),
    ];
    let clients = [
        "192.0.2.7:56324",
        "[2001:db8::7]:40000",
        "203.0.113.9:4444",
        "[2001:db8::9]:5555",
    ];
    let mut server = server();
    let mut peers = Vec::new();
    for (i, header) in cases.iter().enumerate() {
        peers.push(byte_by_byte(&mut server, header));
        let (id, peer) = server.handler().connects[i];
        assert_eq!(peer, addr(clients[i]));
        assert_eq!(server.handler().peer_addrs[i], Some(addr(clients[i])));
        assert_eq!(server.context().peer_addr(id), Some(addr(clients[i])));
    }
    let stats = *server.stats();
    assert_eq!(
        (stats.accepted, stats.heartbeats, stats.proxy_local),
        (4, 4, 0),
        "{stats}"
    );
    assert_eq!(stats.proxy_errors + stats.proxy_timeouts, 0, "{stats}");
}

/// `LOCAL` (a health check) and `UNKNOWN`: admitted, with the balancer's
/// own address — the socket's peer — and counted apart.
#[test]
fn local_and_unknown_leave_the_balancers_address() {
    let mut server = server();
    let mut peers = Vec::new();
    for (i, header) in [v2_local(), b"PROXY UNKNOWN\r\n".to_vec()]
        .iter()
        .enumerate()
    {
        peers.push(byte_by_byte(&mut server, header));
        let own = peers[i].local_addr().unwrap();
        assert_eq!(server.handler().connects[i].1, own);
        assert_eq!(server.handler().peer_addrs[i], Some(own));
    }
    assert_eq!(server.stats().proxy_local, 2, "{}", server.stats());
}

/// Frames that come in the same write as the header are the client's:
/// decoded and answered in order, data delivered.
#[test]
fn what_follows_the_header_in_the_same_write_is_decoded() {
    let mut server = server();
    let mut peer = connect(server.local_addr());
    let mut data = 2i32.to_le_bytes().to_vec();
    data.extend(13i32.to_le_bytes());
    data.extend(b"hello");
    let write = [
        &v2(addr("203.0.113.9:4444"), addr("198.51.100.1:8898"))[..],
        &REQUEST,
        &data,
        &REQUEST,
    ]
    .concat();
    peer.write_all(&write).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while server.stats().heartbeats < 2 {
        assert!(Instant::now() < until, "{}", server.stats());
        drive(&mut server, Duration::from_millis(2));
    }
    let expected = [&RESPONSE[..], &data, &RESPONSE].concat();
    assert_eq!(read_n(&mut peer, expected.len()), expected);
    assert_eq!(server.handler().data, [b"hello".to_vec()]);
    assert_eq!(server.handler().connects[0].1, addr("203.0.113.9:4444"));
}

/// Steps `server` until `peer` is closed; panics after `limit`.
fn closed_within(server: &mut Server<Seen>, peer: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        drive(server, Duration::from_millis(5));
        if wait_closed(peer, Duration::from_millis(1)).is_some() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still open after {limit:?}: {}",
            server.stats()
        );
    }
}

/// Not a header, a malformed one, an overlong one: closed at once (long
/// before the 3 s deadline), counted, and never the handler's.
#[test]
fn garbage_and_overlong_headers_are_closed_at_once_and_counted() {
    let mut bad_v2 = v2(addr("203.0.113.9:4444"), addr("198.51.100.1:8898"));
    bad_v2[12] = 0x31; // version 3
    let mut huge_v2 = v2(addr("203.0.113.9:4444"), addr("198.51.100.1:8898"));
    huge_v2[14..16].copy_from_slice(&[0xff, 0xff]);
    let mut long_v1 = b"PROXY TCP4 ".to_vec();
    long_v1.resize(200, b'1');
    let bad = [
        REQUEST.to_vec(), // a lubdub client that bypassed the balancer
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        b"PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n".to_vec(),
        bad_v2,
        huge_v2[..16].to_vec(), // refused on its 16th byte
        long_v1,
    ];
    let mut server = server();
    for (i, bytes) in bad.iter().enumerate() {
        let mut peer = connect(server.local_addr());
        peer.write_all(bytes).unwrap();
        let took = closed_within(&mut server, &mut peer, Duration::from_secs(2));
        assert_eq!(server.stats().proxy_errors, i as u64 + 1, "case {i}");
        assert!(took < Duration::from_secs(2), "case {i}: {took:?}");
    }
    let stats = *server.stats();
    assert_eq!((stats.active, stats.proxy_timeouts), (0, 0), "{stats}");
    assert!(server.handler().connects.is_empty());
    assert!(server.handler().closes.is_empty(), "on_close for strangers");
}

/// A header that does not complete, or never starts, is closed at the
/// deadline — not before — and counted; a peer that closes first is just
/// a peer's close (a plain TCP health check).
#[test]
fn no_whole_header_in_time_is_closed_at_the_deadline_never_before() {
    let timeout = Duration::from_millis(300);
    let mut server = embedded_with(Seen::default(), |c| {
        proxied(c);
        c.proxy_header_timeout = timeout;
    });
    let mut partial = connect(server.local_addr());
    let accepted = Instant::now();
    partial.write_all(b"PROXY TCP4 192.0.2.7 ").unwrap();
    let mut silent = connect(server.local_addr());
    let health_check = connect(server.local_addr());
    drive(&mut server, Duration::from_millis(50));
    drop(health_check);
    drive(&mut server, Duration::from_millis(50));
    assert_eq!(server.stats().closed_by_peer, 1, "{}", server.stats());
    // Never early.
    while accepted.elapsed() < timeout - Duration::from_millis(20) {
        drive(&mut server, Duration::from_millis(5));
        assert_eq!(server.stats().proxy_timeouts, 0, "early");
    }
    closed_within(&mut server, &mut partial, Duration::from_secs(2));
    closed_within(&mut server, &mut silent, Duration::from_secs(2));
    let took = accepted.elapsed();
    let stats = *server.stats();
    eprintln!(
        "closed {} ms after the accept (timeout 300 ms)",
        took.as_millis()
    );
    assert!(took >= timeout && took < timeout + Duration::from_secs(1));
    assert_eq!(
        (stats.proxy_timeouts, stats.proxy_errors),
        (2, 0),
        "{stats}"
    );
    assert_eq!(stats.active, 0, "{stats}");
    assert!(server.handler().connects.is_empty());
    assert!(server.handler().closes.is_empty(), "on_close for strangers");
}

/// While a connection awaits its header the handler cannot see or reach
/// it: not open, not listed, no broadcast. Once admitted, it is.
#[test]
fn a_connection_awaiting_its_header_is_not_the_handlers() {
    let mut server = server();
    let mut admitted = byte_by_byte(
        &mut server,
        &v1(addr("192.0.2.7:56324"), addr("198.51.100.1:8898")),
    );
    let mut waiting = connect(server.local_addr());
    waiting.write_all(b"PROXY TCP6 2001:db8::").unwrap();
    drive(&mut server, Duration::from_millis(20));
    assert_eq!(server.stats().active, 2);
    let mut ctx = server.context();
    assert_eq!(ctx.open(), 1);
    assert_eq!(ctx.states().count(), 1);
    assert_eq!(ctx.broadcast(b"news"), Ok(1));
    let mut frame = 2i32.to_le_bytes().to_vec();
    frame.extend(12i32.to_le_bytes());
    frame.extend(b"news");
    assert_eq!(read_n(&mut admitted, 12), frame);
    // The rest of the header, and a heartbeat: the broadcast never reached it.
    waiting
        .write_all(&[&b"7 2001:db8::1 40000 8898\r\n"[..], &REQUEST].concat())
        .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while server.handler().connects.len() < 2 {
        assert!(Instant::now() < until);
        drive(&mut server, Duration::from_millis(2));
    }
    assert_eq!(
        read_n(&mut waiting, 8),
        RESPONSE,
        "news sent before the header"
    );
    assert_eq!(server.context().open(), 2);
    assert_eq!(server.handler().connects[1].1, addr("[2001:db8::7]:40000"));
}

/// A slot's next tenant does not inherit its client address: a `LOCAL`
/// connection in a slot a proxied one left is the balancer's own.
#[test]
fn a_reused_slot_forgets_the_last_tenants_client() {
    let mut server = server();
    let first = byte_by_byte(
        &mut server,
        &v2(addr("203.0.113.9:4444"), addr("198.51.100.1:8898")),
    );
    drop(first);
    let until = Instant::now() + Duration::from_secs(5);
    while server.stats().active > 0 {
        assert!(Instant::now() < until);
        drive(&mut server, Duration::from_millis(2));
    }
    let second = byte_by_byte(&mut server, &v2_local());
    let (first_id, _) = server.handler().connects[0];
    let (second_id, peer) = server.handler().connects[1];
    assert_eq!(first_id.slot(), second_id.slot(), "the slot was not reused");
    assert_eq!(peer, second.local_addr().unwrap());
    assert_eq!(
        server.context().peer_addr(second_id),
        Some(second.local_addr().unwrap())
    );
    assert_eq!(server.context().peer_addr(first_id), None);
}

/// The binary's log lines name the client from the header: the admission,
/// a close, and an eviction.
#[test]
fn log_lines_name_the_client_from_the_header() {
    let (mut server, listening) = Child::server(&[
        "--proxy-protocol",
        "--interval",
        "100ms",
        "--misses",
        "2",
        "--log-level",
        "debug",
    ]);
    // v1, one heartbeat, then silence: evicted.
    let mut quiet = connect(listening);
    quiet
        .write_all(
            &[
                &v1(addr("192.0.2.7:56324"), addr("198.51.100.1:8898"))[..],
                &REQUEST,
            ]
            .concat(),
        )
        .unwrap();
    assert_eq!(read_n(&mut quiet, 8), RESPONSE);
    // v2 IPv6, then a malformed frame: a protocol error's close line.
    let mut rude = connect(listening);
    rude.write_all(&v2(addr("[2001:db8::9]:5555"), addr("[2001:db8::1]:8898")))
        .unwrap();
    rude.write_all(&[0, 0, 0, 0, 4, 0, 0, 0]).unwrap();
    let wait = Duration::from_secs(5);
    let via = quiet.local_addr().unwrap();
    let line = server.expect_line("accepted peer=192.0.2.7:56324 ", wait);
    assert!(line.contains(&format!(" via={via} ")), "{line}");
    server.expect_line("closed peer=[2001:db8::9]:5555 ", wait);
    let line = server.expect_line("evicted ", wait);
    assert!(line.contains("evicted peer=192.0.2.7:56324 "), "{line}");
    // Every `peer=` is a client from a header; the balancer's side of a
    // connection appears only as `via=`.
    for (_, line) in &server.seen {
        if let Some(peer) = line.split(" peer=").nth(1) {
            let peer = peer.split_whitespace().next().unwrap();
            assert!(
                peer == "192.0.2.7:56324" || peer == "[2001:db8::9]:5555",
                "{line}"
            );
        }
    }
    assert_eq!(server.terminate(), Some(0));
    let stopped = server
        .seen
        .iter()
        .find(|(_, l)| l.contains("stopped: "))
        .map(|(_, l)| l)
        .unwrap_or_else(|| panic!("no final stats:\n{}", server.log()));
    assert!(stopped.contains(" evicted=1 "), "{stopped}");
    assert!(stopped.contains(" protocol_errors=1 "), "{stopped}");
    assert!(stopped.contains(" proxy_errors=0 "), "{stopped}");
}
