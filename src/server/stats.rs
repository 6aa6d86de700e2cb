//! Counters a server keeps; read them with [`Server::stats`](super::Server::stats).

use std::fmt;

/// Everything the reactor counts. Plain integers: the reactor is one thread,
/// so reading them between polls needs no synchronisation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted and kept (rejected ones are not counted here;
    /// with the PROXY protocol, counted at the accept, before the header).
    pub accepted: u64,
    /// Connections open now (with the PROXY protocol, those still awaiting
    /// their header included).
    pub active: u64,
    /// Highest `active` seen.
    pub peak_active: u64,
    /// Closed because they were silent for `interval × misses`.
    pub evicted: u64,
    /// Evictions that left unread in the socket's receive queue enough
    /// bytes to complete a frame. The server reads what the kernel holds
    /// before every verdict (and again if a frame's worth arrived since),
    /// so anything but zero means a frame that may have proved the peer
    /// alive was missed (the debug line `eviction evidence` names each).
    /// Fewer bytes than the frame in progress lacks prove nothing: a
    /// trickler's next byte may land just after the read.
    pub evicted_with_unread_data: u64,
    /// Closed because the peer closed (EOF) or reset.
    pub closed_by_peer: u64,
    /// Closed because the peer sent a malformed frame.
    pub protocol_errors: u64,
    /// With the PROXY protocol on: closed because the connection began
    /// with something that is not a valid PROXY header (not one at all,
    /// malformed, or too long).
    pub proxy_errors: u64,
    /// With the PROXY protocol on: closed because the header was not
    /// complete within `proxy_header_timeout` of the accept.
    pub proxy_timeouts: u64,
    /// With the PROXY protocol on: connections admitted on a header that
    /// names no client — v2 `LOCAL` (a balancer's health check), v1
    /// `UNKNOWN`, or v2 without IP addresses — with the balancer's own
    /// address as their peer.
    pub proxy_local: u64,
    /// Accepted and closed at once because `max_connections` were open.
    pub rejected: u64,
    /// Closed because replies backed up past the write-backlog bound (the
    /// peer does not read).
    pub slow_readers: u64,
    /// Closed because buffering for them would have exceeded the budget of
    /// bytes buffered across all connections.
    pub over_budget: u64,
    /// Closed because a read or write failed for another reason.
    pub io_errors: u64,
    /// Socket options the kernel refused on accepted connections (the
    /// connection is kept: lubdub's own heartbeats still guard it).
    pub sockopt_errors: u64,
    /// Closed at the handler's or the embedding program's request.
    pub closed_by_request: u64,
    /// Times accepting was paused because the process or system ran out of
    /// file descriptors (or memory) — each pause is one retry period.
    pub accept_pauses: u64,
    /// Times the reactor was kept from running for longer than its stall
    /// threshold (stopped, starved of CPU, blocked, or held by its caller).
    /// An excused stall (at most one per limit + interval + threshold of
    /// watched time) moves every peer's
    /// deadline instead of being blamed on the peers.
    pub pauses: u64,
    /// Total length of those stalls, in milliseconds.
    pub paused_ms: u64,
    /// Of `pauses`, the ones excused.
    pub excused_pauses: u64,
    /// The longest turn of the reactor — from a wakeup to handing control
    /// back — in microseconds: how long its peers can wait for it to look
    /// at them again.
    pub longest_turn_us: u64,
    /// Polls of the reactor's own that returned readiness events (a
    /// caller's poll is the caller's to count; a wakeup for a timer alone
    /// is not counted, so an idle server's counters stand still).
    pub wakeups: u64,
    /// Readiness events those polls returned: `events / wakeups` is how
    /// many peers one wakeup served.
    pub events: u64,
    /// Bytes buffered now across all connections (split data payloads the
    /// handler wants, write backlogs): the gauge `max_buffered` bounds.
    pub buffered: u64,
    /// Highest `buffered` seen.
    pub peak_buffered: u64,
    /// Heartbeat requests answered.
    pub heartbeats: u64,
    /// Heartbeat responses received (peers that heartbeat us back).
    pub heartbeat_responses: u64,
    /// Data frames handed to the handler.
    pub data_frames: u64,
    /// Frames of reserved types skipped.
    pub reserved_frames: u64,
    /// Bytes read from peers.
    pub bytes_in: u64,
    /// Bytes written to peers.
    pub bytes_out: u64,
    /// Heartbeat requests sent to peers silent for an interval (with
    /// probes on).
    pub probes: u64,
    /// Closed because the server stopped (at once, or by a drain): the
    /// connections it held to the end.
    pub closed_by_shutdown: u64,
    /// How late each eviction came past its peer's deadline.
    pub eviction_lateness: Lateness,
    /// Closed by a drain ([`Config::drain`](super::Config::drain)), spread
    /// over its length.
    pub drained: u64,
    /// Commands applied from other threads.
    pub commands: u64,
    /// Of `commands`, those that could not be carried out (the connection
    /// had closed, its backlog was full, …).
    pub commands_failed: u64,
    /// Closed for heartbeating faster than
    /// [`Config::min_heartbeat_interval`](super::Config::min_heartbeat_interval)
    /// allows, once out of strikes.
    pub too_fast: u64,
    /// Strikes given for heartbeats beyond the allowed rate (the last one
    /// of each peer closed for it included).
    pub strikes: u64,
    /// Refused at the accept: their source already had
    /// [`Config::max_connections_per_source`](super::Config::max_connections_per_source)
    /// open.
    pub over_source_limit: u64,
    /// Refused at the accept by the address rules
    /// ([`Config::access`](super::Config::access)): inside a denied block,
    /// or outside every allowed one.
    pub denied: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "active={} peak={} accepted={} evicted={} evicted_with_unread_data={} closed_by_peer={} protocol_errors={} \
             proxy_errors={} proxy_timeouts={} proxy_local={} rejected={} slow_readers={} over_budget={} io_errors={} closed_by_request={} \
             sockopt_errors={} accept_pauses={} pauses={} paused_ms={} excused_pauses={} longest_turn_us={} buffered={} peak_buffered={} \
             heartbeats={} heartbeat_responses={} data_frames={} reserved_frames={} bytes_in={} bytes_out={} \
             probes={} drained={} closed_by_shutdown={} commands={} commands_failed={} wakeups={} events={} \
             too_fast={} strikes={} over_source_limit={} denied={} \
             eviction_lateness_us={} eviction_lateness_buckets={}",
            self.active,
            self.peak_active,
            self.accepted,
            self.evicted,
            self.evicted_with_unread_data,
            self.closed_by_peer,
            self.protocol_errors,
            self.proxy_errors,
            self.proxy_timeouts,
            self.proxy_local,
            self.rejected,
            self.slow_readers,
            self.over_budget,
            self.io_errors,
            self.closed_by_request,
            self.sockopt_errors,
            self.accept_pauses,
            self.pauses,
            self.paused_ms,
            self.excused_pauses,
            self.longest_turn_us,
            self.buffered,
            self.peak_buffered,
            self.heartbeats,
            self.heartbeat_responses,
            self.data_frames,
            self.reserved_frames,
            self.bytes_in,
            self.bytes_out,
            self.probes,
            self.drained,
            self.closed_by_shutdown,
            self.commands,
            self.commands_failed,
            self.wakeups,
            self.events,
            self.too_fast,
            self.strikes,
            self.over_source_limit,
            self.denied,
            self.eviction_lateness.sum_us,
            Buckets(&self.eviction_lateness.buckets),
        )
    }
}

