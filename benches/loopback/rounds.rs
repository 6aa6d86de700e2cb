//! Running servers in turn and measuring them: rounds and their medians,
//! the CPU meter, waiting for connections to be held, and failure checks.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::outcome::Column;
use crate::procstat::{
    cpu_seconds, cpu_times, listen_drops, open_fds, tick_seconds, CpuSpent, CpuTimes,
};
use crate::servers::{Kind, Server, Tools, SERVER_CPU};
use crate::swarm::{Report, Swarm};

/// Poll period while a fill time is being measured, and otherwise.
pub const FINE: Duration = Duration::from_millis(50);
pub const COARSE: Duration = Duration::from_millis(500);

pub fn each(
    tools: &Tools,
    kinds: &[Kind],
    run: impl Fn(&Tools, Kind, &mut Column) -> Result<(), String>,
) -> Vec<Column> {
    each_rounds(tools, kinds, 1, run)
}

/// Runs every server `rounds` times, interleaved (all servers in round 1,
/// then all in round 2…), so a neighbour's burst of work lands on one
/// server's round rather than on all of one server's rounds; each figure
/// is then the median of its rounds.
pub fn each_rounds(
    tools: &Tools,
    kinds: &[Kind],
    rounds: usize,
    run: impl Fn(&Tools, Kind, &mut Column) -> Result<(), String>,
) -> Vec<Column> {
    let mut runs: Vec<Vec<Column>> = kinds.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (i, &kind) in kinds.iter().enumerate() {
            if rounds > 1 {
                eprintln!("  {} (round {} of {rounds}) ...", kind.name(), round + 1);
            } else {
                eprintln!("  {} ...", kind.name());
            }
            let mut col = Column::new(kind);
            let drops = listen_drops().ok();
            let mut result = run(tools, kind, &mut col);
            if let Err(why) = &result {
                if why.starts_with(STOPPED_EARLY) {
                    // A server that stops mid-run with nothing in its log
                    // was most likely signalled by something else on a
                    // shared machine; one retry tells that from a real fault.
                    eprintln!("  {}: {why}; retrying once", kind.name());
                    let first = why.clone();
                    col = Column::new(kind);
                    col.notes
                        .push(format!("first attempt failed, retried: {first}"));
                    result = run(tools, kind, &mut col);
                }
            }
            if let Err(why) = result {
                eprintln!("  {}: {why}", kind.name());
                col.error = Some(why);
            }
            if let (Some(before), Ok(after)) = (drops, listen_drops()) {
                col.set("listen_drops", Some(after.saturating_sub(before) as f64));
            }
            runs[i].push(col);
        }
    }
    kinds
        .iter()
        .zip(runs)
        .map(|(&kind, cols)| median_column(kind, cols))
        .collect()
}

/// Figures whose per-round values are listed beside their median, with
/// the decimals to show.
const SPREAD: [(&str, usize); 3] = [
    ("replies_per_s", 0),
    ("cpu_s_per_m", 3),
    ("own_cpu_s_per_m", 3),
];

/// One column from several rounds: each figure's median over the rounds
/// that measured it; every error and note kept, marked with its round.
fn median_column(kind: Kind, rounds: Vec<Column>) -> Column {
    if rounds.len() == 1 {
        return rounds.into_iter().next().expect("one round");
    }
    let mut out = Column::new(kind);
    let mut keys: Vec<&'static str> = Vec::new();
    for col in &rounds {
        for (k, _) in &col.values {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
    }
    for key in keys {
        let mut v: Vec<f64> = rounds.iter().filter_map(|c| c.get(key)).collect();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        };
        out.set(key, median);
    }
    let n = rounds.len();
    let failed = rounds.iter().filter(|c| c.error.is_some()).count();
    // The spread behind each median, for the headline figures.
    for (key, decimals) in SPREAD {
        let each: Vec<String> = rounds
            .iter()
            .map(|c| c.get(key).map_or("—".into(), |v| format!("{v:.decimals$}")))
            .collect();
        if each.iter().any(|e| e != "—") {
            out.notes
                .push(format!("{key} by round: {}", each.join(" / ")));
        }
    }
    for (i, col) in rounds.into_iter().enumerate() {
        if let Some(e) = col.error {
            out.notes
                .push(format!("round {}: not measured: {e}", i + 1));
        }
        for note in col.notes {
            out.notes.push(format!("round {}: {note}", i + 1));
        }
    }
    if failed == n {
        out.error = Some(format!("not measured in any of {n} rounds"));
    }
    out
}

/// Measures a window: the server's CPU time and wall time, and what else
/// the server's CPU did.
///
/// The accounting must add up, and is checked: CPU 0's busy and idle time
/// make its wall clock, and the server (pinned to CPU 0) cannot have run
/// longer than CPU 0 was busy. What is left of the busy time once the
/// server's own is taken out is other tasks: neighbours on a shared
/// machine, steal by the host, and softirq that ran while someone else (or
/// no one) was on the CPU. The server's time includes the softirq that ran
/// while it was on the CPU — on this kernel softirq is charged to whoever
/// was running — which is loopback TCP work the same for every server; the
/// "less softirq" figures take all of CPU 0's softirq out, a lower bound on
/// the server's own work that separates servers more sharply.
pub struct Meter {
    pid: u32,
    start: Instant,
    server_cpu: f64,
    cpu_times: Option<CpuTimes>,
}

