//! The JSON bodies of the HTTP API v1, as one set of types that the server
//! serializes and the client deserializes, so the compiler checks that both
//! sides speak the same contract (README.md, "HTTP API v1").
//!
//! Fields are declared in alphabetical order. That is the order the server
//! has always sent them in (it used to build bodies as `serde_json` maps,
//! which sort their keys), and serde writes a struct's fields in declaration
//! order; keeping it keeps the bytes on the wire unchanged. The tests at the
//! end compare each body with those bytes.
//!
//! Fields a client may not get from every server version carry
//! `#[serde(default)]`, so a client reads older answers too; unknown fields
//! are ignored on reading.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::bucket::{self, ConflictMode};
use crate::layout::NodeId;

/// The body of every error answer: `{"error": code, "message": text}`, and
/// for a quorum that was not reached also how many replies were required
/// and how many came (omitted otherwise).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Replies or acks that came in time (with `required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acks: Option<u64>,
    /// A short machine-readable code, e.g. `bad_request`, `unavailable`.
    pub error: String,
    /// What happened and what to do.
    #[serde(default)]
    pub message: String,
    /// Replies or acks the request required (with `acks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<u64>,
    /// `"unknown"` when the request may or may not have been applied (a
    /// strong write proposed, and no answer before the deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl ErrorBody {
    /// An error without counts.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            acks: None,
            error: error.into(),
            message: message.into(),
            required: None,
            outcome: None,
        }
    }
}

/// The body of a `300` answer to a key read: the context covering every
/// sibling, and the siblings in the server's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiblingsBody {
    /// Context to write back with to resolve the siblings.
    pub context: String,
    /// The concurrent values.
    pub siblings: Vec<WireSibling>,
}

/// One sibling of a [`SiblingsBody`]: `{"value": "<base64>"}` or
/// `{"deleted": true}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSibling {
    /// Whether this sibling is a concurrent deletion (sent only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The value, standard base64 with padding (absent for a deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl WireSibling {
    /// A sibling holding `bytes`.
    pub fn value(bytes: &[u8]) -> Self {
        WireSibling {
            deleted: false,
            value: Some(STANDARD.encode(bytes)),
        }
    }

    /// A concurrent deletion.
    pub fn deleted() -> Self {
        WireSibling {
            deleted: true,
            value: None,
        }
    }
}

/// `GET /v1/cluster`: what one node knows about the cluster.
///
/// The server sends each member as a [`MemberDetail`]; a client reads it as
/// the default [`MemberStatus`], which leaves out what only operators of the
/// server look at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus<M = MemberStatus> {
    /// Hints the answering node holds for unreachable primaries (absent
    /// from servers older than hinted handoff).
    #[serde(default)]
    pub hints: Option<HintsStatus>,
    /// The consensus groups of strong buckets this node opened (absent from
    /// servers without strong buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupsSummary>,
    /// Version of the layout that node uses.
    pub layout_version: u64,
    /// Members of the layout, then members known through gossip only.
    pub members: Vec<M>,
    /// Default replicas per key.
    pub n: u64,
    /// Id of the node that answered.
    pub node: String,
    /// Partitions whose live primaries are too few for the default quorums.
    #[serde(default)]
    pub partitions_without_quorum: u64,
    /// Default read quorum.
    pub r: u64,
    /// Read-repair writes the answering node sent since it started.
    #[serde(default)]
    pub read_repairs: u64,
    /// Number of partitions.
    pub ring_size: u32,
    /// Default write quorum.
    pub w: u64,
}

/// The `hints` object of [`ClusterStatus`]: hinted handoff on the answering node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintsStatus {
    /// Hints held by the primary they are for (only primaries with hints).
    #[serde(default)]
    pub by_target: BTreeMap<String, u64>,
    /// Hints handed off and confirmed by their primary since the node started.
    #[serde(default)]
    pub delivered: u64,
    /// Whether the bound is reached: the node refuses writes as a fallback
    /// until handoff makes room.
    pub full: bool,
    /// Writes this node stored as a fallback, with a hint.
    #[serde(default)]
    pub hinted_writes: u64,
    /// The bound (`--hints-max`).
    pub max: u64,
    /// Hints held, waiting for their primary.
    pub pending: u64,
    /// Writes refused as a fallback because the hints were full.
    #[serde(default)]
    pub refused: u64,
}

