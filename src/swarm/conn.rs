//! One swarm connection's state, and the sans-IO pieces of its read path.

use crate::client::machine::{Machine, Reason};
use crate::protocol::{Decoder, FrameType, Kind};
use crate::time::Tick;
use crate::wheel::TimerId;

/// What the socket is doing, as far as the counters care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// No socket.
    Down,
    /// Connect in flight.
    Connecting,
    /// Connected.
    Up,
}

/// Per-connection state: the machine, the socket, its timer, its reply
/// matcher, its send stamps and its write position. Nothing here grows
/// after the swarm starts.
pub(super) struct Conn {
    pub machine: Machine,
    pub stream: Option<mio::net::TcpStream>,
    pub link: Link,
    /// The wheel entry that will wake this machine, and its deadline.
    pub timer: Option<(TimerId, Tick)>,
    pub reader: Reader,
    pub inflight: Inflight,
    /// Request bytes queued and not yet written. Requests are all alike, so
    /// the backlog is a count, not a buffer.
    pub unsent: u64,
    /// Offset into the request of the next unsent byte.
    pub write_pos: usize,
    /// Whether the server has sent anything on this connection: a server
    /// that closes before that rejected the connection.
    pub answered: bool,
    /// Closed on purpose (churn) and not yet back.
    pub churned: bool,
}

/// Recognises replies in the byte stream.
pub(super) enum Reader {
    /// lubdub framing.
    Frames(Decoder),
    /// A fixed reply string; `matched` bytes of it seen so far.
    Fixed { matched: usize },
}

/// What one read held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadOutcome {
    /// Complete replies.
    pub replies: u32,
    /// Complete frames that are not replies.
    pub others: u32,
    /// Whether bytes were dropped (lenient only).
    pub dropped: bool,
    /// Why the connection must close, if it must.
    pub error: Option<Reason>,
}

impl Reader {
    /// A reader for lubdub frames, or for `reply` when given.
    pub fn new(reply: Option<&[u8]>) -> Reader {
        match reply {
            Some(_) => Reader::Fixed { matched: 0 },
            None => Reader::Frames(Decoder::new()),
        }
    }

    /// Back to the start of a stream (a new connection).
    pub fn reset(&mut self) {
        match self {
            Reader::Frames(decoder) => *decoder = Decoder::new(),
            Reader::Fixed { matched } => *matched = 0,
        }
    }

    /// Parses one read. Hot path: no allocation, no formatting.
    pub fn read(
        &mut self,
        bytes: &[u8],
        reply: &[u8],
        max_frame: usize,
        lenient: bool,
    ) -> ReadOutcome {
        let mut out = ReadOutcome::default();
        match self {
            Reader::Frames(decoder) => {
                let result = decoder.feed(bytes, max_frame, |frame| match frame.kind {
                    Kind::Known(FrameType::HeartbeatResponse) => out.replies += 1,
                    _ => out.others += 1,
                });
                if let Err(e) = result {
                    if lenient {
                        *decoder = Decoder::new();
                        out.dropped = true;
                    } else {
                        out.error = Some(Reason::Protocol(e));
                    }
                }
            }
            Reader::Fixed { matched } => {
                for &b in bytes {
                    if b == reply[*matched] {
                        *matched += 1;
                    } else if lenient {
                        // Resynchronise on the first byte of the reply.
                        out.dropped = true;
                        *matched = usize::from(b == reply[0]);
                    } else {
                        out.error = Some(Reason::UnexpectedReply);
                        return out;
                    }
                    if *matched == reply.len() {
                        out.replies += 1;
                        *matched = 0;
                    }
                }
            }
        }
        out
    }
}

/// Send stamps of the requests in flight, oldest first; replies come back
/// in order on one TCP connection, so the oldest stamp is the one answered.
///
/// The ring is sized once (flood depth, or a few more than `misses`
/// heartbeats). Should more requests be outstanding than it holds (a server
/// far behind), the extra ones are counted but not stamped, and — since
/// every one of them was sent after every stamped one — their replies come
/// after all stamped replies and are counted, never timed: a reply is only
/// ever timed against the request it answers.
pub(super) struct Inflight {
    stamps: Box<[u32]>,
    head: usize,
    len: usize,
    /// Requests sent while the ring was full (or while earlier unstamped
    /// ones were still outstanding), all after the stamped ones.
    unstamped: u64,
}

/// What a reply was matched with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Matched {
    /// A request sent at this stamp.
    Stamped(u32),
    /// A request sent while the ring was full.
    Unstamped,
    /// No request was outstanding.
    Unsolicited,
}

