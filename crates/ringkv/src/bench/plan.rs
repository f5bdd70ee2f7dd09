//! Turning the options of one `ringkv bench` run into a [`Plan`] (checked,
//! endpoints resolved) and into the [`Settings`] its JSON records.

use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;

use super::run::{Plan, Stop};
use super::{DistKind, RunArgs, Settings, Target, Workload, http, keys};

/// Checks the options and turns them into a plan (resolving endpoints).
pub(super) async fn plan(args: &RunArgs) -> anyhow::Result<(Plan, Settings)> {
    check_run_args(args)?;
    let dist = keys::KeyDist::new(
        args.dist,
        args.keys,
        args.zipf_theta,
        args.hot_keys,
        args.hot_ops,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let access = access(args)?;
    let mut endpoints = Vec::new();
    for part in args.endpoint.split(',').filter(|p| !p.trim().is_empty()) {
        endpoints.push(http::resolve(part, &access).await?);
    }
    if endpoints.is_empty() {
        bail!("--endpoint is empty; give e.g. http://127.0.0.1:8080");
    }
    let prefix = key_prefix(args)?;
    let query = |name: &str, v: &Option<String>| match v {
        Some(v) => format!("?{name}={v}"),
        None => String::new(),
    };
    let stop = match (args.duration, args.ops) {
        (_, Some(n)) => Stop::Ops(n),
        (Some(d), None) => Stop::Duration(d),
        (None, None) => Stop::Duration(Duration::from_secs(10)),
    };
    let urls = endpoints.iter().map(|e| e.url.clone()).collect();
    let plan = Plan {
        target: args.target,
        endpoints,
        access,
        workload: args.workload,
        dist,
        keys: args.keys,
        value: make_value(args.value_bytes),
        concurrency: args.concurrency,
        stop,
        rate: args.rate,
        prefix,
        read_query: query("r", &args.r),
        write_query: query("w", &args.w),
        load: args.load,
        warmup: args.warmup,
        blind: args.blind_updates,
        timeout: args.timeout,
        http_client: args.http_client,
        seed: args.seed,
    };
    Ok((plan, settings(args, urls, stop)))
}

/// Reads `--ca` and `--token`.
fn access(args: &RunArgs) -> anyhow::Result<http::Access> {
    let ca = match &args.ca {
        None => None,
        Some(path) => {
            let pem = crate::kv::read_ca(path)?;
            let ca = ringkv_client::tls::ClusterCa::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!(
                    "bad --ca (or RINGKV_CA) {}: {e}; give the cluster's ca.crt (made by \
                     `ringkv cert init`)",
                    path.display()
                )
            })?;
            Some(ca)
        }
    };
    let auth = match args
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => {
            let mut v =
                hyper::header::HeaderValue::try_from(format!("Bearer {t}")).map_err(|_| {
                    anyhow::anyhow!(
                        "bad --token (or RINGKV_TOKEN): it has characters a header cannot carry"
                    )
                })?;
            v.set_sensitive(true);
            Some(v)
        }
    };
    Ok(http::Access { ca, auth })
}

/// Refuses options out of range, before anything is sent.
fn check_run_args(args: &RunArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.concurrency > 10_000 {
        bail!("--concurrency must be from 1 to 10000");
    }
    if args.ops == Some(0) {
        bail!("--ops must be at least 1");
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate must be a positive number of operations per second");
    }
    if args.value_bytes > 64 * 1024 * 1024 {
        bail!("--value-bytes must be at most 64 MiB");
    }
    if args.target == Target::Ceiling && (args.r.is_some() || args.w.is_some()) {
        bail!("--r and --w apply to ringkv only, not to --target ceiling");
    }
    Ok(())
}

/// The path before the key in every request: `/v1/kv/{bucket}/` for
/// ringkv, `/kv/` for the ceiling server.
fn key_prefix(args: &RunArgs) -> anyhow::Result<String> {
    Ok(match args.target {
        Target::Ringkv => {
            if matches!(args.bucket.as_str(), "" | "." | "..") {
                bail!(
                    "--bucket {:?} cannot be a URL path segment; use a name such as bench",
                    args.bucket
                );
            }
            format!(
                "/v1/kv/{}/",
                ringkv_client::encode_segment(args.bucket.as_bytes())
            )
        }
        Target::Ceiling => "/kv/".to_string(),
    })
}

/// The settings of a run as its JSON records them.
fn settings(args: &RunArgs, endpoints: Vec<String>, stop: Stop) -> Settings {
    Settings {
        target: args.target,
        endpoints,
        workload: args.workload,
        dist: args.dist,
        zipf_theta: (args.dist == DistKind::Zipfian).then_some(args.zipf_theta),
        hotspot: (args.dist == DistKind::Hotspot).then_some((args.hot_keys, args.hot_ops)),
        keys: args.keys,
        value_bytes: args.value_bytes,
        concurrency: args.concurrency,
        duration_s: match stop {
            Stop::Duration(d) => Some(d.as_secs_f64()),
            Stop::Ops(_) => None,
        },
        ops: args.ops,
        rate: args.rate,
        r: args.r.clone(),
        w: args.w.clone(),
        bucket: (args.target == Target::Ringkv).then(|| args.bucket.clone()),
        load: args.load,
        warmup_s: args.warmup.map(|d| d.as_secs_f64()),
        blind_updates: args.blind_updates,
        threads: args.threads,
        http_client: args.http_client,
        seed: args.seed,
    }
}

/// One line describing a run.
pub(super) fn describe(s: &Settings) -> String {
    let mix = match s.workload {
        Workload::A => "50% read / 50% update",
        Workload::B => "95% read / 5% update",
        Workload::C => "read only",
        Workload::W => "update only",
        Workload::Rmw => "read-modify-write",
    };
    let dist = match (s.zipf_theta, s.hotspot) {
        (Some(t), _) => format!("zipfian (theta {t})"),
        (_, Some((k, o))) => format!(
            "hotspot ({:.0}% of ops on {:.0}% of keys)",
            o * 100.0,
            k * 100.0
        ),
        _ => s.dist.name().to_string(),
    };
    let length = match (s.duration_s, s.ops) {
        (_, Some(n)) => format!("{n} ops"),
        (Some(d), None) => format!("{d} s"),
        _ => String::new(),
    };
    let mode = match s.rate {
        Some(r) => format!("open loop at {r} ops/s"),
        None => "closed loop".to_string(),
    };
    let target = match s.target {
        Target::Ringkv => format!("ringkv bucket {:?}", s.bucket.as_deref().unwrap_or("")),
        Target::Ceiling => "ceiling server".to_string(),
    };
    format!(
        "workload {} ({mix}), {dist} over {} keys, {}-byte values, {} clients, {mode}, {length}; {target} at {}",
        s.workload.name().to_uppercase(),
        s.keys,
        s.value_bytes,
        s.concurrency,
        s.endpoints.join(",")
    )
}

/// A value of `len` printable bytes (deterministic).
fn make_value(len: usize) -> Bytes {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|i| ALPHABET[(i * 7 + i / 36) % ALPHABET.len()])
        .collect::<Vec<u8>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_asked_size() {
        assert_eq!(make_value(100).len(), 100);
        assert!(make_value(0).is_empty());
    }
}
