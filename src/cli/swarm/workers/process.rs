//! One worker process: how it is started, its pipes, what it has said,
//! and how it ended.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};

use lubdub::swarm::plan::{format_sources, WorkerPlan};
use lubdub::swarm::{Part, PartCounts, Report, Snapshot, SwarmConfig};
use mio::unix::pipe::Receiver;
use mio::{Interest, Token};

/// One worker process, its pipes, and what it has said.
pub(super) struct Worker {
    pub(super) plan: WorkerPlan,
    pub(super) child: Option<std::process::Child>,
    /// Why it has no report, when that is known before it ends.
    pub(super) broken: Option<String>,
    pub(super) out: Option<Receiver>,
    pub(super) err: Option<Receiver>,
    pub(super) out_buf: Vec<u8>,
    pub(super) err_buf: Vec<u8>,
    /// Its last line on stderr: why it ended, if it ended early.
    pub(super) last_err_line: String,
    pub(super) statuses: VecDeque<Snapshot>,
    /// It sent its last status line: no more will come.
    pub(super) sent_last: bool,
    pub(super) report: Option<Result<Report, String>>,
}

impl Worker {
    pub(super) fn spawn(
        plan: &WorkerPlan,
        args: &[OsString],
        config: &SwarmConfig,
        registry: &mio::Registry,
    ) -> Worker {
        let mut worker = Worker {
            plan: plan.clone(),
            child: None,
            broken: None,
            out: None,
            err: None,
            out_buf: Vec::new(),
            err_buf: Vec::new(),
            last_err_line: String::new(),
            statuses: VecDeque::new(),
            sent_last: false,
            report: None,
        };
        match worker.start(args, config, registry) {
            Ok(()) => {
                let pid = worker.child.as_ref().map_or(0, |c| c.id());
                log::info!(
                    "swarm: worker {} (pid {pid}): {} clients, {} connects/s{}",
                    plan.index,
                    plan.clients,
                    plan.connect_rate,
                    match plan.sources.is_empty() {
                        true => String::new(),
                        false => format!(", from {}", format_sources(&plan.sources)),
                    }
                );
            }
            Err(e) => {
                if let Some(mut child) = worker.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                worker.out = None;
                worker.err = None;
                worker.broken = Some(format!("could not be started: {e}"));
            }
        }
        worker
    }

    fn start(
        &mut self,
        args: &[OsString],
        config: &SwarmConfig,
        registry: &mio::Registry,
    ) -> io::Result<()> {
        let p = &self.plan;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("swarm")
            .args(args)
            .arg(format!(
                "--worker={}:{}:{}:{}",
                p.index, p.first, config.clients, p.of_workers
            ))
            .arg(format!("--clients={}", p.clients))
            .arg(format!("--connect-rate={}", p.connect_rate))
            .arg(format!(
                "--status-every={}",
                lubdub::duration::format(config.status_every)
            ));
        if !p.sources.is_empty() {
            command.arg(format!("--source-addrs={}", format_sources(&p.sources)));
        }
        let parent = std::process::id();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Out of the terminal's process group: Ctrl-C reaches the
            // parent alone, which asks each worker to stop once.
            .process_group(0);
        // SAFETY: between fork and exec only async-signal-safe calls:
        // prctl(2), getppid(2) and sigprocmask(2) with its set's helpers.
        unsafe {
            command.pre_exec(move || {
                // A parent that dies takes its workers with it, gracefully.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // A mark the parent passes on before the worker watches for
                // it waits (blocked, pending across exec) rather than ending
                // the worker, as SIGUSR1 does by default; the worker
                // unblocks it once it watches.
                let set = crate::cli::mark_signal_set();
                if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // It may have died before the line above.
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::other("the parent is gone"));
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let out = child.stdout.take().map(Receiver::from);
        let err = child.stderr.take().map(Receiver::from);
        self.child = Some(child);
        let index = self.plan.index;
        for (pipe, token) in [(out, Token(2 * index)), (err, Token(2 * index + 1))] {
            let Some(mut pipe) = pipe else {
                return Err(io::Error::other("no pipe to the worker"));
            };
            pipe.set_nonblocking(true)?;
            registry.register(&mut pipe, token, Interest::READABLE)?;
            if token.0 % 2 == 0 {
                self.out = Some(pipe);
            } else {
                self.err = Some(pipe);
            }
        }
        Ok(())
    }

    /// Whether any of its pipes is still open.
    pub(super) fn speaking(&self) -> bool {
        self.out.is_some() || self.err.is_some()
    }

    /// Whether a status line may still come from it.
    pub(super) fn may_send_status(&self) -> bool {
        self.out.is_some() && !self.sent_last && self.report.is_none()
    }

    /// Its part of the merged report: its counts, or why it has none.
    pub(super) fn into_part(mut self, merged: &mut Report) -> Part {
        let status = self.child.as_mut().map(|c| c.wait());
        let outcome = match (self.report.take(), self.broken.take()) {
            (Some(Ok(report)), _) => merged
                .absorb(&report)
                .map(|()| PartCounts::of(&report))
                .map_err(|e| format!("its report does not fit the others': {e}")),
            (Some(Err(e)), _) => Err(e),
            (None, Some(why)) => Err(why),
            (None, None) => Err(ended_without_report(status, &self.last_err_line)),
        };
        Part {
            index: self.plan.index,
            source: None,
            clients: self.plan.clients as u64,
            outcome,
        }
    }
}

/// How a worker with no report ended, in a phrase.
fn ended_without_report(status: Option<io::Result<ExitStatus>>, last_line: &str) -> String {
    let said = match last_line {
        "" => String::new(),
        line => format!(" ({line})"),
    };
    match status {
        // Its last line is whatever it logged last, not why it died.
        Some(Ok(status)) => match (status.signal(), status.code()) {
            (Some(signal), _) => format!("killed by signal {signal} before its report"),
            (_, Some(code)) => format!("exited with code {code} without a report{said}"),
            _ => format!("ended without a report{said}"),
        },
        Some(Err(e)) => format!("cannot be waited for: {e}{said}"),
        None => format!("never ran{said}"),
    }
}
