//! The scenarios — flood, idle, fill against every server in turn, and
//! abuse against lubdub alone — and the targets each is judged by.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::outcome::{m, Column, Metric, Outcome, Verdict};
use crate::procstat::{memory, open_fds};
use crate::rounds::{check_alive, each, each_rounds, note_swarm, wait_held, Meter, COARSE, FINE};
use crate::servers::{Kind, Liveness, Server, Tools};
use crate::swarm::{self, Load, Report, Swarm};
use crate::syscalls;

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

// ---------------------------------------------------------------- flood

pub const FLOOD_METRICS: &[Metric] = &[
    m("replies_per_s", "replies/s", 0, true),
    m("cpu_s_per_m", "server CPU s per 1M replies", 3, true),
    m("own_cpu_s_per_m", "  less all CPU 0 softirq", 3, true),
    m("reads_per_reply", "read syscalls per reply", 3, true),
    m("writes_per_reply", "write syscalls per reply", 3, true),
    m("waits_per_reply", "epoll waits per reply", 3, true),
    m("server_cpu_s", "server CPU s", 2, false),
    m("replies", "replies", 0, false),
    m("missing_replies", "missing replies", 0, false),
    m("protocol_errors", "protocol errors", 0, false),
    m("softirq_pct", "CPU 0 softirq % (in server CPU)", 1, false),
    m("others_pct", "CPU 0 neighbours %", 1, false),
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
        let window = meter.stop(col)?;
        let cpu = window.server_cpu_s;
        check_alive(&mut server)?;
        server.stop();
        note_swarm(col, &report);
        let replies = report.get(&["replies"]);
        col.set("replies_per_s", report.get(&["replies_per_s"]));
        col.set("cpu_s_per_m", replies.map(|r| cpu / r * 1e6));
        let own = window.server_less_softirq_s();
        col.set(
            "own_cpu_s_per_m",
            replies.zip(own).map(|(r, c)| c / r * 1e6),
        );
        // No round-trip rows here: in a closed loop a stalled server also
        // holds back the requests behind it, so percentiles cannot show a
        // stall. Round trips are measured in the idle scenario, where
        // every heartbeat is timed from when it was due.
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
    let own = "CPU s per 1M replies less softirq";
    out.at_most("own_cpu_s_per_m", Kind::Floor, 1.1, false, own);
    out.at_least("replies_per_s", Kind::Floor, 0.9, "replies/s");
    out
}

// ---------------------------------------------------------------- idle

pub const IDLE_METRICS: &[Metric] = &[
    m("rss_per_conn_b", "RSS growth per connection (B)", 0, true),
    m("cpu_pct", "server CPU %", 2, true),
    m("rtt_p50_us", "RTT p50 (µs) from when due", 0, true),
    m("rtt_p99_us", "RTT p99 (µs) from when due", 0, true),
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
    m("softirq_pct", "CPU 0 softirq % (in server CPU)", 1, false),
    m("others_pct", "CPU 0 neighbours %", 1, false),
    m("listen_drops", "listen queue drops (host)", 0, false),
];

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
            col.set("rtt_p50_us", report.get(&["rtt_us", "p50"]));
            col.set("rtt_p99_us", report.get(&["rtt_us", "p99"]));
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
    // Idle is where the cost per wakeup shows (about two heartbeats an
    // `epoll_wait`): held to 1.05 × the floor, not flood's 1.1.
    out.at_most("cpu_pct", Kind::Floor, 1.05, false, cpu);
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
    m("softirq_pct", "CPU 0 softirq % (in server CPU)", 1, false),
    m("others_pct", "CPU 0 neighbours %", 1, false),
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

// ---------------------------------------------------------------- abuse

pub const ABUSE_METRICS: &[Metric] = &[
    m("cpu_pct", "server CPU %", 2, false),
    m(
        "honest_p99_us",
        "honest RTT p99 (µs) from when due",
        0,
        false,
    ),
    m("honest_p999_us", "honest RTT p99.9 (µs)", 0, false),
    m("honest_missing", "honest missing replies", 0, false),
    m("honest_reconnects", "honest reconnects", 0, false),
    m("flood_replies", "flood replies", 0, false),
    m(
        "flood_reconnects",
        "flood reconnects (closed, came back)",
        0,
        false,
    ),
];

