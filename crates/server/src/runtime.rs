//! The node's loop: feeds the sans-IO node its inputs in batches, makes
//! each batch's writes durable once (group commit), then performs the
//! batch's outputs.
//!
//! The loop is a task on the async runtime, next to the HTTP server and the
//! peer links: a request then crosses no thread on its way through the node,
//! which under load cost more than the storage calls the loop makes inline
//! (they touch memory and, once per batch, `write(2)`). A periodic fsync
//! runs on a thread of its own ([`crate::fsync`]); the fsync of
//! `--sync always` goes through `block_in_place` so the runtime's other
//! tasks move to another thread meanwhile. Async code talks to the loop
//! through a bounded channel with `try_send`, so a full node refuses work
//! instead of stalling the HTTP server.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientError, ClientReply, ClientRequest, PeerMsg};
use ringkv_core::sloppy::Hint;
use ringkv_core::{NodeId, Object, PartitionId};
use ringkv_node::{ClientId, Input, Node, Output, Timer};
use ringkv_storage::{Store, StoreError, SyncMode};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, error, warn};

use crate::fsync::BackgroundSync;
use crate::transport::Liveness;

/// Most events waiting for the node loop; past it clients get `503`.
pub const EVENTS_MAX: usize = 65_536;
/// Most inputs handled before one flush/sync and the batch's outputs.
const BATCH_MAX: usize = 1_024;

/// A closure run on the node loop with the node, for status pages.
pub type Inspect = Box<dyn FnOnce(&Node<Tracked>) + Send>;

/// A closure run on the node loop that may change the node (e.g. set a
/// bucket's properties), given the node's clock (ms) and the batch's outputs.
/// It returns a [`Release`], called once the batch's writes are durable and
/// its outputs performed (with `Err` when the store could not be flushed).
pub type Mutate = Box<dyn FnOnce(&mut Node<Tracked>, u64, &mut Vec<Output>) -> Release + Send>;

/// Hands a [`Mutate`]'s result to its caller after the batch's group commit,
/// like a client reply: `Ok` once the writes are durable, `Err` with why not.
pub type Release = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What the node loop can be asked to do.
pub enum Event {
    /// A client request; the reply goes to `reply`.
    Client {
        /// The request.
        request: ClientRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<ClientReply>,
    },
    /// An input from the transport (peer messages, peer status).
    Input(Input),
    /// Run a closure with read access to the node.
    Inspect(Inspect),
    /// Run a closure with write access to the node; its outputs are
    /// performed and its result released like a client reply's.
    Mutate(Mutate),
    /// Flush, sync and stop.
    Shutdown(oneshot::Sender<Result<(), String>>),
}

/// Sends messages to peers; implemented by the transport.
pub trait PeerSender: Send + 'static {
    /// Queues `msg` for `to`; drops it if the peer's queue is full.
    fn send(&self, to: &NodeId, msg: PeerMsg);
    /// Sends `msg` to an address whose node id is unknown (gossip join
    /// announces); best effort.
    fn send_addr(&self, addr: &str, msg: PeerMsg);
    /// `peer` listens at `addr` (gossip told the node): make sure
    /// [`PeerSender::send`] can reach it.
    fn learn(&self, peer: &NodeId, addr: &str);
}

/// A handle to the node loop.
#[derive(Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Event>,
    /// Why the store failed, once it has (set once by the loop, never
    /// cleared: see [`NodeHandle::store_failure`]).
    failure: Arc<OnceLock<String>>,
}

/// Why an event could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is full.
    Full,
    /// The node loop has stopped.
    Stopped,
}

/// Why [`NodeHandle::ask`] gave no reply.
#[derive(Debug, PartialEq, Eq)]
pub enum AskError {
    /// The request was not queued (nothing changed).
    Queue(QueueError),
    /// No reply came within the bound: the request may or may not have
    /// been applied.
    NoAnswer,
}

