//! The swarm tells the truth: a frozen server, a slow start, a second run
//! straight after the first — in each, the report shows what happened and
//! the verdict is not "ok" over it.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::peers::{free_port, Child};

const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

fn swarm(args: &[&str]) -> Child {
    let mut all = vec!["swarm"];
    all.extend_from_slice(args);
    Child::spawn(&all)
}

/// Waits for the swarm to exit and returns its status code and JSON.
fn finish(mut swarm: Child) -> (Option<i32>, String, String) {
    let status = swarm.wait_exit(Duration::from_secs(30));
    let json = swarm.stdout_text();
    let _ = swarm.wait_for_line("never printed", Duration::from_millis(300));
    (status.code(), json, swarm.log())
}

/// The number after `"key":` (the first one, for keys used twice).
use common::json_number as field;

/// The `max` of `"rtt_us":{...}`.
fn rtt_max(json: &str) -> u64 {
    let rtt = json.split("\"rtt_us\":").nth(1).unwrap();
    field(rtt, "max")
}

#[test]
fn a_server_frozen_under_flood_fails_the_run_and_the_report_shows_the_stall() {
    // Closed loop: while the server is frozen no new request goes out, so
    // the percentiles barely move; the longest round trip is the stall.
    let (server, addr) = Child::server(&[]);
    let addr = addr.to_string();
    let load = swarm(&[
        "--connect",
        &addr,
        "--clients",
        "20",
        "--flood",
        "1",
        "--duration",
        "3s",
        "--json",
        "-",
    ]);
    std::thread::sleep(Duration::from_millis(800));
    server.signal(SIGSTOP);
    std::thread::sleep(Duration::from_millis(1300));
    server.signal(SIGCONT);
    let (code, json, log) = finish(load);
    assert_eq!(code, Some(3), "{json}\n{log}");
    assert!(json.contains("\"closed_loop\":true"), "{json}");
    assert!(rtt_max(&json) >= 1_200_000, "{json}");
    assert!(json.contains("stall longer than --max-stall"), "{json}");
    assert!(
        log.contains("closed loop: this measures throughput"),
        "{log}"
    );
}

#[test]
fn a_server_frozen_under_heartbeats_fails_the_run_and_its_status_lines_show_when() {
    let (server, addr) = Child::server(&[]);
    let addr = addr.to_string();
    let load = swarm(&[
        "--connect",
        &addr,
        "--clients",
        "50",
        "--interval",
        "100ms",
        "--misses",
        "30",
        "--duration",
        "4s",
        "--status-every",
        "1s",
        "--json",
        "-",
    ]);
    // Frozen for 1.3 s inside the second status window and the next.
    std::thread::sleep(Duration::from_millis(1200));
    server.signal(SIGSTOP);
    std::thread::sleep(Duration::from_millis(1300));
    server.signal(SIGCONT);
    let (code, json, log) = finish(load);
    assert_eq!(code, Some(3), "{json}\n{log}");
    assert!(field(&json, "late_replies") > 0, "{json}");
    assert!(rtt_max(&json) >= 1_200_000, "{json}");
    assert!(json.contains("\"closed_loop\":false"), "{json}");
    // One line a second, each for its own second: the ones during the
    // freeze say so, the last one (after it) is healthy again.
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("/50 up ")).collect();
    assert!(lines.len() >= 3, "{log}");
    let p99 = |line: &str| -> u64 {
        line.split("p99 ")
            .nth(1)
            .and_then(|r| r.trim_end_matches("us").trim().parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    };
    let late = |line: &str| -> u64 {
        line.split(" late")
            .next()
            .and_then(|r| r.rsplit(' ').next()?.parse().ok())
            .unwrap()
    };
    assert!(
        lines.iter().any(|l| late(l) > 0 || p99(l) >= 500_000),
        "no status line showed the freeze:\n{log}"
    );
    let last = lines.last().unwrap();
    assert!(
        p99(last) < 500_000 && late(last) == 0,
        "the last window was healthy, but its line says otherwise (a p99 since start?):\n{log}"
    );
}

#[test]
fn connect_failures_fail_the_run_unless_allowed() {
    // Nothing listens for the first half second; then a server comes up and
    // every client gets in. Everything ends well — but not everything went
    // well, and by default the verdict says so.
    let addr = common::peers::restartable_port();
    let text = addr.to_string();
    let args = [
        "--connect",
        &text,
        "--clients",
        "5",
        "--interval",
        "100ms",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "100ms",
        "--duration",
        "2s",
        "--json",
        "-",
    ];
    for (extra, expected) in [(&[][..], 3), (&["--max-connect-failures", "1000"][..], 0)] {
        let mut all = args.to_vec();
        all.extend_from_slice(extra);
        let load = swarm(&all);
        std::thread::sleep(Duration::from_millis(500));
        let mut command = Command::new(env!("CARGO_BIN_EXE_lubdub"));
        command.args(["server", "--listen", &text]);
        let (_server, _) = Child::listening(command);
        let (code, json, log) = finish(load);
        assert!(field(&json, "connect_failures") > 0, "{json}");
        assert_eq!(field(&json, "connected"), 5, "{json}");
        assert_eq!(code, Some(expected), "{extra:?}: {json}\n{log}");
        if expected == 3 {
            assert!(
                json.contains("connects failed (at most 0 allowed by --max-connect-failures)"),
                "{json}"
            );
            // Reasons are counted, and the first of each kind is logged.
            assert!(field(&json, "refused") > 0, "{json}");
            assert_eq!(log.matches("the first of its kind").count(), 1, "{log}");
        }
    }
}

