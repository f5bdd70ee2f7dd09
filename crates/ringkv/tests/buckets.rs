//! Bucket properties end to end on three real `ringkv server` processes:
//! set on one node, read on every node, invalid changes refused with what
//! is allowed, and the `ringkv bucket` commands.
// A scenario on real processes reads best as one story, top to bottom.
#![allow(clippy::too_many_lines)]

mod common;

use std::process::Output;
use std::time::Duration;

use common::{TestCluster, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Longest wait for a change to reach every node.
const SPREAD_WAIT: Duration = Duration::from_secs(20);

fn bucket_url(c: &TestCluster, i: usize, bucket_encoded: &str) -> String {
    format!("{}/v1/buckets/{bucket_encoded}", c.url(i))
}

async fn get_json(c: &TestCluster, url: &str) -> (StatusCode, Value) {
    let r = c.http.get(url).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

async fn put_body(c: &TestCluster, url: &str, body: &str) -> (StatusCode, Value) {
    let r = c
        .http
        .put(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// Waits until every node answers `props` for the bucket (set for it).
/// Node by node, within one bound for all.
async fn wait_everywhere(c: &TestCluster, bucket_encoded: &str, props: &Value) {
    // Nodes before `next` have been seen to answer `props`.
    let mut next = 0;
    eventually(SPREAD_WAIT, async || {
        while next < c.nodes.len() {
            let (status, v) = get_json(c, &bucket_url(c, next, bucket_encoded)).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            if v["set"] != true || v["props"] != *props {
                return Err(c.saw(
                    next,
                    format!(
                        "node {} answers {v} for {bucket_encoded}, expected {props}",
                        next + 1
                    ),
                ));
            }
            next += 1;
        }
        Ok(())
    })
    .await;
}

fn ringkv(c: &TestCluster, i: usize, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(args)
        .args(["--endpoint", &c.url(i)])
        .env_remove("RINGKV_ENDPOINT")
        .output()
        .expect("running ringkv")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn props_set_on_one_node_reach_every_node() {
    let c = TestCluster::start(3, &[]).await;

    // Nothing set: the defaults, and the list is empty.
    let (status, v) = get_json(&c, &bucket_url(&c, 0, "carts")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["bucket"], "carts");
    assert_eq!(v["set"], false);
    assert_eq!(v["props"]["conflict"], "siblings");
    assert_eq!(
        (v["props"]["n"].as_u64(), v["props"]["r"].as_u64()),
        (Some(3), Some(2))
    );
    let (_, list) = get_json(&c, &format!("{}/v1/buckets", c.url(1))).await;
    assert_eq!(list["buckets"], json!([]), "{list}");
    assert_eq!(list["defaults"]["conflict"], "siblings");

    // Set on n1: the answer has the new properties, names resolved to numbers.
    let (status, v) = put_body(
        &c,
        &bucket_url(&c, 0, "carts"),
        r#"{"conflict":"lww","n":3,"r":"quorum","w":"all"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["set"], true);
    let props = v["props"].clone();
    assert_eq!(
        props,
        json!({"n": 3, "r": 2, "w": 3, "pr": 0, "pw": 0, "conflict": "lww",
               "consistency": "eventual",
               "siblings_warn": props["siblings_warn"], "siblings_max": props["siblings_max"]})
    );
    wait_everywhere(&c, "carts", &props).await;
    let (_, list) = get_json(&c, &format!("{}/v1/buckets", c.url(2))).await;
    assert_eq!(list["buckets"][0]["bucket"], "carts", "{list}");
    assert_eq!(list["buckets"][0]["props"], props);

    // A later partial change on another node keeps the other properties.
    let (status, v) = put_body(&c, &bucket_url(&c, 2, "carts"), r#"{"w": 2}"#).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let mut expected = props.clone();
    expected["w"] = json!(2);
    assert_eq!(v["props"], expected);
    wait_everywhere(&c, "carts", &expected).await;

    // Bucket names are percent-decoded path segments, like keys.
    let (status, v) = put_body(&c, &bucket_url(&c, 1, "my%2Fbucket%20x"), r#"{"n": 2}"#).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["bucket"], "my/bucket x");
    wait_everywhere(&c, "my%2Fbucket%20x", &v["props"]).await;

    // Invalid changes: 400, a message saying what is allowed, nothing changed.
    for (body, says) in [
        (r#"{"n": 9}"#, "n must be 1 to 3"),
        (r#"{"conflict": "newest"}"#, "\"siblings\" or \"lww\""),
        (r#"{"r": "most"}"#, "\"one\", \"quorum\", \"all\""),
        (r#"{"r": 4}"#, "r must be 1 to n = 3"),
        (r#"{"colour": "red"}"#, "the properties are n, r, w"),
        (r#"{"n": 1, "n": 2}"#, "give each property once"),
        ("not json", "must be a JSON object"),
    ] {
        let (status, v) = put_body(&c, &bucket_url(&c, 1, "carts"), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"], "bad_request", "{body}: {v}");
        let message = v["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message:?} lacks {says:?}");
    }
    let (status, v) = put_body(&c, &format!("{}/v1/buckets/a/b", c.url(0)), "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap().contains("%2F"), "{v}");
    // Still the last valid properties on every node, and no bucket was added.
    wait_everywhere(&c, "carts", &expected).await;
    for i in 0..3 {
        let (_, list) = get_json(&c, &format!("{}/v1/buckets", c.url(i))).await;
        assert_eq!(list["buckets"].as_array().unwrap().len(), 2, "{list}");
    }

    // The cluster page reports hinted handoff; the metrics too.
    let (_, cluster) = get_json(&c, &format!("{}/v1/cluster", c.url(0))).await;
    let hints = &cluster["hints"];
    assert_eq!(hints["pending"], 0, "{cluster}");
    assert_eq!(hints["full"], false, "{cluster}");
    assert!(hints["max"].as_u64().unwrap() > 0, "{cluster}");
    assert!(hints["by_target"].is_object(), "{cluster}");
    for counter in ["delivered", "refused", "hinted_writes"] {
        assert!(hints[counter].is_u64(), "{counter}: {cluster}");
    }
    assert!(cluster["read_repairs"].is_u64(), "{cluster}");
    let metrics = c
        .http
        .get(format!("{}/metrics", c.url(0)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "ringkv_members{state=\"live\"} 3",
        "ringkv_members{state=\"down\"} 0",
        "ringkv_hints_pending{target=\"n2\"} 0",
        "ringkv_hints_full 0",
        "ringkv_node_events_total{event=\"hints_delivered\"} 0",
        "ringkv_node_events_total{event=\"siblings_warned\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_commands_set_and_get() {
    let c = TestCluster::start(3, &[]).await;

    let out = ringkv(
        &c,
        1,
        &[
            "bucket",
            "set",
            "cli-b",
            "conflict=lww",
            "r=quorum",
            "w=all",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("cli-b (set for this bucket)"), "{stdout}");
    assert!(stdout.contains("conflict       lww"), "{stdout}");
    assert!(stdout.contains("w              3"), "{stdout}");

    // Read back on another node (positional and --bucket, table and JSON).
    eventually(SPREAD_WAIT, async || {
        let out = ringkv(&c, 2, &["bucket", "get", "cli-b"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        if text(&out.stdout).contains("conflict       lww") {
            Ok(())
        } else {
            Err(format!("n3 has not seen the change: {}", text(&out.stdout)))
        }
    })
    .await;
    let out = ringkv(&c, 2, &["bucket", "get", "--bucket", "cli-b", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["set"].clone(), v["props"]["w"].clone()),
        (json!(true), json!(3))
    );

    // A bucket without properties shows the defaults, and says so.
    let out = ringkv(&c, 0, &["bucket", "get", "other"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("defaults: nothing set"),
        "{}",
        text(&out.stdout)
    );

    // Bad input: the server's message, a non-zero exit, nothing changed.
    let out = ringkv(&c, 0, &["bucket", "set", "cli-b", "n=0"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("n must be 1 to 3"), "{stderr}");
    let out = ringkv(&c, 0, &["bucket", "set", "cli-b", "conflict=newest"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("\"siblings\" or \"lww\""),
        "{}",
        text(&out.stderr)
    );
    let out = ringkv(&c, 0, &["bucket", "set", "cli-b", "lww"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("NAME=VALUE"),
        "{}",
        text(&out.stderr)
    );
    let out = ringkv(&c, 0, &["bucket", "get", "cli-b", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["props"]["conflict"], "lww");
    assert_eq!(v["props"]["w"], 3);

    // The list, and the status with this node's hints.
    let out = ringkv(&c, 0, &["bucket", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("cli-b"), "{}", text(&out.stdout));
    let out = ringkv(&c, 0, &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("hints held:      0 of at most"), "{stdout}");
    assert!(stdout.contains("HINTS HELD"), "{stdout}");
}
