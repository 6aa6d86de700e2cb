//! Timing rules, tested on a fake tick source: the clock jumps straight to the
//! next deadline the machine asks for, so minutes of behaviour run instantly.

use super::*;
use crate::client::backoff::BackoffConfig;
use std::time::Duration;

/// 1 tick = 1 ms in these tests: interval 5 s, 6 misses, gRPC backoff.
fn config() -> Config {
    Config {
        tick: Duration::from_millis(1),
        interval: 5_000,
        silence_limit: 30_000,
        connect_timeout: 10_000,
        backoff: BackoffConfig {
            min: 1_000,
            max: 120_000,
        },
        lenient: false,
        heartbeats: true,
        phase: None,
    }
}

fn actions(m: &mut Machine) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

/// A started machine, connected at `at`, with its first heartbeat pulled.
fn connected(config: Config, at: Tick) -> Machine {
    let mut m = Machine::new(config, Rng::new(11));
    m.start(at);
    assert_eq!(actions(&mut m), [Action::Connect]);
    m.handle_connect_started(at);
    m.handle_connected(at);
    assert_eq!(actions(&mut m), [Action::SendHeartbeat { due: at }]);
    m
}

/// The reason and delay of the disconnect among `acts`, if any.
fn disconnect(acts: &[Action]) -> Option<(Reason, Tick)> {
    acts.iter().find_map(|a| match *a {
        Action::Disconnect { reason, retry_in } => Some((reason, retry_in)),
        _ => None,
    })
}

/// The reason and delay of the failed connect among `acts`, if any.
fn connect_failed(acts: &[Action]) -> Option<(Reason, Tick)> {
    acts.iter().find_map(|a| match *a {
        Action::ConnectFailed { reason, retry_in } => Some((reason, retry_in)),
        _ => None,
    })
}

#[test]
fn heartbeats_go_out_on_connect_and_then_every_interval_exactly() {
    let mut m = connected(config(), 100);
    let mut sent_at = vec![100];
    while sent_at.len() < 6 {
        let now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
        for action in actions(&mut m) {
            if let Action::SendHeartbeat { due } = action {
                assert_eq!(due, now, "sent on time");
                sent_at.push(now);
                // The server answers within the tick.
                m.handle_received(now, Proof::Reply);
            }
        }
    }
    assert_eq!(sent_at, [100, 5_100, 10_100, 15_100, 20_100, 25_100]);
    assert!(m.is_connected());
}

#[test]
fn liveness_deadline_is_exactly_interval_times_misses_after_the_last_frame() {
    let mut m = connected(config(), 0);
    // The last proof of life arrives at 7_000.
    m.handle_received(7_000, Proof::Frame);
    let limit = 5_000 * 6;
    let deadline = 7_000 + limit;
    // Drive through every wakeup up to one tick before the deadline.
    loop {
        let next = m.poll_timeout().unwrap();
        if next >= deadline {
            break;
        }
        m.handle_timeout(next);
        assert_eq!(disconnect(&actions(&mut m)), None);
    }
    assert_eq!(m.poll_timeout(), Some(deadline));
    m.handle_timeout(deadline - 1);
    assert_eq!(disconnect(&actions(&mut m)), None, "early by one tick");
    assert!(m.is_connected());
    m.handle_timeout(deadline);
    let (reason, retry_in) = disconnect(&actions(&mut m)).expect("disconnect at the deadline");
    assert_eq!(
        reason,
        Reason::Silent {
            idle: Duration::from_millis(limit)
        }
    );
    assert_eq!(reason.to_string(), "server silent for 30s");
    assert_eq!(
        m.state(),
        State::BackingOff {
            until: deadline + retry_in
        }
    );
}

