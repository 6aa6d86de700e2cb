//! The embedding API over loopback: what a handler and the program around
//! it can do to connections (send, broadcast, close, defer a reply, keep
//! per-connection state), the promises each call makes (replies in request
//! order, one result per send and never a close inside one, stale ids reach
//! nothing), commands from other threads, the greeting, probes, and a
//! server on a `mio::Poll` the caller owns.
//!
//! Every module drives real sockets over 127.0.0.1. Timing assertions have
//! strict lower bounds and generous upper ones: the machine may be small
//! and busy with the other tests.

#[path = "handler/callers_poll.rs"]
mod callers_poll;
#[path = "handler/commands.rs"]
mod commands;
mod common;
#[path = "handler/context.rs"]
mod context;
#[path = "handler/deferred.rs"]
mod deferred;
#[path = "handler/edges.rs"]
mod edges;
#[path = "handler/greeting.rs"]
mod greeting;
#[path = "handler/order.rs"]
mod order;
#[path = "handler/probes.rs"]
mod probes;
#[path = "handler/send.rs"]
mod send;
#[path = "handler/state.rs"]
mod state;
#[path = "handler/support.rs"]
mod support;
