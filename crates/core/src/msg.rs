//! What clients ask of a node and what nodes say to each other.
//!
//! These types cross the wire between nodes (postcard-encoded) and are the
//! vocabulary of the sans-IO node's inputs and outputs.

use serde::{Deserialize, Serialize};

use crate::bucket::BucketEntry;
use crate::hash::BucketKey;
use crate::layout::NodeId;
use crate::list::{KeyPage, ListQuery, ReplicaPage};
use crate::params::QuorumParam;
use crate::strong::Condition;
use crate::version::{Dot, Object, Value, VersionVector};

/// A client operation on one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    /// Read the key.
    Get {
        /// Replies to wait for (default: the node's `r`).
        r: Option<QuorumParam>,
        /// How many of the replies must come from primaries (default 0).
        pr: Option<QuorumParam>,
    },
    /// Write a value (or a tombstone, for DELETE).
    Put {
        /// The value; [`Value::Tombstone`] deletes.
        value: Value,
        /// What the client read before; `None` writes a value concurrent with
        /// everything stored (a DELETE without context first reads the key and
        /// deletes what the read returned).
        context: Option<VersionVector>,
        /// Acks to wait for (default: the node's `w`).
        w: Option<QuorumParam>,
        /// How many of the acks must come from primaries (default 0).
        pw: Option<QuorumParam>,
    },
    /// Compare-and-set, in a strong bucket only: write `value` (a tombstone
    /// deletes) only if `condition` holds when the write is applied.
    PutIf {
        /// The value; [`Value::Tombstone`] deletes.
        value: Value,
        /// When it applies.
        condition: Condition,
    },
    /// List the keys of the request's bucket (the request's key is empty):
    /// one page, merged across R replicas of every partition
    /// ([`crate::list`]). Never forwarded; refused on strong buckets.
    List(ListQuery),
    /// An operator's request to the cluster manager (the request's key is
    /// the cluster document's). Never forwarded: the node that takes it
    /// reads and writes the document through its consensus group.
    Cluster(crate::cluster::ClusterOp),
}

/// A client request, as received by any node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// The key.
    pub key: BucketKey,
    /// What to do.
    pub op: ClientOp,
    /// How long the coordinator waits for replies, in ms (default: the node's).
    pub timeout_ms: Option<u64>,
}

/// The outcome of a client request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientReply {
    /// A write met its quorum; the context covers the new value.
    Written {
        /// Context to hand back on the next write.
        context: VersionVector,
        /// The dot naming this write; `None` when a DELETE found nothing to
        /// delete and wrote nothing. (History checkers use it.)
        dot: Option<Dot>,
        /// How many of the acks came from fallbacks standing in for
        /// unreachable primaries (sloppy quorum). While those hold the write
        /// as hints, a read of the primaries alone may not see it yet.
        fallback_acks: usize,
    },
    /// A read met its quorum: the merged state of the replies.
    Read {
        /// The merged object (may be empty or all tombstones: absent).
        object: Object,
        /// How many of the replies came from fallbacks (sloppy quorum): a
        /// read that counted them may miss a write its primaries had.
        fallback_replies: usize,
    },
    /// The request failed.
    Error(ClientError),
    /// The answer of a request on a strong bucket, with the node that led
    /// the key's consensus group when it was answered.
    Strong {
        /// The group's leader.
        leader: NodeId,
        /// The answer: [`ClientReply::Written`], [`ClientReply::Read`], or
        /// an error.
        reply: Box<ClientReply>,
    },
    /// A page of keys ([`ClientOp::List`]).
    Keys(KeyPage),
    /// The cluster document after a [`ClientOp::Cluster`] op.
    Cluster(Box<crate::cluster::ClusterState>),
}

