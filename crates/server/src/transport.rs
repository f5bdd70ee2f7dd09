//! Node-to-node TCP: one outgoing connection per peer, length-delimited
//! frames of postcard-encoded [`Envelope`]s, many requests in flight on it
//! (they carry request ids), reconnect with backoff, bounded queues.
//!
//! A connection starts with a [`Hello`] frame naming the sender, so the
//! receiver knows who speaks without trusting each envelope. Frames that do
//! not decode are logged and the connection is closed: nothing reaches the
//! node.
//!
//! Liveness is level-triggered: each peer's outgoing-connection task writes
//! whether its connection is up into [`Liveness`], and the node loop reads
//! the whole table whenever it changed. No up/down event can be lost to a
//! full queue, and only one task speaks for each peer.
//!
//! Gossip packets are ordinary [`PeerMsg::Gossip`] messages on these links.
//! The set of links grows: a peer gossip tells the node about
//! ([`Peers::learn`]) gets its own link, and a join announce to a bare
//! address ([`Peers::send_addr`]) goes over a one-off connection. A
//! connection is accepted from any node id with a valid hello (a joining
//! node may be outside this node's layout); the node decides what it takes
//! from whom.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use ringkv_core::NodeId;
use ringkv_core::msg::{Envelope, PeerMsg};
use ringkv_node::Input;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{Instrument, debug, info, warn};

use crate::faults::Faults;
use crate::runtime::{Event, NodeHandle, PeerSender};

/// Messages waiting for one peer; past it new ones are dropped (the
/// coordinators' timeouts cover lost messages).
pub const PEER_QUEUE_MAX: usize = 8_192;
/// First reconnect delay; doubles up to [`BACKOFF_MAX_MS`].
const BACKOFF_MIN_MS: u64 = 50;
/// Longest reconnect delay.
const BACKOFF_MAX_MS: u64 = 2_000;

/// First frame on every connection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// Wire format version.
    pub version: u32,
    /// The connecting node.
    pub node: NodeId,
    /// Its HTTP address, for status pages.
    pub http_addr: String,
}

const WIRE_VERSION: u32 = 1;

/// What this node knows about its peers' connections.
#[derive(Clone, Default)]
pub struct PeerInfo {
    /// HTTP addresses peers announced in their hello.
    pub http_addrs: Arc<Mutex<BTreeMap<NodeId, String>>>,
}

/// Whether each peer's outgoing connection is up, with a version that
/// changes on every change so readers can skip an unchanged table.
#[derive(Clone, Default)]
pub struct Liveness {
    table: Arc<Mutex<BTreeMap<NodeId, bool>>>,
    version: Arc<AtomicU64>,
}

