//! `Config::proxy_protocol`: connections that begin with a load balancer's
//! PROXY header ([`crate::proxy`]).
//!
//! # Awaiting the header
//!
//! With the flag on, an accepted connection is *awaiting* (`Conn::awaiting`)
//! until its header is in. It holds its slot and its one wheel timer, set
//! to the header's deadline, but it is not the handler's yet: no
//! `on_connect`, no greeting, not counted by `Context::open`, not reached by
//! a broadcast nor listed by `Context::states`. Nothing is read from it as
//! frames.
//!
//! On each readiness event, the reactor *peeks* at what the kernel holds
//! for it — at most [`MAX_HEADER_LEN`] bytes, copied nowhere — and asks
//! [`proxy::parse`] what that is:
//!
//! - **Not all of a header yet**: nothing is taken. The next segment to
//!   arrive raises a new edge, and the header is looked at again from its
//!   start. A header split across any number of reads so costs no buffer
//!   of ours; one trickled a byte at a time costs a peek a byte, up to the
//!   bound, within the deadline.
//! - **A whole header**: exactly its bytes are read off the socket. The
//!   connection is admitted — its liveness begins, the client's address is
//!   recorded, the greeting and `on_connect` follow — and read at once like
//!   any other: what the client sent along with the header waits behind it
//!   in the kernel, and is decoded as frames.
//! - **Never a header**: closed, and counted as `proxy_errors`.
//!
//! When the deadline fires, what the kernel holds is looked at once more
//! (evidence before verdict: the header may have come while the reactor was
//! busy), and a connection still without a whole header is closed and
//! counted as `proxy_timeouts`. One that closes before its header is whole
//! counts as any peer's close (`closed_by_peer`): a balancer's plain TCP
//! health check connects and closes without a byte. None of these reach the
//! handler, whose `on_close` is for connections it was told of.
//!
//! The first connection refused for its header is logged at `warn` — most
//! often a client that bypassed the balancer, or a balancer not set to send
//! the header — and later ones at `info`, held to a rate (`close_log.rs`);
//! the counters have them all.
//!
//! # Where the client's address is kept
//!
//! In the connection's own peer address (`peer.rs`), which held the
//! balancer's from the accept: log lines and `Context::peer_addr` read it
//! from there.

use std::fmt;
use std::io::{ErrorKind, Read};
use std::time::Duration;

use log::{debug, info, warn};

use super::io::io_close_reason;
use super::{CloseReason, ConnId, Handler, ReadCause, Server, Timer};
use crate::proxy::{self, HeaderError, Parsed, MAX_HEADER_LEN};

/// What to do with an awaiting connection after a look at its bytes.
enum Next {
    /// Not all of the header yet.
    Wait,
    /// The whole header, its bytes taken off the socket.
    Admit(proxy::Header),
    /// Never a header.
    Refuse(Refusal),
    /// Gone (the peer closed or reset).
    Close(CloseReason),
}

/// Why a connection never became the handler's.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Header(HeaderError),
    Timeout(Duration),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Header(e) => write!(f, "{e}"),
            Refusal::Timeout(limit) => write!(
                f,
                "no whole PROXY header within {}",
                crate::duration::format(*limit)
            ),
        }
    }
}

