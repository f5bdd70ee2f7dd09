//! The Rust client of ringkv's HTTP API (v1).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ringkv_client::ClientError> {
//! use ringkv_client::{Client, GetResult, RequestOptions};
//!
//! // Fails over to the next endpoint when one cannot be reached.
//! let client = Client::new(vec!["http://127.0.0.1:8080,http://127.0.0.1:8081".into()])?;
//! let ctx = client
//!     .put("default", b"greeting", "hello", None, &RequestOptions::new().w("quorum"))
//!     .await?;
//! match client.get("default", b"greeting", &RequestOptions::new()).await? {
//!     GetResult::Value { value, context } => println!("{value:?} {context}"),
//!     GetResult::Siblings { siblings, .. } => println!("{} siblings", siblings.len()),
//!     GetResult::NotFound { .. } => println!("not found"),
//! }
//! client.delete("default", b"greeting", Some(&ctx), &RequestOptions::new()).await?;
//! # Ok(()) }
//! ```
//!
//! # Failover
//! A client holds a list of endpoints. A request goes to the endpoint that
//! last answered (the first one at the start); when a connection cannot be
//! made it tries the next one, and so on through the list. Reads (`get`,
//! `cluster`, `ring`, `health`, `bucket_get`, `buckets`) and `bucket_set` (setting
//! the same properties twice is harmless) also move on after other transport
//! errors such as a timeout; writes do not, because a write that was sent may
//! have been applied. An HTTP error status never causes failover: the server's answer is
//! returned as [`ClientError::Server`].
//!
//! # HTTPS
//! A node started with `--http-cert`/`--http-key` serves `https://`. Give the
//! client the cluster's CA certificate ([`Client::with_ca`], `ringkv --ca
//! FILE`): a node's certificate must chain to it (its name is not compared
//! with the URL's host; see [`tls`]). Without a CA, `https://` endpoints are
//! refused before anything is sent.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod path;
pub mod tls;
mod types;

use ringkv_core::cluster::{ChangeSpec, ClusterInfo};
use ringkv_core::plan::Plan;
use std::error::Error as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;

pub use error::{Attempt, ClientError};
pub use path::{bucket_path, encode_segment, kv_path, ring_key_path};
pub use ringkv_core::list::KeyPage;
pub use types::{
    BucketInfo, BucketList, BucketPatch, BucketProps, ClusterStatus, GetResult, GroupInfo,
    GroupsStatus, GroupsSummary, HintsStatus, KeyLocation, KeyNode, MemberStatus, PartitionInfo,
    RepairStatus, RequestOptions, RingInfo, SiblingValue, parse_siblings,
};

use path::with_query;
use tls::ClusterCa;
use types::ErrorBody;

/// Name of the header that carries the opaque causal context.
pub const CONTEXT_HEADER: &str = "X-Ringkv-Context";

/// Name of the header that names the node leading a strong key's consensus
/// group when the request was answered.
pub const LEADER_HEADER: &str = "X-Ringkv-Leader";

/// The condition of a compare-and-set on a key of a strong bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition<'a> {
    /// `If-Match: <context>`: apply only if the key is still at the version
    /// a read returned (the read's context).
    IfMatch(&'a str),
    /// `If-None-Match: *`: apply only if the key is absent (never written,
    /// or deleted).
    IfAbsent,
}

impl<'a> Precondition<'a> {
    /// The condition of `if_match` (a context) and `if_absent`, as a CLI or
    /// an API caller gives them: `None` when neither is set.
    pub fn from_parts(if_match: Option<&'a str>, if_absent: bool) -> Option<Self> {
        match (if_match, if_absent) {
            (Some(ctx), _) => Some(Precondition::IfMatch(ctx)),
            (None, true) => Some(Precondition::IfAbsent),
            (None, false) => None,
        }
    }
}

/// What a write of a strong bucket's key answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The key's new context, when the server sent one.
    pub context: Option<String>,
    /// The node that led the key's consensus group (`X-Ringkv-Leader`);
    /// `None` for an eventual bucket.
    pub leader: Option<String>,
}

/// Timeouts of a [`Client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Longest wait for a TCP connection to one endpoint before trying the next.
    pub connect_timeout: Duration,
    /// Longest wait for a whole request to one endpoint. A request with
    /// `timeout_ms` waits at least that long plus two seconds.
    pub request_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// An HTTP client for one ringkv cluster, with failover between endpoints.
///
/// Cheap to share: wrap it in an `Arc` or clone the endpoints into a new one.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    /// `Bearer <token>` sent on every request, when a token was given.
    authorization: Option<HeaderValue>,
    /// The CA that `https://` endpoints' certificates must chain to.
    ca: Option<ClusterCa>,
    endpoints: Vec<String>,
    /// Index of the endpoint that answered last; requests start there.
    preferred: AtomicUsize,
    config: ClientConfig,
}

