//! Tests of what the API trusts: bearer tokens per route, signed contexts,
//! the body and header limits, and parsing of arbitrary paths and queries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use proptest::prelude::*;
use ringkv_core::api::ErrorBody;
use ringkv_core::{ContextKeys, context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tests::{answer, stand_in_node, state};
use super::*;
use crate::auth::Tokens;

const TOKENS: &str = r#"
    [[token]]
    name = "carts"
    secret = "carts-secret-0123456789"
    permissions = ["read:carts", "write:carts"]

    [[token]]
    name = "reader"
    secret = "reader-secret-0123456789"
    permissions = ["read:*"]

    [[token]]
    name = "ops"
    secret = "ops-secret-0123456789"
    permissions = ["admin"]
"#;

fn request(method: Method, uri: &str, token: Option<&str>, body: &'static str) -> Request {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    r.body(Body::from(body)).unwrap()
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .unwrap_or_else(|e| panic!("not a JSON error ({e}): {body:?}"))
        .error
}

/// Requests by token name ("" for none) and the status each must get (0:
/// served, whatever the handler answers, but neither 401 nor 403).
const CASES: &[(&str, &str, &str, u16)] = &[
    ("GET", "/health", "", 0),
    ("GET", "/v1/kv/carts/k", "", 401),
    ("GET", "/v1/kv/carts/k", "wrong", 401),
    ("GET", "/v1/kv/carts/k", "carts", 200),
    ("PUT", "/v1/kv/carts/k", "carts", 204),
    ("DELETE", "/v1/kv/carts/k", "carts", 0),
    ("GET", "/v1/kv/other/k", "carts", 403),
    ("GET", "/v1/kv/other/k", "reader", 200),
    ("PUT", "/v1/kv/other/k", "reader", 403),
    ("GET", "/v1/cluster", "", 401),
    ("GET", "/v1/cluster", "carts", 0),
    ("GET", "/metrics", "reader", 0),
    ("GET", "/v1/buckets/carts", "carts", 0),
    ("PUT", "/v1/buckets/carts", "carts", 403),
    ("PUT", "/v1/buckets/carts", "ops", 0),
    ("GET", "/v1/admin/faults", "reader", 403),
    ("GET", "/v1/admin/faults", "ops", 200),
    ("GET", "/v1/nothing", "", 401),
    ("GET", "/v1/nothing", "ops", 404),
];

#[tokio::test]
async fn tokens_decide_401_403_or_served_per_route() {
    let mut st = state(stand_in_node());
    st.tokens = Some(Arc::new(Tokens::parse(TOKENS).unwrap()));
    st.faults = Some(crate::faults::Faults::default());
    let mut api = Api::new(st);
    for &(method, uri, name, want) in CASES {
        let secret = (!name.is_empty()).then(|| format!("{name}-secret-0123456789"));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = if method == Method::PUT { "{}" } else { "" };
        let req = request(method.clone(), uri, secret.as_deref(), body);
        let (status, headers, bytes) = answer(&mut api, req).await;
        let what = format!("{method} {uri} as {name:?}: {status} {bytes:?}");
        match want {
            0 => assert!(status != 401 && status != 403, "{what}"),
            want => assert_eq!(status.as_u16(), want, "{what}"),
        }
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(error_code(&bytes), "unauthorized");
            let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"));
        }
        if status == StatusCode::FORBIDDEN {
            assert_eq!(error_code(&bytes), "forbidden");
        }
    }
}

