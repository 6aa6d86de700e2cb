//! Shared fixtures for the loopback tests: an in-process server on its own
//! thread, small blocking-socket helpers, (in `peers`) stand-in servers and
//! the binary as a child process, and (in `netns`) two network namespaces
//! joined by a veth pair that can be cut.
#![allow(dead_code)] // each test binary uses a different subset

pub mod beat;
pub mod json;
pub mod netns;
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
pub struct Running<H: Handler<State: Send> + Send + 'static> {
    pub addr: SocketAddr,
    stop: ShutdownHandle,
    /// The counters as of the end of the server's last turn.
    live: Arc<Mutex<Stats>>,
    thread: Option<JoinHandle<Server<H>>>,
}

impl<H: Handler<State: Send> + Send + 'static> Running<H> {
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

impl<H: Handler<State: Send> + Send + 'static> Drop for Running<H> {
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
pub fn start<H: Handler<State: Send> + Send + 'static>(
    handler: H,
    tweak: impl FnOnce(&mut Config),
) -> Running<H> {
    try_start(handler, tweak).unwrap_or_else(|e| panic!("server: {e}"))
}

/// [`start`], returning the error when the server cannot bind.
pub fn try_start<H: Handler<State: Send> + Send + 'static>(
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

/// Fast settings for timing tests: 50 ms × 3, on a 7 ms tick so that the
/// interval is not a whole number of ticks (7 1/7): a limit computed by
/// rounding the interval first would be 168 ms, not 150 ms.
pub fn fast(config: &mut Config) {
    config.interval = Duration::from_millis(50);
    config.misses = 3;
    config.tick = Some(Duration::from_millis(7));
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

/// A server driven by its caller's loop, as an embedding program does, on
/// 127.0.0.1 with an ephemeral port; `tweak` adjusts the config.
pub fn embedded(tweak: impl FnOnce(&mut Config)) -> Server<()> {
    embedded_with((), tweak)
}

/// [`embedded`] with a handler.
pub fn embedded_with<H: Handler>(handler: H, tweak: impl FnOnce(&mut Config)) -> Server<H> {
    let _ = lubdub::limits::raise_file_limit();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    tweak(&mut config);
    Server::bind(config, handler).expect("bind")
}

/// This process's own socket whose local and peer addresses are these:
/// the far end of a connection a test made to a server (or client) running
/// in the test process, so its socket options can be read back.
pub fn own_socket(local: SocketAddr, peer: SocketAddr) -> std::os::fd::RawFd {
    use std::os::fd::BorrowedFd;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is open for the duration of this check (it
        // is listed in /proc/self/fd and this thread closes nothing).
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&borrowed);
        let addr = |a: std::io::Result<socket2::SockAddr>| a.ok().and_then(|a| a.as_socket());
        if addr(sock.local_addr()) == Some(local) && addr(sock.peer_addr()) == Some(peer) {
            return fd;
        }
    }
    panic!("no socket {local} -> {peer} in this process");
}

/// Calls `poll_once` for about `for_how_long`.
pub fn drive<H: Handler>(server: &mut Server<H>, for_how_long: Duration) {
    let until = Instant::now() + for_how_long;
    while Instant::now() < until {
        server.poll_once(Some(Duration::from_millis(5))).unwrap();
    }
}

/// The value of `key=` in a log line (a stats or stopped line), without
/// its `ms` if it has one.
pub fn log_value(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.strip_suffix("ms").unwrap_or(v).parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// The whole number after the first `"key":` in a JSON report.
pub fn json_number(json: &str, key: &str) -> u64 {
    json.split(&format!("\"{key}\":"))
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {key} in {json}"))
}

/// Milliseconds of the day from a log line's RFC 3339 timestamp.
pub fn log_ms(line: &str) -> Option<u64> {
    let time = line.split('T').nth(1)?;
    let (h, rest) = time.split_once(':')?;
    let (m, rest) = rest.split_once(':')?;
    let secs: f64 = rest
        .get(..rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?)?
        .parse()
        .ok()?;
    Some(
        (h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60) * 1000
            + (secs * 1000.0) as u64,
    )
}

/// `lubdub ARGS` in a mount namespace of its own whose `/etc/hosts` is
/// `hosts`: names resolve as a test needs, and nothing else on the machine
/// sees it. `None` (after saying why) when not root.
pub fn with_hosts(test: &str, hosts: &str, args: &[&str]) -> Option<peers::Child> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping {test}: a private /etc/hosts needs root (a mount namespace)");
        return None;
    }
    let file = std::env::temp_dir().join(format!("lubdub-hosts-{}-{test}", std::process::id()));
    std::fs::write(&file, hosts).unwrap();
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
        .arg(&file)
        .arg(env!("CARGO_BIN_EXE_lubdub"))
        .args(args);
    Some(peers::Child::from_command(command))
}
