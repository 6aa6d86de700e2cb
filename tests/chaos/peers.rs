//! The peers of a chaos run: each kind driven from one thread of its own
//! (one mio poll, many non-blocking sockets), each connection recording what
//! the oracle needs — when it connected, when it handed each complete frame
//! to the kernel, when it went quiet, when it closed itself, and when the
//! server closed it.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lubdub::rng::Rng;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

const REQUEST: [u8; 8] = [0, 0, 0, 0, 8, 0, 0, 0];

/// What a peer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A heartbeat every interval in one write, `TCP_NODELAY`.
    Steady,
    /// Each heartbeat in 2–8 writes spread over up to 100 ms, Nagle on.
    Split,
    /// A steady or split peer that goes quiet at a planned time and keeps
    /// its socket open (and keeps reading).
    Dying { split: bool },
    /// One byte every 120–200 ms: a frame takes longer than the limit.
    Trickle,
    /// Heartbeats as fast as its rate allows, never reads.
    Flood,
    /// Connects, heartbeats 1–5 times, resets (`SO_LINGER` 0), again.
    Churn,
    /// A connect burst's connection: connect, close at once.
    Burst,
}

/// One connection's history. Times are microseconds since the run began,
/// taken just *before* the write that completed a frame: the server cannot
/// have read a frame earlier than that, so "evicted no earlier than the last
/// frame + limit" is checked against a time that is never late.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: Kind,
    pub local: SocketAddr,
    pub connect: i64,
    pub frames: Vec<i64>,
    /// When it went quiet (a dying peer): its last frame was before this.
    pub died: Option<i64>,
    /// When it closed the connection itself (a churner's reset, a burst).
    pub self_closed: Option<i64>,
    /// When it saw the server close it (EOF, reset, a failed write).
    pub server_closed: Option<i64>,
    pub how_closed: Option<String>,
}

impl Record {
    fn new(kind: Kind, local: SocketAddr, connect: i64) -> Record {
        Record {
            kind,
            local,
            connect,
            frames: Vec::new(),
            died: None,
            self_closed: None,
            server_closed: None,
            how_closed: None,
        }
    }

    /// The last complete frame handed over at or before `t` (or the connect).
    pub fn last_frame_before(&self, t: i64) -> i64 {
        let i = self.frames.partition_point(|&f| f <= t);
        if i == 0 {
            self.connect
        } else {
            self.frames[i - 1]
        }
    }

    /// Still meant to be alive at `t`: sending, and not closed by itself.
    pub fn live_at(&self, t: i64) -> bool {
        let quiet = match self.kind {
            Kind::Dying { .. } => self.died.is_some_and(|d| d <= t),
            Kind::Trickle | Kind::Burst => true,
            Kind::Steady | Kind::Split | Kind::Churn | Kind::Flood => false,
        };
        !quiet && self.self_closed.is_none_or(|c| c > t)
    }
}

/// The run's clock: microseconds since `t0`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub t0: Instant,
}

impl Clock {
    pub fn at(&self, i: Instant) -> i64 {
        if i >= self.t0 {
            (i - self.t0).as_micros() as i64
        } else {
            -((self.t0 - i).as_micros() as i64)
        }
    }

    pub fn now(&self) -> i64 {
        self.at(Instant::now())
    }
}

/// What a connection is doing.
enum State {
    /// Heartbeats every interval; the pieces of the current one still to
    /// write (`(when, end offset in the frame)`), empty between frames.
    Beat {
        pieces: Vec<(i64, usize)>,
        written: usize,
        split: bool,
        die_at: Option<i64>,
        /// When the current (or last) heartbeat began.
        began: i64,
    },
    Trickle {
        every: i64,
        written: usize,
    },
    Flood {
        per_tick: usize,
        written: usize,
    },
    Churn {
        beats_left: u64,
        connected: bool,
    },
}

struct Peer {
    /// Its place in the driver's list: its poll token.
    index: usize,
    kind: Kind,
    stream: Option<TcpStream>,
    record: Record,
    state: State,
    next: i64,
    rng: Rng,
}

/// A thread driving peers of some kinds; [`finish`](Self::finish) returns
/// every connection's record.
pub struct Driver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Record>>>,
}

