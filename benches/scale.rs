//! Scale benchmark: `lubdub server --workers auto` and `lubdub swarm
//! --workers auto` on this machine, ramped in steps to a million
//! connections and held.
//!
//! ```text
//! cargo bench --bench scale                     # both tiers: 30 s then 10 s, about 20 minutes
//! cargo bench --bench scale -- --interval 30s   # one tier
//! cargo bench --bench scale -- --connections 200000 --hold 60s --interval 30s
//! ```
//!
//! Each tier starts one server (every worker with `--misses 3`, so that a
//! cut peer's eviction falls within the hold) and ramps to its count in
//! steps (by default 5%, 10%, 25%, 50% and all of it: a swarm more per
//! step), measuring at each step, once the ramp has settled, the server's
//! memory per connection (RSS of the supervisor and its workers, their
//! fixed cost taken out), the kernel's (slab, both ends of each connection)
//! and the CPU both sides spend per heartbeat. At the top it connects 20
//! more peers from 127.1.0.1 and waits one interval; then it cuts those
//! peers silently (an nftables rule drops their packets both ways), marks
//! every swarm (SIGUSR1: round trips from then on are reported apart) and
//! holds for `--hold`, also reading each swarm's status lines for the
//! worst 5 s window. The cut peers must be evicted within `interval ×
//! misses + interval + tick` of the cut. Then it stops the swarms, merges
//! their reports with `lubdub swarm merge` (exact percentiles, for the
//! whole run and for the hold) and stops the server. Server and swarms run
//! with `--batch-wait 5ms` (and the swarms with `--tick 5ms`): more work
//! per wakeup; `--server-args` and `--swarm-args` replace those flags.
//!
//! A tier is met with zero rejected, zero missing replies, a p99 over the
//! hold under 50 ms, server memory under 128 B a connection past the workers'
//! fixed cost, and every cut peer evicted in time. Figures go to stdout, to
//! `<target>/scale-bench.json` and, for a stepped tier, as a curve to
//! `docs/scale-bench.svg`, where the docs show it; every process and the
//! nftables table it made are removed on the way out, Ctrl-C included.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "scale/fleet.rs"]
mod fleet;
#[path = "loopback/procstat.rs"]
#[allow(dead_code)]
mod procstat;
#[path = "scale/svg.rs"]
mod svg;

use fleet::{counter, Cut, Group, Kernel, ServerLog, Swarm};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Misses before an eviction, for every tier: the cut peers' deadline has
/// to fall within the hold.
const MISSES: u64 = 3;
/// The server's timer tick (its default).
const TICK: Duration = Duration::from_millis(100);
/// Peers connected at the top of the ramp and then cut.
const CUT_PEERS: u64 = 20;
const CUT_FROM: &str = "127.1.0.1";
/// How long a step settles before it is measured, and how long it is measured.
const SETTLE: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(15);

/// Flags given to the server and to the swarms unless `--server-args` and
/// `--swarm-args` replace them: more work per wakeup on both sides.
const SERVER_ARGS: &str = "--batch-wait 5ms";
const SWARM_ARGS: &str = "--tick 5ms --batch-wait 5ms";

struct Options {
    connections: u64,
    hold: Duration,
    rate: u64,
    tiers: Vec<(Duration, bool)>,
    steps: Vec<u64>,
    /// More flags for the server, and for every swarm.
    server_args: Vec<String>,
    swarm_args: Vec<String>,
}

