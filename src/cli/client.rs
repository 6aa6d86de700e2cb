//! `lubdub client`: one reconnecting heartbeat client.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Args;
use log::LevelFilter;
use lubdub::client::{Client, ClientConfig};

/// Flags of `lubdub client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Server address (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:8898", value_parser = socket_addr)]
    pub connect: SocketAddr,
    /// Time between heartbeats.
    #[arg(long, default_value = "5s", value_parser = super::positive_duration)]
    pub interval: Duration,
    /// Intervals without a received frame before reconnecting.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    pub misses: u32,
    /// Shortest reconnect delay (the first retry waits between this and 1.6× this).
    #[arg(long, default_value = "1s", value_parser = super::duration)]
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    #[arg(long, default_value = "2m", value_parser = super::duration)]
    pub backoff_max: Duration,
    /// How long a connect may take.
    #[arg(long, default_value = "10s", value_parser = super::positive_duration)]
    pub connect_timeout: Duration,
    /// Treat any received bytes as proof of life and drop unparseable bytes
    /// (for servers that send unframed text, like the original Qt one).
    #[arg(long)]
    pub lenient: bool,
    /// Log level: off, error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    pub log_level: LevelFilter,
}

/// clap value parser for `HOST:PORT`, resolving names (first address wins).
pub fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("`{text}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

pub fn run(args: ClientArgs) -> i32 {
    super::init_logging(args.log_level);
    if args.backoff_max < args.backoff_min {
        return super::fail("client: --backoff-max is shorter than --backoff-min");
    }
    let config = ClientConfig {
        connect: args.connect,
        interval: args.interval,
        misses: args.misses,
        connect_timeout: args.connect_timeout,
        backoff_min: args.backoff_min,
        backoff_max: args.backoff_max,
        lenient: args.lenient,
        ..ClientConfig::default()
    };
    let mut client = match Client::new(config, ()) {
        Ok(client) => client,
        Err(e) => return super::fail(format!("client: {e}")),
    };
    if let Err(e) = super::stop_on_signals(client.shutdown_handle()) {
        return super::fail(format!("client: cannot watch for signals: {e}"));
    }
    log::info!(
        "client: heartbeat to {} every {}, reconnect after {} silent",
        args.connect,
        lubdub::duration::format(args.interval),
        lubdub::duration::format(args.interval * args.misses)
    );
    match client.run() {
        Ok(()) => {
            super::log_stop_signal();
            let s = client.stats();
            log::info!(
                "client: stopped; {} connects, {} heartbeats, {} replies, {} missed",
                s.connects,
                s.heartbeats_sent,
                s.replies,
                s.missed_replies
            );
            0
        }
        Err(e) => super::fail(format!("client: {e}")),
    }
}
