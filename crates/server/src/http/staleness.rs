//! `GET /v1/buckets/{bucket}/staleness`: the predicted probability that a
//! read started t ms after a write's ack returns it, for the bucket's N, R
//! and W, from the leg latencies this node measured as a coordinator
//! ([`ringkv_core::staleness`]). Query: `reader=any|replica|non-replica`
//! (who coordinates the read; default `any`: a node picked at random),
//! `trials` (Monte Carlo trials, 1 to [`TRIALS_MAX`]) and `seed`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use ringkv_core::Consistency;
use ringkv_core::pbs::{Reader, TRIALS_DEFAULT};
use ringkv_core::staleness::{Ask, report};

use super::AppState;
use super::error::{ApiError, node_stopped};

/// The most Monte Carlo trials one request may ask for (the model's memory
/// is bounded apart from this; this bounds its time).
pub(super) const TRIALS_MAX: usize = 200_000;

/// The path's suffix that names this route under `/v1/buckets/{bucket}`.
pub(crate) const SUFFIX: &str = "/staleness";

/// The model choices of the query string; anything unknown is an error.
#[derive(Debug, PartialEq)]
struct Query {
    reader: Option<Reader>,
    trials: usize,
    seed: u64,
}

fn parse(q: Option<&str>) -> Result<Query, ApiError> {
    let mut query = Query {
        reader: None,
        trials: TRIALS_DEFAULT,
        seed: 0,
    };
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(value).decode_utf8_lossy();
        match name {
            "reader" => {
                query.reader = Some(match value.as_ref() {
                    "any" => Reader::Any { members: 0 },
                    "replica" => Reader::Replica,
                    "non-replica" => Reader::NonReplica,
                    _ => {
                        return Err(ApiError::bad(format!(
                            "reader={value:?}: give any (a node at random), replica (another \
                             replica of the key) or non-replica"
                        )));
                    }
                })
            }
            "trials" => {
                query.trials = value
                    .parse()
                    .ok()
                    .filter(|t| (1..=TRIALS_MAX).contains(t))
                    .ok_or_else(|| {
                        ApiError::bad(format!("trials={value:?}: give 1 to {TRIALS_MAX}"))
                    })?
            }
            "seed" => {
                query.seed = value.parse().map_err(|_| {
                    ApiError::bad(format!("seed={value:?} is not a number from 0 to 2^64-1"))
                })?
            }
            _ => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter {name:?} for staleness; known: reader, trials, seed"
                )));
            }
        }
    }
    Ok(query)
}

/// Answers `GET /v1/buckets/{bucket}/staleness` (`rest` is the percent-encoded bucket).
pub(crate) async fn staleness(st: &Arc<AppState>, rest: &str, q: Option<&str>) -> Response {
    match staleness_inner(st, rest, q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn staleness_inner(
    st: &Arc<AppState>,
    rest: &str,
    q: Option<&str>,
) -> Result<Response, ApiError> {
    if rest.is_empty() || rest.contains('/') {
        return Err(ApiError::bad(
            "use /v1/buckets/{bucket}/staleness with one bucket (percent-encode '/' in it as %2F)",
        ));
    }
    let bucket: Vec<u8> = percent_decode_str(rest).collect();
    let query = parse(q)?;
    let seen = st.node.inspect(move |n| {
        let props = n.bucket_props(&bucket);
        let members = n.layout().members.len();
        (props, members, n.legs().clone(), bucket)
    });
    let (props, members, legs, bucket) = seen.await.map_err(|_| node_stopped())?;
    let name = String::from_utf8_lossy(&bucket).into_owned();
    if props.consistency == Consistency::Strong {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "strong_bucket",
            format!(
                "bucket {name:?} is strong: its reads are linearizable, never stale; \
                 staleness is predicted for eventual buckets"
            ),
        ));
    }
    let n = props.n.min(members);
    let reader = match query.reader {
        None | Some(Reader::Any { .. }) => Reader::Any { members },
        Some(r) => r,
    };
    let ask = Ask {
        n,
        r: props.r.min(n),
        w: props.w.min(n),
        reader,
        trials: query.trials,
        seed: query.seed,
    };
    // The Monte Carlo takes a while (tens of ms): off the async workers.
    let rep = tokio::task::spawn_blocking(move || report(&name, &legs, ask))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the prediction failed: {e}"),
            )
        })?;
    Ok(axum::Json(rep).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_or_say_what_is_allowed() {
        assert_eq!(
            parse(Some("reader=non-replica&trials=10&seed=3"))
                .ok()
                .unwrap(),
            Query {
                reader: Some(Reader::NonReplica),
                trials: 10,
                seed: 3
            }
        );
        assert_eq!(parse(None).ok().unwrap().trials, TRIALS_DEFAULT);
        for bad in [
            "reader=x",
            "trials=0",
            "trials=999999999",
            "seed=-1",
            "foo=1",
        ] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
