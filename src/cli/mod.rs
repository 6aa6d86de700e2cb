//! The command-line front end: the only place that parses arguments.
//!
//! Exit codes are one table for every subcommand ([`EXIT_CODES`], shown
//! by every `--help`); each failure is one line on stderr.
//!
//! Every numeric flag has a range. clap checks the syntax; the library's
//! `validate` checks the range (one place, shared with embedding programs)
//! and names the field, which is the flag's name with underscores.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use log::LevelFilter;
use lubdub::shutdown::ShutdownHandle;

mod client;
mod generate;
mod hints;
pub mod logs;
mod out;
mod server;
mod swarm;
mod workers;

/// The exit codes of every subcommand, for `--help` and the man page.
pub const EXIT_CODES: &str = "Exit codes (every subcommand):
  0    success: a clean stop on SIGINT or SIGTERM, a swarm run that met its
       target; a reader that closes stdout early (`| head`) changes no code
  1    a runtime failure: a port that cannot be bound, a file limit, an event
       loop that cannot be set up, a report that cannot be written
  2    a usage error: no subcommand, a bad flag or value (one line naming the
       flag), a --json path that cannot be written, a --workers plan this
       machine cannot hold, a report `swarm merge` cannot read
  3    swarm: the run missed its target (the reasons are stderr's last line)
  4    swarm: the run failed only for the swarm's own doing (it stalled past
       --max-stall, fell behind, or a worker died): the server is not blamed
  130  a second SIGINT or SIGTERM: exit at once, without finishing the stop";

#[derive(Parser, Debug)]
#[command(
    name = "lubdub",
    version,
    about = "Keeps TCP connections honest: heartbeat server, reconnecting client, load harness",
    arg_required_else_help = true,
    after_help = EXIT_CODES
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Answer heartbeats and evict silent peers.
    // Boxed as well, since the abuse limits' address lists joined it.
    #[command(after_help = EXIT_CODES)]
    Server(Box<server::ServerArgs>),
    /// Send heartbeats to a server and reconnect when it goes silent.
    #[command(after_help = EXIT_CODES)]
    Client(client::ClientArgs),
    /// Hold many heartbeating connections to load-test a server.
    // Boxed: its flags outweigh the others' several times over.
    // `swarm merge` needs neither --connect nor --clients, and takes none
    // of a run's flags.
    #[command(
        after_help = EXIT_CODES,
        subcommand_negates_reqs = true,
        args_conflicts_with_subcommands = true
    )]
    Swarm(Box<swarm::SwarmArgs>),
    /// Print lubdub's man page (roff) to stdout: `lubdub manpage | man -l -`.
    #[command(after_help = EXIT_CODES)]
    Manpage,
    /// Print a shell completion script to stdout.
    #[command(after_help = EXIT_CODES)]
    Completions {
        /// The shell to complete in.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

/// Parses the arguments, runs the subcommand and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version are "errors" that print to stdout and
            // exit 0; a closed stdout ends them quietly.
            return match out::print(&e.render().to_string()) {
                Ok(()) => e.exit_code(),
                Err(e) => fail(format!("cannot write to stdout: {e}")),
            };
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Bare `lubdub`: the usage, on stderr, as a usage error (2),
            // the code clap gives a missing subcommand.
            out::eprint(&e.render().to_string());
            return 2;
        }
        Err(e) => {
            let hint = hints::for_error(&e, std::env::args().skip(1));
            let mut line = one_line(&e.to_string());
            if let Some(hint) = hint {
                line.push_str(&format!(" tip: {hint}"));
            }
            out::eprint(&format!("{line}\n"));
            return e.exit_code();
        }
    };
    match cli.command {
        Command::Server(args) => server::run(*args),
        Command::Client(args) => client::run(args),
        Command::Swarm(args) => swarm::run(*args),
        Command::Manpage => generate::manpage(),
        Command::Completions { shell } => generate::completions(shell),
    }
}

/// clap value parser for a count in `min..=max`: a value out of the range,
/// or past what the type holds, names the range.
pub fn count<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |text: &str| {
        let digits = text.trim();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`{text}` is not a whole number (from {min} to {max})"
            ));
        }
        match digits.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(format!("must be between {min} and {max} (got {digits})")),
        }
    }
}

