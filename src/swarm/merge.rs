//! One report from several: the workers of `swarm --workers`, or reports
//! of swarms run on several machines (`swarm merge`).
//!
//! A merged report is exactly the report one swarm holding every part's
//! connections would have written: counts are summed, the longest of
//! anything is the longest of the parts', and the round-trip, lag and turn
//! histograms are added slot by slot (HDR histograms merge without loss),
//! so every percentile is read from the merged histogram, never averaged
//! from the parts' percentiles. The run lasted as long as its longest part
//! (they ran side by side). The verdict is the same code's, over the merged
//! figures; parts judged by different criteria, or of another mode or
//! interval, are not one run and are refused.
//!
//! A report is read back from its JSON by [`Report::from_json`]; every
//! field it needs must be there and well-formed, and a report without its
//! histograms (one from before they were written) is refused rather than
//! merged inexactly.

use std::time::Duration;

use super::counters::{rtt_histogram, Counters, FailedBy, LostBy, Rtt};
use super::hdr;
use super::json::{self, Value};
use super::report::{json_string, ms, Histograms, Report};
use super::verdict::Criteria;

/// One part of a merged report: what it was given, and what it counted or
/// why it counted nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Its place among the parts (a worker's index).
    pub index: usize,
    /// The file it was read from (`swarm merge`); `None` for a worker.
    pub source: Option<String>,
    /// Connections it was to hold.
    pub clients: u64,
    /// Its main counts, or why it has none (a worker that died).
    pub outcome: Result<PartCounts, String>,
}

/// A part's main counts, as its own report gave them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartCounts {
    /// Connections open when sending stopped.
    pub connected: u64,
    /// Most open at once.
    pub peak_connected: u64,
    /// Connects that failed.
    pub connect_failures: u64,
    /// Connections lost.
    pub reconnects: u64,
    /// Requests sent.
    pub heartbeats_sent: u64,
    /// Replies received.
    pub replies: u64,
    /// Requests never answered.
    pub missing_replies: u64,
    /// Heartbeats still unanswered when the next fell due.
    pub late_replies: u64,
    /// Round trips recorded.
    pub rtt_count: u64,
    /// Whether the part, judged alone, met its target.
    pub ok: bool,
}

impl PartCounts {
    /// The main counts of `report`.
    pub fn of(report: &Report) -> PartCounts {
        let c = &report.counters;
        PartCounts {
            connected: report.connected,
            peak_connected: c.peak_connected,
            connect_failures: c.connect_failures,
            reconnects: c.reconnects,
            heartbeats_sent: c.heartbeats_sent,
            replies: c.replies,
            missing_replies: c.missing_replies,
            late_replies: c.late_replies,
            rtt_count: report.rtt_count,
            ok: report.ok(),
        }
    }
}

impl Part {
    /// `worker 1`, or the file's name.
    pub fn label(&self) -> String {
        match &self.source {
            Some(source) => source.clone(),
            None => format!("worker {}", self.index),
        }
    }

    /// One element of the report's `workers` array.
    pub(super) fn to_json(&self) -> String {
        let source = match &self.source {
            Some(source) => format!("\"source\":{},", json_string(source)),
            None => String::new(),
        };
        let head = format!(
            "{{\"index\":{},{source}\"clients\":{}",
            self.index, self.clients
        );
        match &self.outcome {
            Ok(p) => format!(
                "{head},\"connected\":{},\"peak_connected\":{},\"connect_failures\":{},\"reconnects\":{},\"heartbeats_sent\":{},\"replies\":{},\"missing_replies\":{},\"late_replies\":{},\"rtt_count\":{},\"ok\":{},\"failed\":null}}",
                p.connected,
                p.peak_connected,
                p.connect_failures,
                p.reconnects,
                p.heartbeats_sent,
                p.replies,
                p.missing_replies,
                p.late_replies,
                p.rtt_count,
                p.ok
            ),
            Err(why) => format!("{head},\"failed\":{}}}", json_string(why)),
        }
    }

