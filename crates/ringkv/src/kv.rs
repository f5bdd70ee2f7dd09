//! The kv commands (`put`, `get`, `delete`), the admin views (`status`,
//! `ring`) and bucket properties (`bucket get|set|list`).

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use ringkv_client::{
    BucketInfo, BucketList, BucketProps, Client, ClientError, ClusterStatus, GetResult,
    GroupsSummary, KeyLocation, Precondition, RepairStatus, RequestOptions, RingInfo, SiblingValue,
    Written,
};

use crate::cli::{
    AdminArgs, BucketCommand, Connection, DeleteArgs, GetArgs, PutArgs, RepairArgs, RingArgs,
    bucket_patch,
};

/// Exit code of `get` when the key has no value.
const EXIT_NOT_FOUND: u8 = 1;
/// Exit code of `put`/`delete` when `--if-match`/`--if-absent` did not hold.
const EXIT_PRECONDITION: u8 = 3;
/// Exit code of a write whose outcome is unknown (it may have applied).
const EXIT_UNKNOWN: u8 = 4;

pub(crate) fn client(conn: &Connection) -> anyhow::Result<Client> {
    let client = Client::new(vec![conn.endpoint.clone()])
        .context("bad --endpoint (or RINGKV_ENDPOINT)")?
        .with_token(conn.token.as_deref())
        .context("bad --token (or RINGKV_TOKEN)")?;
    match &conn.ca {
        None => Ok(client),
        Some(path) => {
            let pem = read_ca(path)?;
            client
                .with_ca(&pem)
                .with_context(|| format!("bad --ca (or RINGKV_CA) {}", path.display()))
        }
    }
}

/// Reads the `--ca` file, saying which file and what to do when it cannot.
pub(crate) fn read_ca(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read --ca (or RINGKV_CA) {}: give the cluster's CA certificate, the \
             ca.crt in the directory of `ringkv cert init`",
            path.display()
        )
    })
}

