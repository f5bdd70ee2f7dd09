//! Where a key lives, and test-only fault injection on real processes.
// A scenario on real processes reads best as one story, top to bottom.
#![allow(clippy::too_many_lines)]

mod common;

use common::{TestCluster, eventually};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_fails_a_write_that_needs_it_until_healed() {
    let c = TestCluster::start(4, &["--fault-injection", "--timeout-ms", "1000"]).await;

    // Where does the key live? Primaries first, then the fallback.
    let loc: Value = c
        .http
        .get(format!("{}/v1/ring/default/cart", c.url(0)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nodes = loc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4, "{loc}");
    let roles: Vec<&str> = nodes.iter().map(|n| n["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["primary", "primary", "primary", "fallback"]);
    assert!(nodes.iter().all(|n| n["alive"] == true));
    let primaries: Vec<String> = nodes[..3]
        .iter()
        .map(|n| n["node"].as_str().unwrap().to_string())
        .collect();

    // The CLI shows the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["ring", "--key", "cart", "--endpoint", &c.url(0)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("partition {}", loc["partition"])),
        "{text}"
    );
    assert!(text.contains("fallback"), "{text}");

    // Coordinate through the first primary; cut its link to the second.
    let coord = primaries[0][1..].parse::<usize>().unwrap() - 1;
    let cut = &primaries[1];
    let faults = format!("{}/v1/admin/faults", c.url(coord));
    let r = c
        .http
        .put(format!("{faults}/{cut}"))
        .body(r#"{"drop": 1.0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let kv = c.kv(coord, "default", "cart");
    let r = c
        .http
        .put(format!("{kv}?w=all"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["required"].as_u64(), body["acks"].as_u64()),
        (Some(3), Some(2)),
        "{body}"
    );
    // The cut is one-way and the TCP connection stays up. The timed-out
    // write made the coordinator suspect the silent replica, but gossip
    // reaches it through the other nodes: it refutes and is alive again.
    eventually(std::time::Duration::from_secs(30), async || {
        let status = c.get_json(&format!("{}/v1/cluster", c.url(coord))).await;
        let members = status["members"].as_array().unwrap();
        if members.iter().all(|m| m["alive"] == true) {
            assert!(members.iter().all(|m| m["liveness"] == "alive"), "{status}");
            Ok(())
        } else {
            Err(format!("{cut} has not refuted the suspicion: {status}"))
        }
    })
    .await;

    // Healed, the same write succeeds.
    let r = c.http.delete(&faults).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .http
        .put(format!("{kv}?w=all"))
        .body("y")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Bad fault requests are refused and change nothing.
    let r = c
        .http
        .put(format!("{faults}/{cut}"))
        .body(r#"{"drop": 2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .http
        .put(format!("{faults}/{cut}"))
        .body("nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let listed: Value = c
        .http
        .get(&faults)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, serde_json::json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_is_off_unless_asked_for() {
    let c = TestCluster::start(3, &[]).await;
    let r = c
        .http
        .put(format!("{}/v1/admin/faults/n2", c.url(0)))
        .body(r#"{"drop": 1.0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--fault-injection")
    );
}
