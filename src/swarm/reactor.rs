//! The swarm's loop: one poll, one slab, one wheel, many machines.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Poll, Token};
use slab::Slab;

use super::conn::{Conn, Inflight, Link, Pattern, Reader};
use super::counters::{rtt_histogram, Counters, FailedBy, LostBy, Rtt, Rtts};
use super::pace::Pacer;
use super::report::{Histograms, Report};
use super::stall_log::StallLog;
use super::status::{Snapshot, Window};
use super::{Exchange, SwarmConfig, SwarmError};
use crate::client::machine::{self, Action, Machine, Reason};
use crate::client::socket::completed_meanwhile;
use crate::client::target::{Addresses, Attempt, Resolver};
use crate::keepalive::SocketOptions;
use crate::limits::{raise_file_limit, FD_RESERVE};
use crate::protocol::HEARTBEAT_REQUEST;
use crate::rng::Rng;
use crate::shutdown::ShutdownHandle;
use crate::time::{Batching, Clock, Stalls, Tick};
use crate::wheel::Wheel;

/// Readiness events fetched per poll.
const EVENTS: usize = 1024;

mod conn_io;
mod connects;

const WAKER: Token = Token(usize::MAX);

/// How long a name's addresses are used before they are looked up again:
/// a DNS change is followed within a second, without a lookup for every
/// one of thousands of connects.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);

/// Bytes per `read`; one buffer for the whole swarm.
const SCRATCH: usize = 64 * 1024;

/// Most send stamps kept per connection in interval mode (4 bytes each).
const MAX_RING: usize = 64;

/// Most connects started in one turn of the loop, paced or not, and the
/// longest a turn spends starting them; the rest wait for the next turn,
/// which comes at once. A connect costs the kernel more the more
/// connections there are to the same server (the ephemeral port search,
/// from about 10 µs to about a millisecond): at 19,000 unpaced connects one
/// turn took 5–8 s, in which no reply was read and no heartbeat sent, and
/// the server evicted thousands of connections the swarm had not yet
/// used. The time bound adapts to that cost; the count bounds a turn
/// however coarse the clock.
const CONNECTS_PER_TURN: usize = 64;
const CONNECT_TIME_PER_TURN: Duration = Duration::from_millis(5);

/// A connection closed with no reply, when none of the swarm's requests
/// had reached it, this long or longer after its connect began, is filed
/// as `idle`, not `rejected`: a server at its connection limit closes at
/// once, within a round trip of the accept; one that waited this long was
/// giving up a connection the swarm had left silent.
const REJECTED_WITHIN: Duration = Duration::from_secs(1);

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting, heartbeating, reconnecting.
    Running,
    /// Sending has stopped; waiting until `until` for replies in flight.
    Draining { until: Tick },
}