impl Liveness {
    fn set(&self, peer: &NodeId, up: bool) {
        let mut t = self.table.lock().expect("liveness lock");
        if t.insert(peer.clone(), up) != Some(up) {
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    /// The table's version: changes whenever an entry changes.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Every peer whose state is known, as node inputs.
    pub fn inputs(&self) -> Vec<Input> {
        let t = self.table.lock().expect("liveness lock");
        t.iter()
            .map(|(peer, &up)| Input::PeerStatus {
                peer: peer.clone(),
                up,
            })
            .collect()
    }
}

/// One peer's link as the senders see it.
struct PeerLink {
    /// Where its task connects.
    addr: String,
    queue: mpsc::Sender<PeerMsg>,
    /// Wakes its task to reconnect at once (the peer just called us).
    wake: Arc<Notify>,
}

/// The sending side: one queue per peer, drained by that peer's task. Starts
/// with the layout's peers and grows with the ones gossip finds.
#[derive(Clone)]
pub struct Peers {
    links: Arc<Mutex<BTreeMap<NodeId, PeerLink>>>,
    me: NodeId,
    hello: Hello,
    frame_bytes_max: usize,
    liveness: Liveness,
    faults: Faults,
    /// The tokio runtime the link tasks run on (sends may come from outside
    /// a runtime context).
    rt: tokio::runtime::Handle,
}

impl PeerSender for Peers {
    fn send(&self, to: &NodeId, msg: PeerMsg) {
        let links = self.links.lock().expect("peers lock");
        match links.get(to) {
            Some(l) => {
                if l.queue.try_send(msg).is_err() {
                    debug!(peer = %to, "peer queue full or closed; message dropped");
                }
            }
            None => debug!(peer = %to, me = %self.me, "message for an unknown peer dropped"),
        }
    }

    fn send_addr(&self, addr: &str, msg: PeerMsg) {
        let (addr, hello, me) = (addr.to_string(), self.hello.clone(), self.me.clone());
        let frame_bytes_max = self.frame_bytes_max;
        self.rt.spawn(
            async move {
                if let Err(e) = send_once(&addr, hello, me, msg, frame_bytes_max).await {
                    debug!(%addr, error = %e, "one-off send failed");
                }
            }
            .in_current_span(),
        );
    }

    fn learn(&self, peer: &NodeId, addr: &str) {
        if *peer == self.me {
            return;
        }
        let mut links = self.links.lock().expect("peers lock");
        match links.get(peer) {
            Some(l) if l.addr != addr => {
                // The layout (or the first report) keeps its address until
                // layout changes exist.
                debug!(%peer, known = %l.addr, gossiped = %addr, "peer address differs; kept the known one");
            }
            Some(_) => {}
            None => {
                info!(%peer, %addr, "peer learned through gossip");
                let l = self.spawn_link(peer.clone(), addr.to_string());
                links.insert(peer.clone(), l);
            }
        }
    }
}

impl Peers {
    /// Asks `peer`'s task to stop backing off and reconnect now.
    pub fn wake(&self, peer: &NodeId) {
        if let Some(l) = self.links.lock().expect("peers lock").get(peer) {
            l.wake.notify_one();
        }
    }

    fn spawn_link(&self, peer: NodeId, addr: String) -> PeerLink {
        let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
        let notify = Arc::new(Notify::new());
        let link = Link {
            me: self.me.clone(),
            peer,
            addr: addr.clone(),
            hello: self.hello.clone(),
            frame_bytes_max: self.frame_bytes_max,
            liveness: self.liveness.clone(),
            wake: notify.clone(),
            faults: self.faults.clone(),
        };
        self.rt.spawn(link.run(rx).in_current_span());
        PeerLink {
            addr,
            queue: tx,
            wake: notify,
        }
    }
}

/// Connects to `addr`, sends the hello and one message, and closes.
async fn send_once(
    addr: &str,
    hello: Hello,
    me: NodeId,
    msg: PeerMsg,
    frame_bytes_max: usize,
) -> std::io::Result<()> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    let mut sink = FramedWrite::new(stream, codec(frame_bytes_max));
    let hello = Bytes::from(postcard::to_stdvec(&hello).expect("hello encodes"));
    sink.send(hello).await?;
    let frame = Bytes::from(Envelope { from: me, msg }.to_bytes());
    sink.send(frame).await?;
    SinkExt::<Bytes>::close(&mut sink).await
}

fn codec(frame_bytes_max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(frame_bytes_max)
        .new_codec()
}

/// Starts one connection task per peer; returns the sender the node uses.
/// Call from within a tokio runtime (links learned later run on it too).
pub fn start_peers(
    me: NodeId,
    http_addr: String,
    peers: Vec<(NodeId, String)>,
    frame_bytes_max: usize,
    liveness: Liveness,
    faults: Faults,
) -> Peers {
    let p = Peers {
        links: Arc::new(Mutex::new(BTreeMap::new())),
        hello: Hello {
            version: WIRE_VERSION,
            node: me.clone(),
            http_addr,
        },
        me,
        frame_bytes_max,
        liveness,
        faults,
        rt: tokio::runtime::Handle::current(),
    };
    for (id, addr) in peers {
        p.learn(&id, &addr);
    }
    p
}

/// The writing side of a connection to a peer: length-delimited frames.
type PeerSink = FramedWrite<tokio::net::tcp::OwnedWriteHalf, LengthDelimitedCodec>;

/// How long a link waits before its next attempt to connect.
struct Backoff {
    /// The wait, in ms: doubles after every failure up to
    /// [`BACKOFF_MAX_MS`], back to [`BACKOFF_MIN_MS`] once connected.
    ms: u64,
    /// Whether "cannot reach peer" was logged since the last connection.
    logged_down: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            ms: BACKOFF_MIN_MS,
            logged_down: false,
        }
    }
}

/// One peer's outgoing connection.
struct Link {
    me: NodeId,
    peer: NodeId,
    addr: String,
    hello: Hello,
    frame_bytes_max: usize,
    liveness: Liveness,
    wake: Arc<Notify>,
    /// Injected faults (test-only; empty unless asked for).
    faults: Faults,
}

impl Link {
    /// Keeps a connection to the peer open and sends it what arrives on
    /// `rx`, reconnecting with backoff, until `rx` closes.
    async fn run(self, mut rx: mpsc::Receiver<PeerMsg>) {
        let mut backoff = Backoff::default();
        loop {
            let Some((read_half, sink)) = self.connect(&mut backoff, &mut rx).await else {
                continue;
            };
            if !self.serve(read_half, sink, &mut rx).await {
                return;
            }
            warn!(peer = %self.peer, "lost connection to peer");
            self.liveness.set(&self.peer, false);
        }
    }

