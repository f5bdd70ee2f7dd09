//! Anti-entropy on real processes: with hinted handoff off, a node that
//! was down while 10,000 writes were acknowledged holds every one of them
//! after one `ringkv repair` pass, found by the hash trees (no read touched
//! those keys), and reads them back alone.
// A scenario on real processes reads best as one story, top to bottom.
#![allow(clippy::too_many_lines)]

mod common;

use std::process::Command;

use std::time::Duration;

use common::{TestCluster, eventually};
use futures::StreamExt;

const KEYS: usize = 10_000;

/// PUTs `value`; a write refused for want of a quorum (on a loaded machine
/// gossip may briefly suspect the other survivor) is retried with the
/// context of a read, so the retry supersedes what the failed attempt may
/// have left. Returns the last answer.
async fn put_until_acknowledged(
    http: &reqwest::Client,
    url: String,
    value: String,
) -> (u16, String) {
    let mut context: Option<String> = None;
    let mut last = (0, String::new());
    for _ in 0..10 {
        let mut req = http.put(&url).body(value.clone());
        if let Some(c) = &context {
            req = req.header("X-Ringkv-Context", c);
        }
        last = match req.send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        if last.0 == 204 {
            return last;
        }
        // The failed attempt may have left its value on a survivor: the
        // retry carries the context of a read of both survivors, so it
        // supersedes that value rather than standing beside it.
        context = None;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Ok(r) = http.get(format!("{url}&r=2")).send().await else {
                continue;
            };
            if [200, 300, 404].contains(&r.status().as_u16()) {
                context = r
                    .headers()
                    .get("X-Ringkv-Context")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                break;
            }
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_ten_thousand_writes_gets_all_of_them_from_one_repair_pass() {
    let mut c = TestCluster::start(
        3,
        &[
            "--hinted-handoff",
            "false",
            "--aae-interval-ms",
            "0",
            "--gossip-fast",
        ],
    )
    .await;
    c.kill(2);
    // Both survivors know n3 is gone before the writes start, so each write
    // targets the two of them (hinted handoff is off: no stand-in).
    for i in 0..2 {
        eventually(Duration::from_secs(60), async || {
            let v = c.cluster_status(i).await;
            let n3 = v["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == "n3")
                .cloned();
            match n3 {
                Some(m) if m["alive"] == false => Ok(()),
                other => Err(format!("node {} still sees n3 as {other:?}", i + 1)),
            }
        })
        .await;
    }

    // 10,000 writes through n1, each acknowledged by n1 and n2 (W=2).
    let http = c.http.clone();
    // A generous per-request timeout: the debug build under test on two
    // cores is slow, and this test is about repair, not latency.
    let urls: Vec<String> = (0..KEYS)
        .map(|i| format!("{}?timeout_ms=60000", c.kv(0, "default", &format!("k{i}"))))
        .collect();
    let answers: Vec<(u16, String)> = futures::stream::iter(urls.into_iter().enumerate())
        .map(|(i, url)| put_until_acknowledged(&http, url, format!("v{i}")))
        .buffer_unordered(8)
        .collect()
        .await;
    let failed: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s != 204).collect();
    if !failed.is_empty() {
        for i in 0..2 {
            let m = c
                .http
                .get(format!("{}/metrics", c.url(i)))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            for l in m
                .lines()
                .filter(|l| l.contains("node_events_total") && !l.ends_with(" 0"))
            {
                eprintln!("n{}: {l}", i + 1);
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} writes not acknowledged, e.g. {:?}\n{}",
        failed.len(),
        failed[0],
        [c.log(0), c.log(1)]
            .join("\n")
            .lines()
            .filter(|l| !l.contains("INFO"))
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );

    c.restart(2).await;
    c.wait_all_see_all().await;

    // One repair pass, from the CLI, on every node.
    let rows = repair_pass(&c, 2).await;
    let row = |id: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["node"] == id)
            .unwrap_or_else(|| panic!("no row for {id}: {rows}"))
            .clone()
    };
    assert!(
        rows.as_array().unwrap().iter().all(|r| r["done"] == true),
        "{rows}"
    );
    assert!(row("n3")["keys_repaired"].as_u64().unwrap() > 0, "{rows}");
    // n3 got exactly the keys it missed, from anti-entropy; nothing read
    // them. (The last repairs may land just after the pass looked done:
    // they travel on their own.)
    eventually(Duration::from_secs(60), async || {
        let s = c.get_json(&format!("{}/v1/repair", c.url(2))).await;
        if s["keys_repaired"] == KEYS {
            Ok(())
        } else {
            Err(format!(
                "n3 repaired {} keys so far: {s}",
                s["keys_repaired"]
            ))
        }
    })
    .await;
    let n3 = c.get_json(&format!("{}/v1/cluster", c.url(2))).await;
    assert_eq!(n3["read_repairs"], 0, "{n3}");
    eprintln!("repair pass: {rows}");

    // n3 alone holds every write: the others are gone, so no read repair
    // and no other replica can answer.
    c.kill(0);
    c.kill(1);
    let urls: Vec<String> = (0..KEYS)
        .map(|i| {
            format!(
                "{}?r=1&timeout_ms=2000",
                c.kv(2, "default", &format!("k{i}"))
            )
        })
        .collect();
    let bodies: Vec<(usize, Option<String>)> = futures::stream::iter(urls.into_iter().enumerate())
        .map(|(i, url)| {
            let http = http.clone();
            async move {
                let r = http.get(url).send().await.ok();
                let body = match r {
                    Some(r) => Some(format!(
                        "{} {}",
                        r.status().as_u16(),
                        r.text().await.unwrap_or_default()
                    )),
                    None => None,
                };
                (i, body)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let wrong: Vec<usize> = bodies
        .iter()
        .filter(|(i, b)| b.as_deref() != Some(format!("200 v{i}").as_str()))
        .map(|(i, _)| *i)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} keys not held by n3, e.g. k{}: {:?}",
        wrong.len(),
        wrong[0],
        bodies.iter().find(|(i, _)| *i == wrong[0])
    );
}

/// Runs `ringkv repair` against node `i` and returns its JSON rows.
async fn repair_pass(c: &TestCluster, i: usize) -> serde_json::Value {
    let endpoint = c.url(i);
    let ca = c.certs_dir().join("ca.crt");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_ringkv"))
            .args([
                "repair",
                "--json",
                "--timeout-s",
                "120",
                "--endpoint",
                &endpoint,
            ])
            .arg("--ca")
            .arg(ca)
            .output()
            .expect("running ringkv repair")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "ringkv repair failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sum of `field` over the rows of a repair pass.
fn total(rows: &serde_json::Value, field: &str) -> u64 {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_u64().unwrap())
        .sum()
}

/// Sets (or with `drop` 0, heals) the links between node `a` and node `b`,
/// both ways.
async fn cut(c: &TestCluster, a: usize, b: usize, drop: f64) {
    for (from, to) in [(a, b), (b, a)] {
        let r = c
            .http
            .put(format!("{}/v1/admin/faults/n{}", c.url(from), to + 1))
            .body(format!(r#"{{"drop": {drop}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_keys_never_come_back_through_repair_and_purge() {
    let c = TestCluster::start(
        3,
        &[
            "--hinted-handoff",
            "false",
            "--aae-interval-ms",
            "0",
            "--tombstone-grace-s",
            "2",
            "--fault-injection",
        ],
    )
    .await;
    const N: usize = 200;
    for i in 0..N {
        let url = format!("{}?w=all", c.kv(0, "default", &format!("k{i}")));
        let r = c.http.put(url).body("v").send().await.unwrap();
        assert_eq!(r.status(), 204, "write k{i} to all three");
    }

    // n3 is cut off; half the keys are deleted through n1 (n1 and n2 ack).
    cut(&c, 2, 0, 1.0).await;
    cut(&c, 2, 1, 1.0).await;
    for i in 0..N / 2 {
        let url = format!("{}?timeout_ms=10000", c.kv(0, "default", &format!("k{i}")));
        let r = c.http.delete(url).send().await.unwrap();
        assert_eq!(r.status(), 204, "delete k{i}: {}", r.text().await.unwrap());
    }
    cut(&c, 2, 0, 0.0).await;
    cut(&c, 2, 1, 0.0).await;
    c.wait_all_see_all().await;
    // The tombstones' grace period passes while n3 still holds the values.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // First pass: the trees find what n3 missed and send it the
    // tombstones. No purge may remove a tombstone n3 lacked.
    let first = repair_pass(&c, 0).await;
    assert!(total(&first, "keys_repaired") > 0, "{first}");
    // The next pass purges the tombstones every replica now holds (a
    // replica may apply the purge just after the CLI saw the pass end, so
    // the count is read from each node, within a bound).
    repair_pass(&c, 0).await;
    eventually(Duration::from_secs(60), async || {
        let mut purged = 0;
        for i in 0..3 {
            purged += c.get_json(&format!("{}/v1/repair", c.url(i))).await["tombstones_purged"]
                .as_u64()
                .unwrap();
        }
        if purged == 3 * (N / 2) as u64 {
            Ok(())
        } else {
            Err(format!("{purged} of {} tombstones purged", 3 * (N / 2)))
        }
    })
    .await;

    // Read every key through every node, from all three replicas (r=all):
    // a value any replica kept would show.
    for node in 0..3 {
        for i in 0..N {
            let url = format!("{}?r=all", c.kv(node, "default", &format!("k{i}")));
            let r = c.http.get(url).send().await.unwrap();
            let want = if i < N / 2 { 404 } else { 200 };
            assert_eq!(r.status(), want, "k{i} through n{}", node + 1);
        }
    }
    // And once more after another pass: nothing comes back.
    repair_pass(&c, 1).await;
    for i in 0..N / 2 {
        let url = format!("{}?r=all", c.kv(2, "default", &format!("k{i}")));
        assert_eq!(c.http.get(url).send().await.unwrap().status(), 404, "k{i}");
    }
}
