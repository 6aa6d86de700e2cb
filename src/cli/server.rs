//! `lubdub server`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use log::{info, warn, LevelFilter};
use lubdub::server::{Config, Server, ServerError};

/// Flags of `lubdub server`.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on (HOST:PORT; a name resolves to its first address).
    #[arg(long, default_value = "0.0.0.0:8898", value_parser = super::socket_addr, value_name = "ADDR")]
    listen: SocketAddr,
    /// Heartbeat interval expected from peers (1ms..=24h).
    #[arg(long, default_value = "5s", value_parser = super::duration, value_name = "DUR")]
    interval: Duration,
    /// Intervals a peer may miss before it is evicted (1..=10000).
    #[arg(long, default_value_t = 6, value_name = "N", value_parser = super::count(1, lubdub::check::MAX_MISSES))]
    misses: u32,
    /// Timer-wheel tick: evictions land at most this late (100us..=interval)
    /// [default: interval/20, 1ms..100ms].
    #[arg(long, value_parser = super::duration, value_name = "DUR")]
    tick: Option<Duration>,
    /// Under load, wait up to this long before polling again, so that one
    /// wakeup serves several peers (0..=100ms; never past a timer, replies
    /// wait at most this much longer) [default: 0, poll at once].
    #[arg(long, default_value = "0s", hide_default_value = true, value_parser = super::duration, value_name = "DUR")]
    batch_wait: Duration,
    /// Most connections held at once; more are accepted and closed at once
    /// [default: open-files limit minus 100].
    #[arg(long, value_name = "N", value_parser = super::count(1, lubdub::server::MAX_CONNECTIONS))]
    max_connections: Option<usize>,
    /// Largest frame accepted, header included (8..=2147483647).
    #[arg(long, default_value_t = lubdub::protocol::DEFAULT_MAX_FRAME, value_name = "BYTES",
          value_parser = super::count(lubdub::protocol::HEADER_LEN, i32::MAX as usize))]
    max_frame: usize,
    /// Unsent replies allowed per connection before a peer that does not
    /// read is closed (8..=1073741824).
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES",
          value_parser = super::count(lubdub::protocol::HEADER_LEN, lubdub::check::MAX_BACKLOG))]
    max_backlog: usize,
    /// Bytes buffered across all connections (split data frames a handler
    /// reads, write backlogs) before the connection that would exceed it is
    /// closed. The plain server skips data payloads, so only backlogs count.
    #[arg(long, default_value_t = lubdub::server::DEFAULT_MAX_BUFFERED, value_name = "BYTES",
          value_parser = super::count(lubdub::protocol::HEADER_LEN, lubdub::server::MAX_BUFFERED))]
    max_buffered: usize,
    #[command(flatten)]
    keepalive: super::KeepaliveArgs,
    /// Set SO_REUSEPORT so several processes can listen on the same port.
    #[arg(long)]
    reuse_port: bool,
    /// Bytes sent to every peer on accept, unframed, as the original Qt
    /// server sends its welcome text (escapes: \n \r \t \0 \\ \xNN).
    /// lubdub's client and swarm skip it with --lenient.
    #[arg(long, value_parser = super::escaped_bytes, value_name = "TEXT")]
    greeting: Option<super::Bytes>,
    /// Send a heartbeat request to a peer silent for an interval (again each
    /// further interval), for peers that only answer; one that never answers
    /// is still evicted after interval × misses.
    #[arg(long)]
    probe: bool,
    /// On SIGINT/SIGTERM, stop accepting and close the open connections
    /// spread evenly over DUR, so their reconnects reach the next server as
    /// a trickle (a second signal exits at once).
    #[arg(long, value_parser = super::duration, value_name = "DUR")]
    drain: Option<Duration>,
    /// Run N worker processes (each this same single-threaded server, with
    /// its own open-files limit) sharing one listener under a supervisor
    /// that restarts them and sums their counters; `auto`: one per core, or
    /// more when --max-connections needs them (1..=4096).
    #[arg(long, value_parser = super::workers::parse, value_name = "N|auto")]
    workers: Option<super::workers::Workers>,
    /// Internal: this process is worker K of a supervisor.
    #[arg(long, hide = true, value_name = "K")]
    worker: Option<usize>,
    /// Internal: accept from this inherited listening descriptor.
    #[arg(long, hide = true, value_name = "FD")]
    listen_fd: Option<i32>,
    /// Internal: the supervisor's table of room, descriptor and slots.
    #[arg(long, hide = true, value_name = "FD:SLOTS")]
    room: Option<String>,
    /// Every connection begins with a PROXY protocol header (v1 or v2) from
    /// a load balancer in front (HAProxy send-proxy, Envoy, AWS NLB): the
    /// client's address in it is the peer's. Connections without a valid
    /// header in time are closed and counted.
    #[arg(long)]
    proxy_protocol: bool,
    /// With --proxy-protocol, how long a connection may take to send its
    /// whole header (1ms..=60s).
    #[arg(long, default_value = "3s", value_parser = super::duration, value_name = "DUR")]
    proxy_header_timeout: Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT), from
    /// the server's own loop; with --workers the supervisor serves every
    /// worker's series, labelled worker="K", at most 1s old.
    #[arg(long, value_parser = super::socket_addr, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Close a peer whose heartbeats come faster than one per DUR on
    /// average over interval × misses (a burst after a stall or a reconnect
    /// is paid for by the time it took), once out of strikes. A quarter of
    /// --interval leaves honest peers room. [default: off]
    #[arg(long, value_parser = super::duration, value_name = "DUR")]
    min_heartbeat_interval: Option<Duration>,
    /// With --min-heartbeat-interval: heartbeats past the allowed rate a
    /// peer may send before it is closed (1..=255).
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = super::count(1u8, u8::MAX))]
    heartbeat_strikes: u8,
    /// Refuse connections past N open from one source address (IPv6: one
    /// --source-prefix-v6 block); with --workers, per worker. [default: off]
    #[arg(long, value_name = "N", value_parser = super::count(1u32, lubdub::server::MAX_CONNECTIONS as u32))]
    max_connections_per_source: Option<u32>,
    /// The IPv6 prefix length one source is counted by (1..=128).
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = super::count(1u8, 128u8))]
    source_prefix_v6: u8,
    /// Admit only sources in this block (an address or CIDR; repeatable).
    #[arg(long, value_parser = cidr, value_name = "CIDR")]
    allow: Vec<lubdub::access::Cidr>,
    /// Refuse sources in this block (an address or CIDR; repeatable; wins
    /// over --allow).
    #[arg(long, value_parser = cidr, value_name = "CIDR")]
    deny: Vec<lubdub::access::Cidr>,
    /// Log the counters every DUR.
    #[arg(long, value_parser = super::duration, value_name = "DUR")]
    stats_every: Option<Duration>,
    /// Log level.
    #[arg(long, default_value = "info", value_name = "LEVEL", value_parser = super::log_level())]
    log_level: LevelFilter,
    /// Log lines as `text` (for people) or `json` (one object per line:
    /// time, level, event, peer, conn, fields, msg).
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub log_format: super::logs::LogFormat,
}

