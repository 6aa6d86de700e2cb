//! The floor: a bare mio loop that answers every 8 bytes read with the 8-byte
//! heartbeat response and keeps no state at all — no liveness, no deadline,
//! no per-connection buffer. It is what one thread can do on this kernel; a
//! real server can only add work to it.
//!
//! It assumes each read returns whole 8-byte frames, which holds for 8-byte
//! writes over loopback (a trailing partial frame would be dropped, not
//! answered — the floor is a measuring stick, not a server to deploy).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
const SCRATCH: usize = 4096;
/// The heartbeat response (`type` 1, `len` 8), repeated to answer a whole
/// scratch buffer of pipelined requests in one write.
const REPLIES: [u8; SCRATCH] = {
    let mut out = [0u8; SCRATCH];
    let mut i = 0;
    while i < SCRATCH {
        out[i] = 1;
        out[i + 4] = 8;
        i += 8;
    }
    out
};

/// Serves until killed.
pub fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<TcpStream> = Slab::new();
    let mut scratch = [0u8; SCRATCH];
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&poll, &mut listener, &mut conns);
                continue;
            }
            let key = event.token().0;
            let Some(stream) = conns.get_mut(key) else {
                continue;
            };
            if !drain(stream, &mut scratch) {
                // Closing the descriptor also removes it from the epoll set.
                conns.remove(key);
            }
        }
    }
}

fn accept_all(poll: &Poll, listener: &mut TcpListener, conns: &mut Slab<TcpStream>) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                // Every server in the comparison answers without Nagle delay.
                let _ = stream.set_nodelay(true);
                let entry = conns.vacant_entry();
                let token = Token(entry.key());
                if poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
                    .is_ok()
                {
                    entry.insert(stream);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // WouldBlock: drained. EMFILE and friends: the next connection
            // attempt raises readiness again; the floor does not retry.
            Err(_) => return,
        }
    }
}

/// Reads until `WouldBlock`, answering each 8 bytes read. Returns false when
/// the connection should be closed.
fn drain(stream: &mut TcpStream, scratch: &mut [u8; SCRATCH]) -> bool {
    loop {
        match stream.read(scratch) {
            Ok(0) => return false,
            Ok(n) => {
                let reply = &REPLIES[..n / 8 * 8];
                if !reply.is_empty() {
                    match stream.write(reply) {
                        Ok(_) => {}
                        // A full send buffer drops the reply: no backlog is
                        // kept. Never happens at flood depth 1.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return false,
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}
