//! The live status line. Each line covers exactly the window since the
//! line before it — replies per second, replies gone missing, late replies
//! and the p99 round trip of that window — so a stall shows in the lines
//! that span it and is not averaged into the whole run; the summary at the
//! end keeps the whole-run figures.

use std::fmt;
use std::time::{Duration, Instant};

use super::counters::{human_list, Counters, Rtt, Rtts};

/// One status line's worth of figures.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Time since the start.
    pub elapsed: Duration,
    /// The window this line covers (since the previous line).
    pub window: Duration,
    /// The connection target.
    pub target: u64,
    /// Totals so far (connections open, connecting and reconnects are
    /// read from here: they are states, not events of the window).
    pub counters: Counters,
    /// Replies per second in the window.
    pub replies_per_s: f64,
    /// Requests given up as missing in the window.
    pub missing: u64,
    /// Heartbeats found unanswered when the next fell due, in the window.
    pub late: u64,
    /// Round-trip percentiles of the window's replies.
    pub rtt: Rtt,
    /// The last line of the run: sending stops after it.
    pub last: bool,
}

impl fmt::Display for Snapshot {
    /// `12.0s  9876/10000 up  124 connecting  3 reconnects (silent 3)  10012 replies/s  0 missing  0 late  p99 412us`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        let reasons = match c.reconnects {
            0 => String::new(),
            _ => format!(" ({})", human_list(&c.reconnects_by.fields())),
        };
        write!(
            f,
            "{:>6.1}s  {}/{} up  {} connecting  {} reconnects{reasons}  {:.0} replies/s  {} missing  {} late  p99 {}us",
            self.elapsed.as_secs_f64(),
            c.connected,
            self.target,
            c.connecting,
            c.reconnects,
            self.replies_per_s,
            self.missing,
            self.late,
            self.rtt.p99
        )
    }
}

/// Where the previous line left off.
pub(super) struct Window {
    since: Instant,
    counters: Counters,
}

impl Window {
    pub fn new(start: Instant) -> Window {
        Window {
            since: start,
            counters: Counters::default(),
        }
    }

    /// The line for the window ending `now`; starts the next window.
    pub fn close(
        &mut self,
        now: Instant,
        start: Instant,
        target: u64,
        totals: Counters,
        rtts: &mut Rtts,
    ) -> Snapshot {
        let window = now.saturating_duration_since(self.since);
        let secs = window.as_secs_f64();
        let replies = totals.replies - self.counters.replies;
        let snapshot = Snapshot {
            elapsed: now.saturating_duration_since(start),
            window,
            target,
            counters: totals,
            replies_per_s: if secs > 0.0 {
                replies as f64 / secs
            } else {
                0.0
            },
            missing: totals.missing_replies - self.counters.missing_replies,
            late: totals.late_replies - self.counters.late_replies,
            rtt: Rtt::of(&rtts.window),
            last: false,
        };
        rtts.close_window();
        self.since = now;
        self.counters = totals;
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_covers_only_its_own_window() {
        let start = Instant::now();
        let mut window = Window::new(start);
        let mut rtts = Rtts::new();
        // A stall in the first window: slow round trips, a missing reply.
        rtts.record(3_000_000);
        let mut totals = Counters {
            replies: 10,
            missing_replies: 1,
            ..Counters::default()
        };
        let first = window.close(start + Duration::from_secs(5), start, 1, totals, &mut rtts);
        assert_eq!(first.missing, 1);
        assert!(first.rtt.p99 >= 2_990_000, "{first:?}");
        assert_eq!(first.replies_per_s, 2.0);
        // The next window is healthy, and says so: the stall does not pin
        // its p99, and its replies per second are its own.
        rtts.record(300);
        totals.replies = 60;
        let second = window.close(start + Duration::from_secs(10), start, 1, totals, &mut rtts);
        assert_eq!(second.missing, 0);
        assert!(second.rtt.p99 < 1_000, "{second:?}");
        assert_eq!(second.replies_per_s, 10.0);
        assert_eq!(second.window, Duration::from_secs(5));
        assert!(Rtt::of(rtts.total()).max >= 2_990_000, "the run keeps it");
    }
}
