//! The key commands (`GET`, `SET`, `DEL`/`UNLINK`, `EXISTS`, `MGET`,
//! `MSET`, and ringkv's own `GETCTX`/`SETCTX`) over the node: each becomes the [`ClientRequest`]s the HTTP API
//! makes, through [`crate::runtime::NodeHandle::ask`], in the connection's
//! bucket.
//!
//! What Redis users should know (README.md, "Redis protocol"):
//! - A key with siblings (concurrent writes in a `siblings` bucket) has no
//!   one value: `GET` answers `-SIBLINGS`, and `MGET` puts that error in
//!   the key's place.
//! - Writes carry no context: a `SET` is concurrent with what is stored, so
//!   in a `siblings` bucket it adds a sibling rather than replacing. Use
//!   `lww` buckets (or strong ones) from Redis clients, or `GETCTX` and
//!   `SETCTX`, which hand out and take the context as HTTP does.
//! - `SET NX`/`XX` are compare-and-set, only in strong buckets.
//! - Keys do not expire: `EX`, `PX`, `EXAT`, `PXAT` are refused.
//! - A command of several keys is one request per key, not atomic.

use bytes::Bytes;
use futures::StreamExt as _;
use ringkv_core::bucket::Consistency;
use ringkv_core::context;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest};
use ringkv_core::strong::{self, Condition};
use ringkv_core::{Object, Value};

use super::RespState;
use super::conn::{Session, wrong_arity};
use super::frame::Reply;
use crate::auth::Need;
use crate::runtime::{AskError, QueueError};

/// Most requests of one multi-key command in flight at once.
const KEYS_IN_FLIGHT: usize = 64;
/// Largest sum of the values of one `MGET`'s answer, in bytes.
const REPLY_BYTES_MAX: usize = 64 << 20;
/// Tries of a compare-and-set loop (`SET XX`, `DEL` in a strong bucket)
/// whose read was overtaken by another write.
const CAS_TRIES: usize = 3;

/// Whether `args` is a command that may run at the same time as its
/// neighbours in a pipeline: a plain `GET key` (`Some((false, key))`) or a
/// plain `SET key value` without options (`Some((true, key))`).
pub(super) fn plain_get_or_set(args: &[Bytes]) -> Option<(bool, &Bytes)> {
    match args {
        [name, key] if name.eq_ignore_ascii_case(b"GET") => Some((false, key)),
        [name, key, _] if name.eq_ignore_ascii_case(b"SET") => Some((true, key)),
        _ => None,
    }
}

/// Runs key command `args[0]` (any case) with `args`.
pub(super) async fn run_any_case(st: &RespState, s: &Session, args: &[Bytes]) -> Reply {
    let name = args[0].to_ascii_uppercase();
    run(st, s, &name, args).await
}

/// Runs key command `name` (upper case) with `args` (its name first).
pub(super) async fn run(st: &RespState, s: &Session, name: &[u8], args: &[Bytes]) -> Reply {
    let need_write = matches!(name, b"SET" | b"SETCTX" | b"DEL" | b"UNLINK" | b"MSET");
    let bucket = s.bucket.clone();
    let need = if need_write {
        Need::Write(bucket.to_vec())
    } else {
        Need::Read(bucket.to_vec())
    };
    if let Err(refusal) = s.permit(st, &need) {
        return refusal;
    }
    let keys = &args[1..];
    let result = match name {
        b"GET" if keys.len() == 1 => get(st, &bucket, &keys[0]).await,
        b"SET" if keys.len() >= 2 => set(st, &bucket, keys).await,
        b"DEL" | b"UNLINK" if !keys.is_empty() => delete(st, &bucket, keys).await,
        b"EXISTS" if !keys.is_empty() => exists(st, &bucket, keys).await,
        b"MGET" if !keys.is_empty() => mget(st, &bucket, keys).await,
        b"MSET" if !keys.is_empty() && keys.len().is_multiple_of(2) => {
            mset(st, &bucket, keys).await
        }
        b"GETCTX" if keys.len() == 1 => get_with_context(st, &bucket, &keys[0]).await,
        b"SETCTX" if keys.len() == 3 => set_with_context(st, &bucket, keys).await,
        _ => Err(wrong_arity(name)),
    };
    result.unwrap_or_else(|e| e)
}

