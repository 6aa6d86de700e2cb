//! The scrape endpoint as mio sources: a listener and at most
//! [`MAX_SCRAPERS`] connections, registered on the reactor's own poll with
//! tokens from the reactor's range, driven by its events and its clock.
//!
//! Every scraper is bounded: it has [`REQUEST_TIMEOUT`] to send a complete
//! request head (and as long again to take the answer), [`MAX_HEAD`] bytes
//! for it, and one answer, written without blocking, after which the
//! connection closes. Past the cap a new connection is accepted and closed
//! at once. Each outcome is counted ([`ScrapeStats`]), so a hostile
//! scraper shows in the very series it tried to stall.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::http::{self, Request, MAX_HEAD};

/// Scrape connections open at once; more are accepted and closed.
pub const MAX_SCRAPERS: usize = 16;

/// How long a scraper has to send its request head, and then to take the
/// answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Tokens the endpoint takes from its first: the listener, then one per
/// scraper.
pub const TOKENS: usize = 1 + MAX_SCRAPERS;

/// Connections accepted (or refused) per event; past it the listener is
/// resumed at the end of the turn, so a connect flood on the metrics port
/// cannot keep the loop from its peers.
const ACCEPT_BUDGET: usize = 64;

/// What happened to scrape connections, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeStats {
    /// Answered with the metrics.
    pub served: u64,
    /// Accepted and closed at once: [`MAX_SCRAPERS`] were open.
    pub rejected: u64,
    /// Closed for not sending a complete request head, or not taking the
    /// answer, within [`REQUEST_TIMEOUT`].
    pub timed_out: u64,
    /// Answered 400, 405 or 431 (not HTTP, another method, a head past
    /// [`MAX_HEAD`]), or closed by the scraper before its head was complete.
    pub bad_requests: u64,
    /// Answered 404, or the pointer at `/`.
    pub not_found: u64,
    /// Closed on a read, write or accept error.
    pub io_errors: u64,
}

impl ScrapeStats {
    /// Each outcome with its count, in a fixed order.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("served", self.served),
            ("rejected", self.rejected),
            ("timed_out", self.timed_out),
            ("bad_request", self.bad_requests),
            ("not_found", self.not_found),
            ("io", self.io_errors),
        ]
    }
}

/// One scrape connection.
#[derive(Debug)]
struct Scraper {
    stream: TcpStream,
    /// The request head so far (at most [`MAX_HEAD`] bytes).
    head: Vec<u8>,
    /// The answer, once there is one, and how much of it is written.
    out: Vec<u8>,
    sent: usize,
    answered: bool,
    deadline: Instant,
}

/// A scrape endpoint. See the [module docs](self).
#[derive(Debug)]
pub struct Endpoint {
    listener: TcpListener,
    local_addr: SocketAddr,
    first: usize,
    scrapers: Slab<Scraper>,
    /// The listener used up its accept budget: accept again at the turn's
    /// end.
    accept_left: bool,
    /// An accept error was logged at `warn`; later ones at `debug`.
    accept_warned: bool,
    stats: ScrapeStats,
}

impl Endpoint {
    /// Binds `addr` and registers the listener on `registry` as `first`;
    /// scrapers take the [`TOKENS`]` - 1` tokens after it.
    pub fn bind(addr: SocketAddr, registry: &Registry, first: Token) -> io::Result<Endpoint> {
        let mut listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        registry.register(&mut listener, first, Interest::READABLE)?;
        Ok(Endpoint {
            listener,
            local_addr,
            first: first.0,
            scrapers: Slab::with_capacity(MAX_SCRAPERS),
            accept_left: false,
            accept_warned: false,
            stats: ScrapeStats::default(),
        })
    }

    /// The address bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What happened to scrapers so far.
    pub fn stats(&self) -> &ScrapeStats {
        &self.stats
    }

    /// Scrape connections open now.
    pub fn open(&self) -> usize {
        self.scrapers.len()
    }

    /// Whether `token` is one of the endpoint's.
    pub fn owns(&self, token: Token) -> bool {
        token
            .0
            .checked_sub(self.first)
            .is_some_and(|offset| offset < TOKENS)
    }

    /// Whether the listener has connections left from a spent budget.
    pub fn has_work(&self) -> bool {
        self.accept_left
    }

