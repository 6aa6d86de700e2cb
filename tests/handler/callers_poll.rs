//! A server on a `mio::Poll` the caller owns, beside a source of the
//! caller's own: one thread, one poll, the server's tokens from 1000 and a
//! UDP echo at token 1. Heartbeats and echoes are both answered promptly,
//! the loop sleeps when nothing happens, and evictions land on time.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lubdub::client::{Client, ClientConfig, ClientStats};
use lubdub::server::{Commands, Config, Server, ServerError, Step};
use mio::net::UdpSocket as MioUdp;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::common::{connect, read_n, wait_closed};
use crate::support::{REQUEST, RESPONSE};

const FIRST: Token = Token(1000);
const ECHO: Token = Token(1);
/// The poll's one waker, the caller's: the server's commands wake the loop
/// with it.
const WAKER: Token = Token(2);
/// A lubdub client in the same loop, heartbeating the loop's own server.
const CLIENT: Token = Token(3);

fn waker(poll: &Poll) -> Arc<Waker> {
    Arc::new(Waker::new(poll.registry(), WAKER).unwrap())
}

const INTERVAL: Duration = Duration::from_millis(200);
const LIMIT: Duration = Duration::from_millis(600); // 200 ms × 3
/// The derived tick (interval / 20), plus scheduling noise.
const SLACK: Duration = Duration::from_millis(10 + 1000);

fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        interval: INTERVAL,
        misses: 3,
        max_connections: Some(64),
        ..Config::default()
    }
}

#[test]
fn a_server_on_the_callers_poll_owns_its_token_range_and_nothing_else() {
    let poll = Poll::new().unwrap();
    let waker = waker(&poll);
    let mut server = Server::bind_on(config(), (), poll.registry(), FIRST, waker.clone()).unwrap();
    assert_eq!(server.tokens(), 1 + 64);
    let last = Token(FIRST.0 + server.tokens() - 1);
    for token in [FIRST, Token(FIRST.0 + 1), Token(FIRST.0 + 2), last] {
        assert!(server.owns(token), "{token:?}");
    }
    for token in [
        ECHO,
        WAKER,
        Token(0),
        Token(FIRST.0 - 1),
        Token(last.0 + 1),
        Token(usize::MAX),
    ] {
        assert!(!server.owns(token), "{token:?}");
    }
    // Its own poll is the caller's: it cannot be driven as if it had one.
    assert!(matches!(
        server.poll_once(None),
        Err(ServerError::CallersPoll)
    ));
    assert!(matches!(server.run(), Err(ServerError::CallersPoll)));
    // A range that does not fit is refused.
    let near_end = Token(usize::MAX - 10);
    assert!(matches!(
        Server::bind_on(config(), (), poll.registry(), near_end, waker),
        Err(ServerError::Tokens)
    ));
}

/// The caller's loop on a thread of its own.
struct Loop {
    tcp: SocketAddr,
    udp: SocketAddr,
    commands: Commands,
    /// The loop thread's CPU-time clock.
    cpu: libc::clockid_t,
    turns: Arc<AtomicU64>,
    thread: JoinHandle<(Server<()>, ClientStats)>,
}

