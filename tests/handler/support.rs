//! Helpers the modules of this test share: data frames, reading frames and
//! silence back from a peer, stepping a server in the test's own thread,
//! and a server on a thread of its own that reports its connections.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lubdub::server::{CloseReason, ConnId, Context, Handler, Server, Step};

/// Heartbeat request and response, as the wire has them.
pub use crate::common::{REQUEST, RESPONSE};

/// A data frame (type 2) carrying `payload`.
pub fn data(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&2i32.to_le_bytes());
    frame.extend_from_slice(&((8 + payload.len()) as i32).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Frames laid end to end, as one write (or one expected read).
pub fn concat(frames: &[&[u8]]) -> Vec<u8> {
    frames.concat()
}

/// Reads one frame from a blocking peer: its type and payload.
pub fn read_frame(peer: &mut TcpStream) -> (i32, Vec<u8>) {
    let mut header = [0u8; 8];
    peer.read_exact(&mut header).expect("a frame header");
    let kind = i32::from_le_bytes(header[..4].try_into().unwrap());
    let len = i32::from_le_bytes(header[4..].try_into().unwrap()) as usize;
    let mut payload = vec![0; len - 8];
    peer.read_exact(&mut payload).expect("a frame payload");
    (kind, payload)
}

/// A server bound on 127.0.0.1 with an ephemeral port; `tweak` adjusts
/// the config.
pub fn bind<H: Handler>(handler: H, tweak: impl FnOnce(&mut lubdub::server::Config)) -> Server<H> {
    crate::common::embedded_with(handler, tweak)
}

/// Handlers that record the ids they were given on connect.
pub trait Connected {
    fn connected(&self) -> &[ConnId];
}

/// Connects one peer and steps until the server has it: its id.
pub fn join<H: Handler + Connected>(server: &mut Server<H>) -> (TcpStream, ConnId) {
    let peer = crate::common::connect(server.local_addr());
    let n = server.handler().connected().len();
    step_until(server, "the accept", |s| {
        s.handler().connected().len() == n + 1
    });
    (peer, server.handler().connected()[n])
}

/// Steps a server in this thread until `done` holds; panics after 10 s,
/// naming `what` it waited for.
pub fn step_until<H: Handler>(
    server: &mut Server<H>,
    what: &str,
    mut done: impl FnMut(&mut Server<H>) -> bool,
) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done(server) {
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}: {}",
            server.stats()
        );
        assert_eq!(
            server.poll_once(Some(Duration::from_millis(5))).unwrap(),
            Step::Running
        );
    }
}

/// Drives a server in this thread for `wait`, then returns whatever has
/// reached `peer` meanwhile (without blocking): a test that expects
/// silence asserts it is empty.
pub fn arrived_while_driving<H: Handler>(
    server: &mut Server<H>,
    peer: &mut TcpStream,
    wait: Duration,
) -> Vec<u8> {
    crate::common::drive(server, wait);
    pending_bytes(peer)
}

/// Steps a server in this thread until `n` bytes have reached `peer`
/// (the server may have to wait for the peer to read before it can write
/// them all); panics after 10 s.
pub fn collect<H: Handler>(server: &mut Server<H>, peer: &mut TcpStream, n: usize) -> Vec<u8> {
    let until = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < until,
            "{} of {n} bytes arrived: {}",
            got.len(),
            server.stats()
        );
        server.poll_once(Some(Duration::from_millis(5))).unwrap();
        got.extend(pending_bytes(peer));
    }
    got
}

/// What `peer` can read now, without blocking.
pub fn pending_bytes(peer: &mut TcpStream) -> Vec<u8> {
    peer.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    peer.set_nonblocking(false).unwrap();
    got
}

/// Whatever reaches `peer` within `wait` (the server runs elsewhere).
pub fn arrives_within(peer: &mut TcpStream, wait: Duration) -> Vec<u8> {
    std::thread::sleep(wait);
    pending_bytes(peer)
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// An orderly close (FIN).
    Eof,
    /// A reset: Linux resets instead when the closing side left unread
    /// bytes in its receive queue.
    Reset,
}

/// Reads until the server closes the connection: what arrived, and how it
/// ended. Panics if it is still open after `limit`.
pub fn read_to_end(peer: &mut TcpStream, limit: Duration) -> (Vec<u8>, End) {
    let start = Instant::now();
    peer.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        assert!(
            start.elapsed() < limit,
            "still open after {limit:?}; read {} bytes",
            got.len()
        );
        match peer.read(&mut buf) {
            Ok(0) => return (got, End::Eof),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, End::Reset),
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// What an [`Announcer`] reports from the server's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Connected(ConnId, SocketAddr),
    Closed(ConnId, CloseReason),
}

/// A handler that reports each connect and close over a channel, for a
/// server running on a thread of its own.
pub struct Announcer(pub Sender<Seen>);

impl Handler for Announcer {
    type State = ();
    fn on_connect(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, peer: SocketAddr) {
        let _ = self.0.send(Seen::Connected(id, peer));
    }
    fn on_close(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _state: (), r: CloseReason) {
        let _ = self.0.send(Seen::Closed(id, r));
    }
}

/// The next report, within 10 s.
pub fn next_seen(seen: &Receiver<Seen>) -> Seen {
    seen.recv_timeout(Duration::from_secs(10))
        .expect("nothing reported within 10 s")
}

/// The id the server gave the connection from `peer`'s local address.
pub fn id_of(seen: &Receiver<Seen>, peer: &TcpStream) -> ConnId {
    match next_seen(seen) {
        Seen::Connected(id, addr) => {
            assert_eq!(
                addr,
                peer.local_addr().unwrap(),
                "connections seen out of order"
            );
            id
        }
        other => panic!("expected a connect, got {other:?}"),
    }
}

/// Runs `server` on a thread of its own, as `run` does: `poll_once(None)`
/// until it stops, so the loop blocks in poll whenever it has nothing to
/// do. Join it to get the server back.
pub fn spawn<H: Handler<State: Send> + Send + 'static>(
    mut server: Server<H>,
) -> JoinHandle<Server<H>> {
    std::thread::spawn(move || {
        while server.poll_once(None).expect("poll") == Step::Running {}
        server
    })
}
