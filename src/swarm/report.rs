//! What a swarm measured: live snapshots, the final report, and its JSON.

use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Round-trip times recorded from 1 µs to 60 s at 3 significant digits: a
/// fixed-size array (~40 KiB) allocated once, so recording never allocates.
pub fn rtt_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// Round-trip time percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rtt {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Rtt {
    /// Percentiles of `hist` (all zero when it is empty).
    pub fn of(hist: &Histogram<u64>) -> Rtt {
        if hist.is_empty() {
            return Rtt::default();
        }
        Rtt {
            p50: hist.value_at_quantile(0.50),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
        }
    }
}

/// Why established connections were lost, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostBy {
    /// The server closed (FIN) after it had answered.
    pub closed: u64,
    /// The server closed or reset before answering anything — what a
    /// server at its connection limit does.
    pub rejected: u64,
    /// The server reset the connection (or the write found it broken).
    pub reset: u64,
    /// Nothing came for the silence limit.
    pub silent: u64,
    /// The server sent bytes that are neither frames nor the reply.
    pub protocol: u64,
    /// Any other read or write error (the kernel's keepalive or user
    /// timeout giving up shows here).
    pub io: u64,
}

/// Why connects failed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedBy {
    /// Connection refused: nothing listens there.
    pub refused: u64,
    /// No answer within the connect timeout.
    pub timeout: u64,
    /// No route to the network or host.
    pub unreachable: u64,
    /// No local address or port to connect from (ephemeral ports used up).
    pub no_port: u64,
    /// The name did not resolve, or another error.
    pub other: u64,
}

/// Running totals, updated by the swarm's loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections open now.
    pub connected: u64,
    /// Most connections open at once.
    pub peak_connected: u64,
    /// Connects in flight now.
    pub connecting: u64,
    /// Connects that succeeded.
    pub connects: u64,
    /// Connects that failed or timed out.
    pub connect_failures: u64,
    /// Connects that failed, by reason.
    pub connect_failures_by: FailedBy,
    /// Established connections that were lost (each is followed by a reconnect).
    pub reconnects: u64,
    /// Lost connections, by reason.
    pub reconnects_by: LostBy,
    /// Connections the swarm closed on purpose (`churn`), each followed by
    /// a reconnect; not counted in `reconnects`.
    pub churned: u64,
    /// Requests (heartbeats, or the fixed request) queued for sending.
    pub heartbeats_sent: u64,
    /// Replies received and matched to a request.
    pub replies: u64,
    /// Replies matched to a request sent while its connection's stamp ring
    /// was full: counted, not timed.
    pub untimed_replies: u64,
    /// Replies no request was waiting for (a server that answers twice):
    /// counted, never answered with a new request, and a failed run.
    pub unexpected_replies: u64,
    /// Requests that will never be answered (lost with their connection, or
    /// still unanswered after the end-of-run grace period).
    pub missing_replies: u64,
    /// Heartbeats still unanswered when the next one fell due.
    pub late_replies: u64,
    /// Connections closed for bytes that are neither frames nor the reply.
    pub protocol_errors: u64,
    /// Reads dropped whole when lenient.
    pub dropped_reads: u64,
    /// Frames other than replies (server heartbeat requests, data, reserved).
    pub other_frames: u64,
    /// Times the swarm found itself stalled (it woke later than its earliest
    /// deadline by more than its pause threshold) and did not count the
    /// stall as its servers' silence.
    pub pauses: u64,
    /// Total length of those stalls, in milliseconds.
    pub paused_ms: u64,
    /// Socket options the kernel refused on new connections (kept).
    pub sockopt_errors: u64,
}

impl LostBy {
    fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("closed", self.closed),
            ("rejected", self.rejected),
            ("reset", self.reset),
            ("silent", self.silent),
            ("protocol", self.protocol),
            ("io", self.io),
        ]
    }
}

