//! The incremental, per-connection frame decoder.

use super::*;

/// Incremental decoder for one connection's byte stream.
///
/// Feed it whatever each read returned; it calls back once per complete
/// frame, in order. It holds no heap memory while idle, inside a header, while
/// skipping a reserved frame, or when frames arrive whole; only a data frame
/// whose payload is split across reads is buffered, in a buffer that grows
/// with the bytes actually received (never past the announced length) and is
/// freed when the frame completes.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Between frames (`have == 0`) or inside a header: the first `have`
    /// header bytes are kept inline; the eighth completes it.
    Header { buf: [u8; HEADER_LEN - 1], have: u8 },
    /// A data frame whose payload began in an earlier read: `body` holds the
    /// part received so far (possibly none yet), out of `payload_len` bytes.
    /// Invariant: `body.len() < payload_len`. Boxed so that this rare state
    /// does not widen every connection's decoder (16 bytes instead of 32).
    Body(Box<Partial>),
    /// A frame whose payload is being skipped (a reserved frame, or a data
    /// frame when payloads are [`Payloads::Skip`]ped): `left` (> 0) of its
    /// `len` bytes are still to come.
    Skip { ty: i32, len: u32, left: u32 },
    /// A malformed header was seen; every later feed returns this error.
    /// Boxed for the same reason as `Body`; the connection is closing anyway.
    /// The header's eight bytes are kept with it, for the log line that
    /// says what the peer sent instead of a frame.
    Failed(Box<(DecodeError, [u8; HEADER_LEN])>),
}

/// What the decoder does with data frames' payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payloads {
    /// Hand them to the callback: borrowed when whole in the input, buffered
    /// (up to the announced length) while split across reads.
    Deliver,
    /// Never look at them: data frames are counted through like reserved
    /// ones and reported with an empty payload once their last byte is in.
    /// Nothing is ever buffered, so a peer announcing a large frame and
    /// trickling its body costs no memory.
    Skip,
}

/// A data payload split across reads.
#[derive(Debug)]
struct Partial {
    body: Vec<u8>,
    payload_len: u32,
}

const IDLE: State = State::Header {
    buf: [0; HEADER_LEN - 1],
    have: 0,
};

impl Decoder {
    /// A decoder between frames.
    pub const fn new() -> Self {
        Decoder { state: IDLE }
    }

