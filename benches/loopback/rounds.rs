//! Running servers in turn and measuring them: rounds and their medians,
//! the CPU meter, waiting for connections to be held, and failure checks.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::outcome::Column;
use crate::procstat::{cpu_seconds, cpu_times, listen_drops, open_fds, CpuTimes};
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
const SPREAD: [(&str, usize); 2] = [("replies_per_s", 0), ("cpu_s_per_m", 3)];

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
/// the server's CPU did: softirq (mostly loopback TCP input run on behalf of
/// the server's own sends, which the kernel does not charge to the server)
/// and other tasks (neighbours on a shared machine, or steal by the host).
/// A large "other tasks" figure means the figures beside it are noisy.
pub struct Meter {
    pid: u32,
    start: Instant,
    server_cpu: f64,
    cpu_times: Option<CpuTimes>,
}

pub struct Measured {
    pub server_cpu_s: f64,
    pub wall_s: f64,
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
        if let (Some(b), Ok(a)) = (self.cpu_times, cpu_times(SERVER_CPU)) {
            let (busy, softirq) = b.seconds_until(&a);
            let others = (busy - softirq - server_cpu_s) / wall_s * 100.0;
            col.set("softirq_pct", Some(softirq / wall_s * 100.0));
            col.set("others_pct", Some(others.max(0.0)));
        }
        Ok(Measured {
            server_cpu_s,
            wall_s,
        })
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
