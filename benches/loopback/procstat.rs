//! What the kernel says about a process: CPU time, resident memory and open
//! descriptors, read from `/proc/PID/{stat,status,fd}`.
//!
//! These are read from outside the measured process so every server — ours,
//! tokio's, Redis, the floor — is measured the same way and none of them
//! pays for measuring itself.

use std::fs;
use std::io;

/// CPU time a process (all its threads) has spent, user plus system.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // `comm` (field 2) is in parentheses and may itself contain spaces or
    // parentheses, so fields are counted from the last ')'. After it come
    // field 3 (state) onwards; utime and stime are fields 14 and 15.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| bad(&stat))?;
    let mut fields = after.split_whitespace().skip(14 - 3);
    let mut next = || -> io::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad(&stat))
    };
    let ticks = next()? + next()?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// `sysconf(_SC_CLK_TCK)`: the unit of utime and stime (100 on Linux).
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant; no memory is passed.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Resident memory now and at its peak, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`.
    pub rss_kib: u64,
    /// `VmHWM`, the peak of `VmRSS`.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` from `/proc/PID/status`.
pub fn memory(pid: u32) -> io::Result<Memory> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> io::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| bad(&status))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// How many descriptors a process holds open. Every server here holds one
/// per connection, so the change in this count is the number of connections
/// held, measured the same way for every server.
pub fn open_fds(pid: u32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

fn bad(text: &str) -> io::Error {
    let head: String = text.chars().take(80).collect();
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected /proc text: {head:?}"),
    )
}

/// Clock ticks one CPU has spent busy, idle, and (of the busy ones) in
/// softirq, from `/proc/stat`.
///
/// Idle time is exact: a tickless kernel accounts each idle period as it
/// ends. Busy time is sampled by the timer tick, and wanders: on a CPU that
/// flips between busy and idle under load it undercounts (2.54 s busy and
/// 0.33 s idle over a 3.06 s window), on one that wakes briefly thousands
/// of times a second it overcounts (8.39 s busy and 25.46 s idle over 30 s).
/// So busy is taken as the wall clock less idle. What none of them say is
/// whose work a
/// softirq tick was: over loopback, a sender's CPU runs the receiving side's
/// TCP input in softirq. Without `CONFIG_IRQ_TIME_ACCOUNTING` (this kernel)
/// a softirq tick is charged both to the softirq column and to the `stime`
/// of whatever task was running, so a server's own CPU time already
/// includes the softirq that ran while it was on the CPU — subtracting the
/// softirq column from "busy" *and* the server's time counts it twice.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    busy: u64,
    idle: u64,
    softirq: u64,
}

/// Reads `/proc/stat`'s line for CPU `cpu`.
pub fn cpu_times(cpu: &str) -> io::Result<CpuTimes> {
    let stat = fs::read_to_string("/proc/stat")?;
    let prefix = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&prefix))
        .ok_or_else(|| bad(&stat))?;
    // user nice system idle iowait irq softirq steal (guest time is already
    // inside user and nice)
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    if v.len() < 8 {
        return Err(bad(line));
    }
    let idle = v[3] + v[4];
    let total: u64 = v.iter().sum();
    Ok(CpuTimes {
        busy: total - idle,
        idle,
        softirq: v[6],
    })
}

/// Seconds one CPU spent over a window.
#[derive(Debug, Clone, Copy)]
pub struct CpuSpent {
    pub busy: f64,
    pub idle: f64,
    pub softirq: f64,
}

impl CpuTimes {
    /// What the CPU did between `self` and a later sample.
    pub fn until(&self, later: &CpuTimes) -> CpuSpent {
        let hz = clock_ticks_per_second();
        let s = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz;
        CpuSpent {
            busy: s(self.busy, later.busy),
            idle: s(self.idle, later.idle),
            softirq: s(self.softirq, later.softirq),
        }
    }
}

/// The resolution of `/proc/stat` and `/proc/PID/stat`, in seconds.
pub fn tick_seconds() -> f64 {
    1.0 / clock_ticks_per_second()
}

/// The host's count of connections dropped at a full listen queue
/// (`TcpExt: ListenDrops` in `/proc/net/netstat`). It is host-wide: on a
/// shared machine other programs' listeners add to it too.
pub fn listen_drops() -> io::Result<u64> {
    let text = fs::read_to_string("/proc/net/netstat")?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next(), lines.next());
    let (Some(names), Some(values)) = (names, values) else {
        return Err(bad(&text));
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenDrops")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| bad(names))
}
