//! `lubdub server --workers N`: a supervisor and N worker processes.
//!
//! nginx's master/worker model. The supervisor binds the listener once and
//! hands it down; each worker is this same binary re-executed with the same
//! flags, the same single-threaded reactor with its own open-files limit,
//! accepting from the one shared listener. Each says how much room it has
//! in a table they all map (`SharedRoom`); a full worker leaves new
//! connections to the others while any has room, so none is refused while
//! a worker has room — which `SO_REUSEPORT`'s hashing cannot promise: it
//! deals a connection to a full process as readily as to an empty one.
//!
//! The supervisor forwards SIGINT/SIGTERM, waits for the workers and exits
//! 0; restarts a worker that dies, with backoff; passes every worker line
//! on with `worker=K` in it (a `worker` field in JSON); sums the workers' counters into its own
//! `stats` lines and its final `stopped:` line. Its threads (one per
//! worker, reading that worker's log) are off every connection's path.
//!
//! With `--metrics` the supervisor serves `/metrics` itself, from its own
//! small poll (it waits on it instead of sleeping between its rounds):
//! every worker reports its counters once a second, and each series
//! carries `worker="K"`. A worker's series add its dead incarnations'
//! totals to its live one's, so a restart never makes a counter go back.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{info, warn};
use lubdub::server::Config;

/// The most workers one supervisor runs.
const MAX_WORKERS: usize = 4096;

/// A worker that lived shorter than this before it died is restarted after
/// a longer wait each time (from 100 ms, doubling, at most 10 s).
const STABLE: Duration = Duration::from_secs(10);
const FIRST_RESTART: Duration = Duration::from_millis(100);
const MAX_RESTART: Duration = Duration::from_secs(10);

/// `--workers`: a number, or one per core (more if `--max-connections`
/// needs them).
#[derive(Debug, Clone, Copy)]
pub enum Workers {
    Count(usize),
    Auto,
}

/// clap value parser for `--workers`.
pub fn parse(text: &str) -> Result<Workers, String> {
    if text == "auto" {
        return Ok(Workers::Auto);
    }
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(Workers::Count(n)),
        _ => Err(format!("must be auto or a number from 1 to {MAX_WORKERS}")),
    }
}

/// Maps the supervisor's table of room (`FD:SLOTS`) as worker `index`.
pub fn open_room(text: &str, index: usize) -> std::io::Result<lubdub::server::SharedRoom> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("--room {text}"));
    let (fd, slots) = text.split_once(':').ok_or_else(bad)?;
    let fd = fd.parse().map_err(|_| bad())?;
    let slots = slots.parse().map_err(|_| bad())?;
    lubdub::server::SharedRoom::open(fd, slots, index)
}

/// A worker ends with its supervisor, however the supervisor ends (even
/// SIGKILL): the kernel sends it SIGTERM, which drains or stops it.
pub fn die_with_supervisor() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and touches no
    // memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
    }
    // A supervisor that died before the line above sent nothing: this
    // worker was handed to init already, and has nobody to work for.
    // SAFETY: getppid(2) takes no arguments and cannot fail.
    if unsafe { libc::getppid() } == 1 {
        std::process::exit(0);
    }
}

/// The counters of one worker, as its `stats`/`stopped:` lines give them.
type Counters = Vec<(String, u64)>;

/// What the supervisor knows of one worker's counters.
#[derive(Default)]
struct Slot {
    /// From its latest `stats` or `stopped:` line.
    latest: Option<Counters>,
    /// Whether `latest` is its final line.
    finished: bool,
    /// The totals of its earlier, dead incarnations (gauges left out).
    retired: Counters,
    /// The running incarnation has exited (the supervisor reaped it) /
    /// its log has been read to the end; once both, its counters are
    /// retired (see [`retire`]).
    exited: bool,
    read_out: bool,
}

/// Gauges (and their peaks): what is true of a live process, not a total;
/// a dead incarnation's are gone with it.
const GAUGES: [&str; 4] = ["active", "buffered", "peak", "peak_buffered"];

