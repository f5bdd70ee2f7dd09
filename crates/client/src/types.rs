//! Requests options, typed results and the JSON documents of the API.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Per-request parameters. Each is sent only when set; the server uses the
/// bucket's defaults for the rest.
///
/// Quorum values are strings as the API takes them: a number, or `one`,
/// `quorum`, `all`. Reads use `r`, `pr`; writes and deletes use `w`, `pw`;
/// the others are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// Replies a read waits for.
    pub r: Option<String>,
    /// How many of the read replies must come from primaries.
    pub pr: Option<String>,
    /// Acks a write waits for.
    pub w: Option<String>,
    /// How many of the write acks must come from primaries.
    pub pw: Option<String>,
    /// How long the coordinating node waits for replicas, in ms.
    pub timeout_ms: Option<u64>,
}

impl RequestOptions {
    /// No parameters: the server's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `r`.
    pub fn r(mut self, r: impl Into<String>) -> Self {
        self.r = Some(r.into());
        self
    }

    /// Sets `pr`.
    pub fn pr(mut self, pr: impl Into<String>) -> Self {
        self.pr = Some(pr.into());
        self
    }

    /// Sets `w`.
    pub fn w(mut self, w: impl Into<String>) -> Self {
        self.w = Some(w.into());
        self
    }

    /// Sets `pw`.
    pub fn pw(mut self, pw: impl Into<String>) -> Self {
        self.pw = Some(pw.into());
        self
    }

    /// Sets `timeout_ms`.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }
}

/// The answer to a GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetResult {
    /// One value (`200`).
    Value {
        /// The value's bytes.
        value: Bytes,
        /// Context to pass to the next write of this key.
        context: String,
    },
    /// Concurrent values (`300`): write back with `context` to resolve them.
    Siblings {
        /// Context covering every sibling.
        context: String,
        /// The concurrent values, in the server's order.
        siblings: Vec<SiblingValue>,
    },
    /// No value (`404`): never written, or deleted.
    NotFound {
        /// Present when the server knows a tombstone; pass it to the next write.
        context: Option<String>,
    },
}

impl GetResult {
    /// The context of this answer, if any.
    pub fn context(&self) -> Option<&str> {
        match self {
            GetResult::Value { context, .. } | GetResult::Siblings { context, .. } => Some(context),
            GetResult::NotFound { context } => context.as_deref(),
        }
    }
}

/// One of several concurrent versions of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiblingValue {
    /// A value.
    Value(Bytes),
    /// A concurrent deletion.
    Deleted,
}

/// `GET /v1/cluster`: what one node knows about the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Id of the node that answered.
    pub node: String,
    /// Version of the layout that node uses.
    pub layout_version: u64,
    /// Number of partitions.
    pub ring_size: u32,
    /// Default replicas per key.
    pub n: u64,
    /// Default read quorum.
    pub r: u64,
    /// Default write quorum.
    pub w: u64,
    /// Members of the layout.
    pub members: Vec<MemberStatus>,
    /// Partitions whose live primaries are too few for the default quorums.
    #[serde(default)]
    pub partitions_without_quorum: u64,
    /// Hints the answering node holds for unreachable primaries (absent
    /// from servers older than hinted handoff).
    #[serde(default)]
    pub hints: Option<HintsStatus>,
    /// Read-repair writes the answering node sent since it started.
    #[serde(default)]
    pub read_repairs: u64,
}

/// The `hints` object of [`ClusterStatus`]: hinted handoff on the answering node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintsStatus {
    /// Hints held, waiting for their primary.
    pub pending: u64,
    /// Hints held by the primary they are for (only primaries with hints).
    #[serde(default)]
    pub by_target: std::collections::BTreeMap<String, u64>,
    /// The bound (`--hints-max`).
    pub max: u64,
    /// Whether the bound is reached: the node refuses writes as a fallback
    /// until handoff makes room.
    pub full: bool,
    /// Hints handed off and confirmed by their primary since the node started.
    #[serde(default)]
    pub delivered: u64,
    /// Writes refused as a fallback because the hints were full.
    #[serde(default)]
    pub refused: u64,
    /// Writes this node stored as a fallback, with a hint.
    #[serde(default)]
    pub hinted_writes: u64,
}

