//! Checks of a client request that need only the request, the limits and the
//! bucket's properties: sizes, timeouts, quorum parameters, and whether the
//! object a write would leave is within bounds.
//!
//! Every check refuses with a [`ClientError`] that says what was wrong and
//! what to do, before anything is stored. The node runs them at admission
//! and when it builds a write; keeping them here makes them testable without
//! a node, and the same for every caller.

use crate::bucket::BucketProps;
use crate::hash::BucketKey;
use crate::msg::{ClientError, ClientOp, ClientRequest};
use crate::params::{Limits, QuorumParam};
use crate::version::{Actor, Dot, Object, Value, VersionVector};

/// Longest timeout a client may ask for, in ms.
pub const TIMEOUT_MS_MAX: u64 = 600_000;

/// How many replies (reads) or acks (writes) a request waits for, resolved
/// once against its bucket's properties and carried with the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// Replies or acks in all (R or W). Never below `primaries`.
    pub all: usize,
    /// How many of them must come from primaries (PR or PW; 0: any node).
    pub primaries: usize,
}

/// Checks the bucket name, key and value sizes and the timeout of `req`;
/// returns the timeout to use, in ms (`default_timeout_ms` when the request
/// names none).
pub fn check_request(
    req: &ClientRequest,
    limits: &Limits,
    default_timeout_ms: u64,
) -> Result<u64, ClientError> {
    check_key(&req.key, limits)?;
    if let ClientOp::Put {
        value: Value::Data(v),
        ..
    }
    | ClientOp::PutIf {
        value: Value::Data(v),
        ..
    } = &req.op
        && v.len() > limits.value_bytes_max
    {
        return Err(ClientError::TooLarge(format!(
            "value is {} bytes, more than the limit of {} (--value-bytes-max)",
            v.len(),
            limits.value_bytes_max
        )));
    }
    let timeout_ms = req.timeout_ms.unwrap_or(default_timeout_ms);
    if timeout_ms == 0 || timeout_ms > TIMEOUT_MS_MAX {
        return Err(ClientError::BadRequest(format!(
            "timeout_ms={timeout_ms} is out of range: use 1 to {TIMEOUT_MS_MAX}"
        )));
    }
    Ok(timeout_ms)
}

/// Checks that the bucket name and key are not empty and within `limits`.
pub fn check_key(key: &BucketKey, limits: &Limits) -> Result<(), ClientError> {
    if key.bucket.is_empty() {
        return Err(ClientError::BadRequest(
            "the bucket name is empty: give a bucket of 1 to 255 bytes".into(),
        ));
    }
    if key.bucket.len() > limits.bucket_bytes_max {
        return Err(ClientError::TooLarge(format!(
            "bucket name is {} bytes, more than the limit of {}",
            key.bucket.len(),
            limits.bucket_bytes_max
        )));
    }
    if key.key.is_empty() {
        return Err(ClientError::BadRequest(
            "the key is empty: give a key of 1 or more bytes".into(),
        ));
    }
    if key.key.len() > limits.key_bytes_max {
        return Err(ClientError::TooLarge(format!(
            "key is {} bytes, more than the limit of {} (--key-bytes-max)",
            key.key.len(),
            limits.key_bytes_max
        )));
    }
    Ok(())
}

/// What `op` waits for under `props` (whose `n` must already be capped by
/// the cluster size): R and PR for a read, W and PW for a write, each the
/// request's own or else the bucket's. Primary replies count toward all, so
/// `all` is raised to at least `primaries`.
pub fn resolve_need(props: &BucketProps, op: &ClientOp) -> Result<Need, ClientError> {
    let n = props.n;
    let ((name, p, default), (strict_name, strict, strict_default)) = match op {
        ClientOp::Get { r, pr } => (("r", *r, props.r), ("pr", *pr, props.pr)),
        ClientOp::Put { w, pw, .. } => (("w", *w, props.w), ("pw", *pw, props.pw)),
        // A listing asks primaries only: every reply is a primary's.
        ClientOp::List(q) => (("r", q.r, props.r), ("pr", None, 0)),
        ClientOp::Cluster(_) => {
            return Err(ClientError::BadRequest(
                "a cluster manager request has no quorum of its own".into(),
            ));
        }
        ClientOp::PutIf { .. } => {
            return Err(ClientError::BadRequest(
                "If-Match and If-None-Match (compare-and-set) are only for strong buckets: \
                 create the bucket with {\"consistency\": \"strong\"}, or write without them"
                    .into(),
            ));
        }
    };
    let resolve = |name: &str, p: QuorumParam| {
        p.resolve(name, n)
            .map_err(|e| ClientError::BadRequest(e.to_string()))
    };
    let all = match p {
        None => default.min(n),
        Some(p) => resolve(name, p)?,
    };
    let primaries = match strict {
        None => strict_default.min(n),
        Some(QuorumParam::Count(0)) => 0,
        Some(s) => resolve(strict_name, s)?,
    };
    Ok(Need {
        all: all.max(primaries),
        primaries,
    })
}