/// Why a [`NodeHandle::mutate`] gave no result.
#[derive(Debug, PartialEq, Eq)]
pub enum MutateError {
    /// The change was not queued (nothing changed).
    Queue(QueueError),
    /// The change was applied in memory but its writes could not be made
    /// durable; it is not confirmed and may be lost at a restart.
    NotDurable(String),
}

impl NodeHandle {
    /// A handle whose events go to `tx`, for tests that answer them by hand.
    #[cfg(test)]
    pub(crate) fn from_sender(tx: mpsc::Sender<Event>) -> Self {
        NodeHandle {
            tx,
            failure: Arc::default(),
        }
    }

    /// Why this node's store failed (a flush or fsync of its journal
    /// failed: a full or broken disk), once it has; `None` while it works.
    /// From then on the node is out of service until it is restarted: it
    /// answers every client request with an error, ignores its peers (so
    /// gossip soon holds it down and they send it no more work) and runs
    /// no background work. Status pages keep answering, to say why. Read
    /// without the node loop, so it answers even if the loop is stuck.
    pub fn store_failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Queues an event without blocking.
    pub fn try_send(&self, ev: Event) -> Result<(), QueueError> {
        self.tx.try_send(ev).map_err(|e| match e {
            TrySendError::Full(_) => QueueError::Full,
            TrySendError::Closed(_) => QueueError::Stopped,
        })
    }

    /// Queues an event, waiting for room (call from a blocking context).
    pub fn send_blocking(&self, ev: Event) -> Result<(), QueueError> {
        self.tx.blocking_send(ev).map_err(|_| QueueError::Stopped)
    }

    /// Queues a client request on the node loop and waits for its reply.
    /// Every client front end (the HTTP API, the Redis protocol) goes
    /// through here, so admission, quorums, buckets, strong buckets and
    /// limits apply to all of them alike.
    ///
    /// The node always answers by the request's own deadline
    /// (`timeout_ms`, else `default_timeout_ms`), with an error if its
    /// journal write failed; the bound here, 5 s past that, only guards
    /// against a lost reply.
    pub async fn ask(
        &self,
        request: ClientRequest,
        default_timeout_ms: u64,
    ) -> Result<ClientReply, AskError> {
        let timeout_ms = request.timeout_ms;
        let (tx, rx) = oneshot::channel();
        self.try_send(Event::Client { request, reply: tx })
            .map_err(AskError::Queue)?;
        let bound = Duration::from_millis(
            timeout_ms
                .unwrap_or(default_timeout_ms)
                .min(ringkv_node::TIMEOUT_MS_MAX)
                + 5_000,
        );
        match tokio::time::timeout(bound, rx).await {
            Ok(Ok(r)) => Ok(r),
            _ => Err(AskError::NoAnswer),
        }
    }

    /// Runs `f` on the node loop and returns its result.
    pub async fn inspect<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node<Tracked>) -> T + Send + 'static,
    ) -> Result<T, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.try_send(Event::Inspect(Box::new(move |n| {
            let _ = tx.send(f(n));
        })))?;
        rx.await.map_err(|_| QueueError::Stopped)
    }

    /// Runs `f` on the node loop with write access to the node, the node's
    /// clock (ms) and the batch's outputs. Its outputs are performed with the
    /// batch's, and its result is returned only after the batch's writes are
    /// durable (group commit), exactly like a client reply.
    pub async fn mutate<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node<Tracked>, u64, &mut Vec<Output>) -> T + Send + 'static,
    ) -> Result<T, MutateError> {
        let (tx, rx) = oneshot::channel();
        self.try_send(Event::Mutate(Box::new(move |n, now, out| {
            let value = f(n, now, out);
            Box::new(move |durable: Result<(), String>| {
                let _ = tx.send(durable.map(|()| value));
            })
        })))
        .map_err(MutateError::Queue)?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(MutateError::NotDurable(e)),
            Err(_) => Err(MutateError::Queue(QueueError::Stopped)),
        }
    }
}

