//! Every decoder of bytes a peer sends or a disk holds, fed arbitrary bytes
//! and damaged valid encodings: an error or a value that round-trips, never a
//! panic, and quickly (no allocation sized by a forged length).

use std::fmt::Debug;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{Envelope, PeerMsg};
use ringkv_core::sloppy::Hint;
use ringkv_core::{
    Actor, BucketEntry, BucketPatch, BucketProps, Dot, Hlc, NodeId, Object, Value, VersionVector,
};

/// Far above what decoding a few hundred bytes takes, far below a hang.
const DECODE_TIME_MAX: Duration = Duration::from_secs(2);

fn object() -> Object {
    let dot = |node: &str, counter| Dot {
        actor: Actor {
            node: NodeId::from(node),
            incarnation: 3,
        },
        counter,
    };
    let one = Object::empty().update(
        &VersionVector::new(),
        dot("n1", 1),
        Value::Data(Bytes::from_static(b"value")),
        17,
    );
    // A concurrent second write: two siblings.
    one.update(&VersionVector::new(), dot("n2", 1), Value::Tombstone, 18)
}

fn entry() -> BucketEntry {
    BucketEntry {
        bucket: b"users".to_vec(),
        props: BucketProps::defaults(3, 2, 2, 100),
        stamp: Hlc::from_parts(1_700_000_000_000, 4),
        origin: NodeId::from("n2"),
    }
}

fn envelopes() -> Vec<Vec<u8>> {
    let key = BucketKey::new("b", "k");
    let msgs = vec![
        PeerMsg::ReplicaPut {
            req_id: 7,
            key: key.clone(),
            object: object(),
            stands_in_for: Some(NodeId::from("n3")),
            sent_us: 0,
        },
        PeerMsg::ReplicaPutAck {
            req_id: 7,
            ok: true,
            stamps: ringkv_core::msg::Stamps {
                req_sent_us: 1_699_999_999_999_000,
                recv_us: 1_700_000_000_000_000,
                sent_us: 1_700_000_000_000_100,
            },
        },
        PeerMsg::ReplicaGet {
            req_id: 8,
            key,
            sent_us: 0,
        },
        PeerMsg::ReplicaGetReply {
            req_id: 8,
            object: Some(object()),
            stamps: ringkv_core::msg::Stamps::default(),
        },
        PeerMsg::Bucket { entry: entry() },
        PeerMsg::Gossip {
            data: vec![1, 2, 3, 255],
        },
    ];
    msgs.into_iter()
        .map(|msg| {
            Envelope {
                from: NodeId::from("n1"),
                msg,
            }
            .to_bytes()
        })
        .collect()
}

fn hint() -> Vec<u8> {
    Hint {
        primary: NodeId::from("n4"),
        partition: 5,
        key: BucketKey::new("bucket", "key"),
    }
    .to_bytes()
}

/// A way to damage an encoding.
#[derive(Clone, Debug)]
enum Damage {
    /// Flip one bit (position taken modulo the length).
    Flip(usize, u8),
    /// Keep only a prefix.
    Truncate(usize),
    /// Overwrite a byte, e.g. a length or tag, with this.
    Set(usize, u8),
    /// Insert bytes, e.g. a huge varint where a length was.
    Insert(usize, Vec<u8>),
    /// Append bytes.
    Append(Vec<u8>),
}

fn damages() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Damage::Flip(i, b)),
        any::<usize>().prop_map(Damage::Truncate),
        (
            any::<usize>(),
            prop_oneof![Just(0xffu8), Just(0x80), Just(0x7f), any::<u8>()]
        )
            .prop_map(|(i, v)| Damage::Set(i, v)),
        (
            any::<usize>(),
            prop_oneof![
                Just(vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
                Just(vec![0xff; 10]),
                prop::collection::vec(any::<u8>(), 1..8),
            ]
        )
            .prop_map(|(i, v)| Damage::Insert(i, v)),
        prop::collection::vec(any::<u8>(), 1..8).prop_map(Damage::Append),
    ];
    prop::collection::vec(one, 1..4)
}