#[tokio::test]
async fn without_a_token_file_the_api_is_open_and_admin_routes_exist_only_when_enabled() {
    let mut api = Api::new(state(stand_in_node()));
    let (status, _, _) = answer(&mut api, request(Method::GET, "/v1/kv/b/k", None, "")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = answer(
        &mut api,
        request(Method::PUT, "/v1/admin/faults/n2", None, "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let e: ErrorBody = serde_json::from_slice(&body).unwrap();
    assert!(e.message.contains("--fault-injection"), "{}", e.message);
}

#[tokio::test]
async fn forged_tampered_and_foreign_contexts_are_400_and_reach_no_node() {
    // The node loop is closed: a request that reached it would be a 503.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let mut st = state(crate::runtime::NodeHandle::from_sender(tx));
    let key_hash = ringkv_core::hash::BucketKey::new(b"b".to_vec(), b"k".to_vec()).hash();
    let mut vv = ringkv_core::VersionVector::new();
    vv.add(&ringkv_core::Dot {
        actor: ringkv_core::Actor {
            node: ringkv_core::NodeId::parse("n2").unwrap(),
            incarnation: 1,
        },
        counter: u64::MAX,
    });
    let forged = context::encode(&vv, key_hash, &ContextKeys::new([1; 32], Vec::new()));
    let genuine = context::encode(&vv, key_hash, &st.context_keys);
    let mut tampered = genuine.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let truncated = genuine[..genuine.len() - 4].to_string();
    let insecure = context::encode(&vv, key_hash, &ContextKeys::insecure());
    st.context_keys = st.context_keys.clone().with_actors_max(256);
    let mut api = Api::new(st);
    for (what, token) in [
        ("forged", &forged),
        ("tampered", &tampered),
        ("truncated", &truncated),
        ("insecure key", &insecure),
    ] {
        for method in [Method::PUT, Method::DELETE] {
            let req = Request::builder()
                .method(method.clone())
                .uri("/v1/kv/b/k")
                .header(CONTEXT_HEADER, token.as_str())
                .body(Body::from("v"))
                .unwrap();
            let (status, _, body) = answer(&mut api, req).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what} {method}");
            let e: ErrorBody = serde_json::from_slice(&body).unwrap();
            assert!(e.message.contains("context token"), "{what}: {}", e.message);
        }
    }
    // The genuine token passes the check and reaches the (closed) node.
    let req = Request::put("/v1/kv/b/k")
        .header(CONTEXT_HEADER, genuine.as_str())
        .body(Body::from("v"))
        .unwrap();
    assert_eq!(
        answer(&mut api, req).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn small_routes_refuse_large_bodies_with_json() {
    let mut st = state(stand_in_node());
    st.faults = Some(crate::faults::Faults::default());
    let mut api = Api::new(st);
    let big: &'static str = Box::leak("x".repeat(SMALL_BODY_MAX + 1).into_boxed_str());
    for uri in ["/v1/admin/faults/n2", "/v1/buckets/b"] {
        let (status, _, body) = answer(&mut api, request(Method::PUT, uri, None, big)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
        assert_eq!(error_code(&body), "too_large");
    }
}

/// A client that sends half a request head is disconnected once the
/// header-read timeout passes; a whole request on the same server is served.
#[tokio::test]
async fn a_half_sent_request_is_closed_by_the_header_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let api = Api::new(state(stand_in_node()));
    let server = tokio::spawn(async move {
        serve(listener, api, &opts, async {
            let _ = stopped.await;
        })
        .await;
    });
    // A whole request is answered.
    let mut whole = tokio::net::TcpStream::connect(addr).await.unwrap();
    whole
        .write_all(b"GET /v1/kv/b/k HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), whole.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    // Half a request head: the server closes the connection.
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /v1/kv/b/k HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), half.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the half-sent request was not closed within 5 s"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "closed before the timeout: {:?}",
        start.elapsed()
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("the server stops")
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Any path and query, and any context header, get an answer (often a
    /// clear 4xx), never a panic.
    #[test]
    fn arbitrary_paths_queries_and_contexts_never_panic(
        path in "(/v1/kv/|/v1/buckets/|/v1/ring/|/)[a-zA-Z0-9%/._~!$&'()*+,;=:@-]{0,40}",
        query in proptest::option::of("[a-zA-Z0-9%=&_.-]{0,30}"),
        ctx in proptest::option::of("[ -~]{0,80}"),
        put in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut api = Api::new(state(stand_in_node()));
            let uri = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let Ok(uri) = uri.parse::<axum::http::Uri>() else { return; };
            let mut r = Request::builder().method(if put { Method::PUT } else { Method::GET }).uri(uri);
            if let Some(c) = &ctx
                && let Ok(v) = axum::http::HeaderValue::from_str(c)
            {
                r = r.header(CONTEXT_HEADER, v);
            }
            let (status, _, body) = answer(&mut api, r.body(Body::from("v")).unwrap()).await;
            if status.is_client_error() {
                error_code(&body);
            }
        });
    }
}

#[test]
fn kv_path_and_query_parsers_take_arbitrary_text() {
    proptest!(|(path in "\\PC{0,60}", query in "\\PC{0,60}")| {
        let _ = parse_bucket_key(&path, "/v1/kv/");
        let _ = Need::of(&Method::GET, &path);
        let _ = kv::parse_query(Some(&query));
    });
}

/// With a certificate the API speaks HTTPS: a client that trusts the
/// certificate's issuer is served; plain HTTP on that port is not.
#[tokio::test]
async fn the_api_serves_https_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("n1.crt"), dir.path().join("n1.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    assert!(
        tls::server_config(&key, &cert).is_err(),
        "swapped files are refused"
    );
    let opts = ServeOptions {
        tls: Some(tls::server_config(&cert, &key).unwrap()),
        ..ServeOptions::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let api = Api::new(state(stand_in_node()));
    let server = tokio::spawn(async move {
        serve(listener, api, &opts, async {
            let _ = stopped.await;
        })
        .await;
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls_stream = connector.connect(name, tcp).await.unwrap();
    tls_stream
        .write_all(b"GET /v1/kv/b/k HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls_stream.read_to_end(&mut answer))
        .await
        .expect("answered in time");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut got)).await;
    assert!(!got.starts_with(b"HTTP/1.1 200"));
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("the server stops")
        .unwrap();
}
