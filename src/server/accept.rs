//! Listening and accepting, including the operating system's edges: the
//! connection ceiling and running out of file descriptors.

use std::io::{self, ErrorKind};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::Interest;
use socket2::{Domain, Socket, Type};

use super::conn::Conn;
use super::{Config, ConnId, Context, Handler, Now, Server, Timer, ACCEPT_BUDGET, FIRST_CONN};
use crate::protocol::Decoder;

/// A non-blocking listener with `SO_REUSEADDR` (a restarted server can bind
/// while old connections sit in TIME_WAIT), optional `SO_REUSEPORT`, and the
/// configured backlog (mio's own default is 1024 — too small for a swarm).
pub(super) fn listen(config: &Config) -> io::Result<TcpListener> {
    match config.listener_fd {
        Some(fd) => inherited(fd),
        None => bind_listener(config).map(TcpListener::from_std),
    }
}

/// The listening socket `config` asks for, non-blocking, as the server
/// makes it for itself — and as a supervisor makes it once for workers
/// that share it ([`Config::listener_fd`]).
pub fn bind_listener(config: &Config) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(config.listen), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if config.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&config.listen.into())?;
    socket.listen(config.listen_backlog)?;
    Ok(socket.into())
}

/// The listening socket a supervisor handed down as descriptor `fd`.
fn inherited(fd: i32) -> io::Result<TcpListener> {
    use std::os::fd::FromRawFd;
    // Checked before it is owned: a descriptor that is not a listening
    // TCP socket is a clear error, not a server that never accepts.
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one int (and its length) into locals we
    // own; on a bad descriptor it fails with EBADF and touches nothing.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if accepting == 0 {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("descriptor {fd} is not a listening socket"),
        ));
    }
    // SAFETY: the descriptor is open and a listening socket (checked
    // above), and the process hands it to nothing else: the server owns it
    // from here and closes it when it stops.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener))
}

/// Errors that mean "out of descriptors or memory": retrying at once would
/// spin, because the pending connection stays in the backlog.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

