//! The reactor's own bookkeeping, where a test needs to reach inside: a
//! failed accept during a descriptor pause, serials past 2³², refused socket
//! options. Behaviour seen from outside is tested in `tests/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::*;
use crate::keepalive::Probes;

const REQUEST: [u8; 8] = crate::protocol::HEARTBEAT_REQUEST;

fn server<H: Handler>(handler: H) -> Server<H> {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        accept_pause: Duration::from_millis(20),
        ..Config::default()
    };
    Server::bind(config, handler).unwrap()
}

fn step_until<H: Handler>(server: &mut Server<H>, mut done: impl FnMut(&Server<H>) -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !done(server) {
        assert!(Instant::now() < until, "timed out: {}", server.stats());
        server.poll_once(Some(Duration::from_millis(5))).unwrap();
    }
}

#[test]
fn a_failed_accept_during_a_descriptor_pause_still_leaves_a_retry() {
    let mut server = server(());
    // Out of descriptors: listener events are ignored until the retry
    // timer fires, and that retry then fails for some other reason.
    let now = Now { nanos: 0, tick: 0 };
    assert!(!server.accept_failed(std::io::Error::from_raw_os_error(libc::EMFILE), now));
    assert!(server.accept_paused.is_some());
    let retry = server.accept_retry.take().expect("a retry after EMFILE");
    server.wheel.cancel(retry);
    assert!(!server.accept_failed(std::io::Error::from_raw_os_error(libc::EPROTO), now));
    assert!(
        server.accept_retry.is_some(),
        "nothing would ever accept again"
    );
    // And the retry does accept what waits, with no listener event.
    let _peer = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, |s| s.stats().accepted == 1);
    assert!(server.accept_paused.is_none(), "the episode ended");
    // A peer that gave up before the accept costs nothing but a count.
    assert!(server.accept_failed(std::io::Error::from_raw_os_error(libc::ECONNABORTED), now));
}

/// Records every id, and keeps each connection's own id as its state.
#[derive(Default)]
struct Ids(Vec<ConnId>);

impl Handler for Ids {
    type State = Option<ConnId>;
    fn on_connect(
        &mut self,
        ctx: &mut Context<'_, Option<ConnId>>,
        id: ConnId,
        _peer: std::net::SocketAddr,
    ) {
        *ctx.state_mut(id).unwrap() = Some(id);
        self.0.push(id);
    }
}

#[test]
fn serials_do_not_repeat_past_two_to_the_thirty_two() {
    let mut server = server(Ids::default());
    let first = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, |s| s.handler().0.len() == 1);
    let stale = server.handler().0[0];
    drop(first);
    step_until(&mut server, |s| s.stats().active == 0);
    // Four billion accepts later, the same slot gets a new tenant.
    server.next_serial = (1 << 32) + u64::from(stale.serial() as u32);
    let mut second = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, |s| s.handler().0.len() == 2);
    let fresh = server.handler().0[1];
    assert_eq!(fresh.slot(), stale.slot());
    assert_eq!(fresh.serial() as u32, stale.serial() as u32);
    assert!(server.is_open(fresh));
    assert!(!server.is_open(stale), "a stale id reached the new tenant");
    let mut ctx = server.context();
    assert!(!ctx.close(stale));
    assert_eq!(ctx.send(stale, b"not yours"), Err(crate::SendError::Closed));
    assert_eq!(ctx.state(stale), None, "a stale id reached the new state");
    assert_eq!(ctx.state_mut(stale), None);
    assert_eq!(ctx.peer_addr(stale), None);
    assert_eq!(ctx.defer(stale), Err(crate::SendError::Closed));
    assert_eq!(ctx.state(fresh), Some(&Some(fresh)));
    assert_eq!(ctx.states().map(|(id, _)| id).collect::<Vec<_>>(), [fresh]);
    // What the new tenant gets is its own, and only that.
    assert_eq!(ctx.send(fresh, b"yours"), Ok(()));
    let mut frame = [0u8; 13];
    second.read_exact(&mut frame).unwrap();
    assert_eq!(frame[..8], [2, 0, 0, 0, 13, 0, 0, 0]);
    assert_eq!(&frame[8..], b"yours");
    assert!(!ctx.close(stale));
    assert!(
        ctx.is_open(fresh),
        "closing a stale id closed its new tenant"
    );
}

#[test]
fn a_refused_socket_option_is_counted_logged_once_and_the_connection_kept() {
    let mut server = server(());
    // Values the kernel refuses (validation keeps them out of a Config).
    server.socket_options.keepalive = Some(Probes {
        idle: Duration::ZERO,
        interval: Duration::from_secs(1),
        count: 1,
    });
    let mut peers: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    step_until(&mut server, |s| s.stats().active == 3);
    assert_eq!(server.stats().sockopt_errors, 3);
    assert_eq!(
        server.sockopt_logged,
        [("TCP_KEEPIDLE", Some(libc::EINVAL))]
    );
    for peer in peers.iter_mut() {
        peer.write_all(&REQUEST).unwrap();
    }
    step_until(&mut server, |s| s.stats().heartbeats == 3);
    for peer in peers.iter_mut() {
        let mut reply = [0u8; 8];
        peer.read_exact(&mut reply).unwrap();
        assert_eq!(reply, crate::protocol::HEARTBEAT_RESPONSE);
    }
}

/// Broadcasts a 32 KiB notice for every data frame it is given.
struct Amplifier;

impl Handler for Amplifier {
    type State = ();
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, _id: ConnId, _payload: &[u8]) {
        let _ = ctx.broadcast(&[b'!'; 32 * 1024]);
    }
}

/// core.rs promises the staging buffer never grows past STAGE_FLUSH plus
/// one frame ("a handler that answers small requests with large replies
/// cannot grow the staging buffer past it"); memory.md says the read
/// budget bounds it. A broadcast's copy for the connection being read is
/// appended to it with no such check (and outside `max_backlog` and the
/// buffer budget).
#[test]
fn a_broadcast_to_the_peer_being_read_respects_the_staging_bound() {
    let mut server = server(Amplifier);
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, |s| s.stats().accepted == 1);
    // 1000 empty data frames: 8000 bytes in, one read.
    let frame = [2u8, 0, 0, 0, 8, 0, 0, 0];
    peer.write_all(&frame.repeat(1000)).unwrap();
    // The peer does not read: the staged copies are written as they
    // reach the bound, and the peer closes as a slow reader once the
    // kernel and its backlog are full.
    step_until(&mut server, |s| {
        s.stats().data_frames == 1000 || s.stats().slow_readers == 1
    });
    let bound = 64 * 1024 + server.config().max_frame;
    let staged = server.core.out.capacity();
    assert!(
        staged <= bound,
        "staging buffer grew to {staged} bytes (bound {bound}); buffered={} peak_buffered={}",
        server.stats().buffered,
        server.stats().peak_buffered
    );
}
