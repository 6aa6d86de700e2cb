//! `lubdub client`: one reconnecting heartbeat client.

use std::time::Duration;

use clap::Args;
use log::LevelFilter;
use lubdub::client::{Client, ClientConfig, ClientError, Target};

/// Flags of `lubdub client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Server (HOST:PORT); a name is looked up again for every connect, and
    /// each of its addresses tried in turn.
    #[arg(long, default_value = "127.0.0.1:8898", value_parser = super::target, value_name = "ADDR")]
    pub connect: Target,
    /// Time between heartbeats (1ms..=24h).
    #[arg(long, default_value = "5s", value_parser = super::duration, value_name = "DUR")]
    pub interval: Duration,
    /// Intervals without a received frame before reconnecting (1..=10000).
    #[arg(long, default_value_t = 6, value_name = "N", value_parser = super::count(1, lubdub::check::MAX_MISSES))]
    pub misses: u32,
    /// Shortest reconnect delay, at least 10ms (the first retry waits between
    /// this and 1.6× this).
    #[arg(long, default_value = "1s", value_parser = super::duration, value_name = "DUR")]
    pub backoff_min: Duration,
    /// Longest reconnect delay (backoff-min..=24h).
    #[arg(long, default_value = "2m", value_parser = super::duration, value_name = "DUR")]
    pub backoff_max: Duration,
    /// How long a connect may take (1ms..=24h).
    #[arg(long, default_value = "10s", value_parser = super::duration, value_name = "DUR")]
    pub connect_timeout: Duration,
    /// Treat any received bytes as proof of life and drop unparseable bytes
    /// (for servers that send unframed text, like the original Qt one).
    #[arg(long)]
    pub lenient: bool,
    /// Bytes waiting to be written past which a server that does not read
    /// is given up and reconnected to (8..=1073741824).
    #[arg(long, default_value_t = lubdub::client::DEFAULT_MAX_BACKLOG, value_name = "BYTES",
          value_parser = super::count(lubdub::protocol::HEADER_LEN, lubdub::check::MAX_BACKLOG))]
    pub max_backlog: usize,
    #[command(flatten)]
    keepalive: super::KeepaliveArgs,
    /// Log level.
    #[arg(long, default_value = "info", value_name = "LEVEL", value_parser = super::log_level())]
    pub log_level: LevelFilter,
    /// Log lines as `text` (for people) or `json` (one object per line:
    /// time, level, event, peer, conn, fields, msg).
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub log_format: super::logs::LogFormat,
}

pub fn run(args: ClientArgs) -> i32 {
    let config = ClientConfig {
        connect: args.connect.clone(),
        interval: args.interval,
        misses: args.misses,
        connect_timeout: args.connect_timeout,
        backoff_min: args.backoff_min,
        backoff_max: args.backoff_max,
        lenient: args.lenient,
        max_backlog: args.max_backlog,
        keepalive: args.keepalive.config(),
        ..ClientConfig::default()
    };
    // Judge the values first, so a usage error is the only line printed.
    if let Err(e) = config.validate() {
        return super::usage_error(&e);
    }
    super::init_logging(args.log_level, args.log_format);
    let options = config.socket_options();
    let mut client = match Client::new(config, ()) {
        Ok(client) => client,
        Err(ClientError::Config(e)) => return super::usage_error(&e),
        Err(e) => return super::fail(format!("client: {e}")),
    };
    if let Err(e) = super::stop_on_signals(client.shutdown_handle()) {
        return super::fail(format!("client: cannot watch for signals: {e}"));
    }
    log::info!(
        "client: heartbeat to {} every {}, reconnect after {} silent; {options}",
        args.connect,
        lubdub::duration::format(args.interval),
        // `validate` bounds both, so the product fits easily.
        lubdub::duration::format(args.interval.saturating_mul(args.misses))
    );
    match client.run() {
        Ok(()) => {
            super::log_stop_signal();
            let s = client.stats();
            log::info!(
                "client: stopped; {} connects, {} heartbeats, {} replies, {} missed, {} slow_readers",
                s.connects,
                s.heartbeats_sent,
                s.replies,
                s.missed_replies,
                s.slow_readers
            );
            0
        }
        Err(e) => super::fail(format!("client: {e}")),
    }
}
