//! "Always writable" on real processes: sloppy quorum, hinted handoff and
//! partitions (the classic correctness scenarios of a Dynamo-style store).
// A scenario on real processes reads best as one story, top to bottom.
#![allow(clippy::too_many_lines)]

mod common;

use std::time::{Duration, Instant};

use common::{TestCluster, eventually};
use reqwest::StatusCode;
use serde_json::Value;

/// Longest a test waits for the cluster to notice a change or finish
/// background work (a bound, never a pass/fail on speed).
const SETTLE: Duration = Duration::from_secs(60);

async fn put(
    c: &TestCluster,
    i: usize,
    bucket: &str,
    key: &str,
    value: &str,
    q: &str,
) -> reqwest::Response {
    c.http
        .put(format!("{}{q}", c.kv(i, bucket, key)))
        .body(value.to_string())
        .send()
        .await
        .unwrap()
}

/// GET: status, and the values (one for 200, each sibling for 300).
async fn get(
    c: &TestCluster,
    i: usize,
    bucket: &str,
    key: &str,
    q: &str,
) -> (StatusCode, Vec<String>) {
    let r = c
        .http
        .get(format!("{}{q}", c.kv(i, bucket, key)))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let values = match status {
        StatusCode::OK => vec![r.text().await.unwrap()],
        StatusCode::MULTIPLE_CHOICES => {
            use base64::Engine as _;
            let v: Value = r.json().await.unwrap();
            let mut out: Vec<String> = v["siblings"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["value"].as_str())
                .map(|b| {
                    let raw = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
                    String::from_utf8(raw).unwrap()
                })
                .collect();
            out.sort();
            out
        }
        _ => vec![],
    };
    (status, values)
}

async fn cluster(c: &TestCluster, i: usize) -> Value {
    c.cluster_status(i).await
}

/// The key's preference list as node indexes (primaries first).
async fn preference(c: &TestCluster, bucket: &str, key: &str) -> Vec<usize> {
    let loc = c
        .get_json(&format!("{}/v1/ring/{bucket}/{key}", c.url(0)))
        .await;
    loc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap()[1..].parse::<usize>().unwrap() - 1)
        .collect()
}

/// Waits until node `at` sees member `who` as `alive`; returns how long it took.
async fn wait_alive(c: &TestCluster, at: usize, who: usize, alive: bool) -> Duration {
    let start = Instant::now();
    let id = format!("n{}", who + 1);
    eventually(SETTLE, async || {
        let v = cluster(c, at).await;
        let seen = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id.as_str())
            .map(|m| m["alive"] == true);
        if seen == Some(alive) {
            Ok(())
        } else {
            Err(format!("n{} does not see {id} alive={alive}: {v}", at + 1))
        }
    })
    .await;
    start.elapsed()
}

/// Hints node `i` holds.
async fn hints_pending(c: &TestCluster, i: usize) -> u64 {
    let v = cluster(c, i).await;
    v["hints"]["pending"]
        .as_u64()
        .unwrap_or_else(|| panic!("no hints.pending in /v1/cluster: {v}"))
}

/// Waits until no running node holds a hint; returns how long it took.
async fn wait_no_hints(c: &TestCluster) -> Duration {
    let start = Instant::now();
    eventually(SETTLE, async || {
        let mut total = 0;
        for i in 0..c.nodes.len() {
            if c.nodes[i].child.is_some() {
                total += hints_pending(c, i).await;
            }
        }
        if total == 0 {
            Ok(())
        } else {
            Err(format!("{total} hints not delivered"))
        }
    })
    .await;
    start.elapsed()
}

