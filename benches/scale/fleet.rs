//! The processes a scale run starts and what it reads off them: one
//! `lubdub server --workers auto`, one `lubdub swarm --workers auto` per
//! step of the ramp, and the kernel's own counters.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::procstat;

pub const BIN: &str = env!("CARGO_BIN_EXE_lubdub");

/// A process group this benchmark started, killed whole when dropped.
pub struct Group(pub Child);

impl Group {
    /// Starts `lubdub ARGS` in a process group of its own, its stdout to
    /// `/dev/null` and its stderr (logs and status lines) piped, for the
    /// caller to read.
    pub fn spawn(args: &[String]) -> Group {
        let child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn lubdub");
        Group(child)
    }

    /// Copies the group's stderr into `log`, line by line, on a thread,
    /// handing each line to `each` first.
    pub fn tee(&mut self, log: &Path, mut each: impl FnMut(&str) + Send + 'static) {
        let stderr = self.0.stderr.take().expect("piped");
        let mut file = std::io::BufWriter::new(std::fs::File::create(log).expect("log file"));
        std::thread::spawn(move || {
            use std::io::Write;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                each(&line);
                let _ = writeln!(file, "{line}");
                let _ = file.flush();
            }
        });
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM to the group's leader (once: a second signal makes lubdub
    /// exit at once, without its report).
    pub fn terminate(&self) {
        // SAFETY: kill(2) on a process this benchmark started.
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
    }

    /// SIGTERM to the group's leader, then waits up to `limit` for it.
    pub fn stop(&mut self, limit: Duration) -> bool {
        self.terminate();
        self.wait(limit)
    }

    /// Waits up to `limit` for the group's leader to exit.
    pub fn wait(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this benchmark created.
        unsafe {
            libc::kill(-(self.pid() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// Every process in the tree under `pid`, `pid` included.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            all.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        i += 1;
    }
    all
}

/// CPU seconds (user and system) of every process in the trees under `pids`.
pub fn cpu(pids: &[u32]) -> f64 {
    pids.iter()
        .flat_map(|&p| tree(p))
        .filter_map(|p| procstat::cpu_seconds(p).ok())
        .sum()
}

/// Resident memory of every process in the tree under `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| procstat::memory(p).ok())
        .map(|m| m.rss_kib)
        .sum()
}

/// Kernel-wide figures: slab (KiB), TCP socket-buffer pages, loopback drops.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel {
    pub slab_kib: u64,
    pub tcp_pages: u64,
    pub drops: u64,
}

pub fn kernel() -> Kernel {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let slab_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let tcp_pages = sockstat
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "mem").nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let softnet = std::fs::read_to_string("/proc/net/softnet_stat").unwrap_or_default();
    let drops = softnet
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .sum();
    Kernel {
        slab_kib,
        tcp_pages,
        drops,
    }
}

/// A `key=value` counter from a log line.
pub fn counter(line: &str, key: &str) -> Option<u64> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse().ok())
}

/// What the server's log has said so far, read as it grows.
#[derive(Default)]
pub struct ServerLog {
    offset: u64,
    partial: String,
    /// The supervisor's last summed stats line.
    pub total: String,
    /// Each worker's last stats line, by worker number.
    pub workers: std::collections::BTreeMap<u32, String>,
    /// Evictions of peers from `watch`, with when the benchmark read them.
    pub evicted: Vec<(Instant, String)>,
    /// The supervisor's final `stopped:` line.
    pub stopped: String,
    /// Worker restarts the supervisor logged.
    pub restarts: u64,
}

