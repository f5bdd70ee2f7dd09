//! Key listing end to end on three real `ringkv server` processes: keys
//! written in two buckets, some deleted, paged through 50 at a time over
//! HTTP and with `ringkv list`; a node down; limits refused.
// A scenario on real processes reads best as one story, top to bottom.
#![allow(clippy::too_many_lines)]

mod common;

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::TestCluster;
use reqwest::StatusCode;
use serde_json::Value;

/// Writes `key` (bytes, percent-encoded here) in `bucket` through node `i`.
async fn put(c: &TestCluster, i: usize, bucket: &str, key: &[u8]) {
    let url = c.kv(i, bucket, &ringkv_client::encode_segment(key));
    let r = c.http.put(url).body("v").send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}",
        r.text().await.unwrap()
    );
}

async fn delete(c: &TestCluster, i: usize, bucket: &str, key: &[u8]) {
    let url = c.kv(i, bucket, &ringkv_client::encode_segment(key));
    let r = c.http.delete(url).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}",
        r.text().await.unwrap()
    );
}

/// Pages through `bucket` over HTTP, `limit` keys a page, each page
/// through the next node; checks order and bounds; returns every key.
async fn list_http(c: &TestCluster, bucket: &str, limit: u32) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    for page in 0..1_000 {
        let mut url = format!("{}/v1/kv/{bucket}?limit={limit}", c.url(page % 3));
        if let Some(a) = &after {
            url.push_str(&format!("&after={}", ringkv_client::encode_segment(a)));
        }
        let r = c.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        let mut keys: Vec<Vec<u8>> = v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().as_bytes().to_vec())
            .collect();
        if let Some(b64) = v.get("keys_b64") {
            for k in b64.as_array().unwrap() {
                keys.push(STANDARD.decode(k.as_str().unwrap()).unwrap());
            }
        }
        keys.sort();
        assert!(keys.len() <= limit as usize, "{v}");
        out.extend(keys);
        after = match (v.get("next"), v.get("next_b64")) {
            (Some(n), _) => Some(n.as_str().unwrap().as_bytes().to_vec()),
            (None, Some(n)) => Some(STANDARD.decode(n.as_str().unwrap()).unwrap()),
            (None, None) => {
                assert!(out.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
                return out;
            }
        };
    }
    panic!("the listing of {bucket} never ended");
}

/// Runs `ringkv list ARGS` against node `i`.
fn cli(c: &TestCluster, i: usize, args: &[&str]) -> std::process::Output {
    let ca = c.certs_dir().join("ca.crt");
    std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .arg("list")
        .args(args)
        .args(["--endpoint", &c.url(i)])
        .arg("--ca")
        .arg(ca)
        .env_remove("RINGKV_ENDPOINT")
        .output()
        .expect("running ringkv")
}

