//! The cart on a real three-node cluster (N=3, R=2, W=2): the server's own
//! code, started in this process on loopback sockets, each node with its
//! own data directory, reached over HTTP by the Rust client.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use ringkv_client::Client;
use shopping_cart::scenario::{remove_races_an_add, shoppers_at_once};
use shopping_cart::{CartState, CartStore, NaiveCart, OrSetCart};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest a node may take to serve and see its peers (a bound on a hang,
/// never a pass or fail on speed).
const START_WAIT: Duration = Duration::from_secs(30);

/// A free loopback port below the ephemeral range (so no outgoing
/// connection takes it between this check and the node's bind), from a
/// start that depends on the process id.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() * 397) % 10_000;
    loop {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(i < 2_500, "no free port found");
        let port = (base + i) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Three nodes running in this process; [`Cluster::stop`] stops them
/// cleanly, dropping it stops them with the test's runtime.
struct Cluster {
    urls: Vec<String>,
    stops: Vec<oneshot::Sender<()>>,
    nodes: Vec<JoinHandle<Result<(), String>>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let addrs: Vec<(String, String)> = (0..3)
            .map(|_| {
                let rpc = format!("127.0.0.1:{}", free_port());
                (rpc, format!("127.0.0.1:{}", free_port()))
            })
            .collect();
        let members: Vec<(String, String)> = (0..3)
            .map(|i| (format!("n{}", i + 1), addrs[i].0.clone()))
            .collect();
        let (mut stops, mut nodes) = (Vec::new(), Vec::new());
        for (i, (rpc, http)) in addrs.iter().enumerate() {
            let id = format!("n{}", i + 1);
            let mut config = ringkv_server::Config::new(&id, dir.path().join(&id), rpc, http);
            config.initial_cluster = members.clone();
            // Plaintext between peers: the test's own loopback cluster.
            config.insecure = true;
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            nodes.push(tokio::spawn(async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                ringkv_server::run(config, shutdown)
                    .await
                    .map_err(|e| format!("node {id}: {e:#}"))
            }));
        }
        let urls = addrs.iter().map(|(_, h)| format!("http://{h}")).collect();
        let c = Cluster {
            urls,
            stops,
            nodes,
            _dir: dir,
        };
        c.wait_ready().await;
        c
    }

    /// Waits until every node serves and sees every peer alive.
    async fn wait_ready(&self) {
        let start = Instant::now();
        for url in &self.urls {
            let client = Client::new(vec![url.clone()]).unwrap();
            loop {
                let seen = match client.cluster().await {
                    Ok(c) if c.members.iter().all(|m| m.alive) => break,
                    Ok(c) => format!("members {:?}", c.members),
                    Err(e) => e.to_string(),
                };
                if let Some(node) = self.nodes.iter().find(|n| n.is_finished()) {
                    panic!("a node stopped while starting: {node:?}");
                }
                assert!(
                    start.elapsed() < START_WAIT,
                    "{url} not ready within {START_WAIT:?}: {seen}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// A cart store whose requests go to node `i` only.
    fn store(&self, i: usize) -> CartStore {
        let client = Client::new(vec![self.urls[i % self.urls.len()].clone()]).unwrap();
        CartStore::new(client, "carts")
    }

    /// Stops every node cleanly, and fails if one failed.
    async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for node in self.nodes.drain(..) {
            node.await.unwrap().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_naive_union_brings_the_removed_item_back() {
    let c = Cluster::start().await;
    let out = remove_races_an_add::<NaiveCart>(&c.store(0), &c.store(1), "cart")
        .await
        .unwrap();
    assert_eq!(out.siblings, 2, "the two writes are concurrent: {out:?}");
    assert_eq!(
        out.items,
        ["apple", "milk", "pear"].map(String::from).into(),
        "the pear Alice removed is back"
    );
    // The merged cart was written back: one value now, pear and all.
    let read = c.store(2).read::<NaiveCart>("cart").await.unwrap();
    assert_eq!((read.siblings, read.state.items()), (1, out.items));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_or_set_keeps_the_removal_and_the_concurrent_add() {
    let c = Cluster::start().await;
    let out = remove_races_an_add::<OrSetCart>(&c.store(0), &c.store(1), "cart")
        .await
        .unwrap();
    assert_eq!(out.siblings, 2, "the two writes are concurrent: {out:?}");
    assert_eq!(out.items, ["apple", "milk"].map(String::from).into());
    let read = c.store(2).read::<OrSetCart>("cart").await.unwrap();
    assert_eq!((read.siblings, read.state.items()), (1, out.items));
    c.stop().await;
}

/// Four shoppers on one cart through three nodes, at once. With the OR-Set
/// the cart ends exactly as the shoppers left it: every add that was not
/// removed is there, and no removed item is. The naive union loses no add
/// either, but may bring removed items back (how many depends on timing,
/// so only the adds are checked for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_shoppers_lose_no_add_and_an_or_set_brings_nothing_back() {
    let c = Cluster::start().await;
    let stores = |c: &Cluster| (0..4).map(|k| c.store(k)).collect::<Vec<_>>();

    let s = shoppers_at_once::<OrSetCart>(stores(&c), "orset", 8)
        .await
        .unwrap();
    eprintln!(
        "OR-Set: {} items expected, {} removed, {} reads found siblings",
        s.expected.len(),
        s.removed.len(),
        s.reads_with_siblings
    );
    assert_eq!(s.items, s.expected, "{s:?}");
    assert!(!s.removed.is_empty(), "some removes saw their item: {s:?}");

    let s = shoppers_at_once::<NaiveCart>(stores(&c), "naive", 8)
        .await
        .unwrap();
    let back = s.items.intersection(&s.removed).count();
    eprintln!(
        "naive: {} items expected, {back} of {} removed items came back, {} reads found siblings",
        s.expected.len(),
        s.removed.len(),
        s.reads_with_siblings
    );
    assert!(s.items.is_superset(&s.expected), "an add was lost: {s:?}");
    c.stop().await;
}