fn arg(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn words(text: String) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

fn duration(text: &str, flag: &str) -> Duration {
    lubdub::duration::parse(text).unwrap_or_else(|e| panic!("{flag}: {e}"))
}

impl Options {
    fn parse() -> Options {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let connections: u64 = arg(&args, "--connections")
            .map(|v| v.parse().expect("--connections N"))
            .unwrap_or(1_000_000);
        let tiers = match arg(&args, "--interval") {
            Some(i) => vec![(duration(&i, "--interval"), true)],
            // The 10 s tier ramps straight: its steps would show the same
            // memory, and its time is better spent holding.
            None => vec![
                (Duration::from_secs(30), true),
                (Duration::from_secs(10), false),
            ],
        };
        let steps = match arg(&args, "--steps").as_deref() {
            Some("none") => vec![connections],
            Some(list) => list
                .split(',')
                .map(|s| s.trim().parse().expect("--steps N,N,…"))
                .collect(),
            None => [5, 10, 25, 50, 100]
                .iter()
                .map(|pct| connections * pct / 100)
                .collect(),
        };
        Options {
            connections,
            hold: duration(&arg(&args, "--hold").unwrap_or("120s".into()), "--hold"),
            rate: arg(&args, "--connect-rate")
                .map(|v| v.parse().expect("--connect-rate N"))
                .unwrap_or(10_000),
            tiers,
            steps,
            server_args: words(arg(&args, "--server-args").unwrap_or(SERVER_ARGS.into())),
            swarm_args: words(arg(&args, "--swarm-args").unwrap_or(SWARM_ARGS.into())),
        }
    }
}

/// Figures at one step of the ramp.
#[derive(Debug, Clone, Default)]
struct Step {
    connections: u64,
    ramp_s: f64,
    rss_per_conn: f64,
    slab_per_conn: f64,
    server_cpu_pct: f64,
    swarm_cpu_pct: f64,
    /// The kernel's `ksoftirqd` threads: packet work deferred to them.
    softirq_pct: f64,
    heartbeats_per_s: f64,
    server_us_per_hb: f64,
    swarm_us_per_hb: f64,
}

#[derive(Debug, Default)]
struct Tier {
    interval: Duration,
    target: u64,
    workers: u64,
    held: u64,
    ramp_s: f64,
    fixed_rss_kib: u64,
    steps: Vec<Step>,
    hold: Step,
    hold_s: f64,
    hold_p99_us: u64,
    rejected: u64,
    restarts: u64,
    drops: u64,
    tcp_pages: u64,
    report: String,
    /// Peers connected when cut, evicted, the last eviction's time after
    /// the cut and its bound (s).
    cut: Option<(u64, u64, f64, f64)>,
    cut_note: String,
    stalls: Vec<(u32, u64, u64)>,
}

impl Tier {
    fn number(&self, key: &str) -> f64 {
        json_number(&self.report, key)
    }

    /// A figure of the round trips since the mark: the hold's own.
    fn mark(&self, key: &str) -> f64 {
        self.report
            .split("\"rtt_since_mark_us\":")
            .nth(1)
            .map_or(f64::NAN, |rest| json_number(rest, key))
    }

    fn met(&self) -> bool {
        self.held == self.target
            && self.rejected == 0
            && self.number("missing_replies") == 0.0
            && self.mark("p99") < 50_000.0
            && self.hold.rss_per_conn < 128.0
            && self.cut.is_some_and(|(up, n, latest, bound)| {
                up == CUT_PEERS && n == CUT_PEERS && latest <= bound
            })
    }
}

/// A number from a swarm's JSON report (the first key of that name).
fn json_number(json: &str, key: &str) -> f64 {
    json.split(&format!("\"{key}\":"))
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| c != '.' && !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Sleeps `d` in short steps, reading the server's log; false when
/// interrupted.
fn wait(d: Duration, log: &mut ServerLog, path: &Path) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if interrupted() {
            return false;
        }
        log.update(path, CUT_FROM);
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}

/// CPU and heartbeats over `WINDOW`, with memory at its end.
fn measure(
    server: &Group,
    swarms: &[u32],
    log: &mut ServerLog,
    path: &Path,
    before: Kernel,
    fixed_kib: u64,
    window: Duration,
) -> Option<Step> {
    log.update(path, CUT_FROM);
    let softirqd = fleet::ksoftirqd();
    let (hb0, s0, w0, k0, t0) = (
        log.total("heartbeats"),
        fleet::cpu(&[server.pid()]),
        fleet::cpu(swarms),
        fleet::cpu(&softirqd),
        Instant::now(),
    );
    if !wait(window, log, path) {
        return None;
    }
    let secs = t0.elapsed().as_secs_f64();
    let heartbeats = log.total("heartbeats").saturating_sub(hb0) as f64;
    let (server_cpu, swarm_cpu) = (fleet::cpu(&[server.pid()]) - s0, fleet::cpu(swarms) - w0);
    let connections = log.total("active");
    let kernel = fleet::kernel();
    let per = |bytes: u64| bytes as f64 / connections.max(1) as f64;
    Some(Step {
        connections,
        ramp_s: 0.0,
        rss_per_conn: per(fleet::rss_kib(server.pid()).saturating_sub(fixed_kib) * 1024),
        slab_per_conn: per(kernel.slab_kib.saturating_sub(before.slab_kib) * 1024),
        server_cpu_pct: 100.0 * server_cpu / secs,
        swarm_cpu_pct: 100.0 * swarm_cpu / secs,
        softirq_pct: 100.0 * (fleet::cpu(&softirqd) - k0) / secs,
        heartbeats_per_s: heartbeats / secs,
        server_us_per_hb: 1e6 * server_cpu / heartbeats.max(1.0),
        swarm_us_per_hb: 1e6 * swarm_cpu / heartbeats.max(1.0),
    })
}

/// The flags every swarm of a tier shares.
fn swarm_args(server: &str, interval: &str, rate: u64) -> Vec<String> {
    [
        "--connect",
        server,
        "--interval",
        interval,
        "--connect-rate",
        &rate.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn run_tier(opts: &Options, interval: Duration, stepped: bool, target_dir: &Path) -> Tier {
    let name = format!("{}s", interval.as_secs());
    let interval_text = lubdub::duration::format(interval);
    let mut tier = Tier {
        interval,
        target: opts.connections,
        ..Tier::default()
    };
    let before = fleet::kernel();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server_log = target_dir.join(format!("scale-{name}-server.log"));
    let mut server_args: Vec<String> = [
        "server",
        "--listen",
        &addr,
        "--workers",
        "auto",
        // Room for the cut peers too.
        "--max-connections",
        &(opts.connections + CUT_PEERS).to_string(),
        "--interval",
        &interval_text,
        "--misses",
        &MISSES.to_string(),
        "--stats-every",
        "1s",
    ]
    .map(String::from)
    .to_vec();
    server_args.extend(opts.server_args.iter().cloned());
    let mut server = Group::spawn(&server_args);
    server.tee(&server_log, |_| {});
    let mut log = ServerLog::default();
    if !wait(Duration::from_secs(3), &mut log, &server_log) {
        return tier;
    }
    tier.workers = fleet::tree(server.pid()).len() as u64 - 1;
    tier.fixed_rss_kib = fleet::rss_kib(server.pid());
    println!(
        "\n{name} tier: {} connections in {} server workers, interval {interval_text}, misses {MISSES}",
        opts.connections, tier.workers
    );

    let holding = Arc::new(AtomicBool::new(false));
    let mut swarms: Vec<Swarm> = Vec::new();
    let steps: Vec<u64> = if stepped {
        opts.steps.clone()
    } else {
        vec![opts.connections]
    };
    let started = Instant::now();
    let mut ramp = Duration::ZERO;
    for (k, &target) in steps.iter().enumerate() {
        let have: u64 = swarms.iter().map(|s| s.clients).sum();
        if target <= have {
            continue;
        }
        let step_start = Instant::now();
        let mut args = swarm_args(&addr, &interval_text, opts.rate);
        args.extend(["--workers".to_string(), "auto".to_string()]);
        args.extend(opts.swarm_args.iter().cloned());
        swarms.push(Swarm::start(
            &format!("{name}-swarm{k}"),
            target_dir,
            target - have,
            &args,
            &holding,
        ));
        let limit = Duration::from_secs((target - have) / opts.rate.max(1) + 120);
        while log.total("active") < target && step_start.elapsed() < limit {
            if !wait(Duration::from_millis(500), &mut log, &server_log) {
                return tier;
            }
        }
        let took = step_start.elapsed();
        ramp += took;
        tier.held = log.total("active");
        if tier.held < target {
            println!(
                "  step {target}: only {} connections after {took:.0?}; holding what there is",
                tier.held
            );
            break;
        }
        if !wait(SETTLE, &mut log, &server_log) {
            return tier;
        }
        let pids: Vec<u32> = swarms.iter().map(|s| s.group.pid()).collect();
        let Some(mut step) = measure(
            &server,
            &pids,
            &mut log,
            &server_log,
            before,
            tier.fixed_rss_kib,
            WINDOW,
        ) else {
            return tier;
        };
        step.ramp_s = took.as_secs_f64();
        println!(
            "  step {:>8}: ramp {:>5.1}s  server {:>6.1} B/conn  kernel {:>6.0} B/conn  {:>7.0} hb/s  server {:>5.1}% ({:.1} µs/hb)  swarm {:>5.1}% ({:.1} µs/hb)  ksoftirqd {:.1}%",
            step.connections,
            step.ramp_s,
            step.rss_per_conn,
            step.slab_per_conn,
            step.heartbeats_per_s,
            step.server_cpu_pct,
            step.server_us_per_hb,
            step.swarm_cpu_pct,
            step.swarm_us_per_hb,
            step.softirq_pct
        );
        tier.steps.push(step);
    }
    tier.ramp_s = ramp.as_secs_f64();
    let at_top = fleet::kernel();
    tier.drops = at_top.drops.saturating_sub(before.drops);
    tier.tcp_pages = at_top.tcp_pages;
    println!(
        "  ramp: {} connections in {:.1}s of ramping ({:.0?} with the steps' measurements)",
        tier.held,
        tier.ramp_s,
        started.elapsed()
    );

    // Peers to cut: their own swarm, from an address of their own.
    let mut args = swarm_args(&addr, &interval_text, 100);
    args.extend(["--source-addrs".to_string(), CUT_FROM.to_string()]);
    let cut_swarm = Swarm::start(
        &format!("{name}-cut"),
        target_dir,
        CUT_PEERS,
        &args,
        &Arc::new(AtomicBool::new(false)),
    );
    let cut_deadline = Instant::now() + Duration::from_secs(30);
    while cut_swarm.up() < CUT_PEERS && Instant::now() < cut_deadline {
        if !wait(Duration::from_millis(500), &mut log, &server_log) {
            return tier;
        }
    }
    // The hold begins one interval after the ramp: every client has
    // heartbeated on its own schedule since its connect.
    if !wait(interval, &mut log, &server_log) {
        return tier;
    }
    // The cut swarm's last status line: how many of its peers are up.
    let up_at_cut = cut_swarm.up();
    let cut = match Cut::new(CUT_FROM) {
        Ok(cut) => Some((cut, Instant::now())),
        Err(e) => {
            tier.cut_note = format!("no peers cut ({e})");
            None
        }
    };

    holding.store(true, Ordering::SeqCst);
    let pids: Vec<u32> = swarms.iter().map(|s| s.group.pid()).collect();
    for &pid in &pids {
        // SAFETY: kill(2) on a swarm this benchmark started; it passes the
        // mark on to its workers.
        unsafe {
            libc::kill(pid as i32, libc::SIGUSR1);
        }
    }
    let hold_start = Instant::now();
    let Some(hold) = measure(
        &server,
        &pids,
        &mut log,
        &server_log,
        before,
        tier.fixed_rss_kib,
        opts.hold,
    ) else {
        return tier;
    };
    tier.hold = hold;
    tier.hold_s = hold_start.elapsed().as_secs_f64();
    holding.store(false, Ordering::SeqCst);
    tier.hold_p99_us = swarms
        .iter()
        .map(|s| s.hold_p99_us.load(Ordering::SeqCst))
        .max()
        .unwrap_or(0);
    if let Some((_, at)) = &cut {
        let bound = (interval * MISSES as u32 + interval + TICK).as_secs_f64();
        let give_up = *at + Duration::from_secs_f64(bound + 10.0);
        while (log.evicted.len() as u64) < up_at_cut.max(1) && Instant::now() < give_up {
            if !wait(Duration::from_millis(200), &mut log, &server_log) {
                return tier;
            }
        }
        let latest = log
            .evicted
            .iter()
            .map(|(when, _)| when.duration_since(*at).as_secs_f64())
            .fold(0.0, f64::max);
        tier.cut = Some((up_at_cut, log.evicted.len() as u64, latest, bound));
    }

    // Stop the swarms all at once (each stops sending and writes its
    // report): one after another, those still running would measure the
    // others' teardown as their own round trips. Then merge, and stop the
    // server.
    for s in swarms.iter() {
        s.group.terminate();
    }
    for s in swarms.iter_mut() {
        s.group.wait(Duration::from_secs(120));
    }
    drop(cut_swarm);
    drop(cut);
    let merged = target_dir.join(format!("scale-{name}-swarm.json"));
    let _ = std::process::Command::new(fleet::BIN)
        .arg("swarm")
        .arg("merge")
        .args(swarms.iter().map(|s| &s.json))
        .arg("--json")
        .arg(&merged)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    tier.report = std::fs::read_to_string(&merged).unwrap_or_default();
    server.stop(Duration::from_secs(180));
    std::thread::sleep(Duration::from_millis(300));
    log.update(&server_log, CUT_FROM);
    let last = if log.stopped.is_empty() {
        &log.total
    } else {
        &log.stopped
    };
    tier.rejected = counter(last, "rejected").unwrap_or(0);
    tier.restarts = log.restarts;
    tier.stalls = log
        .workers
        .iter()
        .map(|(k, line)| {
            (
                *k,
                counter(line, "pauses").unwrap_or(0),
                counter(line, "excused_pauses").unwrap_or(0),
            )
        })
        .collect();
    tier
}

fn main() {
    let opts = Options::parse();
    // SAFETY: the action only stores to an atomic.
    unsafe {
        signal_hook::low_level::register(libc::SIGINT, || {
            INTERRUPTED.store(true, Ordering::SeqCst)
        })
        .expect("SIGINT handler");
    }
    let me = std::env::current_exe().expect("own path");
    let target: PathBuf = me.ancestors().nth(3).map(PathBuf::from).unwrap_or_default();
    println!(
        "scale: {} connections, hold {}, connect rate {}/s, server flags `{}`, swarm flags `{}`, tiers {}",
        opts.connections,
        lubdub::duration::format(opts.hold),
        opts.rate,
        opts.server_args.join(" "),
        opts.swarm_args.join(" "),
        opts.tiers
            .iter()
            .map(|(i, _)| lubdub::duration::format(*i))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut tiers = Vec::new();
    for &(interval, stepped) in &opts.tiers {
        let tier = run_tier(&opts, interval, stepped, &target);
        if interrupted() {
            println!("interrupted: every process started is being killed");
            return;
        }
        tiers.push(tier);
    }
    report(&tiers, &target);
}

fn report(tiers: &[Tier], target: &Path) {
    println!();
    let mut json_tiers = Vec::new();
    for tier in tiers {
        let name = if tier.interval >= Duration::from_secs(30) {
            "must"
        } else {
            "moonshot"
        };
        let (measured, excused): (Vec<u64>, Vec<u64>) =
            tier.stalls.iter().map(|&(_, m, e)| (m, e)).unzip();
        let spread = |v: &[u64]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            match v.as_slice() {
                [] => "-".to_string(),
                v => format!(
                    "{} / {} / {} (sum {})",
                    v[0],
                    v[v.len() / 2],
                    v[v.len() - 1],
                    v.iter().sum::<u64>()
                ),
            }
        };
        let cut = match tier.cut {
            Some((up, n, latest, bound)) => format!(
                "{up} of {CUT_PEERS} connected when cut; {n} evicted, the last {latest:.1} s after the cut (bound {bound:.1} s)"
            ),
            None => tier.cut_note.clone(),
        };
        let rows: Vec<(&str, String)> = vec![
            ("interval", lubdub::duration::format(tier.interval)),
            (
                "connections held / target",
                format!("{} / {}", tier.held, tier.target),
            ),
            ("server workers", tier.workers.to_string()),
            (
                "ramp time, steps' pauses taken out (s)",
                format!("{:.1}", tier.ramp_s),
            ),
            ("rejected", tier.rejected.to_string()),
            ("worker restarts", tier.restarts.to_string()),
            ("reconnects", format!("{}", tier.number("reconnects"))),
            (
                "connect failures",
                format!("{}", tier.number("connect_failures")),
            ),
            (
                "missing replies",
                format!("{}", tier.number("missing_replies")),
            ),
            ("hold", format!("{:.0} s", tier.hold_s)),
            (
                "hold p50 / p99 / p99.9, since the mark (µs)",
                format!(
                    "{} / {} / {}",
                    tier.mark("p50"),
                    tier.mark("p99"),
                    tier.mark("p999")
                ),
            ),
            (
                "hold p99, worst 5 s window of any swarm (µs)",
                tier.hold_p99_us.to_string(),
            ),
            (
                "whole run p50 / p99 / p99.9 (µs)",
                format!(
                    "{} / {} / {}",
                    tier.number("p50"),
                    tier.number("p99"),
                    tier.number("p999")
                ),
            ),
            (
                "heartbeats/s during the hold",
                format!("{:.0}", tier.hold.heartbeats_per_s),
            ),
            (
                "server CPU during the hold (% of a core; µs/heartbeat)",
                format!(
                    "{:.1}; {:.1}",
                    tier.hold.server_cpu_pct, tier.hold.server_us_per_hb
                ),
            ),
            (
                "swarm CPU during the hold (% of a core; µs/heartbeat)",
                format!(
                    "{:.1}; {:.1}",
                    tier.hold.swarm_cpu_pct, tier.hold.swarm_us_per_hb
                ),
            ),
            (
                "ksoftirqd CPU during the hold (% of a core)",
                format!("{:.1}", tier.hold.softirq_pct),
            ),
            (
                "server RSS per connection (B, fixed cost out)",
                format!("{:.1}", tier.hold.rss_per_conn),
            ),
            (
                "server fixed RSS, all workers (KiB)",
                tier.fixed_rss_kib.to_string(),
            ),
            (
                "kernel slab per connection, both ends (B)",
                format!("{:.0}", tier.hold.slab_per_conn),
            ),
            ("TCP buffer pages at the top", tier.tcp_pages.to_string()),
            ("loopback drops during the ramp", tier.drops.to_string()),
            ("stalls per worker, min / median / max", spread(&measured)),
            ("excused per worker, min / median / max", spread(&excused)),
            ("peers cut during the hold", cut),
            (name, if tier.met() { "met" } else { "not met" }.to_string()),
        ];
        println!("{name} tier ({}):", lubdub::duration::format(tier.interval));
        for (k, v) in &rows {
            println!("  {k:<56} {v}");
        }
        let steps: Vec<String> = tier
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{{\"connections\":{},\"ramp_s\":{:.1},\"server_rss_per_conn\":{:.1},\"kernel_slab_per_conn\":{:.0},\"heartbeats_per_s\":{:.0},\"server_cpu_pct\":{:.1},\"swarm_cpu_pct\":{:.1},\"ksoftirqd_cpu_pct\":{:.1},\"server_us_per_heartbeat\":{:.2},\"swarm_us_per_heartbeat\":{:.2}}}",
                    s.connections,
                    s.ramp_s,
                    s.rss_per_conn,
                    s.slab_per_conn,
                    s.heartbeats_per_s,
                    s.server_cpu_pct,
                    s.swarm_cpu_pct,
                    s.softirq_pct,
                    s.server_us_per_hb,
                    s.swarm_us_per_hb
                )
            })
            .collect();
        let stalls: Vec<String> = tier
            .stalls
            .iter()
            .map(|(k, m, e)| format!("{{\"worker\":{k},\"stalls\":{m},\"excused\":{e}}}"))
            .collect();
        json_tiers.push(format!(
            "{{\"tier\":\"{name}\",{},\"steps\":[{}],\"stalls_by_worker\":[{}]}}",
            rows.iter()
                .map(|(k, v)| format!("\"{}\":\"{}\"", k.replace('"', ""), v))
                .collect::<Vec<_>>()
                .join(","),
            steps.join(","),
            stalls.join(",")
        ));
        if tier.steps.len() > 1 {
            // Where the docs show it: a run that changes the curve shows
            // up in `git diff`.
            let svg_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/scale-bench.svg");
            let _ = std::fs::write(&svg_path, svg::curves(&tier.steps_for_svg()));
            println!("  curve: {}", svg_path.display());
        }
    }
    let out = target.join("scale-bench.json");
    let _ = std::fs::write(&out, format!("[{}]\n", json_tiers.join(",")));
    println!("JSON: {}", out.display());
}

impl Tier {
    fn steps_for_svg(&self) -> Vec<svg::Point> {
        self.steps
            .iter()
            .map(|s| svg::Point {
                connections: s.connections,
                server_bytes: s.rss_per_conn,
                kernel_bytes: s.slab_per_conn,
                server_us_per_hb: s.server_us_per_hb,
                swarm_us_per_hb: s.swarm_us_per_hb,
            })
            .collect()
    }
}
