//! `lubdub swarm --workers N|auto`: one swarm over several processes.
//!
//! The parent plans the split ([`lubdub::swarm::plan`]), runs this same
//! binary once per worker with the same flags and a hidden `--worker`
//! flag giving its slice of the clients, and reads each worker's stdout: a
//! `status JSON` line per status window and a `report JSON` line at the
//! end. Workers' stderr (their logs) is relayed, each line prefixed with
//! the worker's name. The parent prints one status line for all (a
//! worker's k-th lines merged, once each live worker has sent its k-th)
//! and one report: the workers' reports merged exactly, judged by the same
//! criteria, with each worker's counts beside it.
//!
//! The parent's own loop is one `mio::Poll` over the workers' pipes and its
//! signal waker — no thread per worker. A SIGINT or SIGTERM to the parent
//! is passed on to every worker as SIGTERM (the workers run in a process
//! group of their own, so a terminal's Ctrl-C reaches the parent alone and
//! each worker is asked once); a parent that dies takes its workers with it
//! (`PR_SET_PDEATHSIG`). A worker that dies without its report is a failure
//! of the swarm's own, named in one line; the others' figures still make
//! the report.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use log::LevelFilter;
use lubdub::shutdown::ShutdownHandle;
use lubdub::swarm::plan::{self, format_sources, Machine, Workers};
use lubdub::swarm::ports::InUse;
use lubdub::swarm::{Part, Report, Snapshot, SwarmConfig};
use mio::{Events, Poll, Token};

use super::Output;
use process::Worker;

mod process;

const WAKER: Token = Token(usize::MAX);

/// Longest line a worker may write (a report with its three histograms is
/// a few tens of KiB): past it the worker is taken for broken.
const MAX_LINE: usize = 64 << 20;

/// Flags the parent sets per worker; the rest pass through as given.
const PER_WORKER_FLAGS: [&str; 9] = [
    "--workers",
    "--worker",
    "--clients",
    "-c",
    "--connect-rate",
    "-r",
    "--source-addrs",
    "--status-every",
    "--json",
];

/// Plans, runs the workers, and reports for all of them.
pub fn run(
    config: SwarmConfig,
    workers: Workers,
    tty: bool,
    log_level: LevelFilter,
    log_format: crate::cli::logs::LogFormat,
    output: Output,
) -> i32 {
    let server = config
        .connect
        .resolve_blocking()
        .ok()
        .and_then(|addrs| addrs.into_iter().next());
    let in_use = server.and_then(InUse::towards);
    let plan = match plan::plan(&config, workers, &Machine::read(), server, in_use.as_ref()) {
        Ok(plan) => plan,
        Err(why) => {
            eprintln!("error: --workers: {why}");
            return 2;
        }
    };
    crate::cli::init_logging(log_level, log_format);
    let (poll, shutdown) = match Poll::new().and_then(|poll| {
        let shutdown = ShutdownHandle::new(poll.registry(), WAKER)?;
        Ok((poll, shutdown))
    }) {
        Ok(pair) => pair,
        Err(e) => return crate::cli::fail(format!("swarm: cannot set up the event loop: {e}")),
    };
    let mark = Arc::new(AtomicBool::new(false));
    if let Err(e) = crate::cli::stop_and_mark_on_signals(shutdown.clone(), mark.clone()) {
        return crate::cli::fail(format!("swarm: cannot watch for signals: {e}"));
    }
    log::info!(
        "swarm: {} clients to {} in {} worker processes",
        config.clients,
        config.connect,
        plan.workers.len()
    );
    if let (Some(picked), Some(server)) = (&plan.picked_sources, server) {
        log::info!(
            "swarm: {} clients need more local ports towards {server} than one source address gives cheaply (two fifths of its range: past that, each connect steps over more and more taken ports); connecting from {}",
            config.clients,
            format_sources(picked)
        );
    }
    if let Some(warning) = super::ramp_warning(&config) {
        log::warn!("{warning}");
    }

    let args = passed_on(std::env::args_os().skip(2));
    let mut fleet: Vec<Worker> = plan
        .workers
        .iter()
        .map(|p| Worker::spawn(p, &args, &config, poll.registry()))
        .collect();
    let report = Parent {
        poll,
        shutdown,
        mark,
        tty,
        status_shown: false,
    }
    .run(&mut fleet);
    match report {
        // Not one worker ran to its end: there are no figures to report.
        Ok(report) if report.parts.iter().all(|p| p.outcome.is_err()) => {
            let why: Vec<String> = report
                .parts
                .iter()
                .filter_map(|p| {
                    p.outcome
                        .as_ref()
                        .err()
                        .map(|e| format!("{} {e}", p.label()))
                })
                .collect();
            crate::cli::fail(format!("swarm: no worker ran: {}", why.join("; ")))
        }
        Ok(report) => {
            crate::cli::log_stop_signal();
            output.report(&report)
        }
        Err(e) => crate::cli::fail(format!("swarm: waiting for the workers failed: {e}")),
    }
}

