//! The Redis protocol front end (`ringkv server --resp ADDR`): RESP2, and
//! RESP3 after `HELLO 3`, for Redis clients and tools (README.md, "Redis
//! protocol").
//!
//! Every key command becomes the same [`ClientRequest`] the HTTP API makes
//! and goes through [`NodeHandle::ask`], so quorums, bucket properties,
//! strong buckets and limits apply exactly as they do over HTTP; bearer
//! tokens (`--token-file`) are checked per command with the permissions of
//! [`crate::auth`] after `AUTH` (or `HELLO ... AUTH`).
//!
//! # Layout
//! - this module: the listener, its connection limit, and the shared state.
//! - `frame`: the pure parser and encoder (RESP2/RESP3), with its limits.
//! - `conn`: one connection: reads, pipelining, the per-connection state
//!   (protocol, bucket, token, name) and the commands that change it.
//! - `keys`: the key commands (GET, SET, DEL, EXISTS, MGET, MSET, GETCTX,
//!   SETCTX) over the node.
//!
//! # Limits
//! An argument is at most the node's value limit, a command at most that
//! plus 1 MiB and 65,536 arguments, an inline command at most 64 KiB; a
//! command must arrive whole within [`COMMAND_TIMEOUT`] once it started; at
//! most [`CONNECTIONS_MAX`] connections are open at once (more are told so
//! and closed). A frame that breaks these, or is not RESP, gets
//! `-ERR Protocol error: ...` and the connection is closed.
//!
//! [`ClientRequest`]: ringkv_core::msg::ClientRequest

use std::sync::Arc;
use std::time::Duration;

use ringkv_core::{ContextKeys, NodeId};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, warn};

use crate::auth::Tokens;
use crate::metrics::RespMetrics;
use crate::runtime::NodeHandle;

mod conn;
mod frame;
mod keys;
#[cfg(test)]
mod tests;

/// Most RESP connections open at once.
pub const CONNECTIONS_MAX: usize = 4096;
/// Longest time a command may take to arrive once its first byte did.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What every RESP connection shares.
#[derive(Clone)]
pub struct RespState {
    /// The node loop: every key command goes through
    /// [`NodeHandle::ask`], as the HTTP API's do.
    pub node: NodeHandle,
    /// This node's id (`INFO`).
    pub me: NodeId,
    /// Default coordinator timeout, in ms.
    pub timeout_ms: u64,
    /// Largest value, in bytes: the bound of one argument.
    pub value_bytes_max: usize,
    /// Longest bucket name, in bytes (`BUCKET name`).
    pub bucket_bytes_max: usize,
    /// The bearer tokens clients must present with `AUTH`; `None`: open.
    pub tokens: Option<Arc<Tokens>>,
    /// Commands and connections, for `/metrics`.
    pub metrics: RespMetrics,
    /// The keys that sign and verify context tokens (`GETCTX`, `SETCTX`).
    pub context_keys: ContextKeys,
}

/// Serves the Redis protocol on `listener` until the task is dropped or
/// aborted, which ends every connection it serves too.
pub async fn serve(listener: TcpListener, state: RespState) {
    let state = Arc::new(state);
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut conns = JoinSet::new();
    let mut next_id: u64 = 0;
    loop {
        // Reap finished connections so the set stays as small as the open ones.
        while conns.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, go on.
                warn!(error = %e, "RESP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "RESP connection refused: too many open");
            state.metrics.refused();
            conns.spawn(conn::refuse(stream));
            continue;
        };
        let state = state.clone();
        let span = tracing::debug_span!("resp", %peer, id = next_id);
        conns.spawn(
            async move {
                state.metrics.connections_add(1);
                conn::serve(stream, state.clone(), next_id).await;
                state.metrics.connections_add(-1);
                drop(permit);
            }
            .instrument(span),
        );
    }
}
