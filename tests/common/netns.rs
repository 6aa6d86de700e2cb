//! Two network namespaces joined by a veth pair, for faults made for real;
//! and a star of them, for a balancer between machines.
//!
//! ```text
//!   namespace A                          namespace B
//!   lo, veth0 10.77.N.1/30  <-------->  veth0 10.77.N.2/30, lo
//! ```
//!
//! [`Star`]: a hub namespace (the balancer's machine) joined to each spoke
//! namespace (a client's or a server's machine) by a veth pair of its own,
//! `10.78.N.(4k+1)/30` on the hub and `10.78.N.(4k+2)/30` on spoke `k`.
//! Spokes reach the hub only, as machines behind a balancer reach it.
//!
//! - **A silent cut.** [`NetPair::cut`] loads, in each namespace, an
//!   nftables table whose `input` hook drops every packet on arrival: no RST,
//!   no ICMP, no carrier change — what a peer sees when a cable is pulled
//!   somewhere along the path or a NAT forgets its mapping. `ip link set
//!   down` is *not* silent: the local stack learns at once and sends fail
//!   with `ENETUNREACH`.
//! - **One direction.** [`NetPair::cut_inbound_of`] drops only what arrives
//!   in one namespace, so one side's data is delivered while nothing it is
//!   sent in return (replies, ACKs) comes back.
//! - **Permanent neighbour entries** on both sides. A neighbour entry that
//!   goes stale during a long cut and then fails to resolve turns the fault
//!   into `EHOSTUNREACH` — a loud error instead of silence. The `inet` input
//!   hook does not see ARP, so today's cut leaves resolution working anyway;
//!   permanent entries are never resolved, so no cut (a real cable pull
//!   swallows ARP too) depends on that.
//! - **Names and subnets unique per test.** Namespaces are `ldb-PID-N-a` and
//!   `ldb-PID-N-b` (a star's `ldb-PID-N-hub` and `ldb-PID-N-sK`); the /30 is
//!   `10.77.N.0` (a star's are in `10.78.N.0/24`; sets cannot reach one
//!   another anyway; distinct subnets keep logs unambiguous). Tests run on
//!   parallel threads and in parallel processes without clashing.
//! - **Cleanup.** Dropping the pair or star (also while a test panics)
//!   deletes its namespaces, and with them the veth pairs and the rules. A
//!   run killed before it could clean up leaves `ldb-PID-*` namespaces
//!   behind; the next run deletes those whose process is gone.
//!
//! Only root can create namespaces, and only with `ip` (iproute2) and, for
//! a pair, `nft` (nftables). [`NetPair::create`] and [`Star::create`] return
//! `None` after printing one line — no root, or which tool is missing — so
//! the test passes as skipped. CI must run these tests, not skip them:
//! `.ci/run` installs the tools and sets `LUBDUB_REQUIRE_TOOLS=1`, which
//! turns every such skip into a failure ([`skip`]).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use super::peers::Child;

/// One end of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// Names the nftables table that holds a cut; one per namespace.
const CUT_TABLE: &str = "lubdub_cut";
/// The veth end's name inside each namespace. The ends are created directly
/// in their namespaces, so the same name in every pair does not clash.
const VETH: &str = "veth0";

/// When a cut or a restore took effect: somewhere between `began` and
/// `done` (running `nft` takes a few milliseconds, more on a loaded
/// machine). Measure lower bounds from `began` and upper bounds from `done`.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub began: Instant,
    pub done: Instant,
}

static PAIRS: AtomicU32 = AtomicU32::new(0);

/// Two namespaces and the veth between them; deleted when dropped.
pub struct NetPair {
    names: [String; 2],
    ips: [Ipv4Addr; 2],
}

