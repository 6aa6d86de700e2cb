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

#[test]
fn manpage_and_completions_into_a_closed_pipe_end_quietly() {
    for args in [
        &["manpage"][..],
        &["completions", "bash"][..],
        &["completions", "zsh"][..],
        &["completions", "fish"][..],
        &["--help"][..],
        &["swarm", "--help"][..],
    ] {
        quiet_exit(args, &into_closed_pipe(args), 0);
    }
}

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run lubdub");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Whether `tool` runs here; a line saying it does not when it does not.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

#[test]
fn the_man_page_covers_every_subcommand_and_renders() {
    let page = stdout_of(&["manpage"]);
    let head = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap();
    assert!(head.starts_with(".TH lubdub 1"), "{head}");
    for section in [
        "LUBDUB SERVER",
        "LUBDUB CLIENT",
        "LUBDUB SWARM",
        "LUBDUB SWARM MERGE",
        "LUBDUB MANPAGE",
        "LUBDUB COMPLETIONS",
        "EXIT STATUS",
    ] {
        assert!(page.contains(&format!(".SH \"{section}\"")), "{section}");
    }
    for flag in ["interval", "listen", "clients", "max\\-p99", "drain"] {
        assert!(page.contains(&format!("\\-\\-{flag}")), "--{flag} missing");
    }
    // A worker's flags are the supervisor's business, not the reader's.
    for hidden in ["\\-\\-room", "\\-\\-listen\\-fd", "\\fB\\-\\-worker\\fR"] {
        assert!(!page.contains(hidden), "{hidden} is in the page");
    }
    if !have("man") {
        return;
    }
    let mut man = Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    man.stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = man.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("LUBDUB SWARM MERGE"), "{text}");
    assert!(text.contains("130  a second SIGINT or SIGTERM"), "{text}");
}

#[test]
fn bash_completes_subcommands_and_flags_without_the_hidden_ones() {
    let script = stdout_of(&["completions", "bash"]);
    let path = temp("lubdub.bash");
    std::fs::write(&path, &script).unwrap();
    // COMP_WORDS as bash fills them; _lubdub CMD CUR PREV as `complete
    // -F` calls it.
    let complete = |words: &str, cur: &str, prev: &str| -> String {
        let out = Command::new("bash")
            .args([
                "--norc",
                "-c",
                &format!(
                    "source {} || exit 3; complete -p lubdub >/dev/null || exit 4; \
                     COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                     _lubdub lubdub {cur} {prev}; echo \"${{COMPREPLY[@]}}\"",
                    path.display()
                ),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("lubdub ser", "ser", "lubdub"), "server");
    assert_eq!(complete("lubdub swarm me", "me", "swarm"), "merge");
    assert_eq!(
        complete("lubdub swarm --cli", "--cli", "swarm"),
        "--clients"
    );
    // Only --workers: the hidden --worker is not offered.
    assert_eq!(
        complete("lubdub server --wor", "--wor", "server"),
        "--workers"
    );
    assert_eq!(complete("lubdub server --ro", "--ro", "server"), "");
    let _ = std::fs::remove_file(path);
}

#[test]
fn zsh_and_fish_completions_are_scripts_their_shells_accept() {
    for (shell, check) in [("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("lubdub"), "{shell}: {script}");
        assert!(script.contains("--interval"), "{shell}");
        assert!(!script.contains("listen-fd"), "{shell}: a hidden flag");
        if !have(check[0]) {
            continue;
        }
        let path = temp(&format!("lubdub.{shell}"));
        std::fs::write(&path, &script).unwrap();
        let out = Command::new(check[0])
            .arg(check[1])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let _ = std::fs::remove_file(path);
    }
}

/// The shipped systemd unit.
const UNIT: &str = include_str!("../contrib/lubdub.service");

/// The value of `key=` in the unit (its last, as systemd reads it).
fn unit_value(key: &str) -> String {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .next_back()
        .unwrap_or_else(|| panic!("the unit has no {key}="))
        .to_string()
}

/// The unit's ExecStart runs the real binary with its real flags: on a
/// free port, it listens, answers a heartbeat, and on SIGTERM (the unit's
/// KillSignal) drains and exits 0 — well within TimeoutStopSec, which is
/// longer than the drain. With `systemd-analyze`, the unit verifies.
#[test]
fn the_systemd_unit_starts_a_server_that_stops_cleanly_on_its_kill_signal() {
    use std::io::{Read, Write};
    let exec = unit_value("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/lubdub"), "{exec}");
    let mut args: Vec<String> = words.map(String::from).collect();
    assert_eq!(args[0], "server", "{exec}");
    // Its own port may be taken here: the same flags on a free one.
    let at = args.iter().position(|a| a == "--listen").expect("--listen");
    let addr = common::peers::free_port();
    args[at + 1] = addr.to_string();
    let drain = args.iter().position(|a| a == "--drain").expect("--drain");
    let drain = lubdub::duration::parse(&args[drain + 1]).unwrap();
    let stop_timeout = lubdub::duration::parse(&unit_value("TimeoutStopSec")).unwrap();
    assert!(
        stop_timeout > drain,
        "TimeoutStopSec {stop_timeout:?} <= --drain {drain:?}"
    );
    assert_eq!(unit_value("KillSignal"), "SIGTERM");
    assert_eq!(unit_value("Restart"), "on-failure");
    assert!(unit_value("LimitNOFILE").parse::<u64>().unwrap() >= 65_536);
    assert_eq!(unit_value("DynamicUser"), "yes");

    let mut command = Command::new(BIN);
    command.args(&args);
    let mut server = Child::from_command(command);
    server.expect_line("listening on", Duration::from_secs(10));
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).unwrap();
    let mut reply = [0u8; 8];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [1, 0, 0, 0, 8, 0, 0, 0]);
    drop(conn);
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(stop_timeout);
    assert_eq!(status.code(), Some(0), "{}", server.log());

    if !have("systemd-analyze") {
        return;
    }
    // verify wants the binary where ExecStart says.
    let unit = temp("lubdub.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/lubdub", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&unit);
    assert!(out.status.success(), "{out:?}");
}