#[test]
fn any_complete_frame_extends_liveness_but_partial_bytes_do_not() {
    let mut m = connected(config(), 0);
    assert!(m.handle_received(20_000, Proof::Frame));
    assert!(!m.handle_received(29_000, Proof::Bytes));
    m.handle_timeout(49_999);
    assert_eq!(disconnect(&actions(&mut m)), None);
    m.handle_timeout(50_000);
    assert_eq!(
        disconnect(&actions(&mut m)).map(|d| d.0),
        Some(Reason::Silent {
            idle: Duration::from_secs(30)
        })
    );
}

#[test]
fn lenient_counts_any_bytes_as_proof_of_life() {
    let mut m = connected(
        Config {
            lenient: true,
            ..config()
        },
        0,
    );
    assert!(m.handle_received(29_000, Proof::Bytes));
    m.handle_timeout(58_999);
    assert_eq!(disconnect(&actions(&mut m)), None);
    assert!(m.is_connected());
    m.handle_timeout(59_000);
    assert!(disconnect(&actions(&mut m)).is_some());
}

#[test]
fn connect_timeout_is_exact() {
    let mut m = Machine::new(config(), Rng::new(1));
    m.start(0);
    assert_eq!(actions(&mut m), [Action::Connect]);
    m.handle_connect_started(500);
    assert_eq!(m.poll_timeout(), Some(10_500));
    m.handle_timeout(10_499);
    assert_eq!(actions(&mut m), []);
    m.handle_timeout(10_500);
    assert_eq!(
        connect_failed(&actions(&mut m)).map(|d| d.0),
        Some(Reason::ConnectTimeout)
    );
}

#[test]
fn missed_replies_are_counted_but_do_not_disconnect() {
    let mut m = connected(config(), 0);
    // No reply to the first heartbeat: at the second, one is missed.
    m.handle_timeout(5_000);
    assert_eq!(
        actions(&mut m),
        [
            Action::MissedReply { unanswered: 1 },
            Action::SendHeartbeat { due: 5_000 }
        ]
    );
    m.handle_timeout(10_000);
    assert_eq!(
        actions(&mut m),
        [
            Action::MissedReply { unanswered: 2 },
            Action::SendHeartbeat { due: 10_000 }
        ]
    );
    // Two late replies arrive; the next heartbeat still has one outstanding.
    m.handle_received(12_000, Proof::Reply);
    m.handle_received(12_000, Proof::Reply);
    m.handle_timeout(15_000);
    assert_eq!(
        actions(&mut m),
        [
            Action::MissedReply { unanswered: 1 },
            Action::SendHeartbeat { due: 15_000 }
        ]
    );
    m.handle_received(15_001, Proof::Reply);
    m.handle_received(15_001, Proof::Reply);
    m.handle_timeout(20_000);
    assert_eq!(actions(&mut m), [Action::SendHeartbeat { due: 20_000 }]);
    assert!(m.is_connected());
}

#[test]
fn backoff_grows_while_connects_fail_and_is_jittered_inside_its_window() {
    let mut m = Machine::new(config(), Rng::new(5));
    let mut now = 0;
    m.start(now);
    let mut delays = Vec::new();
    for attempt in 0..12u32 {
        assert_eq!(actions(&mut m), [Action::Connect], "attempt {attempt}");
        m.handle_connect_started(now);
        m.handle_connect_failed(now, io::ErrorKind::ConnectionRefused);
        let (reason, retry_in) = connect_failed(&actions(&mut m)).unwrap();
        assert_eq!(
            reason,
            Reason::ConnectFailed(io::ErrorKind::ConnectionRefused)
        );
        let ceiling = (1_000.0 * 1.6f64.powi(attempt as i32 + 1)).min(120_000.0) as Tick;
        assert!(
            (1_000..=ceiling).contains(&retry_in),
            "attempt {attempt}: {retry_in} outside 1000..={ceiling}"
        );
        delays.push(retry_in);
        // Nothing happens one tick before the delay is over.
        m.handle_timeout(now + retry_in - 1);
        assert_eq!(actions(&mut m), []);
        now += retry_in;
        assert_eq!(m.poll_timeout(), Some(now));
        m.handle_timeout(now);
    }
    assert_eq!(m.attempt(), 12);
    // Growth: the late delays are on average far longer than the early ones.
    let early: Tick = delays[..3].iter().sum();
    let late: Tick = delays[9..].iter().sum();
    assert!(late > 3 * early, "{delays:?}");
}

