//! Scale benchmark: `lubdub server --workers auto` and `lubdub swarm
//! --workers auto` on this machine, ramped to a target count of
//! connections (a million by default) and held.
//!
//! ```text
//! cargo bench --bench scale                                  # 1,000,000 at 30 s, 2 min hold
//! cargo bench --bench scale -- --connections 200000 --hold 60s
//! cargo bench --bench scale -- --interval 10s                # the 10 s tier
//! ```
//!
//! It reports connections held, ramp time, rejected, reconnects by reason,
//! missing replies, round trips during the hold (the worst status-line
//! window p99 after the ramp, and the whole run's percentiles), server and
//! swarm CPU, server memory per connection (RSS of the supervisor and its
//! workers), kernel memory per connection (slab and TCP pages) and loopback
//! drops (`/proc/net/softnet_stat`), and judges the must tier: zero
//! rejected, zero missing, hold p99 under 50 ms, server memory under 128 B
//! a connection plus each worker's fixed cost. Figures go to stdout and to
//! `<target>/scale-bench.json`; every process it started is killed on the
//! way out, Ctrl-C included.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "loopback/procstat.rs"]
#[allow(dead_code)]
mod procstat;

const BIN: &str = env!("CARGO_BIN_EXE_lubdub");

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A process group this benchmark started, killed whole when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this benchmark created.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn spawn(args: &[String], stderr_to: &std::path::Path) -> Group {
    let log = std::fs::File::create(stderr_to).expect("log file");
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("spawn lubdub");
    Group(child)
}

/// Every process in the tree under `pid`, `pid` included.
fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            all.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        i += 1;
    }
    all
}

fn tree_cpu(pid: u32) -> f64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| procstat::cpu_seconds(p).ok())
        .sum()
}

fn tree_rss_kib(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| procstat::memory(p).ok())
        .map(|m| m.rss_kib)
        .sum()
}

/// Kernel-wide figures: slab (kB), TCP socket-buffer pages, loopback drops.
#[derive(Debug, Clone, Copy, Default)]
struct Kernel {
    slab_kib: u64,
    tcp_pages: u64,
    drops: u64,
}

fn kernel() -> Kernel {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let slab_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let tcp_pages = sockstat
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "mem").nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let softnet = std::fs::read_to_string("/proc/net/softnet_stat").unwrap_or_default();
    let drops = softnet
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .sum();
    Kernel {
        slab_kib,
        tcp_pages,
        drops,
    }
}

