//! Driving `lubdub swarm` as the load: one process per swarm, pinned to the
//! load CPU, its JSON report read back by key.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::json;
use crate::servers::{log_tail, Kind, Server, Tools, LOAD_CPU};

/// What one swarm process does.
#[derive(Debug, Clone)]
pub struct Load {
    pub clients: usize,
    pub interval: Duration,
    pub flood: Option<u32>,
    pub duration: Duration,
    pub connect_rate: u32,
    pub source_addrs: Option<&'static str>,
}

/// A running swarm.
pub struct Swarm {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
    pub started: Instant,
    duration: Duration,
}

/// What a finished swarm reported.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Exited 0 ("met its target") with a JSON report.
    pub ok: bool,
    /// How it ended, for the notes: exit status and where its log is.
    pub status: String,
    /// Its `--json -` output.
    pub json: String,
}

impl Report {
    /// A number from the swarm's report.
    pub fn get(&self, path: &[&str]) -> Option<f64> {
        json::number(&self.json, path)
    }
}

/// The sum of a field over several swarms, or None if any lacks it.
pub fn sum(reports: &[Report], key: &str) -> Option<f64> {
    reports.iter().map(|r| r.get(&[key])).sum()
}

/// Hex of bytes, as `--request-hex` wants it.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Swarm {
    /// Starts a swarm against `server`.
    pub fn spawn(
        tools: &Tools,
        server: &Server,
        load: &Load,
        label: &str,
    ) -> Result<Swarm, String> {
        let mut cmd = tools.pinned(LOAD_CPU, &tools.swarm);
        cmd.arg("swarm")
            .arg("--connect")
            .arg(server.addr.to_string())
            .arg("--clients")
            .arg(load.clients.to_string())
            .arg("--connect-rate")
            .arg(load.connect_rate.to_string())
            .arg("--interval")
            .arg(lubdub::duration::format(load.interval))
            .arg("--duration")
            .arg(lubdub::duration::format(load.duration))
            .args(["--json", "-", "--log-level", "warn"]);
        if let Some(depth) = load.flood {
            cmd.arg("--flood").arg(depth.to_string());
        }
        if let Some(range) = load.source_addrs {
            cmd.arg("--source-addrs").arg(range);
        }
        if server.kind == Kind::Redis {
            let (request, reply) = server.kind.exchange();
            cmd.arg("--request-hex")
                .arg(hex(request))
                .arg("--reply-hex")
                .arg(hex(reply));
        }
        let name = format!("{label}-{}-swarm", server.kind.name());
        let (out, out_path) = tools.log_file(&format!("{name}.json"))?;
        let (err, err_path) = tools.log_file(&format!("{name}.log"))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().map_err(|e| format!("spawn swarm: {e}"))?;
        Ok(Swarm {
            child: Some(child),
            out: out_path,
            err: err_path,
            started: Instant::now(),
            duration: load.duration,
        })
    }

    /// True once the process has ended.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Waits for the swarm to end by itself (its duration plus a grace
    /// period for closing thousands of sockets), killing it past that.
    pub fn finish(mut self) -> Report {
        let grace = Duration::from_secs(30);
        let deadline = self.started + self.duration + grace;
        let mut child = self.child.take().expect("finish is called once");
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("killed: still running {grace:?} past its duration"));
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        let json = std::fs::read_to_string(&self.out).unwrap_or_default();
        let has_json = json.trim_start().starts_with('{');
        let (ok, status) = match status {
            Ok(s) if s.success() && has_json => (true, "exit 0".to_string()),
            // The swarm says why it missed its target; else its log does.
            Ok(s) => match json::text(&json, "failure") {
                Some(why) => (false, format!("{s}: {why}")),
                None => (false, format!("{s}: {}", log_tail(&self.err))),
            },
            Err(why) => (false, why),
        };
        Report { ok, status, json }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