/// `n` connects refused one after another, each retried when its backoff
/// ends: the tick of the last retry.
fn fail_connects(m: &mut Machine, n: u32) -> Tick {
    let mut now = 0;
    for _ in 0..n {
        actions(m);
        m.handle_connect_started(now);
        m.handle_connect_failed(now, io::ErrorKind::ConnectionRefused);
        let (_, retry_in) = connect_failed(&actions(m)).unwrap();
        now += retry_in;
        m.handle_timeout(now);
    }
    now
}

#[test]
fn backoff_resets_only_after_the_new_connection_received_something() {
    let mut m = Machine::new(config(), Rng::new(9));
    m.start(0);
    let mut now = fail_connects(&mut m, 5);
    assert_eq!(m.attempt(), 5);
    // Connected, but the server says nothing and closes: still failing.
    assert_eq!(actions(&mut m), [Action::Connect]);
    m.handle_connect_started(now);
    m.handle_connected(now);
    m.handle_closed(now + 10, Reason::PeerClosed);
    assert_eq!(m.attempt(), 6);
    let (_, retry_in) = disconnect(&actions(&mut m)).unwrap();
    now += 10 + retry_in;
    m.handle_timeout(now);
    // This time a reply arrives: the count starts over.
    assert_eq!(actions(&mut m), [Action::Connect]);
    m.handle_connect_started(now);
    m.handle_connected(now);
    assert_eq!(m.attempt(), 6);
    m.handle_received(now + 1, Proof::Reply);
    assert_eq!(m.attempt(), 0);
    m.handle_closed(now + 2, Reason::PeerClosed);
    let (_, retry_in) = disconnect(&actions(&mut m)).unwrap();
    assert!((1_000..=1_600).contains(&retry_in), "{retry_in}");
}

#[test]
fn phase_puts_heartbeats_on_a_shared_grid() {
    let phase = 1_234;
    let mut m = connected(
        Config {
            phase: Some(phase),
            ..config()
        },
        100,
    );
    let mut sent_at = Vec::new();
    while sent_at.len() < 3 {
        let now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
        for action in actions(&mut m) {
            if let Action::SendHeartbeat { due } = action {
                assert_eq!(due, now, "sent on time");
                sent_at.push(now);
                m.handle_received(now, Proof::Reply);
            }
        }
    }
    assert_eq!(sent_at, [1_234, 6_234, 11_234]);
}

#[test]
fn phases_spread_a_swarm_evenly_over_the_interval() {
    // 10 clients with phases i × interval / 10 connect at the same tick.
    let n = 10;
    let mut heartbeats = Vec::new();
    for i in 0..n {
        let mut m = connected(
            Config {
                phase: Some(i * 5_000 / n),
                ..config()
            },
            77,
        );
        let next = m.poll_timeout().unwrap();
        m.handle_timeout(next);
        // Within an interval of the connect heartbeat: not counted missed.
        assert_eq!(actions(&mut m), [Action::SendHeartbeat { due: next }]);
        heartbeats.push(next);
    }
    heartbeats.sort();
    let gaps: Vec<Tick> = heartbeats.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|&g| g == 500), "{heartbeats:?}");
}

#[test]
fn an_overslept_timer_sends_the_latest_grid_point_late_and_reports_the_ones_skipped() {
    let mut m = connected(config(), 0);
    m.handle_received(1, Proof::Reply);
    // The shell was stalled for 2.5 intervals: the grid points at 5 s and
    // 10 s passed. The one at 10 s goes out now, 2.5 s late, and says so;
    // the one at 5 s is reported skipped; no burst.
    m.handle_timeout(12_500);
    assert_eq!(
        actions(&mut m),
        [
            Action::SkippedHeartbeats { count: 1 },
            Action::SendHeartbeat { due: 10_000 }
        ]
    );
    assert_eq!(m.poll_timeout(), Some(15_000));
    // Late by less than an interval: sent late, nothing skipped.
    m.handle_received(12_501, Proof::Reply);
    m.handle_timeout(16_000);
    assert_eq!(actions(&mut m), [Action::SendHeartbeat { due: 15_000 }]);
}

