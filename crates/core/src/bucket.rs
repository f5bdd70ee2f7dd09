//! Bucket properties: replicas, quorums, conflict mode and sibling limits of
//! a bucket, the partial updates users send, their validation, and the
//! versioned entry that spreads them through the cluster by gossip.
//!
//! [`BucketProps`] are always concrete numbers: quorum names (`one`,
//! `quorum`, `all`) in a [`BucketPatch`] are resolved against the bucket's
//! `n` *after* the patch when it is applied, and stay numbers afterwards.
//! Changing `n` later does not re-resolve `r` or `w`; if they no longer fit,
//! the change is refused with a message saying so.

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use crate::hlc::Hlc;
use crate::layout::NodeId;
use crate::params::QuorumParam;

/// How a bucket handles concurrent writes to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictMode {
    /// Keep every concurrent value as a sibling for the client to resolve.
    Siblings,
    /// Keep only the value with the highest timestamp (see [`crate::lww`]).
    Lww,
}

/// What a bucket guarantees: chosen when the bucket is created, and kept
/// while it holds data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Always writable: quorums, siblings or last-write-wins, sloppy quorum,
    /// hinted handoff and read repair.
    #[default]
    Eventual,
    /// Linearizable reads, writes and compare-and-set through the
    /// partition's consensus group; unavailable without a majority of its
    /// voters.
    Strong,
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consistency::Eventual => "eventual",
            Consistency::Strong => "strong",
        })
    }
}

/// Properties of a bucket; every field is concrete (resolved against the
/// node's defaults and the cluster size).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BucketProps {
    /// Replicas per key.
    pub n: usize,
    /// Replies a read waits for.
    pub r: usize,
    /// Acks a write waits for.
    pub w: usize,
    /// How many of the `r` replies must come from primaries (0: any node).
    pub pr: usize,
    /// How many of the `w` acks must come from primaries (0: any node).
    pub pw: usize,
    /// How concurrent writes are handled.
    pub conflict: ConflictMode,
    /// A write that leaves more than this many siblings on a key is logged
    /// and counted, so operators notice clients that never resolve them.
    pub siblings_warn: usize,
    /// A write that would leave more than this many siblings on a key is
    /// refused until a client resolves them.
    pub siblings_max: usize,
    /// Eventual or strong (see [`Consistency`]).
    #[serde(default)]
    pub consistency: Consistency,
}

/// Every property name, in the order users see them.
pub const PROPERTY_NAMES: &str =
    "n, r, w, pr, pw, conflict, siblings_warn, siblings_max, consistency";

/// A partial update of bucket properties as a user sends it (the JSON body of
/// `PUT /v1/buckets/{bucket}`). Absent (or `null`) fields keep their value.
/// Quorum fields take a number or `"one"`, `"quorum"`, `"all"` in JSON.
/// Parse user input with [`BucketPatch::from_json`], which explains mistakes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketPatch {
    /// New replicas per key.
    #[serde(default)]
    pub n: Option<usize>,
    /// New read quorum.
    #[serde(default, with = "quorum_field")]
    pub r: Option<QuorumParam>,
    /// New write quorum.
    #[serde(default, with = "quorum_field")]
    pub w: Option<QuorumParam>,
    /// New primary read quorum.
    #[serde(default, with = "quorum_field")]
    pub pr: Option<QuorumParam>,
    /// New primary write quorum.
    #[serde(default, with = "quorum_field")]
    pub pw: Option<QuorumParam>,
    /// New conflict mode.
    #[serde(default)]
    pub conflict: Option<ConflictMode>,
    /// New sibling warning threshold.
    #[serde(default)]
    pub siblings_warn: Option<usize>,
    /// New sibling limit.
    #[serde(default)]
    pub siblings_max: Option<usize>,
    /// The bucket's consistency: only when it is created.
    #[serde(default)]
    pub consistency: Option<Consistency>,
}

