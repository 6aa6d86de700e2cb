//! What waits to be written to one peer: bytes the kernel would not take
//! yet, and places held for replies the handler will produce later.
//!
//! Replies leave in the order their requests arrived. A heartbeat is
//! answered at once, but a data request's reply may come later (from
//! another thread, after a lookup): the handler *defers* it, which holds
//! its place here, and everything queued after the hold waits behind it
//! until the reply fills it. Only the bytes before the first hold are
//! written.
//!
//! None of this exists for an idle connection: a connection owns a
//! `Pending` only while the kernel's send buffer is full or a reply is
//! held, and drops it when both are over.

/// The most replies one connection may have held at once. A handler that
/// defers every request of a peer that pipelines thousands would otherwise
/// grow this list (and what waits behind it) without bound.
pub(crate) const MAX_HOLDS: usize = 64;

/// One place held for a deferred reply: its ticket and its byte offset in
/// `Pending::bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hold {
    ticket: u64,
    at: usize,
}

/// Bytes waiting for one peer, with holds in offset order.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    bytes: Vec<u8>,
    holds: Vec<Hold>,
}

impl Pending {
    /// Bytes queued (held places count nothing).
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Nothing queued and nothing held: the connection can drop this.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.holds.is_empty()
    }

    /// Heap bytes owned, by capacity: what the buffer budget counts.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.holds.capacity() * std::mem::size_of::<Hold>()
    }

    /// The bytes that may be written now: up to the first hold.
    pub(crate) fn writable(&self) -> &[u8] {
        let end = self.holds.first().map_or(self.bytes.len(), |h| h.at);
        &self.bytes[..end]
    }

    /// The kernel took the first `n` writable bytes.
    pub(crate) fn consumed(&mut self, n: usize) {
        debug_assert!(n <= self.writable().len(), "consumed {n} of {self:?}");
        self.bytes.drain(..n);
        for hold in &mut self.holds {
            hold.at -= n;
        }
    }

    /// Queues `bytes` after everything else.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Holds the place after everything queued so far for `ticket`. False
    /// when [`MAX_HOLDS`] are held already.
    pub(crate) fn hold(&mut self, ticket: u64) -> bool {
        if self.holds.len() >= MAX_HOLDS {
            return false;
        }
        self.holds.push(Hold {
            ticket,
            at: self.bytes.len(),
        });
        true
    }

    /// Puts `frame` where `ticket` held a place and releases the hold.
    /// False when no such hold exists (filled already, or never made).
    pub(crate) fn fill(&mut self, ticket: u64, frame: &[u8]) -> bool {
        let Some(i) = self.holds.iter().position(|h| h.ticket == ticket) else {
            return false;
        };
        let at = self.holds.remove(i).at;
        self.bytes.splice(at..at, frame.iter().copied());
        for hold in &mut self.holds[i..] {
            hold.at += frame.len();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_keeps_what_follows_until_it_is_filled() {
        let mut p = Pending::default();
        p.push(b"r1");
        assert!(p.hold(7));
        p.push(b"r3");
        assert_eq!(p.writable(), b"r1");
        p.consumed(2);
        assert_eq!(p.writable(), b"");
        assert!(p.fill(7, b"A!"));
        assert_eq!(p.writable(), b"A!r3");
        assert!(!p.fill(7, b"again"), "a hold is filled once");
    }

    #[test]
    fn holds_filled_out_of_order_still_leave_in_request_order() {
        let mut p = Pending::default();
        assert!(p.hold(1));
        p.push(b"h");
        assert!(p.hold(2));
        p.push(b"H");
        assert!(p.fill(2, b"BB"));
        assert_eq!(p.writable(), b"", "the first hold still blocks");
        assert!(p.fill(1, b"AAA"));
        assert_eq!(p.writable(), b"AAAhBBH");
        p.consumed(7);
        assert!(p.is_empty());
    }

    #[test]
    fn filling_an_earlier_hold_moves_the_later_ones_with_their_bytes() {
        let mut p = Pending::default();
        assert!(p.hold(1));
        p.push(b"h");
        assert!(p.hold(2));
        p.push(b"H");
        assert!(p.fill(1, b"AAA"));
        assert_eq!(p.writable(), b"AAAh", "the second hold did not move");
        p.consumed(3);
        assert!(p.fill(2, b"BB"));
        assert_eq!(p.writable(), b"hBBH");
    }

    #[test]
    fn a_hold_given_up_leaves_nothing_in_its_place() {
        let mut p = Pending::default();
        p.push(b"ab");
        assert!(p.hold(1));
        p.push(b"c");
        assert!(p.hold(2));
        p.consumed(1);
        assert!(p.fill(1, b""));
        assert_eq!(p.writable(), b"bc", "the second hold still blocks");
        p.consumed(2);
        assert!(p.fill(2, b""));
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn holds_are_bounded() {
        let mut p = Pending::default();
        for t in 0..MAX_HOLDS as u64 {
            assert!(p.hold(t));
        }
        assert!(!p.hold(u64::MAX));
    }
}
