//! The server's metrics endpoint on its own poll: events for its tokens,
//! its scrapers' deadlines on the wheel, a scrape rendered from the
//! counters as they stand between two events.

use std::time::Instant;

use mio::Token;

use super::{Handler, Server, Timer};
use crate::metrics::{self, Families};

impl<H: Handler> Server<H> {
    /// Readiness of the metrics listener or of a scraper.
    pub(super) fn scrape_ready(&mut self, token: Token, now: Instant) {
        let Some(mut endpoint) = self.metrics.take() else {
            return;
        };
        let stats = self.core.stats;
        let open = endpoint.open();
        endpoint.handle_event(&self.registry, token, now, &mut |scrapes| {
            let mut f = Families::new();
            metrics::server::families(&mut f, &[], &metrics::server::Counters::of(&stats));
            metrics::scrape_families(&mut f, scrapes, open);
            f.encode()
        });
        self.metrics = Some(endpoint);
        self.arm_scrape_timer();
    }

    /// The end of a turn: accepts what the endpoint's budget left.
    pub(super) fn resume_scrapes(&mut self) {
        if let Some(endpoint) = &mut self.metrics {
            if endpoint.has_work() {
                endpoint.resume(&self.registry, Instant::now());
                self.arm_scrape_timer();
            }
        }
    }

    /// The scrape timer fired: closes the scrapers out of time.
    pub(super) fn scrapes_due(&mut self) {
        self.scrape_timer = None;
        if let Some(endpoint) = &mut self.metrics {
            endpoint.expire(&self.registry, Instant::now());
        }
        self.arm_scrape_timer();
    }

    /// Keeps one wheel timer at the earliest scraper deadline (rounded up
    /// to a tick: a scraper is closed at its deadline, never before).
    fn arm_scrape_timer(&mut self) {
        let Some(deadline) = self.metrics.as_ref().and_then(|m| m.next_deadline()) else {
            return;
        };
        let at = self.clock.tick_after(self.clock.nanos(deadline));
        match self.scrape_timer {
            Some((_, armed)) if armed <= at => {}
            Some((id, _)) => {
                self.wheel.cancel(id);
                self.scrape_timer = Some((self.wheel.schedule(at, Timer::Scrape), at));
            }
            None => self.scrape_timer = Some((self.wheel.schedule(at, Timer::Scrape), at)),
        }
    }
}
