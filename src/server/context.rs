//! What a handler can do: the [`Context`] every callback is given.

use std::net::SocketAddr;

use super::core::{Core, Deferred};
use super::handler::{CloseReason, ConnId};
use crate::SendError;

/// The server as a handler may act on it: send to and close any connection
/// by id, broadcast, defer a reply, count the open connections and reach
/// each one's state.
///
/// Every callback gets one; outside callbacks,
/// [`Server::context`](super::Server::context) gives the same. A send
/// writes at once when nothing waits before it and queues otherwise. No
/// call here closes a connection or calls back into the handler at once:
/// closes — asked for, or forced by a send that finds a peer that does not
/// read — are carried out by the reactor when the callback (or the call
/// from outside, at the next turn) is done, and reported through
/// [`Handler::on_close`](super::Handler::on_close). From the moment it is
/// asked, a closing connection is sent nothing more, is not read, and is no
/// longer counted by [`open`](Self::open).
pub struct Context<'a, S> {
    pub(crate) core: &'a mut Core<S>,
}

impl<S> Context<'_, S> {
    /// Sends a data frame carrying `payload` to `id`. To the connection a
    /// callback was called for, replies keep the order of its requests: a
    /// reply sent from `on_data` leaves after the replies to everything the
    /// peer sent before the request, and before those to what it sent
    /// after.
    ///
    /// [`SendError::Closed`]: `id` is closed or closing (or its slot has a
    /// new tenant). [`SendError::TooLarge`]: over `max_frame`.
    /// [`SendError::Backlog`]: more than `max_backlog` would be waiting for
    /// the peer (or the server's buffer budget would be exceeded); the
    /// connection is closing, and `on_close` will say why.
    pub fn send(&mut self, id: ConnId, payload: &[u8]) -> Result<(), SendError> {
        self.core.send(id, payload)
    }

    /// Sends a data frame to every open connection; returns how many it
    /// was queued for. Peers found not to read are closing instead, as with
    /// [`send`](Self::send). Fails only with [`SendError::TooLarge`].
    pub fn broadcast(&mut self, payload: &[u8]) -> Result<usize, SendError> {
        self.core.broadcast(payload)
    }

    /// Closes `id` once the work in progress is done
    /// ([`CloseReason::Requested`]); replies already queued are handed to
    /// the kernel first, as far as it takes them. False when `id` is not
    /// open (or already closing). Called from `on_connect`, this refuses
    /// the peer: nothing it sent is read or answered.
    pub fn close(&mut self, id: ConnId) -> bool {
        match self.core.open_slot(id) {
            Some(slot) => {
                self.core.mark_closing(slot, CloseReason::Requested);
                true
            }
            None => false,
        }
    }

    /// Holds the place of a reply to `id` that will be produced later (from
    /// another callback, or from another thread through a command): what is
    /// sent to the peer after this — heartbeat replies included — waits
    /// behind it. At most 64 holds per connection at once
    /// ([`SendError::Backlog`] past that; the connection stays open).
    pub fn defer(&mut self, id: ConnId) -> Result<Deferred, SendError> {
        self.core.defer(id)
    }

    /// Fills a deferred reply with a data frame carrying `payload`, and
    /// lets what waited behind it go. Errors as [`send`](Self::send); a
    /// payload too large for a frame ([`SendError::TooLarge`]) gives the
    /// hold up — nothing is sent in its place — so that a reply that can
    /// never be sent does not hold the peer's later replies for ever.
    pub fn reply(&mut self, deferred: Deferred, payload: &[u8]) -> Result<(), SendError> {
        self.core.fill(deferred, Some(payload))
    }

    /// Gives a deferred reply up: nothing is sent in its place, and what
    /// waited behind it goes.
    pub fn discard(&mut self, deferred: Deferred) -> Result<(), SendError> {
        self.core.fill(deferred, None)
    }

    /// Whether `id` is open and not closing.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.core.open_slot(id).is_some()
    }

    /// Connections open and not closing (with the PROXY protocol, only
    /// those whose header is in: the handler's).
    pub fn open(&self) -> usize {
        self.core.open_count()
    }

    /// The state of `id`, if it is open (closing included: its state lives
    /// until `on_close` takes it).
    pub fn state(&self, id: ConnId) -> Option<&S> {
        self.core
            .conns
            .get(id.slot as usize)
            .filter(|c| c.serial == id.serial)
            .map(|c| &c.state)
    }

    /// The state of `id`, mutably.
    pub fn state_mut(&mut self, id: ConnId) -> Option<&mut S> {
        self.core
            .conns
            .get_mut(id.slot as usize)
            .filter(|c| c.serial == id.serial)
            .map(|c| &mut c.state)
    }

    /// Every open connection (closing ones too) with its state, in slot
    /// order. Connections still awaiting their PROXY header are not the
    /// handler's yet, and not listed.
    pub fn states(&self) -> impl Iterator<Item = (ConnId, &S)> + '_ {
        self.core
            .conns
            .iter()
            .filter(|(_, c)| !c.awaiting)
            .map(|(slot, c)| {
                (
                    ConnId {
                        slot: slot as u32,
                        serial: c.serial,
                    },
                    &c.state,
                )
            })
    }

    /// The peer's address, as `on_connect` was given it: with the PROXY
    /// protocol, the client its header named; otherwise the socket's peer,
    /// kept from the accept (so known even after the peer reset).
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        let slot = id.slot as usize;
        self.core
            .conns
            .get(slot)
            .filter(|c| c.serial == id.serial && !c.awaiting)?;
        Some(self.core.peer(slot))
    }
}
