//! One thread, one `mio::Poll`: a lubdub server, a lubdub client and a UDP
//! echo socket of the program's own, all driven by the program's loop.
//!
//! Each lubdub part says how long the poll may block (`next_timeout`),
//! takes the events it `owns` (`handle_event`) and ends each turn with
//! `handle_timeout`; the program's UDP socket is just another token. No
//! part waits on another: the loop sleeps until the first of them has
//! something to do, and an idle loop costs next to no CPU.
//!
//! ```text
//! cargo run --example one_loop -- --secs 5
//! ```
//!
//! `--secs N` is how long to run (default 5). The client heartbeats
//! the server in the same loop every 200 ms; a thread outside pings the UDP
//! socket every 50 ms and measures the echo's round trip. At the end the
//! program prints what each part did and the loop thread's CPU time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lubdub::client::{Client, ClientConfig};
use lubdub::server::{Config, Server};
use lubdub::Step;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

/// The program's own tokens; lubdub's parts take theirs above them.
const UDP: Token = Token(0);
const WAKER: Token = Token(1);
const CLIENT: Token = Token(10);
const SERVER: Token = Token(100);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run_for = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => Duration::from_secs(5),
        [flag, secs] if flag == "--secs" => {
            Duration::from_secs_f64(secs.parse().map_err(|e| format!("--secs: {e}"))?)
        }
        _ => return Err("use --secs N".into()),
    };

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);

    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        interval: Duration::from_millis(200),
        misses: 5,
        ..Config::default()
    };
    // mio allows one waker per poll: the program makes it, and every
    // lubdub part wakes the loop with it (commands, shutdowns, lookups).
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let mut server = Server::bind_on(config, (), poll.registry(), SERVER, waker.clone())?;

    let config = ClientConfig {
        connect: server.local_addr().into(),
        interval: Duration::from_millis(200),
        misses: 5,
        ..ClientConfig::default()
    };
    let mut client = Client::new_on(config, (), poll.registry(), CLIENT, waker)?;

    let mut udp = UdpSocket::bind("127.0.0.1:0".parse()?)?;
    poll.registry()
        .register(&mut udp, UDP, Interest::READABLE)?;
    let pinger = spawn_pinger(udp.local_addr()?, run_for);

    let started = Instant::now();
    let cpu_before = thread_cpu();
    let mut echoed = 0u64;
    let mut buf = [0u8; 1500];
    while started.elapsed() < run_for {
        let now = Instant::now();
        let timeout = server.next_timeout(now).min(client.next_timeout(now));
        poll.poll(&mut events, Some(timeout))?;
        for event in events.iter() {
            let now = Instant::now();
            if server.owns(event.token()) {
                server.handle_event(event, now);
            } else if client.owns(event.token()) {
                client.handle_event(event, now);
            } else if event.token() == UDP {
                // The program's own socket: drain it (edge-triggered).
                while let Ok((n, from)) = udp.recv_from(&mut buf) {
                    udp.send_to(&buf[..n], from)?;
                    echoed += 1;
                }
            }
        }
        let now = Instant::now();
        server.handle_timeout(now);
        client.handle_timeout(now);
    }
    let cpu = thread_cpu() - cpu_before;
    let elapsed = started.elapsed();
    client.close();
    while client.handle_timeout(Instant::now()) != Step::Stopped {}
    server.commands().shutdown();
    while server.handle_timeout(Instant::now()) != Step::Stopped {}

    let rtts = pinger.join().expect("pinger panicked");
    let client_stats = client.stats();
    let server_stats = server.stats();
    println!(
        "server: heartbeats={} accepted={} pauses={}",
        server_stats.heartbeats, server_stats.accepted, server_stats.pauses
    );
    println!(
        "client: connects={} heartbeats_sent={} replies={} pauses={}",
        client_stats.connects,
        client_stats.heartbeats_sent,
        client_stats.replies,
        client_stats.pauses
    );
    println!(
        "udp: echoed={echoed} rtt_p50={:?} rtt_max={:?}",
        percentile(&rtts, 50),
        percentile(&rtts, 100)
    );
    println!(
        "loop thread cpu: {:?} over {:.1?} ({:.2}% of a core)",
        cpu,
        elapsed,
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Pings `addr` every 50 ms for `run_for` from a thread of its own and
/// returns the round trips it saw.
fn spawn_pinger(addr: SocketAddr, run_for: Duration) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind pinger");
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("read timeout");
        let mut rtts = Vec::new();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        // Stop a little early: the loop stops echoing at run_for.
        while started.elapsed() + Duration::from_millis(200) < run_for {
            let sent = Instant::now();
            socket.send_to(b"ping", addr).expect("send ping");
            if socket.recv_from(&mut buf).is_ok() {
                rtts.push(sent.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        rtts
    })
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[((n - 1) * p / 100).min(n - 1)],
    }
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage through the pointer, to a live
    // local.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