/// Upper bounds of the eviction-lateness buckets, in microseconds: from a
/// millisecond (a tick's worth, at the finest default) to ten seconds (a
/// reactor kept from running).
pub const LATENESS_BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// A histogram of how late evictions fired past their deadlines, in fixed
/// buckets: what a scrape exposes as `lubdub_eviction_lateness_seconds`.
/// An eviction is due at `interval × misses` of silence and fires at the
/// first wheel tick after that; a late one shows a reactor that fell
/// behind its timers (stalls excused apart: an excused stall moves the
/// deadline).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lateness {
    /// Evictions per bucket (not cumulative): `buckets[i]` counts those at
    /// most `LATENESS_BOUNDS_US[i]` late and more than the bound before;
    /// the last counts those later than every bound.
    pub buckets: [u64; LATENESS_BOUNDS_US.len() + 1],
    /// Evictions counted.
    pub count: u64,
    /// Their lateness added up, in microseconds.
    pub sum_us: u64,
}

impl Lateness {
    /// Counts one eviction `us` microseconds past its deadline.
    pub fn record(&mut self, us: u64) {
        let at = LATENESS_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[at] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Upper bounds in seconds with cumulative counts, the `+Inf` bucket
    /// left out (it is `count`).
    pub fn cumulative(&self) -> [(f64, u64); LATENESS_BOUNDS_US.len()] {
        let mut out = [(0.0, 0); LATENESS_BOUNDS_US.len()];
        let mut total = 0;
        for (i, bound) in LATENESS_BOUNDS_US.iter().enumerate() {
            total += self.buckets[i];
            out[i] = (*bound as f64 / 1e6, total);
        }
        out
    }
}

/// Bucket counts as one word, `a,b,c`, for the `stats` line a supervisor
/// reads.
struct Buckets<'a>(&'a [u64]);

impl fmt::Display for Buckets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_falls_in_the_first_bucket_whose_bound_it_does_not_pass() {
        let mut l = Lateness::default();
        for us in [0, 1_000, 1_001, 10_000_000, 10_000_001] {
            l.record(us);
        }
        assert_eq!(l.buckets[0], 2, "0 and exactly 1 ms");
        assert_eq!(l.buckets[1], 1, "just past 1 ms");
        assert_eq!(l.buckets[12], 1, "exactly 10 s");
        assert_eq!(l.buckets[13], 1, "past every bound");
        assert_eq!(l.count, 5);
        assert_eq!(l.sum_us, 20_002_002);
        let cumulative = l.cumulative();
        assert_eq!(cumulative[0], (0.001, 2));
        assert_eq!(cumulative[12], (10.0, 4));
    }
}