pub struct Measured {
    pub server_cpu_s: f64,
    pub wall_s: f64,
    /// CPU 0's softirq over the window, when it could be read.
    pub softirq_s: Option<f64>,
}

impl Measured {
    /// The server's CPU less all of CPU 0's softirq (never below zero).
    pub fn server_less_softirq_s(&self) -> Option<f64> {
        self.softirq_s.map(|q| (self.server_cpu_s - q).max(0.0))
    }
}

impl Meter {
    pub fn start(server: &Server) -> Result<Meter, String> {
        Ok(Meter {
            pid: server.pid,
            start: Instant::now(),
            server_cpu: cpu_seconds(server.pid).map_err(|e| e.to_string())?,
            cpu_times: cpu_times(SERVER_CPU).ok(),
        })
    }

    pub fn stop(self, col: &mut Column) -> Result<Measured, String> {
        let server_cpu = cpu_seconds(self.pid).map_err(|e| e.to_string())?;
        let wall_s = self.start.elapsed().as_secs_f64();
        let server_cpu_s = server_cpu - self.server_cpu;
        let mut softirq_s = None;
        if let (Some(b), Ok(a)) = (self.cpu_times, cpu_times(SERVER_CPU)) {
            let cpu = b.until(&a);
            let busy = check_adds_up(&cpu, server_cpu_s, wall_s)?;
            let pct = |s: f64| Some(s / wall_s * 100.0);
            col.set("softirq_pct", pct(cpu.softirq));
            // Inside the tolerance a hair below zero is rounding: nothing.
            col.set("others_pct", pct((busy - server_cpu_s).max(0.0)));
            softirq_s = Some(cpu.softirq);
        }
        Ok(Measured {
            server_cpu_s,
            wall_s,
            softirq_s,
        })
    }
}

/// CPU 0's busy time over the window — the wall clock less its exact idle
/// time — after checking that the parts do not exceed the whole beyond the
/// counters' resolution; fails loudly when they do.
///
/// Only exact counters are checked against each other: the wall clock, the
/// idle time (accounted as each idle period ends) and the server's CPU time
/// (the scheduler's, to the nanosecond). The tick-sampled columns are not:
/// on a CPU that wakes thousands of times a second each tick that finds it
/// awake counts a whole tick busy — seen: 8.39 s "busy" beside 25.46 s idle
/// in a 30 s window — and on one that flips between busy and idle under
/// load they undercount. Softirq, sampled the same way, is shown but not
/// trusted to add up.
fn check_adds_up(cpu: &CpuSpent, server_s: f64, wall_s: f64) -> Result<f64, String> {
    // Each counter is read twice, each to one tick, a few syscalls apart;
    // the wall clock is read around them.
    let slack = 4.0 * tick_seconds() + 0.01 * wall_s;
    let busy = wall_s - cpu.idle;
    let problem = if cpu.idle > wall_s + slack {
        Some("CPU 0 was idle longer than the window")
    } else if server_s > busy + slack {
        Some("the server, pinned to CPU 0, ran longer than CPU 0 was busy")
    } else {
        None
    };
    match problem {
        None => Ok(busy.max(0.0)),
        Some(what) => Err(format!(
            "CPU accounting does not add up: {what} (wall {wall_s:.3} s, CPU 0 idle {:.3} s, \
             server {server_s:.3} s; slack {slack:.3} s; sampled busy {:.3} s, softirq {:.3} s)",
            cpu.idle, cpu.busy, cpu.softirq
        )),
    }
}

pub fn note_swarm(col: &mut Column, report: &Report) {
    if !report.ok {
        col.notes.push(format!("swarm: {}", report.status));
    }
}

const STOPPED_EARLY: &str = "server exited during the run";

pub fn check_alive(server: &mut Server) -> Result<(), String> {
    match server.exited() {
        Some(status) => Err(format!(
            "{STOPPED_EARLY} ({status}): {}",
            crate::servers::log_tail(&server.log)
        )),
        None => Ok(()),
    }
}

/// Polls the server's descriptor count until it holds `want` more than
/// `base`, `until` passes or every swarm has exited. Returns when `want` was
/// reached (from `start`) and the most held at once. Each poll lists up to
/// 20,000 descriptors on the load CPU, so `every` is kept coarse when no
/// timing depends on it.
pub fn wait_held(
    server: &Server,
    (base, want): (usize, usize),
    (start, until): (Instant, Instant),
    every: Duration,
    swarms: &mut [Swarm],
) -> (Option<Duration>, usize) {
    let mut most = 0;
    while Instant::now() < until {
        let held = open_fds(server.pid).unwrap_or(0).saturating_sub(base);
        most = most.max(held);
        if held >= want {
            return (Some(start.elapsed()), most);
        }
        if swarms.iter_mut().all(|s| s.exited()) {
            break;
        }
        sleep(every);
    }
    (None, most)
}
