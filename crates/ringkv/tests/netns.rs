//! The loopback cluster's checks again, with every node on a host of its own:
//! five `ringkv server` processes, each in its own network namespace with its
//! own address (10.77.S.11 to .15), joined by veth pairs to a bridge that
//! holds 10.77.S.1. Every node uses the same ports (7080, 8080): only the
//! addresses tell them apart, so nothing can lean on sharing a host. The
//! nodes know each other by host name (`n1.ringkv.test`, from the
//! namespace's own /etc/hosts, as `ip netns exec` lays out
//! /etc/netns/NS/hosts), as the Kubernetes StatefulSet of deploy/ names its
//! pods. The test talks to the nodes from this namespace through the bridge.
//!
//! It makes namespaces, links and a bridge, so it needs root and `ip`; where
//! they cannot be made it prints why and passes (skipped). Everything it
//! makes carries this process's id in its name and is removed when the test
//! ends, also when it fails ([`Net`]'s `Drop`); the processes are killed
//! first ([`TestCluster`]'s `Drop`).
// A scenario on real processes reads best as one story, top to bottom.
#![allow(clippy::too_many_lines)]

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Placement, TestCluster, eventually};
use reqwest::StatusCode;
use serde_json::Value;

/// Longest a test waits for the cluster to notice a change or finish
/// background work (a bound on a hang, never a pass or fail on speed).
const SETTLE: Duration = Duration::from_secs(60);

/// The nodes' subnets are 10.77.S.0/24, S in this range.
const SUBNETS: std::ops::Range<u32> = 20..220;

/// Runs `ip ARGS`; on failure, says what `ip` said.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `ip ARGS` and returns what it printed (empty when it failed).
fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// This process's effective user id, from /proc.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A bridge and one network namespace per node, each joined to the bridge
/// by a veth pair. Dropped, it removes all of them (what was made so far,
/// when making them failed half way).
struct Net {
    /// The bridge, in this namespace (`rkv<pid>-<k>b`).
    bridge: Option<String>,
    /// The nodes' namespaces (`rkv<pid>-<k>-<i>`), made so far.
    namespaces: Vec<String>,
    /// The veth ends left in this namespace, made so far.
    veths: Vec<String>,
    /// /etc/netns/NS of each namespace, made so far (its `hosts` file is
    /// the namespace's /etc/hosts).
    etc_dirs: Vec<std::path::PathBuf>,
    /// S of the subnet 10.77.S.0/24.
    subnet: u32,
}

impl Net {
    /// Makes a bridge and `nodes` namespaces. `Err` says why namespaces
    /// cannot be made here (the test is then skipped); a failure after the
    /// first namespace and the bridge were made panics (a real failure).
    fn make(nodes: usize) -> Result<Net, String> {
        match effective_uid() {
            Some(0) => {}
            Some(uid) => return Err(format!("not root (uid {uid})")),
            None => return Err("cannot read the uid from /proc/self/status".into()),
        }
        ip(&["-V"]).map_err(|e| format!("no usable `ip` binary: {e}"))?;
        // Unique per process, and per call within it.
        static CALLS: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "rkv{}-{}",
            std::process::id(),
            CALLS.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            bridge: None,
            namespaces: Vec::new(),
            veths: Vec::new(),
            etc_dirs: Vec::new(),
            subnet: 0,
        };
        // The first namespace, its /etc and the bridge tell whether we can at all.
        net.add_namespace(&format!("{prefix}-1"))?;
        net.add_etc(0)?;
        let bridge = format!("{prefix}b");
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        net.bridge = Some(bridge.clone());
        ip(&["link", "set", &bridge, "up"]).unwrap();
        net.subnet = claim_subnet(&bridge);
        for i in 1..=nodes {
            if i > 1 {
                net.add_namespace(&format!("{prefix}-{i}")).unwrap();
                net.add_etc(i - 1).unwrap();
            }
            net.wire(i, &format!("{prefix}h{i}")).unwrap();
        }
        let mut hosts = String::from("127.0.0.1 localhost\n");
        for i in 1..=nodes {
            hosts += &format!("{} {}\n", net.addr(i), Net::host(i));
        }
        for dir in &net.etc_dirs {
            std::fs::write(dir.join("hosts"), &hosts).unwrap();
        }
        Ok(net)
    }

    /// Makes /etc/netns/NS for namespace `k` (0-based).
    fn add_etc(&mut self, k: usize) -> Result<(), String> {
        let dir = std::path::Path::new("/etc/netns").join(&self.namespaces[k]);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        self.etc_dirs.push(dir);
        Ok(())
    }

    /// The host name of node `i` (1-based), known in every namespace.
    fn host(i: usize) -> String {
        format!("n{i}.ringkv.test")
    }

    fn add_namespace(&mut self, ns: &str) -> Result<(), String> {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_string());
        ip(&["-n", ns, "link", "set", "lo", "up"])
    }

    /// Joins namespace `i` to the bridge: a veth pair whose inner end is
    /// `eth0` there, with the node's address.
    fn wire(&mut self, i: usize, host_end: &str) -> Result<(), String> {
        let ns = self.namespaces[i - 1].clone();
        let bridge = self.bridge.clone().unwrap();
        ip(&[
            "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        self.veths.push(host_end.to_string());
        ip(&["link", "set", host_end, "master", &bridge, "up"])?;
        let addr = format!("{}/24", self.addr(i));
        ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])
    }

    /// The address of node `i` (1-based).
    fn addr(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, 10 + i)
    }
}

