//! A real HAProxy in front of three lubdub servers, each on a machine of
//! its own, with the swarm on a fourth: TCP mode, `balance leastconn`,
//! PROXY protocol v2 — `contrib/haproxy.cfg` itself, given the test's
//! addresses and a shorter check interval.
//!
//! ```text
//!   spoke 0: swarm  10.78.N.2 ──── 10.78.N.1  hub: haproxy :8898
//!   spoke 1: lubdub 10.78.N.6 ──── 10.78.N.5
//!   spoke 2: lubdub 10.78.N.10 ─── 10.78.N.9
//!   spoke 3: lubdub 10.78.N.14 ─── 10.78.N.13
//! ```
//!
//! It attacks three promises: a server behind the balancer names the
//! swarm's own address (from the PROXY header), never the balancer's side
//! of the connection; every client gets through and every heartbeat is
//! answered; and when a backend dies (SIGKILL), its clients are back —
//! through HAProxy, on the other two — within the swarm's longest backoff
//! plus a margin, and the swarm counts each of them as a reconnect.
//!
//! Needs root (namespaces), `ip` and `haproxy`: without one of them it says
//! which on one line and passes as skipped; `.ci/run` installs them and
//! sets `LUBDUB_REQUIRE_TOOLS=1`, under which a skip is a failure.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::json_number;
use common::netns::{have_tool, Star};
use common::peers::Child;

