//! What a signed context costs: the time to encode (MAC included) and
//! decode (MAC checked in constant time) one context token, for version
//! vectors of 1, 3 and 8 actors. Not a pass/fail test; run it in release
//! for figures (docs/benchmarks.md, "Cost of TLS and MACs"):
//!
//! ```sh
//! cargo test --release -p ringkv --test context_mac_cost -- --ignored --nocapture
//! ```

use std::hint::black_box;
use std::time::Instant;

use ringkv_core::context::{decode, encode};
use ringkv_core::{Actor, ContextKeys, Dot, NodeId, VersionVector};

fn vv(actors: usize) -> VersionVector {
    let mut vv = VersionVector::new();
    for i in 0..actors {
        vv.add(&Dot {
            actor: Actor {
                node: NodeId::from(format!("n{}", i + 1)),
                incarnation: 3,
            },
            counter: 1_000_000 + i as u64,
        });
    }
    vv
}

/// Nanoseconds per call of `f`, the best of 5 rounds of `n` calls.
fn ns_per(n: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn context_sign_and_verify_cost() {
    let keys = ContextKeys::from_hex(&[&"ab".repeat(32)]).unwrap();
    let rotated = ContextKeys::from_hex(&[&"ab".repeat(32), &"cd".repeat(32)]).unwrap();
    let n = 200_000;
    println!("| actors | token bytes | encode ns | decode ns (1 key) | decode ns (2 keys) |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for actors in [1, 3, 8] {
        let v = vv(actors);
        let token = encode(&v, 42, &keys);
        assert_eq!(decode(&token, 42, &keys).unwrap(), v);
        let enc = ns_per(n, || {
            black_box(encode(black_box(&v), 42, &keys));
        });
        let dec = ns_per(n, || {
            black_box(decode(black_box(&token), 42, &keys).unwrap());
        });
        let dec2 = ns_per(n, || {
            black_box(decode(black_box(&token), 42, &rotated).unwrap());
        });
        println!(
            "| {actors} | {} | {enc:.0} | {dec:.0} | {dec2:.0} |",
            token.len()
        );
    }
}