impl<H: Handler> Server<H> {
    /// Accepts until the backlog is empty (mio is edge-triggered), the
    /// accept budget for this turn is spent (the listener is then resumed
    /// after everyone else's events), or descriptors run out (a timer
    /// resumes later).
    pub(super) fn accept(&mut self, now: Now) {
        self.accept_unfinished = false;
        for _ in 0..ACCEPT_BUDGET {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            // Full, while another process on the listener has room: the
            // queue is theirs (see `SharedRoom`); looked at again shortly,
            // in case they are slow to take it.
            if self.core.conns.len() >= self.max_connections
                && self.room.as_ref().is_some_and(|r| r.others_have_room())
            {
                self.wait_for_room(now);
                return;
            }
            match listener.accept() {
                Ok((stream, addr)) => self.admit(stream, addr),
                // An episode ends when the backlog is drained, not at the
                // first success: freed descriptors often trickle back one by
                // one, and each would otherwise start a new logged episode.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if let Some(pauses) = self.accept_paused.take() {
                        info!("accepting again after {pauses} pauses for lack of file descriptors");
                    }
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    if !self.accept_failed(e, now) {
                        return;
                    }
                }
            }
        }
        self.accept_unfinished = true;
    }

    /// Handles an accept error; returns whether to go on accepting now.
    /// Whenever it says no, a retry is scheduled: edge-triggered, nothing
    /// else would come back to connections already waiting, and during a
    /// descriptor pause listener events are ignored altogether.
    pub(super) fn accept_failed(&mut self, e: std::io::Error, now: Now) -> bool {
        if is_resource_exhaustion(&e) {
            self.core.stats.accept_pauses += 1;
            let pauses = self.accept_paused.get_or_insert(0);
            *pauses += 1;
            if *pauses == 1 {
                warn!(
                    "accept paused: {e} (open connections {}); retrying every {}",
                    self.core.conns.len(),
                    crate::duration::format(self.config.accept_pause)
                );
            }
            self.retry_accept(now);
            return false;
        }
        self.core.stats.io_errors += 1;
        // The peer gave up between SYN and accept (ECONNABORTED) or similar
        // per-connection trouble: that one is gone, go on.
        if matches!(
            e.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
        ) {
            debug!("accept failed: {e}");
            return true;
        }
        // Anything else (a firewall's EPERM, a protocol error) may or may
        // not recur: retry on a timer rather than at once, which could spin.
        warn!(
            "accept failed: {e}; retrying in {}",
            crate::duration::format(self.config.accept_pause)
        );
        self.retry_accept(now);
        false
    }

    /// Full, with other processes on the listener that have room: looks
    /// at it again shortly (one timer at a time; listener events meanwhile
    /// are left to the others).
    fn wait_for_room(&mut self, now: Now) {
        if self.full_wait.is_none() {
            let at = self.wheel.now().max(now.tick) + self.clock.ticks(super::LOOK_AGAIN).max(1);
            self.full_wait = Some(self.wheel.schedule(at, Timer::FullGrace));
        }
    }

    /// Makes sure one retry of the listener is scheduled.
    fn retry_accept(&mut self, now: Now) {
        if self.accept_retry.is_none() {
            let at = self.wheel.now().max(now.tick) + self.clock.ticks(self.config.accept_pause);
            self.accept_retry = Some(self.wheel.schedule(at, Timer::ResumeAccept));
        }
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, addr: std::net::SocketAddr) {
        if self.core.conns.len() >= self.max_connections {
            // Accept and close at once: a refused peer learns now, instead of
            // timing out in a backlog we will never drain.
            self.core.stats.rejected += 1;
            if self.close_line(super::close_log::Kind::Rejected) {
                info!(
                    "closed peer={addr} reason=rejected: {} connections open (max_connections)",
                    self.core.conns.len()
                );
            }
            return;
        }
        // Judged by its address before anything is read or set: with the
        // PROXY protocol, once its header names the client (proxied.rs).
        if !self.config.proxy_protocol && !self.screen(addr) {
            return;
        }
        if let Err(e) = self.socket_options.apply(&stream) {
            // Values the kernel refuses were turned away at start, so this
            // is rare and may be peculiar to this peer's socket; the kernel
            // keepalive is only the second line of defence, so the
            // connection is kept. Each cause is logged once.
            self.core.stats.sockopt_errors += 1;
            let cause = (e.option, e.error.raw_os_error());
            if !self.sockopt_logged.contains(&cause) {
                self.sockopt_logged.push(cause);
                warn!("socket option refused for peer={addr}: {e}; connection kept, further refusals of this kind are counted (sockopt_errors)");
            }
        }
        // Stamped when it was taken, not at the wakeup: a connection
        // accepted late in a long turn is not held to an earlier deadline.
        let seen = self.fresh_nanos();
        let entry = self.core.conns.vacant_entry();
        let slot = entry.key();
        // Readable and writable for life: re-registering when a backlog
        // appears or drains would cost an epoll_ctl each time, while a
        // writable edge with nothing to write costs one branch.
        if let Err(e) = self.registry.register(
            &mut stream,
            mio::Token(self.base + FIRST_CONN + slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("dropped peer={addr}: cannot register with poll: {e}");
            self.core.stats.io_errors += 1;
            if let (Some(table), false) = (self.per_source.as_mut(), self.config.proxy_protocol) {
                table.release(addr.ip());
            }
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let id = ConnId {
            slot: slot as u32,
            serial,
        };
        // With probes, the first look is after one interval; with the PROXY
        // protocol, at the header's deadline (proxied.rs).
        let first = if self.config.proxy_protocol {
            seen + self.config.proxy_header_timeout.as_nanos() as u64
        } else {
            super::first_check(&self.config, &self.rule, seen)
        };
        let timer = self
            .wheel
            .schedule(self.clock.tick_after(first), Timer::Liveness(id.slot));
        let peer = self.core.v6.keep(addr);
        entry.insert(Conn {
            stream,
            serial,
            last_seen: seen,
            timer,
            peer,
            decoder: Decoder::new(),
            pending: None,
            unfinished: false,
            peer_closed: false,
            closing: false,
            awaiting: self.config.proxy_protocol,
            state: H::State::default(),
        });
        self.core.start_rate(slot, seen);
        let stats = &mut self.core.stats;
        stats.accepted += 1;
        stats.active += 1;
        stats.peak_active = stats.peak_active.max(stats.active);
        self.update_room();
        if self.config.proxy_protocol {
            // Not the handler's until its PROXY header is in (proxied.rs).
            self.core.awaiting += 1;
            debug!("accepted via={addr} conn={id}, awaiting its PROXY header");
            return;
        }
        debug!("accepted peer={addr} conn={id}");
        self.greet(slot, id, addr);
    }

    /// Admits a connection to the handler: the configured greeting and
    /// `on_connect`, for `addr`, the peer.
    pub(super) fn greet(&mut self, slot: usize, id: ConnId, addr: std::net::SocketAddr) {
        // The greeting (unframed, what the peer reads first) and whatever
        // on_connect sends are staged and go out in one write — or not at
        // all, when on_connect refuses the peer.
        self.core.out.clear();
        if let Some(greeting) = &self.config.greeting {
            self.core.out.extend_from_slice(greeting);
        }
        self.core.current = Some(id);
        self.core.admitting = true;
        let mut ctx = Context {
            core: &mut self.core,
        };
        self.handler.on_connect(&mut ctx, id, addr);
        self.core.admitting = false;
        if self.core.conns[slot].closing {
            // Refused: nothing goes out, not even what a defer moved from
            // the staging to the connection's own output.
            self.core.out.clear();
        } else {
            // A failed write marks the connection closing, with its reason.
            let _ = self.core.flush_staged();
        }
        self.core.current = None;
        self.process_closes();
    }
}
