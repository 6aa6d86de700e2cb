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

#[test]
fn one_loop_drives_a_server_a_client_and_a_udp_socket_on_one_poll() {
    let out = run("one_loop", &["--secs", "2"]);
    let field = |line: usize, name: &str| -> f64 {
        let line = &out.lines[line];
        let value = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {line:?}"));
        value
            .trim_end_matches(|c: char| c.is_alphabetic() || c == 'µ')
            .parse()
            .unwrap()
    };
    let server = out.find(0, "server: ");
    let client = out.find(0, "client: ");
    let udp = out.find(0, "udp: ");
    // 200 ms heartbeats for 2 s, answered in the same loop; nothing there
    // counted as a stall.
    assert!(field(server, "heartbeats") >= 7.0, "{:?}", out.lines);
    assert!(field(client, "replies") >= 7.0, "{:?}", out.lines);
    assert_eq!(field(server, "pauses"), 0.0);
    assert_eq!(field(client, "pauses"), 0.0);
    // Pings every 50 ms for 1.8 s, every one echoed.
    assert!(field(udp, "echoed") >= 20.0, "{:?}", out.lines);
    out.find(0, "loop thread cpu: ");
}

/// Starts an example that serves: the child, its stdout past the first
/// line (`listening on ADDR`), and ADDR.
fn start_server(
    name: &str,
    args: &[&str],
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    String,
) {
    use std::io::BufRead;
    let mut child = Command::new(binary(name))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{name} said {first:?}"))
        .to_string();
    (child, stdout, addr)
}

#[test]
fn presence_tracks_who_is_online_and_why_they_left() {
    use std::io::{Read, Write};
    let (mut child, mut stdout, addr) =
        start_server("presence", &["--listen", "127.0.0.1:0", "--secs", "3"]);
    let frame = |payload: &[u8]| {
        let mut f = 2i32.to_le_bytes().to_vec();
        f.extend_from_slice(&((8 + payload.len()) as i32).to_le_bytes());
        f.extend_from_slice(payload);
        f
    };
    let read_frame = |s: &mut std::net::TcpStream| {
        let mut header = [0u8; 8];
        s.read_exact(&mut header).unwrap();
        let len = i32::from_le_bytes(header[4..].try_into().unwrap()) as usize;
        let mut payload = vec![0; len - 8];
        s.read_exact(&mut payload).unwrap();
        String::from_utf8(payload).unwrap()
    };
    let mut alice = std::net::TcpStream::connect(&addr).unwrap();
    assert!(read_frame(&mut alice).starts_with("hello; 1 online"));
    alice.write_all(&frame(b"name alice")).unwrap();
    assert_eq!(read_frame(&mut alice), "alice is here");
    let mut bob = std::net::TcpStream::connect(&addr).unwrap();
    assert!(read_frame(&mut bob).starts_with("hello; 2 online"));
    bob.write_all(&[frame(b"name bob"), frame(b"who")].concat())
        .unwrap();
    assert_eq!(read_frame(&mut bob), "bob is here");
    assert_eq!(read_frame(&mut bob), "online: alice, bob");
    drop(alice);
    assert_eq!(read_frame(&mut bob), "alice left: closed by peer");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    let out = Output {
        name: "presence".into(),
        lines: rest.lines().map(str::to_string).collect(),
    };
    let left = out.find(0, "alice left after ");
    assert!(out.lines[left].ends_with("closed by peer"));
    // Bob sent nothing after "who": evicted after 3 × 1 s, or shut down
    // at 3 s, whichever the schedule reaches first.
    let bob_left = out.find(0, "bob left after ");
    assert!(
        out.lines[bob_left].contains("evicted") || out.lines[bob_left].contains("shutting down"),
        "{:?}",
        out.lines
    );
    out.find(bob_left, "stopped: ");
}

#[test]
fn broadcast_reaches_a_peer_from_another_thread() {
    use std::io::Read;
    let (mut child, mut stdout, addr) = start_server(
        "broadcast",
        &[
            "--listen",
            "127.0.0.1:0",
            "--ticks",
            "3",
            "--every-ms",
            "200",
        ],
    );
    let mut peer = std::net::TcpStream::connect(&addr).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap(); // until the server stops
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    // Every tick as one data frame, in order; the peer connected before
    // the first was due.
    let mut expected = Vec::new();
    for n in 1..=3 {
        let payload = format!("tick {n}");
        expected.extend_from_slice(&2i32.to_le_bytes());
        expected.extend_from_slice(&((8 + payload.len()) as i32).to_le_bytes());
        expected.extend_from_slice(payload.as_bytes());
    }
    assert_eq!(got, expected, "{rest}");
    assert!(
        rest.contains("stopped after 3 commands (0 failed)"),
        "{rest}"
    );
}
