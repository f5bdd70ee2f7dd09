//! Counters a node keeps about its own work, exported as metrics.

/// Counters a node keeps about its own work (exported as metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Reads this node coordinated.
    pub gets_coordinated: u64,
    /// Writes (and deletes) this node coordinated.
    pub puts_coordinated: u64,
    /// Key listings (pages) this node coordinated.
    pub lists_coordinated: u64,
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
    /// Anti-entropy exchanges this node started (as their leader).
    pub aae_exchanges: u64,
    /// Exchanges that ended with equal trees.
    pub aae_exchanges_in_sync: u64,
    /// Exchanges that still differed after `rounds_max` rounds (queued
    /// again by the next sweep).
    pub aae_rounds_exhausted: u64,
    /// `(key, digest)` pairs compared, as the responder of an exchange.
    pub aae_keys_compared: u64,
    /// Keys this node sent to a peer that lacked them or held them otherwise.
    pub aae_keys_sent: u64,
    /// Keys a peer's anti-entropy send changed here: the repairs.
    pub aae_keys_repaired: u64,
    /// Payload bytes this node sent for anti-entropy: tree hashes, key
    /// lists and objects.
    pub aae_bytes_sent: u64,
    /// Trees built by a scan of a partition.
    pub aae_tree_builds: u64,
    /// Anti-entropy messages refused as malformed or misaddressed.
    pub aae_refused: u64,
    /// Tombstones this node removed (every replica held them and their
    /// grace period was over).
    pub tombstones_purged: u64,
}
