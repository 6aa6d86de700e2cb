//! What a step of a loop says about the next.

/// Whether a reactor (server or client) keeps going after a step of the
/// caller's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Call again.
    Running,
    /// Stopped (shutdown was requested, or the client was closed): the
    /// listener and connections are closed, and further calls return
    /// `Stopped` at once without blocking.
    Stopped,
}
