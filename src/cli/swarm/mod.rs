//! `lubdub swarm`: many idle heartbeating clients in one poll loop.

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use log::LevelFilter;
use lubdub::client::Target;
use lubdub::swarm::plan::Workers;
use lubdub::swarm::{Criteria, Exchange, Report, Slice, Snapshot, Swarm, SwarmConfig, SwarmError};

mod merge;
mod workers;

/// Exit code when the run did not meet its target (connections or replies).
pub const TARGET_MISSED: i32 = 3;
/// Exit code when the run failed only for the swarm's own doing (it stalled
/// or fell behind): the server was not found wanting, nor vouched for.
pub const SWARM_FAILED_ITSELF: i32 = 4;

/// Flags of `lubdub swarm`.
#[derive(Args, Debug)]
pub struct SwarmArgs {
    #[command(subcommand)]
    pub action: Option<SwarmAction>,
    /// Server (HOST:PORT); a name is looked up again at most once a second
    /// while connecting, and each of its addresses tried in turn.
    #[arg(long, default_value = "127.0.0.1:8898", value_parser = super::target, value_name = "ADDR")]
    pub connect: Target,
    /// Connections to open and hold (1..=10000000).
    // Optional only for `swarm merge`; a run requires it.
    #[arg(short = 'c', long, required = true, value_name = "N",
          value_parser = super::count(1, lubdub::swarm::MAX_CLIENTS))]
    pub clients: Option<usize>,
    /// Split the clients over N worker processes, each its own event loop
    /// and open-files limit, with one status line and one report for all;
    /// `auto`: as many as the open-files limit needs (1..=1024).
    #[arg(long, value_name = "N|auto", value_parser = workers_flag)]
    pub workers: Option<Workers>,
    /// One worker of several: INDEX:FIRST:TOTAL (its index, the fleet's
    /// index of its first client, the fleet's clients). Set by the parent.
    #[arg(long, hide = true, value_parser = worker_flag)]
    pub worker: Option<Slice>,
    /// Connects (and reconnects) per second; 0 means as fast as possible
    /// (0..=1000000).
    #[arg(short = 'r', long, default_value_t = 2000, value_name = "N",
          value_parser = super::count(0u64, 1_000_000))]
    pub connect_rate: u64,
    /// Heartbeat interval per connection (the liveness unit with --flood; 1ms..=24h).
    #[arg(long, default_value = "5s", value_parser = super::duration, value_name = "DUR")]
    pub interval: Duration,
    /// Intervals without a received frame before a connection reconnects (1..=10000).
    #[arg(long, default_value_t = 6, value_name = "N",
          value_parser = super::count(1, lubdub::check::MAX_MISSES))]
    pub misses: u32,
    /// Stop after this long [default: run until SIGINT or SIGTERM].
    #[arg(short = 'd', long, value_parser = super::duration, value_name = "DUR")]
    pub duration: Option<Duration>,
    /// Local addresses to connect from, round-robin: `A-B` (IPv4 range), or a comma list.
    #[arg(long, value_name = "A-B", value_parser = sources)]
    pub source_addrs: Option<Sources>,
    /// Keep DEPTH requests in flight per connection (closed loop) instead of
    /// heartbeating (1..=4096).
    #[arg(long, value_name = "DEPTH", value_parser = super::count(1, lubdub::swarm::MAX_FLOOD_DEPTH))]
    pub flood: Option<u32>,
    /// Close this percent of the clients on purpose every second, each to
    /// reconnect after its backoff (a fleet of devices coming and going);
    /// only idle connections are chosen, so no reply is lost (0..=100).
    #[arg(long, default_value_t = 0.0, value_name = "PERCENT")]
    pub churn: f64,
    /// Write the final report as one JSON object to FILE, or to stdout
    /// with `-` (the human report then goes to stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Treat any received bytes as proof of life and drop unparseable bytes.
    #[arg(long)]
    pub lenient: bool,
    /// Send these bytes (hex) as the request instead of a lubdub heartbeat.
    #[arg(long, value_name = "HEX", value_parser = hex, requires = "reply_hex")]
    pub request_hex: Option<Bytes>,
    /// Expect these bytes (hex) as the reply to each request.
    #[arg(long, value_name = "HEX", value_parser = hex, requires = "request_hex")]
    pub reply_hex: Option<Bytes>,
    /// How long a connect may take.
    #[arg(long, default_value = "10s", value_parser = super::duration, value_name = "DUR")]
    pub connect_timeout: Duration,
    /// Shortest reconnect delay (at least 10ms).
    #[arg(long, default_value = "1s", value_parser = super::duration, value_name = "DUR")]
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    #[arg(long, default_value = "2m", value_parser = super::duration, value_name = "DUR")]
    pub backoff_max: Duration,
    /// Heartbeats fall due on ticks of this width; those due on one tick are
    /// sent together, in one wakeup (100us..=interval, at most 1s).
    #[arg(long, default_value = "1ms", value_parser = super::duration, value_name = "DUR")]
    pub tick: Duration,
    /// Under load, wait up to this long before polling again, so that one
    /// wakeup reads several replies (0..=100ms; a reply read later counts
    /// its wait in its round trip) [default: 0, poll at once].
    #[arg(long, default_value = "0s", hide_default_value = true, value_parser = super::duration, value_name = "DUR")]
    pub batch_wait: Duration,
    /// At the end, how long to wait for replies still in flight.
    #[arg(long, default_value = "2s", value_parser = super::duration, value_name = "DUR")]
    pub grace: Duration,
    /// One status line this often, each covering the time since the one
    /// before [default: 1s on a terminal, 5s otherwise].
    #[arg(long, value_parser = super::duration, value_name = "DUR")]
    pub status_every: Option<Duration>,
    /// The run fails when the p99 round trip is over this.
    #[arg(long, default_value = "200ms", value_parser = super::duration, value_name = "DUR")]
    pub max_p99: Duration,
    /// The run fails when any one reply takes longer than this (a stall;
    /// in flood mode the only figure that shows one).
    #[arg(long, default_value = "1s", value_parser = super::duration, value_name = "DUR")]
    pub max_stall: Duration,
    /// The run fails with more late replies than this (a heartbeat still
    /// unanswered when the next falls due).
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = super::count(0, u64::MAX))]
    pub max_late: u64,
    /// The run fails with more failed connects than this.
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = super::count(0, u64::MAX))]
    pub max_connect_failures: u64,
    /// The run fails with more lost connections than this (churn aside).
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = super::count(0, u64::MAX))]
    pub max_reconnects: u64,
    /// The run fails when a connect (the first or a reconnect) is not done
    /// within this long, or is still hanging this long when the run ends
    /// [default: the shorter of --connect-timeout and 2 × --interval; 1ms..=24h].
    #[arg(long, value_parser = super::duration, value_name = "DUR")]
    pub max_connect_wait: Option<Duration>,
    /// Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT) from the
    /// swarm's own loop while it runs (not with --workers).
    #[arg(long, value_parser = super::socket_addr, value_name = "ADDR", conflicts_with = "workers")]
    pub metrics: Option<std::net::SocketAddr>,
    #[command(flatten)]
    keepalive: super::KeepaliveArgs,
    /// Log level (debug: one line per connect and reconnect).
    #[arg(long, default_value = "info", value_name = "LEVEL", value_parser = super::log_level())]
    pub log_level: LevelFilter,
    /// Log lines as `text` (for people) or `json` (one object per line:
    /// time, level, event, peer, conn, fields, msg).
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub log_format: super::logs::LogFormat,
}

