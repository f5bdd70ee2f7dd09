//! `ringkv list`: pages through a bucket's keys and prints them.

use std::process::ExitCode;

use anyhow::Context as _;
use bytes::Bytes;
use ringkv_client::{KeyPage, RequestOptions, encode_segment};
use ringkv_core::api::KeysBody;

use crate::cli::ListArgs;
use crate::kv::{client, write_stdout};

/// `ringkv list`: every key of the bucket (with the prefix, after `--after`,
/// up to `--limit`), one per line in key order, or one JSON object with
/// `--json`. A key that is not UTF-8 prints percent-encoded (`%FF`) in the
/// plain form; `--json` gives it exactly (base64, in `keys_b64`).
pub(crate) async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let c = client(&args.common.connection)?;
    let opts = RequestOptions {
        r: args.r.clone(),
        timeout_ms: args.common.timeout_ms,
        ..RequestOptions::default()
    };
    let bucket = &args.common.bucket;
    let mut after: Option<Bytes> = args.after.as_ref().map(|a| Bytes::from(a.clone()));
    let mut all = KeyPage::default();
    let mut printed = 0u64;
    loop {
        let want = match args.limit {
            Some(l) => u64::from(args.page_size).min(l - printed.min(l)),
            None => u64::from(args.page_size),
        };
        if want == 0 {
            // Stopped by --limit: where to go on.
            all.next = all.keys.last().cloned().or(after.clone());
            break;
        }
        let page = c
            .list(
                bucket,
                args.prefix.as_bytes(),
                after.as_deref(),
                Some(u32::try_from(want).unwrap_or(u32::MAX)),
                &opts,
            )
            .await
            .with_context(|| format!("list {bucket} failed"))?;
        printed += page.keys.len() as u64;
        if !args.json {
            let mut out = Vec::new();
            for k in &page.keys {
                match std::str::from_utf8(k) {
                    Ok(s) => out.extend_from_slice(s.as_bytes()),
                    Err(_) => out.extend_from_slice(encode_segment(k).as_bytes()),
                }
                out.push(b'\n');
            }
            write_stdout(&out)?;
        }
        all.keys.extend(page.keys);
        match page.next {
            Some(n) => after = Some(n),
            None => {
                all.next = None;
                break;
            }
        }
    }
    if args.json {
        let text = serde_json::to_string(&KeysBody::from_page(&all))?;
        write_stdout(format!("{text}\n").as_bytes())?;
    } else if let Some(n) = &all.next {
        eprintln!("next: {}", String::from_utf8_lossy(n));
    }
    Ok(ExitCode::SUCCESS)
}
