//! What goes into the node and what comes out: the whole interface between
//! the sans-IO node and the runtime that drives it.

use ringkv_core::NodeId;
use ringkv_core::msg::{ClientReply, ClientRequest, PeerMsg};

/// Id of a client request, chosen by the runtime; echoed in its [`Output::Reply`].
pub type ClientId = u64;

/// A timer the node asked for with [`Output::SetTimer`], echoed in
/// [`Input::Timer`]. Each sub-machine has its own kind, so ids never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// The deadline of a request this node coordinates or forwarded (by its
    /// request id).
    Request(u64),
    /// The hinted-handoff job's periodic tick.
    Handoff,
    /// A timer of the gossip membership (by its token).
    Gossip(u64),
    /// The deadline of a request on a strong bucket (by its request id).
    Strong(u64),
    /// The consensus groups' tick.
    RaftTick,
    /// The anti-entropy job's tick.
    Aae,
    /// The deadline of a key listing this node coordinates (by its id).
    List(u64),
    /// The cluster manager's periodic tick: tell a peer the newest
    /// document version, fetch a newer one heard of.
    Manager,
}

/// Something that happened to the node.
#[derive(Clone, Debug)]
pub enum Input {
    /// A client request arrived.
    Client {
        /// The runtime's id for it.
        client_id: ClientId,
        /// The request.
        request: ClientRequest,
    },
    /// A peer sent a message.
    Peer {
        /// The sender.
        from: NodeId,
        /// The message.
        msg: PeerMsg,
    },
    /// A timer set by [`Output::SetTimer`] fired.
    Timer(Timer),
    /// The transport reached a peer (connected) or lost it.
    PeerStatus {
        /// The peer.
        peer: NodeId,
        /// Whether it is reachable now.
        up: bool,
    },
}

/// Something the runtime must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a message to a peer (best effort: it may be lost).
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        msg: PeerMsg,
    },
    /// Answer a client request.
    Reply {
        /// The request.
        client_id: ClientId,
        /// The answer.
        reply: ClientReply,
    },
    /// Deliver [`Input::Timer`] with `id` at time `at_ms` (or later).
    SetTimer {
        /// Echoed back.
        id: Timer,
        /// When, on the clock `handle` is given.
        at_ms: u64,
    },
    /// Make every write of this batch durable on disk (fsync), not only
    /// flushed to the operating system, before performing any of the
    /// batch's other outputs, whatever the sync mode. Emitted with the ack
    /// of a [`PeerMsg::HandoffPut`]: the fallback drops its copy on it.
    Sync,
    /// Send a message to an RPC address whose node id is not known yet
    /// (gossip join announces for `--join`). Best effort, like
    /// [`Output::Send`]; the receiver learns the sender's id from the
    /// connection's hello.
    SendAddr {
        /// The peer's RPC address (`host:port`).
        addr: String,
        /// The message.
        msg: PeerMsg,
    },
    /// Perform the inner output at once, before this batch's writes are
    /// made durable: it does not depend on them. Raft messages that promise
    /// nothing about what was persisted (a leader's appends and heartbeats),
    /// and answers of strong requests in groups of several voters (an entry
    /// commits only once a follower's ack arrives, in a later batch, after
    /// this one's fsync; a one-voter group answers without it). Saves a
    /// strong write an fsync of wait.
    Now(Box<Output>),
    /// Gossip told us where `peer` listens (a member appeared or its info
    /// changed). The runtime makes sure it can [`Output::Send`] to it: peers
    /// outside the layout are learned this way. Emitted before any `Send` of
    /// the same batch that may need it.
    PeerAddr {
        /// The member.
        peer: NodeId,
        /// Its RPC address.
        rpc_addr: String,
    },
}

impl Output {
    /// The output itself, out of an [`Output::Now`] (for drivers that make
    /// no difference between the two).
    pub fn unnest(self) -> Output {
        match self {
            Output::Now(inner) => inner.unnest(),
            other => other,
        }
    }
}
