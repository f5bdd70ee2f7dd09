//! An adversary against a running 3-node TLS cluster (real processes), while
//! a concurrent read load (GETs at R=2 over the HTTP API) runs throughout.
//! Each attack is tried without valid credentials, except the huge-sibling
//! frame, sent with a valid node certificate of the cluster (the strongest
//! attacker short of a stolen key being used as that node): every one is
//! refused and changes nothing, and the read load sees no error. The
//! load's latency is printed (`--nocapture`), never asserted: timing
//! belongs in benchmarks.
//!
//! The attacks: a replica write and a bucket-properties message over
//! plaintext and over TLS with another CA's certificate; a fake member
//! joining with another CA; a hello of 64 KiB; 2,000 idle connections
//! (past `--peer-connections-max`); a replica write of an object with
//! 150,000 tombstone siblings from a holder of n2's certificate; client
//! PUTs with a forged context (an altered MAC, and a counter of 2^64-1 for
//! another node's actor signed under keys that are not the cluster's).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use common::attacker::{
    client_config, connect, frame, hello, metric, outsider, read_all, refused, send_and_wait_close,
    wait_metric,
};
use common::{TestCluster, make_certs, ringkv_cert};
use ringkv_core::context::{self, ContextKeys};
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{Envelope, PeerMsg};
use ringkv_core::version::{Actor, Dot, Object, Sibling, Value, VersionVector};
use ringkv_core::{BucketEntry, BucketProps, ConflictMode, Hlc, NodeId, key_hash};
use tokio::net::TcpStream;

/// Generous bound on anything that must happen here.
const BOUND: Duration = Duration::from_secs(30);

/// The context header.
const CTX: &str = "x-ringkv-context";

/// Keys the read load reads (written before it starts).
const LOAD_KEYS: usize = 20;

/// Idle connections opened at once against one node.
const FLOOD: usize = 2_000;

/// Tombstone siblings in the huge object.
const HUGE_SIBLINGS: u64 = 150_000;

/// `msg` from `from` as one frame.
fn envelope(from: &str, msg: PeerMsg) -> Vec<u8> {
    frame(
        &Envelope {
            from: NodeId::from(from),
            msg,
        }
        .to_bytes(),
    )
}

/// A replica write of `object` to `key` (bucket `default`), acked.
fn replica_put(from: &str, key: &str, object: Object) -> Vec<u8> {
    let msg = PeerMsg::ReplicaPut {
        req_id: 1,
        key: BucketKey::new("default", key.to_string()),
        object,
        stands_in_for: None,
        sent_us: 0,
    };
    envelope(from, msg)
}

/// An object with one value, `value`, written by `from`.
fn small_object(from: &str, value: &'static [u8]) -> Object {
    let dot = Dot {
        actor: Actor {
            node: NodeId::from(from),
            incarnation: 7,
        },
        counter: 1,
    };
    Object::empty().update(
        &VersionVector::new(),
        dot,
        Value::Data(Bytes::from_static(value)),
        0,
    )
}

/// An object of `n` tombstone siblings by `from`, sorted by dot, its
/// version vector covering them all (well-formed but for its width).
fn huge_object(from: &str, n: u64) -> Object {
    let actor = Actor {
        node: NodeId::from(from),
        incarnation: 1,
    };
    let mut vv = VersionVector::new();
    let siblings = (1..=n)
        .map(|counter| {
            let dot = Dot {
                actor: actor.clone(),
                counter,
            };
            vv.add(&dot);
            Sibling {
                dot,
                value: Value::Tombstone,
                timestamp_ms: 1,
            }
        })
        .collect();
    Object { vv, siblings }
}

/// A bucket-properties entry that would make `default` N=1, R=W=1 with one
/// sibling, stamped far in the future so it would supersede anything.
fn bucket_attack(from: &str) -> Vec<u8> {
    let entry = BucketEntry {
        bucket: b"default".to_vec(),
        props: BucketProps {
            n: 1,
            r: 1,
            w: 1,
            pr: 0,
            pw: 0,
            conflict: ConflictMode::Lww,
            siblings_warn: 1,
            siblings_max: 1,
            consistency: Default::default(),
        },
        stamp: Hlc::from_parts(u64::MAX, u16::MAX),
        origin: NodeId::from(from),
    };
    envelope(from, PeerMsg::Bucket { entry })
}

/// The metric of peer objects a node refused (over the peer limits).
const PEER_REFUSED: &str = "ringkv_node_events_total{event=\"peer_refused\"}";

/// `GET /v1/buckets/default` of node `i`.
async fn default_props(c: &TestCluster, i: usize) -> serde_json::Value {
    c.get_json(&format!("{}/v1/buckets/default", c.url(i)))
        .await
}

