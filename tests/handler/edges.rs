//! Edges of the embedding API an adversarial review found: a reply that
//! can never be sent, a full command queue, a stopped server on the
//! caller's poll, a send that cannot fit, commands queued before a
//! shutdown, a refusal after a defer, a full-size deferred reply. Each
//! test failed before its fix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lubdub::server::{
    CloseReason, CommandError, Config, ConnId, Context, Deferred, Handler, Server,
};
use lubdub::{SendError, Step};

use crate::common::drive;
use crate::support::{bind, data, pending_bytes, step_until, REQUEST, RESPONSE};

// ---------------------------------------------------------------------
// 1. A reply refused as TooLarge consumes the Deferred: the hold can never
//    be filled or discarded, and the peer's replies (heartbeats included)
//    are held forever although "TooLarge leaves it open".
// ---------------------------------------------------------------------

#[derive(Default)]
struct DeferThenTooBig {
    held: Option<Deferred>,
    reply_result: Option<Result<(), SendError>>,
}

impl Handler for DeferThenTooBig {
    type State = ();
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, payload: &[u8]) {
        if payload == b"later" {
            self.held = Some(ctx.defer(id).expect("defer"));
        } else if payload == b"fill" {
            // An answer that turned out larger than max_frame (64 KiB).
            let d = self.held.take().unwrap();
            self.reply_result = Some(ctx.reply(d, &vec![0u8; 70 * 1024]));
            // The handler would now like to discard or retry; it cannot:
            // `d` was moved into `reply`.
        }
    }
}

#[test]
fn a_reply_refused_as_too_large_wedges_the_peer_for_good() {
    let mut server = bind(DeferThenTooBig::default(), |_| {});
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, "accept", |s| s.stats().accepted == 1);
    peer.write_all(&data(b"later")).unwrap();
    peer.write_all(&data(b"fill")).unwrap();
    step_until(&mut server, "the fill", |s| {
        s.handler().reply_result.is_some()
    });
    assert_eq!(
        server.handler().reply_result,
        Some(Err(SendError::TooLarge))
    );
    let id = server.context().states().next().unwrap().0;
    assert!(server.is_open(id), "TooLarge leaves it open");
    // The connection is open, and a heartbeat should be answered.
    peer.write_all(&REQUEST).unwrap();
    step_until(&mut server, "the heartbeat", |s| s.stats().heartbeats == 1);
    drive(&mut server, Duration::from_millis(200));
    assert_eq!(
        pending_bytes(&mut peer),
        RESPONSE,
        "the heartbeat reply is stuck behind a hold nobody can fill any more"
    );
}

// ---------------------------------------------------------------------
// 2. Same wedge through Commands: `reply` on a full queue returns Full
//    ("try again later") but has consumed the Deferred.
// ---------------------------------------------------------------------

#[derive(Default)]
struct DeferAll {
    held: Vec<Deferred>,
    ids: Vec<ConnId>,
}

impl Handler for DeferAll {
    type State = ();
    fn on_connect(&mut self, _: &mut Context<'_, ()>, id: ConnId, _: std::net::SocketAddr) {
        self.ids.push(id);
    }
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, _payload: &[u8]) {
        self.held.push(ctx.defer(id).expect("defer"));
    }
}

#[test]
fn commands_reply_on_a_full_queue_cannot_be_tried_again() {
    let mut server = bind(DeferAll::default(), |c| c.command_queue = 1);
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, "accept", |s| s.stats().accepted == 1);
    peer.write_all(&data(b"lookup")).unwrap();
    step_until(&mut server, "the deferral", |s| s.handler().held.len() == 1);
    let commands = server.commands();
    let other = server.handler().ids[0];
    commands.send(other, b"unrelated").unwrap(); // the queue is now full
    let d = server.handler_mut().held.remove(0);
    let refused = commands.reply(d, b"answer").unwrap_err();
    assert_eq!(refused.error, CommandError::Full);
    // "Try again later": the Deferred came back with the error.
    drive(&mut server, Duration::from_millis(50));
    commands.reply(refused.deferred, b"answer").unwrap();
    drive(&mut server, Duration::from_millis(50));
    // The send queued first waited behind the hold: the answer, then it.
    assert_eq!(
        pending_bytes(&mut peer),
        [data(b"answer"), data(b"unrelated")].concat()
    );
    peer.write_all(&REQUEST).unwrap();
    step_until(&mut server, "the heartbeat", |s| s.stats().heartbeats == 1);
    drive(&mut server, Duration::from_millis(200));
    assert_eq!(
        pending_bytes(&mut peer),
        RESPONSE,
        "peer wedged by a transiently full queue"
    );
}