/// Clients of the swarm: enough that leastconn has something to spread.
const CLIENTS: usize = 300;
const PORT: u16 = 8898;
/// The swarm's longest backoff (`--backoff-max`).
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Slack on top of every upper bound: a shared, noisy 2-core machine.
const MARGIN: Duration = Duration::from_secs(2);

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `contrib/haproxy.cfg` with the star's addresses: HAProxy listens on the
/// hub's side of the swarm's link, and spokes 1 to 3 are the servers.
/// Checks every 200 ms instead of 2 s, so that a dead backend is marked
/// down within the test's patience; everything else as shipped.
fn config(star: &Star) -> String {
    let shipped = include_str!("../contrib/haproxy.cfg");
    let (mut binds, mut servers, mut checks) = (0, 0, 0);
    let mut out = String::new();
    for line in shipped.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let line = match words.first().copied() {
            Some("bind") => {
                binds += 1;
                format!("    bind {}:{PORT}", star.hub_ip(0))
            }
            Some("server") => {
                servers += 1;
                format!("    server {} {}:{PORT}", words[1], star.spoke_ip(servers))
            }
            Some("default-server") if line.contains(" inter 2s ") => {
                checks += 1;
                line.replace(" inter 2s ", " inter 200ms ")
            }
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    assert_eq!(
        (binds, servers, checks),
        (1, 3, 1),
        "contrib/haproxy.cfg no longer has the shape this test rewrites \
         (one bind, three servers, a default-server line with `inter 2s`)"
    );
    out
}

/// How many of `server`'s log lines from `from` on admit a client of the
/// swarm's (`accepted peer=SWARM_IP:`), checking on the way that each
/// names the hub's side of the connection only as `via=`.
fn swarm_accepts(server: &Child, from: usize, swarm: &str, hub: &str) -> usize {
    let mut n = 0;
    for (_, line) in &server.seen[from..] {
        if !line.contains("accepted peer=") {
            continue;
        }
        if line.contains("(the balancer's own)") {
            // A health check: LOCAL, the balancer's own address.
            assert!(line.contains(&format!("accepted peer={hub}:")), "{line}");
            continue;
        }
        assert!(
            line.contains(&format!("accepted peer={swarm}:")),
            "a client named by another address than the swarm's: {line}"
        );
        assert!(line.contains(&format!(" via={hub}:")), "{line}");
        n += 1;
    }
    n
}

/// Reads what each server logged so far, without waiting.
fn drain(servers: &mut [Child]) {
    for server in servers {
        server.drain();
    }
}

#[test]
fn haproxy_leastconn_proxy_v2_in_front_of_three_servers() {
    if !have_tool("haproxy", "haproxy", "-v", "haproxy") {
        return;
    }
    let Some(star) = Star::create("haproxy", 4) else {
        return;
    };
    let swarm_ip = star.spoke_ip(0).to_string();
    let front = format!("{}:{PORT}", star.hub_ip(0));
    let hub = |k: usize| star.hub_ip(k).to_string();

    let args = [
        "--proxy-protocol",
        "--interval",
        "200ms",
        "--misses",
        "10",
        "--log-level",
        "debug",
    ];
    let mut servers: Vec<Child> = (1..=3)
        .map(|k| star.lubdub_server(k, PORT, &args).0)
        .collect();

    let cfg = TempFile(std::env::temp_dir().join(format!(
        "lubdub-haproxy-{}-{}.cfg",
        std::process::id(),
        star.hub()
    )));
    std::fs::write(&cfg.0, config(&star)).unwrap();
    let check = star
        .command(None, "haproxy")
        .args(["-c", "-f"])
        .arg(&cfg.0)
        .output()
        .expect("run haproxy -c");
    assert!(
        check.status.success(),
        "haproxy refuses the configuration:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let mut command = star.command(None, "haproxy");
    command.arg("-db").arg("-f").arg(&cfg.0);
    let mut haproxy = Child::from_command(command);
    // Up when its first health check — PROXY v2 LOCAL, then a heartbeat —
    // has reached every server.
    for server in servers.iter_mut() {
        if server
            .wait_for_line("(the balancer's own)", Duration::from_secs(10))
            .is_none()
        {
            haproxy.drain();
            panic!(
                "no health check from haproxy; its log:\n{}\nserver log:\n{}",
                haproxy.log(),
                server.log()
            );
        }
    }

    // 1. Every client through, every heartbeat answered, spread by
    //    leastconn, each named by its own address.
    let started = Instant::now();
    let mut swarm = Child::from_command({
        let mut c = star.command(Some(0), env!("CARGO_BIN_EXE_lubdub"));
        c.args([
            "swarm",
            "--connect",
            &front,
            "--clients",
            &CLIENTS.to_string(),
        ])
        .args(["--interval", "200ms", "--duration", "3s", "--json", "-"]);
        c
    });
    let status = swarm.wait_exit(Duration::from_secs(30));
    let json = swarm.stdout_text();
    swarm.drain();
    drain(&mut servers);
    let per_server: Vec<usize> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| swarm_accepts(s, 0, &swarm_ip, &hub(i + 1)))
        .collect();
    eprintln!(
        "haproxy: {CLIENTS} clients through haproxy in {} ms: {} connected, {} replies, {} \
         missing, p99 {} us; leastconn spread {per_server:?}",
        started.elapsed().as_millis(),
        json_number(&json, "connected"),
        json_number(&json, "replies"),
        json_number(&json, "missing_replies"),
        json_number(&json, "p99"),
    );
    assert_eq!(status.code(), Some(0), "{json}\n{}", swarm.log());
    assert_eq!(json_number(&json, "connected"), CLIENTS as u64, "{json}");
    assert_eq!(json_number(&json, "missing_replies"), 0, "{json}");
    assert_eq!(json_number(&json, "reconnects"), 0, "{json}");
    assert_eq!(per_server.iter().sum::<usize>(), CLIENTS, "{per_server:?}");
    for n in &per_server {
        assert!(
            (CLIENTS / 6..=CLIENTS / 2).contains(n),
            "leastconn did not spread: {per_server:?}"
        );
    }

    // 2. A backend dies; its clients come back through HAProxy on the
    //    other two, within the longest backoff plus a margin.
    let marks: Vec<usize> = servers.iter().map(|s| s.seen.len()).collect();
    let mut swarm = Child::from_command({
        let mut c = star.command(Some(0), env!("CARGO_BIN_EXE_lubdub"));
        c.args([
            "swarm",
            "--connect",
            &front,
            "--clients",
            &CLIENTS.to_string(),
        ])
        .args(["--interval", "200ms", "--misses", "10", "--duration", "6s"])
        .args(["--backoff-min", "100ms", "--backoff-max", "1s"])
        .args(["--max-reconnects", &CLIENTS.to_string(), "--json", "-"]);
        c
    });
    let until = Instant::now() + Duration::from_secs(10);
    let count = |servers: &[Child]| -> Vec<usize> {
        servers
            .iter()
            .enumerate()
            .map(|(i, s)| swarm_accepts(s, marks[i], &swarm_ip, &hub(i + 1)))
            .collect()
    };
    while count(&servers).iter().sum::<usize>() < CLIENTS {
        assert!(
            Instant::now() < until,
            "not all {CLIENTS} up: {:?}",
            count(&servers)
        );
        std::thread::sleep(Duration::from_millis(20));
        drain(&mut servers);
    }
    // Heartbeats flow for a moment before the kill.
    std::thread::sleep(Duration::from_millis(500));
    drain(&mut servers);
    let before = count(&servers);
    let victim = 0;
    servers[victim].signal(9);
    let killed = Instant::now();
    servers[victim].wait_exit(Duration::from_secs(5));
    let lost = before[victim];
    let survivors = [1, 2];
    let bound = BACKOFF_MAX + MARGIN;
    let mut back_at = None;
    while killed.elapsed() < bound {
        drain(&mut servers);
        let now = count(&servers);
        let back: usize = survivors.iter().map(|&i| now[i] - before[i]).sum();
        if back >= lost {
            back_at = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = swarm.wait_exit(Duration::from_secs(30));
    let json = swarm.stdout_text();
    swarm.drain();
    drain(&mut servers);
    let after = count(&servers);
    eprintln!(
        "haproxy: killed server 1 with {lost} of {CLIENTS} clients ({before:?}); all of them \
         back on the other two after {} ms (bound {} ms): {after:?}; the swarm reports {} \
         reconnects ({} closed, {} reset), {} missing replies, {} connected at the end",
        back_at.map_or("never".into(), |d| d.as_millis().to_string()),
        bound.as_millis(),
        json_number(&json, "reconnects"),
        json_number(&json, "closed"),
        json_number(&json, "reset"),
        json_number(&json, "missing_replies"),
        json_number(&json, "connected"),
    );
    let Some(back) = back_at else {
        haproxy.drain();
        panic!(
            "not all {lost} clients of the killed server back within {bound:?}: {after:?}\n\
             haproxy:\n{}\nswarm:\n{}",
            haproxy.log(),
            swarm.log()
        );
    };
    assert!(back <= bound);
    assert!(lost > 0, "{before:?}");
    // The replies lost in flight at the kill fail the run (exit 3); it
    // still reports.
    assert!(
        matches!(status.code(), Some(0) | Some(3)),
        "{status:?}\n{}",
        swarm.log()
    );
    assert_eq!(json_number(&json, "reconnects"), lost as u64, "{json}");
    assert_eq!(json_number(&json, "connected"), CLIENTS as u64, "{json}");
    // The survivors' own clients stayed, and the killed one's joined them.
    assert_eq!(
        survivors.iter().map(|&i| after[i]).sum::<usize>(),
        CLIENTS,
        "{after:?}"
    );
    assert!(haproxy.child.try_wait().unwrap().is_none(), "haproxy died");
}