fn arg(args: &[String], flag: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// A `key=value` counter from a log line.
fn counter(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A number from the swarm's JSON report.
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let connections: u64 = arg(&args, "--connections", "1000000")
        .parse()
        .expect("--connections");
    let interval = arg(&args, "--interval", "30s");
    let hold = lubdub::duration::parse(&arg(&args, "--hold", "120s")).expect("--hold");
    let rate: u64 = arg(&args, "--connect-rate", "10000")
        .parse()
        .expect("--connect-rate");
    // SAFETY: the action only stores to an atomic.
    unsafe {
        signal_hook::low_level::register(libc::SIGINT, || {
            INTERRUPTED.store(true, Ordering::SeqCst)
        })
        .expect("SIGINT handler");
    }
    let me = std::env::current_exe().expect("own path");
    let target = me
        .ancestors()
        .nth(3)
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let before = kernel();
    println!(
        "scale: {connections} connections, interval {interval}, hold {}, connect rate {rate}/s",
        lubdub::duration::format(hold)
    );

    let server_log = target.join("scale-server.log");
    let server = spawn(
        &[
            "server",
            "--listen",
            &addr,
            "--workers",
            "auto",
            "--max-connections",
            &connections.to_string(),
            "--interval",
            &interval,
            "--stats-every",
            "5s",
        ]
        .map(String::from),
        &server_log,
    );
    std::thread::sleep(Duration::from_secs(2));
    let server_pid = server.0.id();
    let workers = tree(server_pid).len() as u64 - 1;
    let server_fixed_kib = tree_rss_kib(server_pid);

    let ramp_allowance = Duration::from_secs(connections / rate.max(1) + 60);
    let duration = ramp_allowance + hold;
    let swarm_json = target.join("scale-swarm.json");
    let mut swarm = spawn(
        &[
            "swarm",
            "--connect",
            &addr,
            "--workers",
            "auto",
            "--clients",
            &connections.to_string(),
            "--interval",
            &interval,
            "--duration",
            &format!("{}s", duration.as_secs()),
            "--connect-rate",
            &rate.to_string(),
            "--max-p99",
            "50ms",
            "--json",
            &swarm_json.to_string_lossy(),
        ]
        .map(String::from),
        &target.join("scale-swarm.log"),
    );
    let swarm_pid = swarm.0.id();
    // The swarm's status lines (stdout): the ramp's end and each window's p99.
    let stdout = swarm.0.stdout.take().expect("piped");
    let (tx, lines) = std::sync::mpsc::channel::<(Instant, String)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });

    let started = Instant::now();
    let mut ramped: Option<(Duration, Kernel, u64, f64, f64)> = None;
    let mut hold_p99_us = 0u64;
    let full = format!("{connections}/{connections} up");
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            println!("interrupted: every process started is being killed");
            return;
        }
        if swarm.0.try_wait().ok().flatten().is_some() {
            break;
        }
        while let Ok((_, line)) = lines.try_recv() {
            if ramped.is_none() && line.contains(&full) {
                ramped = Some((
                    started.elapsed(),
                    kernel(),
                    tree_rss_kib(server_pid),
                    tree_cpu(server_pid),
                    tree_cpu(swarm_pid),
                ));
                println!("ramp done in {:.1?}", started.elapsed());
            } else if ramped.is_some() {
                if let Some(p99) = line
                    .split("p99 ")
                    .nth(1)
                    .and_then(|r| r.trim().strip_suffix("us"))
                {
                    hold_p99_us = hold_p99_us.max(p99.parse().unwrap_or(0));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let elapsed = started.elapsed();
    let server_cpu_end = tree_cpu(server_pid);
    let swarm_report = std::fs::read_to_string(&swarm_json).unwrap_or_default();
    // SAFETY: SIGTERM to the supervisor this benchmark started.
    unsafe {
        libc::kill(server_pid as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut server = server;
    while server.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&server_log).unwrap_or_default();
    let stopped = log
        .lines()
        .rev()
        .find(|l| l.contains("] stopped: "))
        .unwrap_or("")
        .to_string();

    let Some((ramp, at_ramp, rss_kib, server_cpu_ramp, swarm_cpu_ramp)) = ramped else {
        println!(
            "the ramp never reached {connections} connections in {elapsed:.0?}; see {}",
            server_log.display()
        );
        println!("swarm report: {swarm_report}");
        return;
    };
    let hold_secs = (elapsed - ramp).as_secs_f64();
    let server_cpu = 100.0 * (server_cpu_end - server_cpu_ramp) / hold_secs;
    let swarm_cpu_end: f64 = json_number(&swarm_report, "elapsed_s");
    let _ = swarm_cpu_end;
    let swarm_cpu = 100.0 * (tree_cpu(swarm_pid).max(swarm_cpu_ramp) - swarm_cpu_ramp) / hold_secs;
    let per_conn_rss =
        (rss_kib.saturating_sub(server_fixed_kib) * 1024) as f64 / connections as f64;
    let slab_per_conn =
        (at_ramp.slab_kib.saturating_sub(before.slab_kib) * 1024) as f64 / connections as f64;
    let rejected = counter(&stopped, "rejected");
    let missing = json_number(&swarm_report, "missing_replies");
    let must = rejected == 0 && missing == 0.0 && hold_p99_us < 50_000 && per_conn_rss < 128.0;
    let rows = [
        ("connections held", format!("{connections}")),
        ("server workers", format!("{workers}")),
        ("ramp time (s)", format!("{:.1}", ramp.as_secs_f64())),
        ("rejected", format!("{rejected}")),
        (
            "reconnects",
            format!("{}", json_number(&swarm_report, "reconnects")),
        ),
        ("missing replies", format!("{missing}")),
        ("hold p99, worst 5 s window (µs)", format!("{hold_p99_us}")),
        (
            "whole run p50 / p99 / p99.9 (µs)",
            format!(
                "{} / {} / {}",
                json_number(&swarm_report, "p50"),
                json_number(&swarm_report, "p99"),
                json_number(&swarm_report, "p999")
            ),
        ),
        (
            "server CPU during the hold (% of a core)",
            format!("{server_cpu:.1}"),
        ),
        (
            "swarm CPU during the hold (% of a core)",
            format!("{swarm_cpu:.1}"),
        ),
        (
            "server RSS per connection (B, fixed cost taken out)",
            format!("{per_conn_rss:.1}"),
        ),
        (
            "server fixed RSS, all workers (KiB)",
            format!("{server_fixed_kib}"),
        ),
        (
            "kernel slab per connection, both ends (B)",
            format!("{slab_per_conn:.0}"),
        ),
        (
            "TCP buffer pages at the ramp's end",
            format!("{}", at_ramp.tcp_pages),
        ),
        (
            "loopback drops during the ramp",
            format!("{}", at_ramp.drops.saturating_sub(before.drops)),
        ),
        (
            "server stalls / excused",
            format!(
                "{} / {}",
                counter(&stopped, "pauses"),
                counter(&stopped, "excused_pauses")
            ),
        ),
        (
            "must tier",
            if must {
                "met".into()
            } else {
                "not met".to_string()
            },
        ),
    ];
    for (name, value) in &rows {
        println!("{name:<52} {value}");
    }
    let json = format!(
        "{{{}}}",
        rows.iter()
            .map(|(k, v)| format!("\"{}\":\"{}\"", k.replace('"', ""), v))
            .collect::<Vec<_>>()
            .join(",")
    );
    let out = target.join("scale-bench.json");
    let _ = std::fs::write(&out, json + "\n");
    println!("JSON: {}; logs: {}", out.display(), server_log.display());
}
