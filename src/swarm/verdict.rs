//! When a run has failed. The criteria are explicit: each is a field here
//! and a flag on the command line, and the report names every one a run
//! broke.
//!
//! Some failures need no threshold — a connection still down at the end, a
//! request that never got its reply, a reply nobody asked for, a heartbeat
//! the swarm itself was too late to send — and always fail. The others have
//! a bound whose default a user can loosen or tighten.
//!
//! Two failures are the swarm's own, not the server's: heartbeats it was
//! too far behind to send, and a stall of its own longer than `max_stall`
//! (kept from running, or one turn of its loop taking that long). A load
//! generator that was not running for longer than the stall it would fail
//! a server for cannot vouch for the run, so the run fails — but says
//! whose fault it was, and the command line exits with a code of its own
//! when no failure is the server's.

use std::time::Duration;

use super::report::{ms, Report};
use crate::duration::format;

/// The bounds a run must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Criteria {
    /// Largest p99 round trip over the run (default 200 ms).
    pub max_p99: Duration,
    /// Longest any single round trip may take (default 1 s). In flood mode,
    /// where a stalled server also stops new requests from being sent, this
    /// is what shows the stall.
    pub max_stall: Duration,
    /// Heartbeats allowed to be still unanswered when the next falls due
    /// (default 0).
    pub max_late: u64,
    /// Connects allowed to fail (default 0).
    pub max_connect_failures: u64,
    /// Established connections allowed to be lost (default 0); connections
    /// closed on purpose (churn) do not count.
    pub max_reconnects: u64,
    /// Longest a connect may be in flight, from its first SYN to done, the
    /// swarm's own stalls taken out; a connect slower than this, or still
    /// hanging this long when the run ends, fails the run. `None`: the
    /// shorter of the connect timeout and two intervals (see
    /// [`SwarmConfig::connect_wait_bound`](super::SwarmConfig::connect_wait_bound)),
    /// and a report always carries the bound it was judged by.
    pub max_connect_wait: Option<Duration>,
}

impl Default for Criteria {
    /// A heartbeat that takes 200 ms at p99, or a second once, or any
    /// connection trouble at all, is something a user load-testing a server
    /// wants to hear about rather than read "ok" over.
    fn default() -> Criteria {
        Criteria {
            max_p99: Duration::from_millis(200),
            max_stall: Duration::from_secs(1),
            max_late: 0,
            max_connect_failures: 0,
            max_reconnects: 0,
            max_connect_wait: None,
        }
    }
}

/// One way a run missed its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// For a human, on one line.
    pub reason: String,
    /// The swarm's own doing (it fell behind, or stalled), not the server's.
    pub swarm_own: bool,
}

impl Criteria {
    /// Every way `report` missed its target, the swarm's own first (when it
    /// stalled, what follows was measured by a harness that was not always
    /// running); empty when it met it.
    pub fn failures(&self, report: &Report) -> Vec<Failure> {
        let own = self.own_failures(report).into_iter().map(|reason| Failure {
            reason,
            swarm_own: true,
        });
        let server = self
            .server_failures(report)
            .into_iter()
            .map(|reason| Failure {
                reason,
                swarm_own: false,
            });
        own.chain(server).collect()
    }

    /// A worker of the swarm's died, the swarm fell behind, or it stalled
    /// for longer than it would let a server stall.
    fn own_failures(&self, report: &Report) -> Vec<String> {
        let c = &report.counters;
        let mut out = Vec::new();
        // A worker that died took its connections' figures with it: the
        // rest of the report is judged without them, and the hole is the
        // swarm's, not the server's.
        let clients: u64 = report.parts.iter().map(|p| p.clients).sum();
        for part in &report.parts {
            if let Err(why) = &part.outcome {
                out.push(format!(
                    "{} ({} of the {clients} clients) failed: {why}; its clients are not in this report",
                    part.label(),
                    part.clients
                ));
            }
        }
        // In microseconds, as the bound may be given (`--max-stall 500us`).
        let own_stall_us = c
            .longest_pause_ms
            .saturating_mul(1000)
            .max(report.turns.max);
        if u128::from(own_stall_us) > self.max_stall.as_micros() {
            out.push(format!(
                "the swarm itself stalled {:.1} s, longer than --max-stall {} (kept from running {} times, {} ms in all, the longest {} ms; its longest turn {} ms): a load generator that was not running cannot vouch for the run — this is not the server's doing",
                own_stall_us as f64 / 1e6,
                format(self.max_stall),
                c.pauses,
                c.paused_ms,
                c.longest_pause_ms,
                report.turns.max / 1000
            ));
        }
        if c.skipped_sends > 0 {
            out.push(format!(
                "the swarm itself fell behind: {} heartbeats skipped, its own lag up to {} ms — \
                 the load generator, not the server, was the bottleneck",
                c.skipped_sends,
                report.lag.max / 1000
            ));
        }
        out
    }

    /// What the server did.
    fn server_failures(&self, report: &Report) -> Vec<String> {
        let c = &report.counters;
        let mut out = Vec::new();
        let open = report.connected + report.churn_pending;
        if open < report.target {
            out.push(format!(
                "only {open} of {} connections were open at the end (peak {}, {} connect failures)",
                report.target, c.peak_connected, c.connect_failures
            ));
        }
        if c.missing_replies > 0 {
            out.push(format!(
                "{} of {} requests got no reply",
                c.missing_replies, c.heartbeats_sent
            ));
        }
        if c.unexpected_replies > 0 {
            out.push(format!(
                "{} replies came that no request asked for",
                c.unexpected_replies
            ));
        }
        let over = |what: &str, n: u64, max: u64, flag: &str| {
            (n > max).then(|| format!("{n} {what} (at most {max} allowed by --{flag})"))
        };
        out.extend(over(
            "connections lost",
            c.reconnects,
            self.max_reconnects,
            "max-reconnects",
        ));
        out.extend(over(
            "connects failed",
            c.connect_failures,
            self.max_connect_failures,
            "max-connect-failures",
        ));
        out.extend(over(
            "late replies",
            c.late_replies,
            self.max_late,
            "max-late",
        ));
        let late_connects = c.slow_connects + c.stuck_connects;
        if late_connects > 0 {
            let bound = match self.max_connect_wait {
                Some(wait) => format!("--max-connect-wait {}", format(wait)),
                None => "the connect-wait bound".to_string(),
            };
            out.push(format!(
                "{late_connects} connects were not done within {bound}: {} still hanging when the run ended, {} done late; the longest hung {} ms",
                c.stuck_connects, c.slow_connects, c.longest_connect_ms
            ));
        }
        let us = |d: Duration| d.as_micros() as u64;
        if report.rtt.max > us(self.max_stall) {
            out.push(format!(
                "a reply took {} ms: a stall longer than --max-stall {}",
                ms(Duration::from_micros(report.rtt.max)),
                format(self.max_stall)
            ));
        }
        if report.rtt.p99 > us(self.max_p99) {
            out.push(format!(
                "p99 round trip {} ms is over --max-p99 {}",
                ms(Duration::from_micros(report.rtt.p99)),
                format(self.max_p99)
            ));
        }
        out
    }
}
