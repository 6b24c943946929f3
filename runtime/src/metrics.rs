//! A metric's definition, written once: its registered name and help beside the code
//! that updates it, and the name Prometheus shows, which tests, the bench and the
//! dashboards read through [`MetricDef::exported`] instead of spelling it again.

use prometheus_client::registry::{Metric, Registry};

/// What Prometheus' text format adds to a metric's registered name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exported with `_total`.
    Counter,
    Gauge,
    /// Exported as `_bucket`, `_sum` and `_count` series.
    Histogram,
}

/// One metric: `<prefix>_<name>`, its help text and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub prefix: &'static str,
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

impl MetricDef {
    pub const fn new(
        prefix: &'static str,
        name: &'static str,
        help: &'static str,
        kind: Kind,
    ) -> Self {
        Self {
            prefix,
            name,
            help,
            kind,
        }
    }

    /// Registers `metric` under this definition's name and help.
    pub fn register(&self, registry: &mut Registry, metric: impl Metric) {
        registry.register(self.registered_name(), self.help, metric);
    }

    /// `<prefix>_<name>`, as registered.
    pub fn registered_name(&self) -> String {
        format!("{}_{}", self.prefix, self.name)
    }

    /// The series name a scrape shows: `_total` on counters; a histogram's
    /// `_count`, `_sum` and `_bucket` follow it.
    pub fn exported(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.registered_name()),
            Kind::Gauge | Kind::Histogram => self.registered_name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    const REQUESTS: MetricDef = MetricDef {
        prefix: "hookline_test",
        name: "requests",
        help: "Requests answered",
        kind: Kind::Counter,
    };
    const IN_FLIGHT: MetricDef = MetricDef {
        prefix: "hookline_test",
        name: "in_flight",
        help: "Requests in flight",
        kind: Kind::Gauge,
    };

    #[test]
    fn the_exported_name_is_what_a_scrape_shows() {
        let mut registry = Registry::default();
        let requests = Counter::<u64>::default();
        let in_flight = Gauge::<i64>::default();
        REQUESTS.register(&mut registry, requests.clone());
        IN_FLIGHT.register(&mut registry, in_flight.clone());
        requests.inc();
        in_flight.set(3);
        let mut body = String::new();
        encode(&mut body, &registry).expect("encodes");
        assert!(
            body.contains(&format!("{} 1\n", REQUESTS.exported())),
            "{body}"
        );
        assert!(
            body.contains(&format!("{} 3\n", IN_FLIGHT.exported())),
            "{body}"
        );
        assert!(
            body.contains("# HELP hookline_test_requests Requests answered"),
            "{body}"
        );
    }
}
