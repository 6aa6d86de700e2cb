//! Many well-behaved peers on one thread: each sends a heartbeat every
//! interval and reads its replies, and the fixture records, per peer, the
//! replies it got and whether the server closed it. Used where a test must
//! know that *live* peers were kept (a stalled server, a flood beside them).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{REQUEST, RESPONSE};

/// What one peer saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerLog {
    pub sent: u64,
    pub replies: u64,
    /// When the server closed it (EOF or reset), if it did.
    pub closed_at: Option<Instant>,
    /// Slowest reply, measured from the send of the request it answers.
    pub max_rtt: Duration,
}

/// Heartbeating peers on their own thread.
pub struct Heartbeaters {
    stop: Arc<AtomicBool>,
    /// Peers whose index is in here stop sending (but keep reading).
    pub muted: Arc<Mutex<Vec<bool>>>,
    thread: Option<JoinHandle<Vec<PeerLog>>>,
}

impl Heartbeaters {
    /// `n` peers connected to `addr`, each sending a heartbeat every
    /// `interval` (their phases spread over it), starting at once.
    pub fn start(addr: SocketAddr, n: usize, interval: Duration) -> Heartbeaters {
        let _ = lubdub::limits::raise_file_limit();
        let streams: Vec<TcpStream> = (0..n)
            .map(|_| {
                let s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let muted = Arc::new(Mutex::new(vec![false; n]));
        let (stop2, muted2) = (stop.clone(), muted.clone());
        let thread = std::thread::spawn(move || run(streams, interval, &stop2, &muted2));
        Heartbeaters {
            stop,
            muted,
            thread: Some(thread),
        }
    }

    /// Peer `i` stops sending from now on.
    pub fn mute(&self, i: usize) {
        self.muted.lock().unwrap()[i] = true;
    }

    /// Stops every peer and returns what each saw.
    pub fn finish(mut self) -> Vec<PeerLog> {
        self.stop.store(true, Ordering::Release);
        self.thread.take().unwrap().join().expect("heartbeaters")
    }
}

impl Drop for Heartbeaters {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut streams: Vec<TcpStream>,
    interval: Duration,
    stop: &AtomicBool,
    muted: &Mutex<Vec<bool>>,
) -> Vec<PeerLog> {
    let n = streams.len();
    let start = Instant::now();
    let mut logs = vec![PeerLog::default(); n];
    // Send times of requests in flight, and bytes of a reply read so far.
    let mut in_flight: Vec<std::collections::VecDeque<Instant>> = vec![Default::default(); n];
    let mut partial = vec![0usize; n];
    let mut next_send: Vec<Instant> = (0..n)
        .map(|i| start + interval.mul_f64(i as f64 / n as f64))
        .collect();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        let muted_now = muted.lock().unwrap().clone();
        for i in 0..n {
            let log = &mut logs[i];
            if log.closed_at.is_some() {
                continue;
            }
            if now >= next_send[i] && !muted_now[i] {
                next_send[i] += interval;
                match streams[i].write(&REQUEST) {
                    Ok(8) => {
                        log.sent += 1;
                        in_flight[i].push_back(now);
                    }
                    // Loopback buffers are large; a short or refused write
                    // means the server is gone for this peer.
                    _ => log.closed_at = Some(now),
                }
            }
            loop {
                match streams[i].read(&mut buf) {
                    Ok(0) => {
                        log.closed_at = Some(now);
                        break;
                    }
                    Ok(k) => {
                        for &b in &buf[..k] {
                            assert_eq!(b, RESPONSE[partial[i]], "peer {i}: a stray byte");
                            partial[i] += 1;
                            if partial[i] == RESPONSE.len() {
                                partial[i] = 0;
                                log.replies += 1;
                                if let Some(sent) = in_flight[i].pop_front() {
                                    log.max_rtt = log.max_rtt.max(now - sent);
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        log.closed_at = Some(now);
                        break;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    logs
}
