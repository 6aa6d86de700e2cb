//! The swarm's own recent stalls, so that a round trip that spans one is
//! timed without it.
//!
//! A reply that arrived while the swarm was stopped is read, and timed,
//! only when it runs again: the whole stop would be in its round trip and
//! the server would be blamed for the swarm's own stall. The reactor
//! records each stall it measures (see [`crate::time::Stalls`]) as a span
//! of its microsecond clock ending at the wakeup that found it; a round
//! trip is then shortened by the part of those spans that falls between
//! its send stamp and now.
//!
//! Stalls are rare (each one is at least 50 ms of not running), so a fixed
//! log of the last [`KEPT`] is enough: a round trip would have to span more
//! than that many stalls for one to be left in it. The common case — no
//! stall since the request was sent — is one comparison with the latest.

/// Stalls remembered.
pub(super) const KEPT: usize = 16;

/// The last [`KEPT`] stalls, as `(start, end)` microseconds.
#[derive(Debug, Clone)]
pub(super) struct StallLog {
    spans: [(u64, u64); KEPT],
    len: usize,
    /// Where the next span goes (the oldest when the log is full).
    next: usize,
}

impl StallLog {
    pub fn new() -> StallLog {
        StallLog {
            spans: [(0, 0); KEPT],
            len: 0,
            next: 0,
        }
    }

    /// The swarm was not running from `start` to `end` (µs).
    pub fn record(&mut self, start: u64, end: u64) {
        debug_assert!(start <= end, "stall {start}..{end} ends before it starts");
        self.spans[self.next] = (start.min(end), end);
        self.next = (self.next + 1) % KEPT;
        self.len = (self.len + 1).min(KEPT);
    }

    /// Microseconds of the logged stalls after `sent`: the part of a round
    /// trip sent at `sent` and received now that the swarm was not running.
    /// Hot path: no allocation; one comparison when no stall came since.
    pub fn since(&self, sent: u64) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let latest = self.spans[(self.next + KEPT - 1) % KEPT];
        if latest.1 <= sent {
            return 0;
        }
        self.spans[..self.len]
            .iter()
            .map(|&(start, end)| end.saturating_sub(start.max(sent)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_part_of_a_stall_after_the_send_counts() {
        let mut log = StallLog::new();
        assert_eq!(log.since(0), 0);
        log.record(1_000, 1_500);
        // Sent before the stall: all of it; during: the rest of it; after: none.
        assert_eq!(log.since(900), 500);
        assert_eq!(log.since(1_200), 300);
        assert_eq!(log.since(1_500), 0);
        assert_eq!(log.since(2_000), 0);
        log.record(3_000, 3_100);
        assert_eq!(log.since(900), 600, "both stalls");
        assert_eq!(log.since(2_000), 100, "only the second");
    }

    #[test]
    fn a_full_log_forgets_the_oldest_first() {
        let mut log = StallLog::new();
        for i in 0..(KEPT as u64 + 4) {
            log.record(i * 1_000, i * 1_000 + 100);
        }
        // The first four are gone; each of the rest is 100 µs.
        assert_eq!(log.since(0), KEPT as u64 * 100);
        let last = (KEPT as u64 + 3) * 1_000;
        assert_eq!(log.since(last + 50), 50);
        assert_eq!(log.since(last + 100), 0);
    }
}
