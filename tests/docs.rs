//! The docs can be followed to the letter. Every fenced `sh` or `text`
//! block in README.md and docs/*.md is either run here and compared with
//! what the binary does now, or marked with where it came from; every
//! relative link resolves, to a heading where it names one; the README
//! stays a front door (under 200 lines); and the benches' own headers and
//! the docs agree on how long each bench runs.
//!
//! A block is marked by an HTML comment on the line before its fence
//! (blank lines may come between):
//!
//! - `<!-- check: ID -->`: a test below runs what the block shows — the
//!   test for `ID` knows how its blocks fit together — and compares the
//!   output with it.
//! - `<!-- commands -->`: commands to type, with no output shown. Every
//!   `cargo … --test/--bench/--example NAME` names a target that exists
//!   (and a test filter a test that exists), and every `lubdub` command's
//!   flags are in its `--help`.
//! - `<!-- transcript: SOURCE -->`: a recorded run that a test cannot
//!   repeat (a benchmark, thousands of connections for minutes, root and
//!   namespaces), with where it came from. Its `$ lubdub` lines' flags are
//!   checked as above.
//! - `<!-- text: WHAT -->`: not a transcript (a formula, a configuration).
//!
//! Output is compared line by line, the block's lines in order among the
//! output's (the output may have more: a transcript says what it left
//! out). In a block's line every run of digits stands for any run of
//! digits (times, ports, counts), a duration (`3s`, `250ms`) for any
//! duration in any unit, every run of spaces for any run of
//! spaces (columns widen with their numbers), and `…` for anything; the
//! rest must be exact. A log line quoted with its time shortened, or
//! without it, matches on its level and message; a line repeated with only
//! its digits changed (a retry) stands for one or more. A command's port
//! 8898 becomes a free port.
//!
//! The shell tour needs `nc` and `xxd`; without them its test skips with
//! one line naming the tool, and fails instead under
//! `LUBDUB_REQUIRE_TOOLS=1`, as `.ci/run` sets it.

#[path = "docs/commands.rs"]
mod commands;
mod common;
#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/shape.rs"]
mod shape;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use commands::{check_command, command_of, flag_and_value, lubdub_args, with_port};
use common::netns::have_tool;
use common::peers::Child;
use markdown::{
    all_blocks, anchors_of, blocks_of, checked, is_code, links_of, markdown_files, minutes, read,
    units, Block, Marker,
};
use shape::in_order;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const LUBDUB: &str = env!("CARGO_BIN_EXE_lubdub");

/// Every `check:` id a test below handles.
const CHECKS: [&str; 6] = [
    "tour",
    "swarm-run",
    "flag-errors",
    "eviction-lines",
    "client-session",
    "marked-run",
];

#[test]
fn every_transcript_is_checked_or_marked_with_its_source() {
    let mut unmarked = Vec::new();
    let mut unknown = Vec::new();
    let mut used = BTreeMap::new();
    for block in all_blocks() {
        match &block.marker {
            None if !is_code(&block.lang) => unmarked.push(block.place()),
            Some(Marker::Check(id)) if !CHECKS.contains(&id.as_str()) => {
                unknown.push(format!("{} check: {id}", block.place()))
            }
            Some(Marker::Check(id)) => *used.entry(id.clone()).or_insert(0) += 1,
            Some(Marker::Transcript(s) | Marker::Text(s)) if s.is_empty() => {
                unmarked.push(format!("{} (a marker without its source)", block.place()))
            }
            _ => {}
        }
    }
    assert!(
        unmarked.is_empty(),
        "blocks neither checked by tests/docs.rs nor marked with their source \
         (<!-- check: ID -->, <!-- commands -->, <!-- transcript: SOURCE -->, <!-- text: WHAT -->):\n{}",
        unmarked.join("\n")
    );
    assert!(
        unknown.is_empty(),
        "no test handles: {}",
        unknown.join("\n")
    );
    for id in CHECKS {
        assert!(used.contains_key(id), "no block is marked check: {id}");
    }
}

