//! Commands from another thread: a broadcast every second to every peer of
//! a server running on the main thread.
//!
//! The server's loop (`run`) owns every connection; other threads act on
//! them through a `Commands` handle — cheap to clone, `Send`, bounded — which
//! queues the command and wakes the loop. Here a ticker thread broadcasts
//! `tick N` every second and then stops the server.
//!
//! ```text
//! cargo run --example broadcast -- 127.0.0.1:8898 10
//! ```
//!
//! Arguments: the address to listen on, and how many ticks to send before
//! stopping (default 10). Watch it with any lubdub peer, or with
//! `nc 127.0.0.1 8898 | od -c`.

use std::net::SocketAddr;
use std::time::Duration;

use lubdub::server::{CommandError, Config, Server};

fn main() {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8898".into())
        .parse()
        .expect("first argument: HOST:PORT to listen on");
    let ticks: u32 = args.next().map_or(10, |n| {
        n.parse().expect("second argument: a number of ticks")
    });
    let every = Duration::from_secs(1);

    let config = Config {
        listen,
        ..Config::default()
    };
    let mut server = Server::bind(config, ()).expect("cannot listen");
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

    server.run().expect("server failed");
    ticker.join().expect("ticker panicked");
    let stats = server.stats();
    println!(
        "stopped after {} commands ({} failed), {} bytes sent",
        stats.commands, stats.commands_failed, stats.bytes_out
    );
}