/// Properties of a bucket as the server answers them (every field concrete).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketProps {
    /// Replicas per key.
    pub n: u64,
    /// Replies a read waits for.
    pub r: u64,
    /// Acks a write waits for.
    pub w: u64,
    /// How many of the `r` replies must come from primaries (0: any node).
    pub pr: u64,
    /// How many of the `w` acks must come from primaries (0: any node).
    pub pw: u64,
    /// `siblings` (keep concurrent values) or `lww` (keep the latest stamp).
    pub conflict: String,
    /// More siblings than this on a key are logged and counted.
    pub siblings_warn: u64,
    /// A write that would leave more siblings than this is refused.
    pub siblings_max: u64,
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

/// `GET /v1/buckets`: the buckets with properties of their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketList {
    /// Every bucket whose properties were set.
    pub buckets: Vec<BucketInfo>,
    /// What every other bucket uses.
    pub defaults: BucketProps,
}

/// A change of bucket properties: the fields that are set are changed, the
/// others kept. Quorum fields take a number or `one`, `quorum`, `all`, as
/// strings (like [`RequestOptions`]); the server resolves names against the
/// bucket's `n` and checks everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketPatch {
    /// Replicas per key.
    pub n: Option<u64>,
    /// Read quorum.
    pub r: Option<String>,
    /// Write quorum.
    pub w: Option<String>,
    /// Primaries among the read replies.
    pub pr: Option<String>,
    /// Primaries among the write acks.
    pub pw: Option<String>,
    /// `siblings` or `lww`.
    pub conflict: Option<String>,
    /// Sibling warning threshold.
    pub siblings_warn: Option<u64>,
    /// Sibling limit.
    pub siblings_max: Option<u64>,
}

impl BucketPatch {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// The JSON body of `PUT /v1/buckets/{bucket}`: only the fields that are
    /// set; a quorum that is a number is sent as a JSON number.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let quorum = |v: &str| match v.parse::<u64>() {
            Ok(n) => serde_json::Value::from(n),
            Err(_) => serde_json::Value::from(v),
        };
        if let Some(n) = self.n {
            m.insert("n".into(), n.into());
        }
        for (name, v) in [
            ("r", &self.r),
            ("w", &self.w),
            ("pr", &self.pr),
            ("pw", &self.pw),
        ] {
            if let Some(v) = v {
                m.insert(name.into(), quorum(v));
            }
        }
        if let Some(c) = &self.conflict {
            m.insert("conflict".into(), c.clone().into());
        }
        if let Some(v) = self.siblings_warn {
            m.insert("siblings_warn".into(), v.into());
        }
        if let Some(v) = self.siblings_max {
            m.insert("siblings_max".into(), v.into());
        }
        serde_json::Value::Object(m)
    }
}

/// One member in [`ClusterStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: String,
    /// Node-to-node address.
    pub rpc_addr: String,
    /// HTTP API address, when known.
    #[serde(default)]
    pub http_addr: Option<String>,
    /// Whether the answering node's failure detector considers it alive.
    pub alive: bool,
    /// Its liveness as the answering node sees it: `alive`, `suspect` or
    /// `down` (absent from servers older than gossip).
    #[serde(default)]
    pub liveness: Option<String>,
    /// The incarnation of its data directory, when gossip spread it.
    #[serde(default)]
    pub incarnation: Option<u32>,
    /// Partitions it owns (first in their preference list).
    #[serde(default)]
    pub partitions_owned: u64,
    /// Partitions it holds a replica of (in the first N of the preference list).
    #[serde(default)]
    pub partitions_replicated: u64,
}

