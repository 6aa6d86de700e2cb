//! The server's series, from its counters.
//!
//! They are read from the counters' `key=value` form — the same words as
//! the server's `stats` line — so a server in this process
//! ([`Counters::of`]) and a worker whose `stats` lines a supervisor reads
//! ([`Counters::parse`]) are exposed by one code path, under one set of
//! names.

use super::exposition::{Families, Label};
use crate::server::{Lateness, Stats, LATENESS_BOUNDS_US};

/// The word of the `stats` line that carries the lateness buckets.
const BUCKETS: &str = "eviction_lateness_buckets";

/// A server's counters by their `stats`-line names; the lateness buckets
/// as `eviction_lateness_buckets.I`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(pub Vec<(String, u64)>);

impl Counters {
    /// Reads the `key=value` words of a `stats` line (other words are
    /// skipped).
    pub fn parse(text: &str) -> Counters {
        let mut out = Vec::new();
        for (key, value) in text.split_whitespace().filter_map(|kv| kv.split_once('=')) {
            if key == BUCKETS {
                for (i, n) in value.split(',').enumerate() {
                    if let Ok(n) = n.parse() {
                        out.push((format!("{BUCKETS}.{i}"), n));
                    }
                }
            } else if let Ok(n) = value.parse() {
                out.push((key.to_string(), n));
            }
        }
        Counters(out)
    }

    /// The counters of a server in this process.
    pub fn of(stats: &Stats) -> Counters {
        Counters::parse(&stats.to_string())
    }

    /// The value of `key`, 0 if absent (a worker of an older build).
    pub fn get(&self, key: &str) -> u64 {
        self.0.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
    }

    /// The eviction-lateness histogram.
    pub fn lateness(&self) -> Lateness {
        let mut l = Lateness::default();
        for (i, bucket) in l.buckets.iter_mut().enumerate() {
            *bucket = self.get(&format!("{BUCKETS}.{i}"));
        }
        l.count = l.buckets.iter().sum();
        l.sum_us = self.get("eviction_lateness_us");
        l
    }
}

/// Close reasons: the label's value and the counter's key.
const CLOSES: [(&str, &str); 14] = [
    ("evicted", "evicted"),
    ("peer", "closed_by_peer"),
    ("protocol", "protocol_errors"),
    ("slow_reader", "slow_readers"),
    ("io", "io_errors"),
    ("rejected", "rejected"),
    ("requested", "closed_by_request"),
    ("shutdown", "closed_by_shutdown"),
    ("over_budget", "over_budget"),
    ("proxy", "proxy_errors"),
    ("proxy_timeout", "proxy_timeouts"),
    ("too_fast", "too_fast"),
    ("denied", "denied"),
    ("over_source_limit", "over_source_limit"),
];

/// Plain counters: the series, the key, its help.
const TOTALS: [(&str, &str, &str); 21] = [
    (
        "lubdub_connections_accepted_total",
        "accepted",
        "Connections accepted and kept (refused ones are closed with reason=\"rejected\").",
    ),
    (
        "lubdub_heartbeat_strikes_total",
        "strikes",
        "Strikes given for heartbeats past --min-heartbeat-interval's rate.",
    ),
    (
        "lubdub_heartbeats_total",
        "heartbeats",
        "Heartbeat requests answered.",
    ),
    (
        "lubdub_heartbeat_responses_total",
        "heartbeat_responses",
        "Heartbeat responses received from peers.",
    ),
    (
        "lubdub_data_frames_total",
        "data_frames",
        "Data frames handed to the handler.",
    ),
    (
        "lubdub_reserved_frames_total",
        "reserved_frames",
        "Frames of reserved types skipped.",
    ),
    (
        "lubdub_bytes_received_total",
        "bytes_in",
        "Bytes read from peers.",
    ),
    (
        "lubdub_bytes_sent_total",
        "bytes_out",
        "Bytes written to peers.",
    ),
    (
        "lubdub_probes_total",
        "probes",
        "Heartbeat requests sent to peers silent for an interval (--probe).",
    ),
    (
        "lubdub_evictions_with_unread_data_total",
        "evicted_with_unread_data",
        "Evictions that left a whole frame unread in the socket (should stay 0).",
    ),
    (
        "lubdub_proxy_local_total",
        "proxy_local",
        "Connections admitted on a PROXY header that names no client (a balancer's health check).",
    ),
    (
        "lubdub_sockopt_errors_total",
        "sockopt_errors",
        "Socket options the kernel refused on accepted connections (kept).",
    ),
    (
        "lubdub_accept_pauses_total",
        "accept_pauses",
        "Times accepting paused for lack of file descriptors or memory.",
    ),
    (
        "lubdub_reactor_stalls_total",
        "pauses",
        "Times the reactor was kept from running past its stall threshold.",
    ),
    (
        "lubdub_reactor_stalls_excused_total",
        "excused_pauses",
        "Of those stalls, the ones excused (peers' deadlines moved by them).",
    ),
    (
        "lubdub_reactor_wakeups_total",
        "wakeups",
        "Polls of the reactor's own that returned readiness events.",
    ),
    (
        "lubdub_reactor_events_total",
        "events",
        "Readiness events those polls returned.",
    ),
    (
        "lubdub_drained_total",
        "drained",
        "Connections closed by a drain at shutdown.",
    ),
    (
        "lubdub_commands_total",
        "commands",
        "Commands applied from other threads.",
    ),
    (
        "lubdub_commands_failed_total",
        "commands_failed",
        "Commands that could not be carried out.",
    ),
    (
        "lubdub_closed_by_shutdown_total",
        "closed_by_shutdown",
        "Connections open when the server stopped (drained ones included).",
    ),
];

