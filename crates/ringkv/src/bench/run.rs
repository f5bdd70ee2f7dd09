//! The load generator proper: client tasks, the load phase, closed- and
//! open-loop measurement, and the progress line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use hyper::header::HeaderValue;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::http::{Access, Answer, Endpoint, HttpClient, Transport, reqwest_client};
use super::keys::{KeyDist, Op, Rng, Workload};
use super::stats::{PhaseReport, Stats};

/// Which API the generator speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Target {
    /// ringkv's API: `/v1/kv/{bucket}/{key}` with contexts.
    Ringkv,
    /// The HTTP ceiling server: `PUT/GET /kv/{key}`, no contexts.
    Ceiling,
}

/// When the measured phase ends.
#[derive(Clone, Copy, Debug)]
pub(super) enum Stop {
    /// After this long (operations in flight are completed and counted).
    Duration(Duration),
    /// After this many operations in all.
    Ops(u64),
}

/// Everything a run needs, checked.
#[derive(Debug)]
pub(super) struct Plan {
    /// The API.
    pub target: Target,
    /// Client `i` talks to `endpoints[i % len]`.
    pub endpoints: Vec<Endpoint>,
    /// `--ca` and `--token`.
    pub access: Access,
    /// The operation mix.
    pub workload: Workload,
    /// The key chooser.
    pub dist: KeyDist,
    /// Number of keys.
    pub keys: u64,
    /// The value written by every write.
    pub value: Bytes,
    /// Concurrent clients, each with one connection.
    pub concurrency: usize,
    /// End of the measured phase.
    pub stop: Stop,
    /// Open loop at this many operations per second in all; closed loop when `None`.
    pub rate: Option<f64>,
    /// Path up to the key: `/v1/kv/{bucket}/` or `/kv/`.
    pub prefix: String,
    /// Query of reads (`?r=2`) or empty.
    pub read_query: String,
    /// Query of writes (`?w=2`) or empty.
    pub write_query: String,
    /// Write every key once before measuring.
    pub load: bool,
    /// Run the workload this long, unmeasured, before measuring.
    pub warmup: Option<Duration>,
    /// Send updates without a context.
    pub blind: bool,
    /// Longest wait for one request.
    pub timeout: Duration,
    /// The HTTP client library.
    pub http_client: HttpClient,
    /// Seed of the key and operation choices.
    pub seed: u64,
}

/// The latest context the generator saw for each key, so that updates
/// supersede what was there instead of piling up siblings.
struct ContextCache {
    shards: Vec<Mutex<HashMap<u64, HeaderValue>>>,
}

const CACHE_SHARDS: u64 = 64;

impl ContextCache {
    fn new() -> Self {
        ContextCache {
            shards: (0..CACHE_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, key: u64) -> &Mutex<HashMap<u64, HeaderValue>> {
        &self.shards[(key % CACHE_SHARDS) as usize]
    }

    fn get(&self, key: u64) -> Option<HeaderValue> {
        self.shard(key)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }

    fn put(&self, key: u64, ctx: HeaderValue) {
        self.shard(key)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, ctx);
    }
}

/// State shared by the client tasks of a run.
struct Shared {
    plan: Plan,
    /// `None` for the ceiling (no contexts) and read-only runs.
    contexts: Option<ContextCache>,
    /// Operations completed in the current phase.
    done: AtomicU64,
    /// Of which failed.
    errors: AtomicU64,
    /// Operations (or keys, in the load phase) handed out so far.
    claimed: AtomicU64,
}

/// Result of one operation that got a valid answer.
enum Note {
    Plain,
    NotFound,
    Siblings,
}

struct Client {
    id: usize,
    transport: Transport,
    rng: Rng,
    stats: Stats,
    path: String,
}

impl Client {
    fn set_path(&mut self, sh: &Shared, key: u64, query: &str) {
        self.path.clear();
        self.path.push_str(&sh.plan.prefix);
        let _ = write!(self.path, "key{key}");
        self.path.push_str(query);
    }