/// One request, before an endpoint is picked.
/// How long an operator's change to the cluster document may take: the
/// server waits up to 20 s for the manager.
const MANAGER_TIMEOUT_MS: u64 = 25_000;

struct Request<'a> {
    method: Method,
    /// Path and query, starting with `/`.
    path: String,
    context: Option<&'a str>,
    body: Option<Bytes>,
    timeout_ms: Option<u64>,
    /// Whether repeating the request elsewhere after it was sent is harmless.
    idempotent: bool,
    /// `If-Match` / `If-None-Match: *`, for a compare-and-set.
    precondition: Option<Precondition<'a>>,
}

impl Client {
    /// A client for `endpoints`, with default timeouts.
    ///
    /// Each entry may itself be a comma-separated list (as in
    /// `RINGKV_ENDPOINT`); blanks are skipped. An endpoint is `http://host:port`
    /// (optionally with a path prefix); a missing scheme means `http://`.
    /// `https://` endpoints need the cluster's CA: see [`Client::with_ca`].
    pub fn new(endpoints: Vec<String>) -> Result<Self, ClientError> {
        Self::with_config(endpoints, ClientConfig::default())
    }

    /// Like [`Client::new`], with the given timeouts.
    pub fn with_config(endpoints: Vec<String>, config: ClientConfig) -> Result<Self, ClientError> {
        let mut normalized = Vec::new();
        for entry in &endpoints {
            for part in entry.split(',') {
                let part = part.trim();
                if !part.is_empty() {
                    normalized.push(normalize_endpoint(part)?);
                }
            }
        }
        if normalized.is_empty() {
            return Err(ClientError::InvalidEndpoint {
                endpoint: endpoints.join(","),
                reason: "no endpoint given; use e.g. http://127.0.0.1:8080".to_string(),
            });
        }
        let http = build_http(&config, None, &normalized)?;
        Ok(Client {
            http,
            authorization: None,
            ca: None,
            endpoints: normalized,
            preferred: AtomicUsize::new(0),
            config,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request (what a
    /// server started with `--token-file` requires; `ringkv --token` or
    /// `RINGKV_TOKEN`). `None` or a blank token sends none.
    pub fn with_token(mut self, token: Option<&str>) -> Result<Self, ClientError> {
        self.authorization = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                let mut v = HeaderValue::try_from(format!("Bearer {t}")).map_err(|_| {
                    ClientError::InvalidEndpoint {
                        endpoint: self.endpoints.join(","),
                        reason: "the token has characters a header cannot carry; use the \
                                 token as written in the server's token file"
                            .to_string(),
                    }
                })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(self)
    }

    /// Trusts the cluster CA whose PEM certificate is `pem` (e.g. the text
    /// of `ca.crt` from `ringkv cert init`; `ringkv --ca FILE` or
    /// `RINGKV_CA`), so `https://` endpoints can be reached: a node's
    /// certificate must chain to this CA and be valid now. Its name is not
    /// compared with the endpoint's host, because node certificates name node
    /// ids, not addresses; so give the cluster's own CA, not a public one.
    /// Plain `http://` endpoints keep working.
    pub fn with_ca(mut self, pem: &[u8]) -> Result<Self, ClientError> {
        let ca = ClusterCa::from_pem(pem).map_err(|reason| ClientError::InvalidInput {
            what: "CA certificate",
            reason: format!("{reason}; give the cluster's ca.crt (made by `ringkv cert init`)"),
        })?;
        self.http = build_http(&self.config, Some(&ca), &self.endpoints)?;
        self.ca = Some(ca);
        Ok(self)
    }

    /// The endpoints, normalized (scheme added, trailing `/` removed), in failover order.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Reads a key: `GET /v1/kv/{bucket}/{key}` with `r`, `pr`, `timeout_ms`.
    pub async fn get(
        &self,
        bucket: &str,
        key: &[u8],
        opts: &RequestOptions,
    ) -> Result<GetResult, ClientError> {
        Ok(self.get_with_leader(bucket, key, opts).await?.0)
    }

    /// Writes a value: `PUT /v1/kv/{bucket}/{key}` with `w`, `pw`, `timeout_ms`.
    ///
    /// Pass the context of the read this write follows, so the new value
    /// supersedes what that read returned; without one the value is
    /// concurrent with every existing one. Returns the new context.
    pub async fn put(
        &self,
        bucket: &str,
        key: &[u8],
        value: impl Into<Bytes>,
        context: Option<&str>,
        opts: &RequestOptions,
    ) -> Result<String, ClientError> {
        let path = with_query(kv_path(bucket, key)?, &write_params(opts));
        check_context(context)?;
        let (endpoint, resp) = self
            .send(Request {
                method: Method::PUT,
                path,
                context,
                body: Some(value.into()),
                timeout_ms: opts.timeout_ms,
                idempotent: false,
                precondition: None,
            })
            .await?;
        if resp.status().is_success() {
            required_context(&endpoint, &resp)
        } else {
            Err(server_error(endpoint, resp).await)
        }
    }

    /// Deletes a key: `DELETE /v1/kv/{bucket}/{key}` with `w`, `pw`, `timeout_ms`.
    ///
    /// Pass the context of a read so the deletion supersedes what it returned.
    /// Returns the tombstone's context when the server sends one.
    pub async fn delete(
        &self,
        bucket: &str,
        key: &[u8],
        context: Option<&str>,
        opts: &RequestOptions,
    ) -> Result<Option<String>, ClientError> {
        let path = with_query(kv_path(bucket, key)?, &write_params(opts));
        check_context(context)?;
        let (endpoint, resp) = self
            .send(Request {
                method: Method::DELETE,
                path,
                context,
                body: None,
                timeout_ms: opts.timeout_ms,
                idempotent: false,
                precondition: None,
            })
            .await?;
        if resp.status().is_success() {
            optional_context(&endpoint, &resp)
        } else {
            Err(server_error(endpoint, resp).await)
        }
    }

    /// Reads a key like [`Client::get`], and also returns the node that led
    /// the key's consensus group (`X-Ringkv-Leader`; `None` for a key of an
    /// eventual bucket).
    pub async fn get_with_leader(
        &self,
        bucket: &str,
        key: &[u8],
        opts: &RequestOptions,
    ) -> Result<(GetResult, Option<String>), ClientError> {
        let path = with_query(
            kv_path(bucket, key)?,
            &[
                ("r", opts.r.clone()),
                ("pr", opts.pr.clone()),
                ("timeout_ms", opts.timeout_ms.map(|t| t.to_string())),
            ],
        );
        let (endpoint, resp) = self
            .send(Request {
                method: Method::GET,
                path,
                context: None,
                body: None,
                timeout_ms: opts.timeout_ms,
                idempotent: true,
                precondition: None,
            })
            .await?;
        let leader = leader_header(&resp);
        Ok((get_result(endpoint, resp).await?, leader))
    }

    /// Compare-and-set on a key of a strong bucket: writes `value` only if
    /// `precondition` holds when the write is applied.
    ///
    /// Errors to tell apart: [`ClientError::PreconditionFailed`] (nothing
    /// written; it carries the key's current context),
    /// [`ClientError::NoQuorum`] (not applied, retry later) and
    /// [`ClientError::OutcomeUnknown`] (may or may not have applied; see
    /// also [`ClientError::outcome_unknown`]).
    pub async fn put_if(
        &self,
        bucket: &str,
        key: &[u8],
        value: impl Into<Bytes>,
        precondition: Precondition<'_>,
        opts: &RequestOptions,
    ) -> Result<Written, ClientError> {
        self.write_if(bucket, key, Some(value.into()), precondition, opts)
            .await
    }

    /// Conditional delete on a key of a strong bucket: deletes only if
    /// `precondition` holds. Errors as for [`Client::put_if`].
    pub async fn delete_if(
        &self,
        bucket: &str,
        key: &[u8],
        precondition: Precondition<'_>,
        opts: &RequestOptions,
    ) -> Result<Written, ClientError> {
        self.write_if(bucket, key, None, precondition, opts).await
    }

    async fn write_if(
        &self,
        bucket: &str,
        key: &[u8],
        value: Option<Bytes>,
        precondition: Precondition<'_>,
        opts: &RequestOptions,
    ) -> Result<Written, ClientError> {
        let path = with_query(kv_path(bucket, key)?, &write_params(opts));
        if let Precondition::IfMatch(ctx) = precondition {
            check_context(Some(ctx))?;
        }
        let method = if value.is_some() {
            Method::PUT
        } else {
            Method::DELETE
        };
        let (endpoint, resp) = self
            .send(Request {
                method,
                path,
                context: None,
                body: value,
                timeout_ms: opts.timeout_ms,
                idempotent: false,
                precondition: Some(precondition),
            })
            .await?;
        if resp.status().is_success() {
            Ok(Written {
                context: optional_context(&endpoint, &resp)?,
                leader: leader_header(&resp),
            })
        } else {
            Err(server_error(endpoint, resp).await)
        }
    }

    /// One page of `bucket`'s keys: `GET /v1/kv/{bucket}?prefix=&after=&limit=`
    /// (with `r` and `timeout_ms` of `opts`). Keys are bytes, in order;
    /// pass the page's `next` as `after` for the next page (the last page
    /// has none). `limit` is 1 to 10,000 (the server's default: 1,000).
    /// A page may be short, even empty, and still have a `next`: only a
    /// page without one is the last. See the README ("Listing keys") for
    /// what a listing promises under concurrent writes.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: Option<u32>,
        opts: &RequestOptions,
    ) -> Result<KeyPage, ClientError> {
        let mut path = format!(
            "/v1/kv/{}",
            path::checked_segment("bucket", bucket.as_bytes())?
        );
        let mut params: Vec<(&str, String)> = Vec::new();
        if !prefix.is_empty() {
            params.push(("prefix", encode_segment(prefix)));
        }
        if let Some(a) = after {
            params.push(("after", encode_segment(a)));
        }
        let plain = [
            ("limit", limit.map(|l| l.to_string())),
            ("r", opts.r.clone()),
            ("timeout_ms", opts.timeout_ms.map(|t| t.to_string())),
        ];
        for (name, v) in plain {
            if let Some(v) = v {
                params.push((name, encode_segment(v.as_bytes())));
            }
        }
        for (i, (name, v)) in params.iter().enumerate() {
            path.push(if i == 0 { '?' } else { '&' });
            path.push_str(name);
            path.push('=');
            path.push_str(v);
        }
        let mut req = read_request(&path);
        req.timeout_ms = opts.timeout_ms;
        let body: ringkv_core::api::KeysBody = self.get_json_request(req, &path).await?;
        body.to_page().map_err(|e| ClientError::Protocol {
            endpoint: self.endpoints.first().cloned().unwrap_or_default(),
            message: format!("a page of keys with base64 that does not decode: {e}"),
        })
    }

    /// `GET /v1/cluster`: members, liveness and settings as the answering node sees them.
    pub async fn cluster(&self) -> Result<ClusterStatus, ClientError> {
        self.get_json("/v1/cluster").await
    }

    /// `GET /v1/groups`: the consensus groups of strong buckets the
    /// answering node opened (leader, term, indexes).
    pub async fn groups(&self) -> Result<GroupsStatus, ClientError> {
        self.get_json("/v1/groups").await
    }

    /// `GET /v1/repair`: what anti-entropy on the answering node is doing
    /// and has done.
    pub async fn repair_status(&self) -> Result<RepairStatus, ClientError> {
        self.get_json("/v1/repair").await
    }

    /// `POST /v1/repair`: queues the answering node's anti-entropy
    /// exchanges (of `partition`, or all it is a replica of; of the trees
    /// holding `bucket`'s keys, or all) and returns its status at once; the
    /// pass runs in the background (poll [`Client::repair_status`]).
    pub async fn repair(
        &self,
        partition: Option<u32>,
        bucket: Option<&str>,
    ) -> Result<RepairStatus, ClientError> {
        let mut q = vec![];
        if let Some(p) = partition {
            q.push(format!("partition={p}"));
        }
        if let Some(b) = bucket {
            q.push(format!("bucket={}", path::encode_segment(b.as_bytes())));
        }
        let path = if q.is_empty() {
            "/v1/repair".to_string()
        } else {
            format!("/v1/repair?{}", q.join("&"))
        };
        // Queuing exchanges twice is harmless (the queue holds each once).
        let (endpoint, resp) = self
            .send(Request {
                method: Method::POST,
                path: path.clone(),
                context: None,
                body: None,
                timeout_ms: None,
                idempotent: true,
                precondition: None,
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(server_error(endpoint, resp).await);
        }
        let body = read_body(&endpoint, resp).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            endpoint,
            message: format!("{path} answered JSON this client does not understand: {e}"),
        })
    }

    /// `GET /v1/ring`: the preference list of every partition.
    pub async fn ring(&self) -> Result<RingInfo, ClientError> {
        self.get_json("/v1/ring").await
    }

    /// `GET /v1/ring/{bucket}/{key}`: the key's partition, primaries and
    /// fallbacks, with liveness as the answering node sees it.
    pub async fn locate(&self, bucket: &str, key: &[u8]) -> Result<KeyLocation, ClientError> {
        self.get_json(&path::ring_key_path(bucket, key)?).await
    }

    /// `GET /v1/buckets/{bucket}`: the properties in force for `bucket`
    /// (its own, or the defaults; see [`BucketInfo::set`]).
    pub async fn bucket_get(&self, bucket: &str) -> Result<BucketInfo, ClientError> {
        self.get_json(&path::bucket_path(bucket)?).await
    }

    /// `GET /v1/buckets/{bucket}/staleness`: the predicted probability that
    /// a read started t ms after a write's ack returns it, from the leg
    /// latencies the answering node measured. `reader` is `any`, `replica`
    /// or `non-replica` (who coordinates the read; the server's default
    /// when `None`).
    pub async fn staleness(
        &self,
        bucket: &str,
        reader: Option<&str>,
    ) -> Result<ringkv_core::staleness::StalenessReport, ClientError> {
        let mut path = path::bucket_path(bucket)? + "/staleness";
        if let Some(r) = reader {
            path = format!("{path}?reader={}", encode_segment(r.as_bytes()));
        }
        self.get_json(&path).await
    }

    /// `GET /v1/buckets`: every bucket with properties of its own, and the defaults.
    pub async fn buckets(&self) -> Result<BucketList, ClientError> {
        self.get_json("/v1/buckets").await
    }

    /// `PUT /v1/buckets/{bucket}`: changes the properties `patch` sets and
    /// returns the bucket's new properties. Invalid properties are refused
    /// with [`ClientError::Server`] (status 400) whose message says what is
    /// allowed; nothing is changed then.
    pub async fn bucket_set(
        &self,
        bucket: &str,
        patch: &BucketPatch,
    ) -> Result<BucketInfo, ClientError> {
        self.bucket_set_json(bucket, &patch.to_json()).await
    }

    /// Like [`Client::bucket_set`] with the JSON body as given, e.g.
    /// `{"conflict": "lww", "n": 3, "r": "quorum"}` (the server checks it).
    pub async fn bucket_set_json(
        &self,
        bucket: &str,
        patch: &serde_json::Value,
    ) -> Result<BucketInfo, ClientError> {
        let path = path::bucket_path(bucket)?;
        let body = serde_json::to_vec(patch).expect("a JSON value always serializes");
        // Setting the same properties again is harmless, so a request that
        // may have been sent can be repeated on another endpoint.
        let (endpoint, resp) = self
            .send(Request {
                method: Method::PUT,
                path: path.clone(),
                context: None,
                body: Some(Bytes::from(body)),
                timeout_ms: None,
                idempotent: true,
                precondition: None,
            })
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(server_error(endpoint, resp).await);
        }
        let body = read_body(&endpoint, resp).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            endpoint,
            message: format!("{path} answered JSON this client does not understand: {e}"),
        })
    }

    /// `GET /health`: `Ok` once a node serves.
    pub async fn health(&self) -> Result<(), ClientError> {
        let (endpoint, resp) = self.send(read_request("/health")).await?;
        if resp.status() == StatusCode::OK {
            Ok(())
        } else {
            Err(server_error(endpoint, resp).await)
        }
    }

    /// `GET /v1/cluster/layout`: the cluster manager's document (layout in
    /// force, staged changes, a committed target).
    pub async fn cluster_layout(&self) -> Result<ClusterInfo, ClientError> {
        self.get_json("/v1/cluster/layout").await
    }

    /// `POST /v1/cluster/changes`: stages a change; the document after it.
    pub async fn cluster_stage(&self, change: &ChangeSpec) -> Result<ClusterInfo, ClientError> {
        let body = serde_json::to_vec(change).expect("a change always serializes");
        self.manager_request(Method::POST, "/v1/cluster/changes".into(), Some(body))
            .await
    }

    /// `DELETE /v1/cluster/changes/{node}` (or every staged change with
    /// `None`): drops staged changes; the document after it.
    pub async fn cluster_unstage(&self, node: Option<&str>) -> Result<ClusterInfo, ClientError> {
        let path = match node {
            Some(n) => format!(
                "/v1/cluster/changes/{}",
                path::checked_segment("node", n.as_bytes())?
            ),
            None => "/v1/cluster/changes".into(),
        };
        self.manager_request(Method::DELETE, path, None).await
    }

    /// `GET /v1/cluster/plan`: what committing the staged changes would do.
    pub async fn cluster_plan(&self) -> Result<Plan, ClientError> {
        self.get_json("/v1/cluster/plan").await
    }

    /// `POST /v1/cluster/commit?version=V`: commits the staged changes,
    /// planned against layout version `version`.
    pub async fn cluster_commit(&self, version: u64) -> Result<ClusterInfo, ClientError> {
        let path = format!("/v1/cluster/commit?version={version}");
        self.manager_request(Method::POST, path, None).await
    }

    /// A change to the cluster document: not repeated elsewhere once sent
    /// (the error says what happened; `cluster_layout` tells the rest).
    async fn manager_request(
        &self,
        method: Method,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<ClusterInfo, ClientError> {
        let req = Request {
            method,
            path: path.clone(),
            context: None,
            body: body.map(Bytes::from),
            timeout_ms: Some(MANAGER_TIMEOUT_MS),
            idempotent: false,
            precondition: None,
        };
        self.get_json_request(req, &path).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.get_json_request(read_request(path), path).await
    }

    /// Sends `req` (a GET of `path`) and decodes its `200` JSON answer.
    async fn get_json_request<T: DeserializeOwned>(
        &self,
        req: Request<'_>,
        path: &str,
    ) -> Result<T, ClientError> {
        let (endpoint, resp) = self.send(req).await?;
        if resp.status() != StatusCode::OK {
            return Err(server_error(endpoint, resp).await);
        }
        let body = read_body(&endpoint, resp).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            endpoint,
            message: format!("{path} answered JSON this client does not understand: {e}"),
        })
    }

    /// Sends `req` to the preferred endpoint, failing over as described in
    /// the crate docs. Returns the endpoint that answered and its answer.
    async fn send(&self, req: Request<'_>) -> Result<(String, Response), ClientError> {
        if self.ca.is_none()
            && let Some(e) = self.endpoints.iter().find(|e| e.starts_with("https://"))
        {
            return Err(ClientError::InvalidEndpoint {
                endpoint: e.clone(),
                reason: "an https:// endpoint needs the cluster's CA certificate to check the \
                         node's: pass --ca FILE (or RINGKV_CA), e.g. the ca.crt of \
                         `ringkv cert init` (Rust: Client::with_ca)"
                    .to_string(),
            });
        }
        let count = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % count;
        let timeout = match req.timeout_ms {
            Some(ms) => self
                .config
                .request_timeout
                .max(Duration::from_millis(ms).saturating_add(Duration::from_secs(2))),
            None => self.config.request_timeout,
        };
        let mut attempts = Vec::new();
        for k in 0..count {
            let i = (start + k) % count;
            let endpoint = &self.endpoints[i];
            let mut builder = self
                .http
                .request(req.method.clone(), format!("{endpoint}{}", req.path))
                .timeout(timeout);
            if let Some(ctx) = req.context {
                builder = builder.header(CONTEXT_HEADER, ctx);
            }
            builder = match req.precondition {
                Some(Precondition::IfMatch(ctx)) => builder.header(reqwest::header::IF_MATCH, ctx),
                Some(Precondition::IfAbsent) => builder.header(reqwest::header::IF_NONE_MATCH, "*"),
                None => builder,
            };
            if let Some(auth) = &self.authorization {
                builder = builder.header(reqwest::header::AUTHORIZATION, auth.clone());
            }
            if let Some(body) = &req.body {
                builder = builder.body(body.clone());
            }
            match builder.send().await {
                Ok(resp) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok((endpoint.clone(), resp));
                }
                Err(e) => {
                    let not_sent = e.is_connect();
                    let mut reason = if e.is_timeout() {
                        format!("no answer within {} ms", timeout.as_millis())
                    } else if let Some(hint) = certificate_hint(&e) {
                        hint
                    } else if not_sent {
                        format!("cannot connect: {}", root_cause(&e))
                    } else {
                        error_chain(&e)
                    };
                    if !not_sent && !req.idempotent {
                        reason.push_str(" (the write may or may not have been applied)");
                    }
                    attempts.push(Attempt {
                        endpoint: endpoint.clone(),
                        reason,
                        maybe_applied: !not_sent && !req.idempotent,
                    });
                    if !(not_sent || req.idempotent) {
                        break;
                    }
                }
            }
        }
        Err(ClientError::Transport { attempts })
    }
}