/// One member in [`ClusterStatus`], as clients read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Whether the answering node's failure detector considers it alive.
    pub alive: bool,
    /// HTTP API address, when known.
    #[serde(default)]
    pub http_addr: Option<String>,
    /// Node id.
    pub id: String,
    /// The incarnation of its data directory, when gossip spread it.
    #[serde(default)]
    pub incarnation: Option<u32>,
    /// Its liveness as the answering node sees it: `alive`, `suspect` or
    /// `down` (absent from servers older than gossip).
    #[serde(default)]
    pub liveness: Option<String>,
    /// Partitions it owns (first in their preference list).
    #[serde(default)]
    pub partitions_owned: u64,
    /// Partitions it holds a replica of (in the first N of the preference list).
    #[serde(default)]
    pub partitions_replicated: u64,
    /// Node-to-node address.
    pub rpc_addr: String,
}

/// One member as the server sends it in [`ClusterStatus`]: the
/// [`MemberStatus`] every client reads, and the liveness gossip alone
/// reports, which clients ignore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDetail {
    /// What clients read.
    pub status: MemberStatus,
    /// Its liveness as gossip spread it (`alive`, `suspect`, `down`), `None`
    /// (sent as `null`) when gossip has not reported on it.
    pub gossip: Option<String>,
}

impl Serialize for MemberDetail {
    /// Written by hand so that `gossip` takes its alphabetical place among
    /// the status fields, as it always had (a flattened struct would put it
    /// last). Destructuring the status without `..` makes a new field of
    /// [`MemberStatus`] a compile error here until it is sent too.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let MemberStatus {
            alive,
            http_addr,
            id,
            incarnation,
            liveness,
            partitions_owned,
            partitions_replicated,
            rpc_addr,
        } = &self.status;
        let mut st = s.serialize_struct("MemberDetail", 9)?;
        st.serialize_field("alive", alive)?;
        st.serialize_field("gossip", &self.gossip)?;
        st.serialize_field("http_addr", http_addr)?;
        st.serialize_field("id", id)?;
        st.serialize_field("incarnation", incarnation)?;
        st.serialize_field("liveness", liveness)?;
        st.serialize_field("partitions_owned", partitions_owned)?;
        st.serialize_field("partitions_replicated", partitions_replicated)?;
        st.serialize_field("rpc_addr", rpc_addr)?;
        st.end()
    }
}

/// `GET /v1/ring`: the preference list of every partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingInfo {
    /// Layout version.
    pub layout_version: u64,
    /// Default replicas per key.
    pub n: u64,
    /// Every partition, in order.
    pub partitions: Vec<PartitionInfo>,
    /// Number of partitions.
    pub ring_size: u32,
}

/// One partition in [`RingInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// Node ids, primaries first.
    pub preference_list: Vec<String>,
}

/// `GET /v1/ring/{bucket}/{key}`: where one key lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLocation {
    /// Bucket (lossy UTF-8).
    pub bucket: String,
    /// The key's ring hash, 16 hex digits.
    pub hash: String,
    /// Key (lossy UTF-8).
    pub key: String,
    /// Layout version.
    pub layout_version: u64,
    /// Replicas per key.
    pub n: u64,
    /// Every member in the order the node uses them for this key.
    pub nodes: Vec<KeyNode>,
    /// Its partition.
    pub partition: u32,
    /// Partitions in the ring.
    pub ring_size: u32,
}

/// One member in [`KeyLocation`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyNode {
    /// Whether the answering node sees it alive.
    pub alive: bool,
    /// Node id.
    pub node: String,
    /// `primary` or `fallback`.
    pub role: String,
}