/// What `lubdub swarm` does instead of a run.
#[derive(Subcommand, Debug)]
pub enum SwarmAction {
    /// Merge the JSON reports of swarms run side by side (on several
    /// machines) into one exact report and verdict.
    Merge(merge::MergeArgs),
}

fn workers_flag(text: &str) -> Result<Workers, String> {
    match text {
        "auto" => Ok(Workers::Auto),
        n => match n.parse() {
            Ok(count @ 1..=lubdub::swarm::plan::MAX_WORKERS) => Ok(Workers::Count(count)),
            _ => Err(format!(
                "must be auto or a number from 1 to {} (got {n})",
                lubdub::swarm::plan::MAX_WORKERS
            )),
        },
    }
}

fn worker_flag(text: &str) -> Result<Slice, String> {
    let mut it = text.split(':').map(str::parse::<usize>);
    match (it.next(), it.next(), it.next(), it.next(), it.next()) {
        (Some(Ok(index)), Some(Ok(first)), Some(Ok(of)), Some(Ok(workers)), None) => Ok(Slice {
            first,
            of,
            index,
            workers,
        }),
        _ => Err(format!("`{text}` is not INDEX:FIRST:TOTAL:WORKERS")),
    }
}

/// Local addresses from `--source-addrs` (a newtype: clap reads a bare
/// `Vec` as a repeated flag).
#[derive(Debug, Clone)]
pub struct Sources(Vec<IpAddr>);

