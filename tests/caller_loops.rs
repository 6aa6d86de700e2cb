//! The shapes an embedding program's loop takes, against the liveness
//! promise: a caller that works or sleeps between calls for longer than the
//! timeout it asked for cannot keep a dead peer alive, and a loop that
//! drives a server and a client on one thread — each waiting in turn for
//! up to what it asked — survives a block of the whole loop on both sides.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::embedded_with;
use lubdub::client::{Client, ClientConfig};
use lubdub::server::{CloseReason, ConnId, Handler, Server};

/// Remembers every close and when it came.
#[derive(Default)]
struct Closes(Vec<(Instant, CloseReason)>);

impl Handler for Closes {
    type State = ();
    fn on_close(
        &mut self,
        _ctx: &mut lubdub::server::Context<'_, ()>,
        _id: ConnId,
        _state: (),
        reason: CloseReason,
    ) {
        self.0.push((Instant::now(), reason));
    }
}

/// A peer that sends one heartbeat and then nothing, its socket left open.
fn one_heartbeat_then_silence(server: &mut Server<Closes>) -> (TcpStream, Instant) {
    use std::io::Write;
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    peer.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).unwrap();
    let sent = Instant::now();
    // Accept it and read the heartbeat.
    let until = Instant::now() + Duration::from_secs(5);
    while server.stats().heartbeats == 0 && Instant::now() < until {
        server.poll_once(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(server.stats().heartbeats, 1);
    (peer, sent)
}

/// `poll_once(Some(0))`, then `work` of the caller's own CPU, then a sleep
/// of `sleep`, again and again, until the silent peer is closed or `limit`
/// passes: when its only frame was sent, what closed it and when, the
/// stalls excused, and the longest of the caller's turns (on a busy
/// machine CPU work takes longer than its CPU time).
fn work_and_sleep_between_calls(
    work: Duration,
    sleep: Duration,
    limit: Duration,
) -> (Instant, Option<(Instant, CloseReason)>, u64, Duration) {
    let mut server = embedded_with(Closes::default(), |c| {
        c.interval = Duration::from_millis(100);
        c.misses = 3;
    });
    let (_peer, sent) = one_heartbeat_then_silence(&mut server);
    let mut longest = Duration::ZERO;
    while server.handler().0.is_empty() && sent.elapsed() < limit {
        let turn = Instant::now();
        server.poll_once(Some(Duration::ZERO)).unwrap();
        // Work measured in CPU time, so a busy machine stretches it in wall
        // time but does not shorten it.
        let busy_until = thread_cpu() + work;
        while thread_cpu() < busy_until {
            std::hint::spin_loop();
        }
        std::thread::sleep(sleep);
        longest = longest.max(turn.elapsed());
    }
    (
        sent,
        server.handler().0.first().copied(),
        server.stats().excused_pauses,
        longest,
    )
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) },
        0
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn a_caller_that_works_and_sleeps_between_calls_cannot_keep_a_dead_peer_alive() {
    // 100 ms × 3. Each of the caller's turns is 650 ms (500 ms of work,
    // 150 ms asleep) against the zero it asked for: a stall every turn.
    // Were its time watched, or an excuse able to rescue a peer that was
    // dead before the stall began, every turn would excuse the peer again
    // (the code before: never evicted in 7 s, closed only at exit).
    for (work, sleep) in [(500, 150), (460, 1000)] {
        let (sent, closed, excused, longest) = work_and_sleep_between_calls(
            Duration::from_millis(work),
            Duration::from_millis(sleep),
            Duration::from_secs(10),
        );
        let Some((at, reason)) = closed else {
            panic!("{work} ms work / {sleep} ms sleep: the silent peer was never evicted");
        };
        let CloseReason::Evicted {
            idle_ms,
            excused_ms,
            ..
        } = reason
        else {
            panic!("closed for {reason}");
        };
        // At most one stall may excuse part of its silence, so it goes
        // within three of the caller's turns of its deadline.
        let after = at.duration_since(sent);
        assert!(
            after >= Duration::from_millis(300) && after < Duration::from_millis(300) + 3 * longest,
            "{work}/{sleep}: evicted {after:?} after its only heartbeat \
             (turns of up to {longest:?})"
        );
        // The line tells the whole silence, and the excused part apart: the
        // rest is at least the limit.
        assert!(idle_ms >= excused_ms + 300, "{reason}");
        assert!(
            Duration::from_millis(excused_ms) <= longest,
            "{reason}, turns of up to {longest:?}"
        );
        assert!(excused <= 2, "{excused} stalls excused in a few turns");
    }
}

/// One thread drives a server and a client of it, each `poll_once` given
/// `turn`; the whole loop blocks for `block` once, between the server's
/// turn and the client's (so the client looks first after it, before the
/// server has read anything). Returns the client's connects and
/// disconnects, the server's evictions, and the stalls either saw before
/// the block (a machine too busy to run them in time).
fn one_thread_server_and_client(turn: Duration, block: Duration) -> (u64, u64, u64, u64) {
    let mut server = embedded_with(Closes::default(), |c| {
        c.interval = Duration::from_millis(200);
        c.misses = 3;
    });
    let mut client = Client::new(
        ClientConfig {
            connect: server.local_addr().into(),
            interval: Duration::from_millis(200),
            misses: 3,
            // A 50 ms stall threshold, so that 50 ms turns would count if
            // turns counted.
            tick: Duration::from_millis(10),
            ..ClientConfig::default()
        },
        (),
    )
    .unwrap();
    let start = Instant::now();
    let mut before_block = None;
    while start.elapsed() < Duration::from_millis(1500) + block + Duration::from_millis(1500) {
        server.poll_once(Some(turn)).unwrap();
        if before_block.is_none() && start.elapsed() > Duration::from_millis(1500) {
            before_block = Some(server.stats().pauses + client.stats().pauses);
            std::thread::sleep(block);
        }
        client.poll_once(Some(turn)).unwrap();
    }
    let stats = client.stats();
    (
        stats.connects,
        stats.disconnects,
        server.stats().evicted,
        before_block.unwrap_or(0),
    )
}

#[test]
fn a_loop_of_a_server_and_a_client_survives_a_block_whatever_its_turn() {
    // Before, turns of 50 ms and more counted as stalls of the client and
    // spent its one excuse, so the 3 s block made it call a healthy server
    // silent.
    // A machine so busy that the loop itself was kept from running before
    // the block spends the one excuse of the window on that real stall:
    // such a run proves nothing either way and is run again.
    let runs: Vec<_> = [10, 50, 100, 200]
        .into_iter()
        .map(|ms| {
            std::thread::spawn(move || {
                let turn = Duration::from_millis(ms);
                for _ in 0..5 {
                    let run = one_thread_server_and_client(turn, Duration::from_secs(3));
                    if run.3 == 0 {
                        return (ms, run);
                    }
                    eprintln!("{ms} ms turns: {} stalls before the block; again", run.3);
                }
                (
                    ms,
                    one_thread_server_and_client(turn, Duration::from_secs(3)),
                )
            })
        })
        .collect();
    for run in runs {
        let (ms, result) = run.join().unwrap();
        assert_eq!(
            result,
            (1, 0, 0, 0),
            "{ms} ms turns: connects, disconnects, evictions, stalls before the block"
        );
    }
}