/// Properties of a bucket as the server answers them (every field
/// concrete): the wire form of [`bucket::BucketProps`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketProps {
    /// `siblings` (keep concurrent values) or `lww` (keep the latest stamp).
    pub conflict: String,
    /// `eventual` or `strong` (chosen when the bucket is created). Older
    /// servers do not send it: `eventual`.
    #[serde(default = "eventual")]
    pub consistency: String,
    /// Replicas per key.
    pub n: u64,
    /// How many of the `r` replies must come from primaries (0: any node).
    pub pr: u64,
    /// How many of the `w` acks must come from primaries (0: any node).
    pub pw: u64,
    /// Replies a read waits for.
    pub r: u64,
    /// A write that would leave more siblings than this is refused.
    pub siblings_max: u64,
    /// More siblings than this on a key are logged and counted.
    pub siblings_warn: u64,
    /// Acks a write waits for.
    pub w: u64,
}

impl From<&bucket::BucketProps> for BucketProps {
    fn from(p: &bucket::BucketProps) -> Self {
        let conflict = match p.conflict {
            ConflictMode::Siblings => "siblings",
            ConflictMode::Lww => "lww",
        };
        BucketProps {
            conflict: conflict.to_string(),
            consistency: p.consistency.to_string(),
            n: p.n as u64,
            pr: p.pr as u64,
            pw: p.pw as u64,
            r: p.r as u64,
            siblings_max: p.siblings_max as u64,
            siblings_warn: p.siblings_warn as u64,
            w: p.w as u64,
        }
    }
}

fn eventual() -> String {
    "eventual".to_string()
}

/// `GET /v1/buckets/{bucket}` (and the answer to a `PUT`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketInfo {
    /// The bucket (lossy UTF-8).
    pub bucket: String,
    /// The properties in force.
    pub props: BucketProps,
    /// Whether properties were set for this bucket (`false`: the defaults apply).
    pub set: bool,
}

impl BucketInfo {
    /// The document of `bucket` with the properties `props` in force; `set`
    /// says whether they were set for it (`false`: the node's defaults).
    pub fn new(bucket: &[u8], props: &bucket::BucketProps, set: bool) -> Self {
        BucketInfo {
            bucket: String::from_utf8_lossy(bucket).into_owned(),
            props: props.into(),
            set,
        }
    }
}

/// `GET /v1/buckets`: the buckets with properties of their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketList {
    /// Every bucket whose properties were set.
    pub buckets: Vec<BucketInfo>,
    /// What every other bucket uses.
    pub defaults: BucketProps,
}

/// The consensus groups of strong buckets on one node, in short: part of
/// `GET /v1/cluster`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsSummary {
    /// Groups this node opened (one per partition a strong key was used in).
    pub opened: u64,
    /// Groups that tick (had recent work); the others hibernate.
    pub active: u64,
    /// Groups this node leads.
    pub leading: u64,
    /// Partitions whose group has no leader this node knows of.
    pub without_leader: Vec<u32>,
    /// Strong writes this node proposed that wait to be applied.
    pub proposals_in_flight: u64,
}

/// `GET /v1/repair` and `POST /v1/repair`: what anti-entropy on the
/// answering node is doing and has done since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStatus {
    /// The answering node.
    pub node: String,
    /// Exchanges this request queued (`POST` only; 0 for `GET`).
    #[serde(default)]
    pub queued_now: u64,
    /// Exchanges and tombstone purges waiting to run.
    pub queued: u64,
    /// Exchanges and tombstone purges in flight.
    pub active: u64,
    /// Exchanges this node led.
    pub exchanges: u64,
    /// Exchange rounds that found equal trees.
    pub exchanges_in_sync: u64,
    /// `(key, digest)` pairs compared, as the responder of an exchange.
    pub keys_compared: u64,
    /// Keys sent to peers that lacked them or held them otherwise.
    pub keys_sent: u64,
    /// Keys peers' repairs changed on this node.
    pub keys_repaired: u64,
    /// Payload bytes sent for anti-entropy (hashes, key lists, objects).
    pub bytes_sent: u64,
    /// Hash trees built by a scan of a partition.
    pub trees_built: u64,
    /// Tombstones this node purged (every replica held them and their
    /// grace period was over).
    #[serde(default)]
    pub tombstones_purged: u64,
    /// How long after the node started every tree it keeps had been built
    /// (one per tick, in the background), in ms; absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trees_ready_after_ms: Option<u64>,
    /// Partitions this node leads exchanges of.
    pub partitions: u64,
    /// How long ago the partition least recently found in step with all
    /// its replicas was found so, in ms; absent while some partition never
    /// was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_sync_age_ms: Option<u64>,
}