/// The on-disk store, remembering whether anything was written since the
/// last flush so idle batches cost no syscall.
pub struct Tracked {
    inner: ringkv_storage_fjall::fjall_store::FjallStore,
    dirty: bool,
    /// Tests: how many times the loop synced the store itself.
    #[cfg(test)]
    syncs: u64,
    /// Tests: make every flush and sync fail, as a full disk does.
    #[cfg(test)]
    fail: bool,
}

impl Tracked {
    /// Wraps a store.
    pub fn new(inner: ringkv_storage_fjall::fjall_store::FjallStore) -> Self {
        Tracked {
            inner,
            dirty: false,
            #[cfg(test)]
            syncs: 0,
            #[cfg(test)]
            fail: false,
        }
    }

    /// Makes the store's flushed writes durable from another thread.
    pub fn journal_syncer(&self) -> ringkv_storage_fjall::fjall_store::JournalSyncer {
        self.inner.journal_syncer()
    }
}

impl Store for Tracked {
    fn get(&self, p: PartitionId, key: &BucketKey) -> Result<Option<Object>, StoreError> {
        self.inner.get(p, key)
    }
    fn put(&mut self, p: PartitionId, key: &BucketKey, object: &Object) -> Result<(), StoreError> {
        self.dirty = true;
        self.inner.put(p, key, object)
    }
    fn delete(&mut self, p: PartitionId, key: &BucketKey) -> Result<(), StoreError> {
        self.dirty = true;
        self.inner.delete(p, key)
    }
    fn put_hint(&mut self, hint: &Hint) -> Result<(), StoreError> {
        self.dirty = true;
        self.inner.put_hint(hint)
    }
    fn delete_hint(&mut self, hint: &Hint) -> Result<(), StoreError> {
        self.dirty = true;
        self.inner.delete_hint(hint)
    }
    fn hints(&self) -> Result<Vec<Hint>, StoreError> {
        self.inner.hints()
    }
    fn put_meta(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.dirty = true;
        self.inner.put_meta(key, value)
    }
    fn metas(&self) -> Result<Vec<ringkv_storage::Meta>, StoreError> {
        self.inner.metas()
    }
    fn scan_bucket(
        &self,
        p: PartitionId,
        bucket: &[u8],
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(bytes::Bytes, Object)>, StoreError> {
        self.inner.scan_bucket(p, bucket, prefix, after, limit)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.fail {
            return Err(StoreError::Engine(
                "No space left on device (injected)".into(),
            ));
        }
        self.inner.flush()
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        #[cfg(test)]
        {
            self.syncs += 1;
        }
        #[cfg(test)]
        if self.fail {
            return Err(StoreError::Engine(
                "No space left on device (injected)".into(),
            ));
        }
        self.inner.sync()
    }
    fn scan_partition(&self, p: PartitionId) -> Result<Vec<(BucketKey, Object)>, StoreError> {
        self.inner.scan_partition(p)
    }
    fn raft_append(
        &mut self,
        group: PartitionId,
        first: u64,
        entries: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.dirty = true;
        self.inner.raft_append(group, first, entries)
    }
    fn raft_compact(&mut self, group: PartitionId, below: u64) -> Result<(), StoreError> {
        self.dirty = true;
        self.inner.raft_compact(group, below)
    }
    fn raft_put_state(&mut self, group: PartitionId, state: &[u8]) -> Result<(), StoreError> {
        self.dirty = true;
        self.inner.raft_put_state(group, state)
    }
    fn raft_load(&self, group: PartitionId) -> Result<Option<ringkv_storage::RaftLog>, StoreError> {
        self.inner.raft_load(group)
    }
    fn raft_groups(&self) -> Result<Vec<PartitionId>, StoreError> {
        self.inner.raft_groups()
    }
}

/// Starts the node's loop on the current runtime (which must be a
/// multi-thread one: an fsync uses `block_in_place`); returns its handle and
/// the task.
pub fn spawn(
    node: Node<Tracked>,
    sync: SyncMode,
    peers: impl PeerSender,
    liveness: Liveness,
) -> (NodeHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(EVENTS_MAX);
    let background = match sync {
        SyncMode::Periodic { .. } => {
            let syncer = node.store().journal_syncer();
            match BackgroundSync::start(move || syncer.sync()) {
                Ok(bg) => Some(bg),
                Err(e) => {
                    warn!(error = %e, "cannot start the fsync thread; the node's loop fsyncs itself");
                    None
                }
            }
        }
        SyncMode::Always => None,
    };
    let failure: Arc<OnceLock<String>> = Arc::default();
    let mut event_loop = Loop::new(node, sync, background, peers, liveness);
    event_loop.failure = Arc::clone(&failure);
    let task = tokio::spawn(event_loop.run(rx).in_current_span());
    (NodeHandle { tx, failure }, task)
}

struct Loop<P: PeerSender> {
    node: Node<Tracked>,
    sync: SyncMode,
    /// Where periodic fsyncs run, so the loop never waits for them.
    background: Option<BackgroundSync>,
    peers: P,
    start: Instant,
    /// Pending timers: (due ms, timer id).
    timers: BTreeMap<(u64, Timer), ()>,
    /// Where each pending client request's reply goes. Keyed by the loop's
    /// own sequential ids, so a fast non-keyed hash is safe.
    clients: FxHashMap<ClientId, oneshot::Sender<ClientReply>>,
    next_client: ClientId,
    last_sync: Instant,
    unsynced: bool,
    outputs: Vec<Output>,
    /// Results of this batch's [`Event::Mutate`]s, released after its commit.
    releases: Vec<Release>,
    liveness: Liveness,
    liveness_seen: u64,
    /// Why the store failed, once it has: the node is then out of service
    /// (see [`NodeHandle::store_failure`]).
    failure: Arc<OnceLock<String>>,
}

/// Turns a batch's outputs into what may go out when its writes could not be
/// made durable: timers stay, no message reaches a peer (their coordinators
/// time out), and every client gets an error instead of its reply.
fn fail_batch(outputs: &mut Vec<Output>, error: &str) {
    let msg = format!(
        "the node could not write its journal ({error}); the request may or may not have \
         been applied: retry, and check the node's disk"
    );
    outputs.retain_mut(|o| match o {
        Output::SetTimer { .. } => true,
        Output::Reply { reply, .. } => {
            *reply = ClientReply::Error(ClientError::Internal(msg.clone()));
            true
        }
        _ => false,
    });
}

/// The wall-clock time, in µs since the Unix epoch (0 before it).
fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl<P: PeerSender> Loop<P> {
    fn new(
        node: Node<Tracked>,
        sync: SyncMode,
        background: Option<BackgroundSync>,
        peers: P,
        liveness: Liveness,
    ) -> Self {
        Loop {
            node,
            sync,
            background,
            peers,
            start: Instant::now(),
            timers: BTreeMap::new(),
            clients: FxHashMap::default(),
            next_client: 1,
            last_sync: Instant::now(),
            unsynced: false,
            outputs: Vec::new(),
            releases: Vec::new(),
            liveness,
            liveness_seen: u64::MAX,
            failure: Arc::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        // Announce ourselves (gossip) and arm the background timers now,
        // not when the first request happens to arrive.
        let now = self.now_ms();
        self.node.start(now, &mut self.outputs);
        self.perform();
        loop {
            let wait = self.next_wakeup();
            let first = match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(ev)) => Some(ev),
                Err(_elapsed) => None,
                Ok(None) => {
                    let _ = self.persist(true);
                    return;
                }
            };
            self.refresh_liveness();
            let wall_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            self.node.set_wall_clock_ms(wall_ms);
            let mut shutdown = None;
            self.node.begin_batch();
            if let Some(ev) = first {
                if rx.is_empty() {
                    // Let the other connections that are ready queue their
                    // requests first, so that one journal write and one burst
                    // of replies serve them all.
                    tokio::task::yield_now().await;
                }
                shutdown = self.on_event(ev);
                let mut n = 1;
                while shutdown.is_none() && n < BATCH_MAX {
                    match rx.try_recv() {
                        Ok(ev) => shutdown = self.on_event(ev),
                        Err(_) => break,
                    }
                    n += 1;
                }
            }
            self.fire_timers();
            let now = self.now_ms();
            self.node.end_batch(now, &mut self.outputs);
            self.perform_now();
            // A handoff's ack waits for the disk in every sync mode.
            let sync_now = self.outputs.iter().any(|o| matches!(o, Output::Sync));
            let persisted = self.persist(sync_now).map_err(|e| e.to_string());
            if let Err(e) = &persisted {
                // Outputs of this batch may depend on writes that are not
                // durable: no peer hears of them (their coordinators time
                // out), and each client is told its request failed.
                fail_batch(&mut self.outputs, e);
                self.fail_store(e);
            }
            self.perform();
            for release in self.releases.drain(..) {
                release(persisted.clone());
            }
            if let Some(done) = shutdown {
                let r = self.persist(true).map_err(|e| e.to_string());
                let _ = done.send(r);
                return;
            }
        }
    }