/// How often a worker reports its counters to the supervisor when the user
/// asked for no stats lines: a worker killed outright is counted up to its
/// last report.
const REPORT_EVERY: &str = "1s";
/// Highest of the workers', not their sum.
const MAXIMA: [&str; 1] = ["longest_turn_us"];

/// One running worker.
struct Running {
    index: usize,
    child: Child,
    started: Instant,
}

/// One worker waiting to be started again.
struct Pending {
    index: usize,
    at: Instant,
}

static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Runs the supervisor until a signal stops it and every worker is gone.
pub fn supervise(config: &Config, workers: Workers) -> i32 {
    let room = match lubdub::limits::file_limit() {
        // A worker raises its soft limit to the hard one.
        Ok(limit) => limit.hard.saturating_sub(lubdub::limits::FD_RESERVE).max(1) as usize,
        Err(e) => return super::fail(format_args!("cannot read the open-files limit: {e}")),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = match workers {
        Workers::Count(n) => n,
        Workers::Auto => match config.max_connections {
            Some(total) => cores.max(total.div_ceil(room)).min(MAX_WORKERS),
            None => cores,
        },
    };
    let per_worker = config.max_connections.map(|total| total.div_ceil(n));
    let listener = match bind(config) {
        Ok(listener) => listener,
        Err(e) => return super::fail(format_args!("cannot listen on {}: {e}", config.listen)),
    };
    if let Err(e) = install_signals() {
        return super::fail(format_args!("cannot install signal handlers: {e}"));
    }
    info!(
        "supervisor: {n} workers on {} (room for {} connections each{}); one listener shared",
        listener
            .local_addr()
            .map_or_else(|_| config.listen.to_string(), |a| a.to_string()),
        per_worker.map_or(room, |p| p.min(room)),
        per_worker.map_or(String::new(), |p| format!(", {} in all", p * n)),
    );
    let room = match lubdub::server::SharedRoom::create(n) {
        Ok(room) => room,
        Err(e) => return super::fail(format_args!("cannot make the workers' table of room: {e}")),
    };
    let metrics = match config.metrics {
        Some(addr) => match Scrapes::bind(addr) {
            Ok(scrapes) => Some(scrapes),
            Err(e) => return super::fail(format_args!("cannot serve metrics on {addr}: {e}")),
        },
        None => None,
    };
    // With metrics, every worker reports each second whatever the user's
    // cadence; their own lines are then not passed on (the supervisor's
    // summed line still comes at the user's).
    let report_every = (config.stats_every.is_none() || metrics.is_some()).then_some(REPORT_EVERY);
    let mut argv = worker_args(per_worker, report_every);
    argv.push("--room".into());
    argv.push(format!("{}:{n}", room.as_raw_fd()).into());
    let forward_stats = config.stats_every.is_some() && metrics.is_none();
    let mut metrics = metrics;
    let mut restarts = 0u64;
    let slots: Arc<Mutex<Vec<Slot>>> =
        Arc::new(Mutex::new((0..n).map(|_| Slot::default()).collect()));
    let mut running: Vec<Running> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut delays = vec![FIRST_RESTART; n];
    for index in 0..n {
        match spawn(index, &argv, &listener, &slots, forward_stats) {
            Ok(worker) => running.push(worker),
            Err(e) => {
                stop_all(&mut running, libc::SIGTERM);
                return super::fail(format_args!("cannot start worker {index}: {e}"));
            }
        }
    }
    let mut listener = Some(listener);
    let mut next_stats = config.stats_every.map(|every| Instant::now() + every);
    let mut stopping = 0usize;
    loop {
        match &mut metrics {
            Some(scrapes) => scrapes.serve(Duration::from_millis(20), &|| {
                render(
                    &slots.lock().unwrap_or_else(|e| e.into_inner()),
                    running.len(),
                    restarts,
                )
            }),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
        let signals = SIGNALS.load(Ordering::SeqCst);
        if signals > stopping {
            let signal = LAST_SIGNAL.load(Ordering::SeqCst);
            if stopping == 0 {
                info!(
                    "supervisor: signal {signal}: stopping {} workers",
                    running.len()
                );
                // Its own copy closed: once the workers close theirs, the
                // kernel stops completing handshakes on the port.
                listener = None;
                pending.clear();
            }
            stop_all(&mut running, signal);
            stopping = signals;
            if signals > 1 {
                let _ = writeln!(std::io::stderr(), "second signal: exiting now");
                return 130;
            }
        }
        // Workers that ended: gone for good when stopping, restarted
        // otherwise.
        let mut i = 0;
        while i < running.len() {
            let status = match running[i].child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) | Err(_) => {
                    i += 1;
                    continue;
                }
            };
            let worker = running.swap_remove(i);
            let lived = worker.started.elapsed();
            if stopping > 0 {
                continue;
            }
            retire(&slots, worker.index);
            restarts += 1;
            let delay = &mut delays[worker.index];
            if lived >= STABLE {
                *delay = FIRST_RESTART;
            }
            warn!(
                "supervisor: worker {} (pid {}) exited ({status}) after {}; restarting in {}",
                worker.index,
                worker.child.id(),
                lubdub::duration::format(Duration::from_millis(lived.as_millis() as u64)),
                lubdub::duration::format(*delay)
            );
            pending.push(Pending {
                index: worker.index,
                at: Instant::now() + *delay,
            });
            *delay = (*delay * 2).min(MAX_RESTART);
        }
        if stopping > 0 && running.is_empty() {
            break;
        }
        if let Some(listener) = &listener {
            let now = Instant::now();
            let (due, later): (Vec<Pending>, Vec<Pending>) =
                pending.drain(..).partition(|p| p.at <= now);
            pending = later;
            for p in due {
                match spawn(p.index, &argv, listener, &slots, forward_stats) {
                    Ok(worker) => running.push(worker),
                    Err(e) => {
                        warn!(
                            "supervisor: cannot restart worker {}: {e}; trying again",
                            p.index
                        );
                        pending.push(Pending {
                            index: p.index,
                            at: now + delays[p.index],
                        });
                    }
                }
            }
        }
        if let (Some(at), Some(every)) = (next_stats, config.stats_every) {
            if Instant::now() >= at {
                next_stats = Some(at + every);
                let line = sum(&slots.lock().unwrap_or_else(|e| e.into_inner()));
                info!("stats workers={}/{n} {line}", running.len());
            }
        }
    }
    // The readers have seen every line by the time a worker is reaped,
    // but their threads may not have taken the last one yet.
    std::thread::sleep(Duration::from_millis(100));
    let line = sum(&slots.lock().unwrap_or_else(|e| e.into_inner()));
    info!("stopped: {n} workers; {line}");
    match LAST_SIGNAL.load(Ordering::SeqCst) {
        0 => {}
        signal => info!("exiting on signal {signal}"),
    }
    0
}