impl RepairStatus {
    /// Whether no exchange is queued or in flight.
    pub fn idle(&self) -> bool {
        self.queued == 0 && self.active == 0
    }
}

/// One consensus group as a node sees it: an entry of `GET /v1/groups`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Whether the group ticks (had recent work) or hibernates.
    pub active: bool,
    /// The highest applied log index.
    pub applied: u64,
    /// The highest committed log index.
    pub commit: u64,
    /// Times this node was elected the group's leader since it started.
    pub elections: u64,
    /// The leader, when known.
    pub leader: Option<String>,
    /// Entries kept in the log.
    pub log_entries: u64,
    /// The partition (the group's id).
    pub partition: u32,
    /// Size of the last snapshot built, in bytes.
    pub snapshot_bytes: u64,
    /// The current term.
    pub term: u64,
}

/// `GET /v1/groups`: the consensus groups this node opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsStatus {
    /// The answering node.
    pub node: String,
    /// Strong writes this node proposed that wait to be applied.
    pub proposals_in_flight: u64,
    /// The groups, by partition.
    pub groups: Vec<GroupInfo>,
}

impl GroupsStatus {
    /// The summary of these groups shown in `GET /v1/cluster`.
    pub fn summary(&self) -> GroupsSummary {
        let me = self.node.as_str();
        GroupsSummary {
            opened: self.groups.len() as u64,
            active: self.groups.iter().filter(|g| g.active).count() as u64,
            leading: self
                .groups
                .iter()
                .filter(|g| g.leader.as_deref() == Some(me))
                .count() as u64,
            without_leader: self
                .groups
                .iter()
                .filter(|g| g.leader.is_none())
                .map(|g| g.partition)
                .collect(),
            proposals_in_flight: self.proposals_in_flight,
        }
    }
}

/// Longest delay [`LinkFault`] may inject, in ms.
pub const DELAY_MS_MAX: u64 = 60_000;

/// Test-only fault injection: what happens to the messages a node sends to
/// one peer. The body of `PUT /v1/admin/faults/{peer}`, and the value of
/// each peer in [`FaultTable`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFault {
    /// Extra delay before each batch of messages is sent, in ms.
    #[serde(default)]
    pub delay_ms: u64,
    /// Random extra delay on top of `delay_ms`, drawn uniformly from 0 to
    /// this many ms for each batch (a spread of latencies, as a real network
    /// has; the staleness test needs one). Not sent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jitter_ms: u64,
    /// Probability that a message is dropped, 0..=1 (1 = the link is cut).
    #[serde(default)]
    pub drop: f64,
}

impl LinkFault {
    /// Checks ranges; the error says what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.drop) {
            return Err(format!(
                "drop={} must be a probability from 0 to 1",
                self.drop
            ));
        }
        if self.jitter_ms > DELAY_MS_MAX {
            return Err(format!(
                "jitter_ms={} must be at most {DELAY_MS_MAX}",
                self.jitter_ms
            ));
        }
        if self.delay_ms > DELAY_MS_MAX {
            return Err(format!(
                "delay_ms={} must be at most {DELAY_MS_MAX}",
                self.delay_ms
            ));
        }
        Ok(())
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `GET /v1/admin/faults`: the faults in force, by peer.
pub type FaultTable = BTreeMap<NodeId, LinkFault>;

/// `GET /v1/kv/{bucket}?prefix=&after=&limit=`: a page of keys.
///
/// Keys are bytes; JSON strings are text. A key that is valid UTF-8 is in
/// `keys` as it is; one that is not is in `keys_b64` (standard base64),
/// sent only when the page has such keys. Each list is in key (byte)
/// order; the page is their union. `next` (or `next_b64`, when the cursor
/// is not UTF-8) is where the next page starts: pass its bytes as `after`
/// (percent-encoded in the query); neither is sent on the last page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysBody {
    /// The page's keys that are valid UTF-8, in order.
    pub keys: Vec<String>,
    /// The page's keys that are not valid UTF-8, base64, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys_b64: Vec<String>,
    /// Where the next page starts, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where the next page starts, base64, when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_b64: Option<String>,
}

