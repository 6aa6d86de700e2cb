//! What the reactor reads and when it evicts, where the edges are: a FIN
//! queued behind more data than one turn reads, intervals off the tick
//! grid, the idle time it reports, the socket options it gives accepted
//! connections.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::*;

/// A reserved-type frame of `len` bytes: skipped whole, never answered.
fn reserved(len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&77i32.to_le_bytes());
    f.extend_from_slice(&(len as i32).to_le_bytes());
    f.resize(len, 0xEE);
    f
}

/// A peer whose connection to `server` has been streamed over while the
/// server read, so the kernel has grown its receive window far past one
/// turn's read budget.
fn warmed_up(server: &mut lubdub::server::Server<()>, frame: &[u8]) -> std::net::TcpStream {
    let peer = connect(server.local_addr());
    let warm: Vec<u8> = frame.repeat(2048);
    let mut writer = peer.try_clone().unwrap();
    let warming = std::thread::spawn(move || writer.write_all(&warm).unwrap());
    let until = Instant::now() + Duration::from_secs(20);
    while server.stats().reserved_frames < 2048 && Instant::now() < until {
        server.poll_once(Some(Duration::from_millis(1))).unwrap();
    }
    warming.join().unwrap();
    peer
}

#[test]
fn a_fin_queued_behind_more_than_one_turn_of_reads_is_still_seen() {
    let mut server = embedded(|c| c.interval = Duration::from_secs(60));
    let frame = reserved(4096);
    let peer = warmed_up(&mut server, &frame);
    // The server now stalls while 600 KiB of frames and the FIN arrive.
    let burst = frame.repeat(150);
    let mut writer = peer.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        writer.write_all(&burst).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    let until = Instant::now() + Duration::from_secs(2);
    while server.stats().active > 0 && Instant::now() < until {
        server.poll_once(Some(Duration::from_millis(1))).unwrap();
    }
    sending.join().unwrap();
    let stats = *server.stats();
    assert_eq!(stats.reserved_frames, 2048 + 150, "{stats}");
    assert_eq!(
        (stats.closed_by_peer, stats.evicted, stats.active),
        (1, 0, 0),
        "the FIN was missed: {stats}"
    );
}

#[test]
fn a_peer_whose_frame_is_still_arriving_past_its_deadline_is_read_before_judged() {
    // The reactor is busy elsewhere (running, so no stall to excuse) while
    // the peer's next frame — 2 MiB, eight turns of reading — and a
    // heartbeat arrive. At the deadline the frame is only partly read; the
    // kernel holds the rest, and the heartbeat. Evidence first.
    let mut server = embedded(|c| {
        c.interval = Duration::from_millis(100);
        c.misses = 2;
        c.tick = Some(Duration::from_millis(5));
        c.max_frame = 4 << 20;
    });
    let peer = warmed_up(&mut server, &reserved(4096));
    let mut burst = reserved(2 << 20);
    burst.extend_from_slice(&REQUEST);
    let mut writer = peer.try_clone().unwrap();
    let sending = std::thread::spawn(move || writer.write_all(&burst).unwrap());
    let busy_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < busy_until {
        std::hint::spin_loop();
    }
    let until = Instant::now() + Duration::from_secs(5);
    while server.stats().heartbeats == 0 && server.stats().active > 0 && Instant::now() < until {
        server.poll_once(Some(Duration::from_millis(1))).unwrap();
    }
    sending.join().unwrap();
    let stats = *server.stats();
    assert_eq!(
        (stats.evicted, stats.reserved_frames, stats.heartbeats),
        (0, 2048 + 1, 1),
        "judged before its frame was read: {stats}"
    );
}