/// The log levels, for `--log-level`: clap lists them in `--help` and in
/// the error for any other word.
pub fn log_level() -> impl clap::builder::TypedValueParser<Value = LevelFilter> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["off", "error", "warn", "info", "debug", "trace"])
        .map(|level| level.parse().unwrap_or(LevelFilter::Info))
}

/// clap's error text as one line: its message, with a list it spreads over
/// several lines (the missing flags) joined, and without the usage and
/// "try --help" lines after it.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value clap could not judge alone (a range, or one flag against
/// another) is still a usage error: name the flag, exit 2.
pub fn usage_error(e: &lubdub::check::ConfigError) -> i32 {
    out::eprint(&format!(
        "error: --{}: {}\n",
        e.field.replace('_', "-"),
        e.reason
    ));
    2
}

/// The kernel keepalive flags, the same for every subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct KeepaliveArgs {
    /// TCP_KEEPIDLE, whole seconds: silence before the kernel's first
    /// keepalive probe [default: interval × misses, so a heartbeating
    /// connection is never probed].
    #[arg(long, value_parser = duration, value_name = "DUR")]
    keepalive_idle: Option<Duration>,
    /// TCP_KEEPINTVL, whole seconds: time between unanswered keepalive probes.
    #[arg(long, default_value = "5s", value_parser = duration, value_name = "DUR")]
    keepalive_interval: Duration,
    /// TCP_KEEPCNT: unanswered probes before the kernel drops the connection (1..=127).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = count(1, lubdub::keepalive::MAX_COUNT))]
    keepalive_count: u32,
    /// TCP_USER_TIMEOUT, whole milliseconds: how long sent data may go
    /// unacknowledged; 0 keeps the kernel default [default: idle + interval × count].
    #[arg(long, value_parser = duration, value_name = "DUR")]
    user_timeout: Option<Duration>,
    /// Turn the kernel's TCP keepalive off (lubdub's own heartbeats still run).
    #[arg(long)]
    no_keepalive: bool,
}

impl KeepaliveArgs {
    pub fn config(&self) -> lubdub::keepalive::KeepaliveConfig {
        lubdub::keepalive::KeepaliveConfig {
            enabled: !self.no_keepalive,
            idle: self.keepalive_idle,
            interval: self.keepalive_interval,
            count: self.keepalive_count,
            user_timeout: self.user_timeout,
            nodelay: true,
        }
    }
}

/// clap value parser for an address to listen on: `HOST:PORT`, a name
/// resolved once, to its first address.
pub fn socket_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| format!("`{text}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

/// clap value parser for a server to connect to: `HOST:PORT`, resolved
/// later and again for every connect.
pub fn target(text: &str) -> Result<lubdub::client::Target, String> {
    text.parse()
}

/// clap value parser for human durations (`250ms`, `5s`, `2m`).
pub fn duration(text: &str) -> Result<Duration, String> {
    lubdub::duration::parse(text).map_err(|e| e.to_string())
}

/// Bytes given as text with C-style escapes: `\n`, `\r`, `\t`, `\0`,
/// `\\` and `\xNN` (any byte); everything else stands for its UTF-8 bytes.
pub fn escaped_bytes(text: &str) -> Result<Bytes, String> {
    unescape(text).map(Bytes)
}

/// Bytes from the command line (a type of its own: clap takes a bare
/// `Vec<u8>` for a list of numbers).
#[derive(Debug, Clone)]
pub struct Bytes(pub Vec<u8>);

fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                // Two hex digits, nothing else (from_str_radix would take a
                // sign).
                match u8::from_str_radix(&hex, 16) {
                    Ok(byte) if hex.len() == 2 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                        out.push(byte)
                    }
                    _ => {
                        return Err(format!(
                            "\\x must be followed by two hex digits (got \"{hex}\")"
                        ))
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape \\{other} (known: \\n \\r \\t \\0 \\\\ \\xNN)"
                ))
            }
            None => return Err("a trailing \\ escapes nothing (write \\\\ for a backslash)".into()),
        }
    }
    if out.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(out)
}