/// Why bucket properties were rejected. Nothing was changed. The message says
/// what was wrong and what is allowed, fit to show a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketError {
    /// `n` is 0 or more than the members.
    #[error("n = {n} is not allowed: n must be 1 to {members} (the number of members)")]
    NOutOfRange {
        /// What was asked.
        n: usize,
        /// Members of the cluster.
        members: usize,
    },
    /// `r` or `w` is 0 or more than `n`.
    #[error("{name} = {value} is not allowed: {name} must be 1 to n = {n}, or one, quorum, all")]
    QuorumOutOfRange {
        /// `r` or `w`.
        name: &'static str,
        /// What it came to.
        value: usize,
        /// Replicas per key.
        n: usize,
    },
    /// `pr` is more than `r` or `pw` more than `w`.
    #[error(
        "{name} = {value} is not allowed: {name} must be 0 to {of} = {limit} (it counts primaries among those {of} replies)"
    )]
    PrimaryOutOfRange {
        /// `pr` or `pw`.
        name: &'static str,
        /// What it came to.
        value: usize,
        /// `r` or `w`.
        of: &'static str,
        /// The value of `of`.
        limit: usize,
    },
    /// `siblings_max` is 0.
    #[error(
        "siblings_max = 0 is not allowed: siblings_max must be at least 1 (a key always holds at least one value)"
    )]
    SiblingsMaxZero,
    /// `siblings_warn` is 0 or more than `siblings_max`.
    #[error(
        "siblings_warn = {warn} is not allowed: siblings_warn must be 1 to siblings_max = {max}"
    )]
    SiblingsWarnOutOfRange {
        /// What was asked.
        warn: usize,
        /// The sibling limit.
        max: usize,
    },
    /// A property name that does not exist.
    #[error("unknown bucket property {0:?}: the properties are {PROPERTY_NAMES}")]
    UnknownProperty(String),
    /// A property given twice in one body.
    #[error("bucket property {0:?} is given twice: give each property once")]
    DuplicateProperty(String),
    /// `conflict` is not a known mode.
    #[error("conflict = {0} is not allowed: conflict must be \"siblings\" or \"lww\"")]
    BadConflictMode(String),
    /// A quorum field is neither a count nor a quorum name.
    #[error(
        "{name} = {value} is not allowed: {name} must be a whole number or \"one\", \"quorum\", \"all\""
    )]
    BadQuorum {
        /// The field.
        name: &'static str,
        /// What was given, as JSON.
        value: String,
    },
    /// A count field is not a whole number.
    #[error("{name} = {value} is not allowed: {name} must be a whole number")]
    BadNumber {
        /// The field.
        name: &'static str,
        /// What was given, as JSON.
        value: String,
    },
    /// The change is stamped below the properties in force, which were set
    /// with a stamp ahead of this node's clock: it would lose to them
    /// everywhere, so it is refused rather than reported as applied.
    #[error(
        "the change was not applied: the bucket's properties in force were set by {origin} \
         with a stamp ({have}) ahead of this node's clock ({mine}); set them on {origin}, or \
         once this node's clock has caught up"
    )]
    Superseded {
        /// The node that set the properties in force.
        origin: String,
        /// Their stamp.
        have: Hlc,
        /// The stamp this change would have had.
        mine: Hlc,
    },
    /// The bucket has no properties of its own yet and the node keeps as
    /// many buckets' properties as it may.
    #[error(
        "the change was not applied: this node keeps properties for at most {max} buckets \
         (--buckets-max) and has that many; use a bucket that has properties already, or \
         raise --buckets-max on every node"
    )]
    TooManyBuckets {
        /// The bound (`--buckets-max`).
        max: usize,
    },
    /// `consistency` is not `eventual` or `strong`.
    #[error("consistency = {0} is not allowed: use \"eventual\" or \"strong\"")]
    BadConsistency(String),
    /// A change of consistency of a bucket that exists.
    #[error(
        "bucket {bucket} is {have} and its consistency cannot change: it is chosen when a bucket \
         is created (its first properties, before any key is written to it); use a new bucket"
    )]
    ConsistencyFixed {
        /// The bucket, for people.
        bucket: String,
        /// Its consistency.
        have: Consistency,
    },
    /// A strong bucket whose `n` is not the cluster's.
    #[error(
        "a strong bucket keeps its keys on the partition's consensus group of n = {cluster_n} \
         voters; n = {n} is not allowed for it (leave n out or use {cluster_n})"
    )]
    StrongN {
        /// What was asked.
        n: usize,
        /// The cluster's replicas per key.
        cluster_n: usize,
    },
    /// The body is not a JSON object.
    #[error(
        "bucket properties must be a JSON object such as {{\"n\": 3, \"conflict\": \"lww\"}}: {0}"
    )]
    Malformed(String),
}