/// Why a listing of a strong bucket is refused.
pub const LIST_STRONG: &str = "listing keys is not offered on strong buckets: a listing merges \
     replicas' stored keys and would not be linearizable (it could miss a key a write was \
     acknowledged for, or show one a delete removed); read the keys you know one by one, or \
     keep an index of them in an eventual bucket";

/// Checks a request on a strong bucket: the eventual-only quorum options
/// (`r`, `w`, `pr`, `pw`) are refused, since the consensus group decides.
pub fn check_strong(op: &ClientOp) -> Result<(), ClientError> {
    let given = match op {
        ClientOp::Get { r, pr } => [("r", r), ("pr", pr)],
        ClientOp::Put { w, pw, .. } => [("w", w), ("pw", pw)],
        ClientOp::PutIf { .. } => return Ok(()),
        ClientOp::Cluster(_) => {
            return Err(ClientError::BadRequest(
                "a cluster manager request goes to the manager, not to a key's group".into(),
            ));
        }
        ClientOp::List(_) => return Err(ClientError::BadRequest(LIST_STRONG.into())),
    };
    if let Some((name, _)) = given.iter().find(|(_, q)| q.is_some()) {
        return Err(ClientError::BadRequest(format!(
            "{name} is not allowed on a strong bucket: its reads and writes go through the \
             key's consensus group and wait for a majority of its voters; leave {name} out"
        )));
    }
    Ok(())
}

/// Checks a write's context against the key's stored state before a new dot
/// is made from it: only this node makes dots of its `actor` and it stores
/// each before anyone can read it, so a context claiming more of them was
/// not read from this key.
pub fn check_context(
    context: &VersionVector,
    local: &Object,
    actor: &Actor,
) -> Result<(), ClientError> {
    if context.get(actor) > local.vv.get(actor) {
        return Err(ClientError::BadRequest(
            "the context names writes this key never had: pass the X-Ringkv-Context \
             of a read of this same key"
                .into(),
        ));
    }
    Ok(())
}

/// The dot of a write by `actor` on `local` with `context`, or a refusal
/// when `actor`'s counter on the key is exhausted (at `u64::MAX`): the dot
/// would otherwise wrap to one the key covers, and the write would vanish.
pub fn next_dot(
    local: &Object,
    actor: &Actor,
    context: &VersionVector,
) -> Result<Dot, ClientError> {
    local.checked_next_dot(actor, context).ok_or_else(|| {
        ClientError::BadRequest(format!(
            "node {}'s version counter on this key is exhausted (2^64-1 writes); the write \
             was refused and nothing changed",
            actor.node
        ))
    })
}

/// Checks the object a write would leave (`new`, built on `local`) against
/// the limits: the actors its context brought in, the siblings and the bytes.
/// A write may always add its own actor to what is stored; the context may
/// add others only up to `limits.actors_max`.
pub fn check_new_object(
    local: &Object,
    new: &Object,
    props: &BucketProps,
    limits: &Limits,
) -> Result<(), ClientError> {
    let actors = new.vv.actors();
    if actors > limits.actors_max.max(local.vv.actors() + 1) {
        return Err(ClientError::BadRequest(format!(
            "the context names writers this key never had: its version vector would have \
             {actors} entries, over the limit of {}; pass the X-Ringkv-Context of a read of \
             this same key unchanged",
            limits.actors_max
        )));
    }
    let bytes = new.value_bytes();
    let siblings_max = props.siblings_max.min(limits.siblings_max);
    if new.siblings.len() > siblings_max || bytes > limits.object_bytes_max {
        return Err(ClientError::TooLarge(format!(
            "the key would have {} siblings and {bytes} bytes, over the limits of {} siblings \
             and {} bytes: read it and write the resolved value with the read's context",
            new.siblings.len(),
            siblings_max,
            limits.object_bytes_max
        )));
    }
    Ok(())
}

