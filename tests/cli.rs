//! The `lubdub` binary as a user runs it: flags, exit codes, log lines.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::peers::Child;

const BIN: &str = env!("CARGO_BIN_EXE_lubdub");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().expect("run lubdub");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sigterm_and_sigint_exit_zero_after_closing_connections() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let (mut server, addr) = Child::server(&[]);
        // Signals are handled without a helper thread: a second thread would
        // make every read and write pay glibc's multi-threaded tax.
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
        assert!(status.lines().any(|l| l == "Threads:\t1"), "{status}");
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).unwrap();
        let mut reply = [0u8; 8];
        conn.read_exact(&mut reply).unwrap();
        assert_eq!(reply, [1, 0, 0, 0, 8, 0, 0, 0]);
        server.signal(signal);
        let line = server.expect_line("stopped", Duration::from_secs(10));
        assert!(line.contains("1 connections"), "{line}");
        let line = server.expect_line("exiting on signal", Duration::from_secs(10));
        assert!(line.ends_with(&signal.to_string()), "{line}");
        let status = server.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "signal {signal}");
        // The connection was closed by the server, not left dangling.
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(conn.read(&mut reply).unwrap_or(0), 0);
    }
}

#[test]
fn a_silent_connection_is_evicted_after_about_interval_times_misses_and_logged() {
    // 100 ms on a 7 ms tick: off the tick grid, as every eviction test.
    let (mut server, addr) =
        Child::server(&["--interval", "100ms", "--misses", "3", "--tick", "7ms"]);
    let started = Instant::now();
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 8];
    // A read with a timeout fails with EINTR when this process is stopped
    // and continued, even with no signal handler (signal(7)): that is not
    // the server closing the connection.
    let read = loop {
        match conn.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    assert!(
        matches!(read, Ok(0)),
        "expected the server to close the connection: {read:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "evicted after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "evicted only after {elapsed:?}"
    );
    let line = server.expect_line("evicted", Duration::from_secs(5));
    let local = conn.local_addr().unwrap();
    assert!(line.contains(&format!("peer={local}")), "{line}");
    assert!(line.contains("misses=3"), "{line}");
    assert!(line.contains("idle="), "{line}");
}

/// Runs `lubdub ARGS` that must be refused: exit 2, one line, naming `flag`,
/// no panic.
fn refused(args: &[&str], flag: &str) {
    let (code, stderr) = run(args);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr}");
    assert!(
        lines[0].contains(flag),
        "{args:?}: the line does not name {flag}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_flags_are_one_line_errors_with_exit_code_2() {
    for (args, flag) in [
        (&["server", "--interval", "5"][..], "--interval"),
        (&["server", "--interval", "0s"][..], "--interval"),
        (&["server", "--misses", "0"][..], "--misses"),
        (&["server", "--listen", "nowhere"][..], "--listen"),
        (&["server", "--tick", "10s"][..], "--tick"),
        (&["server", "--max-frame", "4"][..], "--max-frame"),
        (&["server", "--bogus"][..], "--bogus"),
        (&["swarm", "--connect", "127.0.0.1:9"][..], "--clients"),
        (&["server", "--greeting", "\\q"][..], "--greeting"),
        (&["server", "--greeting", "\\x4"][..], "--greeting"),
        (&["server", "--greeting", ""][..], "--greeting"),
    ] {
        refused(args, flag);
    }
}

