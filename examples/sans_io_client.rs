//! A heartbeat client written from the sans-IO pieces alone: the state
//! machine `lubdub::client::machine::Machine`, the wire format in
//! `lubdub::protocol`, and a non-blocking std `TcpStream` — no mio, no
//! `Client`. It is the smallest shell around the machine, for a program
//! that has an event loop of its own to put one in.
//!
//! What a shell owes the machine, and where this one does it:
//!
//! - time in ticks, from one `Clock`: `now` rounded down for timers,
//!   `seen` rounded up for what arrived (`tick_range`);
//! - after every `handle_*`, every action pulled with `poll_action`;
//! - per read `Proof::Bytes`, per complete frame `Proof::Reply` or
//!   `Proof::Frame` (`read`);
//! - a reply to each heartbeat request the server sends (lubdub's own
//!   server never sends one; others probe a quiet peer this way);
//! - the socket read before `handle_timeout`, so that a reply already in
//!   the kernel is seen before the server can be called silent.
//!
//! A lubdub server runs on a thread beside it. std has no readiness
//! events, so the loop sleeps in short steps and reads each time; connects
//! block (for at most the connect timeout).
//!
//! ```text
//! cargo run --example sans_io_client -- --secs 3
//! ```
//!
//! Results go to stdout, one event a line (a run of the above; a round
//! trip here includes up to `STEP` of the loop's own sleep):
//!
//! ```text
//! server listening on 127.0.0.1:38015
//! connected
//! heartbeat sent
//! reply after 5.12121ms
//! heartbeat sent
//! reply after 5.212265ms
//! ...
//! done: 30 heartbeats, 30 replies, 0 requests answered
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lubdub::client::machine::{Action, Config, Machine, Proof, Reason};
use lubdub::protocol::{
    Decoder, FrameType, Kind, DEFAULT_MAX_FRAME, HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE,
};
use lubdub::rng::Rng;
use lubdub::server::Server;
use lubdub::time::{Clock, Tick};

/// The longest the loop sleeps before it looks at the socket again.
const STEP: Duration = Duration::from_millis(5);

/// The IO half: the socket, the bytes on their way, and counters.
struct Shell {
    server: SocketAddr,
    stream: Option<TcpStream>,
    decoder: Decoder,
    /// Bytes the kernel has not taken yet.
    out: Vec<u8>,
    /// When the oldest unanswered heartbeat went out.
    sent_at: Vec<Instant>,
    heartbeats: u64,
    replies: u64,
    answered: u64,
}

impl Shell {
    /// Reads everything the kernel holds, telling the machine what arrived.
    fn read(&mut self, machine: &mut Machine, seen: Tick) {
        let mut buf = [0u8; 4096];
        while let Some(stream) = self.stream.as_mut() {
            let n = match stream.read(&mut buf) {
                Ok(0) => return machine.handle_closed(seen, Reason::PeerClosed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return machine.handle_closed(seen, Reason::Io(e.kind())),
            };
            // Once per read: proof of life only for a lenient machine.
            machine.handle_received(seen, Proof::Bytes);
            let Shell {
                out,
                sent_at,
                replies,
                answered,
                ..
            } = self;
            let fed = self.decoder.feed(&buf[..n], DEFAULT_MAX_FRAME, |frame| {
                // Once per complete frame.
                let proof = match frame.kind {
                    Kind::Known(FrameType::HeartbeatResponse) => {
                        *replies += 1;
                        if !sent_at.is_empty() {
                            println!("reply after {:?}", sent_at.remove(0).elapsed());
                        }
                        Proof::Reply
                    }
                    Kind::Known(FrameType::HeartbeatRequest) => {
                        // The server asks whether we are alive: answer.
                        *answered += 1;
                        println!("answered a heartbeat request");
                        out.extend_from_slice(&HEARTBEAT_RESPONSE);
                        Proof::Frame
                    }
                    Kind::Known(FrameType::Data) | Kind::Reserved(_) => Proof::Frame,
                };
                machine.handle_received(seen, proof);
            });
            if let Err(e) = fed {
                return machine.handle_closed(seen, Reason::Protocol(e));
            }
        }
    }

    /// Writes what the kernel takes now.
    fn flush(&mut self, machine: &mut Machine, now: Tick) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        while !self.out.is_empty() {
            match stream.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return machine.handle_closed(now, Reason::Io(e.kind())),
            }
        }
    }

    /// Carries out one action of the machine's.
    fn act(&mut self, action: Action, machine: &mut Machine, clock: &Clock) {
        let now = clock.now();
        match action {
            Action::Connect => {
                machine.handle_connect_started(now);
                let timeout = machine.config().duration(machine.config().connect_timeout);
                match TcpStream::connect_timeout(&self.server, timeout)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                {
                    Ok(stream) => {
                        self.stream = Some(stream);
                        println!("connected");
                        machine.handle_connected(clock.tick_ceil(Instant::now()));
                    }
                    Err(e) => machine.handle_connect_failed(clock.now(), e.kind()),
                }
            }
            Action::SendHeartbeat { .. } => {
                self.heartbeats += 1;
                self.sent_at.push(Instant::now());
                self.out.extend_from_slice(&HEARTBEAT_REQUEST);
                println!("heartbeat sent");
            }
            Action::MissedReply { unanswered } => {
                println!("{unanswered} heartbeat(s) unanswered for an interval")
            }
            Action::SkippedHeartbeats { count } => println!("{count} heartbeat(s) skipped"),
            Action::Disconnect { reason, retry_in } => {
                self.drop_stream();
                let retry_in = machine.config().duration(retry_in);
                println!("disconnected: {reason}; reconnecting in {retry_in:?}");
            }
            Action::ConnectFailed { reason, retry_in } => {
                self.drop_stream();
                let retry_in = machine.config().duration(retry_in);
                println!("no connection, retry in {retry_in:?}: {reason}");
            }
        }
    }

    fn drop_stream(&mut self) {
        self.stream = None;
        self.decoder = Decoder::new();
        self.out.clear();
        self.sent_at.clear();
    }
}

