//! Deferred replies: a reply the handler produces later holds its place in
//! the peer's stream, and everything after it (heartbeat replies too) waits
//! behind it until it is filled — from outside the callbacks, or from
//! another thread through a command — or given up.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use lubdub::server::{CloseReason, ConnId, Context, Deferred, Handler, Server};
use lubdub::SendError;

use crate::common::{connect, read_n};
use crate::support::{arrived_while_driving, bind, concat, data, step_until, REQUEST, RESPONSE};

/// Defers the reply to every payload that starts with `later` and keeps
/// the hold; echoes every other payload at once.
#[derive(Default)]
struct Deferring {
    held: Vec<Deferred>,
    refused: Vec<SendError>,
    closed: Vec<(ConnId, CloseReason)>,
}

impl Handler for Deferring {
    type State = ();
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, payload: &[u8]) {
        if payload.starts_with(b"later") {
            match ctx.defer(id) {
                Ok(deferred) => self.held.push(deferred),
                Err(e) => self.refused.push(e),
            }
        } else {
            ctx.send(id, payload).expect("echo");
        }
    }
    fn on_close(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _: (), reason: CloseReason) {
        self.closed.push((id, reason));
    }
}

/// A server and one peer it has accepted.
fn setup() -> (Server<Deferring>, TcpStream) {
    let mut server = bind(Deferring::default(), |_| {});
    let peer = connect(server.local_addr());
    step_until(&mut server, "the accept", |s| s.stats().accepted == 1);
    (server, peer)
}

/// Long enough for anything the server would send to arrive.
const SETTLE: Duration = Duration::from_millis(100);

#[test]
fn a_deferred_reply_holds_back_everything_after_it_until_it_is_filled() {
    let (mut server, mut peer) = setup();
    let burst = concat(&[
        &REQUEST,
        &data(b"later:1"),
        &REQUEST,
        &data(b"now:2"),
        &REQUEST,
    ]);
    peer.write_all(&burst).unwrap();
    step_until(&mut server, "the five requests", |s| {
        s.stats().heartbeats == 3 && s.handler().held.len() == 1
    });
    // The heartbeat before the deferred request is answered; nothing past
    // the hold leaves, not even the heartbeat replies.
    assert_eq!(read_n(&mut peer, 8), RESPONSE);
    assert_eq!(arrived_while_driving(&mut server, &mut peer, SETTLE), b"");

    // Filled from outside the callbacks: it goes at once, and what waited
    // behind it follows in request order.
    let held = server.handler_mut().held.remove(0);
    assert_eq!(server.context().reply(held, b"filled:1"), Ok(()));
    let expected = concat(&[&data(b"filled:1"), &RESPONSE, &data(b"now:2"), &RESPONSE]);
    assert_eq!(read_n(&mut peer, expected.len()), expected);
    assert_eq!(arrived_while_driving(&mut server, &mut peer, SETTLE), b"");
    heartbeat(&mut server, &mut peer);
    assert!(server.handler().closed.is_empty());
}

/// One heartbeat round trip, with the server stepped in this thread.
fn heartbeat(server: &mut Server<Deferring>, peer: &mut TcpStream) {
    let before = server.stats().heartbeats;
    peer.write_all(&REQUEST).unwrap();
    step_until(server, "a heartbeat", |s| {
        s.stats().heartbeats == before + 1
    });
    assert_eq!(read_n(peer, 8), RESPONSE);
}

#[test]
fn deferred_replies_filled_from_another_thread_leave_in_request_order() {
    let (mut server, mut peer) = setup();
    let commands = server.commands();
    let burst = concat(&[&data(b"later:a"), &REQUEST, &data(b"later:b"), &REQUEST]);
    peer.write_all(&burst).unwrap();
    step_until(&mut server, "the two holds", |s| {
        s.stats().heartbeats == 2 && s.handler().held.len() == 2
    });
    assert_eq!(arrived_while_driving(&mut server, &mut peer, SETTLE), b"");

    // The second is filled first, from another thread: it must still wait
    // for the first.
    let b = server.handler_mut().held.pop().unwrap();
    let from = commands.clone();
    std::thread::spawn(move || from.reply(b, b"B").unwrap())
        .join()
        .unwrap();
    step_until(&mut server, "the command", |s| s.stats().commands == 1);
    assert_eq!(
        arrived_while_driving(&mut server, &mut peer, SETTLE),
        b"",
        "a later reply overtook the one held before it"
    );
    // The first, from another thread too.
    let a = server.handler_mut().held.pop().unwrap();
    std::thread::spawn(move || commands.reply(a, b"A").unwrap())
        .join()
        .unwrap();
    step_until(&mut server, "the command", |s| s.stats().commands == 2);
    let expected = concat(&[&data(b"A"), &RESPONSE, &data(b"B"), &RESPONSE]);
    assert_eq!(read_n(&mut peer, expected.len()), expected);
    assert_eq!(server.stats().commands_failed, 0);
}

