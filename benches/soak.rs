//! Soak: one server, a swarm of clients of which some drop and come back
//! every second, for minutes. What it shows is whether anything grows:
//! the server's resident memory must be flat once every client is in, and
//! no connection that was not dropped on purpose may lose a reply.
//!
//! ```text
//! cargo bench --bench soak                          # 10,000 clients, 1 %/s churn, 10 minutes
//! cargo bench --bench soak -- --minutes 2 --clients 2000
//! ```
//!
//! The server and the swarm are the `lubdub` binary of this build, as a user
//! runs them: server pinned to CPU 0, swarm to CPU 1. Every 10 s the server's
//! RSS and CPU are read from `/proc` and printed; at the end comes the
//! swarm's report and a verdict. Exit code 1 when the verdict fails.

#[path = "loopback/procstat.rs"]
#[allow(dead_code)]
mod procstat;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lubdub");

/// Samples taken before every client is in and the heap has settled are
/// warm-up, left out of the flatness verdict.
const WARM_UP: Duration = Duration::from_secs(60);

/// RSS may wander this much after warm-up (allocator noise, the kernel's
/// accounting of socket pages), and no more.
const FLAT_KIB: u64 = 512;

struct Options {
    minutes: u64,
    clients: u64,
    churn: f64,
    every: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --benches` runs this without `--bench`: a ten-minute soak
    // would be unwelcome there.
    if !args.iter().any(|a| a == "--bench") {
        println!("(the soak runs under `cargo bench --bench soak`)");
        return;
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let options = Options {
        minutes: value("--minutes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
        clients: value("--clients")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
        churn: value("--churn").and_then(|v| v.parse().ok()).unwrap_or(1.0),
        every: Duration::from_secs(value("--every").and_then(|v| v.parse().ok()).unwrap_or(10)),
    };
    std::process::exit(soak(&options));
}

/// `taskset -c CPU` when it is there, so server and load do not share a core.
fn pinned(cpu: u32) -> Command {
    let has_taskset = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), BIN]);
        c
    } else {
        Command::new(BIN)
    }
}

fn soak(o: &Options) -> i32 {
    let mut server = pinned(0)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1s",
            "--misses",
            "5",
        ])
        .args(["--stats-every", "10s"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lubdub server");
    let (addr, server_log) = listening(&mut server);
    println!(
        "soak: {} clients, {} %/s churn, {} min, server {addr} (pid {})",
        o.clients,
        o.churn,
        o.minutes,
        server.id()
    );
    let mut swarm = pinned(1)
        .args([
            "swarm",
            "--connect",
            &addr,
            "--clients",
            &o.clients.to_string(),
        ])
        .args([
            "--interval",
            "1s",
            "--misses",
            "5",
            "--churn",
            &o.churn.to_string(),
        ])
        .args(["--backoff-min", "100ms", "--backoff-max", "1s"])
        .args(["--duration", &format!("{}m", o.minutes), "--json", "-"])
        .args(["--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lubdub swarm");

    let pid = server.id();
    let start = Instant::now();
    let mut samples: Vec<(Duration, u64, f64)> = Vec::new();
    let mut last_cpu = (start, procstat::cpu_seconds(pid).unwrap_or(0.0));
    println!(
        "{:>8} {:>10} {:>8} {:>8}",
        "t", "rss_kib", "cpu_%", "active"
    );
    loop {
        std::thread::sleep(o.every);
        if swarm.try_wait().ok().flatten().is_some() {
            break;
        }
        let now = Instant::now();
        let (Ok(mem), Ok(cpu)) = (procstat::memory(pid), procstat::cpu_seconds(pid)) else {
            println!("soak: the server is gone");
            return 1;
        };
        let pct = 100.0 * (cpu - last_cpu.1) / now.duration_since(last_cpu.0).as_secs_f64();
        last_cpu = (now, cpu);
        let active = server_log
            .lock()
            .unwrap()
            .as_deref()
            .and_then(|l| {
                l.split("active=")
                    .nth(1)?
                    .split(' ')
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let t = now.duration_since(start);
        println!(
            "{:>7.0}s {:>10} {:>8.2} {:>8}",
            t.as_secs_f64(),
            mem.rss_kib,
            pct,
            active
        );
        samples.push((t, mem.rss_kib, pct));
    }
    let mut report = String::new();
    swarm
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut report)
        .unwrap();
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = server.wait();
    println!("swarm report: {}", report.trim());

    let settled: Vec<u64> = samples
        .iter()
        .filter(|(t, _, _)| *t >= WARM_UP)
        .map(|&(_, rss, _)| rss)
        .collect();
    let (low, high) = (
        settled.iter().min().copied().unwrap_or(0),
        settled.iter().max().copied().unwrap_or(0),
    );
    let missing = number(&report, "missing_replies");
    let reconnects = number(&report, "reconnects");
    let churned = number(&report, "churned");
    let flat = !settled.is_empty() && high - low <= FLAT_KIB;
    println!(
        "verdict: RSS after warm-up {low}..{high} KiB (spread {} KiB, bound {FLAT_KIB}): {}; \
         churned {churned:?}, unplanned reconnects {reconnects:?}, missing replies {missing:?}: {}",
        high - low,
        if flat { "flat" } else { "NOT FLAT" },
        if missing == Some(0) && reconnects == Some(0) {
            "none lost"
        } else {
            "LOST"
        }
    );
    i32::from(!(flat && missing == Some(0) && reconnects == Some(0)))
}

/// Waits for `listening on ADDR` and keeps the latest `stats` line.
fn listening(server: &mut Child) -> (String, std::sync::Arc<std::sync::Mutex<Option<String>>>) {
    let stderr = server.stderr.take().unwrap();
    let latest = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (tx, rx) = std::sync::mpsc::channel();
    let keep = latest.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
            if line.contains(" stats ") {
                *keep.lock().unwrap() = Some(line);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the server never said where it listens");
    (addr, latest)
}

/// The integer after `"key":` in the swarm's report.
fn number(json: &str, key: &str) -> Option<u64> {
    let rest = json.split(&format!("\"{key}\":")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