#[test]
fn every_command_shown_names_targets_and_flags_that_exist() {
    let mut helps = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for block in all_blocks() {
        let lines: Vec<&String> = match block.marker {
            Some(Marker::Commands) => block
                .body
                .iter()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect(),
            // A transcript's commands are its prompt lines.
            Some(Marker::Transcript(_) | Marker::Check(_)) => {
                block.body.iter().filter(|l| l.starts_with("$ ")).collect()
            }
            _ => continue,
        };
        for line in lines {
            if line.trim().is_empty() {
                continue;
            }
            checked += 1;
            if let Err(e) = check_command(command_of(line), &mut helps) {
                wrong.push(format!("{}: {line}\n  {e}", block.place()));
            }
        }
    }
    assert!(checked >= 10, "only {checked} commands found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_relative_link_resolves_to_a_file_and_heading() {
    let mut broken = Vec::new();
    let mut count = 0;
    for file in markdown_files() {
        let text = read(&file);
        let dir = Path::new(&file)
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        for link in links_of(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            count += 1;
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target: PathBuf = if path.is_empty() {
                PathBuf::from(&file)
            } else {
                dir.join(path)
            };
            let full = Path::new(ROOT).join(&target);
            if !full.exists() {
                broken.push(format!("{file}: ({link}): no {}", target.display()));
                continue;
            }
            if !fragment.is_empty() {
                let target_text = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors_of(&target_text).iter().any(|a| a == fragment) {
                    broken.push(format!("{file}: ({link}): no heading #{fragment}"));
                }
            }
        }
    }
    assert!(count >= 20, "only {count} relative links found");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_readme_stays_under_200_lines_and_opens_with_the_two_commands() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines < 200, "README.md has {lines} lines");
    let first = &blocks_of("README.md", &readme)[0];
    assert!(first.line < 6, "the first block is at line {}", first.line);
    let commands: Vec<&str> = first.body.iter().map(|l| command_of(l)).collect();
    assert_eq!(commands, ["cargo run --release -- server", "cargo test"]);
}

#[test]
fn bench_headers_and_docs_agree_on_how_long_each_bench_runs() {
    for bench in ["loopback", "scale", "soak"] {
        let source = read(&format!("benches/{bench}.rs"));
        let header = source
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .find(|l| {
                l.contains(&format!("cargo bench --bench {bench} ")) && l.contains(" minutes")
            })
            .unwrap_or_else(|| panic!("benches/{bench}.rs: no full-run line giving its minutes"));
        let said = minutes(header).unwrap_or_else(|| panic!("{header}"));
        let mut mentions = 0;
        for file in markdown_files() {
            // A paragraph, list item or table row that names the bench and
            // a time.
            for piece in units(&read(&file)) {
                if !piece.contains(&format!("cargo bench --bench {bench}`")) {
                    continue;
                }
                if let Some(m) = minutes(&piece) {
                    mentions += 1;
                    assert_eq!(
                        m, said,
                        "{file} says {m} minutes for the {bench} bench, its header {said}: {piece}"
                    );
                }
            }
        }
        assert!(mentions > 0, "no doc says how long the {bench} bench runs");
    }
}

/// Every line a finished child wrote on stderr.
fn stderr_lines(child: &mut Child) -> Vec<String> {
    while child
        .wait_for_line("", Duration::from_millis(300))
        .is_some()
    {}
    child.drain();
    child.log().lines().map(str::to_string).collect()
}

/// A server as the README's tour starts it (its flags, on a free port).
fn tour_server(tour: &[Block]) -> (Child, u16) {
    let args = lubdub_args(command_of(&tour[0].body[0])).expect("the tour starts lubdub");
    assert_eq!(args[0], "server", "{}", tour[0].place());
    let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let (child, addr) = Child::server(&args);
    (child, addr.port())
}

