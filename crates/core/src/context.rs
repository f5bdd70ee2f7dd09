//! The opaque context token: a version vector a client got from a read and
//! hands back on its next write, authenticated with a keyed MAC.
//!
//! Format: base64url (no padding) of
//! `format byte || key tag || postcard(vv) || MAC`, where the key tag is the
//! low 32 bits of the key's ring hash and the MAC the first 16 bytes of
//! BLAKE3 in keyed mode, under the cluster secret, of everything before it.
//!
//! Why a MAC: a context names writes of other nodes' actors, and the node
//! that coordinates a write can only check its own actor's counter. A forged
//! token claiming counter 2^64-1 for another node's actor would make that
//! node's next dot on the key impossible (or, with wrapping arithmetic, one
//! the key already covers, so a later acknowledged write would vanish). With
//! the MAC only tokens a node of the cluster made are accepted; a token
//! mangled in transit, truncated, or read from another key (the tag) is
//! refused with a clear error and changes nothing.
//!
//! Why BLAKE3's keyed mode rather than HMAC-SHA256: it is a MAC by design
//! (one pass, no inner/outer construction), it takes exactly the 32-byte
//! cluster secret as its key, and on a token of ~60 bytes it is one
//! compression call where HMAC-SHA256 is four; every key request verifies
//! one token and makes one. The tag is compared in constant time.
//!
//! Keys rotate without downtime: [`ContextKeys`] holds a list of keys, the
//! first signs and every one verifies (see README.md, "Trust model").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::layout::NODE_ID_LEN_MAX;
use crate::version::VersionVector;

/// Format byte of tokens made before contexts were signed (a checksum only).
const FORMAT_UNSIGNED: u8 = 1;
/// Format byte of the current token layout (MAC under the cluster secret).
const FORMAT_V2: u8 = 2;
/// Bytes of the key tag.
const TAG_BYTES: usize = 4;
/// Bytes of the MAC kept in a token (BLAKE3 output truncated to 128 bits).
pub const MAC_BYTES: usize = 16;
/// Bytes of a context key (the cluster secret).
pub const KEY_BYTES: usize = 32;
/// The context made for the well-known key of clusters run without a
/// secret (`--insecure`): anyone can make tokens under it.
const INSECURE_KEY_CONTEXT: &str = "ringkv 2026-12 well-known insecure context key";

/// A decoded context.
pub type Context = VersionVector;

/// Why a context token was rejected. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The token is longer than any context this node hands out.
    #[error(
        "context token is {len} characters, more than the {max} allowed; pass the X-Ringkv-Context value of a read unchanged"
    )]
    TooLong {
        /// Its length.
        len: usize,
        /// The longest accepted.
        max: usize,
    },
    /// Not base64url.
    #[error("context token is not base64url; pass the X-Ringkv-Context value of a read unchanged")]
    NotBase64,
    /// Too short to hold a format byte, key tag and MAC.
    #[error("context token is truncated; pass the X-Ringkv-Context value of a read unchanged")]
    Truncated,
    /// The MAC does not match under any key this node has: the token was
    /// altered or forged, or signed under a cluster secret rotated out.
    #[error(
        "context token failed its authentication check (altered, forged, or signed with a cluster secret this node no longer accepts); pass the X-Ringkv-Context value of a read unchanged, or read the key again"
    )]
    BadMac,
    /// Made by a ringkv from before contexts were signed.
    #[error(
        "context token is unsigned (made by an older ringkv); read the key again for a current context"
    )]
    Unsigned,
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

/// Why a cluster secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// A line is not 64 hex digits.
    #[error(
        "line {line} is not a secret: expected 64 hex digits (32 bytes), as `ringkv cert init` writes"
    )]
    NotHex {
        /// 1-based line number.
        line: usize,
    },
    /// No secret at all.
    #[error("no secret in the file: expected a line of 64 hex digits (32 bytes)")]
    Empty,
}

/// The keys of context MACs: the first signs, every one verifies (a
/// rotation keeps the previous key here for a while). Also knows the
/// longest token this node accepts, so that it accepts every token it makes.
#[derive(Clone)]
pub struct ContextKeys {
    keys: Vec<[u8; KEY_BYTES]>,
    insecure: bool,
    token_len_max: usize,
}

impl std::fmt::Debug for ContextKeys {
    /// Never prints a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextKeys")
            .field("keys", &self.keys.len())
            .field("insecure", &self.insecure)
            .field("token_len_max", &self.token_len_max)
            .finish()
    }
}

impl ContextKeys {
    /// Keys from a signing key and earlier keys that still verify.
    pub fn new(signing: [u8; KEY_BYTES], previous: Vec<[u8; KEY_BYTES]>) -> Self {
        let mut keys = vec![signing];
        keys.extend(previous);
        ContextKeys {
            keys,
            insecure: false,
            token_len_max: token_len_max(crate::params::Limits::default().actors_max),
        }
    }

