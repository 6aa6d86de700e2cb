//! TEMPORARY stand-in for the `protocol` branch, with the API agreed for it,
//! so the client branch builds before that branch lands. Replaced wholesale
//! by the real module on merge; do not extend.

use std::fmt;

/// Length of the frame header.
pub const HEADER_LEN: usize = 8;
/// Default largest accepted frame.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;
/// A heartbeat request frame.
pub const HEARTBEAT_REQUEST: [u8; 8] = [0, 0, 0, 0, 8, 0, 0, 0];
/// A heartbeat response frame.
pub const HEARTBEAT_RESPONSE: [u8; 8] = [1, 0, 0, 0, 8, 0, 0, 0];

/// Known frame types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// Heartbeat request.
    HeartbeatRequest = 0,
    /// Heartbeat response.
    HeartbeatResponse = 1,
    /// Application data.
    Data = 2,
}

/// A frame's type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A known type.
    Known(FrameType),
    /// A reserved type.
    Reserved(i32),
}

/// One decoded frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Its type.
    pub kind: Kind,
    /// Bytes after the header.
    pub payload: &'a [u8],
}

/// Why a byte stream is not valid lubdub framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Length field out of range.
    BadLength(i32),
    /// Heartbeat with a length other than 8.
    BadHeartbeat(i32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadLength(n) => write!(f, "bad frame length {n}"),
            DecodeError::BadHeartbeat(n) => write!(f, "heartbeat with length {n}"),
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeError;

/// Appends one frame to `out`.
pub fn encode_frame(kind: FrameType, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let len = i32::try_from(HEADER_LEN + payload.len()).map_err(|_| EncodeError)?;
    out.extend_from_slice(&(kind as i32).to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Incremental decoder.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// A new decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Feeds bytes, calling `on_frame` for each complete frame.
    pub fn feed(
        &mut self,
        input: &[u8],
        max_frame: usize,
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> Result<(), DecodeError> {
        self.buf.extend_from_slice(input);
        let mut at = 0;
        while self.buf.len() - at >= HEADER_LEN {
            let h = &self.buf[at..];
            let ty = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let len = i32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            if len < HEADER_LEN as i32 || len as usize > max_frame {
                return Err(DecodeError::BadLength(len));
            }
            if (ty == 0 || ty == 1) && len != 8 {
                return Err(DecodeError::BadHeartbeat(len));
            }
            if h.len() < len as usize {
                break;
            }
            let kind = match ty {
                0 => Kind::Known(FrameType::HeartbeatRequest),
                1 => Kind::Known(FrameType::HeartbeatResponse),
                2 => Kind::Known(FrameType::Data),
                n => Kind::Reserved(n),
            };
            on_frame(Frame { kind, payload: &h[HEADER_LEN..len as usize] });
            at += len as usize;
        }
        self.buf.drain(..at);
        Ok(())
    }
}
