//! A heartbeat client embedded in a program's own event loop, across a
//! restart of its server.
//!
//! The program owns a `mio::Poll` and a timer of its own (a data frame
//! every `--every-ms`); the client lives on that poll
//! (`Client::new_on`) and is driven from the same loop. A lubdub server
//! runs on a thread beside it; a third of the way through the run it stops,
//! and at half way it is started again on the same port. The output shows
//! sends that succeed, sends refused with `SendError::Closed` while no
//! connection is up, the client's callbacks (`connected`, `disconnected`,
//! `connect_failed`), and the reconnect after the restart.
//!
//! ```text
//! cargo run --example embedded_client -- --secs 3 --every-ms 100
//! ```
//!
//! Results go to stdout, one event a line (a run of the above):
//!
//! ```text
//! server listening on 127.0.0.1:34973
//! connected
//! sent 1
//! ...
//! sent 10
//! server stopped
//! disconnected: server closed the connection
//! no connection, retry in 121ms: connect failed: connection refused
//! send 11 refused: connection closed
//! ...
//! server restarted on 127.0.0.1:34973
//! send 16 refused: connection closed
//! connected
//! sent 17
//! ...
//! sent 30
//! disconnected: closed on purpose
//! done: 2 connects, 4 connect failures, 24 sent, 6 refused
//! ```

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lubdub::client::{Client, ClientConfig, Handler, Outbox, Reason};
use lubdub::server::{Config, Server, ServerError};
use lubdub::shutdown::ShutdownHandle;
use lubdub::{SendError, Step};
use mio::{Events, Poll, Token};

/// The client's stream, and the poll's one waker (the client's shutdown
/// handle and name lookups wake the loop with it); this program has no
/// sockets of its own, only a timer, so it needs no others.
const CLIENT: Token = Token(0);
const WAKER: Token = Token(1);

/// Prints what the client reports.
struct Printer;

impl Handler for Printer {
    fn connected(&mut self, _out: &mut Outbox<'_>) {
        println!("connected");
    }
    fn disconnected(&mut self, reason: &Reason) {
        println!("disconnected: {reason}");
    }
    fn connect_failed(&mut self, reason: &Reason, retry_in: Duration) {
        println!("no connection, retry in {retry_in:?}: {reason}");
    }
}

/// A lubdub server on a thread: stop it to free its port.
struct RunningServer {
    stop: ShutdownHandle,
    thread: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Listens on `addr`; a restart may find the port held a moment longer
    /// by the old listener, so binding is retried for a second.
    fn start(addr: SocketAddr) -> Result<(RunningServer, SocketAddr), ServerError> {
        let config = Config {
            listen: addr,
            interval: Duration::from_millis(100),
            misses: 5,
            ..Config::default()
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut server = loop {
            match Server::bind(config.clone(), ()) {
                Ok(server) => break server,
                Err(ServerError::Bind { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        let (addr, stop) = (server.local_addr(), server.shutdown_handle());
        let thread = std::thread::spawn(move || server.run());
        Ok((RunningServer { stop, thread }, addr))
    }

    fn stop(self) -> Result<(), ServerError> {
        self.stop.shutdown();
        self.thread.join().expect("server thread panicked")
    }
}

/// `--secs N` and `--every-ms N`, each optional.
fn args() -> Result<(Duration, Duration), String> {
    let (mut secs, mut every_ms) = (3.0, 100);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--secs" => secs = value.parse().map_err(|e| format!("--secs: {e}"))?,
            "--every-ms" => every_ms = value.parse().map_err(|e| format!("--every-ms: {e}"))?,
            _ => return Err(format!("unknown flag {flag} (use --secs N, --every-ms N)")),
        }
    }
    Ok((
        Duration::from_secs_f64(secs),
        Duration::from_millis(every_ms),
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (run_for, every) = args()?;
    let (server, addr) = RunningServer::start("127.0.0.1:0".parse()?)?;
    println!("server listening on {addr}");
    let mut server = Some(server);

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    let config = ClientConfig {
        connect: addr.into(),
        interval: Duration::from_millis(100),
        misses: 5,
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..ClientConfig::default()
    };
    let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
    let mut client = Client::new_on(config, Printer, poll.registry(), CLIENT, waker)?;
    let stop = client.shutdown_handle();

    let start = Instant::now();
    let (stop_server_at, restart_at) = (start + run_for / 3, start + run_for / 2);
    let mut next_send = start + every;
    let (mut sent, mut refused, mut n) = (0, 0, 0);
    loop {
        let now = Instant::now();
        // The program's own schedule: a send, the server's stop and
        // restart, the end of the run.
        if now >= next_send {
            n += 1;
            match client.send_data(format!("frame {n}").as_bytes()) {
                Ok(()) => {
                    sent += 1;
                    println!("sent {n}");
                }
                Err(e @ SendError::Closed) => {
                    refused += 1;
                    println!("send {n} refused: {e}");
                }
                Err(e) => return Err(e.into()),
            }
            next_send += every;
        }
        if now >= stop_server_at && server.is_some() && now < restart_at {
            server.take().unwrap().stop()?;
            println!("server stopped");
        }
        if now >= restart_at && server.is_none() {
            let (restarted, _) = RunningServer::start(addr)?;
            server = Some(restarted);
            println!("server restarted on {addr}");
        }
        if now >= start + run_for {
            // From another thread this would be the same call.
            stop.shutdown();
        }

        // The loop proper: block no longer than the client allows, nor
        // past the program's next send.
        let timeout = client
            .next_timeout(now)
            .min(next_send.saturating_duration_since(now));
        poll.poll(&mut events, Some(timeout))?;
        let now = Instant::now();
        for event in events.iter() {
            if client.owns(event.token()) {
                client.handle_event(event, now);
            }
        }
        if client.handle_timeout(now) == Step::Stopped {
            break;
        }
    }
    let stats = client.stats();
    println!(
        "done: {} connects, {} connect failures, {sent} sent, {refused} refused",
        stats.connects, stats.connect_failures
    );
    if let Some(server) = server {
        server.stop()?;
    }
    Ok(())
}
