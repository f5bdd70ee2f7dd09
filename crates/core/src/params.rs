//! Request parameters: quorum sizes and size limits.

use serde::{Deserialize, Serialize};

/// How many replies a request waits for, as a client asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuorumParam {
    /// One reply.
    One,
    /// A majority of N: `N/2 + 1`.
    Quorum,
    /// All N.
    All,
    /// An exact count.
    Count(u32),
}

/// Why a quorum parameter was rejected. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// Not a number or one of the names.
    #[error("{name}={value:?} is not a quorum: use a number from 1 to N, or one, quorum, all")]
    Unparsable {
        /// Parameter name (`r`, `w`, ...).
        name: String,
        /// What was given.
        value: String,
    },
    /// Zero or more than N.
    #[error("{name}={value} is out of range: it must be from 1 to n={n}")]
    OutOfRange {
        /// Parameter name.
        name: String,
        /// What was given.
        value: u32,
        /// Replicas per key.
        n: usize,
    },
}

impl QuorumParam {
    /// Parses `one`, `quorum`, `all` or a number; `name` is used in the error.
    pub fn parse(name: &str, s: &str) -> Result<Self, ParamError> {
        match s {
            "one" => Ok(QuorumParam::One),
            "quorum" => Ok(QuorumParam::Quorum),
            "all" => Ok(QuorumParam::All),
            _ => s
                .parse::<u32>()
                .map(QuorumParam::Count)
                .map_err(|_| ParamError::Unparsable {
                    name: name.to_string(),
                    value: s.to_string(),
                }),
        }
    }

    /// The number of replies this means for `n` replicas, checked to be in `1..=n`.
    pub fn resolve(self, name: &str, n: usize) -> Result<usize, ParamError> {
        let v = match self {
            QuorumParam::One => 1,
            QuorumParam::Quorum => n / 2 + 1,
            QuorumParam::All => n,
            QuorumParam::Count(c) => c as usize,
        };
        if v == 0 || v > n {
            return Err(ParamError::OutOfRange {
                name: name.to_string(),
                value: v as u32,
                n,
            });
        }
        Ok(v)
    }
}

/// Size limits on what clients may store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest key, in bytes.
    pub key_bytes_max: usize,
    /// Largest value, in bytes.
    pub value_bytes_max: usize,
    /// Longest bucket name, in bytes.
    pub bucket_bytes_max: usize,
    /// Most siblings a write may leave on a key; past it the write is refused
    /// until a client resolves them (write with the context of a read).
    pub siblings_max: usize,
    /// Largest stored object (all siblings' values together), in bytes; it
    /// must fit in one message between nodes.
    pub object_bytes_max: usize,
    /// Most actors a write's context may bring into a key's version vector.
    /// Contexts are not signed, so a forged one could otherwise grow a key's
    /// metadata without bound; a real key has an entry per node (and data
    /// directory) that ever coordinated a write to it, a handful.
    pub actors_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            key_bytes_max: 1024,
            value_bytes_max: 4 * 1024 * 1024,
            bucket_bytes_max: 255,
            siblings_max: 100,
            object_bytes_max: 16 * 1024 * 1024,
            actors_max: 256,
        }
    }
}

impl Limits {
    /// The limits an object a peer sends (a replica write, a handoff, a read
    /// repair, a read reply) is checked with, in a cluster of `members`
    /// nodes. Sizes are the clients' own. Siblings and actors get room for
    /// what honest merges make: a coordinator refuses a write past
    /// `siblings_max` on its own copy only, so copies that took concurrent
    /// writes apart (say across a partition) merge to at most
    /// `siblings_max` per coordinating node; and each write may add its
    /// coordinator's actor past `actors_max`.
    pub fn for_peers(&self, members: usize) -> Limits {
        let members = members.max(1);
        Limits {
            siblings_max: self.siblings_max.saturating_mul(members),
            actors_max: self.actors_max.saturating_add(members),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(QuorumParam::parse("r", "one"), Ok(QuorumParam::One));
        assert_eq!(QuorumParam::parse("r", "2"), Ok(QuorumParam::Count(2)));
        assert!(matches!(
            QuorumParam::parse("r", "banana"),
            Err(ParamError::Unparsable { .. })
        ));
        assert!(matches!(
            QuorumParam::parse("r", "-1"),
            Err(ParamError::Unparsable { .. })
        ));
    }

    #[test]
    fn peer_limits_make_room_for_merges_per_member() {
        let l = Limits::default();
        let p = l.for_peers(3);
        assert_eq!(p.siblings_max, 3 * l.siblings_max);
        assert_eq!(p.actors_max, l.actors_max + 3);
        assert_eq!(
            (p.key_bytes_max, p.value_bytes_max, p.object_bytes_max),
            (l.key_bytes_max, l.value_bytes_max, l.object_bytes_max)
        );
        assert_eq!(l.for_peers(0).siblings_max, l.siblings_max);
    }

    #[test]
    fn resolves_against_n() {
        assert_eq!(QuorumParam::Quorum.resolve("w", 3), Ok(2));
        assert_eq!(QuorumParam::Quorum.resolve("w", 5), Ok(3));
        assert_eq!(QuorumParam::All.resolve("w", 3), Ok(3));
        assert!(QuorumParam::Count(0).resolve("w", 3).is_err());
        assert!(QuorumParam::Count(4).resolve("w", 3).is_err());
    }
}
