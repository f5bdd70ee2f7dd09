//! Prometheus metrics: a registry per node (no global state, so several nodes
//! in one process stay apart).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use ringkv_node::NodeStats;

/// Labels of an HTTP request metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// GET, PUT or DELETE.
    pub method: String,
    /// Response status.
    pub status: u16,
}

/// Labels of an HTTP latency metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// GET, PUT or DELETE.
    pub method: String,
}

/// Labels of a node counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    /// What happened.
    pub event: String,
}

/// The node's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: Family<MethodLabel, Histogram>,
    node_events: Family<EventLabel, Counter>,
    pending: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ringkv");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_latency = Family::<MethodLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
        });
        let node_events = Family::<EventLabel, Counter>::default();
        let pending = Gauge::default();
        registry.register(
            "http_requests",
            "Key-value requests by method and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "Key-value request latency",
            http_latency.clone(),
        );
        registry.register(
            "node_events",
            "Work done by the node, by kind",
            node_events.clone(),
        );
        registry.register(
            "requests_pending",
            "Requests being coordinated or forwarded",
            pending.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            http_requests,
            http_latency,
            node_events,
            pending,
        }
    }

    /// Records one key-value request.
    pub fn observe_http(&self, method: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                status,
            })
            .inc();
        self.http_latency
            .get_or_create(&MethodLabel {
                method: method.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the node's counters brought up to date.
    pub fn render(&self, s: &NodeStats, pending: usize) -> String {
        let events = [
            ("gets_coordinated", s.gets_coordinated),
            ("puts_coordinated", s.puts_coordinated),
            ("forwarded", s.forwarded),
            ("unavailable", s.unavailable),
            ("rejected", s.rejected),
            ("overloaded", s.overloaded),
            ("read_repairs", s.read_repairs),
            ("replica_puts", s.replica_puts),
            ("store_errors", s.store_errors),
            ("gossip_errors", s.gossip_errors),
        ];
        let registry = self.registry.lock().expect("metrics lock");
        for (name, value) in events {
            let c = self.node_events.get_or_create(&EventLabel {
                event: name.to_string(),
            });
            let have = c.get();
            if value > have {
                c.inc_by(value - have);
            }
        }
        self.pending.set(pending as i64);
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}