/// The listener the workers share: what `Server::bind` would make, with
/// the close-on-exec flag cleared so it is inherited.
fn bind(config: &Config) -> std::io::Result<TcpListener> {
    let listener = lubdub::server::bind_listener(config)?;
    socket2::SockRef::from(&listener).set_cloexec(false)?;
    Ok(listener)
}

/// The worker's command line: the supervisor's own, without `--workers`
/// (and with this worker's share of `--max-connections`, and stats lines
/// for the supervisor if the user asked for none); the worker's index and
/// the listener are added per worker.
fn worker_args(per_worker: Option<usize>, report_every: Option<&str>) -> Vec<OsString> {
    // The supervisor's own: its workers neither run workers, nor take the
    // total's limit, nor serve metrics; their report cadence is set below.
    let mut own = vec!["--workers", "--max-connections", "--metrics"];
    if report_every.is_some() {
        own.push("--stats-every");
    }
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in std::env::args_os().skip(1) {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        if own.contains(&text.as_ref()) {
            skip_value = true;
            continue;
        }
        if own.iter().any(|flag| {
            text.strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
        }) {
            continue;
        }
        out.push(arg);
    }
    if let Some(per) = per_worker {
        out.push("--max-connections".into());
        out.push(per.to_string().into());
    }
    if let Some(every) = report_every {
        out.push("--stats-every".into());
        out.push(every.into());
    }
    out
}