    /// The fixed, well-known key of a cluster run without a secret
    /// (`--insecure`): tokens are then checked for mistakes, not for forgery.
    pub fn insecure() -> Self {
        ContextKeys {
            insecure: true,
            ..Self::new(blake3::derive_key(INSECURE_KEY_CONTEXT, b""), Vec::new())
        }
    }

    /// Keys from the text of secret files, in order: each non-blank line
    /// (`#` starts a comment) is a key of 64 hex digits; the first key signs.
    pub fn from_hex(texts: &[&str]) -> Result<Self, SecretError> {
        let mut keys = Vec::new();
        for text in texts {
            keys.extend(parse_hex_keys(text)?);
        }
        let mut it = keys.into_iter();
        let signing = it.next().ok_or(SecretError::Empty)?;
        Ok(Self::new(signing, it.collect()))
    }

    /// Sets the longest token accepted to the longest this node can make
    /// for a version vector of the limits' size (see [`token_len_max`]).
    pub fn with_actors_max(mut self, actors_max: usize) -> Self {
        self.token_len_max = token_len_max(actors_max);
        self
    }

    /// Whether this is the well-known key of [`ContextKeys::insecure`].
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// How many keys verify (the signing key included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: there is at least the signing key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The longest token accepted, in characters.
    pub fn token_len_max(&self) -> usize {
        self.token_len_max
    }
}

/// The keys in the text of a secret file.
fn parse_hex_keys(text: &str) -> Result<Vec<[u8; KEY_BYTES]>, SecretError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = SecretError::NotHex { line: i + 1 };
        if line.len() != 2 * KEY_BYTES || !line.is_ascii() {
            return Err(bad);
        }
        let mut key = [0u8; KEY_BYTES];
        for (j, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&line[2 * j..2 * j + 2], 16).map_err(|_| bad.clone())?;
        }
        keys.push(key);
    }
    Ok(keys)
}

/// The longest token made for a version vector of `actors` actors: each
/// entry at its largest (a node id of [`NODE_ID_LEN_MAX`] bytes, the largest
/// incarnation and counter). A stored vector grows past `actors_max` only
/// when replicas merge concurrent writes of new actors, so twice that is
/// allowed for: the limit on a context header is this for `2 * actors_max`.
pub fn token_len_max(actors_max: usize) -> usize {
    // postcard: varint length; per entry a varint string length, the bytes,
    // a varint u32 (at most 5 bytes) and a varint u64 (at most 10).
    let entry = 1 + NODE_ID_LEN_MAX + 5 + 10;
    let raw = 1 + TAG_BYTES + 10 + actors_max.saturating_mul(2).saturating_mul(entry) + MAC_BYTES;
    raw.saturating_mul(4).div_ceil(3)
}

/// The tag binding a token to the key with ring hash `key_hash`.
fn tag(key_hash: u64) -> [u8; TAG_BYTES] {
    (key_hash as u32).to_le_bytes()
}

/// The MAC of `body` under `key`.
fn mac(key: &[u8; KEY_BYTES], body: &[u8]) -> [u8; MAC_BYTES] {
    let full = blake3::keyed_hash(key, body);
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(&full.as_bytes()[..MAC_BYTES]);
    out
}

/// Encodes a version vector read from the key with ring hash `key_hash`
/// (see [`crate::hash::key_hash`]), signed with the first of `keys`.
pub fn encode(vv: &VersionVector, key_hash: u64, keys: &ContextKeys) -> String {
    // Room for the header, a few actors and the MAC without regrowing.
    let mut buf = Vec::with_capacity(96);
    buf.push(FORMAT_V2);
    buf.extend_from_slice(&tag(key_hash));
    let mut buf = postcard::to_extend(vv, buf).expect("writing to a Vec cannot fail");
    let m = mac(&keys.keys[0], &buf);
    buf.extend_from_slice(&m);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Decodes a token made by [`encode`] for the same key under one of `keys`.
pub fn decode(
    token: &str,
    key_hash: u64,
    keys: &ContextKeys,
) -> Result<VersionVector, ContextError> {
    if token.len() > keys.token_len_max {
        return Err(ContextError::TooLong {
            len: token.len(),
            max: keys.token_len_max,
        });
    }
    let buf = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| ContextError::NotBase64)?;
    match buf.first() {
        None => return Err(ContextError::Truncated),
        Some(&FORMAT_UNSIGNED) => return Err(ContextError::Unsigned),
        Some(&FORMAT_V2) => {}
        Some(&other) => return Err(ContextError::UnknownFormat(other)),
    }
    if buf.len() < 1 + TAG_BYTES + MAC_BYTES {
        return Err(ContextError::Truncated);
    }
    let (body, got) = buf.split_at(buf.len() - MAC_BYTES);
    let got: &[u8; MAC_BYTES] = got.try_into().expect("MAC_BYTES bytes");
    // Every key is tried, so the time taken does not say which one matched.
    let matched = keys.keys.iter().fold(false, |ok, k| {
        constant_time_eq::constant_time_eq_16(&mac(k, body), got) | ok
    });
    if !matched {
        return Err(ContextError::BadMac);
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
mod tests;