    /// Takes the node out of service after its store failed (see
    /// [`NodeHandle::store_failure`]). A retry is not safe: after a failed
    /// fsync the kernel may have dropped the writes it held, so a later
    /// success proves nothing; a restart rereads the disk and starts a new
    /// incarnation.
    fn fail_store(&mut self, why: &str) {
        if self.failure.set(why.to_string()).is_ok() {
            error!(
                error = %why,
                "the store failed: this node is out of service until restarted. It answers \
                 requests with an error and /health with 503, and no longer answers its peers, \
                 which soon hold it down and send it no work. Check its disk, then restart it"
            );
        }
    }

    /// Whether the store failed (the node is out of service).
    fn failed(&self) -> bool {
        self.failure.get().is_some()
    }

    /// Feeds the node the transport's liveness table if it changed.
    fn refresh_liveness(&mut self) {
        if self.failed() {
            return;
        }
        let v = self.liveness.version();
        if v != self.liveness_seen {
            self.liveness_seen = v;
            let now = self.now_ms();
            for input in self.liveness.inputs() {
                self.node.handle(now, input, &mut self.outputs);
            }
        }
    }

    fn next_wakeup(&self) -> Duration {
        let now = self.now_ms();
        let mut wait = match self.sync {
            SyncMode::Periodic { interval_ms } if self.unsynced => {
                let since = self.last_sync.elapsed().as_millis() as u64;
                interval_ms.saturating_sub(since)
            }
            _ => 1_000,
        };
        if let Some(((at, _), _)) = self.timers.first_key_value() {
            wait = wait.min(at.saturating_sub(now));
        }
        Duration::from_millis(wait.max(1))
    }

