//! Building request paths and query strings: buckets and keys are arbitrary
//! bytes, each sent as one percent-encoded path segment.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use crate::ClientError;

/// Bytes left as they are in a path segment or query value: the RFC 3986
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`). Everything else, including
/// `/`, `%`, space and every non-ASCII or non-UTF-8 byte, becomes `%XX`.
const UNRESERVED_COMPLEMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `bytes` as one URL path segment (or query value).
///
/// Only the unreserved characters stay literal, so the result never contains
/// `/`, `?`, `#` or `%` other than as the start of an escape.
pub fn encode_segment(bytes: &[u8]) -> String {
    percent_encode(bytes, UNRESERVED_COMPLEMENT).to_string()
}

/// Checks that `bytes` can travel as a path segment and encodes it.
///
/// `what` names the part (`"key"`, `"bucket"`) in the error. An empty segment
/// would not match the route, and URL parsers collapse the segments `.` and
/// `..` (even when written `%2E`) before the request is sent, so those three
/// are refused here instead of silently addressing something else.
pub(crate) fn checked_segment(what: &'static str, bytes: &[u8]) -> Result<String, ClientError> {
    let reason = match bytes {
        b"" => Some("it is empty"),
        b"." | b".." => Some("URLs cannot carry the path segments \".\" and \"..\""),
        _ => None,
    };
    match reason {
        Some(reason) => Err(ClientError::InvalidInput {
            what,
            reason: reason.to_string(),
        }),
        None => Ok(encode_segment(bytes)),
    }
}

/// The path of a key: `/v1/kv/{bucket}/{key}`, both percent-encoded.
pub fn kv_path(bucket: &str, key: &[u8]) -> Result<String, ClientError> {
    Ok(format!(
        "/v1/kv/{}/{}",
        checked_segment("bucket", bucket.as_bytes())?,
        checked_segment("key", key)?
    ))
}

/// The path of a bucket's properties: `/v1/buckets/{bucket}`, percent-encoded.
pub fn bucket_path(bucket: &str) -> Result<String, ClientError> {
    Ok(format!(
        "/v1/buckets/{}",
        checked_segment("bucket", bucket.as_bytes())?
    ))
}

/// `/v1/ring/{bucket}/{key}` with both parts percent-encoded.
pub fn ring_key_path(bucket: &str, key: &[u8]) -> Result<String, ClientError> {
    Ok(format!(
        "/v1/ring/{}/{}",
        checked_segment("bucket", bucket.as_bytes())?,
        checked_segment("key", key)?
    ))
}

/// Appends `?name=value&...` for the parameters that are set, values
/// percent-encoded. Returns `path` unchanged when none is set.
pub(crate) fn with_query(path: String, params: &[(&str, Option<String>)]) -> String {
    let mut out = path;
    let mut sep = '?';
    for (name, value) in params {
        if let Some(value) = value {
            out.push(sep);
            out.push_str(name);
            out.push('=');
            out.push_str(&encode_segment(value.as_bytes()));
            sep = '&';
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_stay_literal() {
        assert_eq!(encode_segment(b"AZaz09-._~"), "AZaz09-._~");
    }

    #[test]
    fn slash_space_and_percent_are_escaped() {
        assert_eq!(encode_segment(b"a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment(b"100%"), "100%25");
        assert_eq!(encode_segment(b"?#&=+"), "%3F%23%26%3D%2B");
    }

    #[test]
    fn non_utf8_and_non_ascii_bytes_are_escaped() {
        assert_eq!(encode_segment(&[0xff, 0x00, 0x80]), "%FF%00%80");
        assert_eq!(encode_segment("é".as_bytes()), "%C3%A9");
    }

    #[test]
    fn kv_path_is_two_segments() {
        assert_eq!(
            kv_path("my bucket", b"users/42").unwrap(),
            "/v1/kv/my%20bucket/users%2F42"
        );
        assert_eq!(kv_path("b", &[0xfe, b'/']).unwrap(), "/v1/kv/b/%FE%2F");
    }

    #[test]
    fn dot_segments_and_empty_are_refused() {
        for bad in [&b""[..], b".", b".."] {
            assert!(matches!(
                kv_path("b", bad),
                Err(ClientError::InvalidInput { what: "key", .. })
            ));
        }
        assert!(matches!(
            kv_path("", b"k"),
            Err(ClientError::InvalidInput { what: "bucket", .. })
        ));
        // Dots inside a longer key are fine.
        assert_eq!(kv_path("b", b"...").unwrap(), "/v1/kv/b/...");
        assert_eq!(kv_path("b", b"./x").unwrap(), "/v1/kv/b/.%2Fx");
    }

    #[test]
    fn bucket_path_is_one_segment() {
        assert_eq!(bucket_path("a/b c").unwrap(), "/v1/buckets/a%2Fb%20c");
        assert!(bucket_path("").is_err());
        assert!(bucket_path("..").is_err());
    }

    #[test]
    fn encoded_path_survives_url_parsing() {
        // What reqwest does with the path must keep it one segment, byte for byte.
        let key: Vec<u8> = (0u8..=255).collect();
        let path = kv_path("b/c", &key).unwrap();
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:1{path}")).unwrap();
        assert_eq!(url.path(), path);
        let segments: Vec<&str> = url.path_segments().unwrap().collect();
        assert_eq!(segments.len(), 4);
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(segments[3]).collect();
        assert_eq!(decoded, key);
    }

    #[test]
    fn query_only_has_set_params() {
        assert_eq!(with_query("/p".into(), &[("r", None)]), "/p");
        assert_eq!(
            with_query(
                "/p".into(),
                &[
                    ("r", Some("quorum".into())),
                    ("pr", None),
                    ("timeout_ms", Some("100".into()))
                ]
            ),
            "/p?r=quorum&timeout_ms=100"
        );
        assert_eq!(
            with_query("/p".into(), &[("w", Some("a&b".into()))]),
            "/p?w=a%26b"
        );
    }
}
