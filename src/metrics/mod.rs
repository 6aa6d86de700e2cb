//! Prometheus metrics over HTTP, served by the reactor's own poll loop.
//!
//! # Shape
//!
//! With `metrics` set in a server's (or a swarm's) configuration, one more
//! source joins the reactor's poll: an [`Endpoint`] — a listener and at
//! most [`MAX_SCRAPERS`] connections — with tokens from the reactor's own
//! range. A scrape is answered between two events of the same loop, from
//! the same plain counters the loop updates, so it never races them and
//! needs no lock, no thread and no runtime.
//!
//! - [`http`]: what a request head asks for (parsed by `httparse`) and the
//!   bytes of the answer; no IO.
//! - [`exposition`]: series built at scrape time, written in the text
//!   format (0.0.4) by the `prometheus` crate's encoder.
//! - [`endpoint`]: the sources, each scraper bounded in time, head size
//!   and number, each outcome counted.
//! - [`server`], [`swarm`]: which series each exposes, under which names.

pub mod endpoint;
pub mod exposition;
pub mod http;
pub mod server;
pub mod swarm;

pub use endpoint::{Endpoint, ScrapeStats, MAX_SCRAPERS, REQUEST_TIMEOUT, TOKENS};
pub use exposition::Families;

/// Adds the endpoint's own series: what happened to scrapers, and how many
/// are open.
pub fn scrape_families(f: &mut Families, stats: &ScrapeStats, open: usize) {
    for (result, n) in stats.fields() {
        f.counter(
            "lubdub_metrics_scrapes_total",
            "Connections to the metrics endpoint, by what became of them.",
            &[("result", result)],
            n as f64,
        );
    }
    f.gauge(
        "lubdub_metrics_scrapers_open",
        "Connections to the metrics endpoint open now.",
        &[],
        open as f64,
    );
}