impl ServerLog {
    /// Reads what the log gained since the last call.
    pub fn update(&mut self, path: &Path, watch: &str) {
        let Ok(mut file) = std::fs::File::open(path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut text = String::new();
        let Ok(n) = file.read_to_string(&mut text) else {
            return;
        };
        self.offset += n as u64;
        let now = Instant::now();
        self.partial.push_str(&text);
        let complete = match self.partial.rfind('\n') {
            Some(i) => i + 1,
            None => return,
        };
        let lines: String = self.partial.drain(..complete).collect();
        for line in lines.lines() {
            if line.contains("] stats workers=") {
                self.total = line.to_string();
            } else if let Some(rest) = line.split("] worker=").nth(1) {
                if rest.contains(" stats active=") {
                    if let Some(k) = rest.split(' ').next().and_then(|k| k.parse().ok()) {
                        self.workers.insert(k, line.to_string());
                    }
                } else if !watch.is_empty() && rest.contains(&format!("evicted peer={watch}:")) {
                    self.evicted.push((now, line.to_string()));
                }
            } else if line.contains("] stopped: ") {
                self.stopped = line.to_string();
            } else if line.contains("; restarting in ") {
                self.restarts += 1;
            }
        }
    }

    pub fn total(&self, key: &str) -> u64 {
        counter(&self.total, key).unwrap_or(0)
    }
}

/// One `lubdub swarm --workers auto`, its status lines read by a thread.
pub struct Swarm {
    pub group: Group,
    pub json: PathBuf,
    pub clients: u64,
    /// Clients up, from its last status line.
    pub up: Arc<AtomicU64>,
    /// The worst status-window p99 (µs) since `holding` was set.
    pub hold_p99_us: Arc<AtomicU64>,
}

impl Swarm {
    /// `lubdub swarm --clients CLIENTS ARGS --json DIR/scale-NAME.json`,
    /// its stderr copied to `DIR/scale-NAME.log`.
    pub fn start(
        name: &str,
        dir: &Path,
        clients: u64,
        args: &[String],
        holding: &Arc<AtomicBool>,
    ) -> Swarm {
        let json = dir.join(format!("scale-{name}.json"));
        let _ = std::fs::remove_file(&json);
        let mut all: Vec<String> = vec!["swarm".into(), "--clients".into(), clients.to_string()];
        all.extend(args.iter().cloned());
        all.extend(["--status-every".into(), "5s".into(), "--json".into()]);
        all.push(json.to_string_lossy().into_owned());
        let args = all;
        let mut group = Group::spawn(&args);
        let up = Arc::new(AtomicU64::new(0));
        let hold_p99_us = Arc::new(AtomicU64::new(0));
        let (up2, p99, holding) = (up.clone(), hold_p99_us.clone(), holding.clone());
        group.tee(&dir.join(format!("scale-{name}.log")), move |line| {
            // Status: "  25.0s  200000/200000 up  0 connecting … p99 1970us"
            if !line.contains(" up ") || !line.contains(" connecting ") {
                return;
            }
            if let Some(n) = line
                .split_whitespace()
                .find_map(|w| w.split_once('/'))
                .and_then(|(n, _)| n.parse().ok())
            {
                up2.store(n, Ordering::SeqCst);
            }
            if holding.load(Ordering::SeqCst) {
                if let Some(us) = line
                    .split("p99 ")
                    .nth(1)
                    .and_then(|r| r.trim().strip_suffix("us"))
                    .and_then(|v| v.parse().ok())
                {
                    p99.fetch_max(us, Ordering::SeqCst);
                }
            }
        });
        Swarm {
            group,
            json,
            clients,
            up,
            hold_p99_us,
        }
    }

    pub fn up(&self) -> u64 {
        self.up.load(Ordering::SeqCst)
    }
}

/// An nftables table that drops everything from and to one address: peers
/// cut silently, as a dead machine or a pulled cable cuts them. Removed
/// when dropped.
pub struct Cut {
    table: &'static str,
}

impl Cut {
    pub fn new(ip: &str) -> Result<Cut, String> {
        let table = "lubdub_scale_cut";
        let _ = nft(&format!("delete table ip {table}"));
        let script = format!(
            "add table ip {table}\n\
             add chain ip {table} input {{ type filter hook input priority -300; }}\n\
             add rule ip {table} input ip saddr {ip} drop\n\
             add rule ip {table} input ip daddr {ip} drop\n"
        );
        nft(&script)?;
        Ok(Cut { table })
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = nft(&format!("delete table ip {}", self.table));
    }
}

fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| format!("nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The kernel's per-CPU softirq threads (`ksoftirqd/N`): when packet
/// processing outgrows its budget at the end of an interrupt or a
/// `send`, the rest waits for these, scheduled like any other thread.
pub fn ksoftirqd() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("ksoftirqd/"))
        })
        .collect()
}