    fn on_event(&mut self, ev: Event) -> Option<oneshot::Sender<Result<(), String>>> {
        if self.failed() {
            return self.on_event_failed(ev);
        }
        let now = self.now_ms();
        // Each input's own wall-clock time, in µs: the stamps that measure
        // the legs of replica requests (a batch's inputs span its time).
        self.node.set_wall_clock_us(wall_clock_us());
        match ev {
            Event::Client { request, reply } => {
                let client_id = self.next_client;
                self.next_client += 1;
                self.clients.insert(client_id, reply);
                self.node
                    .handle(now, Input::Client { client_id, request }, &mut self.outputs);
            }
            Event::Input(input) => self.node.handle(now, input, &mut self.outputs),
            Event::Inspect(f) => f(&self.node),
            Event::Mutate(f) => {
                let release = f(&mut self.node, now, &mut self.outputs);
                self.releases.push(release);
            }
            Event::Shutdown(done) => return Some(done),
        }
        None
    }

    /// An event while the store is failed: clients get an error at once,
    /// peers' messages and changes are dropped (a change's caller hears the
    /// node stopped), status pages are served.
    fn on_event_failed(&mut self, ev: Event) -> Option<oneshot::Sender<Result<(), String>>> {
        match ev {
            Event::Client { reply, .. } => {
                let why = self.failure.get().map_or("", String::as_str);
                let _ = reply.send(ClientReply::Error(ClientError::Internal(format!(
                    "this node's store failed ({why}) and it is out of service until restarted; \
                     nothing was done: send the request to another node"
                ))));
            }
            Event::Input(_) | Event::Mutate(_) => {}
            Event::Inspect(f) => f(&self.node),
            Event::Shutdown(done) => return Some(done),
        }
        None
    }