/// `GET /v1/ring`: the preference list of every partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingInfo {
    /// Layout version.
    pub layout_version: u64,
    /// Number of partitions.
    pub ring_size: u32,
    /// Default replicas per key.
    pub n: u64,
    /// Every partition, in order.
    pub partitions: Vec<PartitionInfo>,
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
    /// Key (lossy UTF-8).
    pub key: String,
    /// The key's ring hash, hex.
    pub hash: String,
    /// Its partition.
    pub partition: u32,
    /// Partitions in the ring.
    pub ring_size: u32,
    /// Layout version.
    pub layout_version: u64,
    /// Replicas per key.
    pub n: u64,
    /// Every member in the order the node uses them for this key.
    pub nodes: Vec<KeyNode>,
}

/// One member in [`KeyLocation`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyNode {
    /// Node id.
    pub node: String,
    /// `primary` or `fallback`.
    pub role: String,
    /// Whether the answering node sees it alive.
    pub alive: bool,
}

/// The body of every error answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub required: Option<u64>,
    #[serde(default)]
    pub acks: Option<u64>,
}

#[derive(Deserialize)]
struct SiblingsBody {
    context: String,
    siblings: Vec<WireSibling>,
}

#[derive(Deserialize)]
struct WireSibling {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    deleted: bool,
}