/// README: start a server, send one heartbeat with printf | nc | xxd, read
/// the server's log.
#[test]
fn the_readme_shell_tour_runs_as_written() {
    let tour = checked("tour");
    assert_eq!(tour.len(), 3, "the tour's blocks: server, heartbeat, log");
    let test = "the_readme_shell_tour_runs_as_written";
    if !have_tool(test, "nc", "-h", "netcat-openbsd") || !have_tool(test, "xxd", "-v", "xxd") {
        return;
    }
    let (mut server, port) = tour_server(&tour);

    let heartbeat = &tour[1];
    let command = with_port(command_of(&heartbeat.body[0]), port);
    let expected = heartbeat.body[1]
        .strip_prefix("# ")
        .expect("the heartbeat block shows xxd's line as a comment");
    let began = Instant::now();
    // dash, where the README's `printf` must work too.
    let out = Command::new("sh")
        .args(["-c", &command])
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    let took = began.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        expected,
        "{command}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // nc waits until the server evicts it: interval × misses after the one
    // heartbeat, never earlier.
    assert!(
        took >= Duration::from_millis(300),
        "{command} ended after {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{command} took {took:?}");

    server.wait_for("evicted", Duration::from_secs(5));
    server.signal(libc::SIGINT);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    let log = stderr_lines(&mut server);
    if let Err(e) = in_order(&tour[2].body, &log) {
        panic!("{}: the server's log differs: {e}", tour[2].place());
    }
}

/// README (and swarm.md's excerpts of the same run): a thousand clients
/// for ten seconds against the tour's server.
#[test]
fn the_readme_swarm_run_reports_as_shown() {
    let blocks = checked("swarm-run");
    let (mut server, port) = tour_server(&checked("tour"));
    let command = blocks
        .iter()
        .flat_map(|b| &b.body)
        .find(|l| lubdub_args(command_of(l)).is_some_and(|a| a[0] == "swarm"))
        .expect("a swarm command");
    let mut args = lubdub_args(&with_port(command_of(command), port)).unwrap();
    // The run shown met the default timing bounds on a quiet machine; a
    // test shares its machine, so it widens those bounds (and only those):
    // what it checks is the report's shape and that every reply came.
    args.extend(
        [
            "--max-late",
            "1000000",
            "--max-p99",
            "10s",
            "--max-stall",
            "10s",
        ]
        .map(String::from),
    );
    let outputs: Vec<&Block> = blocks.iter().filter(|b| b.lang == "text").collect();
    assert!(outputs.len() >= 2, "the run's output blocks");
    // A loaded machine may fail the run's own bounds once; twice is the
    // docs' fault or the code's.
    let mut failure = String::new();
    for attempt in 0..2 {
        let out = Command::new(LUBDUB)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("lubdub swarm");
        // Status lines and logs on stderr come before the report, wherever
        // the report is printed.
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mismatch = outputs.iter().find_map(|b| {
            in_order(&b.body, &lines)
                .err()
                .map(|e| format!("{}: {e}", b.place()))
        });
        match (out.status.code(), mismatch) {
            (Some(0), None) => {
                server.terminate();
                return;
            }
            (code, m) => {
                failure = format!(
                    "attempt {attempt}: exit {code:?}; {}",
                    m.unwrap_or_default()
                );
                eprintln!("{failure}");
            }
        }
    }
    panic!("{failure}");
}

/// keepalive.md, server.md: each flag error, as the server prints it, with exit code 2.
#[test]
fn the_flag_errors_shown_are_what_the_server_says() {
    let blocks = checked("flag-errors");
    assert!(!blocks.is_empty());
    let mut lines = 0;
    for block in &blocks {
        for line in &block.body {
            let (flag, value) = flag_and_value(line.trim())
                .unwrap_or_else(|| panic!("{}: no flag and value in {line}", block.place()));
            let out = Command::new(LUBDUB)
                .args(["server", "--listen", "127.0.0.1:0", flag, value])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
            assert!(
                stderr.lines().any(|l| l == line.trim()),
                "{}: `lubdub server {flag} {value}` says\n{stderr}instead of\n{line}",
                block.place()
            );
            lines += 1;
        }
    }
    assert!(lines >= 3);
}