// ---------------------------------------------------------------------
// 3. A stopped server keeps asking its caller's poll for a zero timeout:
//    a loop that carries on with other sources (a client, its own
//    sockets) after the server stopped spins at 100 % CPU.
// ---------------------------------------------------------------------

#[test]
fn a_stopped_server_does_not_ask_for_a_zero_timeout_forever() {
    let mut server = bind((), |c| c.command_queue = 1);
    let commands = server.commands();
    commands.broadcast(b"bye").unwrap();
    commands.shutdown();
    assert_eq!(
        server.poll_once(Some(Duration::from_millis(5))).unwrap(),
        Step::Stopped
    );
    std::thread::sleep(Duration::from_millis(20));
    let t = server.next_timeout(Instant::now());
    assert!(
        t > Duration::ZERO,
        "stopped, nothing to do, yet next_timeout = {t:?}"
    );
}

#[test]
fn a_stopped_server_with_accepts_left_over_does_not_ask_for_a_zero_timeout_forever() {
    let mut server = bind((), |c| c.max_connections = Some(1000));
    // More connects than one turn's accept budget (256), all completed
    // in the kernel's listen backlog before the server's next turn.
    let peers: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    server.shutdown_handle().shutdown();
    assert_eq!(
        server.poll_once(Some(Duration::from_millis(5))).unwrap(),
        Step::Stopped
    );
    let t = server.next_timeout(Instant::now());
    drop(peers);
    assert!(t > Duration::ZERO, "stopped, yet next_timeout = {t:?}");
}

// ---------------------------------------------------------------------
// 4. docs/embedding.md: "its mio token is the server's first token plus
//    one plus the slot".
// ---------------------------------------------------------------------

#[test]
fn a_connections_token_is_first_plus_one_plus_slot_as_documented() {
    use mio::{Events, Poll, Token, Waker};
    let mut poll = Poll::new().unwrap();
    let waker = std::sync::Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let mut server = Server::bind_on(config, (), poll.registry(), Token(100), waker).unwrap();
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    let mut events = Events::with_capacity(64);
    let mut conn_tokens = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while conn_tokens.is_empty() {
        assert!(Instant::now() < until);
        poll.poll(&mut events, Some(server.next_timeout(Instant::now())))
            .unwrap();
        for e in &events {
            if server.owns(e.token()) {
                if e.token() != Token(100) {
                    conn_tokens.push(e.token());
                }
                server.handle_event(e, Instant::now());
            }
        }
        server.handle_timeout(Instant::now());
        if server.stats().accepted == 1 && conn_tokens.is_empty() {
            peer.write_all(&REQUEST).unwrap();
        }
    }
    // Slot 0 is the first connection's: first + 1 + slot.
    assert_eq!(
        conn_tokens[0],
        Token(100 + 1),
        "docs/embedding.md, ConnId section"
    );
}

// ---------------------------------------------------------------------
// 5. SendError::Backlog: when something already waits for the peer, a
//    frame that would not fit is refused whole, none of it written.
// ---------------------------------------------------------------------

#[derive(Default)]
struct TwoSends {
    results: Vec<Result<(), SendError>>,
    closed: Option<CloseReason>,
}

impl Handler for TwoSends {
    type State = ();
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, _: &[u8]) {
        // The first fills the socket buffer and leaves a backlog; the
        // second cannot fit beside it.
        self.results.push(ctx.send(id, &vec![7u8; 8 * 1024 * 1024]));
    }
    fn on_close(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), r: CloseReason) {
        self.closed = Some(r);
    }
}

#[test]
fn a_send_that_cannot_fit_beside_a_backlog_is_refused_whole() {
    let mut server = bind(TwoSends::default(), |c| {
        c.max_frame = 16 * 1024 * 1024;
        c.max_buffered = 64 * 1024 * 1024;
        c.max_backlog = 8 * 1024 * 1024 + 64 * 1024;
    });
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, "accept", |s| s.stats().accepted == 1);
    peer.write_all(&data(b"one")).unwrap();
    step_until(&mut server, "the first send", |s| {
        s.handler().results.len() == 1
    });
    assert_eq!(server.handler().results[0], Ok(()));
    peer.write_all(&data(b"two")).unwrap();
    step_until(&mut server, "the close", |s| s.handler().closed.is_some());
    assert_eq!(server.handler().results[1], Err(SendError::Backlog));
    assert_eq!(server.handler().closed, Some(CloseReason::SlowReader));
    // Not one byte of the second frame went out: the peer, which has not
    // read, got at most the first frame's head.
    let mut got = Vec::new();
    peer.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match peer.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(got.len() <= 8 * 1024 * 1024 + 8, "{} bytes", got.len());
}