/// The reqwest client of a [`Client`]: its timeouts, TLS trusting `ca`.
fn build_http(
    config: &ClientConfig,
    ca: Option<&ClusterCa>,
    endpoints: &[String],
) -> Result<reqwest::Client, ClientError> {
    tls::reqwest_builder(ca)
        .connect_timeout(config.connect_timeout)
        // A server closes a connection that stays idle for its
        // header-read timeout (5 s); dropping idle connections sooner
        // keeps a request from racing that close.
        .pool_idle_timeout(Duration::from_secs(3))
        // Cluster nodes are reached directly, never through a proxy.
        .no_proxy()
        .build()
        .map_err(|e| ClientError::InvalidEndpoint {
            endpoint: endpoints.join(","),
            reason: format!("cannot build the HTTP client: {}", error_chain(&e)),
        })
}

/// What to say when a node's certificate was refused (or a TLS handshake
/// failed): which check failed and what to do.
fn certificate_hint(e: &reqwest::Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(mut err) = cur {
        // An I/O error hides the error it wraps from `source()`.
        while let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            err = inner;
        }
        let tls = err.downcast_ref::<rustls::Error>();
        if let Some(tls) = tls {
            let what = match tls {
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
                | rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature) => {
                    "the node's certificate is not signed by the CA given (--ca / RINGKV_CA); \
                     give the ca.crt of the cluster's certificate directory"
                }
                rustls::Error::InvalidCertificate(_) => {
                    "the node's certificate was refused; check its dates, and that --ca is \
                     the cluster's ca.crt"
                }
                _ => {
                    "the TLS handshake failed; is the endpoint a node serving https:// \
                      (--http-cert)?"
                }
            };
            return Some(format!("TLS: {tls}: {what}"));
        }
        cur = err.source();
    }
    None
}