/// Many clients against one server. See the [module docs](super).
pub struct Swarm {
    config: SwarmConfig,
    socket_options: SocketOptions,
    clock: Clock,
    /// Microsecond ticks from the same origin, for round-trip stamps only.
    rtt_clock: Clock,
    poll: Poll,
    events: Events,
    shutdown: ShutdownHandle,
    /// Set (by a SIGUSR1, say) to keep round trips from then on apart.
    mark: Arc<AtomicBool>,
    conns: Slab<Conn>,
    wheel: Wheel<usize>,
    /// Slots whose machine asked to connect, waiting for the pacer.
    ready: VecDeque<usize>,
    /// Where connects go: the server's addresses, looked up off-thread when
    /// it is a name.
    addrs: Addresses,
    resolver: Resolver,
    pacer: Pacer,
    next_source: usize,
    scratch: Box<[u8]>,
    /// The request repeated: any backlog is written straight from here.
    template: Box<[u8]>,
    request_len: usize,
    /// The fixed reply, and how to find it in a stream (unused for frames).
    reply: Pattern,
    /// Round trips, over the run and over the status window.
    rtts: Rtts,
    /// How late heartbeats went out against their schedule (µs).
    lag: Histogram<u64>,
    /// How long each turn of the loop took, from waking to waiting again
    /// (µs): the longest an arrived reply or a due deadline could wait to
    /// be seen, in either mode. A turn that opens thousands of connects,
    /// or one the swarm was stopped in, shows here.
    turns: Histogram<u64>,
    /// The swarm's recent stalls, taken out of the round trips that span them.
    stall_log: StallLog,
    /// The microsecond clock at the last wakeup: with it a 32-bit stamp
    /// taken later in the same turn is made whole again.
    wake_us: u64,
    counters: Counters,
    /// Requests outstanding over all connections.
    in_flight: u64,
    /// The swarm's own stalls, measured and excused.
    stalls: Stalls,
    /// The short wait before polling again under load.
    batching: Batching,
    /// Connections whose read stopped at its budget, to read on next turn
    /// (each once: `Conn::unfinished`), and a spare to swap with while
    /// they are read; both keep their capacity.
    unfinished: Vec<usize>,
    unfinished_spare: Vec<usize>,
    /// Ticks the swarm was kept from running so far, all its stalls
    /// together: `now - stalled_ticks` is its running clock, on which a
    /// connect's wait is measured, so a stall of the swarm's own is never
    /// taken for a server slow to accept.
    stalled_ticks: Tick,
    /// How long a connect may be in flight before it counts against the
    /// run, in ticks (see [`SwarmConfig::connect_wait_bound`]).
    connect_wait_bound: Tick,
    /// Picks the connections to churn.
    churn_rng: Rng,
    /// Churn owed but not yet done: the fraction of a connection carried
    /// from one second to the next.
    churn_due: f64,
    phase: Phase,
}

