//! Commands from other threads: they wake a loop blocked in poll, are
//! applied in the order queued, never block the thread that queues them,
//! and say why when they cannot be queued.

use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use lubdub::server::{CloseReason, CommandError, Config, Step};

use crate::common::connect;
use crate::support::{
    bind, id_of, next_seen, read_frame, read_to_end, spawn, step_until, Announcer, End, Seen,
};

/// A loop with nothing to do blocks in poll for the stall threshold, four
/// ticks: a one-second tick makes that four seconds, so a command that
/// arrives in milliseconds can only have been brought by the waker.
fn sleepy(config: &mut Config) {
    config.interval = Duration::from_secs(20);
    config.tick = Some(Duration::from_secs(1));
}

#[test]
fn a_command_wakes_a_loop_blocked_in_poll() {
    let (tx, seen) = channel();
    let server = bind(Announcer(tx), sleepy);
    let (commands, addr) = (server.commands(), server.local_addr());
    let mut peer = connect(addr);
    let thread = spawn(server);
    let id = id_of(&seen, &peer);
    let mut rtts = Vec::new();
    for i in 0..20u8 {
        // Long enough for the loop to be back in poll with nothing to do.
        std::thread::sleep(Duration::from_millis(20));
        let sent = Instant::now();
        commands.send(id, &[i]).unwrap();
        assert_eq!(read_frame(&mut peer), (2, vec![i]));
        rtts.push(sent.elapsed());
    }
    rtts.sort();
    let median = rtts[rtts.len() / 2];
    eprintln!(
        "command to peer: median {median:?}, max {:?} (the loop would otherwise sleep 4 s)",
        rtts[rtts.len() - 1]
    );
    assert!(
        median < Duration::from_millis(40),
        "median {median:?}: {rtts:?}"
    );

    // A broadcast and a close from another thread, too.
    let mut other = connect(addr);
    let other_id = id_of(&seen, &other);
    commands.broadcast(b"all").unwrap();
    assert_eq!(read_frame(&mut peer), (2, b"all".to_vec()));
    assert_eq!(read_frame(&mut other), (2, b"all".to_vec()));
    commands.close(other_id).unwrap();
    assert_eq!(
        next_seen(&seen),
        Seen::Closed(other_id, CloseReason::Requested)
    );
    let (got, end) = read_to_end(&mut other, Duration::from_secs(2));
    assert_eq!((got.len(), end), (0, End::Eof));

    // A shutdown, promptly, and the commands queued before it applied.
    commands.send(id, b"last").unwrap();
    let asked = Instant::now();
    commands.shutdown();
    let server = thread.join().unwrap();
    let took = asked.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    assert_eq!(read_frame(&mut peer), (2, b"last".to_vec()));
    assert_eq!(next_seen(&seen), Seen::Closed(id, CloseReason::Shutdown));
    assert_eq!(server.stats().commands, 23);
    assert_eq!(server.stats().commands_failed, 0);

    // Stopped: every command says so, and none blocks.
    assert_eq!(commands.send(id, b"late"), Err(CommandError::Stopped));
    assert_eq!(commands.broadcast(b"late"), Err(CommandError::Stopped));
    assert_eq!(commands.close(id), Err(CommandError::Stopped));
    commands.shutdown();
    drop(server);
    assert_eq!(commands.send(id, b"late"), Err(CommandError::Stopped));
}