#[test]
fn the_end_of_sending_is_logged_and_a_bad_report_path_is_refused_before_the_run() {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_lubdub"))
        .args([
            "swarm",
            "--connect",
            &free_port().to_string(),
            "--clients",
            "1",
            "--duration",
            "1h",
            "--json",
            "/nonexistent-dir/report.json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--json"), "{stderr}");

    let (_server, addr) = Child::server(&[]);
    let started = Instant::now();
    let (code, _, log) = finish(swarm(&[
        "--connect",
        &addr.to_string(),
        "--clients",
        "3",
        "--interval",
        "100ms",
        "--duration",
        "500ms",
    ]));
    assert_eq!(code, Some(0), "{log}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(log.contains("[INFO] swarm: stopped sending"), "{log}");
}

#[test]
fn back_to_back_runs_from_a_narrow_port_range_all_connect() {
    use common::netns::{have_tool, NetPair, Side};
    let test = "back_to_back_runs_from_a_narrow_port_range_all_connect";
    if !have_tool(test, "sysctl", "--version", "procps") || !have_tool(test, "ss", "-V", "iproute2")
    {
        return;
    }
    let Some(pair) = NetPair::create(test) else {
        return;
    };
    // 200 ephemeral ports on the swarm's side, 150 clients a run.
    let sysctl = pair
        .command(Side::A, "sysctl")
        .args(["-q", "-w", "net.ipv4.ip_local_port_range=50000 50199"])
        .status()
        .unwrap();
    assert!(sysctl.success());
    let (_server, addr) = pair.lubdub_server(Side::B, &[]);
    let addr = addr.to_string();
    let run = |clients: &str, source: Option<String>| {
        let mut args = vec![
            "swarm".to_string(),
            "--connect".into(),
            addr.clone(),
            "--clients".into(),
            clients.into(),
            "--interval".into(),
            "200ms".into(),
            "--duration".into(),
            "700ms".into(),
            "--json".into(),
            "-".into(),
        ];
        if let Some(ip) = source {
            args.extend(["--source-addrs".into(), ip]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        finish(pair.lubdub(Side::A, &args))
    };
    let source = Some(pair.ip(Side::A).to_string());
    for (i, from) in [None, None, source.clone(), source].into_iter().enumerate() {
        let (code, json, log) = run("150", from);
        assert_eq!(code, Some(0), "run {i}: {json}\n{log}");
        assert_eq!(field(&json, "connected"), 150, "run {i}: {json}");
        // The run closed abortively: nothing of it waits in TIME_WAIT.
        let ss = pair
            .command(Side::A, "ss")
            .args(["-Htan", "state", "time-wait"])
            .output()
            .unwrap();
        let waiting = String::from_utf8_lossy(&ss.stdout).lines().count();
        assert_eq!(waiting, 0, "run {i} left {waiting} ports in TIME_WAIT");
    }
    // More clients than the range holds: refused before anything opens, in
    // one line that says why.
    let (code, _, log) = run("250", None);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("only 200 of the 200"), "{log}");
}

#[test]
fn lenient_keeps_the_reply_that_shares_a_read_with_a_welcome_text() {
    // The original Qt server: 36 bytes of unframed text on accept, then a
    // reply to every heartbeat. The first reply usually arrives in the same
    // read as the text.
    let server = common::peers::Answerer::with_welcome(free_port());
    for run in 0..3 {
        let (code, json, log) = finish(swarm(&[
            "--connect",
            &server.addr.to_string(),
            "--clients",
            "20",
            "--interval",
            "100ms",
            "--duration",
            "1s",
            "--lenient",
            "--json",
            "-",
        ]));
        assert_eq!(code, Some(0), "run {run}: {json}\n{log}");
        assert_eq!(field(&json, "missing_replies"), 0, "run {run}: {json}");
        assert_eq!(field(&json, "late_replies"), 0, "run {run}: {json}");
        // Exactly the welcome texts were dropped, nothing more.
        assert_eq!(field(&json, "dropped_bytes"), 20 * 36, "run {run}: {json}");
    }
}

#[test]
fn a_swarm_finds_the_address_of_a_name_that_listens_without_failing_a_connect() {
    let (_server, addr) = Child::server(&[]);
    let target = format!("dual.lubdub.test:{}", addr.port());
    let hosts = "::1 dual.lubdub.test\n127.0.0.1 dual.lubdub.test\n";
    let Some(load) = common::with_hosts(
        "a_swarm_finds_the_address_of_a_name_that_listens_without_failing_a_connect",
        hosts,
        &[
            "swarm",
            "--connect",
            &target,
            "--clients",
            "20",
            "--interval",
            "100ms",
            "--duration",
            "1s",
            "--json",
            "-",
        ],
    ) else {
        return;
    };
    let (code, json, log) = finish(load);
    assert_eq!(code, Some(0), "{json}\n{log}");
    assert_eq!(field(&json, "connected"), 20, "{json}");
    assert_eq!(field(&json, "connect_failures"), 0, "{json}");
}
