//! Embedding the reactor: driving it with `poll_once` from the caller's own
//! loop, and ids that outlive their connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lubdub::protocol::{HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE};
use lubdub::server::{CloseReason, Config, ConnId, Handler, Server, Step};

#[derive(Default)]
struct Ids {
    opened: Vec<ConnId>,
    closed: Vec<(ConnId, CloseReason)>,
}

impl Handler for Ids {
    type State = ();
    fn on_connect(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        id: ConnId,
        _peer: std::net::SocketAddr,
    ) {
        self.opened.push(id);
    }
    fn on_close(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        id: ConnId,
        _state: (),
        reason: CloseReason,
    ) {
        self.closed.push((id, reason));
    }
}

fn server() -> Server<Ids> {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    Server::bind(config, Ids::default()).unwrap()
}

/// Steps the server until `done` holds (or panics after 10 s).
fn step_until(server: &mut Server<Ids>, mut done: impl FnMut(&Server<Ids>) -> bool) {
    let start = Instant::now();
    while !done(server) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "condition never held"
        );
        assert_eq!(
            server.poll_once(Some(Duration::from_millis(10))).unwrap(),
            Step::Running
        );
    }
}

#[test]
fn poll_once_serves_heartbeats_from_the_callers_loop() {
    let mut server = server();
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    peer.write_all(&HEARTBEAT_REQUEST).unwrap();
    step_until(&mut server, |s| s.stats().heartbeats == 1);
    let mut reply = [0u8; 8];
    peer.read_exact(&mut reply).unwrap();
    assert_eq!(reply, HEARTBEAT_RESPONSE);
    // A bounded poll_once returns even when nothing happens.
    let start = Instant::now();
    assert_eq!(
        server.poll_once(Some(Duration::from_millis(20))).unwrap(),
        Step::Running
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_stale_id_never_reaches_the_next_tenant_of_its_slot() {
    let mut server = server();
    let first = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, |s| s.handler().opened.len() == 1);
    let old = server.handler().opened[0];
    drop(first);
    step_until(&mut server, |s| s.handler().closed.len() == 1);
    assert_eq!(server.handler().closed[0], (old, CloseReason::PeerClosed));

    let mut second = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, |s| s.handler().opened.len() == 2);
    let new = server.handler().opened[1];
    assert_eq!(new.slot(), old.slot(), "the slab reuses the freed slot");
    assert_ne!(new.serial(), old.serial());
    assert!(!server.is_open(old));
    assert_eq!(
        server.context().send(old, b"not for you"),
        Err(lubdub::SendError::Closed)
    );
    assert!(!server.context().close(old));
    assert!(server.is_open(new));

    // The new tenant is untouched and still served; data sent to its own id arrives.
    assert_eq!(server.context().send(new, b"hi"), Ok(()));
    let mut frame = [0u8; 10];
    second.read_exact(&mut frame).unwrap();
    assert_eq!(&frame[..8], &[2, 0, 0, 0, 10, 0, 0, 0]);
    assert_eq!(&frame[8..], b"hi");
    assert!(server.context().close(new));
    assert!(!server.is_open(new), "closing from the moment it is asked");
    assert_eq!(
        server.handler().closed.len(),
        1,
        "but carried out on the loop"
    );
    server.poll_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(server.handler().closed[1], (new, CloseReason::Requested));
}

#[test]
fn shutdown_from_another_thread_stops_run_and_closes_connections() {
    let mut server = server();
    let stop = server.shutdown_handle();
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        stop.shutdown();
    });
    server.run().unwrap();
    thread.join().unwrap();
    assert_eq!(server.stats().active, 0);
    assert_eq!(server.poll_once(None).unwrap(), Step::Stopped);
    let closed_as_shutdown = server
        .handler()
        .closed
        .iter()
        .filter(|(_, r)| *r == CloseReason::Shutdown)
        .count();
    assert_eq!(closed_as_shutdown, server.handler().opened.len());
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(peer.read(&mut [0u8; 8]).unwrap_or(0), 0);
}