/// Why a client request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientError {
    /// Fewer than the required replies arrived before the deadline. For a
    /// write, the value may still be applied on the replicas that acked.
    Unavailable {
        /// Replies needed.
        required: usize,
        /// Replies received.
        acks: usize,
    },
    /// Enough replies arrived, but fewer than the request's PR/PW came from
    /// the key's primaries (the rest came from fallbacks).
    PrimariesUnavailable {
        /// Primary replies needed (PR or PW).
        required: usize,
        /// Primary replies received.
        acks: usize,
    },
    /// A parameter is invalid; nothing was changed.
    BadRequest(String),
    /// A key, bucket or value is over its limit; nothing was changed.
    TooLarge(String),
    /// The node has too many requests in flight; nothing was changed.
    Overloaded(String),
    /// The node failed to store or read; the message says what.
    Internal(String),
    /// A compare-and-set's condition did not hold; nothing was written.
    PreconditionFailed {
        /// The key's current context (names its version).
        current: VersionVector,
    },
    /// The key's consensus group has no majority (too few voters reachable,
    /// or no leader could be elected before the deadline). The request was
    /// not proposed: nothing was changed.
    NoQuorum {
        /// What this node saw.
        reason: String,
    },
    /// The request was proposed (or handed to a node that may have proposed
    /// it) and no answer came before the deadline: it may have been applied
    /// or not. A read of the key tells.
    OutcomeUnknown {
        /// What happened.
        reason: String,
    },
    /// The request conflicts with the cluster's state (a stale plan, a
    /// layout change in progress); nothing was changed.
    Conflict(String),
    /// A listing got fewer than R replies before the deadline from some
    /// partitions' replicas; nothing was changed.
    PartitionsUnavailable {
        /// Replies needed from each partition.
        required: usize,
        /// `(partition, replies received)` of each partition short of them.
        short: Vec<(u32, usize)>,
    },
}

