//! The `lubdub` binary's manners as a Unix tool: results on stdout, progress
//! and logs on stderr, and a reader that closes the pipe early ends the
//! program quietly with the exit code it would have had anyway.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::peers::{Child, Lubdub};

const BIN: &str = env!("CARGO_BIN_EXE_lubdub");

/// The write end of a pipe whose read end is already closed: the first
/// write to it fails with EPIPE, as `| head -1` does once head has its line.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) fills the two descriptors; the read end is closed
    // at once, the write end owned by the returned Stdio.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        libc::close(fds[0]);
        Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

/// `lubdub ARGS` with stdout a closed pipe.
fn into_closed_pipe(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("run lubdub")
}

fn quiet_exit(args: &[&str], out: &Output, code: i32) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("lubdub-unix-{}-{name}", std::process::id()))
}

/// A short swarm run's flags against `server`.
fn short_run(server: &Lubdub) -> Vec<String> {
    [
        "swarm",
        "--connect",
        &server.addr.to_string(),
        "--clients",
        "5",
        "--interval",
        "100ms",
        "--duration",
        "500ms",
        "--grace",
        "200ms",
        "--log-level",
        "warn",
    ]
    .map(String::from)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn swarm_report_and_json_into_a_closed_pipe_end_quietly_with_the_verdicts_code() {
    let server = Lubdub::any_port();
    let run = short_run(&server);
    // The report, then the JSON alone on stdout.
    for extra in [&[][..], &["--json", "-"][..]] {
        let mut args = strs(&run);
        args.extend(extra);
        quiet_exit(&args, &into_closed_pipe(&args), 0);
    }
    // A run that fails keeps its failure's code: a reader gone early is
    // no reason to hide it.
    let nobody = common::peers::free_port().to_string();
    let args = [
        "swarm",
        "--connect",
        &nobody,
        "--clients",
        "2",
        "--duration",
        "300ms",
        "--grace",
        "0s",
        "--log-level",
        "off",
    ];
    quiet_exit(&args, &into_closed_pipe(&args), 3);
}

#[test]
fn swarm_merge_into_a_closed_pipe_ends_quietly() {
    let server = Lubdub::any_port();
    let report = temp("merge-part.json");
    let mut args = short_run(&server);
    args.extend(["--json".into(), report.display().to_string()]);
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let path = report.display().to_string();
    for args in [
        &["swarm", "merge", &path][..],
        &["swarm", "merge", &path, "--json", "-"][..],
    ] {
        quiet_exit(args, &into_closed_pipe(args), 0);
    }
    let _ = std::fs::remove_file(report);
}

/// The server and the client write nothing to stdout; a closed one does
/// not disturb them, and SIGTERM still ends them with 0.
#[test]
fn server_and_client_with_a_closed_stdout_run_and_stop_cleanly() {
    let server = Lubdub::any_port();
    let connect = server.addr.to_string();
    for args in [
        &["server", "--listen", "127.0.0.1:0"][..],
        &["client", "--connect", &connect, "--interval", "50ms"][..],
    ] {
        let mut command = Command::new(BIN);
        command.args(args);
        let mut child = Child::from_command(command);
        // from_command pipes stdout; close our end of it before the
        // child writes anything.
        drop(child.child.stdout.take());
        let ready = if args[0] == "server" {
            "listening on"
        } else {
            "connected"
        };
        child.expect_line(ready, Duration::from_secs(10));
        child.signal(libc::SIGTERM);
        let status = child.wait_exit(Duration::from_secs(10));
        let log = child.log();
        assert!(!log.contains("panicked"), "{args:?}: {log}");
        assert_eq!(status.code(), Some(0), "{args:?}: {log}");
    }
}

/// `> file` and `| grep` catch the swarm's report: it is on stdout, and
/// the status lines and logs are on stderr. With `--json -` stdout holds
/// the JSON object alone, and the report goes to stderr.
#[test]
fn the_swarm_report_is_on_stdout_and_the_status_lines_on_stderr() {
    let server = Lubdub::any_port();
    let mut args = short_run(&server);
    args.extend(["--status-every".into(), "100ms".into()]);
    let out = Command::new(BIN).args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("result:      ok"), "{stdout}");
    assert!(stdout.contains("round trip"), "{stdout}");
    assert!(!stderr.contains("result:"), "{stderr}");
    assert!(
        stderr.contains("/5 up"),
        "no status line on stderr: {stderr}"
    );
    assert!(!stdout.contains("/5 up"), "{stdout}");

    args.extend(["--json".into(), "-".into()]);
    let out = Command::new(BIN).args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with('{') && stdout.trim_end().ends_with('}'));
    assert!(stderr.contains("result:      ok"), "{stderr}");

    // swarm merge the same way.
    let report = temp("placement.json");
    let path = report.display().to_string();
    std::fs::write(&report, stdout.as_bytes()).unwrap();
    let out = Command::new(BIN)
        .args(["swarm", "merge", &path])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("merged:      1 reports"), "{stdout}");
    assert!(stdout.contains("result:      ok"), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");
    let _ = std::fs::remove_file(report);
}
