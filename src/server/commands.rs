//! Acting on the server from other threads: a bounded queue of commands
//! and the waker that makes the loop apply them.

use std::fmt;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use super::core::Deferred;
use super::handler::ConnId;
use crate::protocol::HEADER_LEN;
use crate::shutdown::ShutdownHandle;

/// What another thread asked of the loop.
#[derive(Debug)]
pub(crate) enum Command {
    Send(ConnId, Vec<u8>),
    Broadcast(Vec<u8>),
    Close(ConnId),
    Reply(Deferred, Vec<u8>),
    Discard(Deferred),
}

/// Sends commands to a server's loop from any thread: cheap to clone,
/// `Send` and `Sync`. Each command wakes the loop, which applies commands
/// in the order they were queued (across all clones) at its next turn,
/// before it looks at its timers.
///
/// The queue is bounded ([`Config::command_queue`](super::Config::command_queue)):
/// a full queue is [`CommandError::Full`] at once, never a wait. What a
/// command does is what the same call on a [`Context`](super::Context)
/// does; its outcome is not sent back — a command for a connection that has
/// closed meanwhile is counted (`commands_failed` in the stats) and logged at
/// `debug`.
#[derive(Clone, Debug)]
pub struct Commands {
    tx: SyncSender<Command>,
    shutdown: ShutdownHandle,
    max_frame: usize,
}

/// Why a command was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// The queue is full: the loop has not caught up. Try again later, or
    /// drop the command.
    Full,
    /// The server has stopped.
    Stopped,
    /// The payload does not fit in one frame (`max_frame`, header
    /// included).
    TooLarge,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommandError::Full => "command queue full",
            CommandError::Stopped => "server stopped",
            CommandError::TooLarge => "payload too large for one frame",
        })
    }
}

impl std::error::Error for CommandError {}

/// A deferred reply the queue did not take, handed back whole so it can be
/// tried again (after [`CommandError::Full`]), answered with less (after
/// [`CommandError::TooLarge`]) or discarded: a `Deferred` lost here would
/// hold its peer's later replies until the connection closes.
#[derive(Debug)]
pub struct NotQueued {
    /// Why it was not queued.
    pub error: CommandError,
    /// The deferred reply, still to be filled or discarded.
    pub deferred: Deferred,
}

impl fmt::Display for NotQueued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deferred reply not queued: {}", self.error)
    }
}

impl std::error::Error for NotQueued {}

impl Commands {
    pub(crate) fn new(
        capacity: usize,
        shutdown: ShutdownHandle,
        max_frame: usize,
    ) -> (Commands, Receiver<Command>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        (
            Commands {
                tx,
                shutdown,
                max_frame,
            },
            rx,
        )
    }

    /// Sends a data frame carrying `payload` to `id`.
    pub fn send(&self, id: ConnId, payload: &[u8]) -> Result<(), CommandError> {
        self.check(payload)?;
        self.queue(Command::Send(id, payload.to_vec()))
            .map_err(|(e, _)| e)
    }

    /// Sends a data frame to every connection open when the loop applies
    /// it.
    pub fn broadcast(&self, payload: &[u8]) -> Result<(), CommandError> {
        self.check(payload)?;
        self.queue(Command::Broadcast(payload.to_vec()))
            .map_err(|(e, _)| e)
    }

    /// Closes `id` ([`CloseReason::Requested`](super::CloseReason::Requested)).
    pub fn close(&self, id: ConnId) -> Result<(), CommandError> {
        self.queue(Command::Close(id)).map_err(|(e, _)| e)
    }

    /// Fills a reply deferred by the handler
    /// ([`Context::defer`](super::Context::defer)) with a data frame
    /// carrying `payload`. Not queued, the `Deferred` comes back in the
    /// error.
    pub fn reply(&self, deferred: Deferred, payload: &[u8]) -> Result<(), NotQueued> {
        if let Err(error) = self.check(payload) {
            return Err(NotQueued { error, deferred });
        }
        self.queue(Command::Reply(deferred, payload.to_vec()))
            .map_err(handed_back)
    }

    /// Gives a deferred reply up (see [`Context::discard`](super::Context::discard)).
    /// Not queued, the `Deferred` comes back in the error.
    pub fn discard(&self, deferred: Deferred) -> Result<(), NotQueued> {
        self.queue(Command::Discard(deferred)).map_err(handed_back)
    }

    /// Stops the server: it applies the commands queued before this one,
    /// closes its listener and connections, and its loop returns
    /// [`Step::Stopped`](crate::Step::Stopped). Never refused for a full
    /// queue.
    pub fn shutdown(&self) {
        self.shutdown.shutdown();
    }

    fn check(&self, payload: &[u8]) -> Result<(), CommandError> {
        if HEADER_LEN + payload.len() > self.max_frame {
            return Err(CommandError::TooLarge);
        }
        Ok(())
    }

    /// Queues `command` and wakes the loop; a command not queued comes
    /// back with the reason.
    fn queue(&self, command: Command) -> Result<(), (CommandError, Command)> {
        match self.tx.try_send(command) {
            Ok(()) => {
                self.shutdown.wake();
                Ok(())
            }
            Err(TrySendError::Full(c)) => Err((CommandError::Full, c)),
            Err(TrySendError::Disconnected(c)) => Err((CommandError::Stopped, c)),
        }
    }
}

/// The `Deferred` of a fill or discard the queue did not take.
fn handed_back((error, command): (CommandError, Command)) -> NotQueued {
    match command {
        Command::Reply(deferred, _) | Command::Discard(deferred) => NotQueued { error, deferred },
        // Only fills and discards are handed back.
        Command::Send(..) | Command::Broadcast(_) | Command::Close(_) => {
            unreachable!("handed back a command that carries no Deferred")
        }
    }
}