/// liveness.md: the eviction line and, at debug, its evidence line, from
/// a peer that sent one heartbeat and three bytes of the next header.
#[test]
fn the_eviction_lines_shown_are_what_the_server_logs() {
    use std::io::Write;
    let blocks = checked("eviction-lines");
    assert!(!blocks.is_empty());
    let (mut server, addr) = Child::server(&[
        "--interval",
        "100ms",
        "--misses",
        "3",
        "--log-level",
        "debug",
    ]);
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    peer.write_all(&common::REQUEST).unwrap();
    peer.write_all(&common::REQUEST[..3]).unwrap();
    server
        .wait_for("evicted", Duration::from_secs(5))
        .expect("no eviction");
    server.terminate();
    let log = stderr_lines(&mut server);
    for block in &blocks {
        if let Err(e) = in_order(&block.body, &log) {
            panic!("{}: {e}", block.place());
        }
    }
}

/// client.md: a client through its server's freeze (SIGSTOP), thaw, death
/// (SIGKILL) and restart, then Ctrl-C. The signals follow the client's own
/// lines rather than the clock of the run shown.
#[test]
fn the_client_session_shown_is_what_the_client_logs() {
    let blocks = checked("client-session");
    assert_eq!(blocks.len(), 1);
    let block = &blocks[0];
    let port = common::peers::restartable_port().port();
    let commands: Vec<Vec<String>> = block
        .body
        .iter()
        .filter(|l| l.starts_with("$ "))
        .map(|l| lubdub_args(&with_port(command_of(l), port)).expect("a lubdub command"))
        .collect();
    let [server_args, client_args] = &commands[..] else {
        panic!("{}: a server and a client command", block.place());
    };
    assert_eq!(
        (&server_args[0][..], &client_args[0][..]),
        ("server", "client")
    );
    let start_server = || {
        let mut command = Command::new(LUBDUB);
        command.args(server_args);
        Child::listening(command).0
    };
    let server = start_server();
    let mut command = Command::new(LUBDUB);
    command
        .args(client_args)
        .args(["--connect", &format!("127.0.0.1:{port}")]);
    let mut client = Child::from_command(command);
    let wait = Duration::from_secs(15);
    client.expect_line("] connected to", wait);
    std::thread::sleep(Duration::from_millis(2500));
    server.signal(libc::SIGSTOP);
    client.expect_line("server silent for", wait);
    // The kernel completes the connect into the frozen server's backlog.
    client.expect_line("] connected to", wait);
    server.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(3));
    server.signal(libc::SIGKILL);
    client.expect_line("server closed the connection", wait);
    client.expect_line("connection refused", wait);
    std::thread::sleep(Duration::from_secs(2));
    let _server = start_server();
    drop(server);
    client.expect_line("] connected to", wait);
    std::thread::sleep(Duration::from_secs(3));
    client.signal(libc::SIGINT);
    assert!(client.wait_exit(wait).success());
    let log = stderr_lines(&mut client);
    let expected: Vec<String> = block
        .body
        .iter()
        .filter(|l| !(l.starts_with("$ ") || l.trim() == "^C" || l.trim_start().starts_with('#')))
        .cloned()
        .collect();
    if let Err(e) = in_order(&expected, &log) {
        panic!("{}: {e}", block.place());
    }
}

/// swarm.md: a swarm marked with SIGUSR1 reports the round trips since the
/// mark on a line of their own, after the whole run's.
#[test]
fn a_marked_swarm_reports_round_trips_since_the_mark_as_shown() {
    let blocks = checked("marked-run");
    assert!(!blocks.is_empty());
    let (mut server, addr) = Child::server(&["--interval", "100ms", "--misses", "3"]);
    let swarm = Command::new(LUBDUB)
        .args(["swarm", "--connect", &addr.to_string(), "--clients", "10"])
        .args(["--interval", "100ms", "--duration", "3s"])
        .args([
            "--max-late",
            "1000000",
            "--max-p99",
            "10s",
            "--max-stall",
            "10s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lubdub swarm");
    // Well after the swarm watches for the mark, well before its end.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(swarm.id() as i32, libc::SIGUSR1) };
    let out = swarm.wait_with_output().expect("lubdub swarm");
    server.terminate();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(out.status.code(), Some(0), "{text}");
    for block in &blocks {
        if let Err(e) = in_order(&block.body, &lines) {
            panic!("{}: {e}", block.place());
        }
    }
}