#[test]
fn commands_are_applied_in_the_order_queued() {
    const N: u32 = 300;
    let (tx, seen) = channel();
    let server = bind(Announcer(tx), |_| {});
    let commands = server.commands();
    let mut peer = connect(server.local_addr());
    let thread = spawn(server);
    let id = id_of(&seen, &peer);
    let queueing = std::thread::spawn(move || {
        for i in 1..=N {
            commands.send(id, &i.to_le_bytes()).unwrap();
        }
        commands.close(id).unwrap();
        commands
    });
    for i in 1..=N {
        assert_eq!(
            read_frame(&mut peer),
            (2, i.to_le_bytes().to_vec()),
            "frame {i}"
        );
    }
    let (got, end) = read_to_end(&mut peer, Duration::from_secs(5));
    assert_eq!((got.len(), end), (0, End::Eof), "more after the close");
    assert_eq!(next_seen(&seen), Seen::Closed(id, CloseReason::Requested));
    queueing.join().unwrap().shutdown();
    let stats = *thread.join().unwrap().stats();
    assert_eq!(
        (stats.commands, stats.commands_failed),
        (N as u64 + 1, 0),
        "{stats}"
    );
}

#[test]
fn a_full_queue_is_refused_at_once_and_drains_when_the_loop_runs() {
    let (tx, seen) = channel();
    let mut server = bind(Announcer(tx), |c| c.command_queue = 4);
    let mut peer = connect(server.local_addr());
    step_until(&mut server, "the accept", |s| s.stats().accepted == 1);
    let id = id_of(&seen, &peer);
    let commands = server.commands();
    // Queued from another thread while the loop does not run; a queue that
    // blocked would hang that thread, so it reports back over a channel.
    let (done, results) = channel();
    let from = commands.clone();
    std::thread::spawn(move || {
        let tried: Vec<_> = (0..6u8)
            .map(|i| {
                let start = Instant::now();
                (from.send(id, &[i]), start.elapsed())
            })
            .collect();
        done.send(tried).unwrap();
    });
    let tried = results
        .recv_timeout(Duration::from_secs(5))
        .expect("queueing blocked");
    let outcomes: Vec<_> = tried.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        outcomes,
        [
            Ok(()),
            Ok(()),
            Ok(()),
            Ok(()),
            Err(CommandError::Full),
            Err(CommandError::Full)
        ]
    );
    for (_, took) in &tried {
        assert!(
            *took < Duration::from_millis(100),
            "a command took {took:?}"
        );
    }
    assert_eq!(server.stats().commands, 0);
    assert_eq!(
        server.poll_once(Some(Duration::ZERO)).unwrap(),
        Step::Running
    );
    assert_eq!(server.stats().commands, 4);
    for i in 0..4u8 {
        assert_eq!(read_frame(&mut peer), (2, vec![i]));
    }
    assert_eq!(commands.send(id, b"room again"), Ok(()));
}

#[test]
fn a_payload_too_large_is_refused_up_front_and_a_closed_id_is_counted_as_failed() {
    let (tx, seen) = channel();
    let mut server = bind(Announcer(tx), |c| c.max_frame = 1024);
    let commands = server.commands();
    let mut peer = connect(server.local_addr());
    step_until(&mut server, "the accept", |s| s.stats().accepted == 1);
    let id = id_of(&seen, &peer);
    let too_large = vec![0u8; 1024 - 8 + 1];
    assert_eq!(commands.send(id, &too_large), Err(CommandError::TooLarge));
    assert_eq!(commands.broadcast(&too_large), Err(CommandError::TooLarge));
    assert_eq!(commands.send(id, &too_large[1..]), Ok(()));
    step_until(&mut server, "the command", |s| s.stats().commands == 1);
    assert_eq!(read_frame(&mut peer), (2, too_large[1..].to_vec()));

    drop(peer);
    step_until(&mut server, "the close", |s| s.stats().active == 0);
    assert_eq!(
        commands.send(id, b"gone"),
        Ok(()),
        "queued: the loop finds out"
    );
    assert_eq!(commands.close(id), Ok(()));
    step_until(&mut server, "the commands", |s| s.stats().commands == 3);
    assert_eq!(server.stats().commands_failed, 2);
    assert!(matches!(
        next_seen(&seen),
        Seen::Closed(_, CloseReason::PeerClosed)
    ));
    assert!(
        seen.try_recv().is_err(),
        "a stale close reached the handler"
    );
}
