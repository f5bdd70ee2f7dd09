//! Who may talk on the peer port of a cluster started with `--certs`, on
//! real processes: a client speaking the peer protocol itself (rustls, or
//! plain TCP) and outsider server processes. Only a peer with a
//! certificate from the cluster's CA, saying in its hello the node id that
//! certificate names, gets a message to the node: a certificate from
//! another CA, a valid certificate for n4 claiming to be n2, or no TLS at
//! all get neither a replica write applied nor membership. Also the
//! listener's hygiene: late hellos, oversized hellos, idle connections and
//! too many connections are closed.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::attacker::{
    client_config, connect, frame, hello, metric, outsider, read_all, refused, send_and_wait_close,
    wait_metric,
};
use common::{TestCluster, eventually, make_certs, ringkv_cert};
use ringkv_core::NodeId;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{Envelope, PeerMsg};
use ringkv_core::version::{Actor, Dot, Object, Value, VersionVector};
use tokio::io::AsyncWriteExt;

/// Generous bound on anything that must happen here.
const BOUND: Duration = Duration::from_secs(20);

/// The HTTP address the hand-made hellos here claim (nobody serves it).
const NO_HTTP: &str = "127.0.0.1:1";

/// A replica write of `key` = "forged", made by `from`, as one frame.
fn replica_put(from: &str, key: &str) -> Vec<u8> {
    let dot = Dot {
        actor: Actor {
            node: NodeId::from(from),
            incarnation: 7,
        },
        counter: 1,
    };
    let object = Object::empty().update(
        &VersionVector::new(),
        dot,
        Value::Data(Bytes::from_static(b"forged")),
        0,
    );
    let msg = PeerMsg::ReplicaPut {
        req_id: 0,
        key: BucketKey::new("default", key.to_string()),
        object,
        stands_in_for: None,
        sent_us: 0,
    };
    frame(
        &Envelope {
            from: NodeId::from(from),
            msg,
        }
        .to_bytes(),
    )
}