fn start_loop() -> Loop {
    let (tx, rx) = std::sync::mpsc::channel();
    let turns = Arc::new(AtomicU64::new(0));
    let counted = turns.clone();
    let thread = std::thread::spawn(move || {
        let mut poll = Poll::new().unwrap();
        let waker = waker(&poll);
        let mut server =
            Server::bind_on(config(), (), poll.registry(), FIRST, waker.clone()).unwrap();
        let client_config = ClientConfig {
            connect: server.local_addr().into(),
            interval: INTERVAL,
            misses: 3,
            ..ClientConfig::default()
        };
        let mut client = Client::new_on(client_config, (), poll.registry(), CLIENT, waker).unwrap();
        let mut udp = MioUdp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        poll.registry()
            .register(&mut udp, ECHO, Interest::READABLE)
            .unwrap();
        let mut cpu: libc::clockid_t = 0;
        // SAFETY: pthread_self is this thread; the clock id is written to
        // a variable we own.
        assert_eq!(
            unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut cpu) },
            0
        );
        tx.send((
            server.local_addr(),
            udp.local_addr().unwrap(),
            server.commands(),
            cpu,
        ))
        .unwrap();
        let mut events = Events::with_capacity(256);
        let mut buf = [0u8; 1500];
        loop {
            let now = Instant::now();
            let timeout = server.next_timeout(now).min(client.next_timeout(now));
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "poll: {e}");
            }
            for event in events.iter() {
                if server.owns(event.token()) {
                    server.handle_event(event, Instant::now());
                } else if client.owns(event.token()) {
                    client.handle_event(event, Instant::now());
                } else if event.token() == ECHO {
                    // Edge-triggered: drain until WouldBlock.
                    while let Ok((n, from)) = udp.recv_from(&mut buf) {
                        let _ = udp.send_to(&buf[..n], from);
                    }
                }
            }
            counted.fetch_add(1, Ordering::Relaxed);
            client.handle_timeout(Instant::now());
            if server.handle_timeout(Instant::now()) == Step::Stopped {
                client.close();
                return (server, client.stats());
            }
        }
    });
    let (tcp, udp, commands, cpu) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Loop {
        tcp,
        udp,
        commands,
        cpu,
        turns,
        thread,
    }
}