impl BucketProps {
    /// Properties from the node's defaults: `pr = pw = 0`, conflict mode
    /// `siblings`, and `siblings_warn = siblings_max / 4` (at least 1): with the
    /// default limit of 100 that is Riak's 25 warning / 100 refusal.
    pub fn defaults(n: usize, r: usize, w: usize, siblings_max: usize) -> Self {
        BucketProps {
            n,
            r,
            w,
            pr: 0,
            pw: 0,
            conflict: ConflictMode::Siblings,
            siblings_warn: (siblings_max / 4).max(1).min(siblings_max),
            siblings_max,
            consistency: Consistency::Eventual,
        }
    }

    /// Applies `patch` and validates the result against `cluster_size`
    /// members. Quorum names are resolved against the new `n`. On error
    /// nothing changes (`self` is not modified; the error says why).
    pub fn apply(
        &self,
        patch: &BucketPatch,
        cluster_size: usize,
    ) -> Result<BucketProps, BucketError> {
        let n = patch.n.unwrap_or(self.n);
        let pick = |q: Option<QuorumParam>, old: usize| q.map_or(old, |q| quorum_count(q, n));
        let next = BucketProps {
            n,
            r: pick(patch.r, self.r),
            w: pick(patch.w, self.w),
            pr: pick(patch.pr, self.pr),
            pw: pick(patch.pw, self.pw),
            conflict: patch.conflict.unwrap_or(self.conflict),
            siblings_warn: patch.siblings_warn.unwrap_or(self.siblings_warn),
            siblings_max: patch.siblings_max.unwrap_or(self.siblings_max),
            consistency: patch.consistency.unwrap_or(self.consistency),
        };
        next.validate(cluster_size)?;
        Ok(next)
    }

    /// Checks the rules: `n` in 1 to `cluster_size`; `r`, `w` in 1 to `n`;
    /// `pr` at most `r`, `pw` at most `w` (so both at most `n`);
    /// `siblings_max` at least 1; `siblings_warn` in 1 to `siblings_max`.
    /// Reports the first rule broken.
    pub fn validate(&self, cluster_size: usize) -> Result<(), BucketError> {
        if self.n == 0 || self.n > cluster_size {
            return Err(BucketError::NOutOfRange {
                n: self.n,
                members: cluster_size,
            });
        }
        for (name, value) in [("r", self.r), ("w", self.w)] {
            if value == 0 || value > self.n {
                return Err(BucketError::QuorumOutOfRange {
                    name,
                    value,
                    n: self.n,
                });
            }
        }
        for (name, value, of, limit) in [("pr", self.pr, "r", self.r), ("pw", self.pw, "w", self.w)]
        {
            if value > limit {
                return Err(BucketError::PrimaryOutOfRange {
                    name,
                    value,
                    of,
                    limit,
                });
            }
        }
        if self.siblings_max == 0 {
            return Err(BucketError::SiblingsMaxZero);
        }
        if self.siblings_warn == 0 || self.siblings_warn > self.siblings_max {
            return Err(BucketError::SiblingsWarnOutOfRange {
                warn: self.siblings_warn,
                max: self.siblings_max,
            });
        }
        Ok(())
    }
}

/// The count a quorum parameter means for `n` replicas (unchecked: a count
/// is taken as given, for [`BucketProps::validate`] to judge).
fn quorum_count(q: QuorumParam, n: usize) -> usize {
    match q {
        QuorumParam::One => 1,
        QuorumParam::Quorum => n / 2 + 1,
        QuorumParam::All => n,
        QuorumParam::Count(c) => c as usize,
    }
}

