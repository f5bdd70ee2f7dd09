//! The cluster manager on real processes, through the CLI: a staged zone
//! change that moves no replica is planned, committed and in force on every
//! node; a joining node's address comes from its announcement; a plan that
//! would move data shows what each node would receive and, as this version
//! cannot stream partitions yet, its commit is refused and changes nothing;
//! bad changes are refused.
// A scenario on real processes reads best as one story, top to bottom.
#![allow(clippy::too_many_lines)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{TestCluster, eventually};

const BOUND: Duration = Duration::from_secs(60);

/// Runs `ringkv cluster ARGS --endpoint (node i) --ca ...`.
fn cli(c: &TestCluster, i: usize, args: &[&str]) -> Output {
    let ca = c.certs_dir().join("ca.crt");
    Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .arg("cluster")
        .args(args)
        .args(["--endpoint", &c.url(i)])
        .arg("--ca")
        .arg(ca)
        .output()
        .expect("running ringkv cluster")
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "ringkv cluster failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn failed_with(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a refusal mentioning {what:?}"
    );
    assert!(stderr.contains(what), "{what:?} not in: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_plan_commit_through_the_cli() {
    let mut c = TestCluster::start(3, &[]).await;

    // A zone change: with 3 nodes and N = 3 no replica moves.
    ok_json(&cli(&c, 0, &["zone", "n2", "rack-b", "--json"]));
    let plan = ok_json(&cli(&c, 1, &["plan", "--json"]));
    assert_eq!(plan["from_version"], 1);
    assert_eq!(plan["moves"].as_array().unwrap().len(), 0, "{plan}");
    let info = ok_json(&cli(&c, 2, &["commit", "--version", "1", "--json"]));
    assert_eq!(info["layout"]["version"], 2, "{info}");
    assert_eq!(info["staged"].as_array().unwrap().len(), 0);
    for i in 0..3 {
        eventually(BOUND, async || {
            let s = c.cluster_status(i).await;
            if s["layout_version"] == 2 {
                Ok(())
            } else {
                Err(c.saw(i, format!("layout version {}", s["layout_version"])))
            }
        })
        .await;
    }

    // A stale commit is refused.
    failed_with(
        &cli(&c, 0, &["commit", "--version", "1"]),
        "version 2 is in force",
    );

    // n4 announces itself to n1; `cluster join n4` takes its address.
    let rpc1 = c.nodes[0].rpc.clone();
    // Until a committed layout names it, its own layout holds only itself.
    let n4 = c
        .add_node(&["--join", &rpc1, "--n", "1", "--r", "1", "--w", "1"])
        .await;
    eventually(BOUND, async || {
        let s = c.cluster_status(0).await;
        let known = s["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "n4");
        if known {
            Ok(())
        } else {
            Err(c.saw(0, format!("members {}", s["members"])))
        }
    })
    .await;
    // Through n1, which the wait above saw learn n4's address.
    let staged = ok_json(&cli(&c, 0, &["join", "n4", "--json"]));
    assert_eq!(staged["staged"][0]["op"], "join");
    assert_eq!(staged["staged"][0]["addr"], c.nodes[n4].rpc.as_str());

    let plan = ok_json(&cli(&c, 2, &["plan", "--json"]));
    assert_eq!(plan["from_version"], 2);
    let nodes = plan["nodes"].as_array().unwrap();
    let n4_plan = nodes.iter().find(|n| n["id"] == "n4").unwrap();
    assert_eq!(
        n4_plan["owned_after"], 16,
        "64 partitions over 4 nodes: {plan}"
    );
    assert!(n4_plan["receives"].as_u64().unwrap() > 0);
    assert!(plan["balance_after"].as_u64().unwrap() <= 1);
    // The human form shows the same.
    let text = cli(&c, 0, &["plan"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("plan: layout version 2 -> 3"), "{text}");

    // This version cannot stream partitions: the commit is refused and
    // changes nothing.
    failed_with(&cli(&c, 0, &["commit"]), "cannot stream data");
    let info = ok_json(&cli(&c, 1, &["status", "--json"]));
    assert_eq!(info["layout"]["version"], 2);
    assert!(info["target"].is_null());
    assert_eq!(info["staged"].as_array().unwrap().len(), 1);

    // Bad changes: refused with what to do, nothing changed.
    failed_with(&cli(&c, 0, &["leave", "n9"]), "not a member");
    failed_with(&cli(&c, 0, &["join", "n5"]), "has not announced itself");
    failed_with(&cli(&c, 0, &["zone", "n1", "bad zone"]), "is not valid");
    let again = ok_json(&cli(&c, 2, &["status", "--json"]));
    assert_eq!(again, info);

    let cleared = ok_json(&cli(&c, 0, &["clear", "--json"]));
    assert_eq!(cleared["staged"].as_array().unwrap().len(), 0);
    println!(
        "cluster manager: zone change committed (layout 2 on 3 nodes); join of n4 planned \
         ({} partitions to receive), commit refused, cleared",
        n4_plan["receives"]
    );
}