fn lines(out: &std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "ringkv list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_of_50_list_exactly_the_live_keys_over_http_and_the_cli() {
    let mut c = TestCluster::start(3, &[]).await;
    // 200 keys in `alpha`, 100 in `beta` (one of them not UTF-8, some with
    // a slash or a space); every 7th of alpha and 5th of beta deleted.
    let alpha: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("key-{i:04}").into_bytes())
        .collect();
    let mut beta: Vec<Vec<u8>> = (0..99).map(|i| format!("b/{i} x").into_bytes()).collect();
    beta.push(b"\xffraw".to_vec());
    for (i, k) in alpha.iter().enumerate() {
        put(&c, i % 3, "alpha", k).await;
    }
    for (i, k) in beta.iter().enumerate() {
        put(&c, i % 3, "beta", k).await;
    }
    let mut want_alpha = BTreeSet::new();
    for (i, k) in alpha.iter().enumerate() {
        if i % 7 == 0 {
            delete(&c, (i + 1) % 3, "alpha", k).await;
        } else {
            want_alpha.insert(k.clone());
        }
    }
    let mut want_beta = BTreeSet::new();
    for (i, k) in beta.iter().enumerate() {
        if i % 5 == 0 {
            delete(&c, (i + 2) % 3, "beta", k).await;
        } else {
            want_beta.insert(k.clone());
        }
    }
    assert!(want_beta.contains(b"\xffraw".as_slice()));
    let want_alpha: Vec<Vec<u8>> = want_alpha.into_iter().collect();
    let want_beta: Vec<Vec<u8>> = want_beta.into_iter().collect();

    // Over HTTP, 50 a page, each page through another node.
    assert_eq!(list_http(&c, "alpha", 50).await, want_alpha);
    assert_eq!(list_http(&c, "beta", 50).await, want_beta);
    assert!(list_http(&c, "nothing-here", 50).await.is_empty());

    // The CLI: one key per line, paging 50 at a time.
    let text = |v: &[Vec<u8>]| -> Vec<String> {
        v.iter()
            .map(|k| {
                String::from_utf8(k.clone()).unwrap_or_else(|_| ringkv_client::encode_segment(k))
            })
            .collect()
    };
    let got = lines(&cli(&c, 0, &["--bucket", "alpha", "--page-size", "50"]));
    assert_eq!(got, text(&want_alpha));
    let got = lines(&cli(
        &c,
        1,
        &[
            "--bucket",
            "alpha",
            "--prefix",
            "key-01",
            "--page-size",
            "7",
        ],
    ));
    let k01: Vec<Vec<u8>> = want_alpha
        .iter()
        .filter(|k| k.starts_with(b"key-01"))
        .cloned()
        .collect();
    assert_eq!(got, text(&k01));
    let out = cli(&c, 2, &["--bucket", "beta", "--page-size", "50", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<Vec<u8>> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().as_bytes().to_vec())
        .collect();
    assert_eq!(
        v["keys_b64"],
        serde_json::json!([STANDARD.encode(b"\xffraw")])
    );
    keys.push(b"\xffraw".to_vec());
    keys.sort();
    assert_eq!(keys, want_beta);
    assert!(v.get("next").is_none(), "{v}");
    // --limit stops early and says where to go on.
    let out = cli(
        &c,
        0,
        &["--bucket", "alpha", "--page-size", "50", "--limit", "60"],
    );
    assert_eq!(lines(&out), text(&want_alpha[..60]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "next: {}",
            String::from_utf8_lossy(&want_alpha[59])
        )),
        "{stderr}"
    );

    // Limits are checked.
    for (q, status) in [
        ("limit=10001", StatusCode::BAD_REQUEST),
        ("limit=0", StatusCode::BAD_REQUEST),
        (
            &format!("prefix={}", "x".repeat(1100)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let r = c
            .http
            .get(format!("{}/v1/kv/alpha?{q}", c.url(0)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{q}: {}", r.text().await.unwrap());
    }

    // A strong bucket is not listed (on the node that made it strong).
    let r = c
        .http
        .put(format!("{}/v1/buckets/ledger", c.url(0)))
        .body(r#"{"consistency": "strong"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = c
        .http
        .get(format!("{}/v1/kv/ledger", c.url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("strong"));

    // One node down: R=2 of N=3 still lists everything; r=all is a 503
    // that names the partitions short of replies.
    c.kill(2);
    assert_eq!(list_http_two(&c, "alpha").await, want_alpha);
    let r = c
        .http
        .get(format!("{}/v1/kv/alpha?r=all&timeout_ms=500", c.url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("partition "), "{v}");
    assert_eq!(v["required"], 3, "{v}");
}

/// Pages through `bucket` over nodes 1 and 2 only (node 3 is down).
async fn list_http_two(c: &TestCluster, bucket: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for page in 0..1_000 {
        let mut url = format!("{}/v1/kv/{bucket}?limit=50", c.url(page % 2));
        if let Some(a) = &after {
            url.push_str(&format!(
                "&after={}",
                ringkv_client::encode_segment(a.as_bytes())
            ));
        }
        let r = c.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        for k in v["keys"].as_array().unwrap() {
            out.push(k.as_str().unwrap().as_bytes().to_vec());
        }
        match v.get("next") {
            Some(n) => after = Some(n.as_str().unwrap().to_string()),
            None => return out,
        }
    }
    panic!("the listing never ended");
}