/// A message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// Consensus messages of strong buckets' groups, batched per peer:
    /// `(group, raft message bytes)`.
    Raft {
        /// The messages, in order.
        msgs: Vec<(u32, Vec<u8>)>,
    },
    /// "Lead this strong request, or pass it to the leader": sent to the
    /// node believed to lead the key's group.
    StrongForward {
        /// The sender's id for it, echoed in the reply.
        fwd_id: u64,
        /// How many nodes passed it on before (a bound stops loops).
        hops: u8,
        /// The request.
        request: ClientRequest,
    },
    /// The answer to a [`PeerMsg::StrongForward`].
    StrongReply {
        /// The sender's id, from the forward.
        fwd_id: u64,
        /// The answer.
        reply: ClientReply,
    },
    /// "Coordinate this request for me": sent by a node that is not a primary.
    Forward {
        /// Id chosen by the sender, echoed in the reply.
        fwd_id: u64,
        /// The client's request.
        request: ClientRequest,
    },
    /// The outcome of a forwarded request.
    ForwardReply {
        /// The sender's id for the request.
        fwd_id: u64,
        /// The outcome.
        reply: ClientReply,
    },
    /// "Merge this state of the key into yours."
    ReplicaPut {
        /// Id chosen by the sender, echoed in the ack; 0 asks for no ack
        /// (read repair).
        req_id: u64,
        /// The key.
        key: BucketKey,
        /// The coordinator's state of the key after the write.
        object: Object,
        /// Set when the receiver is a fallback: the unreachable primary it
        /// stands in for. The receiver keeps a durable hint and hands the
        /// state off when that primary is back.
        stands_in_for: Option<NodeId>,
        /// When the coordinator sent it, on its wall clock in µs (0: not
        /// measured), echoed in the ack ([`Stamps::req_sent_us`]).
        sent_us: u64,
    },
    /// The replica merged and stored the object (`ok`), or failed to.
    ReplicaPutAck {
        /// The coordinator's id for the write.
        req_id: u64,
        /// Whether it was stored.
        ok: bool,
        /// When the replica received the write and sent this ack, on its
        /// wall clock: the coordinator measures the W and A legs with them
        /// ([`crate::legs`]).
        stamps: Stamps,
    },
    /// "Send me your state of the key."
    ReplicaGet {
        /// Id chosen by the sender, echoed in the reply.
        req_id: u64,
        /// The key.
        key: BucketKey,
        /// When the coordinator sent it, on its wall clock in µs (0: not
        /// measured), echoed in the reply ([`Stamps::req_sent_us`]).
        sent_us: u64,
    },
    /// A replica's state of the key (empty when it has none), or `None` when it
    /// failed to read.
    ReplicaGetReply {
        /// The coordinator's id for the read.
        req_id: u64,
        /// The state, if it could be read.
        object: Option<Object>,
        /// When the replica received the read and sent this reply, on its
        /// wall clock: the coordinator measures the R and S legs with them.
        stamps: Stamps,
    },
    /// A bucket's properties as set somewhere in the cluster: adopt them if
    /// they supersede what this node has.
    Bucket {
        /// The versioned properties.
        entry: BucketEntry,
    },
    /// One packet of the gossip membership protocol (SWIM, foca): opaque
    /// here, decoded and checked by the node's membership module. Rides the
    /// same links as everything else so that no second port is needed.
    Gossip {
        /// The encoded gossip packet.
        data: Vec<u8>,
    },
    /// A fallback hands a hinted write back to its primary: "merge this
    /// state of the key into yours", acked with [`PeerMsg::ReplicaPutAck`]
    /// like [`PeerMsg::ReplicaPut`], but only once the write is on the
    /// primary's disk (fsync) whatever its sync mode: on that ack the
    /// fallback drops its hint and its copy, so until then the fallback's
    /// copy is the durable one. (Last in the enum: the encoding of the
    /// messages before it is unchanged.)
    HandoffPut {
        /// Id chosen by the sender, echoed in the ack.
        req_id: u64,
        /// The key.
        key: BucketKey,
        /// The fallback's state of the key.
        object: Object,
    },
    /// Anti-entropy, first step: "here is my tree's root for this
    /// partition" (one hash; answered with an empty [`PeerMsg::AaeSegments`]
    /// when equal, else [`PeerMsg::AaeRootDiffers`]), then "here are my
    /// branch hashes; which of yours differ?" (answered with
    /// [`PeerMsg::AaeSegments`]).
    AaeBranches {
        /// The exchange's id, chosen by the sender, echoed in the answers.
        xid: u64,
        /// The partition both hold as primaries.
        partition: u32,
        /// The replicas per key of the buckets compared (each `n` has
        /// its own tree: a key lives on the first `n` of its preference
        /// list).
        n: u32,
        /// The sender's root (one hash), or its branch hashes
        /// ([`crate::aae::BRANCHES`] of them).
        branches: Vec<u64>,
    },
    /// The receiver's segment hashes of each branch that differs from the
    /// sender's (empty: the trees are equal, the exchange is over).
    AaeSegments {
        /// The exchange's id.
        xid: u64,
        /// The partition.
        partition: u32,
        /// The replicas per key of the buckets compared (each `n` has
        /// its own tree: a key lives on the first `n` of its preference
        /// list).
        n: u32,
        /// `(branch, its segment hashes)` for each differing branch.
        segments: Vec<(u32, Vec<u64>)>,
    },
    /// The `(key, version digest)` pairs the sender holds in the segments
    /// that differ, for the receiver to compare with its own. Answered with
    /// the receiver's objects for the keys the sender lacks or holds
    /// otherwise ([`PeerMsg::AaePut`]) and a [`PeerMsg::AaeWant`].
    AaeKeys {
        /// The exchange's id.
        xid: u64,
        /// The partition.
        partition: u32,
        /// The replicas per key of the buckets compared (each `n` has
        /// its own tree: a key lives on the first `n` of its preference
        /// list).
        n: u32,
        /// The segments compared.
        segments: Vec<u32>,
        /// The sender's pairs in those segments.
        keys: Vec<(BucketKey, u64)>,
    },
    /// "Send me your state of these keys": the keys of the compared
    /// segments that the sender lacks or holds otherwise. Ends a round.
    AaeWant {
        /// The exchange's id.
        xid: u64,
        /// The partition.
        partition: u32,
        /// The replicas per key of the buckets compared (each `n` has
        /// its own tree: a key lives on the first `n` of its preference
        /// list).
        n: u32,
        /// The keys.
        keys: Vec<BucketKey>,
    },
    /// Anti-entropy's repair of one key: "merge this state into yours".
    AaePut {
        /// The key.
        key: BucketKey,
        /// The sender's state of it.
        object: Object,
    },
    /// "Do you hold exactly these tombstones?" Asked by the replica that
    /// leads the purge of a partition's old tombstones, of every other
    /// replica; answered with [`PeerMsg::PurgeHave`].
    PurgeCheck {
        /// The purge round's id.
        xid: u64,
        /// The partition.
        partition: u32,
        /// The replicas per key of the tree the keys are in.
        n: u32,
        /// The tombstones: `(key, digest of the tombstone state)`.
        keys: Vec<(BucketKey, u64)>,
    },
    /// The keys of a [`PeerMsg::PurgeCheck`] this replica holds in exactly
    /// the state named.
    PurgeHave {
        /// The purge round's id.
        xid: u64,
        /// The keys.
        keys: Vec<BucketKey>,
    },
    /// The answer to an [`PeerMsg::AaeBranches`] that carried only the
    /// sender's root: the roots differ; send the branches.
    AaeRootDiffers {
        /// The exchange's id.
        xid: u64,
    },
    /// "Every replica holds these tombstones and their grace period is
    /// over: remove each that you still hold in exactly this state."
    Purge {
        /// The partition.
        partition: u32,
        /// The replicas per key.
        n: u32,
        /// `(key, digest)` of each tombstone to remove.
        keys: Vec<(BucketKey, u64)>,
    },
    /// "List your keys of this bucket in this partition": a listing's
    /// question to a replica, answered with [`PeerMsg::ListReply`].
    List {
        /// Id chosen by the sender, echoed in the reply.
        req_id: u64,
        /// The partition (the receiver must be one of its primaries).
        partition: u32,
        /// The bucket.
        bucket: bytes::Bytes,
        /// Prefix, `after` and `limit` (`r` is the sender's business).
        query: ListQuery,
    },
    /// A replica's keys for a [`PeerMsg::List`], or `None` when its store
    /// failed to read.
    ListReply {
        /// The sender's id for the listing.
        req_id: u64,
        /// The partition asked.
        partition: u32,
        /// The page.
        page: Option<ReplicaPage>,
    },
    /// "The cluster document's newest version I know is this": sent to a
    /// peer that is reachable again, in case it missed the gossip.
    ClusterVersion {
        /// The version.
        version: u64,
    },
    /// "Send me the cluster document you hold": to a peer that announced a
    /// newer version than ours.
    ClusterFetch,
    /// The cluster document the sender holds: its version and encoding
    /// ([`crate::cluster::ClusterDoc::to_bytes`]). A committed version
    /// names one document, so any holder's copy is as good as the group's.
    ClusterDoc {
        /// The version.
        version: u64,
        /// The encoded document.
        doc: Vec<u8>,
    },
}