/// Gauges: the series, the key, its help, the unit's divisor.
const GAUGES: [(&str, &str, &str, f64); 5] = [
    (
        "lubdub_connections_active",
        "active",
        "Connections open now.",
        1.0,
    ),
    (
        "lubdub_connections_peak",
        "peak",
        "Most connections open at once.",
        1.0,
    ),
    (
        "lubdub_buffered_bytes",
        "buffered",
        "Bytes buffered now across all connections.",
        1.0,
    ),
    (
        "lubdub_buffered_bytes_peak",
        "peak_buffered",
        "Most bytes buffered at once.",
        1.0,
    ),
    (
        "lubdub_reactor_longest_turn_seconds",
        "longest_turn_us",
        "The longest turn of the reactor, from a wakeup to waiting again.",
        1e6,
    ),
];

/// Adds one server's series, each with `labels`.
pub fn families(f: &mut Families, labels: &[Label<'_>], counters: &Counters) {
    for (name, key, help, divisor) in GAUGES {
        f.gauge(name, help, labels, counters.get(key) as f64 / divisor);
    }
    for (reason, key) in CLOSES {
        let mut with = labels.to_vec();
        with.push(("reason", reason));
        f.counter(
            "lubdub_connections_closed_total",
            "Connections closed, by reason.",
            &with,
            counters.get(key) as f64,
        );
    }
    for (name, key, help) in TOTALS {
        f.counter(name, help, labels, counters.get(key) as f64);
    }
    f.counter(
        "lubdub_reactor_stalled_seconds_total",
        "Time the reactor was kept from running, those stalls added up.",
        labels,
        counters.get("paused_ms") as f64 / 1e3,
    );
    let lateness = counters.lateness();
    f.histogram(
        "lubdub_eviction_lateness_seconds",
        "How late each eviction fired past its peer's deadline.",
        labels,
        &lateness.cumulative(),
        lateness.count,
        lateness.sum_us as f64 / 1e6,
    );
    debug_assert_eq!(lateness.buckets.len(), LATENESS_BOUNDS_US.len() + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_of_the_stats_line_is_read_back_under_its_name() {
        let mut stats = Stats {
            accepted: 7,
            heartbeats: 40,
            closed_by_shutdown: 3,
            paused_ms: 1500,
            ..Stats::default()
        };
        stats.eviction_lateness.record(3_000);
        stats.eviction_lateness.record(20_000_000);
        let c = Counters::of(&stats);
        assert_eq!(c.get("accepted"), 7);
        assert_eq!(c.get("heartbeats"), 40);
        assert_eq!(c.get("closed_by_shutdown"), 3);
        assert_eq!(c.lateness(), stats.eviction_lateness);
        // Every key the series read is one the stats line writes.
        for key in CLOSES
            .iter()
            .map(|c| c.1)
            .chain(TOTALS.iter().map(|t| t.1))
            .chain(GAUGES.iter().map(|g| g.1))
        {
            assert!(
                c.0.iter().any(|(k, _)| k == key),
                "{key} not in the stats line"
            );
        }
        let mut f = Families::new();
        families(&mut f, &[("worker", "0")], &c);
        let text = String::from_utf8(f.encode()).unwrap();
        for line in [
            "lubdub_connections_accepted_total{worker=\"0\"} 7",
            "lubdub_connections_closed_total{worker=\"0\",reason=\"shutdown\"} 3",
            "lubdub_reactor_stalled_seconds_total{worker=\"0\"} 1.5",
            "lubdub_eviction_lateness_seconds_bucket{worker=\"0\",le=\"0.005\"} 1",
            "lubdub_eviction_lateness_seconds_bucket{worker=\"0\",le=\"10\"} 1",
            "lubdub_eviction_lateness_seconds_bucket{worker=\"0\",le=\"+Inf\"} 2",
            "lubdub_eviction_lateness_seconds_count{worker=\"0\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