impl Inflight {
    pub fn new(capacity: usize) -> Inflight {
        Inflight {
            stamps: vec![0; capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
            unstamped: 0,
        }
    }

    /// Requests sent and not answered.
    pub fn outstanding(&self) -> u64 {
        self.len as u64 + self.unstamped
    }

    /// One request sent at `stamp` (microseconds, wrapping).
    pub fn push(&mut self, stamp: u32) {
        // Only while no unstamped request is outstanding may a stamp go in:
        // it would otherwise be popped before replies to older requests.
        if self.unstamped == 0 && self.len < self.stamps.len() {
            let at = (self.head + self.len) % self.stamps.len();
            self.stamps[at] = stamp;
            self.len += 1;
        } else {
            self.unstamped += 1;
        }
    }

    /// One reply arrived.
    pub fn pop(&mut self) -> Matched {
        if self.len > 0 {
            let stamp = self.stamps[self.head];
            self.head = (self.head + 1) % self.stamps.len();
            self.len -= 1;
            Matched::Stamped(stamp)
        } else if self.unstamped > 0 {
            self.unstamped -= 1;
            Matched::Unstamped
        } else {
            Matched::Unsolicited
        }
    }

    /// The connection is gone: forget everything, return how many were outstanding.
    pub fn clear(&mut self) -> u64 {
        let outstanding = self.outstanding();
        self.head = 0;
        self.len = 0;
        self.unstamped = 0;
        outstanding
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE};

    const PONG: &[u8] = b"+PONG\r\n";

    #[test]
    fn fixed_replies_split_and_joined() {
        let mut r = Reader::new(Some(PONG));
        assert_eq!(r.read(b"+PO", PONG, 0, false).replies, 0);
        assert_eq!(r.read(b"NG\r\n+PONG\r\n+", PONG, 0, false).replies, 2);
        assert_eq!(r.read(b"PONG\r\n", PONG, 0, false).replies, 1);
    }

    #[test]
    fn fixed_mismatch_is_an_error_unless_lenient() {
        let mut r = Reader::new(Some(PONG));
        let out = r.read(b"-ERR\r\n", PONG, 0, false);
        assert_eq!(out.error, Some(Reason::UnexpectedReply));
        let mut r = Reader::new(Some(PONG));
        let out = r.read(b"hello there+PO+PONG\r\n", PONG, 0, true);
        assert_eq!((out.replies, out.dropped, out.error), (1, true, None));
    }

    #[test]
    fn frames_count_replies_and_others() {
        let mut r = Reader::new(None);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&HEARTBEAT_RESPONSE);
        bytes.extend_from_slice(&HEARTBEAT_REQUEST);
        bytes.extend_from_slice(&HEARTBEAT_RESPONSE[..3]);
        let out = r.read(&bytes, &[], 65536, false);
        assert_eq!((out.replies, out.others, out.error), (1, 1, None));
        let out = r.read(&HEARTBEAT_RESPONSE[3..], &[], 65536, false);
        assert_eq!(out.replies, 1);
    }

    #[test]
    fn frames_garbage_closes_unless_lenient() {
        let text = b"Welcome to the heartbeat server!!!\r\n";
        assert_eq!(text.len(), 36);
        let mut r = Reader::new(None);
        assert!(matches!(
            r.read(text, &[], 65536, false).error,
            Some(Reason::Protocol(_))
        ));
        let mut r = Reader::new(None);
        let out = r.read(text, &[], 65536, true);
        assert_eq!((out.dropped, out.error), (true, None));
        assert_eq!(r.read(&HEARTBEAT_RESPONSE, &[], 65536, true).replies, 1);
    }

    #[test]
    fn past_its_capacity_no_reply_is_ever_timed_against_a_later_request() {
        // Ring of 2; five requests; replies interleaved with new requests
        // as a flood refills. The old ring put stamp 60 into a freed slot
        // ahead of the two unstamped requests sent before it, and timed the
        // reply to the first of those against it.
        let mut f = Inflight::new(2);
        for stamp in [10, 20, 30, 40] {
            f.push(stamp);
        }
        assert_eq!(f.pop(), Matched::Stamped(10));
        f.push(60);
        assert_eq!(f.pop(), Matched::Stamped(20));
        assert_eq!(f.pop(), Matched::Unstamped, "the reply to 30");
        f.push(70);
        assert_eq!(f.pop(), Matched::Unstamped, "the reply to 40");
        assert_eq!(f.pop(), Matched::Unstamped, "the reply to 60");
        assert_eq!(f.pop(), Matched::Unstamped, "the reply to 70");
        assert_eq!(f.pop(), Matched::Unsolicited);
        // Drained: stamping resumes.
        f.push(80);
        assert_eq!(f.pop(), Matched::Stamped(80));
    }

    #[test]
    fn inflight_matches_oldest_first_and_counts_past_its_capacity() {
        let mut f = Inflight::new(2);
        assert_eq!(f.pop(), Matched::Unsolicited);
        f.push(10);
        f.push(20);
        f.push(30);
        assert_eq!(f.outstanding(), 3);
        assert_eq!(f.pop(), Matched::Stamped(10));
        assert_eq!(f.pop(), Matched::Stamped(20));
        assert_eq!(f.pop(), Matched::Unstamped);
        assert_eq!(f.pop(), Matched::Unsolicited);
        f.push(40);
        f.push(50);
        assert_eq!(f.clear(), 2);
        assert_eq!(f.outstanding(), 0);
        f.push(60);
        assert_eq!(f.pop(), Matched::Stamped(60));
    }
}
