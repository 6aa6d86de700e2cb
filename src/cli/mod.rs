//! The command-line front end: the only place that parses arguments.
//!
//! Exit codes: 0 on success (including a clean stop on SIGINT/SIGTERM), 2 for
//! a bad flag or value (clap's usage-error code), 1 for a runtime failure such
//! as a port that cannot be bound; each failure is one line on stderr.

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

/// Turns the first SIGINT or SIGTERM into `handle.shutdown()`, and a second
/// one into an immediate exit (130) for an operator who does not want to wait.
pub fn stop_on_signals(handle: ShutdownHandle) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    eprintln!("second signal {signal}: exiting now");
                    std::process::exit(130);
                }
                log::info!("signal {signal}: shutting down");
                handle.shutdown();
            }
        })?;
    Ok(())
}

/// One-line fatal error, exit code 1.
pub fn fail(what: impl std::fmt::Display) -> i32 {
    eprintln!("lubdub: {what}");
    1
}