impl BucketPatch {
    /// Parses a user's JSON body, with errors that name the property, what
    /// was given and what is allowed (serde's own messages do not). Accepts
    /// and refuses exactly what the `Deserialize` impl does (a property given
    /// twice included); only the messages differ.
    pub fn from_json(body: &[u8]) -> Result<BucketPatch, BucketError> {
        let Entries(entries) = serde_json::from_slice(body).map_err(|e| {
            BucketError::Malformed(if e.is_data() {
                "the body is not an object".to_string()
            } else {
                e.to_string()
            })
        })?;
        let mut patch = BucketPatch::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &entries {
            if seen.contains(&name.as_str()) {
                return Err(BucketError::DuplicateProperty(name.clone()));
            }
            seen.push(name);
            match name.as_str() {
                "n" => patch.n = count_json("n", value)?,
                "r" => patch.r = quorum_json("r", value)?,
                "w" => patch.w = quorum_json("w", value)?,
                "pr" => patch.pr = quorum_json("pr", value)?,
                "pw" => patch.pw = quorum_json("pw", value)?,
                "conflict" => {
                    patch.conflict = match value {
                        serde_json::Value::Null => None,
                        serde_json::Value::String(s) if s == "siblings" => {
                            Some(ConflictMode::Siblings)
                        }
                        serde_json::Value::String(s) if s == "lww" => Some(ConflictMode::Lww),
                        other => return Err(BucketError::BadConflictMode(other.to_string())),
                    }
                }
                "siblings_warn" => patch.siblings_warn = count_json("siblings_warn", value)?,
                "siblings_max" => patch.siblings_max = count_json("siblings_max", value)?,
                "consistency" => {
                    patch.consistency = match value {
                        serde_json::Value::Null => None,
                        serde_json::Value::String(s) if s == "eventual" => {
                            Some(Consistency::Eventual)
                        }
                        serde_json::Value::String(s) if s == "strong" => Some(Consistency::Strong),
                        other => return Err(BucketError::BadConsistency(other.to_string())),
                    }
                }
                _ => return Err(BucketError::UnknownProperty(name.clone())),
            }
        }
        Ok(patch)
    }
}

/// The members of a JSON object in order, duplicates kept.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry()? {
                    v.push(e);
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// A whole non-negative number, or `null` for "unchanged".
fn count_json(name: &'static str, v: &serde_json::Value) -> Result<Option<usize>, BucketError> {
    match v {
        serde_json::Value::Null => Ok(None),
        _ => v
            .as_u64()
            .and_then(|c| usize::try_from(c).ok())
            .map(Some)
            .ok_or_else(|| BucketError::BadNumber {
                name,
                value: v.to_string(),
            }),
    }
}

/// A quorum: a count or a name, or `null` for "unchanged".
fn quorum_json(
    name: &'static str,
    v: &serde_json::Value,
) -> Result<Option<QuorumParam>, BucketError> {
    let bad = || BucketError::BadQuorum {
        name,
        value: v.to_string(),
    };
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => quorum_name(s).map(Some).ok_or_else(bad),
        _ => v
            .as_u64()
            .and_then(|c| u32::try_from(c).ok())
            .map(|c| Some(QuorumParam::Count(c)))
            .ok_or_else(bad),
    }
}

/// `one`, `quorum`, `all` (numbers come as JSON numbers).
fn quorum_name(s: &str) -> Option<QuorumParam> {
    match s {
        "one" => Some(QuorumParam::One),
        "quorum" => Some(QuorumParam::Quorum),
        "all" => Some(QuorumParam::All),
        _ => None,
    }
}

/// Serde for quorum fields of a [`BucketPatch`]: in human-readable formats
/// (JSON) a number or `"one"`, `"quorum"`, `"all"`; in binary formats
/// (postcard) the derived [`QuorumParam`] encoding.
mod quorum_field {
    use super::*;

