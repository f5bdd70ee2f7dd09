//! The CLI, the Rust client and `ringkv bench` against a real node serving
//! its HTTP API over TLS (`--http-cert/--http-key`, a certificate of the
//! cluster CA) with bearer tokens (`--token-file`): `--ca` and `--token`
//! reach it; without `--ca`, with another cluster's CA, or without a token,
//! each fails and says why.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{eventually, free_port, make_certs};

const TOKEN: &str = "0123456789abcdef-test-token";

/// One `ringkv server` process; dropped, it is killed.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a one-node cluster `n1` serving https with the certificates in
/// `certs` and the token file `tokens`; returns it and its https URL.
fn start_node(dir: &Path, certs: &Path, tokens: &Path) -> (Node, String) {
    let rpc = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let log = dir.join("n1.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args([
            "server",
            "--node-id",
            "n1",
            "--listen",
            &rpc,
            "--http",
            &http,
        ])
        .args(["--initial-cluster", &format!("n1={rpc}")])
        .args(["--n", "1", "--r", "1", "--w", "1"])
        .arg("--data-dir")
        .arg(dir.join("n1"))
        .arg("--certs")
        .arg(certs)
        .arg("--token-file")
        .arg(tokens)
        .arg("--http-cert")
        .arg(certs.join("n1.crt"))
        .arg("--http-key")
        .arg(certs.join("n1.key"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("starting ringkv server");
    (Node { child, log }, format!("https://{http}"))
}

/// Runs `ringkv ARGS` with no RINGKV_* variables from the caller's
/// environment.
fn ringkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(args)
        .env_remove("RINGKV_ENDPOINT")
        .env_remove("RINGKV_TOKEN")
        .env_remove("RINGKV_CA")
        .stdin(Stdio::null())
        .output()
        .expect("running ringkv")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that `out` failed with exit code 2 and that its stderr says `what`.
fn assert_fails_saying(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(what),
        "stderr does not say {what:?}: {}",
        text(out)
    );
}

#[tokio::test]
async fn cli_client_and_bench_reach_an_https_node_with_ca_and_token() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    make_certs(&certs, &["n1"]);
    let other = tmp.path().join("other");
    make_certs(&other, &[]);
    let tokens = tmp.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!("[[token]]\nname = \"test\"\nsecret = \"{TOKEN}\"\npermissions = [\"*\"]\n"),
    )
    .unwrap();
    let (node, url) = start_node(tmp.path(), &certs, &tokens);
    let ca = certs.join("ca.crt");
    let ca_pem = std::fs::read(&ca).unwrap();

    // The Rust client: /health needs no token, only the CA.
    let client = ringkv_client::Client::new(vec![url.clone()])
        .unwrap()
        .with_ca(&ca_pem)
        .unwrap();
    eventually(Duration::from_secs(30), async || {
        client.health().await.map_err(|e| {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            format!("{url} is not healthy: {e}\nnode log:\n{log}")
        })
    })
    .await;

    let ca = ca.to_str().unwrap();
    let with = |extra: &[&str], args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["--endpoint", &url]);
        all.extend_from_slice(extra);
        ringkv(&all)
    };
    let trusted = ["--ca", ca, "--token", TOKEN];
    let out = with(&trusted, &["put", "greeting", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = with(&trusted, &["get", "greeting"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), "hello");
    // The same through the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["get", "greeting"])
        .env("RINGKV_ENDPOINT", &url)
        .env("RINGKV_CA", ca)
        .env("RINGKV_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // Without --ca: refused before anything is sent, saying what to pass.
    assert_fails_saying(&with(&["--token", TOKEN], &["get", "greeting"]), "--ca");
    // Another cluster's CA: the node's certificate is refused, and why.
    let wrong = other.join("ca.crt");
    let wrong = ["--ca", wrong.to_str().unwrap(), "--token", TOKEN];
    assert_fails_saying(&with(&wrong, &["get", "greeting"]), "not signed by the CA");
    // A CA file that is missing or not a certificate: named, with what to do.
    let missing = tmp.path().join("nope.crt");
    let missing = missing.to_str().unwrap();
    let out = with(&["--ca", missing], &["status"]);
    assert_fails_saying(&out, missing);
    assert_fails_saying(&out, "ringkv cert init");
    let garbage = tokens.to_str().unwrap();
    assert_fails_saying(&with(&["--ca", garbage], &["status"]), garbage);
    // The CA but no token: the server's 401.
    assert_fails_saying(&with(&["--ca", ca], &["get", "greeting"]), "401");
    // Every command takes --ca: status too.
    let out = with(&trusted, &["status"]);
    assert!(out.status.success(), "{}", text(&out));

    bench_over_https(tmp.path(), &url, ca);
    drop(node);
}

/// `ringkv bench` with `--ca` and `--token` (both HTTP clients): every
/// operation succeeds; without the token every one is a 401.
fn bench_over_https(dir: &Path, url: &str, ca: &str) {
    for http_client in ["hyper", "reqwest"] {
        let json = dir.join(format!("bench-{http_client}.json"));
        let out = ringkv(&[
            "bench",
            "--endpoint",
            url,
            "--ca",
            ca,
            "--token",
            TOKEN,
            "--ops",
            "200",
            "--concurrency",
            "4",
            "--keys",
            "50",
            "--http-client",
            http_client,
            "--json",
            json.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let total = &report["run"]["total"];
        assert_eq!(total["ok"], 200, "{report:#}");
        assert_eq!(total["errors"], 0, "{report:#}");
        assert!(
            !report["command"].as_str().unwrap().contains(TOKEN),
            "the token is recorded: {report:#}"
        );
    }
    let json = dir.join("bench-no-token.json");
    let out = ringkv(&[
        "bench",
        "--endpoint",
        url,
        "--ca",
        ca,
        "--ops",
        "20",
        "--concurrency",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["run"]["total"]["ok"], 0, "{report:#}");
    assert_eq!(
        report["run"]["total"]["errors_by_kind"]["http 401"], 20,
        "{report:#}"
    );
    // Without --ca the bench refuses https:// before it starts.
    assert_fails_saying(
        &ringkv(&["bench", "--endpoint", url, "--token", TOKEN, "--ops", "1"]),
        "--ca",
    );
}
