//! Node-to-node TCP: one outgoing connection per peer, length-delimited
//! frames of postcard-encoded [`Envelope`]s, many requests in flight on it
//! (they carry request ids), reconnect with backoff, queues bounded in
//! messages ([`PEER_QUEUE_MAX`]) and bytes ([`PEER_QUEUE_BYTES_MAX`]).
//!
//! A connection starts with a [`Hello`] frame naming the sender, so the
//! receiver knows who speaks without trusting each envelope. Frames that do
//! not decode are logged and the connection is closed: nothing reaches the
//! node.
//!
//! With [`PeerSecurity::Tls`] every connection is mutual TLS (see
//! [`crate::tls`]): the hello's node id must be the one the peer's client
//! certificate names, else the connection is refused (logged, and counted
//! in `ringkv_peer_connections_refused_total`). A link to a known peer
//! accepts only a server certificate naming that peer. With
//! [`PeerSecurity::Insecure`] the hello is believed as it is.
//!
//! Hygiene of the listener, whoever connects: at most
//! [`PeerOptions::connections_max`] inbound connections at once (more are
//! closed at accept), the TLS handshake and the hello within
//! [`HELLO_TIMEOUT`], a hello of at most [`HELLO_BYTES_MAX`] bytes whose
//! addresses parse, and an inbound connection with no frame for
//! [`PeerOptions::idle_timeout`] is closed. Links send an empty keepalive
//! frame when they had nothing to send for a third of that.
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
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use ringkv_core::NodeId;
use ringkv_core::msg::{Envelope, PeerMsg};
use ringkv_node::Input;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{Instrument, debug, info, warn};

use crate::faults::Faults;
use crate::metrics::ReasonLabel;
use crate::runtime::{Event, NodeHandle, PeerSender};
use crate::tls::{PeerTls, cert_node_ids, check_claim};

/// Messages waiting for one peer; past it new ones are dropped (the
/// coordinators' timeouts cover lost messages).
pub const PEER_QUEUE_MAX: usize = 8_192;
/// Bytes of encoded messages waiting for one peer; past it new ones are
/// dropped too, so a slow peer holds at most this much of our memory.
pub const PEER_QUEUE_BYTES_MAX: usize = 64 << 20;
/// First reconnect delay; doubles up to [`BACKOFF_MAX_MS`].
const BACKOFF_MIN_MS: u64 = 50;
/// Longest reconnect delay.
const BACKOFF_MAX_MS: u64 = 2_000;
/// Longest wait for a TCP connection, and again for the TLS handshake, when
/// dialing a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An inbound connection must complete its TLS handshake and send its
/// hello within this, or it is closed.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest hello frame accepted, in bytes.
pub const HELLO_BYTES_MAX: usize = 4_096;
/// Default of [`PeerOptions::connections_max`].
pub const PEER_CONNECTIONS_MAX_DEFAULT: usize = 256;
/// Default of [`PeerOptions::idle_timeout`], in ms.
pub const PEER_IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Longest interval between keepalives on a quiet link.
const KEEPALIVE_MAX: Duration = Duration::from_secs(10);

/// Whether peer connections are mutual TLS.
#[derive(Clone, Debug)]
pub enum PeerSecurity {
    /// Mutual TLS with the cluster CA; hellos are bound to certificates.
    Tls(PeerTls),
    /// Plaintext, and any hello is believed (`--insecure`).
    Insecure,
}

/// How the peer transport runs: security, frame size, and the limits of
/// the listener.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// TLS or plaintext.
    pub security: PeerSecurity,
    /// Largest frame after the hello, in bytes.
    pub frame_bytes_max: usize,
    /// Most inbound peer connections open at once; more are closed at
    /// accept.
    pub connections_max: usize,
    /// An inbound connection with no frame for this long is closed.
    pub idle_timeout: Duration,
}

impl PeerOptions {
    /// How long a link may stay silent before it sends a keepalive: a
    /// third of the idle timeout (the peers' is assumed to be the same),
    /// at most [`KEEPALIVE_MAX`].
    fn keepalive(&self) -> Duration {
        (self.idle_timeout / 3).clamp(Duration::from_millis(10), KEEPALIVE_MAX)
    }
}

/// Inbound connections refused, by reason (shared with the metrics).
pub type Refusals = Family<ReasonLabel, Counter>;