    /// A JSON quorum: a count or a name.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Human {
        Count(u32),
        Name(String),
    }

    pub(super) fn serialize<S: Serializer>(
        v: &Option<QuorumParam>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return v.serialize(s);
        }
        match v {
            None => s.serialize_none(),
            Some(QuorumParam::Count(c)) => s.serialize_some(c),
            Some(QuorumParam::One) => s.serialize_some("one"),
            Some(QuorumParam::Quorum) => s.serialize_some("quorum"),
            Some(QuorumParam::All) => s.serialize_some("all"),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<QuorumParam>, D::Error> {
        if !d.is_human_readable() {
            return Option::<QuorumParam>::deserialize(d);
        }
        match Option::<Human>::deserialize(d)? {
            None => Ok(None),
            Some(Human::Count(c)) => Ok(Some(QuorumParam::Count(c))),
            Some(Human::Name(s)) => quorum_name(&s).map(Some).ok_or_else(|| {
                de::Error::custom(format!(
                    "{s:?} is not a quorum: use a whole number or \"one\", \"quorum\", \"all\""
                ))
            }),
        }
    }
}

/// Bucket properties as cluster metadata: which bucket, its properties, and
/// the version that decides between entries for the same bucket made at
/// different nodes. Spread by gossip; every node keeps the entry that
/// [supersedes](BucketEntry::supersedes) all others it received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEntry {
    /// The bucket name.
    pub bucket: Vec<u8>,
    /// Its properties.
    pub props: BucketProps,
    /// When the change was accepted, by the accepting node's HLC.
    pub stamp: Hlc,
    /// The node that accepted the change.
    pub origin: NodeId,
}

