//! Prometheus metrics: a registry per node (no global state, so several nodes
//! in one process stay apart).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use ringkv_node::{Node, NodeStats};
use ringkv_storage::Store;

/// Labels of an HTTP request metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// GET, PUT or DELETE.
    pub method: &'static str,
    /// Response status.
    pub status: u16,
}

/// Labels of an HTTP latency metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// GET, PUT or DELETE.
    pub method: &'static str,
}

/// Labels of a node counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    /// What happened.
    pub event: String,
}

/// Labels of a counter of refusals.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why: `full`, `tls`, `hello_timeout`, `hello`, `id_mismatch`.
    pub reason: &'static str,
}

/// Labels of the member gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `live`, `suspect` (gossip suspects it) or `down` (gossip declared it
    /// down, or its connection is down), as this node sees it.
    pub state: String,
}

/// Labels of the hints gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabel {
    /// The primary the hints are for.
    pub target: String,
}

/// Labels of a consensus group's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    /// The partition the group replicates.
    pub partition: String,
}

/// Labels of the strong request latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// `get`, `put`, `delete` or `cas` (a conditional put or delete).
    pub op: &'static str,
}

/// One consensus group, as the metrics show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMetric {
    /// The partition.
    pub partition: u32,
    /// Whether this node leads the group.
    pub leader: bool,
    /// Whether any node is known to lead it.
    pub has_leader: bool,
    /// The current term.
    pub term: u64,
    /// Times this node was elected its leader.
    pub elections: u64,
    /// Size of its last snapshot, in bytes.
    pub snapshot_bytes: u64,
}

/// What the metrics show of a node, taken on the node loop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The node's counters.
    pub stats: NodeStats,
    /// Requests being coordinated or forwarded.
    pub pending: usize,
    /// Members this node sees live (itself included).
    pub members_live: usize,
    /// Members gossip suspects (not used as replicas meanwhile).
    pub members_suspect: usize,
    /// Members this node sees down.
    pub members_down: usize,
    /// Hints held, for every other member (0 included) and any other target.
    pub hints_by_target: Vec<(String, usize)>,
    /// The bound on hints (`--hints-max`).
    pub hints_max: usize,
    /// Whether the hints reached the bound (fallback writes are refused).
    pub hints_full: bool,
    /// Whether the node's store failed (it is out of service until
    /// restarted). Not the node's to know: the runtime sets it.
    pub store_failed: bool,
    /// The consensus groups this node opened (strong buckets).
    pub groups: Vec<GroupMetric>,
    /// Strong writes this node proposed that wait to be applied.
    pub proposals_in_flight: u64,
    /// Seconds since the partition least recently found in step with its
    /// replicas was (anti-entropy); `None` while some never was.
    pub aae_oldest_sync_age_ms: Option<u64>,
}

impl Snapshot {
    /// Takes a snapshot of `node`.
    pub fn of<S: Store>(node: &Node<S>) -> Snapshot {
        let members = &node.layout().members;
        use ringkv_node::membership::Liveness as L;
        // Peers in each state; this node counts as live.
        let peers = |l: L| {
            members
                .iter()
                .filter(|m| m.id != *node.id() && node.liveness(&m.id) == l)
                .count()
        };
        let mut by_target: std::collections::BTreeMap<String, usize> = members
            .iter()
            .filter(|m| m.id != *node.id())
            .map(|m| (m.id.to_string(), 0))
            .collect();
        for (id, count) in node.hints_by_primary() {
            by_target.insert(id.to_string(), count);
        }
        Snapshot {
            stats: node.stats().clone(),
            pending: node.pending(),
            members_live: 1 + peers(L::Alive),
            members_suspect: peers(L::Suspect),
            members_down: peers(L::Down),
            hints_by_target: by_target.into_iter().collect(),
            hints_max: node.config().hints_max,
            hints_full: node.hints_full(),
            store_failed: false,
            groups: node
                .groups()
                .into_iter()
                .map(|g| GroupMetric {
                    partition: g.partition,
                    leader: g.leader.as_ref() == Some(node.id()),
                    has_leader: g.leader.is_some(),
                    term: g.term,
                    elections: g.elections,
                    snapshot_bytes: g.snapshot_bytes as u64,
                })
                .collect(),
            proposals_in_flight: node.proposals_in_flight(),
            aae_oldest_sync_age_ms: node.aae_status().oldest_sync_age_ms(),
        }
    }
}