    async fn get(&mut self, sh: &Shared, key: u64) -> Result<(Answer, Note), String> {
        self.set_path(sh, key, &sh.plan.read_query);
        let a = self
            .transport
            .call(Method::GET, &self.path, None, None, sh.plan.timeout)
            .await
            .map_err(|f| f.kind)?;
        let note = match a.status {
            200 => Note::Plain,
            300 => Note::Siblings,
            404 => Note::NotFound,
            s => return Err(format!("http {s}")),
        };
        Ok((a, note))
    }

    async fn put(
        &mut self,
        sh: &Shared,
        key: u64,
        context: Option<HeaderValue>,
    ) -> Result<(), String> {
        self.set_path(sh, key, &sh.plan.write_query);
        let a = self
            .transport
            .call(
                Method::PUT,
                &self.path,
                context.as_ref(),
                Some(&sh.plan.value),
                sh.plan.timeout,
            )
            .await
            .map_err(|f| f.kind)?;
        if !(200..300).contains(&a.status) {
            return Err(format!("http {}", a.status));
        }
        if let (Some(cache), Some(ctx)) = (&sh.contexts, a.context) {
            cache.put(key, ctx);
        }
        Ok(())
    }

    async fn op(&mut self, sh: &Shared, op: Op, key: u64) -> Result<Note, String> {
        match op {
            Op::Read => {
                let (a, note) = self.get(sh, key).await?;
                if let (Some(cache), Some(ctx)) = (&sh.contexts, a.context) {
                    cache.put(key, ctx);
                }
                Ok(note)
            }
            Op::Update => {
                let ctx = match (&sh.contexts, sh.plan.blind) {
                    (Some(cache), false) => cache.get(key),
                    _ => None,
                };
                self.put(sh, key, ctx).await.map(|()| Note::Plain)
            }
            Op::Rmw => {
                // A 300 is fine: writing with its context resolves the siblings.
                let (a, note) = self.get(sh, key).await?;
                let ctx = if sh.plan.target == Target::Ringkv {
                    a.context
                } else {
                    None
                };
                self.put(sh, key, ctx).await.map(|()| note)
            }
            Op::Insert => {
                // Loading an existing key (a bucket used before) must not add
                // a sibling: read its context first. Not timed.
                let ctx = if sh.plan.target == Target::Ringkv {
                    self.get(sh, key).await?.0.context
                } else {
                    None
                };
                self.put(sh, key, ctx).await.map(|()| Note::Plain)
            }
        }
    }

