//! A seeded storm of faults and hostile peers against the server binary,
//! judged by an oracle that replays the liveness rule from the server's own
//! log: no live peer is ever closed, every silent peer is evicted no earlier
//! than its last frame + the limit and no later than the rule's bound,
//! flooders are closed as slow readers, memory stays bounded, and the
//! server exits cleanly.
//!
//! The server runs as `lubdub server --interval 200ms --misses 3`. Peers,
//! each kind on a thread of its own: steady heartbeaters, split writers
//! (2–8 writes a heartbeat over up to 100 ms, Nagle on), peers that go
//! quiet, tricklers, flooders that never read, churners that reset. Faults:
//! single stops of 0.1–2.5 s, pairs of stops whose second falls inside the
//! excuse window of the first (sometimes with a connect burst inside), busy
//! threads pinned with the server to one core, connect bursts.
//!
//! Every run prints its seed; `LUBDUB_CHAOS_SEED=N` replays the same
//! schedule and peer mix. `many_seeds` (ignored; see docs/testing.md) runs
//! seed after seed and prints one line each.

mod common;
#[path = "chaos/faults.rs"]
mod faults;
#[path = "chaos/oracle.rs"]
mod oracle;
#[path = "chaos/peers.rs"]
mod peers;
#[path = "chaos/plan.rs"]
mod plan;

use std::time::{Duration, Instant};

use common::log_value;
use common::peers::Child;
use faults::{FaultLog, Target};
use oracle::{Findings, ServerLog, WallMap};
use peers::{Clock, Driver, Kind, Record, Spec};
use plan::{Plan, Profile, HUNT, SHORT};

/// The server's resident memory must stay below this (it holds a few
/// hundred connections and at most a 64 KiB backlog per slow reader).
const MAX_RSS_KB: u64 = 64 * 1024;

/// One run's result.
struct Outcome {
    plan: Plan,
    findings: Findings,
    max_rss_kb: u64,
    stalls: usize,
    stopped: String,
    took: Duration,
    nstat: String,
}

impl Outcome {
    fn line(&self) -> String {
        format!(
            "seed={} profile={} faults={} evictions={} (silent {}) live_evicted={} failures={} \
             stalls={} worst_late={}ms max_rss={}KiB slow_readers={} evicted_with_unread_data={} \
             took={:.1}s{}",
            self.plan.seed,
            self.plan.profile.name,
            self.plan.faults.len(),
            self.findings.evictions,
            self.findings.quiet_evictions,
            self.findings.live_evictions.len(),
            self.findings.failures.len(),
            self.stalls,
            self.findings.worst_late_ms,
            self.max_rss_kb,
            log_value(&self.stopped, "slow_readers"),
            log_value(&self.stopped, "evicted_with_unread_data"),
            self.took.as_secs_f64(),
            if self.nstat.is_empty() {
                String::new()
            } else {
                format!(" tcp: {}", self.nstat)
            }
        )
    }
}

/// The seed: `LUBDUB_CHAOS_SEED`, or from the time.
fn seed_from_env() -> u64 {
    match std::env::var("LUBDUB_CHAOS_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("LUBDUB_CHAOS_SEED={s:?} is not a number")),
        Err(_) => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_000
        }
    }
}

fn profile_from_env(default: Profile) -> Profile {
    match std::env::var("LUBDUB_CHAOS_PROFILE").as_deref() {
        Ok("hunt") => HUNT,
        Ok("short") => SHORT,
        _ => default,
    }
}

fn ncpu() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The TCP counters that tell a lost or delayed segment from a missed read
/// (`nstat -az`, absolute, history left alone).
const NSTAT_KEYS: &[&str] = &[
    "TcpRetransSegs",
    "TcpExtTCPTimeouts",
    "TcpExtTCPLossProbes",
    "TcpExtTCPRcvQDrop",
    "TcpExtPruneCalled",
    "TcpExtRcvPruned",
    "TcpExtTCPBacklogDrop",
    "TcpExtTCPMemoryPressures",
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtTCPOFOQueue",
    "TcpExtTCPZeroWindowDrop",
    "TcpExtTCPRcvQDrop",
    "TcpExtDelayedACKs",
    "TcpExtTCPSpuriousRTOs",
];

fn nstat() -> Option<Vec<(String, u64)>> {
    let out = std::process::Command::new("nstat")
        .args(["-az", "-s"])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut counters: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (k, v) = (w.next()?, w.next()?.parse().ok()?);
            NSTAT_KEYS.contains(&k).then(|| (k.to_string(), v))
        })
        .collect();
    // Packets loopback dropped because a CPU's input backlog was full
    // (netdev_max_backlog), and times its softirq ran out of budget:
    // machine-wide, from /proc/net/softnet_stat (hex columns 2 and 3).
    if let Ok(softnet) = std::fs::read_to_string("/proc/net/softnet_stat") {
        let column = |i: usize| -> u64 {
            softnet
                .lines()
                .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(i)?, 16).ok())
                .sum()
        };
        counters.push(("SoftnetDropped".into(), column(1)));
        counters.push(("SoftnetSqueezed".into(), column(2)));
    }
    Some(counters)
}