#[test]
fn every_numeric_flag_of_every_subcommand_is_range_checked_naming_the_flag() {
    // One value below and one above each range (where it has one), and a
    // value too large for its type.
    let keepalive = [
        ("--keepalive-idle", "500ms"),
        ("--keepalive-idle", "1500ms"),
        ("--keepalive-idle", "10h"),
        ("--keepalive-interval", "0s"),
        ("--keepalive-interval", "10h"),
        ("--keepalive-count", "0"),
        ("--keepalive-count", "128"),
        ("--user-timeout", "600h"),
        ("--user-timeout", "1500us"),
    ];
    let heartbeat = [
        ("--interval", "500us"),
        ("--interval", "25h"),
        ("--misses", "0"),
        ("--misses", "10001"),
        ("--misses", "4294967295"),
        ("--misses", "99999999999"),
    ];
    let server = [
        ("--tick", "50us"),
        ("--max-connections", "0"),
        ("--max-connections", "100000001"),
        ("--max-frame", "7"),
        ("--max-frame", "2147483648"),
        ("--max-backlog", "7"),
        ("--max-backlog", "1073741825"),
        ("--max-buffered", "1000"),
        ("--stats-every", "0"),
        ("--stats-every", "25h"),
        ("--proxy-header-timeout", "0"),
        ("--proxy-header-timeout", "61s"),
    ];
    let waits = [
        ("--backoff-min", "0"),
        ("--backoff-min", "9ms"),
        ("--backoff-max", "25h"),
        ("--connect-timeout", "0"),
        ("--connect-timeout", "25h"),
    ];
    let swarm = [
        ("--clients", "0"),
        ("--clients", "10000001"),
        ("--connect-rate", "1000001"),
        ("--duration", "0"),
        ("--flood", "0"),
        ("--flood", "4097"),
        ("--grace", "25h"),
        ("--workers", "0"),
        ("--workers", "1025"),
        ("--workers", "some"),
    ];
    for (flag, value) in keepalive.iter().chain(&heartbeat).chain(&server) {
        refused(&["server", "--listen", "127.0.0.1:0", flag, value], flag);
    }
    let client = [("--max-backlog", "7"), ("--max-backlog", "1073741825")];
    for (flag, value) in keepalive
        .iter()
        .chain(&heartbeat)
        .chain(&waits)
        .chain(&client)
    {
        refused(&["client", flag, value], flag);
    }
    let connect = ["swarm", "--connect", "127.0.0.1:9", "--clients", "1"];
    for (flag, value) in keepalive
        .iter()
        .chain(&heartbeat)
        .chain(&waits)
        .chain(&swarm)
    {
        let mut args = connect.to_vec();
        args.extend([*flag, *value]);
        refused(&args, flag);
    }
    // Ranges that depend on another flag name the one given.
    refused(
        &["client", "--backoff-min", "5s", "--backoff-max", "1s"],
        "--backoff-max",
    );
    refused(
        &["server", "--interval", "100ms", "--tick", "200ms"],
        "--tick",
    );
    refused(
        &[
            "server",
            "--max-frame",
            "1000000",
            "--max-buffered",
            "500000",
        ],
        "--max-buffered",
    );
    let mut args = connect.to_vec();
    args.extend(["--source-addrs", "127.0.0.2,::1"]);
    refused(&args, "--source-addrs");
}

#[test]
fn the_largest_accepted_values_run_without_panicking() {
    // The far end of every range the server takes, at once.
    let (mut server, addr) = Child::server(&[
        "--interval",
        "24h",
        "--misses",
        "10000",
        "--tick",
        "24h",
        "--max-connections",
        "100000000",
        "--max-frame",
        "2147483647",
        "--max-backlog",
        "1073741824",
        "--max-buffered",
        "1099511627776",
        "--keepalive-idle",
        "32767s",
        "--keepalive-interval",
        "32767s",
        "--keepalive-count",
        "127",
        "--user-timeout",
        "2147483647ms",
        "--stats-every",
        "24h",
        "--proxy-header-timeout",
        "60s",
    ]);
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).unwrap();
    let mut reply = [0u8; 8];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [1, 0, 0, 0, 8, 0, 0, 0]);
    assert_eq!(server.terminate(), Some(0), "{}", server.log());
    // And the client at its far ends (it panicked on a 2,000,000 h
    // interval times 4,294,967,295 misses before these were ranges).
    let mut client = Child::spawn(&[
        "client",
        "--connect",
        &addr.to_string(),
        "--interval",
        "24h",
        "--misses",
        "10000",
        "--backoff-min",
        "10ms",
        "--backoff-max",
        "24h",
        "--connect-timeout",
        "24h",
    ]);
    client.expect_line("client: heartbeat to", Duration::from_secs(5));
    assert_eq!(client.terminate(), Some(0), "{}", client.log());
}

#[test]
fn a_port_in_use_is_a_one_line_error_with_exit_code_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(&["server", "--listen", &addr]);
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.contains("cannot listen on") && last.contains(&addr),
        "{stderr}"
    );
}

#[test]
fn stats_are_logged_on_request() {
    let (mut server, addr) = Child::server(&["--stats-every", "100ms"]);
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).unwrap();
    let mut reply = [0u8; 8];
    conn.read_exact(&mut reply).unwrap();
    let line = server.expect_line("heartbeats=1 ", Duration::from_secs(5));
    assert!(line.contains("active=1"), "{line}");
}

