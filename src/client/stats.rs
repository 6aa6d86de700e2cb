//! The client's counters.

/// Counters since the client was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Connections established.
    pub connects: u64,
    /// Connections that were up and ended, each reported to
    /// [`Handler::disconnected`](super::Handler::disconnected) (a close or
    /// shutdown of an open connection too).
    pub disconnects: u64,
    /// Connect attempts that failed or timed out, each reported to
    /// [`Handler::connect_failed`](super::Handler::connect_failed) and
    /// followed by a backoff.
    pub connect_failures: u64,
    /// Heartbeat requests sent.
    pub heartbeats_sent: u64,
    /// Heartbeat responses received.
    pub replies: u64,
    /// Heartbeat requests received from the server, each answered.
    pub requests_answered: u64,
    /// Heartbeats still unanswered when the next one fell due.
    pub missed_replies: u64,
    /// Heartbeats not sent because the client itself fell more than an
    /// interval behind its schedule (a stall of its own).
    pub skipped_heartbeats: u64,
    /// Data frames received.
    pub data_frames: u64,
    /// Connections closed for bytes that are not lubdub frames.
    pub protocol_errors: u64,
    /// Bytes discarded, when lenient, because they cannot start a frame.
    pub dropped_bytes: u64,
    /// Times the client was kept from running for longer than its stall
    /// threshold (stopped, starved, blocked, or its caller came back late);
    /// an excused stall is not counted as the server's silence.
    pub pauses: u64,
    /// Socket options the kernel refused on a new connection (the
    /// connection is kept).
    pub sockopt_errors: u64,
    /// Connections closed because the server did not read: more than
    /// `max_backlog` bytes waited to be written
    /// ([`Reason::SlowReader`](super::Reason::SlowReader)).
    pub slow_readers: u64,
}