// (Bucket properties travel as `PeerMsg::Bucket`, below the replica messages.)

/// A replica's wall-clock stamps on its answer to a coordinator, in µs since
/// the Unix epoch (0: not stamped). Untrusted like everything from a peer:
/// the coordinator ignores stamps out of order and caps each leg
/// ([`crate::legs::LegHistograms::record_reply`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamps {
    /// The request's `sent_us`, echoed: the coordinator keeps no state
    /// for it, so an ack that comes after the write was answered (W acks
    /// were enough) is measured too.
    pub req_sent_us: u64,
    /// When the request arrived.
    pub recv_us: u64,
    /// When the answer was sent.
    pub sent_us: u64,
}

/// What an envelope is allocated with before encoding: a write or a read
/// reply of a small value, with its version vector, fits.
const ENVELOPE_BYTES_GUESS: usize = 512;

/// A peer message with its sender, as framed on a node-to-node connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub from: NodeId,
    /// The message.
    pub msg: PeerMsg,
}

impl Envelope {
    /// Encodes for a frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Room for a typical message at once: grown from empty, the buffer
        // was reallocated and copied five or six times per message.
        let buf = Vec::with_capacity(ENVELOPE_BYTES_GUESS);
        postcard::to_extend(self, buf).expect("envelope encoding cannot fail")
    }

    /// Decodes a frame; a malformed one is an error, never a panic.
    pub fn from_bytes(b: &[u8]) -> Result<Envelope, postcard::Error> {
        postcard::from_bytes(b)
    }
}