fn sources(text: &str) -> Result<Sources, String> {
    lubdub::swarm::parse_sources(text).map(Sources)
}

/// Bytes from a hex flag.
#[derive(Debug, Clone)]
pub struct Bytes(Vec<u8>);

/// clap value parser for hex byte strings (`50494e470d0a`).
fn hex(text: &str) -> Result<Bytes, String> {
    hex_bytes(text).map(Bytes)
}

fn hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if text.is_empty() || text.len() % 2 != 0 {
        return Err("needs an even, non-zero number of hex digits".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("`{text}` is not hex"))
        })
        .collect()
}

pub fn run(args: SwarmArgs) -> i32 {
    if let Some(SwarmAction::Merge(merge)) = args.action {
        return merge::run(merge);
    }
    // clap requires it for a run; the match only keeps this panic-free.
    let (connect, Some(clients)) = (args.connect, args.clients) else {
        super::out::eprint("error: --clients is required\n");
        return 2;
    };
    // Debug logging writes lines of its own, so the status gets lines too;
    // a worker's stderr is its parent's pipe.
    let tty = std::io::stderr().is_terminal()
        && args.log_level <= LevelFilter::Info
        && args.worker.is_none();
    let exchange = match (args.request_hex, args.reply_hex) {
        (Some(request), Some(reply)) => Exchange::Fixed {
            request: request.0,
            reply: reply.0,
        },
        _ => Exchange::Heartbeat,
    };
    let config = SwarmConfig {
        connect,
        clients,
        connect_rate: args.connect_rate,
        interval: args.interval,
        misses: args.misses,
        duration: args.duration,
        sources: args.source_addrs.map(|s| s.0).unwrap_or_default(),
        flood: args.flood,
        churn: args.churn,
        lenient: args.lenient,
        exchange,
        connect_timeout: args.connect_timeout,
        backoff_min: args.backoff_min,
        backoff_max: args.backoff_max,
        grace: args.grace,
        tick: args.tick,
        batch_wait: args.batch_wait,
        keepalive: args.keepalive.config(),
        criteria: Criteria {
            max_p99: args.max_p99,
            max_stall: args.max_stall,
            max_late: args.max_late,
            max_connect_failures: args.max_connect_failures,
            max_reconnects: args.max_reconnects,
            max_connect_wait: args.max_connect_wait,
        },
        // A terminal gets one line rewritten every second; a log file or
        // pipe a plain line every five seconds. Either way each line covers
        // exactly the time since the line before it.
        status_every: args
            .status_every
            .unwrap_or(Duration::from_secs(if tty { 1 } else { 5 })),
        slice: args.worker,
        metrics: args.metrics,
        ..SwarmConfig::default()
    };
    // Judge the values first, so a usage error is the only line printed.
    if let Err(e) = config.validate() {
        return super::usage_error(&e);
    }
    if let Some(slice) = args.worker {
        return worker(config, slice.index, args.log_level, args.log_format);
    }
    // Where the report goes is checked now, not after the whole run.
    let json_file = match json_file(args.json.as_deref()) {
        Ok(file) => file,
        Err(code) => return code,
    };
    if let Some(workers) = args.workers {
        let output = Output {
            json_file,
            json_stdout: args.json.is_some(),
        };
        return workers::run(
            config,
            workers,
            tty,
            args.log_level,
            args.log_format,
            output,
        );
    }
    super::init_logging(args.log_level, args.log_format);
    let ramp_warning = ramp_warning(&config);
    // A stop signal between the swarm's first line and its handlers waits
    // for them.
    let held = super::hold_stop_signals();
    let mut swarm = match Swarm::new(config) {
        Ok(swarm) => swarm,
        Err(SwarmError::Config(e)) => return super::usage_error(&e),
        Err(e) => return super::fail(format!("swarm: {e}")),
    };
    if let Err(e) = super::stop_and_mark_on_signals(swarm.shutdown_handle(), swarm.mark_handle()) {
        return super::fail(format!("swarm: cannot watch for signals: {e}"));
    }
    drop(held);
    // Only now, so that a refusal stays a single line.
    if let Some(warning) = ramp_warning {
        log::warn!("{warning}");
    }

    let mut status = |s: &Snapshot| {
        let mut err = std::io::stderr().lock();
        if super::logs::is_json() {
            // A log line like any other, its fields the status's JSON.
            let _ = writeln!(
                err,
                "{}",
                super::logs::object("info", "status", &status_fields(s))
            );
        } else if tty {
            // Rewritten in place; the last one stays, and what is logged
            // after it starts on a line of its own.
            let _ = write!(err, "\r{s}\x1b[K{}", if s.last { "\n" } else { "" });
        } else {
            let _ = writeln!(err, "{s}");
        }
        let _ = err.flush();
    };
    let report = match swarm.run(&mut status) {
        Ok(report) => report,
        Err(e) => return super::fail(format!("swarm: {e}")),
    };
    super::log_stop_signal();
    Output {
        json_file,
        json_stdout: args.json.is_some(),
    }
    .report(&report)
}

