//! The Redis protocol (`--resp`) on a real `ringkv server` process, spoken
//! as raw RESP over a TCP stream: SET/GET/DEL/EXISTS/MGET/MSET, pipelined
//! commands, buckets, siblings, compare-and-set in a strong bucket, and a
//! malformed frame that gets an error and a closed connection. Then, when
//! redis-py is installed, `tests/resp_redis_py.py` against the same node.
// A scenario on real processes reads best as one story, top to bottom.
#![allow(clippy::too_many_lines)]

mod common;

use std::time::Duration;

use common::{TestCluster, eventually, free_port};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest wait for one reply.
const REPLY_WAIT: Duration = Duration::from_secs(15);

/// A RESP reply, as the test reads it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum R {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<R>),
}

fn bulk(s: &str) -> R {
    R::Bulk(s.as_bytes().to_vec())
}

fn ok() -> R {
    R::Simple("OK".into())
}

/// A raw RESP connection.
struct Conn {
    io: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let stream = tokio::time::timeout(REPLY_WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Conn {
            io: BufReader::new(stream),
        }
    }

    /// Sends `bytes` as they are.
    async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    /// Sends one command as a RESP array of bulk strings.
    async fn send(&mut self, args: &[&[u8]]) {
        self.send_raw(&encode(args)).await;
    }

    /// Sends one command and reads its reply.
    async fn cmd(&mut self, args: &[&str]) -> R {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&args).await;
        self.reply().await
    }

    /// Reads one reply, within [`REPLY_WAIT`].
    async fn reply(&mut self) -> R {
        tokio::time::timeout(REPLY_WAIT, read_reply(&mut self.io))
            .await
            .expect("a reply in time")
    }

    /// Whether the server closed the connection (within [`REPLY_WAIT`]).
    async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(REPLY_WAIT, self.io.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_line(io: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    let n = io.read_line(&mut line).await.unwrap();
    assert!(n > 0, "the server closed the connection");
    line.trim_end_matches("\r\n").to_string()
}

fn read_reply(io: &mut BufReader<TcpStream>) -> std::pin::Pin<Box<dyn Future<Output = R> + '_>> {
    Box::pin(async move {
        let line = read_line(io).await;
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => R::Simple(rest.into()),
            "-" => R::Error(rest.into()),
            ":" => R::Int(rest.parse().unwrap()),
            "_" => R::Nil,
            "$" if rest == "-1" => R::Nil,
            "$" => {
                let mut b = vec![0; rest.parse::<usize>().unwrap() + 2];
                io.read_exact(&mut b).await.unwrap();
                b.truncate(b.len() - 2);
                R::Bulk(b)
            }
            "*" | "%" => {
                let n: usize = rest.parse().unwrap();
                let n = if kind == "%" { 2 * n } else { n };
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(read_reply(io).await);
                }
                R::Array(items)
            }
            _ => panic!("not a RESP reply: {line:?}"),
        }
    })
}

