//! What a swarm measured: the final report, its summary and its JSON.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::counters::{human_list, json_object, rtt_histogram, Counters, Rtt};
use super::hdr;
use super::merge::Part;
use super::verdict::{Criteria, Failure};

/// The end-of-run report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Connections asked for.
    pub target: u64,
    /// Connections open when sending stopped.
    pub connected: u64,
    /// Connections closed on purpose (churn) and still waiting to reconnect
    /// when sending stopped: down, but not for the server's fault.
    pub churn_pending: u64,
    /// `"interval"` or `"flood"`.
    pub mode: &'static str,
    /// Heartbeat interval in microseconds (the liveness unit in flood
    /// mode), exact for an interval such as `1500us`.
    pub interval_us: u64,
    /// Requests kept in flight per connection in flood mode (0 otherwise).
    pub flood_depth: u32,
    /// Totals.
    pub counters: Counters,
    /// From start to the end of the grace period.
    pub elapsed: Duration,
    /// Round-trip percentiles. In interval mode each is measured from when
    /// its heartbeat was due, so the swarm's own lateness is in it; in flood
    /// mode (a closed loop) from when the request was sent. Either way a
    /// stall of the swarm's own (kept from running) is taken out of the
    /// round trips that span it.
    pub rtt: Rtt,
    /// Round trips recorded.
    pub rtt_count: u64,
    /// Round-trip percentiles and count from the mark on (a SIGUSR1 to
    /// the swarm, say once a ramp is done), when it was marked.
    pub rtt_since_mark: Option<(Rtt, u64)>,
    /// Mean round trip in microseconds.
    pub rtt_mean_us: f64,
    /// How late the swarm sent its heartbeats against their schedule, in
    /// microseconds: its own lag, to tell a slow server from a slow load
    /// generator (zero in flood mode).
    pub lag: Rtt,
    /// How long the turns of the swarm's loop took, in microseconds, in
    /// either mode: the longest an arrived reply or a due deadline waited
    /// to be seen.
    pub turns: Rtt,
    /// What the run was judged by.
    pub criteria: Criteria,
    /// The histograms the figures above were read from, carried whole in
    /// the JSON so that reports merge exactly.
    pub histograms: Histograms,
    /// The processes (`--workers`) or reports (`swarm merge`) this report
    /// merges, each with its own counts; empty for a single swarm.
    pub parts: Vec<Part>,
}

/// A run's histograms, in microseconds (see [`Report`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Histograms {
    /// Round trips.
    pub rtt: Histogram<u64>,
    /// The swarm's lag behind its heartbeat schedule.
    pub lag: Histogram<u64>,
    /// The turns of the swarm's loop.
    pub turns: Histogram<u64>,
    /// Round trips from the mark on, when the swarm was marked.
    pub since_mark: Option<Histogram<u64>>,
}

impl Default for Histograms {
    /// Empty, with the bounds a swarm records with.
    fn default() -> Histograms {
        Histograms {
            rtt: rtt_histogram(),
            lag: rtt_histogram(),
            turns: rtt_histogram(),
            since_mark: None,
        }
    }
}

impl Report {
    /// Sets the percentiles, the count and the mean from the histograms.
    pub fn summarize(&mut self) {
        let h = &self.histograms;
        self.rtt = Rtt::of(&h.rtt);
        self.rtt_count = h.rtt.len();
        self.rtt_mean_us = if h.rtt.is_empty() { 0.0 } else { h.rtt.mean() };
        self.lag = Rtt::of(&h.lag);
        self.turns = Rtt::of(&h.turns);
        self.rtt_since_mark = h.since_mark.as_ref().map(|h| (Rtt::of(h), h.len()));
    }

    /// The JSON fields of the round trips since the mark, or nothing.
    fn since_mark_json(&self) -> String {
        match (&self.rtt_since_mark, &self.histograms.since_mark) {
            (Some((rtt, count)), Some(h)) => format!(
                "\"rtt_since_mark_us\":{{\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{},\"count\":{count}}},\"rtt_since_mark_histogram\":\"{}\",",
                rtt.p50,
                rtt.p99,
                rtt.p999,
                rtt.max,
                hdr::encode(h)
            ),
            _ => String::new(),
        }
    }