/// Gives `bridge` the address 10.77.S.1/24 for an S no other interface of
/// this namespace has an address in (another run of this test, or anything
/// else), starting from one that depends on the process id. Two runs that
/// pick the same S at once both see it twice afterwards, and both move on.
fn claim_subnet(bridge: &str) -> u32 {
    let span = SUBNETS.end - SUBNETS.start;
    let start = std::process::id() % span;
    for k in 0..span {
        let s = SUBNETS.start + (start + k) % span;
        let holders = |listing: &str| {
            listing
                .lines()
                .filter(|l| l.contains(&format!(" 10.77.{s}.")))
                .count()
        };
        if holders(&ip_output(&["-4", "-o", "addr", "show"])) > 0 {
            continue;
        }
        let mine = format!("10.77.{s}.1/24");
        ip(&["addr", "add", &mine, "dev", bridge]).unwrap();
        if holders(&ip_output(&["-4", "-o", "addr", "show"])) == 1 {
            return s;
        }
        ip(&["addr", "del", &mine, "dev", bridge]).unwrap();
    }
    panic!("no free subnet in 10.77.{SUBNETS:?}.0/24");
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting the host end of a veth pair deletes both ends at once
        // (a namespace's own links go away only some time after it is).
        for v in &self.veths {
            if let Err(e) = ip(&["link", "del", v]) {
                eprintln!("cleanup: {e}");
            }
        }
        for ns in &self.namespaces {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        if let Some(b) = &self.bridge
            && let Err(e) = ip(&["link", "del", b])
        {
            eprintln!("cleanup: {e}");
        }
        for dir in &self.etc_dirs {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                eprintln!("cleanup: cannot remove {}: {e}", dir.display());
            }
        }
    }
}

async fn put(c: &TestCluster, i: usize, key: &str, value: &str, q: &str) -> reqwest::Response {
    c.http
        .put(format!("{}{q}", c.kv(i, "default", key)))
        .body(value.to_string())
        .send()
        .await
        .unwrap()
}

/// GET: status, and the values (one for 200, each sibling, sorted, for 300).
async fn get(c: &TestCluster, i: usize, key: &str, q: &str) -> (StatusCode, Vec<String>) {
    let r = c
        .http
        .get(format!("{}{q}", c.kv(i, "default", key)))
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

/// The key's preference list as node indexes (primaries first).
async fn preference(c: &TestCluster, key: &str) -> Vec<usize> {
    let loc = c
        .get_json(&format!("{}/v1/ring/default/{key}", c.url(0)))
        .await;
    loc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap()[1..].parse::<usize>().unwrap() - 1)
        .collect()
}

/// Waits until node `at` sees node `who` as `alive`.
async fn wait_alive(c: &TestCluster, at: usize, who: usize, alive: bool) {
    let id = format!("n{}", who + 1);
    eventually(SETTLE, async || {
        let v = c.cluster_status(at).await;
        let seen = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id.as_str())
            .map(|m| m["alive"] == true);
        if seen == Some(alive) {
            Ok(())
        } else {
            Err(c.saw(
                at,
                format!("n{} does not see {id} alive={alive}: {v}", at + 1),
            ))
        }
    })
    .await;
}

/// Hints the running nodes hold, in all.
async fn hints_held(c: &TestCluster) -> u64 {
    let mut total = 0;
    for i in 0..c.nodes.len() {
        if c.nodes[i].child.is_some() {
            let v = c.cluster_status(i).await;
            total += v["hints"]["pending"]
                .as_u64()
                .unwrap_or_else(|| panic!("no hints.pending in /v1/cluster: {v}"));
        }
    }
    total
}

