//! The wire format: an 8-byte header, an optional payload, and an incremental
//! decoder that holds one connection's partial frame.
//!
//! # Layout
//!
//! Every frame starts with two little-endian `i32`s (see [`field`] for the
//! byte ranges, the only place offsets are written down):
//!
//! | bytes | field  | meaning                                                      |
//! |-------|--------|--------------------------------------------------------------|
//! | 0..4  | `type` | 0 heartbeat request, 1 heartbeat response, 2 data, else reserved |
//! | 4..8  | `len`  | total frame length in bytes, header included                 |
//!
//! A heartbeat is exactly [`HEADER_LEN`] bytes: [`HEARTBEAT_REQUEST`] and
//! [`HEARTBEAT_RESPONSE`]. Frames of reserved types (including negative ones)
//! with a valid `len` are skipped whole and reported as [`Kind::Reserved`], so
//! an old peer tolerates a newer one.
//!
//! # Errors
//!
//! [`Header::parse`] is the one checked constructor: `len` below the header,
//! `len` above `max_frame`, and a heartbeat whose `len` is not 8 are
//! [`DecodeError`]s. A connection that sends one is closed by the caller; the
//! [`Decoder`] reports the error as soon as the eight header bytes are in,
//! without waiting for the body the header announces.
//!
//! # Memory
//!
//! A [`Decoder`] is 32 bytes and holds no heap memory while idle, while inside
//! a header (up to seven bytes are kept inline), while skipping a reserved
//! frame, or when frames arrive whole. Only a data frame whose payload is split
//! across reads is buffered, and that buffer is freed when the frame completes,
//! so ten thousand idle connections cost ten thousand times 32 bytes here.

use std::fmt;

/// Byte ranges of the header fields, written down once.
pub mod field {
    use core::ops::Range;

    /// Frame type: little-endian `i32`, see [`FrameType`](super::FrameType).
    pub const TYPE: Range<usize> = 0..4;
    /// Total frame length in bytes, header included: little-endian `i32`.
    pub const LEN: Range<usize> = 4..8;
}

/// Length of the frame header, and of a whole heartbeat.
pub const HEADER_LEN: usize = field::LEN.end;

/// Largest frame (header included) accepted unless the caller says otherwise.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// The bytes of a heartbeat request: `00 00 00 00 08 00 00 00`.
pub const HEARTBEAT_REQUEST: [u8; HEADER_LEN] =
    Header::heartbeat(FrameType::HeartbeatRequest).encode();

/// The bytes of a heartbeat response: `01 00 00 00 08 00 00 00`.
pub const HEARTBEAT_RESPONSE: [u8; HEADER_LEN] =
    Header::heartbeat(FrameType::HeartbeatResponse).encode();

/// Largest payload whose frame length still fits the `i32` `len` field.
pub const MAX_PAYLOAD: usize = i32::MAX as usize - HEADER_LEN;

/// The frame types this version understands.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// "Are you there?" — answered with a [`FrameType::HeartbeatResponse`]. No payload.
    HeartbeatRequest = 0,
    /// The answer to a heartbeat request. No payload.
    HeartbeatResponse = 1,
    /// Application data; the payload is opaque to lubdub.
    Data = 2,
}

impl FrameType {
    /// True for the two heartbeat types, whose frames are exactly [`HEADER_LEN`] bytes.
    pub const fn is_heartbeat(self) -> bool {
        matches!(
            self,
            FrameType::HeartbeatRequest | FrameType::HeartbeatResponse
        )
    }
}

impl TryFrom<i32> for FrameType {
    type Error = ReservedType;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(FrameType::HeartbeatRequest),
            1 => Ok(FrameType::HeartbeatResponse),
            2 => Ok(FrameType::Data),
            other => Err(ReservedType(other)),
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameType::HeartbeatRequest => "heartbeat request",
            FrameType::HeartbeatResponse => "heartbeat response",
            FrameType::Data => "data",
        })
    }
}

/// A `type` value this version does not know: the error of `FrameType::try_from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReservedType(pub i32);

impl fmt::Display for ReservedType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame type {} is reserved", self.0)
    }
}

impl std::error::Error for ReservedType {}

/// What a header's `type` field says: a known [`FrameType`] or a reserved value.
///
/// Values made by this module are canonical: `Reserved` never holds 0, 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A type this version understands.
    Known(FrameType),
    /// A reserved type; such frames are skipped whole.
    Reserved(i32),
}