    /// Whether the run met its target: see [`Criteria`].
    pub fn ok(&self) -> bool {
        self.failures().is_empty()
    }

    /// Every way the run missed its target, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.judged().into_iter().map(|f| f.reason).collect()
    }

    /// Every way the run missed its target, with whose doing each was.
    pub fn judged(&self) -> Vec<Failure> {
        self.criteria.failures(self)
    }

    /// Whether the run failed only for the swarm's own doing (it stalled or
    /// fell behind), none of it the server's.
    pub fn failed_by_swarm_only(&self) -> bool {
        let all = self.judged();
        !all.is_empty() && all.iter().all(|f| f.swarm_own)
    }

    /// Why the run missed its target, on one line, if it did.
    pub fn failure(&self) -> Option<String> {
        let all = self.failures();
        (!all.is_empty()).then(|| all.join("; "))
    }

    /// Whether round trips come from a closed loop (flood mode), where a
    /// stalled server also holds back the requests behind it: then the
    /// percentiles measure throughput's service time and understate a
    /// stall, and only `max` (bounded by `max_stall`) shows it.
    pub fn closed_loop(&self) -> bool {
        self.mode == "flood"
    }

    /// Replies per second over the whole run.
    pub fn replies_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.counters.replies as f64 / secs
        } else {
            0.0
        }
    }

    /// One JSON object on one line, written by hand (no serde in the tree).
    pub fn to_json(&self) -> String {
        let c = &self.counters;
        let mut out = String::with_capacity(1024);
        let failure = match self.failure() {
            Some(reason) => json_string(&reason),
            None => "null".to_string(),
        };
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            concat!(
                "{{\"target\":{},\"connected\":{},\"peak_connected\":{},",
                "\"connect_failures\":{},\"connect_failures_by_reason\":{},",
                "\"slow_connects\":{},\"stuck_connects\":{},\"longest_connect_ms\":{},",
                "\"reconnects\":{},\"reconnects_by_reason\":{},\"churned\":{},\"churn_pending\":{},",
                "\"heartbeats_sent\":{},\"skipped_sends\":{},",
                "\"replies\":{},\"untimed_replies\":{},\"unexpected_replies\":{},",
                "\"missing_replies\":{},\"late_replies\":{},",
                "\"protocol_errors\":{},\"dropped_bytes\":{},\"other_frames\":{},",
                "\"pauses\":{},\"paused_ms\":{},\"longest_pause_ms\":{},\"stall_adjusted_replies\":{},",
                "\"sockopt_errors\":{},",
                "\"elapsed_s\":{:.3},\"replies_per_s\":{:.1},",
                "\"rtt_us\":{{\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{},\"mean\":{:.1},\"count\":{}}},",
                "\"rtt_histogram\":\"{}\",{}",
                "\"closed_loop\":{},\"swarm_lag_us\":{{\"p50\":{},\"p99\":{},\"max\":{}}},",
                "\"swarm_lag_histogram\":\"{}\",",
                "\"swarm_turn_us\":{{\"p50\":{},\"p99\":{},\"max\":{}}},",
                "\"swarm_turn_histogram\":\"{}\",",
                "\"mode\":\"{}\",\"interval_ms\":{},\"interval_us\":{},\"flood_depth\":{},",
                "\"criteria\":{{\"max_p99_ms\":{},\"max_stall_ms\":{},\"max_late\":{},",
                "\"max_connect_failures\":{},\"max_reconnects\":{},\"max_connect_wait_ms\":{}}},",
                "{}",
                "\"ok\":{},\"swarm_own_failure\":{},\"failure\":{}}}"
            ),
            self.target,
            self.connected,
            c.peak_connected,
            c.connect_failures,
            json_object(&c.connect_failures_by.fields()),
            c.slow_connects,
            c.stuck_connects,
            c.longest_connect_ms,
            c.reconnects,
            json_object(&c.reconnects_by.fields()),
            c.churned,
            self.churn_pending,
            c.heartbeats_sent,
            c.skipped_sends,
            c.replies,
            c.untimed_replies,
            c.unexpected_replies,
            c.missing_replies,
            c.late_replies,
            c.protocol_errors,
            c.dropped_bytes,
            c.other_frames,
            c.pauses,
            c.paused_ms,
            c.longest_pause_ms,
            c.stall_adjusted_replies,
            c.sockopt_errors,
            self.elapsed.as_secs_f64(),
            self.replies_per_s(),
            self.rtt.p50,
            self.rtt.p99,
            self.rtt.p999,
            self.rtt.max,
            self.rtt_mean_us,
            self.rtt_count,
            hdr::encode(&self.histograms.rtt),
            self.since_mark_json(),
            self.closed_loop(),
            self.lag.p50,
            self.lag.p99,
            self.lag.max,
            hdr::encode(&self.histograms.lag),
            self.turns.p50,
            self.turns.p99,
            self.turns.max,
            hdr::encode(&self.histograms.turns),
            self.mode,
            // Whole milliseconds, as reports have always carried it;
            // interval_us is exact.
            self.interval_us / 1000,
            self.interval_us,
            self.flood_depth,
            ms(self.criteria.max_p99),
            ms(self.criteria.max_stall),
            self.criteria.max_late,
            self.criteria.max_connect_failures,
            self.criteria.max_reconnects,
            self.criteria.max_connect_wait.map_or("null".to_string(), ms),
            self.parts_json(),
            failure == "null",
            self.failed_by_swarm_only(),
            failure,
        );
        out
    }

    /// `"workers":[…],` for a merged report, nothing for a single swarm.
    fn parts_json(&self) -> String {
        if self.parts.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self.parts.iter().map(Part::to_json).collect();
        format!("\"workers\":[{}],", parts.join(","))
    }

    /// A few lines for a human.
    pub fn summary(&self) -> String {
        let c = &self.counters;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "connections: {}/{} open at the end, peak {}, {} connect failures ({}), {} reconnects ({})",
            self.connected,
            self.target,
            c.peak_connected,
            c.connect_failures,
            human_list(&c.connect_failures_by.fields()),
            c.reconnects,
            human_list(&c.reconnects_by.fields()),
        );
        let _ = writeln!(
            out,
            "connects:    the longest in flight {} ms (bound {}), {} done late, {} still hanging at the end",
            c.longest_connect_ms,
            self.criteria
                .max_connect_wait
                .map_or("none".to_string(), crate::duration::format),
            c.slow_connects,
            c.stuck_connects,
        );
        if !self.parts.is_empty() {
            let _ = writeln!(out, "{}", Part::summary_line(&self.parts));
        }
        if c.churned > 0 {
            let _ = writeln!(
                out,
                "churn:       {} connections closed on purpose to reopen, {} of them still reopening at the end",
                c.churned, self.churn_pending
            );
        }
        let _ = writeln!(
            out,
            "requests:    {} sent, {} replies ({:.1}/s over {:.1}s), {} missing, {} late",
            c.heartbeats_sent,
            c.replies,
            self.replies_per_s(),
            self.elapsed.as_secs_f64(),
            c.missing_replies,
            c.late_replies
        );
        let _ = writeln!(
            out,
            "round trip:  p50 {}us  p99 {}us  p99.9 {}us  max {}us  ({} samples{})",
            self.rtt.p50,
            self.rtt.p99,
            self.rtt.p999,
            self.rtt.max,
            self.rtt_count,
            if self.closed_loop() {
                "; closed loop: this measures throughput, not latency — a stall holds \
                 back the requests behind it, and only max shows it"
            } else {
                ", each from when its heartbeat was due"
            }
        );
        if let Some((rtt, count)) = &self.rtt_since_mark {
            let _ = writeln!(
                out,
                "since mark:  p50 {}us  p99 {}us  p99.9 {}us  max {}us  ({count} samples from the mark on)",
                rtt.p50, rtt.p99, rtt.p999, rtt.max
            );
        }
        if !self.closed_loop() {
            let _ = writeln!(
                out,
                "swarm lag:   p50 {}us  p99 {}us  max {}us behind schedule, {} heartbeats skipped",
                self.lag.p50, self.lag.p99, self.lag.max, c.skipped_sends
            );
        }
        let _ = writeln!(
            out,
            "swarm turns: p50 {}us  p99 {}us  max {}us per turn of its loop (the longest a reply or deadline waited to be seen)",
            self.turns.p50, self.turns.p99, self.turns.max
        );
        if c.protocol_errors + c.dropped_bytes + c.other_frames + c.unexpected_replies > 0 {
            let _ = writeln!(
                out,
                "protocol:    {} errors, {} bytes dropped, {} other frames, {} unexpected replies",
                c.protocol_errors, c.dropped_bytes, c.other_frames, c.unexpected_replies
            );
        }
        if c.untimed_replies > 0 {
            let _ = writeln!(
                out,
                "untimed:     {} replies answered requests sent while their connection's stamp ring was full",
                c.untimed_replies
            );
        }
        if c.pauses > 0 {
            let _ = writeln!(
                out,
                "stalls:      the swarm itself stalled {} times, {}ms in all, the longest {}ms; taken out of the {} round trips that spanned them",
                c.pauses, c.paused_ms, c.longest_pause_ms, c.stall_adjusted_replies
            );
        }
        let failures = self.judged();
        if failures.is_empty() {
            let _ = writeln!(out, "result:      ok");
        }
        for failure in failures {
            let whose = if failure.swarm_own {
                " (the swarm's own)"
            } else {
                ""
            };
            let _ = writeln!(out, "result:      FAILED{whose}: {}", failure.reason);
        }
        out
    }
}

