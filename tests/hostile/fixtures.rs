//! The hostile peers, the good peers beside them that time their round
//! trips, and what the hostile tests measure.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{connect, ping, REQUEST, RESPONSE};
use lubdub::server::{ConnId, Handler, Stats};

/// Held for the whole of a test so that tests run one after another.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A failed test poisons the lock; the next one may still run.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The close counters that are not zero, by name: a test states everything
/// it expects to be counted, so anything else counted fails it.
pub fn closes(s: &Stats) -> Vec<(&'static str, u64)> {
    [
        ("evicted", s.evicted),
        ("closed_by_peer", s.closed_by_peer),
        ("protocol_errors", s.protocol_errors),
        ("rejected", s.rejected),
        ("slow_readers", s.slow_readers),
        ("over_budget", s.over_budget),
        ("io_errors", s.io_errors),
        ("closed_by_request", s.closed_by_request),
    ]
    .into_iter()
    .filter(|&(_, n)| n > 0)
    .collect()
}

/// The data frame type.
pub const DATA: i32 = 2;

/// A frame header, written out by hand: type and total length, both
/// little-endian i32.
pub fn header(ty: i32, len: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&ty.to_le_bytes());
    h[4..].copy_from_slice(&(len as i32).to_le_bytes());
    h
}

/// Well-behaved peers driven from one thread: every `period` each sends a
/// heartbeat, then every reply is read. A round's round trip runs from its
/// first write to its last reply, and is filed under the phase the test had
/// set when the round began. A missing or wrong reply ends the run.
pub struct GoodPeers {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Rounds, Vec<TcpStream>)>,
}

/// Rounds completed in one phase, and the slowest.
#[derive(Debug, Default, Clone, Copy)]
pub struct Phase {
    pub rounds: u32,
    pub max_rtt: Duration,
}

#[derive(Debug)]
pub struct Rounds {
    /// Before, during and after the fault.
    pub phases: [Phase; 3],
    /// The first failure: which peer, in which phase, what happened.
    pub failure: Option<String>,
}

impl GoodPeers {
    /// Connects `n` peers (each answered once before this returns) and
    /// starts their rounds in phase 0.
    pub fn start(addr: SocketAddr, n: usize, period: Duration) -> GoodPeers {
        let mut peers: Vec<TcpStream> = (0..n).map(|_| connect(addr)).collect();
        for p in peers.iter_mut() {
            ping(p);
            p.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let phase = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (phase2, stop2) = (phase.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut rounds = Rounds {
                phases: [Phase::default(); 3],
                failure: None,
            };
            while !stop2.load(Ordering::Relaxed) {
                let p = phase2.load(Ordering::Relaxed);
                let began = Instant::now();
                for (i, peer) in peers.iter_mut().enumerate() {
                    if let Err(e) = peer.write_all(&REQUEST) {
                        rounds.failure = Some(format!("peer {i}, phase {p}: write: {e}"));
                        return (rounds, peers);
                    }
                }
                for (i, peer) in peers.iter_mut().enumerate() {
                    let mut reply = [0u8; 8];
                    if let Err(e) = peer.read_exact(&mut reply) {
                        rounds.failure = Some(format!("peer {i}, phase {p}: no reply: {e}"));
                        return (rounds, peers);
                    }
                    if reply != RESPONSE {
                        rounds.failure = Some(format!("peer {i}, phase {p}: got {reply:?}"));
                        return (rounds, peers);
                    }
                }
                let rtt = began.elapsed();
                let phase = &mut rounds.phases[p];
                phase.rounds += 1;
                phase.max_rtt = phase.max_rtt.max(rtt);
                std::thread::sleep(period.saturating_sub(began.elapsed()));
            }
            (rounds, peers)
        });
        GoodPeers {
            phase,
            stop,
            thread,
        }
    }

    /// Files the rounds that begin from now on under `phase` (0..3).
    pub fn enter(&self, phase: usize) {
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// Stops the rounds. The peers stay connected until the caller drops
    /// them, so a server stopped first does not count them as closed.
    pub fn finish(self) -> (Rounds, Vec<TcpStream>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("good peers panicked")
    }
}

/// Connects and sends `bytes` one at a time, `every` apart (starting over
/// at the end), until the server closes the connection. Returns how long
/// after the moment before connect the close was seen (`None` if not within
/// `limit`) and how many reply bytes came before it.
pub fn trickle(
    addr: SocketAddr,
    bytes: &[u8],
    every: Duration,
    limit: Duration,
) -> (Option<Duration>, usize) {
    let started = Instant::now();
    let mut s = connect(addr);
    let mut replies = 0;
    let mut buf = [0u8; 64];
    for i in 0.. {
        if s.write_all(&[bytes[i % bytes.len()]]).is_err() {
            return (Some(started.elapsed()), replies);
        }
        // Wait for the next byte's turn by reading: a close is seen at once.
        let next = started + every * (i as u32 + 1);
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) => return (Some(started.elapsed()), replies),
                Ok(n) => replies += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return (Some(started.elapsed()), replies),
            }
        }
        if started.elapsed() > limit {
            return (None, replies);
        }
    }
    unreachable!()
}

