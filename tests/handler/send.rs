//! One result per send, and never a close inside one: a send that finds a
//! peer not reading says `Backlog` and marks the connection closing; the
//! reactor closes it on the loop afterwards and reports it once. A frame
//! too large leaves the connection as it was; a closed id is `Closed`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use lubdub::server::{CloseReason, ConnId, Context, Handler, Step};
use lubdub::SendError;

use crate::support::{bind, collect, data, join, step_until, Connected};

/// Large enough that a peer that never reads fills the kernel's buffers
/// and the backlog in a few hundred sends.
const CHUNK: usize = 16 * 1024;

/// Far more sends than any loopback's buffers take before the backlog
/// bound: past it, the bound was never enforced.
const MAX_SENDS: usize = 100_000;

/// What `on_data("flood")` saw when its send to `target` failed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Flooded {
    sent: usize,
    error: Option<SendError>,
    closes_reported: usize,
    target_open: bool,
    target_kept: bool,
    send_after: Option<Result<(), SendError>>,
    open: usize,
}

#[derive(Default)]
struct Flooder {
    connected: Vec<ConnId>,
    closed: Vec<(ConnId, CloseReason)>,
    target: Option<ConnId>,
    flooded: Flooded,
}

impl Handler for Flooder {
    type State = ();
    fn on_connect(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _peer: SocketAddr) {
        self.connected.push(id);
    }
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, _id: ConnId, payload: &[u8]) {
        assert_eq!(payload, b"flood");
        let target = self.target.unwrap();
        let chunk = vec![7u8; CHUNK];
        let mut sent = 0;
        let error = loop {
            match ctx.send(target, &chunk) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            if sent == MAX_SENDS {
                panic!("{sent} sends to a peer that never reads all succeeded");
            }
        };
        self.flooded = Flooded {
            sent,
            error: Some(error),
            closes_reported: self.closed.len(),
            target_open: ctx.is_open(target),
            target_kept: ctx.state(target).is_some(),
            send_after: Some(ctx.send(target, b"more")),
            open: ctx.open(),
        };
    }
    fn on_close(&mut self, _ctx: &mut Context<'_, ()>, id: ConnId, _: (), reason: CloseReason) {
        self.closed.push((id, reason));
    }
}

impl Connected for Flooder {
    fn connected(&self) -> &[ConnId] {
        &self.connected
    }
}

#[test]
fn a_send_from_outside_that_finds_a_peer_not_reading_closes_it_only_on_the_next_turn() {
    let mut server = bind(Flooder::default(), |_| {});
    let (_never_reads, id) = join(&mut server);
    let chunk = vec![7u8; CHUNK];
    let mut sent = 0;
    let error = loop {
        match server.context().send(id, &chunk) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < MAX_SENDS, "the backlog bound was never enforced");
    };
    assert_eq!(error, SendError::Backlog);
    assert!(sent > 4, "only {sent} sends before Backlog");
    // Closing, not closed: no callback yet, the connection still in its
    // slot, but sent nothing more and not counted as open.
    assert!(server.handler().closed.is_empty(), "closed inside the send");
    assert_eq!(server.stats().active, 1);
    assert_eq!(server.stats().slow_readers, 0);
    assert!(
        server.context().state(id).is_some(),
        "removed inside the send"
    );
    assert!(!server.is_open(id));
    assert_eq!(server.context().open(), 0);
    assert_eq!(server.context().send(id, b"more"), Err(SendError::Closed));

    assert_eq!(
        server.poll_once(Some(Duration::ZERO)).unwrap(),
        Step::Running
    );
    assert_eq!(server.handler().closed, [(id, CloseReason::SlowReader)]);
    assert_eq!(server.stats().slow_readers, 1);
    assert_eq!(server.stats().active, 0);
    assert_eq!(server.context().state(id), None);
    crate::common::drive(&mut server, Duration::from_millis(30));
    assert_eq!(server.handler().closed.len(), 1, "reported more than once");
}

#[test]
fn a_send_from_a_callback_that_finds_a_peer_not_reading_closes_it_after_the_callback() {
    let mut server = bind(Flooder::default(), |_| {});
    let (mut x, x_id) = join(&mut server);
    let (_never_reads, y) = join(&mut server);
    server.handler_mut().target = Some(y);
    x.write_all(&data(b"flood")).unwrap();
    step_until(&mut server, "the close", |s| !s.handler().closed.is_empty());
    let flooded = &server.handler().flooded;
    assert!(flooded.sent > 4, "{flooded:?}");
    assert_eq!(
        *flooded,
        Flooded {
            sent: flooded.sent,
            error: Some(SendError::Backlog),
            closes_reported: 0,
            target_open: false,
            target_kept: true,
            send_after: Some(Err(SendError::Closed)),
            open: 1,
        }
    );
    assert_eq!(server.handler().closed, [(y, CloseReason::SlowReader)]);
    crate::common::drive(&mut server, Duration::from_millis(30));
    assert_eq!(server.handler().closed.len(), 1, "reported more than once");
    assert!(
        server.is_open(x_id),
        "the sender's own connection was touched"
    );
}

#[test]
fn a_frame_too_large_leaves_the_connection_open_and_a_closed_id_is_closed() {
    let mut server = bind(Flooder::default(), |c| c.max_frame = 4096);
    let (mut peer, id) = join(&mut server);
    let too_large = vec![1u8; 4096 - 8 + 1];
    assert_eq!(
        server.context().send(id, &too_large),
        Err(SendError::TooLarge)
    );
    assert_eq!(
        server.context().broadcast(&too_large),
        Err(SendError::TooLarge)
    );
    assert!(server.is_open(id));
    // The largest that fits goes, whole.
    let largest = vec![2u8; 4096 - 8];
    assert_eq!(server.context().send(id, &largest), Ok(()));
    assert_eq!(collect(&mut server, &mut peer, 4096), data(&largest));
    assert!(server.handler().closed.is_empty());

    drop(peer);
    step_until(&mut server, "the close", |s| !s.handler().closed.is_empty());
    assert_eq!(server.context().send(id, b"gone"), Err(SendError::Closed));
    assert_eq!(server.context().broadcast(b"nobody"), Ok(0));
}