/// What the read load saw: each GET's latency, and every failure.
struct LoadReport {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

/// Reads the load keys at R=2 round-robin over the nodes until `stop`.
async fn read_load(http: reqwest::Client, urls: Vec<String>, stop: Arc<AtomicBool>) -> LoadReport {
    let mut report = LoadReport {
        latencies: Vec::new(),
        errors: Vec::new(),
    };
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let url = format!(
            "{}/v1/kv/default/load-{}?r=2",
            urls[i % urls.len()],
            i % LOAD_KEYS
        );
        let start = Instant::now();
        let outcome = match http.get(&url).send().await {
            Ok(r) if r.status() == 200 => match r.text().await {
                Ok(body) if body == format!("value-{}", i % LOAD_KEYS) => Ok(()),
                Ok(body) => Err(format!("{url}: wrong value {body:?}")),
                Err(e) => Err(format!("{url}: {e}")),
            },
            Ok(r) => Err(format!("{url}: {}", r.status())),
            Err(e) => Err(format!("{url}: {e}")),
        };
        report.latencies.push(start.elapsed());
        if let Err(e) = outcome {
            report.errors.push(e);
        }
        i += 1;
    }
    report
}

/// The `q` quantile of sorted `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A replica write and a bucket-properties message, over plaintext and
/// over TLS with another CA's certificate naming n2: both refused at the
/// handshake, nothing applied.
async fn unauthenticated_messages(c: &TestCluster) {
    let n1 = c.nodes[0].rpc.clone();
    let n2_http = c.nodes[1].http.clone();
    let evil = c.tmp.path().join("evil");
    let props = default_props(c, 0).await;
    let attack = |key: &str| {
        [
            hello("n2", &n2_http),
            replica_put("n2", key, small_object("n2", b"forged")),
            bucket_attack("n2"),
        ]
        .concat()
    };
    let before = metric(c, 0, &refused("tls")).await;
    let mut io = connect(&n1, "n1", None).await.unwrap();
    assert!(send_and_wait_close(&mut io, &attack("plaintext"), BOUND).await);
    if let Some(mut io) = connect(&n1, "n1", Some(client_config(&c.certs_dir(), &evil, "n2"))).await
    {
        assert!(send_and_wait_close(&mut io, &attack("other-ca"), BOUND).await);
    }
    let now = wait_metric(c, 0, &refused("tls"), before + 2, BOUND).await;
    for key in ["plaintext", "other-ca"] {
        assert_eq!(read_all(c, 0, key).await, 404, "{key} was applied");
    }
    for i in 0..3 {
        assert_eq!(
            default_props(c, i).await,
            props,
            "n{} took the props",
            i + 1
        );
    }
    println!(
        "attack: replica write + bucket props over plaintext and another CA: \
         refused at the TLS handshake (tls refusals {before} -> {now}), \
         keys 404, bucket props unchanged: {props}"
    );
}

/// An outsider with another CA's certificate joins n1: never a member.
async fn fake_member(c: &TestCluster) {
    let evil = c.tmp.path().join("evil");
    let log = c.tmp.path().join("n8.log");
    let before = metric(c, 0, &refused("tls")).await;
    let _n8 = outsider(
        c,
        "n8",
        &c.nodes[0].rpc,
        &["--certs", evil.to_str().unwrap()],
        &log,
    );
    // It announces itself every second; wait for a few refused tries.
    let now = wait_metric(c, 0, &refused("tls"), before + 3, BOUND).await;
    for i in 0..3 {
        let status = c.cluster_status(i).await;
        let ids: Vec<&str> = status["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["n1", "n2", "n3"],
            "an outsider became a member: {status}"
        );
    }
    println!(
        "attack: n8 --join with another CA: tls refusals {before} -> {now}, \
         members still n1, n2, n3 on every node"
    );
}

/// A 64 KiB hello (the limit is 4 KiB), with a certificate the cluster's
/// CA issued to n4 (not a member): closed.
async fn huge_hello(c: &TestCluster) {
    let certs = c.certs_dir();
    let before = metric(c, 0, &refused("hello")).await;
    let mut io = connect(
        &c.nodes[0].rpc,
        "n1",
        Some(client_config(&certs, &certs, "n4")),
    )
    .await
    .expect("n4's certificate is the cluster CA's");
    let big = frame(&vec![0u8; 64 * 1024]);
    assert!(
        send_and_wait_close(&mut io, &big, BOUND).await,
        "a huge hello stays"
    );
    let now = wait_metric(c, 0, &refused("hello"), before + 1, BOUND).await;
    println!("attack: 64 KiB hello: closed (hello refusals {before} -> {now})");
}

/// [`FLOOD`] plaintext connections that never say anything, held open
/// together: those past the cap are closed at once, the rest at the
/// handshake timeout; n1 keeps serving meanwhile.
async fn idle_flood(c: &TestCluster) {
    let before = metric(c, 0, &refused("full")).await;
    let mut held = Vec::with_capacity(FLOOD);
    let mut failed = 0;
    for _ in 0..FLOOD {
        match tokio::time::timeout(BOUND, TcpStream::connect(&c.nodes[0].rpc)).await {
            Ok(Ok(s)) => held.push(s),
            _ => failed += 1,
        }
    }
    // The default cap is 256 inbound connections (the two real peers hold
    // two of them): at least the rest are refused as surplus.
    let now = wait_metric(c, 0, &refused("full"), before + (FLOOD - 256) as u64, BOUND).await;
    assert_eq!(read_all(c, 0, "load-0").await, 200, "n1 stopped serving");
    let status = c.cluster_status(0).await;
    drop(held);
    println!(
        "attack: {FLOOD} idle connections ({failed} failed to connect): \
         'full' refusals {before} -> {now}; n1 served meanwhile ({} members)",
        status["members"].as_array().unwrap().len()
    );
}

