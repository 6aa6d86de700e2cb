//! Starting, checking and stopping the servers under test, each its own
//! process pinned to the server CPU.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The CPU every server runs on; the load (and this orchestrator) gets the other.
pub const SERVER_CPU: &str = "0";
/// The CPU of the load generators and of this process.
pub const LOAD_CPU: &str = "1";

/// The servers compared, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lubdub,
    Floor,
    Tokio,
    Redis,
}

pub const ALL: [Kind; 4] = [Kind::Lubdub, Kind::Floor, Kind::Tokio, Kind::Redis];

const HEARTBEAT: &[u8] = &[0, 0, 0, 0, 8, 0, 0, 0];
const HEARTBEAT_REPLY: &[u8] = &[1, 0, 0, 0, 8, 0, 0, 0];
const PING: &[u8] = b"PING\r\n";
const PONG: &[u8] = b"+PONG\r\n";

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lubdub => "lubdub",
            Kind::Floor => "floor",
            Kind::Tokio => "tokio",
            Kind::Redis => "redis",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.name() == name)
    }

    /// The request and its reply, as the swarm must speak them.
    pub fn exchange(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Kind::Redis => (PING, PONG),
            _ => (HEARTBEAT, HEARTBEAT_REPLY),
        }
    }
}

/// What the orchestrator needs to find on this machine.
pub struct Tools {
    /// The release `lubdub` binary under test.
    pub lubdub: PathBuf,
    /// The `lubdub` binary whose `swarm` is the load (normally the same one;
    /// pinning it lets two server builds face an identical load).
    pub swarm: PathBuf,
    /// This bench binary, which also serves the floor and tokio baselines.
    pub me: PathBuf,
    /// `redis-server`, or why it is missing and how to get it.
    pub redis: Result<PathBuf, String>,
    /// Whether `taskset` can pin processes (else they run unpinned).
    pub taskset: bool,
    /// Where server and swarm output goes, one file per process.
    pub logs: PathBuf,
}

impl Tools {
    /// `program` under `taskset -c CPU`, when pinning is available.
    pub fn pinned(&self, cpu: &str, program: &Path) -> Command {
        if self.taskset {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(cpu).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// Opens `logs/NAME` for a child's output.
    pub fn log_file(&self, name: &str) -> Result<(File, PathBuf), String> {
        let path = self.logs.join(name);
        let file = File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok((file, path))
    }
}

/// Server liveness settings: wide enough never to evict the swarm.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub interval: Duration,
    pub misses: u32,
}

impl Liveness {
    pub fn interval_arg(&self) -> String {
        lubdub::duration::format(self.interval)
    }
}

/// One running server process.
pub struct Server {
    pub kind: Kind,
    pub pid: u32,
    pub addr: SocketAddr,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts `kind` on a free loopback port and waits until it answers a
    /// pipelined pair of requests correctly.
    pub fn start(tools: &Tools, kind: Kind, live: Liveness, label: &str) -> Result<Server, String> {
        Server::start_with(tools, kind, live, label, &[])
    }

    /// [`Server::start`], with more flags for lubdub.
    pub fn start_with(
        tools: &Tools,
        kind: Kind,
        live: Liveness,
        label: &str,
        extra: &[&str],
    ) -> Result<Server, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let listen = addr.to_string();
        let mut cmd = match kind {
            Kind::Lubdub => {
                let mut cmd = tools.pinned(SERVER_CPU, &tools.lubdub);
                cmd.args(["server", "--listen", &listen, "--interval"])
                    .arg(live.interval_arg())
                    .arg("--misses")
                    .arg(live.misses.to_string())
                    .args(["--log-level", "warn"])
                    .args(extra);
                cmd
            }
            Kind::Floor | Kind::Tokio => {
                let mut cmd = tools.pinned(SERVER_CPU, &tools.me);
                cmd.args(["--serve", kind.name(), "--listen", &listen, "--interval"])
                    .arg(live.interval_arg())
                    .arg("--misses")
                    .arg(live.misses.to_string());
                cmd
            }
            Kind::Redis => {
                let redis = tools.redis.as_ref().map_err(|why| why.clone())?;
                let mut cmd = tools.pinned(SERVER_CPU, redis);
                cmd.args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .args(["--maxclients", "20000", "--daemonize", "no"])
                    // The fill swarms connect from 127.0.0.2–19, which
                    // protected mode refuses as "not local" (-DENIED). The
                    // server is bound to 127.0.0.1 only, so nothing outside
                    // this machine can reach it either way.
                    .args(["--protected-mode", "no"])
                    .args(["--loglevel", "warning"]);
                cmd
            }
        };
        let (log, log_path) = tools.log_file(&format!("{label}-{}-server.log", kind.name()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", kind.name()))?;
        let mut server = Server {
            kind,
            // taskset execs the command, so its pid is the server's.
            pid: child.id(),
            addr,
            log: log_path,
            child: Some(child),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} exited at start ({status}): {}",
                    self.kind.name(),
                    log_tail(&self.log)
                ));
            }
            match probe(self.addr, self.kind) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{} not answering on {}: {last}",
            self.kind.name(),
            self.addr
        ))
    }

    /// The exit status, when the process has already ended.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within five seconds.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill only sends a signal to the pid of a child we own and
        // have not yet reaped, so the pid cannot have been reused.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A free loopback port, found by binding port 0 and letting it go.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Sends two requests in one write and expects both replies: proves the