    fn fire_timers(&mut self) {
        if self.failed() {
            return;
        }
        let now = self.now_ms();
        while let Some(((at, id), _)) = self.timers.first_key_value() {
            if *at > now {
                break;
            }
            let id = *id;
            self.timers.pop_first();
            self.node.handle(now, Input::Timer(id), &mut self.outputs);
        }
    }

    /// Group commit: one flush (or fsync) covers every write of the batch.
    fn persist(&mut self, force_sync: bool) -> Result<(), StoreError> {
        if let Some(why) = self.failure.get() {
            return Err(StoreError::Engine(why.clone()));
        }
        let store = self.node.store_mut();
        let wrote = std::mem::take(&mut store.dirty);
        if wrote {
            self.unsynced = true;
        }
        let sync_due = match self.sync {
            SyncMode::Always => self.unsynced,
            SyncMode::Periodic { interval_ms } => {
                self.unsynced && self.last_sync.elapsed() >= Duration::from_millis(interval_ms)
            }
        };
        if let Some(e) = self.background.as_ref().and_then(BackgroundSync::failure) {
            return Err(StoreError::Engine(format!(
                "a periodic fsync failed ({e}), so this node can no longer make writes durable: \
                 check its disk and restart it"
            )));
        }
        if force_sync || sync_due {
            let store = self.node.store_mut();
            match &self.background {
                // Periodic: the thread makes what is flushed now durable.
                Some(bg) if !force_sync => {
                    store.flush()?;
                    bg.request();
                }
                _ => tokio::task::block_in_place(|| store.sync())?,
            }
            self.unsynced = false;
            self.last_sync = Instant::now();
        } else if wrote {
            self.node.store_mut().flush()?;
        }
        Ok(())
    }

    fn perform(&mut self) {
        let outputs = std::mem::take(&mut self.outputs);
        for out in outputs {
            self.perform_one(out);
        }
    }

    /// Performs the [`Output::Now`] outputs of the batch (before its writes
    /// are made durable: they do not depend on them).
    fn perform_now(&mut self) {
        if !self.outputs.iter().any(|o| matches!(o, Output::Now(_))) {
            return;
        }
        let (now, later): (Vec<Output>, Vec<Output>) = std::mem::take(&mut self.outputs)
            .into_iter()
            .partition(|o| matches!(o, Output::Now(_)));
        self.outputs = later;
        for out in now {
            self.perform_one(out.unnest());
        }
    }

