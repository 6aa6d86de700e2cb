//! Peers for the client, swarm and CLI tests: a small heartbeat answerer on
//! its own thread standing in for a server (and for the original Qt
//! server's unframed welcome text), the `lubdub` binary as a child process,
//! the real server on a thread, and port helpers.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const HEARTBEAT_RESPONSE: [u8; 8] = [1, 0, 0, 0, 8, 0, 0, 0];

/// The welcome the original Qt server sends on accept: 36 bytes, no framing.
pub const WELCOME: &[u8; 36] = b"Welcome to the heartbeat server!!!\r\n";

/// A running fixture server; stops (closing every connection) when dropped.
pub struct Answerer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub accepted: Arc<AtomicU64>,
    /// Every distinct peer address accepted.
    pub peers: Arc<std::sync::Mutex<std::collections::BTreeSet<std::net::IpAddr>>>,
    /// Cleared by [`stop_accepting`](Self::stop_accepting).
    accepting: Arc<AtomicBool>,
    /// The connections that fill the accept queue once it stops accepting.
    filler: Vec<std::net::TcpStream>,
    thread: Option<JoinHandle<()>>,
}

impl Answerer {
    /// Answers every 8 bytes received with a heartbeat response.
    pub fn heartbeats(addr: SocketAddr) -> Answerer {
        Answerer::start(addr, None, 8, &HEARTBEAT_RESPONSE)
    }

    /// Like the original Qt server: 36 bytes of unframed text on accept,
    /// then heartbeat responses.
    pub fn with_welcome(addr: SocketAddr) -> Answerer {
        Answerer::start(addr, Some(WELCOME), 8, &HEARTBEAT_RESPONSE)
    }

    /// Accepts and reads, never answers.
    pub fn silent(addr: SocketAddr) -> Answerer {
        Answerer::start(addr, None, 8, b"")
    }

    /// Answers every `unit` bytes received with `reply` (a non-lubdub server,
    /// e.g. Redis inline PING → +PONG).
    pub fn start(
        addr: SocketAddr,
        welcome: Option<&'static [u8]>,
        unit: usize,
        reply: &'static [u8],
    ) -> Answerer {
        Answerer::on(bind_retrying(addr), welcome, unit, reply)
    }

    /// Answers heartbeats on 127.0.0.1 with a listen backlog of 1, so that
    /// once it [stops accepting](Self::stop_accepting) new connects hang
    /// while the connections it has keep working.
    pub fn heartbeats_backlog_one() -> Answerer {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        socket.listen(1).unwrap();
        Answerer::on(socket.into(), None, 8, &HEARTBEAT_RESPONSE)
    }