/// Log to stderr at the given level, as text or JSON.
pub fn init_logging(level: LevelFilter, format: logs::LogFormat) {
    logs::init(level, format);
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

/// SIGINT and SIGTERM held back — blocked, so that one sent meanwhile
/// waits — from creation until dropped. Taken before a server logs that it
/// listens and dropped once its handlers are in: a supervisor (or a test)
/// that signals it as soon as it says it listens gets the graceful stop,
/// not the default action's sudden death.
/// It keeps the mask it found, to put back.
pub struct HeldSignals(libc::sigset_t);

/// Holds SIGINT and SIGTERM back until the guard is dropped.
pub fn hold_stop_signals() -> HeldSignals {
    // SAFETY: sigemptyset/sigaddset fill a set we own; pthread_sigmask
    // changes this thread's mask (the only thread at this point).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut before);
        HeldSignals(before)
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        // SAFETY: puts back the mask found at the hold (what a parent
        // blocked stays blocked); a signal that came meanwhile and is not
        // blocked by it is delivered now, to whatever handler is in.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}

/// [`stop_on_signals`], and a SIGUSR1 sets `mark` (a swarm's mark: round
/// trips from then on are reported apart).
pub fn stop_and_mark_on_signals(
    handle: ShutdownHandle,
    mark: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<()> {
    stop_on_signals(handle)?;
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, mark).map(drop)
}

/// The set holding SIGUSR1 alone, the mark: blocked in a swarm worker from
/// its fork until it watches for it. Async-signal-safe (only
/// sigemptyset(3) and sigaddset(3)), so it may run between fork and exec.
pub fn mark_signal_set() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is valid storage; both calls only write it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        set
    }
}

/// Logs which signal ended the run, if one did.
pub fn log_stop_signal() {
    match LAST_SIGNAL.load(Ordering::SeqCst) {
        0 => {}
        signal => log::info!("exiting on signal {signal}"),
    }
}

/// One-line fatal error, exit code 1 (a JSON line under `--log-format
/// json`, so that the stream stays JSON to its end).
pub fn fail(what: impl std::fmt::Display) -> i32 {
    let line = if logs::is_json() {
        format!("{}\n", logs::fatal(&what.to_string()))
    } else {
        format!("lubdub: {what}\n")
    };
    out::eprint(&line);
    1
}

#[cfg(test)]
mod tests {

    fn blocked(signal: i32) -> bool {
        // SAFETY: reads this thread's mask into a set we own.
        unsafe {
            let mut now: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
            libc::sigismember(&now, signal) == 1
        }
    }

    #[test]
    fn held_signals_give_back_the_mask_they_found() {
        // A parent that started us with SIGTERM blocked (a mask is
        // inherited across exec) keeps it blocked after the hold.
        let mut term: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: fills a set we own; changes this test thread's mask only.
        unsafe {
            libc::sigemptyset(&mut term);
            libc::sigaddset(&mut term, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &term, std::ptr::null_mut());
        }
        assert!(!blocked(libc::SIGINT));
        let held = super::hold_stop_signals();
        assert!(blocked(libc::SIGINT) && blocked(libc::SIGTERM));
        drop(held);
        let (int, term_still) = (blocked(libc::SIGINT), blocked(libc::SIGTERM));
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &term, std::ptr::null_mut()) };
        assert!(!int, "SIGINT, not blocked before, is unblocked");
        assert!(term_still, "SIGTERM, blocked before, stays blocked");
    }

    use super::unescape as escaped_bytes;

    #[test]
    fn escapes_give_any_byte_and_mistakes_say_what_is_wrong() {
        assert_eq!(escaped_bytes("hi\\r\\n").unwrap(), b"hi\r\n");
        assert_eq!(
            escaped_bytes("\\x00\\xff\\\\\\t\\0").unwrap(),
            [0, 255, b'\\', b'\t', 0]
        );
        assert_eq!(escaped_bytes("é").unwrap(), "é".as_bytes());
        assert!(escaped_bytes("\\q")
            .unwrap_err()
            .contains("unknown escape \\q"));
        assert!(escaped_bytes("\\x4")
            .unwrap_err()
            .contains("two hex digits"));
        assert!(escaped_bytes("\\xzz")
            .unwrap_err()
            .contains("two hex digits"));
        // A sign is no hex digit, though from_str_radix takes one.
        assert!(escaped_bytes("\\x+f")
            .unwrap_err()
            .contains("two hex digits"));
        assert!(escaped_bytes("end\\").unwrap_err().contains("trailing"));
        assert!(escaped_bytes("").is_err());
    }
}