#[test]
fn a_flooding_peer_gets_one_read_budget_per_turn() {
    let mut server = embedded(|c| c.interval = Duration::from_secs(60));
    let frame = reserved(4096);
    let peer = warmed_up(&mut server, &frame);
    let before = server.stats().bytes_in;
    // 600 KiB waits in the kernel when the server next looks.
    let mut writer = peer.try_clone().unwrap();
    writer.write_all(&frame.repeat(150)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut per_turn = Vec::new();
    while server.stats().bytes_in - before < 150 * 4096 && per_turn.len() < 20 {
        let at = server.stats().bytes_in;
        server.poll_once(Some(Duration::from_millis(1))).unwrap();
        per_turn.push(server.stats().bytes_in - at);
    }
    // Four reads of 64 KiB a turn, and the rest in later turns.
    assert!(per_turn.len() >= 3, "{per_turn:?}");
    assert!(
        per_turn.iter().all(|&n| n <= 4 * 64 * 1024),
        "more than one read budget in a turn: {per_turn:?}"
    );
    drop(peer);
}

/// Records the idle time each evicted peer was given.
#[derive(Default)]
struct Idles {
    peers: std::collections::HashMap<lubdub::server::ConnId, std::net::SocketAddr>,
    evicted: Vec<(std::net::SocketAddr, u64)>,
}

impl lubdub::server::Handler for Idles {
    type State = ();
    const WANTS_DATA: bool = false;
    fn on_connect(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        id: lubdub::server::ConnId,
        peer: std::net::SocketAddr,
    ) {
        self.peers.insert(id, peer);
    }
    fn on_close(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        id: lubdub::server::ConnId,
        _state: (),
        reason: lubdub::server::CloseReason,
    ) {
        if let lubdub::server::CloseReason::Evicted { idle_ms, .. } = reason {
            self.evicted.push((self.peers[&id], idle_ms));
        }
    }
}

#[test]
fn an_interval_off_the_tick_grid_evicts_at_interval_times_misses_not_a_rounded_interval_times_misses(
) {
    // 150 ms × 8 = 1.2 s with 100 ms ticks. Rounding the interval to two
    // ticks first would make it 1.6 s. Five peers go quiet at offsets spread
    // over one tick, so the reported idle time is checked at every phase.
    let limit = Duration::from_millis(1200);
    let tick = Duration::from_millis(100);
    let mut server = embedded_with(Idles::default(), |c| {
        c.interval = Duration::from_millis(150);
        c.misses = 8;
        c.tick = Some(tick);
    });
    let addr = server.local_addr();
    let mut peers = Vec::new();
    for i in 0..5u64 {
        let mut s = connect(addr);
        s.set_nonblocking(true).unwrap();
        drive(&mut server, Duration::from_millis(23 * i + 1));
        let sent = Instant::now();
        s.write_all(&REQUEST).unwrap();
        // Its last frame is read by the server between `sent` and when the
        // reply is here.
        let mut reply = [0u8; 8];
        let replied = loop {
            server.poll_once(Some(Duration::from_millis(1))).unwrap();
            if std::io::Read::read(&mut s, &mut reply).is_ok() {
                break Instant::now();
            }
        };
        assert_eq!(reply, RESPONSE);
        peers.push((s, sent, replied, None::<Instant>));
    }
    let until = Instant::now() + limit * 3;
    while peers.iter().any(|p| p.3.is_none()) && Instant::now() < until {
        server.poll_once(Some(Duration::from_millis(1))).unwrap();
        for (s, _, _, closed) in peers.iter_mut().filter(|p| p.3.is_none()) {
            let mut b = [0u8; 8];
            match std::io::Read::read(s, &mut b) {
                Ok(0) => *closed = Some(Instant::now()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => panic!("{other:?}"),
            }
        }
    }
    let evicted = &server.handler().evicted;
    for (s, sent, replied, closed) in &peers {
        let closed = closed.expect("never evicted");
        let silence = closed - *sent;
        assert!(
            silence >= limit,
            "evicted after {silence:?}, before the limit"
        );
        assert!(
            silence <= limit + tick + Duration::from_millis(250),
            "evicted after {silence:?}: more than one tick (and a margin) late"
        );
        let local = s.local_addr().unwrap();
        let idle_ms = evicted
            .iter()
            .find(|(peer, _)| *peer == local)
            .expect("eviction reached the handler")
            .1;
        // The server read the frame no later than `replied` and evicted no
        // earlier than this read of the EOF, less its delivery: the idle
        // time it reports covers at least that.
        let seen_at_least = closed.duration_since(*replied).as_millis() as u64;
        assert!(idle_ms >= 1200, "idle={idle_ms}ms below the limit");
        assert!(
            idle_ms + 15 >= seen_at_least,
            "idle={idle_ms}ms understates a silence of at least {seen_at_least}ms"
        );
    }
}

#[test]
fn accepted_and_connected_sockets_get_keepalive_that_follows_the_heartbeat() {
    use socket2::SockRef;
    use std::os::fd::BorrowedFd;
    // 60 s × 6: the kernel probes only after 6 minutes of silence, and its
    // user timeout is longer than one heartbeat interval.
    let server = start((), |c| {
        c.interval = Duration::from_secs(60);
        c.misses = 6;
    });
    let peer = connect(server.addr);
    ping(&mut peer.try_clone().unwrap());
    let fd = own_socket(server.addr, peer.local_addr().unwrap());
    // SAFETY: the server thread keeps this socket open while the peer is.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&borrowed);
    assert!(sock.keepalive().unwrap());
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(360));
    assert_eq!(
        sock.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(5)
    );
    assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
    assert_eq!(
        sock.tcp_user_timeout().unwrap(),
        Some(Duration::from_secs(375))
    );
    drop(server);

    // The client follows its own settings the same way.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = lubdub::client::Client::new(
        lubdub::client::ClientConfig {
            connect: listener.local_addr().unwrap().into(),
            interval: Duration::from_secs(20),
            misses: 3,
            ..Default::default()
        },
        (),
    )
    .unwrap();
    let (_accepted, from) = {
        let until = Instant::now() + Duration::from_secs(5);
        listener.set_nonblocking(true).unwrap();
        loop {
            client.poll_once(Some(Duration::from_millis(5))).unwrap();
            match listener.accept() {
                Ok(pair) => break pair,
                Err(_) if Instant::now() < until => {}
                Err(e) => panic!("{e}"),
            }
        }
    };
    while !client.is_connected() {
        client.poll_once(Some(Duration::from_millis(5))).unwrap();
    }
    let fd = own_socket(from, listener.local_addr().unwrap());
    // SAFETY: the client keeps its socket open until it is dropped.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&borrowed);
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
    assert_eq!(
        sock.tcp_user_timeout().unwrap(),
        Some(Duration::from_secs(75))
    );
}