#[test]
fn events_out_of_turn_are_ignored() {
    let mut m = Machine::new(config(), Rng::new(2));
    m.handle_received(5, Proof::Reply);
    m.handle_closed(5, Reason::PeerClosed);
    m.handle_connected(5);
    m.handle_timeout(1_000_000);
    assert_eq!(m.state(), State::Idle);
    assert_eq!(actions(&mut m), []);
    m.start(0);
    m.stop();
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn flood_mode_sends_no_heartbeats_but_keeps_liveness() {
    let mut m = Machine::new(
        Config {
            heartbeats: false,
            ..config()
        },
        Rng::new(3),
    );
    m.start(0);
    actions(&mut m);
    m.handle_connect_started(0);
    m.handle_connected(0);
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.poll_timeout(), Some(30_000));
    m.handle_received(10_000, Proof::Reply);
    assert_eq!(m.poll_timeout(), Some(40_000));
}

#[test]
fn the_connect_heartbeat_is_not_called_missed_when_the_grid_comes_soon_after() {
    // Connected 1 ms before this client's grid tick: the heartbeat sent on
    // connect is 1 ms old when the grid one goes out, not late.
    let mut m = connected(
        Config {
            phase: Some(1_001),
            ..config()
        },
        1_000,
    );
    assert_eq!(m.poll_timeout(), Some(1_001));
    m.handle_timeout(1_001);
    assert_eq!(actions(&mut m), [Action::SendHeartbeat { due: 1_001 }]);
    // A whole interval later neither was answered: now one is missed.
    m.handle_timeout(6_001);
    assert_eq!(
        actions(&mut m),
        [
            Action::MissedReply { unanswered: 2 },
            Action::SendHeartbeat { due: 6_001 }
        ]
    );
}

#[test]
fn silence_is_due_exactly_at_the_limit_and_an_excused_stall_moves_it() {
    let mut m = connected(config(), 0);
    assert!(!m.silence_due(29_999));
    assert!(m.silence_due(30_000));
    // A stall that began once the server was already silent past the
    // limit excuses nothing.
    let mut late = connected(config(), 0);
    late.excuse(5_000, 30_000, 35_000);
    assert!(late.silence_due(35_000));
    // The shell was stopped for 20 s from 15 s: the server's silence is
    // 20 s shorter.
    m.excuse(20_000, 15_000, 35_000);
    assert!(!m.silence_due(35_000));
    assert!(!m.silence_due(49_999));
    assert!(m.silence_due(50_000));
    m.handle_timeout(50_000);
    assert!(matches!(
        disconnect(&actions(&mut m)),
        Some((Reason::Silent { idle }, _)) if idle == Duration::from_secs(30)
    ));
}

#[test]
fn a_silence_limit_off_the_interval_grid_is_kept_exactly() {
    // 150 ms × 20 with 100 ms ticks: the limit is 30 ticks, not 2 × 20.
    let mut m = connected(
        Config {
            interval: 2,
            silence_limit: 30,
            ..config()
        },
        0,
    );
    m.handle_timeout(29);
    assert!(disconnect(&actions(&mut m)).is_none());
    m.handle_timeout(30);
    assert!(disconnect(&actions(&mut m)).is_some());
}

