//! A stall in the work after the verdicts — here a stats line written to a
//! log that blocks for 150 ms, as stderr does when it is a pipe nobody
//! drains — in every turn of an ordinary caller's loop. It is judged only
//! at the next wakeup, after the caller's whole turn; were that turn,
//! watched after the stop, allowed to earn the stop its excuse, each stop
//! (begun right after the last excuse, before the deadline that one moved a
//! dead peer to) would move the same dead peer again, turn after turn.
//!
//! Its own test binary: it installs a global logger.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::embedded_with;
use lubdub::server::{CloseReason, ConnId, Handler};

static SLOW_STATS: AtomicBool = AtomicBool::new(false);

/// A logger whose `stats` lines take 150 ms once `SLOW_STATS` is set, and
/// which drops every other line.
struct SlowStats;

impl log::Log for SlowStats {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        if SLOW_STATS.load(Ordering::SeqCst) && record.args().to_string().starts_with("stats ") {
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn flush(&self) {}
}

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

#[test]
fn a_log_line_blocked_after_the_verdicts_in_every_turn_cannot_keep_a_dead_peer() {
    log::set_logger(&SlowStats).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let mut server = embedded_with(Closes::default(), |c| {
        c.interval = Duration::from_millis(100);
        c.misses = 3;
        c.tick = Some(Duration::from_millis(10)); // a 50 ms stall threshold
        c.stats_every = Some(Duration::from_millis(10));
    });
    let mut peer = TcpStream::connect(server.local_addr()).unwrap();
    peer.write_all(&[0, 0, 0, 0, 8, 0, 0, 0]).unwrap();
    let sent = Instant::now();
    while server.stats().heartbeats == 0 && sent.elapsed() < Duration::from_secs(5) {
        server.poll_once(Some(Duration::from_millis(10))).unwrap();
    }
    SLOW_STATS.store(true, Ordering::SeqCst);
    // An ordinary loop: it asks for 600 ms and is back within 500 ms.
    let mut longest = Duration::ZERO;
    while server.handler().0.is_empty() && sent.elapsed() < Duration::from_secs(10) {
        let turn = Instant::now();
        server.poll_once(Some(Duration::from_millis(600))).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        longest = longest.max(turn.elapsed());
    }
    let (at, reason) = *server.handler().0.first().expect("never evicted");
    let after = at.duration_since(sent);
    let excused = server.stats().excused_pauses;
    // One excuse at most: gone within three turns of its deadline. (Before:
    // 3.4 s, five excuses.)
    assert!(
        after < Duration::from_millis(300) + 3 * longest,
        "evicted {after:?} after its only heartbeat ({reason}); {excused} excused, turns of \
         up to {longest:?}"
    );
    assert!(excused <= 1, "{excused} stalls excused");
    // The line counts the blocked log line in the silence it reports.
    let CloseReason::Evicted { idle_ms, .. } = reason else {
        panic!("closed for {reason}");
    };
    assert!(
        Duration::from_millis(idle_ms + 1) >= after.saturating_sub(Duration::from_millis(20)),
        "{reason}, evicted {after:?} after its only frame"
    );
}
