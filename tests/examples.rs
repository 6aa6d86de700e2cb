//! Every program in `examples/`, run briefly as a stranger would run it,
//! its output checked, so that none rots.
//!
//! Adding one is a test of a few lines: `run("NAME", &[args])` runs the
//! example and returns its stdout, and [`Output`] finds lines in it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest any example may run before it is killed and the test fails.
const LIMIT: Duration = Duration::from_secs(30);

/// The example's binary, built and up to date: `cargo test` builds the
/// examples next to the test binaries (`target/PROFILE/examples/`), and
/// `cargo build --example` brings one up to date when only this test was
/// built (`cargo test --test examples`).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/PROFILE/deps/examples-HASH → target/PROFILE
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/PROFILE/deps");
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--example", name]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build --example {name}: {status}");
    }
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}

/// What an example printed on stdout.
struct Output {
    name: String,
    lines: Vec<String>,
}

impl Output {
    /// The index of the first line at or after `from` that starts with
    /// `prefix`; panics, showing the whole output, if there is none.
    fn find(&self, from: usize, prefix: &str) -> usize {
        self.lines[from..]
            .iter()
            .position(|l| l.starts_with(prefix))
            .map(|i| from + i)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no line starting {prefix:?} after line {from}:\n{}",
                    self.name,
                    self.lines.join("\n")
                )
            })
    }

    /// How many lines in `range` start with `prefix`.
    fn count(&self, range: std::ops::Range<usize>, prefix: &str) -> usize {
        self.lines[range]
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
}

/// Runs example `name` with `args` to its end; it must exit with success
/// within [`LIMIT`].
fn run(name: &str, args: &[&str]) -> Output {
    let mut child = Command::new(binary(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("{name} ran for more than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{name} {args:?}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Output {
        name: name.to_string(),
        lines: stdout.lines().map(str::to_string).collect(),
    }
}

#[test]
fn embedded_client_reconnects_across_a_server_restart() {
    let out = run("embedded_client", &["--secs", "3", "--every-ms", "100"]);
    let up = out.find(0, "connected");
    let stopped = out.find(up, "server stopped");
    assert!(out.count(up..stopped, "sent ") >= 3, "sends while up");
    let lost = out.find(stopped, "disconnected: server closed the connection");
    let restarted = out.find(lost, "server restarted on ");
    // Down: sends refused as closed, connects that fail, nothing else lost.
    let down = lost + 1..restarted;
    assert!(out.count(down.clone(), "send ") >= 1, "no send refused");
    assert_eq!(out.count(down.clone(), "sent "), 0, "a send went through");
    assert!(out.count(down.clone(), "no connection, retry in ") >= 1);
    assert_eq!(out.count(down, "disconnected"), 0);
    // Back: connected again, and sends go through.
    let back = out.find(restarted, "connected");
    let sent = out.find(back, "sent ");
    let end = out.find(sent, "disconnected: closed on purpose");
    out.find(end, "done: 2 connects");
}

#[test]
fn sans_io_client_heartbeats_a_server() {
    let out = run("sans_io_client", &["--secs", "1.5"]);
    let up = out.find(0, "connected");
    let done = out.find(up, "done: ");
    // 100 ms heartbeats for 1.5 s, each answered.
    let replies = out.count(up..done, "reply after ");
    assert!(replies >= 8, "{replies} replies");
    assert!(out.count(up..done, "heartbeat sent") <= replies + 1);
    assert_eq!(out.count(0..done, "disconnected"), 0);
    assert_eq!(out.count(0..done, "no connection"), 0);
}