impl Swarm {
    /// Checks the configuration and the open-files limit (raising the soft
    /// limit to the hard one), and sets every client up. Nothing connects
    /// until [`run`](Self::run).
    pub fn new(config: SwarmConfig) -> Result<Swarm, SwarmError> {
        config.validate().map_err(SwarmError::Config)?;
        check_limits(&config)?;
        let clock = Clock::start(config.tick);
        let rtt_clock = Clock::new(clock.instant(0), Duration::from_micros(1));
        let poll = Poll::new().map_err(SwarmError::Setup)?;
        let shutdown = ShutdownHandle::new(poll.registry(), WAKER).map_err(SwarmError::Setup)?;
        let resolver = Resolver::new(shutdown.waker());

        let (request, reply): (&[u8], &[u8]) = match &config.exchange {
            Exchange::Heartbeat => (&HEARTBEAT_REQUEST, &[]),
            Exchange::Fixed { request, reply } => (request, reply),
        };
        let copies = config.flood.unwrap_or(1).clamp(64, 4096) as usize;
        let template = request.repeat(copies).into_boxed_slice();

        let base = machine::Config {
            heartbeats: config.flood.is_none(),
            ..config.timing().machine_config(config.tick, config.lenient)
        };
        let interval = base.interval;
        let ring = match config.flood {
            // Flood mode never has more than `depth` in flight.
            Some(depth) => depth as usize,
            // A heartbeat is answered or the connection is given up within
            // `misses` intervals; a few more stamps cover replies that are
            // late but come. Past that, replies are counted, not timed.
            None => (config.misses as usize + 2).min(MAX_RING),
        };
        let mut rng = config.seed.map(Rng::new).unwrap_or_else(Rng::from_entropy);
        // Client i of n heartbeats at i/n of the interval (of the whole
        // fleet's, when this swarm holds a slice of it).
        let slice = config.slice.unwrap_or(super::Slice {
            first: 0,
            of: config.clients,
            index: 0,
            workers: 1,
        });
        let n = slice.of as u64;
        let mut conns = Slab::with_capacity(config.clients);
        for j in 0..config.clients {
            let i = slice.position(j) as u64;
            let machine_config = machine::Config {
                phase: Some((i as u128 * interval as u128 / n as u128) as Tick),
                ..base
            };
            conns.insert(Conn {
                machine: Machine::new(machine_config, rng.split()),
                stream: None,
                link: Link::Down,
                timer: None,
                reader: Reader::new(matches!(config.exchange, Exchange::Fixed { .. })),
                inflight: Inflight::new(ring),
                unsent: 0,
                write_pos: 0,
                answered: false,
                churned: false,
                unfinished: false,
                attempt: Attempt::default(),
                since: 0,
            });
        }
        let ticks_per_second = clock.ticks(Duration::from_secs(1));
        Ok(Swarm {
            socket_options: config.socket_options(),
            addrs: Addresses::new(&config.connect),
            resolver,
            pacer: Pacer::new(config.connect_rate, ticks_per_second, 0),
            wheel: Wheel::with_capacity(0, config.clients),
            ready: VecDeque::with_capacity(config.clients),
            events: Events::with_capacity(EVENTS),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            request_len: request.len(),
            reply: Pattern::new(reply),
            template,
            rtts: Rtts::new(),
            lag: rtt_histogram(),
            turns: rtt_histogram(),
            stall_log: StallLog::new(),
            wake_us: 0,
            counters: Counters::default(),
            in_flight: 0,
            stalls: Stalls::new(
                clock.pause_threshold(),
                base.silence_limit.saturating_mul(clock.tick_nanos()),
                base.interval.saturating_mul(clock.tick_nanos()),
            ),
            batching: Batching::new(config.batch_wait, EVENTS),
            unfinished: Vec::new(),
            unfinished_spare: Vec::new(),
            stalled_ticks: 0,
            connect_wait_bound: clock.ticks(config.connect_wait_bound()),
            churn_rng: rng.split(),
            churn_due: 0.0,
            phase: Phase::Running,
            next_source: 0,
            conns,
            config,
            clock,
            rtt_clock,
            poll,
            shutdown,
            mark: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A handle that ends the run early (the report is still produced).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// A flag that, once set, marks the run: from the next turn on, round
    /// trips are also reported apart (`since mark`), so a steady state can
    /// be told from the ramp before it. Setting it again starts afresh.
    /// `lubdub swarm` sets it on SIGUSR1.
    pub fn mark_handle(&self) -> Arc<AtomicBool> {
        self.mark.clone()
    }

    /// Runs for the configured duration or until the shutdown handle fires,
    /// calling `on_status` about every `status_every`, then drains and
    /// reports.
    pub fn run(&mut self, mut on_status: impl FnMut(&Snapshot)) -> Result<Report, SwarmError> {
        let start = self.clock.instant(0);
        log::info!(
            "swarm: {} clients to {}, {} connects/s, {}",
            self.config.clients,
            self.config.connect,
            self.config.connect_rate,
            match self.config.flood {
                Some(depth) => format!("flood depth {depth}"),
                None => format!(
                    "heartbeat every {}",
                    crate::duration::format(self.config.interval)
                ),
            }
        );
        let end = self.config.duration.map(|d| self.clock.ticks(d));
        let status_every = self.clock.ticks(self.config.status_every).max(1);
        let mut next_status = status_every;
        let mut window = Window::new(start);
        let second = self.clock.ticks(Duration::from_secs(1));
        let mut next_churn = (self.config.churn > 0.0).then_some(second);
        let (mut connected_at_end, mut churn_pending) = (0, 0);
        let mut turn_began = Instant::now();
        for slot in 0..self.conns.len() {
            self.conns[slot].machine.start(0);
            self.settle(slot, 0, 0);
        }

        loop {
            // Judged again before any verdict: a stop in the work after the
            // wakeup (reads, settles) is excused, or not, before the timers.
            let instant = Instant::now();
            self.excuse_stall(instant);
            if self.mark.swap(false, Ordering::Relaxed) {
                self.rtts.mark();
                log::info!("marked: round trips from here on are also reported apart");
            }
            let now = self.clock.tick_of(self.clock.nanos(instant));
            if self.phase == Phase::Running
                && (self.shutdown.is_requested() || end.is_some_and(|end| now >= end))
            {
                // The last line of the run's status, then the end of sending.
                on_status(self.snapshot(&mut window, start, true));
                connected_at_end = self.counters.connected;
                // A connect still hanging past the bound is not a
                // connection on its way back: it is counted as stuck, and a
                // churned one stuck so is not pending but down.
                let mut stuck = 0;
                for slot in 0..self.conns.len() {
                    if self.conns[slot].link == Link::Connecting
                        && self.connect_done(slot, now, false)
                    {
                        stuck += 1;
                        self.conns[slot].churned = false;
                    }
                }
                self.counters.stuck_connects = stuck;
                churn_pending = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.churned && c.link != Link::Up)
                    .count() as u64;
                self.stop_sending(now);
            }
            if let Phase::Draining { until } = self.phase {
                if self.in_flight == 0 || now >= until {
                    break;
                }
            }
            self.fire_timers(now);
            if self.phase == Phase::Running {
                if let Some(at) = next_churn.filter(|&at| now >= at) {
                    self.churn(now);
                    next_churn = Some(at.max(now) + second);
                }
                self.start_connects(now);
            }
            if now >= next_status && self.phase == Phase::Running {
                on_status(self.snapshot(&mut window, start, false));
                next_status = now + status_every;
            }

            let mut wake = [
                Some(next_status),
                self.wheel.next_deadline(),
                None,
                None,
                None,
            ];
            match self.phase {
                Phase::Running => {
                    wake[2] = end;
                    // Connects waiting for a name's first lookup wake with
                    // its answer, not with the pacer.
                    if !self.ready.is_empty() && !self.addrs.is_empty() {
                        wake[3] = Some(self.pacer.next_ready(now));
                    }
                    wake[4] = next_churn;
                }
                Phase::Draining { until } => wake[2] = Some(until),
            }
            let deadline = wake.iter().flatten().min().copied();
            let turn_ended = Instant::now();
            let turn = turn_ended.saturating_duration_since(turn_began);
            self.turns
                .saturating_record((turn.as_micros() as u64).max(1));
            let timeout = deadline.map(|d| self.clock.until(d, turn_ended));
            // Data left by a read budget raises no new edge: do not sleep on it.
            let timeout = if self.unfinished.is_empty() {
                timeout
            } else {
                Some(Duration::ZERO)
            };
            let pause = self.batching.pause(timeout);
            let (turn_ended, timeout) = if pause.is_zero() {
                (turn_ended, timeout)
            } else {
                // Asked for, like a poll's sleep: not a stall (and, like a
                // poll's, never longer than the stall threshold).
                let pause = self.stalls.before_poll(turn_ended, Some(pause));
                std::thread::sleep(pause);
                // From the clock, not less the pause asked for: a sleep
                // may run over, and the next timer must not wait for that.
                let now = Instant::now();
                (now, deadline.map(|d| self.clock.until(d, now)))
            };
            let timeout = self.stalls.before_poll(turn_ended, timeout);
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SwarmError::Poll(e)),
            }
            turn_began = Instant::now();
            self.wake_us = self.rtt_clock.tick_at(turn_began);
            self.excuse_stall(turn_began);
            if let Some(answer) = self.resolver.answer() {
                let now = self.clock.now();
                self.addrs.resolved(answer, now);
                if self.addrs.is_empty() {
                    self.fail_waiting_connects(now);
                }
            }
            let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
            let mut count = 0;
            for event in events.iter() {
                count += 1;
                if event.token() != WAKER {
                    let closed = event.is_read_closed() || event.is_error();
                    self.on_ready(event.token().0, closed);
                }
            }
            events.clear();
            self.events = events;
            self.batching.polled(turn_began, count);
            self.resume_reads();
        }

        let elapsed = start.elapsed();
        // What is still outstanding after the grace period never came back.
        self.counters.missing_replies += self.in_flight;
        self.in_flight = 0;
        for slot in 0..self.conns.len() {
            if let Some(mut stream) = self.conns[slot].stream.take() {
                let _ = self.poll.registry().deregister(&mut stream);
                // An abortive close (RST): closing first with a FIN would
                // leave every connection's port in TIME_WAIT here for a
                // minute, and the next run towards the same server would
                // find the ephemeral ports taken.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
        }
        let histograms = Histograms {
            rtt: self.rtts.total().clone(),
            lag: self.lag.clone(),
            turns: self.turns.clone(),
            since_mark: self.rtts.since_mark.clone(),
        };
        let mut report = Report {
            target: self.config.clients as u64,
            connected: connected_at_end,
            churn_pending,
            mode: if self.config.flood.is_some() {
                "flood"
            } else {
                "interval"
            },
            interval_us: self.config.interval.as_micros().min(u64::MAX.into()) as u64,
            flood_depth: self.config.flood.unwrap_or(0),
            counters: self.counters,
            elapsed,
            rtt: Rtt::default(),
            rtt_count: 0,
            rtt_since_mark: None,
            rtt_mean_us: 0.0,
            lag: Rtt::default(),
            turns: Rtt::default(),
            // The bound the run was judged by, whether given or derived.
            criteria: super::Criteria {
                max_connect_wait: Some(self.config.connect_wait_bound()),
                ..self.config.criteria
            },
            histograms,
            parts: Vec::new(),
        };
        report.summarize();
        Ok(report)
    }

    /// The status for the window since the previous one.
    fn snapshot<'w>(&mut self, window: &'w mut Window, start: Instant, last: bool) -> &'w Snapshot {
        window.close(
            Instant::now(),
            start,
            self.config.clients as u64,
            self.counters,
            &mut self.rtts,
            last,
        )
    }

    /// Ends the run: no more requests, connects or reconnects; open
    /// connections stay open so replies in flight can still arrive.
    fn stop_sending(&mut self, now: Tick) {
        self.ready.clear();
        for slot in 0..self.conns.len() {
            let conn = &mut self.conns[slot];
            conn.machine.stop();
            if let Some((id, _)) = conn.timer.take() {
                self.wheel.cancel(id);
            }
            if conn.link == Link::Connecting {
                self.drop_stream(slot);
            }
        }
        self.phase = Phase::Draining {
            until: now + self.clock.ticks(self.config.grace),
        };
        log::info!(
            "swarm: stopped sending; waiting up to {} for {} replies in flight",
            crate::duration::format(self.config.grace),
            self.in_flight
        );
    }

    /// If the swarm was kept from running since its last wakeup (stopped,
    /// starved of CPU: see [`Stalls`]), that is not its servers' silence:
    /// when the stall is excused every machine's liveness stamp moves by it
    /// — one pass, on a rare event — and it is logged once. Heartbeats keep
    /// their grid (the ones it passed over are counted as skipped).
    fn excuse_stall(&mut self, instant: Instant) {
        let nanos = self.clock.nanos(instant);
        let Some(stall) = self.stalls.judge(instant) else {
            return;
        };
        self.counters.pauses += 1;
        self.counters.paused_ms += stall.nanos / 1_000_000;
        self.counters.longest_pause_ms =
            self.counters.longest_pause_ms.max(stall.nanos / 1_000_000);
        self.stalled_ticks += stall.nanos / self.clock.tick_nanos();
        // Placed where it was: it began `since` before this judgement and
        // lasted `nanos` (a reply that came in it is read only now).
        let judged = self.rtt_clock.tick_at(instant);
        let began = judged.saturating_sub(stall.since / 1_000);
        self.stall_log.record(began, began + stall.nanos / 1_000);
        if stall.excused {
            let now = self.clock.tick_of(nanos);
            let tick = self.clock.tick_nanos();
            let ticks = stall.nanos / tick;
            let began = now.saturating_sub(stall.since.div_ceil(tick));
            for (_, conn) in self.conns.iter_mut() {
                conn.machine.excuse(ticks, began, now);
            }
            log::warn!(
                "swarm stalled for {}ms (kept from running): not counted as the server's silence",
                stall.nanos / 1_000_000
            );
        }
    }

    fn fire_timers(&mut self, now: Tick) {
        let instant = Instant::now();
        let now_us = self.rtt_clock.tick_at(instant) as u32;
        let seen = self.clock.tick_ceil(instant).max(now);
        while let Some((_, _, slot)) = self.wheel.poll(now) {
            let Some(conn) = self.conns.get_mut(slot) else {
                continue;
            };
            conn.timer = None;
            // Out of time with addresses left: the next one, not a failure
            // — unless the connect completed as its time ran out.
            if conn.machine.connect_due(now) {
                if completed_meanwhile(conn.stream.as_ref()) {
                    self.on_ready(slot, false);
                    self.settle(slot, now, now_us);
                    continue;
                }
                if self.next_address(slot, now) {
                    self.settle(slot, now, now_us);
                    continue;
                }
            }
            let conn = &mut self.conns[slot];
            if conn.link == Link::Up && conn.machine.silence_due(now) {
                // Evidence before verdict: read what the kernel holds first
                // (the readiness event may have come before a stall, or not
                // yet be in this batch).
                self.read(slot, false, seen, now_us, None);
                if self.conns[slot].unfinished {
                    // More than a budget waits: the verdict waits for it
                    // (the timer, past due, fires again next turn).
                    self.settle(slot, now, now_us);
                    continue;
                }
            }
            self.conns[slot].machine.handle_timeout(now);
            self.settle(slot, now, now_us);
        }
    }

    /// Reads on, one budget each, the connections whose last read stopped
    /// at the budget.
    fn resume_reads(&mut self) {
        let mut slots = std::mem::replace(
            &mut self.unfinished,
            std::mem::take(&mut self.unfinished_spare),
        );
        let instant = Instant::now();
        let (now, seen) = self.clock.tick_range(instant);
        let now_us = self.rtt_clock.tick_at(instant) as u32;
        for &slot in &slots {
            // Closed (and perhaps reopened) since: nothing to read on.
            if !std::mem::take(&mut self.conns[slot].unfinished) {
                continue;
            }
            // As if the FIN had come: read until `WouldBlock`, not just
            // until a short read.
            self.read(slot, true, seen, now_us, None);
            self.settle(slot, now, now_us);
        }
        slots.clear();
        self.unfinished_spare = slots;
    }

    /// Closes `churn` percent of the clients on purpose — this second's
    /// share, with the fraction carried over — each to reconnect after its
    /// backoff. Only idle connections (nothing in flight, nothing unsent)
    /// are chosen, so churn never costs a reply.
    fn churn(&mut self, now: Tick) {
        self.churn_due += self.config.clients as f64 * self.config.churn / 100.0;
        let want = self.churn_due.floor();
        self.churn_due -= want;
        let want = want as usize;
        let now_us = self.rtt_clock.now() as u32;
        let (mut closed, mut tries) = (0, 0);
        // Random picks; a few misses per pick are expected (connections
        // down or busy), a fleet with none idle gives up after a bounded
        // number of tries.
        while closed < want && tries < want * 8 + 64 {
            tries += 1;
            let slot = self.churn_rng.below(self.conns.len() as u64) as usize;
            let conn = &mut self.conns[slot];
            if conn.link != Link::Up || conn.inflight.outstanding() > 0 || conn.unsent > 0 {
                continue;
            }
            conn.churned = true;
            conn.machine.handle_closed(now, Reason::Requested);
            self.settle(slot, now, now_us);
            closed += 1;
        }
    }

    /// Carries out the machine's actions, flushes, and makes sure the wheel
    /// will wake the machine no later than it asks.
    fn settle(&mut self, slot: usize, now: Tick, now_us: u32) {
        // Every unit of work on a connection ends here: the stall measure's
        // progress point (work is never a stall, however much of it).
        self.stalls.progress(Instant::now());
        loop {
            while let Some(action) = self.conns[slot].machine.poll_action() {
                match action {
                    Action::Connect => self.ready.push_back(slot),
                    Action::SendHeartbeat { due } => {
                        // Stamped with when it was due, so a round trip
                        // includes any lateness of the swarm's own; that
                        // lateness is also recorded on its own.
                        let due_us = self.clock.duration(due).as_micros() as u32;
                        let late = now_us.wrapping_sub(due_us);
                        // A due tick after `now_us` is the connect's own
                        // heartbeat stamped ahead by the rounding: on time.
                        let late = if late > u32::MAX / 2 { 0 } else { late };
                        self.lag.saturating_record(u64::from(late));
                        log::trace!("client {slot}: heartbeat due at tick {due}, {late}us late");
                        self.queue_requests(slot, 1, now_us.wrapping_sub(late));
                    }
                    Action::SkippedHeartbeats { count } => {
                        self.counters.skipped_sends += u64::from(count);
                    }
                    Action::MissedReply { unanswered } => {
                        self.counters.late_replies += 1;
                        log::debug!(
                            "client {slot}: missed reply ({unanswered} unanswered){}",
                            self.peer(slot)
                        );
                    }
                    // The machine tells a failed connect from a lost
                    // connection; the swarm's own link state says the
                    // same, and files both below.
                    Action::Disconnect { reason, retry_in }
                    | Action::ConnectFailed { reason, retry_in } => {
                        let conn = &self.conns[slot];
                        match conn.link {
                            _ if reason == Reason::Requested => self.counters.churned += 1,
                            Link::Up => {
                                self.counters.reconnects += 1;
                                // Whether any request of ours reached the
                                // server: bytes written, not just queued.
                                let queued = conn.inflight.outstanding() * self.request_len as u64;
                                let age = now
                                    .saturating_sub(self.stalled_ticks)
                                    .saturating_sub(conn.since);
                                let seen = Seen {
                                    answered: conn.answered,
                                    asked: queued > conn.unsent,
                                    after: self.clock.duration(age),
                                };
                                count_lost(&mut self.counters.reconnects_by, &reason, seen);
                            }
                            link => {
                                if link == Link::Connecting {
                                    self.connect_done(slot, now, false);
                                }
                                // A churned connection that cannot come
                                // back is down for real now.
                                self.conns[slot].churned = false;
                                self.counters.connect_failures += 1;
                                if count_failed(&mut self.counters.connect_failures_by, &reason) {
                                    log::info!(
                                        "connect to {}{} failed: {reason} (the first of its kind; every one is counted)",
                                        self.config.connect,
                                        self.peer(slot)
                                    );
                                }
                            }
                        }
                        self.drop_stream(slot);
                        log::debug!(
                            "client {slot}: reconnecting in {}{}: {reason}",
                            crate::duration::format(self.clock.duration(retry_in)),
                            self.peer(slot)
                        );
                    }
                }
            }
            if self.conns[slot].link != Link::Up || self.conns[slot].unsent == 0 {
                break;
            }
            match self.flush(slot) {
                Some(reason) => self.close(slot, now, reason),
                None => break,
            }
        }
        let conn = &mut self.conns[slot];
        let want = conn.machine.poll_timeout();
        match (conn.timer, want) {
            // An entry at or before the new deadline already exists: when it
            // fires early the machine finds nothing due and is rescheduled.
            (Some((_, at)), Some(w)) if at <= w => {}
            (Some((id, _)), Some(w)) if self.wheel.reschedule(id, w) => {
                conn.timer = Some((id, w));
            }
            (_, Some(w)) => conn.timer = Some((self.wheel.schedule(w, slot), w)),
            (Some((id, _)), None) => {
                self.wheel.cancel(id);
                conn.timer = None;
            }
            (None, None) => {}
        }
    }
}

