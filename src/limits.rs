//! The process's open-files limit (`RLIMIT_NOFILE`).
//!
//! Every connection is a file descriptor, so the soft limit is the real
//! connection ceiling. Linux starts most processes with a soft limit of 1024
//! and a much larger hard limit; an unprivileged process may raise its soft
//! limit up to the hard one, so lubdub does that at start and logs both.

use std::io;

/// Descriptors kept back from connections for listeners, the poll instance,
/// the waker, log files, signal plumbing and accept retries.
pub const FD_RESERVE: u64 = 100;

/// The soft and hard open-files limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// The limit in force.
    pub soft: u64,
    /// The ceiling the soft limit may be raised to.
    pub hard: u64,
}

impl FileLimit {
    /// How many connections fit under the soft limit after [`FD_RESERVE`].
    pub fn max_connections(&self) -> usize {
        self.soft.saturating_sub(FD_RESERVE).max(1) as usize
    }
}

/// Reads the current limits.
// rlim_t is u64 on 64-bit Linux but not on every target.
#[allow(clippy::unnecessary_cast)]
pub fn file_limit() -> io::Result<FileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FileLimit {
        soft: lim.rlim_cur as u64,
        hard: lim.rlim_max as u64,
    })
}

/// Raises the soft limit to the hard limit and returns `(before, after)`.
pub fn raise_file_limit() -> io::Result<(FileLimit, FileLimit)> {
    let before = file_limit()?;
    if before.soft < before.hard {
        let lim = libc::rlimit {
            rlim_cur: before.hard as libc::rlim_t,
            rlim_max: before.hard as libc::rlim_t,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, file_limit()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let (before, after) = raise_file_limit().unwrap();
        assert_eq!(after.hard, before.hard);
        assert_eq!(after.soft, after.hard);
        assert_eq!(
            after.max_connections() as u64,
            after.soft.saturating_sub(FD_RESERVE).max(1)
        );
    }
}
