//! End-to-end loopback benchmark of lubdub's targets: its server against a bare
//! mio floor, an idiomatic tokio server and Redis, under the same
//! `lubdub swarm` load, in three scenarios — flood, idle, fill — and a
//! fourth for lubdub alone, abuse: honest idle load beside a few flooding
//! peers, with and without `--min-heartbeat-interval`.
//!
//! ```text
//! cargo bench --bench loopback                      # full run, about 12 minutes
//! cargo bench --bench loopback -- --quick           # short run (or LUBDUB_BENCH_QUICK=1)
//! cargo bench --bench loopback -- --scenario flood --servers lubdub,floor
//! cargo bench --bench loopback -- --scenario abuse  # about a minute
//! cargo bench --bench loopback -- --rounds 3        # every scenario 3 interleaved rounds, medians
//! cargo bench --bench loopback -- --lubdub OTHER/lubdub   # another server build (before/after)
//! cargo bench --bench loopback -- --swarm OTHER/lubdub    # another load generator build
//! cargo bench --bench loopback -- --plot target/loopback-bench.json   # redraw the bars only
//! ```
//!
//! Every server is its own process pinned to CPU 0; the swarms (and this
//! orchestrator, which mostly sleeps) are pinned to CPU 1. The floor and
//! tokio servers are this same binary re-executed with `--serve KIND`. Server
//! CPU and memory are read from `/proc`, so every server is measured the same
//! way. Tables go to stdout, the same figures as JSON to
//! `<target>/loopback-bench.json`, and each process's output to
//! `<target>/loopback-logs/`. A full run draws its headline figures as bars
//! (memory per idle connection, CPU per reply, round-trip p99, a bar per
//! server) into `docs/loopback-bench.svg`, which the docs show; a quick run
//! into `<target>/loopback-bench.svg`. `-- --plot REPORT.json` draws a
//! saved report's bars into the docs again without running anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[path = "loopback/floor.rs"]
mod floor;
#[path = "loopback/json.rs"]
mod json;
#[path = "loopback/outcome.rs"]
mod outcome;
#[path = "loopback/procstat.rs"]
mod procstat;
#[path = "loopback/report.rs"]
mod report;
#[path = "loopback/rounds.rs"]
mod rounds;
#[path = "loopback/scenarios.rs"]
mod scenarios;
#[path = "loopback/servers.rs"]
mod servers;
#[path = "loopback/svg.rs"]
mod svg;
#[path = "loopback/swarm.rs"]
mod swarm;
#[path = "loopback/syscalls.rs"]
mod syscalls;
#[path = "loopback/tokio_server.rs"]
mod tokio_server;

use servers::Kind;

