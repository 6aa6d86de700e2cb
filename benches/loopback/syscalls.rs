//! Syscalls per reply, counted with `perf stat` on the kernel's syscall
//! tracepoints: the one figure here that does not swing with the machine's
//! mood. Optional: without `perf`, or where the tracepoints are not
//! readable, the rows stay empty and the bench says why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const TRACEPOINTS: &str = "/sys/kernel/tracing/events/syscalls";

/// Syscalls grouped by what they do for a request/reply server.
pub const GROUPS: [(&str, &[&str]); 3] = [
    (
        "reads",
        &["read", "readv", "recvfrom", "recvmsg", "recvmmsg"],
    ),
    (
        "writes",
        &["write", "writev", "sendto", "sendmsg", "sendmmsg"],
    ),
    ("waits", &["epoll_wait", "epoll_pwait", "epoll_pwait2"]),
];

/// The tracepoints that exist here, or why counting is unavailable.
pub fn available() -> Result<Vec<String>, String> {
    if crate::servers::which("perf").is_none() {
        return Err("perf not found (linux-perf package)".into());
    }
    let events: Vec<String> = GROUPS
        .iter()
        .flat_map(|(_, calls)| calls.iter())
        .map(|call| format!("sys_enter_{call}"))
        .filter(|e| Path::new(TRACEPOINTS).join(e).exists())
        .map(|e| format!("syscalls:{e}"))
        .collect();
    if events.is_empty() {
        // tracefs is often simply not mounted (a fresh VM, a container).
        return Err(format!(
            "no syscall tracepoints under {TRACEPOINTS} (as root: mount -t tracefs nodev /sys/kernel/tracing)"
        ));
    }
    Ok(events)
}

/// A `perf stat` counting one process's syscalls until stopped.
pub struct Counting {
    child: Child,
    out: PathBuf,
}

impl Counting {
    pub fn start(events: &[String], pid: u32, out: PathBuf) -> Result<Counting, String> {
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", &events.join(",")])
            .arg("-p")
            .arg(pid.to_string())
            .arg("-o")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn perf: {e}"))?;
        Ok(Counting { child, out })
    }

    /// Stops counting (SIGINT makes perf print its totals) and returns the
    /// count per group, in `GROUPS` order.
    pub fn stop(mut self) -> Result<[f64; 3], String> {
        // SAFETY: signals our own unreaped child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out).map_err(|e| e.to_string())?;
        let mut sums = [0.0; 3];
        let mut seen = false;
        // CSV lines: value,unit,event,...
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut fields = line.split(',');
            let (Some(value), Some(_), Some(event)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let call = event.trim_start_matches("syscalls:sys_enter_");
            for (i, (_, calls)) in GROUPS.iter().enumerate() {
                if calls.contains(&call) {
                    sums[i] += value;
                    seen = true;
                }
            }
        }
        if seen {
            Ok(sums)
        } else {
            Err(format!("perf counted nothing (see {})", self.out.display()))
        }
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