impl KeysBody {
    /// The body of a page.
    pub fn from_page(page: &crate::list::KeyPage) -> Self {
        let mut body = KeysBody::default();
        for k in &page.keys {
            match std::str::from_utf8(k) {
                Ok(s) => body.keys.push(s.to_string()),
                Err(_) => body.keys_b64.push(STANDARD.encode(k)),
            }
        }
        if let Some(n) = &page.next {
            match std::str::from_utf8(n) {
                Ok(s) => body.next = Some(s.to_string()),
                Err(_) => body.next_b64 = Some(STANDARD.encode(n)),
            }
        }
        body
    }

    /// The page this body describes (keys in byte order); an error when a
    /// base64 field does not decode.
    pub fn to_page(&self) -> Result<crate::list::KeyPage, base64::DecodeError> {
        let mut keys: Vec<bytes::Bytes> = self
            .keys
            .iter()
            .map(|k| bytes::Bytes::copy_from_slice(k.as_bytes()))
            .collect();
        for k in &self.keys_b64 {
            keys.push(STANDARD.decode(k)?.into());
        }
        keys.sort();
        let next = match (&self.next, &self.next_b64) {
            (Some(n), _) => Some(bytes::Bytes::copy_from_slice(n.as_bytes())),
            (None, Some(b)) => Some(STANDARD.decode(b)?.into()),
            (None, None) => None,
        };
        Ok(crate::list::KeyPage { keys, next })
    }
}

#[cfg(test)]
mod tests {
    //! Golden bodies: the bytes the server sent for these values when it
    //! still built its answers as JSON maps. A change here is a change of
    //! the API contract.

    use super::*;