/// `--secs N`, optional.
fn run_length() -> Result<Duration, String> {
    let mut args = std::env::args().skip(1);
    let mut secs = 3.0;
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--secs", Some(value)) => secs = value.parse().map_err(|e| format!("--secs: {e}"))?,
            _ => {
                return Err(format!(
                    "unknown flag or missing value: {flag} (use --secs N)"
                ))
            }
        }
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run_for = run_length()?;
    let mut server = Server::bind(
        lubdub::server::Config {
            listen: "127.0.0.1:0".parse()?,
            ..lubdub::server::Config::default()
        },
        (),
    )?;
    let (addr, stop_server) = (server.local_addr(), server.shutdown_handle());
    let server_thread = std::thread::spawn(move || server.run());
    println!("server listening on {addr}");

    // The rules in human units, converted to ticks once.
    let tick = Duration::from_millis(1);
    let config = Config::from_durations(tick, Duration::from_millis(100), 5)
        .with_connect_timeout(Duration::from_secs(1))
        .with_backoff(Duration::from_millis(50), Duration::from_millis(500));
    let clock = Clock::start(tick);
    let mut machine = Machine::new(config, Rng::from_entropy());
    let mut shell = Shell {
        server: addr,
        stream: None,
        decoder: Decoder::new(),
        out: Vec::new(),
        sent_at: Vec::new(),
        heartbeats: 0,
        replies: 0,
        answered: 0,
    };
    machine.start(clock.now());
    let end = Instant::now() + run_for;
    while Instant::now() < end {
        let (now, seen) = clock.tick_range(Instant::now());
        // Evidence before verdict: what arrived is read before the
        // machine looks at its deadlines.
        shell.read(&mut machine, seen);
        machine.handle_timeout(now);
        while let Some(action) = machine.poll_action() {
            shell.act(action, &mut machine, &clock);
        }
        shell.flush(&mut machine, now);
        // A write that failed has ended the connection: carried out now.
        while let Some(action) = machine.poll_action() {
            shell.act(action, &mut machine, &clock);
        }
        // Until the machine's next deadline, looking at the socket at
        // least every STEP.
        let wait = machine
            .poll_timeout()
            .map_or(STEP, |at| clock.until(at, Instant::now()).min(STEP));
        std::thread::sleep(wait);
    }
    println!(
        "done: {} heartbeats, {} replies, {} requests answered",
        shell.heartbeats, shell.replies, shell.answered
    );
    stop_server.shutdown();
    server_thread.join().expect("server thread panicked")?;
    Ok(())
}
