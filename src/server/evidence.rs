//! What the kernel knew about a connection at the moment it was evicted.
//!
//! An eviction is a claim that the peer said nothing for `interval × misses`.
//! Evidence before verdict (see [`crate::liveness`]) reads what the kernel
//! holds before the claim is made, so two questions tell a wrong verdict's
//! cause apart: were bytes still waiting in the socket's receive queue (then
//! the read path missed them — our defect), and when did the kernel last
//! receive data on this socket at all (if long ago, the frames had not
//! reached this host: the sender's stack held them back, or they were lost
//! and not yet retransmitted)?
//!
//! Two system calls per eviction and one debug line: evictions are rare and
//! already logged, so this costs nothing on the per-heartbeat path, which
//! never comes here.

use std::fmt;
use std::os::fd::AsRawFd;

use log::debug;

use super::{ConnId, Handler, Server};

/// The kernel's view of one socket, read at its eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Evidence {
    /// Bytes in the receive queue not yet read (`FIONREAD`); `None` if the
    /// kernel would not say.
    pub(super) unread: Option<u32>,
    /// Milliseconds since the kernel last received data on the socket
    /// (`TCP_INFO`'s `tcpi_last_data_recv`; since the connection began if
    /// none ever came).
    pub(super) last_data_recv_ms: Option<u32>,
}

impl Evidence {
    /// Reads the evidence for the socket `fd`.
    pub(super) fn gather(fd: &impl AsRawFd) -> Evidence {
        let fd = fd.as_raw_fd();
        Evidence {
            unread: unread(fd),
            last_data_recv_ms: last_data_recv_ms(fd),
        }
    }
}

impl fmt::Display for Evidence {
    /// `unread=0 last_data_recv=1130ms`; `?` for what the kernel would not say.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unread {
            Some(n) => write!(f, "unread={n}")?,
            None => f.write_str("unread=?")?,
        }
        match self.last_data_recv_ms {
            Some(ms) => write!(f, " last_data_recv={ms}ms"),
            None => f.write_str(" last_data_recv=?"),
        }
    }
}

impl<H: Handler> Server<H> {
    /// Whether the kernel holds enough for the connection in `slot` to
    /// complete a frame: then it may prove the peer alive, and is read
    /// before any verdict.
    pub(super) fn frame_may_be_waiting(&self, slot: usize) -> bool {
        let conn = &self.core.conns[slot];
        unread(conn.stream.as_raw_fd()).is_some_and(|n| n as usize >= conn.decoder.missing())
    }

    /// Logs what the kernel held for the connection in `slot`, about to be
    /// evicted, and counts an eviction that left unread enough bytes to
    /// complete a frame — bytes that could have proven the peer alive: with
    /// evidence read before every verdict, that count stays zero. (Fewer
    /// bytes than a frame lacks prove nothing: a trickler's next byte may
    /// land between the read and this look.)
    pub(super) fn record_eviction_evidence(&mut self, slot: usize, id: ConnId) {
        let conn = &self.core.conns[slot];
        let evidence = Evidence::gather(&conn.stream);
        let missing = conn.decoder.missing();
        if evidence.unread.is_some_and(|n| n as usize >= missing) {
            self.core.stats.evicted_with_unread_data += 1;
        }
        debug!(
            "eviction evidence peer={} conn={id} {evidence} decoder_partial={} missing={}",
            self.peer(slot),
            conn.decoder.pending(),
            missing
        );
    }
}

/// Bytes waiting in the receive queue (`ioctl(FIONREAD)`, which Linux
/// calls `SIOCINQ` for TCP sockets).
fn unread(fd: std::os::fd::RawFd) -> Option<u32> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, to a live local.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    (rc == 0).then(|| n.max(0) as u32)
}

/// Milliseconds since the kernel last received data on the socket:
/// `tcpi_last_data_recv` from `getsockopt(fd, SOL_TCP, TCP_INFO)`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn last_data_recv_ms(fd: std::os::fd::RawFd) -> Option<u32> {
    // SAFETY: tcp_info is plain integers; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which we
    // own, and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // An older kernel fills a shorter struct; the field read here is in the
    // part every kernel since 2.6 fills.
    (rc == 0).then_some(info.tcpi_last_data_recv)
}

/// No `TCP_INFO` here.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn last_data_recv_ms(_fd: std::os::fd::RawFd) -> Option<u32> {
    None
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn unread_bytes_and_last_receive_are_read_from_a_real_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let quiet = Evidence::gather(&server);
        assert_eq!(quiet.unread, Some(0), "{quiet}");
        client.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let heard = Evidence::gather(&server);
        assert_eq!(heard.unread, Some(8), "{heard}");
        let since = heard.last_data_recv_ms.expect("TCP_INFO on Linux");
        assert!((20..1000).contains(&since), "{heard}");
        assert_eq!(
            heard.to_string(),
            format!("unread=8 last_data_recv={since}ms")
        );
    }
}