    #[test]
    fn a_page_of_keys_round_trips_with_non_utf8_keys_in_base64() {
        use crate::list::KeyPage;
        let page = KeyPage {
            keys: vec!["a".into(), bytes::Bytes::from_static(b"b\xff"), "c".into()],
            next: Some(bytes::Bytes::from_static(b"\xfe")),
        };
        let body = KeysBody::from_page(&page);
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"keys":["a","c"],"keys_b64":["Yv8="],"next_b64":"/g=="}"#
        );
        assert_eq!(body.to_page().unwrap(), page);
        let last = KeysBody::from_page(&KeyPage::default());
        assert_eq!(serde_json::to_string(&last).unwrap(), r#"{"keys":[]}"#);
    }

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    fn status(id: &str, alive: bool) -> MemberStatus {
        MemberStatus {
            alive,
            http_addr: alive.then(|| "127.0.0.1:8081".to_string()),
            id: id.into(),
            incarnation: alive.then_some(7),
            liveness: Some(if alive { "alive" } else { "down" }.into()),
            partitions_owned: if alive { 22 } else { 0 },
            partitions_replicated: if alive { 64 } else { 0 },
            rpc_addr: format!("127.0.0.1:708{}", &id[1..]),
        }
    }

    const CLUSTER: &str = concat!(
        r#"{"hints":{"by_target":{"n2":5},"delivered":1,"full":false,"hinted_writes":6,"max":10,"pending":5,"refused":2},"#,
        r#""layout_version":3,"members":[{"alive":true,"gossip":"alive","http_addr":"127.0.0.1:8081","id":"n1","#,
        r#""incarnation":7,"liveness":"alive","partitions_owned":22,"partitions_replicated":64,"rpc_addr":"127.0.0.1:7081"},"#,
        r#"{"alive":false,"gossip":null,"http_addr":null,"id":"n2","incarnation":null,"liveness":"down","#,
        r#""partitions_owned":0,"partitions_replicated":0,"rpc_addr":"127.0.0.1:7082"}],"n":3,"node":"n1","#,
        r#""partitions_without_quorum":1,"r":2,"read_repairs":4,"ring_size":64,"w":2}"#
    );

    fn cluster() -> ClusterStatus<MemberDetail> {
        ClusterStatus {
            groups: None,
            hints: Some(HintsStatus {
                by_target: [("n2".to_string(), 5)].into(),
                delivered: 1,
                full: false,
                hinted_writes: 6,
                max: 10,
                pending: 5,
                refused: 2,
            }),
            layout_version: 3,
            members: vec![
                MemberDetail {
                    status: status("n1", true),
                    gossip: Some("alive".into()),
                },
                MemberDetail {
                    status: status("n2", false),
                    gossip: None,
                },
            ],
            n: 3,
            node: "n1".into(),
            partitions_without_quorum: 1,
            r: 2,
            read_repairs: 4,
            ring_size: 64,
            w: 2,
        }
    }

    #[test]
    fn cluster_body_is_unchanged_and_clients_read_it() {
        assert_eq!(json(&cluster()), CLUSTER);
        let read: ClusterStatus = serde_json::from_str(CLUSTER).unwrap();
        let sent = cluster();
        assert_eq!(
            read.members,
            sent.members
                .iter()
                .map(|m| m.status.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(read.hints, sent.hints);
        assert_eq!((read.n, read.ring_size, read.read_repairs), (3, 64, 4));
    }

    #[test]
    fn error_bodies_are_unchanged() {
        let plain = ErrorBody::new("bad_request", "m");
        assert_eq!(json(&plain), r#"{"error":"bad_request","message":"m"}"#);
        let counted = ErrorBody {
            acks: Some(1),
            required: Some(2),
            ..ErrorBody::new("unavailable", "quorum not reached")
        };
        let text =
            r#"{"acks":1,"error":"unavailable","message":"quorum not reached","required":2}"#;
        assert_eq!(json(&counted), text);
        assert_eq!(serde_json::from_str::<ErrorBody>(text).unwrap(), counted);
        assert_eq!(
            serde_json::from_str::<ErrorBody>(r#"{"error":"e"}"#).unwrap(),
            ErrorBody::new("e", "")
        );
    }

    #[test]
    fn siblings_body_is_unchanged() {
        let body = SiblingsBody {
            context: "ctx".into(),
            siblings: vec![WireSibling::value(b"a\xff"), WireSibling::deleted()],
        };
        let text = r#"{"context":"ctx","siblings":[{"value":"Yf8="},{"deleted":true}]}"#;
        assert_eq!(json(&body), text);
        assert_eq!(serde_json::from_str::<SiblingsBody>(text).unwrap(), body);
    }

    #[test]
    fn ring_and_location_bodies_are_unchanged() {
        let ring = RingInfo {
            layout_version: 3,
            n: 3,
            partitions: vec![PartitionInfo {
                partition: 0,
                preference_list: vec!["n1".into(), "n2".into()],
            }],
            ring_size: 8,
        };
        assert_eq!(
            json(&ring),
            r#"{"layout_version":3,"n":3,"partitions":[{"partition":0,"preference_list":["n1","n2"]}],"ring_size":8}"#
        );
        let node = |node: &str, role: &str, alive| KeyNode {
            alive,
            node: node.into(),
            role: role.into(),
        };
        let location = KeyLocation {
            bucket: "b".into(),
            hash: format!("{:016x}", 0xabc),
            key: "k".into(),
            layout_version: 3,
            n: 3,
            nodes: vec![node("n2", "primary", true), node("n3", "fallback", false)],
            partition: 5,
            ring_size: 8,
        };
        assert_eq!(
            json(&location),
            concat!(
                r#"{"bucket":"b","hash":"0000000000000abc","key":"k","layout_version":3,"n":3,"#,
                r#""nodes":[{"alive":true,"node":"n2","role":"primary"},"#,
                r#"{"alive":false,"node":"n3","role":"fallback"}],"partition":5,"ring_size":8}"#
            )
        );
    }

    #[test]
    fn bucket_bodies_are_unchanged() {
        let props = bucket::BucketProps::defaults(3, 2, 2, 100);
        let props_json = r#"{"conflict":"siblings","consistency":"eventual","n":3,"pr":0,"pw":0,"r":2,"siblings_max":100,"siblings_warn":25,"w":2}"#;
        let info = BucketInfo::new(b"carts", &props, true);
        let info_json = format!(r#"{{"bucket":"carts","props":{props_json},"set":true}}"#);
        assert_eq!(json(&info), info_json);
        let list = BucketList {
            buckets: vec![info],
            defaults: (&props).into(),
        };
        assert_eq!(
            json(&list),
            format!(r#"{{"buckets":[{info_json}],"defaults":{props_json}}}"#)
        );
        let lww = bucket::BucketProps {
            conflict: ConflictMode::Lww,
            ..props
        };
        assert_eq!(BucketProps::from(&lww).conflict, "lww");
        let strong = bucket::BucketProps {
            consistency: bucket::Consistency::Strong,
            ..props
        };
        assert_eq!(BucketProps::from(&strong).consistency, "strong");
        // An older server's answer, without consistency: eventual.
        let old = r#"{"conflict":"siblings","n":3,"pr":0,"pw":0,"r":2,"siblings_max":100,"siblings_warn":25,"w":2}"#;
        let read: BucketProps = serde_json::from_str(old).unwrap();
        assert_eq!(read.consistency, "eventual");
    }

    #[test]
    fn group_bodies_are_unchanged_and_summarized() {
        let g = |partition, leader: Option<&str>, active| GroupInfo {
            active,
            applied: 9,
            commit: 10,
            elections: 1,
            leader: leader.map(str::to_string),
            log_entries: 4,
            partition,
            snapshot_bytes: 120,
            term: 3,
        };
        let status = GroupsStatus {
            node: "n1".into(),
            proposals_in_flight: 2,
            groups: vec![
                g(3, Some("n1"), true),
                g(7, None, false),
                g(9, Some("n2"), true),
            ],
        };
        let text = json(&status);
        assert!(
            text.starts_with(concat!(
                r#"{"node":"n1","proposals_in_flight":2,"groups":[{"active":true,"applied":9,"#,
                r#""commit":10,"elections":1,"leader":"n1","log_entries":4,"partition":3,"#,
                r#""snapshot_bytes":120,"term":3},"#
            )),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<GroupsStatus>(&text).unwrap(), status);
        let summary = status.summary();
        assert_eq!(
            json(&summary),
            r#"{"opened":3,"active":2,"leading":1,"without_leader":[7],"proposals_in_flight":2}"#
        );
    }

    #[test]
    fn fault_bodies_are_unchanged_and_checked() {
        let mut table = FaultTable::new();
        assert_eq!(json(&table), "{}");
        table.insert(
            NodeId::from("n3"),
            LinkFault {
                delay_ms: 40,
                drop: 0.25,
                ..Default::default()
            },
        );
        table.insert(
            NodeId::from("n2"),
            LinkFault {
                delay_ms: 0,
                drop: 1.0,
                ..Default::default()
            },
        );
        assert_eq!(
            json(&table),
            r#"{"n2":{"delay_ms":0,"drop":1.0},"n3":{"delay_ms":40,"drop":0.25}}"#
        );
        let parsed: LinkFault = serde_json::from_str(r#"{"drop": 0.5}"#).unwrap();
        assert_eq!((parsed.drop, parsed.delay_ms), (0.5, 0));
        assert!(serde_json::from_str::<LinkFault>(r#"{"loss": 1}"#).is_err());
        let bad_drop = LinkFault {
            drop: 1.5,
            delay_ms: 0,
            ..Default::default()
        };
        assert!(bad_drop.validate().is_err());
        let bad_delay = LinkFault {
            drop: 0.5,
            delay_ms: DELAY_MS_MAX + 1,
            ..Default::default()
        };
        assert!(bad_delay.validate().is_err());
        let jitter: LinkFault = serde_json::from_str(r#"{"jitter_ms": 20}"#).unwrap();
        assert_eq!(jitter.jitter_ms, 20);
        assert!(json(&jitter).contains("\"jitter_ms\":20"));
        let bad_jitter = LinkFault {
            jitter_ms: DELAY_MS_MAX + 1,
            ..Default::default()
        };
        assert!(bad_jitter.validate().is_err());
    }
}