/// A byte stream to or from a peer: TCP, or TLS over TCP.
trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> PeerIo for T {}
/// A boxed [`PeerIo`].
type Io = Box<dyn PeerIo>;

/// Whom a dial expects at the other end.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// This peer: its certificate must name it.
    Node(&'a NodeId),
    /// Any member: a certificate from the CA (a `--join` address).
    AnyMember,
}

/// Connects to `addr` (TLS when configured) and checks who answered.
/// Returns the stream and, with TLS, the first node id the peer's
/// certificate names. A TLS or identity failure is an error of kind
/// `InvalidData`.
async fn dial(
    security: &PeerSecurity,
    addr: &str,
    expect: Expect<'_>,
) -> std::io::Result<(Io, Option<String>)> {
    let timed_out = |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, what);
    let tcp = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("connect timed out"))??;
    let _ = tcp.set_nodelay(true);
    let tls = match security {
        PeerSecurity::Insecure => return Ok((Box::new(tcp), None)),
        PeerSecurity::Tls(tls) => tls,
    };
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let (config, name) = match expect {
        Expect::Node(peer) => (
            tls.client.clone(),
            ServerName::try_from(peer.as_str().to_string())
                .map_err(|e| invalid(format!("node id {peer} cannot name a certificate: {e}")))?,
        ),
        Expect::AnyMember => (
            tls.any_member.clone(),
            ServerName::try_from("ringkv-peer").expect("a valid DNS name"),
        ),
    };
    let stream = timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| timed_out("TLS handshake timed out"))?
    .map_err(|e| invalid(format!("TLS: {e}")))?;
    let certs = stream.get_ref().1.peer_certificates();
    if let Expect::Node(peer) = expect {
        check_claim(certs, peer.as_str()).map_err(|e| invalid(format!("the peer {e}")))?;
    }
    let id = certs
        .and_then(<[_]>::first)
        .and_then(|c| cert_node_ids(c).into_iter().next());
    Ok((Box::new(stream), id))
}

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

/// The wire format's version, in every hello. 2: empty frames are
/// keepalives; with TLS the hello is bound to the certificate.
pub const WIRE_VERSION: u32 = 2;

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
    /// Encoded frames for the link's task.
    queue: mpsc::Sender<Bytes>,
    /// Bytes in `queue`.
    queued: Arc<AtomicUsize>,
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
    options: PeerOptions,
    liveness: Liveness,
    faults: Faults,
    /// The tokio runtime the link tasks run on (sends may come from outside
    /// a runtime context).
    rt: tokio::runtime::Handle,
}

impl PeerSender for Peers {
    fn send(&self, to: &NodeId, msg: PeerMsg) {
        // Encoded here, so the queue knows its bytes.
        let frame = Bytes::from(
            Envelope {
                from: self.me.clone(),
                msg,
            }
            .to_bytes(),
        );
        let len = frame.len();
        if len > self.options.frame_bytes_max {
            return warn!(peer = %to, bytes = len, "message larger than a frame; dropped");
        }
        let links = self.links.lock().expect("peers lock");
        let Some(l) = links.get(to) else {
            return debug!(peer = %to, me = %self.me, "message for an unknown peer dropped");
        };
        if l.queued.fetch_add(len, Ordering::Relaxed) + len > PEER_QUEUE_BYTES_MAX
            || l.queue.try_send(frame).is_err()
        {
            l.queued.fetch_sub(len, Ordering::Relaxed);
            debug!(peer = %to, "peer queue full or closed; message dropped");
        }
    }