impl FailedBy {
    fn fields(&self) -> [(&'static str, u64); 5] {
        [
            ("refused", self.refused),
            ("timeout", self.timeout),
            ("unreachable", self.unreachable),
            ("no_port", self.no_port),
            ("other", self.other),
        ]
    }
}

/// `{"a":1,"b":0}`.
fn json_object(fields: &[(&'static str, u64)]) -> String {
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// `closed 1, reset 2` — the nonzero ones, or `none`.
fn human_list(fields: &[(&'static str, u64)]) -> String {
    let nonzero: Vec<String> = fields
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if nonzero.is_empty() {
        "none".to_string()
    } else {
        nonzero.join(", ")
    }
}

/// A live view, handed to the status callback about once a second.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Time since the start.
    pub elapsed: Duration,
    /// The connection target.
    pub target: u64,
    /// Totals so far.
    pub counters: Counters,
    /// Replies per second since the previous snapshot.
    pub replies_per_s: f64,
    /// Round-trip percentiles so far.
    pub rtt: Rtt,
}

impl fmt::Display for Snapshot {
    /// `12.0s  9876/10000 up  124 connecting  3 reconnects  10012 replies/s  0 missing  p99 412us`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        write!(
            f,
            "{:>6.1}s  {}/{} up  {} connecting  {} reconnects  {:.0} replies/s  {} missing  p99 {}us",
            self.elapsed.as_secs_f64(),
            c.connected,
            self.target,
            c.connecting,
            c.reconnects,
            self.replies_per_s,
            c.missing_replies,
            self.rtt.p99
        )
    }
}

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
    /// Heartbeat interval in milliseconds (the liveness unit in flood mode).
    pub interval_ms: u64,
    /// Requests kept in flight per connection in flood mode (0 otherwise).
    pub flood_depth: u32,
    /// Totals.
    pub counters: Counters,
    /// From start to the end of the grace period.
    pub elapsed: Duration,
    /// Round-trip percentiles.
    pub rtt: Rtt,
    /// Round trips recorded.
    pub rtt_count: u64,
    /// Mean round trip in microseconds.
    pub rtt_mean_us: f64,
}

impl Report {
    /// Whether the run met its target: every connection open at the end, no
    /// reply missing and none unasked for.
    pub fn ok(&self) -> bool {
        self.failure().is_none()
    }

    /// One line saying why the run missed its target, if it did.
    pub fn failure(&self) -> Option<String> {
        if self.connected + self.churn_pending < self.target {
            Some(format!(
                "only {} of {} connections were open at the end (peak {}, {} connect failures)",
                self.connected + self.churn_pending,
                self.target,
                self.counters.peak_connected,
                self.counters.connect_failures
            ))
        } else if self.counters.missing_replies > 0 {
            Some(format!(
                "{} of {} requests got no reply",
                self.counters.missing_replies, self.counters.heartbeats_sent
            ))
        } else if self.counters.unexpected_replies > 0 {
            Some(format!(
                "{} replies came that no request asked for",
                self.counters.unexpected_replies
            ))
        } else {
            None
        }
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
                "\"reconnects\":{},\"reconnects_by_reason\":{},\"churned\":{},\"churn_pending\":{},",
                "\"heartbeats_sent\":{},",
                "\"replies\":{},\"untimed_replies\":{},\"unexpected_replies\":{},",
                "\"missing_replies\":{},\"late_replies\":{},",
                "\"protocol_errors\":{},\"dropped_reads\":{},\"other_frames\":{},",
                "\"pauses\":{},\"paused_ms\":{},\"sockopt_errors\":{},",
                "\"elapsed_s\":{:.3},\"replies_per_s\":{:.1},",
                "\"rtt_us\":{{\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{},\"mean\":{:.1},\"count\":{}}},",
                "\"mode\":\"{}\",\"interval_ms\":{},\"flood_depth\":{},",
                "\"ok\":{},\"failure\":{}}}"
            ),
            self.target,
            self.connected,
            c.peak_connected,
            c.connect_failures,
            json_object(&c.connect_failures_by.fields()),
            c.reconnects,
            json_object(&c.reconnects_by.fields()),
            c.churned,
            self.churn_pending,
            c.heartbeats_sent,
            c.replies,
            c.untimed_replies,
            c.unexpected_replies,
            c.missing_replies,
            c.late_replies,
            c.protocol_errors,
            c.dropped_reads,
            c.other_frames,
            c.pauses,
            c.paused_ms,
            c.sockopt_errors,
            self.elapsed.as_secs_f64(),
            self.replies_per_s(),
            self.rtt.p50,
            self.rtt.p99,
            self.rtt.p999,
            self.rtt.max,
            self.rtt_mean_us,
            self.rtt_count,
            self.mode,
            self.interval_ms,
            self.flood_depth,
            self.ok(),
            failure,
        );
        out
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
            "round trip:  p50 {}us  p99 {}us  p99.9 {}us  max {}us  ({} samples)",
            self.rtt.p50, self.rtt.p99, self.rtt.p999, self.rtt.max, self.rtt_count
        );
        if c.protocol_errors + c.dropped_reads + c.other_frames + c.unexpected_replies > 0 {
            let _ = writeln!(
                out,
                "protocol:    {} errors, {} dropped reads, {} other frames, {} unexpected replies",
                c.protocol_errors, c.dropped_reads, c.other_frames, c.unexpected_replies
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
                "stalls:      the swarm itself stalled {} times, {}ms in all",
                c.pauses, c.paused_ms
            );
        }
        let _ = match self.failure() {
            Some(reason) => writeln!(out, "result:      FAILED: {reason}"),
            None => writeln!(out, "result:      ok"),
        };
        out
    }
}

/// A JSON string literal with the escapes RFC 8259 requires.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut hist = rtt_histogram();
        for v in 1..=1000 {
            hist.record(v).unwrap();
        }
        Report {
            target: 10,
            connected: 10,
            churn_pending: 0,
            mode: "interval",
            interval_ms: 1000,
            flood_depth: 0,
            counters: Counters {
                peak_connected: 10,
                heartbeats_sent: 200,
                replies: 200,
                ..Counters::default()
            },
            elapsed: Duration::from_secs(20),
            rtt: Rtt::of(&hist),
            rtt_count: hist.len(),
            rtt_mean_us: hist.mean(),
        }
    }

    #[test]
    fn json_has_every_field_and_balanced_braces() {
        let json = report().to_json();
        for field in [
            "target",
            "connected",
            "peak_connected",
            "connect_failures",
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
        assert!(json.contains("\"ok\":true,\"failure\":null}"), "{json}");
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
            .contains("\"ok\":false,\"failure\":\"only 7 of 10"));
        let mut r = report();
        r.counters.missing_replies = 3;
        assert_eq!(r.failure().unwrap(), "3 of 200 requests got no reply");
        assert!(r.summary().contains("FAILED: 3 of 200"));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
