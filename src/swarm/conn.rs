//! One swarm connection's state, and the sans-IO pieces of its read path.

use crate::client::machine::{Machine, Reason};
use crate::client::target::Attempt;
use crate::protocol::{Decoder, Frame, FrameType, Kind, Payloads};
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
    /// Its last read stopped at the read budget with data waiting; it is
    /// in the swarm's list to read on next turn.
    pub unfinished: bool,
    /// Which addresses the current connect attempt has tried.
    pub attempt: Attempt,
    /// When the current (or last) connect attempt began, on the swarm's
    /// running clock (its own stalls taken out): how long a connect has
    /// hung, and how long after its connect a connection was closed.
    pub since: Tick,
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
    /// Bytes discarded as neither frames nor replies (lenient only).
    pub dropped: u64,
    /// Why the connection must close, if it must.
    pub error: Option<Reason>,
}

/// A fixed reply and its string-search automaton (Knuth–Morris–Pratt):
/// `fallback[j]` is the length of the longest proper prefix of
/// `reply[..=j]` that is also its suffix. After a mismatch a lenient reader
/// falls back to it instead of starting over, so a reply that overlaps the
/// garbage before it (`ABAC` inside `ABABAC`) is still found. Built once per
/// swarm; a connection holds only how much it has matched.
pub(super) struct Pattern {
    reply: Box<[u8]>,
    fallback: Box<[usize]>,
}

impl Pattern {
    pub fn new(reply: &[u8]) -> Pattern {
        let mut fallback = vec![0; reply.len()];
        let mut k = 0;
        for j in 1..reply.len() {
            while k > 0 && reply[j] != reply[k] {
                k = fallback[k - 1];
            }
            if reply[j] == reply[k] {
                k += 1;
            }
            fallback[j] = k;
        }
        Pattern {
            reply: reply.into(),
            fallback: fallback.into_boxed_slice(),
        }
    }

    /// The reply's length.
    pub fn len(&self) -> usize {
        self.reply.len()
    }

    /// The matched length after `byte`, from `matched`.
    fn step(&self, mut matched: usize, byte: u8) -> usize {
        while matched > 0 && self.reply[matched] != byte {
            matched = self.fallback[matched - 1];
        }
        if self.reply[matched] == byte {
            matched + 1
        } else {
            0
        }
    }
}