/// A handler that takes `.0` ms over every data frame — a slow embedding
/// program, so one turn of the reactor lasts that long — and notes when
/// each peer was closed.
#[derive(Default)]
struct Slow(
    u64,
    Vec<(lubdub::server::ConnId, std::net::SocketAddr)>,
    Vec<(std::net::SocketAddr, Instant)>,
);

impl lubdub::server::Handler for Slow {
    type State = ();
    const WANTS_DATA: bool = true;

    fn on_connect(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        id: lubdub::server::ConnId,
        peer: std::net::SocketAddr,
    ) {
        self.1.push((id, peer));
    }

    fn on_data(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        _id: lubdub::server::ConnId,
        _payload: &[u8],
    ) {
        std::thread::sleep(Duration::from_millis(self.0));
    }

    fn on_close(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        id: lubdub::server::ConnId,
        _state: (),
        _reason: lubdub::server::CloseReason,
    ) {
        if let Some(&(_, peer)) = self.1.iter().find(|(open, _)| *open == id) {
            self.2.push((peer, Instant::now()));
        }
    }
}

#[test]
fn a_frame_completed_late_in_a_long_turn_is_stamped_when_it_was_read() {
    // 200 ms × 3. Peer A's data frame costs the handler 400 ms, so the
    // turn that reads it is that long. Peer B has half a heartbeat in the
    // same batch of events and sends the other half 100 ms into the turn;
    // it is read after A, completing the frame, and B says nothing more.
    // Stamped at the wakeup, B's only frame would count from before it was
    // whole, and B would be evicted ~500 ms after it was, 100 ms early.
    let mut server = common::embedded_with(Slow(400, Vec::new(), Vec::new()), |c| {
        c.interval = Duration::from_millis(200);
        c.misses = 3;
    });
    let mut a = connect(server.local_addr());
    let mut b = connect(server.local_addr());
    let b_addr = b.local_addr().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while server.stats().active < 2 && Instant::now() < until {
        server.poll_once(Some(Duration::from_millis(5))).unwrap();
    }
    // The caller stays away 200 ms once: that stall takes the one excuse
    // of the window, so the long turn below is not excused and cannot hide
    // an early stamp behind one.
    server.poll_once(Some(Duration::ZERO)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.poll_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(server.stats().excused_pauses, 1);
    a.write_all(&[2, 0, 0, 0, 9, 0, 0, 0, 42]).unwrap();
    b.write_all(&[0, 0, 0, 0]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut late = b.try_clone().unwrap();
    let second_half = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        late.write_all(&[8, 0, 0, 0]).unwrap();
        Instant::now()
    });
    server.poll_once(Some(Duration::ZERO)).unwrap();
    let whole_at = second_half.join().unwrap();
    assert_eq!(server.stats().heartbeats, 1, "B's frame read in that turn");
    assert_eq!(server.stats().excused_pauses, 1, "the long turn excused");
    let b_closed = |s: &lubdub::server::Server<Slow>| {
        s.handler()
            .2
            .iter()
            .find(|(peer, _)| *peer == b_addr)
            .map(|&(_, at)| at)
    };
    while b_closed(&server).is_none() && whole_at.elapsed() < Duration::from_secs(5) {
        server.poll_once(Some(Duration::from_millis(2))).unwrap();
    }
    let after = b_closed(&server)
        .expect("B never evicted")
        .duration_since(whole_at);
    assert!(
        after >= Duration::from_millis(600),
        "evicted {after:?} after its only frame was whole: early"
    );
    drop(a);
}