// ---------------------------------------------------------------------
// 6. Commands::shutdown "stops the server after the commands queued
//    before it" — not when more were queued than one turn applies.
// ---------------------------------------------------------------------

struct QueueOnClose {
    commands: Option<lubdub::server::Commands>,
    target: Option<ConnId>,
    ids: Vec<ConnId>,
}

impl Handler for QueueOnClose {
    type State = ();
    fn on_connect(&mut self, _: &mut Context<'_, ()>, id: ConnId, _: std::net::SocketAddr) {
        self.ids.push(id);
    }
    fn on_close(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), r: CloseReason) {
        if r == CloseReason::Requested {
            // Another part of the program reacts to the close: a message
            // for the remaining peer, then the stop.
            let c = self.commands.as_ref().unwrap();
            c.send(self.target.unwrap(), b"last words").unwrap();
            c.shutdown();
        }
    }
}

#[test]
fn shutdown_applies_every_command_queued_before_it() {
    let mut server = bind(
        QueueOnClose {
            commands: None,
            target: None,
            ids: vec![],
        },
        |c| c.command_queue = 1,
    );
    let commands = server.commands();
    server.handler_mut().commands = Some(commands.clone());
    let _a = TcpStream::connect(server.local_addr()).unwrap();
    let mut b = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, "accepts", |s| s.handler().ids.len() == 2);
    let (a_id, b_id) = (server.handler().ids[0], server.handler().ids[1]);
    server.handler_mut().target = Some(b_id);
    commands.close(a_id).unwrap();
    while server.poll_once(Some(Duration::from_millis(5))).unwrap() == Step::Running {}
    b.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = Vec::new();
    let _ = b.read_to_end(&mut got);
    assert_eq!(
        got,
        data(b"last words"),
        "the send queued before shutdown was dropped"
    );
}

// ---------------------------------------------------------------------
// 7. Config::greeting "is dropped if on_connect refuses" ("staged and go
//    out in one write, or not at all"): not when on_connect deferred a
//    reply (or sent ≥ 64 KiB) before refusing — the staging was flushed.
// ---------------------------------------------------------------------

struct DeferThenRefuse(Vec<Deferred>);

impl Handler for DeferThenRefuse {
    type State = ();
    fn on_connect(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, _: std::net::SocketAddr) {
        // e.g. an auth lookup is started, then the peer is found banned.
        if let Ok(d) = ctx.defer(id) {
            self.0.push(d);
        }
        ctx.close(id);
    }
}

#[test]
fn a_refused_peer_is_not_greeted_even_after_a_defer() {
    let mut server = bind(DeferThenRefuse(vec![]), |c| {
        c.greeting = Some(b"WELCOME\r\n".to_vec())
    });
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, "the refusal", |s| {
        s.stats().closed_by_request == 1
    });
    peer.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = Vec::new();
    let _ = peer.read_to_end(&mut got);
    assert_eq!(got, b"", "a refused peer was greeted");
}

// ---------------------------------------------------------------------
// 8. Filling a deferred reply is judged against max_backlog before the
//    kernel is offered anything: with the defaults (max_frame = max_backlog
//    = 64 KiB) a full-size deferred answer plus one heartbeat reply queued
//    behind its hold closes a peer that reads everything, as a SlowReader.
//    The same answer sent with `send` goes through.
// ---------------------------------------------------------------------

#[derive(Default)]
struct BigDeferred {
    held: Option<Deferred>,
    result: Option<Result<(), SendError>>,
    closed: Option<CloseReason>,
}

impl Handler for BigDeferred {
    type State = ();
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, _: &[u8]) {
        self.held = Some(ctx.defer(id).expect("defer"));
    }
    fn on_close(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), r: CloseReason) {
        self.closed = Some(r);
    }
}

#[test]
fn a_full_size_deferred_reply_does_not_close_a_reading_peer() {
    let mut server = bind(BigDeferred::default(), |_| {}); // defaults: 64 KiB / 64 KiB
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    step_until(&mut server, "accept", |s| s.stats().accepted == 1);
    peer.write_all(&data(b"lookup")).unwrap();
    peer.write_all(&REQUEST).unwrap(); // its reply waits behind the hold
    step_until(&mut server, "both requests", |s| {
        s.stats().heartbeats == 1 && s.handler().held.is_some()
    });
    // The lookup's answer: the largest payload a frame may carry.
    let d = server.handler_mut().held.take().unwrap();
    let answer = vec![b'a'; server.config().max_frame - 8];
    let result = server.context().reply(d, &answer);
    server.handler_mut().result = Some(result);
    drive(&mut server, Duration::from_millis(100));
    assert_eq!(
        server.handler().closed,
        None,
        "a peer that reads was closed"
    );
    assert_eq!(server.handler().result, Some(Ok(())));
}
