//! The opaque context token: a version vector a client got from a read and
//! hands back on its next write.
//!
//! Format: base64url (no padding) of
//! `format byte || key tag || postcard(vv) || checksum`, where the key tag is
//! the low 32 bits of the key's ring hash and the checksum the low 32 bits of
//! xxh3-64 of the bytes before it. A token mangled in transit is rejected
//! instead of silently meaning something else, and a token read from one key
//! and handed to a write of another is rejected too: its version vector would
//! otherwise claim writes this key never saw, and a later write with such a
//! dot would vanish.
//!
//! The checksum is not a signature: a client can build a token by hand. A
//! coordinator refuses one that claims writes of its own the key lacks, and
//! one that would bring the key's version vector past `Limits::actors_max`
//! actors, so a forged token cannot grow a key's metadata without bound.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use xxhash_rust::xxh3::xxh3_64;

use crate::version::VersionVector;

/// Format byte of the current token layout.
const FORMAT_V1: u8 = 1;
/// Bytes of the key tag.
const TAG_BYTES: usize = 4;
/// Longest token accepted, in characters (a vector of ~200 actors).
pub const TOKEN_LEN_MAX: usize = 8 * 1024;

/// A decoded context.
pub type Context = VersionVector;

/// Why a context token was rejected. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The token is longer than any context we hand out.
    #[error(
        "context token is {0} characters, more than the {TOKEN_LEN_MAX} allowed; pass the X-Ringkv-Context value of a read unchanged"
    )]
    TooLong(usize),
    /// Not base64url.
    #[error("context token is not base64url; pass the X-Ringkv-Context value of a read unchanged")]
    NotBase64,
    /// Too short to hold a format byte and checksum.
    #[error("context token is truncated; pass the X-Ringkv-Context value of a read unchanged")]
    Truncated,
    /// The checksum does not match: the token was altered.
    #[error(
        "context token is corrupted (checksum mismatch); pass the X-Ringkv-Context value of a read unchanged"
    )]
    Corrupted,
    /// Made by a newer ringkv.
    #[error(
        "context token has format {0}, which this node does not know; upgrade the node or read the key again"
    )]
    UnknownFormat(u8),
    /// The payload does not decode.
    #[error(
        "context token payload does not decode; pass the X-Ringkv-Context value of a read unchanged"
    )]
    BadPayload,
    /// The token came from a read of another key.
    #[error(
        "context token belongs to another key; pass the X-Ringkv-Context of a read of this same key"
    )]
    OtherKey,
}

/// The tag binding a token to the key with ring hash `key_hash`.
fn tag(key_hash: u64) -> [u8; TAG_BYTES] {
    (key_hash as u32).to_le_bytes()
}

/// Encodes a version vector read from the key with ring hash `key_hash`
/// (see [`crate::hash::key_hash`]).
pub fn encode(vv: &VersionVector, key_hash: u64) -> String {
    // Room for the header, a few actors and the checksum without regrowing.
    let mut buf = Vec::with_capacity(64);
    buf.push(FORMAT_V1);
    buf.extend_from_slice(&tag(key_hash));
    let mut buf = postcard::to_extend(vv, buf).expect("writing to a Vec cannot fail");
    let sum = xxh3_64(&buf) as u32;
    buf.extend_from_slice(&sum.to_le_bytes());
    URL_SAFE_NO_PAD.encode(buf)
}

/// Decodes a token made by [`encode`] for the same key.
pub fn decode(token: &str, key_hash: u64) -> Result<VersionVector, ContextError> {
    if token.len() > TOKEN_LEN_MAX {
        return Err(ContextError::TooLong(token.len()));
    }
    let buf = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| ContextError::NotBase64)?;
    if buf.len() < 1 + TAG_BYTES + 4 {
        return Err(ContextError::Truncated);
    }
    let (body, sum) = buf.split_at(buf.len() - 4);
    let want = u32::from_le_bytes(sum.try_into().expect("4 bytes"));
    if xxh3_64(body) as u32 != want {
        return Err(ContextError::Corrupted);
    }
    if body[0] != FORMAT_V1 {
        return Err(ContextError::UnknownFormat(body[0]));
    }
    if body[1..1 + TAG_BYTES] != tag(key_hash) {
        return Err(ContextError::OtherKey);
    }
    let (vv, rest): (VersionVector, &[u8]) =
        postcard::take_from_bytes(&body[1 + TAG_BYTES..]).map_err(|_| ContextError::BadPayload)?;
    if !rest.is_empty() {
        return Err(ContextError::BadPayload);
    }
    Ok(vv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::NodeId;
    use crate::version::{Actor, Dot};
    use proptest::prelude::*;

    fn vv_strategy() -> impl Strategy<Value = VersionVector> {
        proptest::collection::vec(("[a-z0-9]{1,8}", any::<u32>(), 1u64..1_000_000), 0..8).prop_map(
            |entries| {
                let mut vv = VersionVector::new();
                for (n, inc, c) in entries {
                    vv.add(&Dot {
                        actor: Actor {
                            node: NodeId::from(n),
                            incarnation: inc,
                        },
                        counter: c,
                    });
                }
                vv
            },
        )
    }

    proptest! {
        #[test]
        fn roundtrips(vv in vv_strategy()) {
            prop_assert_eq!(decode(&encode(&vv, 42), 42).unwrap(), vv);
        }

        #[test]
        fn truncated_is_rejected(vv in vv_strategy(), cut in 1usize..64) {
            let t = encode(&vv, 42);
            let cut = cut.min(t.len());
            prop_assert!(decode(&t[..t.len() - cut], 42).is_err());
        }

        #[test]
        fn corrupted_is_rejected(vv in vv_strategy(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let t = encode(&vv, 42);
            let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
            let i = pos.index(raw.len());
            raw[i] ^= 1 << bit;
            prop_assert!(decode(&URL_SAFE_NO_PAD.encode(raw), 42).is_err());
        }

        #[test]
        fn garbage_never_panics(s in "\\PC{0,200}") {
            let _ = decode(&s, 42);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(decode("!!!", 1), Err(ContextError::NotBase64));
        assert_eq!(decode("AAE", 1), Err(ContextError::Truncated));
        let t = encode(&VersionVector::new(), 7);
        assert_eq!(decode(&t, 8), Err(ContextError::OtherKey));
        assert_eq!(decode(&t, 7), Ok(VersionVector::new()));
        assert_eq!(
            decode(&"A".repeat(TOKEN_LEN_MAX + 1), 1),
            Err(ContextError::TooLong(TOKEN_LEN_MAX + 1))
        );
    }
}