/// Where the report goes: the summary on stdout, where `> file` and
/// `| grep` find it, as wrk and redis-benchmark print theirs; with
/// `--json -` stdout carries the JSON object alone and the summary goes to
/// stderr for the human watching. `--json PATH` writes to a file opened
/// before the run.
pub struct Output {
    json_file: Option<std::fs::File>,
    json_stdout: bool,
}

impl Output {
    /// Writes the summary and the JSON, and gives the exit code the
    /// verdict calls for (the reasons of a failure on stderr's last line).
    /// A closed stdout is no failure (see `out`): the verdict's code stands.
    pub fn report(mut self, report: &Report) -> i32 {
        let summary = report.summary();
        let json = report.to_json();
        let json_logs = super::logs::is_json();
        let written = if self.json_stdout && self.json_file.is_none() {
            if json_logs {
                // The summary's figures, as a log line like the others.
                super::out::eprint(&format!(
                    "{}\n",
                    super::logs::object("info", "report", &json)
                ));
            } else {
                super::out::eprint(&summary);
            }
            super::out::print(&format!("{json}\n"))
        } else {
            super::out::print(&summary)
        };
        if let Err(e) = written {
            return super::fail(format!("swarm: cannot write the report to stdout: {e}"));
        }
        if let Some(file) = self.json_file.as_mut() {
            if let Err(e) = writeln!(file, "{json}") {
                return super::fail(format!("swarm: cannot write the report: {e}"));
            }
        }
        match report.failure() {
            None => 0,
            Some(reason) => {
                let line = if json_logs {
                    format!("{}\n", super::logs::fatal(&format!("swarm: {reason}")))
                } else {
                    format!("lubdub: swarm: {reason}\n")
                };
                super::out::eprint(&line);
                if report.failed_by_swarm_only() {
                    SWARM_FAILED_ITSELF
                } else {
                    TARGET_MISSED
                }
            }
        }
    }
}

