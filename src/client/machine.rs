//! The client's state machine: no sockets, no clock, driven by ticks.
//!
//! ```text
//!            start                connect_started          connected
//!   Idle ──────────▶ Ready ─────────────────▶ Connecting ──────────▶ Connected
//!                      ▲                          │                     │
//!                      │ backoff expired          │ failed / timed out  │ silent for interval × misses,
//!                      │                          ▼                     │ closed, error
//!                      └────────────────── BackingOff ◀─────────────────┘
//! ```
//!
//! The shell feeds in what happened ([`Machine::handle_connected`],
//! [`Machine::handle_received`], [`Machine::handle_closed`], …) and the time
//! ([`Machine::handle_timeout`]), asks when to wake next
//! ([`Machine::poll_timeout`]) and pulls what to do ([`Machine::poll_action`]),
//! in the manner of quinn-proto. `Ready` exists because the shell, not the
//! machine, decides when a socket is actually opened: a swarm paces its
//! connects, so the connect timeout starts when the connect does.
//!
//! Liveness: every complete frame received proves the server
//! alive; when `interval × misses` ticks pass without one, the machine gives
//! the connection up. With `lenient`, any received bytes are proof. Missed
//! replies (a heartbeat still unanswered when the next one is due, at least
//! an interval later) are counted and reported but are not by themselves a
//! reason to disconnect.
//!
//! # Writing a shell
//!
//! [`Config::from_durations`] turns human units into ticks. A shell (the
//! [`Client`](super::Client) is one, `examples/sans_io_client.rs` a
//! smaller one over a std `TcpStream`) does the following:
//!
//! - **Ticks.** Count ticks of the config's [`tick`](Config::tick) from
//!   one origin ([`crate::time::Clock`] does it). Pass the current tick
//!   *rounded down* ([`Clock::now`](crate::time::Clock::now)) as `now` to
//!   [`handle_timeout`](Machine::handle_timeout),
//!   [`handle_connect_started`](Machine::handle_connect_started),
//!   [`handle_connect_failed`](Machine::handle_connect_failed) and
//!   [`handle_closed`](Machine::handle_closed): a timer that fires at tick
//!   `t` has then really reached `t`. Stamp what arrived *rounded up*
//!   ([`Clock::tick_ceil`](crate::time::Clock::tick_ceil)) for
//!   [`handle_connected`](Machine::handle_connected) and
//!   [`handle_received`](Machine::handle_received): the silence limit then
//!   counts from no earlier than the real arrival, so it is never short.
//!   [`Clock::tick_range`](crate::time::Clock::tick_range) gives both.
//! - **Actions.** After every call that feeds something in, pull
//!   [`poll_action`](Machine::poll_action) until `None` and carry each out
//!   ([`has_action`](Machine::has_action) says whether any waits). Sleep
//!   no later than [`poll_timeout`](Machine::poll_timeout), then call
//!   `handle_timeout`.
//! - **Reads.** Per read that returned bytes, call
//!   `handle_received(seen, Proof::Bytes)` once (proof of life only when
//!   `lenient`; otherwise it changes nothing); then feed the bytes to a
//!   [`Decoder`](crate::protocol::Decoder) and call `handle_received` once
//!   *per complete frame*: [`Proof::Reply`] for each heartbeat response
//!   (each one settles one outstanding heartbeat, so per frame, never per
//!   read), [`Proof::Frame`] for any other frame. A read of zero bytes or
//!   a read error is [`handle_closed`](Machine::handle_closed).
//! - **Answer the server's heartbeat requests.** A server may probe a
//!   peer that has been quiet with a heartbeat request,
//!   `00 00 00 00 08 00 00 00` ([`HEARTBEAT_REQUEST`](crate::protocol::HEARTBEAT_REQUEST)),
//!   and close it if no reply comes. The machine never sees this as more
//!   than a [`Proof::Frame`]; the shell must write
//!   `01 00 00 00 08 00 00 00` ([`HEARTBEAT_RESPONSE`](crate::protocol::HEARTBEAT_RESPONSE))
//!   for each one.
//! - **Connects.** On [`Action::Connect`], open a socket and call
//!   `handle_connect_started`; when it completes, `handle_connected`.
//!   A connect that failed is reported one way only:
//!   [`handle_connect_failed`](Machine::handle_connect_failed) with the
//!   error's kind (a connect that takes too long is the machine's own
//!   verdict, [`Reason::ConnectTimeout`], at `handle_timeout`). Either
//!   way the machine answers [`Action::ConnectFailed`]; a connection that
//!   was up and ended is answered by [`Action::Disconnect`]. Both say when
//!   the next connect comes.
//! - **Evidence before verdict.** Before a `handle_timeout` at which
//!   [`silence_due`](Machine::silence_due) holds, read what the kernel
//!   already holds: the frame that proves the server alive may be there.

