//! What can go wrong talking to ringkv.

use std::fmt;

/// One failed attempt to reach an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The endpoint tried, e.g. `http://127.0.0.1:8080`.
    pub endpoint: String,
    /// Why it failed, e.g. `connection refused`.
    pub reason: String,
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
            _ => None,
        }
    }

    /// The server's error code (e.g. `quorum_not_reached`), if this is a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } => Some(code),
            _ => None,
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
                },
                Attempt {
                    endpoint: "http://b:2".into(),
                    reason: "connection refused".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "request failed: http://a:1: connection refused; http://b:2: connection refused"
        );
    }
}
