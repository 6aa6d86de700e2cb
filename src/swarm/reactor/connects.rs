//! Connects: paced and budgeted per turn, every address of an attempt
//! tried in turn, timed against the connect-wait bound on the swarm's
//! running clock.

use std::io;
use std::time::Instant;

use mio::{Interest, Token};

use super::{Link, Swarm, CONNECTS_PER_TURN, CONNECT_TIME_PER_TURN, RESOLVE_EVERY};
use crate::client::machine::State;
use crate::client::socket::start_connect;
use crate::client::target::{Attempt, Target};
use crate::time::Tick;

impl Swarm {
    /// Starts as many waiting connects as the pacer allows.
    pub(super) fn start_connects(&mut self, now: Tick) {
        if self.ready.is_empty() {
            return;
        }
        // A name is looked up again while connects are being made, at most
        // once a second; none go out before the first answer.
        if let Target::Name { host, port } = &self.config.connect {
            let every = self.clock.ticks(RESOLVE_EVERY);
            if self.addrs.stale(now, every) && !self.resolver.is_pending() {
                self.resolver.request(host, *port);
            }
            if self.addrs.is_empty() {
                return;
            }
        }
        let now_us = self.rtt_clock.now() as u32;
        let (mut budget, began) = (CONNECTS_PER_TURN, Instant::now());
        while let Some(&slot) = self.ready.front() {
            if budget == 0 || !self.pacer.try_take(now) {
                break;
            }
            self.ready.pop_front();
            let conn = &mut self.conns[slot];
            if conn.machine.state() != State::Ready {
                continue;
            }
            conn.attempt = Attempt::default();
            conn.since = now.saturating_sub(self.stalled_ticks);
            conn.machine.handle_connect_started(now);
            self.open(slot, now);
            self.settle(slot, now, now_us);
            budget -= 1;
            if began.elapsed() >= CONNECT_TIME_PER_TURN {
                break;
            }
        }
    }

    /// A connect attempt of `slot` is over at `now` (`completed`), or is
    /// being judged while still in flight: records how long it has been in
    /// flight, counts a completed one that took longer than the bound as
    /// slow, and returns whether it is past the bound.
    pub(super) fn connect_done(&mut self, slot: usize, now: Tick, completed: bool) -> bool {
        let waited = now
            .saturating_sub(self.stalled_ticks)
            .saturating_sub(self.conns[slot].since);
        let ms = self.clock.duration(waited).as_millis() as u64;
        self.counters.longest_connect_ms = self.counters.longest_connect_ms.max(ms);
        let late = waited > self.connect_wait_bound;
        if late && completed {
            self.counters.slow_connects += 1;
            if self.counters.slow_connects == 1 {
                log::info!(
                    "connect to {} took {ms} ms, longer than the connect-wait bound {} (the first; every one is counted)",
                    self.config.connect,
                    crate::duration::format(self.config.connect_wait_bound())
                );
            }
        }
        late
    }

    /// Starts `slot`'s connect to the next address of this attempt not yet
    /// tried; with none left, the attempt has failed. Within one attempt
    /// every usable address is tried once, so a name whose first address
    /// has nobody listening (`::1` for a server on IPv4 only) costs no
    /// failed attempt and no backoff.
    pub(super) fn open(&mut self, slot: usize, now: Tick) {
        // Source addresses are all of one family (checked at start).
        let sources_family = self.config.sources.first().copied();
        // What the attempt failed with if no address fits the sources'
        // family at all: not a port shortage.
        let mut last = io::ErrorKind::InvalidInput;
        while self.conns[slot]
            .attempt
            .has_next(&self.addrs, sources_family)
        {
            let source = match self.config.sources.len() {
                0 => None,
                n => {
                    self.next_source = (self.next_source + 1) % n;
                    Some(self.config.sources[self.next_source])
                }
            };
            let addr = match self.conns[slot].attempt.next(&mut self.addrs, source) {
                Ok(addr) => addr,
                Err(e) => {
                    last = e.kind();
                    break;
                }
            };
            let registry = self.poll.registry();
            let started = start_connect(addr, source).and_then(|mut stream| {
                registry.register(
                    &mut stream,
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(stream)
            });
            match started {
                Ok(stream) => {
                    let conn = &mut self.conns[slot];
                    conn.stream = Some(stream);
                    conn.link = Link::Connecting;
                    self.counters.connecting += 1;
                    return;
                }
                Err(e) => {
                    self.conns[slot].attempt.failed(&mut self.addrs);
                    last = e.kind();
                }
            }
        }
        self.conns[slot].machine.handle_connect_failed(now, last);
    }

    /// A connect that failed, or ran out of time, moves on to the next
    /// address of its attempt if one is left; true if it did.
    pub(super) fn next_address(&mut self, slot: usize, now: Tick) -> bool {
        let sources_family = self.config.sources.first().copied();
        if !self.conns[slot]
            .attempt
            .has_next(&self.addrs, sources_family)
        {
            return false;
        }
        self.conns[slot].attempt.failed(&mut self.addrs);
        self.drop_stream(slot);
        self.conns[slot].machine.restart_connect(now);
        self.open(slot, now);
        true
    }

    /// The name did not resolve and no earlier answer is there to use: the
    /// connects waiting for it fail (and back off) like any other.
    pub(super) fn fail_waiting_connects(&mut self, now: Tick) {
        let now_us = self.rtt_clock.now() as u32;
        while let Some(slot) = self.ready.pop_front() {
            let machine = &mut self.conns[slot].machine;
            if machine.state() == State::Ready {
                machine.handle_connect_started(now);
                machine.handle_connect_failed(now, io::ErrorKind::NotFound);
                self.settle(slot, now, now_us);
            }
        }
    }
}