/// CPU time used so far on `clock`.
fn cpu_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; the clock is
    // a live thread's.
    assert_eq!(unsafe { libc::clock_gettime(clock, &mut ts) }, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Round trips of a heartbeat every 100 ms for `how_long`.
fn heartbeat_rtts(addr: SocketAddr, how_long: Duration) -> Vec<Duration> {
    let mut peer = connect(addr);
    let until = Instant::now() + how_long;
    let mut rtts = Vec::new();
    while Instant::now() < until {
        let sent = Instant::now();
        peer.write_all(&REQUEST).unwrap();
        assert_eq!(read_n(&mut peer, 8), RESPONSE);
        rtts.push(sent.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    rtts
}

/// Round trips of a datagram every 100 ms for `how_long`.
fn echo_rtts(addr: SocketAddr, how_long: Duration) -> Vec<Duration> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let until = Instant::now() + how_long;
    let mut rtts = Vec::new();
    let mut buf = [0u8; 64];
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let sent = Instant::now();
        socket.send(&n.to_le_bytes()).unwrap();
        let got = socket.recv(&mut buf).expect("no echo within 2 s");
        assert_eq!(&buf[..got], n.to_le_bytes());
        rtts.push(sent.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    rtts
}

/// p50 and max, sorted in place.
fn summary(rtts: &mut [Duration]) -> (Duration, Duration) {
    rtts.sort();
    (rtts[rtts.len() / 2], rtts[rtts.len() - 1])
}

#[test]
fn heartbeats_echoes_idleness_and_evictions_on_the_callers_poll() {
    let looping = start_loop();
    let busy = Duration::from_millis(1500);

    // A peer that heartbeats once and goes silent: the server stamps its
    // frame when it reads it, after it was written, so the eviction cannot
    // come sooner than the limit after the write.
    let tcp = looping.tcp;
    let silent = std::thread::spawn(move || {
        let mut peer = connect(tcp);
        let written = Instant::now();
        peer.write_all(&REQUEST).unwrap();
        assert_eq!(read_n(&mut peer, 8), RESPONSE);
        wait_closed(&mut peer, LIMIT + SLACK + SLACK).expect("never evicted");
        written.elapsed()
    });
    let peers: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || heartbeat_rtts(tcp, busy)))
        .collect();
    let udp = looping.udp;
    let echo = std::thread::spawn(move || echo_rtts(udp, busy));

    let mut heartbeats: Vec<Duration> = peers.into_iter().flat_map(|p| p.join().unwrap()).collect();
    let mut echoes = echo.join().unwrap();
    let evicted_after = silent.join().unwrap();
    let (hb_p50, hb_max) = summary(&mut heartbeats);
    let (udp_p50, udp_max) = summary(&mut echoes);
    eprintln!(
        "caller's poll: {} heartbeats p50 {hb_p50:?} max {hb_max:?}; {} echoes p50 {udp_p50:?} \
         max {udp_max:?}; silent peer evicted {evicted_after:?} after its heartbeat (limit {LIMIT:?})",
        heartbeats.len(),
        echoes.len()
    );
    assert!(heartbeats.len() >= 4 * 5, "{} heartbeats", heartbeats.len());
    assert!(
        hb_p50 < Duration::from_millis(5),
        "heartbeat p50 {hb_p50:?}"
    );
    assert!(
        hb_max < Duration::from_millis(100),
        "heartbeat max {hb_max:?}"
    );
    assert!(echoes.len() >= 5, "{} echoes", echoes.len());
    assert!(udp_p50 < Duration::from_millis(5), "echo p50 {udp_p50:?}");
    assert!(udp_max < Duration::from_millis(100), "echo max {udp_max:?}");
    assert!(
        evicted_after >= LIMIT,
        "evicted {evicted_after:?} after its last frame"
    );
    assert!(
        evicted_after <= LIMIT + SLACK,
        "evicted {evicted_after:?} after its last frame"
    );

    // Idle: every peer gone, nothing sent. The loop still wakes at least
    // every stall threshold (50 ms here) to watch for stalls, and must
    // cost next to nothing doing it.
    std::thread::sleep(Duration::from_millis(100));
    let (cpu_before, turns_before, idle_from) = (
        cpu_time(looping.cpu),
        looping.turns.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(2));
    let cpu = cpu_time(looping.cpu) - cpu_before;
    let idle = idle_from.elapsed();
    let turns = looping.turns.load(Ordering::Relaxed) - turns_before;
    let share = cpu.as_secs_f64() / idle.as_secs_f64();
    eprintln!(
        "caller's poll idle: {cpu:?} CPU in {idle:?} ({:.3} % of a core), {turns} turns ({:.1}/s)",
        share * 100.0,
        turns as f64 / idle.as_secs_f64()
    );
    assert!(share < 0.05, "{:.1} % of a core while idle", share * 100.0);

    looping.commands.shutdown();
    let (server, client) = looping.thread.join().unwrap();
    let stats = *server.stats();
    eprintln!("caller's poll: {stats}");
    eprintln!("caller's poll, the client: {client:?}");
    assert_eq!(stats.pauses, 0, "{stats}");
    // The outside peers, the silent one and the loop's own client.
    assert_eq!((stats.accepted, stats.evicted), (6, 1), "{stats}");
    // The client heartbeated all along (every 200 ms for 3.5 s and more),
    // answered in the same loop, never stalled, and lost its connection
    // only to the close at the end.
    assert!(client.replies >= 10, "{client:?}");
    assert_eq!(
        (
            client.connects,
            client.disconnects,
            client.pauses,
            client.missed_replies
        ),
        (1, 1, 0, 0),
        "{client:?}"
    );
    assert!(
        stats.heartbeats >= heartbeats.len() as u64 + 1 + client.replies,
        "{stats}"
    );

    // The same outside peers against the same server standing alone on a
    // thread of its own: the caller's poll costs them nothing that shows.
    let alone = crate::common::start((), |c| *c = Config { ..config() });
    let addr = alone.addr;
    let peers: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || heartbeat_rtts(addr, busy)))
        .collect();
    let mut standalone: Vec<Duration> = peers.into_iter().flat_map(|p| p.join().unwrap()).collect();
    let (alone_p50, alone_max) = summary(&mut standalone);
    eprintln!(
        "standalone: {} heartbeats p50 {alone_p50:?} max {alone_max:?} (caller's poll: p50 \
         {hb_p50:?} max {hb_max:?})",
        standalone.len()
    );
    assert!(
        hb_p50 <= alone_p50 * 3 + Duration::from_millis(1),
        "caller's poll p50 {hb_p50:?} against standalone {alone_p50:?}"
    );
}
