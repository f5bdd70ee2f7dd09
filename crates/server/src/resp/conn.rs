//! One RESP connection: reads commands, runs them in order, answers in
//! order (pipelining: every whole command of a read is run before the
//! answers are written, in one write), and the commands that concern the
//! connection itself (protocol, bucket, token, name, introspection).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::frame::{self, FrameLimits, Proto, Reply};
use super::{COMMAND_TIMEOUT, RespState, keys};
use crate::auth::{Denied, Need};

/// Bytes asked of the socket per read, at least.
const READ_CHUNK: usize = 16 * 1024;
/// Pending answers past this size are written before running more commands.
const OUT_FLUSH: usize = 64 * 1024;
/// Most commands parsed from the input before they are run.
const BATCH_MAX: usize = 1024;
/// Most pipelined commands run at the same time (see [`Session::run_batch`]).
const RUN_MAX: usize = 64;
/// The bucket a connection starts in (and `SELECT 0`).
pub(super) const DEFAULT_BUCKET: &str = "default";

/// What a command's answer does to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    /// Keep reading commands.
    Continue,
    /// Write the answers so far and close (`QUIT`).
    Close,
}

/// The state of one connection.
pub(super) struct Session {
    /// The protocol its answers are in.
    pub(super) proto: Proto,
    /// The bucket its key commands address (`SELECT`, `BUCKET`).
    pub(super) bucket: Bytes,
    /// `Bearer <secret>` once `AUTH` named a known token.
    auth: Option<Vec<u8>>,
    /// `CLIENT SETNAME`.
    name: Option<Bytes>,
    /// Its number on this node (`CLIENT ID`, `HELLO`).
    id: u64,
}

/// Tells a client past [`super::CONNECTIONS_MAX`] so, and closes.
pub(super) async fn refuse(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
}