#[test]
fn a_discarded_reply_lets_what_waited_behind_it_go_with_nothing_in_its_place() {
    let (mut server, mut peer) = setup();
    let burst = concat(&[&data(b"later:1"), &REQUEST, &data(b"now:2")]);
    peer.write_all(&burst).unwrap();
    step_until(&mut server, "the hold", |s| {
        s.stats().data_frames == 2 && s.handler().held.len() == 1
    });
    assert_eq!(arrived_while_driving(&mut server, &mut peer, SETTLE), b"");
    let held = server.handler_mut().held.remove(0);
    assert_eq!(server.context().discard(held), Ok(()));
    let expected = concat(&[&RESPONSE, &data(b"now:2")]);
    assert_eq!(read_n(&mut peer, expected.len()), expected);
    assert_eq!(arrived_while_driving(&mut server, &mut peer, SETTLE), b"");

    // And through a command.
    peer.write_all(&concat(&[&data(b"later:3"), &REQUEST]))
        .unwrap();
    step_until(&mut server, "the hold", |s| s.handler().held.len() == 1);
    assert_eq!(arrived_while_driving(&mut server, &mut peer, SETTLE), b"");
    let held = server.handler_mut().held.remove(0);
    server.commands().discard(held).unwrap();
    step_until(&mut server, "the command", |s| s.stats().commands == 1);
    assert_eq!(read_n(&mut peer, 8), RESPONSE);
    assert_eq!(arrived_while_driving(&mut server, &mut peer, SETTLE), b"");
    assert_eq!(server.stats().commands_failed, 0);
}

#[test]
fn holds_are_bounded_per_connection_and_the_bound_does_not_close_it() {
    let (mut server, mut peer) = setup();
    // 65 deferred requests and a heartbeat in one write: the 65th hold is
    // refused with Backlog, and the connection is kept.
    let mut burst: Vec<u8> = (0..65)
        .flat_map(|i| data(format!("later:{i}").as_bytes()))
        .collect();
    burst.extend_from_slice(&REQUEST);
    peer.write_all(&burst).unwrap();
    step_until(&mut server, "the requests", |s| {
        s.stats().data_frames == 65 && s.stats().heartbeats == 1
    });
    assert_eq!(server.handler().held.len(), 64);
    assert_eq!(server.handler().refused, [SendError::Backlog]);
    let id = server.handler().held[0].conn();
    assert!(server.is_open(id), "the bound closed the connection");
    // The heartbeat reply waits behind the 64 holds.
    assert_eq!(arrived_while_driving(&mut server, &mut peer, SETTLE), b"");
    assert!(server.handler().closed.is_empty());
    assert_eq!(server.stats().slow_readers, 0);

    // Giving them all up lets it go, and the connection serves on.
    for held in std::mem::take(&mut server.handler_mut().held) {
        assert_eq!(server.context().discard(held), Ok(()));
    }
    assert_eq!(read_n(&mut peer, 8), RESPONSE);
    peer.write_all(&concat(&[&data(b"later:again"), &REQUEST]))
        .unwrap();
    step_until(&mut server, "a new hold", |s| s.handler().held.len() == 1);
    let held = server.handler_mut().held.remove(0);
    assert_eq!(server.context().reply(held, b"again"), Ok(()));
    let expected = concat(&[&data(b"again"), &RESPONSE]);
    assert_eq!(read_n(&mut peer, expected.len()), expected);
}

#[test]
fn a_deferred_reply_to_a_closed_connection_goes_nowhere() {
    let (mut server, mut peer) = setup();
    peer.write_all(&data(b"later")).unwrap();
    step_until(&mut server, "the hold", |s| s.handler().held.len() == 1);
    drop(peer);
    step_until(&mut server, "the close", |s| s.handler().closed.len() == 1);
    let held = server.handler_mut().held.remove(0);
    assert_eq!(
        server.context().reply(held, b"late"),
        Err(SendError::Closed)
    );

    // Nor through a command: counted as failed.
    let mut peer = connect(server.local_addr());
    peer.write_all(&data(b"later")).unwrap();
    step_until(&mut server, "the hold", |s| s.handler().held.len() == 1);
    drop(peer);
    step_until(&mut server, "the close", |s| s.handler().closed.len() == 2);
    let held = server.handler_mut().held.remove(0);
    server.commands().reply(held, b"late").unwrap();
    step_until(&mut server, "the command", |s| s.stats().commands == 1);
    assert_eq!(server.stats().commands_failed, 1);
}
