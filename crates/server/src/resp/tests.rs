//! The RESP server in process, over loopback, with a stand-in node loop
//! (a map of keys): tokens and permissions, protocol switches, and the
//! answers a connection owes whatever it is sent.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use ringkv_core::msg::{ClientOp, ClientReply};
use ringkv_core::version::{Actor, Dot, Sibling};
use ringkv_core::{NodeId, Object, Value, VersionVector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{RespState, serve};
use crate::auth::Tokens;
use crate::runtime::{Event, NodeHandle};

const READER: &str = "reader-secret-0123456789";
const WRITER: &str = "writer-secret-0123456789";

/// A node loop stand-in: a map of keys, each write replacing the value.
/// Other events (bucket properties) are dropped unanswered.
pub(super) fn stand_in_node() -> NodeHandle {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut keys: HashMap<Bytes, Value> = HashMap::new();
        let actor = Actor {
            node: NodeId::parse("n1").unwrap(),
            incarnation: 1,
        };
        let mut counter = 0;
        while let Some(ev) = rx.recv().await {
            let Event::Client { request, reply } = ev else {
                continue;
            };
            counter += 1;
            let dot = Dot {
                actor: actor.clone(),
                counter,
            };
            let mut vv = VersionVector::new();
            vv.add(&dot);
            let answer = match request.op {
                ClientOp::Put { value, .. } => {
                    keys.insert(request.key.key, value);
                    ClientReply::Written {
                        context: vv,
                        dot: Some(dot),
                        fallback_acks: 0,
                    }
                }
                ClientOp::Get { .. } => ClientReply::Read {
                    object: Object {
                        siblings: keys
                            .get(&request.key.key)
                            .map(|v| Sibling {
                                dot,
                                value: v.clone(),
                                timestamp_ms: 1,
                            })
                            .into_iter()
                            .collect(),
                        vv,
                    },
                    fallback_replies: 0,
                },
                ClientOp::PutIf { .. } | ClientOp::List(_) | ClientOp::Cluster(_) => continue,
            };
            let _ = reply.send(answer);
        }
    });
    NodeHandle::from_sender(tx)
}

/// Serves RESP on a loopback port with `tokens`; its address.
async fn start(tokens: Option<Tokens>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state = RespState {
        node: stand_in_node(),
        me: NodeId::parse("n1").unwrap(),
        timeout_ms: 1_000,
        value_bytes_max: 64,
        bucket_bytes_max: 8,
        tokens: tokens.map(Arc::new),
        metrics: crate::metrics::RespMetrics::default(),
        context_keys: ringkv_core::ContextKeys::new([9; 32], Vec::new()),
    };
    tokio::spawn(serve(listener, state));
    addr
}

