//! Starts real `ringkv server` processes on free loopback ports, kills and
//! restarts them, and cleans up every process and directory it made.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to answer `/health` after starting.
const START_WAIT: Duration = Duration::from_secs(30);

/// One server process of a test cluster.
pub struct TestNode {
    pub id: String,
    pub rpc: String,
    pub http: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
    /// `--initial-cluster` and extra flags of this node when they differ
    /// from the cluster's (a node added with [`TestCluster::add_node`]).
    pub own_args: Option<(String, Vec<String>)>,
}

/// A cluster of real server processes; dropped, it kills them all.
pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    pub initial_cluster: String,
    pub extra_args: Vec<String>,
    pub tmp: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// A free loopback port below the kernel's ephemeral range (32768+), so the
/// outgoing connections of already running nodes can never take it between
/// our check and the server's bind. Ports are handed out once per process,
/// from a start that depends on the process id so parallel test processes
/// rarely probe the same ones; each is checked free by binding it.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() * 613) % 10_000;
    loop {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(i < 2_500, "no free port found");
        let port = (base + i) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl TestCluster {
    /// Starts `size` nodes (N=3, R=2, W=2 unless `extra_args` say otherwise)
    /// and waits until every node answers and sees every peer.
    pub async fn start(size: usize, extra_args: &[&str]) -> TestCluster {
        let tmp = tempfile::tempdir().unwrap();
        let nodes: Vec<TestNode> = (1..=size)
            .map(|i| TestNode {
                id: format!("n{i}"),
                rpc: format!("127.0.0.1:{}", free_port()),
                http: format!("127.0.0.1:{}", free_port()),
                dir: tmp.path().join(format!("n{i}")),
                child: None,
                own_args: None,
            })
            .collect();
        let initial_cluster = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.rpc))
            .collect::<Vec<_>>()
            .join(",");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut c = TestCluster {
            nodes,
            initial_cluster,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            tmp,
            http,
        };
        for i in 0..size {
            c.spawn(i);
        }
        for i in 0..size {
            c.wait_healthy(i).await;
        }
        c.wait_all_see_all().await;
        c
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tmp.path().join(format!("n{}.log", i + 1)))
            .unwrap();
        let n = &self.nodes[i];
        let (initial_cluster, extra_args) = match &n.own_args {
            Some((ic, extra)) => (ic, extra),
            None => (&self.initial_cluster, &self.extra_args),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_ringkv"))
            .args([
                "server",
                "--node-id",
                &n.id,
                "--listen",
                &n.rpc,
                "--http",
                &n.http,
            ])
            .arg("--data-dir")
            .arg(&n.dir)
            .args(["--initial-cluster", initial_cluster])
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting ringkv server");
        self.nodes[i].child = Some(child);
    }

    /// Starts one more node, `n{len+1}`, whose layout holds only itself,
    /// with `extra_args` (e.g. `--join`); waits until it serves. Returns its
    /// index.
    pub async fn add_node(&mut self, extra_args: &[&str]) -> usize {
        let i = self.nodes.len();
        let id = format!("n{}", i + 1);
        let rpc = format!("127.0.0.1:{}", free_port());
        self.nodes.push(TestNode {
            id: id.clone(),
            http: format!("127.0.0.1:{}", free_port()),
            dir: self.tmp.path().join(&id),
            child: None,
            own_args: Some((
                format!("{id}={rpc}"),
                extra_args.iter().map(|s| s.to_string()).collect(),
            )),
            rpc,
        });
        self.spawn(i);
        self.wait_healthy(i).await;
        i
    }

    /// `GET /v1/cluster` of node `i`.
    pub async fn cluster_status(&self, i: usize) -> serde_json::Value {
        self.get_json(&format!("{}/v1/cluster", self.url(i))).await
    }

    /// The log of node `i` (for failure messages).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.tmp.path().join(format!("n{}.log", i + 1))).unwrap_or_default()
    }

    async fn wait_healthy(&mut self, i: usize) {
        let deadline = Instant::now() + START_WAIT;
        let url = format!("http://{}/health", self.nodes[i].http);
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().unwrap())
            {
                panic!(
                    "node {} exited with {status} while starting:\n{}",
                    i + 1,
                    self.log(i)
                );
            }
            assert!(
                Instant::now() < deadline,
                "node {} not healthy in time:\n{}",
                i + 1,
                self.log(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node sees every running node alive.
    pub async fn wait_all_see_all(&self) {
        let deadline = Instant::now() + START_WAIT;
        let running: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id.clone())
            .collect();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.child.is_none() {
                continue;
            }
            loop {
                let v: serde_json::Value = self
                    .http
                    .get(format!("http://{}/v1/cluster", n.http))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let all = v["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| running.contains(&m["id"].as_str().unwrap().to_string()))
                    .all(|m| m["alive"] == true);
                if all {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} never saw all peers: {v}\n{}",
                    i + 1,
                    self.log(i)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Restarts node `i` with its data directory and waits until it serves.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "node {} is running", i + 1);
        self.spawn(i);
        self.wait_healthy(i).await;
    }

    /// GETs `url` and parses the JSON answer (panics on failure: tests).
    pub async fn get_json(&self, url: &str) -> serde_json::Value {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `http://host:port` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.nodes[i].http)
    }

    /// The key URL on node `i`, key given already percent-encoded.
    pub fn kv(&self, i: usize, bucket: &str, key_encoded: &str) -> String {
        format!("{}/v1/kv/{}/{}", self.url(i), bucket, key_encoded)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