#[test]
fn a_failed_connect_and_a_lost_connection_are_told_apart() {
    let mut m = Machine::new(config(), Rng::new(4));
    m.start(0);
    actions(&mut m);
    m.handle_connect_started(0);
    m.handle_connect_failed(3, io::ErrorKind::ConnectionRefused);
    let acts = actions(&mut m);
    assert_eq!(disconnect(&acts), None, "{acts:?}");
    let (reason, retry_in) = connect_failed(&acts).expect("a failed connect");
    assert_eq!(reason.to_string(), "connect failed: connection refused");
    // Reported again, or out of turn, it changes nothing.
    m.handle_connect_failed(4, io::ErrorKind::ConnectionRefused);
    assert!(!m.has_action());
    m.handle_timeout(3 + retry_in);
    assert!(m.has_action());
    assert_eq!(actions(&mut m), [Action::Connect]);
    m.handle_connect_started(3 + retry_in);
    m.handle_connected(3 + retry_in);
    actions(&mut m);
    m.handle_closed(4 + retry_in, Reason::PeerClosed);
    let acts = actions(&mut m);
    assert_eq!(connect_failed(&acts), None, "{acts:?}");
    assert_eq!(disconnect(&acts).map(|d| d.0), Some(Reason::PeerClosed));
}

#[test]
fn a_stopped_machine_starts_again_with_a_fresh_backoff() {
    let mut m = Machine::new(config(), Rng::new(6));
    m.start(0);
    let now = fail_connects(&mut m, 6);
    assert_eq!(m.attempt(), 6);
    m.stop();
    assert_eq!((m.poll_timeout(), m.has_action()), (None, false));
    m.start(now);
    assert_eq!(m.attempt(), 0);
    assert_eq!(actions(&mut m), [Action::Connect]);
    m.handle_connect_started(now);
    m.handle_connect_failed(now, io::ErrorKind::ConnectionRefused);
    let (_, retry_in) = connect_failed(&actions(&mut m)).unwrap();
    assert!((1_000..=1_600).contains(&retry_in), "{retry_in}");
    // Started while running: nothing changes.
    let state = m.state();
    m.start(now);
    assert_eq!((m.state(), m.has_action()), (state, false));
}

#[test]
fn from_durations_converts_once_rounding_up() {
    // 50 ms × 4 on a 15 ms tick: the interval is 3 1/3 ticks, so 4; the
    // limit is 200 ms converted (14 ticks, 210 ms), not 4 × 4 ticks.
    let tick = Duration::from_millis(15);
    let c = Config::from_durations(tick, Duration::from_millis(50), 4)
        .with_connect_timeout(Duration::from_millis(100))
        .with_backoff(Duration::from_millis(30), Duration::from_millis(31))
        .with_lenient(true);
    assert_eq!(c.tick, tick);
    assert_eq!((c.interval, c.silence_limit, c.connect_timeout), (4, 14, 7));
    assert_eq!((c.backoff.min, c.backoff.max), (2, 3));
    assert!(c.lenient && c.heartbeats && c.phase.is_none());
    assert_eq!(c.duration(c.silence_limit), Duration::from_millis(210));
    // The defaults are the client's: 10 s connect, 1 s … 120 s.
    let d = Config::from_durations(Duration::from_millis(1), Duration::from_secs(5), 6);
    assert_eq!((d.interval, d.silence_limit), (5_000, 30_000));
    assert_eq!(d.connect_timeout, 10_000);
    assert_eq!((d.backoff.min, d.backoff.max), (1_000, 120_000));
    assert!(!d.lenient);
    assert_eq!(
        d,
        Config {
            tick: Duration::from_millis(1),
            ..config()
        }
    );
    // Never under a tick, and a tick is never under a microsecond.
    let tiny = Config::from_durations(Duration::ZERO, Duration::from_nanos(10), 1);
    assert_eq!(tiny.tick, Duration::from_micros(1));
    assert_eq!((tiny.interval, tiny.silence_limit), (1, 1));
    // Driven by it, the machine gives up exactly at the limit, and says
    // how long in time, not ticks.
    let mut m = connected(c, 0);
    m.handle_timeout(13);
    assert!(m.is_connected());
    m.handle_timeout(14);
    let (reason, _) = disconnect(&actions(&mut m)).expect("silent at 14 ticks");
    assert_eq!(reason.to_string(), "server silent for 210ms");
}
