//! Graceful drain: on a shutdown request, stop accepting and close the open
//! connections spread evenly over a set time, so their clients' reconnects
//! reach the next server as a trickle instead of a storm.

use log::info;

use super::{CloseReason, Drain, Handler, Now, Server, Timer};

impl<H: Handler> Server<H> {
    /// Stops accepting and begins closing the connections open now, evenly
    /// over `over`.
    pub(super) fn begin_drain(&mut self, now: Now, over: std::time::Duration) {
        if let Some(mut listener) = self.listener.take() {
            // Closed, not only left: while this process holds the socket
            // the kernel would go on completing handshakes nobody accepts.
            let _ = self.registry.deregister(&mut listener);
        }
        self.update_room();
        let total = self.core.conns.len() as u64;
        info!(
            "draining: stopped accepting; closing {total} connections over {}",
            crate::duration::format(over)
        );
        self.drain = Some(Drain {
            began: now.nanos,
            over: (over.as_nanos() as u64).max(1),
            total,
            closed: 0,
        });
        self.wheel.schedule(now.tick + 1, Timer::Drain);
    }

    /// Closes the connections due by now: after a fraction f of the drain,
    /// f of those open when it began (rounded up), the oldest slots first.
    pub(super) fn drain_some(&mut self, now: Now) {
        let Some(mut drain) = self.drain else {
            return;
        };
        let elapsed = now.nanos.saturating_sub(drain.began).min(drain.over);
        let due = (u128::from(drain.total) * u128::from(elapsed)).div_ceil(u128::from(drain.over));
        let due = (due as u64).min(drain.total);
        let now_due = due.saturating_sub(drain.closed) as usize;
        let slots: Vec<usize> = self
            .core
            .conns
            .iter()
            .map(|(slot, _)| slot)
            .take(now_due)
            .collect();
        for slot in &slots {
            self.core.stats.drained += 1;
            self.close_conn(*slot, CloseReason::Shutdown);
        }
        drain.closed += now_due as u64;
        self.drain = Some(drain);
        if !self.core.conns.is_empty() {
            self.wheel.schedule(now.tick + 1, Timer::Drain);
        }
    }
}