fn nstat_diff(before: &[(String, u64)], after: &[(String, u64)]) -> String {
    after
        .iter()
        .filter_map(|(k, v)| {
            let b = before.iter().find(|(bk, _)| bk == k).map_or(0, |x| x.1);
            (v > &b).then(|| format!("{}={}", k.trim_start_matches("TcpExt"), v - b))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One seeded run, judged.
fn run(seed: u64, profile: Profile, with_nstat: bool) -> Outcome {
    let started = Instant::now();
    let _ = lubdub::limits::raise_file_limit();
    let plan = Plan::new(seed, profile, ncpu());
    eprintln!("chaos: {}", plan.describe());
    eprintln!("chaos: replay with LUBDUB_CHAOS_SEED={seed}");
    let nstat_before = if with_nstat { nstat() } else { None };
    if with_nstat && nstat_before.is_none() {
        // Asked for, and not to be had: said, not left out silently.
        common::netns::skip(
            "the TCP counters of LUBDUB_CHAOS_NSTAT",
            "`nstat` not found (apt-get install iproute2)",
        );
    }
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lubdub"));
    command.args([
        "server",
        "--listen",
        "127.0.0.1:0",
        "--interval",
        "200ms",
        "--misses",
        "3",
        "--stats-every",
        "1s",
        "--log-level",
        "debug",
    ]);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        // A test killed while the server is stopped must not leave a
        // stopped server behind: the kernel kills it with its parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let (mut server, addr) = Child::listening(command);
    let pid = server.child.id();
    let clock = Clock { t0: Instant::now() };
    let wall0 = WallMap::wall_now();
    let p = &plan.profile;
    let us = |d: Duration| d.as_micros() as i64;
    let reconnect_until = us(p.duration) - us(Duration::from_secs(2));
    let deaths = |split: bool| -> Vec<i64> {
        plan.deaths
            .iter()
            .filter(|d| d.split == split)
            .map(|d| us(d.at))
            .collect()
    };
    let dying = |split: bool| deaths(split).len() as u64;
    let spec = |kinds: Vec<(Kind, u64)>, deaths: Vec<i64>, seed: u64| Spec {
        kinds,
        deaths,
        seed,
        reconnect_until,
    };
    let drivers = vec![
        Driver::start(
            addr,
            clock,
            spec(
                vec![
                    (Kind::Steady, p.steady),
                    (Kind::Dying { split: false }, dying(false)),
                ],
                deaths(false),
                plan.peer_seeds[0],
            ),
        ),
        Driver::start(
            addr,
            clock,
            spec(
                vec![
                    (Kind::Split, p.split),
                    (Kind::Dying { split: true }, dying(true)),
                ],
                deaths(true),
                plan.peer_seeds[1],
            ),
        ),
        Driver::start(
            addr,
            clock,
            spec(
                vec![(Kind::Trickle, p.tricklers), (Kind::Churn, p.churners)],
                Vec::new(),
                plan.peer_seeds[2],
            ),
        ),
        Driver::start(
            addr,
            clock,
            spec(
                vec![(Kind::Flood, p.flooders)],
                Vec::new(),
                plan.peer_seeds[3],
            ),
        ),
    ];

    let target = Target {
        pid: pid as i32,
        addr,
        clock,
    };
    let mut log = FaultLog::default();
    let mut max_rss_kb = 0;
    let mut next_sample = 0;
    // Every wait samples the server's memory and drains its log.
    let mut wait = |until: i64| loop {
        let now = clock.now();
        if now >= next_sample {
            if let Some(kb) = rss_kb(pid) {
                max_rss_kb = max_rss_kb.max(kb);
            }
            server.drain();
            next_sample = now + 250_000;
        }
        if now >= until {
            break;
        }
        std::thread::sleep(Duration::from_micros((until - now).min(20_000) as u64));
    };
    for fault in plan.faults.clone() {
        wait(us(fault.at()));
        target.run(fault, &mut log, &mut wait);
    }
    wait(us(p.duration));
    let records_by_driver: Vec<Vec<Record>> = drivers.into_iter().map(Driver::finish).collect();
    let end = clock.now();
    log.join_bursts();
    let drift = (WallMap::wall_now() - wall0) - clock.now();
    let code = server.terminate();
    let nstat = match (nstat_before, with_nstat.then(nstat).flatten()) {
        (Some(b), Some(a)) => nstat_diff(&b, &a),
        _ => String::new(),
    };
    let raw: Vec<String> = server.seen.iter().map(|(_, l)| l.clone()).collect();
    if let Some(dir) = std::env::var_os("LUBDUB_CHAOS_LOGS") {
        // Kept for a post-mortem: the server's log and the test's stops.
        let dir = std::path::PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let stops: Vec<String> = log
            .stops
            .iter()
            .map(|(a, b)| format!("stop {:.3}s..{:.3}s", *a as f64 / 1e6, *b as f64 / 1e6))
            .collect();
        let _ = std::fs::write(
            dir.join(format!("seed-{seed}.log")),
            format!(
                "wall0={wall0}us\n{}\n{}\n",
                stops.join("\n"),
                raw.join("\n")
            ),
        );
    }
    let map = WallMap { wall0, drift };
    let mut parsed = ServerLog::parse(&raw, &map);
    let misjudged_stalls = parsed.replay_excuses();
    let mut records: Vec<Record> = records_by_driver.into_iter().flatten().collect();
    records.append(&mut log.burst_records);
    let mut findings = oracle::judge(&parsed, &records, &log.stops, &map, end);
    findings.failures.extend(misjudged_stalls);

    let stopped = raw
        .iter()
        .rev()
        .find(|l| l.contains("stopped:"))
        .cloned()
        .unwrap_or_default();
    if code != Some(0) {
        findings
            .failures
            .push(format!("the server exited with {code:?} on SIGTERM, not 0"));
    }
    if stopped.is_empty() {
        findings.failures.push("no \"stopped:\" line".into());
    } else {
        if log_value(&stopped, "evicted_with_unread_data") != 0 {
            findings.failures.push(format!(
                "evictions left unread data in the socket: {stopped}"
            ));
        }
        if log_value(&stopped, "evicted") != parsed.evictions.len() as u64 {
            findings.failures.push(format!(
                "{} eviction lines, but the counters say: {stopped}",
                parsed.evictions.len()
            ));
        }
    }
    if max_rss_kb > MAX_RSS_KB {
        findings.failures.push(format!(
            "server resident memory reached {max_rss_kb} KiB (bound {MAX_RSS_KB} KiB)"
        ));
    }
    Outcome {
        plan,
        findings,
        max_rss_kb,
        stalls: parsed.stalls.len(),
        stopped,
        took: started.elapsed(),
        nstat,
    }
}

fn assert_kept(outcome: &Outcome) {
    let f = &outcome.findings;
    assert!(
        f.failures.is_empty(),
        "chaos seed {} broke {} promise(s) (replay: LUBDUB_CHAOS_SEED={}):\n{}\n\n{}",
        outcome.plan.seed,
        f.failures.len(),
        outcome.plan.seed,
        f.failures.join("\n\n"),
        outcome.plan.describe()
    );
    // The run exercised what it claims to: silent peers were judged.
    assert!(
        f.quiet_evictions >= outcome.plan.deaths.len(),
        "only {} silent peers evicted, {} went silent: {}",
        f.quiet_evictions,
        outcome.plan.deaths.len(),
        outcome.line()
    );
}

#[test]
fn a_seeded_storm_of_stops_hogs_bursts_and_hostile_peers_evicts_no_live_peer_and_every_silent_one_on_time(
) {
    let outcome = run(seed_from_env(), profile_from_env(SHORT), false);
    eprintln!("chaos: {}", outcome.line());
    assert_kept(&outcome);
}

/// `LUBDUB_CHAOS_SEEDS=N` runs (default 10), seeds from
/// `LUBDUB_CHAOS_SEED` on (or from the time), one line each; every live
/// peer evicted is listed with the kernel's evidence at the end. Set
/// `LUBDUB_CHAOS_NSTAT=1` to add the TCP counters that moved during each
/// run (system-wide: run it in a network namespace of its own to keep other
/// traffic out).
#[test]
#[ignore]
fn many_seeds() {
    let n: u64 = std::env::var("LUBDUB_CHAOS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let first = seed_from_env();
    let profile = profile_from_env(SHORT);
    let with_nstat = std::env::var_os("LUBDUB_CHAOS_NSTAT").is_some();
    let mut broken = Vec::new();
    let mut live = Vec::new();
    for seed in first..first + n {
        let outcome = run(seed, profile, with_nstat);
        println!("{}", outcome.line());
        for l in &outcome.findings.live_evictions {
            live.push(format!("seed={seed} {l}"));
        }
        if !outcome.findings.failures.is_empty() {
            eprintln!("{}", outcome.findings.failures.join("\n\n"));
            broken.push(seed);
        }
    }
    println!("live peers evicted: {}", live.len());
    for l in &live {
        println!("  {l}");
    }
    assert!(broken.is_empty(), "seeds that broke a promise: {broken:?}");
}