/// `ringkv put KEY VALUE`: prints the new context to stderr.
pub(crate) async fn put(args: PutArgs) -> anyhow::Result<ExitCode> {
    let value: Vec<u8> = if args.value == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("cannot read the value from stdin")?;
        buf
    } else {
        args.value.into_encoded_bytes()
    };
    let opts = RequestOptions {
        w: args.w,
        pw: args.pw,
        timeout_ms: args.common.timeout_ms,
        ..RequestOptions::default()
    };
    let what = format!("put {}/{}", args.common.bucket, args.key);
    let client = client(&args.common.connection)?;
    let (bucket, key) = (&args.common.bucket, args.key.as_bytes());
    match Precondition::from_parts(args.if_match.as_deref(), args.if_absent) {
        Some(pre) => {
            let written = client.put_if(bucket, key, value, pre, &opts).await;
            conditional_written(&what, written)
        }
        None => match client
            .put(bucket, key, value, args.context.as_deref(), &opts)
            .await
        {
            Ok(ctx) => {
                eprintln!("context: {ctx}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => write_failed(&what, e),
        },
    }
}

/// What a conditional `put` or `delete` prints: the new context and the
/// group's leader; or why it did not apply.
fn conditional_written(
    what: &str,
    written: Result<Written, ClientError>,
) -> anyhow::Result<ExitCode> {
    match written {
        Ok(w) => {
            if let Some(ctx) = w.context {
                eprintln!("context: {ctx}");
            }
            if let Some(leader) = w.leader {
                eprintln!("leader: {leader}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => write_failed(what, e),
    }
}

/// The exit of a failed write: a precondition that did not hold (exit 3,
/// with the key's current context), an unknown outcome (exit 4), or an
/// error (exit 2).
fn write_failed(what: &str, e: ClientError) -> anyhow::Result<ExitCode> {
    if let ClientError::PreconditionFailed { current, .. } = &e {
        eprintln!(
            "precondition failed: {what} did not apply; the key is not at the version \
             --if-match names, or it exists (--if-absent). Nothing was written."
        );
        match current {
            Some(ctx) => eprintln!("context: {ctx}"),
            None => eprintln!("context: (none: the key was never written)"),
        }
        return Ok(ExitCode::from(EXIT_PRECONDITION));
    }
    if e.outcome_unknown() {
        eprintln!(
            "outcome unknown: {what} may or may not have been applied ({e}); read the key to \
             tell, then retry if it did not"
        );
        return Ok(ExitCode::from(EXIT_UNKNOWN));
    }
    Err(anyhow::Error::new(e).context(format!("{what} failed")))
}

/// `ringkv get KEY`: the value (or each sibling, marked) to stdout, the
/// context to stderr; exit code 1 when there is no value.
pub(crate) async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let opts = RequestOptions {
        r: args.r,
        pr: args.pr,
        timeout_ms: args.common.timeout_ms,
        ..RequestOptions::default()
    };
    let result = client(&args.common.connection)?
        .get(&args.common.bucket, args.key.as_bytes(), &opts)
        .await
        .with_context(|| format!("get {}/{} failed", args.common.bucket, args.key))?;
    let mut out = Vec::new();
    render_get(&result, &mut out);
    write_stdout(&out)?;
    if let Some(ctx) = result.context() {
        eprintln!("context: {ctx}");
    }
    match result {
        GetResult::NotFound { context } => {
            let why = if context.is_some() {
                "it was deleted"
            } else {
                "it was never written or is fully deleted"
            };
            eprintln!("not found: {}/{} ({why})", args.common.bucket, args.key);
            Ok(ExitCode::from(EXIT_NOT_FOUND))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// What `get` prints to stdout: a value as its raw bytes; siblings each after
/// a marker line, each followed by a newline.
fn render_get(result: &GetResult, out: &mut Vec<u8>) {
    match result {
        GetResult::Value { value, .. } => out.extend_from_slice(value),
        GetResult::Siblings { siblings, .. } => {
            let total = siblings.len();
            for (i, s) in siblings.iter().enumerate() {
                match s {
                    SiblingValue::Value(v) => {
                        out.extend_from_slice(
                            format!("--- sibling {} of {total} ---\n", i + 1).as_bytes(),
                        );
                        out.extend_from_slice(v);
                        out.push(b'\n');
                    }
                    SiblingValue::Deleted => out.extend_from_slice(
                        format!("--- sibling {} of {total} (deleted) ---\n", i + 1).as_bytes(),
                    ),
                }
            }
        }
        GetResult::NotFound { .. } => {}
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// `ringkv delete KEY`: prints the tombstone's context to stderr when the
/// server returns one.
pub(crate) async fn delete(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let opts = RequestOptions {
        w: args.w,
        pw: args.pw,
        timeout_ms: args.common.timeout_ms,
        ..RequestOptions::default()
    };
    let what = format!("delete {}/{}", args.common.bucket, args.key);
    let client = client(&args.common.connection)?;
    let (bucket, key) = (&args.common.bucket, args.key.as_bytes());
    if let Some(pre) = Precondition::from_parts(args.if_match.as_deref(), args.if_absent) {
        let written = client.delete_if(bucket, key, pre, &opts).await;
        return conditional_written(&what, written);
    }
    match client
        .delete(bucket, key, args.context.as_deref(), &opts)
        .await
    {
        Ok(ctx) => {
            if let Some(ctx) = ctx {
                eprintln!("context: {ctx}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => write_failed(&what, e),
    }
}

/// `ringkv status`.
pub(crate) async fn status(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let status = client(&args.connection)?
        .cluster()
        .await
        .context("cannot get the cluster status")?;
    let text = if args.json {
        serde_json::to_string_pretty(&status)? + "\n"
    } else {
        render_status(&status)
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `ringkv ring`, or `ringkv ring --key K`.
pub(crate) async fn ring(args: RingArgs) -> anyhow::Result<ExitCode> {
    let client = client(&args.admin.connection)?;
    let text = if let Some(key) = &args.key {
        let loc = client
            .locate(&args.bucket, key.as_bytes())
            .await
            .with_context(|| format!("cannot locate {}/{key}", args.bucket))?;
        if args.admin.json {
            serde_json::to_string_pretty(&loc)? + "\n"
        } else {
            render_location(&loc)
        }
    } else {
        let ring = client.ring().await.context("cannot get the ring")?;
        if args.admin.json {
            serde_json::to_string_pretty(&ring)? + "\n"
        } else {
            render_ring(&ring)
        }
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `ringkv repair`: queues a pass on every member the endpoint knows an
/// HTTP address of, waits until every one is idle (unless `--no-wait`), and
/// prints what each did during the pass.
pub(crate) async fn repair(args: RepairArgs) -> anyhow::Result<ExitCode> {
    let conn = &args.admin.connection;
    let seed = client(conn)?;
    let status = seed
        .cluster()
        .await
        .context("cannot get the cluster status")?;
    let scheme = if conn.endpoint.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let mut nodes = vec![];
    for m in &status.members {
        let Some(addr) = m.http_addr.as_deref().filter(|a| !a.is_empty()) else {
            eprintln!("{}: no HTTP address known, skipped", m.id);
            continue;
        };
        let c = client(&Connection {
            endpoint: format!("{scheme}://{addr}"),
            token: conn.token.clone(),
            ca: conn.ca.clone(),
        })?;
        let before = c
            .repair_status()
            .await
            .with_context(|| format!("cannot reach {} at {addr}", m.id))?;
        let queued = c
            .repair(args.partition, args.bucket.as_deref())
            .await
            .with_context(|| format!("{} refused the repair", m.id))?;
        nodes.push((m.id.clone(), c, before, queued.queued_now));
    }
    let started = std::time::Instant::now();
    let after = follow_repair(&nodes, args.no_wait, args.timeout_s).await?;
    let rows: Vec<RepairRow> = nodes
        .iter()
        .zip(&after)
        .map(|((id, _, before, queued), a)| RepairRow {
            node: id.clone(),
            exchanges_queued: *queued,
            keys_compared: a.keys_compared - before.keys_compared,
            keys_sent: a.keys_sent - before.keys_sent,
            keys_repaired: a.keys_repaired - before.keys_repaired,
            bytes_sent: a.bytes_sent - before.bytes_sent,
            tombstones_purged: a.tombstones_purged - before.tombstones_purged,
            done: a.idle(),
        })
        .collect();
    let text = if args.admin.json {
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        render_repair(&rows, started.elapsed(), args.no_wait)
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Polls every node of a repair pass until each is idle and its counters
/// stopped moving (unless `no_wait`), within `timeout_s`; their last status.
async fn follow_repair(
    nodes: &[(String, Client, RepairStatus, u64)],
    no_wait: bool,
    timeout_s: u64,
) -> anyhow::Result<Vec<RepairStatus>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_s);
    let mut after: Vec<RepairStatus> = vec![];
    loop {
        let mut now = vec![];
        for (id, c, _, _) in nodes {
            let s = c
                .repair_status()
                .await
                .with_context(|| format!("cannot follow the repair on {id}"))?;
            now.push(s);
        }
        // Done when every node is idle and nothing changed since the last
        // look: the last repairs a node sent may still be on their way when
        // its exchanges end.
        let settled = now.iter().all(RepairStatus::idle)
            && now.len() == after.len()
            && now
                .iter()
                .zip(&after)
                .all(|(a, b)| work_done(a) == work_done(b));
        after = now;
        if no_wait || settled {
            break;
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the repair pass is still running after {} s (--timeout-s); it goes on in the \
                 background: see GET /v1/repair on each node",
                timeout_s
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(after)
}

/// The counters of a node's repair work, to see whether it still moves.
fn work_done(s: &RepairStatus) -> [u64; 6] {
    [
        s.exchanges,
        s.exchanges_in_sync,
        s.keys_compared,
        s.keys_sent,
        s.keys_repaired,
        s.tombstones_purged,
    ]
}

/// What one node did during a repair pass.
#[derive(Debug, serde::Serialize)]
struct RepairRow {
    node: String,
    exchanges_queued: u64,
    keys_compared: u64,
    keys_sent: u64,
    keys_repaired: u64,
    bytes_sent: u64,
    tombstones_purged: u64,
    done: bool,
}

fn render_repair(rows: &[RepairRow], took: std::time::Duration, no_wait: bool) -> String {
    let mut out = format!(
        "{:<10} {:>9} {:>13} {:>9} {:>13} {:>12} {:>10}\n",
        "node", "exchanges", "keys compared", "keys sent", "keys repaired", "bytes sent", "purged"
    );
    for r in rows {
        out += &format!(
            "{:<10} {:>9} {:>13} {:>9} {:>13} {:>12} {:>10}\n",
            r.node,
            r.exchanges_queued,
            r.keys_compared,
            r.keys_sent,
            r.keys_repaired,
            r.bytes_sent,
            r.tombstones_purged
        );
    }
    let repaired: u64 = rows.iter().map(|r| r.keys_repaired).sum();
    if no_wait {
        out += "queued; the pass runs in the background (GET /v1/repair on each node)\n";
    } else {
        out += &format!(
            "repair pass done in {:.1} s: {repaired} keys repaired\n",
            took.as_secs_f64()
        );
    }
    out
}

/// `ringkv bucket get|set|list`.
pub(crate) async fn bucket(cmd: BucketCommand) -> anyhow::Result<ExitCode> {
    let text = match cmd {
        BucketCommand::Get(args) => {
            let bucket = args.bucket().to_string();
            let info = client(&args.admin.connection)?
                .bucket_get(&bucket)
                .await
                .with_context(|| format!("cannot get the properties of bucket {bucket}"))?;
            if args.admin.json {
                serde_json::to_string_pretty(&info)? + "\n"
            } else {
                render_bucket(&info)
            }
        }
        BucketCommand::Set(args) => {
            let patch = bucket_patch(&args.props).map_err(anyhow::Error::msg)?;
            let info = client(&args.admin.connection)?
                .bucket_set_json(&args.bucket, &patch)
                .await
                .with_context(|| format!("cannot set the properties of bucket {}", args.bucket))?;
            if args.admin.json {
                serde_json::to_string_pretty(&info)? + "\n"
            } else {
                render_bucket(&info)
            }
        }
        BucketCommand::List(args) => {
            let list = client(&args.connection)?
                .buckets()
                .await
                .context("cannot list the buckets")?;
            if args.json {
                serde_json::to_string_pretty(&list)? + "\n"
            } else {
                render_bucket_list(&list)
            }
        }
    };
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// One property per line, then whether they are the bucket's own.
fn render_bucket(b: &BucketInfo) -> String {
    let origin = if b.set {
        "set for this bucket"
    } else {
        "defaults: nothing set for this bucket"
    };
    let mut rows = vec![vec![
        "bucket".to_string(),
        format!("{} ({origin})", b.bucket),
    ]];
    rows.extend(prop_rows(&b.props));
    table(&rows)
}

fn prop_rows(p: &BucketProps) -> Vec<Vec<String>> {
    [
        ("n", p.n.to_string()),
        ("r", p.r.to_string()),
        ("w", p.w.to_string()),
        ("pr", p.pr.to_string()),
        ("pw", p.pw.to_string()),
        ("conflict", p.conflict.clone()),
        ("consistency", p.consistency.clone()),
        ("siblings_warn", p.siblings_warn.to_string()),
        ("siblings_max", p.siblings_max.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), v])
    .collect()
}

fn render_bucket_list(l: &BucketList) -> String {
    let mut rows = vec![
        [
            "BUCKET", "N", "R", "W", "PR", "PW", "CONFLICT", "WARN", "MAX",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let row = |name: &str, p: &BucketProps| {
        vec![
            name.to_string(),
            p.n.to_string(),
            p.r.to_string(),
            p.w.to_string(),
            p.pr.to_string(),
            p.pw.to_string(),
            p.conflict.clone(),
            p.siblings_warn.to_string(),
            p.siblings_max.to_string(),
        ]
    };
    for b in &l.buckets {
        rows.push(row(&b.bucket, &b.props));
    }
    rows.push(row("(defaults)", &l.defaults));
    table(&rows)
}

fn render_status(s: &ClusterStatus) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "RPC ADDR".to_string(),
        "HTTP ADDR".to_string(),
        "ALIVE".to_string(),
        "OWNED".to_string(),
        "REPLICATED".to_string(),
        "HINTS HELD".to_string(),
    ]];
    for m in &s.members {
        let hints = match &s.hints {
            Some(h) if m.id != s.node => h.by_target.get(&m.id).copied().unwrap_or(0).to_string(),
            _ => "-".to_string(),
        };
        rows.push(vec![
            m.id.clone(),
            m.rpc_addr.clone(),
            m.http_addr.clone().unwrap_or_else(|| "-".to_string()),
            match (m.alive, m.liveness.as_deref()) {
                (true, _) => "yes".to_string(),
                (false, Some(l)) => l.to_uppercase(),
                (false, None) => "NO".to_string(),
            },
            m.partitions_owned.to_string(),
            m.partitions_replicated.to_string(),
            hints,
        ]);
    }
    let alive = s.members.iter().filter(|m| m.alive).count();
    let hints = match &s.hints {
        None => "hints:           (not reported by this server)\n".to_string(),
        Some(h) => format!(
            "hints held:      {} of at most {}{}\n\
             hints delivered: {}, fallback writes: {}, refused as full: {}\n",
            h.pending,
            h.max,
            if h.full {
                " - FULL: this node refuses writes as a fallback until handoff makes room"
            } else {
                ""
            },
            h.delivered,
            h.hinted_writes,
            h.refused,
        ),
    };
    let groups = render_groups(s.groups.as_ref());
    format!(
        "answered by:     {}\n\
         layout version:  {}\n\
         ring size:       {}\n\
         n / r / w:       {} / {} / {}\n\
         members alive:   {alive} of {}\n\
         {hints}\
         read repairs:    {}\n\
         \n{}\n\
         partitions without a quorum: {}\n\
         {groups}",
        s.node,
        s.layout_version,
        s.ring_size,
        s.n,
        s.r,
        s.w,
        s.members.len(),
        s.read_repairs,
        table(&rows),
        s.partitions_without_quorum
    )
}

/// The consensus groups' lines of `ringkv status` (none from a server
/// without strong buckets).
fn render_groups(groups: Option<&GroupsSummary>) -> String {
    match groups {
        None => String::new(),
        Some(g) => format!(
            "consensus groups: {} opened ({} active, {} led by this node), {} proposals in \
             flight\ngroups without a leader: {}\n",
            g.opened,
            g.active,
            g.leading,
            g.proposals_in_flight,
            if g.without_leader.is_empty() {
                "none".to_string()
            } else {
                g.without_leader
                    .iter()
                    .map(|p| format!("partition {p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
    }
}

fn render_location(l: &KeyLocation) -> String {
    let mut rows = vec![vec![
        "NODE".to_string(),
        "ROLE".to_string(),
        "ALIVE".to_string(),
    ]];
    for n in &l.nodes {
        let alive = if n.alive { "yes" } else { "no" };
        rows.push(vec![n.node.clone(), n.role.clone(), alive.to_string()]);
    }
    format!(
        "{}/{}: hash {}, partition {} of {}, n={}, layout version {}\n\n{}",
        l.bucket,
        l.key,
        l.hash,
        l.partition,
        l.ring_size,
        l.n,
        l.layout_version,
        table(&rows)
    )
}

fn render_ring(r: &RingInfo) -> String {
    let mut rows = vec![vec!["PARTITION".to_string(), "PREFERENCE LIST".to_string()]];
    for p in &r.partitions {
        rows.push(vec![p.partition.to_string(), p.preference_list.join(", ")]);
    }
    format!(
        "layout version {}, ring size {}, n={}\n\n{}",
        r.layout_version,
        r.ring_size,
        r.n,
        table(&rows)
    )
}

/// Left-aligned columns separated by two spaces, one row per line.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    table_aligned(rows, false)
}

/// Columns separated by two spaces, one row per line; the first column is
/// left-aligned, the others too unless `numbers_right` (figures line up on
/// their last digit).
pub(crate) fn table_aligned(rows: &[Vec<String>], numbers_right: bool) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = std::iter::repeat_n(' ', widths[c] - cell.chars().count());
            if c > 0 {
                line.push_str("  ");
            }
            if numbers_right && c > 0 {
                line.extend(pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringkv_client::{HintsStatus, MemberStatus, PartitionInfo};

    #[test]
    fn value_is_printed_raw() {
        let mut out = Vec::new();
        render_get(
            &GetResult::Value {
                value: Bytes::from_static(&[0xff, b'a']),
                context: "c".into(),
            },
            &mut out,
        );
        assert_eq!(out, [0xff, b'a']);
    }

    #[test]
    fn siblings_are_marked() {
        let mut out = Vec::new();
        render_get(
            &GetResult::Siblings {
                context: "c".into(),
                siblings: vec![
                    SiblingValue::Value(Bytes::from_static(b"one")),
                    SiblingValue::Deleted,
                    SiblingValue::Value(Bytes::from_static(b"three")),
                ],
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "--- sibling 1 of 3 ---\none\n--- sibling 2 of 3 (deleted) ---\n--- sibling 3 of 3 ---\nthree\n"
        );
    }

    #[test]
    fn buckets_render() {
        let props = BucketProps {
            n: 3,
            r: 2,
            w: 2,
            pr: 0,
            pw: 0,
            conflict: "lww".into(),
            consistency: "eventual".into(),
            siblings_warn: 25,
            siblings_max: 100,
        };
        let text = render_bucket(&BucketInfo {
            bucket: "carts".into(),
            props: props.clone(),
            set: true,
        });
        assert!(
            text.starts_with("bucket         carts (set for this bucket)\n"),
            "{text}"
        );
        assert!(text.contains("conflict       lww\n"), "{text}");
        let text = render_bucket_list(&BucketList {
            buckets: vec![],
            defaults: props,
        });
        assert!(text.contains("(defaults)  3  2  2  0   0   lww"), "{text}");
    }

    #[test]
    fn tables_align() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["long".into(), "x".into(), "".into()],
        ]);
        assert_eq!(t, "A     BB  C\nlong  x\n");
    }

    #[test]
    fn groups_render() {
        let text = render_groups(Some(&GroupsSummary {
            opened: 4,
            active: 2,
            leading: 1,
            without_leader: vec![5, 9],
            proposals_in_flight: 3,
        }));
        assert!(
            text.contains(
                "consensus groups: 4 opened (2 active, 1 led by this node), 3 proposals in flight"
            ),
            "{text}"
        );
        assert!(
            text.contains("groups without a leader: partition 5, partition 9"),
            "{text}"
        );
        let none = render_groups(Some(&GroupsSummary::default()));
        assert!(none.contains("groups without a leader: none"), "{none}");
        assert_eq!(render_groups(None), "");
    }

    #[test]
    fn status_and_ring_render() {
        let s = ClusterStatus {
            node: "n1".into(),
            layout_version: 1,
            ring_size: 8,
            n: 3,
            r: 2,
            w: 2,
            members: vec![MemberStatus {
                id: "n1".into(),
                rpc_addr: "127.0.0.1:7081".into(),
                http_addr: None,
                alive: true,
                liveness: Some("alive".into()),
                incarnation: Some(7),
                partitions_owned: 8,
                partitions_replicated: 8,
            }],
            partitions_without_quorum: 3,
            hints: None,
            groups: None,
            read_repairs: 0,
        };
        let text = render_status(&s);
        assert!(
            text.contains("n1  127.0.0.1:7081  -          yes    8      8           -"),
            "{text}"
        );
        assert!(text.contains("partitions without a quorum: 3"));
        assert!(!text.contains("consensus groups"), "{text}");
        let mut s2 = s.clone();
        s2.members.push(MemberStatus {
            id: "n2".into(),
            rpc_addr: "127.0.0.1:7082".into(),
            http_addr: None,
            alive: false,
            liveness: Some("down".into()),
            incarnation: None,
            partitions_owned: 0,
            partitions_replicated: 8,
        });
        s2.hints = Some(HintsStatus {
            pending: 7,
            by_target: [("n2".to_string(), 7)].into(),
            max: 7,
            full: true,
            ..HintsStatus::default()
        });
        let text = render_status(&s2);
        assert!(
            text.contains("hints held:      7 of at most 7 - FULL"),
            "{text}"
        );
        assert!(text.contains("DOWN   0      8           7"), "{text}");
        let r = RingInfo {
            layout_version: 1,
            ring_size: 8,
            n: 3,
            partitions: vec![PartitionInfo {
                partition: 0,
                preference_list: vec!["n1".into(), "n2".into()],
            }],
        };
        assert!(render_ring(&r).contains("0          n1, n2"));
    }
}