use std::io;

use super::backoff::Backoff;
use crate::liveness::Rule;
use crate::rng::Rng;
use crate::time::Tick;

mod config;
mod reason;

pub use config::Config;
pub use reason::Reason;

/// Where the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started.
    Idle,
    /// Due to connect; waiting for the shell to open the socket.
    Ready,
    /// A connect is in flight since the given tick.
    Connecting {
        /// When the connect started.
        since: Tick,
    },
    /// Connected.
    Connected(Link),
    /// Waiting before the next connect.
    BackingOff {
        /// When the wait ends.
        until: Tick,
    },
    /// Stopped for good.
    Stopped,
}

/// The liveness record of an open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// When the connection came up.
    pub since: Tick,
    /// The last tick at which proof of life arrived (the connect counts).
    pub last_seen: Tick,
    /// When the next heartbeat is due.
    pub next_heartbeat: Tick,
    /// When the last heartbeat was sent.
    pub last_sent: Tick,
    /// Heartbeats sent and not yet answered.
    pub unanswered: u32,
    /// Whether anything has been received on this connection yet.
    pub proven: bool,
}

/// What the shell observed arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A complete heartbeat response (or, with fixed request/reply strings,
    /// a complete reply).
    Reply,
    /// Any other complete frame.
    Frame,
    /// Bytes that did not (yet) form a frame: proof only when lenient.
    Bytes,
}

/// Work for the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a connection, then call [`Machine::handle_connect_started`].
    Connect,
    /// Send one heartbeat request. `due` is the tick it was meant for — the
    /// connect, or its grid point — which may be earlier than now when the
    /// shell itself was late: a round trip is measured from `due`, so the
    /// shell's own lateness is never hidden from it.
    SendHeartbeat {
        /// The tick this heartbeat was due at.
        due: Tick,
    },
    /// The shell fell more than an interval behind: this many grid points
    /// passed with no heartbeat. Only the latest is sent (a heartbeat says
    /// "alive now"; a burst of stale ones would say nothing more); the
    /// others are reported, never silently dropped.
    SkippedHeartbeats {
        /// Grid points passed over.
        count: u32,
    },
    /// A heartbeat was still unanswered when the next one fell due.
    MissedReply {
        /// Heartbeats outstanding before the one about to be sent.
        unanswered: u32,
    },
    /// The connection that was up has ended: close the socket; the machine
    /// will ask to connect again in `retry_in` ticks.
    Disconnect {
        /// Why.
        reason: Reason,
        /// The backoff delay chosen.
        retry_in: Tick,
    },
    /// The connect attempt failed (the shell reported it, or it ran out of
    /// time): close its socket; the machine will ask to connect again in
    /// `retry_in` ticks.
    ConnectFailed {
        /// Why: [`Reason::ConnectFailed`] or [`Reason::ConnectTimeout`]
        /// from the machine's own calls; whatever the shell passed to
        /// [`Machine::handle_closed`] while connecting.
        reason: Reason,
        /// The backoff delay chosen.
        retry_in: Tick,
    },
}

