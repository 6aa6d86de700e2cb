//! Series built at scrape time from plain counters, written in the
//! Prometheus text format (0.0.4) by the `prometheus` crate's encoder.
//!
//! Nothing is registered anywhere: the reactor keeps its counters as plain
//! integers, and a scrape reads them between two events of the same loop,
//! so the families are built from a consistent snapshot each time.

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::Encoder as _;

/// A label, name and value.
pub type Label<'a> = (&'static str, &'a str);

/// Metric families in the making, in the order first named.
#[derive(Debug, Default)]
pub struct Families {
    families: Vec<MetricFamily>,
}

impl Families {
    /// None yet.
    pub fn new() -> Families {
        Families::default()
    }

    /// The family `name`, made with `help` and `kind` the first time.
    fn family(&mut self, name: &str, help: &str, kind: MetricType) -> &mut MetricFamily {
        let at = match self.families.iter().position(|f| f.name() == name) {
            Some(at) => at,
            None => {
                let mut family = MetricFamily::default();
                family.set_name(name.to_string());
                family.set_help(help.to_string());
                family.set_field_type(kind);
                self.families.push(family);
                self.families.len() - 1
            }
        };
        debug_assert_eq!(
            self.families[at].get_field_type(),
            kind,
            "{name} named with two types"
        );
        &mut self.families[at]
    }

    /// One series of the counter `name` (which ends in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, labels: &[Label<'_>], value: f64) {
        debug_assert!(name.ends_with("_total"), "counter {name} without _total");
        let mut counter = Counter::default();
        counter.set_value(value);
        let mut metric = Metric::from_label(label_pairs(labels));
        metric.set_counter(counter);
        self.family(name, help, MetricType::COUNTER)
            .mut_metric()
            .push(metric);
    }

    /// One series of the gauge `name`.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[Label<'_>], value: f64) {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        let mut metric = Metric::from_label(label_pairs(labels));
        metric.set_gauge(gauge);
        self.family(name, help, MetricType::GAUGE)
            .mut_metric()
            .push(metric);
    }

    /// One series of the histogram `name`: `buckets` are upper bounds with
    /// cumulative counts (the `+Inf` bucket is `count`, added by the
    /// encoder).
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[Label<'_>],
        buckets: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) {
        let mut histogram = Histogram::default();
        histogram.set_sample_count(count);
        histogram.set_sample_sum(sum);
        histogram.set_bucket(
            buckets
                .iter()
                .map(|&(upper, cumulative)| {
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(upper);
                    bucket.set_cumulative_count(cumulative);
                    bucket
                })
                .collect(),
        );
        let mut metric = Metric::from_label(label_pairs(labels));
        metric.set_histogram(histogram);
        self.family(name, help, MetricType::HISTOGRAM)
            .mut_metric()
            .push(metric);
    }

    /// The exposition: every family, in the text format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // The encoder fails only on a family with no series or no name,
        // which `family` never makes without a series.
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.families, &mut out) {
            log::warn!("metrics: cannot encode the exposition: {e}");
        }
        out
    }
}

fn label_pairs(labels: &[Label<'_>]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|&(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_their_series_under_one_help_and_type() {
        let mut f = Families::default();
        f.counter("x_total", "Xs.", &[("reason", "a")], 1.0);
        f.gauge("g", "A gauge.", &[], 2.5);
        f.counter("x_total", "Xs.", &[("reason", "b\"q")], 3.0);
        let text = String::from_utf8(f.encode()).unwrap();
        assert_eq!(
            text,
            "# HELP x_total Xs.\n# TYPE x_total counter\nx_total{reason=\"a\"} 1\n\
             x_total{reason=\"b\\\"q\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 2.5\n"
        );
    }

    #[test]
    fn a_histogram_has_cumulative_buckets_an_inf_bucket_a_sum_and_a_count() {
        let mut f = Families::default();
        f.histogram(
            "h_seconds",
            "H.",
            &[("worker", "1")],
            &[(0.001, 1), (0.01, 3)],
            4,
            0.75,
        );
        let text = String::from_utf8(f.encode()).unwrap();
        for line in [
            "# TYPE h_seconds histogram",
            "h_seconds_bucket{worker=\"1\",le=\"0.001\"} 1",
            "h_seconds_bucket{worker=\"1\",le=\"0.01\"} 3",
            "h_seconds_bucket{worker=\"1\",le=\"+Inf\"} 4",
            "h_seconds_sum{worker=\"1\"} 0.75",
            "h_seconds_count{worker=\"1\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