const SCENARIOS: [&str; 4] = ["flood", "idle", "fill", "abuse"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(kind) = value_of(&args, "--serve") {
        std::process::exit(serve(&kind, &args));
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` (or
    // `--all-targets`) runs this binary without it, where a twelve-minute
    // benchmark would be unwelcome: check the parsers and stop.
    let asked = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let benching = [
        "--bench",
        "--quick",
        "--scenario",
        "--servers",
        "--rounds",
        "--lubdub",
        "--swarm",
    ]
    .iter()
    .any(|f| asked(f));
    if let Some(report) = value_of(&args, "--plot") {
        std::process::exit(plot_saved(&report));
    }
    if asked("--self-test") || !benching {
        json::self_test();
        svg::self_test();
        println!("loopback self-test: 1 passed, 0 failed");
        if !benching {
            println!("(the benchmark itself runs under `cargo bench --bench loopback`)");
        }
        return;
    }
    std::process::exit(orchestrate(&args));
}

/// The value after `flag`, as `--flag VALUE` or `--flag=VALUE`.
fn value_of(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&prefix).map(str::to_string)
        }
    })
}

/// Every value of a repeatable, comma-separated flag.
fn values_of(args: &[String], flag: &str) -> Vec<String> {
    let prefix = format!("{flag}=");
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let v = if a == flag {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(&prefix)
        };
        if let Some(v) = v {
            out.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string));
        }
    }
    out
}

/// `--serve floor|tokio --listen ADDR [--interval D] [--misses N]`: run one
/// baseline server in this process until killed.
fn serve(kind: &str, args: &[String]) -> i32 {
    let listen: Option<SocketAddr> = value_of(args, "--listen").and_then(|a| a.parse().ok());
    let Some(addr) = listen else {
        eprintln!("--serve needs --listen ADDR");
        return 2;
    };
    let interval = value_of(args, "--interval")
        .and_then(|d| lubdub::duration::parse(&d).ok())
        .unwrap_or(Duration::from_secs(5));
    let misses: u32 = value_of(args, "--misses")
        .and_then(|m| m.parse().ok())
        .unwrap_or(6);
    let _ = lubdub::limits::raise_file_limit();
    let result = match kind {
        "floor" => floor::serve(addr),
        "tokio" => tokio_server::serve(addr, interval * misses),
        other => {
            eprintln!("unknown server {other:?} (floor or tokio)");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{kind} server on {addr}: {e}");
            1
        }
    }
}

fn orchestrate(args: &[String]) -> i32 {
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var("LUBDUB_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let scenarios = {
        let asked = values_of(args, "--scenario");
        if let Some(bad) = asked.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
            eprintln!("unknown scenario {bad:?}: one of {}", SCENARIOS.join(", "));
            return 2;
        }
        if asked.is_empty() {
            SCENARIOS.map(str::to_string).to_vec()
        } else {
            asked
        }
    };
    let mut kinds = Vec::new();
    for name in values_of(args, "--servers") {
        match Kind::parse(&name) {
            Some(k) => kinds.push(k),
            None => {
                eprintln!("unknown server {name:?}: lubdub, floor, tokio or redis");
                return 2;
            }
        }
    }
    if kinds.is_empty() {
        kinds = servers::ALL.to_vec();
    } else if !kinds.contains(&Kind::Lubdub) {
        kinds.insert(0, Kind::Lubdub);
    }

    // Every server and swarm inherits this; the hard limit is the ceiling.
    let limit = match lubdub::limits::raise_file_limit() {
        Ok((_, after)) => after,
        Err(e) => {
            eprintln!("cannot raise the open-files limit: {e}");
            return 1;
        }
    };
    let fill_clients = limit.max_connections().min(50_000);

    let me = std::env::current_exe().expect("the bench knows its own path");
    // <target>/release/deps/loopback-HASH → <target>
    let target = me
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let logs = target.join("loopback-logs");
    if let Err(e) = std::fs::create_dir_all(&logs) {
        eprintln!("create {}: {e}", logs.display());
        return 1;
    }
    let cpus = online_cpus();
    let niced = raise_priority();
    let taskset = cpus >= 2 && servers::which("taskset").is_some();
    if taskset {
        pin_self(servers::LOAD_CPU);
    } else {
        eprintln!("warning: running unpinned (needs 2 CPUs and taskset from util-linux)");
    }
    let redis = if kinds.contains(&Kind::Redis) {
        servers::find_or_install_redis(&logs)
    } else {
        Err("not selected".to_string())
    };
    if let Err(why) = &redis {
        if kinds.contains(&Kind::Redis) {
            eprintln!("redis column skipped: {why}");
        }
    }
    let lubdub = value_of(args, "--lubdub")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lubdub")));
    let swarm = value_of(args, "--swarm")
        .map(PathBuf::from)
        .unwrap_or_else(|| lubdub.clone());
    let mut machine = machine(&lubdub, &redis, quick, args);
    machine.push((
        "priority",
        if niced {
            "nice -20"
        } else {
            "nice 0 (not root)"
        }
        .into(),
    ));
    machine.push(("load average at start", load_average()));
    let tools = servers::Tools {
        lubdub,
        swarm,
        me,
        redis,
        taskset,
        logs,
    };
    let rounds = value_of(args, "--rounds")
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0);
    let plan = scenarios::Plan {
        quick,
        fill_clients,
        rounds,
    };

    println!("loopback benchmark{}", if quick { " (quick)" } else { "" });
    for (k, v) in &machine {
        println!("  {k}: {v}");
    }
    let mut outcomes = Vec::new();
    for name in &scenarios {
        let outcome = match name.as_str() {
            "flood" => scenarios::flood(&tools, &kinds, &plan),
            "idle" => scenarios::idle(&tools, &kinds, &plan),
            "abuse" => scenarios::abuse(&tools, &plan),
            _ => scenarios::fill(&tools, &kinds, &plan),
        };
        print!("{}", report::table(&outcome));
        outcomes.push(outcome);
    }
    machine.push(("load average at end", load_average()));
    println!("\nload average at end: {}", load_average());
    let path = target.join("loopback-bench.json");
    let report = report::to_json(&machine, quick, &outcomes);
    match std::fs::write(&path, &report) {
        Ok(()) => println!("\nJSON: {}\nlogs: {}", path.display(), tools.logs.display()),
        Err(e) => eprintln!("write {}: {e}", path.display()),
    }
    // A full run's bars go where the docs show them; a quick run's figures
    // are too rough for that and stay in <target>.
    let picture = if quick {
        target.join("loopback-bench.svg")
    } else {
        docs_svg()
    };
    plot(&report, &picture);
    0
}

/// `docs/loopback-bench.svg` in this source tree.
fn docs_svg() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/loopback-bench.svg")
}

/// Draws the bars of a JSON report into `path`, saying where.
fn plot(report: &str, path: &std::path::Path) -> bool {
    let Some(picture) = svg::bars(report) else {
        eprintln!("no figures to draw into {}", path.display());
        return false;
    };
    match std::fs::write(path, picture) {
        Ok(()) => {
            println!("bars: {}", path.display());
            true
        }
        Err(e) => {
            eprintln!("write {}: {e}", path.display());
            false
        }
    }
}

/// `--plot REPORT.json`: the bars of a saved report, into the docs, with
/// nothing measured.
fn plot_saved(report: &str) -> i32 {
    match std::fs::read_to_string(report) {
        Ok(text) => i32::from(!plot(&text, &docs_svg())),
        Err(e) => {
            eprintln!("--plot {report}: {e}");
            1
        }
    }
}

/// Pins this process (and so, by inheritance, anything it starts unpinned)
/// to `cpu`.
fn pin_self(cpu: &str) {
    let Ok(cpu) = cpu.parse::<usize>() else {
        return;
    };
    // SAFETY: the cpu_set_t is ours and zeroed before use; sched_setaffinity
    // only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// On a machine shared with other work (builds), a higher priority keeps the
/// servers and swarms — which inherit it — on their CPUs, so the figures
/// measure them rather than the neighbours. Needs root (or CAP_SYS_NICE);
/// without it the bench runs at normal priority and says so.
fn raise_priority() -> bool {
    // SAFETY: setpriority only changes this process's nice value.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) == 0 }
}

/// The load average, as `/proc/loadavg` gives it (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPUs online (not those this process may use: it pins itself).
fn online_cpus() -> usize {
    // SAFETY: sysconf reads a constant; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}

/// What the figures were measured on.
fn machine(
    lubdub: &std::path::Path,
    redis: &Result<PathBuf, String>,
    quick: bool,
    args: &[String],
) -> Vec<(&'static str, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    let cpus = online_cpus();
    let redis = match redis {
        Ok(path) => std::process::Command::new(path)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default(),
        Err(why) => format!("skipped: {why}"),
    };
    let mut extra: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    if quick && !extra.contains(&"--quick") {
        extra.push("(LUBDUB_BENCH_QUICK)");
    }
    let command = format!("cargo bench --bench loopback -- {}", extra.join(" "));
    vec![
        ("cpu", cpu),
        ("cpus", cpus.to_string()),
        ("kernel", kernel),
        ("lubdub", lubdub.display().to_string()),
        ("redis", redis),
        ("command", command.trim_end_matches(" -- ").to_string()),
    ]
}
