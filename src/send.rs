//! The one result of sending a frame, wherever it is sent from: the server's
//! handler context and command handle, and the client.

use std::fmt;

/// Why a frame was not queued.
///
/// `Closed` and `TooLarge` mean the frame went nowhere. `Backlog` means the
/// connection is closing: when something already waited for the peer, the
/// frame was refused whole; when nothing did, the kernel may have taken
/// the frame's head before the rest was found not to fit, and the peer
/// sees a truncated frame and then the close.
///
/// A send never closes a connection and never calls back into a handler;
/// when a send finds a peer that does not read ([`Backlog`](Self::Backlog)),
/// the close happens later, on the loop, and is reported through the
/// handler's close callback like any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closed, closing, or was never open (for a server, the
    /// id names a connection that is gone, or a slot with a new tenant; for a
    /// client, no connection is up).
    Closed,
    /// The payload does not fit in one frame (`max_frame`, header included).
    TooLarge,
    /// Too much is already waiting to be written to this peer.
    Backlog,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed => "connection closed",
            SendError::TooLarge => "payload too large for one frame",
            SendError::Backlog => "send backlog full",
        })
    }
}

impl std::error::Error for SendError {}
