//! Stopping a poll loop from another thread.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::{Registry, Token, Waker};

/// Asks a reactor (server, client or swarm loop) to stop. Cheap to clone and
/// `Send`: give it to a signal thread or to the rest of an embedding program.
/// The loop notices on its next wakeup, which the waker forces at once.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    waker: Arc<Waker>,
    requested: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// A handle whose waker is registered with `registry` under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<ShutdownHandle> {
        Ok(ShutdownHandle {
            waker: Arc::new(Waker::new(registry, token)?),
            requested: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A handle that wakes its loop with `waker`, one the loop's owner
    /// made: a program that drives several lubdub parts on one `mio::Poll`
    /// makes one waker for that poll (mio allows one per poll) and hands
    /// it to each.
    pub fn with_waker(waker: Arc<Waker>) -> ShutdownHandle {
        ShutdownHandle {
            waker,
            requested: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Requests the stop and wakes the loop.
    pub fn shutdown(&self) {
        self.requested.store(true, Ordering::Release);
        // A failed wake means the poll instance is gone, i.e. the loop has
        // already stopped: nothing left to tell.
        let _ = self.waker.wake();
    }

    /// Wakes the loop without asking it to stop (it looks at every source
    /// it has when it wakes).
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }

    /// The loop's waker, for anything else that must wake it (mio allows one
    /// waker per poll; the loop checks every source when it wakes).
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}
