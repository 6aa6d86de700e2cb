//! What the client tells the embedding program, and the bounds on what the
//! program may queue.

use std::time::Duration;

use super::machine::Reason;
use super::SendError;
use crate::protocol::{encode_frame, FrameType, HEADER_LEN};

/// Callbacks into the embedding program. Every method has a default that
/// does nothing, and `()` implements the trait for a heartbeat-only client.
///
/// Each connection that came up ends in exactly one `disconnected`; an
/// attempt that never came up ends in `connect_failed` instead.
pub trait Handler {
    /// A connection came up.
    fn connected(&mut self, _out: &mut Outbox<'_>) {}
    /// A data frame arrived.
    fn data(&mut self, _payload: &[u8], _out: &mut Outbox<'_>) {}
    /// A connection that was up has ended. The client reconnects, unless
    /// it was closed or shut down ([`Reason::Requested`]).
    fn disconnected(&mut self, _reason: &Reason) {}
    /// A connect attempt failed ([`Reason::ConnectFailed`] or
    /// [`Reason::ConnectTimeout`]; every address of a name was tried); the
    /// next begins in `retry_in`.
    fn connect_failed(&mut self, _reason: &Reason, _retry_in: Duration) {}
}

impl Handler for () {}

/// Lets a [`Handler`] send data frames on the current connection.
pub struct Outbox<'a> {
    pub(super) buf: &'a mut Vec<u8>,
    pub(super) max_frame: usize,
    pub(super) max_backlog: usize,
}

impl Outbox<'_> {
    /// Queues one data frame; it is written when the callback returns.
    pub fn send_data(&mut self, payload: &[u8]) -> Result<(), SendError> {
        queue_data(self.buf, self.max_frame, self.max_backlog, payload)
    }
}

/// The share of `max_backlog` data frames may fill. The last quarter is
/// kept for heartbeats and replies: a program that keeps the backlog full
/// of data (refused, retrying) must not leave the client's own heartbeat
/// to push it past the bound and close a server that does read, slowly.
fn data_limit(max_backlog: usize) -> usize {
    max_backlog - max_backlog / 4
}

/// Appends one data frame to `buf`, or says why not (nothing is appended
/// then).
pub(super) fn queue_data(
    buf: &mut Vec<u8>,
    max_frame: usize,
    max_backlog: usize,
    payload: &[u8],
) -> Result<(), SendError> {
    if HEADER_LEN + payload.len() > max_frame {
        return Err(SendError::TooLarge);
    }
    if buf.len() + HEADER_LEN + payload.len() > data_limit(max_backlog) {
        return Err(SendError::Backlog);
    }
    encode_frame(FrameType::Data, payload, buf).map_err(|_| SendError::TooLarge)
}

/// Whether `unsent` bytes, left after the kernel took what it would, mean
/// the server does not read. Bounds the client's output buffer: every
/// request the server sends queues a reply, so a server that sends and
/// never reads would otherwise grow it without limit.
pub(super) fn slow_reader(unsent: usize, max_backlog: usize) -> bool {
    unsent > max_backlog
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::HEARTBEAT_REQUEST;

    #[test]
    fn data_frames_fill_three_quarters_of_the_backlog_and_no_more() {
        let max_backlog = 1024;
        let mut buf = Vec::new();
        // 16-byte frames: 48 fit in 768 bytes, the 49th is refused.
        for _ in 0..48 {
            queue_data(&mut buf, 64, max_backlog, &[7; 8]).unwrap();
        }
        assert_eq!(buf.len(), 768);
        assert_eq!(
            queue_data(&mut buf, 64, max_backlog, &[7; 8]),
            Err(SendError::Backlog)
        );
        assert_eq!(buf.len(), 768, "a refused frame queues nothing");
        // The quarter kept back takes 32 heartbeats before the bound...
        buf.extend(std::iter::repeat_n(0, 32 * HEADER_LEN));
        assert!(!slow_reader(buf.len(), max_backlog));
        // ...and one more is a server that does not read.
        buf.extend_from_slice(&HEARTBEAT_REQUEST);
        assert!(slow_reader(buf.len(), max_backlog));
    }

    #[test]
    fn too_large_is_judged_before_the_backlog() {
        let mut buf = vec![0; 1024];
        assert_eq!(
            queue_data(&mut buf, 16, 1024, &[0; 9]),
            Err(SendError::TooLarge)
        );
        assert_eq!(
            queue_data(&mut buf, 16, 1024, &[0; 8]),
            Err(SendError::Backlog)
        );
    }

    #[test]
    fn the_smallest_backlog_still_bounds() {
        // HEADER_LEN is the least `max_backlog` accepted: one heartbeat
        // may wait, a second may not; no data frame fits.
        assert!(!slow_reader(HEADER_LEN, HEADER_LEN));
        assert!(slow_reader(2 * HEADER_LEN, HEADER_LEN));
        assert_eq!(
            queue_data(&mut Vec::new(), 64, HEADER_LEN, &[]),
            Err(SendError::Backlog)
        );
        assert_eq!(data_limit(crate::client::DEFAULT_MAX_BACKLOG), 768 * 1024);
    }
}