/// A gauge of anti-entropy's progress, in seconds.
type SecondsGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Registers the age of the oldest partition sync.
fn register_aae_sync_age(registry: &mut Registry) -> SecondsGauge {
    let g = SecondsGauge::default();
    registry.register(
        "aae_oldest_sync_age_seconds",
        "Seconds since the partition least recently found in step with all its replicas by \
         anti-entropy was; -1 while some partition never was",
        g.clone(),
    );
    g
}

/// The node's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: Family<MethodLabel, Histogram>,
    node_events: Family<EventLabel, Counter>,
    pending: Gauge,
    members: Family<StateLabel, Gauge>,
    hints_pending: Family<TargetLabel, Gauge>,
    hints_max: Gauge,
    hints_full: Gauge,
    peer_refusals: Family<ReasonLabel, Counter>,
    store_failed: Gauge,
    aae_sync_age: SecondsGauge,
    strong: StrongMetrics,
    /// Handles of the key API's series, found once: looking a series up in
    /// its family hashes its labels under a lock, on every request.
    http_handles: HttpHandles,
    resp: RespMetrics,
}

/// Labels of a Redis protocol command metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RespLabels {
    /// The command, lower case (`get`, `set`, ...), or `other`.
    pub command: &'static str,
    /// `ok`, or `error` for an error reply.
    pub outcome: &'static str,
}

/// The series of the Redis protocol front end (`--resp`); cheap to clone.
#[derive(Clone, Default)]
pub struct RespMetrics {
    commands: Family<RespLabels, Counter>,
    connections: Gauge,
    refused: Counter,
}

impl RespMetrics {
    /// Registers the series in `registry`.
    fn register(registry: &mut Registry) -> Self {
        let m = RespMetrics::default();
        registry.register(
            "resp_commands",
            "Redis protocol commands answered, by command and outcome (error: an error reply)",
            m.commands.clone(),
        );
        registry.register(
            "resp_connections",
            "Redis protocol connections open",
            m.connections.clone(),
        );
        registry.register(
            "resp_connections_refused",
            "Redis protocol connections closed at once: too many were open",
            m.refused.clone(),
        );
        m
    }

    /// Counts one answered command.
    pub fn observe(&self, command: &'static str, error: bool) {
        let outcome = if error { "error" } else { "ok" };
        self.commands
            .get_or_create(&RespLabels { command, outcome })
            .inc();
    }

    /// A connection opened (`1`) or closed (`-1`).
    pub fn connections_add(&self, n: i64) {
        self.connections.inc_by(n);
    }

    /// Counts a connection refused for want of room.
    pub fn refused(&self) {
        self.refused.inc();
    }
}

/// The series of strong buckets' consensus groups.
struct StrongMetrics {
    /// 1 for a group this node leads, 0 for the other groups it opened.
    is_leader: Family<PartitionLabel, Gauge>,
    /// Each opened group's term.
    term: Family<PartitionLabel, Gauge>,
    groups_opened: Gauge,
    groups_without_leader: Gauge,
    elections: Counter,
    proposals_in_flight: Gauge,
    snapshot_bytes: Gauge,
    /// Latency of requests on strong buckets, by op, as the HTTP layer saw it.
    latency: Family<OpLabel, Histogram>,
}

