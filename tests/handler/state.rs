//! Per-connection state kept in the connection's slot: set in callbacks,
//! read from outside them, handed back by value on close — and out of
//! reach of an id whose slot has a new tenant.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use lubdub::server::{CloseReason, ConnId, Context, Handler};
use lubdub::SendError;

use crate::common::connect;
use crate::support::{arrived_while_driving, bind, data, step_until};

/// One connection's state: named on connect after the peer's port,
/// renamed by a `name:` request, with the data frames it sent counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Peer {
    name: String,
    frames: u32,
}

#[derive(Default)]
struct Names {
    connected: Vec<ConnId>,
    closed: Vec<(ConnId, Peer, CloseReason)>,
}

impl Handler for Names {
    type State = Peer;
    fn on_connect(&mut self, ctx: &mut Context<'_, Peer>, id: ConnId, peer: SocketAddr) {
        let state = ctx.state_mut(id).expect("a new connection has state");
        assert_eq!(*state, Peer::default(), "a new tenant inherited state");
        state.name = format!("port {}", peer.port());
        self.connected.push(id);
    }
    fn on_data(&mut self, ctx: &mut Context<'_, Peer>, id: ConnId, payload: &[u8]) {
        let state = ctx.state_mut(id).unwrap();
        state.frames += 1;
        if let Some(name) = payload.strip_prefix(b"name:") {
            state.name = String::from_utf8(name.to_vec()).unwrap();
        }
    }
    fn on_close(&mut self, _ctx: &mut Context<'_, Peer>, id: ConnId, state: Peer, r: CloseReason) {
        self.closed.push((id, state, r));
    }
}

#[test]
fn state_set_in_callbacks_is_read_outside_them_and_handed_back_on_close() {
    let mut server = bind(Names::default(), |_| {});
    let mut alice = connect(server.local_addr());
    let bob = connect(server.local_addr());
    step_until(&mut server, "two accepts", |s| {
        s.handler().connected.len() == 2
    });
    let ids = server.handler().connected.clone();
    // Which id is whose: the server knows each peer's address.
    let alice_port = alice.local_addr().unwrap().port();
    let (a, b) = if server.context().peer_addr(ids[0]) == alice.local_addr().ok() {
        (ids[0], ids[1])
    } else {
        (ids[1], ids[0])
    };
    assert_eq!(server.context().peer_addr(b), bob.local_addr().ok());
    assert_eq!(
        server.context().state(a).map(|s| s.name.clone()),
        Some(format!("port {alice_port}"))
    );

    alice.write_all(&data(b"name:alice")).unwrap();
    alice.write_all(&data(b"anything")).unwrap();
    step_until(&mut server, "the frames", |s| s.stats().data_frames == 2);
    let alice_state = Peer {
        name: "alice".into(),
        frames: 2,
    };
    assert_eq!(server.context().state(a), Some(&alice_state));
    let mut all: Vec<(ConnId, Peer)> = server
        .context()
        .states()
        .map(|(id, s)| (id, s.clone()))
        .collect();
    all.sort_by_key(|(id, _)| *id != a);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], (a, alice_state.clone()));
    assert_eq!(all[1].0, b);
    assert_eq!(all[1].1.frames, 0, "one connection's state reached another");

    drop(alice);
    step_until(&mut server, "the close", |s| !s.handler().closed.is_empty());
    assert_eq!(
        server.handler().closed,
        [(a, alice_state, CloseReason::PeerClosed)]
    );
    assert_eq!(server.context().state(a), None);
    assert_eq!(server.context().states().count(), 1);
}

#[test]
fn a_stale_id_reaches_neither_the_state_nor_the_socket_of_its_slots_next_tenant() {
    let mut server = bind(Names::default(), |_| {});
    let mut first = connect(server.local_addr());
    step_until(&mut server, "the accept", |s| {
        s.handler().connected.len() == 1
    });
    first.write_all(&data(b"name:first")).unwrap();
    step_until(&mut server, "the frame", |s| s.stats().data_frames == 1);
    let stale = server.handler().connected[0];
    drop(first);
    step_until(&mut server, "the close", |s| s.handler().closed.len() == 1);

    let mut second = connect(server.local_addr());
    step_until(&mut server, "the accept", |s| {
        s.handler().connected.len() == 2
    });
    let fresh = server.handler().connected[1];
    assert_eq!(fresh.slot(), stale.slot(), "the slab reuses the freed slot");
    let mut ctx = server.context();
    assert_eq!(ctx.state(stale), None);
    assert_eq!(ctx.state_mut(stale), None);
    assert_eq!(ctx.peer_addr(stale), None);
    assert!(!ctx.is_open(stale));
    assert_eq!(ctx.send(stale, b"not yours"), Err(SendError::Closed));
    assert!(!ctx.close(stale));
    assert_eq!(ctx.defer(stale), Err(SendError::Closed));
    assert!(ctx.states().all(|(id, _)| id == fresh));
    // The new tenant starts from its own default state, untouched.
    assert_eq!(ctx.state(fresh).map(|s| s.frames), Some(0));
    assert!(ctx.is_open(fresh));
    assert_eq!(
        arrived_while_driving(&mut server, &mut second, Duration::from_millis(30)),
        b""
    );
    assert_eq!(server.handler().closed.len(), 1);
}