/// Sends `signal` to every worker still running.
fn signal_all(fleet: &[Worker], signal: libc::c_int) {
    for child in fleet.iter().filter_map(|w| w.child.as_ref()) {
        // SAFETY: kill(2) with a pid of our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    }
}

/// The parent's command line without the flags it sets per worker.
fn passed_on(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        // `-c100` and `-c=100` are a short flag with its value attached.
        let (name, attached) = match text.strip_prefix('-') {
            Some(rest) if !rest.starts_with('-') && rest.len() > 1 => (&text[..2], true),
            _ => match text.split_once('=') {
                Some((name, _)) => (name, true),
                None => (&*text, false),
            },
        };
        if PER_WORKER_FLAGS.contains(&name) {
            // `--flag value`: the value goes too; `--flag=value` is one.
            if !attached {
                args.next();
            }
            continue;
        }
        out.push(arg);
    }
    out
}

/// The parent's loop and its stderr.
struct Parent {
    poll: Poll,
    shutdown: ShutdownHandle,
    /// A SIGUSR1 to pass on to every worker.
    mark: Arc<AtomicBool>,
    tty: bool,
    /// A status line is on the terminal, not yet ended.
    status_shown: bool,
}

impl Parent {
    /// Reads every worker until all have ended, printing status lines and
    /// relaying logs, then merges their reports.
    fn run(mut self, fleet: &mut Vec<Worker>) -> io::Result<Report> {
        let mut events = Events::with_capacity(64);
        let mut forwarded = false;
        let mut chunk = vec![0u8; 64 * 1024];
        while fleet.iter().any(Worker::speaking) {
            if self.mark.swap(false, Ordering::Relaxed) {
                signal_all(fleet, libc::SIGUSR1);
            }
            if self.shutdown.is_requested() && !forwarded {
                forwarded = true;
                signal_all(fleet, libc::SIGTERM);
            }
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let (index, stdout) = (event.token().0 / 2, event.token().0 % 2 == 0);
                if let Some(worker) = fleet.get_mut(index) {
                    self.drain(worker, stdout, &mut chunk);
                }
            }
            self.print_statuses(fleet);
        }
        // Statuses left when every worker has ended (one that died with
        // lines queued by others).
        while fleet.iter().any(|w| !w.statuses.is_empty()) {
            let parts: Vec<Snapshot> = fleet
                .iter_mut()
                .filter_map(|w| w.statuses.pop_front())
                .collect();
            self.status(&Snapshot::merge(&parts));
        }
        if self.tty && self.status_shown {
            eprintln!();
        }
        let first = fleet
            .iter()
            .find_map(|w| w.report.as_ref().and_then(|r| r.as_ref().ok()));
        let mut merged = match first {
            Some(r) => Report::empty(r.mode, r.interval_us, r.flood_depth, r.criteria),
            None => Report::empty("interval", 0, 0, Default::default()),
        };
        let parts: Vec<Part> = std::mem::take(fleet)
            .into_iter()
            .map(|w| w.into_part(&mut merged))
            .collect();
        merged.parts = parts;
        merged.summarize();
        Ok(merged)
    }

    /// Reads one of a worker's pipes until it would block or ends, and
    /// acts on every whole line.
    fn drain(&mut self, worker: &mut Worker, stdout: bool, chunk: &mut [u8]) {
        loop {
            let pipe = if stdout {
                &mut worker.out
            } else {
                &mut worker.err
            };
            let Some(reader) = pipe.as_mut() else { return };
            let ended = match reader.read(chunk) {
                Ok(0) => true,
                Ok(n) => {
                    let buf = if stdout {
                        &mut worker.out_buf
                    } else {
                        &mut worker.err_buf
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => true,
            };
            if ended {
                if let Some(mut reader) = pipe.take() {
                    let _ = self.poll.registry().deregister(&mut reader);
                }
            }
            let buf = if stdout {
                &mut worker.out_buf
            } else {
                &mut worker.err_buf
            };
            // At the end, what is left is a last line without its newline.
            if ended && !buf.is_empty() {
                buf.push(b'\n');
            }
            let mut lines = Vec::new();
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            if buf.len() > MAX_LINE {
                buf.clear();
                worker.broken = Some(format!("wrote a line longer than {} MiB", MAX_LINE >> 20));
                if let Some(child) = worker.child.as_mut() {
                    let _ = child.kill();
                }
            }
            for line in lines {
                if stdout {
                    self.heard(worker, &line);
                } else {
                    self.relay(worker.plan.index, &line);
                    worker.last_err_line = line;
                }
            }
            if ended {
                return;
            }
        }
    }

    /// A line from a worker's stdout: a status or its report.
    fn heard(&mut self, worker: &mut Worker, line: &str) {
        let index = worker.plan.index;
        match line.split_once(' ') {
            Some(("status", json)) => match Snapshot::from_json(json) {
                Ok(snapshot) => {
                    worker.sent_last |= snapshot.last;
                    worker.statuses.push_back(snapshot);
                }
                Err(e) => {
                    log::warn!("swarm: worker {index}: a status line that cannot be read: {e}")
                }
            },
            Some(("report", json)) => {
                worker.report = Some(
                    Report::from_json(json).map_err(|e| format!("its report cannot be read: {e}")),
                );
            }
            _ => self.relay(index, line),
        }
    }

    /// A worker's log line, on the parent's stderr under its name.
    fn relay(&mut self, index: usize, line: &str) {
        let mut err = io::stderr().lock();
        if self.tty && self.status_shown {
            // Over the status line; the next one is drawn below.
            let _ = write!(err, "\r\x1b[K");
            self.status_shown = false;
        }
        if crate::cli::logs::is_json() {
            let _ = writeln!(err, "{}", crate::cli::logs::from_worker(index, line));
        } else {
            let _ = writeln!(err, "worker {index}: {line}");
        }
    }

    /// Status lines every worker that may still send one has sent.
    fn print_statuses(&mut self, fleet: &mut [Worker]) {
        loop {
            let waiting = fleet
                .iter()
                .any(|w| w.statuses.is_empty() && w.may_send_status());
            if waiting || fleet.iter().all(|w| w.statuses.is_empty()) {
                return;
            }
            let parts: Vec<Snapshot> = fleet
                .iter_mut()
                .filter_map(|w| w.statuses.pop_front())
                .collect();
            self.status(&Snapshot::merge(&parts));
        }
    }

    fn status(&mut self, s: &Snapshot) {
        let mut err = io::stderr().lock();
        if crate::cli::logs::is_json() {
            let _ = writeln!(
                err,
                "{}",
                crate::cli::logs::object("info", "status", &super::status_fields(s))
            );
        } else if self.tty {
            let _ = write!(err, "\r{s}\x1b[K{}", if s.last { "\n" } else { "" });
            self.status_shown = !s.last;
        } else {
            let _ = writeln!(err, "{s}");
        }
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_set_per_worker_are_taken_out_with_their_values() {
        let args = [
            "--connect",
            "127.0.0.1:9",
            "--clients",
            "200",
            "--workers=2",
            "--json",
            "-",
            "--lenient",
            "--source-addrs",
            "127.0.0.2-127.0.0.3",
            "--status-every=1s",
            "--connect-rate",
            "5",
            "-c",
            "7",
            "-r100",
            "-c=3",
            "-d",
            "3s",
            "--interval",
            "200ms",
        ]
        .map(OsString::from);
        let kept = passed_on(args.into_iter());
        assert_eq!(
            kept,
            [
                "--connect",
                "127.0.0.1:9",
                "--lenient",
                "-d",
                "3s",
                "--interval",
                "200ms"
            ]
            .map(OsString::from)
        );
    }
}