impl<H: Handler> Server<H> {
    /// Looks at what the kernel holds for the awaiting connection in
    /// `slot`, and admits, refuses or closes it, or leaves it waiting (see
    /// the module docs).
    pub(super) fn read_header(&mut self, slot: usize, why: ReadCause) {
        // The FIN came with this event: what is there is all there will be.
        let closed = matches!(why, ReadCause::Event { closed: true });
        let Server { core, scratch, .. } = self;
        let stream = &mut core.conns[slot].stream;
        let window = &mut scratch[..MAX_HEADER_LEN];
        let peeked = loop {
            match stream.peek(window) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                result => break result,
            }
        };
        let next = match peeked {
            Ok(0) => Next::Close(CloseReason::PeerClosed),
            Ok(n) => match proxy::parse(&window[..n]) {
                Ok(Parsed::Complete(header)) => {
                    // Exactly the header comes off the socket: what follows
                    // it is the client's, for the frame decoder.
                    let taken = loop {
                        match stream.read(&mut window[..header.len]) {
                            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                            result => break result,
                        }
                    };
                    match taken {
                        Ok(n) if n == header.len => Next::Admit(header),
                        // The kernel held these bytes a moment ago, and
                        // nothing else reads this socket: not reached.
                        Ok(_) => Next::Close(CloseReason::Io(ErrorKind::UnexpectedEof)),
                        Err(e) => Next::Close(io_close_reason(e.kind())),
                    }
                }
                Ok(Parsed::Incomplete) => {
                    debug_assert!(n < MAX_HEADER_LEN, "{n} bytes still incomplete");
                    if closed {
                        Next::Close(CloseReason::PeerClosed)
                    } else {
                        Next::Wait
                    }
                }
                Err(e) => Next::Refuse(Refusal::Header(e)),
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock && closed => {
                Next::Close(CloseReason::PeerClosed)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Next::Wait,
            Err(e) => Next::Close(io_close_reason(e.kind())),
        };
        match next {
            Next::Wait => {}
            Next::Admit(header) => self.admit_proxied(slot, header, why),
            Next::Refuse(refusal) => self.refuse(slot, refusal),
            Next::Close(reason) => self.close_conn(slot, reason),
        }
    }

    /// The header's deadline for the connection `id` in `slot` has come.
    pub(super) fn header_due(&mut self, slot: usize, id: ConnId) {
        // Evidence before verdict: the header may be in the kernel already.
        self.read_header(slot, ReadCause::Evidence);
        let still = self
            .core
            .conns
            .get(slot)
            .is_some_and(|c| c.serial == id.serial && c.awaiting);
        if still {
            self.refuse(slot, Refusal::Timeout(self.config.proxy_header_timeout));
        }
    }

    /// Makes the connection in `slot`, whose header was just read off it,
    /// the handler's; then reads what came along with the header.
    fn admit_proxied(&mut self, slot: usize, header: proxy::Header, why: ReadCause) {
        // LOCAL or UNKNOWN: the balancer's own connection stands.
        let via = self.core.peer(slot);
        let peer = header.source().unwrap_or(via);
        // The rules judge the client the header names (for LOCAL or
        // UNKNOWN, the balancer itself).
        if !self.screen(peer) {
            self.remove_conn(slot);
            return;
        }
        debug!(
            "accepted peer={peer} via={via} conn={slot}#{} proxy={}{}",
            self.core.conns[slot].serial,
            header.version,
            if header.source().is_none() {
                " (the balancer's own)"
            } else {
                ""
            }
        );
        match header.source() {
            Some(client) => {
                let core = &mut self.core;
                core.v6.replace(&mut core.conns[slot].peer, client);
            }
            None => self.core.stats.proxy_local += 1,
        }
        // Its liveness begins now: from here on it is a peer like any.
        let seen = self.fresh_nanos();
        let at = self
            .clock
            .tick_after(super::first_check(&self.config, &self.rule, seen));
        let conn = &mut self.core.conns[slot];
        conn.awaiting = false;
        conn.last_seen = seen;
        self.core.start_rate(slot, seen);
        let conn = &mut self.core.conns[slot];
        self.wheel.cancel(conn.timer);
        conn.timer = self.wheel.schedule(at, Timer::Liveness(slot as u32));
        self.core.awaiting -= 1;
        let id = ConnId {
            slot: slot as u32,
            serial: conn.serial,
        };
        self.greet(slot, id, peer);
        // What the client sent along with the header is in the kernel
        // still, behind it, and no new edge will come for it: read now.
        if self.is_open(id) {
            self.read_ready(slot, why);
        }
    }

    /// Closes the awaiting connection in `slot` for a header that will
    /// never be (or was not in time), and counts it.
    fn refuse(&mut self, slot: usize, refusal: Refusal) {
        let Some((conn, via)) = self.remove_conn(slot) else {
            return;
        };
        let stats = &mut self.core.stats;
        match refusal {
            Refusal::Header(_) => stats.proxy_errors += 1,
            Refusal::Timeout(_) => stats.proxy_timeouts += 1,
        }
        let kind = match refusal {
            Refusal::Header(_) => super::close_log::Kind::ProxyError,
            Refusal::Timeout(_) => super::close_log::Kind::ProxyTimeout,
        };
        if self.proxy_warned {
            if self.close_line(kind) {
                info!(
                    "closed via={via} conn={slot}#{} reason={}: {refusal}",
                    conn.serial,
                    kind.key()
                );
            }
        } else {
            self.proxy_warned = true;
            warn!(
                "closed via={via} conn={slot}#{}: {refusal}; is a client bypassing the balancer, or \
                 is the balancer not sending the header? Further connections without a valid PROXY \
                 header are counted (proxy_errors, proxy_timeouts) and logged at info, at most a few \
                 a second",
                conn.serial
            );
        }
    }
}