/// The answer of a GET of a key.
async fn get_result(endpoint: String, resp: Response) -> Result<GetResult, ClientError> {
    match resp.status() {
        StatusCode::OK => {
            let context = required_context(&endpoint, &resp)?;
            let value = read_body(&endpoint, resp).await?;
            Ok(GetResult::Value { value, context })
        }
        StatusCode::MULTIPLE_CHOICES => {
            let body = read_body(&endpoint, resp).await?;
            let (context, siblings) = parse_siblings(&body)
                .map_err(|message| ClientError::Protocol { endpoint, message })?;
            Ok(GetResult::Siblings { context, siblings })
        }
        StatusCode::NOT_FOUND => Ok(GetResult::NotFound {
            context: optional_context(&endpoint, &resp)?,
        }),
        _ => Err(server_error(endpoint, resp).await),
    }
}

fn read_request(path: &str) -> Request<'static> {
    Request {
        method: Method::GET,
        path: path.to_string(),
        context: None,
        body: None,
        timeout_ms: None,
        idempotent: true,
        precondition: None,
    }
}

fn write_params(opts: &RequestOptions) -> [(&'static str, Option<String>); 3] {
    [
        ("w", opts.w.clone()),
        ("pw", opts.pw.clone()),
        ("timeout_ms", opts.timeout_ms.map(|t| t.to_string())),
    ]
}

/// Checks that a context can be sent as a header value.
fn check_context(context: Option<&str>) -> Result<(), ClientError> {
    match context {
        Some(c) if HeaderValue::from_str(c).is_err() || c.is_empty() => {
            Err(ClientError::InvalidInput {
                what: "context",
                reason: "it must be a non-empty token of printable ASCII, as returned by a read"
                    .to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Normalizes one endpoint to `http://host:port[/prefix]` without a trailing `/`.
fn normalize_endpoint(raw: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidEndpoint {
        endpoint: raw.to_string(),
        reason: reason.to_string(),
    };
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| invalid(&format!("{e}; use e.g. http://127.0.0.1:8080")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("use http:// or https:// (with the cluster's CA)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn context_header(endpoint: &str, resp: &Response) -> Result<Option<String>, ClientError> {
    match resp.headers().get(CONTEXT_HEADER) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if !s.is_empty() => Ok(Some(s.to_string())),
            _ => Err(ClientError::Protocol {
                endpoint: endpoint.to_string(),
                message: format!("{CONTEXT_HEADER} header is empty or not ASCII"),
            }),
        },
    }
}

fn optional_context(endpoint: &str, resp: &Response) -> Result<Option<String>, ClientError> {
    context_header(endpoint, resp)
}

fn required_context(endpoint: &str, resp: &Response) -> Result<String, ClientError> {
    context_header(endpoint, resp)?.ok_or_else(|| ClientError::Protocol {
        endpoint: endpoint.to_string(),
        message: format!(
            "{} answer has no {CONTEXT_HEADER} header",
            resp.status().as_u16()
        ),
    })
}

async fn read_body(endpoint: &str, resp: Response) -> Result<Bytes, ClientError> {
    resp.bytes().await.map_err(|e| ClientError::Transport {
        attempts: vec![Attempt {
            endpoint: endpoint.to_string(),
            reason: format!("reading the answer failed: {}", error_chain(&e)),
            maybe_applied: false,
        }],
    })
}

/// Turns an error answer into [`ClientError::Server`] (or `Transport` when
/// even the body cannot be read).
async fn server_error(endpoint: String, resp: Response) -> ClientError {
    let status = resp.status();
    let current = context_header(&endpoint, &resp).ok().flatten();
    let leader = leader_header(&resp);
    let body = match read_body(&endpoint, resp).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    strong_error(
        error_from_body(endpoint, status.as_u16(), &body),
        current,
        leader,
    )
}

/// Turns the answers of strong requests into their own errors: `412`
/// (with the key's current context), `503 no_quorum` (not applied) and
/// `503 outcome_unknown` (may have applied).
fn strong_error(e: ClientError, current: Option<String>, leader: Option<String>) -> ClientError {
    let ClientError::Server {
        status,
        code,
        message,
        endpoint,
        ..
    } = &e
    else {
        return e;
    };
    match (*status, code.as_str()) {
        (412, _) => ClientError::PreconditionFailed {
            current,
            leader,
            message: message.clone(),
            endpoint: endpoint.clone(),
        },
        (503, "no_quorum") => ClientError::NoQuorum {
            message: message.clone(),
            leader,
            endpoint: endpoint.clone(),
        },
        (503, "outcome_unknown") => ClientError::OutcomeUnknown {
            message: message.clone(),
            endpoint: endpoint.clone(),
        },
        _ => e,
    }
}

/// The `X-Ringkv-Leader` header, when present and readable.
fn leader_header(resp: &Response) -> Option<String> {
    resp.headers()
        .get(LEADER_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn error_from_body(endpoint: String, status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if e.outcome.as_deref() == Some("unknown") => ClientError::OutcomeUnknown {
            message: e.message,
            endpoint,
        },
        Ok(e) => ClientError::Server {
            status,
            code: e.error,
            message: e.message,
            required: e.required,
            acks: e.acks,
            endpoint,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error")
                    .to_string()
            } else {
                text.chars().take(300).collect()
            };
            ClientError::Server {
                status,
                code: format!("http_{status}"),
                message,
                required: None,
                acks: None,
                endpoint,
            }
        }
    }
}

/// The innermost cause of an error, e.g. `Connection refused (os error 111)`.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// An error and its causes, joined by `: `, repeats removed.
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized_and_split() {
        let c = Client::new(vec![
            "http://127.0.0.1:8080/, 127.0.0.1:8081".into(),
            "http://h:1/prefix/".into(),
        ])
        .unwrap();
        assert_eq!(
            c.endpoints(),
            [
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8081",
                "http://h:1/prefix"
            ]
        );
    }

    #[test]
    fn bad_endpoints_are_refused() {
        for bad in ["http://", "ftp://x", "http://x:1/?a=b", "http://x:99999"] {
            assert!(
                matches!(
                    Client::new(vec![bad.into()]),
                    Err(ClientError::InvalidEndpoint { .. })
                ),
                "{bad}"
            );
        }
        assert!(Client::new(vec![]).is_err());
        assert!(Client::new(vec![" , ".into()]).is_err());
    }

    #[tokio::test]
    async fn https_needs_a_ca_and_a_ca_must_be_pem() {
        let c = Client::new(vec!["https://127.0.0.1:1".into()]).unwrap();
        let e = c.health().await.unwrap_err();
        assert!(
            matches!(&e, ClientError::InvalidEndpoint { reason, .. } if reason.contains("--ca")),
            "{e}"
        );
        let e = Client::new(vec!["https://127.0.0.1:1".into()])
            .unwrap()
            .with_ca(b"not a certificate")
            .unwrap_err();
        assert!(e.to_string().contains("ca.crt"), "{e}");
    }

    #[test]
    fn contexts_must_be_header_safe() {
        assert!(check_context(None).is_ok());
        assert!(check_context(Some("abc-_123")).is_ok());
        assert!(check_context(Some("a\nb")).is_err());
        assert!(check_context(Some("")).is_err());
    }

    #[test]
    fn non_json_errors_keep_status_and_body() {
        match error_from_body("http://x".into(), 502, b"bad gateway\n") {
            ClientError::Server { code, message, .. } => {
                assert_eq!(code, "http_502");
                assert_eq!(message, "bad gateway");
            }
            e => panic!("{e:?}"),
        }
        match error_from_body("http://x".into(), 404, b"") {
            ClientError::Server { message, .. } => assert_eq!(message, "Not Found"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn json_errors_carry_code_and_counts() {
        let e = error_from_body(
            "http://x".into(),
            503,
            br#"{"error":"quorum_not_reached","message":"1 of 2 acks","required":2,"acks":1}"#,
        );
        assert!(matches!(
            e,
            ClientError::Server { status: 503, required: Some(2), acks: Some(1), ref code, .. } if code == "quorum_not_reached"
        ));
    }

    #[test]
    fn strong_errors_are_typed() {
        let e = |status, body: &[u8]| error_from_body("http://x".into(), status, body);
        let pf = strong_error(
            e(412, br#"{"error":"precondition_failed","message":"m"}"#),
            Some("ctx1".into()),
            Some("n2".into()),
        );
        assert!(
            matches!(&pf, ClientError::PreconditionFailed { current: Some(c), leader: Some(l), .. } if c == "ctx1" && l == "n2"),
            "{pf:?}"
        );
        assert_eq!(
            (pf.status(), pf.code()),
            (Some(412), Some("precondition_failed"))
        );
        assert!(!pf.outcome_unknown());
        let nq = strong_error(
            e(503, br#"{"error":"no_quorum","message":"m"}"#),
            None,
            None,
        );
        assert!(matches!(nq, ClientError::NoQuorum { .. }), "{nq:?}");
        assert!(!nq.outcome_unknown());
        let unknown = e(
            503,
            br#"{"error":"outcome_unknown","message":"m","outcome":"unknown"}"#,
        );
        assert!(
            matches!(unknown, ClientError::OutcomeUnknown { .. }),
            "{unknown:?}"
        );
        assert!(unknown.outcome_unknown());
        assert!(
            unknown
                .to_string()
                .contains("may or may not have been applied")
        );
        // Other errors stay server errors.
        let other = strong_error(
            e(503, br#"{"error":"quorum_not_reached","message":"m"}"#),
            None,
            None,
        );
        assert!(matches!(other, ClientError::Server { .. }), "{other:?}");
    }

    #[test]
    fn preconditions_from_parts() {
        assert_eq!(Precondition::from_parts(None, false), None);
        assert_eq!(
            Precondition::from_parts(None, true),
            Some(Precondition::IfAbsent)
        );
        assert_eq!(
            Precondition::from_parts(Some("c"), false),
            Some(Precondition::IfMatch("c"))
        );
    }

    #[tokio::test]
    async fn unreachable_endpoints_are_all_tried() {
        // Port 1 on loopback: nothing listens there, so connecting fails at once.
        let c = Client::new(vec!["http://127.0.0.1:1,http://127.0.0.1:2".into()]).unwrap();
        match c.get("b", b"k", &RequestOptions::new()).await {
            Err(ClientError::Transport { attempts }) => {
                let tried: Vec<&str> = attempts.iter().map(|a| a.endpoint.as_str()).collect();
                assert_eq!(tried, ["http://127.0.0.1:1", "http://127.0.0.1:2"]);
            }
            other => panic!("{other:?}"),
        }
        // A write also fails over when nothing was sent.
        match c.put("b", b"k", "v", None, &RequestOptions::new()).await {
            Err(ClientError::Transport { attempts }) => assert_eq!(attempts.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