    fn send_addr(&self, addr: &str, msg: PeerMsg) {
        let (addr, hello, me) = (addr.to_string(), self.hello.clone(), self.me.clone());
        let options = self.options.clone();
        self.rt.spawn(
            async move {
                match send_once(&addr, hello, me, msg, &options).await {
                    Ok(Some(id)) => debug!(%addr, peer = %id, "one-off send to a member"),
                    Ok(None) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        warn!(%addr, error = %e, "one-off send refused: the address is not a member of this cluster");
                    }
                    Err(e) => debug!(%addr, error = %e, "one-off send failed"),
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
        let queued = Arc::new(AtomicUsize::new(0));
        let notify = Arc::new(Notify::new());
        let link = Link {
            queued: queued.clone(),
            peer,
            addr: addr.clone(),
            hello: self.hello.clone(),
            options: self.options.clone(),
            keepalive: self.options.keepalive(),
            liveness: self.liveness.clone(),
            wake: notify.clone(),
            faults: self.faults.clone(),
        };
        self.rt.spawn(link.run(rx).in_current_span());
        PeerLink {
            addr,
            queue: tx,
            queued,
            wake: notify,
        }
    }
}

/// Connects to `addr` (any member of the cluster, with TLS), sends the
/// hello and one message, and closes. Returns the id the peer's
/// certificate names (with TLS).
async fn send_once(
    addr: &str,
    hello: Hello,
    me: NodeId,
    msg: PeerMsg,
    options: &PeerOptions,
) -> std::io::Result<Option<String>> {
    let (stream, id) = dial(&options.security, addr, Expect::AnyMember).await?;
    let mut sink = FramedWrite::new(stream, codec(options.frame_bytes_max));
    let hello = Bytes::from(postcard::to_stdvec(&hello).expect("hello encodes"));
    sink.send(hello).await?;
    let frame = Bytes::from(Envelope { from: me, msg }.to_bytes());
    sink.send(frame).await?;
    SinkExt::<Bytes>::close(&mut sink).await?;
    Ok(id)
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
    options: PeerOptions,
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
        options,
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
type PeerSink = FramedWrite<WriteHalf<Io>, LengthDelimitedCodec>;

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
    peer: NodeId,
    addr: String,
    hello: Hello,
    options: PeerOptions,
    /// Longest silence before a keepalive frame.
    keepalive: Duration,
    /// Bytes in the queue this link drains.
    queued: Arc<AtomicUsize>,
    liveness: Liveness,
    wake: Arc<Notify>,
    /// Injected faults (test-only; empty unless asked for).
    faults: Faults,
}

impl Link {
    /// Keeps a connection to the peer open and sends it what arrives on
    /// `rx`, reconnecting with backoff, until `rx` closes.
    async fn run(self, mut rx: mpsc::Receiver<Bytes>) {
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
        rx: &mut mpsc::Receiver<Bytes>,
    ) -> Option<(ReadHalf<Io>, PeerSink)> {
        let stream = match dial(&self.options.security, &self.addr, Expect::Node(&self.peer)).await
        {
            Ok((s, _)) => s,
            Err(e) => {
                if !backoff.logged_down {
                    self.log_dial_error(&e);
                    backoff.logged_down = true;
                }
                self.liveness.set(&self.peer, false);
                while let Ok(frame) = rx.try_recv() {
                    self.took(&frame);
                }
                self.pause(backoff.ms).await;
                backoff.ms = (backoff.ms * 2).min(BACKOFF_MAX_MS);
                return None;
            }
        };
        let (read_half, write_half) = tokio::io::split(stream);
        let mut sink = FramedWrite::new(write_half, codec(self.options.frame_bytes_max));
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

    /// Logs why the peer could not be dialed: a warning when it answered
    /// but is not who it should be (TLS or identity), else at debug.
    fn log_dial_error(&self, e: &std::io::Error) {
        if e.kind() == std::io::ErrorKind::InvalidData {
            warn!(peer = %self.peer, addr = %self.addr, error = %e,
                "peer refused: not the node it should be, or not of this cluster");
        } else {
            debug!(peer = %self.peer, addr = %self.addr, error = %e, "cannot reach peer");
        }
    }

    /// Sends what arrives on `rx` on one connection until it breaks (true)
    /// or `rx` closes (false).
    async fn serve(
        &self,
        mut read_half: ReadHalf<Io>,
        mut sink: PeerSink,
        rx: &mut mpsc::Receiver<Bytes>,
    ) -> bool {
        let mut probe = [0u8; 1];
        let quiet = tokio::time::sleep(self.keepalive);
        tokio::pin!(quiet);
        loop {
            tokio::select! {
                frame = rx.recv() => {
                    let Some(frame) = frame else { return false };
                    self.took(&frame);
                    if !self.send_batch(&mut sink, rx, frame).await {
                        return true;
                    }
                    quiet.as_mut().reset(Instant::now() + self.keepalive);
                }
                // The peer never writes on this connection: a read returning
                // means it closed or died.
                _ = read_half.read(&mut probe) => return true,
                // Nothing sent for a while: an empty frame keeps the peer
                // from closing the connection as idle.
                () = &mut quiet => {
                    if sink.send(Bytes::new()).await.is_err() {
                        return true;
                    }
                    quiet.as_mut().reset(Instant::now() + self.keepalive);
                }
            }
        }
    }

    /// Writes `frame` and every frame queued behind it in one flush, after
    /// the injected faults (test clusters only) delayed or dropped them.
    /// Returns false when the connection failed.
    async fn send_batch(
        &self,
        sink: &mut PeerSink,
        rx: &mut mpsc::Receiver<Bytes>,
        frame: Bytes,
    ) -> bool {
        let fault = self.faults.get(&self.peer);
        if let Some(f) = &fault
            && f.delay_ms + f.jitter_ms > 0
        {
            let jitter_us = rand::random_range(0..=f.jitter_ms * 1_000);
            let delay = Duration::from_millis(f.delay_ms) + Duration::from_micros(jitter_us);
            tokio::time::sleep(delay).await;
        }
        let dropped = || {
            fault
                .as_ref()
                .is_some_and(|f| f.drop > 0.0 && rand::random::<f64>() < f.drop)
        };
        if dropped() {
            return true;
        }
        let mut ok = sink.feed(frame).await.is_ok();
        while ok {
            let Ok(frame) = rx.try_recv() else { break };
            self.took(&frame);
            if !dropped() {
                ok = sink.feed(frame).await.is_ok();
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

    /// Counts `frame` out of the queue's bytes.
    fn took(&self, frame: &Bytes) {
        self.queued.fetch_sub(frame.len(), Ordering::Relaxed);
    }
}

/// Accepts peers' connections and hands their messages to the node. Any
/// node id with a valid hello is accepted (gossip brings nodes from outside
/// the layout); the node ignores everything but gossip from those. With
/// TLS the hello's id must be the one the client certificate names.
pub async fn serve_peers(
    listener: TcpListener,
    options: PeerOptions,
    refusals: Refusals,
    info: PeerInfo,
    peers: Peers,
    node: NodeHandle,
) {
    let slots = Arc::new(Semaphore::new(options.connections_max));
    let inbound = Arc::new(Inbound {
        options,
        refusals,
        info,
        peers,
        node,
    });
    // At most one "too many connections" warning a second: a flood must not
    // flood the log too.
    let mut warned_full: Option<Instant> = None;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            inbound.count("full");
            if warned_full.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                warned_full = Some(Instant::now());
                warn!(%remote, max = inbound.options.connections_max,
                    "too many inbound peer connections; closing the new one (--peer-connections-max)");
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let inbound = inbound.clone();
        tokio::spawn(
            async move {
                inbound.serve(stream, remote).await;
                drop(slot);
            }
            .in_current_span(),
        );
    }
}

/// What every inbound connection shares.
struct Inbound {
    options: PeerOptions,
    refusals: Refusals,
    info: PeerInfo,
    peers: Peers,
    node: NodeHandle,
}

/// The reading side of an inbound connection.
type InFrames = FramedRead<Io, LengthDelimitedCodec>;

impl Inbound {
    /// Counts one refused connection.
    fn count(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Logs and counts a refused connection.
    fn refuse(&self, remote: SocketAddr, reason: &'static str, why: &str) {
        warn!(%remote, reason, "peer connection refused: {why}");
        self.count(reason);
    }

    /// Serves one inbound connection: handshake and hello, then its frames
    /// until it closes, sends a bad frame or stays idle too long.
    async fn serve(&self, tcp: TcpStream, remote: SocketAddr) {
        let Some((hello, mut frames)) = self.open(tcp, remote).await else {
            return;
        };
        self.info
            .http_addrs
            .lock()
            .expect("lock")
            .insert(hello.node.clone(), hello.http_addr.clone());
        // The peer is back: reconnect to it now rather than after backoff.
        self.peers.wake(&hello.node);
        while let Some(bytes) = self.next_frame(&mut frames, &hello.node).await {
            if bytes.is_empty() {
                continue; // a keepalive
            }
            if !self.deliver(&hello.node, &bytes) {
                return;
            }
        }
    }

    /// The next frame from `peer`; `None` (logged) when the connection
    /// closed, broke, or stayed idle for the idle timeout.
    async fn next_frame(&self, frames: &mut InFrames, peer: &NodeId) -> Option<Bytes> {
        let idle = self.options.idle_timeout;
        match timeout(idle, frames.next()).await {
            Err(_) => {
                info!(%peer, idle_ms = idle.as_millis() as u64, "peer connection idle; closing");
                None
            }
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                warn!(%peer, error = %e, "bad frame; closing");
                None
            }
            Ok(Some(Ok(b))) => Some(b.freeze()),
        }
    }

    /// Hands one message from `peer` to the node; false (logged) when it
    /// does not decode and the connection must close.
    fn deliver(&self, peer: &NodeId, bytes: &[u8]) -> bool {
        let env = match Envelope::from_bytes(bytes) {
            Ok(env) => env,
            Err(e) => {
                warn!(%peer, error = %e, "undecodable message; closing");
                return false;
            }
        };
        let input = Input::Peer {
            from: peer.clone(),
            msg: env.msg,
        };
        if self.node.try_send(Event::Input(input)).is_err() {
            debug!(%peer, "node busy; peer message dropped");
        }
        true
    }

    /// The TLS handshake (when configured) and the hello, within
    /// [`HELLO_TIMEOUT`]; `None` when the connection was refused (logged
    /// and counted) or closed.
    async fn open(&self, tcp: TcpStream, remote: SocketAddr) -> Option<(Hello, InFrames)> {
        let deadline = Instant::now() + HELLO_TIMEOUT;
        let (io, certs): (Io, Option<Vec<CertificateDer<'static>>>) = match &self.options.security {
            PeerSecurity::Insecure => (Box::new(tcp), None),
            PeerSecurity::Tls(tls) => {
                let accept = tokio_rustls::TlsAcceptor::from(tls.server.clone()).accept(tcp);
                match timeout_at(deadline, accept).await {
                    Ok(Ok(s)) => {
                        let certs = s.get_ref().1.peer_certificates().map(<[_]>::to_vec);
                        (Box::new(s), Some(certs.unwrap_or_default()))
                    }
                    Ok(Err(e)) => {
                        self.refuse(remote, "tls", &format!("TLS handshake failed: {e}"));
                        return None;
                    }
                    Err(_) => {
                        self.refuse(remote, "hello_timeout", "no TLS handshake in time");
                        return None;
                    }
                }
            }
        };
        let mut frames = FramedRead::new(io, codec(HELLO_BYTES_MAX));
        let hello = match timeout_at(deadline, frames.next()).await {
            Err(_) => {
                self.refuse(remote, "hello_timeout", "no hello in time");
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(e))) => {
                self.refuse(remote, "hello", &format!("bad hello frame: {e}"));
                return None;
            }
            Ok(Some(Ok(bytes))) => match decode_hello(&bytes) {
                Ok(h) => h,
                Err(e) => {
                    self.refuse(remote, "hello", &e);
                    return None;
                }
            },
        };
        if let Some(certs) = certs
            && let Err(e) = check_claim(Some(&certs), hello.node.as_str())
        {
            self.refuse(remote, "id_mismatch", &format!("hello {e}"));
            return None;
        }
        frames
            .decoder_mut()
            .set_max_frame_length(self.options.frame_bytes_max);
        Some((hello, frames))
    }
}

/// Decodes and checks a hello: the wire version, a valid node id, and an
/// HTTP address that is a socket address or `host:port` with a DNS name.
fn decode_hello(bytes: &[u8]) -> Result<Hello, String> {
    let hello: Hello = postcard::from_bytes(bytes).map_err(|e| format!("bad hello: {e}"))?;
    if hello.version != WIRE_VERSION {
        return Err(format!(
            "wire version {} (this node speaks {WIRE_VERSION})",
            hello.version
        ));
    }
    if NodeId::parse(hello.node.as_str()).is_err() {
        return Err(format!("bad node id {:?}", hello.node.as_str()));
    }
    if !is_host_port(&hello.http_addr) {
        return Err(format!(
            "{} sent HTTP address {:?}, not host:port",
            hello.node, hello.http_addr
        ));
    }
    Ok(hello)
}

/// Whether `s` is a socket address, or a DNS name and a port.
fn is_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    port.parse::<u16>().is_ok() && matches!(ServerName::try_from(host), Ok(ServerName::DnsName(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node: &str, http_addr: &str, version: u32) -> Vec<u8> {
        postcard::to_stdvec(&Hello {
            version,
            node: NodeId::from(node),
            http_addr: http_addr.into(),
        })
        .unwrap()
    }

    #[test]
    fn hellos_are_checked() {
        assert!(decode_hello(&hello("n1", "127.0.0.1:8081", WIRE_VERSION)).is_ok());
        assert!(decode_hello(&hello("n1", "[::1]:8081", WIRE_VERSION)).is_ok());
        assert!(decode_hello(&hello("n1", "db-1.example:8081", WIRE_VERSION)).is_ok());
        let bad = [
            hello("n1", "127.0.0.1:8081", 1),
            hello("n 1", "127.0.0.1:8081", WIRE_VERSION),
            hello("n1", "127.0.0.1", WIRE_VERSION),
            hello("n1", "<script>:80", WIRE_VERSION),
            hello("n1", "127.0.0.1:99999", WIRE_VERSION),
            vec![0xff; 10],
        ];
        for b in bad {
            assert!(decode_hello(&b).is_err(), "{b:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// A hello is the first frame from an unauthenticated connection:
        /// arbitrary bytes are refused with a reason, never a panic.
        #[test]
        fn arbitrary_hellos_are_refused_with_a_reason(
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
        ) {
            if let Err(e) = decode_hello(&b) {
                proptest::prop_assert!(!e.is_empty());
            }
        }

        /// Damaged valid hellos (a flipped bit, a cut, bytes inserted where a
        /// length was) are refused or are a valid hello, never a panic.
        #[test]
        fn damaged_hellos_are_refused_or_valid(
            addr in proptest::sample::select(vec!["127.0.0.1:8081", "[::1]:1", "db-1.example:8081"]),
            at in proptest::prelude::any::<usize>(),
            bit in 0u8..8,
            cut in proptest::prelude::any::<usize>(),
            insert in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6),
        ) {
            let mut b = hello("n1", addr, WIRE_VERSION);
            let i = at % b.len();
            b[i] ^= 1 << bit;
            let j = at % (b.len() + 1);
            b.splice(j..j, insert);
            b.truncate(cut % (b.len() + 1));
            if let Ok(h) = decode_hello(&b) {
                proptest::prop_assert_eq!(h.version, WIRE_VERSION);
                proptest::prop_assert!(NodeId::parse(h.node.as_str()).is_ok());
                proptest::prop_assert!(is_host_port(&h.http_addr));
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_that_reads_nothing_holds_at_most_the_queue_bytes() {
        // It accepts (the kernel does, into the backlog) but never reads.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let options = PeerOptions {
            security: PeerSecurity::Insecure,
            frame_bytes_max: 4 << 20,
            connections_max: 1,
            idle_timeout: Duration::from_secs(60),
        };
        let peer = NodeId::from("n2");
        let peers = start_peers(
            NodeId::from("n1"),
            "127.0.0.1:1".into(),
            vec![(peer.clone(), addr)],
            options,
            Liveness::default(),
            Faults::default(),
        );
        let big = || {
            let object = ringkv_core::Object::empty().update(
                &ringkv_core::VersionVector::new(),
                ringkv_core::Dot {
                    actor: ringkv_core::Actor {
                        node: NodeId::from("n1"),
                        incarnation: 1,
                    },
                    counter: 1,
                },
                ringkv_core::Value::Data(Bytes::from(vec![7u8; 1 << 20])),
                0,
            );
            PeerMsg::ReplicaPut {
                req_id: 1,
                key: ringkv_core::hash::BucketKey::new("b", "k"),
                object,
                stands_in_for: None,
                sent_us: 0,
            }
        };
        let queued = || {
            let links = peers.links.lock().unwrap();
            links[&peer].queued.load(Ordering::Relaxed)
        };
        for _ in 0..100 {
            peers.send(&peer, big());
            assert!(queued() <= PEER_QUEUE_BYTES_MAX, "{}", queued());
        }
        // The socket's buffers take a few MiB; the queue holds the rest up
        // to its bound, and the other messages were dropped.
        assert!(queued() > PEER_QUEUE_BYTES_MAX / 2, "{}", queued());
        drop(listener);
    }

    #[test]
    fn keepalives_come_well_before_the_idle_timeout() {
        let opts = |ms| PeerOptions {
            security: PeerSecurity::Insecure,
            frame_bytes_max: 1 << 20,
            connections_max: 1,
            idle_timeout: Duration::from_millis(ms),
        };
        assert_eq!(opts(60_000).keepalive(), KEEPALIVE_MAX);
        assert_eq!(opts(3_000).keepalive(), Duration::from_secs(1));
    }
}