impl Kind {
    /// The kind for a raw `type` value.
    pub fn from_i32(value: i32) -> Kind {
        match FrameType::try_from(value) {
            Ok(t) => Kind::Known(t),
            Err(ReservedType(v)) => Kind::Reserved(v),
        }
    }

    /// The raw `type` value.
    pub const fn to_i32(self) -> i32 {
        match self {
            Kind::Known(t) => t as i32,
            Kind::Reserved(v) => v,
        }
    }
}

impl From<FrameType> for Kind {
    fn from(t: FrameType) -> Kind {
        Kind::Known(t)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Known(t) => t.fmt(f),
            Kind::Reserved(v) => write!(f, "reserved type {v}"),
        }
    }
}

/// A checked frame header. Its `len` is at least [`HEADER_LEN`], fits an
/// `i32`, and is exactly [`HEADER_LEN`] for heartbeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    kind: Kind,
    len: u32,
}

impl Header {
    const fn heartbeat(t: FrameType) -> Header {
        Header {
            kind: Kind::Known(t),
            len: HEADER_LEN as u32,
        }
    }

    /// The header of a frame of `kind` carrying `payload_len` bytes.
    ///
    /// A `Reserved` kind holding a known value is normalised to `Known`.
    pub fn new(kind: Kind, payload_len: usize) -> Result<Header, EncodeError> {
        let kind = Kind::from_i32(kind.to_i32());
        if payload_len > MAX_PAYLOAD {
            return Err(EncodeError::TooLarge { payload_len });
        }
        if let Kind::Known(t) = kind {
            if t.is_heartbeat() && payload_len != 0 {
                return Err(EncodeError::HeartbeatPayload {
                    kind: t,
                    payload_len,
                });
            }
        }
        Ok(Header {
            kind,
            len: (HEADER_LEN + payload_len) as u32,
        })
    }

    /// Checks the eight header bytes against the protocol and `max_frame`
    /// (the largest total frame length accepted; values below [`HEADER_LEN`]
    /// are raised to it, so heartbeats always fit).
    pub fn parse(bytes: &[u8; HEADER_LEN], max_frame: usize) -> Result<Header, DecodeError> {
        let kind = Kind::from_i32(read_i32(bytes, field::TYPE));
        let len = read_i32(bytes, field::LEN);
        // Negative lengths land here too: they are below the header.
        let Ok(len_u) = usize::try_from(len) else {
            return Err(DecodeError::LenTooSmall { len });
        };
        if len_u < HEADER_LEN {
            return Err(DecodeError::LenTooSmall { len });
        }
        let max = max_frame.max(HEADER_LEN);
        if len_u > max {
            return Err(DecodeError::LenTooLarge { len, max });
        }
        if let Kind::Known(t) = kind {
            if t.is_heartbeat() && len_u != HEADER_LEN {
                return Err(DecodeError::HeartbeatLen { kind: t, len });
            }
        }
        // `len` is a positive i32, so it fits a u32.
        Ok(Header {
            kind,
            len: len as u32,
        })
    }

    /// The frame's kind.
    pub const fn kind(&self) -> Kind {
        self.kind
    }

    /// Total frame length in bytes, header included: the `len` field.
    pub const fn frame_len(&self) -> usize {
        self.len as usize
    }

    /// Payload length in bytes (the frame length minus the header).
    pub const fn payload_len(&self) -> usize {
        self.len as usize - HEADER_LEN
    }

    /// The eight header bytes.
    pub const fn encode(&self) -> [u8; HEADER_LEN] {
        let ty = self.kind.to_i32().to_le_bytes();
        // `len` came from an i32 or from `new`, which checked it fits one.
        let len = (self.len as i32).to_le_bytes();
        let mut out = [0u8; HEADER_LEN];
        let mut i = 0;
        while i < ty.len() {
            out[field::TYPE.start + i] = ty[i];
            i += 1;
        }
        let mut i = 0;
        while i < len.len() {
            out[field::LEN.start + i] = len[i];
            i += 1;
        }
        out
    }
}

fn read_i32(bytes: &[u8; HEADER_LEN], range: core::ops::Range<usize>) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[range]);
    i32::from_le_bytes(raw)
}

/// One complete frame handed out by the [`Decoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame's kind.
    pub kind: Kind,
    /// The payload, header excluded. Borrowed from the bytes fed when the
    /// frame lay whole inside them. Always empty for heartbeats and for
    /// `Reserved` frames, whose payload is skipped, never buffered.
    pub payload: &'a [u8],
}

