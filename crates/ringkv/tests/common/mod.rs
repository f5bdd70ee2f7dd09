//! Starts real `ringkv server` processes on free loopback ports, kills and
//! restarts them, and cleans up every process and directory it made. The
//! nodes talk mutual TLS with certificates the test makes with `ringkv cert`
//! (in the cluster's temporary directory), unless started `--insecure`.
#![allow(dead_code)]

use std::fmt;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) mod attacker;

/// How long a node may take to answer `/health` after starting.
const START_WAIT: Duration = Duration::from_secs(30);

/// How often [`eventually`] checks again.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `check` returns `Ok`, checking at once and then every
/// [`POLL`], and returns its value. When `within` has passed and the check
/// still fails, panics with what the last check returned (its `Err`).
///
/// The check says in its `Err` what it saw, so a failed wait explains
/// itself; it may also panic at once on something that must never happen
/// while waiting (an assertion, a node that exited). The wait is bounded:
/// never a pass or fail on speed, only a limit on a hang.
pub(crate) async fn eventually<T, E: fmt::Display>(
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let start = Instant::now();
    let mut checks = 0u32;
    loop {
        checks += 1;
        let last = match check().await {
            Ok(value) => return value,
            Err(e) => e,
        };
        let elapsed = start.elapsed();
        assert!(
            elapsed < within,
            "not so within {within:?} ({checks} checks); the last check saw: {last}"
        );
        tokio::time::sleep(POLL.min(within - elapsed)).await;
    }
}

/// What a check saw on node `i`, shown with the end of that node's log (read
/// only when shown, so a check can return it every time it fails).
pub(crate) struct Saw {
    what: String,
    node: usize,
    log: PathBuf,
}

impl fmt::Display for Saw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(8 * 1024);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        write!(
            f,
            "{}\nthe end of n{}'s log:\n{}",
            self.what,
            self.node + 1,
            &log[start..]
        )
    }
}

/// One server process of a test cluster.
pub(crate) struct TestNode {
    /// `n1`, `n2`, ...
    pub(crate) id: String,
    /// `127.0.0.1:port` for node-to-node traffic.
    pub(crate) rpc: String,
    /// `127.0.0.1:port` of the HTTP API.
    pub(crate) http: String,
    /// Its data directory (kept across restarts).
    pub(crate) dir: PathBuf,
    /// The process, while it runs.
    pub(crate) child: Option<Child>,
    /// `--initial-cluster` and extra flags of this node when they differ
    /// from the cluster's (a node added with [`TestCluster::add_node`]).
    pub(crate) own_args: Option<(String, Vec<String>)>,
    /// The network namespace the node runs in (`ip netns exec NS ...`);
    /// `None`: this one.
    pub(crate) netns: Option<String>,
}

/// Where a node of [`TestCluster::start_at`] runs: its addresses and its
/// network namespace.
pub(crate) struct Placement {
    /// `host:port` for node-to-node traffic.
    pub(crate) rpc: String,
    /// `host:port` of the HTTP API.
    pub(crate) http: String,
    /// The network namespace to run it in; `None`: this one.
    pub(crate) netns: Option<String>,
}

/// A cluster of real server processes; dropped, it kills them all.
pub(crate) struct TestCluster {
    /// The nodes, `n1` first.
    pub(crate) nodes: Vec<TestNode>,
    /// `--initial-cluster` of the nodes started together.
    pub(crate) initial_cluster: String,
    /// Flags every node gets besides its identity.
    pub(crate) extra_args: Vec<String>,
    /// Holds the data directories and logs; removed on drop.
    pub(crate) tmp: tempfile::TempDir,
    /// A client for the tests' HTTP requests.
    pub(crate) http: reqwest::Client,
}