    /// One attempt to connect and say hello. On failure: marks the peer
    /// down, drops what waited for it (stale by the time it is back) and
    /// waits out the backoff.
    async fn connect(
        &self,
        backoff: &mut Backoff,
        rx: &mut mpsc::Receiver<PeerMsg>,
    ) -> Option<(tokio::net::tcp::OwnedReadHalf, PeerSink)> {
        let stream = match TcpStream::connect(&self.addr).await {
            Ok(s) => s,
            Err(e) => {
                if !backoff.logged_down {
                    debug!(peer = %self.peer, addr = %self.addr, error = %e, "cannot reach peer");
                    backoff.logged_down = true;
                }
                self.liveness.set(&self.peer, false);
                while rx.try_recv().is_ok() {}
                self.pause(backoff.ms).await;
                backoff.ms = (backoff.ms * 2).min(BACKOFF_MAX_MS);
                return None;
            }
        };
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let mut sink = FramedWrite::new(write_half, codec(self.frame_bytes_max));
        let hello = Bytes::from(postcard::to_stdvec(&self.hello).expect("hello encodes"));
        if sink.send(hello).await.is_err() {
            self.pause(backoff.ms).await;
            return None;
        }
        info!(peer = %self.peer, addr = %self.addr, "connected to peer");
        self.liveness.set(&self.peer, true);
        *backoff = Backoff::default();
        Some((read_half, sink))
    }

    /// Sends what arrives on `rx` on one connection until it breaks (true)
    /// or `rx` closes (false).
    async fn serve(
        &self,
        mut read_half: tokio::net::tcp::OwnedReadHalf,
        mut sink: PeerSink,
        rx: &mut mpsc::Receiver<PeerMsg>,
    ) -> bool {
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return false };
                    if !self.send_batch(&mut sink, rx, msg).await {
                        return true;
                    }
                }
                // The peer never writes on this connection: a read returning
                // means it closed or died.
                _ = read_half.read(&mut probe) => return true,
            }
        }
    }

    /// Writes `msg` and every message queued behind it in one flush, after
    /// the injected faults (test clusters only) delayed or dropped them.
    /// Returns false when the connection failed.
    async fn send_batch(
        &self,
        sink: &mut PeerSink,
        rx: &mut mpsc::Receiver<PeerMsg>,
        msg: PeerMsg,
    ) -> bool {
        let fault = self.faults.get(&self.peer);
        if let Some(f) = &fault
            && f.delay_ms > 0
        {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
        }
        let dropped = || {
            fault
                .as_ref()
                .is_some_and(|f| f.drop > 0.0 && rand::random::<f64>() < f.drop)
        };
        if dropped() {
            return true;
        }
        let mut ok = self.feed(sink, msg).await;
        while ok {
            match rx.try_recv() {
                Ok(m) if dropped() => drop(m),
                Ok(m) => ok = self.feed(sink, m).await,
                Err(_) => break,
            }
        }
        ok && SinkExt::<Bytes>::flush(sink).await.is_ok()
    }

    /// Sleeps `ms`, or less if the peer called us meanwhile.
    async fn pause(&self, ms: u64) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            _ = self.wake.notified() => {}
        }
    }

    /// Queues one frame; a message too large for a frame is dropped (and
    /// logged) without breaking the connection. Returns false when the
    /// connection failed.
    async fn feed(&self, sink: &mut PeerSink, msg: PeerMsg) -> bool {
        let frame = Bytes::from(
            Envelope {
                from: self.me.clone(),
                msg,
            }
            .to_bytes(),
        );
        if frame.len() > self.frame_bytes_max {
            warn!(peer = %self.peer, bytes = frame.len(), "message larger than a frame; dropped");
            return true;
        }
        sink.feed(frame).await.is_ok()
    }
}

/// Accepts peers' connections and hands their messages to the node. Any
/// node id with a valid hello is accepted (gossip brings nodes from outside
/// the layout); the node ignores everything but gossip from those.
pub async fn serve_peers(
    listener: TcpListener,
    frame_bytes_max: usize,
    info: PeerInfo,
    peers: Peers,
    node: NodeHandle,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let info = info.clone();
        let peers = peers.clone();
        tokio::spawn(async move {
            let mut frames = FramedRead::new(stream, codec(frame_bytes_max));
            let hello: Hello = match frames.next().await {
                Some(Ok(b)) => match postcard::from_bytes(&b) {
                    Ok(h) => h,
                    Err(e) => return warn!(%remote, error = %e, "bad hello; closing"),
                },
                _ => return,
            };
            if hello.version != WIRE_VERSION || NodeId::parse(hello.node.as_str()).is_err() {
                return warn!(%remote, node = %hello.node, version = hello.version,
                    "bad node id or wrong wire version; closing");
            }
            info.http_addrs
                .lock()
                .expect("lock")
                .insert(hello.node.clone(), hello.http_addr.clone());
            // The peer is back: reconnect to it now rather than after backoff.
            peers.wake(&hello.node);
            while let Some(frame) = frames.next().await {
                let bytes = match frame {
                    Ok(b) => b,
                    Err(e) => return warn!(peer = %hello.node, error = %e, "bad frame; closing"),
                };
                let env = match Envelope::from_bytes(&bytes) {
                    Ok(env) => env,
                    Err(e) => {
                        return warn!(peer = %hello.node, error = %e, "undecodable message; closing");
                    }
                };
                let input = Input::Peer {
                    from: hello.node.clone(),
                    msg: env.msg,
                };
                if node.try_send(Event::Input(input)).is_err() {
                    debug!(peer = %hello.node, "node busy; peer message dropped");
                }
            }
        }.in_current_span());
    }
}
