//! The live status line. Each line covers exactly the window since the
//! line before it — replies per second, replies gone missing, late replies
//! and the p99 round trip of that window — so a stall shows in the lines
//! that span it and is not averaged into the whole run; the summary at the
//! end keeps the whole-run figures.

use std::fmt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::counters::{human_list, json_object, rtt_histogram, Counters, LostBy, Rtt, Rtts};
use super::hdr;
use super::json::{self, Value};

/// One status line's worth of figures.
#[derive(Debug, Clone)]
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
    /// The window's round trips, whence `rtt`: status lines of several
    /// workers merge exactly.
    pub window_rtts: Histogram<u64>,
    /// The last line of the run: sending stops after it.
    pub last: bool,
}

impl Snapshot {
    /// One line of JSON, what a worker tells its parent: the figures the
    /// line shows, and the window's histogram.
    pub fn to_json(&self) -> String {
        let c = &self.counters;
        format!(
            "{{\"elapsed_ms\":{},\"window_ms\":{},\"target\":{},\"connected\":{},\"connecting\":{},\"reconnects\":{},\"reconnects_by_reason\":{},\"replies_per_s\":{:.3},\"missing\":{},\"late\":{},\"last\":{},\"rtt_histogram\":\"{}\"}}",
            self.elapsed.as_millis(),
            self.window.as_millis(),
            self.target,
            c.connected,
            c.connecting,
            c.reconnects,
            json_object(&c.reconnects_by.fields()),
            self.replies_per_s,
            self.missing,
            self.late,
            self.last,
            hdr::encode(&self.window_rtts)
        )
    }

    /// Reads back what [`to_json`](Self::to_json) wrote.
    pub fn from_json(text: &str) -> Result<Snapshot, String> {
        let v = json::parse(text).map_err(|e| e.to_string())?;
        let n = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("no whole number \"{key}\""))
        };
        let by = v
            .get("reconnects_by_reason")
            .ok_or("no \"reconnects_by_reason\"")?;
        let window_rtts = v
            .get("rtt_histogram")
            .and_then(Value::as_str)
            .ok_or("no \"rtt_histogram\"")
            .map(hdr::decode)?
            .map_err(|e| e.to_string())?;
        Ok(Snapshot {
            elapsed: Duration::from_millis(n(&v, "elapsed_ms")?),
            window: Duration::from_millis(n(&v, "window_ms")?),
            target: n(&v, "target")?,
            counters: Counters {
                connected: n(&v, "connected")?,
                connecting: n(&v, "connecting")?,
                reconnects: n(&v, "reconnects")?,
                reconnects_by: LostBy {
                    closed: n(by, "closed")?,
                    rejected: n(by, "rejected")?,
                    idle: n(by, "idle")?,
                    reset: n(by, "reset")?,
                    silent: n(by, "silent")?,
                    protocol: n(by, "protocol")?,
                    io: n(by, "io")?,
                },
                ..Counters::default()
            },
            replies_per_s: v
                .get("replies_per_s")
                .and_then(Value::as_f64)
                .ok_or("no \"replies_per_s\"")?,
            missing: n(&v, "missing")?,
            late: n(&v, "late")?,
            rtt: Rtt::of(&window_rtts),
            window_rtts,
            last: v
                .get("last")
                .and_then(Value::as_bool)
                .ok_or("no \"last\"")?,
        })
    }

    /// One line for several swarms' lines of the same window (the workers'
    /// k-th lines): states and rates summed, the window's round trips
    /// merged, its p99 read from them.
    pub fn merge(parts: &[Snapshot]) -> Snapshot {
        let mut merged = Snapshot {
            elapsed: Duration::ZERO,
            window: Duration::ZERO,
            target: 0,
            counters: Counters::default(),
            replies_per_s: 0.0,
            missing: 0,
            late: 0,
            rtt: Rtt::default(),
            window_rtts: rtt_histogram(),
            last: !parts.is_empty(),
        };
        for part in parts {
            merged.elapsed = merged.elapsed.max(part.elapsed);
            merged.window = merged.window.max(part.window);
            merged.target += part.target;
            merged.counters.add(&part.counters);
            merged.replies_per_s += part.replies_per_s;
            merged.missing += part.missing;
            merged.late += part.late;
            // Values past the range are recorded at its top, so a window
            // histogram always fits another.
            let _ = merged.window_rtts.add(&part.window_rtts);
            merged.last &= part.last;
        }
        merged.rtt = Rtt::of(&merged.window_rtts);
        merged
    }
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