    /// The summary's line about the parts: each one's connections and
    /// replies (only the failed ones past a dozen parts).
    pub(super) fn summary_line(parts: &[Part]) -> String {
        let failed = parts.iter().filter(|p| p.outcome.is_err()).count();
        let shown: Vec<String> = parts
            .iter()
            .filter(|p| parts.len() <= 12 || p.outcome.is_err())
            .map(|p| match &p.outcome {
                Ok(c) => format!(
                    "{} {}/{} open, {} replies",
                    p.label(),
                    c.connected,
                    p.clients,
                    c.replies
                ),
                Err(why) => format!("{} FAILED: {why}", p.label()),
            })
            .collect();
        let head = match parts.first().and_then(|p| p.source.as_ref()) {
            Some(_) => format!("merged:      {} reports", parts.len()),
            None => format!("workers:     {} processes", parts.len()),
        };
        match (shown.is_empty(), failed) {
            (true, _) => format!("{head}, all reported"),
            _ => format!("{head}: {}", shown.join("; ")),
        }
    }
}

impl Report {
    /// A report of nothing yet, to [`absorb`](Self::absorb) parts into.
    pub fn empty(
        mode: &'static str,
        interval_us: u64,
        flood_depth: u32,
        criteria: Criteria,
    ) -> Report {
        Report {
            target: 0,
            connected: 0,
            churn_pending: 0,
            mode,
            interval_us,
            flood_depth,
            counters: Counters::default(),
            elapsed: Duration::ZERO,
            rtt: Rtt::default(),
            rtt_count: 0,
            rtt_since_mark: None,
            rtt_mean_us: 0.0,
            lag: Rtt::default(),
            turns: Rtt::default(),
            criteria: criteria_as_written(&criteria),
            histograms: Histograms::default(),
            parts: Vec::new(),
        }
    }

    /// Adds `other`'s connections, counts and histograms to this report,
    /// refusing (with a reason on one line) a report that is not part of
    /// the same run. Call [`summarize`](Self::summarize) after the last.
    pub fn absorb(&mut self, other: &Report) -> Result<(), String> {
        if (self.mode, self.interval_us, self.flood_depth)
            != (other.mode, other.interval_us, other.flood_depth)
        {
            return Err(format!(
                "it ran {}, not {}: not one run",
                run_of(other),
                run_of(self)
            ));
        }
        if let Some(field) = differing_criterion(&self.criteria, &other.criteria) {
            return Err(format!(
                "its criteria differ ({field}): the runs were not judged alike"
            ));
        }
        let h = &mut self.histograms;
        for (into, from) in [
            (&mut h.rtt, &other.histograms.rtt),
            (&mut h.lag, &other.histograms.lag),
            (&mut h.turns, &other.histograms.turns),
        ] {
            into.add(from).map_err(|_| {
                "its histograms hold values past the range lubdub records".to_string()
            })?;
        }
        // Marked parts only: one that was never marked has nothing since.
        // Into lubdub's own range, like the others: a copy of the first
        // marked part's would keep its range, which a part read from
        // another writer's file may have narrower, and refuse what a later
        // part adds past it.
        if let Some(from) = &other.histograms.since_mark {
            h.since_mark
                .get_or_insert_with(rtt_histogram)
                .add(from)
                .map_err(|_| {
                    "its histograms hold values past the range lubdub records".to_string()
                })?;
        }
        self.target += other.target;
        self.connected += other.connected;
        self.churn_pending += other.churn_pending;
        self.counters.add(&other.counters);
        self.elapsed = self.elapsed.max(other.elapsed);
        Ok(())
    }