/// One client's state. Small (it is held once per connection by a swarm) and
/// allocation-free.
#[derive(Debug, Clone)]
pub struct Machine {
    config: Config,
    state: State,
    backoff: Backoff,
    rng: Rng,
    pending: Pending,
}

/// Actions not yet pulled; at most one of each kind can be due at once.
/// No `Option` around the small fields (a count that is never zero when
/// due uses zero for "none"), so the flags share padding: a swarm holds a
/// machine per connection.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    /// Heartbeats outstanding (at least one), or zero.
    missed: u32,
    /// Grid points passed over (at least one), or zero.
    skipped: u32,
    /// A heartbeat is due, for the tick `heartbeat_due`.
    heartbeat: bool,
    heartbeat_due: Tick,
    /// The reason and the delay.
    disconnect: Option<(Reason, Tick)>,
    /// Whether the connection `disconnect` ends was up.
    was_up: bool,
    connect: bool,
}

impl Pending {
    fn heartbeat(&mut self, due: Tick) {
        self.heartbeat = true;
        self.heartbeat_due = due;
    }
}

impl Machine {
    /// A machine in `Idle`; `rng` supplies its jitter.
    pub fn new(config: Config, rng: Rng) -> Machine {
        Machine {
            config,
            state: State::Idle,
            backoff: Backoff::new(),
            rng,
            pending: Pending::default(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where it is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Failed attempts since the last connection that received something.
    pub fn attempt(&self) -> u32 {
        self.backoff.attempt()
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    /// Begin, from `Idle` or after [`stop`](Self::stop) (with a fresh
    /// backoff: the first retry waits from the shortest window again): the
    /// first action will be [`Action::Connect`]. Does nothing while
    /// running.
    pub fn start(&mut self, _now: Tick) {
        if matches!(self.state, State::Idle | State::Stopped) {
            self.state = State::Ready;
            self.backoff.reset();
            self.pending = Pending {
                connect: true,
                ..Pending::default()
            };
        }
    }

    /// Stop: no more actions until [`start`](Self::start). The shell closes
    /// any socket itself; nothing is reported for it.
    pub fn stop(&mut self) {
        self.state = State::Stopped;
        self.pending = Pending::default();
    }

    /// The shell began a connect at `now` (rounded down), after
    /// [`Action::Connect`].
    pub fn handle_connect_started(&mut self, now: Tick) {
        debug_assert_eq!(self.state, State::Ready, "connect started out of turn");
        if self.state == State::Ready {
            self.state = State::Connecting { since: now };
        }
    }

    /// The connect completed; `now` is the moment it was seen, rounded up
    /// (the connect counts as the first proof of life).
    pub fn handle_connected(&mut self, now: Tick) {
        if !matches!(self.state, State::Connecting { .. }) {
            return;
        }
        let mut link = Link {
            since: now,
            last_seen: now,
            next_heartbeat: now,
            last_sent: now,
            unanswered: 0,
            proven: false,
        };
        if self.config.heartbeats {
            // The first heartbeat goes out at once: it tells within one
            // round trip whether the server is really there.
            self.pending.heartbeat(now);
            link.unanswered = 1;
            link.next_heartbeat = self.next_heartbeat_after(now, now);
        }
        self.state = State::Connected(link);
    }

    /// Something arrived, stamped `now` rounded up. Call it once per
    /// complete frame ([`Proof::Reply`], [`Proof::Frame`]) and once per read
    /// that returned bytes ([`Proof::Bytes`]); see the module docs. Returns
    /// whether it counted as proof of life.
    pub fn handle_received(&mut self, now: Tick, proof: Proof) -> bool {
        let State::Connected(link) = &mut self.state else {
            return false;
        };
        if proof == Proof::Reply {
            link.unanswered = link.unanswered.saturating_sub(1);
        }
        let counts = match proof {
            Proof::Reply | Proof::Frame => true,
            Proof::Bytes => self.config.lenient,
        };
        if counts {
            link.last_seen = link.last_seen.max(now);
            if !link.proven {
                link.proven = true;
                self.backoff.reset();
            }
        }
        counts
    }

    /// The connect in flight failed with `kind` (for a name that did not
    /// resolve, [`io::ErrorKind::NotFound`]): the one way to report a
    /// failed connect. Answered by [`Action::ConnectFailed`].
    pub fn handle_connect_failed(&mut self, now: Tick, kind: io::ErrorKind) {
        if matches!(self.state, State::Connecting { .. }) {
            self.give_up(now, Reason::ConnectFailed(kind));
        }
    }

    /// The connection ended for `reason` (the shell closed it, the server
    /// did, reading or writing failed): answered by [`Action::Disconnect`].
    /// While connecting it ends the attempt, answered by
    /// [`Action::ConnectFailed`] with this reason.
    pub fn handle_closed(&mut self, now: Tick, reason: Reason) {
        if matches!(self.state, State::Connecting { .. } | State::Connected(_)) {
            self.give_up(now, reason);
        }
    }

    /// Whether, at `now`, the server has been silent for the whole silence
    /// limit. The shell reads whatever the kernel already holds before it
    /// lets [`handle_timeout`](Self::handle_timeout) act on that: evidence
    /// before verdict.
    pub fn silence_due(&self, now: Tick) -> bool {
        match self.state {
            State::Connected(link) => now >= self.silence_deadline(&link),
            _ => false,
        }
    }

    /// Whether the connect in flight has run out of time at `now`. A shell
    /// with other addresses left to try moves on to the next with
    /// [`restart_connect`](Self::restart_connect) instead of letting
    /// [`handle_timeout`](Self::handle_timeout) give the attempt up.
    pub fn connect_due(&self, now: Tick) -> bool {
        match self.state {
            State::Connecting { since } => now >= since.saturating_add(self.config.connect_timeout),
            _ => false,
        }
    }

    /// The shell started over with another address of the same attempt:
    /// the connect timeout counts from `now`.
    pub fn restart_connect(&mut self, now: Tick) {
        if let State::Connecting { since } = &mut self.state {
            *since = now;
        }
    }

    /// When a connection last heard from at `link.last_seen` is silent for
    /// good.
    fn silence_deadline(&self, link: &Link) -> Tick {
        link.last_seen
            .saturating_add(self.config.silence_limit.max(1))
    }

    /// The shell itself was stalled for `pause` ticks, which began at
    /// `began` at the latest (see [`crate::time::Stalls`]): that time is
    /// not the server's silence, nor its slowness to accept, so the
    /// liveness stamp moves as [`Rule::excuse`] says — not at all for a
    /// server already silent past the limit when the stall began — and a
    /// connect in flight moves by the pause. Heartbeats keep their grid.
    pub fn excuse(&mut self, pause: Tick, began: Tick, now: Tick) {
        match &mut self.state {
            State::Connected(link) => {
                let rule = Rule::with_limit(self.config.interval, self.config.silence_limit);
                link.last_seen = rule.excuse(link.last_seen, pause, began, now);
            }
            State::Connecting { since } => {
                *since = since.saturating_add(pause).min(now).max(*since);
            }
            _ => {}
        }
    }

    /// Time has reached `now` (the current tick, rounded down): do whatever
    /// fell due. Early calls do nothing; see also
    /// [`silence_due`](Self::silence_due) for what to read first.
    pub fn handle_timeout(&mut self, now: Tick) {
        match self.state {
            State::Idle | State::Ready | State::Stopped => {}
            State::Connecting { .. } => {
                if self.connect_due(now) {
                    self.give_up(now, Reason::ConnectTimeout);
                }
            }
            State::Connected(link) => {
                if now >= self.silence_deadline(&link) {
                    let idle = self.config.duration(now - link.last_seen);
                    self.give_up(now, Reason::Silent { idle });
                } else if self.config.heartbeats && now >= link.next_heartbeat {
                    // `next_heartbeat` is on the grid; so is the latest grid
                    // point at or before `now`, the one this heartbeat serves.
                    let interval = self.config.interval.max(1);
                    let behind = (now - link.next_heartbeat) / interval;
                    let due = link.next_heartbeat + behind * interval;
                    if let State::Connected(link) = &mut self.state {
                        // Missed: unanswered for a whole interval. The one
                        // sent on connect may be younger when the first grid
                        // tick comes soon after; it is not late yet.
                        if link.unanswered > 0 && now - link.last_sent >= interval {
                            self.pending.missed = link.unanswered;
                        }
                        link.unanswered = link.unanswered.saturating_add(1);
                        link.last_sent = now;
                        link.next_heartbeat = due.saturating_add(interval);
                        self.pending.heartbeat(due);
                        if behind > 0 {
                            self.pending.skipped = behind.min(u32::MAX as Tick) as u32;
                        }
                    }
                }
            }
            State::BackingOff { until } => {
                if now >= until {
                    self.state = State::Ready;
                    self.pending.connect = true;
                }
            }
        }
    }

    /// The next tick at which [`handle_timeout`](Self::handle_timeout) has
    /// something to do, if any. Never later than the true deadline; the
    /// shell may call early (nothing happens) but must not call late.
    pub fn poll_timeout(&self) -> Option<Tick> {
        match self.state {
            State::Idle | State::Ready | State::Stopped => None,
            State::Connecting { since } => Some(since.saturating_add(self.config.connect_timeout)),
            State::Connected(link) => {
                let silent = self.silence_deadline(&link);
                if self.config.heartbeats {
                    Some(silent.min(link.next_heartbeat))
                } else {
                    Some(silent)
                }
            }
            State::BackingOff { until } => Some(until),
        }
    }

    /// Whether an action waits to be pulled with
    /// [`poll_action`](Self::poll_action): a shell that left some for later
    /// must not sleep on them.
    pub fn has_action(&self) -> bool {
        let p = &self.pending;
        p.disconnect.is_some() || p.missed > 0 || p.skipped > 0 || p.heartbeat || p.connect
    }

    /// The next thing to do, if any. Call until `None` after every event.
    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some((reason, retry_in)) = self.pending.disconnect.take() {
            return Some(if self.pending.was_up {
                Action::Disconnect { reason, retry_in }
            } else {
                Action::ConnectFailed { reason, retry_in }
            });
        }
        if self.pending.missed > 0 {
            let unanswered = std::mem::take(&mut self.pending.missed);
            return Some(Action::MissedReply { unanswered });
        }
        if self.pending.skipped > 0 {
            let count = std::mem::take(&mut self.pending.skipped);
            return Some(Action::SkippedHeartbeats { count });
        }
        if std::mem::take(&mut self.pending.heartbeat) {
            let due = self.pending.heartbeat_due;
            return Some(Action::SendHeartbeat { due });
        }
        if std::mem::take(&mut self.pending.connect) {
            return Some(Action::Connect);
        }
        None
    }

    fn give_up(&mut self, now: Tick, reason: Reason) {
        let was_up = self.is_connected();
        let retry_in = self.backoff.next_delay(&self.config.backoff, &mut self.rng);
        self.state = State::BackingOff {
            until: now.saturating_add(retry_in),
        };
        // Whatever was due for the old connection is moot.
        self.pending = Pending {
            disconnect: Some((reason, retry_in)),
            was_up,
            ..Pending::default()
        };
    }

    /// The first heartbeat tick after `now` on this client's grid: ticks
    /// congruent to the phase, or to `anchor` (the connect tick) without one.
    fn next_heartbeat_after(&self, now: Tick, anchor: Tick) -> Tick {
        let interval = self.config.interval.max(1);
        let anchor = self.config.phase.unwrap_or(anchor) % interval;
        let from = now.saturating_add(1);
        let offset = (anchor + interval - from % interval) % interval;
        from.saturating_add(offset)
    }
}

#[cfg(test)]
mod tests;