/// Five nodes in five namespaces, N=3, R=2, W=2: writes through one node
/// are read through every other; concurrent writes are siblings and a write
/// with the read's context resolves them; with two of a key's primaries
/// killed, writes go on through fallbacks (sloppy quorum), and once they are
/// restarted the hints are handed off and they serve the write themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_in_five_network_namespaces() {
    const NODES: usize = 5;
    let net = match Net::make(NODES) {
        Ok(net) => net,
        Err(why) => {
            println!(
                "SKIPPED five_nodes_in_five_network_namespaces: network namespaces cannot be made here: {why}"
            );
            return;
        }
    };
    let placements = (1..=NODES)
        .map(|i| Placement {
            // Bound and dialled by name: each namespace resolves it.
            rpc: format!("{}:7080", Net::host(i)),
            http: format!("{}:8080", net.addr(i)),
            netns: Some(net.namespaces[i - 1].clone()),
        })
        .collect();
    // Dropped before `net`: the processes end before their namespaces go.
    let mut c = TestCluster::start_at(placements, &["--timeout-ms", "2000", "--gossip-fast"]).await;

    // Every node knows its peers by their host names.
    let v = c.cluster_status(2).await;
    let mut rpcs: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rpc_addr"].as_str().unwrap_or_else(|| panic!("{v}")))
        .collect();
    rpcs.sort_unstable();
    let expected: Vec<String> = (1..=NODES)
        .map(|i| format!("{}:7080", Net::host(i)))
        .collect();
    assert_eq!(rpcs, expected, "{v}");

    // A write through one node is read through each of the others.
    let r = put(&c, 0, "greeting", "hello", "").await;
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}",
        r.text().await.unwrap()
    );
    for i in 0..NODES {
        assert_eq!(
            get(&c, i, "greeting", "").await,
            (StatusCode::OK, vec!["hello".to_string()]),
            "via n{}",
            i + 1
        );
    }

    // Two writes without a context, through two hosts: siblings.
    assert_eq!(
        put(&c, 0, "cart", "apples", "").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        put(&c, 1, "cart", "pears", "").await.status(),
        StatusCode::NO_CONTENT
    );
    let r = c.http.get(c.kv(2, "default", "cart")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MULTIPLE_CHOICES);
    let ctx = r.headers()["x-ringkv-context"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get(&c, 3, "cart", "").await,
        (
            StatusCode::MULTIPLE_CHOICES,
            vec!["apples".into(), "pears".into()]
        )
    );
    // A write with that read's context resolves them, on every replica.
    let r = c
        .http
        .put(c.kv(4, "default", "cart"))
        .header("x-ringkv-context", ctx)
        .body("apples+pears")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for i in 0..NODES {
        assert_eq!(
            get(&c, i, "cart", "?r=all").await,
            (StatusCode::OK, vec!["apples+pears".to_string()]),
            "via n{}",
            i + 1
        );
    }

    // Written on all three replicas before anything fails.
    for k in 0..10 {
        let r = put(
            &c,
            k % NODES,
            &format!("before-{k}"),
            &format!("v{k}"),
            "?w=all",
        )
        .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "before-{k}");
    }

    // Two of the three primaries of `basket` killed: a write at W=2 still
    // succeeds (a fallback stands in, holding a hint), and reads at R=2 see it.
    let pref = preference(&c, "basket").await;
    let dead = [pref[1], pref[2]];
    let others: Vec<usize> = (0..NODES).filter(|i| !dead.contains(i)).collect();
    for d in dead {
        c.kill(d);
    }
    for &o in &others {
        for d in dead {
            wait_alive(&c, o, d, false).await;
        }
    }
    let r = put(&c, pref[3], "basket", "eggs", "").await;
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(
        get(&c, pref[4], "basket", "").await,
        (StatusCode::OK, vec!["eggs".to_string()])
    );
    for k in 0..10 {
        let via = others[k % others.len()];
        assert_eq!(
            get(&c, via, &format!("before-{k}"), "").await,
            (StatusCode::OK, vec![format!("v{k}")]),
            "before-{k} via n{}",
            via + 1
        );
    }
    let held = hints_held(&c).await;
    assert!(held >= 1, "a fallback holds a hint for the dead primaries");

    // Restarted, the primaries get their hints and serve the write at pr=3.
    for d in dead {
        c.restart(d).await;
    }
    eventually(SETTLE, async || match hints_held(&c).await {
        0 => Ok(()),
        n => Err(format!("{n} hints not handed off yet")),
    })
    .await;
    for d in dead {
        assert_eq!(
            get(&c, d, "basket", "?r=3&pr=3").await,
            (StatusCode::OK, vec!["eggs".to_string()]),
            "via n{}",
            d + 1
        );
    }
    drop(c);
    drop(net);
}