/// A status line's figures as the `fields` of a JSON log line: what the
/// text line says, by name.
pub fn status_fields(s: &Snapshot) -> String {
    let c = &s.counters;
    let reasons: Vec<String> = c
        .reconnects_by
        .fields()
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    format!(
        "{{\"elapsed_ms\":{},\"connected\":{},\"target\":{},\"connecting\":{},\"reconnects\":{},\
         \"reconnects_by_reason\":{{{}}},\"replies_per_s\":{:.0},\"missing\":{},\"late\":{},\"p99_us\":{},\"last\":{}}}",
        s.elapsed.as_millis(),
        c.connected,
        s.target,
        c.connecting,
        c.reconnects,
        reasons.join(","),
        // A rate over an empty window is no number JSON can carry.
        if s.replies_per_s.is_finite() { s.replies_per_s } else { 0.0 },
        s.missing,
        s.late,
        s.rtt.p99,
        s.last
    )
}

/// One worker of `--workers`: runs its slice and tells its parent, on
/// stdout, one `status JSON` line per status window and one `report JSON`
/// line at the end. Its logs go to stderr, which the parent relays; the
/// verdict is the parent's, over every worker's figures.
fn worker(
    config: SwarmConfig,
    index: usize,
    log_level: LevelFilter,
    log_format: super::logs::LogFormat,
) -> i32 {
    super::init_logging(log_level, log_format);
    let mut swarm = match Swarm::new(config) {
        Ok(swarm) => swarm,
        Err(SwarmError::Config(e)) => return super::usage_error(&e),
        Err(e) => return super::fail(format!("swarm: worker {index}: {e}")),
    };
    if let Err(e) = super::stop_and_mark_on_signals(swarm.shutdown_handle(), swarm.mark_handle()) {
        return super::fail(format!("swarm: cannot watch for signals: {e}"));
    }
    // Blocked by the parent until now (see `Worker::start`): a mark passed
    // on while this worker started is delivered here, to its handler.
    let set = super::mark_signal_set();
    // SAFETY: pthread_sigmask(3) with a set made here.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    // A parent gone (a closed pipe) leaves nobody to tell: the run goes on
    // to its end, quietly.
    let tell = |kind: &str, json: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{kind} {json}");
        let _ = out.flush();
    };
    let report = match swarm.run(|s: &Snapshot| tell("status", s.to_json())) {
        Ok(report) => report,
        Err(e) => return super::fail(format!("swarm: worker {index}: {e}")),
    };
    tell("report", report.to_json());
    0
}

/// A warning when the ramp-up alone outlasts the run.
fn ramp_warning(config: &SwarmConfig) -> Option<String> {
    let (Some(duration), rate @ 1..) = (config.duration, config.connect_rate) else {
        return None;
    };
    let ramp = Duration::from_millis((config.clients as u64).saturating_mul(1000) / rate);
    (ramp >= duration).then(|| {
        format!(
            "at {rate} connects/s, {} clients need {} to connect, longer than --duration {}",
            config.clients,
            lubdub::duration::format(ramp),
            lubdub::duration::format(duration)
        )
    })
}

/// The file `--json PATH` names, created now so that a path that cannot be
/// written is a usage error before any run; `None` for stdout (`-`) or no
/// `--json`. `Err` is the exit code, the line already printed.
pub(crate) fn json_file(path: Option<&std::path::Path>) -> Result<Option<std::fs::File>, i32> {
    match path {
        Some(path) if path.as_os_str() != "-" => match std::fs::File::create(path) {
            Ok(file) => Ok(Some(file)),
            Err(e) => {
                eprintln!("error: --json: cannot write {}: {e}", path.display());
                Err(2)
            }
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parses_redis_ping() {
        assert_eq!(hex_bytes("50494e470d0a").unwrap(), b"PING\r\n");
        assert_eq!(hex_bytes("2B504F4E470D0A").unwrap(), b"+PONG\r\n");
        assert!(hex_bytes("abc").is_err());
        assert!(hex_bytes("zz").is_err());
        assert!(hex_bytes("").is_err());
        assert!(hex_bytes("é0").is_err());
    }
}
