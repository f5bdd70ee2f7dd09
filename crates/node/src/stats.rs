//! Counters a node keeps about its own work, exported as metrics.

/// Counters a node keeps about its own work (exported as metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Reads this node coordinated.
    pub gets_coordinated: u64,
    /// Writes (and deletes) this node coordinated.
    pub puts_coordinated: u64,
    /// Requests forwarded to a primary.
    pub forwarded: u64,
    /// Requests that failed for lack of replies.
    pub unavailable: u64,
    /// Requests refused as invalid or too large.
    pub rejected: u64,
    /// Requests refused because too many were pending.
    pub overloaded: u64,
    /// Read-repair writes sent.
    pub read_repairs: u64,
    /// Replica writes applied for peers.
    pub replica_puts: u64,
    /// Storage errors seen.
    pub store_errors: u64,
    /// Writes this node stored as a fallback, with a hint.
    pub hinted_writes: u64,
    /// Hints handed off and confirmed by their primary.
    pub hints_delivered: u64,
    /// Writes refused as a fallback because the hints reached `hints_max`.
    pub hints_refused: u64,
    /// Fallback copies dropped after their last hint was delivered.
    pub handoff_drops: u64,
    /// Writes that left a key with more siblings than its bucket's
    /// `siblings_warn`.
    pub siblings_warned: u64,
    /// Writes and read replies from peers refused before anything was
    /// merged: over the size, sibling or actor limits, malformed, or naming
    /// a primary outside the layout.
    pub peer_refused: u64,
    /// Bucket properties from peers refused: stamped too far ahead of this
    /// node's clock, invalid, or a new bucket past `buckets_max`.
    pub buckets_refused: u64,
    /// Gossip packets refused and dropped: malformed, too large, or from a
    /// stale identity of a peer.
    pub gossip_errors: u64,
}
