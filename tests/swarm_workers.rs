//! `lubdub swarm --workers` and `lubdub swarm merge`: real worker
//! processes over loopback against an in-process server, and reports
//! merged from files.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::peers::{Child, Lubdub};
use hdrhistogram::Histogram;
use lubdub::swarm::json::{self, Value};
use lubdub::swarm::{hdr, Criteria, Report, Rtt};

/// Criteria a loaded 2-core machine cannot break by being slow: a test
/// here is about counting and merging, and its exit code must not hang on
/// a p99. Connections must all stay up, and every request be answered.
const LOOSE: [&str; 10] = [
    "--max-p99",
    "5s",
    "--max-stall",
    "10s",
    "--max-late",
    "1000000",
    "--max-connect-wait",
    "10s",
    "--log-level",
    "warn",
];

/// Both sides tolerate 250 ms × 20 of silence: a stall of this loaded
/// machine must not pass for a dead peer.
fn server() -> Lubdub {
    Lubdub::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        Duration::from_millis(250),
        20,
    )
}

fn swarm_args(server: &Lubdub, clients: usize, duration: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "swarm",
        "--connect",
        &server.addr.to_string(),
        "--clients",
        &clients.to_string(),
        "--interval",
        "250ms",
        "--misses",
        "20",
        "--duration",
        duration,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(LOOSE.iter().map(|s| s.to_string()));
    args
}

fn lubdub(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lubdub"))
        .args(args)
        .output()
        .expect("run lubdub")
}

fn parse(json: &str) -> Value {
    json::parse(json.trim()).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// A whole number at `path` (`rtt_us.count`) in a report.
fn n(v: &Value, path: &str) -> u64 {
    let mut at = v;
    for key in path.split('.') {
        at = at
            .get(key)
            .unwrap_or_else(|| panic!("no {path} in the report"));
    }
    at.as_u64()
        .unwrap_or_else(|| panic!("{path} is not a whole number"))
}

fn histogram(v: &Value) -> Histogram<u64> {
    let text = v
        .get("rtt_histogram")
        .and_then(Value::as_str)
        .expect("rtt_histogram");
    hdr::decode(text).expect("a histogram")
}

fn workers(v: &Value) -> &[Value] {
    match v.get("workers") {
        Some(Value::Array(items)) => items,
        other => panic!("workers is {other:?}"),
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lubdub-{}-{name}", std::process::id()))
}

/// The counts the parent sums are the workers' counts summed, the round
/// trips are all of theirs, and its percentiles are read from the merged
/// histogram it carries.
#[test]
fn two_workers_make_one_report_whose_counts_are_the_sum_of_theirs() {
    let server = server();
    let mut args = swarm_args(&server, 200, "3s");
    args.extend(["--workers", "2", "--status-every", "1s", "--json", "-"].map(String::from));
    let out = lubdub(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {stdout}");
    let report = parse(&stdout);
    let parts = workers(&report);
    assert_eq!(parts.len(), 2, "{stdout}");
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(n(part, "index"), i as u64);
        assert_eq!(n(part, "clients"), 100);
        assert_eq!(part.get("failed"), Some(&Value::Null));
    }
    for key in [
        "connected",
        "peak_connected",
        "connect_failures",
        "reconnects",
        "heartbeats_sent",
        "replies",
        "missing_replies",
        "late_replies",
    ] {
        let sum: u64 = parts.iter().map(|p| n(p, key)).sum();
        assert_eq!(n(&report, key), sum, "{key}: {stdout}");
    }
    assert_eq!(n(&report, "target"), 200);
    assert_eq!(n(&report, "connected"), 200, "{stdout}");
    assert_eq!(n(&report, "missing_replies"), 0, "{stdout}");
    // Ramp-up 0.1 s, then 4 heartbeats a second each for nearly 3 s.
    assert!(n(&report, "replies") >= 200 * 8, "{stdout}");
    assert_eq!(n(&report, "replies"), n(&report, "heartbeats_sent"));
    // Every worker's round trips, and percentiles from their histogram.
    let count: u64 = parts.iter().map(|p| n(p, "rtt_count")).sum();
    assert_eq!(n(&report, "rtt_us.count"), count);
    let hist = histogram(&report);
    assert_eq!(hist.len(), count);
    let rtt = Rtt::of(&hist);
    assert_eq!(n(&report, "rtt_us.p50"), rtt.p50);
    assert_eq!(n(&report, "rtt_us.p99"), rtt.p99);
    assert_eq!(n(&report, "rtt_us.p999"), rtt.p999);
    assert_eq!(n(&report, "rtt_us.max"), rtt.max);
    // The server saw every one of them, from 200 connections at once.
    let stats = server.stop();
    assert_eq!(stats.peak_active, 200, "{stats:?}");
    assert_eq!(stats.heartbeats, n(&report, "heartbeats_sent"), "{stats:?}");
    // One status line for all (the 200-client target), one summary.
    let statuses = stderr.lines().filter(|l| l.contains(" up  ")).count();
    assert!(statuses >= 2, "{stderr}");
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains(" up  "))
            .all(|l| l.contains("/200 up")),
        "{stderr}"
    );
    assert_eq!(stderr.matches("result:").count(), 1, "{stderr}");
    assert!(
        stderr.contains("workers:     2 processes: worker 0 100/100 open"),
        "{stderr}"
    );
}

