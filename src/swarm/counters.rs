//! What a swarm counts while it runs: totals, reasons, round-trip times.

use hdrhistogram::Histogram;

/// Round-trip times recorded from 1 µs to 60 s at 3 significant digits: a
/// fixed-size array (17,408 counts, 136 KiB) allocated once, so recording
/// never allocates.
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
    /// The server closed or reset before answering anything, with a
    /// request of the swarm's to answer or within a second of the connect
    /// — what a server at its connection limit does.
    pub rejected: u64,
    /// The server closed or reset, without a reply, a connection on which
    /// no request of the swarm's had reached it, a second or more after its
    /// connect began: an eviction for a silence that was the swarm's (it
    /// was too slow to use the connection), not a refusal.
    pub idle: u64,
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
    /// Connects that completed, but later than the connect-wait bound
    /// (`--max-connect-wait`). A failed run.
    pub slow_connects: u64,
    /// Connects still in flight when sending stopped that had already been
    /// in flight longer than the connect-wait bound: a connection that is
    /// not coming back, not one on its way. A failed run; set at the end.
    pub stuck_connects: u64,
    /// The longest any connect was in flight (completed, failed, or still
    /// hanging at the end), in milliseconds, the swarm's own stalls taken
    /// out.
    pub longest_connect_ms: u64,
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
    /// Heartbeats not sent because the swarm itself fell more than an
    /// interval behind its schedule: the load generator, not the server,
    /// was the bottleneck. A failed run.
    pub skipped_sends: u64,
    /// Requests that will never be answered (lost with their connection, or
    /// still unanswered after the end-of-run grace period).
    pub missing_replies: u64,
    /// Heartbeats still unanswered when the next one fell due.
    pub late_replies: u64,
    /// Connections closed for bytes that are neither frames nor the reply.
    pub protocol_errors: u64,
    /// Bytes discarded, when lenient, as neither frames nor replies.
    pub dropped_bytes: u64,
    /// Frames other than replies (server heartbeat requests, data, reserved).
    pub other_frames: u64,
    /// Times the swarm was kept from running for longer than its stall
    /// threshold (stopped, starved of CPU); an excused stall is not counted
    /// as its servers' silence.
    pub pauses: u64,
    /// Total length of those stalls, in milliseconds.
    pub paused_ms: u64,
    /// The longest of them, in milliseconds.
    pub longest_pause_ms: u64,
    /// Round trips that spanned a stall of the swarm's own, timed with the
    /// stall taken out: a reply that waited in the socket while the swarm
    /// was stopped is the swarm's delay, not the server's.
    pub stall_adjusted_replies: u64,
    /// Socket options the kernel refused on new connections (kept).
    pub sockopt_errors: u64,
}

impl LostBy {
    /// Each reason with its count, in a fixed order.
    pub fn fields(&self) -> [(&'static str, u64); 7] {
        [
            ("closed", self.closed),
            ("rejected", self.rejected),
            ("idle", self.idle),
            ("reset", self.reset),
            ("silent", self.silent),
            ("protocol", self.protocol),
            ("io", self.io),
        ]
    }
}

impl FailedBy {
    /// Each reason with its count, in a fixed order.
    pub fn fields(&self) -> [(&'static str, u64); 5] {
        [
            ("refused", self.refused),
            ("timeout", self.timeout),
            ("unreachable", self.unreachable),
            ("no_port", self.no_port),
            ("other", self.other),
        ]
    }
}

impl LostBy {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &LostBy) {
        self.closed += other.closed;
        self.rejected += other.rejected;
        self.idle += other.idle;
        self.reset += other.reset;
        self.silent += other.silent;
        self.protocol += other.protocol;
        self.io += other.io;
    }
}

impl FailedBy {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &FailedBy) {
        self.refused += other.refused;
        self.timeout += other.timeout;
        self.unreachable += other.unreachable;
        self.no_port += other.no_port;
        self.other += other.other;
    }
}

