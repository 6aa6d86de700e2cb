//! The client on the caller's `mio::Poll` (`Client::new_on`), beside a
//! socket of the caller's own, on one thread: it heartbeats a server, the
//! caller's datagrams come back promptly, it counts no stall, and idle it
//! costs next to no CPU.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::peers::Lubdub;
use lubdub::client::{Client, ClientConfig, ClientError};
use lubdub::Step;
use mio::{Events, Interest, Poll, Token};

/// The caller's own socket's token; the client takes 10 and 11.
const UDP: Token = Token(0);
const CLIENT: Token = Token(10);
const WAKER: Token = Token(1);

/// Echoes every datagram back to its sender until it gets `b"stop"`.
fn udp_echo() -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        loop {
            let (n, from) = socket.recv_from(&mut buf).unwrap();
            if &buf[..n] == b"stop" {
                return;
            }
            socket.send_to(&buf[..n], from).unwrap();
        }
    });
    (addr, thread)
}

/// CPU time this thread has used (user and system).
fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes one rusage into the zeroed value we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) },
        0
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The caller's loop: its UDP socket and the client on one poll.
struct Caller {
    poll: Poll,
    events: Events,
    udp: mio::net::UdpSocket,
    echo: SocketAddr,
    client: Client,
    /// When each datagram in flight was sent, by its number.
    sent: Vec<Option<Instant>>,
    round_trips: Vec<Duration>,
    turns: u64,
}

impl Caller {
    fn new(server: SocketAddr, echo: SocketAddr) -> Caller {
        let poll = Poll::new().unwrap();
        let mut udp = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        poll.registry()
            .register(&mut udp, UDP, Interest::READABLE)
            .unwrap();
        let config = ClientConfig {
            connect: server.into(),
            interval: Duration::from_millis(200),
            misses: 5,
            ..ClientConfig::default()
        };
        let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), WAKER).unwrap());
        let client = Client::new_on(config, (), poll.registry(), CLIENT, waker).unwrap();
        Caller {
            poll,
            events: Events::with_capacity(64),
            udp,
            echo,
            client,
            sent: Vec::new(),
            round_trips: Vec::new(),
            turns: 0,
        }
    }

    /// One turn of the loop, sending a datagram first if `ping`.
    fn turn(&mut self, ping: bool) -> Step {
        if ping {
            let n = self.sent.len() as u32;
            self.udp.send_to(&n.to_le_bytes(), self.echo).unwrap();
            self.sent.push(Some(Instant::now()));
        }
        let timeout = self.client.next_timeout(Instant::now());
        self.poll.poll(&mut self.events, Some(timeout)).unwrap();
        let now = Instant::now();
        self.turns += 1;
        for event in self.events.iter() {
            if self.client.owns(event.token()) {
                self.client.handle_event(event, now);
            } else if event.token() == UDP {
                let mut buf = [0u8; 16];
                while let Ok(n) = self.udp.recv(&mut buf) {
                    assert_eq!(n, 4);
                    let i = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                    let sent = self.sent[i].take().expect("echoed once");
                    self.round_trips.push(now - sent);
                }
            } else if event.token() != WAKER {
                // The waker needs nothing: handle_timeout looks at all.
                panic!("an event for a token nobody holds: {:?}", event.token());
            }
        }
        self.client.handle_timeout(now)
    }

    /// Turns for `how_long`, a datagram every `every` if given.
    fn run_for(&mut self, how_long: Duration, every: Option<Duration>) {
        let end = Instant::now() + how_long;
        let mut next_ping = Instant::now();
        while Instant::now() < end {
            let ping = every.is_some_and(|_| Instant::now() >= next_ping);
            if let (true, Some(every)) = (ping, every) {
                next_ping += every;
            }
            assert_eq!(self.turn(ping), Step::Running);
        }
    }
}

#[test]
fn the_client_on_the_callers_poll_heartbeats_beside_its_socket_and_idles_quietly() {
    let server = Lubdub::start(
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(200),
        5,
    );
    let (echo, echo_thread) = udp_echo();
    let mut caller = Caller::new(server.addr, echo);

    // Busy: a datagram every 20 ms beside the heartbeats, for a second.
    caller.run_for(Duration::from_secs(1), Some(Duration::from_millis(20)));
    let stats = caller.client.stats();
    assert!(caller.client.is_connected(), "{stats:?}");
    assert!(stats.replies >= 3, "{stats:?}");
    let mut rtts = caller.round_trips.clone();
    rtts.sort();
    assert!(rtts.len() >= 40, "{} echoes in a second", rtts.len());
    // An echo is seen when it arrives, not when the client's timer next
    // ends the poll (at most 50 ms away): prompt, bar scheduling noise.
    let median = rtts[rtts.len() / 2];
    assert!(median < Duration::from_millis(10), "median {median:?}");
    assert!(
        *rtts.last().unwrap() < Duration::from_millis(200),
        "{rtts:?}"
    );

    // Idle: heartbeats every 200 ms and nothing else, for 2 s.
    let (cpu, turns, replies) = (thread_cpu(), caller.turns, stats.replies);
    let began = Instant::now();
    caller.run_for(Duration::from_secs(2), None);
    let (cpu, wall) = (thread_cpu() - cpu, began.elapsed());
    let turns = caller.turns - turns;
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "idle: {cpu:?} of CPU in {wall:?} ({:.2} %), {turns} turns",
        share * 100.0
    );
    assert!(share < 0.05, "idle CPU {:.1} % of a core", share * 100.0);
    // Woken by heartbeats (10) and the stall measure's bound (50 ms: 40),
    // not spinning.
    assert!(turns <= 120, "{turns} turns in 2 s of idle");

    let stats = caller.client.stats();
    assert!(stats.replies >= replies + 8, "{stats:?}");
    assert_eq!(
        (stats.connects, stats.disconnects, stats.pauses),
        (1, 0, 0),
        "{stats:?}"
    );

    // Its own poll it has not: poll_once says so rather than panic.
    assert!(matches!(
        caller.client.poll_once(Some(Duration::ZERO)),
        Err(ClientError::CallersPoll)
    ));

    // The shutdown handle wakes the caller's poll at once and the next
    // turn stops the client; the caller's socket is untouched.
    let stop = caller.client.shutdown_handle();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        stop.shutdown();
    });
    let asked = Instant::now();
    let mut turns = 0;
    while caller.turn(false) == Step::Running {
        turns += 1;
        assert!(turns < 10, "still running {turns} turns after the shutdown");
    }
    assert!(asked.elapsed() < Duration::from_millis(30 + 200));
    thread.join().unwrap();
    assert!(!caller.client.is_connected());
    assert_eq!(caller.client.stats().disconnects, 1);
    assert_eq!(caller.client.next_timeout(Instant::now()), Duration::MAX);
    caller.round_trips.clear();
    caller.run_udp_only();
    assert_eq!(
        caller.round_trips.len(),
        1,
        "the caller's socket still works"
    );

    caller.udp.send_to(b"stop", echo).unwrap();
    echo_thread.join().unwrap();
    let server = server.stop();
    assert_eq!(server.evicted, 0, "{server:?}");
}

impl Caller {
    /// A datagram and its echo, with the stopped client still on the poll.
    fn run_udp_only(&mut self) {
        let end = Instant::now() + Duration::from_secs(5);
        self.turn(true);
        while self.round_trips.is_empty() && Instant::now() < end {
            let turned = Instant::now();
            assert_eq!(self.turn(false), Step::Stopped);
            assert!(turned.elapsed() < Duration::from_secs(1));
        }
    }
}