#[test]
fn reuse_port_lets_two_servers_share_a_port() {
    let (_first, addr) = Child::server(&["--reuse-port"]);
    let port = addr.to_string();
    // Without the flag the port is taken...
    let (code, stderr) = run(&["server", "--listen", &port]);
    assert_eq!(code, 1, "{stderr}");
    // ...with it, a second process binds the same port and both serve.
    let mut command = Command::new(BIN);
    command.args(["server", "--reuse-port", "--listen", &port]);
    let (_second, second_addr) = Child::listening(command);
    assert_eq!(second_addr, addr);
    for _ in 0..20 {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).unwrap();
        let mut reply = [0u8; 8];
        conn.read_exact(&mut reply).unwrap();
        assert_eq!(reply, [1, 0, 0, 0, 8, 0, 0, 0]);
    }
}

#[test]
fn the_greeting_goes_first_and_probes_ask_a_silent_peer() {
    let (mut server, addr) = Child::server(&[
        "--greeting",
        "Welcome!\\r\\n\\x00",
        "--probe",
        "--interval",
        "200ms",
        "--misses",
        "5",
    ]);
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut greeting = [0u8; 11];
    conn.read_exact(&mut greeting).unwrap();
    assert_eq!(
        &greeting, b"Welcome!\r\n\0",
        "escapes give the bytes asked for"
    );
    // Silent after the accept: a heartbeat request comes after an
    // interval, and an answer keeps the connection for longer than
    // interval × misses.
    let started = Instant::now();
    let mut frame = [0u8; 8];
    while started.elapsed() < Duration::from_millis(1500) {
        conn.read_exact(&mut frame).unwrap();
        assert_eq!(
            frame,
            [0, 0, 0, 0, 8, 0, 0, 0],
            "a probe is a heartbeat request"
        );
        conn.write_all(&[1, 0, 0, 0, 8, 0, 0, 0]).unwrap();
    }
    server.signal(libc::SIGTERM);
    let line = server.expect_line("stopped", Duration::from_secs(10));
    assert!(line.contains("evicted=0"), "{line}");
    let probes: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("probes="))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((5..=10).contains(&probes), "{line}");
}

/// `lubdub ARGS`: exit code, stdout and stderr.
fn run_all(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run lubdub");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bare_lubdub_prints_the_usage_and_exits_2() {
    let (code, stdout, stderr) = run_all(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("Usage: lubdub <COMMAND>"), "{stderr}");
    for sub in ["server", "client", "swarm", "manpage", "completions"] {
        assert!(stderr.contains(sub), "{sub} missing: {stderr}");
    }
}

#[test]
fn flags_other_tools_use_get_a_hint_to_lubdub_s_own() {
    for (args, hint) in [
        (&["server", "--port", "1"][..], "--listen HOST:PORT"),
        (&["server", "--bind=0.0.0.0:1"][..], "--listen"),
        // With clap's suggestion of a flag spelled alike, and the hint.
        (&["server", "--timeout", "5s"][..], "--interval × --misses"),
        (&["client", "--host", "x"][..], "--connect HOST:PORT"),
        (&["swarm", "--concurrency", "5"][..], "--clients N (-c N)"),
        (&["swarm", "--connections", "5"][..], "--clients"),
        (&["swarm", "--verbose"][..], "--log-level"),
        // clap's own suggestion for a flag spelled alike stays.
        (&["server", "--lsiten", "x"][..], "'--listen'"),
    ] {
        refused(args, hint);
        let (_, _, stderr) = run_all(args);
        assert!(
            stderr.contains(args[1].split('=').next().unwrap()),
            "{stderr}"
        );
    }
}

#[test]
fn out_of_range_counts_name_their_range_even_past_the_type() {
    for (args, range) in [
        (
            &["server", "--misses", "99999999999"][..],
            "between 1 and 10000",
        ),
        (&["client", "--misses", "0"][..], "between 1 and 10000"),
        (
            &["server", "--max-connections", "99999999999999999999"][..],
            "between 1 and 100000000",
        ),
        (
            &["server", "--max-frame", "99999999999"][..],
            "between 8 and 2147483647",
        ),
        (
            &["server", "--keepalive-count", "99999999999"][..],
            "between 1 and 127",
        ),
        (
            &["swarm", "-c", "99999999999999999999"][..],
            "between 1 and 10000000",
        ),
        (
            &["swarm", "-c", "1", "-r", "5000000"][..],
            "between 0 and 1000000",
        ),
        (
            &["swarm", "-c", "1", "--flood", "99999"][..],
            "between 1 and 4096",
        ),
        (&["swarm", "-c", "1", "--max-late=-1"][..], "from 0 to"),
        (
            &["swarm", "-c", "1", "--workers", "99999999999999999999"][..],
            "from 1 to 1024",
        ),
        (
            &["server", "--log-level", "loud"][..],
            "off, error, warn, info, debug, trace",
        ),
    ] {
        refused(args, range);
    }
}