impl StrongMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = StrongMetrics {
            is_leader: Family::default(),
            term: Family::default(),
            groups_opened: Gauge::default(),
            groups_without_leader: Gauge::default(),
            elections: Counter::default(),
            proposals_in_flight: Gauge::default(),
            snapshot_bytes: Gauge::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
            }),
        };
        registry.register(
            "group_is_leader",
            "1 for a consensus group (strong buckets; one per partition, opened on first use) \
             this node leads, 0 for the other groups it opened",
            m.is_leader.clone(),
        );
        registry.register(
            "group_term",
            "The current raft term of each consensus group this node opened",
            m.term.clone(),
        );
        registry.register(
            "groups_opened",
            "Consensus groups this node opened",
            m.groups_opened.clone(),
        );
        registry.register(
            "groups_without_leader",
            "Consensus groups this node opened that have no leader it knows of",
            m.groups_without_leader.clone(),
        );
        registry.register(
            "group_elections",
            "Times this node was elected leader of a consensus group, over all groups",
            m.elections.clone(),
        );
        registry.register(
            "proposals_in_flight",
            "Strong writes this node proposed that wait to be applied",
            m.proposals_in_flight.clone(),
        );
        registry.register(
            "group_snapshot_bytes",
            "Bytes of the last snapshot of every consensus group this node opened, summed",
            m.snapshot_bytes.clone(),
        );
        registry.register(
            "strong_request_seconds",
            "Latency of requests on strong buckets (answered through the key's consensus \
             group: proposal to commit and apply for writes, ReadIndex for reads), by op \
             (get, put, delete, cas), measured at the HTTP layer",
            m.latency.clone(),
        );
        m
    }

    fn update(&self, snap: &Snapshot) {
        for g in &snap.groups {
            let label = PartitionLabel {
                partition: g.partition.to_string(),
            };
            self.is_leader
                .get_or_create(&label)
                .set(i64::from(g.leader));
            self.term.get_or_create(&label).set(g.term as i64);
        }
        self.groups_opened.set(snap.groups.len() as i64);
        self.groups_without_leader
            .set(snap.groups.iter().filter(|g| !g.has_leader).count() as i64);
        let elections: u64 = snap.groups.iter().map(|g| g.elections).sum();
        let have = self.elections.get();
        if elections > have {
            self.elections.inc_by(elections - have);
        }
        self.proposals_in_flight
            .set(snap.proposals_in_flight as i64);
        let bytes: u64 = snap.groups.iter().map(|g| g.snapshot_bytes).sum();
        self.snapshot_bytes.set(bytes as i64);
    }
}

/// Registers the counter of refused inbound peer connections.
fn register_peer_refusals(registry: &mut Registry) -> Family<ReasonLabel, Counter> {
    let family = Family::<ReasonLabel, Counter>::default();
    registry.register(
        "peer_connections_refused",
        "Inbound peer connections closed before or at the hello, by reason: full \
         (--peer-connections-max), tls (handshake failed: no certificate, or not from the \
         cluster CA), hello_timeout, hello (malformed), id_mismatch (the hello's node id is \
         not the certificate's)",
        family.clone(),
    );
    family
}

/// Methods the key API is measured by, in the order of [`HttpHandles`].
const METHODS: [&str; 5] = ["GET", "HEAD", "PUT", "DELETE", "other"];

/// Statuses whose request counters are kept at hand: a healthy store's
/// answers. Other statuses are looked up in the family each time.
const COMMON_STATUSES: [u16; 4] = [200, 204, 300, 404];