/// server is up and answers pipelined requests.
pub fn probe(addr: SocketAddr, kind: Kind) -> Result<(), String> {
    let (request, reply) = kind.exchange();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let twice = [request, request].concat();
    stream
        .write_all(&twice)
        .map_err(|e| format!("write: {e}"))?;
    let mut got = vec![0u8; reply.len() * 2];
    stream
        .read_exact(&mut got)
        .map_err(|e| format!("read: {e}"))?;
    if got != [reply, reply].concat() {
        return Err(format!("wrong reply {got:02x?}"));
    }
    Ok(())
}

/// The last line or so of a log, for an error message.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let joined = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
    if joined.is_empty() {
        format!("(no output; see {})", path.display())
    } else {
        joined
    }
}

/// Finds `redis-server`; when it is missing and we are root on a Debian-like
/// system, installs it from the OS packages. Err says how to get it.
pub fn find_or_install_redis(logs: &Path) -> Result<PathBuf, String> {
    const HOW: &str =
        "install it with `sudo apt-get update && sudo apt-get install -y redis-server` \
                       (Debian/Ubuntu) and run the bench again";
    if let Some(path) = which("redis-server") {
        return Ok(path);
    }
    // SAFETY: geteuid takes no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let no_install = std::env::var_os("LUBDUB_BENCH_NO_INSTALL").is_some();
    if !root || no_install || which("apt-get").is_none() {
        return Err(format!("redis-server not found: {HOW}"));
    }
    eprintln!(
        "redis-server not found: installing Debian's redis-server package with apt-get, as \
         root, with services kept from starting (the bench runs its own redis-server and \
         stops it); set LUBDUB_BENCH_NO_INSTALL=1 to skip redis instead (log: {}/apt.log)",
        logs.display()
    );
    // Debian's postinst would start a system redis-server and leave it
    // running; a policy-rc.d that says no (exit 101) stops that. Only one
    // made here is removed again — by a guard, so also when the install
    // fails or panics.
    let _policy = NoServiceStarts::install();
    let apt = |args: &[&str]| -> bool {
        let Ok(log) = File::options()
            .create(true)
            .append(true)
            .open(logs.join("apt.log"))
        else {
            return false;
        };
        let err = log.try_clone().ok();
        let mut cmd = Command::new("apt-get");
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(log);
        if let Some(err) = err {
            cmd.stderr(err);
        }
        cmd.status().map(|s| s.success()).unwrap_or(false)
    };
    // A fresh machine may have no package lists yet: update once on failure.
    let installed = apt(&["install", "-y", "redis-server"])
        || (apt(&["update"]) && apt(&["install", "-y", "redis-server"]));
    match which("redis-server") {
        Some(path) if installed => Ok(path),
        _ => Err(format!(
            "redis-server could not be installed automatically: {HOW}"
        )),
    }
}

/// While alive, `/usr/sbin/policy-rc.d` tells Debian's package scripts not
/// to start services; it is removed on drop, if it was made here.
struct NoServiceStarts(bool);

impl NoServiceStarts {
    const PATH: &'static str = "/usr/sbin/policy-rc.d";

    fn install() -> NoServiceStarts {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // `create_new`: one that is already there (someone else's) is left
        // alone, and not removed later.
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(Self::PATH)
            .and_then(|mut f| {
                f.write_all(b"#!/bin/sh\n# lubdub bench: no service starts\nexit 101\n")
            })
            .is_ok();
        NoServiceStarts(made)
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.0 {
            let _ = std::fs::remove_file(Self::PATH);
        }
    }
}

/// `program` on PATH, or in the sbin directories Debian puts servers in.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
