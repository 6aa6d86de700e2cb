//! Listening and accepting, including the operating system's edges: the
//! connection ceiling and running out of file descriptors.

use std::io::{self, ErrorKind};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::Interest;
use socket2::{Domain, Socket, Type};

use super::conn::Conn;
use super::{Config, ConnId, Handler, Server, Timer};
use crate::protocol::Decoder;
use crate::time::Tick;

/// A non-blocking listener with `SO_REUSEADDR` (a restarted server can bind
/// while old connections sit in TIME_WAIT), optional `SO_REUSEPORT`, and the
/// configured backlog (mio's own default is 1024 — too small for a swarm).
pub(super) fn listen(config: &Config) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(config.listen), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if config.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&config.listen.into())?;
    socket.listen(config.listen_backlog)?;
    Ok(TcpListener::from_std(socket.into()))
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
    /// Accepts until the backlog is empty (mio is edge-triggered), or until
    /// descriptors run out, in which case a timer resumes later.
    pub(super) fn accept(&mut self, seen: Tick) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.admit(stream, addr, seen),
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
                Err(e) if is_resource_exhaustion(&e) => {
                    self.stats.accept_pauses += 1;
                    let pauses = self.accept_paused.get_or_insert(0);
                    *pauses += 1;
                    if *pauses == 1 {
                        warn!(
                            "accept paused: {e} (open connections {}); retrying every {}",
                            self.conns.len(),
                            crate::duration::format(self.config.accept_pause)
                        );
                    }
                    let resume =
                        self.wheel.now().max(seen) + self.clock.ticks(self.config.accept_pause);
                    self.wheel.schedule(resume, Timer::ResumeAccept);
                    return;
                }
                // The peer gave up between SYN and accept (ECONNABORTED) or
                // similar per-connection trouble: that one is gone, go on.
                Err(e) => {
                    debug!("accept failed: {e}");
                    self.stats.io_errors += 1;
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
                    ) {
                        continue;
                    }
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, addr: std::net::SocketAddr, seen: Tick) {
        if self.conns.len() >= self.max_connections {
            // Accept and close at once: a refused peer learns now, instead of
            // timing out in a backlog we will never drain.
            self.stats.rejected += 1;
            debug!(
                "rejected peer={addr}: {} connections open (max_connections)",
                self.conns.len()
            );
            return;
        }
        if let Err(e) = self.config.keepalive.apply(&stream) {
            // Setting options fails only if the socket is already dead.
            debug!("dropped peer={addr}: socket options: {e}");
            self.stats.io_errors += 1;
            return;
        }
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        // Readable and writable for life: re-registering when a backlog
        // appears or drains would cost an epoll_ctl each time, while a
        // writable edge with nothing to write costs one branch.
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            mio::Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("dropped peer={addr}: cannot register with poll: {e}");
            self.stats.io_errors += 1;
            return;
        }
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let id = ConnId {
            slot: slot as u32,
            serial,
        };
        let timer = self
            .wheel
            .schedule(self.rule.deadline(seen), Timer::Liveness(id));
        entry.insert(Conn {
            stream,
            serial,
            last_seen: seen,
            timer,
            decoder: Decoder::new(),
            backlog: None,
        });
        self.stats.accepted += 1;
        self.stats.active += 1;
        self.stats.peak_active = self.stats.peak_active.max(self.stats.active);
        debug!("accepted peer={addr} conn={id}");
        self.handler.on_connect(id, addr);
    }
}
