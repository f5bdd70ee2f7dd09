//! End-to-end tests on three real `ringkv server` processes over loopback.
// A scenario on real processes reads best as one story, top to bottom.
#![allow(clippy::too_many_lines)]

mod common;

use base64::Engine;
use common::TestCluster;
use reqwest::StatusCode;
use serde_json::Value;

const CTX: &str = "x-ringkv-context";

async fn put(
    c: &TestCluster,
    i: usize,
    key: &str,
    value: &str,
    ctx: Option<&str>,
    query: &str,
) -> reqwest::Response {
    let mut req = c
        .http
        .put(format!("{}{}", c.kv(i, "default", key), query))
        .body(value.to_string());
    if let Some(ctx) = ctx {
        req = req.header(CTX, ctx);
    }
    req.send().await.unwrap()
}

async fn get(c: &TestCluster, i: usize, key: &str, query: &str) -> reqwest::Response {
    c.http
        .get(format!("{}{}", c.kv(i, "default", key), query))
        .send()
        .await
        .unwrap()
}

async fn get_text(c: &TestCluster, i: usize, key: &str, query: &str) -> (StatusCode, String) {
    let r = get(c, i, key, query).await;
    let s = r.status();
    (s, r.text().await.unwrap())
}

fn sibling_values(body: &Value) -> Vec<Option<String>> {
    let mut v: Vec<Option<String>> = body["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["value"].as_str().map(|b| {
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap())
                    .unwrap()
            })
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_siblings_and_deletes_through_any_node() {
    let c = TestCluster::start(3, &[]).await;

    // A PUT through one node is read through each of the others.
    let r = put(&c, 0, "greeting", "hello", None, "").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        r.headers().get(CTX).is_some(),
        "a write returns its context"
    );
    for i in 0..3 {
        assert_eq!(
            get_text(&c, i, "greeting", "").await,
            (StatusCode::OK, "hello".to_string()),
            "node {}",
            i + 1
        );
    }

    // Two PUTs without context give a 300 with both siblings.
    assert_eq!(
        put(&c, 0, "cart", "apples", None, "").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        put(&c, 1, "cart", "pears", None, "").await.status(),
        StatusCode::NO_CONTENT
    );
    let r = get(&c, 2, "cart", "").await;
    assert_eq!(r.status(), StatusCode::MULTIPLE_CHOICES);
    let header_ctx = r.headers().get(CTX).unwrap().to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        sibling_values(&body),
        vec![Some("apples".into()), Some("pears".into())]
    );
    let ctx = body["context"].as_str().unwrap().to_string();
    assert_eq!(ctx, header_ctx);

    // A PUT with the context of that read gives a single value, everywhere.
    assert_eq!(
        put(&c, 2, "cart", "apples+pears", Some(&ctx), "")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    for i in 0..3 {
        assert_eq!(
            get_text(&c, i, "cart", "?r=all").await,
            (StatusCode::OK, "apples+pears".to_string()),
            "node {}",
            i + 1
        );
    }

    // DELETE makes the key 404 through every node.
    let r = c
        .http
        .delete(c.kv(1, "default", "greeting"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for i in 0..3 {
        let r = get(&c, i, "greeting", "?r=all").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "node {}", i + 1);
        assert!(
            r.headers().get(CTX).is_some(),
            "a known tombstone keeps its context"
        );
    }
    // A key never written is 404 without a context.
    let r = get(&c, 0, "never-written", "").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().get(CTX).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_slashes_spaces_and_non_utf8_bytes_round_trip() {
    // The one cluster of these tests whose peers talk plaintext: --insecure
    // still works (every other test cluster uses --certs).
    let c = TestCluster::start(3, &["--insecure"]).await;
    let keys = [
        "a%2Fb%2Fc",
        "with%20space",
        "%FF%FE%00bin",
        "%E2%9C%93",
        "plain",
    ];
    for (n, k) in keys.iter().enumerate() {
        let value = format!("value-{n}");
        let r = c
            .http
            .put(c.kv(n % 3, "my%20bucket", k))
            .body(value.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "put {k}");
        let r = c
            .http
            .get(c.kv((n + 1) % 3, "my%20bucket", k))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "get {k}");
        assert_eq!(r.text().await.unwrap(), value);
    }
    // Distinct keys stay distinct: `a/b/c` is not `a%2Fb%2Fc` decoded twice.
    let r = c
        .http
        .get(c.kv(0, "my%20bucket", "a%252Fb%252Fc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // An unencoded slash is a clear 400, not a different key.
    let r = c
        .http
        .get(format!("{}/v1/kv/default/a/b", c.url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let c = TestCluster::start(3, &["--value-bytes-max", "1024"]).await;
    assert_eq!(
        put(&c, 0, "k", "original", None, "").await.status(),
        StatusCode::NO_CONTENT
    );
    let r = get(&c, 0, "k", "").await;
    let ctx_before = r.headers().get(CTX).unwrap().to_str().unwrap().to_string();

    let check = |r: reqwest::Response, status: StatusCode, code: &'static str| async move {
        assert_eq!(r.status(), status);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], code, "{body}");
        assert!(body["message"].as_str().unwrap().len() > 10, "{body}");
    };
    check(
        put(&c, 0, "k", "x", Some("not-a-context!"), "").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    let mut corrupted = ctx_before.clone().into_bytes();
    let last = corrupted.len() - 2;
    corrupted[last] = if corrupted[last] == b'A' { b'B' } else { b'A' };
    let corrupted = String::from_utf8(corrupted).unwrap();
    check(
        put(&c, 1, "k", "x", Some(&corrupted), "").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    check(
        put(&c, 1, "k", &"x".repeat(1025), None, "").await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    check(
        get(&c, 2, "k", "?r=banana").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    check(
        put(&c, 2, "k", "x", None, "?w=banana").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    check(
        put(&c, 2, "k", "x", None, "?w=4").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    check(
        put(&c, 2, "k", "x", None, "?w=0").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    // A context read from another key is refused: it would claim writes
    // this key never had.
    assert_eq!(
        put(&c, 0, "other", "o", None, "").await.status(),
        StatusCode::NO_CONTENT
    );
    let other_ctx = get(&c, 0, "other", "")
        .await
        .headers()
        .get(CTX)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    check(
        put(&c, 0, "k", "x", Some(&other_ctx), "").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    // HEAD is a GET without the body.
    let r = c.http.head(c.kv(0, "default", "k")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .http
        .get(format!("{}/v2/nothing", c.url(0)))
        .send()
        .await
        .unwrap();
    check(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = c
        .http
        .post(c.kv(0, "default", "k"))
        .body("x")
        .send()
        .await
        .unwrap();
    check(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;

    // Nothing changed: the same single value with the same context, everywhere.
    for i in 0..3 {
        let r = get(&c, i, "k", "?r=all").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers().get(CTX).unwrap().to_str().unwrap(), ctx_before);
        assert_eq!(r.text().await.unwrap(), "original");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_killed_node_and_a_full_restart() {
    let mut c = TestCluster::start(3, &["--timeout-ms", "2000"]).await;
    let mut acked = vec![];
    // Written at w=all so that the node killed next surely has them.
    for k in 0..20 {
        let key = format!("before-{k}");
        assert_eq!(
            put(&c, k % 3, &key, &format!("v{k}"), None, "?w=all")
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
        acked.push((key, format!("v{k}")));
    }

    // One node killed: R=2/W=2 still work through the other two.
    c.kill(2);
    for k in 0..10 {
        let key = format!("during-{k}");
        let r = put(&c, k % 2, &key, &format!("d{k}"), None, "").await;
        assert_eq!(
            r.status(),
            StatusCode::NO_CONTENT,
            "{}",
            r.text().await.unwrap()
        );
        acked.push((key, format!("d{k}")));
    }
    for (key, value) in &acked {
        assert_eq!(
            get_text(&c, 1, key, "").await,
            (StatusCode::OK, value.clone())
        );
    }
    // w=all cannot be met: 503 with the counts.
    let r = put(&c, 0, "needs-all", "x", None, "?w=all").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (
            body["error"].as_str(),
            body["required"].as_u64(),
            body["acks"].as_u64()
        ),
        (Some("unavailable"), Some(3), Some(2)),
        "{body}"
    );

    // The killed node, restarted, serves what it had on its own (r=1 answers
    // with the coordinator's local copy first).
    c.restart(2).await;
    for k in 0..20 {
        let (status, body) = get_text(&c, 2, &format!("before-{k}"), "?r=1").await;
        assert_eq!((status, body), (StatusCode::OK, format!("v{k}")));
    }

    // All three killed (SIGKILL) and restarted: every acknowledged write is there.
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    c.wait_all_see_all().await;
    for (key, value) in &acked {
        for i in 0..3 {
            assert_eq!(
                get_text(&c, i, key, "").await,
                (StatusCode::OK, value.clone()),
                "{key} via node {}",
                i + 1
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// `--sync always` end to end. A SIGKILL cannot tell an fsync from a write to
/// the OS (the kernel keeps both); power cuts are modelled by the in-memory
/// store and the simulator, and fjall's flush/sync split is tested in
/// crates/storage-fjall.
async fn sync_always_serves_concurrent_writes_and_survives_sigkill() {
    let mut c = TestCluster::start(3, &["--sync", "always"]).await;
    // Concurrent writes share fsyncs (group commit); every one is acknowledged.
    let mut tasks = vec![];
    for k in 0..32 {
        let url = c.kv(k % 3, "default", &format!("durable-{k}"));
        let http = c.http.clone();
        tasks.push(tokio::spawn(async move {
            http.put(format!("{url}?w=all"))
                .body(format!("v{k}"))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::NO_CONTENT);
    }
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    c.wait_all_see_all().await;
    for k in 0..32 {
        // Each node alone (r=1 answers with the coordinator's own copy) has
        // every write it acknowledged.
        assert_eq!(
            get_text(&c, k % 3, &format!("durable-{k}"), "?r=1").await,
            (StatusCode::OK, format!("v{k}"))
        );
    }
}