/// What the swarm saw of a connection the server closed.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The server had sent something on it.
    answered: bool,
    /// A request of the swarm's had reached the server (written, not
    /// only queued).
    asked: bool,
    /// How long after its connect began it was found closed, the swarm's
    /// own stalls taken out.
    after: Duration,
}

/// Files a lost connection under what was seen of it. A close before any
/// reply is `rejected` if the server had a request to answer or closed
/// at once, `idle` if it closed a connection the swarm had not yet used,
/// after a while: that is an eviction for silence, and the silence was the
/// swarm's.
fn count_lost(by: &mut LostBy, reason: &Reason, seen: Seen) {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let slot = match reason {
        Reason::PeerClosed | Reason::Io(ConnectionReset | BrokenPipe | ConnectionAborted)
            if !seen.answered && !seen.asked && seen.after >= REJECTED_WITHIN =>
        {
            &mut by.idle
        }
        Reason::PeerClosed | Reason::Io(ConnectionReset | BrokenPipe | ConnectionAborted)
            if !seen.answered =>
        {
            &mut by.rejected
        }
        Reason::PeerClosed => &mut by.closed,
        Reason::Io(ConnectionReset | BrokenPipe | ConnectionAborted) => &mut by.reset,
        Reason::Silent { .. } => &mut by.silent,
        Reason::Protocol(_) | Reason::UnexpectedReply => &mut by.protocol,
        // The swarm never closes a slow reader: it answers no requests and
        // its backlog is a count written from the shared template, so a
        // server that does not read costs it no memory.
        Reason::Io(_)
        | Reason::ConnectFailed(_)
        | Reason::ConnectTimeout
        | Reason::Requested
        | Reason::SlowReader => &mut by.io,
    };
    *slot += 1;
}

