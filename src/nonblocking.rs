//! Non-blocking socket IO shared by the server and client shells.

use std::io::{ErrorKind, Write};

/// Writes as much of `buf` as the kernel takes now. `Ok(n)` may be short
/// (even zero on `WouldBlock`); `Err` carries a fatal error's kind.
pub(crate) fn write_some(stream: &mut mio::net::TcpStream, buf: &[u8]) -> Result<usize, ErrorKind> {
    let mut written = 0;
    while written < buf.len() {
        match stream.write(&buf[written..]) {
            Ok(0) => return Err(ErrorKind::WriteZero),
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.kind()),
        }
    }
    Ok(written)
}
