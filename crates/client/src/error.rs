//! What can go wrong talking to ringkv.

use std::fmt;

/// One failed attempt to reach an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The endpoint tried, e.g. `http://127.0.0.1:8080`.
    pub endpoint: String,
    /// Why it failed, e.g. `connection refused`.
    pub reason: String,
    /// A write was sent and no answer came: it may have been applied.
    pub maybe_applied: bool,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.endpoint, self.reason)
    }
}

/// An error from [`Client`](crate::Client).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status. `code` and `message` are the
    /// server's (`{"error": code, "message": message}`); when the body was not
    /// such JSON, `code` is `http_<status>` and `message` the start of the body.
    #[error("{message} (HTTP {status}, {code}{})", quorum_suffix(*required, *acks))]
    Server {
        /// HTTP status, e.g. 503.
        status: u16,
        /// Machine-readable error code, e.g. `quorum_not_reached`.
        code: String,
        /// What happened and what to do, for people.
        message: String,
        /// For quorum errors: how many replies or acks were needed.
        required: Option<u64>,
        /// For quorum errors: how many arrived.
        acks: Option<u64>,
        /// The endpoint that answered.
        endpoint: String,
    },
    /// No endpoint could be reached, or the request failed in transit. For a
    /// write that failed after it was sent (e.g. a timeout), the write may or
    /// may not have been applied.
    #[error("request failed: {}", join_attempts(attempts))]
    Transport {
        /// Every endpoint tried, in order, with why it failed.
        attempts: Vec<Attempt>,
    },
    /// The server answered something this client does not understand (a
    /// missing context header, malformed JSON, bad base64).
    #[error("unexpected response from {endpoint}: {message}")]
    Protocol {
        /// The endpoint that answered.
        endpoint: String,
        /// What was wrong.
        message: String,
    },
    /// A conditional write (`If-Match` / `If-None-Match: *`, strong buckets
    /// only) did not apply: the key is not at the version the condition
    /// named, or exists. Nothing was written (`412 precondition_failed`).
    #[error("precondition failed: {message} (HTTP 412, current context {})", current.as_deref().unwrap_or("none"))]
    PreconditionFailed {
        /// The key's current context (its `X-Ringkv-Context`), to retry with
        /// after reading the value; `None` when the key was never written.
        current: Option<String>,
        /// The node that led the key's consensus group, when named.
        leader: Option<String>,
        /// The server's explanation.
        message: String,
        /// The endpoint that answered.
        endpoint: String,
    },
    /// A strong request was not applied: the key's consensus group has no
    /// majority, or no leader (`503 no_quorum`). Retrying later is safe.
    #[error("not applied, no quorum: {message} (HTTP 503, no_quorum)")]
    NoQuorum {
        /// The server's explanation.
        message: String,
        /// The node that led the key's consensus group, when named.
        leader: Option<String>,
        /// The endpoint that answered.
        endpoint: String,
    },
    /// A strong write was proposed and no answer came in time: it may or
    /// may not have been applied (`503 outcome_unknown`, `"outcome":
    /// "unknown"`). Read the key to tell.
    #[error(
        "outcome unknown, the write may or may not have been applied: {message} \
         (HTTP 503, outcome_unknown)"
    )]
    OutcomeUnknown {
        /// The server's explanation.
        message: String,
        /// The endpoint that answered.
        endpoint: String,
    },
    /// An endpoint is not a usable `http://host:port` URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },
    /// A bucket, key or context that cannot be sent over HTTP.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// `"bucket"`, `"key"` or `"context"`.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status of a server error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Server { status, .. } => Some(*status),
            ClientError::PreconditionFailed { .. } => Some(412),
            ClientError::NoQuorum { .. } | ClientError::OutcomeUnknown { .. } => Some(503),
            _ => None,
        }
    }

    /// The server's error code (e.g. `quorum_not_reached`), if this is a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } => Some(code),
            ClientError::PreconditionFailed { .. } => Some("precondition_failed"),
            ClientError::NoQuorum { .. } => Some("no_quorum"),
            ClientError::OutcomeUnknown { .. } => Some("outcome_unknown"),
            _ => None,
        }
    }

    /// Whether a write that failed with this error may nevertheless have
    /// been applied: the server said the outcome is unknown, or the request
    /// was sent and no answer came (a timeout or a dropped connection).
    /// `false` means it was definitely not applied (or was a read).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ClientError::OutcomeUnknown { .. } => true,
            ClientError::Transport { attempts } => attempts.iter().any(|a| a.maybe_applied),
            _ => false,
        }
    }
}

fn quorum_suffix(required: Option<u64>, acks: Option<u64>) -> String {
    match (required, acks) {
        (Some(r), Some(a)) => format!(", required {r}, got {a}"),
        (Some(r), None) => format!(", required {r}"),
        (None, Some(a)) => format!(", got {a}"),
        (None, None) => String::new(),
    }
}

fn join_attempts(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return "no endpoint was tried".to_string();
    }
    attempts
        .iter()
        .map(Attempt::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_shows_message_status_code_and_counts() {
        let e = ClientError::Server {
            status: 503,
            code: "quorum_not_reached".into(),
            message: "only 1 of 2 replicas answered".into(),
            required: Some(2),
            acks: Some(1),
            endpoint: "http://x".into(),
        };
        assert_eq!(
            e.to_string(),
            "only 1 of 2 replicas answered (HTTP 503, quorum_not_reached, required 2, got 1)"
        );
        assert_eq!(e.status(), Some(503));
        assert_eq!(e.code(), Some("quorum_not_reached"));
    }

    #[test]
    fn transport_error_names_every_endpoint() {
        let e = ClientError::Transport {
            attempts: vec![
                Attempt {
                    endpoint: "http://a:1".into(),
                    reason: "connection refused".into(),
                    maybe_applied: false,
                },
                Attempt {
                    endpoint: "http://b:2".into(),
                    reason: "connection refused".into(),
                    maybe_applied: false,
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "request failed: http://a:1: connection refused; http://b:2: connection refused"
        );
        assert!(!e.outcome_unknown());
    }
}