impl Counters {
    /// Adds another swarm's totals to these, as if one swarm had held both
    /// sets of connections: events and states are summed, the longest of
    /// anything is the longer of the two. `peak_connected` is the sum of
    /// the peaks, which need not have come at the same moment: an upper
    /// bound on the merged run's peak.
    pub fn add(&mut self, other: &Counters) {
        // Destructured so that a field added later cannot be forgotten here.
        let Counters {
            connected,
            peak_connected,
            connecting,
            connects,
            connect_failures,
            connect_failures_by,
            slow_connects,
            stuck_connects,
            longest_connect_ms,
            reconnects,
            reconnects_by,
            churned,
            heartbeats_sent,
            replies,
            untimed_replies,
            unexpected_replies,
            skipped_sends,
            missing_replies,
            late_replies,
            protocol_errors,
            dropped_bytes,
            other_frames,
            pauses,
            paused_ms,
            longest_pause_ms,
            stall_adjusted_replies,
            sockopt_errors,
        } = *other;
        self.connected += connected;
        self.peak_connected += peak_connected;
        self.connecting += connecting;
        self.connects += connects;
        self.connect_failures += connect_failures;
        self.connect_failures_by.add(&connect_failures_by);
        self.slow_connects += slow_connects;
        self.stuck_connects += stuck_connects;
        self.longest_connect_ms = self.longest_connect_ms.max(longest_connect_ms);
        self.reconnects += reconnects;
        self.reconnects_by.add(&reconnects_by);
        self.churned += churned;
        self.heartbeats_sent += heartbeats_sent;
        self.replies += replies;
        self.untimed_replies += untimed_replies;
        self.unexpected_replies += unexpected_replies;
        self.skipped_sends += skipped_sends;
        self.missing_replies += missing_replies;
        self.late_replies += late_replies;
        self.protocol_errors += protocol_errors;
        self.dropped_bytes += dropped_bytes;
        self.other_frames += other_frames;
        self.pauses += pauses;
        self.paused_ms += paused_ms;
        self.longest_pause_ms = self.longest_pause_ms.max(longest_pause_ms);
        self.stall_adjusted_replies += stall_adjusted_replies;
        self.sockopt_errors += sockopt_errors;
    }
}

/// `{"a":1,"b":0}`.
pub(super) fn json_object(fields: &[(&'static str, u64)]) -> String {
    let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// `closed 1, reset 2` — the nonzero ones, or `none`.
pub(super) fn human_list(fields: &[(&'static str, u64)]) -> String {
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

/// Round trips of the status window in progress, and of the run before it.
/// A reply is recorded once, into the window; when a status line closes the
/// window it is added to the run's total (once a window, not once a reply)
/// and cleared. Both histograms are made once; nothing here allocates.
pub(super) struct Rtts {
    total: Histogram<u64>,
    pub window: Histogram<u64>,
    /// From the mark on (SIGUSR1), when there was one: each reply is
    /// recorded here too.
    pub since_mark: Option<Histogram<u64>>,
}

impl Rtts {
    pub fn new() -> Rtts {
        Rtts {
            total: rtt_histogram(),
            window: rtt_histogram(),
            since_mark: None,
        }
    }

    /// Round trips from now on are also kept apart; a second mark starts
    /// them afresh.
    pub fn mark(&mut self) {
        match &mut self.since_mark {
            Some(h) => h.reset(),
            None => self.since_mark = Some(rtt_histogram()),
        }
    }

    /// One round trip of `us` microseconds (at least 1; longer than the
    /// histogram's range counts as its largest value).
    pub fn record(&mut self, us: u64) {
        self.window.saturating_record(us.max(1));
        if let Some(h) = &mut self.since_mark {
            h.saturating_record(us.max(1));
        }
    }

    /// Ends the window: its round trips join the run's.
    pub fn close_window(&mut self) {
        // Same bounds on both sides: adding cannot fail or allocate.
        let _ = self.total.add(&self.window);
        self.window.reset();
    }

    /// The run's round trips as two parts, the closed windows' and the open
    /// window's, without closing it (a scrape must not cut a status
    /// window short).
    pub fn parts(&self) -> [&Histogram<u64>; 2] {
        [&self.total, &self.window]
    }

    /// The run's round trips, the open window included.
    pub fn total(&mut self) -> &Histogram<u64> {
        self.close_window();
        &self.total
    }
}
