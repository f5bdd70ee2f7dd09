use super::*;
use crate::layout::NodeId;
use crate::params::Limits;
use crate::version::{Actor, Dot};
use proptest::prelude::*;

fn keys() -> ContextKeys {
    ContextKeys::new([7; KEY_BYTES], Vec::new())
}

fn vv_strategy() -> impl Strategy<Value = VersionVector> {
    proptest::collection::vec(("[a-z0-9]{1,8}", any::<u32>(), 1u64..u64::MAX), 0..8).prop_map(
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

/// A token with a valid MAC under `key` over any `body` (what someone who
/// holds the key could make): for testing what the payload checks refuse.
fn signed_raw(body: &[u8], key: &[u8; KEY_BYTES]) -> String {
    let mut raw = body.to_vec();
    raw.extend_from_slice(&mac(key, body));
    URL_SAFE_NO_PAD.encode(raw)
}

/// A version vector claiming counter 2^64-1 for another node's actor.
fn forged_vv() -> VersionVector {
    let mut vv = VersionVector::new();
    vv.add(&Dot {
        actor: Actor {
            node: NodeId::from("n2".to_string()),
            incarnation: 1,
        },
        counter: u64::MAX,
    });
    vv
}

proptest! {
    #[test]
    fn roundtrips(vv in vv_strategy()) {
        prop_assert_eq!(decode(&encode(&vv, 42, &keys()), 42, &keys()).unwrap(), vv);
    }

    #[test]
    fn truncated_is_rejected(vv in vv_strategy(), cut in 1usize..64) {
        let t = encode(&vv, 42, &keys());
        let cut = cut.min(t.len());
        prop_assert!(decode(&t[..t.len() - cut], 42, &keys()).is_err());
    }

    #[test]
    fn tampered_is_rejected(vv in vv_strategy(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let t = encode(&vv, 42, &keys());
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let i = pos.index(raw.len());
        raw[i] ^= 1 << bit;
        let err = decode(&URL_SAFE_NO_PAD.encode(&raw), 42, &keys()).unwrap_err();
        // Flipping the format byte is caught as a format; anything else by the MAC.
        if i == 0 {
            prop_assert!(matches!(err, ContextError::UnknownFormat(_) | ContextError::Unsigned));
        } else {
            prop_assert_eq!(err, ContextError::BadMac);
        }
    }

    #[test]
    fn garbage_strings_never_panic(s in "\\PC{0,200}") {
        let _ = decode(&s, 42, &keys());
    }

    /// Arbitrary bytes behind each format byte, base64url encoded (so they
    /// reach the MAC check), and the same bytes signed (so they reach the
    /// payload decoder): a clear error or a vector, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(format in 0u8..4, bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut body = vec![format];
        body.extend_from_slice(&bytes);
        let _ = decode(&URL_SAFE_NO_PAD.encode(&body), 42, &keys());
        let _ = decode(&signed_raw(&body, &[7; KEY_BYTES]), 42, &keys());
    }
}

#[test]
fn errors_name_the_problem() {
    let k = keys();
    assert_eq!(decode("!!!", 1, &k), Err(ContextError::NotBase64));
    assert_eq!(decode("", 1, &k), Err(ContextError::Truncated));
    assert_eq!(decode("AgE", 1, &k), Err(ContextError::Truncated));
    assert_eq!(decode("BwE", 1, &k), Err(ContextError::UnknownFormat(7)));
    let t = encode(&VersionVector::new(), 7, &k);
    assert_eq!(decode(&t, 8, &k), Err(ContextError::OtherKey));
    assert_eq!(decode(&t, 7, &k), Ok(VersionVector::new()));
    let max = k.token_len_max();
    assert_eq!(
        decode(&"A".repeat(max + 1), 1, &k),
        Err(ContextError::TooLong { len: max + 1, max })
    );
    // A payload that is not a version vector, or has bytes after it.
    let mut body = vec![FORMAT_V2];
    body.extend_from_slice(&tag(1));
    body.push(0xff);
    assert_eq!(
        decode(&signed_raw(&body, &[7; KEY_BYTES]), 1, &k),
        Err(ContextError::BadPayload)
    );
    body.pop();
    body.extend_from_slice(&[0, 9]);
    assert_eq!(
        decode(&signed_raw(&body, &[7; KEY_BYTES]), 1, &k),
        Err(ContextError::BadPayload)
    );
}

#[test]
fn a_forged_context_is_refused() {
    let k = keys();
    let vv = forged_vv();
    // What a client could build by hand: the payload of a real token with
    // the counter raised, and no key to sign it with.
    let mut body = vec![FORMAT_V2];
    body.extend_from_slice(&tag(5));
    let body = postcard::to_extend(&vv, body).unwrap();
    for guess in [[0u8; KEY_BYTES], [1; KEY_BYTES]] {
        assert_eq!(
            decode(&signed_raw(&body, &guess), 5, &k),
            Err(ContextError::BadMac)
        );
    }
    // A token of the old unsigned format (checksum only) is refused too.
    let mut old = vec![FORMAT_UNSIGNED];
    old.extend_from_slice(&body[1..]);
    old.extend_from_slice(&[0; 4]);
    assert_eq!(
        decode(&URL_SAFE_NO_PAD.encode(old), 5, &k),
        Err(ContextError::Unsigned)
    );
    // Made under the well-known insecure key: refused by a real cluster.
    let insecure = encode(&vv, 5, &ContextKeys::insecure());
    assert_eq!(decode(&insecure, 5, &k), Err(ContextError::BadMac));
    assert!(ContextKeys::insecure().is_insecure() && !k.is_insecure());
}

#[test]
fn previous_keys_verify_and_only_the_first_signs() {
    let old = [1u8; KEY_BYTES];
    let new = [2u8; KEY_BYTES];
    let vv = forged_vv();
    let before = ContextKeys::new(old, Vec::new());
    let during = ContextKeys::new(new, vec![old]);
    let after = ContextKeys::new(new, Vec::new());
    let unknown = ContextKeys::new([3u8; KEY_BYTES], Vec::new());
    let t_old = encode(&vv, 9, &before);
    let t_new = encode(&vv, 9, &during);
    assert_eq!(decode(&t_old, 9, &during), Ok(vv.clone()));
    assert_eq!(decode(&t_new, 9, &during), Ok(vv.clone()));
    assert_eq!(decode(&t_new, 9, &after), Ok(vv.clone()));
    assert_eq!(decode(&t_old, 9, &after), Err(ContextError::BadMac));
    assert_eq!(decode(&t_new, 9, &unknown), Err(ContextError::BadMac));
    assert_eq!(t_new, encode(&vv, 9, &after), "the first key signs");
}

#[test]
fn secrets_parse_from_hex_lines() {
    let a = "00".repeat(31) + "ff";
    let b = "AB".repeat(32);
    let k = ContextKeys::from_hex(&[&format!("# made by ringkv cert init\n{a}\n\n"), &b]).unwrap();
    assert_eq!(k.len(), 2);
    assert_eq!(k.keys[0][31], 0xff);
    assert_eq!(k.keys[1], [0xab; KEY_BYTES]);
    assert_eq!(
        ContextKeys::from_hex(&["\n# nothing\n"]).unwrap_err(),
        SecretError::Empty
    );
    assert_eq!(
        ContextKeys::from_hex(&[&format!("{a}\nxyz")]).unwrap_err(),
        SecretError::NotHex { line: 2 }
    );
    assert_eq!(
        ContextKeys::from_hex(&[&"g".repeat(64)]).unwrap_err(),
        SecretError::NotHex { line: 1 }
    );
    assert!(
        !format!("{k:?}").contains("255"),
        "Debug never prints a key"
    );
}

/// The longest vector a node can hand out fits the limit the same node
/// puts on the context header: it never makes a token it would refuse.
#[test]
fn the_largest_context_made_is_accepted() {
    let actors_max = Limits::default().actors_max;
    let k = keys().with_actors_max(actors_max);
    for n in [actors_max, 2 * actors_max] {
        let mut vv = VersionVector::new();
        for i in 0..n {
            let mut id = format!("{i:05}");
            id.push_str(&"x".repeat(NODE_ID_LEN_MAX - id.len()));
            vv.add(&Dot {
                actor: Actor {
                    node: NodeId::parse(&id).unwrap(),
                    incarnation: u32::MAX,
                },
                counter: u64::MAX,
            });
        }
        let t = encode(&vv, 3, &k);
        assert!(
            t.len() <= k.token_len_max(),
            "{} actors: {} > {}",
            n,
            t.len(),
            k.token_len_max()
        );
        assert_eq!(decode(&t, 3, &k), Ok(vv));
    }
    // And the default keys use the default limits.
    assert_eq!(keys().token_len_max(), token_len_max(actors_max));
}