    /// Reads a report back from the JSON a swarm wrote. The reason it is
    /// not one is a phrase for a line that names the file.
    pub fn from_json(text: &str) -> Result<Report, String> {
        let root = json::parse(text).map_err(|e| format!("not JSON: {e}"))?;
        if !matches!(root, Value::Object(_)) {
            return Err("not a swarm report: not a JSON object".to_string());
        }
        let r = Fields(&root);
        let histogram = |key: &str| -> Result<_, String> {
            let text = r
                .get(key)?
                .as_str()
                .ok_or_else(|| format!("\"{key}\" is not a string"))?;
            hdr::decode(text).map_err(|e| format!("\"{key}\" is not a histogram: {e}"))
        };
        // The histograms first: a report from before they were written
        // says so, rather than naming some other field.
        let histograms = Histograms {
            rtt: histogram("rtt_histogram")?,
            lag: histogram("swarm_lag_histogram")?,
            turns: histogram("swarm_turn_histogram")?,
            since_mark: match root.get("rtt_since_mark_histogram") {
                Some(_) => Some(histogram("rtt_since_mark_histogram")?),
                None => None,
            },
        };
        let by_reason = |key: &str| -> Result<Fields, String> {
            let v = r.get(key)?;
            match v {
                Value::Object(_) => Ok(Fields(v)),
                _ => Err(format!("\"{key}\" is not an object")),
            }
        };
        let failed = by_reason("connect_failures_by_reason")?;
        let lost = by_reason("reconnects_by_reason")?;
        let counters = Counters {
            peak_connected: r.u64("peak_connected")?,
            connect_failures: r.u64("connect_failures")?,
            connect_failures_by: FailedBy {
                refused: failed.u64("refused")?,
                timeout: failed.u64("timeout")?,
                unreachable: failed.u64("unreachable")?,
                no_port: failed.u64("no_port")?,
                other: failed.u64("other")?,
            },
            slow_connects: r.u64("slow_connects")?,
            stuck_connects: r.u64("stuck_connects")?,
            longest_connect_ms: r.u64("longest_connect_ms")?,
            reconnects: r.u64("reconnects")?,
            reconnects_by: LostBy {
                closed: lost.u64("closed")?,
                rejected: lost.u64("rejected")?,
                idle: lost.u64("idle")?,
                reset: lost.u64("reset")?,
                silent: lost.u64("silent")?,
                protocol: lost.u64("protocol")?,
                io: lost.u64("io")?,
            },
            churned: r.u64("churned")?,
            heartbeats_sent: r.u64("heartbeats_sent")?,
            skipped_sends: r.u64("skipped_sends")?,
            replies: r.u64("replies")?,
            untimed_replies: r.u64("untimed_replies")?,
            unexpected_replies: r.u64("unexpected_replies")?,
            missing_replies: r.u64("missing_replies")?,
            late_replies: r.u64("late_replies")?,
            protocol_errors: r.u64("protocol_errors")?,
            dropped_bytes: r.u64("dropped_bytes")?,
            other_frames: r.u64("other_frames")?,
            pauses: r.u64("pauses")?,
            paused_ms: r.u64("paused_ms")?,
            longest_pause_ms: r.u64("longest_pause_ms")?,
            stall_adjusted_replies: r.u64("stall_adjusted_replies")?,
            sockopt_errors: r.u64("sockopt_errors")?,
            ..Counters::default()
        };
        let mode = match r.get("mode")?.as_str() {
            Some("interval") => "interval",
            Some("flood") => "flood",
            _ => return Err("\"mode\" is neither \"interval\" nor \"flood\"".to_string()),
        };
        let criteria = by_reason("criteria")?;
        let wait = criteria.get("max_connect_wait_ms")?;
        let criteria = Criteria {
            max_p99: criteria.ms("max_p99_ms")?,
            max_stall: criteria.ms("max_stall_ms")?,
            max_late: criteria.u64("max_late")?,
            max_connect_failures: criteria.u64("max_connect_failures")?,
            max_reconnects: criteria.u64("max_reconnects")?,
            max_connect_wait: match wait {
                Value::Null => None,
                _ => Some(criteria.ms("max_connect_wait_ms")?),
            },
        };
        let elapsed = r
            .get("elapsed_s")?
            .as_f64()
            .filter(|s| (0.0..1e12).contains(s));
        let elapsed = elapsed.ok_or("\"elapsed_s\" is not a number of seconds")?;
        let mut report = Report {
            target: r.u64("target")?,
            connected: r.u64("connected")?,
            churn_pending: r.u64("churn_pending")?,
            mode,
            // Reports older than interval_us carry whole milliseconds.
            interval_us: match r.get("interval_us") {
                Ok(_) => r.u64("interval_us")?,
                Err(_) => r.u64("interval_ms")?.saturating_mul(1000),
            },
            flood_depth: u32::try_from(r.u64("flood_depth")?)
                .map_err(|_| "\"flood_depth\" is out of range".to_string())?,
            counters,
            elapsed: Duration::from_secs_f64(elapsed),
            criteria,
            histograms,
            ..Report::empty(mode, 0, 0, Criteria::default())
        };
        report.summarize();
        Ok(report)
    }
}