impl Reader {
    /// A reader for lubdub frames, or for a fixed reply when `fixed`.
    pub fn new(fixed: bool) -> Reader {
        if fixed {
            Reader::Fixed { matched: 0 }
        } else {
            Reader::Frames(Decoder::new())
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
    ///
    /// Strict, anything but frames (or the exact reply, repeated) closes
    /// the connection. Lenient, only what cannot be part of a frame (or of
    /// the reply) is discarded, and every whole reply in the same read is
    /// kept.
    pub fn read(
        &mut self,
        bytes: &[u8],
        pattern: &Pattern,
        max_frame: usize,
        lenient: bool,
    ) -> ReadOutcome {
        let mut out = ReadOutcome::default();
        match self {
            Reader::Frames(decoder) => {
                let mut frame = |frame: Frame<'_>| match frame.kind {
                    Kind::Known(FrameType::HeartbeatResponse) => out.replies += 1,
                    _ => out.others += 1,
                };
                if lenient {
                    out.dropped =
                        decoder.feed_lenient(bytes, max_frame, Payloads::Skip, &mut frame) as u64;
                } else if let Err(e) =
                    decoder.feed_with(bytes, max_frame, Payloads::Skip, &mut frame)
                {
                    out.error = Some(Reason::Protocol(e));
                }
            }
            Reader::Fixed { matched } => {
                let carried = *matched as u64;
                for &b in bytes {
                    *matched = if lenient {
                        pattern.step(*matched, b)
                    } else if b == pattern.reply[*matched] {
                        *matched + 1
                    } else {
                        out.error = Some(Reason::UnexpectedReply);
                        return out;
                    };
                    if *matched == pattern.len() {
                        out.replies += 1;
                        *matched = 0;
                    }
                }
                // Every byte is in a reply, in the partial match left over,
                // or discarded.
                out.dropped = (bytes.len() as u64 + carried)
                    - u64::from(out.replies) * pattern.len() as u64
                    - *matched as u64;
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
        let pong = Pattern::new(PONG);
        let mut r = Reader::new(true);
        assert_eq!(r.read(b"+PO", &pong, 0, false).replies, 0);
        assert_eq!(r.read(b"NG\r\n+PONG\r\n+", &pong, 0, false).replies, 2);
        assert_eq!(r.read(b"PONG\r\n", &pong, 0, false).replies, 1);
    }

    #[test]
    fn fixed_mismatch_is_an_error_unless_lenient() {
        let pong = Pattern::new(PONG);
        let mut r = Reader::new(true);
        let out = r.read(b"-ERR\r\n", &pong, 0, false);
        assert_eq!(out.error, Some(Reason::UnexpectedReply));
        let mut r = Reader::new(true);
        let out = r.read(b"hello there+PO+PONG\r\n", &pong, 0, true);
        assert_eq!((out.replies, out.dropped, out.error), (1, 14, None));
    }

    #[test]
    fn a_lenient_fixed_reply_is_found_where_it_overlaps_the_garbage_before_it() {
        // ABAC inside ABABAC: after the mismatch at the second B the match
        // must go on from AB, not start over at the first byte.
        let abac = Pattern::new(b"ABAC");
        for split in 0..=6 {
            let mut r = Reader::new(true);
            let text = b"ABABAC";
            let a = r.read(&text[..split], &abac, 0, true);
            let b = r.read(&text[split..], &abac, 0, true);
            assert_eq!(a.replies + b.replies, 1, "split at {split}");
            assert_eq!(a.dropped + b.dropped, 2, "split at {split}");
        }
        // And the naive restart-at-the-first-byte rule would miss this one.
        let mut r = Reader::new(true);
        assert_eq!(
            r.read(b"AABAABAAC", &Pattern::new(b"AABAAC"), 0, true)
                .replies,
            1
        );
    }

    #[test]
    fn frames_count_replies_and_others() {
        let none = Pattern::new(&[]);
        let mut r = Reader::new(false);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&HEARTBEAT_RESPONSE);
        bytes.extend_from_slice(&HEARTBEAT_REQUEST);
        bytes.extend_from_slice(&HEARTBEAT_RESPONSE[..3]);
        let out = r.read(&bytes, &none, 65536, false);
        assert_eq!((out.replies, out.others, out.error), (1, 1, None));
        let out = r.read(&HEARTBEAT_RESPONSE[3..], &none, 65536, false);
        assert_eq!(out.replies, 1);
    }

    #[test]
    fn frames_garbage_closes_unless_lenient() {
        let none = Pattern::new(&[]);
        let text = b"Welcome to the heartbeat server!!!\r\n";
        assert_eq!(text.len(), 36);
        let mut r = Reader::new(false);
        assert!(matches!(
            r.read(text, &none, 65536, false).error,
            Some(Reason::Protocol(_))
        ));
        // Lenient: the welcome goes, the reply in the same read stays.
        let mut r = Reader::new(false);
        let mut read = text.to_vec();
        read.extend_from_slice(&HEARTBEAT_RESPONSE);
        let out = r.read(&read, &none, 65536, true);
        assert_eq!((out.replies, out.dropped, out.error), (1, 36, None));
        assert_eq!(r.read(&HEARTBEAT_RESPONSE, &none, 65536, true).replies, 1);
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

#[cfg(test)]
mod size {
    /// What one swarm connection costs, besides its ring of send stamps (4
    /// bytes a request in flight): the docs state it, this keeps it true.
    #[test]
    fn a_swarm_connection_stays_within_its_stated_size() {
        let conn = std::mem::size_of::<super::Conn>();
        assert!(conn <= 320, "a swarm Conn grew to {conn} bytes");
        eprintln!("swarm Conn: {conn} bytes");
    }
}