/// Parses the body of a `300` answer into its context and siblings.
///
/// Sibling values are standard base64 (with padding); a sibling is either
/// `{"value": "..."}` or `{"deleted": true}`.
pub fn parse_siblings(body: &[u8]) -> Result<(String, Vec<SiblingValue>), String> {
    let parsed: SiblingsBody =
        serde_json::from_slice(body).map_err(|e| format!("siblings JSON does not parse: {e}"))?;
    let mut siblings = Vec::with_capacity(parsed.siblings.len());
    for (i, s) in parsed.siblings.into_iter().enumerate() {
        let sibling = match (s.deleted, s.value) {
            (true, _) => SiblingValue::Deleted,
            (false, Some(v)) => SiblingValue::Value(Bytes::from(
                STANDARD
                    .decode(v.as_bytes())
                    .map_err(|e| format!("sibling {} is not valid base64: {e}", i + 1))?,
            )),
            (false, None) => {
                return Err(format!(
                    "sibling {} has neither \"value\" nor \"deleted\": true",
                    i + 1
                ));
            }
        };
        siblings.push(sibling);
    }
    Ok((parsed.context, siblings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_and_tombstones() {
        let body = br#"{"context": "abc", "siblings": [{"value": "aGVsbG8="}, {"deleted": true}, {"value": ""}]}"#;
        let (ctx, sibs) = parse_siblings(body).unwrap();
        assert_eq!(ctx, "abc");
        assert_eq!(
            sibs,
            vec![
                SiblingValue::Value(Bytes::from_static(b"hello")),
                SiblingValue::Deleted,
                SiblingValue::Value(Bytes::new()),
            ]
        );
    }

    #[test]
    fn binary_values_roundtrip() {
        let raw = [0u8, 0xff, b'/', 0x80];
        let body = format!(
            r#"{{"context":"c","siblings":[{{"value":"{}"}}]}}"#,
            STANDARD.encode(raw)
        );
        let (_, sibs) = parse_siblings(body.as_bytes()).unwrap();
        assert_eq!(
            sibs,
            vec![SiblingValue::Value(Bytes::copy_from_slice(&raw))]
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let body = br#"{"context":"c","siblings":[{"value":"eA==","dot":"n1:3"}],"extra":1}"#;
        assert!(parse_siblings(body).is_ok());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(parse_siblings(b"not json").is_err());
        assert!(parse_siblings(br#"{"siblings": []}"#).is_err());
        let e = parse_siblings(br#"{"context":"c","siblings":[{"value":"!!"}]}"#).unwrap_err();
        assert!(e.contains("sibling 1"), "{e}");
        let e = parse_siblings(br#"{"context":"c","siblings":[{"value":"eA=="},{}]}"#).unwrap_err();
        assert!(e.contains("sibling 2"), "{e}");
    }

    #[test]
    fn cluster_json_parses() {
        let body = r#"{"node": "n1", "layout_version": 1, "ring_size": 64, "n": 3, "r": 2, "w": 2,
            "members": [{"id": "n1", "rpc_addr": "127.0.0.1:7081", "http_addr": "127.0.0.1:8081", "alive": true,
                         "partitions_owned": 22, "partitions_replicated": 64},
                        {"id": "n2", "rpc_addr": "127.0.0.1:7082", "http_addr": null, "alive": false,
                         "partitions_owned": 21, "partitions_replicated": 64}],
            "partitions_without_quorum": 0}"#;
        let c: ClusterStatus = serde_json::from_str(body).unwrap();
        assert_eq!(c.members.len(), 2);
        assert_eq!(c.members[1].http_addr, None);
        assert!(!c.members[1].alive);
        assert_eq!(c.members[0].partitions_owned, 22);
    }

    #[test]
    fn cluster_json_with_hints_parses() {
        let body = r#"{"node": "n1", "layout_version": 1, "ring_size": 8, "n": 3, "r": 2, "w": 2,
            "members": [], "partitions_without_quorum": 0, "read_repairs": 4,
            "hints": {"pending": 5, "by_target": {"n2": 5}, "max": 10, "full": false,
                      "delivered": 1, "refused": 2, "hinted_writes": 6}}"#;
        let c: ClusterStatus = serde_json::from_str(body).unwrap();
        let h = c.hints.unwrap();
        assert_eq!((h.pending, h.max, h.full), (5, 10, false));
        assert_eq!(h.by_target["n2"], 5);
        assert_eq!((h.delivered, h.refused, h.hinted_writes), (1, 2, 6));
        assert_eq!(c.read_repairs, 4);
    }

    #[test]
    fn bucket_json_parses_and_patches_serialize() {
        let body = r#"{"bucket": "carts", "set": true, "props": {"n": 3, "r": 2, "w": 2, "pr": 0,
            "pw": 0, "conflict": "lww", "siblings_warn": 25, "siblings_max": 100}}"#;
        let b: BucketInfo = serde_json::from_str(body).unwrap();
        assert_eq!(b.props.conflict, "lww");
        assert!(b.set);
        let p = BucketPatch {
            n: Some(3),
            r: Some("quorum".into()),
            w: Some("2".into()),
            conflict: Some("lww".into()),
            ..BucketPatch::new()
        };
        assert_eq!(
            p.to_json(),
            serde_json::json!({"n": 3, "r": "quorum", "w": 2, "conflict": "lww"})
        );
        assert_eq!(BucketPatch::new().to_json(), serde_json::json!({}));
    }

    #[test]
    fn ring_json_parses() {
        let body = r#"{"layout_version": 1, "ring_size": 8, "n": 3,
            "partitions": [{"partition": 0, "preference_list": ["n1","n2","n3"]}]}"#;
        let r: RingInfo = serde_json::from_str(body).unwrap();
        assert_eq!(r.partitions[0].preference_list, vec!["n1", "n2", "n3"]);
    }

    #[test]
    fn error_json_parses_with_and_without_counts() {
        let e: ErrorBody = serde_json::from_str(
            r#"{"error":"quorum_not_reached","message":"m","required":2,"acks":1}"#,
        )
        .unwrap();
        assert_eq!((e.required, e.acks), (Some(2), Some(1)));
        let e: ErrorBody = serde_json::from_str(r#"{"error":"bad_param","message":"m"}"#).unwrap();
        assert_eq!(e.error, "bad_param");
        assert_eq!(e.required, None);
    }
}