impl NetPair {
    /// Creates the pair for `test`, or returns `None` (after saying why, see
    /// [`skip`]) when not running as root or `ip` or `nft` is missing.
    /// Panics, with the reason, when the pair cannot be built.
    pub fn create(test: &str) -> Option<NetPair> {
        if !can_make_namespaces(test) || !have_tool(test, "nft", "--version", "nftables") {
            return None;
        }
        remove_stale_pairs();
        let n = PAIRS.fetch_add(1, Ordering::Relaxed);
        assert!(n < 256, "more than 256 namespace pairs in one process");
        let base = format!("ldb-{}-{n}", std::process::id());
        let pair = NetPair {
            names: [format!("{base}-a"), format!("{base}-b")],
            ips: [
                Ipv4Addr::new(10, 77, n as u8, 1),
                Ipv4Addr::new(10, 77, n as u8, 2),
            ],
        };
        // From here on, Drop removes whatever was created.
        for name in &pair.names {
            ip(&["netns", "add", name]);
        }
        let [a, b] = &pair.names;
        ip(&[
            "link", "add", VETH, "netns", a, "type", "veth", "peer", "name", VETH, "netns", b,
        ]);
        for side in [Side::A, Side::B] {
            let (name, addr) = (pair.name(side), pair.ip(side));
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &format!("{addr}/30"),
                "dev",
                VETH,
            ]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
            ip(&["-n", name, "link", "set", VETH, "up"]);
        }
        for side in [Side::A, Side::B] {
            let other = other(side);
            let mac = pair.mac(other);
            ip(&[
                "-n",
                pair.name(side),
                "neigh",
                "replace",
                &pair.ip(other).to_string(),
                "lladdr",
                &mac,
                "dev",
                VETH,
                "nud",
                "permanent",
            ]);
        }
        Some(pair)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self, side: Side) -> &str {
        &self.names[side.index()]
    }

    /// The address of `side`'s veth end.
    pub fn ip(&self, side: Side) -> Ipv4Addr {
        self.ips[side.index()]
    }

    /// `program` to be run inside `side`'s namespace; add arguments and
    /// spawn it like any command.
    pub fn command(&self, side: Side, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.name(side), program]);
        command
    }

    /// `lubdub ARGS` inside `side`'s namespace. `ip netns exec` execs the
    /// program in its own process, so the child's pid is lubdub's and
    /// signals reach it.
    pub fn lubdub(&self, side: Side, args: &[&str]) -> Child {
        let mut command = self.command(side, env!("CARGO_BIN_EXE_lubdub"));
        command.args(args);
        Child::from_command(command)
    }

    /// `lubdub server --listen IP:0 ARGS` inside `side`'s namespace, and the
    /// address it is listening on.
    pub fn lubdub_server(&self, side: Side, args: &[&str]) -> (Child, SocketAddr) {
        let mut command = self.command(side, env!("CARGO_BIN_EXE_lubdub"));
        command
            .args(["server", "--listen", &format!("{}:0", self.ip(side))])
            .args(args);
        Child::listening(command)
    }

    /// Runs `f` on a new thread whose sockets live in `side`'s namespace:
    /// a peer written in a few lines, with its own clock.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        side: Side,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        spawn_in_namespace(self.name(side), f)
    }

    /// Drops every packet arriving in either namespace, silently.
    pub fn cut(&self) -> Change {
        let began = Instant::now();
        self.cut_inbound_of(Side::A);
        let done = self.cut_inbound_of(Side::B).done;
        Change { began, done }
    }

    /// Drops every packet arriving in `side`'s namespace, silently: what
    /// the other side sends is lost, what `side` sends is delivered.
    pub fn cut_inbound_of(&self, side: Side) -> Change {
        let began = Instant::now();
        // Priority -400 runs before conntrack and any other filter.
        self.nft(
            side,
            &format!(
                "add table inet {CUT_TABLE}\n\
                 add chain inet {CUT_TABLE} input {{ type filter hook input priority -400; policy drop; }}\n"
            ),
        );
        Change {
            began,
            done: Instant::now(),
        }
    }

    /// Removes every cut.
    pub fn restore(&self) -> Change {
        let began = Instant::now();
        for side in [Side::A, Side::B] {
            // `add` then `delete` in one transaction: deleting a table that
            // was never added is not an error this way (nft 1.0.6 lacks
            // `destroy`).
            self.nft(
                side,
                &format!("add table inet {CUT_TABLE}\ndelete table inet {CUT_TABLE}\n"),
            );
        }
        Change {
            began,
            done: Instant::now(),
        }
    }

    /// The MAC address of `side`'s veth end.
    fn mac(&self, side: Side) -> String {
        let out = output(Command::new("ip").args([
            "-n",
            self.name(side),
            "-o",
            "link",
            "show",
            "dev",
            VETH,
        ]));
        out.split_whitespace()
            .skip_while(|word| *word != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC address in {out:?}"))
            .to_string()
    }

    /// Runs an nftables script inside `side`'s namespace.
    fn nft(&self, side: Side, script: &str) {
        let mut child = self
            .command(side, "nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .expect("write nft script");
        let out = child.wait_with_output().expect("wait for nft");
        assert!(
            out.status.success(),
            "nft in {}: {}\nscript:\n{script}",
            self.name(side),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for NetPair {
    /// Deleting a namespace deletes its veth end (and so the pair) and its
    /// nftables rules. Processes still running inside keep the namespace
    /// alive until they exit, so drop the pair after the children.
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A hub namespace joined to each of its spokes by a veth pair of its own;
/// deleted when dropped. See the module docs.
pub struct Star {
    hub: String,
    spokes: Vec<String>,
    n: u8,
}

impl Star {
    /// Creates the hub and `spokes` spokes for `test`, or returns `None`
    /// (after saying why, see [`skip`]) when not root or `ip` is missing.
    /// Panics, with the reason, when they cannot be built.
    pub fn create(test: &str, spokes: usize) -> Option<Star> {
        assert!(spokes <= 63, "a /24 holds 63 links of four addresses");
        if !can_make_namespaces(test) {
            return None;
        }
        remove_stale_pairs();
        let n = PAIRS.fetch_add(1, Ordering::Relaxed);
        assert!(n < 256, "more than 256 namespace sets in one process");
        let base = format!("ldb-{}-{n}", std::process::id());
        let star = Star {
            hub: format!("{base}-hub"),
            spokes: (0..spokes).map(|k| format!("{base}-s{k}")).collect(),
            n: n as u8,
        };
        // From here on, Drop removes whatever was created.
        for name in std::iter::once(&star.hub).chain(&star.spokes) {
            ip(&["netns", "add", name]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        for (k, spoke) in star.spokes.iter().enumerate() {
            let hub_end = format!("veth{k}");
            ip(&[
                "link", "add", &hub_end, "netns", &star.hub, "type", "veth", "peer", "name", VETH,
                "netns", spoke,
            ]);
            for (name, dev, addr) in [
                (&star.hub, hub_end.as_str(), star.hub_ip(k)),
                (spoke, VETH, star.spoke_ip(k)),
            ] {
                ip(&["-n", name, "addr", "add", &format!("{addr}/30"), "dev", dev]);
                ip(&["-n", name, "link", "set", dev, "up"]);
            }
        }
        Some(star)
    }

    /// The hub's namespace (for `ip netns exec`).
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// The hub's address on its link to spoke `k`.
    pub fn hub_ip(&self, k: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 78, self.n, 4 * k as u8 + 1)
    }

    /// Spoke `k`'s address.
    pub fn spoke_ip(&self, k: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 78, self.n, 4 * k as u8 + 2)
    }

    /// `program` to be run inside spoke `k`'s namespace, or the hub's for
    /// `None`.
    pub fn command(&self, spoke: Option<usize>, program: &str) -> Command {
        let name = spoke.map_or(&self.hub, |k| &self.spokes[k]);
        let mut command = Command::new("ip");
        command.args(["netns", "exec", name, program]);
        command
    }

    /// `lubdub server --listen SPOKE_IP:PORT ARGS` inside spoke `k`, and the
    /// address it is listening on.
    pub fn lubdub_server(&self, k: usize, port: u16, args: &[&str]) -> (Child, SocketAddr) {
        let mut command = self.command(Some(k), env!("CARGO_BIN_EXE_lubdub"));
        command
            .args([
                "server",
                "--listen",
                &format!("{}:{port}", self.spoke_ip(k)),
            ])
            .args(args);
        Child::listening(command)
    }

    /// Runs `f` on a new thread whose sockets live in spoke `k`.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        k: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        spawn_in_namespace(&self.spokes[k], f)
    }
}

impl Drop for Star {
    /// Deleting the namespaces deletes the veth pairs. Processes still
    /// running inside keep a namespace alive until they exit, so drop the
    /// star after the children.
    fn drop(&mut self) {
        for name in std::iter::once(&self.hub).chain(&self.spokes) {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether namespaces can be made here: root, and `ip` runs. When not,
/// the test is skipped (see [`skip`]).
fn can_make_namespaces(test: &str) -> bool {
    if let Some(uid) = effective_uid().filter(|&uid| uid != 0) {
        skip(
            test,
            &format!("creating network namespaces needs root (effective uid {uid})"),
        );
        return false;
    }
    have_tool(test, "ip", "-V", "iproute2")
}

/// Whether `tool` runs (`tool VERSION_FLAG` exits 0). When it does not,
/// the test is skipped with one line naming the tool and its package (see
/// [`skip`]).
pub fn have_tool(test: &str, tool: &str, version_flag: &str, package: &str) -> bool {
    match missing_tool(tool, version_flag, package) {
        None => true,
        Some(reason) => {
            skip(test, &reason);
            false
        }
    }
}

/// `None` when `tool VERSION_FLAG` runs and exits 0, else why not, naming
/// the package to install.
pub fn missing_tool(tool: &str, version_flag: &str, package: &str) -> Option<String> {
    let found = Command::new(tool)
        .arg(version_flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| format!("`{tool}` not found (apt-get install {package})"))
}

/// Says on one line of stderr that `test` is skipped and why, so the test
/// passes as skipped — or, when `LUBDUB_REQUIRE_TOOLS` is set (`.ci/run`
/// sets it), panics with the same line: CI must run every test, and a skip
/// there would hide one.
pub fn skip(test: &str, reason: &str) {
    let required = std::env::var_os(REQUIRE_TOOLS).is_some_and(|v| !v.is_empty() && v != "0");
    let line = skip_unless_required(test, reason, required);
    // Straight to the process's stderr: the test harness captures
    // `eprintln!` of a passing test, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The line [`skip`] prints, or, when `required`, a panic with that line.
pub fn skip_unless_required(test: &str, reason: &str, required: bool) -> String {
    let line = skip_line(test, reason);
    assert!(
        !required,
        "{line}, and {REQUIRE_TOOLS} is set: this test must run here"
    );
    line
}

/// The environment variable that turns a skip into a failure.
pub const REQUIRE_TOOLS: &str = "LUBDUB_REQUIRE_TOOLS";

/// The one line a skipped test prints.
pub fn skip_line(test: &str, reason: &str) -> String {
    format!("skipping {test}: {reason}")
}

/// Runs `f` on a new thread whose sockets live in namespace `name`.
fn spawn_in_namespace<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{name}");
    let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    std::thread::spawn(move || {
        // SAFETY: `ns` is an open namespace file; setns(2) with
        // CLONE_NEWNET moves only the calling thread, and only sockets
        // created afterwards belong to the new namespace.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        drop(ns);
        f()
    })
}

fn other(side: Side) -> Side {
    match side {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

/// Runs `ip ARGS`, panicking with its stderr when it fails.
fn ip(args: &[&str]) {
    output(Command::new("ip").args(args));
}

fn output(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The effective uid, from `/proc/self/status` (no unsafe `geteuid` call in
/// test code); `None` when it cannot be read, and then the setup will say
/// what failed.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Deletes `ldb-PID-N-{a,b,hub,sK}` namespaces left by a test process that
/// no longer exists (killed before its pairs or stars were dropped).
fn remove_stale_pairs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let parts: Vec<&str> = name.split('-').collect();
        let [ldb, pid, n, side] = parts[..] else {
            continue;
        };
        let spoke = side
            .strip_prefix('s')
            .is_some_and(|k| k.parse::<u32>().is_ok());
        let ours = ldb == "ldb"
            && n.parse::<u32>().is_ok()
            && (matches!(side, "a" | "b" | "hub") || spoke);
        let Some(pid) = pid.parse::<u32>().ok().filter(|_| ours) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}