/// Files a failed connect under its reason; true for the first of its kind.
fn count_failed(by: &mut FailedBy, reason: &Reason) -> bool {
    let slot = match reason {
        Reason::ConnectFailed(io::ErrorKind::ConnectionRefused) => &mut by.refused,
        Reason::ConnectTimeout | Reason::ConnectFailed(io::ErrorKind::TimedOut) => &mut by.timeout,
        Reason::ConnectFailed(
            io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable,
        ) => &mut by.unreachable,
        Reason::ConnectFailed(io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse) => {
            &mut by.no_port
        }
        _ => &mut by.other,
    };
    *slot += 1;
    *slot == 1
}

/// Refuses a run this process or host cannot hold: more descriptors than
/// the file limit allows (raising the soft limit first), or more
/// connections than the ephemeral ports towards one server.
fn check_limits(config: &SwarmConfig) -> Result<(), SwarmError> {
    let needed = config.clients as u64 + FD_RESERVE;
    let (_, after) = raise_file_limit().map_err(SwarmError::Setup)?;
    if needed > after.soft {
        return Err(SwarmError::FileLimit {
            needed,
            limit: after.hard,
        });
    }
    // A worker's ports were planned by its supervisor, once for the fleet.
    // Checked again here, by every worker at once while the others' clients
    // connect, reading `/proc/net/tcp` cost each worker seconds of kernel
    // time at a few hundred thousand sockets: the kernel walks the table
    // from its start again for each page read.
    if config.slice.is_some() {
        return Ok(());
    }
    // Against the first address the server's name has now; a name that does
    // not resolve yet is connection trouble for later, not a refusal.
    let server = config
        .connect
        .resolve_blocking()
        .ok()
        .and_then(|addrs| addrs.into_iter().next());
    if let Some(free) = server.and_then(|server| super::ports::free_ports(server, &config.sources))
    {
        let sources = config.sources.len().max(1);
        if config.clients as u64 > free.available() {
            return Err(SwarmError::Ports(format!(
                "{} clients need as many local ports towards {}, but only {} of the {} that {sources} source address(es) have are free ({} taken, by open connections or ones in TIME_WAIT from an earlier run, which end within a minute); wait, or add --source-addrs",
                config.clients,
                config.connect,
                free.available(),
                free.total,
                free.taken
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filed(reason: Reason, answered: bool, asked: bool, after_ms: u64) -> LostBy {
        let mut by = LostBy::default();
        let seen = Seen {
            answered,
            asked,
            after: Duration::from_millis(after_ms),
        };
        count_lost(&mut by, &reason, seen);
        by
    }

    #[test]
    fn a_close_with_no_reply_is_filed_by_what_was_seen() {
        let reset = Reason::Io(io::ErrorKind::ConnectionReset);
        for reason in [Reason::PeerClosed, reset] {
            // Closed at once: a server at its limit, whether or not our
            // first request had gone out.
            assert_eq!(filed(reason, false, false, 5).rejected, 1);
            assert_eq!(filed(reason, false, true, 5).rejected, 1);
            // A request of ours unanswered, then closed: still a refusal.
            assert_eq!(filed(reason, false, true, 5_000).rejected, 1);
            // Nothing of ours had reached it, and it waited: an eviction
            // for the swarm's own silence.
            assert_eq!(filed(reason, false, false, 1_000).idle, 1);
            assert_eq!(filed(reason, false, false, 5_300).idle, 1);
        }
        // After a reply, by how it ended.
        assert_eq!(filed(Reason::PeerClosed, true, false, 5_000).closed, 1);
        assert_eq!(filed(reset, true, true, 5).reset, 1);
        // Silence is the server's, whatever else.
        let silent = Reason::Silent {
            idle: Duration::from_millis(10),
        };
        assert_eq!(filed(silent, false, false, 5_000).silent, 1);
    }
}