/// Two swarms run side by side (as on two machines), their JSON files
/// merged: counts summed, and percentiles those of the two histograms
/// merged here from the files.
#[test]
fn two_runs_merged_are_their_counts_summed_and_their_histograms_merged() {
    let server = server();
    let (a, b) = (temp("merge-a.json"), temp("merge-b.json"));
    let runs: Vec<_> = [(&a, 120, "2s"), (&b, 80, "1500ms")]
        .into_iter()
        .map(|(path, clients, duration)| {
            let mut args = swarm_args(&server, clients, duration);
            args.extend(["--json".to_string(), path.display().to_string()]);
            std::thread::spawn(move || lubdub(&args))
        })
        .collect();
    for run in runs {
        let out = run.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let read = |p: &PathBuf| parse(&std::fs::read_to_string(p).unwrap());
    let (ra, rb) = (read(&a), read(&b));

    let out = lubdub(
        &["swarm", "merge"]
            .map(String::from)
            .into_iter()
            .chain([
                a.display().to_string(),
                b.display().to_string(),
                "--json".to_string(),
                "-".to_string(),
            ])
            .collect::<Vec<_>>(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let merged = parse(&stdout);
    for key in [
        "target",
        "connected",
        "peak_connected",
        "heartbeats_sent",
        "replies",
        "missing_replies",
        "late_replies",
        "reconnects",
        "connect_failures",
        "reconnects_by_reason.idle",
        "rtt_us.count",
    ] {
        assert_eq!(
            n(&merged, key),
            n(&ra, key) + n(&rb, key),
            "{key}: {stdout}"
        );
    }
    assert_eq!(n(&merged, "target"), 200);
    let mut expect = histogram(&ra);
    expect.add(histogram(&rb)).unwrap();
    assert_eq!(histogram(&merged), expect);
    assert_eq!(n(&merged, "rtt_us.p50"), expect.value_at_quantile(0.5));
    assert_eq!(n(&merged, "rtt_us.p99"), expect.value_at_quantile(0.99));
    assert_eq!(n(&merged, "rtt_us.max"), expect.max());
    // The runs went side by side: the merged one lasted the longer.
    let secs = |v: &Value| v.get("elapsed_s").and_then(Value::as_f64).unwrap();
    assert_eq!(secs(&merged), secs(&ra).max(secs(&rb)));
    let sources: Vec<&str> = workers(&merged)
        .iter()
        .filter_map(|p| p.get("source").and_then(Value::as_str))
        .collect();
    assert_eq!(sources, [a.display().to_string(), b.display().to_string()]);
    assert!(stderr.contains("merged:      2 reports"), "{stderr}");
    assert!(stderr.contains("result:      ok"), "{stderr}");
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
}

/// Exit code 2 and one line naming the file, never a panic.
#[test]
fn reports_that_cannot_be_merged_are_one_line_and_exit_code_2() {
    let report = |criteria: Criteria| {
        let mut r = Report::empty("interval", 1_000_000, 0, criteria);
        r.target = 10;
        r.connected = 10;
        r.summarize();
        r.to_json()
    };
    let good = report(Criteria::default());
    let other_criteria = report(Criteria {
        max_late: 5,
        ..Criteria::default()
    });
    let no_histogram = {
        let at = good.find("\"rtt_histogram\":").unwrap();
        let end = at + good[at..].find(",\"").unwrap() + 1;
        format!("{}{}", &good[..at], &good[end..])
    };
    let bad_histogram = good.replacen(
        "\"rtt_histogram\":\"HISTEw",
        "\"rtt_histogram\":\"HISTEx",
        1,
    );
    let good_path = temp("bad-merge-good.json");
    std::fs::write(&good_path, &good).unwrap();
    // The reference is sound: it merges.
    let out = lubdub(&[
        "swarm".into(),
        "merge".into(),
        good_path.display().to_string(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (name, text, says) in [
        ("missing.json", None, "cannot be read"),
        (
            "not-json.json",
            Some("{\"target\": 1,".to_string()),
            "not JSON",
        ),
        ("empty.json", Some(String::new()), "not JSON"),
        (
            "no-histogram.json",
            Some(no_histogram),
            "no \"rtt_histogram\" field",
        ),
        (
            "bad-histogram.json",
            Some(bad_histogram),
            "\"rtt_histogram\" is not a histogram",
        ),
        (
            "criteria.json",
            Some(other_criteria),
            "criteria differ (max_late 0 against 5)",
        ),
    ] {
        let path = temp(&format!("bad-merge-{name}"));
        if let Some(text) = &text {
            std::fs::write(&path, text).unwrap();
        }
        let out = lubdub(&[
            "swarm".into(),
            "merge".into(),
            good_path.display().to_string(),
            path.display().to_string(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}");
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_file(&good_path);
}

/// Refused before anything starts: exit 2, one line, no connection made.
#[test]
fn a_plan_the_machine_cannot_hold_is_refused_up_front() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hard = lubdub::limits::file_limit().unwrap().hard;
    let refused = |args: &[&str], says: &str| {
        let started = Instant::now();
        let mut all = vec!["swarm", "--duration", "2s"];
        all.extend_from_slice(args);
        let out = lubdub(&all.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: --workers: "), "{stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(10), "not up front");
    };
    // Files: one worker cannot hold more clients than its limit.
    let over = (hard + 1).to_string();
    refused(
        &["--connect", &addr, "--clients", &over, "--workers", "1"],
        "open files, but a process may hold",
    );
    // Ports: a server not on loopback, more clients than one address's
    // ports (no source addresses can be picked for it).
    if let Some(range) = port_range() {
        let clients = (range + 1).to_string();
        refused(
            &[
                "--connect",
                "10.255.255.1:9",
                "--clients",
                &clients,
                "--workers",
                "auto",
            ],
            "give --source-addrs",
        );
    }
    // Memory: more clients than MemAvailable holds at ~11 KiB each (both
    // ends on this machine), when that is within the flag's range.
    if let Some(clients) = mem_available_kib().map(|kib| kib / 10 + 1) {
        if clients <= 10_000_000 {
            refused(
                &[
                    "--connect",
                    &addr,
                    "--clients",
                    &clients.to_string(),
                    "--workers",
                    "auto",
                ],
                "MemAvailable",
            );
        }
    }
    // Nothing was started: no connection came.
    assert!(listener.accept().is_err());
}

fn port_range() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>().ok());
    Some(it.next()??.abs_diff(it.next()??) + 1)
}

fn mem_available_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A worker killed with SIGKILL mid-run: the parent neither panics nor
/// hangs, reports the other's figures, and fails the run as its own doing.
#[test]
fn a_worker_killed_mid_run_is_a_failure_of_the_swarm_s_own() {
    let server = server();
    let mut args = swarm_args(&server, 200, "4s");
    args.extend(["--workers", "2", "--status-every", "500ms", "--json", "-"].map(String::from));
    // The parent's own start lines (the pids) are at info.
    let level = args.iter().position(|a| a == "warn").unwrap();
    args[level] = "info".to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut parent = Child::spawn(&args);
    let line = parent.expect_line("swarm: worker 1 (pid ", Duration::from_secs(10));
    let pid: u32 = line
        .split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line}"));
    // Mid-run: once its clients are up.
    parent.expect_line("200/200 up", Duration::from_secs(10));
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = parent.wait_exit(Duration::from_secs(30));
    let stdout = parent.stdout_text();
    while parent
        .wait_for("\u{0}never", Duration::from_millis(300))
        .is_some()
    {}
    let log = parent.log();
    assert_eq!(status.code(), Some(4), "{stdout}\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    let report = parse(&stdout);
    assert_eq!(report.get("swarm_own_failure"), Some(&Value::Bool(true)));
    let parts = workers(&report);
    let failed = parts[1]
        .get("failed")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert_eq!(failed, "killed by signal 9 before its report", "{stdout}");
    // The survivor's figures are the report's.
    assert_eq!(parts[0].get("failed"), Some(&Value::Null));
    assert_eq!(n(&report, "target"), 100);
    assert_eq!(n(&report, "connected"), 100, "{stdout}");
    assert_eq!(n(&report, "replies"), n(&parts[0], "replies"));
    assert_eq!(n(&report, "missing_replies"), 0, "{stdout}");
    // Said in one line, the last.
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "lubdub: swarm: worker 1 (100 of the 200 clients) failed: killed by signal 9"
        ),
        "{log}"
    );
}

/// A SIGUSR1 to the parent marks every worker: the round trips from then
/// on are reported apart, merged exactly, and are a part of the run's; a
/// report never marked has none, and merging it keeps the marked one's.
#[test]
fn a_mark_sent_to_the_parent_reports_the_round_trips_since_apart() {
    let server = server();
    let json = temp("marked.json");
    let mut args = swarm_args(&server, 100, "3s");
    // The mark is logged at info.
    for a in args.iter_mut().filter(|a| *a == "warn") {
        *a = "info".to_string();
    }
    args.extend(["--workers", "2", "--json"].map(String::from));
    args.push(json.to_string_lossy().into_owned());
    let child = Command::new(env!("CARGO_BIN_EXE_lubdub"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run lubdub");
    // Marked once both workers run and have answered heartbeats.
    std::thread::sleep(Duration::from_millis(1500));
    let marked = Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(marked.success());
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        stderr.matches("marked: round trips").count(),
        2,
        "both workers marked: {stderr}"
    );
    // The summary, with --json PATH, is on stdout.
    assert!(stdout.contains("since mark:  p50 "), "{stdout}");
    assert!(!stderr.contains("since mark:"), "{stderr}");
    let text = std::fs::read_to_string(&json).expect("report");
    let report = parse(&text);
    let since = n(&report, "rtt_since_mark_us.count");
    let all = n(&report, "rtt_us.count");
    // 100 clients at 4 a second for the last 1.5 s or so.
    assert!(since >= 100 * 4 && since < all, "{since} of {all}");
    let hist = hdr::decode(
        report
            .get("rtt_since_mark_histogram")
            .and_then(Value::as_str)
            .expect("rtt_since_mark_histogram"),
    )
    .expect("a histogram");
    assert_eq!(hist.len(), since);
    assert_eq!(n(&report, "rtt_since_mark_us.p99"), Rtt::of(&hist).p99);

    // Never marked: no such field; merged with the marked one, the
    // marked one's round trips since are all the merge has.
    let plain = temp("unmarked.json");
    let mut args = swarm_args(&server, 50, "1s");
    args.extend(["--json".to_string(), plain.to_string_lossy().into_owned()]);
    let out = lubdub(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let unmarked = std::fs::read_to_string(&plain).expect("report");
    assert!(!unmarked.contains("rtt_since_mark"), "{unmarked}");
    let merged = temp("merged-marks.json");
    let out = lubdub(
        &[
            "swarm".to_string(),
            "merge".to_string(),
            json.to_string_lossy().into_owned(),
            plain.to_string_lossy().into_owned(),
            "--json".to_string(),
            merged.to_string_lossy().into_owned(),
        ][..],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let merged = parse(&std::fs::read_to_string(&merged).expect("merged"));
    assert_eq!(n(&merged, "rtt_since_mark_us.count"), since);
    assert_eq!(
        n(&merged, "rtt_us.count"),
        all + n(&parse(&unmarked), "rtt_us.count")
    );
    for f in [json, plain] {
        let _ = std::fs::remove_file(f);
    }
}

/// A mark sent as soon as the parent has started its workers, before
/// they watch for it themselves: the parent passes it on at once, and a
/// worker must neither die of it nor lose it.
#[test]
fn a_mark_sent_while_the_workers_start_kills_none_of_them() {
    use std::io::{BufRead, BufReader};
    let server = server();
    let mut args = swarm_args(&server, 100, "2s");
    // The parent logs each worker it starts at info.
    for a in args.iter_mut().filter(|a| *a == "warn") {
        *a = "info".to_string();
    }
    args.extend(["--workers", "2"].map(String::from));
    let mut child = Command::new(env!("CARGO_BIN_EXE_lubdub"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run lubdub");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "{log}");
        log.push_str(&line);
        if line.contains("worker 0 (pid") {
            break;
        }
    }
    // SAFETY: kill(2) on the process this test started.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGUSR1) },
        0
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    log.push_str(&rest);
    let status = child.wait().expect("wait");
    assert!(!log.contains("killed by signal"), "{log}");
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(
        log.matches("marked: round trips").count(),
        2,
        "both workers marked: {log}"
    );
}