/// Sends `input` and reads until the answer holds `lines` lines (CRLF),
/// each read within 60 s (past [`super::COMMAND_TIMEOUT`]).
async fn exchange(conn: &mut TcpStream, input: &str, lines: usize) -> String {
    conn.write_all(input.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(2).filter(|w| w == b"\r\n").count() < lines {
        let n = tokio::time::timeout(std::time::Duration::from_secs(60), conn.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn tokens_and_their_permissions_apply_per_command() {
    let tokens = Tokens::parse(&format!(
        "[[token]]\nname = \"reader\"\nsecret = \"{READER}\"\npermissions = [\"read:default\"]\n\
         [[token]]\nname = \"writer\"\nsecret = \"{WRITER}\"\npermissions = [\"write:*\", \"read:*\"]\n"
    ))
    .unwrap();
    let addr = start(Some(tokens)).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    for cmd in ["PING\r\n", "GET k\r\n", "INFO\r\n"] {
        let a = exchange(&mut c, cmd, 1).await;
        assert!(a.starts_with("-NOAUTH"), "{cmd}: {a}");
    }
    assert!(
        exchange(&mut c, "AUTH nope-nope-nope-nope\r\n", 1)
            .await
            .starts_with("-WRONGPASS")
    );
    let a = exchange(&mut c, &format!("AUTH writer {READER}\r\n"), 1).await;
    assert!(
        a.starts_with("-WRONGPASS"),
        "the user names another token: {a}"
    );
    assert_eq!(
        exchange(&mut c, &format!("AUTH reader {READER}\r\n"), 1).await,
        "+OK\r\n"
    );
    assert_eq!(exchange(&mut c, "GET k\r\n", 1).await, "$-1\r\n");
    let a = exchange(&mut c, "SET k v\r\n", 1).await;
    assert!(
        a.starts_with("-NOPERM") && a.contains("write:default"),
        "{a}"
    );
    assert_eq!(exchange(&mut c, "BUCKET other\r\n", 1).await, "+OK\r\n");
    let a = exchange(&mut c, "GET k\r\n", 1).await;
    assert!(a.starts_with("-NOPERM") && a.contains("read:other"), "{a}");
    // HELLO 3 with AUTH switches token and protocol at once.
    let a = exchange(&mut c, &format!("HELLO 3 AUTH default {WRITER}\r\n"), 30).await;
    assert!(
        a.starts_with("%8\r\n") && a.contains("proto\r\n:3\r\n"),
        "{a}"
    );
    assert_eq!(exchange(&mut c, "SET k v\r\n", 1).await, "+OK\r\n");
    assert_eq!(exchange(&mut c, "GET k\r\n", 2).await, "$1\r\nv\r\n");
    assert_eq!(exchange(&mut c, "GET nothing\r\n", 1).await, "_\r\n");
    // A new connection starts unauthenticated; HELLO without AUTH is refused.
    let mut c = TcpStream::connect(&addr).await.unwrap();
    assert!(
        exchange(&mut c, "HELLO 3\r\n", 1)
            .await
            .starts_with("-NOAUTH")
    );
    assert!(
        exchange(&mut c, "HELLO 4\r\n", 1)
            .await
            .starts_with("-NOPROTO")
    );
}

#[tokio::test]
async fn every_input_gets_an_answer_and_bad_frames_close_the_connection() {
    let addr = start(None).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let cases = [
        (
            "AUTH x\r\n",
            "-ERR AUTH was given, but this node has no token file",
        ),
        ("SELECT 1\r\n", "+OK"),
        ("BUCKET\r\n", "$3\r\ndb1"),
        ("SELECT x\r\n", "-ERR invalid DB index"),
        (
            "BUCKET far-too-long\r\n",
            "-ERR a bucket name is 1 to 8 bytes",
        ),
        (
            "GET\r\n",
            "-ERR wrong number of arguments for 'get' command",
        ),
        ("SET k v PX 1\r\n", "-ERR TTLs"),
        ("SET k v NX XX\r\n", "-ERR syntax error"),
        ("CLIENT LIST\r\n", "-ERR unknown subcommand"),
        ("COMMAND COUNT\r\n", ":20"),
        ("CONFIG SET a b\r\n", "-ERR ringkv takes only CONFIG GET"),
        (
            "NOSUCH a b\r\n",
            "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b'",
        ),
        ("*0\r\nPING\r\n", "+PONG"),
    ];
    for (input, answer) in cases {
        let a = exchange(&mut c, input, 1).await;
        assert!(a.starts_with(answer), "{input:?}: {a:?}");
    }
    // A value over the limit (64 bytes here) is a protocol error.
    let a = exchange(&mut c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$65\r\n", 1).await;
    assert!(
        a.starts_with("-ERR Protocol error: invalid bulk length 65"),
        "{a}"
    );
    let mut rest = Vec::new();
    assert_eq!(
        c.read_to_end(&mut rest).await.unwrap(),
        0,
        "closed after the error"
    );
}

#[test]
fn only_independent_plain_gets_and_sets_run_at_once() {
    let cmd = |s: &str| -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    };
    let run = |cmds: &[&str]| {
        let cmds: Vec<Vec<Bytes>> = cmds.iter().map(|c| cmd(c)).collect();
        super::conn::independent_run(&cmds)
    };
    assert_eq!(run(&["GET a", "get b", "GET a", "SET c 1", "set d 2"]), 5);
    assert_eq!(
        run(&["SET a 1", "GET a"]),
        1,
        "a read after a write of its key waits"
    );
    assert_eq!(
        run(&["GET a", "SET a 1"]),
        1,
        "a write after a read of its key waits"
    );
    assert_eq!(
        run(&["SET a 1", "SET a 2"]),
        1,
        "writes of one key stay in order"
    );
    assert_eq!(
        run(&["GET a", "SET b 1 NX", "GET c"]),
        1,
        "SET with options runs alone"
    );
    assert_eq!(run(&["DEL a", "GET a"]), 0);
    assert_eq!(
        run(&["GET a", "BUCKET x", "GET a"]),
        1,
        "a bucket change is a barrier"
    );
    let many: Vec<String> = (0..100).map(|i| format!("GET k{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(run(&many), 64);
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let addr = start(None).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let input = "SET a 1\r\nGET a\r\nSET a 2\r\nGET a\r\nGET b\r\nSET b 3\r\nMGET a b\r\nPING\r\n";
    let a = exchange(&mut c, input, 14).await;
    assert_eq!(
        a,
        "+OK\r\n$1\r\n1\r\n+OK\r\n$1\r\n2\r\n$-1\r\n+OK\r\n*2\r\n$1\r\n2\r\n$1\r\n3\r\n+PONG\r\n"
    );
}

/// Time is paused and advances whenever every task waits, so the 30 s
/// pass at once.
#[tokio::test(start_paused = true)]
async fn a_command_that_stops_halfway_is_refused_after_the_timeout() {
    let addr = start(None).await;
    let mut c = TcpStream::connect(&addr).await.unwrap();
    // A whole command, then half of one: the first is answered, the
    // second waits for the rest until the timeout.
    let a = exchange(&mut c, "PING\r\n*2\r\n$3\r\nGET\r\n$1", 2).await;
    assert_eq!(
        a,
        "+PONG\r\n-ERR Protocol error: a command did not arrive whole within 30 s\r\n"
    );
    let mut rest = Vec::new();
    assert_eq!(
        c.read_to_end(&mut rest).await.unwrap(),
        0,
        "closed after the error"
    );
    // An idle connection between commands is not timed out.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    assert_eq!(exchange(&mut idle, "PING\r\n", 1).await, "+PONG\r\n");
}
