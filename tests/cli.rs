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
    let (mut server, addr) = Child::server(&["--interval", "100ms", "--misses", "3"]);
    let started = Instant::now();
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 8];
    // A read with a timeout fails with EINTR when the process is stopped
    // and continued, even with no signal handler (signal(7)): that is not
    // the server closing the connection.
    let read = loop {
        match conn.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    assert_eq!(
        read.unwrap_or(0),
        0,
        "expected the server to close the connection"
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
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            first.contains(flag),
            "{args:?}: first line does not name {flag}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
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