    /// The earliest a scraper runs out of time.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.scrapers.iter().map(|(_, s)| s.deadline).min()
    }

    /// Handles readiness of one of the endpoint's tokens. `render` makes
    /// the exposition's body, given the endpoint's counters (this scrape
    /// already counted as served).
    pub fn handle_event(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        render: &mut dyn FnMut(&ScrapeStats) -> Vec<u8>,
    ) {
        let Some(offset) = token.0.checked_sub(self.first) else {
            return;
        };
        match offset {
            0 => self.accept(registry, now),
            n if n < TOKENS => self.ready(registry, n - 1, render),
            _ => {}
        }
    }

    /// The end of a turn: accepts what a spent budget left.
    pub fn resume(&mut self, registry: &Registry, now: Instant) {
        if std::mem::take(&mut self.accept_left) {
            self.accept(registry, now);
        }
    }

    /// Closes the scrapers whose time ran out.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        if self.next_deadline().is_none_or(|d| d > now) {
            return; // nothing due: the common case allocates nothing
        }
        let due: Vec<usize> = self
            .scrapers
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(key, _)| key)
            .collect();
        for key in due {
            self.stats.timed_out += 1;
            log::debug!(
                "metrics: closed scraper {} after {}: {}",
                peer(&self.scrapers[key].stream),
                crate::duration::format(REQUEST_TIMEOUT),
                if self.scrapers[key].answered {
                    "it did not take the answer"
                } else {
                    "no complete request"
                }
            );
            self.close(registry, key);
        }
    }

    /// Closes the listener and every scraper (the reactor stops).
    pub fn close_all(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.listener);
        let keys: Vec<usize> = self.scrapers.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(registry, key);
        }
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        for _ in 0..ACCEPT_BUDGET {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, most likely: the connection stays
                    // in the backlog for the next scrape's event to retry.
                    self.stats.io_errors += 1;
                    if std::mem::replace(&mut self.accept_warned, true) {
                        log::debug!("metrics: cannot accept a scraper: {e}");
                    } else {
                        log::warn!(
                            "metrics: cannot accept a scraper: {e}; further failures are counted"
                        );
                    }
                    return;
                }
            };
            if self.scrapers.len() >= MAX_SCRAPERS {
                self.stats.rejected += 1;
                log::debug!("metrics: refused scraper {addr}: {MAX_SCRAPERS} open");
                continue; // dropped: closed
            }
            let entry = self.scrapers.vacant_entry();
            let token = Token(self.first + 1 + entry.key());
            if let Err(e) =
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            {
                self.stats.io_errors += 1;
                log::debug!("metrics: cannot register scraper {addr}: {e}");
                continue;
            }
            entry.insert(Scraper {
                stream,
                head: Vec::new(),
                out: Vec::new(),
                sent: 0,
                answered: false,
                deadline: now + REQUEST_TIMEOUT,
            });
        }
        self.accept_left = true;
    }

    fn ready(
        &mut self,
        registry: &Registry,
        key: usize,
        render: &mut dyn FnMut(&ScrapeStats) -> Vec<u8>,
    ) {
        let Some(scraper) = self.scrapers.get_mut(key) else {
            return; // an event for a scraper already closed
        };
        if !scraper.answered {
            let mut buf = [0u8; 2048];
            let mut closed = false;
            loop {
                let room = MAX_HEAD - scraper.head.len();
                let want = room.min(buf.len());
                match scraper.stream.read(&mut buf[..want]) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        scraper.head.extend_from_slice(&buf[..n]);
                        if scraper.head.len() >= MAX_HEAD {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.stats.io_errors += 1;
                        log::debug!("metrics: scraper {}: read: {e}", peer(&scraper.stream));
                        return self.close(registry, key);
                    }
                }
            }
            let request = http::parse(&scraper.head);
            if request == Request::Partial {
                if closed {
                    self.stats.bad_requests += 1;
                    log::debug!(
                        "metrics: scraper {} closed before a complete request",
                        peer(&scraper.stream)
                    );
                    self.close(registry, key);
                }
                return;
            }
            let out = match request {
                Request::Metrics { head_only } => {
                    self.stats.served += 1;
                    let body = render(&self.stats);
                    http::response(200, http::CONTENT_TYPE, &body, head_only)
                }
                other => {
                    let (status, body) = http::refusal(other);
                    if status == 200 || status == 404 {
                        self.stats.not_found += 1;
                    } else {
                        self.stats.bad_requests += 1;
                    }
                    let head_only = matches!(other, Request::Index { head_only: true });
                    http::response(
                        status,
                        "text/plain; charset=utf-8",
                        body.as_bytes(),
                        head_only,
                    )
                }
            };
            let scraper = &mut self.scrapers[key];
            // The head is done with; its memory goes now, not at the close.
            scraper.head = Vec::new();
            scraper.out = out;
            scraper.answered = true;
            // As long again to take the answer, counted from now.
            scraper.deadline = Instant::now() + REQUEST_TIMEOUT;
        }
        self.write(registry, key);
    }

    /// Writes what the kernel takes of the answer; closes once all is sent.
    fn write(&mut self, registry: &Registry, key: usize) {
        let scraper = &mut self.scrapers[key];
        while scraper.sent < scraper.out.len() {
            match scraper.stream.write(&scraper.out[scraper.sent..]) {
                Ok(0) => break,
                Ok(n) => scraper.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.io_errors += 1;
                    log::debug!("metrics: scraper {}: write: {e}", peer(&scraper.stream));
                    break;
                }
            }
        }
        // Done (or broken): a FIN after the answer, then the close.
        let _ = scraper.stream.shutdown(std::net::Shutdown::Write);
        self.close(registry, key);
    }

    fn close(&mut self, registry: &Registry, key: usize) {
        if let Some(mut scraper) = self.scrapers.try_remove(key) {
            let _ = registry.deregister(&mut scraper.stream);
        }
    }
}

fn peer(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| "unknown".to_string(), |a| a.to_string())
}
