//! The three scenarios of issue 4 — flood, idle, fill — each run against
//! every server in turn, and the targets each is judged by.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::procstat::{cpu_seconds, cpu_times, listen_drops, memory, open_fds, CpuTimes};
use crate::servers::{Kind, Liveness, Server, Tools, SERVER_CPU};
use crate::swarm::{self, Load, Report, Swarm};
use crate::syscalls;

/// One row of a scenario's table.
pub struct Metric {
    pub key: &'static str,
    pub label: &'static str,
    pub decimals: usize,
    /// Whether the row gets lubdub ÷ baseline ratios.
    pub ratio: bool,
}

const fn m(key: &'static str, label: &'static str, decimals: usize, ratio: bool) -> Metric {
    Metric {
        key,
        label,
        decimals,
        ratio,
    }
}

/// One server's figures in one scenario.
pub struct Column {
    pub kind: Kind,
    pub values: Vec<(&'static str, f64)>,
    /// Why the server could not be measured at all.
    pub error: Option<String>,
    /// Anything a reader should know about this run (a swarm that failed…).
    pub notes: Vec<String>,
}

impl Column {
    fn new(kind: Kind) -> Column {
        Column {
            kind,
            values: Vec::new(),
            error: None,
            notes: Vec::new(),
        }
    }

    fn set(&mut self, key: &'static str, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.values.push((key, v));
        }
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// A target from the issue and how this run fared against it.
pub struct Verdict {
    pub target: String,
    /// None when a figure it needs was not measured.
    pub met: Option<bool>,
    pub detail: String,
}

/// A finished scenario.
pub struct Outcome {
    pub name: &'static str,
    pub title: String,
    pub metrics: &'static [Metric],
    pub columns: Vec<Column>,
    pub verdicts: Vec<Verdict>,
}

impl Outcome {
    pub fn value(&self, kind: Kind, key: &str) -> Option<f64> {
        self.columns
            .iter()
            .find(|c| c.kind == kind)
            .and_then(|c| c.get(key))
    }

    /// lubdub's figure divided by `base`'s.
    pub fn ratio(&self, key: &str, base: Kind) -> Option<f64> {
        let ours = self.value(Kind::Lubdub, key)?;
        let theirs = self.value(base, key)?;
        (theirs != 0.0).then(|| ours / theirs)
    }

    /// "lubdub ≤ factor × base" (or "<" when strict), with the ratio.
    fn at_most(&mut self, key: &str, base: Kind, factor: f64, strict: bool, what: &str) {
        let ratio = self.ratio(key, base);
        let op = if strict { "<" } else { "≤" };
        let target = if factor == 1.0 {
            format!("{what}: lubdub {op} {}", base.name())
        } else {
            format!("{what}: lubdub {op} {factor} × {}", base.name())
        };
        let met = ratio.map(|r| if strict { r < factor } else { r <= factor });
        let detail = match ratio {
            Some(r) => format!("lubdub is {r:.3} × {}", base.name()),
            None => "not measured".to_string(),
        };
        self.verdicts.push(Verdict {
            target,
            met,
            detail,
        });
    }

    fn at_least(&mut self, key: &str, base: Kind, factor: f64, what: &str) {
        let ratio = self.ratio(key, base);
        self.verdicts.push(Verdict {
            target: format!("{what}: lubdub ≥ {factor} × {}", base.name()),
            met: ratio.map(|r| r >= factor),
            detail: match ratio {
                Some(r) => format!("lubdub is {r:.3} × {}", base.name()),
                None => "not measured".to_string(),
            },
        });
    }