fn damage(mut b: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match d {
            Damage::Flip(i, bit) if !b.is_empty() => {
                let i = at(*i, b.len());
                b[i] ^= 1 << bit;
            }
            Damage::Set(i, v) if !b.is_empty() => {
                let i = at(*i, b.len());
                b[i] = *v;
            }
            Damage::Truncate(n) => b.truncate(at(*n, b.len() + 1)),
            Damage::Insert(i, v) => {
                let i = at(*i, b.len() + 1);
                b.splice(i..i, v.iter().copied());
            }
            Damage::Append(v) => b.extend_from_slice(v),
            Damage::Flip(..) | Damage::Set(..) => {}
        }
    }
    b
}

/// `decode` refuses `bytes` or returns a value that survives a round trip,
/// within [`DECODE_TIME_MAX`].
fn check<T: PartialEq + Debug, E>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
    encode: impl Fn(&T) -> Vec<u8>,
) -> Result<(), TestCaseError> {
    let start = Instant::now();
    let decoded = decode(bytes);
    prop_assert!(
        start.elapsed() < DECODE_TIME_MAX,
        "slow: {:?}",
        start.elapsed()
    );
    if let Ok(v) = decoded {
        let again = decode(&encode(&v));
        prop_assert!(
            again.as_ref().is_ok_and(|a| *a == v),
            "{v:?} does not round-trip"
        );
    }
    Ok(())
}

fn envelope(b: &[u8]) -> Result<(), TestCaseError> {
    check(b, Envelope::from_bytes, Envelope::to_bytes)
}

fn stored_object(b: &[u8]) -> Result<(), TestCaseError> {
    check(b, Object::from_bytes, Object::to_bytes)
}

fn stored_hint(b: &[u8]) -> Result<(), TestCaseError> {
    check(b, Hint::from_bytes, Hint::to_bytes)
}

fn bucket_entry(b: &[u8]) -> Result<(), TestCaseError> {
    check(
        b,
        |b: &[u8]| postcard::from_bytes::<BucketEntry>(b),
        |e: &BucketEntry| postcard::to_stdvec(e).unwrap(),
    )
}

#[test]
fn the_samples_round_trip() {
    for e in envelopes() {
        assert!(Envelope::from_bytes(&e).is_ok());
    }
    assert!(Object::from_bytes(&object().to_bytes()).is_ok());
    assert!(Hint::from_bytes(&hint()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_are_refused_or_round_trip(b in prop::collection::vec(any::<u8>(), 0..256)) {
        envelope(&b)?;
        stored_object(&b)?;
        stored_hint(&b)?;
        bucket_entry(&b)?;
    }

    #[test]
    fn damaged_envelopes_are_refused_or_round_trip(which in any::<prop::sample::Index>(), d in damages()) {
        let samples = envelopes();
        envelope(&damage(which.get(&samples).clone(), &d))?;
    }

    #[test]
    fn damaged_stored_records_are_refused_or_round_trip(d in damages()) {
        stored_object(&damage(object().to_bytes(), &d))?;
        stored_hint(&damage(hint(), &d))?;
        bucket_entry(&damage(postcard::to_stdvec(&entry()).unwrap(), &d))?;
    }

    /// Bucket properties as a user sends them: any body is a patch or an
    /// error that says something.
    #[test]
    fn arbitrary_bucket_bodies_are_refused_with_a_message(b in prop::collection::vec(any::<u8>(), 0..128)) {
        if let Err(e) = BucketPatch::from_json(&b) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn damaged_bucket_bodies_are_refused_with_a_message(d in damages()) {
        let good = br#"{"n":3,"r":"quorum","w":"all","pr":0,"pw":1,"conflict":"siblings","siblings_warn":10,"siblings_max":100}"#;
        prop_assert!(BucketPatch::from_json(good).is_ok());
        if let Err(e) = BucketPatch::from_json(&damage(good.to_vec(), &d)) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