/// What one driver thread runs.
#[derive(Debug, Clone)]
pub struct Spec {
    /// (kind, count); a dying peer's death time comes from `deaths`.
    pub kinds: Vec<(Kind, u64)>,
    pub deaths: Vec<i64>,
    pub seed: u64,
    /// Reconnecting kinds (tricklers, flooders, churners) stop
    /// reconnecting at this time.
    pub reconnect_until: i64,
}

impl Driver {
    pub fn start(addr: SocketAddr, clock: Clock, spec: Spec) -> Driver {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("chaos-peers".into())
            .spawn(move || drive(addr, clock, spec, &stop2))
            .expect("spawn peer driver");
        Driver {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Vec<Record> {
        self.stop.store(true, Ordering::Release);
        self.thread.take().unwrap().join().expect("peer driver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const INTERVAL_US: i64 = 200_000;

fn new_state(kind: Kind, rng: &mut Rng, die_at: Option<i64>) -> State {
    match kind {
        Kind::Steady | Kind::Split | Kind::Dying { .. } => State::Beat {
            pieces: Vec::new(),
            written: 0,
            split: matches!(kind, Kind::Split | Kind::Dying { split: true }),
            die_at,
            began: 0,
        },
        Kind::Trickle => State::Trickle {
            every: rng.between(120_000, 200_000) as i64,
            written: 0,
        },
        // 8–64 KiB a millisecond: enough to fill the server's side in a
        // stop and back its replies up, not enough to own a core.
        Kind::Flood => State::Flood {
            per_tick: 1024 * rng.between(8, 64) as usize,
            written: 0,
        },
        Kind::Churn => State::Churn {
            beats_left: rng.between(1, 5),
            connected: false,
        },
        Kind::Burst => unreachable!("bursts are not driven"),
    }
}

fn drive(addr: SocketAddr, clock: Clock, spec: Spec, stop: &AtomicBool) -> Vec<Record> {
    let mut rng = Rng::new(spec.seed);
    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(1024);
    let mut peers: Vec<Peer> = Vec::new();
    let mut done: Vec<Record> = Vec::new();
    let mut deaths = spec.deaths.iter().copied();
    for &(kind, n) in &spec.kinds {
        for _ in 0..n {
            let mut prng = rng.split();
            let die_at = match kind {
                Kind::Dying { .. } => deaths.next(),
                _ => None,
            };
            // Connected before the run's faults begin: a blocking connect
            // over loopback to a server that is running.
            let std = std::net::TcpStream::connect(addr).expect("connect a chaos peer");
            std.set_nodelay(!matches!(kind, Kind::Split | Kind::Dying { split: true }))
                .unwrap();
            std.set_nonblocking(true).unwrap();
            let local = std.local_addr().unwrap();
            let now = clock.now();
            let mut stream = TcpStream::from_std(std);
            let token = Token(peers.len());
            poll.registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .unwrap();
            let mut state = new_state(kind, &mut prng, die_at);
            if let State::Churn { connected, .. } = &mut state {
                // Connected above; later ones connect without blocking.
                *connected = true;
            }
            let phase = prng.below(INTERVAL_US as u64) as i64;
            peers.push(Peer {
                index: peers.len(),
                kind,
                stream: Some(stream),
                record: Record::new(kind, local, now),
                state,
                next: now + phase,
                rng: prng,
            });
        }
    }
    let mut buf = vec![0u8; 16 * 1024];
    let flood = vec![REQUEST; 8 * 1024].concat();
    while !stop.load(Ordering::Acquire) {
        let now = clock.now();
        let next = peers.iter().map(|p| p.next).min().unwrap_or(now + 10_000);
        let wait = Duration::from_micros((next - now).clamp(0, 10_000) as u64);
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            assert_eq!(e.kind(), ErrorKind::Interrupted, "poll: {e}");
        }
        let now = clock.now();
        for event in events.iter() {
            let Some(peer) = peers.get_mut(event.token().0) else {
                continue;
            };
            if peer.stream.is_none() {
                continue;
            }
            if let State::Churn { connected, .. } = &mut peer.state {
                if !*connected && event.is_writable() {
                    let s = peer.stream.as_ref().unwrap();
                    match (s.take_error(), s.peer_addr()) {
                        (Ok(None), Ok(_)) => {
                            *connected = true;
                            peer.record.connect = now;
                        }
                        (Ok(None), Err(e)) if e.kind() == ErrorKind::NotConnected => {}
                        _ => {
                            // The connect failed (a full backlog): no
                            // connection, nothing to judge. Try again.
                            peer.record.self_closed = Some(now);
                            peer.record.how_closed = Some("connect failed".into());
                            peer.stream = None;
                            peer.next = now + 100_000;
                            continue;
                        }
                    }
                }
            }
            if event.is_readable() || event.is_error() || event.is_read_closed() {
                read_all(peer, &mut buf, now);
            }
        }
        for peer in peers.iter_mut() {
            if peer.next > now {
                continue;
            }
            act(peer, &clock, &poll, &flood, spec.reconnect_until, addr);
        }
        // Records of connections that ended, kept in order.
        for peer in peers.iter_mut() {
            if peer.stream.is_none() && peer.record.local.port() != 0 {
                let fresh = Record::new(peer.kind, "0.0.0.0:0".parse().unwrap(), 0);
                done.push(std::mem::replace(&mut peer.record, fresh));
            }
        }
    }
    let end = clock.now();
    for mut peer in peers {
        if peer.record.local.port() != 0 {
            if peer.record.server_closed.is_none() && peer.record.self_closed.is_none() {
                peer.record.self_closed = Some(end);
            }
            done.push(peer.record);
        }
    }
    done
}

/// Reads (and drops) whatever the server sent; marks a close.
fn read_all(peer: &mut Peer, buf: &mut [u8], now: i64) {
    if matches!(peer.state, State::Flood { .. }) {
        // A flooder never reads; a close shows as a failed write.
        return;
    }
    let Some(stream) = peer.stream.as_mut() else {
        return;
    };
    loop {
        match stream.read(buf) {
            Ok(0) => {
                closed_by_server(peer, now, "eof");
                return;
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::NotConnected => return,
            Err(e) => {
                closed_by_server(peer, now, &e.to_string());
                return;
            }
        }
    }
}

fn closed_by_server(peer: &mut Peer, now: i64, how: &str) {
    peer.record.server_closed = Some(now);
    // The sender's side of the story: data still unacknowledged and the
    // retransmissions this connection needed tell a frame lost or held
    // back on the way from one the server had and missed.
    let sender = peer.stream.as_ref().map(sender_state).unwrap_or_default();
    peer.record.how_closed = Some(format!("{how}; sender {sender}"));
    peer.stream = None;
    // Reconnecting kinds come back after a pause.
    peer.next = now + 100_000;
}

/// The peer's own socket as the kernel sees it: unacknowledged segments,
/// retransmissions, the retransmission timer.
fn sender_state(stream: &TcpStream) -> String {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain integers; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return "tcp_info=?".into();
    }
    format!(
        "unacked={} lost={} retrans={} total_retrans={} backoff={} rto={}ms last_ack_recv={}ms",
        info.tcpi_unacked,
        info.tcpi_lost,
        info.tcpi_retrans,
        info.tcpi_total_retrans,
        info.tcpi_backoff,
        info.tcpi_rto / 1000,
        info.tcpi_last_ack_recv
    )
}

/// Does what is due for one peer.
fn act(peer: &mut Peer, clock: &Clock, poll: &Poll, flood: &[u8], until: i64, addr: SocketAddr) {
    let now = clock.now();
    let Some(stream) = peer.stream.as_mut() else {
        // Reconnect, if this kind does and it is not too late.
        if !matches!(peer.kind, Kind::Trickle | Kind::Flood | Kind::Churn) || now >= until {
            peer.next = i64::MAX;
            return;
        }
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(_) => {
                peer.next = now + 100_000;
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().expect("a connecting socket is bound");
        // Tokens are the peer's index, found again from its place.
        let token = Token(peer.index);
        poll.registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .unwrap();
        peer.record = Record::new(peer.kind, local, now);
        peer.state = new_state(peer.kind, &mut peer.rng, None);
        peer.stream = Some(stream);
        peer.next = now + peer.rng.below(INTERVAL_US as u64) as i64;
        return;
    };
    match &mut peer.state {
        State::Beat {
            pieces,
            written,
            split,
            die_at,
            began,
        } => {
            if pieces.is_empty() {
                if die_at.is_some_and(|d| now >= d) {
                    peer.record.died = Some(now);
                    peer.next = i64::MAX;
                    // Keeps reading: its replies and the server's close.
                    return;
                }
                *pieces = plan_pieces(&mut peer.rng, now, *split);
                *written = 0;
                *began = now;
            }
            while let Some(&(when, end)) = pieces.first() {
                if when > now {
                    break;
                }
                let before = clock.now();
                match stream.write(&REQUEST[*written..end]) {
                    Ok(n) => {
                        *written += n;
                        if *written == end {
                            pieces.remove(0);
                        }
                        if *written == REQUEST.len() {
                            peer.record.frames.push(before);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        closed_by_server(peer, now, &format!("write: {e}"));
                        return;
                    }
                }
            }
            peer.next = match pieces.first() {
                Some(&(when, _)) => when.max(now + 1_000),
                // The next heartbeat an interval after this one began.
                None => *began + INTERVAL_US,
            };
            if peer.next <= now {
                peer.next = now + 1_000;
            }
        }
        State::Trickle { every, written } => {
            let before = clock.now();
            match stream.write(&REQUEST[*written..*written + 1]) {
                Ok(1) => {
                    *written += 1;
                    if *written == REQUEST.len() {
                        *written = 0;
                        peer.record.frames.push(before);
                    }
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    closed_by_server(peer, now, &format!("write: {e}"));
                    return;
                }
            }
            peer.next = now + *every;
        }
        State::Flood { per_tick, written } => {
            let mut left = *per_tick;
            while left > 0 {
                let start = *written % REQUEST.len();
                let chunk = &flood[start..(start + left).min(flood.len())];
                match stream.write(chunk) {
                    Ok(n) => {
                        *written += n;
                        left -= n.min(left);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        closed_by_server(peer, now, &format!("write: {e}"));
                        // A flooder comes back after a longer pause.
                        peer.next = now + 300_000;
                        return;
                    }
                }
            }
            peer.next = now + 1_000;
        }
        State::Churn {
            beats_left,
            connected,
        } => {
            if !*connected {
                peer.next = now + 5_000;
                return;
            }
            if *beats_left == 0 {
                // Reset: SO_LINGER 0, then close.
                let _ = socket2::SockRef::from(&*stream).set_linger(Some(Duration::ZERO));
                let mut stream = peer.stream.take().unwrap();
                let _ = poll.registry().deregister(&mut stream);
                drop(stream);
                peer.record.self_closed = Some(clock.now());
                peer.next = now + peer.rng.below(300_000) as i64;
                return;
            }
            let before = clock.now();
            match stream.write(&REQUEST) {
                Ok(8) => {
                    peer.record.frames.push(before);
                    *beats_left -= 1;
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    closed_by_server(peer, now, &format!("write: {e}"));
                    return;
                }
            }
            peer.next = now + INTERVAL_US;
        }
    }
}

/// When to write each piece of the next heartbeat: one piece now, or 2–8
/// pieces spread over up to 100 ms.
fn plan_pieces(rng: &mut Rng, now: i64, split: bool) -> Vec<(i64, usize)> {
    if !split {
        return vec![(now, REQUEST.len())];
    }
    let k = rng.between(2, 8) as usize;
    // k - 1 distinct cut points in 1..8.
    let mut cuts: Vec<usize> = (1..REQUEST.len()).collect();
    for i in 0..cuts.len() {
        let j = i + rng.below((cuts.len() - i) as u64) as usize;
        cuts.swap(i, j);
    }
    cuts.truncate(k - 1);
    cuts.sort_unstable();
    cuts.push(REQUEST.len());
    let spread = rng.below(100_001) as i64;
    let mut times: Vec<i64> = (1..k)
        .map(|_| rng.below(spread as u64 + 1) as i64)
        .collect();
    times.sort_unstable();
    let mut at = vec![0];
    at.extend(times);
    at.iter()
        .zip(cuts)
        .map(|(&t, end)| (now + t, end))
        .collect()
}

/// A connect burst: `n` connections, each closed at once. Returns their
/// records (connect and close times).
pub fn burst(addr: SocketAddr, clock: Clock, n: u64) -> Vec<Record> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = clock.now();
        // Bounded: a burst inside a stop can fill the backlog, and a SYN
        // that is dropped is retried only after a second.
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let local = s.local_addr().unwrap();
            drop(s);
            let mut r = Record::new(Kind::Burst, local, t);
            r.self_closed = Some(clock.now());
            out.push(r);
        }
    }
    out
}