/// A free loopback port below the kernel's ephemeral range (32768+), so the
/// outgoing connections of already running nodes can never take it between
/// our check and the server's bind. Ports are handed out once per process,
/// from a start that depends on the process id so parallel test processes
/// rarely probe the same ones; each is checked free by binding it.
pub(crate) fn free_port() -> u16 {
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

/// Runs `ringkv cert ARGS` and panics with its output when it fails.
pub(crate) fn ringkv_cert(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .arg("cert")
        .args(args)
        .output()
        .expect("running ringkv cert");
    assert!(
        out.status.success(),
        "ringkv cert {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a CA in `dir` and a certificate for each of `nodes`.
pub(crate) fn make_certs(dir: &std::path::Path, nodes: &[&str]) {
    let dir = dir.to_str().unwrap();
    ringkv_cert(&["init", "--dir", dir]);
    for n in nodes {
        ringkv_cert(&["issue", "--dir", dir, n]);
    }
}

impl TestCluster {
    /// Starts `size` nodes (N=3, R=2, W=2 unless `extra_args` say otherwise)
    /// and waits until every node answers and sees every peer.
    pub(crate) async fn start(size: usize, extra_args: &[&str]) -> TestCluster {
        TestCluster::start_with_dirs(size, extra_args, &[]).await
    }

    /// As [`TestCluster::start`], but node `i` of each `(i, dir)` of `dirs`
    /// keeps its data in `dir` (e.g. on a small filesystem the test made)
    /// instead of in the cluster's temporary directory.
    pub(crate) async fn start_with_dirs(
        size: usize,
        extra_args: &[&str],
        dirs: &[(usize, PathBuf)],
    ) -> TestCluster {
        let placements: Vec<Placement> = (0..size)
            .map(|_| Placement {
                rpc: format!("127.0.0.1:{}", free_port()),
                http: format!("127.0.0.1:{}", free_port()),
                netns: None,
            })
            .collect();
        TestCluster::launch(placements, extra_args, dirs).await
    }

    /// As [`TestCluster::start`], with node `i` at `placements[i]`: its own
    /// addresses, in its own network namespace if it names one.
    pub(crate) async fn start_at(placements: Vec<Placement>, extra_args: &[&str]) -> TestCluster {
        TestCluster::launch(placements, extra_args, &[]).await
    }

    async fn launch(
        placements: Vec<Placement>,
        extra_args: &[&str],
        dirs: &[(usize, PathBuf)],
    ) -> TestCluster {
        let size = placements.len();
        let tmp = tempfile::tempdir().unwrap();
        let nodes: Vec<TestNode> = (1..=size)
            .zip(placements)
            .map(|(i, p)| TestNode {
                id: format!("n{i}"),
                rpc: p.rpc,
                http: p.http,
                dir: dirs
                    .iter()
                    .find(|(j, _)| *j + 1 == i)
                    .map_or_else(|| tmp.path().join(format!("n{i}")), |(_, d)| d.clone()),
                child: None,
                own_args: None,
                netns: p.netns,
            })
            .collect();
        let initial_cluster = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.rpc))
            .collect::<Vec<_>>()
            .join(",");
        // reqwest brings no crypto provider: its TLS comes from the client crate.
        let http = ringkv_client::tls::reqwest_builder(None)
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
        if !extra_args.contains(&"--insecure") {
            let ids: Vec<&str> = c.nodes.iter().map(|n| n.id.as_str()).collect();
            make_certs(&c.certs_dir(), &ids);
        }
        for i in 0..size {
            c.spawn(i);
        }
        for i in 0..size {
            c.wait_healthy(i).await;
        }
        c.wait_all_see_all().await;
        c
    }

    /// Where the cluster's CA and node certificates are.
    pub(crate) fn certs_dir(&self) -> PathBuf {
        self.tmp.path().join("certs")
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
        let security: Vec<String> = if extra_args.iter().any(|a| a == "--insecure") {
            Vec::new()
        } else {
            vec!["--certs".into(), self.certs_dir().display().to_string()]
        };
        // `ip netns exec` enters the namespace and then execs the server:
        // the child's pid is the server's, so `kill` reaches it.
        let mut cmd = match &n.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_ringkv")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_ringkv")),
        };
        let child = cmd
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
            .args(security)
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
    pub(crate) async fn add_node(&mut self, extra_args: &[&str]) -> usize {
        let i = self.nodes.len();
        let id = format!("n{}", i + 1);
        if !extra_args.contains(&"--insecure") {
            let dir = self.certs_dir();
            ringkv_cert(&["issue", "--dir", dir.to_str().unwrap(), &id]);
        }
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
            netns: None,
        });
        self.spawn(i);
        self.wait_healthy(i).await;
        i
    }

    /// `GET /v1/cluster` of node `i`.
    pub(crate) async fn cluster_status(&self, i: usize) -> serde_json::Value {
        self.get_json(&format!("{}/v1/cluster", self.url(i))).await
    }

    /// The log of node `i` (for failure messages).
    pub(crate) fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.tmp.path().join(format!("n{}.log", i + 1))).unwrap_or_default()
    }

    /// `what` a check saw on node `i`, to be shown with its log.
    pub(crate) fn saw(&self, i: usize, what: impl Into<String>) -> Saw {
        Saw {
            what: what.into(),
            node: i,
            log: self.tmp.path().join(format!("n{}.log", i + 1)),
        }
    }

    async fn wait_healthy(&mut self, i: usize) {
        let url = format!("http://{}/health", self.nodes[i].http);
        eventually(START_WAIT, async || {
            let answer = match self.http.get(&url).send().await {
                Ok(r) if r.status() == 200 => return Ok(()),
                Ok(r) => format!("answers {}", r.status()),
                Err(e) => format!("does not answer ({e})"),
            };
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
            Err(self.saw(i, format!("node {} is not healthy: {url} {answer}", i + 1)))
        })
        .await;
    }

    /// Waits until every running node sees every running node alive: node
    /// by node, within one bound for all.
    pub(crate) async fn wait_all_see_all(&self) {
        let running: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id.clone())
            .collect();
        // Nodes before `next` have been seen to see every peer.
        let mut next = 0;
        eventually(START_WAIT, async || {
            while next < self.nodes.len() {
                if self.nodes[next].child.is_some() {
                    let v = self.cluster_status(next).await;
                    let all = v["members"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|m| running.contains(&m["id"].as_str().unwrap().to_string()))
                        .all(|m| m["alive"] == true);
                    if !all {
                        return Err(self.saw(
                            next,
                            format!("node {} does not see all peers alive: {v}", next + 1),
                        ));
                    }
                }
                next += 1;
            }
            Ok(())
        })
        .await;
    }

    /// SIGKILLs node `i`.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Restarts node `i` with its data directory and waits until it serves.
    pub(crate) async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "node {} is running", i + 1);
        self.spawn(i);
        self.wait_healthy(i).await;
    }

    /// GETs `url` and parses the JSON answer (panics on failure: tests).
    pub(crate) async fn get_json(&self, url: &str) -> serde_json::Value {
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
    pub(crate) fn url(&self, i: usize) -> String {
        format!("http://{}", self.nodes[i].http)
    }

    /// The key URL on node `i`, key given already percent-encoded.
    pub(crate) fn kv(&self, i: usize, bucket: &str, key_encoded: &str) -> String {
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