    fn record(&mut self, sh: &Shared, op: Op, result: Result<Note, String>, latency: Duration) {
        let s = self.stats.op(op);
        match result {
            Ok(note) => {
                s.ok(latency);
                match note {
                    Note::Plain => {}
                    Note::NotFound => s.not_found += 1,
                    Note::Siblings => s.siblings += 1,
                }
            }
            Err(kind) => {
                s.error(&kind);
                sh.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        sh.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The load phase: keys are handed out one by one until all are written.
    async fn load(mut self, sh: Arc<Shared>) -> Stats {
        loop {
            let key = sh.claimed.fetch_add(1, Ordering::Relaxed);
            if key >= sh.plan.keys {
                break;
            }
            let t0 = Instant::now();
            let r = self.op(&sh, Op::Insert, key).await;
            let failed_to_connect = matches!(&r, Err(k) if k.starts_with("connect"));
            self.record(&sh, Op::Insert, r, t0.elapsed());
            if failed_to_connect {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.stats
    }

    /// The measured phase, from `start`.
    async fn run(mut self, sh: Arc<Shared>, start: Instant, stop: Stop) -> (Self, Stats) {
        let plan = &sh.plan;
        let end = match stop {
            Stop::Duration(d) => Some(start + d),
            Stop::Ops(_) => None,
        };
        // Open loop: this client's share of the rate, its slot staggered so
        // the clients do not fire together.
        let interval = plan
            .rate
            .map(|r| Duration::from_secs_f64(plan.concurrency as f64 / r));
        let mut next =
            interval.map(|iv| start + iv.mul_f64(self.id as f64 / plan.concurrency as f64));
        loop {
            if let Stop::Ops(n) = stop
                && sh.claimed.fetch_add(1, Ordering::Relaxed) >= n
            {
                break;
            }
            let begin = match (next, interval) {
                (Some(intended), Some(iv)) => {
                    if let Some(end) = end {
                        if intended >= end {
                            break;
                        }
                        let now = Instant::now();
                        if now >= end {
                            // Still behind when time is up: count what was never sent.
                            let behind = (end - intended).as_secs_f64() / iv.as_secs_f64();
                            self.stats.unsent += behind.ceil() as u64;
                            break;
                        }
                    }
                    next = Some(intended + iv);
                    if intended > Instant::now() {
                        // Ahead of schedule: wait. The timer fires up to a
                        // millisecond late; that lag is the generator's own,
                        // so the clock starts when it fires.
                        tokio::time::sleep_until(intended).await;
                        Instant::now()
                    } else {
                        // Behind schedule (earlier answers were slow): the
                        // clock starts when the request was due, so the
                        // server's queueing is counted (no coordinated omission).
                        intended
                    }
                }
                _ => {
                    let now = Instant::now();
                    if end.is_some_and(|e| now >= e) {
                        break;
                    }
                    now
                }
            };
            let op = plan.workload.next_op(&mut self.rng);
            let key = plan.dist.next(&mut self.rng);
            let r = self.op(&sh, op, key).await;
            let failed_to_connect = matches!(&r, Err(k) if k.starts_with("connect"));
            self.record(&sh, op, r, begin.elapsed());
            if failed_to_connect && interval.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let stats = std::mem::take(&mut self.stats);
        (self, stats)
    }
}

/// The report of a whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Outcome {
    /// The load phase, when there was one.
    pub load: Option<PhaseReport>,
    /// The measured phase.
    pub run: PhaseReport,
}

/// Opens one transport per client.
async fn open_clients(
    plan: &Plan,
    shared: Option<&reqwest::Client>,
) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(plan.concurrency);
    for id in 0..plan.concurrency {
        let endpoint = plan.endpoints[id % plan.endpoints.len()].clone();
        let transport = Transport::open(
            plan.http_client,
            endpoint,
            shared,
            plan.timeout,
            plan.access.ca.as_ref(),
        )
        .await?;
        clients.push(Client {
            id,
            transport,
            rng: Rng::new(plan.seed, id as u64),
            stats: Stats::default(),
            path: String::with_capacity(128),
        });
    }
    Ok(clients)
}

/// Runs the plan: the load phase if asked, then the measured phase.
pub(super) async fn execute(plan: Plan) -> anyhow::Result<Outcome> {
    let contexts =
        (plan.target == Target::Ringkv && plan.workload.writes()).then(ContextCache::new);
    let shared_reqwest = match plan.http_client {
        HttpClient::Reqwest => Some(reqwest_client(plan.timeout, plan.access.ca.as_ref())?),
        HttpClient::Hyper => None,
    };
    let sh = Arc::new(Shared {
        plan,
        contexts,
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        claimed: AtomicU64::new(0),
    });
    let tty = std::io::stderr().is_terminal();

    let load = if sh.plan.load {
        let clients = open_clients(&sh.plan, shared_reqwest.as_ref()).await?;
        let start = Instant::now();
        let progress = tokio::spawn(progress(sh.clone(), "load", start, sh.plan.stop, tty));
        let handles: Vec<_> = clients
            .into_iter()
            .map(|c| tokio::spawn(c.load(sh.clone())))
            .collect();
        let stats = join(handles).await;
        let elapsed = start.elapsed();
        progress.abort();
        end_progress(tty);
        let report = stats?.report(elapsed);
        if report.total.ok == 0 && report.total.errors > 0 {
            let kinds: Vec<String> = report
                .total
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            anyhow::bail!(
                "the load phase failed: every write failed ({})",
                kinds.join(", ")
            );
        }
        eprintln!(
            "load: {} keys written in {:.2} s ({:.0}/s), {} errors",
            report.total.ok, report.elapsed_s, report.total.throughput, report.total.errors
        );
        Some(report)
    } else {
        None
    };

    let mut clients = open_clients(&sh.plan, shared_reqwest.as_ref()).await?;
    if let Some(warmup) = sh.plan.warmup {
        let (c, stats) = phase(&sh, clients, "warm-up", Stop::Duration(warmup), tty).await?;
        clients = c;
        let r = stats.report(warmup);
        eprintln!(
            "warm-up: {} ops in {:.2} s, {} errors (not counted)",
            r.total.count, r.elapsed_s, r.total.errors
        );
    }
    let cpu_before = process_cpu_s();
    let start = Instant::now();
    let (_, stats) = phase(&sh, clients, "run", sh.plan.stop, tty).await?;
    let elapsed = start.elapsed();
    let mut run = stats.report(elapsed);
    run.generator_cpu_s = cpu_before
        .zip(process_cpu_s())
        .map(|(before, after)| after - before);
    Ok(Outcome { load, run })
}

/// Runs the clients until `stop`, with a progress line; returns them (with
/// their connections) and their merged stats.
async fn phase(
    sh: &Arc<Shared>,
    clients: Vec<Client>,
    name: &'static str,
    stop: Stop,
    tty: bool,
) -> anyhow::Result<(Vec<Client>, Stats)> {
    sh.done.store(0, Ordering::Relaxed);
    sh.errors.store(0, Ordering::Relaxed);
    sh.claimed.store(0, Ordering::Relaxed);
    let start = Instant::now();
    let progress = tokio::spawn(progress(sh.clone(), name, start, stop, tty));
    let handles: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(c.run(sh.clone(), start, stop)))
        .collect();
    let mut back = Vec::with_capacity(handles.len());
    let mut all = Stats::default();
    let mut failure = None;
    for h in handles {
        match h.await {
            Ok((c, s)) => {
                all.merge(&s);
                back.push(c);
            }
            Err(e) => failure = Some(e),
        }
    }
    progress.abort();
    end_progress(tty);
    match failure {
        Some(e) => Err(anyhow::anyhow!("a client task failed: {e}")),
        None => Ok((back, all)),
    }
}

async fn join(handles: Vec<tokio::task::JoinHandle<Stats>>) -> anyhow::Result<Stats> {
    let mut all = Stats::default();
    for h in handles {
        let s = h
            .await
            .map_err(|e| anyhow::anyhow!("a client task failed: {e}"))?;
        all.merge(&s);
    }
    Ok(all)
}

/// CPU time (user + system) of this process so far, in seconds (Linux:
/// /proc/self/stat, in clock ticks of 1/100 s).
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after `)`.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Prints the progress line: every second on a terminal (rewritten in
/// place), every five seconds as a plain line otherwise.
async fn progress(sh: Arc<Shared>, phase: &'static str, start: Instant, stop: Stop, tty: bool) {
    let period = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let mut tick = tokio::time::interval_at(start + period, period);
    let mut last = (start, 0u64);
    loop {
        let now = tick.tick().await;
        let done = sh.done.load(Ordering::Relaxed);
        let errors = sh.errors.load(Ordering::Relaxed);
        let secs = now.duration_since(last.0).as_secs_f64().max(1e-9);
        let current = (done - last.1) as f64 / secs;
        last = (now, done);
        let elapsed = now.duration_since(start).as_secs();
        let mut line = match (phase, stop) {
            ("load", _) => format!("load {elapsed:>3}s  {done}/{} keys", sh.plan.keys),
            (_, Stop::Ops(n)) => format!("{phase} {elapsed:>3}s  {done}/{n} ops"),
            (_, Stop::Duration(d)) => {
                format!("{phase} {elapsed:>3}s/{}s  {done} ops", d.as_secs_f64())
            }
        };
        let _ = write!(line, "  {current:.0} ops/s  {errors} errors");
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

fn end_progress(tty: bool) {
    if tty {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}
