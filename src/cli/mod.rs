//! The command-line front end: the only place that parses arguments.
//!
//! Exit codes: 0 on success (including a clean stop on SIGINT/SIGTERM), 2 for
//! a bad flag or value (clap's usage-error code), 1 for a runtime failure such
//! as a port that cannot be bound; each failure is one line on stderr.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use log::LevelFilter;
use lubdub::shutdown::ShutdownHandle;

mod client;
mod server;
mod swarm;

#[derive(Parser, Debug)]
#[command(
    name = "lubdub",
    version,
    about = "Keeps TCP connections honest: heartbeat server, reconnecting client, load harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Answer heartbeats and evict silent peers.
    Server(server::ServerArgs),
    /// Send heartbeats to a server and reconnect when it goes silent.
    Client(client::ClientArgs),
    /// Hold many heartbeating connections to load-test a server.
    Swarm(swarm::SwarmArgs),
}

/// Parses the arguments, runs the subcommand and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let code = e.exit_code();
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Server(args) => server::run(args),
        Command::Client(args) => client::run(args),
        Command::Swarm(args) => swarm::run(args),
    }
}

/// clap value parser for human durations (`250ms`, `5s`, `2m`).
pub fn duration(text: &str) -> Result<Duration, String> {
    lubdub::duration::parse(text).map_err(|e| e.to_string())
}

/// clap value parser for durations that must be longer than zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("must be longer than zero".to_string()),
        d => Ok(d),
    }
}

/// Log to stderr through simplelog at the given level.
pub fn init_logging(level: LevelFilter) {
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    let _ = simplelog::TermLogger::init(
        level,
        config,
        simplelog::TerminalMode::Stderr,
        simplelog::ColorChoice::Never,
    );
}

/// The signal that asked us to stop, for the exit log line (0: none).
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Signals seen so far.
static SIGNALS_SEEN: AtomicUsize = AtomicUsize::new(0);

/// Turns the first SIGINT or SIGTERM into `handle.shutdown()`, and a second
/// one into an immediate exit (130) for an operator who does not want to wait.
///
/// The work happens inside the signal handler itself rather than on a
/// signal-watching thread: a second thread would make glibc treat the process
/// as multi-threaded, and every `read`/`write` would then pay for
/// cancellation-point bookkeeping — about 10% of the server's user-space
/// instructions per reply under a flood (callgrind).
pub fn stop_on_signals(handle: ShutdownHandle) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM] {
        let handle = handle.clone();
        let action = move || {
            if SIGNALS_SEEN.fetch_add(1, Ordering::SeqCst) > 0 {
                const MSG: &[u8] = b"second signal: exiting now\n";
                // SAFETY: write(2) and _exit(2) are async-signal-safe.
                unsafe {
                    libc::write(2, MSG.as_ptr().cast(), MSG.len());
                    libc::_exit(130);
                }
            }
            LAST_SIGNAL.store(signal, Ordering::SeqCst);
            handle.shutdown();
        };
        // SAFETY: the action touches only atomics and `ShutdownHandle::
        // shutdown`, which is an atomic store plus one write(2) to mio's
        // eventfd (no allocation, no lock): all async-signal-safe.
        unsafe { signal_hook::low_level::register(signal, action) }?;
    }
    Ok(())
}

/// Logs which signal ended the run, if one did.
pub fn log_stop_signal() {
    match LAST_SIGNAL.load(Ordering::SeqCst) {
        0 => {}
        signal => log::info!("exiting on signal {signal}"),
    }
}

/// One-line fatal error, exit code 1.
pub fn fail(what: impl std::fmt::Display) -> i32 {
    eprintln!("lubdub: {what}");
    1
}
