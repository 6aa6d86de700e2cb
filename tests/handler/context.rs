//! What a callback can do through its `Context`: act on connections other
//! than its own, broadcast, count the open ones, greet or refuse a peer on
//! connect, and close its own connection — each close carried out after
//! the callback, and reported once.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lubdub::server::{CloseReason, ConnId, Context, Handler};
use lubdub::SendError;

use crate::common::{connect, read_n};
use crate::support::{
    arrived_while_driving, bind, concat, data, join, read_frame, read_to_end, step_until,
    Connected, End, REQUEST, RESPONSE,
};

/// What the `relay` request saw, call by call.
#[derive(Debug, Default, PartialEq, Eq)]
struct Relayed {
    open_before: usize,
    sent: Option<Result<(), SendError>>,
    closed: bool,
    closed_again: bool,
    target_open: bool,
    open_after: usize,
    broadcast: Option<Result<usize, SendError>>,
    closes_reported_inside: usize,
}

/// On `relay` from any connection: sends to `to`, closes `shut`, and
/// broadcasts. Records every connect and close.
#[derive(Default)]
struct Router {
    connected: Vec<ConnId>,
    closed: Vec<(ConnId, CloseReason)>,
    to: Option<ConnId>,
    shut: Option<ConnId>,
    relayed: Relayed,
}

impl Handler for Router {
    type State = ();
    fn on_connect(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _peer: SocketAddr) {
        self.connected.push(id);
    }
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, _id: ConnId, payload: &[u8]) {
        assert_eq!(payload, b"relay");
        let (to, shut) = (self.to.unwrap(), self.shut.unwrap());
        self.relayed = Relayed {
            open_before: ctx.open(),
            sent: Some(ctx.send(to, b"from x")),
            closed: ctx.close(shut),
            closed_again: ctx.close(shut),
            target_open: ctx.is_open(shut),
            open_after: ctx.open(),
            broadcast: Some(ctx.broadcast(b"to all")),
            closes_reported_inside: self.closed.len(),
        };
    }
    fn on_close(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _: (), reason: CloseReason) {
        self.closed.push((id, reason));
    }
}

impl Connected for Router {
    fn connected(&self) -> &[ConnId] {
        &self.connected
    }
}

#[test]
fn a_callback_sends_to_one_connection_closes_another_and_broadcasts_to_the_rest() {
    let mut server = bind(Router::default(), |_| {});
    let (mut x, _) = join(&mut server);
    let (mut y, y_id) = join(&mut server);
    let (mut z, z_id) = join(&mut server);
    let (mut w, _) = join(&mut server);
    server.handler_mut().to = Some(y_id);
    server.handler_mut().shut = Some(z_id);

    x.write_all(&data(b"relay")).unwrap();
    step_until(&mut server, "the close", |s| !s.handler().closed.is_empty());
    assert_eq!(
        server.handler().relayed,
        Relayed {
            open_before: 4,
            sent: Some(Ok(())),
            closed: true,
            // Already closing: not open, so not closed twice.
            closed_again: false,
            target_open: false,
            // Closing connections are not counted, though not closed yet.
            open_after: 3,
            // x, y and w; not z, which is closing.
            broadcast: Some(Ok(3)),
            // The close is carried out after the callback returns.
            closes_reported_inside: 0,
        }
    );
    assert_eq!(server.handler().closed, [(z_id, CloseReason::Requested)]);
    assert_eq!(server.stats().closed_by_request, 1);
    assert_eq!(server.context().open(), 3);

    assert_eq!(read_frame(&mut y), (2, b"from x".to_vec()));
    for peer in [&mut x, &mut y, &mut w] {
        assert_eq!(read_frame(peer), (2, b"to all".to_vec()));
    }
    let (got, end) = read_to_end(&mut z, Duration::from_secs(5));
    assert_eq!((got.as_slice(), end), (&b""[..], End::Eof));
    for peer in [&mut x, &mut y, &mut w] {
        assert_eq!(
            arrived_while_driving(&mut server, peer, Duration::from_millis(30)),
            b""
        );
    }
    assert_eq!(server.handler().closed.len(), 1, "a close reported twice");
}

/// Greets every peer from `on_connect`, or refuses it there, and records
/// what it is given.
#[derive(Default)]
struct Doorman {
    refuse: bool,
    refused: Vec<bool>,
    data: Vec<Vec<u8>>,
    closed: Vec<(ConnId, CloseReason)>,
}

impl Handler for Doorman {
    type State = ();
    fn on_connect(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, _peer: SocketAddr) {
        if self.refuse {
            self.refused.push(ctx.close(id));
        } else {
            ctx.send(id, b"hello").unwrap();
        }
    }
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, payload: &[u8]) {
        self.data.push(payload.to_vec());
        if payload == b"bye" {
            assert!(ctx.close(id));
        }
    }
    fn on_close(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _: (), reason: CloseReason) {
        self.closed.push((id, reason));
    }
}