#[test]
fn a_batching_wait_answers_every_peer_and_never_delays_an_eviction() {
    // The longest wait there is: were it taken past a timer, the silent
    // peer's eviction would land up to 100 ms late.
    let running = start((), |c| {
        fast(c);
        c.batch_wait = Duration::from_millis(100);
    });
    let mut silent = connect(running.addr);
    let connected = Instant::now();
    let watcher = std::thread::spawn(move || {
        wait_closed(&mut silent, Duration::from_secs(5)).map(|_| connected.elapsed())
    });
    // Twenty peers heartbeat together every 2 ms: events come faster than
    // the window, so the server waits before it polls again.
    let mut peers: Vec<_> = (0..20).map(|_| connect(running.addr)).collect();
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(600) {
        let sent = Instant::now();
        for p in &mut peers {
            p.write_all(&REQUEST).unwrap();
        }
        for p in &mut peers {
            assert_eq!(read_n(p, 8), RESPONSE);
        }
        slowest = slowest.max(sent.elapsed());
        std::thread::sleep(Duration::from_millis(2));
    }
    let evicted_after = watcher
        .join()
        .unwrap()
        .expect("the silent peer was evicted");
    let stats = running.stop().stats().to_owned();
    // Evicted at the limit (150 ms), late by at most its tick (7 ms), and
    // a margin for this machine, well short of the 100 ms wait.
    assert!(
        evicted_after >= Duration::from_millis(150) && evicted_after < Duration::from_millis(207),
        "evicted after {evicted_after:?}: {stats}"
    );
    assert_eq!(stats.evicted, 1, "{stats}");
    // Each round waits for the server's wait: a few rounds at least.
    assert!(stats.heartbeats >= 20 * 5, "{stats}");
    // The waits were asked for: not stalls (one is this machine's).
    assert!(stats.pauses <= 1, "the waits counted as stalls: {stats}");
    assert!(
        slowest < Duration::from_millis(100 + 400),
        "a round of replies took {slowest:?}"
    );
    // Counted: every wakeup, and the events they served.
    assert!(
        stats.wakeups > 0 && stats.events > stats.wakeups,
        "{} events in {} wakeups",
        stats.events,
        stats.wakeups
    );
}