/// Starts worker `index` on the shared listener; a thread passes its log
/// lines on and reads its counters out of them.
fn spawn(
    index: usize,
    argv: &[OsString],
    listener: &TcpListener,
    slots: &Arc<Mutex<Vec<Slot>>>,
    forward_stats: bool,
) -> std::io::Result<Running> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(argv)
        .arg("--worker")
        .arg(index.to_string())
        .arg("--listen-fd")
        .arg(listener.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    info!("supervisor: worker {index} started, pid {}", child.id());
    let stderr = child.stderr.take().expect("stderr was piped");
    let slots = slots.clone();
    std::thread::Builder::new()
        .name(format!("worker-{index}-log"))
        .spawn(move || pass_on(index, stderr, &slots, forward_stats))?;
    Ok(Running {
        index,
        child,
        started: Instant::now(),
    })
}

/// Passes worker `index`'s log lines on with `worker=K` after the level
/// (a `worker` field in a JSON line), its `stats` lines only if the user
/// asked for them, and keeps the counters of its `stats` and `stopped:`
/// lines.
fn pass_on(
    index: usize,
    stderr: impl std::io::Read,
    slots: &Mutex<Vec<Slot>>,
    forward_stats: bool,
) {
    let json = super::logs::is_json();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { return };
        let (counters, finished) = if json {
            let read = super::logs::counters(&line);
            let report = matches!(read, Some((false, _)));
            if forward_stats || !report {
                let line = super::logs::from_worker(index, &line);
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            match read {
                Some((finished, counters)) => (counters, finished),
                None => continue,
            }
        } else {
            let (head, message) = match line.find("] ") {
                Some(at) => line.split_at(at + 2),
                None => ("", line.as_str()),
            };
            let report = message.starts_with("stats ");
            if forward_stats || !report {
                let _ = writeln!(std::io::stderr().lock(), "{head}worker={index} {message}");
            }
            let (counters, finished) = if let Some(rest) = message.strip_prefix("stats ") {
                (rest, false)
            } else if let Some(rest) = message.strip_prefix("stopped: ") {
                (rest.split_once("; ").map_or(rest, |(_, c)| c), true)
            } else {
                continue;
            };
            // The metrics' reader: it also takes the lateness buckets.
            let parsed: Counters = lubdub::metrics::server::Counters::parse(counters).0;
            (parsed, finished)
        };
        let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
        slots[index].latest = Some(counters);
        slots[index].finished = finished;
    }
    // Also on a read error: nothing more will come from this incarnation.
    let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
    slots[index].read_out = true;
    fold_if_over(&mut slots[index]);
}

/// A worker died (the supervisor reaped it): what its incarnation counted
/// stays in the totals (its gauges do not: its connections are gone).
///
/// Its reader thread may not have read its last lines yet (a `stopped:`
/// line written just before the exit, a report just before a kill): the
/// counters are moved to the dead incarnations' totals only once that
/// thread has read to the end too, whichever of the two comes last.
/// Moved at the exit alone, a late line was counted twice, and then lost
/// when the next incarnation's first report replaced it: a counter on
/// /metrics went back.
fn retire(slots: &Mutex<Vec<Slot>>, index: usize) {
    let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
    slots[index].exited = true;
    fold_if_over(&mut slots[index]);
}

