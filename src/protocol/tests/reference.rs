//! A reference decoder, and the check that holds a [`Decoder`] to it.
//!
//! The reference is deliberately naive: it takes the whole stream at once,
//! walks it frame by frame, and validates each header the way
//! `Header::parse` is documented to, without calling it. [`check`] feeds the
//! same stream to a real `Decoder` in chunks and compares, after every feed,
//! the frames and error that came out and what the decoder says about itself
//! (`pending`, `is_mid_frame`, `heap_bytes`, `error`).
//!
//! This file uses the crate's public API only, through `super::`: the fuzz
//! target (`fuzz/fuzz_targets/decoder.rs`) includes it by path, so the
//! property tests and the fuzzer share one oracle.

use std::fmt;

use super::{
    field, DecodeError, Decoder, FrameType, Kind, Payloads, HEADER_LEN, HEARTBEAT_REQUEST,
};

/// One complete frame as the reference decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefFrame<'a> {
    /// Offset of the frame's first byte in the stream.
    pub start: usize,
    /// Offset just past its last byte.
    pub end: usize,
    /// What its `type` field says.
    pub kind: Kind,
    /// The payload of a data frame; empty for every other kind.
    pub payload: &'a [u8],
}

/// How the stream ends, after the last complete frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefEnd {
    /// On a frame boundary.
    Clean,
    /// Inside a frame that begins at `start`; `header` is its kind and total
    /// length once its eight header bytes are in (and valid).
    Partial {
        /// Offset of the frame's first byte.
        start: usize,
        /// Kind and announced total length, if the header is whole.
        header: Option<(Kind, usize)>,
    },
    /// At a malformed header beginning at `start`.
    Failed {
        /// Offset of the header's first byte.
        start: usize,
        /// What is wrong with it.
        error: DecodeError,
    },
}

/// Everything the reference makes of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference<'a> {
    /// The complete frames before the end (or the first malformed header).
    pub frames: Vec<RefFrame<'a>>,
    /// What follows them.
    pub end: RefEnd,
}

fn le_i32(bytes: &[u8]) -> i32 {
    i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Decodes a whole stream at once: header, checks, body, next.
pub fn reference(stream: &[u8], max_frame: usize) -> Reference<'_> {
    let max = max_frame.max(HEADER_LEN);
    let mut frames = Vec::new();
    let mut start = 0;
    let end = loop {
        let Some(header) = stream.get(start..start + HEADER_LEN) else {
            break if start == stream.len() {
                RefEnd::Clean
            } else {
                RefEnd::Partial {
                    start,
                    header: None,
                }
            };
        };
        let ty = le_i32(&header[field::TYPE]);
        let len = le_i32(&header[field::LEN]);
        let kind = match ty {
            0 => Kind::Known(FrameType::HeartbeatRequest),
            1 => Kind::Known(FrameType::HeartbeatResponse),
            2 => Kind::Known(FrameType::Data),
            other => Kind::Reserved(other),
        };
        // The same checks, in the same order, as `Header::parse`.
        let error = if len < HEADER_LEN as i32 {
            Some(DecodeError::LenTooSmall { len })
        } else if len as usize > max {
            Some(DecodeError::LenTooLarge { len, max })
        } else {
            match kind {
                Kind::Known(t @ (FrameType::HeartbeatRequest | FrameType::HeartbeatResponse))
                    if len as usize != HEADER_LEN =>
                {
                    Some(DecodeError::HeartbeatLen { kind: t, len })
                }
                _ => None,
            }
        };
        if let Some(error) = error {
            break RefEnd::Failed { start, error };
        }
        let end = start + len as usize;
        if end > stream.len() {
            break RefEnd::Partial {
                start,
                header: Some((kind, len as usize)),
            };
        }
        let payload = match kind {
            Kind::Known(FrameType::Data) => &stream[start + HEADER_LEN..end],
            _ => &[],
        };
        frames.push(RefFrame {
            start,
            end,
            kind,
            payload,
        });
        start = end;
    };
    Reference { frames, end }
}

/// A frame as a decoder handed it out, owned so that a feed's frames can be
/// collected and compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    /// The frame's kind.
    pub kind: Kind,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Returns `Err` with the message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Feeds `stream` to a fresh [`Decoder`] in consecutive chunks of the given