/// Milliseconds, exact to the microsecond: `200`, `0.5`, `1.25`.
pub(super) fn ms(d: Duration) -> String {
    let us = d.as_micros();
    match us % 1000 {
        0 => (us / 1000).to_string(),
        frac => format!("{}.{:03}", us / 1000, frac)
            .trim_end_matches('0')
            .to_string(),
    }
}

/// A JSON string literal (see [`json::write_string`](super::json::write_string)).
pub(super) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    super::json::write_string(&mut out, text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::counters::rtt_histogram;

    fn report() -> Report {
        let mut hist = rtt_histogram();
        for v in 1..=1000 {
            hist.record(v).unwrap();
        }
        let mut report = Report {
            target: 10,
            connected: 10,
            churn_pending: 0,
            mode: "interval",
            interval_us: 1_000_000,
            flood_depth: 0,
            counters: Counters {
                peak_connected: 10,
                heartbeats_sent: 200,
                replies: 200,
                ..Counters::default()
            },
            elapsed: Duration::from_secs(20),
            rtt: Rtt::default(),
            rtt_count: 0,
            rtt_since_mark: None,
            rtt_mean_us: 0.0,
            lag: Rtt::default(),
            turns: Rtt::default(),
            criteria: Criteria::default(),
            histograms: Histograms {
                rtt: hist,
                ..Histograms::default()
            },
            parts: Vec::new(),
        };
        report.summarize();
        report
    }

    #[test]
    fn json_has_every_field_and_balanced_braces() {
        let json = report().to_json();
        for field in [
            "target",
            "connected",
            "peak_connected",
            "connect_failures",
            "slow_connects",
            "stuck_connects",
            "longest_connect_ms",
            "max_connect_wait_ms",
            "reconnects",
            "heartbeats_sent",
            "replies",
            "missing_replies",
            "protocol_errors",
            "elapsed_s",
            "replies_per_s",
            "rtt_us",
            "p50",
            "p99",
            "p999",
            "max",
        ] {
            assert!(json.contains(&format!("\"{field}\":")), "{field} in {json}");
        }
        assert!(json.contains("\"replies_per_s\":10.0"), "{json}");
        assert!(
            json.contains("\"ok\":true,\"swarm_own_failure\":false,\"failure\":null}"),
            "{json}"
        );
        assert_eq!(json.matches('{').count(), json.matches('}').count());
        assert!(!json.contains('\n'));
    }

    #[test]
    fn percentiles_are_ordered() {
        let rtt = report().rtt;
        assert!(rtt.p50 <= rtt.p99 && rtt.p99 <= rtt.p999 && rtt.p999 <= rtt.max);
        assert!((495..=505).contains(&rtt.p50), "{rtt:?}");
        assert_eq!(Rtt::of(&rtt_histogram()), Rtt::default());
    }

    #[test]
    fn failure_names_the_shortfall() {
        let mut r = report();
        r.connected = 7;
        assert!(!r.ok());
        assert!(r.failure().unwrap().contains("only 7 of 10"));
        assert!(r
            .to_json()
            .contains("\"ok\":false,\"swarm_own_failure\":false,\"failure\":\"only 7 of 10"));
        let mut r = report();
        r.counters.missing_replies = 3;
        assert_eq!(r.failure().unwrap(), "3 of 200 requests got no reply");
        assert!(r.summary().contains("FAILED: 3 of 200"));
        let mut r = report();
        r.criteria.max_connect_wait = Some(Duration::from_millis(400));
        r.counters.stuck_connects = 70;
        r.counters.longest_connect_ms = 6_500;
        let failure = r.failure().unwrap();
        assert!(
            failure.starts_with(
                "70 connects were not done within --max-connect-wait 400ms: 70 still hanging"
            ),
            "{failure}"
        );
        assert!(failure.contains("the longest hung 6500 ms"), "{failure}");
        assert!(r.to_json().contains("\"max_connect_wait_ms\":400"));
        assert!(r.summary().contains("70 still hanging at the end"));
    }

    /// A bound given in microseconds is judged and named in microseconds,
    /// not rounded down to `0 ms`.
    #[test]
    fn sub_millisecond_bounds_are_named_as_given() {
        let mut r = report();
        r.criteria.max_p99 = Duration::from_micros(500);
        r.rtt.p99 = 1_024;
        let failure = r.failure().unwrap();
        assert!(
            failure.contains("p99 round trip 1.024 ms is over --max-p99 500us"),
            "{failure}"
        );
        assert!(r.to_json().contains("\"max_p99_ms\":0.5,"));
        let mut r = report();
        r.criteria.max_stall = Duration::from_micros(1_500);
        r.rtt.max = 1_200;
        assert!(r.ok(), "{:?}", r.failure());
        r.rtt.max = 1_700;
        let failure = r.failure().unwrap();
        assert!(
            failure.contains("a reply took 1.7 ms: a stall longer than --max-stall 1500us"),
            "{failure}"
        );
        // The swarm's own stall, against the same bound: a 1.7 ms turn
        // is over it, though both are "1 ms" in whole milliseconds.
        let mut r = report();
        r.criteria.max_stall = Duration::from_micros(1_500);
        r.turns.max = 1_700;
        let failure = r.failure().unwrap();
        assert!(
            failure.contains("longer than --max-stall 1500us"),
            "{failure}"
        );
    }

    #[test]
    fn a_stall_of_the_swarm_own_is_named_as_its_own_and_not_the_server_s() {
        let mut r = report();
        r.counters.pauses = 1;
        r.counters.paused_ms = 1_503;
        r.counters.longest_pause_ms = 1_503;
        let failure = r.failure().unwrap();
        assert!(
            failure.starts_with("the swarm itself stalled 1.5 s"),
            "{failure}"
        );
        assert!(r.failed_by_swarm_only());
        assert!(r.to_json().contains("\"swarm_own_failure\":true"));
        assert!(r
            .summary()
            .contains("FAILED (the swarm's own): the swarm itself stalled"));
        // Under --max-stall it is reported, not failed.
        r.counters.longest_pause_ms = 600;
        assert!(r.ok(), "{:?}", r.failure());
        // A turn of its loop that long is the same stall.
        r.turns.max = 5_300_000;
        assert!(r.failure().unwrap().contains("its longest turn 5300 ms"));
        // And with a server failure too, it is not the swarm's only.
        r.counters.missing_replies = 1;
        assert!(!r.failed_by_swarm_only());
    }

    #[test]
    fn json_carries_the_histograms_and_exact_criteria() {
        let mut r = report();
        r.criteria.max_p99 = Duration::from_micros(1_500);
        r.criteria.max_stall = Duration::from_micros(250);
        let json = r.to_json();
        assert!(
            json.contains("\"max_p99_ms\":1.5,\"max_stall_ms\":0.25,"),
            "{json}"
        );
        assert!(json.contains("\"rtt_histogram\":\"HISTEw"), "{json}");
        let back = crate::swarm::json::parse(&json).unwrap();
        let text = back.get("rtt_histogram").and_then(|v| v.as_str()).unwrap();
        assert_eq!(hdr::decode(text).unwrap(), r.histograms.rtt);
        assert_eq!(ms(Duration::from_millis(200)), "200");
        assert_eq!(ms(Duration::from_micros(10)), "0.01");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