impl BucketEntry {
    /// Whether `self` replaces `other` (an entry for the same bucket).
    ///
    /// Orders by `(stamp, origin)`, then, for entries that should never
    /// exist but might (a node that reissued a stamp after losing its clock
    /// state), by bucket name and the encoded properties. This is a strict
    /// total order on distinct entries, so keeping the superseding entry
    /// reaches the same winner on every node whatever the order of arrival,
    /// and an entry never supersedes itself.
    pub fn supersedes(&self, other: &BucketEntry) -> bool {
        let key = |e: &BucketEntry| {
            (
                e.stamp,
                e.origin.clone(),
                e.bucket.clone(),
                postcard::to_stdvec(&e.props).expect("props encoding cannot fail"),
            )
        };
        key(self) > key(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> BucketProps {
        BucketProps::defaults(3, 2, 2, 100)
    }

    fn patch(json: &str) -> Result<BucketPatch, BucketError> {
        BucketPatch::from_json(json.as_bytes())
    }

    fn err(json: &str, members: usize) -> String {
        match patch(json).and_then(|p| base().apply(&p, members)) {
            Ok(p) => panic!("{json} accepted: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid_and_warn_at_a_quarter() {
        let d = base();
        assert_eq!(d.siblings_warn, 25);
        assert_eq!((d.pr, d.pw, d.conflict), (0, 0, ConflictMode::Siblings));
        assert_eq!(d.validate(3), Ok(()));
        assert_eq!(BucketProps::defaults(1, 1, 1, 1).siblings_warn, 1);
        assert_eq!(BucketProps::defaults(1, 1, 1, 3).validate(1), Ok(()));
    }

    #[test]
    fn applies_names_against_the_new_n() {
        let p = patch(
            r#"{"n": 5, "r": "quorum", "w": "all", "pr": "one", "pw": 2, "conflict": "lww"}"#,
        )
        .unwrap();
        let got = base().apply(&p, 5).unwrap();
        assert_eq!((got.n, got.r, got.w, got.pr, got.pw), (5, 3, 5, 1, 2));
        assert_eq!(got.conflict, ConflictMode::Lww);
        assert_eq!(got.siblings_max, 100);
        // An empty patch changes nothing.
        assert_eq!(base().apply(&patch("{}").unwrap(), 3), Ok(base()));
        // null means unchanged.
        assert_eq!(
            base().apply(&patch(r#"{"n": null}"#).unwrap(), 3),
            Ok(base())
        );
    }

    #[test]
    fn messages_say_what_was_wrong_and_what_is_allowed() {
        assert_eq!(
            err(r#"{"n": 0}"#, 5),
            "n = 0 is not allowed: n must be 1 to 5 (the number of members)"
        );
        assert_eq!(
            err(r#"{"n": 4}"#, 3),
            "n = 4 is not allowed: n must be 1 to 3 (the number of members)"
        );
        assert_eq!(
            err(r#"{"r": 4}"#, 5),
            "r = 4 is not allowed: r must be 1 to n = 3, or one, quorum, all"
        );
        assert_eq!(
            err(r#"{"w": 0}"#, 5),
            "w = 0 is not allowed: w must be 1 to n = 3, or one, quorum, all"
        );
        // Shrinking n below r is refused rather than silently changing r.
        assert_eq!(
            err(r#"{"n": 1}"#, 5),
            "r = 2 is not allowed: r must be 1 to n = 1, or one, quorum, all"
        );
        assert_eq!(
            err(r#"{"pr": "all"}"#, 5),
            "pr = 3 is not allowed: pr must be 0 to r = 2 (it counts primaries among those r replies)"
        );
        assert_eq!(
            err(r#"{"pw": 3}"#, 5),
            "pw = 3 is not allowed: pw must be 0 to w = 2 (it counts primaries among those w replies)"
        );
        assert_eq!(
            err(r#"{"siblings_max": 0}"#, 5),
            "siblings_max = 0 is not allowed: siblings_max must be at least 1 (a key always holds at least one value)"
        );
        assert_eq!(
            err(r#"{"siblings_max": 10}"#, 5),
            "siblings_warn = 25 is not allowed: siblings_warn must be 1 to siblings_max = 10"
        );
        assert_eq!(
            err(r#"{"siblings_warn": 0}"#, 5),
            "siblings_warn = 0 is not allowed: siblings_warn must be 1 to siblings_max = 100"
        );
        assert_eq!(
            err(r#"{"conflict": "newest"}"#, 5),
            r#"conflict = "newest" is not allowed: conflict must be "siblings" or "lww""#
        );
        assert_eq!(
            err(r#"{"conflict": 1}"#, 5),
            r#"conflict = 1 is not allowed: conflict must be "siblings" or "lww""#
        );
        assert_eq!(
            err(r#"{"r": "most"}"#, 5),
            r#"r = "most" is not allowed: r must be a whole number or "one", "quorum", "all""#
        );
        assert_eq!(
            err(r#"{"w": -1}"#, 5),
            r#"w = -1 is not allowed: w must be a whole number or "one", "quorum", "all""#
        );
        assert_eq!(
            err(r#"{"n": 2.5}"#, 5),
            "n = 2.5 is not allowed: n must be a whole number"
        );
        assert_eq!(
            err(r#"{"n": "3"}"#, 5),
            r#"n = "3" is not allowed: n must be a whole number"#
        );
        assert_eq!(
            err(r#"{"allow_mult": true}"#, 5),
            r#"unknown bucket property "allow_mult": the properties are n, r, w, pr, pw, conflict, siblings_warn, siblings_max, consistency"#
        );
        assert_eq!(
            err(r#"{"n": 3, "n": 2}"#, 5),
            r#"bucket property "n" is given twice: give each property once"#
        );
        assert!(err("[1, 2]", 5).starts_with("bucket properties must be a JSON object"));
        assert!(err("{\"n\": ", 5).starts_with("bucket properties must be a JSON object"));
        assert!(err("", 5).starts_with("bucket properties must be a JSON object"));
    }

    #[test]
    fn serde_json_agrees_on_the_wire_format() {
        let p = patch(r#"{"r": "quorum", "w": 2, "conflict": "lww"}"#).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""r":"quorum""#), "{json}");
        assert!(json.contains(r#""w":2"#), "{json}");
        assert!(json.contains(r#""conflict":"lww""#), "{json}");
        assert_eq!(serde_json::from_str::<BucketPatch>(&json).unwrap(), p);
        assert!(serde_json::from_str::<BucketPatch>(r#"{"bogus": 1}"#).is_err());
        assert!(serde_json::from_str::<BucketPatch>(r#"{"r": "most"}"#).is_err());
        assert!(serde_json::from_str::<BucketPatch>(r#"{"n": 3, "n": 2}"#).is_err());
        let props = serde_json::to_value(base()).unwrap();
        assert_eq!(props["conflict"], "siblings");
    }

    fn quorum() -> impl Strategy<Value = Option<QuorumParam>> {
        proptest::option::of(prop_oneof![
            Just(QuorumParam::One),
            Just(QuorumParam::Quorum),
            Just(QuorumParam::All),
            (0u32..8).prop_map(QuorumParam::Count),
        ])
    }

    fn patches() -> impl Strategy<Value = BucketPatch> {
        (
            proptest::option::of(0usize..8),
            quorum(),
            quorum(),
            quorum(),
            quorum(),
            proptest::option::of(prop_oneof![
                Just(ConflictMode::Siblings),
                Just(ConflictMode::Lww)
            ]),
            proptest::option::of(0usize..150),
            proptest::option::of(0usize..150),
        )
            .prop_map(|(n, r, w, pr, pw, conflict, siblings_warn, siblings_max)| {
                BucketPatch {
                    n,
                    r,
                    w,
                    pr,
                    pw,
                    conflict,
                    siblings_warn,
                    siblings_max,
                    consistency: None,
                }
            })
    }

    fn entries() -> impl Strategy<Value = Vec<BucketEntry>> {
        proptest::collection::vec(
            (0u64..4, 0u16..3, 0usize..3, 1usize..4, any::<bool>()),
            1..8,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(ms, l, origin, n, lww)| {
                    let mut props = BucketProps::defaults(n, 1, 1, 100);
                    if lww {
                        props.conflict = ConflictMode::Lww;
                    }
                    BucketEntry {
                        bucket: b"b".to_vec(),
                        props,
                        stamp: Hlc::from_parts(ms, l),
                        origin: NodeId::from(format!("n{origin}")),
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn apply_yields_valid_props_or_changes_nothing(p in patches(), members in 1usize..7) {
            let before = base();
            match before.apply(&p, members) {
                Ok(after) => {
                    prop_assert_eq!(after.validate(members), Ok(()));
                    prop_assert!(after.pr <= after.n && after.pw <= after.n);
                    if let Some(n) = p.n { prop_assert_eq!(after.n, n); }
                    if p.conflict.is_none() { prop_assert_eq!(after.conflict, before.conflict); }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            prop_assert_eq!(before, base());
        }

        #[test]
        fn from_json_accepts_what_serde_writes(p in patches()) {
            let json = serde_json::to_vec(&p).unwrap();
            prop_assert_eq!(BucketPatch::from_json(&json), Ok(p.clone()));
            prop_assert_eq!(serde_json::from_slice::<BucketPatch>(&json).unwrap(), p.clone());
            let bin = postcard::to_stdvec(&p).unwrap();
            prop_assert_eq!(postcard::from_bytes::<BucketPatch>(&bin).unwrap(), p);
        }

        #[test]
        fn entries_roundtrip(es in entries()) {
            for e in es {
                let bin = postcard::to_stdvec(&e).unwrap();
                prop_assert_eq!(postcard::from_bytes::<BucketEntry>(&bin).unwrap(), e.clone());
                let json = serde_json::to_vec(&e).unwrap();
                prop_assert_eq!(serde_json::from_slice::<BucketEntry>(&json).unwrap(), e);
            }
        }

        #[test]
        fn every_delivery_order_converges_to_the_same_entry(es in entries(), seed in any::<u64>()) {
            let keep = |order: &[BucketEntry]| {
                let mut cur = order[0].clone();
                for e in &order[1..] {
                    if e.supersedes(&cur) {
                        cur = e.clone();
                    }
                }
                cur
            };
            let want = keep(&es);
            // Deterministic shuffles and the reverse order.
            let mut rev = es.clone();
            rev.reverse();
            prop_assert_eq!(keep(&rev), want.clone());
            let mut s = seed;
            for _ in 0..8 {
                let mut order = es.clone();
                for i in (1..order.len()).rev() {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    order.swap(i, (s >> 33) as usize % (i + 1));
                }
                prop_assert_eq!(keep(&order), want.clone());
            }
            // A strict total order: never both ways, never itself, exactly one
            // way between distinct entries.
            for a in &es {
                prop_assert!(!a.supersedes(a));
                for b in &es {
                    prop_assert!(!(a.supersedes(b) && b.supersedes(a)));
                    if a != b {
                        prop_assert!(a.supersedes(b) || b.supersedes(a));
                    }
                }
            }
        }
    }
}