/// Sends `op` on `key` to the node; the answer of a strong bucket
/// unwrapped, errors as replies.
async fn ask(
    st: &RespState,
    bucket: &Bytes,
    key: &Bytes,
    op: ClientOp,
) -> Result<ClientReply, Reply> {
    let request = ClientRequest {
        key: BucketKey::new(bucket.clone(), key.clone()),
        op,
        timeout_ms: None,
    };
    match st.node.ask(request, st.timeout_ms).await {
        Ok(ClientReply::Strong { reply, .. }) => Ok(*reply),
        Ok(reply) => Ok(reply),
        Err(AskError::Queue(QueueError::Full)) => Err(Reply::Error(
            "OVERLOADED this node's request queue is full; retry later or use another node".into(),
        )),
        Err(AskError::Queue(QueueError::Stopped)) => Err(Reply::Error(
            "UNAVAILABLE the node is shutting down; use another node".into(),
        )),
        Err(AskError::NoAnswer) => Err(Reply::Error(
            "UNKNOWN the node gave no answer in time; the request may or may not have been \
             applied; retry"
                .into(),
        )),
    }
}

/// The RESP error for a failed request: its code says the kind.
fn node_error(e: ClientError) -> Reply {
    Reply::Error(match e {
        ClientError::Unavailable { required, acks } => format!(
            "UNAVAILABLE quorum not reached: {acks} of the {required} required replicas answered \
             in time; a write may still be applied on the replicas that acked (not confirmed, not \
             lost); retry"
        ),
        ClientError::PrimariesUnavailable { required, acks } => format!(
            "UNAVAILABLE strict quorum not reached: {acks} of the {required} primary replicas \
             required by the bucket's pr/pw answered; a write may still be applied where it was \
             acked; retry later"
        ),
        ClientError::BadRequest(m) | ClientError::Conflict(m) => format!("ERR {m}"),
        ClientError::TooLarge(m) => format!("ERR {m}"),
        ClientError::Overloaded(m) => format!("OVERLOADED {m}"),
        ClientError::Internal(m) => format!("ERR internal: {m}"),
        ClientError::PreconditionFailed { .. } => {
            "ERR the key changed meanwhile; nothing was written; retry".into()
        }
        ClientError::NoQuorum { reason } => {
            format!("NOQUORUM {reason}; retry when a majority of the group's voters is up")
        }
        ClientError::PartitionsUnavailable { required, short } => format!(
            "UNAVAILABLE listing quorum not reached: {} partitions had fewer than {required} \
             replies; retry",
            short.len()
        ),
        ClientError::OutcomeUnknown { reason } => format!(
            "UNKNOWN {reason}; the write may or may not have been applied: read the key to tell"
        ),
    })
}

/// The reply to a request that answered something it should not have.
fn unexpected() -> Reply {
    Reply::err("internal: the node answered a different kind of request; please report this")
}

/// Reads `key` at the bucket's R.
async fn read(st: &RespState, bucket: &Bytes, key: &Bytes) -> Result<Object, Reply> {
    match ask(st, bucket, key, ClientOp::Get { r: None, pr: None }).await? {
        ClientReply::Read { object, .. } => Ok(object),
        ClientReply::Error(e) => Err(node_error(e)),
        _ => Err(unexpected()),
    }
}

/// Writes `value` on `key` at the bucket's W, with `context` (none: a
/// write concurrent with what is stored).
async fn write(
    st: &RespState,
    bucket: &Bytes,
    key: &Bytes,
    value: Value,
    context: Option<ringkv_core::VersionVector>,
) -> Result<(), Reply> {
    let op = ClientOp::Put {
        value,
        context,
        w: None,
        pw: None,
    };
    match ask(st, bucket, key, op).await? {
        ClientReply::Written { .. } => Ok(()),
        ClientReply::Error(e) => Err(node_error(e)),
        _ => Err(unexpected()),
    }
}