/// Every placeholder in every subcommand's `--help` is one of a few
/// names, and every `--help` ends with the one table of exit codes.
#[test]
fn every_help_shows_the_exit_codes_and_the_same_placeholders() {
    let allowed = [
        "ADDR", "DUR", "N", "N|auto", "BYTES", "FILE", "LEVEL", "TEXT", "DEPTH", "PERCENT", "HEX",
        "A-B", "SHELL", "COMMAND", "FORMAT", "CIDR",
    ];
    for args in [
        &["--help"][..],
        &["server", "--help"][..],
        &["client", "--help"][..],
        &["swarm", "--help"][..],
        &["swarm", "merge", "--help"][..],
        &["manpage", "--help"][..],
        &["completions", "--help"][..],
    ] {
        let (code, help, stderr) = run_all(args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(
            help.contains("Exit codes (every subcommand):"),
            "{args:?}: {help}"
        );
        for line in [
            "0    success",
            "2    a usage error",
            "3    swarm",
            "130  a second SIGINT",
        ] {
            assert!(help.contains(line), "{args:?} lacks {line:?}: {help}");
        }
        for placeholder in help.split('<').skip(1).filter_map(|s| s.split_once('>')) {
            assert!(
                allowed.contains(&placeholder.0) || placeholder.0.contains(' '),
                "{args:?}: placeholder <{}>: {help}",
                placeholder.0
            );
        }
    }
    // The hidden flags of a worker stay hidden.
    let (_, help, _) = run_all(&["server", "--help"]);
    for hidden in ["--worker ", "--room", "--listen-fd"] {
        assert!(!help.contains(hidden), "{hidden}: {help}");
    }
}

#[test]
fn swarm_connects_to_the_default_port_and_takes_wrk_s_short_flags() {
    let (_, help, _) = run_all(&["swarm", "--help"]);
    assert!(help.contains("[default: 127.0.0.1:8898]"), "{help}");
    for short in ["-c, --clients", "-d, --duration", "-r, --connect-rate"] {
        assert!(help.contains(short), "{short}: {help}");
    }
    let (mut server, addr) = Child::server(&[]);
    let addr = addr.to_string();
    let (code, stdout, stderr) = run_all(&[
        "swarm",
        "--connect",
        &addr,
        "-c",
        "3",
        "-d",
        "300ms",
        "-r",
        "100",
        "--grace",
        "0s",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("connections: 3/3 open"), "{stdout}");
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(10));
}

/// A second SIGINT or SIGTERM exits at once with 130, whatever the
/// subcommand. The process is stopped while both are sent, so that both
/// are pending when it runs again: the second cannot come after the
/// first has already finished the stop.
#[test]
fn a_second_signal_exits_130_for_every_subcommand() {
    let (mut server, addr) = Child::server(&[]);
    let addr = addr.to_string();
    let cases: [&[&str]; 4] = [
        &["server", "--listen", "127.0.0.1:0"],
        &["server", "--listen", "127.0.0.1:0", "--workers", "2"],
        &["client", "--connect", &addr],
        &["swarm", "--connect", &addr, "-c", "2"],
    ];
    for args in cases {
        let mut child = Child::spawn(args);
        let ready = match args[0] {
            "server" => "listening on",
            "client" => "connected",
            _ => "swarm:",
        };
        child.expect_line(ready, Duration::from_secs(10));
        child.signal(libc::SIGSTOP);
        child.signal(libc::SIGTERM);
        child.signal(libc::SIGINT);
        child.signal(libc::SIGCONT);
        let status = child.wait_exit(Duration::from_secs(10));
        let said = child.wait_for_line("second signal: exiting now", Duration::from_secs(5));
        let log = child.log();
        assert_eq!(status.code(), Some(130), "{args:?}: {status:?} {log}");
        assert!(said.is_some(), "{args:?}: {log}");
    }
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(10));
}