    fn absolute(&mut self, target: &str, key: &str, ok: impl Fn(f64) -> bool, unit: &str) {
        let value = self.value(Kind::Lubdub, key);
        self.verdicts.push(Verdict {
            target: target.to_string(),
            met: value.map(ok),
            detail: match value {
                Some(v) => format!("lubdub: {v:.1}{unit}"),
                None => "not measured".to_string(),
            },
        });
    }
}

/// Durations and sizes; `quick` shortens everything for iterating on the bench.
pub struct Plan {
    pub quick: bool,
    /// Connections one server process may hold: open-files limit minus reserve.
    pub fill_clients: usize,
    /// `--rounds N`: rounds per server in every scenario, instead of the
    /// defaults (flood 5, idle 1, fill 1; 1 each when quick).
    pub rounds: Option<usize>,
}

const WIDE_5S: Liveness = Liveness {
    interval: Duration::from_secs(5),
    misses: 6,
};
const WIDE_1S: Liveness = Liveness {
    interval: Duration::from_secs(1),
    misses: 6,
};

/// New connections per second into one server, all swarms together. Fast
/// enough to fill in seconds; slow enough that a server briefly off its CPU
/// (a neighbour's build) does not overflow a 511–1024 deep listen queue,
/// which would show up as missing replies that are the kernel's, not the
/// server's.
const CONNECT_RATE: u32 = 4_000;

/// Poll period while a fill time is being measured, and otherwise.
const FINE: Duration = Duration::from_millis(50);
const COARSE: Duration = Duration::from_millis(500);

fn each(
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
fn each_rounds(
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
struct Meter {
    pid: u32,
    start: Instant,
    server_cpu: f64,
    cpu_times: Option<CpuTimes>,
}

struct Measured {
    server_cpu_s: f64,
    wall_s: f64,
}

impl Meter {
    fn start(server: &Server) -> Result<Meter, String> {
        Ok(Meter {
            pid: server.pid,
            start: Instant::now(),
            server_cpu: cpu_seconds(server.pid).map_err(|e| e.to_string())?,
            cpu_times: cpu_times(SERVER_CPU).ok(),
        })
    }

    fn stop(self, col: &mut Column) -> Result<Measured, String> {
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

fn note_swarm(col: &mut Column, report: &Report) {
    if !report.ok {
        col.notes.push(format!("swarm: {}", report.status));
    }
}

const STOPPED_EARLY: &str = "server exited during the run";

fn check_alive(server: &mut Server) -> Result<(), String> {
    match server.exited() {
        Some(status) => Err(format!(
            "{STOPPED_EARLY} ({status}): {}",
            crate::servers::log_tail(&server.log)
        )),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------- flood

pub const FLOOD_METRICS: &[Metric] = &[
    m("replies_per_s", "replies/s", 0, true),
    m("cpu_s_per_m", "server CPU s per 1M replies", 3, true),
    m("rtt_p50_us", "RTT p50 (µs)", 0, true),
    m("rtt_p99_us", "RTT p99 (µs)", 0, true),
    m("reads_per_reply", "read syscalls per reply", 3, true),
    m("writes_per_reply", "write syscalls per reply", 3, true),
    m("waits_per_reply", "epoll waits per reply", 3, true),
    m("server_cpu_s", "server CPU s", 2, false),
    m("replies", "replies", 0, false),
    m("missing_replies", "missing replies", 0, false),
    m("protocol_errors", "protocol errors", 0, false),
    m("softirq_pct", "CPU 0 softirq %", 1, false),
    m("others_pct", "CPU 0 other tasks %", 1, false),
    m("listen_drops", "listen queue drops (host)", 0, false),
];

/// A separate short flood per server with `perf stat` counting its
/// syscalls, so the counting cannot disturb the timed rounds.
fn syscall_profile(tools: &Tools, kinds: &[Kind], load: &Load, columns: &mut [Column]) {
    let events = match syscalls::available() {
        Ok(events) => events,
        Err(why) => {
            eprintln!("  syscall profile skipped: {why}");
            if let Some(col) = columns.first_mut() {
                col.notes
                    .push(format!("syscalls per reply not counted: {why}"));
            }
            return;
        }
    };
    let load = Load {
        duration: Duration::from_secs(3),
        ..load.clone()
    };
    eprintln!("  syscall profile (3 s each, perf stat) ...");
    let profiles = each(tools, kinds, |tools, kind, col| {
        let mut server = Server::start(tools, kind, WIDE_5S, "flood-syscalls")?;
        let out = tools
            .logs
            .join(format!("flood-syscalls-{}-perf.csv", kind.name()));
        let counting = syscalls::Counting::start(&events, server.pid, out)?;
        // perf needs a moment to attach before the load starts.
        sleep(Duration::from_millis(300));
        let report = Swarm::spawn(tools, &server, &load, "flood-syscalls")?.finish();
        let counts = counting.stop();
        check_alive(&mut server)?;
        server.stop();
        let replies = report.get(&["replies"]).filter(|r| *r > 0.0);
        let (counts, replies) = match (counts, replies) {
            (Ok(c), Some(r)) => (c, r),
            (Err(why), _) => return Err(why),
            (_, None) => return Err(format!("no replies: {}", report.status)),
        };
        for (i, key) in ["reads_per_reply", "writes_per_reply", "waits_per_reply"]
            .into_iter()
            .enumerate()
        {
            col.set(key, Some(counts[i] / replies));
        }
        Ok(())
    });
    for (col, profile) in columns.iter_mut().zip(profiles) {
        col.values.extend(
            profile
                .values
                .into_iter()
                .filter(|(k, _)| k.ends_with("_per_reply")),
        );
        if let Some(e) = profile.error {
            col.notes.push(format!("syscall profile: {e}"));
        }
    }
}

/// Flood throughput swings by tens of percent from run to run on a shared
/// two-core machine (even with nothing else running: batching on both sides
/// of loopback is bimodal); five interleaved rounds and their median tame it.
const FLOOD_ROUNDS: usize = 5;

pub fn flood(tools: &Tools, kinds: &[Kind], plan: &Plan) -> Outcome {
    let secs = if plan.quick { 3 } else { 10 };
    let load = Load {
        clients: 100,
        interval: Duration::from_secs(5),
        flood: Some(1),
        duration: Duration::from_secs(secs),
        connect_rate: 1000,
        source_addrs: None,
    };
    let rounds = plan
        .rounds
        .unwrap_or(if plan.quick { 1 } else { FLOOD_ROUNDS });
    let rounds_text = match rounds {
        1 => "one round".to_string(),
        n => format!("median of {n} interleaved rounds"),
    };
    let title = format!(
        "flood: 100 connections, --flood 1 (one request in flight each), {secs} s; {rounds_text}"
    );
    eprintln!("{title}");
    let mut columns = each_rounds(tools, kinds, rounds, |tools, kind, col| {
        let mut server = Server::start(tools, kind, WIDE_5S, "flood")?;
        sleep(Duration::from_millis(300));
        let meter = Meter::start(&server)?;
        let report = Swarm::spawn(tools, &server, &load, "flood")?.finish();
        let cpu = meter.stop(col)?.server_cpu_s;
        check_alive(&mut server)?;
        server.stop();
        note_swarm(col, &report);
        let replies = report.get(&["replies"]);
        col.set("replies_per_s", report.get(&["replies_per_s"]));
        col.set("cpu_s_per_m", replies.map(|r| cpu / r * 1e6));
        col.set("rtt_p50_us", report.get(&["rtt_us", "p50"]));
        col.set("rtt_p99_us", report.get(&["rtt_us", "p99"]));
        col.set("server_cpu_s", Some(cpu));
        col.set("replies", replies);
        col.set("missing_replies", report.get(&["missing_replies"]));
        col.set("protocol_errors", report.get(&["protocol_errors"]));
        Ok(())
    });
    syscall_profile(tools, kinds, &load, &mut columns);
    let mut out = Outcome {
        name: "flood",
        title,
        metrics: FLOOD_METRICS,
        columns,
        verdicts: Vec::new(),
    };
    let cpu = "CPU s per 1M replies";
    out.at_most("cpu_s_per_m", Kind::Floor, 1.1, false, cpu);
    out.at_most("cpu_s_per_m", Kind::Tokio, 1.0, true, cpu);
    out.at_most("cpu_s_per_m", Kind::Redis, 1.0, true, cpu);
    out.at_least("replies_per_s", Kind::Floor, 0.9, "replies/s");
    out
}

// ---------------------------------------------------------------- idle

pub const IDLE_METRICS: &[Metric] = &[
    m("rss_per_conn_b", "RSS growth per connection (B)", 0, true),
    m("cpu_pct", "server CPU %", 2, true),
    m("missing_replies", "missing replies", 0, false),
    m("late_replies", "late replies", 0, false),
    m("held", "connections held", 0, false),
    m("rss_before_kib", "RSS before (KiB)", 0, false),
    m("rss_after_kib", "RSS after (KiB)", 0, false),
    m("hwm_kib", "peak RSS (KiB)", 0, false),
    m("connect_s", "time to connect all (s)", 2, false),
    m("replies", "replies", 0, false),
    m("protocol_errors", "protocol errors", 0, false),
    m("reconnects", "reconnects", 0, false),
    m("softirq_pct", "CPU 0 softirq %", 1, false),
    m("others_pct", "CPU 0 other tasks %", 1, false),
    m("listen_drops", "listen queue drops (host)", 0, false),
];

/// Polls the server's descriptor count until it holds `want` more than
/// `base`, `until` passes or every swarm has exited. Returns when `want` was
/// reached (from `start`) and the most held at once. Each poll lists up to
/// 20,000 descriptors on the load CPU, so `every` is kept coarse when no
/// timing depends on it.
fn wait_held(
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

pub fn idle(tools: &Tools, kinds: &[Kind], plan: &Plan) -> Outcome {
    let (clients, window, ramp, settle) = if plan.quick {
        (2_000, 6, 6, 1)
    } else {
        (10_000, 30, 15, 3)
    };
    let tail = 2;
    let load = Load {
        clients,
        interval: Duration::from_secs(1),
        flood: None,
        duration: Duration::from_secs(ramp + settle + window + tail),
        connect_rate: CONNECT_RATE,
        source_addrs: None,
    };
    let title =
        format!("idle: {clients} connections, one heartbeat per second each, {window} s measured");
    eprintln!("{title}");
    let columns = each_rounds(
        tools,
        kinds,
        plan.rounds.unwrap_or(1),
        |tools, kind, col| {
            let mut server = Server::start(tools, kind, WIDE_1S, "idle")?;
            sleep(Duration::from_millis(500));
            let before = memory(server.pid).map_err(|e| e.to_string())?;
            let base = open_fds(server.pid).map_err(|e| e.to_string())?;
            let mut swarm = Swarm::spawn(tools, &server, &load, "idle")?;
            let start = swarm.started;
            let ramp_end = start + Duration::from_secs(ramp);
            let (reached, _) = wait_held(
                &server,
                (base, clients),
                (start, ramp_end),
                FINE,
                std::slice::from_mut(&mut swarm),
            );
            col.set("connect_s", reached.map(|d| d.as_secs_f64()));
            if reached.is_none() {
                col.notes
                    .push(format!("not all {clients} connected within {ramp} s"));
            }
            sleep(Duration::from_secs(settle));
            // The window ends before the swarm does, so every connection is
            // still held when memory is read at its end.
            let window_end = (Instant::now() + Duration::from_secs(window))
                .min(start + load.duration - Duration::from_secs(tail));
            let meter = Meter::start(&server)?;
            sleep(window_end.saturating_duration_since(Instant::now()));
            let window = meter.stop(col)?;
            let after = memory(server.pid).map_err(|e| e.to_string())?;
            let held = open_fds(server.pid)
                .map_err(|e| e.to_string())?
                .saturating_sub(base);
            let report = swarm.finish();
            check_alive(&mut server)?;
            server.stop();
            note_swarm(col, &report);
            let growth = (after.rss_kib as f64 - before.rss_kib as f64) * 1024.0;
            col.set("rss_per_conn_b", (held > 0).then(|| growth / held as f64));
            col.set("cpu_pct", Some(window.server_cpu_s / window.wall_s * 100.0));
            col.set("missing_replies", report.get(&["missing_replies"]));
            col.set("late_replies", report.get(&["late_replies"]));
            col.set("held", Some(held as f64));
            col.set("rss_before_kib", Some(before.rss_kib as f64));
            col.set("rss_after_kib", Some(after.rss_kib as f64));
            col.set("hwm_kib", Some(after.hwm_kib as f64));
            col.set("replies", report.get(&["replies"]));
            col.set("protocol_errors", report.get(&["protocol_errors"]));
            col.set("reconnects", report.get(&["reconnects"]));
            Ok(())
        },
    );
    let mut out = Outcome {
        name: "idle",
        title,
        metrics: IDLE_METRICS,
        columns,
        verdicts: Vec::new(),
    };
    out.absolute(
        "RSS growth per idle connection ≤ 128 B",
        "rss_per_conn_b",
        |v| v <= 128.0,
        " B",
    );
    let cpu = "idle server CPU";
    out.at_most("cpu_pct", Kind::Floor, 1.1, false, cpu);
    out.at_most("cpu_pct", Kind::Tokio, 1.0, true, cpu);
    out.at_most("cpu_pct", Kind::Redis, 1.0, true, cpu);
    out.absolute(
        "idle: zero missing replies",
        "missing_replies",
        |v| v == 0.0,
        "",
    );
    out
}

// ---------------------------------------------------------------- fill

pub const FILL_METRICS: &[Metric] = &[
    m("held", "connections held at the end", 0, true),
    m("fill_s", "time to fill (s)", 2, true),
    m("missing_replies", "missing replies", 0, false),
    m("late_replies", "late replies", 0, false),
    m("most_held", "most held at once", 0, false),
    m("rss_per_conn_b", "RSS growth per connection (B)", 0, true),
    m("cpu_pct", "server CPU % while holding", 2, true),
    m("replies", "replies", 0, false),
    m("protocol_errors", "protocol errors", 0, false),
    m("connect_failures", "connect failures", 0, false),
    m("reconnects", "reconnects", 0, false),
    m("softirq_pct", "CPU 0 softirq %", 1, false),
    m("others_pct", "CPU 0 other tasks %", 1, false),
    m("listen_drops", "listen queue drops (host)", 0, false),
];

/// Source address ranges, one per swarm process, so no (source, destination)
/// pair runs short of ephemeral ports.
const SOURCE_RANGES: [&str; 2] = ["127.0.0.2-127.0.0.10", "127.0.0.11-127.0.0.19"];

pub fn fill(tools: &Tools, kinds: &[Kind], plan: &Plan) -> Outcome {
    let clients = if plan.quick {
        plan.fill_clients.min(4_000)
    } else {
        plan.fill_clients
    };
    let (allowance, hold) = if plan.quick { (6, 6) } else { (20, 20) };
    let tail = 2;
    let per_swarm = clients.div_ceil(SOURCE_RANGES.len());
    let title = format!(
        "fill: {clients} connections from {} swarm processes, one heartbeat per 5 s, held {hold} s",
        SOURCE_RANGES.len()
    );
    eprintln!("{title}");
    let columns = each_rounds(
        tools,
        kinds,
        plan.rounds.unwrap_or(1),
        |tools, kind, col| {
            let mut server = Server::start(tools, kind, WIDE_5S, "fill")?;
            sleep(Duration::from_millis(500));
            let before = memory(server.pid).map_err(|e| e.to_string())?;
            let base = open_fds(server.pid).map_err(|e| e.to_string())?;
            let mut swarms = Vec::new();
            let mut left = clients;
            for (i, range) in SOURCE_RANGES.iter().enumerate() {
                let load = Load {
                    clients: per_swarm.min(left),
                    interval: Duration::from_secs(5),
                    flood: None,
                    duration: Duration::from_secs(allowance + hold + tail),
                    connect_rate: CONNECT_RATE / SOURCE_RANGES.len() as u32,
                    source_addrs: Some(range),
                };
                left -= load.clients;
                swarms.push(Swarm::spawn(tools, &server, &load, &format!("fill{i}"))?);
            }
            let start = swarms[0].started;
            let fill_end = start + Duration::from_secs(allowance);
            let (reached, most) = wait_held(
                &server,
                (base, clients),
                (start, fill_end),
                FINE,
                &mut swarms,
            );
            col.set("fill_s", reached.map(|d| d.as_secs_f64()));
            let hold_end = start + Duration::from_secs(allowance + hold);
            let meter = Meter::start(&server)?;
            let (_, most_after) = wait_held(
                &server,
                (base, usize::MAX),
                (start, hold_end),
                COARSE,
                &mut swarms,
            );
            let window = meter.stop(col)?;
            let after = memory(server.pid).map_err(|e| e.to_string())?;
            let held = open_fds(server.pid)
                .map_err(|e| e.to_string())?
                .saturating_sub(base);
            let reports: Vec<Report> = swarms.into_iter().map(Swarm::finish).collect();
            check_alive(&mut server)?;
            server.stop();
            for report in &reports {
                note_swarm(col, report);
            }
            if reached.is_none() {
                col.notes.push(format!(
                    "never held all {clients} at once (most {})",
                    most.max(most_after)
                ));
            }
            let growth = (after.rss_kib as f64 - before.rss_kib as f64) * 1024.0;
            col.set("held", Some(held as f64));
            col.set("missing_replies", swarm::sum(&reports, "missing_replies"));
            col.set("late_replies", swarm::sum(&reports, "late_replies"));
            col.set("most_held", Some(most.max(most_after) as f64));
            col.set("rss_per_conn_b", (held > 0).then(|| growth / held as f64));
            col.set(
                "cpu_pct",
                (window.wall_s > 0.0).then(|| window.server_cpu_s / window.wall_s * 100.0),
            );
            col.set("replies", swarm::sum(&reports, "replies"));
            col.set("protocol_errors", swarm::sum(&reports, "protocol_errors"));
            col.set("connect_failures", swarm::sum(&reports, "connect_failures"));
            col.set("reconnects", swarm::sum(&reports, "reconnects"));
            Ok(())
        },
    );
    let mut out = Outcome {
        name: "fill",
        title,
        metrics: FILL_METRICS,
        columns,
        verdicts: Vec::new(),
    };
    let floor = if plan.quick { clients as f64 } else { 19_000.0 };
    out.absolute(
        &format!("fill: ≥ {floor} connections held by one server process"),
        "held",
        |v| v >= floor,
        "",
    );
    out.absolute(
        "fill: zero missing replies",
        "missing_replies",
        |v| v == 0.0,
        "",
    );
    out
}
