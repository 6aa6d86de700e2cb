//! How much room each server sharing one listener has, in memory they all
//! map: a full server leaves new connections to the others while any of
//! them has room, and refuses only when none has.
//!
//! One `u32` per server, in a memfd the supervisor makes and every worker
//! maps. A server writes its own slot (connections it may still take)
//! after every accept and close — one relaxed store — and a full one reads
//! the others' before it would refuse. A slot is stale by at most one
//! accept: the cost is a connection left in the queue a moment longer, or
//! (when every server filled in the same instant) one refused a moment
//! early, never one refused while another server has had room for long.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// A mapped table of room, one slot per server; this server's is `index`.
#[derive(Debug)]
pub struct SharedRoom {
    base: *mut AtomicU32,
    slots: usize,
    index: usize,
}

// SAFETY: the mapping is shared memory of atomics, valid until drop, and
// only ever accessed through atomic operations.
unsafe impl Send for SharedRoom {}

impl SharedRoom {
    /// A new table of `slots` slots, all zero (no room until a server says
    /// so), as a memfd that child processes inherit (not close-on-exec).
    pub fn create(slots: usize) -> io::Result<OwnedFd> {
        // SAFETY: memfd_create reads the NUL-terminated name we pass.
        let fd = unsafe { libc::memfd_create(c"lubdub-room".as_ptr(), 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a descriptor we just made and own alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let len = (slots.max(1) * std::mem::size_of::<u32>()) as libc::off_t;
        // SAFETY: ftruncate on our own memfd; zero-filled by the kernel.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }

    /// Maps the table in descriptor `fd` (made by [`create`](Self::create)
    /// with `slots` slots); this server is slot `index`.
    pub fn open(fd: RawFd, slots: usize, index: usize) -> io::Result<SharedRoom> {
        if index >= slots {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("room slot {index} of {slots}"),
            ));
        }
        let len = slots * std::mem::size_of::<u32>();
        // SAFETY: a shared, read-write mapping of `len` bytes of the memfd;
        // the kernel checks the descriptor and fails cleanly otherwise.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedRoom {
            base: base.cast(),
            slots,
            index,
        })
    }

    fn slot(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.slots);
        // SAFETY: i < slots, within the mapping, which lives as long as
        // self; AtomicU32 has the layout of u32 and the mapping is aligned.
        unsafe { &*self.base.add(i) }
    }

    /// Says how many more connections this server may take.
    pub fn set(&self, room: usize) {
        self.slot(self.index)
            .store(room.min(u32::MAX as usize) as u32, Ordering::Relaxed);
    }

    /// Whether any other server says it has room.
    pub fn others_have_room(&self) -> bool {
        (0..self.slots)
            .filter(|&i| i != self.index)
            .any(|i| self.slot(i).load(Ordering::Relaxed) > 0)
    }
}

impl Drop for SharedRoom {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`.
        unsafe {
            libc::munmap(self.base.cast(), self.slots * std::mem::size_of::<u32>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_sees_the_others_room() {
        let fd = SharedRoom::create(3).unwrap();
        let a = SharedRoom::open(fd.as_raw_fd(), 3, 0).unwrap();
        let b = SharedRoom::open(fd.as_raw_fd(), 3, 1).unwrap();
        assert!(!a.others_have_room(), "no room until a server says so");
        b.set(5);
        assert!(a.others_have_room());
        assert!(!b.others_have_room(), "its own room does not count");
        b.set(0);
        assert!(!a.others_have_room());
        assert!(SharedRoom::open(fd.as_raw_fd(), 3, 3).is_err());
    }
}