/// From a holder of n2's valid certificate (as n2): a replica write of an
/// object with [`HUGE_SIBLINGS`] tombstone siblings. Refused by the peer
/// input limits (counted; acked not ok to n2's link), nothing stored.
async fn huge_siblings(c: &TestCluster) {
    let certs = c.certs_dir();
    let before = metric(c, 0, PEER_REFUSED).await;
    let mut io = connect(
        &c.nodes[0].rpc,
        "n1",
        Some(client_config(&certs, &certs, "n2")),
    )
    .await
    .expect("n2's certificate is the cluster CA's");
    let write = [
        hello("n2", &c.nodes[1].http),
        replica_put("n2", "huge", huge_object("n2", HUGE_SIBLINGS)),
    ]
    .concat();
    let bytes = write.len();
    let closed = send_and_wait_close(&mut io, &write, Duration::from_millis(500)).await;
    let now = wait_metric(c, 0, PEER_REFUSED, before + 1, BOUND).await;
    assert_eq!(
        read_all(c, 0, "huge").await,
        404,
        "the huge object was stored"
    );
    println!(
        "attack: ReplicaPut of {HUGE_SIBLINGS} tombstone siblings ({bytes} bytes) \
         as n2 with n2's certificate: refused by the peer limits (peer_refused \
         {before} -> {now}; connection closed: {closed}), key 404"
    );
}

/// Client PUTs of `ctx-key` with a forged context: 400, nothing changed.
async fn forged_contexts(c: &TestCluster) {
    let url = c.kv(0, "default", "ctx-key");
    let read = c.http.get(&url).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let token = read.headers()[CTX].to_str().unwrap().to_string();
    // (1) The real token with one bit of its MAC flipped.
    let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
    *raw.last_mut().unwrap() ^= 1;
    let altered = URL_SAFE_NO_PAD.encode(raw);
    // (2) n3's actor at counter 2^64-1, signed with the well-known insecure
    // key and with a key of the attacker's.
    let mut vv = VersionVector::new();
    vv.add(&Dot {
        actor: Actor {
            node: NodeId::from("n3"),
            incarnation: 1,
        },
        counter: u64::MAX,
    });
    let hash = key_hash(b"default", b"ctx-key");
    let forged = [
        altered,
        context::encode(&vv, hash, &ContextKeys::insecure()),
        context::encode(&vv, hash, &ContextKeys::new([42; 32], Vec::new())),
    ];
    for ctx in &forged {
        let r = c
            .http
            .put(&url)
            .header(CTX, ctx)
            .body("forged")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 400, "a forged context was taken: {body}");
    }
    let after = c.http.get(&url).send().await.unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(
        after.headers()[CTX].to_str().unwrap(),
        token,
        "context changed"
    );
    assert_eq!(after.text().await.unwrap(), "original");
    println!(
        "attack: 3 PUTs with forged contexts (altered MAC; n3 at 2^64-1 under \
         the insecure key and under another key): 400 each, value and context unchanged"
    );
}

/// Writes the load keys and `ctx-key` at W=all.
async fn write_keys(c: &TestCluster) {
    let mut writes: Vec<(String, String)> = (0..LOAD_KEYS)
        .map(|k| (format!("load-{k}"), format!("value-{k}")))
        .collect();
    writes.push(("ctx-key".into(), "original".into()));
    for (k, v) in writes {
        let r = c
            .http
            .put(format!("{}?w=all", c.kv(0, "default", &k)))
            .body(v)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "writing {k}: {}", r.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unauthenticated_attack_is_refused_while_reads_are_answered() {
    let c = TestCluster::start(3, &[]).await;
    make_certs(&c.tmp.path().join("evil"), &["n2", "n8"]);
    ringkv_cert(&["issue", "--dir", c.certs_dir().to_str().unwrap(), "n4"]);
    write_keys(&c).await;

    let stop = Arc::new(AtomicBool::new(false));
    let urls = (0..3).map(|i| c.url(i)).collect();
    let load = tokio::spawn(read_load(c.http.clone(), urls, stop.clone()));

    unauthenticated_messages(&c).await;
    fake_member(&c).await;
    huge_hello(&c).await;
    idle_flood(&c).await;
    huge_siblings(&c).await;
    forged_contexts(&c).await;

    stop.store(true, Ordering::Relaxed);
    let LoadReport {
        mut latencies,
        errors,
    } = tokio::time::timeout(BOUND, load).await.unwrap().unwrap();
    latencies.sort();
    println!(
        "read load (R=2, round-robin over 3 nodes): {} reads, {} errors, p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        errors.len(),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    assert!(errors.is_empty(), "the read load saw errors: {errors:#?}");
    assert!(!latencies.is_empty());
}