/// Closes `s` abortively (`SO_LINGER` 0): the peer gets a reset instead of
/// a FIN, as from a killed proxy or a host that rebooted.
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// One `read`, retried when interrupted: a blocking read with a timeout
/// fails with EINTR after the process is stopped and continued, even with
/// no signal handler (signal(7)).
pub fn read_once(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// Whether the server has closed `s` (EOF or reset), without waiting.
pub fn is_closed(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let closed = match s.read(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => panic!("unexpected bytes from the server"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// A handler that wants data payloads (`WANTS_DATA` left at its default)
/// and counts them and their bytes.
#[derive(Default, Clone)]
pub struct WantsData {
    pub frames: Arc<AtomicU64>,
    pub bytes: Arc<AtomicU64>,
}

impl Handler for WantsData {
    type State = ();
    fn on_data(&mut self, _ctx: &mut lubdub::server::Context<'_, ()>, _id: ConnId, payload: &[u8]) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
    }
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// CPU time (user + system) process `pid` has used so far, to the kernel's
/// clock tick (10 ms on most systems).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces and
    // parentheses) begin with the state, field 3; utime and stime are
    // fields 14 and 15.
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let ticks: u64 = after_comm
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse::<u64>().unwrap())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// The value of `name=` in a log line (e.g. the stats line).
pub use crate::common::log_value as field;

/// A hostile *server*: accepts every connection and writes heartbeat
/// requests at it as fast as it can. Unless `reads`, it never reads a
/// byte, so every reply the client owes stays with the client. With
/// `reads`, a second thread per connection reads everything and counts the
/// client's own heartbeat requests among its replies. `cap` bounds the
/// bytes written per connection (the flood then stops, the connection
/// stays open).
pub struct FloodingServer {
    pub addr: SocketAddr,
    /// Connections accepted.
    pub accepted: Arc<AtomicU64>,
    /// Request bytes written, over all connections.
    pub written: Arc<AtomicU64>,
    /// Heartbeat requests the client sent (counted only with `reads`).
    pub client_requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FloodingServer {
    pub fn start(reads: bool, cap: u64) -> FloodingServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let client_requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, w, c, s) = (
            accepted.clone(),
            written.clone(),
            client_requests.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut flooders = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        a.fetch_add(1, Ordering::Relaxed);
                        conn.set_nonblocking(false).unwrap();
                        // With `reads`, the bytes read back so far: the
                        // flood keeps at most LEAD ahead of them.
                        let read_back = reads.then(|| Arc::new(AtomicU64::new(0)));
                        if let Some(read_back) = &read_back {
                            let reader = conn.try_clone().unwrap();
                            let (c, s, r) = (c.clone(), s.clone(), read_back.clone());
                            flooders.push(std::thread::spawn(move || {
                                count_requests(reader, &c, &r, &s)
                            }));
                        }
                        let (w, s) = (w.clone(), s.clone());
                        flooders.push(std::thread::spawn(move || {
                            flood(conn, cap, &w, read_back.as_deref(), &s)
                        }));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
            for t in flooders {
                let _ = t.join();
            }
        });
        FloodingServer {
            addr,
            accepted,
            written,
            client_requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FloodingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How far a flood that reads may run ahead of what it has read back: 4 MiB
/// of requests, 64 of the client's read budgets. Unbounded, a reader thread
/// starved by a busy machine falls behind its writer, the client's replies
/// back up past its backlog bound and it closes the flooder as a slow
/// reader — rightly, but that is another test's subject.
pub const LEAD: u64 = 4 << 20;

/// Writes requests, 64 KiB at a time, until `cap` bytes, a write error (the
/// client closed) or `stop` — with `read_back`, never more than [`LEAD`]
/// ahead of the bytes read back; then holds the connection until `stop`.
fn flood(
    mut conn: TcpStream,
    cap: u64,
    written: &AtomicU64,
    read_back: Option<&AtomicU64>,
    stop: &AtomicBool,
) {
    // A timeout, so that a client that stops reading cannot hold the
    // thread past `stop`.
    conn.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let burst = REQUEST.repeat(8192);
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if sent >= cap {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        if read_back.is_some_and(|r| sent > r.load(Ordering::Relaxed) + LEAD) {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let want = (cap - sent).min(burst.len() as u64) as usize;
        match conn.write(&burst[..want]) {
            Ok(n) => {
                sent += n as u64;
                written.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// Reads the client's bytes — its replies and its own requests, all
/// 8-byte frames — and counts the requests, until EOF or `stop`.
fn count_requests(mut conn: TcpStream, requests: &AtomicU64, read: &AtomicU64, stop: &AtomicBool) {
    conn.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut held = 0;
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf[held..]) {
            Ok(0) => return,
            Ok(n) => {
                read.fetch_add(n as u64, Ordering::Relaxed);
                held += n;
                let whole = held / 8 * 8;
                let n = buf[..whole]
                    .chunks_exact(8)
                    .filter(|frame| *frame == REQUEST)
                    .count();
                requests.fetch_add(n as u64, Ordering::Relaxed);
                buf.copy_within(whole..held, 0);
                held -= whole;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}
