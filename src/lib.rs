//! lubdub keeps TCP connections honest at high connection counts.
//!
//! A [`server::Server`] holds many connections on one thread, answers
//! heartbeats and evicts peers that went silent; a client sends heartbeats
//! and reconnects when its server goes silent; `swarm` holds thousands of
//! heartbeating clients to load-test a server. The kernel's TCP keepalive is
//! switched on and tuned as a second line of defence ([`keepalive`]).
//!
//! # Layers
//!
//! The core is sans-IO: it knows nothing of sockets or `Instant`, is driven
//! by tick numbers and byte slices, and so is tested exactly and instantly.
//!
//! | module | what | IO? |
//! |---|---|---|
//! | [`protocol`] | frame header encode/decode, frame types, limits | no IO, no clock |
//! | [`proxy`] | the PROXY protocol header a load balancer sends first (v1 and v2) | no IO, no clock |
//! | [`wheel`] | hierarchical hashed timer wheel over ticks | no IO, no clock |
//! | [`liveness`] | the miss-count / deadline rule for one peer | no IO, tick-driven |
//! | [`time`] | the one place where `Instant` becomes ticks | clock only |
//! | [`keepalive`] | `SO_KEEPALIVE`, `TCP_KEEPIDLE`/`INTVL`/`CNT`, `TCP_USER_TIMEOUT`, `TCP_NODELAY` | socket options |
//! | [`limits`] | the open-files limit | syscalls |
//! | [`rng`] | a small seeded generator for jitter and heartbeat phases | no IO, no clock |
//! | [`client::machine`], [`client::backoff`] | the reconnecting client as a tick-driven state machine | no IO, tick-driven |
//! | [`server`] | the mio reactor: accept, read, reply, evict, embed hooks | yes |
//! | [`client`] | one reconnecting heartbeat client (the state machine plus a mio shell, on its own poll or the caller's) | yes |
//! | [`swarm`] | many clients in one poll loop, one slab, one wheel; stats and report | yes |
//! | [`shutdown`], [`duration`] | stopping a loop from another thread; human durations | — |
//!
//! # Three ways to drive it
//!
//! A server (and a client) is driven one of three ways, with one code path
//! under all three: `run()` on a thread of its own; `poll_once(timeout)`
//! from a loop of the program's; or registered on a `mio::Poll` the program
//! owns, beside its own sources. Other threads act on a running server
//! through [`server::Commands`].
//!
//! **`run`**, stopped from another thread:
//!
//! ```
//! use std::time::Duration;
//! use lubdub::server::{Config, Server};
//!
//! let config = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
//! let mut server = Server::bind(config, ()).unwrap();
//! let commands = server.commands(); // Send + Clone
//! std::thread::spawn(move || {
//!     std::thread::sleep(Duration::from_millis(50));
//!     commands.shutdown();
//! });
//! server.run().unwrap(); // returns once shut down, everything closed
//! ```
//!
//! **`poll_once`**, step by step from the program's own loop, answering one
//! heartbeat over loopback:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use lubdub::protocol::{HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE};
//! use lubdub::server::{Config, Server};
//!
//! let config = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
//! let mut server = Server::bind(config, ()).unwrap();
//! let mut peer = std::net::TcpStream::connect(server.local_addr()).unwrap();
//! peer.write_all(&HEARTBEAT_REQUEST).unwrap();
//! while server.stats().heartbeats == 0 {
//!     // Blocks for at most 10 ms; the program's own work goes between.
//!     server.poll_once(Some(Duration::from_millis(10))).unwrap();
//! }
//! let mut reply = [0u8; 8];
//! peer.read_exact(&mut reply).unwrap();
//! assert_eq!(reply, HEARTBEAT_RESPONSE);
//! ```
//!
//! **On the caller's poll**, beside a UDP socket of the program's own: the
//! program asks the server how long it may block, hands it the events it
//! owns, and ends each turn with `handle_timeout`:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Instant;
//! use mio::{net::UdpSocket, Events, Interest, Poll, Token, Waker};
//! use lubdub::protocol::{HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE};
//! use lubdub::server::{Config, Server};
//! use lubdub::Step;
//!
//! const UDP: Token = Token(0);
//! const WAKER: Token = Token(1);
//! let mut poll = Poll::new().unwrap();
//! // The poll's one waker (mio allows one), shared by every lubdub part on
//! // it: commands and shutdowns from other threads wake the loop with it.
//! let waker = std::sync::Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
//! let config = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
//! // The server's tokens start at 2: the program keeps 0 and 1.
//! let mut server = Server::bind_on(config, (), poll.registry(), Token(2), waker).unwrap();
//! let mut udp = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
//! poll.registry().register(&mut udp, UDP, Interest::READABLE).unwrap();
//!
//! let mut peer = std::net::TcpStream::connect(server.local_addr()).unwrap();
//! peer.write_all(&HEARTBEAT_REQUEST).unwrap();
//! let mut events = Events::with_capacity(256);
//! while server.stats().heartbeats == 0 {
//!     poll.poll(&mut events, Some(server.next_timeout(Instant::now()))).unwrap();
//!     for event in &events {
//!         if server.owns(event.token()) {
//!             server.handle_event(event, Instant::now());
//!         } else if event.token() == UDP {
//!             // the program's own socket
//!         }
//!     }
//!     assert_eq!(server.handle_timeout(Instant::now()), Step::Running);
//! }
//! let mut reply = [0u8; 8];
//! peer.read_exact(&mut reply).unwrap();
//! assert_eq!(reply, HEARTBEAT_RESPONSE);
//! ```
//!
//! A handler acts through the [`server::Context`] each callback gets: send
//! to or close any connection, broadcast, defer a reply, keep state per
//! connection. `examples/` has whole programs; `docs/embedding.md` in the
//! repository walks through the rest.
//!
//! # Cost
//!
//! Per connection the reactor keeps a slab entry and one wheel entry and no
//! heap memory while idle: a split frame's header is kept inline, a body is
//! buffered only while it is split, and a write backlog exists only while the
//! kernel's send buffer is full. Per heartbeat it does one `read`, one
//! `write` and one store of the "seen" tick; nothing on that path allocates,
//! formats or touches the timer wheel.
#![warn(missing_docs)]

pub mod access;
pub mod check;
pub mod client;
pub mod duration;
pub mod keepalive;
pub mod limits;
pub mod liveness;
pub mod metrics;
mod nonblocking;
pub mod protocol;
pub mod proxy;
pub mod rng;
mod send;
pub mod server;
pub mod shutdown;
mod step;
pub mod strikes;
pub mod swarm;
pub mod time;
pub mod wheel;

pub use send::SendError;
pub use step::Step;