/// lengths, each with its own payload policy (a length past the end is
/// clamped; bytes left after the last chunk are fed as one more chunk under
/// the last chunk's policy, or [`Payloads::Deliver`] if there is none), then,
/// if the decoder failed, a heartbeat and an empty feed. After every feed it
/// checks, against [`reference`]:
///
/// - the feed returned exactly the frames whose last byte it brought, in
///   order, each with the reference's kind, and with its payload if and only
///   if it is a data frame whose header was completed by a `Deliver` feed
///   (the documented rule for a policy that changes mid-frame);
/// - the feed that brings a malformed header's eighth byte returns its
///   error, and every later feed returns the same error and no frame;
/// - `pending()` is the number of bytes since the last frame boundary,
///   `is_mid_frame()` whether that is non-zero, and `error()` the error once
///   failed (with `pending()` 0 and no longer mid-frame);
/// - `heap_bytes()` is 0 unless a data frame that began under `Deliver` has
///   part of its payload in; then it holds at least the payload bytes
///   received, at most twice that, and never more than the announced
///   payload length. So a decoder fed only with `Skip` never allocates.
///
/// Returns a description of the first disagreement.
pub fn check(stream: &[u8], feeds: &[(usize, Payloads)], max_frame: usize) -> Result<(), String> {
    let expected = reference(stream, max_frame);
    // The chunks as (from, to, policy), covering the stream exactly.
    let mut chunks = Vec::with_capacity(feeds.len() + 1);
    let mut at = 0;
    for &(len, policy) in feeds {
        let to = at + len.min(stream.len() - at);
        chunks.push((at, to, policy));
        at = to;
    }
    if at < stream.len() {
        let last = feeds
            .last()
            .map_or(Payloads::Deliver, |&(_, policy)| policy);
        chunks.push((at, stream.len(), last));
    }
    // The policy of the feed that brought the byte before `offset`: for a
    // header ending at `offset`, the policy its frame is decoded under.
    let policy_before = |offset: usize| {
        chunks
            .iter()
            .find(|&&(from, to, _)| from < offset && offset <= to)
            .map(|&(_, _, policy)| policy)
    };
    let failed_at = match expected.end {
        RefEnd::Failed { start, error } => Some((start + HEADER_LEN, error)),
        _ => None,
    };

    let mut dec = Decoder::new();
    let mut failed = None;
    let mut got = Vec::new();
    for (i, &(from, to, policy)) in chunks.iter().enumerate() {
        let feed = Feed {
            i,
            from,
            to,
            policy,
        };
        got.clear();
        let result = dec.feed_with(&stream[from..to], max_frame, policy, |f| {
            got.push(Got {
                kind: f.kind,
                payload: f.payload.to_vec(),
            })
        });
        if let Some(error) = failed {
            ensure!(
                result == Err(error) && got.is_empty(),
                "{feed}: failed with {error:?} earlier, now {result:?} and {got:?}"
            );
            check_failed(&dec, error).map_err(|e| format!("{feed}: {e}"))?;
            continue;
        }
        let want: Vec<Got> = expected
            .frames
            .iter()
            .filter(|f| from < f.end && f.end <= to)
            .map(|f| Got {
                kind: f.kind,
                payload: match policy_before(f.start + HEADER_LEN) {
                    Some(Payloads::Deliver) => f.payload.to_vec(),
                    _ => Vec::new(),
                },
            })
            .collect();
        ensure!(got == want, "{feed}: frames {got:?}, expected {want:?}");
        match failed_at {
            Some((header_end, error)) if from < header_end && header_end <= to => {
                ensure!(
                    result == Err(error),
                    "{feed}: {result:?}, expected {error:?} (header ends at {header_end})"
                );
                check_failed(&dec, error).map_err(|e| format!("{feed}: {e}"))?;
                failed = Some(error);
                continue;
            }
            _ => ensure!(result.is_ok(), "{feed}: {result:?}, expected Ok"),
        }

        // The frame in progress after this feed: where it began, and its
        // kind and length once its header is in.
        let (start, header) = match expected.frames.iter().find(|f| f.end > to) {
            Some(f) => (f.start, Some((f.kind, f.end - f.start))),
            None => match expected.end {
                RefEnd::Clean => (to, None),
                RefEnd::Partial { start, header } => (start, header),
                RefEnd::Failed { start, .. } => (start, None),
            },
        };
        let pending = to - start;
        let state = Report(&dec);
        ensure!(
            dec.pending() == pending
                && dec.is_mid_frame() == (pending > 0)
                && dec.error().is_none(),
            "{feed}: {state}; expected pending {pending}, no error"
        );
        let heap = dec.heap_bytes();
        match header {
            Some((Kind::Known(FrameType::Data), len))
                if pending > HEADER_LEN
                    && policy_before(start + HEADER_LEN) == Some(Payloads::Deliver) =>
            {
                let received = pending - HEADER_LEN;
                let announced = len - HEADER_LEN;
                ensure!(
                    received <= heap && heap <= announced.min(2 * received),
                    "{feed}: {state}; {received} of {announced} payload bytes buffered"
                );
            }
            _ => ensure!(heap == 0, "{feed}: {state}; expected no heap"),
        }
        if chunks[..=i].iter().all(|&(_, _, p)| p == Payloads::Skip) {
            ensure!(heap == 0, "{feed}: skipping, yet {state}");
        }
    }

    // The chunks cover the stream, so a malformed header has been met.
    if let Some(error) = failed {
        // A failed decoder stays failed, whatever it is fed and however.
        for (policy, input) in [
            (Payloads::Deliver, &HEARTBEAT_REQUEST[..]),
            (Payloads::Skip, &[][..]),
        ] {
            let mut delivered = 0;
            let result = dec.feed_with(input, max_frame, policy, |_| delivered += 1);
            ensure!(
                result == Err(error) && delivered == 0,
                "fed {input:?} after {error:?}: {result:?}, {delivered} frames"
            );
            check_failed(&dec, error)?;
        }
    }
    Ok(())
}

/// What a decoder that failed with `error` must say about itself.
fn check_failed(dec: &Decoder, error: DecodeError) -> Result<(), String> {
    ensure!(
        dec.error() == Some(error)
            && dec.pending() == 0
            && !dec.is_mid_frame()
            && dec.heap_bytes() == 0,
        "failed with {error:?}, but {}",
        Report(dec)
    );
    Ok(())
}

/// Names a feed in a failure message (formatted only on failure: the fuzz
/// target runs this check millions of times).
struct Feed {
    i: usize,
    from: usize,
    to: usize,
    policy: Payloads,
}

impl fmt::Display for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Feed {
            i,
            from,
            to,
            policy,
        } = self;
        write!(f, "feed {i} (bytes {from}..{to}, {policy:?})")
    }
}

/// What a decoder says about itself, for a failure message.
struct Report<'a>(&'a Decoder);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "pending {}, mid-frame {}, heap {}, error {:?}",
            d.pending(),
            d.is_mid_frame(),
            d.heap_bytes(),
            d.error()
        )
    }
}