/// Runs the server until SIGINT/SIGTERM.
pub fn run(args: ServerArgs) -> i32 {
    let config = Config {
        listen: args.listen,
        interval: args.interval,
        misses: args.misses,
        tick: args.tick,
        batch_wait: args.batch_wait,
        max_connections: args.max_connections,
        max_frame: args.max_frame,
        max_backlog: args.max_backlog,
        max_buffered: args.max_buffered,
        keepalive: args.keepalive.config(),
        reuse_port: args.reuse_port,
        stats_every: args.stats_every,
        greeting: args.greeting.clone().map(|g| g.0),
        probe: args.probe,
        drain: args.drain,
        listener_fd: args.listen_fd,
        proxy_protocol: args.proxy_protocol,
        proxy_header_timeout: args.proxy_header_timeout,
        // A worker's counters reach /metrics through its supervisor.
        metrics: args.metrics.filter(|_| args.worker.is_none()),
        min_heartbeat_interval: args.min_heartbeat_interval,
        heartbeat_strikes: args.heartbeat_strikes,
        max_connections_per_source: args.max_connections_per_source,
        source_prefix_v6: args.source_prefix_v6,
        access: lubdub::access::AccessRules {
            allow: args.allow.clone(),
            deny: args.deny.clone(),
        },
        ..Config::default()
    };
    // Judge the values first, so a usage error is the only line printed.
    if let Err(e) = config.validate() {
        return super::usage_error(&e);
    }
    super::init_logging(args.log_level, args.log_format);
    if let Some(workers) = args.workers.filter(|_| args.worker.is_none()) {
        return super::workers::supervise(&config, workers);
    }
    if args.worker.is_some() {
        super::workers::die_with_supervisor();
    }
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
        if asked > room {
            warn!("--max-connections {asked} is more than the open-files limit allows ({room}); accepting will pause when descriptors run out");
        }
    }
    // Without --max-connections the server derives it from the limit just
    // raised (kept within its own range). A stop signal that comes after
    // the `listening on` line but before the handlers waits for them.
    let held = super::hold_stop_signals();
    let mut server = match Server::bind(config, ()) {
        Ok(server) => server,
        Err(ServerError::Config(e)) => return super::usage_error(&e),
        Err(e) => return super::fail(e),
    };
    if let (Some(index), Some(room)) = (args.worker, &args.room) {
        match super::workers::open_room(room, index) {
            Ok(room) => server.share_room(room),
            Err(e) => {
                return super::fail(format_args!(
                    "cannot map the supervisor's table of room: {e}"
                ))
            }
        }
    }
    if let Err(e) = super::stop_on_signals(server.shutdown_handle()) {
        return super::fail(format_args!("cannot install signal handlers: {e}"));
    }
    drop(held);
    match server.run() {
        Ok(()) => {
            super::log_stop_signal();
            0
        }
        Err(e) => super::fail(e),
    }
}

/// clap value parser for `--allow` and `--deny`.
fn cidr(text: &str) -> Result<lubdub::access::Cidr, String> {
    text.parse()
}