#[test]
fn a_greeting_sent_from_on_connect_arrives_before_any_reply() {
    let mut server = bind(Doorman::default(), |_| {});
    // The heartbeat is in the server's receive queue before the accept.
    let mut peer = connect(server.local_addr());
    peer.write_all(&REQUEST).unwrap();
    step_until(&mut server, "the heartbeat", |s| s.stats().heartbeats == 1);
    let expected = concat(&[&data(b"hello"), &RESPONSE]);
    assert_eq!(read_n(&mut peer, expected.len()), expected);
}

#[test]
fn a_peer_refused_in_on_connect_is_never_read_nor_answered() {
    refused(|_| {});
}

#[test]
fn a_peer_refused_in_on_connect_is_not_even_greeted() {
    // The configured greeting is staged with what on_connect sends, and
    // dropped with it when on_connect refuses.
    refused(|config| config.greeting = Some(b"welcome".to_vec()));
}

fn refused(tweak: impl FnOnce(&mut lubdub::server::Config)) {
    let mut server = bind(
        Doorman {
            refuse: true,
            ..Doorman::default()
        },
        tweak,
    );
    let mut peer = connect(server.local_addr());
    peer.write_all(&concat(&[&REQUEST, &data(b"let me in")]))
        .unwrap();
    step_until(&mut server, "the close", |s| !s.handler().closed.is_empty());
    let h = server.handler();
    assert_eq!(h.refused, [true]);
    assert!(matches!(h.closed[..], [(_, CloseReason::Requested)]));
    assert!(h.data.is_empty(), "a refused peer's data reached on_data");
    let stats = *server.stats();
    assert_eq!(
        (stats.heartbeats, stats.data_frames, stats.bytes_in),
        (0, 0, 0),
        "{stats}"
    );
    assert_eq!(stats.closed_by_request, 1);
    // Nothing was answered. The server closed with the peer's bytes unread
    // in its receive queue, so Linux resets rather than sending a FIN.
    let (got, _end) = read_to_end(&mut peer, Duration::from_secs(5));
    assert_eq!(got, b"", "a refused peer was sent something");
}

#[test]
fn a_connection_closed_from_its_own_on_data_is_read_and_answered_no_further() {
    let mut server = bind(Doorman::default(), |_| {});
    let mut peer = connect(server.local_addr());
    step_until(&mut server, "the accept", |s| s.stats().accepted == 1);
    assert_eq!(read_frame(&mut peer), (2, b"hello".to_vec()));
    // One write: the frames after `bye` arrive in the same read as it, and
    // a header no frame can have (shorter than itself) after them.
    let garbage = [2, 0, 0, 0, 3, 0, 0, 0];
    let burst = concat(&[&REQUEST, &data(b"bye"), &REQUEST, &data(b"after"), &garbage]);
    peer.write_all(&burst).unwrap();
    step_until(&mut server, "the close", |s| !s.handler().closed.is_empty());
    assert_eq!(
        server.handler().data,
        [b"bye".to_vec()],
        "read past the close"
    );
    // Closed as asked, not for what followed the request to close.
    assert!(matches!(
        server.handler().closed[..],
        [(_, CloseReason::Requested)]
    ));
    assert_eq!(server.stats().protocol_errors, 0);
    // The reply queued before the close is handed over; none after it.
    let (got, _end) = read_to_end(&mut peer, Duration::from_secs(5));
    assert_eq!(got, RESPONSE, "answered past the close");
    assert_eq!(server.stats().heartbeats, 1);
}

/// On `close`, closes every connection in `shut`; counts the open ones
/// from every `on_close`.
#[derive(Default)]
struct Counter {
    connected: Vec<ConnId>,
    shut: Vec<ConnId>,
    open_at_close: Vec<(ConnId, usize)>,
}

impl Handler for Counter {
    type State = ();
    fn on_connect(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _peer: SocketAddr) {
        self.connected.push(id);
    }
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, _id: ConnId, _payload: &[u8]) {
        for id in &self.shut {
            assert!(ctx.close(*id));
        }
    }
    fn on_close(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, _: (), _: CloseReason) {
        self.open_at_close.push((id, ctx.open()));
    }
}

#[test]
fn the_open_count_stays_exact_while_closes_are_carried_out() {
    let mut server = bind(Counter::default(), |_| {});
    let peers: Vec<TcpStream> = (0..4).map(|_| connect(server.local_addr())).collect();
    step_until(&mut server, "four accepts", |s| {
        s.handler().connected.len() == 4
    });
    let ids = server.handler().connected.clone();
    // Two of the four closed by one callback: while the first close is
    // reported, the second is still closing, and two are open.
    server.handler_mut().shut = ids[..2].to_vec();
    let asker = peers
        .iter()
        .position(|p| server.context().peer_addr(ids[3]) == p.local_addr().ok())
        .unwrap();
    let mut asker = &peers[asker];
    asker.write_all(&data(b"close")).unwrap();
    step_until(&mut server, "the closes", |s| {
        s.handler().open_at_close.len() == 2
    });
    assert_eq!(
        server.handler().open_at_close,
        [(ids[0], 2), (ids[1], 2)],
        "open() miscounted while closes were carried out"
    );
    assert_eq!(server.context().open(), 2);
}