/// The criteria as a report's JSON writes them: durations to the
/// microsecond, so that criteria read back compare equal to the ones given.
fn criteria_as_written(c: &Criteria) -> Criteria {
    let us = |d: Duration| Duration::from_micros(d.as_micros().min(u64::MAX as u128) as u64);
    Criteria {
        max_p99: us(c.max_p99),
        max_stall: us(c.max_stall),
        max_connect_wait: c.max_connect_wait.map(us),
        ..*c
    }
}

/// The first criterion two reports were judged by differently, as
/// `max_p99_ms 200 against 100`.
fn differing_criterion(a: &Criteria, b: &Criteria) -> Option<String> {
    let fields = |c: &Criteria| {
        [
            ("max_p99_ms", ms(c.max_p99)),
            ("max_stall_ms", ms(c.max_stall)),
            ("max_late", c.max_late.to_string()),
            ("max_connect_failures", c.max_connect_failures.to_string()),
            ("max_reconnects", c.max_reconnects.to_string()),
            (
                "max_connect_wait_ms",
                c.max_connect_wait.map_or("null".to_string(), ms),
            ),
        ]
    };
    fields(a)
        .into_iter()
        .zip(fields(b))
        .find(|(x, y)| x.1 != y.1)
        .map(|((name, x), (_, y))| format!("{name} {x} against {y}"))
}

fn run_of(r: &Report) -> String {
    match r.mode {
        "flood" => format!("flood depth {}", r.flood_depth),
        _ => format!(
            "a heartbeat every {}",
            crate::duration::format(Duration::from_micros(r.interval_us))
        ),
    }
}

