//! Node-to-node TCP: one outgoing connection per peer, length-delimited
//! frames of postcard-encoded [`Envelope`]s, many requests in flight on it
//! (they carry request ids), reconnect with backoff, bounded queues.
//!
//! A connection starts with a [`Hello`] frame naming the sender, so the
//! receiver knows who speaks without trusting each envelope. Frames that do
//! not decode are logged and the connection is closed: nothing reaches the
//! node.

use std::collections::BTreeMap;
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
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use crate::runtime::{Event, NodeHandle, PeerSender};

/// Messages waiting for one peer; past it new ones are dropped (the
/// coordinators' timeouts cover lost messages).
pub const PEER_QUEUE_MAX: usize = 8_192;
/// First reconnect delay; doubles up to [`BACKOFF_MAX_MS`].
const BACKOFF_MIN_MS: u64 = 50;
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

/// The sending side: one queue per peer, drained by that peer's task.
#[derive(Clone)]
pub struct Peers {
    queues: Arc<BTreeMap<NodeId, mpsc::Sender<PeerMsg>>>,
    me: NodeId,
}

impl PeerSender for Peers {
    fn send(&self, to: &NodeId, msg: PeerMsg) {
        match self.queues.get(to) {
            Some(q) => {
                if q.try_send(msg).is_err() {
                    debug!(peer = %to, "peer queue full or closed; message dropped");
                }
            }
            None => warn!(peer = %to, me = %self.me, "message for an unknown peer dropped"),
        }
    }
}

fn codec(frame_bytes_max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(frame_bytes_max)
        .new_codec()
}

/// Starts one connection task per peer; returns the sender the node uses.
/// Each task must be given the node handle once it exists (`handle_rx`).
pub fn start_peers(
    me: NodeId,
    http_addr: String,
    peers: Vec<(NodeId, String)>,
    frame_bytes_max: usize,
    node: tokio::sync::watch::Receiver<Option<NodeHandle>>,
) -> Peers {
    let mut queues = BTreeMap::new();
    for (id, addr) in peers {
        let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
        queues.insert(id.clone(), tx);
        let hello = Hello {
            version: WIRE_VERSION,
            node: me.clone(),
            http_addr: http_addr.clone(),
        };
        tokio::spawn(peer_task(
            me.clone(),
            id,
            addr,
            hello,
            rx,
            frame_bytes_max,
            node.clone(),
        ));
    }
    Peers {
        queues: Arc::new(queues),
        me,
    }
}

fn notify(node: &tokio::sync::watch::Receiver<Option<NodeHandle>>, peer: &NodeId, up: bool) {
    if let Some(h) = node.borrow().as_ref() {
        let _ = h.try_send(Event::Input(Input::PeerStatus {
            peer: peer.clone(),
            up,
        }));
    }
}

async fn peer_task(
    me: NodeId,
    peer: NodeId,
    addr: String,
    hello: Hello,
    mut rx: mpsc::Receiver<PeerMsg>,
    frame_bytes_max: usize,
    node: tokio::sync::watch::Receiver<Option<NodeHandle>>,
) {
    let mut backoff = BACKOFF_MIN_MS;
    let mut was_up: Option<bool> = None;
    loop {
        let stream = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => {
                if was_up != Some(false) {
                    debug!(%peer, %addr, error = %e, "cannot reach peer");
                    notify(&node, &peer, false);
                    was_up = Some(false);
                }
                // Whatever waited for this peer is stale by the time it is back.
                while rx.try_recv().is_ok() {}
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                backoff = (backoff * 2).min(BACKOFF_MAX_MS);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut read_half, write_half) = stream.into_split();
        let mut sink = FramedWrite::new(write_half, codec(frame_bytes_max));
        let hello_bytes = postcard::to_stdvec(&hello).expect("hello encodes");
        if sink.send(Bytes::from(hello_bytes)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            continue;
        }
        info!(%peer, %addr, "connected to peer");
        notify(&node, &peer, true);
        backoff = BACKOFF_MIN_MS;
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return };
                    // Batch every queued message into one write.
                    let mut ok = sink.feed(frame(&me, msg)).await.is_ok();
                    while ok {
                        match rx.try_recv() {
                            Ok(m) => ok = sink.feed(frame(&me, m)).await.is_ok(),
                            Err(_) => break,
                        }
                    }
                    if !ok || SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                        break;
                    }
                }
                // The peer never writes on this connection: a read returning
                // means it closed or died.
                _ = read_half.read(&mut probe) => break,
            }
        }
        warn!(%peer, "lost connection to peer");
        notify(&node, &peer, false);
        was_up = Some(false);
    }
}

fn frame(me: &NodeId, msg: PeerMsg) -> Bytes {
    Bytes::from(
        Envelope {
            from: me.clone(),
            msg,
        }
        .to_bytes(),
    )
}

/// Accepts peers' connections and hands their messages to the node.
pub async fn serve_peers(
    listener: TcpListener,
    members: Vec<NodeId>,
    frame_bytes_max: usize,
    info: PeerInfo,
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
        let members = members.clone();
        let info = info.clone();
        tokio::spawn(async move {
            let mut frames = FramedRead::new(stream, codec(frame_bytes_max));
            let hello: Hello = match frames.next().await {
                Some(Ok(b)) => match postcard::from_bytes(&b) {
                    Ok(h) => h,
                    Err(e) => return warn!(%remote, error = %e, "bad hello; closing"),
                },
                _ => return,
            };
            if hello.version != WIRE_VERSION || !members.contains(&hello.node) {
                return warn!(%remote, node = %hello.node, version = hello.version, "peer not in the cluster or wrong wire version; closing");
            }
            info.http_addrs
                .lock()
                .expect("lock")
                .insert(hello.node.clone(), hello.http_addr.clone());
            let _ = node.try_send(Event::Input(Input::PeerStatus {
                peer: hello.node.clone(),
                up: true,
            }));
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
        });
    }
}