/// Once an incarnation has both exited and been read out, moves its
/// counters to the retired totals; the slot is ready for the next one.
fn fold_if_over(slot: &mut Slot) {
    if !(slot.exited && slot.read_out) {
        return;
    }
    slot.exited = false;
    slot.read_out = false;
    if let Some(latest) = slot.latest.take() {
        let kept: Counters = latest
            .into_iter()
            .filter(|(k, _)| !GAUGES.contains(&k.as_str()))
            .collect();
        add(&mut slot.retired, &kept);
    }
    slot.finished = false;
}

/// Adds `from` into `into`, key by key (maxima by maximum).
fn add(into: &mut Counters, from: &Counters) {
    for (key, value) in from {
        match into.iter_mut().find(|(k, _)| k == key) {
            Some((_, total)) if MAXIMA.contains(&key.as_str()) => *total = (*total).max(*value),
            Some((_, total)) => *total += value,
            None => into.push((key.clone(), *value)),
        }
    }
}

/// Every worker's counters summed, as one `key=value …` line.
fn sum(slots: &[Slot]) -> String {
    let mut total = Counters::new();
    for slot in slots {
        add(&mut total, &slot.retired);
        if let Some(latest) = &slot.latest {
            add(&mut total, latest);
        }
    }
    total
        .iter()
        // The histogram's buckets are for /metrics, not the log line.
        .filter(|(k, _)| !k.contains('.'))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every worker's series, labelled `worker="K"`, from the latest report
/// of each plus its dead incarnations' totals; and the supervisor's own.
fn render(slots: &[Slot], running: usize, restarts: u64) -> lubdub::metrics::Families {
    use lubdub::metrics::server::{families, Counters as Series};
    let mut f = lubdub::metrics::Families::new();
    f.gauge(
        "lubdub_workers_running",
        "Worker processes running now.",
        &[],
        running as f64,
    );
    f.counter(
        "lubdub_worker_restarts_total",
        "Workers that died and were started again.",
        &[],
        restarts as f64,
    );
    for (index, slot) in slots.iter().enumerate() {
        let mut total = slot.retired.clone();
        if let Some(latest) = &slot.latest {
            add(&mut total, latest);
        }
        let worker = index.to_string();
        families(&mut f, &[("worker", &worker)], &Series(total));
    }
    f
}

/// The supervisor's metrics endpoint, on a poll of its own that it waits
/// on between its rounds.
struct Scrapes {
    poll: mio::Poll,
    events: mio::Events,
    endpoint: lubdub::metrics::Endpoint,
}

impl Scrapes {
    fn bind(addr: std::net::SocketAddr) -> std::io::Result<Scrapes> {
        let poll = mio::Poll::new()?;
        let endpoint = lubdub::metrics::Endpoint::bind(addr, poll.registry(), mio::Token(0))?;
        info!("metrics on http://{}/metrics", endpoint.local_addr());
        Ok(Scrapes {
            poll,
            events: mio::Events::with_capacity(64),
            endpoint,
        })
    }

    /// Waits up to `wait` for scrapers, answers them, closes those out of
    /// time.
    fn serve(&mut self, wait: Duration, render: &dyn Fn() -> lubdub::metrics::Families) {
        let wait = if self.endpoint.has_work() {
            Duration::ZERO
        } else {
            wait
        };
        if let Err(e) = self.poll.poll(&mut self.events, Some(wait)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                warn!("supervisor: metrics poll failed: {e}");
                std::thread::sleep(wait);
            }
        }
        let now = Instant::now();
        let open = self.endpoint.open();
        for event in self.events.iter() {
            self.endpoint
                .handle_event(self.poll.registry(), event.token(), now, &mut |scrapes| {
                    let mut f = render();
                    lubdub::metrics::scrape_families(&mut f, scrapes, open);
                    f.encode()
                });
        }
        self.endpoint.resume(self.poll.registry(), now);
        self.endpoint.expire(self.poll.registry(), Instant::now());
    }
}