    /// Feeds bytes just read.
    ///
    /// Calls `on_frame` for every complete frame, in order, borrowing the
    /// payload from `input` when the frame's payload lies whole inside it
    /// (zero copy). Returns `Err` on the first malformed header, as soon as
    /// its eight bytes are in; frames before it have been delivered, none
    /// after it are. After an error the decoder stays failed: further feeds
    /// return the same error and deliver nothing.
    ///
    /// `max_frame` is the largest total frame length accepted (see
    /// [`Header::parse`]); [`DEFAULT_MAX_FRAME`] unless configured.
    pub fn feed(
        &mut self,
        input: &[u8],
        max_frame: usize,
        on_frame: impl FnMut(Frame<'_>),
    ) -> Result<(), DecodeError> {
        self.feed_with(input, max_frame, Payloads::Deliver, on_frame)
    }

    /// [`feed`](Self::feed), choosing what happens to data payloads. With
    /// [`Payloads::Skip`] the decoder never allocates.
    ///
    /// One decoder should be fed with one policy for its whole life; a data
    /// frame already being buffered when the policy changes is finished as
    /// it began.
    pub fn feed_with(
        &mut self,
        input: &[u8],
        max_frame: usize,
        payloads: Payloads,
        on_frame: impl FnMut(Frame<'_>),
    ) -> Result<(), DecodeError> {
        self.decode(input, max_frame, payloads, None, on_frame)
    }

    /// [`feed_with`](Self::feed_with) for a peer that mixes frames with
    /// bytes that are not frames (the original Qt server greets with
    /// unframed text): a malformed header costs only its first byte, and
    /// decoding resumes at the next — so only the bytes that cannot start a
    /// frame are discarded, and every whole frame around them is still
    /// handed out, even in the same read. Returns how many bytes were
    /// discarded. Never fails.
    ///
    /// Text resynchronises quickly: four ASCII bytes read as a length are
    /// at least 0x2020_2020, far over any `max_frame`. A header of a
    /// reserved type counts as garbage here: among bytes that are not all
    /// frames, a run that parses as one (any type, a length under the
    /// limit) is far more likely text than a frame, and taken for one it
    /// would swallow the real frames after it. So a lenient reader of a
    /// newer lubdub peer loses the framing of its reserved frames (their
    /// bodies are scanned like any other bytes); lenient reading is for
    /// peers that mix text with frames, which send none.
    pub fn feed_lenient(
        &mut self,
        input: &[u8],
        max_frame: usize,
        payloads: Payloads,
        on_frame: impl FnMut(Frame<'_>),
    ) -> usize {
        let mut discarded = 0;
        // Cannot fail: every header error is absorbed.
        let _ = self.decode(input, max_frame, payloads, Some(&mut discarded), on_frame);
        discarded
    }

    /// The decoder. With `discarded`, a malformed header drops its first
    /// byte (counted there) instead of failing.
    fn decode(
        &mut self,
        mut input: &[u8],
        max_frame: usize,
        payloads: Payloads,
        mut discarded: Option<&mut usize>,
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<(), DecodeError> {
        // HOT PATH: every heartbeat goes through here. Whole or split, a
        // heartbeat is parsed from `input` or from the 7-byte inline buffer
        // and handed out without allocating or formatting anything. The only
        // allocation in this function is `append` in the `Body` state (a data
        // payload split across reads); `DecodeError` is formatted by the
        // caller, if at all, after the connection is already doomed.
        loop {
            match &mut self.state {
                State::Failed(failed) => return Err(failed.0),
                State::Header { buf, have } => {
                    let held = usize::from(*have);
                    let mut bytes = [0u8; HEADER_LEN];
                    if held == 0 {
                        // Fast path for the overwhelmingly common input:
                        // whole heartbeats. Their 8 bytes are a constant, so
                        // one 8-byte compare replaces parsing and validating
                        // the header. Callgrind, 100-connection flood: `feed`
                        // went from 133 to 88 instructions per reply, the
                        // whole server from 596 to 551.
                        while let Some((head, rest)) = input.split_first_chunk::<HEADER_LEN>() {
                            let kind = match *head {
                                HEARTBEAT_REQUEST => FrameType::HeartbeatRequest,
                                HEARTBEAT_RESPONSE => FrameType::HeartbeatResponse,
                                _ => break,
                            };
                            input = rest;
                            on_frame(Frame {
                                kind: Kind::Known(kind),
                                payload: &[],
                            });
                        }
                        // Between frames: the header usually lies whole in `input`.
                        match input.split_first_chunk::<HEADER_LEN>() {
                            Some((whole, rest)) => {
                                bytes = *whole;
                                input = rest;
                            }
                            None => {
                                buf[..input.len()].copy_from_slice(input);
                                // `input.len() < HEADER_LEN`, so it fits a u8.
                                *have = input.len() as u8;
                                return Ok(());
                            }
                        }
                    } else {
                        let need = HEADER_LEN - held;
                        let Some((tail, rest)) = input.split_at_checked(need) else {
                            buf[held..held + input.len()].copy_from_slice(input);
                            *have += input.len() as u8;
                            return Ok(());
                        };
                        bytes[..held].copy_from_slice(&buf[..held]);
                        bytes[held..].copy_from_slice(tail);
                        *have = 0;
                        input = rest;
                    }
                    // Read leniently, a header of a reserved type is taken for
                    // garbage (see `feed_lenient`).
                    let lenient = discarded.is_some();
                    let parsed = match Header::parse(&bytes, max_frame) {
                        Ok(h) if lenient && matches!(h.kind(), Kind::Reserved(_)) => {
                            Err(DecodeError::LenTooSmall { len: 0 })
                        }
                        other => other,
                    };
                    match parsed {
                        Ok(header) => {
                            input = self.start_payload(header, input, payloads, &mut on_frame)
                        }
                        Err(_) if discarded.is_some() => {
                            // Lenient: the first byte goes, the other seven
                            // are the start of the next candidate header.
                            if let Some(count) = discarded.as_deref_mut() {
                                *count += 1;
                            }
                            let mut rest = [0u8; HEADER_LEN - 1];
                            rest.copy_from_slice(&bytes[1..]);
                            self.state = State::Header {
                                buf: rest,
                                have: (HEADER_LEN - 1) as u8,
                            };
                        }
                        Err(e) => {
                            self.state = State::Failed(Box::new((e, bytes)));
                            return Err(e);
                        }
                    }
                }
                State::Body(partial) => {
                    let Partial { body, payload_len } = &mut **partial;
                    let payload_len = *payload_len as usize;
                    let want = payload_len - body.len();
                    let (part, rest) = input.split_at(want.min(input.len()));
                    append(body, payload_len, part);
                    input = rest;
                    if body.len() < payload_len {
                        return Ok(());
                    }
                    let body = std::mem::take(body);
                    self.state = IDLE;
                    on_frame(Frame {
                        kind: Kind::Known(FrameType::Data),
                        payload: &body,
                    });
                    // `body` drops here: the buffer is released with the frame.
                }
                State::Skip { ty, left, .. } => {
                    let skipped = (*left as usize).min(input.len());
                    input = &input[skipped..];
                    // `skipped <= *left`, a u32.
                    *left -= skipped as u32;
                    if *left > 0 {
                        return Ok(());
                    }
                    let kind = Kind::from_i32(*ty);
                    self.state = IDLE;
                    on_frame(Frame { kind, payload: &[] });
                }
            }
        }
    }

    /// Handles the payload that follows a just-parsed `header` (the decoder is
    /// idle on entry): delivers the frame if it lies whole in `input`,
    /// otherwise records what is missing. Returns the input left over.
    fn start_payload<'i>(
        &mut self,
        header: Header,
        input: &'i [u8],
        payloads: Payloads,
        on_frame: &mut impl FnMut(Frame<'_>),
    ) -> &'i [u8] {
        let payload_len = header.payload_len();
        let kind = header.kind();
        let skip = match kind {
            Kind::Reserved(_) => true,
            Kind::Known(_) => payloads == Payloads::Skip,
        };
        if let Some((payload, rest)) = input.split_at_checked(payload_len) {
            let payload = if skip { &[][..] } else { payload };
            on_frame(Frame { kind, payload });
            return rest;
        }
        // A heartbeat's payload is empty and always "fits", so only data and
        // reserved frames get here. `Header` guarantees lengths fit a u32.
        if skip {
            self.state = State::Skip {
                ty: kind.to_i32(),
                len: header.len,
                left: (payload_len - input.len()) as u32,
            };
        } else {
            debug_assert_eq!(
                kind,
                Kind::Known(FrameType::Data),
                "header {header:?}, input {}",
                input.len()
            );
            let mut body = Vec::new();
            append(&mut body, payload_len, input);
            self.state = State::Body(Box::new(Partial {
                body,
                payload_len: payload_len as u32,
            }));
        }
        &[]
    }

    /// Bytes of the incomplete frame received so far, header included (for a
    /// reserved frame, the bytes skipped so far). 0 when idle between frames
    /// or after an error.
    pub fn pending(&self) -> usize {
        match &self.state {
            State::Header { have, .. } => usize::from(*have),
            State::Body(partial) => HEADER_LEN + partial.body.len(),
            State::Skip { len, left, .. } => (*len - *left) as usize,
            State::Failed(_) => 0,
        }
    }

    /// The fewest more bytes that could complete a frame: what the
    /// current one still lacks, or a whole header between frames (a
    /// heartbeat is nothing more). `usize::MAX` after an error: no frame
    /// completes then. Fewer bytes than this waiting in a socket cannot
    /// prove its peer alive.
    pub fn missing(&self) -> usize {
        match &self.state {
            State::Header { have, .. } => HEADER_LEN - usize::from(*have),
            State::Body(partial) => partial.payload_len as usize - partial.body.len(),
            State::Skip { left, .. } => *left as usize,
            State::Failed(_) => usize::MAX,
        }
    }

    /// True while a frame has begun but not completed.
    pub fn is_mid_frame(&self) -> bool {
        match &self.state {
            State::Header { have, .. } => *have > 0,
            State::Body(_) | State::Skip { .. } => true,
            State::Failed(_) => false,
        }
    }

    /// Heap bytes held (the capacity of a split data payload's buffer); 0
    /// unless a data frame's payload is split across reads.
    pub fn heap_bytes(&self) -> usize {
        match &self.state {
            State::Body(partial) => partial.body.capacity(),
            _ => 0,
        }
    }

    /// The error this decoder failed with, if it has.
    pub fn error(&self) -> Option<DecodeError> {
        match &self.state {
            State::Failed(failed) => Some(failed.0),
            _ => None,
        }
    }

    /// The eight bytes of the malformed header this decoder failed on, if
    /// it has: what the peer sent instead of a frame.
    pub fn failed_header(&self) -> Option<[u8; HEADER_LEN]> {
        match &self.state {
            State::Failed(failed) => Some(failed.1),
            _ => None,
        }
    }

    /// The first bytes of a header not yet whole (empty between frames and
    /// in any other state): what a peer that closed mid-header had sent.
    pub fn partial_header(&self) -> &[u8] {
        match &self.state {
            State::Header { buf, have } => &buf[..usize::from(*have)],
            _ => &[],
        }
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// Appends `bytes` to a split payload of `payload_len` bytes. Capacity
/// doubles (amortised O(1) even for a peer trickling one byte per read) but
/// never exceeds `payload_len`, and is only taken for bytes actually received:
/// a peer that announces 64 KiB and sends ten bytes costs about ten bytes.
fn append(body: &mut Vec<u8>, payload_len: usize, bytes: &[u8]) {
    let needed = body.len() + bytes.len();
    debug_assert!(
        needed <= payload_len,
        "needed {needed} > payload_len {payload_len}"
    );
    if needed > body.capacity() {
        let target = needed.max(body.capacity() * 2).min(payload_len);
        body.reserve_exact(target - body.len());
    }
    body.extend_from_slice(bytes);
}