/// Waits until node `i` counted more than `before` refusals for `reason`.
async fn wait_refused(c: &TestCluster, i: usize, reason: &str, before: u64) {
    wait_metric(c, i, &refused(reason), before + 1, BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_certified_node_gets_a_replica_write_applied() {
    let c = TestCluster::start(3, &[]).await;
    let certs = c.certs_dir();
    let n1 = c.nodes[0].rpc.clone();
    // Another CA, with a certificate that names n2.
    let evil = c.tmp.path().join("evil");
    make_certs(&evil, &["n2"]);
    // The cluster's CA issued n4 (not a member).
    ringkv_cert(&["issue", "--dir", certs.to_str().unwrap(), "n4"]);

    // A certificate from another CA: refused at the handshake.
    let before = metric(&c, 0, &refused("tls")).await;
    let io = connect(&n1, "n1", Some(client_config(&certs, &evil, "n2"))).await;
    if let Some(mut io) = io {
        let attack = [hello("n2", NO_HTTP), replica_put("n2", "other-ca")].concat();
        assert!(send_and_wait_close(&mut io, &attack, BOUND).await);
    }
    wait_refused(&c, 0, "tls", before).await;

    // n4's valid certificate, claiming to be n2: refused at the hello.
    let before = metric(&c, 0, &refused("id_mismatch")).await;
    let mut io = connect(&n1, "n1", Some(client_config(&certs, &certs, "n4")))
        .await
        .expect("n4's certificate is the cluster CA's");
    let attack = [hello("n2", NO_HTTP), replica_put("n2", "n4-as-n2")].concat();
    assert!(send_and_wait_close(&mut io, &attack, BOUND).await);
    wait_refused(&c, 0, "id_mismatch", before).await;

    // No TLS at all: refused at the handshake.
    let before = metric(&c, 0, &refused("tls")).await;
    let mut io = connect(&n1, "n1", None).await.unwrap();
    let attack = [hello("n2", NO_HTTP), replica_put("n2", "plaintext")].concat();
    assert!(send_and_wait_close(&mut io, &attack, BOUND).await);
    wait_refused(&c, 0, "tls", before).await;

    // The same write from the real n2 (its certificate, its id) is applied:
    // the refusals above were about who spoke, not what they sent.
    let mut io = connect(&n1, "n1", Some(client_config(&certs, &certs, "n2")))
        .await
        .unwrap();
    let write = [hello("n2", NO_HTTP), replica_put("n2", "genuine")].concat();
    assert!(!send_and_wait_close(&mut io, &write, Duration::from_millis(500)).await);
    eventually(BOUND, async || match read_all(&c, 0, "genuine").await {
        200 => Ok(()),
        s => Err(c.saw(0, format!("the genuine replica write is not there: {s}"))),
    })
    .await;
    for key in ["other-ca", "n4-as-n2", "plaintext"] {
        assert_eq!(read_all(&c, 0, key).await, 404, "{key} was applied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_without_a_certificate_of_the_cluster_cannot_join() {
    let c = TestCluster::start(2, &[]).await;
    let seed = c.nodes[0].rpc.clone();
    let evil: PathBuf = c.tmp.path().join("evil");
    make_certs(&evil, &["n8"]);
    let before = metric(&c, 0, &refused("tls")).await;
    let logs = (c.tmp.path().join("n8.log"), c.tmp.path().join("n9.log"));
    let _other_ca = outsider(
        &c,
        "n8",
        &seed,
        &["--certs", evil.to_str().unwrap()],
        &logs.0,
    );
    let _plain = outsider(&c, "n9", &seed, &["--insecure"], &logs.1);
    // Both keep announcing themselves (every second); each try is refused.
    eventually(BOUND, async || {
        let now = metric(&c, 0, &refused("tls")).await;
        if now >= before + 4 {
            Ok(())
        } else {
            Err(c.saw(0, format!("only {now} TLS refusals so far")))
        }
    })
    .await;
    for i in 0..2 {
        let status = c.cluster_status(i).await;
        let ids: Vec<&str> = status["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["n1", "n2"], "an outsider became a member: {status}");
    }
    let log = std::fs::read_to_string(&logs.0).unwrap();
    assert!(log.contains("not a member of this cluster"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_closes_late_large_idle_and_surplus_connections() {
    let one = [
        "--n",
        "1",
        "--r",
        "1",
        "--w",
        "1",
        "--peer-connections-max",
        "3",
        "--peer-idle-timeout-ms",
        "1000",
    ];
    let c = TestCluster::start(1, &one).await;
    let certs = c.certs_dir();
    ringkv_cert(&["issue", "--dir", certs.to_str().unwrap(), "n7"]);
    let n1 = c.nodes[0].rpc.clone();
    let tls = || Some(client_config(&certs, &certs, "n7"));

    // Connections past --peer-connections-max are closed at once; the ones
    // that never said hello are closed after the hello timeout (5 s).
    let before_full = metric(&c, 0, &refused("full")).await;
    let before_late = metric(&c, 0, &refused("hello_timeout")).await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(connect(&n1, "n1", None).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut surplus = connect(&n1, "n1", None).await.unwrap();
    assert!(send_and_wait_close(&mut surplus, &[], Duration::from_secs(2)).await);
    wait_refused(&c, 0, "full", before_full).await;
    for mut s in silent {
        assert!(
            send_and_wait_close(&mut s, &[], BOUND).await,
            "a silent peer stays"
        );
    }
    wait_refused(&c, 0, "hello_timeout", before_late).await;

    // A hello larger than 4 KiB is refused.
    let before = metric(&c, 0, &refused("hello")).await;
    let mut io = connect(&n1, "n1", tls()).await.unwrap();
    let big = frame(&vec![0u8; 64 * 1024]);
    assert!(send_and_wait_close(&mut io, &big, BOUND).await);
    wait_refused(&c, 0, "hello", before).await;

    // A connection that said hello and then nothing is closed after the
    // idle timeout; keepalives (empty frames) keep it open.
    let mut idle = connect(&n1, "n1", tls()).await.unwrap();
    assert!(send_and_wait_close(&mut idle, &hello("n7", NO_HTTP), Duration::from_secs(10)).await);
    let mut kept = connect(&n1, "n1", tls()).await.unwrap();
    kept.write_all(&hello("n7", NO_HTTP)).await.unwrap();
    for _ in 0..8 {
        // Over twice the idle timeout in all.
        assert!(
            !send_and_wait_close(&mut kept, &frame(&[]), Duration::from_millis(300)).await,
            "closed although it sent keepalives"
        );
    }
}
