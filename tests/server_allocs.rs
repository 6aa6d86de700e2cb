//! The per-heartbeat path of the reactor allocates nothing: measured with a
//! counting global allocator that counts only on the server's thread.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use lubdub::protocol::{HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE};
use lubdub::server::{Config, Server, Step};

mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn heartbeats_whole_split_and_pipelined_allocate_nothing_on_the_server() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        interval: Duration::from_millis(200),
        misses: 50,
        ..Config::default()
    };
    let (addr_tx, addr_rx) = mpsc::channel();
    let (count_tx, count_rx) = mpsc::channel::<bool>();
    let server = std::thread::spawn(move || {
        let mut server = Server::bind(config, ()).unwrap();
        addr_tx
            .send((server.local_addr(), server.shutdown_handle()))
            .unwrap();
        loop {
            // The test thread switches counting on once connections exist.
            if let Ok(on) = count_rx.try_recv() {
                counting_alloc::count_this_thread(on);
            }
            if server.poll_once(Some(Duration::from_millis(5))).unwrap() == Step::Stopped {
                break;
            }
        }
        counting_alloc::count_this_thread(false);
        *server.stats()
    });
    let (addr, stop) = addr_rx.recv().unwrap();
    let mut peers: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Warm up: every connection accepted and answered once.
    for p in peers.iter_mut() {
        p.write_all(&HEARTBEAT_REQUEST).unwrap();
    }
    let mut reply = [0u8; 8];
    for p in peers.iter_mut() {
        p.read_exact(&mut reply).unwrap();
    }
    count_tx.send(true).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // let the flag take effect

    let mut asked = 0;
    for round in 0..20 {
        for p in peers.iter_mut() {
            match round % 3 {
                // whole
                0 => p.write_all(&HEARTBEAT_REQUEST).unwrap(),
                // split header: first half now, second half below
                1 => p.write_all(&HEARTBEAT_REQUEST[..3]).unwrap(),
                // pipelined: three in one write
                _ => p.write_all(&HEARTBEAT_REQUEST.repeat(3)).unwrap(),
            }
        }
        if round % 3 == 1 {
            std::thread::sleep(Duration::from_millis(10));
            for p in peers.iter_mut() {
                p.write_all(&HEARTBEAT_REQUEST[3..]).unwrap();
            }
        }
        let per_peer = if round % 3 == 2 { 3 } else { 1 };
        asked += per_peer * peers.len();
        for p in peers.iter_mut() {
            for _ in 0..per_peer {
                p.read_exact(&mut reply).unwrap();
                assert_eq!(reply, HEARTBEAT_RESPONSE);
            }
        }
    }
    // Over a second of this, liveness timers fire and are re-armed too.
    std::thread::sleep(Duration::from_millis(300));
    count_tx.send(false).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let allocations = counting_alloc::allocations();
    stop.shutdown();
    let stats = server.join().unwrap();
    assert_eq!(stats.heartbeats as usize, asked + peers.len());
    assert_eq!(stats.evicted, 0);
    assert_eq!(
        allocations, 0,
        "the server allocated {allocations} times while answering {asked} heartbeats"
    );
}