/// The series of the key API, each created in its family on first use (as
/// before: a series appears in `/metrics` once it has been observed).
#[derive(Default)]
struct HttpHandles {
    latency: [OnceLock<Histogram>; METHODS.len()],
    requests: [[OnceLock<Counter>; COMMON_STATUSES.len()]; METHODS.len()],
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
        let members = Family::<StateLabel, Gauge>::default();
        let hints_pending = Family::<TargetLabel, Gauge>::default();
        let hints_max = Gauge::default();
        let hints_full = Gauge::default();
        registry.register(
            "members",
            "Members of the layout by state as this node sees them: live, suspect (gossip suspects it), or down",
            members.clone(),
        );
        registry.register(
            "hints_pending",
            "Hints this node holds as a fallback, by the primary (target) they are for",
            hints_pending.clone(),
        );
        registry.register(
            "hints_max",
            "Most hints this node keeps (--hints-max)",
            hints_max.clone(),
        );
        registry.register(
            "hints_full",
            "1 while the hints are at --hints-max and writes as a fallback are refused",
            hints_full.clone(),
        );
        let peer_refusals = register_peer_refusals(&mut registry);
        let store_failed = Gauge::default();
        registry.register(
            "store_failed",
            "1 once the node's store failed (a flush or fsync of its journal failed, e.g. a full disk): \
             the node is out of service until restarted",
            store_failed.clone(),
        );
        let aae_sync_age = register_aae_sync_age(&mut registry);
        let strong = StrongMetrics::register(&mut registry);
        let resp = RespMetrics::register(&mut registry);
        Metrics {
            aae_sync_age,
            resp,
            strong,
            store_failed,
            registry: Mutex::new(registry),
            http_requests,
            http_latency,
            node_events,
            pending,
            members,
            hints_pending,
            hints_max,
            hints_full,
            peer_refusals,
            http_handles: HttpHandles::default(),
        }
    }

    /// The series of the Redis protocol front end.
    pub fn resp(&self) -> RespMetrics {
        self.resp.clone()
    }

    /// The counter of refused inbound peer connections, for the transport.
    pub fn peer_refusals(&self) -> Family<ReasonLabel, Counter> {
        self.peer_refusals.clone()
    }

    /// Records one key-value request.
    pub fn observe_http(&self, method: &'static str, status: u16, took: Duration) {
        let requests = || {
            self.http_requests
                .get_or_create(&HttpLabels { method, status })
        };
        let latency = || self.http_latency.get_or_create(&MethodLabel { method });
        let Some(m) = METHODS.iter().position(|x| *x == method) else {
            requests().inc();
            latency().observe(took.as_secs_f64());
            return;
        };
        match COMMON_STATUSES.iter().position(|s| *s == status) {
            Some(i) => {
                self.http_handles.requests[m][i]
                    .get_or_init(|| requests().clone())
                    .inc();
            }
            None => {
                requests().inc();
            }
        }
        self.http_handles.latency[m]
            .get_or_init(|| latency().clone())
            .observe(took.as_secs_f64());
    }

    /// Records one request on a strong bucket, by `op` (`get`, `put`,
    /// `delete`, `cas`).
    pub fn observe_strong(&self, op: &'static str, took: Duration) {
        self.strong
            .latency
            .get_or_create(&OpLabel { op })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the node's counters and gauges brought up
    /// to date from `snap`.
    pub fn render(&self, snap: &Snapshot) -> String {
        let s = &snap.stats;
        let events = [
            ("gets_coordinated", s.gets_coordinated),
            ("puts_coordinated", s.puts_coordinated),
            ("lists_coordinated", s.lists_coordinated),
            ("forwarded", s.forwarded),
            ("unavailable", s.unavailable),
            ("rejected", s.rejected),
            ("overloaded", s.overloaded),
            ("read_repairs", s.read_repairs),
            ("replica_puts", s.replica_puts),
            ("store_errors", s.store_errors),
            ("hinted_writes", s.hinted_writes),
            ("hints_delivered", s.hints_delivered),
            ("hints_refused", s.hints_refused),
            ("handoff_drops", s.handoff_drops),
            ("siblings_warned", s.siblings_warned),
            ("gossip_errors", s.gossip_errors),
            ("peer_refused", s.peer_refused),
            ("buckets_refused", s.buckets_refused),
            ("aae_exchanges", s.aae_exchanges),
            ("aae_exchanges_in_sync", s.aae_exchanges_in_sync),
            ("aae_rounds_exhausted", s.aae_rounds_exhausted),
            ("aae_keys_compared", s.aae_keys_compared),
            ("aae_keys_sent", s.aae_keys_sent),
            ("aae_keys_repaired", s.aae_keys_repaired),
            ("aae_bytes_sent", s.aae_bytes_sent),
            ("aae_tree_builds", s.aae_tree_builds),
            ("aae_refused", s.aae_refused),
            ("tombstones_purged", s.tombstones_purged),
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
        self.pending.set(snap.pending as i64);
        self.aae_sync_age.set(
            snap.aae_oldest_sync_age_ms
                .map_or(-1.0, |ms| ms as f64 / 1000.0),
        );
        for (state, count) in [
            ("live", snap.members_live),
            ("suspect", snap.members_suspect),
            ("down", snap.members_down),
        ] {
            self.members
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .set(count as i64);
        }
        for (target, count) in &snap.hints_by_target {
            self.hints_pending
                .get_or_create(&TargetLabel {
                    target: target.clone(),
                })
                .set(*count as i64);
        }
        self.hints_max.set(snap.hints_max as i64);
        self.hints_full.set(i64::from(snap.hints_full));
        self.store_failed.set(i64::from(snap.store_failed));
        self.strong.update(snap);
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_members_hints_and_counters() {
        let m = Metrics::new();
        let mut snap = Snapshot {
            members_live: 2,
            members_suspect: 1,
            members_down: 1,
            hints_by_target: vec![("n2".into(), 5), ("n3".into(), 0)],
            hints_max: 10,
            hints_full: false,
            ..Snapshot::default()
        };
        snap.stats.hints_delivered = 4;
        snap.stats.siblings_warned = 1;
        snap.stats.aae_keys_repaired = 7;
        snap.aae_oldest_sync_age_ms = Some(2_500);
        let text = m.render(&snap);
        for line in [
            "ringkv_node_events_total{event=\"aae_keys_repaired\"} 7",
            "ringkv_aae_oldest_sync_age_seconds 2.5",
            "ringkv_members{state=\"live\"} 2",
            "ringkv_members{state=\"down\"} 1",
            "ringkv_members{state=\"suspect\"} 1",
            "ringkv_hints_pending{target=\"n2\"} 5",
            "ringkv_hints_pending{target=\"n3\"} 0",
            "ringkv_hints_max 10",
            "ringkv_hints_full 0",
            "ringkv_store_failed 0",
            "ringkv_node_events_total{event=\"peer_refused\"} 0",
            "ringkv_node_events_total{event=\"hints_delivered\"} 4",
            "ringkv_node_events_total{event=\"siblings_warned\"} 1",
            "ringkv_node_events_total{event=\"hints_refused\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // Counters follow the node's, gauges are replaced.
        snap.stats.hints_delivered = 6;
        snap.hints_by_target[0].1 = 0;
        snap.hints_full = true;
        snap.store_failed = true;
        let text = m.render(&snap);
        assert!(text.contains("ringkv_store_failed 1"), "{text}");
        assert!(text.contains("event=\"hints_delivered\"} 6"), "{text}");
        assert!(
            text.contains("ringkv_hints_pending{target=\"n2\"} 0"),
            "{text}"
        );
        assert!(text.contains("ringkv_hints_full 1"), "{text}");
    }

    #[test]
    fn groups_show_leader_term_elections_and_latency() {
        let m = Metrics::new();
        let group = |partition, leader, term, elections| GroupMetric {
            partition,
            leader,
            has_leader: leader || partition != 9,
            term,
            elections,
            snapshot_bytes: 100,
        };
        let mut snap = Snapshot {
            groups: vec![group(3, true, 2, 1), group(9, false, 5, 0)],
            proposals_in_flight: 4,
            ..Snapshot::default()
        };
        m.observe_strong("cas", Duration::from_millis(3));
        let text = m.render(&snap);
        for line in [
            "ringkv_group_is_leader{partition=\"3\"} 1",
            "ringkv_group_is_leader{partition=\"9\"} 0",
            "ringkv_group_term{partition=\"9\"} 5",
            "ringkv_groups_opened 2",
            "ringkv_groups_without_leader 1",
            "ringkv_group_elections_total 1",
            "ringkv_proposals_in_flight 4",
            "ringkv_group_snapshot_bytes 200",
            "ringkv_strong_request_seconds_count{op=\"cas\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        snap.groups[1].elections = 2;
        snap.groups[0].leader = false;
        let text = m.render(&snap);
        assert!(text.contains("ringkv_group_elections_total 3"), "{text}");
        assert!(
            text.contains("ringkv_group_is_leader{partition=\"3\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn http_requests_count_by_method_and_status_whether_kept_at_hand_or_not() {
        let m = Metrics::new();
        let ms = Duration::from_millis(1);
        let text = m.render(&Snapshot::default());
        assert!(!text.contains("ringkv_http_requests_total{"), "{text}");
        for _ in 0..3 {
            m.observe_http("GET", 200, ms);
        }
        m.observe_http("PUT", 204, ms);
        m.observe_http("PUT", 503, ms); // not a common status: found each time
        m.observe_http("PUT", 503, ms);
        m.observe_http("odd", 200, ms); // not a known method
        let text = m.render(&Snapshot::default());
        for line in [
            "ringkv_http_requests_total{method=\"GET\",status=\"200\"} 3",
            "ringkv_http_requests_total{method=\"PUT\",status=\"204\"} 1",
            "ringkv_http_requests_total{method=\"PUT\",status=\"503\"} 2",
            "ringkv_http_requests_total{method=\"odd\",status=\"200\"} 1",
            "ringkv_http_request_seconds_count{method=\"GET\"} 3",
            "ringkv_http_request_seconds_count{method=\"PUT\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // Only observed series appear.
        assert!(!text.contains("method=\"DELETE\""), "{text}");
        assert!(!text.contains("status=\"404\""), "{text}");
    }
}
