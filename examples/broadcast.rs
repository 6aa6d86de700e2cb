//! Commands from another thread: a broadcast every second to every peer of
//! a server running on the main thread.
//!
//! The server's loop (`run`) owns every connection; other threads act on
//! them through a `Commands` handle — cheap to clone, `Send`, bounded — which
//! queues the command and wakes the loop. Here a ticker thread broadcasts
//! `tick N` every second and then stops the server.
//!
//! ```text
//! cargo run --example broadcast -- --listen 127.0.0.1:8898 --ticks 10
//! ```
//!
//! `--ticks N` sends N ticks and then stops the server (default 10);
//! `--every-ms N` spaces them (default 1000). Watch it with any lubdub peer, or with
//! `nc 127.0.0.1 8898 | od -c`.

use std::net::SocketAddr;
use std::time::Duration;

use lubdub::server::{CommandError, Config, Server};

/// `--listen ADDR`, `--ticks N`, `--every-ms N`.
fn args() -> Result<(SocketAddr, u32, Duration), String> {
    let (mut listen, mut ticks, mut every_ms) = ("127.0.0.1:8898".to_string(), 10, 1000);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value,
            "--ticks" => ticks = value.parse().map_err(|e| format!("--ticks: {e}"))?,
            "--every-ms" => every_ms = value.parse().map_err(|e| format!("--every-ms: {e}"))?,
            _ => {
                return Err(format!(
                    "unknown flag {flag} (use --listen ADDR, --ticks N, --every-ms N)"
                ))
            }
        }
    }
    let listen = listen.parse().map_err(|e| format!("--listen: {e}"))?;
    Ok((listen, ticks, Duration::from_millis(every_ms)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listen, ticks, every) = args()?;

    let config = Config {
        listen,
        ..Config::default()
    };
    let mut server = Server::bind(config, ())?;
    println!("listening on {}", server.local_addr());

    let commands = server.commands();
    let ticker = std::thread::spawn(move || {
        for n in 1..=ticks {
            std::thread::sleep(every);
            match commands.broadcast(format!("tick {n}").as_bytes()) {
                Ok(()) => println!("queued tick {n}"),
                // The loop has not caught up: this tick is dropped, and
                // said so, rather than waited for.
                Err(CommandError::Full) => println!("tick {n} dropped: queue full"),
                Err(e) => {
                    println!("tick {n} not sent: {e}");
                    return;
                }
            }
        }
        commands.shutdown();
    });

    server.run()?;
    ticker.join().expect("ticker panicked");
    let stats = server.stats();
    println!(
        "stopped after {} commands ({} failed), {} bytes sent",
        stats.commands, stats.commands_failed, stats.bytes_out
    );
    Ok(())
}