/// Where the previous line left off, and the line itself, made once and
/// written over at every status line: a line allocates nothing.
pub(super) struct Window {
    since: Instant,
    counters: Counters,
    line: Snapshot,
}

impl Window {
    pub fn new(start: Instant) -> Window {
        Window {
            since: start,
            counters: Counters::default(),
            line: Snapshot::merge(&[]),
        }
    }

    /// The line for the window ending `now` (the run's `last`, or not);
    /// starts the next window.
    pub fn close(
        &mut self,
        now: Instant,
        start: Instant,
        target: u64,
        totals: Counters,
        rtts: &mut Rtts,
        last: bool,
    ) -> &Snapshot {
        let window = now.saturating_duration_since(self.since);
        let secs = window.as_secs_f64();
        let replies = totals.replies - self.counters.replies;
        let line = &mut self.line;
        line.elapsed = now.saturating_duration_since(start);
        line.window = window;
        line.target = target;
        line.counters = totals;
        line.replies_per_s = if secs > 0.0 {
            replies as f64 / secs
        } else {
            0.0
        };
        line.missing = totals.missing_replies - self.counters.missing_replies;
        line.late = totals.late_replies - self.counters.late_replies;
        line.rtt = Rtt::of(&rtts.window);
        // Same bounds: a copy of the counts, no allocation, cannot fail.
        let _ = line.window_rtts.set_to(&rtts.window);
        line.last = last;
        rtts.close_window();
        self.since = now;
        self.counters = totals;
        &self.line
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
        let first = window
            .close(
                start + Duration::from_secs(5),
                start,
                1,
                totals,
                &mut rtts,
                false,
            )
            .clone();
        assert_eq!(first.missing, 1);
        assert!(first.rtt.p99 >= 2_990_000, "{first:?}");
        assert_eq!(first.replies_per_s, 2.0);
        // The next window is healthy, and says so: the stall does not pin
        // its p99, and its replies per second are its own.
        rtts.record(300);
        totals.replies = 60;
        let second = window
            .close(
                start + Duration::from_secs(10),
                start,
                1,
                totals,
                &mut rtts,
                false,
            )
            .clone();
        assert_eq!(second.missing, 0);
        assert!(second.rtt.p99 < 1_000, "{second:?}");
        assert_eq!(second.replies_per_s, 10.0);
        assert_eq!(second.window, Duration::from_secs(5));
        assert!(Rtt::of(rtts.total()).max >= 2_990_000, "the run keeps it");
    }

    #[test]
    fn workers_lines_travel_as_json_and_merge_into_one() {
        let start = Instant::now();
        let mut lines = Vec::new();
        for (connected, rtt) in [(90, 300), (100, 40_000)] {
            let mut rtts = Rtts::new();
            for _ in 0..99 {
                rtts.record(rtt);
            }
            let totals = Counters {
                connected,
                reconnects: 1,
                reconnects_by: LostBy {
                    silent: 1,
                    ..LostBy::default()
                },
                replies: 99,
                ..Counters::default()
            };
            let snapshot = Window::new(start)
                .close(
                    start + Duration::from_secs(1),
                    start,
                    100,
                    totals,
                    &mut rtts,
                    true,
                )
                .clone();
            let back = Snapshot::from_json(&snapshot.to_json()).unwrap();
            assert_eq!(back.to_string(), snapshot.to_string());
            assert_eq!(back.window_rtts, snapshot.window_rtts);
            lines.push(back);
        }
        let merged = Snapshot::merge(&lines);
        assert_eq!(
            merged.to_string(),
            "   1.0s  190/200 up  0 connecting  2 reconnects (silent 2)  198 replies/s  0 missing  0 late  p99 40031us"
        );
        assert!(merged.last);
        assert!(Snapshot::from_json("{}").is_err());
    }
}