/// Honest idle load, alone, with a few flooding peers beside it, and with
/// those peers held to `--min-heartbeat-interval`: the server's CPU and
/// the honest peers' round trips side by side.
pub fn abuse(tools: &Tools, plan: &Plan) -> Outcome {
    let (clients, window) = if plan.quick { (1_000, 6) } else { (5_000, 20) };
    let (ramp, settle, tail) = (3, 2, 2);
    let duration = Duration::from_secs(ramp + settle + window + tail);
    let honest = Load {
        clients,
        interval: Duration::from_secs(1),
        flood: None,
        duration,
        connect_rate: CONNECT_RATE,
        source_addrs: None,
    };
    let flood = Load {
        clients: 4,
        interval: Duration::from_secs(1),
        flood: Some(64),
        duration,
        connect_rate: 100,
        source_addrs: Some("127.0.0.200"),
    };
    // A quarter of the interval: honest peers at one a second never come
    // near it.
    let limit = ["--min-heartbeat-interval", "250ms"];
    let configs: [(&'static str, bool, &[&str]); 3] = [
        ("honest", false, &[]),
        ("flooded", true, &[]),
        ("limited", true, &limit),
    ];
    let title = format!(
        "abuse: {clients} honest connections at one heartbeat a second, then 4 more flooding \
         (64 in flight each), then the same with --min-heartbeat-interval 250ms; {window} s measured"
    );
    eprintln!("{title}");
    let mut columns = Vec::new();
    for (label, flooding, extra) in configs {
        eprintln!("  {label} ...");
        let mut col = Column::new(Kind::Lubdub);
        col.label = Some(label);
        let run = |col: &mut Column| -> Result<(), String> {
            let mut server = Server::start_with(
                tools,
                Kind::Lubdub,
                WIDE_1S,
                &format!("abuse-{label}"),
                extra,
            )?;
            sleep(Duration::from_millis(300));
            let honest_swarm = Swarm::spawn(tools, &server, &honest, &format!("abuse-{label}"))?;
            let start = honest_swarm.started;
            let flood_swarm = if flooding {
                Some(Swarm::spawn(
                    tools,
                    &server,
                    &flood,
                    &format!("abuse-{label}-flood"),
                )?)
            } else {
                None
            };
            sleep(
                (start + Duration::from_secs(ramp + settle))
                    .saturating_duration_since(Instant::now()),
            );
            let meter = Meter::start(&server)?;
            sleep(Duration::from_secs(window));
            let measured = meter.stop(col)?;
            let report = honest_swarm.finish();
            let flood_report = flood_swarm.map(Swarm::finish);
            check_alive(&mut server)?;
            server.stop();
            note_swarm(col, &report);
            col.set(
                "cpu_pct",
                Some(measured.server_cpu_s / measured.wall_s * 100.0),
            );
            col.set("honest_p99_us", report.get(&["rtt_us", "p99"]));
            col.set("honest_p999_us", report.get(&["rtt_us", "p999"]));
            col.set("honest_missing", report.get(&["missing_replies"]));
            col.set("honest_reconnects", report.get(&["reconnects"]));
            if let Some(f) = flood_report {
                col.set("flood_replies", f.get(&["replies"]));
                col.set("flood_reconnects", f.get(&["reconnects"]));
            }
            Ok(())
        };
        if let Err(e) = run(&mut col) {
            col.error = Some(e);
        }
        columns.push(col);
    }
    let value = |label: &str, key: &str| {
        columns
            .iter()
            .find(|c| c.label == Some(label))
            .and_then(|c| c.get(key))
    };
    let mut verdicts = Vec::new();
    let mut compare = |target: &str, key: &str, factor: f64| {
        let pair = value("limited", key).zip(value("honest", key));
        verdicts.push(Verdict {
            target: target.to_string(),
            met: pair.map(|(limited, honest)| limited <= honest * factor),
            detail: match pair {
                Some((limited, honest)) => format!(
                    "limited {limited:.1}, honest alone {honest:.1}, flooded without the limit {}",
                    value("flooded", key).map_or("—".to_string(), |v| format!("{v:.1}"))
                ),
                None => "not measured".to_string(),
            },
        });
    };
    compare(
        "abuse: server CPU with the limit ≤ 1.5 × honest alone",
        "cpu_pct",
        1.5,
    );
    compare(
        "abuse: honest p99 with the limit ≤ 1.5 × honest alone",
        "honest_p99_us",
        1.5,
    );
    Outcome {
        name: "abuse",
        title,
        metrics: ABUSE_METRICS,
        columns,
        verdicts,
    }
}