/// 5 nodes, N=3: two of a key's three primaries are killed; writes at W=2 and
/// reads at R=2 go on through fallbacks, `pw=2` is refused, and once the
/// primaries are back the hints are handed off and the fallbacks hold none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_primaries_down_writes_go_on_through_fallbacks() {
    let mut c = TestCluster::start(5, &["--timeout-ms", "2000"]).await;
    for k in 0..20 {
        let r = put(
            &c,
            k % 5,
            "default",
            &format!("early-{k}"),
            &format!("v{k}"),
            "",
        )
        .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let pref = preference(&c, "default", "cart").await;
    let (live, dead) = (pref[0], [pref[1], pref[2]]);
    let others: Vec<usize> = (0..5).filter(|i| !dead.contains(i)).collect();
    for d in dead {
        c.kill(d);
    }
    for &o in &others {
        for d in dead {
            wait_alive(&c, o, d, false).await;
        }
    }

    // W=2 succeeds through a node that is not a primary, and through the
    // surviving primary; R=2 reads it back through another node.
    let via = pref[3];
    let r = put(&c, via, "default", "cart", "v2", "").await;
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}",
        r.text().await.unwrap()
    );
    let (s, v) = get(&c, pref[4], "default", "cart", "").await;
    assert_eq!((s, v), (StatusCode::OK, vec!["v2".to_string()]));
    let r = put(&c, live, "default", "other-cart", "x", "").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // A strict write needs two primaries: a clear 503, naming the numbers.
    let r = put(&c, live, "default", "cart", "strict", "?pw=2").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["required"], 2, "{e}");
    assert!(e["message"].as_str().unwrap().contains("primar"), "{e}");
    let (_, v) = get(&c, live, "default", "cart", "").await;
    assert_eq!(
        v,
        vec!["v2".to_string()],
        "the refused write changed nothing"
    );

    // Everything written before the failure is still readable.
    for k in 0..20 {
        let (s, v) = get(
            &c,
            others[k % others.len()],
            "default",
            &format!("early-{k}"),
            "",
        )
        .await;
        assert_eq!((s, v), (StatusCode::OK, vec![format!("v{k}")]), "early-{k}");
    }
    let held: u64 = {
        let mut t = 0;
        for &o in &others {
            t += hints_pending(&c, o).await;
        }
        t
    };
    assert!(held >= 1, "the fallbacks hold hints");

    // The primaries return: hints are delivered, the fallbacks keep none,
    // and the primaries serve the new value at pr=3.
    for d in dead {
        c.restart(d).await;
    }
    let took = wait_no_hints(&c).await;
    eprintln!("handoff of {held} hints done {took:?} after both primaries served again");
    for d in dead {
        let (s, v) = get(&c, d, "default", "cart", "?r=3&pr=3").await;
        assert_eq!(
            (s, v),
            (StatusCode::OK, vec!["v2".to_string()]),
            "via n{}",
            d + 1
        );
    }
}

/// With 4 of 5 nodes down, a write at W=1 still succeeds, and it is readable
/// after the others return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_of_five_down_a_write_at_w1_succeeds() {
    let mut c = TestCluster::start(5, &["--timeout-ms", "2000"]).await;
    let survivor = 2;
    for i in (0..5).filter(|&i| i != survivor) {
        c.kill(i);
    }
    for i in (0..5).filter(|&i| i != survivor) {
        wait_alive(&c, survivor, i, false).await;
    }
    let keys: Vec<String> = (0..10).map(|k| format!("lonely-{k}")).collect();
    for k in &keys {
        let r = put(&c, survivor, "default", k, "still-here", "?w=1").await;
        assert_eq!(
            r.status(),
            StatusCode::NO_CONTENT,
            "{k}: {}",
            r.text().await.unwrap()
        );
    }
    // W=2 cannot be met by one node: refused with the counts.
    let r = put(&c, survivor, "default", "lonely-extra", "x", "?w=2").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    for i in (0..5).filter(|&i| i != survivor) {
        c.restart(i).await;
    }
    c.wait_all_see_all().await;
    wait_no_hints(&c).await;
    for (n, k) in keys.iter().enumerate() {
        let at = (survivor + 1 + n) % 5;
        let (s, v) = get(&c, at, "default", k, "?r=3").await;
        assert_eq!(s, StatusCode::OK, "{k} via n{}", at + 1);
        assert!(v.iter().any(|x| x == "still-here"), "{k}: {v:?}");
    }
}