/// A malformed frame header. The connection that sent it should be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// `len` is below [`HEADER_LEN`] (this includes negative values).
    LenTooSmall {
        /// The `len` field as received.
        len: i32,
    },
    /// `len` is above the frame limit.
    LenTooLarge {
        /// The `len` field as received.
        len: i32,
        /// The limit in force.
        max: usize,
    },
    /// A heartbeat whose `len` is not [`HEADER_LEN`].
    HeartbeatLen {
        /// Which heartbeat.
        kind: FrameType,
        /// The `len` field as received.
        len: i32,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::LenTooSmall { len } => {
                write!(
                    f,
                    "frame length {len} is below the {HEADER_LEN}-byte header"
                )
            }
            DecodeError::LenTooLarge { len, max } => {
                write!(f, "frame length {len} exceeds the {max}-byte limit")
            }
            DecodeError::HeartbeatLen { kind, len } => {
                write!(f, "{kind} has frame length {len}, not {HEADER_LEN}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A frame that cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The frame length would not fit the `i32` `len` field.
    TooLarge {
        /// The payload length asked for.
        payload_len: usize,
    },
    /// Heartbeats carry no payload.
    HeartbeatPayload {
        /// Which heartbeat.
        kind: FrameType,
        /// The payload length asked for.
        payload_len: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::TooLarge { payload_len } => write!(
                f,
                "payload of {payload_len} bytes does not fit a frame (at most {MAX_PAYLOAD})"
            ),
            EncodeError::HeartbeatPayload { kind, payload_len } => {
                write!(f, "{kind} carries no payload, got {payload_len} bytes")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Appends one frame to `out`. Nothing is written on error.
///
/// This checks only what the wire format itself forbids; keeping frames under
/// the peer's `max_frame` is the caller's business. To answer heartbeats
/// without touching a `Vec`, write [`HEARTBEAT_RESPONSE`] directly.
pub fn encode_frame(kind: FrameType, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let header = Header::new(Kind::Known(kind), payload.len())?;
    out.reserve(header.frame_len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
    Ok(())
}

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
    /// A reserved frame being skipped: `left` (> 0) of its `len` bytes are
    /// still to come.
    Skip { ty: i32, len: u32, left: u32 },
    /// A malformed header was seen; every later feed returns this error.
    /// Boxed for the same reason as `Body`; the connection is closing anyway.
    Failed(Box<DecodeError>),
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
        mut input: &[u8],
        max_frame: usize,
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
                State::Failed(e) => return Err(**e),
                State::Header { buf, have } => {
                    let held = usize::from(*have);
                    let mut bytes = [0u8; HEADER_LEN];
                    if held == 0 {
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
                    match Header::parse(&bytes, max_frame) {
                        Ok(header) => input = self.start_payload(header, input, &mut on_frame),
                        Err(e) => {
                            self.state = State::Failed(Box::new(e));
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
                    let ty = *ty;
                    self.state = IDLE;
                    on_frame(Frame {
                        kind: Kind::Reserved(ty),
                        payload: &[],
                    });
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
        on_frame: &mut impl FnMut(Frame<'_>),
    ) -> &'i [u8] {
        let payload_len = header.payload_len();
        let kind = header.kind();
        if let Some((payload, rest)) = input.split_at_checked(payload_len) {
            let payload = if matches!(kind, Kind::Reserved(_)) {
                &[][..]
            } else {
                payload
            };
            on_frame(Frame { kind, payload });
            return rest;
        }
        // A heartbeat's payload is empty and always "fits", so only data and
        // reserved frames get here. `Header` guarantees lengths fit a u32.
        match kind {
            Kind::Reserved(ty) => {
                let left = (payload_len - input.len()) as u32;
                self.state = State::Skip {
                    ty,
                    len: header.len,
                    left,
                };
            }
            Kind::Known(t) => {
                debug_assert_eq!(
                    t,
                    FrameType::Data,
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
            State::Failed(e) => Some(**e),
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as the tests compare it: owned, so frames from different
    /// feeds can be collected.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Owned {
        kind: Kind,
        payload: Vec<u8>,
    }

    /// Raw frame bytes with any `type`, any `len` and any body (so malformed
    /// and reserved frames can be built).
    fn raw(ty: i32, len: i32, body: &[u8]) -> Vec<u8> {
        let mut out = [0u8; HEADER_LEN];
        out[field::TYPE].copy_from_slice(&ty.to_le_bytes());
        out[field::LEN].copy_from_slice(&len.to_le_bytes());
        let mut v = out.to_vec();
        v.extend_from_slice(body);
        v
    }

    /// Builds a stream of frames and the frames a decoder must yield for it.
    #[derive(Default)]
    struct Stream {
        bytes: Vec<u8>,
        frames: Vec<Owned>,
    }

    impl Stream {
        fn known(&mut self, t: FrameType, payload: &[u8]) -> &mut Self {
            encode_frame(t, payload, &mut self.bytes).unwrap();
            self.frames.push(Owned {
                kind: Kind::Known(t),
                payload: payload.to_vec(),
            });
            self
        }
        fn data(&mut self, len: usize, seed: u8) -> &mut Self {
            let payload: Vec<u8> = (0..len)
                .map(|i| seed.wrapping_add((i as u8).wrapping_mul(7)))
                .collect();
            self.known(FrameType::Data, &payload)
        }
        fn reserved(&mut self, ty: i32, body_len: usize) -> &mut Self {
            let body = vec![0xAB; body_len];
            self.bytes
                .extend(raw(ty, (HEADER_LEN + body_len) as i32, &body));
            self.frames.push(Owned {
                kind: Kind::Reserved(ty),
                payload: Vec::new(),
            });
            self
        }
    }

    /// Feeds `chunks` in order; returns the frames, the index of the feed
    /// that failed (if any) and the error.
    fn decode<'a>(
        chunks: impl IntoIterator<Item = &'a [u8]>,
        max: usize,
    ) -> (Vec<Owned>, Option<(usize, DecodeError)>) {
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let r = dec.feed(chunk, max, |f| {
                out.push(Owned {
                    kind: f.kind,
                    payload: f.payload.to_vec(),
                })
            });
            if let Err(e) = r {
                return (out, Some((i, e)));
            }
        }
        assert!(!dec.is_mid_frame(), "stream ended mid-frame: {dec:?}");
        assert_eq!(dec.pending(), 0);
        assert_eq!(dec.heap_bytes(), 0);
        (out, None)
    }

    /// Splits `bytes` at the (sorted, possibly repeated) `cuts`.
    fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut chunks = Vec::with_capacity(cuts.len() + 1);
        let mut start = 0;
        for &c in cuts {
            chunks.push(&bytes[start..c]);
            start = c;
        }
        chunks.push(&bytes[start..]);
        chunks
    }

    /// Every kind of frame, some payloads shorter and some longer than a header.
    fn small_mixed() -> Stream {
        let mut s = Stream::default();
        s.known(FrameType::HeartbeatRequest, &[])
            .known(FrameType::HeartbeatResponse, &[])
            .data(0, 1)
            .data(1, 2)
            .reserved(7, 3)
            .reserved(-1, 0)
            .data(5, 3)
            .reserved(i32::MIN, 0)
            .known(FrameType::HeartbeatRequest, &[])
            .data(13, 4)
            .reserved(3, 9)
            .known(FrameType::HeartbeatResponse, &[]);
        s
    }

    /// xorshift64: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn heartbeat_constants_match_the_wire_format() {
        assert_eq!(HEARTBEAT_REQUEST, [0, 0, 0, 0, 8, 0, 0, 0]);
        assert_eq!(HEARTBEAT_RESPONSE, [1, 0, 0, 0, 8, 0, 0, 0]);
        let mut out = Vec::new();
        encode_frame(FrameType::HeartbeatRequest, &[], &mut out).unwrap();
        encode_frame(FrameType::HeartbeatResponse, &[], &mut out).unwrap();
        assert_eq!(out[..HEADER_LEN], HEARTBEAT_REQUEST);
        assert_eq!(out[HEADER_LEN..], HEARTBEAT_RESPONSE);
    }

    #[test]
    fn frame_type_try_from_i32() {
        assert_eq!(FrameType::try_from(0), Ok(FrameType::HeartbeatRequest));
        assert_eq!(FrameType::try_from(1), Ok(FrameType::HeartbeatResponse));
        assert_eq!(FrameType::try_from(2), Ok(FrameType::Data));
        assert_eq!(FrameType::try_from(3), Err(ReservedType(3)));
        assert_eq!(FrameType::try_from(-1), Err(ReservedType(-1)));
        for t in [
            FrameType::HeartbeatRequest,
            FrameType::HeartbeatResponse,
            FrameType::Data,
        ] {
            assert_eq!(FrameType::try_from(t as i32), Ok(t));
            assert_eq!(Kind::from_i32(t as i32), Kind::Known(t));
        }
        assert_eq!(Kind::from_i32(i32::MIN), Kind::Reserved(i32::MIN));
    }

    #[test]
    fn encode_frame_writes_header_then_payload() {
        let mut out = vec![0xEE]; // appends, never clears
        encode_frame(FrameType::Data, b"abc", &mut out).unwrap();
        assert_eq!(out, [0xEE, 2, 0, 0, 0, 11, 0, 0, 0, b'a', b'b', b'c']);
    }

    #[test]
    fn encode_rejects_heartbeat_payload_and_oversize() {
        let mut out = Vec::new();
        for t in [FrameType::HeartbeatRequest, FrameType::HeartbeatResponse] {
            assert_eq!(
                encode_frame(t, b"x", &mut out),
                Err(EncodeError::HeartbeatPayload {
                    kind: t,
                    payload_len: 1
                })
            );
        }
        assert!(out.is_empty(), "nothing is written on error");
        // `encode_frame` checks through `Header::new`; a 2 GiB payload is
        // tested by length alone.
        assert!(Header::new(Kind::Known(FrameType::Data), MAX_PAYLOAD).is_ok());
        assert_eq!(
            Header::new(Kind::Known(FrameType::Data), MAX_PAYLOAD + 1),
            Err(EncodeError::TooLarge {
                payload_len: MAX_PAYLOAD + 1
            })
        );
        assert_eq!(
            Header::new(Kind::Known(FrameType::Data), MAX_PAYLOAD)
                .unwrap()
                .frame_len(),
            i32::MAX as usize
        );
    }

    #[test]
    fn header_encode_parse_round_trip() {
        let kinds = [
            Kind::Known(FrameType::HeartbeatRequest),
            Kind::Known(FrameType::HeartbeatResponse),
            Kind::Known(FrameType::Data),
            Kind::Reserved(3),
            Kind::Reserved(-1),
            Kind::Reserved(i32::MAX),
            Kind::Reserved(i32::MIN),
        ];
        for kind in kinds {
            for payload_len in [0, 1, 7, 8, 1000, MAX_PAYLOAD] {
                let Ok(h) = Header::new(kind, payload_len) else {
                    assert!(matches!(kind, Kind::Known(t) if t.is_heartbeat()) && payload_len > 0);
                    continue;
                };
                assert_eq!(h.kind(), kind);
                assert_eq!(h.payload_len(), payload_len);
                assert_eq!(h.frame_len(), payload_len + HEADER_LEN);
                let bytes = h.encode();
                assert_eq!(bytes[field::TYPE], kind.to_i32().to_le_bytes());
                assert_eq!(Header::parse(&bytes, usize::MAX), Ok(h));
            }
        }
        // A `Reserved` holding a known value is normalised.
        let h = Header::new(Kind::Reserved(2), 4).unwrap();
        assert_eq!(h.kind(), Kind::Known(FrameType::Data));
        assert_eq!(
            Header::new(Kind::Reserved(0), 0).unwrap().encode(),
            HEARTBEAT_REQUEST
        );
    }

    #[test]
    fn decoder_is_small() {
        let size = std::mem::size_of::<Decoder>();
        assert!(size <= 16, "Decoder is {size} bytes");
    }

    #[test]
    fn whole_stream_yields_the_frames_it_was_built_from() {
        let s = small_mixed();
        let (frames, err) = decode([&s.bytes[..]], DEFAULT_MAX_FRAME);
        assert_eq!(err, None);
        assert_eq!(frames, s.frames);
    }

    #[test]
    fn every_single_and_double_split_point_decodes_the_same() {
        let s = small_mixed();
        let n = s.bytes.len();
        for a in 0..=n {
            let (frames, err) = decode(split(&s.bytes, &[a]), DEFAULT_MAX_FRAME);
            assert_eq!(err, None, "cut at {a}");
            assert_eq!(frames, s.frames, "cut at {a}");
            for b in a..=n {
                let (frames, err) = decode(split(&s.bytes, &[a, b]), DEFAULT_MAX_FRAME);
                assert_eq!(err, None, "cuts at {a}, {b}");
                assert_eq!(frames, s.frames, "cuts at {a}, {b}");
            }
        }
    }

    #[test]
    fn byte_at_a_time_decodes_the_same() {
        let s = small_mixed();
        let (frames, err) = decode(s.bytes.chunks(1), DEFAULT_MAX_FRAME);
        assert_eq!(err, None);
        assert_eq!(frames, s.frames);
    }

    #[test]
    fn random_many_cut_splits_decode_the_same() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut s = Stream::default();
        for i in 0..300 {
            match rng.below(6) {
                0 => s.known(FrameType::HeartbeatRequest, &[]),
                1 => s.known(FrameType::HeartbeatResponse, &[]),
                2 => s.data(rng.below(20), i as u8),
                3 => s.data(rng.below(5000), i as u8),
                4 => s.reserved(3 + rng.below(100) as i32, rng.below(300)),
                _ => s.reserved(-(rng.below(1000) as i32) - 1, rng.below(20)),
            };
        }
        let n = s.bytes.len();
        for round in 0..300 {
            let mut cuts: Vec<usize> = (0..1 + rng.below(200)).map(|_| rng.below(n + 1)).collect();
            cuts.sort_unstable();
            let (frames, err) = decode(split(&s.bytes, &cuts), DEFAULT_MAX_FRAME);
            assert_eq!(err, None, "round {round}");
            assert!(frames == s.frames, "round {round}, cuts {cuts:?}");
        }
    }

    /// Every malformed header, each with the error it must produce.
    fn malformed(max: usize) -> Vec<(Vec<u8>, DecodeError)> {
        use DecodeError::*;
        use FrameType::*;
        let too_big = max as i32 + 1;
        let mut cases = vec![
            (raw(2, 0, &[]), LenTooSmall { len: 0 }),
            (raw(2, 3, &[]), LenTooSmall { len: 3 }),
            (raw(2, 7, &[]), LenTooSmall { len: 7 }),
            (raw(2, -1, &[]), LenTooSmall { len: -1 }),
            (raw(2, i32::MIN, &[]), LenTooSmall { len: i32::MIN }),
            (raw(0, 0, &[]), LenTooSmall { len: 0 }),
            (raw(1, 7, &[]), LenTooSmall { len: 7 }),
            (raw(9, 3, &[]), LenTooSmall { len: 3 }),
            (raw(-4, -8, &[]), LenTooSmall { len: -8 }),
            (raw(2, too_big, &[]), LenTooLarge { len: too_big, max }),
            (raw(2, i32::MAX, &[]), LenTooLarge { len: i32::MAX, max }),
            (raw(9, too_big, &[]), LenTooLarge { len: too_big, max }),
            (raw(0, too_big, &[]), LenTooLarge { len: too_big, max }),
        ];
        for t in [HeartbeatRequest, HeartbeatResponse] {
            for len in [9, 16] {
                // Even with the announced body present, the header alone is wrong.
                let body = vec![0; len as usize - HEADER_LEN];
                cases.push((raw(t as i32, len, &body), HeartbeatLen { kind: t, len }));
            }
        }
        cases
    }

    #[test]
    fn malformed_headers_give_typed_errors_at_every_split_and_stop_delivery() {
        for max in [DEFAULT_MAX_FRAME, 100] {
            let mut before = Stream::default();
            before
                .known(FrameType::HeartbeatRequest, &[])
                .data(10, 9)
                .reserved(5, 2);
            for (bad, expected) in malformed(max) {
                let mut bytes = before.bytes.clone();
                let bad_header_end = bytes.len() + HEADER_LEN;
                bytes.extend_from_slice(&bad);
                bytes.extend_from_slice(&HEARTBEAT_REQUEST); // must never be delivered
                let mut splits: Vec<Vec<usize>> = (0..=bytes.len()).map(|c| vec![c]).collect();
                splits.push((1..bytes.len()).collect()); // byte at a time
                for cuts in splits {
                    let chunks = split(&bytes, &cuts);
                    let (frames, err) = decode(chunks.iter().copied(), max);
                    assert_eq!(frames, before.frames, "{expected:?} cuts {cuts:?}");
                    let (failed_at, e) = err.expect("error expected");
                    assert_eq!(e, expected, "cuts {cuts:?}");
                    // The error comes with the feed holding the header's last
                    // byte, not later.
                    let ends: Vec<usize> = chunks
                        .iter()
                        .scan(0, |end, c| Some(*end + c.len()).inspect(|&e| *end = e))
                        .collect();
                    let first_complete = ends.iter().position(|&e| e >= bad_header_end).unwrap();
                    assert_eq!(failed_at, first_complete, "{expected:?} cuts {cuts:?}");
                }
            }
        }
    }

    #[test]
    fn a_failed_decoder_stays_failed() {
        let mut dec = Decoder::new();
        let bad = raw(2, 3, &[]);
        let mut seen = 0;
        assert_eq!(
            dec.feed(&bad, DEFAULT_MAX_FRAME, |_| seen += 1),
            Err(DecodeError::LenTooSmall { len: 3 })
        );
        for _ in 0..3 {
            let r = dec.feed(&HEARTBEAT_REQUEST, DEFAULT_MAX_FRAME, |_| seen += 1);
            assert_eq!(r, Err(DecodeError::LenTooSmall { len: 3 }));
            assert_eq!(dec.feed(&[], DEFAULT_MAX_FRAME, |_| seen += 1), r);
        }
        assert_eq!(seen, 0);
        assert_eq!(dec.error(), Some(DecodeError::LenTooSmall { len: 3 }));
        assert!(!dec.is_mid_frame());
        assert_eq!(dec.pending(), 0);
    }

    #[test]
    fn header_errors_do_not_wait_for_the_body() {
        // Only the eight header bytes of a 10 MB frame: rejected at once.
        let mut dec = Decoder::new();
        let r = dec.feed(&raw(2, 10_000_000, &[]), DEFAULT_MAX_FRAME, |_| {
            panic!("no frame")
        });
        assert_eq!(
            r,
            Err(DecodeError::LenTooLarge {
                len: 10_000_000,
                max: DEFAULT_MAX_FRAME
            })
        );
        // A valid header announcing the largest frame waits, holding no heap.
        let mut dec = Decoder::new();
        dec.feed(
            &raw(2, DEFAULT_MAX_FRAME as i32, &[]),
            DEFAULT_MAX_FRAME,
            |_| panic!("no frame"),
        )
        .unwrap();
        assert!(dec.is_mid_frame());
        assert_eq!(dec.pending(), HEADER_LEN);
        assert_eq!(dec.heap_bytes(), 0);
    }

    #[test]
    fn data_frame_of_exactly_max_frame_is_accepted_one_more_is_not() {
        for max in [HEADER_LEN, 9, 100, DEFAULT_MAX_FRAME] {
            let mut s = Stream::default();
            s.data(max - HEADER_LEN, 1)
                .known(FrameType::HeartbeatResponse, &[]);
            let (frames, err) = decode([&s.bytes[..]], max);
            assert_eq!((frames, err), (s.frames.clone(), None), "max {max}");
            let (frames, err) = decode(split(&s.bytes, &[HEADER_LEN + 1]), max);
            assert_eq!((frames, err), (s.frames.clone(), None), "max {max}, split");

            let mut over = Vec::new();
            encode_frame(FrameType::Data, &vec![0; max + 1 - HEADER_LEN], &mut over).unwrap();
            let (frames, err) = decode([&over[..]], max);
            assert!(frames.is_empty());
            assert_eq!(
                err,
                Some((
                    0,
                    DecodeError::LenTooLarge {
                        len: max as i32 + 1,
                        max
                    }
                ))
            );
        }
    }

    #[test]
    fn max_frame_below_the_header_still_admits_heartbeats() {
        let mut s = Stream::default();
        s.known(FrameType::HeartbeatRequest, &[]).data(0, 0);
        let (frames, err) = decode([&s.bytes[..]], 0);
        assert_eq!((frames, err), (s.frames, None));
        let mut dec = Decoder::new();
        let r = dec.feed(&raw(2, 9, &[0]), 3, |_| {});
        assert_eq!(
            r,
            Err(DecodeError::LenTooLarge {
                len: 9,
                max: HEADER_LEN
            })
        );
    }

    #[test]
    fn payloads_lying_whole_in_the_input_are_borrowed_not_copied() {
        let mut s = Stream::default();
        s.data(100, 5);
        let within = |input: &[u8], p: &[u8]| {
            let range = input.as_ptr_range();
            range.start <= p.as_ptr() && p.as_ptr_range().end <= range.end
        };
        let mut dec = Decoder::new();
        let mut hits = 0;
        dec.feed(&s.bytes, DEFAULT_MAX_FRAME, |f| {
            assert!(within(&s.bytes, f.payload));
            hits += 1;
        })
        .unwrap();
        // Header split, payload whole in the second read: still borrowed.
        let (first, second) = s.bytes.split_at(3);
        dec.feed(first, DEFAULT_MAX_FRAME, |_| panic!("incomplete"))
            .unwrap();
        dec.feed(second, DEFAULT_MAX_FRAME, |f| {
            assert!(within(second, f.payload));
            assert_eq!(f.payload, &s.frames[0].payload[..]);
            hits += 1;
        })
        .unwrap();
        assert_eq!(hits, 2);
        assert_eq!(dec.heap_bytes(), 0);
    }

    #[test]
    fn reserved_frames_are_skipped_by_counting_and_reported_on_completion() {
        let bytes = raw(-7, 13, &[1, 2, 3, 4, 5]);
        let mut dec = Decoder::new();
        let mut frames = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            dec.feed(std::slice::from_ref(b), DEFAULT_MAX_FRAME, |f| {
                frames.push((f.kind, f.payload.len()))
            })
            .unwrap();
            assert_eq!(dec.heap_bytes(), 0, "byte {i}");
            if i + 1 < bytes.len() {
                assert!(
                    frames.is_empty(),
                    "reported before byte {i} completed the frame"
                );
                assert_eq!(dec.pending(), i + 1);
                assert!(dec.is_mid_frame());
            }
        }
        assert_eq!(frames, [(Kind::Reserved(-7), 0)]);
        assert!(!dec.is_mid_frame());
        // Whole in one read, the payload is not handed out either.
        dec.feed(&bytes, DEFAULT_MAX_FRAME, |f| assert!(f.payload.is_empty()))
            .unwrap();
    }

    #[test]
    fn split_payload_buffer_tracks_bytes_received_and_is_released() {
        let mut s = Stream::default();
        s.data(1000, 3);
        let mut dec = Decoder::new();
        let mut got = Vec::new();
        dec.feed(&s.bytes[..HEADER_LEN], DEFAULT_MAX_FRAME, |_| {
            panic!("incomplete")
        })
        .unwrap();
        assert_eq!(
            dec.heap_bytes(),
            0,
            "nothing is allocated before payload bytes arrive"
        );
        for (i, b) in s.bytes[HEADER_LEN..].iter().enumerate() {
            dec.feed(std::slice::from_ref(b), DEFAULT_MAX_FRAME, |f| {
                got.push(f.payload.to_vec())
            })
            .unwrap();
            if got.is_empty() {
                let received = i + 1;
                assert_eq!(dec.pending(), HEADER_LEN + received);
                let held = dec.heap_bytes();
                assert!(
                    held >= received && held <= 1000 && held <= 2 * received,
                    "{held} for {received}"
                );
            }
        }
        assert_eq!(got, [s.frames[0].payload.clone()]);
        assert_eq!(
            (dec.pending(), dec.heap_bytes(), dec.is_mid_frame()),
            (0, 0, false)
        );
    }

    #[test]
    fn pending_and_mid_frame_follow_a_split_header() {
        let mut dec = Decoder::new();
        assert_eq!((dec.pending(), dec.is_mid_frame()), (0, false));
        for i in 0..HEADER_LEN - 1 {
            dec.feed(&HEARTBEAT_RESPONSE[i..i + 1], DEFAULT_MAX_FRAME, |_| {
                panic!("incomplete")
            })
            .unwrap();
            assert_eq!((dec.pending(), dec.is_mid_frame()), (i + 1, true));
        }
        let mut n = 0;
        dec.feed(
            &HEARTBEAT_RESPONSE[HEADER_LEN - 1..],
            DEFAULT_MAX_FRAME,
            |f| {
                assert_eq!(f.kind, Kind::Known(FrameType::HeartbeatResponse));
                n += 1;
            },
        )
        .unwrap();
        assert_eq!((n, dec.pending(), dec.is_mid_frame()), (1, 0, false));
    }

    #[test]
    fn error_messages_are_one_human_line() {
        assert_eq!(
            DecodeError::LenTooSmall { len: 3 }.to_string(),
            "frame length 3 is below the 8-byte header"
        );
        assert_eq!(
            DecodeError::LenTooLarge {
                len: 70000,
                max: 65536
            }
            .to_string(),
            "frame length 70000 exceeds the 65536-byte limit"
        );
        assert_eq!(
            DecodeError::HeartbeatLen {
                kind: FrameType::HeartbeatResponse,
                len: 9
            }
            .to_string(),
            "heartbeat response has frame length 9, not 8"
        );
        let mut lines: Vec<String> = malformed(100).iter().map(|(_, e)| e.to_string()).collect();
        lines.push(
            EncodeError::TooLarge {
                payload_len: usize::MAX,
            }
            .to_string(),
        );
        lines.push(
            EncodeError::HeartbeatPayload {
                kind: FrameType::HeartbeatRequest,
                payload_len: 1,
            }
            .to_string(),
        );
        lines.push(ReservedType(-3).to_string());
        lines.push(Kind::Reserved(9).to_string());
        for line in lines {
            assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
            assert_eq!(line.trim(), line);
        }
    }
}
