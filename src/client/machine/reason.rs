//! Why a connection (or a connect) ended, as a log line says it.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::protocol::DecodeError;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The connect failed.
    ConnectFailed(io::ErrorKind),
    /// The connect did not finish within the connect timeout.
    ConnectTimeout,
    /// Nothing was received for `idle` (at least the silence limit).
    Silent {
        /// Time since the last proof of life, a whole number of ticks
        /// (a stall of the shell's own that was excused is not in it).
        idle: Duration,
    },
    /// The server closed the connection.
    PeerClosed,
    /// Reading or writing failed.
    Io(io::ErrorKind),
    /// The server sent bytes that are not lubdub frames.
    Protocol(DecodeError),
    /// The server sent bytes other than the expected fixed reply.
    UnexpectedReply,
    /// The server does not read: more than the send backlog's bound waited
    /// to be written (replies to its requests, heartbeats, data).
    SlowReader,
    /// The shell closed the connection on purpose: a swarm churning its
    /// connections (it reconnects like after any other loss), or a client
    /// closed or shut down by its program (it does not).
    Requested,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ConnectFailed(io::ErrorKind::NotFound) => {
                f.write_str("connect failed: the name did not resolve")
            }
            Reason::ConnectFailed(kind) => write!(f, "connect failed: {kind}"),
            Reason::ConnectTimeout => f.write_str("connect timed out"),
            Reason::Silent { idle } => {
                write!(f, "server silent for {}", crate::duration::format(*idle))
            }
            Reason::PeerClosed => f.write_str("server closed the connection"),
            Reason::Io(kind) => write!(f, "connection error: {kind}"),
            Reason::Protocol(e) => write!(f, "protocol error: {e}"),
            Reason::UnexpectedReply => f.write_str("unexpected bytes instead of the reply"),
            Reason::SlowReader => f.write_str("server does not read: send backlog full"),
            Reason::Requested => f.write_str("closed on purpose"),
        }
    }
}
