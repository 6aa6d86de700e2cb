//! `lubdub server`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use log::{info, warn, LevelFilter};
use lubdub::keepalive::KeepaliveConfig;
use lubdub::server::{Config, ConfigError, Server, ServerError};

/// Flags of `lubdub server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8898", value_name = "ADDR")]
    listen: SocketAddr,
    /// Heartbeat interval expected from peers.
    #[arg(long, default_value = "5s", value_parser = super::positive_duration, value_name = "DUR")]
    interval: Duration,
    /// Intervals a peer may miss before it is evicted.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    misses: u32,
    /// Timer-wheel tick: evictions land at most this late [default: interval/20, 1ms..100ms].
    #[arg(long, value_parser = super::positive_duration, value_name = "DUR")]
    tick: Option<Duration>,
    /// Most connections held at once; more are accepted and closed at once
    /// [default: open-files limit minus 100].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    max_connections: Option<u64>,
    /// Largest frame accepted, header included.
    #[arg(long, default_value_t = lubdub::protocol::DEFAULT_MAX_FRAME as u64,
          value_parser = clap::value_parser!(u64).range(8..=i32::MAX as u64), value_name = "BYTES")]
    max_frame: u64,
    /// Unsent replies allowed per connection before a peer that does not read is closed.
    #[arg(long, default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(8..), value_name = "BYTES")]
    max_backlog: u64,
    /// TCP_KEEPIDLE: silence before the kernel's first keepalive probe.
    #[arg(long, default_value = "30s", value_parser = super::positive_duration, value_name = "DUR")]
    keepalive_idle: Duration,
    /// TCP_KEEPINTVL: time between unanswered keepalive probes.
    #[arg(long, default_value = "5s", value_parser = super::positive_duration, value_name = "DUR")]
    keepalive_interval: Duration,
    /// TCP_KEEPCNT: unanswered probes before the kernel drops the connection.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=127), value_name = "N")]
    keepalive_count: u32,
    /// TCP_USER_TIMEOUT: how long sent data may go unacknowledged; 0 keeps the
    /// kernel default [default: idle + interval × count].
    #[arg(long, value_parser = super::duration, value_name = "DUR")]
    user_timeout: Option<Duration>,
    /// Turn the kernel's TCP keepalive off (lubdub's own heartbeats still run).
    #[arg(long)]
    no_keepalive: bool,
    /// Set SO_REUSEPORT so several processes can listen on the same port.
    #[arg(long)]
    reuse_port: bool,
    /// Log the counters every DUR.
    #[arg(long, value_parser = super::positive_duration, value_name = "DUR")]
    stats_every: Option<Duration>,
    /// Log level: off, error, warn, info, debug, trace.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: LevelFilter,
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(args: ServerArgs) -> i32 {
    let mut config = Config {
        listen: args.listen,
        interval: args.interval,
        misses: args.misses,
        tick: args.tick,
        max_connections: args.max_connections.map(|n| n as usize),
        max_frame: args.max_frame as usize,
        max_backlog: args.max_backlog as usize,
        keepalive: KeepaliveConfig {
            enabled: !args.no_keepalive,
            idle: args.keepalive_idle,
            interval: args.keepalive_interval,
            count: args.keepalive_count,
            user_timeout: args.user_timeout,
            nodelay: true,
        },
        reuse_port: args.reuse_port,
        stats_every: args.stats_every,
        ..Config::default()
    };
    // Judge the values first, so a usage error is the only line printed.
    if let Err(e) = config.validate() {
        return usage_error(&e);
    }
    super::init_logging(args.log_level);
    let derived = match lubdub::limits::raise_file_limit() {
        Ok((before, after)) => {
            info!(
                "open-files limit: soft {} -> {} (hard {}), room for {} connections",
                before.soft,
                after.soft,
                after.hard,
                after.max_connections()
            );
            Some(after.max_connections())
        }
        Err(e) => {
            warn!("cannot raise the open-files limit: {e}");
            None
        }
    };
    if let (Some(asked), Some(room)) = (args.max_connections, derived) {
        if asked as usize > room {
            warn!("--max-connections {asked} is more than the open-files limit allows ({room}); accepting will pause when descriptors run out");
        }
    }
    config.max_connections = config.max_connections.or(derived);
    let mut server = match Server::bind(config, ()) {
        Ok(server) => server,
        Err(ServerError::Config(e)) => return usage_error(&e),
        Err(e) => return super::fail(e),
    };
    if let Err(e) = super::stop_on_signals(server.shutdown_handle()) {
        return super::fail(format_args!("cannot install signal handlers: {e}"));
    }
    match server.run() {
        Ok(()) => {
            super::log_stop_signal();
            0
        }
        Err(e) => super::fail(e),
    }
}

/// A value clap could not judge alone (e.g. `--tick` longer than
/// `--interval`) is still a usage error: name the flag, exit 2.
fn usage_error(e: &ConfigError) -> i32 {
    eprintln!("error: --{}: {}", e.field.replace('_', "-"), e.reason);
    2
}