/// Checks an object a peer sent before it is merged (a replica write, a
/// handoff, a read repair, a read reply): peers are checked like clients.
/// Refuses an object with more siblings or actors than `limits` allow, a
/// value over `value_bytes_max`, values over `object_bytes_max` in all,
/// siblings not strictly sorted by dot (each dot once), or a sibling whose
/// dot its own version vector does not cover. No object this crate makes
/// fails these; the checks are linear in the object's size.
///
/// Call it with [`Limits::for_peers`]: honest merges may hold more siblings
/// than one client write may leave.
pub fn check_object(obj: &Object, limits: &Limits) -> Result<(), ClientError> {
    if obj.siblings.len() > limits.siblings_max {
        return Err(ClientError::TooLarge(format!(
            "the object has {} siblings, over the limit of {}",
            obj.siblings.len(),
            limits.siblings_max
        )));
    }
    if obj.vv.actors() > limits.actors_max {
        return Err(ClientError::BadRequest(format!(
            "the object's version vector has {} entries, over the limit of {}",
            obj.vv.actors(),
            limits.actors_max
        )));
    }
    let mut bytes = 0usize;
    for s in &obj.siblings {
        if let Value::Data(v) = &s.value {
            if v.len() > limits.value_bytes_max {
                return Err(ClientError::TooLarge(format!(
                    "a value of the object is {} bytes, more than the limit of {}",
                    v.len(),
                    limits.value_bytes_max
                )));
            }
            bytes = bytes.saturating_add(v.len());
        }
        if !obj.vv.covers(&s.dot) {
            return Err(ClientError::BadRequest(
                "a sibling's dot is not covered by the object's version vector".into(),
            ));
        }
    }
    if bytes > limits.object_bytes_max {
        return Err(ClientError::TooLarge(format!(
            "the object's values are {bytes} bytes in all, more than the limit of {}",
            limits.object_bytes_max
        )));
    }
    if !obj.siblings_sorted() {
        return Err(ClientError::BadRequest(
            "the object's siblings are not strictly sorted by dot".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::layout::NodeId;

    fn key(bucket: &str, k: &str) -> BucketKey {
        BucketKey::new(
            Bytes::copy_from_slice(bucket.as_bytes()),
            Bytes::copy_from_slice(k.as_bytes()),
        )
    }

    fn put(value: &[u8], timeout_ms: Option<u64>) -> ClientRequest {
        ClientRequest {
            key: key("b", "k"),
            op: ClientOp::Put {
                value: Value::Data(Bytes::copy_from_slice(value)),
                context: None,
                w: None,
                pw: None,
            },
            timeout_ms,
        }
    }

    fn props(n: usize) -> BucketProps {
        BucketProps::defaults(n, 2, 2, 100)
    }

    fn actor(id: &str) -> Actor {
        Actor {
            node: NodeId::from(id),
            incarnation: 1,
        }
    }

    #[test]
    fn sizes_and_timeouts_are_bounded() {
        let l = Limits {
            value_bytes_max: 4,
            ..Limits::default()
        };
        assert_eq!(check_request(&put(b"1234", None), &l, 500), Ok(500));
        assert_eq!(check_request(&put(b"1", Some(7)), &l, 500), Ok(7));
        assert!(matches!(
            check_request(&put(b"12345", None), &l, 500),
            Err(ClientError::TooLarge(m)) if m.contains("value is 5 bytes")
        ));
        for t in [0, TIMEOUT_MS_MAX + 1] {
            assert!(matches!(
                check_request(&put(b"1", Some(t)), &l, 500),
                Err(ClientError::BadRequest(m)) if m.contains("out of range")
            ));
        }
        assert_eq!(
            check_request(&put(b"1", Some(TIMEOUT_MS_MAX)), &l, 500),
            Ok(TIMEOUT_MS_MAX)
        );
    }

    #[test]
    fn keys_and_buckets_must_be_named_and_bounded() {
        let l = Limits {
            key_bytes_max: 3,
            bucket_bytes_max: 2,
            ..Limits::default()
        };
        assert_eq!(check_key(&key("bb", "kkk"), &l), Ok(()));
        assert!(matches!(
            check_key(&key("", "k"), &l),
            Err(ClientError::BadRequest(_))
        ));
        assert!(matches!(
            check_key(&key("b", ""), &l),
            Err(ClientError::BadRequest(_))
        ));
        assert!(matches!(
            check_key(&key("bbb", "k"), &l),
            Err(ClientError::TooLarge(_))
        ));
        assert!(matches!(
            check_key(&key("b", "kkkk"), &l),
            Err(ClientError::TooLarge(_))
        ));
    }

    #[test]
    fn need_takes_the_request_then_the_bucket_and_all_covers_primaries() {
        let get = |r, pr| ClientOp::Get { r, pr };
        let p = BucketProps { pr: 1, ..props(3) };
        assert_eq!(
            resolve_need(&p, &get(None, None)),
            Ok(Need {
                all: 2,
                primaries: 1
            })
        );
        assert_eq!(
            resolve_need(&p, &get(Some(QuorumParam::One), Some(QuorumParam::All))),
            Ok(Need {
                all: 3,
                primaries: 3
            })
        );
        assert_eq!(
            resolve_need(&p, &get(None, Some(QuorumParam::Count(0)))),
            Ok(Need {
                all: 2,
                primaries: 0
            })
        );
        assert!(matches!(
            resolve_need(&p, &get(Some(QuorumParam::Count(4)), None)),
            Err(ClientError::BadRequest(_))
        ));
        // Bucket defaults above a small cluster's n are capped by it.
        let small = BucketProps { w: 3, ..props(1) };
        let put = ClientOp::Put {
            value: Value::Tombstone,
            context: None,
            w: None,
            pw: None,
        };
        assert_eq!(
            resolve_need(&small, &put),
            Ok(Need {
                all: 1,
                primaries: 0
            })
        );
    }

    #[test]
    fn a_context_may_not_claim_more_of_our_writes_than_stored() {
        let me = actor("n1");
        let local = Object::default().update(
            &VersionVector::new(),
            Dot {
                actor: me.clone(),
                counter: 1,
            },
            Value::Data(Bytes::from_static(b"v")),
            1,
        );
        assert_eq!(check_context(&local.vv, &local, &me), Ok(()));
        let mut forged = local.vv.clone();
        forged.add(&Dot {
            actor: me.clone(),
            counter: 2,
        });
        assert!(matches!(
            check_context(&forged, &local, &me),
            Err(ClientError::BadRequest(_))
        ));
    }

    /// A context that brings another node's counter to 2^64-1 (which only a
    /// forged one could) leaves that node unable to make a next dot: its
    /// writes are refused with a 400, never given a wrapped dot.
    #[test]
    fn a_write_whose_dot_would_overflow_is_refused() {
        let (me, other) = (actor("n1"), actor("n2"));
        let mut ctx = VersionVector::new();
        ctx.add(&Dot {
            actor: other.clone(),
            counter: u64::MAX,
        });
        let dot = next_dot(&Object::default(), &me, &ctx).unwrap();
        let local = Object::default().update(&ctx, dot, Value::Tombstone, 1);
        let err = next_dot(&local, &other, &VersionVector::new()).unwrap_err();
        assert!(
            matches!(&err, ClientError::BadRequest(m) if m.contains("exhausted")),
            "{err:?}"
        );
        assert_eq!(next_dot(&local, &me, &ctx).unwrap().counter, 2);
    }

    #[test]
    fn a_new_object_is_bounded_in_actors_siblings_and_bytes() {
        let l = Limits {
            actors_max: 2,
            siblings_max: 2,
            ..Limits::default()
        };
        let p = props(3);
        let local = Object::default();
        let mut obj = Object::default();
        for (i, a) in ["a", "b"].iter().enumerate() {
            obj = obj.update(
                &VersionVector::new(),
                Dot {
                    actor: actor(a),
                    counter: 1,
                },
                Value::Data(Bytes::from_static(b"v")),
                i as u64,
            );
        }
        assert_eq!(check_new_object(&local, &obj, &p, &l), Ok(()));
        let three = obj.update(
            &VersionVector::new(),
            Dot {
                actor: actor("c"),
                counter: 1,
            },
            Value::Data(Bytes::from_static(b"v")),
            3,
        );
        // Three actors over a limit of two, and three siblings over two.
        assert!(matches!(
            check_new_object(&local, &three, &p, &l),
            Err(ClientError::BadRequest(m)) if m.contains("3 entries")
        ));
        // The key's own actors plus one new one are always allowed.
        assert!(matches!(
            check_new_object(&obj, &three, &p, &l),
            Err(ClientError::TooLarge(m)) if m.contains("3 siblings")
        ));
    }

    /// An object of `n` one-byte values by distinct actors.
    fn siblings(n: usize) -> Object {
        (0..n).fold(Object::default(), |o, i| {
            o.update(
                &VersionVector::new(),
                Dot {
                    actor: actor(&format!("a{i}")),
                    counter: 1,
                },
                Value::Data(Bytes::from_static(b"v")),
                i as u64,
            )
        })
    }

    #[test]
    fn a_peers_object_is_bounded_in_siblings_actors_and_bytes() {
        let l = Limits {
            siblings_max: 3,
            actors_max: 3,
            value_bytes_max: 4,
            object_bytes_max: 6,
            ..Limits::default()
        };
        assert_eq!(check_object(&Object::default(), &l), Ok(()));
        assert_eq!(check_object(&siblings(3), &l), Ok(()));
        assert!(matches!(
            check_object(&siblings(4), &l),
            Err(ClientError::TooLarge(m)) if m.contains("4 siblings")
        ));
        // Actors: a vector naming more writers than allowed.
        let mut wide = siblings(1);
        for i in 0..3 {
            wide.vv.add(&Dot {
                actor: actor(&format!("x{i}")),
                counter: 1,
            });
        }
        assert!(matches!(
            check_object(&wide, &l),
            Err(ClientError::BadRequest(m)) if m.contains("4 entries")
        ));
        // A value over value_bytes_max, and values over object_bytes_max.
        let big = |v: &'static [u8], n: usize| {
            let mut o = siblings(n);
            for s in &mut o.siblings {
                s.value = Value::Data(Bytes::from_static(v));
            }
            o
        };
        assert!(
            matches!(check_object(&big(b"12345", 1), &l), Err(ClientError::TooLarge(m)) if m.contains("5 bytes"))
        );
        assert_eq!(check_object(&big(b"123", 2), &l), Ok(()));
        assert!(
            matches!(check_object(&big(b"123", 3), &l), Err(ClientError::TooLarge(m)) if m.contains("9 bytes"))
        );
        // Tombstones count no bytes.
        let mut dead = siblings(3);
        dead.siblings
            .iter_mut()
            .for_each(|s| s.value = Value::Tombstone);
        assert_eq!(check_object(&dead, &l), Ok(()));
    }

    #[test]
    fn a_peers_object_must_be_well_formed() {
        let l = Limits::default();
        let mut unsorted = siblings(3);
        unsorted.siblings.swap(0, 2);
        assert!(matches!(
            check_object(&unsorted, &l),
            Err(ClientError::BadRequest(m)) if m.contains("sorted")
        ));
        let mut twice = siblings(2);
        twice.siblings[1] = twice.siblings[0].clone();
        assert!(matches!(
            check_object(&twice, &l),
            Err(ClientError::BadRequest(m)) if m.contains("sorted")
        ));
        let mut uncovered = siblings(2);
        uncovered.vv = VersionVector::new();
        assert!(matches!(
            check_object(&uncovered, &l),
            Err(ClientError::BadRequest(m)) if m.contains("not covered")
        ));
    }
}