/// Serves one connection until the client closes it, sends `QUIT` or a
/// frame that is not RESP within the limits.
pub(super) async fn serve(mut stream: TcpStream, st: Arc<RespState>, id: u64) {
    let limits = FrameLimits::for_values(st.value_bytes_max);
    let (mut rd, mut wr) = stream.split();
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut out = BytesMut::new();
    let mut session = Session::new(id);
    // When the command at the front of `input` began to arrive.
    let mut partial_since: Option<Instant> = None;
    loop {
        // Every whole command read so far (up to BATCH_MAX), then a
        // protocol error if one follows them.
        let mut batch = Vec::new();
        let mut bad = None;
        while batch.len() < BATCH_MAX {
            match frame::parse_command(&mut input, &limits) {
                Ok(Some(args)) if args.is_empty() => {}
                Ok(Some(args)) => batch.push(args),
                Ok(None) => break,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        let ran = !batch.is_empty();
        let full = batch.len() == BATCH_MAX;
        let flow = session.run_batch(&st, batch, &mut out, &mut wr).await;
        if let Some(e) = &bad {
            Reply::err(e.message()).encode(session.proto, &mut out);
        }
        if (!out.is_empty() && wr.write_all(&out).await.is_err())
            || flow == Flow::Close
            || bad.is_some()
        {
            return;
        }
        out.clear();
        if full {
            // More whole commands may wait: run them before reading.
            continue;
        }
        partial_since = match (input.is_empty(), ran, partial_since) {
            (true, _, _) => None,
            (false, false, Some(t)) => Some(t),
            (false, _, _) => Some(Instant::now()),
        };
        input.reserve(READ_CHUNK);
        let read = match partial_since {
            None => rd.read_buf(&mut input).await,
            Some(t) => {
                let left = COMMAND_TIMEOUT.saturating_sub(t.elapsed());
                match tokio::time::timeout(left, rd.read_buf(&mut input)).await {
                    Ok(r) => r,
                    Err(_) => {
                        let e = format!(
                            "ERR Protocol error: a command did not arrive whole within {} s",
                            COMMAND_TIMEOUT.as_secs()
                        );
                        Reply::Error(e).encode(session.proto, &mut out);
                        let _ = wr.write_all(&out).await;
                        return;
                    }
                }
            }
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// How many commands at the front of `cmds` (at most [`RUN_MAX`]) are
/// plain `GET`s and `SET`s that may run at once: no key of the run is
/// written by one command and named by another.
pub(super) fn independent_run(cmds: &[Vec<Bytes>]) -> usize {
    let mut read: HashSet<&Bytes> = HashSet::new();
    let mut written: HashSet<&Bytes> = HashSet::new();
    for (n, args) in cmds.iter().take(RUN_MAX).enumerate() {
        let Some((write, key)) = keys::plain_get_or_set(args) else {
            return n;
        };
        if written.contains(key) || (write && read.contains(key)) {
            return n;
        }
        if write {
            written.insert(key);
        } else {
            read.insert(key);
        }
    }
    cmds.len().min(RUN_MAX)
}

/// `ERR wrong number of arguments for 'name' command`, Redis's words.
pub(super) fn wrong_arity(name: &[u8]) -> Reply {
    Reply::err(format!(
        "wrong number of arguments for '{}' command",
        String::from_utf8_lossy(name).to_ascii_lowercase()
    ))
}

impl Session {
    fn new(id: u64) -> Self {
        Session {
            proto: Proto::Resp2,
            bucket: Bytes::from_static(DEFAULT_BUCKET.as_bytes()),
            auth: None,
            name: None,
            id,
        }
    }

    /// Whether the connection's token allows `need`; `Ok` on a node
    /// without a token file.
    pub(super) fn permit(&self, st: &RespState, need: &Need) -> Result<(), Reply> {
        let Some(tokens) = &st.tokens else {
            return Ok(());
        };
        match tokens.check(self.auth.as_deref(), need) {
            Ok(_) => Ok(()),
            Err(Denied::Unauthenticated(_)) => Err(noauth()),
            Err(Denied::Forbidden(m)) => Err(Reply::Error(format!("NOPERM {m}"))),
        }
    }

    /// Runs the commands of `batch` and appends their answers to `out` in
    /// order, writing them to `wr` whenever they pass [`OUT_FLUSH`].
    ///
    /// Pipelined commands are answered in order, and each sees the effects
    /// of those before it. Consecutive plain `GET`s and `SET`s (no options)
    /// of keys that no other command of the run writes are independent, so
    /// up to [`RUN_MAX`] of them go to the node at once: a pipeline of reads
    /// then costs one pass through the node's loop, not one per command.
    async fn run_batch(
        &mut self,
        st: &RespState,
        batch: Vec<Vec<Bytes>>,
        out: &mut BytesMut,
        wr: &mut (impl AsyncWrite + Unpin),
    ) -> Flow {
        let mut i = 0;
        while i < batch.len() {
            let end = i + independent_run(&batch[i..]);
            if end - i > 1 {
                let this = &*self;
                let each: Vec<_> = batch[i..end]
                    .iter()
                    .map(|args| keys::run_any_case(st, this, args))
                    .collect();
                let replies: Vec<Reply> = futures::stream::iter(each)
                    .buffered(RUN_MAX)
                    .collect()
                    .await;
                for (r, args) in replies.iter().zip(&batch[i..end]) {
                    observe(st, args, r);
                    r.encode(self.proto, out);
                }
                i = end;
            } else {
                let (reply, flow) = self.run(st, &batch[i]).await;
                observe(st, &batch[i], &reply);
                reply.encode(self.proto, out);
                if flow == Flow::Close {
                    return Flow::Close;
                }
                i += 1;
            }
            if out.len() >= OUT_FLUSH {
                if wr.write_all(out).await.is_err() {
                    return Flow::Close;
                }
                out.clear();
            }
        }
        Flow::Continue
    }

    /// Runs one command (`args[0]` its name, any case) and says what to
    /// answer.
    async fn run(&mut self, st: &RespState, args: &[Bytes]) -> (Reply, Flow) {
        let name = args[0].to_ascii_uppercase();
        if !matches!(&name[..], b"AUTH" | b"HELLO" | b"QUIT")
            && let Err(refusal) = self.permit(st, &Need::Any)
        {
            return (refusal, Flow::Continue);
        }
        let reply = match &name[..] {
            b"QUIT" => return (Reply::Simple("OK"), Flow::Close),
            b"GET" | b"SET" | b"DEL" | b"UNLINK" | b"EXISTS" | b"MGET" | b"MSET" | b"GETCTX"
            | b"SETCTX" => keys::run(st, self, &name, args).await,
            b"PING" => match args.len() {
                1 => Reply::Simple("PONG"),
                2 => Reply::Bulk(args[1].clone()),
                _ => wrong_arity(&name),
            },
            b"ECHO" if args.len() == 2 => Reply::Bulk(args[1].clone()),
            b"AUTH" => match &args[1..] {
                [secret] => self.auth(st, None, secret),
                [user, secret] => self.auth(st, Some(user), secret),
                _ => wrong_arity(&name),
            },
            b"HELLO" => self.hello(st, &args[1..]),
            b"SELECT" if args.len() == 2 => self.select(&args[1]),
            b"BUCKET" => self.bucket_command(st, &args[1..]),
            b"CLIENT" if args.len() >= 2 => self.client(&args[1..]),
            b"COMMAND" => command(&args[1..]),
            b"CONFIG" if args.len() >= 2 => config(&args[1..]),
            b"INFO" => self.info(st),
            b"ECHO" | b"SELECT" | b"CLIENT" | b"CONFIG" => wrong_arity(&name),
            _ => unknown(args),
        };
        (reply, Flow::Continue)
    }

    /// `AUTH [user] secret`: the secret of a token of the token file; the
    /// user, when given, is that token's name (or `default`).
    fn auth(&mut self, st: &RespState, user: Option<&Bytes>, secret: &Bytes) -> Reply {
        let Some(tokens) = &st.tokens else {
            return Reply::err(
                "AUTH was given, but this node has no token file: every client may use it \
                 (start the node with --token-file to require tokens)",
            );
        };
        let mut header = b"Bearer ".to_vec();
        header.extend_from_slice(secret);
        let wrong =
            || Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into());
        match tokens.check(Some(&header), &Need::Any) {
            Ok(name) => {
                let named = name.unwrap_or_default().as_bytes();
                if user.is_some_and(|u| u.as_ref() != named && u.as_ref() != b"default") {
                    return wrong();
                }
                self.auth = Some(header);
                Reply::Simple("OK")
            }
            Err(Denied::Unauthenticated(_)) => wrong(),
            Err(Denied::Forbidden(m)) => Reply::Error(format!("NOPERM {m}")),
        }
    }

    /// `HELLO [2|3 [AUTH user secret] [SETNAME name]]`.
    fn hello(&mut self, st: &RespState, args: &[Bytes]) -> Reply {
        let proto = match args.first().map(|a| &a[..]) {
            None => self.proto,
            Some(b"2") => Proto::Resp2,
            Some(b"3") => Proto::Resp3,
            Some(_) => {
                return Reply::Error(
                    "NOPROTO this protocol version is not supported; use 2 or 3".into(),
                );
            }
        };
        let mut rest = args.get(1..).unwrap_or_default();
        let mut name = None;
        while let Some(option) = rest.first() {
            match (option.to_ascii_uppercase().as_slice(), &rest[1..]) {
                (b"AUTH", [user, secret, ..]) => {
                    let r = self.auth(st, Some(user), secret);
                    if r != Reply::Simple("OK") {
                        return r;
                    }
                    rest = &rest[3..];
                }
                (b"SETNAME", [n, ..]) => {
                    name = Some(n.clone());
                    rest = &rest[2..];
                }
                _ => return Reply::err("syntax error in HELLO option"),
            }
        }
        if let Err(refusal) = self.permit(st, &Need::Any) {
            return refusal;
        }
        self.proto = proto;
        if name.is_some() {
            self.name = name;
        }
        let proto_number = match proto {
            Proto::Resp2 => 2,
            Proto::Resp3 => 3,
        };
        Reply::Map(vec![
            (Reply::text("server"), Reply::text("ringkv")),
            (Reply::text("version"), Reply::text(REDIS_VERSION)),
            (
                Reply::text("ringkv_version"),
                Reply::text(env!("CARGO_PKG_VERSION")),
            ),
            (Reply::text("proto"), Reply::Int(proto_number)),
            (Reply::text("id"), Reply::Int(self.id as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
        ])
    }

    /// `SELECT n`: bucket `default` for 0, `db<n>` for any other n.
    fn select(&mut self, index: &[u8]) -> Reply {
        let Some(n) = std::str::from_utf8(index)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            return Reply::err(
                "invalid DB index: SELECT takes 0 (bucket default) or n (bucket dbn)",
            );
        };
        self.bucket = match n {
            0 => Bytes::from_static(DEFAULT_BUCKET.as_bytes()),
            n => Bytes::from(format!("db{n}")),
        };
        Reply::Simple("OK")
    }

    /// `BUCKET`: the connection's bucket; `BUCKET name`: use that bucket.
    fn bucket_command(&mut self, st: &RespState, args: &[Bytes]) -> Reply {
        match args {
            [] => Reply::Bulk(self.bucket.clone()),
            [b] if !b.is_empty() && b.len() <= st.bucket_bytes_max => {
                self.bucket = b.clone();
                Reply::Simple("OK")
            }
            [b] => Reply::err(format!(
                "a bucket name is 1 to {} bytes (--bucket-bytes-max), not {}",
                st.bucket_bytes_max,
                b.len()
            )),
            _ => wrong_arity(b"BUCKET"),
        }
    }

    /// `CLIENT SETNAME|GETNAME|SETINFO|ID`.
    fn client(&mut self, args: &[Bytes]) -> Reply {
        match (args[0].to_ascii_uppercase().as_slice(), &args[1..]) {
            (b"SETNAME", [n]) => {
                if n.iter().any(|b| b.is_ascii_whitespace()) {
                    return Reply::err(
                        "Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                self.name = (!n.is_empty()).then(|| n.clone());
                Reply::Simple("OK")
            }
            (b"GETNAME", []) => self.name.clone().map_or(Reply::Null, Reply::Bulk),
            (b"SETINFO", [_, _]) => Reply::Simple("OK"),
            (b"ID", []) => Reply::Int(self.id as i64),
            (sub, _) => Reply::err(format!(
                "unknown subcommand or wrong number of arguments for 'CLIENT {}'; ringkv takes \
                 CLIENT SETNAME, GETNAME, SETINFO and ID",
                String::from_utf8_lossy(sub)
            )),
        }
    }

    /// `INFO`: a few lines on the server, this node and the connection's
    /// bucket.
    fn info(&self, st: &RespState) -> Reply {
        let text = format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nringkv_version:{}\r\n\
             ringkv_node:{}\r\nredis_mode:standalone\r\nprotocol:{}\r\n\r\n\
             # Keyspace\r\nbucket:{}\r\nkeys:unknown (ringkv does not count keys)\r\n",
            env!("CARGO_PKG_VERSION"),
            st.me,
            match self.proto {
                Proto::Resp2 => 2,
                Proto::Resp3 => 3,
            },
            String::from_utf8_lossy(&self.bucket),
        );
        Reply::text(text)
    }
}

/// The Redis version whose protocol (for the commands ringkv takes) this
/// front end speaks, for clients that look at `INFO` or `HELLO`.
const REDIS_VERSION: &str = "7.0.0";

/// The commands ringkv takes, for `COMMAND COUNT` and `COMMAND LIST`.
const COMMANDS: &[&str] = &[
    "auth", "bucket", "client", "command", "config", "del", "echo", "exists", "get", "getctx",
    "hello", "info", "mget", "mset", "ping", "quit", "select", "set", "setctx", "unlink",
];

/// Counts the answer `reply` to command `args` in the metrics.
fn observe(st: &RespState, args: &[Bytes], reply: &Reply) {
    let command = COMMANDS
        .iter()
        .find(|c| args[0].eq_ignore_ascii_case(c.as_bytes()))
        .copied()
        .unwrap_or("other");
    st.metrics
        .observe(command, matches!(reply, Reply::Error(_)));
}

/// `-NOAUTH`: the connection has not authenticated and the node needs it.
fn noauth() -> Reply {
    Reply::Error(
        "NOAUTH Authentication required: this node has a token file; send AUTH <token secret> \
         (or HELLO 3 AUTH <token name> <secret>)"
            .into(),
    )
}

/// `COMMAND [COUNT|DOCS|INFO|LIST]`: enough for clients that look before
/// they start (redis-cli, redis-py); no command documentation.
fn command(args: &[Bytes]) -> Reply {
    let sub = args.first().map(|a| a.to_ascii_uppercase());
    match sub.as_deref() {
        None => Reply::Array(Vec::new()),
        Some(b"COUNT") => Reply::Int(COMMANDS.len() as i64),
        Some(b"DOCS") => Reply::Map(Vec::new()),
        Some(b"INFO") => Reply::Array(args[1..].iter().map(|_| Reply::Null).collect()),
        Some(b"LIST") => Reply::Array(COMMANDS.iter().map(|c| Reply::text(*c)).collect()),
        Some(other) => Reply::err(format!(
            "unknown subcommand 'COMMAND {}'; ringkv takes COMMAND, COMMAND COUNT, DOCS, INFO and LIST",
            String::from_utf8_lossy(other)
        )),
    }
}

/// `CONFIG GET pattern`: nothing (ringkv is configured by its flags);
/// anything else is refused.
fn config(args: &[Bytes]) -> Reply {
    if args[0].eq_ignore_ascii_case(b"GET") {
        return Reply::Map(Vec::new());
    }
    Reply::err(
        "ringkv takes only CONFIG GET (which answers nothing): it is configured by its server \
         flags or config file",
    )
}

/// Redis's answer to a command it does not know.
fn unknown(args: &[Bytes]) -> Reply {
    let mut shown = String::new();
    for a in args[1..].iter().take(4) {
        let a = String::from_utf8_lossy(&a[..a.len().min(64)]).into_owned();
        shown.push_str(&format!("'{a}' "));
    }
    Reply::err(format!(
        "unknown command '{}', with args beginning with: {shown}",
        String::from_utf8_lossy(&args[0][..args[0].len().min(64)])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ringkv_core::NodeId;

    /// Words commands take, so random commands reach their deeper paths.
    const WORDS: &[&str] = &[
        "NX", "XX", "EX", "PX", "KEEPTTL", "GET", "AUTH", "SETNAME", "3", "2", "0", "-1", "k", "v",
        "COUNT", "DOCS", "ID", "GETNAME", "SETINFO", "default",
    ];

    fn arg() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            prop::sample::select(WORDS).prop_map(|w| Bytes::from_static(w.as_bytes())),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from),
        ]
    }

    fn command() -> impl Strategy<Value = Vec<Bytes>> {
        let name = prop_oneof![
            prop::sample::select(COMMANDS).prop_map(|c| Bytes::from_static(c.as_bytes())),
            prop::collection::vec(any::<u8>(), 1..8).prop_map(Bytes::from),
        ];
        (name, prop::collection::vec(arg(), 0..6)).prop_map(|(n, mut args)| {
            args.insert(0, n);
            args
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any commands, with or without a token file: every one is
        /// answered (until a QUIT), nothing panics.
        #[test]
        fn random_commands_are_answered_without_panics(
            batch in prop::collection::vec(command(), 1..24),
            with_tokens in any::<bool>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let tokens = with_tokens.then(|| {
                    Arc::new(crate::auth::Tokens::parse(
                        "[[token]]\nname = \"k\"\nsecret = \"0123456789abcdef\"\npermissions = [\"*\"]\n",
                    ).unwrap())
                });
                let st = RespState {
                    node: super::super::tests::stand_in_node(),
                    me: NodeId::parse("n1").unwrap(),
                    timeout_ms: 100,
                    value_bytes_max: 64,
                    bucket_bytes_max: 8,
                    tokens,
                    metrics: crate::metrics::RespMetrics::default(),
        context_keys: ringkv_core::ContextKeys::new([9; 32], Vec::new()),
                };
                let quits = batch.iter().any(|c| c[0].eq_ignore_ascii_case(b"QUIT"));
                let mut session = Session::new(1);
                let mut out = BytesMut::new();
                let mut wr: Vec<u8> = Vec::new();
                let flow = session.run_batch(&st, batch, &mut out, &mut wr).await;
                assert_eq!(flow == Flow::Close, quits);
                assert!(!out.is_empty() || !wr.is_empty());
            });
        }
    }
}
