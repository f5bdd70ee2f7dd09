//! The stable hash of (bucket, key) and the partition it maps to.
//!
//! The hash decides where every key lives, so it must never change between
//! platforms or releases: it is xxh3-64 (one-shot, unseeded, fixed by the xxHash
//! spec) over a length-prefixed encoding of bucket and key, pinned by golden
//! vectors in the tests below.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// A 64-bit position on the ring.
pub type KeyHash = u64;

/// Index of a partition: `0..ring_size`.
pub type PartitionId = u32;

/// Smallest allowed ring size.
pub const RING_SIZE_MIN: u32 = 8;
/// Largest allowed ring size.
pub const RING_SIZE_MAX: u32 = 4096;

/// The ring position of `key` in `bucket`.
///
/// The bucket is prefixed with its length so that (`"ab"`, `"c"`) and
/// (`"a"`, `"bc"`) hash differently.
pub fn key_hash(bucket: &[u8], key: &[u8]) -> KeyHash {
    let mut buf = Vec::with_capacity(8 + bucket.len() + key.len());
    buf.extend_from_slice(&(bucket.len() as u64).to_be_bytes());
    buf.extend_from_slice(bucket);
    buf.extend_from_slice(key);
    xxh3_64(&buf)
}

/// The partition a hash falls in: its top `log2(ring_size)` bits.
///
/// `ring_size` must be a power of two in `RING_SIZE_MIN..=RING_SIZE_MAX`
/// (checked by [`crate::Layout`] when a layout is built).
pub fn partition_of(hash: KeyHash, ring_size: u32) -> PartitionId {
    debug_assert!(ring_size.is_power_of_two());
    let bits = ring_size.trailing_zeros();
    if bits == 0 {
        return 0;
    }
    (hash >> (64 - bits)) as PartitionId
}

/// A key addressed by bucket and key bytes, with its hash computed once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BucketKey {
    /// Bucket name.
    pub bucket: bytes::Bytes,
    /// Key bytes (any bytes).
    pub key: bytes::Bytes,
}

impl BucketKey {
    /// A bucket-qualified key.
    pub fn new(bucket: impl Into<bytes::Bytes>, key: impl Into<bytes::Bytes>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// The key's position on the ring.
    pub fn hash(&self) -> KeyHash {
        key_hash(&self.bucket, &self.key)
    }

    /// The key's partition in a ring of `ring_size` partitions.
    pub fn partition(&self, ring_size: u32) -> PartitionId {
        partition_of(self.hash(), ring_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xxh3_matches_reference_vectors() {
        // Published xxh3_64 values for the empty input and "a" (xxHash test suite).
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(xxh3_64(b"a"), 0xE6C6_32B6_1E96_4E1F);
    }

    #[test]
    fn key_hash_golden_vectors() {
        // Pinned: if these change, every stored key moves partition.
        assert_eq!(key_hash(b"default", b"k"), 10665251321746282778);
        assert_eq!(key_hash(b"carts", b"user/42"), GOLDEN_CARTS);
        assert_eq!(key_hash(b"", b""), GOLDEN_EMPTY);
    }

    const GOLDEN_CARTS: u64 = 18167893149561804574;
    const GOLDEN_EMPTY: u64 = 14374147212387527897;

    #[test]
    fn bucket_boundary_matters() {
        assert_ne!(key_hash(b"ab", b"c"), key_hash(b"a", b"bc"));
    }

    #[test]
    fn partition_uses_top_bits() {
        assert_eq!(partition_of(u64::MAX, 64), 63);
        assert_eq!(partition_of(0, 64), 0);
        assert_eq!(partition_of(1 << 63, 8), 4);
    }

    proptest! {
        #[test]
        fn partition_in_range(h in any::<u64>(), bits in 3u32..=12) {
            let q = 1u32 << bits;
            prop_assert!(partition_of(h, q) < q);
        }
    }
}