/// Sends `signal` to every running worker.
fn stop_all(running: &mut [Running], signal: i32) {
    for worker in running {
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        unsafe {
            libc::kill(worker.child.id() as libc::pid_t, signal);
        }
    }
}

/// SIGINT and SIGTERM counted for the loop, which forwards them.
fn install_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM] {
        let action = move || {
            LAST_SIGNAL.store(signal, Ordering::SeqCst);
            SIGNALS.fetch_add(1, Ordering::SeqCst);
        };
        // SAFETY: the action only stores to atomics: async-signal-safe.
        unsafe { signal_hook::low_level::register(signal, action) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_but_maxima_and_dead_gauges_do_not() {
        let line = |pairs: &[(&str, u64)]| -> Counters {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let mut slots: Vec<Slot> = (0..2).map(|_| Slot::default()).collect();
        slots[0].latest = Some(line(&[
            ("active", 5),
            ("accepted", 9),
            ("longest_turn_us", 40),
        ]));
        slots[1].latest = Some(line(&[
            ("active", 3),
            ("accepted", 4),
            ("longest_turn_us", 70),
        ]));
        assert_eq!(sum(&slots), "active=8 accepted=13 longest_turn_us=70");
        // Worker 1 dies; its totals stay, its gauges go, and it comes back
        // with fresh counters.
        let slots = Mutex::new(slots);
        retire(&slots, 1);
        slots.lock().unwrap()[1].read_out = true;
        fold_if_over(&mut slots.lock().unwrap()[1]);
        let mut slots = slots.into_inner().unwrap();
        slots[1].latest = Some(line(&[
            ("active", 1),
            ("accepted", 1),
            ("longest_turn_us", 10),
        ]));
        assert_eq!(sum(&slots), "active=6 accepted=14 longest_turn_us=70");
    }

    /// A worker's stderr whose second half comes only after `gap` has run:
    /// the supervisor seeing the exit while the reader has lines to go.
    struct Late<'a> {
        first: &'a [u8],
        gap: Option<Box<dyn FnOnce() + 'a>>,
        rest: &'a [u8],
    }

    impl std::io::Read for Late<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.first.is_empty() {
                return self.first.read(buf);
            }
            if let Some(gap) = self.gap.take() {
                gap();
            }
            self.rest.read(buf)
        }
    }

    #[test]
    fn a_last_line_read_after_the_exit_was_seen_counts_once_and_totals_never_go_back() {
        let slots = Mutex::new(vec![Slot::default()]);
        let heartbeats = |slots: &Mutex<Vec<Slot>>| -> u64 {
            let text = sum(&slots.lock().unwrap());
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix("heartbeats="))
                .map_or(0, |v| v.parse().unwrap())
        };
        // The worker reports 10, writes its last line (12) and exits; the
        // supervisor's try_wait sees the exit before its reader thread has
        // read that line.
        let mut seen = Vec::new();
        pass_on(
            0,
            Late {
                first: b"stats active=1 heartbeats=10\n",
                gap: Some(Box::new(|| {
                    seen.push(heartbeats(&slots));
                    retire(&slots, 0);
                    seen.push(heartbeats(&slots));
                })),
                rest: b"stopped: closed listener and 1 connections; active=1 heartbeats=12\n",
            },
            &slots,
            false,
        );
        seen.push(heartbeats(&slots));
        // Its next incarnation's first report.
        pass_on(0, &b"stats active=0 heartbeats=1\n"[..], &slots, false);
        seen.push(heartbeats(&slots));
        assert_eq!(seen, [10, 10, 12, 13], "heartbeats as a scrape saw them");
    }

    #[test]
    fn workers_is_a_number_in_range_or_auto() {
        assert!(matches!(parse("auto"), Ok(Workers::Auto)));
        assert!(matches!(parse("3"), Ok(Workers::Count(3))));
        for bad in ["0", "4097", "-1", "many", ""] {
            assert!(parse(bad).unwrap_err().contains("1 to 4096"), "{bad}");
        }
    }
}
