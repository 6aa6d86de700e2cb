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
//! A [`Decoder`] is 16 bytes and holds no heap memory while idle, while inside
//! a header (up to seven bytes are kept inline), while skipping a reserved
//! frame, or when frames arrive whole. Only a data frame whose payload is split
//! across reads is buffered, and that buffer is freed when the frame completes,
//! so ten thousand idle connections cost ten thousand times 16 bytes here. A
//! caller that has no use for data payloads feeds with [`Payloads::Skip`] and
//! the decoder never allocates at all.

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
    /// frame lay whole inside them. Always empty for heartbeats, for
    /// `Reserved` frames, and for data frames fed with [`Payloads::Skip`]:
    /// those payloads are skipped, never buffered.
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

mod decoder;
pub use decoder::{Decoder, Payloads};

#[cfg(test)]
mod tests;