fn error_says(r: &R, code: &str, what: &str) {
    match r {
        R::Error(e) => assert!(
            e.starts_with(code) && e.contains(what),
            "wanted -{code} ...{what}..., got -{e}"
        ),
        other => panic!("wanted -{code} ...{what}..., got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_clients_read_and_write_through_the_resp_port() {
    let resp = format!("127.0.0.1:{}", free_port());
    let c = TestCluster::start(
        1,
        &[
            "--insecure",
            "--n",
            "1",
            "--r",
            "1",
            "--w",
            "1",
            "--value-bytes-max",
            "4096",
            "--resp",
            &resp,
        ],
    )
    .await;
    let mut r = Conn::open(&resp).await;
    assert_eq!(r.cmd(&["PING"]).await, R::Simple("PONG".into()));
    assert_eq!(r.cmd(&["ECHO", "hi"]).await, bulk("hi"));
    assert_eq!(r.cmd(&["CLIENT", "SETNAME", "t"]).await, ok());
    assert_eq!(r.cmd(&["CLIENT", "GETNAME"]).await, bulk("t"));
    assert_eq!(r.cmd(&["COMMAND", "DOCS"]).await, R::Array(vec![]));

    // The basics, in bucket `default` (siblings).
    assert_eq!(r.cmd(&["GET", "k"]).await, R::Nil);
    assert_eq!(r.cmd(&["SET", "k", "v1"]).await, ok());
    assert_eq!(r.cmd(&["GET", "k"]).await, bulk("v1"));
    // What RESP wrote, HTTP reads: the same path.
    let over_http = c.http.get(c.kv(0, "default", "k")).send().await.unwrap();
    assert_eq!(over_http.status(), 200);
    assert_eq!(over_http.text().await.unwrap(), "v1");
    assert_eq!(r.cmd(&["EXISTS", "k", "nope", "k"]).await, R::Int(2));
    assert_eq!(r.cmd(&["DEL", "k", "nope"]).await, R::Int(1));
    assert_eq!(r.cmd(&["DEL", "k"]).await, R::Int(0));
    assert_eq!(r.cmd(&["GET", "k"]).await, R::Nil);
    assert_eq!(r.cmd(&["EXISTS", "k"]).await, R::Int(0));

    // A SET carries no context: in a siblings bucket, a second one is concurrent.
    assert_eq!(r.cmd(&["SET", "cart", "apples"]).await, ok());
    assert_eq!(r.cmd(&["SET", "cart", "pears"]).await, ok());
    error_says(
        &r.cmd(&["GET", "cart"]).await,
        "SIBLINGS",
        "2 concurrent values",
    );
    let mget = r.cmd(&["MGET", "cart", "none"]).await;
    let R::Array(items) = &mget else {
        panic!("{mget:?}")
    };
    error_says(&items[0], "SIBLINGS", "lww");
    assert_eq!(items[1], R::Nil);
    // GETCTX and SETCTX resolve them: a write with the read's context.
    let read = r.cmd(&["GETCTX", "cart"]).await;
    let R::Array(parts) = &read else {
        panic!("{read:?}")
    };
    let (R::Bulk(ctx), R::Array(values)) = (&parts[0], &parts[1]) else {
        panic!("{read:?}")
    };
    let mut values = values.clone();
    values.sort();
    assert_eq!(values, vec![bulk("apples"), bulk("pears")]);
    let ctx = String::from_utf8(ctx.clone()).unwrap();
    error_says(
        &r.cmd(&["SETCTX", "other-key", "x", &ctx]).await,
        "ERR",
        "SETCTX",
    );
    assert_eq!(r.cmd(&["SETCTX", "cart", "apples,pears", &ctx]).await, ok());
    assert_eq!(r.cmd(&["GET", "cart"]).await, bulk("apples,pears"));
    // DEL deletes with the context of its read, siblings and all.
    assert_eq!(r.cmd(&["SET", "cart", "plums"]).await, ok());
    error_says(
        &r.cmd(&["GET", "cart"]).await,
        "SIBLINGS",
        "2 concurrent values",
    );
    assert_eq!(r.cmd(&["DEL", "cart"]).await, R::Int(1));
    assert_eq!(r.cmd(&["GET", "cart"]).await, R::Nil);

    // MSET / MGET, binary values.
    assert_eq!(r.cmd(&["MSET", "a", "1", "b", "2"]).await, ok());
    r.send(&[b"SET", b"bin", b"\x00\r\n\xff"]).await;
    assert_eq!(r.reply().await, ok());
    assert_eq!(
        r.cmd(&["MGET", "a", "b", "missing", "bin"]).await,
        R::Array(vec![
            bulk("1"),
            bulk("2"),
            R::Nil,
            R::Bulk(b"\x00\r\n\xff".to_vec())
        ])
    );
    error_says(
        &r.cmd(&["MSET", "a"]).await,
        "ERR",
        "wrong number of arguments",
    );
    error_says(
        &r.cmd(&["SET", "a", "1", "EX", "10"]).await,
        "ERR",
        "not supported",
    );
    error_says(
        &r.cmd(&["SET", "a", "1", "NX"]).await,
        "ERR",
        "need a strong bucket",
    );
    error_says(
        &r.cmd(&["FLUSHALL"]).await,
        "ERR",
        "unknown command 'FLUSHALL'",
    );

    // Pipelining: many commands in one write, answered in order.
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend(encode(&[
            b"SET",
            format!("p{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
    }
    for i in 0..50 {
        batch.extend(encode(&[b"GET", format!("p{i}").as_bytes()]));
    }
    batch.extend(b"PING\r\n");
    r.send_raw(&batch).await;
    for _ in 0..50 {
        assert_eq!(r.reply().await, ok());
    }
    for i in 0..50 {
        assert_eq!(r.reply().await, bulk(&i.to_string()));
    }
    assert_eq!(r.reply().await, R::Simple("PONG".into()));

    // Buckets: SELECT 0 is `default`, BUCKET picks any bucket.
    assert_eq!(r.cmd(&["BUCKET", "other"]).await, ok());
    assert_eq!(r.cmd(&["BUCKET"]).await, bulk("other"));
    assert_eq!(r.cmd(&["GET", "a"]).await, R::Nil);
    assert_eq!(r.cmd(&["SELECT", "0"]).await, ok());
    assert_eq!(r.cmd(&["GET", "a"]).await, bulk("1"));
    let info = r.cmd(&["INFO"]).await;
    let R::Bulk(info) = info else {
        panic!("{info:?}")
    };
    let info = String::from_utf8(info).unwrap();
    assert!(
        info.contains("ringkv_node:n1") && info.contains("bucket:default"),
        "{info}"
    );

    // RESP3 after HELLO 3: typed nulls and maps.
    let hello = r.cmd(&["HELLO", "3"]).await;
    assert!(
        matches!(&hello, R::Array(kv) if kv.contains(&bulk("proto")) && kv.contains(&R::Int(3))),
        "{hello:?}"
    );
    r.send(&[b"GET", b"missing"]).await;
    let mut raw = String::new();
    r.io.read_line(&mut raw).await.unwrap();
    assert_eq!(raw, "_\r\n");
    let hello = r.cmd(&["HELLO", "2"]).await;
    assert!(
        matches!(&hello, R::Array(kv) if kv.contains(&R::Int(2))),
        "{hello:?}"
    );
    assert_eq!(r.cmd(&["GET", "missing"]).await, R::Nil);

    strong_bucket(&c, &resp).await;

    // A malformed frame: an error, then the connection closes.
    let mut bad = Conn::open(&resp).await;
    bad.send_raw(b"*1\r\n$x\r\n").await;
    error_says(
        &bad.reply().await,
        "ERR",
        "Protocol error: invalid bulk length",
    );
    assert!(
        bad.closed().await,
        "the connection stays open after a protocol error"
    );
    // A bulk string over the value limit (4096 here) is refused before it arrives.
    let mut big = Conn::open(&resp).await;
    big.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n")
        .await;
    error_says(&big.reply().await, "ERR", "invalid bulk length 5000");
    assert!(big.closed().await);
    // The first connection was not disturbed.
    assert_eq!(r.cmd(&["GET", "a"]).await, bulk("1"));
    assert_eq!(r.cmd(&["QUIT"]).await, ok());
    assert!(r.closed().await);

    // What was answered is counted.
    let metrics = c
        .http
        .get(format!("{}/metrics", c.url(0)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "ringkv_resp_commands_total{command=\"get\",outcome=\"ok\"}",
        "ringkv_resp_commands_total{command=\"other\",outcome=\"error\"} 1",
        "ringkv_resp_connections ",
    ] {
        assert!(metrics.contains(series), "{series} not in:\n{metrics}");
    }

    redis_py(&resp);
}

/// `SET NX`/`XX` and `DEL` as compare-and-set in a strong bucket.
async fn strong_bucket(c: &TestCluster, resp: &str) {
    let created = c
        .http
        .put(format!("{}/v1/buckets/ledger", c.url(0)))
        .body(r#"{"consistency":"strong"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let mut r = Conn::open(resp).await;
    assert_eq!(r.cmd(&["BUCKET", "ledger"]).await, ok());
    // The group elects its leader on first use: retry until it answers (nil:
    // an earlier try whose outcome was unknown did apply).
    eventually(Duration::from_secs(30), async || {
        match r.cmd(&["SET", "x", "1", "NX"]).await {
            R::Simple(s) if s == "OK" => Ok(()),
            R::Nil => Ok(()),
            other => Err(format!("SET NX answered {other:?}")),
        }
    })
    .await;
    assert_eq!(r.cmd(&["GET", "x"]).await, bulk("1"));
    assert_eq!(r.cmd(&["SET", "x", "2", "NX"]).await, R::Nil);
    assert_eq!(r.cmd(&["GET", "x"]).await, bulk("1"));
    assert_eq!(r.cmd(&["SET", "x", "3", "XX"]).await, ok());
    assert_eq!(r.cmd(&["GET", "x"]).await, bulk("3"));
    assert_eq!(r.cmd(&["SET", "y", "3", "XX"]).await, R::Nil);
    assert_eq!(r.cmd(&["DEL", "x", "y"]).await, R::Int(1));
    assert_eq!(r.cmd(&["SET", "x", "4", "XX"]).await, R::Nil);
    assert_eq!(r.cmd(&["SET", "x", "5", "NX"]).await, ok());
}

/// Runs `tests/resp_redis_py.py` against the node when python3 and
/// redis-py are installed; says so and skips otherwise.
fn redis_py(resp: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/resp_redis_py.py");
    let probe = std::process::Command::new("python3")
        .args(["-c", "import redis"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED the redis-py part: python3 with redis-py is not installed \
             (pip install redis to run it)"
        );
        return;
    }
    let (host, port) = resp.rsplit_once(':').unwrap();
    let out = std::process::Command::new("python3")
        .args([script, host, port])
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "redis-py test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
}