/// Compare-and-set in a strong bucket: `Ok(true)` written, `Ok(false)` the
/// condition did not hold.
async fn write_if(
    st: &RespState,
    bucket: &Bytes,
    key: &Bytes,
    value: Value,
    condition: Condition,
) -> Result<bool, Reply> {
    match ask(st, bucket, key, ClientOp::PutIf { value, condition }).await? {
        ClientReply::Written { .. } => Ok(true),
        ClientReply::Error(ClientError::PreconditionFailed { .. }) => Ok(false),
        ClientReply::Error(e) => Err(node_error(e)),
        _ => Err(unexpected()),
    }
}

/// A read's answer as one value: `Null` when absent or deleted, an error
/// when it has siblings.
fn value_of(object: &Object, key: &[u8]) -> Reply {
    if object.is_deleted() {
        return Reply::Null;
    }
    if object.siblings.len() > 1 {
        return Reply::Error(format!(
            "SIBLINGS {} concurrent values; read them over HTTP (GET /v1/kv/{{bucket}}/{}) and \
             resolve by writing with its context, or GETCTX then SETCTX, or DEL the key; a SET \
             carries no context and adds a sibling (use an lww bucket with Redis clients)",
            object.siblings.len(),
            percent_encoding::percent_encode(key, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    match object.siblings.first().map(|s| &s.value) {
        Some(Value::Data(b)) => Reply::Bulk(b.clone()),
        _ => Reply::Null,
    }
}

/// `GET key`.
async fn get(st: &RespState, bucket: &Bytes, key: &Bytes) -> Result<Reply, Reply> {
    let object = read(st, bucket, key).await?;
    Ok(value_of(&object, key))
}

/// `GETCTX key` (not Redis): the key's siblings and its context, for
/// clients that resolve siblings: `[context, [value or nil (deleted), ...]]`,
/// the context nil when the key was never written. Hand the context to
/// `SETCTX`.
async fn get_with_context(st: &RespState, bucket: &Bytes, key: &Bytes) -> Result<Reply, Reply> {
    let object = read(st, bucket, key).await?;
    let key_hash = BucketKey::new(bucket.clone(), key.clone()).hash();
    let context = if object.vv.is_empty() {
        Reply::Null
    } else {
        Reply::text(context::encode(&object.vv, key_hash, &st.context_keys))
    };
    let values = object
        .siblings
        .iter()
        .map(|s| match &s.value {
            Value::Data(b) => Reply::Bulk(b.clone()),
            Value::Tombstone => Reply::Null,
        })
        .collect();
    Ok(Reply::Array(vec![context, Reply::Array(values)]))
}

/// `SETCTX key value context` (not Redis): writes `value` with the context
/// a `GETCTX` of the key returned (or an HTTP read's `X-Ringkv-Context`), so
/// it supersedes every value that read returned; an empty context writes
/// without one, as `SET` does.
async fn set_with_context(st: &RespState, bucket: &Bytes, args: &[Bytes]) -> Result<Reply, Reply> {
    let (key, value, token) = (&args[0], &args[1], &args[2]);
    let context = if token.is_empty() {
        None
    } else {
        let token = std::str::from_utf8(token)
            .map_err(|_| Reply::err("the context is not text; pass the context GETCTX returned"))?;
        let key_hash = BucketKey::new(bucket.clone(), key.clone()).hash();
        Some(
            context::decode(token, key_hash, &st.context_keys)
                .map_err(|e| Reply::err(format!("SETCTX: {e}")))?,
        )
    };
    write(st, bucket, key, Value::Data(value.clone()), context).await?;
    Ok(Reply::Simple("OK"))
}

/// The condition of a `SET`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetIf {
    Always,
    Absent,
    Present,
}

/// `SET key value [NX|XX] [KEEPTTL]`; `EX`/`PX`/`EXAT`/`PXAT` and `GET`
/// are refused with the reason.
async fn set(st: &RespState, bucket: &Bytes, args: &[Bytes]) -> Result<Reply, Reply> {
    let (key, value) = (&args[0], &args[1]);
    let mut cond = SetIf::Always;
    for option in &args[2..] {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" if cond != SetIf::Present => cond = SetIf::Absent,
            b"XX" if cond != SetIf::Absent => cond = SetIf::Present,
            // No key expires, so every key keeps its (absent) TTL.
            b"KEEPTTL" => {}
            b"EX" | b"PX" | b"EXAT" | b"PXAT" => {
                return Err(Reply::err(
                    "TTLs (EX, PX, EXAT, PXAT) are not supported: ringkv keys do not expire yet; \
                     SET without them",
                ));
            }
            b"GET" => {
                return Err(Reply::err(
                    "SET ... GET is not supported; GET the key, then SET it",
                ));
            }
            _ => return Err(Reply::err("syntax error")),
        }
    }
    let value = Value::Data(value.clone());
    if cond == SetIf::Always {
        write(st, bucket, key, value, None).await?;
        return Ok(Reply::Simple("OK"));
    }
    if consistency(st, bucket).await? != Consistency::Strong {
        return Err(Reply::err(format!(
            "NX and XX need a strong bucket (compare-and-set); bucket {:?} is eventual, where no \
             node can tell for sure that a key is absent. Create a strong bucket (PUT \
             /v1/buckets/NAME {{\"consistency\": \"strong\"}} over HTTP) and BUCKET NAME, or SET \
             without NX/XX",
            String::from_utf8_lossy(bucket)
        )));
    }
    let ok = |written: bool| {
        if written {
            Reply::Simple("OK")
        } else {
            Reply::Null
        }
    };
    if cond == SetIf::Absent {
        return Ok(ok(
            write_if(st, bucket, key, value, Condition::IfAbsent).await?
        ));
    }
    // XX: only at the version a read found present.
    for _ in 0..CAS_TRIES {
        let object = read(st, bucket, key).await?;
        if object.is_deleted() {
            return Ok(Reply::Null);
        }
        let at = Condition::IfVersion(strong::version_of(&object.vv));
        if write_if(st, bucket, key, value.clone(), at).await? {
            return Ok(Reply::Simple("OK"));
        }
    }
    Err(overtaken("SET XX"))
}

/// The error of a compare-and-set loop that lost every race.
fn overtaken(what: &str) -> Reply {
    Reply::err(format!(
        "{what}: the key changed between read and write {CAS_TRIES} times; nothing was written; \
         retry"
    ))
}

/// The consistency of `bucket`, from the node's bucket properties.
async fn consistency(st: &RespState, bucket: &Bytes) -> Result<Consistency, Reply> {
    let b = bucket.clone();
    st.node
        .inspect(move |n| n.bucket_props(&b).consistency)
        .await
        .map_err(|_| Reply::Error("UNAVAILABLE the node is shutting down; use another node".into()))
}

/// `DEL key...`: the number of keys that held a value. Each key is read
/// and, when it holds a value, deleted with the context of that read (what
/// `DELETE` over HTTP does); in a strong bucket, by compare-and-set at the
/// version read, so the count is exact.
async fn delete(st: &RespState, bucket: &Bytes, keys: &[Bytes]) -> Result<Reply, Reply> {
    let strong = consistency(st, bucket).await? == Consistency::Strong;
    let each: Vec<_> = keys
        .iter()
        .map(|key| delete_one(st, bucket, key, strong))
        .collect();
    let results: Vec<Result<bool, Reply>> = futures::stream::iter(each)
        .buffered(KEYS_IN_FLIGHT)
        .collect()
        .await;
    let mut deleted = 0;
    for r in results {
        deleted += i64::from(r?);
    }
    Ok(Reply::Int(deleted))
}

/// Deletes one key; whether it held a value.
async fn delete_one(
    st: &RespState,
    bucket: &Bytes,
    key: &Bytes,
    strong: bool,
) -> Result<bool, Reply> {
    for _ in 0..CAS_TRIES {
        let object = read(st, bucket, key).await?;
        if object.is_deleted() {
            return Ok(false);
        }
        if !strong {
            write(st, bucket, key, Value::Tombstone, Some(object.vv)).await?;
            return Ok(true);
        }
        let at = Condition::IfVersion(strong::version_of(&object.vv));
        if write_if(st, bucket, key, Value::Tombstone, at).await? {
            return Ok(true);
        }
    }
    Err(overtaken("DEL"))
}

/// Reads every key, at most [`KEYS_IN_FLIGHT`] at once, in order.
async fn read_all(st: &RespState, bucket: &Bytes, keys: &[Bytes]) -> Vec<Result<Object, Reply>> {
    // The futures are made first: a stream adapter holding a closure over
    // borrowed arguments makes the connection's future not `Send`-general.
    let each: Vec<_> = keys.iter().map(|key| read(st, bucket, key)).collect();
    futures::stream::iter(each)
        .buffered(KEYS_IN_FLIGHT)
        .collect()
        .await
}

/// `EXISTS key...`: how many of the keys hold a value (a key named twice
/// counts twice, as in Redis).
async fn exists(st: &RespState, bucket: &Bytes, keys: &[Bytes]) -> Result<Reply, Reply> {
    let mut n = 0;
    for r in read_all(st, bucket, keys).await {
        n += i64::from(!r?.is_deleted());
    }
    Ok(Reply::Int(n))
}

/// `MGET key...`: each key's value, `Null` or, in its place, its error
/// (siblings, a failed quorum). Refused once the values passed
/// [`REPLY_BYTES_MAX`], so that one command cannot hold the node's memory.
async fn mget(st: &RespState, bucket: &Bytes, keys: &[Bytes]) -> Result<Reply, Reply> {
    let each: Vec<_> = keys.iter().map(|key| read(st, bucket, key)).collect();
    let mut reads = futures::stream::iter(each).buffered(KEYS_IN_FLIGHT);
    let mut replies = Vec::with_capacity(keys.len());
    let mut bytes = 0usize;
    while let Some(r) = reads.next().await {
        let reply = match r {
            Ok(object) => value_of(&object, &keys[replies.len()]),
            Err(e) => e,
        };
        if let Reply::Bulk(b) = &reply {
            bytes += b.len();
        }
        if bytes > REPLY_BYTES_MAX {
            return Err(Reply::err(format!(
                "MGET: the values of the first {} keys are over {} MiB; ask for fewer keys at once",
                replies.len() + 1,
                REPLY_BYTES_MAX >> 20
            )));
        }
        replies.push(reply);
    }
    Ok(Reply::Array(replies))
}

/// `MSET key value...`: one write per key; not atomic, so a failure says
/// how many keys were written.
async fn mset(st: &RespState, bucket: &Bytes, pairs: &[Bytes]) -> Result<Reply, Reply> {
    let each: Vec<_> = pairs
        .chunks(2)
        .map(|kv| write(st, bucket, &kv[0], Value::Data(kv[1].clone()), None))
        .collect();
    let results: Vec<Result<(), Reply>> = futures::stream::iter(each)
        .buffered(KEYS_IN_FLIGHT)
        .collect()
        .await;
    let total = results.len();
    let failed: Vec<Reply> = results.into_iter().filter_map(Result::err).collect();
    match failed.first() {
        None => Ok(Reply::Simple("OK")),
        Some(Reply::Error(first)) => Err(Reply::err(format!(
            "MSET is not atomic in ringkv: {} of {total} keys were written (confirmed); the first \
             failure: {first}",
            total - failed.len()
        ))),
        Some(_) => Err(unexpected()),
    }
}