    /// Stops accepting and fills the accept queue with connections of its
    /// own: from then on the kernel drops every SYN to the port (a full
    /// accept queue drops the SYN, no RST), so a connect hangs in SYN_SENT
    /// retransmitting — the fault of a server that keeps its connections
    /// but takes no new ones, made without root or a firewall.
    pub fn stop_accepting(&mut self) {
        self.accepting.store(false, Ordering::Release);
        // The loop polls every 10 ms; after this it accepts nothing more.
        std::thread::sleep(Duration::from_millis(50));
        while self.filler.len() < 64 {
            match std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(300)) {
                Ok(stream) => self.filler.push(stream),
                Err(_) => return, // the queue is full: this SYN was dropped
            }
        }
        panic!("the accept queue of {} never filled", self.addr);
    }

    fn on(
        std_listener: std::net::TcpListener,
        welcome: Option<&'static [u8]>,
        unit: usize,
        reply: &'static [u8],
    ) -> Answerer {
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let peers = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let accepting = Arc::new(AtomicBool::new(true));
        let (stop2, accepted2, peers2) = (stop.clone(), accepted.clone(), peers.clone());
        let accepting2 = accepting.clone();
        let thread = std::thread::spawn(move || {
            let listener = TcpListener::from_std(std_listener);
            let flags = Flags {
                stop: &stop2,
                accepting: &accepting2,
            };
            serve(listener, welcome, unit, reply, flags, &accepted2, &peers2)
        });
        Answerer {
            addr,
            stop,
            accepted,
            peers,
            accepting,
            filler: Vec::new(),
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Answerer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What the serving loop is told from outside.
struct Flags<'a> {
    stop: &'a AtomicBool,
    accepting: &'a AtomicBool,
}

fn serve(
    mut listener: TcpListener,
    welcome: Option<&[u8]>,
    unit: usize,
    reply: &[u8],
    flags: Flags<'_>,
    accepted: &AtomicU64,
    peers: &std::sync::Mutex<std::collections::BTreeSet<std::net::IpAddr>>,
) {
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(1024);
    // Per connection: the stream and the count of request bytes not yet answered.
    let mut conns: HashMap<usize, (TcpStream, usize)> = HashMap::new();
    let mut next = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let answers = reply.repeat(8192);
    while !flags.stop.load(Ordering::Acquire) {
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        for event in events.iter() {
            if event.token() == LISTENER {
                while flags.accepting.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((mut stream, peer)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            peers.lock().unwrap().insert(peer.ip());
                            if let Some(w) = welcome {
                                let _ = stream.write_all(w);
                            }
                            poll.registry()
                                .register(&mut stream, Token(next), Interest::READABLE)
                                .unwrap();
                            conns.insert(next, (stream, 0));
                            next += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = event.token().0;
            let mut close = false;
            if let Some((stream, pending)) = conns.get_mut(&key) {
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => {
                            close = true;
                            break;
                        }
                        Ok(n) => {
                            *pending += n;
                            let whole = (*pending / unit).min(8192);
                            *pending -= whole * unit;
                            // Loopback send buffers are large; a short write
                            // here would only under-answer, which the tests see.
                            let _ = stream.write_all(&answers[..whole * reply.len()]);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
            }
            if close {
                conns.remove(&key);
            }
        }
    }
}

/// A port that was free a moment ago, on 127.0.0.1.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A child process whose stderr lines are collected, each with the instant
/// it was read; killed when dropped.
pub struct Child {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(std::time::Instant, String)>,
    pub seen: Vec<(std::time::Instant, String)>,
}

impl Child {
    /// `lubdub ARGS`.
    pub fn spawn(args: &[&str]) -> Child {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lubdub"));
        command.args(args);
        Child::from_command(command)
    }

    /// Any command whose stderr lines are to be collected.
    pub fn from_command(mut command: std::process::Command) -> Child {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lubdub");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send((std::time::Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Child {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// `lubdub server --listen 127.0.0.1:0 ARGS`, and the address it logged
    /// (`listening on ADDR`).
    pub fn server(args: &[&str]) -> (Child, SocketAddr) {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lubdub"));
        command
            .args(["server", "--listen", "127.0.0.1:0"])
            .args(args);
        Child::listening(command)
    }

    /// Spawns `command` (a `lubdub server`) and waits for its address.
    pub fn listening(command: std::process::Command) -> (Child, SocketAddr) {
        let mut child = Child::from_command(command);
        let line = child
            .wait_for_line("listening on ", Duration::from_secs(10))
            .expect("no 'listening on' line")
            .1;
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        (child, addr)
    }

    /// Waits up to `timeout` for a stderr line containing `needle` that has
    /// not been returned before; returns when it was read.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Option<std::time::Instant> {
        self.wait_for_line(needle, timeout).map(|(at, _)| at)
    }

    /// Like [`wait_for`](Self::wait_for), with the line itself.
    pub fn wait_for_line(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> Option<(std::time::Instant, String)> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    let hit = line.contains(needle);
                    self.seen.push((at, line.clone()));
                    if hit {
                        return Some((at, line));
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Like [`wait_for_line`](Self::wait_for_line), panicking when no such
    /// line comes.
    pub fn expect_line(&mut self, needle: &str, timeout: Duration) -> String {
        match self.wait_for_line(needle, timeout) {
            Some((_, line)) => line,
            None => panic!(
                "no line containing {needle:?} within {timeout:?}; saw:\n{}",
                self.log()
            ),
        }
    }

    /// Moves every line read so far into `seen`, without waiting; returns
    /// how many there were.
    pub fn drain(&mut self) -> usize {
        let before = self.seen.len();
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.len() - before
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        unsafe_kill(self.child.id(), signal);
    }

    /// Waits up to `timeout` for the process to exit; kills it and panics
    /// if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("lubdub did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.signal(15);
        let status = self.child.wait().ok()?;
        // Drain what is left for the record.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        status.code()
    }

    /// Everything the process wrote to stdout, once it has closed it.
    pub fn stdout_text(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        self.child
            .stdout
            .take()
            .expect("stdout taken once")
            .read_to_string(&mut text)
            .expect("read stdout");
        text
    }

    pub fn log(&self) -> String {
        self.seen
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, signal: i32) {
    // `kill` is in procps on every machine that runs these tests; it saves an
    // unsafe libc call in test code.
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Binds, retrying for a while on "address in use" the way a restarted
/// server would while its old connections are still closing.
fn bind_retrying(addr: SocketAddr) -> std::net::TcpListener {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("fixture: bind {addr}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("fixture: bind {addr}: {e}"),
        }
    }
}

/// A free port on 127.0.0.1 *below* the ephemeral range, for a server that
/// must be restarted on the same port: between stop and restart an ephemeral
/// port could be handed to some other test's outgoing connection, and the
/// restart could not bind.
pub fn restartable_port() -> SocketAddr {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let seed = std::process::id() as u64 * 7919
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    let span = (low.saturating_sub(10_000)).max(1) as u64;
    for i in 0..span {
        let port = 10_000 + ((seed + i * 104_729) % span) as u16;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap();
        }
    }
    panic!("no free port below {low}");
}

/// Counts accepted connections from inside a real lubdub server.
pub struct CountAccepts(pub Arc<AtomicU64>);

impl lubdub::server::Handler for CountAccepts {
    type State = ();
    fn on_connect(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        _id: lubdub::server::ConnId,
        _peer: SocketAddr,
    ) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The real lubdub server (the library's `Server`) on its own thread,
/// counting accepts.
pub struct Lubdub {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicU64>,
    running: super::Running<CountAccepts>,
}

impl Lubdub {
    /// Listens on `addr` (port 0 for any), evicting after `interval × misses`;
    /// retries the bind for a while, as a restarted server would.
    pub fn start(addr: SocketAddr, interval: Duration, misses: u32) -> Lubdub {
        let accepted = Arc::new(AtomicU64::new(0));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let running = loop {
            let tweak = |c: &mut lubdub::server::Config| {
                c.listen = addr;
                c.interval = interval;
                c.misses = misses;
            };
            match super::try_start(CountAccepts(accepted.clone()), tweak) {
                Ok(running) => break running,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("server: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("server: {e}"),
            }
        };
        Lubdub {
            addr: running.addr,
            accepted,
            running,
        }
    }

    /// A server on any port with a 5 s × 6 liveness rule (nothing is evicted
    /// in a short test unless the client really goes quiet).
    pub fn any_port() -> Lubdub {
        Lubdub::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Duration::from_secs(5),
            6,
        )
    }

    /// Stops the server (closing its listener and every connection) and
    /// returns its final stats.
    pub fn stop(self) -> lubdub::server::Stats {
        *self.running.stop().stats()
    }
}
