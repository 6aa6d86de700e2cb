//! The faults of a chaos run, made for real against the server process:
//! SIGSTOP and SIGCONT, busy threads sharing the server's one core, connect
//! bursts. Each is recorded as it actually happened, in the run's clock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::peers::{self, Clock, Record};
use super::plan::Fault;

/// What the faults did, in microseconds of the run's clock.
#[derive(Debug, Default)]
pub struct FaultLog {
    /// From just before SIGSTOP to just after SIGCONT: the span covers the
    /// whole stop, never less.
    pub stops: Vec<(i64, i64)>,
    pub hogs: Vec<(i64, i64)>,
    pub bursts: Vec<(i64, u64)>,
    /// Every burst connection.
    pub burst_records: Vec<Record>,
    burst_threads: Vec<JoinHandle<Vec<Record>>>,
}

impl FaultLog {
    /// Waits for bursts still running and keeps their records.
    pub fn join_bursts(&mut self) {
        for t in self.burst_threads.drain(..) {
            self.burst_records.extend(t.join().expect("burst thread"));
        }
    }
}

/// The server process the faults are made against.
pub struct Target {
    pub pid: i32,
    pub addr: SocketAddr,
    pub clock: Clock,
}

impl Target {
    /// Runs `fault`; `wait(until)` is called for every wait, so the caller
    /// keeps sampling and draining the server's log meanwhile.
    pub fn run(&self, fault: Fault, log: &mut FaultLog, wait: &mut dyn FnMut(i64)) {
        let us = |d: Duration| d.as_micros() as i64;
        match fault {
            Fault::Stop { len, .. } => self.stop(len, log, wait),
            Fault::Pair {
                first,
                gap,
                second,
                burst,
                ..
            } => {
                self.stop(first, log, wait);
                wait(self.clock.now() + us(gap));
                if burst > 0 {
                    // The burst lands inside the second stop: its
                    // handshakes queue while the server cannot accept.
                    self.signal(libc::SIGSTOP);
                    let began = self.clock.now();
                    self.burst(burst, log);
                    wait(began + us(second));
                    self.signal(libc::SIGCONT);
                    log.stops.push((began, self.clock.now()));
                } else {
                    self.stop(second, log, wait);
                }
            }
            Fault::Hog {
                len, threads, core, ..
            } => {
                let began = self.clock.now();
                let saved = pin_tasks(self.pid, Some(core as usize));
                let stop = Arc::new(AtomicBool::new(false));
                let hogs: Vec<_> = (0..threads)
                    .map(|_| {
                        let stop = stop.clone();
                        std::thread::spawn(move || {
                            set_affinity(0, &[core as usize]);
                            while !stop.load(Ordering::Relaxed) {
                                std::hint::spin_loop();
                            }
                        })
                    })
                    .collect();
                wait(began + us(len));
                stop.store(true, Ordering::Relaxed);
                for h in hogs {
                    let _ = h.join();
                }
                restore_tasks(self.pid, &saved);
                log.hogs.push((began, self.clock.now()));
            }
            Fault::Burst { connects, .. } => self.burst(connects, log),
        }
    }

    fn stop(&self, len: Duration, log: &mut FaultLog, wait: &mut dyn FnMut(i64)) {
        let began = self.clock.now();
        self.signal(libc::SIGSTOP);
        wait(began + len.as_micros() as i64);
        self.signal(libc::SIGCONT);
        log.stops.push((began, self.clock.now()));
    }

    fn burst(&self, connects: u64, log: &mut FaultLog) {
        let (addr, clock) = (self.addr, self.clock);
        log.bursts.push((clock.now(), connects));
        log.burst_threads.push(
            std::thread::Builder::new()
                .name("chaos-burst".into())
                .spawn(move || peers::burst(addr, clock, connects))
                .expect("spawn burst"),
        );
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our child,
        // not yet reaped (the Child that owns it is alive).
        unsafe { libc::kill(self.pid, signal) };
    }
}

/// Every thread of `pid` (a single-threaded reactor, but the runtime may
/// have helpers) pinned to `core`; returns each thread's previous mask.
fn pin_tasks(pid: i32, core: Option<usize>) -> Vec<(i32, libc::cpu_set_t)> {
    let mut saved = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return saved;
    };
    for entry in dir.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: cpu_set_t is a plain bit array; zeroes are valid.
        let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: writes at most size_of::<cpu_set_t>() into `old`.
        let rc = unsafe {
            libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut old)
        };
        if rc == 0 {
            saved.push((tid, old));
            if let Some(core) = core {
                set_affinity(tid, &[core]);
            }
        }
    }
    saved
}

fn restore_tasks(_pid: i32, saved: &[(i32, libc::cpu_set_t)]) {
    for (tid, mask) in saved {
        // SAFETY: reads the mask we saved; a thread gone meanwhile is ESRCH.
        unsafe { libc::sched_setaffinity(*tid, std::mem::size_of::<libc::cpu_set_t>(), mask) };
    }
}

/// Pins thread `tid` (0: the calling thread) to `cores`.
fn set_affinity(tid: i32, cores: &[usize]) {
    // SAFETY: cpu_set_t is a plain bit array; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cores {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
