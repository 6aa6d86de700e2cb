//! Shared fixtures for the loopback tests: an in-process server on its own
//! thread, small blocking-socket helpers, and (in `peers`) stand-in servers
//! and the binary as a child process.
#![allow(dead_code)] // each test binary uses a different subset

pub mod peers;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lubdub::server::{Config, Handler, Server, Stats, Step};
use lubdub::shutdown::ShutdownHandle;

pub const REQUEST: [u8; 8] = [0, 0, 0, 0, 8, 0, 0, 0];
pub const RESPONSE: [u8; 8] = [1, 0, 0, 0, 8, 0, 0, 0];

/// A server running on a thread; stop it to get it back (stats, handler).
pub struct Running<H: Handler + Send + 'static> {
    pub addr: SocketAddr,
    stop: ShutdownHandle,
    /// The counters as of the end of the server's last turn.
    live: Arc<Mutex<Stats>>,
    thread: Option<JoinHandle<Server<H>>>,
}

impl<H: Handler + Send + 'static> Running<H> {
    /// The counters while the server runs, as of the end of its last turn:
    /// poll them (see [`eventually`]) rather than expect an effect at once.
    pub fn stats_now(&self) -> Stats {
        *self.live.lock().unwrap()
    }

    pub fn stop(mut self) -> Server<H> {
        self.stop.shutdown();
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("server thread panicked")
    }
}

impl<H: Handler + Send + 'static> Drop for Running<H> {
    /// Stops the server and waits until it has closed everything, so a test
    /// can rebind its port straight away.
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a server on 127.0.0.1 with an ephemeral port; `tweak` adjusts the
/// config.
pub fn start<H: Handler + Send + 'static>(
    handler: H,
    tweak: impl FnOnce(&mut Config),
) -> Running<H> {
    try_start(handler, tweak).unwrap_or_else(|e| panic!("server: {e}"))
}

/// [`start`], returning the error when the server cannot bind.
pub fn try_start<H: Handler + Send + 'static>(
    handler: H,
    tweak: impl FnOnce(&mut Config),
) -> Result<Running<H>, lubdub::server::ServerError> {
    let _ = lubdub::limits::raise_file_limit();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    tweak(&mut config);
    let mut server = Server::bind(config, handler)?;
    let (addr, stop) = (server.local_addr(), server.shutdown_handle());
    let live = Arc::new(Mutex::new(Stats::default()));
    let published = live.clone();
    let thread = std::thread::spawn(move || {
        // `run`, publishing the counters after every turn.
        while server.poll_once(None).expect("run") == Step::Running {
            *published.lock().unwrap() = *server.stats();
        }
        server
    });
    Ok(Running {
        addr,
        stop,
        live,
        thread: Some(thread),
    })
}

/// Fast settings for timing tests: 50 ms × 3.
pub fn fast(config: &mut Config) {
    config.interval = Duration::from_millis(50);
    config.misses = 3;
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads exactly `n` bytes or panics after the socket's read timeout.
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read");
    buf
}

/// Blocks until the peer closes; returns how long that took, or `None` if
/// the connection is still open after `limit`. Any bytes read are ignored.
pub fn wait_closed(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Some(start.elapsed()), // reset counts as closed
        }
    }
    None
}

/// Sends one heartbeat and asserts the exact reply.
pub fn ping(s: &mut TcpStream) {
    s.write_all(&REQUEST).expect("write");
    assert_eq!(read_n(s, 8), RESPONSE);
}

/// Polls `cond` until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}