    fn perform_one(&mut self, out: Output) {
        {
            match out {
                Output::Send { to, msg } => self.peers.send(&to, msg),
                Output::Reply { client_id, reply } => match self.clients.remove(&client_id) {
                    Some(tx) => {
                        let _ = tx.send(reply);
                    }
                    None => warn!(client_id, "reply for an unknown client request"),
                },
                Output::SetTimer { id, at_ms } => {
                    self.timers.insert((at_ms, id), ());
                }
                Output::SendAddr { addr, msg } => self.peers.send_addr(&addr, msg),
                Output::PeerAddr { peer, rpc_addr } => self.peers.learn(&peer, &rpc_addr),
                // Done by `persist` before the outputs were performed.
                Output::Sync => {}
                Output::Now(inner) => self.perform_one(*inner),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::Bytes;
    use ringkv_core::msg::ClientOp;
    use ringkv_core::{Actor, Dot, Value, VersionVector};
    use ringkv_storage_fjall::fjall_store::FjallStore;
    use std::sync::{Arc, Mutex};

    /// A [`PeerSender`] that records what it is asked to send.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(NodeId, PeerMsg)>>>);

    impl PeerSender for Recorder {
        fn send(&self, to: &NodeId, msg: PeerMsg) {
            self.0.lock().unwrap().push((to.clone(), msg));
        }
        fn send_addr(&self, _: &str, _: PeerMsg) {}
        fn learn(&self, _: &NodeId, _: &str) {}
    }

    impl Recorder {
        /// Waits up to 10 s for the ack of `req_id`; returns whether it came.
        async fn acked(&self, req_id: u64) -> bool {
            for _ in 0..1_000 {
                let sent = self.0.lock().unwrap().iter().any(|(_, m)| {
                    matches!(m, PeerMsg::ReplicaPutAck { req_id: r, ok: true, .. } if *r == req_id)
                });
                if sent {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    }

    /// Node n1 of a two-node layout (n2 never answers) with r = w = 1, its
    /// store in `dir`.
    fn node_in(dir: &std::path::Path) -> Node<Tracked> {
        let mut config = crate::Config::new("n1", dir.to_path_buf(), "127.0.0.1:1", "127.0.0.1:2");
        config
            .initial_cluster
            .push(("n2".into(), "127.0.0.1:3".into()));
        (config.r, config.w) = (1, 1);
        let me = NodeId::from("n1");
        let layout = crate::initial_layout(&config, &me).unwrap();
        let store = FjallStore::open(&dir.join("store"), config.ring_size).unwrap();
        let cfg = crate::node_config(&config, &me, &layout, 1);
        Node::new(cfg, layout, Tracked::new(store)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handoff_is_acked_only_after_an_fsync_even_in_periodic_mode() {
        let dir = tempfile::tempdir().unwrap();
        let peers = Recorder::default();
        // No periodic fsync falls due during the test.
        let sync = SyncMode::Periodic {
            interval_ms: 600_000,
        };
        let (handle, task) = spawn(
            node_in(dir.path()),
            sync,
            peers.clone(),
            Liveness::default(),
        );
        let key = BucketKey::new(b"b".to_vec(), b"k".to_vec());
        let object = |counter| {
            let dot = Dot {
                actor: Actor {
                    node: NodeId::from("n2"),
                    incarnation: 1,
                },
                counter,
            };
            let v = Value::Data(Bytes::from_static(b"v"));
            Object::empty().update(&VersionVector::new(), dot, v, 1)
        };
        let from = NodeId::from("n2");
        let syncs = || handle.inspect(|n| n.store().syncs);
        let before = syncs().await.unwrap();

        let write = PeerMsg::ReplicaPut {
            req_id: 1,
            key: key.clone(),
            object: object(1),
            stands_in_for: None,
            sent_us: 0,
        };
        let input = Input::Peer {
            from: from.clone(),
            msg: write,
        };
        assert!(handle.try_send(Event::Input(input)).is_ok());
        assert!(peers.acked(1).await, "a replica write is acked");
        assert_eq!(syncs().await.unwrap(), before, "after a flush, no fsync");

        let handoff = PeerMsg::HandoffPut {
            req_id: 2,
            key,
            object: object(2),
        };
        assert!(
            handle
                .try_send(Event::Input(Input::Peer { from, msg: handoff }))
                .is_ok()
        );
        assert!(peers.acked(2).await, "a handoff is acked");
        assert_eq!(syncs().await.unwrap(), before + 1, "after an fsync");
        drop(handle);
        task.await.unwrap();
    }

    #[test]
    fn a_failed_flush_fails_the_clients_and_keeps_only_timers() {
        let key = BucketKey::new(b"b".to_vec(), b"k".to_vec());
        let mut outputs = vec![
            Output::Send {
                to: NodeId::from("n2"),
                msg: PeerMsg::ReplicaGet {
                    req_id: 1,
                    key,
                    sent_us: 0,
                },
            },
            Output::Reply {
                client_id: 7,
                reply: ClientReply::Error(ClientError::BadRequest("was".into())),
            },
            Output::SetTimer {
                id: Timer::Request(3),
                at_ms: 10,
            },
        ];
        fail_batch(&mut outputs, "disk full");
        assert_eq!(outputs.len(), 2, "the peer message is dropped: {outputs:?}");
        match &outputs[0] {
            Output::Reply {
                client_id: 7,
                reply: ClientReply::Error(ClientError::Internal(m)),
            } => {
                assert!(m.contains("disk full"), "{m}");
                assert!(m.contains("may or may not have been applied"), "{m}");
            }
            other => panic!("expected the client's error, got {other:?}"),
        }
        assert!(matches!(
            outputs[1],
            Output::SetTimer {
                id: Timer::Request(3),
                at_ms: 10,
            }
        ));
    }

    async fn ask(handle: &NodeHandle, request: ClientRequest) -> ClientReply {
        let (tx, rx) = oneshot::channel();
        let ev = Event::Client { request, reply: tx };
        assert!(handle.try_send(ev).is_ok());
        rx.await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_store_takes_the_node_out_of_service_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let peers = Recorder::default();
        let sync = SyncMode::Periodic { interval_ms: 100 };
        let (handle, task) = spawn(
            node_in(dir.path()),
            sync,
            peers.clone(),
            Liveness::default(),
        );
        let key = BucketKey::new(b"b".to_vec(), b"k".to_vec());
        let put = |v: &'static [u8]| ClientRequest {
            key: key.clone(),
            op: ClientOp::Put {
                value: Value::Data(Bytes::from_static(v)),
                context: None,
                w: None,
                pw: None,
            },
            timeout_ms: None,
        };
        let reply = ask(&handle, put(b"1")).await;
        assert!(matches!(reply, ClientReply::Written { .. }), "{reply:?}");
        assert_eq!(handle.store_failure(), None);

        // The disk fills up: the write's batch fails, and the node says why.
        handle
            .mutate(|n, _, _| n.store_mut().fail = true)
            .await
            .unwrap();
        let reply = ask(&handle, put(b"2")).await;
        assert!(
            matches!(&reply, ClientReply::Error(ClientError::Internal(m)) if m.contains("No space left")),
            "{reply:?}"
        );
        let why = handle.store_failure().expect("the failure is kept");
        assert!(why.contains("No space left"), "{why}");

        // Out of service: a client hears so at once, a peer hears nothing,
        // status pages still answer.
        let get = ClientRequest {
            key: key.clone(),
            op: ClientOp::Get { r: None, pr: None },
            timeout_ms: None,
        };
        let reply = ask(&handle, get).await;
        assert!(
            matches!(&reply, ClientReply::Error(ClientError::Internal(m)) if m.contains("out of service")),
            "{reply:?}"
        );
        let sent = peers.0.lock().unwrap().len();
        let read = PeerMsg::ReplicaGet {
            req_id: 9,
            key,
            sent_us: 0,
        };
        let from = NodeId::from("n2");
        assert!(
            handle
                .try_send(Event::Input(Input::Peer { from, msg: read }))
                .is_ok()
        );
        assert_eq!(
            handle.inspect(|n| n.id().to_string()).await,
            Ok("n1".into())
        );
        assert_eq!(peers.0.lock().unwrap().len(), sent, "no answer to a peer");
        // A change is not made: its caller hears the node stopped.
        let changed = handle.mutate(|_, _, _| ()).await;
        assert_eq!(changed, Err(MutateError::Queue(QueueError::Stopped)));
        drop(handle);
        task.await.unwrap();
    }
}