/// A partition of real processes (fault injection drops every message
/// between the sides): both sides keep taking writes at W=1. After healing,
/// a `siblings` bucket shows both sides' values and loses nothing; an `lww`
/// bucket keeps one value per key and so loses the other side's write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_keeps_both_sides_writable() {
    let c = TestCluster::start(5, &["--timeout-ms", "1000", "--fault-injection"]).await;
    let r = c
        .http
        .put(format!("{}/v1/buckets/lww", c.url(0)))
        .body(r#"{"conflict": "lww"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // Every node must know the bucket's mode before the partition.
    for i in 0..5 {
        eventually(SETTLE, async || {
            let v = c.get_json(&format!("{}/v1/buckets/lww", c.url(i))).await;
            if v["props"]["conflict"] == "lww" {
                Ok(())
            } else {
                Err(format!("n{} has not learned the lww bucket: {v}", i + 1))
            }
        })
        .await;
    }

    let side_a = [0usize, 1];
    let side_b = [2usize, 3, 4];
    let cut = |from: &[usize], to: &[usize]| {
        let mut reqs = vec![];
        for &f in from {
            for &t in to {
                reqs.push(
                    c.http
                        .put(format!("{}/v1/admin/faults/n{}", c.url(f), t + 1))
                        .body(r#"{"drop": 1.0}"#)
                        .send(),
                );
            }
        }
        reqs
    };
    for r in cut(&side_a, &side_b)
        .into_iter()
        .chain(cut(&side_b, &side_a))
    {
        assert_eq!(r.await.unwrap().status(), StatusCode::NO_CONTENT);
    }

    // Keys with a primary on each side in both buckets; each side writes
    // every key through its own primary at W=1.
    let mut keys = vec![];
    for k in 0..400 {
        let key = format!("p-{k}");
        let mut sides = vec![];
        for bucket in ["default", "lww"] {
            let pref = preference(&c, bucket, &key).await;
            let a = pref[..3].iter().find(|i| side_a.contains(i)).copied();
            let b = pref[..3].iter().find(|i| side_b.contains(i)).copied();
            if let (Some(a), Some(b)) = (a, b) {
                sides.push((a, b));
            }
        }
        if let [d, l] = sides[..] {
            keys.push((key, d, l));
        }
        if keys.len() == 20 {
            break;
        }
    }
    assert_eq!(keys.len(), 20);
    let mut acked = 0;
    for (bi, bucket) in ["default", "lww"].into_iter().enumerate() {
        for (key, d, l) in &keys {
            let (a, b) = if bi == 0 { d } else { l };
            for (side, at) in [("A", *a), ("B", *b)] {
                let r = put(&c, at, bucket, key, &format!("{side}-{key}"), "?w=1").await;
                assert_eq!(
                    r.status(),
                    StatusCode::NO_CONTENT,
                    "{bucket}/{key} side {side}"
                );
                acked += 1;
            }
        }
    }
    assert_eq!(acked, 80);

    // Heal, then read everything at R=3.
    for i in 0..5 {
        let r = c
            .http
            .delete(format!("{}/v1/admin/faults", c.url(i)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    // Gossip may have declared the other side down during the partition:
    // wait until every node sees every node again.
    c.wait_all_see_all().await;
    // Just after the heal, gossip may still flap a node to suspect (news of
    // the partition arrives late), and a read then counts a fallback's
    // reply, which lacks that node's writes. pr=3 refuses such a read (503)
    // rather than answer from fewer than all primaries; it is retried.
    let read_primaries = async |at: usize, bucket: &str, key: &str| {
        eventually(SETTLE, async || {
            let (s, v) = get(&c, at, bucket, key, "?r=3&pr=3").await;
            if s == StatusCode::SERVICE_UNAVAILABLE {
                Err(format!(
                    "{bucket}/{key} via n{}: still 503 at pr=3: {v:?}",
                    at + 1
                ))
            } else {
                Ok((s, v))
            }
        })
        .await
    };
    let (mut kept_siblings, mut kept_lww) = (0, 0);
    for (key, _, _) in &keys {
        let want = vec![format!("A-{key}"), format!("B-{key}")];
        let (s, v) = read_primaries(4, "default", key).await;
        assert_eq!(s, StatusCode::MULTIPLE_CHOICES, "{key}: {v:?}");
        assert_eq!(v, want, "siblings bucket keeps both sides' writes");
        kept_siblings += v.len();
        let (s, v) = read_primaries(0, "lww", key).await;
        assert_eq!(s, StatusCode::OK, "lww/{key}");
        assert_eq!(v.len(), 1);
        assert!(
            want.contains(&v[0]),
            "the lww winner is one of the writes: {v:?}"
        );
        kept_lww += v.len();
    }
    eprintln!(
        "partition: {} keys written on both sides at W=1; siblings bucket kept {kept_siblings} of {} \
         acknowledged writes (lost {}), lww bucket kept {kept_lww} of {} (lost {})",
        keys.len(),
        2 * keys.len(),
        2 * keys.len() - kept_siblings,
        2 * keys.len(),
        2 * keys.len() - kept_lww
    );
    assert_eq!(kept_siblings, 2 * keys.len());
}

/// A measurement, not a check (run with `--ignored --nocapture`): how long
/// hinted handoff takes for about 10,000 hints, from the moment the primary
/// serves again until no node holds a hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: prints the handoff time for 10,000 hints"]
async fn measure_handoff_of_10k_hints() {
    use futures::StreamExt as _;
    let mut c = TestCluster::start(5, &["--timeout-ms", "5000"]).await;
    let down = 4;
    c.kill(down);
    for i in 0..4 {
        wait_alive(&c, i, down, false).await;
    }
    // Write until the fallbacks hold 10,000 hints (n5 is a primary of 3/5 of
    // the keys).
    let target = 10_000;
    let mut written = 0usize;
    let c_ref = &c;
    // A bound on a hang, generous for a debug build writing ~17,000 keys.
    eventually(Duration::from_secs(300), async || {
        let mut held = 0;
        for i in 0..4 {
            held += hints_pending(c_ref, i).await;
        }
        if held >= target {
            eprintln!("{written} keys written, {held} hints held");
            return Ok(());
        }
        // Not yet: write another batch before the next check.
        let batch: Vec<usize> = (written..written + 2_000).collect();
        written += batch.len();
        futures::stream::iter(batch)
            .map(|k| async move {
                let r = put(c_ref, k % 4, "default", &format!("h-{k}"), "0123456789", "").await;
                assert_eq!(r.status(), StatusCode::NO_CONTENT);
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        Err(format!(
            "{held} of {target} hints held after {written} keys"
        ))
    })
    .await;
    c.restart(down).await;
    let took = wait_no_hints(&c).await;
    eprintln!("handoff of all hints took {took:?} after the primary served again");
}
