//! Request options, typed results and the JSON documents of the API.
//!
//! The documents the server answers are the types of [`ringkv_core::api`],
//! re-exported here: the server serializes the very same types.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use ringkv_core::api::SiblingsBody;

pub(crate) use ringkv_core::api::ErrorBody;
pub use ringkv_core::api::{
    BucketInfo, BucketList, BucketProps, ClusterStatus, GroupInfo, GroupsStatus, GroupsSummary,
    HintsStatus, KeyLocation, KeyNode, MemberStatus, PartitionInfo, RepairStatus, RingInfo,
};

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
    /// `eventual` or `strong`: only when the bucket is created (a change of
    /// a bucket that exists is refused with 409).
    pub consistency: Option<String>,
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
        if let Some(c) = &self.consistency {
            m.insert("consistency".into(), c.clone().into());
        }
        if let Some(v) = self.siblings_max {
            m.insert("siblings_max".into(), v.into());
        }
        serde_json::Value::Object(m)
    }
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
        let strong = BucketPatch {
            consistency: Some("strong".into()),
            ..BucketPatch::new()
        };
        assert_eq!(
            strong.to_json(),
            serde_json::json!({"consistency": "strong"})
        );
        assert_eq!(b.props.consistency, "eventual");
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
