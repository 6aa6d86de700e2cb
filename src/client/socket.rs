//! Opening a non-blocking connection, optionally from a chosen local address.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// How far a non-blocking connect has got.
#[derive(Debug)]
pub enum ConnectProgress {
    /// Still in flight: wait for the next writable event.
    Pending,
    /// Established.
    Connected,
    /// Failed.
    Failed(io::Error),
}

/// Starts a non-blocking connect to `peer`; [`connect_progress`] tells,
/// at each readiness event, how far it has got.
///
/// With `source`, the socket is bound to that local address first, with
/// the port left for the kernel to pick at connect time, when it only has
/// to be unique towards `peer` (`IP_BIND_ADDRESS_NO_PORT` on Linux, with
/// `SO_REUSEADDR`): a plain bind to `source:0` would reserve a port per
/// local address, and a process would run out after one ephemeral range
/// (~28 k on Linux) however many servers it talks to.
pub fn start_connect(peer: SocketAddr, source: Option<IpAddr>) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(
        Domain::for_address(peer),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    if let Some(ip) = source {
        bind_source(&socket, ip)?;
    }
    match socket.connect(&peer.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

/// Binds `socket` to `ip` with port 0 so that the kernel picks the port at
/// connect time, from the four-tuple, rather than at bind time.
///
/// A plain `bind(ip:0)` reserves a port for that address alone, so a process
/// runs out after one ephemeral range (~28 k on Linux's default
/// 32768–60999) no matter how many servers it talks to.
/// `IP_BIND_ADDRESS_NO_PORT` (Linux ≥ 4.2) defers the choice to `connect`,
/// where a port only has to be unique per destination; `SO_REUSEADDR` lets
/// the kernel reuse ports still in TIME_WAIT from earlier runs.
fn bind_source(socket: &Socket, ip: IpAddr) -> io::Result<()> {
    socket.set_reuse_address(true)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live
        // local; the descriptor is owned by `socket` for the whole call.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // IPv6 sockets accept the option too; where it is refused, binding
        // still works, with the one-range limit described above.
        if rc != 0 {
            log::trace!("IP_BIND_ADDRESS_NO_PORT: {}", io::Error::last_os_error());
        }
    }
    socket.bind(&SocketAddr::new(ip, 0).into())
}

/// Checks a connect after a readiness event (mio's recipe: an error pending
/// on the socket means failure; a peer address means success; "not
/// connected" means the event was spurious and the connect is still going).
pub fn connect_progress(stream: &mio::net::TcpStream) -> ConnectProgress {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => return ConnectProgress::Failed(e),
        Ok(None) => {}
    }
    match stream.peer_addr() {
        Ok(_) => ConnectProgress::Connected,
        Err(e) if e.kind() == io::ErrorKind::NotConnected => ConnectProgress::Pending,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => ConnectProgress::Pending,
        Err(e) => ConnectProgress::Failed(e),
    }
}

/// Whether a connect whose time just ran out has in fact completed — its
/// event not seen yet, or due in the same batch. Such a connect counts as
/// made; dropping it for the next address would throw a working
/// connection away. Asked only on the timeout path.
pub fn completed_meanwhile(stream: Option<&mio::net::TcpStream>) -> bool {
    stream.is_some_and(|s| matches!(connect_progress(s), ConnectProgress::Connected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for(stream: &mio::net::TcpStream) -> ConnectProgress {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match connect_progress(stream) {
                ConnectProgress::Pending if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                other => return other,
            }
        }
    }

    #[test]
    fn connects_from_a_chosen_source_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.3".parse().unwrap();
        let stream = start_connect(peer, Some(source)).unwrap();
        assert!(matches!(wait_for(&stream), ConnectProgress::Connected));
        assert_eq!(stream.local_addr().unwrap().ip(), source);
        let (_accepted, from) = listener.accept().unwrap();
        assert_eq!(from.ip(), source);
        // At its connect timeout, such a stream is taken, not dropped.
        assert!(completed_meanwhile(Some(&stream)));
        assert!(!completed_meanwhile(None));
    }

    #[test]
    fn a_refused_connect_reports_failure() {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        match start_connect(SocketAddr::from(([127, 0, 0, 1], port)), None) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
            Ok(stream) => match wait_for(&stream) {
                ConnectProgress::Failed(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused)
                }
                other => panic!("{other:?}"),
            },
        }
    }
}
