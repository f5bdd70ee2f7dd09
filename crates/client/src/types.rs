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
