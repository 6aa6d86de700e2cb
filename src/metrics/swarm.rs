//! The swarm's series, from its counters and its round-trip histogram.

use hdrhistogram::Histogram;

use super::exposition::Families;
use crate::swarm::Counters;

/// Upper bounds of the round-trip buckets, in seconds: 100 µs (loopback)
/// to 10 s (a server that has stopped answering).
pub const RTT_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Cumulative counts of `parts` (round trips in microseconds, HDR
/// histograms of 3 significant digits) in [`RTT_BOUNDS`], their count and
/// sum in seconds. A value sits in the bucket of its HDR range's highest
/// equivalent value, so a bucket's edge is exact to 0.1 %.
pub fn rtt_buckets(parts: &[&Histogram<u64>]) -> ([(f64, u64); RTT_BOUNDS.len()], u64, f64) {
    let mut counts = [0u64; RTT_BOUNDS.len() + 1];
    let (mut count, mut sum_us) = (0u64, 0f64);
    for hist in parts {
        for v in hist.iter_recorded() {
            let n = v.count_at_value();
            let us = hist.highest_equivalent(v.value_iterated_to());
            let seconds = us as f64 / 1e6;
            counts[RTT_BOUNDS.partition_point(|&b| b < seconds)] += n;
            count += n;
            sum_us += hist.median_equivalent(v.value_iterated_to()) as f64 * n as f64;
        }
    }
    let mut out = [(0.0, 0); RTT_BOUNDS.len()];
    let mut total = 0;
    for (i, bound) in RTT_BOUNDS.iter().enumerate() {
        total += counts[i];
        out[i] = (*bound, total);
    }
    (out, count, sum_us / 1e6)
}

/// Adds the swarm's series.
pub fn families(f: &mut Families, c: &Counters, rtt: &[&Histogram<u64>]) {
    f.gauge(
        "lubdub_swarm_connections_up",
        "Connections open now.",
        &[],
        c.connected as f64,
    );
    f.gauge(
        "lubdub_swarm_connections_connecting",
        "Connects in flight now.",
        &[],
        c.connecting as f64,
    );
    f.gauge(
        "lubdub_swarm_connections_peak",
        "Most connections open at once.",
        &[],
        c.peak_connected as f64,
    );
    let totals: [(&str, &str, u64); 15] = [
        (
            "lubdub_swarm_connects_total",
            "Connects that succeeded.",
            c.connects,
        ),
        (
            "lubdub_swarm_slow_connects_total",
            "Connects that completed later than the connect-wait bound.",
            c.slow_connects,
        ),
        (
            "lubdub_swarm_churned_total",
            "Connections closed on purpose (--churn), each reconnected.",
            c.churned,
        ),
        (
            "lubdub_swarm_requests_total",
            "Requests (heartbeats, or the fixed request) sent.",
            c.heartbeats_sent,
        ),
        (
            "lubdub_swarm_replies_total",
            "Replies received and matched to a request.",
            c.replies,
        ),
        (
            "lubdub_swarm_untimed_replies_total",
            "Replies counted but not timed (the stamp ring was full).",
            c.untimed_replies,
        ),
        (
            "lubdub_swarm_unexpected_replies_total",
            "Replies no request was waiting for.",
            c.unexpected_replies,
        ),
        (
            "lubdub_swarm_missing_replies_total",
            "Requests that will never be answered (lost with their connection).",
            c.missing_replies,
        ),
        (
            "lubdub_swarm_late_replies_total",
            "Heartbeats still unanswered when the next one fell due.",
            c.late_replies,
        ),
        (
            "lubdub_swarm_skipped_sends_total",
            "Heartbeats not sent because the swarm fell behind its schedule.",
            c.skipped_sends,
        ),
        (
            "lubdub_swarm_protocol_errors_total",
            "Connections closed for bytes that are neither frames nor the reply.",
            c.protocol_errors,
        ),
        (
            "lubdub_swarm_other_frames_total",
            "Frames other than replies.",
            c.other_frames,
        ),
        (
            "lubdub_swarm_stalls_total",
            "Times the swarm was kept from running past its stall threshold.",
            c.pauses,
        ),
        (
            "lubdub_swarm_stall_adjusted_replies_total",
            "Round trips that spanned a stall of the swarm's own, timed without it.",
            c.stall_adjusted_replies,
        ),
        (
            "lubdub_swarm_sockopt_errors_total",
            "Socket options the kernel refused on new connections.",
            c.sockopt_errors,
        ),
    ];
    for (name, help, value) in totals {
        f.counter(name, help, &[], value as f64);
    }
    f.counter(
        "lubdub_swarm_stalled_seconds_total",
        "Time the swarm was kept from running, its stalls added up.",
        &[],
        c.paused_ms as f64 / 1e3,
    );
    for (reason, n) in c.connect_failures_by.fields() {
        f.counter(
            "lubdub_swarm_connect_failures_total",
            "Connects that failed, by reason.",
            &[("reason", reason)],
            n as f64,
        );
    }
    for (reason, n) in c.reconnects_by.fields() {
        f.counter(
            "lubdub_swarm_reconnects_total",
            "Established connections lost (and reconnected), by reason.",
            &[("reason", reason)],
            n as f64,
        );
    }
    let (buckets, count, sum) = rtt_buckets(rtt);
    f.histogram(
        "lubdub_swarm_rtt_seconds",
        "Round trips, request to reply, from the swarm's HDR histogram at scrape time.",
        &[],
        &buckets,
        count,
        sum,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_land_in_the_buckets_of_their_bounds_across_parts() {
        let mut a = crate::swarm::counters::rtt_histogram();
        let mut b = crate::swarm::counters::rtt_histogram();
        a.record(50).unwrap(); // 50 µs
        a.record(100).unwrap(); // exactly 100 µs: in the first bucket
        b.record(3_000).unwrap(); // 3 ms
        b.record(30_000_000).unwrap(); // 30 s: past every bound
        let (buckets, count, sum) = rtt_buckets(&[&a, &b]);
        assert_eq!(buckets[0], (0.0001, 2));
        assert_eq!(buckets[4], (0.0025, 2), "3 ms is not under 2.5 ms");
        assert_eq!(buckets[5], (0.005, 3));
        assert_eq!(buckets[15], (10.0, 3));
        assert_eq!(count, 4);
        assert!((sum - 30.003150).abs() < 0.05, "{sum}");
    }
}