/// The members of one JSON object, each looked up by name with a reason
/// when it is missing or of the wrong kind.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    fn get(&self, key: &str) -> Result<&Value, String> {
        self.0.get(key).ok_or_else(|| format!("no \"{key}\" field"))
    }

    fn u64(&self, key: &str) -> Result<u64, String> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| format!("\"{key}\" is not a whole number"))
    }

    /// A duration written in milliseconds (to the microsecond).
    fn ms(&self, key: &str) -> Result<Duration, String> {
        let ms = self.get(key)?.as_f64();
        ms.filter(|ms| (0.0..1e12).contains(ms))
            .map(|ms| Duration::from_micros((ms * 1000.0).round() as u64))
            .ok_or_else(|| format!("\"{key}\" is not a number of milliseconds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    fn report(values: &[u64], connected: u64) -> Report {
        let mut report = Report::empty("interval", 1_000_000, 0, Criteria::default());
        report.target = 10;
        report.connected = connected;
        report.elapsed = Duration::from_millis(20_500);
        report.counters.peak_connected = connected;
        report.counters.heartbeats_sent = values.len() as u64;
        report.counters.replies = values.len() as u64;
        report.counters.reconnects_by.idle = 1;
        report.counters.longest_connect_ms = connected;
        for &v in values {
            report.histograms.rtt.record(v).unwrap();
            report.histograms.turns.record(v / 10 + 1).unwrap();
        }
        report.summarize();
        report
    }

    #[test]
    fn a_report_reads_back_as_it_was_written() {
        let mut original = report(&[100, 200, 300_000], 9);
        original.criteria.max_p99 = Duration::from_micros(1_500);
        original.criteria.max_connect_wait = Some(Duration::from_millis(400));
        original.counters.connect_failures_by.no_port = 3;
        let back = Report::from_json(&original.to_json()).unwrap();
        assert_eq!(back, original);
        assert_eq!(back.to_json(), original.to_json());
    }

    /// Reports written before `interval_us` carry the interval in whole
    /// milliseconds alone: `swarm merge` still reads them.
    #[test]
    fn a_report_without_interval_us_reads_its_milliseconds() {
        let original = report(&[100, 200], 9);
        let json = original.to_json();
        assert!(json.contains("\"interval_ms\":1000,\"interval_us\":1000000,"));
        let old = json.replace("\"interval_us\":1000000,", "");
        let back = Report::from_json(&old).unwrap();
        assert_eq!(back.interval_us, 1_000_000);
        // A sub-millisecond interval is exact in interval_us only.
        let mut fine = report(&[100], 1);
        fine.interval_us = 1_500;
        let json = fine.to_json();
        assert!(
            json.contains("\"interval_ms\":1,\"interval_us\":1500,"),
            "{json}"
        );
        assert_eq!(Report::from_json(&json).unwrap().interval_us, 1_500);
    }

    #[test]
    fn merging_sums_counts_and_reads_percentiles_from_the_merged_histogram() {
        let fast: Vec<u64> = (1..=990).collect();
        let slow: Vec<u64> = (1..=10).map(|i| 50_000 + i).collect();
        let (a, b) = (report(&fast, 10), report(&slow, 8));
        let mut merged = Report::empty("interval", 1_000_000, 0, Criteria::default());
        merged.absorb(&a).unwrap();
        merged.absorb(&b).unwrap();
        merged.summarize();
        assert_eq!(merged.target, 20);
        assert_eq!(merged.connected, 18);
        assert_eq!(merged.counters.replies, 1000);
        assert_eq!(merged.counters.reconnects_by.idle, 2);
        assert_eq!(merged.counters.longest_connect_ms, 10);
        assert_eq!(merged.rtt_count, 1000);
        // 1 % of the merged round trips were slow: p99 is a fast one, p99.9
        // a slow one — neither part's percentiles would say so.
        let mut expect = rtt_histogram();
        expect.add(&a.histograms.rtt).unwrap();
        expect.add(&b.histograms.rtt).unwrap();
        assert_eq!(merged.rtt, Rtt::of(&expect));
        assert!(merged.rtt.p99 < 1_000, "{:?}", merged.rtt);
        assert!(merged.rtt.p999 > 50_000, "{:?}", merged.rtt);
        assert_eq!(merged.elapsed, Duration::from_millis(20_500));
        // The verdict is the single swarm's, over the merged figures.
        assert_eq!(
            merged.failure().unwrap(),
            "only 18 of 20 connections were open at the end (peak 18, 0 connect failures)"
        );
    }

    #[test]
    fn round_trips_since_a_mark_read_back_and_merge_whatever_the_order() {
        let mut marked = report(&[100, 50_000], 10);
        let mut since = rtt_histogram();
        since.record(50_000).unwrap();
        marked.histograms.since_mark = Some(since);
        marked.summarize();
        let back = Report::from_json(&marked.to_json()).unwrap();
        assert_eq!(back, marked);
        // A part whose histogram another writer made with a narrower range
        // (a few milliseconds) is merged like the round trips, into
        // lubdub's own range: first or last, the merge is the same.
        let mut narrow = report(&[300], 10);
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000, 3).unwrap();
        h.record(300).unwrap();
        narrow.histograms.rtt = h.clone();
        narrow.histograms.since_mark = Some(h);
        narrow.summarize();
        let plain = report(&[400], 10);
        let mut counts = Vec::new();
        for order in [[&narrow, &plain, &marked], [&marked, &plain, &narrow]] {
            let mut merged = Report::empty("interval", 1_000_000, 0, Criteria::default());
            for part in order {
                merged.absorb(part).unwrap();
            }
            merged.summarize();
            counts.push(merged.rtt_since_mark);
        }
        assert_eq!(counts[0], counts[1]);
        assert_eq!(counts[0].unwrap().1, 2);
    }

    #[test]
    fn parts_of_other_runs_are_refused_naming_the_difference() {
        let a = report(&[1], 10);
        let mut b = report(&[1], 10);
        b.criteria.max_late = 5;
        let mut merged = a.clone();
        assert_eq!(
            merged.absorb(&b).unwrap_err(),
            "its criteria differ (max_late 0 against 5): the runs were not judged alike"
        );
        let mut c = report(&[1], 10);
        c.mode = "flood";
        c.flood_depth = 16;
        assert_eq!(
            merged.absorb(&c).unwrap_err(),
            "it ran flood depth 16, not a heartbeat every 1s: not one run"
        );
    }

    #[test]
    fn a_worker_that_died_is_the_swarm_s_own_failure_and_listed() {
        let mut merged = report(&[1, 2], 10);
        merged.parts = vec![
            Part {
                index: 0,
                source: None,
                clients: 10,
                outcome: Ok(PartCounts::of(&merged)),
            },
            Part {
                index: 1,
                source: None,
                clients: 10,
                outcome: Err("killed by signal 9".to_string()),
            },
        ];
        assert_eq!(
            merged.failure().unwrap(),
            "worker 1 (10 of the 20 clients) failed: killed by signal 9; its clients are not in this report"
        );
        assert!(merged.failed_by_swarm_only());
        let json = merged.to_json();
        assert!(
            json.contains(",\"workers\":[{\"index\":0,\"clients\":10,\"connected\":10,"),
            "{json}"
        );
        assert!(
            json.contains(
                "{\"index\":1,\"clients\":10,\"failed\":\"killed by signal 9\"}],\"ok\":false,"
            ),
            "{json}"
        );
        json::parse(&json).unwrap();
        let summary = merged.summary();
        assert!(
            summary.contains("workers:     2 processes: worker 0 10/10 open, 2 replies; worker 1 FAILED: killed by signal 9"),
            "{summary}"
        );
    }

    #[test]
    fn a_report_without_what_a_merge_needs_says_what_is_missing() {
        let good = report(&[1, 2], 10).to_json();
        let without = |key: &str| {
            let at = good.find(&format!("\"{key}\":")).unwrap();
            let end = at + good[at..].find(",\"").unwrap() + 1;
            format!("{}{}", &good[..at], &good[end..])
        };
        assert_eq!(
            Report::from_json(&without("rtt_histogram")).unwrap_err(),
            "no \"rtt_histogram\" field"
        );
        assert_eq!(
            Report::from_json(&without("replies")).unwrap_err(),
            "no \"replies\" field"
        );
        let broken = good.replace("\"rtt_histogram\":\"HISTEw", "\"rtt_histogram\":\"HISTEx");
        assert!(Report::from_json(&broken)
            .unwrap_err()
            .starts_with("\"rtt_histogram\" is not a histogram"));
        assert!(Report::from_json("not json")
            .unwrap_err()
            .starts_with("not JSON"));
        assert_eq!(
            Report::from_json("[1]").unwrap_err(),
            "not a swarm report: not a JSON object"
        );
        let negative = good.replace("\"replies\":2", "\"replies\":-2");
        assert_eq!(
            Report::from_json(&negative).unwrap_err(),
            "\"replies\" is not a whole number"
        );
    }
}
