//! A presence server: who is online, and why each peer left.
//!
//! Shows a handler with per-connection state (the peer's name and when it
//! came), a greeting sent from `on_connect`, replies from `on_data`, a
//! broadcast to everyone when someone arrives or leaves, and close reasons
//! — a peer that goes silent is evicted like any other.
//!
//! ```text
//! cargo run --example presence -- --listen 127.0.0.1:8898
//! ```
//!
//! A peer names itself with a data frame `name ALICE`; every peer gets
//! `ALICE is here` and, later, `ALICE left: <reason>`. `who` is answered
//! with the names online. Heartbeats are answered as by any lubdub server,
//! so `lubdub client` keeps a peer online. `--secs N` stops the server
//! after N seconds (it runs until killed otherwise).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lubdub::server::{CloseReason, Config, ConnId, Context, Handler, Server};
use lubdub::Step;

/// What the server keeps per connection, in the connection's own slot.
#[derive(Default)]
struct Peer {
    name: Option<String>,
    since: Option<Instant>,
}

struct Presence;

impl Handler for Presence {
    type State = Peer;

    fn on_connect(&mut self, ctx: &mut Context<'_, Peer>, id: ConnId, peer: SocketAddr) {
        println!("connect {peer} as {id}");
        if let Some(state) = ctx.state_mut(id) {
            state.since = Some(Instant::now());
        }
        let greeting = format!("hello; {} online; say `name YOU`", ctx.open());
        let _ = ctx.send(id, greeting.as_bytes());
    }

    fn on_data(&mut self, ctx: &mut Context<'_, Peer>, id: ConnId, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        if let Some(name) = text.strip_prefix("name ") {
            let name = name.trim().to_string();
            println!("{id} is {name}");
            let _ = ctx.broadcast(format!("{name} is here").as_bytes());
            if let Some(state) = ctx.state_mut(id) {
                state.name = Some(name);
            }
        } else if text == "who" {
            let names: Vec<&str> = ctx
                .states()
                .filter_map(|(_, peer)| peer.name.as_deref())
                .collect();
            let answer = format!("online: {}", names.join(", "));
            let _ = ctx.send(id, answer.as_bytes());
        } else {
            let _ = ctx.send(id, b"unknown command; try `name YOU` or `who`");
        }
    }

    fn on_close(
        &mut self,
        ctx: &mut Context<'_, Peer>,
        id: ConnId,
        peer: Peer,
        reason: CloseReason,
    ) {
        let name = peer.name.unwrap_or_else(|| format!("{id}"));
        let stayed = peer.since.map_or(Duration::ZERO, |t| t.elapsed());
        println!("{name} left after {stayed:.1?}: {reason}");
        if !matches!(reason, CloseReason::Shutdown) {
            let _ = ctx.broadcast(format!("{name} left: {reason}").as_bytes());
        }
    }
}

/// `--listen ADDR` and `--secs N`.
fn args() -> Result<(SocketAddr, Option<Duration>), String> {
    let (mut listen, mut secs) = ("127.0.0.1:8898".to_string(), None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value,
            "--secs" => secs = Some(value.parse::<f64>().map_err(|e| format!("--secs: {e}"))?),
            _ => return Err(format!("unknown flag {flag} (use --listen ADDR, --secs N)")),
        }
    }
    let listen = listen.parse().map_err(|e| format!("--listen: {e}"))?;
    Ok((listen, secs.map(Duration::from_secs_f64)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listen, run_for) = args()?;
    let config = Config {
        listen,
        interval: Duration::from_secs(1),
        misses: 3,
        ..Config::default()
    };
    let mut server = Server::bind(config, Presence)?;
    println!("listening on {}", server.local_addr());
    let started = Instant::now();
    loop {
        if run_for.is_some_and(|limit| started.elapsed() >= limit) {
            server.commands().shutdown();
        }
        if server.poll_once(Some(Duration::from_millis(100)))? == Step::Stopped {
            break;
        }
    }
    println!("stopped: {}", server.stats());
    Ok(())
}
